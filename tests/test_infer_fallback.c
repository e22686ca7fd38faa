/*
 * sedflow infer --mcmc-fallback (issue 6 part 4) with the shipped flow
 * (models/sedflow_default.h5) on a small CSV catalog: two simulated good
 * galaxies, three outside the training support with usable photometry (an
 * enormous sigma_r, z = 0.3 beyond the trained (0, 0.2], a negative u flux),
 * one with a NaN flux.  Checks: the candidates get finite in-box MCMC
 * samples with sedflow = False, mcmc = True and diagnostics; the unusable
 * galaxy keeps NaN samples and its reason; every other galaxy is
 * bit-identical to a run without the fallback; an interrupted run (stopped
 * between two MCMC groups) resumed on 2 threads equals the uninterrupted
 * 1-thread run; the posterior median of logmstar of the noiseless
 * forward-model galaxies lies within 3 posterior sd of the truth; option
 * errors.  Small sampler settings keep it short (the chains are not
 * converged; the point is the plumbing, the sampler has its own tests).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include <fitsio.h>

#include "io/h5util.h"
#include "sedflow/infer.h"
#include "sedflow/model.h"
#include "sedflow/prior.h"
#include "sedflow/sim.h"
#include "test_infer_rows.h"
#include "testutil.h"

#define CSV_PATH "test_infer_fallback_cat.csv"

enum { NGOOD = 2, ROW_SIGMA = 2, ROW_Z03 = 3, ROW_NEGU = 4, ROW_NAN = 5, NROWS = 6 };

typedef struct {
    long long id;
    double z, flux[5], ivar[5];
    double logmstar_true; /* NaN: not a forward-model galaxy */
} row;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static char MODEL[4096], NOISE[4096]; /* tu_path returns one static buffer */
static const char *model_path(void) { return MODEL; }
static const char *noise_path(void) { return NOISE; }

/* Noiseless fluxes of theta at z with ivar from the noise model's median sigma. */
static int forward_row(const sf_model *m, const sf_noise *nm, const double *theta, double z, row *r)
{
    sf_model_work *w = NULL;
    if (sf_model_work_alloc(m, 1, &w)) return -1;
    int rc = sf_model_photometry(m, w, 1, theta, &z, r->flux, NULL) ? -1 : 0;
    sf_model_work_free(w);
    const double k = 2.5 / log(10.0);
    for (int b = 0; b < 5 && !rc; b++) {
        double mag = 22.5 - 2.5 * log10(r->flux[b]), mu, sd;
        sf_noise_eval(nm, b, mag, &mu, &sd);
        r->ivar[b] = 1.0 / pow(r->flux[b] * mu / k, 2);
    }
    r->z = z;
    r->logmstar_true = theta[0];
    return rc;
}

static int make_rows(const sf_model *m, const sf_noise *nm, const sf_infer_support *sup, row *rows)
{
    /* good rows: simulated galaxies passing the sigma and colour checks */
    sim_good_row g[NGOOD];
    if (sim_good_rows(m, nm, sup, 0.02, 0.15, 1.0, 0.1, NGOOD, g)) return -1;
    const double k = 2.5 / log(10.0);
    for (int ng = 0; ng < NGOOD; ng++) {
        row *r = &rows[ng];
        r->id = 1000 + ng + 1;
        r->z = g[ng].z;
        r->logmstar_true = NAN;
        memcpy(r->flux, g[ng].flux, sizeof r->flux);
        memcpy(r->ivar, g[ng].ivar, sizeof r->ivar);
    }
    const double ta[12] = {10.5, 0.25, 0.25, 0.25, 0.25, 0.1, 2.0, 1e-3, 1e-3, 0.5, 0.5, -0.3};
    const double tb[12] = {11.3, 0.1, 0.2, 0.3, 0.4, 0.0, 5.0, 3e-3, 2e-3, 0.3, 0.2, 0.0};
    if (forward_row(m, nm, ta, 0.05, &rows[ROW_SIGMA]) || forward_row(m, nm, tb, 0.3, &rows[ROW_Z03]) ||
        forward_row(m, nm, ta, 0.08, &rows[ROW_NEGU]))
        return -1;
    rows[ROW_SIGMA].id = 2001;
    rows[ROW_SIGMA].ivar[2] = 1.0 / pow(rows[ROW_SIGMA].flux[2] * 5.0 / k, 2); /* sigma_r = 5 mag */
    rows[ROW_Z03].id = 2002;
    rows[ROW_NEGU].id = 2003;
    rows[ROW_NEGU].flux[0] = -0.4 * rows[ROW_NEGU].flux[0]; /* a noisy faint u: flux < 0, ivar as before */
    rows[ROW_NEGU].logmstar_true = NAN;                     /* not the forward model's flux any more */
    rows[ROW_NAN] = rows[0];
    rows[ROW_NAN].id = 2004;
    rows[ROW_NAN].flux[1] = NAN;
    return 0;
}

