/* The memory plan (plan.h): each slot's dtype, size and byte offset in one
 * arena, from the slots' lifetimes in the block. The block runs the same op
 * list for every layer, so one layer's lifetimes decide the layout: a slot
 * is live from the op that first writes it to the last op whose forward
 * reads it, and two slots whose live ranges do not meet may share bytes.
 * Training keeps, for every layer, what backward reads; those slots are
 * never shared. The rules of what each op kind reads and writes mirror
 * op_forward / op_backward in runtime/model/plan_cpu.c. */
#include "plan.h"

#include <string.h>

lw_plan_dtype lw_plan_weight_dtype(lw_plan_weight w, lw_weights_dtype d)
{
    if (d != LW_WEIGHTS_BF16) return LW_PLAN_F32;
    switch (w) {
    case LW_W_WQKV: case LW_W_WQ: case LW_W_WK: case LW_W_WV: case LW_W_WO: case LW_W_GATE_UP: case LW_W_GATE:
    case LW_W_UP: case LW_W_DOWN: case LW_W_OUTPUT:
        return LW_PLAN_BF16;
    default: return LW_PLAN_F32;   /* norms, biases, the embedding table */
    }
}

unsigned lw_plan_dtype_bytes(lw_plan_dtype d)
{
    return d == LW_PLAN_BF16 ? 2 : d == LW_PLAN_Q8 ? 1 : 4;
}

const char *lw_plan_dtype_name(lw_plan_dtype d)
{
    static const char *const names[LW_PLAN_DTYPE_COUNT] = {[LW_PLAN_F32] = "f32", [LW_PLAN_BF16] = "bf16",
                                                           [LW_PLAN_Q8] = "q8"};
    return (unsigned)d < LW_PLAN_DTYPE_COUNT ? names[d] : "?";
}

const char *lw_plan_mem_where_name(lw_plan_mem_where w)
{
    static const char *const names[] = {"none", "pinned", "shared", "layer", "cache"};
    return (unsigned)w < sizeof names / sizeof names[0] ? names[w] : "?";
}

/* ---- what each op reads and writes ----------------------------------------- */

typedef struct {
    uint64_t per_row[LW_SLOT_COUNT];   /* values per row of T (the larger mention) */
    bool att[LW_SLOT_COUNT];           /* attention probabilities: heads x att_rows x kv_len */
    uint64_t att_heads;
    int first[LW_SLOT_COUNT], last[LW_SLOT_COUNT];
    bool fwd_read[LW_SLOT_COUNT], bwd_read[LW_SLOT_COUNT];
    bool written_required[LW_SLOT_COUNT];   /* written by an op that always runs (not LW_PLAN_OPTIONAL) */
} usage;

static void size_of(usage *u, lw_plan_slot s, uint64_t per_row)
{
    if (s != LW_SLOT_NONE && per_row > u->per_row[s]) u->per_row[s] = per_row;
}

static void writes(usage *u, lw_plan_slot s, int i, const lw_plan_op *op)
{
    if (s == LW_SLOT_NONE) return;
    if (u->first[s] < 0) u->first[s] = i;
    if (!(op->flags & LW_PLAN_OPTIONAL)) u->written_required[s] = true;
}

static void reads(usage *u, lw_plan_slot s, int i)
{
    if (s == LW_SLOT_NONE) return;
    u->fwd_read[s] = true;
    if (i > u->last[s]) u->last[s] = i;
}

static void saves(usage *u, lw_plan_slot s)
{
    if (s != LW_SLOT_NONE) u->bwd_read[s] = true;
}

