/*
 * MAF training-mode forward and backward pass (hand-written).
 *
 * Threads split the hidden units: in each phase thread t owns one
 * contiguous range of units (own_units) and computes their pre-activations
 * (only the unmasked block: units of degree g see the column prefix of
 * degree <= g), activations and batch norm (per-unit statistics need all
 * batch rows of a unit, which the owner has), their rows of the weight
 * gradients and their columns of the back-propagated gradients (a column of
 * degree g receives contributions from a row suffix only).  The masked
 * products run through the packed micro-kernel of maf_gemm.c, so every
 * result is the same for any thread count.  Barriers separate phases.
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
    float *pw;            /* (H + NR) x kmax packed weight panels: the tile of units j0.. at pw + j0 kmax */
    int kmax;             /* max(H, 2D, C) (threads own disjoint unit ranges, so disjoint slots) */
    int *pre_in, *pre_c, *pre_h; /* H: columns of u, xz and the hidden layer that unit u sees */
    int *first_h, *first_f;      /* H: first row of the hidden / output weights that sees unit c */
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
    w->xz = calloc(B * C + SF_GEMM_NR, sizeof(float)); /* + NR: read 16 wide by grad_rows_masked */
    w->u = calloc((K + 1) * B * D + SF_GEMM_NR, sizeof(float));
    w->ct = malloc(K * B * H * sizeof(float));
    w->h0 = malloc(K * B * H * sizeof(float));
    w->xh = malloc(K * NB * B * H * sizeof(float));
    w->bo = calloc(K * NB * B * H + SF_GEMM_NR, sizeof(float)); /* + NR: a last column tile reads 16 wide */
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
    size_t kmax = H > 2 * D ? H : 2 * D;
    kmax = kmax > C ? kmax : C;
    w->kmax = (int)kmax;
    w->pw = malloc((H + SF_GEMM_NR) * kmax * sizeof(float));
    w->pre_in = malloc(5 * H * sizeof(int));
    if (w->pre_in) {
        w->pre_c = w->pre_in + H, w->pre_h = w->pre_c + H, w->first_h = w->pre_h + H, w->first_f = w->first_h + H;
        for (size_t o = 0; o < H; o++) {
            const int g = f->hdeg[o];
            w->pre_in[o] = g < (int)D ? g : (int)D;
            w->pre_c[o] = (int)C;
            w->pre_h[o] = f->cnt_le[g];
            w->first_h[o] = g > 0 ? f->cnt_le[g - 1] : 0;
            w->first_f[o] = g < (int)D ? 2 * g : 2 * (int)D; /* output rows 2d, 2d+1 see degrees <= d */
        }
    }
    if (!w->xz || !w->u || !w->ct || !w->h0 || !w->xh || !w->bo || !w->hh || !w->istd || !w->out ||
        !w->dA || !w->dB || !w->dC || !w->dout || !w->g0 || !w->g1 || !w->ldet || !w->s1 || !w->s2 || !w->cf ||
        !w->pw || !w->pre_in) {
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
    free(w->pw); free(w->pre_in);
    free(w);
}

/* Slice t of nt of [rs, re). */
static inline void slice(int rs, int re, int t, int nt, int *a, int *b)
{
    long n = re - rs;
    *a = rs + (int)(n * t / nt);
    *b = rs + (int)(n * (t + 1) / nt);
}

/* Work of a hidden unit u in each threaded phase, in multiply-adds per batch
 * row (the backward weights fitted to per-phase timings of both threads on
 * the 2-core VM at SEDflow's size, 2026-12-01): */
enum { PHASE_UNIFORM, PHASE_FORWARD, PHASE_BACKWARD };
static double unit_cost(const sf_flow *f, int phase, int u)
{
    const int g = f->hdeg[u];
    const int p = f->cnt_le[g];                          /* hidden units it sees (its row of W) */
    const int s = f->H - (g > 0 ? f->cnt_le[g - 1] : 0); /* hidden units that see it (its column) */
    switch (phase) {
    case PHASE_FORWARD: return p + 16;                       /* its row of W, then its tanh */
    case PHASE_BACKWARD: return 2.0 * (p + 160) + 3.0 * s;   /* dW row (+ its bias sum), dX column */
    default: return 1;                                       /* batch norm, input layer, tanh */
    }
}

