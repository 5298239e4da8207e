/* The message's dependence on the input (message_spread.h). */
#include "message_spread.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

lw_status lw_msg_spread_init(lw_msg_spread *s, size_t len)
{
    memset(s, 0, sizeof *s);
    if (len < 1) return lw_fail(LW_ERR_INVALID, "message spread: messages of %zu floats", len);
    if (!(s->sum = calloc(len, sizeof *s->sum)))
        return lw_fail(LW_ERR_NOMEM, "message spread: out of memory for %zu floats", len);
    s->len = len;
    return LW_OK;
}

void lw_msg_spread_add(lw_msg_spread *s, const float *z)
{
    for (size_t k = 0; k < s->len; k++) {
        s->sum[k] += z[k];
        s->sq += (double)z[k] * z[k];
    }
    s->n++;
}

double lw_msg_spread_value(const lw_msg_spread *s)
{
    if (s->n < 2 || !(s->sq > 0.0)) return NAN;
    double mean_sq = 0.0;   /* n |mean|^2 = |sum|^2 / n */
    for (size_t k = 0; k < s->len; k++) mean_sq += s->sum[k] * s->sum[k];
    double v = (s->sq - mean_sq / s->n) / s->sq;
    return v < 0.0 ? 0.0 : v;   /* rounding below an exact 0 */
}

void lw_msg_spread_free(lw_msg_spread *s)
{
    free(s->sum);
    memset(s, 0, sizeof *s);
}
