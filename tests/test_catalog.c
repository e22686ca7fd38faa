/* Catalog readers: NSA FITS (counts, duplicates, values against CFITSIO
 * directly), SDSS MGS (rows, mag -> nmgy conversion), generic CSV and HDF5
 * (bad rows flagged with the right reason), format detection. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <fitsio.h>

#include "io/h5util.h"
#include "io/catalog_priv.h"
#include "sedflow/catalog.h"
#include "testutil.h"

static const char *nsa_names[7] = {"A1367", "A2052", "A2063", "AWM4", "MKW11", "MKW8", "NGC6107"};

static int has_reason(const sf_catalog *c, size_t i, const char *want)
{
    char buf[256];
    sf_catalog_row_reason(c, i, buf, sizeof buf);
    return strstr(buf, want) != NULL;
}

static size_t find_id(const sf_catalog *c, int64_t id)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->id[i] == id) return i;
    return (size_t)-1;
}

static void test_conversions(void)
{
    CHECK_ABS(sf_catalog_nmgy_to_mag(1.0), 22.5, 1e-12, "1 nmgy = 22.5 mag");
    CHECK_REL(sf_catalog_mag_to_nmgy(20.0), 10.0, 1e-12, "20 mag = 10 nmgy");
    CHECK(isnan(sf_catalog_nmgy_to_mag(-1.0)), "negative flux has no magnitude");
    /* sigma_m = 2.5/ln10 * sigma_f / f: f = 10, ivar = 100 -> sigma_f = 0.1 */
    CHECK_REL(sf_catalog_sigma_mag(10.0, 100.0), 2.5 / log(10.0) * 0.01, 1e-12, "sigma_mag from ivar");
    CHECK(isnan(sf_catalog_sigma_mag(10.0, INFINITY)) && isnan(sf_catalog_sigma_mag(INFINITY, 1.0)),
          "sigma_mag of an infinite ivar or flux is NaN (not 0: such a galaxy is not sampled)");
    CHECK_REL(sf_catalog_sigma_nmgy(10.0, 2.5 / log(10.0) * 0.01), 0.1, 1e-12, "sigma_nmgy from sigma_mag");
}

