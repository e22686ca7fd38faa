/*
 * sedflow/catalog.h — one in-memory representation of a galaxy photometry
 * catalog (ugriz fluxes in nanomaggies with inverse variances, redshift, an
 * identifier) and the readers that fill it: NSA FITS tables, SDSS Main Galaxy
 * Sample text tables, and a generic CSV / HDF5 format with named columns.
 * Layouts, columns and flags are documented in docs/CATALOG.md.
 *
 * Rows are never dropped silently: every row read is kept and its problems
 * are recorded as flag bits (per band and per row) with a readable reason
 * (sf_catalog_row_reason).  The one exception is an exact duplicate
 * identifier (NSA clusters overlap): only the first occurrence, in file
 * order, is kept and the number removed is reported in n_duplicates.
 *
 * Magnitudes are Pogson AB magnitudes on the nanomaggie scale:
 *   m = 22.5 - 2.5 log10(f_nmgy),  sigma_m = (2.5 / ln 10) sigma_f / f.
 * (SDSS asinh magnitudes are treated as Pogson; the difference is below
 * 1e-4 mag for every galaxy brighter than ~22 mag.)
 */
#ifndef SEDFLOW_CATALOG_H
#define SEDFLOW_CATALOG_H

#include <stddef.h>
#include <stdint.h>

#include "sedflow/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bands, in this order everywhere: u, g, r, i, z. */
#define SF_CATALOG_NBANDS 5
extern const char sf_catalog_band_names[SF_CATALOG_NBANDS + 1]; /* "ugriz" */

/* Flag bits.  Per-band bits (band_flags[i*5+b]) and the row word (flags[i])
 * use the same values; the row word is the OR of its five band words plus
 * SF_CAT_Z_BAD.  Bits 0..7 belong to the catalog readers; bits 8..31 are free
 * for later stages (inference checks) to OR into flags[i]. */
enum {
    SF_CAT_NONFINITE = 1u << 0,   /* flux, ivar, magnitude or sigma is NaN or infinite */
    SF_CAT_FLUX_NONPOS = 1u << 1, /* flux <= 0 nmgy: magnitude undefined */
    SF_CAT_IVAR_NONPOS = 1u << 2, /* ivar <= 0 (or sigma <= 0): no usable uncertainty */
    SF_CAT_MISSING = 1u << 3,     /* value absent: empty field, short row */
    SF_CAT_UNPARSED = 1u << 4,    /* text field that is not a number */
    SF_CAT_Z_BAD = 1u << 5,       /* redshift missing, unparsable or non-finite (row only) */
    SF_CAT_READER_MASK = 0xFFu    /* all bits owned by the catalog readers */
};

typedef enum {
    SF_CATALOG_AUTO = 0, /* detect from the file (sf_catalog_detect) */
    SF_CATALOG_NSA,      /* NSA FITS binary table (NSAID, Z, NMGY[7], NMGY_IVAR[7]) */
    SF_CATALOG_MGS,      /* SDSS MGS whitespace table, 19 columns */
    SF_CATALOG_CSV,      /* generic CSV with named columns */
    SF_CATALOG_HDF5      /* generic HDF5, named 1-D datasets */
} sf_catalog_format;

/* The catalog.  All arrays are malloc'd, row-major, n rows. */
typedef struct {
    size_t n;               /* rows kept */
    int64_t *id;            /* [n] NSAID, the id column, or the 0-based row number r when there is no id
                             * column; a bad id field (SF_CAT_ID_BAD) gives -(r + 1), which cannot be
                             * mistaken for a valid non-negative id (sf_catalog_bad_id) */
    double *z;              /* [n] redshift */
    double *flux_nmgy;      /* [n x 5] ugriz flux, nanomaggies (NaN where missing) */
    double *ivar_nmgy2;     /* [n x 5] inverse variance of flux, nmgy^-2 */
    uint32_t *band_flags;   /* [n x 5] SF_CAT_* bits per band */
    uint32_t *flags;        /* [n] OR of the row's band flags, plus SF_CAT_Z_BAD */
    size_t n_read;          /* rows read from the files, before duplicate removal */
    size_t n_duplicates;    /* rows removed because their id was already seen */
    sf_catalog_format format;
} sf_catalog;

/* Column names of the generic formats (CSV header names / HDF5 dataset
 * names), matched case-insensitively.  Defaults (sf_catalog_options_default):
 * id, z, flux_u..flux_z, ivar_u..ivar_z, mag_u..mag_z, sigma_u..sigma_z.
 * Per band, flux+ivar are used when both columns exist, else mag+sigma. */
#define SF_CATALOG_NAME_LEN 64
typedef struct {
    char id[SF_CATALOG_NAME_LEN]; /* optional column; row number when absent */
    char z[SF_CATALOG_NAME_LEN];
    char flux[SF_CATALOG_NBANDS][SF_CATALOG_NAME_LEN];  /* nmgy */
    char ivar[SF_CATALOG_NBANDS][SF_CATALOG_NAME_LEN];  /* nmgy^-2 */
    char mag[SF_CATALOG_NBANDS][SF_CATALOG_NAME_LEN];   /* AB mag */
    char sigma[SF_CATALOG_NBANDS][SF_CATALOG_NAME_LEN]; /* mag */
    char delimiter;   /* CSV field separator; 0 = detect (',' else tab else blanks) */
    int keep_duplicates; /* nonzero: keep rows whose id repeats (default 0: drop, counted) */
} sf_catalog_options;

/* Fill *opt with the default names. */
void sf_catalog_options_default(sf_catalog_options *opt);

