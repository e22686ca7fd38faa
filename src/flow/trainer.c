/*
 * Flow training as step functions (the CLI drives them): 90/10 split,
 * shuffled minibatches, Adam (PyTorch semantics), global gradient-norm
 * clipping, early stopping on the validation log q with the best weights
 * kept, optionally a lower learning rate on a validation plateau,
 * checkpoints with the optimiser state.  As sbi's `train()` loop
 * (Hahn & Melchior 2022 sect. 3.3).  Optionally (precise_bn_rows) the
 * MAF's BN statistics are recomputed exactly over fixed training rows at
 * every epoch end, before validation (docs/FLOW.md "Precise BN").
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <omp.h>

#include "flow/flow_impl.h"
#include "io/h5util.h"
#include "sedflow/rng.h"

#define ADAM_B1 0.9
#define ADAM_B2 0.999
#define ADAM_EPS 1e-8
#define SHUFFLE_STREAM 0x100000000ULL

struct sf_flow_trainer {
    sf_flow *f;
    const sf_flow_data *d;
    sf_flow_train_config cfg;
    size_t n_train, n_val;
    size_t *idx;   /* n: training indices then validation indices */
    size_t *order; /* n_train: this epoch's order */
    size_t pos;
    int in_epoch;
    long epoch; /* completed epochs */
    long long step;
    float *grad, *m, *v, *best, *best_bn;
    double best_val;
    long best_epoch;
    int since;
    double lr;       /* learning rate of the next steps */
    int since_decay; /* epochs without improvement since the last decay (plateau rule) */
    sf_flow_train_ws *ws;
    double *bth, *bx;         /* batch buffers */
    double *vth, *vx, *vlq;   /* validation set */
    size_t n_pbn;             /* precise-BN rows (0: off, or an NSF) */
    double *pth, *px;         /* the first n_pbn training rows (theta, x) */
    double ep_sum, t0, seconds;
    size_t ep_rows;
    gsl_rng *rng;
    uint64_t data_hash; /* of the training set's values (checkpoints: resume on the same data) */
};

/* FNV-1a over 64-bit words: the bytes of theta (n x D) then x (n x C). */
static uint64_t data_hash(const sf_flow_data *d)
{
    uint64_t h = 0xcbf29ce484222325ULL, w;
    const double *a[2] = {d->theta, d->x};
    const size_t len[2] = {d->n * (size_t)d->D, d->n * (size_t)d->C};
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < len[k]; i++) {
            memcpy(&w, a[k] + i, sizeof w);
            h = (h ^ w) * 0x100000001b3ULL;
        }
    return h;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

void sf_flow_train_config_default(sf_flow_train_config *c)
{
    c->batch = 50;
    c->lr = 5e-4;
    c->lr_decay = 0;
    c->lr_patience = 5;
    c->lr_min = 1e-5;
    c->val_frac = 0.1;
    c->patience = 20;
    c->clip_norm = 5.0;
    c->seed = 1;
    c->nthreads = 0;
    c->precise_bn_rows = 0;
}

void sf_flow_trainer_free(sf_flow_trainer *t)
{
    if (!t) return;
    free(t->idx); free(t->order); free(t->grad); free(t->m); free(t->v); free(t->best); free(t->best_bn);
    free(t->bth); free(t->bx); free(t->vth); free(t->vx); free(t->vlq);
    free(t->pth); free(t->px);
    sf_flow_train_ws_free(t->ws);
    gsl_rng_free(t->rng);
    free(t);
}

static size_t bn_len(const sf_flow *f) { return f->n_bn; }

