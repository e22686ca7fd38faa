/*
 * sedflow/flow.h — conditional normalizing flows q(theta | x): a Masked
 * Autoregressive Flow (MAF; Papamakarios et al. 2017) built from MADEs
 * (Germain et al. 2015), exactly the architecture SEDflow used through
 * sbi + nflows (Hahn & Melchior 2022, sect. 2.1 and 3.3; issue 4 part 1),
 * and a second family behind the same functions, a conditional
 * rational-quadratic neural spline flow with coupling layers (SF_FLOW_NSF,
 * Durkan et al. 2019; issue 4 part 2; see sf_flow_family below).
 * Architecture, file format and measured speed: docs/FLOW.md.
 *
 *   v = theta, or with the logit box map (SF_FLOW_THETA_LOGIT, below)
 *   v_d = logit((theta_d - lower_d) / (upper_d - lower_d))
 *   u0 = (v - theta_mean) / theta_std                z-scoring (part of q)
 *   xz = (x - x_mean) / x_std                         z-scored context
 *   for k = 0..K-1:  z_k = perm_k( affine_k(u_k; MADE_k(u_k, xz)) ),  u_{k+1} = z_k
 *   log q(theta|x) = log N(u_K; 0, I) + sum_k sum_d log scale_kd - sum_d log theta_std_d
 *                    + log |dv/dtheta|
 *
 * MADE_k (D inputs, C context, H hidden units, tanh):
 *   h0 = tanh(masked(W_in) u + b_in + tanh(W_c xz + b_c))
 *   h_j = tanh(masked(W_j) BN_j(h_{j-1}) + b_j),   j = 1, 2
 *   out = masked(W_f) h2 + b_f = (s_d, t_d) interleaved: out[2d] = s_d, out[2d+1] = t_d
 *   affine: z_d = (softplus(s_d) + 1e-3) u_d + t_d
 * BN = batch norm (eps 1e-3, momentum 0.1): batch statistics (biased variance)
 * in training, running averages in evaluation.  Input degrees 1..D, hidden
 * units sorted by degree (degrees cycling 1..D-1, as nflows), output d sees
 * inputs < d: every masked matrix is block lower-triangular and the code
 * only multiplies the unmasked blocks.  Permutation: out[i] = in[perm[i]].
 *
 * Numbers: theta and x are double at the interface; the network runs in float
 * (CBLAS sgemm).  Arrays are row-major: theta n x D, x n x C (one row per
 * sample).  Threads: OpenMP with `nthreads` (<= 0: omp_get_max_threads());
 * the flow module sets OpenBLAS to one thread (it parallelises itself).
 */
#ifndef SEDFLOW_FLOW_H
#define SEDFLOW_FLOW_H

#include <stddef.h>
#include <stdint.h>

#include "sedflow/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Model file format version written by sf_flow_save (2: adds arch/theta_map).
 * sf_flow_load reads version 2 and version 1 (whose flows are all
 * theta_map identity) and refuses any other with SF_EFORMAT. */
#define SF_FLOW_FORMAT_VERSION 2
#define SF_FLOW_NAME_LEN 512

/* SF_FLOW_MAF: masked autoregressive flow (above).  SF_FLOW_NSF: conditional
 * rational-quadratic neural spline flow with coupling layers (Durkan et al.
 * 2019; src/flow/nsf.h, docs/FLOW.md "NSF"): K coupling layers, each
 * transforming about half of the z-scored dimensions by monotonic RQ splines
 * (`bins` bins on [-tail_bound, tail_bound], identity outside) whose
 * parameters come from a 2-hidden-layer tanh MLP (H units) of the other
 * dimensions and the z-scored context; the transformed halves alternate so
 * every pair of layers transforms every dimension once.  Same interface:
 * log q, sampling (one closed-form inverse per layer), training, files. */
typedef enum { SF_FLOW_MAF = 1, SF_FLOW_NSF = 2 } sf_flow_family;

/* How theta enters the flow.  SF_FLOW_THETA_IDENTITY: theta itself (SEDflow;
 * q has mass outside the prior box, which sf_flow_sample rejects: the
 * "leakage").  SF_FLOW_THETA_LOGIT: each theta_d is mapped from the prior
 * box (lower_d, upper_d) to the real line, v_d = log(p / (1 - p)),
 * p = (theta_d - lower_d) / (upper_d - lower_d), before the z-scoring, and
 * log q includes the Jacobian log |dv/dtheta| = -sum_d [log(upper_d -
 * lower_d) + log p + log(1 - p)].  q is then a density on the box only: no
 * draw leaves it (no leakage, no rejection), log q = -inf outside the closed
 * box, and an uninformed uniform marginal becomes a logistic one that an
 * affine flow can represent (an affine MAF fits a uniform by a truncated
 * Gaussian, which under-covers).  Points on the box surface are evaluated
 * at p = 1e-9 (or 1 - 1e-9).  Needs a finite box with upper > lower,
 * set with sf_flow_set_prior before sf_flow_set_zscore (the trainer does
 * both).  docs/FLOW.md "Box map". */
