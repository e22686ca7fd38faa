/*
 * Flow model files (HDF5; layout in docs/FLOW.md "File format") and
 * training-set loading.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flow/flow_impl.h"
#include "flow/nsf.h"
#include "io/h5util.h"

#define TRY(x)                  \
    do {                        \
        if ((st = (x))) goto done; \
    } while (0)

sf_status sf_flow_write_h5(const sf_flow *f, hid_t file)
{
    sf_status st = SF_OK;
    hid_t g = -1;
    const size_t D = (size_t)f->D, C = (size_t)f->C, K = (size_t)f->K;
    TRY(sf_h5_attr_set_long(file, ".", "format_version", SF_FLOW_FORMAT_VERSION));
    TRY(sf_h5_attr_set_string(file, ".", "format", "sedflow conditional flow"));
    TRY(sf_h5_attr_set_string(file, ".", "flow", f->nsf ? "nsf" : "maf"));
    TRY(sf_h5_attr_set_string(file, ".", "sedflow_version", SEDFLOW_VERSION));
    TRY(sf_h5_group(file, "arch", &g));
    H5Gclose(g);
    g = -1;
    TRY(sf_h5_attr_set_long(file, "arch", "D", f->D));
    TRY(sf_h5_attr_set_long(file, "arch", "C", f->C));
    TRY(sf_h5_attr_set_long(file, "arch", "K", f->K));
    TRY(sf_h5_attr_set_long(file, "arch", "H", f->H));
    TRY(sf_h5_attr_set_long(file, "arch", "n_params", (long long)f->n_params));
    TRY(sf_h5_attr_set_long(file, "arch", "seed", (long long)f->cfg.seed));
    TRY(sf_h5_attr_set_string(file, "arch", "activation", "tanh"));
    TRY(sf_h5_attr_set_string(file, "arch", "theta_map",
                              f->cfg.theta_map == SF_FLOW_THETA_LOGIT ? "logit" : "identity"));
    if (f->nsf) {
        TRY(sf_h5_attr_set_long(file, "arch", "n_hidden_layers", 2));
        TRY(sf_h5_attr_set_long(file, "arch", "bins", f->nsf->bins));
        TRY(sf_h5_attr_set_double(file, "arch", "tail_bound", f->nsf->tail));
        TRY(sf_h5_attr_set_double(file, "arch", "min_bin_width", SF_NSF_MIN_BIN));
        TRY(sf_h5_attr_set_double(file, "arch", "min_bin_height", SF_NSF_MIN_BIN));
        TRY(sf_h5_attr_set_double(file, "arch", "min_derivative", SF_NSF_MIN_DERIV));
        long long nid[4096];
        size_t nk = K;
        if (K > 4096) return SF_ERROR(SF_EINVAL, "K = %zu too large", K);
        for (size_t k = 0; k < K; k++) nid[k] = f->nsf->n_id[k];
        TRY(sf_h5_write_int64(file, "arch/n_identity", 1, &nk, nid, 0));
    } else {
        TRY(sf_h5_attr_set_long(file, "arch", "n_blocks", SF_MAF_NBLOCKS));
        TRY(sf_h5_attr_set_double(file, "arch", "bn_eps", SF_MAF_BN_EPS));
        TRY(sf_h5_attr_set_double(file, "arch", "bn_momentum", SF_MAF_BN_MOMENTUM));
        TRY(sf_h5_attr_set_double(file, "arch", "scale_eps", SF_MAF_SCALE_EPS));
    }
    {
        long long *pp = malloc(K * D * sizeof(long long));
        if (!pp) return SF_ERROR(SF_ENOMEM, "out of memory");
        for (size_t i = 0; i < K * D; i++) pp[i] = f->perm[i];
        size_t dims[2] = {K, D};
        st = sf_h5_write_int64(file, "arch/perm", 2, dims, pp, K);
        free(pp);
        if (st) goto done;
    }
    TRY(sf_h5_group(file, "weights", &g));
    H5Gclose(g);
    g = -1;
    {
        size_t n1 = f->n_params, n2 = f->n_bn;
        /* every array one checksummed chunk (sf_h5_write_*): corruption is an error on load */
        TRY(sf_h5_write_float(file, "weights/params", 1, &n1, f->params, n1));
        if (!f->nsf) TRY(sf_h5_write_float(file, "weights/bn_running", 1, &n2, f->bn_run, n2));
    }
    TRY(sf_h5_group(file, "zscore", &g));
    H5Gclose(g);
    g = -1;
    TRY(sf_h5_write_double(file, "zscore/theta_mean", 1, &D, f->theta_mean, D));
    TRY(sf_h5_write_double(file, "zscore/theta_std", 1, &D, f->theta_std, D));
    if (C > 0) {
        TRY(sf_h5_write_double(file, "zscore/x_mean", 1, &C, f->x_mean, C));
        TRY(sf_h5_write_double(file, "zscore/x_std", 1, &C, f->x_std, C));
    }
    TRY(sf_h5_group(file, "prior", &g));
    H5Gclose(g);
    g = -1;
    TRY(sf_h5_write_double(file, "prior/lower", 1, &D, f->lower, D));
    TRY(sf_h5_write_double(file, "prior/upper", 1, &D, f->upper, D));
    TRY(sf_h5_group(file, "names", &g));
    H5Gclose(g);
    g = -1;
    TRY(sf_h5_attr_set_string(file, "names", "theta_names", f->theta_names));
    TRY(sf_h5_attr_set_string(file, "names", "theta_units", f->theta_units));
    TRY(sf_h5_attr_set_string(file, "names", "x_names", f->x_names));
    TRY(sf_h5_attr_set_string(file, "names", "x_units", f->x_units));
    TRY(sf_h5_group(file, "training", &g));
    H5Gclose(g);
    g = -1;
    TRY(sf_h5_attr_set_long(file, "training", "n_train", f->meta_n_train));
    TRY(sf_h5_attr_set_long(file, "training", "n_val", f->meta_n_val));
    TRY(sf_h5_attr_set_long(file, "training", "batch", f->meta_batch));
    TRY(sf_h5_attr_set_long(file, "training", "best_epoch", f->meta_best_epoch));
    TRY(sf_h5_attr_set_double(file, "training", "lr", f->meta_lr));
    TRY(sf_h5_attr_set_double(file, "training", "best_val_logq", f->meta_best_val));
    TRY(sf_h5_attr_set_double(file, "training", "seconds", f->meta_seconds));
    TRY(sf_h5_attr_set_string(file, "training", "stop", f->meta_stop));
    TRY(sf_h5_attr_set_string(file, "training", "history_columns",
                              "epoch,train_logq,val_logq,seconds,samples_per_s"));
    if (f->n_hist > 0) {
        size_t dims[2] = {f->n_hist, SF_FLOW_HIST_COLS};
        TRY(sf_h5_write_double(file, "training/history", 2, dims, f->hist, 0));
    }
