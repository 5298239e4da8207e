/* The CUDA kernel templates without a GPU: the dropout hash that
 * templates/common.cuh shares between the kernels and runtime/model/lora.c gives
 * the masks of an independent Python copy (tests/golden/lora/), and
 * lw_lora_forward applies exactly those masks; the deep prefix's draw in the
 * same header matches lw_deep_prefix_forward's; and NVRTC compiles the
 * generated kernels of two pairs (Gemma 3 and three Llama-family models,
 * Llama 3.1's RoPE scaling among them), with every kernel of the kernel
 * table in its unit's CUBIN. (tests/gpu/check_kernels_gpu.c runs them
 * against the CPU on a GPU.) */
#include "testlib.h"
#include "tiny_models.h"
#include "adapters.h"
#include "deep_prefix.h"
#include "fileutil.h"
#include "gen_kernels.h"
#include "kernel_table.h"
#include "lora.h"
#include "manifest.h"
#include "model.h"
#include "nvrtc_compile.h"
#include "random_weights.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LW_COMMON_HOST_ONLY
#include "../templates/common.cuh"

enum { GOLDEN_COLS = 64, MAX_GOLDEN = 64 };

typedef struct {
    int layer, target, pos;
    char bits[GOLDEN_COLS + 1];
} golden_row;

/* Reads tests/golden/lora/dropout_mask.txt: "seed p", then rows. */
static int read_golden(unsigned long long *seed, float *p, golden_row *rows)
{
    FILE *f = fopen(tl_src("tests/golden/lora/dropout_mask.txt"), "r");
    ck_assert_msg(f != NULL, "missing tests/golden/lora/dropout_mask.txt (tests/golden/make_lora_dropout_golden.py)");
    ck_assert_int_eq(fscanf(f, "%llu %f", seed, p), 2);
    int n = 0;
    while (n < MAX_GOLDEN && fscanf(f, "%d %d %d %64s", &rows[n].layer, &rows[n].target, &rows[n].pos,
                                    rows[n].bits) == 4) {
        ck_assert_uint_eq(strlen(rows[n].bits), GOLDEN_COLS);
        n++;
    }
    fclose(f);
    ck_assert_int_ge(n, 50);
    return n;
}

START_TEST(shared_hash_gives_the_golden_masks)
{
    unsigned long long seed;
    float p;
    golden_row rows[MAX_GOLDEN];
    int n = read_golden(&seed, &p, rows), dropped = 0;
    double cut = lw_dropout_cut(p);
    for (int r = 0; r < n; r++) {
        unsigned long long stream = lw_lora_stream(seed, rows[r].layer, rows[r].target);
        for (int j = 0; j < GOLDEN_COLS; j++) {
            int want = rows[r].bits[j] == '1';
            ck_assert_msg(lw_lora_kept(stream, cut, rows[r].pos, j) == want,
                          "layer %d target %d pos %d column %d: kept %d, golden %d", rows[r].layer, rows[r].target,
                          rows[r].pos, j, !want, want);
            dropped += !want;
        }
    }
    /* p = 0.3 of n * 64 draws: a broken cut would keep all or none */
    ck_assert_int_gt(dropped, n * GOLDEN_COLS / 5);
    ck_assert_int_lt(dropped, n * GOLDEN_COLS * 2 / 5);
    ck_assert_int_eq(lw_lora_kept(lw_lora_stream(seed, 0, 0), lw_dropout_cut(0.0f), 7, 3), 1);
}
END_TEST

/* On a tiny llama (hidden 16 = q width) with rank 16, A = I and B = I,
 * y = scale * dropout(ones): its zeros are the mask lw_lora_forward drew. */
