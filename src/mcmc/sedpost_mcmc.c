/* MCMC driver for the SED posterior of one galaxy: start points, the
 * batched ensemble sampler, convergence diagnostics and the best fit. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mcmc/sedpost_priv.h"
#include "sedflow/rng.h"

void sf_sedpost_opts_default(sf_sedpost_opts *o)
{
    memset(o, 0, sizeof *o);
    sf_mcmc_opts_default(&o->mcmc);
    o->mcmc.nwalkers = 30;
    o->mcmc.nburn = 2000;
    o->mcmc.niter = 8000;
    o->mcmc.jitter = 1e-3;
    o->prior = SF_PRIOR_SEDFLOW;
    o->n_start = 0;
}

typedef struct {
    double lp;
    size_t i;
} lp_index;

static int cmp_desc(const void *a, const void *b)
{
    const lp_index *x = a, *y = b;
    if (x->lp != y->lp) return x->lp < y->lp ? 1 : -1;
    return (x->i > y->i) - (x->i < y->i); /* ties: draw order, so the result is deterministic */
}

sf_status sf_sedpost_start_points(sf_mcmc_logp_batch_fn logp, void *ctx, const sf_sedpost_opts *o, double *x0,
                                  double *lp_max)
{
    size_t nw = o->mcmc.nwalkers, nd = o->n_start > nw ? o->n_start : nw;
    double *u = malloc(sizeof(double) * nd * SF_NU), *lp = malloc(sizeof(double) * nd);
    lp_index *ix = malloc(sizeof(lp_index) * nd);
    gsl_rng *r = sf_rng_alloc(o->mcmc.seed);
    sf_status st = SF_OK;
    if (!u || !lp || !ix || !r) st = SF_ERROR(SF_ENOMEM, "out of memory for %zu start draws", nd);
    for (size_t i = 0; !st && i < nd; i++) {
        sf_rng_set_stream(r, o->mcmc.seed, (1ULL << 61) + i);
        sf_prior_sample(o->prior, r, u + i * SF_NU);
    }
    if (!st) st = logp(u, nd, lp, ctx);
    if (!st) {
        for (size_t i = 0; i < nd; i++) ix[i] = (lp_index){isnan(lp[i]) ? -INFINITY : lp[i], i};
        if (nd > nw) qsort(ix, nd, sizeof *ix, cmp_desc);
        *lp_max = -INFINITY;
        for (size_t k = 0; k < nw; k++) {
            memcpy(x0 + k * SF_NU, u + ix[k].i * SF_NU, sizeof(double) * SF_NU);
            if (ix[k].lp > *lp_max) *lp_max = ix[k].lp;
        }
    }
    free(u);
    free(lp);
    free(ix);
    if (r) gsl_rng_free(r);
    return st;
}

void sf_sedpost_diagnose(sf_sedpost *p, const sf_mcmc_chain *c, sf_sedpost_diag *d)
{
    d->tau_max = d->rhat_max = NAN;
    d->tau_reliable = 0;
    d->converged = 0;
    d->warning[0] = '\0';
    for (int k = 0; k < SF_NU; k++) d->tau[k] = d->rhat[k] = NAN;
    if (c->nsteps >= 4) {
        sf_status st = sf_mcmc_test(c, 0, 0, d->tau, d->rhat);
        d->converged = st == SF_OK;
        const char *msg = sf_last_error(), *colon = strstr(msg, "): ");
        if (colon) msg = colon + 3; /* drop the "function(line): " prefix */
        if (st == SF_ENOCONV) snprintf(d->warning, sizeof d->warning, "%s", msg);
        else if (st) snprintf(d->warning, sizeof d->warning, "diagnostics failed: %s", msg);
        sf_error_clear();
        sf_mcmc_autocorr_time(c->x, c->nsteps, c->nwalkers, c->ndim, 0, d->tau, &d->tau_reliable);
        sf_error_clear();
    } else {
        snprintf(d->warning, sizeof d->warning, "only %zu kept steps: too short for autocorrelation time and R-hat",
                 c->nsteps);
    }
    for (int k = 0; k < SF_NU; k++) {
        if (isfinite(d->tau[k]) && !(d->tau[k] <= d->tau_max)) d->tau_max = d->tau[k];
        if (isfinite(d->rhat[k]) && !(d->rhat[k] <= d->rhat_max)) d->rhat_max = d->rhat[k];
    }
    /* best kept sample */
    size_t nn = c->nsteps * c->nwalkers, best = 0;
    for (size_t i = 1; i < nn; i++)
        if (c->logp[i] > c->logp[best]) best = i;
    d->best_logp = nn ? c->logp[best] : NAN;
    d->best_chi2 = NAN;
    for (int b = 0; b < SF_NBANDS; b++) d->best_flux[b] = NAN;
    if (nn) {
        memcpy(d->best_u, c->x + best * SF_NU, sizeof(double) * SF_NU);
        if (sf_sedpost_chi2(p, 1, d->best_u, &d->best_chi2, d->best_flux)) sf_error_clear();
    }
    d->nbands = sf_sedpost_nbands(p);
    d->info = c->info;
}

