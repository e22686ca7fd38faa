/*
 * sedflow validate — calibration of a trained flow on simulated test
 * galaxies with known truth (paper sec. 5, Figs. 3 and 4): SBC ranks, p-p
 * curves, coverage, uniformity tests per parameter, TARP, mean held-out
 * log q; text table, HDF5 and CSV report, PNG figures.
 */
#include <getopt.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "io/h5util.h"
#include "sedflow/calib.h"
#include "sedflow/flow.h"
#include "sedflow/plot.h"
#include "sedflow/rng.h"
#include "sedflow/sedpost.h"

enum { NPP = 101, MAXP = 32 };
#define COV68 0.682689492137086

static void help(void)
{
    printf("usage: sedflow validate --model M.h5 --test TEST.h5 [options]\n\n"
           "Calibration of the flow q(theta | x) on simulated test galaxies with known truth\n"
           "(a file written by 'sedflow simulate' with another seed; datasets theta_u, x and, for\n"
           "the derived properties, z and derived). For each galaxy, L samples are drawn from q\n"
           "(inside the prior box); for each of the sampling-space parameters (and, for the SED\n"
           "flow, log_sfr_1gyr, log_z_mw, tage_mw computed from the samples with the forward\n"
           "model) the SBC rank of the truth among the samples (random tie-breaking, L+1 ranks),\n"
           "its percentile, the p-p curve and its maximum deviation from the diagonal, the KS\n"
           "and chi-square tests of uniformity with their p-values, the coverage of central\n"
           "credible intervals at levels 0.05..0.95, and TARP over all quantities jointly.\n"
           "Also the mean held-out log q(theta_true | x). A parameter passes the 68%% coverage\n"
           "check when its central-68%% coverage is within 0.03 of 0.683 (issue 5).\n\n"
           "  --model PATH       flow model file ('sedflow train')\n"
           "  --test PATH        simulated test set (docs/DATA.md layout)\n"
           "  --ngal N           use the first N test galaxies (default 1000, as the paper)\n"
           "  --nsamples L       posterior samples per galaxy (default 1000; the paper used\n"
           "                     10000; cost ~0.2-0.3 s per 1000 samples per galaxy for the\n"
           "                     full-size flow on 2 cores)\n"
           "  --seed S           random seed of the samples and tie-breaking (default 1)\n"
           "  --bins B           rank histogram bins (default min(20, L+1, N/10))\n"
           "  --tarp-samples K   samples per galaxy used for TARP (default 200; 0 = no TARP)\n"
           "  --no-derived       only the sampling-space parameters\n"
           "  --out PREFIX       write PREFIX.h5 and PREFIX.csv (all numbers) and the figures\n"
           "                     PREFIX_pp.png, PREFIX_sbc.png, PREFIX_coverage.png (gnuplot)\n"
           "  --no-plots         no PNG figures\n"
           "  --threads T        OpenMP threads (default: all)\n"
           "  --data DIR         prepared data folder for the forward model (derived properties)\n"
           "  -h, --help         this help\n");
}

typedef struct {
    size_t n, D, C;
    double *theta_u, *x, *z, *derived;
} testset;

static sf_status read_test(const char *path, int want_derived, testset *t)
{
    memset(t, 0, sizeof *t);
    hid_t f;
    sf_status st = sf_h5_open_read(path, &f);
    if (st) return st;
    int r1, r2;
    size_t d1[4], d2[4];
    st = sf_h5_shape(f, "theta_u", &r1, d1);
    if (!st) st = sf_h5_shape(f, "x", &r2, d2);
    if (!st && (r1 != 2 || r2 != 2 || d1[0] != d2[0] || d1[0] == 0))
        st = SF_ERROR(SF_EFORMAT, "%s: theta_u and x must be 2-D with the same number of rows", path);
    if (!st) {
        t->n = d1[0], t->D = d1[1], t->C = d2[1];
        st = sf_h5_read_double(f, "theta_u", 0, &t->theta_u, NULL);
    }
    if (!st) st = sf_h5_read_double(f, "x", 0, &t->x, NULL);
    if (!st && want_derived) {
        if (!sf_h5_exists(f, "z") || !sf_h5_exists(f, "derived"))
            st = SF_ERROR(SF_EFORMAT, "%s has no z or derived datasets (use --no-derived)", path);
        if (!st) st = sf_h5_read_double(f, "z", t->n, &t->z, NULL);
        if (!st) st = sf_h5_read_double(f, "derived", t->n * SF_NDERIVED, &t->derived, NULL);
    }
    H5Fclose(f);
    return st;
}

