/* NSF gradients and layout: analytic d(-mean log q)/d(weights) vs central
 * finite differences of an independent double-precision reference (naive
 * loops, libm tanh, the double spline) for every parameter kind of the first
 * and last coupling layer and a whole-flow directional derivative, for one
 * coupling layer, several, no context, D = 1 (context-only conditioner) and
 * SEDflow's D = C = 11; evaluation log q vs the reference; 1 vs 2 threads
 * bit-identical gradients; the mask rule (every two consecutive layers
 * transform every dimension once); parameter counts. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flow/nsf.h"
#include "sedflow/flow.h"
#include "sedflow/rng.h"
#include "testutil.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

static double urand(gsl_rng *r, double a, double b) { return a + (b - a) * gsl_rng_uniform(r); }

/* -(1/B) sum log q for parameters P (doubles, flow layout). */
static double ref_loss(const sf_flow *f, const double *P, int B, const double *theta, const double *x,
                       double *logq_rows)
{
    const int D = f->D, C = f->C, H = f->H;
    sf_flow_nsf_config nc;
    sf_flow_get_nsf_config(f, &nc);
    const int K = nc.bins, np = 3 * K - 1;
    double tm[1024], ts[1024], xm[1024], xs[1024], sum = 0;
    sf_flow_get_zscore(f, tm, ts, xm, xs);
    double *a = malloc(sizeof(double) * (D + C + 1)), *h1 = malloc(sizeof(double) * H), *h2 = malloc(sizeof(double) * H);
    double *u = malloc(sizeof(double) * D), *raw = malloc(sizeof(double) * np);
    for (int b = 0; b < B; b++) {
        double ld = 0;
        for (int d = 0; d < D; d++) u[d] = (theta[b * D + d] - tm[d]) / ts[d];
        for (int l = 0; l < f->K; l++) {
            sf_nsf_layer v;
            sf_nsf_layer_of(f, f->params, l, &v);
#define OFF(p) (P + ((p) - f->params))
            const double *w1 = OFF(v.w1), *b1 = OFF(v.b1), *w2 = OFF(v.w2), *b2 = OFF(v.b2), *w3 = OFF(v.w3), *b3 = OFF(v.b3);
#undef OFF
            for (int i = 0; i < v.n_id; i++) a[i] = u[v.id[i]];
            for (int c = 0; c < C; c++) a[v.n_id + c] = (x[b * C + c] - xm[c]) / xs[c];
            for (int o = 0; o < H; o++) {
                double s = b1[o];
                for (int i = 0; i < v.din; i++) s += w1[o * v.din + i] * a[i];
                h1[o] = tanh(s);
            }
            for (int o = 0; o < H; o++) {
                double s = b2[o];
                for (int i = 0; i < H; i++) s += w2[o * H + i] * h1[i];
                h2[o] = tanh(s);
            }
            for (int j = 0; j < v.n_tr; j++) {
                for (int m = 0; m < np; m++) {
                    double s = b3[j * np + m];
                    for (int i = 0; i < H; i++) s += w3[(j * np + m) * H + i] * h2[i];
                    raw[m] = s;
                }
                double l1;
                u[v.tr[j]] = sf_rqs_forward(K, nc.tail_bound, raw, u[v.tr[j]], &l1);
                ld += l1;
            }
        }
        double q = -0.5 * D * log(2 * M_PI) + ld;
        for (int d = 0; d < D; d++) q -= 0.5 * u[d] * u[d] + log(ts[d]);
        if (logq_rows) logq_rows[b] = q;
        sum += q;
    }
    free(a); free(h1); free(h2); free(u); free(raw);
    return -sum / B;
}

