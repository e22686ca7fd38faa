/*
 * sf_infer_quantiles (src/infer/infer_quantile.c) against quantiles of a
 * sorted copy (linear interpolation between order statistics, numpy's
 * default), bit for bit: random values, all equal, three distinct values,
 * ascending, descending, organ pipe, NaN and infinities mixed in, sizes
 * 0 .. 5000 (the insertion-sort rest and the partitions), q unordered, repeated,
 * outside [0, 1] or NaN (-> NaN), and more than 16 quantiles at once.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_rng.h>

#include "sedflow/infer.h"
#include "sedflow/rng.h"
#include "testutil.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The reference: finite values sorted, then interpolated. */
static double reference(const double *sorted, size_t m, double q)
{
    if (m == 0 || !(q >= 0 && q <= 1)) return NAN;
    double pos = q * (double)(m - 1);
    size_t k = (size_t)floor(pos);
    if (k > m - 1) k = m - 1;
    double frac = pos - (double)k;
    if (frac > 0 && k + 1 < m) return sorted[k] + frac * (sorted[k + 1] - sorted[k]);
    return sorted[k];
}

static double value(int kind, size_t i, size_t n, gsl_rng *r)
{
    switch (kind) {
    case 0: return gsl_rng_uniform(r) * 2 - 1;
    case 1: return 5.0;
    case 2: return (double)gsl_rng_uniform_int(r, 3);
    case 3: return (double)i;
    case 4: return -(double)i;
    case 5: return i < n / 2 ? (double)i : (double)(n - i);
    default: {
        unsigned long u = gsl_rng_uniform_int(r, 8);
        return u == 0 ? NAN : u == 1 ? INFINITY : u == 2 ? -INFINITY : (double)gsl_rng_uniform_int(r, 10);
    }
    }
}

int main(void)
{
    static const char *kinds[] = {"random", "all-equal", "three-valued", "ascending", "descending", "organ-pipe",
                                  "NaN/inf-mixed"};
    static const double qs[] = {0.84, 0.0, 0.16, 0.5, 1.0, 1.0 / 3, 0.999, 0.5, -0.1, 1.5, NAN};
    const size_t nq = sizeof qs / sizeof qs[0];
    gsl_rng *r = sf_rng_alloc(11);
    for (int kind = 0; kind < 7; kind++) {
        size_t bad = 0, cases = 0;
        for (size_t n = 0; n < 5000; n = n * 3 / 2 + 1) {
            double *v = malloc((n + 1) * sizeof(double)), *s = malloc((n + 1) * sizeof(double)), out[16];
            size_t m = 0;
            for (size_t i = 0; i < n; i++) {
                v[i] = value(kind, i, n, r);
                if (isfinite(v[i])) s[m++] = v[i];
            }
            qsort(s, m, sizeof(double), cmp_double);
            sf_infer_quantiles(v, n, qs, nq, out);
            for (size_t j = 0; j < nq; j++, cases++) {
                double want = reference(s, m, qs[j]);
                if (!(out[j] == want || (isnan(out[j]) && isnan(want)))) bad++;
            }
            free(v);
            free(s);
        }
        CHECK(bad == 0, "%s values: %zu quantiles equal the sorted reference (%zu differ)", kinds[kind], cases, bad);
    }
    /* more quantiles than one selection group, descending */
    {
        enum { N = 3001, NQ = 41 };
        double v[N], s[N], q[NQ], out[NQ];
        for (size_t i = 0; i < N; i++) s[i] = v[i] = gsl_rng_uniform(r);
        for (size_t j = 0; j < NQ; j++) q[j] = 1.0 - (double)j / (NQ - 1);
        qsort(s, N, sizeof(double), cmp_double);
        sf_infer_quantiles(v, N, q, NQ, out);
        size_t bad = 0;
        for (size_t j = 0; j < NQ; j++) bad += out[j] != reference(s, N, q[j]);
        CHECK(bad == 0, "%d descending quantiles at once equal the sorted reference (%zu differ)", NQ, bad);
        /* v is a reordering of the input */
        qsort(v, N, sizeof(double), cmp_double);
        CHECK(memcmp(v, s, sizeof v) == 0, "the values are only reordered");
    }
    gsl_rng_free(r);
    return tu_finish("test_infer_quantile");
}
