/* Catalog core: allocation, options, flags and reasons, unit conversions,
 * concatenation with duplicate removal, format detection and dispatch.
 * Readers live in catalog_nsa.c, catalog_text.c, catalog_hdf5.c. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/catalog_priv.h"

const char sf_catalog_band_names[SF_CATALOG_NBANDS + 1] = "ugriz";

#define NB SF_CATALOG_NBANDS
#define LN10_2P5 (2.302585092994045684 / 2.5)

/* ---- unit conversions ---------------------------------------------------- */

double sf_catalog_nmgy_to_mag(double nmgy)
{
    if (!(nmgy > 0)) return NAN;
    return 22.5 - 2.5 * log10(nmgy);
}

double sf_catalog_mag_to_nmgy(double mag)
{
    return pow(10.0, -0.4 * (mag - 22.5));
}

double sf_catalog_sigma_mag(double nmgy, double ivar_nmgy2)
{
    if (!(nmgy > 0) || !(ivar_nmgy2 > 0) || !isfinite(nmgy) || !isfinite(ivar_nmgy2)) return NAN;
    return 1.0 / (LN10_2P5 * nmgy * sqrt(ivar_nmgy2));
}

double sf_catalog_sigma_nmgy(double nmgy, double sigma_mag)
{
    return nmgy * LN10_2P5 * sigma_mag;
}

/* ---- options ------------------------------------------------------------- */

void sf_catalog_options_default(sf_catalog_options *opt)
{
    memset(opt, 0, sizeof *opt);
    strcpy(opt->id, "id");
    strcpy(opt->z, "z");
    for (int b = 0; b < NB; b++) {
        snprintf(opt->flux[b], SF_CATALOG_NAME_LEN, "flux_%c", sf_catalog_band_names[b]);
        snprintf(opt->ivar[b], SF_CATALOG_NAME_LEN, "ivar_%c", sf_catalog_band_names[b]);
        snprintf(opt->mag[b], SF_CATALOG_NAME_LEN, "mag_%c", sf_catalog_band_names[b]);
        snprintf(opt->sigma[b], SF_CATALOG_NAME_LEN, "sigma_%c", sf_catalog_band_names[b]);
    }
}

int sf_catalog__name_eq(const char *a, const char *b)
{
    for (; *a && *b; a++, b++)
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b)) return 0;
    return *a == *b;
}

/* Slot of options for key ("id", "z", "flux_u", ...) or NULL. */
static char *option_slot(sf_catalog_options *opt, const char *key, size_t keylen)
{
    char k[16];
    if (keylen >= sizeof k) return NULL;
    memcpy(k, key, keylen);
    k[keylen] = '\0';
    if (sf_catalog__name_eq(k, "id")) return opt->id;
    if (sf_catalog__name_eq(k, "z")) return opt->z;
    static const char *pre[4] = {"flux_", "ivar_", "mag_", "sigma_"};
    for (int p = 0; p < 4; p++) {
        size_t lp = strlen(pre[p]);
        if (keylen != lp + 1 || strncmp(k, pre[p], lp)) continue;
        const char *bp = strchr(sf_catalog_band_names, k[lp]);
        if (!bp || !k[lp]) return NULL;
        int b = (int)(bp - sf_catalog_band_names);
        char(*arr)[SF_CATALOG_NAME_LEN] = p == 0 ? opt->flux : p == 1 ? opt->ivar : p == 2 ? opt->mag : opt->sigma;
        return arr[b];
    }
    return NULL;
}

sf_status sf_catalog_options_parse(sf_catalog_options *opt, const char *spec)
{
    if (!opt || !spec) return SF_ERROR(SF_EINVAL, "NULL argument");
    const char *p = spec;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        if (!eq || eq == p || (size_t)(eq - p) + 1 >= len)
            return SF_ERROR(SF_EINVAL, "column override '%.*s' is not key=name", (int)len, p);
        char *slot = option_slot(opt, p, (size_t)(eq - p));
        if (!slot)
            return SF_ERROR(SF_EINVAL,
                            "unknown column key '%.*s' (expected id, z, flux_X, ivar_X, mag_X, sigma_X with X in ugriz)",
                            (int)(eq - p), p);
        size_t nlen = len - (size_t)(eq - p) - 1;
        if (nlen >= SF_CATALOG_NAME_LEN)
            return SF_ERROR(SF_EINVAL, "column name '%.*s' longer than %d characters", (int)nlen, eq + 1,
                            SF_CATALOG_NAME_LEN - 1);
        memcpy(slot, eq + 1, nlen);
        slot[nlen] = '\0';
        p = comma ? comma + 1 : p + len;
    }
    return SF_OK;
}

