/* Ensemble samplers (src/mcmc/ensemble.c): recovery of known densities,
 * error paths, thread-count independence. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_randist.h>
#include <omp.h>

#include "sedflow/mcmc.h"
#include "sedflow/rng.h"
#include "testutil.h"

static int quick(void) { return getenv("SEDFLOW_TEST_QUICK") != NULL; }

/* 2-D correlated Gaussian: means (1, -2), sd (1, 3), correlation 0.8. */
static const double G_MU[2] = {1.0, -2.0}, G_SD[2] = {1.0, 3.0}, G_RHO = 0.8;
static double logp_gauss(const double *x, void *ctx)
{
    (void)ctx;
    double a = (x[0] - G_MU[0]) / G_SD[0], b = (x[1] - G_MU[1]) / G_SD[1];
    return -0.5 * (a * a - 2 * G_RHO * a * b + b * b) / (1 - G_RHO * G_RHO);
}

/* Banana: x0 ~ N(0,1), x1 | x0 ~ N(B x0^2, S^2).  E x1 = B, Var x1 = S^2 + 2 B^2,
 * Cov(x0, x1) = 0, Cov(x0^2, x1) = 2 B. */
#define BAN_B 1.0
#define BAN_S 0.5
static double logp_banana(const double *x, void *ctx)
{
    (void)ctx;
    double r = (x[1] - BAN_B * x[0] * x[0]) / BAN_S;
    return -0.5 * x[0] * x[0] - 0.5 * r * r;
}

/* Uniform on the unit box [0,1]^2 (tests support handling). */
static double logp_box(const double *x, void *ctx)
{
    (void)ctx;
    return (x[0] < 0 || x[0] > 1 || x[1] < 0 || x[1] > 1) ? -INFINITY : 0.0;
}

static double logp_flat(const double *x, void *ctx)
{
    (void)x;
    (void)ctx;
    return 0.0; /* improper: the slice can never be bracketed */
}

static double logp_nan(const double *x, void *ctx)
{
    (void)ctx;
    return x[0] > 0.5 ? NAN : -0.5 * (x[0] * x[0] + x[1] * x[1]);
}

static void start_ball(double *x0, size_t nw, size_t nd, const double *centre, double scale, uint64_t seed)
{
    gsl_rng *r = sf_rng_alloc(seed);
    for (size_t k = 0; k < nw; k++)
        for (size_t d = 0; d < nd; d++) x0[k * nd + d] = centre[d] + scale * gsl_ran_gaussian(r, 1.0);
    gsl_rng_free(r);
}

static const char *move_name(sf_mcmc_move m)
{
    return m == SF_MCMC_SLICE_DIFFERENTIAL ? "slice-differential" : m == SF_MCMC_SLICE_GAUSSIAN ? "slice-gaussian" : "stretch";
}

/* Run on the Gaussian and check mean and covariance within 5 Monte-Carlo
 * standard errors, with N_eff = N / tau from the measured autocorrelation. */
static void check_gauss(sf_mcmc_move move)
{
    sf_mcmc_opts o;
    sf_mcmc_opts_default(&o);
    o.move = move;
    o.nwalkers = 20;
    o.nburn = quick() ? 300 : 500;
    o.niter = quick() ? 1500 : 4000;
    o.seed = 11;
    double x0[40];
    const double c[2] = {0, 0};
    start_ball(x0, o.nwalkers, 2, c, 0.1, 3);
    sf_mcmc_chain *ch = NULL;
    sf_status st = sf_mcmc_run(2, logp_gauss, NULL, x0, &o, &ch);
    CHECK(st == SF_OK, "%s gauss run: %s", move_name(move), sf_last_error());
    if (st) return;
    double mean[2], cov[4], tau[2], rhat[2];
    sf_mcmc_chain_moments(ch, mean, cov);
    sf_status tst = sf_mcmc_test(ch, 50, 1.05, tau, rhat);
    CHECK(tst == SF_OK, "%s gauss converged (tau %.2f %.2f, rhat %.4f %.4f): %s", move_name(move), tau[0], tau[1],
          rhat[0], rhat[1], tst ? sf_last_error() : "");
    double taum = fmax(tau[0], tau[1]);
    double neff = (double)(ch->nsteps * ch->nwalkers) / taum;
    double cxy = G_RHO * G_SD[0] * G_SD[1];
    for (int d = 0; d < 2; d++) {
        CHECK_ABS(mean[d], G_MU[d], 5 * G_SD[d] / sqrt(neff), "mean");
        double v = G_SD[d] * G_SD[d];
        CHECK_ABS(cov[d * 3], v, 5 * v * sqrt(2 / neff), "variance");
    }
    CHECK_ABS(cov[1], cxy, 5 * sqrt((G_SD[0] * G_SD[0] * G_SD[1] * G_SD[1] + cxy * cxy) / neff), "covariance");
    if (move == SF_MCMC_STRETCH) {
        double acc = (double)ch->info.naccept / (double)((o.nburn + o.niter) * o.nwalkers);
        CHECK(acc > 0.3 && acc < 0.9, "stretch acceptance %.3f in (0.3, 0.9)", acc);
    } else {
        CHECK(ch->info.mu > 0.1 && ch->info.mu < 10 && !ch->info.tuning, "mu tuned and frozen: %g", ch->info.mu);
        /* Slice sampling always moves: ~ 1 + expansions + contractions calls per update. */
        CHECK(ch->info.neval > (o.nburn + o.niter) * o.nwalkers * 2ULL, "neval %llu", ch->info.neval);
    }
    sf_mcmc_chain_free(ch);
}

