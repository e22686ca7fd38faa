/*
 * sedflow infer (issue 5): quantiles, colour limits and the /support group,
 * the fast derived properties against sf_model_derived, and the whole CLI on
 * a small CSV catalog with hand-made bad rows: every good row gets finite
 * samples inside the prior box, every bad row the right flag and reason;
 * samples identical with 1 and 2 threads and after an interrupted and
 * resumed run.  The flow is a tiny MAF trained here on a small simulated
 * set (the sampling and flagging logic does not need a good flow).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sys/wait.h>

#include <fitsio.h>

#include "io/h5util.h"
#include "sedflow/infer.h"
#include "sedflow/model.h"
#include "sedflow/prior.h"
#include "sedflow/rng.h"
#include "sedflow/sim.h"
#include "test_infer_rows.h"
#include "testutil.h"

#define SIM_PATH "test_infer_sim.h5"
#define MODEL_PATH "test_infer_model.h5"
#define CSV_PATH "test_infer_cat.csv"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* numpy-style quantile of sorted finite values */
static double ref_quantile(const double *s, size_t m, double q)
{
    double pos = q * (double)(m - 1);
    size_t k = (size_t)floor(pos);
    double fr = pos - (double)k;
    return k + 1 < m ? s[k] + fr * (s[k + 1] - s[k]) : s[k];
}

static void test_quantiles(void)
{
    gsl_rng *r = sf_rng_alloc(4);
    int ok = 1;
    for (int trial = 0; trial < 50; trial++) {
        size_t n = 1 + (size_t)(gsl_rng_uniform(r) * 300);
        double *v = malloc(n * sizeof(double)), *s = malloc(n * sizeof(double));
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            double u = gsl_rng_uniform(r);
            v[i] = u < 0.05 ? NAN : (u < 0.3 ? floor(10 * u) : gsl_rng_uniform(r)); /* ties and NaN */
            if (isfinite(v[i])) s[m++] = v[i];
        }
        qsort(s, m, sizeof(double), cmp_double);
        const double q[5] = {0, 0.16, 0.5, 0.84, 1};
        double out[5];
        sf_infer_quantiles(v, n, q, 5, out);
        for (int j = 0; j < 5; j++) {
            double ref = m ? ref_quantile(s, m, q[j]) : NAN;
            if (!(m ? fabs(out[j] - ref) <= 1e-15 : isnan(out[j]))) ok = 0;
        }
        const double qd[3] = {0.84, 0.16, 0.5}; /* not ascending */
        sf_infer_quantiles(v, m, qd, 3, out);
        for (int j = 0; j < 3 && m; j++)
            if (!(fabs(out[j] - ref_quantile(s, m, qd[j])) <= 1e-15)) ok = 0;
        free(v);
        free(s);
    }
    gsl_rng_free(r);
    CHECK(ok, "quickselect quantiles equal sorted linear-interpolation quantiles (50 sets with ties and NaN)");
}

/* Simulate a small training set into SIM_PATH; returns rows written. */
static size_t make_sim(const sf_model *m, const sf_noise *nm, int nblocks)
{
    sf_sim_options o;
    sf_sim_options_default(&o);
    o.seed = 21;
    o.block = 1024;
    o.nthreads = 2;
    sf_sim *s = NULL;
    sf_simfile *f = NULL;
    sf_sim_counts c = {0};
    if (sf_sim_alloc(m, nm, &o, &s) || sf_simfile_create(SIM_PATH, &o, "test", &f)) return 0;
    for (int k = 0; k < nblocks; k++) {
        const sf_sim_rows *rows;
        if (sf_sim_block(s, (uint64_t)k, &rows, &c) || sf_simfile_append(f, rows, rows->n, (uint64_t)k + 1, &c)) break;
    }
    size_t n = sf_simfile_nrows(f);
    sf_simfile_close(f, 1);
    sf_sim_free(s);
    return n;
}

