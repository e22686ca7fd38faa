/*
 * NSF model object: configuration defaults, layer layout (which dims each
 * coupling layer transforms), parameter count, allocation and
 * initialisation.  The rest of struct sf_flow (z-scoring, prior box, names,
 * history) is shared with the MAF (maf.c).  See src/flow/nsf.h.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_rng.h>

#include "flow/nsf.h"
#include "sedflow/rng.h"

static sf_status resolve(const sf_flow_config *c, const sf_flow_nsf_config *in, sf_flow_nsf_config *nc)
{
    if (in) *nc = *in;
    else nc->bins = 0, nc->tail_bound = 0;
    if (nc->bins == 0) nc->bins = SF_NSF_DEFAULT_BINS;
    if (nc->tail_bound == 0) nc->tail_bound = SF_NSF_DEFAULT_TAIL;
    if (c->family != SF_FLOW_NSF) return SF_ERROR(SF_EINVAL, "not an NSF configuration");
    if (c->D < 1 || c->D > 1000 || c->C < 0 || c->C > 1024 || c->K < 1 || c->H < 1)
        return SF_ERROR(SF_EINVAL, "bad flow sizes D=%d C=%d K=%d H=%d", c->D, c->C, c->K, c->H);
    if (c->theta_map != SF_FLOW_THETA_IDENTITY && c->theta_map != SF_FLOW_THETA_LOGIT)
        return SF_ERROR(SF_EINVAL, "unknown theta map %d", (int)c->theta_map);
    if (nc->bins < 1 || nc->bins > SF_NSF_MAX_BINS)
        return SF_ERROR(SF_EINVAL, "NSF bins = %d outside [1, %d]", nc->bins, SF_NSF_MAX_BINS);
    if (!(nc->tail_bound > 0 && nc->tail_bound < 1e6))
        return SF_ERROR(SF_EINVAL, "NSF tail bound %g not positive and finite", nc->tail_bound);
    return SF_OK;
}

static size_t layer_count(int D, int C, int H, int bins, int l)
{
    const size_t n_id = (size_t)sf_nsf_n_id(D, l), n_tr = (size_t)D - n_id, h = (size_t)H;
    const size_t din = n_id + (size_t)C, m3 = n_tr * (3 * (size_t)bins - 1);
    return h * din + h + h * h + h + m3 * h + m3;
}

size_t sf_flow_param_count_nsf(const sf_flow_config *cfg, const sf_flow_nsf_config *in)
{
    sf_flow_nsf_config nc;
    if (!cfg || resolve(cfg, in, &nc)) return 0;
    size_t n = 0;
    for (int l = 0; l < cfg->K; l++) n += layer_count(cfg->D, cfg->C, cfg->H, nc.bins, l);
    return n;
}

void sf_flow_get_nsf_config(const sf_flow *f, sf_flow_nsf_config *nc)
{
    nc->bins = f->nsf ? f->nsf->bins : 0;
    nc->tail_bound = f->nsf ? f->nsf->tail : 0;
}

void sf_nsf_layer_of(const sf_flow *f, float *base, int l, sf_nsf_layer *v)
{
    const struct sf_nsf *n = f->nsf;
    const size_t H = (size_t)f->H;
    v->n_id = n->n_id[l];
    v->n_tr = f->D - v->n_id;
    v->din = v->n_id + f->C;
    v->m3 = v->n_tr * n->np;
    v->id = f->perm + (size_t)l * f->D;
    v->tr = v->id + v->n_id;
    float *p = base + n->off[l];
    v->w1 = p; p += H * (size_t)v->din;
    v->b1 = p; p += H;
    v->w2 = p; p += H * H;
    v->b2 = p; p += H;
    v->w3 = p; p += (size_t)v->m3 * H;
    v->b3 = p;
}

void sf_nsf_free_priv(struct sf_nsf *n)
{
    if (!n) return;
    free(n->n_id);
    free(n->off);
    free(n);
}

/* Transformed sets: the n_tr dims transformed least so far, ties in a seeded
 * random order; perm row = identity dims (ascending) then transformed dims
 * (ascending). */
static void choose_masks(sf_flow *f, gsl_rng *r)
{
    const int D = f->D;
    int *cnt = calloc((size_t)D, sizeof(int)), *ord = malloc((size_t)D * sizeof(int)), *is_tr = malloc((size_t)D * sizeof(int));
    for (int l = 0; l < f->K; l++) {
        const int n_id = f->nsf->n_id[l], n_tr = D - n_id;
        for (int d = 0; d < D; d++) ord[d] = d;
        sf_flow_shuffle_int(r, ord, (size_t)D);
        for (int i = 1; i < D; i++) /* stable insertion sort by count */
            for (int j = i; j > 0 && cnt[ord[j - 1]] > cnt[ord[j]]; j--) {
                int t = ord[j];
                ord[j] = ord[j - 1];
                ord[j - 1] = t;
            }
        for (int d = 0; d < D; d++) is_tr[d] = 0;
        for (int i = 0; i < n_tr; i++) is_tr[ord[i]] = 1, cnt[ord[i]]++;
        int *row = f->perm + (size_t)l * D, a = 0, b = n_id;
        for (int d = 0; d < D; d++) {
            if (is_tr[d]) row[b++] = d;
            else row[a++] = d;
        }
    }
    free(cnt);
    free(ord);
    free(is_tr);
}