typedef enum { SF_FLOW_THETA_IDENTITY = 0, SF_FLOW_THETA_LOGIT = 1 } sf_flow_theta_map;

typedef struct {
    sf_flow_family family; /* SF_FLOW_MAF or SF_FLOW_NSF */
    int D;                 /* theta dimension (>= 1) */
    int C;                 /* context dimension (>= 0; 0 = unconditional) */
    int K;                 /* number of transforms (MAF: MADE + permutation; NSF: coupling layers) (>= 1) */
    int H;                 /* hidden units per MADE / conditioner layer (>= 1) */
    uint64_t seed;         /* initial weights and permutations */
    sf_flow_theta_map theta_map; /* SF_FLOW_THETA_IDENTITY (0, the default) or SF_FLOW_THETA_LOGIT */
} sf_flow_config;

/* Hyper-parameters of the NSF family (sf_flow_alloc_nsf). */
typedef struct {
    int bins;          /* spline bins per dimension (0 = default 8; at most 64) */
    double tail_bound; /* spline interval [-B, B] in z-scored theta units (0 = default 3);
                        * identity outside */
} sf_flow_nsf_config;

typedef struct sf_flow sf_flow;

/* Number of trainable parameters of a configuration (weights incl. masked
 * entries that are structurally zero are NOT counted twice: this is the
 * PyTorch count, i.e. every entry of every weight matrix, bias, BN gamma and
 * beta).  K=15, H=500, D=11, C=11 gives 7,890,330 (SEDflow).  NSF: with
 * the default hyper-parameters (sf_flow_param_count_nsf). */
size_t sf_flow_param_count(const sf_flow_config *cfg);

/* Allocate a flow with PyTorch-default initialisation (uniform
 * +-1/sqrt(fan_in)), BN gamma 1 beta 0, running mean 0 var 1, identity
 * z-scoring, prior box (-inf, inf), random permutations from cfg->seed.
 * Errors: SF_EINVAL (bad sizes), SF_ENOMEM. */
sf_status sf_flow_alloc(const sf_flow_config *cfg, sf_flow **out);
void sf_flow_free(sf_flow *f);

/* NSF family with explicit hyper-parameters (cfg->family must be
 * SF_FLOW_NSF; nc NULL = defaults; sf_flow_alloc uses the defaults).
 * Initialisation: conditioner layers PyTorch default, output layer scaled
 * by 0.1 (near-identity splines).  Errors: SF_EINVAL, SF_ENOMEM. */
sf_status sf_flow_alloc_nsf(const sf_flow_config *cfg, const sf_flow_nsf_config *nc, sf_flow **out);
/* Parameter count of an NSF configuration (0 if invalid). */
size_t sf_flow_param_count_nsf(const sf_flow_config *cfg, const sf_flow_nsf_config *nc);
/* The NSF hyper-parameters of f with defaults resolved (zeros for a MAF). */
void sf_flow_get_nsf_config(const sf_flow *f, sf_flow_nsf_config *nc);

/* Configuration and parameter count of a flow. */
const sf_flow_config *sf_flow_get_config(const sf_flow *f);
size_t sf_flow_n_params(const sf_flow *f);
/* All trainable weights, one contiguous float buffer of sf_flow_n_params()
 * (layout: docs/FLOW.md).  Writing to it requires sf_flow_prepare() before
 * the next sf_flow_logq / sf_flow_sample. */
float *sf_flow_params(sf_flow *f);
/* BatchNorm running statistics, K * 2 * 2 * H floats: [k][block][mean H, var H]
 * (MAF; an NSF has none: a dummy of 1 float). */
float *sf_flow_bn_running(sf_flow *f);

/* Set the z-score statistics from n training rows (theta n x D, x n x C):
 * means and standard deviations (population) of x and of theta, or, with
 * the logit box map, of v = logit-mapped theta; a column whose standard
 * deviation is 0 or not finite gets std 1 (so no NaN).  x may be NULL when
 * C = 0.  Errors: SF_EINVAL (non-finite columns; logit map without a finite
 * prior box, or a theta outside it). */
