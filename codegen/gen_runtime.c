#include "gen_runtime.h"

#include "escape.h"
#include "lwc_config.h"

/* Field printers: every manifest string goes through lw_sb_c_string, every
 * number is printed by us. */
static void str_field(lw_strbuf *sb, const char *indent, const char *name, const char *value)
{
    lw_sb_printf(sb, "%s.%s = ", indent, name);
    lw_sb_c_string(sb, value);
    lw_sb_printf(sb, "%s", ",\n");
}

static void float_field(lw_strbuf *sb, const char *indent, const char *name, float v)
{
    lw_sb_printf(sb, "%s.%s = ", indent, name);
    lw_sb_c_float(sb, v);
    lw_sb_printf(sb, "%s", "f,\n");
}

static void model_block(lw_strbuf *sb, const char *which, const lw_model_config *c)
{
    const char *in = "        ";
    lw_sb_printf(sb, "    .%s = {\n", which);
    str_field(sb, in, "name", c->name);
    lw_sb_printf(sb, "%s.family = %d, .hidden = %d, .n_layers = %d, .n_heads = %d, .n_kv_heads = %d,\n", in,
                 (int)c->family, c->hidden, c->n_layers, c->n_heads, c->n_kv_heads);
    lw_sb_printf(sb, "%s.head_dim = %d, .ffn = %d, .activation = %d, .norm = %d,\n", in, c->head_dim, c->ffn,
                 (int)c->activation, (int)c->norm);
    float_field(sb, in, "norm_eps", c->norm_eps);
    float_field(sb, in, "rope_base", c->rope_base);
    float_field(sb, in, "rope_base_local", c->rope_base_local);
    lw_sb_printf(sb, "%s.rope_scaling = { .kind = %d, .factor = ", in, (int)c->rope_scaling.kind);
    lw_sb_c_float(sb, c->rope_scaling.factor);
    lw_sb_printf(sb, "%s", "f, .low_freq_factor = ");
    lw_sb_c_float(sb, c->rope_scaling.low_freq_factor);
    lw_sb_printf(sb, "%s", "f, .high_freq_factor = ");
    lw_sb_c_float(sb, c->rope_scaling.high_freq_factor);
    lw_sb_printf(sb, "f, .original_context = %d },\n", c->rope_scaling.original_context);
    lw_sb_printf(sb, "%s.sliding_window = %d, .global_every = %d, .qk_norm = %d, .post_norms = %d,\n", in,
                 c->sliding_window, c->global_every, c->qk_norm, c->post_norms);
    lw_sb_printf(sb, "%s.scale_embeddings = %d, .qkv_bias = %d, .vocab = %d, .context = %d, .tied_embeddings = %d,\n",
                 in, c->scale_embeddings, c->qkv_bias, c->vocab, c->context, c->tied_embeddings);
    float_field(sb, in, "query_scale", c->query_scale);
    float_field(sb, in, "embed_rms", c->embed_rms);
    lw_sb_printf(sb, "%s.weights_format = %d, .tokenizer_kind = %d, .chat_template = %d,\n", in,
                 (int)c->weights_format, (int)c->tokenizer_kind, (int)c->chat_template);
    str_field(sb, in, "weights_path", c->weights_path);
    str_field(sb, in, "tokenizer_path", c->tokenizer_path);
    lw_sb_printf(sb, "%s.bos_id = %d, .eos_id = %d, .pad_id = %d, .n_stop_ids = %d,\n%s.stop_ids = {", in,
                 c->bos_id, c->eos_id, c->pad_id, c->n_stop_ids, in);
    for (int i = 0; i < c->n_stop_ids && i < LW_MAX_SPECIAL; i++) lw_sb_printf(sb, "%s%d", i ? ", " : "", c->stop_ids[i]);
    lw_sb_printf(sb, "%s", "},\n    },\n");
}

static void bridge_block(lw_strbuf *sb, const lw_bridge_config *b)
{
    lw_sb_printf(sb, "    .bridge = { .kind = %d, .soft_tokens = %d, .source_layer = %d, .width = %d,\n",
                 (int)b->kind, b->soft_tokens, b->source_layer, b->width);
    lw_sb_printf(sb, "        .depth = %d, .heads = %d, .ffn_mult = %d, .calibration = %d, .dropout = ", b->depth,
                 b->heads, b->ffn_mult, (int)b->calibration);
    lw_sb_c_float(sb, b->dropout);
    lw_sb_printf(sb, "%s", "f },\n");
}

static void train_block(lw_strbuf *sb, const lw_train_config *t)
{
    lw_sb_printf(sb, "%s", "    .train = { .lr = ");
    lw_sb_c_float(sb, t->lr);
    lw_sb_printf(sb, "f, .steps = %d, .batch = %d, .grad_accum = %d, .warmup_steps = %d,\n", t->steps, t->batch,
                 t->grad_accum, t->warmup_steps);
    lw_sb_printf(sb, "%s", "        .weight_decay = ");
    lw_sb_c_float(sb, t->weight_decay);
    lw_sb_printf(sb, "%s", "f, .grad_clip = ");
    lw_sb_c_float(sb, t->grad_clip);
    lw_sb_printf(sb, "f, .seed = %lluULL, .diversity_weight = ", t->seed);
    lw_sb_c_float(sb, t->diversity_weight);
    lw_sb_printf(sb, "f, .class_balanced = %d },\n", t->class_balanced);
}

/* The optional interlingua block: only when the manifest has one, so the
 * pairs without it bake exactly what they baked before. */
