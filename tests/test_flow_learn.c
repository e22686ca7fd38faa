/* Learning, once per flow family (the argument "maf" or "nsf" picks one;
 * CTest runs test_flow_learn_maf and test_flow_learn_nsf; none runs both):
 * a MAF (3 blocks) or an NSF (4 coupling layers, 8 bins), 32 hidden units,
 * trained by the trainer (Adam, minibatches, early stopping) on
 * theta | x ~ N(A x + b, S) reaches a held-out mean log q within 0.05 nats
 * per dimension of the true mean log p. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sedflow/flow.h"
#include "test_flow_synth.h"
#include "testutil.h"

static void check_family(sf_flow_family family)
{
    const int K = family == SF_FLOW_NSF ? 4 : 3; /* coupling layers / MAF blocks */
    const int quick = getenv("SEDFLOW_TEST_QUICK") != NULL;
    const int D = 3, C = 2;
    const size_t n = quick ? 4000 : 30000, n_test = quick ? 2000 : 10000;
    const long max_epochs = quick ? 6 : 60;
    synth_model m;
    synth_init(&m, D, C, 7);
    sf_flow_data d;
    memset(&d, 0, sizeof d);
    d.n = n, d.D = D, d.C = C;
    d.theta = malloc(sizeof(double) * n * D);
    d.x = malloc(sizeof(double) * n * C);
    double lo[3] = {-20, -20, -20}, hi[3] = {20, 20, 20};
    d.lower = lo, d.upper = hi;
    synth_draw(&m, n, 7, 0, d.theta, d.x);

    sf_flow_config cfg = {family, D, C, K, 32, 5, SF_FLOW_THETA_IDENTITY};
    sf_flow *f = NULL;
    CHECK(sf_flow_alloc(&cfg, &f) == SF_OK, "alloc");
    sf_flow_train_config tc;
    sf_flow_train_config_default(&tc);
    tc.batch = 100;
    tc.lr = 2e-3;
    tc.patience = 8;
    tc.nthreads = 2;
    sf_flow_trainer *t = NULL;
    CHECK(sf_flow_trainer_alloc(f, &d, &tc, &t) == SF_OK, "trainer alloc: %s", sf_last_error());
    if (!t) return;
    sf_flow_epoch_stats es = {0};
    double first_val = NAN;
    int stop = 0, ok = 1;
    while (!stop && sf_flow_trainer_epochs(t) < max_epochs && ok) {
        int more = 1;
        while (more && ok) ok = sf_flow_trainer_step(t, &more) == SF_OK;
        ok = ok && sf_flow_trainer_epoch_end(t, &es, &stop) == SF_OK;
        if (es.epoch == 1) first_val = es.val_logq;
    }
    CHECK(ok, "training ran: %s", sf_last_error());
    sf_flow_trainer_finish(t);
    printf("# %ld epochs, first val %.4f, last val %.4f, %.0f samples/s\n", es.epoch, first_val, es.val_logq,
           es.samples_per_s);
    const double *hist;
    size_t nh = sf_flow_history(f, &hist);
    CHECK(nh == (size_t)es.epoch && hist[(nh - 1) * 5 + 2] == es.val_logq, "history has one row per epoch");

    double *th = malloc(sizeof(double) * n_test * D), *x = malloc(sizeof(double) * n_test * C);
    double *lq = malloc(sizeof(double) * n_test);
    synth_draw(&m, n_test, 7, 1, th, x);
    CHECK(sf_flow_logq(f, n_test, th, x, lq, 2) == SF_OK, "held-out log q");
    double sq = 0, sp = 0;
    for (size_t i = 0; i < n_test; i++) {
        sq += lq[i];
        sp += synth_logp(&m, th + i * D, x + i * C);
    }
    sq /= n_test, sp /= n_test;
    double tol = quick ? 0.3 : 0.05;
    CHECK(sp - sq < tol * D && sp - sq > -0.05 * D, "held-out mean log q %.4f vs true %.4f: gap %.4f nats/dim (tol %.2f)", sq, sp,
          (sp - sq) / D, tol);
    CHECK(es.val_logq > first_val, "validation log q improved (%.4f -> %.4f)", first_val, es.val_logq);
    free(th); free(x); free(lq); free(d.theta); free(d.x);
    sf_flow_trainer_free(t);
    sf_flow_free(f);
}

int main(int argc, char **argv) { return flow_test_each_family("test_flow_learn", argc, argv, check_family); }
