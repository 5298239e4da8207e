/* The smallest model-pair manifest the schema accepts (everything else is a
 * default), as text, for the manifest suites (check_manifest.c and the
 * suites of its optional blocks) to add to, parse and break. */
#ifndef LW_TL_MANIFEST_TEXT_H
#define LW_TL_MANIFEST_TEXT_H

#include "manifest.h"

/* That manifest with `extra` top-level members (", \"lora\": {...}"; "" for
 * none) before its closing brace: malloc'd, free it; fails the test when out
 * of memory. */
char *tl_manifest_text(const char *extra);

/* tl_manifest_text(extra) parsed as though read from `file`. */
lw_status tl_manifest_parse_with(const char *extra, const char *file, lw_manifest *m);

/* tl_manifest_parse_with fails with code and exactly `message`. */
void tl_manifest_expect_error(const char *extra, const char *file, lw_status code, const char *message);

#endif
