/* Calibration figures (src/io/plot.c): PNGs written when gnuplot exists,
 * clean errors when it does not or fails.  Set SEDFLOW_TEST_PLOT_DIR to
 * keep the figures in that folder. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gsl/gsl_randist.h>

#include "sedflow/calib.h"
#include "sedflow/plot.h"
#include "sedflow/rng.h"
#include "testutil.h"

static int is_png(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    unsigned char h[8] = {0};
    size_t n = fread(h, 1, 8, f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    return n == 8 && !memcmp(h, "\x89PNG\r\n\x1a\n", 8) && size > 2000;
}

int main(void)
{
    /* Exact and too-narrow posteriors of 4 parameters, 500 items, L = 99. */
    const size_t n = 500, L = 99, P = 4;
    double *truth = malloc(n * P * sizeof *truth), *s1 = malloc(n * L * P * sizeof *s1),
           *s2 = malloc(n * L * P * sizeof *s2);
    gsl_rng *r = sf_rng_alloc(4);
    for (size_t i = 0; i < n; i++)
        for (size_t p = 0; p < P; p++) {
            double th = gsl_ran_gaussian(r, 1.0), x = th + gsl_ran_gaussian(r, 1.0);
            truth[i * P + p] = th;
            for (size_t l = 0; l < L; l++) {
                double z = gsl_ran_gaussian(r, 1.0);
                s1[(i * L + l) * P + p] = x / 2 + sqrt(0.5) * z;
                s2[(i * L + l) * P + p] = x / 2 + (0.3 + 0.2 * (double)p) * sqrt(0.5) * z;
            }
        }
    gsl_rng_free(r);
    long *rank = malloc(n * P * sizeof *rank);
    double *pit = malloc(n * P * sizeof *pit), *pit2 = malloc(n * P * sizeof *pit2);
    sf_calib_ranks(s2, truth, n, L, P, 1, 0, rank, pit2);
    sf_calib_ranks(s1, truth, n, L, P, 1, 0, rank, pit);
    const char *names[4] = {"log_mstar", "beta_1 'quoted'", "tau_bc", NULL};

    char dir[4096];
    const char *keep = getenv("SEDFLOW_TEST_PLOT_DIR");
    if (keep && *keep) snprintf(dir, sizeof dir, "%s", keep);
    else {
        snprintf(dir, sizeof dir, "/tmp/sedflow_test_plot_XXXXXX");
        if (!mkdtemp(dir)) dir[0] = '\0';
    }
    CHECK(dir[0], "temporary folder");
    char pp[4200], sbc[4200], cov[4200];
    snprintf(pp, sizeof pp, "%s/pp.png", dir);
    snprintf(sbc, sizeof sbc, "%s/sbc.png", dir);
    snprintf(cov, sizeof cov, "%s/coverage.png", dir);

    if (sf_plot_available()) {
        sf_status st = sf_plot_pp_grid(pp, pit2, n, P, pit, n, names);
        CHECK(st == SF_OK && is_png(pp), "p-p grid PNG written: %s", st ? sf_last_error() : pp);
        st = sf_plot_sbc_grid(sbc, rank, n, P, L, 0, names);
        CHECK(st == SF_OK && is_png(sbc), "SBC grid PNG written: %s", st ? sf_last_error() : sbc);
        double lev[SF_CALIB_NLEV], c[2 * SF_CALIB_NLEV];
        sf_calib_levels(lev);
        sf_calib_coverage(pit, n, P, SF_CALIB_NLEV, lev, c);
        sf_calib_coverage(pit2, n, P, SF_CALIB_NLEV, lev, c + SF_CALIB_NLEV);
        const char *lab[2] = {"exact", "too narrow"};
        st = sf_plot_coverage(cov, lev, SF_CALIB_NLEV, c, 2, lab);
        CHECK(st == SF_OK && is_png(cov), "coverage PNG written: %s", st ? sf_last_error() : cov);
        char tmp[4300];
        snprintf(tmp, sizeof tmp, "%s.tmp", pp);
        CHECK(access(tmp, F_OK) != 0, "no .tmp file left behind");
        /* gnuplot fails (output folder does not exist): error, no crash. */
        st = sf_plot_pp_grid("/nonexistent_dir_sedflow/pp.png", pit, n, P, NULL, 0, NULL);
        CHECK(st == SF_EIO && strstr(sf_last_error(), "gnuplot failed"), "unwritable output -> SF_EIO: %s",
              sf_last_error());
        /* Corner plot: two correlated 3-D Gaussians and a truth. */
        char corner[4200];
        snprintf(corner, sizeof corner, "%s/corner.png", dir);
        const size_t nc = 5000;
        double *ca = malloc(nc * 3 * sizeof *ca), *cb = malloc(nc * 3 * sizeof *cb);
        gsl_rng *g = sf_rng_alloc(8);
        for (size_t i = 0; i < nc; i++) {
            double u = gsl_ran_gaussian(g, 1.0), v = gsl_ran_gaussian(g, 1.0), w = gsl_ran_gaussian(g, 1.0);
            ca[3 * i] = 10 + u, ca[3 * i + 1] = 0.8 * u + 0.6 * v, ca[3 * i + 2] = w * w;
            cb[3 * i] = 10.2 + 1.2 * u, cb[3 * i + 1] = v, cb[3 * i + 2] = 0.5 + w * w;
        }
        gsl_rng_free(g);
        const double tr[3] = {10.1, 0.2, 1.0};
        const char *cn[3] = {"log_mstar", "tau_ism", "n_dust"}, *cl[2] = {"ANPE", "MCMC"};
        st = sf_plot_corner(corner, ca, nc, cb, nc, 3, tr, cn, cl);
        CHECK(st == SF_OK && is_png(corner), "corner PNG written: %s", st ? sf_last_error() : corner);
        st = sf_plot_corner(corner, ca, nc, NULL, 0, 1, NULL, NULL, NULL);
        CHECK(st == SF_OK && is_png(corner), "1-D single-set corner PNG: %s", st ? sf_last_error() : corner);
        st = sf_plot_corner(corner, ca, nc, cb, nc, 3, tr, cn, cl); /* keep the full one for viewing */
        ca[7] = NAN;
        CHECK(sf_plot_corner(corner, ca, nc, NULL, 0, 3, NULL, NULL, NULL) == SF_EINVAL, "NaN sample rejected");
        if (!(keep && *keep)) remove(corner);
        free(ca);
        free(cb);
    } else {
        CHECK(1, "gnuplot not installed: figure checks skipped");
    }
    /* gnuplot missing: SF_EIO, nothing written. */
    char *old = getenv("SEDFLOW_GNUPLOT") ? strdup(getenv("SEDFLOW_GNUPLOT")) : NULL;
    setenv("SEDFLOW_GNUPLOT", "/nonexistent/gnuplot", 1);
    char miss[4200];
    snprintf(miss, sizeof miss, "%s/missing.png", dir);
    sf_status st = sf_plot_sbc_grid(miss, rank, n, P, L, 10, NULL);
    CHECK(st == SF_EIO && strstr(sf_last_error(), "not found") && access(miss, F_OK) != 0,
          "missing gnuplot -> SF_EIO: %s", sf_last_error());
    CHECK(!sf_plot_available(), "sf_plot_available() = 0 without gnuplot");
    if (old) setenv("SEDFLOW_GNUPLOT", old, 1);
    else unsetenv("SEDFLOW_GNUPLOT");
    free(old);
    CHECK(sf_plot_pp_grid("bad'name.png", pit, n, P, NULL, 0, NULL) == SF_EINVAL, "quote in path rejected");
    CHECK(sf_plot_coverage(cov, NULL, 0, NULL, 0, NULL) == SF_EINVAL, "empty coverage rejected");

    if (!(keep && *keep)) {
        remove(pp);
        remove(sbc);
        remove(cov);
        rmdir(dir);
    }
    free(truth);
    free(s1);
    free(s2);
    free(rank);
    free(pit);
    free(pit2);
    return tu_finish("test_calib_plot");
}
