#include "template.h"

#include <stdio.h>
#include <string.h>

#include "escape.h"

static void bind(lw_template_vars *tv, const char *name, const char *value)
{
    if (tv->n >= LW_TEMPLATE_MAX_VARS) return; /* caught at render: unbound */
    snprintf(tv->names[tv->n], sizeof tv->names[0], "%s", name);
    snprintf(tv->values[tv->n], sizeof tv->values[0], "%s", value);
    tv->n++;
}

void lw_tv_int(lw_template_vars *tv, const char *name, long long v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", v);
    bind(tv, name, buf);
}

void lw_tv_float(lw_template_vars *tv, const char *name, float v)
{
    lw_strbuf sb = {0};
    lw_sb_c_float(&sb, v);
    bind(tv, name, sb.data ? sb.data : "0.0");
    lw_sb_free(&sb);
}

static const char *lookup(const lw_template_vars *tv, const char *name, size_t len)
{
    for (int i = 0; i < tv->n; i++)
        if (strlen(tv->names[i]) == len && memcmp(tv->names[i], name, len) == 0) return tv->values[i];
    return NULL;
}

lw_status lw_template_render(const char *template_name, const char *text, const lw_template_vars *tv,
                             lw_strbuf *sb)
{
    int line = 1;
    const char *p = text;
    while (*p) {
        const char *at = strstr(p, "@@");
        const char *stop = at ? at : p + strlen(p);
        for (const char *q = p; q < stop; q++) line += *q == '\n';
        lw_sb_append(sb, p, (size_t)(stop - p));
        if (!at) break;
        const char *name = at + 2, *end = strstr(name, "@@");
        const char *nl = strchr(name, '\n');
        if (!end || (nl && nl < end))
            return lw_fail(LW_ERR_FORMAT, "%s:%d: unterminated @@placeholder", template_name, line);
        const char *value = lookup(tv, name, (size_t)(end - name));
        if (!value)
            return lw_fail(LW_ERR_FORMAT, "%s:%d: placeholder @@%.*s@@ has no value", template_name, line,
                           (int)(end - name), name);
        lw_sb_append(sb, value, strlen(value));
        p = end + 2;
    }
    return sb->failed ? lw_fail(LW_ERR_NOMEM, "%s: out of memory while rendering", template_name) : LW_OK;
}
