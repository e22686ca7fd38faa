/* sedflow sample: posterior draws theta ~ q(theta | x) for one x. */
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/threads.h"
#include "sedflow/flow.h"
#include "sedflow/infer.h"

static void help(void)
{
    printf("usage: sedflow sample --model MODEL.h5 --x v1,...,vC [--n N] [--seed S] [--max-proposals P]\n"
           "                      [--threads T]\n\n"
           "Draw N samples of theta (sampling-space parameters, the model's units) from\n"
           "q(theta | x); draws outside the model's prior box are rejected and redrawn.\n"
           "A '# warning' line (also on stderr) says when a feature lies more than 10\n"
           "training standard deviations from the training mean.  For a SED model (C = 11:\n"
           "5 magnitudes, 5 sigmas, z) the sigmas must be > 0, and the warning also says\n"
           "when z or a colour lies outside the training support recorded in the model\n"
           "file (its /support group); 'sedflow infer' makes all the per-galaxy checks\n"
           "(docs/INFER.md).\n"
           "Prints one sample per line (D columns, space-separated); '#' header lines name\n"
           "the columns and give their units, comma-separated (shipped SED models:\n"
           "logmstar [log10 Msun], u1..u3, fburst [-], tburst [Gyr], log10_gamma1,\n"
           "log10_gamma2 [dex], tau_bc, tau_ism, n_dust [-]), and a '#' trailer gives the\n"
           "number accepted and the acceptance fraction.  The same seed gives the same\n"
           "samples for any --threads.\n\n"
           "  --model PATH          model file written by 'sedflow train'\n"
           "  --x LIST              the C conditioning features, comma-separated (SEDflow:\n"
           "                        u,g,r,i,z magnitudes, their 5 sigmas [mag], redshift)\n"
           "  --n N                 number of samples (default 10000)\n"
           "  --seed S              random seed (default 1)\n"
           "  --max-proposals P     proposal budget (default 100 N); fewer than N samples\n"
           "                        are printed when it runs out\n"
           "  --threads T           OpenMP threads, 0 to %d (default 0: all cores)\n", SF_MAX_THREADS);
}

