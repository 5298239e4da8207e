/* libFuzzer: the trained-checkpoint reader (lw_checkpoint_load_bridge, the
 * strict F32 safetensors reader of checkpoint.c) on arbitrary bytes, loading
 * into a small Perceiver bridge. Seeds (tests/fuzz/seeds/checkpoint/): what
 * lw_checkpoint_save writes for this config, and copies with a NaN, an
 * infinity, overlapping, float or backwards data_offsets, another dtype or
 * shape, cut short, 7 bytes. The input goes into a memfd opened
 * through /proc/self/fd, as the loader takes a path. A load that succeeds
 * must leave only finite values; one that fails must explain itself and
 * leave the bridge as it was. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE   /* memfd_create */
#endif
#include "bridge.h"
#include "checkpoint.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* The config the seeds were written for: keep in step with the script. */
enum { SOFT = 2, WIDTH = 4, DEPTH = 1, HEADS = 2, FFN = 1, SENDER = 6, RECEIVER = 4 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static lw_bridge b;
    static float *before;
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        lw_bridge_config c = {.kind = LW_BRIDGE_PERCEIVER, .soft_tokens = SOFT, .width = WIDTH, .depth = DEPTH,
                              .heads = HEADS, .ffn_mult = FFN, .calibration = LW_CALIB_RMS};
        if (lw_bridge_create(&b, &c, SENDER, RECEIVER, 0.5f) != LW_OK) abort();
        lw_bridge_init(&b, 1);
        before = malloc(b.n_params * sizeof *before);
        fd = memfd_create("bridge.safetensors", 0);
        if (!before || fd < 0) abort();
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0 || (size && pwrite(fd, data, size, 0) != (ssize_t)size)) abort();

    memcpy(before, b.params, b.n_params * sizeof *before);
    lw_fail(LW_OK, "%s", "");
    if (lw_checkpoint_load_bridge(path, &b) != LW_OK) {
        if (lw_last_error()[0] == 0) abort();   /* every failure explains itself */
        if (memcmp(before, b.params, b.n_params * sizeof *before) != 0) abort();   /* all or nothing */
    } else {
        for (size_t i = 0; i < b.n_params; i++)
            if (!isfinite(b.params[i])) abort();
    }
    /* The tool reader on the same bytes: one tensor, any shape. */
    float *x = NULL;
    int64_t shape[4];
    int ndim;
    lw_fail(LW_OK, "%s", "");
    if (lw_safetensors_read_f32(path, "queries", &x, shape, &ndim) != LW_OK && lw_last_error()[0] == 0) abort();
    free(x);
    return 0;
}
