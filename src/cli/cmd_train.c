/* sedflow train: fit a conditional normalizing flow q(theta | x) to a
 * simulated training set (issue 4 part 4). */
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/threads.h"
#include "io/h5util.h"
#include "sedflow/flow.h"
#include "sedflow/infer.h"

static void help(void)
{
    printf("usage: sedflow train --data TRAIN.h5 --out MODEL.h5 [options]\n"
           "       sedflow train --data TRAIN.h5 --recalibrate-bn IN.h5 --out MODEL.h5 --precise-bn N\n"
           "                     [--seed S] [--val-frac F] [--threads T]\n\n"
           "Train a conditional normalizing flow q(theta | x) by maximum likelihood\n"
           "(SEDflow: MAF, 15 MADE blocks of 2 x 500 tanh units, Adam, batch 50), or a\n"
           "conditional rational-quadratic neural spline flow (NSF; docs/FLOW.md).\n\n"
           "  --data PATH        training set: theta_u (n x D), x (n x C), /prior/lower, /prior/upper\n"
           "  --out PATH         model file to write (best validation weights); a checkpoint\n"
           "                     PATH.ckpt is written after every epoch\n"
           "  --flow NAME        flow family: maf (masked autoregressive flow, SEDflow's) or\n"
           "                     nsf (coupling rational-quadratic spline flow; fast sampling)\n"
           "                     (default maf)\n"
           "  --blocks K         number of transforms, 1..4096: MADEs (maf, default 15) or\n"
           "                     coupling layers (nsf, default 8)\n"
           "  --hidden H         hidden units per MADE / conditioner layer, 1..1000000 (maf\n"
           "                     default 500, nsf default 128)\n"
           "  --bins N           nsf: spline bins per dimension, 1..64 (default 8)\n"
           "  --tail-bound B     nsf: splines act on [-B, B] in z-scored theta units (standard\n"
           "                     deviations of the training set), identity outside (default 3)\n"
           "  --theta-map MAP    logit (each parameter mapped from its prior box to the real line\n"
           "                     before the flow: no draw leaves the box, and a flat marginal\n"
           "                     becomes one the flow can fit; docs/FLOW.md \"Box map\") or\n"
           "                     identity (theta enters the flow as it is, as in SEDflow; draws\n"
           "                     outside the prior box are rejected at sampling) (default logit)\n"
           "  --batch B          minibatch rows, >= 2 (maf default 50, as the paper; nsf default 512:\n"
           "                     at batch 50 its validation log q jumps by ~0.5 nats between\n"
           "                     steps, docs/FLOW.md)\n"
           "  --lr RATE          Adam learning rate (default 5e-4; with --resume: the checkpoint's\n"
           "                     rate unless given)\n"
           "  --lr-decay F       lower the rate on a plateau: after --lr-patience epochs in a row\n"
           "                     without a validation improvement, rate *= F (0 < F < 1), not below\n"
           "                     --lr-min (default 0: off, a constant rate as SEDflow).  Each\n"
           "                     decay gains validation log q that a constant rate does not\n"
           "                     (models/TRAINING.md); e.g. --lr-decay 0.4 --lr-patience 5\n"
           "  --lr-patience E    epochs without improvement before a decay (default 5)\n"
           "  --lr-min RATE      lowest rate of the decays, > 0 (default 1e-5).  The decay settings\n"
           "                     are not in the checkpoint: repeat them with --resume\n"
           "  --patience E       stop after E epochs without validation improvement (default 20)\n"
           "  --val-frac F       validation fraction, in (0, 1) (default 0.1)\n"
           "  --seed S           seed of weights, permutations, split and shuffles (default 1)\n"
           "  --threads T        OpenMP threads, 0 to %d (default 0: all cores); the same seed gives\n"
           "                     the same model for any T\n"
           "  --max-epochs N     stop after N epochs in total (default: no limit)\n"
           "  --max-minutes M    stop after M minutes of wall time in this run (default: no limit);\n"
           "                     Ctrl-C (SIGINT) or SIGTERM stops the same way: the partial epoch\n"
           "                     is validated, the checkpoint and the model written (again, a\n"
           "                     second or more later: abort)\n"
           "  --resume           continue from PATH.ckpt (same data, seed, --val-frac and\n"
           "                     architecture: another is refused)\n",
           SF_MAX_THREADS);
    printf("  --precise-bn N     MAF: after training, before writing PATH, set every batch-norm\n"
           "                     layer's evaluation mean and variance to the exact statistics over\n"
           "                     N rows (\"precise BN\"; layer by layer in network order) instead of\n"
           "                     the training's moving averages (momentum 0.1: the last ~10-20\n"
           "                     minibatches, whose noise makes the validation log q jump by\n"
           "                     ~0.3 nats between epochs).  The N rows are the first N of the\n"
           "                     seeded training split (a random sample; never validation rows;\n"
           "                     N larger than the split: all of it).  Logs the validation mean\n"
           "                     log q before and after on stderr.  Memory ~N x (H + D + C) x 4\n"
           "                     bytes (N = 300000, H = 128: 180 MB).  NSF: no batch norm,\n"
           "                     nothing to do.  docs/FLOW.md \"Precise BN\"\n"
           "  --precise-bn-each-epoch N  MAF: the same at the end of every epoch, before the\n"
           "                     validation log q (same rows: the first N of the training split),\n"
           "                     so the logged validation log q, the best-epoch choice, early\n"
           "                     stopping (--patience) and the written best weights use exact BN\n"
           "                     statistics instead of the moving averages; the written model has\n"
           "                     the statistics of its best epoch over these N rows (a later\n"
           "                     --precise-bn with the same N changes nothing).  Training steps\n"
           "                     are unchanged (batch statistics).  Costs one pass over N rows per\n"
           "                     epoch (K=6 H=128, N = 100000: ~1.6 s) and the --precise-bn memory.\n"
           "                     --resume continues exactly when given the same N (default 0: off)\n"
           "  --recalibrate-bn IN  no training: load the model (or checkpoint) IN, apply\n"
           "                     --precise-bn N (required) with rows of --data's training split\n"
           "                     (--seed default: the model's seed, --val-frac 0.1: the split it\n"
           "                     was trained with; checked against its n_train/n_val) and write\n"
           "                     --out: architecture, weights, z-scoring, names, history and\n"
           "                     training metadata as IN, BN statistics new; IN's /support group\n"
           "                     (sedflow infer --add-support) is copied.  From a checkpoint\n"
           "                     PATH.ckpt this takes its latest weights, not the best ones\n"
           "  --quiet            no per-epoch log on stderr\n");
}

