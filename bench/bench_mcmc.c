/*
 * bench_mcmc: (1) sampler overhead of the ensemble samplers on a cheap
 * 11-dimensional density (the paper's sampling space), per 1,000 log-density
 * evaluations and per run at the paper's settings (30 walkers x 10,000
 * iterations); (2) speed of the calibration statistics for 1,000 test
 * galaxies x 10,000 posterior samples x 14 quantities (processed in chunks
 * of 100 galaxies, as `sedflow validate` would).
 * (3) per-point path with 1 and 2 OpenMP threads on a ~20 us density.
 * Usage: bench_mcmc [iterations (default 2000)].  On a shared machine run it
 * with OMP_WAIT_POLICY=passive (see docs/VALIDATION.md).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <gsl/gsl_randist.h>
#include <omp.h>

#include "sedflow/calib.h"
#include "sedflow/mcmc.h"
#include "sedflow/rng.h"
#include "bench_clock.h"

#define ND 11

/* Cheap target: correlated Gaussian (AR(1)-structured precision, tridiagonal)
 * inside a prior box [-10, 10]^11. */
static double logp_cheap(const double *x, void *ctx)
{
    (void)ctx;
    double s = 0;
    for (int d = 0; d < ND; d++) {
        if (x[d] < -10 || x[d] > 10) return -INFINITY;
        s += x[d] * x[d];
        if (d) s -= 0.9 * x[d] * x[d - 1];
    }
    return -0.5 * s;
}

/* A ~20 us density (standing in for a model evaluation): the cheap one plus
 * busy work that the compiler cannot drop. */
static double logp_medium(const double *x, void *ctx)
{
    double v = logp_cheap(x, ctx), acc = 0;
    for (int i = 0; i < 800; i++) acc += sin(x[i % ND] + 1e-3 * i);
    return v + 1e-300 * acc;
}

static sf_status logp_cheap_batch(const double *x, size_t n, double *lp, void *ctx)
{
    for (size_t i = 0; i < n; i++) lp[i] = logp_cheap(x + i * ND, ctx);
    return SF_OK;
}

/* nthreads < 0: the batched path. */
static void bench_sampler(sf_mcmc_move move, const char *name, size_t niter, int nthreads)
{
    sf_mcmc_opts o;
    sf_mcmc_opts_default(&o);
    o.move = move;
    o.nwalkers = 30;
    o.nburn = niter / 5;
    o.niter = niter;
    o.nthreads = nthreads > 0 ? nthreads : 0; /* 0: OpenMP default */
    double x0[30 * ND];
    gsl_rng *r = sf_rng_alloc(1);
    for (int i = 0; i < 30 * ND; i++) x0[i] = gsl_ran_gaussian(r, 0.5);
    gsl_rng_free(r);
    sf_mcmc_chain *c = NULL;
    double t0 = bench_wall_s();
    sf_status st = nthreads < 0 ? sf_mcmc_run_batch(ND, logp_cheap_batch, NULL, x0, &o, &c)
                                : sf_mcmc_run(ND, logp_cheap, NULL, x0, &o, &c);
    double t = bench_wall_s() - t0;
    if (st) {
        printf("%s: error %s\n", name, sf_last_error());
        return;
    }
    /* Cost of the evaluations alone (same count, serial). */
    volatile double sink = 0;
    double y[ND];
    for (int d = 0; d < ND; d++) y[d] = 0.1 * d;
    size_t ne = c->info.neval;
    double t1 = bench_wall_s();
    for (size_t i = 0; i < ne; i++) {
        y[i % ND] += 1e-12;
        sink += logp_cheap(y, NULL);
    }
    double te = bench_wall_s() - t1;
    double tau[ND];
    sf_mcmc_autocorr_time(c->x, c->nsteps, c->nwalkers, ND, 5, tau, NULL);
    double tmax = 0;
    for (int d = 0; d < ND; d++) tmax = fmax(tmax, tau[d]);
    size_t wi = (o.nburn + o.niter) * o.nwalkers;
    /* Sampler overhead = wall time minus the time of the same number of
     * serial evaluations (meaningful for 1 thread); us/eval = ms per 1000. */
    char thr[32];
    if (nthreads < 0) snprintf(thr, sizeof thr, "batched");
    else snprintf(thr, sizeof thr, "%d thr", nthreads ? nthreads : omp_get_max_threads());
    printf("%-19s %-8s: %.3f s, %zu evals (%.2f per walker-step), %.3f us/eval in all, overhead %.3f ms per "
           "1000 evals; tau_max %.1f; 30 x 10000 iterations ~ %.2f s\n",
           name, thr, t, ne, (double)ne / (double)wi, 1e6 * t / (double)ne,
           1e6 * (t - te) / (double)ne, tmax, t * 10000.0 / (double)(o.nburn + o.niter));
    (void)sink;
    sf_mcmc_chain_free(c);
}

