/* Noise model (paper eq. 5): the fitted table against a direct computation
 * on the NSA catalog, binning with merged sparse ends, interpolation between
 * and beyond bins, draws (mean / sd, truncation at 0), save/load round trip,
 * the committed models/noise_nsa.h5 and the CLI. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gsl/gsl_cdf.h>
#include <gsl/gsl_randist.h>

#include "io/h5util.h"
#include "sedflow/catalog.h"
#include "sedflow/noise.h"
#include "sedflow/rng.h"
#include "testutil.h"

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static sf_catalog *read_nsa(void)
{
    static const char *names[7] = {"A1367", "A2052", "A2063", "AWM4", "MKW11", "MKW8", "NGC6107"};
    char paths[7][1024];
    const char *pp[7];
    for (int k = 0; k < 7; k++) {
        snprintf(paths[k], sizeof paths[k], "%s/nsa/%s_NSAmastertable.fits", tu_data_dir(), names[k]);
        pp[k] = paths[k];
    }
    sf_catalog *c = NULL;
    sf_status st = sf_catalog_read_nsa(pp, 7, &c);
    CHECK(st == SF_OK, "read NSA: %s", sf_last_error());
    return c;
}

/* Row usable for the fit, computed here independently. */
static int usable(const sf_catalog *c, size_t i, double snr)
{
    if (!isfinite(c->z[i])) return 0;
    for (int b = 0; b < 5; b++) {
        double f = c->flux_nmgy[i * 5 + b], iv = c->ivar_nmgy2[i * 5 + b];
        if (!(f > 0 && iv > 0 && isfinite(f) && isfinite(iv))) return 0;
        if (!(f * sqrt(iv) >= snr)) return 0;
    }
    return 1;
}

static void test_fit_direct(const sf_catalog *c, const sf_noise *nm)
{
    size_t nuse = 0;
    for (size_t i = 0; i < c->n; i++) nuse += usable(c, i, 5.0);
    CHECK(nm->n_rows == (long long)nuse && nuse == 3332, "fit rows %lld = direct %zu (3332 with S/N >= 5)",
          nm->n_rows, nuse);
    CHECK(nm->n_valid == 3413, "valid rows %lld", nm->n_valid);
    double *s = malloc(c->n * sizeof *s), *m = malloc(c->n * sizeof *m);
    int all_stats = 1, all_counts = 1, contiguous = 1, min_ok = 1, ranges = 1;
    for (int b = 0; b < 5; b++) {
        const sf_noise_band *t = &nm->band[b];
        long long total = 0;
        double fmin = INFINITY, fmax = -INFINITY;
        for (size_t i = 0; i < c->n; i++)
            if (usable(c, i, 5.0)) {
                fmin = fmin < c->flux_nmgy[i * 5 + b] ? fmin : c->flux_nmgy[i * 5 + b];
                fmax = fmax > c->flux_nmgy[i * 5 + b] ? fmax : c->flux_nmgy[i * 5 + b];
            }
        ranges &= t->nmgy_min == fmin && t->nmgy_max == fmax &&
                  fabs(t->mag_max - (22.5 - 2.5 * log10(fmin))) < 1e-12 &&
                  fabs(t->mag_min - (22.5 - 2.5 * log10(fmax))) < 1e-12;
        for (size_t k = 0; k < t->nbin; k++) {
            size_t n = 0;
            for (size_t i = 0; i < c->n; i++) {
                if (!usable(c, i, 5.0)) continue;
                double f = c->flux_nmgy[i * 5 + b], iv = c->ivar_nmgy2[i * 5 + b];
                double mag = 22.5 - 2.5 * log10(f);
                if (mag >= t->mag_lo[k] && mag < t->mag_hi[k]) {
                    m[n] = mag;
                    s[n++] = 2.5 / log(10.0) / (f * sqrt(iv));
                }
            }
            all_counts &= (long long)n == t->count[k];
            min_ok &= n >= 30;
            total += (long long)n;
            if (k + 1 < t->nbin) contiguous &= t->mag_hi[k] == t->mag_lo[k + 1];
            contiguous &= fabs(t->mag_lo[k] / 0.5 - round(t->mag_lo[k] / 0.5)) < 1e-9;
            if (n < 2) continue;
            qsort(s, n, sizeof *s, cmp_d);
            qsort(m, n, sizeof *m, cmp_d);
            double med = n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
            double medm = n % 2 ? m[n / 2] : 0.5 * (m[n / 2 - 1] + m[n / 2]);
            double mean = 0, var = 0;
            for (size_t j = 0; j < n; j++) mean += s[j];
            mean /= (double)n;
            for (size_t j = 0; j < n; j++) var += (s[j] - mean) * (s[j] - mean);
            double sd = sqrt(var / (double)(n - 1));
            int ok = fabs(t->mu_sigma_mag[k] - med) <= 1e-14 * med && fabs(t->sigma_sigma_mag[k] - sd) <= 1e-9 * sd &&
                     fabs(t->mag_centre[k] - medm) <= 1e-12 * medm;
            if (!ok)
                printf("  band %c bin %zu: mu %.10g vs %.10g, sd %.10g vs %.10g, centre %.10g vs %.10g\n",
                       "ugriz"[b], k, t->mu_sigma_mag[k], med, t->sigma_sigma_mag[k], sd, t->mag_centre[k], medm);
            all_stats &= ok;
        }
        CHECK(total == nm->n_rows, "band %c: bin counts sum to the fit rows (%lld)", "ugriz"[b], total);
    }
    CHECK(all_counts, "bin counts equal a direct count in [mag_lo, mag_hi)");
    CHECK(all_stats, "median, standard deviation and median magnitude of every bin equal direct computation");
    CHECK(contiguous, "bins contiguous, edges on multiples of 0.5 mag");
    CHECK(min_ok, "every bin has >= 30 rows");
    CHECK(ranges, "flux and magnitude ranges equal the extremes of the fit rows");
    /* Physical sanity: r-band median error at 17.25 mag is the NSA floor ~0.02 mag. */
    double mu, sd;
    sf_noise_eval(nm, 2, 17.0, &mu, &sd);
    CHECK(mu > 0.019 && mu < 0.025, "r: mu_sigma(17) = %.4f mag near the 0.02 mag floor", mu);
    free(s);
    free(m);
}

