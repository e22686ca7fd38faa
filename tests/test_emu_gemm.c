/*
 * The emulator's small-batch dense kernel (model/emu_gemm.c):
 *  1. y = b + x W against a double-precision reference for n = 1..33 rows
 *     and the emulator's widths (wi = 4, 9, 50, 256; wo = 30, 50, 256, 2109)
 *     plus odd ones, with row strides wider than the rows: error relative to
 *     |b| + sum |x W| <= 1e-6, nothing written outside the n x wo block, and
 *     every row bit-identical to the same row evaluated alone (n = 1);
 *  2. the model API: photometry of 15 prior draws per call (kernel) equals
 *     the same draws in one batch of 1024 (sgemm) to 2e-5 relative, n = 1
 *     through the kernel equals n = 1 through sgemv likewise and the same
 *     rows at n = 15 bit for bit; raw NMF emulator ln L at batch 15 equals
 *     batch 64 (sgemm) to 1e-4 (MODEL.md's golden tolerance).  2e-5 is the
 *     float32 noise floor of the 9-layer networks, not a kernel error: the
 *     old paths differ as much among themselves (measured on 1024 draws:
 *     sgemv at n = 1 vs sgemm at n = 1024 6.7e-6, sgemm n = 16 vs 1024
 *     5.4e-6; kernel vs sgemm 5.6e-6; ln L kernel vs sgemm 2.3e-5);
 *  3. the 300 golden cases (MODEL.md s6 tolerances) computed 15 per call.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/emu_gemm.h"
#include "model/emulator.h"
#include "sedflow/model.h"
#include "sedflow/prior.h"
#include "sedflow/rng.h"
#include "testutil.h"

#define SENTINEL -7777.0f

static void test_kernel_shape(gsl_rng *r, int wi, int wo)
{
    const size_t nmax = 33, ldx = (size_t)wi + 3, ldy = (size_t)wo + 5;
    float *W = malloc(sizeof(float) * (size_t)wi * (size_t)wo), *b = malloc(sizeof(float) * (size_t)wo);
    float *x = malloc(sizeof(float) * nmax * ldx), *y = malloc(sizeof(float) * nmax * ldy);
    float *y1 = malloc(sizeof(float) * ldy);
    for (size_t i = 0; i < (size_t)wi * (size_t)wo; i++) W[i] = (float)(gsl_rng_uniform(r) - 0.5);
    for (int j = 0; j < wo; j++) b[j] = (float)(gsl_rng_uniform(r) - 0.5);
    for (size_t i = 0; i < nmax * ldx; i++) x[i] = (float)(4 * gsl_rng_uniform(r) - 2);
    sf_emu_dense d;
    sf_status st = sf_emu_dense_pack(&d, wi, wo, W, (size_t)wo, b);
    CHECK(st == SF_OK && d.npanel == (wo + SF_EMU_PANEL - 1) / SF_EMU_PANEL, "pack %d x %d", wi, wo);
    if (st) goto done;
    double worst = 0;
    int outside = 0, rowdiff = 0;
    for (size_t n = 1; n <= nmax; n++) {
        for (size_t i = 0; i < nmax * ldy; i++) y[i] = SENTINEL;
        sf_emu_dense_eval(&d, n, x, ldx, y, ldy, &d);
        for (size_t r0 = 0; r0 < nmax; r0++)
            for (size_t j = 0; j < ldy; j++) {
                float v = y[r0 * ldy + j];
                if (r0 >= n || j >= (size_t)wo) {
                    outside += v != SENTINEL;
                    continue;
                }
                double ref = b[j], mag = fabs((double)b[j]);
                for (int i = 0; i < wi; i++) {
                    double t = (double)x[r0 * ldx + (size_t)i] * (double)W[(size_t)i * (size_t)wo + j];
                    ref += t;
                    mag += fabs(t);
                }
                double e = fabs((double)v - ref) / mag;
                worst = e > worst ? e : worst;
            }
        for (size_t r0 = 0; r0 < n; r0++) {
            sf_emu_dense_eval(&d, 1, x + r0 * ldx, ldx, y1, ldy, NULL);
            rowdiff += memcmp(y1, y + r0 * ldy, sizeof(float) * (size_t)wo) != 0;
        }
    }
    CHECK(worst <= 1e-6, "wi %d, wo %d, n = 1..33: max error / (|b| + sum |x W|) = %.3g <= 1e-6", wi, wo, worst);
    CHECK(outside == 0, "wi %d, wo %d: nothing written outside the n x wo block (%d values)", wi, wo, outside);
    CHECK(rowdiff == 0, "wi %d, wo %d: every row bit-identical to the row alone (%d rows differ)", wi, wo, rowdiff);
done:
    sf_emu_dense_free(&d);
    sf_emu_dense_free(&d); /* freeing twice is harmless */
    free(W), free(b), free(x), free(y), free(y1);
}

