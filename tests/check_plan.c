/* The plan (plan/plan.h): the op list lowered from each family's config
 * (qk_norm adds the two head norms, post_norms the two post norms, qkv_bias
 * the projection's bias, a LoRA hook at each of the seven projections),
 * a dataflow that reads only what an earlier op wrote, gradient slots that
 * let a copy and a residual add move nothing, the per-layer window rule;
 * the comparison that names a difference; and `lwc build`'s baked plans,
 * which the built binary checks against its own lowering at start. The
 * backward of the plan-run blocks is held to finite differences in
 * check_model_backward (every family) and check_lora; the label-scoring
 * record's, run, in check_plan_score. */
#include "testlib.h"
#include "tiny_models.h"
#include "model.h"
#include "backward_scratch.h"
#include "narrow_weights.h"
#include "random_weights.h"
#include "gen_plan.h"
#include "manifest.h"
#include "pair.h"
#include "plan.h"
#include "plan_compare.h"
#include "bridge_plan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

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
    /* the model level: embed, blocks, output_norm, logits over the vocab, label scoring */
    ck_assert_int_eq(p.n_model_ops, 5);
    ck_assert_int_eq(p.model_ops[0].kind, LW_OP_EMBEDDING);
    ck_assert_int_eq(p.model_ops[1].kind, LW_OP_BLOCKS);
    ck_assert_int_eq(p.model_ops[2].w, LW_W_OUTPUT_NORM);
    ck_assert_int_eq(p.model_ops[3].parts[0].width, c.vocab);
    /* label scoring reads what the logits read (the final-normed rows, the head) and hands
     * its input gradient to the same slot, which output_norm's backward reads */
    const lw_plan_op *score = &p.model_ops[4];
    ck_assert_int_eq(score->kind, LW_OP_HEAD_LOGSOFTMAX);
    ck_assert(score->in == p.model_ops[3].in && score->keep == LW_SLOT_XF && score->w == p.model_ops[3].w);
    ck_assert(score->out == LW_SLOT_LOGP && score->aux == LW_SLOT_LSE);
    ck_assert(score->din == p.model_ops[2].dout && score->width == c.hidden && score->parts[0].width == c.vocab);
    ck_assert(score->flags & LW_PLAN_ZERO_DIN);
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
    /* the record lists are walked by one compare (record_compare.h), the bridge's too: a list one op
     * shorter is named by its count, a record by its list, index and kind */
    lw_plan_lower(&c, &b);
    b.n_ops--;
    ck_assert_int_ne(lw_plan_compare(&a, &b, "x"), LW_OK);
    char want[96];
    snprintf(want, sizeof want, "x: %d block ops here, %d in the other", a.n_ops, b.n_ops);
    ck_assert_msg(strstr(lw_last_error(), want), "%s", lw_last_error());
    lw_bridge_config bc = {.kind = LW_BRIDGE_PERCEIVER, .soft_tokens = 4, .source_layer = 1, .width = 16, .depth = 2,
                           .heads = 2, .ffn_mult = 2};
    lw_bridge_plan ba, bb;
    ck_assert_int_eq(lw_bridge_plan_lower(&bc, 24, 32, &ba), LW_OK);
    ck_assert_int_eq(lw_bridge_plan_lower(&bc, 24, 32, &bb), LW_OK);
    ck_assert_int_eq(lw_bridge_plan_compare(&ba, &bb, "y"), LW_OK);
    bb.n_model_ops--;
    ck_assert_int_ne(lw_bridge_plan_compare(&ba, &bb, "y"), LW_OK);
    snprintf(want, sizeof want, "y: %d bridge model ops here, %d in the other", ba.n_model_ops, bb.n_model_ops);
    ck_assert_msg(strstr(lw_last_error(), want), "%s", lw_last_error());
    bb.n_model_ops++;
    bb.model_ops[0].width++;
    ck_assert_int_ne(lw_bridge_plan_compare(&ba, &bb, "y"), LW_OK);
    ck_assert_msg(strstr(lw_last_error(), "y: bridge model op 0 (") && strstr(lw_last_error(), "width differs"), "%s",
                  lw_last_error());
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
    pair->manifest.bridge.soft_tokens = 4;
    lw_plan_memory memory[2];
    for (int i = 0; i < 2; i++) {
        lw_plan_shape shape;
        ck_assert_int_eq(lw_pair_memory_shape(&pair->manifest, i, &shape), LW_OK);
        ck_assert_int_eq(shape.rows, LW_PAIR_BAKED_SEQ + 4 * i);
        ck_assert_int_eq(shape.training, i == 1);
        ck_assert_int_eq(lw_plan_memory_layout(&plans[i], &shape, &memory[i]), LW_OK);
    }
    pair->plans = plans;
    pair->memory = memory;
    /* a perceiver bridge: its plan and memory plan are checked the same way */
    pair->manifest.bridge = (lw_bridge_config){.kind = LW_BRIDGE_PERCEIVER, .soft_tokens = 4, .source_layer = 1,
                                               .width = 16, .depth = 2, .heads = 2, .ffn_mult = 2};
    lw_bridge_plan bridge_plan;
    lw_bridge_memory bridge_memory;
    ck_assert_int_eq(lw_bridge_plan_lower(&pair->manifest.bridge, pair->manifest.sender.hidden,
                                          pair->manifest.receiver.hidden, &bridge_plan), LW_OK);
    ck_assert_int_eq(lw_bridge_memory_layout(&bridge_plan, LW_PAIR_BAKED_SEQ, true, &bridge_memory), LW_OK);
    ck_assert_int_ne(lw_pair_check_plans(pair), LW_OK);   /* none baked */
    ck_assert_msg(strstr(lw_last_error(), "no bridge plan"), "%s", lw_last_error());
    pair->bridge_plan = &bridge_plan;
    pair->bridge_memory = &bridge_memory;
    ck_assert_int_eq(lw_pair_check_plans(pair), LW_OK);
    bridge_plan.ops[6].heads = 1;
    ck_assert_int_ne(lw_pair_check_plans(pair), LW_OK);
    ck_assert_msg(strstr(lw_last_error(), "bridge lowers to another plan") &&
                      strstr(lw_last_error(), "bridge block op 6 (attention): heads differs: 2 here, 1"), "%s",
                  lw_last_error());
    bridge_plan.ops[6].heads = 2;
    bridge_memory.slots[LW_BS_ATT].offset += LW_PLAN_ALIGN;
    ck_assert_int_ne(lw_pair_check_plans(pair), LW_OK);
    ck_assert_msg(strstr(lw_last_error(), "bridge lays out to another memory plan") &&
                      strstr(lw_last_error(), "bridge slot att differs"), "%s", lw_last_error());
    bridge_memory.slots[LW_BS_ATT].offset -= LW_PLAN_ALIGN;
    ck_assert_int_eq(lw_pair_check_plans(pair), LW_OK);
    /* the mlp and linear kinds have no plan, and none is asked for */
    pair->manifest.bridge.kind = LW_BRIDGE_MLP;
    pair->bridge_plan = NULL;
    pair->bridge_memory = NULL;
    ck_assert_int_eq(lw_pair_check_plans(pair), LW_OK);
    /* a memory plan that differs by one offset is refused, naming the slot */
    memory[0].slots[LW_SLOT_XN].offset += LW_PLAN_ALIGN;
    ck_assert_int_ne(lw_pair_check_plans(pair), LW_OK);
    ck_assert_msg(strstr(lw_last_error(), "sender") && strstr(lw_last_error(), "memory plan") &&
                      strstr(lw_last_error(), "slot xn differs"), "%s", lw_last_error());
    memory[0].slots[LW_SLOT_XN].offset -= LW_PLAN_ALIGN;
    memory[1].bytes++;
    ck_assert_int_ne(lw_pair_check_plans(pair), LW_OK);
    ck_assert_msg(strstr(lw_last_error(), "receiver") && strstr(lw_last_error(), "arena bytes"), "%s",
                  lw_last_error());
    memory[1].bytes--;
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