START_TEST(lora_forward_applies_the_golden_masks)
{
    unsigned long long seed;
    float p;
    golden_row rows[MAX_GOLDEN];
    int n = read_golden(&seed, &p, rows);
    lw_model_config c = tl_tiny_llama_config(LW_WEIGHTS_GGUF);
    lw_model *m;
    ck_assert_int_eq(lw_model_init_random(&c, 5, &m), LW_OK);
    int H = c.hidden, T = 6;
    ck_assert_int_eq(c.n_heads * c.head_dim, H);
    lw_lora lo;
    lw_lora_config lc = {.rank = H, .alpha = 2.0f * H, .dropout = p, .targets = 1u << LW_LORA_Q};
    ck_assert_int_eq(lw_lora_create(&lo, &lc, m), LW_OK);
    lw_receiver_adapters ad;
    ck_assert_int_eq(lw_adapters_init(&ad, m, T, &lo, 0), LW_OK);
    ad.training = true;
    ad.dropout_seed = seed;
    float *x = malloc((size_t)T * H * sizeof *x), *y = malloc((size_t)T * H * sizeof *y);
    ck_assert_ptr_nonnull(x);
    ck_assert_ptr_nonnull(y);
    for (int i = 0; i < T * H; i++) x[i] = 1.0f;
    int checked = 0;
    for (int layer = 0; layer < c.n_layers; layer++) {
        const lw_lora_slot *s = lw_lora_slot_at(&lo, layer, LW_LORA_Q);
        float *A = lo.p.params + s->a, *B = lo.p.params + s->b;
        for (int i = 0; i < H; i++)
            for (int k = 0; k < H; k++) A[(size_t)k * H + i] = B[(size_t)i * H + k] = i == k ? 1.0f : 0.0f;
        int pos[6];
        const golden_row *g[6];
        int t = 0;
        for (int r = 0; r < n && t < T; r++)
            if (rows[r].layer == layer && rows[r].target == LW_LORA_Q) {
                g[t] = &rows[r];
                pos[t++] = rows[r].pos;
            }
        ck_assert_int_eq(t, T);
        memset(y, 0, (size_t)T * H * sizeof *y);
        lw_lora_forward(&ad, layer, LW_LORA_Q, x, y, T, pos);
        for (t = 0; t < T; t++)
            for (int j = 0; j < H; j++) {
                int want = g[t]->bits[j] == '1';
                ck_assert_msg((y[(size_t)t * H + j] != 0.0f) == want, "layer %d pos %d column %d: y %g, golden %d",
                              layer, pos[t], j, (double)y[(size_t)t * H + j], want);
                checked++;
            }
    }
    ck_assert_int_eq(checked, c.n_layers * T * H);
    free(x), free(y);
    lw_adapters_free(&ad);
    lw_lora_free(&lo);
    lw_model_free(m);
}
END_TEST

/* lw_prefix_kept (what prefix_dropout_forward draws) against the keep
 * factors lw_deep_prefix_forward stores. */
START_TEST(prefix_hash_matches_deep_prefix_forward)
{
    lw_model_config c = tl_tiny_receiver_config(4, true);
    lw_deep_prefix dp;
    lw_deep_prefix_config pc = {.length = 5, .hidden = 12, .dropout = 0.25f};
    ck_assert_int_eq(lw_deep_prefix_create(&dp, &pc, &c), LW_OK);
    lw_deep_prefix_init(&dp, 3);
    int M = 2, R = dp.R;
    float *soft = calloc((size_t)M * R, sizeof *soft);
    ck_assert_ptr_nonnull(soft);
    for (int i = 0; i < M * R; i++) soft[i] = (float)((i * 7) % 5) - 2.0f;
    uint64_t seed = 0xfeedfacecafebeefull;
    ck_assert_int_eq(lw_deep_prefix_forward(&dp, soft, M, true, seed), LW_OK);
    int n = pc.length * pc.hidden, dropped = 0;
    double cut = lw_dropout_cut(pc.dropout);
    for (int i = 0; i < n; i++) {
        int kept = lw_prefix_kept(seed, (unsigned long long)i, cut);
        ck_assert_msg((dp.keep[i] != 0.0f) == kept, "element %d: keep %g, hash %d", i, (double)dp.keep[i], kept);
        dropped += !kept;
    }
    ck_assert_int_gt(dropped, 0);
    ck_assert_int_lt(dropped, n / 2);
    free(soft);
    lw_deep_prefix_free(&dp);
}
END_TEST

/* Both units of each pair compile, and every kernel the table gives a unit
 * is in its CUBIN (the symbol table names every kernel): what the generated
 * launchers look up exists. */