static int write_csv(const row *rows)
{
    FILE *fp = fopen(CSV_PATH, "w");
    if (!fp) return -1;
    fprintf(fp, "id,z,flux_u,flux_g,flux_r,flux_i,flux_z,ivar_u,ivar_g,ivar_r,ivar_i,ivar_z\n");
    for (int i = 0; i < NROWS; i++) {
        fprintf(fp, "%lld,%.17g", rows[i].id, rows[i].z);
        for (int b = 0; b < 5; b++) isnan(rows[i].flux[b]) ? fprintf(fp, ",nan") : fprintf(fp, ",%.17g", rows[i].flux[b]);
        for (int b = 0; b < 5; b++) fprintf(fp, ",%.17g", rows[i].ivar[b]);
        fprintf(fp, "\n");
    }
    return fclose(fp);
}

static int run_cli(const char *args, const char *log)
{
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "%s infer --model %s --catalog %s --data %s --noise %s %s > %s 2>&1", tu_cli(),
             model_path(), CSV_PATH, tu_data_dir(), noise_path(), args, log);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* ---- reading an output file ---------------------------------------------- */

enum { NDCOL = 5 };
static const char *DCOLS[NDCOL] = {"acceptance", "mcmc_rhat_max", "mcmc_tau_max", "mcmc_evals_per_step", "mcmc_best_chi2"};
typedef struct {
    size_t n, N;
    float *s[SF_INFER_NQ];
    double *sum[SF_INFER_NQ], *d[NDCOL];
    long long *flags, *nacc, *neval, mcmc_next, mcmc_n;
    char *reason;
    signed char *tf, *mcmc, *conv;
} result;

static void result_free(result *r)
{
    for (int q = 0; q < SF_INFER_NQ; q++) free(r->s[q]), free(r->sum[q]);
    for (int k = 0; k < NDCOL; k++) free(r->d[k]);
    free(r->flags), free(r->nacc), free(r->neval), free(r->reason), free(r->tf), free(r->mcmc), free(r->conv);
    memset(r, 0, sizeof *r);
}

static int read_bool(hid_t h, const char *name, size_t n, signed char **out)
{
    *out = malloc(n);
    hid_t et = H5Tenum_create(H5T_NATIVE_INT8), d = H5Dopen2(h, name, H5P_DEFAULT);
    signed char v0 = 0, v1 = 1;
    H5Tenum_insert(et, "FALSE", &v0);
    H5Tenum_insert(et, "TRUE", &v1);
    int bad = d < 0 || H5Dread(d, et, H5S_ALL, H5S_ALL, H5P_DEFAULT, *out) < 0;
    if (d >= 0) H5Dclose(d);
    H5Tclose(et);
    return bad;
}