static void test_nsa(void)
{
    char paths[7][1024];
    const char *pp[7];
    for (int k = 0; k < 7; k++) {
        snprintf(paths[k], sizeof paths[k], "%s/nsa/%s_NSAmastertable.fits", tu_data_dir(), nsa_names[k]);
        pp[k] = paths[k];
    }
    sf_catalog_format fmt = SF_CATALOG_AUTO;
    CHECK(sf_catalog_detect(pp[0], NULL, &fmt) == SF_OK && fmt == SF_CATALOG_NSA, "NSA FITS detected (%s)",
          sf_last_error());
    sf_catalog *c = NULL;
    sf_status st = sf_catalog_read(pp, 7, SF_CATALOG_AUTO, NULL, &c);
    CHECK(st == SF_OK, "read 7 NSA files: %s", sf_last_error());
    if (st) return;
    CHECK(c->format == SF_CATALOG_NSA, "format nsa");
    CHECK(c->n_read == 3947, "NSA rows read %zu (expect 3947)", c->n_read);
    CHECK(c->n == 3418, "NSA distinct NSAID %zu (expect 3418)", c->n);
    CHECK(c->n_duplicates == 3947 - 3418, "duplicates removed %zu", c->n_duplicates);
    size_t valid = sf_catalog_count_valid(c);
    CHECK(valid == 3413, "NSA rows with complete ugriz flux > 0 and ivar > 0: %zu (expect 3413)", valid);
    /* Direct count: same criterion computed here from the arrays. */
    size_t direct = 0, flagged_reason = 0;
    for (size_t i = 0; i < c->n; i++) {
        int ok = isfinite(c->z[i]);
        for (int b = 0; b < 5; b++) ok &= c->flux_nmgy[i * 5 + b] > 0 && c->ivar_nmgy2[i * 5 + b] > 0;
        direct += ok;
        if (!ok) flagged_reason += c->flags[i] != 0 && !has_reason(c, i, "ok");
    }
    CHECK(direct == 3413, "direct count of good rows %zu", direct);
    CHECK(flagged_reason == c->n - 3413, "every bad row has a flag and a reason (%zu)", flagged_reason);
    for (size_t i = 0; i < c->n; i++)
        if (c->flags[i]) {
            char buf[256];
            printf("  flagged NSAID %lld: %s\n", (long long)c->id[i], sf_catalog_row_reason(c, i, buf, sizeof buf));
        }
    /* ids unique */
    int uniq = 1;
    for (size_t i = 1; i < c->n && uniq; i++)
        for (size_t j = 0; j < i; j++)
            if (c->id[i] == c->id[j]) {
                uniq = 0;
                break;
            }
    CHECK(uniq, "NSAIDs unique after duplicate removal");

    /* Values: first and last row of the first file against CFITSIO read here. */
    fitsfile *fp;
    int status = 0, col_f, col_iv, col_id, col_z, anynul;
    long nrows;
    fits_open_table(&fp, pp[0], READONLY, &status);
    fits_get_num_rows(fp, &nrows, &status);
    fits_get_colnum(fp, CASEINSEN, "NMGY", &col_f, &status);
    fits_get_colnum(fp, CASEINSEN, "NMGY_IVAR", &col_iv, &status);
    fits_get_colnum(fp, CASEINSEN, "NSAID", &col_id, &status);
    fits_get_colnum(fp, CASEINSEN, "Z", &col_z, &status);
    for (long row = 1; row <= nrows && !status; row += nrows - 1) {
        float f[7], iv[7], z;
        long long id;
        fits_read_col(fp, TFLOAT, col_f, row, 1, 7, NULL, f, &anynul, &status);
        fits_read_col(fp, TFLOAT, col_iv, row, 1, 7, NULL, iv, &anynul, &status);
        fits_read_col(fp, TLONGLONG, col_id, row, 1, 1, NULL, &id, &anynul, &status);
        fits_read_col(fp, TFLOAT, col_z, row, 1, 1, NULL, &z, &anynul, &status);
        size_t i = find_id(c, id);
        CHECK(i != (size_t)-1, "NSAID %lld of row %ld present", id, row);
        if (i == (size_t)-1) break;
        CHECK(c->z[i] == (double)z, "Z of NSAID %lld: %g", id, c->z[i]);
        int same = 1;
        for (int b = 0; b < 5; b++)
            same &= c->flux_nmgy[i * 5 + b] == (double)f[2 + b] && c->ivar_nmgy2[i * 5 + b] == (double)iv[2 + b];
        CHECK(same, "NMGY[2..6], NMGY_IVAR[2..6] of NSAID %lld are ugriz (u = %g nmgy)", id, c->flux_nmgy[i * 5]);
    }
    CHECK(status == 0, "CFITSIO direct read status %d", status);
    fits_close_file(fp, &status);

    /* Duplicates keep the first: reading files in reverse order gives the
     * same ids; the row of an id present in two files comes from the first
     * file given. */
    sf_catalog *one = NULL;
    CHECK(sf_catalog_read_nsa(pp, 1, &one) == SF_OK, "read one NSA file");
    CHECK(one && one->n_duplicates == 0, "no duplicates within one file");
    sf_catalog_free(one);
    sf_catalog_free(c);

    const char *bad[1] = {"/nonexistent/x.fits"};
    CHECK(sf_catalog_read_nsa(bad, 1, &c) == SF_EIO, "missing FITS file -> SF_EIO (%s)", sf_last_error());
}

