/* SVG line plots (see svg_plot.h). Coordinates: the plot area is a fixed
 * box; data map into it linearly (or via log2 for x), y growing upwards. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "svg_plot.h"
#include "unicode.h"

enum { WIDTH = 960, HEIGHT = 540, LEFT = 80, RIGHT = 260, TOP = 50, BOTTOM = 70, ROW = 20, MAX_TICKS = 40 };
enum { LEGEND_CHARS = 32 };

/* Tableau 10: distinct and readable on white. */
static const char *const PALETTE[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                      "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
enum { N_COLORS = sizeof PALETTE / sizeof PALETTE[0] };

void lw_svg_escape(lw_strbuf *out, const char *text)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t len = strlen(text);
    for (size_t i = 0; i < len;) {
        unsigned char c = s[i];
        if (c >= 0x80) {
            size_t adv = 1;
            uint32_t cp = lw_utf8_decode(s + i, len - i, &adv);
            bool real_fffd = adv == 3 && s[i + 1] == 0xBF && s[i + 2] == 0xBD;
            if ((cp == LW_UC_REPLACEMENT && !real_fffd) || cp == 0xFFFE || cp == 0xFFFF) lw_sb_append(out, "?", 1);
            else lw_sb_append(out, (const char *)s + i, adv);
            i += adv ? adv : 1;
            continue;
        }
        if (c == '&') lw_sb_append(out, "&amp;", 5);
        else if (c == '<') lw_sb_append(out, "&lt;", 4);
        else if (c == '>') lw_sb_append(out, "&gt;", 4);
        else if (c == '"') lw_sb_append(out, "&quot;", 6);
        else if (c == '\'') lw_sb_append(out, "&apos;", 6);
        else if ((c < 0x20 && c != '\t') || c == 0x7f) lw_sb_append(out, "?", 1);
        else lw_sb_append(out, (const char *)s + i, 1);
        i++;
    }
}

/* The plot's data-to-pixel mapping. */
typedef struct {
    double xlo, xhi, ylo, yhi;
    bool log2x;
} frame;

static double tx(const frame *f, double x) { return f->log2x ? log2(x) : x; }

static double px(const frame *f, double x)
{
    return LEFT + (tx(f, x) - f->xlo) / (f->xhi - f->xlo) * (WIDTH - LEFT - RIGHT);
}

static double py(const frame *f, double y)
{
    return (HEIGHT - BOTTOM) - (y - f->ylo) / (f->yhi - f->ylo) * (HEIGHT - TOP - BOTTOM);
}

/* 1, 2 or 5 times a power of ten, near span/target. */
static double nice_step(double span, int target)
{
    double raw = span / target, mag = pow(10.0, floor(log10(raw))), f = raw / mag;
    return (f < 1.5 ? 1.0 : f < 3.0 ? 2.0 : f < 7.0 ? 5.0 : 10.0) * mag;
}

static int decimals_for(double step)
{
    int d = (int)ceil(-log10(step) - 1e-9);
    return d < 0 ? 0 : d > 8 ? 8 : d;
}

static bool finite_point(const lw_svg_series *s, int i, bool log2x)
{
    if (s->horizontal) return i == 0 && isfinite(s->y[0]);
    return isfinite(s->x[i]) && isfinite(s->y[i]) && (!log2x || s->x[i] > 0);
}

static double err_at(const lw_svg_series *s, int i)
{
    return s->err && isfinite(s->err[i]) && s->err[i] > 0 ? s->err[i] : 0.0;
}

/* Data extents in transformed x; returns false if nothing can be drawn. */
static bool extents(const lw_svg_plot *p, const lw_svg_series *s, int ns, frame *f)
{
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    bool any_y = false;
    for (int k = 0; k < ns; k++)
        for (int i = 0; i < (s[k].horizontal ? 1 : s[k].n); i++) {
            if (!finite_point(&s[k], i, p->x_log2)) continue;
            double e = err_at(&s[k], i), y = s[k].y[i];
            ylo = fmin(ylo, y - e), yhi = fmax(yhi, y + e), any_y = true;
            if (s[k].horizontal) continue;
            double x = p->x_log2 ? log2(s[k].x[i]) : s[k].x[i];
            xlo = fmin(xlo, x), xhi = fmax(xhi, x);
        }
    for (int i = 0; i < p->n_x_ticks && p->x_ticks; i++)
        if (isfinite(p->x_ticks[i]) && (!p->x_log2 || p->x_ticks[i] > 0)) {
            double x = p->x_log2 ? log2(p->x_ticks[i]) : p->x_ticks[i];
            xlo = fmin(xlo, x), xhi = fmax(xhi, x);
        }
    if (!any_y || !isfinite(xlo)) return false;
    if (xhi - xlo < 1e-12) xlo -= 1.0, xhi += 1.0;
    if (yhi - ylo < 1e-12) {
        double pad = fabs(yhi) > 1e-6 ? fabs(yhi) * 0.1 : 0.05;
        ylo -= pad, yhi += pad;
    }
    *f = (frame){xlo, xhi, ylo, yhi, p->x_log2};
    return true;
}