done:
    if (g >= 0) H5Gclose(g);
    return st;
}

sf_status sf_flow_save(const sf_flow *f, const char *path)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) return SF_ERROR(SF_EINVAL, "path too long");
    hid_t file;
    sf_status st = sf_h5_create(tmp, &file);
    if (st) return st;
    st = sf_flow_write_h5(f, file);
    if (H5Fclose(file) < 0 && !st) st = SF_ERROR(SF_EIO, "cannot close '%s'", tmp);
    if (!st && rename(tmp, path) != 0) st = SF_ERROR(SF_EIO, "cannot rename '%s' to '%s'", tmp, path);
    if (st) remove(tmp);
    return st;
}

sf_status sf_flow_read_h5(hid_t file, const char *path, sf_flow **out)
{
    *out = NULL;
    long long ver = 0, D, C, K, H, nb, seed;
    char s[256];
    if (sf_h5_attr_get_string(file, ".", "format", s, sizeof s) || strcmp(s, "sedflow conditional flow"))
        return SF_ERROR(SF_EFORMAT, "'%s' is not a sedflow flow model (its root attribute 'format' is not "
                                    "'sedflow conditional flow'; a model is written by 'sedflow train')", path);
    if (sf_h5_attr_get_long(file, ".", "format_version", &ver))
        return SF_ERROR(SF_EFORMAT, "'%s' is not a sedflow flow model (no format_version attribute)", path);
    if (ver != SF_FLOW_FORMAT_VERSION && ver != 1)
        return SF_ERROR(SF_EFORMAT,
                        "'%s' has model format version %lld; this sedflow reads versions 1 to %d (retrain the model)",
                        path, ver, SF_FLOW_FORMAT_VERSION);
    if (sf_h5_attr_get_string(file, ".", "flow", s, sizeof s)) {
        char why[256];
        snprintf(why, sizeof why, "%s", sf_last_error()); /* SF_ERROR rewrites that buffer */
        return SF_ERROR(SF_EFORMAT, "'%s': cannot read its root attribute 'flow' (%s)", path, why);
    }
    if (strcmp(s, "maf") && strcmp(s, "nsf")) return SF_ERROR(SF_EFORMAT, "'%s': unknown flow family '%s'", path, s);
    const int is_nsf = !strcmp(s, "nsf");
    sf_status st = SF_OK;
    sf_flow *f = NULL;
    long long *pp = NULL;
    TRY(sf_h5_attr_get_long(file, "arch", "D", &D));
    TRY(sf_h5_attr_get_long(file, "arch", "C", &C));
    TRY(sf_h5_attr_get_long(file, "arch", "K", &K));
    TRY(sf_h5_attr_get_long(file, "arch", "H", &H));
    TRY(sf_h5_attr_get_long(file, "arch", "seed", &seed));
    sf_flow_theta_map map = SF_FLOW_THETA_IDENTITY; /* version 1: always the identity */
    if (ver >= 2) {
        TRY(sf_h5_attr_get_string(file, "arch", "theta_map", s, sizeof s));
        if (!strcmp(s, "logit")) map = SF_FLOW_THETA_LOGIT;
        else if (strcmp(s, "identity")) {
            st = SF_ERROR(SF_EFORMAT, "'%s': unknown arch/theta_map '%s'", path, s);
            goto done;
        }
    }
    if (D < 1 || D > 1000 || C < 0 || C > 1024 || K < 1 || K > 4096 || H < 1 || H > 1000000) {
        st = SF_ERROR(SF_EFORMAT, "'%s': bad sizes D=%lld C=%lld K=%lld H=%lld", path, D, C, K, H);
        goto done;
    }
    if (is_nsf) {
        long long bins = 0, nl = 0;
        double tail = 0;
        TRY(sf_h5_attr_get_long(file, "arch", "n_hidden_layers", &nl));
        TRY(sf_h5_attr_get_long(file, "arch", "bins", &bins));
        TRY(sf_h5_attr_get_double(file, "arch", "tail_bound", &tail));
        if (nl != 2) {
            st = SF_ERROR(SF_EFORMAT, "'%s': %lld conditioner hidden layers, expected 2", path, nl);
            goto done;
        }
        sf_flow_config cfg = {SF_FLOW_NSF, (int)D, (int)C, (int)K, (int)H, (uint64_t)seed, map};
        sf_flow_nsf_config nc = {(int)bins, tail};
        if (bins < 1 || !(tail > 0)) {
            st = SF_ERROR(SF_EFORMAT, "'%s': bad NSF bins %lld or tail bound %g", path, bins, tail);
            goto done;
        }
        TRY(sf_flow_alloc_nsf(&cfg, &nc, &f));
        long long *nid = NULL;
        TRY(sf_h5_read_int64(file, "arch/n_identity", (size_t)K, &nid, NULL));
        for (long long k = 0; k < K && !st; k++)
            if (nid[k] != f->nsf->n_id[k])
                st = SF_ERROR(SF_EFORMAT, "'%s': arch/n_identity[%lld] = %lld, expected %d", path, k, nid[k],
                              f->nsf->n_id[k]);
        free(nid);
        if (st) goto done;
    } else {
        TRY(sf_h5_attr_get_long(file, "arch", "n_blocks", &nb));
        if (nb != SF_MAF_NBLOCKS) {
            st = SF_ERROR(SF_EFORMAT, "'%s': %lld MADE blocks, expected %d", path, nb, SF_MAF_NBLOCKS);
            goto done;
        }
        sf_flow_config cfg = {SF_FLOW_MAF, (int)D, (int)C, (int)K, (int)H, (uint64_t)seed, map};
        TRY(sf_flow_alloc(&cfg, &f));
    }
    if (sf_h5_read_float_into(file, "weights/params", f->n_params, f->params) ||
        (!is_nsf && sf_h5_read_float_into(file, "weights/bn_running", f->n_bn, f->bn_run))) {
        char why[256];
        snprintf(why, sizeof why, "%s", sf_last_error());
        st = SF_ERROR(SF_EFORMAT, "'%s': cannot read the weights: the file is corrupted or truncated (%s)", path, why);
        goto done;
    }
    /* a NaN weight would pass through the clamped tanh as +-1 and give
     * plausible, wrong posteriors: refuse it here */
    for (size_t i = 0; i < f->n_params; i++)
        if (!isfinite(f->params[i])) {
            st = SF_ERROR(SF_EFORMAT, "'%s': weights/params[%zu] = %g is not finite", path, i, f->params[i]);
            goto done;
        }
    for (size_t i = 0; i < f->n_bn; i++) {
        const int is_var = (int)(i / (size_t)H % 2); /* per BN layer: H means, then H variances */
        if (!isfinite(f->bn_run[i]) || (is_var && f->bn_run[i] < 0)) {
            st = SF_ERROR(SF_EFORMAT, "'%s': weights/bn_running[%zu] = %g is not a finite %s", path, i,
                          f->bn_run[i], is_var ? "variance >= 0" : "mean");
            goto done;
        }
    }
    TRY(sf_h5_read_int64(file, "arch/perm", (size_t)(K * D), &pp, NULL));
    for (long long k = 0; k < K; k++) {
        int seen[1024] = {0};
        for (long long i = 0; i < D; i++) {
            long long p = pp[k * D + i];
            if (p < 0 || p >= D || seen[p]++) {
                st = SF_ERROR(SF_EFORMAT, "'%s': arch/perm row %lld is not a permutation", path, k);
                goto done;
            }
            f->perm[k * D + i] = (int)p;
        }
    }
    {
        double *tm = malloc(sizeof(double) * (size_t)D), *ts = malloc(sizeof(double) * (size_t)D);
        double *xm = malloc(sizeof(double) * (size_t)(C + 1)), *xs = malloc(sizeof(double) * (size_t)(C + 1));
        if (!tm || !ts || !xm || !xs) st = SF_ERROR(SF_ENOMEM, "out of memory");
        if (!st) st = sf_h5_read_double_into(file, "zscore/theta_mean", (size_t)D, tm);
        if (!st) st = sf_h5_read_double_into(file, "zscore/theta_std", (size_t)D, ts);
        if (!st && C > 0) st = sf_h5_read_double_into(file, "zscore/x_mean", (size_t)C, xm);
        if (!st && C > 0) st = sf_h5_read_double_into(file, "zscore/x_std", (size_t)C, xs);
        if (!st) st = sf_flow_put_zscore(f, tm, ts, C ? xm : NULL, C ? xs : NULL);
        free(tm); free(ts); free(xm); free(xs);
        if (st) goto done;
    }
    TRY(sf_h5_read_double_into(file, "prior/lower", (size_t)D, f->lower));
    TRY(sf_h5_read_double_into(file, "prior/upper", (size_t)D, f->upper));
    const char *why;
    const int bad = sf_flow_box_bad((int)D, f->lower, f->upper, map == SF_FLOW_THETA_LOGIT, &why);
    if (bad >= 0) {
        st = SF_ERROR(SF_EFORMAT, "'%s': prior box of parameter %d is [%g, %g]: %s", path, bad, f->lower[bad],
                      f->upper[bad], why);
        goto done;
    }
    sf_flow_set_prior(f, NULL, NULL); /* derived constants */
    sf_h5_attr_get_string(file, "names", "theta_names", f->theta_names, SF_FLOW_NAME_LEN);
    sf_h5_attr_get_string(file, "names", "theta_units", f->theta_units, SF_FLOW_NAME_LEN);
    sf_h5_attr_get_string(file, "names", "x_names", f->x_names, SF_FLOW_NAME_LEN);
    sf_h5_attr_get_string(file, "names", "x_units", f->x_units, SF_FLOW_NAME_LEN);
    char *nm[4] = {f->theta_names, f->theta_units, f->x_names, f->x_units};
    for (int i = 0; i < 4; i++) /* a newline would end a '#' header line of sample's output */
        for (char *c = nm[i]; *c; c++)
            if ((unsigned char)*c < 0x20) *c = ' ';
    sf_h5_attr_get_long(file, "training", "n_train", &f->meta_n_train);
    sf_h5_attr_get_long(file, "training", "n_val", &f->meta_n_val);
    sf_h5_attr_get_long(file, "training", "batch", &f->meta_batch);
    sf_h5_attr_get_long(file, "training", "best_epoch", &f->meta_best_epoch);
    sf_h5_attr_get_double(file, "training", "lr", &f->meta_lr);
    sf_h5_attr_get_double(file, "training", "best_val_logq", &f->meta_best_val);
    sf_h5_attr_get_double(file, "training", "seconds", &f->meta_seconds);
    sf_h5_attr_get_string(file, "training", "stop", f->meta_stop, sizeof f->meta_stop);
    sf_error_clear();
    if (sf_h5_exists(file, "training/history")) {
        double *h = NULL;
        size_t nh = 0;
        TRY(sf_h5_read_double(file, "training/history", 0, &h, &nh));
        for (size_t i = 0; i + SF_FLOW_HIST_COLS <= nh && !st; i += SF_FLOW_HIST_COLS) st = sf_flow_hist_push(f, h + i);
        free(h);
        if (st) goto done;
    }
    sf_flow_prepare(f);
done:
    free(pp);
    if (st) {
        sf_flow_free(f);
        return st;
    }
    *out = f;
    return SF_OK;
}

