/* Shared CLI helpers: see cli/cli.h. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/threads.h"

int cli_fail(const char *cmd, sf_status st)
{
    const char *msg = sf_last_error();
    fprintf(stderr, "sedflow %s: error (%s): %s\n", cmd, sf_status_name(st), *msg ? msg : "(no message)");
    return 1;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "sedflow %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(see 'sedflow %s --help')\n", cmd);
    va_end(ap);
    return 2;
}

int cli_parse_double(const char *cmd, const char *opt, const char *s, double *v)
{
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (errno || end == s || *end != '\0' || !isfinite(x)) {
        cli_usage_error(cmd, "%s expects a finite number, got '%s'", opt, s);
        return 1;
    }
    *v = x;
    return 0;
}

int cli_parse_long(const char *cmd, const char *opt, const char *s, long *v)
{
    char *end;
    errno = 0;
    long x = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0') {
        cli_usage_error(cmd, "%s expects an integer, got '%s'", opt, s);
        return 1;
    }
    *v = x;
    return 0;
}

int cli_parse_seed(const char *cmd, const char *s, long *v)
{
    if (cli_parse_long(cmd, "--seed", s, v)) return 1;
    if (*v < 0) {
        cli_usage_error(cmd, "--seed must be >= 0, got %s", s);
        return 1;
    }
    return 0;
}

int cli_parse_threads(const char *cmd, const char *s, long *v)
{
    if (cli_parse_long(cmd, "--threads", s, v)) return 1;
    if (*v < 0 || *v > SF_MAX_THREADS) {
        cli_usage_error(cmd, "--threads must be 0 (all cores) to %d, got %s", SF_MAX_THREADS, s);
        return 1;
    }
    return 0;
}

int cli_parse_doubles(const char *cmd, const char *opt, const char *s, double *v, size_t n)
{
    const char *p = s;
    for (size_t i = 0; i < n; i++) {
        char *end;
        errno = 0;
        double x = strtod(p, &end);
        /* a number must end at a comma (or the end of the list): "15.6abc" is not one */
        if (errno || end == p || !isfinite(x) || (*end != ',' && *end != '\0')) {
            cli_usage_error(cmd, "%s: value %zu of '%s' is not a finite number", opt, i + 1, s);
            return 1;
        }
        v[i] = x;
        p = end;
        if (i + 1 < n) {
            if (*p != ',') {
                cli_usage_error(cmd, "%s expects %zu comma-separated numbers, got '%s'", opt, n, s);
                return 1;
            }
            p++;
        }
    }
    if (*p != '\0') {
        cli_usage_error(cmd, "%s expects %zu comma-separated numbers, got '%s'", opt, n, s);
        return 1;
    }
    return 0;
}

const char *cli_data_dir(void)
{
    const char *e = getenv("SEDFLOW_DATA");
    return e && *e ? e : SEDFLOW_DEFAULT_DATA;
}

void cli_noise_path(char *buf, size_t len)
{
    const char *env = getenv("SEDFLOW_NOISE");
    if (env && *env) snprintf(buf, len, "%s", env);
    else snprintf(buf, len, "%s/noise_nsa.h5", SEDFLOW_MODELS_DIR); /* the source tree's (not via data/..: it may not exist) */
}

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void cli_progress_start(cli_progress *p, const char *label, size_t total)
{
    p->label = label;
    p->total = total;
    p->t_start = p->t_last = cli_now();
    p->enabled = isatty(STDERR_FILENO) || getenv("SEDFLOW_PROGRESS") != NULL;
}

void cli_progress_update(cli_progress *p, size_t done)
{
    if (!p->enabled) return;
    double t = cli_now();
    if (done < p->total && t - p->t_last < 0.5) return;
    p->t_last = t;
    double frac = p->total ? (double)done / (double)p->total : 1.0;
    double el = t - p->t_start;
    double eta = frac > 0 ? el * (1 - frac) / frac : 0;
    int w = 30, k = (int)(frac * w);
    fprintf(stderr, "\r%s [", p->label);
    for (int i = 0; i < w; i++) fputc(i < k ? '#' : '.', stderr);
    fprintf(stderr, "] %5.1f%% %zu/%zu  %.0fs elapsed, ETA %.0fs ", 100 * frac, done, p->total, el, eta);
    if (done >= p->total) fputc('\n', stderr);
    fflush(stderr);
}

int cli_parse_id_list(const char *s, long long **out, size_t *n)
{
    size_t cap = 1;
    for (const char *p = s; *p; p++) cap += *p == ',';
    long long *v = malloc(sizeof(long long) * cap);
    if (!v) return 1;
    size_t k = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        v[k++] = strtoll(p, &end, 10);
        if (errno || end == p || (*end && *end != ',')) {
            free(v);
            return 1;
        }
        p = *end ? end + 1 : end;
    }
    if (k == 0) {
        free(v);
        return 1;
    }
    *out = v, *n = k;
    return 0;
}