sf_status sf_flow_set_zscore(sf_flow *f, size_t n, const double *theta, const double *x);
/* Read / write the statistics directly (arrays of D, D, C, C; NULL = skip). */
void sf_flow_get_zscore(const sf_flow *f, double *theta_mean, double *theta_std, double *x_mean, double *x_std);
sf_status sf_flow_put_zscore(sf_flow *f, const double *theta_mean, const double *theta_std,
                             const double *x_mean, const double *x_std);

/* Prior box in theta units (D each; used by sf_flow_sample when the caller
 * passes none, and stored in the model file). */
void sf_flow_set_prior(sf_flow *f, const double *lower, const double *upper);
void sf_flow_get_prior(const sf_flow *f, double *lower, double *upper);

/* Names and units, comma-separated ("logmstar,beta1,..."; units "dex,,...").
 * Any pointer may be NULL (left unchanged).  Truncated at SF_FLOW_NAME_LEN. */
void sf_flow_set_names(sf_flow *f, const char *theta_names, const char *theta_units,
                       const char *x_names, const char *x_units);
const char *sf_flow_theta_names(const sf_flow *f);
const char *sf_flow_x_names(const sf_flow *f);
/* theta's units, comma-separated as the names ("" when the model has none). */
const char *sf_flow_theta_units(const sf_flow *f);

/* Fold the BN running statistics into the evaluation weights (MAF; an NSF
 * has nothing to fold and only becomes prepared).  Must be called after the
 * weights or running statistics change (sf_flow_load and the trainer do
 * it).  No allocation. */
void sf_flow_prepare(sf_flow *f);

/* log q(theta_i | x_i) in nats, theta's own units, evaluation mode (running
 * BN statistics).  theta n x D, x n x C (NULL if C = 0), logq n.
 * Read-only on f (many threads may call it).  Errors: SF_EINVAL (not
 * prepared), SF_ENOMEM. */
sf_status sf_flow_logq(const sf_flow *f, size_t n, const double *theta, const double *x,
                       double *logq, int nthreads);

/* Draw n samples of theta ~ q(. | x_g) for each of G conditions x (G x C),
 * by the fast MAF inverse (each hidden unit computed once) or, for an NSF,
 * one closed-form spline inverse per coupling layer.  Draws for
 * galaxy g come from rng stream g of `seed` (sf_rng_set_stream), so the
 * result does not depend on nthreads.  Draws outside the box
 * [lower, upper] (D each; both NULL = the flow's prior box) are rejected
 * and redrawn, with at most max_proposals proposals per galaxy (0: 100 n);
 * a flow with the logit box map never leaves its own box, so only a
 * narrower caller box rejects.
 *   samples   G x n x D: accepted draws first; rows never filled are NaN
 *   logq      G x n (may be NULL): log q of each returned sample (NaN if none)
 *   n_acc     G (may be NULL): accepted count (n unless the budget ran out)
 *   acc_frac  G (may be NULL): accepted / proposed (the leakage diagnostic)
 * Errors: SF_EINVAL (also G n D too large to address), SF_ENOMEM. */
sf_status sf_flow_sample(const sf_flow *f, size_t G, const double *x, size_t n, uint64_t seed,
                         const double *lower, const double *upper, size_t max_proposals,
                         double *samples, double *logq, size_t *n_acc, double *acc_frac,
                         int nthreads);

/* ---- training-mode log q and its gradient ---------------------------- */

typedef struct sf_flow_train_ws sf_flow_train_ws;

/* Workspace for batches of up to batch_max rows (activations cache). */
sf_status sf_flow_train_ws_alloc(const sf_flow *f, size_t batch_max, sf_flow_train_ws **out);
void sf_flow_train_ws_free(sf_flow_train_ws *ws);

/* Training-mode forward + backward on a batch of B rows (MAF: BN with batch
 * statistics; NSF: no BN, update_running ignored, gradients bit-identical
 * for any nthreads): loss = -(1/B) sum_i log q(theta_i | x_i) and grad = d loss /
 * d params (n_params floats, same layout as sf_flow_params; masked weights
 * get 0).  logq_rows (B, may be NULL) gets each row's log q.  When
 * update_running is set, the BN running statistics are updated (momentum
 * 0.1, unbiased variance) and the flow becomes unprepared.  B >= 2. */
sf_status sf_flow_loss_grad(sf_flow *f, sf_flow_train_ws *ws, size_t B, const double *theta,
                            const double *x, int update_running, double *loss, float *grad,
                            double *logq_rows, int nthreads);

/* ---- precise batch norm ----------------------------------------------- */

