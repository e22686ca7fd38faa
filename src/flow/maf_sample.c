/*
 * MAF sampling and log q over unit-major row blocks: the fast inverse
 * (issue 4 part 3) behind the shared sampling driver (flow_sample.c), and
 * the evaluation-mode forward pass behind the log q driver (flow_eval.c),
 * both with the same kernels.
 *
 * With hidden units sorted by degree, a unit of degree g depends only on
 * inputs u_1..u_g (1-based).  Solving for u_d in order d = 1..D, at step d
 * the units of degree d-1 of all three hidden layers are computed (their
 * inputs are now known), then output d:
 *   h0[o] = tanh(W_in[o][0:d-1] u + b_in[o] + ctx[o])        (ctx per galaxy)
 *   h1[o] = tanh(W1'[o][0:hi] h0 + b1'),  h2[o] = tanh(W2'[o][0:hi] h1 + b2')
 *   (s, t) = W_f[2d, 2d+1][0:hi] h2 + b_f,  sc = softplus(s) + 1e-3
 *   u_d = (v_d - t) / sc,   ldet += log sc
 * (W' = BN-folded evaluation weights, sf_flow_prepare; hi = units of degree
 * <= d-1).  Each unit is computed once: one inverse costs one forward pass.
 *
 * Layout and kernel.  The chunk's rows (SF_FLOW_CHUNK = 240) are cut into
 * row blocks of RB = 48; activations are stored unit-major inside a row
 * block, X[rb][unit][48 rows], so the rows of one unit are one contiguous
 * 192-byte run of 6 AVX vectors.  A degree slice is computed by a
 * register-blocked kernel: for 2 output units x 48 rows (12 accumulators,
 * enough independent FMA chains to cover the FMA latency), loop over the
 * known inputs i with one broadcast of W[o][i] per unit and 6 vector loads
 * of X[i][rows] (no packing, no BLAS call), then bias + tanh in registers
 * and one store.  Inputs go in tiles of 128 for large H (L1).  The softplus
 * / log / affine update of output d runs over the 48 rows in vectors too.
 * Summation order is fixed (bias, then inputs in order), rows never mix, so
 * results do not depend on the thread count.  Without AVX2 + FMA the same
 * loops run in plain C (tests/test_flow_inverse.c passes with either).
 *
 * Measured (perf, default model 6 x 128): before, OpenBLAS sgemm per degree
 * slice with row-major activations spent 16% packing, 27% in per-row tanh
 * calls on 13-unit slices; now ~75% in the kernel, ~25% of it tanh.
 * Row blocks of 48 instead of 40 (2026-11-30, one thread beside a training
 * on the other core, alternating runs): 10,000 draws 0.059-0.060 instead of
 * 0.064-0.066 CPU-s (6 x 128), 1.43-1.57 instead of 1.75-1.80 (15 x 500);
 * 6 x 96 unchanged within the noise.
 * log q through these kernels instead of one sgemm per super-run (2026-12-01,
 * idle, alternating runs, bench_flow 20,000 rows): 15 x 500 9,270-9,940 ->
 * 12,038-13,295 rows/s on 2 threads (1.34x; 1 thread 1.44x), 6 x 128
 * 106,585-155,735 -> 295,388-364,891 (2.56x).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "flow/flow_impl.h"
#include "flow/flow_simd.h"

#ifndef RB
#define RB 48                                /* rows per register block: 6 AVX vectors */
#endif
#define NV (RB / 8)                          /* vectors per row block */
#define NRB ((SF_FLOW_CHUNK + RB - 1) / RB)  /* row blocks per chunk (exact for 240 / 48) */

typedef struct {
    float *ut, *vt; /* NRB x D x RB: u being solved, v = this MADE's target (z-scored);
                       log q: u the MADE's input, v its output */
    float *xt;      /* NRB x C x RB: the z-scored context (log q only: rows differ) */
    float *h[3];    /* NRB x H x RB: the three hidden layers */
    double *ldet;   /* SF_FLOW_CHUNK: sum of log scales */
    float *ssum;    /* SF_FLOW_CHUNK: sum of (scale - scale): 0, or NaN where a scale is not finite
                       (instead of ldet when no log q is wanted) */
} chunk_ws;

static inline const float *ev_w(const sf_flow *f, int k, int j)
{
    return f->ev_w + ((size_t)k * SF_MAF_NBLOCKS + j) * f->H * f->H;
}
static inline const float *ev_b(const sf_flow *f, int k, int j)
{
    return f->ev_b + ((size_t)k * SF_MAF_NBLOCKS + j) * f->H;
}

