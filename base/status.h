/* Status codes and the last-error message shared by every lwc module.
 *
 * Functions return an lw_status; on failure they call lw_fail() once, at the
 * point that knows the context (file, tensor, JSON path), and callers above
 * either pass the status up unchanged or prepend context with lw_fail_wrap(). */
#ifndef LW_STATUS_H
#define LW_STATUS_H

typedef enum {
    LW_OK = 0,
    LW_ERR_IO,          /* open/read/write/rename failed */
    LW_ERR_FORMAT,      /* a file does not have the expected structure */
    LW_ERR_INVALID,     /* a value is out of range or inconsistent */
    LW_ERR_NOMEM,       /* allocation failed */
    LW_ERR_UNSUPPORTED, /* valid input that this build cannot handle */
    LW_ERR_EXTERNAL     /* a tool or library we call failed (NVRTC, cc, BLAS) */
} lw_status;

/* Records a printf-style message as the last error of this thread and
 * returns code, so a failing function ends with `return lw_fail(...)`. */
lw_status lw_fail(lw_status code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prefixes the current message with more context ("loading x.gguf: ...");
 * returns code unchanged. */
lw_status lw_fail_wrap(lw_status code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The last error message of this thread ("" if none). */
const char *lw_last_error(void);

/* A short name for a status ("format error"). */
const char *lw_status_name(lw_status code);

#endif
