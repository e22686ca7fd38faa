/*
 * sedflow mcmc — MCMC posterior of the SED parameters of one galaxy (or
 * chosen catalog rows) on the likelihood of the paper's eq. 1 and the
 * flow's prior box, with the ensemble slice sampler (zeus's algorithm) or
 * the stretch move; diagnostics; optional HDF5 chain file.
 */
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "sedflow/catalog.h"
#include "sedflow/flow.h"
#include "sedflow/rng.h"
#include "sedflow/sedpost.h"

static void help(const cli_mcmc *ma)
{
    printf("usage: sedflow mcmc (--flux F --ivar V --z Z | --catalog FILE --ids ID,...) [options]\n\n"
           "Sample the posterior of the 11 sampling-space SED parameters of a galaxy:\n"
           "Gaussian likelihood of the observed ugriz fluxes given the PROVABGS model fluxes\n"
           "(paper eq. 1, diagonal: -1/2 sum ivar (f - F)^2; bands with ivar = 0 are left out)\n"
           "times the prior box of the flow. Prints, per parameter and for the derived\n"
           "log_sfr_1gyr, log_z_mw and tage_mw, the median and the 16th/84th percentiles, the\n"
           "integrated autocorrelation time and split-R-hat, and warns when the chain is\n"
           "shorter than 50 autocorrelation times or R-hat >= 1.05. log_mstar is logmstar.\n\n"
           "galaxy:\n"
           "  --flux u,g,r,i,z      observed fluxes [nanomaggies]\n"
           "  --ivar u,g,r,i,z      their inverse variances [nmgy^-2]\n"
           "  --z Z                 redshift, in (0, 0.6]\n"
           "  --catalog FILE        a catalog (NSA FITS, MGS, CSV, HDF5; docs/CATALOG.md) ...\n"
           "  --ids ID,...          ... and the ids of the galaxies to sample (or --rows)\n"
           "  --rows I,...          0-based catalog rows instead of ids\n"
           "  --columns SPEC        column names of CSV/HDF5 catalogs (key=name,...)\n\n"
           "sampler:\n");
    cli_mcmc_help(ma);
    printf("  --seed S              random seed (default 1); galaxy k uses seed mix(S, k)\n"
           "  --model M             flow model file for --start anpe (implies it)\n\n"
           "run:\n"
           "  --out FILE.h5         write chains, derived properties and diagnostics\n"
           "  --threads T           threads for the model evaluations (default: all)\n"
           "  --concurrent N        galaxies sampled at once, their model evaluations pooled\n"
           "                        into one batch (default 32)\n"
           "  --data DIR            prepared data folder (default $SEDFLOW_DATA or data/)\n"
           "  -h, --help            this help\n");
}