/* Thread t's contiguous share [*a, *b) of the H hidden units in a phase,
 * balancing unit_cost.  Boundaries are multiples of 16 units (64 bytes): one
 * range per thread, so threads share at most one cache line per activation
 * row, and the micro-kernel's 16-unit tiles never straddle two threads.
 * Results do not depend on the split (each element is computed the same way
 * by whichever thread owns it). */
static void own_units(const sf_flow *f, int phase, int t, int nt, int *a, int *b)
{
    const int H = f->H;
    if (nt == 1) {
        *a = 0, *b = H;
        return;
    }
    double total = 0;
    for (int u = 0; u < H; u++) total += unit_cost(f, phase, u);
    int cut[2] = {0, H};
    for (int e = 0; e < 2; e++) {
        if (t + e == 0 || t + e == nt) continue;
        double target = total * (t + e) / nt, acc = 0;
        int u = 0;
        for (; u < H && acc < target; u++) acc += unit_cost(f, phase, u);
        u = (u + 8) / 16 * 16;
        cut[e] = u < H ? u : H;
    }
    *a = cut[0], *b = cut[1];
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

/* db[a:b] = column sums of dY (B rows), summed in double in row order (acc:
 * scratch of at least b doubles). */
static void bias_grad(int B, int a, int b, const float *dY, int ldy, float *db, double *acc)
{
    for (int o = a; o < b; o++) acc[o] = 0;
    for (int r = 0; r < B; r++)
        for (int o = a; o < b; o++) acc[o] += dY[(size_t)r * ldy + o];
    for (int o = a; o < b; o++) db[o] = (float)acc[o];
}

/* dW[a:b, 0:p] = dY[:, a:b]^T X[:, 0:p];  db[a:b] = column sums of dY. */
static void grad_rows(int B, int a, int b, int p, const float *dY, int ldy, const float *X, int ldx,
                      float *dW, int ldw, float *db, double *acc)
{
    if (b <= a) return;
    if (p > 0)
        sf_flow_sgemm(1, 0, b - a, p, B, 1.f, dY + a, ldy, X, ldx, 0.f,
                    dW + (size_t)a * ldw, ldw);
    bias_grad(B, a, b, dY, ldy, db, acc);
}

/* ---- masked products through the packed micro-kernel (maf_gemm.c) ----
 *
 * Used for every product whose split between threads varies with the
 * thread count: OpenBLAS's value of an element depends on where the element
 * falls in the call (its N remainder kernels), so the same product split
 * differently gave other bytes.  In these the value of each element is one
 * multiply-add chain whatever the split, and the tiles sit on a fixed grid
 * of 16 units: results are identical for any number of threads. */

#define ROW_BLOCK (32 * SF_GEMM_MR) /* batch rows (or units) per cache block: 32 A panels */

static inline int imin(int a, int b)
{
    return a < b ? a : b;
}

/* Y[:, ua:ub] = X W[ua:ub, :]^T + bias with unit u seeing columns
 * [0, pre[u]) of X (pre nondecreasing; ua a multiple of NR).  Each tile of
 * NR units runs over its last unit's prefix (the others' extra weights are
 * exactly 0).  The tile at unit j0 is packed at pw + j0 ps (ps >= ldw). */
static void lin_masked(int B, int ua, int ub, const float *X, int ldx, const float *W, int ldw, const int *pre,
                       const float *bias, float *Y, int ldy, float *pw, int ps)
{
    for (int j0 = ua; j0 < ub; j0 += SF_GEMM_NR) {
        const int nr = imin(SF_GEMM_NR, ub - j0);
        sf_gemm_pack(SF_GEMM_NR, nr, pre[j0 + nr - 1], W + (size_t)j0 * ldw, ldw, 0, pw + (size_t)j0 * ps);
    }
    for (int r0 = 0; r0 < B; r0 += ROW_BLOCK)
        for (int j0 = ua; j0 < ub; j0 += SF_GEMM_NR) {
            const int nr = imin(SF_GEMM_NR, ub - j0);
            for (int i = r0; i < imin(B, r0 + ROW_BLOCK); i += SF_GEMM_MR)
                sf_gemm_tile(pre[j0 + nr - 1], X + (size_t)i * ldx, ldx, 1, pw + (size_t)j0 * ps, SF_GEMM_NR,
                             Y + (size_t)i * ldy + j0, ldy, imin(SF_GEMM_MR, B - i), nr, bias + j0, NULL);
        }
}

/* dX[:, ca:cb] = dY W[:, ca:cb] for W with R rows, column c seen by rows
 * [first[c], R) (first nondecreasing; ca a multiple of NR).  pw as above
 * (ps >= R). */
static void grad_cols_masked(int B, int ca, int cb, const float *dY, int ldy, const float *W, int ldw, int R,
                             const int *first, float *dX, int ldx, float *pw, int ps)
{
    for (int c0 = ca; c0 < cb; c0 += SF_GEMM_NR) {
        const int nr = imin(SF_GEMM_NR, cb - c0), r0 = first[c0];
        sf_gemm_pack(SF_GEMM_NR, nr, R - r0, W + (size_t)r0 * ldw + c0, ldw, 1, pw + (size_t)c0 * ps);
    }
    for (int i0 = 0; i0 < B; i0 += ROW_BLOCK)
        for (int c0 = ca; c0 < cb; c0 += SF_GEMM_NR) {
            const int nr = imin(SF_GEMM_NR, cb - c0), r0 = first[c0];
            for (int i = i0; i < imin(B, i0 + ROW_BLOCK); i += SF_GEMM_MR)
                sf_gemm_tile(R - r0, dY + (size_t)i * ldy + r0, ldy, 1, pw + (size_t)c0 * ps, SF_GEMM_NR,
                             dX + (size_t)i * ldx + c0, ldx, imin(SF_GEMM_MR, B - i), nr, NULL, NULL);
        }
}

/* dW[o, 0:pre[o]] = sum over rows of dY[:, o] X[:, 0:pre[o]] and db[o] the
 * column sum of dY, units o in [ua, ub) (masked entries are not written).
 * X (ldx columns) must be readable NR floats past its last row's end. */
static void grad_rows_masked(int B, int ua, int ub, const float *dY, int ldy, const float *X, int ldx, const int *pre,
                             float *dW, int ldw, float *db, double *acc)
{
    for (int b0 = ua; b0 < ub; b0 += ROW_BLOCK) {
        const int b1 = imin(ub, b0 + ROW_BLOCK);
        for (int j0 = 0; j0 < pre[b1 - 1]; j0 += SF_GEMM_NR)
            for (int o0 = b0; o0 < b1; o0 += SF_GEMM_MR) {
                const int mr = imin(SF_GEMM_MR, b1 - o0);
                if (pre[o0 + mr - 1] <= j0) continue;
                int ncol[SF_GEMM_MR];
                for (int i = 0; i < mr; i++) ncol[i] = pre[o0 + i] - j0;
                sf_gemm_tile(B, dY + o0, 1, ldy, X + j0, ldx, dW + (size_t)o0 * ldw + j0, ldw, mr,
                             imin(SF_GEMM_NR, ldx - j0), NULL, ncol);
            }
    }
    bias_grad(B, ua, ub, dY, ldy, db, acc);
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
    int ua, ub, ca, cb; /* the products' units, and batch norm's */
    own_units(f, PHASE_FORWARD, t, nt, &ua, &ub);
    own_units(f, PHASE_UNIFORM, t, nt, &ca, &cb);
    for (int k = 0; k < f->K; k++) {
        sf_maf_view v;
        sf_maf_view_of(f, f->params, k, &v);
        const float *u = w->u + (size_t)k * w->bmax * D;
        float *ct = w->ct + k * BH, *h0 = w->h0 + k * BH;
        /* input and context layers of this thread's batch-norm units */
        lin_masked(B, ca, cb, u, D, v.w_in, D, w->pre_in, v.b_in, h0, H, w->pw, w->kmax);
        if (C > 0) lin_masked(B, ca, cb, w->xz, C, v.w_c, C, w->pre_c, v.b_c, ct, H, w->pw, w->kmax);
        for (int r = 0; r < B; r++) {
            float *cr = ct + (size_t)r * H + ca, *hr = h0 + (size_t)r * H + ca;
            if (C > 0) sf_flow_tanh(cr, NULL, (size_t)(cb - ca));
            sf_flow_tanh(hr, C > 0 ? cr : NULL, (size_t)(cb - ca));
        }
        const float *hin = h0;
        for (int j = 0; j < SF_MAF_NBLOCKS; j++) {
            size_t kj = (size_t)k * SF_MAF_NBLOCKS + j;
            float *xh = w->xh + kj * BH, *bo = w->bo + kj * BH, *hh = w->hh + kj * BH;
            float *istd = w->istd + kj * H, *run = f->bn_run + kj * 2 * H;
            if (j > 0) {
#pragma omp barrier
            }
            bn_fwd(B, H, ca, cb, hin, v.bn_g[j], v.bn_b[j], xh, bo, istd, run, c->update, w->s1, w->s2, w->cf);
#pragma omp barrier
            lin_masked(B, ua, ub, bo, H, v.w_h[j], H, w->pre_h, v.b_h[j], hh, H, w->pw, w->kmax);
            for (int r = 0; r < B; r++) sf_flow_tanh(hh + (size_t)r * H + ua, NULL, (size_t)(ub - ua));
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
    int r0, r1, ua, ub;
    slice(0, B, t, nt, &r0, &r1);
    own_units(f, PHASE_BACKWARD, t, nt, &ua, &ub);
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
        grad_cols_masked(B, ua, ub, w->dout, 2 * D, v.w_f, H, 2 * D, w->first_f, dcur, H, w->pw, w->kmax);
        for (int r = 0; r < B; r++)
            for (int o = ua; o < ub; o++) {
                size_t i = (size_t)r * H + o;
                dcur[i] *= 1.f - hlast[i] * hlast[i];
            }
        /* 3. hidden blocks, last to first: dcur = d loss / d pre-activation of
         * block j (this thread's columns written, all read after the barrier) */
        for (int j = SF_MAF_NBLOCKS - 1; j >= 0; j--) {
            size_t kj = (size_t)k * SF_MAF_NBLOCKS + j;
            const float *bo = w->bo + kj * BH, *xh = w->xh + kj * BH, *istd = w->istd + kj * H;
            const float *hprev = j > 0 ? w->hh + (kj - 1) * BH : w->h0 + (size_t)k * BH;
#pragma omp barrier
            grad_rows_masked(B, ua, ub, dcur, H, bo, H, w->pre_h, dv.w_h[j], H, dv.b_h[j], w->s1);
            grad_cols_masked(B, ua, ub, dcur, H, v.w_h[j], H, H, w->first_h, dnext, H, w->pw, w->kmax);
            bn_bwd(B, H, ua, ub, dnext, xh, v.bn_g[j], istd, dv.bn_g[j], dv.bn_b[j], dnext, hprev, w->s1, w->s2,
                   w->cf);
            float *tmp = dcur;
            dcur = dnext;
            dnext = tmp;
        }
        /* 4. input and context layers (dcur = d loss / d pre0) */
        const float *ct = w->ct + (size_t)k * BH;
        grad_rows_masked(B, ua, ub, dcur, H, u, D, w->pre_in, dv.w_in, D, dv.b_in, w->s1);
        if (C > 0) {
            for (int r = 0; r < B; r++)
                for (int o = ua; o < ub; o++) {
                    size_t i = (size_t)r * H + o;
                    w->dC[i] = dcur[i] * (1.f - ct[i] * ct[i]);
                }
            grad_rows_masked(B, ua, ub, w->dC, H, w->xz, C, w->pre_c, dv.w_c, C, dv.b_c, w->s1);
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
    int nt = sf_nthreads(nthreads);
    if (nt > B / 2) nt = B / 2 > 0 ? B / 2 : 1;
    /* ~11 barriers per MADE: threads only pay for big layers (MAF 8 x 64 at
     * batch 512, B H^2 = 2.1e6, ran 18% slower on 2 threads) */
    if ((double)B * f->H * f->H < 4e6) nt = 1;
#pragma omp parallel num_threads(nt)
    {
        int t = omp_get_thread_num(), n = omp_get_num_threads();
        forward(&ctx, t, n);
        backward(&ctx, t, n);
    }
    return sf_flow_batch_loss(f, B, theta, w->u + (size_t)f->K * w->bmax * D, w->ldet, loss, logq_rows);
}