static int train_tiny(int epochs)
{
    sf_flow_data *d = NULL;
    if (sf_flow_data_load(SIM_PATH, &d)) return -1;
    sf_flow_config cfg = {SF_FLOW_MAF, d->D, d->C, 3, 32, 7, SF_FLOW_THETA_IDENTITY};
    sf_flow *f = NULL;
    sf_flow_trainer *t = NULL;
    sf_flow_train_config tc;
    sf_flow_train_config_default(&tc);
    tc.batch = 64;
    tc.lr = 3e-3;
    tc.nthreads = 2;
    int rc = -1;
    if (!sf_flow_alloc(&cfg, &f) && !sf_flow_trainer_alloc(f, d, &tc, &t)) {
        int stop = 0, ok = 1;
        sf_flow_epoch_stats es;
        while (ok && !stop && sf_flow_trainer_epochs(t) < epochs) {
            int more = 1;
            while (ok && more) ok = sf_flow_trainer_step(t, &more) == SF_OK;
            ok = ok && sf_flow_trainer_epoch_end(t, &es, &stop) == SF_OK;
        }
        sf_flow_trainer_finish(t);
        if (ok && !sf_flow_save(f, MODEL_PATH)) rc = 0;
    }
    sf_flow_trainer_free(t);
    sf_flow_free(f);
    sf_flow_data_free(d);
    return rc;
}

static void test_support(size_t nsim)
{
    /* colour limits against a direct sort of the simulated magnitudes */
    hid_t h;
    double *mag = NULL;
    size_t n = 0;
    if (sf_h5_open_read(SIM_PATH, &h) == SF_OK) {
        sf_h5_read_double(h, "mag", 0, &mag, &n);
        H5Fclose(h);
    }
    n /= 5;
    double lim[4];
    size_t nr = 0;
    sf_status st = sf_infer_colour_limits(SIM_PATH, 0.001, lim, &nr);
    CHECK(st == SF_OK && nr == nsim && n == nsim,
          "colour limits of the simulation (%zu rows)", nr);
    double *c = malloc(n * sizeof(double));
    int ok = n > 0;
    for (int k = 0; k < 4 && ok; k++) {
        for (size_t i = 0; i < n; i++) c[i] = mag[i * 5 + k] - mag[i * 5 + k + 1];
        qsort(c, n, sizeof(double), cmp_double);
        double ref = ref_quantile(c, n, 0.001);
        if (!(fabs(ref - lim[k]) < 1e-12) || !(lim[k] > c[0] && lim[k] < c[n / 100])) ok = 0;
    }
    CHECK(ok, "colour 0.1th percentiles equal the sorted-colour reference (u-g %.4f, g-r %.4f, r-i %.4f, i-z %.4f)",
          lim[0], lim[1], lim[2], lim[3]);
    free(c);
    free(mag);

    sf_infer_support s, r;
    st = sf_infer_support_read(MODEL_PATH, &r);
    CHECK(st == SF_OK && !r.has_colour && r.z_min == 0 && fabs(r.z_max - 0.2) < 1e-12,
          "model without /support: z range [%g, %g] = the simulator default, colour check off", r.z_min, r.z_max);
    st = sf_infer_support_from_sim(SIM_PATH, 0.001, &s);
    CHECK(st == SF_OK && s.z_min == 0 && s.z_max == 0.2,
          "support from the simulation file: z range [%g, %g]", s.z_min, s.z_max);
    st = sf_infer_support_write(MODEL_PATH, &s);
    if (!st) st = sf_infer_support_write(MODEL_PATH, &s); /* replacing works too */
    CHECK(st == SF_OK, "write /support into the model file twice: %s", sf_last_error());
    memset(&r, 0, sizeof r);
    st = sf_infer_support_read(MODEL_PATH, &r);
    CHECK(st == SF_OK && r.has_colour && !memcmp(r.colour_min, s.colour_min, sizeof r.colour_min) &&
              r.z_max == s.z_max && r.n_rows == (long long)nsim,
          "/support round trip (colour limits bit-identical)");
    sf_flow *f = NULL;
    CHECK(sf_flow_load(MODEL_PATH, &f) == SF_OK, "the model file with /support still loads as a flow");
    sf_flow_free(f);
}