static void check_banana(void)
{
    sf_mcmc_opts o;
    sf_mcmc_opts_default(&o);
    o.nwalkers = 32;
    o.nburn = 500;
    o.niter = quick() ? 2000 : 8000;
    o.seed = 5;
    double x0[64];
    const double c[2] = {0, 1};
    start_ball(x0, o.nwalkers, 2, c, 0.3, 4);
    sf_mcmc_chain *ch = NULL;
    sf_status st = sf_mcmc_run(2, logp_banana, NULL, x0, &o, &ch);
    CHECK(st == SF_OK, "banana run: %s", sf_last_error());
    if (st) return;
    double mean[2], cov[4], tau[2];
    sf_mcmc_chain_moments(ch, mean, cov);
    int rel = 0;
    sf_mcmc_autocorr_time(ch->x, ch->nsteps, ch->nwalkers, 2, 5, tau, &rel);
    CHECK(rel, "banana chain longer than 50 tau (tau %.2f %.2f, %zu steps)", tau[0], tau[1], ch->nsteps);
    double neff = (double)(ch->nsteps * ch->nwalkers) / fmax(tau[0], tau[1]);
    double v1 = BAN_S * BAN_S + 2 * BAN_B * BAN_B;
    CHECK_ABS(mean[0], 0.0, 5 / sqrt(neff), "banana mean x0");
    CHECK_ABS(mean[1], BAN_B, 5 * sqrt(v1 / neff), "banana mean x1");
    CHECK_ABS(cov[0], 1.0, 5 * sqrt(2 / neff), "banana var x0");
    /* Var of the x1 variance estimator: E(x1-m)^4 - v^2; x1 - B = B(z^2-1) + S e. */
    double m4 = 60 * pow(BAN_B, 4) + 6 * 2 * BAN_B * BAN_B * BAN_S * BAN_S + 3 * pow(BAN_S, 4);
    CHECK_ABS(cov[3], v1, 5 * sqrt((m4 - v1 * v1) / neff), "banana var x1");
    CHECK_ABS(cov[1], 0.0, 5 * sqrt(v1 / neff), "banana cov x0 x1");
    /* Curvature: Cov(x0^2, x1) = 2 B. */
    double s = 0, m2 = 0;
    size_t N = ch->nsteps * ch->nwalkers;
    for (size_t i = 0; i < N; i++) m2 += ch->x[2 * i] * ch->x[2 * i];
    m2 /= (double)N;
    for (size_t i = 0; i < N; i++) s += (ch->x[2 * i] * ch->x[2 * i] - m2) * (ch->x[2 * i + 1] - mean[1]);
    s /= (double)(N - 1);
    /* Var[(z^2-1)(x1-B)] = 60 B^2 + 2 S^2 - 4 B^2. */
    CHECK_ABS(s, 2 * BAN_B, 5 * sqrt((56 * BAN_B * BAN_B + 2 * BAN_S * BAN_S) / neff), "banana cov(x0^2, x1)");
    sf_mcmc_chain_free(ch);
}

