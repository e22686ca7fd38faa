/*
 * The simulator (SEDflow s3.2): prior marginals of a simulated set (KS),
 * simulated sigma-vs-magnitude medians against the noise table, removal
 * counts, determinism over threads and seeds, and resume.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/h5util.h"
#include "sedflow/sim.h"
#include "testutil.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* KS distance of sample v (n, sorted here) from U(lo, hi). */
static double ks_uniform(double *v, size_t n, double lo, double hi)
{
    qsort(v, n, sizeof(double), cmp_double);
    double d = 0;
    for (size_t i = 0; i < n; i++) {
        double F = (v[i] - lo) / (hi - lo);
        d = fmax(d, fmax(fabs(F - (double)i / n), fabs(F - (double)(i + 1) / n)));
    }
    return d;
}

/* A noise model that removes nothing: constant sigma' = 0.05 +- 1e-4 mag and
 * an unlimited flux range, so the simulated set is a plain prior sample. */
static sf_noise *noise_flat(void)
{
    sf_noise *nm = calloc(1, sizeof *nm);
    for (int b = 0; b < SF_NBANDS; b++) {
        sf_noise_band *t = &nm->band[b];
        t->nbin = 1;
        t->mag_lo = malloc(sizeof(double));
        t->mag_hi = malloc(sizeof(double));
        t->mag_centre = malloc(sizeof(double));
        t->count = malloc(sizeof(long long));
        t->mu_sigma_mag = malloc(sizeof(double));
        t->sigma_sigma_mag = malloc(sizeof(double));
        t->mag_lo[0] = -100, t->mag_hi[0] = 100, t->mag_centre[0] = 20, t->count[0] = 100;
        t->mu_sigma_mag[0] = 0.05, t->sigma_sigma_mag[0] = 1e-4;
        t->nmgy_min = 1e-300, t->nmgy_max = 1e300, t->mag_min = -700, t->mag_max = 700;
    }
    return nm;
}

/* Run blocks [k0, k1) of a simulator into a new file or an open one. */
static sf_status run_blocks(sf_sim *s, sf_simfile *f, uint64_t k0, uint64_t k1, sf_sim_counts *c)
{
    for (uint64_t k = k0; k < k1; k++) {
        const sf_sim_rows *rows;
        sf_status st = sf_sim_block(s, k, &rows, c);
        if (!st) st = sf_simfile_append(f, rows, rows->n, k + 1, c);
        if (st) return st;
    }
    return SF_OK;
}

static void test_prior_marginals(const sf_model *m, int quick)
{
    sf_noise *nm = noise_flat();
    sf_sim_options o;
    sf_sim_options_default(&o);
    o.seed = 11;
    o.block = quick ? 1024 : 4096;
    o.nthreads = 2;
    const size_t nblocks = quick ? 3 : 25; /* 102,400 rows in a full run */
    sf_sim *s;
    sf_sim_alloc(m, nm, &o, &s);
    size_t nmax = nblocks * o.block, n = 0;
    double *col = malloc(nmax * (SF_NU + 1) * sizeof(double));
    sf_sim_counts c = {0};
    for (uint64_t k = 0; k < nblocks; k++) {
        const sf_sim_rows *rows;
        if (sf_sim_block(s, k, &rows, &c)) break;
        for (size_t i = 0; i < rows->n; i++, n++) {
            for (int d = 0; d < SF_NU; d++) col[d * nmax + n] = rows->theta_u[i * SF_NU + d];
            col[SF_NU * nmax + n] = rows->z[i];
        }
    }
    CHECK(n == nmax && c.kept == (long long)n, "flat noise model removes nothing (%zu of %zu kept)", n, nmax);
    double crit = 1.63 / sqrt((double)n); /* 1% KS critical value */
    for (int d = 0; d <= SF_NU; d++) {
        double lo = d < SF_NU ? sf_prior_lower[d] : 0.0, hi = d < SF_NU ? sf_prior_upper[d] : 0.2;
        double ks = ks_uniform(col + d * nmax, n, lo, hi);
        CHECK(ks < crit, "prior marginal %s: KS D = %.4f < %.4f (n = %zu)", d < SF_NU ? sf_u_names[d] : "z", ks, crit, n);
    }
    free(col);
    sf_sim_free(s);
    sf_noise_free(nm);
}

