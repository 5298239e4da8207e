/* Weights and run state on the GPU; the forward pass is in gpu_forward.c. */
#include "gpu_model.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { ALIGN = 256 };                      /* cuBLAS and float4 loads like 256-byte starts */
static const size_t MARGIN = 256u << 20;   /* cuBLAS workspace, module code, allocator rounding */

lw_cuda_ptr lw_gpu_take(lw_gpu_arena *a, size_t bytes)
{
    lw_cuda_ptr p = a->base + a->used;
    a->used += (bytes + ALIGN - 1) / ALIGN * ALIGN;
    return p;
}

static double mib(size_t b) { return b / 1048576.0; }

/* Before allocating, so the message says what was asked. */
lw_status lw_gpu_check_fits(lw_cuda *cu, size_t need, const char *what, const char *model)
{
    size_t free_b = 0, total_b = 0;
    lw_status st = lw_cuda_mem_info(cu, &free_b, &total_b);
    if (st) return st;
    if (need <= free_b && free_b - need >= MARGIN) return LW_OK;
    return lw_fail(LW_ERR_NOMEM, "GPU: the %s of %s needs %.1f MiB (+ %.0f MiB margin), %s has %.1f MiB free "
                   "of %.1f MiB", what, model, mib(need), mib(MARGIN), cu->name, mib(free_b), mib(total_b));
}

/* ---- weights ----------------------------------------------------------- */

typedef struct {
    lw_cuda_ptr *dev;
    const float *host;
    size_t n;
    bool matrix;      /* a product's weight: bf16 when the model is */
} tensor_slot;

static size_t slot_bytes(const tensor_slot *t, bool bf16)
{
    return t->n * (t->matrix && bf16 ? sizeof(uint16_t) : sizeof(float));
}

/* Every tensor the model holds, with its size; NULL tensors are left out.
 * slots may be NULL (count only). A tied head is its own bf16 matrix when
 * the products are bf16 (the embedding kernel still reads the fp32 table). */
static int list_tensors(lw_gpu_model *g, const lw_model *m, bool bf16, tensor_slot *slots)
{
    const lw_model_config *c = &m->cfg;
    size_t H = (size_t)c->hidden, qd = (size_t)c->n_heads * c->head_dim;
    size_t kvd = (size_t)c->n_kv_heads * c->head_dim, F = (size_t)c->ffn, D = (size_t)c->head_dim;
    int n = 0;
#define SLOT(d, h, count, mat) \
    do { \
        if (h) { \
            if (slots) slots[n] = (tensor_slot){d, h, count, mat}; \
            n++; \
        } \
    } while (0)
    SLOT(g ? &g->token_embd : NULL, m->token_embd, (size_t)c->vocab * H, false);
    SLOT(g ? &g->output_norm : NULL, m->output_norm, H, false);
    if (m->output != m->token_embd || bf16) SLOT(g ? &g->output : NULL, m->output, (size_t)c->vocab * H, true);
    for (int l = 0; l < c->n_layers; l++) {
        const lw_layer_weights *L = &m->layers[l];
        lw_gpu_layer *G = g ? &g->layers[l] : NULL;
        SLOT(G ? &G->attn_norm : NULL, L->attn_norm, H, false);
        SLOT(G ? &G->wq : NULL, L->wq, qd * H, true);
        SLOT(G ? &G->wk : NULL, L->wk, kvd * H, true);
        SLOT(G ? &G->wv : NULL, L->wv, kvd * H, true);
        SLOT(G ? &G->bqkv : NULL, c->qkv_bias ? L->bqkv : NULL, qd + 2 * kvd, false);
        SLOT(G ? &G->wo : NULL, L->wo, H * qd, true);
        SLOT(G ? &G->q_norm : NULL, c->qk_norm ? L->q_norm : NULL, D, false);
        SLOT(G ? &G->k_norm : NULL, c->qk_norm ? L->k_norm : NULL, D, false);
        SLOT(G ? &G->post_attn_norm : NULL, c->post_norms ? L->post_attn_norm : NULL, H, false);
        SLOT(G ? &G->ffn_norm : NULL, L->ffn_norm, H, false);
        SLOT(G ? &G->w_gate : NULL, L->w_gate, F * H, true);
        SLOT(G ? &G->w_up : NULL, L->w_up, F * H, true);
        SLOT(G ? &G->w_down : NULL, L->w_down, H * F, true);
        SLOT(G ? &G->post_ffn_norm : NULL, c->post_norms ? L->post_ffn_norm : NULL, H, false);
    }
#undef SLOT
    return n;
}

