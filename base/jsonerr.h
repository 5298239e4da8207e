/* Error messages about JSON input that are safe to print: jansson quotes
 * the bytes it stopped at as they are, so a UTF-8 byte-order mark or a
 * control byte would land in a terminal raw (a BOM shows as nothing at all,
 * "expected near ''"). Every loader that reports a jansson error passes it
 * through lw_json_error_text. */
#ifndef LW_JSONERR_H
#define LW_JSONERR_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Files that start with a BOM are refused, not skipped past: jansson and
 * Python's json module (our reference tools) refuse them too, so accepting
 * one here would make a file that only lwc can read. */
#define LW_BOM_MESSAGE "starts with a UTF-8 byte-order mark (EF BB BF); save the file without it"

bool lw_starts_with_bom(const void *data, size_t len);

/* Copies s[0..len) into buf (cap > 0, always NUL-ended, cut with "..." when
 * it does not fit) with every byte outside printable ASCII, and the
 * backslash, written as an escape (\xEF, \\). Returns buf. */
const char *lw_escape_bytes(const char *s, size_t len, char *buf, size_t cap);

/* err->text escaped as above; LW_BOM_MESSAGE instead when jansson stopped
 * at a BOM in front of the first value. Returns buf. */
const char *lw_json_error_text(const json_error_t *err, char *buf, size_t cap);

/* The same in a buffer of this thread, valid until its next call: for use
 * as an argument of lw_fail. */
const char *lw_json_error(const json_error_t *err);

/* lw_json_error for json_load_file(path): jansson opens a directory and
 * reports "'[' or '{' expected near end of file", so a directory is named as
 * one instead. */
const char *lw_json_file_error(const char *path, const json_error_t *err);

/* Whether jansson stopped at a BOM in front of the first value. */
bool lw_json_error_is_bom(const json_error_t *err);

#endif