/* "Precise BN" (Wu & Johnson 2021 sect. 3; Ioffe & Szegedy 2015 sect. 3.1):
 * set every BN layer's running mean and variance of a MAF to the population
 * statistics of its input over the n rows theta (n x D, theta's own units)
 * and x (n x C; NULL when C = 0), replacing the training's moving averages
 * (momentum 0.1: the last ~10-20 minibatches).  Layers are processed in
 * network order (MADE 0 block 0, block 1, MADE 1, ...), each one's input
 * computed in evaluation mode with all earlier layers already using their
 * new statistics.  Mean over the n rows; variance unbiased, sum / (n - 1),
 * the convention of the training's running_var (PyTorch/nflows).  Then
 * folds the statistics for evaluation (prepared on return).  Deterministic:
 * fixed chunks, double sums reduced in a fixed order, the same bits for any
 * nthreads.  Memory: n x (H + D + C) floats (n = 300,000, H = 128: 180 MB).
 * An NSF has no BN: SF_OK, nothing changed.  Errors (f unchanged): SF_EINVAL
 * (n < 2, NULL theta/x, statistics not finite), SF_ENOMEM.  Source:
 * src/flow/flow_bn.c; docs/FLOW.md "Precise BN". */
sf_status sf_flow_bn_recompute(sf_flow *f, size_t n, const double *theta, const double *x, int nthreads);

/* ---- model files ------------------------------------------------------ */

/* Write everything inference needs (docs/FLOW.md "File format") to `path`
 * (via path.tmp + rename).  Errors: SF_EIO. */
sf_status sf_flow_save(const sf_flow *f, const char *path);
/* Load a model file (prepared on return).  Errors: SF_EIO, SF_EFORMAT
 * (not a sedflow model, another format_version, or a training checkpoint
 * PATH.ckpt, whose weights are the last epoch's; a non-finite weight, a
 * negative or non-finite BN running variance, an empty or NaN prior box, or
 * an infinite one with the logit map), SF_ENOMEM.  Control characters in
 * the names and units read as spaces. */
sf_status sf_flow_load(const char *path, sf_flow **out);

/* ---- training data and trainer --------------------------------------- */

/* A training set: theta n x D (sampling-space parameters, file dataset
 * `theta_u`), x n x C (features, dataset `x`), prior box /prior/lower,
 * /prior/upper (D each).  Optional string attributes `names` (else
 * `column_names`, as sedflow simulate writes them), `units` on
 * both datasets. */
typedef struct {
    size_t n;
    int D, C;
    double *theta, *x;
    double *lower, *upper;
    char theta_names[SF_FLOW_NAME_LEN], theta_units[SF_FLOW_NAME_LEN];
    char x_names[SF_FLOW_NAME_LEN], x_units[SF_FLOW_NAME_LEN];
} sf_flow_data;

/* Errors: SF_EIO, SF_EFORMAT (missing dataset, shape mismatch, NaN). */
sf_status sf_flow_data_load(const char *path, sf_flow_data **out);
void sf_flow_data_free(sf_flow_data *d);

/* Gather rows idx[0..n) of d: theta n x D into theta, x n x C into x
 * (x untouched when C = 0).  No checks: idx entries must be < d->n. */
void sf_flow_data_rows(const sf_flow_data *d, const size_t *idx, size_t n, double *theta, double *x);

typedef struct {
    size_t batch;      /* minibatch rows (paper: 50) */
    double lr;         /* Adam learning rate at the start (5e-4) */
    double lr_decay;   /* learning rate on a plateau (0 = off: constant lr, as SEDflow/sbi): after
                        * lr_patience epochs in a row without a validation improvement, lr *=
                        * lr_decay (0 < lr_decay < 1), never below lr_min, and the count restarts.
                        * Independent of the early-stopping count (patience) */
    int lr_patience;   /* (5) */
    double lr_min;     /* (1e-5; > 0 when lr_decay > 0) */
    double val_frac;   /* validation fraction (0.1) */
    int patience;      /* epochs without validation improvement before stopping (20) */
    double clip_norm;  /* global gradient-norm clip (5) */
    uint64_t seed;     /* split and epoch shuffles */
    int nthreads;
    size_t precise_bn_rows; /* MAF: precise BN at every epoch end (0 = off, as SEDflow/nflows; else >= 2):
                             * before the validation log q, sf_flow_bn_recompute over the first
                             * min(precise_bn_rows, n_train) rows of the seeded training split
                             * (never validation rows), so validation, best-epoch choice, early
                             * stopping and the best weights use exact BN statistics; the next
                             * epoch's moving averages start from them.  NSF: ignored */
} sf_flow_train_config;

/* Defaults above (batch 50, lr 5e-4, lr_decay 0 (off), lr_patience 5,
 * lr_min 1e-5, 0.1, 20, 5, seed 1, nthreads 0, precise_bn_rows 0). */
