/* Precise BN at every epoch end (sf_flow_train_config.precise_bn_rows,
 * src/flow/trainer.c; sedflow train --precise-bn-each-epoch) on a small
 * synthetic MAF (D = 3, C = 2, K = 2, H = 16, 3,000 rows, batch 64, 3 epochs,
 * N = 1,000 precise-BN rows: a partial 256-row chunk):
 *  - training itself is unchanged: the weights after every epoch and the
 *    training log q equal those of a run without the option, bit for bit;
 *  - the validation log q of every epoch equals the mean log q over the
 *    validation rows of that epoch's weights with sf_flow_bn_recompute
 *    statistics over the first N rows of the training split, and differs
 *    from the moving-average value (so the check can fail);
 *  - after sf_flow_trainer_finish the BN statistics equal
 *    sf_flow_bn_recompute of the best weights over the same rows (bits), and
 *    the best epoch's recorded validation log q equals sf_flow_logq's mean of
 *    the finished flow on the validation rows (bits);
 *  - 2 epochs + checkpoint + resume + 1 epoch = 3 epochs straight (bits);
 *  - 1 vs 2 threads bit-identical; NSF: the option changes nothing;
 *    precise_bn_rows = 1 is SF_EINVAL;
 *  - CLI --precise-bn-each-epoch (log line; a final --precise-bn over the
 *    same rows leaves the validation log q as it was; usage error). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sedflow/flow.h"
#include "test_flow_synth.h"
#include "testutil.h"

enum { D = 3, C = 2, K = 2, H = 16, NROWS = 3000, NPBN = 1000, EPOCHS = 3 };
#define NBN ((size_t)K * 2 * 2 * H)

static sf_flow_data g_d;
static size_t g_idx[NROWS], g_ntrain;
static double g_pth[NPBN * D], g_px[NPBN * C], g_vth[NROWS * D], g_vx[NROWS * C];

static sf_flow_train_config train_cfg(size_t pbn, int threads)
{
    sf_flow_train_config tc;
    sf_flow_train_config_default(&tc);
    tc.batch = 64, tc.lr = 2e-3, tc.seed = 5, tc.nthreads = threads, tc.precise_bn_rows = pbn;
    return tc;
}

static double val_mean(const sf_flow *f, int threads)
{
    const size_t nv = NROWS - g_ntrain;
    double *lq = malloc(nv * sizeof(double)), s = 0;
    if (sf_flow_logq(f, nv, g_vth, g_vx, lq, threads) != SF_OK) s = NAN;
    for (size_t i = 0; i < nv; i++) s += lq[i];
    free(lq);
    return s / (double)nv;
}

/* A trained flow: params, BN statistics (finished: best) and history. */
typedef struct {
    float *params, bn[NBN];
    double hist[EPOCHS * 5];
    size_t np, nh;
    long best_epoch;
} run_result;

static void keep(sf_flow *f, run_result *r)
{
    r->np = sf_flow_n_params(f);
    r->params = malloc(r->np * sizeof(float));
    memcpy(r->params, sf_flow_params(f), r->np * sizeof(float));
    if (sf_flow_get_config(f)->family == SF_FLOW_MAF) memcpy(r->bn, sf_flow_bn_running(f), sizeof r->bn);
    sf_flow_prepare(f); /* the accessors mark the flow unprepared */
    const double *h;
    r->nh = sf_flow_history(f, &h);
    memcpy(r->hist, h, (r->nh < EPOCHS ? r->nh : EPOCHS) * 5 * sizeof(double));
}

/* Train EPOCHS epochs (or `first` epochs, checkpoint, fresh trainer, resume,
 * the rest when ckpt != NULL), finish, keep the result in *r. */
