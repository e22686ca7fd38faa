/*
 * sedflow/calib.h — calibration diagnostics of posterior samples against
 * known truths: SBC ranks (Talts et al. 2020, arXiv:1804.06788), p-p curves
 * (the paper's Fig. 3: CDF of the percentile score of the truth), tests of
 * rank uniformity (chi-square, Kolmogorov-Smirnov), expected coverage of
 * central credible intervals, and TARP coverage (Lemos et al. 2023,
 * ICML, arXiv:2302.03026).  Model-independent: plain arrays in, numbers out.
 *
 * Layouts (row-major):
 *   samples[n_test][L][nparam]  L posterior samples of each test item
 *   truth  [n_test][nparam]     the true parameters
 *   rank   [n_test][nparam]     SBC rank in 0..L
 *   pit    [n_test][nparam]     randomised percentile in (0, 1)
 * Functions of one parameter take a column (pointer to element 0 of that
 * parameter plus the stride between test items, e.g. pit + p, nparam).
 *
 * Rank and percentile (PIT).  rank = #{samples < truth} + U, U uniform on
 * {0, ..., #{samples == truth}} (random tie-breaking); for a calibrated
 * posterior and independent samples the rank is uniform on {0, ..., L}
 * (Talts et al. 2020, theorem 1).  The percentile score of the truth is
 * pit = (rank + v) / (L + 1), v uniform on (0, 1): it differs from the
 * fraction of samples below the truth by less than 1/(L+1) and is exactly
 * uniform on (0, 1) under calibration, so the KS test, p-p curve and
 * coverage below are exact for any L.  Central credible interval of level
 * alpha contains the truth  <=>  |2 pit - 1| < alpha  (up to 1/(L+1)).
 *
 * Randomness: test item i uses stream sf_rng_set_stream(r, seed, i) (TARP
 * references a separate stream family), so results do not depend on the
 * number of OpenMP threads.
 */
#ifndef SEDFLOW_CALIB_H
#define SEDFLOW_CALIB_H

#include <stddef.h>
#include <stdint.h>

#include "sedflow/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* SBC ranks and randomised percentiles of the truths.  rank or pit may be
 * NULL.  item0 is the global index of the first item: item i draws from
 * stream item0 + i, so a large set processed in chunks (item0 = 0, 100,
 * 200, ...) gives the same result as in one call.  Errors: SF_EINVAL (zero
 * sizes, L < 1, NaN in truth or samples: message names the item and
 * parameter), SF_ENOMEM.  Parallel over items. */
sf_status sf_calib_ranks(const double *samples, const double *truth, size_t n_test, size_t L, size_t nparam,
                         uint64_t seed, size_t item0, long *rank, double *pit);

/* Histogram of ranks 0..L of one parameter (column rank[i * stride]) in
 * nbins bins: rank r goes to bin floor(r * nbins / (L + 1)).  counts[nbins].
 * Errors: SF_EINVAL (nbins < 1 or > L + 1, rank out of range). */
sf_status sf_calib_rank_hist(const long *rank, size_t n_test, size_t stride, size_t L, size_t nbins,
                             size_t *counts);

/* Default number of histogram bins: min(20, L + 1, max(2, n_test / 10)). */
size_t sf_calib_default_bins(size_t n_test, size_t L);

/* Pearson chi-square test of rank uniformity from a histogram made by
 * sf_calib_rank_hist (expected count of bin b = n * (#ranks in b)/(L+1),
 * exact also for unequal bins).  *chi2, *dof = nbins - 1 and the p-value
 * *p = gsl_cdf_chisq_Q(chi2, dof).  Any output pointer may be NULL. */
sf_status sf_calib_chi2(const size_t *counts, size_t nbins, size_t L, double *chi2, size_t *dof, double *p);

/* One-sample Kolmogorov-Smirnov test of u (column u[i * stride], n >= 1)
 * against U(0, 1): D = sup |ECDF(u) - u| (= the maximum deviation of the p-p
 * curve from the diagonal) and its p-value from the asymptotic Kolmogorov
 * distribution with Stephens' (1970) finite-n correction
 * lambda = (sqrt(n) + 0.12 + 0.11/sqrt(n)) D (accurate to ~1% for n >= 5).
 * Allocates a sorted copy.  *p may be NULL. */
sf_status sf_calib_ks(const double *u, size_t n, size_t stride, double *D, double *p);

/* Kolmogorov survival function Q(lambda) = 2 sum_{k>=1} (-1)^(k-1) exp(-2 k^2 lambda^2). */
double sf_calib_kolmogorov_q(double lambda);

