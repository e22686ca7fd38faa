/*
 * Ensemble samplers: ensemble slice sampling (Karamanis & Beutler 2020, the
 * algorithm of zeus: differential and Gaussian moves, stepping-out and
 * shrinking, tuned mu) and the affine-invariant stretch move (Goodman & Weare
 * 2010).  See include/sedflow/mcmc.h for the conventions.
 */
#include "sedflow/mcmc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <omp.h>

#include "core/threads.h"

#include "sedflow/rng.h"
#include "mcmc/ensemble_priv.h"

/* Tuning stop rule of zeus (ensemble.py: tolerance 0.05, patience 5). */
#define TUNE_TOLERANCE 0.05
#define TUNE_PATIENCE 5

#define STREAM_SHUFFLE SF__STREAM_SHUFFLE
#define STREAM_JITTER SF__STREAM_JITTER
#define W_OK SF__W_OK
#define W_NOEXPAND SF__W_NOEXPAND
#define W_NOCONTRACT SF__W_NOCONTRACT
#define W_BADLOGP SF__W_BADLOGP

void sf_mcmc_opts_default(sf_mcmc_opts *o)
{
    memset(o, 0, sizeof *o);
    o->nwalkers = 32;
    o->nburn = 1000;
    o->niter = 5000;
    o->thin = 1;
    o->seed = 1;
    o->move = SF_MCMC_SLICE_DIFFERENTIAL;
    o->mu0 = 1.0;
    o->tune = 1;
    o->stretch_a = 2.0;
    o->max_expansions = 10000;
    o->max_contractions = 10000;
    o->jitter = 0.0;
    o->nthreads = 1;
}

void sf_mcmc_free(sf_mcmc *s)
{
    if (!s) return;
    if (s->rng)
        for (int i = 0; i < s->nthr; i++) gsl_rng_free(s->rng[i]);
    free(s->rng);
    free(s->x);
    free(s->lp);
    free(s->perm);
    free(s->chol);
    free(s->mean);
    free(s->work);
    free(s->wstat);
    free(s->wval);
    if (s->wrng)
        for (size_t k = 0; k < s->nwalkers; k++) gsl_rng_free(s->wrng[k]);
    free(s->wrng);
    free(s->eta);
    free(s->z0);
    free(s->L);
    free(s->R);
    free(s->tt);
    free(s->ne);
    free(s->nc);
    free(s->phase);
    free(s->bx);
    free(s->blp);
    free(s->bmap);
    free(s);
}