sf_status sf_flow_load(const char *path, sf_flow **out)
{
    *out = NULL;
    hid_t file;
    sf_status st = sf_h5_open_read(path, &file);
    if (st) return st;
    /* a checkpoint has the model's layout plus /trainer, but its /weights are
     * the last epoch's, not the best, and it has no /support */
    if (sf_h5_exists(file, "trainer"))
        st = SF_ERROR(SF_EFORMAT,
                      "'%s' is a training checkpoint (for sedflow train --resume), not a model: its weights are "
                      "the last epoch's, not the best; give the model file written by sedflow train",
                      path);
    else
        st = sf_flow_read_h5(file, path, out);
    H5Fclose(file);
    return st;
}

/* ---- training sets ----------------------------------------------------- */

void sf_flow_data_rows(const sf_flow_data *d, const size_t *idx, size_t n, double *theta, double *x)
{
    const size_t D = (size_t)d->D, C = (size_t)d->C;
    for (size_t i = 0; i < n; i++) {
        memcpy(theta + i * D, d->theta + idx[i] * D, D * sizeof(double));
        if (C) memcpy(x + i * C, d->x + idx[i] * C, C * sizeof(double));
    }
}

void sf_flow_data_free(sf_flow_data *d)
{
    if (!d) return;
    free(d->theta);
    free(d->x);
    free(d->lower);
    free(d->upper);
    free(d);
}

