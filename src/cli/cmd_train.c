/* sedflow train: fit a conditional normalizing flow q(theta | x) to a
 * simulated training set (issue 4 part 4). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "sedflow/flow.h"

static void help(void)
{
    printf("usage: sedflow train --data TRAIN.h5 --out MODEL.h5 [options]\n\n"
           "Train a conditional normalizing flow q(theta | x) by maximum likelihood\n"
           "(SEDflow: MAF, 15 MADE blocks of 2 x 500 tanh units, Adam, batch 50), or a\n"
           "conditional rational-quadratic neural spline flow (NSF; docs/FLOW.md).\n\n"
           "  --data PATH        training set: theta_u (n x D), x (n x C), /prior/lower, /prior/upper\n"
           "  --out PATH         model file to write (best validation weights); a checkpoint\n"
           "                     PATH.ckpt is written after every epoch\n"
           "  --flow NAME        flow family: maf (masked autoregressive flow, SEDflow's) or\n"
           "                     nsf (coupling rational-quadratic spline flow; fast sampling)\n"
           "                     (default maf)\n"
           "  --blocks K         number of transforms: MADEs (maf, default 15) or coupling\n"
           "                     layers (nsf, default 8)\n"
           "  --hidden H         hidden units per MADE / conditioner layer (maf default 500,\n"
           "                     nsf default 128)\n"
           "  --bins N           nsf: spline bins per dimension, 1..64 (default 8)\n"
           "  --tail-bound B     nsf: splines act on [-B, B] in z-scored theta units (standard\n"
           "                     deviations of the training set), identity outside (default 3)\n"
           "  --batch B          minibatch rows (maf default 50, as the paper; nsf default 512:\n"
           "                     at batch 50 its validation log q jumps by ~0.5 nats between\n"
           "                     steps, docs/FLOW.md)\n"
           "  --lr RATE          Adam learning rate (default 5e-4)\n"
           "  --patience E       stop after E epochs without validation improvement (default 20)\n"
           "  --val-frac F       validation fraction (default 0.1)\n"
           "  --seed S           seed of weights, permutations, split and shuffles (default 1)\n"
           "  --threads T        OpenMP threads (default: all)\n"
           "  --max-epochs N     stop after N epochs in total (default: no limit)\n"
           "  --max-minutes M    stop after M minutes of wall time in this run (default: no limit)\n"
           "  --resume           continue from PATH.ckpt (same data, seed and architecture)\n"
           "  --quiet            no per-epoch log on stderr\n");
}

int cmd_train(int argc, char **argv)
{
    const char *cmd = "train", *data = NULL, *out = NULL, *flow = "maf";
    long K = -1, H = -1, batch = -1, seed = 1, threads = 0, max_epochs = 0, patience = 20, bins = 8;
    double lr = 5e-4, max_minutes = 0, val_frac = 0.1, tail = 3.0;
    int resume = 0, quiet = 0;
    static const struct option opts[] = {
        {"data", required_argument, 0, 'd'}, {"out", required_argument, 0, 'o'},
        {"flow", required_argument, 0, 'f'}, {"blocks", required_argument, 0, 'K'},
        {"hidden", required_argument, 0, 'H'}, {"batch", required_argument, 0, 'b'},
        {"lr", required_argument, 0, 'l'}, {"patience", required_argument, 0, 'p'},
        {"val-frac", required_argument, 0, 'v'}, {"seed", required_argument, 0, 's'},
        {"threads", required_argument, 0, 't'}, {"max-epochs", required_argument, 0, 'e'},
        {"max-minutes", required_argument, 0, 'm'}, {"resume", no_argument, 0, 'r'},
        {"quiet", no_argument, 0, 'q'}, {"bins", required_argument, 0, 'n'},
        {"tail-bound", required_argument, 0, 'B'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': data = optarg; break;
        case 'o': out = optarg; break;
        case 'f': flow = optarg; break;
        case 'K': if (cli_parse_long(cmd, "--blocks", optarg, &K)) return 2; break;
        case 'H': if (cli_parse_long(cmd, "--hidden", optarg, &H)) return 2; break;
        case 'b': if (cli_parse_long(cmd, "--batch", optarg, &batch)) return 2; break;
        case 'l': if (cli_parse_double(cmd, "--lr", optarg, &lr)) return 2; break;
        case 'p': if (cli_parse_long(cmd, "--patience", optarg, &patience)) return 2; break;
        case 'v': if (cli_parse_double(cmd, "--val-frac", optarg, &val_frac)) return 2; break;
        case 's': if (cli_parse_long(cmd, "--seed", optarg, &seed)) return 2; break;
        case 't': if (cli_parse_long(cmd, "--threads", optarg, &threads)) return 2; break;
        case 'e': if (cli_parse_long(cmd, "--max-epochs", optarg, &max_epochs)) return 2; break;
        case 'm': if (cli_parse_double(cmd, "--max-minutes", optarg, &max_minutes)) return 2; break;
        case 'n': if (cli_parse_long(cmd, "--bins", optarg, &bins)) return 2; break;
        case 'B': if (cli_parse_double(cmd, "--tail-bound", optarg, &tail)) return 2; break;
        case 'r': resume = 1; break;
        case 'q': quiet = 1; break;
        case 'h': help(); return 0;
        default: return cli_usage_error(cmd, "unknown option");
        }
    }
    if (!data || !out) return cli_usage_error(cmd, "--data and --out are required");
    const int nsf = !strcmp(flow, "nsf");
    if (strcmp(flow, "maf") && !nsf) return cli_usage_error(cmd, "--flow '%s' unknown (available: maf, nsf)", flow);
    if (K == -1) K = nsf ? 8 : 15; /* -1: not given */
    if (H == -1) H = nsf ? 128 : 500;
    if (batch == -1) batch = nsf ? 512 : 50;
    if (K < 1 || H < 1 || batch < 2 || patience < 1 || max_epochs < 0 || max_minutes < 0 || threads < 0)
        return cli_usage_error(cmd, "--blocks, --hidden >= 1, --batch >= 2, --patience >= 1, limits >= 0");
    if (bins < 1 || bins > 64 || !(tail > 0))
        return cli_usage_error(cmd, "--bins must be in 1..64 and --tail-bound > 0");
    char ckpt[4096];
    snprintf(ckpt, sizeof ckpt, "%s.ckpt", out);
    double t_start = cli_now();
    sf_flow_data *d = NULL;
    sf_flow *f = NULL;
    sf_flow_trainer *t = NULL;
    sf_status st = sf_flow_data_load(data, &d);
    if (st) return cli_fail(cmd, st);
    sf_flow_config cfg = {nsf ? SF_FLOW_NSF : SF_FLOW_MAF, d->D, d->C, (int)K, (int)H, (uint64_t)seed};
    sf_flow_nsf_config nc = {(int)bins, tail};
    sf_flow_train_config tc;
    sf_flow_train_config_default(&tc);
    tc.batch = (size_t)batch, tc.lr = lr, tc.patience = (int)patience, tc.val_frac = val_frac;
    tc.seed = (uint64_t)seed, tc.nthreads = (int)threads;
    if ((st = nsf ? sf_flow_alloc_nsf(&cfg, &nc, &f) : sf_flow_alloc(&cfg, &f)) ||
        (st = sf_flow_trainer_alloc(f, d, &tc, &t)))
        goto fail;
    if (!quiet && nsf)
        fprintf(stderr, "sedflow train: %zu rows (D=%d, C=%d), NSF K=%ld H=%ld bins=%ld tail bound %g: %zu parameters\n",
                d->n, d->D, d->C, K, H, bins, tail, sf_flow_n_params(f));
    else if (!quiet)
        fprintf(stderr, "sedflow train: %zu rows (D=%d, C=%d), MAF K=%ld H=%ld: %zu parameters\n", d->n, d->D, d->C, K, H,
                sf_flow_n_params(f));
    if (resume) {
        if (access(ckpt, R_OK) != 0) {
            fprintf(stderr, "sedflow train: error: --resume but no checkpoint '%s'\n", ckpt);
            goto fail_quiet;
        }
        if ((st = sf_flow_trainer_resume(t, ckpt))) goto fail;
        if (!quiet) fprintf(stderr, "sedflow train: resumed after epoch %ld\n", sf_flow_trainer_epochs(t));
    }
    const char *reason = "patience";
    for (;;) {
        if (max_epochs && sf_flow_trainer_epochs(t) >= max_epochs) {
            reason = "max_epochs";
            break;
        }
        int more = 1, stop = 0, late = 0;
        while (more && !late) {
            if ((st = sf_flow_trainer_step(t, &more))) goto fail;
            late = max_minutes > 0 && cli_now() - t_start > 60 * max_minutes;
        }
        sf_flow_epoch_stats es;
        if ((st = sf_flow_trainer_epoch_end(t, &es, &stop))) goto fail;
        if (!quiet)
            fprintf(stderr, "epoch %4ld  train log q %9.4f  val log q %9.4f  %7.1f s  %7.0f samples/s%s%s\n", es.epoch,
                    es.train_logq, es.val_logq, es.seconds, es.samples_per_s, es.improved ? "  *" : "",
                    es.partial ? "  (partial)" : "");
        if ((st = sf_flow_trainer_checkpoint(t, ckpt))) goto fail;
        if (stop) break;
        if (late) {
            reason = "max_minutes";
            break;
        }
    }
    sf_flow_trainer_set_stop(t, reason);
    sf_flow_trainer_finish(t);
    if ((st = sf_flow_save(f, out))) goto fail;
    if (!quiet) fprintf(stderr, "sedflow train: stopped (%s); wrote %s\n", reason, out);
    sf_flow_trainer_free(t);
    sf_flow_free(f);
    sf_flow_data_free(d);
    return 0;
fail:
    cli_fail(cmd, st);
fail_quiet:
    sf_flow_trainer_free(t);
    sf_flow_free(f);
    sf_flow_data_free(d);
    return 1;
}
