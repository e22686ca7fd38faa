/*
 * Training gives the same bytes for any thread count, at a size where the
 * threads really engage (the other training tests are small enough that
 * sf_flow_loss_grad and the Adam step run on one thread whatever is asked):
 * MAF D = 7, C = 8, K = 9, H = 100 (213,426 parameters: Adam's norm and step
 * run in parallel from 200,000, and the per-thread ranges end in scalar
 * tails), batch 512 (B H^2 = 5.1e6 >= 4e6: the forward and backward passes
 * split the hidden units between threads; H mod 16 = 4, so a thread's tanh
 * range ends in a scalar tail), 3,000 synthetic rows, 2 epochs, every step
 * clipped (norm 0.05, so the norm reaches the weights), with 1, 2 and 3
 * threads: the weights, the batch-norm running statistics and the training
 * log q of every epoch are identical bit for bit.  Before the packed
 * micro-kernel the products ran through OpenBLAS on thread-dependent slices
 * and 1 and 2 threads differed (test_flow_grad checks the gradients
 * directly); built by clang without -ffp-contract=off the scalar tails were
 * fused into FMAs, unlike the vector bodies, and threads differed again.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sedflow/flow.h"
#include "test_flow_synth.h"
#include "testutil.h"

enum { D = 7, C = 8, K = 9, H = 100, NROWS = 3000, EPOCHS = 2 };

typedef struct {
    float *params, *bn;
    size_t np, nbn;
    double train_logq[EPOCHS];
} result;

static void train(const sf_flow_data *d, int threads, result *r)
{
    sf_flow_config cfg = {SF_FLOW_MAF, D, C, K, H, 7, SF_FLOW_THETA_IDENTITY};
    sf_flow_train_config tc;
    sf_flow_train_config_default(&tc);
    tc.batch = 512, tc.lr = 1e-3, tc.seed = 9, tc.nthreads = threads;
    tc.clip_norm = 0.05; /* every step clipped: the norm's bits reach the weights */
    sf_flow *f = NULL;
    sf_flow_trainer *t = NULL;
    memset(r, 0, sizeof *r);
    CHECK(sf_flow_alloc(&cfg, &f) == SF_OK && sf_flow_trainer_alloc(f, d, &tc, &t) == SF_OK, "%d threads: trainer: %s",
          threads, sf_last_error());
    if (!t) return;
    CHECK(synth_run_epochs(t, EPOCHS) == SF_OK, "%d threads: %d epochs", threads, EPOCHS);
    r->np = sf_flow_n_params(f);
    r->nbn = (size_t)K * 2 * 2 * H;
    r->params = malloc(r->np * sizeof(float));
    r->bn = malloc(r->nbn * sizeof(float));
    memcpy(r->params, sf_flow_params(f), r->np * sizeof(float));
    memcpy(r->bn, sf_flow_bn_running(f), r->nbn * sizeof(float));
    const double *h;
    size_t nh = sf_flow_history(f, &h);
    for (size_t e = 0; e < EPOCHS && e < nh; e++) r->train_logq[e] = h[e * 5 + 1];
    sf_flow_trainer_free(t);
    sf_flow_free(f);
}

int main(void)
{
    char path[] = "/tmp/sedflow_test_threads_XXXXXX";
    int fd = mkstemp(path);
    if (fd >= 0) close(fd);
    synth_model m;
    synth_init(&m, D, C, 21);
    sf_flow_data *d = NULL;
    CHECK(fd >= 0 && synth_write(path, &m, NROWS, 22) == 0 && sf_flow_data_load(path, &d) == SF_OK,
          "synthetic training set: %s", sf_last_error());
    if (d) {
        result r1, r[2];
        train(d, 1, &r1);
        CHECK(r1.np == 213426, "MAF D=7 C=8 K=9 H=100: %zu parameters (213,426)", r1.np);
        for (int i = 0; i < 2; i++) {
            const int nt = i + 2;
            train(d, nt, &r[i]);
            CHECK(r[i].np == r1.np && r1.params && r[i].params &&
                      !memcmp(r1.params, r[i].params, r1.np * sizeof(float)),
                  "1 vs %d threads: identical weights after %d epochs", nt, EPOCHS);
            CHECK(r1.bn && r[i].bn && !memcmp(r1.bn, r[i].bn, r1.nbn * sizeof(float)),
                  "1 vs %d threads: identical batch-norm running statistics", nt);
            CHECK(!memcmp(r1.train_logq, r[i].train_logq, sizeof r1.train_logq),
                  "1 vs %d threads: identical training log q per epoch (%.17g, %.17g)", nt, r[i].train_logq[0],
                  r[i].train_logq[1]);
            free(r[i].params), free(r[i].bn);
        }
        free(r1.params), free(r1.bn);
        /* a thread count beyond SF_MAX_THREADS is cut, not passed to OpenMP
         * (libgomp crashed at 100,000): the same draws as one thread */
        sf_flow_config cfg = {SF_FLOW_MAF, D, C, 2, 16, 7, SF_FLOW_THETA_IDENTITY};
        sf_flow *f = NULL;
        double x[C], s1[300 * D], s2[300 * D];
        for (int j = 0; j < C; j++) x[j] = 0.5;
        size_t a1 = 0, a2 = 0;
        CHECK(sf_flow_alloc(&cfg, &f) == SF_OK &&
                  sf_flow_sample(f, 1, x, 300, 5, NULL, NULL, 0, s1, NULL, &a1, NULL, 1) == SF_OK &&
                  sf_flow_sample(f, 1, x, 300, 5, NULL, NULL, 0, s2, NULL, &a2, NULL, 100000) == SF_OK && a1 == 300 &&
                  a2 == 300 && !memcmp(s1, s2, sizeof s1),
              "sampling with 100,000 threads asked: the same 300 draws as 1 thread (%s)", sf_last_error());
        sf_flow_free(f);
        sf_flow_data_free(d);
    }
    unlink(path);
    return tu_finish("test_flow_threads");
}