static int read_result(const char *path, result *r)
{
    memset(r, 0, sizeof *r);
    hid_t h;
    if (sf_h5_open_read(path, &h)) return -1;
    long long n = 0, N = 0;
    int bad = sf_h5_attr_get_long(h, ".", "n_galaxies", &n) || sf_h5_attr_get_long(h, ".", "n_samples", &N) ||
              sf_h5_attr_get_long(h, ".", "mcmc_next", &r->mcmc_next) || sf_h5_attr_get_long(h, ".", "mcmc_n", &r->mcmc_n);
    r->n = (size_t)n, r->N = (size_t)N;
    for (int q = 0; q < SF_INFER_NQ && !bad; q++) {
        char nm[64];
        snprintf(nm, sizeof nm, "samples/%s", sf_infer_q_names[q]);
        bad |= sf_h5_read_float(h, nm, r->n * r->N, &r->s[q], NULL) != SF_OK;
        snprintf(nm, sizeof nm, "summary/%s", sf_infer_q_names[q]);
        bad |= sf_h5_read_double(h, nm, r->n * 3, &r->sum[q], NULL) != SF_OK;
    }
    for (int k = 0; k < NDCOL && !bad; k++) bad |= sf_h5_read_double(h, DCOLS[k], r->n, &r->d[k], NULL) != SF_OK;
    bad = bad || sf_h5_read_int64(h, "flags", r->n, &r->flags, NULL) || sf_h5_read_int64(h, "n_accepted", r->n, &r->nacc, NULL) ||
          sf_h5_read_int64(h, "mcmc_n_eval", r->n, &r->neval, NULL) || read_bool(h, "sedflow", r->n, &r->tf) ||
          read_bool(h, "mcmc", r->n, &r->mcmc) || read_bool(h, "mcmc_converged", r->n, &r->conv);
    if (!bad) {
        r->reason = malloc(r->n * SF_INFER_REASON_LEN);
        hid_t st = H5Tcopy(H5T_C_S1), d = H5Dopen2(h, "reason", H5P_DEFAULT);
        H5Tset_size(st, SF_INFER_REASON_LEN);
        bad = d < 0 || H5Dread(d, st, H5S_ALL, H5S_ALL, H5P_DEFAULT, r->reason) < 0;
        if (d >= 0) H5Dclose(d);
        H5Tclose(st);
    }
    H5Fclose(h);
    return bad ? -1 : 0;
}

/* Galaxy i identical in a and b (every dataset, bit for bit). */
static int same_row(const result *a, const result *b, size_t i)
{
    if (a->n != b->n || a->N != b->N || i >= a->n) return 0;
    for (int q = 0; q < SF_INFER_NQ; q++)
        if (memcmp(a->s[q] + i * a->N, b->s[q] + i * b->N, a->N * sizeof(float)) ||
            memcmp(a->sum[q] + i * 3, b->sum[q] + i * 3, 3 * sizeof(double)))
            return 0;
    for (int k = 0; k < NDCOL; k++)
        if (memcmp(&a->d[k][i], &b->d[k][i], sizeof(double))) return 0;
    return a->flags[i] == b->flags[i] && a->nacc[i] == b->nacc[i] && a->neval[i] == b->neval[i] && a->tf[i] == b->tf[i] &&
           a->mcmc[i] == b->mcmc[i] && a->conv[i] == b->conv[i] &&
           !strcmp(a->reason + i * SF_INFER_REASON_LEN, b->reason + i * SF_INFER_REASON_LEN);
}

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

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* ---- library-level checks ------------------------------------------------ */