sf_status sf_mcmc_alloc(size_t ndim, const sf_mcmc_opts *opts, sf_mcmc **out)
{
    *out = NULL;
    sf_mcmc_opts o;
    if (opts) o = *opts;
    else sf_mcmc_opts_default(&o);
    if (ndim < 1) return SF_ERROR(SF_EINVAL, "ndim must be >= 1");
    if (o.nwalkers < 4 || o.nwalkers % 2)
        return SF_ERROR(SF_EINVAL, "nwalkers = %zu: must be even and >= 4", o.nwalkers);
    if (o.nwalkers < 2 * ndim)
        return SF_ERROR(SF_EINVAL, "nwalkers = %zu < 2 * ndim = %zu", o.nwalkers, 2 * ndim);
    if (o.move == SF_MCMC_SLICE_GAUSSIAN && o.nwalkers / 2 < ndim + 1)
        return SF_ERROR(SF_EINVAL, "Gaussian move needs nwalkers/2 >= ndim + 1 (nwalkers = %zu, ndim = %zu)",
                        o.nwalkers, ndim);
    if (o.move != SF_MCMC_SLICE_DIFFERENTIAL && o.move != SF_MCMC_SLICE_GAUSSIAN && o.move != SF_MCMC_STRETCH)
        return SF_ERROR(SF_EINVAL, "unknown move %d", (int)o.move);
    if (o.thin < 1) return SF_ERROR(SF_EINVAL, "thin must be >= 1");
    if (!(o.mu0 > 0) || !isfinite(o.mu0)) return SF_ERROR(SF_EINVAL, "mu0 = %g must be > 0", o.mu0);
    if (!(o.stretch_a > 1) || !isfinite(o.stretch_a))
        return SF_ERROR(SF_EINVAL, "stretch_a = %g must be > 1", o.stretch_a);
    if (o.max_expansions < 1 || o.max_contractions < 1)
        return SF_ERROR(SF_EINVAL, "max_expansions and max_contractions must be >= 1");
    if (!(o.jitter >= 0) || !isfinite(o.jitter)) return SF_ERROR(SF_EINVAL, "jitter = %g must be >= 0", o.jitter);
    if (o.nthreads < 0) return SF_ERROR(SF_EINVAL, "nthreads = %d must be >= 0", o.nthreads);

    sf_mcmc *s = calloc(1, sizeof *s);
    if (!s) return SF_ERROR(SF_ENOMEM, "sampler");
    s->ndim = ndim;
    s->nwalkers = o.nwalkers;
    s->opts = o;
    s->nthr = sf_nthreads(o.nthreads);
    size_t nw = o.nwalkers;
    s->x = malloc(nw * ndim * sizeof *s->x);
    s->lp = malloc(nw * sizeof *s->lp);
    s->perm = malloc(nw * sizeof *s->perm);
    s->chol = malloc(ndim * ndim * sizeof *s->chol);
    s->mean = malloc(ndim * sizeof *s->mean);
    s->work = malloc((size_t)s->nthr * 3 * ndim * sizeof *s->work);
    s->wstat = malloc(nw * sizeof *s->wstat);
    s->wval = malloc(nw * sizeof *s->wval);
    s->rng = calloc((size_t)s->nthr, sizeof *s->rng);
    s->wrng = calloc(nw, sizeof *s->wrng);
    s->eta = malloc(nw * ndim * sizeof *s->eta);
    s->z0 = malloc(nw * sizeof *s->z0);
    s->L = malloc(nw * sizeof *s->L);
    s->R = malloc(nw * sizeof *s->R);
    s->tt = malloc(nw * sizeof *s->tt);
    s->ne = malloc(nw * sizeof *s->ne);
    s->nc = malloc(nw * sizeof *s->nc);
    s->phase = malloc(nw * sizeof *s->phase);
    s->bx = malloc(nw * ndim * sizeof *s->bx);
    s->blp = malloc(nw * sizeof *s->blp);
    s->bmap = malloc(nw * sizeof *s->bmap);
    if (!s->x || !s->lp || !s->perm || !s->chol || !s->mean || !s->work || !s->wstat || !s->wval || !s->rng ||
        !s->wrng || !s->eta || !s->z0 || !s->L || !s->R || !s->tt || !s->ne || !s->nc || !s->phase || !s->bx ||
        !s->blp || !s->bmap) {
        sf_mcmc_free(s);
        return SF_ERROR(SF_ENOMEM, "sampler arrays (%zu walkers x %zu dims)", nw, ndim);
    }
    int fail = 0;
    for (int i = 0; i < s->nthr; i++) fail |= !(s->rng[i] = sf_rng_alloc(o.seed));
    for (size_t k = 0; k < nw; k++) fail |= !(s->wrng[k] = sf_rng_alloc(o.seed));
    if (fail) {
        sf_mcmc_free(s);
        return SF_ERROR(SF_ENOMEM, "random generators");
    }
    *out = s;
    return SF_OK;
}

size_t sf_mcmc_nwalkers(const sf_mcmc *s) { return s->nwalkers; }
size_t sf_mcmc_ndim(const sf_mcmc *s) { return s->ndim; }
const double *sf_mcmc_position(const sf_mcmc *s) { return s->x; }
const double *sf_mcmc_logp(const sf_mcmc *s) { return s->lp; }
sf_mcmc_info sf_mcmc_get_info(const sf_mcmc *s) { return s->info; }

/* Mean and sample covariance of walkers idx[0..n-1]; lower Cholesky factor
 * into chol (row-major).  Returns 0 on success, 1 when not positive
 * definite.  If `corr_tol` > 0 the test is done on the correlation matrix
 * with pivots required to exceed corr_tol (rank check), and chol is left as
 * the factor of the correlation matrix. */
