/*
 * The MCMC fallback of sedflow infer (sedflow/infer.h, docs/INFER.md s4):
 * galaxies flagged as outside the training support (SEDflow Appendix A)
 * whose photometry the flux likelihood can use are sampled with the
 * ensemble slice sampler on the SED posterior of paper eq. 1
 * (sedflow/sedpost.h), several galaxies pooled into one batch of model
 * evaluations (sf_sedpost_mcmc_many).  The kept chain is thinned evenly to
 * the catalog's n_samples draws, which then go through the same path as
 * flow samples (sf_infer_store: physical parameters, derived properties,
 * percentiles).
 *
 * Randomness: galaxy (row) i's sampler draws from the streams of
 * sf_infer_mcmc_seed(seed, i) only; the pool's batch composition is fixed
 * by the group of rows, so results do not depend on the thread count.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infer/infer_priv.h"
#include "sedflow/rng.h"

struct sf_infer_mcmc {
    const sf_infer *p;
    sf_model *m;
    sf_infer_mcmc_options o;
};

int sf_infer_mcmc_wanted(uint32_t flags, const double *flux_nmgy, const double *ivar_nmgy2, double z)
{
    const uint32_t reader_bad = SF_CAT_NONFINITE | SF_CAT_IVAR_NONPOS | SF_CAT_MISSING | SF_CAT_UNPARSED | SF_CAT_Z_BAD;
    if (!(flags & (SF_INFER_SUPPORT_FLAGS | SF_CAT_FLUX_NONPOS))) return 0;
    if (flags & reader_bad) return 0;
    if (!(z > 0 && z <= SF_ZMAX_MODEL)) return 0;
    for (int b = 0; b < SF_CATALOG_NBANDS; b++)
        if (!isfinite(flux_nmgy[b]) || !isfinite(ivar_nmgy2[b]) || !(ivar_nmgy2[b] > 0)) return 0;
    return 1;
}

uint64_t sf_infer_mcmc_seed(uint64_t seed, uint64_t row)
{
    return sf_mix64(sf_infer_galaxy_seed(seed, row) ^ 0x4D434D4346414C4CULL);
}

void sf_infer_mcmc_options_default(sf_infer_mcmc_options *o)
{
    memset(o, 0, sizeof *o);
    sf_sedpost_opts_default(&o->sampler);
    o->pool = 16;
}

void sf_infer_mcmc_free(sf_infer_mcmc *m)
{
    if (!m) return;
    sf_model_free(m->m);
    free(m);
}

const sf_infer_mcmc_options *sf_infer_mcmc_get_options(const sf_infer_mcmc *m) { return &m->o; }

sf_status sf_infer_mcmc_alloc(const sf_infer *p, const char *data_path, const sf_infer_mcmc_options *o,
                              sf_infer_mcmc **out)
{
    *out = NULL;
    sf_infer_mcmc_options d;
    if (!o) {
        sf_infer_mcmc_options_default(&d);
        o = &d;
    }
    const sf_mcmc_opts *mo = &o->sampler.mcmc;
    if (mo->nwalkers < 2 * SF_NU || mo->nwalkers % 2)
        return SF_ERROR(SF_EINVAL, "MCMC walkers = %zu: need an even number >= %d for 11 parameters", mo->nwalkers,
                        2 * SF_NU);
    if (mo->thin < 1 || mo->niter / mo->thin < 1)
        return SF_ERROR(SF_EINVAL, "MCMC: %zu kept iterations with thin %zu leave no kept step", mo->niter, mo->thin);
    if (o->pool < 1) return SF_ERROR(SF_EINVAL, "MCMC pool must be >= 1 galaxy");
    sf_infer_mcmc *m = calloc(1, sizeof *m);
    if (!m) return SF_ERROR(SF_ENOMEM, "out of memory");
    m->p = p;
    m->o = *o;
    sf_status st = sf_model_load(data_path, &m->m);
    if (st) {
        sf_infer_mcmc_free(m);
        return SF_ERROR(st, "MCMC fallback: cannot load the forward model from '%s': %s", data_path, sf_last_error());
    }
    *out = m;
    return SF_OK;
}

/* The nacc draws of a chain, evenly spaced in walker-major order, into u. */
static size_t thin_chain(const sf_mcmc_chain *c, size_t N, double *u)
{
    const uint64_t T = (uint64_t)c->nsteps * c->nwalkers;
    size_t nacc = T < N ? (size_t)T : N;
    for (size_t k = 0; k < nacc; k++) {
        uint64_t j = (uint64_t)k * T / nacc; /* k < nacc <= T, so j < T; exact in 64 bits for T, N < 2^32 */
        size_t w = (size_t)(j / c->nsteps), s = (size_t)(j % c->nsteps);
        memcpy(u + k * SF_NU, c->x + (s * c->nwalkers + w) * c->ndim, SF_NU * sizeof(double));
    }
    return nacc;
}

