#include "status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

enum { LW_ERROR_CAP = 4096 };
static _Thread_local char last_error[LW_ERROR_CAP];

lw_status lw_fail(lw_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return code;
}

lw_status lw_fail_wrap(lw_status code, const char *fmt, ...)
{
    char prefix[LW_ERROR_CAP], old[LW_ERROR_CAP];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, last_error, sizeof old);
    /* Truncation is fine here: the message is for people. */
    size_t n = strlen(prefix);
    if (n > LW_ERROR_CAP - 3) n = LW_ERROR_CAP - 3;
    memcpy(last_error, prefix, n);
    memcpy(last_error + n, ": ", 2);
    size_t room = LW_ERROR_CAP - n - 3;
    size_t m = strnlen(old, room);
    memcpy(last_error + n + 2, old, m);
    last_error[n + 2 + m] = 0;
    return code;
}

const char *lw_last_error(void) { return last_error; }

const char *lw_status_name(lw_status code)
{
    switch (code) {
    case LW_OK: return "ok";
    case LW_ERR_IO: return "I/O error";
    case LW_ERR_FORMAT: return "format error";
    case LW_ERR_INVALID: return "invalid value";
    case LW_ERR_NOMEM: return "out of memory";
    case LW_ERR_UNSUPPORTED: return "unsupported";
    case LW_ERR_EXTERNAL: return "external tool failed";
    }
    return "unknown error";
}
