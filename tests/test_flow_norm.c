/* Normalisation and sampling, once per flow family (the argument "maf" or
 * "nsf" picks one; CTest runs test_flow_norm_maf and test_flow_norm_nsf;
 * none runs both).  For a 1-D and a 2-D conditional flow with random
 * non-trivial weights and z-scoring with std != 1 (MAF: weights x 1.8 and
 * random batch-norm statistics; NSF: strongly non-linear splines, a narrow
 * interval so that the identity tails carry mass too, and a 1-D flow whose
 * conditioner sees only the context), the integral of q over a fine grid is
 * 1 within 1e-3; sample moments agree with the grid moments of q; the
 * acceptance fraction with a prior box equals the grid mass of q in the
 * box; samples do not depend on the thread count; draws are in the box.
 * NSF also: an unconditional flow (C = 0, x = NULL). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flow/nsf.h"
#include "sedflow/flow.h"
#include "sedflow/rng.h"
#include "test_flow_synth.h"
#include "testutil.h"

static sf_flow *make_flow(sf_flow_family family, int D, int C, uint64_t seed)
{
    sf_flow_config cfg = {family, D, C, 3, 16, seed, SF_FLOW_THETA_IDENTITY};
    sf_flow_nsf_config nc = {6, 2.0}; /* narrow interval: the identity tails carry mass too */
    sf_flow *f = NULL;
    if (family == SF_FLOW_NSF ? sf_flow_alloc_nsf(&cfg, &nc, &f) : sf_flow_alloc(&cfg, &f)) return NULL;
    gsl_rng *r = sf_rng_alloc(seed + 1);
    float *p = sf_flow_params(f);
    if (family == SF_FLOW_MAF) {
        for (size_t i = 0; i < sf_flow_n_params(f); i++) p[i] *= 1.8f; /* stronger non-linearity */
        float *run = sf_flow_bn_running(f);
        for (size_t i = 0; i < (size_t)f->K * SF_MAF_NBLOCKS; i++)
            for (int o = 0; o < f->H; o++) {
                run[i * 2 * f->H + o] = (float)(0.2 * (gsl_rng_uniform(r) - 0.5));
                run[i * 2 * f->H + f->H + o] = (float)(0.3 + 0.5 * gsl_rng_uniform(r));
            }
    } else {
        for (int l = 0; l < cfg.K; l++) { /* output layer at full scale: strongly non-linear splines */
            sf_nsf_layer v;
            sf_nsf_layer_of(f, p, l, &v);
            for (size_t i = 0; i < (size_t)v.m3 * cfg.H; i++) v.w3[i] *= 20.f;
            for (int i = 0; i < v.m3; i++) v.b3[i] = (float)(2 * gsl_rng_uniform(r) - 1);
        }
    }
    double tm[2] = {2.0, -1.0}, ts[2] = {0.5, 1.7}, xm[2] = {0.3, 0.1}, xs[2] = {2.0, 1.0};
    sf_flow_put_zscore(f, tm, ts, xm, xs);
    sf_flow_prepare(f);
    gsl_rng_free(r);
    return f;
}

