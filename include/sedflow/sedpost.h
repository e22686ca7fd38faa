/*
 * sedflow/sedpost.h — the SED posterior of one galaxy for MCMC (issue 6):
 * the Gaussian likelihood of the observed ugriz fluxes given the forward
 * model (Hahn & Melchior 2022, eq. 1, diagonal covariance) times the prior
 * box of sedflow/prior.h, in the 11-dim sampling space u, and a driver that
 * runs the ensemble samplers of sedflow/mcmc.h on it with the batched
 * callback (one sf_model_photometry call per batch of walkers).
 *
 *   log p(u | f) = log prior(u) - 1/2 sum_b ivar_b (f_b - F_b(T(u), z))^2
 *
 * f_b observed flux [nmgy], ivar_b its inverse variance [nmgy^-2], F_b the
 * model flux [nmgy] of theta = T(u) (sf_u_to_theta) at redshift z.  The
 * Gaussian normalisation -1/2 sum log(2 pi / ivar_b) is a constant and is
 * left out, as in eq. 1.  A band with ivar_b = 0 carries no information and
 * is left out (its flux may then be NaN).  log p = -INFINITY outside the
 * prior box (the model is not evaluated there).
 *
 * Derived properties of a sample u (MODEL.md s5, sf_model_derived):
 *   log_sfr_1gyr = log10(SFR averaged over the last Gyr / (Msun/yr))
 *                  (floored at SF_SEDPOST_LOGSFR_FLOOR when the SFR is 0),
 *   log_z_mw     = log10(mass-weighted metallicity Z),
 *   tage_mw      = mass-weighted age [Gyr].
 * The stellar mass log_mstar is the parameter u[0] = logmstar itself
 * (log10 of the stellar mass formed, Msun), so the 14 reported quantities
 * are the 11 sampling-space parameters followed by these three
 * (sf_sedpost_names).
 */
#ifndef SEDFLOW_SEDPOST_H
#define SEDFLOW_SEDPOST_H

#include <stddef.h>
#include <stdint.h>

#include "sedflow/error.h"
#include "sedflow/mcmc.h"
#include "sedflow/model.h"
#include "sedflow/prior.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
    SF_SEDPOST_NDERIVED = 3,                    /* log_sfr_1gyr, log_z_mw, tage_mw */
    SF_SEDPOST_NQ = SF_NU + SF_SEDPOST_NDERIVED /* 14 reported quantities */
};

/* log10 SFR used when the model's SFR over the last Gyr is exactly 0. */
#define SF_SEDPOST_LOGSFR_FLOOR (-12.0)

/* Names of the 14 quantities: sf_u_names, then "log_sfr_1gyr", "log_z_mw",
 * "tage_mw"; and their units. */
extern const char *const sf_sedpost_names[SF_SEDPOST_NQ];
extern const char *const sf_sedpost_units[SF_SEDPOST_NQ];

/* ---- the log-posterior of one galaxy ---------------------------------- */

typedef struct sf_sedpost sf_sedpost;

/* Prepare the posterior of one galaxy: flux_nmgy[5], ivar_nmgy2[5] (u, g,
 * r, i, z), redshift z in (0, 0.6], prior kind, and a model workspace for
 * batches of up to batch_max points (larger batches are split; 0 = 32).
 * The model must outlive the object.  Errors: SF_EINVAL (negative or
 * non-finite ivar, non-finite flux in a band with ivar > 0, no band with
 * ivar > 0), SF_EDOMAIN (z), SF_ENOMEM. */
sf_status sf_sedpost_alloc(const sf_model *m, const double *flux_nmgy, const double *ivar_nmgy2, double z,
                           sf_prior_kind prior, size_t batch_max, sf_sedpost **out);
void sf_sedpost_free(sf_sedpost *p);

/* Number of bands with ivar > 0 (the degrees of freedom of chi2). */
int sf_sedpost_nbands(const sf_sedpost *p);

/* Batched log posterior, with the signature of sf_mcmc_logp_batch_fn:
 * u n x 11 (row-major), logp n, ctx = the sf_sedpost.  Points outside the
 * box get -INFINITY without a model evaluation; the others are evaluated in
 * one sf_model_photometry call per batch_max points.  Not re-entrant on
 * one sf_sedpost (it uses the object's workspace); use one object per
 * thread.  Errors: those of sf_model_photometry. */
sf_status sf_sedpost_logpost_batch(const double *u, size_t n, double *logp, void *ctx);

/* chi2[i] = sum_b ivar_b (f_b - F_b)^2 of the n points u (n x 11, inside
 * the box: SF_EDOMAIN otherwise) and their model fluxes flux_model n x 5
 * [nmgy] (either output may be NULL). */
sf_status sf_sedpost_chi2(sf_sedpost *p, size_t n, const double *u, double *chi2, double *flux_model);