/* ---- kernels: one row block of RB rows ------------------------------------ */

#ifdef SF_FLOW_AVX2
/* For b < NB units (rows of W): acc = bias[b] (first) or Y[b] (a partial
 * sum), acc += sum_{i0<=i<i1} W[b][i] X[i][0:RB], Y[b][0:RB] = tanh(acc)
 * (last) or acc.  NB = 2: 12 accumulators, 2 broadcasts + 6 loads per 12 FMAs
 * (NB = 3 spills with GCC; 2 units x 32 rows was no faster than 2 x 40, and
 * 2 x 40 was 8-14% slower than 2 x 48). */
static inline __attribute__((always_inline)) void slice_kernel(const int NB, const float *W, int ldw,
                                                               const float *bias, int i0, int i1, const float *X,
                                                               float *Y, int first, int last)
{
    __m256 a[2][NV];
    for (int b = 0; b < NB; b++)
        for (int q = 0; q < NV; q++)
            a[b][q] = first ? _mm256_set1_ps(bias[b]) : _mm256_load_ps(Y + (size_t)b * RB + 8 * q);
    for (int i = i0; i < i1; i++) {
        const float *x = X + (size_t)i * RB;
        __m256 w[2];
        for (int b = 0; b < NB; b++) w[b] = _mm256_broadcast_ss(W + (size_t)b * ldw + i);
        for (int q = 0; q < NV; q++) {
            __m256 xq = _mm256_load_ps(x + 8 * q);
            __asm__("" : "+x"(xq)); /* keep xq in a register: GCC would fold the load into each FMA */
            for (int b = 0; b < NB; b++) a[b][q] = _mm256_fmadd_ps(w[b], xq, a[b][q]);
        }
    }
    for (int b = 0; b < NB; b++)
        for (int q = 0; q < NV; q++) _mm256_store_ps(Y + (size_t)b * RB + 8 * q, last ? sf_tanh8(a[b][q]) : a[b][q]);
}

/* Output d for one row block: (s, t) from X = h2 (p inputs), then
 * u = (v - t) / sc (the inverse) or, FWD, u = sc v + t (the forward pass of
 * log q), with sc = softplus(s) + eps, and ldet += log sc (LD) or
 * ssum += sc - sc (!LD: 0, or NaN exactly where the log-det is not finite;
 * sc >= eps > 0, so log sc is finite exactly when sc is). */
static inline __attribute__((always_inline)) void output_update(const int LD, const int FWD, const float *ws,
                                                                const float *wt, float bs, float bt, int p,
                                                                const float *X, const float *v, float *u,
                                                                double *ldet, float *ssum)
{
    __m256 s[NV], t[NV];
    for (int q = 0; q < NV; q++) s[q] = _mm256_set1_ps(bs), t[q] = _mm256_set1_ps(bt);
    for (int i = 0; i < p; i++) {
        const float *x = X + (size_t)i * RB;
        const __m256 w0 = _mm256_broadcast_ss(ws + i), w1 = _mm256_broadcast_ss(wt + i);
        for (int q = 0; q < NV; q++) {
            __m256 xq = _mm256_load_ps(x + 8 * q);
            __asm__("" : "+x"(xq));
            s[q] = _mm256_fmadd_ps(w0, xq, s[q]);
            t[q] = _mm256_fmadd_ps(w1, xq, t[q]);
        }
    }
    /* through memory: the update loop below is not unrolled, and indexing
     * the accumulators there would keep them on the stack in the loop above */
    float sb[RB] __attribute__((aligned(32))), tb[RB] __attribute__((aligned(32)));
    for (int q = 0; q < NV; q++) _mm256_store_ps(sb + 8 * q, s[q]), _mm256_store_ps(tb + 8 * q, t[q]);
    for (int q = 0; q < NV; q++) {
        const __m256 sc = _mm256_add_ps(sf_softplus8(_mm256_load_ps(sb + 8 * q)), _mm256_set1_ps(SF_MAF_SCALE_EPS));
        if (FWD) /* log q: u = sc v + t */
            _mm256_store_ps(u + 8 * q, _mm256_add_ps(_mm256_mul_ps(sc, _mm256_load_ps(v + 8 * q)),
                                                     _mm256_load_ps(tb + 8 * q)));
        else
            _mm256_store_ps(u + 8 * q, _mm256_div_ps(_mm256_sub_ps(_mm256_load_ps(v + 8 * q),
                                                                   _mm256_load_ps(tb + 8 * q)), sc));
        if (!LD) {
            _mm256_storeu_ps(ssum + 8 * q, _mm256_add_ps(_mm256_loadu_ps(ssum + 8 * q), _mm256_sub_ps(sc, sc)));
            continue;
        }
        const __m256 l = sf_log8(sc);
        double *ld = ldet + 8 * q;
        _mm256_storeu_pd(ld, _mm256_add_pd(_mm256_loadu_pd(ld), _mm256_cvtps_pd(_mm256_castps256_ps128(l))));
        _mm256_storeu_pd(ld + 4, _mm256_add_pd(_mm256_loadu_pd(ld + 4), _mm256_cvtps_pd(_mm256_extractf128_ps(l, 1))));
    }
}
#else
static inline void slice_kernel(const int NB, const float *W, int ldw, const float *bias, int i0, int i1,
                                const float *X, float *Y, int first, int last)
{
    for (int b = 0; b < NB; b++) {
        float *y = Y + (size_t)b * RB;
        if (first)
            for (int r = 0; r < RB; r++) y[r] = bias[b];
        for (int i = i0; i < i1; i++) {
            const float w = W[(size_t)b * ldw + i], *x = X + (size_t)i * RB;
            for (int r = 0; r < RB; r++) y[r] += w * x[r];
        }
        if (last) sf_flow_tanh(y, NULL, RB);
    }
}