sf_status cli_catalog_rows(const sf_catalog *cat, const long long *sel, size_t n, int by_row, size_t *rows)
{
    for (size_t k = 0; k < n; k++) {
        size_t row = (size_t)-1;
        if (by_row) {
            if (sel[k] >= 0 && (size_t)sel[k] < cat->n) row = (size_t)sel[k];
        } else {
            for (size_t i = 0; i < cat->n; i++)
                if (cat->id[i] == sel[k]) {
                    row = i;
                    break;
                }
        }
        if (row == (size_t)-1)
            return SF_ERROR(SF_EINVAL, "%s %lld not in the catalog (%zu rows)", by_row ? "row" : "id", sel[k], cat->n);
        rows[k] = row;
    }
    return SF_OK;
}

/* ---- shared MCMC sampler options ---------------------------------------- */

void cli_mcmc_init(cli_mcmc *a, const char *prefix, const char *iter_name, int allow_anpe)
{
    memset(a, 0, sizeof *a);
    a->prefix = prefix;
    a->iter_name = iter_name;
    a->allow_anpe = allow_anpe;
    a->walkers = 30;
    a->iters = 10000;
    a->burn = 2000;
    a->thin = 1;
    a->nstart = -1;
    a->start = CLI_MCMC_START_PRIOR;
    a->move = SF_MCMC_SLICE_DIFFERENTIAL;
    a->prior = SF_PRIOR_SEDFLOW;
}

const char *cli_mcmc_move_name(sf_mcmc_move m)
{
    return m == SF_MCMC_STRETCH ? "stretch" : m == SF_MCMC_SLICE_GAUSSIAN ? "slice-gaussian" : "slice-differential";
}

int cli_mcmc_parse(cli_mcmc *a, const char *cmd, int c, const char *arg)
{
    char opt[96];
    const char *nm = c == CLI_MCMC_MOVE ? "move" : c == CLI_MCMC_WALKERS ? "walkers" : c == CLI_MCMC_ITER ? a->iter_name
                   : c == CLI_MCMC_BURN ? "burn" : c == CLI_MCMC_THIN ? "thin" : c == CLI_MCMC_START ? "start"
                   : c == CLI_MCMC_NSTART ? "n-start" : "prior";
    snprintf(opt, sizeof opt, "--%s%s", a->prefix, nm);
    switch (c) {
    case CLI_MCMC_MOVE:
        if (!strcmp(arg, "slice")) a->move = SF_MCMC_SLICE_DIFFERENTIAL;
        else if (!strcmp(arg, "gaussian")) a->move = SF_MCMC_SLICE_GAUSSIAN;
        else if (!strcmp(arg, "stretch")) a->move = SF_MCMC_STRETCH;
        else return cli_usage_error(cmd, "%s must be slice, gaussian or stretch", opt);
        return 0;
    case CLI_MCMC_WALKERS: return cli_parse_long(cmd, opt, arg, &a->walkers) ? 2 : 0;
    case CLI_MCMC_ITER: return cli_parse_long(cmd, opt, arg, &a->iters) ? 2 : 0;
    case CLI_MCMC_BURN: return cli_parse_long(cmd, opt, arg, &a->burn) ? 2 : 0;
    case CLI_MCMC_THIN: return cli_parse_long(cmd, opt, arg, &a->thin) ? 2 : 0;
    case CLI_MCMC_NSTART: return cli_parse_long(cmd, opt, arg, &a->nstart) ? 2 : 0;
    case CLI_MCMC_START:
        if (!strcmp(arg, "prior")) a->start = CLI_MCMC_START_PRIOR;
        else if (!strcmp(arg, "best")) a->start = CLI_MCMC_START_BEST;
        else if (!strcmp(arg, "anpe") && a->allow_anpe) a->start = CLI_MCMC_START_ANPE;
        else return cli_usage_error(cmd, "%s must be prior or best%s", opt, a->allow_anpe ? " or anpe" : "");
        return 0;
    case CLI_MCMC_PRIOR:
        if (sf_prior_parse(arg, &a->prior)) return cli_usage_error(cmd, "%s: %s", opt, sf_last_error());
        return 0;
    default: return cli_usage_error(cmd, "unknown MCMC option");
    }
}