static void test_mgs(void)
{
    char tr[1024], te[1024];
    snprintf(tr, sizeof tr, "%s/sdss_mgs/SDSS_MGS.train", tu_data_dir());
    snprintf(te, sizeof te, "%s/sdss_mgs/SDSS_MGS.test", tu_data_dir());
    sf_catalog_format fmt = SF_CATALOG_AUTO;
    CHECK(sf_catalog_detect(tr, NULL, &fmt) == SF_OK && fmt == SF_CATALOG_MGS, "MGS detected (%s)",
          sf_last_error());
    const char *one[1] = {tr};
    sf_catalog *c = NULL;
    CHECK(sf_catalog_read(one, 1, SF_CATALOG_AUTO, NULL, &c) == SF_OK, "read MGS train: %s", sf_last_error());
    if (!c) return;
    CHECK(c->n == 5000, "MGS train rows %zu (expect 5000)", c->n);
    CHECK(sf_catalog_count_valid(c) == 5000, "all MGS train rows valid (%zu)", sf_catalog_count_valid(c));
    /* First data row: zs 0.083125, u 19.655096 ... eu 0.063680 (column 11),
     * eg 0.008182, ..., ez 0.005716. */
    const double mag[5] = {19.655096, 18.149183, 17.298376, 16.878389, 16.562674};
    const double sig[5] = {0.063680, 0.008182, 0.006024, 0.005716, 0.012887};
    CHECK(c->id[0] == 0 && c->z[0] == 0.083125, "row 0: id 0, z 0.083125");
    for (int b = 0; b < 5; b++) {
        double f = pow(10.0, -0.4 * (mag[b] - 22.5));
        double sf = f * log(10.0) / 2.5 * sig[b];
        CHECK_REL(c->flux_nmgy[b], f, 1e-12, "MGS row 0 flux (nmgy)");
        CHECK_REL(c->ivar_nmgy2[b], 1.0 / (sf * sf), 1e-12, "MGS row 0 ivar (nmgy^-2)");
        CHECK_REL(sf_catalog_sigma_mag(c->flux_nmgy[b], c->ivar_nmgy2[b]), sig[b], 1e-10,
                  "MGS row 0 sigma_mag round trip");
    }
    CHECK_REL(c->flux_nmgy[0], 13.73920, 1e-5, "u = 19.655 mag is 13.739 nmgy");
    sf_catalog_free(c);
    const char *two[2] = {tr, te};
    CHECK(sf_catalog_read_mgs(two, 2, &c) == SF_OK && c->n == 10000, "MGS train+test rows 10000");
    if (c) {
        CHECK(c->id[5000] == 5000 && c->id[9999] == 9999, "MGS ids are global row numbers");
        CHECK(c->z[5000] == 0.122743, "second file's first row z 0.122743");
        CHECK_REL(c->flux_nmgy[5000 * 5 + 1], pow(10.0, -0.4 * (18.531603 - 22.5)), 1e-12,
                  "second file row 0 g flux");
    }
    sf_catalog_free(c);
}

static const char *tmp_path(const char *name)
{
    static char buf[4][512];
    static int k = 0;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "/tmp/sedflow_test_catalog_%ld_%s", (long)getpid(), name);
    return buf[k];
}