sf_status sf_infer_mcmc_run(const sf_infer_mcmc *m, const sf_catalog *cat, const size_t *rows, size_t n,
                            const uint32_t *flags, const char *reasons, sf_infer_block *b, sf_infer_mcmc_diag *diag)
{
    const sf_infer *p = m->p;
    const size_t N = p->opt.n_samples, NB = SF_CATALOG_NBANDS;
    if (n > b->cap || b->n_samples != N)
        return SF_ERROR(SF_EINVAL, "MCMC group of %zu galaxies does not fit the block (capacity %zu)", n, b->cap);
    for (size_t k = 0; k < n; k++) {
        size_t i = rows[k];
        if (i >= cat->n || !sf_infer_mcmc_wanted(flags[k], cat->flux_nmgy + i * NB, cat->ivar_nmgy2 + i * NB, cat->z[i]))
            return SF_ERROR(SF_EINVAL, "galaxy %zu is not a candidate for the MCMC fallback", i);
    }
    b->n = 0;
    if (n == 0) return SF_OK;
    sf_sedpost_galaxy *gal = calloc(n, sizeof *gal);
    sf_mcmc_chain **chains = calloc(n, sizeof *chains);
    sf_sedpost_diag *sd = calloc(n, sizeof *sd);
    sf_status *gst = calloc(n, sizeof *gst);
    sf_infer_work w = {0};
    sf_status st = SF_OK;
    if (!gal || !chains || !sd || !gst || sf_infer_work_alloc(&w, N))
        st = SF_ERROR(SF_ENOMEM, "out of memory for an MCMC group of %zu galaxies", n);
    for (size_t k = 0; !st && k < n; k++) {
        size_t i = rows[k];
        gal[k] = (sf_sedpost_galaxy){cat->flux_nmgy + i * NB, cat->ivar_nmgy2 + i * NB, cat->z[i], NULL,
                                     sf_infer_mcmc_seed(p->opt.seed, i)};
    }
    if (!st) st = sf_sedpost_mcmc_many(m->m, n, gal, &m->o.sampler, n, p->opt.nthreads, chains, sd, gst);
    const sf_mcmc_opts *mo = &m->o.sampler.mcmc;
    const double steps = (double)mo->nwalkers * (double)(mo->nburn + mo->niter + m->o.sampler.n_anneal);
    for (size_t k = 0; !st && k < n; k++) {
        size_t i = rows[k];
        sf_infer_mcmc_diag *d = &diag[k];
        uint32_t fl = flags[k] & ~(uint32_t)(SF_INFER_MCMC | SF_INFER_MCMC_NOCONV | SF_INFER_MCMC_FAILED);
        char *r = b->reason + k * SF_INFER_REASON_LEN, t[SF_INFER_REASON_LEN];
        memcpy(r, reasons + k * SF_INFER_REASON_LEN, SF_INFER_REASON_LEN);
        r[SF_INFER_REASON_LEN - 1] = '\0';
        *d = (sf_infer_mcmc_diag){gst[k], 0, NAN, NAN, NAN, 0, NAN};
        b->acceptance[k] = NAN; /* not written: the flow's acceptance stays */
        if (gst[k] == SF_OK) {
            size_t nacc = thin_chain(chains[k], N, w.u);
            st = sf_infer_store(p, &w, nacc, cat->z[i], k, b);
            if (st) break;
            const sf_sedpost_diag *g = &sd[k];
            d->converged = g->converged;
            d->rhat_max = g->rhat_max;
            d->tau_max = g->tau_max * (double)mo->thin;
            d->n_eval = (long long)g->info.neval;
            d->evals_per_step = steps > 0 ? (double)g->info.neval / steps : NAN;
            d->best_chi2 = g->best_chi2;
            fl |= SF_INFER_MCMC;
            snprintf(t, sizeof t, "posterior from MCMC (max R-hat %.3g, max tau %.3g it)", d->rhat_max, d->tau_max);
            sf_infer_reason_add(r, t);
            if (!g->converged) {
                fl |= SF_INFER_MCMC_NOCONV;
                snprintf(t, sizeof t, "MCMC not converged: %.160s", g->warning);
                sf_infer_reason_add(r, t);
            }
        } else {
            fl |= SF_INFER_MCMC_FAILED;
            st = sf_infer_store(p, &w, 0, cat->z[i], k, b); /* NaN; the file keeps the flow's samples */
            if (st) break;
            snprintf(t, sizeof t, "MCMC fallback failed (%s): %.180s", sf_status_name(gst[k]), sd[k].warning);
            sf_infer_reason_add(r, t);
        }
        b->flags[k] = fl;
    }
    if (!st) b->n = n;
    for (size_t k = 0; chains && k < n; k++) sf_mcmc_chain_free(chains[k]);
    sf_infer_work_free(&w);
    free(gal);
    free(chains);
    free(sd);
    free(gst);
    return st;
}