sf_status sf_flow_trainer_alloc(sf_flow *f, const sf_flow_data *d, const sf_flow_train_config *cfg,
                                sf_flow_trainer **out)
{
    *out = NULL;
    if (d->D != f->D || d->C != f->C)
        return SF_ERROR(SF_EINVAL, "data has D=%d C=%d, flow D=%d C=%d", d->D, d->C, f->D, f->C);
    const char *why; /* the box the model will carry: sf_flow_load's conditions */
    const int bad = sf_flow_box_bad(d->D, d->lower, d->upper, f->cfg.theta_map == SF_FLOW_THETA_LOGIT, &why);
    if (bad >= 0)
        return SF_ERROR(SF_EINVAL, "prior box of parameter %d is [%g, %g]: %s", bad, d->lower[bad], d->upper[bad],
                        why);
    if (cfg->batch < 2 || !(cfg->lr > 0) || !(cfg->val_frac > 0 && cfg->val_frac < 1) || cfg->patience < 1 ||
        cfg->precise_bn_rows == 1 || !(cfg->lr_decay >= 0 && cfg->lr_decay < 1) ||
        (cfg->lr_decay > 0 && (cfg->lr_patience < 1 || !(cfg->lr_min > 0))))
        return SF_ERROR(SF_EINVAL,
                        "bad training configuration (batch %zu, lr %g, val_frac %g, precise_bn_rows %zu, lr_decay %g, "
                        "lr_patience %d, lr_min %g)",
                        cfg->batch, cfg->lr, cfg->val_frac, cfg->precise_bn_rows, cfg->lr_decay, cfg->lr_patience,
                        cfg->lr_min);
    size_t n_val = (size_t)floor(cfg->val_frac * (double)d->n);
    if (n_val < 1 || d->n - n_val < cfg->batch)
        return SF_ERROR(SF_EINVAL, "%zu rows too few for batch %zu and a validation split", d->n, cfg->batch);
    sf_flow_trainer *t = calloc(1, sizeof *t);
    if (!t) return SF_ERROR(SF_ENOMEM, "out of memory");
    t->f = f;
    t->d = d;
    t->cfg = *cfg;
    t->lr = cfg->lr;
    t->n_val = n_val;
    t->n_train = d->n - n_val;
    t->n_pbn = f->nsf ? 0 : cfg->precise_bn_rows < t->n_train ? cfg->precise_bn_rows : t->n_train;
    t->data_hash = data_hash(d);
    const size_t np = f->n_params, D = (size_t)f->D, C = (size_t)f->C;
    t->idx = malloc(d->n * sizeof(size_t));
    t->order = malloc(t->n_train * sizeof(size_t));
    t->grad = calloc(np, sizeof(float));
    t->m = calloc(np, sizeof(float));
    t->v = calloc(np, sizeof(float));
    t->best = malloc(np * sizeof(float));
    t->best_bn = malloc((bn_len(f) + 1) * sizeof(float));
    t->bth = malloc(cfg->batch * D * sizeof(double));
    t->bx = malloc((cfg->batch * C + 1) * sizeof(double));
    t->vth = malloc(n_val * D * sizeof(double));
    t->vx = malloc((n_val * C + 1) * sizeof(double));
    t->vlq = malloc(n_val * sizeof(double));
    t->rng = sf_rng_alloc(cfg->seed);
    if (t->n_pbn) {
        t->pth = malloc(t->n_pbn * D * sizeof(double));
        t->px = malloc((t->n_pbn * C + 1) * sizeof(double));
    }
    sf_status st = SF_OK;
    if (!t->idx || !t->order || !t->grad || !t->m || !t->v || !t->best || !t->best_bn || !t->bth || !t->bx ||
        !t->vth || !t->vx || !t->vlq || !t->rng || (t->n_pbn && (!t->pth || !t->px))) {
        st = SF_ERROR(SF_ENOMEM, "out of memory for the trainer (%zu parameters)", np);
        goto fail;
    }
    if ((st = sf_flow_train_ws_alloc(f, cfg->batch, &t->ws))) goto fail;
    if ((st = sf_flow_train_split(d->n, cfg, t->idx, NULL))) goto fail;
    sf_flow_data_rows(d, t->idx + t->n_train, n_val, t->vth, t->vx);
    /* precise-BN rows: the first n_pbn of the seeded training split, the
     * rows `sedflow train --precise-bn` uses */
    sf_flow_data_rows(d, t->idx, t->n_pbn, t->pth, t->px);
    sf_flow_set_prior(f, d->lower, d->upper); /* before the z-scoring: the logit map uses the box */
    /* z-score statistics from the training split */
    {
        double *th = malloc(t->n_train * D * sizeof(double)), *xx = malloc((t->n_train * C + 1) * sizeof(double));
        if (!th || !xx) st = SF_ERROR(SF_ENOMEM, "out of memory");
        if (!st) sf_flow_data_rows(d, t->idx, t->n_train, th, xx);
        if (!st) st = sf_flow_set_zscore(f, t->n_train, th, C ? xx : NULL);
        free(th);
        free(xx);
        if (st) goto fail;
    }
    sf_flow_set_names(f, d->theta_names, d->theta_units, d->x_names, d->x_units);
    memcpy(t->best, f->params, np * sizeof(float));
    memcpy(t->best_bn, f->bn_run, bn_len(f) * sizeof(float));
    t->best_val = -INFINITY;
    t->best_epoch = 0;
    f->meta_n_train = (long long)t->n_train;
    f->meta_n_val = (long long)t->n_val;
    f->meta_batch = (long long)cfg->batch;
    f->meta_lr = cfg->lr;
    f->n_hist = 0;
    *out = t;
    return SF_OK;
fail:
    sf_flow_trainer_free(t);
    return st;
}