/* Relinks pair's lw, built in dir, with its plan_tables.c passed through
 * the awk program edit (which must change it), with the toolchain lwc build
 * uses; runs the relinked lw's `info` and returns its exit status, what it
 * printed in *log. `what` names the change in a failed relink's message. */
static int relinked_info(const char *dir, const char *pair, const char *edit, const char *what, char **log)
{
    int rc = tl_run(log,
                    "set -e; cd '%s/%s'; conf='%s'; cc=$(sed -n 's/^CC=//p' \"$conf\");"
                    " cflags=$(sed -n 's/^CFLAGS=//p' \"$conf\"); libs=$(sed -n 's/^LIBS=//p' \"$conf\");"
                    " awk '%s' plan_tables.c > tampered.c; ! cmp -s plan_tables.c tampered.c;"
                    " $cc $cflags -I'%s' -o lw-tampered pair_runtime.c kernels_embed.c tampered.c '%s' $libs",
                    dir, pair, tl_out("share/lwc/toolchain.conf"), edit, tl_out("include/lwc"),
                    tl_out("lib/lwc/liblwrt.a"));
    ck_assert_msg(rc == 0, "relinking with %s:\n%s", what, *log);
    free(*log);
    return tl_run(log, "'%s/%s/lw-tampered' info", dir, pair);
}

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
        ck_assert_msg(src && strstr(src, "const lw_plan lw_baked_plans[2]") &&
                          strstr(src, "const lw_plan_memory lw_baked_memory[2]"), "%s: no plan table", path);
        free(src);
        rc = tl_run(&log, "'%s/%s/lw' info", out, pairs[i]);
        ck_assert_msg(rc == 0, "%s: lw info (baked plans vs the lowering):\n%s", pairs[i], log);
        free(log);
    }
    /* The check can fail: the tiny pair relinked with one number of its
     * receiver's table changed (the toolchain lwc build uses) refuses to start. */
    char *log = NULL;
    int rc = relinked_info(out, pairs[0],
                           "/receiver/ {r = 1} r && !done && /\\.width = 32,/ {sub(/\\.width = 32,/, \".width = 33,\");"
                           " done = 1} {print}",
                           "a changed table", &log);
    ck_assert_msg(rc != 0 && strstr(log, "receiver tiny-qwen3 lowers to another plan than the one lwc build baked in") &&
                      strstr(log, "width differs: 32 here, 33 in the other"),
                  "a changed baked table was not refused clearly (rc %d):\n%s", rc, log);
    free(log);
    /* and with the sender's memory plan moved by one cache line at xn */
    rc = relinked_info(out, pairs[0],
                       "/lw_baked_memory/ {r = 1} r && !done && /\\/\\* xn \\*\\// {sub(/\\.offset = /, \".offset = 64 + \");"
                       " done = 1} {print}",
                       "a changed memory table", &log);
    ck_assert_msg(rc != 0 && strstr(log, "sender tiny-qwen2 lays out to another memory plan") &&
                      strstr(log, "slot xn differs"),
                  "a changed baked memory plan was not refused clearly (rc %d):\n%s", rc, log);
    free(log);
    /* and with the bridge's cross-attention given another head count */
    rc = tl_run(&log,
                "set -e; cd '%s/%s'; conf='%s'; cc=$(sed -n 's/^CC=//p' \"$conf\");"
                " cflags=$(sed -n 's/^CFLAGS=//p' \"$conf\"); libs=$(sed -n 's/^LIBS=//p' \"$conf\");"
                " awk '/lw_baked_bridge_plan/ {r = 1} r && !done && /\\.heads = 4,/ {sub(/\\.heads = 4,/, \".heads = 5,\");"
                " done = 1} {print}' plan_tables.c > tampered.c; ! cmp -s plan_tables.c tampered.c;"
                " $cc $cflags -I'%s' -o lw-tampered pair_runtime.c kernels_embed.c tampered.c '%s' $libs",
                out, pairs[0], tl_out("share/lwc/toolchain.conf"), tl_out("include/lwc"),
                tl_out("lib/lwc/liblwrt.a"));
    ck_assert_msg(rc == 0, "relinking with a changed bridge table:\n%s", log);
    free(log);
    rc = tl_run(&log, "'%s/%s/lw-tampered' info", out, pairs[0]);
    ck_assert_msg(rc != 0 && strstr(log, "the bridge lowers to another plan than the one lwc build baked in") &&
                      strstr(log, "bridge block op 6 (attention): heads differs: 4 here, 5 in the other"),
                  "a changed baked bridge plan was not refused clearly (rc %d):\n%s", rc, log);
    free(log);
}
END_TEST

/* ---- the memory plan -------------------------------------------------------- */

static uint64_t slot_bytes(const lw_plan_memory *m, int s)
{
    return m->slots[s].elems * lw_plan_dtype_bytes(m->slots[s].dtype);
}

static bool in_arena(lw_plan_mem_where w)
{
    return w == LW_PLAN_MEM_PINNED || w == LW_PLAN_MEM_SHARED || w == LW_PLAN_MEM_LAYER;
}

/* 0 when no two stored slots that are alive at the same time share a byte
 * (in any of the layer copies), every one lies inside the arena and starts
 * aligned; else the first offender's slot number + 1. Alive together: two
 * pinned or per-layer slots always; two shared ones when their live ranges
 * [first, last] meet; a shared and a pinned or per-layer one always (the
 * shared one is rewritten every layer). */
static int overlapping(const lw_plan_memory *m)
{
    for (int a = 1; a < LW_SLOT_COUNT; a++) {
        const lw_plan_buffer *x = &m->slots[a];
        if (!in_arena(x->where) || !x->elems) continue;
        if (x->offset % LW_PLAN_ALIGN) return a + 1;
        int copies = x->where == LW_PLAN_MEM_LAYER ? m->n_layer_copies : 1;
        if (x->offset + slot_bytes(m, a) + (uint64_t)(copies - 1) * m->layer_bytes > m->bytes) return a + 1;
        for (int b = a + 1; b < LW_SLOT_COUNT; b++) {
            const lw_plan_buffer *y = &m->slots[b];
            if (!in_arena(y->where) || !y->elems) continue;
            bool together = !(x->where == LW_PLAN_MEM_SHARED && y->where == LW_PLAN_MEM_SHARED) ||
                            (x->first <= y->last && y->first <= x->last);
            if (!together) continue;
            int cx = x->where == LW_PLAN_MEM_LAYER ? m->n_layer_copies : 1;
            int cy = y->where == LW_PLAN_MEM_LAYER ? m->n_layer_copies : 1;
            for (int i = 0; i < cx; i++)
                for (int j = 0; j < cy; j++) {
                    uint64_t xo = x->offset + (x->where == LW_PLAN_MEM_LAYER ? (uint64_t)i * m->layer_bytes : 0);
                    uint64_t yo = y->offset + (y->where == LW_PLAN_MEM_LAYER ? (uint64_t)j * m->layer_bytes : 0);
                    if (xo < yo + slot_bytes(m, b) && yo < xo + slot_bytes(m, a)) return a + 1;
                }
        }
    }
    return 0;
}