START_TEST(nvrtc_compiles_every_kernel_of_the_table)
{
    if (!lw_nvrtc_available()) {
        fprintf(stderr, "check_kernel_templates: built without NVRTC, compile test not run\n");
        return;
    }
    static const char *const pairs[] = {"pairs/smollm2-135m_to_gemma3-270m.json",
                                        "pairs/mistral-7b_to_llama31-8b.json"};
    lw_manifest *man = calloc(1, sizeof *man);
    ck_assert_ptr_nonnull(man);
    for (size_t pi = 0; pi < sizeof pairs / sizeof pairs[0]; pi++) {
        ck_assert_msg(lw_manifest_load(tl_src(pairs[pi]), man) == LW_OK, "%s", lw_last_error());
        for (int unit = 0; unit < 3; unit++) {
            lw_strbuf sb = {0};
            lw_status st = unit == 2 ? lw_gen_bridge_kernels(tl_src("templates"), man, &sb)
                                     : lw_gen_model_kernels(tl_src("templates"), unit ? &man->receiver : &man->sender,
                                                            man->bridge.soft_tokens, &sb);
            ck_assert_msg(st == LW_OK && !sb.failed, "%s", lw_last_error());
            unsigned char *image = NULL;
            size_t size = 0;
            st = lw_nvrtc_compile(sb.data, unit == 2 ? "kernels_bridge.cu" : "kernels_model.cu", 80, &image, &size);
            ck_assert_msg(st == LW_OK, "%s: %s", pairs[pi], lw_last_error());
            int found = 0;
            for (int k = 0; k < lw_kernel_table_len; k++) {
                if (strcmp(lw_kernel_table[k].unit, unit == 2 ? "bridge" : "model")) continue;
                const char *name = lw_kernel_table[k].name;
                size_t len = strlen(name) + 1;   /* with the NUL: the exact symbol, not a prefix */
                ck_assert_msg(memmem(image, size, name, len) != NULL, "%s: kernel %s not in the CUBIN", pairs[pi],
                              name);
                found++;
            }
            ck_assert_int_ge(found, 13);
            free(image);
            lw_sb_free(&sb);
        }
    }
    free(man);
}
END_TEST

/* The table's static_asserts at the end of a unit: NVRTC refuses a kernel
 * whose type, after the preprocessor, is not the table's, even where the
 * template's text was not what changed (here a macro retypes a parameter
 * in the rendered source, which the text check never sees). */
START_TEST(nvrtc_refuses_a_kernel_type_that_differs_from_the_table)
{
    if (!lw_nvrtc_available()) {
        fprintf(stderr, "check_kernel_templates: built without NVRTC, compile test not run\n");
        return;
    }
    lw_manifest *man = calloc(1, sizeof *man);
    ck_assert_ptr_nonnull(man);
    ck_assert_msg(lw_manifest_load(tl_src("pairs/smollm2-135m_to_gemma3-270m.json"), man) == LW_OK, "%s",
                  lw_last_error());
    lw_strbuf sb = {0};
    ck_assert_msg(lw_gen_model_kernels(tl_src("templates"), &man->receiver, man->bridge.soft_tokens, &sb) == LW_OK,
                  "%s", lw_last_error());
    ck_assert_msg(strstr(sb.data, "static_assert(lw_same_type<decltype(&glu_forward), void (*)(float *, const float *, "
                                  "const float *, int)>::value") != NULL, "no type check of glu_forward");
    const char *def = "void glu_forward(float *out, const float *gate, const float *up, int n)";
    char *at = strstr(sb.data, def);
    ck_assert_ptr_nonnull(at);
    lw_strbuf bad = {0};
    lw_sb_append(&bad, sb.data, (size_t)(at - sb.data));
    lw_sb_printf(&bad, "void glu_forward(float *out, const float *gate, const float *up, LW_COUNT n)");
    lw_sb_printf(&bad, "%s", at + strlen(def));
    lw_strbuf src = {0};
    lw_sb_printf(&src, "#define LW_COUNT unsigned\n%s", bad.data);
    unsigned char *image = NULL;
    size_t size = 0;
    ck_assert_int_eq(lw_nvrtc_compile(src.data, "kernels_model.cu", 80, &image, &size), LW_ERR_EXTERNAL);
    ck_assert_msg(strstr(lw_last_error(), "kernel glu_forward: its signature differs from templates/kernels.def"),
                  "%s", lw_last_error());
    free(image);
    lw_sb_free(&src), lw_sb_free(&bad), lw_sb_free(&sb);
    free(man);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("kernel_templates");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, shared_hash_gives_the_golden_masks);
    tcase_add_test(tc, lora_forward_applies_the_golden_masks);
    tcase_add_test(tc, prefix_hash_matches_deep_prefix_forward);
    tcase_add_test(tc, nvrtc_compiles_every_kernel_of_the_table);
    tcase_add_test(tc, nvrtc_refuses_a_kernel_type_that_differs_from_the_table);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
