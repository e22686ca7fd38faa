/*
 * NSF evaluation: log q (one forward pass per coupling layer) and sampling
 * (one closed-form inverse per layer, the galaxy's context term of the
 * first conditioner layer computed once per galaxy), in chunks of CHUNK
 * rows.  The log q driver: flow_eval.c.  Proposal rounds,
 * prior-box rejection and the per-galaxy rng streams: the driver shared
 * with the MAF (flow_sample.c).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/fastmath.h"
#include "flow/nsf.h"

#define CHUNK SF_FLOW_CHUNK

void sf_nsf_mlp(const sf_flow *f, const sf_nsf_layer *v, int n, const float *a, int lda, int p, const float *b1,
                float *h1, float *h2, float *out)
{
    const int H = f->H;
    sf_maf_lin_rows(n, 0, H, p, a, lda, v->w1, v->din, b1, h1, H);
    sf_flow_tanh(h1, NULL, (size_t)n * H);
    sf_maf_lin_rows(n, 0, H, H, h1, H, v->w2, H, v->b2, h2, H);
    sf_flow_tanh(h2, NULL, (size_t)n * H);
    sf_maf_lin_rows(n, 0, v->m3, H, h2, H, v->w3, H, v->b3, out, v->m3);
}

void sf_nsf_exp(const float *out, float *E, size_t n)
{
    for (size_t i = 0; i < n; i++) E[i] = sf_expf(out[i]);
}

void sf_nsf_apply(const sf_flow *f, const sf_nsf_layer *v, int n, float *u, const float *out, const float *E,
                  double *ldet, int inverse)
{
    const int D = f->D, K = f->nsf->bins, np = f->nsf->np;
    const double B = f->nsf->tail;
    for (int r = 0; r < n; r++) {
        const float *o = out + (size_t)r * v->m3, *e = E + (size_t)r * v->m3;
        float *ur = u + (size_t)r * D;
        double ld_r = 0;
        for (int j = 0; j < v->n_tr; j++) {
            double raw[3 * SF_NSF_MAX_BINS], ex[3 * SF_NSF_MAX_BINS], ld;
            for (int i = 0; i < np; i++) raw[i] = o[j * np + i], ex[i] = e[j * np + i];
            const int d = v->tr[j];
            ur[d] = (float)(inverse ? sf_rqs_inverse_ex(K, B, raw, ex, ur[d], &ld) : sf_rqs_forward_ex(K, B, raw, ex, ur[d], &ld));
            ld_r += ld;
        }
        ldet[r] += ld_r;
    }
}

void sf_nsf_gather(const sf_flow *f, const sf_nsf_layer *v, int n, const float *u, const float *xz, float *a)
{
    const int D = f->D, C = f->C;
    for (int r = 0; r < n; r++) {
        float *ar = a + (size_t)r * v->din;
        for (int i = 0; i < v->n_id; i++) ar[i] = u[(size_t)r * D + v->id[i]];
        if (C > 0) memcpy(ar + v->n_id, xz + (size_t)r * C, (size_t)C * sizeof(float));
    }
}

typedef struct {
    float *u;    /* CHUNK x D (sampling) */
    float *a;    /* CHUNK x din_max */
    float *h1, *h2; /* CHUNK x H */
    float *out, *E; /* CHUNK x m3_max: conditioner outputs, their exponentials */
    double *ldet;   /* CHUNK */
} chunk_ws;

static void chunk_ws_delete(void *ws)
{
    chunk_ws *c = ws;
    if (!c) return;
    free(c->u); free(c->a); free(c->h1); free(c->h2); free(c->out); free(c->E); free(c->ldet);
    free(c);
}

/* One chunk's workspace (log q and sampling); NULL when out of memory. */
static void *chunk_ws_new(const sf_flow *f)
{
    const size_t D = (size_t)f->D, H = (size_t)f->H;
    chunk_ws *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->u = malloc(CHUNK * D * sizeof(float));
    c->a = malloc((CHUNK * (size_t)f->nsf->din_max + 1) * sizeof(float));
    c->h1 = malloc(CHUNK * H * sizeof(float));
    c->h2 = malloc(CHUNK * H * sizeof(float));
    c->out = malloc(CHUNK * (size_t)f->nsf->m3_max * sizeof(float));
    c->E = malloc(CHUNK * (size_t)f->nsf->m3_max * sizeof(float));
    c->ldet = malloc(CHUNK * sizeof(double));
    if (!c->u || !c->a || !c->h1 || !c->h2 || !c->out || !c->E || !c->ldet) {
        chunk_ws_delete(c);
        return NULL;
    }
    return c;
}

