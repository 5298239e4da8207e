/* libFuzzer: the safetensors reader on arbitrary bytes. Every tensor that
 * parses is converted, so a view outside the buffer shows up under ASan. */
#include "dequant.h"
#include "safetensors.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lw_safetensors *s;
    lw_fail(LW_OK, "%s", "");
    if (lw_safetensors_parse(data, size, "fuzz.safetensors", &s) != LW_OK) {
        if (lw_last_error()[0] == 0) abort();   /* every failure explains itself */
        return 0;
    }
    for (size_t i = 0; i < lw_safetensors_n_tensors(s); i++) {
        const lw_raw_tensor *t = lw_safetensors_tensor_at(s, i);
        if (t->n_elements > (1 << 20)) continue;
        float *out = malloc((size_t)(t->n_elements ? t->n_elements : 1) * sizeof *out);
        if (out) lw_dequantize(t->type, t->data, out, t->n_elements);
        free(out);
        (void)lw_safetensors_find(s, t->name);
    }
    lw_safetensors_close(s);
    return 0;
}
