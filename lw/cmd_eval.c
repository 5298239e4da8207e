/* lw eval: accuracy, macro-F1, per-class scores, confusion matrix and 95%
 * bootstrap intervals of a method on one split, as a table and as JSON. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "baselines.h"
#include "clock.h"
#include "jsonerr.h"
#include "cmd_common.h"
#include "dataset.h"
#include "fileutil.h"
#include "bridge_fallback.h"
#include "bridge_scorer.h"
#include "layer_mix_file.h"
#include "linear_probe.h"
#include "lw_cli.h"
#include "metrics.h"
#include "sender_cache.h"
#include "sender_cache_layers.h"
#include "score_calibration.h"
#include "score_line.h"
#include "sender_states.h"
#include "train_example.h"
#include "train_score_batch.h"
#include "answer_eval.h"
#include "train_text.h"

enum { BOOTSTRAP_RESAMPLES = 1000, BOOTSTRAP_SEED = 1 };

static void usage(const lw_pair *pair)
{
    printf("usage: lw eval --task NAME --split FILE [options]\n\n"
           "Predicts the label of every example of FILE and reports accuracy, macro-F1,\n"
           "per-class precision/recall/F1, the confusion matrix and 95%% bootstrap intervals.\n\n"
           "  --task NAME          task file <tasks dir>/NAME.json\n"
           "  --split FILE         the JSONL file to evaluate (e.g. DATA/dev.jsonl)\n"
           "  --method M           bridge (default), bridge-fallback, linear-probe, or a baseline: sender-zeroshot,\n"
           "                       receiver-zeroshot, receiver-kshot, text-relay, cot-relay, token-budget,\n"
           "                       or a trained one: prompt-tuning, lora (--checkpoint DIR of lw train --method)\n"
           "  --checkpoint DIR     bridge: a checkpoint folder (runs/<task>/final) or a bridge.safetensors\n"
           "  --device cpu|cuda    bridge: where the receiver runs (default cpu; cuda: GPU 0)\n"
           "  --dtype fp32|bf16|q8|native  the frozen sender and receiver on the CPU (default fp32, the\n"
           "                       reference): bf16 keeps their projections and output head in bf16, q8 as\n"
           "                       Q8_0 blocks made at load, native as the GGUF file's blocks (fp32 sums)\n"
           LW_THREADS_HELP
           "  --soft-tokens M      bridge: M it was trained with (default: run.json beside DIR, else %d)\n"
           "  --train FILE         linear-probe, receiver-kshot: training file (default: train.jsonl beside --split)\n"
           "  --limit-train N      linear-probe, receiver-kshot: first N training examples\n"
           "  --k N                receiver-kshot: train examples per class in the prompt (default 1)\n"
           "  --seed S             receiver-kshot: which examples (default 1); bridge: the training seed\n"
           "                       recorded in --json (default: from run.json beside DIR)\n"
           "  --relay-tokens N     text-relay, cot-relay: most tokens the sender writes (default 32)\n"
           "  --relay-prompt TEXT  text-relay, cot-relay: the sender's instruction\n"
           "  --generate           baselines: greedy answer of <= 8 tokens, parsed, instead of scoring\n"
           "  --max-context N      baselines: prompt positions (default min(2048, model context))\n"
           "  --verbose            baselines: print the first prompts and every answer\n"
           "  --limit N            evaluate N examples only: the split's first N, or N drawn per label\n"
           "                       with --subset stratified (also for --limit-train)\n"
           "  --subset KIND        first (default) or stratified; --subset-seed S seeds the draw (1)\n"
           "  --json FILE          also write the results as JSON\n"
           "  --threshold T        bridge-fallback: an example whose bridge margin (best label score minus\n"
           "                       the second) is below T falls back: the receiver reads its text (zero-shot)\n"
           "  --curve              bridge-fallback: read every text, and add to --json the accuracy against\n"
           "                       the fraction that fell back, for every cut of the margins\n"
           "  --scores FILE        bridge: every example's label scores, one JSON line each, as lw receive\n"
           "                       prints them (docs/wire.md)\n"
           "  --calibrate mean     bridge: each label's score minus its mean over the evaluated examples\n"
           "                       (the input-independent prior a young bridge learns first;\n"
           "                       docs/objectives.md). Method reported as <method>-calibrated\n"
           "  --score full|first   bridge: a label's score is the summed log-probs of its whole verbalizer\n"
           "                       (full, default) or the log-prob of its first receiver token alone\n"
           "                       (first: what lw train --ce first trains; one head row an example, no\n"
           "                       continuations; needs every label's first token to be its own).\n"
           "                       Method reported as <method>-first\n"
           "  --score-batch N      bridge: score N examples in one packed receiver pass (default 1: one\n"
           "                       by one; N > 1 agrees to float rounding, docs/wire.md, \"Batching\")\n"
           "  --tasks-dir DIR      default <manifest dir>/../tasks\n"
           "  --cache-dir DIR      sender-state cache (default $LWC_CACHE_DIR or .lwc-cache/ beside lw)\n"
           "  --quiet              no progress line, and only the accuracy and macro-F1 lines (the\n"
           "                       per-class scores and confusion matrix stay in --json)\n\n"
           "Generate tasks (squad, hotpotqa, gsm8k) and choice tasks (boolq, piqa, csqa) take\n"
           "--method receiver-text (default) or sender-text: that model reads the prompt and writes\n"
           "the answer greedily (EM/F1, or GSM8K's last number) or picks the choice of highest\n"
           "log-prob (accuracy); options --split, --limit, --max-context (default min(4096, model\n"
           "context)), --json, --verbose, --quiet.\n\n"
           "bridge: every label is scored by the summed log-probs of its verbalizer tokens after the\n"
           "receiver's prompt with the soft tokens; the argmax wins. The baselines give a model the\n"
           "text itself and score it the same way; token-budget keeps the first --soft-tokens text\n"
           "tokens (the pair's M by default).\n",
           pair->manifest.bridge.soft_tokens);
}

typedef struct {
    const char *task, *split, *method, *checkpoint, *train, *json, *tasks_dir, *cache_dir;
    const char *scores;        /* bridge: every example's label scores, a JSON line each */
    bool calibrate;            /* --calibrate mean (score_calibration.h) */
    bool score_first;          /* --score first: first-token log-probs (lw_bridge_scorer_open_first) */
    float threshold;           /* bridge-fallback: margin below which the receiver reads the text */
    bool has_threshold, curve; /* bridge-fallback: --threshold given; --curve */
    const char *device;        /* bridge: where the receiver runs, "cpu" or "cuda" */
    lw_weights_dtype dtype;    /* --dtype: the frozen models' matrices on the CPU */
    int threads;               /* --threads; 0: $LWC_THREADS, else 1 */
    int limit, limit_train, M;
    bool stratified;           /* --subset stratified: for --limit and --limit-train */
    int subset_seed;
    bool quiet;
    int score_batch;           /* bridge: examples a packed receiver pass (1: one by one) */
    int seed;                  /* recorded in --json when has_seed */
    bool has_M, has_seed;
    int baseline;              /* lw_baseline_method, or -1 */
    lw_baseline_options base;
} eval_args;

