/*
 * One-dimensional comparison of two posterior sample sets (ANPE vs MCMC,
 * issue 6 "compare"): medians, widths, Wasserstein-1, two-sample KS.
 * See include/sedflow/calib.h.
 */
#include "sedflow/calib.h"

#include <math.h>
#include <stdlib.h>

static int cmp_double(const void *x, const void *y)
{
    double u = *(const double *)x, v = *(const double *)y;
    return (u > v) - (u < v);
}

/* Sorted copy of a column; NULL on NaN (sets *nan) or no memory. */
static double *sorted_copy(const double *a, size_t n, size_t stride, int *nan)
{
    double *v = malloc(n * sizeof *v);
    if (!v) return NULL;
    for (size_t i = 0; i < n; i++) {
        v[i] = a[i * stride];
        if (isnan(v[i])) {
            *nan = 1;
            free(v);
            return NULL;
        }
    }
    qsort(v, n, sizeof *v, cmp_double);
    return v;
}

/* Percentile q in [0, 1] of sorted v[n], linear interpolation (numpy default). */
static double pct(const double *v, size_t n, double q)
{
    double h = q * (double)(n - 1);
    size_t i = (size_t)floor(h);
    if (i >= n - 1) return v[n - 1];
    return v[i] + (h - (double)i) * (v[i + 1] - v[i]);
}

static void mean_sd(const double *v, size_t n, double *sd)
{
    double m = 0, s = 0;
    for (size_t i = 0; i < n; i++) m += v[i];
    m /= (double)n;
    for (size_t i = 0; i < n; i++) s += (v[i] - m) * (v[i] - m);
    *sd = sqrt(s / (double)(n - 1));
}

sf_status sf_calib_compare(const double *a, size_t na, size_t stride_a, const double *b, size_t nb, size_t stride_b,
                           sf_calib_compare_1d *out)
{
    if (!a || !b || !out) return SF_ERROR(SF_EINVAL, "NULL argument");
    if (na < 2 || nb < 2) return SF_ERROR(SF_EINVAL, "need >= 2 samples each (got %zu and %zu)", na, nb);
    int nan = 0;
    double *x = sorted_copy(a, na, stride_a, &nan), *y = x ? sorted_copy(b, nb, stride_b, &nan) : NULL;
    if (!x || !y) {
        free(x);
        free(y);
        return nan ? SF_ERROR(SF_EINVAL, "NaN sample") : SF_ERROR(SF_ENOMEM, "sorted copies");
    }
    sf_calib_compare_1d r;
    r.median_a = pct(x, na, 0.5);
    r.median_b = pct(y, nb, 0.5);
    mean_sd(x, na, &r.sd_a);
    mean_sd(y, nb, &r.sd_b);
    r.width_a = pct(x, na, 0.841344746) - pct(x, na, 0.158655254);
    r.width_b = pct(y, nb, 0.841344746) - pct(y, nb, 0.158655254);
    r.dmedian_sigma = r.sd_b > 0 ? (r.median_a - r.median_b) / r.sd_b : NAN;
    r.width_ratio = r.width_b > 0 ? r.width_a / r.width_b : NAN;
    /* Merge: W1 = integral |F_a - F_b| dx, KS = sup |F_a - F_b|. */
    size_t i = 0, j = 0;
    double w1 = 0, d = 0, prev = fmin(x[0], y[0]);
    while (i < na || j < nb) {
        double t = (j >= nb || (i < na && x[i] <= y[j])) ? x[i] : y[j];
        double fa = (double)i / (double)na, fb = (double)j / (double)nb;
        w1 += fabs(fa - fb) * (t - prev);
        prev = t;
        while (i < na && x[i] == t) i++;
        while (j < nb && y[j] == t) j++;
        double diff = fabs((double)i / (double)na - (double)j / (double)nb);
        if (diff > d) d = diff;
    }
    r.w1 = w1;
    r.w1_sigma = r.sd_b > 0 ? w1 / r.sd_b : NAN;
    r.ks_d = d;
    double ne = (double)na * (double)nb / (double)(na + nb), sn = sqrt(ne);
    r.ks_p = sf_calib_kolmogorov_q((sn + 0.12 + 0.11 / sn) * d);
    free(x);
    free(y);
    *out = r;
    return SF_OK;
}
