/*
 * sedflow/infer.h — posteriors for a galaxy catalog (the main job; SEDflow,
 * Hahn & Melchior 2022, section 5 and Appendix A).  Documentation of the
 * checks, flags and the output file: docs/INFER.md.
 *
 * Pipeline:
 *   1. read a catalog (sedflow/catalog.h) and build, per galaxy, the flow
 *      context x exactly as the simulator does for training (sedflow/sim.h):
 *      x = (mag_u..mag_z, sigma_u..sigma_z, z) with mag = 22.5 - 2.5 log10(f_nmgy)
 *      and sigma = (2.5/ln10) / (f sqrt(ivar)) [mag];
 *   2. checks before sampling, each a flag bit with a readable reason
 *      (sf_infer_prepare): the catalog reader's flags, redshift outside the
 *      trained range, sigma > mu_sigma(m) + 3 sigma_sigma(m) in a band (noise
 *      model, paper eq. 5 and Appendix A), a colour bluer than the training
 *      set's 0.1th percentile (Appendix A);
 *   3. N posterior samples per galaxy from the flow (sf_flow_sample, box prior
 *      rejection), galaxy i drawing from its own random stream derived from
 *      (seed, i) so results depend neither on the thread count nor on resume;
 *      samples mapped to the 12 physical parameters and derived properties;
 *      median and 16th/84th percentiles; low acceptance of in-prior draws
 *      (leakage) is flagged after sampling (sf_infer_run_block);
 *   4. an HDF5 catalog written block by block with resume (sf_infer_file_*);
 *   5. optionally (sedflow infer --mcmc-fallback), MCMC on the flux
 *      likelihood (sedflow/sedpost.h) for the galaxies flagged as outside the
 *      training support whose photometry the likelihood can use
 *      (sf_infer_mcmc_*): its samples replace the flow's, `sedflow` stays
 *      False and the flag SF_INFER_MCMC says where the posterior came from,
 *      as in SEDflow's released catalog (paper sec. 5, Appendix A).
 *
 * Threads: OpenMP over galaxies inside sf_infer_run_block (one flow sampling
 * call per galaxy, single-threaded BLAS).  The plan (sf_infer) is read-only
 * during sampling.
 */
#ifndef SEDFLOW_INFER_H
#define SEDFLOW_INFER_H

#include <stddef.h>
#include <stdint.h>

#include "sedflow/catalog.h"
#include "sedflow/error.h"
#include "sedflow/flow.h"
#include "sedflow/noise.h"
#include "sedflow/sedpost.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SF_INFER_FORMAT_VERSION 2 /* 2: the mcmc* datasets and attributes of the MCMC fallback */
#define SF_INFER_NCOLOUR 4      /* adjacent colours u-g, g-r, r-i, i-z */
#define SF_INFER_REASON_LEN 1024 /* bytes of one galaxy's reason text (terminated) */
/* A logit-map flow (flow.h) never leaves the prior box; its `acceptance` is
 * the fraction of draws at least SF_INFER_EDGE_P of the box width inside
 * every face (|logit| <= 13.8: the range of ~10^6 uniform training draws),
 * the mass where the flow does not extrapolate.  Draws nearer a face are
 * kept. */
#define SF_INFER_EDGE_P 1e-6

/* Flag bits of the inference stage, ORed into the catalog reader's bits
 * 0..7 (SF_CAT_*).  A galaxy's posterior is trusted (`sedflow` = true) when
 * its flag word is 0. */
enum {
    SF_INFER_Z_RANGE = 1u << 8,     /* redshift outside the trained range */
    SF_INFER_SIGMA_HIGH = 1u << 9,  /* sigma_X > mu_sigma(m_X) + 3 sigma_sigma(m_X) in some band */
    SF_INFER_BLUE = 1u << 10,       /* a colour bluer than the training set's 0.1th percentile */
    SF_INFER_LEAKAGE = 1u << 11,    /* acceptance below min_acceptance: identity-map flow, in-prior draws;
                                       logit-map flow, draws inside the trained range (SF_INFER_EDGE_P) */
    SF_INFER_FEW_SAMPLES = 1u << 12,/* proposal budget spent before n_samples draws were accepted */
    SF_INFER_NOT_SAMPLED = 1u << 13,/* the flow was not sampled: x undefined, z outside the model's (0, 0.6],
                                       or skipped (the MCMC fallback may still give samples) */
    SF_INFER_MCMC = 1u << 14,       /* the samples come from the MCMC fallback, not the flow */
    SF_INFER_MCMC_NOCONV = 1u << 15,/* that chain failed the convergence test (< 50 tau kept or R-hat >= 1.05) */
    SF_INFER_MCMC_FAILED = 1u << 16 /* the MCMC fallback stopped with an error; the flow's samples (if any) kept */
};