static bool parse(const lw_pair *pair, int argc, char **argv, eval_args *a)
{
    memset(a, 0, sizeof *a);
    a->method = "bridge";
    a->device = "cpu";
    a->subset_seed = 1;
    a->score_batch = 1;
    a->M = pair->manifest.bridge.soft_tokens;
    a->base = lw_baseline_defaults();
    int seed = 1;
    for (int i = 0; i < argc; i++) {
        const char *o = argv[i];
        bool ok = true;
        if (!strcmp(o, "--task")) ok = lw_opt_str(argc, argv, &i, &a->task);
        else if (!strcmp(o, "--split")) ok = lw_opt_str(argc, argv, &i, &a->split);
        else if (!strcmp(o, "--method")) ok = lw_opt_str(argc, argv, &i, &a->method);
        else if (!strcmp(o, "--device")) ok = lw_opt_str(argc, argv, &i, &a->device);
        else if (!strcmp(o, "--dtype")) {
            const char *v = NULL;
            ok = lw_opt_str(argc, argv, &i, &v) && lw_opt_dtype("eval", v, &a->dtype);
        }
        else if (!strcmp(o, "--threads")) ok = lw_opt_int(argc, argv, &i, 1, LW_THREADS_MAX, &a->threads);
        else if (!strcmp(o, "--checkpoint")) ok = lw_opt_str(argc, argv, &i, &a->checkpoint);
        else if (!strcmp(o, "--train")) ok = lw_opt_str(argc, argv, &i, &a->train);
        else if (!strcmp(o, "--json")) ok = lw_opt_str(argc, argv, &i, &a->json);
        else if (!strcmp(o, "--scores")) ok = lw_opt_str(argc, argv, &i, &a->scores);
        else if (!strcmp(o, "--calibrate")) {
            const char *v = NULL;
            if ((ok = lw_opt_str(argc, argv, &i, &v)) && strcmp(v, "mean")) {
                fprintf(stderr, "lw eval: --calibrate takes mean, not '%s'\n", v);
                ok = false;
            }
            a->calibrate = ok;
        }
        else if (!strcmp(o, "--score")) {
            const char *v = NULL;
            if ((ok = lw_opt_str(argc, argv, &i, &v)) && strcmp(v, "full") && strcmp(v, "first")) {
                fprintf(stderr, "lw eval: --score takes full or first, not '%s'\n", v);
                ok = false;
            }
            if (ok) a->score_first = !strcmp(v, "first");
        }
        else if (!strcmp(o, "--score-batch")) ok = lw_opt_int(argc, argv, &i, 1, 256, &a->score_batch);
        else if (!strcmp(o, "--threshold")) ok = a->has_threshold = lw_opt_float(argc, argv, &i, &a->threshold);
        else if (!strcmp(o, "--curve")) a->curve = true;
        else if (!strcmp(o, "--tasks-dir")) ok = lw_opt_str(argc, argv, &i, &a->tasks_dir);
        else if (!strcmp(o, "--cache-dir")) ok = lw_opt_str(argc, argv, &i, &a->cache_dir);
        else if (!strcmp(o, "--limit")) ok = lw_opt_int(argc, argv, &i, 1, 1 << 28, &a->limit);
        else if (!strcmp(o, "--limit-train")) ok = lw_opt_int(argc, argv, &i, 1, 1 << 28, &a->limit_train);
        else if (!strcmp(o, "--subset")) ok = lw_opt_subset(argc, argv, &i, &a->stratified);
        else if (!strcmp(o, "--subset-seed")) ok = lw_opt_int(argc, argv, &i, 0, 2147483647L, &a->subset_seed);
        else if (!strcmp(o, "--soft-tokens")) ok = a->has_M = lw_opt_int(argc, argv, &i, 1, 64, &a->M);
        else if (!strcmp(o, "--quiet")) a->quiet = true;
        else if (!strcmp(o, "--k")) ok = lw_opt_int(argc, argv, &i, 0, 1024, &a->base.k);
        else if (!strcmp(o, "--seed")) ok = a->has_seed = lw_opt_int(argc, argv, &i, 0, 1L << 30, &seed);
        else if (!strcmp(o, "--relay-tokens")) ok = lw_opt_int(argc, argv, &i, 1, 4096, &a->base.relay_tokens);
        else if (!strcmp(o, "--relay-prompt")) ok = lw_opt_str(argc, argv, &i, &a->base.relay_prompt);
        else if (!strcmp(o, "--max-context")) ok = lw_opt_int(argc, argv, &i, 16, 1 << 20, &a->base.max_context);
        else if (!strcmp(o, "--generate")) a->base.generate = true;
        else if (!strcmp(o, "--verbose")) a->base.verbose = true;
        else {
            fprintf(stderr, "lw eval: unknown option '%s' (see lw eval --help)\n", o);
            return false;
        }
        if (!ok) return false;
    }
    if (!a->task || !a->split) {
        fprintf(stderr, "lw eval: --task and --split are required (see lw eval --help)\n");
        return false;
    }
    a->base.seed = (uint64_t)seed;
    a->seed = seed;
    a->base.budget_tokens = a->M;
    a->base.quiet = a->quiet;
    a->baseline = lw_baseline_from_name(a->method);
    bool text = lw_text_method_from_name(a->method) >= 0;
    bool fallback = !strcmp(a->method, "bridge-fallback");
    if (fallback != a->has_threshold || (a->curve && !fallback)) {
        fprintf(stderr, "lw eval: --method bridge-fallback goes with --threshold T (and --curve only with it)\n");
        return false;
    }
    if (strcmp(a->device, "cpu") && (strcmp(a->device, "cuda") || (strcmp(a->method, "bridge") && !fallback))) {
        fprintf(stderr, "lw eval: --device is cpu, or cuda with --method bridge (not '%s' with %s)\n", a->device,
                a->method);
        return false;
    }
    if (strcmp(a->device, "cpu") && a->dtype != LW_WEIGHTS_F32) {
        fprintf(stderr, "lw eval: --dtype %s is for --device cpu (the GPU receiver is fp32)\n",
                lw_weights_dtype_name(a->dtype));
        return false;
    }
    if (strcmp(a->method, "bridge") && !fallback && strcmp(a->method, "linear-probe") && a->baseline < 0 && !text) {
        fprintf(stderr, "lw eval: --method is bridge, linear-probe or a baseline (see --help), not '%s'\n",
                a->method);
        return false;
    }
    if (a->calibrate && strcmp(a->method, "bridge")) {
        fprintf(stderr, "lw eval: --calibrate goes with --method bridge\n");
        return false;
    }
    if (a->score_first && strcmp(a->method, "bridge")) {
        fprintf(stderr, "lw eval: --score first goes with --method bridge\n");
        return false;
    }
    if (a->score_batch > 1 && strcmp(a->method, "bridge") && !fallback) {
        fprintf(stderr, "lw eval: --score-batch goes with --method bridge or bridge-fallback\n");
        return false;
    }
    if (a->scores && strcmp(a->method, "bridge")) {
        fprintf(stderr, "lw eval: --scores goes with --method bridge\n");
        return false;
    }
    if ((!strcmp(a->method, "bridge") || fallback || text) && !a->checkpoint) {
        fprintf(stderr, "lw eval: --method %s needs --checkpoint DIR (e.g. runs/%s/final)\n", a->method, a->task);
        return false;
    }
    return true;
}

