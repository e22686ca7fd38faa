/* sedflow validate: (A) a small flow trained here on a synthetic
 * conditional Gaussian, validated on held-out draws: the report's numbers
 * are consistent (ranks in 0..L, percentiles in (0, 1), p-values in
 * [0, 1], coverage and p-p deviation recomputed from the percentiles, mean
 * log q equal to the mean of the stored log q) and the trained flow is
 * roughly calibrated; (B) the SED path with derived properties on a tiny
 * simulated test set and an untrained 11-dim flow (smoke: 14 quantities,
 * ranks in range). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/h5util.h"
#include "sedflow/calib.h"
#include "sedflow/flow.h"
#include "sedflow/plot.h"
#include "sedflow/sim.h"
#include "test_flow_synth.h"
#include "testutil.h"

static int count_lines_starting(const char *s, const char *const *names, int n)
{
    int c = 0;
    for (int k = 0; k < n; k++) {
        char pat[64];
        snprintf(pat, sizeof pat, "\n%s ", names[k]);
        c += strstr(s, pat) != NULL;
    }
    return c;
}

/* Checks on a report file; returns the number of quantities. */
static size_t check_report(const char *path, size_t n_expect, size_t L, size_t P, const char *tag)
{
    hid_t f;
    if (sf_h5_open_read(path, &f)) {
        CHECK(0, "%s: report %s readable: %s", tag, path, sf_last_error());
        return 0;
    }
    long long nt = 0, ns = 0;
    double mlq = NAN;
    long long *rank = NULL;
    double *pit = NULL, *stats = NULL, *logq = NULL, *cov = NULL, *lev = NULL, *tarp = NULL;
    size_t nr = 0;
    sf_h5_attr_get_long(f, ".", "n_test", &nt);
    sf_h5_attr_get_long(f, ".", "n_samples", &ns);
    sf_h5_attr_get_double(f, ".", "mean_logq", &mlq);
    int ok = sf_h5_read_int64(f, "rank", 0, &rank, &nr) == SF_OK && sf_h5_read_double(f, "pit", nr, &pit, NULL) == SF_OK &&
             sf_h5_read_double(f, "stats", P * 8, &stats, NULL) == SF_OK &&
             sf_h5_read_double(f, "logq", 0, &logq, NULL) == SF_OK &&
             sf_h5_read_double(f, "coverage", P * SF_CALIB_NLEV, &cov, NULL) == SF_OK &&
             sf_h5_read_double(f, "levels", SF_CALIB_NLEV, &lev, NULL) == SF_OK &&
             sf_h5_read_double(f, "tarp_ecp", SF_CALIB_NLEV, &tarp, NULL) == SF_OK;
    H5Fclose(f);
    CHECK(ok && (size_t)nt == n_expect && (size_t)ns == L && nr == n_expect * P, "%s: report datasets (n %lld, L %lld, %zu ranks)",
          tag, nt, ns, nr);
    if (!ok || nr != n_expect * P) {
        free(rank), free(pit), free(stats), free(logq), free(cov), free(lev), free(tarp);
        return 0;
    }
    int rank_ok = 1, pit_ok = 1;
    for (size_t i = 0; i < nr; i++) {
        rank_ok &= rank[i] >= 0 && rank[i] <= (long long)L;
        pit_ok &= pit[i] > 0 && pit[i] < 1 && pit[i] >= rank[i] / (double)(L + 1) && pit[i] <= (rank[i] + 1) / (double)(L + 1);
    }
    CHECK(rank_ok, "%s: all ranks in 0..%zu", tag, L);
    CHECK(pit_ok, "%s: percentiles in (rank/(L+1), (rank+1)/(L+1))", tag);
    int p_ok = 1, cov_ok = 1, dev_ok = 1;
    for (size_t p = 0; p < P; p++) {
        const double *s = stats + p * 8; /* pp_maxdev,ks_p,chi2,dof,chi2_p,cov68,mean_pit,tails */
        p_ok &= s[1] >= 0 && s[1] <= 1 && s[4] >= 0 && s[4] <= 1 && s[2] >= 0 && s[3] >= 1;
        size_t in = 0;
        for (size_t i = 0; i < n_expect; i++) in += fabs(2 * pit[i * P + p] - 1) < 0.682689492137086;
        cov_ok &= fabs(s[5] - (double)in / (double)n_expect) < 1e-12;
        double D = 0;
        CHECK(sf_calib_ks(pit + p, n_expect, P, &D, NULL) == SF_OK, "%s: KS of column %zu", tag, p);
        dev_ok &= fabs(D - s[0]) < 1e-12;
        for (int k = 0; k < SF_CALIB_NLEV; k++) cov_ok &= cov[p * SF_CALIB_NLEV + k] >= 0 && cov[p * SF_CALIB_NLEV + k] <= 1;
    }
    CHECK(p_ok, "%s: KS and chi-square p-values in [0, 1], chi2 >= 0, dof >= 1", tag);
    CHECK(cov_ok, "%s: cov68 equals the fraction |2 pit - 1| < 0.6827; coverage curve in [0, 1]", tag);
    CHECK(dev_ok, "%s: p-p max deviation equals the KS D of the percentiles", tag);
    double s = 0;
    size_t nf = 0;
    for (size_t i = 0; i < n_expect; i++)
        if (isfinite(logq[i])) s += logq[i], nf++;
    CHECK(nf == n_expect && fabs(s / nf - mlq) < 1e-9 * (1 + fabs(mlq)), "%s: mean_logq %.6f = mean of logq", tag, mlq);
    int t_ok = 1;
    for (int k = 0; k < SF_CALIB_NLEV; k++) t_ok &= tarp[k] >= 0 && tarp[k] <= 1 && (k == 0 || tarp[k] >= tarp[k - 1]);
    CHECK(t_ok, "%s: TARP ECP in [0, 1] and non-decreasing", tag);
    if (!strcmp(tag, "gauss")) {
        int calib = 1;
        for (size_t p = 0; p < P; p++) calib &= fabs(stats[p * 8 + 5] - 0.6827) < 0.12;
        CHECK(calib, "gauss: a trained flow is roughly calibrated: |cov68 - 0.683| < 0.12 for all parameters");
    }
    free(rank), free(pit), free(stats), free(logq), free(cov), free(lev), free(tarp);
    return P;
}