static void test_derived(const sf_model *m, const sf_infer *p)
{
    const size_t n = 3000;
    double *th = malloc(n * SF_NTHETA * sizeof(double)), *z = malloc(n * sizeof(double));
    double *d1 = malloc(n * 3 * sizeof(double)), *d2 = malloc(n * 3 * sizeof(double));
    gsl_rng *r = sf_rng_alloc(9);
    double u[SF_NU];
    int ok = 1, exact = 1;
    for (int zi = 0; zi < 3; zi++) {
        double zz = zi == 0 ? 0.01 : zi == 1 ? 0.1 : 0.55;
        for (size_t i = 0; i < n; i++) {
            sf_prior_sample(SF_PRIOR_SEDFLOW, r, u);
            if (i % 7 == 0) u[5] = 0.5 + 13 * gsl_rng_uniform(r); /* bursts before and after 1 Gyr / tage */
            sf_u_to_theta(u, th + i * SF_NTHETA);
            z[i] = zz;
        }
        if (sf_model_derived(m, n, th, z, d1) || sf_infer_derived(p, n, th, zz, d2)) ok = 0;
        for (size_t i = 0; i < n * 3 && ok; i++) {
            if (d1[i] != d2[i]) exact = 0;
            if (!(fabs(d1[i] - d2[i]) <= 1e-12 * fabs(d1[i]))) ok = 0;
        }
    }
    CHECK(ok, "fast derived properties equal sf_model_derived (3 x %zu prior draws, z = 0.01, 0.1, 0.55; %s)", n,
          exact ? "bit-identical" : "within 1e-12");
    CHECK(sf_infer_derived(p, 1, th, 0.0, d2) == SF_EDOMAIN, "derived properties refuse z = 0");
    gsl_rng_free(r);
    free(th); free(z); free(d1); free(d2);
}

/* ---- the CSV catalog ------------------------------------------------------ */

enum { NGOOD = 6, NBAD = 9, NROWS = NGOOD + NBAD };
typedef struct {
    long long id;
    double z, flux[5], ivar[5];
    int missing_band; /* -1 none */
    uint32_t expect;  /* flag bits that must be set (pre-sampling) */
    const char *reason; /* substring of the reason */
    int sampled;
} row;

static const char *BAD_NAMES[NBAD] = {"NaN flux", "ivar 0", "negative flux", "z = 0.5",
                                      "z = -0.01", "missing band", "very blue colour", "enormous sigma",
                                      "every check at once"};

/* Good rows: simulated galaxies (another seed) that pass the sigma and
 * colour checks by an independent computation; bad rows derived from them. */
static int make_rows(const sf_model *m, const sf_noise *nm, const sf_infer_support *sup, row *rows)
{
    sim_good_row g[NGOOD];
    if (sim_good_rows(m, nm, sup, -1.0, 1.0, 3.0, 0.0, NGOOD, g)) return -1;
    const double k = 2.5 / log(10.0);
    for (int ng = 0; ng < NGOOD; ng++) {
        row *r = &rows[ng];
        memset(r, 0, sizeof *r);
        r->id = 1000 + ng + 1;
        r->z = g[ng].z;
        r->missing_band = -1;
        r->sampled = 1;
        r->reason = "ok";
        memcpy(r->flux, g[ng].flux, sizeof r->flux);
        memcpy(r->ivar, g[ng].ivar, sizeof r->ivar);
    }
    for (int j = 0; j < NBAD; j++) {
        row *r = &rows[NGOOD + j];
        *r = rows[j % NGOOD];
        r->id = 2000 + j;
        r->sampled = 0;
        switch (j) {
        case 0: r->flux[2] = NAN; r->expect = SF_CAT_NONFINITE | SF_INFER_NOT_SAMPLED; r->reason = "non-finite value in band r"; break;
        case 1: r->ivar[1] = 0; r->expect = SF_CAT_IVAR_NONPOS | SF_INFER_NOT_SAMPLED; r->reason = "ivar <= 0 in band g"; break;
        case 2: r->flux[3] = -5; r->expect = SF_CAT_FLUX_NONPOS | SF_INFER_NOT_SAMPLED; r->reason = "flux <= 0 in band i"; break;
        case 3: r->z = 0.5; r->expect = SF_INFER_Z_RANGE; r->sampled = 1; r->reason = "z = 0.5 outside the trained range"; break;
        case 4: r->z = -0.01; r->expect = SF_INFER_Z_RANGE | SF_INFER_NOT_SAMPLED; r->reason = "z = -0.01 outside the trained range"; break;
        case 5: r->missing_band = 4; r->expect = SF_CAT_MISSING | SF_INFER_NOT_SAMPLED; r->reason = "missing value in band z"; break;
        case 6: {
            /* u - g one magnitude bluer than the training limit, sigma_u at the noise median */
            double mg = 22.5 - 2.5 * log10(r->flux[1]), mu_new = mg + sup->colour_min[0] - 1.0, mu, sd;
            sf_noise_eval(nm, 0, mu_new, &mu, &sd);
            r->flux[0] = pow(10.0, -0.4 * (mu_new - 22.5));
            r->ivar[0] = 1.0 / pow(r->flux[0] * mu / k, 2);
            r->expect = SF_INFER_BLUE;
            r->sampled = 1;
            r->reason = "colour bluer than the training set's 0.1 percentile [u-g:";
            break;
        }
        case 7: r->ivar[2] = 1.0 / pow(r->flux[2] * 5.0 / k, 2); /* sigma_r = 5 mag */
            r->expect = SF_INFER_SIGMA_HIGH; r->sampled = 1; r->reason = "sigma unusually high for its magnitude [sigma_r 5 >"; break;
        case 8: { /* u - g too blue, sigma 5 mag in all five bands, z < 0: ~330 characters
                   * of reasons (the old 255-byte field cut them); the last must arrive whole */
            double mg = 22.5 - 2.5 * log10(r->flux[1]);
            r->flux[0] = pow(10.0, -0.4 * (mg + sup->colour_min[0] - 1.0 - 22.5));
            for (int b = 0; b < 5; b++) r->ivar[b] = 1.0 / pow(r->flux[b] * 5.0 / k, 2);
            r->z = -0.01;
            r->expect = SF_INFER_BLUE | SF_INFER_SIGMA_HIGH | SF_INFER_Z_RANGE | SF_INFER_NOT_SAMPLED;
            r->reason = "sigma_z 5 > "; /* and below: the text ends with the not-sampled reason */
            break;
        }
        }
    }
    return 0;
}

