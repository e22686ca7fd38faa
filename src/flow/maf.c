/*
 * MAF model object: allocation, parameter layout and initialisation, MADE
 * mask structure, z-scoring, BN folding for evaluation.  See
 * include/sedflow/flow.h and docs/FLOW.md.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_rng.h>

#include "flow/flow_impl.h"
#include "flow/nsf.h"
#include "sedflow/rng.h"

static size_t layer_count(int D, int C, int H)
{
    size_t h = (size_t)H, d = (size_t)D, c = (size_t)C;
    size_t n = h * d + h;                       /* input layer */
    if (C > 0) n += h * c + h;                  /* context layer */
    n += SF_MAF_NBLOCKS * (2 * h + h * h + h);  /* BN + masked hidden */
    n += 2 * d * h + 2 * d;                     /* output layer */
    return n;
}

size_t sf_flow_param_count(const sf_flow_config *cfg)
{
    if (cfg && cfg->family == SF_FLOW_NSF) return sf_flow_param_count_nsf(cfg, NULL);
    if (!cfg || cfg->D < 1 || cfg->C < 0 || cfg->K < 1 || cfg->H < 1) return 0;
    return (size_t)cfg->K * layer_count(cfg->D, cfg->C, cfg->H);
}

void sf_maf_view_of(const sf_flow *f, float *base, int k, sf_maf_view *v)
{
    size_t H = (size_t)f->H, D = (size_t)f->D, C = (size_t)f->C;
    float *p = base + (size_t)k * f->n_layer;
    v->w_in = p; p += H * D;
    v->b_in = p; p += H;
    v->w_c = p; p += (C > 0) ? H * C : 0;
    v->b_c = p; p += (C > 0) ? H : 0;
    for (int j = 0; j < SF_MAF_NBLOCKS; j++) {
        v->bn_g[j] = p; p += H;
        v->bn_b[j] = p; p += H;
        v->w_h[j] = p; p += H * H;
        v->b_h[j] = p; p += H;
    }
    v->w_f = p; p += 2 * D * H;
    v->b_f = p;
}

/* Runs of equal prefix length for rows with nondecreasing prefix p[r]. */
static sf_maf_run *make_runs(const int *p, int rows, int *n_out)
{
    sf_maf_run *r = malloc((size_t)rows * sizeof *r);
    if (!r) return NULL;
    int n = 0;
    for (int i = 0; i < rows; i++) {
        if (n > 0 && r[n - 1].p == p[i]) r[n - 1].re = i + 1;
        else r[n++] = (sf_maf_run){i, i + 1, p[i]};
    }
    *n_out = n;
    return r;
}