static void test_wanted(void)
{
    const double f[5] = {1, 2, 3, 4, 5}, iv[5] = {10, 10, 10, 10, 10};
    double fneg[5] = {-0.5, 2, 3, 4, 5}, ivz[5] = {10, 0, 10, 10, 10}, fnan[5] = {1, NAN, 3, 4, 5};
    int ok = !sf_infer_mcmc_wanted(0, f, iv, 0.1) && sf_infer_mcmc_wanted(SF_INFER_SIGMA_HIGH, f, iv, 0.1) &&
             sf_infer_mcmc_wanted(SF_INFER_BLUE, f, iv, 0.1) && sf_infer_mcmc_wanted(SF_INFER_LEAKAGE, f, iv, 0.1) &&
             sf_infer_mcmc_wanted(SF_INFER_FEW_SAMPLES, f, iv, 0.1) && sf_infer_mcmc_wanted(SF_INFER_Z_RANGE, f, iv, 0.5) &&
             !sf_infer_mcmc_wanted(SF_INFER_Z_RANGE | SF_INFER_NOT_SAMPLED, f, iv, 0.7) &&
             !sf_infer_mcmc_wanted(SF_INFER_Z_RANGE | SF_INFER_NOT_SAMPLED, f, iv, -0.01) &&
             sf_infer_mcmc_wanted(SF_CAT_FLUX_NONPOS | SF_INFER_NOT_SAMPLED, fneg, iv, 0.1) &&
             !sf_infer_mcmc_wanted(SF_CAT_IVAR_NONPOS | SF_INFER_SIGMA_HIGH, f, ivz, 0.1) &&
             !sf_infer_mcmc_wanted(SF_INFER_SIGMA_HIGH, f, ivz, 0.1) &&
             !sf_infer_mcmc_wanted(SF_CAT_NONFINITE | SF_INFER_NOT_SAMPLED, fnan, iv, 0.1) &&
             !sf_infer_mcmc_wanted(SF_CAT_MISSING | SF_CAT_FLUX_NONPOS, fneg, iv, 0.1) &&
             !sf_infer_mcmc_wanted(1u << 6 /* id bad */, f, iv, 0.1) &&
             sf_infer_mcmc_wanted(SF_INFER_BLUE | SF_INFER_MCMC | SF_INFER_MCMC_NOCONV, f, iv, 0.1);
    CHECK(ok, "sf_infer_mcmc_wanted: support flags and flux <= 0 with usable photometry and 0 < z <= 0.6 only");
    CHECK(sf_infer_mcmc_seed(1, 0) != sf_infer_mcmc_seed(1, 1) && sf_infer_mcmc_seed(1, 0) != sf_infer_mcmc_seed(2, 0) &&
              sf_infer_mcmc_seed(1, 3) != sf_infer_galaxy_seed(1, 3),
          "MCMC seeds differ per row and seed and from the flow's");
}

/* ---- the CLI --------------------------------------------------------------- */