static void check_errors(void)
{
    sf_mcmc_opts o;
    sf_mcmc_opts_default(&o);
    o.nwalkers = 8;
    o.nburn = 5;
    o.niter = 10;
    sf_mcmc_chain *ch = NULL;
    double x0[16];
    const double c[2] = {0.5, 0.5};
    start_ball(x0, 8, 2, c, 0.1, 9);

    /* Bad options. */
    sf_mcmc *s = NULL;
    o.nwalkers = 3;
    CHECK(sf_mcmc_alloc(2, &o, &s) == SF_EINVAL && !s, "odd nwalkers rejected: %s", sf_last_error());
    o.nwalkers = 4;
    CHECK(sf_mcmc_alloc(3, &o, &s) == SF_EINVAL, "nwalkers < 2 ndim rejected: %s", sf_last_error());
    o.nwalkers = 8;

    /* Improper density: bounded expansions end in an error, not a hang. */
    o.max_expansions = 1000;
    sf_status st = sf_mcmc_run(2, logp_flat, NULL, x0, &o, &ch);
    CHECK(st == SF_ENOCONV && !ch && strstr(sf_last_error(), "expansions"), "flat density -> SF_ENOCONV: %s",
          sf_last_error());
    o.max_expansions = 10000;

    /* Walker outside the support. */
    double xb[16];
    memcpy(xb, x0, sizeof xb);
    xb[2 * 5] = 1.5;
    st = sf_mcmc_run(2, logp_box, NULL, xb, &o, &ch);
    CHECK(st == SF_EDOMAIN && strstr(sf_last_error(), "walker 5"), "walker outside support: %s", sf_last_error());

    /* Identical walkers: error without jitter, runs with jitter. */
    double xi[16];
    for (int k = 0; k < 8; k++) xi[2 * k] = 0.5, xi[2 * k + 1] = 0.25;
    st = sf_mcmc_run(2, logp_box, NULL, xi, &o, &ch);
    CHECK(st == SF_EINVAL && strstr(sf_last_error(), "degenerate"), "identical walkers rejected: %s", sf_last_error());
    /* Collinear walkers (a 1-D subspace of the 2-D space) are degenerate too. */
    for (int k = 0; k < 8; k++) xi[2 * k] = 0.1 + 0.1 * k, xi[2 * k + 1] = 0.05 + 0.1 * k;
    st = sf_mcmc_run(2, logp_box, NULL, xi, &o, &ch);
    CHECK(st == SF_EINVAL, "collinear walkers rejected: %s", sf_last_error());
    for (int k = 0; k < 8; k++) xi[2 * k] = 0.5, xi[2 * k + 1] = 0.25;
    o.jitter = 0.01;
    st = sf_mcmc_run(2, logp_box, NULL, xi, &o, &ch);
    CHECK(st == SF_OK && ch && ch->info.jittered, "identical walkers with jitter run: %s", st ? sf_last_error() : "");
    if (ch) {
        int inside = 1;
        for (size_t i = 0; i < ch->nsteps * ch->nwalkers * 2; i++) inside &= ch->x[i] >= 0 && ch->x[i] <= 1;
        CHECK(inside, "all samples inside the box support");
    }
    sf_mcmc_chain_free(ch);
    ch = NULL;
    o.jitter = 0;

    /* Bounded contractions: a target whose slice has (almost) no room. */
    o.max_contractions = 20;
    o.mu0 = 1e6; /* huge initial interval: shrinking needs ~ 20 + halvings */
    o.tune = 0;
    const double cg[2] = {0, 0};
    start_ball(x0, 8, 2, cg, 1e-3, 10);
    st = sf_mcmc_run(2, logp_gauss, NULL, x0, &o, &ch);
    CHECK(st == SF_ENOCONV && strstr(sf_last_error(), "contractions"), "bounded contractions -> SF_ENOCONV: %s",
          sf_last_error());
    o.max_contractions = 10000;
    o.mu0 = 1;
    o.tune = 1;

    /* NaN from the callback is reported. */
    start_ball(x0, 8, 2, cg, 0.1, 12);
    st = sf_mcmc_run(2, logp_nan, NULL, x0, &o, &ch);
    CHECK(st == SF_EDOMAIN && strstr(sf_last_error(), "nan"), "NaN logp -> SF_EDOMAIN: %s", sf_last_error());

    /* iterate before set. */
    sf_mcmc_alloc(2, &o, &s);
    CHECK(sf_mcmc_iterate(s) == SF_EINVAL, "iterate before set rejected");
    sf_mcmc_free(s);
    sf_mcmc_free(NULL);
    sf_mcmc_chain_free(NULL);
}