static void init_uniform(gsl_rng *r, float *w, size_t n, double b)
{
    for (size_t i = 0; i < n; i++) w[i] = (float)((2 * gsl_rng_uniform(r) - 1) * b);
}

sf_status sf_flow_alloc_nsf(const sf_flow_config *cfg, const sf_flow_nsf_config *in, sf_flow **out)
{
    *out = NULL;
    if (!cfg) return SF_ERROR(SF_EINVAL, "NULL configuration");
    sf_flow_nsf_config nc;
    sf_status st = resolve(cfg, in, &nc);
    if (st) return st;
    const sf_flow_config c = *cfg;
    sf_flow *f = calloc(1, sizeof *f);
    if (!f) return SF_ERROR(SF_ENOMEM, "out of memory");
    f->cfg = c;
    f->D = c.D, f->C = c.C, f->K = c.K, f->H = c.H;
    const size_t D = (size_t)f->D, C = (size_t)f->C, K = (size_t)f->K, H = (size_t)f->H;
    f->nsf = calloc(1, sizeof *f->nsf);
    if (!f->nsf) goto oom;
    struct sf_nsf *n = f->nsf;
    n->bins = nc.bins, n->np = 3 * nc.bins - 1, n->tail = nc.tail_bound;
    n->n_id = malloc(K * sizeof(int));
    n->off = malloc((K + 1) * sizeof(size_t));
    if (!n->n_id || !n->off) goto oom;
    n->off[0] = 0;
    for (int l = 0; l < f->K; l++) {
        n->n_id[l] = sf_nsf_n_id(f->D, l);
        n->off[l + 1] = n->off[l] + layer_count(f->D, f->C, f->H, nc.bins, l);
        int din = n->n_id[l] + f->C, m3 = (f->D - n->n_id[l]) * n->np;
        if (din > n->din_max) n->din_max = din;
        if (m3 > n->m3_max) n->m3_max = m3;
    }
    f->n_params = n->off[K];
    f->n_layer = 0;
    f->n_bn = 0;
    f->params = calloc(f->n_params, sizeof(float));
    f->bn_run = calloc(1, sizeof(float));
    f->perm = malloc(K * D * sizeof(int));
    f->theta_mean = calloc(D, sizeof(double));
    f->theta_std = malloc(D * sizeof(double));
    f->x_mean = calloc(C + 1, sizeof(double));
    f->x_std = malloc((C + 1) * sizeof(double));
    f->lower = malloc(D * sizeof(double));
    f->upper = malloc(D * sizeof(double));
    if (!f->params || !f->bn_run || !f->perm || !f->theta_mean || !f->theta_std || !f->x_mean || !f->x_std ||
        !f->lower || !f->upper)
        goto oom;
    for (size_t i = 0; i < D; i++) {
        f->theta_std[i] = 1;
        f->lower[i] = -INFINITY;
        f->upper[i] = INFINITY;
    }
    for (size_t i = 0; i < C + 1; i++) f->x_std[i] = 1;
    gsl_rng *r = sf_rng_alloc(c.seed);
    if (!r) goto oom;
    sf_rng_set_stream(r, c.seed, (uint64_t)1 << 21);
    choose_masks(f, r);
    for (int l = 0; l < f->K; l++) {
        sf_nsf_layer v;
        sf_nsf_layer_of(f, f->params, l, &v);
        sf_rng_set_stream(r, c.seed, (uint64_t)l);
        /* PyTorch nn.Linear default: uniform(+-1/sqrt(fan_in)) for weights and biases */
        const double b1 = v.din > 0 ? 1 / sqrt((double)v.din) : 1.0, bh = 1 / sqrt((double)H);
        init_uniform(r, v.w1, H * (size_t)v.din, b1);
        init_uniform(r, v.b1, H, b1);
        init_uniform(r, v.w2, H * H, bh);
        init_uniform(r, v.b2, H, bh);
        init_uniform(r, v.w3, (size_t)v.m3 * H, SF_NSF_W3_INIT * bh);
        init_uniform(r, v.b3, (size_t)v.m3, SF_NSF_W3_INIT * bh);
    }
    gsl_rng_free(r);
    strcpy(f->meta_stop, "untrained");
    f->prepared = 1;
    *out = f;
    return SF_OK;
oom:
    st = SF_ERROR(SF_ENOMEM, "out of memory for an NSF flow");
    sf_flow_free(f);
    return st;
}
