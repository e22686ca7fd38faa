/* Flow benchmarks (issue 4 "Performance"): training throughput for batch
 * 50 and 512, evaluation throughput of log q, and time to draw 10,000
 * samples for one galaxy and per galaxy in a batch, at D = C = 11, for
 * either flow family:
 *   maf (default): SEDflow's configuration, K=15 blocks, H=500, 20 galaxies;
 *   nsf: the conditional rational-quadratic spline flow, K=8 coupling
 *        layers, H=128, 8 bins, tail bound 3, 100 galaxies (the reason for
 *        this family: one closed-form inverse per coupling layer).
 * Wall and per-CPU-second rates (the machine is shared).  Usage:
 *   bench_flow [--flow maf|nsf] [--threads T] [--blocks K] [--hidden H] [--bins N] [--tail B]
 *              [--seconds S] [--galaxies G] [--nsamp N] [--theta-map identity|logit]
 *              [--batch B]  (B: train at this batch only; default both 50 and 512)
 *              [--train-only 1]  (stop after the training figures: for profiling)
 *              [--model PATH]  (time sampling only, with this trained model file,
 *                               e.g. models/sedflow_default.h5: x = its training
 *                               mean of x + N(0, 0.1^2) standard deviations)
 * (--bins and --tail: NSF only.)  Weights are the random initialisation:
 * timings do not depend on them (no data-dependent branches), except the
 * rejection rate, which is off here (identity map: a box of +-1e9; logit
 * map: the box [0, 1] of the uniform training rows, never left). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "sedflow/flow.h"
#include "sedflow/rng.h"
#include "bench_clock.h"

static void train_rate(sf_flow *f, sf_flow_data *d, size_t batch, int nt, double seconds)
{
    sf_flow_train_config tc;
    sf_flow_train_config_default(&tc);
    tc.batch = batch;
    tc.nthreads = nt;
    sf_flow_trainer *t = NULL;
    if (sf_flow_trainer_alloc(f, d, &tc, &t)) {
        printf("trainer: %s\n", sf_last_error());
        return;
    }
    int more = 1;
    for (int i = 0; i < 3 && more; i++) sf_flow_trainer_step(t, &more); /* warm-up */
    size_t rows = 0;
    double t0 = bench_wall_s(), c0 = bench_process_cpu_s();
    while (bench_wall_s() - t0 < seconds) {
        if (!more) {
            sf_flow_trainer_epoch_end(t, NULL, NULL);
            more = 1;
        }
        sf_flow_trainer_step(t, &more);
        rows += batch;
    }
    double dt = bench_wall_s() - t0, dc = bench_process_cpu_s() - c0;
    printf("train  batch %4zu  threads %d: %8.0f samples/s wall, %8.0f per CPU-second  (%zu rows in %.1f s)\n", batch, nt,
           rows / dt, rows / dc, rows, dt);
    sf_flow_trainer_free(t);
}

/* 10,000-draw timings: one galaxy (x row 0, best of 3), then G galaxies at once. */
static void sample_rate(const sf_flow *f, const double *x, size_t nsamp, int G, int nt)
{
    const int D = sf_flow_get_config(f)->D;
    double *s = malloc(sizeof(double) * nsamp * D * (G > 0 ? G : 1));
    size_t acc[1];
    double tb = 1e30, cb = 1e30, t0, c0, dt, dc;
    for (int rep = 0; rep < 3; rep++) {
        t0 = bench_wall_s(), c0 = bench_process_cpu_s();
        sf_flow_sample(f, 1, x, nsamp, 7, NULL, NULL, 0, s, NULL, acc, NULL, nt);
        dt = bench_wall_s() - t0, dc = bench_process_cpu_s() - c0;
        if (dt < tb) tb = dt;
        if (dc < cb) cb = dc;
    }
    printf("sample %zu draws, 1 galaxy,  threads %d: %.4f s wall (best of 3), %.4f CPU-s\n", nsamp, nt, tb, cb);
    if (G > 0) {
        size_t *ga = malloc(sizeof(size_t) * G);
        t0 = bench_wall_s(), c0 = bench_process_cpu_s();
        sf_flow_sample(f, (size_t)G, x, nsamp, 7, NULL, NULL, 0, s, NULL, ga, NULL, nt);
        dt = bench_wall_s() - t0, dc = bench_process_cpu_s() - c0;
        printf("sample %zu draws, %d galaxies, threads %d: %.4f s per galaxy wall, %.4f CPU-s per galaxy (%.1f s total)\n",
               nsamp, G, nt, dt / G, dc / G, dt);
        free(ga);
    }
    free(s);
}