static int write_csv(const row *rows)
{
    FILE *fp = fopen(CSV_PATH, "w");
    if (!fp) return -1;
    fprintf(fp, "id,z,flux_u,flux_g,flux_r,flux_i,flux_z,ivar_u,ivar_g,ivar_r,ivar_i,ivar_z\n");
    for (int i = 0; i < NROWS; i++) {
        const row *r = &rows[i];
        fprintf(fp, "%lld,%.17g", r->id, r->z);
        for (int b = 0; b < 5; b++) {
            if (b == r->missing_band) fprintf(fp, ",");
            else if (isnan(r->flux[b])) fprintf(fp, ",nan");
            else fprintf(fp, ",%.17g", r->flux[b]);
        }
        for (int b = 0; b < 5; b++) fprintf(fp, ",%.17g", r->ivar[b]);
        fprintf(fp, "\n");
    }
    return fclose(fp);
}

/* The test's flow is trained for seconds (acceptance can be ~0.1 under SEDFLOW_TEST_QUICK):
   a proposal budget of 10^6 instead of the default 10 N keeps every good row complete. */
static int run_cli(const char *args, const char *log)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s infer --model %s --catalog %s --data %s --noise %s --max-proposals 1000000 %s > %s 2>&1", tu_cli(),
             MODEL_PATH, CSV_PATH, tu_data_dir(), tu_path(tu_data_dir(), "../models/noise_nsa.h5"), args, log);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

typedef struct {
    size_t n, N;
    float *s[SF_INFER_NQ];
    double *sum[SF_INFER_NQ], *acc;
    long long *flags, *nacc, *id;
    char *reason;
    signed char *tf;
} result;

static void result_free(result *r)
{
    for (int q = 0; q < SF_INFER_NQ; q++) {
        free(r->s[q]);
        free(r->sum[q]);
    }
    free(r->acc); free(r->flags); free(r->nacc); free(r->id); free(r->reason); free(r->tf);
    memset(r, 0, sizeof *r);
}

