/*
 * NSF training-mode forward and backward pass, hand-written over sgemm.
 *
 * Data-parallel and deterministic: the batch is cut into P pieces whose
 * number depends only on the batch size (P = min(PIECES_MAX, ceil(B /
 * PIECE_ROWS))), never on the thread count.  Each piece runs the whole
 * forward and backward pass on its rows (single-threaded sgemm) into its
 * own gradient buffer (piece 0 straight into `grad`); then the buffers are
 * summed in piece order, the parameter range split over the threads.  So
 * the gradient is bit-identical for any thread count, and there are two
 * barriers per step (end of the pieces, end of the reduction) instead of
 * tens per layer.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "flow/nsf.h"

#define PIECE_ROWS 32
#define PIECES_MAX 8

struct sf_nsf_ws {
    size_t bmax;
    int pmax;
    float *xz;        /* bmax x C */
    float *u;         /* (K+1) x bmax x D: input of each layer; u[K] = base variable */
    float *a;         /* K x bmax x din_max: conditioner inputs (leading dimension din_l) */
    float *h1, *h2;   /* K x bmax x H */
    float *out;       /* K x bmax x m3_max (leading dimension m3_l) */
    float *dout;      /* bmax x m3_max */
    float *E;         /* bmax x m3_max: exp of a layer's outputs */
    float *dh1, *dh2; /* bmax x H */
    float *da;        /* bmax x din_max */
    float *g0, *g1;   /* bmax x D: d loss / d u */
    double *ldet;     /* bmax */
    double *acc;      /* pmax x max(H, m3_max): bias-gradient sums */
    float *gbuf;      /* (pmax - 1) x n_params */
};

static int pieces(size_t B)
{
    size_t p = (B + PIECE_ROWS - 1) / PIECE_ROWS;
    return (int)(p < 1 ? 1 : (p > PIECES_MAX ? PIECES_MAX : p));
}

void sf_nsf_train_ws_free(struct sf_nsf_ws *w)
{
    if (!w) return;
    free(w->xz); free(w->u); free(w->a); free(w->h1); free(w->h2); free(w->out); free(w->dout); free(w->E);
    free(w->dh1); free(w->dh2); free(w->da); free(w->g0); free(w->g1); free(w->ldet); free(w->acc); free(w->gbuf);
    free(w);
}

sf_status sf_nsf_train_ws_alloc(const sf_flow *f, size_t bmax, struct sf_nsf_ws **out)
{
    *out = NULL;
    struct sf_nsf_ws *w = calloc(1, sizeof *w);
    if (!w) return SF_ERROR(SF_ENOMEM, "out of memory");
    const size_t B = bmax, D = (size_t)f->D, C = (size_t)f->C, K = (size_t)f->K, H = (size_t)f->H;
    const size_t dm = (size_t)f->nsf->din_max + 1, mm = (size_t)f->nsf->m3_max;
    w->bmax = bmax;
    w->pmax = pieces(bmax);
    w->xz = malloc((B * C + 1) * sizeof(float));
    w->u = malloc((K + 1) * B * D * sizeof(float));
    w->a = malloc(K * B * dm * sizeof(float));
    w->h1 = malloc(K * B * H * sizeof(float));
    w->h2 = malloc(K * B * H * sizeof(float));
    w->out = malloc(K * B * mm * sizeof(float));
    w->dout = malloc(B * mm * sizeof(float));
    w->E = malloc(B * mm * sizeof(float));
    w->dh1 = malloc(B * H * sizeof(float));
    w->dh2 = malloc(B * H * sizeof(float));
    w->da = malloc(B * dm * sizeof(float));
    w->g0 = malloc(B * D * sizeof(float));
    w->g1 = malloc(B * D * sizeof(float));
    w->ldet = malloc(B * sizeof(double));
    w->acc = malloc((size_t)w->pmax * (H > mm ? H : mm) * sizeof(double));
    w->gbuf = malloc(((size_t)(w->pmax - 1) * f->n_params + 1) * sizeof(float));
    if (!w->xz || !w->u || !w->a || !w->h1 || !w->h2 || !w->out || !w->dout || !w->E || !w->dh1 || !w->dh2 || !w->da ||
        !w->g0 || !w->g1 || !w->ldet || !w->acc || !w->gbuf) {
        sf_nsf_train_ws_free(w);
        return SF_ERROR(SF_ENOMEM, "out of memory for an NSF training workspace of batch %zu", bmax);
    }
    *out = w;
    return SF_OK;
}

