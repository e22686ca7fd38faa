/* sedflow logprob: mean log q(theta_true | x) of a flow on a held-out set. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "sedflow/flow.h"

static void help(void)
{
    printf("usage: sedflow logprob --model MODEL.h5 --data TEST.h5 [--threads T]\n\n"
           "Evaluate log q(theta_true | x) (nats, in the units of the sampling-space\n"
           "parameters theta_u, so it compares with sbi's log_prob) for every row of a\n"
           "held-out set and print its mean, standard deviation and standard error.\n"
           "A row whose theta lies outside the prior box of a logit-map model (the\n"
           "default of 'sedflow train') has log q = -inf, and then so has the mean:\n"
           "the count of such rows and the mean over the finite rows follow it.\n\n"
           "  --model PATH   model file written by 'sedflow train'\n"
           "  --data PATH    set with datasets theta_u (n x D) and x (n x C)\n"
           "  --threads T    OpenMP threads (default: all)\n");
}

int cmd_logprob(int argc, char **argv)
{
    const char *cmd = "logprob", *model = NULL, *data = NULL;
    long threads = 0;
    static const struct option opts[] = {{"model", required_argument, 0, 'm'}, {"data", required_argument, 0, 'd'},
                                         {"threads", required_argument, 0, 't'}, {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'd': data = optarg; break;
        case 't': if (cli_parse_threads(cmd, optarg, &threads)) return 2; break;
        case 'h': help(); return 0;
        default: return cli_usage_error(cmd, "unknown option");
        }
    }
    if (!model || !data) return cli_usage_error(cmd, "--model and --data are required");
    sf_flow *f = NULL;
    sf_flow_data *d = NULL;
    sf_status st = sf_flow_load(model, &f);
    if (!st) st = sf_flow_data_load(data, &d);
    if (st) {
        sf_flow_free(f);
        return cli_fail(cmd, st);
    }
    const sf_flow_config *cfg = sf_flow_get_config(f);
    if (d->D != cfg->D || d->C != cfg->C) {
        fprintf(stderr, "sedflow logprob: error: data has D=%d C=%d, model D=%d C=%d\n", d->D, d->C, cfg->D, cfg->C);
        sf_flow_free(f);
        sf_flow_data_free(d);
        return 1;
    }
    double *lq = malloc(sizeof(double) * d->n);
    if (!lq) st = SF_ERROR(SF_ENOMEM, "out of memory");
    if (!st) st = sf_flow_logq(f, d->n, d->theta, d->x, lq, (int)threads);
    if (!st) {
        /* rows with theta outside the prior box of a logit-map model have
         * log q = -inf, and so has the mean: a model that gives them no
         * density is not as good as one that does (the finite rows' mean is
         * printed after; n counts every row) */
        double s = 0, s2 = 0;
        size_t n_out = 0, n_nan = 0;
        for (size_t i = 0; i < d->n; i++) {
            if (isfinite(lq[i])) s += lq[i];
            else if (lq[i] == -INFINITY) n_out++;
            else n_nan++;
        }
        const size_t n = d->n - n_out - n_nan;
        const double mean = n ? s / n : NAN;
        for (size_t i = 0; i < d->n; i++)
            if (isfinite(lq[i])) s2 += (lq[i] - mean) * (lq[i] - mean);
        const double sd = n > 1 ? sqrt(s2 / (n - 1)) : NAN, se = n ? sd / sqrt((double)n) : NAN;
        if (n_out + n_nan == 0) {
            printf("mean log q = %.6f\nstd log q = %.6f\nstderr mean = %.6f\nn = %zu\n", mean, sd, se, n);
        } else {
            printf("mean log q = %s\nstd log q = nan\nstderr mean = nan\nn = %zu\n", n_nan ? "nan" : "-inf", d->n);
            if (n_out) printf("rows with log q = -inf = %zu\n", n_out);
            if (n_nan) printf("rows with log q = +inf or NaN = %zu\n", n_nan);
            printf("finite rows: mean log q = %.6f, std %.6f, stderr %.6f, n = %zu\n", mean, sd, se, n);
            fprintf(stderr, "sedflow logprob: warning: %zu of %zu rows have no finite log q%s\n", n_out + n_nan, d->n,
                    n_out ? " (-inf: theta outside the prior box of a logit-map model, or an overflow)" : "");
        }
    }
    free(lq);
    sf_flow_free(f);
    sf_flow_data_free(d);
    return st ? cli_fail(cmd, st) : 0;
}
