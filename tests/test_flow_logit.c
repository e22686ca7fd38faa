/* The logit box map (SF_FLOW_THETA_LOGIT, flow.h), once per flow family
 * (argument "maf" or "nsf"; none runs both):
 *  - for a 1-D and a 2-D conditional flow with random non-trivial weights,
 *    the integral of q over a fine grid of the prior box is 1 within 1e-3
 *    (log q includes the map's Jacobian);
 *  - log q is -inf outside the closed box, finite on its surface, NaN for NaN;
 *  - every draw lies in the box, nothing is rejected (acceptance exactly 1),
 *    the log q returned with the draws equals log q evaluated at them, and
 *    sample means agree with the grid means of q;
 *  - a model file keeps the map and gives bit-identical log q; a version-1
 *    file (no arch/theta_map) loads as the identity map;
 *  - learning an uninformed parameter, theta ~ U(0, 1)^2 independent of x:
 *    the logit flow's held-out mean log q comes within 0.05 nats/dim of the
 *    truth (0), and beats the identity-map MAF by > 0.04 nats/dim (an
 *    affine flow fits a flat marginal badly: the cause of the u3 coverage
 *    failure of issue 5; -0.095 vs -0.011 when written);
 *  - the logit map needs a finite box: sf_flow_set_zscore refuses without. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flow/flow_impl.h"
#include "io/h5util.h"
#include "sedflow/flow.h"
#include "sedflow/rng.h"
#include "test_flow_synth.h"
#include "testutil.h"

static sf_flow *make_flow(sf_flow_family family, int D, int C, uint64_t seed, const double *lo, const double *hi,
                          double v_std)
{
    sf_flow_config cfg = {family, D, C, 3, 16, seed, SF_FLOW_THETA_LOGIT};
    sf_flow *f = NULL;
    if (sf_flow_alloc(&cfg, &f)) return NULL;
    float *p = sf_flow_params(f);
    for (size_t i = 0; i < sf_flow_n_params(f); i++) p[i] *= 1.5f; /* non-trivial density */
    /* z-scoring of v = logit(p): mean 0.4 / -0.3, std v_std / 0.6: the density
     * leans towards one edge but stays resolvable by the grid */
    double tm[2] = {0.4, -0.3}, ts[2] = {v_std, 0.6}, xm[1] = {0.2}, xs[1] = {1.5};
    sf_flow_set_prior(f, lo, hi);
    sf_flow_put_zscore(f, tm, ts, xm, xs);
    sf_flow_prepare(f);
    return f;
}