size_t lw_gpu_model_weight_bytes(const lw_model *m, lw_weight_dtype dtype)
{
    bool bf16 = dtype == LW_DTYPE_BF16;
    int n = list_tensors(NULL, m, bf16, NULL);
    tensor_slot *slots = calloc((size_t)n, sizeof *slots);
    if (!slots) return SIZE_MAX;
    list_tensors(NULL, m, bf16, slots);
    lw_gpu_arena a = {0};
    for (int i = 0; i < n; i++) lw_gpu_take(&a, slot_bytes(&slots[i], bf16));
    free(slots);
    return a.used;
}

const char *lw_gpu_dtype_name(lw_weight_dtype dtype) { return dtype == LW_DTYPE_BF16 ? "bf16" : "fp32"; }

bool lw_gpu_dtype_parse(const char *s, lw_weight_dtype *out)
{
    if (s && !strcmp(s, "fp32")) *out = LW_DTYPE_F32;
    else if (s && !strcmp(s, "bf16")) *out = LW_DTYPE_BF16;
    else return false;
    return true;
}

/* The one place the CUDA backend refuses what it has no kernel for
 * (gpu_model.h); the upload and the executor (plan_cuda.c) call it. */
lw_status lw_gpu_check_plan(const lw_plan *p, const lw_model_config *c)
{
    const char *name = c->name;
    for (int i = 0; i < p->n_ops; i++)
        if (p->ops[i].b != LW_W_NONE && (p->ops[i].w != LW_W_WQKV || p->ops[i].b != LW_W_BQKV))
            return lw_fail(LW_ERR_UNSUPPORTED, "CUDA backend, %s: block op %d (%s) adds a bias %s (family %s); the "
                           "CUDA executor adds only the q/k/v projection's (bqkv): run it on the CPU", name, i,
                           lw_op_kind_name(p->ops[i].kind), lw_plan_weight_name(p->ops[i].b),
                           lw_family_name(c->family));
    if (p->n_layers != c->n_layers)
        return lw_fail(LW_ERR_INVALID, "CUDA backend, %s: the plan has %d layers, the model %d", name, p->n_layers,
                       c->n_layers);
    for (int i = 0; i < p->n_ops; i++) {
        const lw_plan_op *op = &p->ops[i];
        bool ok = true;
        if (op->kind == LW_OP_RMSNORM) ok = op->rows == 1 ? op->width == c->hidden : op->width == c->head_dim;
        if (op->kind == LW_OP_ROPE || op->kind == LW_OP_ATTENTION) ok = op->head_dim == c->head_dim;
        if (!ok)
            return lw_fail(LW_ERR_INVALID, "CUDA backend, %s: block op %d (%s) has width %d / head_dim %d, which the "
                           "kernels built for this model (hidden %d, head_dim %d) do not take", name, i,
                           lw_op_kind_name(op->kind), op->width, op->head_dim, c->hidden, c->head_dim);
    }
    return LW_OK;
}

/* What the kernels cannot do yet, refused before anything is uploaded. */
static lw_status check_config(const lw_model *m)
{
    const lw_model_config *c = &m->cfg;
    if (c->head_dim <= 0 || c->head_dim % 2 || c->head_dim / 2 > 1024)
        return lw_fail(LW_ERR_UNSUPPORTED, "GPU %s: head_dim %d (rope_apply needs an even head_dim <= 2048)",
                       c->name, c->head_dim);
    if (!m->token_embd || !m->output_norm || !m->output)
        return lw_fail(LW_ERR_INVALID, "GPU %s: the model has no embedding, final norm or output head", c->name);
    /* What the CUDA backend has no kernel for, refused in its one place
     * before anything is uploaded (forward, generation, the training pass) */
    lw_plan plan;
    lw_plan_lower(c, &plan);
    lw_status st = lw_gpu_check_plan(&plan, c);
    if (st) return st;
    for (int l = 0; l < c->n_layers; l++) {
        const lw_layer_weights *L = &m->layers[l];
        bool missing = !L->attn_norm || !L->wq || !L->wk || !L->wv || !L->wo || !L->ffn_norm || !L->w_gate ||
                       !L->w_up || !L->w_down || (c->qk_norm && (!L->q_norm || !L->k_norm)) ||
                       (c->qkv_bias && !L->bqkv) || (c->post_norms && (!L->post_attn_norm || !L->post_ffn_norm));
        if (missing) return lw_fail(LW_ERR_INVALID, "GPU %s: layer %d lacks a tensor its config needs", c->name, l);
    }
    return LW_OK;
}