/* ---- derived properties and summaries --------------------------------- */

/* The 3 derived properties (header comment) of n points u (n x 11, in the
 * box) at redshift z: out n x 3 = log_sfr_1gyr, log_z_mw, tage_mw [Gyr].
 * No allocation; thread-safe (the model is read-only).  Errors: those of
 * sf_model_derived (u outside the box gives an invalid theta). */
sf_status sf_sedpost_derived(const sf_model *m, size_t n, const double *u, double z, double *out);

/* The 14 quantities of n points u (n x 11): out n x 14 = u then the
 * derived three (out may not alias u). */
sf_status sf_sedpost_quantities(const sf_model *m, size_t n, const double *u, double z, double *out);

/* Percentiles q[nq] (in [0, 1]) of the column x[i * stride], i < n >= 1,
 * by linear interpolation of the sorted values (numpy's default): out[nq].
 * Allocates a sorted copy.  Errors: SF_EINVAL (n = 0, NaN, q outside [0, 1]),
 * SF_ENOMEM. */
sf_status sf_sedpost_percentiles(const double *x, size_t n, size_t stride, size_t nq, const double *q,
                                 double *out);

/* The flow's conditioning vector of SEDflow (sedflow/sim.h: SF_NX = 11):
 * x = (mag_u..mag_z, sigma_mag_u..sigma_mag_z, z) from fluxes [nmgy] and
 * ivar [nmgy^-2] (sf_catalog_nmgy_to_mag, sf_catalog_sigma_mag).  Returns
 * SF_EINVAL (x filled with NaN where undefined) when a flux or ivar is
 * <= 0 or not finite: such a galaxy cannot be given to the flow. */
sf_status sf_sedpost_flow_x(const double *flux_nmgy, const double *ivar_nmgy2, double z, double *x);

/* ---- the MCMC driver --------------------------------------------------- */

typedef struct {
    sf_mcmc_opts mcmc;    /* sampler options; defaults below */
    sf_prior_kind prior;  /* default SF_PRIOR_SEDFLOW */
    size_t n_start;       /* start from prior draws when x0 is NULL: draw
                             max(n_start, nwalkers) points from the prior and
                             start the walkers at the nwalkers of highest
                             posterior.  Default 0 = the first nwalkers prior
                             draws themselves (zeus-style start). */
    size_t n_anneal;      /* annealed burn-in: before the sampler's own burn-in,
                             this many iterations on the tempered posterior
                             prior x likelihood^beta, beta rising geometrically
                             from 1e-3 to 1 in 10 stages (each stage restarts
                             the sampler at the current walkers with the tuned
                             mu, so no stale log densities).  Lets the walkers
                             spread over the modes the data allow before the
                             exact posterior is sampled; the kept chain is an
                             ordinary chain on the exact posterior.  Default 0. */
} sf_sedpost_opts;

/* Defaults: the paper's sampler (sec. 5): ensemble slice sampler,
 * differential move, 30 walkers, 10,000 iterations of which 2,000 burn-in
 * (mcmc.nburn = 2000, mcmc.niter = 8000), thin 1, seed 1, tuning on,
 * jitter 1e-3 (identical start points are jittered instead of refused),
 * prior SF_PRIOR_SEDFLOW, n_start 0, n_anneal 0. */
void sf_sedpost_opts_default(sf_sedpost_opts *o);

/* What the driver measured about its chain. */
typedef struct {
    double tau[SF_NU];        /* integrated autocorrelation time per parameter [kept steps] */
    double rhat[SF_NU];       /* split-R-hat per parameter */
    double tau_max, rhat_max; /* maxima (NaN-aware) */
    int tau_reliable;         /* chain >= SF_MCMC_TAU_FACTOR * tau_max kept steps */
    int converged;            /* sf_mcmc_test(chain, 0, 0): >= 50 tau and R-hat < 1.05 */
    char warning[512];        /* why not converged ("" when converged) */
    double best_u[SF_NU];     /* kept sample of highest log posterior */
    double best_logp;         /* its log posterior */
    double best_chi2;         /* its chi2 over the used bands */
    double best_flux[SF_NBANDS]; /* its model fluxes [nmgy] */
    int nbands;               /* bands with ivar > 0 */
    double start_logp_max;    /* highest log posterior of the start ensemble */
    sf_mcmc_info info;        /* sampler bookkeeping (evaluations, mu, ...) */
} sf_sedpost_diag;