void sf_flow_train_config_default(sf_flow_train_config *c);

typedef struct {
    long epoch;            /* 1-based */
    double train_logq;     /* mean training-mode log q over the epoch's batches */
    double val_logq;       /* mean evaluation-mode log q on the validation split */
    double seconds;        /* epoch wall time */
    double samples_per_s;  /* training rows / second */
    int improved;          /* validation improved: best weights updated */
    int partial;           /* epoch ended early (deadline) */
    double lr;             /* learning rate of the epoch's steps */
    int lr_decayed;        /* the plateau rule lowered the rate after this epoch (sf_flow_trainer_lr) */
} sf_flow_epoch_stats;

typedef struct sf_flow_trainer sf_flow_trainer;

/* The trainer's split of n rows (cfg->seed, cfg->val_frac): idx (n) gets a
 * seeded permutation of 0..n-1 whose first *n_train entries are the
 * training rows (in random order) and the rest, floor(val_frac n), the
 * validation rows.  n_train may be NULL.  Errors: SF_EINVAL (no split),
 * SF_ENOMEM. */
sf_status sf_flow_train_split(size_t n, const sf_flow_train_config *cfg, size_t *idx, size_t *n_train);

/* Prepare training of f on d: 90/10 split (random, from cfg->seed), z-score
 * statistics from the training split, prior box and names from d, Adam
 * state, and (MAF, cfg->precise_bn_rows > 0) a copy of the precise-BN rows
 * (min(precise_bn_rows, n_train) x (D + C) doubles).  f must match d (D, C)
 * and outlive the trainer.  Errors: SF_EINVAL (bad configuration, e.g.
 * precise_bn_rows = 1), SF_ENOMEM. */
sf_status sf_flow_trainer_alloc(sf_flow *f, const sf_flow_data *d, const sf_flow_train_config *cfg,
                                sf_flow_trainer **out);
void sf_flow_trainer_free(sf_flow_trainer *t);

/* One minibatch step (shuffled order per epoch, from stream (seed, epoch)):
 * forward, backward, clip, Adam.  *more = 0 when the epoch's batches are done. */
sf_status sf_flow_trainer_step(sf_flow_trainer *t, int *more);
/* Close the epoch (also after an early break): precise BN when
 * cfg->precise_bn_rows (MAF), validation log q, best-weight bookkeeping
 * (weights and BN statistics), history.  *stop = 1 when patience is
 * exhausted.  Errors: those of sf_flow_logq and sf_flow_bn_recompute (the
 * epoch is then not counted). */
sf_status sf_flow_trainer_epoch_end(sf_flow_trainer *t, sf_flow_epoch_stats *st, int *stop);
/* Epochs completed so far. */
long sf_flow_trainer_epochs(const sf_flow_trainer *t);
/* The learning rate of the next steps: cfg->lr, lowered by the plateau rule
 * (cfg->lr_decay), restored by sf_flow_trainer_resume, or set. */
double sf_flow_trainer_lr(const sf_flow_trainer *t);
/* Set the learning rate of the next steps (e.g. a new rate on --resume);
 * the plateau rule continues from it.  Errors: SF_EINVAL unless 0 < lr < inf. */
sf_status sf_flow_trainer_set_lr(sf_flow_trainer *t, double lr);
/* Write a checkpoint (model + optimiser state) that sf_flow_trainer_resume reads. */
sf_status sf_flow_trainer_checkpoint(const sf_flow_trainer *t, const char *path);
/* Restore weights, running stats, Adam state, history, counters and the
 * learning rate (checkpoints from before the plateau rule: cfg->lr) from a
 * checkpoint written for the same data size and configuration.  Errors:
 * SF_EIO, SF_EFORMAT (another family, architecture, theta map, row count or
 * seed; and, for checkpoints that record them (since 2026-12-01), another
 * validation split or other data values: a 64-bit hash of theta and x). */
sf_status sf_flow_trainer_resume(sf_flow_trainer *t, const char *path);
/* Record why training stopped ("max_epochs", "max_minutes", ...; stored in
 * the model file's /training attribute `stop`). */
void sf_flow_trainer_set_stop(sf_flow_trainer *t, const char *reason);
/* Put the best-validation weights into f (prepared), ready for sf_flow_save. */
void sf_flow_trainer_finish(sf_flow_trainer *t);

/* Training history stored in the flow (and the model file): rows of
 * (epoch, train_logq, val_logq, seconds, samples_per_s); returns row count. */
size_t sf_flow_history(const sf_flow *f, const double **rows);

#ifdef __cplusplus
}
#endif
#endif
