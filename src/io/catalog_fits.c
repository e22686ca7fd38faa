/*
 * The FITS summary table of a sedflow infer output file (sf_infer_write_fits;
 * columns: docs/INFER.md s5), one row per galaxy, written with CFITSIO to
 * <path>.tmp and renamed.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fitsio.h>

#include "io/catalog_out_priv.h"
#include "io/h5util.h"
#include "sedflow/infer.h"

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
    enum { NCOLS = 1 + 1 + 10 + 3 * SF_INFER_NQ + 7 };
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
    COL("MCMC", "1L", "");
    COL("MCMC_RHAT_MAX", "1D", "");
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
    hid_t strt = sf_infer_h5_str_type();
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
    if ((st = sf_infer_h5_read_all(h, "id", H5T_NATIVE_LLONG, lcol))) goto out;
    fits_write_col(fp, TLONGLONG, c++, 1, 1, (LONGLONG)n, lcol, &status);
    if ((st = sf_infer_h5_read_all(h, "z", H5T_NATIVE_DOUBLE, dc))) goto out;
    fits_write_col(fp, TDOUBLE, c++, 1, 1, (LONGLONG)n, dc, &status);
    for (int k = 0; k < 2; k++)
        for (int b = 0; b < SF_CATALOG_NBANDS; b++) {
            char nm[32];
            snprintf(nm, sizeof nm, "%s_%c", k ? "sigma" : "mag", sf_catalog_band_names[b]);
            if ((st = sf_infer_h5_read_all(h, nm, H5T_NATIVE_DOUBLE, dc))) goto out;
            fits_write_col(fp, TDOUBLE, c++, 1, 1, (LONGLONG)n, dc, &status);
        }
    for (int q = 0; q < SF_INFER_NQ; q++) {
        char nm[64];
        snprintf(nm, sizeof nm, "summary/%s", sf_infer_q_names[q]);
        if ((st = sf_infer_h5_read_all(h, nm, H5T_NATIVE_DOUBLE, dcol))) goto out;
        for (int k = 0; k < 3; k++) {
            for (size_t i = 0; i < n; i++) dc[i] = dcol[i * 3 + (size_t)k];
            fits_write_col(fp, TDOUBLE, c++, 1, 1, (LONGLONG)n, dc, &status);
        }
    }
    if ((st = sf_infer_h5_read_all(h, "acceptance", H5T_NATIVE_DOUBLE, dc))) goto out;
    fits_write_col(fp, TDOUBLE, c++, 1, 1, (LONGLONG)n, dc, &status);
    if ((st = sf_infer_h5_read_all(h, "n_accepted", H5T_NATIVE_LLONG, lcol))) goto out;
    fits_write_col(fp, TLONGLONG, c++, 1, 1, (LONGLONG)n, lcol, &status);
    if ((st = sf_infer_h5_read_all(h, "flags", H5T_NATIVE_UINT32, fl))) goto out;
    for (size_t i = 0; i < n; i++) lcol[i] = fl[i], lg[i] = fl[i] == 0;
    fits_write_col(fp, TLONGLONG, c++, 1, 1, (LONGLONG)n, lcol, &status);
    fits_write_col(fp, TLOGICAL, c++, 1, 1, (LONGLONG)n, lg, &status);
    {
        signed char *mc = malloc(n);
        hid_t bt = sf_infer_h5_bool_type();
        st = mc ? sf_infer_h5_read_all(h, "mcmc", bt, mc) : SF_ERROR(SF_ENOMEM, "out of memory");
        H5Tclose(bt);
        for (size_t i = 0; !st && i < n; i++) lg[i] = mc[i] != 0;
        free(mc);
        if (st) goto out;
    }
    fits_write_col(fp, TLOGICAL, c++, 1, 1, (LONGLONG)n, lg, &status);
    if ((st = sf_infer_h5_read_all(h, "mcmc_rhat_max", H5T_NATIVE_DOUBLE, dc))) goto out;
    fits_write_col(fp, TDOUBLE, c++, 1, 1, (LONGLONG)n, dc, &status);
    if ((st = sf_infer_h5_read_all(h, "reason", strt, reason))) goto out;
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
