/* Internal HDF5 helpers: see io/h5util.h. */
#include "io/h5util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sf_h5_quiet(void)
{
    static int done = 0;
    if (!done) {
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
        done = 1;
    }
}

sf_status sf_h5_open_read(const char *path, hid_t *file)
{
    sf_h5_quiet();
    *file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (*file < 0) return SF_ERROR(SF_EIO, "cannot open HDF5 file '%s' (missing, unreadable or not HDF5)", path);
    return SF_OK;
}

sf_status sf_h5_create(const char *path, hid_t *file)
{
    sf_h5_quiet();
    *file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (*file < 0) return SF_ERROR(SF_EIO, "cannot create HDF5 file '%s'", path);
    return SF_OK;
}

int sf_h5_exists(hid_t loc, const char *name)
{
    /* H5Lexists needs each intermediate component to exist: walk the path. */
    char buf[512];
    size_t len = strlen(name);
    if (len == 0 || len >= sizeof buf) return 0;
    memcpy(buf, name, len + 1);
    for (char *p = buf + 1; ; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (H5Lexists(loc, buf, H5P_DEFAULT) <= 0) return 0;
            if (c == '\0') return 1;
            *p = c;
        }
    }
}

sf_status sf_h5_shape(hid_t loc, const char *name, int *rank, size_t dims[4])
{
    if (!sf_h5_exists(loc, name)) return SF_ERROR(SF_EFORMAT, "dataset '%s' missing", name);
    hid_t d = H5Dopen2(loc, name, H5P_DEFAULT);
    if (d < 0) return SF_ERROR(SF_EFORMAT, "cannot open dataset '%s'", name);
    hid_t s = H5Dget_space(d);
    int r = H5Sget_simple_extent_ndims(s);
    hsize_t h[4] = {0, 0, 0, 0};
    sf_status st = SF_OK;
    if (r < 0 || r > 4) st = SF_ERROR(SF_EFORMAT, "dataset '%s' has rank %d (max 4)", name, r);
    else {
        H5Sget_simple_extent_dims(s, h, NULL);
        *rank = r;
        for (int i = 0; i < 4; i++) dims[i] = i < r ? (size_t)h[i] : 1;
    }
    H5Sclose(s);
    H5Dclose(d);
    return st;
}

