/* Calibration diagnostics (src/infer/calib.c) on a conjugate Gaussian model
 * whose exact posterior is known: exact posteriors pass, too narrow / too
 * wide / biased ones fail in the expected way. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_randist.h>
#include <omp.h>

#include "sedflow/calib.h"
#include "sedflow/rng.h"
#include "testutil.h"

/* theta_p ~ N(0, 1), x_p | theta_p ~ N(theta_p, SIG_p^2), two parameters.
 * Exact posterior N(x / (1 + s^2), s^2 / (1 + s^2)).  The "posterior" we
 * sample is that with its sd multiplied by `width` and its mean shifted by
 * `shift` posterior sds. */
static const double SIG[2] = {0.5, 2.0};

static void make(size_t n, size_t L, double width, double shift, uint64_t seed, double *truth, double *samples)
{
    gsl_rng *r = sf_rng_alloc(seed);
    for (size_t i = 0; i < n; i++) {
        sf_rng_set_stream(r, seed, i);
        for (int p = 0; p < 2; p++) {
            double th = gsl_ran_gaussian(r, 1.0);
            double x = th + gsl_ran_gaussian(r, SIG[p]);
            double s2 = SIG[p] * SIG[p], m = x / (1 + s2), sd = sqrt(s2 / (1 + s2));
            truth[i * 2 + p] = th;
            for (size_t l = 0; l < L; l++)
                samples[(i * L + l) * 2 + p] = m + shift * sd + width * sd * gsl_ran_gaussian(r, 1.0);
        }
    }
    gsl_rng_free(r);
}

typedef struct {
    sf_calib_stats st[2];
    double cov[2][SF_CALIB_NLEV], pp[2][SF_CALIB_NLEV], ecp[SF_CALIB_NLEV];
    size_t hist[2][20];
    long *rank;
    double *pit;
} result;

static void analyse(size_t n, size_t L, double width, double shift, result *res)
{
    double *truth = malloc(n * 2 * sizeof *truth), *samples = malloc(n * L * 2 * sizeof *samples);
    res->rank = malloc(n * 2 * sizeof *res->rank);
    res->pit = malloc(n * 2 * sizeof *res->pit);
    make(n, L, width, shift, 100, truth, samples);
    double lev[SF_CALIB_NLEV];
    sf_calib_levels(lev);
    CHECK(sf_calib_ranks(samples, truth, n, L, 2, 7, 0, res->rank, res->pit) == SF_OK, "ranks");
    CHECK(sf_calib_summary(res->rank, res->pit, n, L, 2, 20, res->st) == SF_OK, "summary");
    for (int p = 0; p < 2; p++) {
        sf_calib_coverage(res->pit + p, n, 2, SF_CALIB_NLEV, lev, res->cov[p]);
        sf_calib_pp_curve(res->pit + p, n, 2, SF_CALIB_NLEV, lev, res->pp[p]);
        sf_calib_rank_hist(res->rank + p, n, 2, L, 20, res->hist[p]);
    }
    CHECK(sf_calib_tarp(samples, truth, n, L, 2, 9, SF_CALIB_NLEV, lev, res->ecp, NULL) == SF_OK, "tarp");
    free(truth);
    free(samples);
}

static void release(result *r)
{
    free(r->rank);
    free(r->pit);
}