/* Column names and units of dataset `ds`: the attribute `names`, else
 * `column_names` (what sedflow simulate writes); `units` unless it only
 * points at the names ("see column_names"), then none. */
static void read_names(hid_t file, const char *ds, char names[SF_FLOW_NAME_LEN], char units[SF_FLOW_NAME_LEN])
{
    if (sf_h5_attr_get_string(file, ds, "names", names, SF_FLOW_NAME_LEN))
        sf_h5_attr_get_string(file, ds, "column_names", names, SF_FLOW_NAME_LEN);
    if (sf_h5_attr_get_string(file, ds, "units", units, SF_FLOW_NAME_LEN) || !strncmp(units, "see ", 4)) units[0] = 0;
}

sf_status sf_flow_data_load(const char *path, sf_flow_data **out)
{
    *out = NULL;
    hid_t file;
    sf_status st = sf_h5_open_read(path, &file);
    if (st) return st;
    sf_flow_data *d = calloc(1, sizeof *d);
    if (!d) {
        H5Fclose(file);
        return SF_ERROR(SF_ENOMEM, "out of memory");
    }
    int r1, r2;
    size_t d1[4], d2[4];
    TRY(sf_h5_shape(file, "theta_u", &r1, d1));
    TRY(sf_h5_shape(file, "x", &r2, d2));
    if (r1 != 2 || r2 != 2 || d1[0] != d2[0] || d1[0] < 1) {
        st = SF_ERROR(SF_EFORMAT, "'%s': theta_u and x must be n x D and n x C with the same n", path);
        goto done;
    }
    d->n = d1[0];
    d->D = (int)d1[1];
    d->C = (int)d2[1];
    TRY(sf_h5_read_double(file, "theta_u", d->n * d1[1], &d->theta, NULL));
    TRY(sf_h5_read_double(file, "x", d->n * d2[1], &d->x, NULL));
    d->lower = malloc(sizeof(double) * d1[1]);
    d->upper = malloc(sizeof(double) * d1[1]);
    if (!d->lower || !d->upper) {
        st = SF_ERROR(SF_ENOMEM, "out of memory");
        goto done;
    }
    TRY(sf_h5_read_double_into(file, "prior/lower", d1[1], d->lower));
    TRY(sf_h5_read_double_into(file, "prior/upper", d1[1], d->upper));
    const char *why; /* a model trained on an empty box would be refused on load */
    const int bad = sf_flow_box_bad((int)d1[1], d->lower, d->upper, 0, &why);
    if (bad >= 0) {
        st = SF_ERROR(SF_EFORMAT, "'%s': prior box of parameter %d is [%g, %g]: %s", path, bad, d->lower[bad],
                      d->upper[bad], why);
        goto done;
    }
    for (size_t i = 0; i < d->n * d1[1]; i++)
        if (!isfinite(d->theta[i])) {
            st = SF_ERROR(SF_EFORMAT, "'%s': theta_u row %zu not finite", path, i / d1[1]);
            goto done;
        }
    for (size_t i = 0; i < d->n * d2[1]; i++)
        if (!isfinite(d->x[i])) {
            st = SF_ERROR(SF_EFORMAT, "'%s': x row %zu not finite", path, i / d2[1]);
            goto done;
        }
    read_names(file, "theta_u", d->theta_names, d->theta_units);
    read_names(file, "x", d->x_names, d->x_units);
    sf_error_clear();
done:
    H5Fclose(file);
    if (st) {
        sf_flow_data_free(d);
        return st;
    }
    *out = d;
    return SF_OK;
}