/* The training file's examples for linear-probe and receiver-kshot. */
static lw_subset train_subset(const eval_args *a)
{
    return (lw_subset){a->limit_train, a->stratified, (uint64_t)a->subset_seed};
}

static lw_status read_run_json(eval_args *a)
{
    return lw_run_json_read(a->checkpoint, &a->seed, &a->has_seed, &a->M, &a->has_M);
}

/* Everything an eval needs besides the method. */
typedef struct {
    const lw_pair *pair;
    const lw_manifest *m;
    const eval_args *a;
    lw_task task;
    lw_dataset data;
    lw_sender_cache states;
    char cache[4096];
    json_t *extra;             /* baselines: more JSON fields */
    int text_M;                /* prompt-tuning: the checkpoint's soft tokens */
    const char *method;        /* as reported: the bridge names its receiver adapters */
    char method_buf[64];       /* "<baseline>-generate" */
} eval_ctx;

/* margins: NULL, or [n] each example's best score minus the second best. */
static lw_status bridge_predict(eval_ctx *e, int *pred, double *margins)
{
    lw_bridge_scorer sc;
    lw_trainer_batch_scorer batch = {0};   /* --score-batch N > 1 */
    lw_status st = e->a->score_first
                       ? lw_bridge_scorer_open_first(&sc, e->pair, &e->task, e->a->M, e->a->checkpoint, e->a->device)
                       : lw_bridge_scorer_open(&sc, e->pair, &e->task, e->a->M, e->a->checkpoint, e->a->device);
    if (st) return st;
    e->method = lw_bridge_scorer_method(&sc);
    if (e->a->score_first) {
        if (!e->extra) e->extra = json_object();
        json_object_set_new(e->extra, "score", json_string("first"));
        snprintf(e->method_buf, sizeof e->method_buf, "%s-first", e->method);
        e->method = e->method_buf;
    }
    FILE *sf = NULL;
    if (e->a->scores && !(sf = fopen(e->a->scores, "w")))
        st = lw_fail(LW_ERR_IO, "eval: cannot write %s", e->a->scores);
    int B = e->a->score_batch, L = e->task.n_labels;
    double *all = calloc((size_t)(e->data.n > 0 ? e->data.n : 1) * L, sizeof *all);   /* [n, L] */
    float **x = calloc((size_t)B, sizeof *x);
    size_t *cap = calloc((size_t)B, sizeof *cap);
    int *T = calloc((size_t)B, sizeof *T);
    if (!st && (!all || !x || !cap || !T)) st = lw_fail(LW_ERR_NOMEM, "eval: out of memory");
    double t0 = lw_now_s();
    for (int i0 = 0; !st && i0 < e->data.n; i0 += B) {
        int nb = e->data.n - i0 < B ? e->data.n - i0 : B;
        double *scores = all + (size_t)i0 * L;
        for (int j = 0; !st && j < nb; j++) st = lw_sender_cache_read(&e->states, i0 + j, &x[j], &cap[j], &T[j]);
        if (!st) st = B == 1 ? lw_trainer_score(&sc.tr, x[0], T[0], scores)
                             : lw_trainer_score_batch(&sc.tr, &batch, nb, (const float *const *)x, T, NULL, scores);
        if (st) break;
        int i = i0 + nb - 1;
        if (!e->a->quiet && ((i0 / 10) != ((i + 1) / 10) || i + 1 == e->data.n))
            fprintf(stderr, "\reval: %d/%d  %.3f s/example   ", i + 1, e->data.n, (lw_now_s() - t0) / (i + 1));
    }
    if (!e->a->quiet) fputc('\n', stderr);
    if (!st && e->a->calibrate) {   /* the offsets need every example's scores first */
        int right = 0;   /* the same scores uncalibrated: the comparison comes from one scoring pass */
        for (int i = 0; i < e->data.n; i++) right += lw_scores_argmax(all + (size_t)i * L, L) == e->data.examples[i].label;
        double raw = e->data.n ? (double)right / e->data.n : 0.0;
        if (!e->extra) e->extra = json_object();
        json_object_set_new(e->extra, "calibrate", json_string("mean"));
        json_object_set_new(e->extra, "uncalibrated_accuracy", json_real(raw));
        printf("  uncalibrated accuracy  %.4f  (%d of %d, the same scores before --calibrate)\n", raw, right,
               e->data.n);
        lw_scores_calibrate_mean(all, e->data.n, L, NULL);
        char named[48];   /* e->method may be e->method_buf itself ("bridge-first") */
        snprintf(named, sizeof named, "%s", e->method);
        snprintf(e->method_buf, sizeof e->method_buf, "%.47s-calibrated", named);
        e->method = e->method_buf;
    }
    for (int i = 0; !st && i < e->data.n; i++) {
        const double *scores = all + (size_t)i * L;
        pred[i] = lw_scores_argmax(scores, L);
        if (margins) margins[i] = lw_scores_margin(scores, L);
        if (sf) st = lw_scores_write_line(sf, e->a->scores, &e->task, (uint64_t)i, scores);
    }
    if (sf && fclose(sf) != 0 && !st) st = lw_fail(LW_ERR_IO, "eval: writing %s", e->a->scores);
    free(all);
    for (int j = 0; x && j < B; j++) free(x[j]);
    free(x);
    free(cap);
    free(T);
    lw_trainer_batch_scorer_free(&batch);
    lw_bridge_scorer_close(&sc);
    return st;
}

