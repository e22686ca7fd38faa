/* Thread-local error messages: see include/sedflow/error.h. */
#include "sedflow/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char sf__msg[1024];

const char *sf_last_error(void) { return sf__msg; }

void sf_error_clear(void) { sf__msg[0] = '\0'; }

const char *sf_status_name(sf_status s)
{
    switch (s) {
    case SF_OK: return "ok";
    case SF_EINVAL: return "invalid argument";
    case SF_EDOMAIN: return "outside the model's domain";
    case SF_ENOMEM: return "out of memory";
    case SF_EIO: return "input/output error";
    case SF_EFORMAT: return "bad file format";
    case SF_ENOCONV: return "did not converge";
    case SF_EINTERNAL: return "internal error";
    }
    return "unknown error";
}

sf_status sf_error_set(sf_status code, const char *func, int line, const char *fmt, ...)
{
    /* formatted aside first: an argument may be sf_last_error() itself (a
     * cause wrapped in context), which formatting in place would overwrite */
    char buf[sizeof sf__msg];
    int k = snprintf(buf, sizeof buf, "%s(%d): ", func, line);
    if (k < 0 || (size_t)k >= sizeof buf) return code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + k, sizeof buf - (size_t)k, fmt, ap);
    va_end(ap);
    memcpy(sf__msg, buf, sizeof buf);
    return code;
}