static sf_status build_masks(sf_flow *f)
{
    const int D = f->D, H = f->H;
    const int max_ = D - 1 > 1 ? D - 1 : 1, min_ = D - 1 < 1 ? D - 1 : 1;
    f->hdeg = malloc((size_t)H * sizeof(int));
    f->cnt_le = calloc((size_t)D + 1, sizeof(int));
    int *p = malloc((size_t)(H > 2 * D ? H : 2 * D) * sizeof(int));
    f->hgrp = malloc((size_t)(D + 2) * sizeof(int));
    if (!f->hdeg || !f->cnt_le || !p || !f->hgrp) {
        free(p);
        return SF_ERROR(SF_ENOMEM, "out of memory for MADE masks");
    }
    /* nflows degrees: arange(H) % max_ + min_, here sorted ascending. */
    int cnt[64 + 1024] = {0};
    if (D > 1000) {
        free(p);
        return SF_ERROR(SF_EINVAL, "D = %d too large", D);
    }
    for (int j = 0; j < H; j++) cnt[j % max_ + min_]++;
    int j = 0;
    for (int g = 0; g <= D; g++)
        for (int c = 0; c < cnt[g]; c++) f->hdeg[j++] = g;
    for (int g = 0; g <= D; g++) f->cnt_le[g] = (g > 0 ? f->cnt_le[g - 1] : 0) + cnt[g];
    /* hidden degree groups */
    f->n_hgrp = 0;
    f->hgrp[0] = 0;
    for (int i = 1; i <= H; i++)
        if (i == H || f->hdeg[i] != f->hdeg[i - 1]) f->hgrp[++f->n_hgrp] = i;
    /* input layer: unit of degree g sees inputs 1..g -> prefix g */
    for (int i = 0; i < H; i++) p[i] = f->hdeg[i] < D ? f->hdeg[i] : D;
    f->run_in = make_runs(p, H, &f->n_run_in);
    /* hidden: sees hidden units of degree <= g */
    for (int i = 0; i < H; i++) p[i] = f->cnt_le[f->hdeg[i]];
    f->run_h = make_runs(p, H, &f->n_run_h);
    /* output rows 2d, 2d+1 (degree d+1) see hidden units of degree <= d */
    for (int d = 0; d < D; d++) p[2 * d] = p[2 * d + 1] = f->cnt_le[d];
    f->run_f = make_runs(p, 2 * D, &f->n_run_f);
    free(p);
    if (!f->run_in || !f->run_h || !f->run_f) return SF_ERROR(SF_ENOMEM, "out of memory for MADE masks");
    /* super-runs: split the degree groups into S parts of about H/S rows */
    const int S = f->n_run_h < SF_MAF_NSUPER ? f->n_run_h : SF_MAF_NSUPER;
    f->srun_in = malloc((size_t)S * sizeof(sf_maf_run));
    f->srun_h = malloc((size_t)S * sizeof(sf_maf_run));
    if (!f->srun_in || !f->srun_h) return SF_ERROR(SF_ENOMEM, "out of memory for MADE masks");
    f->n_srun = 0;
    for (int q = 0; q < f->n_run_h; q++) {
        int n = f->n_srun;
        if (n > 0 && f->srun_h[n - 1].re < (long)H * n / S) { /* extend the current part */
            f->srun_h[n - 1].re = f->run_h[q].re, f->srun_h[n - 1].p = f->run_h[q].p;
            f->srun_in[n - 1].re = f->run_in[q].re, f->srun_in[n - 1].p = f->run_in[q].p;
        } else {
            f->srun_h[n] = f->run_h[q];
            f->srun_in[n] = f->run_in[q];
            f->n_srun++;
        }
    }
    return SF_OK;
}

/* Uniform(-b, b) on rows of a matrix; masked entries (col >= prefix) zero. */
static void init_masked(gsl_rng *r, float *w, int rows, int cols, const sf_maf_run *runs, int n_runs, double b)
{
    for (int q = 0; q < n_runs; q++)
        for (int o = runs[q].rs; o < runs[q].re; o++)
            for (int i = 0; i < cols; i++)
                w[(size_t)o * cols + i] = i < runs[q].p ? (float)((2 * gsl_rng_uniform(r) - 1) * b) : 0.f;
    (void)rows;
}

static void init_uniform(gsl_rng *r, float *w, size_t n, double b)
{
    for (size_t i = 0; i < n; i++) w[i] = (float)((2 * gsl_rng_uniform(r) - 1) * b);
}