sf_status sf_sedpost_run(sf_sedpost *p, sf_mcmc_logp_batch_fn logp, void *ctx, const sf_sedpost_opts *o, double *x0,
                         sf_mcmc_chain **chain)
{
    enum { NSTAGE = 10 };
    sf_mcmc_opts mo = o->mcmc;
    sf_status st = SF_OK;
    size_t nw = mo.nwalkers, done = 0;
    for (int k = 0; !st && o->n_anneal > 0 && k < NSTAGE; k++) {
        size_t len = o->n_anneal * (size_t)(k + 1) / NSTAGE - done;
        done += len;
        if (len == 0) continue;
        p->beta = pow(10.0, -3.0 * (1.0 - (double)(k + 1) / NSTAGE));
        sf_mcmc_opts so = mo;
        so.nburn = len, so.niter = 0;
        so.seed = sf_mix64(mo.seed + 0x5EDF10ULL + (uint64_t)k); /* its own streams per stage */
        sf_mcmc *s = NULL;
        st = sf_mcmc_alloc(SF_NU, &so, &s);
        if (!st) st = sf_mcmc_set_batch(s, logp, ctx, x0);
        for (size_t t = 0; !st && t < len; t++) st = sf_mcmc_iterate(s);
        if (!st) {
            memcpy(x0, sf_mcmc_position(s), sizeof(double) * nw * SF_NU);
            mo.mu0 = sf_mcmc_get_info(s).mu; /* carry the tuned scale on */
        }
        sf_mcmc_free(s);
    }
    p->beta = 1.0;
    if (!st) st = sf_mcmc_run_batch(SF_NU, logp, ctx, x0, &mo, chain);
    return st;
}

sf_status sf_sedpost_mcmc(const sf_model *m, const double *flux_nmgy, const double *ivar_nmgy2, double z,
                          const sf_sedpost_opts *opts, const double *x0, sf_mcmc_chain **chain,
                          sf_sedpost_diag *diag)
{
    *chain = NULL;
    sf_sedpost_opts o;
    if (opts) o = *opts;
    else sf_sedpost_opts_default(&o);
    if (o.mcmc.nwalkers < 2 * SF_NU || o.mcmc.nwalkers % 2)
        return SF_ERROR(SF_EINVAL, "nwalkers = %zu: need an even number >= %d for 11 parameters", o.mcmc.nwalkers,
                        2 * SF_NU);
    sf_sedpost *p = NULL;
    sf_status st = sf_sedpost_alloc(m, flux_nmgy, ivar_nmgy2, z, o.prior, o.mcmc.nwalkers, &p);
    if (st) return st;
    double *start = malloc(sizeof(double) * o.mcmc.nwalkers * SF_NU), lp_max = NAN;
    if (!start) st = SF_ERROR(SF_ENOMEM, "out of memory");
    else if (x0) memcpy(start, x0, sizeof(double) * o.mcmc.nwalkers * SF_NU);
    else st = sf_sedpost_start_points(sf_sedpost_logpost_batch, p, &o, start, &lp_max);
    if (!st) st = sf_sedpost_run(p, sf_sedpost_logpost_batch, p, &o, start, chain);
    if (!st && diag) {
        memset(diag, 0, sizeof *diag);
        sf_sedpost_diagnose(p, *chain, diag);
        diag->start_logp_max = lp_max;
    }
    free(start);
    sf_sedpost_free(p);
    return st;
}
