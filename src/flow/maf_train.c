/*
 * MAF training-mode forward and backward pass (hand-written, CBLAS sgemm).
 *
 * Threads split the hidden units: thread t owns the t-th slice of every
 * degree group, computes those units' pre-activations (one sgemm per slice,
 * only the unmasked block: rows of degree g see the column prefix of
 * degree <= g), their activations and batch norm (per-unit statistics need
 * all batch rows of a unit, which the owner has), the matching rows of the
 * weight gradients, and the matching columns of the backpropagated
 * gradients (columns of degree group g receive contributions from a row
 * suffix only).  Barriers separate layers.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "flow/flow_impl.h"
#include "flow/nsf.h"

struct sf_flow_train_ws {
    size_t bmax;
    float *xz;            /* bmax x C */
    float *u;             /* (K+1) x bmax x D: inputs of each MADE; u[K] = base z */
    float *ct, *h0;       /* K x bmax x H */
    float *xh, *bo, *hh;  /* K x NB x bmax x H: BN xhat, BN output, block output */
    float *istd;          /* K x NB x H */
    float *out;           /* K x bmax x 2D */
    float *dA, *dB, *dC;  /* bmax x H */
    float *dout;          /* bmax x 2D */
    float *g0, *g1;       /* bmax x D ping-pong: d loss / d u */
    double *ldet;         /* bmax */
    double *s1, *s2;      /* max(H, 2D) scratch (per unit sums; the output layer has 2D units) */
    float *cf;            /* 3H scratch (per unit float coefficients) */
    struct sf_nsf_ws *nsf; /* NSF family: its workspace (nsf_train.c); the rest unused */
};

sf_status sf_flow_train_ws_alloc(const sf_flow *f, size_t bmax, sf_flow_train_ws **out)
{
    *out = NULL;
    if (bmax < 2) return SF_ERROR(SF_EINVAL, "batch_max %zu < 2", bmax);
    sf_flow_train_ws *w = calloc(1, sizeof *w);
    if (!w) return SF_ERROR(SF_ENOMEM, "out of memory");
    if (f->nsf) {
        w->bmax = bmax;
        sf_status st = sf_nsf_train_ws_alloc(f, bmax, &w->nsf);
        if (st) free(w);
        else *out = w;
        return st;
    }
    const size_t B = bmax, D = (size_t)f->D, C = (size_t)f->C, K = (size_t)f->K, H = (size_t)f->H,
                 NB = SF_MAF_NBLOCKS;
    w->bmax = bmax;
    w->xz = malloc((B * C + 1) * sizeof(float));
    w->u = malloc((K + 1) * B * D * sizeof(float));
    w->ct = malloc(K * B * H * sizeof(float));
    w->h0 = malloc(K * B * H * sizeof(float));
    w->xh = malloc(K * NB * B * H * sizeof(float));
    w->bo = malloc(K * NB * B * H * sizeof(float));
    w->hh = malloc(K * NB * B * H * sizeof(float));
    w->istd = malloc(K * NB * H * sizeof(float));
    w->out = malloc(K * B * 2 * D * sizeof(float));
    w->dA = malloc(B * H * sizeof(float));
    w->dB = malloc(B * H * sizeof(float));
    w->dC = malloc(B * H * sizeof(float));
    w->dout = malloc(B * 2 * D * sizeof(float));
    w->g0 = malloc(B * D * sizeof(float));
    w->g1 = malloc(B * D * sizeof(float));
    w->ldet = malloc(B * sizeof(double));
    const size_t nsum = H > 2 * D ? H : 2 * D; /* per-unit sums of the hidden (H) and output (2D) layers */
    w->s1 = malloc(nsum * sizeof(double));
    w->s2 = malloc(nsum * sizeof(double));
    w->cf = malloc(3 * H * sizeof(float));
    if (!w->xz || !w->u || !w->ct || !w->h0 || !w->xh || !w->bo || !w->hh || !w->istd || !w->out ||
        !w->dA || !w->dB || !w->dC || !w->dout || !w->g0 || !w->g1 || !w->ldet || !w->s1 || !w->s2 || !w->cf) {
        sf_flow_train_ws_free(w);
        return SF_ERROR(SF_ENOMEM, "out of memory for a training workspace of batch %zu", bmax);
    }
    *out = w;
    return SF_OK;
}