/* The bridge, then the text where its margin is below --threshold. */
static lw_status fallback_predict(eval_ctx *e, int *pred)
{
    double *margins = malloc((size_t)e->data.n * sizeof *margins), t0 = lw_now_s();
    if (!margins) return lw_fail(LW_ERR_NOMEM, "eval: out of memory");
    lw_status st = bridge_predict(e, pred, margins);
    if (!st)
        st = lw_bridge_fallback(e->m, &e->task, &e->data, margins, e->a->threshold, e->a->curve, &e->a->base,
                                lw_now_s() - t0, pred, &e->extra);
    e->method = "bridge-fallback";
    free(margins);
    return st;
}

static lw_status probe_predict(eval_ctx *e, int *pred)
{
    char train_path[4096];
    if (e->a->train) lw_pathf(train_path, sizeof train_path, "%s", e->a->train);
    else {
        const char *slash = strrchr(e->a->split, '/');
        int dir = slash ? (int)(slash - e->a->split) : 1;
        lw_pathf(train_path, sizeof train_path, "%.*s/train.jsonl", dir, slash ? e->a->split : ".");
    }
    lw_dataset train = {0};
    lw_sender_cache tstates = {.fd = -1};
    lw_linear_probe probe = {0};
    float *tf = NULL, *ef = NULL;
    int *y = NULL;
    const lw_model_config *s = &e->m->sender;
    int layer = e->m->bridge.source_layer;
    lw_subset sel = train_subset(e->a);
    lw_status st = lw_dataset_load_subset(train_path, &e->task, &sel, &train);
    if (!st) st = lw_sender_cache_get(s, layer, train_path, &train, e->cache, e->a->quiet, &tstates);
    if (!st) st = lw_probe_features(&tstates, train.n, &tf);
    if (!st && !(y = malloc((size_t)train.n * sizeof *y))) st = lw_fail(LW_ERR_NOMEM, "eval: out of memory");
    for (int i = 0; !st && i < train.n; i++) y[i] = train.examples[i].label;
    lw_probe_options po = lw_probe_defaults();
    if (!st) st = lw_linear_probe_train(&probe, tf, y, train.n, s->hidden, e->task.n_labels, &po);
    if (!st) st = lw_probe_features(&e->states, e->data.n, &ef);
    for (int i = 0; !st && i < e->data.n; i++) pred[i] = lw_linear_probe_predict(&probe, ef + (size_t)i * s->hidden);
    if (!st && !e->a->quiet) fprintf(stderr, "linear probe: fitted on %d examples of %s\n", train.n, train_path);
    lw_linear_probe_free(&probe);
    free(tf);
    free(ef);
    free(y);
    lw_sender_cache_close(&tstates);
    lw_dataset_free(&train);
    return st;
}