static lw_plan_shape shape_of(int rows, int att_rows, int kv_len, bool training)
{
    return (lw_plan_shape){.rows = rows, .att_rows = att_rows, .kv_len = kv_len, .training = training};
}

/* Every family, forward-only and training, several shapes: slots alive
 * together never share a byte; the check itself catches a planted overlap. */
START_TEST(memory_offsets_never_overlap_while_alive)
{
    lw_model_config c = family_config(_i);
    lw_plan p;
    lw_plan_lower(&c, &p);
    int shapes[][3] = {{1, 1, 1}, {7, 7, 19}, {64, 16, 300}, {256, 64, 4096}};
    for (int k = 0; k < 4; k++)
        for (int training = 0; training < 2; training++) {
            lw_plan_memory m;
            lw_plan_shape sh = shape_of(shapes[k][0], shapes[k][1], shapes[k][2], training);
            ck_assert_msg(lw_plan_memory_layout(&p, &sh, &m) == LW_OK, "%s", lw_last_error());
            int bad = overlapping(&m);
            ck_assert_msg(bad == 0, "%s shape %d training %d: slot %s overlaps", c.name, k, training,
                          lw_plan_slot_name((lw_plan_slot)(bad - 1)));
            /* every slot the block's forward reads or writes is stored (x_in and
             * x_mid, read by backward only, are stored exactly when training) */
            for (int i = 0; i < p.n_ops; i++) {
                const lw_plan_op *op = &p.ops[i];
                lw_plan_slot used[3] = {op->in, op->out, op->aux};
                for (int j = 0; j < 3; j++) {
                    if (used[j] == LW_SLOT_NONE) continue;
                    bool optional = op->kind == LW_OP_COPY && (op->flags & LW_PLAN_OPTIONAL) && j == 1;
                    bool stored = m.slots[used[j]].where != LW_PLAN_MEM_NONE && m.slots[used[j]].elems > 0;
                    ck_assert_msg(stored == (!optional || training), "%s: op %d's %s stored %d", c.name, i,
                                  lw_plan_slot_name(used[j]), stored);
                }
            }
            /* a planted overlap is caught: q_rope moved onto ao (alive together at attention) */
            lw_plan_memory bad_m = m;
            bad_m.slots[LW_SLOT_Q_ROPE].offset = bad_m.slots[LW_SLOT_AO].offset;
            bad_m.slots[LW_SLOT_Q_ROPE].where = bad_m.slots[LW_SLOT_AO].where;
            ck_assert_int_ne(overlapping(&bad_m), 0);
        }
}
END_TEST

/* Sizes by hand from the tiny Gemma 3 config's dimensions, and
 * the arena's total: forward-only reuses (smaller than every slot side by
 * side), training keeps per layer exactly what backward reads. */
START_TEST(memory_sizes_and_arena_total)
{
    lw_model_config c = tl_tiny_gemma3_config(4);
    lw_plan p;
    lw_plan_lower(&c, &p);
    uint64_t T = 10, A = 5, K = 30, H = (uint64_t)c.hidden, F = (uint64_t)c.ffn;
    uint64_t qd = (uint64_t)c.n_heads * c.head_dim, kvd = (uint64_t)c.n_kv_heads * c.head_dim;
    lw_plan_memory f, t;
    lw_plan_shape sh = shape_of((int)T, (int)A, (int)K, false);
    ck_assert_int_eq(lw_plan_memory_layout(&p, &sh, &f), LW_OK);
    sh.training = true;
    ck_assert_int_eq(lw_plan_memory_layout(&p, &sh, &t), LW_OK);
    ck_assert_uint_eq(f.slots[LW_SLOT_XN].elems, T * H);
    ck_assert_uint_eq(f.slots[LW_SLOT_QKV].elems, T * (qd + 2 * kvd));
    ck_assert_uint_eq(f.slots[LW_SLOT_RSTD_Q].elems, T * (uint64_t)c.n_heads);
    ck_assert_uint_eq(f.slots[LW_SLOT_ATT].elems, (uint64_t)c.n_heads * A * K);
    ck_assert_uint_eq(f.slots[LW_SLOT_GATE_UP].elems, T * 2 * F);
    ck_assert_uint_eq(f.slots[LW_SLOT_K_CACHE].elems, T * kvd);
    ck_assert_int_eq(f.slots[LW_SLOT_K_CACHE].where, LW_PLAN_MEM_CACHE);
    ck_assert_uint_eq(f.slots[LW_SLOT_X].elems, T * H);
    ck_assert_int_eq(f.slots[LW_SLOT_X].where, LW_PLAN_MEM_PINNED);
    ck_assert_int_eq(f.slots[LW_SLOT_X_IN].where, LW_PLAN_MEM_NONE);
    ck_assert_int_eq(f.slots[LW_SLOT_LOGITS].where, LW_PLAN_MEM_NONE);
    ck_assert_int_eq(f.slots[LW_SLOT_LOGP].where, LW_PLAN_MEM_NONE);   /* the caller's, as the logits */
    ck_assert_int_eq(f.slots[LW_SLOT_LSE].where, LW_PLAN_MEM_NONE);
    ck_assert_int_eq(f.n_layer_copies, 0);
    ck_assert_uint_eq(f.bytes, f.pinned_bytes + f.shared_bytes);
    uint64_t side_by_side = 0;
    for (int s = 1; s < LW_SLOT_COUNT; s++)
        if (in_arena(f.slots[s].where)) side_by_side += (slot_bytes(&f, s) + 63) / 64 * 64;
    ck_assert_msg(f.bytes < side_by_side, "forward-only: %llu bytes, no reuse (%llu side by side)",
                  (unsigned long long)f.bytes, (unsigned long long)side_by_side);
    /* training: per layer, what backward reads (Gemma 3: qk-norm and post norms) */
    static const lw_plan_slot saved[] = {LW_SLOT_X_IN, LW_SLOT_XN, LW_SLOT_RSTD_ATTN, LW_SLOT_Q, LW_SLOT_K,
        LW_SLOT_Q_ROPE, LW_SLOT_RSTD_Q, LW_SLOT_RSTD_K, LW_SLOT_ATT, LW_SLOT_AO, LW_SLOT_PROJ, LW_SLOT_RSTD_POST_ATTN,
        LW_SLOT_X_MID, LW_SLOT_FN, LW_SLOT_RSTD_FFN, LW_SLOT_GATE, LW_SLOT_UP, LW_SLOT_HID, LW_SLOT_DOWN,
        LW_SLOT_RSTD_POST_FFN};
    uint64_t layer = 0, saved_elems = 2 * T * kvd;   /* + the cache rows */
    bool is_saved[LW_SLOT_COUNT] = {false};
    for (size_t i = 0; i < sizeof saved / sizeof saved[0]; i++) {
        ck_assert_msg(t.slots[saved[i]].where == LW_PLAN_MEM_LAYER, "%s not kept per layer",
                      lw_plan_slot_name(saved[i]));
        layer += (slot_bytes(&t, saved[i]) + 63) / 64 * 64;
        saved_elems += t.slots[saved[i]].elems;
        is_saved[saved[i]] = true;
    }
    for (int s = 1; s < LW_SLOT_COUNT; s++)
        if (!is_saved[s]) ck_assert_msg(t.slots[s].where != LW_PLAN_MEM_LAYER, "%s kept per layer",
                                        lw_plan_slot_name((lw_plan_slot)s));
    ck_assert_uint_eq(t.layer_bytes, layer);
    ck_assert_int_eq(t.n_layer_copies, c.n_layers);
    ck_assert_uint_eq(t.bytes, t.pinned_bytes + t.shared_bytes + (uint64_t)c.n_layers * t.layer_bytes);
    ck_assert_uint_eq(lw_plan_memory_saved_elems(&t), saved_elems);
    /* lse: one value per head and row instead of the probabilities */
    sh.lse = true;
    ck_assert_int_eq(lw_plan_memory_layout(&p, &sh, &t), LW_OK);
    ck_assert_uint_eq(t.slots[LW_SLOT_ATT].elems, (uint64_t)c.n_heads * T);
    /* shapes out of range are refused */
    lw_plan_shape bad[] = {shape_of(0, 1, 1, false), shape_of(4, 5, 1, false), shape_of(4, 4, 0, false),
                           shape_of((1 << 20) + 1, 1, 1, true)};
    for (int i = 0; i < 4; i++) ck_assert_int_eq(lw_plan_memory_layout(&p, &bad[i], &t), LW_ERR_INVALID);
}
END_TEST

