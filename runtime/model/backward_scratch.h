/* The backward scratch's buffers (model_backward.c allocates them); the
 * gradient slots of a plan (plan.h lw_plan_grad) name them, the plan's
 * gradient layout places them, and the CPU executor (plan_cpu.c) reads and
 * writes them. */
#ifndef LW_BACKWARD_SCRATCH_H
#define LW_BACKWARD_SCRATCH_H

#include "model.h"

struct lw_backward_scratch {
    int max_tokens;
    int hidden, qd, kvd, ffn, vocab;   /* the model it was sized for */
    int *pos;     /* [max_tokens] the positions of the last forward's rows */
    int *rows;    /* [max_tokens] rows that carry a loss */
    float *dx;    /* [T, hidden] gradient of the residual stream */
    float *dxf;   /* [T, hidden] gradient of output_norm(x) */
    float *dbr;   /* [T, hidden] gradient of a branch before its post norm */
    float *dln;   /* [T, hidden] gradient of attn_norm / ffn_norm output */
    float *dao;   /* [T, qd] */
    float *dq, *dq_pre;   /* [T, qd] after / before qk-norm and RoPE */
    float *dk, *dk_pre;   /* [T, kvd] */
    float *dv;            /* [T, kvd] */
    float *dgate, *dup, *dhid;  /* [T, ffn] */
    float *seg_k, *seg_v, *seg_dk, *seg_dv;   /* [max_tokens, kvd]: one segment's keys with the head's */
    /* dx .. dhid: the plan's gradient slots, carved from one arena at the
     * offsets of lw_plan_grad_layout (plan.h) for max_tokens rows; a slot
     * the model's plan never touches is NULL. seg_*: the attention
     * backward's own scratch, not a plan slot. */
    float *arena;
    lw_plan_grad_memory memory;
};

#endif
