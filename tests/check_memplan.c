/* The GPU memory plan against counts worked out by hand from the model
 * dimensions (the published sizes: SmolLM2 135M, Gemma 3 270M, Llama 3.1 8B
 * 8.03B, Mistral 7B v0.3 7.25B parameters). */
#include "testlib.h"
#include "bridge.h"
#include "cuda_memplan.h"
#include "deep_prefix.h"
#include "lora.h"
#include "manifest.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static lw_manifest *load(const char *rel)
{
    lw_manifest *m = malloc(sizeof *m);
    ck_assert_ptr_nonnull(m);
    lw_status st = lw_manifest_load(tl_src(rel), m);
    ck_assert_msg(st == LW_OK, "%s: %s", rel, lw_last_error());
    return m;
}

/* embed V*H, output V*H unless tied, per layer H*(2*Hq*D + 2*Hkv*D) + 3*H*F
 * + norms, final norm H: written out number by number below. */
START_TEST(llama31_8b_weights)
{
    lw_manifest *m = load("pairs/llama31-8b_to_mistral-7b.json");
    lw_weights_plan w;
    ck_assert_int_eq(lw_memplan_weights(&m->sender, &w), LW_OK);
    ck_assert_uint_eq(w.embed, 128256ull * 4096);                  /* 525,336,576 */
    ck_assert_uint_eq(w.output, 128256ull * 4096);                 /* untied */
    /* q 4096x4096, k and v 1024x4096, o 4096x4096, gate/up/down 14336x4096, 2 norms */
    ck_assert_uint_eq(w.per_layer, 16777216ull * 2 + 4194304ull * 2 + 3 * 58720256ull + 2 * 4096);
    ck_assert_uint_eq(w.per_layer, 218112000ull);
    ck_assert_uint_eq(w.total, 8030261248ull);
    ck_assert_uint_eq(w.bytes_bf16, 16060522496ull);               /* ~16.06 GB */
    ck_assert_uint_eq(w.bytes_f32, 32121044992ull);
    free(m);
}
END_TEST

START_TEST(mistral_7b_weights)
{
    lw_manifest *m = load("pairs/llama31-8b_to_mistral-7b.json");
    lw_weights_plan w;
    ck_assert_int_eq(lw_memplan_weights(&m->receiver, &w), LW_OK);
    ck_assert_uint_eq(w.embed, 32768ull * 4096);
    ck_assert_uint_eq(w.output, 32768ull * 4096);
    ck_assert_uint_eq(w.per_layer, 218112000ull);                  /* same layer shape as Llama */
    ck_assert_uint_eq(w.total, 2 * 134217728ull + 32 * 218112000ull + 4096);   /* 7,248,023,552 */
    ck_assert_uint_eq(w.bytes_bf16, 14496047104ull);
    free(m);
}
END_TEST

START_TEST(small_pair_weights)
{
    lw_manifest *m = load("pairs/smollm2-135m_to_gemma3-270m.json");
    lw_weights_plan w;
    /* SmolLM2: H 576, 9 heads / 3 kv of 64, F 1536, V 49152, 30 layers, tied */
    ck_assert_int_eq(lw_memplan_weights(&m->sender, &w), LW_OK);
    ck_assert_uint_eq(w.output, 0);
    ck_assert_uint_eq(w.per_layer, 576ull * (2 * 576 + 2 * 192) + 3ull * 576 * 1536 + 2 * 576);
    ck_assert_uint_eq(w.total, 49152ull * 576 + 30 * 3540096ull + 576);    /* 134,515,008 */
    ck_assert_uint_eq(w.total, 134515008ull);
    /* Gemma 3 270M: H 640, 4 heads / 1 kv of 256, F 2048, V 262144, 18 layers,
     * tied, 4 norms per layer (post-norms) + q/k norms of 256 */
    ck_assert_int_eq(lw_memplan_weights(&m->receiver, &w), LW_OK);
    ck_assert_uint_eq(w.per_layer, 640ull * (2 * 1024 + 2 * 256) + 3ull * 640 * 2048 + 4 * 640 + 2 * 256);
    ck_assert_uint_eq(w.total, 262144ull * 640 + 18 * 5573632ull + 640);   /* 268,098,176 */
    ck_assert_uint_eq(w.bytes_bf16, 2 * 268098176ull);
    free(m);
}
END_TEST

