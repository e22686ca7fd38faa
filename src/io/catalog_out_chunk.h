/*
 * io/catalog_out_chunk.h — the posterior-sample rows of the output catalog
 * written as finished HDF5 chunks: one galaxy's float32 row, shuffled and
 * deflated by the caller (on any thread) and stored with H5Dwrite_chunk,
 * instead of by HDF5's serial filter pipeline inside H5Dwrite.  The file
 * is an ordinary shuffle + deflate dataset; every HDF5 reader decodes it.
 */
#ifndef SEDFLOW_IO_CATALOG_OUT_CHUNK_H
#define SEDFLOW_IO_CATALOG_OUT_CHUNK_H

#include <hdf5.h>
#include <stddef.h>

#include "sedflow/error.h"

/* Bytes of output buffer sf_chunk_f32_encode needs for n values (at most). */
size_t sf_chunk_f32_bound(size_t n);

/* Encode n float32 values x (n >= 1) as a chunk of a dataset with the
 * filters shuffle then deflate: a zlib stream whose inflation is x
 * byte-shuffled as HDF5's shuffle filter does (byte plane j = byte j of
 * every value, little-endian, planes in order), each plane in deflate blocks
 * of its own.
 *   level 1: the two high planes (sign, exponent, high mantissa) run-length
 *            coded (zlib level 1, Z_RLE); the two low planes (the low 16
 *            mantissa bits, noise that does not compress) stored as they are
 *            when store_low is nonzero, else run-length coded too (give
 *            store_low = 0 for rows that are mostly NaN).  With store_low,
 *            plane 2 (lowest exponent bit + top 7 mantissa bits) is stored
 *            too when its byte entropy is >= 7.5 bits (coding would save
 *            < ~6%; most posterior samples: 1-2% of the row at half the
 *            coding time).  For posterior samples ~3x faster than zlib
 *            level 1 and ~3% smaller.
 *   level 2..9: zlib at that level, default strategy, on every plane.
 * shuf: scratch of 4 n bytes; out: cap bytes, cap >= sf_chunk_f32_bound(n);
 * *len gets the bytes used.  Thread-safe (no shared state).
 * Errors: SF_EINVAL (level outside 1..9, cap too small), SF_ENOMEM,
 * SF_EINTERNAL (another zlib failure). */
sf_status sf_chunk_f32_encode(const float *x, size_t n, int level, int store_low, unsigned char *shuf,
                              unsigned char *out, size_t cap, size_t *len);

/* The deflate level (1..9) of dataset d when its rows can be written with
 * sf_chunk_f32_encode + H5Dwrite_chunk: rank 2, IEEE float32 little-endian
 * (and the native float is the same), chunks of exactly one row, filters
 * exactly shuffle then deflate; 0 otherwise (e.g. --compression 0, or a file
 * written with chunks of several rows): write those rows with H5Dwrite. */
int sf_chunk_f32_direct_level(hid_t d);

#endif
