/* The SED posterior (paper eq. 1 x prior box) and its MCMC: likelihood
 * values against the forward model, band masking, errors; derived
 * properties; percentiles; single vs pooled driver, thread independence;
 * recovery of log_mstar on simulated galaxies; the mcmc and compare CLIs. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sedflow/flow.h"
#include "sedflow/rng.h"
#include "sedflow/sedpost.h"
#include "sedflow/sim.h"
#include "testutil.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static void test_likelihood(const sf_model *m)
{
    gsl_rng *r = sf_rng_alloc(5);
    double u[40 * SF_NU], th[SF_NTHETA], fm[SF_NBANDS], z = 0.07;
    double flux[SF_NBANDS] = {12, 40, 80, 110, 140}, ivar[SF_NBANDS] = {0.5, 2, 3, 1.5, 0.2};
    for (int i = 0; i < 40; i++) sf_prior_sample(SF_PRIOR_SEDFLOW, r, u + i * SF_NU);
    u[3 * SF_NU + 0] = 13.0;  /* logmstar above the box */
    u[17 * SF_NU + 5] = -1.0; /* tburst below */
    sf_sedpost *p = NULL;
    CHECK(sf_sedpost_alloc(m, flux, ivar, z, SF_PRIOR_SEDFLOW, 16, &p) == SF_OK, "alloc: %s", sf_last_error());
    double lp[40];
    CHECK(sf_sedpost_logpost_batch(u, 40, lp, p) == SF_OK, "batch of 40 > capacity 16");
    double maxrel = 0;
    int inf_ok = 1;
    sf_model_work *w = NULL;
    sf_model_work_alloc(m, 1, &w);
    for (int i = 0; i < 40; i++) {
        double lpr = sf_prior_logpdf(SF_PRIOR_SEDFLOW, u + i * SF_NU);
        if (lpr == -INFINITY) {
            inf_ok &= lp[i] == -INFINITY;
            continue;
        }
        sf_u_to_theta(u + i * SF_NU, th);
        sf_model_photometry(m, w, 1, th, &z, fm, NULL);
        double c2 = 0;
        for (int b = 0; b < SF_NBANDS; b++) c2 += ivar[b] * (flux[b] - fm[b]) * (flux[b] - fm[b]);
        double ref = lpr - 0.5 * c2, rel = fabs(lp[i] - ref) / (1 + fabs(ref));
        if (rel > maxrel) maxrel = rel;
    }
    CHECK(inf_ok && lp[3] == -INFINITY && lp[17] == -INFINITY, "points outside the box get -inf");
    CHECK(maxrel < 1e-5, "log posterior = log prior - chi2/2 with the model's fluxes (max rel diff %.2g)", maxrel);
    /* chi2 and model fluxes */
    double c2, fl[SF_NBANDS];
    CHECK(sf_sedpost_chi2(p, 1, u, &c2, fl) == SF_OK && fabs(-0.5 * c2 + sf_prior_logpdf(0, u) - lp[0]) < 1e-5 * (1 + c2),
          "sf_sedpost_chi2 agrees with the log posterior");
    CHECK(sf_sedpost_chi2(p, 1, u + 3 * SF_NU, &c2, NULL) == SF_EDOMAIN, "chi2 outside the box -> SF_EDOMAIN");
    /* a band with ivar 0 is ignored, whatever its flux */
    double ivar0[SF_NBANDS] = {0, 2, 3, 1.5, 0.2}, flux0[SF_NBANDS] = {NAN, 40, 80, 110, 140};
    sf_sedpost *p0 = NULL;
    double lp0[2], lpa[2];
    CHECK(sf_sedpost_alloc(m, flux0, ivar0, z, SF_PRIOR_SEDFLOW, 4, &p0) == SF_OK && sf_sedpost_nbands(p0) == 4,
          "ivar 0 with a NaN flux is accepted: 4 bands");
    flux0[0] = 1e6;
    sf_sedpost *p1 = NULL;
    sf_sedpost_alloc(m, flux0, ivar0, z, SF_PRIOR_SEDFLOW, 4, &p1);
    sf_sedpost_logpost_batch(u, 2, lp0, p0);
    sf_sedpost_logpost_batch(u, 2, lpa, p1);
    CHECK(lp0[0] == lpa[0] && lp0[1] == lpa[1], "the flux of a band with ivar 0 does not matter");
    sf_sedpost_free(p0);
    sf_sedpost_free(p1);
    /* errors */
    double bad[SF_NBANDS] = {1, -1, 1, 1, 1}, zero[SF_NBANDS] = {0};
    CHECK(sf_sedpost_alloc(m, flux, bad, z, 0, 4, &p0) == SF_EINVAL && !p0, "negative ivar -> SF_EINVAL");
    CHECK(sf_sedpost_alloc(m, flux, zero, z, 0, 4, &p0) == SF_EINVAL, "no band with ivar > 0 -> SF_EINVAL");
    CHECK(sf_sedpost_alloc(m, flux, ivar, 0.0, 0, 4, &p0) == SF_EDOMAIN, "z = 0 -> SF_EDOMAIN");
    flux0[0] = NAN;
    CHECK(sf_sedpost_alloc(m, flux0, ivar, z, 0, 4, &p0) == SF_EINVAL, "NaN flux with ivar > 0 -> SF_EINVAL");
    /* derived properties */
    double der[3 * 3], q14[3 * SF_SEDPOST_NQ], thr[3 * SF_NTHETA], zz[3] = {z, z, z}, dref[3 * 3];
    for (int i = 0; i < 3; i++) sf_u_to_theta(u + i * SF_NU, thr + i * SF_NTHETA);
    CHECK(sf_sedpost_derived(m, 3, u, z, der) == SF_OK && sf_model_derived(m, 3, thr, zz, dref) == SF_OK &&
              sf_sedpost_quantities(m, 3, u, z, q14) == SF_OK,
          "derived properties");
    int dok = 1;
    for (int i = 0; i < 3; i++) {
        dok &= fabs(der[i * 3] - log10(dref[i * 3])) < 1e-12 && fabs(der[i * 3 + 1] - log10(dref[i * 3 + 1])) < 1e-12 &&
               der[i * 3 + 2] == dref[i * 3 + 2];
        dok &= !memcmp(q14 + i * SF_SEDPOST_NQ, u + i * SF_NU, sizeof(double) * SF_NU) &&
               !memcmp(q14 + i * SF_SEDPOST_NQ + SF_NU, der + i * 3, sizeof(double) * 3);
    }
    CHECK(dok, "log_sfr_1gyr, log_z_mw = log10 of sf_model_derived, tage_mw as is; quantities = u then derived");
    /* flow features */
    double x[11];
    CHECK(sf_sedpost_flow_x(flux, ivar, z, x) == SF_OK && fabs(x[0] - (22.5 - 2.5 * log10(12.0))) < 1e-12 &&
              fabs(x[5] - 2.5 / log(10.0) / (12 * sqrt(0.5))) < 1e-12 && x[10] == z,
          "flow x = mags, sigma_mags, z");
    CHECK(sf_sedpost_flow_x(flux, ivar0, z, x) == SF_EINVAL, "flow x with ivar 0 -> SF_EINVAL");
    sf_model_work_free(w);
    sf_sedpost_free(p);
    gsl_rng_free(r);
}