/* Bit-identical chains with 1 and 2 threads, for every move. */
static void check_threads(void)
{
    for (int m = 0; m < 3; m++) {
        sf_mcmc_opts o;
        sf_mcmc_opts_default(&o);
        o.move = (sf_mcmc_move)m;
        o.nwalkers = 16;
        o.nburn = 10; /* short: 2-thread barriers are slow on a loaded machine */
        o.niter = 30;
        o.seed = 77;
        double x0[32];
        const double c[2] = {0, 0};
        start_ball(x0, 16, 2, c, 0.5, 21);
        sf_mcmc_chain *a = NULL, *b = NULL, *e = NULL;
        o.nthreads = 1;
        sf_mcmc_run(2, logp_banana, NULL, x0, &o, &a);
        o.nthreads = 2;
        sf_mcmc_run(2, logp_banana, NULL, x0, &o, &b);
        o.seed = 78;
        o.nthreads = 1;
        sf_mcmc_run(2, logp_banana, NULL, x0, &o, &e);
        CHECK(a && b && e, "%s runs", move_name(o.move));
        if (a && b && e) {
            size_t n = a->nsteps * a->nwalkers * 2;
            CHECK(!memcmp(a->x, b->x, n * sizeof *a->x) && a->info.neval == b->info.neval && a->info.mu == b->info.mu,
                  "%s: 1 and 2 threads give identical chains", move_name(o.move));
            CHECK(memcmp(a->x, e->x, n * sizeof *a->x) != 0, "%s: another seed gives another chain",
                  move_name(o.move));
        }
        sf_mcmc_chain_free(a);
        sf_mcmc_chain_free(b);
        sf_mcmc_chain_free(e);
    }
}

/* Step-wise interface: the same as run, and thinning. */
static void check_stepwise(void)
{
    sf_mcmc_opts o;
    sf_mcmc_opts_default(&o);
    o.nwalkers = 8;
    o.nburn = 10;
    o.niter = 30;
    o.thin = 3;
    double x0[16];
    const double c[2] = {0, 0};
    start_ball(x0, 8, 2, c, 0.5, 2);
    sf_mcmc_chain *ch = NULL;
    sf_mcmc_run(2, logp_gauss, NULL, x0, &o, &ch);
    CHECK(ch && ch->nsteps == 10, "thinning keeps niter/thin steps");
    sf_mcmc *s = NULL;
    sf_mcmc_alloc(2, &o, &s);
    sf_mcmc_set(s, logp_gauss, NULL, x0);
    int same = 1;
    for (size_t i = 0; i < o.nburn + o.niter; i++) {
        sf_mcmc_iterate(s);
        if (i >= o.nburn && (i - o.nburn + 1) % o.thin == 0) {
            size_t k = (i - o.nburn + 1) / o.thin - 1;
            same &= !memcmp(ch->x + k * 16, sf_mcmc_position(s), 16 * sizeof(double));
            for (int w = 0; w < 8; w++) same &= sf_mcmc_logp(s)[w] == logp_gauss(sf_mcmc_position(s) + 2 * w, NULL);
        }
    }
    CHECK(same, "alloc/set/iterate reproduces sf_mcmc_run, logp values consistent");
    CHECK(sf_mcmc_get_info(s).iter == 40, "iteration counter");
    sf_mcmc_free(s);
    sf_mcmc_chain_free(ch);
}

/* Batched wrappers: the per-point densities over n points. */
typedef struct {
    double (*f)(const double *, void *);
    size_t calls, points, max_n;
    size_t fail_after; /* > 0: return an error on that call */
} batch_ctx;

static sf_status batch_eval(const double *theta, size_t n, double *lp, void *ctx)
{
    batch_ctx *b = ctx;
    b->calls++;
    b->points += n;
    if (n > b->max_n) b->max_n = n;
    if (b->fail_after && b->calls == b->fail_after) return SF_ERROR(SF_EIO, "model evaluation failed (test)");
    for (size_t i = 0; i < n; i++) lp[i] = b->f(theta + 2 * i, NULL);
    return SF_OK;
}