static void test_noise_medians(const sf_model *m, const sf_noise *nm, int quick)
{
    sf_sim_options o;
    sf_sim_options_default(&o);
    o.seed = 5;
    o.block = 4096;
    o.nthreads = 2;
    sf_sim *s;
    sf_sim_alloc(m, nm, &o, &s);
    const size_t nblocks = quick ? 2 : 8;
    size_t cap = nblocks * o.block, n = 0;
    double *mag = malloc(cap * SF_NBANDS * sizeof(double)), *sig = malloc(cap * SF_NBANDS * sizeof(double));
    sf_sim_counts c = {0};
    int in_range = 1;
    for (uint64_t k = 0; k < nblocks; k++) {
        const sf_sim_rows *rows;
        if (sf_sim_block(s, k, &rows, &c)) break;
        for (size_t i = 0; i < rows->n; i++, n++) {
            in_range &= sf_noise_flux_in_range(nm, rows->flux_true + i * SF_NBANDS);
            for (int b = 0; b < SF_NBANDS; b++) {
                mag[n * SF_NBANDS + b] = 22.5 - 2.5 * log10(rows->flux_true[i * SF_NBANDS + b]);
                sig[n * SF_NBANDS + b] = rows->sigma_mag[i * SF_NBANDS + b];
            }
        }
    }
    CHECK(in_range, "every kept row's noiseless fluxes lie in the NSA range");
    CHECK(c.drawn == c.kept + c.cut_flux_range + c.cut_sigma + c.cut_noisy_flux && c.cut_flux_range > 0,
          "removal counts add up: drawn %lld = kept %lld + range %lld + sigma %lld + noisy %lld", c.drawn, c.kept,
          c.cut_flux_range, c.cut_sigma, c.cut_noisy_flux);
    /* per band and table bin with >= 200 simulated rows: the median simulated
     * sigma' matches mu_sigma within sigma_sigma (the bin scatter) */
    int nbins = 0, ok = 1;
    double *tmp = malloc(n * sizeof(double));
    for (int b = 0; b < SF_NBANDS; b++) {
        const sf_noise_band *t = &nm->band[b];
        for (size_t j = 0; j < t->nbin; j++) {
            size_t k = 0;
            double msum = 0;
            for (size_t i = 0; i < n; i++) {
                double mm = mag[i * SF_NBANDS + b];
                if (mm >= t->mag_lo[j] && mm < t->mag_hi[j]) {
                    tmp[k++] = sig[i * SF_NBANDS + b];
                    msum += mm;
                }
            }
            if (k < 200) continue;
            qsort(tmp, k, sizeof(double), cmp_double);
            double med = tmp[k / 2], mu, sd;
            sf_noise_eval(nm, b, msum / k, &mu, &sd);
            nbins++;
            if (!(fabs(med - mu) <= sd)) {
                ok = 0;
                printf("  band %s bin %zu: simulated median %.4f vs mu_sigma %.4f (sigma_sigma %.4f)\n",
                       sf_band_names[b], j, med, mu, sd);
            }
        }
    }
    CHECK(ok && nbins >= 10, "simulated sigma' medians match the noise table within the bin scatter (%d bins)", nbins);
    free(tmp);
    free(mag);
    free(sig);
    sf_sim_free(s);
}

