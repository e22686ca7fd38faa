/*
 * MAF evaluation mode: log q (forward pass with the BN running statistics
 * folded into the weights, see sf_flow_prepare) and sampling by the fast
 * inverse.  Rows are processed in fixed chunks of CHUNK rows, one chunk per
 * thread at a time (single-threaded sgemm), so results do not depend on the
 * thread count.
 *
 * Fast inverse (issue 4 part 3): with hidden units sorted by degree, a unit
 * of degree g depends only on inputs u_1..u_g.  Solving for u_d in order
 * d = 1..D, at step d we compute the units of degree d-1 (their inputs are
 * now known) in every layer, then output d; each unit is computed once, so
 * one inverse costs about one forward pass instead of D.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_rng.h>
#include <omp.h>

#include "flow/flow_impl.h"
#include "flow/nsf.h"
#include "sedflow/rng.h"

#define CHUNK 256

typedef struct {
    float *u, *v;         /* CHUNK x D */
    float *xz;            /* CHUNK x C */
    float *ct, *h[3];     /* CHUNK x H */
    float *out;           /* CHUNK x 2D */
    double *ldet;         /* CHUNK */
} chunk_ws;

static void chunk_free(chunk_ws *c)
{
    free(c->u); free(c->v); free(c->xz); free(c->ct);
    for (int i = 0; i < 3; i++) free(c->h[i]);
    free(c->out); free(c->ldet);
}

static int chunk_alloc(const sf_flow *f, chunk_ws *c)
{
    const size_t D = (size_t)f->D, C = (size_t)f->C, H = (size_t)f->H;
    memset(c, 0, sizeof *c);
    c->u = malloc(CHUNK * D * sizeof(float));
    c->v = malloc(CHUNK * D * sizeof(float));
    c->xz = malloc((CHUNK * C + 1) * sizeof(float));
    c->ct = malloc(CHUNK * H * sizeof(float));
    for (int i = 0; i < 3; i++) c->h[i] = malloc(CHUNK * H * sizeof(float));
    c->out = malloc(CHUNK * 2 * D * sizeof(float));
    c->ldet = malloc(CHUNK * sizeof(double));
    if (!c->u || !c->v || !c->xz || !c->ct || !c->h[0] || !c->h[1] || !c->h[2] || !c->out || !c->ldet) {
        chunk_free(c);
        memset(c, 0, sizeof *c);
        return -1;
    }
    return 0;
}

static inline float *ev_w(const sf_flow *f, int k, int j)
{
    return f->ev_w + ((size_t)k * SF_MAF_NBLOCKS + j) * f->H * f->H;
}
static inline float *ev_b(const sf_flow *f, int k, int j)
{
    return f->ev_b + ((size_t)k * SF_MAF_NBLOCKS + j) * f->H;
}

/* Forward pass of n <= CHUNK rows: c->u (z-scored theta) and c->xz set;
 * on return c->u holds the base variable and c->ldet sum log scale. */
static void eval_forward(const sf_flow *f, chunk_ws *c, int n)
{
    const int D = f->D, C = f->C, H = f->H;
    for (int r = 0; r < n; r++) c->ldet[r] = 0;
    for (int k = 0; k < f->K; k++) {
        sf_maf_view v;
        sf_maf_view_of(f, f->params, k, &v);
        float *h0 = c->h[0];
        if (C > 0) {
            sf_maf_lin_rows(n, 0, H, C, c->xz, C, v.w_c, C, v.b_c, c->ct, H);
            sf_flow_tanh(c->ct, NULL, (size_t)n * H);
        }
        for (int q = 0; q < f->n_srun; q++)
            sf_maf_lin_rows(n, f->srun_in[q].rs, f->srun_in[q].re, f->srun_in[q].p, c->u, D, v.w_in, D, v.b_in, h0, H);
        sf_flow_tanh(h0, C > 0 ? c->ct : NULL, (size_t)n * H);
        for (int j = 0; j < SF_MAF_NBLOCKS; j++) {
            const float *hin = c->h[j % 3];
            float *ho = c->h[(j + 1) % 3];
            for (int q = 0; q < f->n_srun; q++)
                sf_maf_lin_rows(n, f->srun_h[q].rs, f->srun_h[q].re, f->srun_h[q].p, hin, H, ev_w(f, k, j), H,
                                ev_b(f, k, j), ho, H);
            sf_flow_tanh(ho, NULL, (size_t)n * H);
        }
        const float *hl = c->h[SF_MAF_NBLOCKS % 3];
        for (int q = 0; q < f->n_run_f; q++)
            sf_maf_lin_rows(n, f->run_f[q].rs, f->run_f[q].re, f->run_f[q].p, hl, H, v.w_f, H, v.b_f, c->out, 2 * D);
        const int *perm = f->perm + (size_t)k * D;
        for (int r = 0; r < n; r++) {
            float *u = c->u + (size_t)r * D, *z = c->v + (size_t)r * D;
            const float *o = c->out + (size_t)r * 2 * D;
            for (int d = 0; d < D; d++) {
                float sc = sf_softplusf(o[2 * d]) + SF_MAF_SCALE_EPS;
                z[d] = sc * u[d] + o[2 * d + 1];
                c->ldet[r] += logf(sc);
            }
            for (int i = 0; i < D; i++) u[i] = z[perm[i]];
        }
    }
}

