/* The plan's memory plans on the device (declared in gpu_model.h): the
 * CUDA executor's activation and gradient slots carved from one device
 * arena at the offsets of lw_plan_memory_layout and lw_plan_grad_layout,
 * as lw_state_alloc and lw_backward_scratch_alloc carve the CPU's from
 * host arenas. Two slots share bytes only where the plan lets them (their
 * lives in the block's walk do not meet), so the GPU state and training
 * pass take the bytes the plan says, no buffer a slot. */
#include "gpu_model.h"

/* f32 values a row of slot s holds on the device (the executor binds
 * rows x this); here, beside the layout check that reads it, so the
 * executor stands on this file and not the other way round. */
int lw_plan_cuda_slot_width(const lw_model_config *c, lw_plan_slot s)
{
    int H = c->hidden, qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim, F = c->ffn;
    switch (s) {
    case LW_SLOT_X_IN: case LW_SLOT_XN: case LW_SLOT_PROJ: case LW_SLOT_PROJ_N: case LW_SLOT_X_MID:
    case LW_SLOT_FN: case LW_SLOT_DOWN: case LW_SLOT_DOWN_N: case LW_SLOT_X: case LW_SLOT_XF: return H;
    case LW_SLOT_QKV: return qd + 2 * kvd;
    case LW_SLOT_Q: case LW_SLOT_Q_ROPE: case LW_SLOT_AO: return qd;
    case LW_SLOT_K: case LW_SLOT_V: case LW_SLOT_K_CACHE: case LW_SLOT_V_CACHE: return kvd;
    case LW_SLOT_GATE_UP: return 2 * F;
    case LW_SLOT_GATE: case LW_SLOT_UP: case LW_SLOT_HID: return F;
    case LW_SLOT_RSTD_ATTN: case LW_SLOT_RSTD_POST_ATTN: case LW_SLOT_RSTD_FFN: case LW_SLOT_RSTD_POST_FFN:
    case LW_SLOT_RSTD_FINAL: case LW_SLOT_LOGP: case LW_SLOT_LSE: return 1;
    case LW_SLOT_RSTD_Q: case LW_SLOT_ATT: return c->n_heads;
    case LW_SLOT_RSTD_K: return c->n_kv_heads;
    case LW_SLOT_LOGITS: return c->vocab;
    case LW_SLOT_NONE: case LW_SLOT_COUNT: break;
    }
    return 0;
}

/* Slots the executor binds from the arena: the KV cache rows are the
 * cache's, the logits the caller's (neither is in the arena). */
static bool in_arena(lw_plan_slot s)
{
    return s != LW_SLOT_K_CACHE && s != LW_SLOT_V_CACHE && s != LW_SLOT_LOGITS;
}

static bool stored(const lw_plan_buffer *b)
{
    return b->elems > 0 && (b->where == LW_PLAN_MEM_PINNED || b->where == LW_PLAN_MEM_SHARED ||
                            b->where == LW_PLAN_MEM_LAYER);
}

lw_status lw_cuda_plan_memory_check(const lw_model_config *c, const lw_plan_memory *mem)
{
    uint64_t rows = (uint64_t)mem->shape.rows;
    if (!mem->shape.lse)
        return lw_fail(LW_ERR_INVALID, "CUDA memory plan of %s: laid out with attention probabilities; the CUDA "
                       "kernels keep a log-sum-exp per head and row (shape.lse)", c->name);
    for (int s = 1; s < LW_SLOT_COUNT; s++) {
        const lw_plan_buffer *b = &mem->slots[s];
        uint64_t width = (uint64_t)lw_plan_cuda_slot_width(c, (lw_plan_slot)s);
        if (!in_arena((lw_plan_slot)s) || !stored(b)) continue;
        if (b->dtype != LW_PLAN_F32 || b->elems < rows * width)
            return lw_fail(LW_ERR_INVALID, "CUDA memory plan of %s: slot %s holds %llu %s values, the executor "
                           "binds %llu rows of %llu f32", c->name, lw_plan_slot_name((lw_plan_slot)s),
                           (unsigned long long)b->elems, lw_plan_dtype_name(b->dtype), (unsigned long long)rows,
                           (unsigned long long)width);
    }
    return LW_OK;
}

void lw_cuda_plan_carve_acts(const lw_plan_memory *mem, lw_cuda_ptr base, int layer, lw_cuda_plan_acts *acts,
                             lw_cuda_plan_acts *top)
{
    for (int s = 1; s < LW_SLOT_COUNT; s++) {
        const lw_plan_buffer *b = &mem->slots[s];
        if (!in_arena((lw_plan_slot)s) || !stored(b)) continue;
        uint64_t off = b->offset + (b->where == LW_PLAN_MEM_LAYER ? (uint64_t)layer * mem->layer_bytes : 0);
        lw_cuda_ptr at = base + (lw_cuda_ptr)off;
        if (b->where == LW_PLAN_MEM_PINNED) {
            if (top) top->at[s] = at;
        } else if (acts) {
            acts->at[s] = at;
        }
    }
}

void lw_cuda_plan_carve_grads(const lw_plan_grad_memory *mem, lw_cuda_ptr base, lw_cuda_ptr grad[LW_GRAD_COUNT])
{
    for (int g = 0; g < LW_GRAD_COUNT; g++) {
        const lw_plan_buffer *b = &mem->grads[g];
        grad[g] = g > 0 && b->elems > 0 && b->where != LW_PLAN_MEM_NONE ? base + (lw_cuda_ptr)b->offset : 0;
    }
}