static int files_equal(const char *a, const char *b)
{
    const char *names[] = {"candidate", "theta", "theta_u", "z", "flux_nmgy_true", "flux_nmgy", "sigma_nmgy", "mag",
                           "sigma_mag", "x", "derived"};
    hid_t fa, fb;
    if (sf_h5_open_read(a, &fa)) return 0;
    if (sf_h5_open_read(b, &fb)) { H5Fclose(fa); return 0; }
    int eq = 1;
    for (size_t i = 0; eq && i < sizeof names / sizeof names[0]; i++) {
        double *x = NULL, *y = NULL;
        size_t nx = 0, ny = 0;
        if (sf_h5_read_double(fa, names[i], 0, &x, &nx) || sf_h5_read_double(fb, names[i], 0, &y, &ny)) eq = 0;
        else eq = nx == ny && nx > 0 && !memcmp(x, y, nx * sizeof(double));
        free(x);
        free(y);
    }
    H5Fclose(fa);
    H5Fclose(fb);
    return eq;
}

static void test_determinism(const sf_model *m, const sf_noise *nm)
{
    const char *p1 = "test_sim_t1.h5", *p2 = "test_sim_t2.h5", *p3 = "test_sim_seed.h5", *p4 = "test_sim_resume.h5";
    sf_sim_options o;
    sf_sim_options_default(&o);
    o.seed = 3;
    o.block = 512;
    const uint64_t nb = 4;
    for (int pass = 0; pass < 3; pass++) {
        o.nthreads = pass == 1 ? 2 : 1;
        o.seed = pass == 2 ? 4 : 3;
        sf_sim *s;
        sf_simfile *f;
        sf_sim_counts c = {0};
        sf_sim_alloc(m, nm, &o, &s);
        sf_simfile_create(pass == 0 ? p1 : pass == 1 ? p2 : p3, &o, "test", &f);
        CHECK(run_blocks(s, f, 0, nb, &c) == SF_OK, "simulate %llu blocks (seed %llu, %d threads)",
              (unsigned long long)nb, (unsigned long long)o.seed, o.nthreads);
        sf_simfile_close(f, 1);
        sf_sim_free(s);
    }
    CHECK(files_equal(p1, p2), "same seed: 1 and 2 threads give identical datasets");
    CHECK(!files_equal(p1, p3), "different seeds give different datasets");

    /* interrupted after 2 blocks, then resumed on 2 threads */
    sf_sim *s;
    sf_simfile *f;
    sf_sim_counts c = {0};
    o.seed = 3;
    o.nthreads = 1;
    sf_sim_alloc(m, nm, &o, &s);
    sf_simfile_create(p4, &o, "test", &f);
    run_blocks(s, f, 0, 2, &c);
    sf_simfile_close(f, 0);
    sf_sim_free(s);
    sf_sim_options o2;
    sf_sim_options_default(&o2);
    uint64_t k;
    sf_sim_counts c2 = {0};
    sf_status st = sf_simfile_resume(p4, &o2, &k, &c2, &f);
    CHECK(st == SF_OK && k == 2 && o2.seed == 3 && c2.drawn == c.drawn, "resume reads seed, next block and counts");
    if (!st) {
        o2.nthreads = 2;
        sf_sim_alloc(m, nm, &o2, &s);
        run_blocks(s, f, k, nb, &c2);
        sf_simfile_close(f, 1);
        sf_sim_free(s);
        CHECK(files_equal(p1, p4), "interrupted + resumed run equals the uninterrupted one");
    }
    remove(p1);
    remove(p2);
    remove(p3);
    remove(p4);
}

int main(void)
{
    int quick = getenv("SEDFLOW_TEST_QUICK") != NULL;
    sf_model *m;
    sf_noise *nm;
    if (sf_model_load(tu_data_dir(), &m) || sf_noise_load(tu_path(tu_data_dir(), "../models/noise_nsa.h5"), &nm)) {
        CHECK(0, "load model and noise table: %s", sf_last_error());
        return tu_finish("test_sim");
    }
    test_determinism(m, nm);
    test_noise_medians(m, nm, quick);
    test_prior_marginals(m, quick);
    sf_noise_free(nm);
    sf_model_free(m);
    return tu_finish("test_sim");
}
