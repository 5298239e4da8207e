/* A tiny SVG line-plot writer for `lw report`: axes with nice ticks, axis
 * labels, a title, a legend beside the plot, optional error bars and
 * markers, and dashed horizontal reference lines. Each series is drawn as
 * exactly one <polyline>, so a reader (or a test) can count series.
 *
 * All text is XML-escaped and control bytes / invalid UTF-8 are replaced, so
 * any label (a task name, a file path) gives a well-formed document. */
#ifndef LW_SVG_PLOT_H
#define LW_SVG_PLOT_H

#include <stdbool.h>

#include "fileutil.h"
#include "status.h"

typedef struct {
    const char *label;        /* legend text */
    const double *x, *y;      /* n points; non-finite points are skipped */
    const double *err;        /* NULL or n half-widths drawn as error bars */
    int n;
    bool markers;             /* a dot at each point */
    bool horizontal;          /* a dashed line across the plot at y[0]; x unused */
} lw_svg_series;

typedef struct {
    const char *title, *x_label, *y_label;
    bool x_log2;              /* x positions on a log2 scale (all x must be > 0) */
    const double *x_ticks;    /* NULL: automatic ticks; else ticks at these x */
    int n_x_ticks;
} lw_svg_plot;

/* Appends a whole SVG document to out. Fails (LW_ERR_INVALID) if no series
 * has a finite point to draw, or x_log2 meets an x <= 0. */
lw_status lw_svg_line_plot(const lw_svg_plot *p, const lw_svg_series *s, int n_series, lw_strbuf *out);

/* Appends text XML-escaped (& < > " ') with control bytes and invalid UTF-8
 * replaced by '?'. */
void lw_svg_escape(lw_strbuf *out, const char *text);

#endif