int main(void)
{
    const int quick = getenv("SEDFLOW_TEST_QUICK") != NULL;
    const size_t n = 1000, L = quick ? 99 : 199;
    const double sn = sqrt((double)n);
    double lev[SF_CALIB_NLEV];
    sf_calib_levels(lev);
    CHECK_ABS(lev[0], 0.05, 1e-15, "first level");
    CHECK_ABS(lev[18], 0.95, 1e-12, "last level");

    /* Kolmogorov distribution: known values. */
    CHECK_ABS(sf_calib_kolmogorov_q(1.0), 0.26999967, 1e-7, "Q_KS(1.0)");
    CHECK_ABS(sf_calib_kolmogorov_q(1.36), 0.04946, 1e-4, "Q_KS(1.36)");
    CHECK_ABS(sf_calib_kolmogorov_q(0.5), 0.96394524, 1e-7, "Q_KS(0.5)");
    CHECK(sf_calib_kolmogorov_q(0.0) == 1.0 && sf_calib_kolmogorov_q(10) < 1e-80, "Q_KS limits");

    /* KS statistic by hand: u = {0.1, 0.2, 0.9}: D = max(1/3-0.1, 2/3-0.2, 0.9-2/3, 1-0.9, ...) = 0.4667. */
    const double u3[3] = {0.9, 0.1, 0.2};
    double D, p;
    sf_calib_ks(u3, 3, 1, &D, &p);
    CHECK_ABS(D, 2.0 / 3 - 0.2, 1e-14, "KS D by hand");

    /* Chi-square with unequal bins: one of each rank 0..9 in 3 bins (4,3,3) -> 0. */
    long rk[10];
    for (int i = 0; i < 10; i++) rk[i] = i;
    size_t h3[3];
    sf_calib_rank_hist(rk, 10, 1, 9, 3, h3);
    CHECK(h3[0] == 4 && h3[1] == 3 && h3[2] == 3, "bins of ranks 0..9: %zu %zu %zu", h3[0], h3[1], h3[2]);
    double x2;
    size_t dof;
    sf_calib_chi2(h3, 3, 9, &x2, &dof, &p);
    CHECK(fabs(x2) < 1e-12 && dof == 2 && fabs(p - 1) < 1e-12, "uniform ranks: chi2 = %g, p = %g", x2, p);

    /* Exact posterior: calibrated. */
    result ex;
    analyse(n, L, 1.0, 0.0, &ex);
    for (int q = 0; q < 2; q++) {
        const sf_calib_stats *s = ex.st + q;
        CHECK(s->chi2_p > 0.01, "exact posterior, param %d: chi2 = %.1f (dof %zu), p = %.3f > 0.01", q, s->chi2,
              s->chi2_dof, s->chi2_p);
        CHECK(s->ks_p > 0.01, "exact posterior, param %d: KS D = %.4f, p = %.3f > 0.01", q, s->pp_maxdev, s->ks_p);
        CHECK(s->pp_maxdev < 1.63 / sn, "exact: p-p max deviation %.4f < 1%% critical value", s->pp_maxdev);
        CHECK_ABS(s->cov68, 0.6827, 4 * sqrt(0.68 * 0.32 / n), "exact: central-68% coverage");
        CHECK_ABS(s->mean_pit, 0.5, 4 * sqrt(1.0 / 12 / n), "exact: mean percentile");
        double worst = 0;
        for (int g = 0; g < SF_CALIB_NLEV; g++) {
            double e = fabs(ex.cov[q][g] - lev[g]) / sqrt(lev[g] * (1 - lev[g]) / n);
            worst = e > worst ? e : worst;
        }
        CHECK(worst < 4, "exact: coverage within 4 sigma of the level at all 19 levels (worst %.2f)", worst);
    }
    double worst = 0;
    for (int g = 0; g < SF_CALIB_NLEV; g++)
        worst = fmax(worst, fabs(ex.ecp[g] - lev[g]) / sqrt(lev[g] * (1 - lev[g]) / n));
    CHECK(worst < 4, "exact: TARP ECP within 4 sigma of the diagonal (worst %.2f)", worst);
    /* p-p curve: ECDF(level) close to level. */
    CHECK(fabs(ex.pp[0][9] - 0.5) < 4 * sqrt(0.25 / n), "exact: p-p at 0.5 = %.3f", ex.pp[0][9]);

    /* Too narrow (sd x 0.5): U-shaped ranks, under-coverage; fails. */
    result nw;
    analyse(n, L, 0.5, 0.0, &nw);
    for (int q = 0; q < 2; q++) {
        const sf_calib_stats *s = nw.st + q;
        CHECK(s->chi2_p < 1e-6 && s->ks_p < 1e-6, "narrow, param %d fails: chi2 p = %.2g, KS p = %.2g", q, s->chi2_p,
              s->ks_p);
        double e = (double)n / 20;
        CHECK(nw.hist[q][0] > 2 * e && nw.hist[q][19] > 2 * e && nw.hist[q][10] < e,
              "narrow: U shape (first %zu, middle %zu, last %zu; uniform %.0f)", nw.hist[q][0], nw.hist[q][10],
              nw.hist[q][19], e);
        CHECK(s->tails > 0.3 && s->cov68 < 0.5, "narrow: tails %.3f > 0.3, cov68 %.3f < 0.5", s->tails, s->cov68);
        CHECK(nw.pp[q][1] > lev[1] + 0.1 && nw.pp[q][17] < lev[17] - 0.1, "narrow: p-p above diagonal at 0.1, below at 0.9");
    }
    /* TARP is less sensitive than the marginal tests, but 4 sigma here. */
    CHECK(nw.ecp[9] < 0.5 - 4 * sqrt(0.25 / n), "narrow: TARP ECP(0.5) = %.3f < 0.5 - 4 sigma (over-confident)",
          nw.ecp[9]);

    /* Too wide (sd x 2): cap-shaped ranks, over-coverage. */
    result wd;
    analyse(n, L, 2.0, 0.0, &wd);
    CHECK(wd.st[0].chi2_p < 1e-6 && wd.st[0].tails < 0.03 && wd.st[0].cov68 > 0.9,
          "wide: fails, tails %.3f, cov68 %.3f", wd.st[0].tails, wd.st[0].cov68);

    /* Biased (mean + 0.5 posterior sd): asymmetric ranks; fails. */
    result bi;
    analyse(n, L, 1.0, 0.5, &bi);
    for (int q = 0; q < 2; q++) {
        const sf_calib_stats *s = bi.st + q;
        CHECK(s->chi2_p < 1e-6 && s->ks_p < 1e-6, "biased, param %d fails: chi2 p = %.2g, KS p = %.2g", q, s->chi2_p,
              s->ks_p);
        CHECK(s->mean_pit < 0.4, "biased upward: truths rank low (mean percentile %.3f)", s->mean_pit);
        CHECK(bi.hist[q][0] > bi.hist[q][19] * 2, "biased: asymmetric histogram (%zu vs %zu)", bi.hist[q][0],
              bi.hist[q][19]);
    }

    /* Thread-count independence of ranks. */
    {
        double *truth = malloc(200 * 2 * sizeof *truth), *samples = malloc(200 * 50 * 2 * sizeof *samples);
        make(200, 50, 1.0, 0.0, 3, truth, samples);
        long r1[400], r2[400];
        double p1[400], p2[400];
        int nt = omp_get_max_threads();
        omp_set_num_threads(1);
        sf_calib_ranks(samples, truth, 200, 50, 2, 5, 0, r1, p1);
        omp_set_num_threads(2);
        sf_calib_ranks(samples, truth, 200, 50, 2, 5, 0, r2, p2);
        omp_set_num_threads(nt);
        CHECK(!memcmp(r1, r2, sizeof r1) && !memcmp(p1, p2, sizeof p1), "ranks identical with 1 and 2 threads");
        /* Two chunks (items 0..119, 120..199) = one call. */
        sf_calib_ranks(samples, truth, 120, 50, 2, 5, 0, r2, p2);
        sf_calib_ranks(samples + 120 * 50 * 2, truth + 120 * 2, 80, 50, 2, 5, 120, r2 + 240, p2 + 240);
        CHECK(!memcmp(r1, r2, sizeof r1) && !memcmp(p1, p2, sizeof p1), "chunked ranks identical to one call");
        samples[(7 * 50 + 3) * 2 + 1] = NAN;
        CHECK(sf_calib_ranks(samples, truth, 200, 50, 2, 5, 0, r1, p1) == SF_EINVAL && strstr(sf_last_error(), "item 7"),
              "NaN sample rejected: %s", sf_last_error());
        CHECK(sf_calib_ranks(samples + 5 * 50 * 2, truth + 5 * 2, 10, 50, 2, 5, 5, r1, p1) == SF_EINVAL &&
                  strstr(sf_last_error(), "item 7"),
              "NaN sample rejected: %s", sf_last_error());
        free(truth);
        free(samples);
    }

    /* Ties: all L samples equal the truth -> random tie-breaking spreads the
     * ranks uniformly over 0..L. */
    {
        const size_t nt = 2000, Lt = 9;
        double *truth = calloc(nt, sizeof *truth), *samples = calloc(nt * Lt, sizeof *samples);
        long *r = malloc(nt * sizeof *r);
        double *u = malloc(nt * sizeof *u);
        sf_calib_ranks(samples, truth, nt, Lt, 1, 1, 0, r, u);
        size_t h[10];
        sf_calib_rank_hist(r, nt, 1, Lt, 10, h);
        sf_calib_chi2(h, 10, Lt, &x2, &dof, &p);
        CHECK(p > 0.001 && h[0] > 0 && h[9] > 0, "ties broken at random: chi2 p = %.3f", p);
        sf_calib_ks(u, nt, 1, &D, &p);
        CHECK(p > 0.001, "ties: randomised PIT uniform (KS p = %.3f)", p);
        free(truth);
        free(samples);
        free(r);
        free(u);
    }

    /* Argument errors. */
    size_t hh[5];
    CHECK(sf_calib_rank_hist(rk, 10, 1, 3, 5, hh) == SF_EINVAL, "more bins than ranks rejected");
    rk[3] = 50;
    CHECK(sf_calib_rank_hist(rk, 10, 1, 20, 5, hh) == SF_EINVAL, "rank > L rejected");
    double badlev = 1.0, cv;
    CHECK(sf_calib_coverage(u3, 3, 1, 1, &badlev, &cv) == SF_EINVAL, "level 1 rejected");

    release(&ex);
    release(&nw);
    release(&wd);
    release(&bi);
    return tu_finish("test_calib");
}