static void test_percentiles(void)
{
    double v[5] = {5, 1, 4, 2, 3}, q[4] = {0, 0.5, 0.16, 1}, o[4] = {0};
    CHECK(sf_sedpost_percentiles(v, 5, 1, 4, q, o) == SF_OK && o[0] == 1 && o[1] == 3 && fabs(o[2] - 1.64) < 1e-12 &&
              o[3] == 5,
          "percentiles as numpy (linear): %g %g %g %g", o[0], o[1], o[2], o[3]);
    double qb = 1.5;
    CHECK(sf_sedpost_percentiles(v, 5, 1, 1, &qb, o) == SF_EINVAL, "level outside [0, 1] -> SF_EINVAL");
}

/* Simulated galaxies with known truth: the simulator (prior draws, NSA
 * noise model, NSA flux-range cut), so the S/N is realistic. */
static const sf_sim_rows *simulate(const sf_model *m, sf_sim **simp, sf_noise **nmp)
{
    char noise[1024];
    snprintf(noise, sizeof noise, "%s/../models/noise_nsa.h5", tu_data_dir());
    sf_sim_options so;
    sf_sim_options_default(&so);
    so.seed = 2024, so.block = 256, so.nthreads = 1;
    const sf_sim_rows *rows = NULL;
    sf_sim_counts cnt = {0};
    if (sf_noise_load(noise, nmp) || sf_sim_alloc(m, *nmp, &so, simp) || sf_sim_block(*simp, 0, &rows, &cnt)) return NULL;
    return rows;
}