/* The flags that mean "outside the training support" (Appendix A) and so
 * call for the MCMC fallback: redshift outside the trained range, sigma
 * outlier, colour too blue, leakage, too few in-prior flow samples. */
#define SF_INFER_SUPPORT_FLAGS \
    (SF_INFER_Z_RANGE | SF_INFER_SIGMA_HIGH | SF_INFER_BLUE | SF_INFER_LEAKAGE | SF_INFER_FEW_SAMPLES)

/* Quantities stored per sample: the 12 physical parameters (sedflow/model.h
 * order: logmstar, beta1..4, fburst, tburst, gamma1, gamma2, tau_bc,
 * tau_ism, n_dust), then the derived properties log_sfr_1gyr =
 * log10(sfr_1gyr / (Msun/yr)), log_z_mw = log10(z_mw), tage_mw [Gyr]
 * (sf_model_derived).  log_mstar equals logmstar (the output file links it). */
enum { SF_INFER_NQ = 15 };
extern const char *const sf_infer_q_names[SF_INFER_NQ];
extern const char *const sf_infer_q_units[SF_INFER_NQ];
extern const char *const sf_infer_q_descriptions[SF_INFER_NQ];

/* Short name of one inference flag bit ("redshift outside the trained
 * range", ...); falls back to sf_catalog_flag_name for bits 0..7. */
const char *sf_infer_flag_name(uint32_t bit);

typedef struct {
    size_t n_samples;      /* posterior samples per galaxy (default 10000) */
    uint64_t seed;         /* default 1; galaxy i uses seed sf_infer_galaxy_seed(seed, i) */
    int nthreads;          /* OpenMP threads over galaxies (0: omp_get_max_threads()) */
    double min_acceptance; /* leakage flag below this acceptance fraction (default 0.5) */
    size_t max_proposals;  /* proposal budget per galaxy (0: 10 n_samples) */
    int skip_flagged;      /* nonzero: do not sample galaxies flagged before sampling */
    double sigma_nsd;      /* sigma check: mu + sigma_nsd * sigma_sigma (default 3, Appendix A) */
} sf_infer_options;

void sf_infer_options_default(sf_infer_options *opt);

/* Seed of galaxy (catalog row) i: sf_mix64(seed ^ sf_mix64(i + 1)); the
 * flow draws its samples from stream 0 of it. */
uint64_t sf_infer_galaxy_seed(uint64_t seed, uint64_t row);

/* ---- the training-data support (Appendix A) -------------------------- */

typedef struct {
    double z_min, z_max;                   /* trained redshift range (z <= 0 is always outside) */
    int has_colour;                        /* 0: colour limits unknown, colour check off */
    double colour_quantile;                /* 0.001: the 0.1th percentile */
    double colour_min[SF_INFER_NCOLOUR];   /* quantile of u-g, g-r, r-i, i-z of the training mags [mag] */
    long long n_rows;                      /* training rows the limits come from (0 if unknown) */
    char source[512];                      /* where the numbers come from (free text) */
} sf_infer_support;

/* The quantile q (e.g. 0.001) of each adjacent colour m_b - m_{b+1}
 * (b = u..i) of the noisy magnitudes (dataset `mag`, n x 5 AB mag) of a
 * simulation file (sedflow simulate; docs/DATA.md).  Quantiles by linear
 * interpolation between order statistics (position q (n - 1), as numpy).
 * colour_min: 4 outputs [mag]; n_rows (may be NULL): rows used (rows with a
 * non-finite magnitude are skipped).  Errors: SF_EIO, SF_EFORMAT (no `mag`
 * dataset, fewer than 2 rows), SF_EINVAL (q outside (0, 1)), SF_ENOMEM. */
