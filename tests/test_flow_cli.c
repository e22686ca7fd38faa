/* CLI: sedflow train (with checkpoint and --resume), logprob, sample on a
 * small synthetic training file. */
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/h5util.h"
#include "sedflow/flow.h"
#include "test_flow_synth.h"
#include "testutil.h"

int main(void)
{
    char dir[] = "/tmp/sedflow_test_flow_cli_XXXXXX";
    if (!mkdtemp(dir)) return 1;
    char data[256], model[256], cmd[2048];
    static char out[1 << 20];
    snprintf(data, sizeof data, "%s/train.h5", dir);
    snprintf(model, sizeof model, "%s/model.h5", dir);
    synth_model m;
    synth_init(&m, 3, 2, 4);
    CHECK(synth_write(data, &m, 3000, 4) == 0, "wrote training file");
    const char *bin = tu_cli();
    char shipped[512]; /* the shipped default model (tu_path's buffer is reused) */
    snprintf(shipped, sizeof shipped, "%s", tu_path(tu_data_dir(), "../models/sedflow_default.h5"));
    snprintf(cmd, sizeof cmd, "%s train --data %s --out %s --blocks 2 --hidden 16 --batch 64 --max-epochs 2 --threads 1 2>&1",
             bin, data, model);
    int rc = tu_run(cmd, out, sizeof out);
    CHECK(rc == 0 && strstr(out, "epoch    2") && access(model, F_OK) == 0, "train 2 epochs (rc %d)", rc);
    snprintf(cmd, sizeof cmd, "%s train --data %s --out %s --blocks 2 --hidden 16 --batch 64 --max-epochs 3 --threads 1 --resume 2>&1",
             bin, data, model);
    rc = tu_run(cmd, out, sizeof out);
    CHECK(rc == 0 && strstr(out, "resumed after epoch 2") && strstr(out, "epoch    3") && !strstr(out, "epoch    1"),
          "--resume continues at epoch 3 (rc %d)", rc);
    /* SIGINT mid-training: the model is still written */
    char intm[256];
    snprintf(intm, sizeof intm, "%s/interrupted.h5", dir);
    snprintf(cmd, sizeof cmd, "timeout --preserve-status -s INT 2 %s train --data %s --out %s --blocks 2 --hidden 16 "
             "--batch 64 --max-epochs 100000 --patience 100000 --threads 1 2>&1", bin, data, intm);
    rc = tu_run(cmd, out, sizeof out);
    sf_flow *fi = NULL;
    /* (the epoch line says "(partial)" unless the signal came during a validation or checkpoint) */
    CHECK(rc == 0 && strstr(out, "stopped (interrupted); wrote") && sf_flow_load(intm, &fi) == SF_OK,
          "SIGINT: the model is written, exit 0 (rc %d): %.200s", rc,
          strstr(out, "interrupted") ? strstr(out, "interrupted") : out);
    sf_flow_free(fi);
    /* another validation split, or other data of the same size: refused */
    snprintf(cmd, sizeof cmd, "%s train --data %s --out %s --blocks 2 --hidden 16 --batch 64 --max-epochs 4 --threads 1 "
             "--resume --val-frac 0.3 2>&1", bin, data, model);
    rc = tu_run(cmd, out, sizeof out);
    CHECK(rc != 0 && strstr(out, "300 validation rows, not 900"), "--resume with another --val-frac refused: %.200s", out);
    char other[256];
    snprintf(other, sizeof other, "%s/other.h5", dir);
    CHECK(synth_write(other, &m, 3000, 5) == 0, "wrote another training file of the same size");
    snprintf(cmd, sizeof cmd, "%s train --data %s --out %s --blocks 2 --hidden 16 --batch 64 --max-epochs 4 --threads 1 "
             "--resume 2>&1", bin, other, model);
    rc = tu_run(cmd, out, sizeof out);
    CHECK(rc != 0 && strstr(out, "other training data"), "--resume on other data refused: %.200s", out);
    sf_flow *f = NULL;
    CHECK(sf_flow_load(model, &f) == SF_OK && sf_flow_history(f, NULL) == 3, "model has 3 history rows");
    sf_flow_free(f);

    snprintf(cmd, sizeof cmd, "%s logprob --model %s --data %s 2>&1", bin, model, data);
    rc = tu_run(cmd, out, sizeof out);
    double mlq = 0;
    const char *p = strstr(out, "mean log q = ");
    CHECK(rc == 0 && p && sscanf(p, "mean log q = %lf", &mlq) == 1 && mlq > -10 && mlq < 5, "logprob prints mean log q = %g", mlq);
    /* rows outside the model's box ([-20, 20]): the mean is -inf, not the finite rows' mean */
    char wide[256];
    snprintf(wide, sizeof wide, "%s/wide.h5", dir);
    CHECK(synth_write_box(wide, &m, 300, 5, 30, 7) == 0, "wrote a test file with 7 rows outside the model's box");
    snprintf(cmd, sizeof cmd, "%s logprob --model %s --data %s 2>&1", bin, model, wide);
    rc = tu_run(cmd, out, sizeof out);
    double fin = 0;
    p = strstr(out, "finite rows: mean log q = ");
    CHECK(rc == 0 && strstr(out, "mean log q = -inf\n") && strstr(out, "rows with log q = -inf = 7\n") &&
              p && sscanf(p, "finite rows: mean log q = %lf", &fin) == 1 && fin > -10 && fin < 5 &&
              strstr(out, "n = 293") && strstr(out, "7 of 300 rows have no finite log q"),
          "logprob: 7 rows outside the box give mean log q = -inf, then the 293 finite rows' mean %g: %.300s", fin, out);

    snprintf(cmd, sizeof cmd, "%s sample --model %s --x 0.5,0.5 --n 500 --seed 3 2>&1", bin, model);
    rc = tu_run(cmd, out, sizeof out);
    int lines = 0;
    for (char *s = out; *s; s++) lines += *s == '\n';
    CHECK(rc == 0 && lines == 503 && strstr(out, "acceptance fraction"),
          "sample prints 500 rows + names, units and trailer lines (%d lines)", lines);
    CHECK(strstr(out, "# units: kpc,Gyr,dex,mag,-,-,-,-\n") != NULL,
          "sample's header gives the units recorded from the training file");
    snprintf(cmd, sizeof cmd, "%s sample --model %s --x 0.5 --n 5 2>&1", bin, model);
    CHECK(tu_run(cmd, out, sizeof out) == 2, "wrong number of --x values is a usage error");
    snprintf(cmd, sizeof cmd, "%s sample --model %s --x 0.5abc,0.5 --n 5 2>&1", bin, model);
    CHECK(tu_run(cmd, out, sizeof out) == 2 && strstr(out, "value 1 of '0.5abc,0.5' is not a finite number"),
          "a number with trailing text names the value: %.120s", out);
    /* n D 8 bytes wrapped around to 72 and the sampler wrote past them (segfault) */
    snprintf(cmd, sizeof cmd, "%s sample --model %s --x 0.5,0.5 --n 209622091746699451 2>&1", bin, model);
    CHECK(tu_run(cmd, out, sizeof out) == 2 && strstr(out, "too many samples"),
          "--n whose buffer size overflows is a usage error: %.120s", out);
    /* -1 meant "not given" (the default) and a negative seed wrapped around */
    snprintf(cmd, sizeof cmd, "%s train --data %s --out %s/t.h5 --blocks -1 2>&1", bin, data, dir);
    CHECK(tu_run(cmd, out, sizeof out) == 2 && strstr(out, "--blocks -1, --hidden 500: both must be >= 1"),
          "train --blocks -1 is a usage error: %.120s", out);
    snprintf(cmd, sizeof cmd, "%s sample --model %s --x 0.5,0.5 --n 5 --seed -1 2>&1", bin, model);
    CHECK(tu_run(cmd, out, sizeof out) == 2 && strstr(out, "--seed must be >= 0"), "sample --seed -1 is a usage error");
    /* OpenMP crashed on 100,000 threads; 3e9 wrapped when cast to int */
    snprintf(cmd, sizeof cmd, "%s sample --model %s --x 0.5,0.5 --n 5 --threads 100000 2>&1", bin, model);
    CHECK(tu_run(cmd, out, sizeof out) == 2 && strstr(out, "--threads must be 0 (all cores) to 1024"),
          "--threads 100000 is a usage error: %.120s", out);
    snprintf(cmd, sizeof cmd, "%s train --data %s --out %s/t.h5 --threads 3000000000 2>&1", bin, data, dir);
    CHECK(tu_run(cmd, out, sizeof out) == 2 && strstr(out, "--threads must be"), "train --threads 3e9 is a usage error");
    snprintf(cmd, sizeof cmd, "%s train --data %s --out %s/t.h5 --val-frac 1 2>&1", bin, data, dir);
    CHECK(tu_run(cmd, out, sizeof out) == 2 && strstr(out, "--val-frac 1: must be in (0, 1)"),
          "train --val-frac 1 names the option: %.120s", out);
    /* a malformed /support group is reported, not a silent end of the checks */
    {
        char bad[300], cp[900];
        snprintf(bad, sizeof bad, "%s/badsupport.h5", dir);
        snprintf(cp, sizeof cp, "cp %s %s", shipped, bad);
        hid_t fh = system(cp) == 0 ? H5Fopen(bad, H5F_ACC_RDWR, H5P_DEFAULT) : -1;
        const int set = fh >= 0 && sf_h5_attr_set_double(fh, "support", "z_max", -1.0) == SF_OK;
        if (fh >= 0) H5Fclose(fh);
        snprintf(cmd, sizeof cmd, "%s sample --model %s --x 17.5,16.2,15.6,15.3,15.1,0.05,0.01,0.01,0.01,0.02,5 --n 2 2>&1",
                 bin, bad);
        rc = tu_run(cmd, out, sizeof out);
        CHECK(set && rc == 0 && strstr(out, "# warning: ") && strstr(out, "z range [0, -1] is empty; redshift and colours "
                                                                          "not checked"),
              "sample: a malformed /support is a warning in the output: %.200s", out);
    }
    /* a feature far outside the training set (a typo) is a warning: the network saturates */
    snprintf(cmd, sizeof cmd, "%s sample --model %s --x 175,16.2,15.6,15.3,15.1,0.05,0.01,0.01,0.01,0.02,0.05 --n 2 2>&1",
             bin, shipped);
    rc = tu_run(cmd, out, sizeof out);
    CHECK(rc == 0 && strstr(out, "# warning: x outside the training support: x value 1 = 175 lies") &&
              strstr(out, "training standard deviations from the training mean"),
          "sample: u = 175 mag is a warning: %.200s", out);
    /* a SED model's sigmas must be positive */
    snprintf(cmd, sizeof cmd, "%s sample --model %s --x 17.5,16.2,15.6,15.3,15.1,0.05,-0.01,0.01,0.01,0.02,0.05 --n 5 2>&1",
             bin, shipped);
    rc = tu_run(cmd, out, sizeof out);
    CHECK(rc == 2 && strstr(out, "sigma_g = -0.01 mag) must be > 0"), "a negative sigma is a usage error: %.120s", out);
    snprintf(cmd, sizeof cmd, "%s logprob --model %s --data %s 2>&1", bin, data, data);
    CHECK(tu_run(cmd, out, sizeof out) == 1 && strstr(out, "not a sedflow flow model"), "a training file is not a model: %.200s", out);
    struct stat d0, d1;
    stat(data, &d0);
    snprintf(cmd, sizeof cmd, "%s train --data %s --out %s 2>&1", bin, data, data);
    int rc2 = tu_run(cmd, out, sizeof out);
    stat(data, &d1);
    CHECK(rc2 == 2 && strstr(out, "same file") && d1.st_size == d0.st_size && d1.st_mtime == d0.st_mtime,
          "train --out = --data refused, the training set untouched");
    snprintf(cmd, sizeof cmd, "%s train --help", bin);
    CHECK(tu_run(cmd, out, sizeof out) == 0 && strstr(out, "--max-minutes"), "train --help");

    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) return 1;
    return tu_finish("test_flow_cli");
}