/* dW (rows x cols) = dY^T X over n rows; db = column sums of dY (double). */
static void grad_dense(int n, int rows, int cols, const float *dY, int ldy, const float *X, int ldx, float *dW,
                       float *db, double *acc)
{
    if (cols > 0) sf_flow_sgemm(1, 0, rows, cols, n, 1.f, dY, ldy, X, ldx, 0.f, dW, cols);
    for (int o = 0; o < rows; o++) acc[o] = 0;
    for (int r = 0; r < n; r++)
        for (int o = 0; o < rows; o++) acc[o] += dY[(size_t)r * ldy + o];
    for (int o = 0; o < rows; o++) db[o] = (float)acc[o];
}

/* Forward and backward of rows [r0, r0 + n) of a batch of B, gradient into g. */
static void piece_pass(sf_flow *f, struct sf_nsf_ws *w, int B, int r0, int n, float *grad, double *acc)
{
    const int D = f->D, C = f->C, H = f->H, K = f->nsf->bins, np = f->nsf->np;
    const double tail = f->nsf->tail;
    const size_t bm = w->bmax, dm = (size_t)f->nsf->din_max + 1, mm = (size_t)f->nsf->m3_max;
    float *E = w->E + (size_t)r0 * mm;
    /* forward, caching each layer's input, conditioner activations and outputs */
    for (int r = r0; r < r0 + n; r++) w->ldet[r] = 0;
    for (int l = 0; l < f->K; l++) {
        sf_nsf_layer v;
        sf_nsf_layer_of(f, f->params, l, &v);
        const float *u = w->u + ((size_t)l * bm + r0) * D;
        float *un = w->u + ((size_t)(l + 1) * bm + r0) * D;
        float *a = w->a + (size_t)l * bm * dm + (size_t)r0 * v.din;
        float *h1 = w->h1 + ((size_t)l * bm + r0) * H, *h2 = w->h2 + ((size_t)l * bm + r0) * H;
        float *out = w->out + (size_t)l * bm * mm + (size_t)r0 * v.m3;
        sf_nsf_gather(f, &v, n, u, w->xz + (size_t)r0 * C, a);
        sf_nsf_mlp(f, &v, n, a, v.din, v.din, v.b1, h1, h2, out);
        memcpy(un, u, (size_t)n * D * sizeof(float));
        sf_nsf_exp(out, E, (size_t)n * v.m3);
        sf_nsf_apply(f, &v, n, un, out, E, w->ldet + r0, 0);
    }
    /* backward: loss = -(1/B) sum log q */
    const float invB = 1.f / (float)B;
    const double gl = -1.0 / B;
    float *g = w->g0 + (size_t)r0 * D, *gn = w->g1 + (size_t)r0 * D;
    const float *zK = w->u + ((size_t)f->K * bm + r0) * D;
    for (int i = 0; i < n * D; i++) g[i] = zK[i] * invB;
    float *dout = w->dout + (size_t)r0 * mm, *dh1 = w->dh1 + (size_t)r0 * H, *dh2 = w->dh2 + (size_t)r0 * H;
    float *da = w->da + (size_t)r0 * dm;
    for (int l = f->K - 1; l >= 0; l--) {
        sf_nsf_layer v, dv;
        sf_nsf_layer_of(f, f->params, l, &v);
        sf_nsf_layer_of(f, grad, l, &dv);
        const float *u = w->u + ((size_t)l * bm + r0) * D;
        const float *a = w->a + (size_t)l * bm * dm + (size_t)r0 * v.din;
        const float *h1 = w->h1 + ((size_t)l * bm + r0) * H, *h2 = w->h2 + ((size_t)l * bm + r0) * H;
        const float *out = w->out + (size_t)l * bm * mm + (size_t)r0 * v.m3;
        /* 1. splines: d loss / d raw parameters, d loss / d u through the spline */
        sf_nsf_exp(out, E, (size_t)n * v.m3);
        for (int r = 0; r < n; r++) {
            memcpy(gn + (size_t)r * D, g + (size_t)r * D, (size_t)D * sizeof(float));
            for (int j = 0; j < v.n_tr; j++) {
                double raw[3 * SF_NSF_MAX_BINS], ex[3 * SF_NSF_MAX_BINS], graw[3 * SF_NSF_MAX_BINS], ld, gx;
                for (int i = 0; i < np; i++) {
                    raw[i] = out[(size_t)r * v.m3 + j * np + i];
                    ex[i] = E[(size_t)r * v.m3 + j * np + i];
                }
                const int d = v.tr[j];
                sf_rqs_forward_grad_ex(K, tail, raw, ex, u[(size_t)r * D + d], g[(size_t)r * D + d], gl, &ld, graw, &gx);
                for (int i = 0; i < np; i++) dout[(size_t)r * v.m3 + j * np + i] = (float)graw[i];
                gn[(size_t)r * D + d] = (float)gx;
            }
        }
        /* 2. output layer, then the two tanh layers */
        grad_dense(n, v.m3, H, dout, v.m3, h2, H, dv.w3, dv.b3, acc);
        sf_flow_sgemm(0, 0, n, H, v.m3, 1.f, dout, v.m3, v.w3, H, 0.f, dh2, H);
        for (size_t i = 0; i < (size_t)n * H; i++) dh2[i] *= 1.f - h2[i] * h2[i];
        grad_dense(n, H, H, dh2, H, h1, H, dv.w2, dv.b2, acc);
        sf_flow_sgemm(0, 0, n, H, H, 1.f, dh2, H, v.w2, H, 0.f, dh1, H);
        for (size_t i = 0; i < (size_t)n * H; i++) dh1[i] *= 1.f - h1[i] * h1[i];
        grad_dense(n, H, v.din, dh1, H, a, v.din, dv.w1, dv.b1, acc);
        /* 3. d loss / d identity dims through the conditioner */
        if (v.n_id > 0) {
            sf_flow_sgemm(0, 0, n, v.n_id, H, 1.f, dh1, H, v.w1, v.din, 0.f, da, v.n_id);
            for (int r = 0; r < n; r++)
                for (int i = 0; i < v.n_id; i++) gn[(size_t)r * D + v.id[i]] += da[(size_t)r * v.n_id + i];
        }
        float *t = g;
        g = gn;
        gn = t;
    }
}

