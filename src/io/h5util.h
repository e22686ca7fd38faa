/*
 * io/h5util.h — small internal helpers over the HDF5 C API (1.10).
 *
 * All readers allocate with malloc and hand ownership to the caller; all
 * return sf_status with a message naming the file object on failure.  HDF5's
 * own error stack printing is switched off by sf_h5_quiet() (called by every
 * opener here), so the library stays silent.
 */
#ifndef SEDFLOW_IO_H5UTIL_H
#define SEDFLOW_IO_H5UTIL_H

#include <hdf5.h>
#include <stddef.h>

#include "sedflow/error.h"

/* Silence HDF5's automatic error printing (idempotent, thread-safe enough:
 * called once per process before any other HDF5 call of ours). */
void sf_h5_quiet(void);

/* Open an existing file read-only / create (truncate) one. */
sf_status sf_h5_open_read(const char *path, hid_t *file);
sf_status sf_h5_create(const char *path, hid_t *file);

/* Shape of dataset `name` under `loc`: rank (<= 4) and dims. */
sf_status sf_h5_shape(hid_t loc, const char *name, int *rank, size_t dims[4]);

/* Read a whole dataset converted to float / double / int64 / uint8.
 * `expect_n` (if nonzero) is the required total element count.
 * *out is malloc'd (free it); *n_out (may be NULL) gets the count. */
sf_status sf_h5_read_float(hid_t loc, const char *name, size_t expect_n, float **out, size_t *n_out);
sf_status sf_h5_read_double(hid_t loc, const char *name, size_t expect_n, double **out, size_t *n_out);
sf_status sf_h5_read_int64(hid_t loc, const char *name, size_t expect_n, long long **out, size_t *n_out);

/* Read a dataset into a caller buffer of exactly n elements (no allocation). */
sf_status sf_h5_read_double_into(hid_t loc, const char *name, size_t n, double *buf);
sf_status sf_h5_read_float_into(hid_t loc, const char *name, size_t n, float *buf);

/* Write a dataset of rank 1..4 (dims[rank]) from memory.  When `chunk_rows`
 * > 0 the dataset is chunked along dimension 0, deflate-compressed and
 * Fletcher-32 checksummed (reading a corrupted chunk then fails). */
sf_status sf_h5_write_double(hid_t loc, const char *name, int rank, const size_t *dims,
                             const double *data, size_t chunk_rows);
sf_status sf_h5_write_float(hid_t loc, const char *name, int rank, const size_t *dims,
                            const float *data, size_t chunk_rows);
sf_status sf_h5_write_int64(hid_t loc, const char *name, int rank, const size_t *dims,
                            const long long *data, size_t chunk_rows);

/* Scalar attributes on an object (loc + object name; "." for loc itself). */
sf_status sf_h5_attr_get_long(hid_t loc, const char *obj, const char *attr, long long *v);
sf_status sf_h5_attr_get_double(hid_t loc, const char *obj, const char *attr, double *v);
/* String attribute into buf of size len (truncated, always terminated; ""
 * on error): fixed or variable length, ASCII or UTF-8 (h5py's default). */
sf_status sf_h5_attr_get_string(hid_t loc, const char *obj, const char *attr, char *buf, size_t len);
sf_status sf_h5_attr_set_long(hid_t loc, const char *obj, const char *attr, long long v);
sf_status sf_h5_attr_set_double(hid_t loc, const char *obj, const char *attr, double v);
sf_status sf_h5_attr_set_string(hid_t loc, const char *obj, const char *attr, const char *v);

/* 1 if a link `name` exists under loc (path components must exist), else 0. */
int sf_h5_exists(hid_t loc, const char *name);

/* Create group `name` (and missing parents). Caller closes with H5Gclose. */
sf_status sf_h5_group(hid_t loc, const char *name, hid_t *grp);

#endif
