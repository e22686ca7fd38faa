/*
 * sedflow simulate — make a training or test set (SEDflow section 3.2):
 * prior draws, noiseless photometry, the NSA noise model, noisy photometry,
 * written progressively to an HDF5 file (layout: docs/DATA.md).
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "sedflow/sim.h"

static void help(void)
{
    printf("usage: sedflow simulate --n N --seed S --out FILE.h5 [options]\n\n"
           "Simulate N galaxies (rows kept after the cuts) for training or testing the flow:\n"
           "u ~ prior, z ~ U(z_min, z_max), noiseless ugriz fluxes from the PROVABGS model,\n"
           "magnitude errors sigma' ~ N(mu_sigma(m), sigma_sigma(m)) from the noise model, noisy\n"
           "fluxes F + N(0, F ln10/2.5 sigma'). Candidates are removed (and counted) when a\n"
           "noiseless flux lies outside the NSA flux range, sigma' <= 0, or a noisy flux <= 0.\n\n"
           "options:\n"
           "  --n N            rows in the output after the cuts (required)\n"
           "  --seed S         random seed (default 1); candidate j uses stream j of S, so the\n"
           "                   output does not depend on --threads\n"
           "  --out FILE       output HDF5 file; written as FILE.tmp and renamed when complete\n"
           "  --resume         continue an interrupted run from FILE.tmp (same seed and options)\n"
           "  --threads T      OpenMP threads (default: all cores)\n"
           "  --noise FILE     noise model (default $SEDFLOW_NOISE, else models/noise_nsa.h5)\n"
           "  --prior P        sedflow (uniform in the sampling space, default) or dirichlet\n"
           "  --zmin Z, --zmax Z  redshift range (default 0 and 0.2; at most 0.6)\n"
           "  --block B        candidates per block (default 4096; progress and checkpoint unit)\n"
           "  --data DIR       prepared data folder (default $SEDFLOW_DATA or the build's data/)\n"
           "  -h, --help       this help\n");
}

int cmd_simulate(int argc, char **argv)
{
    static const struct option opts[] = {
        {"n", required_argument, 0, 'n'},      {"seed", required_argument, 0, 's'},
        {"out", required_argument, 0, 'o'},    {"resume", no_argument, 0, 'r'},
        {"threads", required_argument, 0, 'T'}, {"noise", required_argument, 0, 'N'},
        {"prior", required_argument, 0, 'p'},  {"zmin", required_argument, 0, 'a'},
        {"zmax", required_argument, 0, 'b'},   {"block", required_argument, 0, 'B'},
        {"data", required_argument, 0, 'd'},   {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    sf_sim_options so;
    sf_sim_options_default(&so);
    long n = -1, v;
    int resume = 0;
    const char *out = NULL, *data = cli_data_dir();
    char noise_path[4096];
    cli_noise_path(noise_path, sizeof noise_path);
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'n': if (cli_parse_long("simulate", "--n", optarg, &n)) return 2; break;
        case 's':
            if (cli_parse_seed("simulate", optarg, &v)) return 2;
            so.seed = (uint64_t)v;
            break;
        case 'o': out = optarg; break;
        case 'r': resume = 1; break;
        case 'T':
            if (cli_parse_threads("simulate", optarg, &v)) return 2;
            so.nthreads = (int)v;
            break;
        case 'N': snprintf(noise_path, sizeof noise_path, "%s", optarg); break;
        case 'p':
            if (sf_prior_parse(optarg, &so.prior)) return cli_usage_error("simulate", "%s", sf_last_error());
            break;
        case 'a': if (cli_parse_double("simulate", "--zmin", optarg, &so.z_min)) return 2; break;
        case 'b': if (cli_parse_double("simulate", "--zmax", optarg, &so.z_max)) return 2; break;
        case 'B':
            if (cli_parse_long("simulate", "--block", optarg, &v) || v < 1) return cli_usage_error("simulate", "--block must be >= 1");
            so.block = (size_t)v;
            break;
        case 'd': data = optarg; break;
        case 'h': help(); return 0;
        default: return cli_usage_error("simulate", "unknown option");
        }
    }
    if (optind < argc) return cli_usage_error("simulate", "unexpected argument '%s'", argv[optind]);
    if (n < 1) return cli_usage_error("simulate", "--n must be a positive number of rows");
    if (!out) return cli_usage_error("simulate", "--out is required");

    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", out);
    sf_model *m = NULL;
    sf_noise *nm = NULL;
    sf_sim *sim = NULL;
    sf_simfile *f = NULL;
    sf_sim_counts counts = {0};
    uint64_t k = 0;
    sf_status st = sf_model_load(data, &m);
    if (!st) st = sf_noise_load(noise_path, &nm);
    if (!st && resume) {
        int threads = so.nthreads;
        st = sf_simfile_resume(tmp, &so, &k, &counts, &f);
        so.nthreads = threads;
        if (!st) fprintf(stderr, "sedflow simulate: resuming %s at %zu rows (block %llu)\n", tmp, sf_simfile_nrows(f),
                         (unsigned long long)k);
        if (!st) st = sf_sim_alloc(m, nm, &so, &sim);
    } else if (!st) {
        st = sf_sim_alloc(m, nm, &so, &sim); /* validates the options before a file exists */
        if (!st) st = sf_simfile_create(tmp, &so, nm->source[0] ? nm->source : noise_path, &f);
    }
    cli_progress p;
    cli_progress_start(&p, "simulate", (size_t)n);
    double t0 = cli_now();
    size_t start_rows = f ? sf_simfile_nrows(f) : 0;
    while (!st && sf_simfile_nrows(f) < (size_t)n) {
        const sf_sim_rows *rows;
        st = sf_sim_block(sim, k, &rows, &counts);
        if (st) break;
        size_t take = rows->n, left = (size_t)n - sf_simfile_nrows(f);
        if (take > left) take = left;
        k++;
        st = sf_simfile_append(f, rows, take, k, &counts);
        cli_progress_update(&p, sf_simfile_nrows(f));
    }
    double dt = cli_now() - t0;
    int complete = !st && f && sf_simfile_nrows(f) >= (size_t)n;
    sf_status st2 = sf_simfile_close(f, complete);
    if (!st) st = st2;
    if (!st && rename(tmp, out) != 0) st = SF_ERROR(SF_EIO, "cannot rename %s to %s", tmp, out);
    int rc = 0;
    if (st) {
        rc = cli_fail("simulate", st);
        if (f) fprintf(stderr, "sedflow simulate: rows written so far are kept in %s; rerun with --resume\n", tmp);
    } else {
        fprintf(stderr,
                "sedflow simulate: wrote %ld rows to %s in %.1f s (%.0f rows/s this run)\n"
                "  candidates drawn %lld; removed: %lld noiseless flux outside the NSA range, %lld sigma' <= 0, "
                "%lld noisy flux <= 0; kept %lld (the last block's surplus beyond --n is not written)\n",
                n, out, dt, dt > 0 ? (double)((size_t)n - start_rows) / dt : 0.0, counts.drawn, counts.cut_flux_range,
                counts.cut_sigma, counts.cut_noisy_flux, counts.kept);
    }
    sf_sim_free(sim);
    sf_noise_free(nm);
    sf_model_free(m);
    return rc;
}
