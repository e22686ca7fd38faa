/*
 * The forward model against shared/golden (MODEL.md s6 tolerances): tage
 * and d_L, raw emulator outputs, four full spectra, 300 cases x 5 bands of
 * photometry and the derived properties; plus the parameter checks.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fastmath.h"
#include "io/h5util.h"
#include "sedflow/model.h"
#include "testutil.h"

#define NCASE 300
#define NCOL 23

static int read_cases(const char *path, double *rows)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[4096];
    if (!fgets(line, sizeof line, f)) { fclose(f); return -1; }
    int n = 0;
    while (n < NCASE && fgets(line, sizeof line, f)) {
        char *p = line;
        for (int c = 0; c < NCOL; c++) {
            rows[n * NCOL + c] = strtod(p, &p);
            if (*p == ',') p++;
        }
        n++;
    }
    fclose(f);
    return n;
}

static void test_expf(void)
{
    double worst = 0;
    for (float x = -87.0f; x < 88.0f; x += 0.0137f) {
        double rel = fabs((double)sf_expf(x) - exp((double)x)) / exp((double)x);
        if (rel > worst) worst = rel;
    }
    CHECK(worst < 2e-7, "sf_expf relative error %.3g < 2e-7 on [-87, 88]", worst);
}

static void test_raw_emulators(const sf_model *m, sf_model_work *w, hid_t g)
{
    const char *names[2][2] = {{"emulator_nmf/input_unitcube3_g1_g2_d1_d2_n_tage", "emulator_nmf/ln_lum_lsun_per_A"},
                               {"emulator_burst/input_tburst_zburst_d2_n_linear", "emulator_burst/ln_lum_lsun_per_A"}};
    for (int e = 0; e < 2; e++) {
        double *in = NULL;
        float *ref = NULL, *out = malloc(2 * SF_NWAVE * sizeof(float));
        size_t nin;
        if (sf_h5_read_double(g, names[e][0], 0, &in, &nin) || sf_h5_read_float(g, names[e][1], 2 * SF_NWAVE, &ref, NULL)) {
            CHECK(0, "read golden %s", names[e][0]);
            continue;
        }
        if (e == 1) /* golden burst inputs are linear tburst and Zburst */
            for (int i = 0; i < 2; i++) {
                in[i * 4 + 0] = log10(in[i * 4 + 0]);
                in[i * 4 + 1] = log10(in[i * 4 + 1]);
            }
        sf_status st = e == 0 ? sf_model_emulate_nmf(m, w, 2, in, out) : sf_model_emulate_burst(m, w, 2, in, out);
        double worst = 0;
        for (int j = 0; j < 2 * SF_NWAVE; j++) worst = fmax(worst, fabs((double)out[j] - ref[j]));
        CHECK(st == SF_OK && worst <= 1e-4, "%s emulator: max |ln L - golden| = %.3g <= 1e-4", e ? "burst" : "NMF", worst);
        free(in);
        free(ref);
        free(out);
    }
}

static void test_spectra(const sf_model *m, sf_model_work *w, hid_t g)
{
    double *lum = malloc(SF_NWAVE * sizeof(double)), *fobs = malloc(SF_NWAVE * sizeof(double));
    double *wave_ref = NULL, *ref = NULL;
    if (sf_h5_read_double(g, "wave_rest_A", SF_NWAVE, &wave_ref, NULL)) CHECK(0, "read wave_rest_A");
    else {
        double worst = 0;
        for (int j = 0; j < SF_NWAVE; j++) worst = fmax(worst, fabs(sf_model_wave_rest(m)[j] - wave_ref[j]));
        CHECK(worst < 1e-6, "model wavelength grid equals golden wave_rest_A (max diff %.3g A)", worst);
        free(wave_ref);
    }
    for (int c = 0; c < 4; c++) {
        char name[64];
        double theta[SF_NTHETA], z;
        snprintf(name, sizeof name, "case%d", c);
        hid_t a = H5Aopen_by_name(g, name, "theta", H5P_DEFAULT, H5P_DEFAULT);
        H5Aread(a, H5T_NATIVE_DOUBLE, theta);
        H5Aclose(a);
        sf_h5_attr_get_double(g, name, "redshift", &z);
        snprintf(name, sizeof name, "case%d/flux_1e-17cgs", c);
        if (sf_h5_read_double(g, name, SF_NWAVE, &ref, NULL)) {
            CHECK(0, "read %s", name);
            continue;
        }
        double flux[SF_NBANDS];
        sf_status st = sf_model_photometry(m, w, 1, theta, &z, flux, lum);
        if (!st) st = sf_model_flambda_obs(m, z, lum, fobs);
        double worst = 0;
        for (int j = 0; j < SF_NWAVE; j++) {
            double v = fobs[j] * 1e17;
            if (ref[j] != 0) worst = fmax(worst, fabs(v - ref[j]) / fabs(ref[j]));
        }
        CHECK(st == SF_OK && worst <= 1e-4, "spectrum case%d (z = %.3f): max relative error %.3g <= 1e-4", c, z, worst);
        free(ref);
        ref = NULL;
    }
    free(lum);
    free(fobs);
}

