/* Noise model file I/O (HDF5; layout in include/sedflow/noise.h and
 * docs/CATALOG.md). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/h5util.h"
#include "sedflow/noise.h"
#include "sim/noise_priv.h"

#define NB SF_CATALOG_NBANDS
#define FORMAT_NAME "sedflow-noise"

#ifndef SEDFLOW_VERSION
#define SEDFLOW_VERSION "unknown"
#endif

static sf_status save_band(hid_t file, int b, const sf_noise_band *t)
{
    char name[2] = {sf_catalog_band_names[b], '\0'};
    hid_t g;
    sf_status st = sf_h5_group(file, name, &g);
    if (st) return st;
    size_t dims[1] = {t->nbin};
    if ((st = sf_h5_write_double(g, "mag_lo", 1, dims, t->mag_lo, 0)) ||
        (st = sf_h5_write_double(g, "mag_hi", 1, dims, t->mag_hi, 0)) ||
        (st = sf_h5_write_double(g, "mag_centre", 1, dims, t->mag_centre, 0)) ||
        (st = sf_h5_write_int64(g, "count", 1, dims, t->count, 0)) ||
        (st = sf_h5_write_double(g, "mu_sigma_mag", 1, dims, t->mu_sigma_mag, 0)) ||
        (st = sf_h5_write_double(g, "sigma_sigma_mag", 1, dims, t->sigma_sigma_mag, 0)) ||
        (st = sf_h5_attr_set_double(g, ".", "nmgy_min", t->nmgy_min)) ||
        (st = sf_h5_attr_set_double(g, ".", "nmgy_max", t->nmgy_max)) ||
        (st = sf_h5_attr_set_double(g, ".", "mag_min", t->mag_min)) ||
        (st = sf_h5_attr_set_double(g, ".", "mag_max", t->mag_max)) ||
        (st = sf_h5_attr_set_string(g, "mag_centre", "units", "AB mag")) ||
        (st = sf_h5_attr_set_string(g, "mag_centre", "description",
                                    "median magnitude of the bin's rows: interpolation node")) ||
        (st = sf_h5_attr_set_string(g, "mu_sigma_mag", "units", "mag")) ||
        (st = sf_h5_attr_set_string(g, "mu_sigma_mag", "description", "median magnitude error in the bin")) ||
        (st = sf_h5_attr_set_string(g, "sigma_sigma_mag", "units", "mag")) ||
        (st = sf_h5_attr_set_string(g, "sigma_sigma_mag", "description",
                                    "standard deviation (n-1) of the magnitude error in the bin"))) {
        /* st holds the first failure */
    }
    H5Gclose(g);
    return st;
}

sf_status sf_noise_save(const sf_noise *nm, const char *path)
{
    if (!nm || !path) return SF_ERROR(SF_EINVAL, "NULL argument");
    size_t len = strlen(path) + 5;
    char *tmp = malloc(len);
    if (!tmp) return SF_ERROR(SF_ENOMEM, "path");
    snprintf(tmp, len, "%s.tmp", path);
    hid_t f;
    sf_status st = sf_h5_create(tmp, &f);
    if (st) {
        free(tmp);
        return st;
    }
    if (!(st = sf_h5_attr_set_string(f, ".", "format", FORMAT_NAME)) &&
        !(st = sf_h5_attr_set_long(f, ".", "format_version", SF_NOISE_FORMAT_VERSION)) &&
        !(st = sf_h5_attr_set_string(f, ".", "bands", sf_catalog_band_names)) &&
        !(st = sf_h5_attr_set_double(f, ".", "bin_width_mag", nm->bin_width_mag)) &&
        !(st = sf_h5_attr_set_long(f, ".", "min_count", nm->min_count)) &&
        !(st = sf_h5_attr_set_double(f, ".", "min_snr", nm->min_snr)) &&
        !(st = sf_h5_attr_set_long(f, ".", "n_valid", nm->n_valid)) &&
        !(st = sf_h5_attr_set_long(f, ".", "n_rows", nm->n_rows)) &&
        !(st = sf_h5_attr_set_string(f, ".", "source", nm->source)) &&
        !(st = sf_h5_attr_set_string(f, ".", "code_version", SEDFLOW_VERSION)) &&
        !(st = sf_h5_attr_set_string(f, ".", "method",
                                     "Hahn & Melchior 2022 eq. 5: per band, median and standard deviation of "
                                     "sigma_m in magnitude bins of rows with S/N >= min_snr in all bands; linear "
                                     "interpolation between bin median magnitudes, end values held constant beyond")))
        for (int b = 0; b < NB && !st; b++) st = save_band(f, b, &nm->band[b]);
    if (H5Fclose(f) < 0 && !st) st = SF_ERROR(SF_EIO, "closing '%s'", tmp);
    if (!st && rename(tmp, path)) st = SF_ERROR(SF_EIO, "cannot rename '%s' to '%s'", tmp, path);
    if (st) remove(tmp);
    free(tmp);
    return st;
}

