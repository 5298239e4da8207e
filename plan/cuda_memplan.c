/* GPU memory plan from the manifest; see cuda_memplan.h for what is counted. */
#include "cuda_memplan.h"

#include <inttypes.h>
#include <stdbool.h>
#include <string.h>

/* Checked arithmetic: a manifest is untrusted, and a wrapped byte count would
 * make a plan that "fits". *ok goes false and stays false on overflow. */
static uint64_t mul(uint64_t a, uint64_t b, int *ok)
{
    uint64_t r;
    if (__builtin_mul_overflow(a, b, &r)) *ok = 0;
    return r;
}

static uint64_t add(uint64_t a, uint64_t b, int *ok)
{
    uint64_t r;
    if (__builtin_add_overflow(a, b, &r)) *ok = 0;
    return r;
}

static lw_status check_dims(const lw_model_config *c)
{
    if (c->hidden < 1 || c->n_layers < 1 || c->n_heads < 1 || c->n_kv_heads < 1 || c->head_dim < 1 ||
        c->ffn < 1 || c->vocab < 1)
        return lw_fail(LW_ERR_INVALID, "memory plan for %s: hidden %d, layers %d, heads %d, kv heads %d, "
                       "head_dim %d, ffn %d and vocab %d must all be positive", c->name, c->hidden, c->n_layers,
                       c->n_heads, c->n_kv_heads, c->head_dim, c->ffn, c->vocab);
    return LW_OK;
}

lw_status lw_memplan_weights(const lw_model_config *c, lw_weights_plan *out)
{
    lw_status st = check_dims(c);
    if (st) return st;
    int ok = 1;
    uint64_t H = (uint64_t)c->hidden, F = (uint64_t)c->ffn, V = (uint64_t)c->vocab, D = (uint64_t)c->head_dim;
    uint64_t q = (uint64_t)c->n_heads * D, kv = (uint64_t)c->n_kv_heads * D;
    uint64_t attn = mul(H, add(mul(2, q, &ok), mul(2, kv, &ok), &ok), &ok);   /* q, o, k, v */
    uint64_t ffn = mul(3, mul(H, F, &ok), &ok);                                /* gate, up, down */
    uint64_t norms = add(mul(c->post_norms ? 4 : 2, H, &ok), c->qk_norm ? 2 * D : 0, &ok);
    out->embed = mul(V, H, &ok);
    out->output = c->tied_embeddings ? 0 : out->embed;
    out->per_layer = add(add(attn, ffn, &ok), norms, &ok);
    out->final_norm = H;
    out->total = add(add(out->embed, out->output, &ok),
                     add(mul(out->per_layer, (uint64_t)c->n_layers, &ok), out->final_norm, &ok), &ok);
    out->bytes_bf16 = mul(out->total, 2, &ok);
    out->bytes_f32 = mul(out->total, 4, &ok);
    if (!ok) return lw_fail(LW_ERR_INVALID, "memory plan for %s: the parameter count overflows 64 bits", c->name);
    return LW_OK;
}

lw_status lw_memplan_bridge_params(const lw_bridge_config *b, int sender_hidden, int receiver_hidden,
                                   uint64_t *out)
{
    int perceiver = b->kind == LW_BRIDGE_PERCEIVER;
    lw_status st = lw_bridge_config_check(b, sender_hidden, receiver_hidden);
    if (st) return lw_fail_wrap(st, "memory plan");
    uint64_t S = (uint64_t)sender_hidden, R = (uint64_t)receiver_hidden, d = (uint64_t)b->width;
    uint64_t M = (uint64_t)b->soft_tokens, F = (uint64_t)b->ffn_mult * d, n;
    if (perceiver) {
        /* per block: 4 LayerNorms (w, b): query and key/value side of the
         * cross attention, self attention, FFN; 8 d x d projections; fc1
         * and fc2 with biases */
        uint64_t block = 4 * 2 * d + 8 * d * d + (F * d + F) + (d * F + d);
        n = (d * S + d) + M * d + (uint64_t)b->depth * block + 2 * d + (R * d + R);
    } else if (b->kind == LW_BRIDGE_MLP) {
        n = (d * S + d) + (M * R * d + M * R);
    } else {
        n = M * R * S + M * R;
    }
    /* With the bounds checked above no product here exceeds 2^47. The two
     * input-standardisation buffers (mean, std over the sender width) are
     * stored with the parameters. */
    *out = n + 2 * S + (b->calibration == LW_CALIB_RMS ? 1 : 0);
    return LW_OK;
}

