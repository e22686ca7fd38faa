/* The sampling-space transform and the priors (MODEL.md s1). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_cdf.h>

#include "sedflow/model.h"
#include "sedflow/prior.h"
#include "sedflow/rng.h"
#include "testutil.h"

static double max_abs_diff(const double *a, const double *b, int n)
{
    double w = 0;
    for (int i = 0; i < n; i++) w = fmax(w, fabs(a[i] - b[i]));
    return w;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(void)
{
    gsl_rng *r = sf_rng_alloc(7);
    int quick = getenv("SEDFLOW_TEST_QUICK") != NULL;
    const int n = quick ? 20000 : 200000;

    /* u -> theta -> u round trips over prior draws; betas sum to 1. */
    double worst_rt = 0, worst_sum = 0;
    int in_box = 1;
    for (int i = 0; i < n; i++) {
        double u[SF_NU], th[SF_NTHETA], u2[SF_NU];
        sf_prior_sample(SF_PRIOR_SEDFLOW, r, u);
        in_box &= sf_prior_in_box(u);
        sf_u_to_theta(u, th);
        sf_theta_to_u(th, u2);
        worst_sum = fmax(worst_sum, fabs(th[1] + th[2] + th[3] + th[4] - 1));
        /* u2, u3 are ill-conditioned where u1 or u1 u2 -> 0; compare betas there */
        if (u[1] > 1e-3 && u[1] * u[2] > 1e-3) worst_rt = fmax(worst_rt, max_abs_diff(u, u2, SF_NU));
    }
    CHECK(in_box, "%d SEDflow prior draws lie in the box", n);
    CHECK(worst_rt < 1e-12, "u -> theta -> u round trip: max error %.3g", worst_rt);
    CHECK(worst_sum < 1e-14, "betas sum to 1 (max deviation %.3g)", worst_sum);

    /* Dirichlet corners: beta = (1,0,0,0) and (0,0,0,1). */
    double th[SF_NTHETA] = {10, 1, 0, 0, 0, 0.1, 1, 1e-3, 1e-3, 0.5, 0.5, 0}, u[SF_NU], th2[SF_NTHETA];
    sf_theta_to_u(th, u);
    sf_u_to_theta(u, th2);
    CHECK(isfinite(u[2]) && isfinite(u[3]) && u[1] == 0.0, "corner beta=(1,0,0,0): u = (%g, %g, %g) finite", u[1], u[2], u[3]);
    CHECK(max_abs_diff(th, th2, SF_NTHETA) < 1e-12, "corner beta=(1,0,0,0) round trip");
    th[1] = 0;
    th[4] = 1;
    sf_theta_to_u(th, u);
    sf_u_to_theta(u, th2);
    CHECK(u[1] == 1.0 && u[2] == 1.0 && u[3] == 1.0, "corner beta=(0,0,0,1): u = (1, 1, 1)");
    CHECK(max_abs_diff(th, th2, SF_NTHETA) < 1e-12, "corner beta=(0,0,0,1) round trip");

    /* Prior log-density: uniform box value, -inf outside, NaN -> -inf. */
    double vol = 0;
    for (int k = 0; k < SF_NU; k++) vol += log(sf_prior_upper[k] - sf_prior_lower[k]);
    double uu[SF_NU];
    for (int k = 0; k < SF_NU; k++) uu[k] = 0.5 * (sf_prior_lower[k] + sf_prior_upper[k]);
    CHECK_ABS(sf_prior_logpdf(SF_PRIOR_SEDFLOW, uu), -vol, 1e-12, "log prior at the box centre");
    uu[0] = 12.6;
    CHECK(sf_prior_logpdf(SF_PRIOR_SEDFLOW, uu) == -INFINITY, "logmstar = 12.6 is outside the prior");
    uu[0] = NAN;
    CHECK(sf_prior_logpdf(SF_PRIOR_SEDFLOW, uu) == -INFINITY, "NaN is outside the prior");

    /* The true flat Dirichlet: beta1 ~ Beta(1,3) (mean 1/4) while SEDflow's
     * default gives beta1 uniform (mean 1/2).  KS test of beta1's CDF. */
    double ks_d = 0, ks_s = 0, mean_s = 0;
    const int m = quick ? 5000 : 20000;
    double *b1 = malloc(m * sizeof(double)), *b1s = malloc(m * sizeof(double));
    for (int i = 0; i < m; i++) {
        sf_prior_sample(SF_PRIOR_DIRICHLET, r, u);
        sf_u_to_theta(u, th);
        b1[i] = th[1];
        sf_prior_sample(SF_PRIOR_SEDFLOW, r, u);
        sf_u_to_theta(u, th);
        b1s[i] = th[1];
        mean_s += th[1] / m;
    }
    qsort(b1, m, sizeof(double), cmp_double);
    qsort(b1s, m, sizeof(double), cmp_double);
    for (int i = 0; i < m; i++) {
        double F = gsl_cdf_beta_P(b1[i], 1, 3);
        ks_d = fmax(ks_d, fmax(fabs(F - (double)i / m), fabs(F - (double)(i + 1) / m)));
        double Fs = gsl_cdf_beta_P(b1s[i], 1, 3);
        ks_s = fmax(ks_s, fmax(fabs(Fs - (double)i / m), fabs(Fs - (double)(i + 1) / m)));
    }
    double crit = 1.63 / sqrt(m); /* KS 1% critical value */
    CHECK(ks_d < crit, "Dirichlet prior: beta1 ~ Beta(1,3), KS D = %.4f < %.4f", ks_d, crit);
    CHECK(ks_s > 10 * crit, "SEDflow prior: beta1 is not Beta(1,3) (KS D = %.3f)", ks_s);
    CHECK_ABS(mean_s, 0.5, 5 * sqrt(1.0 / 12 / m), "SEDflow prior: beta1 mean 1/2");
    sf_prior_kind k;
    CHECK(sf_prior_parse("dirichlet", &k) == SF_OK && k == SF_PRIOR_DIRICHLET, "parse 'dirichlet'");
    CHECK(sf_prior_parse("flat", &k) == SF_EINVAL, "unknown prior name is an error");
    free(b1);
    free(b1s);
    gsl_rng_free(r);
    return tu_finish("test_prior");
}
