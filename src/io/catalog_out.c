/*
 * The posterior catalog written by sedflow infer (layout: docs/INFER.md):
 * fixed-size HDF5 datasets for all galaxies created up front (samples
 * NaN-filled, float32, chunked by galaxy, shuffle + deflate), filled block
 * by block with a progress attribute `next_galaxy` so an interrupted run can
 * be resumed; a report of a finished file; an optional FITS summary table.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fitsio.h>

#include "io/h5util.h"
#include "sedflow/infer.h"

#define SAMPLE_CHUNK_ROWS 8
#define ROW_CHUNK 1024

struct sf_infer_file {
    hid_t file;
    size_t n, n_samples, next;
    hid_t str_t, bool_t;
};

static const char *FLAG_BITS_TEXT =
    "0 non-finite value; 1 flux <= 0; 2 ivar <= 0; 3 missing value; 4 not a number; 5 redshift missing or "
    "non-finite; 6 id missing or not an integer; 8 redshift outside the trained range; 9 sigma > mu_sigma(m) + 3 "
    "sigma_sigma(m) in some band; 10 colour bluer than the training set's 0.1th percentile; 11 acceptance of "
    "in-prior samples below min_acceptance (leakage); 12 fewer samples than requested (proposal budget spent); "
    "13 not sampled";

static hid_t make_bool_type(void)
{
    hid_t t = H5Tenum_create(H5T_NATIVE_INT8);
    signed char v = 0;
    H5Tenum_insert(t, "FALSE", &v);
    v = 1;
    H5Tenum_insert(t, "TRUE", &v);
    return t;
}

static hid_t make_str_type(void)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, SF_INFER_REASON_LEN);
    H5Tset_strpad(t, H5T_STR_NULLTERM);
    return t;
}

/* Fixed-size dataset of n rows x width (width 0: rank 1), chunked by
 * chunk_rows, optional deflate, fill value (may be NULL). */
