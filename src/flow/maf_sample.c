/*
 * MAF sampling: the fast inverse (issue 4 part 3) behind the shared driver
 * (flow_sample.c).  With hidden units sorted by degree, a unit of degree g
 * depends only on inputs u_1..u_g.  Solving for u_d in order d = 1..D, at
 * step d we compute the units of degree d-1 (their inputs are now known) in
 * every layer, then output d; each unit is computed once, so one inverse
 * costs about one forward pass instead of D.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "flow/flow_impl.h"

typedef struct {
    float *u, *v;     /* CHUNK x D */
    float *h[3];      /* CHUNK x H */
    float *out;       /* CHUNK x 2D */
    double *ldet;     /* CHUNK */
} chunk_ws;

static inline float *ev_w(const sf_flow *f, int k, int j)
{
    return f->ev_w + ((size_t)k * SF_MAF_NBLOCKS + j) * f->H * f->H;
}
static inline float *ev_b(const sf_flow *f, int k, int j)
{
    return f->ev_b + ((size_t)k * SF_MAF_NBLOCKS + j) * f->H;
}

/* Inverse of n <= CHUNK rows: c->u holds base draws z on entry, the
 * z-scored theta on return; c->ldet = sum log scale.  bias0: K x H, the
 * input-layer bias plus the galaxy's context term. */
static void eval_inverse(const sf_flow *f, chunk_ws *c, int n, const float *bias0)
{
    const int D = f->D, H = f->H;
    for (int r = 0; r < n; r++) c->ldet[r] = 0;
    for (int k = f->K - 1; k >= 0; k--) {
        sf_maf_view v;
        sf_maf_view_of(f, f->params, k, &v);
        const int *perm = f->perm + (size_t)k * D;
        for (int r = 0; r < n; r++)
            for (int i = 0; i < D; i++) c->v[(size_t)r * D + perm[i]] = c->u[(size_t)r * D + i];
        const float *b0 = bias0 + (size_t)k * H;
        for (int d = 0; d < D; d++) {
            int lo = d > 0 ? f->cnt_le[d - 1] : 0, hi = f->cnt_le[d];
            if (hi > lo) { /* hidden units of degree d: inputs u_0..u_{d-1} known */
                sf_maf_lin_rows(n, lo, hi, d, c->u, D, v.w_in, D, b0, c->h[0], H);
                for (int r = 0; r < n; r++) sf_flow_tanh(c->h[0] + (size_t)r * H + lo, NULL, (size_t)(hi - lo));
                for (int j = 0; j < SF_MAF_NBLOCKS; j++) {
                    float *ho = c->h[(j + 1) % 3];
                    sf_maf_lin_rows(n, lo, hi, hi, c->h[j % 3], H, ev_w(f, k, j), H, ev_b(f, k, j), ho, H);
                    for (int r = 0; r < n; r++) sf_flow_tanh(ho + (size_t)r * H + lo, NULL, (size_t)(hi - lo));
                }
            }
            sf_maf_lin_rows(n, 2 * d, 2 * d + 2, hi, c->h[SF_MAF_NBLOCKS % 3], H, v.w_f, H, v.b_f, c->out, 2 * D);
            for (int r = 0; r < n; r++) {
                const float *o = c->out + (size_t)r * 2 * D;
                float sc = sf_softplusf(o[2 * d]) + SF_MAF_SCALE_EPS;
                c->u[(size_t)r * D + d] = (c->v[(size_t)r * D + d] - o[2 * d + 1]) / sc;
                c->ldet[r] += logf(sc);
            }
        }
    }
}

static void galaxy_bias(const sf_flow *f, const double *x, float *bias0)
{
    const int C = f->C, H = f->H;
    for (int k = 0; k < f->K; k++) {
        sf_maf_view v;
        sf_maf_view_of(f, f->params, k, &v);
        for (int o = 0; o < H; o++) {
            double a = 0;
            if (C > 0) {
                a = v.b_c[o];
                for (int i = 0; i < C; i++) a += (double)v.w_c[(size_t)o * C + i] * (float)((x[i] - f->x_mean[i]) / f->x_std[i]);
                a = sf_tanhf((float)a);
            }
            bias0[(size_t)k * H + o] = v.b_in[o] + (float)a;
        }
    }
}

static size_t galaxy_floats(const sf_flow *f) { return (size_t)f->K * f->H; }

static void ws_free(void *ws)
{
    chunk_ws *c = ws;
    if (!c) return;
    free(c->u); free(c->v);
    for (int i = 0; i < 3; i++) free(c->h[i]);
    free(c->out); free(c->ldet);
    free(c);
}

static void *ws_alloc(const sf_flow *f)
{
    const size_t D = (size_t)f->D, H = (size_t)f->H, N = SF_FLOW_CHUNK;
    chunk_ws *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->u = malloc(N * D * sizeof(float));
    c->v = malloc(N * D * sizeof(float));
    for (int i = 0; i < 3; i++) c->h[i] = malloc(N * H * sizeof(float));
    c->out = malloc(N * 2 * D * sizeof(float));
    c->ldet = malloc(N * sizeof(double));
    if (!c->u || !c->v || !c->h[0] || !c->h[1] || !c->h[2] || !c->out || !c->ldet) {
        ws_free(c);
        return NULL;
    }
    return c;
}

static void inverse(const sf_flow *f, void *ws, const float *gdata, int n, const float *z, float *u, double *ldet)
{
    chunk_ws *c = ws;
    memcpy(c->u, z, (size_t)n * f->D * sizeof(float));
    eval_inverse(f, c, n, gdata);
    memcpy(u, c->u, (size_t)n * f->D * sizeof(float));
    memcpy(ldet, c->ldet, (size_t)n * sizeof(double));
}

const sf_flow_sampler sf_maf_sampler = {galaxy_floats, galaxy_bias, ws_alloc, ws_free, inverse};
