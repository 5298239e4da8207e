/* The only way manifest text reaches generated code: as a C string literal
 * built here, or as a number printed by us. Nothing from a manifest is ever
 * pasted raw into C or CUDA source, nor into a comment. */
#ifndef LW_ESCAPE_H
#define LW_ESCAPE_H

#include "fileutil.h"

/* Appends "..." with every byte that is not printable ASCII, and the
 * characters " \ ? (trigraphs), written as escapes (octal for bytes). */
void lw_sb_c_string(lw_strbuf *sb, const char *s);

/* Appends a float as a C/CUDA literal that round-trips (%.9g), always with a
 * '.' or exponent so that it is a floating literal; NaN/inf are rejected by
 * the manifest validator before we get here. */
void lw_sb_c_float(lw_strbuf *sb, float v);

#endif
