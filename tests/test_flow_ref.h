/*
 * tests/test_flow_ref.h — an independent, naive double-precision MAF (dense
 * matrices times explicit 0/1 masks built from the nflows degree rules) used
 * by the flow tests as the reference for log q and for finite differences.
 */
#ifndef SEDFLOW_TEST_FLOW_REF_H
#define SEDFLOW_TEST_FLOW_REF_H

#include <math.h>
#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif
#include <stdlib.h>
#include <string.h>

#include "flow/flow_impl.h"

/* Sorted nflows hidden degrees: arange(H) % max(1, D-1) + min(1, D-1). */
static inline void ref_hdeg(int D, int H, int *deg)
{
    int max_ = D - 1 > 1 ? D - 1 : 1, min_ = D - 1 < 1 ? D - 1 : 1;
    for (int j = 0; j < H; j++) deg[j] = j % max_ + min_;
    for (int i = 1; i < H; i++) /* insertion sort */
        for (int j = i; j > 0 && deg[j - 1] > deg[j]; j--) {
            int t = deg[j];
            deg[j] = deg[j - 1];
            deg[j - 1] = t;
        }
}

static inline double ref_softplus(double s) { return s > 30 ? s : log1p(exp(s)); }

/* -(1/B) sum log q over B rows with parameters P (doubles, flow layout),
 * BN running stats `run` (K x 2 x 2H), training (batch stats) or eval mode. */
static double ref_loss(const sf_flow *f, const double *P, const double *run, int train, int B, const double *theta,
                       const double *x, double *logq_rows)
{
    const int D = f->D, C = f->C, H = f->H, K = f->K;
    int *deg = malloc(sizeof(int) * H);
    ref_hdeg(D, H, deg);
    double *u = malloc(sizeof(double) * B * D), *z = malloc(sizeof(double) * B * D);
    double *xz = malloc(sizeof(double) * (B * C + 1)), *h = malloc(sizeof(double) * B * H);
    double *y = malloc(sizeof(double) * B * H), *ld = calloc(B, sizeof(double));
    double tm[1024], ts[1024], xm[1024], xs[1024];
    sf_flow_get_zscore(f, tm, ts, xm, xs);
    for (int b = 0; b < B; b++) {
        for (int d = 0; d < D; d++) u[b * D + d] = (theta[b * D + d] - tm[d]) / ts[d];
        for (int c = 0; c < C; c++) xz[b * C + c] = (x[b * C + c] - xm[c]) / xs[c];
    }
    float *base = f->params;
    for (int k = 0; k < K; k++) {
        sf_maf_view v;
        sf_maf_view_of(f, base, k, &v);
#define OFF(p) (P + ((p) - base))
        const double *win = OFF(v.w_in), *bin = OFF(v.b_in), *wc = OFF(v.w_c), *bc = OFF(v.b_c);
        for (int b = 0; b < B; b++)
            for (int o = 0; o < H; o++) {
                double a = bin[o];
                for (int i = 0; i < D; i++) a += (deg[o] >= i + 1) * win[o * D + i] * u[b * D + i];
                if (C > 0) {
                    double c = bc[o];
                    for (int i = 0; i < C; i++) c += wc[o * C + i] * xz[b * C + i];
                    a += tanh(c);
                }
                h[b * H + o] = tanh(a);
            }
        for (int j = 0; j < SF_MAF_NBLOCKS; j++) {
            const double *g = OFF(v.bn_g[j]), *be = OFF(v.bn_b[j]), *w = OFF(v.w_h[j]), *bb = OFF(v.b_h[j]);
            const double *rm = run + ((size_t)k * SF_MAF_NBLOCKS + j) * 2 * H, *rv = rm + H;
            for (int o = 0; o < H; o++) {
                double mu = 0, var = 0;
                if (train) {
                    for (int b = 0; b < B; b++) mu += h[b * H + o];
                    mu /= B;
                    for (int b = 0; b < B; b++) var += (h[b * H + o] - mu) * (h[b * H + o] - mu);
                    var /= B;
                } else
                    mu = rm[o], var = rv[o];
                for (int b = 0; b < B; b++) y[b * H + o] = g[o] * (h[b * H + o] - mu) / sqrt(var + 1e-3) + be[o];
            }
            for (int b = 0; b < B; b++)
                for (int o = 0; o < H; o++) {
                    double a = bb[o];
                    for (int i = 0; i < H; i++) a += (deg[o] >= deg[i]) * w[o * H + i] * y[b * H + i];
                    h[b * H + o] = tanh(a);
                }
        }
        const double *wf = OFF(v.w_f), *bf = OFF(v.b_f);
        const int *perm = f->perm + (size_t)k * D;
        for (int b = 0; b < B; b++) {
            for (int d = 0; d < D; d++) {
                double s = bf[2 * d], t = bf[2 * d + 1];
                for (int i = 0; i < H; i++) {
                    int m = (d + 1) > deg[i];
                    s += m * wf[(2 * d) * H + i] * h[b * H + i];
                    t += m * wf[(2 * d + 1) * H + i] * h[b * H + i];
                }
                double sc = ref_softplus(s) + 1e-3;
                z[b * D + d] = sc * u[b * D + d] + t;
                ld[b] += log(sc);
            }
            for (int i = 0; i < D; i++) u[b * D + i] = z[b * D + perm[i]];
        }
#undef OFF
    }
    double lstd = 0, sum = 0;
    for (int d = 0; d < D; d++) lstd += log(ts[d]);
    for (int b = 0; b < B; b++) {
        double q = -0.5 * D * log(2 * M_PI) + ld[b] - lstd;
        for (int d = 0; d < D; d++) q -= 0.5 * u[b * D + d] * u[b * D + d];
        if (logq_rows) logq_rows[b] = q;
        sum += q;
    }
    free(deg); free(u); free(z); free(xz); free(h); free(y); free(ld);
    return -sum / B;
}

#endif