static lw_status text_predict(eval_ctx *e, int *pred)
{
    lw_text_method method = (lw_text_method)lw_text_method_from_name(e->a->method);
    return lw_text_method_predict(e->m, &e->task, &e->data, method, e->a->checkpoint, e->a->quiet, pred, &e->text_M);
}

/* The baselines read the text itself: no sender states. */
static lw_status baseline_predict(eval_ctx *e, int *pred)
{
    char train_path[4096];
    if (e->a->train) lw_pathf(train_path, sizeof train_path, "%s", e->a->train);
    else {
        const char *slash = strrchr(e->a->split, '/');
        int dir = slash ? (int)(slash - e->a->split) : 1;
        lw_pathf(train_path, sizeof train_path, "%.*s/train.jsonl", dir, slash ? e->a->split : ".");
    }
    lw_subset sel = train_subset(e->a);
    return lw_baseline_predict(e->m, &e->task, &e->data, train_path, &sel,
                               (lw_baseline_method)e->a->baseline, &e->a->base, pred, &e->extra);
}

static void print_table(const eval_ctx *e, const lw_metrics *mt, const double ci[4], double secs)
{
    const lw_task *t = &e->task;
    printf("%s on %s (%d examples, method %s, %.1f s)\n", t->name, e->a->split, mt->n, e->method, secs);
    printf("  accuracy  %.4f  [%.4f, %.4f]\n  macro-F1  %.4f  [%.4f, %.4f]\n", mt->accuracy, ci[0], ci[1],
           mt->macro_f1, ci[2], ci[3]);
    if (e->a->quiet) return;
    printf("  %-16s %9s %9s %9s %7s\n", "class", "precision", "recall", "f1", "gold");
    for (int c = 0; c < t->n_labels; c++) {
        long gold = 0;
        for (int p = 0; p < t->n_labels; p++) gold += mt->confusion[c * t->n_labels + p];
        printf("  %-16.16s %9.4f %9.4f %9.4f %7ld\n", t->labels[c], mt->precision[c], mt->recall[c], mt->f1[c], gold);
    }
    if (t->n_labels > 20) return;
    printf("  confusion (rows gold, columns predicted):\n");
    for (int c = 0; c < t->n_labels; c++) {
        printf("  %-16.16s", t->labels[c]);
        for (int p = 0; p < t->n_labels; p++) printf(" %6ld", mt->confusion[c * t->n_labels + p]);
        printf("\n");
    }
}