/* The plan's bridge count must be the table lw_bridge_create builds. */
START_TEST(bridge_params_match_the_bridge)
{
    lw_manifest *m = load("pairs/smollm2-135m_to_gemma3-270m.json");
    lw_bridge_kind kinds[] = {LW_BRIDGE_PERCEIVER, LW_BRIDGE_MLP, LW_BRIDGE_LINEAR};
    for (int i = 0; i < 3; i++) {
        for (int calib = 0; calib < 2; calib++) {
            lw_bridge_config c = m->bridge;
            c.kind = kinds[i];
            c.calibration = calib ? LW_CALIB_RMS : LW_CALIB_NONE;
            if (c.kind != LW_BRIDGE_PERCEIVER) c.soft_tokens = 4;   /* keep the linear table small */
            lw_bridge b;
            ck_assert_int_eq(lw_bridge_create(&b, &c, m->sender.hidden, m->receiver.hidden, 1.0f), LW_OK);
            uint64_t n = 0;
            ck_assert_int_eq(lw_memplan_bridge_params(&c, m->sender.hidden, m->receiver.hidden, &n), LW_OK);
            ck_assert_uint_eq(n, b.n_params);
            lw_bridge_free(&b);
        }
    }
    free(m);
}
END_TEST

START_TEST(flagship_plan)
{
    lw_manifest *m = load("pairs/llama31-8b_to_mistral-7b.json");
    lw_memplan p;
    ck_assert_int_eq(lw_memplan_compute(m, 2, 512, LW_DTYPE_BF16, &p), LW_OK);
    ck_assert_uint_eq(p.weights, 16060522496ull + 14496047104ull);
    /* bridge: in_proj 1024x4096 + b, queries 16x1024, 2 blocks of (4 LN,
     * 8 1024x1024, fc1 4096x1024 + b, fc2 1024x4096 + b), final LN,
     * out_proj 4096x1024 + b, out_scale, input standardisation mean and std 2 x 4096 */
    uint64_t block = 8 * 1024 + 8 * 1048576ull + (4194304ull + 4096) + (4194304ull + 1024);
    uint64_t bridge = (4194304ull + 1024) + 16 * 1024 + 2 * block + 2048 + (4194304ull + 4096) + 1 + 2 * 4096;
    ck_assert_uint_eq(p.bridge_params, bridge);
    ck_assert_uint_eq(p.bridge_params, 42001409ull);
    ck_assert_uint_eq(p.bridge_bytes, 16 * 42001409ull);
    /* a llama layer keeps, per token, what backward reads: x_in, xn, x_mid,
     * fn (4H), 2 rstd, q after RoPE and the attention output (2 Hq D), its
     * k and v cache rows (2 Hkv D), one log-sum-exp per head (Hq), gate, up,
     * act(gate) * up (3F) */
    ck_assert_uint_eq(lw_memplan_layer_floats(&m->sender), 4 * 4096 + 2 + (64 + 16) * 128 + 32 + 3 * 14336);
    uint64_t layer = 69666;
    ck_assert_uint_eq(p.sender_acts, (layer + 4096) * 4 * 2 * 512);
    uint64_t recv_T = 512 + 16;
    /* the backward's gradient slots (the plan's): dx, dxf, dbr (the logits' rows), dln (4H); dao, dq
     * (2 Hq D); dk, dv (2 Hkv D); dgate, dup, dhid (3F); no qk-norm or post norms: no dq_pre, dk_pre */
    uint64_t grads = 4 * 4096 + 2 * 4096 + 2 * 1024 + 3 * 14336;
    ck_assert_uint_eq(lw_memplan_grad_floats(&m->receiver), grads);
    ck_assert_uint_eq(p.receiver_acts, (layer * 32 + grads + 4097 + 2 * 32768ull) * 4 * 2 * recv_T);
    /* KV: 2 (k, v) x 32 layers x 8 kv heads x 128 x fp32, per position */
    ck_assert_uint_eq(p.kv_cache, 2 * 32 * 1024 * 4ull * 2 * (512 + recv_T));
    ck_assert_uint_eq(p.total_train, p.weights + p.bridge_bytes + p.sender_acts + p.receiver_acts);
    ck_assert_uint_eq(p.total_generate, p.weights + 4 * p.bridge_params + p.kv_cache + p.generate_acts);
    ck_assert_uint_eq(p.total, p.total_train > p.total_generate ? p.total_train : p.total_generate);

    lw_memplan f;
    ck_assert_int_eq(lw_memplan_compute(m, 2, 512, LW_DTYPE_F32, &f), LW_OK);
    ck_assert_uint_eq(f.weights, 2 * p.weights);
    ck_assert_uint_eq(f.total_train - p.total_train, p.weights);
    free(m);
}
END_TEST

/* Gemma 3 270M (post norms, qk-norm) keeps more: besides a llama layer's,
 * q and k before their norms (Hq D + Hkv D) with their rstd (Hq + Hkv), the
 * two branches before their post norms (2H) and those norms' rstd (2). */