static void free_test(testset *t)
{
    free(t->theta_u), free(t->x), free(t->z), free(t->derived);
}

/* derived truth from the file's (sfr_1gyr, z_mw, tage_mw) */
static void truth_derived(const double *d, double *out)
{
    out[0] = d[0] > 0 ? log10(d[0]) : SF_SEDPOST_LOGSFR_FLOOR;
    if (out[0] < SF_SEDPOST_LOGSFR_FLOOR) out[0] = SF_SEDPOST_LOGSFR_FLOOR;
    out[1] = log10(d[1]);
    out[2] = d[2];
}

static sf_status write_report(const char *prefix, size_t n, size_t P, size_t L, const char *const *names,
                              const long *rank, const double *pit, const double *truth, const sf_calib_stats *stats,
                              const double *cov, const double *pp, const double *pplev, const double *lev,
                              const double *tarp, size_t tarp_k, const double *logq, const double *acc,
                              double mean_logq, size_t nexcl, uint64_t seed, const char *model, const char *test)
{
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s.h5", prefix);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    hid_t f;
    sf_status st = sf_h5_create(tmp, &f);
    if (st) return st;
    char nm[1024] = "";
    for (size_t p = 0; p < P; p++) {
        strncat(nm, names[p], sizeof nm - strlen(nm) - 2);
        if (p + 1 < P) strcat(nm, ",");
    }
    long long *r64 = malloc(sizeof(long long) * n * P);
    double *tab = malloc(sizeof(double) * P * 8);
    if (!r64 || !tab) st = SF_ERROR(SF_ENOMEM, "out of memory");
    size_t dnp[2] = {n, P}, dt[2] = {P, 8}, dc[2] = {P, SF_CALIB_NLEV}, dpp[2] = {P, NPP}, nl = SF_CALIB_NLEV,
           npl = NPP, dn = n;
    if (!st) {
        for (size_t i = 0; i < n * P; i++) r64[i] = rank[i];
        for (size_t p = 0; p < P; p++) {
            double *r = tab + p * 8;
            r[0] = stats[p].pp_maxdev, r[1] = stats[p].ks_p, r[2] = stats[p].chi2, r[3] = (double)stats[p].chi2_dof;
            r[4] = stats[p].chi2_p, r[5] = stats[p].cov68, r[6] = stats[p].mean_pit, r[7] = stats[p].tails;
        }
        st = sf_h5_attr_set_string(f, ".", "format", "sedflow-validation");
    }
    if (!st) st = sf_h5_attr_set_long(f, ".", "format_version", 1);
    if (!st) st = sf_h5_attr_set_string(f, ".", "quantities", nm);
    if (!st) st = sf_h5_attr_set_string(f, ".", "stats_columns",
                                        "pp_maxdev,ks_p,chi2,chi2_dof,chi2_p,cov68,mean_pit,tails");
    if (!st) st = sf_h5_attr_set_long(f, ".", "n_test", (long long)n);
    if (!st) st = sf_h5_attr_set_long(f, ".", "n_excluded", (long long)nexcl);
    if (!st) st = sf_h5_attr_set_long(f, ".", "n_samples", (long long)L);
    if (!st) st = sf_h5_attr_set_long(f, ".", "seed", (long long)seed);
    if (!st) st = sf_h5_attr_set_double(f, ".", "mean_logq", mean_logq);
    if (!st) st = sf_h5_attr_set_string(f, ".", "model", model);
    if (!st) st = sf_h5_attr_set_string(f, ".", "test", test);
    if (!st) st = sf_h5_attr_set_string(f, ".", "code_version", SEDFLOW_VERSION);
    if (!st) st = sf_h5_write_int64(f, "rank", 2, dnp, r64, 0);
    if (!st) st = sf_h5_write_double(f, "pit", 2, dnp, pit, 0);
    if (!st) st = sf_h5_write_double(f, "truth", 2, dnp, truth, 0);
    if (!st) st = sf_h5_write_double(f, "stats", 2, dt, tab, 0);
    if (!st) st = sf_h5_write_double(f, "levels", 1, &nl, lev, 0);
    if (!st) st = sf_h5_write_double(f, "coverage", 2, dc, cov, 0);
    if (!st) st = sf_h5_write_double(f, "pp_levels", 1, &npl, pplev, 0);
    if (!st) st = sf_h5_write_double(f, "pp_curve", 2, dpp, pp, 0);
    if (!st) st = sf_h5_write_double(f, "logq", 1, &dn, logq, 0);
    if (!st) st = sf_h5_write_double(f, "acceptance", 1, &dn, acc, 0);
    if (!st && tarp_k) {
        st = sf_h5_write_double(f, "tarp_ecp", 1, &nl, tarp, 0);
        if (!st) st = sf_h5_attr_set_long(f, "tarp_ecp", "samples_per_galaxy", (long long)tarp_k);
    }
    H5Fclose(f);
    if (!st && rename(tmp, path)) st = SF_ERROR(SF_EIO, "cannot rename %s", tmp);
    if (st) remove(tmp);
    free(r64), free(tab);
    if (st) return st;
    snprintf(path, sizeof path, "%s.csv", prefix);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *c = fopen(tmp, "w");
    if (!c) return SF_ERROR(SF_EIO, "cannot write %s", tmp);
    fprintf(c, "quantity,pp_maxdev,ks_p,chi2,chi2_dof,chi2_p,cov68,mean_pit,tails,n_test,n_samples\n");
    for (size_t p = 0; p < P; p++)
        fprintf(c, "%s,%.6g,%.6g,%.6g,%zu,%.6g,%.6g,%.6g,%.6g,%zu,%zu\n", names[p], stats[p].pp_maxdev, stats[p].ks_p,
                stats[p].chi2, stats[p].chi2_dof, stats[p].chi2_p, stats[p].cov68, stats[p].mean_pit, stats[p].tails, n,
                L);
    fprintf(c, "mean_logq,%.6g,,,,,,,,%zu,\n", mean_logq, n);
    if (fclose(c) || rename(tmp, path)) return SF_ERROR(SF_EIO, "cannot write %s", path);
    return SF_OK;
}