int cmd_mcmc(int argc, char **argv)
{
    const char *cmd = "mcmc";
    static const struct option opts[] = {
        {"flux", required_argument, 0, 'f'},     {"ivar", required_argument, 0, 'v'},
        {"z", required_argument, 0, 'z'},        {"catalog", required_argument, 0, 'c'},
        {"ids", required_argument, 0, 'i'},      {"rows", required_argument, 0, 'r'},
        {"columns", required_argument, 0, 'C'},  CLI_MCMC_OPTIONS("", "iterations"),
        {"seed", required_argument, 0, 's'},     {"model", required_argument, 0, 'm'},
        {"out", required_argument, 0, 'o'},
        {"threads", required_argument, 0, 'T'},  {"concurrent", required_argument, 0, 'K'},
        {"data", required_argument, 0, 'd'},     {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    double flux[SF_NBANDS], ivar[SF_NBANDS], z = NAN;
    int have_flux = 0, have_ivar = 0;
    const char *catalog = NULL, *ids_s = NULL, *rows_s = NULL, *columns = NULL, *model = NULL, *out = NULL;
    const char *data = cli_data_dir();
    long seed = 1, threads = 0, conc = 32;
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
        case 'f': if (cli_parse_doubles(cmd, "--flux", optarg, flux, SF_NBANDS)) return 2; have_flux = 1; break;
        case 'v': if (cli_parse_doubles(cmd, "--ivar", optarg, ivar, SF_NBANDS)) return 2; have_ivar = 1; break;
        case 'z': if (cli_parse_double(cmd, "--z", optarg, &z)) return 2; break;
        case 'c': catalog = optarg; break;
        case 'i': ids_s = optarg; break;
        case 'r': rows_s = optarg; break;
        case 'C': columns = optarg; break;
        case 's': if (cli_parse_seed(cmd, optarg, &seed)) return 2; break;
        case 'm': model = optarg; break;
        case 'o': out = optarg; break;
        case 'T': if (cli_parse_threads(cmd, optarg, &threads)) return 2; break;
        case 'K': if (cli_parse_long(cmd, "--concurrent", optarg, &conc)) return 2; break;
        case 'd': data = optarg; break;
        case 'h': help(&ma); return 0;
        default: return cli_usage_error(cmd, "unknown option");
        }
    }
    if (optind < argc) return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    int single = have_flux || have_ivar || !isnan(z);
    if (single && catalog) return cli_usage_error(cmd, "give either --flux/--ivar/--z or --catalog, not both");
    if (single && !(have_flux && have_ivar && !isnan(z))) return cli_usage_error(cmd, "--flux, --ivar and --z go together");
    if (!single && !catalog) return cli_usage_error(cmd, "give a galaxy (--flux, --ivar, --z) or --catalog with --ids");
    if (single) {
        if (!(z > 0 && z <= SF_ZMAX_MODEL))
            return cli_usage_error(cmd, "--z %g is outside the forward model's range (0, %g]", z, SF_ZMAX_MODEL);
        int nband = 0;
        for (int b = 0; b < SF_NBANDS; b++) {
            if (!isfinite(flux[b]) || !isfinite(ivar[b]) || ivar[b] < 0)
                return cli_usage_error(cmd, "band %d: flux %g, ivar %g: need finite values and ivar >= 0 (0 leaves "
                                            "the band out)", b, flux[b], ivar[b]);
            nband += ivar[b] > 0;
        }
        if (nband == 0) return cli_usage_error(cmd, "every ivar is 0: no band to fit");
    }
    if (catalog && !!ids_s == !!rows_s) return cli_usage_error(cmd, "--catalog needs exactly one of --ids and --rows");
    if (cli_mcmc_finish(&ma, cmd, 1, &so)) return 2;
    if (conc < 1) return cli_usage_error(cmd, "--concurrent %ld: must be >= 1", conc);
    if (ma.start == CLI_MCMC_START_ANPE && !model) return cli_usage_error(cmd, "--start anpe needs --model");
    const char *reads[2] = {catalog, model};
    if (out && cli_check_output_path(cmd, "--out", out, reads, 2)) return 2; /* before the (long) sampling */
    int start_kind = model ? 2 : (int)ma.start;
    so.mcmc.seed = (uint64_t)seed;
    const long walkers = ma.walkers, iters = ma.iters, burn = ma.burn, thin = ma.thin;
    const char *start = start_kind == 2 ? "anpe" : start_kind == 1 ? "best" : "prior";

    /* galaxies */
    size_t G = 0;
    sf_catalog *cat = NULL;
    long long *sel = NULL, *ids = NULL;
    size_t nsel = 0;
    double *gflux = NULL, *givar = NULL, *gz = NULL;
    sf_status st = SF_OK;
    if (single) {
        G = 1;
        gflux = malloc(sizeof flux), givar = malloc(sizeof ivar), gz = malloc(sizeof(double)), ids = calloc(1, sizeof *ids);
        if (!gflux || !givar || !gz || !ids) st = SF_ERROR(SF_ENOMEM, "out of memory");
        else memcpy(gflux, flux, sizeof flux), memcpy(givar, ivar, sizeof ivar), gz[0] = z;
    } else {
        if (cli_parse_id_list(ids_s ? ids_s : rows_s, &sel, &nsel))
            return cli_usage_error(cmd, "%s must be a comma-separated list of integers", ids_s ? "--ids" : "--rows");
        sf_catalog_options copt;
        sf_catalog_options_default(&copt);
        if (columns && sf_catalog_options_parse(&copt, columns)) {
            free(sel);
            return cli_usage_error(cmd, "%s", sf_last_error());
        }
        st = sf_catalog_read(&catalog, 1, SF_CATALOG_AUTO, &copt, &cat);
        G = nsel;
        if (!st) {
            gflux = malloc(sizeof(double) * G * SF_NBANDS), givar = malloc(sizeof(double) * G * SF_NBANDS);
            gz = malloc(sizeof(double) * G), ids = malloc(sizeof(long long) * G);
            if (!gflux || !givar || !gz || !ids) st = SF_ERROR(SF_ENOMEM, "out of memory");
        }
        size_t *rows = st ? NULL : malloc(sizeof(size_t) * (G ? G : 1));
        if (!st && !rows) st = SF_ERROR(SF_ENOMEM, "out of memory");
        if (!st) st = cli_catalog_rows(cat, sel, G, rows_s != NULL, rows);
        for (size_t k = 0; !st && k < G; k++) {
            size_t row = rows[k];
            ids[k] = cat->id[row];
            gz[k] = cat->z[row];
            for (int b = 0; b < SF_NBANDS; b++) {
                double f = cat->flux_nmgy[row * SF_NBANDS + b], iv = cat->ivar_nmgy2[row * SF_NBANDS + b];
                int ok = isfinite(f) && isfinite(iv) && iv > 0;
                gflux[k * SF_NBANDS + b] = ok ? f : 0; /* unusable band: left out (ivar 0) */
                givar[k * SF_NBANDS + b] = ok ? iv : 0;
                if (!ok) fprintf(stderr, "sedflow mcmc: galaxy %lld: band %s left out (flux %g, ivar %g)\n", ids[k],
                                 sf_band_names[b], f, iv);
            }
        }
        free(rows);
    }
    sf_model *m = NULL;
    sf_flow *flow = NULL;
    double *x0 = NULL;
    sf_sedpost_galaxy *gal = calloc(G ? G : 1, sizeof *gal);
    sf_mcmc_chain **chains = calloc(G ? G : 1, sizeof *chains);
    sf_sedpost_diag *diag = calloc(G ? G : 1, sizeof *diag);
    sf_status *gst = calloc(G ? G : 1, sizeof *gst);
    if (!st && (!gal || !chains || !diag || !gst)) st = SF_ERROR(SF_ENOMEM, "out of memory");
    if (!st) st = sf_model_load(data, &m);
    if (!st && start_kind == 2) {
        st = sf_flow_load(model, &flow);
        if (!st && (sf_flow_get_config(flow)->D != SF_NU || sf_flow_get_config(flow)->C != 11))
            st = SF_ERROR(SF_EINVAL, "model %s has D = %d, C = %d; the SED flow has 11 and 11", model,
                          sf_flow_get_config(flow)->D, sf_flow_get_config(flow)->C);
        if (!st) {
            x0 = malloc(sizeof(double) * G * so.mcmc.nwalkers * SF_NU);
            if (!x0) st = SF_ERROR(SF_ENOMEM, "out of memory");
        }
        for (size_t k = 0; !st && k < G; k++) {
            double x[11];
            size_t nacc = 0;
            st = sf_sedpost_flow_x(gflux + k * SF_NBANDS, givar + k * SF_NBANDS, gz[k], x);
            if (!st)
                st = sf_flow_sample(flow, 1, x, so.mcmc.nwalkers, sf_mix64((uint64_t)seed + k), sf_prior_lower, sf_prior_upper,
                                    0, x0 + k * so.mcmc.nwalkers * SF_NU, NULL, &nacc, NULL, (int)threads);
            if (!st && nacc < so.mcmc.nwalkers)
                st = SF_ERROR(SF_ENOCONV, "galaxy %lld: the flow gave only %zu of %zu start points inside the prior box",
                              ids[k], nacc, so.mcmc.nwalkers);
        }
    }
    if (st) goto done;
    for (size_t k = 0; k < G; k++)
        gal[k] = (sf_sedpost_galaxy){gflux + k * SF_NBANDS, givar + k * SF_NBANDS, gz[k],
                                     x0 ? x0 + k * so.mcmc.nwalkers * SF_NU : NULL,
                                     G == 1 ? (uint64_t)seed : sf_mix64((uint64_t)seed * 1000003ULL + k)};
    fprintf(stderr, "sedflow mcmc: %zu galaxies, %ld walkers x %ld iterations (%ld burn-in), move %s, start %s\n", G,
            walkers, iters, burn, cli_mcmc_move_name(so.mcmc.move), start);
    double t0 = cli_now();
    st = sf_sedpost_mcmc_many(m, G, gal, &so, (size_t)conc, (int)threads, chains, diag, gst);
    double dt = cli_now() - t0;
    if (st) goto done;
    unsigned long long neval = 0;
    int nfail = 0;
    for (size_t k = 0; k < G; k++) {
        printf("# galaxy %lld  z = %.5f  flux [nmgy] =", ids[k], gz[k]);
        for (int b = 0; b < SF_NBANDS; b++) printf(" %.5g", gflux[k * SF_NBANDS + b]);
        printf("\n");
        if (gst[k]) {
            printf("# FAILED: %s\n", diag[k].warning);
            nfail++;
            continue;
        }
        double summ[SF_SEDPOST_NQ][3];
        sf_status s2 = sf_sedpost_summarise(m, chains[k], gz[k], NULL, summ);
        if (s2) {
            printf("# FAILED to summarise: %s\n", sf_last_error());
            nfail++;
            continue;
        }
        neval += diag[k].info.neval;
        printf("%-14s %11s %11s %11s %8s %8s\n", "quantity", "median", "p16", "p84", "tau", "R-hat");
        for (int q = 0; q < SF_SEDPOST_NQ; q++) {
            printf("%-14s %11.5g %11.5g %11.5g", sf_sedpost_names[q], summ[q][0], summ[q][1], summ[q][2]);
            if (q < SF_NU) printf(" %8.1f %8.4f\n", diag[k].tau[q] * (double)thin, diag[k].rhat[q]);
            else printf(" %8s %8s\n", "-", "-");
        }
        printf("# best fit: chi2 = %.3f over %d bands, log posterior %.3f; model flux [nmgy] =", diag[k].best_chi2,
               diag[k].nbands, diag[k].best_logp);
        for (int b = 0; b < SF_NBANDS; b++) printf(" %.5g", diag[k].best_flux[b]);
        printf("\n# %llu model evaluations; tau in iterations; max tau %.1f, max R-hat %.4f; mu %.4g\n",
               diag[k].info.neval, diag[k].tau_max * (double)thin, diag[k].rhat_max, diag[k].info.mu);
        if (!diag[k].converged)
            printf("# WARNING: chain too short or not mixed: %s (longer --iterations; the estimates above are unreliable)\n",
                   diag[k].warning);
    }
    fprintf(stderr, "sedflow mcmc: %.1f s wall, %llu model evaluations (%.3f ms per evaluation wall)\n", dt, neval,
            neval ? dt * 1e3 / (double)neval : 0.0);
    if (out) {
        st = sf_sedpost_save(out, m, G, gal, ids, &so, chains, diag, gst);
        if (!st) fprintf(stderr, "sedflow mcmc: wrote %s\n", out);
    }
    if (!st && nfail) st = SF_ERROR(SF_ENOCONV, "%d of %zu galaxies failed", nfail, G);
done:;
    int rc = st ? cli_fail(cmd, st) : 0;
    for (size_t k = 0; chains && k < G; k++) sf_mcmc_chain_free(chains[k]);
    free(chains), free(diag), free(gst), free(gal), free(x0);
    free(gflux), free(givar), free(gz), free(ids), free(sel);
    sf_flow_free(flow);
    sf_model_free(m);
    sf_catalog_free(cat);
    return rc;
}
