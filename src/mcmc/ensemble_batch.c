/*
 * Batched log-density path of the ensemble samplers: the walkers of the
 * active half advance in lockstep, one batch of points per stepping-out or
 * shrinking round (like zeus's vectorised mode), so an expensive batched
 * model (sgemm emulators) is called with up to nwalkers points at a time.
 * Each walker draws the same random numbers in the same order as on the
 * per-point path (ensemble.c), hence bit-identical chains.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_randist.h>

#include "mcmc/ensemble_priv.h"
#include "sedflow/rng.h"

/* Phase bits of an active walker. */
enum { PH_LEFT = 1, PH_RIGHT = 2, PH_SHRINK = 4, PH_DONE = 8 };

sf_status sf__mcmc_jitter_batch(sf_mcmc *s)
{
    const size_t nd = s->ndim, nw = s->nwalkers;
    double *x0 = malloc(nw * nd * sizeof *x0);
    if (!x0) return SF_ERROR(SF_ENOMEM, "jitter copy");
    memcpy(x0, s->x, nw * nd * sizeof *x0);
    for (size_t k = 0; k < nw; k++) {
        sf_rng_set_stream(s->wrng[k], s->opts.seed, SF__STREAM_JITTER + (uint64_t)k);
        s->phase[k] = 0; /* 0: not yet at finite logp */
    }
    sf_status st = SF_OK;
    for (int tries = 0; tries < 100; tries++) {
        size_t nb = 0;
        for (size_t k = 0; k < nw; k++) {
            if (s->phase[k]) continue;
            double *xk = s->x + k * nd;
            const double *x0k = x0 + k * nd;
            for (size_t d = 0; d < nd; d++)
                xk[d] = x0k[d] + s->opts.jitter * fmax(fabs(x0k[d]), 1.0) * gsl_ran_gaussian_ziggurat(s->wrng[k], 1.0);
            memcpy(s->bx + nb * nd, xk, nd * sizeof *xk);
            s->bmap[nb++] = k;
        }
        if (!nb) break;
        st = s->logp_batch(s->bx, nb, s->blp, s->ctx);
        if (st) break;
        for (size_t b = 0; b < nb; b++) {
            double v = s->blp[b];
            s->phase[s->bmap[b]] = v > -INFINITY && !sf__bad_logp(v);
        }
    }
    free(x0);
    if (st) return st;
    for (size_t k = 0; k < nw; k++)
        if (!s->phase[k])
            return SF_ERROR(SF_EINVAL, "jitter %g: could not place every walker at finite logp in 100 draws",
                            s->opts.jitter);
    s->info.jittered = 1;
    return SF_OK;
}

static void point_on_line(double *out, const double *x0, double t, const double *eta, size_t nd)
{
    for (size_t d = 0; d < nd; d++) out[d] = x0[d] + t * eta[d];
}

static sf_status stretch_batch(sf_mcmc *s, size_t a0, size_t b0, size_t h)
{
    const size_t nd = s->ndim, nw = s->nwalkers;
    const double a = s->opts.stretch_a;
    for (size_t ia = 0; ia < h; ia++) {
        const size_t w = s->perm[a0 + ia];
        gsl_rng *r = s->wrng[ia];
        sf_rng_set_stream(r, s->opts.seed, s->info.iter * nw + w);
        s->wstat[w] = SF__W_OK;
        const size_t j = s->perm[b0 + gsl_rng_uniform_int(r, h)];
        const double u = gsl_rng_uniform(r);
        const double z = ((a - 1.0) * u + 1.0) * ((a - 1.0) * u + 1.0) / a;
        s->tt[ia] = z;
        const double *xj = s->x + j * nd, *xw = s->x + w * nd;
        double *xn = s->bx + ia * nd;
        for (size_t d = 0; d < nd; d++) xn[d] = xj[d] + z * (xw[d] - xj[d]);
    }
    sf_status st = s->logp_batch(s->bx, h, s->blp, s->ctx);
    if (st) return st;
    s->info.neval += h;
    for (size_t ia = 0; ia < h; ia++) {
        const size_t w = s->perm[a0 + ia];
        const double v = s->blp[ia], z = s->tt[ia];
        if (sf__bad_logp(v)) {
            s->wstat[w] = SF__W_BADLOGP;
            s->wval[w] = v;
            continue;
        }
        double lr = (double)(nd - 1) * log(z) + v - s->lp[w];
        if (v > -INFINITY && log(gsl_rng_uniform_pos(s->wrng[ia])) < lr) {
            memcpy(s->x + w * nd, s->bx + ia * nd, nd * sizeof(double));
            s->lp[w] = v;
            s->info.naccept++;
        }
    }
    return sf__mcmc_report(s, a0, h);
}