int sf__mcmc_chol(const double *x, size_t ndim, const size_t *idx, size_t n, double *mean,
                         double *chol, double corr_tol)
{
    for (size_t d = 0; d < ndim; d++) {
        double m = 0;
        for (size_t i = 0; i < n; i++) m += x[idx[i] * ndim + d];
        mean[d] = m / (double)n;
    }
    for (size_t a = 0; a < ndim; a++)
        for (size_t b = 0; b <= a; b++) {
            double c = 0;
            for (size_t i = 0; i < n; i++)
                c += (x[idx[i] * ndim + a] - mean[a]) * (x[idx[i] * ndim + b] - mean[b]);
            chol[a * ndim + b] = c / (double)(n - 1);
        }
    if (corr_tol > 0) {
        for (size_t a = 0; a < ndim; a++)
            if (!(chol[a * ndim + a] > 0)) return 1;
        for (size_t a = 0; a < ndim; a++)
            for (size_t b = 0; b < a; b++)
                chol[a * ndim + b] /= sqrt(chol[a * ndim + a] * chol[b * ndim + b]);
        for (size_t a = 0; a < ndim; a++) chol[a * ndim + a] = 1.0;
    }
    /* In-place Cholesky on the lower triangle. */
    for (size_t j = 0; j < ndim; j++) {
        double dsum = chol[j * ndim + j];
        for (size_t k = 0; k < j; k++) dsum -= chol[j * ndim + k] * chol[j * ndim + k];
        if (!(dsum > (corr_tol > 0 ? corr_tol : 0.0)) || !isfinite(dsum)) return 1;
        double ljj = sqrt(dsum);
        chol[j * ndim + j] = ljj;
        for (size_t i = j + 1; i < ndim; i++) {
            double v = chol[i * ndim + j];
            for (size_t k = 0; k < j; k++) v -= chol[i * ndim + k] * chol[j * ndim + k];
            chol[i * ndim + j] = v / ljj;
        }
    }
    return 0;
}

#define bad_logp sf__bad_logp

long sf__mcmc_eval_all(sf_mcmc *s)
{
    long nw = (long)s->nwalkers;
    if (s->logp_batch) {
        sf_status st = s->logp_batch(s->x, s->nwalkers, s->lp, s->ctx);
        if (st) return -2 - (long)st;
    } else {
#pragma omp parallel for schedule(dynamic) num_threads(s->nthr) if (s->nthr > 1)
        for (long k = 0; k < nw; k++) s->lp[k] = s->logp(s->x + (size_t)k * s->ndim, s->ctx);
    }
    s->info.neval += s->nwalkers;
    for (long k = 0; k < nw; k++)
        if (!(s->lp[k] > -INFINITY) || bad_logp(s->lp[k])) return k;
    return -1;
}

static sf_status jitter_start(sf_mcmc *s)
{
    if (s->logp_batch) return sf__mcmc_jitter_batch(s);
    const size_t nd = s->ndim;
    long nw = (long)s->nwalkers;
    double *x0 = malloc(s->nwalkers * nd * sizeof *x0);
    if (!x0) return SF_ERROR(SF_ENOMEM, "jitter copy");
    memcpy(x0, s->x, s->nwalkers * nd * sizeof *x0);
    int fail = 0;
#pragma omp parallel for schedule(dynamic) num_threads(s->nthr) if (s->nthr > 1) reduction(| : fail)
    for (long k = 0; k < nw; k++) {
        gsl_rng *r = s->rng[omp_get_thread_num()];
        sf_rng_set_stream(r, s->opts.seed, STREAM_JITTER + (uint64_t)k);
        double *xk = s->x + (size_t)k * nd;
        const double *x0k = x0 + (size_t)k * nd;
        int ok = 0;
        for (int tries = 0; tries < 100 && !ok; tries++) {
            for (size_t d = 0; d < nd; d++)
                xk[d] = x0k[d] + s->opts.jitter * fmax(fabs(x0k[d]), 1.0) * gsl_ran_gaussian_ziggurat(r, 1.0);
            double v = s->logp(xk, s->ctx);
            ok = v > -INFINITY && !bad_logp(v);
        }
        if (!ok) fail = 1;
    }
    free(x0);
    if (fail) return SF_ERROR(SF_EINVAL, "jitter %g: could not place every walker at finite logp in 100 draws", s->opts.jitter);
    s->info.jittered = 1;
    return SF_OK;
}