sf_status sf_flow_logq(const sf_flow *f, size_t n, const double *theta, const double *x, double *logq, int nthreads)
{
    if (!f->prepared) return SF_ERROR(SF_EINVAL, "flow not prepared (call sf_flow_prepare after changing weights)");
    if (n == 0) return SF_OK;
    if (!theta || !logq || (f->C > 0 && !x)) return SF_ERROR(SF_EINVAL, "NULL theta, x or logq");
    if (f->nsf) return sf_nsf_logq(f, n, theta, x, logq, nthreads);
    sf_flow_blas_single();
    const int D = f->D, C = f->C;
    const int nt = sf_flow_nthreads(nthreads);
    const size_t nchunks = (n + CHUNK - 1) / CHUNK;
    int fail = 0;
    const double c0 = -0.5 * D * SF_FLOW_LOG_2PI - f->log_std_sum;
#pragma omp parallel num_threads(nt) reduction(| : fail)
    {
        chunk_ws c;
        if (chunk_alloc(f, &c)) fail = 1;
#pragma omp for schedule(dynamic, 1)
        for (size_t ch = 0; ch < nchunks; ch++) {
            if (fail) continue;
            size_t r0 = ch * CHUNK;
            int m = (int)(n - r0 < CHUNK ? n - r0 : CHUNK);
            for (int r = 0; r < m; r++) {
                for (int d = 0; d < D; d++)
                    c.u[(size_t)r * D + d] =
                        (float)((theta[(r0 + r) * D + d] - f->theta_mean[d]) / f->theta_std[d]);
                for (int k = 0; k < C; k++)
                    c.xz[(size_t)r * C + k] = (float)((x[(r0 + r) * C + k] - f->x_mean[k]) / f->x_std[k]);
            }
            eval_forward(f, &c, m);
            for (int r = 0; r < m; r++) {
                double q = c0 + c.ldet[r];
                for (int d = 0; d < D; d++) q -= 0.5 * (double)c.u[(size_t)r * D + d] * c.u[(size_t)r * D + d];
                logq[r0 + r] = q;
            }
        }
        chunk_free(&c);
    }
    if (fail) return SF_ERROR(SF_ENOMEM, "out of memory for log q workspaces");
    return SF_OK;
}

/* ---- sampling ---------------------------------------------------------- */

/* Inverse of n <= CHUNK rows: c->u holds base draws z on entry, the
 * z-scored theta on return; c->ldet = sum log scale.  bias0: K x H, the
 * input-layer bias plus the galaxy's context term. */