static void test_interp(const sf_noise *nm)
{
    const sf_noise_band *t = &nm->band[1];
    size_t n = t->nbin;
    double mu, sd;
    int at_nodes = 1, mids = 1;
    for (size_t k = 0; k < n; k++) {
        sf_noise_eval(nm, 1, t->mag_centre[k], &mu, &sd);
        at_nodes &= mu == t->mu_sigma_mag[k] && sd == t->sigma_sigma_mag[k];
        if (k + 1 < n) {
            double x = 0.25 * t->mag_centre[k] + 0.75 * t->mag_centre[k + 1];
            sf_noise_eval(nm, 1, x, &mu, &sd);
            double emu = 0.25 * t->mu_sigma_mag[k] + 0.75 * t->mu_sigma_mag[k + 1];
            double esd = 0.25 * t->sigma_sigma_mag[k] + 0.75 * t->sigma_sigma_mag[k + 1];
            mids &= fabs(mu - emu) < 1e-14 && fabs(sd - esd) < 1e-14;
        }
    }
    CHECK(at_nodes, "evaluation at bin centres returns the table");
    CHECK(mids, "linear interpolation a quarter of the way between centres");
    sf_noise_eval(nm, 1, t->mag_centre[0] - 3.0, &mu, &sd);
    CHECK(mu == t->mu_sigma_mag[0] && sd == t->sigma_sigma_mag[0], "bright of the first centre: first bin's values");
    sf_noise_eval(nm, 1, t->mag_centre[n - 1] + 10.0, &mu, &sd);
    CHECK(mu == t->mu_sigma_mag[n - 1] && sd == t->sigma_sigma_mag[n - 1], "faint of the last centre: last bin's values");
    sf_noise_eval(nm, 1, NAN, &mu, &sd);
    CHECK(isnan(mu) && isnan(sd), "NaN magnitude -> NaN");
    sf_noise_eval(nm, 7, 17.0, &mu, &sd);
    CHECK(isnan(mu), "band out of range -> NaN");
    double inr[5], outr[5];
    for (int b = 0; b < 5; b++) {
        inr[b] = sqrt(nm->band[b].nmgy_min * nm->band[b].nmgy_max);
        outr[b] = inr[b];
    }
    outr[3] = nm->band[3].nmgy_max * 1.01;
    CHECK(sf_noise_flux_in_range(nm, inr) && !sf_noise_flux_in_range(nm, outr), "flux range cut");
}