/* p-p curve: ecdf[g] = fraction of items with pit <= level[g], g < nlev
 * (column pit[i * stride]).  Diagonal = calibrated; too narrow posteriors
 * lie above the diagonal at small levels and below it at large levels (too
 * wide: the reverse); a biased posterior lies wholly above or below. */
sf_status sf_calib_pp_curve(const double *pit, size_t n_test, size_t stride, size_t nlev, const double *level,
                            double *ecdf);

/* Expected coverage of central credible intervals: cov[g] = fraction of
 * items whose truth lies in the central interval of credibility level[g]
 * (0 < level < 1), i.e. |2 pit - 1| < level[g].  Calibrated: cov = level;
 * too narrow posteriors: cov < level (over-confident). */
sf_status sf_calib_coverage(const double *pit, size_t n_test, size_t stride, size_t nlev, const double *level,
                            double *cov);

/* The standard credibility grid 0.05, 0.10, ..., 0.95 (19 levels). */
#define SF_CALIB_NLEV 19
void sf_calib_levels(double level[SF_CALIB_NLEV]);

/* TARP expected coverage probability (Lemos et al. 2023, alg. 2) over all
 * nparam dimensions jointly.  Each dimension is scaled to [0, 1] by the
 * range of the truths; for item i a reference point is drawn uniformly in
 * the unit box, f_i = fraction of samples closer (Euclidean) to the
 * reference than the truth is, and ecp[g] = fraction of items with
 * f_i < level[g].  A calibrated posterior gives ecp = level for any
 * reference distribution.  f[n_test] may be NULL.  Errors as sf_calib_ranks. */
sf_status sf_calib_tarp(const double *samples, const double *truth, size_t n_test, size_t L, size_t nparam,
                        uint64_t seed, size_t nlev, const double *level, double *ecp, double *f);

/* Per-parameter summary of a calibration run. */
typedef struct {
    double pp_maxdev; /* KS D: max |p-p curve - diagonal| */
    double ks_p;      /* KS p-value of pit uniformity */
    double chi2;      /* chi-square of the rank histogram */
    size_t chi2_dof;  /* nbins - 1 */
    double chi2_p;    /* its p-value */
    double cov68;     /* coverage of the central 68.27% interval (calibrated: 0.6827) */
    double mean_pit;  /* 0.5 when unbiased; > 0.5: posteriors below the truth */
    double tails;     /* fraction with pit < 0.05 or > 0.95 (0.1 expected;
                         larger: too narrow, U-shaped ranks; smaller: too wide) */
} sf_calib_stats;

/* Everything above for each parameter: stats[nparam].  rank and pit are
 * outputs of sf_calib_ranks for the same n_test, L, nparam; nbins = 0 means
 * sf_calib_default_bins.  Errors: SF_EINVAL, SF_ENOMEM. */
sf_status sf_calib_summary(const long *rank, const double *pit, size_t n_test, size_t L, size_t nparam,
                           size_t nbins, sf_calib_stats *stats);

/* ---- Comparing two posteriors of one quantity (src/infer/calib_compare.c),
 * e.g. ANPE (a) against MCMC (b) for one galaxy. ------------------------- */

typedef struct {
    double median_a, median_b;
    double sd_a, sd_b;         /* standard deviations (1/(n-1)) */
    double width_a, width_b;   /* 16th-84th percentile widths */
    double dmedian_sigma;      /* (median_a - median_b) / sd_b */
    double width_ratio;        /* width_a / width_b */
    double w1;                 /* Wasserstein-1 distance, in the units of the samples */
    double w1_sigma;           /* w1 / sd_b */
    double ks_d;               /* two-sample KS statistic sup |F_a - F_b| */
    double ks_p;               /* its asymptotic p-value, n_eff = na nb/(na + nb)
                                  (too small for autocorrelated MCMC samples:
                                  thin them by ~tau first, or read ks_d only) */
} sf_calib_compare_1d;

/* Compare samples a (column a[i * stride_a], i < na) with b (column
 * b[j * stride_b], j < nb); na, nb >= 2.  Percentiles by linear
 * interpolation of the sorted samples (numpy's default).  Allocates sorted
 * copies.  Errors: SF_EINVAL (sizes, NaN; sd_b = 0 gives NAN ratios, not an
 * error), SF_ENOMEM. */
sf_status sf_calib_compare(const double *a, size_t na, size_t stride_a, const double *b, size_t nb, size_t stride_b,
                           sf_calib_compare_1d *out);

#ifdef __cplusplus
}
#endif
#endif