void sf_flow_train_ws_free(sf_flow_train_ws *w)
{
    if (!w) return;
    sf_nsf_train_ws_free(w->nsf);
    free(w->xz); free(w->u); free(w->ct); free(w->h0); free(w->xh); free(w->bo); free(w->hh);
    free(w->istd); free(w->out); free(w->dA); free(w->dB); free(w->dC); free(w->dout);
    free(w->g0); free(w->g1); free(w->ldet); free(w->s1); free(w->s2); free(w->cf);
    free(w);
}

/* Slice t of nt of [rs, re). */
static inline void slice(int rs, int re, int t, int nt, int *a, int *b)
{
    long n = re - rs;
    *a = rs + (int)(n * t / nt);
    *b = rs + (int)(n * (t + 1) / nt);
}

/* Y[:, a:b] = X[:, 0:p] W[a:b, 0:p]^T + bias[a:b] (B rows). */
void sf_maf_lin_rows(int B, int a, int b, int p, const float *X, int ldx, const float *W, int ldw,
                     const float *bias, float *Y, int ldy)
{
    if (b <= a) return;
    /* bias first, then beta = 1: OpenBLAS skips its separate beta pass */
    for (int r = 0; r < B; r++) memcpy(Y + (size_t)r * ldy + a, bias + a, (size_t)(b - a) * sizeof(float));
    if (p > 0)
        sf_flow_sgemm(0, 1, B, b - a, p, 1.f, X, ldx, W + (size_t)a * ldw, ldw, 1.f, Y + a, ldy);
}

/* dW[a:b, 0:p] = dY[:, a:b]^T X[:, 0:p];  db[a:b] = column sums of dY. */
static void grad_rows(int B, int a, int b, int p, const float *dY, int ldy, const float *X, int ldx,
                      float *dW, int ldw, float *db, double *acc)
{
    if (b <= a) return;
    if (p > 0)
        sf_flow_sgemm(1, 0, b - a, p, B, 1.f, dY + a, ldy, X, ldx, 0.f,
                    dW + (size_t)a * ldw, ldw);
    for (int o = a; o < b; o++) acc[o] = 0;
    for (int r = 0; r < B; r++)
        for (int o = a; o < b; o++) acc[o] += dY[(size_t)r * ldy + o];
    for (int o = a; o < b; o++) db[o] = (float)acc[o];
}

/* dX[:, c0:c1] = dY[:, r0:R] W[r0:R, c0:c1], r0 = first row whose prefix
 * exceeds c0 (all later rows see the whole [c0, c1): aligned groups). */
static void grad_cols(int B, int c0, int c1, const sf_maf_run *runs, int n_runs, const float *dY, int ldy,
                      const float *W, int ldw, float *dX, int ldx)
{
    if (c1 <= c0) return;
    int R = runs[n_runs - 1].re, r0 = R;
    for (int q = 0; q < n_runs; q++)
        if (runs[q].p > c0) {
            r0 = runs[q].rs;
            break;
        }
    if (r0 < R)
        sf_flow_sgemm(0, 0, B, c1 - c0, R - r0, 1.f, dY + r0, ldy,
                    W + (size_t)r0 * ldw + c0, ldw, 0.f, dX + c0, ldx);
    else
        for (int r = 0; r < B; r++) memset(dX + (size_t)r * ldx + c0, 0, (size_t)(c1 - c0) * sizeof(float));
}

/* Batch norm forward (batch statistics) of units [a, b).  Per-unit sums in
 * double over the rows in order (vectorised across units, so the result does
 * not depend on how units are split between threads); the per-element
 * normalisation in float with per-unit float coefficients (cf: H scratch). */