sf_status sf_flow_train_split(size_t n, const sf_flow_train_config *cfg, size_t *idx, size_t *n_train)
{
    size_t n_val = (size_t)floor(cfg->val_frac * (double)n);
    if (!(cfg->val_frac > 0 && cfg->val_frac < 1) || n_val < 1 || n_val >= n)
        return SF_ERROR(SF_EINVAL, "no validation split of %zu rows with fraction %g", n, cfg->val_frac);
    gsl_rng *r = sf_rng_alloc(cfg->seed);
    if (!r) return SF_ERROR(SF_ENOMEM, "out of memory");
    /* a seeded shuffle of the rows; the last n_val are validation */
    for (size_t i = 0; i < n; i++) idx[i] = i;
    sf_rng_set_stream(r, cfg->seed, 0);
    sf_flow_shuffle(r, idx, n);
    gsl_rng_free(r);
    if (n_train) *n_train = n - n_val;
    return SF_OK;
}

long sf_flow_trainer_epochs(const sf_flow_trainer *t) { return t->epoch; }

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* Adam on [a, b): the same float operations as the scalar tail, 4 at a time. */
static void adam_range(float *p, const float *g, float *m, float *v, size_t a, size_t b, float coef, float b1, float b2,
                       float step_size, float inv_sbc2, float eps)
{
    size_t i = a;
#if defined(__SSE2__)
    const __m128 vc = _mm_set1_ps(coef), vb1 = _mm_set1_ps(b1), vb2 = _mm_set1_ps(b2), v1b1 = _mm_set1_ps(1 - b1),
                 v1b2 = _mm_set1_ps(1 - b2), vss = _mm_set1_ps(step_size), vis = _mm_set1_ps(inv_sbc2),
                 veps = _mm_set1_ps(eps);
    for (; i + 4 <= b; i += 4) {
        __m128 gi = _mm_mul_ps(_mm_loadu_ps(g + i), vc);
        __m128 mi = _mm_add_ps(_mm_mul_ps(vb1, _mm_loadu_ps(m + i)), _mm_mul_ps(v1b1, gi));
        __m128 vi = _mm_add_ps(_mm_mul_ps(vb2, _mm_loadu_ps(v + i)), _mm_mul_ps(_mm_mul_ps(v1b2, gi), gi));
        __m128 den = _mm_add_ps(_mm_mul_ps(_mm_sqrt_ps(vi), vis), veps);
        _mm_storeu_ps(m + i, mi);
        _mm_storeu_ps(v + i, vi);
        _mm_storeu_ps(p + i, _mm_sub_ps(_mm_loadu_ps(p + i), _mm_div_ps(_mm_mul_ps(vss, mi), den)));
    }
#endif
    for (; i < b; i++) {
        float gi = g[i] * coef;
        m[i] = b1 * m[i] + (1 - b1) * gi;
        v[i] = b2 * v[i] + (1 - b2) * gi * gi;
        p[i] -= step_size * m[i] / (sqrtf(v[i]) * inv_sbc2 + eps);
    }
}

