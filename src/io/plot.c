/*
 * Calibration figures through gnuplot (see include/sedflow/plot.h).  Data and
 * script go to temporary files; gnuplot runs as `gnuplot script 2> log`
 * through popen (so a failing gnuplot can never SIGPIPE us); the PNG is
 * written to "<png>.tmp" and renamed on success.
 */
#include "sedflow/plot.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sedflow/calib.h"

/* Find the gnuplot executable into buf; 0 when found. */
static int find_gnuplot(char *buf, size_t len)
{
    const char *env = getenv("SEDFLOW_GNUPLOT");
    if (env && *env) {
        if (access(env, X_OK) != 0) return 1;
        snprintf(buf, len, "%s", env);
        return 0;
    }
    const char *path = getenv("PATH");
    if (!path || !*path) path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        const char *end = strchr(path, ':');
        size_t n = end ? (size_t)(end - path) : strlen(path);
        if (n > 0 && n + 10 < len) {
            snprintf(buf, len, "%.*s/gnuplot", (int)n, path);
            if (access(buf, X_OK) == 0) return 0;
        }
        path += n + (end ? 1 : 0);
    }
    return 1;
}

int sf_plot_available(void)
{
    char buf[4096];
    return find_gnuplot(buf, sizeof buf) == 0;
}

static int bad_path(const char *p) { return !p || !*p || strchr(p, '\'') || strchr(p, '\n'); }

/* A plotting job: temporary data, script and log files. */
typedef struct {
    char gnuplot[4096];
    char data[4096], script[4096], log[4096], tmp_png[4096];
    FILE *fd, *fs;
} job;

static void job_cleanup(job *j)
{
    if (j->fd) fclose(j->fd);
    if (j->fs) fclose(j->fs);
    j->fd = j->fs = NULL;
    if (j->data[0]) remove(j->data);
    if (j->script[0]) remove(j->script);
    if (j->log[0]) remove(j->log);
}

static FILE *make_temp(char *name, size_t len, const char *tag)
{
    const char *dir = getenv("TMPDIR");
    if (!dir || !*dir || bad_path(dir)) dir = "/tmp";
    snprintf(name, len, "%s/sedflow_%s_XXXXXX", dir, tag);
    int fd = mkstemp(name);
    if (fd < 0) {
        name[0] = '\0';
        return NULL;
    }
    FILE *f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        remove(name);
        name[0] = '\0';
    }
    return f;
}

static sf_status job_start(job *j, const char *png)
{
    memset(j, 0, sizeof *j);
    if (bad_path(png)) return SF_ERROR(SF_EINVAL, "output path is empty or contains a quote or newline");
    if (find_gnuplot(j->gnuplot, sizeof j->gnuplot) || bad_path(j->gnuplot))
        return SF_ERROR(SF_EIO, "gnuplot not found (install the Debian package gnuplot-nox, or set SEDFLOW_GNUPLOT)");
    if (snprintf(j->tmp_png, sizeof j->tmp_png, "%s.tmp", png) >= (int)sizeof j->tmp_png)
        return SF_ERROR(SF_EINVAL, "output path too long");
    j->fd = make_temp(j->data, sizeof j->data, "plotdata");
    j->fs = make_temp(j->script, sizeof j->script, "plotscript");
    FILE *fl = make_temp(j->log, sizeof j->log, "plotlog");
    if (fl) fclose(fl);
    if (!j->fd || !j->fs || !fl) {
        job_cleanup(j);
        return SF_ERROR(SF_EIO, "cannot create temporary files for gnuplot in $TMPDIR");
    }
    return SF_OK;
}

/* Write a gnuplot single-quoted string literal. */
static void put_quoted(FILE *f, const char *s)
{
    fputc('\'', f);
    for (; *s; s++) {
        if (*s == '\'') fputc('\'', f); /* '' is a literal quote */
        if (*s != '\n') fputc(*s, f);
    }
    fputc('\'', f);
}

static void grid_shape(size_t n, size_t *rows, size_t *cols)
{
    size_t c = (size_t)ceil(sqrt((double)n));
    if (c < 1) c = 1;
    *cols = c;
    *rows = (n + c - 1) / c;
}

