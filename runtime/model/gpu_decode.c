/* One decode step on the GPU, captured once as a CUDA graph and replayed
 * (declared in gpu_model.h). The step runs the plan through the CUDA
 * executor in its graph-ready form (lw_cuda_plan_bufs.device_positions):
 * the token id and the position live in device buffers that an async copy
 * from pinned host memory fills before each step, and no kernel argument
 * moves with the position (attention_decode_forward reads its offset off
 * the positions, kv_cache_store puts the step's k and v rows at the cache
 * row they name, RoPE and the embedding read them already). So the launches
 * of one step, captured on a stream of the decoder's own, replay as they
 * are for every later step: one cuGraphLaunch instead of a launch an op.
 *
 * Where the capture fails (a driver without graphs, a cuBLAS that
 * allocates inside the capture, the host twin), the decoder says why once
 * on stderr, keeps the reason in `why`, and issues the same launches on its
 * stream every step: the same results, a launch an op. */
#include "gpu_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The state's buffers as the executor's slots for one graph-ready step. */
static lw_status issue(lw_gpu_decoder *d)
{
    lw_gpu_model *g = d->g;
    lw_gpu_state *s = d->s;
    lw_cuda_plan_bufs b = {.g = g, .plan = &g->plan, .layers = &s->slots, .n_layer_sets = 1, .top = s->top,
                           .key_cache = s->key_cache, .value_cache = s->value_cache, .cache_rows = s->max_tokens,
                           .pos = d->pos, .ids = d->ids, .xb = s->xb, .device_positions = true,
                           .k_rows = d->k_rows, .v_rows = d->v_rows};
    b.top.at[LW_SLOT_LOGITS] = s->logits;
    lw_forward_args a = {.T = 1, .logits = d->host_logits, .capture_layer = -1};
    lw_cuda_plan_call c = {.a = &a, .T = 1, .capture_layer = -1, .logits_rows = 1};
    bool complete = true;
    return lw_plan_cuda_forward(&b, &c, &complete);
}

/* The first step: its launches recorded into d->graph (not run). On a
 * failure d->why says why, and the steps issue their launches instead. */
static void capture(lw_gpu_decoder *d)
{
    lw_gpu_model *g = d->g;
    char what[160];
    snprintf(what, sizeof what, "a decode step of %s", g->cfg.name);
    d->tried = true;
    bool sync = g->sync_each_launch;
    g->sync_each_launch = false;   /* a sync inside a capture would break it */
    lw_status st = lw_cuda_capture_begin(g->cu, d->stream, what);
    if (!st) {
        lw_status issued = issue(d);
        const char *why = issued ? lw_last_error() : NULL;
        char kept[256] = "";
        if (why) snprintf(kept, sizeof kept, "%s", why);
        lw_status ended = lw_cuda_capture_end(g->cu, d->stream, what, &d->graph);
        if (issued && !ended) lw_cuda_graph_destroy(g->cu, &d->graph);
        st = issued ? lw_fail(issued, "%s", kept) : ended;
    }
    g->sync_each_launch = sync;
    d->graphed = st == LW_OK;
    if (!d->graphed) {
        snprintf(d->why, sizeof d->why, "%s", lw_last_error());
        fprintf(stderr, "lw: %s: decode steps run without a CUDA graph (%s)\n", g->cfg.name, d->why);
    }
}