static void use_op(usage *u, const lw_plan_op *op, int i)
{
    uint64_t w = (uint64_t)op->width, rows = (uint64_t)op->rows;
    switch (op->kind) {
    case LW_OP_COPY:
        size_of(u, op->in, w), size_of(u, op->out, w);
        reads(u, op->in, i), writes(u, op->out, i, op);
        break;
    case LW_OP_RMSNORM:
        size_of(u, op->in, rows * w), size_of(u, op->keep, rows * w), size_of(u, op->out, rows * w);
        size_of(u, op->aux, rows);
        reads(u, op->in, i), writes(u, op->out, i, op), writes(u, op->aux, i, op);
        saves(u, op->keep), saves(u, op->aux);
        break;
    case LW_OP_MATMUL: {
        uint64_t sum = 0;
        for (int j = 0; j < op->n_parts; j++) sum += (uint64_t)op->parts[j].width;
        size_of(u, op->in, w), size_of(u, op->keep, w), size_of(u, op->out, sum);
        reads(u, op->in, i), writes(u, op->out, i, op);
        for (int j = 0; j < op->n_parts; j++) {
            size_of(u, op->parts[j].slot, (uint64_t)op->parts[j].width);
            writes(u, op->parts[j].slot, i, op);
            /* the LoRA hook adds into the part after the split */
            if (op->parts[j].lora != LW_PLAN_LORA_NONE) reads(u, op->parts[j].slot, i);
        }
        saves(u, op->keep);   /* backward's LoRA hook reads it (adapters are known at run time only) */
        break;
    }
    case LW_OP_ROPE:
        size_of(u, op->out, rows * (uint64_t)op->head_dim);
        reads(u, op->out, i), writes(u, op->out, i, op);
        break;
    case LW_OP_ATTENTION:
        for (int j = 0; j < op->n_parts; j++) {
            size_of(u, op->parts[j].slot, (uint64_t)op->parts[j].width);
            reads(u, op->parts[j].slot, i);
        }
        size_of(u, op->out, rows * (uint64_t)op->head_dim);
        writes(u, op->out, i, op), writes(u, op->aux, i, op);
        if (op->aux != LW_SLOT_NONE) u->att[op->aux] = true, u->att_heads = rows;
        /* backward: the probabilities, q and v (k is read off the cache) */
        saves(u, op->aux), saves(u, op->parts[0].slot), saves(u, op->parts[2].slot);
        break;
    case LW_OP_GLU:
        size_of(u, op->out, w);
        for (int j = 0; j < op->n_parts; j++) {
            size_of(u, op->parts[j].slot, w);
            reads(u, op->parts[j].slot, i), saves(u, op->parts[j].slot);
        }
        writes(u, op->out, i, op);
        break;
    case LW_OP_ADD:
        size_of(u, op->in, w), size_of(u, op->out, w);
        reads(u, op->in, i), reads(u, op->out, i), writes(u, op->out, i, op);
        break;
    case LW_OP_EMBEDDING: case LW_OP_BLOCKS: case LW_OP_LOGITS: case LW_OP_HEAD_LOGSOFTMAX: case LW_OP_LAYERNORM:
    case LW_OP_GELU: case LW_OP_STANDARDISE: case LW_OP_MEAN_ROWS: case LW_OP_RMS_CALIBRATE:
    case LW_OP_KIND_COUNT: break;
    }
}

/* ---- the layout ------------------------------------------------------------- */

static bool add_ok(uint64_t a, uint64_t b, uint64_t *r) { return !__builtin_add_overflow(a, b, r); }
static bool mul_ok(uint64_t a, uint64_t b, uint64_t *r) { return !__builtin_mul_overflow(a, b, r); }

static uint64_t align_up(uint64_t n) { return (n + LW_PLAN_ALIGN - 1) / LW_PLAN_ALIGN * LW_PLAN_ALIGN; }

static bool is_model_slot(lw_plan_slot s)
{
    return s == LW_SLOT_X || s == LW_SLOT_XF || s == LW_SLOT_RSTD_FINAL;
}

/* First fit: the lowest offset (from base, aligned) where [off, off + bytes)
 * meets no placed buffer whose live range meets [first, last]. Buffers are
 * placed in order of first write, so the scan is over the few placed ones. */
static uint64_t first_fit(int n, const uint64_t *bytes, const int *first, const int *last, const bool *placed,
                          const uint64_t *offset, int s, uint64_t base)
{
    uint64_t off = base;
    for (bool moved = true; moved;) {
        moved = false;
        for (int o = 0; o < n; o++) {
            if (!placed[o]) continue;
            bool live_together = first[s] <= last[o] && first[o] <= last[s];
            bool bytes_meet = off < offset[o] + bytes[o] && offset[o] < off + bytes[s];
            if (live_together && bytes_meet) off = align_up(offset[o] + bytes[o]), moved = true;
        }
    }
    return off;
}

_Static_assert(LW_SLOT_COUNT <= 64, "lw_plan_place_shared places at most 64 buffers");

