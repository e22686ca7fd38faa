/*
 * sedflow/model.h — the PROVABGS SED forward model (spec: shared/spec/MODEL.md).
 *
 * 12 physical parameters theta (MODEL.md s1), in this order:
 *   0 logmstar [log10 Msun formed]   1-4 beta1..beta4 (SFH NMF weights, sum 1)
 *   5 fburst [-]   6 tburst [Gyr lookback]   7-8 gamma1, gamma2 (ZH NMF weights)
 *   9 tau_bc [-]   10 tau_ism [-]   11 n_dust [-]
 * and the redshift z in (0, 0.6].  The model evaluates the two neural
 * emulators of FSPS (NMF composite population and burst SSP, MODEL.md s3),
 * combines them into the rest-frame spectrum L_lambda (s4), redshifts it and
 * integrates it through the SDSS ugriz filters to AB nanomaggies, and derives
 * sfr_1gyr, z_mw and tage_mw from the binned SFH/ZH (s5).
 *
 * Usage (plan once, evaluate many times):
 *   sf_model *m;      sf_model_load("data/sedflow_model.h5", &m);
 *   sf_model_work *w; sf_model_work_alloc(m, 256, &w);    // one per thread
 *   sf_model_photometry(m, w, n, theta, z, flux_nmgy, NULL);
 *   sf_model_work_free(w); sf_model_free(m);
 * A loaded sf_model is read-only during evaluation: threads share it, each
 * with its own sf_model_work.  sf_model_photometry_omp() does that for you.
 */
#ifndef SEDFLOW_MODEL_H
#define SEDFLOW_MODEL_H

#include <stddef.h>

#include "sedflow/cosmo.h"
#include "sedflow/error.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
    SF_NTHETA = 12,   /* physical parameters */
    SF_NBANDS = 5,    /* SDSS u, g, r, i, z */
    SF_NDERIVED = 3,  /* sfr_1gyr [Msun/yr], z_mw [-], tage_mw [Gyr] */
    SF_NWAVE = 4868,  /* rest-frame model wavelengths, 2305 .. 59900 Angstrom */
    SF_NMF_NIN = 9,   /* NMF emulator inputs: u1,u2,u3,gamma1,gamma2,tau_bc,tau_ism,n_dust,tage */
    SF_BURST_NIN = 4  /* burst emulator inputs: log10 tburst, log10 Zburst, tau_ism, n_dust */
};

/* Indices into theta. */
enum {
    SF_TH_LOGMSTAR = 0, SF_TH_BETA1 = 1, SF_TH_FBURST = 5, SF_TH_TBURST = 6,
    SF_TH_GAMMA1 = 7, SF_TH_GAMMA2 = 8, SF_TH_TAU_BC = 9, SF_TH_TAU_ISM = 10, SF_TH_N_DUST = 11
};

/* Names of theta's components ("logmstar", "beta1", ...), bands ("u".."z"),
 * derived properties ("sfr_1gyr", "z_mw", "tage_mw_gyr"). */
extern const char *const sf_theta_names[SF_NTHETA];
extern const char *const sf_band_names[SF_NBANDS];
extern const char *const sf_derived_names[SF_NDERIVED];

/* Metallicity clip of the ZH and the burst (MODEL.md s3, s5), absolute Z. */
#define SF_ZMIN 4.49043431e-5
#define SF_ZMAX 4.49043431e-2

typedef struct sf_model sf_model;
typedef struct sf_model_work sf_model_work;

/* Load the prepared model data (emulators, NMF bases, filters; layout in
 * docs/DATA.md) from `path` (an HDF5 file, or a folder holding
 * sedflow_model.h5) and build the cosmology tables.
 * Errors: SF_EIO (missing/unreadable), SF_EFORMAT (wrong layout/version),
 * SF_ENOMEM. */
sf_status sf_model_load(const char *path, sf_model **out);
void sf_model_free(sf_model *m);

