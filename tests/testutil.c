#include "testutil.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

int tu_failures = 0;
int tu_checks = 0;

void tu_check(int ok, const char *file, int line, const char *fmt, ...)
{
    tu_checks++;
    if (!ok) tu_failures++;
    printf("%s: ", ok ? "PASS" : "FAIL");
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    if (!ok) printf("  [%s:%d]", file, line);
    printf("\n");
}

int tu_close_abs(double a, double b, double tol) { return isfinite(a) && isfinite(b) && fabs(a - b) <= tol; }

int tu_close_rel(double a, double b, double tol)
{
    return isfinite(a) && isfinite(b) && fabs(a - b) <= tol * fabs(b);
}

const char *tu_data_dir(void)
{
    const char *e = getenv("SEDFLOW_DATA");
    return e && *e ? e : SEDFLOW_TEST_DATA;
}

const char *tu_shared_dir(void)
{
    const char *e = getenv("SEDFLOW_SHARED");
    return e && *e ? e : SEDFLOW_TEST_SHARED;
}

const char *tu_cli(void) { return SEDFLOW_TEST_BIN; }

int tu_run(const char *cmd, char *out, size_t len)
{
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t n = fread(out, 1, len - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

char *tu_slurp(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (!s) {
        fclose(fp);
        return NULL;
    }
    size_t got = fread(s, 1, (size_t)n, fp);
    s[got] = '\0';
    fclose(fp);
    return s;
}

const char *tu_path(const char *dir, const char *rel)
{
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/%s", dir, rel);
    return buf;
}

int tu_finish(const char *suite)
{
    printf("%s: %d checks, %d failed\n", suite, tu_checks, tu_failures);
    return tu_failures ? 1 : 0;
}