static void test_kernel(void)
{
    gsl_rng *r = sf_rng_alloc(7);
    const int shapes[][2] = {{4, 256}, {9, 256}, {256, 256}, {256, 50}, {256, 30}, {50, 2109}, {30, 550},
                             {1, 1},   {3, 17},  {17, 8},    {13, 33},  {255, 47}, {7, 64}};
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) test_kernel_shape(r, shapes[k][0], shapes[k][1]);
    sf_emu_dense d;
    CHECK(sf_emu_dense_pack(&d, 0, 5, NULL, 5, NULL) == SF_EINVAL && d.w == NULL, "pack rejects wi = 0");
    sf_emu_dense_free(NULL);
    gsl_rng_free(r);
}

/* Prior draws with z ~ U(0.01, 0.2); about half need the burst emulator. */
static void draws(gsl_rng *r, size_t n, double *theta, double *z)
{
    for (size_t i = 0; i < n; i++) {
        double u[SF_NU];
        sf_prior_sample(SF_PRIOR_SEDFLOW, r, u);
        sf_u_to_theta(u, theta + i * SF_NTHETA);
        z[i] = 0.01 + 0.19 * gsl_rng_uniform(r);
    }
}

static double max_rel(const double *a, const double *b, size_t n)
{
    double w = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs(a[i] - b[i]) / fabs(b[i]);
        if (!isfinite(e)) return INFINITY;
        w = e > w ? e : w;
    }
    return w;
}

static void test_model_batches(const sf_model *m)
{
    const size_t N = 1024, B = 15;
    gsl_rng *r = sf_rng_alloc(11);
    double *theta = malloc(sizeof(double) * N * SF_NTHETA), *z = malloc(sizeof(double) * N);
    double *fbig = malloc(sizeof(double) * N * SF_NBANDS), *fsmall = malloc(sizeof(double) * N * SF_NBANDS);
    double *f1 = malloc(sizeof(double) * 30 * SF_NBANDS), *f1g = malloc(sizeof(double) * 30 * SF_NBANDS);
    draws(r, N, theta, z);
    sf_model_work *w = NULL;
    sf_status st = sf_model_work_alloc(m, N, &w);
    CHECK(st == SF_OK, "model workspace of %zu rows", N);
    if (st) goto done;
    CHECK(SF_EMU_SMALL_MAX < (int)N && sf_emulator_small_max() == SF_EMU_SMALL_MAX && (int)B <= SF_EMU_SMALL_MAX,
          "batch %zu uses sgemm, batch %zu the kernel (crossover %d)", N, B, SF_EMU_SMALL_MAX);
    st = sf_model_photometry(m, w, N, theta, z, fbig, NULL);
    for (size_t i0 = 0; !st && i0 < N; i0 += B) {
        size_t c = N - i0 < B ? N - i0 : B;
        st = sf_model_photometry(m, w, c, theta + i0 * SF_NTHETA, z + i0, fsmall + i0 * SF_NBANDS, NULL);
    }
    double e = max_rel(fsmall, fbig, N * SF_NBANDS);
    CHECK(st == SF_OK && e <= 2e-5, "photometry, 1024 draws in calls of 15 (kernel) vs one call of 1024 (sgemm): "
          "max relative difference %.3g <= 2e-5", e);
    /* n = 1: the kernel vs sgemv; and the kernel at n = 1 vs n = 15 (bit-identical rows) */
    for (size_t i = 0; !st && i < 30; i++) st = sf_model_photometry(m, w, 1, theta + i * SF_NTHETA, z + i, f1 + i * SF_NBANDS, NULL);
    CHECK(st == SF_OK && !memcmp(f1, fsmall, sizeof(double) * 30 * SF_NBANDS),
          "photometry at batch 1 is bit-identical to the same rows at batch 15 (kernel)");
    int saved = sf_emulator_set_small_max(0);
    for (size_t i = 0; !st && i < 30; i++) st = sf_model_photometry(m, w, 1, theta + i * SF_NTHETA, z + i, f1g + i * SF_NBANDS, NULL);
    sf_emulator_set_small_max(saved);
    e = max_rel(f1, f1g, 30 * SF_NBANDS);
    CHECK(st == SF_OK && e <= 2e-5, "photometry at batch 1, kernel vs sgemv: max relative difference %.3g <= 2e-5", e);
    /* raw emulator outputs (ln L per A), NMF inputs (MODEL.md s3) of 64 prior draws */
    {
        const size_t n = 64;
        double *in = malloc(sizeof(double) * n * SF_NMF_NIN);
        float *ls = malloc(sizeof(float) * n * SF_NWAVE), *lb = malloc(sizeof(float) * n * SF_NWAVE);
        for (size_t i = 0; i < n; i++) {
            double u[SF_NU], th[SF_NTHETA], *p = in + i * SF_NMF_NIN;
            sf_prior_sample(SF_PRIOR_SEDFLOW, r, u);
            sf_u_to_theta(u, th);
            p[0] = u[1] > 1e-8 ? u[1] : 1e-8, p[1] = u[2], p[2] = u[3];
            p[3] = th[SF_TH_GAMMA1], p[4] = th[SF_TH_GAMMA2];
            p[5] = th[SF_TH_TAU_BC], p[6] = th[SF_TH_TAU_ISM], p[7] = th[SF_TH_N_DUST];
            sf_cosmo_tage_gyr(sf_model_cosmo(m), z[i], &p[8]);
        }
        saved = sf_emulator_set_small_max(0);
        st = sf_model_emulate_nmf(m, w, n, in, lb);
        sf_emulator_set_small_max(saved);
        for (size_t i0 = 0; !st && i0 < n; i0 += B) {
            size_t c = n - i0 < B ? n - i0 : B;
            st = sf_model_emulate_nmf(m, w, c, in + i0 * SF_NMF_NIN, ls + i0 * SF_NWAVE);
        }
        double wa = 0;
        for (size_t i = 0; i < n * SF_NWAVE; i++) wa = fmax(wa, fabs((double)ls[i] - lb[i]));
        CHECK(st == SF_OK && wa <= 1e-4, "NMF emulator ln L, batch 15 (kernel) vs 64 (sgemm): max |diff| %.3g <= 1e-4", wa);
        free(in), free(ls), free(lb);
    }
done:
    sf_model_work_free(w);
    free(theta), free(z), free(fbig), free(fsmall), free(f1), free(f1g);
    gsl_rng_free(r);
}

