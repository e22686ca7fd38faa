/*
 * "Precise BN": the MAF's batch-norm evaluation statistics recomputed
 * exactly over many rows (Ioffe & Szegedy 2015 sect. 3.1: inference uses
 * the population mean and unbiased variance; Wu & Johnson 2021,
 * "Rethinking 'Batch' in BatchNorm", sect. 3: precise BN instead of the
 * exponential moving average, whose momentum 0.1 keeps only the last
 * ~10-20 minibatches and makes the evaluation-mode flow jump between
 * epochs).
 *
 * BN layer (k, j) (MADE k, hidden block j) normalises h_j, the input of
 * block j: j = 0 the first tanh layer, j = 1 the output of block 0.  Layers
 * are processed in network order; the statistics of a layer are those of
 * its input in evaluation mode with every earlier layer already using its
 * new statistics, so after the call the population statistics of the n
 * rows are exactly what evaluation sees:
 *   running_mean_o = (1/n) sum_i h_io
 *   running_var_o  = 1/(n-1) sum_i (h_io - running_mean_o)^2
 * The unbiased variance is the training code's convention for running_var
 * (maf_train.c bn_fwd, as PyTorch/nflows); it differs from the population
 * variance by n/(n-1).
 *
 * Memory: the activations of the current layer for all n rows (n x H
 * floats) plus u (n x D) and the z-scored context (n x C).  Rows are
 * processed in fixed chunks of BN_CHUNK (single-threaded sgemm per chunk,
 * the same products as the evaluation pass), sums in double per chunk and
 * reduced in chunk order: the result does not depend on the thread count.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "flow/flow_impl.h"

#define BN_CHUNK 256

typedef struct {
    float *ct, *tmp; /* BN_CHUNK x H */
    float *out;      /* BN_CHUNK x 2D */
    float *z;        /* D */
} bn_ws;

static void ws_free(bn_ws *w)
{
    free(w->ct); free(w->tmp); free(w->out); free(w->z);
}

static int ws_alloc(const sf_flow *f, bn_ws *w)
{
    const size_t H = (size_t)f->H, D = (size_t)f->D;
    w->ct = malloc(BN_CHUNK * H * sizeof(float));
    w->tmp = malloc(BN_CHUNK * H * sizeof(float));
    w->out = malloc(BN_CHUNK * 2 * D * sizeof(float));
    w->z = malloc(D * sizeof(float));
    if (!w->ct || !w->tmp || !w->out || !w->z) {
        ws_free(w);
        memset(w, 0, sizeof *w);
        return -1;
    }
    return 0;
}

/* First layer of MADE k on m rows: act = tanh(W_in u + b_in + tanh(W_c xz + b_c)). */
static void first_layer(const sf_flow *f, const sf_maf_view *v, bn_ws *w, int m, const float *u, const float *xz,
                        float *act)
{
    const int D = f->D, C = f->C, H = f->H;
    if (C > 0) {
        sf_maf_lin_rows(m, 0, H, C, xz, C, v->w_c, C, v->b_c, w->ct, H);
        sf_flow_tanh(w->ct, NULL, (size_t)m * H);
    }
    for (int q = 0; q < f->n_srun; q++)
        sf_maf_lin_rows(m, f->srun_in[q].rs, f->srun_in[q].re, f->srun_in[q].p, u, D, v->w_in, D, v->b_in, act, H);
    sf_flow_tanh(act, C > 0 ? w->ct : NULL, (size_t)m * H);
}

/* Block j of MADE k (BN folded into ev_w/ev_b) on m rows: tmp = tanh(...). */
static void block(const sf_flow *f, int k, int j, bn_ws *w, int m, const float *act)
{
    const int H = f->H;
    const size_t kj = (size_t)k * SF_MAF_NBLOCKS + j;
    const float *ew = f->ev_w + kj * H * H, *eb = f->ev_b + kj * H;
    for (int q = 0; q < f->n_srun; q++)
        sf_maf_lin_rows(m, f->srun_h[q].rs, f->srun_h[q].re, f->srun_h[q].p, act, H, ew, H, eb, w->tmp, H);
    sf_flow_tanh(w->tmp, NULL, (size_t)m * H);
}

/* Output layer and affine map + permutation of MADE k on m rows (h = w->tmp):
 * u (m x D) becomes u_{k+1}. */
static void output(const sf_flow *f, const sf_maf_view *v, int k, bn_ws *w, int m, float *u)
{
    const int D = f->D, H = f->H;
    for (int q = 0; q < f->n_run_f; q++)
        sf_maf_lin_rows(m, f->run_f[q].rs, f->run_f[q].re, f->run_f[q].p, w->tmp, H, v->w_f, H, v->b_f, w->out,
                        2 * D);
    const int *perm = f->perm + (size_t)k * D;
    for (int r = 0; r < m; r++) {
        float *ur = u + (size_t)r * D;
        const float *o = w->out + (size_t)r * 2 * D;
        for (int d = 0; d < D; d++) w->z[d] = (sf_softplusf(o[2 * d]) + SF_MAF_SCALE_EPS) * ur[d] + o[2 * d + 1];
        for (int i = 0; i < D; i++) ur[i] = w->z[perm[i]];
    }
}

/* Mean and unbiased variance of each column of act (n x H) into run
 * (mean H, var H): per-chunk double sums, reduced in chunk order. */