START_TEST(gemma_layer_keeps_its_norms_inputs)
{
    lw_manifest *m = load("pairs/smollm2-135m_to_gemma3-270m.json");
    /* H 640, 4 heads / 1 kv of 256, F 2048 */
    uint64_t H = 640, Hq = 4, Hkv = 1, D = 256, F = 2048;
    uint64_t llama_like = 4 * H + 2 + (2 * Hq + 2 * Hkv) * D + Hq + 3 * F;
    ck_assert_uint_eq(lw_memplan_layer_floats(&m->receiver),
                      llama_like + (Hq + Hkv) * D + (Hq + Hkv) + 2 * H + 2);
    ck_assert_uint_eq(lw_memplan_layer_floats(&m->receiver), 13837);
    /* SmolLM2 (llama): H 576, 9 heads / 3 kv of 64, F 1536 */
    ck_assert_uint_eq(lw_memplan_layer_floats(&m->sender), 4 * 576 + 2 + (18 + 6) * 64 + 9 + 3 * 1536);
    free(m);
}
END_TEST

START_TEST(fit_check)
{
    lw_manifest *m = load("pairs/llama31-8b_to_mistral-7b.json");
    lw_memplan p;
    ck_assert_int_eq(lw_memplan_compute(m, 8, 1024, LW_DTYPE_BF16, &p), LW_OK);
    ck_assert_int_eq(lw_memplan_check_fits(&p, 1ull << 30), LW_ERR_UNSUPPORTED);
    const char *e = lw_last_error();
    ck_assert_msg(strstr(e, "does not fit") && strstr(e, "1.00 GiB is free") && strstr(e, "--batch (now 8)"),
                  "%s", e);
    /* exactly the total leaves no margin: still refused */
    ck_assert_int_eq(lw_memplan_check_fits(&p, p.total), LW_ERR_UNSUPPORTED);
    ck_assert_int_eq(lw_memplan_check_fits(&p, p.total + p.total / 10), LW_OK);
    free(m);
}
END_TEST

START_TEST(bad_input_is_an_error)
{
    lw_manifest *m = load("pairs/smollm2-135m_to_gemma3-270m.json");
    lw_memplan p;
    ck_assert_int_eq(lw_memplan_compute(m, 0, 512, LW_DTYPE_BF16, &p), LW_ERR_INVALID);
    ck_assert_int_eq(lw_memplan_compute(m, 1, -3, LW_DTYPE_BF16, &p), LW_ERR_INVALID);
    ck_assert_int_eq(lw_memplan_compute(m, 1, (1 << 20) + 1, LW_DTYPE_BF16, &p), LW_ERR_INVALID);
    /* sizes that would wrap a 64-bit byte count */
    m->receiver.hidden = 2147483647;
    m->receiver.vocab = 2147483647;
    m->receiver.ffn = 2147483647;
    ck_assert_int_eq(lw_memplan_compute(m, 1 << 20, 1 << 20, LW_DTYPE_F32, &p), LW_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(lw_last_error(), "overflows"));
    m->receiver.n_heads = 0;
    ck_assert_int_eq(lw_memplan_compute(m, 1, 1, LW_DTYPE_F32, &p), LW_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(lw_last_error(), "must all be positive"));
    free(m);
    /* the bridge's ranges: the bridge's own check (lw_bridge_config_check), not a copy */
    m = load("pairs/smollm2-135m_to_gemma3-270m.json");
    uint64_t n;
    m->bridge.ffn_mult = 17;
    ck_assert_int_eq(lw_memplan_bridge_params(&m->bridge, m->sender.hidden, m->receiver.hidden, &n), LW_ERR_INVALID);
    ck_assert_msg(strstr(lw_last_error(), "memory plan: bridge.ffn_mult is 17, expected 1..16"), "%s",
                  lw_last_error());
    free(m);
}
END_TEST

/* The receiver's adapters: the counts equal the tables lw_lora_create and
 * lw_deep_prefix_create build, by hand for the default pair's Gemma 3 270M
 * (H 640, 4 heads / 1 kv of 256, F 2048, 18 layers), and the plan's totals
 * grow by exactly their bytes. */
