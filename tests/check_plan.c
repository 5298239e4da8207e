/* The plan (plan/plan.h): the op list lowered from each family's config
 * (qk_norm adds the two head norms, post_norms the two post norms, qkv_bias
 * the projection's bias, a LoRA hook at each of the seven projections),
 * a dataflow that reads only what an earlier op wrote, gradient slots that
 * let a copy and a residual add move nothing, the per-layer window rule;
 * the comparison that names a difference; and `lwc build`'s baked plans,
 * which the built binary checks against its own lowering at start. The
 * backward of the plan-run blocks is held to finite differences in
 * check_model_backward (every family) and check_lora. */
#include "testlib.h"
#include "tiny_models.h"
#include "gen_plan.h"
#include "manifest.h"
#include "pair.h"
#include "plan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int count_kind(const lw_plan *p, lw_op_kind k)
{
    int n = 0;
    for (int i = 0; i < p->n_ops; i++) n += p->ops[i].kind == k;
    return n;
}

/* The block's op that writes out (the first), or NULL. */
static const lw_plan_op *writer(const lw_plan *p, lw_plan_slot out)
{
    for (int i = 0; i < p->n_ops; i++)
        if (p->ops[i].out == out) return &p->ops[i];
    return NULL;
}

static const lw_plan_op *norm_with(const lw_plan *p, lw_plan_weight w)
{
    for (int i = 0; i < p->n_ops; i++)
        if (p->ops[i].kind == LW_OP_RMSNORM && p->ops[i].w == w) return &p->ops[i];
    return NULL;
}

static lw_model_config family_config(int i)
{
    switch (i) {
    case 0: return tl_tiny_llama_config(LW_WEIGHTS_GGUF);
    case 1: return tl_tiny_gemma3_config(4);
    case 2: return tl_tiny_qwen2_config();
    default: return tl_tiny_qwen3_config();
    }
}

START_TEST(ops_follow_the_config_flags)
{
    lw_model_config c = family_config(_i);
    lw_plan p;
    lw_plan_lower(&c, &p);
    /* 17 ops in every block; qk_norm and post_norms add two norms each */
    ck_assert_int_eq(p.n_ops, 17 + 2 * c.qk_norm + 2 * c.post_norms);
    ck_assert_int_eq(count_kind(&p, LW_OP_RMSNORM), 2 + 2 * c.qk_norm + 2 * c.post_norms);
    ck_assert_int_eq(count_kind(&p, LW_OP_MATMUL), 4);
    ck_assert_int_eq(count_kind(&p, LW_OP_ATTENTION), 1);
    ck_assert_int_eq(count_kind(&p, LW_OP_ADD), 2);
    ck_assert_int_eq(p.activation, c.activation);
    ck_assert_int_eq(p.norm, c.norm);
    /* qk_norm: per-head norms of q_rope and of the cache rows, before RoPE */
    const lw_plan_op *qn = norm_with(&p, LW_W_Q_NORM), *kn = norm_with(&p, LW_W_K_NORM);
    ck_assert_int_eq(qn != NULL, c.qk_norm);
    ck_assert_int_eq(kn != NULL, c.qk_norm);
    if (c.qk_norm) {
        ck_assert_int_eq(qn->rows, c.n_heads);
        ck_assert_int_eq(qn->width, c.head_dim);
        ck_assert_int_eq(qn->in, LW_SLOT_Q_ROPE);
        ck_assert_int_eq(qn->keep, LW_SLOT_Q);
        ck_assert_int_eq(kn->rows, c.n_kv_heads);
        ck_assert_int_eq(kn->out, LW_SLOT_K_CACHE);
        ck_assert_msg(qn < writer(&p, LW_SLOT_AO), "head norms come before attention");
    }
    /* post_norms: the residual adds read the normed branches */
    ck_assert_int_eq(norm_with(&p, LW_W_POST_ATTN_NORM) != NULL, c.post_norms);
    ck_assert_int_eq(norm_with(&p, LW_W_POST_FFN_NORM) != NULL, c.post_norms);
    int adds = 0;
    for (int i = 0; i < p.n_ops; i++)
        if (p.ops[i].kind == LW_OP_ADD) {
            lw_plan_slot want = adds++ == 0 ? (c.post_norms ? LW_SLOT_PROJ_N : LW_SLOT_PROJ)
                                            : (c.post_norms ? LW_SLOT_DOWN_N : LW_SLOT_DOWN);
            ck_assert_int_eq(p.ops[i].in, want);
            ck_assert_int_eq(p.ops[i].out, LW_SLOT_X);
        }
    /* qkv_bias: the fused projection's bias */
    const lw_plan_op *qkv = writer(&p, LW_SLOT_QKV);
    ck_assert_ptr_nonnull(qkv);
    ck_assert_int_eq(qkv->b, c.qkv_bias ? LW_W_BQKV : LW_W_NONE);
    ck_assert_int_eq(qkv->n_parts, 3);
    ck_assert_int_eq(qkv->parts[0].width, c.n_heads * c.head_dim);
    ck_assert_int_eq(qkv->parts[1].width, c.n_kv_heads * c.head_dim);
    /* the GLU's activation and width */
    const lw_plan_op *glu = writer(&p, LW_SLOT_HID);
    ck_assert_int_eq(glu->kind, LW_OP_GLU);
    ck_assert_int_eq(glu->width, c.ffn);
    /* the model level: embed, blocks, output_norm, logits over the vocab */
    ck_assert_int_eq(p.n_model_ops, 4);
    ck_assert_int_eq(p.model_ops[0].kind, LW_OP_EMBEDDING);
    ck_assert_int_eq(p.model_ops[1].kind, LW_OP_BLOCKS);
    ck_assert_int_eq(p.model_ops[2].w, LW_W_OUTPUT_NORM);
    ck_assert_int_eq(p.model_ops[3].parts[0].width, c.vocab);
}
END_TEST