/* Global norm clip then one Adam step.  The squared norm is summed over 256
 * fixed chunks of the parameters, then the chunks in order: the same value
 * for any thread count. */
static void clip_and_adam(sf_flow_trainer *t, int nt)
{
    enum { NCHUNK = 256 };
    const size_t np = t->f->n_params;
    float *p = t->f->params, *g = t->grad, *m = t->m, *v = t->v;
    double part[NCHUNK] = {0};
    if (nt > NCHUNK) nt = NCHUNK;
    if (np < 200000) nt = 1;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int c = 0; c < NCHUNK; c++) {
        double s = 0;
        for (size_t i = np * c / NCHUNK; i < np * (c + 1) / NCHUNK; i++) s += (double)g[i] * g[i];
        part[c] = s;
    }
    double norm2 = 0;
    for (int c = 0; c < NCHUNK; c++) norm2 += part[c];
    double norm = sqrt(norm2);
    float coef = 1.f;
    if (norm > t->cfg.clip_norm) coef = (float)(t->cfg.clip_norm / (norm + 1e-6));
    t->step++;
    const double bc1 = 1 - pow(ADAM_B1, (double)t->step), bc2 = 1 - pow(ADAM_B2, (double)t->step);
    const float step_size = (float)(t->lr / bc1), sbc2 = (float)sqrt(bc2);
    const float b1 = (float)ADAM_B1, b2 = (float)ADAM_B2, eps = (float)ADAM_EPS;
#pragma omp parallel num_threads(nt)
    {
        int id = omp_get_thread_num(), n = omp_get_num_threads();
        size_t a = np * id / n, b = np * (id + 1) / n;
        adam_range(p, g, m, v, a, b, coef, b1, b2, step_size, 1.f / sbc2, eps);
    }
}

sf_status sf_flow_trainer_step(sf_flow_trainer *t, int *more)
{
    const size_t C = (size_t)t->f->C;
    if (!t->in_epoch) {
        memcpy(t->order, t->idx, t->n_train * sizeof(size_t));
        sf_rng_set_stream(t->rng, t->cfg.seed, SHUFFLE_STREAM + (uint64_t)t->epoch);
        sf_flow_shuffle(t->rng, t->order, t->n_train);
        t->pos = 0;
        t->ep_sum = 0;
        t->ep_rows = 0;
        t->t0 = now_s();
        t->in_epoch = 1;
    }
    size_t B = t->n_train - t->pos;
    if (B > t->cfg.batch) B = t->cfg.batch;
    if (B >= 2) {
        sf_flow_data_rows(t->d, t->order + t->pos, B, t->bth, t->bx);
        double loss;
        int nt = sf_nthreads(t->cfg.nthreads);
        sf_status st = sf_flow_loss_grad(t->f, t->ws, B, t->bth, C ? t->bx : NULL, 1, &loss, t->grad, NULL, nt);
        if (st) return st;
        clip_and_adam(t, nt);
        t->ep_sum += -loss * (double)B;
        t->ep_rows += B;
    }
    t->pos += B;
    *more = t->n_train - t->pos >= 2;
    return SF_OK;
}