static void check_family(sf_flow_family family)
{
    const int quick = getenv("SEDFLOW_TEST_QUICK") != NULL;
    /* ---- 1-D ---- */
    {
        sf_flow *f = make_flow(family, 1, 1, 21);
        double x[1] = {0.7};
        const size_t ns = 20000;
        double *s = malloc(sizeof(double) * ns);
        size_t nacc;
        CHECK(sf_flow_sample(f, 1, x, ns, 3, NULL, NULL, 0, s, NULL, &nacc, NULL, 1) == SF_OK && nacc == ns, "1-D sample");
        double lo = s[0], hi = s[0];
        for (size_t i = 0; i < ns; i++) lo = fmin(lo, s[i]), hi = fmax(hi, s[i]);
        double w = hi - lo;
        lo -= 1.5 * w, hi += 1.5 * w;
        const size_t ng = 200001;
        double *th = malloc(sizeof(double) * ng), *xx = malloc(sizeof(double) * ng), *lq = malloc(sizeof(double) * ng);
        for (size_t i = 0; i < ng; i++) th[i] = lo + (hi - lo) * i / (ng - 1), xx[i] = x[0];
        CHECK(sf_flow_logq(f, ng, th, xx, lq, 2) == SF_OK, "1-D grid log q");
        double integ = 0, h = (hi - lo) / (ng - 1);
        for (size_t i = 0; i < ng; i++) integ += (i == 0 || i == ng - 1 ? 0.5 : 1.0) * exp(lq[i]) * h;
        CHECK_ABS(integ, 1.0, 1e-3, "1-D integral of q over the grid");
        free(s); free(th); free(xx); free(lq);
        sf_flow_free(f);
    }
    /* ---- 2-D ---- */
    {
        sf_flow *f = make_flow(family, 2, 1, 31);
        double x[1] = {-0.4};
        const size_t ns = quick ? 40000 : 200000;
        double *s = malloc(sizeof(double) * ns * 2), *sl = malloc(sizeof(double) * ns);
        size_t nacc;
        CHECK(sf_flow_sample(f, 1, x, ns, 5, NULL, NULL, 0, s, sl, &nacc, NULL, 2) == SF_OK && nacc == ns, "2-D sample");
        double lo[2] = {1e300, 1e300}, hi[2] = {-1e300, -1e300};
        double m[2] = {0, 0}, c[3] = {0, 0, 0};
        for (size_t i = 0; i < ns; i++)
            for (int d = 0; d < 2; d++) lo[d] = fmin(lo[d], s[2 * i + d]), hi[d] = fmax(hi[d], s[2 * i + d]), m[d] += s[2 * i + d];
        m[0] /= ns, m[1] /= ns;
        for (size_t i = 0; i < ns; i++) {
            double a = s[2 * i] - m[0], b = s[2 * i + 1] - m[1];
            c[0] += a * a, c[1] += a * b, c[2] += b * b;
        }
        for (int k = 0; k < 3; k++) c[k] /= ns - 1;
        /* log q returned with the samples equals log q evaluated at them */
        double *lq2 = malloc(sizeof(double) * 1000), xs[1000];
        for (int i = 0; i < 1000; i++) xs[i] = x[0];
        sf_flow_logq(f, 1000, s, xs, lq2, 1);
        double e = 0;
        for (int i = 0; i < 1000; i++) e = fmax(e, fabs(lq2[i] - sl[i]));
        CHECK(e < 1e-3, "sample log q = log q at the samples (max diff %.2g): the inverse inverts the forward", e);
        free(lq2);
        for (int d = 0; d < 2; d++) {
            double w = hi[d] - lo[d];
            lo[d] -= 0.75 * w, hi[d] += 0.75 * w;
        }
        const size_t ng = quick ? 500 : 1200;
        double *th = malloc(sizeof(double) * ng * ng * 2), *xx = malloc(sizeof(double) * ng * ng), *lq = malloc(sizeof(double) * ng * ng);
        double hx = (hi[0] - lo[0]) / ng, hy = (hi[1] - lo[1]) / ng;
        for (size_t i = 0; i < ng; i++)
            for (size_t j = 0; j < ng; j++) {
                th[2 * (i * ng + j)] = lo[0] + (i + 0.5) * hx;
                th[2 * (i * ng + j) + 1] = lo[1] + (j + 0.5) * hy;
                xx[i * ng + j] = x[0];
            }
        CHECK(sf_flow_logq(f, ng * ng, th, xx, lq, 2) == SF_OK, "2-D grid log q");
        double I = 0, gm[2] = {0, 0}, gc[3] = {0, 0, 0};
        for (size_t k = 0; k < ng * ng; k++) {
            double p = exp(lq[k]) * hx * hy;
            I += p, gm[0] += p * th[2 * k], gm[1] += p * th[2 * k + 1];
        }
        for (size_t k = 0; k < ng * ng; k++) {
            double p = exp(lq[k]) * hx * hy, a = th[2 * k] - gm[0], b = th[2 * k + 1] - gm[1];
            gc[0] += p * a * a, gc[1] += p * a * b, gc[2] += p * b * b;
        }
        CHECK_ABS(I, 1.0, 1e-3, "2-D integral of q over the grid");
        for (int d = 0; d < 2; d++)
            CHECK_ABS(m[d], gm[d], 5 * sqrt(gc[2 * d] / ns), d ? "sample mean theta_1 vs grid" : "sample mean theta_0 vs grid");
        CHECK_ABS(c[0], gc[0], 5 * gc[0] * sqrt(3.0 / ns), "sample var theta_0 vs grid");
        CHECK_ABS(c[2], gc[2], 5 * gc[2] * sqrt(3.0 / ns), "sample var theta_1 vs grid");
        CHECK_ABS(c[1], gc[1], 5 * sqrt(gc[0] * gc[2] * 2.0 / ns), "sample covariance vs grid");

        /* prior box: acceptance fraction = grid mass inside the box */
        double blo[2] = {gm[0] - 0.5 * sqrt(gc[0]), gm[1] - 1.0 * sqrt(gc[2])}, bhi[2] = {gm[0] + 2 * sqrt(gc[0]), gm[1] + 0.3 * sqrt(gc[2])};
        double mass = 0;
        for (size_t k = 0; k < ng * ng; k++)
            if (th[2 * k] >= blo[0] && th[2 * k] <= bhi[0] && th[2 * k + 1] >= blo[1] && th[2 * k + 1] <= bhi[1])
                mass += exp(lq[k]) * hx * hy;
        const size_t nb = 5000;
        double *bs = malloc(sizeof(double) * 3 * nb * 2), *bs1 = malloc(sizeof(double) * 3 * nb * 2), xg[3] = {x[0], 0.5, -1.0};
        size_t acc[3], acc1[3];
        double fr[3], fr1[3];
        CHECK(sf_flow_sample(f, 3, xg, nb, 9, blo, bhi, 100 * nb, bs, NULL, acc, fr, 2) == SF_OK, "box sample (2 threads)");
        CHECK(acc[0] == nb, "box: all %zu accepted within budget", nb);
        double se = sqrt(mass * (1 - mass) / (nb / mass));
        CHECK_ABS(fr[0], mass, 5 * se + 2e-3, "acceptance fraction = mass of q in the box");
        int inbox = 1;
        for (size_t i = 0; i < 3 * nb; i++)
            for (int d = 0; d < 2; d++) inbox &= bs[2 * i + d] >= blo[d] && bs[2 * i + d] <= bhi[d];
        CHECK(inbox, "every returned draw lies in the box");
        CHECK(sf_flow_sample(f, 3, xg, nb, 9, blo, bhi, 100 * nb, bs1, NULL, acc1, fr1, 1) == SF_OK, "box sample (1 thread)");
        CHECK(!memcmp(bs, bs1, sizeof(double) * 3 * nb * 2) && !memcmp(acc, acc1, sizeof acc), "1 and 2 threads give bit-identical draws");
        CHECK(sf_flow_sample(f, 1, xg + 1, nb, 9, blo, bhi, 100 * nb, bs1, NULL, acc1, fr1, 2) == SF_OK &&
                  !memcmp(bs + 2 * nb, bs1, sizeof(double) * nb * 2) == 0,
              "galaxy 1 alone (stream 0) differs from galaxy 1 in a batch (stream 1)");
        /* budget exhausted: NaN rows, never zeros */
        double tlo[2] = {gm[0] + 3 * sqrt(gc[0]), gm[1] + 3 * sqrt(gc[2])}, thi[2] = {gm[0] + 3.5 * sqrt(gc[0]), gm[1] + 3.5 * sqrt(gc[2])};
        CHECK(sf_flow_sample(f, 1, x, 100, 4, tlo, thi, 1000, bs, NULL, acc, fr, 2) == SF_OK, "far-tail box");
        int nan_ok = 1;
        for (size_t i = acc[0]; i < 100; i++) nan_ok &= isnan(bs[2 * i]) && isnan(bs[2 * i + 1]);
        CHECK(acc[0] < 100 && nan_ok && fr[0] == acc[0] / 1000.0, "budget spent: %zu accepted, fraction %.4f, rest NaN", acc[0], fr[0]);
        free(bs); free(bs1);
        free(s); free(sl); free(th); free(xx); free(lq);
        sf_flow_free(f);
    }
    /* ---- unconditional (C = 0, x = NULL): draws and their log q ---- */
    if (family == SF_FLOW_NSF) {
        sf_flow *f = make_flow(family, 2, 0, 41);
        double s[2 * 500], sl[500], lq[500];
        size_t nacc = 0;
        CHECK(f && sf_flow_sample(f, 1, NULL, 500, 3, NULL, NULL, 0, s, sl, &nacc, NULL, 2) == SF_OK && nacc == 500,
              "C = 0: sampling with x = NULL");
        CHECK(f && sf_flow_logq(f, 500, s, NULL, lq, 1) == SF_OK, "C = 0: log q with x = NULL");
        double e = 0;
        for (int i = 0; i < 500; i++) e = fmax(e, fabs(lq[i] - sl[i]));
        CHECK(e < 1e-3, "C = 0: sample log q = log q at the samples (max diff %.2g)", e);
        sf_flow_free(f);
    }
}

int main(int argc, char **argv) { return flow_test_each_family("test_flow_norm", argc, argv, check_family); }
