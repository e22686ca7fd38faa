/*
 * MAF evaluation mode: log q by the forward pass with the BN running
 * statistics folded into the weights (see sf_flow_prepare).  Rows are
 * processed in fixed chunks of CHUNK rows, one chunk per thread at a time
 * (single-threaded sgemm), so results do not depend on the thread count.
 * Sampling (the fast inverse): maf_sample.c.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "flow/flow_impl.h"
#include "flow/nsf.h"

#define CHUNK SF_FLOW_CHUNK

typedef struct {
    float *u, *v;         /* CHUNK x D */
    float *xz;            /* CHUNK x C */
    float *ct, *h[3];     /* CHUNK x H */
    float *out;           /* CHUNK x 2D */
    double *ldet;         /* CHUNK */
} chunk_ws;

static void chunk_free(chunk_ws *c)
{
    free(c->u); free(c->v); free(c->xz); free(c->ct);
    for (int i = 0; i < 3; i++) free(c->h[i]);
    free(c->out); free(c->ldet);
}

static int chunk_alloc(const sf_flow *f, chunk_ws *c)
{
    const size_t D = (size_t)f->D, C = (size_t)f->C, H = (size_t)f->H;
    memset(c, 0, sizeof *c);
    c->u = malloc(CHUNK * D * sizeof(float));
    c->v = malloc(CHUNK * D * sizeof(float));
    c->xz = malloc((CHUNK * C + 1) * sizeof(float));
    c->ct = malloc(CHUNK * H * sizeof(float));
    for (int i = 0; i < 3; i++) c->h[i] = malloc(CHUNK * H * sizeof(float));
    c->out = malloc(CHUNK * 2 * D * sizeof(float));
    c->ldet = malloc(CHUNK * sizeof(double));
    if (!c->u || !c->v || !c->xz || !c->ct || !c->h[0] || !c->h[1] || !c->h[2] || !c->out || !c->ldet) {
        chunk_free(c);
        memset(c, 0, sizeof *c);
        return -1;
    }
    return 0;
}

static inline float *ev_w(const sf_flow *f, int k, int j)
{
    return f->ev_w + ((size_t)k * SF_MAF_NBLOCKS + j) * f->H * f->H;
}
static inline float *ev_b(const sf_flow *f, int k, int j)
{
    return f->ev_b + ((size_t)k * SF_MAF_NBLOCKS + j) * f->H;
}

/* Forward pass of n <= CHUNK rows: c->u (z-scored theta) and c->xz set;
 * on return c->u holds the base variable and c->ldet sum log scale. */
static void eval_forward(const sf_flow *f, chunk_ws *c, int n)
{
    const int D = f->D, C = f->C, H = f->H;
    for (int r = 0; r < n; r++) c->ldet[r] = 0;
    for (int k = 0; k < f->K; k++) {
        sf_maf_view v;
        sf_maf_view_of(f, f->params, k, &v);
        float *h0 = c->h[0];
        if (C > 0) {
            sf_maf_lin_rows(n, 0, H, C, c->xz, C, v.w_c, C, v.b_c, c->ct, H);
            sf_flow_tanh(c->ct, NULL, (size_t)n * H);
        }
        for (int q = 0; q < f->n_srun; q++)
            sf_maf_lin_rows(n, f->srun_in[q].rs, f->srun_in[q].re, f->srun_in[q].p, c->u, D, v.w_in, D, v.b_in, h0, H);
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
            float *u = c->u + (size_t)r * D, *z = c->v + (size_t)r * D;
            const float *o = c->out + (size_t)r * 2 * D;
            for (int d = 0; d < D; d++) {
                float sc = sf_softplusf(o[2 * d]) + SF_MAF_SCALE_EPS;
                z[d] = sc * u[d] + o[2 * d + 1];
                c->ldet[r] += logf(sc);
            }
            for (int i = 0; i < D; i++) u[i] = z[perm[i]];
        }
    }
}

sf_status sf_flow_logq(const sf_flow *f, size_t n, const double *theta, const double *x, double *logq, int nthreads)
{
    return sf_flow_logq_base(f, n, theta, x, logq, NULL, nthreads);
}

sf_status sf_flow_logq_base(const sf_flow *f, size_t n, const double *theta, const double *x, double *logq,
                            float *z, int nthreads)
{
    if (!f->prepared) return SF_ERROR(SF_EINVAL, "flow not prepared (call sf_flow_prepare after changing weights)");
    if (n == 0) return SF_OK;
    if (!theta || !logq || (f->C > 0 && !x)) return SF_ERROR(SF_EINVAL, "NULL theta, x or logq");
    if (f->nsf) return sf_nsf_logq(f, n, theta, x, logq, z, nthreads);
    sf_flow_blas_single();
    const int D = f->D, C = f->C;
    const int nt = sf_flow_nthreads(nthreads);
    const size_t nchunks = (n + CHUNK - 1) / CHUNK;
    int fail = 0;
    const double c0 = -0.5 * D * SF_FLOW_LOG_2PI - f->log_std_sum;
#pragma omp parallel num_threads(nt) reduction(| : fail)
    {
        chunk_ws c;
        if (chunk_alloc(f, &c)) fail = 1;
#pragma omp for schedule(dynamic, 1)
        for (size_t ch = 0; ch < nchunks; ch++) {
            if (fail) continue;
            size_t r0 = ch * CHUNK;
            int m = (int)(n - r0 < CHUNK ? n - r0 : CHUNK);
            for (int r = 0; r < m; r++)
                logq[r0 + r] = sf_flow_input_row(f, theta + (r0 + r) * D, C ? x + (r0 + r) * C : NULL,
                                                 c.u + (size_t)r * D, c.xz + (size_t)r * C);
            eval_forward(f, &c, m);
            for (int r = 0; r < m; r++) {
                double q = c0 + c.ldet[r] + logq[r0 + r]; /* + the box map's log |dv/dtheta| */
                for (int d = 0; d < D; d++) q -= 0.5 * (double)c.u[(size_t)r * D + d] * c.u[(size_t)r * D + d];
                logq[r0 + r] = q;
            }
            if (z) memcpy(z + r0 * D, c.u, (size_t)m * D * sizeof(float));
        }
        chunk_free(&c);
    }
    if (fail) return SF_ERROR(SF_ENOMEM, "out of memory for log q workspaces");
    return SF_OK;
}