sf_status sf_flow_trainer_epoch_end(sf_flow_trainer *t, sf_flow_epoch_stats *es, int *stop)
{
    sf_flow *f = t->f;
    int partial = t->in_epoch && t->n_train - t->pos >= 2;
    sf_status st;
    /* precise BN: the validation log q, the best-epoch choice and the kept
     * best statistics use the exact statistics over the fixed rows, not the
     * moving averages; these stay in f, so the next epoch's moving averages
     * start from them (training itself normalises with batch statistics) */
    if (t->n_pbn && (st = sf_flow_bn_recompute(f, t->n_pbn, t->pth, f->C ? t->px : NULL, t->cfg.nthreads)))
        return st;
    sf_flow_prepare(f);
    st = sf_flow_logq(f, t->n_val, t->vth, f->C ? t->vx : NULL, t->vlq, t->cfg.nthreads);
    if (st) return st;
    double s = 0;
    for (size_t i = 0; i < t->n_val; i++) s += t->vlq[i];
    double val = s / (double)t->n_val;
    double sec = now_s() - t->t0;
    t->epoch++;
    t->seconds += sec;
    sf_flow_epoch_stats e = {t->epoch, t->ep_rows ? t->ep_sum / (double)t->ep_rows : NAN, val, sec,
                             sec > 0 ? (double)t->ep_rows / sec : 0, 0, partial, t->lr, 0};
    if (isfinite(val) && val > t->best_val) {
        t->best_val = val;
        t->best_epoch = t->epoch;
        t->since = 0;
        memcpy(t->best, f->params, f->n_params * sizeof(float));
        memcpy(t->best_bn, f->bn_run, bn_len(f) * sizeof(float));
        e.improved = 1;
    } else
        t->since++;
    const int stopping = t->since >= t->cfg.patience;
    /* plateau rule: lr_patience epochs in a row without improvement lower
     * the rate (not on the epoch that exhausts the patience: no step follows) */
    t->since_decay = e.improved ? 0 : t->since_decay + 1;
    if (t->cfg.lr_decay > 0 && t->since_decay >= t->cfg.lr_patience && t->lr > t->cfg.lr_min && !stopping) {
        t->lr = fmax(t->lr * t->cfg.lr_decay, t->cfg.lr_min);
        t->since_decay = 0;
        e.lr_decayed = 1;
    }
    double row[SF_FLOW_HIST_COLS] = {(double)e.epoch, e.train_logq, e.val_logq, e.seconds, e.samples_per_s};
    if ((st = sf_flow_hist_push(f, row))) return st;
    t->in_epoch = 0;
    f->meta_best_epoch = t->best_epoch;
    f->meta_best_val = t->best_val;
    f->meta_seconds = t->seconds;
    f->meta_lr = e.lr; /* the rate of the last epoch's steps */
    if (es) *es = e;
    if (stop) *stop = stopping;
    if (stop && *stop) strcpy(f->meta_stop, "patience");
    return SF_OK;
}

double sf_flow_trainer_lr(const sf_flow_trainer *t) { return t->lr; }

sf_status sf_flow_trainer_set_lr(sf_flow_trainer *t, double lr)
{
    if (!(lr > 0 && isfinite(lr))) return SF_ERROR(SF_EINVAL, "learning rate %g: must be finite and > 0", lr);
    t->lr = lr;
    return SF_OK;
}

void sf_flow_trainer_set_stop(sf_flow_trainer *t, const char *reason)
{
    snprintf(t->f->meta_stop, sizeof t->f->meta_stop, "%s", reason ? reason : "");
}

void sf_flow_trainer_finish(sf_flow_trainer *t)
{
    memcpy(t->f->params, t->best, t->f->n_params * sizeof(float));
    memcpy(t->f->bn_run, t->best_bn, bn_len(t->f) * sizeof(float));
    sf_flow_prepare(t->f);
}

#define TRY(x)                     \
    do {                           \
        if ((st = (x))) goto done; \
    } while (0)