static void script_header(job *j, size_t w, size_t h)
{
    fprintf(j->fs, "set terminal pngcairo size %zu,%zu font ',9' noenhanced\nset output ", w, h);
    put_quoted(j->fs, j->tmp_png);
    fprintf(j->fs, "\nset datafile separator whitespace\n");
}

/* Run gnuplot on the script, rename the PNG; always cleans up. */
static sf_status job_finish(job *j, const char *png)
{
    int werr = ferror(j->fd) || ferror(j->fs);
    werr |= fclose(j->fd) != 0;
    werr |= fclose(j->fs) != 0;
    j->fd = j->fs = NULL;
    if (werr) {
        job_cleanup(j);
        return SF_ERROR(SF_EIO, "cannot write temporary gnuplot files");
    }
    char cmd[3 * 4096 + 64];
    snprintf(cmd, sizeof cmd, "'%s' '%s' >/dev/null 2>'%s'", j->gnuplot, j->script, j->log);
    fflush(NULL);
    FILE *p = popen(cmd, "r");
    int status = -1;
    if (p) {
        char sink[256];
        while (fread(sink, 1, sizeof sink, p) > 0) {
        }
        status = pclose(p);
    }
    sf_status st = SF_OK;
    if (status != 0) {
        char msg[512] = "";
        FILE *fl = fopen(j->log, "r");
        if (fl) {
            size_t n = fread(msg, 1, sizeof msg - 1, fl);
            msg[n] = '\0';
            fclose(fl);
            for (char *c = msg; *c; c++)
                if (*c == '\n') *c = ' ';
        }
        remove(j->tmp_png);
        st = SF_ERROR(SF_EIO, "gnuplot failed (status %d): %s", status, msg);
    } else if (rename(j->tmp_png, png) != 0) {
        remove(j->tmp_png);
        st = SF_ERROR(SF_EIO, "cannot write %s", png);
    }
    job_cleanup(j);
    return st;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One data block: the empirical CDF of column u[i * stride] as steps. */
static int write_ecdf(FILE *f, const double *u, size_t n, size_t stride, double *buf)
{
    for (size_t i = 0; i < n; i++) {
        buf[i] = u[i * stride];
        if (isnan(buf[i])) return 1;
    }
    qsort(buf, n, sizeof *buf, cmp_double);
    fprintf(f, "0 0\n");
    for (size_t i = 0; i < n; i++) fprintf(f, "%.6g %.6g\n", buf[i], (double)(i + 1) / (double)n);
    fprintf(f, "1 1\n\n\n");
    return 0;
}

static void panel_title(FILE *f, const char *const *names, size_t p)
{
    fprintf(f, "set title ");
    if (names && names[p]) put_quoted(f, names[p]);
    else fprintf(f, "'param %zu'", p);
    fprintf(f, "\n");
}

sf_status sf_plot_pp_grid(const char *png, const double *pit, size_t n_test, size_t nparam,
                          const double *ref_pit, size_t n_ref, const char *const *names)
{
    if (!pit || n_test < 1 || nparam < 1 || (ref_pit && n_ref < 1))
        return SF_ERROR(SF_EINVAL, "empty p-p input (n_test = %zu, nparam = %zu)", n_test, nparam);
    job j;
    sf_status st = job_start(&j, png);
    if (st) return st;
    size_t nmax = ref_pit && n_ref > n_test ? n_ref : n_test;
    double *buf = malloc(nmax * sizeof *buf);
    if (!buf) {
        job_cleanup(&j);
        return SF_ERROR(SF_ENOMEM, "p-p buffer");
    }
    int nan = 0;
    for (size_t p = 0; p < nparam; p++) nan |= write_ecdf(j.fd, pit + p, n_test, nparam, buf);
    if (ref_pit)
        for (size_t p = 0; p < nparam; p++) nan |= write_ecdf(j.fd, ref_pit + p, n_ref, nparam, buf);
    free(buf);
    if (nan) {
        job_cleanup(&j);
        return SF_ERROR(SF_EINVAL, "NaN percentile");
    }
    size_t rows, cols;
    grid_shape(nparam, &rows, &cols);
    script_header(&j, 280 * cols, 280 * rows);
    fprintf(j.fs, "set multiplot layout %zu,%zu\nset xrange [0:1]\nset yrange [0:1]\nset key off\n"
                  "set xtics 0.5\nset ytics 0.5\nset size ratio -1\n", rows, cols);
    for (size_t p = 0; p < nparam; p++) {
        panel_title(j.fs, names, p);
        fprintf(j.fs, "plot x with lines dt 2 lc rgb 'black'");
        if (ref_pit) {
            fprintf(j.fs, ", ");
            put_quoted(j.fs, j.data);
            fprintf(j.fs, " index %zu using 1:2 with steps lw 1.5 lc rgb '#999999'", nparam + p);
        }
        fprintf(j.fs, ", ");
        put_quoted(j.fs, j.data);
        fprintf(j.fs, " index %zu using 1:2 with steps lw 2 lc rgb '#1f77b4'\n", p);
    }
    fprintf(j.fs, "unset multiplot\n");
    return job_finish(&j, png);
}

sf_status sf_plot_sbc_grid(const char *png, const long *rank, size_t n_test, size_t nparam, size_t L,
                           size_t nbins, const char *const *names)
{
    if (!rank || n_test < 1 || nparam < 1 || L < 1)
        return SF_ERROR(SF_EINVAL, "empty SBC input (n_test = %zu, nparam = %zu, L = %zu)", n_test, nparam, L);
    if (nbins == 0) nbins = sf_calib_default_bins(n_test, L);
    size_t *counts = malloc(nbins * sizeof *counts);
    if (!counts) return SF_ERROR(SF_ENOMEM, "histogram");
    job j;
    sf_status st = job_start(&j, png);
    double ymax = 0;
    for (size_t p = 0; p < nparam && !st; p++) {
        st = sf_calib_rank_hist(rank + p, n_test, nparam, L, nbins, counts);
        if (st) break;
        for (size_t b = 0; b < nbins; b++) {
            size_t lo = (b * (L + 1) + nbins - 1) / nbins, hi = ((b + 1) * (L + 1) + nbins - 1) / nbins;
            double q = (double)(hi - lo) / (double)(L + 1), e = (double)n_test * q;
            double band = 2.5758 * sqrt(e * (1 - q));
            fprintf(j.fd, "%.6g %zu %.6g %.6g %.6g %.6g\n", 0.5 * ((double)lo + (double)hi) - 0.5, counts[b], e,
                    fmax(0, e - band), e + band, (double)(hi - lo));
            ymax = fmax(ymax, fmax((double)counts[b], e + band));
        }
        fprintf(j.fd, "\n\n");
    }
    free(counts);
    if (st) {
        job_cleanup(&j);
        return st;
    }
    size_t rows, cols;
    grid_shape(nparam, &rows, &cols);
    script_header(&j, 320 * cols, 240 * rows);
    fprintf(j.fs, "set multiplot layout %zu,%zu\nset key off\nset xrange [-0.5:%g]\nset yrange [0:%g]\n"
                  "set style fill solid 0.6 noborder\nset xlabel 'rank'\n", rows, cols, (double)L + 0.5, 1.1 * ymax);
    for (size_t p = 0; p < nparam; p++) {
        panel_title(j.fs, names, p);
        fprintf(j.fs, "plot ");
        put_quoted(j.fs, j.data);
        fprintf(j.fs, " index %zu using 1:4:5 with filledcurves lc rgb '#dddddd', '' index %zu using 1:2:6 with "
                      "boxes lc rgb '#1f77b4', '' index %zu using 1:3 with lines dt 2 lc rgb 'black'\n", p, p, p);
    }
    fprintf(j.fs, "unset multiplot\n");
    return job_finish(&j, png);
}

sf_status sf_plot_coverage(const char *png, const double *level, size_t nlev, const double *cov, size_t ncurve,
                           const char *const *labels)
{
    if (!level || !cov || nlev < 1 || ncurve < 1)
        return SF_ERROR(SF_EINVAL, "empty coverage input (nlev = %zu, ncurve = %zu)", nlev, ncurve);
    job j;
    sf_status st = job_start(&j, png);
    if (st) return st;
    for (size_t c = 0; c < ncurve; c++) {
        for (size_t g = 0; g < nlev; g++) fprintf(j.fd, "%.6g %.6g\n", level[g], cov[c * nlev + g]);
        fprintf(j.fd, "\n\n");
    }
    script_header(&j, 560, 520);
    fprintf(j.fs, "set xrange [0:1]\nset yrange [0:1]\nset size ratio -1\nset key top left\n"
                  "set xlabel 'credibility level'\nset ylabel 'expected coverage'\n"
                  "plot x with lines dt 2 lc rgb 'black' notitle");
    for (size_t c = 0; c < ncurve; c++) {
        fprintf(j.fs, ", ");
        put_quoted(j.fs, j.data);
        fprintf(j.fs, " index %zu using 1:2 with linespoints pt 7 ps 0.5 title ", c);
        if (labels && labels[c]) put_quoted(j.fs, labels[c]);
        else fprintf(j.fs, "'curve %zu'", c);
    }
    fprintf(j.fs, "\n");
    return job_finish(&j, png);
}

/* Percentile q of column d of x[n][ndim] via a sorted copy in buf[n]. */
static double column_pct(const double *x, size_t n, size_t ndim, size_t d, double q, double *buf)
{
    for (size_t i = 0; i < n; i++) buf[i] = x[i * ndim + d];
    qsort(buf, n, sizeof *buf, cmp_double);
    double h = q * (double)(n - 1);
    size_t i = (size_t)h;
    return i + 1 < n ? buf[i] + (h - (double)i) * (buf[i + 1] - buf[i]) : buf[n - 1];
}

/* Write at most 3000 evenly thinned rows of x[n][ndim] as one data block. */
static void write_thinned(FILE *f, const double *x, size_t n, size_t ndim)
{
    size_t step = n > 3000 ? (n + 2999) / 3000 : 1;
    for (size_t i = 0; i < n; i += step) {
        for (size_t d = 0; d < ndim; d++) fprintf(f, "%.7g ", x[i * ndim + d]);
        fprintf(f, "\n");
    }
    fprintf(f, "\n\n");
}

sf_status sf_plot_corner(const char *png, const double *a, size_t na, const double *b, size_t nb, size_t ndim,
                         const double *truth, const char *const *names, const char *const *labels)
{
    enum { NBIN = 40 };
    if (!a || na < 2 || ndim < 1 || ndim > 16 || (b && nb < 2))
        return SF_ERROR(SF_EINVAL, "corner plot needs >= 2 samples and 1..16 dimensions (na = %zu, ndim = %zu)", na,
                        ndim);
    for (size_t i = 0; i < na * ndim; i++)
        if (!isfinite(a[i])) return SF_ERROR(SF_EINVAL, "sample %zu of the first set is not finite", i / ndim);
    if (b)
        for (size_t i = 0; i < nb * ndim; i++)
            if (!isfinite(b[i])) return SF_ERROR(SF_EINVAL, "sample %zu of the second set is not finite", i / ndim);
    size_t nmax = b && nb > na ? nb : na;
    double *buf = malloc(nmax * sizeof *buf), *lo = malloc(2 * ndim * sizeof *lo);
    if (!buf || !lo) {
        free(buf);
        free(lo);
        return SF_ERROR(SF_ENOMEM, "corner plot buffers");
    }
    double *hi = lo + ndim;
    for (size_t d = 0; d < ndim; d++) {
        lo[d] = column_pct(a, na, ndim, d, 0.005, buf);
        hi[d] = column_pct(a, na, ndim, d, 0.995, buf);
        if (b) {
            lo[d] = fmin(lo[d], column_pct(b, nb, ndim, d, 0.005, buf));
            hi[d] = fmax(hi[d], column_pct(b, nb, ndim, d, 0.995, buf));
        }
        if (truth && isfinite(truth[d])) lo[d] = fmin(lo[d], truth[d]), hi[d] = fmax(hi[d], truth[d]);
        double pad = hi[d] > lo[d] ? 0.05 * (hi[d] - lo[d]) : fmax(1e-3 * fabs(lo[d]), 1e-6);
        lo[d] -= pad;
        hi[d] += pad;
    }
    free(buf);
    job j;
    sf_status st = job_start(&j, png);
    if (st) {
        free(lo);
        return st;
    }
    /* Blocks: 0 = thinned a, 1 = thinned b (or a again), 2 + d = histograms. */
    write_thinned(j.fd, a, na, ndim);
    write_thinned(j.fd, b ? b : a, b ? nb : na, ndim);
    for (size_t d = 0; d < ndim; d++) {
        double ca[NBIN] = {0}, cb[NBIN] = {0}, w = (hi[d] - lo[d]) / NBIN;
        for (size_t i = 0; i < na; i++) {
            long k = (long)floor((a[i * ndim + d] - lo[d]) / w);
            if (k >= 0 && k < NBIN) ca[k] += 1.0 / ((double)na * w);
        }
        for (size_t i = 0; b && i < nb; i++) {
            long k = (long)floor((b[i * ndim + d] - lo[d]) / w);
            if (k >= 0 && k < NBIN) cb[k] += 1.0 / ((double)nb * w);
        }
        for (int k = 0; k < NBIN; k++) fprintf(j.fd, "%.7g %.7g %.7g\n", lo[d] + (k + 0.5) * w, ca[k], cb[k]);
        fprintf(j.fd, "\n\n");
    }
    const size_t px = ndim <= 4 ? 220 : ndim <= 8 ? 160 : 120;
    script_header(&j, px * ndim + 60, px * ndim + 60);
    fprintf(j.fs, "set multiplot layout %zu,%zu margins 0.07,0.98,0.07,0.95 spacing 0.005,0.005", ndim, ndim);
    if (labels && labels[0]) {
        fprintf(j.fs, " title ");
        char t[512];
        snprintf(t, sizeof t, "%s (blue)%s%s%s", labels[0], b && labels[1] ? " vs " : "",
                 b && labels[1] ? labels[1] : "", b && labels[1] ? " (grey)" : "");
        put_quoted(j.fs, t);
    }
    fprintf(j.fs, "\nset key off\nunset title\nset tics scale 0.5 font ',7'\nset xtics rotate by 45 right\n");
    for (size_t r = 0; r < ndim; r++)
        for (size_t c = 0; c < ndim; c++) {
            if (c > r) {
                fprintf(j.fs, "set multiplot next\n");
                continue;
            }
            fprintf(j.fs, "set xrange [%.7g:%.7g]\n", lo[c], hi[c]);
            if (r == ndim - 1) {
                fprintf(j.fs, "set format x '%%g'\nset xlabel ");
                if (names && names[c]) put_quoted(j.fs, names[c]);
                else fprintf(j.fs, "'param %zu'", c);
                fprintf(j.fs, " font ',8'\n");
            } else fprintf(j.fs, "set format x ''\nunset xlabel\n");
            if (c == 0 && r > 0) {
                fprintf(j.fs, "set format y '%%g'\nset ylabel ");
                if (names && names[r]) put_quoted(j.fs, names[r]);
                else fprintf(j.fs, "'param %zu'", r);
                fprintf(j.fs, " font ',8'\n");
            } else fprintf(j.fs, "set format y ''\nunset ylabel\n");
            fprintf(j.fs, "unset arrow\n");
            if (truth && isfinite(truth[c]))
                fprintf(j.fs, "set arrow from %.7g, graph 0 to %.7g, graph 1 nohead lc rgb 'red' lw 1\n", truth[c],
                        truth[c]);
            if (r == c) {
                fprintf(j.fs, "set autoscale y\nset yrange [0:*]\nplot ");
                put_quoted(j.fs, j.data);
                fprintf(j.fs, " index %zu using 1:2 with steps lw 1.5 lc rgb '#1f77b4'", 2 + c);
                if (b) fprintf(j.fs, ", '' index %zu using 1:3 with steps lw 1.5 lc rgb '#777777'", 2 + c);
                fprintf(j.fs, "\n");
            } else {
                fprintf(j.fs, "set yrange [%.7g:%.7g]\n", lo[r], hi[r]);
                if (truth && isfinite(truth[r]))
                    fprintf(j.fs, "set arrow from graph 0, first %.7g to graph 1, first %.7g nohead lc rgb 'red'\n",
                            truth[r], truth[r]);
                fprintf(j.fs, "plot ");
                if (b) {
                    put_quoted(j.fs, j.data);
                    fprintf(j.fs, " index 1 using %zu:%zu with points pt 7 ps 0.2 lc rgb '#B0777777', ", c + 1, r + 1);
                }
                put_quoted(j.fs, j.data);
                fprintf(j.fs, " index 0 using %zu:%zu with points pt 7 ps 0.2 lc rgb '#B01f77b4'\n", c + 1, r + 1);
            }
        }
    fprintf(j.fs, "unset multiplot\n");
    free(lo);
    return job_finish(&j, png);
}
