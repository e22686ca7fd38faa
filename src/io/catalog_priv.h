/*
 * io/catalog_priv.h — helpers shared by the catalog readers (catalog*.c);
 * not part of the public API.
 */
#ifndef SEDFLOW_IO_CATALOG_PRIV_H
#define SEDFLOW_IO_CATALOG_PRIV_H

#include "sedflow/catalog.h"

/* Id that could not be read (missing, unparsable): row flag bit. */
#define SF_CAT_ID_BAD (1u << 6)

/* |magnitude| at or above this is a catalog's "not measured" code (99, -99,
 * -9999), read as a missing value; real galaxies lie within ~5-35 mag. */
#define SF_CAT_MAG_SENTINEL 50.0

/* Grow every array of c to hold cap rows (n unchanged, new rows undefined). */
sf_status sf_catalog__reserve(sf_catalog *c, size_t cap);

/* Append one row with NaN values, id = row number, flags 0; grows by
 * doubling (*cap is the current capacity).  Returns the row index via *row. */
sf_status sf_catalog__push(sf_catalog *c, size_t *cap, size_t *row);

/* Set band b of row i from an AB magnitude and its 1-sigma error (mag):
 * flux = 10^(-0.4 (m - 22.5)), ivar = 1 / sigma_f^2 with
 * sigma_f = f ln10/2.5 sigma_m; sigma <= 0 -> ivar 0; non-finite -> NaN. */
void sf_catalog__set_mag(sf_catalog *c, size_t i, int b, double mag, double sigma_mag);

/* Reads one file of a multi-file catalog into *part; base = rows of the
 * files before it (for ids made from row numbers); ctx = the reader's. */
typedef sf_status (*sf_catalog__read_fn)(const char *path, size_t base, const void *ctx, sf_catalog **part);

/* Read npaths files (what = "NSA", "CSV", ... for the error when there are
 * none) with read_one, stopping at the first error; concatenate them into
 * *out, ids kept; then remove duplicate ids (unless keep_duplicates) and
 * validate.  n_read = total rows.  Errors: SF_EINVAL (no files), SF_ENOMEM,
 * read_one's. */
sf_status sf_catalog__read_files(const char *const *paths, size_t npaths, const char *what, sf_catalog__read_fn read_one,
                                 const void *ctx, int keep_duplicates, sf_catalog_format fmt, sf_catalog **out);

/* Case-insensitive equality of two names. */
int sf_catalog__name_eq(const char *a, const char *b);

/* Past a UTF-8 byte-order mark (spreadsheet "CSV UTF-8" exports start with
 * one), so that the first column name is read as written. */
static inline char *sf_cat_skip_bom(char *p)
{
    return ((unsigned char)p[0] == 0xEF && (unsigned char)p[1] == 0xBB && (unsigned char)p[2] == 0xBF) ? p + 3 : p;
}

#endif