static lw_status upload_one(lw_gpu_model *g, const tensor_slot *t)
{
    if (t->matrix && g->bf16) return lw_cuda_upload_bf16(g->cu, *t->dev, t->host, t->n, "model weights (bf16)");
    return lw_cuda_upload(g->cu, *t->dev, t->host, t->n * sizeof(float), "model weights");
}

static lw_status upload_weights(lw_gpu_model *g, const lw_model *m)
{
    int n = list_tensors(g, m, g->bf16, NULL);
    tensor_slot *slots = calloc((size_t)n, sizeof *slots);
    if (!slots) return lw_fail(LW_ERR_NOMEM, "GPU %s: out of memory", m->cfg.name);
    list_tensors(g, m, g->bf16, slots);
    lw_gpu_arena a = {0};
    for (int i = 0; i < n; i++) lw_gpu_take(&a, slot_bytes(&slots[i], g->bf16));
    g->weight_bytes = a.used;
    lw_status st = lw_gpu_check_fits(g->cu, a.used, g->bf16 ? "bf16 weights" : "fp32 weights", m->cfg.name);
    if (!st) st = lw_cuda_alloc(g->cu, a.used, "model weights", &g->weights);
    a = (lw_gpu_arena){.base = g->weights};
    for (int i = 0; !st && i < n; i++) {
        *slots[i].dev = lw_gpu_take(&a, slot_bytes(&slots[i], g->bf16));
        st = upload_one(g, &slots[i]);
    }
    if (m->output == m->token_embd && !g->bf16) g->output = g->token_embd;
    free(slots);
    return st;
}

lw_status lw_gpu_model_upload_dtype(lw_cuda *cu, lw_cublas *blas, const lw_cuda_module *mod, const lw_model *m,
                                    lw_weight_dtype dtype, lw_gpu_model **out)
{
    *out = NULL;
    if (dtype != LW_DTYPE_F32 && dtype != LW_DTYPE_BF16)
        return lw_fail(LW_ERR_INVALID, "GPU %s: weight dtype %d (fp32 or bf16)", m->cfg.name, (int)dtype);
    lw_status st = check_config(m);
    if (st) return st;
    lw_gpu_model *g = calloc(1, sizeof *g);
    if (g) g->layers = calloc((size_t)m->cfg.n_layers, sizeof *g->layers);
    if (!g || !g->layers) {
        free(g);
        return lw_fail(LW_ERR_NOMEM, "GPU %s: out of memory", m->cfg.name);
    }
    g->cfg = m->cfg;
    g->cu = cu;
    g->blas = blas;
    g->bf16 = dtype == LW_DTYPE_BF16;
    lw_plan_lower(&g->cfg, &g->plan);
    /* Every kernel of the table's model unit: the module was generated from the same table. */
    st = lw_model_kernels_find(cu, mod, &g->k);
    if (!st) st = upload_weights(g, m);
    if (st) {
        lw_gpu_model_free(g);
        return st;
    }
    *out = g;
    return LW_OK;
}

lw_status lw_gpu_model_upload(lw_cuda *cu, lw_cublas *blas, const lw_cuda_module *mod, const lw_model *m,
                              lw_gpu_model **out)
{
    return lw_gpu_model_upload_dtype(cu, blas, mod, m, LW_DTYPE_F32, out);
}

void lw_gpu_model_free(lw_gpu_model *g)
{
    if (!g) return;
    lw_cuda_free(g->cu, g->weights);
    free(g->layers);
    free(g);
}

/* ---- run state ----------------------------------------------------------- */