static int write_sed_test(const char *path, size_t *nrows)
{
    sf_model *m = NULL;
    sf_noise *nm = NULL;
    char noise[1024];
    snprintf(noise, sizeof noise, "%s/../models/noise_nsa.h5", tu_data_dir()); /* as test_noise.c */
    if (sf_model_load(tu_data_dir(), &m) || sf_noise_load(noise, &nm)) {
        sf_model_free(m);
        return 1;
    }
    sf_sim_options so;
    sf_sim_options_default(&so);
    so.seed = 11, so.block = 256, so.nthreads = 1;
    sf_sim *sim = NULL;
    sf_simfile *sf = NULL;
    const sf_sim_rows *rows;
    sf_sim_counts cnt = {0};
    int bad = sf_sim_alloc(m, nm, &so, &sim) || sf_sim_block(sim, 0, &rows, &cnt) ||
              sf_simfile_create(path, &so, "test", &sf) || sf_simfile_append(sf, rows, rows->n, 1, &cnt);
    if (sf) bad |= sf_simfile_close(sf, 1) != SF_OK;
    *nrows = bad ? 0 : rows->n;
    sf_sim_free(sim);
    sf_noise_free(nm);
    sf_model_free(m);
    return bad;
}

int main(void)
{
    char dir[] = "/tmp/sedflow_test_validate_XXXXXX";
    if (!mkdtemp(dir)) return 1;
    char model[256], test[256], prefix[256], path[300], cmd[2048];
    static char out[1 << 16];
    const char *bin = tu_cli();
    const int quick = getenv("SEDFLOW_TEST_QUICK") != NULL;

    /* (A) synthetic Gaussian, trained flow */
    const int D = 3, C = 2;
    synth_model sm;
    synth_init(&sm, D, C, 21);
    const size_t ntrain = 4000, ntest = quick ? 150 : 300, L = quick ? 49 : 99;
    sf_flow_data d;
    memset(&d, 0, sizeof d);
    d.n = ntrain, d.D = D, d.C = C;
    d.theta = malloc(sizeof(double) * ntrain * D);
    d.x = malloc(sizeof(double) * ntrain * C);
    double lo[3] = {-20, -20, -20}, hi[3] = {20, 20, 20};
    d.lower = lo, d.upper = hi;
    snprintf(d.theta_names, sizeof d.theta_names, "a,b,c");
    synth_draw(&sm, ntrain, 21, 0, d.theta, d.x);
    sf_flow_config cfg = {.family = SF_FLOW_MAF, .D = D, .C = C, .K = 3, .H = 32, .seed = 5};
    sf_flow *f = NULL;
    sf_flow_trainer *t = NULL;
    sf_flow_train_config tc;
    sf_flow_train_config_default(&tc);
    tc.batch = 100, tc.lr = 2e-3, tc.patience = 5, tc.nthreads = 2;
    int ok = sf_flow_alloc(&cfg, &f) == SF_OK && sf_flow_trainer_alloc(f, &d, &tc, &t) == SF_OK;
    sf_flow_epoch_stats es = {0};
    int stop = 0;
    while (ok && !stop && sf_flow_trainer_epochs(t) < (quick ? 5 : 15)) {
        int more = 1;
        while (more && ok) ok = sf_flow_trainer_step(t, &more) == SF_OK;
        ok = ok && sf_flow_trainer_epoch_end(t, &es, &stop) == SF_OK;
    }
    if (ok) sf_flow_trainer_finish(t);
    snprintf(model, sizeof model, "%s/gauss_model.h5", dir);
    snprintf(test, sizeof test, "%s/gauss_test.h5", dir);
    ok = ok && sf_flow_save(f, model) == SF_OK;
    CHECK(ok, "trained a small flow (%ld epochs, val log q %.3f): %s", es.epoch, es.val_logq, ok ? "" : sf_last_error());
    sf_flow_trainer_free(t);
    sf_flow_free(f);
    free(d.theta), free(d.x);
    CHECK(synth_write(test, &sm, ntest, 99) == 0, "wrote a held-out test set of %zu rows", ntest);

    snprintf(prefix, sizeof prefix, "%s/gauss", dir);
    snprintf(cmd, sizeof cmd, "%s validate --model %s --test %s --ngal %zu --nsamples %zu --seed 3 --out %s --threads 2 2>&1",
             bin, model, test, ntest, L, prefix);
    int rc = tu_run(cmd, out, sizeof out);
    const char *gnames[3] = {"a", "b", "c"};
    CHECK(rc == 0 && count_lines_starting(out, gnames, 3) == 3 && strstr(out, "mean held-out log q"),
          "validate prints one row per parameter and the mean log q (rc %d): %.300s", rc, out);
    snprintf(path, sizeof path, "%s.h5", prefix);
    check_report(path, ntest, L, 3, "gauss");
    snprintf(path, sizeof path, "%s.csv", prefix);
    CHECK(access(path, R_OK) == 0, "CSV report written");
    if (sf_plot_available()) {
        int figs = 1;
        const char *suf[3] = {"_pp.png", "_sbc.png", "_coverage.png"};
        for (int k = 0; k < 3; k++) {
            snprintf(path, sizeof path, "%s%s", prefix, suf[k]);
            figs &= access(path, R_OK) == 0;
        }
        CHECK(figs, "p-p, SBC and coverage PNGs written");
    }
    /* same seed: same report numbers (determinism); printed table equal */
    static char out2[1 << 16];
    snprintf(cmd, sizeof cmd, "%s validate --model %s --test %s --ngal %zu --nsamples %zu --seed 3 --threads 1 --tarp-samples 20 2>&1 | grep -v 'TARP\\|sampling and ranks'",
             bin, model, test, ntest, L);
    tu_run(cmd, out2, sizeof out2);
    snprintf(cmd, sizeof cmd, "%s validate --model %s --test %s --ngal %zu --nsamples %zu --seed 3 --threads 2 --tarp-samples 20 2>&1 | grep -v 'TARP\\|sampling and ranks'",
             bin, model, test, ntest, L);
    tu_run(cmd, out, sizeof out);
    CHECK(strlen(out) > 200 && !strcmp(out, out2), "same seed, 1 or 2 threads: identical table");
    snprintf(cmd, sizeof cmd, "%s validate --model %s 2>&1", bin, model);
    CHECK(tu_run(cmd, out, sizeof out) == 2, "missing --test is a usage error");
    snprintf(cmd, sizeof cmd, "%s validate --model %s --test %s/nonexistent.h5 2>&1", bin, model, dir);
    CHECK(tu_run(cmd, out, sizeof out) == 1 && strstr(out, "error"), "missing test file is a runtime error");

    /* (B) SED path with derived properties: tiny simulated set, untrained flow */
    size_t nrows = 0;
    snprintf(test, sizeof test, "%s/sed_test.h5", dir);
    int wrote = write_sed_test(test, &nrows) == 0;
    CHECK(wrote && nrows >= 20, "simulated a tiny SED test set (%zu rows)", nrows);
    if (nrows >= 20) {
        sf_flow_config c2 = {.family = SF_FLOW_MAF, .D = SF_NU, .C = SF_NX, .K = 1, .H = 8, .seed = 3};
        sf_flow *f2 = NULL;
        sf_flow_data *td = NULL;
        ok = sf_flow_alloc(&c2, &f2) == SF_OK && sf_flow_data_load(test, &td) == SF_OK &&
             sf_flow_set_zscore(f2, td->n, td->theta, td->x) == SF_OK;
        if (ok) {
            sf_flow_set_prior(f2, sf_prior_lower, sf_prior_upper);
            sf_flow_prepare(f2);
        }
        snprintf(model, sizeof model, "%s/sed_model.h5", dir);
        ok = ok && sf_flow_save(f2, model) == SF_OK;
        CHECK(ok, "untrained SED flow saved: %s", ok ? "" : sf_last_error());
        sf_flow_data_free(td);
        sf_flow_free(f2);
        snprintf(prefix, sizeof prefix, "%s/sed", dir);
        snprintf(cmd, sizeof cmd, "%s validate --model %s --test %s --ngal 20 --nsamples 30 --out %s --no-plots --tarp-samples 10 --threads 2 2>&1",
                 bin, model, test, prefix);
        rc = tu_run(cmd, out, sizeof out);
        const char *dn[4] = {"logmstar", "log_sfr_1gyr", "log_z_mw", "tage_mw"};
        CHECK(rc == 0 && count_lines_starting(out, dn, 4) == 4, "SED validate lists the derived quantities (rc %d): %.400s", rc, out);
        snprintf(path, sizeof path, "%s.h5", prefix);
        check_report(path, 20, 30, 14, "sed");
    }
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) return 1;
    return tu_finish("test_validate");
}