sf_status sf_flow_alloc(const sf_flow_config *cfg, sf_flow **out)
{
    *out = NULL;
    if (cfg && cfg->family == SF_FLOW_NSF) return sf_flow_alloc_nsf(cfg, NULL, out);
    if (!cfg || cfg->family != SF_FLOW_MAF) return SF_ERROR(SF_EINVAL, "unknown flow family");
    if (cfg->D < 1 || cfg->D > 1000 || cfg->C < 0 || cfg->K < 1 || cfg->H < 1)
        return SF_ERROR(SF_EINVAL, "bad flow sizes D=%d C=%d K=%d H=%d", cfg->D, cfg->C, cfg->K, cfg->H);
    if (cfg->theta_map != SF_FLOW_THETA_IDENTITY && cfg->theta_map != SF_FLOW_THETA_LOGIT)
        return SF_ERROR(SF_EINVAL, "unknown theta map %d", (int)cfg->theta_map);
    /* weights plus the BN-folded evaluation copy, in floats: sizes that cannot overflow */
    const double nw = (double)cfg->K * ((double)layer_count(cfg->D, cfg->C, 1) * cfg->H + 4.0 * cfg->H * cfg->H);
    if (nw > 1e12)
        return SF_ERROR(SF_EINVAL, "a MAF of K=%d blocks of H=%d units needs ~%.2g floats: too large", cfg->K, cfg->H,
                        nw);
    sf_flow *f = calloc(1, sizeof *f);
    if (!f) return SF_ERROR(SF_ENOMEM, "out of memory");
    f->cfg = *cfg;
    f->D = cfg->D, f->C = cfg->C, f->K = cfg->K, f->H = cfg->H;
    const size_t D = (size_t)f->D, C = (size_t)f->C, K = (size_t)f->K, H = (size_t)f->H;
    f->n_layer = layer_count(f->D, f->C, f->H);
    f->n_params = K * f->n_layer;
    f->params = calloc(f->n_params, sizeof(float));
    f->n_bn = K * SF_MAF_NBLOCKS * 2 * H;
    f->bn_run = calloc(f->n_bn, sizeof(float));
    f->perm = malloc(K * D * sizeof(int));
    f->theta_mean = calloc(D, sizeof(double));
    f->theta_std = malloc(D * sizeof(double));
    f->x_mean = calloc(C + 1, sizeof(double));
    f->x_std = malloc((C + 1) * sizeof(double));
    f->lower = malloc(D * sizeof(double));
    f->upper = malloc(D * sizeof(double));
    f->ev_w = malloc(K * SF_MAF_NBLOCKS * H * H * sizeof(float));
    f->ev_b = malloc(K * SF_MAF_NBLOCKS * H * sizeof(float));
    sf_status st = SF_OK;
    if (!f->params || !f->bn_run || !f->perm || !f->theta_mean || !f->theta_std || !f->x_mean ||
        !f->x_std || !f->lower || !f->upper || !f->ev_w || !f->ev_b) {
        st = SF_ERROR(SF_ENOMEM, "out of memory for a flow of %zu parameters", f->n_params);
        goto fail;
    }
    if ((st = build_masks(f))) goto fail;
    for (size_t i = 0; i < D; i++) {
        f->theta_std[i] = 1;
        f->lower[i] = -INFINITY;
        f->upper[i] = INFINITY;
    }
    for (size_t i = 0; i < C + 1; i++) f->x_std[i] = 1;
    gsl_rng *r = sf_rng_alloc(cfg->seed);
    if (!r) {
        st = SF_ERROR(SF_ENOMEM, "out of memory");
        goto fail;
    }
    for (int k = 0; k < f->K; k++) {
        sf_maf_view v;
        sf_maf_view_of(f, f->params, k, &v);
        sf_rng_set_stream(r, cfg->seed, (uint64_t)k);
        double bd = 1 / sqrt((double)D), bh = 1 / sqrt((double)H);
        init_masked(r, v.w_in, f->H, f->D, f->run_in, f->n_run_in, bd);
        init_uniform(r, v.b_in, H, bd);
        if (C > 0) {
            init_uniform(r, v.w_c, H * C, 1 / sqrt((double)C));
            init_uniform(r, v.b_c, H, 1 / sqrt((double)C));
        }
        for (int j = 0; j < SF_MAF_NBLOCKS; j++) {
            for (size_t i = 0; i < H; i++) v.bn_g[j][i] = 1.f, v.bn_b[j][i] = 0.f;
            init_masked(r, v.w_h[j], f->H, f->H, f->run_h, f->n_run_h, bh);
            init_uniform(r, v.b_h[j], H, bh);
            float *rv = f->bn_run + ((size_t)k * SF_MAF_NBLOCKS + j) * 2 * H;
            for (size_t i = 0; i < H; i++) rv[i] = 0.f, rv[H + i] = 1.f;
        }
        init_masked(r, v.w_f, 2 * f->D, f->H, f->run_f, f->n_run_f, bh);
        init_uniform(r, v.b_f, 2 * D, bh);
        /* fixed random permutation of this transform */
        sf_rng_set_stream(r, cfg->seed, (uint64_t)(1u << 20) + (uint64_t)k);
        int *pk = f->perm + (size_t)k * D;
        for (size_t i = 0; i < D; i++) pk[i] = (int)i;
        sf_flow_shuffle_int(r, pk, D);
    }
    gsl_rng_free(r);
    strcpy(f->meta_stop, "untrained");
    sf_flow_prepare(f);
    *out = f;
    return SF_OK;
fail:
    sf_flow_free(f);
    return st;
}

