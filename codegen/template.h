/* Instantiates a template file: every @@NAME@@ is replaced by the value
 * bound to NAME. Values are produced by codegen (numbers, escaped literals),
 * never copied from a manifest. An unbound or malformed placeholder is an
 * error naming the template and the line. */
#ifndef LW_TEMPLATE_H
#define LW_TEMPLATE_H

#include "fileutil.h"

enum { LW_TEMPLATE_MAX_VARS = 64 };

typedef struct {
    int n;
    char names[LW_TEMPLATE_MAX_VARS][48];
    char values[LW_TEMPLATE_MAX_VARS][128];
} lw_template_vars;

void lw_tv_int(lw_template_vars *tv, const char *name, long long v);
void lw_tv_float(lw_template_vars *tv, const char *name, float v);

/* Renders the template text (its file name for messages) into sb. */
lw_status lw_template_render(const char *template_name, const char *text, const lw_template_vars *tv,
                             lw_strbuf *sb);

#endif