/* lora.c's lw_lora_layer_on and target_dims, over the config alone. */
static bool lora_layer_on(const lw_lora_config *c, int l)
{
    if (c->first_layers > 0) return l < c->first_layers;
    if (c->n_layer_list == 0) return true;
    for (int i = 0; i < c->n_layer_list; i++)
        if (c->layer_list[i] == l) return true;
    return false;
}

/* in + out of target t (q, k, v, o, gate, up, down) of a layer of c */
static uint64_t lora_target_width(const lw_model_config *c, int t)
{
    uint64_t H = (uint64_t)c->hidden, qd = (uint64_t)c->n_heads * c->head_dim, F = (uint64_t)c->ffn;
    uint64_t kvd = (uint64_t)c->n_kv_heads * c->head_dim;
    static const int in_hidden[7] = {1, 1, 1, 0, 1, 1, 0};
    uint64_t in = in_hidden[t] ? H : t == 3 ? qd : F;
    uint64_t out = t == 0 ? qd : t == 1 || t == 2 ? kvd : t == 3 || t == 6 ? H : F;
    return in + out;
}

lw_status lw_memplan_adapters(const lw_model_config *r, const lw_lora_config *lora,
                              const lw_deep_prefix_config *dp, lw_adapters_plan *out)
{
    memset(out, 0, sizeof *out);
    lw_status st = check_dims(r);
    if (st) return st;
    if (lora) {
        if (lora->rank < 1 || lora->rank > 1024 || lora->first_layers < 0 || lora->first_layers > r->n_layers)
            return lw_fail(LW_ERR_INVALID, "memory plan for %s: lora rank %d (1..1024), first %d layers (0..%d)",
                           r->name, lora->rank, lora->first_layers, r->n_layers);
        for (int l = 0; l < r->n_layers; l++) {
            if (!lora_layer_on(lora, l)) continue;
            for (int t = 0; t < 7; t++)
                if (lora->targets & (1u << t)) out->lora_params += (uint64_t)lora->rank * lora_target_width(r, t);
        }
        out->lora_rank = (uint64_t)lora->rank;
    }
    if (dp) {
        if (dp->length < 1 || dp->length > 256 || dp->hidden < 1 || dp->hidden > 65536)
            return lw_fail(LW_ERR_INVALID, "memory plan for %s: deep prefix length %d (1..256), hidden %d "
                           "(1..65536)", r->name, dp->length, dp->hidden);
        uint64_t R = (uint64_t)r->hidden, d = (uint64_t)dp->hidden, P = (uint64_t)dp->length;
        uint64_t kvd = (uint64_t)r->n_kv_heads * r->head_dim, L = (uint64_t)r->n_layers;
        /* norm w, b; in_proj + b; positions; fc1 + b; fc2 + b; every layer's key and value [kvd, d] */
        out->prefix_params = 2 * R + (d * R + d) + P * d + 2 * (d * d + d) + L * 2 * kvd * d;
        out->prefix_kv = L * 2 * P * kvd;
    }
    return LW_OK;   /* sizes bounded above (2^20 wide, 1024 rank, 256 P): no overflow in 64 bits */
}

/* The plan's count (plan.h): the slots its training layout keeps per layer
 * for backward, and the layer's cache rows, per token, with attention
 * keeping one log-sum-exp per head (the GPU kernels) rather than the
 * probabilities. One memory plan: the CPU state lays out the same slots. */
uint64_t lw_memplan_layer_floats(const lw_model_config *c)
{
    lw_plan p;
    lw_plan_lower(c, &p);
    lw_plan_memory mem;
    lw_plan_shape one_token = {.rows = 1, .att_rows = 1, .kv_len = 1, .training = true, .lse = true};
    if (lw_plan_memory_layout(&p, &one_token, &mem) != LW_OK) return 0;   /* not for one row of a valid config */
    return lw_plan_memory_saved_elems(&mem);
}

/* The plan's gradient slots (lw_plan_grad_layout) per token, each counted
 * apart: the GPU training pass gives every slot its own buffer. */
