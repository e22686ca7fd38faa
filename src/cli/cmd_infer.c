/*
 * sedflow infer — posteriors of galaxy properties for a catalog (the main
 * job; SEDflow section 5 and Appendix A): read the catalog, check every
 * galaxy, sample the flow, write the posterior catalog (docs/INFER.md); with
 * --mcmc-fallback, then MCMC for the galaxies outside the training support.
 */
#include <getopt.h>
#include <glob.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <omp.h>

#include "cli/cli.h"
#include "sedflow/infer.h"

static const char *CMD = "infer";

static void help(const cli_mcmc *ma)
{
    printf("usage: sedflow infer [--model M.h5] [--catalog FILE [FILE...]] --out OUT.h5 [options]\n"
           "       sedflow infer --model M.h5 --add-support TRAIN.h5 [--quantile Q]\n\n"
           "Posterior samples of the 12 PROVABGS parameters and derived properties for every galaxy\n"
           "of a photometric catalog, from a trained flow q(theta | x) (SEDflow, Hahn & Melchior 2022).\n"
           "Per galaxy: x = (ugriz AB magnitudes 22.5 - 2.5 log10(f/nmgy), their uncertainties\n"
           "(2.5/ln10)/(f sqrt(ivar)) [mag], z), built as for training; checks before sampling, each\n"
           "a flag with a reason: reader problems (non-finite, missing, flux <= 0, ivar <= 0), z\n"
           "outside the trained range, sigma > mu_sigma(m) + 3 sigma_sigma(m) in a band (noise model),\n"
           "a colour (u-g, g-r, r-i, i-z) bluer than the training set's 0.1th percentile (from the\n"
           "model's /support group); after sampling: acceptance of in-prior draws below\n"
           "--min-acceptance (leakage). Galaxies with no flag have sedflow = True. Flagged galaxies\n"
           "are still sampled when x is defined and 0 < z <= 0.6 (unless --skip-flagged); the others\n"
           "get NaN samples. Output layout: docs/INFER.md.\n\n"
           "options:\n"
           "  --model FILE       flow model file (default $SEDFLOW_MODEL, else models/sedflow_default.h5\n"
           "                     of the source tree; models/sedflow_fast.h5: ~1.7x faster, 0.35 nats\n"
           "                     less log q per galaxy, models/TRAINING.md)\n"
           "  --catalog FILE...  catalog files, all of one format (several after one --catalog, or the\n"
           "                     option repeated); default: every *.fits in <data>/nsa (the NSA sample)\n"
           "  --format F         nsa | mgs | csv | hdf5 | auto (default auto: detected from the file)\n"
           "  --columns SPEC     CSV/HDF5 column names, e.g. 'id=NSAID,z=ZSPEC,flux_r=F_R,ivar_r=IV_R'\n"
           "                     (keys id, z, flux_X [nmgy], ivar_X [nmgy^-2], mag_X [AB], sigma_X [mag])\n"
           "  --out FILE         output HDF5 catalog; written as FILE.tmp and renamed when complete\n"
           "  --nsamples N       posterior samples per galaxy (default 10000)\n"
           "  --seed S           random seed (default 1); galaxy i (input row after duplicate removal)\n"
           "                     draws from its own stream of S, so results do not depend on --threads,\n"
           "                     --block or --resume\n"
           "  --threads T        OpenMP threads over galaxies (default: all cores)\n"
           "  --resume           continue an interrupted run from OUT.tmp (same catalog and options);\n"
           "                     without it an existing OUT.tmp is refused, never overwritten\n"
           "  --skip-flagged     do not sample galaxies flagged before sampling (NaN samples instead)\n"
           "  --min-acceptance A leakage flag when the fraction of flow draws inside the prior box is\n"
           "                     below A (default 0.5; 0 disables); a logit-map flow never leaves\n"
           "                     the box: there, the fraction of draws inside the trained range\n"
           "                     (at least 1e-6 of the box width from every face)\n"
           "  --max-proposals P  flow draws per galaxy at most (default 10 x --nsamples); a galaxy that\n"
           "                     spends it (acceptance < 0.1, already a leakage flag) gets fewer samples\n"
           "                     (flagged, the rest NaN); raise it to fill such galaxies at up to P/N\n"
           "                     times the cost\n");
    printf("  --noise FILE       noise model for the sigma check (default $SEDFLOW_NOISE, else\n"
           "                     models/noise_nsa.h5)\n"
           "  --data DIR         prepared model data, for the SFH/ZH bases of the derived properties\n"
           "                     (default $SEDFLOW_DATA or the build's data/)\n"
           "  --fits FILE        also write a FITS table of the per-galaxy summaries (CFITSIO)\n"
           "  --block B          galaxies per block: the progress/checkpoint unit (default 64)\n"
           "  --compression L    deflate level 0-9 of the sample datasets (default 1: sign/exponent\n"
           "                     bytes run-length coded, low mantissa bytes stored: the fastest, and for\n"
           "                     noisy samples smaller than zlib level 9; 2-9: zlib at that level; 0 = none)\n"
           "  --stop-after N     process at most N galaxies in this run, then stop and keep OUT.tmp for\n"
           "                     --resume (time slicing)\n"
           "  --add-support SIM  compute the 0.1th percentiles of u-g, g-r, r-i, i-z and the z range of a\n"
           "                     simulation file (sedflow simulate) and store them as /support in --model,\n"
           "                     then exit\n"
           "  --quantile Q       colour quantile for --add-support (default 0.001)\n"
           "  -h, --help         this help\n\n");
    printf("MCMC fallback (SEDflow sec. 5: galaxies outside the training support are fitted by MCMC):\n"
           "  --mcmc-fallback    after the flow pass, run MCMC on the flux likelihood (paper eq. 1, the\n"
           "                     same prior box; as 'sedflow mcmc') for every galaxy flagged as outside\n"
           "                     the training support (z outside the trained range, sigma outlier, colour,\n"
           "                     leakage, too few flow samples) or with a flux <= 0, whose 5 fluxes and\n"
           "                     ivars are finite with ivar > 0 and 0 < z <= 0.6. Their samples\n"
           "                     (--nsamples draws, evenly thinned from the kept chain) replace the\n"
           "                     flow's; sedflow = False, mcmc = True, flag bits 14 (MCMC) and 15 (not\n"
           "                     converged), diagnostics in mcmc_* datasets. COST: ~10-30 CPU-minutes per\n"
           "                     such galaxy at the default (paper) settings: 30 walkers x 10,000\n"
           "                     iterations, ~6 model evaluations per walker-iteration at ~0.4-1 ms\n"
           "  --mcmc-pool G      galaxies sampled together, their model evaluations pooled into one\n"
           "                     batch (default 16); also the checkpoint unit for --resume. The chains\n"
           "                     depend on G (rounding of batched model calls), not on --threads\n");
    cli_mcmc_help(ma);
    printf("\n"
           "Output quantities (samples/<q>, n_galaxies x n_samples float32; summary/<q>: p16, p50, p84):\n"
           "  logmstar [log10 Msun formed] (= log_mstar), beta1..beta4, fburst, tburst [Gyr], gamma1,\n"
           "  gamma2, tau_bc, tau_ism, n_dust, log_sfr_1gyr [log10 Msun/yr], log_z_mw [log10 Z],\n"
           "  tage_mw [Gyr].\n");
}