/* ---- allocation ---------------------------------------------------------- */

sf_status sf_catalog__reserve(sf_catalog *c, size_t cap)
{
    if (cap == 0) cap = 1;
#define GROW(field, count)                                                   \
    do {                                                                     \
        void *np_ = realloc(c->field, (count) * sizeof *c->field);           \
        if (!np_) return SF_ERROR(SF_ENOMEM, "catalog of %zu rows", cap);    \
        c->field = np_;                                                      \
    } while (0)
    GROW(id, cap);
    GROW(z, cap);
    GROW(flux_nmgy, cap * NB);
    GROW(ivar_nmgy2, cap * NB);
    GROW(band_flags, cap * NB);
    GROW(flags, cap);
#undef GROW
    return SF_OK;
}

static void init_row(sf_catalog *c, size_t i)
{
    c->id[i] = (int64_t)i;
    c->z[i] = NAN;
    c->flags[i] = 0;
    for (int b = 0; b < NB; b++) {
        c->flux_nmgy[i * NB + b] = NAN;
        c->ivar_nmgy2[i * NB + b] = NAN;
        c->band_flags[i * NB + b] = 0;
    }
}

sf_catalog *sf_catalog_alloc(size_t n)
{
    sf_catalog *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    if (sf_catalog__reserve(c, n)) {
        sf_catalog_free(c);
        return NULL;
    }
    c->n = n;
    c->n_read = n;
    for (size_t i = 0; i < n; i++) init_row(c, i);
    return c;
}

void sf_catalog_free(sf_catalog *c)
{
    if (!c) return;
    free(c->id);
    free(c->z);
    free(c->flux_nmgy);
    free(c->ivar_nmgy2);
    free(c->band_flags);
    free(c->flags);
    free(c);
}

sf_status sf_catalog__push(sf_catalog *c, size_t *cap, size_t *row)
{
    if (c->n >= *cap) {
        size_t nc = *cap ? 2 * *cap : 256;
        sf_status st = sf_catalog__reserve(c, nc);
        if (st) return st;
        *cap = nc;
    }
    init_row(c, c->n);
    *row = c->n++;
    return SF_OK;
}

void sf_catalog__set_mag(sf_catalog *c, size_t i, int b, double mag, double sigma_mag)
{
    if (isfinite(mag) && fabs(mag) >= SF_CAT_MAG_SENTINEL) { /* 99, -99, -9999: "not measured" */
        c->flux_nmgy[i * NB + b] = c->ivar_nmgy2[i * NB + b] = NAN;
        c->band_flags[i * NB + b] |= SF_CAT_MISSING;
        return;
    }
    double f = isfinite(mag) ? sf_catalog_mag_to_nmgy(mag) : NAN;
    double iv;
    if (!isfinite(sigma_mag) || !isfinite(f))
        iv = NAN;
    else if (sigma_mag <= 0)
        iv = 0.0;
    else {
        double sf = sf_catalog_sigma_nmgy(f, sigma_mag);
        iv = 1.0 / (sf * sf);
    }
    c->flux_nmgy[i * NB + b] = f;
    c->ivar_nmgy2[i * NB + b] = iv;
}

/* ---- validation and reasons ---------------------------------------------- */

static uint32_t check_value(double v, uint32_t sticky, uint32_t nonpos_bit)
{
    if (isnan(v) && sticky) return 0; /* already reported as missing/unparsed */
    if (!isfinite(v)) return SF_CAT_NONFINITE;
    if (v <= 0) return nonpos_bit;
    return 0;
}

void sf_catalog_validate(sf_catalog *c)
{
    if (!c) return;
    const uint32_t sticky_mask = SF_CAT_MISSING | SF_CAT_UNPARSED;
    for (size_t i = 0; i < c->n; i++) {
        uint32_t row = c->flags[i] & (~SF_CAT_READER_MASK | SF_CAT_ID_BAD);
        for (int b = 0; b < NB; b++) {
            uint32_t *bf = &c->band_flags[i * NB + b];
            uint32_t sticky = *bf & sticky_mask;
            uint32_t f = sticky;
            f |= check_value(c->flux_nmgy[i * NB + b], sticky, SF_CAT_FLUX_NONPOS);
            f |= check_value(c->ivar_nmgy2[i * NB + b], sticky, SF_CAT_IVAR_NONPOS);
            *bf = f;
            row |= f;
        }
        if (!isfinite(c->z[i])) row |= SF_CAT_Z_BAD;
        c->flags[i] = row;
    }
}

