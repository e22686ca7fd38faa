/* bench_sedpost: cost of the SED posterior for MCMC and of validation.
 *  1. forward-model photometry per call vs batch size (what the lockstep
 *     slice sampler's small batches cost), wall and thread CPU time, through
 *     the default emulator path and with sgemm forced (the path before the
 *     small-batch kernel, model/emu_gemm.c);
 *  2. MCMC per galaxy at the paper's settings (30 walkers x 10,000
 *     iterations), extrapolated from a short run: one galaxy alone, and 16
 *     galaxies pooled (sf_sedpost_mcmc_many);
 *  3. validation of 1,000 test galaxies x 10,000 samples, extrapolated from
 *     a few galaxies: flow sampling (SEDflow-size MAF, 15 x 500, untrained
 *     weights, no box rejection: the cost per draw does not depend on the
 *     values; a trained flow rejects few draws), derived properties,
 *     SBC ranks.
 * Usage: bench_sedpost [iterations (default 40)] [threads (default 2)] [sections (default 123)]
 *   e.g. `bench_sedpost 40 2 12` skips the validation part. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "model/emulator.h"
#include "sedflow/calib.h"
#include "sedflow/flow.h"
#include "sedflow/rng.h"
#include "sedflow/sedpost.h"
#include "bench_clock.h"

static double cpu(void)
{
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return r.ru_utime.tv_sec + r.ru_stime.tv_sec + 1e-6 * (r.ru_utime.tv_usec + r.ru_stime.tv_usec);
}

int main(int argc, char **argv)
{
    long iters = argc > 1 ? atol(argv[1]) : 40;
    int nth = argc > 2 ? atoi(argv[2]) : 2;
    const char *sections = argc > 3 ? argv[3] : "123";
    sf_model *m = NULL;
    if (sf_model_load(getenv("SEDFLOW_DATA") ? getenv("SEDFLOW_DATA") : SEDFLOW_TEST_DATA, &m)) {
        fprintf(stderr, "bench_sedpost: %s\n", sf_last_error());
        return 1;
    }
    gsl_rng *r = sf_rng_alloc(1);
    enum { NB = 256 };
    static double u[NB * SF_NU], th[NB * SF_NTHETA], z[NB], f[NB * SF_NBANDS];
    for (int i = 0; i < NB; i++) {
        sf_prior_sample(SF_PRIOR_SEDFLOW, r, u + i * SF_NU);
        sf_u_to_theta(u + i * SF_NU, th + i * SF_NTHETA);
        z[i] = 0.02 + 0.15 * gsl_rng_uniform(r);
    }
    sf_model_work *w = NULL;
    sf_model_work_alloc(m, NB, &w);
    if (strchr(sections, '1')) {
        printf("# 1. forward model, one thread: time per call vs batch size (default path: kernel for batch <= %d)\n"
               "%6s %12s %12s %16s %16s\n",
               sf_emulator_small_max(), "batch", "ms/call", "ms/point", "CPU ms/point", "sgemm CPU ms/pt");
        int bs[] = {1, 2, 4, 8, 12, 16, 30, 64, 256};
        for (size_t k = 0; k < sizeof bs / sizeof bs[0]; k++) {
            int n = bs[k], reps = 600 / n + 3;
            double t0 = bench_wall_s(), c0 = bench_thread_cpu_s();
            for (int j = 0; j < reps; j++) sf_model_photometry(m, w, (size_t)n, th, z, f, NULL);
            double dt = (bench_wall_s() - t0) / reps, dc = (bench_thread_cpu_s() - c0) / reps;
            int saved = sf_emulator_set_small_max(0);
            c0 = bench_thread_cpu_s();
            for (int j = 0; j < reps; j++) sf_model_photometry(m, w, (size_t)n, th, z, f, NULL);
            double dg = (bench_thread_cpu_s() - c0) / reps;
            sf_emulator_set_small_max(saved);
            printf("%6d %12.3f %12.3f %16.3f %16.3f\n", n, dt * 1e3, dt * 1e3 / n, dc * 1e3 / n, dg * 1e3 / n);
        }
    }
    sf_model_work_free(w);

    if (!strchr(sections, '2')) goto validation;
    /* 2. MCMC */
    double flux[16 * SF_NBANDS], ivar[16 * SF_NBANDS], zg[16];
    for (int g = 0; g < 16; g++) {
        zg[g] = z[g];
        sf_model_photometry_omp(m, 1, th + g * SF_NTHETA, &zg[g], flux + g * SF_NBANDS, 1);
        for (int b = 0; b < SF_NBANDS; b++) {
            double s = 0.03 * flux[g * SF_NBANDS + b] + 1e-3; /* ~3% errors */
            ivar[g * SF_NBANDS + b] = 1 / (s * s);
        }
    }
    sf_sedpost_opts o;
    sf_sedpost_opts_default(&o);
    o.mcmc.nwalkers = 30;
    o.mcmc.nburn = (size_t)iters / 2;
    o.mcmc.niter = (size_t)iters - (size_t)iters / 2;
    printf("\n# 2. MCMC, ensemble slice sampler (differential), 30 walkers, %ld iterations from prior draws,\n"
           "#    extrapolated to the paper's 10,000 iterations (per galaxy)\n",
           iters);
    sf_mcmc_chain *c = NULL;
    sf_sedpost_diag d;
    double t0 = bench_wall_s(), c0 = cpu();
    sf_status st = sf_sedpost_mcmc(m, flux, ivar, zg[0], &o, NULL, &c, &d);
    double dt = bench_wall_s() - t0, dc = cpu() - c0;
    if (st) {
        fprintf(stderr, "bench_sedpost: %s\n", sf_last_error());
        return 1;
    }
    double ev = (double)d.info.neval / (30.0 * (double)iters);
    printf("one galaxy:       %.2f evaluations per walker-step, %.3f ms per evaluation (wall), %.3f ms (CPU)\n"
           "                  -> %.1f min wall, %.1f CPU min per galaxy at 30 x 10,000\n",
           ev, dt * 1e3 / (double)d.info.neval, dc * 1e3 / (double)d.info.neval, dt / (double)iters * 1e4 / 60,
           dc / (double)iters * 1e4 / 60);
    sf_mcmc_chain_free(c);
    sf_sedpost_galaxy gal[16];
    sf_mcmc_chain *ch[16];
    sf_sedpost_diag dg[16];
    sf_status sg[16];
    for (int g = 0; g < 16; g++) gal[g] = (sf_sedpost_galaxy){flux + g * SF_NBANDS, ivar + g * SF_NBANDS, zg[g], NULL, (uint64_t)(g + 1)};
    t0 = bench_wall_s(), c0 = cpu();
    st = sf_sedpost_mcmc_many(m, 16, gal, &o, 16, nth, ch, dg, sg);
    dt = bench_wall_s() - t0, dc = cpu() - c0;
    unsigned long long ne = 0;
    for (int g = 0; g < 16; g++) ne += sg[g] ? 0 : dg[g].info.neval, sf_mcmc_chain_free(ch[g]);
    printf("16 pooled, %d thr: %.3f ms per evaluation (wall), %.3f ms (CPU)\n"
           "                  -> %.1f min wall, %.1f CPU min per galaxy at 30 x 10,000\n",
           nth, dt * 1e3 / (double)ne, dc * 1e3 / (double)ne, dt / 16 / (double)iters * 1e4 / 60,
           dc / 16 / (double)iters * 1e4 / 60);