static void check_density(sf_flow_family family)
{
    /* ---- 1-D: integral, points outside / on the box ---- */
    {
        const double lo[1] = {2.0}, hi[1] = {5.0};
        sf_flow *f = make_flow(family, 1, 1, 21, lo, hi, 0.3);
        const size_t ng = 200000;
        double *th = malloc(sizeof(double) * ng), *xx = malloc(sizeof(double) * ng), *lq = malloc(sizeof(double) * ng);
        const double h = (hi[0] - lo[0]) / ng;
        for (size_t i = 0; i < ng; i++) th[i] = lo[0] + (i + 0.5) * h, xx[i] = 0.7;
        CHECK(f && sf_flow_logq(f, ng, th, xx, lq, 2) == SF_OK, "1-D grid log q");
        double integ = 0;
        for (size_t i = 0; i < ng; i++) integ += exp(lq[i]) * h;
        CHECK_ABS(integ, 1.0, 1e-3, "1-D integral of q over the box");
        double pt[5] = {lo[0] - 1e-9, hi[0] + 0.1, lo[0], hi[0], NAN}, px[5] = {0.7, 0.7, 0.7, 0.7, 0.7}, pq[5];
        CHECK(sf_flow_logq(f, 5, pt, px, pq, 1) == SF_OK, "log q at special points");
        CHECK(pq[0] == -INFINITY && pq[1] == -INFINITY, "log q = -inf outside the box (%g, %g)", pq[0], pq[1]);
        CHECK(isfinite(pq[2]) && isfinite(pq[3]), "log q finite on the box surface (%g, %g)", pq[2], pq[3]);
        CHECK(isnan(pq[4]), "log q of a NaN theta is NaN");
        free(th); free(xx); free(lq);
        sf_flow_free(f);
    }
    /* ---- 2-D: integral, grid moments vs draws, no rejection ---- */
    {
        const double lo[2] = {-1.0, 0.5}, hi[2] = {3.0, 0.7};
        sf_flow *f = make_flow(family, 2, 1, 31, lo, hi, 0.8);
        const double x[1] = {-0.4};
        const size_t ng = 1000;
        double *th = malloc(sizeof(double) * ng * ng * 2), *xx = malloc(sizeof(double) * ng * ng);
        double *lq = malloc(sizeof(double) * ng * ng);
        const double hx = (hi[0] - lo[0]) / ng, hy = (hi[1] - lo[1]) / ng;
        for (size_t i = 0; i < ng; i++)
            for (size_t j = 0; j < ng; j++) {
                th[2 * (i * ng + j)] = lo[0] + (i + 0.5) * hx;
                th[2 * (i * ng + j) + 1] = lo[1] + (j + 0.5) * hy;
                xx[i * ng + j] = x[0];
            }
        CHECK(f && sf_flow_logq(f, ng * ng, th, xx, lq, 2) == SF_OK, "2-D grid log q");
        double I = 0, gm[2] = {0, 0}, gv[2] = {0, 0};
        for (size_t k = 0; k < ng * ng; k++) {
            double p = exp(lq[k]) * hx * hy;
            I += p, gm[0] += p * th[2 * k], gm[1] += p * th[2 * k + 1];
        }
        for (size_t k = 0; k < ng * ng; k++)
            for (int d = 0; d < 2; d++) gv[d] += exp(lq[k]) * hx * hy * pow(th[2 * k + d] - gm[d], 2);
        CHECK_ABS(I, 1.0, 1e-3, "2-D integral of q over the box");

        const size_t ns = 100000;
        double *s = malloc(sizeof(double) * ns * 2), *sl = malloc(sizeof(double) * ns), *lq2 = malloc(sizeof(double) * ns);
        double *xs = malloc(sizeof(double) * ns);
        size_t nacc = 0;
        double frac = 0;
        CHECK(sf_flow_sample(f, 1, x, ns, 5, NULL, NULL, ns, s, sl, &nacc, &frac, 2) == SF_OK, "2-D sample");
        CHECK(nacc == ns && frac == 1.0, "no draw rejected with a budget of exactly n (%zu accepted, fraction %.6f)", nacc,
              frac);
        int inbox = 1;
        double m[2] = {0, 0};
        for (size_t i = 0; i < ns; i++)
            for (int d = 0; d < 2; d++) inbox &= s[2 * i + d] >= lo[d] && s[2 * i + d] <= hi[d], m[d] += s[2 * i + d];
        CHECK(inbox, "every draw lies in the box");
        for (int d = 0; d < 2; d++)
            CHECK_ABS(m[d] / ns, gm[d], 5 * sqrt(gv[d] / ns), d ? "sample mean theta_1 vs grid" : "sample mean theta_0 vs grid");
        for (size_t i = 0; i < ns; i++) xs[i] = x[0];
        CHECK(sf_flow_logq(f, ns, s, xs, lq2, 2) == SF_OK, "log q at the draws");
        double e = 0;
        for (size_t i = 0; i < ns; i++) e = fmax(e, fabs(lq2[i] - sl[i]));
        CHECK(e < 2e-3, "log q returned with the draws = log q at them (max diff %.2g): the map's Jacobian agrees", e);

        /* model file: map kept, bit-identical log q; a version-1 file is the identity */
        const char *path = "test_flow_logit_model.h5";
        sf_flow *g = NULL;
        CHECK(sf_flow_save(f, path) == SF_OK && sf_flow_load(path, &g) == SF_OK, "save and load");
        if (g) {
            CHECK(sf_flow_get_config(g)->theta_map == SF_FLOW_THETA_LOGIT, "loaded flow has the logit map");
            CHECK(sf_flow_logq(g, 1000, s, xs, sl, 1) == SF_OK && sf_flow_logq(f, 1000, s, xs, lq2, 1) == SF_OK &&
                      !memcmp(sl, lq2, 1000 * sizeof(double)),
                  "loaded flow: bit-identical log q");
            sf_flow_free(g);
            g = NULL;
        }
        hid_t fh = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
        CHECK(fh >= 0 && sf_h5_attr_set_long(fh, ".", "format_version", 1) == SF_OK &&
                  H5Adelete_by_name(fh, "arch", "theta_map", H5P_DEFAULT) >= 0,
              "rewrote the file as format version 1");
        if (fh >= 0) H5Fclose(fh);
        CHECK(sf_flow_load(path, &g) == SF_OK && g && sf_flow_get_config(g)->theta_map == SF_FLOW_THETA_IDENTITY,
              "a version-1 model file loads with the identity map");
        sf_flow_free(g);
        remove(path);
        free(s); free(sl); free(lq2); free(xs); free(th); free(xx); free(lq);
        sf_flow_free(f);
    }
    /* ---- the map needs a finite box ---- */
    {
        sf_flow_config cfg = {family, 1, 0, 1, 4, 3, SF_FLOW_THETA_LOGIT};
        sf_flow *f = NULL;
        double t[2] = {0.1, 0.2};
        CHECK(sf_flow_alloc(&cfg, &f) == SF_OK && sf_flow_set_zscore(f, 2, t, NULL) == SF_EINVAL,
              "set_zscore without a finite box: SF_EINVAL (%s)", sf_last_error());
        sf_flow_free(f);
        cfg.theta_map = (sf_flow_theta_map)7;
        CHECK(sf_flow_alloc(&cfg, &f) == SF_EINVAL && !f, "unknown theta map refused");
    }
}

