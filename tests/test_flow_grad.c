/* MAF gradients: analytic d(-mean log q)/d(weights) vs central finite
 * differences of an independent double-precision reference (test_flow_ref.h),
 * for every parameter type and the whole flow, with and without context;
 * evaluation-mode log q vs the reference; parameter count of SEDflow. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sedflow/flow.h"
#include "sedflow/rng.h"
#include "test_flow_ref.h"
#include "testutil.h"

static double urand(gsl_rng *r, double a, double b) { return a + (b - a) * gsl_rng_uniform(r); }

/* Give BN parameters and running stats non-trivial values. */
static void perturb(sf_flow *f, gsl_rng *r)
{
    float *p = sf_flow_params(f);
    for (int k = 0; k < f->K; k++) {
        sf_maf_view v;
        sf_maf_view_of(f, p, k, &v);
        for (int j = 0; j < SF_MAF_NBLOCKS; j++)
            for (int o = 0; o < f->H; o++) {
                v.bn_g[j][o] = (float)urand(r, 0.5, 1.5);
                v.bn_b[j][o] = (float)urand(r, -0.3, 0.3);
            }
        for (int m = 0; m < 2 * f->D; m++) v.b_f[m] = (float)urand(r, -0.5, 0.5);
    }
    float *run = sf_flow_bn_running(f);
    for (size_t i = 0; i < (size_t)f->K * SF_MAF_NBLOCKS; i++)
        for (int o = 0; o < f->H; o++) {
            run[i * 2 * f->H + o] = (float)urand(r, -0.2, 0.2);
            run[i * 2 * f->H + f->H + o] = (float)urand(r, 0.2, 1.0);
        }
    sf_flow_prepare(f);
}

static void check_flow(int D, int C, int H, int K, int B, uint64_t seed, int trials)
{
    char tag[64];
    snprintf(tag, sizeof tag, "D=%d C=%d H=%d K=%d", D, C, H, K);
    sf_flow_config cfg = {SF_FLOW_MAF, D, C, K, H, seed, SF_FLOW_THETA_IDENTITY};
    sf_flow *f = NULL;
    CHECK(sf_flow_alloc(&cfg, &f) == SF_OK, "%s: alloc", tag);
    if (!f) return;
    gsl_rng *r = sf_rng_alloc(seed + 100);
    perturb(f, r);
    /* independent mask check: hidden degrees equal the nflows rule */
    int *deg = malloc(sizeof(int) * H), same = 1;
    ref_hdeg(D, H, deg);
    for (int o = 0; o < H; o++) same &= deg[o] == f->hdeg[o];
    CHECK(same, "%s: hidden degrees sorted nflows degrees", tag);
    free(deg);

    double *theta = malloc(sizeof(double) * B * D), *x = malloc(sizeof(double) * (B * C + 1));
    for (int i = 0; i < B * D; i++) theta[i] = urand(r, -1, 3);
    for (int i = 0; i < B * C; i++) x[i] = urand(r, 0, 2);
    CHECK(sf_flow_set_zscore(f, (size_t)B, theta, x) == SF_OK, "%s: zscore", tag);
    sf_flow_prepare(f);

    size_t np = sf_flow_n_params(f);
    double *P = malloc(sizeof(double) * np), *run = malloc(sizeof(double) * K * SF_MAF_NBLOCKS * 2 * H);
    const float *pf = sf_flow_params(f);
    for (size_t i = 0; i < np; i++) P[i] = pf[i];
    for (size_t i = 0; i < (size_t)K * SF_MAF_NBLOCKS * 2 * H; i++) run[i] = f->bn_run[i];
    sf_flow_prepare(f);

    /* eval-mode log q vs reference */
    double *lq = malloc(sizeof(double) * B), *lr = malloc(sizeof(double) * B);
    CHECK(sf_flow_logq(f, (size_t)B, theta, C ? x : NULL, lq, 1) == SF_OK, "%s: logq", tag);
    ref_loss(f, P, run, 0, B, theta, x, lr);
    double emax = 0;
    for (int b = 0; b < B; b++) emax = fmax(emax, fabs(lq[b] - lr[b]));
    CHECK(emax < 2e-4 * (1 + fabs(lr[0])), "%s: eval log q = reference (max diff %.3g, logq %.4g)", tag, emax, lr[0]);

    /* training-mode loss and gradient */
    sf_flow_train_ws *ws = NULL;
    CHECK(sf_flow_train_ws_alloc(f, (size_t)B, &ws) == SF_OK, "%s: ws", tag);
    float *grad = calloc(np, sizeof(float));
    double loss = 0, loss2 = 0;
    CHECK(sf_flow_loss_grad(f, ws, (size_t)B, theta, C ? x : NULL, 0, &loss, grad, NULL, 2) == SF_OK, "%s: loss_grad", tag);
    double lref = ref_loss(f, P, run, 1, B, theta, x, NULL);
    CHECK_ABS(loss, lref, 2e-4 * (1 + fabs(lref)), "training-mode loss vs reference");
    /* a single thread gives the same bytes (2 threads engage from B H^2 >= 4e6) */
    float *grad1 = calloc(np, sizeof(float));
    sf_flow_loss_grad(f, ws, (size_t)B, theta, C ? x : NULL, 0, &loss2, grad1, NULL, 1);
    CHECK(loss2 == loss && !memcmp(grad, grad1, np * sizeof(float)), "%s: 1 vs 2 threads: identical loss and gradient",
          tag);

    /* per parameter type, first and last MADE */
    const char *names[] = {"w_in", "b_in", "w_c", "b_c", "bn_g0", "bn_b0", "w_h0", "b_h0", "bn_g1", "bn_b1", "w_h1", "b_h1", "w_f", "b_f"};
    for (int kk = 0; kk < 2; kk++) {
        int k = kk ? K - 1 : 0;
        sf_maf_view v;
        sf_maf_view_of(f, f->params, k, &v);
        float *starts[14] = {v.w_in, v.b_in, v.w_c, v.b_c, v.bn_g[0], v.bn_b[0], v.w_h[0], v.b_h[0],
                             v.bn_g[1], v.bn_b[1], v.w_h[1], v.b_h[1], v.w_f, v.b_f};
        size_t lens[14] = {(size_t)H * D, (size_t)H, (size_t)H * C, C ? (size_t)H : 0, (size_t)H, (size_t)H,
                           (size_t)H * H, (size_t)H, (size_t)H, (size_t)H, (size_t)H * H, (size_t)H,
                           (size_t)2 * D * H, (size_t)2 * D};
        for (int t = 0; t < 14; t++) {
            if (lens[t] == 0) continue;
            size_t off = (size_t)(starts[t] - f->params);
            double gmax = 0;
            for (size_t i = 0; i < lens[t]; i++) gmax = fmax(gmax, fabs(grad[off + i]));
            double worst = 0;
            int tested = 0, masked_ok = 1;
            for (int trial = 0; trial < trials; trial++) {
                size_t i = off + gsl_rng_uniform_int(r, lens[t]);
                double p0 = P[i], h = 1e-5 * fmax(1, fabs(p0));
                P[i] = p0 + h;
                double lp = ref_loss(f, P, run, 1, B, theta, x, NULL);
                P[i] = p0 - h;
                double lm = ref_loss(f, P, run, 1, B, theta, x, NULL);
                P[i] = p0;
                double fd = (lp - lm) / (2 * h);
                if (fd == 0.0) masked_ok &= grad[i] == 0.0f; /* masked weight: exactly zero */
                double err = fabs(grad[i] - fd) / (1e-3 * fabs(fd) + 2e-4 * gmax + 1e-7);
                worst = fmax(worst, err);
                tested++;
            }
            CHECK(tested > 0 && worst <= 1.0 && masked_ok, "%s: layer %d %s gradient vs finite differences (worst %.3g of tol)",
                  tag, k, names[t], worst);
        }
    }
    /* whole flow: directional derivative along a random direction */
    double *dir = malloc(sizeof(double) * np), gv = 0;
    for (size_t i = 0; i < np; i++) {
        dir[i] = urand(r, -1, 1);
        gv += dir[i] * grad[i];
    }
    double h = 1e-6;
    for (size_t i = 0; i < np; i++) P[i] += h * dir[i];
    double lp = ref_loss(f, P, run, 1, B, theta, x, NULL);
    for (size_t i = 0; i < np; i++) P[i] -= 2 * h * dir[i];
    double lm = ref_loss(f, P, run, 1, B, theta, x, NULL);
    CHECK_REL(gv, (lp - lm) / (2 * h), 1e-3, "whole-flow directional derivative");

    /* running statistics update (momentum 0.1, unbiased variance) */
    float rm0 = f->bn_run[0], rv0 = f->bn_run[H];
    sf_flow_loss_grad(f, ws, (size_t)B, theta, C ? x : NULL, 1, &loss2, grad1, NULL, 2);
    CHECK(f->bn_run[0] != rm0 && f->bn_run[H] != rv0 && !f->prepared, "%s: running stats updated, flow unprepared", tag);

    free(dir); free(grad); free(grad1); free(P); free(run); free(lq); free(lr); free(theta); free(x);
    sf_flow_train_ws_free(ws);
    gsl_rng_free(r);
    sf_flow_free(f);
}

