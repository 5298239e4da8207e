/* The backward's gradient buffers laid out from their lifetimes in the
 * reverse walk (plan.h, lw_plan_grad_layout). What each op kind's backward
 * reads and writes mirrors op_backward and the model level of
 * lw_plan_cpu_backward in runtime/model/plan_cpu.c. */
#include "plan.h"

#include <string.h>

typedef struct {
    uint64_t per_row[LW_GRAD_COUNT];
    int first[LW_GRAD_COUNT], last[LW_GRAD_COUNT];
} grad_usage;

/* g holds per_row values a row and is touched (read or written) at step. */
static void touch(grad_usage *u, lw_plan_grad g, uint64_t per_row, int step)
{
    if (g == LW_GRAD_NONE) return;
    if (per_row > u->per_row[g]) u->per_row[g] = per_row;
    if (u->first[g] < 0 || step < u->first[g]) u->first[g] = step;
    if (step > u->last[g]) u->last[g] = step;
}

static void use_backward(grad_usage *u, const lw_plan_op *op, int step)
{
    uint64_t w = (uint64_t)op->width, rows = (uint64_t)op->rows;
    switch (op->kind) {
    case LW_OP_RMSNORM: touch(u, op->din, rows * w, step), touch(u, op->dout, rows * w, step); break;
    case LW_OP_MATMUL:
        touch(u, op->din, w, step);
        for (int j = 0; j < op->n_parts; j++) touch(u, op->parts[j].grad, (uint64_t)op->parts[j].width, step);
        break;
    case LW_OP_ROPE: touch(u, op->dout, rows * (uint64_t)op->head_dim, step); break;
    case LW_OP_ATTENTION:
        touch(u, op->dout, rows * (uint64_t)op->head_dim, step);
        for (int j = 0; j < op->n_parts; j++) touch(u, op->parts[j].grad, (uint64_t)op->parts[j].width, step);
        break;
    case LW_OP_GLU:
        touch(u, op->dout, w, step);
        for (int j = 0; j < op->n_parts; j++) touch(u, op->parts[j].grad, w, step);
        break;
    /* the model level: the logits' backward writes dxf (and packs its rows
     * in dbr); output_norm's reads dxf, writes dx; the blocks carry dx */
    case LW_OP_LOGITS: touch(u, op->din, w, step), touch(u, LW_GRAD_DBR, w, step); break;
    case LW_OP_HEAD_LOGSOFTMAX: touch(u, op->din, w, step); break;
    case LW_OP_EMBEDDING: case LW_OP_BLOCKS: touch(u, op->dout, w, step); break;
    case LW_OP_COPY: case LW_OP_ADD: case LW_OP_LAYERNORM: case LW_OP_GELU: case LW_OP_STANDARDISE:
    case LW_OP_MEAN_ROWS: case LW_OP_RMS_CALIBRATE: case LW_OP_KIND_COUNT: break;
    }
}

static uint64_t align_up(uint64_t n) { return (n + LW_PLAN_ALIGN - 1) / LW_PLAN_ALIGN * LW_PLAN_ALIGN; }

lw_status lw_plan_grad_layout(const lw_plan *p, int rows, lw_plan_grad_memory *out)
{
    if (rows < 1 || rows > (1 << 20))
        return lw_fail(LW_ERR_INVALID, "gradient memory plan: %d rows (1..2^20)", rows);
    grad_usage u;
    memset(&u, 0, sizeof u);
    for (int g = 0; g < LW_GRAD_COUNT; g++) u.first[g] = u.last[g] = -1;
    for (int i = 0; i < p->n_model_ops; i++) use_backward(&u, &p->model_ops[i], 0);
    for (int j = p->n_ops - 1; j >= 0; j--) use_backward(&u, &p->ops[j], 1 + (p->n_ops - 1 - j));

    lw_plan_grad_memory m;
    memset(&m, 0, sizeof m);
    m.rows = rows;
    uint64_t bytes[LW_GRAD_COUNT] = {0}, offset[LW_GRAD_COUNT] = {0};
    bool shared[LW_GRAD_COUNT] = {false};
    uint64_t at = 0;
    /* with the row bound above, no count here passes 2^20 x (a few x 2^20 wide) x 4 bytes */
    for (int g = 1; g < LW_GRAD_COUNT; g++) {
        lw_plan_buffer *b = &m.grads[g];
        b->dtype = LW_PLAN_F32;
        b->first = u.first[g], b->last = u.last[g];
        b->elems = u.per_row[g] * (uint64_t)rows;
        bytes[g] = b->elems * lw_plan_dtype_bytes(b->dtype);
        if (!b->elems) continue;
        if (g == LW_GRAD_DX || g == LW_GRAD_DXF) {
            b->where = LW_PLAN_MEM_PINNED;
            b->offset = at;
            at += align_up(bytes[g]);
        } else {
            b->where = LW_PLAN_MEM_SHARED;
            shared[g] = true;
        }
    }
    m.pinned_bytes = at;
    int first[LW_GRAD_COUNT], last[LW_GRAD_COUNT];
    for (int g = 0; g < LW_GRAD_COUNT; g++) first[g] = m.grads[g].first, last[g] = m.grads[g].last;
    m.bytes = lw_plan_place_shared(LW_GRAD_COUNT, bytes, first, last, shared, at, offset);
    for (int g = 1; g < LW_GRAD_COUNT; g++)
        if (shared[g]) m.grads[g].offset = offset[g];
    *out = m;
    return LW_OK;
}

uint64_t lw_plan_grad_elems(const lw_plan_grad_memory *mem)
{
    uint64_t n = 0;
    for (int g = 1; g < LW_GRAD_COUNT; g++)
        if (mem->grads[g].where != LW_PLAN_MEM_NONE) n += mem->grads[g].elems;
    return n;
}
