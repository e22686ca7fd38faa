/* sedflow infer with a logit-map flow (flow.h SF_FLOW_THETA_LOGIT), whose
 * draws never leave the prior box: `acceptance` is then the fraction of
 * draws inside the trained range (at least SF_INFER_EDGE_P of the box width
 * from every face), and the leakage flag fires when it is below
 * min_acceptance.  Two small random flows on the SEDflow prior box: one
 * whose logmstar draws sit mid-box (fraction ~1, no flag) and the same flow
 * with logmstar's z-scoring shifted to v = logit(p) = 30 (every draw within
 * 1e-13 of the top face: fraction 0, leakage flag with the trained-range
 * reason, samples still returned and in the box).  `sedflow sample` with
 * such a model (C = 11) and /support warns when z or a colour lies outside
 * the training support, and only then. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sedflow/catalog.h"
#include "sedflow/flow.h"
#include "sedflow/infer.h"
#include "sedflow/model.h"
#include "sedflow/noise.h"
#include "sedflow/prior.h"
#include "test_infer_rows.h"
#include "testutil.h"

#define NGAL 6
#define CSV_PATH "test_infer_logit.csv"

/* A logit-map MAF on the prior box; v_mean0 = z-score mean of logmstar's v. */
static int write_model(const char *path, double v_mean0)
{
    sf_flow_config cfg = {SF_FLOW_MAF, SF_NU, 11, 1, 8, 3, SF_FLOW_THETA_LOGIT};
    sf_flow *f = NULL;
    if (sf_flow_alloc(&cfg, &f)) return -1;
    double tm[SF_NU] = {0}, ts[SF_NU], xm[11], xs[11];
    tm[0] = v_mean0;
    for (int d = 0; d < SF_NU; d++) ts[d] = 1.0;
    for (int c = 0; c < 11; c++) xm[c] = c < 5 ? 17.0 : (c < 10 ? 0.05 : 0.1), xs[c] = c < 5 ? 1.5 : (c < 10 ? 0.03 : 0.05);
    sf_flow_set_prior(f, sf_prior_lower, sf_prior_upper);
    int rc = sf_flow_put_zscore(f, tm, ts, xm, xs) || sf_flow_save(f, path) ? -1 : 0;
    sf_flow_free(f);
    return rc;
}

/* Run the flow pass on the catalog; fills acceptance and flags (NGAL). */
static int run(const char *model, const sf_catalog *cat, double *acc, uint32_t *flags, char reason[][SF_INFER_REASON_LEN],
               int *inbox)
{
    sf_infer_options o;
    sf_infer_options_default(&o);
    o.n_samples = 2000;
    o.nthreads = 2;
    sf_infer *p = NULL;
    sf_infer_input *in = NULL;
    sf_infer_block *b = NULL;
    int rc = -1;
    if (!sf_infer_alloc(model, tu_data_dir(), tu_path(tu_data_dir(), "../models/noise_nsa.h5"), &o, &p) &&
        !sf_infer_prepare(p, cat, &in) && !sf_infer_block_alloc(p, NGAL, &b) && !sf_infer_run_block(p, in, 0, NGAL, b)) {
        *inbox = 1;
        for (int g = 0; g < NGAL; g++) {
            acc[g] = b->acceptance[g];
            flags[g] = b->flags[g];
            memcpy(reason[g], b->reason + (size_t)g * SF_INFER_REASON_LEN, SF_INFER_REASON_LEN);
            const float *lm = b->samples + ((size_t)0 * b->cap + g) * o.n_samples; /* q 0 = logmstar */
            for (size_t k = 0; k < o.n_samples; k++) *inbox &= lm[k] >= sf_prior_lower[0] && lm[k] <= sf_prior_upper[0];
        }
        rc = 0;
    }
    sf_infer_block_free(b);
    sf_infer_input_free(in);
    sf_infer_free(p);
    return rc;
}