size_t sf_catalog_count_valid(const sf_catalog *c)
{
    size_t k = 0;
    if (!c) return 0;
    for (size_t i = 0; i < c->n; i++) k += (c->flags[i] & SF_CAT_READER_MASK) == 0;
    return k;
}

const char *sf_catalog_flag_name(uint32_t bit)
{
    switch (bit) {
    case SF_CAT_NONFINITE: return "non-finite value";
    case SF_CAT_FLUX_NONPOS: return "flux <= 0";
    case SF_CAT_IVAR_NONPOS: return "ivar <= 0";
    case SF_CAT_MISSING: return "missing value";
    case SF_CAT_UNPARSED: return "not a number";
    case SF_CAT_Z_BAD: return "redshift missing or non-finite";
    case SF_CAT_ID_BAD: return "id missing or not an integer";
    default: return "?";
    }
}

/* Append to buf at *pos (bounded). */
static void put(char *buf, size_t len, size_t *pos, const char *s)
{
    while (*s && *pos + 1 < len) buf[(*pos)++] = *s++;
    buf[*pos < len ? *pos : len - 1] = '\0';
}

char *sf_catalog_row_reason(const sf_catalog *c, size_t i, char *buf, size_t len)
{
    if (!buf || len == 0) return buf;
    buf[0] = '\0';
    if (!c || i >= c->n) return buf;
    size_t pos = 0;
    uint32_t row = c->flags[i];
    if (row == 0) {
        put(buf, len, &pos, "ok");
        return buf;
    }
    int first = 1;
    for (int bit = 0; bit < 32; bit++) {
        uint32_t m = 1u << bit;
        if (!(row & m)) continue;
        if (!first) put(buf, len, &pos, "; ");
        first = 0;
        if (m == SF_CAT_Z_BAD || m == SF_CAT_ID_BAD) {
            put(buf, len, &pos, sf_catalog_flag_name(m));
            continue;
        }
        if (!(m & SF_CAT_READER_MASK)) {
            char tmp[32];
            snprintf(tmp, sizeof tmp, "flag bit %d", bit);
            put(buf, len, &pos, tmp);
            continue;
        }
        /* "flux <= 0 in band z", "... in bands u,g": never a bare "z", which reads as redshift */
        int nband = 0;
        for (int b = 0; b < NB; b++) nband += (c->band_flags[i * NB + b] & m) != 0;
        put(buf, len, &pos, sf_catalog_flag_name(m));
        put(buf, len, &pos, nband > 1 ? " in bands " : " in band ");
        int any = 0;
        for (int b = 0; b < NB; b++)
            if (c->band_flags[i * NB + b] & m) {
                char t[3] = {any ? ',' : '\0', sf_catalog_band_names[b], '\0'};
                put(buf, len, &pos, any ? t : t + 1);
                any = 1;
            }
    }
    return buf;
}

/* ---- formats ------------------------------------------------------------- */

const char *sf_catalog_format_name(sf_catalog_format fmt)
{
    switch (fmt) {
    case SF_CATALOG_AUTO: return "auto";
    case SF_CATALOG_NSA: return "nsa";
    case SF_CATALOG_MGS: return "mgs";
    case SF_CATALOG_CSV: return "csv";
    case SF_CATALOG_HDF5: return "hdf5";
    }
    return "?";
}

sf_status sf_catalog_format_parse(const char *name, sf_catalog_format *fmt)
{
    static const sf_catalog_format all[] = {SF_CATALOG_AUTO, SF_CATALOG_NSA, SF_CATALOG_MGS, SF_CATALOG_CSV,
                                            SF_CATALOG_HDF5};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++)
        if (name && sf_catalog__name_eq(name, sf_catalog_format_name(all[k]))) {
            *fmt = all[k];
            return SF_OK;
        }
    if (name && (sf_catalog__name_eq(name, "fits"))) {
        *fmt = SF_CATALOG_NSA;
        return SF_OK;
    }
    return SF_ERROR(SF_EINVAL, "unknown catalog format '%s' (nsa, mgs, csv, hdf5, auto)", name ? name : "(null)");
}