sf_status sf_flow_trainer_checkpoint(const sf_flow_trainer *t, const char *path)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) return SF_ERROR(SF_EINVAL, "path too long");
    hid_t file, g = -1;
    sf_status st = sf_h5_create(tmp, &file);
    if (st) return st;
    size_t np = t->f->n_params, nb = bn_len(t->f);
    TRY(sf_flow_write_h5(t->f, file));
    TRY(sf_h5_group(file, "trainer", &g));
    TRY(sf_h5_write_float(file, "trainer/adam_m", 1, &np, t->m, 0));
    TRY(sf_h5_write_float(file, "trainer/adam_v", 1, &np, t->v, 0));
    TRY(sf_h5_write_float(file, "trainer/best_params", 1, &np, t->best, 0));
    if (nb) TRY(sf_h5_write_float(file, "trainer/best_bn_running", 1, &nb, t->best_bn, 0));
    TRY(sf_h5_attr_set_long(file, "trainer", "step", t->step));
    TRY(sf_h5_attr_set_long(file, "trainer", "epoch", t->epoch));
    TRY(sf_h5_attr_set_long(file, "trainer", "best_epoch", t->best_epoch));
    TRY(sf_h5_attr_set_long(file, "trainer", "since_improvement", t->since));
    TRY(sf_h5_attr_set_long(file, "trainer", "n_rows", (long long)t->d->n));
    TRY(sf_h5_attr_set_long(file, "trainer", "n_val", (long long)t->n_val));
    TRY(sf_h5_attr_set_long(file, "trainer", "data_hash", (long long)t->data_hash));
    TRY(sf_h5_attr_set_long(file, "trainer", "seed", (long long)t->cfg.seed));
    TRY(sf_h5_attr_set_long(file, "trainer", "precise_bn_rows", (long long)t->n_pbn));
    TRY(sf_h5_attr_set_double(file, "trainer", "best_val_logq", t->best_val));
    TRY(sf_h5_attr_set_double(file, "trainer", "seconds", t->seconds));
    TRY(sf_h5_attr_set_double(file, "trainer", "lr", t->lr));
    TRY(sf_h5_attr_set_long(file, "trainer", "since_lr_decay", t->since_decay));
done:
    if (g >= 0) H5Gclose(g);
    if (H5Fclose(file) < 0 && !st) st = SF_ERROR(SF_EIO, "cannot close '%s'", tmp);
    if (!st && rename(tmp, path) != 0) st = SF_ERROR(SF_EIO, "cannot rename '%s' to '%s'", tmp, path);
    if (st) remove(tmp);
    return st;
}