void sf_flow_free(sf_flow *f)
{
    if (!f) return;
    free(f->params);
    free(f->bn_run);
    free(f->perm);
    free(f->theta_mean);
    free(f->theta_std);
    free(f->x_mean);
    free(f->x_std);
    free(f->lower);
    free(f->upper);
    free(f->hdeg);
    free(f->cnt_le);
    free(f->hgrp);
    free(f->run_in);
    free(f->run_h);
    free(f->run_f);
    free(f->srun_in);
    free(f->srun_h);
    free(f->ev_w);
    free(f->ev_b);
    free(f->hist);
    sf_nsf_free_priv(f->nsf);
    free(f);
}

const sf_flow_config *sf_flow_get_config(const sf_flow *f) { return &f->cfg; }
size_t sf_flow_n_params(const sf_flow *f) { return f->n_params; }
float *sf_flow_params(sf_flow *f)
{
    f->prepared = 0;
    return f->params;
}
float *sf_flow_bn_running(sf_flow *f)
{
    f->prepared = 0;
    return f->bn_run;
}

static void column_stats(size_t n, size_t dim, const double *a, double *mean, double *std)
{
    for (size_t j = 0; j < dim; j++) {
        double m = 0, s = 0;
        for (size_t i = 0; i < n; i++) m += a[i * dim + j];
        m /= (double)n;
        for (size_t i = 0; i < n; i++) {
            double d = a[i * dim + j] - m;
            s += d * d;
        }
        s = sqrt(s / (double)n);
        mean[j] = m;
        std[j] = (isfinite(s) && s > 1e-12 * (1 + fabs(m))) ? s : 1.0;
    }
}

static void update_log_std(sf_flow *f)
{
    f->log_std_sum = 0;
    for (int d = 0; d < f->D; d++) f->log_std_sum += log(f->theta_std[d]);
}

/* The logit box map (flow.h, SF_FLOW_THETA_LOGIT).  P_EDGE: where points on
 * the box surface are evaluated (logit = -+20.7). */
#define P_EDGE 1e-9

/* Both directions take one exp or log per value and one log per row: the
 * Jacobian's terms are multiplied (each factor in [1e-9, 1] or [1, 2], so
 * the product of up to 1000 stays a normal double) and logged once. */
double sf_flow_theta_to_v(const sf_flow *f, const double *th, double *v)
{
    if (f->cfg.theta_map == SF_FLOW_THETA_IDENTITY) {
        memcpy(v, th, (size_t)f->D * sizeof(double));
        return 0;
    }
    double prod = 1, lj = 0;
    for (int d = 0; d < f->D; d++) {
        const double w = f->upper[d] - f->lower[d];
        /* p and 1 - p, each from its own edge (accurate near both) */
        double p = (th[d] - f->lower[d]) / w, q = (f->upper[d] - th[d]) / w;
        if (p < 0 || q < 0) lj = -INFINITY; /* outside the closed box: q = 0 */
        p = p < P_EDGE ? P_EDGE : p; /* NaN stays NaN */
        q = q < P_EDGE ? P_EDGE : q;
        v[d] = log(p / q);
        prod *= p * q;
        if (d % 32 == 31) lj -= log(prod), prod = 1; /* D > 32: keep the product normal */
    }
    return lj - log(prod) - f->log_box_sum;
}

double sf_flow_v_to_theta(const sf_flow *f, const double *v, double *th)
{
    if (f->cfg.theta_map == SF_FLOW_THETA_IDENTITY) {
        memcpy(th, v, (size_t)f->D * sizeof(double));
        return 0;
    }
    /* p = sigmoid(v); -log p - log(1 - p) = |v| + 2 log(1 + e^-|v|) */
    double prod = 1, lj = 0;
    for (int d = 0; d < f->D; d++) {
        const double a = fabs(v[d]), e = exp(-a), p = (v[d] >= 0 ? 1 : e) / (1 + e);
        const double w = f->upper[d] - f->lower[d], t = f->lower[d] + w * p;
        th[d] = t < f->lower[d] ? f->lower[d] : (t > f->upper[d] ? f->upper[d] : t);
        lj += a;
        prod *= 1 + e;
    }
    return lj + 2 * log(prod) - f->log_box_sum;
}