static int column_stats(const sf_flow *f, size_t n, const float *act, double *part, double *mean, float *run,
                        int nt)
{
    const int H = f->H;
    const size_t nch = (n + BN_CHUNK - 1) / BN_CHUNK;
    for (int pass = 0; pass < 2; pass++) {
#pragma omp parallel for num_threads(nt) schedule(static)
        for (size_t ch = 0; ch < nch; ch++) {
            double *p = part + ch * H;
            size_t r1 = (ch + 1) * BN_CHUNK < n ? (ch + 1) * BN_CHUNK : n;
            for (int o = 0; o < H; o++) p[o] = 0;
            for (size_t r = ch * BN_CHUNK; r < r1; r++) {
                const float *a = act + r * H;
                if (pass == 0)
                    for (int o = 0; o < H; o++) p[o] += a[o];
                else
                    for (int o = 0; o < H; o++) {
                        double d = a[o] - mean[o];
                        p[o] += d * d;
                    }
            }
        }
        for (int o = 0; o < H; o++) {
            double s = 0;
            for (size_t ch = 0; ch < nch; ch++) s += part[ch * H + o];
            if (pass == 0) mean[o] = s / (double)n;
            else {
                double var = s / (double)(n - 1);
                if (!isfinite(mean[o]) || !isfinite(var)) return -1;
                run[o] = (float)mean[o];
                run[H + o] = (float)var;
            }
        }
    }
    return 0;
}

sf_status sf_flow_bn_recompute(sf_flow *f, size_t n, const double *theta, const double *x, int nthreads)
{
    if (f->nsf) return SF_OK; /* no batch norm */
    if (n < 2) return SF_ERROR(SF_EINVAL, "precise BN needs n >= 2 rows, got %zu", n);
    if (!theta || (f->C > 0 && !x)) return SF_ERROR(SF_EINVAL, "NULL theta or x");
    sf_flow_blas_single();
    const int D = f->D, C = f->C, H = f->H, nt = sf_nthreads(nthreads);
    const size_t nch = (n + BN_CHUNK - 1) / BN_CHUNK;
    float *u = malloc(n * D * sizeof(float)), *xz = malloc((n * C + 1) * sizeof(float));
    float *act = malloc(n * H * sizeof(float));
    double *part = malloc(nch * H * sizeof(double)), *mean = malloc(H * sizeof(double));
    float *saved = malloc(f->n_bn * sizeof(float));
    bn_ws *ws = calloc((size_t)nt, sizeof(bn_ws));
    sf_status st = SF_OK;
    int restore = 0; /* saved holds the statistics on entry */
    if (!u || !xz || !act || !part || !mean || !saved || !ws) {
        st = SF_ERROR(SF_ENOMEM, "out of memory for precise BN on %zu rows (%zu MB of activations)", n,
                      n * H * sizeof(float) >> 20);
        goto done;
    }
    memcpy(saved, f->bn_run, f->n_bn * sizeof(float));
    restore = 1;
    for (int t = 0; t < nt; t++)
        if (ws_alloc(f, ws + t)) {
            st = SF_ERROR(SF_ENOMEM, "out of memory for precise BN workspaces");
            goto done;
        }
    for (size_t r = 0; r < n; r++) {
        sf_flow_input_row(f, theta + r * D, C ? x + r * C : NULL, u + r * D, xz + r * C);
        int bad = 0; /* sf_flow_tanh would clamp a NaN to +-1 and hide it */
        for (int d = 0; d < D; d++) bad |= !isfinite(u[r * D + d]);
        for (int c = 0; c < C; c++) bad |= !isfinite(xz[r * C + c]);
        if (bad) {
            st = SF_ERROR(SF_EINVAL, "precise BN: row %zu of theta or x is not finite (or overflows float)", r);
            goto done;
        }
    }
    sf_flow_prepare(f); /* masked weights zeroed, earlier folds current */
    for (int k = 0; k < f->K; k++) {
        sf_maf_view v;
        sf_maf_view_of(f, f->params, k, &v);
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
        for (size_t ch = 0; ch < nch; ch++) {
            size_t r0 = ch * BN_CHUNK;
            int m = (int)(n - r0 < BN_CHUNK ? n - r0 : BN_CHUNK);
            first_layer(f, &v, ws + omp_get_thread_num(), m, u + r0 * D, xz + r0 * C, act + r0 * H);
        }
        for (int j = 0; j < SF_MAF_NBLOCKS; j++) {
            float *run = f->bn_run + ((size_t)k * SF_MAF_NBLOCKS + j) * 2 * H;
            if (column_stats(f, n, act, part, mean, run, nt)) {
                st = SF_ERROR(SF_EINVAL, "precise BN: statistics of MADE %d block %d not finite", k, j);
                goto done;
            }
            sf_flow_prepare(f); /* fold the new statistics of (k, j) */
            const int last = j == SF_MAF_NBLOCKS - 1;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
            for (size_t ch = 0; ch < nch; ch++) {
                size_t r0 = ch * BN_CHUNK;
                int m = (int)(n - r0 < BN_CHUNK ? n - r0 : BN_CHUNK);
                bn_ws *w = ws + omp_get_thread_num();
                block(f, k, j, w, m, act + r0 * H);
                if (!last) memcpy(act + r0 * H, w->tmp, (size_t)m * H * sizeof(float));
                else output(f, &v, k, w, m, u + r0 * D);
            }
        }
    }
done:
    if (ws)
        for (int t = 0; t < nt; t++) ws_free(ws + t);
    free(ws);
    free(u);
    free(xz);
    free(act);
    free(part);
    free(mean);
    if (st && restore) { /* leave f as it was */
        memcpy(f->bn_run, saved, f->n_bn * sizeof(float));
        sf_flow_prepare(f);
    }
    free(saved);
    return st;
}
