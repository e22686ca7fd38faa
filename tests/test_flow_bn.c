/* Precise BN (sf_flow_bn_recompute, src/flow/flow_bn.c) on a small
 * synthetic MAF trained for 2 epochs (D = 3, C = 2, K = 2, H = 16):
 *  - every BN layer's running mean/variance equal the mean / unbiased
 *    variance of that layer's input over the rows, computed independently by
 *    a naive double-precision forward pass in evaluation mode (earlier layers
 *    with their new statistics); equivalently the normalised activations
 *    have mean 0 and variance 1 (n-1 convention) within 1e-4;
 *  - the training's moving averages did not already satisfy this (so the
 *    check can fail);
 *  - log q of the recalibrated flow equals the reference double MAF with the
 *    new statistics (tests/test_flow_ref.h), so it is the same normalised
 *    density family, only with new BN constants;
 *  - 1 vs 2 threads: bit-identical statistics and log q;
 *  - errors leave the flow unchanged (n < 2, NaN rows, NULL); an NSF is
 *    untouched;
 *  - CLI: train --precise-bn and train --recalibrate-bn (history kept). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sedflow/flow.h"
#include "test_flow_ref.h"
#include "test_flow_synth.h"
#include "testutil.h"

/* Mean and unbiased variance (double) of each BN layer's input over n rows,
 * evaluation mode with the flow's running statistics.  ms: K x NB x (mean H,
 * var H); nz: K x NB x (mean H, var H) of the normalised input (h - rm) /
 * sqrt(rv). */
static void ref_bn_stats(const sf_flow *f, size_t n, const double *theta, const double *x, double *ms, double *nz)
{
    const int D = f->D, C = f->C, H = f->H, K = f->K;
    double tm[8], ts[8], xm[8], xs[8];
    sf_flow_get_zscore(f, tm, ts, xm, xs);
    double *u = malloc(sizeof(double) * n * D), *xz = malloc(sizeof(double) * (n * C + 1));
    double *h = malloc(sizeof(double) * n * H), *y = malloc(sizeof(double) * n * H), z[8];
    for (size_t b = 0; b < n; b++) {
        for (int d = 0; d < D; d++) u[b * D + d] = (theta[b * D + d] - tm[d]) / ts[d];
        for (int c = 0; c < C; c++) xz[b * C + c] = (x[b * C + c] - xm[c]) / xs[c];
    }
    for (int k = 0; k < K; k++) {
        sf_maf_view v; /* masked weights are exactly 0 in a prepared flow: dense products */
        sf_maf_view_of(f, f->params, k, &v);
        for (size_t b = 0; b < n; b++)
            for (int o = 0; o < H; o++) {
                double a = v.b_in[o], c = v.b_c[o];
                for (int i = 0; i < D; i++) a += (double)v.w_in[o * D + i] * u[b * D + i];
                for (int i = 0; i < C; i++) c += (double)v.w_c[o * C + i] * xz[b * C + i];
                h[b * H + o] = tanh(a + tanh(c));
            }
        for (int j = 0; j < SF_MAF_NBLOCKS; j++) {
            const size_t kj = (size_t)k * SF_MAF_NBLOCKS + j;
            const float *rm = f->bn_run + kj * 2 * H, *rv = rm + H;
            for (int o = 0; o < H; o++) {
                double m = 0, s = 0, mz = 0, sz = 0;
                for (size_t b = 0; b < n; b++) m += h[b * H + o], mz += (h[b * H + o] - rm[o]) / sqrt(rv[o]);
                m /= n, mz /= n;
                for (size_t b = 0; b < n; b++) {
                    double d = h[b * H + o] - m, dz = (h[b * H + o] - rm[o]) / sqrt(rv[o]) - mz;
                    s += d * d, sz += dz * dz;
                }
                ms[kj * 2 * H + o] = m, ms[kj * 2 * H + H + o] = s / (n - 1);
                nz[kj * 2 * H + o] = mz, nz[kj * 2 * H + H + o] = sz / (n - 1);
                const double a = v.bn_g[j][o] / sqrt(rv[o] + SF_MAF_BN_EPS);
                for (size_t b = 0; b < n; b++) y[b * H + o] = a * (h[b * H + o] - rm[o]) + v.bn_b[j][o];
            }
            for (size_t b = 0; b < n; b++)
                for (int o = 0; o < H; o++) {
                    double a = v.b_h[j][o];
                    for (int i = 0; i < H; i++) a += (double)v.w_h[j][o * H + i] * y[b * H + i];
                    h[b * H + o] = tanh(a);
                }
        }
        const int *perm = f->perm + (size_t)k * D;
        for (size_t b = 0; b < n; b++) {
            for (int d = 0; d < D; d++) {
                double s = v.b_f[2 * d], t = v.b_f[2 * d + 1];
                for (int i = 0; i < H; i++) {
                    s += (double)v.w_f[(2 * d) * H + i] * h[b * H + i];
                    t += (double)v.w_f[(2 * d + 1) * H + i] * h[b * H + i];
                }
                z[d] = (ref_softplus(s) + 1e-3) * u[b * D + d] + t;
            }
            for (int i = 0; i < D; i++) u[b * D + i] = z[perm[i]];
        }
    }
    free(u); free(xz); free(h); free(y);
}

