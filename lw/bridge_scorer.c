/* A bridge checkpoint opened for label scoring (bridge_scorer.h). */
#include "bridge_scorer.h"

#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "fileutil.h"
#include "layer_mix_file.h"
#include "objectives.h"

/* first_token: the trainer (and a GPU pass) read the first-token layout. */
static lw_status scorer_open(lw_bridge_scorer *s, const lw_pair *pair, const lw_task *task, int M,
                             const char *checkpoint, const char *device, bool first_token)
{
    memset(s, 0, sizeof *s);
    bool is_dir;
    lw_bridge_checkpoint_file(checkpoint, s->bridge_path, sizeof s->bridge_path, &is_dir);
    lw_status st = lw_bridge_side_open(&s->side, &pair->manifest, task, M);
    if (st) return st;
    const lw_receiver_layout *layout = &s->side.layout;
    if (first_token) {
        lw_verbalizer_stats vs;
        lw_verbalizer_stats_of(layout, &vs);
        if (vs.distinct_first < layout->n_labels)
            st = lw_fail(LW_ERR_INVALID,
                         "task %s: first-token scoring needs every label's first receiver token to be its own; "
                         "%d of %d labels share theirs (score the whole verbalizer, or use a task file whose "
                         "verbalizers start differently)",
                         task->name, layout->n_labels - vs.distinct_first, layout->n_labels);
        if (!st) st = lw_receiver_layout_first_tokens(layout, &s->first);
        if (!st) s->first_token = true, layout = &s->first;
    }
    if (!st) st = lw_checkpoint_load_bridge(s->bridge_path, &s->side.bridge);
    if (!st) st = lw_trainer_create(&s->tr, s->side.receiver, layout, &s->side.bridge, 0.0f);
    if (!st) st = lw_bridge_checkpoint_mix(checkpoint, &s->side.bridge, &s->mix, &s->with_mix);
    if (!st && s->with_mix) st = lw_trainer_attach_layer_mix(&s->tr, &s->mix);
    /* a checkpoint folder may hold LoRA / deep-prefix files beside the bridge */
    if (!st && is_dir)
        st = lw_adapter_set_open(&s->adapters, s->side.receiver, s->tr.max_T, checkpoint, &s->with_adapters);
    if (!st && s->with_adapters) st = lw_trainer_attach_adapters(&s->tr, &s->adapters);
    if (!st && !strcmp(device, "cuda")) {
        st = lw_gpu_receiver_open(&s->gpu, pair, s->side.receiver, layout, s->tr.max_T, LW_DTYPE_F32, 0);
        if (!st) st = lw_trainer_use_gpu(&s->tr, &s->gpu.pass);
    }
    if (st) lw_bridge_scorer_close(s);
    return st;
}

lw_status lw_bridge_scorer_open(lw_bridge_scorer *s, const lw_pair *pair, const lw_task *task, int M,
                                const char *checkpoint, const char *device)
{
    return scorer_open(s, pair, task, M, checkpoint, device, false);
}

lw_status lw_bridge_scorer_open_first(lw_bridge_scorer *s, const lw_pair *pair, const lw_task *task, int M,
                                      const char *checkpoint, const char *device)
{
    return scorer_open(s, pair, task, M, checkpoint, device, true);
}

void lw_bridge_scorer_close(lw_bridge_scorer *s)
{
    lw_trainer_free(&s->tr);
    lw_gpu_receiver_close(&s->gpu);
    lw_adapter_set_free(&s->adapters);
    lw_layer_mix_free(&s->mix);
    if (s->first_token) lw_receiver_layout_free(&s->first);
    lw_bridge_side_close(&s->side);
    memset(s, 0, sizeof *s);
}

const char *lw_bridge_scorer_method(const lw_bridge_scorer *s)
{
    const lw_adapter_set *a = &s->adapters;
    if (!s->with_adapters) return "bridge";
    if (a->has_lora && a->has_prefix) return "bridge+lora+deep-prefix";
    return a->has_lora ? "bridge+lora" : a->has_prefix ? "bridge+deep-prefix" : "bridge";
}