sf_status sf_infer_colour_limits(const char *sim_path, double q, double colour_min[SF_INFER_NCOLOUR],
                                 size_t *n_rows);

/* Support from a simulation file: colour limits as above and the redshift
 * range from its root attributes z_min, z_max. */
sf_status sf_infer_support_from_sim(const char *sim_path, double q, sf_infer_support *s);

/* Add (or replace) the group /support of an existing flow model file:
 * attributes z_min, z_max, colour_quantile, n_rows, source, colour_names
 * ("u-g,g-r,r-i,i-z") and dataset colour_min (4) [mag].  sf_flow_load
 * ignores the group.  Errors: SF_EIO (cannot open for writing). */
sf_status sf_infer_support_write(const char *model_path, const sf_infer_support *s);

/* Read /support of a model file.  When it is absent: the redshift range is
 * the simulator's default U(z_min, z_max) = (0, 0.2] (sf_sim_options_default,
 * SEDflow s3.2) and the colour check is off (has_colour = 0); s->source says
 * so.  (The flow's z-score statistics of z cannot give the range: the
 * simulator's flux cuts make the kept redshifts non-uniform.)
 * Errors: SF_EIO, SF_EFORMAT (malformed /support). */
sf_status sf_infer_support_read(const char *model_path, sf_infer_support *s);

/* ---- derived properties, fast path ----------------------------------- */

/* Quantile(s) of v[0..n-1] (finite values only; v is reordered) by linear
 * interpolation between order statistics at position q (m - 1) over the m
 * finite values; NaN when m = 0.  q: nq values in [0, 1]. */
void sf_infer_quantiles(double *v, size_t n, const double *q, size_t nq, double *out);

/* ---- the plan ---------------------------------------------------------- */

typedef struct sf_infer sf_infer;

/* Load the flow model (model_path; D = C = 11 required), the SFH/ZH bases
 * of the prepared model data (data_path: a sedflow_model.h5 or its folder),
 * the Planck13 cosmology, the noise model (noise_path) and the support
 * (sf_infer_support_read).  opt NULL = defaults.  Errors: SF_EIO,
 * SF_EFORMAT, SF_EINVAL (options), SF_ENOMEM. */
sf_status sf_infer_alloc(const char *model_path, const char *data_path, const char *noise_path,
                         const sf_infer_options *opt, sf_infer **out);
void sf_infer_free(sf_infer *p);

const sf_infer_options *sf_infer_get_options(const sf_infer *p);
const sf_infer_support *sf_infer_get_support(const sf_infer *p);
const sf_flow *sf_infer_get_flow(const sf_infer *p);
/* FNV-1a hash of the flow's trainable weights and z-score statistics:
 * identifies the model in the output file (a resume with another model is
 * refused). */
uint64_t sf_infer_model_hash(const sf_infer *p);

/* Derived properties of n samples of one galaxy at redshift z in (0, 0.6]:
 * theta n x 12 -> derived n x 3 (sfr_1gyr [Msun/yr], z_mw, tage_mw [Gyr]),
 * the same numbers as sf_model_derived (MODEL.md s5) with the z-only parts
 * (bin edges, basis integrals, ZH basis values) computed once.  theta must
 * be valid (sf_model_check_theta).  Errors: SF_EDOMAIN (z). */
sf_status sf_infer_derived(const sf_infer *p, size_t n, const double *theta, double z, double *derived);

/* Per-galaxy context and pre-sampling checks for every row of a catalog. */
typedef struct {
    size_t n;
    double *x;        /* n x 11: mag_u..z [AB], sigma_u..z [mag], z (NaN where undefined) */
    uint32_t *flags;  /* n: catalog bits | SF_INFER_Z_RANGE | SIGMA_HIGH | BLUE | NOT_SAMPLED */
    char *reason;     /* n x SF_INFER_REASON_LEN: "ok" or "; "-separated reasons with values */
    unsigned char *sample; /* n: 1 when the galaxy will be sampled */
} sf_infer_input;

/* Build the context and run the checks (no sampling).  A galaxy is sampled
 * when x is finite, z lies in the forward model's (0, 0.6], and (with
 * skip_flagged) no flag is set; otherwise it gets SF_INFER_NOT_SAMPLED.
 * Errors: SF_ENOMEM. */