/* Rest-frame model wavelengths [Angstrom], SF_NWAVE of them, ascending. */
const double *sf_model_wave_rest(const sf_model *m);
/* The cosmology the model uses (Planck13, MODEL.md s2). */
const sf_cosmo *sf_model_cosmo(const sf_model *m);

/* Per-thread workspace for batches of up to batch_max parameter vectors
 * (larger calls are processed in chunks of batch_max). */
sf_status sf_model_work_alloc(const sf_model *m, size_t batch_max, sf_model_work **out);
void sf_model_work_free(sf_model_work *w);

/* Check one theta (12) and z: finite values, betas >= 0 summing to 1 within
 * 1e-6, fburst in [0, 1], tburst > 0, gammas > 0, tau_bc and tau_ism >= 0,
 * z in (0, 0.6].
 * Returns SF_EINVAL / SF_EDOMAIN with a message naming the parameter. */
sf_status sf_model_check_theta(const double *theta, double z);

/* Photometry (MODEL.md s4).  theta: n x 12 (row-major), z: n.
 * flux_nmgy: n x 5 output, AB nanomaggies in u, g, r, i, z.
 * lum_rest (may be NULL): n x SF_NWAVE output, rest-frame L_lambda
 * [Lsun/Angstrom] of the whole galaxy (10^logmstar included).
 * Every row is checked first (sf_model_check_theta); on a bad row nothing is
 * computed and the error names the row.  Single-threaded; uses w. */
sf_status sf_model_photometry(const sf_model *m, sf_model_work *w, size_t n,
                              const double *theta, const double *z,
                              double *flux_nmgy, double *lum_rest);

/* As sf_model_photometry, split over `nthreads` OpenMP threads (0: the
 * OpenMP default) with one workspace each (allocated here).  Results are
 * identical to the single-threaded call. */
sf_status sf_model_photometry_omp(const sf_model *m, size_t n, const double *theta,
                                  const double *z, double *flux_nmgy, int nthreads);

/* Observed-frame flux density f_lambda [erg/s/cm^2/Angstrom] at the observed
 * wavelengths wave_rest*(1+z) from rest-frame L_lambda [Lsun/A]:
 * f = L * 3.846e33 / (4 pi d_L^2) / (1+z).  lum_rest, f_obs: SF_NWAVE. */
sf_status sf_model_flambda_obs(const sf_model *m, double z, const double *lum_rest, double *f_obs);

/* Derived properties (MODEL.md s5): the star-formation rate averaged over
 * the last Gyr and the mass-weighted metallicity and age, from the binned
 * NMF SFH/ZH and the burst.  theta: n x 12, z: n.
 * derived: n x 3 output: sfr_1gyr [Msun/yr], z_mw [-], tage_mw [Gyr].
 * Consecutive rows with the same z share the work that depends on z alone
 * (bin edges, basis integrals, ZH basis values; ~20x faster per row for the
 * posterior samples of one galaxy); results do not depend on the grouping.
 * Every row is checked first (sf_model_check_theta): SF_EINVAL / SF_EDOMAIN
 * naming the row, nothing written. */
sf_status sf_model_derived(const sf_model *m, size_t n, const double *theta, const double *z,
                           double *derived);

/* Raw emulators (MODEL.md s3), for tests and diagnostics.
 * nmf_in: n x 9 = [u1, u2, u3, gamma1, gamma2, tau_bc, tau_ism, n_dust, tage/Gyr];
 * burst_in: n x 4 = [log10 tburst/Gyr, log10 Zburst, tau_ism, n_dust].
 * ln_lum: n x SF_NWAVE output, ln(L_lambda per Msun formed / (Lsun/A)). */
sf_status sf_model_emulate_nmf(const sf_model *m, sf_model_work *w, size_t n,
                               const double *nmf_in, float *ln_lum);
sf_status sf_model_emulate_burst(const sf_model *m, sf_model_work *w, size_t n,
                                 const double *burst_in, float *ln_lum);

#ifdef __cplusplus
}
#endif
#endif
