/* Shared CLI helpers: see cli/cli.h. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"

int cli_fail(const char *cmd, sf_status st)
{
    const char *msg = sf_last_error();
    fprintf(stderr, "sedflow %s: error (%s): %s\n", cmd, sf_status_name(st), *msg ? msg : "(no message)");
    return 1;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "sedflow %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(see 'sedflow %s --help')\n", cmd);
    va_end(ap);
    return 2;
}

int cli_parse_double(const char *cmd, const char *opt, const char *s, double *v)
{
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (errno || end == s || *end != '\0' || !isfinite(x)) {
        cli_usage_error(cmd, "%s expects a finite number, got '%s'", opt, s);
        return 1;
    }
    *v = x;
    return 0;
}

int cli_parse_long(const char *cmd, const char *opt, const char *s, long *v)
{
    char *end;
    errno = 0;
    long x = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0') {
        cli_usage_error(cmd, "%s expects an integer, got '%s'", opt, s);
        return 1;
    }
    *v = x;
    return 0;
}

int cli_parse_doubles(const char *cmd, const char *opt, const char *s, double *v, size_t n)
{
    const char *p = s;
    for (size_t i = 0; i < n; i++) {
        char *end;
        errno = 0;
        double x = strtod(p, &end);
        if (errno || end == p || !isfinite(x)) {
            cli_usage_error(cmd, "%s: value %zu of '%s' is not a finite number", opt, i + 1, s);
            return 1;
        }
        v[i] = x;
        p = end;
        if (i + 1 < n) {
            if (*p != ',') {
                cli_usage_error(cmd, "%s expects %zu comma-separated numbers, got '%s'", opt, n, s);
                return 1;
            }
            p++;
        }
    }
    if (*p != '\0') {
        cli_usage_error(cmd, "%s expects %zu comma-separated numbers, got '%s'", opt, n, s);
        return 1;
    }
    return 0;
}

const char *cli_data_dir(void)
{
    const char *e = getenv("SEDFLOW_DATA");
    return e && *e ? e : SEDFLOW_DEFAULT_DATA;
}

void cli_noise_path(char *buf, size_t len)
{
    const char *env = getenv("SEDFLOW_NOISE");
    if (env && *env) snprintf(buf, len, "%s", env);
    else snprintf(buf, len, "%s/../models/noise_nsa.h5", SEDFLOW_DEFAULT_DATA); /* models/ beside data/ */
}

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void cli_progress_start(cli_progress *p, const char *label, size_t total)
{
    p->label = label;
    p->total = total;
    p->t_start = p->t_last = cli_now();
    p->enabled = isatty(STDERR_FILENO) || getenv("SEDFLOW_PROGRESS") != NULL;
}

void cli_progress_update(cli_progress *p, size_t done)
{
    if (!p->enabled) return;
    double t = cli_now();
    if (done < p->total && t - p->t_last < 0.5) return;
    p->t_last = t;
    double frac = p->total ? (double)done / (double)p->total : 1.0;
    double el = t - p->t_start;
    double eta = frac > 0 ? el * (1 - frac) / frac : 0;
    int w = 30, k = (int)(frac * w);
    fprintf(stderr, "\r%s [", p->label);
    for (int i = 0; i < w; i++) fputc(i < k ? '#' : '.', stderr);
    fprintf(stderr, "] %5.1f%% %zu/%zu  %.0fs elapsed, ETA %.0fs ", 100 * frac, done, p->total, el, eta);
    if (done >= p->total) fputc('\n', stderr);
    fflush(stderr);
}