static void bn_fwd(int B, int H, int a, int b, const float *x, const float *g, const float *be, float *xh,
                   float *y, float *istd, float *run, int update, double *s1, double *s2, float *cf)
{
    const int n = b - a;
    if (n <= 0) return;
    double *restrict m = s1 + a, *restrict q = s2 + a;
    float *restrict mf = cf + a, *restrict is = istd + a;
    for (int o = 0; o < n; o++) m[o] = q[o] = 0;
    for (int r = 0; r < B; r++) {
        const float *restrict xr = x + (size_t)r * H + a;
        for (int o = 0; o < n; o++) m[o] += xr[o];
    }
    for (int o = 0; o < n; o++) m[o] /= B;
    for (int r = 0; r < B; r++) {
        const float *restrict xr = x + (size_t)r * H + a;
        for (int o = 0; o < n; o++) {
            double d = xr[o] - m[o];
            q[o] += d * d;
        }
    }
    for (int o = 0; o < n; o++) {
        double var = q[o] / B;
        is[o] = (float)(1 / sqrt(var + SF_MAF_BN_EPS));
        mf[o] = (float)m[o];
        if (update) {
            run[a + o] = (float)((1 - SF_MAF_BN_MOMENTUM) * run[a + o] + SF_MAF_BN_MOMENTUM * m[o]);
            run[H + a + o] =
                (float)((1 - SF_MAF_BN_MOMENTUM) * run[H + a + o] + SF_MAF_BN_MOMENTUM * q[o] / (B - 1));
        }
    }
    const float *restrict bb = be + a, *restrict gg = g + a;
    for (int r = 0; r < B; r++) {
        const float *restrict xr = x + (size_t)r * H + a;
        float *restrict xhr = xh + (size_t)r * H + a, *restrict yr = y + (size_t)r * H + a;
        for (int o = 0; o < n; o++) {
            float v = (xr[o] - mf[o]) * is[o];
            xhr[o] = v;
            yr[o] = gg[o] * v + bb[o];
        }
    }
}

/* Batch norm backward of units [a, b): dy (in) -> dx (out, may alias dy),
 * times 1 - hp^2 (the tanh derivative of the layer below; hp may be NULL).
 * Sums in double as in bn_fwd; cf: 3H float scratch. */
static void bn_bwd(int B, int H, int a, int b, const float *dy, const float *xh, const float *g,
                   const float *istd, float *dg, float *dbe, float *dx, const float *hp, double *s1, double *s2,
                   float *cf)
{
    const int n = b - a;
    if (n <= 0) return;
    double *restrict p1 = s1 + a, *restrict p2 = s2 + a;
    for (int o = 0; o < n; o++) p1[o] = p2[o] = 0;
    for (int r = 0; r < B; r++) {
        const float *restrict dyr = dy + (size_t)r * H + a, *restrict xhr = xh + (size_t)r * H + a;
        for (int o = 0; o < n; o++) {
            p1[o] += dyr[o];
            p2[o] += (double)dyr[o] * xhr[o];
        }
    }
    float *restrict ca = cf + a, *restrict c1 = cf + H + a, *restrict c2 = cf + 2 * H + a;
    for (int o = 0; o < n; o++) {
        dbe[a + o] = (float)p1[o], dg[a + o] = (float)p2[o];
        ca[o] = g[a + o] * istd[a + o];
        c1[o] = (float)(p1[o] / B);
        c2[o] = (float)(p2[o] / B);
    }
    for (int r = 0; r < B; r++) {
        const float *dyr = dy + (size_t)r * H + a, *restrict xhr = xh + (size_t)r * H + a;
        float *dxr = dx + (size_t)r * H + a;
        if (hp) {
            const float *restrict hr = hp + (size_t)r * H + a;
            for (int o = 0; o < n; o++)
                dxr[o] = ca[o] * (dyr[o] - c1[o] - xhr[o] * c2[o]) * (1.f - hr[o] * hr[o]);
        } else
            for (int o = 0; o < n; o++) dxr[o] = ca[o] * (dyr[o] - c1[o] - xhr[o] * c2[o]);
    }
}

typedef struct {
    sf_flow *f;
    sf_flow_train_ws *w;
    int B, update;
    float *grad;
} pass_ctx;

