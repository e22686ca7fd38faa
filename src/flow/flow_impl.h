/*
 * flow/flow_impl.h — private layout of sf_flow (MAF) shared by the flow
 * sources: parameter views into the flat buffer, mask structure.
 */
#ifndef SEDFLOW_FLOW_IMPL_H
#define SEDFLOW_FLOW_IMPL_H

#include <stddef.h>

#include "core/threads.h"
#include "sedflow/flow.h"

#define SF_MAF_NBLOCKS 2
#define SF_MAF_NSUPER 3 /* super-runs per masked matrix in forward passes */
#define SF_MAF_BN_EPS 1e-3
#define SF_MAF_BN_MOMENTUM 0.1
#define SF_MAF_SCALE_EPS 1e-3f
#define SF_FLOW_HIST_COLS 5
#define SF_FLOW_LOG_2PI 1.83787706640934548356 /* log(2 pi) */

/* Named views of one MADE's parameters inside a flat buffer (llm.c style):
 * the same layout serves weights, gradients and Adam moments.  Weights are
 * row-major [out][in] (PyTorch nn.Linear). */
typedef struct {
    float *w_in;                 /* H x D (masked) */
    float *b_in;                 /* H */
    float *w_c;                  /* H x C (dense; absent when C = 0) */
    float *b_c;                  /* H */
    float *bn_g[SF_MAF_NBLOCKS]; /* H */
    float *bn_b[SF_MAF_NBLOCKS]; /* H */
    float *w_h[SF_MAF_NBLOCKS];  /* H x H (masked) */
    float *b_h[SF_MAF_NBLOCKS];  /* H */
    float *w_f;                  /* 2D x H (masked) */
    float *b_f;                  /* 2D */
} sf_maf_view;

/* A run of consecutive rows of a masked matrix that all see input columns
 * [0, p): rows [rs, re). */
typedef struct {
    int rs, re, p;
} sf_maf_run;

struct sf_flow {
    sf_flow_config cfg;
    int D, C, K, H;
    size_t n_params, n_layer; /* total, per MADE */
    float *params;
    float *bn_run; /* K x NBLOCKS x (mean H, var H) (NSF: a dummy float) */
    size_t n_bn;   /* floats in bn_run that are state (MAF K*NBLOCKS*2H, NSF 0) */
    struct sf_nsf *nsf; /* NSF family: its layout (src/flow/nsf.h); NULL for MAF */
    int *perm;     /* K x D */
    double *theta_mean, *theta_std, *x_mean, *x_std;
    double *lower, *upper;
    double log_std_sum; /* sum_d log theta_std_d */
    double log_box_sum; /* sum_d log(upper_d - lower_d) (the logit map's constant) */
    /* mask structure */
    int *hdeg;          /* H: hidden degree, nondecreasing */
    int *cnt_le;        /* D+1: cnt_le[g] = number of hidden units of degree <= g */
    int n_run_in, n_run_h, n_run_f;
    sf_maf_run *run_in, *run_h, *run_f; /* input layer (cols D), hidden (H), output (H) */
    /* "super-runs": a few consecutive runs merged (prefix = the largest), so the
     * forward products are 2-3 larger sgemms instead of D-1 thin ones; the
     * extra columns multiply weights that are exactly 0 (masked, enforced by
     * sf_flow_prepare).  Same row boundaries for the input and hidden layers. */
    int n_srun;
    sf_maf_run *srun_in, *srun_h;
    int *hgrp;          /* n_hgrp+1 boundaries of hidden degree groups */
    int n_hgrp;
    /* evaluation weights (BN folded): K x NBLOCKS x (H x H), K x NBLOCKS x H */
    float *ev_w, *ev_b;
    int prepared;
    /* names and training history */
    char theta_names[SF_FLOW_NAME_LEN], theta_units[SF_FLOW_NAME_LEN];
    char x_names[SF_FLOW_NAME_LEN], x_units[SF_FLOW_NAME_LEN];
    double *hist; /* n_hist x SF_FLOW_HIST_COLS */
    size_t n_hist, cap_hist;
    /* training metadata (for the file) */
    long long meta_n_train, meta_n_val, meta_batch, meta_best_epoch;
    double meta_lr, meta_best_val, meta_seconds;
    char meta_stop[64];
};

/* Views of MADE k in buffer `base` (params, grads, Adam moments). */
void sf_maf_view_of(const sf_flow *f, float *base, int k, sf_maf_view *v);

/* The box map of cfg.theta_map (flow.h) for one row of D values, in double
 * (maf.c).  Forward: th -> v, returns log |dv/dth| (0 for the identity;
 * -inf when th lies outside the closed box, v then clamped to the box
 * surface; NaN passes through).  Inverse: v -> th (inside the closed box),
 * returns the same log |dv/dth| at that point. */
double sf_flow_theta_to_v(const sf_flow *f, const double *th, double *v);
double sf_flow_v_to_theta(const sf_flow *f, const double *v, double *th);

/* The first parameter d whose prior box [lower[d], upper[d]] is empty or
 * NaN, or (need_finite: the logit map) not finite, with the reason in *why;
 * -1 when every box is usable (maf.c). */
