/*
 * sedflow/mcmc.h — ensemble MCMC on any log-density, and its diagnostics.
 *
 * Samplers (all ensemble methods: nwalkers walkers split into two halves; the
 * walkers of one half move using only the positions of the other half, so
 * the log-density calls of a half run in parallel with OpenMP):
 *
 *   SF_MCMC_SLICE_DIFFERENTIAL  ensemble slice sampling, differential move
 *       (Karamanis & Beutler 2020, Stat. Comput. 31, 61, sec. 4.1; the
 *       default move of the Python package zeus): direction
 *       eta = 2 mu (x_l - x_m) for two distinct walkers l, m of the other
 *       half; univariate slice sampling along eta by stepping-out and
 *       shrinking (Neal 2003, Ann. Stat. 31, 705, figs. 3 and 5).
 *   SF_MCMC_SLICE_GAUSSIAN  the same with eta = 2 mu N(0, C), C the sample
 *       covariance of the other half (K&B 2020 sec. 4.2).
 *   SF_MCMC_STRETCH  affine-invariant stretch move (Goodman & Weare 2010,
 *       Comm. App. Math. Comp. Sci. 5, 65, eq. 7; as in emcee):
 *       y = x_j + z (x_k - x_j), g(z) ~ 1/sqrt(z) on [1/a, a],
 *       accepted with probability min(1, z^(D-1) p(y) / p(x_k)).
 *
 * Scale tuning (slice moves): during burn-in the scale mu is updated after
 * every iteration as in zeus (K&B 2020 sec. 3.3, Robbins-Monro):
 *   mu <- mu * 2 N_e / (N_e + N_c),
 * N_e / N_c the numbers of expansions / contractions of that iteration
 * (N_e at least 1); tuning stops when the burn-in ends, or earlier once
 * |N_e/(N_e+N_c) - 1/2| < 0.05 has held for more than 5 iterations (zeus's
 * "patience").  mu is then frozen, so the kept chain is a valid MCMC chain.
 *
 * Reproducibility: every walker update of iteration t draws from its own
 * stream sf_rng_set_stream(r, seed, t * nwalkers + k) (k the walker); the
 * random split into halves of iteration t uses a stream of its own.  Results
 * are bit-identical for any number of OpenMP threads.
 *
 * Thread safety of the callback: logp is called concurrently from the
 * threads of an OpenMP team with the same ctx; it must be re-entrant.  A
 * callback that needs scratch memory can index per-thread workspaces with
 * omp_get_thread_num() (allocate omp_get_max_threads() of them, or
 * opts.nthreads when that is set).
 *
 * Array layout: positions x[k * ndim + d] (walker k, parameter d); chains
 * x[(t * nwalkers + k) * ndim + d] (kept step t); everything row-major.
 */
#ifndef SEDFLOW_MCMC_H
#define SEDFLOW_MCMC_H

#include <stddef.h>
#include <stdint.h>

#include "sedflow/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Log of the target density (up to a constant) at theta[ndim].  Return
 * -INFINITY outside the support.  NaN is treated as an error of the callback
 * (the sampler stops with SF_EDOMAIN), +INFINITY likewise. */
typedef double (*sf_mcmc_logp_fn)(const double *theta, void *ctx);

/* Batched log-density: logp[i] for the n points theta[n][ndim] (n <= nwalkers),
 * same conventions per point.  Called only from the thread that calls
 * sf_mcmc_set_batch / sf_mcmc_iterate, never concurrently, so it may run its
 * own OpenMP parallelism or a batched (sgemm) model evaluation.  Return SF_OK,
 * or an error status with its message set (SF_ERROR); the sampler then stops
 * and returns that status and message unchanged. */
typedef sf_status (*sf_mcmc_logp_batch_fn)(const double *theta, size_t n, double *logp, void *ctx);

typedef enum {
    SF_MCMC_SLICE_DIFFERENTIAL = 0,
    SF_MCMC_SLICE_GAUSSIAN = 1,
    SF_MCMC_STRETCH = 2
} sf_mcmc_move;