sf_status sf_flow_trainer_resume(sf_flow_trainer *t, const char *path)
{
    hid_t file;
    sf_status st = sf_h5_open_read(path, &file);
    if (st) return st;
    sf_flow *c = NULL, *f = t->f;
    long long n_rows = 0, seed = 0, step = 0, epoch = 0, best_epoch = 0, since = 0;
    size_t np = f->n_params, nb = bn_len(f);
    TRY(sf_flow_read_h5(file, path, &c));
    sf_flow_nsf_config nc1, nc2;
    sf_flow_get_nsf_config(c, &nc1);
    sf_flow_get_nsf_config(f, &nc2);
    if (c->cfg.family != f->cfg.family || nc1.bins != nc2.bins || nc1.tail_bound != nc2.tail_bound ||
        c->cfg.theta_map != f->cfg.theta_map) {
        st = SF_ERROR(SF_EFORMAT, "checkpoint '%s' is for another flow family, spline configuration or theta map",
                      path);
        goto done;
    }
    if (c->D != f->D || c->C != f->C || c->K != f->K || c->H != f->H) {
        st = SF_ERROR(SF_EFORMAT, "checkpoint '%s' is for D=%d C=%d K=%d H=%d, not D=%d C=%d K=%d H=%d", path, c->D,
                      c->C, c->K, c->H, f->D, f->C, f->K, f->H);
        goto done;
    }
    TRY(sf_h5_attr_get_long(file, "trainer", "n_rows", &n_rows));
    TRY(sf_h5_attr_get_long(file, "trainer", "seed", &seed));
    if ((size_t)n_rows != t->d->n || (uint64_t)seed != t->cfg.seed) {
        st = SF_ERROR(SF_EFORMAT, "checkpoint '%s' was made with %lld rows and seed %lld, not %zu and %llu", path,
                      n_rows, seed, t->d->n, (unsigned long long)t->cfg.seed);
        goto done;
    }
    /* checkpoints since 2026-12-01: the same validation split and data (older
     * ones lack both; the row count and seed above are all they can check) */
    if (H5Aexists_by_name(file, "trainer", "n_val", H5P_DEFAULT) > 0) {
        long long n_val = 0, hash = 0;
        TRY(sf_h5_attr_get_long(file, "trainer", "n_val", &n_val));
        TRY(sf_h5_attr_get_long(file, "trainer", "data_hash", &hash));
        if ((size_t)n_val != t->n_val) {
            st = SF_ERROR(SF_EFORMAT, "checkpoint '%s' was made with %lld validation rows, not %zu (another "
                          "--val-frac would move trained rows into the validation set)", path, n_val, t->n_val);
            goto done;
        }
        if ((uint64_t)hash != t->data_hash) {
            st = SF_ERROR(SF_EFORMAT, "checkpoint '%s' was made with other training data (same size, other values)",
                          path);
            goto done;
        }
    }
    TRY(sf_h5_attr_get_long(file, "trainer", "step", &step));
    TRY(sf_h5_attr_get_long(file, "trainer", "epoch", &epoch));
    TRY(sf_h5_attr_get_long(file, "trainer", "best_epoch", &best_epoch));
    TRY(sf_h5_attr_get_long(file, "trainer", "since_improvement", &since));
    TRY(sf_h5_attr_get_double(file, "trainer", "best_val_logq", &t->best_val));
    TRY(sf_h5_attr_get_double(file, "trainer", "seconds", &t->seconds));
    /* the learning rate: absent from checkpoints written before the plateau rule */
    double lr = t->cfg.lr;
    long long since_decay = 0;
    if (H5Aexists_by_name(file, "trainer", "lr", H5P_DEFAULT) > 0) {
        TRY(sf_h5_attr_get_double(file, "trainer", "lr", &lr));
        TRY(sf_h5_attr_get_long(file, "trainer", "since_lr_decay", &since_decay));
        if (!(lr > 0 && isfinite(lr)) || since_decay < 0 || since_decay > epoch) {
            st = SF_ERROR(SF_EFORMAT, "checkpoint '%s': learning rate %g, %lld epochs since its last decay (of %lld)",
                          path, lr, since_decay, epoch);
            goto done;
        }
    }
    TRY(sf_h5_read_float_into(file, "trainer/adam_m", np, t->m));
    TRY(sf_h5_read_float_into(file, "trainer/adam_v", np, t->v));
    TRY(sf_h5_read_float_into(file, "trainer/best_params", np, t->best));
    if (nb) TRY(sf_h5_read_float_into(file, "trainer/best_bn_running", nb, t->best_bn));
    memcpy(f->params, c->params, np * sizeof(float));
    memcpy(f->bn_run, c->bn_run, nb * sizeof(float));
    memcpy(f->perm, c->perm, (size_t)f->K * f->D * sizeof(int));
    TRY(sf_flow_put_zscore(f, c->theta_mean, c->theta_std, c->x_mean, c->x_std));
    f->n_hist = 0;
    for (size_t i = 0; i < c->n_hist; i++) TRY(sf_flow_hist_push(f, c->hist + i * SF_FLOW_HIST_COLS));
    t->step = step;
    t->epoch = epoch;
    t->best_epoch = best_epoch;
    t->since = (int)since;
    t->lr = lr;
    t->since_decay = (int)since_decay;
    t->in_epoch = 0;
    f->meta_best_epoch = best_epoch;
    f->meta_best_val = t->best_val;
    f->meta_seconds = t->seconds;
    sf_flow_prepare(f);
done:
    sf_flow_free(c);
    H5Fclose(file);
    return st;
}
