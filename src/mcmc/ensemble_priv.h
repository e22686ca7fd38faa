/*
 * mcmc/ensemble_priv.h — the sampler state shared by ensemble.c (per-point
 * callback, walkers updated in parallel) and ensemble_batch.c (batched
 * callback, walkers updated in lockstep).  Both paths draw the same random
 * numbers in the same order per walker and give bit-identical chains.
 */
#ifndef SEDFLOW_MCMC_ENSEMBLE_PRIV_H
#define SEDFLOW_MCMC_ENSEMBLE_PRIV_H

#include <gsl/gsl_rng.h>

#include "sedflow/mcmc.h"

/* Stream namespaces (walker updates use t * nwalkers + k, far below these). */
#define SF__STREAM_SHUFFLE (1ULL << 62)
#define SF__STREAM_JITTER (1ULL << 63)

enum { SF__W_OK = 0, SF__W_NOEXPAND, SF__W_NOCONTRACT, SF__W_BADLOGP };

struct sf_mcmc {
    size_t ndim, nwalkers;
    sf_mcmc_opts opts;
    sf_mcmc_logp_fn logp;             /* exactly one of logp, logp_batch is set */
    sf_mcmc_logp_batch_fn logp_batch;
    void *ctx;
    double *x;    /* [nwalkers][ndim] */
    double *lp;   /* [nwalkers] */
    size_t *perm; /* [nwalkers]: first half, second half of this iteration */
    double *chol; /* [ndim][ndim] lower Cholesky factor (Gaussian move) */
    double *mean; /* [ndim] */
    int nthr;
    gsl_rng **rng;   /* [nthr] per-thread generators (per-point path) */
    double *work;    /* [nthr][3 * ndim] */
    int *wstat;      /* [nwalkers] per-walker outcome of the last half-step */
    double *wval;    /* [nwalkers] offending logp value for messages */
    /* Batch path: per-walker generators and lockstep state, [nwalkers]. */
    gsl_rng **wrng;
    double *eta;     /* [nwalkers][ndim] directions */
    double *z0, *L, *R, *tt;
    size_t *ne, *nc;
    int *phase;
    double *bx;      /* [nwalkers][ndim] batch points */
    double *blp;     /* [nwalkers] their log-densities */
    size_t *bmap;    /* [nwalkers] slot * 2 + side of each batch point */
    sf_mcmc_info info;
    int patience;
    int ready;
};

/* Evaluate logp at every walker into s->lp; returns the lowest walker with
 * a non-finite value, -1 when all are finite, or -2 - status when the
 * batch callback failed (message set by it). */
long sf__mcmc_eval_all(sf_mcmc *s);

/* Mean, covariance and lower Cholesky factor of walkers idx[0..n-1] (see
 * ensemble.c); 0 on success, 1 when not positive definite. */
int sf__mcmc_chol(const double *x, size_t ndim, const size_t *idx, size_t n, double *mean, double *chol,
                  double corr_tol);

/* Slice direction eta[ndim] for one walker from the inactive half
 * perm[b0 .. b0+h-1] (draws from r; tmp is scratch [ndim]); 1 when eta = 0. */
int sf__mcmc_direction(const sf_mcmc *s, size_t b0, size_t h, gsl_rng *r, double *eta, double *tmp);

/* Batched versions of the start jitter and of one half-step. */
sf_status sf__mcmc_jitter_batch(sf_mcmc *s);
sf_status sf__mcmc_half_step_batch(sf_mcmc *s, size_t a0, size_t b0, size_t h, unsigned long long *nexp_tot,
                                   unsigned long long *ncon_tot);

/* Set the error message for the lowest-numbered failed walker of the
 * active half perm[a0 .. a0+h-1]; SF_OK when none failed. */
sf_status sf__mcmc_report(const sf_mcmc *s, size_t a0, size_t h);

static inline int sf__bad_logp(double v) { return v != v || v == 1.0 / 0.0; }

#endif
