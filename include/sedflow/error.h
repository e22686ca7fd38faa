/*
 * sedflow/error.h — status codes and the thread-local error message.
 *
 * Every fallible library function returns sf_status (0 = SF_OK).  On failure
 * it also records a message "function(line): text" in a thread-local buffer
 * that sf_last_error() returns; the CLI prints it.  The library never prints
 * and never calls exit().
 */
#ifndef SEDFLOW_ERROR_H
#define SEDFLOW_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    SF_OK = 0,
    SF_EINVAL,   /* invalid argument: NaN, wrong shape, out of the allowed range */
    SF_EDOMAIN,  /* physically undefined input, e.g. redshift outside (0, 0.6] */
    SF_ENOMEM,   /* allocation failed */
    SF_EIO,      /* file missing, unreadable or unwritable */
    SF_EFORMAT,  /* file readable but not what we expect (corrupt, old version) */
    SF_ENOCONV,  /* an iterative algorithm did not converge in its budget */
    SF_EINTERNAL /* a bug: please report */
} sf_status;

/* Message of the last error raised on this thread ("" when none). */
const char *sf_last_error(void);

/* Short name of a status code ("invalid argument", ...). */
const char *sf_status_name(sf_status s);

/* Record an error message for this thread and return `code`.  Use the
 * SF_ERROR macro, which fills in the function and line. */
sf_status sf_error_set(sf_status code, const char *func, int line, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

/* Clear this thread's message. */
void sf_error_clear(void);

#define SF_ERROR(code, ...) sf_error_set((code), __func__, __LINE__, __VA_ARGS__)

#ifdef __cplusplus
}
#endif
#endif