static void check_flow(int D, int C, int K, int H, int bins, double tail, int B, uint64_t seed)
{
    char tag[96];
    snprintf(tag, sizeof tag, "NSF D=%d C=%d K=%d H=%d bins=%d B=%g", D, C, K, H, bins, tail);
    sf_flow_config cfg = {SF_FLOW_NSF, D, C, K, H, seed, SF_FLOW_THETA_IDENTITY};
    sf_flow_nsf_config nc = {bins, tail};
    sf_flow *f = NULL;
    CHECK(sf_flow_alloc_nsf(&cfg, &nc, &f) == SF_OK, "%s: alloc", tag);
    if (!f) return;
    gsl_rng *r = sf_rng_alloc(seed + 100);
    /* output layer at full scale: raw spline parameters O(1), far from identity */
    float *p = sf_flow_params(f);
    for (int l = 0; l < K; l++) {
        sf_nsf_layer v;
        sf_nsf_layer_of(f, p, l, &v);
        for (size_t i = 0; i < (size_t)v.m3 * H; i++) v.w3[i] *= 25.f;
        for (int i = 0; i < v.m3; i++) v.b3[i] = (float)urand(r, -1, 1);
    }
    double *theta = malloc(sizeof(double) * B * D), *x = malloc(sizeof(double) * (B * C + 1));
    for (int i = 0; i < B * D; i++) theta[i] = urand(r, -1, 3);
    for (int i = 0; i < B * C; i++) x[i] = urand(r, 0, 2);
    CHECK(sf_flow_set_zscore(f, (size_t)B, theta, x) == SF_OK, "%s: zscore", tag);
    sf_flow_prepare(f);
    const size_t np = sf_flow_n_params(f);
    CHECK(np == sf_flow_param_count_nsf(&cfg, &nc), "%s: %zu parameters = sf_flow_param_count_nsf", tag, np);
    double *P = malloc(sizeof(double) * np);
    for (size_t i = 0; i < np; i++) P[i] = f->params[i];

    double *lq = malloc(sizeof(double) * B), *lr = malloc(sizeof(double) * B);
    CHECK(sf_flow_logq(f, (size_t)B, theta, C ? x : NULL, lq, 2) == SF_OK, "%s: logq", tag);
    ref_loss(f, P, B, theta, x, lr);
    double emax = 0, lmax = 0;
    for (int b = 0; b < B; b++) emax = fmax(emax, fabs(lq[b] - lr[b])), lmax = fmax(lmax, fabs(lr[b]));
    CHECK(emax < 2e-4 * (1 + lmax), "%s: eval log q = reference (max diff %.3g, |log q| up to %.3g)", tag, emax, lmax);

    sf_flow_train_ws *ws = NULL;
    CHECK(sf_flow_train_ws_alloc(f, (size_t)B, &ws) == SF_OK, "%s: ws", tag);
    float *grad = calloc(np, sizeof(float)), *grad1 = calloc(np, sizeof(float));
    double loss = 0, loss1 = 0, *lrow = malloc(sizeof(double) * B);
    CHECK(sf_flow_loss_grad(f, ws, (size_t)B, theta, C ? x : NULL, 1, &loss, grad, lrow, 2) == SF_OK, "%s: loss_grad", tag);
    double lref = ref_loss(f, P, B, theta, x, NULL);
    CHECK_ABS(loss, lref, 2e-4 * (1 + fabs(lref)), "training loss vs reference");
    double rdiff = 0;
    for (int b = 0; b < B; b++) rdiff = fmax(rdiff, fabs(lrow[b] - lq[b]) / (1 + fabs(lq[b])));
    CHECK(rdiff < 1e-5, "%s: training-mode log q rows = evaluation log q (no batch norm; max rel diff %.2g)", tag, rdiff);
    sf_flow_loss_grad(f, ws, (size_t)B, theta, C ? x : NULL, 0, &loss1, grad1, NULL, 1);
    CHECK(!memcmp(grad, grad1, np * sizeof(float)) && loss == loss1, "%s: 1 and 2 threads: bit-identical gradient", tag);

    const char *names[6] = {"W1", "b1", "W2", "b2", "W3", "b3"};
    for (int kk = 0; kk < (K > 1 ? 2 : 1); kk++) {
        int l = kk ? K - 1 : 0;
        sf_nsf_layer v;
        sf_nsf_layer_of(f, f->params, l, &v);
        float *starts[6] = {v.w1, v.b1, v.w2, v.b2, v.w3, v.b3};
        size_t lens[6] = {(size_t)H * v.din, (size_t)H, (size_t)H * H, (size_t)H, (size_t)v.m3 * H, (size_t)v.m3};
        for (int t = 0; t < 6; t++) {
            if (lens[t] == 0) continue;
            size_t off = (size_t)(starts[t] - f->params);
            double gmax = 0, worst = 0;
            for (size_t i = 0; i < lens[t]; i++) gmax = fmax(gmax, fabs(grad[off + i]));
            for (int trial = 0; trial < 12; trial++) {
                size_t i = off + gsl_rng_uniform_int(r, lens[t]);
                double p0 = P[i], h = 1e-5 * fmax(1, fabs(p0));
                P[i] = p0 + h;
                double lp = ref_loss(f, P, B, theta, x, NULL);
                P[i] = p0 - h;
                double lm = ref_loss(f, P, B, theta, x, NULL);
                P[i] = p0;
                double fd = (lp - lm) / (2 * h);
                worst = fmax(worst, fabs(grad[i] - fd) / (1e-3 * fabs(fd) + 2e-4 * gmax + 1e-7));
            }
            CHECK(worst <= 1.0, "%s: layer %d %s gradient vs finite differences (worst %.3g of tol, max |g| %.3g)", tag, l,
                  names[t], worst, gmax);
        }
    }
    double *dir = malloc(sizeof(double) * np), gv = 0;
    for (size_t i = 0; i < np; i++) dir[i] = urand(r, -1, 1), gv += dir[i] * grad[i];
    const double h = 1e-6;
    for (size_t i = 0; i < np; i++) P[i] += h * dir[i];
    double lp = ref_loss(f, P, B, theta, x, NULL);
    for (size_t i = 0; i < np; i++) P[i] -= 2 * h * dir[i];
    double lm = ref_loss(f, P, B, theta, x, NULL);
    CHECK_REL(gv, (lp - lm) / (2 * h), 1e-3, "whole-flow directional derivative");

    free(dir); free(grad); free(grad1); free(P); free(lq); free(lr); free(lrow); free(theta); free(x);
    sf_flow_train_ws_free(ws);
    gsl_rng_free(r);
    sf_flow_free(f);
}