static void test_cli(const row *rows, int quick)
{
    const int N = quick ? 100 : 200;
    char common[512], args[1024];
    /* 22 walkers x 24 iterations (12 burn-in): 12 kept steps x 22 walkers = 264 >= N draws to thin from */
    snprintf(common, sizeof common,
             "--nsamples %d --seed 3 --block 4 --mcmc-walkers 22 --mcmc-iter %d --mcmc-burn %d --mcmc-start best "
             "--mcmc-n-start 100 --mcmc-pool 2",
             N, quick ? 14 : 24, quick ? 7 : 12);

    snprintf(args, sizeof args, "--out test_infer_fb0.h5 --nsamples %d --seed 3 --block 4 --threads 1", N);
    int rc = run_cli(args, "test_infer_fb0.log");
    result a, b;
    if (rc != 0 || read_result("test_infer_fb0.h5", &a)) {
        char *log = tu_slurp("test_infer_fb0.log");
        CHECK(0, "run without the fallback (rc %d): %s", rc, log ? log : "");
        free(log);
        return;
    }
    for (int i = 0; i < NGOOD; i++)
        CHECK(a.flags[i] == 0 && a.tf[i], "good row %d is trusted by the flow (flags 0x%llx)", i, a.flags[i]);
    CHECK((a.flags[ROW_SIGMA] & SF_INFER_SIGMA_HIGH) && (a.flags[ROW_Z03] & SF_INFER_Z_RANGE) &&
              (a.flags[ROW_NEGU] & SF_CAT_FLUX_NONPOS) && (a.flags[ROW_NAN] & SF_CAT_NONFINITE),
          "the catalog's out-of-support rows have their flags (0x%llx, 0x%llx, 0x%llx, 0x%llx)", a.flags[ROW_SIGMA],
          a.flags[ROW_Z03], a.flags[ROW_NEGU], a.flags[ROW_NAN]);
    CHECK(!a.mcmc[ROW_SIGMA] && isnan(a.d[1][ROW_SIGMA]) && a.mcmc_n == -1, "without the fallback: mcmc False, NaN diagnostics");

    snprintf(args, sizeof args, "--out test_infer_fb1.h5 --threads 1 --mcmc-fallback --fits test_infer_fb1.fits %s", common);
    double t0 = now_s();
    rc = run_cli(args, "test_infer_fb1.log");
    double dt = now_s() - t0;
    char *log = tu_slurp("test_infer_fb1.log");
    CHECK(rc == 0 && log && strstr(log, "MCMC fallback for 3 galaxies") && strstr(log, "CPU-s per galaxy"),
          "--mcmc-fallback run exits 0 and reports 3 galaxies and the MCMC time (%.1f s wall)", dt);
    if (log) {
        const char *t = strstr(log, "MCMC time:");
        if (t) printf("# %.*s\n", (int)strcspn(t, "\n"), t);
        if (rc) printf("%s\n", log);
    }
    free(log);
    if (read_result("test_infer_fb1.h5", &b)) {
        CHECK(0, "read the fallback output");
        result_free(&a);
        return;
    }
    CHECK(b.mcmc_n == 3 && b.mcmc_next == 3, "3 galaxies listed for the fallback, 3 done");
    const int fb_rows[3] = {ROW_SIGMA, ROW_Z03, ROW_NEGU};
    double *tmp = malloc(b.N * sizeof(double));
    for (int j = 0; j < 3; j++) {
        int i = fb_rows[j];
        int finite = 1, inbox = 1, sum_ok = 1;
        for (size_t k = 0; k < b.N; k++) {
            double t[SF_NTHETA];
            for (int q = 0; q < SF_NTHETA; q++) t[q] = b.s[q][i * b.N + k];
            for (int q = 0; q < SF_INFER_NQ; q++) finite &= isfinite(b.s[q][i * b.N + k]) != 0;
            inbox &= theta_in_box(t);
        }
        for (int q = 0; q < SF_INFER_NQ; q++) {
            for (size_t k = 0; k < b.N; k++) tmp[k] = b.s[q][i * b.N + k];
            qsort(tmp, b.N, sizeof(double), cmp_double);
            double pos = 0.5 * (double)(b.N - 1), fr = pos - floor(pos);
            size_t k0 = (size_t)floor(pos);
            double med = tmp[k0] + fr * (tmp[k0 + 1] - tmp[k0]);
            sum_ok &= fabs(med - b.sum[q][i * 3 + 1]) <= 1e-6 * (fabs(med) + 1e-6);
        }
        const char *reason = b.reason + (size_t)i * SF_INFER_REASON_LEN;
        uint32_t fl = (uint32_t)b.flags[i];
        CHECK(b.mcmc[i] && !b.tf[i] && (fl & SF_INFER_MCMC) && !(fl & SF_INFER_MCMC_FAILED) &&
                  (fl & ~(uint32_t)(SF_INFER_MCMC | SF_INFER_MCMC_NOCONV)) == (uint32_t)a.flags[i] &&
                  strstr(reason, "posterior from MCMC") && !strncmp(reason, a.reason + (size_t)i * SF_INFER_REASON_LEN, 20),
              "row %d (id %lld): mcmc True, sedflow False, flags 0x%x = flow flags + MCMC bits, reason '%s'", i, rows[i].id,
              fl, reason);
        CHECK(b.nacc[i] == (long long)b.N && finite && inbox && sum_ok,
              "row %d: %lld finite MCMC samples inside the prior box, summaries = their percentiles", i, b.nacc[i]);
        CHECK(isfinite(b.d[1][i]) && b.d[1][i] > 0.9 && isfinite(b.d[2][i]) && b.d[3][i] > 1 && b.d[3][i] < 60 &&
                  b.neval[i] > 22 * 30 && isfinite(b.d[4][i]) && isnan(b.d[0][i]) == isnan(a.d[0][i]) &&
                  (b.conv[i] != 0) == !(fl & SF_INFER_MCMC_NOCONV),
              "row %d diagnostics: max R-hat %.3g, max tau %.3g it, %.2f evaluations per walker-step (%lld), best chi2 "
              "%.3g, converged %d", i, b.d[1][i], b.d[2][i], b.d[3][i], b.neval[i], b.d[4][i], b.conv[i]);
        if (!isnan(rows[i].logmstar_true)) {
            for (size_t k = 0; k < b.N; k++) tmp[k] = b.s[0][i * b.N + k];
            double mean = 0, var = 0;
            for (size_t k = 0; k < b.N; k++) mean += tmp[k] / (double)b.N;
            for (size_t k = 0; k < b.N; k++) var += (tmp[k] - mean) * (tmp[k] - mean) / (double)(b.N - 1);
            double med = b.sum[0][i * 3 + 1], sd = sqrt(var);
            CHECK(fabs(med - rows[i].logmstar_true) <= 3 * sd,
                  "row %d recovers logmstar: median %.3f, sd %.3f, truth %.3f (%.2f sd)", i, med, sd,
                  rows[i].logmstar_true, (med - rows[i].logmstar_true) / sd);
        }
    }
    free(tmp);
    {
        int nan_ok = !b.mcmc[ROW_NAN] && b.nacc[ROW_NAN] == 0 && isnan(b.sum[0][ROW_NAN * 3 + 1]) &&
                     !(b.flags[ROW_NAN] & (SF_INFER_MCMC | SF_INFER_MCMC_FAILED)) && !b.tf[ROW_NAN];
        for (size_t k = 0; k < b.N; k++)
            for (int q = 0; q < SF_INFER_NQ; q++) nan_ok &= isnan(b.s[q][ROW_NAN * b.N + k]) != 0;
        CHECK(nan_ok && same_row(&a, &b, ROW_NAN), "the NaN-flux row keeps NaN samples, its flags and reason ('%s')",
              b.reason + ROW_NAN * SF_INFER_REASON_LEN);
    }
    int same = 1;
    for (size_t i = 0; i < b.n; i++)
        if (i != ROW_SIGMA && i != ROW_Z03 && i != ROW_NEGU) same &= same_row(&a, &b, i);
    CHECK(same, "every galaxy not listed for the fallback is bit-identical to the run without it");
    {
        fitsfile *fp = NULL;
        int status = 0, col = 0;
        char v[NROWS] = {0};
        fits_open_table(&fp, "test_infer_fb1.fits", READONLY, &status);
        fits_get_colnum(fp, CASEINSEN, "MCMC", &col, &status);
        fits_read_col(fp, TLOGICAL, col, 1, 1, NROWS, NULL, v, NULL, &status);
        if (fp) fits_close_file(fp, &status);
        CHECK(status == 0 && v[ROW_SIGMA] && v[ROW_Z03] && !v[0] && !v[ROW_NAN], "FITS table column MCMC");
    }

    /* 2 threads, interrupted between the two MCMC groups, resumed */
    remove("test_infer_fb2.h5");
    snprintf(args, sizeof args, "--out test_infer_fb2.h5 --threads 2 --mcmc-fallback --stop-after %d %s", NROWS + 1, common);
    rc = run_cli(args, "test_infer_fb2a.log");
    result c;
    int part = rc == 0 && read_result("test_infer_fb2.h5.tmp", &c) == 0;
    FILE *fp = fopen("test_infer_fb2.h5", "r");
    CHECK(part && !fp && c.mcmc_n == 3 && c.mcmc_next == 2 && same_row(&b, &c, ROW_SIGMA) && c.mcmc[ROW_SIGMA] &&
              !c.mcmc[ROW_NEGU],
          "--stop-after %d: OUT.tmp with the first MCMC group (2 of 3) done and written", NROWS + 1);
    if (fp) fclose(fp);
    if (part) result_free(&c);
    snprintf(args, sizeof args, "--out test_infer_fb2.h5 --threads 2 --mcmc-fallback --resume %s", common);
    rc = run_cli(args, "test_infer_fb2b.log");
    log = tu_slurp("test_infer_fb2b.log");
    same = rc == 0 && log && strstr(log, "resuming") && read_result("test_infer_fb2.h5", &c) == 0;
    for (size_t i = 0; same && i < c.n; i++) same &= same_row(&b, &c, i);
    CHECK(same, "interrupted + resumed on 2 threads equals the uninterrupted 1-thread run, bit for bit (rc %d)", rc);
    if (rc && log) printf("%s\n", log);
    free(log);
    result_free(&c);

    /* refusals */
    snprintf(args, sizeof args, "--out test_infer_fb3.h5 --mcmc-fallback --stop-after 2 %s", common);
    run_cli(args, "test_infer_fb3.log");
    snprintf(args, sizeof args, "--out test_infer_fb3.h5 --mcmc-fallback --resume %s --mcmc-walkers 24", common);
    rc = run_cli(args, "test_infer_fb3.log");
    log = tu_slurp("test_infer_fb3.log");
    CHECK(rc == 1 && log && strstr(log, "mcmc_walkers"), "--resume with other MCMC walkers is refused with a message");
    free(log);
    snprintf(args, sizeof args, "--out test_infer_fb3.h5 --resume --nsamples %d --seed 3 --block 4", N);
    rc = run_cli(args, "test_infer_fb3.log");
    log = tu_slurp("test_infer_fb3.log");
    CHECK(rc == 1 && log && strstr(log, "--mcmc-fallback"), "--resume without --mcmc-fallback of a fallback run is refused");
    free(log);
    rc = run_cli("--out test_infer_fb4.h5 --mcmc-walkers 30", "test_infer_fb4.log");
    CHECK(rc == 2, "--mcmc-walkers without --mcmc-fallback is a usage error (rc %d)", rc);
    rc = run_cli("--out test_infer_fb4.h5 --mcmc-fallback --mcmc-walkers 21", "test_infer_fb4.log");
    CHECK(rc == 2, "--mcmc-walkers 21 (odd) is a usage error (rc %d)", rc);
    rc = run_cli("--out test_infer_fb4.h5 --mcmc-fallback --mcmc-iter 100 --mcmc-burn 100", "test_infer_fb4.log");
    CHECK(rc == 2, "--mcmc-burn >= --mcmc-iter is a usage error (rc %d)", rc);

    result_free(&a);
    result_free(&b);
    const char *outs[] = {"test_infer_fb0.h5", "test_infer_fb1.h5", "test_infer_fb1.fits", "test_infer_fb2.h5",
                          "test_infer_fb3.h5.tmp", "test_infer_fb0.log", "test_infer_fb1.log", "test_infer_fb2a.log",
                          "test_infer_fb2b.log", "test_infer_fb3.log", "test_infer_fb4.log"};
    for (size_t i = 0; i < sizeof outs / sizeof outs[0] && !getenv("SEDFLOW_TEST_KEEP"); i++) remove(outs[i]);
}