/* Override names from "key=name[,key=name...]" where key is one of id, z,
 * flux_X, ivar_X, mag_X, sigma_X (X in ugriz), e.g. "z=Z_SPEC,flux_r=F_R".
 * SF_EINVAL on an unknown key or a name too long. */
sf_status sf_catalog_options_parse(sf_catalog_options *opt, const char *spec);

/* Allocate a catalog of n rows: values NaN, ids = row numbers, flags 0.
 * NULL when out of memory.  Free with sf_catalog_free (NULL is a no-op). */
sf_catalog *sf_catalog_alloc(size_t n);
void sf_catalog_free(sf_catalog *cat);

/* Detect the format of one file from its content: "SIMPLE  =" at byte 0 ->
 * NSA FITS; the HDF5 signature -> HDF5; otherwise text: CSV when the first
 * line names the z column and a flux_ or mag_ column for some band (with the
 * names of `opt`, NULL = defaults), MGS when the first data line has 19
 * numeric fields.  SF_EIO if unreadable, SF_EFORMAT if none fits. */
sf_status sf_catalog_detect(const char *path, const sf_catalog_options *opt, sf_catalog_format *fmt);

/* Read npaths files of one format (SF_CATALOG_AUTO: detected from the first
 * file; all files must then have that format) into one new catalog, rows in
 * file order, duplicates by id removed (first kept) unless
 * opt->keep_duplicates.  opt may be NULL (defaults).  Flags are set as
 * described above (sf_catalog_validate).  Errors: SF_EIO (cannot open),
 * SF_EFORMAT (required column absent, wrong type), SF_ENOMEM. */
sf_status sf_catalog_read(const char *const *paths, size_t npaths, sf_catalog_format fmt,
                          const sf_catalog_options *opt, sf_catalog **out);

/* The individual readers (same contract as sf_catalog_read).
 * NSA: extension 1 binary table, columns NSAID (integer), Z, NMGY[7] and
 *   NMGY_IVAR[7] (bands F,N,u,g,r,i,z; indices 2..6 are used).
 * MGS: whitespace table, '#' lines skipped, 19 columns zs, u,g,r,i,z, four
 *   colours, eu..ez, four colour errors; ids are 0-based row numbers over
 *   all files; mag/sigma converted to flux/ivar (sf_catalog_mag_to_nmgy).
 * CSV / HDF5: see sf_catalog_options and docs/CATALOG.md. */
sf_status sf_catalog_read_nsa(const char *const *paths, size_t npaths, sf_catalog **out);
sf_status sf_catalog_read_mgs(const char *const *paths, size_t npaths, sf_catalog **out);
sf_status sf_catalog_read_csv(const char *const *paths, size_t npaths, const sf_catalog_options *opt,
                              sf_catalog **out);
sf_status sf_catalog_read_hdf5(const char *const *paths, size_t npaths, const sf_catalog_options *opt,
                               sf_catalog **out);

/* Recompute the value-derived flags of every row from z, flux_nmgy and
 * ivar_nmgy2 (NONFINITE, FLUX_NONPOS, IVAR_NONPOS, Z_BAD for non-finite z),
 * keeping the sticky reader bits MISSING and UNPARSED (a missing or unparsed
 * value is stored as NaN and reported only as missing/unparsed) and any bit
 * >= 8.  Call after editing values by hand. */
void sf_catalog_validate(sf_catalog *cat);

/* Number of rows with no reader flag ((flags & SF_CAT_READER_MASK) == 0). */
size_t sf_catalog_count_valid(const sf_catalog *cat);

/* Short name of one flag bit ("flux <= 0", ...); "?" for an unknown bit. */
const char *sf_catalog_flag_name(uint32_t bit);

/* Readable reason for row i, e.g. "flux <= 0 (u,g); ivar <= 0 (z)" or "ok",
 * written to buf (len bytes, truncated, always terminated).  Bits >= 8 are
 * written as "flag bit N".  Returns buf. */
char *sf_catalog_row_reason(const sf_catalog *cat, size_t i, char *buf, size_t len);

/* Short name of a format ("nsa", "mgs", "csv", "hdf5", "auto"); and parse
 * one (SF_EINVAL on an unknown name). */
const char *sf_catalog_format_name(sf_catalog_format fmt);
sf_status sf_catalog_format_parse(const char *name, sf_catalog_format *fmt);

/* Unit conversions (pure; NaN in, NaN out).
 * nmgy -> AB mag: 22.5 - 2.5 log10(f) (NaN for f <= 0).
 * AB mag -> nmgy: 10^(-0.4 (m - 22.5)).
 * sigma_mag from flux and ivar: (2.5/ln10) / (f sqrt(ivar)) (NaN if f <= 0, ivar <= 0 or either is
 * not finite: an infinite ivar is no zero-error measurement, and sigma = 0 would be sampled).
 * sigma_nmgy from mag error: f (ln10/2.5) sigma_mag. */
double sf_catalog_nmgy_to_mag(double nmgy);
double sf_catalog_mag_to_nmgy(double mag);
double sf_catalog_sigma_mag(double nmgy, double ivar_nmgy2);

/* The id of a row whose id field is bad (SF_CAT_ID_BAD), from its 0-based
 * row number r: -(r + 1).  Negative, so it never equals a valid catalog id
 * (NSAIDs and the tests' ids are non-negative) and never merges two galaxies
 * in the duplicate check (which skips such rows anyway). */
static inline int64_t sf_catalog_bad_id(int64_t row) { return -(row + 1); }
double sf_catalog_sigma_nmgy(double nmgy, double sigma_mag);

#ifdef __cplusplus
}
#endif
#endif