typedef struct {
    size_t nwalkers;         /* even, >= 4 and >= 2 * ndim (default 32) */
    size_t nburn;            /* burn-in iterations, not kept (default 1000) */
    size_t niter;            /* iterations after burn-in (default 5000) */
    size_t thin;             /* keep every thin-th of them, >= 1 (default 1) */
    uint64_t seed;           /* default 1 */
    sf_mcmc_move move;       /* default SF_MCMC_SLICE_DIFFERENTIAL */
    double mu0;              /* initial slice scale mu (zeus default 1.0) */
    int tune;                /* tune mu during burn-in (default 1) */
    double stretch_a;        /* stretch-move parameter a > 1 (default 2) */
    size_t max_expansions;   /* per walker update, both sides together;
                                exceeding it is an error (default 10000) */
    size_t max_contractions; /* per walker update (default 10000) */
    double jitter;           /* degenerate start (walkers identical, or all in a
                                lower-dimensional subspace): 0 -> error SF_EINVAL;
                                > 0 -> every coordinate x_d of every walker is
                                replaced by x_d + jitter * max(|x_d|, 1) * N(0,1)
                                (redrawn, up to 100 times, while logp is not
                                finite).  Default 0. */
    int nthreads;            /* OpenMP threads for the per-point log-density
                                calls of a half (0: the OpenMP default).
                                Default 1: the parallel grain is one half
                                (2 barriers per iteration), which pays only for
                                densities costing >~ 10 us per call on an idle
                                machine and is very slow on an oversubscribed
                                one unless OMP_WAIT_POLICY=passive (see
                                docs/VALIDATION.md).  Prefer parallelism over
                                galaxies, or the batched callback. */
} sf_mcmc_opts;

/* Fill *o with the defaults listed above. */
void sf_mcmc_opts_default(sf_mcmc_opts *o);

/* ---- Step-wise interface (GSL style): alloc, set, iterate, test. ------- */

typedef struct sf_mcmc sf_mcmc;

/* Bookkeeping of a sampler since sf_mcmc_set. */
typedef struct {
    size_t iter;                  /* iterations done (burn-in included) */
    unsigned long long neval;     /* log-density evaluations */
    unsigned long long nexpand;   /* slice expansions (stepping-out steps) */
    unsigned long long ncontract; /* slice contractions (shrinking steps) */
    unsigned long long naccept;   /* stretch move: accepted proposals */
    double mu;                    /* current slice scale */
    int tuning;                   /* 1 while mu is still being tuned */
    int jittered;                 /* 1 if sf_mcmc_set jittered the start */
} sf_mcmc_info;

/* Allocate a sampler for ndim >= 1 parameters with options *opts (copied;
 * NULL = defaults).  SF_EINVAL for bad options (message says which),
 * SF_ENOMEM. */
sf_status sf_mcmc_alloc(size_t ndim, const sf_mcmc_opts *opts, sf_mcmc **out);
void sf_mcmc_free(sf_mcmc *s);

/* Start (or restart) the ensemble at x0[nwalkers * ndim] on target logp
 * (ctx passed through).  Evaluates logp at every walker.  Errors:
 * SF_EDOMAIN when a walker has logp = -inf (outside the support), NaN or
 * +inf (message names the walker); SF_EINVAL for a degenerate ensemble when
 * opts.jitter == 0 (or when jittering cannot reach finite logp). */
sf_status sf_mcmc_set(sf_mcmc *s, sf_mcmc_logp_fn logp, void *ctx, const double *x0);

/* As sf_mcmc_set with a batched log-density.  The slice moves then advance
 * all walkers of a half in lockstep (one batch per stepping-out or shrinking
 * round, as zeus does), the stretch move evaluates a half in one batch.
 * Every walker draws the same random numbers in the same order as with a
 * per-point callback, so the chains are bit-identical to sf_mcmc_set's.
 * opts.nthreads is not used on this path. */
sf_status sf_mcmc_set_batch(sf_mcmc *s, sf_mcmc_logp_batch_fn logp_batch, void *ctx, const double *x0);

/* One iteration: both halves updated in turn (and mu tuned during burn-in).
 * Errors: SF_ENOCONV when a slice cannot be bracketed within
 * max_expansions (improper or very flat density, mu far too small) or
 * shrinking does not find a point within max_contractions; SF_EDOMAIN when
 * logp returns NaN or +inf; SF_ENOCONV for the Gaussian move when the
 * covariance of a half is not positive definite.  After an error the
 * ensemble state is unspecified: call sf_mcmc_set again. */
sf_status sf_mcmc_iterate(sf_mcmc *s);

/* Current positions [nwalkers * ndim] and log-densities [nwalkers]
 * (owned by the sampler, valid until the next iterate/set/free). */
