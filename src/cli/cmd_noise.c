/* sedflow noise fit|show: fit the photometric noise model (paper eq. 5) to a
 * real catalog, or print a fitted table. */
#include <dirent.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "sedflow/catalog.h"
#include "sedflow/noise.h"

#ifndef SEDFLOW_DEFAULT_DATA
#define SEDFLOW_DEFAULT_DATA "data"
#endif

static void usage(FILE *out)
{
    fprintf(out,
            "usage: sedflow noise fit  [--catalog FILE [FILE...]] [--format F] [--columns SPEC]\n"
            "                          [--bin-width MAG] [--min-count N] [--min-snr S] --out noise.h5\n"
            "       sedflow noise show [--noise noise.h5]\n\n"
            "The SEDflow noise model (Hahn & Melchior 2022, eq. 5): per band u,g,r,i,z, the median\n"
            "mu_sigma(m) and standard deviation sigma_sigma(m) of the magnitude error sigma_m as a\n"
            "function of AB magnitude m, measured in magnitude bins on real galaxies and linearly\n"
            "interpolated between bin median magnitudes (held constant beyond the end bins).\n"
            "Only rows with all five fluxes > 0 and ivar > 0 (and a finite z) and a signal-to-noise\n"
            "flux*sqrt(ivar) >= S in all five bands are used (the paper's >= 5 sigma detection cut).\n\n"
            "fit options:\n"
            "  --catalog FILE...  catalog files, all of one format (several after one --catalog, or\n"
            "                     repeat it); default: every *.fits in <data>/nsa (the NSA sample)\n"
            "  --format F         nsa | mgs | csv | hdf5 | auto (default auto: detected from the file)\n"
            "  --columns SPEC     CSV/HDF5 column names, 'key=name,...' with key in id, z, flux_X,\n"
            "                     ivar_X, mag_X, sigma_X (X in ugriz); see docs/CATALOG.md\n"
            "  --bin-width MAG    fine magnitude bin width in mag (default 0.5)\n"
            "  --min-count N      minimum galaxies per bin; sparse bins are merged (default 30)\n"
            "  --min-snr S        S/N cut applied in every band (default 5; 0 = use every valid row)\n"
            "  --out FILE         output HDF5 file (written to FILE.tmp, then renamed)\n"
            "show options:\n"
            "  --noise FILE       noise model file (default $SEDFLOW_NOISE, else models/noise_nsa.h5\n"
            "                     of the source tree)\n"
            "  -h, --help         this help\n"
            "<data> is $SEDFLOW_DATA or the build's prepared-data folder (%s).\n",
            SEDFLOW_DEFAULT_DATA);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every .fits file in dir, sorted; returns count (0 on none), *out malloc'd. */
static size_t list_fits(const char *dir, char ***out)
{
    DIR *d = opendir(dir);
    *out = NULL;
    if (!d) return 0;
    size_t n = 0, cap = 0;
    char **v = NULL;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 6 || strcmp(e->d_name + l - 5, ".fits")) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 8;
            char **nv = realloc(v, cap * sizeof *nv);
            if (!nv) break;
            v = nv;
        }
        size_t pl = strlen(dir) + l + 2;
        v[n] = malloc(pl);
        if (!v[n]) break;
        snprintf(v[n], pl, "%s/%s", dir, e->d_name);
        n++;
    }
    closedir(d);
    if (n) qsort(v, n, sizeof *v, cmp_str);
    *out = v;
    return n;
}