/* Activations are fp32; a weight's dtype is what the model holds it in:
 * bf16 exactly where a narrowed model has a bf16 copy (lw_narrow_matrix,
 * the lookup frozen_matmul.c's rule reads), fp32 everywhere for --dtype f32. */
START_TEST(dtype_per_slot_follows_the_narrowing)
{
    lw_model_config c = family_config(_i);
    lw_plan p;
    lw_plan_lower(&c, &p);
    lw_plan_memory m;
    lw_plan_shape sh = shape_of(4, 4, 8, true);
    ck_assert_int_eq(lw_plan_memory_layout(&p, &sh, &m), LW_OK);
    for (int s = 1; s < LW_SLOT_COUNT; s++) ck_assert_int_eq(m.slots[s].dtype, LW_PLAN_F32);
    lw_model *model = NULL;
    ck_assert_int_eq(lw_model_init_random(&c, 5, &model), LW_OK);
    ck_assert_msg(lw_model_narrow_bf16(model, true) == LW_OK, "%s", lw_last_error());
    int narrow = 0;
    for (int w = 1; w < LW_W_COUNT; w++) {
        for (int l = -1; l < c.n_layers; l++) {
            bool model_level = w == LW_W_TOKEN_EMBD || w == LW_W_OUTPUT_NORM || w == LW_W_OUTPUT;
            if (model_level != (l < 0)) continue;
            bool bf16 = lw_narrow_matrix(model, l, (lw_plan_weight)w) != NULL;
            ck_assert_msg(lw_plan_weight_dtype((lw_plan_weight)w, LW_WEIGHTS_BF16) == (bf16 ? LW_PLAN_BF16 : LW_PLAN_F32),
                          "%s: weight %s layer %d", c.name, lw_plan_weight_name((lw_plan_weight)w), l);
            narrow += bf16;
        }
        ck_assert_int_eq(lw_plan_weight_dtype((lw_plan_weight)w, LW_WEIGHTS_F32), LW_PLAN_F32);
    }
    ck_assert_int_eq(narrow, 9 * c.n_layers + 1);   /* 9 matrices and views a layer, and the head */
    lw_model_free(model);
}
END_TEST

#if defined(__SANITIZE_ADDRESS__)
/* Whether byte `at` of the arena belongs to a stored slot (a shared slot
 * not alive with its neighbour may lie over the neighbour's padding). */
static bool stored_at(const lw_plan_memory *m, uint64_t at)
{
    for (int s = 1; s < LW_SLOT_COUNT; s++) {
        const lw_plan_buffer *b = &m->slots[s];
        if (!in_arena(b->where) || !b->elems) continue;
        int copies = b->where == LW_PLAN_MEM_LAYER ? m->n_layer_copies : 1;
        for (int i = 0; i < copies; i++) {
            uint64_t o = b->offset + (b->where == LW_PLAN_MEM_LAYER ? (uint64_t)i * m->layer_bytes : 0);
            if (at >= o && at < o + slot_bytes(m, s)) return true;
        }
    }
    return false;
}
#endif

/* The CPU state takes its activations from one arena at the plan's offsets:
 * layer l's pointers are arena + offset (+ l x layer stride when kept per
 * layer), x / xf / rstd_final the pinned ones; under ASan every byte no
 * stored slot covers is fenced. */
START_TEST(state_activations_are_the_plans_arena)
{
    lw_model_config c = family_config(_i);
    lw_model *model = NULL;
    ck_assert_int_eq(lw_model_init_random(&c, 5, &model), LW_OK);
    for (int save = 0; save < 2; save++) {
        lw_state *s = NULL;
        ck_assert_int_eq(lw_state_alloc(model, 24, save, &s), LW_OK);
        const lw_plan_memory *m = &s->memory;
        ck_assert_int_eq(m->shape.rows, s->chunk);
        ck_assert_int_eq(m->shape.att_rows, s->att_rows);
        ck_assert_int_eq(m->shape.kv_len, 24);
        ck_assert_ptr_eq(s->x, (float *)((char *)s->arena + m->slots[LW_SLOT_X].offset));
        ck_assert_ptr_eq(s->xf, (float *)((char *)s->arena + m->slots[LW_SLOT_XF].offset));
        for (int l = 0; l < s->acts_count; l++)
            for (int slot = 1; slot < LW_SLOT_COUNT; slot++) {
                float **f = lw_layer_acts_slot(&s->acts[l], (lw_plan_slot)slot);
                if (!f) continue;
                const lw_plan_buffer *b = &m->slots[slot];
                if (!in_arena(b->where) || !b->elems) {
                    ck_assert_ptr_null(*f);
                    continue;
                }
                uint64_t off = b->offset + (b->where == LW_PLAN_MEM_LAYER ? (uint64_t)l * m->layer_bytes : 0);
                ck_assert_ptr_eq(*f, (float *)((char *)s->arena + off));
#if defined(__SANITIZE_ADDRESS__)
                /* the slot's own bytes are open, the padding after it fenced */
                ck_assert(!__asan_region_is_poisoned(*f, (size_t)b->elems * sizeof(float)));
                if ((b->elems * sizeof(float)) % LW_PLAN_ALIGN &&
                    !stored_at(m, (uint64_t)((char *)(*f + b->elems) - (char *)s->arena)))
                    ck_assert_msg(__asan_address_is_poisoned(*f + b->elems), "%s: padding not fenced",
                                  lw_plan_slot_name((lw_plan_slot)slot));
#endif
            }
        lw_state_free(s);
    }
    lw_model_free(model);
}
END_TEST

/* The backward's gradient slots laid out by their lifetimes in the reverse
 * walk: dx and dxf pinned, every slot a record's backward touches stored
 * with room for its widest use, two stored slots sharing bytes only when
 * their live ranges do not meet, slots the config does not use absent
 * (dq_pre, dk_pre without qk-norm), and less than one buffer a slot; the
 * CPU backward scratch's buffers are that arena at those offsets. */