int main(void)
{
    /* parameter count by the layout formula, SEDflow sizes */
    sf_flow_config sed = {SF_FLOW_NSF, 11, 11, 8, 128, 1, SF_FLOW_THETA_IDENTITY};
    size_t expect = 0;
    for (int l = 0; l < 8; l++) {
        size_t n_tr = l % 2 ? 5 : 6, din = 11 - n_tr + 11, m3 = n_tr * (3 * 8 - 1);
        expect += 128 * din + 128 + 128 * 128 + 128 + m3 * 128 + m3;
    }
    CHECK(sf_flow_param_count(&sed) == expect, "NSF K=8 H=128 bins=8 D=C=11: %zu parameters (%zu)", sf_flow_param_count(&sed),
          expect);
    sf_flow *f = NULL;
    CHECK(sf_flow_alloc(&sed, &f) == SF_OK && sf_flow_n_params(f) == expect, "allocated with default hyper-parameters");
    sf_flow_nsf_config nc;
    sf_flow_get_nsf_config(f, &nc);
    CHECK(nc.bins == 8 && nc.tail_bound == 3.0, "defaults: 8 bins, tail bound 3");
    /* masks: each row a permutation; layers 2m, 2m+1 transform every dim once */
    int ok = 1;
    for (int l = 0; l < 8; l++) {
        sf_nsf_layer v;
        sf_nsf_layer_of(f, f->params, l, &v);
        int seen[11] = {0};
        for (int d = 0; d < 11; d++) seen[v.id[d]]++;
        for (int d = 0; d < 11; d++) ok &= seen[d] == 1;
        ok &= v.n_tr == (l % 2 ? 5 : 6);
    }
    for (int l = 0; l + 1 < 8; l += 2) {
        int cnt[11] = {0};
        for (int k = l; k < l + 2; k++) {
            sf_nsf_layer v;
            sf_nsf_layer_of(f, f->params, k, &v);
            for (int j = 0; j < v.n_tr; j++) cnt[v.tr[j]]++;
        }
        for (int d = 0; d < 11; d++) ok &= cnt[d] == 1;
    }
    CHECK(ok, "masks: permutations; each pair of layers transforms all 11 dims exactly once");
    sf_flow_free(f);
    sf_flow_nsf_config badc = {65, 3};
    CHECK(sf_flow_alloc_nsf(&sed, &badc, &f) == SF_EINVAL && !f, "65 bins refused: %s", sf_last_error());
    badc.bins = 8, badc.tail_bound = -1;
    CHECK(sf_flow_alloc_nsf(&sed, &badc, &f) == SF_EINVAL && !f, "negative tail bound refused");

    const int quick = getenv("SEDFLOW_TEST_QUICK") != NULL;
    check_flow(3, 2, 1, 10, 5, 3.0, 70, 11);  /* one coupling layer, 3 pieces */
    check_flow(3, 2, 3, 10, 8, 1.5, 40, 12);  /* several layers; tails often hit */
    check_flow(4, 0, 2, 9, 4, 3.0, 33, 13);   /* no context */
    check_flow(1, 2, 2, 6, 6, 2.0, 20, 14);   /* D = 1: context-only conditioner */
    check_flow(1, 0, 2, 5, 4, 2.0, 12, 16);   /* D = 1, C = 0: an unconditional learned spline */
    check_flow(11, 11, quick ? 2 : 4, 24, 8, 3.0, 36, 15); /* SEDflow D, C */
    return tu_finish("test_nsf_grad");
}