static void eval_inverse(const sf_flow *f, chunk_ws *c, int n, const float *bias0)
{
    const int D = f->D, H = f->H;
    for (int r = 0; r < n; r++) c->ldet[r] = 0;
    for (int k = f->K - 1; k >= 0; k--) {
        sf_maf_view v;
        sf_maf_view_of(f, f->params, k, &v);
        const int *perm = f->perm + (size_t)k * D;
        for (int r = 0; r < n; r++)
            for (int i = 0; i < D; i++) c->v[(size_t)r * D + perm[i]] = c->u[(size_t)r * D + i];
        const float *b0 = bias0 + (size_t)k * H;
        for (int d = 0; d < D; d++) {
            int lo = d > 0 ? f->cnt_le[d - 1] : 0, hi = f->cnt_le[d];
            if (hi > lo) { /* hidden units of degree d: inputs u_0..u_{d-1} known */
                sf_maf_lin_rows(n, lo, hi, d, c->u, D, v.w_in, D, b0, c->h[0], H);
                for (int r = 0; r < n; r++) sf_flow_tanh(c->h[0] + (size_t)r * H + lo, NULL, (size_t)(hi - lo));
                for (int j = 0; j < SF_MAF_NBLOCKS; j++) {
                    float *ho = c->h[(j + 1) % 3];
                    sf_maf_lin_rows(n, lo, hi, hi, c->h[j % 3], H, ev_w(f, k, j), H, ev_b(f, k, j), ho, H);
                    for (int r = 0; r < n; r++) sf_flow_tanh(ho + (size_t)r * H + lo, NULL, (size_t)(hi - lo));
                }
            }
            sf_maf_lin_rows(n, 2 * d, 2 * d + 2, hi, c->h[SF_MAF_NBLOCKS % 3], H, v.w_f, H, v.b_f, c->out, 2 * D);
            for (int r = 0; r < n; r++) {
                const float *o = c->out + (size_t)r * 2 * D;
                float sc = sf_softplusf(o[2 * d]) + SF_MAF_SCALE_EPS;
                c->u[(size_t)r * D + d] = (c->v[(size_t)r * D + d] - o[2 * d + 1]) / sc;
                c->ldet[r] += logf(sc);
            }
        }
    }
}

/* Per-galaxy proposal buffers. */
typedef struct {
    size_t cap;
    float *z;      /* cap x D base draws */
    double *th;    /* cap x D theta */
    double *lq;    /* cap */
    float *bias0;  /* K x H */
} round_buf;

#define ROUND_MAX 16384

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
                for (int i = 0; i < C; i++) a += (double)v.w_c[(size_t)o * C + i] * (float)((x[i] - f->x_mean[i]) / f->x_std[i]);
                a = sf_tanhf((float)a);
            }
            bias0[(size_t)k * H + o] = v.b_in[o] + (float)a;
        }
    }
}

/* Transform m proposals of rb (rb->z -> rb->th, rb->lq) in chunks. */
static void transform_round(const sf_flow *f, round_buf *rb, size_t m, chunk_ws *cws, int inner_nt)
{
    const int D = f->D;
    const size_t nch = (m + CHUNK - 1) / CHUNK;
    const double c0 = -0.5 * D * SF_FLOW_LOG_2PI - f->log_std_sum;
#pragma omp parallel for num_threads(inner_nt) schedule(dynamic, 1) if (inner_nt > 1)
    for (size_t ch = 0; ch < nch; ch++) {
        chunk_ws *c = &cws[inner_nt > 1 ? omp_get_thread_num() : 0];
        size_t r0 = ch * CHUNK;
        int n = (int)(m - r0 < CHUNK ? m - r0 : CHUNK);
        memcpy(c->u, rb->z + r0 * D, (size_t)n * D * sizeof(float));
        double q0[CHUNK];
        for (int r = 0; r < n; r++) {
            double s = 0;
            for (int d = 0; d < D; d++) s += (double)c->u[(size_t)r * D + d] * c->u[(size_t)r * D + d];
            q0[r] = c0 - 0.5 * s;
        }
        eval_inverse(f, c, n, rb->bias0);
        for (int r = 0; r < n; r++) {
            for (int d = 0; d < D; d++)
                rb->th[(r0 + r) * D + d] = f->theta_mean[d] + f->theta_std[d] * (double)c->u[(size_t)r * D + d];
            rb->lq[r0 + r] = q0[r] + c->ldet[r];
        }
    }
}

