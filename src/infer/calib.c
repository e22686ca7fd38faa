/*
 * Calibration diagnostics: SBC ranks, p-p curves, chi-square and KS tests
 * of uniformity, coverage, TARP.  See include/sedflow/calib.h.
 */
#include "sedflow/calib.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_cdf.h>
#include <gsl/gsl_rng.h>
#include <omp.h>

#include "sedflow/rng.h"

/* Stream family for TARP reference points (ranks use stream = item index). */
#define STREAM_TARP (1ULL << 62)

static sf_status check_sizes(size_t n_test, size_t L, size_t nparam)
{
    if (n_test < 1 || L < 1 || nparam < 1)
        return SF_ERROR(SF_EINVAL, "empty input: n_test = %zu, L = %zu, nparam = %zu", n_test, L, nparam);
    return SF_OK;
}

/* First NaN in truth/samples as (item, param), or 0 when none. */
static sf_status check_finite(const double *samples, const double *truth, size_t n_test, size_t L, size_t nparam,
                              size_t item0)
{
    for (size_t i = 0; i < n_test * nparam; i++)
        if (isnan(truth[i])) return SF_ERROR(SF_EINVAL, "truth of item %zu, parameter %zu is NaN", item0 + i / nparam,
                                           i % nparam);
    const size_t row = L * nparam;
    long bad = LONG_MAX; /* lowest bad item, whatever the threads */
#pragma omp parallel for schedule(static) reduction(min : bad)
    for (long i = 0; i < (long)n_test; i++) {
        const double *s = samples + (size_t)i * row;
        int nan = 0;
        for (size_t j = 0; j < row; j++) nan |= isnan(s[j]);
        if (nan && i < bad) bad = i;
    }
    if (bad != LONG_MAX) return SF_ERROR(SF_EINVAL, "posterior samples of item %zu contain NaN", item0 + (size_t)bad);
    return SF_OK;
}

sf_status sf_calib_ranks(const double *samples, const double *truth, size_t n_test, size_t L, size_t nparam,
                         uint64_t seed, size_t item0, long *rank, double *pit)
{
    if (!samples || !truth) return SF_ERROR(SF_EINVAL, "NULL argument");
    sf_status st = check_sizes(n_test, L, nparam);
    if (!st) st = check_finite(samples, truth, n_test, L, nparam, item0);
    if (st) return st;
    const int nthr = omp_get_max_threads();
    gsl_rng **rngs = calloc((size_t)nthr, sizeof *rngs);
    size_t *cnt = malloc((size_t)nthr * 2 * nparam * sizeof *cnt);
    int fail = !rngs || !cnt;
    for (int t = 0; t < nthr && !fail; t++) fail = !(rngs[t] = sf_rng_alloc(seed));
    if (fail) {
        if (rngs)
            for (int t = 0; t < nthr; t++) gsl_rng_free(rngs[t]);
        free(rngs);
        free(cnt);
        return SF_ERROR(SF_ENOMEM, "rank workspaces");
    }
#pragma omp parallel for schedule(dynamic, 4)
    for (long i = 0; i < (long)n_test; i++) {
        const int tid = omp_get_thread_num();
        size_t *lt = cnt + (size_t)tid * 2 * nparam, *eq = lt + nparam;
        memset(lt, 0, 2 * nparam * sizeof *lt);
        const double *t = truth + (size_t)i * nparam;
        const double *s = samples + (size_t)i * L * nparam;
        for (size_t l = 0; l < L; l++, s += nparam)
            for (size_t p = 0; p < nparam; p++) {
                lt[p] += s[p] < t[p];
                eq[p] += s[p] == t[p];
            }
        gsl_rng *r = rngs[tid];
        sf_rng_set_stream(r, seed, (uint64_t)item0 + (uint64_t)i);
        for (size_t p = 0; p < nparam; p++) {
            /* Always draw both variates so the stream layout is fixed. */
            long rk = (long)lt[p] + (long)gsl_rng_uniform_int(r, eq[p] + 1);
            double v = gsl_rng_uniform_pos(r);
            if (rank) rank[(size_t)i * nparam + p] = rk;
            if (pit) pit[(size_t)i * nparam + p] = ((double)rk + v) / (double)(L + 1);
        }
    }
    for (int t = 0; t < nthr; t++) gsl_rng_free(rngs[t]);
    free(rngs);
    free(cnt);
    return SF_OK;
}

size_t sf_calib_default_bins(size_t n_test, size_t L)
{
    size_t b = n_test / 10;
    if (b < 2) b = 2;
    if (b > 20) b = 20;
    if (b > L + 1) b = L + 1;
    return b;
}