static void forward(pass_ctx *c, int t, int nt)
{
    sf_flow *f = c->f;
    sf_flow_train_ws *w = c->w;
    const int B = c->B, D = f->D, C = f->C, H = f->H;
    const size_t BH = (size_t)B * H;
    for (int k = 0; k < f->K; k++) {
        sf_maf_view v;
        sf_maf_view_of(f, f->params, k, &v);
        const float *u = w->u + (size_t)k * w->bmax * D;
        float *ct = w->ct + k * BH, *h0 = w->h0 + k * BH;
        /* forward products over super-runs (masked weights are exactly 0) */
        for (int q = 0; q < f->n_srun; q++) {
            int a, b;
            slice(f->srun_in[q].rs, f->srun_in[q].re, t, nt, &a, &b);
            sf_maf_lin_rows(B, a, b, f->srun_in[q].p, u, D, v.w_in, D, v.b_in, h0, H);
            if (C > 0) sf_maf_lin_rows(B, a, b, C, w->xz, C, v.w_c, C, v.b_c, ct, H);
            for (int r = 0; r < B; r++) {
                float *cr = ct + (size_t)r * H, *hr = h0 + (size_t)r * H;
                if (C > 0) sf_flow_tanh(cr + a, NULL, (size_t)(b - a));
                sf_flow_tanh(hr + a, C > 0 ? cr + a : NULL, (size_t)(b - a));
            }
        }
        const float *hin = h0;
        for (int j = 0; j < SF_MAF_NBLOCKS; j++) {
            size_t kj = (size_t)k * SF_MAF_NBLOCKS + j;
            float *xh = w->xh + kj * BH, *bo = w->bo + kj * BH, *hh = w->hh + kj * BH;
            float *istd = w->istd + kj * H, *run = f->bn_run + kj * 2 * H;
            for (int q = 0, a0 = 0, b0 = 0; q <= f->n_srun; q++) { /* units owned as in the products */
                int a = H, b = H;
                if (q < f->n_srun) slice(f->srun_h[q].rs, f->srun_h[q].re, t, nt, &a, &b);
                if (q < f->n_srun && a == b0) { /* contiguous with the pending range (1 thread: all H) */
                    b0 = b;
                    continue;
                }
                bn_fwd(B, H, a0, b0, hin, v.bn_g[j], v.bn_b[j], xh, bo, istd, run, c->update, w->s1, w->s2, w->cf);
                a0 = a, b0 = b;
            }
#pragma omp barrier
            for (int q = 0; q < f->n_srun; q++) {
                int a, b;
                slice(f->srun_h[q].rs, f->srun_h[q].re, t, nt, &a, &b);
                sf_maf_lin_rows(B, a, b, f->srun_h[q].p, bo, H, v.w_h[j], H, v.b_h[j], hh, H);
                for (int r = 0; r < B; r++) sf_flow_tanh(hh + (size_t)r * H + a, NULL, (size_t)(b - a));
            }
            hin = hh;
        }
#pragma omp barrier
        float *out = w->out + (size_t)k * w->bmax * 2 * D;
        for (int q = t; q < f->n_run_f; q += nt)
            sf_maf_lin_rows(B, f->run_f[q].rs, f->run_f[q].re, f->run_f[q].p, hin, H, v.w_f, H, v.b_f, out, 2 * D);
#pragma omp barrier
        /* affine + permutation, rows split */
        int r0, r1;
        slice(0, B, t, nt, &r0, &r1);
        float *un = w->u + (size_t)(k + 1) * w->bmax * D;
        const int *perm = f->perm + (size_t)k * D;
        for (int r = r0; r < r1; r++) {
            float z[1024];
            double ld = k == 0 ? 0 : w->ldet[r];
            for (int d = 0; d < D; d++) {
                float s = out[(size_t)r * 2 * D + 2 * d], sh = out[(size_t)r * 2 * D + 2 * d + 1];
                float sc = sf_softplusf(s) + SF_MAF_SCALE_EPS;
                z[d] = sc * u[(size_t)r * D + d] + sh;
                ld += logf(sc);
            }
            w->ldet[r] = ld;
            for (int i = 0; i < D; i++) un[(size_t)r * D + i] = z[perm[i]];
        }
#pragma omp barrier
    }
}