int cli_mcmc_finish(const cli_mcmc *a, const char *cmd, size_t min_kept, sf_sedpost_opts *so)
{
    const char *p = a->prefix;
    if (a->walkers < 2 * SF_NU || a->walkers % 2)
        return cli_usage_error(cmd, "--%swalkers must be even and >= %d", p, 2 * SF_NU);
    if (a->burn < 0 || a->iters <= a->burn || a->thin < 1 || (size_t)((a->iters - a->burn) / a->thin) < min_kept)
        return cli_usage_error(cmd, "need 0 <= --%sburn < --%s%s and --%sthin >= 1 leaving >= %zu kept step%s", p, p,
                               a->iter_name, p, min_kept, min_kept == 1 ? "" : "s");
    if (a->nstart == 0 || a->nstart < -1) return cli_usage_error(cmd, "--%sn-start must be >= 1", p);
    so->mcmc.nwalkers = (size_t)a->walkers;
    so->mcmc.nburn = (size_t)a->burn;
    so->mcmc.niter = (size_t)(a->iters - a->burn);
    so->mcmc.thin = (size_t)a->thin;
    so->mcmc.move = a->move;
    so->prior = a->prior;
    so->n_start = a->start == CLI_MCMC_START_BEST ? (size_t)(a->nstart > 0 ? a->nstart : 100 * a->walkers) : 0;
    return 0;
}

void cli_mcmc_help(const cli_mcmc *a)
{
    char o[64];
    const char *p = a->prefix;
#define OPT(name, arg) (snprintf(o, sizeof o, "--%s%s %s", p, name, arg), o)
    printf("  %-21s slice (ensemble slice sampler, differential move, as zeus; default),\n"
           "  %-21s gaussian (slice, Gaussian move) or stretch (Goodman & Weare)\n", OPT("move", "M"), "");
    printf("  %-21s walkers (even, >= 22; default 30 as the paper)\n", OPT("walkers", "N"));
    printf("  %-21s iterations in all, burn-in included (default 10000 as the paper).\n"
           "  %-21s COST: ~6 model evaluations per walker and iteration for the slice moves\n"
           "  %-21s (1 for stretch) at ~0.4-1 ms each, so the paper's 30 x 10,000 takes\n"
           "  %-21s ~10-30 CPU minutes per galaxy\n", OPT(a->iter_name, "N"), "", "", "");
    printf("  %-21s burn-in iterations, not kept (default 2000)\n", OPT("burn", "N"));
    printf("  %-21s keep every N-th iteration after burn-in (default 1)\n", OPT("thin", "N"));
    printf("  %-21s prior (default: walkers at prior draws, as zeus), best (the walkers at the\n"
           "  %-21s highest-posterior of --%sn-start prior draws)%s\n", OPT("start", "S"), "", p,
           a->allow_anpe ? ", or anpe (flow draws)" : "");
    printf("  %-21s prior draws for --%sstart best (default 100 x walkers)\n", OPT("n-start", "N"), p);
    printf("  %-21s sedflow (default: the uniform box) or dirichlet\n", OPT("prior", "P"));
#undef OPT
}

/* The folder part of path into dir ("." when none). */
static void path_dir(const char *path, char *dir, size_t len)
{
    snprintf(dir, len, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash) snprintf(dir, len, ".");
    else if (slash == dir) dir[1] = '\0';
    else *slash = '\0';
}

/* path with its folder resolved (realpath) and its own name kept; "" when
 * the folder cannot be resolved. */
static void path_resolved(const char *path, char *out, size_t len)
{
    char dir[PATH_MAX], rdir[PATH_MAX];
    path_dir(path, dir, sizeof dir);
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (!realpath(dir, rdir)) *out = '\0';
    else snprintf(out, len, "%s/%s", rdir, base);
}

static int same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    if (stat(a, &sa) == 0 && stat(b, &sb) == 0) return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    char ra[2 * PATH_MAX], rb[2 * PATH_MAX];
    path_resolved(a, ra, sizeof ra);
    path_resolved(b, rb, sizeof rb);
    return *ra && !strcmp(ra, rb);
}

int cli_check_output_path(const char *cmd, const char *opt, const char *path, const char *const *inputs, size_t n)
{
    size_t len = strlen(path);
    struct stat so, si;
    if (len == 0 || path[len - 1] == '/' || (stat(path, &so) == 0 && S_ISDIR(so.st_mode)))
        return cli_usage_error(cmd, "%s '%s' is a folder; give a file name", opt, path);
    char dir[PATH_MAX];
    path_dir(path, dir, sizeof dir);
    if (stat(dir, &si) != 0 || !S_ISDIR(si.st_mode))
        return cli_usage_error(cmd, "%s '%s': folder '%s' does not exist", opt, path, dir);
    if (access(dir, W_OK) != 0) return cli_usage_error(cmd, "%s '%s': folder '%s' is not writable", opt, path, dir);
    for (size_t k = 0; k < n; k++)
        if (inputs[k] && same_file(path, inputs[k]))
            return cli_usage_error(cmd, "%s '%s' is the same file as '%s', which this command reads or writes; "
                                        "refusing to overwrite it", opt, path, inputs[k]);
    return 0;
}