int main(void)
{
    sf_model *m = NULL;
    sf_noise *nm = NULL;
    if (sf_model_load(tu_data_dir(), &m) || sf_noise_load(tu_path(tu_data_dir(), "../models/noise_nsa.h5"), &nm)) {
        CHECK(0, "load model data and noise table: %s", sf_last_error());
        return tu_finish("test_infer_logit");
    }
    sf_infer_support sup = {.z_min = 0, .z_max = 0.2};
    sim_good_row rows[NGAL];
    CHECK(sim_good_rows(m, nm, &sup, 0.01, 0.19, 2.0, 0, NGAL, rows) == 0, "simulated %d good galaxies", NGAL);
    FILE *fp = fopen(CSV_PATH, "w");
    if (fp) {
        fprintf(fp, "id,z,flux_u,flux_g,flux_r,flux_i,flux_z,ivar_u,ivar_g,ivar_r,ivar_i,ivar_z\n");
        for (int g = 0; g < NGAL; g++) {
            fprintf(fp, "%d,%.17g", g + 1, rows[g].z);
            for (int b = 0; b < 5; b++) fprintf(fp, ",%.17g", rows[g].flux[b]);
            for (int b = 0; b < 5; b++) fprintf(fp, ",%.17g", rows[g].ivar[b]);
            fprintf(fp, "\n");
        }
        fclose(fp);
    }
    const char *paths[1] = {CSV_PATH};
    sf_catalog *cat = NULL;
    CHECK(fp && sf_catalog_read_csv(paths, 1, NULL, &cat) == SF_OK && cat->n == NGAL, "read the catalog: %s",
          sf_last_error());
    CHECK(write_model("test_infer_logit_mid.h5", 0.0) == 0 && write_model("test_infer_logit_edge.h5", 30.0) == 0,
          "wrote two logit-map models: %s", sf_last_error());
    double acc[NGAL];
    uint32_t fl[NGAL];
    char reason[NGAL][SF_INFER_REASON_LEN];
    int inbox = 0;
    if (cat && run("test_infer_logit_mid.h5", cat, acc, fl, reason, &inbox) == 0) {
        int ok = 1;
        for (int g = 0; g < NGAL; g++) ok &= acc[g] > 0.9 && acc[g] <= 1 && !(fl[g] & SF_INFER_LEAKAGE);
        CHECK(ok, "mid-box flow: fraction inside the trained range > 0.9 (galaxy 1: %.4f), no leakage flag", acc[0]);
        CHECK(inbox, "mid-box flow: every logmstar sample in the prior box");
    } else
        CHECK(0, "infer with the mid-box model: %s", sf_last_error());
    if (cat && run("test_infer_logit_edge.h5", cat, acc, fl, reason, &inbox) == 0) {
        int ok = 1;
        for (int g = 0; g < NGAL; g++)
            ok &= acc[g] == 0 && (fl[g] & SF_INFER_LEAKAGE) && strstr(reason[g], "inside the trained range");
        CHECK(ok, "edge flow: fraction 0, leakage flag, reason '%s'", reason[0]);
        CHECK(inbox, "edge flow: samples still returned, every logmstar in the prior box");
    } else
        CHECK(0, "infer with the edge model: %s", sf_last_error());
    /* sedflow sample: warnings from /support */
    sf_infer_support s2 = {.z_min = 0, .z_max = 0.2, .has_colour = 1, .colour_min = {0.3, -0.1, -0.1, -0.1}};
    snprintf(s2.source, sizeof s2.source, "test");
    CHECK(sf_infer_support_write("test_infer_logit_mid.h5", &s2) == SF_OK, "wrote /support");
    char cmd[1024], out[8192];
    const char *x_ok = "18,17,16.5,16.2,16,0.05,0.02,0.02,0.02,0.03";
    snprintf(cmd, sizeof cmd, "%s sample --model test_infer_logit_mid.h5 --x %s,0.1 --n 3 2>&1", tu_cli(), x_ok);
    CHECK(tu_run(cmd, out, sizeof out) == 0 && !strstr(out, "warning") && strstr(out, "accepted 3"),
          "sample inside the support: 3 draws, no warning");
    snprintf(cmd, sizeof cmd, "%s sample --model test_infer_logit_mid.h5 --x %s,0.5 --n 3 2>&1", tu_cli(), x_ok);
    CHECK(tu_run(cmd, out, sizeof out) == 0 && strstr(out, "# warning") && strstr(out, "redshift 0.5 outside"),
          "sample at z = 0.5: warned (%.80s)", out);
    snprintf(cmd, sizeof cmd, "%s sample --model test_infer_logit_mid.h5 --x 16,17,16.5,16.2,16,0.05,0.02,0.02,0.02,0.03,0.1 --n 3 2>&1",
             tu_cli());
    CHECK(tu_run(cmd, out, sizeof out) == 0 && strstr(out, "colour u-g = -1.000 bluer"), "sample with u-g = -1: warned");
    sf_catalog_free(cat);
    sf_noise_free(nm);
    sf_model_free(m);
    remove(CSV_PATH);
    remove("test_infer_logit_mid.h5");
    remove("test_infer_logit_edge.h5");
    return tu_finish("test_infer_logit");
}