sf_status sf_nsf_loss_grad(sf_flow *f, struct sf_nsf_ws *w, size_t Bz, const double *theta, const double *x,
                           double *loss, float *grad, double *logq_rows, int nthreads)
{
    sf_flow_blas_single();
    const int B = (int)Bz, D = f->D, C = f->C, P = pieces(Bz);
    const size_t np = f->n_params, H = (size_t)f->H, mm = (size_t)f->nsf->m3_max;
    const size_t acc_len = H > mm ? H : mm;
    for (int r = 0; r < B; r++)
        sf_flow_input_row(f, theta + (size_t)r * D, C ? x + (size_t)r * C : NULL, w->u + (size_t)r * D,
                          w->xz + (size_t)r * C);
    int nt = sf_nthreads(nthreads);
    if (nt > P) nt = P;
    /* a step of ~6 B n_params flops under ~25 MFLOP: a second thread's wake-up
     * and barrier cost more than it saves (perf: 85% libgomp spinning at
     * B = 100 and 11k parameters on the shared machine) */
    if ((double)Bz * (double)np < 4e6) nt = 1;
#pragma omp parallel num_threads(nt)
    {
#pragma omp for schedule(dynamic, 1)
        for (int p = 0; p < P; p++) {
            int r0 = (int)((long)B * p / P), r1 = (int)((long)B * (p + 1) / P);
            float *gp = p == 0 ? grad : w->gbuf + (size_t)(p - 1) * np;
            piece_pass(f, w, B, r0, r1 - r0, gp, w->acc + (size_t)p * acc_len);
        }
        if (P > 1) {
            int id = omp_get_thread_num(), n = omp_get_num_threads();
            size_t a = np * id / n, b = np * (id + 1) / n;
            for (int p = 1; p < P; p++) {
                const float *gp = w->gbuf + (size_t)(p - 1) * np;
                for (size_t i = a; i < b; i++) grad[i] += gp[i];
            }
        }
    }
    return sf_flow_batch_loss(f, B, theta, w->u + (size_t)f->K * w->bmax * D, w->ldet, loss, logq_rows);
}
