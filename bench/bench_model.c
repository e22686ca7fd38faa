/*
 * bench_model — microseconds per photometry evaluation (emulator spectrum +
 * 5 bands) for batches of 1 and 1024 on 1 and 2 threads, and the sgemm
 * throughput measured in the same run, from which the compute limit follows.
 * Then, on 1 thread, batches 1 to 1024 through each of the emulator's two
 * paths, forced with sf_emulator_set_small_max: the small-batch kernel
 * (model/emu_gemm.c) and CBLAS sgemm/sgemv, interleaved repetition by
 * repetition so that load on the machine hits both alike, timed in thread
 * CPU time (less sensitive to other jobs than wall time).
 * Parameters: SEDflow prior draws, z ~ U(0.01, 0.2).
 * Usage: bench_model [data_dir]   (prints medians of 5 repetitions)
 */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "model/emulator.h"
#include "sedflow/model.h"
#include "sedflow/prior.h"
#include "sedflow/rng.h"
#include "bench_clock.h"

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median5(double *v)
{
    qsort(v, 5, sizeof(double), cmpd);
    return v[2];
}

/* Multiply-adds per evaluation: 8 MLPs (4 segments x 2 emulators) of
 * n_in x 256, 7 x (256 x 256), 256 x n_pca, plus the PCA reconstructions on
 * the kept wavelengths (96, 2109, 2113, 550 per segment). */
static double macs_per_eval(double burst_frac)
{
    const int npca_nmf[4] = {50, 50, 50, 30}, npca_b[4] = {30, 50, 50, 30}, nw[4] = {96, 2109, 2113, 550};
    double nmf = 0, burst = 0;
    for (int s = 0; s < 4; s++) {
        nmf += 9 * 256 + 7 * 256 * 256 + 256 * npca_nmf[s] + (double)npca_nmf[s] * nw[s];
        burst += 4 * 256 + 7 * 256 * 256 + 256 * npca_b[s] + (double)npca_b[s] * nw[s];
    }
    return nmf + burst_frac * burst;
}

