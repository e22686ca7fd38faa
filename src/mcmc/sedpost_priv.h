/* mcmc/sedpost_priv.h — internals of the SED posterior shared by
 * sedpost.c, sedpost_mcmc.c and sedpost_pool.c. */
#ifndef SEDFLOW_MCMC_SEDPOST_PRIV_H
#define SEDFLOW_MCMC_SEDPOST_PRIV_H

#include "sedflow/sedpost.h"

struct sf_sedpost {
    const sf_model *m;
    sf_model_work *w;
    sf_prior_kind prior;
    double flux[SF_NBANDS], ivar[SF_NBANDS]; /* ivar 0: band unused (flux set to 0) */
    int nbands;
    double z;
    double beta;               /* likelihood tempering (1 = the posterior) */
    size_t cap;
    double *theta, *zz, *fmod; /* cap x 12, cap, cap x 5 */
    size_t *idx;               /* cap: row of each in-box point */
};

/* chi2 of model fluxes fm[5] against the galaxy's fluxes. */
double sf_sedpost_chi2_of(const sf_sedpost *p, const double *fm);

/* Start points: the nwalkers highest-posterior of max(n_start, nwalkers)
 * prior draws (streams 2^61 + i of the seed), evaluated through logp. */
sf_status sf_sedpost_start_points(sf_mcmc_logp_batch_fn logp, void *ctx, const sf_sedpost_opts *o, double *x0,
                                  double *lp_max);

/* The annealed burn-in (opts->n_anneal) followed by the run proper:
 * x0 (nwalkers x 11) is updated in place to the walkers' positions after
 * annealing; p->beta is changed during annealing and 1 on return. */
sf_status sf_sedpost_run(sf_sedpost *p, sf_mcmc_logp_batch_fn logp, void *ctx, const sf_sedpost_opts *o, double *x0,
                         sf_mcmc_chain **chain);

/* Fill *d from a finished chain (diagnostics, best fit via p). */
void sf_sedpost_diagnose(sf_sedpost *p, const sf_mcmc_chain *c, sf_sedpost_diag *d);

#endif