int main(void)
{
    sf_flow_config sed = {SF_FLOW_MAF, 11, 11, 15, 500, 1, SF_FLOW_THETA_IDENTITY};
    CHECK(sf_flow_param_count(&sed) == 7890330, "SEDflow K=15 H=500 D=11 C=11: %zu parameters (7,890,330)",
          sf_flow_param_count(&sed));
    sf_flow *big = NULL;
    CHECK(sf_flow_alloc(&sed, &big) == SF_OK && sf_flow_n_params(big) == 7890330, "allocated SEDflow-size flow");
    sf_flow_free(big);
    sf_flow_free(NULL);
    sf_flow_config bad = {SF_FLOW_MAF, 0, 1, 1, 1, 1, SF_FLOW_THETA_IDENTITY};
    CHECK(sf_flow_alloc(&bad, &big) == SF_EINVAL && big == NULL, "D = 0 refused: %s", sf_last_error());

    check_flow(3, 2, 10, 3, 7, 11, 12);  /* with context */
    check_flow(4, 0, 9, 2, 6, 12, 12);   /* without context */
    check_flow(1, 2, 6, 2, 5, 13, 12);   /* 1-D: hidden units of degree 0 */
    check_flow(5, 3, 23, 2, 8, 14, 12);  /* H not a multiple of D-1 */
    check_flow(11, 11, 130, 2, 6, 15, 12); /* SEDflow D, C; 3 super-runs of 10 degree groups */
    check_flow(4, 2, 5, 2, 6, 16, 12);   /* H < 2D: per-unit sums sized for the 2D output units */
    /* two threads engaged; 11-unit degree groups straddle the kernel's 16-unit
     * tiles, H = 110 and B = 400 leave partial tiles, 3 blocks of batch rows
     * (1 finite difference per parameter type: the reference is slow here) */
    check_flow(11, 11, 110, 2, 400, 17, 1);
    /* the backward split at unit 64 (not a multiple of 6): each thread's
     * packed panels must stay in its own slots (they overlapped: a race) */
    check_flow(11, 11, 128, 2, 256, 18, 1);
    return tu_finish("test_flow_grad");
}