sf_status sf_flow_set_zscore(sf_flow *f, size_t n, const double *theta, const double *x)
{
    if (n < 1 || !theta || (f->C > 0 && !x)) return SF_ERROR(SF_EINVAL, "need n >= 1 rows of theta and x");
    if (f->cfg.theta_map == SF_FLOW_THETA_IDENTITY) {
        column_stats(n, (size_t)f->D, theta, f->theta_mean, f->theta_std);
    } else {
        for (int d = 0; d < f->D; d++)
            if (!(isfinite(f->lower[d]) && isfinite(f->upper[d]) && f->upper[d] > f->lower[d]))
                return SF_ERROR(SF_EINVAL, "the logit theta map needs a finite prior box (column %d: [%g, %g]); "
                                           "set it before the z-score statistics", d, f->lower[d], f->upper[d]);
        double *v = malloc(n * (size_t)f->D * sizeof(double));
        if (!v) return SF_ERROR(SF_ENOMEM, "out of memory");
        for (size_t i = 0; i < n; i++)
            if (sf_flow_theta_to_v(f, theta + i * f->D, v + i * f->D) == -INFINITY) {
                free(v);
                return SF_ERROR(SF_EINVAL, "theta row %zu lies outside the prior box", i);
            }
        column_stats(n, (size_t)f->D, v, f->theta_mean, f->theta_std);
        free(v);
    }
    if (f->C > 0) column_stats(n, (size_t)f->C, x, f->x_mean, f->x_std);
    for (int d = 0; d < f->D; d++)
        if (!isfinite(f->theta_mean[d])) return SF_ERROR(SF_EINVAL, "theta column %d not finite", d);
    for (int c = 0; c < f->C; c++)
        if (!isfinite(f->x_mean[c])) return SF_ERROR(SF_EINVAL, "x column %d not finite", c);
    update_log_std(f);
    return SF_OK;
}

void sf_flow_get_zscore(const sf_flow *f, double *tm, double *ts, double *xm, double *xs)
{
    if (tm) memcpy(tm, f->theta_mean, (size_t)f->D * sizeof(double));
    if (ts) memcpy(ts, f->theta_std, (size_t)f->D * sizeof(double));
    if (xm && f->C) memcpy(xm, f->x_mean, (size_t)f->C * sizeof(double));
    if (xs && f->C) memcpy(xs, f->x_std, (size_t)f->C * sizeof(double));
}

sf_status sf_flow_put_zscore(sf_flow *f, const double *tm, const double *ts, const double *xm, const double *xs)
{
    for (int d = 0; d < f->D; d++)
        if ((tm && !isfinite(tm[d])) || (ts && !(ts[d] > 0 && isfinite(ts[d]))))
            return SF_ERROR(SF_EINVAL, "bad theta z-score statistics in column %d", d);
    for (int c = 0; c < f->C; c++)
        if ((xm && !isfinite(xm[c])) || (xs && !(xs[c] > 0 && isfinite(xs[c]))))
            return SF_ERROR(SF_EINVAL, "bad x z-score statistics in column %d", c);
    if (tm) memcpy(f->theta_mean, tm, (size_t)f->D * sizeof(double));
    if (ts) memcpy(f->theta_std, ts, (size_t)f->D * sizeof(double));
    if (xm && f->C) memcpy(f->x_mean, xm, (size_t)f->C * sizeof(double));
    if (xs && f->C) memcpy(f->x_std, xs, (size_t)f->C * sizeof(double));
    update_log_std(f);
    return SF_OK;
}

void sf_flow_set_prior(sf_flow *f, const double *lower, const double *upper)
{
    if (lower) memmove(f->lower, lower, (size_t)f->D * sizeof(double));
    if (upper) memmove(f->upper, upper, (size_t)f->D * sizeof(double));
    f->log_box_sum = 0;
    for (int d = 0; d < f->D; d++) f->log_box_sum += log(f->upper[d] - f->lower[d]);
}

int sf_flow_box_bad(int D, const double *lower, const double *upper, int need_finite, const char **why)
{
    for (int d = 0; d < D; d++) {
        if (!(lower[d] < upper[d])) *why = "empty or not a number";
        else if (need_finite && !(isfinite(lower[d]) && isfinite(upper[d]))) *why = "not finite (logit map)";
        else continue;
        return d;
    }
    return -1;
}