int main(int argc, char **argv)
{
    const char *data = argc > 1 ? argv[1] : SEDFLOW_TEST_DATA;
    sf_model *m;
    if (sf_model_load(data, &m)) {
        fprintf(stderr, "bench_model: %s\n", sf_last_error());
        return 1;
    }
    const size_t N = 4096;
    double *theta = malloc(N * SF_NTHETA * sizeof(double)), *z = malloc(N * sizeof(double));
    double *flux = malloc(N * SF_NBANDS * sizeof(double));
    gsl_rng *r = sf_rng_alloc(1);
    size_t nburst = 0;
    for (size_t i = 0; i < N; i++) {
        double u[SF_NU];
        sf_prior_sample(SF_PRIOR_SEDFLOW, r, u);
        sf_u_to_theta(u, theta + i * SF_NTHETA);
        z[i] = 0.01 + 0.19 * gsl_rng_uniform(r);
        double tage;
        sf_cosmo_tage_gyr(sf_model_cosmo(m), z[i], &tage);
        nburst += theta[i * SF_NTHETA + SF_TH_TBURST] < tage && theta[i * SF_NTHETA + SF_TH_FBURST] > 0;
    }
    double bf = (double)nburst / N;

    /* sgemm throughput at the emulator's shape (1024 x 256 x 256), 1 thread */
    const int M = 1024, K = 256;
    float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * K), *C = malloc(sizeof(float) * M * K);
    for (int i = 0; i < M * K; i++) A[i] = (float)gsl_rng_uniform(r);
    for (int i = 0; i < K * K; i++) B[i] = (float)gsl_rng_uniform(r);
    double ts[5];
    for (int rep = 0; rep < 5; rep++) {
        double t0 = bench_wall_s();
        for (int k = 0; k < 20; k++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, K, K, 1.0f, A, K, B, K, 0.0f, C, K);
        ts[rep] = (bench_wall_s() - t0) / 20;
    }
    double gflops = 2.0 * M * K * K / median5(ts) / 1e9;
    double limit_us = 2.0 * macs_per_eval(bf) / (gflops * 1e9) * 1e6;

    printf("bench_model: %s, %d cores\n", data, omp_get_num_procs());
    printf("burst emulator needed for %.1f%% of prior draws; %.2f M multiply-adds per evaluation\n", 100 * bf,
           macs_per_eval(bf) / 1e6);
    printf("sgemm 1024x256x256, 1 thread: %.1f GFLOP/s  ->  compute limit %.1f us per evaluation per core\n\n",
           gflops, limit_us);
    printf("%-8s %-8s %14s %22s\n", "batch", "threads", "us/eval", "us/eval x threads");
    sf_model_work *w;
    sf_model_work_alloc(m, 1024, &w);
    const size_t sizes[2] = {1, 1024};
    for (int si = 0; si < 2; si++) {
        size_t bs = sizes[si];
        for (int nt = 1; nt <= 2; nt++) {
            size_t nrows = bs == 1 ? 256 : N; /* rows evaluated per repetition */
            for (int rep = 0; rep < 5; rep++) {
                double t0 = bench_wall_s();
                if (nt == 1) {
                    for (size_t i = 0; i < nrows; i += bs)
                        sf_model_photometry(m, w, bs, theta + i * SF_NTHETA, z + i, flux + i * SF_NBANDS, NULL);
                } else if (bs == 1) {
                    /* two threads, each evaluating single galaxies */
#pragma omp parallel num_threads(2)
                    {
                        sf_model_work *wt;
                        sf_model_work_alloc(m, 1, &wt);
#pragma omp for schedule(static)
                        for (size_t i = 0; i < nrows; i++)
                            sf_model_photometry(m, wt, 1, theta + i * SF_NTHETA, z + i, flux + i * SF_NBANDS, NULL);
                        sf_model_work_free(wt);
                    }
                } else {
                    sf_model_photometry_omp(m, nrows, theta, z, flux, 2);
                }
                ts[rep] = (bench_wall_s() - t0) / nrows * 1e6;
            }
            double us = median5(ts);
            printf("%-8zu %-8d %14.1f %22.1f\n", bs, nt, us, us * nt);
        }
    }

    /* the two emulator paths, 1 thread, same rows, interleaved repetitions */
    printf("\nemulator path by batch size, 1 thread, CPU time (default: kernel for batch <= %d)\n", SF_EMU_SMALL_MAX);
    printf("%-8s %16s %16s %10s\n", "batch", "kernel us/eval", "sgemm us/eval", "sgemm/kern");
    const size_t pb[] = {1, 2, 4, 8, 15, 32, 64, 128, 256, 1024};
    int saved = sf_emulator_small_max();
    for (size_t k = 0; k < sizeof pb / sizeof pb[0]; k++) {
        size_t bs = pb[k];
        size_t nrows = bs >= 64 ? (bs >= 1024 ? 2048 : 1024) : (240 + bs - 1) / bs * bs; /* rows per repetition */
        double tk[5], tg[5];
        for (int rep = 0; rep < 5; rep++)
            for (int path = 0; path < 2; path++) {
                sf_emulator_set_small_max(path == 0 ? 1 << 30 : 0);
                double t0 = bench_thread_cpu_s();
                for (size_t i = 0; i + bs <= nrows; i += bs)
                    sf_model_photometry(m, w, bs, theta + i * SF_NTHETA, z + i, flux + i * SF_NBANDS, NULL);
                (path == 0 ? tk : tg)[rep] = (bench_thread_cpu_s() - t0) / nrows * 1e6;
            }
        double uk = median5(tk), ug = median5(tg);
        printf("%-8zu %16.1f %16.1f %10.2f\n", bs, uk, ug, ug / uk);
    }
    sf_emulator_set_small_max(saved);
    printf("\nreference: upstream Python emulator 7.9 ms per evaluation on this machine\n");
    sf_model_work_free(w);
    sf_model_free(m);
    gsl_rng_free(r);
    free(theta); free(z); free(flux); free(A); free(B); free(C);
    return 0;
}