static lw_status write_json(const eval_ctx *e, const lw_metrics *mt, const double ci[4], double secs)
{
    const lw_task *t = &e->task;
    json_t *o = json_object(), *classes = json_array(), *conf = json_array();
    json_object_set_new(o, "task", json_string(t->name));
    json_object_set_new(o, "split", json_string(e->a->split));
    char subset[96];
    lw_subset_describe(&(lw_subset){e->a->limit, e->a->stratified, (uint64_t)e->a->subset_seed}, subset, sizeof subset);
    json_object_set_new(o, "subset", json_string(subset));
    if (e->a->limit_train) {
        lw_subset ts = train_subset(e->a);
        lw_subset_describe(&ts, subset, sizeof subset);
        json_object_set_new(o, "train_subset", json_string(subset));
    }
    json_object_set_new(o, "method", json_string(e->method));
    json_object_set_new(o, "pair", json_string(e->m->name));
    if (e->a->checkpoint) json_object_set_new(o, "checkpoint", json_string(e->a->checkpoint));
    /* lw report groups by these; null where the method has none */
    bool bridge = !strcmp(e->a->method, "bridge") || !strcmp(e->a->method, "bridge-fallback");
    json_object_set_new(o, "soft_tokens", bridge ? json_integer(e->a->M) : e->text_M ? json_integer(e->text_M)
                                                                                    : json_null());
    json_object_set_new(o, "seed", e->a->has_seed ? json_integer(e->a->seed) : json_null());
    json_object_set_new(o, "n", json_integer(mt->n));
    json_object_set_new(o, "accuracy", json_real(mt->accuracy));
    json_object_set_new(o, "accuracy_ci95", json_pack("[f, f]", ci[0], ci[1]));
    json_object_set_new(o, "macro_f1", json_real(mt->macro_f1));
    json_object_set_new(o, "macro_f1_ci95", json_pack("[f, f]", ci[2], ci[3]));
    json_object_set_new(o, "bootstrap", json_pack("{s:i, s:i}", "resamples", BOOTSTRAP_RESAMPLES, "seed",
                                                  BOOTSTRAP_SEED));
    json_object_set_new(o, "seconds", json_real(secs));
    for (int c = 0; c < t->n_labels; c++) {
        json_array_append_new(classes, json_pack("{s:s, s:f, s:f, s:f}", "label", t->labels[c], "precision",
                                                 mt->precision[c], "recall", mt->recall[c], "f1", mt->f1[c]));
        json_t *row = json_array();
        for (int p = 0; p < t->n_labels; p++) json_array_append_new(row, json_integer(mt->confusion[c * t->n_labels + p]));
        json_array_append_new(conf, row);
    }
    if (e->extra) json_object_update(o, e->extra);
    json_object_set_new(o, "per_class", classes);
    json_object_set_new(o, "confusion", conf);
    char *text = json_dumps(o, JSON_INDENT(2));
    json_decref(o);
    if (!text) return lw_fail(LW_ERR_NOMEM, "eval: building the JSON");
    size_t n = strlen(text);
    lw_status st = lw_write_file_atomic(e->a->json, text, n, NULL);
    free(text);
    return st;
}

