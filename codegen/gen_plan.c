#include "gen_plan.h"

#include "escape.h"
#include "pair.h"

/* Every field by name and number (the names in comments), so the table
 * reads as the op list it is. */
static void op_initializer(lw_strbuf *sb, const lw_plan_op *op)
{
    lw_sb_printf(sb, "        { /* %s */ .kind = %d, .in = %d /* %s */, .out = %d /* %s */, .aux = %d, .keep = %d,\n",
                 lw_op_kind_name(op->kind), (int)op->kind, (int)op->in, lw_plan_slot_name(op->in), (int)op->out,
                 lw_plan_slot_name(op->out), (int)op->aux, (int)op->keep);
    lw_sb_printf(sb, "          .w = %d /* %s */, .b = %d, .din = %d /* %s */, .dout = %d /* %s */,\n", (int)op->w,
                 lw_plan_weight_name(op->w), (int)op->b, (int)op->din, lw_plan_grad_name(op->din), (int)op->dout,
                 lw_plan_grad_name(op->dout));
    lw_sb_printf(sb, "          .width = %d, .rows = %d, .kv_heads = %d, .head_dim = %d, .flags = %uu, .n_parts = %d",
                 op->width, op->rows, op->kv_heads, op->head_dim, op->flags, op->n_parts);
    if (op->n_parts > 0) lw_sb_printf(sb, "%s", ",\n          .parts = {");
    for (int i = 0; i < op->n_parts && i < LW_PLAN_MAX_PARTS; i++) {
        const lw_plan_part *q = &op->parts[i];
        lw_sb_printf(sb, "%s{ .slot = %d, .grad = %d, .w = %d, .width = %d, .lora = %d }", i ? ", " : "",
                     (int)q->slot, (int)q->grad, (int)q->w, q->width, (int)q->lora);
    }
    if (op->n_parts > 0) lw_sb_printf(sb, "%s", "}");
    lw_sb_printf(sb, "%s", " },\n");
}

void lw_gen_plan_initializer(const lw_plan *p, lw_strbuf *sb)
{
    lw_sb_printf(sb, "{\n      .n_layers = %d, .sliding_window = %d, .global_every = %d, .norm = %d, .norm_eps = ",
                 p->n_layers, p->sliding_window, p->global_every, (int)p->norm);
    lw_sb_c_float(sb, p->norm_eps);
    lw_sb_printf(sb, "f, .activation = %d, .rope_interleaved = %d,\n", (int)p->activation, (int)p->rope_interleaved);
    lw_sb_printf(sb, "      .n_model_ops = %d, .model_ops = {\n", p->n_model_ops);
    for (int i = 0; i < p->n_model_ops; i++) op_initializer(sb, &p->model_ops[i]);
    lw_sb_printf(sb, "      },\n      .n_ops = %d, .ops = {\n", p->n_ops);
    for (int i = 0; i < p->n_ops; i++) op_initializer(sb, &p->ops[i]);
    lw_sb_printf(sb, "%s", "      },\n    }");
}

void lw_gen_memory_initializer(const lw_plan_memory *mem, lw_strbuf *sb)
{
    const lw_plan_shape *sh = &mem->shape;
    lw_sb_printf(sb, "{\n      .shape = { .rows = %d, .att_rows = %d, .kv_len = %d, .training = %d, .lse = %d },\n",
                 sh->rows, sh->att_rows, sh->kv_len, (int)sh->training, (int)sh->lse);
    lw_sb_printf(sb, "      .pinned_bytes = %lluu, .shared_bytes = %lluu, .layer_bytes = %lluu, .n_layer_copies = %d, "
                 ".bytes = %lluu,\n      .slots = {\n", (unsigned long long)mem->pinned_bytes,
                 (unsigned long long)mem->shared_bytes, (unsigned long long)mem->layer_bytes, mem->n_layer_copies,
                 (unsigned long long)mem->bytes);
    for (int s = 1; s < LW_SLOT_COUNT; s++) {
        const lw_plan_buffer *b = &mem->slots[s];
        lw_sb_printf(sb, "        [%d] = { /* %s */ .dtype = %d /* %s */, .where = %d /* %s */, .elems = %lluu, "
                     ".offset = %lluu, .first = %d, .last = %d },\n", s, lw_plan_slot_name((lw_plan_slot)s),
                     (int)b->dtype, lw_plan_dtype_name(b->dtype), (int)b->where, lw_plan_mem_where_name(b->where),
                     (unsigned long long)b->elems, (unsigned long long)b->offset, b->first, b->last);
    }
    lw_sb_printf(sb, "%s", "      },\n    }");
}

