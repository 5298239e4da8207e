#include "gen_kernels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "kernel_table.h"
#include "template.h"

/* Reads templates_dir/name and renders it with tv (tv may be NULL for a
 * file without placeholders) onto out. A kernel template (unit "model" or
 * "bridge"; NULL for the others) must first agree with the kernel table,
 * which the host's launchers were generated from. */
static lw_status append_template(const char *templates_dir, const char *name, const char *unit,
                                 const lw_template_vars *tv, lw_strbuf *out)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/%s", templates_dir, name);
    char *text;
    lw_status st = lw_read_file(path, &text, NULL);
    if (st != LW_OK) return lw_fail_wrap(st, "reading kernel template");
    if (unit && (st = lw_kernel_table_check_template(path, text, unit))) {
        free(text);
        return st;
    }
    lw_template_vars none = {0};
    st = lw_template_render(path, text, tv ? tv : &none, out);
    free(text);
    return st;
}

static void model_vars(lw_template_vars *tv, const lw_model_config *m, int soft_tokens)
{
    lw_tv_int(tv, "HIDDEN", m->hidden);
    lw_tv_int(tv, "N_LAYERS", m->n_layers);
    lw_tv_int(tv, "N_HEADS", m->n_heads);
    lw_tv_int(tv, "N_KV_HEADS", m->n_kv_heads);
    lw_tv_int(tv, "GQA_RATIO", m->n_heads / m->n_kv_heads);
    lw_tv_int(tv, "HEAD_DIM", m->head_dim);
    lw_tv_int(tv, "FFN", m->ffn);
    lw_tv_int(tv, "VOCAB", m->vocab);
    lw_tv_float(tv, "NORM_EPS", m->norm_eps);
    lw_tv_int(tv, "NORM_GEMMA", m->norm == LW_NORM_RMSNORM_GEMMA);
    lw_tv_int(tv, "ACT_GELU", m->activation == LW_ACT_GELU_TANH);
    lw_tv_float(tv, "ROPE_BASE", m->rope_base);
    lw_tv_float(tv, "ROPE_BASE_LOCAL", m->rope_base_local > 0 ? m->rope_base_local : m->rope_base);
    lw_tv_int(tv, "ROPE_INTERLEAVED", lw_rope_interleaved(m));
    lw_tv_int(tv, "ROPE_SCALING", m->rope_scaling.kind == LW_ROPE_SCALING_LINEAR ? 1
                                  : m->rope_scaling.kind == LW_ROPE_SCALING_LLAMA3 ? 2 : 0);
    lw_tv_float(tv, "ROPE_FACTOR", m->rope_scaling.factor > 0 ? m->rope_scaling.factor : 1.f);
    lw_tv_float(tv, "ROPE_LOW_FREQ", m->rope_scaling.low_freq_factor > 0 ? m->rope_scaling.low_freq_factor : 1.f);
    lw_tv_float(tv, "ROPE_HIGH_FREQ", m->rope_scaling.high_freq_factor > 0 ? m->rope_scaling.high_freq_factor : 4.f);
    lw_tv_int(tv, "ROPE_ORIG_CTX", m->rope_scaling.original_context > 0 ? m->rope_scaling.original_context : 8192);
    lw_tv_int(tv, "SLIDING_WINDOW", m->sliding_window);
    lw_tv_int(tv, "QK_NORM", m->qk_norm);
    lw_tv_float(tv, "ATTN_SCALE", m->query_scale > 0 ? m->query_scale : 1.f / sqrtf((float)m->head_dim));
    lw_tv_float(tv, "EMBED_SCALE", m->scale_embeddings ? sqrtf((float)m->hidden) : 1.f);
    lw_tv_float(tv, "EMBED_RMS", m->embed_rms);
    lw_tv_int(tv, "SOFT_TOKENS", soft_tokens);
}

lw_status lw_gen_model_kernels(const char *templates_dir, const lw_model_config *m, int soft_tokens,
                               lw_strbuf *out)
{
    lw_template_vars tv = {0};
    model_vars(&tv, m, soft_tokens);
    lw_status st = append_template(templates_dir, "model_constants.cuh.in", NULL, &tv, out);
    if (st == LW_OK) st = append_template(templates_dir, "common.cuh", NULL, NULL, out);
    if (st == LW_OK) st = append_template(templates_dir, "model_kernels.cu.in", "model", &tv, out);
    if (st == LW_OK) st = lw_kernel_table_type_checks("model", out);
    return st;
}

lw_status lw_gen_bridge_kernels(const char *templates_dir, const lw_manifest *m, lw_strbuf *out)
{
    const lw_bridge_config *b = &m->bridge;
    lw_template_vars tv = {0};
    lw_tv_int(&tv, "SEND_HIDDEN", m->sender.hidden);
    lw_tv_int(&tv, "RECV_HIDDEN", m->receiver.hidden);
    lw_tv_int(&tv, "BRIDGE_WIDTH", b->width);
    lw_tv_int(&tv, "BRIDGE_HEADS", b->heads);
    lw_tv_int(&tv, "BRIDGE_HEAD_DIM", b->width / b->heads);
    lw_tv_int(&tv, "BRIDGE_FFN", (long long)b->width * b->ffn_mult);
    lw_tv_int(&tv, "SOFT_TOKENS", b->soft_tokens);
    lw_tv_int(&tv, "CALIBRATE_RMS", b->calibration == LW_CALIB_RMS);
    lw_status st = append_template(templates_dir, "bridge_constants.cuh.in", NULL, &tv, out);
    if (st == LW_OK) st = append_template(templates_dir, "common.cuh", NULL, NULL, out);
    if (st == LW_OK) st = append_template(templates_dir, "bridge_kernels.cu.in", "bridge", &tv, out);
    if (st == LW_OK) st = lw_kernel_table_type_checks("bridge", out);
    return st;
}