static void interlingua_block(lw_strbuf *sb, const lw_manifest *m)
{
    if (!m->has_interlingua) return;
    const lw_interlingua_manifest *il = &m->interlingua;
    lw_sb_printf(sb, "%s", "    .has_interlingua = 1,\n    .interlingua = {\n");
    str_field(sb, "        ", "encoder", il->encoder);
    lw_sb_printf(sb, "        .latents = %d, .d_z = %d, .width = %d, .depth = %d, .heads = %d, .ffn_mult = %d,\n",
                 il->latents, il->d_z, il->width, il->depth, il->heads, il->ffn_mult);
    lw_sb_printf(sb, "        .adapter_ffn = %d, .max_encoder_tokens = %d, .first_token_weight = ", il->adapter_ffn,
                 il->max_encoder_tokens);
    lw_sb_c_float(sb, il->first_token_weight);
    lw_sb_printf(sb, "%s", "f },\n");
}

lw_status lw_gen_pair_runtime(const lw_manifest *m, const char *stamp, const char *nvrtc_version, lw_strbuf *out)
{
    lw_strbuf *sb = out;
    lw_sb_printf(sb, "/* Generated by lwc build: the pair's manifest baked in. Do not edit. */\n"
                     "#include \"pair.h\"\n\n"
                     "extern const lw_kernel_image lw_embedded_kernels[];\n"
                     "extern const int lw_embedded_kernel_count;\n"
                     "extern const lw_plan lw_baked_plans[2];\n"
                     "extern const lw_plan_memory lw_baked_memory[2];\n");
    bool bridge_plan = m->bridge.kind == LW_BRIDGE_PERCEIVER;   /* gen_plan.c bakes it for this kind only */
    if (bridge_plan)
        lw_sb_printf(sb, "extern const lw_bridge_plan lw_baked_bridge_plan;\n"
                         "extern const lw_bridge_memory lw_baked_bridge_memory;\n");
    lw_sb_printf(sb, "\nstatic const lw_pair the_pair = {\n  .manifest = {\n");
    str_field(sb, "    ", "name", m->name);
    str_field(sb, "    ", "path", m->path);
    model_block(sb, "sender", &m->sender);
    model_block(sb, "receiver", &m->receiver);
    bridge_block(sb, &m->bridge);
    train_block(sb, &m->train);
    interlingua_block(sb, m);
    lw_sb_printf(sb, "    .n_archs = %d, .gpu_archs = {", m->n_archs);
    for (int i = 0; i < m->n_archs && i < LW_MAX_ARCHS; i++) lw_sb_printf(sb, "%s%d", i ? ", " : "", m->gpu_archs[i]);
    lw_sb_printf(sb, "%s", "},\n  },\n  .kernels = lw_embedded_kernels,\n");
    lw_sb_printf(sb, "%s", "  .n_kernels = 0, /* set in main: the count is not a constant expression here */\n");
    str_field(sb, "  ", "build_stamp", stamp);
    str_field(sb, "  ", "lwc_version", LWC_VERSION);
    str_field(sb, "  ", "nvrtc_version", nvrtc_version);
    lw_sb_printf(sb, "%s", "  .plans = lw_baked_plans,\n  .memory = lw_baked_memory,\n");
    if (bridge_plan)
        lw_sb_printf(sb, "%s", "  .bridge_plan = &lw_baked_bridge_plan,\n  .bridge_memory = &lw_baked_bridge_memory,\n");
    lw_sb_printf(sb, "};\n\nint main(int argc, char **argv)\n{\n"
                     "    lw_pair pair = the_pair;\n"
                     "    pair.n_kernels = lw_embedded_kernel_count;\n"
                     "    return lw_main(&pair, argc, argv);\n}\n");
    return sb->failed ? lw_fail(LW_ERR_NOMEM, "out of memory generating pair_runtime.c") : LW_OK;
}

lw_status lw_gen_kernels_embed(const lw_cubin_ref *cubins, int n, lw_strbuf *out)
{
    lw_strbuf *sb = out;
    lw_sb_printf(sb, "/* Generated by lwc build: CUBINs compiled by NVRTC for this pair. */\n"
                     "#include \"pair.h\"\n\n");
    for (int i = 0; i < n; i++) {
        lw_sb_printf(sb, "static const unsigned char cubin_%d[%zu] = {", i, cubins[i].size ? cubins[i].size : 1);
        for (size_t j = 0; j < cubins[i].size; j++)
            lw_sb_printf(sb, "%s%u,", j % 24 == 0 ? "\n    " : "", cubins[i].cubin[j]);
        if (!cubins[i].size) lw_sb_printf(sb, "%s", "0");
        lw_sb_printf(sb, "%s", "\n};\n");
    }
    lw_sb_printf(sb, "\nconst lw_kernel_image lw_embedded_kernels[] = {\n");
    for (int i = 0; i < n; i++) {
        lw_sb_printf(sb, "%s", "    { ");
        lw_sb_c_string(sb, cubins[i].unit);
        lw_sb_printf(sb, ", %d, cubin_%d, %zu },\n", cubins[i].arch, i, cubins[i].size);
    }
    if (n == 0) lw_sb_printf(sb, "%s", "    { \"none\", 0, 0, 0 },\n");
    lw_sb_printf(sb, "};\nconst int lw_embedded_kernel_count = %d;\n", n);
    return sb->failed ? lw_fail(LW_ERR_NOMEM, "out of memory generating kernels_embed.c") : LW_OK;
}