static void default_model(char *buf, size_t len)
{
    const char *e = getenv("SEDFLOW_MODEL");
    if (e && *e) snprintf(buf, len, "%s", e);
    else snprintf(buf, len, "%s/sedflow_default.h5", SEDFLOW_MODELS_DIR);
}

static int file_exists(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0;
}

static int add_support(const char *model, const char *sim, double q)
{
    sf_infer_support s;
    sf_status st = sf_infer_support_from_sim(sim, q, &s);
    if (!st) st = sf_infer_support_write(model, &s);
    if (st) return cli_fail(CMD, st);
    printf("sedflow infer: wrote /support to %s: z in [%g, %g]; %g quantiles of u-g, g-r, r-i, i-z = %.4f, %.4f, "
           "%.4f, %.4f mag (%lld rows of %s)\n",
           model, s.z_min, s.z_max, q, s.colour_min[0], s.colour_min[1], s.colour_min[2], s.colour_min[3], s.n_rows,
           sim);
    return 0;
}

static void print_report(const char *out, const sf_catalog *cat, size_t nfiles, const sf_infer_report *r,
                         size_t n_run, double seconds, int nthreads, const char *fits)
{
    printf("sedflow infer: %zu galaxies (%zu rows read from %zu %s file%s, %zu duplicate ids removed)\n", r->n_galaxies,
           cat->n_read, nfiles, sf_catalog_format_name(cat->format), nfiles == 1 ? "" : "s", cat->n_duplicates);
    printf("  processed %zu, sampled %zu (%zu samples each), trusted (sedflow = True) %zu, flagged %zu\n", r->n_done,
           r->n_sampled, r->n_samples, r->n_trusted, r->n_done - r->n_trusted);
    if (r->n_done > r->n_trusted) {
        printf("  flagged by reason (a galaxy can have several):\n");
        for (int k = 0; k < 32; k++)
            if (r->n_flag[k]) printf("    %6zu  %s\n", r->n_flag[k], sf_infer_flag_name(1u << k));
    }
    if (n_run > 0)
        printf("  time: %.1f s for %zu galaxies in this run: %.2f ms per galaxy, %.1f galaxies/s (%d threads)\n",
               seconds, n_run, 1e3 * seconds / (double)n_run, (double)n_run / seconds, nthreads);
    if (isfinite(r->mean_acceptance)) printf("  mean acceptance (leakage measure): %.3f\n", r->mean_acceptance);
    if (r->n_show) {
        printf("  log M* [log10 Msun], median and 16-84%% range, of the first %s galaxies:\n",
               r->show_flagged ? "sampled (none is trusted: flagged)" : "trusted");
        for (size_t i = 0; i < r->n_show; i++)
            printf("    id %-10lld  %6.3f  +%.3f / -%.3f\n", r->show_id[i], r->show_logmstar[i][1],
                   r->show_logmstar[i][2] - r->show_logmstar[i][1], r->show_logmstar[i][1] - r->show_logmstar[i][0]);
    }
    printf("  wrote %s%s%s\n", out, fits ? " and " : "", fits ? fits : "");
}

