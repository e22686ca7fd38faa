/* Two-sample comparison of posteriors (src/infer/calib_compare.c). */
#include <math.h>
#include <stdlib.h>

#include <gsl/gsl_cdf.h>
#include <gsl/gsl_randist.h>

#include "sedflow/calib.h"
#include "sedflow/rng.h"
#include "testutil.h"

int main(void)
{
    sf_calib_compare_1d c;
    /* By hand: a = {0, 1}, b = {0.5, 1.5}: W1 = 0.5, KS D = 0.5, medians 0.5 and 1. */
    const double a2[2] = {1, 0}, b2[2] = {0.5, 1.5};
    CHECK(sf_calib_compare(a2, 2, 1, b2, 2, 1, &c) == SF_OK, "compare runs");
    CHECK_ABS(c.w1, 0.5, 1e-15, "W1 by hand");
    CHECK_ABS(c.ks_d, 0.5, 1e-15, "KS D by hand");
    CHECK_ABS(c.median_a, 0.5, 1e-15, "median of {0, 1}");
    CHECK_ABS(c.median_b, 1.0, 1e-15, "median of {0.5, 1.5}");
    /* Strided column (second of two parameters), numpy-style percentiles. */
    const double a4[8] = {9, 4, 9, 1, 9, 3, 9, 2};
    sf_calib_compare(a4 + 1, 4, 2, b2, 2, 1, &c);
    CHECK_ABS(c.median_a, 2.5, 1e-15, "median of {4, 1, 3, 2} by stride 2");
    CHECK_ABS(c.sd_a, sqrt(5.0 / 3.0), 1e-14, "sd");

    /* Gaussians: shift and scale give known W1 and KS D. */
    const size_t n = 20000;
    double *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y), *z = malloc(n * sizeof *z);
    gsl_rng *r = sf_rng_alloc(3);
    for (size_t i = 0; i < n; i++) {
        double g = gsl_ran_gaussian(r, 1.0);
        x[i] = g;
        y[i] = gsl_ran_gaussian(r, 1.0);
        z[i] = gsl_ran_gaussian(r, 1.0);
    }
    gsl_rng_free(r);
    sf_calib_compare(x, n, 1, y, n, 1, &c);
    CHECK(fabs(c.dmedian_sigma) < 0.05 && fabs(c.width_ratio - 1) < 0.05 && c.w1 < 0.05 && c.ks_p > 0.01,
          "same distribution: dmedian %.3f sd, width ratio %.3f, W1 %.3f, KS p %.3f", c.dmedian_sigma, c.width_ratio,
          c.w1, c.ks_p);
    for (size_t i = 0; i < n; i++) z[i] = 0.5 + y[i];
    sf_calib_compare(z, n, 1, x, n, 1, &c);
    CHECK_ABS(c.dmedian_sigma, 0.5, 0.05, "shift 0.5: median offset in sd of b");
    CHECK_ABS(c.w1, 0.5, 0.03, "shift 0.5: W1 = shift");
    CHECK_ABS(c.ks_d, 2 * gsl_cdf_ugaussian_P(0.25) - 1, 0.02, "shift 0.5: KS D = 2 Phi(0.25) - 1");
    CHECK(c.ks_p < 1e-10, "shift detected: KS p %.2g", c.ks_p);
    for (size_t i = 0; i < n; i++) z[i] = 2 * y[i];
    sf_calib_compare(z, n, 1, x, n, 1, &c);
    CHECK_ABS(c.width_ratio, 2.0, 0.06, "scale 2: width ratio");
    CHECK_ABS(c.w1, sqrt(2 / 3.14159265358979323846), 0.04, "scale 2: W1 = |s1 - s2| E|Z|");

    double bad[3] = {0, NAN, 1};
    CHECK(sf_calib_compare(bad, 3, 1, x, n, 1, &c) == SF_EINVAL, "NaN rejected");
    CHECK(sf_calib_compare(x, 1, 1, y, n, 1, &c) == SF_EINVAL, "1 sample rejected");
    free(x);
    free(y);
    free(z);
    return tu_finish("test_calib_compare");
}
