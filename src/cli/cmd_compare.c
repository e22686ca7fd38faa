/*
 * sedflow compare — ANPE (the flow) against MCMC on the same likelihood for
 * chosen catalog galaxies (paper sec. 5, Fig. 2): per quantity the median
 * offset in MCMC standard deviations, the width ratio, Wasserstein-1 and
 * KS distances; a corner plot of both posteriors and the best-fit model
 * fluxes against the observed ones for one galaxy.
 */
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "sedflow/calib.h"
#include "sedflow/catalog.h"
#include "sedflow/flow.h"
#include "sedflow/plot.h"
#include "sedflow/rng.h"
#include "sedflow/sedpost.h"

static const double band_wave_A[SF_NBANDS] = {3551, 4686, 6166, 7480, 8932}; /* SDSS effective wavelengths */

static void help(const cli_mcmc *ma)
{
    printf("usage: sedflow compare --model M.h5 --catalog FILE (--ids ID,... | --rows I,...) [options]\n\n"
           "Run ANPE (samples of the flow) and MCMC (the likelihood of paper eq. 1 with the same\n"
           "prior box; see 'sedflow mcmc --help') for the same galaxies and compare, for the 11\n"
           "sampling-space parameters and log_sfr_1gyr, log_z_mw, tage_mw: the medians, the\n"
           "difference of medians in units of the MCMC standard deviation, the ratio of the\n"
           "16-84%% widths (ANPE / MCMC), the Wasserstein-1 distance in MCMC sd and the two-sample\n"
           "KS statistic. With --out, a CSV of all numbers, and for one galaxy a corner plot of\n"
           "both posteriors (ANPE blue, MCMC grey) and a plot of the observed fluxes with the\n"
           "best-fit model fluxes of both (paper Fig. 2).\n\n"
           "  --model PATH         flow model file\n"
           "  --catalog FILE       catalog (docs/CATALOG.md); --columns SPEC for CSV/HDF5 names\n"
           "  --ids ID,...         galaxy ids (or --rows I,... for 0-based rows)\n"
           "  --nsamples L         ANPE samples per galaxy (default 10000)\n"
           "  --seed S             random seed (default 1)\n"
           "  --out PREFIX         PREFIX.csv, PREFIX_corner.png, PREFIX_sed.png, PREFIX_mcmc.h5\n"
           "  --plot-id ID         galaxy of the figures (default: the first)\n"
           "  --threads T          threads (default: all)\n"
           "  --data DIR           prepared data folder\n"
           "  -h, --help           this help\n\n"
           "MCMC (as in 'sedflow mcmc'; --start anpe starts the walkers at ANPE samples):\n");
    cli_mcmc_help(ma);
}

/* Observed fluxes with error bars and two model flux sets, by gnuplot. */
static sf_status plot_sed(const char *png, const double *flux, const double *ivar, const double *fa, const double *fb,
                          long long id, double z)
{
    if (strchr(png, '\'') || strchr(png, '\n')) return SF_ERROR(SF_EINVAL, "quote or newline in '%s'", png);
    const char *gp = getenv("SEDFLOW_GNUPLOT");
    char tmp[4400], cmd[4600];
    snprintf(tmp, sizeof tmp, "%s.tmp", png);
    snprintf(cmd, sizeof cmd, "'%s' >/dev/null 2>&1", gp && *gp ? gp : "gnuplot");
    FILE *p = popen(cmd, "w");
    if (!p) return SF_ERROR(SF_EIO, "cannot run gnuplot");
    fprintf(p, "set terminal pngcairo size 800,500\nset output '%s'\n", tmp);
    fprintf(p, "set logscale xy\nset xlabel 'observed wavelength [Angstrom]'\nset ylabel 'flux [nanomaggies]'\n");
    fprintf(p, "set title 'galaxy %lld, z = %.4f: observed (red), ANPE best (blue), MCMC best (black)'\n", id, z);
    fprintf(p, "set xrange [3000:10000]\nset key top left\n$obs << EOD\n");
    for (int b = 0; b < SF_NBANDS; b++)
        if (ivar[b] > 0) fprintf(p, "%g %.8g %.8g\n", band_wave_A[b], flux[b], 1 / sqrt(ivar[b]));
    fprintf(p, "EOD\n$mod << EOD\n");
    for (int b = 0; b < SF_NBANDS; b++) fprintf(p, "%g %.8g %.8g\n", band_wave_A[b], fa[b], fb[b]);
    fprintf(p, "EOD\nplot $obs using 1:2:3 with yerrorbars lc rgb 'red' pt 7 title 'observed', "
               "$mod using 1:2 with linespoints lc rgb 'blue' pt 5 title 'ANPE best', "
               "$mod using 1:3 with linespoints lc rgb 'black' dt 2 pt 4 title 'MCMC best'\n");
    int rc = pclose(p);
    if (rc != 0 || access(tmp, F_OK) != 0) {
        remove(tmp);
        return SF_ERROR(SF_EIO, "gnuplot failed writing %s", png);
    }
    if (rename(tmp, png)) return SF_ERROR(SF_EIO, "cannot rename %s", tmp);
    return SF_OK;
}