/* Does the header line (modified) name the z column and a flux_ or mag_ column? */
static int header_matches(char *line, const sf_catalog_options *opt)
{
    int has_z = 0, has_band = 0;
    char *p = line, *save = NULL;
    if (*p == '#') p++;
    for (char *tok = strtok_r(p, ", \t\r\n;\"", &save); tok; tok = strtok_r(NULL, ", \t\r\n;\"", &save)) {
        if (sf_catalog__name_eq(tok, opt->z)) has_z = 1;
        for (int b = 0; b < NB; b++)
            if (sf_catalog__name_eq(tok, opt->flux[b]) || sf_catalog__name_eq(tok, opt->mag[b])) has_band = 1;
    }
    return has_z && has_band;
}

static int count_numeric_fields(const char *line)
{
    int k = 0;
    const char *p = line;
    for (;;) {
        while (*p == ' ' || *p == '\t') p++;
        if (!*p || *p == '\n' || *p == '\r') break;
        char *end;
        strtod(p, &end);
        if (end == p || !(*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r' || *end == '\0')) return -1;
        k++;
        p = end;
    }
    return k;
}

sf_status sf_catalog_detect(const char *path, const sf_catalog_options *opt_in, sf_catalog_format *fmt)
{
    sf_catalog_options def;
    if (!opt_in) {
        sf_catalog_options_default(&def);
        opt_in = &def;
    }
    FILE *fp = fopen(path, "rb");
    if (!fp) return SF_ERROR(SF_EIO, "cannot open catalog '%s'", path);
    unsigned char head[16] = {0};
    size_t got = fread(head, 1, sizeof head, fp);
    if (got >= 9 && !memcmp(head, "SIMPLE  =", 9)) {
        fclose(fp);
        *fmt = SF_CATALOG_NSA;
        return SF_OK;
    }
    static const unsigned char h5sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    if (got >= 8 && !memcmp(head, h5sig, 8)) {
        fclose(fp);
        *fmt = SF_CATALOG_HDF5;
        return SF_OK;
    }
    rewind(fp);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int first = 1, found = 0, nomem = 0;
    while (!found && (len = getline(&line, &cap, fp)) >= 0) {
        char *p = first ? sf_cat_skip_bom(line) : line;
        while (*p == ' ' || *p == '\t') p++;
        if (*p == '\n' || *p == '\r' || *p == '\0') continue;
        if (first) {
            first = 0;
            if (memchr(line, '\0', (size_t)len)) break; /* binary */
            char *copy = strdup(p);
            if (!copy) {
                nomem = 1;
                break;
            }
            int csv = header_matches(copy, opt_in);
            free(copy);
            if (csv) {
                *fmt = SF_CATALOG_CSV;
                found = 1;
                break;
            }
        }
        if (*p == '#') continue;
        if (count_numeric_fields(p) == 19) {
            *fmt = SF_CATALOG_MGS;
            found = 1;
        }
        break;
    }
    free(line);
    fclose(fp);
    if (nomem) return SF_ERROR(SF_ENOMEM, "line copy");
    if (!found)
        return SF_ERROR(SF_EFORMAT,
                        "'%s': not FITS, HDF5, a CSV whose header names '%s' and band columns, "
                        "or a 19-column SDSS MGS table",
                        path, opt_in->z);
    return SF_OK;
}

/* ---- concatenation and duplicates ---------------------------------------- */

typedef struct {
    int64_t id;
    size_t idx;
} id_idx;

static int cmp_id_idx(const void *a, const void *b)
{
    const id_idx *x = a, *y = b;
    if (x->id != y->id) return x->id < y->id ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static void copy_row(sf_catalog *d, size_t di, const sf_catalog *s, size_t si)
{
    d->id[di] = s->id[si];
    d->z[di] = s->z[si];
    d->flags[di] = s->flags[si];
    memcpy(&d->flux_nmgy[di * NB], &s->flux_nmgy[si * NB], NB * sizeof(double));
    memcpy(&d->ivar_nmgy2[di * NB], &s->ivar_nmgy2[si * NB], NB * sizeof(double));
    memcpy(&d->band_flags[di * NB], &s->band_flags[si * NB], NB * sizeof(uint32_t));
}

/* Concatenate parts (freed, array entries set to NULL) into *out, ids kept;
 * then remove duplicate ids (unless keep) and validate.  n_read = total. */
static sf_status finish(sf_catalog **parts, size_t nparts, int keep_duplicates, sf_catalog_format fmt,
                        sf_catalog **out)
{
    size_t total = 0;
    for (size_t k = 0; k < nparts; k++) total += parts[k]->n;
    sf_catalog *c = sf_catalog_alloc(total);
    if (!c) return SF_ERROR(SF_ENOMEM, "catalog of %zu rows", total);
    size_t r = 0;
    for (size_t k = 0; k < nparts; k++) {
        for (size_t i = 0; i < parts[k]->n; i++) copy_row(c, r++, parts[k], i);
        sf_catalog_free(parts[k]);
        parts[k] = NULL;
    }
    c->n_read = total;
    c->format = fmt;
    if (!keep_duplicates && total > 1) {
        id_idx *v = malloc(total * sizeof *v);
        unsigned char *drop = calloc(total, 1);
        if (!v || !drop) {
            free(v);
            free(drop);
            sf_catalog_free(c);
            return SF_ERROR(SF_ENOMEM, "duplicate check of %zu rows", total);
        }
        size_t m = 0;
        for (size_t i = 0; i < total; i++)
            if (!(c->flags[i] & SF_CAT_ID_BAD)) v[m++] = (id_idx){c->id[i], i};
        qsort(v, m, sizeof *v, cmp_id_idx);
        for (size_t j = 1; j < m; j++)
            if (v[j].id == v[j - 1].id) drop[v[j].idx] = 1;
        size_t w = 0;
        for (size_t i = 0; i < total; i++) {
            if (drop[i]) continue;
            if (w != i) copy_row(c, w, c, i);
            w++;
        }
        c->n_duplicates = total - w;
        c->n = w;
        free(v);
        free(drop);
    }
    sf_catalog_validate(c);
    *out = c;
    return SF_OK;
}

/* ---- dispatch ------------------------------------------------------------ */

sf_status sf_catalog_read(const char *const *paths, size_t npaths, sf_catalog_format fmt,
                          const sf_catalog_options *opt, sf_catalog **out)
{
    if (!paths || npaths == 0 || !out) return SF_ERROR(SF_EINVAL, "no catalog files given");
    *out = NULL;
    if (fmt == SF_CATALOG_AUTO) {
        sf_status st = sf_catalog_detect(paths[0], opt, &fmt);
        if (st) return st;
        for (size_t k = 1; k < npaths; k++) {
            sf_catalog_format f2;
            st = sf_catalog_detect(paths[k], opt, &f2);
            if (st) return st;
            if (f2 != fmt)
                return SF_ERROR(SF_EFORMAT, "'%s' looks like %s but '%s' like %s: give files of one format",
                                paths[0], sf_catalog_format_name(fmt), paths[k], sf_catalog_format_name(f2));
        }
    }
    switch (fmt) {
    case SF_CATALOG_NSA: return sf_catalog_read_nsa(paths, npaths, out);
    case SF_CATALOG_MGS: return sf_catalog_read_mgs(paths, npaths, out);
    case SF_CATALOG_CSV: return sf_catalog_read_csv(paths, npaths, opt, out);
    case SF_CATALOG_HDF5: return sf_catalog_read_hdf5(paths, npaths, opt, out);
    default: return SF_ERROR(SF_EINVAL, "unknown catalog format %d", (int)fmt);
    }
}

sf_status sf_catalog__read_files(const char *const *paths, size_t npaths, const char *what, sf_catalog__read_fn read_one,
                                 const void *ctx, int keep_duplicates, sf_catalog_format fmt, sf_catalog **out)
{
    if (!paths || npaths == 0 || !out) return SF_ERROR(SF_EINVAL, "no %s files given", what);
    *out = NULL;
    sf_catalog **parts = calloc(npaths, sizeof *parts);
    if (!parts) return SF_ERROR(SF_ENOMEM, "%zu files", npaths);
    sf_status st = SF_OK;
    size_t base = 0;
    for (size_t k = 0; k < npaths && !st; k++) {
        st = read_one(paths[k], base, ctx, &parts[k]);
        if (!st) base += parts[k]->n;
    }
    if (!st) st = finish(parts, npaths, keep_duplicates, fmt, out);
    for (size_t k = 0; k < npaths; k++) sf_catalog_free(parts[k]);
    free(parts);
    return st;
}