START_TEST(gradient_slots_share_bytes_only_when_not_alive_together)
{
    lw_model_config c = family_config(_i);
    lw_plan p;
    lw_plan_lower(&c, &p);
    const int rows = 7;
    lw_plan_grad_memory g;
    ck_assert_int_eq(lw_plan_grad_layout(&p, rows, &g), LW_OK);
    ck_assert_int_ne(lw_plan_grad_layout(&p, 0, &g), LW_OK);
    ck_assert_int_eq(lw_plan_grad_layout(&p, rows, &g), LW_OK);
    ck_assert_int_eq(g.grads[LW_GRAD_DX].where, LW_PLAN_MEM_PINNED);
    ck_assert_int_eq(g.grads[LW_GRAD_DXF].where, LW_PLAN_MEM_PINNED);
    ck_assert_int_eq(g.grads[LW_GRAD_DBR].where, LW_PLAN_MEM_SHARED);   /* the logits' packed rows, always */
    ck_assert_int_eq(g.grads[LW_GRAD_DQ_PRE].where, c.qk_norm ? LW_PLAN_MEM_SHARED : LW_PLAN_MEM_NONE);
    ck_assert_int_eq(g.grads[LW_GRAD_DK_PRE].where, c.qk_norm ? LW_PLAN_MEM_SHARED : LW_PLAN_MEM_NONE);
    ck_assert_uint_eq(g.grads[LW_GRAD_DK].elems, (uint64_t)rows * c.n_kv_heads * c.head_dim);
    ck_assert_uint_eq(g.grads[LW_GRAD_DHID].elems, (uint64_t)rows * c.ffn);
    /* every gradient a record names is stored, wide enough */
    for (int i = 0; i < p.n_ops; i++) {
        const lw_plan_op *op = &p.ops[i];
        lw_plan_grad named[2 + LW_PLAN_MAX_PARTS] = {op->din, op->dout};
        for (int j = 0; j < op->n_parts; j++) named[2 + j] = op->parts[j].grad;
        for (int j = 0; j < 2 + op->n_parts; j++)
            if (named[j] != LW_GRAD_NONE)
                ck_assert_msg(g.grads[named[j]].where != LW_PLAN_MEM_NONE && g.grads[named[j]].elems >= (uint64_t)rows,
                              "%s: op %d's %s not stored", c.name, i, lw_plan_grad_name(named[j]));
    }
    uint64_t apart = 0, stored = 0;
    for (int a = 1; a < LW_GRAD_COUNT; a++) {
        const lw_plan_buffer *x = &g.grads[a];
        if (x->where == LW_PLAN_MEM_NONE) continue;
        stored += x->elems;
        ck_assert_uint_eq(x->offset % LW_PLAN_ALIGN, 0);
        ck_assert_uint_le(x->offset + 4 * x->elems, g.bytes);
        apart += (4 * x->elems + LW_PLAN_ALIGN - 1) / LW_PLAN_ALIGN * LW_PLAN_ALIGN;
        for (int b = a + 1; b < LW_GRAD_COUNT; b++) {
            const lw_plan_buffer *y = &g.grads[b];
            if (y->where == LW_PLAN_MEM_NONE) continue;
            bool pinned = x->where == LW_PLAN_MEM_PINNED || y->where == LW_PLAN_MEM_PINNED;
            bool alive = pinned || (x->first <= y->last && y->first <= x->last);
            bool overlap = x->offset < y->offset + 4 * y->elems && y->offset < x->offset + 4 * x->elems;
            ck_assert_msg(!(alive && overlap), "%s: %s [%d, %d] and %s [%d, %d] share bytes while alive", c.name,
                          lw_plan_grad_name((lw_plan_grad)a), x->first, x->last, lw_plan_grad_name((lw_plan_grad)b),
                          y->first, y->last);
        }
    }
    ck_assert_msg(g.bytes < apart, "%s: %llu bytes laid out, %llu apart: nothing shared", c.name,
                  (unsigned long long)g.bytes, (unsigned long long)apart);
    ck_assert_uint_eq(lw_plan_grad_elems(&g), stored);
    /* the CPU scratch: the same layout, its buffers at the offsets */
    lw_model *model = NULL;
    ck_assert_int_eq(lw_model_init_random(&c, 9, &model), LW_OK);
    lw_backward_scratch *s = NULL;
    ck_assert_msg(lw_backward_scratch_alloc(model, rows, &s) == LW_OK, "%s", lw_last_error());
    const char *base = (const char *)s->arena;
    ck_assert_uint_eq(s->memory.bytes, g.bytes);
    ck_assert_ptr_eq((const char *)s->dx, base + g.grads[LW_GRAD_DX].offset);
    ck_assert_ptr_eq((const char *)s->dbr, base + g.grads[LW_GRAD_DBR].offset);
    ck_assert_ptr_eq((const char *)s->dhid, base + g.grads[LW_GRAD_DHID].offset);
    ck_assert_ptr_eq((const char *)s->dk, base + g.grads[LW_GRAD_DK].offset);
    if (c.qk_norm) ck_assert_ptr_eq((const char *)s->dq_pre, base + g.grads[LW_GRAD_DQ_PRE].offset);
    else ck_assert_ptr_null(s->dq_pre);
    lw_backward_scratch_free(s);
    lw_model_free(model);
}
END_TEST


/* ---- the bridge's plan (bridge_plan.h) ----------------------------------------- */

enum { BS = 12, BD = 8, BH = 2, BM = 3, BDEPTH = 2, BR = 10, BF = 2 * BD };

static lw_bridge_config bridge_config(void)
{
    return (lw_bridge_config){.kind = LW_BRIDGE_PERCEIVER, .soft_tokens = BM, .source_layer = 1, .width = BD,
                              .depth = BDEPTH, .heads = BH, .ffn_mult = 2, .calibration = LW_CALIB_RMS};
}

/* The schedule is the design's (bridge.h): the model level (the input's
 * standardisation first, the output calibration last), then one block's
 * ops in order, with their shapes (rows M or T, widths, heads); every
 * tensor of a block and of the model level named exactly once; configs out
 * of range refused. The ablations' schedules: bridge_ablations_are_lowered. */
