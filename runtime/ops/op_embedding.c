/* Token embedding lookup, times Gemma's sqrt(hidden) where the family asks.
 * The table has no row count here: callers check ids against the vocab
 * (the tokenizer and the data loader do); a negative id gives a zero row. */
#include "ops.h"

#include <stddef.h>
#include <string.h>

void embedding_forward(float *y, const int *ids, const float *table, int T, int C, float scale)
{
    for (int t = 0; t < T; t++) {
        float *yt = y + (size_t)t * C;
        if (ids[t] < 0) {
            memset(yt, 0, (size_t)C * sizeof *yt);
            continue;
        }
        const float *row = table + (size_t)ids[t] * C;
        for (int i = 0; i < C; i++) yt[i] = row[i] * scale;
    }
}