uint64_t lw_plan_place_shared(int n, const uint64_t *bytes, const int *first, const int *last, const bool *shared,
                              uint64_t base, uint64_t *offset)
{
    enum { MAX_PLACED = 64 };
    bool placed[MAX_PLACED] = {false};
    int max_first = -1;
    for (int s = 0; s < n && s < MAX_PLACED; s++)
        if (shared[s] && first[s] > max_first) max_first = first[s];
    uint64_t end = base;
    /* by first write, then index (deterministic) */
    for (int i = 0; i <= max_first; i++)
        for (int s = 0; s < n && s < MAX_PLACED; s++) {
            if (placed[s] || !shared[s] || first[s] != i) continue;
            offset[s] = first_fit(n, bytes, first, last, placed, offset, s, base);
            placed[s] = true;
            uint64_t e = offset[s] + align_up(bytes[s]);
            if (e > end) end = e;
        }
    return end;
}

lw_status lw_plan_memory_layout(const lw_plan *p, const lw_plan_shape *sh, lw_plan_memory *out)
{
    if (sh->rows < 1 || sh->rows > (1 << 20) || sh->att_rows < 1 || sh->att_rows > sh->rows || sh->kv_len < 1 ||
        sh->kv_len > (1 << 20))
        return lw_fail(LW_ERR_INVALID, "memory plan: rows %d (1..2^20), attention rows %d (1..rows) and key "
                       "positions %d (1..2^20) out of range", sh->rows, sh->att_rows, sh->kv_len);
    usage u;
    memset(&u, 0, sizeof u);
    for (int s = 0; s < LW_SLOT_COUNT; s++) u.first[s] = u.last[s] = -1;
    for (int i = 0; i < p->n_ops; i++) use_op(&u, &p->ops[i], i);
    /* the model level: embedding writes x, output_norm reads x, writes xf and rstd */
    for (int i = 0; i < p->n_model_ops; i++) {
        const lw_plan_op *op = &p->model_ops[i];
        if (op->kind == LW_OP_RMSNORM) size_of(&u, op->out, (uint64_t)op->width), size_of(&u, op->aux, 1);
        if (op->kind == LW_OP_EMBEDDING || op->kind == LW_OP_BLOCKS) size_of(&u, op->out, (uint64_t)op->width);
    }

    lw_plan_memory m;
    memset(&m, 0, sizeof m);
    m.shape = *sh;
    uint64_t bytes[LW_SLOT_COUNT] = {0};
    bool ok = true;
    for (int s = 1; s < LW_SLOT_COUNT; s++) {
        lw_plan_buffer *b = &m.slots[s];
        b->dtype = LW_PLAN_F32;   /* activations are fp32 in every backend */
        b->first = u.first[s], b->last = u.last[s];
        if (s == LW_SLOT_LOGITS) continue;   /* the caller's buffer */
        uint64_t n = 0;
        if (u.att[s])
            ok &= sh->lse ? mul_ok(u.att_heads, (uint64_t)sh->rows, &n)
                          : mul_ok(u.att_heads, (uint64_t)sh->att_rows * (uint64_t)sh->kv_len, &n);
        else
            ok &= mul_ok(u.per_row[s], (uint64_t)sh->rows, &n);
        if (n == 0) continue;
        b->elems = n;
        ok &= mul_ok(n, lw_plan_dtype_bytes(b->dtype), &bytes[s]);
        if (s == LW_SLOT_K_CACHE || s == LW_SLOT_V_CACHE) b->where = LW_PLAN_MEM_CACHE;
        else if (is_model_slot((lw_plan_slot)s)) b->where = LW_PLAN_MEM_PINNED;
        else if (sh->training && u.bwd_read[s]) b->where = LW_PLAN_MEM_LAYER;
        /* written only by optional copies and read only by backward: absent without training */
        else if (!u.written_required[s] && !u.fwd_read[s]) b->where = LW_PLAN_MEM_NONE, b->elems = 0;
        else b->where = LW_PLAN_MEM_SHARED;
        /* written, never read forward (an rstd without training): live at its writer only */
        if (b->where == LW_PLAN_MEM_SHARED && b->last < b->first) b->last = b->first;
    }
    if (!ok) return lw_fail(LW_ERR_INVALID, "memory plan: %d rows x %d positions overflow 64-bit byte counts",
                            sh->rows, sh->kv_len);

    uint64_t at = 0;
    for (int s = 1; s < LW_SLOT_COUNT; s++)
        if (m.slots[s].where == LW_PLAN_MEM_PINNED) {
            m.slots[s].offset = at;
            ok &= add_ok(at, align_up(bytes[s]), &at);
        }
    m.pinned_bytes = at;

    /* shared: by first write, then slot order (lw_plan_place_shared) */
    uint64_t sbytes[LW_SLOT_COUNT], soff[LW_SLOT_COUNT] = {0};
    int sfirst[LW_SLOT_COUNT], slast[LW_SLOT_COUNT];
    bool shared[LW_SLOT_COUNT];
    uint64_t bound = m.pinned_bytes;   /* no offset passes the sum of every shared buffer: no overflow past it */
    for (int s = 0; s < LW_SLOT_COUNT; s++) {
        sbytes[s] = bytes[s], sfirst[s] = m.slots[s].first, slast[s] = m.slots[s].last;
        shared[s] = s > 0 && m.slots[s].where == LW_PLAN_MEM_SHARED;
        if (shared[s]) ok &= add_ok(bound, align_up(bytes[s]) + LW_PLAN_ALIGN, &bound);
    }
    uint64_t shared_end = ok ? lw_plan_place_shared(LW_SLOT_COUNT, sbytes, sfirst, slast, shared, m.pinned_bytes, soff)
                             : m.pinned_bytes;
    for (int s = 1; s < LW_SLOT_COUNT; s++)
        if (shared[s]) m.slots[s].offset = soff[s];
    m.shared_bytes = shared_end - m.pinned_bytes;

    uint64_t layer = 0;
    for (int s = 1; s < LW_SLOT_COUNT; s++)
        if (m.slots[s].where == LW_PLAN_MEM_LAYER) {
            m.slots[s].offset = shared_end + layer;
            ok &= add_ok(layer, align_up(bytes[s]), &layer);
        }
    m.layer_bytes = layer;
    m.n_layer_copies = sh->training ? p->n_layers : 0;
    uint64_t copies = 0;
    ok &= mul_ok(layer, (uint64_t)m.n_layer_copies, &copies);
    ok &= add_ok(shared_end, copies, &m.bytes);
    if (!ok) return lw_fail(LW_ERR_INVALID, "memory plan: %d rows x %d positions overflow 64-bit byte counts",
                            sh->rows, sh->kv_len);
    *out = m;
    return LW_OK;
}