int cmd_compare(int argc, char **argv)
{
    const char *cmd = "compare";
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},    {"catalog", required_argument, 0, 'c'},
        {"ids", required_argument, 0, 'i'},      {"rows", required_argument, 0, 'r'},
        {"columns", required_argument, 0, 'C'},  {"nsamples", required_argument, 0, 'L'},
        CLI_MCMC_OPTIONS("", "iterations"),      {"seed", required_argument, 0, 's'},
        {"out", required_argument, 0, 'o'},      {"plot-id", required_argument, 0, 'p'},
        {"threads", required_argument, 0, 'T'},  {"data", required_argument, 0, 'd'},
        {"help", no_argument, 0, 'h'},           {0, 0, 0, 0}};
    const char *model = NULL, *catalog = NULL, *ids_s = NULL, *rows_s = NULL, *columns = NULL, *out = NULL;
    const char *data = cli_data_dir();
    long L = 10000, seed = 1, threads = 0;
    long long plot_id = 0;
    int have_plot_id = 0;
    sf_sedpost_opts so;
    sf_sedpost_opts_default(&so);
    cli_mcmc ma;
    cli_mcmc_init(&ma, "", "iterations", 1);
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (cli_mcmc_is_option(c)) {
            if (cli_mcmc_parse(&ma, cmd, c, optarg)) return 2;
            continue;
        }
        switch (c) {
        case 'm': model = optarg; break;
        case 'c': catalog = optarg; break;
        case 'i': ids_s = optarg; break;
        case 'r': rows_s = optarg; break;
        case 'C': columns = optarg; break;
        case 'L': if (cli_parse_long(cmd, "--nsamples", optarg, &L)) return 2; break;
        case 's': if (cli_parse_seed(cmd, optarg, &seed)) return 2; break;
        case 'o': out = optarg; break;
        case 'p': {
            long v;
            if (cli_parse_long(cmd, "--plot-id", optarg, &v)) return 2;
            plot_id = v, have_plot_id = 1;
            break;
        }
        case 'T': if (cli_parse_threads(cmd, optarg, &threads)) return 2; break;
        case 'd': data = optarg; break;
        case 'h': help(&ma); return 0;
        default: return cli_usage_error(cmd, "unknown option");
        }
    }
    if (optind < argc) return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!model || !catalog || !!ids_s == !!rows_s)
        return cli_usage_error(cmd, "--model, --catalog and one of --ids / --rows are required");
    if (cli_mcmc_finish(&ma, cmd, 2, &so)) return 2;
    if (L < 2) return cli_usage_error(cmd, "--nsamples %ld: must be >= 2", L);
    if (out) { /* the files written: PREFIX.csv, _mcmc.h5, _corner.png, _sed.png; before the (long) sampling */
        const char *reads[2] = {catalog, model};
        static const char *const suffix[4] = {".csv", "_mcmc.h5", "_corner.png", "_sed.png"};
        for (int k = 0; k < 4; k++) {
            char path[4200];
            snprintf(path, sizeof path, "%s%s", out, suffix[k]);
            if (cli_check_output_path(cmd, "--out", path, reads, 2)) return 2;
        }
    }
    const long walkers = ma.walkers, iters = ma.iters, thin = ma.thin;
    const int start_kind = (int)ma.start;
    if (start_kind == 2 && L < walkers) return cli_usage_error(cmd, "--start anpe needs --nsamples >= --walkers");
    so.mcmc.seed = (uint64_t)seed;

    long long *sel = NULL;
    size_t G = 0;
    if (cli_parse_id_list(ids_s ? ids_s : rows_s, &sel, &G))
        return cli_usage_error(cmd, "%s must be a comma-separated list of integers", ids_s ? "--ids" : "--rows");
    sf_catalog_options copt;
    sf_catalog_options_default(&copt);
    if (columns && sf_catalog_options_parse(&copt, columns)) {
        free(sel);
        return cli_usage_error(cmd, "%s", sf_last_error());
    }
    sf_catalog *cat = NULL;
    sf_flow *f = NULL;
    sf_model *m = NULL;
    size_t nq = SF_SEDPOST_NQ;
    double *gx = malloc(sizeof(double) * G * 11), *gflux = malloc(sizeof(double) * G * SF_NBANDS);
    double *givar = malloc(sizeof(double) * G * SF_NBANDS), *gz = malloc(sizeof(double) * G);
    long long *ids = malloc(sizeof(long long) * G);
    double *anpe = malloc(sizeof(double) * G * (size_t)L * nq), *usamp = malloc(sizeof(double) * (size_t)L * SF_NU);
    double *lq = malloc(sizeof(double) * (size_t)L), *x0 = malloc(sizeof(double) * G * (size_t)walkers * SF_NU);
    double *best_a = malloc(sizeof(double) * G * SF_NU), *mcs = NULL;
    sf_sedpost_galaxy *gal = calloc(G, sizeof *gal);
    sf_mcmc_chain **chains = calloc(G, sizeof *chains);
    sf_sedpost_diag *diag = calloc(G, sizeof *diag);
    sf_status *gst = calloc(G, sizeof *gst);
    FILE *csv = NULL;
    sf_status st = SF_OK;
    if (!gx || !gflux || !givar || !gz || !ids || !anpe || !usamp || !lq || !x0 || !best_a || !gal || !chains || !diag || !gst)
        st = SF_ERROR(SF_ENOMEM, "out of memory for %zu galaxies x %ld samples", G, L);
    if (!st) st = sf_catalog_read(&catalog, 1, SF_CATALOG_AUTO, &copt, &cat);
    if (!st) st = sf_flow_load(model, &f);
    if (!st && (sf_flow_get_config(f)->D != SF_NU || sf_flow_get_config(f)->C != 11))
        st = SF_ERROR(SF_EINVAL, "%s is not an SED flow (D = 11, C = 11)", model);
    if (!st) st = sf_model_load(data, &m);
    size_t *rows = st ? NULL : malloc(sizeof(size_t) * G);
    if (!st && !rows) st = SF_ERROR(SF_ENOMEM, "out of memory");
    if (!st) st = cli_catalog_rows(cat, sel, G, rows_s != NULL, rows);
    for (size_t k = 0; !st && k < G; k++) {
        size_t row = rows[k];
        ids[k] = cat->id[row], gz[k] = cat->z[row];
        memcpy(gflux + k * SF_NBANDS, cat->flux_nmgy + row * SF_NBANDS, sizeof(double) * SF_NBANDS);
        memcpy(givar + k * SF_NBANDS, cat->ivar_nmgy2 + row * SF_NBANDS, sizeof(double) * SF_NBANDS);
        st = sf_sedpost_flow_x(gflux + k * SF_NBANDS, givar + k * SF_NBANDS, gz[k], gx + k * 11);
        if (st) st = SF_ERROR(st, "galaxy %lld cannot be given to the flow: %s", ids[k], sf_last_error());
    }
    free(rows);
    /* ANPE */
    double t0 = cli_now();
    for (size_t k = 0; !st && k < G; k++) {
        size_t nacc = 0;
        st = sf_flow_sample(f, 1, gx + k * 11, (size_t)L, sf_mix64((uint64_t)seed + k), NULL, NULL, 0, usamp, lq, &nacc,
                            NULL, (int)threads);
        if (!st && nacc < (size_t)L)
            st = SF_ERROR(SF_ENOCONV, "galaxy %lld: the flow gave only %zu of %ld samples inside the prior box (outside "
                          "the training support?)", ids[k], nacc, L);
        if (!st) st = sf_sedpost_quantities(m, (size_t)L, usamp, gz[k], anpe + k * (size_t)L * nq);
        if (!st) {
            size_t b = 0;
            for (size_t i = 1; i < (size_t)L; i++)
                if (lq[i] > lq[b]) b = i;
            memcpy(best_a + k * SF_NU, usamp + b * SF_NU, sizeof(double) * SF_NU);
            memcpy(x0 + k * (size_t)walkers * SF_NU, usamp, sizeof(double) * (size_t)walkers * SF_NU);
        }
    }
    double t_anpe = cli_now() - t0;
    /* MCMC */
    if (!st) {
        for (size_t k = 0; k < G; k++) {
            for (int b = 0; b < SF_NBANDS; b++) { /* unusable bands are left out of the likelihood */
                double *fl = gflux + k * SF_NBANDS + b, *iv = givar + k * SF_NBANDS + b;
                if (!(isfinite(*fl) && isfinite(*iv) && *iv > 0)) *fl = 0, *iv = 0;
            }
            gal[k] = (sf_sedpost_galaxy){gflux + k * SF_NBANDS, givar + k * SF_NBANDS, gz[k],
                                         start_kind == 2 ? x0 + k * (size_t)walkers * SF_NU : NULL,
                                         sf_mix64((uint64_t)seed * 1000003ULL + k)};
        }
        fprintf(stderr, "sedflow compare: ANPE %.2f s for %zu galaxies; MCMC %ld walkers x %ld iterations ...\n", t_anpe, G,
                walkers, iters);
        t0 = cli_now();
        st = sf_sedpost_mcmc_many(m, G, gal, &so, 32, (int)threads, chains, diag, gst);
        fprintf(stderr, "sedflow compare: MCMC %.1f s\n", cli_now() - t0);
    }
    if (!st && out) {
        char path[4200];
        snprintf(path, sizeof path, "%s.csv", out);
        csv = fopen(path, "w");
        if (!csv) st = SF_ERROR(SF_EIO, "cannot write %s", path);
        else fprintf(csv, "id,quantity,median_anpe,median_mcmc,sd_anpe,sd_mcmc,dmedian_sigma,width_ratio,w1_sigma,ks_d\n");
    }
    size_t plot_k = 0;
    for (size_t k = 0; !st && k < G; k++) {
        if (have_plot_id && ids[k] == plot_id) plot_k = k;
        printf("# galaxy %lld  z = %.5f\n", ids[k], gz[k]);
        if (gst[k]) {
            printf("# MCMC FAILED: %s\n", diag[k].warning);
            continue;
        }
        size_t n = chains[k]->nsteps * chains[k]->nwalkers;
        free(mcs);
        mcs = malloc(sizeof(double) * n * nq);
        double summ[SF_SEDPOST_NQ][3];
        if (!mcs) st = SF_ERROR(SF_ENOMEM, "out of memory");
        if (!st) st = sf_sedpost_summarise(m, chains[k], gz[k], mcs, summ);
        if (st) break;
        printf("%-14s %10s %10s %9s %8s %8s %7s\n", "quantity", "med_ANPE", "med_MCMC", "dmed/sd", "width_r", "W1/sd",
               "KS_D");
        for (size_t q = 0; q < nq; q++) {
            sf_calib_compare_1d r;
            st = sf_calib_compare(anpe + k * (size_t)L * nq + q, (size_t)L, nq, mcs + q, n, nq, &r);
            if (st) break;
            printf("%-14s %10.4g %10.4g %9.3f %8.3f %8.3f %7.3f\n", sf_sedpost_names[q], r.median_a, r.median_b,
                   r.dmedian_sigma, r.width_ratio, r.w1_sigma, r.ks_d);
            if (csv)
                fprintf(csv, "%lld,%s,%.8g,%.8g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g\n", ids[k], sf_sedpost_names[q], r.median_a,
                        r.median_b, r.sd_a, r.sd_b, r.dmedian_sigma, r.width_ratio, r.w1_sigma, r.ks_d);
        }
        printf("# MCMC: max tau %.1f iterations, max R-hat %.4f, best chi2 %.3f%s%s\n", diag[k].tau_max * (double)thin,
               diag[k].rhat_max, diag[k].best_chi2, diag[k].converged ? "" : "; WARNING: ", diag[k].warning);
    }
    if (csv && fclose(csv) && !st) st = SF_ERROR(SF_EIO, "cannot write %s.csv", out);
    /* figures and chains */
    if (!st && out && !gst[plot_k]) {
        char path[4200];
        snprintf(path, sizeof path, "%s_mcmc.h5", out);
        st = sf_sedpost_save(path, m, G, gal, ids, &so, chains, diag, gst);
        if (!st && sf_plot_available()) {
            size_t n = chains[plot_k]->nsteps * chains[plot_k]->nwalkers;
            double *b = malloc(sizeof(double) * n * nq), summ[SF_SEDPOST_NQ][3];
            double fa[SF_NBANDS], chi2a = NAN;
            sf_sedpost *sp = NULL;
            const char *labels[2] = {"ANPE", "MCMC"};
            if (!b) st = SF_ERROR(SF_ENOMEM, "out of memory");
            if (!st) st = sf_sedpost_summarise(m, chains[plot_k], gz[plot_k], b, summ);
            snprintf(path, sizeof path, "%s_corner.png", out);
            if (!st) st = sf_plot_corner(path, anpe + plot_k * (size_t)L * nq, (size_t)L, b, n, nq, NULL, sf_sedpost_names, labels);
            if (!st) st = sf_sedpost_alloc(m, gflux + plot_k * SF_NBANDS, givar + plot_k * SF_NBANDS, gz[plot_k], so.prior, 1, &sp);
            if (!st) st = sf_sedpost_chi2(sp, 1, best_a + plot_k * SF_NU, &chi2a, fa);
            snprintf(path, sizeof path, "%s_sed.png", out);
            if (!st) st = plot_sed(path, gflux + plot_k * SF_NBANDS, givar + plot_k * SF_NBANDS, fa, diag[plot_k].best_flux,
                                   ids[plot_k], gz[plot_k]);
            if (!st)
                fprintf(stderr, "sedflow compare: galaxy %lld: best-fit chi2 ANPE %.3f, MCMC %.3f; wrote %s_corner.png, %s_sed.png\n",
                        ids[plot_k], chi2a, diag[plot_k].best_chi2, out, out);
            sf_sedpost_free(sp);
            free(b);
        } else if (!st) {
            fprintf(stderr, "sedflow compare: warning: gnuplot not found, no figures\n");
        }
    }
    int rc = st ? cli_fail(cmd, st) : 0;
    for (size_t k = 0; chains && k < G; k++) sf_mcmc_chain_free(chains[k]);
    free(chains), free(diag), free(gst), free(gal), free(mcs);
    free(gx), free(gflux), free(givar), free(gz), free(ids), free(anpe), free(usamp), free(lq), free(x0), free(best_a);
    free(sel);
    sf_catalog_free(cat);
    sf_flow_free(f);
    sf_model_free(m);
    return rc;
}