static void backward(pass_ctx *c, int t, int nt)
{
    sf_flow *f = c->f;
    sf_flow_train_ws *w = c->w;
    const int B = c->B, D = f->D, C = f->C, H = f->H;
    const size_t BH = (size_t)B * H;
    const float invB = 1.f / B;
    float *g = w->g0, *gn = w->g1; /* d loss / d u_{k+1}, d loss / d u_k */
    int r0, r1;
    slice(0, B, t, nt, &r0, &r1);
    const float *zK = w->u + (size_t)f->K * w->bmax * D;
    for (int r = r0; r < r1; r++)
        for (int d = 0; d < D; d++) g[(size_t)r * D + d] = zK[(size_t)r * D + d] * invB;
#pragma omp barrier
    for (int k = f->K - 1; k >= 0; k--) {
        sf_maf_view v, dv;
        sf_maf_view_of(f, f->params, k, &v);
        sf_maf_view_of(f, c->grad, k, &dv);
        const float *u = w->u + (size_t)k * w->bmax * D;
        const float *out = w->out + (size_t)k * w->bmax * 2 * D;
        const int *perm = f->perm + (size_t)k * D;
        /* 1. through the permutation and the affine map (rows split) */
        for (int r = r0; r < r1; r++) {
            float dvz[1024];
            for (int i = 0; i < D; i++) dvz[perm[i]] = g[(size_t)r * D + i];
            for (int d = 0; d < D; d++) {
                float s = out[(size_t)r * 2 * D + 2 * d];
                float sc = sf_softplusf(s) + SF_MAF_SCALE_EPS;
                float sig = 1.f / (1.f + expf(-s));
                float dsc = dvz[d] * u[(size_t)r * D + d] - invB / sc;
                w->dout[(size_t)r * 2 * D + 2 * d] = dsc * sig;
                w->dout[(size_t)r * 2 * D + 2 * d + 1] = dvz[d];
                gn[(size_t)r * D + d] = dvz[d] * sc;
            }
        }
#pragma omp barrier
        /* 2. output layer */
        const size_t kl = (size_t)k * SF_MAF_NBLOCKS + SF_MAF_NBLOCKS - 1;
        const float *hlast = w->hh + kl * BH;
        for (int q = t; q < f->n_run_f; q += nt)
            grad_rows(B, f->run_f[q].rs, f->run_f[q].re, f->run_f[q].p, w->dout, 2 * D, hlast, H, dv.w_f, H,
                      dv.b_f, w->s2);
        float *dcur = w->dA, *dnext = w->dB;
        for (int q = 0; q < f->n_hgrp; q++) {
            int a, b;
            slice(f->hgrp[q], f->hgrp[q + 1], t, nt, &a, &b);
            grad_cols(B, a, b, f->run_f, f->n_run_f, w->dout, 2 * D, v.w_f, H, dcur, H);
            for (int r = 0; r < B; r++)
                for (int o = a; o < b; o++) {
                    size_t i = (size_t)r * H + o;
                    dcur[i] *= 1.f - hlast[i] * hlast[i];
                }
        }
        /* 3. hidden blocks, last to first: dcur = d loss / d pre-activation of block j */
        for (int j = SF_MAF_NBLOCKS - 1; j >= 0; j--) {
            size_t kj = (size_t)k * SF_MAF_NBLOCKS + j;
            const float *bo = w->bo + kj * BH, *xh = w->xh + kj * BH, *istd = w->istd + kj * H;
            const float *hprev = j > 0 ? w->hh + (kj - 1) * BH : w->h0 + (size_t)k * BH;
            for (int q = 0; q < f->n_run_h; q++) {
                int a, b;
                slice(f->run_h[q].rs, f->run_h[q].re, t, nt, &a, &b);
                grad_rows(B, a, b, f->run_h[q].p, dcur, H, bo, H, dv.w_h[j], H, dv.b_h[j], w->s1);
            }
#pragma omp barrier
            for (int q = 0; q < f->n_hgrp; q++) {
                int a, b;
                slice(f->hgrp[q], f->hgrp[q + 1], t, nt, &a, &b);
                grad_cols(B, a, b, f->run_h, f->n_run_h, dcur, H, v.w_h[j], H, dnext, H);
            }
            for (int q = 0, a0 = 0, b0 = 0; q <= f->n_hgrp; q++) { /* same units, contiguous ones merged */
                int a = H, b = H;
                if (q < f->n_hgrp) slice(f->hgrp[q], f->hgrp[q + 1], t, nt, &a, &b);
                if (q < f->n_hgrp && a == b0) {
                    b0 = b;
                    continue;
                }
                bn_bwd(B, H, a0, b0, dnext, xh, v.bn_g[j], istd, dv.bn_g[j], dv.bn_b[j], dnext, hprev, w->s1, w->s2,
                       w->cf);
                a0 = a, b0 = b;
            }
            float *tmp = dcur;
            dcur = dnext;
            dnext = tmp;
        }
        /* 4. input and context layers (dcur = d loss / d pre0) */
        const float *ct = w->ct + (size_t)k * BH;
        for (int q = 0; q < f->n_run_in; q++) {
            int a, b;
            slice(f->run_in[q].rs, f->run_in[q].re, t, nt, &a, &b);
            grad_rows(B, a, b, f->run_in[q].p, dcur, H, u, D, dv.w_in, D, dv.b_in, w->s1);
            if (C > 0) {
                for (int r = 0; r < B; r++)
                    for (int o = a; o < b; o++) {
                        size_t i = (size_t)r * H + o;
                        w->dC[i] = dcur[i] * (1.f - ct[i] * ct[i]);
                    }
                grad_rows(B, a, b, C, w->dC, H, w->xz, C, dv.w_c, C, dv.b_c, w->s1);
            }
        }
#pragma omp barrier
        /* d loss / d u_k: direct term (in gn) + through the input layer */
        for (int i = t; i < D; i += nt) {
            int rfirst = H;
            for (int q = 0; q < f->n_run_in; q++)
                if (f->run_in[q].p > i) {
                    rfirst = f->run_in[q].rs;
                    break;
                }
            if (rfirst < H)
                sf_flow_sgemv( B, H - rfirst, 1.f, dcur + rfirst, H,
                            v.w_in + (size_t)rfirst * D + i, D, 1.f, gn + i, D);
        }
#pragma omp barrier
        float *tmp = g;
        g = gn;
        gn = tmp;
    }
}