/* Mean of log q over rows rows of (theta, x). */
static sf_status mean_logq(const sf_flow *f, size_t n, const double *theta, const double *x, int threads, double *mean)
{
    double *lq = malloc((n + 1) * sizeof(double));
    if (!lq) return SF_ERROR(SF_ENOMEM, "out of memory");
    sf_status st = sf_flow_logq(f, n, theta, x, lq, threads);
    double s = 0;
    for (size_t i = 0; i < n; i++) s += lq[i];
    *mean = n ? s / (double)n : NAN;
    free(lq);
    return st;
}

/* Precise BN on the first N rows of the training split of d (tc: seed,
 * val_frac), logging the validation mean log q before and after. */
static sf_status precise_bn(sf_flow *f, const sf_flow_data *d, const sf_flow_train_config *tc, size_t N, int quiet)
{
    if (sf_flow_get_config(f)->family != SF_FLOW_MAF) {
        if (!quiet) fprintf(stderr, "sedflow train: --precise-bn: an NSF has no batch norm, nothing to do\n");
        return SF_OK;
    }
    const size_t D = (size_t)d->D, C = (size_t)d->C;
    size_t n_train = 0, *idx = malloc(d->n * sizeof(size_t));
    if (!idx) return SF_ERROR(SF_ENOMEM, "out of memory");
    sf_status st = sf_flow_train_split(d->n, tc, idx, &n_train);
    if (st) {
        free(idx);
        return st;
    }
    if (N > n_train) N = n_train;
    const size_t n_val = d->n - n_train;
    double *th = malloc(N * D * sizeof(double)), *x = malloc((N * C + 1) * sizeof(double));
    double *vth = malloc(n_val * D * sizeof(double)), *vx = malloc((n_val * C + 1) * sizeof(double));
    if (!th || !x || !vth || !vx) {
        st = SF_ERROR(SF_ENOMEM, "out of memory for %zu precise-BN rows", N);
        goto done;
    }
    sf_flow_data_rows(d, idx, N, th, x);
    sf_flow_data_rows(d, idx + n_train, n_val, vth, vx);
    double before = NAN, after = NAN;
    if ((st = mean_logq(f, n_val, vth, C ? vx : NULL, tc->nthreads, &before))) goto done;
    double t0 = cli_now();
    if ((st = sf_flow_bn_recompute(f, N, th, C ? x : NULL, tc->nthreads))) goto done;
    double dt = cli_now() - t0;
    if ((st = mean_logq(f, n_val, vth, C ? vx : NULL, tc->nthreads, &after))) goto done;
    if (!quiet)
        fprintf(stderr,
                "sedflow train: precise BN on %zu training rows (%.1f s): validation mean log q %.4f -> %.4f "
                "(%zu rows)\n",
                N, dt, before, after, n_val);
done:
    free(idx);
    free(th);
    free(x);
    free(vth);
    free(vx);
    return st;
}