static int do_fit(int argc, char **argv)
{
    const char *cmd = "noise fit";
    static const struct option opts[] = {{"catalog", required_argument, 0, 'c'}, {"format", required_argument, 0, 'f'},
                                         {"columns", required_argument, 0, 'C'}, {"bin-width", required_argument, 0, 'w'},
                                         {"min-count", required_argument, 0, 'm'}, {"out", required_argument, 0, 'o'},
                                         {"min-snr", required_argument, 0, 's'},
                                         {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
    const char **files = calloc((size_t)argc + 1, sizeof *files);
    if (!files) return cli_fail(cmd, SF_ERROR(SF_ENOMEM, "arguments"));
    size_t nfiles = 0;
    const char *out = NULL;
    sf_catalog_format fmt = SF_CATALOG_AUTO;
    sf_catalog_options copt;
    sf_catalog_options_default(&copt);
    sf_noise_fit_options fopt;
    sf_noise_fit_options_default(&fopt);
    int c, rc = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        double v;
        long l;
        switch (c) {
        case 'c': files[nfiles++] = optarg; break;
        case 'f':
            if (sf_catalog_format_parse(optarg, &fmt)) rc = cli_usage_error(cmd, "%s", sf_last_error());
            break;
        case 'C':
            if (sf_catalog_options_parse(&copt, optarg)) rc = cli_usage_error(cmd, "%s", sf_last_error());
            break;
        case 'w':
            if (cli_parse_double(cmd, "--bin-width", optarg, &v)) rc = 2;
            else if (!(v > 0)) rc = cli_usage_error(cmd, "--bin-width must be > 0 mag, got %g", v);
            else fopt.bin_width_mag = v;
            break;
        case 'm':
            if (cli_parse_long(cmd, "--min-count", optarg, &l)) rc = 2;
            else if (l < 2) rc = cli_usage_error(cmd, "--min-count must be >= 2, got %ld", l);
            else fopt.min_count = (size_t)l;
            break;
        case 's':
            if (cli_parse_double(cmd, "--min-snr", optarg, &v)) rc = 2;
            else if (!(v >= 0)) rc = cli_usage_error(cmd, "--min-snr must be >= 0, got %g", v);
            else fopt.min_snr = v;
            break;
        case 'o': out = optarg; break;
        case 'h': usage(stdout); free(files); return 0;
        default: rc = 2;
        }
        if (rc) {
            free(files);
            return rc;
        }
    }
    for (int k = optind; k < argc; k++) files[nfiles++] = argv[k]; /* --catalog a b c */
    if (!out) {
        free(files);
        return cli_usage_error(cmd, "--out FILE is required");
    }
    char **found = NULL;
    size_t nfound = 0;
    if (nfiles == 0) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/nsa", cli_data_dir());
        nfound = list_fits(dir, &found);
        if (nfound == 0) {
            free(files);
            free(found);
            return cli_usage_error(cmd, "no --catalog given and no *.fits in %s", dir);
        }
    }
    const char *const *list = nfound ? (const char *const *)found : files;
    if (nfound) nfiles = nfound;
    sf_catalog *cat = NULL;
    sf_noise *nm = NULL;
    sf_status st = sf_catalog_read(list, nfiles, fmt, &copt, &cat);
    if (!st) {
        char source[512];
        size_t pos = (size_t)snprintf(source, sizeof source, "%s catalog, %zu rows valid of %zu (%zu read):",
                                      sf_catalog_format_name(cat->format), sf_catalog_count_valid(cat), cat->n,
                                      cat->n_read);
        for (size_t k = 0; k < nfiles && pos < sizeof source; k++) {
            const char *base = strrchr(list[k], '/');
            pos += (size_t)snprintf(source + pos, sizeof source - pos, " %s", base ? base + 1 : list[k]);
        }
        st = sf_noise_fit(cat, &fopt, source, &nm);
    }
    if (!st) st = sf_noise_save(nm, out);
    if (st)
        rc = cli_fail(cmd, st);
    else {
        fprintf(stderr,
                "sedflow noise fit: %lld rows used (S/N >= %g) of %lld valid, %zu distinct, %zu read "
                "(%zu duplicates removed) -> %s\n",
                nm->n_rows, nm->min_snr, nm->n_valid, cat->n, cat->n_read, cat->n_duplicates, out);
        for (int b = 0; b < SF_CATALOG_NBANDS; b++)
            fprintf(stderr, "  %c: %zu bins, %.2f - %.2f mag (flux %.4g - %.4g nmgy)\n", sf_catalog_band_names[b],
                    nm->band[b].nbin, nm->band[b].mag_min, nm->band[b].mag_max, nm->band[b].nmgy_min,
                    nm->band[b].nmgy_max);
    }
    sf_noise_free(nm);
    sf_catalog_free(cat);
    for (size_t k = 0; k < nfound; k++) free(found[k]);
    free(found);
    free(files);
    return rc;
}

static int do_show(int argc, char **argv)
{
    const char *cmd = "noise show";
    static const struct option opts[] = {{"noise", required_argument, 0, 'n'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    char path[4096];
    cli_noise_path(path, sizeof path);
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'n': snprintf(path, sizeof path, "%s", optarg); break;
        case 'h': usage(stdout); return 0;
        default: return 2;
        }
    }
    if (optind < argc) return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    sf_noise *nm = NULL;
    sf_status st = sf_noise_load(path, &nm);
    if (st) return cli_fail(cmd, st);
    printf("# sedflow noise model %s\n# source: %s\n", path, nm->source);
    printf("# fit rows %lld (of %lld valid; S/N >= %g in all bands), fine bin width %.3g mag, min count %lld per bin\n",
           nm->n_rows, nm->n_valid, nm->min_snr, nm->bin_width_mag, nm->min_count);
    printf("# mu_sigma, sigma_sigma: median and standard deviation of sigma_m (mag) in each bin;\n"
           "# linear in m between bin centres (median m of the bin), constant beyond the end centres.\n");
    for (int b = 0; b < SF_CATALOG_NBANDS; b++) {
        const sf_noise_band *t = &nm->band[b];
        printf("\nband %c: %zu bins; flux range %.6g - %.6g nmgy (%.3f - %.3f mag)\n", sf_catalog_band_names[b],
               t->nbin, t->nmgy_min, t->nmgy_max, t->mag_min, t->mag_max);
        printf("%8s %8s %8s %6s %12s %12s\n", "mag_lo", "mag_hi", "centre", "count", "mu_sigma", "sigma_sigma");
        for (size_t k = 0; k < t->nbin; k++)
            printf("%8.2f %8.2f %8.3f %6lld %12.5f %12.5f\n", t->mag_lo[k], t->mag_hi[k], t->mag_centre[k],
                   t->count[k], t->mu_sigma_mag[k], t->sigma_sigma_mag[k]);
    }
    sf_noise_free(nm);
    return 0;
}

int cmd_noise(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "fit")) return do_fit(argc - 1, argv + 1);
    if (!strcmp(argv[1], "show")) return do_show(argc - 1, argv + 1);
    return cli_usage_error("noise", "unknown action '%s' (fit or show)", argv[1]);
}