/* --model: sampling timings of a trained model file (its own prior box). */
static int bench_model_sampling(const char *path, int nt, int G, size_t nsamp)
{
    sf_flow *f = NULL;
    if (sf_flow_load(path, &f)) {
        printf("load: %s\n", sf_last_error());
        return 1;
    }
    const sf_flow_config *cfg = sf_flow_get_config(f);
    const int C = cfg->C;
    printf("# bench_flow: %s, %s K=%d H=%d D=%d C=%d, %zu parameters, %d threads\n", path,
           cfg->family == SF_FLOW_NSF ? "NSF" : "MAF", cfg->K, cfg->H, cfg->D, C, sf_flow_n_params(f), nt);
    double *tm = malloc(sizeof(double) * cfg->D * 2), *xm = malloc(sizeof(double) * C * 2);
    double *x = malloc(sizeof(double) * (size_t)C * (G > 0 ? G : 1));
    sf_flow_get_zscore(f, tm, tm + cfg->D, xm, xm + C);
    gsl_rng *r = sf_rng_alloc(5);
    for (int g = 0; g < (G > 0 ? G : 1); g++)
        for (int i = 0; i < C; i++) x[(size_t)g * C + i] = xm[i] + 0.1 * xm[C + i] * gsl_ran_gaussian(r, 1.0);
    gsl_rng_free(r);
    sample_rate(f, x, nsamp, G, nt);
    free(tm), free(xm), free(x);
    sf_flow_free(f);
    return 0;
}

int main(int argc, char **argv)
{
    const char *flow = "maf", *model = NULL;
    int nt = 2, K = 0, H = 0, G = -1, bins = 8; /* K, H, G: 0 / -1 = the family's default */
    int logit = 0, train_only = 0;
    double seconds = 10, tail = 3.0;
    size_t nsamp = 10000, batch = 0; /* batch 0: both 50 and 512 */
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--flow")) flow = argv[i + 1];
        else if (!strcmp(argv[i], "--threads")) nt = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--blocks")) K = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--hidden")) H = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seconds")) seconds = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--galaxies")) G = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--nsamp")) nsamp = (size_t)atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--bins")) bins = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--tail")) tail = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--theta-map")) logit = !strcmp(argv[i + 1], "logit");
        else if (!strcmp(argv[i], "--batch")) batch = (size_t)atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--train-only")) train_only = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--model")) model = argv[i + 1];
    }
    if (model) return bench_model_sampling(model, nt, G < 0 ? 40 : G, nsamp);
    const int nsf = !strcmp(flow, "nsf");
    if (!nsf && strcmp(flow, "maf")) {
        printf("--flow '%s' unknown (available: maf, nsf)\n", flow);
        return 1;
    }
    if (K <= 0) K = nsf ? 8 : 15;
    if (H <= 0) H = nsf ? 128 : 500;
    if (G < 0) G = nsf ? 100 : 20;
    const int D = 11, C = 11;
    sf_flow_config cfg = {nsf ? SF_FLOW_NSF : SF_FLOW_MAF, D, C, K, H, 1,
                          logit ? SF_FLOW_THETA_LOGIT : SF_FLOW_THETA_IDENTITY};
    sf_flow_nsf_config nc = {bins, tail};
    sf_flow *f = NULL;
    if (nsf ? sf_flow_alloc_nsf(&cfg, &nc, &f) : sf_flow_alloc(&cfg, &f)) {
        printf("alloc: %s\n", sf_last_error());
        return 1;
    }
    if (nsf)
        printf("# bench_flow: NSF K=%d H=%d bins=%d tail %g D=%d C=%d, %zu parameters, %d threads\n", K, H, bins, tail, D,
               C, sf_flow_n_params(f), nt);
    else
        printf("# bench_flow: MAF K=%d H=%d D=%d C=%d, %zu parameters, %d threads, theta map %s\n", K, H, D, C,
               sf_flow_n_params(f), nt, logit ? "logit" : "identity");
    const size_t n = 20000;
    sf_flow_data d;
    memset(&d, 0, sizeof d);
    d.n = n, d.D = D, d.C = C;
    d.theta = malloc(sizeof(double) * n * D);
    d.x = malloc(sizeof(double) * n * C);
    double lo[11], hi[11];
    for (int i = 0; i < D; i++) lo[i] = logit ? 0 : -1e9, hi[i] = logit ? 1 : 1e9;
    d.lower = lo, d.upper = hi;
    gsl_rng *r = sf_rng_alloc(5);
    for (size_t i = 0; i < n * D; i++) d.theta[i] = gsl_rng_uniform(r);
    for (size_t i = 0; i < n * C; i++) d.x[i] = 20 + gsl_rng_uniform(r);
    gsl_rng_free(r);

    if (batch == 0 || batch == 50) train_rate(f, &d, 50, nt, seconds);
    if (batch == 0 || batch == 512) train_rate(f, &d, 512, nt, seconds);
    if (batch != 0 && batch != 50 && batch != 512) train_rate(f, &d, batch, nt, seconds);
    if (train_only) {
        free(d.theta), free(d.x);
        sf_flow_free(f);
        return 0;
    }
    sf_flow_prepare(f);

    /* log q evaluation throughput */
    double *lq = malloc(sizeof(double) * n);
    double t0 = bench_wall_s(), c0 = bench_process_cpu_s();
    sf_flow_logq(f, n, d.theta, d.x, lq, nt);
    double dt = bench_wall_s() - t0, dc = bench_process_cpu_s() - c0;
    printf("logq   eval  threads %d: %8.0f rows/s wall, %8.0f per CPU-second\n", nt, n / dt, n / dc);

    sample_rate(f, d.x, nsamp, G, nt);
    free(lq); free(d.theta); free(d.x);
    sf_flow_free(f);
    return 0;
}