/* --recalibrate-bn: load IN, precise BN on the training split, write OUT
 * (with IN's /support group when it has one). */
static int recalibrate(const char *in, const char *data, const char *out, long N, long seed, double val_frac,
                       int threads, int quiet)
{
    const char *cmd = "train";
    sf_flow *f = NULL;
    sf_flow_data *d = NULL;
    int has_support = 0;
    sf_infer_support sup;
    sf_status st = sf_flow_load(in, &f);
    if (st) return cli_fail(cmd, st);
    long long m_train = 0, m_val = 0; /* the split IN was trained with, when recorded */
    {
        hid_t h;
        if ((st = sf_h5_open_read(in, &h))) goto fail;
        has_support = sf_h5_exists(h, "support") > 0;
        if (sf_h5_exists(h, "training") > 0) {
            sf_h5_attr_get_long(h, "training", "n_train", &m_train);
            sf_h5_attr_get_long(h, "training", "n_val", &m_val);
        }
        H5Fclose(h);
    }
    if (has_support && (st = sf_infer_support_read(in, &sup))) goto fail;
    if ((st = sf_flow_data_load(data, &d))) goto fail;
    const sf_flow_config *cfg = sf_flow_get_config(f);
    if (d->D != cfg->D || d->C != cfg->C) {
        fprintf(stderr, "sedflow train: error: %s has D=%d C=%d, the model D=%d C=%d\n", data, d->D, d->C, cfg->D,
                cfg->C);
        goto fail_quiet;
    }
    sf_flow_train_config tc;
    sf_flow_train_config_default(&tc);
    tc.seed = seed >= 0 ? (uint64_t)seed : cfg->seed;
    tc.val_frac = val_frac;
    tc.nthreads = threads;
    {
        size_t n_val = (size_t)floor(val_frac * (double)d->n);
        if (m_train > 0 && ((size_t)m_train != d->n - n_val || (size_t)m_val != n_val)) {
            fprintf(stderr,
                    "sedflow train: error: %s was trained on %lld + %lld rows, --data %s with --val-frac %g gives "
                    "%zu + %zu: not its training set\n",
                    in, m_train, m_val, data, val_frac, d->n - n_val, n_val);
            goto fail_quiet;
        }
    }
    if (!quiet)
        fprintf(stderr, "sedflow train: recalibrating BN of %s on --data %s (split seed %llu)\n", in, data,
                (unsigned long long)tc.seed);
    if ((st = precise_bn(f, d, &tc, (size_t)N, quiet))) goto fail;
    if ((st = sf_flow_save(f, out))) goto fail;
    if (has_support && (st = sf_infer_support_write(out, &sup))) goto fail;
    if (!quiet) fprintf(stderr, "sedflow train: wrote %s%s\n", out, has_support ? " (with /support)" : "");
    sf_flow_free(f);
    sf_flow_data_free(d);
    return 0;
fail:
    cli_fail(cmd, st);
fail_quiet:
    sf_flow_free(f);
    sf_flow_data_free(d);
    return 1;
}

/* SIGINT / SIGTERM during training: stop after the current step, validate the
 * partial epoch, write the checkpoint and the model (best weights), exit 0.
 * A second signal at least a second later kills the process (one sooner is the
 * same request: timeout(1) signals the process and then its process group). */
static volatile sig_atomic_t interrupted = 0;
static struct timespec first_signal;