static int read_result(const char *path, result *r)
{
    memset(r, 0, sizeof *r);
    hid_t h;
    if (sf_h5_open_read(path, &h)) return -1;
    long long n = 0, N = 0;
    int bad = sf_h5_attr_get_long(h, ".", "n_galaxies", &n) || sf_h5_attr_get_long(h, ".", "n_samples", &N);
    r->n = (size_t)n, r->N = (size_t)N;
    for (int q = 0; q < SF_INFER_NQ && !bad; q++) {
        char nm[64];
        snprintf(nm, sizeof nm, "samples/%s", sf_infer_q_names[q]);
        bad |= sf_h5_read_float(h, nm, r->n * r->N, &r->s[q], NULL) != SF_OK;
        snprintf(nm, sizeof nm, "summary/%s", sf_infer_q_names[q]);
        bad |= sf_h5_read_double(h, nm, r->n * 3, &r->sum[q], NULL) != SF_OK;
    }
    bad = bad || sf_h5_read_double(h, "acceptance", r->n, &r->acc, NULL) || sf_h5_read_int64(h, "flags", r->n, &r->flags, NULL) ||
          sf_h5_read_int64(h, "n_accepted", r->n, &r->nacc, NULL) || sf_h5_read_int64(h, "id", r->n, &r->id, NULL);
    if (!bad) {
        r->reason = malloc(r->n * SF_INFER_REASON_LEN);
        r->tf = malloc(r->n);
        hid_t st = H5Tcopy(H5T_C_S1), et = H5Tenum_create(H5T_NATIVE_INT8);
        H5Tset_size(st, SF_INFER_REASON_LEN);
        signed char v0 = 0, v1 = 1;
        H5Tenum_insert(et, "FALSE", &v0);
        H5Tenum_insert(et, "TRUE", &v1);
        hid_t d1 = H5Dopen2(h, "reason", H5P_DEFAULT), d2 = H5Dopen2(h, "sedflow", H5P_DEFAULT);
        bad = H5Dread(d1, st, H5S_ALL, H5S_ALL, H5P_DEFAULT, r->reason) < 0 ||
              H5Dread(d2, et, H5S_ALL, H5S_ALL, H5P_DEFAULT, r->tf) < 0;
        H5Dclose(d1); H5Dclose(d2); H5Tclose(st); H5Tclose(et);
    }
    H5Fclose(h);
    return bad ? -1 : 0;
}

static int same_samples(const result *a, const result *b)
{
    if (a->n != b->n || a->N != b->N || !a->s[0] || !b->s[0]) return 0;
    for (int q = 0; q < SF_INFER_NQ; q++)
        if (memcmp(a->s[q], b->s[q], a->n * a->N * sizeof(float)) || memcmp(a->sum[q], b->sum[q], a->n * 3 * sizeof(double)))
            return 0;
    return !memcmp(a->flags, b->flags, a->n * sizeof(long long)) && !memcmp(a->acc, b->acc, a->n * sizeof(double));
}

/* physical-parameter box implied by the sampling-space prior box */
static int theta_in_box(const double *t)
{
    double bs = t[1] + t[2] + t[3] + t[4];
    int ok = t[0] >= 7 && t[0] <= 12.5 && fabs(bs - 1) < 1e-5 && t[5] >= 0 && t[5] <= 1 && t[6] >= 0.01 - 1e-6 &&
             t[6] <= 13.27 + 1e-5;
    for (int k = 1; k <= 4; k++) ok &= t[k] >= -1e-7 && t[k] <= 1 + 1e-7;
    for (int k = 7; k <= 8; k++) ok &= t[k] >= 4.49e-5 * 0.999 && t[k] <= 0.015 * 1.001;
    ok &= t[9] >= 0 && t[9] <= 3 && t[10] >= 0 && t[10] <= 3 && t[11] >= -2 && t[11] <= 1;
    return ok;
}

