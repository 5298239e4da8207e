#include "escape.h"

#include <stdio.h>
#include <string.h>

void lw_sb_c_string(lw_strbuf *sb, const char *s)
{
    lw_sb_append(sb, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        if (c == '"' || c == '\\' || c == '?') {
            char esc[2] = {'\\', (char)c};
            lw_sb_append(sb, esc, 2);
        } else if (c >= 0x20 && c < 0x7f) {
            lw_sb_append(sb, (const char *)p, 1);
        } else {
            /* Three octal digits always: a following digit cannot extend it. */
            lw_sb_printf(sb, "\\%03o", c);
        }
    }
    lw_sb_append(sb, "\"", 1);
}

void lw_sb_c_float(lw_strbuf *sb, float v)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%.9g", (double)v);
    if (!strpbrk(buf, ".eEn")) strcat(buf, ".0");
    lw_sb_append(sb, buf, strlen(buf));
}
