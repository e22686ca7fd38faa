/*
 * MAF evaluation mode: log q by the forward pass with the BN running
 * statistics folded into the weights (see sf_flow_prepare).  Rows are
 * processed in fixed chunks of CHUNK rows (the driver: flow_eval.c).
 * Sampling (the fast inverse): maf_sample.c.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "flow/flow_impl.h"

#define CHUNK SF_FLOW_CHUNK

/* Scratch of one chunk (the rows' u, xz and ldet belong to the driver). */
typedef struct {
    float *v;             /* CHUNK x D: the permutation's target */
    float *ct, *h[3];     /* CHUNK x H */
    float *out;           /* CHUNK x 2D */
} chunk_ws;

static void chunk_ws_delete(void *ws)
{
    chunk_ws *c = ws;
    if (!c) return;
    free(c->v); free(c->ct);
    for (int i = 0; i < 3; i++) free(c->h[i]);
    free(c->out);
    free(c);
}

static void *chunk_ws_new(const sf_flow *f)
{
    const size_t D = (size_t)f->D, H = (size_t)f->H;
    chunk_ws *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->v = malloc(CHUNK * D * sizeof(float));
    c->ct = malloc(CHUNK * H * sizeof(float));
    for (int i = 0; i < 3; i++) c->h[i] = malloc(CHUNK * H * sizeof(float));
    c->out = malloc(CHUNK * 2 * D * sizeof(float));
    if (!c->v || !c->ct || !c->h[0] || !c->h[1] || !c->h[2] || !c->out) {
        chunk_ws_delete(c);
        return NULL;
    }
    return c;
}

static inline float *ev_w(const sf_flow *f, int k, int j)
{
    return f->ev_w + ((size_t)k * SF_MAF_NBLOCKS + j) * f->H * f->H;
}
static inline float *ev_b(const sf_flow *f, int k, int j)
{
    return f->ev_b + ((size_t)k * SF_MAF_NBLOCKS + j) * f->H;
}

/* Forward pass of n <= CHUNK rows (sf_flow_evaluator): u (z-scored theta)
 * in place to the base variable, xz the z-scored context, ldet the summed
 * log scale. */
static void eval_forward(const sf_flow *f, void *ws, int n, float *u_rows, const float *xz, double *ldet)
{
    chunk_ws *c = ws;
    const int D = f->D, C = f->C, H = f->H;
    for (int r = 0; r < n; r++) ldet[r] = 0;
    for (int k = 0; k < f->K; k++) {
        sf_maf_view v;
        sf_maf_view_of(f, f->params, k, &v);
        float *h0 = c->h[0];
        if (C > 0) {
            sf_maf_lin_rows(n, 0, H, C, xz, C, v.w_c, C, v.b_c, c->ct, H);
            sf_flow_tanh(c->ct, NULL, (size_t)n * H);
        }
        for (int q = 0; q < f->n_srun; q++)
            sf_maf_lin_rows(n, f->srun_in[q].rs, f->srun_in[q].re, f->srun_in[q].p, u_rows, D, v.w_in, D, v.b_in, h0, H);
        sf_flow_tanh(h0, C > 0 ? c->ct : NULL, (size_t)n * H);
        for (int j = 0; j < SF_MAF_NBLOCKS; j++) {
            const float *hin = c->h[j % 3];
            float *ho = c->h[(j + 1) % 3];
            for (int q = 0; q < f->n_srun; q++)
                sf_maf_lin_rows(n, f->srun_h[q].rs, f->srun_h[q].re, f->srun_h[q].p, hin, H, ev_w(f, k, j), H,
                                ev_b(f, k, j), ho, H);
            sf_flow_tanh(ho, NULL, (size_t)n * H);
        }
        const float *hl = c->h[SF_MAF_NBLOCKS % 3];
        for (int q = 0; q < f->n_run_f; q++)
            sf_maf_lin_rows(n, f->run_f[q].rs, f->run_f[q].re, f->run_f[q].p, hl, H, v.w_f, H, v.b_f, c->out, 2 * D);
        const int *perm = f->perm + (size_t)k * D;
        for (int r = 0; r < n; r++) {
            float *u = u_rows + (size_t)r * D, *z = c->v + (size_t)r * D;
            const float *o = c->out + (size_t)r * 2 * D;
            for (int d = 0; d < D; d++) {
                float sc = sf_softplusf(o[2 * d]) + SF_MAF_SCALE_EPS;
                z[d] = sc * u[d] + o[2 * d + 1];
                ldet[r] += logf(sc);
            }
            for (int i = 0; i < D; i++) u[i] = z[perm[i]];
        }
    }
}

const sf_flow_evaluator sf_maf_evaluator = {chunk_ws_new, chunk_ws_delete, eval_forward};