static void test_cli(const row *rows, int quick)
{
    const int N = quick ? 200 : 1000;
    char args[512];
    snprintf(args, sizeof args, "--out test_infer_t1.h5 --nsamples %d --seed 5 --threads 1 --block 4 --fits test_infer_t1.fits", N);
    int rc = run_cli(args, "test_infer_t1.log");
    char *log = tu_slurp("test_infer_t1.log");
    CHECK(rc == 0, "sedflow infer exits 0 on the catalog with bad rows (rc %d)", rc);
    CHECK(log && strstr(log, "15 galaxies") && strstr(log, "processed 15") && strstr(log, "flagged by reason") &&
              strstr(log, "ms per galaxy") && strstr(log, "log M*"),
          "the run prints a summary (galaxies, flags by reason, time per galaxy, log M*)");
    if (log && rc) printf("%s\n", log);
    free(log);
    result a;
    if (read_result("test_infer_t1.h5", &a)) {
        CHECK(0, "read the output catalog");
        return;
    }
    CHECK(a.n == NROWS && a.N == (size_t)N, "output has %zu galaxies x %zu samples", a.n, a.N);
    for (int i = 0; i < NROWS && a.n == NROWS; i++) {
        const row *r = &rows[i];
        uint32_t fl = (uint32_t)a.flags[i];
        const char *reason = a.reason + (size_t)i * SF_INFER_REASON_LEN;
        int finite = 1, inbox = 1;
        for (size_t k = 0; k < a.N && r->sampled; k++) {
            double t[SF_NTHETA];
            for (int q = 0; q < SF_NTHETA; q++) t[q] = a.s[q][i * a.N + k];
            for (int q = 0; q < SF_INFER_NQ; q++) finite &= isfinite(a.s[q][i * a.N + k]) != 0;
            inbox &= theta_in_box(t);
        }
        const uint32_t pre = 0x7FFu & ~SF_INFER_LEAKAGE; /* bits before sampling */
        if (i < NGOOD) {
            CHECK(a.id[i] == r->id && (fl & pre) == 0 && a.nacc[i] == (long long)a.N && finite && inbox,
                  "good row %d (id %lld): no pre-sampling flag, %lld finite samples inside the prior box (flags 0x%x: %s)",
                  i, a.id[i], a.nacc[i], fl, reason);
        } else {
            const char *nm = BAD_NAMES[i - NGOOD];
            int nan_rows = 1;
            for (size_t k = 0; k < a.N && !r->sampled; k++)
                for (int q = 0; q < SF_INFER_NQ; q++) nan_rows &= isnan(a.s[q][i * a.N + k]) != 0;
            CHECK((fl & r->expect) == r->expect && ((fl & pre) & ~r->expect) == 0 && strstr(reason, r->reason) && !a.tf[i],
                  "bad row '%s': flags 0x%x (want 0x%x), sedflow False, reason '%s'", nm, fl, r->expect, reason);
            if (i == NROWS - 1) {
                const char *end = "; not sampled: z outside the forward model's (0, 0.6]";
                size_t len = strlen(reason);
                CHECK(len > 255 && len >= strlen(end) && !strcmp(reason + len - strlen(end), end),
                      "every check at once: %zu characters of reasons, the last one whole", len);
            }
            if (r->sampled)
                CHECK(a.nacc[i] == (long long)a.N && finite && inbox, "bad row '%s' is still sampled: finite, in the box", nm);
            else
                CHECK(a.nacc[i] == 0 && nan_rows && isnan(a.acc[i]) && isnan(a.sum[0][i * 3 + 1]),
                      "bad row '%s' is not sampled: NaN samples and summaries, never zeros", nm);
        }
    }
    /* summaries and the leakage flag agree with the stored samples */
    int sum_ok = 1, leak_ok = 1, tf_ok = 1;
    double *tmp = malloc(a.N * sizeof(double));
    for (size_t i = 0; i < a.n; i++) {
        if (((uint32_t)a.flags[i] & SF_INFER_NOT_SAMPLED) == 0) {
            leak_ok &= ((a.flags[i] & SF_INFER_LEAKAGE) != 0) == (a.acc[i] < 0.5);
            for (int q = 0; q < SF_INFER_NQ; q++) {
                for (size_t k = 0; k < a.N; k++) tmp[k] = a.s[q][i * a.N + k];
                qsort(tmp, a.N, sizeof(double), cmp_double);
                double med = ref_quantile(tmp, a.N, 0.5), p16 = ref_quantile(tmp, a.N, 0.16);
                double sc = fabs(med) + 1e-6;
                if (!(fabs(med - a.sum[q][i * 3 + 1]) < 1e-6 * sc) || !(fabs(p16 - a.sum[q][i * 3]) < 1e-6 * (fabs(p16) + 1e-6)))
                    sum_ok = 0;
            }
        }
        tf_ok &= (a.tf[i] != 0) == (a.flags[i] == 0);
    }
    free(tmp);
    CHECK(sum_ok, "summaries (p16, median) equal the percentiles of the stored samples");
    CHECK(leak_ok, "leakage flag set exactly when acceptance < 0.5");
    CHECK(tf_ok, "sedflow is True exactly when no flag is set");
    {
        fitsfile *fp = NULL;
        int status = 0;
        long nrows = 0;
        fits_open_table(&fp, "test_infer_t1.fits", READONLY, &status);
        fits_get_num_rows(fp, &nrows, &status);
        int col = 0;
        fits_get_colnum(fp, CASEINSEN, "LOGMSTAR_P50", &col, &status);
        double v = 0;
        fits_read_col(fp, TDOUBLE, col, 1, 1, 1, NULL, &v, NULL, &status);
        if (fp) fits_close_file(fp, &status);
        CHECK(status == 0 && nrows == NROWS && v == a.sum[0][1], "FITS summary table: %ld rows, LOGMSTAR_P50 of row 1 matches", nrows);
    }

    /* 2 threads, another block size */
    snprintf(args, sizeof args, "--out test_infer_t2.h5 --nsamples %d --seed 5 --threads 2 --block 3", N);
    result b;
    rc = run_cli(args, "test_infer_t2.log");
    CHECK(rc == 0 && read_result("test_infer_t2.h5", &b) == 0 && same_samples(&a, &b),
          "2 threads and block 3 give bit-identical samples, summaries and flags");
    result_free(&b);

    /* interrupted after 5 galaxies, resumed on 2 threads */
    remove("test_infer_t3.h5");
    remove("test_infer_t3.h5.tmp");
    snprintf(args, sizeof args, "--out test_infer_t3.h5 --nsamples %d --seed 5 --threads 1 --block 2 --stop-after 5", N);
    rc = run_cli(args, "test_infer_t3a.log");
    FILE *fp = fopen("test_infer_t3.h5", "r"), *fq = fopen("test_infer_t3.h5.tmp", "r");
    CHECK(rc == 0 && !fp && fq, "--stop-after 5 leaves OUT.tmp and no OUT");
    if (fp) fclose(fp);
    if (fq) fclose(fq);
    snprintf(args, sizeof args, "--out test_infer_t3.h5 --nsamples %d --seed 5 --threads 2 --block 4 --resume", N);
    rc = run_cli(args, "test_infer_t3b.log");
    log = tu_slurp("test_infer_t3b.log");
    CHECK(rc == 0 && log && strstr(log, "resuming") && read_result("test_infer_t3.h5", &b) == 0 && same_samples(&a, &b),
          "interrupted + resumed run equals the uninterrupted one");
    free(log);
    result_free(&b);

    /* resume with another seed is refused */
    remove("test_infer_t4.h5.tmp");
    snprintf(args, sizeof args, "--out test_infer_t4.h5 --nsamples %d --seed 5 --stop-after 2", N);
    run_cli(args, "test_infer_t4.log");
    /* a new run over an existing OUT.tmp (an interrupted run, or another run writing it) is refused
       before anything is touched; so is an output that is the input catalog or a folder */
    struct stat st0, st1;
    int have0 = stat("test_infer_t4.h5.tmp", &st0) == 0;
    rc = run_cli(args, "test_infer_t4.log");
    log = tu_slurp("test_infer_t4.log");
    CHECK(have0 && rc == 2 && log && strstr(log, "exists") && stat("test_infer_t4.h5.tmp", &st1) == 0 &&
              st1.st_size == st0.st_size && st1.st_mtime == st0.st_mtime,
          "rerun without --resume over OUT.tmp refused (rc %d), OUT.tmp untouched", rc);
    free(log);
    rc = run_cli("--out " CSV_PATH " --nsamples 10", "test_infer_t6.log");
    log = tu_slurp("test_infer_t6.log");
    CHECK(rc == 2 && log && strstr(log, "same file as"), "--out = the input catalog refused (rc %d)", rc);
    free(log);
    struct stat sm0, sm1;
    stat(MODEL_PATH, &sm0);
    rc = run_cli("--out " MODEL_PATH " --nsamples 10", "test_infer_t6.log");
    int rc2 = run_cli("--out test_infer_t7.h5 --fits " MODEL_PATH " --nsamples 10", "test_infer_t6.log");
    stat(MODEL_PATH, &sm1);
    CHECK(rc == 2 && rc2 == 2 && sm1.st_size == sm0.st_size && sm1.st_mtime == sm0.st_mtime,
          "--out or --fits = the model refused, model untouched (rc %d, %d)", rc, rc2);
    rc = run_cli("--out test_infer_t7.h5 --fits ./test_infer_t7.h5 --nsamples 10", "test_infer_t6.log");
    CHECK(rc == 2 && access("test_infer_t7.h5", F_OK) != 0, "--fits = --out refused before any work (rc %d)", rc);
    rc = run_cli("--out . --nsamples 10", "test_infer_t6.log");
    CHECK(rc == 2, "--out a folder refused before any work (rc %d)", rc);
    rc = run_cli("--out /nonexistent_sedflow_dir/x.h5 --nsamples 10", "test_infer_t6.log");
    CHECK(rc == 2, "--out in a missing folder refused before any work (rc %d)", rc);
    snprintf(args, sizeof args, "--out test_infer_t4.h5 --nsamples %d --seed 6 --resume", N);
    rc = run_cli(args, "test_infer_t4.log");
    log = tu_slurp("test_infer_t4.log");
    CHECK(rc == 1 && log && strstr(log, "seed"), "--resume with a different seed is refused with a message");
    free(log);

    /* --skip-flagged: the flagged but samplable rows get NaN */
    snprintf(args, sizeof args, "--out test_infer_t5.h5 --nsamples %d --seed 5 --skip-flagged", N);
    rc = run_cli(args, "test_infer_t5.log");
    int skip_ok = rc == 0 && read_result("test_infer_t5.h5", &b) == 0;
    for (int i = NGOOD; skip_ok && i < NROWS; i++)
        skip_ok = (b.flags[i] & SF_INFER_NOT_SAMPLED) && b.nacc[i] == 0 && isnan(b.s[0][i * b.N]);
    for (int i = 0; skip_ok && i < NGOOD; i++)
        skip_ok = (b.flags[i] & 0x7FF & ~SF_INFER_LEAKAGE) != 0 ||
                  !memcmp(b.s[0] + i * b.N, a.s[0] + i * a.N, a.N * sizeof(float));
    CHECK(skip_ok, "--skip-flagged: every flagged row unsampled (NaN), unflagged rows unchanged");
    result_free(&b);
    result_free(&a);

    rc = run_cli("--out test_infer_t6.h5 --nsamples 0", "test_infer_t6.log");
    CHECK(rc == 2, "--nsamples 0 is a usage error (rc %d)", rc);
    const char *outs[] = {"test_infer_t1.h5", "test_infer_t1.fits", "test_infer_t2.h5", "test_infer_t3.h5",
                          "test_infer_t4.h5.tmp", "test_infer_t5.h5", "test_infer_t1.log", "test_infer_t2.log",
                          "test_infer_t3a.log", "test_infer_t3b.log", "test_infer_t4.log", "test_infer_t5.log",
                          "test_infer_t6.log"};
    for (size_t i = 0; i < sizeof outs / sizeof outs[0] && !getenv("SEDFLOW_TEST_KEEP"); i++) remove(outs[i]);
}

