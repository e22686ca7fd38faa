/*
 * The training-data support used by the out-of-support checks (SEDflow
 * Appendix A): the redshift range and the 0.1th percentile of each adjacent
 * colour of the training magnitudes, stored as the group /support of a flow
 * model file.  (The quantiles: infer_quantile.c.)
 */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/h5util.h"
#include "sedflow/infer.h"
#include "sedflow/sim.h"

static const char *COLOUR_NAMES = "u-g,g-r,r-i,i-z";

sf_status sf_infer_colour_limits(const char *sim_path, double q, double colour_min[SF_INFER_NCOLOUR], size_t *n_rows)
{
    if (!(q > 0 && q < 1)) return SF_ERROR(SF_EINVAL, "colour quantile %g outside (0, 1)", q);
    hid_t f;
    sf_status st = sf_h5_open_read(sim_path, &f);
    if (st) return st;
    int rank;
    size_t dims[4];
    double *mag = NULL, *col = NULL;
    st = sf_h5_shape(f, "mag", &rank, dims);
    if (!st && (rank != 2 || dims[1] != SF_CATALOG_NBANDS || dims[0] < 2))
        st = SF_ERROR(SF_EFORMAT, "%s: dataset 'mag' must be n x 5 with n >= 2 (a sedflow simulation file)", sim_path);
    if (!st) st = sf_h5_read_double(f, "mag", dims[0] * dims[1], &mag, NULL);
    H5Fclose(f);
    if (st) return st;
    size_t n = dims[0], m = 0;
    col = malloc(n * sizeof(double));
    if (!col) {
        free(mag);
        return SF_ERROR(SF_ENOMEM, "out of memory for %zu colours", n);
    }
    for (int c = 0; c < SF_INFER_NCOLOUR; c++) {
        m = 0;
        for (size_t i = 0; i < n; i++) {
            const double *r = mag + i * SF_CATALOG_NBANDS;
            int ok = 1;
            for (int b = 0; b < SF_CATALOG_NBANDS; b++) ok &= isfinite(r[b]) != 0;
            if (ok) col[m++] = r[c] - r[c + 1];
        }
        if (m < 2) {
            free(mag);
            free(col);
            return SF_ERROR(SF_EFORMAT, "%s: fewer than 2 rows with finite magnitudes", sim_path);
        }
        sf_infer_quantiles(col, m, &q, 1, &colour_min[c]);
    }
    if (n_rows) *n_rows = m;
    free(mag);
    free(col);
    return SF_OK;
}

sf_status sf_infer_support_from_sim(const char *sim_path, double q, sf_infer_support *s)
{
    memset(s, 0, sizeof *s);
    size_t n = 0;
    sf_status st = sf_infer_colour_limits(sim_path, q, s->colour_min, &n);
    if (st) return st;
    hid_t f;
    if ((st = sf_h5_open_read(sim_path, &f))) return st;
    st = sf_h5_attr_get_double(f, ".", "z_min", &s->z_min);
    if (!st) st = sf_h5_attr_get_double(f, ".", "z_max", &s->z_max);
    H5Fclose(f);
    if (st) return SF_ERROR(SF_EFORMAT, "%s: root attributes z_min/z_max missing (not a sedflow simulation?)", sim_path);
    s->has_colour = 1;
    s->colour_quantile = q;
    s->n_rows = (long long)n;
    const char *base = strrchr(sim_path, '/');
    snprintf(s->source, sizeof s->source, "simulation %s: %zu rows, z in [%g, %g], colour quantile %g",
             base ? base + 1 : sim_path, n, s->z_min, s->z_max, q);
    return SF_OK;
}

sf_status sf_infer_support_write(const char *model_path, const sf_infer_support *s)
{
    sf_h5_quiet();
    hid_t f = H5Fopen(model_path, H5F_ACC_RDWR, H5P_DEFAULT);
    if (f < 0) return SF_ERROR(SF_EIO, "cannot open model file '%s' for writing", model_path);
    sf_status st = SF_OK;
    if (sf_h5_exists(f, "support") && H5Ldelete(f, "support", H5P_DEFAULT) < 0)
        st = SF_ERROR(SF_EIO, "%s: cannot replace /support", model_path);
    hid_t g = -1;
    if (!st) st = sf_h5_group(f, "support", &g);
    if (g >= 0) H5Gclose(g);
    size_t nc = SF_INFER_NCOLOUR;
    if (!st) st = sf_h5_attr_set_double(f, "support", "z_min", s->z_min);
    if (!st) st = sf_h5_attr_set_double(f, "support", "z_max", s->z_max);
    if (!st) st = sf_h5_attr_set_long(f, "support", "has_colour", s->has_colour);
    if (!st) st = sf_h5_attr_set_double(f, "support", "colour_quantile", s->colour_quantile);
    if (!st) st = sf_h5_attr_set_long(f, "support", "n_rows", s->n_rows);
    if (!st) st = sf_h5_attr_set_string(f, "support", "source", s->source);
    if (!st) st = sf_h5_attr_set_string(f, "support", "colour_names", COLOUR_NAMES);
    if (!st) st = sf_h5_write_double(f, "support/colour_min", 1, &nc, s->colour_min, 0);
    if (!st) st = sf_h5_attr_set_string(f, "support/colour_min", "units", "mag");
    if (!st)
        st = sf_h5_attr_set_string(f, "support/colour_min", "description",
                                   "quantile colour_quantile of u-g, g-r, r-i, i-z of the training magnitudes; "
                                   "bluer (smaller) colours are flagged (SEDflow Appendix A)");
    if (H5Fclose(f) < 0 && !st) st = SF_ERROR(SF_EIO, "cannot close '%s'", model_path);
    return st;
}

sf_status sf_infer_support_read(const char *model_path, sf_infer_support *s)
{
    memset(s, 0, sizeof *s);
    hid_t f;
    sf_status st = sf_h5_open_read(model_path, &f);
    if (st) return st;
    if (sf_h5_exists(f, "support")) {
        long long hc = 0;
        st = sf_h5_attr_get_double(f, "support", "z_min", &s->z_min);
        if (!st) st = sf_h5_attr_get_double(f, "support", "z_max", &s->z_max);
        if (!st) st = sf_h5_attr_get_long(f, "support", "has_colour", &hc);
        if (!st) st = sf_h5_attr_get_double(f, "support", "colour_quantile", &s->colour_quantile);
        if (!st) st = sf_h5_attr_get_long(f, "support", "n_rows", &s->n_rows);
        if (!st) st = sf_h5_attr_get_string(f, "support", "source", s->source, sizeof s->source);
        s->has_colour = hc != 0;
        if (!st && s->has_colour)
            st = sf_h5_read_double_into(f, "support/colour_min", SF_INFER_NCOLOUR, s->colour_min);
        H5Fclose(f);
        if (st) return SF_ERROR(SF_EFORMAT, "%s: malformed /support group: %s", model_path, sf_last_error());
        if (!(s->z_max > s->z_min)) return SF_ERROR(SF_EFORMAT, "%s: /support z range [%g, %g] is empty", model_path, s->z_min, s->z_max);
        return SF_OK;
    }
    H5Fclose(f);
    sf_sim_options so;
    sf_sim_options_default(&so);
    s->z_min = so.z_min;
    s->z_max = so.z_max;
    s->has_colour = 0;
    snprintf(s->source, sizeof s->source,
             "model file has no /support group: z range [%g, %g] = the simulator's default U(z_min, z_max) "
             "(SEDflow s3.2); colour check off (add both with 'sedflow infer --model M --add-support TRAIN.h5')",
             s->z_min, s->z_max);
    return SF_OK;
}