/* The batched path gives the same chains as the per-point path. */
static void check_batch(void)
{
    for (int m = 0; m < 3; m++) {
        sf_mcmc_opts o;
        sf_mcmc_opts_default(&o);
        o.move = (sf_mcmc_move)m;
        o.nwalkers = 16;
        o.nburn = 100;
        o.niter = 300;
        o.seed = 5;
        double x0[32];
        const double c[2] = {0, 0};
        start_ball(x0, 16, 2, c, 0.5, 22);
        sf_mcmc_chain *a = NULL, *b = NULL;
        batch_ctx bc = {logp_banana, 0, 0, 0, 0};
        sf_mcmc_run(2, logp_banana, NULL, x0, &o, &a);
        sf_status st = sf_mcmc_run_batch(2, batch_eval, &bc, x0, &o, &b);
        CHECK(st == SF_OK && a && b, "%s batch run: %s", move_name(o.move), st ? sf_last_error() : "");
        if (a && b) {
            size_t n = a->nsteps * a->nwalkers * 2;
            CHECK(!memcmp(a->x, b->x, n * sizeof *a->x) && !memcmp(a->logp, b->logp, n / 2 * sizeof *a->logp) &&
                      a->info.neval == b->info.neval && a->info.nexpand == b->info.nexpand &&
                      a->info.ncontract == b->info.ncontract && a->info.mu == b->info.mu,
                  "%s: batched and per-point chains identical (neval %llu vs %llu)", move_name(o.move),
                  a->info.neval, b->info.neval);
            CHECK(bc.points == b->info.neval && bc.max_n <= 16 && bc.max_n >= 8,
                  "%s: %zu batch calls, %.1f points per call, at most %zu", move_name(o.move), bc.calls,
                  (double)bc.points / (double)bc.calls, bc.max_n);
        }
        sf_mcmc_chain_free(a);
        sf_mcmc_chain_free(b);
    }
    /* Jitter and errors on the batched path. */
    sf_mcmc_opts o;
    sf_mcmc_opts_default(&o);
    o.nwalkers = 8;
    o.nburn = 5;
    o.niter = 20;
    o.jitter = 0.01;
    double xi[16];
    for (int k = 0; k < 8; k++) xi[2 * k] = 0.5, xi[2 * k + 1] = 0.25;
    sf_mcmc_chain *a = NULL, *b = NULL;
    batch_ctx bc = {logp_box, 0, 0, 0, 0};
    sf_mcmc_run(2, logp_box, NULL, xi, &o, &a);
    sf_mcmc_run_batch(2, batch_eval, &bc, xi, &o, &b);
    CHECK(a && b && b->info.jittered && !memcmp(a->x, b->x, a->nsteps * 16 * sizeof(double)),
          "jittered start: batched = per-point");
    sf_mcmc_chain_free(a);
    sf_mcmc_chain_free(b);
    b = NULL;
    o.jitter = 0;
    double x0[16];
    const double cg[2] = {0, 0};
    start_ball(x0, 8, 2, cg, 0.1, 12);
    bc = (batch_ctx){logp_gauss, 0, 0, 0, 7};
    sf_status st = sf_mcmc_run_batch(2, batch_eval, &bc, x0, &o, &b);
    CHECK(st == SF_EIO && !b && strstr(sf_last_error(), "(test)"), "batch callback error passed through: %s",
          sf_last_error());
    bc = (batch_ctx){logp_nan, 0, 0, 0, 0};
    st = sf_mcmc_run_batch(2, batch_eval, &bc, x0, &o, &b);
    CHECK(st == SF_EDOMAIN && strstr(sf_last_error(), "nan"), "batched NaN -> SF_EDOMAIN: %s", sf_last_error());
    bc = (batch_ctx){logp_flat, 0, 0, 0, 0};
    o.max_expansions = 500;
    st = sf_mcmc_run_batch(2, batch_eval, &bc, x0, &o, &b);
    CHECK(st == SF_ENOCONV && strstr(sf_last_error(), "expansions"), "batched flat density -> SF_ENOCONV: %s",
          sf_last_error());
}

int main(void)
{
    check_gauss(SF_MCMC_SLICE_DIFFERENTIAL);
    check_gauss(SF_MCMC_SLICE_GAUSSIAN);
    check_gauss(SF_MCMC_STRETCH);
    check_banana();
    check_errors();
    check_threads();
    check_stepwise();
    check_batch();
    return tu_finish("test_mcmc");
}
