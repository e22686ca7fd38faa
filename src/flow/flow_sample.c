/*
 * Sampling driver shared by the flow families (sf_flow_sample): proposal
 * rounds, prior-box rejection, the proposal budget, NaN fill and the
 * acceptance fraction.  A family supplies an sf_flow_sampler (flow_impl.h):
 * a per-galaxy precomputation (the context's contribution to the first
 * layer) and the inverse of one chunk of <= SF_FLOW_CHUNK base draws.
 *
 * For galaxy g: rng stream g of the seed (sf_rng_set_stream); rounds of m
 * proposals, m = need / rate x 1.05 + 16 from the running acceptance rate
 * (at least 2%; the first round: need + 16) capped by ROUND_MAX and the
 * remaining budget; z ~ N(0, I) (m x D floats,
 * row by row), v = theta_mean + theta_std u(z), theta = the inverse box
 * map of v (theta = v for the identity map), and
 *   log q = log N(z; 0, I) - sum_d log theta_std_d + ldet(u) + log |dv/dtheta|,
 * ldet = the forward log-det of u -> z returned by the family.  Draws are
 * accepted in proposal order while inside [lo, hi] with finite log q.
 * A round is cut into fixed chunks of SF_FLOW_CHUNK rows (the last one
 * shorter), so the numbers do not depend on the thread count: threads work
 * over galaxies when there are at least as many as threads, otherwise over
 * the chunks of each round.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_rng.h>
#include <omp.h>

#include "flow/flow_impl.h"
#include "sedflow/rng.h"

#define ROUND_MAX 16384

/* Per-galaxy proposal buffers (one per galaxy-level thread). */
typedef struct {
    size_t cap;
    float *z;     /* cap x D base draws */
    double *th;   /* cap x D theta */
    double *lq;   /* cap */
    float *gdata; /* galaxy_floats(f): the galaxy's precomputed terms */
    gsl_rng *rng;
} round_buf;

/* Per-chunk scratch (one per chunk-level thread). */
typedef struct {
    float *u;     /* SF_FLOW_CHUNK x D: z-scored theta */
    double *ldet; /* SF_FLOW_CHUNK */
    void *fws;    /* the family's workspace */
} chunk_buf;

/* Transform the m proposals of rb (rb->z -> rb->th, rb->lq) chunk by chunk. */
static void transform_round(const sf_flow *f, const sf_flow_sampler *s, round_buf *rb, size_t m, chunk_buf *cb,
                            int inner_nt, int want_logq)
{
    const int D = f->D;
    const size_t nch = (m + SF_FLOW_CHUNK - 1) / SF_FLOW_CHUNK;
#pragma omp parallel for num_threads(inner_nt) schedule(dynamic, 1) if (inner_nt > 1)
    for (size_t ch = 0; ch < nch; ch++) {
        chunk_buf *c = &cb[inner_nt > 1 ? omp_get_thread_num() : 0];
        const size_t r0 = ch * SF_FLOW_CHUNK;
        const int n = (int)(m - r0 < SF_FLOW_CHUNK ? m - r0 : SF_FLOW_CHUNK);
        const float *z = rb->z + r0 * D;
        s->inverse(f, c->fws, rb->gdata, n, z, c->u, c->ldet, want_logq);
        for (int r = 0; r < n; r++) {
            double v[1024]; /* D <= 1000 */
            for (int d = 0; d < D; d++) v[d] = f->theta_mean[d] + f->theta_std[d] * (double)c->u[(size_t)r * D + d];
            const double lj = sf_flow_v_to_theta(f, v, rb->th + (r0 + r) * D);
            /* without want_logq, c->ldet is only finite where the log-det is, and
             * lq only where log q would be: the same draws are accepted */
            rb->lq[r0 + r] = want_logq ? sf_flow_row_logq(f, z + (size_t)r * D, c->ldet[r] + lj) : c->ldet[r] + lj;
        }
    }
}

static void sample_galaxy(const sf_flow *f, const sf_flow_sampler *s, size_t g, const double *xg, size_t n,
                          uint64_t seed, const double *lo, const double *hi, size_t budget, round_buf *rb,
                          chunk_buf *cb, int inner_nt, double *samples, double *logq, size_t *n_acc,
                          double *acc_frac)
{
    const int D = f->D;
    sf_rng_set_stream(rb->rng, seed, (uint64_t)g);
    s->galaxy(f, xg, rb->gdata);
    size_t acc = 0, prop = 0;
    double *out = samples + g * n * D;
    while (acc < n && prop < budget) {
        const size_t need = n - acc;
        double rate = prop > 0 ? (double)acc / prop : 1.0;
        if (rate < 0.02) rate = 0.02;
        /* 5% margin once the rate is measured; none in the first round, whose
         * rate 1 is a guess (at acceptance 1 the margin was 5% wasted draws) */
        const double want = need / rate * (prop > 0 ? 1.05 : 1.0) + 16;
        size_t m = want > (double)rb->cap ? rb->cap : (size_t)want;
        if (m > budget - prop) m = budget - prop;
        sf_flow_gauss_fill(rb->rng, rb->z, m * D);
        transform_round(f, s, rb, m, cb, inner_nt, logq != NULL);
        size_t i = 0;
        for (; i < m && acc < n; i++) {
            const double *th = rb->th + i * D;
            int ok = isfinite(rb->lq[i]);
            for (int d = 0; d < D && ok; d++) ok = th[d] >= lo[d] && th[d] <= hi[d] && isfinite(th[d]);
            if (!ok) continue;
            memcpy(out + acc * D, th, (size_t)D * sizeof(double));
            if (logq) logq[g * n + acc] = rb->lq[i];
            acc++;
        }
        /* proposals examined, not drawn: the draws after the n-th accepted one
         * are unused, and counting them biased the acceptance fraction low by
         * up to the round's margin (at n = 10 every galaxy read 10/26) */
        prop += i;
    }
    for (size_t i = acc; i < n; i++) {
        for (int d = 0; d < D; d++) out[i * D + d] = NAN;
        if (logq) logq[g * n + i] = NAN;
    }
    if (n_acc) n_acc[g] = acc;
    if (acc_frac) acc_frac[g] = prop > 0 ? (double)acc / prop : 0.0;
}

