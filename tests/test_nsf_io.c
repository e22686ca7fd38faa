/* NSF model files, checkpoints and CLI: save/load gives bit-identical log q
 * and samples with the family and spline hyper-parameters restored; 2
 * epochs straight = 1 epoch + checkpoint + resume + 1 epoch bit for bit, for
 * 1 and 2 threads alike; a MAF checkpoint is refused by an NSF trainer;
 * `sedflow train --flow nsf` (+ --resume), logprob and sample. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/h5util.h"
#include "sedflow/flow.h"
#include "test_flow_synth.h"
#include "testutil.h"

int main(void)
{
    char dir[] = "/tmp/sedflow_test_nsf_io_XXXXXX";
    if (!mkdtemp(dir)) return 1;
    char data[256], model[256], ckpt[256], mafck[256], cmd[2048];
    static char out[1 << 20];
    snprintf(data, sizeof data, "%s/train.h5", dir);
    snprintf(model, sizeof model, "%s/model.h5", dir);
    snprintf(ckpt, sizeof ckpt, "%s/ckpt.h5", dir);
    snprintf(mafck, sizeof mafck, "%s/maf.h5", dir);
    synth_model m;
    synth_init(&m, 3, 2, 3);
    CHECK(synth_write(data, &m, 1200, 3) == 0, "wrote synthetic training file");
    sf_flow_data *d = NULL;
    CHECK(sf_flow_data_load(data, &d) == SF_OK, "data load: %s", sf_last_error());
    if (!d) return tu_finish("test_nsf_io");

    sf_flow_config cfg = {SF_FLOW_NSF, 3, 2, 3, 12, 9, SF_FLOW_THETA_IDENTITY};
    sf_flow_nsf_config nc = {5, 2.5};
    sf_flow_train_config tc;
    sf_flow_train_config_default(&tc);
    tc.batch = 100; /* 4 pieces */
    tc.lr = 2e-3;
    sf_flow *f1 = NULL, *f2 = NULL, *f3 = NULL;
    sf_flow_trainer *t1 = NULL, *t2 = NULL, *t3 = NULL;
    sf_flow_alloc_nsf(&cfg, &nc, &f1);
    sf_flow_alloc_nsf(&cfg, &nc, &f2);
    sf_flow_alloc_nsf(&cfg, &nc, &f3);
    tc.nthreads = 2;
    CHECK(sf_flow_trainer_alloc(f1, d, &tc, &t1) == SF_OK, "trainer 1");
    CHECK(synth_run_epochs(t1, 2) == SF_OK, "2 epochs straight (2 threads)");
    tc.nthreads = 1;
    CHECK(sf_flow_trainer_alloc(f3, d, &tc, &t3) == SF_OK && synth_run_epochs(t3, 2) == SF_OK, "2 epochs straight (1 thread)");
    const size_t np = sf_flow_n_params(f1);
    CHECK(!memcmp(sf_flow_params(f1), sf_flow_params(f3), np * sizeof(float)), "training: 1 and 2 threads bit-identical weights");
    CHECK(sf_flow_trainer_alloc(f2, d, &tc, &t2) == SF_OK, "trainer 2");
    CHECK(synth_run_epochs(t2, 1) == SF_OK && sf_flow_trainer_checkpoint(t2, ckpt) == SF_OK, "1 epoch + checkpoint: %s",
          sf_last_error());
    sf_flow_trainer_free(t2);
    sf_flow_free(f2);
    sf_flow_alloc_nsf(&cfg, &nc, &f2);
    sf_flow_trainer_alloc(f2, d, &tc, &t2);
    CHECK(sf_flow_trainer_resume(t2, ckpt) == SF_OK && sf_flow_trainer_epochs(t2) == 1, "resume: %s", sf_last_error());
    CHECK(synth_run_epochs(t2, 1) == SF_OK, "1 more epoch");
    CHECK(!memcmp(sf_flow_params(f1), sf_flow_params(f2), np * sizeof(float)),
          "resumed training is bit-identical to uninterrupted training");
    const double *h1, *h2;
    CHECK(sf_flow_history(f1, &h1) == 2 && sf_flow_history(f2, &h2) == 2 && h1[2 * 5 - 3] == h2[2 * 5 - 3],
          "history continues across the resume");
    /* a MAF checkpoint does not resume an NSF trainer */
    {
        sf_flow_config mc = {SF_FLOW_MAF, 3, 2, 3, 12, 9, SF_FLOW_THETA_IDENTITY};
        sf_flow *fm = NULL;
        sf_flow_trainer *tm = NULL, *tn = NULL;
        sf_flow *fn = NULL;
        sf_flow_alloc(&mc, &fm);
        sf_flow_trainer_alloc(fm, d, &tc, &tm);
        CHECK(sf_flow_trainer_checkpoint(tm, mafck) == SF_OK, "MAF checkpoint written");
        sf_flow_alloc_nsf(&cfg, &nc, &fn);
        sf_flow_trainer_alloc(fn, d, &tc, &tn);
        CHECK(sf_flow_trainer_resume(tn, mafck) == SF_EFORMAT, "MAF checkpoint refused by an NSF trainer: %s", sf_last_error());
        sf_flow_nsf_config nc2 = {6, 2.5};
        sf_flow_trainer_free(tn);
        sf_flow_free(fn);
        sf_flow_alloc_nsf(&cfg, &nc2, &fn);
        sf_flow_trainer_alloc(fn, d, &tc, &tn);
        CHECK(sf_flow_trainer_resume(tn, ckpt) == SF_EFORMAT, "checkpoint with other bins refused: %s", sf_last_error());
        sf_flow_trainer_free(tn);
        sf_flow_trainer_free(tm);
        sf_flow_free(fn);
        sf_flow_free(fm);
    }
    sf_flow_trainer_finish(t1);

    /* round trip */
    CHECK(sf_flow_save(f1, model) == SF_OK, "save: %s", sf_last_error());
    sf_flow *g = NULL;
    CHECK(sf_flow_load(model, &g) == SF_OK, "load: %s", sf_last_error());
    if (g) {
        sf_flow_nsf_config gc;
        sf_flow_get_nsf_config(g, &gc);
        const sf_flow_config *c = sf_flow_get_config(g);
        CHECK(c->family == SF_FLOW_NSF && c->K == 3 && c->H == 12 && gc.bins == 5 && gc.tail_bound == 2.5 &&
                  sf_flow_n_params(g) == np,
              "family, sizes, bins and tail bound restored");
        CHECK(!memcmp(sf_flow_params(g), sf_flow_params(f1), np * sizeof(float)), "weights restored");
        sf_flow_prepare(g); /* sf_flow_params marks a flow unprepared */
        sf_flow_prepare(f1);
        double lq1[200], lq2[200];
        CHECK(sf_flow_logq(f1, 200, d->theta, d->x, lq1, 2) == SF_OK && sf_flow_logq(g, 200, d->theta, d->x, lq2, 1) == SF_OK,
              "log q of both");
        CHECK(!memcmp(lq1, lq2, sizeof lq1) && isfinite(lq1[0]), "loaded model: bit-identical log q");
        double s1[300 * 3], s2[300 * 3];
        CHECK(sf_flow_sample(f1, 1, d->x, 300, 77, NULL, NULL, 0, s1, NULL, NULL, NULL, 2) == SF_OK &&
                  sf_flow_sample(g, 1, d->x, 300, 77, NULL, NULL, 0, s2, NULL, NULL, NULL, 1) == SF_OK,
              "sampling both");
        CHECK(!memcmp(s1, s2, sizeof s1) && isfinite(s1[0]), "loaded model: bit-identical samples for a fixed seed");
        sf_flow_free(g);
    }
    hid_t fh = H5Fopen(model, H5F_ACC_RDONLY, H5P_DEFAULT);
    char fam[32] = "";
    long long bins = 0;
    sf_h5_attr_get_string(fh, ".", "flow", fam, sizeof fam);
    sf_h5_attr_get_long(fh, "arch", "bins", &bins);
    CHECK(!strcmp(fam, "nsf") && bins == 5 && !sf_h5_exists(fh, "weights/bn_running"), "file: flow = nsf, arch bins = 5, no BN");
    H5Fclose(fh);

    /* CLI */
    const char *bin = tu_cli();
    snprintf(cmd, sizeof cmd,
             "%s train --data %s --out %s --flow nsf --blocks 2 --hidden 16 --bins 6 --tail-bound 3.5 --batch 64 "
             "--max-epochs 2 --threads 1 2>&1",
             bin, data, model);
    int rc = tu_run(cmd, out, sizeof out);
    CHECK(rc == 0 && strstr(out, "NSF K=2 H=16 bins=6") && strstr(out, "epoch    2"), "train --flow nsf 2 epochs (rc %d)", rc);
    snprintf(cmd, sizeof cmd,
             "%s train --data %s --out %s --flow nsf --blocks 2 --hidden 16 --bins 6 --tail-bound 3.5 --batch 64 "
             "--max-epochs 3 --threads 2 --resume 2>&1",
             bin, data, model);
    rc = tu_run(cmd, out, sizeof out);
    CHECK(rc == 0 && strstr(out, "resumed after epoch 2") && strstr(out, "epoch    3"), "--resume continues at epoch 3 (rc %d)",
          rc);
    g = NULL;
    CHECK(sf_flow_load(model, &g) == SF_OK && sf_flow_history(g, NULL) == 3, "model has 3 history rows");
    if (g) {
        sf_flow_nsf_config gc;
        sf_flow_get_nsf_config(g, &gc);
        CHECK(gc.bins == 6 && gc.tail_bound == 3.5, "CLI hyper-parameters stored");
    }
    sf_flow_free(g);
    snprintf(cmd, sizeof cmd, "%s logprob --model %s --data %s 2>&1", bin, model, data);
    rc = tu_run(cmd, out, sizeof out);
    double mlq = 0;
    const char *p = strstr(out, "mean log q = ");
    CHECK(rc == 0 && p && sscanf(p, "mean log q = %lf", &mlq) == 1 && mlq > -10 && mlq < 5, "logprob: mean log q = %g", mlq);
    snprintf(cmd, sizeof cmd, "%s sample --model %s --x 0.5,0.5 --n 500 --seed 3 2>&1", bin, model);
    rc = tu_run(cmd, out, sizeof out);
    int lines = 0;
    for (char *s = out; *s; s++) lines += *s == '\n';
    CHECK(rc == 0 && lines == 503 && strstr(out, "acceptance fraction") && strstr(out, "# units: "),
          "sample prints 500 rows + names, units and trailer lines (%d lines)", lines);
    snprintf(cmd, sizeof cmd, "%s train --data %s --out %s --flow nsf --bins 65 2>&1", bin, data, model);
    CHECK(tu_run(cmd, out, sizeof out) == 2, "--bins 65 is a usage error");
    snprintf(cmd, sizeof cmd, "%s train --data %s --out %s --flow xyz 2>&1", bin, data, model);
    CHECK(tu_run(cmd, out, sizeof out) == 2 && strstr(out, "nsf"), "unknown --flow lists maf, nsf");

    sf_flow_trainer_free(t1);
    sf_flow_trainer_free(t2);
    sf_flow_trainer_free(t3);
    sf_flow_free(f1);
    sf_flow_free(f2);
    sf_flow_free(f3);
    sf_flow_data_free(d);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) return 1;
    return tu_finish("test_nsf_io");
}