/* Held-out mean log q per dimension after training on theta ~ U(0, 1)^2
 * independent of x ~ U(0, 1). */
static double uniform_fit(sf_flow_family family, sf_flow_theta_map map)
{
    const int D = 2, C = 1;
    const size_t n = 20000, n_test = 5000;
    double lo[2] = {0, 0}, hi[2] = {1, 1};
    sf_flow_data d;
    memset(&d, 0, sizeof d);
    d.n = n, d.D = D, d.C = C, d.lower = lo, d.upper = hi;
    d.theta = malloc(sizeof(double) * n * D);
    d.x = malloc(sizeof(double) * n * C);
    double *th = malloc(sizeof(double) * n_test * D), *x = malloc(sizeof(double) * n_test), *lq = malloc(sizeof(double) * n_test);
    gsl_rng *r = sf_rng_alloc(17);
    for (size_t i = 0; i < n * D; i++) d.theta[i] = gsl_rng_uniform(r);
    for (size_t i = 0; i < n; i++) d.x[i] = gsl_rng_uniform(r);
    for (size_t i = 0; i < n_test * D; i++) th[i] = gsl_rng_uniform(r);
    for (size_t i = 0; i < n_test; i++) x[i] = gsl_rng_uniform(r);
    gsl_rng_free(r);
    sf_flow_config cfg = {family, D, C, 2, 16, 5, map};
    sf_flow *f = NULL;
    sf_flow_trainer *t = NULL;
    sf_flow_train_config tc;
    sf_flow_train_config_default(&tc);
    tc.batch = 200, tc.lr = 3e-3, tc.nthreads = 2;
    double mean = NAN;
    if (sf_flow_alloc(&cfg, &f) == SF_OK && sf_flow_trainer_alloc(f, &d, &tc, &t) == SF_OK &&
        synth_run_epochs(t, 12) == SF_OK) {
        sf_flow_trainer_finish(t);
        if (sf_flow_logq(f, n_test, th, x, lq, 2) == SF_OK) {
            mean = 0;
            for (size_t i = 0; i < n_test; i++) mean += lq[i];
            mean /= (double)n_test * D;
        }
    }
    sf_flow_trainer_free(t);
    sf_flow_free(f);
    free(d.theta); free(d.x); free(th); free(x); free(lq);
    return mean;
}

static void check_family(sf_flow_family family)
{
    check_density(family);
    double lq_logit = uniform_fit(family, SF_FLOW_THETA_LOGIT);
    CHECK(lq_logit > -0.05 && lq_logit < 0.02,
          "uniform truth, logit map: held-out mean log q %.4f nats/dim, within 0.05 of the truth 0", lq_logit);
    if (family == SF_FLOW_MAF) {
        double lq_id = uniform_fit(family, SF_FLOW_THETA_IDENTITY);
        CHECK(lq_logit - lq_id > 0.04, "uniform truth, identity map: %.4f nats/dim, %.4f below the logit map", lq_id,
              lq_logit - lq_id);
    }
}

int main(int argc, char **argv) { return flow_test_each_family("test_flow_logit", argc, argv, check_family); }