static sf_status run_sampler(const sf_flow *f, const sf_flow_sampler *s, size_t G, const double *x, size_t n,
                             uint64_t seed, const double *lo, const double *hi, size_t budget, double *samples,
                             double *logq, size_t *n_acc, double *acc_frac, int nthreads)
{
    const int nt = sf_nthreads(nthreads);
    const int outer = nt > 1 && G >= (size_t)nt;
    const int nbuf = outer ? nt : 1, nchunk = nt;
    const size_t D = (size_t)f->D;
    round_buf *rb = calloc((size_t)nbuf, sizeof *rb);
    chunk_buf *cb = calloc((size_t)nchunk, sizeof *cb);
    sf_status st = SF_OK;
    if (!rb || !cb) {
        st = SF_ERROR(SF_ENOMEM, "out of memory");
        goto done;
    }
    const size_t cap = budget < ROUND_MAX ? budget : ROUND_MAX;
    for (int i = 0; i < nbuf; i++) {
        rb[i].cap = cap;
        rb[i].z = malloc(cap * D * sizeof(float));
        rb[i].th = malloc(cap * D * sizeof(double));
        rb[i].lq = malloc(cap * sizeof(double));
        rb[i].gdata = malloc((s->galaxy_floats(f) + 1) * sizeof(float));
        rb[i].rng = sf_rng_alloc(seed);
        if (!rb[i].z || !rb[i].th || !rb[i].lq || !rb[i].gdata || !rb[i].rng) {
            st = SF_ERROR(SF_ENOMEM, "out of memory for sampling buffers");
            goto done;
        }
    }
    for (int i = 0; i < nchunk; i++) {
        cb[i].u = malloc(SF_FLOW_CHUNK * D * sizeof(float));
        cb[i].ldet = malloc(SF_FLOW_CHUNK * sizeof(double));
        cb[i].fws = s->ws_alloc(f);
        if (!cb[i].u || !cb[i].ldet || !cb[i].fws) {
            st = SF_ERROR(SF_ENOMEM, "out of memory for sampling workspaces");
            goto done;
        }
    }
    if (outer) {
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
        for (size_t g = 0; g < G; g++) {
            const int t = omp_get_thread_num();
            sample_galaxy(f, s, g, f->C ? x + g * f->C : NULL, n, seed, lo, hi, budget, &rb[t], &cb[t], 1, samples,
                          logq, n_acc, acc_frac);
        }
    } else {
        for (size_t g = 0; g < G; g++)
            sample_galaxy(f, s, g, f->C ? x + g * f->C : NULL, n, seed, lo, hi, budget, &rb[0], cb, nt, samples, logq,
                          n_acc, acc_frac);
    }
done:
    if (rb)
        for (int i = 0; i < nbuf; i++) {
            free(rb[i].z); free(rb[i].th); free(rb[i].lq); free(rb[i].gdata);
            gsl_rng_free(rb[i].rng);
        }
    if (cb)
        for (int i = 0; i < nchunk; i++) {
            free(cb[i].u); free(cb[i].ldet);
            if (cb[i].fws) s->ws_free(cb[i].fws);
        }
    free(rb);
    free(cb);
    return st;
}

sf_status sf_flow_sample(const sf_flow *f, size_t G, const double *x, size_t n, uint64_t seed, const double *lower,
                         const double *upper, size_t max_proposals, double *samples, double *logq, size_t *n_acc,
                         double *acc_frac, int nthreads)
{
    if (!f->prepared) return SF_ERROR(SF_EINVAL, "flow not prepared (call sf_flow_prepare after changing weights)");
    if (G == 0 || n == 0) return SF_OK;
    if (!samples || (f->C > 0 && !x)) return SF_ERROR(SF_EINVAL, "NULL samples or x");
    if ((lower == NULL) != (upper == NULL)) return SF_ERROR(SF_EINVAL, "give both box bounds or neither");
    const double *lo = lower ? lower : f->lower, *hi = upper ? upper : f->upper;
    const char *why;
    const int bad = sf_flow_box_bad(f->D, lo, hi, 0, &why);
    if (bad >= 0) return SF_ERROR(SF_EINVAL, "empty box in dimension %d: [%g, %g]", bad, lo[bad], hi[bad]);
    /* G n D doubles of samples, 100 n proposals: sizes that cannot overflow */
    if (n > SIZE_MAX / 128 / (size_t)f->D / sizeof(double) / G)
        return SF_ERROR(SF_EINVAL, "%zu galaxies x %zu samples is too many", G, n);
    const size_t budget = max_proposals ? max_proposals : 100 * n;
    if (budget < n) return SF_ERROR(SF_EINVAL, "max_proposals %zu < n %zu", budget, n);
    sf_flow_blas_single();
    return run_sampler(f, f->nsf ? &sf_nsf_sampler : &sf_maf_sampler, G, x, n, seed, lo, hi, budget, samples, logq,
                       n_acc, acc_frac, nthreads);
}