sf_status sf_calib_rank_hist(const long *rank, size_t n_test, size_t stride, size_t L, size_t nbins,
                             size_t *counts)
{
    if (!rank || !counts) return SF_ERROR(SF_EINVAL, "NULL argument");
    if (nbins < 1 || nbins > L + 1) return SF_ERROR(SF_EINVAL, "nbins = %zu must be in 1..L+1 = %zu", nbins, L + 1);
    memset(counts, 0, nbins * sizeof *counts);
    for (size_t i = 0; i < n_test; i++) {
        long r = rank[i * stride];
        if (r < 0 || (size_t)r > L) return SF_ERROR(SF_EINVAL, "rank %ld of item %zu outside 0..%zu", r, i, L);
        counts[(size_t)r * nbins / (L + 1)]++;
    }
    return SF_OK;
}

sf_status sf_calib_chi2(const size_t *counts, size_t nbins, size_t L, double *chi2, size_t *dof, double *p)
{
    if (!counts) return SF_ERROR(SF_EINVAL, "NULL argument");
    if (nbins < 2 || nbins > L + 1) return SF_ERROR(SF_EINVAL, "nbins = %zu must be in 2..L+1 = %zu", nbins, L + 1);
    size_t n = 0;
    for (size_t b = 0; b < nbins; b++) n += counts[b];
    if (n == 0) return SF_ERROR(SF_EINVAL, "empty histogram");
    double x2 = 0;
    for (size_t b = 0; b < nbins; b++) {
        /* Ranks r with floor(r nbins / (L+1)) == b: r in [ceil(b (L+1)/nbins), ceil((b+1)(L+1)/nbins)). */
        size_t lo = (b * (L + 1) + nbins - 1) / nbins, hi = ((b + 1) * (L + 1) + nbins - 1) / nbins;
        double e = (double)n * (double)(hi - lo) / (double)(L + 1);
        double d = (double)counts[b] - e;
        x2 += d * d / e;
    }
    if (chi2) *chi2 = x2;
    if (dof) *dof = nbins - 1;
    if (p) *p = gsl_cdf_chisq_Q(x2, (double)(nbins - 1));
    return SF_OK;
}