START_TEST(bridge_schedule_is_the_design)
{
    lw_bridge_config c = bridge_config();
    lw_bridge_plan p;
    ck_assert_msg(lw_bridge_plan_lower(&c, BS, BR, &p) == LW_OK, "%s", lw_last_error());
    static const lw_op_kind model[] = {LW_OP_STANDARDISE, LW_OP_MATMUL,    LW_OP_COPY,         LW_OP_BLOCKS,
                                       LW_OP_LAYERNORM,   LW_OP_MATMUL, LW_OP_RMS_CALIBRATE};
    static const lw_op_kind block[] = {
        LW_OP_COPY, LW_OP_LAYERNORM, LW_OP_LAYERNORM, LW_OP_MATMUL, LW_OP_MATMUL, LW_OP_MATMUL, LW_OP_ATTENTION,
        LW_OP_MATMUL, LW_OP_ADD,                                                                 /* cross */
        LW_OP_COPY, LW_OP_LAYERNORM, LW_OP_MATMUL, LW_OP_MATMUL, LW_OP_MATMUL, LW_OP_ATTENTION, LW_OP_MATMUL,
        LW_OP_ADD,                                                                               /* self */
        LW_OP_COPY, LW_OP_LAYERNORM, LW_OP_MATMUL, LW_OP_GELU, LW_OP_MATMUL, LW_OP_ADD};          /* ffn */
    ck_assert_int_eq(p.n_model_ops, (int)(sizeof model / sizeof model[0]));
    ck_assert_int_eq(p.n_ops, (int)(sizeof block / sizeof block[0]));
    for (int i = 0; i < p.n_model_ops; i++) ck_assert_int_eq(p.model_ops[i].kind, model[i]);
    for (int i = 0; i < p.n_ops; i++)
        ck_assert_msg(p.ops[i].kind == block[i], "block op %d is %s", i, lw_op_kind_name(p.ops[i].kind));
    ck_assert_int_eq(p.depth, BDEPTH);
    ck_assert(p.norm_eps == 1e-5f && p.calib_eps == 1e-6f && p.min_std == 1e-6f);
    /* standardise: T rows of S, the input_norm buffers; the calibration: M rows of R, out_scale */
    const lw_bridge_op *sd = &p.model_ops[0], *cal = &p.model_ops[6];
    ck_assert(sd->rows == LW_BRIDGE_ROWS_T && sd->width == BS && sd->in == LW_BS_X && sd->out == LW_BS_XS &&
              sd->w == LW_BW_IN_MEAN && sd->b == LW_BW_IN_STD && sd->din == LW_BG_DX && sd->dout == LW_BG_DXS);
    ck_assert(cal->rows == LW_BRIDGE_ROWS_M && cal->width == BR && cal->in == LW_BS_Z && cal->out == LW_BS_OUT &&
              cal->keep == LW_BS_ZN && cal->aux == LW_BS_Z_RSTD && cal->w == LW_BW_OUT_SCALE &&
              cal->din == LW_BG_DZ && cal->dout == LW_BG_DOUT && cal->dparts[0] == LW_BG_DZN);
    /* in_proj: T rows, S -> d; out_proj: M rows, d -> R */
    const lw_bridge_op *in = &p.model_ops[1], *out = &p.model_ops[5];
    ck_assert(in->rows == LW_BRIDGE_ROWS_T && in->width == BS && in->out_width == BD && in->w == LW_BW_IN_W &&
              in->b == LW_BW_IN_B && in->in == LW_BS_XS && in->out == LW_BS_CTX);
    ck_assert(out->rows == LW_BRIDGE_ROWS_M && out->width == BD && out->out_width == BR && out->out == LW_BS_Z &&
              out->dout == LW_BG_DZ);
    ck_assert(p.model_ops[2].w == LW_BW_QUERIES && p.model_ops[2].out == LW_BS_LAT);
    /* cross-attention keys over T rows, self-attention over M; head_dim d / heads; no bias on q k v o */
    int cross = 6, self = 14;
    ck_assert(p.ops[cross].kv_rows == LW_BRIDGE_ROWS_T && p.ops[cross].rows == LW_BRIDGE_ROWS_M);
    ck_assert(p.ops[self].kv_rows == LW_BRIDGE_ROWS_M && p.ops[self].rows == LW_BRIDGE_ROWS_M);
    for (int a = 0; a < 2; a++) {
        const lw_bridge_op *op = &p.ops[a ? self : cross];
        ck_assert_int_eq(op->heads, BH);
        ck_assert_int_eq(op->head_dim, BD / BH);
        for (int k = 1; k <= 4; k++) ck_assert_int_eq(p.ops[(a ? self : cross) - (k == 4 ? -1 : k)].b, LW_BW_NONE);
    }
    ck_assert(p.ops[2].in == LW_BS_CTX && p.ops[2].rows == LW_BRIDGE_ROWS_T);   /* the context's LayerNorm */
    ck_assert(p.ops[3].rows == LW_BRIDGE_ROWS_T && p.ops[4].rows == LW_BRIDGE_ROWS_T);   /* v, k off the context */
    ck_assert(p.ops[5].rows == LW_BRIDGE_ROWS_M);
    ck_assert(p.ops[19].width == BD && p.ops[19].out_width == BF && p.ops[19].b == LW_BW_FC1_B);
    ck_assert(p.ops[20].width == BF);
    ck_assert(p.ops[21].width == BF && p.ops[21].out_width == BD && p.ops[21].b == LW_BW_FC2_B);
    int named[LW_BW_COUNT] = {0};
    for (int i = 0; i < p.n_ops; i++) named[p.ops[i].w]++, named[p.ops[i].b]++;
    for (int i = 0; i < p.n_model_ops; i++) named[p.model_ops[i].w]++, named[p.model_ops[i].b]++;
    for (int w = 1; w < LW_BW_COUNT; w++)
        ck_assert_msg(named[w] == 1, "%s named %d times", lw_bridge_weight_name((lw_bridge_weight)w), named[w]);
    /* the residual adds all land on lat with its gradient, so backward moves nothing there */
    for (int i = 0; i < p.n_ops; i++)
        if (p.ops[i].kind == LW_OP_ADD) ck_assert(p.ops[i].out == LW_BS_LAT && p.ops[i].din == LW_BG_DLAT);
    /* uncalibrated: the soft tokens are z (a copy sharing one gradient, out_proj's dout) */
    c.calibration = LW_CALIB_NONE;
    ck_assert_int_eq(lw_bridge_plan_lower(&c, BS, BR, &p), LW_OK);
    ck_assert(p.n_model_ops == 7 && p.model_ops[6].kind == LW_OP_COPY && p.model_ops[6].in == LW_BS_Z &&
              p.model_ops[6].out == LW_BS_OUT && p.model_ops[6].din == LW_BG_DOUT &&
              p.model_ops[6].dout == LW_BG_DOUT && p.model_ops[5].dout == LW_BG_DOUT);
    /* refused: a config the bridge itself refuses */
    c = bridge_config(), c.heads = 3;
    ck_assert_int_ne(lw_bridge_plan_lower(&c, BS, BR, &p), LW_OK);
    /* the bridge's own check (lw_bridge_config_check), one place for the ranges */
    ck_assert_msg(strstr(lw_last_error(), "bridge plan: bridge.heads is 3"), "%s", lw_last_error());
    c = bridge_config(), c.depth = 0;
    ck_assert_int_ne(lw_bridge_plan_lower(&c, BS, BR, &p), LW_OK);
}
END_TEST

/* Every slot an op reads (forward, or backward's keep) was written by an
 * earlier op of the block or by the model level before BLOCKS; every
 * gradient a backward op reads as dout is produced by an op later in the
 * list (so earlier in the reversed walk) or is the model level's. */
START_TEST(bridge_dataflow_reads_only_what_was_written)
{
    lw_bridge_config c = bridge_config();
    lw_bridge_plan p;
    ck_assert_int_eq(lw_bridge_plan_lower(&c, BS, BR, &p), LW_OK);
    bool written[LW_BS_COUNT] = {false};
    written[LW_BS_X] = true;   /* the caller's input */
    for (int i = 0; i < 3; i++) written[p.model_ops[i].out] = true;   /* xs, ctx, lat before the blocks */
    for (int i = 0; i < p.n_ops; i++) {
        const lw_bridge_op *op = &p.ops[i];
        lw_bridge_slot reads[5] = {op->in, op->keep, op->parts[0], op->parts[1], op->parts[2]};
        for (int j = 0; j < 5; j++)
            ck_assert_msg(reads[j] == LW_BS_NONE || written[reads[j]], "block op %d (%s) reads %s before it is written",
                          i, lw_op_kind_name(op->kind), lw_bridge_slot_name(reads[j]));
        written[op->out] = true, written[op->aux] = true, written[op->aux2] = true;
    }
    /* backward: a gradient read as dout is dlat (the stream's, set by the model level) or made later in the block */
    for (int i = 0; i < p.n_ops; i++) {
        const lw_bridge_op *op = &p.ops[i];
        if (op->dout == LW_BG_NONE || op->dout == LW_BG_DLAT) continue;
        bool made = false;
        for (int j = i + 1; j < p.n_ops; j++) {
            const lw_bridge_op *o = &p.ops[j];
            made |= o->din == op->dout || o->dparts[0] == op->dout || o->dparts[1] == op->dout ||
                    o->dparts[2] == op->dout;
        }
        ck_assert_msg(made, "block op %d (%s) reads gradient %s that no later op makes", i, lw_op_kind_name(op->kind),
                      lw_bridge_grad_name(op->dout));
    }
}
END_TEST