static void test_cases(const sf_model *m, sf_model_work *w, const double *rows, int n)
{
    double *theta = malloc(n * SF_NTHETA * sizeof(double)), *z = malloc(n * sizeof(double));
    double *flux = malloc(n * SF_NBANDS * sizeof(double)), *flux2 = malloc(n * SF_NBANDS * sizeof(double));
    double *der = malloc(n * SF_NDERIVED * sizeof(double));
    for (int i = 0; i < n; i++) {
        memcpy(theta + i * SF_NTHETA, rows + i * NCOL, SF_NTHETA * sizeof(double));
        z[i] = rows[i * NCOL + 12];
    }
    double wt = 0, wd = 0;
    const sf_cosmo *c = sf_model_cosmo(m);
    for (int i = 0; i < n; i++) {
        double t, d;
        sf_cosmo_tage_gyr(c, z[i], &t);
        sf_cosmo_dlum_cm(c, z[i], &d);
        wt = fmax(wt, fabs(t / rows[i * NCOL + 13] - 1));
        wd = fmax(wd, fabs(d / rows[i * NCOL + 14] - 1));
    }
    CHECK(wt <= 1e-5, "tage(z), 300 redshifts: max relative error %.3g <= 1e-5", wt);
    CHECK(wd <= 1e-5, "d_L(z), 300 redshifts: max relative error %.3g <= 1e-5", wd);

    sf_status st = sf_model_photometry(m, w, (size_t)n, theta, z, flux, NULL);
    CHECK(st == SF_OK, "photometry of 300 cases runs (%s)", sf_last_error());
    for (int b = 0; b < SF_NBANDS; b++) {
        double worst = 0;
        int iw = 0;
        for (int i = 0; i < n; i++) {
            double e = fabs(flux[i * SF_NBANDS + b] / rows[i * NCOL + 15 + b] - 1);
            if (e > worst) { worst = e; iw = i; }
        }
        double tol = b == 0 ? 2e-3 : 1e-3;
        CHECK(worst <= tol, "band %s, 300 cases: max relative flux error %.3g <= %.0e (worst case %d)",
              sf_band_names[b], worst, tol, iw);
    }
    double *flux1 = malloc(n * SF_NBANDS * sizeof(double));
    st = sf_model_photometry_omp(m, (size_t)n, theta, z, flux1, 1);
    st |= sf_model_photometry_omp(m, (size_t)n, theta, z, flux2, 2);
    CHECK(st == SF_OK && !memcmp(flux1, flux2, n * SF_NBANDS * sizeof(double)),
          "photometry on 2 threads is bit-identical to 1 thread");
    CHECK(!memcmp(flux, flux2, n * SF_NBANDS * sizeof(double)),
          "... and to the single-threaded call with 256-row chunks");
    free(flux1);
    st = sf_model_derived(m, (size_t)n, theta, z, der);
    for (int k = 0; k < SF_NDERIVED; k++) {
        double worst = 0;
        for (int i = 0; i < n; i++) worst = fmax(worst, fabs(der[i * SF_NDERIVED + k] / rows[i * NCOL + 20 + k] - 1));
        CHECK(st == SF_OK && worst <= 1e-4, "derived %s, 300 cases: max relative error %.3g <= 1e-4",
              sf_derived_names[k], worst);
    }
    /* Consecutive rows with the same z share one plan: two runs of equal z
     * in one call give the same bits as one row at a time. */
    for (int i = 0; i < n; i++) z[i] = i < n / 2 ? 0.05 : 0.3;
    st = sf_model_derived(m, (size_t)n, theta, z, der);
    int same = st == SF_OK;
    for (int i = 0; i < n && same; i++) {
        double one[SF_NDERIVED];
        same = sf_model_derived(m, 1, theta + i * SF_NTHETA, z + i, one) == SF_OK &&
               !memcmp(one, der + i * SF_NDERIVED, sizeof one);
    }
    CHECK(same, "derived: %d rows in two runs of equal z (one plan each) = one row at a time, bit-identical", n);
    free(theta); free(z); free(flux); free(flux2); free(der);
}