/* A hand-made one-band-table model with mu, sd constant. */
static sf_noise *const_model(double mu, double sd)
{
    sf_catalog *c = sf_catalog_alloc(40);
    for (size_t i = 0; i < 40; i++) {
        c->z[i] = 0.05;
        for (int b = 0; b < 5; b++) {
            double f = sf_catalog_mag_to_nmgy(17.0 + 0.01 * (double)i);
            double sf = sf_catalog_sigma_nmgy(f, 0.05);
            c->flux_nmgy[i * 5 + b] = f;
            c->ivar_nmgy2[i * 5 + b] = 1.0 / (sf * sf);
        }
    }
    sf_catalog_validate(c);
    sf_noise *nm = NULL;
    sf_noise_fit(c, NULL, "const", &nm);
    sf_catalog_free(c);
    if (nm) {
        nm->band[0].mu_sigma_mag[0] = mu;
        nm->band[0].sigma_sigma_mag[0] = sd;
    }
    return nm;
}

static void test_draws(const sf_noise *nm)
{
    const int quick = getenv("SEDFLOW_TEST_QUICK") != NULL;
    const int n = quick ? 20000 : 200000;
    gsl_rng *r = sf_rng_alloc(7);
    /* A bin where truncation at 0 is negligible: u at its centre 18.25. */
    int b = 0;
    double m = 18.25, mu, sd;
    sf_noise_eval(nm, b, m, &mu, &sd);
    CHECK(mu / sd > 2.8, "u at 18.25 mag: mu/sd = %.2f (truncation %.2g negligible)", mu / sd,
          gsl_cdf_ugaussian_P(-mu / sd));
    double s1 = 0, s2 = 0;
    int fails = 0;
    for (int i = 0; i < n; i++) {
        double x;
        if (sf_noise_draw(nm, b, m, r, 100, &x)) fails++;
        s1 += x;
        s2 += x * x;
    }
    double mean = s1 / n, var = s2 / n - mean * mean;
    /* truncated-normal moments (tiny corrections, computed exactly) */
    double a = -mu / sd, lam = gsl_ran_ugaussian_pdf(a) / gsl_cdf_ugaussian_Q(a);
    double tmean = mu + sd * lam, tsd = sd * sqrt(1 + a * lam - lam * lam);
    CHECK(fails == 0, "no failed draws with 100 tries");
    CHECK_ABS(mean, tmean, 5 * sd / sqrt(n), "draw mean = mu_sigma (u, 18.25 mag)");
    CHECK_ABS(sqrt(var), tsd, 5 * sd / sqrt(2.0 * n), "draw sd = sigma_sigma (u, 18.25 mag)");

    /* Heavy truncation: mu = 0.01, sd = 0.02: the draws follow N truncated at 0. */
    sf_noise *tm = const_model(0.01, 0.02);
    CHECK(tm && tm->band[0].nbin == 1, "one-bin model");
    if (tm) {
        s1 = s2 = 0;
        int neg = 0;
        for (int i = 0; i < n; i++) {
            double x;
            sf_noise_draw(tm, 0, 17.1, r, 1000, &x);
            neg += !(x > 0);
            s1 += x;
            s2 += x * x;
        }
        mean = s1 / n;
        var = s2 / n - mean * mean;
        a = -0.5;
        lam = gsl_ran_ugaussian_pdf(a) / gsl_cdf_ugaussian_Q(a);
        CHECK(neg == 0, "truncated draws are all > 0");
        CHECK_ABS(mean, 0.01 + 0.02 * lam, 5 * 0.02 / sqrt(n), "truncated-normal mean");
        CHECK_ABS(sqrt(var), 0.02 * sqrt(1 + a * lam - lam * lam), 5 * 0.02 / sqrt(2.0 * n), "truncated-normal sd");
        /* max_tries = 1: the paper's rejection; rate = P(N < 0) = Phi(-0.5). */
        int rej = 0;
        for (int i = 0; i < n; i++) {
            double x;
            sf_status st = sf_noise_draw(tm, 0, 17.1, r, 1, &x);
            if (st == SF_ENOCONV && isnan(x)) rej++;
        }
        double p = gsl_cdf_ugaussian_P(-0.5);
        CHECK_ABS((double)rej / n, p, 5 * sqrt(p * (1 - p) / n), "max_tries 1 rejects sigma' <= 0 at rate Phi(-mu/sd)");
        /* mu < 0 and sd 0: every draw fails -> SF_ENOCONV after the budget. */
        tm->band[0].mu_sigma_mag[0] = -0.1;
        tm->band[0].sigma_sigma_mag[0] = 0.0;
        double x;
        CHECK(sf_noise_draw(tm, 0, 17.1, r, 50, &x) == SF_ENOCONV && isnan(x), "impossible draw -> SF_ENOCONV");
        CHECK(sf_noise_draw(tm, 0, NAN, r, 50, &x) == SF_EINVAL, "NaN magnitude -> SF_EINVAL");
    }
    sf_noise_free(tm);
    /* Same stream, same draws. */
    double x1, x2;
    sf_rng_set_stream(r, 3, 11);
    sf_noise_draw(nm, 2, 16.0, r, 100, &x1);
    sf_rng_set_stream(r, 3, 11);
    sf_noise_draw(nm, 2, 16.0, r, 100, &x2);
    CHECK(x1 == x2, "draws reproducible from (seed, stream)");
    gsl_rng_free(r);
}