/* Run the sampler of opts (NULL = defaults) on the posterior of one galaxy
 * (arguments as sf_sedpost_alloc) from x0 (nwalkers x 11 points in the box,
 * e.g. ANPE samples; NULL = prior draws as opts->n_start says, drawn from
 * streams 2^61 + i of opts->mcmc.seed).  On success *chain holds
 * opts->mcmc.niter / thin kept steps (free with sf_mcmc_chain_free) and
 * *diag (may be NULL) the diagnostics.  A chain too short for reliable
 * diagnostics is not an error: diag->converged = 0 and diag->warning says
 * why.  Single-threaded (batched model calls); run several galaxies in
 * parallel for throughput.  Errors: those of sf_sedpost_alloc and
 * sf_mcmc_run_batch (SF_EDOMAIN for a start point outside the box). */
sf_status sf_sedpost_mcmc(const sf_model *m, const double *flux_nmgy, const double *ivar_nmgy2, double z,
                          const sf_sedpost_opts *opts, const double *x0, sf_mcmc_chain **chain,
                          sf_sedpost_diag *diag);

/* ---- many galaxies with pooled model evaluations ---------------------- */

/* One galaxy of a pooled run (pointers must stay valid during the run). */
typedef struct {
    const double *flux_nmgy;  /* [5] */
    const double *ivar_nmgy2; /* [5] */
    double z;
    const double *x0;         /* nwalkers x 11 start points, or NULL (prior draws) */
    uint64_t seed;            /* this galaxy's sampler seed (replaces opts->mcmc.seed) */
} sf_sedpost_galaxy;

/* Run sf_sedpost_mcmc for G galaxies at once, pooling the model
 * evaluations of up to `concurrent` galaxies (0: 32) into one batch per
 * round.  The lockstep slice moves ask for only a few points per round and
 * the forward model costs ~7 ms per batched call plus ~0.45 ms per point
 * (1 ms for a single point), so pooling is 2x or more cheaper per
 * evaluation than galaxy-by-galaxy runs.  Each galaxy's sampler runs in a
 * POSIX thread of its own that blocks while the calling thread evaluates
 * the pooled batch, split in fixed chunks of 64 points over `nthreads`
 * OpenMP threads (0: the OpenMP default).  A round waits for every active
 * galaxy's next request and galaxies start in index order as slots free
 * up, so batch composition and therefore every chain are deterministic:
 * independent of nthreads and of timing, and the same for any
 * `concurrent` up to rounding of the model's batched vs single-point path
 * (the chains are equal to sf_sedpost_mcmc's when both evaluate every batch
 * by the same path; not guaranteed bit for bit).
 * Outputs per galaxy g: chains[g] (NULL on failure), diag[g] (may be NULL
 * as a whole), status[g] (SF_OK or the galaxy's error; its message is in
 * diag[g].warning when diag is given).  Returns SF_OK when the pool ran,
 * even if some galaxies failed; SF_EINVAL / SF_ENOMEM / SF_EINTERNAL for
 * bad options or when threads cannot be started. */
sf_status sf_sedpost_mcmc_many(const sf_model *m, size_t G, const sf_sedpost_galaxy *gal,
                               const sf_sedpost_opts *opts, size_t concurrent, int nthreads,
                               sf_mcmc_chain **chains, sf_sedpost_diag *diag, sf_status *status);

/* ---- summaries and output (src/mcmc/sedpost_io.c) --------------------- */

/* The 14 quantities of every kept sample of chain c (galaxy at redshift
 * z): samples14 (nsteps * nwalkers) x 14 (may be NULL: then only the
 * summary), and summary[q] = median, 16th, 84th percentile of quantity q. */
sf_status sf_sedpost_summarise(const sf_model *m, const sf_mcmc_chain *c, double z, double *samples14,
                               double summary[SF_SEDPOST_NQ][3]);

/* Write G galaxies' chains to `path` (via path.tmp, renamed).  Layout
 * (docs/VALIDATION.md sec. 7): root attributes format = "sedflow-mcmc",
 * format_version 1, quantities, summary_columns, move, prior, nwalkers,
 * nburn, niter, thin, n_start, n_galaxies, code_version; group galaxy_<g>
 * per galaxy with attributes id (ids[g], or g when ids is NULL), z, status,
 * message, best_chi2, best_logp, converged, n_eval, mu and datasets
 * flux_nmgy (5), ivar_nmgy2 (5), chain (nsteps, nwalkers, 11), logp
 * (nsteps, nwalkers), derived (nsteps, nwalkers, 3), summary (14, 3), tau
 * (11), rhat (11), best_u (11), best_flux_nmgy (5).  A failed galaxy
 * (chains[g] NULL) gets only its attributes and input fluxes.  diag may be
 * NULL.  Errors: SF_EIO, SF_ENOMEM. */
sf_status sf_sedpost_save(const char *path, const sf_model *m, size_t G, const sf_sedpost_galaxy *gal,
                          const long long *ids, const sf_sedpost_opts *opts, sf_mcmc_chain *const *chains,
                          const sf_sedpost_diag *diag, const sf_status *status);

#ifdef __cplusplus
}
#endif
#endif
