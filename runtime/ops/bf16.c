/* bf16 numbers and the packed bf16 weight matrix (bf16.h). */
#include "bf16.h"

#include "cpu_path.h"

#include <stdlib.h>
#include <string.h>

uint16_t lw_bf16_from_f32(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u); /* NaN: keep it one */
    /* Adding 0x7fff plus the kept part's lowest bit rounds half-way cases to
     * the even neighbour; a carry into the exponent is the correct result
     * (up to infinity). */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float lw_f32_from_bf16(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

lw_status lw_bf16_matrix_pack(lw_bf16_matrix *m, const float *w, int out, int in)
{
    memset(m, 0, sizeof *m);
    if (out <= 0 || in <= 0 || in > (1 << 28))
        return lw_fail(LW_ERR_INVALID, "bf16 matrix: shape %d x %d", out, in);
    int ld = (in + 31) / 32 * 32;
    size_t n = (size_t)out * (size_t)ld;
    if (n > SIZE_MAX / 2 / sizeof(uint16_t))
        return lw_fail(LW_ERR_INVALID, "bf16 matrix: %d x %d is too large", out, in);
    /* ld*2 bytes is a multiple of 64, as aligned_alloc requires of the size */
    uint16_t *p = aligned_alloc(64, n * sizeof *p);
    if (!p) return lw_fail(LW_ERR_NOMEM, "bf16 matrix: %zu bytes", n * sizeof *p);
    for (int o = 0; o < out; o++) {
        uint16_t *row = p + (size_t)o * ld;
        const float *src = w + (size_t)o * in;
        for (int i = 0; i < in; i++) row[i] = lw_bf16_from_f32(src[i]);
        for (int i = in; i < ld; i++) row[i] = 0;
    }
    m->w = p;
    if (lw_cpu_path_detected() == LW_CPU_AVX512) {
        int nblk = (out + 15) / 16, ldp = ld / 2;
        size_t np = (size_t)nblk * 16 * (size_t)ld;
        uint16_t *q = aligned_alloc(64, np * sizeof *q);
        if (!q) {
            free(p);
            m->w = NULL;
            return lw_fail(LW_ERR_NOMEM, "bf16 matrix: %zu bytes", np * sizeof *q);
        }
        for (int blk = 0; blk < nblk; blk++)
            for (int kp = 0; kp < ldp; kp++)
                for (int j = 0; j < 16; j++) {
                    int o = blk * 16 + j;
                    uint16_t *dst = q + (((size_t)blk * ldp + kp) * 16 + j) * 2;
                    dst[0] = o < out ? p[(size_t)o * ld + 2 * kp] : 0;
                    dst[1] = o < out ? p[(size_t)o * ld + 2 * kp + 1] : 0;
                }
        m->p = q;
    }
    m->out = out;
    m->in = in;
    m->ld = ld;
    return LW_OK;
}

void lw_bf16_matrix_free(lw_bf16_matrix *m)
{
    free(m->w);
    free(m->p);
    memset(m, 0, sizeof *m);
}