sf_status sf_infer_prepare(const sf_infer *p, const sf_catalog *cat, sf_infer_input **out);
void sf_infer_input_free(sf_infer_input *in);

/* Results for a block of galaxies. */
typedef struct {
    size_t cap;          /* galaxies the block can hold */
    size_t n_samples;
    size_t n;            /* galaxies in the block now */
    float *samples;      /* SF_INFER_NQ x cap x n_samples ([q][g][s]); NaN rows for missing draws */
    double *summary;     /* cap x SF_INFER_NQ x 3: p16, p50, p84 */
    double *acceptance;  /* cap: accepted / proposed, or for a logit-map flow the fraction inside the
                          * trained range (SF_INFER_EDGE_P); NaN when not sampled */
    long long *n_accepted; /* cap */
    uint32_t *flags;     /* cap: final flags */
    char *reason;        /* cap x SF_INFER_REASON_LEN: final reasons */
    double seconds;      /* wall time of the last sf_infer_run_block */
} sf_infer_block;

sf_status sf_infer_block_alloc(const sf_infer *p, size_t cap, sf_infer_block **out);
void sf_infer_block_free(sf_infer_block *b);

/* Sample galaxies g0 .. g0+n-1 of `in` (n <= b->cap) on opt.nthreads
 * threads: flow samples, physical parameters, derived properties, summaries,
 * acceptance and the post-sampling flags (LEAKAGE, FEW_SAMPLES).  Galaxies
 * not sampled get NaN samples and summaries and acceptance NaN.  Results do
 * not depend on the thread count or on g0's block boundaries.
 * Errors: SF_EINVAL (range), SF_ENOMEM, a sampling error. */
sf_status sf_infer_run_block(const sf_infer *p, const sf_infer_input *in, size_t g0, size_t n, sf_infer_block *b);

/* ---- the MCMC fallback (sedflow infer --mcmc-fallback) ------------------ */

/* Which galaxies get it: a flag of SF_INFER_SUPPORT_FLAGS, or flux <= 0 in
 * some band (SF_CAT_FLUX_NONPOS: the flow cannot take such a galaxy, its
 * magnitude is undefined, but the Gaussian flux likelihood of paper eq. 1
 * can: negative fluxes are ordinary noisy measurements), AND photometry the
 * likelihood can use: all 5 fluxes finite [nmgy], all 5 ivar finite and
 * > 0 [nmgy^-2], no other reader flag (non-finite, ivar <= 0, missing, not
 * a number, bad redshift), and z inside the forward model's (0, 0.6].
 * Returns 1 or 0.  Bits 14..16 (SF_INFER_MCMC*) are ignored, so the answer
 * is the same before and after the fallback ran. */
int sf_infer_mcmc_wanted(uint32_t flags, const double *flux_nmgy, const double *ivar_nmgy2, double z);

/* Sampler seed of the MCMC fallback for galaxy (row) i:
 * sf_mix64(sf_infer_galaxy_seed(seed, i) ^ 0x4D434D4346414C4C) ("MCMCFALL"),
 * a stream family of its own, apart from the flow's stream 0. */
uint64_t sf_infer_mcmc_seed(uint64_t seed, uint64_t row);

typedef struct {
    sf_sedpost_opts sampler; /* walkers, burn-in, kept iterations, thin, move,
                                prior, n_start (sedflow/sedpost.h); its
                                mcmc.seed is ignored (sf_infer_mcmc_seed) */
    size_t pool;             /* galaxies per pooled group (sf_sedpost_mcmc_many
                                runs a group at once; also the checkpoint unit
                                of the output file).  Results depend on it:
                                batch composition sets the forward model's
                                rounding path (sedpost.h).  Default 16. */
} sf_infer_mcmc_options;

/* Defaults: the paper's sampler (sf_sedpost_opts_default: ensemble slice
 * sampling, differential move, 30 walkers, 10,000 iterations of which
 * 2,000 burn-in, walkers started at prior draws), pool 16.  Cost ~10-30
 * CPU minutes per galaxy (docs/VALIDATION.md s7). */
void sf_infer_mcmc_options_default(sf_infer_mcmc_options *o);