static sf_status create_ds(hid_t loc, const char *name, hid_t type, size_t n, size_t width, size_t chunk_rows,
                           int deflate, const void *fill, const char *units, const char *descr)
{
    int rank = width ? 2 : 1;
    hsize_t dims[2] = {(hsize_t)n, (hsize_t)width}, chunk[2] = {(hsize_t)chunk_rows, (hsize_t)width};
    if (chunk[0] > dims[0]) chunk[0] = dims[0];
    if (chunk[0] < 1) chunk[0] = 1;
    hid_t space = H5Screate_simple(rank, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, rank, chunk);
    if (deflate > 0) {
        H5Pset_shuffle(dcpl);
        H5Pset_deflate(dcpl, (unsigned)deflate);
    }
    if (fill) H5Pset_fill_value(dcpl, type, fill);
    H5Pset_fill_time(dcpl, H5D_FILL_TIME_IFSET);
    hid_t d = H5Dcreate2(loc, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Pclose(dcpl);
    H5Sclose(space);
    if (d < 0) return SF_ERROR(SF_EIO, "cannot create dataset '%s'", name);
    H5Dclose(d);
    sf_status st = sf_h5_attr_set_string(loc, name, "units", units ? units : "");
    if (!st) st = sf_h5_attr_set_string(loc, name, "description", descr ? descr : "");
    return st;
}

/* Write rows [r0, r0 + nr) of a dataset from memory (memtype). */
static sf_status write_rows(hid_t loc, const char *name, hid_t memtype, size_t r0, size_t nr, const void *data)
{
    if (nr == 0) return SF_OK;
    hid_t d = H5Dopen2(loc, name, H5P_DEFAULT);
    if (d < 0) return SF_ERROR(SF_EIO, "cannot open dataset '%s'", name);
    hid_t fs = H5Dget_space(d);
    int rank = H5Sget_simple_extent_ndims(fs);
    hsize_t dims[2] = {0, 0};
    H5Sget_simple_extent_dims(fs, dims, NULL);
    hsize_t start[2] = {(hsize_t)r0, 0}, count[2] = {(hsize_t)nr, rank > 1 ? dims[1] : 1};
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
    hid_t ms = H5Screate_simple(rank, count, NULL);
    herr_t e = H5Dwrite(d, memtype, ms, fs, H5P_DEFAULT, data);
    H5Sclose(ms);
    H5Sclose(fs);
    H5Dclose(d);
    if (e < 0) return SF_ERROR(SF_EIO, "cannot write '%s' rows %zu..%zu (disk full?)", name, r0, r0 + nr - 1);
    return SF_OK;
}

static sf_status read_all(hid_t loc, const char *name, hid_t memtype, void *data)
{
    hid_t d = H5Dopen2(loc, name, H5P_DEFAULT);
    if (d < 0) return SF_ERROR(SF_EFORMAT, "dataset '%s' missing", name);
    herr_t e = H5Dread(d, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    H5Dclose(d);
    return e < 0 ? SF_ERROR(SF_EFORMAT, "cannot read dataset '%s'", name) : SF_OK;
}

static void file_free(sf_infer_file *f)
{
    if (!f) return;
    if (f->str_t >= 0) H5Tclose(f->str_t);
    if (f->bool_t >= 0) H5Tclose(f->bool_t);
    if (f->file >= 0) H5Fclose(f->file);
    free(f);
}

static sf_infer_file *file_new(void)
{
    sf_infer_file *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->file = -1;
    f->str_t = make_str_type();
    f->bool_t = make_bool_type();
    return f;
}

#define TRY(x)                     \
    do {                           \
        if ((st = (x))) goto done; \
    } while (0)

sf_status sf_infer_file_create(const char *path, const sf_infer *p, const sf_catalog *cat, const sf_infer_input *in,
                               const sf_infer_file_info *info, sf_infer_file **out)
{
    *out = NULL;
    const sf_infer_options *o = sf_infer_get_options(p);
    const sf_infer_support *s = sf_infer_get_support(p);
    const size_t n = in->n, N = o->n_samples, NB = SF_CATALOG_NBANDS;
    if (n < 1) return SF_ERROR(SF_EINVAL, "no galaxies to write");
    sf_infer_file *f = file_new();
    if (!f) return SF_ERROR(SF_ENOMEM, "out of memory");
    f->n = n;
    f->n_samples = N;
    sf_status st = sf_h5_create(path, &f->file);
    double *col = malloc(n * sizeof(double));
    long long *ll = malloc(n * sizeof(long long));
    if (st) goto done;
    if (!col || !ll) {
        st = SF_ERROR(SF_ENOMEM, "out of memory");
        goto done;
    }
    hid_t h = f->file, g;
    const double nan = NAN;
    const long long zero = 0;
    const uint32_t notyet = SF_INFER_NOT_SAMPLED;
    const signed char no = 0;
    /* root attributes */
    TRY(sf_h5_attr_set_string(h, ".", "format", "sedflow-posteriors"));
    TRY(sf_h5_attr_set_long(h, ".", "format_version", SF_INFER_FORMAT_VERSION));
    TRY(sf_h5_attr_set_string(h, ".", "code_version", "sedflow " SEDFLOW_VERSION));
    TRY(sf_h5_attr_set_long(h, ".", "n_galaxies", (long long)n));
    TRY(sf_h5_attr_set_long(h, ".", "n_samples", (long long)N));
    TRY(sf_h5_attr_set_long(h, ".", "seed", (long long)o->seed));
    TRY(sf_h5_attr_set_string(h, ".", "seeds", "galaxy i (row) samples from stream 0 of sf_mix64(seed ^ sf_mix64(i + 1))"));
    TRY(sf_h5_attr_set_long(h, ".", "max_proposals", (long long)o->max_proposals));
    TRY(sf_h5_attr_set_double(h, ".", "min_acceptance", o->min_acceptance));
    TRY(sf_h5_attr_set_long(h, ".", "skip_flagged", o->skip_flagged));
    TRY(sf_h5_attr_set_double(h, ".", "sigma_nsd", o->sigma_nsd));
    TRY(sf_h5_attr_set_string(h, ".", "model", info && info->model_path ? info->model_path : ""));
    {
        char hx[32];
        snprintf(hx, sizeof hx, "%016llx", (unsigned long long)sf_infer_model_hash(p));
        TRY(sf_h5_attr_set_string(h, ".", "model_hash", hx));
    }
    TRY(sf_h5_attr_set_string(h, ".", "catalog", info && info->catalog_paths ? info->catalog_paths : ""));
    TRY(sf_h5_attr_set_string(h, ".", "catalog_format", info && info->catalog_format ? info->catalog_format : ""));
    TRY(sf_h5_attr_set_string(h, ".", "noise_model", info && info->noise_path ? info->noise_path : ""));
    TRY(sf_h5_attr_set_string(h, ".", "model_data", info && info->data_path ? info->data_path : ""));
    TRY(sf_h5_attr_set_long(h, ".", "catalog_n_read", (long long)cat->n_read));
    TRY(sf_h5_attr_set_long(h, ".", "catalog_n_duplicates", (long long)cat->n_duplicates));
    TRY(sf_h5_attr_set_long(h, ".", "block", (long long)(info && info->block ? info->block : 0)));
    TRY(sf_h5_attr_set_double(h, ".", "support_z_min", s->z_min));
    TRY(sf_h5_attr_set_double(h, ".", "support_z_max", s->z_max));
    TRY(sf_h5_attr_set_long(h, ".", "support_has_colour", s->has_colour));
    {
        char buf[256];
        snprintf(buf, sizeof buf, "%.4f,%.4f,%.4f,%.4f", s->colour_min[0], s->colour_min[1], s->colour_min[2],
                 s->colour_min[3]);
        TRY(sf_h5_attr_set_string(h, ".", "support_colour_min", s->has_colour ? buf : ""));
    }
    TRY(sf_h5_attr_set_double(h, ".", "support_colour_quantile", s->colour_quantile));
    TRY(sf_h5_attr_set_string(h, ".", "support_source", s->source));
    TRY(sf_h5_attr_set_string(h, ".", "flag_bits", FLAG_BITS_TEXT));
    TRY(sf_h5_attr_set_long(h, ".", "next_galaxy", 0));
    TRY(sf_h5_attr_set_long(h, ".", "complete", 0));
    TRY(sf_h5_attr_set_double(h, ".", "seconds", 0));
    /* per-galaxy inputs */
    TRY(create_ds(h, "id", H5T_STD_I64LE, n, 0, ROW_CHUNK, 4, NULL, "", "galaxy identifier (NSAID, id column or row number)"));
    TRY(write_rows(h, "id", H5T_NATIVE_LLONG, 0, n, cat->id));
    for (size_t i = 0; i < n; i++) ll[i] = (long long)i;
    TRY(create_ds(h, "row", H5T_STD_I64LE, n, 0, ROW_CHUNK, 4, NULL, "",
                  "0-based row in the input catalog after duplicate removal (the random stream's index)"));
    TRY(write_rows(h, "row", H5T_NATIVE_LLONG, 0, n, ll));
    TRY(create_ds(h, "z", H5T_IEEE_F64LE, n, 0, ROW_CHUNK, 4, NULL, "", "redshift"));
    TRY(write_rows(h, "z", H5T_NATIVE_DOUBLE, 0, n, cat->z));
    for (int b = 0; b < (int)NB; b++) {
        char nm[32], ds[160];
        for (int k = 0; k < 2; k++) {
            for (size_t i = 0; i < n; i++) col[i] = in->x[i * 11 + (size_t)k * NB + (size_t)b];
            snprintf(nm, sizeof nm, "%s_%c", k ? "sigma" : "mag", sf_catalog_band_names[b]);
            snprintf(ds, sizeof ds, k ? "%c magnitude uncertainty (2.5/ln10)/(f sqrt(ivar)) (NaN where undefined)"
                                      : "%c AB magnitude 22.5 - 2.5 log10(f / nmgy) (NaN where undefined)",
                     sf_catalog_band_names[b]);
            TRY(create_ds(h, nm, H5T_IEEE_F64LE, n, 0, ROW_CHUNK, 4, NULL, k ? "mag" : "AB mag", ds));
            TRY(write_rows(h, nm, H5T_NATIVE_DOUBLE, 0, n, col));
        }
    }
    TRY(create_ds(h, "flux_nmgy", H5T_IEEE_F64LE, n, NB, ROW_CHUNK, 4, NULL, "nanomaggies", "ugriz flux as read"));
    TRY(write_rows(h, "flux_nmgy", H5T_NATIVE_DOUBLE, 0, n, cat->flux_nmgy));
    TRY(create_ds(h, "ivar_nmgy2", H5T_IEEE_F64LE, n, NB, ROW_CHUNK, 4, NULL, "nmgy^-2", "ugriz flux inverse variance as read"));
    TRY(write_rows(h, "ivar_nmgy2", H5T_NATIVE_DOUBLE, 0, n, cat->ivar_nmgy2));
    /* results, filled block by block */
    TRY(create_ds(h, "flags", H5T_STD_U32LE, n, 0, ROW_CHUNK, 4, &notyet, "",
                  "flag bits (see the root attribute flag_bits); 0 = trusted; galaxies >= next_galaxy are not processed yet"));
    TRY(create_ds(h, "reason", f->str_t, n, 0, ROW_CHUNK, 4, NULL, "", "readable reasons for the flags, 'ok' when none"));
    TRY(create_ds(h, "sedflow", f->bool_t, n, 0, ROW_CHUNK, 4, &no, "",
                  "True when the ANPE posterior is trusted (no flag set)"));
    TRY(create_ds(h, "acceptance", H5T_IEEE_F64LE, n, 0, ROW_CHUNK, 4, &nan, "",
                  "fraction of flow draws inside the prior box (NaN: not sampled)"));
    TRY(create_ds(h, "n_accepted", H5T_STD_I64LE, n, 0, ROW_CHUNK, 4, &zero, "", "samples stored (n_samples unless flagged)"));
    TRY(sf_h5_group(h, "samples", &g));
    H5Gclose(g);
    TRY(sf_h5_group(h, "summary", &g));
    H5Gclose(g);
    {
        const float nanf_ = NAN;
        int lvl = info ? info->compression : 4;
        for (int q = 0; q < SF_INFER_NQ; q++) {
            char nm[64], ds[256];
            snprintf(nm, sizeof nm, "samples/%s", sf_infer_q_names[q]);
            snprintf(ds, sizeof ds, "%s: posterior samples (n_galaxies x n_samples; NaN beyond n_accepted)",
                     sf_infer_q_descriptions[q]);
            TRY(create_ds(h, nm, H5T_IEEE_F32LE, n, N, SAMPLE_CHUNK_ROWS, lvl, &nanf_, sf_infer_q_units[q], ds));
            snprintf(nm, sizeof nm, "summary/%s", sf_infer_q_names[q]);
            snprintf(ds, sizeof ds, "%s: 16th, 50th (median), 84th percentile of the samples", sf_infer_q_descriptions[q]);
            TRY(create_ds(h, nm, H5T_IEEE_F64LE, n, 3, ROW_CHUNK, 4, &nan, sf_infer_q_units[q], ds));
            TRY(sf_h5_attr_set_string(h, nm, "columns", "p16,p50,p84"));
        }
        if (H5Lcreate_soft("/samples/logmstar", h, "samples/log_mstar", H5P_DEFAULT, H5P_DEFAULT) < 0 ||
            H5Lcreate_soft("/summary/logmstar", h, "summary/log_mstar", H5P_DEFAULT, H5P_DEFAULT) < 0) {
            st = SF_ERROR(SF_EIO, "cannot create the log_mstar links");
            goto done;
        }
    }
    if (H5Fflush(h, H5F_SCOPE_GLOBAL) < 0) st = SF_ERROR(SF_EIO, "cannot flush '%s'", path);
done:
    free(col);
    free(ll);
    if (st) {
        file_free(f);
        return st;
    }
    *out = f;
    return SF_OK;
}

sf_status sf_infer_file_resume(const char *path, const sf_infer *p, const sf_catalog *cat, size_t *next_galaxy,
                               sf_infer_file **out)
{
    *out = NULL;
    sf_h5_quiet();
    const sf_infer_options *o = sf_infer_get_options(p);
    sf_infer_file *f = file_new();
    if (!f) return SF_ERROR(SF_ENOMEM, "out of memory");
    f->file = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    if (f->file < 0) {
        file_free(f);
        return SF_ERROR(SF_EIO, "cannot reopen partial output '%s' for --resume", path);
    }
    hid_t h = f->file;
    long long ver = 0, ng = 0, ns = 0, seed = 0, mp = 0, skip = 0, next = 0;
    double mina = 0, nsd = 0;
    char fmt[64] = "";
    sf_status st = SF_OK;
    long long *ids = NULL;
    if (sf_h5_attr_get_string(h, ".", "format", fmt, sizeof fmt) || strcmp(fmt, "sedflow-posteriors") ||
        sf_h5_attr_get_long(h, ".", "format_version", &ver) || ver != SF_INFER_FORMAT_VERSION) {
        st = SF_ERROR(SF_EFORMAT, "'%s' is not a sedflow posterior file of format version %d", path, SF_INFER_FORMAT_VERSION);
        goto done;
    }
    TRY(sf_h5_attr_get_long(h, ".", "n_galaxies", &ng));
    TRY(sf_h5_attr_get_long(h, ".", "n_samples", &ns));
    TRY(sf_h5_attr_get_long(h, ".", "seed", &seed));
    TRY(sf_h5_attr_get_long(h, ".", "max_proposals", &mp));
    TRY(sf_h5_attr_get_long(h, ".", "skip_flagged", &skip));
    TRY(sf_h5_attr_get_long(h, ".", "next_galaxy", &next));
    TRY(sf_h5_attr_get_double(h, ".", "min_acceptance", &mina));
    TRY(sf_h5_attr_get_double(h, ".", "sigma_nsd", &nsd));
    char hx[32] = "", hy[32];
    TRY(sf_h5_attr_get_string(h, ".", "model_hash", hx, sizeof hx));
    snprintf(hy, sizeof hy, "%016llx", (unsigned long long)sf_infer_model_hash(p));
    if (ng != (long long)cat->n) st = SF_ERROR(SF_EINVAL, "--resume: %s has %lld galaxies, this catalog %zu", path, ng, cat->n);
    else if (ns != (long long)o->n_samples) st = SF_ERROR(SF_EINVAL, "--resume: %s has %lld samples per galaxy, this run %zu", path, ns, o->n_samples);
    else if ((uint64_t)seed != o->seed) st = SF_ERROR(SF_EINVAL, "--resume: %s was run with seed %lld, this run %llu", path, seed, (unsigned long long)o->seed);
    else if (mp != (long long)o->max_proposals) st = SF_ERROR(SF_EINVAL, "--resume: %s has max_proposals %lld, this run %zu", path, mp, o->max_proposals);
    else if (mina != o->min_acceptance) st = SF_ERROR(SF_EINVAL, "--resume: %s has min_acceptance %g, this run %g", path, mina, o->min_acceptance);
    else if ((skip != 0) != (o->skip_flagged != 0)) st = SF_ERROR(SF_EINVAL, "--resume: --skip-flagged differs from the interrupted run");
    else if (nsd != o->sigma_nsd) st = SF_ERROR(SF_EINVAL, "--resume: sigma_nsd differs (%g vs %g)", nsd, o->sigma_nsd);
    else if (strcmp(hx, hy)) st = SF_ERROR(SF_EINVAL, "--resume: %s was made with another model (hash %s, this model %s)", path, hx, hy);
    else if (next < 0 || next > ng) st = SF_ERROR(SF_EFORMAT, "%s: next_galaxy %lld out of range", path, next);
    if (st) goto done;
    ids = malloc((size_t)ng * sizeof(long long));
    if (!ids) {
        st = SF_ERROR(SF_ENOMEM, "out of memory");
        goto done;
    }
    TRY(read_all(h, "id", H5T_NATIVE_LLONG, ids));
    for (size_t i = 0; i < cat->n; i++)
        if (ids[i] != cat->id[i]) {
            st = SF_ERROR(SF_EINVAL, "--resume: galaxy %zu has id %lld in %s but %lld in this catalog", i, ids[i], path,
                          (long long)cat->id[i]);
            goto done;
        }
    f->n = (size_t)ng;
    f->n_samples = (size_t)ns;
    f->next = (size_t)next;
done:
    free(ids);
    if (st) {
        file_free(f);
        return st;
    }
    *next_galaxy = f->next;
    *out = f;
    return SF_OK;
}

sf_status sf_infer_file_write(sf_infer_file *f, size_t g0, const sf_infer_block *b)
{
    const size_t n = b->n, N = f->n_samples;
    if (g0 != f->next || g0 + n > f->n || b->n_samples != N)
        return SF_ERROR(SF_EINVAL, "block at %zu (%zu galaxies) does not continue the file at %zu of %zu", g0, n, f->next, f->n);
    hid_t h = f->file;
    sf_status st = SF_OK;
    signed char *tf = malloc(n ? n : 1);
    if (!tf) return SF_ERROR(SF_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) tf[i] = b->flags[i] == 0;
    TRY(write_rows(h, "flags", H5T_NATIVE_UINT32, g0, n, b->flags));
    TRY(write_rows(h, "reason", f->str_t, g0, n, b->reason));
    TRY(write_rows(h, "sedflow", f->bool_t, g0, n, tf));
    TRY(write_rows(h, "acceptance", H5T_NATIVE_DOUBLE, g0, n, b->acceptance));
    TRY(write_rows(h, "n_accepted", H5T_NATIVE_LLONG, g0, n, b->n_accepted));
    for (int q = 0; q < SF_INFER_NQ; q++) {
        char nm[64];
        snprintf(nm, sizeof nm, "samples/%s", sf_infer_q_names[q]);
        TRY(write_rows(h, nm, H5T_NATIVE_FLOAT, g0, n, b->samples + (size_t)q * b->cap * N));
    }
    {
        double *col = malloc((n ? n : 1) * 3 * sizeof(double));
        if (!col) {
            st = SF_ERROR(SF_ENOMEM, "out of memory");
            goto done;
        }
        for (int q = 0; q < SF_INFER_NQ && !st; q++) {
            char nm[64];
            snprintf(nm, sizeof nm, "summary/%s", sf_infer_q_names[q]);
            for (size_t i = 0; i < n; i++)
                for (int k = 0; k < 3; k++) col[i * 3 + k] = b->summary[(i * SF_INFER_NQ + (size_t)q) * 3 + (size_t)k];
            st = write_rows(h, nm, H5T_NATIVE_DOUBLE, g0, n, col);
        }
        free(col);
        if (st) goto done;
    }
    f->next = g0 + n;
    TRY(sf_h5_attr_set_long(h, ".", "next_galaxy", (long long)f->next));
    if (H5Fflush(h, H5F_SCOPE_GLOBAL) < 0) st = SF_ERROR(SF_EIO, "cannot flush the output file");
done:
    free(tf);
    return st;
}

sf_status sf_infer_file_close(sf_infer_file *f, int complete, double seconds)
{
    if (!f) return SF_OK;
    sf_status st = SF_OK;
    double prev = 0;
    if (H5Aexists(f->file, "seconds") > 0) sf_h5_attr_get_double(f->file, ".", "seconds", &prev);
    st = sf_h5_attr_set_double(f->file, ".", "seconds", prev + seconds);
    if (!st && complete) st = sf_h5_attr_set_long(f->file, ".", "complete", f->next == f->n);
    hid_t h = f->file;
    f->file = -1;
    if (H5Fclose(h) < 0 && !st) st = SF_ERROR(SF_EIO, "cannot close the output file");
    file_free(f);
    return st;
}

sf_status sf_infer_file_report(const char *path, sf_infer_report *r)
{
    memset(r, 0, sizeof *r);
    hid_t h;
    sf_status st = sf_h5_open_read(path, &h);
    if (st) return st;
    long long ng = 0, ns = 0, next = 0;
    uint32_t *fl = NULL;
    long long *id = NULL;
    double *acc = NULL, *lm = NULL;
    TRY(sf_h5_attr_get_long(h, ".", "n_galaxies", &ng));
    TRY(sf_h5_attr_get_long(h, ".", "n_samples", &ns));
    TRY(sf_h5_attr_get_long(h, ".", "next_galaxy", &next));
    fl = malloc((size_t)ng * sizeof *fl);
    id = malloc((size_t)ng * sizeof *id);
    acc = malloc((size_t)ng * sizeof *acc);
    lm = malloc((size_t)ng * 3 * sizeof *lm);
    if (!fl || !id || !acc || !lm) {
        st = SF_ERROR(SF_ENOMEM, "out of memory");
        goto done;
    }
    TRY(read_all(h, "flags", H5T_NATIVE_UINT32, fl));
    TRY(read_all(h, "id", H5T_NATIVE_LLONG, id));
    TRY(read_all(h, "acceptance", H5T_NATIVE_DOUBLE, acc));
    TRY(read_all(h, "summary/logmstar", H5T_NATIVE_DOUBLE, lm));
    r->n_galaxies = (size_t)ng;
    r->n_done = (size_t)next;
    r->n_samples = (size_t)ns;
    double sa = 0;
    for (size_t i = 0; i < r->n_done; i++) {
        for (int k = 0; k < 32; k++)
            if (fl[i] & (1u << k)) r->n_flag[k]++;
        if (!(fl[i] & SF_INFER_NOT_SAMPLED)) {
            r->n_sampled++;
            sa += acc[i];
        }
        if (fl[i] == 0) {
            r->n_trusted++;
            if (r->n_show < 8) {
                r->show_id[r->n_show] = id[i];
                memcpy(r->show_logmstar[r->n_show], lm + i * 3, 3 * sizeof(double));
                r->n_show++;
            }
        }
    }
    /* no trusted galaxy: show the first sampled ones instead */
    for (size_t i = 0; r->n_trusted == 0 && i < r->n_done && r->n_show < 8; i++)
        if (!(fl[i] & SF_INFER_NOT_SAMPLED)) {
            r->show_flagged = 1;
            r->show_id[r->n_show] = id[i];
            memcpy(r->show_logmstar[r->n_show], lm + i * 3, 3 * sizeof(double));
            r->n_show++;
        }
    r->mean_acceptance = r->n_sampled ? sa / (double)r->n_sampled : NAN;
done:
    free(fl);
    free(id);
    free(acc);
    free(lm);
    H5Fclose(h);
    return st;
}

/* ---- FITS summary table ------------------------------------------------- */

static sf_status fits_status(int status, const char *path)
{
    char txt[FLEN_STATUS];
    fits_get_errstatus(status, txt);
    fits_clear_errmsg();
    return SF_ERROR(SF_EIO, "'%s': CFITSIO %d (%s)", path, status, txt);
}

sf_status sf_infer_write_fits(const char *h5_path, const char *fits_path)
{
    hid_t h;
    sf_status st = sf_h5_open_read(h5_path, &h);
    if (st) return st;
    long long ng = 0;
    if ((st = sf_h5_attr_get_long(h, ".", "n_galaxies", &ng))) {
        H5Fclose(h);
        return st;
    }
    const size_t n = (size_t)ng;
    enum { NCOLS = 1 + 1 + 10 + 3 * SF_INFER_NQ + 5 };
    char names[NCOLS][48], forms[NCOLS][16], units[NCOLS][32];
    char *ttype[NCOLS], *tform[NCOLS], *tunit[NCOLS];
    int nc = 0;
#define COL(nm, fm, un)                                        \
    do {                                                       \
        snprintf(names[nc], sizeof names[nc], "%s", nm);       \
        snprintf(forms[nc], sizeof forms[nc], "%s", fm);       \
        snprintf(units[nc], sizeof units[nc], "%s", un);       \
        nc++;                                                  \
    } while (0)
    COL("ID", "1K", "");
    COL("Z", "1D", "");
    for (int b = 0; b < SF_CATALOG_NBANDS; b++) {
        char t[32];
        snprintf(t, sizeof t, "MAG_%c", sf_catalog_band_names[b] - 32);
        COL(t, "1D", "mag");
    }
    for (int b = 0; b < SF_CATALOG_NBANDS; b++) {
        char t[32];
        snprintf(t, sizeof t, "SIGMA_%c", sf_catalog_band_names[b] - 32);
        COL(t, "1D", "mag");
    }
    for (int q = 0; q < SF_INFER_NQ; q++)
        for (int k = 0; k < 3; k++) {
            char t[48];
            static const char *suf[3] = {"P16", "P50", "P84"};
            snprintf(t, sizeof t, "%s_%s", sf_infer_q_names[q], suf[k]);
            for (char *c = t; *c; c++)
                if (*c >= 'a' && *c <= 'z') *c = (char)(*c - 32);
            COL(t, "1D", sf_infer_q_units[q]);
        }
    COL("ACCEPTANCE", "1D", "");
    COL("N_ACCEPTED", "1K", "");
    COL("FLAGS", "1K", "");
    COL("SEDFLOW", "1L", "");
    {
        char t[16];
        snprintf(t, sizeof t, "%dA", SF_INFER_REASON_LEN);
        COL("REASON", t, "");
    }
#undef COL
    for (int i = 0; i < nc; i++) ttype[i] = names[i], tform[i] = forms[i], tunit[i] = units[i];
    char tmp[4096], create[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", fits_path);
    snprintf(create, sizeof create, "!%s", tmp);
    fitsfile *fp = NULL;
    int status = 0;
    double *dcol = malloc(n * 3 * sizeof(double)), *dc = malloc(n * sizeof(double));
    long long *lcol = malloc(n * sizeof(long long));
    uint32_t *fl = malloc(n * sizeof(uint32_t));
    char *reason = malloc(n * SF_INFER_REASON_LEN), **rp = malloc(n * sizeof(char *));
    char *lg = malloc(n);
    hid_t strt = make_str_type();
    if (!dcol || !dc || !lcol || !fl || !reason || !rp || !lg) {
        st = SF_ERROR(SF_ENOMEM, "out of memory");
        goto out;
    }
    if (fits_create_file(&fp, create, &status) ||
        fits_create_tbl(fp, BINARY_TBL, (LONGLONG)n, nc, ttype, tform, tunit, "SEDFLOW", &status)) {
        st = fits_status(status, fits_path);
        goto out;
    }
    int c = 1;
    if ((st = read_all(h, "id", H5T_NATIVE_LLONG, lcol))) goto out;
    fits_write_col(fp, TLONGLONG, c++, 1, 1, (LONGLONG)n, lcol, &status);
    if ((st = read_all(h, "z", H5T_NATIVE_DOUBLE, dc))) goto out;
    fits_write_col(fp, TDOUBLE, c++, 1, 1, (LONGLONG)n, dc, &status);
    for (int k = 0; k < 2; k++)
        for (int b = 0; b < SF_CATALOG_NBANDS; b++) {
            char nm[32];
            snprintf(nm, sizeof nm, "%s_%c", k ? "sigma" : "mag", sf_catalog_band_names[b]);
            if ((st = read_all(h, nm, H5T_NATIVE_DOUBLE, dc))) goto out;
            fits_write_col(fp, TDOUBLE, c++, 1, 1, (LONGLONG)n, dc, &status);
        }
    for (int q = 0; q < SF_INFER_NQ; q++) {
        char nm[64];
        snprintf(nm, sizeof nm, "summary/%s", sf_infer_q_names[q]);
        if ((st = read_all(h, nm, H5T_NATIVE_DOUBLE, dcol))) goto out;
        for (int k = 0; k < 3; k++) {
            for (size_t i = 0; i < n; i++) dc[i] = dcol[i * 3 + (size_t)k];
            fits_write_col(fp, TDOUBLE, c++, 1, 1, (LONGLONG)n, dc, &status);
        }
    }
    if ((st = read_all(h, "acceptance", H5T_NATIVE_DOUBLE, dc))) goto out;
    fits_write_col(fp, TDOUBLE, c++, 1, 1, (LONGLONG)n, dc, &status);
    if ((st = read_all(h, "n_accepted", H5T_NATIVE_LLONG, lcol))) goto out;
    fits_write_col(fp, TLONGLONG, c++, 1, 1, (LONGLONG)n, lcol, &status);
    if ((st = read_all(h, "flags", H5T_NATIVE_UINT32, fl))) goto out;
    for (size_t i = 0; i < n; i++) lcol[i] = fl[i], lg[i] = fl[i] == 0;
    fits_write_col(fp, TLONGLONG, c++, 1, 1, (LONGLONG)n, lcol, &status);
    fits_write_col(fp, TLOGICAL, c++, 1, 1, (LONGLONG)n, lg, &status);
    if ((st = read_all(h, "reason", strt, reason))) goto out;
    for (size_t i = 0; i < n; i++) rp[i] = reason + i * SF_INFER_REASON_LEN;
    fits_write_col(fp, TSTRING, c++, 1, 1, (LONGLONG)n, rp, &status);
    fits_write_key(fp, TSTRING, "ORIGIN", "sedflow " SEDFLOW_VERSION, "sedflow infer summary table", &status);
    if (status) st = fits_status(status, fits_path);
out:
    if (fp) {
        int s2 = 0;
        fits_close_file(fp, &s2);
        if (s2 && !st) st = fits_status(s2, fits_path);
    }
    H5Tclose(strt);
    H5Fclose(h);
    free(dcol); free(dc); free(lcol); free(fl); free(reason); free(rp); free(lg);
    if (!st && rename(tmp, fits_path) != 0) st = SF_ERROR(SF_EIO, "cannot rename '%s' to '%s'", tmp, fits_path);
    if (st) remove(tmp);
    return st;
}