/* Places every buffer of s in a (measuring when a->base is 0): the plan's
 * activation arena (s->memory, laid out before), the KV cache, the logits
 * and the executor's scratch. */
static void place_state(lw_gpu_state *s, const lw_model_config *c, bool bf16, lw_gpu_arena *a)
{
    size_t T = (size_t)s->chunk, H = (size_t)c->hidden, qd = (size_t)c->n_heads * c->head_dim;
    size_t kvd = (size_t)c->n_kv_heads * c->head_dim, F = (size_t)c->ffn, f = sizeof(float);
    size_t kv = (size_t)c->n_layers * (size_t)s->max_tokens * kvd * f;
    s->acts = lw_gpu_take(a, (size_t)s->memory.bytes);
    s->slots = s->top = (lw_cuda_plan_acts){0};
    if (a->base) lw_cuda_plan_carve_acts(&s->memory, s->acts, 0, &s->slots, &s->top);
    s->key_cache = lw_gpu_take(a, kv);
    s->value_cache = lw_gpu_take(a, kv);
    s->logits = lw_gpu_take(a, T * (size_t)c->vocab * f);
    size_t widest = H > qd ? H : qd;
    if (F > widest) widest = F;
    s->xb = bf16 ? lw_gpu_take(a, T * widest * sizeof(uint16_t)) : 0;
    s->ids = lw_gpu_take(a, T * sizeof(int));
    s->pos = lw_gpu_take(a, T * sizeof(int));
    s->seg = lw_gpu_take(a, T * sizeof(int));
}

lw_status lw_gpu_state_alloc(lw_gpu_model *g, int max_tokens, lw_gpu_state **out)
{
    *out = NULL;
    const lw_model_config *c = &g->cfg;
    if (max_tokens <= 0 || max_tokens > (1 << 20) || (c->context > 0 && max_tokens > c->context))
        return lw_fail(LW_ERR_INVALID, "GPU %s: state of %d tokens (context %d)", c->name, max_tokens, c->context);
    lw_gpu_state *s = calloc(1, sizeof *s);
    if (!s) return lw_fail(LW_ERR_NOMEM, "GPU %s: out of memory for state", c->name);
    s->cu = g->cu;
    s->max_tokens = max_tokens;
    s->chunk = max_tokens < LW_CHUNK_ROWS ? max_tokens : LW_CHUNK_ROWS;
    s->ids_host = calloc((size_t)s->chunk, sizeof(int));
    s->pos_host = calloc((size_t)s->chunk, sizeof(int));
    s->seg_host = calloc((size_t)s->chunk, sizeof(int));
    /* the activations: the plan's memory plan for chunk rows, forward only, the kernels' log-sum-exp */
    lw_plan_shape shape = {.rows = s->chunk, .att_rows = s->chunk, .kv_len = max_tokens, .lse = true};
    lw_status st = lw_plan_memory_layout(&g->plan, &shape, &s->memory);
    if (!st) st = lw_cuda_plan_memory_check(c, &s->memory);
    lw_gpu_arena a = {0};
    place_state(s, c, g->bf16, &a);
    s->bytes = a.used;
    bool staged = s->ids_host && s->pos_host && s->seg_host;
    if (!st && !staged) st = lw_fail(LW_ERR_NOMEM, "GPU %s: out of memory", c->name);
    if (!st) st = lw_gpu_check_fits(g->cu, s->bytes, "KV cache and activations", c->name);
    if (!st) st = lw_cuda_alloc(g->cu, s->bytes, "KV cache and activations", &s->arena);
    /* Zeroed, so a bug that reads an unwritten cache row reads zeros, not NaN. */
    if (!st) st = lw_cuda_memset0(g->cu, s->arena, s->bytes, "KV cache and activations");
    if (st) {
        lw_gpu_state_free(s);
        return st;
    }
    a = (lw_gpu_arena){.base = s->arena};
    place_state(s, c, g->bf16, &a);
    *out = s;
    return LW_OK;
}

void lw_gpu_state_free(lw_gpu_state *s)
{
    if (!s) return;
    if (s->cu) lw_cuda_free(s->cu, s->arena);
    free(s->ids_host);
    free(s->pos_host);
    free(s->seg_host);
    free(s);
}
