/* Text catalog readers: SDSS Main Galaxy Sample tables (19 whitespace
 * columns, no ids) and generic CSV with a header of column names.  Both go
 * through one row parser driven by a column map. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "io/catalog_priv.h"

#define NB SF_CATALOG_NBANDS
#define MGS_NCOL 19

typedef struct {
    int id;            /* column index or -1 (row number) */
    int z;             /* column index */
    int mag_mode[NB];  /* 0: a = flux, b = ivar; 1: a = mag, b = sigma */
    int a[NB], b[NB];  /* column indices */
    char delim;        /* ',' ';' '\t' or ' ' (= runs of blanks) */
} colmap;

/* Split line in place into fields (pointers into line), trimmed, quotes
 * removed.  Returns the field count or -1 when out of memory. */
static int split(char *line, char delim, char ***fields, size_t *cap)
{
    int n = 0;
    char *p = line;
    size_t l = strlen(line);
    while (l && (line[l - 1] == '\n' || line[l - 1] == '\r')) line[--l] = '\0';
    for (;;) {
        if (delim == ' ')
            while (*p == ' ' || *p == '\t') p++;
        if (delim == ' ' && !*p) break;
        if ((size_t)n >= *cap) {
            size_t nc = *cap ? 2 * *cap : 32;
            char **nf = realloc(*fields, nc * sizeof *nf);
            if (!nf) return -1;
            *fields = nf;
            *cap = nc;
        }
        char *start = p;
        if (delim == ' ')
            while (*p && *p != ' ' && *p != '\t') p++;
        else
            while (*p && *p != delim) p++;
        int last = (*p == '\0');
        *p = '\0';
        /* trim blanks and quotes */
        while (*start == ' ' || *start == '\t') start++;
        char *e = start + strlen(start);
        while (e > start && (e[-1] == ' ' || e[-1] == '\t')) *--e = '\0';
        if (e - start >= 2 && *start == '"' && e[-1] == '"') {
            e[-1] = '\0';
            start++;
        }
        (*fields)[n++] = start;
        if (last) break;
        p++;
    }
    return n;
}

/* 0 = number, SF_CAT_MISSING = empty/NA/null, SF_CAT_UNPARSED = other text. */
static uint32_t parse_double(const char *s, double *v)
{
    *v = NAN;
    if (!s || !*s || sf_catalog__name_eq(s, "na") || sf_catalog__name_eq(s, "null") ||
        sf_catalog__name_eq(s, "none") || sf_catalog__name_eq(s, "--"))
        return SF_CAT_MISSING;
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (end == s || *end != '\0') return SF_CAT_UNPARSED;
    *v = x; /* overflow gives +-inf: flagged non-finite later */
    return 0;
}

static uint32_t parse_id(const char *s, int64_t *v)
{
    if (!s || !*s) return SF_CAT_MISSING;
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (end == s || *end != '\0' || errno) return SF_CAT_UNPARSED;
    *v = (int64_t)x;
    return 0;
}

static const char *field(char **f, int nf, int col)
{
    return col >= 0 && col < nf ? f[col] : NULL;
}

/* Parse one data row (fields f[0..nf)) into row i of c. */
static void parse_row(sf_catalog *c, size_t i, char **f, int nf, const colmap *m)
{
    if (m->id >= 0) {
        int64_t id;
        if (parse_id(field(f, nf, m->id), &id)) {
            c->flags[i] |= SF_CAT_ID_BAD;
            c->id[i] = sf_catalog_bad_id(c->id[i]); /* the row number, made negative */
        } else
            c->id[i] = id;
    }
    double z;
    parse_double(field(f, nf, m->z), &z); /* NaN -> SF_CAT_Z_BAD in validate */
    c->z[i] = z;
    for (int b = 0; b < NB; b++) {
        double va, vb;
        uint32_t fa = parse_double(field(f, nf, m->a[b]), &va);
        uint32_t fb = parse_double(field(f, nf, m->b[b]), &vb);
        if (m->mag_mode[b])
            sf_catalog__set_mag(c, i, b, va, vb);
        else {
            c->flux_nmgy[i * NB + b] = va;
            c->ivar_nmgy2[i * NB + b] = vb;
        }
        c->band_flags[i * NB + b] |= fa | fb;
    }
}

/* Read data lines of fp (after any header) with map m; row numbers start at base. */
static sf_status read_rows(FILE *fp, const char *path, const colmap *m, size_t base, sf_catalog **out)
{
    sf_catalog *c = sf_catalog_alloc(0);
    if (!c) return SF_ERROR(SF_ENOMEM, "catalog");
    c->n = 0;
    size_t cap = 1, fcap = 0;
    char *line = NULL, **fields = NULL;
    size_t lcap = 0;
    sf_status st = SF_OK;
    while (getline(&line, &lcap, fp) >= 0) {
        char *p = line;
        while (*p == ' ' || *p == '\t') p++;
        if (*p == '#' || *p == '\n' || *p == '\r' || *p == '\0') continue;
        int nf = split(p, m->delim, &fields, &fcap);
        if (nf < 0) {
            st = SF_ERROR(SF_ENOMEM, "'%s': line split", path);
            break;
        }
        size_t i;
        if ((st = sf_catalog__push(c, &cap, &i))) break;
        c->id[i] = (int64_t)(base + i);
        parse_row(c, i, fields, nf, m);
    }
    if (!st && ferror(fp)) st = SF_ERROR(SF_EIO, "'%s': read error", path);
    free(line);
    free(fields);
    if (st) {
        sf_catalog_free(c);
        return st;
    }
    c->n_read = c->n;
    *out = c;
    return SF_OK;
}