int main(void)
{
    const int quick = getenv("SEDFLOW_TEST_QUICK") != NULL;
    sf_model *m = NULL;
    if (sf_model_load(tu_data_dir(), &m)) {
        CHECK(0, "model: %s", sf_last_error());
        return tu_finish("test_sedpost");
    }
    test_likelihood(m);
    test_percentiles();

    sf_sim *sim = NULL;
    sf_noise *nm = NULL;
    const sf_sim_rows *rows = simulate(m, &sim, &nm);
    CHECK(rows && rows->n >= 20, "simulated %zu galaxies", rows ? rows->n : 0);
    if (!rows || rows->n < 20) return tu_finish("test_sedpost");
    enum { NG = 20 };
    double ivar[NG * SF_NBANDS];
    for (size_t i = 0; i < NG * SF_NBANDS; i++) ivar[i] = 1 / (rows->sigma_flux[i] * rows->sigma_flux[i]);

    /* the likelihood matches the simulator's noise: chi2 at the true
     * parameters is chi-square with 5 dof per galaxy (sum over NG: mean
     * 5 NG, sd sqrt(10 NG)) */
    {
        double c2sum = 0, c2;
        for (int k = 0; k < NG; k++) {
            sf_sedpost *p = NULL;
            if (sf_sedpost_alloc(m, rows->flux + k * SF_NBANDS, ivar + k * SF_NBANDS, rows->z[k], 0, 1, &p) == SF_OK &&
                sf_sedpost_chi2(p, 1, rows->theta_u + k * SF_NU, &c2, NULL) == SF_OK)
                c2sum += c2;
            else
                c2sum = NAN;
            sf_sedpost_free(p);
        }
        CHECK(fabs(c2sum - 5.0 * NG) < 4 * sqrt(10.0 * NG), "sum of chi2 at the true parameters %.1f ~ %d +- %.1f", c2sum,
              5 * NG, sqrt(10.0 * NG));
    }

    /* single driver == pooled driver with one galaxy; threads do not matter */
    sf_sedpost_opts o;
    sf_sedpost_opts_default(&o);
    o.mcmc.nwalkers = 22, o.mcmc.nburn = 5, o.mcmc.niter = 5, o.mcmc.seed = 9;
    sf_mcmc_chain *c1 = NULL, *c2[2] = {NULL, NULL}, *c3[2] = {NULL, NULL};
    sf_sedpost_diag d1, d2[2], d3[2];
    sf_status s2[2], s3[2];
    sf_sedpost_galaxy g[2] = {{rows->flux, ivar, rows->z[0], NULL, 9},
                              {rows->flux + SF_NBANDS, ivar + SF_NBANDS, rows->z[1], NULL, 10}};
    CHECK(sf_sedpost_mcmc(m, rows->flux, ivar, rows->z[0], &o, NULL, &c1, &d1) == SF_OK, "single driver: %s",
          sf_last_error());
    CHECK(sf_sedpost_mcmc_many(m, 1, g, &o, 4, 1, c2, d2, s2) == SF_OK && s2[0] == SF_OK, "pooled driver, one galaxy");
    CHECK(c1 && c2[0] && !memcmp(c1->x, c2[0]->x, sizeof(double) * c1->nsteps * c1->nwalkers * SF_NU) &&
              !memcmp(c1->logp, c2[0]->logp, sizeof(double) * c1->nsteps * c1->nwalkers),
          "pooled driver with one galaxy reproduces the single driver bit for bit");
    sf_mcmc_chain_free(c2[0]);
    CHECK(sf_sedpost_mcmc_many(m, 2, g, &o, 2, 1, c2, d2, s2) == SF_OK && sf_sedpost_mcmc_many(m, 2, g, &o, 2, 2, c3, d3, s3) == SF_OK,
          "pooled driver, two galaxies, 1 and 2 threads");
    int same = 1;
    for (int k = 0; k < 2; k++)
        same &= c2[k] && c3[k] && !memcmp(c2[k]->x, c3[k]->x, sizeof(double) * c2[k]->nsteps * c2[k]->nwalkers * SF_NU);
    CHECK(same, "pooled chains do not depend on the number of threads");
    CHECK(d1.nbands == 5 && isfinite(d1.best_chi2) && d1.best_logp <= 0 && !d1.converged && d1.warning[0],
          "diagnostics of a 5-step chain: best fit set, not converged, warning '%s'", d1.warning);
    sf_mcmc_chain_free(c1);
    for (int k = 0; k < 2; k++) sf_mcmc_chain_free(c2[k]), sf_mcmc_chain_free(c3[k]);
    double xs[22 * SF_NU];
    for (int k = 0; k < 22; k++) memcpy(xs + k * SF_NU, rows->theta_u, sizeof(double) * SF_NU);
    xs[0] = 20; /* outside the box */
    CHECK(sf_sedpost_mcmc(m, rows->flux, ivar, rows->z[0], &o, xs, &c1, NULL) == SF_EDOMAIN && !c1,
          "a start point outside the prior box -> SF_EDOMAIN");
    xs[0] = rows->theta_u[0];
    CHECK(sf_sedpost_mcmc(m, rows->flux, ivar, rows->z[0], &o, xs, &c1, &d1) == SF_OK && d1.info.jittered,
          "identical start points are jittered (opts.mcmc.jitter = 1e-3)");
    sf_mcmc_chain_free(c1);

    /* Recovery of log_mstar (issue 6 acceptance).  Settings: see
     * docs/VALIDATION.md sec. 7 (measured autocorrelation times). */
    const int ng = quick ? 5 : NG;
    sf_sedpost_opts_default(&o);
    o.mcmc.nwalkers = 24;
    o.mcmc.nburn = quick ? 50 : 100;
    o.mcmc.niter = quick ? 50 : 100;
    o.n_start = 500;
    sf_sedpost_galaxy gal[NG];
    sf_mcmc_chain *ch[NG];
    sf_sedpost_diag dg[NG];
    sf_status sg[NG];
    for (int k = 0; k < ng; k++) gal[k] = (sf_sedpost_galaxy){rows->flux + k * SF_NBANDS, ivar + k * SF_NBANDS, rows->z[k], NULL, 100 + k};
    double t0 = now();
    CHECK(sf_sedpost_mcmc_many(m, (size_t)ng, gal, &o, NG, 2, ch, dg, sg) == SF_OK, "recovery run");
    double dt = now() - t0;
    int within = 0, nok = 0;
    unsigned long long nev = 0;
    for (int k = 0; k < ng; k++) {
        if (sg[k]) continue;
        nok++;
        size_t n = ch[k]->nsteps * ch[k]->nwalkers;
        double med, q = 0.5, s = 0, s2v = 0;
        sf_sedpost_percentiles(ch[k]->x, n, SF_NU, 1, &q, &med);
        for (size_t i = 0; i < n; i++) s += ch[k]->x[i * SF_NU], s2v += ch[k]->x[i * SF_NU] * ch[k]->x[i * SF_NU];
        double mean = s / n, sd = sqrt(s2v / n - mean * mean), truth = rows->theta_u[k * SF_NU];
        int in = fabs(med - truth) < 2 * sd;
        within += in;
        nev += dg[k].info.neval;
        printf("# galaxy %2d z %.3f: log_mstar truth %.3f, median %.3f, sd %.3f -> %s (tau %.1f, R-hat %.2f)\n", k,
               rows->z[k], truth, med, sd, in ? "within 2 sd" : "OUTSIDE", dg[k].tau[0], dg[k].rhat[0]);
        sf_mcmc_chain_free(ch[k]);
    }
    printf("# recovery: %d galaxies, %llu model evaluations in %.1f s (%.3f ms each, wall)\n", ng, nev, dt,
           dt * 1e3 / (double)(nev ? nev : 1));
    CHECK(nok == ng, "all %d MCMC runs succeeded", ng);
    /* The acceptance criterion (issue 6): >= 90% of 20.  The quick
     * (sanitizer) run has 5 galaxies and half-length chains and asks 4 of 5. */
    int need = quick ? ng - 1 : (int)ceil(0.9 * ng);
    CHECK(within >= need, "log_mstar posterior median within 2 sd of the truth in %d of %d (need %d)", within, ng, need);

    /* CLI: mcmc on one galaxy (short), output file */
    char dir[] = "/tmp/sedflow_test_sedpost_XXXXXX", cmd[4096], path[400];
    static char out[1 << 16];
    if (mkdtemp(dir)) {
        snprintf(path, sizeof path, "%s/chain.h5", dir);
        snprintf(cmd, sizeof cmd,
                 "%s mcmc --flux %.8g,%.8g,%.8g,%.8g,%.8g --ivar %.8g,%.8g,%.8g,%.8g,%.8g --z %.6g --walkers 22 "
                 "--iterations 12 --burn 4 --out %s --threads 1 2>&1",
                 tu_cli(), rows->flux[0], rows->flux[1], rows->flux[2], rows->flux[3], rows->flux[4], ivar[0], ivar[1],
                 ivar[2], ivar[3], ivar[4], rows->z[0], path);
        int rc = tu_run(cmd, out, sizeof out);
        CHECK(rc == 0 && strstr(out, "tage_mw") && strstr(out, "log_sfr_1gyr") && strstr(out, "WARNING: chain too short") &&
                  access(path, R_OK) == 0,
              "sedflow mcmc prints the table, warns about a short chain, writes the chain (rc %d): %.300s", rc, out);
        snprintf(cmd, sizeof cmd, "%s mcmc --flux 1,2,3,4,5 --z 0.1 2>&1", tu_cli());
        CHECK(tu_run(cmd, out, sizeof out) == 2, "mcmc: --flux without --ivar is a usage error");
        snprintf(cmd, sizeof cmd, "%s mcmc --flux 1,2,3,4,5 --ivar 1,1,1,1,1 --z 0.1 --walkers 21 2>&1", tu_cli());
        CHECK(tu_run(cmd, out, sizeof out) == 2, "mcmc: odd --walkers is a usage error");
        snprintf(cmd, sizeof cmd, "%s mcmc --flux 1,2,3,4,5 --ivar 1,1,1,1,1 --z 0.7 2>&1", tu_cli());
        CHECK(tu_run(cmd, out, sizeof out) == 2 && strstr(out, "range"), "mcmc: z outside (0, 0.6] is a usage error");
        snprintf(cmd, sizeof cmd, "%s mcmc --flux 1,2,3,4,5 --ivar 1,1,-1,1,1 --z 0.1 2>&1", tu_cli());
        CHECK(tu_run(cmd, out, sizeof out) == 2 && strstr(out, "ivar"), "mcmc: a negative ivar is a usage error");
        snprintf(cmd, sizeof cmd, "%s mcmc --flux 1,2,3,4,5 --ivar 1,1,1,1,1 --z 0.1 --out %s/nonexistent/c.h5 2>&1",
                 tu_cli(), dir);
        CHECK(tu_run(cmd, out, sizeof out) == 2 && strstr(out, "does not exist"),
              "mcmc: --out in a missing folder refused before sampling (the default run would take minutes)");

        /* compare: a one-row CSV catalog and an untrained SED flow (smoke test) */
        char catp[256], modelp[256], prefix[256];
        snprintf(catp, sizeof catp, "%s/cat.csv", dir);
        FILE *cf = fopen(catp, "w");
        if (cf) {
            fprintf(cf, "id,z,flux_u,flux_g,flux_r,flux_i,flux_z,ivar_u,ivar_g,ivar_r,ivar_i,ivar_z\n");
            for (int k = 0; k < 2; k++) {
                fprintf(cf, "%d,%.8g", 70 + k, rows->z[k]);
                for (int b = 0; b < 5; b++) fprintf(cf, ",%.10g", rows->flux[k * 5 + b]);
                for (int b = 0; b < 5; b++) fprintf(cf, ",%.10g", ivar[k * 5 + b]);
                fprintf(cf, "\n");
            }
            fclose(cf);
        }
        sf_flow_config fc = {.family = SF_FLOW_MAF, .D = SF_NU, .C = SF_NX, .K = 1, .H = 8, .seed = 3};
        sf_flow *fl = NULL;
        int ok = sf_flow_alloc(&fc, &fl) == SF_OK && sf_flow_set_zscore(fl, rows->n, rows->theta_u, rows->x) == SF_OK;
        if (ok) {
            sf_flow_set_prior(fl, sf_prior_lower, sf_prior_upper);
            sf_flow_prepare(fl);
            snprintf(modelp, sizeof modelp, "%s/flow.h5", dir);
            ok = sf_flow_save(fl, modelp) == SF_OK;
        }
        sf_flow_free(fl);
        snprintf(prefix, sizeof prefix, "%s/cmp", dir);
        snprintf(cmd, sizeof cmd,
                 "%s compare --model %s --catalog %s --ids 70,71 --nsamples 300 --walkers 22 --iterations 16 --burn 6 "
                 "--start anpe --out %s --plot-id 71 --threads 2 2>&1",
                 tu_cli(), modelp, catp, prefix);
        int rc2 = ok ? tu_run(cmd, out, sizeof out) : -1;
        snprintf(path, sizeof path, "%s.csv", prefix);
        int lines = 0;
        FILE *rf = fopen(path, "r");
        if (rf) {
            int ch2;
            while ((ch2 = fgetc(rf)) != EOF) lines += ch2 == '\n';
            fclose(rf);
        }
        CHECK(rc2 == 0 && strstr(out, "# galaxy 71") && strstr(out, "dmed/sd") && lines == 1 + 2 * SF_SEDPOST_NQ,
              "sedflow compare: table for both galaxies, CSV with %d lines (rc %d): %.300s", lines, rc2, out);
        if (rc2 == 0 && getenv("PATH") && system("command -v gnuplot >/dev/null 2>&1") == 0) {
            char p1[400], p2[400];
            snprintf(p1, sizeof p1, "%s_corner.png", prefix);
            snprintf(p2, sizeof p2, "%s_sed.png", prefix);
            CHECK(access(p1, R_OK) == 0 && access(p2, R_OK) == 0, "compare wrote the corner and SED figures");
        }
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd)) return 1;
    }
    sf_sim_free(sim);
    sf_noise_free(nm);
    sf_model_free(m);
    return tu_finish("test_sedpost");
}