static void text(lw_strbuf *o, double x, double y, const char *anchor, const char *extra, const char *s)
{
    lw_sb_printf(o, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\"%s>", x, y, anchor, extra);
    lw_svg_escape(o, s);
    lw_sb_append(o, "</text>\n", 8);
}

/* Widens y to whole ticks and draws the grid, the y tick labels and axis. */
static void y_axis(lw_strbuf *o, frame *f)
{
    double step = nice_step(f->yhi - f->ylo, 6);
    f->ylo = floor(f->ylo / step + 1e-9) * step;
    f->yhi = ceil(f->yhi / step - 1e-9) * step;
    int dec = decimals_for(step);
    for (int i = 0; i <= MAX_TICKS; i++) {
        double v = f->ylo + i * step;
        if (v > f->yhi + step * 1e-6) break;
        char label[64];
        snprintf(label, sizeof label, "%.*f", dec, fabs(v) < step * 1e-9 ? 0.0 : v);
        double y = py(f, v);
        lw_sb_printf(o, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#e0e0e0\"/>\n", LEFT, y,
                     WIDTH - RIGHT, y);
        text(o, LEFT - 8, y + 5, "end", "", label);
    }
}

static void x_tick(lw_strbuf *o, const frame *f, double v, int dec)
{
    char label[64];
    if (dec < 0) snprintf(label, sizeof label, "%g", v);
    else snprintf(label, sizeof label, "%.*f", dec, v);
    double x = px(f, v);
    lw_sb_printf(o, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#333\"/>\n", x, HEIGHT - BOTTOM, x,
                 HEIGHT - BOTTOM + 6);
    text(o, x, HEIGHT - BOTTOM + 22, "middle", "", label);
}

/* Given ticks get a margin so end markers clear the axes; automatic ticks
 * widen the range to whole steps (powers of two on a log2 axis). */
static void x_axis(lw_strbuf *o, const lw_svg_plot *p, frame *f)
{
    if (p->x_ticks) {
        double pad = (f->xhi - f->xlo) * 0.05;
        f->xlo -= pad, f->xhi += pad;
        for (int i = 0; i < p->n_x_ticks; i++)
            if (isfinite(p->x_ticks[i]) && (!p->x_log2 || p->x_ticks[i] > 0)) x_tick(o, f, p->x_ticks[i], -1);
        return;
    }
    double step = p->x_log2 ? fmax(1.0, ceil((f->xhi - f->xlo) / 8)) : nice_step(f->xhi - f->xlo, 8);
    f->xlo = floor(f->xlo / step + 1e-9) * step;
    f->xhi = ceil(f->xhi / step - 1e-9) * step;
    for (int i = 0; i <= MAX_TICKS; i++) {
        double t = f->xlo + i * step;
        if (t > f->xhi + step * 1e-6) break;
        if (p->x_log2) x_tick(o, f, exp2(t), -1);
        else x_tick(o, f, fabs(t) < step * 1e-9 ? 0.0 : t, decimals_for(step));
    }
}