static void train(sf_flow_family fam, size_t pbn, int threads, const char *ckpt, int first, run_result *r)
{
    sf_flow_config cfg = {fam, D, C, K, H, 11, SF_FLOW_THETA_IDENTITY};
    sf_flow_train_config tc = train_cfg(pbn, threads);
    sf_flow *f = NULL;
    sf_flow_trainer *t = NULL;
    memset(r, 0, sizeof *r);
    CHECK(sf_flow_alloc(&cfg, &f) == SF_OK && sf_flow_trainer_alloc(f, &g_d, &tc, &t) == SF_OK, "trainer: %s",
          sf_last_error());
    if (ckpt) {
        CHECK(synth_run_epochs(t, first) == SF_OK && sf_flow_trainer_checkpoint(t, ckpt) == SF_OK,
              "%d epochs + checkpoint: %s", first, sf_last_error());
        sf_flow_trainer_free(t);
        sf_flow_free(f);
        f = NULL, t = NULL;
        CHECK(sf_flow_alloc(&cfg, &f) == SF_OK && sf_flow_trainer_alloc(f, &g_d, &tc, &t) == SF_OK &&
                  sf_flow_trainer_resume(t, ckpt) == SF_OK && sf_flow_trainer_epochs(t) == first,
              "resume: %s", sf_last_error());
        CHECK(synth_run_epochs(t, EPOCHS - first) == SF_OK, "the remaining epochs");
    } else
        CHECK(synth_run_epochs(t, EPOCHS) == SF_OK, "%d epochs (%zu precise-BN rows, %d threads)", EPOCHS, pbn,
              threads);
    sf_flow_trainer_finish(t);
    keep(f, r);
    const double *h;
    sf_flow_history(f, &h);
    r->best_epoch = 0;
    for (size_t e = 0; e < r->nh; e++)
        if (e == 0 || h[e * 5 + 2] > h[(size_t)(r->best_epoch - 1) * 5 + 2]) r->best_epoch = (long)e + 1;
    if (fam == SF_FLOW_MAF && pbn) {
        /* the finished flow: precise statistics of the best weights, and
         * the recorded validation log q of the best epoch */
        double vm = val_mean(f, threads);
        CHECK(vm == h[(size_t)(r->best_epoch - 1) * 5 + 2],
              "best epoch %ld: recorded validation log q %.17g = mean log q of the finished flow %.17g",
              r->best_epoch, h[(size_t)(r->best_epoch - 1) * 5 + 2], vm);
        CHECK(sf_flow_bn_recompute(f, NPBN, g_pth, g_px, 1) == SF_OK &&
                  !memcmp(sf_flow_bn_running(f), r->bn, sizeof r->bn),
              "finished flow's BN statistics = sf_flow_bn_recompute over the same %d rows (bits)", NPBN);
    }
    sf_flow_trainer_free(t);
    sf_flow_free(f);
}

static int same(const run_result *a, const run_result *b, int train_only)
{
    if (a->np != b->np || a->nh != b->nh || memcmp(a->params, b->params, a->np * sizeof(float))) return 0;
    for (size_t e = 0; e < a->nh; e++)
        if (a->hist[e * 5 + 1] != b->hist[e * 5 + 1] || (!train_only && a->hist[e * 5 + 2] != b->hist[e * 5 + 2]))
            return 0;
    return train_only || !memcmp(a->bn, b->bn, sizeof a->bn);
}

/* Without the option, step by step: at every epoch end the weights equal
 * the precise run's (saved per epoch in w), and the precise validation log q
 * recomputed here equals the precise run's history. */