void sf_flow_get_prior(const sf_flow *f, double *lower, double *upper)
{
    if (lower) memcpy(lower, f->lower, (size_t)f->D * sizeof(double));
    if (upper) memcpy(upper, f->upper, (size_t)f->D * sizeof(double));
}

static void set_str(char *dst, const char *src)
{
    if (!src) return;
    strncpy(dst, src, SF_FLOW_NAME_LEN - 1);
    dst[SF_FLOW_NAME_LEN - 1] = '\0';
}

void sf_flow_set_names(sf_flow *f, const char *tn, const char *tu, const char *xn, const char *xu)
{
    set_str(f->theta_names, tn);
    set_str(f->theta_units, tu);
    set_str(f->x_names, xn);
    set_str(f->x_units, xu);
}

const char *sf_flow_theta_names(const sf_flow *f) { return f->theta_names; }
const char *sf_flow_x_names(const sf_flow *f) { return f->x_names; }
const char *sf_flow_theta_units(const sf_flow *f) { return f->theta_units; }

size_t sf_flow_history(const sf_flow *f, const double **rows)
{
    if (rows) *rows = f->hist;
    return f->n_hist;
}

sf_status sf_flow_hist_push(sf_flow *f, const double row[SF_FLOW_HIST_COLS])
{
    if (f->n_hist == f->cap_hist) {
        size_t cap = f->cap_hist ? 2 * f->cap_hist : 64;
        double *h = realloc(f->hist, cap * SF_FLOW_HIST_COLS * sizeof(double));
        if (!h) return SF_ERROR(SF_ENOMEM, "out of memory for training history");
        f->hist = h;
        f->cap_hist = cap;
    }
    memcpy(f->hist + f->n_hist * SF_FLOW_HIST_COLS, row, SF_FLOW_HIST_COLS * sizeof(double));
    f->n_hist++;
    return SF_OK;
}

/* Masked entries (col >= prefix) of a matrix set to 0. */
static void zero_masked(float *w, int cols, const sf_maf_run *runs, int n_runs)
{
    for (int q = 0; q < n_runs; q++)
        for (int o = runs[q].rs; o < runs[q].re; o++)
            for (int i = runs[q].p; i < cols; i++) w[(size_t)o * cols + i] = 0.f;
}

void sf_flow_prepare(sf_flow *f)
{
    if (f->nsf) { /* NSF: no batch norm to fold */
        f->prepared = 1;
        return;
    }
    const size_t H = (size_t)f->H;
    for (int k = 0; k < f->K; k++) {
        sf_maf_view v;
        sf_maf_view_of(f, f->params, k, &v);
        zero_masked(v.w_in, f->D, f->run_in, f->n_run_in);
        for (int j = 0; j < SF_MAF_NBLOCKS; j++) zero_masked(v.w_h[j], f->H, f->run_h, f->n_run_h);
        zero_masked(v.w_f, f->H, f->run_f, f->n_run_f);
        for (int j = 0; j < SF_MAF_NBLOCKS; j++) {
            const float *rm = f->bn_run + ((size_t)k * SF_MAF_NBLOCKS + j) * 2 * H, *rv = rm + H;
            float *ew = f->ev_w + ((size_t)k * SF_MAF_NBLOCKS + j) * H * H;
            float *eb = f->ev_b + ((size_t)k * SF_MAF_NBLOCKS + j) * H;
            double a[H], c[H];
            for (size_t i = 0; i < H; i++) {
                a[i] = v.bn_g[j][i] / sqrt((double)rv[i] + SF_MAF_BN_EPS);
                c[i] = v.bn_b[j][i] - a[i] * rm[i];
            }
            for (int q = 0; q < f->n_run_h; q++)
                for (int o = f->run_h[q].rs; o < f->run_h[q].re; o++) {
                    const float *w = v.w_h[j] + (size_t)o * H;
                    float *e = ew + (size_t)o * H;
                    double b = v.b_h[j][o];
                    int p = f->run_h[q].p;
                    for (int i = 0; i < p; i++) {
                        e[i] = (float)(w[i] * a[i]);
                        b += w[i] * c[i];
                    }
                    for (size_t i = (size_t)p; i < H; i++) e[i] = 0.f;
                    eb[o] = (float)b;
                }
        }
    }
    f->prepared = 1;
}