START_TEST(every_projection_has_its_lora_point_once)
{
    lw_model_config c = family_config(_i);
    lw_plan p;
    lw_plan_lower(&c, &p);
    int seen[LW_PLAN_LORA_DOWN + 1] = {0}, last = -1;
    for (int i = 0; i < p.n_ops; i++)
        for (int j = 0; j < p.ops[i].n_parts; j++) {
            int t = p.ops[i].parts[j].lora;
            if (t == LW_PLAN_LORA_NONE) continue;
            ck_assert_int_eq(p.ops[i].kind, LW_OP_MATMUL);
            ck_assert_int_gt(t, last);   /* in the block's order: q k v o gate up down */
            last = t;
            seen[t]++;
        }
    for (int t = 0; t <= LW_PLAN_LORA_DOWN; t++) ck_assert_int_eq(seen[t], 1);
}
END_TEST

/* Forward: every slot an op reads was written before (or is the residual
 * stream); backward: copies and adds share one gradient slot, and every
 * gradient read in the reverse walk was written earlier in it. */
START_TEST(dataflow_reads_only_what_was_written)
{
    lw_model_config c = family_config(_i);
    lw_plan p;
    lw_plan_lower(&c, &p);
    bool written[LW_SLOT_COUNT] = {false};
    written[LW_SLOT_X] = true;
    for (int i = 0; i < p.n_ops; i++) {
        const lw_plan_op *op = &p.ops[i];
        lw_plan_slot reads[2 + LW_PLAN_MAX_PARTS] = {op->in, op->keep};
        int nr = 2;
        if (op->kind == LW_OP_ATTENTION || op->kind == LW_OP_GLU)
            for (int j = 0; j < op->n_parts; j++) reads[nr++] = op->parts[j].slot;
        for (int j = 0; j < nr; j++)
            ck_assert_msg(reads[j] == LW_SLOT_NONE || written[reads[j]], "op %d (%s) reads %s before it is written",
                          i, lw_op_kind_name(op->kind), lw_plan_slot_name(reads[j]));
        if (op->kind == LW_OP_COPY || op->kind == LW_OP_ADD) ck_assert_int_eq(op->din, op->dout);
        written[op->out] = true;
        if (op->aux) written[op->aux] = true;
        if (op->kind == LW_OP_MATMUL)
            for (int j = 0; j < op->n_parts; j++) written[op->parts[j].slot] = true;
    }
    /* the reverse walk: dx is given (from the model level) */
    bool has[LW_GRAD_COUNT] = {false};
    has[LW_GRAD_DX] = true;
    for (int i = p.n_ops - 1; i >= 0; i--) {
        const lw_plan_op *op = &p.ops[i];
        if (op->kind == LW_OP_COPY || op->kind == LW_OP_ADD) continue;
        if (op->kind == LW_OP_MATMUL) {
            for (int j = 0; j < op->n_parts; j++)
                ck_assert_msg(has[op->parts[j].grad], "op %d (matmul) reads %s before the walk writes it", i,
                              lw_plan_grad_name(op->parts[j].grad));
            has[op->din] = true;
        } else if (op->kind == LW_OP_ATTENTION || op->kind == LW_OP_GLU) {
            ck_assert(has[op->dout]);
            for (int j = 0; j < op->n_parts; j++) has[op->parts[j].grad] = true;
        } else {
            ck_assert_msg(has[op->dout], "op %d (%s) reads %s before the walk writes it", i,
                          lw_op_kind_name(op->kind), lw_plan_grad_name(op->dout));
            has[op->din] = true;
        }
    }
}
END_TEST