/* Threads vs the medium-cost density (30 walkers, 200 + 50 iterations). */
static void bench_threads(void)
{
    double x0[30 * ND];
    gsl_rng *r = sf_rng_alloc(1);
    for (int i = 0; i < 30 * ND; i++) x0[i] = gsl_ran_gaussian(r, 0.5);
    gsl_rng_free(r);
    double t1 = 0;
    for (int nt = 1; nt <= omp_get_max_threads() && nt <= 2; nt++) {
        sf_mcmc_opts o;
        sf_mcmc_opts_default(&o);
        o.nwalkers = 30;
        o.nburn = 50;
        o.niter = 200;
        o.nthreads = nt;
        sf_mcmc_chain *c = NULL;
        double t0 = bench_wall_s();
        if (sf_mcmc_run(ND, logp_medium, NULL, x0, &o, &c)) {
            printf("medium: %s\n", sf_last_error());
            return;
        }
        double t = bench_wall_s() - t0;
        if (nt == 1) t1 = t;
        printf("slice-differential, medium density, %d thread(s): %.3f s, %.1f us per evaluation, speed-up %.2f\n",
               nt, t, 1e6 * t / (double)c->info.neval, t1 / t);
        sf_mcmc_chain_free(c);
    }
}

static void bench_calib(void)
{
    const size_t n = 1000, L = 10000, P = 14, chunk = 100;
    double *s = malloc(chunk * L * P * sizeof *s), *truth = malloc(n * P * sizeof *truth);
    long *rank = malloc(n * P * sizeof *rank);
    double *pit = malloc(n * P * sizeof *pit);
    if (!s || !truth || !rank || !pit) {
        printf("calib: out of memory\n");
        return;
    }
    gsl_rng *r = sf_rng_alloc(2);
    for (size_t i = 0; i < n * P; i++) truth[i] = gsl_ran_gaussian_ziggurat(r, 1.0);
    for (size_t i = 0; i < chunk * L * P; i++) s[i] = gsl_ran_gaussian_ziggurat(r, 1.0);
    gsl_rng_free(r);
    double t_rank = 0, t_tarp = 0, lev[SF_CALIB_NLEV], ecp[SF_CALIB_NLEV];
    sf_calib_levels(lev);
    for (size_t c0 = 0; c0 < n; c0 += chunk) {
        /* (The same sample block is reused for every chunk: timing only.) */
        double t0 = bench_wall_s();
        sf_calib_ranks(s, truth + c0 * P, chunk, L, P, 7, c0, rank + c0 * P, pit + c0 * P);
        t_rank += bench_wall_s() - t0;
    }
    double t0 = bench_wall_s();
    sf_calib_tarp(s, truth, chunk, L, P, 7, SF_CALIB_NLEV, lev, ecp, NULL);
    t_tarp = (bench_wall_s() - t0) * (double)(n / chunk);
    sf_calib_stats st[14];
    t0 = bench_wall_s();
    sf_calib_summary(rank, pit, n, L, P, 0, st);
    double t_sum = bench_wall_s() - t0;
    printf("calib (%d threads): ranks+PIT for 1000 x 10000 x 14: %.3f s (%.2f ns per sample value); summary "
           "(chi2, KS, coverage) %.4f s; TARP (all 14 dims jointly, est.) %.3f s\n",
           omp_get_max_threads(), t_rank, 1e9 * t_rank / ((double)n * L * P), t_sum, t_tarp);
    free(s);
    free(truth);
    free(rank);
    free(pit);
}

int main(int argc, char **argv)
{
    size_t niter = argc > 1 ? (size_t)atol(argv[1]) : 2000;
    printf("bench_mcmc: 11-dim cheap Gaussian, 30 walkers, %zu iterations (+%zu burn-in)\n", niter, niter / 5);
    const sf_mcmc_move mv[3] = {SF_MCMC_SLICE_DIFFERENTIAL, SF_MCMC_SLICE_GAUSSIAN, SF_MCMC_STRETCH};
    const char *nm[3] = {"slice-differential", "slice-gaussian", "stretch"};
    for (int m = 0; m < 3; m++) {
        bench_sampler(mv[m], nm[m], niter, 1);
        bench_sampler(mv[m], nm[m], niter, -1);
    }
    bench_threads();
    bench_calib();
    return 0;
}
