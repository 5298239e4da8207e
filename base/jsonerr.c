#include "jsonerr.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static const char BOM[3] = {'\xEF', '\xBB', '\xBF'};

bool lw_starts_with_bom(const void *data, size_t len) { return len >= 3 && memcmp(data, BOM, 3) == 0; }

const char *lw_escape_bytes(const char *s, size_t len, char *buf, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char piece[5];
        int n = c == '\\' ? snprintf(piece, sizeof piece, "\\\\")
                : c >= 0x20 && c < 0x7f ? snprintf(piece, sizeof piece, "%c", c)
                                        : snprintf(piece, sizeof piece, "\\x%02X", c);
        if (o + (size_t)n + 1 > cap) {
            /* Room for "..." replaces the tail that did not fit. */
            o = cap >= 4 ? (o < cap - 4 ? o : cap - 4) : 0;
            if (cap >= 4) memcpy(buf + o, "...", 3), o += 3;
            break;
        }
        memcpy(buf + o, piece, (size_t)n);
        o += (size_t)n;
    }
    buf[o] = 0;
    return buf;
}

bool lw_json_error_is_bom(const json_error_t *err)
{
    /* jansson reads the BOM as one (valid UTF-8) token and stops after its
     * three bytes: "'[' or '{' expected near '\xEF\xBB\xBF'". */
    static const char near_bom[] = "near '\xEF\xBB\xBF'";
    return err->line == 1 && err->position == 3 && strstr(err->text, near_bom) != NULL;
}

const char *lw_json_error_text(const json_error_t *err, char *buf, size_t cap)
{
    if (lw_json_error_is_bom(err)) {
        snprintf(buf, cap, "%s", LW_BOM_MESSAGE);
        return buf;
    }
    return lw_escape_bytes(err->text, strnlen(err->text, sizeof err->text), buf, cap);
}

const char *lw_json_error(const json_error_t *err)
{
    /* Every byte may become four characters. */
    static _Thread_local char buf[4 * JSON_ERROR_TEXT_LENGTH + 8];
    return lw_json_error_text(err, buf, sizeof buf);
}

const char *lw_json_file_error(const char *path, const json_error_t *err)
{
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) return "is a directory, expected a JSON file";
    return lw_json_error(err);
}
