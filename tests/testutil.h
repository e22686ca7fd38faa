/*
 * tests/testutil.h — a minimal test harness (GSL style): each CHECK prints
 * one PASS/FAIL line; a test program returns nonzero when any check failed.
 * Paths to the prepared data folder and the shared folder come from the
 * environment (SEDFLOW_DATA, SEDFLOW_SHARED) or the build's defaults.
 */
#ifndef SEDFLOW_TESTUTIL_H
#define SEDFLOW_TESTUTIL_H

#include <stddef.h>

extern int tu_failures;
extern int tu_checks;

/* Record one check: prints "PASS: name" or "FAIL: name (detail)". */
void tu_check(int ok, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define CHECK(cond, ...) tu_check(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
/* |a - b| <= tol (absolute). */
#define CHECK_ABS(a, b, tol, name) \
    tu_check(tu_close_abs((a), (b), (tol)), __FILE__, __LINE__, "%s: %.10g vs %.10g (abs tol %.3g)", (name), (double)(a), (double)(b), (double)(tol))
/* |a - b| <= tol * |b| (relative to the reference b). */
#define CHECK_REL(a, b, tol, name) \
    tu_check(tu_close_rel((a), (b), (tol)), __FILE__, __LINE__, "%s: %.10g vs %.10g (rel tol %.3g)", (name), (double)(a), (double)(b), (double)(tol))

int tu_close_abs(double a, double b, double tol);
int tu_close_rel(double a, double b, double tol);

/* Prepared data folder / shared folder / path to the sedflow binary. */
const char *tu_data_dir(void);
const char *tu_shared_dir(void);
const char *tu_cli(void);

/* Run the shell command cmd, capture up to len - 1 bytes of its standard
 * output into out (NUL-terminated); returns its exit status, -1 when it
 * could not run or did not exit normally. */
int tu_run(const char *cmd, char *out, size_t len);

/* The whole file at path as a NUL-terminated malloc'd string (the caller
 * frees it); NULL when it cannot be read. */
char *tu_slurp(const char *path);

/* Build "dir/rel" into a static buffer (valid until the next call). */
const char *tu_path(const char *dir, const char *rel);

/* Print a summary line and return the exit status for main(). */
int tu_finish(const char *suite);

#endif