static bool bridge_in_arena(lw_plan_mem_where w)
{
    return w == LW_PLAN_MEM_PINNED || w == LW_PLAN_MEM_SHARED || w == LW_PLAN_MEM_LAYER;
}

/* 0 when no two bridge slots alive together share a byte (in any block's
 * copy), each lies aligned below the gradient region, and the gradients
 * neither overlap each other nor leave the arena; else the offender + 1. */
static int bridge_overlapping(const lw_bridge_memory *m)
{
    uint64_t grads_at = m->bytes - m->grad_bytes;
    for (int a = 1; a < LW_BS_COUNT; a++) {
        const lw_plan_buffer *x = &m->slots[a];
        if (!bridge_in_arena(x->where) || !x->elems) continue;
        uint64_t xb = x->elems * sizeof(float);
        int cx = x->where == LW_PLAN_MEM_LAYER ? m->n_layer_copies : 1;
        if (x->offset % LW_PLAN_ALIGN || x->offset + xb + (uint64_t)(cx - 1) * m->layer_bytes > grads_at) return a + 1;
        for (int b = a + 1; b < LW_BS_COUNT; b++) {
            const lw_plan_buffer *y = &m->slots[b];
            if (!bridge_in_arena(y->where) || !y->elems) continue;
            bool together = !(x->where == LW_PLAN_MEM_SHARED && y->where == LW_PLAN_MEM_SHARED) ||
                            (x->first <= y->last && y->first <= x->last);
            if (!together) continue;
            uint64_t yb = y->elems * sizeof(float);
            int cy = y->where == LW_PLAN_MEM_LAYER ? m->n_layer_copies : 1;
            for (int i = 0; i < cx; i++)
                for (int j = 0; j < cy; j++) {
                    uint64_t xo = x->offset + (x->where == LW_PLAN_MEM_LAYER ? (uint64_t)i * m->layer_bytes : 0);
                    uint64_t yo = y->offset + (y->where == LW_PLAN_MEM_LAYER ? (uint64_t)j * m->layer_bytes : 0);
                    if (xo < yo + yb && yo < xo + xb) return a + 1;
                }
        }
    }
    for (int g = 1; g < LW_BG_COUNT; g++) {
        uint64_t go = m->grad_offset[g], gb = m->grad_elems[g] * sizeof(float);
        if (go < grads_at || go % LW_PLAN_ALIGN || go + gb > m->bytes) return LW_BS_COUNT + g;
        for (int h = g + 1; h < LW_BG_COUNT; h++) {
            uint64_t ho = m->grad_offset[h], hb = m->grad_elems[h] * sizeof(float);
            if (go < ho + hb && ho < go + gb) return LW_BS_COUNT + g;
        }
    }
    return 0;
}

/* Several context lengths, with and without training: slots alive together
 * never share a byte; training keeps one copy per block of what backward
 * reads (everything the hand-written bridge kept) and shares only the
 * branches a residual add consumes; sizes by hand; a planted overlap is
 * caught. */
START_TEST(bridge_memory_never_overlaps_while_alive)
{
    lw_bridge_config c = bridge_config();
    lw_bridge_plan p;
    ck_assert_int_eq(lw_bridge_plan_lower(&c, BS, BR, &p), LW_OK);
    int Ts[] = {1, 2, 5, 300};
    for (int k = 0; k < 4; k++)
        for (int training = 0; training < 2; training++) {
            int T = Ts[k];
            lw_bridge_memory m;
            ck_assert_msg(lw_bridge_memory_layout(&p, T, training, &m) == LW_OK, "%s", lw_last_error());
            int bad = bridge_overlapping(&m);
            ck_assert_msg(bad == 0, "T %d training %d: %s overlaps", T, training,
                          bad <= LW_BS_COUNT ? lw_bridge_slot_name((lw_bridge_slot)(bad - 1))
                                             : lw_bridge_grad_name((lw_bridge_grad)(bad - LW_BS_COUNT)));
            ck_assert_int_eq(m.n_layer_copies, training ? BDEPTH : 0);
            /* sizes */
            ck_assert_uint_eq(m.slots[LW_BS_XS].elems, (uint64_t)T * BS);
            ck_assert_uint_eq(m.slots[LW_BS_CTX].elems, (uint64_t)T * BD);
            ck_assert_uint_eq(m.slots[LW_BS_Z].elems, (uint64_t)BM * BR);
            ck_assert_uint_eq(m.slots[LW_BS_ATT].elems, (uint64_t)BH * BM * T);
            ck_assert_uint_eq(m.slots[LW_BS_SATT].elems, (uint64_t)BH * BM * BM);
            ck_assert_uint_eq(m.slots[LW_BS_K].elems, (uint64_t)T * BD);
            ck_assert_uint_eq(m.slots[LW_BS_H].elems, (uint64_t)BM * BF);
            ck_assert_uint_eq(m.slots[LW_BS_NKV_RSTD].elems, (uint64_t)T);
            ck_assert_uint_eq(m.grad_elems[LW_BG_DK], (uint64_t)(T > BM ? T : BM) * BD);
            ck_assert_uint_eq(m.grad_elems[LW_BG_DXS], (uint64_t)T * BS);
            ck_assert_uint_eq(m.grad_elems[LW_BG_DH], (uint64_t)BM * BF);
            ck_assert_uint_eq(m.slots[LW_BS_X].elems, (uint64_t)T * BS);
            ck_assert_uint_eq(m.slots[LW_BS_ZN].elems, (uint64_t)BM * BR);
            ck_assert_uint_eq(m.slots[LW_BS_Z_RSTD].elems, (uint64_t)BM);
            ck_assert_uint_eq(m.slots[LW_BS_OUT].elems, (uint64_t)BM * BR);
            ck_assert_uint_eq(m.grad_elems[LW_BG_DX], (uint64_t)T * BS);
            ck_assert_uint_eq(m.grad_elems[LW_BG_DZN], (uint64_t)BM * BR);
            ck_assert_uint_eq(m.grad_elems[LW_BG_DOUT], (uint64_t)BM * BR);
            for (int s = 1; s < LW_BS_COUNT; s++) {
                const lw_plan_buffer *b = &m.slots[s];
                bool pooled = s == LW_BS_POOLED || s == LW_BS_PH || s == LW_BS_PG;   /* the ablations' */
                ck_assert_msg((b->elems > 0) != pooled, "%s %sstored", lw_bridge_slot_name((lw_bridge_slot)s),
                              pooled ? "" : "not ");
                if (pooled) continue;
                bool branch = s == LW_BS_PROJ || s == LW_BS_SPROJ || s == LW_BS_FPROJ;
                lw_plan_mem_where want = s < LW_BS_FIRST_BLOCK       ? LW_PLAN_MEM_PINNED
                                         : training && !branch ? LW_PLAN_MEM_LAYER
                                                                : LW_PLAN_MEM_SHARED;
                ck_assert_msg(b->where == want, "T %d training %d: %s is %s", T, training,
                              lw_bridge_slot_name((lw_bridge_slot)s), lw_plan_mem_where_name(b->where));
            }
            /* forward-only shares: smaller than the block's slots side by side */
            if (!training) {
                uint64_t side = 0;
                for (int s = LW_BS_FIRST_BLOCK; s < LW_BS_COUNT; s++) side += m.slots[s].elems * sizeof(float);
                ck_assert_uint_lt(m.shared_bytes, side);
            }
            lw_bridge_memory bad_m = m;
            /* q moved onto k: both read by the cross-attention */
            bad_m.slots[LW_BS_Q].offset = bad_m.slots[LW_BS_K].offset;
            bad_m.slots[LW_BS_Q].where = bad_m.slots[LW_BS_K].where;
            ck_assert_int_ne(bridge_overlapping(&bad_m), 0);
            bad_m = m;
            bad_m.grad_offset[LW_BG_DQ] = bad_m.grad_offset[LW_BG_DK];
            ck_assert_int_ne(bridge_overlapping(&bad_m), 0);
        }
    lw_bridge_memory m;
    ck_assert_int_ne(lw_bridge_memory_layout(&p, 0, true, &m), LW_OK);
    ck_assert_int_ne(lw_bridge_memory_layout(&p, 65537, true, &m), LW_OK);
}
END_TEST