static void test_binning(void)
{
    /* 3 rows at 10.2, 20 at 12.2, 20 at 12.7, 20 at 13.2, 4 at 20.1 mag; min_count 10:
     * bins [10, 12.5) 23 rows, [12.5, 13) 20, [13, 20.5) 24 (faint rest merged back). */
    const double mags[5] = {10.2, 12.2, 12.7, 13.2, 20.1};
    const int cnt[5] = {3, 20, 20, 20, 4};
    sf_catalog *c = sf_catalog_alloc(67);
    size_t i = 0;
    for (int g = 0; g < 5; g++)
        for (int j = 0; j < cnt[g]; j++, i++) {
            c->z[i] = 0.05;
            for (int b = 0; b < 5; b++) {
                double f = sf_catalog_mag_to_nmgy(mags[g]);
                double sigm = 0.01 * (g + 1) + 0.001 * j; /* distinct errors */
                double sf = sf_catalog_sigma_nmgy(f, sigm);
                c->flux_nmgy[i * 5 + b] = f;
                c->ivar_nmgy2[i * 5 + b] = 1.0 / (sf * sf);
            }
        }
    sf_catalog_validate(c);
    sf_noise_fit_options o;
    sf_noise_fit_options_default(&o);
    o.min_count = 10;
    o.min_snr = 0;
    sf_noise *nm = NULL;
    CHECK(sf_noise_fit(c, &o, "synthetic", &nm) == SF_OK, "fit synthetic: %s", sf_last_error());
    if (nm) {
        const sf_noise_band *t = &nm->band[2];
        CHECK(t->nbin == 3, "3 bins (got %zu)", t->nbin);
        if (t->nbin == 3) {
            CHECK(t->mag_lo[0] == 10.0 && t->mag_hi[0] == 12.5 && t->count[0] == 23, "bright end merged: [10,12.5) 23");
            CHECK(t->mag_lo[1] == 12.5 && t->mag_hi[1] == 13.0 && t->count[1] == 20, "middle bin [12.5,13) 20");
            CHECK(t->mag_lo[2] == 13.0 && t->mag_hi[2] == 20.5 && t->count[2] == 24, "faint end merged: [13,20.5) 24");
            CHECK_ABS(t->mag_centre[0], 12.2, 1e-9, "centre = median magnitude of the bin");
            /* bin 1: errors 0.03 + 0.001 j, j = 0..19: median 0.0395 */
            CHECK_ABS(t->mu_sigma_mag[1], 0.0395, 1e-12, "median error of the middle bin");
            CHECK_ABS(t->sigma_sigma_mag[1], 0.001 * sqrt(20.0 * 21.0 / 12.0), 1e-12, "sd of the middle bin");
        }
    }
    sf_noise_free(nm);
    o.min_count = 100;
    nm = NULL;
    CHECK(sf_noise_fit(c, &o, NULL, &nm) == SF_EINVAL && !nm, "fewer rows than min_count -> SF_EINVAL");
    o.min_count = 10;
    o.bin_width_mag = 0;
    CHECK(sf_noise_fit(c, &o, NULL, &nm) == SF_EINVAL, "zero bin width -> SF_EINVAL");
    sf_catalog_free(c);
}

static int same_band(const sf_noise_band *a, const sf_noise_band *b)
{
    if (a->nbin != b->nbin) return 0;
    size_t n = a->nbin;
    return !memcmp(a->mag_lo, b->mag_lo, n * sizeof(double)) && !memcmp(a->mag_hi, b->mag_hi, n * sizeof(double)) &&
           !memcmp(a->mag_centre, b->mag_centre, n * sizeof(double)) &&
           !memcmp(a->count, b->count, n * sizeof(long long)) &&
           !memcmp(a->mu_sigma_mag, b->mu_sigma_mag, n * sizeof(double)) &&
           !memcmp(a->sigma_sigma_mag, b->sigma_sigma_mag, n * sizeof(double)) && a->nmgy_min == b->nmgy_min &&
           a->nmgy_max == b->nmgy_max && a->mag_min == b->mag_min && a->mag_max == b->mag_max;
}

