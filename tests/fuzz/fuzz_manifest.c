/* libFuzzer harness: any byte string handed to the manifest parser must
 * come back as LW_OK or an error with a message, never a crash, leak or UB. */
#include "manifest.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static lw_manifest m;   /* ~50 KB: keep it off the stack */
    lw_status st = lw_manifest_parse((const char *)data, size, "fuzz/m.json", &m);
    if (st != LW_OK && lw_last_error()[0] == 0) abort();   /* every failure explains itself */
    if (st == LW_OK) {
        /* What parses must also print, and the print must be a C string. */
        char *text = lw_model_config_to_json(&m.sender);
        if (!text || !strchr(text, '{')) abort();
        free(text);
    }
    return 0;
}