static void on_signal(int signo)
{
    static const char msg[] = "\nsedflow train: interrupted: finishing this step, validating and writing the model "
                              "(signal again to abort)\n";
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now); /* async-signal-safe, as write, signal and raise */
    if (!interrupted) {
        first_signal = now; /* before the flag: a second handler (another thread) reads it */
        interrupted = signo;
        ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
        (void)w;
    } else if (now.tv_sec - first_signal.tv_sec + 1e-9 * (now.tv_nsec - first_signal.tv_nsec) > 1.0) {
        signal(signo, SIG_DFL);
        raise(signo);
    }
}

static void catch_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART; /* a write to a stderr pipe goes on */
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGINT);
    sigaddset(&sa.sa_mask, SIGTERM);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int cmd_train(int argc, char **argv)
{
    const char *cmd = "train", *data = NULL, *out = NULL, *flow = "maf", *map = "logit";
    long K = LONG_MIN, H = LONG_MIN, batch = LONG_MIN, seed = 1, threads = 0, max_epochs = 0, patience = 20, bins = 8;
    double lr = 5e-4, max_minutes = 0, val_frac = 0.1, tail = 3.0, lr_decay = 0, lr_min = 1e-5;
    long lr_patience = 5;
    int resume = 0, quiet = 0, seed_given = 0, lr_given = 0;
    long precise_n = 0, precise_each = 0;
    const char *recal = NULL;
    static const struct option opts[] = {
        {"data", required_argument, 0, 'd'}, {"out", required_argument, 0, 'o'},
        {"flow", required_argument, 0, 'f'}, {"blocks", required_argument, 0, 'K'},
        {"hidden", required_argument, 0, 'H'}, {"batch", required_argument, 0, 'b'},
        {"lr", required_argument, 0, 'l'}, {"patience", required_argument, 0, 'p'},
        {"val-frac", required_argument, 0, 'v'}, {"seed", required_argument, 0, 's'},
        {"threads", required_argument, 0, 't'}, {"max-epochs", required_argument, 0, 'e'},
        {"max-minutes", required_argument, 0, 'm'}, {"resume", no_argument, 0, 'r'},
        {"quiet", no_argument, 0, 'q'}, {"bins", required_argument, 0, 'n'},
        {"tail-bound", required_argument, 0, 'B'}, {"precise-bn", required_argument, 0, 'P'},
        {"recalibrate-bn", required_argument, 0, 'R'}, {"precise-bn-each-epoch", required_argument, 0, 'E'},
        {"theta-map", required_argument, 0, 'M'}, {"lr-decay", required_argument, 0, 'D'},
        {"lr-patience", required_argument, 0, 'L'}, {"lr-min", required_argument, 0, 'N'},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
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
        case 'l': if (cli_parse_double(cmd, "--lr", optarg, &lr)) return 2; lr_given = 1; break;
        case 'D': if (cli_parse_double(cmd, "--lr-decay", optarg, &lr_decay)) return 2; break;
        case 'L': if (cli_parse_long(cmd, "--lr-patience", optarg, &lr_patience)) return 2; break;
        case 'N': if (cli_parse_double(cmd, "--lr-min", optarg, &lr_min)) return 2; break;
        case 'p': if (cli_parse_long(cmd, "--patience", optarg, &patience)) return 2; break;
        case 'v': if (cli_parse_double(cmd, "--val-frac", optarg, &val_frac)) return 2; break;
        case 's': if (cli_parse_seed(cmd, optarg, &seed)) return 2; seed_given = 1; break;
        case 't': if (cli_parse_threads(cmd, optarg, &threads)) return 2; break;
        case 'e': if (cli_parse_long(cmd, "--max-epochs", optarg, &max_epochs)) return 2; break;
        case 'm': if (cli_parse_double(cmd, "--max-minutes", optarg, &max_minutes)) return 2; break;
        case 'n': if (cli_parse_long(cmd, "--bins", optarg, &bins)) return 2; break;
        case 'B': if (cli_parse_double(cmd, "--tail-bound", optarg, &tail)) return 2; break;
        case 'P': if (cli_parse_long(cmd, "--precise-bn", optarg, &precise_n)) return 2; break;
        case 'E': if (cli_parse_long(cmd, "--precise-bn-each-epoch", optarg, &precise_each)) return 2; break;
        case 'R': recal = optarg; break;
        case 'M': map = optarg; break;
        case 'r': resume = 1; break;
        case 'q': quiet = 1; break;
        case 'h': help(); return 0;
        default: return cli_usage_error(cmd, "unknown option");
        }
    }
    if (!data || !out) return cli_usage_error(cmd, "--data and --out are required");
    if (precise_n < 0) return cli_usage_error(cmd, "--precise-bn N needs N >= 2");
    if (!(val_frac > 0 && val_frac < 1)) return cli_usage_error(cmd, "--val-frac %g: must be in (0, 1)", val_frac);
    if (recal) {
        if (precise_n < 2) return cli_usage_error(cmd, "--recalibrate-bn needs --precise-bn N (N >= 2)");
        if (resume) return cli_usage_error(cmd, "--recalibrate-bn and --resume exclude each other");
        if (precise_each) return cli_usage_error(cmd, "--recalibrate-bn does not train: no --precise-bn-each-epoch");
        if (cli_check_output_path(cmd, "--out", out, &data, 1)) return 2;
        return recalibrate(recal, data, out, precise_n, seed_given ? seed : -1, val_frac, (int)threads, quiet);
    }
    if (precise_n == 1) return cli_usage_error(cmd, "--precise-bn N needs N >= 2");
    if (precise_each < 0 || precise_each == 1) return cli_usage_error(cmd, "--precise-bn-each-epoch N needs N >= 2");
    const int nsf = !strcmp(flow, "nsf");
    if (strcmp(flow, "maf") && !nsf) return cli_usage_error(cmd, "--flow '%s' unknown (available: maf, nsf)", flow);
    if (strcmp(map, "identity") && strcmp(map, "logit"))
        return cli_usage_error(cmd, "--theta-map '%s' unknown (available: identity, logit)", map);
    if (K == LONG_MIN) K = nsf ? 8 : 15; /* LONG_MIN: not given */
    if (H == LONG_MIN) H = nsf ? 128 : 500;
    if (batch == LONG_MIN) batch = nsf ? 512 : 50;
    if (K < 1 || H < 1) return cli_usage_error(cmd, "--blocks %ld, --hidden %ld: both must be >= 1", K, H);
    if (K > 4096 || H > 1000000) /* what sf_flow_load accepts (and no wrap when cast to int) */
        return cli_usage_error(cmd, "--blocks %ld, --hidden %ld: at most 4096 and 1000000", K, H);
    if (batch < 2) return cli_usage_error(cmd, "--batch %ld: must be >= 2 (batch norm needs 2 rows)", batch);
    if (patience < 1) return cli_usage_error(cmd, "--patience %ld: must be >= 1", patience);
    if (max_epochs < 0 || !(max_minutes >= 0))
        return cli_usage_error(cmd, "--max-epochs %ld, --max-minutes %g: must be >= 0 (0: no limit)", max_epochs,
                               max_minutes);
    if (!(lr > 0 && isfinite(lr))) return cli_usage_error(cmd, "--lr %g: must be finite and > 0", lr);
    if (!(lr_decay >= 0 && lr_decay < 1)) return cli_usage_error(cmd, "--lr-decay %g: must be in [0, 1)", lr_decay);
    if (lr_patience < 1 || lr_patience > INT_MAX || patience > INT_MAX)
        return cli_usage_error(cmd, "--lr-patience %ld, --patience %ld: must be in 1..%d", lr_patience, patience,
                               INT_MAX);
    if (!(lr_min > 0 && isfinite(lr_min))) return cli_usage_error(cmd, "--lr-min %g: must be finite and > 0", lr_min);
    if (lr_decay > 0 && !quiet && lr_min >= lr && !resume)
        fprintf(stderr, "sedflow train: note: --lr-min %g >= --lr %g: the rate never decays\n", lr_min, lr);
    if (bins < 1 || bins > 64 || !(tail > 0))
        return cli_usage_error(cmd, "--bins must be in 1..64 and --tail-bound > 0");
    char ckpt[4096];
    snprintf(ckpt, sizeof ckpt, "%s.ckpt", out);
    {
        const char *reads[2] = {data, out};
        if (cli_check_output_path(cmd, "--out", out, reads, 1) || cli_check_output_path(cmd, "--out", ckpt, reads, 2))
            return 2;
    }
    double t_start = cli_now();
    sf_flow_data *d = NULL;
    sf_flow *f = NULL;
    sf_flow_trainer *t = NULL;
    sf_status st = sf_flow_data_load(data, &d);
    if (st) return cli_fail(cmd, st);
    sf_flow_config cfg = {nsf ? SF_FLOW_NSF : SF_FLOW_MAF, d->D, d->C, (int)K, (int)H, (uint64_t)seed,
                          strcmp(map, "logit") ? SF_FLOW_THETA_IDENTITY : SF_FLOW_THETA_LOGIT};
    sf_flow_nsf_config nc = {(int)bins, tail};
    sf_flow_train_config tc;
    sf_flow_train_config_default(&tc);
    tc.batch = (size_t)batch, tc.lr = lr, tc.patience = (int)patience, tc.val_frac = val_frac;
    tc.seed = (uint64_t)seed, tc.nthreads = (int)threads, tc.precise_bn_rows = (size_t)precise_each;
    tc.lr_decay = lr_decay, tc.lr_patience = (int)lr_patience, tc.lr_min = lr_min;
    if ((st = nsf ? sf_flow_alloc_nsf(&cfg, &nc, &f) : sf_flow_alloc(&cfg, &f)) ||
        (st = sf_flow_trainer_alloc(f, d, &tc, &t)))
        goto fail;
    if (!quiet && nsf)
        fprintf(stderr, "sedflow train: %zu rows (D=%d, C=%d), NSF K=%ld H=%ld bins=%ld tail bound %g: %zu parameters\n",
                d->n, d->D, d->C, K, H, bins, tail, sf_flow_n_params(f));
    else if (!quiet)
        fprintf(stderr, "sedflow train: %zu rows (D=%d, C=%d), MAF K=%ld H=%ld, theta map %s: %zu parameters\n", d->n,
                d->D, d->C, K, H, map, sf_flow_n_params(f));
    if (!quiet && precise_each && nsf)
        fprintf(stderr, "sedflow train: --precise-bn-each-epoch: an NSF has no batch norm, nothing to do\n");
    else if (!quiet && precise_each) {
        size_t n_val = (size_t)floor(val_frac * (double)d->n), n_pbn = d->n - n_val;
        if ((size_t)precise_each < n_pbn) n_pbn = (size_t)precise_each;
        fprintf(stderr, "sedflow train: precise BN on %zu training rows at every epoch end\n", n_pbn);
    }
    if (resume) {
        if (access(ckpt, R_OK) != 0) {
            fprintf(stderr, "sedflow train: error: --resume but no checkpoint '%s'\n", ckpt);
            goto fail_quiet;
        }
        if ((st = sf_flow_trainer_resume(t, ckpt))) goto fail;
        if (lr_given && (st = sf_flow_trainer_set_lr(t, lr))) goto fail;
        if (!quiet)
            fprintf(stderr, "sedflow train: resumed after epoch %ld, learning rate %g\n", sf_flow_trainer_epochs(t),
                    sf_flow_trainer_lr(t));
    }
    const char *reason = "patience";
    catch_signals();
    for (;;) {
        if (max_epochs && sf_flow_trainer_epochs(t) >= max_epochs) {
            reason = "max_epochs";
            break;
        }
        int more = 1, stop = 0, late = 0;
        while (more && !late) {
            if ((st = sf_flow_trainer_step(t, &more))) goto fail;
            late = (max_minutes > 0 && cli_now() - t_start > 60 * max_minutes) || interrupted;
        }
        sf_flow_epoch_stats es;
        if ((st = sf_flow_trainer_epoch_end(t, &es, &stop))) goto fail;
        if (!quiet)
            fprintf(stderr, "epoch %4ld  lr %7.1e  train log q %9.4f  val log q %9.4f  %7.1f s  %7.0f samples/s%s%s\n",
                    es.epoch, es.lr, es.train_logq, es.val_logq, es.seconds, es.samples_per_s,
                    es.improved ? "  *" : "", es.partial ? "  (partial)" : "");
        if (!quiet && es.lr_decayed)
            fprintf(stderr, "sedflow train: --lr-patience %ld epochs without improvement: learning rate now %.2g\n",
                    lr_patience, sf_flow_trainer_lr(t));
        if ((st = sf_flow_trainer_checkpoint(t, ckpt))) goto fail;
        if (stop) break;
        if (late || interrupted) { /* a signal during the validation or the checkpoint: no new epoch */
            reason = interrupted ? "interrupted" : "max_minutes";
            break;
        }
    }
    sf_flow_trainer_set_stop(t, reason);
    sf_flow_trainer_finish(t);
    if (precise_n > 0 && (st = precise_bn(f, d, &tc, (size_t)precise_n, quiet))) goto fail;
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