static int same_model(const sf_noise *a, const sf_noise *b)
{
    int ok = a->bin_width_mag == b->bin_width_mag && a->min_count == b->min_count && a->n_rows == b->n_rows &&
             a->n_valid == b->n_valid && a->min_snr == b->min_snr;
    for (int k = 0; k < 5; k++) ok &= same_band(&a->band[k], &b->band[k]);
    return ok;
}

static void test_io(const sf_noise *nm)
{
    char path[256];
    snprintf(path, sizeof path, "/tmp/sedflow_test_noise_%ld.h5", (long)getpid());
    CHECK(sf_noise_save(nm, path) == SF_OK, "save: %s", sf_last_error());
    sf_noise *back = NULL;
    CHECK(sf_noise_load(path, &back) == SF_OK, "load: %s", sf_last_error());
    CHECK(back && same_model(nm, back) && !strcmp(nm->source, back->source), "save/load round trip is exact");
    sf_noise_free(back);
    back = NULL;
    /* wrong version -> SF_EFORMAT */
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    sf_h5_attr_set_long(f, ".", "format_version", 99);
    H5Fclose(f);
    CHECK(sf_noise_load(path, &back) == SF_EFORMAT && !back, "unknown format_version -> SF_EFORMAT: %s",
          sf_last_error());
    remove(path);
    CHECK(sf_noise_load("/nonexistent/noise.h5", &back) == SF_EIO, "missing file -> SF_EIO");

    /* The committed table equals a fresh fit of the shared NSA files. */
    char committed[1024];
    snprintf(committed, sizeof committed, "%s/../models/noise_nsa.h5", tu_data_dir());
    CHECK(sf_noise_load(committed, &back) == SF_OK, "load committed models/noise_nsa.h5: %s", sf_last_error());
    CHECK(back && same_model(nm, back), "committed noise_nsa.h5 equals a fresh fit of the NSA files");
    sf_noise_free(back);
}

static void test_cli(void)
{
    char cmd[2048], out[256];
    snprintf(out, sizeof out, "/tmp/sedflow_test_noise_cli_%ld.h5", (long)getpid());
    snprintf(cmd, sizeof cmd, "'%s' noise fit --catalog '%s/nsa/A1367_NSAmastertable.fits' '%s/nsa/MKW8_NSAmastertable.fits' "
             "--min-count 20 --out '%s' 2>/dev/null", tu_cli(), tu_data_dir(), tu_data_dir(), out);
    CHECK(system(cmd) == 0, "sedflow noise fit --catalog A B --out exits 0");
    sf_noise *nm = NULL;
    CHECK(sf_noise_load(out, &nm) == SF_OK && nm && nm->min_count == 20, "CLI output loads, --min-count honoured");
    sf_noise_free(nm);
    snprintf(cmd, sizeof cmd, "'%s' noise show --noise '%s' | grep -c '^band' | grep -q '^5$'", tu_cli(), out);
    CHECK(system(cmd) == 0, "sedflow noise show prints 5 band tables");
    snprintf(cmd, sizeof cmd, "'%s' noise fit --bin-width -1 --out x.h5 2>/dev/null", tu_cli());
    int rc = system(cmd);
    CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 2, "bad --bin-width is a usage error (exit 2)");
    snprintf(cmd, sizeof cmd, "'%s' noise --help | grep -q min-snr", tu_cli());
    CHECK(system(cmd) == 0, "noise --help documents --min-snr");
    remove(out);
}

int main(void)
{
    sf_catalog *c = read_nsa();
    if (!c) return tu_finish("test_noise");
    char src[64] = "test";
    sf_noise *nm = NULL;
    CHECK(sf_noise_fit(c, NULL, src, &nm) == SF_OK, "fit NSA: %s", sf_last_error());
    if (nm) {
        test_fit_direct(c, nm);
        test_interp(nm);
        test_draws(nm);
        test_io(nm);
    }
    test_binning();
    test_cli();
    sf_noise_free(nm);
    sf_catalog_free(c);
    sf_noise_free(NULL);
    return tu_finish("test_noise");
}
