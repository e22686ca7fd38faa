/*
 * sedflow/sim.h — the training-set simulator (SEDflow, Hahn & Melchior 2022,
 * section 3.2) and its HDF5 output.
 *
 * A simulated galaxy: u ~ prior (sedflow/prior.h), theta = T(u),
 * z ~ U(z_min, z_max) (default U(0, 0.2)), noiseless fluxes F(theta, z) from the
 * forward model; per band a magnitude error sigma' ~ N(mu_sigma(m), sigma_sigma(m))
 * from the noise model at the noiseless magnitude m (eq. 5), the flux error
 * sigma_f = F ln10/2.5 sigma', and the noisy flux F + N(0, sigma_f) (eq. 4).
 * Conditioning vector x = (mag_u..mag_z of the noisy flux, sigma'_u..sigma'_z, z).
 * Candidates are removed, and counted by reason, when a noiseless flux lies
 * outside the range of the real NSA photometry (per band), when a drawn
 * sigma' <= 0 (the paper removes such rows), or when a noisy flux <= 0 (its
 * magnitude is undefined).
 *
 * Reproducibility: candidate j draws all its random numbers from stream j
 * of the seed, and candidates are evaluated in fixed blocks and 256-row
 * chunks, so the output bytes do not depend on the thread count, and a
 * resumed run continues exactly where the interrupted one stopped.
 */
#ifndef SEDFLOW_SIM_H
#define SEDFLOW_SIM_H

#include <stddef.h>
#include <stdint.h>

#include "sedflow/error.h"
#include "sedflow/model.h"
#include "sedflow/noise.h"
#include "sedflow/prior.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SF_NX 11 /* conditioning features: 5 mags, 5 sigma_mags, z */
#define SF_SIM_FORMAT_VERSION 1

typedef struct {
    sf_prior_kind prior; /* default SF_PRIOR_SEDFLOW */
    uint64_t seed;
    double z_min, z_max; /* redshift prior U(z_min, z_max); default (0, 0.2); z = 0 is never drawn */
    size_t block;        /* candidates per block (default 4096; fixed per file) */
    int nthreads;        /* OpenMP threads (0: default) */
} sf_sim_options;

void sf_sim_options_default(sf_sim_options *opt);

/* Counts of candidates drawn and removed, by reason. */
typedef struct {
    long long drawn;
    long long cut_flux_range;  /* a noiseless flux outside the NSA range */
    long long cut_sigma;       /* a drawn sigma' <= 0 */
    long long cut_noisy_flux;  /* a noisy flux <= 0 */
    long long kept;
} sf_sim_counts;

/* Rows of one block (capacity = options.block); all row-major. */
typedef struct {
    size_t n;
    long long *candidate;  /* (n) global candidate index (the rng stream) */
    double *theta;         /* (n, 12) physical parameters, sedflow/model.h order */
    double *theta_u;       /* (n, 11) sampling-space parameters, sedflow/prior.h order */
    double *z;             /* (n) redshift */
    double *flux_true;     /* (n, 5) noiseless ugriz flux [nmgy] */
    double *flux;          /* (n, 5) noisy flux [nmgy] */
    double *sigma_flux;    /* (n, 5) flux uncertainty [nmgy] */
    double *mag;           /* (n, 5) AB magnitude of the noisy flux */
    double *sigma_mag;     /* (n, 5) magnitude uncertainty sigma' [mag] */
    double *x;             /* (n, 11) flow context: mag, sigma_mag, z */
    double *derived;       /* (n, 3) sfr_1gyr [Msun/yr], z_mw, tage_mw [Gyr] */
} sf_sim_rows;

typedef struct sf_sim sf_sim;

/* Prepare a simulator (per-thread model workspaces, rows buffer).  The
 * model and noise model must outlive it. */
sf_status sf_sim_alloc(const sf_model *m, const sf_noise *nm, const sf_sim_options *opt, sf_sim **out);
void sf_sim_free(sf_sim *s);

/* Simulate block `k` (candidates k*block .. (k+1)*block-1): the kept rows,
 * in candidate order, in *rows (owned by s, valid until the next call), and
 * the counts of this block added to *counts. */
sf_status sf_sim_block(sf_sim *s, uint64_t k, const sf_sim_rows **rows, sf_sim_counts *counts);

/* ---- the simulation file (layout: docs/DATA.md) ---- */
typedef struct sf_simfile sf_simfile;

/* Create `path` (truncating) with extendible, chunked, compressed datasets
 * and the run's attributes. */
sf_status sf_simfile_create(const char *path, const sf_sim_options *opt, const char *noise_source,
                            sf_simfile **out);
/* Reopen a partial file to continue: returns its options, the next block
 * to simulate and the counts so far (the caller keeps the file's options). */
sf_status sf_simfile_resume(const char *path, sf_sim_options *opt, uint64_t *next_block,
                            sf_sim_counts *counts, sf_simfile **out);
/* Rows in the file. */
size_t sf_simfile_nrows(const sf_simfile *f);
/* Append the first `n` rows of `rows`, then record next_block and counts
 * (flushed, so a crash loses at most the block being written). */
sf_status sf_simfile_append(sf_simfile *f, const sf_sim_rows *rows, size_t n, uint64_t next_block,
                            const sf_sim_counts *counts);
/* Mark complete and close (always closes). */
sf_status sf_simfile_close(sf_simfile *f, int complete);

#ifdef __cplusplus
}
#endif
#endif