static inline void output_update(const int LD, const int FWD, const float *ws, const float *wt, float bs, float bt,
                                 int p, const float *X, const float *v, float *u, double *ldet, float *ssum)
{
    float s[RB], t[RB];
    for (int r = 0; r < RB; r++) s[r] = bs, t[r] = bt;
    for (int i = 0; i < p; i++) {
        const float *x = X + (size_t)i * RB;
        for (int r = 0; r < RB; r++) s[r] += ws[i] * x[r], t[r] += wt[i] * x[r];
    }
    for (int r = 0; r < RB; r++) {
        const float sc = sf_softplusf(s[r]) + SF_MAF_SCALE_EPS;
        u[r] = FWD ? sc * v[r] + t[r] : (v[r] - t[r]) / sc;
        if (LD) ldet[r] += logf(sc);
        else ssum[r] += sc - sc;
    }
}
#endif

/* Units [lo, hi) of one layer for nrb row blocks: Y[o] = tanh(bias[o] +
 * W[o][0:p] X[0:p]), or with onto_y tanh(Y[o] + W[o][0:p] X[0:p]) (bias
 * unused; p may be 0).  X: blocks of ldx units x RB, Y: blocks of H x RB.
 * The inputs go in tiles of PTILE (24 KB of X per row block, kept in L1
 * while the slice's units pass over it; H = 500 would otherwise stream X
 * from L2 once per pair of units), partial sums kept in Y. */
#ifndef PTILE
#define PTILE 128
#endif
static void layer_slice(const float *W, int ldw, const float *bias, int lo, int hi, int p, const float *X, int ldx,
                        float *Y, int H, int nrb, int onto_y)
{
    for (int rb = 0; rb < nrb; rb++) {
        const float *Xb = X + (size_t)rb * ldx * RB;
        float *Yb = Y + (size_t)rb * H * RB;
        int i0 = 0;
        do {
            const int i1 = p - i0 > PTILE + PTILE / 2 ? i0 + PTILE : p, first = i0 == 0 && !onto_y, last = i1 == p;
            for (int o = lo; o < hi; o += 2) {
                const float *Wo = W + (size_t)o * ldw;
                float *Yo = Yb + (size_t)o * RB;
                if (hi - o >= 2) slice_kernel(2, Wo, ldw, bias + o, i0, i1, Xb, Yo, first, last);
                else slice_kernel(1, Wo, ldw, bias + o, i0, i1, Xb, Yo, first, last);
            }
            i0 = i1;
        } while (i0 < p);
    }
}

/* Inverse of nrb row blocks: c->ut holds base draws on entry, the z-scored
 * theta on return; c->ldet = sum of log scales (LD), else c->ssum = 0 or NaN
 * (output_update).  bias0: K x H, the input-layer bias plus the galaxy's context term. */