static sf_status set_common(sf_mcmc *s, void *ctx, const double *x0)
{
    s->ready = 0;
    s->ctx = ctx;
    memset(&s->info, 0, sizeof s->info);
    s->info.mu = s->opts.mu0;
    s->info.tuning = s->opts.tune && s->opts.move != SF_MCMC_STRETCH && s->opts.nburn > 0;
    s->patience = 0;
    const size_t nd = s->ndim, nw = s->nwalkers;
    for (size_t i = 0; i < nw * nd; i++)
        if (!isfinite(x0[i]))
            return SF_ERROR(SF_EINVAL, "starting point of walker %zu, parameter %zu is not finite", i / nd, i % nd);
    memcpy(s->x, x0, nw * nd * sizeof *s->x);
    for (size_t k = 0; k < nw; k++) s->perm[k] = k;

    long bad = sf__mcmc_eval_all(s);
    if (bad <= -2) return (sf_status)(-2 - bad);
    if (bad >= 0)
        return SF_ERROR(SF_EDOMAIN, "walker %ld starts outside the support (logp = %g)", bad, s->lp[bad]);
    /* Degenerate ensemble: covariance of all walkers not of full rank. */
    if (sf__mcmc_chol(s->x, nd, s->perm, nw, s->mean, s->chol, 1e-10)) {
        if (s->opts.jitter <= 0)
            return SF_ERROR(SF_EINVAL,
                            "degenerate starting ensemble (identical walkers or all in a subspace of < %zu "
                            "dimensions): spread the starting points or set a jitter",
                            nd);
        sf_status st = jitter_start(s);
        if (st) return st;
        bad = sf__mcmc_eval_all(s);
        if (bad <= -2) return (sf_status)(-2 - bad);
        if (bad >= 0) return SF_ERROR(SF_EINTERNAL, "walker %ld: logp changed after jitter", bad);
        if (sf__mcmc_chol(s->x, nd, s->perm, nw, s->mean, s->chol, 1e-10))
            return SF_ERROR(SF_EINVAL, "starting ensemble still degenerate after jitter %g", s->opts.jitter);
    }
    s->ready = 1;
    return SF_OK;
}

sf_status sf_mcmc_set(sf_mcmc *s, sf_mcmc_logp_fn logp, void *ctx, const double *x0)
{
    if (!s || !logp || !x0) return SF_ERROR(SF_EINVAL, "NULL argument");
    s->logp = logp;
    s->logp_batch = NULL;
    return set_common(s, ctx, x0);
}

sf_status sf_mcmc_set_batch(sf_mcmc *s, sf_mcmc_logp_batch_fn logp_batch, void *ctx, const double *x0)
{
    if (!s || !logp_batch || !x0) return SF_ERROR(SF_EINVAL, "NULL argument");
    s->logp = NULL;
    s->logp_batch = logp_batch;
    return set_common(s, ctx, x0);
}

/* One slice-sampling update of walker w along direction eta (K&B 2020
 * alg. 1-2, Neal 2003 figs. 3 and 5).  xn is scratch [ndim]. */