static sf_status read_typed(hid_t loc, const char *name, hid_t memtype, size_t elsize,
                            size_t expect_n, void **out, size_t *n_out)
{
    int rank;
    size_t dims[4];
    sf_status st = sf_h5_shape(loc, name, &rank, dims);
    if (st) return st;
    size_t n = dims[0] * dims[1] * dims[2] * dims[3];
    if (rank == 0) n = 1;
    if (expect_n && n != expect_n)
        return SF_ERROR(SF_EFORMAT, "dataset '%s' has %zu elements, expected %zu", name, n, expect_n);
    void *buf = malloc(n ? n * elsize : 1);
    if (!buf) return SF_ERROR(SF_ENOMEM, "out of memory reading '%s'", name);
    hid_t d = H5Dopen2(loc, name, H5P_DEFAULT);
    herr_t e = H5Dread(d, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    H5Dclose(d);
    if (e < 0) {
        free(buf);
        return SF_ERROR(SF_EFORMAT, "cannot read dataset '%s' (wrong type or corrupt)", name);
    }
    *out = buf;
    if (n_out) *n_out = n;
    return SF_OK;
}

sf_status sf_h5_read_float(hid_t loc, const char *name, size_t expect_n, float **out, size_t *n_out)
{
    return read_typed(loc, name, H5T_NATIVE_FLOAT, sizeof(float), expect_n, (void **)out, n_out);
}

sf_status sf_h5_read_double(hid_t loc, const char *name, size_t expect_n, double **out, size_t *n_out)
{
    return read_typed(loc, name, H5T_NATIVE_DOUBLE, sizeof(double), expect_n, (void **)out, n_out);
}

sf_status sf_h5_read_int64(hid_t loc, const char *name, size_t expect_n, long long **out, size_t *n_out)
{
    return read_typed(loc, name, H5T_NATIVE_LLONG, sizeof(long long), expect_n, (void **)out, n_out);
}

static sf_status read_into(hid_t loc, const char *name, hid_t memtype, size_t n, void *buf)
{
    int rank;
    size_t dims[4];
    sf_status st = sf_h5_shape(loc, name, &rank, dims);
    if (st) return st;
    size_t m = rank == 0 ? 1 : dims[0] * dims[1] * dims[2] * dims[3];
    if (m != n) return SF_ERROR(SF_EFORMAT, "dataset '%s' has %zu elements, expected %zu", name, m, n);
    hid_t d = H5Dopen2(loc, name, H5P_DEFAULT);
    herr_t e = H5Dread(d, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    H5Dclose(d);
    if (e < 0) return SF_ERROR(SF_EFORMAT, "cannot read dataset '%s'", name);
    return SF_OK;
}

sf_status sf_h5_read_double_into(hid_t loc, const char *name, size_t n, double *buf)
{
    return read_into(loc, name, H5T_NATIVE_DOUBLE, n, buf);
}

sf_status sf_h5_read_float_into(hid_t loc, const char *name, size_t n, float *buf)
{
    return read_into(loc, name, H5T_NATIVE_FLOAT, n, buf);
}

static sf_status write_typed(hid_t loc, const char *name, hid_t filetype, hid_t memtype,
                             int rank, const size_t *dims, const void *data, size_t chunk_rows)
{
    if (rank < 1 || rank > 4) return SF_ERROR(SF_EINVAL, "rank %d for '%s'", rank, name);
    hsize_t h[4], c[4];
    for (int i = 0; i < rank; i++) {
        h[i] = dims[i];
        c[i] = dims[i] ? dims[i] : 1;
    }
    hid_t space = H5Screate_simple(rank, h, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (chunk_rows > 0 && dims[0] > 0) {
        c[0] = chunk_rows < dims[0] ? chunk_rows : dims[0];
        H5Pset_chunk(dcpl, rank, c);
        H5Pset_shuffle(dcpl);
        H5Pset_deflate(dcpl, 4);
        H5Pset_fletcher32(dcpl); /* a checksum per chunk: H5Dread fails on a corrupted chunk */
    }
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t d = H5Dcreate2(loc, name, filetype, space, lcpl, dcpl, H5P_DEFAULT);
    sf_status st = SF_OK;
    if (d < 0) st = SF_ERROR(SF_EIO, "cannot create dataset '%s'", name);
    else {
        if (H5Dwrite(d, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
            st = SF_ERROR(SF_EIO, "cannot write dataset '%s'", name);
        H5Dclose(d);
    }
    H5Pclose(lcpl);
    H5Pclose(dcpl);
    H5Sclose(space);
    return st;
}

sf_status sf_h5_write_double(hid_t loc, const char *name, int rank, const size_t *dims,
                             const double *data, size_t chunk_rows)
{
    return write_typed(loc, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, rank, dims, data, chunk_rows);
}

sf_status sf_h5_write_float(hid_t loc, const char *name, int rank, const size_t *dims,
                            const float *data, size_t chunk_rows)
{
    return write_typed(loc, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, rank, dims, data, chunk_rows);
}

sf_status sf_h5_write_int64(hid_t loc, const char *name, int rank, const size_t *dims,
                            const long long *data, size_t chunk_rows)
{
    return write_typed(loc, name, H5T_STD_I64LE, H5T_NATIVE_LLONG, rank, dims, data, chunk_rows);
}

static sf_status attr_get(hid_t loc, const char *obj, const char *attr, hid_t memtype, void *v)
{
    if (H5Aexists_by_name(loc, obj, attr, H5P_DEFAULT) <= 0)
        return SF_ERROR(SF_EFORMAT, "attribute '%s' of '%s' missing", attr, obj);
    hid_t a = H5Aopen_by_name(loc, obj, attr, H5P_DEFAULT, H5P_DEFAULT);
    herr_t e = H5Aread(a, memtype, v);
    H5Aclose(a);
    if (e < 0) return SF_ERROR(SF_EFORMAT, "cannot read attribute '%s' of '%s'", attr, obj);
    return SF_OK;
}

sf_status sf_h5_attr_get_long(hid_t loc, const char *obj, const char *attr, long long *v)
{
    return attr_get(loc, obj, attr, H5T_NATIVE_LLONG, v);
}

sf_status sf_h5_attr_get_double(hid_t loc, const char *obj, const char *attr, double *v)
{
    return attr_get(loc, obj, attr, H5T_NATIVE_DOUBLE, v);
}

sf_status sf_h5_attr_get_string(hid_t loc, const char *obj, const char *attr, char *buf, size_t len)
{
    if (len) buf[0] = '\0'; /* empty on any error: no stale contents */
    if (H5Aexists_by_name(loc, obj, attr, H5P_DEFAULT) <= 0)
        return SF_ERROR(SF_EFORMAT, "attribute '%s' of '%s' missing", attr, obj);
    hid_t a = H5Aopen_by_name(loc, obj, attr, H5P_DEFAULT, H5P_DEFAULT);
    hid_t t = H5Aget_type(a);
    sf_status st = SF_OK;
    if (H5Tget_class(t) != H5T_STRING) st = SF_ERROR(SF_EFORMAT, "attribute '%s' is not a string", attr);
    else if (H5Tis_variable_str(t) > 0) { /* h5py's default for a Python str */
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, H5T_VARIABLE);
        H5Tset_cset(mt, H5Tget_cset(t)); /* HDF5 converts no ASCII <-> UTF-8 */
        char *s = NULL;
        if (H5Aread(a, mt, &s) < 0 || !s) st = SF_ERROR(SF_EFORMAT, "cannot read attribute '%s'", attr);
        else {
            snprintf(buf, len, "%s", s);
            H5free_memory(s);
        }
        H5Tclose(mt);
    } else {
        size_t sz = H5Tget_size(t);
        char *s = calloc(sz + 1, 1);
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, sz + 1);
        H5Tset_cset(mt, H5Tget_cset(t));
        if (!s) st = SF_ERROR(SF_ENOMEM, "out of memory");
        else if (H5Aread(a, mt, s) < 0) st = SF_ERROR(SF_EFORMAT, "cannot read attribute '%s'", attr);
        else snprintf(buf, len, "%s", s);
        free(s);
        H5Tclose(mt);
    }
    H5Tclose(t);
    H5Aclose(a);
    return st;
}

static sf_status attr_set(hid_t loc, const char *obj, const char *attr, hid_t filetype,
                          hid_t memtype, const void *v)
{
    if (H5Aexists_by_name(loc, obj, attr, H5P_DEFAULT) > 0) H5Adelete_by_name(loc, obj, attr, H5P_DEFAULT);
    hid_t s = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate_by_name(loc, obj, attr, filetype, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    sf_status st = SF_OK;
    if (a < 0 || H5Awrite(a, memtype, v) < 0)
        st = SF_ERROR(SF_EIO, "cannot write attribute '%s' of '%s'", attr, obj);
    if (a >= 0) H5Aclose(a);
    H5Sclose(s);
    return st;
}

sf_status sf_h5_attr_set_long(hid_t loc, const char *obj, const char *attr, long long v)
{
    return attr_set(loc, obj, attr, H5T_STD_I64LE, H5T_NATIVE_LLONG, &v);
}

sf_status sf_h5_attr_set_double(hid_t loc, const char *obj, const char *attr, double v)
{
    return attr_set(loc, obj, attr, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &v);
}

sf_status sf_h5_attr_set_string(hid_t loc, const char *obj, const char *attr, const char *v)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(v) + 1);
    H5Tset_strpad(t, H5T_STR_NULLTERM);
    sf_status st = attr_set(loc, obj, attr, t, t, v);
    H5Tclose(t);
    return st;
}

sf_status sf_h5_group(hid_t loc, const char *name, hid_t *grp)
{
    if (sf_h5_exists(loc, name)) *grp = H5Gopen2(loc, name, H5P_DEFAULT);
    else {
        hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
        H5Pset_create_intermediate_group(lcpl, 1);
        *grp = H5Gcreate2(loc, name, lcpl, H5P_DEFAULT, H5P_DEFAULT);
        H5Pclose(lcpl);
    }
    if (*grp < 0) return SF_ERROR(SF_EIO, "cannot open or create group '%s'", name);
    return SF_OK;
}