/* ---- SDSS MGS -------------------------------------------------------------- */

static sf_status read_mgs_file(const char *path, size_t base, const void *ctx, sf_catalog **out)
{
    FILE *fp = fopen(path, "r");
    if (!fp) return SF_ERROR(SF_EIO, "cannot open MGS table '%s'", path);
    sf_status st = read_rows(fp, path, ctx, base, out);
    fclose(fp);
    return st;
}

sf_status sf_catalog_read_mgs(const char *const *paths, size_t npaths, sf_catalog **out)
{
    /* True column order (the '#' header omits eu): zs, u, g, r, i, z, u-g,
     * g-r, r-i, i-z, eu, eg, er, ei, ez, eu-g, eg-r, er-i, ei-z. */
    colmap m = {.id = -1, .z = 0, .delim = ' '};
    for (int b = 0; b < NB; b++) {
        m.mag_mode[b] = 1;
        m.a[b] = 1 + b;
        m.b[b] = 10 + b;
    }
    return sf_catalog__read_files(paths, npaths, "MGS", read_mgs_file, &m, 1, SF_CATALOG_MGS, out);
}

/* ---- generic CSV ----------------------------------------------------------- */

static int find_name(char **names, int n, const char *want)
{
    if (!want || !*want) return -1;
    for (int k = 0; k < n; k++)
        if (sf_catalog__name_eq(names[k], want)) return k;
    return -1;
}

/* Build the column map from the header line (modified in place). */
static sf_status map_header(char *header, const char *path, const sf_catalog_options *opt, colmap *m)
{
    char *p = sf_cat_skip_bom(header);
    while (*p == ' ' || *p == '\t' || *p == '#') p++;
    char d = opt->delimiter;
    if (!d) d = strchr(p, ',') ? ',' : strchr(p, ';') ? ';' : strchr(p, '\t') ? '\t' : ' ';
    m->delim = d;
    char **names = NULL;
    size_t cap = 0;
    int n = split(p, d, &names, &cap);
    if (n < 0) return SF_ERROR(SF_ENOMEM, "header split");
    sf_status st = SF_OK;
    m->id = find_name(names, n, opt->id);
    m->z = find_name(names, n, opt->z);
    if (m->z < 0) st = SF_ERROR(SF_EFORMAT, "'%s': no redshift column '%s' in the header", path, opt->z);
    for (int b = 0; b < NB && !st; b++) {
        int fa = find_name(names, n, opt->flux[b]), fb = find_name(names, n, opt->ivar[b]);
        int ma = find_name(names, n, opt->mag[b]), mb = find_name(names, n, opt->sigma[b]);
        if (fa >= 0 && fb >= 0) {
            m->mag_mode[b] = 0;
            m->a[b] = fa;
            m->b[b] = fb;
        } else if (ma >= 0 && mb >= 0) {
            m->mag_mode[b] = 1;
            m->a[b] = ma;
            m->b[b] = mb;
        } else
            st = SF_ERROR(SF_EFORMAT, "'%s': band %c needs columns '%s' and '%s', or '%s' and '%s'", path,
                          sf_catalog_band_names[b], opt->flux[b], opt->ivar[b], opt->mag[b], opt->sigma[b]);
    }
    free(names);
    return st;
}

/* One CSV file: the first non-blank line is the header (opt = ctx). */
static sf_status read_csv_file(const char *path, size_t base, const void *ctx, sf_catalog **out)
{
    FILE *fp = fopen(path, "r");
    if (!fp) return SF_ERROR(SF_EIO, "cannot open CSV catalog '%s'", path);
    char *line = NULL;
    size_t lcap = 0;
    int have = 0;
    while (!have && getline(&line, &lcap, fp) >= 0) {
        const char *p = line;
        while (*p == ' ' || *p == '\t') p++;
        have = !(*p == '\n' || *p == '\r' || *p == '\0');
    }
    colmap m;
    sf_status st = have ? map_header(line, path, ctx, &m) : SF_ERROR(SF_EFORMAT, "'%s': empty file (no header line)", path);
    if (!st) st = read_rows(fp, path, &m, base, out);
    free(line);
    fclose(fp);
    return st;
}

sf_status sf_catalog_read_csv(const char *const *paths, size_t npaths, const sf_catalog_options *opt_in,
                              sf_catalog **out)
{
    sf_catalog_options def;
    if (!opt_in) {
        sf_catalog_options_default(&def);
        opt_in = &def;
    }
    return sf_catalog__read_files(paths, npaths, "CSV", read_csv_file, opt_in, opt_in->keep_duplicates, SF_CATALOG_CSV,
                                  out);
}
