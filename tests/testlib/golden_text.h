/* Reading the text goldens made by the scripts in tests/golden/: strings are
 * stored one a line with the corpus escapes. */
#ifndef LW_TL_GOLDEN_TEXT_H
#define LW_TL_GOLDEN_TEXT_H

#include <stddef.h>

/* Undoes the corpus escapes (\\ \n \r \t \xHH) in place and returns the
 * length (the bytes may hold NULs); fails the test on any other escape. */
size_t tl_unescape(char *s);

#endif
