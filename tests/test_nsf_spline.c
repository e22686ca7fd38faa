/* Rational-quadratic spline (src/flow/nsf_spline.h): inverse(forward(x)) = x,
 * log dy/dx = log of the finite-difference slope, monotonicity, continuity
 * at the knots and at +-B (identity tails), identity when all raw
 * parameters are 0, and the analytic gradients with respect to every raw
 * parameter and the input vs central finite differences (double). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/fastmath.h"
#include "flow/nsf_spline.h"
#include "sedflow/rng.h"
#include "testutil.h"

#include <gsl/gsl_randist.h>

/* L = gy * y + gl * log dy/dx */
static double objective(int K, double B, const double *raw, double x, double gy, double gl)
{
    double ld, y = sf_rqs_forward(K, B, raw, x, &ld);
    return gy * y + gl * ld;
}

/* Distance of x to the nearest interior knot. */
static double knot_dist(int K, double B, const double *raw, double x)
{
    double p[SF_NSF_MAX_BINS], c[SF_NSF_MAX_BINS + 1], dmin = 1e300;
    sf_rqs_knots(K, B, raw, NULL, p, c);
    for (int j = 0; j <= K; j++) dmin = fmin(dmin, fabs(x - c[j]));
    return dmin;
}

static void check_spline(int K, double B, double scale, uint64_t seed)
{
    gsl_rng *r = sf_rng_alloc(seed);
    double raw[3 * SF_NSF_MAX_BINS];
    const int n = 3 * K - 1;
    for (int i = 0; i < n; i++) raw[i] = scale * gsl_ran_gaussian_ziggurat(r, 1.0);
    char tag[64];
    snprintf(tag, sizeof tag, "K=%d B=%g scale=%g", K, B, scale);

    /* round trip, monotonicity, log-det vs finite differences */
    double worst_rt = 0, worst_ld = 0, worst_ild = 0, prev = -1e300;
    int mono = 1;
    const int ng = 4001;
    for (int i = 0; i < ng; i++) {
        double x = -B - 1 + (2 * B + 2) * i / (ng - 1), ld, ild;
        double y = sf_rqs_forward(K, B, raw, x, &ld);
        double xb = sf_rqs_inverse(K, B, raw, y, &ild);
        worst_rt = fmax(worst_rt, fabs(xb - x));
        worst_ild = fmax(worst_ild, fabs(ild - ld));
        mono &= y > prev;
        prev = y;
        if (knot_dist(K, B, raw, x) > 1e-4) {
            double h = 1e-6, l1, l2;
            double fd = (sf_rqs_forward(K, B, raw, x + h, &l1) - sf_rqs_forward(K, B, raw, x - h, &l2)) / (2 * h);
            worst_ld = fmax(worst_ld, fabs(log(fd) - ld));
        }
    }
    CHECK(worst_rt < 1e-12 * (1 + B), "%s: inverse(forward(x)) = x (max err %.3g)", tag, worst_rt);
    CHECK(worst_ild < 1e-9, "%s: inverse log-det = forward log-det (max err %.3g)", tag, worst_ild);
    CHECK(worst_ld < 1e-6, "%s: log dy/dx vs finite-difference slope (max err %.3g)", tag, worst_ld);
    CHECK(mono, "%s: strictly increasing", tag);
    /* continuity at the interior knots and at +-B */
    double p[SF_NSF_MAX_BINS], c[SF_NSF_MAX_BINS + 1], jump = 0, ld1, ld2;
    sf_rqs_knots(K, B, raw, NULL, p, c);
    for (int j = 0; j <= K; j++) {
        double e = 1e-9 * (1 + B);
        double y1 = sf_rqs_forward(K, B, raw, c[j] - e, &ld1), y2 = sf_rqs_forward(K, B, raw, c[j] + e, &ld2);
        jump = fmax(jump, fabs(y2 - y1) / (2 * e)); /* difference quotient across the knot */
    }
    CHECK(jump < 2e3, "%s: y continuous at the knots and at +-B (max difference quotient %.3g; a jump gives > 1e6)", tag, jump);
    CHECK(fabs(sf_rqs_forward(K, B, raw, B, &ld1) - B) < 1e-12 && fabs(sf_rqs_forward(K, B, raw, -B, &ld2) + B) < 1e-12,
          "%s: spline maps -B -> -B and B -> B", tag);

    /* gradients vs central differences */
    double worst_g = 0, worst_x = 0;
    int tested = 0;
    for (int trial = 0; trial < 40; trial++) {
        double x = (2 * gsl_rng_uniform(r) - 1) * (trial < 36 ? B : 1.5 * B);
        if (knot_dist(K, B, raw, x) < 1e-3) continue;
        double gy = gsl_ran_gaussian_ziggurat(r, 1.0), gl = gsl_ran_gaussian_ziggurat(r, 1.0);
        double graw[3 * SF_NSF_MAX_BINS], gx, ld, ldf;
        double y = sf_rqs_forward_grad(K, B, raw, x, gy, gl, &ld, graw, &gx);
        double yf = sf_rqs_forward(K, B, raw, x, &ldf);
        if (y != yf || ld != ldf) worst_g = 1e300;
        double h = 1e-6;
        double fdx = (objective(K, B, raw, x + h, gy, gl) - objective(K, B, raw, x - h, gy, gl)) / (2 * h);
        worst_x = fmax(worst_x, fabs(gx - fdx) / (1e-6 * fabs(fdx) + 1e-7));
        for (int i = 0; i < n; i++) {
            double r0 = raw[i];
            raw[i] = r0 + h;
            double lp = objective(K, B, raw, x, gy, gl);
            raw[i] = r0 - h;
            double lm = objective(K, B, raw, x, gy, gl);
            raw[i] = r0;
            double fd = (lp - lm) / (2 * h);
            if (knot_dist(K, B, raw, x) < 1e-3) continue;
            worst_g = fmax(worst_g, fabs(graw[i] - fd) / (1e-6 * fabs(fd) + 1e-7));
        }
        tested++;
    }
    /* the flow's path: exponentials from the float sf_expf (relative error
     * < 2e-7) give the same spline within float-level error */
    {
        double ex[3 * SF_NSF_MAX_BINS], e1 = 0, e2 = 0, e3 = 0;
        for (int i = 0; i < n; i++) ex[i] = sf_expf((float)raw[i]);
        for (int i = 0; i < 200; i++) {
            double x = -B + 2 * B * (i + 0.5) / 200, l1, l2, g1[3 * SF_NSF_MAX_BINS], g2[3 * SF_NSF_MAX_BINS], gx1, gx2;
            double y1 = sf_rqs_forward(K, B, raw, x, &l1), y2 = sf_rqs_forward_ex(K, B, raw, ex, x, &l2);
            e1 = fmax(e1, fabs(y1 - y2) + fabs(l1 - l2));
            e2 = fmax(e2, fabs(sf_rqs_inverse(K, B, raw, x, &l1) - sf_rqs_inverse_ex(K, B, raw, ex, x, &l2)) + fabs(l1 - l2));
            sf_rqs_forward_grad(K, B, raw, x, 0.7, -0.3, &l1, g1, &gx1);
            sf_rqs_forward_grad_ex(K, B, raw, ex, x, 0.7, -0.3, &l2, g2, &gx2);
            double gm = fabs(gx1);
            for (int k = 0; k < n; k++) gm = fmax(gm, fabs(g1[k]));
            e3 = fmax(e3, fabs(gx1 - gx2) / (1 + gm));
            for (int k = 0; k < n; k++) e3 = fmax(e3, fabs(g1[k] - g2[k]) / (1 + gm));
        }
        CHECK(e1 < 1e-4 && e2 < 1e-4 && e3 < 1e-4, "%s: float-exponential path = double path within 1e-4 (fwd %.2g, inv %.2g, grad %.2g)", tag,
              e1, e2, e3);
    }
    CHECK(tested >= 20 && worst_x <= 1, "%s: d/dx vs finite differences (worst %.3g of tol, %d points)", tag, worst_x, tested);
    CHECK(tested >= 20 && worst_g <= 1, "%s: d/d(raw widths, heights, derivatives) vs finite differences (worst %.3g of tol)",
          tag, worst_g);
    gsl_rng_free(r);
}

int main(void)
{
    /* all raw parameters 0: the identity */
    double raw0[3 * 8] = {0}, worst = 0, ld;
    for (int i = 0; i <= 100; i++) {
        double x = -4 + 8.0 * i / 100, y = sf_rqs_forward(8, 3.0, raw0, x, &ld);
        worst = fmax(worst, fabs(y - x) + fabs(ld));
    }
    CHECK(worst < 1e-12, "raw = 0 gives the identity (max |y - x| + |ld| = %.3g)", worst);
    check_spline(1, 3.0, 1.0, 1);
    check_spline(2, 3.0, 1.0, 2);
    check_spline(5, 4.0, 1.5, 3);
    check_spline(8, 3.0, 1.0, 4);
    check_spline(8, 3.0, 3.0, 5); /* sharp: widths spread over orders of magnitude */
    check_spline(16, 5.0, 2.0, 6);
    return tu_finish("test_nsf_spline");
}