static sf_status load_band(hid_t file, const char *path, int b, sf_noise_band *t)
{
    char name[2] = {sf_catalog_band_names[b], '\0'};
    if (!sf_h5_exists(file, name)) return SF_ERROR(SF_EFORMAT, "'%s': no group /%s", path, name);
    hid_t g = H5Gopen2(file, name, H5P_DEFAULT);
    if (g < 0) return SF_ERROR(SF_EFORMAT, "'%s': cannot open group /%s", path, name);
    int rank;
    size_t dims[4];
    sf_status st = sf_h5_shape(g, "mag_centre", &rank, dims);
    if (!st && (rank != 1 || dims[0] < 1))
        st = SF_ERROR(SF_EFORMAT, "'%s': /%s/mag_centre must be 1-D and non-empty", path, name);
    if (!st) st = sf_noise__band_alloc(t, dims[0]);
    size_t n = t->nbin;
    long long *cnt = NULL;
    if (!st && !(st = sf_h5_read_double_into(g, "mag_lo", n, t->mag_lo)) &&
        !(st = sf_h5_read_double_into(g, "mag_hi", n, t->mag_hi)) &&
        !(st = sf_h5_read_double_into(g, "mag_centre", n, t->mag_centre)) &&
        !(st = sf_h5_read_double_into(g, "mu_sigma_mag", n, t->mu_sigma_mag)) &&
        !(st = sf_h5_read_double_into(g, "sigma_sigma_mag", n, t->sigma_sigma_mag)) &&
        !(st = sf_h5_read_int64(g, "count", n, &cnt, NULL)) &&
        !(st = sf_h5_attr_get_double(g, ".", "nmgy_min", &t->nmgy_min)) &&
        !(st = sf_h5_attr_get_double(g, ".", "nmgy_max", &t->nmgy_max)) &&
        !(st = sf_h5_attr_get_double(g, ".", "mag_min", &t->mag_min)) &&
        !(st = sf_h5_attr_get_double(g, ".", "mag_max", &t->mag_max))) {
        memcpy(t->count, cnt, n * sizeof *cnt);
        for (size_t k = 0; k < n && !st; k++) {
            if (!isfinite(t->mag_centre[k]) || !isfinite(t->mu_sigma_mag[k]) ||
                !(t->sigma_sigma_mag[k] >= 0) || (k > 0 && !(t->mag_centre[k] > t->mag_centre[k - 1])))
                st = SF_ERROR(SF_EFORMAT, "'%s': band %s bin %zu: non-finite, negative sd or unsorted centres",
                              path, name, k);
        }
        if (!st && !(t->nmgy_min > 0 && t->nmgy_max >= t->nmgy_min))
            st = SF_ERROR(SF_EFORMAT, "'%s': band %s: bad flux range [%g, %g] nmgy", path, name, t->nmgy_min,
                          t->nmgy_max);
    }
    free(cnt);
    H5Gclose(g);
    return st;
}

sf_status sf_noise_load(const char *path, sf_noise **out)
{
    if (!path || !out) return SF_ERROR(SF_EINVAL, "NULL argument");
    *out = NULL;
    hid_t f;
    sf_status st = sf_h5_open_read(path, &f);
    if (st) return st;
    sf_noise *nm = calloc(1, sizeof *nm);
    if (!nm) {
        H5Fclose(f);
        return SF_ERROR(SF_ENOMEM, "noise model");
    }
    char fmt[64] = "";
    long long ver = 0;
    if (sf_h5_attr_get_string(f, ".", "format", fmt, sizeof fmt) || strcmp(fmt, FORMAT_NAME))
        st = SF_ERROR(SF_EFORMAT, "'%s' is not a sedflow noise model (format attribute '%s')", path, fmt);
    else if (sf_h5_attr_get_long(f, ".", "format_version", &ver) || ver != SF_NOISE_FORMAT_VERSION)
        st = SF_ERROR(SF_EFORMAT, "'%s': noise model format_version %lld, this code reads %d", path, ver,
                      SF_NOISE_FORMAT_VERSION);
    else if (!(st = sf_h5_attr_get_double(f, ".", "bin_width_mag", &nm->bin_width_mag)) &&
             !(st = sf_h5_attr_get_long(f, ".", "min_count", &nm->min_count)) &&
             !(st = sf_h5_attr_get_double(f, ".", "min_snr", &nm->min_snr)) &&
             !(st = sf_h5_attr_get_long(f, ".", "n_valid", &nm->n_valid)) &&
             !(st = sf_h5_attr_get_long(f, ".", "n_rows", &nm->n_rows)) &&
             !(st = sf_h5_attr_get_string(f, ".", "source", nm->source, sizeof nm->source)))
        for (int b = 0; b < NB && !st; b++) st = load_band(f, path, b, &nm->band[b]);
    H5Fclose(f);
    if (st) {
        sf_noise_free(nm);
        return st;
    }
    *out = nm;
    return SF_OK;
}