static void test_csv(void)
{
    const char *p = tmp_path("flux.csv");
    FILE *fp = fopen(p, "w");
    fprintf(fp, "id,z,flux_u,flux_g,flux_r,flux_i,flux_z,ivar_u,ivar_g,ivar_r,ivar_i,ivar_z,extra\n"
                "# a comment line\n"
                "101,0.05,10,20,30,40,50,1,2,3,4,5,x\n"
                "102,0.05,10,nan,30,40,50,1,2,3,4,5,x\n"
                "103,0.05,10,20,30,40,50,1,2,0,4,5,x\n"
                "104,0.05,10,20,30,-1,50,1,2,3,4,5,x\n"
                "105,0.05,10,20,30,40,,1,2,3,4,5,x\n"
                "106,0.05,10,20,30,40,50,1,2,3,4\n"
                "107,abc,10,20,30,40,50,1,2,3,4,5,x\n"
                "108,0.05,foo,20,30,40,50,1,2,3,4,5,x\n"
                "\n"
                "101,0.07,11,21,31,41,51,1,2,3,4,5,x\n"
                "110,0.05,0,20,30,40,50,-3,2,3,4,5,x\n");
    fclose(fp);
    sf_catalog_format fmt = SF_CATALOG_AUTO;
    CHECK(sf_catalog_detect(p, NULL, &fmt) == SF_OK && fmt == SF_CATALOG_CSV, "CSV detected");
    sf_catalog *c = NULL;
    const char *pp[1] = {p};
    sf_status st = sf_catalog_read(pp, 1, SF_CATALOG_AUTO, NULL, &c);
    CHECK(st == SF_OK, "read CSV: %s", sf_last_error());
    if (!c) return;
    CHECK(c->n_read == 10 && c->n == 9 && c->n_duplicates == 1, "CSV: 10 rows read, 1 duplicate id removed (%zu)",
          c->n);
    CHECK(c->id[0] == 101 && c->z[0] == 0.05 && c->flux_nmgy[0] == 10, "duplicate 101: first occurrence kept");
    CHECK(c->flags[0] == 0 && has_reason(c, 0, "ok"), "good row ok");
    CHECK(c->flux_nmgy[4] == 50 && c->ivar_nmgy2[3] == 4, "values in place");
    CHECK(c->flags[1] == SF_CAT_NONFINITE && c->band_flags[1 * 5 + 1] == SF_CAT_NONFINITE &&
              has_reason(c, 1, "non-finite value in band g"),
          "NaN flux_g -> non-finite in band g");
    CHECK(c->flags[2] == SF_CAT_IVAR_NONPOS && has_reason(c, 2, "ivar <= 0 in band r"), "ivar_r 0 -> ivar <= 0 in band r");
    CHECK(c->flags[3] == SF_CAT_FLUX_NONPOS && has_reason(c, 3, "flux <= 0 in band i"), "flux_i -1 -> flux <= 0 in band i");
    CHECK(c->flags[4] == SF_CAT_MISSING && has_reason(c, 4, "missing value in band z"), "empty flux_z -> missing in band z");
    CHECK(c->flags[5] == SF_CAT_MISSING && c->band_flags[5 * 5 + 4] == SF_CAT_MISSING, "short row -> missing in band z");
    CHECK(c->flags[6] == SF_CAT_Z_BAD && has_reason(c, 6, "redshift"), "z 'abc' -> redshift flag");
    CHECK(c->flags[7] == SF_CAT_UNPARSED && has_reason(c, 7, "not a number in band u"), "flux_u 'foo' -> not a number in band u");
    CHECK(c->flags[8] == (SF_CAT_FLUX_NONPOS | SF_CAT_IVAR_NONPOS) && has_reason(c, 8, "flux <= 0 in band u") &&
              has_reason(c, 8, "ivar <= 0 in band u"),
          "flux 0 and ivar -3 in u");
    CHECK(sf_catalog_count_valid(c) == 1, "one valid CSV row");
    /* Flags survive a re-validation; a hand edit is picked up. */
    c->flux_nmgy[1 * 5 + 1] = 20;
    c->flags[0] |= 1u << 9; /* a later stage's bit is kept */
    sf_catalog_validate(c);
    CHECK(c->flags[1] == 0 && c->flags[4] == SF_CAT_MISSING && c->flags[0] == (1u << 9),
          "validate: recomputes values, keeps missing and bits >= 8");
    CHECK(has_reason(c, 0, "flag bit 9"), "reason names a foreign bit");
    sf_catalog_free(c);
    c = NULL;

    /* Magnitudes with custom names (semicolon separated, different order). */
    const char *q = tmp_path("mag.csv");
    fp = fopen(q, "w");
    fprintf(fp, "NAME;ZSPEC;U;EU;G;EG;R;ER;I;EI;Zm;EZm\n"
                "7;0.1;20;0.1;19;0.02;18;0.01;17.5;0.01;17;0.02\n"
                "8;0.1;20;0;19;0.02;18;0.01;17.5;0.01;17;0.02\n"
                "x;0.1;20;0.1;19;0.02;18;0.01;17.5;0.01;17;NA\n"
                "9;0.1;99;9.99;19;0.02;18;0.01;17.5;0.01;17;0.02\n");
    fclose(fp);
    sf_catalog_options opt;
    sf_catalog_options_default(&opt);
    CHECK(sf_catalog_options_parse(&opt, "id=name,z=zspec,mag_u=U,sigma_u=EU,mag_g=G,sigma_g=EG,mag_r=R,"
                                         "sigma_r=ER,mag_i=I,sigma_i=EI,mag_z=Zm,sigma_z=EZm") == SF_OK,
          "parse column overrides");
    CHECK(sf_catalog_options_parse(&opt, "flux_q=A") == SF_EINVAL, "unknown key rejected");
    CHECK(sf_catalog_options_parse(&opt, "z") == SF_EINVAL, "key without name rejected");
    fmt = SF_CATALOG_AUTO;
    CHECK(sf_catalog_detect(q, &opt, &fmt) == SF_OK && fmt == SF_CATALOG_CSV, "CSV with custom names detected");
    pp[0] = q;
    st = sf_catalog_read(pp, 1, SF_CATALOG_CSV, &opt, &c);
    CHECK(st == SF_OK && c && c->n == 4, "read mag CSV: %s", sf_last_error());
    if (c) {
        CHECK(c->id[0] == 7 && c->flags[0] == 0, "mag row ok");
        CHECK_REL(c->flux_nmgy[2], 10.0 * pow(10.0, 0.4 * 2.0), 1e-12, "r = 18 mag -> 63.1 nmgy");
        CHECK_REL(sf_catalog_sigma_mag(c->flux_nmgy[0], c->ivar_nmgy2[0]), 0.1, 1e-12, "sigma_u round trip");
        CHECK(c->flags[1] == SF_CAT_IVAR_NONPOS && c->band_flags[5] == SF_CAT_IVAR_NONPOS,
              "sigma 0 -> ivar <= 0 in band u");
        CHECK((c->flags[2] & SF_CAT_MISSING) && c->band_flags[2 * 5 + 4] == SF_CAT_MISSING &&
                  has_reason(c, 2, "id missing"),
              "sigma_z NA -> missing in band z; bad id flagged");
        CHECK(c->id[2] == -3, "bad id replaced by -(row number + 1)");
        CHECK(c->flags[3] == SF_CAT_MISSING && c->band_flags[3 * 5] == SF_CAT_MISSING && isnan(c->flux_nmgy[3 * 5]) &&
                  has_reason(c, 3, "missing value in band u"),
              "u = 99 mag (not measured) -> missing in band u");
    }
    sf_catalog_free(c);
    c = NULL;

    /* A required column absent -> SF_EFORMAT naming it. */
    const char *r = tmp_path("nocol.csv");
    fp = fopen(r, "w");
    fprintf(fp, "id,z,flux_u,flux_g,flux_r,flux_i,ivar_u,ivar_g,ivar_r,ivar_i\n1,0.1,1,1,1,1,1,1,1,1\n");
    fclose(fp);
    pp[0] = r;
    st = sf_catalog_read_csv(pp, 1, NULL, &c);
    CHECK(st == SF_EFORMAT && strstr(sf_last_error(), "band z"), "missing band column -> SF_EFORMAT: %s",
          sf_last_error());
    CHECK(c == NULL, "no catalog on failure");

    /* A UTF-8 byte-order mark before the header (spreadsheet exports): the first
     * column, here id, is still found. */
    const char *b = tmp_path("bom.csv");
    fp = fopen(b, "w");
    fprintf(fp, "\xEF\xBB\xBFid,z,flux_u,flux_g,flux_r,flux_i,flux_z,ivar_u,ivar_g,ivar_r,ivar_i,ivar_z\n"
                "4242,0.05,10,20,30,40,50,1,2,3,4,5\n");
    fclose(fp);
    fmt = SF_CATALOG_AUTO;
    CHECK(sf_catalog_detect(b, NULL, &fmt) == SF_OK && fmt == SF_CATALOG_CSV, "CSV with a byte-order mark detected");
    pp[0] = b;
    st = sf_catalog_read(pp, 1, SF_CATALOG_AUTO, NULL, &c);
    CHECK(st == SF_OK && c && c->n == 1 && c->id[0] == 4242 && c->flags[0] == 0,
          "byte-order mark: id column read (id %lld)", c ? (long long)c->id[0] : -1LL);
    sf_catalog_free(c);
    c = NULL;
    remove(p);
    remove(q);
    remove(r);
    remove(b);
}