static void test_errors(const sf_model *m, sf_model_work *w, const double *theta0)
{
    double th[SF_NTHETA], f[SF_NBANDS], z;
    memcpy(th, theta0, sizeof th);
    for (int i = 0; i < SF_NBANDS; i++) f[i] = -12345;
    z = 0.0;
    CHECK(sf_model_photometry(m, w, 1, th, &z, f, NULL) == SF_EDOMAIN && f[0] == -12345, "z = 0 is an error, nothing written");
    z = -0.01;
    CHECK(sf_model_photometry(m, w, 1, th, &z, f, NULL) == SF_EDOMAIN, "z = -0.01 is an error");
    z = 0.61;
    CHECK(sf_model_photometry(m, w, 1, th, &z, f, NULL) == SF_EDOMAIN, "z = 0.61 is an error: %s", sf_last_error());
    z = NAN;
    CHECK(sf_model_photometry(m, w, 1, th, &z, f, NULL) == SF_EDOMAIN, "z = NaN is an error");
    z = 0.6;
    CHECK(sf_model_photometry(m, w, 1, th, &z, f, NULL) == SF_OK && f[0] > 0, "z = 0.6 (the edge) is allowed");
    z = 0.1;
    th[SF_TH_TAU_BC] = NAN;
    CHECK(sf_model_photometry(m, w, 1, th, &z, f, NULL) == SF_EINVAL && strstr(sf_last_error(), "tau_bc"),
          "NaN tau_bc is an error naming the parameter: %s", sf_last_error());
    memcpy(th, theta0, sizeof th);
    th[SF_TH_BETA1] += 0.1;
    CHECK(sf_model_photometry(m, w, 1, th, &z, f, NULL) == SF_EINVAL, "betas not summing to 1 are an error");
    memcpy(th, theta0, sizeof th);
    th[SF_TH_TAU_ISM] = -0.5;
    CHECK(sf_model_photometry(m, w, 1, th, &z, f, NULL) == SF_EINVAL && strstr(sf_last_error(), "optical depth"),
          "a negative optical depth is an error: %s", sf_last_error());
    memcpy(th, theta0, sizeof th);
    double tage;
    CHECK(sf_cosmo_tage_gyr(sf_model_cosmo(m), 0.0, &tage) == SF_EDOMAIN, "tage(0) from the table is refused (z <= 0)");

    /* burst switched off: tburst >= tage behaves as no burst, but (1-fburst) stays */
    memcpy(th, theta0, sizeof th);
    double fa[SF_NBANDS], fb[SF_NBANDS];
    th[SF_TH_FBURST] = 0.0;
    sf_model_photometry(m, w, 1, th, &z, fa, NULL);
    th[SF_TH_FBURST] = 0.25;
    th[SF_TH_TBURST] = 13.2; /* > tage(0.1) = 12.4 Gyr */
    sf_model_photometry(m, w, 1, th, &z, fb, NULL);
    CHECK_REL(fb[2], 0.75 * fa[2], 1e-12, "tburst >= tage: flux = (1-fburst) x no-burst flux");
    th[SF_TH_FBURST] = 1.0;
    sf_model_photometry(m, w, 1, th, &z, fb, NULL);
    CHECK(fb[2] == 0.0, "fburst = 1 with tburst >= tage gives zero flux (reference behaviour)");
    th[SF_TH_TBURST] = 0.5;
    sf_model_photometry(m, w, 1, th, &z, fb, NULL);
    CHECK(fb[2] > 0 && isfinite(fb[0]), "fburst = 1 with a 0.5 Gyr burst is a pure SSP (r = %.4g nmgy)", fb[2]);
}

int main(void)
{
    test_expf();
    sf_model *m = NULL;
    sf_status st = sf_model_load(tu_data_dir(), &m);
    CHECK(st == SF_OK, "load model data from %s (%s)", tu_data_dir(), sf_last_error());
    if (st) return tu_finish("test_model");
    sf_model_work *w = NULL;
    sf_model_work_alloc(m, 256, &w); /* the chunk size sf_model_photometry_omp uses */
    CHECK(sf_model_load("/nonexistent/x.h5", &(sf_model *){NULL}) == SF_EIO, "missing model file: SF_EIO");

    static double rows[NCASE * NCOL];
    int n = read_cases(tu_path(tu_shared_dir(), "golden/model_cases.csv"), rows);
    CHECK(n == NCASE, "read %d golden cases", n);
    hid_t g;
    if (sf_h5_open_read(tu_path(tu_shared_dir(), "golden/model_spectra.h5"), &g) == SF_OK) {
        test_raw_emulators(m, w, g);
        test_spectra(m, w, g);
        H5Fclose(g);
    } else CHECK(0, "open golden/model_spectra.h5");
    if (n == NCASE) {
        test_cases(m, w, rows, n);
        test_errors(m, w, rows);
    }
    sf_model_work_free(w);
    sf_model_free(m);
    return tu_finish("test_model");
}