static void sample_galaxy(const sf_flow *f, size_t g, const double *xg, size_t n, uint64_t seed, const double *lo,
                          const double *hi, size_t budget, round_buf *rb, chunk_ws *cws, int inner_nt, gsl_rng *rng,
                          double *samples, double *logq, size_t *n_acc, double *acc_frac)
{
    const int D = f->D;
    sf_rng_set_stream(rng, seed, (uint64_t)g);
    galaxy_bias(f, xg, rb->bias0);
    size_t acc = 0, prop = 0;
    double *out = samples + g * n * D;
    while (acc < n && prop < budget) {
        size_t need = n - acc;
        double rate = prop > 0 ? (double)acc / prop : 1.0;
        if (rate < 0.02) rate = 0.02;
        double want = need / rate * 1.05 + 16;
        size_t m = want > (double)rb->cap ? rb->cap : (size_t)want;
        if (m > budget - prop) m = budget - prop;
        sf_flow_gauss_fill(rng, rb->z, m * D);
        transform_round(f, rb, m, cws, inner_nt);
        prop += m;
        for (size_t i = 0; i < m && acc < n; i++) {
            const double *th = rb->th + i * D;
            int ok = isfinite(rb->lq[i]);
            for (int d = 0; d < D && ok; d++) ok = th[d] >= lo[d] && th[d] <= hi[d] && isfinite(th[d]);
            if (!ok) continue;
            memcpy(out + acc * D, th, (size_t)D * sizeof(double));
            if (logq) logq[g * n + acc] = rb->lq[i];
            acc++;
        }
    }
    for (size_t i = acc; i < n; i++) {
        for (int d = 0; d < D; d++) out[i * D + d] = NAN;
        if (logq) logq[g * n + i] = NAN;
    }
    if (n_acc) n_acc[g] = acc;
    if (acc_frac) acc_frac[g] = prop > 0 ? (double)acc / prop : 0.0;
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
    for (int d = 0; d < f->D; d++)
        if (!(lo[d] < hi[d])) return SF_ERROR(SF_EINVAL, "empty box in dimension %d: [%g, %g]", d, lo[d], hi[d]);
    size_t budget = max_proposals ? max_proposals : 100 * n;
    if (budget < n) return SF_ERROR(SF_EINVAL, "max_proposals %zu < n %zu", budget, n);
    if (f->nsf)
        return sf_nsf_sample(f, G, x, n, seed, lo, hi, budget, samples, logq, n_acc, acc_frac, nthreads);
    sf_flow_blas_single();
    const int nt = sf_flow_nthreads(nthreads);
    const int outer = nt > 1 && G >= (size_t)nt;
    const int nbuf = outer ? nt : 1, nchunk = nt;
    round_buf *rb = calloc((size_t)nbuf, sizeof *rb);
    chunk_ws *cws = calloc((size_t)nchunk, sizeof *cws);
    gsl_rng **rng = calloc((size_t)nbuf, sizeof *rng);
    sf_status st = SF_OK;
    if (!rb || !cws || !rng) {
        st = SF_ERROR(SF_ENOMEM, "out of memory");
        goto done;
    }
    size_t cap = budget < ROUND_MAX ? budget : ROUND_MAX;
    for (int i = 0; i < nbuf; i++) {
        rb[i].cap = cap;
        rb[i].z = malloc(cap * f->D * sizeof(float));
        rb[i].th = malloc(cap * f->D * sizeof(double));
        rb[i].lq = malloc(cap * sizeof(double));
        rb[i].bias0 = malloc((size_t)f->K * f->H * sizeof(float));
        rng[i] = sf_rng_alloc(seed);
        if (!rb[i].z || !rb[i].th || !rb[i].lq || !rb[i].bias0 || !rng[i]) {
            st = SF_ERROR(SF_ENOMEM, "out of memory for sampling buffers");
            goto done;
        }
    }
    for (int i = 0; i < nchunk; i++)
        if (chunk_alloc(f, &cws[i])) {
            st = SF_ERROR(SF_ENOMEM, "out of memory for sampling workspaces");
            goto done;
        }
    if (outer) {
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
        for (size_t g = 0; g < G; g++) {
            int t = omp_get_thread_num();
            sample_galaxy(f, g, f->C ? x + g * f->C : NULL, n, seed, lo, hi, budget, &rb[t], &cws[t], 1, rng[t],
                          samples, logq, n_acc, acc_frac);
        }
    } else {
        for (size_t g = 0; g < G; g++)
            sample_galaxy(f, g, f->C ? x + g * f->C : NULL, n, seed, lo, hi, budget, &rb[0], cws, nt, rng[0], samples,
                          logq, n_acc, acc_frac);
    }
done:
    if (rb)
        for (int i = 0; i < nbuf; i++) {
            free(rb[i].z); free(rb[i].th); free(rb[i].lq); free(rb[i].bias0);
        }
    if (rng)
        for (int i = 0; i < nbuf; i++) gsl_rng_free(rng[i]);
    if (cws)
        for (int i = 0; i < nchunk; i++) chunk_free(&cws[i]);
    free(rb);
    free(cws);
    free(rng);
    return st;
}