static void draw_series(lw_strbuf *o, const frame *f, const lw_svg_series *s, const char *color)
{
    if (s->horizontal) {
        bool ok = isfinite(s->y[0]);
        double e = err_at(s, 0), y = ok ? py(f, s->y[0]) : 0;
        if (ok && e > 0)
            lw_sb_printf(o, "<rect x=\"%d\" y=\"%.1f\" width=\"%d\" height=\"%.1f\" fill=\"%s\" fill-opacity=\"0.12\"/>\n",
                         LEFT, py(f, s->y[0] + e), WIDTH - LEFT - RIGHT, py(f, s->y[0] - e) - py(f, s->y[0] + e), color);
        lw_sb_printf(o, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" stroke-dasharray=\"8 5\" points=\"", color);
        if (ok) lw_sb_printf(o, "%d,%.1f %d,%.1f", LEFT, y, WIDTH - RIGHT, y);
        lw_sb_append(o, "\"/>\n", 4);
        return;
    }
    lw_sb_printf(o, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" stroke-linejoin=\"round\" points=\"", color);
    for (int i = 0; i < s->n; i++)
        if (finite_point(s, i, f->log2x)) lw_sb_printf(o, "%.1f,%.1f ", px(f, s->x[i]), py(f, s->y[i]));
    lw_sb_append(o, "\"/>\n", 4);
    for (int i = 0; i < s->n; i++) {
        if (!finite_point(s, i, f->log2x)) continue;
        double x = px(f, s->x[i]), e = err_at(s, i);
        if (e > 0) {
            double a = py(f, s->y[i] + e), b = py(f, s->y[i] - e);
            lw_sb_printf(o, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"1.5\"/>\n", x,
                         a, x, b, color);
            for (int c = 0; c < 2; c++)
                lw_sb_printf(o, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"1.5\"/>\n",
                             x - 5, c ? b : a, x + 5, c ? b : a, color);
        }
        if (s->markers) lw_sb_printf(o, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"/>\n", x, py(f, s->y[i]), color);
    }
}

/* Legend rows beside the plot; labels cut to LEGEND_CHARS characters. */
static void legend(lw_strbuf *o, const lw_svg_series *s, int ns)
{
    int rows = (HEIGHT - TOP - BOTTOM) / ROW, x = WIDTH - RIGHT + 20;
    for (int k = 0; k < ns; k++) {
        int y = TOP + 10 + k * ROW;
        if (k == rows - 1 && ns > rows) {
            char more[64];
            snprintf(more, sizeof more, "... and %d more", ns - k);
            text(o, x, y + 5, "start", "", more);
            return;
        }
        lw_sb_printf(o, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"2\"%s/>\n", x, y,
                     x + 24, y, PALETTE[k % N_COLORS], s[k].horizontal ? " stroke-dasharray=\"6 3\"" : "");
        char label[4 * LEGEND_CHARS + 8];
        size_t n = 0, chars = 0;
        const char *l = s[k].label ? s[k].label : "";
        for (; l[n] && n + 8 < sizeof label; n++) {
            if (((unsigned char)l[n] & 0xC0) != 0x80 && ++chars > LEGEND_CHARS) break;
            label[n] = l[n];
        }
        while (n > 0 && l[n] && ((unsigned char)l[n] & 0xC0) == 0x80) n--;  /* never cut a character */
        strcpy(label + n, l[n] ? "..." : "");
        text(o, x + 32, y + 5, "start", "", label);
    }
}

lw_status lw_svg_line_plot(const lw_svg_plot *p, const lw_svg_series *s, int n_series, lw_strbuf *out)
{
    frame f;
    for (int k = 0; k < n_series; k++)
        for (int i = 0; p->x_log2 && !s[k].horizontal && i < s[k].n; i++)
            if (isfinite(s[k].x[i]) && s[k].x[i] <= 0)
                return lw_fail(LW_ERR_INVALID, "svg plot '%s': x = %g on a log2 axis", p->title, s[k].x[i]);
    if (!extents(p, s, n_series, &f))
        return lw_fail(LW_ERR_INVALID, "svg plot '%s': no finite point to draw", p->title);
    lw_sb_printf(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                 "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
                 "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" font-size=\"14\" fill=\"#222\">\n"
                 "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"white\"/>\n",
                 WIDTH, HEIGHT, WIDTH, HEIGHT, WIDTH, HEIGHT);
    text(out, (LEFT + WIDTH - RIGHT) / 2.0, TOP - 20, "middle", " font-size=\"17\" font-weight=\"bold\"", p->title);
    y_axis(out, &f);
    x_axis(out, p, &f);
    lw_sb_printf(out, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#333\"/>\n", LEFT, TOP,
                 WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    text(out, (LEFT + WIDTH - RIGHT) / 2.0, HEIGHT - 22, "middle", "", p->x_label);
    char rot[80];
    snprintf(rot, sizeof rot, " transform=\"rotate(-90 %d %d)\"", 22, (TOP + HEIGHT - BOTTOM) / 2);
    text(out, 22, (TOP + HEIGHT - BOTTOM) / 2.0, "middle", rot, p->y_label);
    for (int k = 0; k < n_series; k++) draw_series(out, &f, &s[k], PALETTE[k % N_COLORS]);
    legend(out, s, n_series);
    lw_sb_append(out, "</svg>\n", 7);
    if (out->failed) return lw_fail(LW_ERR_NOMEM, "svg plot '%s': out of memory", p->title);
    return LW_OK;
}