static void test_hdf5(void)
{
    const char *p = tmp_path("cat.h5");
    hid_t f;
    CHECK(sf_h5_create(p, &f) == SF_OK, "create HDF5 catalog");
    const size_t n = 4;
    size_t dims[1] = {n};
    long long id[4] = {5, 6, 7, 8};
    double z[4] = {0.01, 0.02, NAN, 0.04};
    sf_h5_write_int64(f, "ID", 1, dims, id, 0);
    sf_h5_write_double(f, "z", 1, dims, z, 0);
    /* u via magnitudes, g..z via fluxes (upper-case names). */
    double mu[4] = {20, 20, 20, 20}, su[4] = {0.1, 0.1, 0.1, 0.1};
    sf_h5_write_double(f, "mag_u", 1, dims, mu, 0);
    sf_h5_write_double(f, "sigma_u", 1, dims, su, 0);
    for (int b = 1; b < 5; b++) {
        double fl[4] = {10, 10, 10, 10}, iv[4] = {1, 1, 1, 1};
        if (b == 1) fl[1] = NAN;
        if (b == 2) iv[2] = 0;
        if (b == 3) fl[3] = -2;
        char nf[16], ni[16];
        snprintf(nf, sizeof nf, "FLUX_%c", "ugriz"[b]);
        snprintf(ni, sizeof ni, "IVAR_%c", "ugriz"[b]);
        sf_h5_write_double(f, nf, 1, dims, fl, 0);
        sf_h5_write_double(f, ni, 1, dims, iv, 0);
    }
    H5Fclose(f);
    sf_catalog_format fmt = SF_CATALOG_AUTO;
    CHECK(sf_catalog_detect(p, NULL, &fmt) == SF_OK && fmt == SF_CATALOG_HDF5, "HDF5 detected");
    sf_catalog *c = NULL;
    const char *pp[1] = {p};
    sf_status st = sf_catalog_read(pp, 1, SF_CATALOG_AUTO, NULL, &c);
    CHECK(st == SF_OK && c && c->n == 4, "read HDF5 catalog: %s", sf_last_error());
    if (c) {
        CHECK(c->id[0] == 5 && c->id[3] == 8, "HDF5 ids");
        CHECK(c->flags[0] == 0, "row 0 ok");
        CHECK_REL(c->flux_nmgy[0], 10.0, 1e-12, "u = 20 mag -> 10 nmgy");
        CHECK(c->flags[1] == SF_CAT_NONFINITE && has_reason(c, 1, "non-finite value in band g"), "NaN flux_g flagged");
        CHECK(c->flags[2] == (SF_CAT_IVAR_NONPOS | SF_CAT_Z_BAD) && has_reason(c, 2, "ivar <= 0 in band r") &&
                  has_reason(c, 2, "redshift"),
              "ivar_r 0 and z NaN flagged");
        CHECK(c->flags[3] == SF_CAT_FLUX_NONPOS && has_reason(c, 3, "flux <= 0 in band i"), "negative flux_i flagged");
    }
    sf_catalog_free(c);
    c = NULL;

    /* Floating-point ids: integral values kept, 1.2 / 1.7 / 1e30 / NaN flagged (not truncated into
     * a false duplicate or saturated). */
    const char *pf = tmp_path("fid.h5");
    CHECK(sf_h5_create(pf, &f) == SF_OK, "create HDF5 catalog with float ids");
    {
        const size_t nf = 5;
        size_t df[1] = {nf};
        double fid[5] = {3.0, 1.2, 1.7, 1e30, NAN}, zf[5] = {0.05, 0.05, 0.05, 0.05, 0.05}, one[5] = {1, 1, 1, 1, 1};
        sf_h5_write_double(f, "id", 1, df, fid, 0);
        sf_h5_write_double(f, "z", 1, df, zf, 0);
        for (int b = 0; b < 5; b++) {
            char nf_[16], ni[16];
            snprintf(nf_, sizeof nf_, "flux_%c", "ugriz"[b]);
            snprintf(ni, sizeof ni, "ivar_%c", "ugriz"[b]);
            sf_h5_write_double(f, nf_, 1, df, one, 0);
            sf_h5_write_double(f, ni, 1, df, one, 0);
        }
        H5Fclose(f);
        pp[0] = pf;
        st = sf_catalog_read(pp, 1, SF_CATALOG_AUTO, NULL, &c);
        CHECK(st == SF_OK && c && c->n == 5 && c->n_duplicates == 0, "float ids: 5 rows, no false duplicates (%s)",
              sf_last_error());
        if (c && c->n == 5) {
            CHECK(c->id[0] == 3 && c->flags[0] == 0, "float id 3.0 -> 3");
            int bad = 1;
            for (int k = 1; k < 5; k++)
                bad = bad && (c->flags[k] & SF_CAT_ID_BAD) && has_reason(c, k, "id") && c->id[k] == -(k + 1);
            CHECK(bad, "float ids 1.2, 1.7, 1e30, NaN flagged as not integers, ids -(row + 1): no clash with id 3");
        }
        remove(pf);
        pp[0] = p;
    }
    sf_catalog_free(c);
    c = NULL;
    sf_catalog_options opt;
    sf_catalog_options_default(&opt);
    sf_catalog_options_parse(&opt, "flux_z=nothere,mag_z=nothere2");
    st = sf_catalog_read_hdf5(pp, 1, &opt, &c);
    CHECK(st == SF_EFORMAT && c == NULL, "HDF5 missing band dataset -> SF_EFORMAT: %s", sf_last_error());
    remove(p);
}

int main(void)
{
    test_conversions();
    test_nsa();
    test_mgs();
    test_csv();
    test_hdf5();
    CHECK(sf_catalog_format_name(SF_CATALOG_MGS)[0] == 'm', "format name");
    sf_catalog_format f;
    CHECK(sf_catalog_format_parse("HDF5", &f) == SF_OK && f == SF_CATALOG_HDF5, "format parse");
    CHECK(sf_catalog_format_parse("xls", &f) == SF_EINVAL, "unknown format rejected");
    sf_catalog_free(NULL);
    return tu_finish("test_catalog");
}