uint64_t lw_memplan_grad_floats(const lw_model_config *c)
{
    lw_plan p;
    lw_plan_lower(c, &p);
    lw_plan_grad_memory mem;
    if (lw_plan_grad_layout(&p, 1, &mem) != LW_OK) return 0;   /* not for one row */
    return lw_plan_grad_elems(&mem);
}

/* Bytes of n fp32 values per token over batch x T tokens. */
static uint64_t f32_tokens(uint64_t floats_per_token, uint64_t batch, uint64_t T, int *ok)
{
    return mul(mul(floats_per_token, 4, ok), mul(batch, T, ok), ok);
}

lw_status lw_memplan_compute(const lw_manifest *m, int batch, int seq, lw_weight_dtype weights_dtype,
                             lw_memplan *out)
{
    if (batch < 1 || batch > (1 << 20) || seq < 1 || seq > (1 << 20))
        return lw_fail(LW_ERR_INVALID, "memory plan for %s: batch %d and sequence length %d must be 1..2^20",
                       m->name, batch, seq);
    lw_memplan p = {.batch = batch, .seq = seq, .weights_dtype = weights_dtype};
    lw_status st = lw_memplan_weights(&m->sender, &p.sender);
    if (!st) st = lw_memplan_weights(&m->receiver, &p.receiver);
    if (!st) st = lw_memplan_bridge_params(&m->bridge, m->sender.hidden, m->receiver.hidden, &p.bridge_params);
    if (st) return lw_fail_wrap(st, "%s", m->path);
    const lw_model_config *s = &m->sender, *r = &m->receiver;
    int ok = 1;
    uint64_t B = (uint64_t)batch, Ts = (uint64_t)seq, Tr = Ts + (uint64_t)m->bridge.soft_tokens;
    int bf16 = weights_dtype == LW_DTYPE_BF16;
    p.weights = add(bf16 ? p.sender.bytes_bf16 : p.sender.bytes_f32,
                    bf16 ? p.receiver.bytes_bf16 : p.receiver.bytes_f32, &ok);

    /* training */
    uint64_t s_layer = lw_memplan_layer_floats(s), r_layer = lw_memplan_layer_floats(r);
    p.sender_acts = f32_tokens(s_layer + (uint64_t)s->hidden, B, Ts, &ok);
    /* every layer's saved values, the backward's gradient slots, x and rstd_final, logits and dlogits */
    uint64_t r_per_token = add(add(mul(r_layer, (uint64_t)r->n_layers, &ok), lw_memplan_grad_floats(r), &ok),
                               (uint64_t)r->hidden + 1 + 2 * (uint64_t)r->vocab, &ok);
    p.receiver_acts = f32_tokens(r_per_token, B, Tr, &ok);
    p.bridge_bytes = mul(p.bridge_params, 4 * 4, &ok);
    st = lw_memplan_adapters(r, m->has_lora ? &m->lora : NULL, m->has_deep_prefix ? &m->deep_prefix : NULL,
                             &p.adapters);
    if (st) return lw_fail_wrap(st, "%s", m->path);
    const lw_adapters_plan *a = &p.adapters;
    uint64_t adapter_params = add(a->lora_params, a->prefix_params, &ok);
    /* params, grads, m, v; u and du over every row of the pass; K/V and their gradients per example */
    p.adapter_bytes = add(add(mul(adapter_params, 4 * 4, &ok), f32_tokens(2 * a->lora_rank, B, Tr, &ok), &ok),
                          mul(mul(a->prefix_kv, 2 * 4, &ok), B, &ok), &ok);
    p.adapter_generate = add(mul(adapter_params, 4, &ok), mul(mul(a->prefix_kv, 4, &ok), B, &ok), &ok);
    p.total_train = add(add(add(p.weights, p.bridge_bytes, &ok), add(p.sender_acts, p.receiver_acts, &ok), &ok),
                        p.adapter_bytes, &ok);

    /* generation */
    uint64_t s_kv = mul(2 * (uint64_t)s->n_layers, (uint64_t)s->n_kv_heads * (uint64_t)s->head_dim, &ok);
    uint64_t r_kv = mul(2 * (uint64_t)r->n_layers, (uint64_t)r->n_kv_heads * (uint64_t)r->head_dim, &ok);
    p.kv_cache = add(f32_tokens(s_kv, B, Ts, &ok), f32_tokens(r_kv, B, Tr, &ok), &ok);
    p.generate_acts = add(add(f32_tokens(s_layer, B, Ts, &ok), f32_tokens(r_layer, B, Tr, &ok), &ok),
                          f32_tokens((uint64_t)s->vocab + (uint64_t)r->vocab, B, 1, &ok), &ok);
    p.total_generate = add(add(add(p.weights, mul(p.bridge_params, 4, &ok), &ok),
                               add(p.kv_cache, p.generate_acts, &ok), &ok),
                           p.adapter_generate, &ok);
    p.total = p.total_train > p.total_generate ? p.total_train : p.total_generate;
    if (!ok)
        return lw_fail(LW_ERR_INVALID, "memory plan for %s: batch %d x sequence %d overflows 64-bit byte counts",
                       m->name, batch, seq);
    *out = p;
    return LW_OK;
}