START_TEST(window_rule_is_the_configs)
{
    lw_model_config c = tl_tiny_gemma3_config(4);
    c.n_layers = 13;
    c.global_every = 6;
    lw_plan p;
    lw_plan_lower(&c, &p);
    int local = 0;
    for (int l = 0; l < c.n_layers; l++) {
        ck_assert_int_eq(lw_plan_layer_local(&p, l), lw_layer_is_local(&c, l));
        local += lw_plan_layer_local(&p, l);
    }
    ck_assert_int_eq(local, 11);   /* layers 5 and 11 are global */
    c.sliding_window = 0;
    lw_plan_lower(&c, &p);
    for (int l = 0; l < c.n_layers; l++) ck_assert(!lw_plan_layer_local(&p, l));
}
END_TEST

START_TEST(compare_names_the_first_difference)
{
    lw_model_config c = tl_tiny_qwen3_config();
    lw_plan a, b;
    lw_plan_lower(&c, &a);
    lw_plan_lower(&c, &b);
    ck_assert_int_eq(lw_plan_compare(&a, &b, "same"), LW_OK);
    b.ops[5].width++;
    ck_assert_int_ne(lw_plan_compare(&a, &b, "x"), LW_OK);
    ck_assert_msg(strstr(lw_last_error(), "block op 5") && strstr(lw_last_error(), "width differs"), "%s",
                  lw_last_error());
    /* another family's config lowers to another plan */
    lw_model_config q2 = tl_tiny_qwen2_config();
    lw_plan_lower(&q2, &b);
    ck_assert_int_ne(lw_plan_compare(&a, &b, "qwen3 vs qwen2"), LW_OK);
    lw_plan_lower(&c, &b);
    b.norm_eps *= 2;
    ck_assert_int_ne(lw_plan_compare(&a, &b, "x"), LW_OK);
    ck_assert_msg(strstr(lw_last_error(), "norm_eps"), "%s", lw_last_error());
}
END_TEST

START_TEST(pair_check_refuses_a_plan_that_differs)
{
    lw_pair *pair = calloc(1, sizeof *pair);
    ck_assert_ptr_nonnull(pair);
    snprintf(pair->manifest.name, sizeof pair->manifest.name, "p");
    pair->manifest.sender = tl_tiny_qwen2_config();
    pair->manifest.receiver = tl_tiny_gemma3_config(4);
    lw_plan plans[2];
    lw_plan_lower(&pair->manifest.sender, &plans[0]);
    lw_plan_lower(&pair->manifest.receiver, &plans[1]);
    pair->plans = plans;
    ck_assert_int_eq(lw_pair_check_plans(pair), LW_OK);
    plans[1].n_layers = 99;
    ck_assert_int_ne(lw_pair_check_plans(pair), LW_OK);
    ck_assert_msg(strstr(lw_last_error(), "receiver") && strstr(lw_last_error(), "baked") &&
                      strstr(lw_last_error(), "layer count"), "%s", lw_last_error());
    pair->plans = NULL;
    ck_assert_int_ne(lw_pair_check_plans(pair), LW_OK);
    free(pair);
}
END_TEST

/* The emitted C text is a plan initializer that carries every op: each
 * op's kind name and its width appear once per op, in the lowering's order. */
