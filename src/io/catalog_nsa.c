/* NSA FITS reader (CFITSIO): first binary-table extension with columns
 * NSAID (integer), Z (float), NMGY[7] and NMGY_IVAR[7] (bands F, N, u, g, r,
 * i, z; indices 2..6 are ugriz).  CFITSIO converts the big-endian columns. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <fitsio.h>

#include "io/catalog_priv.h"

#define NB SF_CATALOG_NBANDS
#define NSA_NBANDS 7
#define NSA_FIRST_BAND 2 /* u */

static sf_status fits_fail(int status, const char *path, const char *what)
{
    char txt[FLEN_STATUS];
    fits_get_errstatus(status, txt);
    fits_clear_errmsg();
    return SF_ERROR(status == FILE_NOT_OPENED ? SF_EIO : SF_EFORMAT, "'%s': %s: CFITSIO %d (%s)", path, what, status,
                    txt);
}

/* Column number of `name` with `repeat` elements. */
static sf_status find_col(fitsfile *fp, const char *path, const char *name, long repeat, int *col)
{
    int status = 0;
    char cname[FLEN_VALUE];
    strncpy(cname, name, sizeof cname - 1);
    cname[sizeof cname - 1] = '\0';
    if (fits_get_colnum(fp, CASEINSEN, cname, col, &status)) {
        fits_clear_errmsg();
        return SF_ERROR(SF_EFORMAT, "'%s': no column %s (not an NSA table?)", path, name);
    }
    int type;
    long rep, width;
    if (fits_get_coltype(fp, *col, &type, &rep, &width, &status)) return fits_fail(status, path, name);
    if (rep != repeat)
        return SF_ERROR(SF_EFORMAT, "'%s': column %s has %ld elements per row, expected %ld", path, name, rep,
                        repeat);
    return SF_OK;
}

static sf_status read_one(const char *path, size_t base, const void *ctx, sf_catalog **out)
{
    (void)base; /* ids are NSAIDs */
    (void)ctx;
    int status = 0;
    fitsfile *fp = NULL;
    sf_catalog *c = NULL;
    double *nmgy = NULL, *ivar = NULL;
    long long *ids = NULL;
    sf_status st = SF_OK;
    if (fits_open_table(&fp, path, READONLY, &status)) return fits_fail(status, path, "open table");
    long nrows = 0;
    int c_id, c_z, c_f, c_iv;
    if (fits_get_num_rows(fp, &nrows, &status)) {
        st = fits_fail(status, path, "row count");
        goto done;
    }
    if ((st = find_col(fp, path, "NSAID", 1, &c_id)) || (st = find_col(fp, path, "Z", 1, &c_z)) ||
        (st = find_col(fp, path, "NMGY", NSA_NBANDS, &c_f)) ||
        (st = find_col(fp, path, "NMGY_IVAR", NSA_NBANDS, &c_iv)))
        goto done;
    size_t n = (size_t)nrows;
    c = sf_catalog_alloc(n);
    nmgy = malloc((n ? n : 1) * NSA_NBANDS * sizeof *nmgy);
    ivar = malloc((n ? n : 1) * NSA_NBANDS * sizeof *ivar);
    ids = malloc((n ? n : 1) * sizeof *ids);
    if (!c || !nmgy || !ivar || !ids) {
        st = SF_ERROR(SF_ENOMEM, "'%s': %zu rows", path, n);
        goto done;
    }
    if (n) {
        double nan = NAN;
        long long nul_id = -1;
        int anynul = 0;
        if (fits_read_col(fp, TLONGLONG, c_id, 1, 1, (LONGLONG)n, &nul_id, ids, &anynul, &status) ||
            fits_read_col(fp, TDOUBLE, c_z, 1, 1, (LONGLONG)n, &nan, c->z, &anynul, &status) ||
            fits_read_col(fp, TDOUBLE, c_f, 1, 1, (LONGLONG)n * NSA_NBANDS, &nan, nmgy, &anynul, &status) ||
            fits_read_col(fp, TDOUBLE, c_iv, 1, 1, (LONGLONG)n * NSA_NBANDS, &nan, ivar, &anynul, &status)) {
            st = fits_fail(status, path, "read columns");
            goto done;
        }
    }
    for (size_t i = 0; i < n; i++) {
        c->id[i] = (int64_t)ids[i];
        for (int b = 0; b < NB; b++) {
            c->flux_nmgy[i * NB + b] = nmgy[i * NSA_NBANDS + NSA_FIRST_BAND + b];
            c->ivar_nmgy2[i * NB + b] = ivar[i * NSA_NBANDS + NSA_FIRST_BAND + b];
        }
    }
done:
    status = 0;
    if (fp) fits_close_file(fp, &status);
    free(nmgy);
    free(ivar);
    free(ids);
    if (st) {
        sf_catalog_free(c);
        return st;
    }
    *out = c;
    return SF_OK;
}

sf_status sf_catalog_read_nsa(const char *const *paths, size_t npaths, sf_catalog **out)
{
    return sf_catalog__read_files(paths, npaths, "NSA", read_one, NULL, 0, SF_CATALOG_NSA, out);
}