int cmd_validate(int argc, char **argv)
{
    const char *cmd = "validate", *model = NULL, *test = NULL, *out = NULL, *data = cli_data_dir();
    long ngal = 1000, L = 1000, seed = 1, bins = 0, tarp_k = 200, threads = 0;
    int no_derived = 0, no_plots = 0;
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},    {"test", required_argument, 0, 't'},
        {"ngal", required_argument, 0, 'n'},     {"nsamples", required_argument, 0, 'L'},
        {"seed", required_argument, 0, 's'},     {"bins", required_argument, 0, 'b'},
        {"tarp-samples", required_argument, 0, 'k'}, {"no-derived", no_argument, 0, 'D'},
        {"out", required_argument, 0, 'o'},      {"no-plots", no_argument, 0, 'P'},
        {"threads", required_argument, 0, 'T'},  {"data", required_argument, 0, 'd'},
        {"help", no_argument, 0, 'h'},           {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 't': test = optarg; break;
        case 'n': if (cli_parse_long(cmd, "--ngal", optarg, &ngal)) return 2; break;
        case 'L': if (cli_parse_long(cmd, "--nsamples", optarg, &L)) return 2; break;
        case 's': if (cli_parse_seed(cmd, optarg, &seed)) return 2; break;
        case 'b': if (cli_parse_long(cmd, "--bins", optarg, &bins)) return 2; break;
        case 'k': if (cli_parse_long(cmd, "--tarp-samples", optarg, &tarp_k)) return 2; break;
        case 'D': no_derived = 1; break;
        case 'o': out = optarg; break;
        case 'P': no_plots = 1; break;
        case 'T': if (cli_parse_threads(cmd, optarg, &threads)) return 2; break;
        case 'd': data = optarg; break;
        case 'h': help(); return 0;
        default: return cli_usage_error(cmd, "unknown option");
        }
    }
    if (optind < argc) return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!model || !test) return cli_usage_error(cmd, "--model and --test are required");
    if (ngal < 2 || L < 1 || bins < 0 || tarp_k < 0)
        return cli_usage_error(cmd, "need --ngal >= 2, --nsamples >= 1, --bins >= 0 and --tarp-samples >= 0");
    if (tarp_k > L) tarp_k = L;
    int nth = threads > 0 ? (int)threads : omp_get_max_threads();

    sf_flow *f = NULL;
    sf_model *m = NULL;
    testset ts;
    memset(&ts, 0, sizeof ts);
    sf_status st = sf_flow_load(model, &f);
    if (st) return cli_fail(cmd, st);
    const sf_flow_config *cfg = sf_flow_get_config(f);
    int derived = !no_derived && cfg->D == SF_NU && cfg->C == 11;
    st = read_test(test, derived, &ts);
    if (!st && (ts.D != (size_t)cfg->D || ts.C != (size_t)cfg->C))
        st = SF_ERROR(SF_EINVAL, "test set has D = %zu, C = %zu; the model D = %d, C = %d", ts.D, ts.C, cfg->D, cfg->C);
    if (!st && derived) st = sf_model_load(data, &m);
    if (st) {
        free_test(&ts);
        sf_flow_free(f);
        sf_model_free(m);
        return cli_fail(cmd, st);
    }
    size_t n = (size_t)ngal < ts.n ? (size_t)ngal : ts.n, D = ts.D, P = D + (derived ? SF_SEDPOST_NDERIVED : 0);
    if (P > MAXP) P = MAXP, derived = 0; /* not an SED flow: the first MAXP parameters only */
    const char *names[MAXP];
    char namebuf[SF_FLOW_NAME_LEN], *save = NULL;
    snprintf(namebuf, sizeof namebuf, "%s", sf_flow_theta_names(f));
    for (size_t p = 0; p < P; p++) names[p] = NULL;
    if (derived) {
        for (size_t p = 0; p < P; p++) names[p] = sf_sedpost_names[p];
    } else {
        char *tok = strtok_r(namebuf, ",", &save);
        for (size_t p = 0; p < P && tok; p++, tok = strtok_r(NULL, ",", &save)) names[p] = tok;
    }
    static char fallback[MAXP][32];
    for (size_t p = 0; p < P; p++)
        if (!names[p]) snprintf(fallback[p], sizeof fallback[p], "param%zu", p), names[p] = fallback[p];

    /* buffers */
    /* galaxies are sampled in fixed groups of VGROUP (one flow call, threads over the galaxies);
       group k draws from seed sf_mix64(seed * phi + k), galaxy j of it from stream j: the samples
       depend on the seed only, not on the thread count */
    const size_t VGROUP = 32;
    double *sampg = malloc(sizeof(double) * VGROUP * (size_t)L * D), *samp14 = malloc(sizeof(double) * (size_t)L * P);
    double *samp = sampg;
    size_t naccg[32];
    double fracg[32];
    double *truth = malloc(sizeof(double) * n * P), *pit = malloc(sizeof(double) * n * P);
    long *rank = malloc(sizeof(long) * n * P);
    double *logq = malloc(sizeof(double) * n), *acc = malloc(sizeof(double) * n);
    double *tarp_buf = tarp_k ? malloc(sizeof(double) * n * (size_t)tarp_k * P) : NULL;
    if (!sampg || !samp14 || !truth || !pit || !rank || !logq || !acc || (tarp_k && !tarp_buf))
        st = SF_ERROR(SF_ENOMEM, "out of memory for %zu galaxies x %ld samples", n, L);
    double t0 = cli_now();
    if (!st) st = sf_flow_logq(f, n, ts.theta_u, ts.x, logq, nth);
    double mean_logq = 0, sd_logq = 0;
    size_t nlq = 0;
    if (!st) {
        for (size_t i = 0; i < n; i++)
            if (isfinite(logq[i])) mean_logq += logq[i], nlq++;
        mean_logq = nlq ? mean_logq / (double)nlq : NAN;
        for (size_t i = 0; i < n; i++)
            if (isfinite(logq[i])) sd_logq += (logq[i] - mean_logq) * (logq[i] - mean_logq);
        sd_logq = nlq > 1 ? sqrt(sd_logq / (double)(nlq - 1)) : NAN;
    }
    /* samples: groups of VGROUP galaxies per flow call; derived properties and ranks galaxy by galaxy */
    size_t used = 0, nexcl = 0;
    cli_progress prog;
    cli_progress_start(&prog, "validate", n);
    for (size_t g = 0; !st && g < n; g++) {
        const size_t j = g % VGROUP;
        if (j == 0) {
            size_t gb = n - g < VGROUP ? n - g : VGROUP;
            st = sf_flow_sample(f, gb, ts.x + g * ts.C, (size_t)L, sf_mix64((uint64_t)seed * 0x9E3779B97F4A7C15ULL + g / VGROUP),
                                NULL, NULL, 0, sampg, NULL, naccg, fracg, nth);
            if (st) break;
        }
        samp = sampg + j * (size_t)L * D;
        size_t nacc = naccg[j];
        acc[g] = fracg[j];
        if (nacc < (size_t)L) {
            nexcl++;
            continue;
        }
        double *tr = truth + used * P;
        memcpy(tr, ts.theta_u + g * D, sizeof(double) * (P < D ? P : D));
        for (size_t i = 0; i < (size_t)L; i++) memcpy(samp14 + i * P, samp + i * D, sizeof(double) * (P < D ? P : D));
        if (derived) {
            truth_derived(ts.derived + g * SF_NDERIVED, tr + D);
            size_t nch = ((size_t)L + 255) / 256;
            sf_status fail = SF_OK;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nth)
            for (size_t k = 0; k < nch; k++) {
                size_t i0 = k * 256, kk = (size_t)L - i0 < 256 ? (size_t)L - i0 : 256;
                double d[256 * SF_SEDPOST_NDERIVED];
                sf_status s2 = sf_sedpost_derived(m, kk, samp + i0 * D, ts.z[g], d);
                if (s2) {
#pragma omp critical(validate_err)
                    fail = s2;
                } else {
                    for (size_t i = 0; i < kk; i++)
                        memcpy(samp14 + (i0 + i) * P + D, d + i * SF_SEDPOST_NDERIVED, sizeof(double) * SF_SEDPOST_NDERIVED);
                }
            }
            if (fail) {
                st = SF_ERROR(fail, "derived properties of galaxy %zu failed", g);
                break;
            }
        }
        st = sf_calib_ranks(samp14, tr, 1, (size_t)L, P, (uint64_t)seed, used, rank + used * P, pit + used * P);
        if (st) break;
        if (tarp_k) memcpy(tarp_buf + used * (size_t)tarp_k * P, samp14, sizeof(double) * (size_t)tarp_k * P);
        used++;
        cli_progress_update(&prog, g + 1);
    }
    cli_progress_update(&prog, n);
    double t_samp = cli_now() - t0;
    sf_calib_stats stats[MAXP];
    double lev[SF_CALIB_NLEV], cov[MAXP * SF_CALIB_NLEV], pplev[NPP], pp[MAXP * NPP], tarp[SF_CALIB_NLEV];
    sf_calib_levels(lev);
    for (int k = 0; k < NPP; k++) pplev[k] = k / (double)(NPP - 1);
    if (!st && used < 2) st = SF_ERROR(SF_ENOCONV, "only %zu galaxies had %ld samples inside the prior box", used, L);
    if (!st) st = sf_calib_summary(rank, pit, used, (size_t)L, P, (size_t)bins, stats);
    for (size_t p = 0; !st && p < P; p++) {
        st = sf_calib_coverage(pit + p, used, P, SF_CALIB_NLEV, lev, cov + p * SF_CALIB_NLEV);
        if (!st) st = sf_calib_pp_curve(pit + p, used, P, NPP, pplev, pp + p * NPP);
    }
    if (!st && tarp_k) st = sf_calib_tarp(tarp_buf, truth, used, (size_t)tarp_k, P, (uint64_t)seed, SF_CALIB_NLEV, lev, tarp, NULL);
    int rc = 0;
    if (!st) {
        double sd68 = sqrt(COV68 * (1 - COV68) / (double)used);
        printf("# sedflow validate: model %s, test %s\n# %zu galaxies (%zu excluded: fewer than %ld samples inside the "
               "prior box), %ld samples each, seed %ld\n",
               model, test, used, nexcl, L, L, seed);
        printf("%-14s %9s %9s %9s %5s %9s %7s %8s %7s %s\n", "quantity", "pp_maxdev", "KS_p", "chi2", "dof", "chi2_p",
               "cov68", "mean_pit", "tails", "68%check");
        int nbad = 0;
        for (size_t p = 0; p < P; p++) {
            int ok68 = fabs(stats[p].cov68 - COV68) <= 0.03;
            nbad += !ok68;
            printf("%-14s %9.4f %9.3g %9.2f %5zu %9.3g %7.3f %8.3f %7.3f %s\n", names[p], stats[p].pp_maxdev, stats[p].ks_p,
                   stats[p].chi2, stats[p].chi2_dof, stats[p].chi2_p, stats[p].cov68, stats[p].mean_pit, stats[p].tails,
                   ok68 ? "ok" : "FAIL");
        }
        printf("# cov68: fraction of truths inside the central 68.27%% interval (expected 0.683 +- %.3f binomial sd);\n"
               "# 68%% check: |cov68 - 0.683| <= 0.03; %d of %zu quantities fail it\n",
               sd68, nbad, P);
        printf("# mean held-out log q(theta_true | x) = %.4f +- %.4f (sd %.4f, %zu finite of %zu galaxies)\n", mean_logq,
               nlq ? sd_logq / sqrt((double)nlq) : NAN, sd_logq, nlq, n);
        if (tarp_k) {
            printf("# TARP expected coverage (all %zu quantities, %ld samples per galaxy):", P, tarp_k);
            for (int k = 0; k < SF_CALIB_NLEV; k += 3) printf(" %.2f:%.3f", lev[k], tarp[k]);
            printf("\n");
        }
        printf("# sampling and ranks: %.1f s (%.3f s per galaxy)\n", t_samp, t_samp / (double)n);
        if (out) {
            double *pit_d = pit;
            st = write_report(out, used, P, (size_t)L, names, rank, pit_d, truth, stats, cov, pp, pplev, lev, tarp,
                              (size_t)tarp_k, logq, acc, mean_logq, nexcl, (uint64_t)seed, model, test);
            if (!st) fprintf(stderr, "sedflow validate: wrote %s.h5 and %s.csv\n", out, out);
        }
        if (!st && out && !no_plots) {
            char png[4200];
            if (!sf_plot_available()) {
                fprintf(stderr, "sedflow validate: warning: gnuplot not found, no figures\n");
            } else {
                double covall[(MAXP + 1) * SF_CALIB_NLEV];
                const char *labels[MAXP + 1];
                memcpy(covall, cov, sizeof(double) * P * SF_CALIB_NLEV);
                for (size_t p = 0; p < P; p++) labels[p] = names[p];
                size_t ncurve = P;
                if (tarp_k) {
                    memcpy(covall + P * SF_CALIB_NLEV, tarp, sizeof tarp);
                    labels[P] = "TARP (joint)";
                    ncurve++;
                }
                snprintf(png, sizeof png, "%s_pp.png", out);
                sf_status s2 = sf_plot_pp_grid(png, pit, used, P, NULL, 0, names);
                if (!s2) {
                    snprintf(png, sizeof png, "%s_sbc.png", out);
                    s2 = sf_plot_sbc_grid(png, rank, used, P, (size_t)L, (size_t)bins, names);
                }
                if (!s2) {
                    snprintf(png, sizeof png, "%s_coverage.png", out);
                    s2 = sf_plot_coverage(png, lev, SF_CALIB_NLEV, covall, ncurve, labels);
                }
                if (s2) fprintf(stderr, "sedflow validate: warning: figures: %s\n", sf_last_error());
                else fprintf(stderr, "sedflow validate: wrote %s_pp.png, %s_sbc.png, %s_coverage.png\n", out, out, out);
            }
        }
    }
    if (st) rc = cli_fail(cmd, st);
    free(sampg), free(samp14), free(truth), free(pit), free(rank), free(logq), free(acc), free(tarp_buf);
    free_test(&ts);
    sf_flow_free(f);
    sf_model_free(m);
    return rc;
}