static double gib(uint64_t bytes) { return (double)bytes / 1073741824.0; }

static uint64_t margin(uint64_t total)
{
    uint64_t m = total / 20, floor = 256ull << 20;
    return m > floor ? m : floor;
}

lw_status lw_memplan_check_fits(const lw_memplan *p, uint64_t free_bytes)
{
    uint64_t need = p->total + margin(p->total);
    if (need >= p->total && need <= free_bytes) return LW_OK;
    return lw_fail(LW_ERR_UNSUPPORTED,
                   "does not fit on the GPU: needs %.2f GiB (weights %.2f at %s, training activations %.2f, "
                   "bridge + AdamW %.2f, adapters %.2f, KV cache %.2f, plus a %.2f GiB margin) but %.2f GiB is free; "
                   "lower --batch (now %d) or the sequence length (now %d)%s",
                   gib(need), gib(p->weights), p->weights_dtype == LW_DTYPE_BF16 ? "bf16" : "fp32",
                   gib(p->sender_acts + p->receiver_acts), gib(p->bridge_bytes), gib(p->adapter_bytes),
                   gib(p->kv_cache),
                   gib(margin(p->total)), gib(free_bytes), p->batch, p->seq,
                   p->weights_dtype == LW_DTYPE_F32 ? ", or keep the weights in bf16" : "");
}

static void print_model(FILE *out, const char *role, const char *name, const lw_weights_plan *w)
{
    fprintf(out, "  %-8s %-28s %14" PRIu64 " params  bf16 %8.2f GiB  fp32 %8.2f GiB\n", role, name, w->total,
            gib(w->bytes_bf16), gib(w->bytes_f32));
}

lw_status lw_memplan_print(const lw_manifest *m, int batch, int seq, FILE *out)
{
    lw_memplan bf, f32;
    lw_status st = lw_memplan_compute(m, batch, seq, LW_DTYPE_BF16, &bf);
    if (!st) st = lw_memplan_compute(m, batch, seq, LW_DTYPE_F32, &f32);
    if (st) return st;
    fprintf(out, "memory plan: batch %d x %d tokens (receiver %d with the soft tokens)\n", batch, seq,
            seq + m->bridge.soft_tokens);
    print_model(out, "sender", m->sender.name, &bf.sender);
    print_model(out, "receiver", m->receiver.name, &bf.receiver);
    fprintf(out, "  bridge   %" PRIu64 " params; with grads and AdamW state %.3f GiB\n", bf.bridge_params,
            gib(bf.bridge_bytes));
    fprintf(out, "  training activations: sender %.3f GiB, receiver %.3f GiB\n", gib(bf.sender_acts),
            gib(bf.receiver_acts));
    if (bf.adapters.lora_params || bf.adapters.prefix_params)
        fprintf(out, "  adapters: LoRA %" PRIu64 " params (rank %" PRIu64 "), deep prefix %" PRIu64 " params; "
                "training %.3f GiB, generation %.3f GiB\n", bf.adapters.lora_params, bf.adapters.lora_rank,
                bf.adapters.prefix_params, gib(bf.adapter_bytes), gib(bf.adapter_generate));
    fprintf(out, "  generation: KV cache %.3f GiB, working set %.3f GiB\n", gib(bf.kv_cache), gib(bf.generate_acts));
    fprintf(out, "  total with bf16 weights: train %.2f GiB, generate %.2f GiB\n", gib(bf.total_train),
            gib(bf.total_generate));
    fprintf(out, "  total with fp32 weights: train %.2f GiB, generate %.2f GiB\n", gib(f32.total_train),
            gib(f32.total_generate));
    return LW_OK;
}
