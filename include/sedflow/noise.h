/*
 * sedflow/noise.h — the SEDflow photometric noise model (Hahn & Melchior
 * 2022, section 3.2, eq. 5):
 *
 *   p(sigma_X | m_X) = N(mu_sigma(m_X), sigma_sigma(m_X))   per band X, in magnitude space,
 *
 * where mu_sigma and sigma_sigma are the median and the standard deviation of
 * the magnitude error sigma_m of real NSA galaxies in magnitude bins,
 * linearly interpolated between bins.  Method and file layout: docs/CATALOG.md.
 *
 * Binning: fine bins of width bin_width_mag aligned to multiples of it; going
 * from bright to faint, fine bins are merged until a bin holds >= min_count
 * rows; a faint-end remainder with fewer rows joins the last bin.  So the
 * sparse ends become wider bins and every bin has >= min_count rows.
 * Interpolation nodes ("bin centres") are the median magnitudes of the rows
 * of each bin.  Between nodes: linear in m.  Beyond the outermost nodes: the
 * end values are held constant (no extrapolation).
 * Statistics per bin: mu_sigma = median of sigma_m (mean of the two middle
 * values for an even count); sigma_sigma = sample standard deviation of
 * sigma_m with the n - 1 denominator.
 * Fit rows: catalog rows with no reader flag (all five bands flux > 0,
 * ivar > 0, finite; finite z) and, by default, a signal-to-noise ratio
 * f sqrt(ivar) >= min_snr = 5 in all five bands (sigma_m <= 0.217 mag).  The
 * paper's NSA sample excluded objects not detected at >= 5 sigma (section
 * 4); the shared NSA rows carry no quality cuts and include catastrophic
 * errors (sigma_m up to 1e7 mag) that would make the plain standard
 * deviation meaningless (tens of mag).  min_snr = 0 uses every valid row.
 * sigma_m = (2.5/ln10) / (f sqrt(ivar)).  The same rows give the flux range.
 */
#ifndef SEDFLOW_NOISE_H
#define SEDFLOW_NOISE_H

#include <stddef.h>

#include <gsl/gsl_rng.h>

#include "sedflow/catalog.h"
#include "sedflow/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SF_NOISE_FORMAT_VERSION 1

/* One band's table; arrays have nbin entries, ordered bright to faint. */
typedef struct {
    size_t nbin;
    double *mag_lo, *mag_hi;    /* bin edges, AB mag: rows with mag_lo <= m < mag_hi */
    double *mag_centre;         /* median m of the bin's rows: the interpolation node */
    long long *count;           /* rows in the bin */
    double *mu_sigma_mag;       /* median sigma_m (mag) */
    double *sigma_sigma_mag;    /* standard deviation of sigma_m (mag), n - 1 denominator */
    double nmgy_min, nmgy_max;  /* range of the fit rows' flux (nmgy): the simulator's cut */
    double mag_min, mag_max;    /* the same range in magnitudes (mag_min = mag of nmgy_max) */
} sf_noise_band;

typedef struct {
    sf_noise_band band[SF_CATALOG_NBANDS]; /* u, g, r, i, z */
    double bin_width_mag;                  /* fine bin width used by the fit (mag) */
    long long min_count;                   /* minimum rows per bin used by the fit */
    double min_snr;                        /* S/N cut of the fit rows (0 = none) */
    long long n_valid;                     /* catalog rows with no reader flag */
    long long n_rows;                      /* rows used: valid and S/N >= min_snr in all bands */
    char source[512];                      /* what it was fitted on (free text) */
} sf_noise;

typedef struct {
    double bin_width_mag; /* default 0.5 mag */
    size_t min_count;     /* default 30 rows */
    double min_snr;       /* default 5: rows need f sqrt(ivar) >= min_snr in all bands; 0 = off */
} sf_noise_fit_options;

void sf_noise_fit_options_default(sf_noise_fit_options *opt);

/* Fit the model to the valid rows of cat (opt NULL = defaults).  `source`
 * (may be NULL) is stored as a description.  SF_EINVAL when bin_width_mag
 * <= 0, min_count < 2, min_snr < 0 or fewer than min_count usable rows;
 * SF_ENOMEM. */
sf_status sf_noise_fit(const sf_catalog *cat, const sf_noise_fit_options *opt, const char *source,
                       sf_noise **out);

/* Free (NULL is a no-op). */
void sf_noise_free(sf_noise *nm);

/* Write to path (via path.tmp, renamed) / read back (exact).  Layout in
 * docs/CATALOG.md: root attributes format = "sedflow-noise",
 * format_version, bands, bin_width_mag, min_count, min_snr, n_valid, n_rows, source,
 * code_version; one group per band (/u ... /z) with datasets mag_lo, mag_hi,
 * mag_centre, count, mu_sigma_mag, sigma_sigma_mag and attributes nmgy_min,
 * nmgy_max, mag_min, mag_max.  Load: SF_EIO if unreadable, SF_EFORMAT for a
 * wrong format or version, inconsistent or unsorted tables. */
sf_status sf_noise_save(const sf_noise *nm, const char *path);
sf_status sf_noise_load(const char *path, sf_noise **out);

/* mu_sigma(m) and sigma_sigma(m) (mag) of band b (0..4) at AB magnitude m,
 * interpolated as described above.  No allocation; thread-safe.  For b out
 * of range or a non-finite m both outputs are NaN. */
void sf_noise_eval(const sf_noise *nm, int b, double mag, double *mu_sigma_mag, double *sigma_sigma_mag);

/* Draw sigma' ~ N(mu_sigma(m), sigma_sigma(m)) (mag) for band b at m,
 * redrawing while sigma' <= 0, at most max_tries draws in all (>= 1).  With
 * max_tries = 1 a non-positive draw is reported instead of redrawn, which is
 * the paper's choice (such rows are removed).  Returns SF_OK with
 * *sigma_mag > 0, or SF_ENOCONV (*sigma_mag = NaN, no message set: cheap in
 * hot loops) when every draw was <= 0; SF_EINVAL (message set) for a band out
 * of range or a non-finite m.  Uses gsl_ran_gaussian_ziggurat on r. */
sf_status sf_noise_draw(const sf_noise *nm, int b, double mag, gsl_rng *r, unsigned max_tries, double *sigma_mag);

/* 1 when every band's flux_nmgy[b] lies in [nmgy_min, nmgy_max] of band b
 * (the paper's "range of NSA photometry" cut), else 0.  flux_nmgy has 5
 * entries u..z. */
int sf_noise_flux_in_range(const sf_noise *nm, const double *flux_nmgy);

#ifdef __cplusplus
}
#endif
#endif