/* The ablations (bridge.h): standardise, the mean of the context rows,
 * products over that one row (mlp: in_proj, GELU, out_proj; linear:
 * out_proj) into z [1, M x R], the calibration; no blocks. Their arena
 * holds only model-level slots, none overlapping. */
START_TEST(bridge_ablations_are_lowered)
{
    for (int linear = 0; linear < 2; linear++) {
        lw_bridge_config c = bridge_config();
        c.kind = linear ? LW_BRIDGE_LINEAR : LW_BRIDGE_MLP;
        lw_bridge_plan p;
        ck_assert_msg(lw_bridge_plan_lower(&c, BS, BR, &p) == LW_OK, "%s", lw_last_error());
        static const lw_op_kind mlp[] = {LW_OP_STANDARDISE, LW_OP_MEAN_ROWS, LW_OP_MATMUL, LW_OP_GELU, LW_OP_MATMUL,
                                         LW_OP_RMS_CALIBRATE};
        static const lw_op_kind lin[] = {LW_OP_STANDARDISE, LW_OP_MEAN_ROWS, LW_OP_MATMUL, LW_OP_RMS_CALIBRATE};
        const lw_op_kind *want = linear ? lin : mlp;
        ck_assert_int_eq(p.n_model_ops, linear ? 4 : 6);
        for (int i = 0; i < p.n_model_ops; i++)
            ck_assert_msg(p.model_ops[i].kind == want[i], "model op %d is %s", i, lw_op_kind_name(p.model_ops[i].kind));
        ck_assert(p.n_ops == 0 && p.depth == 0);
        const lw_bridge_op *mean = &p.model_ops[1], *out = &p.model_ops[p.n_model_ops - 2];
        ck_assert(mean->rows == LW_BRIDGE_ROWS_ONE && mean->kv_rows == LW_BRIDGE_ROWS_T && mean->in == LW_BS_XS &&
                  mean->out == LW_BS_POOLED && mean->din == LW_BG_DXS && (mean->flags & LW_PLAN_ZERO_DIN));
        ck_assert(out->rows == LW_BRIDGE_ROWS_ONE && out->width == (linear ? BS : BD) && out->out_width == BM * BR &&
                  out->w == LW_BW_OUT_W && out->b == LW_BW_OUT_B && out->out == LW_BS_Z && out->dout == LW_BG_DZ);
        if (!linear)
            ck_assert(p.model_ops[2].w == LW_BW_IN_W && p.model_ops[2].out == LW_BS_PH &&
                      p.model_ops[3].out == LW_BS_PG && p.model_ops[3].rows == LW_BRIDGE_ROWS_ONE);
        lw_bridge_memory m;
        ck_assert_int_eq(lw_bridge_memory_layout(&p, 5, true, &m), LW_OK);
        ck_assert_int_eq(bridge_overlapping(&m), 0);
        ck_assert_uint_eq(m.slots[LW_BS_POOLED].elems, BS);
        ck_assert_uint_eq(m.slots[LW_BS_Z].elems, (uint64_t)BM * BR);
        ck_assert_uint_eq(m.grad_elems[LW_BG_DXS], (uint64_t)5 * BS);
        ck_assert_uint_eq(m.layer_bytes, 0);
        for (int s = LW_BS_FIRST_BLOCK; s < LW_BS_COUNT; s++) ck_assert_uint_eq(m.slots[s].elems, 0);
    }
}
END_TEST

/* The comparison names the first difference, with both values. */
START_TEST(bridge_compare_names_the_first_difference)
{
    lw_bridge_config c = bridge_config();
    lw_bridge_plan a, b;
    ck_assert_int_eq(lw_bridge_plan_lower(&c, BS, BR, &a), LW_OK);
    b = a;
    ck_assert_int_eq(lw_bridge_plan_compare(&a, &b, "t"), LW_OK);
    b.ops[19].out_width = 99;
    ck_assert_int_ne(lw_bridge_plan_compare(&a, &b, "t"), LW_OK);
    ck_assert_msg(strstr(lw_last_error(), "bridge block op 19 (matmul): out width differs: 16 here, 99 in the other"),
                  "%s", lw_last_error());
    b = a, b.model_ops[2].w = LW_BW_OUT_W;
    ck_assert_int_ne(lw_bridge_plan_compare(&a, &b, "t"), LW_OK);
    ck_assert_msg(strstr(lw_last_error(), "weight differs: queries here, out_proj.weight"), "%s", lw_last_error());
    lw_bridge_memory x, y;
    ck_assert_int_eq(lw_bridge_memory_layout(&a, 7, true, &x), LW_OK);
    y = x;
    ck_assert_int_eq(lw_bridge_memory_compare(&x, &y, "t"), LW_OK);
    y.grad_offset[LW_BG_DV] += 64;
    ck_assert_int_ne(lw_bridge_memory_compare(&x, &y, "t"), LW_OK);
    ck_assert_msg(strstr(lw_last_error(), "gradient dv differs"), "%s", lw_last_error());
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
    tcase_add_loop_test(tc, memory_offsets_never_overlap_while_alive, 0, 4);
    tcase_add_test(tc, memory_sizes_and_arena_total);
    tcase_add_loop_test(tc, dtype_per_slot_follows_the_narrowing, 0, 4);
    tcase_add_loop_test(tc, state_activations_are_the_plans_arena, 0, 4);
    tcase_add_loop_test(tc, gradient_slots_share_bytes_only_when_not_alive_together, 0, 4);
    tcase_add_test(tc, bridge_schedule_is_the_design);
    tcase_add_test(tc, bridge_dataflow_reads_only_what_was_written);
    tcase_add_test(tc, bridge_memory_never_overlaps_while_alive);
    tcase_add_test(tc, bridge_ablations_are_lowered);
    tcase_add_test(tc, bridge_compare_names_the_first_difference);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