int sf_flow_box_bad(int D, const double *lower, const double *upper, int need_finite, const char **why);

/* One row of flow input: u (D) = z-scored box-mapped theta, xz (C) =
 * z-scored x (untouched when C = 0); returns the box map's log |dv/dth|,
 * which log q adds.  Used by every log q, training and BN pass. */
static inline double sf_flow_input_row(const sf_flow *f, const double *th, const double *x, float *u, float *xz)
{
    double v[1024], lj = 0; /* D <= 1000 (sf_flow_alloc) */
    const double *src = th;
    if (f->cfg.theta_map != SF_FLOW_THETA_IDENTITY) {
        lj = sf_flow_theta_to_v(f, th, v);
        src = v;
    }
    for (int d = 0; d < f->D; d++) u[d] = (float)((src[d] - f->theta_mean[d]) / f->theta_std[d]);
    for (int c = 0; c < f->C; c++) xz[c] = (float)((x[c] - f->x_mean[c]) / f->x_std[c]);
    return lj;
}

/* The box map's log |dv/dth| of one theta row (0 for the identity map). */
static inline double sf_flow_box_ljac(const sf_flow *f, const double *th)
{
    double v[1024];
    return f->cfg.theta_map == SF_FLOW_THETA_IDENTITY ? 0 : sf_flow_theta_to_v(f, th, v);
}

/* Set OpenBLAS to one thread (the flow code parallelises with OpenMP). */
void sf_flow_blas_single(void);

/* Append a history row (grows the array). */
sf_status sf_flow_hist_push(sf_flow *f, const double row[SF_FLOW_HIST_COLS]);

/* Row-major BLAS through OpenBLAS's Fortran symbols (flow_blas.c):
 * C (M x N) = alpha op(A) op(B) + beta C, op = transpose when trans != 0;
 * y (M) = alpha A x + beta y for A M x N. */
void sf_flow_sgemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                   int ldb, float beta, float *C, int ldc);
void sf_flow_sgemv(int M, int N, float alpha, const float *A, int lda, const float *x, int incx, float beta, float *y,
                   int incy);

/* Y[:, a:b] = X[:, 0:p] W[a:b, 0:p]^T + bias[a:b] for B rows (one sgemm). */
void sf_maf_lin_rows(int B, int a, int b, int p, const float *X, int ldx, const float *W, int ldw,
                     const float *bias, float *Y, int ldy);

/* ---- packed-panel micro-kernel of the training products (maf_gemm.c) ---- */

#define SF_GEMM_MR 6  /* rows of a micro-tile: width of an A panel */
#define SF_GEMM_NR 16 /* columns of a micro-tile: width of a B panel */

/* Pack r <= w rows (trans = 0: P[k*w + i] = S[i*lds + k]) or columns
 * (trans = 1: P[k*w + i] = S[k*lds + i]) of S, k in [0, K), into a panel of
 * width w; lanes r..w-1 are zero. */
void sf_gemm_pack(int w, int r, int K, const float *S, int lds, int trans, float *P);

/* One micro-tile: C[i*ldc + j] = sum_{k<K} A[i*ai + k*ak] B[k*ldb + j]
 * (+ bias[j] when bias != NULL) for i < mr, j < nr and, when ncol != NULL,
 * j < ncol[i]; nothing else of C is written.  A: mr rows (ai = lda, ak = 1)
 * or columns (ai = 1, ak = lda) of a row-major matrix, or a packed panel
 * (1, MR); ai == 1 or ak == 1.  B: 16 readable floats per k (a panel from
 * sf_gemm_pack, ldb = NR, or rows of a matrix with slack past its end).
 * Each element is one chain of multiply-adds in k order, whatever the tile
 * it falls in: the bytes do not depend on how a product is tiled. */
void sf_gemm_tile(int K, const float *A, long ai, long ak, const float *B, int ldb, float *C, int ldc, int mr, int nr,
                  const float *bias, const int *ncol);

/* tanh in float by a [13/6] rational minimax approximation (the constants
 * of Eigen's ptanh_float), clamped at |x| = 7.9988 where tanh rounds to +-1:
 * max abs error ~1e-7 on all floats, branch-free so loops vectorise.
 * glibc's tanhf (via expm1f) was 55% of the flow's run time. */
static inline float sf_tanhf(float x)
{
    const float c = 7.99881172180175781f;
    x = x < c ? x : c; /* minss / maxss: vectorises */
    x = x > -c ? x : -c;
    const float x2 = x * x;
    float p = x2 * -2.76076847742355e-16f + 2.00018790482477e-13f;
    p = p * x2 + -8.60467152213735e-11f;
    p = p * x2 + 5.12229709037114e-08f;
    p = p * x2 + 1.48572235717979e-05f;
    p = p * x2 + 6.37261928875436e-04f;
    p = p * x2 + 4.89352455891786e-03f;
    p = p * x;
    float q = x2 * 1.19825839466702e-06f + 1.18534705686654e-04f;
    q = q * x2 + 2.26843463243900e-03f;
    q = q * x2 + 4.89352518554385e-03f;
    return p / q;
}