static inline __attribute__((always_inline)) void eval_inverse(const int LD, const sf_flow *f, chunk_ws *c, int nrb,
                                                               const float *bias0)
{
    const int D = f->D, H = f->H;
    if (LD) memset(c->ldet, 0, (size_t)nrb * RB * sizeof *c->ldet); /* only the accumulator in use */
    else memset(c->ssum, 0, (size_t)nrb * RB * sizeof *c->ssum);
    for (int k = f->K - 1; k >= 0; k--) {
        sf_maf_view v;
        sf_maf_view_of(f, f->params, k, &v);
        const int *perm = f->perm + (size_t)k * D;
        for (int rb = 0; rb < nrb; rb++)
            for (int i = 0; i < D; i++)
                memcpy(c->vt + ((size_t)rb * D + perm[i]) * RB, c->ut + ((size_t)rb * D + i) * RB, RB * sizeof(float));
        const float *b0 = bias0 + (size_t)k * H;
        for (int d = 0; d < D; d++) {
            const int lo = d > 0 ? f->cnt_le[d - 1] : 0, hi = f->cnt_le[d];
            if (hi > lo) { /* hidden units of degree d: inputs u_0..u_{d-1} known */
                layer_slice(v.w_in, D, b0, lo, hi, d, c->ut, D, c->h[0], H, nrb, 0);
                for (int j = 0; j < SF_MAF_NBLOCKS; j++)
                    layer_slice(ev_w(f, k, j), H, ev_b(f, k, j), lo, hi, hi, c->h[j], H, c->h[j + 1], H, nrb, 0);
            }
            const float *ws = v.w_f + (size_t)(2 * d) * H, *wt = ws + H;
            for (int rb = 0; rb < nrb; rb++)
                output_update(LD, 0, ws, wt, v.b_f[2 * d], v.b_f[2 * d + 1], hi,
                              c->h[SF_MAF_NBLOCKS] + (size_t)rb * H * RB, c->vt + ((size_t)rb * D + d) * RB,
                              c->ut + ((size_t)rb * D + d) * RB, c->ldet + (size_t)rb * RB, c->ssum + (size_t)rb * RB);
        }
    }
}

/* ---- sampler callbacks ------------------------------------------------------ */

static size_t galaxy_floats(const sf_flow *f) { return (size_t)f->K * f->H; }

/* bias0[k] = b_in + tanh(W_c xz + b_c) for the galaxy's context (double sums). */
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
                for (int i = 0; i < C; i++)
                    a += (double)v.w_c[(size_t)o * C + i] * (float)((x[i] - f->x_mean[i]) / f->x_std[i]);
                a = sf_tanhf((float)a);
            }
            bias0[(size_t)k * H + o] = v.b_in[o] + (float)a;
        }
    }
}

static void ws_free(void *ws)
{
    chunk_ws *c = ws;
    if (!c) return;
    free(c->ut); free(c->vt); free(c->xt);
    for (int i = 0; i < 3; i++) free(c->h[i]);
    free(c->ldet);
    free(c->ssum);
    free(c);
}

static void *ws_alloc(const sf_flow *f)
{
    const size_t D = (size_t)f->D, H = (size_t)f->H, N = (size_t)NRB * RB;
    chunk_ws *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    /* sizes: multiples of 64 bytes, as aligned_alloc needs (N * 4 = 960 or 1024) */
    c->ut = aligned_alloc(64, N * D * sizeof(float));
    c->vt = aligned_alloc(64, N * D * sizeof(float));
    c->xt = aligned_alloc(64, N * (f->C > 0 ? (size_t)f->C : 1) * sizeof(float));
    for (int i = 0; i < 3; i++) c->h[i] = aligned_alloc(64, N * H * sizeof(float));
    c->ldet = malloc(N * sizeof(double));
    c->ssum = malloc(N * sizeof(float));
    if (!c->ut || !c->vt || !c->xt || !c->h[0] || !c->h[1] || !c->h[2] || !c->ldet || !c->ssum) {
        ws_free(c);
        return NULL;
    }
    return c;
}

/* rows (n x w, row-major) -> row blocks of w units x RB (rows past n: 0) */
static void to_blocks(int n, int w, const float *rows, float *blk)
{
    for (int rb = 0; rb < (n + RB - 1) / RB; rb++)
        for (int d = 0; d < w; d++) {
            float *col = blk + ((size_t)rb * w + d) * RB;
            for (int q = 0; q < RB; q++) {
                const int r = rb * RB + q;
                col[q] = r < n ? rows[(size_t)r * w + d] : 0.f;
            }
        }
}