/* Largest deviation of the BN statistics from the reference. */
static void compare(const sf_flow *f, const double *ms, const double *nz, double *dmean, double *dvar, double *znorm)
{
    const size_t H = (size_t)f->H, L = (size_t)f->K * SF_MAF_NBLOCKS;
    *dmean = *dvar = *znorm = 0;
    for (size_t l = 0; l < L; l++)
        for (size_t o = 0; o < H; o++) {
            const size_t i = l * 2 * H + o;
            double a = fabs(f->bn_run[i] - ms[i]), b = fabs(f->bn_run[i + H] - ms[i + H]) / ms[i + H];
            double c = fmax(fabs(nz[i]), fabs(nz[i + H] - 1));
            *dmean = fmax(*dmean, a), *dvar = fmax(*dvar, b), *znorm = fmax(*znorm, c);
        }
}

static void check_cli(void)
{
    char dir[] = "/tmp/sedflow_test_flow_bn_XXXXXX";
    if (!mkdtemp(dir)) return;
    char data[256], model[256], recal[256], cmd[2048];
    static char out[1 << 16];
    snprintf(data, sizeof data, "%s/train.h5", dir);
    snprintf(model, sizeof model, "%s/model.h5", dir);
    snprintf(recal, sizeof recal, "%s/recal.h5", dir);
    synth_model m;
    synth_init(&m, 3, 2, 4);
    CHECK(synth_write(data, &m, 3000, 4) == 0, "wrote training file");
    const char *bin = tu_cli();
    snprintf(cmd, sizeof cmd,
             "%s train --data %s --out %s --blocks 2 --hidden 16 --batch 64 --max-epochs 2 --threads 1 "
             "--precise-bn 1000 2>&1", bin, data, model);
    int rc = tu_run(cmd, out, sizeof out);
    double before = NAN, after = NAN;
    const char *p = strstr(out, "validation mean log q ");
    int got = p ? sscanf(p, "validation mean log q %lf -> %lf", &before, &after) : 0;
    CHECK(rc == 0 && got == 2 && isfinite(before) && isfinite(after) && strstr(out, "precise BN on 1000 training rows"),
          "train --precise-bn 1000 logs the validation log q before/after (%g -> %g, rc %d)", before, after, rc);
    /* recalibrating the written model with the same rows changes nothing but
     * refolding; with 2000 rows the statistics change, the rest stays */
    snprintf(cmd, sizeof cmd, "%s train --data %s --recalibrate-bn %s --out %s --precise-bn 2000 --threads 2 2>&1",
             bin, data, model, recal);
    rc = tu_run(cmd, out, sizeof out);
    sf_flow *a = NULL, *b = NULL;
    CHECK(rc == 0 && sf_flow_load(model, &a) == SF_OK && sf_flow_load(recal, &b) == SF_OK, "--recalibrate-bn (rc %d)",
          rc);
    if (a && b) {
        const double *ha, *hb;
        size_t na = sf_flow_history(a, &ha), nb = sf_flow_history(b, &hb);
        CHECK(na == 2 && nb == 2 && !memcmp(ha, hb, na * 5 * sizeof(double)), "history kept (%zu rows)", nb);
        CHECK(!memcmp(a->params, b->params, a->n_params * sizeof(float)), "weights kept");
        CHECK(memcmp(a->bn_run, b->bn_run, a->n_bn * sizeof(float)) != 0, "BN statistics recomputed");
        CHECK(!strcmp(a->meta_stop, b->meta_stop) && a->meta_n_train == b->meta_n_train, "training metadata kept");
    }
    sf_flow_free(a);
    sf_flow_free(b);
    snprintf(cmd, sizeof cmd, "%s train --data %s --recalibrate-bn %s --out %s --val-frac 0.2 --precise-bn 100 2>&1",
             bin, data, model, recal);
    CHECK(tu_run(cmd, out, sizeof out) == 1 && strstr(out, "not its training set"),
          "another split than the model's is refused");
    snprintf(cmd, sizeof cmd, "%s train --data %s --recalibrate-bn %s --out %s 2>&1", bin, data, model, recal);
    CHECK(tu_run(cmd, out, sizeof out) == 2, "--recalibrate-bn without --precise-bn is a usage error");
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) CHECK(0, "removed %s", dir);
}