/* Forward of n <= CHUNK rows (sf_flow_evaluator): u (z-scored theta) in
 * place to the base variable, xz the z-scored context, ldet the summed
 * log-det. */
static void eval_forward(const sf_flow *f, void *ws, int n, float *u, const float *xz, double *ldet)
{
    chunk_ws *c = ws;
    for (int r = 0; r < n; r++) ldet[r] = 0;
    for (int l = 0; l < f->K; l++) {
        sf_nsf_layer v;
        sf_nsf_layer_of(f, f->params, l, &v);
        sf_nsf_gather(f, &v, n, u, xz, c->a);
        sf_nsf_mlp(f, &v, n, c->a, v.din, v.din, v.b1, c->h1, c->h2, c->out);
        sf_nsf_exp(c->out, c->E, (size_t)n * v.m3);
        sf_nsf_apply(f, &v, n, u, c->out, c->E, ldet, 0);
    }
}

const sf_flow_evaluator sf_nsf_evaluator = {chunk_ws_new, chunk_ws_delete, eval_forward};

/* ---- sampling (driver: flow_sample.c) ----------------------------------- */

/* Inverse of n <= CHUNK rows: c->u holds base draws on entry, the z-scored
 * theta on return; c->ldet = summed forward log-det.  bias1: K x H, the
 * first conditioner layer's bias plus the galaxy's context term. */
static void eval_inverse(const sf_flow *f, chunk_ws *c, int n, const float *bias1)
{
    const int D = f->D;
    for (int r = 0; r < n; r++) c->ldet[r] = 0;
    for (int l = f->K - 1; l >= 0; l--) {
        sf_nsf_layer v;
        sf_nsf_layer_of(f, f->params, l, &v);
        for (int r = 0; r < n; r++)
            for (int i = 0; i < v.n_id; i++) c->a[(size_t)r * v.n_id + i] = c->u[(size_t)r * D + v.id[i]];
        sf_nsf_mlp(f, &v, n, c->a, v.n_id > 0 ? v.n_id : 1, v.n_id, bias1 + (size_t)l * f->H, c->h1, c->h2, c->out);
        sf_nsf_exp(c->out, c->E, (size_t)n * v.m3);
        sf_nsf_apply(f, &v, n, c->u, c->out, c->E, c->ldet, 1);
    }
}

/* gdata = [bias1 (K x H) | xz (C)]: bias1[l] = b1 + W1[:, n_id:] xz for the
 * galaxy's z-scored context xz (float sums). */
static void galaxy_bias(const sf_flow *f, const double *x, float *gdata)
{
    const int C = f->C, H = f->H;
    float *bias1 = gdata, *xz = gdata + (size_t)f->K * H;
    for (int i = 0; i < C; i++) xz[i] = (float)((x[i] - f->x_mean[i]) / f->x_std[i]);
    for (int l = 0; l < f->K; l++) {
        sf_nsf_layer v;
        sf_nsf_layer_of(f, f->params, l, &v);
        for (int o = 0; o < H; o++) {
            const float *w = v.w1 + (size_t)o * v.din + v.n_id;
            float a = v.b1[o];
            for (int i = 0; i < C; i++) a += w[i] * xz[i];
            bias1[(size_t)l * H + o] = a;
        }
    }
}

static size_t galaxy_floats(const sf_flow *f) { return (size_t)f->K * f->H + (size_t)f->C; }

static void sampler_inverse(const sf_flow *f, void *ws, const float *gdata, int n, const float *z, float *u,
                            double *ldet, int want_ldet)
{
    (void)want_ldet; /* the spline's log-det comes with its inverse at no extra cost */
    chunk_ws *c = ws;
    memcpy(c->u, z, (size_t)n * f->D * sizeof(float));
    eval_inverse(f, c, n, gdata);
    memcpy(u, c->u, (size_t)n * f->D * sizeof(float));
    memcpy(ldet, c->ldet, (size_t)n * sizeof(double));
}

const sf_flow_sampler sf_nsf_sampler = {galaxy_floats, galaxy_bias, chunk_ws_new, chunk_ws_delete, sampler_inverse};