/* What the MCMC fallback did in this run. */
typedef struct {
    int listed;               /* the list of fallback galaxies was made */
    size_t n, done;           /* listed, finished (all runs) */
    size_t n_run, n_conv, n_fail; /* in this run: galaxies, converged chains, failures */
    unsigned long long n_eval;
    double evals_per_step_sum, wall, cpu; /* [s] */
} mcmc_stats;

/* The MCMC fallback after a finished flow pass: groups of the pool size in
 * list order, each written (and flushed) before the next starts. */
static sf_status run_fallback(const sf_infer *p, const char *data, const sf_infer_mcmc_options *mo, const sf_catalog *cat,
                              sf_infer_file *f, size_t stop_after, size_t *n_run, mcmc_stats *ms)
{
    size_t *rows = NULL, n = 0, done = 0;
    uint32_t *flags = NULL;
    char *reasons = NULL;
    sf_infer_mcmc *fb = NULL;
    sf_infer_block *blk = NULL;
    sf_infer_mcmc_diag *diag = NULL;
    sf_status st = sf_infer_file_mcmc_list(f, cat, &rows, &flags, &reasons, &n, &done);
    ms->listed = !st;
    ms->n = n, ms->done = done;
    if (!st && done < n) {
        st = sf_infer_mcmc_alloc(p, data, mo, &fb);
        if (!st) st = sf_infer_block_alloc(p, mo->pool, &blk);
        diag = calloc(mo->pool, sizeof *diag);
        if (!st && !diag) st = SF_ERROR(SF_ENOMEM, "out of memory");
    }
    if (!st && done < n) {
        const sf_mcmc_opts *so = &mo->sampler.mcmc;
        fprintf(stderr, "sedflow infer: MCMC fallback for %zu galaxies (%zu done before): %zu walkers x %zu iterations "
                "(%zu burn-in), %s, groups of %zu\n", n, done, so->nwalkers, so->nburn + so->niter, so->nburn,
                cli_mcmc_move_name(so->move), mo->pool);
        cli_progress pr;
        cli_progress_start(&pr, "mcmc", n);
        cli_progress_update(&pr, done);
        double t0 = cli_now();
        clock_t c0 = clock();
        while (!st && done < n && (stop_after == 0 || *n_run < stop_after)) {
            size_t ng = n - done < mo->pool ? n - done : mo->pool;
            st = sf_infer_mcmc_run(fb, cat, rows + done, ng, flags + done, reasons + done * SF_INFER_REASON_LEN, blk, diag);
            if (!st) st = sf_infer_file_write_mcmc(f, rows + done, ng, blk, diag, done + ng);
            if (st) break;
            for (size_t k = 0; k < ng; k++) {
                if (diag[k].status) {
                    ms->n_fail++;
                    continue;
                }
                ms->n_conv += diag[k].converged != 0;
                ms->n_eval += (unsigned long long)diag[k].n_eval;
                ms->evals_per_step_sum += diag[k].evals_per_step;
            }
            done += ng;
            *n_run += ng;
            ms->n_run += ng;
            cli_progress_update(&pr, done);
        }
        ms->wall = cli_now() - t0;
        ms->cpu = (double)(clock() - c0) / CLOCKS_PER_SEC;
        sf_status s2 = sf_infer_file_add_mcmc_seconds(f, ms->wall);
        if (!st) st = s2;
    }
    ms->done = done;
    free(diag);
    sf_infer_block_free(blk);
    sf_infer_mcmc_free(fb);
    free(rows);
    free(flags);
    free(reasons);
    return st;
}

