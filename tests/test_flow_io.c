/* Model files and checkpoints: save/load round trip gives bit-identical
 * log q and samples; another format_version is refused with SF_EFORMAT;
 * training 2 epochs straight equals 1 epoch + checkpoint + resume + 1 epoch
 * bit for bit; the learning-rate plateau rule and its checkpoint;
 * training-file loading. */
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
    char dir[] = "/tmp/sedflow_test_flow_io_XXXXXX";
    if (!mkdtemp(dir)) return 1;
    char data[256], model[256], ckpt[256];
    snprintf(data, sizeof data, "%s/train.h5", dir);
    snprintf(model, sizeof model, "%s/model.h5", dir);
    snprintf(ckpt, sizeof ckpt, "%s/ckpt.h5", dir);
    synth_model m;
    synth_init(&m, 3, 2, 3);
    CHECK(synth_write(data, &m, 1200, 3) == 0, "wrote synthetic training file");
    sf_flow_data *d = NULL;
    CHECK(sf_flow_data_load(data, &d) == SF_OK && d->n == 1200 && d->D == 3 && d->C == 2, "data load: %s", sf_last_error());
    if (!d) return tu_finish("test_flow_io");
    CHECK(d->lower[1] == -20 && d->upper[2] == 20 && !strcmp(d->theta_names, "a,b,c,d,e,f,g,h"), "prior box and names read");
    sf_flow_data *bad = NULL;
    CHECK(sf_flow_data_load("/nonexistent.h5", &bad) == SF_EIO && !bad, "missing file: %s", sf_last_error());
    { /* an empty prior box: train would write a model that sf_flow_load refuses */
        char empty[300];
        snprintf(empty, sizeof empty, "%s/emptybox.h5", dir);
        CHECK(synth_write_box(empty, &m, 100, 3, 0, 0) == 0 && sf_flow_data_load(empty, &bad) == SF_EFORMAT && !bad &&
                  strstr(sf_last_error(), "empty or not a number"),
              "a training file with an empty prior box is refused: %s", sf_last_error());
    }
    {   /* sedflow simulate's attributes: column_names, and units that only refer to them */
        char sim[256];
        snprintf(sim, sizeof sim, "%s/sim.h5", dir);
        CHECK(synth_write(sim, &m, 50, 3) == 0, "wrote a second training file");
        hid_t fh = H5Fopen(sim, H5F_ACC_RDWR, H5P_DEFAULT);
        CHECK(fh >= 0 && H5Adelete_by_name(fh, "theta_u", "names", H5P_DEFAULT) >= 0 &&
                  sf_h5_attr_set_string(fh, "theta_u", "column_names", "logmstar,u1,u2") == SF_OK &&
                  sf_h5_attr_set_string(fh, "theta_u", "units", "see column_names") == SF_OK,
              "rewrote its attributes as sedflow simulate writes them");
        if (fh >= 0) H5Fclose(fh);
        CHECK(sf_flow_data_load(sim, &bad) == SF_OK && bad && !strcmp(bad->theta_names, "logmstar,u1,u2") &&
                  bad->theta_units[0] == 0,
              "names from column_names, no units from 'see column_names' ('%s', '%s')", bad ? bad->theta_names : "",
              bad ? bad->theta_units : "");
        sf_flow_data_free(bad);
        bad = NULL;
    }

    sf_flow_config cfg = {SF_FLOW_MAF, 3, 2, 2, 12, 9, SF_FLOW_THETA_IDENTITY};
    sf_flow_train_config tc;
    sf_flow_train_config_default(&tc);
    tc.batch = 64;
    tc.nthreads = 2;
    sf_flow *f1 = NULL, *f2 = NULL;
    sf_flow_trainer *t1 = NULL, *t2 = NULL;
    sf_flow_alloc(&cfg, &f1);
    sf_flow_alloc(&cfg, &f2);
    CHECK(sf_flow_trainer_alloc(f1, d, &tc, &t1) == SF_OK, "trainer 1");
    CHECK(synth_run_epochs(t1, 2) == SF_OK, "2 epochs straight");
    CHECK(sf_flow_trainer_alloc(f2, d, &tc, &t2) == SF_OK, "trainer 2");
    CHECK(synth_run_epochs(t2, 1) == SF_OK && sf_flow_trainer_checkpoint(t2, ckpt) == SF_OK, "1 epoch + checkpoint: %s", sf_last_error());
    sf_flow_trainer_free(t2);
    sf_flow_free(f2);
    sf_flow_alloc(&cfg, &f2);
    sf_flow_trainer_alloc(f2, d, &tc, &t2);
    CHECK(sf_flow_trainer_resume(t2, ckpt) == SF_OK && sf_flow_trainer_epochs(t2) == 1, "resume: %s", sf_last_error());
    {
        sf_flow *fc = NULL;
        CHECK(sf_flow_load(ckpt, &fc) == SF_EFORMAT && !fc && strstr(sf_last_error(), "training checkpoint"),
              "a checkpoint given as a model is refused: %s", sf_last_error());
    }
    CHECK(synth_run_epochs(t2, 1) == SF_OK, "1 more epoch");
    size_t np = sf_flow_n_params(f1);
    CHECK(!memcmp(sf_flow_params(f1), sf_flow_params(f2), np * sizeof(float)) &&
              !memcmp(sf_flow_bn_running(f1), sf_flow_bn_running(f2), 2 * 2 * 2 * 12 * sizeof(float)),
          "resumed training is bit-identical to uninterrupted training");
    const double *h1, *h2;
    CHECK(sf_flow_history(f1, &h1) == 2 && sf_flow_history(f2, &h2) == 2 && h1[2 * 5 - 3] == h2[2 * 5 - 3],
          "history continues across the resume");
    /* learning rate on a plateau: every epoch follows the rule, the rate
     * survives a checkpoint, and Adam's steps use the current rate */
    {
        sf_flow_train_config tp = tc;
        /* steps too small to move a weight, and exact BN statistics from fixed
         * rows: after epoch 1 the validation log q repeats exactly, never an
         * improvement, so the rule fires every epoch down to lr_min */
        tp.lr = 1e-30, tp.precise_bn_rows = 200;
        tp.lr_decay = 0.5, tp.lr_patience = 1, tp.lr_min = 1e-31;
        sf_flow *f3 = NULL, *f4 = NULL;
        sf_flow_trainer *t3 = NULL, *t4 = NULL;
        sf_flow_alloc(&cfg, &f3);
        sf_flow_alloc(&cfg, &f4);
        CHECK(sf_flow_trainer_alloc(f3, d, &tp, &t3) == SF_OK, "plateau trainer");
        double lr = 1e-30;
        int since = 0, decays = 0, rule_ok = 1;
        for (int e = 0; e < 6 && t3; e++) {
            int more = 1, stop;
            sf_flow_epoch_stats es;
            while (more) sf_flow_trainer_step(t3, &more);
            sf_flow_trainer_epoch_end(t3, &es, &stop);
            rule_ok &= es.lr == lr;
            since = es.improved ? 0 : since + 1;
            int decay = since >= 1 && lr > 1e-31;
            if (decay) lr = fmax(0.5 * lr, 1e-31), since = 0, decays++;
            rule_ok &= es.improved == (e == 0) && es.lr_decayed == decay && sf_flow_trainer_lr(t3) == lr;
        }
        CHECK(rule_ok && decays == 4 && lr == 1e-31, "plateau rule: %d decays to lr %g, one after each epoch without "
              "improvement, stopping at lr_min", decays, lr);
        char ck3[300];
        snprintf(ck3, sizeof ck3, "%s/ckpt3.h5", dir);
        CHECK(t3 && sf_flow_trainer_checkpoint(t3, ck3) == SF_OK, "plateau checkpoint");
        int resumed = sf_flow_trainer_alloc(f4, d, &tc, &t4) == SF_OK && sf_flow_trainer_resume(t4, ck3) == SF_OK;
        CHECK(resumed && sf_flow_trainer_lr(t4) == lr, "resume restores the decayed rate (%g), not the configured %g",
              t4 ? sf_flow_trainer_lr(t4) : 0, tc.lr);
        CHECK(t4 && sf_flow_trainer_set_lr(t4, 0) == SF_EINVAL && sf_flow_trainer_set_lr(t4, INFINITY) == SF_EINVAL,
              "rates 0 and inf refused");
        {   /* a checkpoint with an infinite rate is refused, not trained on */
            hid_t fh3 = H5Fopen(ck3, H5F_ACC_RDWR, H5P_DEFAULT);
            CHECK(fh3 >= 0 && sf_h5_attr_set_double(fh3, "trainer", "lr", INFINITY) == SF_OK, "wrote lr = inf");
            if (fh3 >= 0) H5Fclose(fh3);
            sf_flow *f5 = NULL;
            sf_flow_trainer *t5 = NULL;
            sf_flow_alloc(&cfg, &f5);
            CHECK(sf_flow_trainer_alloc(f5, d, &tc, &t5) == SF_OK && sf_flow_trainer_resume(t5, ck3) == SF_EFORMAT,
                  "a checkpoint with lr = inf is refused: %s", sf_last_error());
            sf_flow_trainer_free(t5);
            t5 = NULL;
            sf_flow_train_config tz = tp;
            tz.lr_min = 0; /* decays could reach a rate of 0 */
            CHECK(sf_flow_trainer_alloc(f5, d, &tz, &t5) == SF_EINVAL && !t5, "lr_min 0 with a decay refused: %s",
                  sf_last_error());
            sf_flow_free(f5);
        }
        const size_t n3 = sf_flow_n_params(f4);
        float *p0 = malloc(n3 * sizeof(float));
        double dmax[2] = {0, 0};
        for (int k = 0; k < 2 && t4 && p0; k++) {
            sf_flow_trainer_set_lr(t4, k ? 1e-3 : 1e-30);
            memcpy(p0, sf_flow_params(f4), n3 * sizeof(float));
            int more;
            sf_flow_trainer_step(t4, &more);
            for (size_t i = 0; i < n3; i++) dmax[k] = fmax(dmax[k], fabs(sf_flow_params(f4)[i] - p0[i]));
        }
        CHECK(dmax[0] < 1e-20 && dmax[1] > 1e-5, "a step moves weights by the set rate (max change %.3g at 1e-30, "
              "%.3g at 1e-3)", dmax[0], dmax[1]);
        free(p0);
        sf_flow_trainer_free(t3), sf_flow_trainer_free(t4);
        sf_flow_free(f3), sf_flow_free(f4);
        remove(ck3);
    }
    sf_flow_trainer_finish(t1);

    /* round trip */
    CHECK(sf_flow_save(f1, model) == SF_OK, "save: %s", sf_last_error());
    CHECK(access(model, F_OK) == 0, "model file exists (tmp renamed)");
    sf_flow *g = NULL;
    CHECK(sf_flow_load(model, &g) == SF_OK, "load: %s", sf_last_error());
    if (g) {
        double lq1[200], lq2[200];
        sf_flow_logq(f1, 200, d->theta, d->x, lq1, 2);
        sf_flow_logq(g, 200, d->theta, d->x, lq2, 1);
        CHECK(!memcmp(lq1, lq2, sizeof lq1), "loaded model: bit-identical log q");
        double s1[300 * 3], s2[300 * 3];
        sf_flow_sample(f1, 1, d->x, 300, 77, NULL, NULL, 0, s1, NULL, NULL, NULL, 2);
        sf_flow_sample(g, 1, d->x, 300, 77, NULL, NULL, 0, s2, NULL, NULL, NULL, 2);
        CHECK(!memcmp(s1, s2, sizeof s1), "loaded model: bit-identical samples for a fixed seed");
        double lo[3], hi[3];
        sf_flow_get_prior(g, lo, hi);
        CHECK(lo[0] == -20 && hi[0] == 20 && !strcmp(sf_flow_theta_names(g), "a,b,c,d,e,f,g,h"), "prior and names stored");
        CHECK(sf_flow_history(g, NULL) == 2, "history stored");
        sf_flow_free(g);
    }
    /* a corrupted weight byte: the chunk's Fletcher-32 checksum fails, the load is an error */
    {
        char cpath[300];
        snprintf(cpath, sizeof cpath, "%s/corrupt.h5", dir);
        haddr_t addr = HADDR_UNDEF;
        hsize_t csize = 0;
        g = NULL;
        CHECK(sf_flow_load(model, &g) == SF_OK && g && sf_flow_save(g, cpath) == SF_OK, "wrote a copy of the model");
        sf_flow_free(g);
        hid_t ch = H5Fopen(cpath, H5F_ACC_RDONLY, H5P_DEFAULT);
        hid_t ds = ch >= 0 ? H5Dopen2(ch, "weights/params", H5P_DEFAULT) : -1;
        if (ds >= 0) {
            hid_t sp = H5Dget_space(ds);
            H5Dget_chunk_info(ds, sp, 0, NULL, NULL, &addr, &csize);
            H5Sclose(sp);
        }
        if (ds >= 0) H5Dclose(ds);
        if (ch >= 0) H5Fclose(ch);
        FILE *fp = addr != HADDR_UNDEF && csize > 0 ? fopen(cpath, "r+b") : NULL;
        int c = EOF;
        if (fp && fseek(fp, (long)(addr + csize / 2), SEEK_SET) == 0 && (c = fgetc(fp)) != EOF) {
            fseek(fp, (long)(addr + csize / 2), SEEK_SET);
            fputc(c ^ 0x10, fp);
        }
        if (fp) fclose(fp);
        g = NULL;
        CHECK(c != EOF && sf_flow_load(cpath, &g) != SF_OK && !g, "a flipped bit in the weights is refused on load: %s",
              sf_last_error());
    }
    /* values a valid checksum cannot catch (a hand-edited or badly written
     * file): a NaN weight (the clamped tanh maps it to +-1: plausible, wrong
     * posteriors), a negative BN variance, an empty or a NaN prior box */
    for (int spoil = 0; spoil < 4; spoil++) {
        static const char *what[] = {"is not finite", "is not a finite variance", "empty or not a number",
                                     "empty or not a number"};
        char cpath[300];
        snprintf(cpath, sizeof cpath, "%s/spoil%d.h5", dir, spoil);
        g = NULL;
        CHECK(sf_flow_load(model, &g) == SF_OK && g, "load the model to spoil it");
        if (!g) break;
        double lo[3], hi[3];
        sf_flow_get_prior(g, lo, hi);
        if (spoil == 0) sf_flow_params(g)[17] = NAN;
        if (spoil == 1) sf_flow_bn_running(g)[sf_flow_get_config(g)->H + 3] = -0.5f; /* layer 0's variances follow its H means */
        if (spoil == 2) lo[1] = hi[1];
        if (spoil == 3) hi[2] = NAN;
        sf_flow_set_prior(g, lo, hi);
        CHECK(sf_flow_save(g, cpath) == SF_OK, "saved the spoilt copy %d", spoil);
        sf_flow_free(g);
        g = NULL;
        CHECK(sf_flow_load(cpath, &g) == SF_EFORMAT && !g && strstr(sf_last_error(), what[spoil]),
              "spoilt model %d refused on load: %s", spoil, sf_last_error());
    }
    /* a variable-length UTF-8 string attribute (what h5py writes for a Python
     * str) is read: it came back empty, HDF5 converts no UTF-8 to ASCII; control
     * characters become spaces (a newline broke sample's '#' header) */
    {
        const char *units = "kpc,Gyr,\xc3\xa5ngstr\xc3\xb6m\nX", *read_as = "kpc,Gyr,\xc3\xa5ngstr\xc3\xb6m X";
        hid_t uh = H5Fopen(model, H5F_ACC_RDWR, H5P_DEFAULT), ut = H5Tcopy(H5T_C_S1), us = H5Screate(H5S_SCALAR);
        H5Tset_size(ut, H5T_VARIABLE);
        H5Tset_cset(ut, H5T_CSET_UTF8);
        H5Adelete_by_name(uh, "names", "theta_units", H5P_DEFAULT);
        hid_t ua = H5Acreate_by_name(uh, "names", "theta_units", ut, us, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        herr_t wr = H5Awrite(ua, ut, &units);
        H5Aclose(ua), H5Sclose(us), H5Tclose(ut), H5Fclose(uh);
        g = NULL;
        const sf_status lst = sf_flow_load(model, &g);
        CHECK(wr >= 0 && lst == SF_OK && !strcmp(sf_flow_theta_units(g), read_as),
              "a variable-length UTF-8 units attribute is read (a newline as a space): '%s'",
              g ? sf_flow_theta_units(g) : "");
        sf_flow_free(g);
    }
    /* wrong format version */
    hid_t fh = H5Fopen(model, H5F_ACC_RDWR, H5P_DEFAULT);
    CHECK(fh >= 0 && sf_h5_attr_set_long(fh, ".", "format_version", 0) == SF_OK, "rewrote format_version = 0");
    H5Fclose(fh);
    g = NULL;
    CHECK(sf_flow_load(model, &g) == SF_EFORMAT && !g && strstr(sf_last_error(), "version 0"), "old version refused: %s",
          sf_last_error());
    CHECK(sf_flow_load(data, &g) == SF_EFORMAT && !g, "a training file is not a model: %s", sf_last_error());

    sf_flow_trainer_free(t1);
    sf_flow_trainer_free(t2);
    sf_flow_free(f1);
    sf_flow_free(f2);
    sf_flow_data_free(d);
    remove(data), remove(model), remove(ckpt), rmdir(dir);
    return tu_finish("test_flow_io");
}