static void check_per_epoch(void)
{
    sf_flow_config cfg = {SF_FLOW_MAF, D, C, K, H, 11, SF_FLOW_THETA_IDENTITY};
    sf_flow_train_config tp = train_cfg(NPBN, 1), tm = train_cfg(0, 1);
    sf_flow *fp = NULL, *fm = NULL;
    sf_flow_trainer *tpt = NULL, *tmt = NULL;
    CHECK(sf_flow_alloc(&cfg, &fp) == SF_OK && sf_flow_trainer_alloc(fp, &g_d, &tp, &tpt) == SF_OK &&
              sf_flow_alloc(&cfg, &fm) == SF_OK && sf_flow_trainer_alloc(fm, &g_d, &tm, &tmt) == SF_OK,
          "two trainers");
    if (!tpt || !tmt) return;
    const size_t np = sf_flow_n_params(fp);
    float run_ma[NBN];
    int n_same_w = 0, n_eq = 0, n_differ = 0;
    for (int e = 0; e < EPOCHS; e++) {
        sf_flow_epoch_stats sp, sm;
        int stop;
        int more = 1;
        while (more) sf_flow_trainer_step(tpt, &more);
        more = 1;
        while (more) sf_flow_trainer_step(tmt, &more);
        sf_flow_trainer_epoch_end(tpt, &sp, &stop);
        sf_flow_trainer_epoch_end(tmt, &sm, &stop);
        n_same_w += !memcmp(sf_flow_params(fp), sf_flow_params(fm), np * sizeof(float)) &&
                    sp.train_logq == sm.train_logq;
        sf_flow_prepare(fp), sf_flow_prepare(fm); /* after the accessors */
        /* precise statistics of the moving-average run's weights, then back */
        memcpy(run_ma, sf_flow_bn_running(fm), sizeof run_ma);
        sf_flow_prepare(fm);
        double vm_ma = val_mean(fm, 1);
        sf_flow_bn_recompute(fm, NPBN, g_pth, g_px, 2);
        double vm_p = val_mean(fm, 1);
        n_eq += vm_p == sp.val_logq && !memcmp(sf_flow_bn_running(fm), sf_flow_bn_running(fp), sizeof run_ma);
        sf_flow_prepare(fp);
        n_differ += fabs(vm_ma - sp.val_logq) > 1e-4 && vm_ma == sm.val_logq;
        printf("# epoch %d: validation log q moving averages %.5f, precise %.5f\n", e + 1, sm.val_logq, sp.val_logq);
        memcpy(sf_flow_bn_running(fm), run_ma, sizeof run_ma);
        sf_flow_prepare(fm);
    }
    CHECK(n_same_w == EPOCHS, "training unchanged: weights and training log q equal without the option (%d/%d epochs)",
          n_same_w, EPOCHS);
    CHECK(n_eq == EPOCHS,
          "every epoch's validation log q and BN statistics = precise BN over the first %d training rows (%d/%d)",
          NPBN, n_eq, EPOCHS);
    CHECK(n_differ == EPOCHS, "the moving-average validation log q differs (%d/%d epochs)", n_differ, EPOCHS);
    sf_flow_trainer_free(tpt);
    sf_flow_trainer_free(tmt);
    sf_flow_free(fp);
    sf_flow_free(fm);
}

static void check_cli(const char *dir)
{
    char data[256], model[256], cmd[2048];
    static char out[1 << 16];
    snprintf(data, sizeof data, "%s/train.h5", dir);
    snprintf(model, sizeof model, "%s/model.h5", dir);
    synth_model m;
    synth_init(&m, D, C, 4);
    CHECK(synth_write(data, &m, 3000, 4) == 0, "wrote training file");
    const char *bin = tu_cli();
    snprintf(cmd, sizeof cmd,
             "%s train --data %s --out %s --blocks 2 --hidden 16 --batch 64 --max-epochs 2 --threads 1 "
             "--precise-bn-each-epoch 500 --precise-bn 500 2>&1", bin, data, model);
    int rc = tu_run(cmd, out, sizeof out);
    CHECK(rc == 0 && strstr(out, "precise BN on 500 training rows at every epoch end") && strstr(out, "epoch    2"),
          "train --precise-bn-each-epoch 500 (rc %d)", rc);
    /* the best epoch's statistics are already precise over these rows */
    double before = NAN, after = NAN;
    const char *p = strstr(out, "validation mean log q ");
    int got = p ? sscanf(p, "validation mean log q %lf -> %lf", &before, &after) : 0;
    CHECK(got == 2 && isfinite(before) && before == after,
          "a final --precise-bn with the same rows changes nothing (%.4f -> %.4f)", before, after);
    sf_flow *f = NULL;
    CHECK(sf_flow_load(model, &f) == SF_OK, "model written");
    sf_flow_free(f);
    snprintf(cmd, sizeof cmd, "%s train --data %s --out %s --precise-bn-each-epoch 1 2>&1", bin, data, model);
    CHECK(tu_run(cmd, out, sizeof out) == 2, "--precise-bn-each-epoch 1 is a usage error");
}