static int slice_update(sf_mcmc *s, size_t w, const double *eta, double *xn, gsl_rng *r, size_t *nexp,
                        size_t *ncon, size_t *nev)
{
    const size_t nd = s->ndim;
    double *x0 = s->x + w * nd;
    const double z0 = s->lp[w] - gsl_ran_exponential(r, 1.0);
    double L = -gsl_rng_uniform(r), R = L + 1.0;
    size_t ne = 0, nc = 0, nv = 0;
    int st = W_OK;
    /* Stepping-out, left then right, one shared budget. */
    for (int side = 0; side < 2 && st == W_OK; side++) {
        for (;;) {
            double t = side ? R : L;
            for (size_t d = 0; d < nd; d++) xn[d] = x0[d] + t * eta[d];
            double v = s->logp(xn, s->ctx);
            nv++;
            if (bad_logp(v)) {
                s->wval[w] = v;
                st = W_BADLOGP;
                break;
            }
            if (!(v > z0)) break;
            if (ne >= s->opts.max_expansions) {
                st = W_NOEXPAND;
                break;
            }
            ne++;
            if (side) R += 1.0;
            else L -= 1.0;
        }
    }
    /* Shrinking. */
    while (st == W_OK) {
        double t = L + gsl_rng_uniform(r) * (R - L);
        for (size_t d = 0; d < nd; d++) xn[d] = x0[d] + t * eta[d];
        double v = s->logp(xn, s->ctx);
        nv++;
        if (bad_logp(v)) {
            s->wval[w] = v;
            st = W_BADLOGP;
            break;
        }
        if (v > z0) {
            memcpy(x0, xn, nd * sizeof *xn);
            s->lp[w] = v;
            break;
        }
        if (nc >= s->opts.max_contractions) {
            st = W_NOCONTRACT;
            break;
        }
        nc++;
        if (t < 0) L = t;
        else R = t;
    }
    *nexp = ne;
    *ncon = nc;
    *nev = nv;
    return st;
}

int sf__mcmc_direction(const sf_mcmc *s, size_t b0, size_t h, gsl_rng *r, double *eta, double *tmp)
{
    const size_t nd = s->ndim;
    const double mu = s->info.mu;
    if (s->opts.move == SF_MCMC_SLICE_DIFFERENTIAL) {
        size_t l = gsl_rng_uniform_int(r, h), m = gsl_rng_uniform_int(r, h - 1);
        if (m >= l) m++;
        const double *xl = s->x + s->perm[b0 + l] * nd, *xm = s->x + s->perm[b0 + m] * nd;
        for (size_t d = 0; d < nd; d++) eta[d] = 2.0 * mu * (xl[d] - xm[d]);
    } else {
        for (size_t d = 0; d < nd; d++) tmp[d] = gsl_ran_gaussian_ziggurat(r, 1.0);
        for (size_t d = 0; d < nd; d++) {
            double v = 0;
            for (size_t k = 0; k <= d; k++) v += s->chol[d * nd + k] * tmp[k];
            eta[d] = 2.0 * mu * v;
        }
    }
    int zero = 1;
    for (size_t d = 0; d < nd; d++) zero &= eta[d] == 0.0;
    return zero;
}

/* Update walkers perm[a0 .. a0+h-1] using the other half perm[b0 .. b0+h-1]. */
static sf_status half_step(sf_mcmc *s, size_t a0, size_t b0, size_t h, unsigned long long *nexp_tot,
                           unsigned long long *ncon_tot)
{
    const size_t nd = s->ndim, nw = s->nwalkers;
    const sf_mcmc_move mv = s->opts.move;
    if (mv == SF_MCMC_SLICE_GAUSSIAN && sf__mcmc_chol(s->x, nd, s->perm + b0, h, s->mean, s->chol, 0))
        return SF_ERROR(SF_ENOCONV, "iteration %zu: covariance of the inactive half is not positive definite "
                        "(walkers collapsed)", s->info.iter);
    if (s->logp_batch) return sf__mcmc_half_step_batch(s, a0, b0, h, nexp_tot, ncon_tot);
    const double a = s->opts.stretch_a;
    const uint64_t t = s->info.iter;
    unsigned long long ne_sum = 0, nc_sum = 0, nv_sum = 0, nacc = 0;
#pragma omp parallel for schedule(dynamic) num_threads(s->nthr) if (s->nthr > 1) reduction(+ : ne_sum, nc_sum, nv_sum, nacc)
    for (long ia = 0; ia < (long)h; ia++) {
        const int tid = omp_get_thread_num();
        gsl_rng *r = s->rng[tid];
        double *eta = s->work + (size_t)tid * 3 * nd, *xn = eta + nd, *tmp = xn + nd;
        const size_t w = s->perm[a0 + (size_t)ia];
        sf_rng_set_stream(r, s->opts.seed, t * nw + w);
        s->wstat[w] = W_OK;
        double *xw = s->x + w * nd;
        if (mv == SF_MCMC_STRETCH) {
            const size_t j = s->perm[b0 + gsl_rng_uniform_int(r, h)];
            const double u = gsl_rng_uniform(r);
            const double z = ((a - 1.0) * u + 1.0) * ((a - 1.0) * u + 1.0) / a;
            const double *xj = s->x + j * nd;
            for (size_t d = 0; d < nd; d++) xn[d] = xj[d] + z * (xw[d] - xj[d]);
            double v = s->logp(xn, s->ctx);
            nv_sum++;
            if (bad_logp(v)) {
                s->wstat[w] = W_BADLOGP;
                s->wval[w] = v;
                continue;
            }
            double lr = (double)(nd - 1) * log(z) + v - s->lp[w];
            if (v > -INFINITY && log(gsl_rng_uniform_pos(r)) < lr) {
                memcpy(xw, xn, nd * sizeof *xn);
                s->lp[w] = v;
                nacc++;
            }
            continue;
        }
        /* eta = 0 (identical pair): the identity move, which keeps the target. */
        if (sf__mcmc_direction(s, b0, h, r, eta, tmp)) continue;
        size_t ne, nc, nv;
        s->wstat[w] = slice_update(s, w, eta, xn, r, &ne, &nc, &nv);
        ne_sum += ne;
        nc_sum += nc;
        nv_sum += nv;
    }
    s->info.neval += nv_sum;
    s->info.nexpand += ne_sum;
    s->info.ncontract += nc_sum;
    s->info.naccept += nacc;
    *nexp_tot += ne_sum;
    *ncon_tot += nc_sum;
    return sf__mcmc_report(s, a0, h);
}

