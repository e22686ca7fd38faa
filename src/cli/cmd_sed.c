/*
 * sedflow sed — the forward model from the command line: ugriz fluxes
 * (nanomaggies) and AB magnitudes, derived properties, optionally the
 * spectrum, for one parameter vector or a file of many.
 */
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "sedflow/model.h"

static void help(void)
{
    printf(
        "usage: sedflow sed --theta V0,...,V11 --z Z [--spectrum OUT.csv] [--data DIR]\n"
        "       sedflow sed --input PARAMS.csv [--data DIR] [--threads T] > fluxes.csv\n\n"
        "Evaluate the PROVABGS SED model (shared/spec/MODEL.md): rest-frame spectrum from the\n"
        "neural emulators, redshifted and integrated through the SDSS u,g,r,i,z filters.\n\n"
        "options:\n"
        "  --theta LIST     the 12 physical parameters, comma-separated, in this order:\n"
        "                   logmstar [log10 Msun formed], beta1..beta4 [SFH NMF weights, sum 1],\n"
        "                   fburst [0-1], tburst [Gyr lookback], gamma1, gamma2 [ZH NMF weights,\n"
        "                   linear], tau_bc, tau_ism [optical depths], n_dust [slope offset]\n"
        "  --z Z            redshift, 0 < z <= 0.6\n"
        "  --spectrum FILE  also write the spectrum as CSV: wave_rest_A, wave_obs_A,\n"
        "                   lum_lsun_per_A (rest-frame L_lambda, whole galaxy),\n"
        "                   flambda_1e-17cgs (observed f_lambda, 1e-17 erg/s/cm^2/A)\n"
        "  --input FILE     many galaxies: a CSV/whitespace text file with 13 numbers per row\n"
        "                   (the 12 parameters then z; '#' comments and a header line are\n"
        "                   skipped). Prints one CSV row per galaxy: row, f_u..f_z [nmgy],\n"
        "                   mag_u..mag_z [AB], sfr_1gyr [Msun/yr], z_mw, tage_mw_gyr\n"
        "  --threads T      OpenMP threads for --input (default: all cores)\n"
        "  --data DIR       prepared data folder (default $SEDFLOW_DATA or the build's data/)\n"
        "  -h, --help       this help\n");
}

static double mag_ab(double f_nmgy) { return f_nmgy > 0 ? 22.5 - 2.5 * log10(f_nmgy) : NAN; }

static int read_rows(const char *path, double **theta, double **z, size_t *n)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "sedflow sed: cannot open '%s'\n", path);
        return 1;
    }
    size_t cap = 64, k = 0;
    *theta = malloc(cap * SF_NTHETA * sizeof(double));
    *z = malloc(cap * sizeof(double));
    char line[8192];
    size_t lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *p = line;
        while (*p == ' ' || *p == '\t') p++;
        if (*p == '#' || *p == '\n' || *p == '\0') continue;
        double v[SF_NTHETA + 1];
        int ok = 1;
        for (int c = 0; c <= SF_NTHETA && ok; c++) {
            char *end;
            v[c] = strtod(p, &end);
            if (end == p) ok = 0;
            p = end;
            while (*p == ',' || *p == ' ' || *p == '\t') p++;
        }
        if (!ok) {
            if (k == 0 && lineno == 1) continue; /* header */
            fprintf(stderr, "sedflow sed: %s line %zu: expected 13 numbers (12 parameters, z)\n", path, lineno);
            fclose(f);
            return 1;
        }
        if (k == cap) {
            cap *= 2;
            *theta = realloc(*theta, cap * SF_NTHETA * sizeof(double));
            *z = realloc(*z, cap * sizeof(double));
        }
        memcpy(*theta + k * SF_NTHETA, v, SF_NTHETA * sizeof(double));
        (*z)[k++] = v[SF_NTHETA];
    }
    fclose(f);
    *n = k;
    return 0;
}

