/* Generic HDF5 catalog reader: 1-D datasets of equal length in the root
 * group, named as the CSV columns (sf_catalog_options; matched
 * case-insensitively).  Missing values must be NaN (flagged non-finite). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>

#include "io/catalog_priv.h"
#include "io/h5util.h"

#define NB SF_CATALOG_NBANDS

/* Actual name of the root link matching `want` case-insensitively into
 * buf; 0 if found, -1 if not. */
static int find_link(hid_t file, const char *want, char *buf, size_t len)
{
    if (!want || !*want) return -1;
    H5G_info_t gi;
    if (H5Gget_info(file, &gi) < 0) return -1;
    for (hsize_t k = 0; k < gi.nlinks; k++) {
        ssize_t l = H5Lget_name_by_idx(file, ".", H5_INDEX_NAME, H5_ITER_INC, k, buf, len, H5P_DEFAULT);
        if (l > 0 && (size_t)l < len && sf_catalog__name_eq(buf, want)) return 0;
    }
    return -1;
}

/* Read a 1-D double column into *v; *n set by the first column (0 = unset). */
static sf_status read_col(hid_t file, const char *path, const char *name, size_t *n, double **v)
{
    size_t got = 0;
    sf_status st = sf_h5_read_double(file, name, *n, v, &got);
    if (st) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", sf_last_error());
        return SF_ERROR(st, "'%s': column '%s': %s", path, name, msg);
    }
    *n = got;
    return SF_OK;
}

static sf_status read_one(const char *path, size_t base, const void *ctx, sf_catalog **out)
{
    const sf_catalog_options *opt = ctx;
    hid_t file;
    sf_status st = sf_h5_open_read(path, &file);
    if (st) return st;
    char nm[256];
    size_t n = 0;
    double *z = NULL, *a[NB] = {0}, *b[NB] = {0};
    long long *ids = NULL;
    double *fid = NULL; /* a floating-point id column: integral values only, else SF_CAT_ID_BAD */
    int mag_mode[NB] = {0};
    sf_catalog *c = NULL;
    if (find_link(file, opt->z, nm, sizeof nm)) {
        st = SF_ERROR(SF_EFORMAT, "'%s': no redshift dataset '%s'", path, opt->z);
        goto done;
    }
    if ((st = read_col(file, path, nm, &n, &z))) goto done;
    for (int k = 0; k < NB; k++) {
        char na[256], nb[256];
        if (!find_link(file, opt->flux[k], na, sizeof na) && !find_link(file, opt->ivar[k], nb, sizeof nb))
            mag_mode[k] = 0;
        else if (!find_link(file, opt->mag[k], na, sizeof na) && !find_link(file, opt->sigma[k], nb, sizeof nb))
            mag_mode[k] = 1;
        else {
            st = SF_ERROR(SF_EFORMAT, "'%s': band %c needs datasets '%s' and '%s', or '%s' and '%s'", path,
                          sf_catalog_band_names[k], opt->flux[k], opt->ivar[k], opt->mag[k], opt->sigma[k]);
            goto done;
        }
        if ((st = read_col(file, path, na, &n, &a[k])) || (st = read_col(file, path, nb, &n, &b[k]))) goto done;
    }
    if (!find_link(file, opt->id, nm, sizeof nm)) {
        hid_t ds = H5Dopen2(file, nm, H5P_DEFAULT), ty = ds >= 0 ? H5Dget_type(ds) : -1;
        int is_float = ty >= 0 && H5Tget_class(ty) == H5T_FLOAT;
        if (ty >= 0) H5Tclose(ty);
        if (ds >= 0) H5Dclose(ds);
        if (is_float) {
            if ((st = read_col(file, path, nm, &n, &fid))) goto done;
        } else
            st = sf_h5_read_int64(file, nm, n, &ids, NULL);
        if (st) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", sf_last_error());
            st = SF_ERROR(st, "'%s': id dataset '%s': %s", path, nm, msg);
            goto done;
        }
    }
    c = sf_catalog_alloc(n);
    if (!c) {
        st = SF_ERROR(SF_ENOMEM, "'%s': %zu rows", path, n);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        c->id[i] = ids ? (int64_t)ids[i] : (int64_t)(base + i);
        if (fid) {
            double v = fid[i];
            if (isfinite(v) && v == floor(v) && fabs(v) < 9.2e18) c->id[i] = (int64_t)v;
            else {
                c->flags[i] |= SF_CAT_ID_BAD; /* as in the CSV reader */
                c->id[i] = sf_catalog_bad_id(c->id[i]);
            }
        }
        c->z[i] = z[i];
        for (int k = 0; k < NB; k++) {
            if (mag_mode[k])
                sf_catalog__set_mag(c, i, k, a[k][i], b[k][i]);
            else {
                c->flux_nmgy[i * NB + k] = a[k][i];
                c->ivar_nmgy2[i * NB + k] = b[k][i];
            }
        }
    }
done:
    H5Fclose(file);
    free(z);
    free(ids);
    free(fid);
    for (int k = 0; k < NB; k++) {
        free(a[k]);
        free(b[k]);
    }
    if (st) {
        sf_catalog_free(c);
        return st;
    }
    *out = c;
    return SF_OK;
}

sf_status sf_catalog_read_hdf5(const char *const *paths, size_t npaths, const sf_catalog_options *opt_in,
                               sf_catalog **out)
{
    sf_catalog_options def;
    if (!opt_in) {
        sf_catalog_options_default(&def);
        opt_in = &def;
    }
    return sf_catalog__read_files(paths, npaths, "HDF5 catalog", read_one, opt_in, opt_in->keep_duplicates,
                                  SF_CATALOG_HDF5, out);
}
