/* An equal-work latency and throughput benchmark of the ways a receiver can
 * answer a classification question about a text (what `lw bench` runs).
 *
 * Every method starts from the raw text and ends at the same point: the
 * receiver (or, for sender-zeroshot, the sender) has the summed log-prob of
 * every label's verbalizer ready. Nothing is cached between examples: the
 * sender runs for every example, as it would in deployment.
 *
 *   bridge             sender reads the text in its chat template, forward
 *                      stops at the bridge's source layer (no logits); the
 *                      rows after the template head go through the bridge to
 *                      M soft tokens; the receiver reads its prompt with them
 *                      and scores the labels (receiver_input.h).
 *   text-relay         sender generates up to relay_tokens tokens (greedy,
 *                      stops at its end-of-turn) summarising the text (the
 *                      text-relay baseline's prompt, baselines.c); the
 *                      receiver reads that text where the input text would
 *                      go and scores the labels.
 *   receiver-zeroshot  the receiver reads the text itself and scores.
 *   sender-zeroshot    the sender reads the text and scores the labels with
 *                      its own tokenizer and template.
 *
 * Scoring is the same code for all: one forward over the whole prompt with
 * the last row's logits, then each multi-token verbalizer continues from the
 * prompt's KV cache. No method reuses KV entries across examples (a shared
 * template head could be cached for every method alike; none is). A batch of B is B examples back to back on one
 * thread of control (lw_forward takes one sequence), so throughput at B is
 * B / (time for B examples); it shows the per-call overheads, not batched
 * matrix products.
 *
 * Timing: clock_gettime(CLOCK_MONOTONIC) around each stage of each example;
 * a run is one batch; statistics are over the timed runs after warm-up.
 * Run r (warm-up runs included) takes examples r*B .. r*B+B-1 (mod n) of
 * the list, so every method sees the same examples in the same order. */
#ifndef LW_BENCH_H
#define LW_BENCH_H

#include <stddef.h>

#include "bridge.h"
#include "gpu_model.h"
#include "model.h"
#include "status.h"
#include "task.h"
#include "tokenizer.h"

typedef enum {
    LW_BENCH_BRIDGE,
    LW_BENCH_TEXT_RELAY,
    LW_BENCH_RECEIVER_ZEROSHOT,
    LW_BENCH_SENDER_ZEROSHOT,
    LW_BENCH_N_METHODS
} lw_bench_method;

typedef enum {
    LW_STAGE_TOKENIZE,        /* templates and tokenization (both models) */
    LW_STAGE_SENDER_FORWARD,  /* sender forward: to the source layer (bridge) or with logits (sender-zeroshot) */
    LW_STAGE_BRIDGE,          /* bridge forward to the soft tokens */
    LW_STAGE_GENERATE,        /* relay: the sender's text generation and decoding */
    LW_STAGE_RECEIVER_SCORE,  /* receiver forward and label scoring */
    LW_STAGE_COUNT
} lw_bench_stage;

const char *lw_bench_method_name(lw_bench_method m);
/* -1 if name is not a method. */
int lw_bench_method_parse(const char *name);
const char *lw_bench_stage_name(lw_bench_stage s);
/* Does method m run stage s? */
int lw_bench_uses_stage(lw_bench_method m, lw_bench_stage s);

/* ---- statistics -------------------------------------------------------- */
typedef struct {
    double median, min, max;
    int n;
} lw_bench_stats;

/* Of x[n] (not modified; n = 0 gives zeros). The median of an even count is
 * the mean of the two middle values. */
lw_bench_stats lw_bench_stats_of(const double *x, int n);

/* Soft-token payload: M * hidden * bytes_per_value, 0 on overflow or bad
 * sizes (4 for fp32, 2 for bf16). */
size_t lw_bench_soft_bytes(int M, int hidden, int bytes_per_value);

/* ---- the runner -------------------------------------------------------- */
typedef struct {
    const lw_model *sender, *receiver;
    const lw_tokenizer *sender_tok, *receiver_tok;
    const lw_task *task;
    const lw_bridge *bridge;   /* NULL: the bridge method is unavailable */
    int source_layer;          /* the sender layer the bridge reads, 1..n_layers */
    int relay_tokens;          /* text-relay: most tokens the sender writes */
    /* Both NULL: every forward runs on the CPU. Both set (bench_gpu.h): the
     * models' forwards (prompts, the capture at source_layer, generation,
     * label scoring) run on the GPU and each stage waits for the device
     * before the clock is read; tokenization, the bridge and sampling stay
     * on the CPU. Borrowed, like the models. */
    lw_gpu_model *gpu_sender, *gpu_receiver;
} lw_bench_setup;

typedef struct lw_bench lw_bench;

/* Builds the prompt pieces of every method and the scratch (KV caches of
 * min(context, 1024) positions per model). Models etc. are borrowed. */
lw_status lw_bench_open(const lw_bench_setup *setup, lw_bench **out);
void lw_bench_close(lw_bench *b);

/* What one example moved between the models and read. */
typedef struct {
    double payload_bytes;      /* bridge: fp32 soft tokens; relay: UTF-8 bytes of the text; else 0 */
    double content_tokens;     /* what stands for the text: M, relay tokens, or the text's tokens */
    double prompt_tokens;      /* the scoring model's prompt rows before the verbalizer */
    double sender_tokens;      /* sender prompt rows it ran (0 when it does not run) */
} lw_bench_traffic;

/* One example through method m: scores[n_labels], and each stage's seconds
 * added to stage_s[LW_STAGE_COUNT]; traffic may be NULL. */
lw_status lw_bench_example(lw_bench *b, lw_bench_method m, const char *text, double *scores, double *stage_s,
                           lw_bench_traffic *traffic);

typedef struct {
    lw_bench_method method;
    int batch, runs, warmup;
    lw_bench_stats run_s;          /* seconds per run (batch examples) */
    lw_bench_stats examples_per_s; /* batch / run seconds */
    lw_bench_stats stage_ms[LW_STAGE_COUNT];  /* per example: a run's stage time / batch */
    lw_bench_traffic traffic;      /* means over the timed examples */
} lw_bench_result;

/* Warm-up then timed runs of batch examples each, over texts[n_texts]. */
lw_status lw_bench_measure(lw_bench *b, lw_bench_method m, const char *const *texts, int n_texts, int batch,
                           int runs, int warmup, lw_bench_result *out);

/* Everything one `lw bench` call measured, as written to JSON. */
typedef struct {
    const char *pair, *task, *split, *checkpoint;  /* checkpoint NULL: freshly initialised bridge */
    int soft_tokens, receiver_hidden, relay_tokens, source_layer;
    const char *machine;                            /* free text, may be NULL */
    const char *device;                             /* "cpu" (NULL) or "cuda" */
    const char *dtype;                              /* the GPU weights: "fp32" (NULL) or "bf16" */
    int n_results;
    const lw_bench_result *results;
} lw_bench_report;

/* The JSON text (malloc'd): {"pair", ..., "payload": {...},
 * "results": [{"method", "batch", "runs", "latency_s" | "run_s",
 * "examples_per_s", "stages_ms": {...}, "traffic": {...}}]}. */
char *lw_bench_to_json(const lw_bench_report *r);

#endif