/* Per-galaxy diagnostics of a fallback run. */
typedef struct {
    sf_status status;       /* SF_OK, or this galaxy's error (then SF_INFER_MCMC_FAILED) */
    int converged;          /* sf_mcmc_test passed: >= 50 tau kept steps and R-hat < 1.05 */
    double rhat_max;        /* largest split-R-hat of the 11 parameters (NaN: chain too short) */
    double tau_max;         /* largest integrated autocorrelation time [iterations] */
    double evals_per_step;  /* forward-model evaluations per walker and iteration (burn-in included) */
    long long n_eval;       /* forward-model evaluations of the sampler */
    double best_chi2;       /* chi2 of the kept sample of highest posterior, over the 5 bands */
} sf_infer_mcmc_diag;

typedef struct sf_infer_mcmc sf_infer_mcmc;

/* Load the forward model (sf_model_load of data_path: a sedflow_model.h5 or
 * its folder) for the fallback of plan p (which must outlive the object).
 * o NULL = defaults.  Errors: SF_EINVAL (walkers odd or < 22, no kept step,
 * pool 0), SF_EIO, SF_EFORMAT, SF_ENOMEM. */
sf_status sf_infer_mcmc_alloc(const sf_infer *p, const char *data_path, const sf_infer_mcmc_options *o,
                              sf_infer_mcmc **out);
void sf_infer_mcmc_free(sf_infer_mcmc *m);
const sf_infer_mcmc_options *sf_infer_mcmc_get_options(const sf_infer_mcmc *m);

/* MCMC for the n galaxies rows[0..n-1] of cat (n <= b->cap; each must be
 * sf_infer_mcmc_wanted with flags[k]), pooled in one sf_sedpost_mcmc_many
 * call on the plan's nthreads.  flags[n] and reasons[n x
 * SF_INFER_REASON_LEN] are the galaxies' flags and reasons after the flow
 * pass.  Galaxy rows[k] goes to slot k of b: min(n_samples, kept steps x
 * walkers) posterior draws taken from the kept chain evenly, walker by
 * walker (draw j of the walker-major order w * nsteps + s is
 * floor(j * T / n_accepted), T = nsteps * nwalkers), mapped to the 12
 * physical parameters and the derived properties, and summarised exactly
 * as flow samples; flags | SF_INFER_MCMC (| SF_INFER_MCMC_NOCONV) with a
 * reason.  A galaxy whose sampler fails gets SF_INFER_MCMC_FAILED, its
 * error in the reason and diag[k].status, and NaN in its slot (the file
 * writer then keeps the flow's samples).  Results depend only on (seed,
 * row, the photometry, the options, the group rows[]), not on the thread
 * count.  Errors: SF_EINVAL (n, a row not wanted), SF_ENOMEM, pool errors. */
sf_status sf_infer_mcmc_run(const sf_infer_mcmc *m, const sf_catalog *cat, const size_t *rows, size_t n,
                            const uint32_t *flags, const char *reasons, sf_infer_block *b, sf_infer_mcmc_diag *diag);

/* ---- the output catalog (layout: docs/INFER.md) ---------------------- */

typedef struct sf_infer_file sf_infer_file;

/* Run description stored as root attributes. */
typedef struct {
    const char *model_path, *catalog_paths, *noise_path, *data_path;
    const char *catalog_format;
    size_t block; /* galaxies per block (progress unit) */
    int compression; /* deflate level of the sample datasets (0: none) */
    const sf_infer_mcmc_options *mcmc; /* the MCMC fallback's options, NULL when off */
} sf_infer_file_info;

/* Create `path` (truncating) with every dataset sized for in->n galaxies
 * (samples NaN-filled) and write the per-galaxy inputs (id, row, z, mags,
 * sigmas, fluxes, ivars).  Progress attribute next_galaxy = 0. */
sf_status sf_infer_file_create(const char *path, const sf_infer *p, const sf_catalog *cat, const sf_infer_input *in,
                               const sf_infer_file_info *info, sf_infer_file **out);