sf_status sf__mcmc_half_step_batch(sf_mcmc *s, size_t a0, size_t b0, size_t h, unsigned long long *nexp_tot,
                                   unsigned long long *ncon_tot)
{
    if (s->opts.move == SF_MCMC_STRETCH) return stretch_batch(s, a0, b0, h);
    const size_t nd = s->ndim, nw = s->nwalkers;
    double *tmp = s->work;
    /* Directions, slice heights and initial intervals (same draws as
     * slice_update in ensemble.c). */
    for (size_t ia = 0; ia < h; ia++) {
        const size_t w = s->perm[a0 + ia];
        gsl_rng *r = s->wrng[ia];
        sf_rng_set_stream(r, s->opts.seed, s->info.iter * nw + w);
        s->wstat[w] = SF__W_OK;
        s->ne[ia] = s->nc[ia] = 0;
        if (sf__mcmc_direction(s, b0, h, r, s->eta + ia * nd, tmp)) {
            s->phase[ia] = PH_DONE;
            continue;
        }
        s->z0[ia] = s->lp[w] - gsl_ran_exponential(r, 1.0);
        s->L[ia] = -gsl_rng_uniform(r);
        s->R[ia] = s->L[ia] + 1.0;
        s->phase[ia] = PH_LEFT | PH_RIGHT;
    }
    unsigned long long nv = 0;
    /* Stepping-out rounds: both ends of every walker's interval at once. */
    for (;;) {
        size_t nb = 0;
        for (size_t ia = 0; ia < h; ia++) {
            const double *x0 = s->x + s->perm[a0 + ia] * nd, *eta = s->eta + ia * nd;
            if (s->phase[ia] & PH_LEFT) {
                point_on_line(s->bx + nb * nd, x0, s->L[ia], eta, nd);
                s->bmap[nb++] = 2 * ia;
            }
            if (s->phase[ia] & PH_RIGHT) {
                point_on_line(s->bx + nb * nd, x0, s->R[ia], eta, nd);
                s->bmap[nb++] = 2 * ia + 1;
            }
        }
        if (!nb) break;
        sf_status st = s->logp_batch(s->bx, nb, s->blp, s->ctx);
        if (st) return st;
        nv += nb;
        for (size_t b = 0; b < nb; b++) {
            const size_t ia = s->bmap[b] / 2, side = s->bmap[b] % 2, w = s->perm[a0 + ia];
            const double v = s->blp[b];
            if (s->phase[ia] & PH_DONE) continue; /* failed on its other end */
            if (sf__bad_logp(v)) {
                s->wstat[w] = SF__W_BADLOGP;
                s->wval[w] = v;
                s->phase[ia] = PH_DONE;
            } else if (!(v > s->z0[ia])) {
                s->phase[ia] &= side ? ~PH_RIGHT : ~PH_LEFT;
            } else if (s->ne[ia] >= s->opts.max_expansions) {
                s->wstat[w] = SF__W_NOEXPAND;
                s->phase[ia] = PH_DONE;
            } else {
                s->ne[ia]++;
                if (side) s->R[ia] += 1.0;
                else s->L[ia] -= 1.0;
            }
        }
    }
    for (size_t ia = 0; ia < h; ia++)
        if (s->phase[ia] == 0) s->phase[ia] = PH_SHRINK;
    /* Shrinking rounds. */
    for (;;) {
        size_t nb = 0;
        for (size_t ia = 0; ia < h; ia++) {
            if (s->phase[ia] != PH_SHRINK) continue;
            const double *x0 = s->x + s->perm[a0 + ia] * nd;
            s->tt[ia] = s->L[ia] + gsl_rng_uniform(s->wrng[ia]) * (s->R[ia] - s->L[ia]);
            point_on_line(s->bx + nb * nd, x0, s->tt[ia], s->eta + ia * nd, nd);
            s->bmap[nb++] = ia;
        }
        if (!nb) break;
        sf_status st = s->logp_batch(s->bx, nb, s->blp, s->ctx);
        if (st) return st;
        nv += nb;
        for (size_t b = 0; b < nb; b++) {
            const size_t ia = s->bmap[b], w = s->perm[a0 + ia];
            const double v = s->blp[b];
            if (sf__bad_logp(v)) {
                s->wstat[w] = SF__W_BADLOGP;
                s->wval[w] = v;
                s->phase[ia] = PH_DONE;
            } else if (v > s->z0[ia]) {
                memcpy(s->x + w * nd, s->bx + b * nd, nd * sizeof(double));
                s->lp[w] = v;
                s->phase[ia] = PH_DONE;
            } else if (s->nc[ia] >= s->opts.max_contractions) {
                s->wstat[w] = SF__W_NOCONTRACT;
                s->phase[ia] = PH_DONE;
            } else {
                s->nc[ia]++;
                if (s->tt[ia] < 0) s->L[ia] = s->tt[ia];
                else s->R[ia] = s->tt[ia];
            }
        }
    }
    unsigned long long ne = 0, nc = 0;
    for (size_t ia = 0; ia < h; ia++) ne += s->ne[ia], nc += s->nc[ia];
    s->info.neval += nv;
    s->info.nexpand += ne;
    s->info.ncontract += nc;
    *nexp_tot += ne;
    *ncon_tot += nc;
    return sf__mcmc_report(s, a0, h);
}