/* Append a printf-formatted piece to the string in buf (size len), truncating. */
static void appendf(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void appendf(char *buf, size_t len, const char *fmt, ...)
{
    const size_t k = strlen(buf);
    va_list ap;
    va_start(ap, fmt);
    if (k + 1 < len) vsnprintf(buf + k, len - k, fmt, ap);
    va_end(ap);
}

/* Where x lies outside the training data, in warn (pieces ending ';'): any
 * model, a feature more than 10 training standard deviations from the
 * training mean (a typo or 1e300 saturates the network); a SED model (C =
 * 11), z or a colour outside the /support group.  A /support that cannot be
 * read is said in nosup (it must not switch the checks off silently). */
static void x_warnings(const sf_flow *f, const char *model, const double *x, char *warn, size_t wlen, char *nosup,
                       size_t nlen)
{
    const int C = sf_flow_get_config(f)->C;
    sf_infer_support sup;
    if (C == 11 && sf_infer_support_read(model, &sup)) /* the SED flow's x: 5 mags, 5 sigmas, z */
        snprintf(nosup, nlen, "%s; redshift and colours not checked", sf_last_error());
    else if (C == 11) {
        const double z = x[10];
        if (!(z > sup.z_min && z <= sup.z_max))
            appendf(warn, wlen, " redshift %g outside the trained (%g, %g];", z, sup.z_min, sup.z_max);
        for (int b = 0; b < SF_INFER_NCOLOUR && sup.has_colour; b++)
            if (x[b] - x[b + 1] < sup.colour_min[b])
                appendf(warn, wlen, " colour %c-%c = %.3f bluer than the training set's %.3f;", "ugriz"[b],
                        "ugriz"[b + 1], x[b] - x[b + 1], sup.colour_min[b]);
    }
    double *xm = malloc(sizeof(double) * 2 * (size_t)(C + 1)); /* x means, then standard deviations */
    if (!xm) return;
    sf_flow_get_zscore(f, NULL, NULL, xm, xm + C);
    for (int i = 0; i < C; i++) {
        const double dev = fabs(x[i] - xm[i]) / xm[C + i];
        if (dev > 10)
            appendf(warn, wlen, " x value %d = %g lies %.3g training standard deviations from the training mean %g;",
                    i + 1, x[i], dev, xm[i]);
    }
    free(xm);
}

int cmd_sample(int argc, char **argv)
{
    const char *cmd = "sample", *model = NULL, *xs = NULL;
    long n = 10000, seed = 1, threads = 0, maxprop = 0;
    static const struct option opts[] = {{"model", required_argument, 0, 'm'}, {"x", required_argument, 0, 'x'},
                                         {"n", required_argument, 0, 'n'}, {"seed", required_argument, 0, 's'},
                                         {"max-proposals", required_argument, 0, 'p'},
                                         {"threads", required_argument, 0, 't'}, {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'x': xs = optarg; break;
        case 'n': if (cli_parse_long(cmd, "--n", optarg, &n)) return 2; break;
        case 's': if (cli_parse_seed(cmd, optarg, &seed)) return 2; break;
        case 'p': if (cli_parse_long(cmd, "--max-proposals", optarg, &maxprop)) return 2; break;
        case 't': if (cli_parse_threads(cmd, optarg, &threads)) return 2; break;
        case 'h': help(); return 0;
        default: return cli_usage_error(cmd, "unknown option");
        }
    }
    if (!model || !xs) return cli_usage_error(cmd, "--model and --x are required");
    if (n < 1) return cli_usage_error(cmd, "--n %ld: must be >= 1", n);
    if (maxprop < 0 || (maxprop && maxprop < n))
        return cli_usage_error(cmd, "--max-proposals %ld: must be >= --n (%ld), or 0 for the default 100 n", maxprop, n);
    sf_flow *f = NULL;
    sf_status st = sf_flow_load(model, &f);
    if (st) return cli_fail(cmd, st);
    const sf_flow_config *cfg = sf_flow_get_config(f);
    if ((unsigned long)n > SIZE_MAX / 128 / sizeof(double) / (size_t)cfg->D) { /* n D doubles; 100 n proposals */
        sf_flow_free(f);
        return cli_usage_error(cmd, "--n %ld: too many samples for this machine's address space", n);
    }
    double *x = malloc(sizeof(double) * (cfg->C + 1)), *s = malloc(sizeof(double) * (size_t)n * cfg->D);
    if (!x || !s) {
        free(x), free(s), sf_flow_free(f);
        return cli_fail(cmd, SF_ERROR(SF_ENOMEM, "out of memory"));
    }
    if (cli_parse_doubles(cmd, "--x", xs, x, (size_t)cfg->C)) {
        free(x), free(s), sf_flow_free(f);
        return 2;
    }
    if (cfg->C == 11) /* the SED flow's x: 5 magnitudes, 5 sigmas [mag], z */
        for (int b = 5; b < 10; b++)
            if (!(x[b] > 0)) {
                const double sig = x[b];
                free(x), free(s), sf_flow_free(f);
                return cli_usage_error(cmd, "--x value %d (sigma_%c = %g mag) must be > 0", b + 1, "ugriz"[b - 5], sig);
            }
    char warn[4096] = "", nosup[1200] = "";
    x_warnings(f, model, x, warn, sizeof warn, nosup, sizeof nosup);
    sf_error_clear();
    if (*warn) fprintf(stderr, "sedflow sample: warning: x outside the training support:%s the draws extrapolate\n", warn);
    if (*nosup) fprintf(stderr, "sedflow sample: warning: %s\n", nosup);
    size_t acc = 0;
    double frac = 0;
    st = sf_flow_sample(f, 1, x, (size_t)n, (uint64_t)seed, NULL, NULL, (size_t)maxprop, s, NULL, &acc, &frac, (int)threads);
    if (!st) {
        if (*warn) printf("# warning: x outside the training support:%s the draws extrapolate\n", warn);
        if (*nosup) printf("# warning: %s\n", nosup);
        printf("# %s\n", *sf_flow_theta_names(f) ? sf_flow_theta_names(f) : "theta");
        if (*sf_flow_theta_units(f)) printf("# units: %s\n", sf_flow_theta_units(f));
        for (size_t i = 0; i < acc; i++) {
            for (int d = 0; d < cfg->D; d++) printf(d ? " %.8g" : "%.8g", s[i * cfg->D + d]);
            putchar('\n');
        }
        printf("# accepted %zu of %ld requested, acceptance fraction %.6f\n", acc, n, frac);
        if (acc < (size_t)n)
            fprintf(stderr, "sedflow sample: warning: only %zu of %ld samples: the proposal budget (--max-proposals) "
                            "ran out at acceptance fraction %.3g (q puts most of its mass outside the prior box)\n",
                    acc, n, frac);
    }
    free(x), free(s), sf_flow_free(f);
    return st ? cli_fail(cmd, st) : 0;
}
