/* Golden text lines for the suites; see golden_text.h. */
#include "golden_text.h"

#include <check.h>
#include <stdlib.h>

size_t tl_unescape(char *s)
{
    size_t o = 0;
    for (size_t i = 0; s[i]; i++) {
        if (s[i] != '\\') {
            s[o++] = s[i];
            continue;
        }
        char c = s[++i];
        if (c == 'n') s[o++] = '\n';
        else if (c == 'r') s[o++] = '\r';
        else if (c == 't') s[o++] = '\t';
        else if (c == '\\') s[o++] = '\\';
        else if (c == 'x' && s[i + 1] && s[i + 2]) {
            char hex[3] = {s[i + 1], s[i + 2], 0};
            s[o++] = (char)strtol(hex, NULL, 16);
            i += 2;
        } else
            ck_abort_msg("bad escape \\%c in a golden line", c);
    }
    s[o] = '\0';
    return o;
}