double sf_calib_kolmogorov_q(double lambda)
{
    if (!(lambda > 0)) return 1.0;
    if (lambda < 0.2) return 1.0; /* 1 - Q < 1e-20 */
    double sum = 0, sign = 1;
    for (int k = 1; k <= 100; k++) {
        double term = exp(-2.0 * k * k * lambda * lambda);
        sum += sign * term;
        if (term < 1e-17 * fabs(sum)) break;
        sign = -sign;
    }
    double q = 2.0 * sum;
    return q < 0 ? 0 : q > 1 ? 1 : q;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

sf_status sf_calib_ks(const double *u, size_t n, size_t stride, double *D, double *p)
{
    if (!u || !D) return SF_ERROR(SF_EINVAL, "NULL argument");
    if (n < 1) return SF_ERROR(SF_EINVAL, "KS test of an empty sample");
    double *v = malloc(n * sizeof *v);
    if (!v) return SF_ERROR(SF_ENOMEM, "KS copy of %zu values", n);
    for (size_t i = 0; i < n; i++) {
        v[i] = u[i * stride];
        if (isnan(v[i])) {
            free(v);
            return SF_ERROR(SF_EINVAL, "value %zu is NaN", i);
        }
    }
    qsort(v, n, sizeof *v, cmp_double);
    double d = 0;
    for (size_t i = 0; i < n; i++) {
        double x = v[i] < 0 ? 0 : v[i] > 1 ? 1 : v[i];
        double dp = (double)(i + 1) / (double)n - x, dm = x - (double)i / (double)n;
        if (dp > d) d = dp;
        if (dm > d) d = dm;
    }
    free(v);
    *D = d;
    if (p) {
        double sn = sqrt((double)n);
        *p = sf_calib_kolmogorov_q((sn + 0.12 + 0.11 / sn) * d);
    }
    return SF_OK;
}

sf_status sf_calib_pp_curve(const double *pit, size_t n_test, size_t stride, size_t nlev, const double *level,
                            double *ecdf)
{
    if (!pit || !level || !ecdf) return SF_ERROR(SF_EINVAL, "NULL argument");
    if (n_test < 1) return SF_ERROR(SF_EINVAL, "no test items");
    for (size_t g = 0; g < nlev; g++) {
        size_t c = 0;
        for (size_t i = 0; i < n_test; i++) c += pit[i * stride] <= level[g];
        ecdf[g] = (double)c / (double)n_test;
    }
    return SF_OK;
}

sf_status sf_calib_coverage(const double *pit, size_t n_test, size_t stride, size_t nlev, const double *level,
                            double *cov)
{
    if (!pit || !level || !cov) return SF_ERROR(SF_EINVAL, "NULL argument");
    if (n_test < 1) return SF_ERROR(SF_EINVAL, "no test items");
    for (size_t g = 0; g < nlev; g++) {
        if (!(level[g] > 0 && level[g] < 1))
            return SF_ERROR(SF_EINVAL, "credibility level %g outside (0, 1)", level[g]);
        size_t c = 0;
        for (size_t i = 0; i < n_test; i++) c += fabs(2.0 * pit[i * stride] - 1.0) < level[g];
        cov[g] = (double)c / (double)n_test;
    }
    return SF_OK;
}

void sf_calib_levels(double level[SF_CALIB_NLEV])
{
    for (int g = 0; g < SF_CALIB_NLEV; g++) level[g] = 0.05 * (g + 1);
}

sf_status sf_calib_tarp(const double *samples, const double *truth, size_t n_test, size_t L, size_t nparam,
                        uint64_t seed, size_t nlev, const double *level, double *ecp, double *f)
{
    if (!samples || !truth || !level || !ecp) return SF_ERROR(SF_EINVAL, "NULL argument");
    sf_status st = check_sizes(n_test, L, nparam);
    if (!st) st = check_finite(samples, truth, n_test, L, nparam, 0);
    if (st) return st;
    double *lo = malloc(2 * nparam * sizeof *lo), *fi = malloc(n_test * sizeof *fi);
    const int nthr = omp_get_max_threads();
    gsl_rng **rngs = calloc((size_t)nthr, sizeof *rngs);
    double *ref = malloc((size_t)nthr * nparam * sizeof *ref);
    int fail = !lo || !fi || !rngs || !ref;
    for (int t = 0; t < nthr && !fail; t++) fail = !(rngs[t] = sf_rng_alloc(seed));
    if (fail) {
        st = SF_ERROR(SF_ENOMEM, "TARP workspaces");
        goto done;
    }
    double *scale = lo + nparam;
    for (size_t p = 0; p < nparam; p++) {
        double a = INFINITY, b = -INFINITY;
        for (size_t i = 0; i < n_test; i++) {
            double v = truth[i * nparam + p];
            a = v < a ? v : a;
            b = v > b ? v : b;
        }
        lo[p] = a;
        scale[p] = b > a ? 1.0 / (b - a) : 1.0;
    }
#pragma omp parallel for schedule(dynamic, 4)
    for (long i = 0; i < (long)n_test; i++) {
        const int tid = omp_get_thread_num();
        double *rf = ref + (size_t)tid * nparam;
        gsl_rng *r = rngs[tid];
        sf_rng_set_stream(r, seed, STREAM_TARP + (uint64_t)i);
        for (size_t p = 0; p < nparam; p++) rf[p] = lo[p] + gsl_rng_uniform(r) / scale[p];
        const double *t = truth + (size_t)i * nparam;
        double dt = 0;
        for (size_t p = 0; p < nparam; p++) {
            double z = (t[p] - rf[p]) * scale[p];
            dt += z * z;
        }
        const double *s = samples + (size_t)i * L * nparam;
        size_t c = 0;
        for (size_t l = 0; l < L; l++, s += nparam) {
            double ds = 0;
            for (size_t p = 0; p < nparam; p++) {
                double z = (s[p] - rf[p]) * scale[p];
                ds += z * z;
            }
            c += ds < dt;
        }
        fi[i] = (double)c / (double)L;
    }
    for (size_t g = 0; g < nlev; g++) {
        size_t c = 0;
        for (size_t i = 0; i < n_test; i++) c += fi[i] < level[g];
        ecp[g] = (double)c / (double)n_test;
    }
    if (f) memcpy(f, fi, n_test * sizeof *fi);
done:
    if (rngs)
        for (int t = 0; t < nthr; t++) gsl_rng_free(rngs[t]);
    free(rngs);
    free(ref);
    free(lo);
    free(fi);
    return st;
}

sf_status sf_calib_summary(const long *rank, const double *pit, size_t n_test, size_t L, size_t nparam,
                           size_t nbins, sf_calib_stats *stats)
{
    if (!rank || !pit || !stats) return SF_ERROR(SF_EINVAL, "NULL argument");
    sf_status st = check_sizes(n_test, L, nparam);
    if (st) return st;
    if (nbins == 0) nbins = sf_calib_default_bins(n_test, L);
    size_t *counts = malloc(nbins * sizeof *counts);
    if (!counts) return SF_ERROR(SF_ENOMEM, "histogram");
    const double l68 = 0.682689492137086;
    for (size_t p = 0; p < nparam && !st; p++) {
        sf_calib_stats *s = stats + p;
        st = sf_calib_rank_hist(rank + p, n_test, nparam, L, nbins, counts);
        if (!st) st = sf_calib_chi2(counts, nbins, L, &s->chi2, &s->chi2_dof, &s->chi2_p);
        if (!st) st = sf_calib_ks(pit + p, n_test, nparam, &s->pp_maxdev, &s->ks_p);
        if (!st) st = sf_calib_coverage(pit + p, n_test, nparam, 1, &l68, &s->cov68);
        if (st) break;
        double m = 0;
        size_t tails = 0;
        for (size_t i = 0; i < n_test; i++) {
            double u = pit[i * nparam + p];
            m += u;
            tails += u < 0.05 || u > 0.95;
        }
        s->mean_pit = m / (double)n_test;
        s->tails = (double)tails / (double)n_test;
    }
    free(counts);
    return st;
}