START_TEST(adapters_are_counted)
{
    lw_manifest *m = load("pairs/smollm2-135m_to_gemma3-270m.json");
    const lw_model_config *r = &m->receiver;
    lw_memplan base;
    ck_assert_int_eq(lw_memplan_compute(m, 2, 256, LW_DTYPE_BF16, &base), LW_OK);
    ck_assert_uint_eq(base.adapter_bytes, 0);
    ck_assert_uint_eq(base.adapter_generate, 0);

    /* LoRA rank 8 on q and v of layers 0, 3, 5; every target of the first 2 layers */
    lw_lora_config lc = {.rank = 8, .alpha = 16, .targets = 1u << LW_LORA_Q | 1u << LW_LORA_V, .n_layer_list = 3,
                         .layer_list = {0, 3, 5}};
    lw_adapters_plan a;
    ck_assert_int_eq(lw_memplan_adapters(r, &lc, NULL, &a), LW_OK);
    ck_assert_uint_eq(a.lora_params, 3 * 8 * ((640 + 1024) + (640 + 256)));   /* q [1024, 640], v [256, 640] */
    lw_model model;
    memset(&model, 0, sizeof model);
    model.cfg = *r;
    lw_lora lo;
    ck_assert_int_eq(lw_lora_create(&lo, &lc, &model), LW_OK);
    ck_assert_uint_eq(a.lora_params, lo.p.n_params);
    lw_lora_free(&lo);
    lw_lora_config all = {.rank = 4, .alpha = 8, .targets = 0x7f, .first_layers = 2};
    ck_assert_int_eq(lw_memplan_adapters(r, &all, NULL, &a), LW_OK);
    ck_assert_int_eq(lw_lora_create(&lo, &all, &model), LW_OK);
    ck_assert_uint_eq(a.lora_params, lo.p.n_params);
    ck_assert_uint_eq(a.lora_params, 2 * 4 * ((640 + 1024) + 2 * (640 + 256) + (1024 + 640) + 3 * (640 + 2048)));
    lw_lora_free(&lo);

    /* a deep prefix of 8 keys from a 128-wide generator */
    lw_deep_prefix_config dc = {.length = 8, .dropout = 0.1f, .hidden = 128};
    ck_assert_int_eq(lw_memplan_adapters(r, NULL, &dc, &a), LW_OK);
    ck_assert_uint_eq(a.prefix_params, 2 * 640 + (128 * 640 + 128) + 8 * 128 + 2 * (128 * 128 + 128) +
                                           18 * 2 * 256 * 128);
    lw_deep_prefix dp;
    ck_assert_int_eq(lw_deep_prefix_create(&dp, &dc, r), LW_OK);
    ck_assert_uint_eq(a.prefix_params, dp.p.n_params);
    lw_deep_prefix_free(&dp);
    ck_assert_uint_eq(a.prefix_kv, 18 * 2 * 8 * 256);

    /* both, from the manifest's blocks: training adds params x 16 bytes, u and du [2 x 272 rows, 8],
     * each example's K/V and their gradients; generation params x 4 and each example's K/V */
    m->has_lora = true, m->lora = lc, m->has_deep_prefix = true, m->deep_prefix = dc;
    lw_memplan p;
    ck_assert_int_eq(lw_memplan_compute(m, 2, 256, LW_DTYPE_BF16, &p), LW_OK);
    uint64_t params = 3 * 8 * ((640 + 1024) + (640 + 256)) + a.prefix_params, kv = 18 * 2 * 8 * 256ull;
    ck_assert_uint_eq(p.adapter_bytes, 16 * params + 4 * 2 * 8 * 2 * (256 + 16) + 2 * 4 * kv * 2);
    ck_assert_uint_eq(p.adapter_generate, 4 * params + 4 * kv * 2);
    ck_assert_uint_eq(p.total_train, base.total_train + p.adapter_bytes);
    ck_assert_uint_eq(p.total_generate, base.total_generate + p.adapter_generate);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ck_assert_int_eq(lw_memplan_print(m, 2, 256, f), LW_OK);
    fclose(f);
    ck_assert_msg(strstr(text, "adapters: LoRA 61440 params (rank 8), deep prefix"), "%s", text);
    free(text);

    /* sizes the adapters refuse */
    lc.rank = 0;
    ck_assert_int_eq(lw_memplan_adapters(r, &lc, NULL, &a), LW_ERR_INVALID);
    dc.length = 257;
    ck_assert_int_eq(lw_memplan_adapters(r, NULL, &dc, &a), LW_ERR_INVALID);
    free(m);
}
END_TEST

START_TEST(print_lists_the_plan)
{
    lw_manifest *m = load("pairs/smollm2-135m_to_gemma3-270m.json");
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(lw_memplan_print(m, 4, 256, f), LW_OK);
    fclose(f);
    ck_assert_msg(strstr(text, "batch 4 x 256 tokens") && strstr(text, "134515008 params") &&
                  strstr(text, "268098176 params") && strstr(text, "total with fp32 weights"), "%s", text);
    free(text);
    f = open_memstream(&text, &len);
    ck_assert_int_eq(lw_memplan_print(m, 0, 256, f), LW_ERR_INVALID);
    fclose(f);
    free(text);
    free(m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("memplan");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, llama31_8b_weights);
    tcase_add_test(tc, mistral_7b_weights);
    tcase_add_test(tc, small_pair_weights);
    tcase_add_test(tc, bridge_params_match_the_bridge);
    tcase_add_test(tc, flagship_plan);
    tcase_add_test(tc, gemma_layer_keeps_its_norms_inputs);
    tcase_add_test(tc, fit_check);
    tcase_add_test(tc, bad_input_is_an_error);
    tcase_add_test(tc, adapters_are_counted);
    tcase_add_test(tc, print_lists_the_plan);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