/* Reopen a partial file: checks that format, n_galaxies, n_samples, seed,
 * max_proposals, min_acceptance, skip_flagged, the model hash, the ids and
 * the MCMC fallback (off in both, or on with the same walkers, iterations,
 * burn-in, thin, move, prior, n_start and pool; mcmc NULL = off) match this
 * run (SF_EINVAL naming the difference) and returns next_galaxy. */
sf_status sf_infer_file_resume(const char *path, const sf_infer *p, const sf_catalog *cat,
                               const sf_infer_mcmc_options *mcmc, size_t *next_galaxy, sf_infer_file **out);
/* Write block b for galaxies g0 .. g0+b->n-1, then set next_galaxy =
 * g0 + b->n and flush.  Blocks must come in order. */
sf_status sf_infer_file_write(sf_infer_file *f, size_t g0, const sf_infer_block *b);
/* The galaxies of a file whose flow pass is finished (next_galaxy = n)
 * that get the MCMC fallback (sf_infer_mcmc_wanted on the file's flags and
 * cat's photometry), in row order: *rows, *flags (their flags now) and
 * *reasons (n x SF_INFER_REASON_LEN), malloc'ed (free() them), *n of them,
 * *done of them finished (attribute mcmc_next).  Records the count as
 * attribute mcmc_n.  Errors: SF_EINVAL (flow pass not finished, fallback
 * off in this file), SF_EFORMAT, SF_ENOMEM. */
sf_status sf_infer_file_mcmc_list(sf_infer_file *f, const sf_catalog *cat, size_t **rows, uint32_t **flags,
                                  char **reasons, size_t *n, size_t *done);
/* Write the fallback results of rows[0..n-1] (slots 0..n-1 of b, diag[n],
 * from sf_infer_mcmc_run): flags, reason, sedflow, the mcmc* datasets and,
 * for galaxies whose MCMC succeeded, n_accepted, samples and summaries
 * (the flow's stay otherwise); then mcmc_next = done_after, flush.  Groups
 * must come in list order.  Errors: SF_EINVAL, SF_EIO. */
sf_status sf_infer_file_write_mcmc(sf_infer_file *f, const size_t *rows, size_t n, const sf_infer_block *b,
                                   const sf_infer_mcmc_diag *diag, size_t done_after);
/* Add `seconds` to the attribute mcmc_seconds (MCMC wall time over all runs). */
sf_status sf_infer_file_add_mcmc_seconds(sf_infer_file *f, double seconds);
/* Set complete = 1 when `complete` and every stage is done (flow pass; with
 * the fallback also every listed galaxy), record run time, close (always). */
sf_status sf_infer_file_close(sf_infer_file *f, int complete, double seconds);

/* Summary of a finished (or partial) output file, for reports. */
typedef struct {
    size_t n_galaxies, n_done, n_samples;
    size_t n_sampled, n_trusted;     /* sampled by the flow; flag word 0 */
    size_t n_mcmc;                   /* posterior from the MCMC fallback (SF_INFER_MCMC) */
    size_t n_mcmc_converged;         /* of those, chains that passed the convergence test */
    int mcmc_fallback;               /* the file was made with --mcmc-fallback */
    long long mcmc_n, mcmc_done;     /* galaxies listed for the fallback (-1: not listed yet), done */
    size_t n_flag[32];               /* galaxies with bit k set (of the n_done) */
    size_t n_show;                   /* entries below filled (<= 8) */
    int show_flagged;                /* 1: no galaxy is trusted, the entries are the first sampled ones */
    long long show_id[8];            /* the first trusted galaxies */
    double show_logmstar[8][3];      /* their logmstar p16, p50, p84 */
    double mean_acceptance;          /* over sampled galaxies */
} sf_infer_report;

sf_status sf_infer_file_report(const char *path, sf_infer_report *r);

/* Write a FITS binary table of the per-galaxy summaries of a finished output
 * file (columns ID, Z, MAG_U.., SIGMA_U.., <Q>_P16/_P50/_P84 for every
 * quantity, ACCEPTANCE, N_ACCEPTED, FLAGS, SEDFLOW, MCMC, MCMC_RHAT_MAX,
 * REASON) to fits_path (via .tmp,
 * renamed).  Errors: SF_EIO. */
sf_status sf_infer_write_fits(const char *h5_path, const char *fits_path);

#ifdef __cplusplus
}
#endif
#endif