START_TEST(emitted_table_lists_the_lowered_ops)
{
    lw_model_config c = tl_tiny_gemma3_config(4);
    lw_plan p;
    lw_plan_lower(&c, &p);
    lw_strbuf sb = {0};
    lw_gen_plan_initializer(&p, &sb);
    ck_assert(!sb.failed);
    const char *at = strstr(sb.data, ".ops = {");
    ck_assert_ptr_nonnull(at);
    for (int i = 0; i < p.n_ops; i++) {
        char want[64];
        snprintf(want, sizeof want, "{ /* %s */ .kind = %d,", lw_op_kind_name(p.ops[i].kind), (int)p.ops[i].kind);
        const char *next = strstr(at, want);
        ck_assert_msg(next != NULL, "op %d (%s) missing after the previous one in:\n%s", i, want, sb.data);
        at = next + 1;
    }
    lw_sb_free(&sb);
}
END_TEST

/* `lwc build` bakes both models' plans into the binary (plan_tables.c);
 * the binary compares them with its run-time lowering before any command,
 * so `lw info` running is the check that the emitted table equals the
 * lowering. The tiny pairs of pairs/. */
START_TEST(tiny_pairs_baked_plans_equal_the_lowering)
{
    static const char *const pairs[] = {"tiny-qwen2_to_tiny-qwen3", "stories260k_to_smollm2-135m"};
    const char *out = tl_tmpdir("baked");
    for (int i = 0; i < 2; i++) {
        char *log = NULL;
        int rc = tl_run(&log, "'%s' build '%s/%s.json' -o '%s' --quiet", tl_out("bin/lwc"), tl_src("pairs"), pairs[i],
                        out);
        ck_assert_msg(rc == 0, "lwc build %s:\n%s", pairs[i], log);
        free(log);
        char path[4300];
        snprintf(path, sizeof path, "%s/%s/plan_tables.c", out, pairs[i]);
        char *src = tl_read_file(path, NULL);
        ck_assert_msg(src && strstr(src, "const lw_plan lw_baked_plans[2]"), "%s: no plan table", path);
        free(src);
        rc = tl_run(&log, "'%s/%s/lw' info", out, pairs[i]);
        ck_assert_msg(rc == 0, "%s: lw info (baked plans vs the lowering):\n%s", pairs[i], log);
        free(log);
    }
    /* The check can fail: the tiny pair relinked with one number of its
     * receiver's table changed (the toolchain lwc build uses) refuses to start. */
    char *log = NULL;
    int rc = tl_run(&log,
                    "set -e; cd '%s/%s'; conf='%s'; cc=$(sed -n 's/^CC=//p' \"$conf\");"
                    " cflags=$(sed -n 's/^CFLAGS=//p' \"$conf\"); libs=$(sed -n 's/^LIBS=//p' \"$conf\");"
                    " awk '/receiver/ {r = 1} r && !done && /\\.width = 32,/ {sub(/\\.width = 32,/, \".width = 33,\");"
                    " done = 1} {print}' plan_tables.c > tampered.c; ! cmp -s plan_tables.c tampered.c;"
                    " $cc $cflags -I'%s' -o lw-tampered pair_runtime.c kernels_embed.c tampered.c '%s' $libs",
                    out, pairs[0], tl_out("share/lwc/toolchain.conf"), tl_out("include/lwc"),
                    tl_out("lib/lwc/liblwrt.a"));
    ck_assert_msg(rc == 0, "relinking with a changed table:\n%s", log);
    free(log);
    rc = tl_run(&log, "'%s/%s/lw-tampered' info", out, pairs[0]);
    ck_assert_msg(rc != 0 && strstr(log, "receiver tiny-qwen3 lowers to another plan than the one lwc build baked in") &&
                      strstr(log, "width differs: 32 here, 33 in the other"),
                  "a changed baked table was not refused clearly (rc %d):\n%s", rc, log);
    free(log);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("plan");
    TCase *tc = tcase_create("plan");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, ops_follow_the_config_flags, 0, 4);
    tcase_add_loop_test(tc, every_projection_has_its_lora_point_once, 0, 4);
    tcase_add_loop_test(tc, dataflow_reads_only_what_was_written, 0, 4);
    tcase_add_test(tc, window_rule_is_the_configs);
    tcase_add_test(tc, compare_names_the_first_difference);
    tcase_add_test(tc, pair_check_refuses_a_plan_that_differs);
    tcase_add_test(tc, emitted_table_lists_the_lowered_ops);
    tcase_add_test(tc, tiny_pairs_baked_plans_equal_the_lowering);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