int main(void)
{
    int quick = getenv("SEDFLOW_TEST_QUICK") != NULL;
    snprintf(MODEL, sizeof MODEL, "%s", tu_path(tu_data_dir(), "../models/sedflow_default.h5"));
    snprintf(NOISE, sizeof NOISE, "%s", tu_path(tu_data_dir(), "../models/noise_nsa.h5"));
    test_wanted();
    sf_model *m = NULL;
    sf_noise *nm = NULL;
    sf_infer *p = NULL;
    if (sf_model_load(tu_data_dir(), &m) || sf_noise_load(noise_path(), &nm) ||
        sf_infer_alloc(model_path(), tu_data_dir(), noise_path(), NULL, &p)) {
        CHECK(0, "load model data, noise table and the shipped flow: %s", sf_last_error());
        return tu_finish("test_infer_fallback");
    }
    row rows[NROWS];
    int ok = make_rows(m, nm, sf_infer_get_support(p), rows) == 0 && write_csv(rows) == 0;
    CHECK(ok, "wrote the test catalog (%d good rows, 3 MCMC candidates, 1 NaN flux)", NGOOD);
    if (ok) test_cli(rows, quick);
    sf_infer_free(p);
    sf_noise_free(nm);
    sf_model_free(m);
    if (!getenv("SEDFLOW_TEST_KEEP")) remove(CSV_PATH);
    return tu_finish("test_infer_fallback");
}