int main(void)
{
    int quick = getenv("SEDFLOW_TEST_QUICK") != NULL;
    test_quantiles();
    sf_model *m = NULL;
    sf_noise *nm = NULL;
    if (sf_model_load(tu_data_dir(), &m) || sf_noise_load(tu_path(tu_data_dir(), "../models/noise_nsa.h5"), &nm)) {
        CHECK(0, "load model data and noise table: %s", sf_last_error());
        return tu_finish("test_infer");
    }
    size_t nsim = make_sim(m, nm, quick ? 3 : 6);
    CHECK(nsim > 500, "simulated %zu training rows", nsim);
    CHECK(train_tiny(quick ? 3 : 8) == 0, "trained a tiny MAF (3 blocks x 32 units): %s", sf_last_error());
    test_support(nsim);
    sf_infer *p = NULL;
    sf_status st = sf_infer_alloc(MODEL_PATH, tu_data_dir(), tu_path(tu_data_dir(), "../models/noise_nsa.h5"), NULL, &p);
    CHECK(st == SF_OK, "infer plan: %s", sf_last_error());
    if (p) {
        test_derived(m, p);
        row rows[NROWS];
        int ok = make_rows(m, nm, sf_infer_get_support(p), rows) == 0 && write_csv(rows) == 0;
        CHECK(ok, "wrote the test catalog (%d good, %d bad rows)", NGOOD, NBAD);
        if (ok) test_cli(rows, quick);
    }
    sf_infer_free(p);
    sf_noise_free(nm);
    sf_model_free(m);
    if (!getenv("SEDFLOW_TEST_KEEP")) { /* keep the files for debugging */
        remove(SIM_PATH);
        remove(MODEL_PATH);
        remove(CSV_PATH);
    }
    return tu_finish("test_infer");
}
