/* The machine's floor for flow sampling (issue 4 "Performance"): the
 * measured single-precision FMA throughput of one core and of T threads
 * (12 independent 8-lane FMA chains per thread, enough to cover the FMA
 * latency), and what it implies for 10,000 MAF draws: the multiply-adds of
 * the fast inverse (each hidden unit computed once, hidden units ordered by
 * degree, so only the unmasked block-triangular part counts) divided by the
 * larger of the two measured rates (on a loaded machine T threads can
 * measure below one).  A sampler on T threads cannot beat these times; tanh,
 * softplus and the per-draw bookkeeping come on top.
 *
 *   build/bench/bench_peak [--threads T (default: OpenMP's)] [--seconds S (default 1)]
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_clock.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

#define FMA12(m, c)                                                                                       \
    a0 = _mm256_fmadd_ps(a0, m, c), a1 = _mm256_fmadd_ps(a1, m, c), a2 = _mm256_fmadd_ps(a2, m, c),       \
    a3 = _mm256_fmadd_ps(a3, m, c), a4 = _mm256_fmadd_ps(a4, m, c), a5 = _mm256_fmadd_ps(a5, m, c),       \
    a6 = _mm256_fmadd_ps(a6, m, c), a7 = _mm256_fmadd_ps(a7, m, c), a8 = _mm256_fmadd_ps(a8, m, c),       \
    a9 = _mm256_fmadd_ps(a9, m, c), a10 = _mm256_fmadd_ps(a10, m, c), a11 = _mm256_fmadd_ps(a11, m, c)

/* n iterations of 12 x 8 multiply-adds; returns a value that depends on all
 * chains (distinct start values: the compiler cannot merge them). */
static float fma_loop(long n, float seed)
{
    __m256 a0 = _mm256_set1_ps(seed), a1 = _mm256_set1_ps(seed + 0.01f), a2 = _mm256_set1_ps(seed + 0.02f),
           a3 = _mm256_set1_ps(seed + 0.03f), a4 = _mm256_set1_ps(seed + 0.04f), a5 = _mm256_set1_ps(seed + 0.05f),
           a6 = _mm256_set1_ps(seed + 0.06f), a7 = _mm256_set1_ps(seed + 0.07f), a8 = _mm256_set1_ps(seed + 0.08f),
           a9 = _mm256_set1_ps(seed + 0.09f), a10 = _mm256_set1_ps(seed + 0.10f), a11 = _mm256_set1_ps(seed + 0.11f);
    const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    for (long k = 0; k < n; k++) FMA12(m, c);
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                             _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
    float b[8];
    _mm256_storeu_ps(b, s);
    return b[0];
}

/* Multiply-adds per draw per MADE in the fast inverse, for D inputs (= D
 * context features) and H hidden units with degrees cycling 1..D-1: input
 * layer (unit of degree g sees g inputs), two hidden layers (a unit of degree
 * g sees the units of degree <= g), output d (2 numbers) sees the units of
 * degree < d.  The context term is per galaxy, not per draw. */
static double made_macs(int D, int H)
{
    long n[1024] = {0}, le = 0, m0 = 0, m1 = 0, mo = 0;
    for (int i = 0; i < H; i++) n[i % (D - 1) + 1]++;
    for (int g = 1; g < D; g++) {
        le += n[g];
        m0 += n[g] * g;
        m1 += n[g] * le; /* units of degree g see le = count of degree <= g */
        mo += 2 * le;    /* output g + 1 (1-based) sees degree <= g */
    }
    return (double)(m0 + 2 * m1 + mo);
}

int main(int argc, char **argv)
{
    int nt = omp_get_max_threads();
    double seconds = 1;
    for (int i = 1; i < argc; i += 2) {
        if (i + 1 < argc && !strcmp(argv[i], "--threads")) nt = atoi(argv[i + 1]);
        else if (i + 1 < argc && !strcmp(argv[i], "--seconds")) seconds = atof(argv[i + 1]);
        else {
            fprintf(stderr, "usage: bench_peak [--threads T] [--seconds S]\n");
            return 2;
        }
    }
    if (nt < 1 || !(seconds > 0)) {
        fprintf(stderr, "bench_peak: --threads must be >= 1 and --seconds > 0\n");
        return 2;
    }
    const long n = 20000000; /* 1.92 G multiply-adds per call */
    double rate[2] = {0, 0};
    float sink = 0;
    for (int k = 0; k < 2; k++) {
        const int t = k ? nt : 1;
        double t_end = bench_wall_s() + seconds;
        do { /* best of repeated runs: the shared machine's other load only slows a run */
            double t0 = bench_wall_s();
#pragma omp parallel num_threads(t) reduction(+ : sink)
            sink += fma_loop(n, 0.1f + 0.001f * omp_get_thread_num());
            double r = (double)t * n * 96 / (bench_wall_s() - t0);
            if (r > rate[k]) rate[k] = r;
        } while (bench_wall_s() < t_end);
    }
    printf("# bench_peak: AVX2 FMA throughput (best over %.1f s; checksum %g)\n", seconds, (double)sink);
    printf("FMA peak, 1 thread:  %6.1f GMAC/s\n", rate[0] / 1e9);
    printf("FMA peak, %d threads: %6.1f GMAC/s\n", nt, rate[1] / 1e9);
    const struct { int K, H; const char *what; } nets[] = {{15, 500, "SEDflow MAF 15 x 500"},
                                                            {6, 128, "default MAF 6 x 128"},
                                                            {6, 96, "MAF 6 x 96"},
                                                            {8, 64, "fast MAF 8 x 64"}};
    const double peak = rate[1] > rate[0] ? rate[1] : rate[0];
    for (size_t i = 0; i < sizeof nets / sizeof nets[0]; i++) {
        const double macs = 1e4 * nets[i].K * made_macs(11, nets[i].H);
        printf("%-22s 10,000 draws: %6.2f G multiply-adds, at %.1f GMAC/s >= %7.1f ms\n", nets[i].what, macs / 1e9,
               peak / 1e9, 1e3 * macs / peak);
    }
    return 0;
}
#else
int main(void)
{
    printf("# bench_peak: needs AVX2 and FMA (build with -march=native on such a machine)\n");
    return 0;
}
#endif