static int fail(const char *what)
{
    fprintf(stderr, "lw eval: %s: %s\n", what, lw_last_error());
    return 1;
}

static int run(const lw_pair *pair, const eval_args *a)
{
    eval_ctx e = {.pair = pair, .m = &pair->manifest, .a = a, .states = {.fd = -1}, .method = a->method};
    char task_path[4096];
    int *gold = NULL, *pred = NULL, rc = 1;
    lw_metrics mt = {0};
    double ci[4];
    if (lw_task_file(e.m, a->tasks_dir, a->task, task_path, sizeof task_path) || lw_task_load(task_path, &e.task))
        return fail("task");
    if (a->baseline >= 0 && a->base.generate) {   /* lw report keeps the two conventions apart */
        snprintf(e.method_buf, sizeof e.method_buf, "%s-generate", a->method);
        e.method = e.method_buf;
    }
    double t0 = lw_now_s();
    lw_subset sel = {a->limit, a->stratified, (uint64_t)a->subset_seed};
    if (lw_dataset_load_subset(a->split, &e.task, &sel, &e.data)) { fail("data"); goto done; }
    bool text = lw_text_method_from_name(a->method) >= 0;
    /* a bridge trained on a layer mix reads those layers' states side by side */
    int layers[LW_LAYER_MIX_MAX] = {e.m->bridge.source_layer}, n_layers = 1;
    if (a->baseline < 0 && !text && (lw_cache_dir(a->cache_dir, e.cache, sizeof e.cache) ||
        (a->checkpoint && lw_bridge_checkpoint_layers(a->checkpoint, e.m->sender.hidden, e.m->bridge.source_layer,
                                                      layers, &n_layers)) ||
        lw_sender_cache_get_layers(&e.m->sender, layers, n_layers, a->split, &e.data, e.cache, a->quiet,
                                   &e.states))) {
        fail("sender states");
        goto done;
    }
    gold = malloc((size_t)e.data.n * sizeof *gold);
    pred = calloc((size_t)e.data.n, sizeof *pred);
    if (!gold || !pred) { fprintf(stderr, "lw eval: out of memory\n"); goto done; }
    for (int i = 0; i < e.data.n; i++) gold[i] = e.data.examples[i].label;
    lw_status st = a->baseline >= 0 ? baseline_predict(&e, pred)
                   : text ? text_predict(&e, pred)
                   : !strcmp(a->method, "bridge") ? bridge_predict(&e, pred, NULL)
                   : !strcmp(a->method, "bridge-fallback") ? fallback_predict(&e, pred) : probe_predict(&e, pred);
    if (st) { fail(a->method); goto done; }
    double secs = lw_now_s() - t0;
    int C = e.task.n_labels;
    if (lw_metrics_compute(gold, pred, e.data.n, C, &mt) ||
        lw_bootstrap_ci(gold, pred, e.data.n, C, LW_METRIC_ACCURACY, BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, &ci[0],
                        &ci[1]) ||
        lw_bootstrap_ci(gold, pred, e.data.n, C, LW_METRIC_MACRO_F1, BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, &ci[2],
                        &ci[3])) {
        fail("metrics");
        goto done;
    }
    print_table(&e, &mt, ci, secs);
    if (a->json && write_json(&e, &mt, ci, secs)) { fail("writing JSON"); goto done; }
    rc = 0;
done:
    lw_metrics_free(&mt);
    json_decref(e.extra);
    free(gold);
    free(pred);
    lw_sender_cache_close(&e.states);
    lw_dataset_free(&e.data);
    lw_task_free(&e.task);
    return rc;
}