uint64_t lw_plan_memory_saved_elems(const lw_plan_memory *mem)
{
    uint64_t n = 0;
    for (int s = 1; s < LW_SLOT_COUNT; s++)
        if (mem->slots[s].where == LW_PLAN_MEM_LAYER || mem->slots[s].where == LW_PLAN_MEM_CACHE)
            n += mem->slots[s].elems;
    return n;
}

#define MDIFF(field, fmt, x, y)                                                                                  \
    do {                                                                                                         \
        if ((x) != (y))                                                                                          \
            return lw_fail(LW_ERR_INVALID, "%s: %s differs: " fmt " here, " fmt " in the other", what, field,   \
                           x, y);                                                                                \
    } while (0)

lw_status lw_plan_memory_compare(const lw_plan_memory *a, const lw_plan_memory *b, const char *what)
{
    MDIFF("rows", "%d", a->shape.rows, b->shape.rows);
    MDIFF("attention rows", "%d", a->shape.att_rows, b->shape.att_rows);
    MDIFF("key positions", "%d", a->shape.kv_len, b->shape.kv_len);
    MDIFF("training", "%d", (int)a->shape.training, (int)b->shape.training);
    MDIFF("lse", "%d", (int)a->shape.lse, (int)b->shape.lse);
    MDIFF("arena bytes", "%llu", (unsigned long long)a->bytes, (unsigned long long)b->bytes);
    MDIFF("layer bytes", "%llu", (unsigned long long)a->layer_bytes, (unsigned long long)b->layer_bytes);
    MDIFF("layer copies", "%d", a->n_layer_copies, b->n_layer_copies);
    for (int s = 1; s < LW_SLOT_COUNT; s++) {
        const lw_plan_buffer *x = &a->slots[s], *y = &b->slots[s];
        if (x->dtype != y->dtype || x->where != y->where || x->elems != y->elems || x->offset != y->offset)
            return lw_fail(LW_ERR_INVALID, "%s: slot %s differs: %s %s %llu values at %llu here, %s %s %llu at "
                           "%llu in the other", what, lw_plan_slot_name((lw_plan_slot)s),
                           lw_plan_dtype_name(x->dtype), lw_plan_mem_where_name(x->where),
                           (unsigned long long)x->elems, (unsigned long long)x->offset,
                           lw_plan_dtype_name(y->dtype), lw_plan_mem_where_name(y->where),
                           (unsigned long long)y->elems, (unsigned long long)y->offset);
    }
    return LW_OK;
}