sf_status sf_flow_loss_grad(sf_flow *f, sf_flow_train_ws *w, size_t Bz, const double *theta, const double *x,
                            int update_running, double *loss, float *grad, double *logq_rows, int nthreads)
{
    if (Bz < 2 || Bz > w->bmax) return SF_ERROR(SF_EINVAL, "batch %zu outside [2, %zu]", Bz, w->bmax);
    if (!theta || (f->C > 0 && !x) || !grad) return SF_ERROR(SF_EINVAL, "NULL theta, x or grad");
    if (f->D > 1024) return SF_ERROR(SF_EINVAL, "D > 1024 not supported");
    if (f->nsf) {
        if (!w->nsf) return SF_ERROR(SF_EINVAL, "training workspace was made for another flow family");
        return sf_nsf_loss_grad(f, w->nsf, Bz, theta, x, loss, grad, logq_rows, nthreads);
    }
    if (w->nsf) return SF_ERROR(SF_EINVAL, "training workspace was made for another flow family");
    sf_flow_blas_single();
    const int B = (int)Bz, D = f->D, C = f->C;
    for (int r = 0; r < B; r++)
        sf_flow_input_row(f, theta + (size_t)r * D, C ? x + (size_t)r * C : NULL, w->u + (size_t)r * D,
                          w->xz + (size_t)r * C);
    if (update_running) f->prepared = 0;
    pass_ctx ctx = {f, w, B, update_running, grad};
    int nt = sf_flow_nthreads(nthreads);
    if (nt > B / 2) nt = B / 2 > 0 ? B / 2 : 1;
    /* ~30 barriers per MADE: threads only pay for big layers */
    if ((double)B * f->H * f->H < 2e6) nt = 1;
#pragma omp parallel num_threads(nt)
    {
        int t = omp_get_thread_num(), n = omp_get_num_threads();
        forward(&ctx, t, n);
        backward(&ctx, t, n);
    }
    return sf_flow_batch_loss(f, B, theta, w->u + (size_t)f->K * w->bmax * D, w->ldet, loss, logq_rows);
}