int main(void)
{
    synth_model m;
    synth_init(&m, D, C, 7);
    double lo[D] = {-20, -20, -20}, hi[D] = {20, 20, 20};
    g_d = (sf_flow_data){.n = NROWS, .D = D, .C = C, .lower = lo, .upper = hi};
    g_d.theta = malloc(sizeof(double) * NROWS * D);
    g_d.x = malloc(sizeof(double) * NROWS * C);
    synth_draw(&m, NROWS, 7, 0, g_d.theta, g_d.x);
    sf_flow_train_config tc = train_cfg(NPBN, 1);
    CHECK(sf_flow_train_split(NROWS, &tc, g_idx, &g_ntrain) == SF_OK && g_ntrain == 2700, "split");
    for (size_t i = 0; i < NROWS; i++) {
        size_t r = g_idx[i];
        double *th = i < NPBN ? g_pth + i * D : NULL, *x = i < NPBN ? g_px + i * C : NULL;
        if (th) memcpy(th, g_d.theta + r * D, D * sizeof(double)), memcpy(x, g_d.x + r * C, C * sizeof(double));
        if (i >= g_ntrain) {
            memcpy(g_vth + (i - g_ntrain) * D, g_d.theta + r * D, D * sizeof(double));
            memcpy(g_vx + (i - g_ntrain) * C, g_d.x + r * C, C * sizeof(double));
        }
    }
    char dir[] = "/tmp/sedflow_test_flow_bn_train_XXXXXX", ckpt[256];
    if (!mkdtemp(dir)) return 1;
    snprintf(ckpt, sizeof ckpt, "%s/ckpt.h5", dir);

    check_per_epoch();

    run_result a1, a2, ar, b, n0, n1;
    train(SF_FLOW_MAF, NPBN, 1, NULL, 0, &a1);
    train(SF_FLOW_MAF, NPBN, 2, NULL, 0, &a2);
    CHECK(a1.nh == EPOCHS && same(&a1, &a2, 0), "1 vs 2 threads: weights, BN statistics, history identical");
    train(SF_FLOW_MAF, NPBN, 1, ckpt, 2, &ar);
    CHECK(same(&a1, &ar, 0), "2 epochs + checkpoint + resume + 1 epoch = 3 epochs straight (bits)");
    train(SF_FLOW_MAF, 0, 1, NULL, 0, &b);
    CHECK(memcmp(a1.bn, b.bn, sizeof a1.bn) != 0, "without the option the finished BN statistics differ");

    /* NSF: nothing to do */
    train(SF_FLOW_NSF, NPBN, 1, NULL, 0, &n1);
    train(SF_FLOW_NSF, 0, 1, NULL, 0, &n0);
    CHECK(n1.nh == EPOCHS && same(&n0, &n1, 0), "NSF: the option changes nothing");

    /* precise_bn_rows = 1 */
    {
        sf_flow_config cfg = {SF_FLOW_MAF, D, C, K, H, 11, SF_FLOW_THETA_IDENTITY};
        sf_flow_train_config t1 = train_cfg(1, 1);
        sf_flow *f = NULL;
        sf_flow_trainer *t = NULL;
        sf_flow_alloc(&cfg, &f);
        CHECK(sf_flow_trainer_alloc(f, &g_d, &t1, &t) == SF_EINVAL && !t, "precise_bn_rows = 1 is SF_EINVAL");
        sf_flow_free(f);
    }

    check_cli(dir);

    run_result *all[] = {&a1, &a2, &ar, &b, &n0, &n1};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]->params);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) CHECK(0, "removed %s", dir);
    free(g_d.theta);
    free(g_d.x);
    return tu_finish("test_flow_bn_train");
}