int cmd_infer(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},      {"catalog", required_argument, 0, 'c'},
        {"out", required_argument, 0, 'o'},        {"nsamples", required_argument, 0, 'n'},
        {"seed", required_argument, 0, 's'},       {"threads", required_argument, 0, 'T'},
        {"resume", no_argument, 0, 'r'},           {"format", required_argument, 0, 'f'},
        {"columns", required_argument, 0, 'C'},    {"noise", required_argument, 0, 'N'},
        {"skip-flagged", no_argument, 0, 'k'},     {"fits", required_argument, 0, 'F'},
        {"min-acceptance", required_argument, 0, 'a'}, {"max-proposals", required_argument, 0, 'p'},
        {"data", required_argument, 0, 'd'},       {"block", required_argument, 0, 'B'},
        {"compression", required_argument, 0, 'z'}, {"stop-after", required_argument, 0, 'S'},
        {"add-support", required_argument, 0, 'A'}, {"quantile", required_argument, 0, 'q'},
        {"mcmc-fallback", no_argument, 0, 'M'},    {"mcmc-pool", required_argument, 0, 'P'},
        CLI_MCMC_OPTIONS("mcmc-", "iter"),
        {"help", no_argument, 0, 'h'},             {0, 0, 0, 0}};
    sf_infer_options io;
    sf_infer_options_default(&io);
    sf_catalog_options copt;
    sf_catalog_options_default(&copt);
    sf_catalog_format fmt = SF_CATALOG_AUTO;
    char model[4096], noise[4096];
    default_model(model, sizeof model);
    cli_noise_path(noise, sizeof noise);
    const char *out = NULL, *fits = NULL, *data = cli_data_dir(), *support_sim = NULL;
    long block = 64, level = 1, stop_after = 0, v;
    double dv, quantile = 0.001;
    int resume = 0, fallback = 0, mcmc_opts = 0;
    long pool = 16;
    cli_mcmc ma;
    cli_mcmc_init(&ma, "mcmc-", "iter", 0);
    const char **files = calloc((size_t)argc + 1, sizeof *files);
    if (!files) return cli_fail(CMD, SF_ERROR(SF_ENOMEM, "arguments"));
    size_t nfiles = 0;
    int c, rc = 0;
    optind = 1;
    while (!rc && (c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (cli_mcmc_is_option(c)) {
            rc = cli_mcmc_parse(&ma, CMD, c, optarg);
            mcmc_opts = 1;
            continue;
        }
        switch (c) {
        case 'm': snprintf(model, sizeof model, "%s", optarg); break;
        case 'c': files[nfiles++] = optarg; break;
        case 'o': out = optarg; break;
        case 'n':
            if (cli_parse_long(CMD, "--nsamples", optarg, &v)) rc = 2;
            else if (v < 1) rc = cli_usage_error(CMD, "--nsamples must be >= 1");
            else io.n_samples = (size_t)v;
            break;
        case 's':
            if (cli_parse_seed(CMD, optarg, &v)) rc = 2;
            else io.seed = (uint64_t)v;
            break;
        case 'T':
            if (cli_parse_threads(CMD, optarg, &v)) rc = 2;
            else io.nthreads = (int)v;
            break;
        case 'r': resume = 1; break;
        case 'f':
            if (sf_catalog_format_parse(optarg, &fmt)) rc = cli_usage_error(CMD, "%s", sf_last_error());
            break;
        case 'C':
            if (sf_catalog_options_parse(&copt, optarg)) rc = cli_usage_error(CMD, "%s", sf_last_error());
            break;
        case 'N': snprintf(noise, sizeof noise, "%s", optarg); break;
        case 'k': io.skip_flagged = 1; break;
        case 'F': fits = optarg; break;
        case 'a':
            if (cli_parse_double(CMD, "--min-acceptance", optarg, &dv)) rc = 2;
            else if (!(dv >= 0 && dv <= 1)) rc = cli_usage_error(CMD, "--min-acceptance must be in [0, 1]");
            else io.min_acceptance = dv;
            break;
        case 'p':
            if (cli_parse_long(CMD, "--max-proposals", optarg, &v)) rc = 2;
            else if (v < 1) rc = cli_usage_error(CMD, "--max-proposals must be >= 1");
            else io.max_proposals = (size_t)v;
            break;
        case 'd': data = optarg; break;
        case 'B':
            if (cli_parse_long(CMD, "--block", optarg, &block)) rc = 2;
            else if (block < 1) rc = cli_usage_error(CMD, "--block must be >= 1");
            break;
        case 'z':
            if (cli_parse_long(CMD, "--compression", optarg, &level)) rc = 2;
            else if (level < 0 || level > 9) rc = cli_usage_error(CMD, "--compression must be 0..9");
            break;
        case 'S':
            if (cli_parse_long(CMD, "--stop-after", optarg, &stop_after)) rc = 2;
            else if (stop_after < 1) rc = cli_usage_error(CMD, "--stop-after must be >= 1");
            break;
        case 'A': support_sim = optarg; break;
        case 'q':
            if (cli_parse_double(CMD, "--quantile", optarg, &quantile)) rc = 2;
            else if (!(quantile > 0 && quantile < 1)) rc = cli_usage_error(CMD, "--quantile must be in (0, 1)");
            break;
        case 'M': fallback = 1; break;
        case 'P':
            mcmc_opts = 1;
            if (cli_parse_long(CMD, "--mcmc-pool", optarg, &pool)) rc = 2;
            else if (pool < 1) rc = cli_usage_error(CMD, "--mcmc-pool must be >= 1");
            break;
        case 'h': help(&ma); free(files); return 0;
        default: rc = cli_usage_error(CMD, "unknown option");
        }
    }
    if (rc) {
        free(files);
        return rc;
    }
    for (int k = optind; k < argc; k++) files[nfiles++] = argv[k]; /* --catalog a b c */
    if (support_sim) {
        free(files);
        return add_support(model, support_sim, quantile);
    }
    if (!out) {
        free(files);
        return cli_usage_error(CMD, "--out FILE.h5 is required");
    }
    if (io.max_proposals && io.max_proposals < io.n_samples) {
        free(files);
        return cli_usage_error(CMD, "--max-proposals must be >= --nsamples");
    }
    sf_infer_mcmc_options mo;
    sf_infer_mcmc_options_default(&mo);
    if (mcmc_opts && !fallback) {
        free(files);
        return cli_usage_error(CMD, "the --mcmc-* options need --mcmc-fallback");
    }
    if (fallback && cli_mcmc_finish(&ma, CMD, 1, &mo.sampler)) {
        free(files);
        return 2;
    }
    mo.pool = (size_t)pool;
    if (!file_exists(model)) {
        free(files);
        const char *env = getenv("SEDFLOW_MODEL");
        const int from_env = env && *env && !strcmp(env, model);
        return cli_fail(CMD, SF_ERROR(SF_EIO, "model file '%s'%s not found (relative paths are from the current "
                                              "directory; shipped: models/sedflow_default.h5, models/sedflow_fast.h5 "
                                              "of the source tree; or train one with 'sedflow train')",
                                      model, from_env ? " (from $SEDFLOW_MODEL)" : ""));
    }
    glob_t gl;
    memset(&gl, 0, sizeof gl);
    if (nfiles == 0) {
        char pat[4200];
        snprintf(pat, sizeof pat, "%s/nsa/*.fits", data);
        if (glob(pat, 0, NULL, &gl) != 0 || gl.gl_pathc == 0) {
            globfree(&gl);
            free(files);
            return cli_usage_error(CMD, "no --catalog given and no %s", pat);
        }
        for (size_t k = 0; k < gl.gl_pathc; k++) files[nfiles++] = gl.gl_pathv[k];
    }
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", out);
    /* each output against what this run reads (catalogs, model, noise
     * table) and the other two outputs (NULL entries are skipped) */
    const char **rw = malloc((nfiles + 4) * sizeof *rw);
    int bad = 0;
    if (rw) {
        memcpy(rw, files, nfiles * sizeof *rw);
        rw[nfiles] = model;
        rw[nfiles + 1] = noise;
        const char *outs[3] = {out, tmp, fits}, *optname[3] = {"--out", "--out", "--fits"};
        for (int k = 0; k < 3 && !bad; k++) {
            rw[nfiles + 2] = outs[(k + 1) % 3];
            rw[nfiles + 3] = outs[(k + 2) % 3];
            bad = outs[k] && cli_check_output_path(CMD, optname[k], outs[k], rw, nfiles + 4);
        }
    }
    const int oom = !rw;
    free(rw);
    if (bad || oom) {
        globfree(&gl);
        free(files);
        return oom ? cli_fail(CMD, SF_ERROR(SF_ENOMEM, "out of memory")) : 2;
    }
    if (!resume && file_exists(tmp)) {
        globfree(&gl);
        free(files);
        return cli_usage_error(CMD, "%s exists: the partial output of an interrupted run (continue it with --resume) "
                                    "or of a run still writing to the same --out; remove it to start over", tmp);
    }
    char catlist[8192];
    size_t pos = 0;
    catlist[0] = '\0';
    for (size_t k = 0; k < nfiles && pos < sizeof catlist; k++)
        pos += (size_t)snprintf(catlist + pos, sizeof catlist - pos, "%s%s", k ? "," : "", files[k]);

    sf_catalog *cat = NULL;
    sf_infer *p = NULL;
    sf_infer_input *in = NULL;
    sf_infer_block *blk = NULL;
    sf_infer_file *f = NULL;
    size_t next = 0, n_run = 0;
    double seconds = 0;
    int nthreads = io.nthreads > 0 ? io.nthreads : omp_get_max_threads();
    sf_status st = sf_catalog_read(files, nfiles, fmt, &copt, &cat);
    if (!st && cat->n == 0) st = SF_ERROR(SF_EINVAL, "the catalog has no rows");
    if (!st) st = sf_infer_alloc(model, data, noise, &io, &p);
    if (!st) st = sf_infer_prepare(p, cat, &in);
    if (!st) st = sf_infer_block_alloc(p, (size_t)block, &blk);
    if (!st) {
        fprintf(stderr, "sedflow infer: %zu galaxies from %zu %s file%s; model %s; support: %s\n", cat->n, nfiles,
                sf_catalog_format_name(cat->format), nfiles == 1 ? "" : "s", model, sf_infer_get_support(p)->source);
        if (resume && file_exists(tmp)) {
            st = sf_infer_file_resume(tmp, p, cat, fallback ? &mo : NULL, &next, &f);
            if (!st) fprintf(stderr, "sedflow infer: resuming %s at galaxy %zu of %zu\n", tmp, next, cat->n);
        } else {
            if (resume) fprintf(stderr, "sedflow infer: --resume: no %s, starting a new run\n", tmp);
            sf_infer_file_info info = {model, catlist, noise, data, sf_catalog_format_name(cat->format), (size_t)block,
                                       (int)level, fallback ? &mo : NULL};
            st = sf_infer_file_create(tmp, p, cat, in, &info, &f);
        }
    }
    if (!st) {
        cli_progress pr;
        cli_progress_start(&pr, "infer", cat->n);
        cli_progress_update(&pr, next);
        double t0 = cli_now();
        while (!st && next < cat->n && (stop_after == 0 || n_run < (size_t)stop_after)) {
            size_t nb = cat->n - next;
            if (nb > (size_t)block) nb = (size_t)block;
            if (stop_after && nb > (size_t)stop_after - n_run) nb = (size_t)stop_after - n_run;
            st = sf_infer_run_block(p, in, next, nb, blk);
            if (!st) st = sf_infer_file_write(f, next, blk);
            if (!st) {
                next += nb;
                n_run += nb;
                cli_progress_update(&pr, next);
            }
        }
        seconds = cli_now() - t0;
    }
    mcmc_stats ms;
    memset(&ms, 0, sizeof ms);
    if (!st && fallback && next == cat->n && (stop_after == 0 || n_run < (size_t)stop_after))
        st = run_fallback(p, data, &mo, cat, f, (size_t)stop_after, &n_run, &ms);
    int complete = !st && f && next == cat->n && (!fallback || (ms.listed && ms.done == ms.n));
    if (f) {
        sf_status s2 = sf_infer_file_close(f, complete, seconds);
        if (!st) st = s2;
    }
    if (!st && complete && rename(tmp, out) != 0) st = SF_ERROR(SF_EIO, "cannot rename %s to %s", tmp, out);
    if (!st && complete && fits) st = sf_infer_write_fits(out, fits);
    if (st) {
        rc = cli_fail(CMD, st);
        if (f && file_exists(tmp))
            fprintf(stderr, "sedflow infer: galaxies done so far are kept in %s; rerun with --resume\n", tmp);
        else if (complete)
            fprintf(stderr, "sedflow infer: the catalog %s is complete; only the FITS summary failed\n", out);
    } else {
        sf_infer_report rep;
        st = sf_infer_file_report(complete ? out : tmp, &rep);
        if (st) rc = cli_fail(CMD, st);
        else {
            print_report(complete ? out : tmp, cat, nfiles, &rep, n_run - ms.n_run, seconds, nthreads, complete ? fits : NULL);
            if (fallback) {
                if (rep.mcmc_n >= 0)
                    printf("  MCMC fallback: %lld galaxies listed, %lld done; %zu with MCMC samples, %zu of them "
                           "converged (>= 50 tau, R-hat < 1.05)\n", rep.mcmc_n, rep.mcmc_done, rep.n_mcmc,
                           rep.n_mcmc_converged);
                if (ms.n_run)
                    printf("  MCMC time: %.1f s wall, %.1f CPU-s for %zu galaxies in this run: %.1f CPU-s per galaxy; "
                           "%.3g model evaluations, %.2f per walker-iteration, %.3f CPU-ms per evaluation%s\n",
                           ms.wall, ms.cpu, ms.n_run, ms.cpu / (double)ms.n_run, (double)ms.n_eval,
                           ms.n_run > ms.n_fail ? ms.evals_per_step_sum / (double)(ms.n_run - ms.n_fail) : 0.0,
                           ms.n_eval ? 1e3 * ms.cpu / (double)ms.n_eval : 0.0, ms.n_fail ? "; SOME FAILED (flag 16)" : "");
            }
            if (!complete)
                printf("  stopped after %zu galaxies (--stop-after): %zu of %zu done%s; continue with --resume\n", n_run,
                       next, cat->n, fallback && next == cat->n ? " (MCMC fallback unfinished)" : "");
        }
    }
    sf_infer_block_free(blk);
    sf_infer_input_free(in);
    sf_infer_free(p);
    sf_catalog_free(cat);
    globfree(&gl);
    free(files);
    return rc;
}