int cmd_sed(int argc, char **argv)
{
    static const struct option opts[] = {{"theta", required_argument, 0, 't'}, {"z", required_argument, 0, 'z'},
                                         {"spectrum", required_argument, 0, 's'}, {"input", required_argument, 0, 'i'},
                                         {"data", required_argument, 0, 'd'}, {"threads", required_argument, 0, 'T'},
                                         {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    double theta[SF_NTHETA], z = NAN;
    int have_theta = 0;
    long threads = 0;
    const char *spec_path = NULL, *input = NULL, *data = cli_data_dir();
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 't':
            if (cli_parse_doubles("sed", "--theta", optarg, theta, SF_NTHETA)) return 2;
            have_theta = 1;
            break;
        case 'z': if (cli_parse_double("sed", "--z", optarg, &z)) return 2; break;
        case 's': spec_path = optarg; break;
        case 'i': input = optarg; break;
        case 'd': data = optarg; break;
        case 'T': if (cli_parse_threads("sed", optarg, &threads)) return 2; break;
        case 'h': help(); return 0;
        default: return cli_usage_error("sed", "unknown option");
        }
    }
    if (optind < argc) return cli_usage_error("sed", "unexpected argument '%s'", argv[optind]);
    if (!input && !have_theta) return cli_usage_error("sed", "give --theta and --z, or --input FILE");
    if (input && (have_theta || spec_path)) return cli_usage_error("sed", "--input excludes --theta and --spectrum");
    if (!input && isnan(z)) return cli_usage_error("sed", "--z is required with --theta");

    sf_model *m;
    sf_status st = sf_model_load(data, &m);
    if (st) return cli_fail("sed", st);
    int rc = 0;
    if (input) {
        double *th = NULL, *zz = NULL;
        size_t n = 0;
        if (read_rows(input, &th, &zz, &n)) rc = 1;
        double *flux = malloc((n ? n : 1) * SF_NBANDS * sizeof(double));
        double *der = malloc((n ? n : 1) * SF_NDERIVED * sizeof(double));
        if (!rc && (st = sf_model_photometry_omp(m, n, th, zz, flux, (int)threads))) rc = cli_fail("sed", st);
        if (!rc && (st = sf_model_derived(m, n, th, zz, der))) rc = cli_fail("sed", st);
        if (!rc) {
            printf("row,f_u,f_g,f_r,f_i,f_z,mag_u,mag_g,mag_r,mag_i,mag_z,sfr_1gyr,z_mw,tage_mw_gyr\n");
            for (size_t i = 0; i < n; i++) {
                printf("%zu", i);
                for (int b = 0; b < SF_NBANDS; b++) printf(",%.8g", flux[i * SF_NBANDS + b]);
                for (int b = 0; b < SF_NBANDS; b++) printf(",%.6f", mag_ab(flux[i * SF_NBANDS + b]));
                for (int k = 0; k < SF_NDERIVED; k++) printf(",%.8g", der[i * SF_NDERIVED + k]);
                printf("\n");
            }
        }
        free(th); free(zz); free(flux); free(der);
        sf_model_free(m);
        return rc;
    }

    sf_model_work *w = NULL;
    double flux[SF_NBANDS], der[SF_NDERIVED];
    double *lum = malloc(SF_NWAVE * sizeof(double)), *fobs = malloc(SF_NWAVE * sizeof(double));
    if ((st = sf_model_work_alloc(m, 1, &w)) || (st = sf_model_photometry(m, w, 1, theta, &z, flux, lum)) ||
        (st = sf_model_derived(m, 1, theta, &z, der)) || (st = sf_model_flambda_obs(m, z, lum, fobs))) {
        rc = cli_fail("sed", st);
    } else {
        double tage, dl;
        sf_cosmo_tage_gyr(sf_model_cosmo(m), z, &tage);
        sf_cosmo_dlum_cm(sf_model_cosmo(m), z, &dl);
        printf("redshift z = %g   tage(z) = %.6f Gyr   d_L = %.6e cm\n\n", z, tage, dl);
        printf("band   flux [nmgy]      mag [AB]\n");
        for (int b = 0; b < SF_NBANDS; b++) printf("%-4s %14.6g %12.5f\n", sf_band_names[b], flux[b], mag_ab(flux[b]));
        printf("\nlog_mstar     = %.5f   [log10 Msun formed]\n", theta[SF_TH_LOGMSTAR]);
        printf("sfr_1gyr      = %.6g   [Msun/yr]   log_sfr_1gyr = %.5f\n", der[0], log10(der[0]));
        printf("z_mw          = %.6g   [mass-weighted Z]   log_z_mw = %.5f\n", der[1], log10(der[1]));
        printf("tage_mw       = %.6g   [Gyr, mass-weighted lookback age]\n", der[2]);
        if (spec_path) {
            FILE *f = fopen(spec_path, "w");
            if (!f) {
                fprintf(stderr, "sedflow sed: cannot write '%s'\n", spec_path);
                rc = 1;
            } else {
                const double *wr = sf_model_wave_rest(m);
                fprintf(f, "wave_rest_A,wave_obs_A,lum_lsun_per_A,flambda_1e-17cgs\n");
                for (int j = 0; j < SF_NWAVE; j++)
                    fprintf(f, "%.4f,%.4f,%.8e,%.8e\n", wr[j], wr[j] * (1 + z), lum[j], fobs[j] * 1e17);
                if (fclose(f)) rc = 1;
                else printf("\nspectrum: %s (%d wavelengths)\n", spec_path, SF_NWAVE);
            }
        }
    }
    free(lum);
    free(fobs);
    sf_model_work_free(w);
    sf_model_free(m);
    return rc;
}