const double *sf_mcmc_position(const sf_mcmc *s);
const double *sf_mcmc_logp(const sf_mcmc *s);
sf_mcmc_info sf_mcmc_get_info(const sf_mcmc *s);
size_t sf_mcmc_nwalkers(const sf_mcmc *s);
size_t sf_mcmc_ndim(const sf_mcmc *s);

/* ---- Chains and the convenience driver. -------------------------------- */

typedef struct {
    size_t nsteps;   /* kept steps = niter / thin */
    size_t nwalkers;
    size_t ndim;
    double *x;       /* [nsteps][nwalkers][ndim] */
    double *logp;    /* [nsteps][nwalkers] */
    sf_mcmc_info info;
} sf_mcmc_chain;

sf_status sf_mcmc_chain_alloc(size_t nsteps, size_t nwalkers, size_t ndim, sf_mcmc_chain **out);
void sf_mcmc_chain_free(sf_mcmc_chain *c);

/* Run nburn + niter iterations from x0[nwalkers * ndim] and return the kept
 * chain (free with sf_mcmc_chain_free).  Errors as sf_mcmc_alloc/set/iterate;
 * on error *out is NULL. */
sf_status sf_mcmc_run(size_t ndim, sf_mcmc_logp_fn logp, void *ctx, const double *x0,
                      const sf_mcmc_opts *opts, sf_mcmc_chain **out);

/* The same with a batched log-density (see sf_mcmc_set_batch). */
sf_status sf_mcmc_run_batch(size_t ndim, sf_mcmc_logp_batch_fn logp_batch, void *ctx, const double *x0,
                            const sf_mcmc_opts *opts, sf_mcmc_chain **out);

/* ---- Diagnostics (src/mcmc/diagnostics.c). ----------------------------- */

/* Chains shorter than this many autocorrelation times give unreliable tau
 * (emcee's default tolerance). */
#define SF_MCMC_TAU_FACTOR 50.0

/* Integrated autocorrelation time of each parameter of an ensemble chain
 * x[nsteps][nwalkers][ndim] (Goodman & Weare 2010 sec. 3; the estimator of
 * emcee 3, Foreman-Mackey et al. 2013): the normalised autocorrelation
 * function of every walker (by FFT, zero-padded) averaged over walkers,
 * tau(M) = 1 + 2 sum_{t=1}^{M} rho(t), with Sokal's automatic window: the
 * smallest M >= c * tau(M) (c = 5 recommended; c <= 0 means 5).
 * tau[ndim] in units of kept steps.  *reliable (may be NULL) = 1 when
 * nsteps >= SF_MCMC_TAU_FACTOR * max tau, else 0 (the caller should warn).
 * A constant parameter gets tau = NAN and *reliable = 0.
 * Errors: SF_EINVAL (nsteps < 2, zero sizes), SF_ENOMEM. */
sf_status sf_mcmc_autocorr_time(const double *x, size_t nsteps, size_t nwalkers, size_t ndim,
                                double c, double *tau, int *reliable);

/* Split-R-hat of each parameter (Gelman et al. 2013, BDA3 eq. 11.4, each
 * walker's chain cut into its two halves, so 2 * nwalkers chains of
 * floor(nsteps/2) steps): sqrt(((n-1)/n W + B/n) / W).  rhat[ndim].
 * Values near 1 (< 1.01..1.1) indicate mixing.  NAN for a constant
 * parameter.  Errors: SF_EINVAL (nsteps < 4). */
sf_status sf_mcmc_split_rhat(const double *x, size_t nsteps, size_t nwalkers, size_t ndim,
                             double *rhat);

/* Convergence test of a chain (GSL-style "test" step): fills tau[ndim] and
 * rhat[ndim] (either may be NULL) and returns SF_OK when
 * nsteps >= ntau_min * max tau and max rhat < rhat_max, otherwise
 * SF_ENOCONV with a message saying which criterion failed (for a warning).
 * ntau_min <= 0 means SF_MCMC_TAU_FACTOR; rhat_max <= 0 means 1.05. */
sf_status sf_mcmc_test(const sf_mcmc_chain *c, double ntau_min, double rhat_max,
                       double *tau, double *rhat);

/* Sample mean[ndim] and covariance cov[ndim * ndim] (1/(N-1)) of all kept
 * samples of a chain (N = nsteps * nwalkers >= 2). */
sf_status sf_mcmc_chain_moments(const sf_mcmc_chain *c, double *mean, double *cov);

#ifdef __cplusplus
}
#endif
#endif