sf_status sf__mcmc_report(const sf_mcmc *s, size_t a0, size_t h)
{
    const size_t nw = s->nwalkers;
    const double mu = s->info.mu;
    /* Report the lowest-numbered failing walker (deterministic message). */
    size_t i = nw;
    for (size_t ia = 0; ia < h; ia++) {
        size_t w = s->perm[a0 + ia];
        if (s->wstat[w] != W_OK && w < i) i = w;
    }
    if (i < nw) {
        switch (s->wstat[i]) {
        case W_NOEXPAND:
            return SF_ERROR(SF_ENOCONV,
                            "iteration %zu, walker %zu: slice not bracketed after %zu expansions (improper or "
                            "flat density, or mu = %g far too small)",
                            s->info.iter, i, s->opts.max_expansions, mu);
        case W_NOCONTRACT:
            return SF_ERROR(SF_ENOCONV,
                            "iteration %zu, walker %zu: no point inside the slice after %zu contractions",
                            s->info.iter, i, s->opts.max_contractions);
        case W_BADLOGP:
            return SF_ERROR(SF_EDOMAIN, "iteration %zu, walker %zu: log-density returned %g", s->info.iter, i,
                            s->wval[i]);
        default: break;
        }
    }
    return SF_OK;
}

sf_status sf_mcmc_iterate(sf_mcmc *s)
{
    if (!s || !s->ready) return SF_ERROR(SF_EINVAL, "sampler not set (call sf_mcmc_set first)");
    const size_t nw = s->nwalkers, h = nw / 2;
    /* Random split into halves (Fisher-Yates on the iteration's own stream). */
    gsl_rng *r = s->rng[0];
    sf_rng_set_stream(r, s->opts.seed, STREAM_SHUFFLE + s->info.iter);
    for (size_t k = 0; k < nw; k++) s->perm[k] = k;
    for (size_t k = nw - 1; k > 0; k--) {
        size_t j = gsl_rng_uniform_int(r, k + 1);
        size_t tmp = s->perm[k];
        s->perm[k] = s->perm[j];
        s->perm[j] = tmp;
    }
    unsigned long long ne = 0, nc = 0;
    sf_status st = half_step(s, 0, h, h, &ne, &nc);
    if (!st) st = half_step(s, h, 0, h, &ne, &nc);
    if (st) {
        s->ready = 0;
        return st;
    }
    /* zeus: mu <- mu * 2 Ne / (Ne + Nc), with patience-based stop. */
    if (s->info.tuning) {
        double nexp = ne > 0 ? (double)ne : 1.0, ntot = nexp + (double)nc;
        s->info.mu *= 2.0 * nexp / ntot;
        if (fabs(nexp / ntot - 0.5) < TUNE_TOLERANCE) s->patience++;
        if (s->patience > TUNE_PATIENCE) s->info.tuning = 0;
    }
    s->info.iter++;
    if (s->info.iter >= s->opts.nburn) s->info.tuning = 0;
    return SF_OK;
}