static void bridge_op_initializer(lw_strbuf *sb, const lw_bridge_op *op)
{
    lw_sb_printf(sb, "        { /* %s */ .kind = %d, .in = %d /* %s */, .keep = %d, .out = %d /* %s */, .aux = %d, "
                 ".aux2 = %d,\n", lw_op_kind_name(op->kind), (int)op->kind, (int)op->in, lw_bridge_slot_name(op->in),
                 (int)op->keep, (int)op->out, lw_bridge_slot_name(op->out), (int)op->aux, (int)op->aux2);
    lw_sb_printf(sb, "          .parts = {%d, %d, %d}, .dparts = {%d, %d, %d}, .w = %d /* %s */, .b = %d, .din = %d /* %s */, "
                 ".dout = %d /* %s */,\n", (int)op->parts[0], (int)op->parts[1], (int)op->parts[2], (int)op->dparts[0],
                 (int)op->dparts[1], (int)op->dparts[2], (int)op->w, lw_bridge_weight_name(op->w), (int)op->b,
                 (int)op->din, lw_bridge_grad_name(op->din), (int)op->dout, lw_bridge_grad_name(op->dout));
    lw_sb_printf(sb, "          .rows = %d, .kv_rows = %d, .width = %d, .out_width = %d, .heads = %d, .head_dim = %d, "
                 ".flags = %uu },\n", (int)op->rows, (int)op->kv_rows, op->width, op->out_width, op->heads,
                 op->head_dim, op->flags);
}

void lw_gen_bridge_plan_initializer(const lw_bridge_plan *p, lw_strbuf *sb)
{
    lw_sb_printf(sb, "{\n      .depth = %d, .soft_tokens = %d, .sender_hidden = %d, .width = %d, .receiver_hidden = %d, "
                 ".norm_eps = ", p->depth, p->soft_tokens, p->sender_hidden, p->width, p->receiver_hidden);
    lw_sb_c_float(sb, p->norm_eps);
    lw_sb_printf(sb, "%s", "f, .calib_eps = ");
    lw_sb_c_float(sb, p->calib_eps);
    lw_sb_printf(sb, "%s", "f, .min_std = ");
    lw_sb_c_float(sb, p->min_std);
    lw_sb_printf(sb, "f,\n      .n_model_ops = %d, .model_ops = {\n", p->n_model_ops);
    for (int i = 0; i < p->n_model_ops; i++) bridge_op_initializer(sb, &p->model_ops[i]);
    lw_sb_printf(sb, "      },\n      .n_ops = %d, .ops = {\n", p->n_ops);
    for (int i = 0; i < p->n_ops; i++) bridge_op_initializer(sb, &p->ops[i]);
    lw_sb_printf(sb, "%s", "      },\n    }");
}

void lw_gen_bridge_memory_initializer(const lw_bridge_memory *mem, lw_strbuf *sb)
{
    lw_sb_printf(sb, "{\n      .max_T = %d, .training = %d, .pinned_bytes = %lluu, .shared_bytes = %lluu, "
                 ".layer_bytes = %lluu, .n_layer_copies = %d, .grad_bytes = %lluu, .bytes = %lluu,\n      .slots = {\n",
                 mem->max_T, (int)mem->training, (unsigned long long)mem->pinned_bytes,
                 (unsigned long long)mem->shared_bytes, (unsigned long long)mem->layer_bytes, mem->n_layer_copies,
                 (unsigned long long)mem->grad_bytes, (unsigned long long)mem->bytes);
    for (int s = 1; s < LW_BS_COUNT; s++) {
        const lw_plan_buffer *b = &mem->slots[s];
        lw_sb_printf(sb, "        [%d] = { /* %s */ .dtype = %d, .where = %d /* %s */, .elems = %lluu, .offset = %lluu, "
                     ".first = %d, .last = %d },\n", s, lw_bridge_slot_name((lw_bridge_slot)s), (int)b->dtype,
                     (int)b->where, lw_plan_mem_where_name(b->where), (unsigned long long)b->elems,
                     (unsigned long long)b->offset, b->first, b->last);
    }
    lw_sb_printf(sb, "%s", "      },\n      .grad_elems = {");
    for (int g = 0; g < LW_BG_COUNT; g++)
        lw_sb_printf(sb, "%s%lluu", g ? ", " : "", (unsigned long long)mem->grad_elems[g]);
    lw_sb_printf(sb, "%s", "},\n      .grad_offset = {");
    for (int g = 0; g < LW_BG_COUNT; g++)
        lw_sb_printf(sb, "%s%lluu", g ? ", " : "", (unsigned long long)mem->grad_offset[g]);
    lw_sb_printf(sb, "%s", "},\n    }");
}