/* A generate or choice task (task.h) takes its own path: the task named by
 * --task (and --tasks-dir) is looked at first. A task that does not load is
 * left to the classification path, which reports it as it always has. */
static bool answer_task(const lw_pair *pair, int argc, char **argv, lw_task *task)
{
    if (!lw_named_task_peek(pair, argc, argv, task)) return false;
    if (task->kind != LW_TASK_CLASSIFY) return true;
    lw_task_free(task);
    return false;
}

int lw_cmd_eval(const lw_pair *pair, int argc, char **argv)
{
    if (lw_wants_help(argc, argv)) {
        usage(pair);
        return 0;
    }
    lw_task answer;
    if (answer_task(pair, argc, argv, &answer)) {
        const char *method = NULL;
        for (int i = 0; i + 1 < argc; i++)
            if (!strcmp(argv[i], "--method")) method = argv[i + 1];
        bool gen = answer.kind == LW_TASK_GENERATE;
        int rc = method && !strcmp(method, "interlingua") && gen ? lw_cmd_eval_interlingua(pair, &answer, argc, argv)
                 : method && !strcmp(method, "bridge") && gen    ? lw_cmd_eval_bridge_answer(pair, &answer, argc, argv)
                                                                 : lw_cmd_eval_answer(&pair->manifest, &answer, argc, argv);
        lw_task_free(&answer);
        return rc;
    }
    eval_args a;
    if (!parse(pair, argc, argv, &a)) return 2;
    if ((!strcmp(a.method, "bridge") || !strcmp(a.method, "bridge-fallback") ||
         lw_text_method_from_name(a.method) >= 0) && read_run_json(&a)) {
        fprintf(stderr, "lw eval: %s\n", lw_last_error());
        return 1;
    }
    if (!lw_threads_apply("eval", a.threads)) return 2;
    lw_pair with_dtype;
    lw_pair_with_dtype(&with_dtype, pair, a.dtype);
    return run(&with_dtype, &a);
}