void sf_mcmc_chain_free(sf_mcmc_chain *c)
{
    if (!c) return;
    free(c->x);
    free(c->logp);
    free(c);
}

sf_status sf_mcmc_chain_alloc(size_t nsteps, size_t nwalkers, size_t ndim, sf_mcmc_chain **out)
{
    *out = NULL;
    if (nwalkers < 1 || ndim < 1) return SF_ERROR(SF_EINVAL, "chain with zero walkers or dimensions");
    sf_mcmc_chain *c = calloc(1, sizeof *c);
    if (!c) return SF_ERROR(SF_ENOMEM, "chain");
    c->nsteps = nsteps;
    c->nwalkers = nwalkers;
    c->ndim = ndim;
    size_t n = nsteps ? nsteps : 1;
    c->x = malloc(n * nwalkers * ndim * sizeof *c->x);
    c->logp = malloc(n * nwalkers * sizeof *c->logp);
    if (!c->x || !c->logp) {
        sf_mcmc_chain_free(c);
        return SF_ERROR(SF_ENOMEM, "chain of %zu x %zu x %zu", nsteps, nwalkers, ndim);
    }
    *out = c;
    return SF_OK;
}

static sf_status run_any(size_t ndim, sf_mcmc_logp_fn logp, sf_mcmc_logp_batch_fn logp_batch, void *ctx,
                         const double *x0, const sf_mcmc_opts *opts, sf_mcmc_chain **out)
{
    *out = NULL;
    sf_mcmc *s = NULL;
    sf_status st = sf_mcmc_alloc(ndim, opts, &s);
    if (st) return st;
    const sf_mcmc_opts *o = &s->opts;
    sf_mcmc_chain *c = NULL;
    st = sf_mcmc_chain_alloc(o->niter / o->thin, o->nwalkers, ndim, &c);
    if (!st) st = logp_batch ? sf_mcmc_set_batch(s, logp_batch, ctx, x0) : sf_mcmc_set(s, logp, ctx, x0);
    for (size_t i = 0; !st && i < o->nburn; i++) st = sf_mcmc_iterate(s);
    const size_t row = o->nwalkers * ndim;
    for (size_t i = 0, k = 0; !st && i < o->niter; i++) {
        st = sf_mcmc_iterate(s);
        if (!st && (i + 1) % o->thin == 0 && k < c->nsteps) {
            memcpy(c->x + k * row, s->x, row * sizeof *s->x);
            memcpy(c->logp + k * o->nwalkers, s->lp, o->nwalkers * sizeof *s->lp);
            k++;
        }
    }
    if (st) {
        sf_mcmc_chain_free(c);
        sf_mcmc_free(s);
        return st;
    }
    c->info = s->info;
    sf_mcmc_free(s);
    *out = c;
    return SF_OK;
}

sf_status sf_mcmc_run(size_t ndim, sf_mcmc_logp_fn logp, void *ctx, const double *x0,
                      const sf_mcmc_opts *opts, sf_mcmc_chain **out)
{
    *out = NULL;
    if (!logp) return SF_ERROR(SF_EINVAL, "NULL log-density");
    return run_any(ndim, logp, NULL, ctx, x0, opts, out);
}

sf_status sf_mcmc_run_batch(size_t ndim, sf_mcmc_logp_batch_fn logp_batch, void *ctx, const double *x0,
                            const sf_mcmc_opts *opts, sf_mcmc_chain **out)
{
    *out = NULL;
    if (!logp_batch) return SF_ERROR(SF_EINVAL, "NULL log-density");
    return run_any(ndim, NULL, logp_batch, ctx, x0, opts, out);
}