/* The perceiver bridge's plan and memory plan (lw_pair_check_plans's shapes). */
static lw_status bridge_tables(const lw_manifest *m, lw_strbuf *sb)
{
    if (m->bridge.kind != LW_BRIDGE_PERCEIVER) return LW_OK;
    lw_bridge_plan bp;
    lw_bridge_memory bm;
    lw_status st = lw_bridge_plan_lower(&m->bridge, m->sender.hidden, m->receiver.hidden, &bp);
    if (!st) st = lw_bridge_memory_layout(&bp, LW_PAIR_BAKED_SEQ, true, &bm);
    if (st) return lw_fail_wrap(st, "plan_tables.c: the bridge");
    lw_sb_printf(sb, "%s", "\n/* The perceiver bridge's plan (bridge_plan.h) and its memory plan at LW_PAIR_BAKED_SEQ "
                           "context rows, training. */\nconst lw_bridge_plan lw_baked_bridge_plan = ");
    lw_gen_bridge_plan_initializer(&bp, sb);
    lw_sb_printf(sb, "%s", ";\n\nconst lw_bridge_memory lw_baked_bridge_memory = ");
    lw_gen_bridge_memory_initializer(&bm, sb);
    lw_sb_printf(sb, "%s", ";\n");
    return LW_OK;
}

lw_status lw_gen_plan_tables(const lw_manifest *m, lw_strbuf *sb)
{
    lw_plan p;
    lw_sb_printf(sb, "%s", "/* Generated by lwc build: the plans of the pair's models (plan.h), as lw_plan_lower\n"
                           " * made them from the manifest, and their memory plans. Do not edit. */\n#include \"pair.h\"\n\n"
                           "const lw_plan lw_baked_plans[2] = {\n");
    const lw_model_config *models[2] = {&m->sender, &m->receiver};
    for (int i = 0; i < 2; i++) {
        lw_plan_lower(models[i], &p);
        lw_sb_printf(sb, "    /* %s */\n    ", i == 0 ? "sender" : "receiver");
        lw_gen_plan_initializer(&p, sb);
        lw_sb_printf(sb, "%s", ",\n");
    }
    lw_sb_printf(sb, "%s", "};\n\n/* Their memory plans at the baked shapes (pair.h, lw_pair_memory_shape). */\n"
                           "const lw_plan_memory lw_baked_memory[2] = {\n");
    for (int i = 0; i < 2; i++) {
        lw_plan_shape shape;
        lw_plan_memory mem;
        lw_plan_lower(models[i], &p);
        lw_status st = lw_pair_memory_shape(m, i, &shape);
        if (!st) st = lw_plan_memory_layout(&p, &shape, &mem);
        if (st) return lw_fail_wrap(st, "plan_tables.c: %s", i == 0 ? "sender" : "receiver");
        lw_sb_printf(sb, "    /* %s */\n    ", i == 0 ? "sender" : "receiver");
        lw_gen_memory_initializer(&mem, sb);
        lw_sb_printf(sb, "%s", ",\n");
    }
    lw_sb_printf(sb, "%s", "};\n");
    lw_status st = bridge_tables(m, sb);
    if (st) return st;
    return sb->failed ? lw_fail(LW_ERR_NOMEM, "out of memory generating plan_tables.c") : LW_OK;
}