lw_status lw_gpu_decoder_open(lw_gpu_model *g, lw_gpu_state *s, bool use_graph, lw_gpu_decoder **out)
{
    *out = NULL;
    lw_gpu_decoder *d = calloc(1, sizeof *d);
    if (!d) return lw_fail(LW_ERR_NOMEM, "GPU %s: out of memory for a decoder", g->cfg.name);
    d->g = g, d->s = s, d->use_graph = use_graph;
    size_t kvd = (size_t)g->cfg.n_kv_heads * g->cfg.head_dim;
    lw_gpu_arena a = {0};
    for (int pass = 0; pass < 2; pass++) {
        d->ids = lw_gpu_take(&a, sizeof(int));
        d->pos = lw_gpu_take(&a, sizeof(int));
        d->k_rows = lw_gpu_take(&a, kvd * sizeof(float));
        d->v_rows = lw_gpu_take(&a, kvd * sizeof(float));
        if (pass) break;
        lw_status st = lw_cuda_alloc(g->cu, a.used, "a decoder's ids, position and k / v rows", &d->dev);
        if (!st) st = lw_cuda_stream_create(g->cu, &d->stream);
        if (!st) st = lw_cuda_host_alloc(g->cu, 2 * sizeof(int), "a decode step's id and position", (void **)&d->host_io);
        if (!st)
            st = lw_cuda_host_alloc(g->cu, (size_t)g->cfg.vocab * sizeof(float), "a decode step's logits",
                                    (void **)&d->host_logits);
        if (st) {
            lw_gpu_decoder_close(d);
            return lw_fail_wrap(st, "GPU %s: a decoder", g->cfg.name);
        }
        a = (lw_gpu_arena){.base = d->dev};
    }
    *out = d;
    return LW_OK;
}

lw_status lw_gpu_decoder_step(lw_gpu_decoder *d, int id, float *logits)
{
    lw_gpu_model *g = d->g;
    lw_gpu_state *s = d->s;
    if (id < 0 || id >= g->cfg.vocab)
        return lw_fail(LW_ERR_INVALID, "GPU decode %s: token id %d outside vocab %d", g->cfg.name, id, g->cfg.vocab);
    if (s->n_cached >= s->max_tokens)
        return lw_fail(LW_ERR_INVALID, "GPU decode %s: the cache holds %d of %d positions, no room for a step",
                       g->cfg.name, s->n_cached, s->max_tokens);
    d->host_io[0] = id, d->host_io[1] = s->n_cached;
    void *was = g->cu->stream;
    g->cu->stream = d->stream;
    char what[160];
    snprintf(what, sizeof what, "decode step of %s at position %d", g->cfg.name, s->n_cached);
    lw_status st = lw_cublas_set_stream(g->blas, d->stream);
    if (!st) st = lw_cuda_upload_async(g->cu, d->ids, &d->host_io[0], sizeof(int), d->stream, "a decode step's id");
    if (!st)
        st = lw_cuda_upload_async(g->cu, d->pos, &d->host_io[1], sizeof(int), d->stream, "a decode step's position");
    if (!st && d->use_graph && !d->tried) capture(d);
    if (!st) {
        if (d->graphed) st = lw_cuda_graph_launch(g->cu, &d->graph, d->stream, what), d->replays += !st;
        else st = issue(d), d->issued += !st;
    }
    if (!st)
        st = lw_cuda_download_async(g->cu, d->host_logits, s->logits, (size_t)g->cfg.vocab * sizeof(float), d->stream,
                                    "a decode step's logits");
    if (!st) st = lw_cuda_stream_sync(g->cu, d->stream, what);
    g->cu->stream = was;
    lw_status back = lw_cublas_set_stream(g->blas, NULL);
    if (!st) st = back;
    if (st) return st;   /* the cache past n_cached is in an unknown state; n_cached stays */
    memcpy(logits, d->host_logits, (size_t)g->cfg.vocab * sizeof(float));
    s->n_cached++;
    return LW_OK;
}

void lw_gpu_decoder_close(lw_gpu_decoder *d)
{
    if (!d) return;
    lw_cuda *cu = d->g->cu;
    lw_cuda_graph_destroy(cu, &d->graph);
    lw_cuda_host_free(cu, d->host_io);
    lw_cuda_host_free(cu, d->host_logits);
    lw_cuda_stream_destroy(cu, d->stream);
    lw_cuda_free(cu, d->dev);
    free(d);
}