#define NCASE 300
#define NCOL 23

/* MODEL.md s6 golden photometry, computed 15 rows per call (the kernel). */
static void test_golden_small(const sf_model *m)
{
    FILE *f = fopen(tu_path(tu_shared_dir(), "golden/model_cases.csv"), "r");
    CHECK(f != NULL, "open golden/model_cases.csv");
    if (!f) return;
    static double rows[NCASE * NCOL], theta[NCASE * SF_NTHETA], z[NCASE], flux[NCASE * SF_NBANDS];
    char line[4096];
    int n = 0;
    if (fgets(line, sizeof line, f))
        while (n < NCASE && fgets(line, sizeof line, f)) {
            char *p = line;
            for (int c = 0; c < NCOL; c++) {
                rows[n * NCOL + c] = strtod(p, &p);
                if (*p == ',') p++;
            }
            n++;
        }
    fclose(f);
    CHECK(n == NCASE, "read %d golden cases", n);
    for (int i = 0; i < n; i++) {
        memcpy(theta + i * SF_NTHETA, rows + i * NCOL, sizeof(double) * SF_NTHETA);
        z[i] = rows[i * NCOL + 12];
    }
    sf_model_work *w = NULL;
    sf_status st = sf_model_work_alloc(m, 15, &w); /* sf_model_photometry runs chunks of 15 */
    if (!st) st = sf_model_photometry(m, w, (size_t)n, theta, z, flux, NULL);
    CHECK(st == SF_OK, "golden photometry in chunks of 15 runs");
    for (int b = 0; b < SF_NBANDS; b++) {
        double worst = 0;
        for (int i = 0; i < n; i++) worst = fmax(worst, fabs(flux[i * SF_NBANDS + b] / rows[i * NCOL + 15 + b] - 1));
        double tol = b == 0 ? 2e-3 : 1e-3;
        CHECK(worst <= tol, "golden band %s at batch 15: max relative flux error %.3g <= %.0e", sf_band_names[b], worst, tol);
    }
    sf_model_work_free(w);
}

int main(void)
{
    test_kernel();
    sf_model *m = NULL;
    sf_status st = sf_model_load(tu_data_dir(), &m);
    CHECK(st == SF_OK, "load model (%s)", st ? sf_last_error() : "ok");
    if (!st) {
        test_model_batches(m);
        test_golden_small(m);
    }
    sf_model_free(m);
    return tu_finish("emu_gemm");
}