validation:
    if (!strchr(sections, '3')) {
        gsl_rng_free(r);
        sf_model_free(m);
        return 0;
    }
    /* 3. validation */
    printf("\n# 3. validation, extrapolated to 1,000 galaxies x 10,000 samples x 14 quantities, %d threads\n", nth);
    sf_flow_config fc = {.family = SF_FLOW_MAF, .D = SF_NU, .C = 11, .K = 15, .H = 500, .seed = 1};
    sf_flow *fl = NULL;
    if (sf_flow_alloc(&fc, &fl)) {
        fprintf(stderr, "bench_sedpost: %s\n", sf_last_error());
        return 1;
    }
    double xz[NB * 11];
    for (int i = 0; i < NB; i++)
        for (int k = 0; k < 11; k++) xz[i * 11 + k] = k < 5 ? 16 + gsl_rng_uniform(r) : (k < 10 ? 0.05 : 0.1);
    sf_flow_set_zscore(fl, NB, u, xz);
    sf_flow_set_prior(fl, sf_prior_lower, sf_prior_upper);
    sf_flow_prepare(fl);
    const size_t L = 10000, G = 2;
    double *s = malloc(sizeof(double) * L * SF_NU), *q = malloc(sizeof(double) * L * SF_SEDPOST_NQ);
    long *rank = malloc(sizeof(long) * 100 * SF_SEDPOST_NQ);
    double *pit = malloc(sizeof(double) * 100 * SF_SEDPOST_NQ), *big = malloc(sizeof(double) * 100 * L * SF_SEDPOST_NQ);
    double t_flow = 0, t_der = 0;
    for (size_t g = 0; g < G; g++) {
        t0 = bench_wall_s();
        size_t nacc = 0;
        double lo[SF_NU], hi[SF_NU]; /* no rejection: an untrained flow leaks out of the prior box */
        for (int k = 0; k < SF_NU; k++) lo[k] = -1e300, hi[k] = 1e300;
        sf_flow_sample(fl, 1, xz, L, g, lo, hi, 0, s, NULL, &nacc, NULL, nth);
        for (size_t i = 0; i < L; i++)
            if (!sf_prior_in_box(s + i * SF_NU)) memcpy(s + i * SF_NU, u, sizeof(double) * SF_NU);
        t_flow += bench_wall_s() - t0;
        t0 = bench_wall_s();
        size_t nch = (L + 255) / 256;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nth)
        for (size_t k = 0; k < nch; k++) {
            size_t i0 = k * 256, kk = L - i0 < 256 ? L - i0 : 256;
            sf_sedpost_quantities(m, kk, s + i0 * SF_NU, 0.05, q + i0 * SF_SEDPOST_NQ);
        }
        t_der += bench_wall_s() - t0;
    }
    for (size_t g = 0; g < 100; g++) memcpy(big + g * L * SF_SEDPOST_NQ, q, sizeof(double) * L * SF_SEDPOST_NQ);
    t0 = bench_wall_s();
    sf_calib_ranks(big, q, 100, L, SF_SEDPOST_NQ, 1, 0, rank, pit);
    double t_rank = (bench_wall_s() - t0) * 10;
    printf("flow sampling     %.2f s per galaxy -> %.1f min for 1,000\n", t_flow / G, t_flow / G * 1000 / 60);
    printf("derived (3)       %.3f s per galaxy -> %.1f min for 1,000\n", t_der / G, t_der / G * 1000 / 60);
    printf("SBC ranks         %.2f s for 1,000 (measured on 100)\n", t_rank);
    printf("total             %.1f min for 1,000 galaxies x 10,000 samples (goal <= 2 min)\n",
           (t_flow / G * 1000 + t_der / G * 1000 + t_rank) / 60);
    free(s), free(q), free(rank), free(pit), free(big);
    sf_flow_free(fl);
    gsl_rng_free(r);
    sf_model_free(m);
    return 0;
}
