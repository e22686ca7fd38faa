/* MCMC diagnostics (src/mcmc/diagnostics.c): autocorrelation time of AR(1)
 * chains with known tau, the FFT against a direct sum, split-R-hat. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_randist.h>

#include "sedflow/mcmc.h"
#include "sedflow/rng.h"
#include "testutil.h"

/* AR(1) chains x_t = phi x_{t-1} + sqrt(1 - phi^2) e_t, stationary start;
 * parameter d has phi[d]; integrated autocorrelation time (1+phi)/(1-phi). */
static double *ar1(size_t nsteps, size_t nw, size_t nd, const double *phi, uint64_t seed)
{
    double *x = malloc(nsteps * nw * nd * sizeof *x);
    gsl_rng *r = sf_rng_alloc(seed);
    for (size_t k = 0; k < nw; k++)
        for (size_t d = 0; d < nd; d++) {
            double v = gsl_ran_gaussian_ziggurat(r, 1.0), s = sqrt(1 - phi[d] * phi[d]);
            for (size_t t = 0; t < nsteps; t++) {
                x[(t * nw + k) * nd + d] = v;
                v = phi[d] * v + s * gsl_ran_gaussian_ziggurat(r, 1.0);
            }
        }
    gsl_rng_free(r);
    return x;
}

/* Direct O(n^2) version of the same estimator, for one parameter. */
static double tau_direct(const double *x, size_t n, size_t nw, size_t nd, size_t d, double c)
{
    double *f = calloc(n, sizeof *f);
    for (size_t k = 0; k < nw; k++) {
        double m = 0;
        for (size_t t = 0; t < n; t++) m += x[(t * nw + k) * nd + d];
        m /= (double)n;
        double c0 = 0;
        for (size_t t = 0; t < n; t++) c0 += pow(x[(t * nw + k) * nd + d] - m, 2);
        for (size_t l = 0; l < n; l++) {
            double s = 0;
            for (size_t t = 0; t + l < n; t++) s += (x[(t * nw + k) * nd + d] - m) * (x[((t + l) * nw + k) * nd + d] - m);
            f[l] += s / c0 / (double)nw;
        }
    }
    double cum = 0, tau = 0;
    for (size_t M = 0; M < n; M++) {
        cum += f[M];
        tau = 2 * cum - 1;
        if ((double)M >= c * tau) break;
    }
    free(f);
    return tau;
}

int main(void)
{
    const int quick = getenv("SEDFLOW_TEST_QUICK") != NULL;
    const double phi[3] = {0.0, 0.5, 0.9};
    const size_t nw = 32, n = quick ? 5000 : 20000;
    double *x = ar1(n, nw, 3, phi, 1);
    double tau[3], rhat[3];
    int rel = -1;
    CHECK(sf_mcmc_autocorr_time(x, n, nw, 3, 5.0, tau, &rel) == SF_OK, "autocorr runs");
    for (int d = 0; d < 3; d++) {
        double exact = (1 + phi[d]) / (1 - phi[d]);
        /* Windowed estimator, window M ~ 5 tau: relative statistical error
         * ~ sqrt(2 (2M + 1) / (n nw)) (Sokal 1997); allow 4 of them. */
        double rel_err = sqrt(2.0 * (10.0 * exact + 1.0) / ((double)n * (double)nw));
        CHECK_REL(tau[d], exact, fmax(0.02, 4 * rel_err), "AR(1) tau");
    }
    CHECK(rel == 1, "long chain flagged reliable");
    CHECK(sf_mcmc_split_rhat(x, n, nw, 3, rhat) == SF_OK, "split-R-hat runs");
    for (int d = 0; d < 3; d++) CHECK(fabs(rhat[d] - 1) < 0.01, "stationary chains: R-hat %.5f ~ 1", rhat[d]);

    /* Short chain: 200 steps < 50 tau (= 950) -> unreliable. */
    double t2[3];
    sf_mcmc_autocorr_time(x, 200, nw, 3, 5.0, t2, &rel);
    CHECK(rel == 0, "200 steps with tau = 19 flagged unreliable (tau %.2f)", t2[2]);

    /* FFT path equals the direct sum (odd length, not a power of two). */
    const size_t ns = 777;
    double tf[3];
    static double xs[777 * 4 * 3];
    for (size_t t = 0; t < ns; t++)
        for (size_t k = 0; k < 4; k++)
            for (size_t d = 0; d < 3; d++) xs[(t * 4 + k) * 3 + d] = x[(t * nw + k) * 3 + d];
    sf_mcmc_autocorr_time(xs, ns, 4, 3, 5.0, tf, NULL);
    for (size_t d = 0; d < 3; d++)
        CHECK_REL(tf[d], tau_direct(xs, ns, 4, 3, d, 5.0), 1e-10, "FFT tau = direct tau");

    /* R-hat detects walkers stuck in different places, and a drift that all
     * walkers share (the point of splitting). */
    double *y = ar1(1000, 8, 1, phi, 2);
    for (size_t t = 0; t < 1000; t++)
        for (size_t k = 0; k < 8; k++) y[t * 8 + k] += (k % 2) ? 1.0 : -1.0;
    double r1;
    sf_mcmc_split_rhat(y, 1000, 8, 1, &r1);
    CHECK(r1 > 1.2, "separated walkers: R-hat %.3f > 1.2", r1);
    free(y);
    y = ar1(1000, 8, 1, phi, 3);
    for (size_t t = 0; t < 1000; t++)
        for (size_t k = 0; k < 8; k++) y[t * 8 + k] += 3.0 * (double)t / 1000.0;
    sf_mcmc_split_rhat(y, 1000, 8, 1, &r1);
    CHECK(r1 > 1.2, "common drift: split R-hat %.3f > 1.2", r1);
    free(y);

    /* Constant parameter: NAN and unreliable; bad sizes rejected. */
    double cst[40];
    for (int i = 0; i < 40; i++) cst[i] = 2.0;
    double tc, rc;
    sf_mcmc_autocorr_time(cst, 10, 4, 1, 5, &tc, &rel);
    sf_mcmc_split_rhat(cst, 10, 4, 1, &rc);
    CHECK(isnan(tc) && rel == 0 && isnan(rc), "constant parameter: tau and R-hat NaN");
    CHECK(sf_mcmc_autocorr_time(cst, 1, 4, 1, 5, &tc, NULL) == SF_EINVAL, "1-step chain rejected");
    CHECK(sf_mcmc_split_rhat(cst, 3, 4, 1, &rc) == SF_EINVAL, "3-step chain rejected for R-hat");

    /* sf_mcmc_test on a chain struct built from the AR(1) data. */
    sf_mcmc_chain *ch = NULL;
    sf_mcmc_chain_alloc(n, nw, 3, &ch);
    memcpy(ch->x, x, n * nw * 3 * sizeof *x);
    CHECK(sf_mcmc_test(ch, 50, 1.05, NULL, NULL) == SF_OK, "long AR(1) chain passes the test");
    ch->nsteps = 300;
    sf_status st = sf_mcmc_test(ch, 50, 1.05, NULL, NULL);
    CHECK(st == SF_ENOCONV && strstr(sf_last_error(), "autocorrelation"), "short chain fails the test: %s",
          sf_last_error());
    sf_mcmc_chain_free(ch);
    free(x);
    return tu_finish("test_mcmc_diag");
}