/* row blocks of w units x RB -> rows (n x w) */
static void from_blocks(int n, int w, const float *blk, float *rows)
{
    for (int r = 0; r < n; r++) {
        const float *col = blk + (size_t)(r / RB) * w * RB + r % RB;
        for (int d = 0; d < w; d++) rows[(size_t)r * w + d] = col[(size_t)d * RB];
    }
}

/* z (n x D, row-major) -> u (n x D), ldet (n: the log-det, or without
 * want_ldet 0 / NaN where it is finite / not); rows past n in the last row
 * block are zeros, computed and dropped. */
static void inverse(const sf_flow *f, void *ws, const float *gdata, int n, const float *z, float *u, double *ldet,
                    int want_ldet)
{
    chunk_ws *c = ws;
    const int nrb = (n + RB - 1) / RB;
    to_blocks(n, f->D, z, c->ut);
    if (want_ldet) eval_inverse(1, f, c, nrb, gdata);
    else eval_inverse(0, f, c, nrb, gdata);
    from_blocks(n, f->D, c->ut, u);
    for (int r = 0; r < n; r++) ldet[r] = want_ldet ? c->ldet[r] : c->ssum[r];
}

/* ---- log q: the forward pass (sf_flow_evaluator) ----------------------------
 *
 * The same kernels in the forward direction: every input is known, so each
 * MADE is its degree slices in order (as the inverse computes them) and
 * output d gives z_d = sc u_d + t.  Unlike sampling the context differs
 * from row to row: its layer tanh(W_c x + b_c) (all H units, C inputs) plus
 * b_in is the start of the input layer's sums.  u (n x D, z-scored theta)
 * becomes z in place; ldet = the summed log scales. */
static void eval_forward(const sf_flow *f, void *ws, int n, float *u_rows, const float *xz, double *ldet)
{
    chunk_ws *c = ws;
    const int D = f->D, C = f->C, H = f->H, nrb = (n + RB - 1) / RB;
    to_blocks(n, D, u_rows, c->ut);
    if (C > 0) to_blocks(n, C, xz, c->xt);
    memset(c->ldet, 0, (size_t)nrb * RB * sizeof *c->ldet);
    for (int k = 0; k < f->K; k++) {
        sf_maf_view v;
        sf_maf_view_of(f, f->params, k, &v);
        float *h0 = c->h[0];
        if (C > 0) layer_slice(v.w_c, C, v.b_c, 0, H, C, c->xt, C, h0, H, nrb, 0);
        for (int rb = 0; rb < nrb; rb++)
            for (int o = 0; o < H; o++) {
                float *y = h0 + ((size_t)rb * H + o) * RB;
                for (int q = 0; q < RB; q++) y[q] = C > 0 ? y[q] + v.b_in[o] : v.b_in[o];
            }
        for (int d = 0; d < D; d++) {
            const int lo = d > 0 ? f->cnt_le[d - 1] : 0, hi = f->cnt_le[d];
            if (hi > lo) {
                layer_slice(v.w_in, D, NULL, lo, hi, d, c->ut, D, h0, H, nrb, 1);
                for (int j = 0; j < SF_MAF_NBLOCKS; j++)
                    layer_slice(ev_w(f, k, j), H, ev_b(f, k, j), lo, hi, hi, c->h[j], H, c->h[j + 1], H, nrb, 0);
            }
            const float *w_s = v.w_f + (size_t)(2 * d) * H, *w_t = w_s + H;
            for (int rb = 0; rb < nrb; rb++)
                output_update(1, 1, w_s, w_t, v.b_f[2 * d], v.b_f[2 * d + 1], hi,
                              c->h[SF_MAF_NBLOCKS] + (size_t)rb * H * RB, c->ut + ((size_t)rb * D + d) * RB,
                              c->vt + ((size_t)rb * D + d) * RB, c->ldet + (size_t)rb * RB, NULL);
        }
        const int *perm = f->perm + (size_t)k * D;
        for (int rb = 0; rb < nrb; rb++)
            for (int i = 0; i < D; i++)
                memcpy(c->ut + ((size_t)rb * D + i) * RB, c->vt + ((size_t)rb * D + perm[i]) * RB, RB * sizeof(float));
    }
    from_blocks(n, D, c->ut, u_rows);
    memcpy(ldet, c->ldet, (size_t)n * sizeof *ldet);
}

const sf_flow_sampler sf_maf_sampler = {galaxy_floats, galaxy_bias, ws_alloc, ws_free, inverse};
const sf_flow_evaluator sf_maf_evaluator = {ws_alloc, ws_free, eval_forward};