/* y[i] = tanh(y[i] + add[i]) (add may be NULL), vectorised (flow_tanh.c);
 * the same values as sf_tanhf element by element. */
void sf_flow_tanh(float *y, const float *add, size_t n);

/* softplus in float, stable. */
static inline float sf_softplusf(float s)
{
    return s > 20.f ? s : (s < -20.f ? __builtin_expf(s) : __builtin_log1pf(__builtin_expf(s)));
}

/* ---- sampling (flow_sample.c: the driver behind sf_flow_sample) ------- */

#define SF_FLOW_CHUNK 240 /* rows per inverse call: fixed, so results do not depend on threads */

/* What a flow family supplies to the shared sampling driver.  The driver
 * owns rounds, rejection, budget, rng streams and threads; the family
 * transforms base draws.  All callbacks are read-only on f. */
typedef struct {
    /* floats of per-galaxy data written by `galaxy` and read by `inverse` */
    size_t (*galaxy_floats)(const sf_flow *f);
    /* Per-galaxy precomputation from the raw context x (C values; NULL when
     * C = 0), e.g. the context's term of the first layer. */
    void (*galaxy)(const sf_flow *f, const double *x, float *gdata);
    /* Per-thread workspace for `inverse` (NULL when out of memory). */
    void *(*ws_alloc)(const sf_flow *f);
    void (*ws_free)(void *ws);
    /* Inverse of n <= SF_FLOW_CHUNK rows: z (n x D base draws) -> u (n x D,
     * z-scored theta) and ldet (n): the forward log |det du->z| of each row
     * when want_ldet, otherwise (the caller needs no log q) any value that
     * is finite exactly when that log-det is (MAF: 0 or NaN), at less cost.
     * u must not depend on want_ldet. */
    void (*inverse)(const sf_flow *f, void *ws, const float *gdata, int n, const float *z, float *u, double *ldet,
                    int want_ldet);
} sf_flow_sampler;

/* What a flow family supplies to the shared log q driver (flow_eval.c):
 * an evaluation-mode forward pass of n <= SF_FLOW_CHUNK rows, u (n x D:
 * z-scored, box-mapped theta) replaced in place by the base variable z,
 * xz (n x C) the z-scored context, ldet (n) = each row's summed log |det|.
 * Read-only on f; one workspace per thread. */
typedef struct {
    void *(*ws_alloc)(const sf_flow *f);
    void (*ws_free)(void *ws);
    void (*forward)(const sf_flow *f, void *ws, int n, float *u, const float *xz, double *ldet);
} sf_flow_evaluator;

extern const sf_flow_evaluator sf_maf_evaluator; /* maf_sample.c */
extern const sf_flow_evaluator sf_nsf_evaluator; /* nsf_eval.c */

/* log q of one row from its base variable z (D floats) and the sum of its
 * log-dets (the flow's and the box map's): log N(z; 0, I) - sum_d log
 * theta_std_d + ldet.  Every log q (evaluation, training, sampling) ends here. */
static inline double sf_flow_row_logq(const sf_flow *f, const float *z, double ldet)
{
    double s = 0;
    for (int d = 0; d < f->D; d++) s += (double)z[d] * z[d];
    return -0.5 * f->D * SF_FLOW_LOG_2PI - f->log_std_sum - 0.5 * s + ldet;
}

/* The training loss of a batch (flow_eval.c): logq_rows[r] (may be NULL) =
 * sf_flow_row_logq(z row r, ldet[r] + the box map's log-Jacobian of theta
 * row r), *loss (may be NULL) = -mean.  z: B x D base variables, theta:
 * B x D.  Errors: SF_ENOCONV when a log q is not finite. */
sf_status sf_flow_batch_loss(const sf_flow *f, int B, const double *theta, const float *z, const double *ldet,
                             double *loss, double *logq_rows);

/* sf_flow_logq plus each row's base variable: z (n x D floats, may be NULL)
 * = the forward transform of theta (z-scoring included), the point whose
 * N(0, I) density enters log q (flow_eval.c; tests check sampling against it). */
sf_status sf_flow_logq_base(const sf_flow *f, size_t n, const double *theta, const double *x, double *logq,
                            float *z, int nthreads);

extern const sf_flow_sampler sf_maf_sampler; /* maf_sample.c */
extern const sf_flow_sampler sf_nsf_sampler; /* nsf_eval.c */

/* Random helpers (flow_rand.c): standard normal floats, in-place shuffles. */
#include <gsl/gsl_rng.h>
void sf_flow_gauss_fill(gsl_rng *r, float *z, size_t n);
void sf_flow_shuffle(gsl_rng *r, size_t *a, size_t n);
void sf_flow_shuffle_int(gsl_rng *r, int *a, size_t n);

/* HDF5 pieces used by the trainer's checkpoints (flow_io.c). */
#include <hdf5.h>
sf_status sf_flow_write_h5(const sf_flow *f, hid_t file);
sf_status sf_flow_read_h5(hid_t file, const char *path, sf_flow **out);

#endif