int main(void)
{
    const int D = 3, C = 2;
    synth_model m;
    synth_init(&m, D, C, 7);
    /* a training set in memory and a flow trained on it for 2 epochs */
    const size_t nt = 4000;
    double lo[3] = {-20, -20, -20}, hi[3] = {20, 20, 20};
    sf_flow_data d = {.n = nt, .D = D, .C = C, .lower = lo, .upper = hi};
    d.theta = malloc(sizeof(double) * nt * D);
    d.x = malloc(sizeof(double) * nt * C);
    synth_draw(&m, nt, 7, 0, d.theta, d.x);
    sf_flow_config cfg = {SF_FLOW_MAF, D, C, 2, 16, 11, SF_FLOW_THETA_IDENTITY};
    sf_flow *f = NULL;
    sf_flow_trainer *t = NULL;
    sf_flow_train_config tc;
    sf_flow_train_config_default(&tc);
    tc.batch = 64, tc.lr = 2e-3, tc.nthreads = 1;
    CHECK(sf_flow_alloc(&cfg, &f) == SF_OK && sf_flow_trainer_alloc(f, &d, &tc, &t) == SF_OK, "flow and trainer");
    CHECK(synth_run_epochs(t, 2) == SF_OK, "2 training epochs");
    sf_flow_trainer_finish(t);
    sf_flow_trainer_free(t);

    /* rows for the statistics: a partial last chunk (3001 = 11 x 256 + 185) */
    const size_t n = 3001;
    double *th = malloc(sizeof(double) * n * D), *x = malloc(sizeof(double) * n * C);
    synth_draw(&m, n, 7, 1, th, x);
    const size_t nbn = f->n_bn;
    double *ms = malloc(sizeof(double) * nbn), *nz = malloc(sizeof(double) * nbn);
    double dmean, dvar, znorm;
    ref_bn_stats(f, n, th, x, ms, nz);
    compare(f, ms, nz, &dmean, &dvar, &znorm);
    CHECK(dmean > 1e-3 || dvar > 1e-2, "moving averages differ from the population statistics (mean %.2g, var %.2g)",
          dmean, dvar);
    float *orig = malloc(sizeof(float) * nbn), *one = malloc(sizeof(float) * nbn);
    memcpy(orig, f->bn_run, nbn * sizeof(float));

    CHECK(sf_flow_bn_recompute(f, n, th, x, 1) == SF_OK, "precise BN, 1 thread");
    memcpy(one, f->bn_run, nbn * sizeof(float));
    ref_bn_stats(f, n, th, x, ms, nz);
    compare(f, ms, nz, &dmean, &dvar, &znorm);
    CHECK(dmean < 1e-5, "running means = mean of each layer's input (max abs diff %.2g)", dmean);
    CHECK(dvar < 1e-4, "running variances = unbiased variance of each layer's input (max rel diff %.2g)", dvar);
    CHECK(znorm < 1e-4, "normalised inputs have mean 0 and variance 1 (max deviation %.2g)", znorm);

    /* log q: the flow's float evaluation vs the double reference with the new statistics */
    double *lq = malloc(sizeof(double) * n), *lq2 = malloc(sizeof(double) * n), *lr = malloc(sizeof(double) * n);
    double *P = malloc(sizeof(double) * f->n_params), *run = malloc(sizeof(double) * nbn);
    for (size_t i = 0; i < f->n_params; i++) P[i] = f->params[i];
    for (size_t i = 0; i < nbn; i++) run[i] = f->bn_run[i];
    CHECK(sf_flow_logq(f, n, th, x, lq, 1) == SF_OK, "log q after precise BN");
    ref_loss(f, P, run, 0, (int)n, th, x, lr);
    double dq = 0, mq = 0;
    for (size_t i = 0; i < n; i++) dq = fmax(dq, fabs(lq[i] - lr[i])), mq += lq[i] / n;
    CHECK(dq < 2e-3 && isfinite(mq), "log q = double reference with the new statistics (max diff %.2g, mean %.4f)", dq,
          mq);

    /* threads: bit-identical */
    memcpy(f->bn_run, orig, nbn * sizeof(float));
    CHECK(sf_flow_bn_recompute(f, n, th, x, 2) == SF_OK, "precise BN, 2 threads");
    CHECK(!memcmp(one, f->bn_run, nbn * sizeof(float)), "1 vs 2 threads: identical statistics");
    CHECK(sf_flow_logq(f, n, th, x, lq2, 2) == SF_OK && !memcmp(lq, lq2, n * sizeof(double)),
          "1 vs 2 threads: identical log q");

    /* errors leave the flow unchanged */
    CHECK(sf_flow_bn_recompute(f, 1, th, x, 1) == SF_EINVAL, "n = 1 is SF_EINVAL");
    CHECK(sf_flow_bn_recompute(f, n, th, NULL, 1) == SF_EINVAL, "NULL x is SF_EINVAL");
    th[5 * D + 1] = NAN;
    CHECK(sf_flow_bn_recompute(f, n, th, x, 1) == SF_EINVAL, "a NaN row is SF_EINVAL");
    th[5 * D + 1] = 0.3;
    CHECK(!memcmp(one, f->bn_run, nbn * sizeof(float)) && sf_flow_logq(f, n, th, x, lq2, 1) == SF_OK,
          "after the errors the flow is unchanged and prepared");

    /* NSF: nothing to do */
    {
        sf_flow_config nc = {SF_FLOW_NSF, D, C, 2, 16, 3, SF_FLOW_THETA_IDENTITY};
        sf_flow *g = NULL;
        CHECK(sf_flow_alloc(&nc, &g) == SF_OK, "NSF flow");
        double *a1 = malloc(sizeof(double) * n), *a2 = malloc(sizeof(double) * n);
        sf_flow_logq(g, n, th, x, a1, 1);
        CHECK(sf_flow_bn_recompute(g, n, th, x, 1) == SF_OK, "NSF: SF_OK");
        CHECK(sf_flow_logq(g, n, th, x, a2, 1) == SF_OK && !memcmp(a1, a2, n * sizeof(double)), "NSF: log q unchanged");
        free(a1);
        free(a2);
        sf_flow_free(g);
    }

    check_cli();

    free(th); free(x); free(ms); free(nz); free(orig); free(one); free(lq); free(lq2); free(lr); free(P); free(run);
    free(d.theta); free(d.x);
    sf_flow_free(f);
    return tu_finish("test_flow_bn");
}
