/* lw train: fit the bridge on a task's training split. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd_common.h"
#include "clock.h"
#include "comm.h"
#include "comm_nccl.h"
#include "cuda_driver.h"
#include "dataset.h"
#include "fileutil.h"
#include "gpu_receiver.h"
#include "lw_cli.h"
#include "objectives.h"
#include "early_stop.h"
#include "sender_cache.h"
#include "sender_cache_layers.h"
#include "sender_states.h"
#include "train.h"
#include "train_rules.h"
#include "run_dir.h"
#include "adapter_set.h"
#include "train_text.h"

static void usage(const lw_pair *pair)
{
    const lw_train_config *t = &pair->manifest.train;
    printf("usage: lw train --task NAME --data DIR [options]\n\n"
           "Trains the bridge (%d soft tokens) on DIR/train.jsonl of a task; the receiver never\n"
           "sees the text, only the soft tokens the bridge makes from the sender's layer-%d states.\n\n"
           "  --task NAME          task file <tasks dir>/NAME.json (labels, verbalizers, prompt)\n"
           "  --data DIR           folder holding train.jsonl ({\"text\", \"label\"} per line)\n"
           "  --train FILE         the training file itself (instead of --data)\n"
           "  --limit-train N      use N examples only: the file's first N, or with --subset stratified\n"
           "                       N drawn per label (for files sorted by label, as Banking77's)\n"
           "  --subset KIND        first (default) or stratified; --subset-seed S seeds the draw (1)\n"
           "  --no-head-cache      every example alone from position 0, not packed into one pass (packing:\n"
           "                       no adapters, or LoRA without dropout; the same result to float rounding;\n"
           "                       reproduces runs made before packing)\n"
           "  --steps N            optimiser steps (default %d)\n"
           "  --batch N            examples per step (default %d; x --grad-accum %d)\n"
           "  --grad-accum N\n"
           "  --lr X               peak learning rate (default %g; warmup --warmup %d, then cosine)\n"
           "  --warmup N\n"
           "  --seed N             bridge init and sampling (default %llu)\n"
           "  --diversity X        weight of the soft-token cosine-similarity penalty (default %g)\n"
           "  --ce full|first      the receiver's cross-entropy over the gold verbalizer's tokens (full, the\n"
           "                       mean over them; default) or over its first token only (first; scoring\n"
           "                       in lw eval stays the full verbalizer's). docs/objectives.md\n"
           "  --sender-layers L,.. a learned mix of these sender layers (0 = embeddings) instead of the one\n"
           "                       above, saved with the bridge (layer_mix.safetensors); docs/objectives.md\n"
           "  --align X            weight of 1 - cos(mean soft token, the gold verbalizer's mean receiver\n"
           "                       input embedding) (default 0: off)\n"
           "  --spread X           weight of the term against the message collapse: each soft-token message\n"
           "                       pushed away (cosine) from the mean of the step's earlier ones (default 0:\n"
           "                       off; runtime/train/spread_term.h, docs/results.md \"Stop 22\")\n"
           "  --weight-decay X     AdamW weight decay of the decayed tensors (default: the manifest's)\n"
           "  --grad-clip X        clip the global gradient norm at X (0: no clipping; default: the manifest's)\n"
           "                       (these options take the ranges of the manifest's \"train\" block)\n"
           "  --skip-nonfinite N   skip up to N steps whose loss or gradient is NaN/Inf (counted, logged);\n"
           "                       default 0: the first such step stops the run, exit 1, checkpoints kept\n"
           "  --eval-every K       early stopping: every K steps, the training loss (no gradient) on a dev\n"
           "                       slice; a new best is saved as --out/best, each evaluation logged in\n"
           "                       --out/dev_log.jsonl (resumable like the run). Needs --dev-slice\n"
           "  --dev-slice N        the slice: N examples of --dev (the first N, or with --subset stratified\n"
           "                       N drawn over the labels, as --limit-train draws)\n"
           "  --dev FILE           the slice's file (default DIR/dev.jsonl; a held-out part of the training\n"
           "                       data keeps the dev split clean for the final evaluation)\n"
           "  --patience P         stop after P evaluations in a row without a better dev loss (default 0:\n"
           "                       never stop; evaluate --out/best)\n"
           "  --log-grad-groups    train_log.jsonl also gets each bridge tensor's gradient norm before\n"
           "                       clipping (\"grad_groups\"): where a |g| spike comes from\n"
           "  --balanced           class-balanced sampling\n"
           "  --soft-tokens M      override M (CPU path only; the CUDA kernels are built for %d)\n"
           "  --out DIR            checkpoints, train_log.jsonl and run.json, a copy of it in every\n"
           "                       checkpoint folder (default runs/<task>); a folder\n"
           "                       that holds a run is refused unless --resume continues it or --force\n"
           "                       moves it aside (to DIR.replaced-<time>); one writer at a time (DIR/.lock)\n"
           "  --force              replace the run in --out (moved aside, not deleted)\n"
           "  --checkpoint-every N save DIR/step-N every N steps (default: final/ only)\n"
           "  --resume DIR         continue the run saved in checkpoint DIR, bit for bit\n"
           "  --tasks-dir DIR      default <manifest dir>/../tasks\n"
           "  --cache-dir DIR      sender-state cache (default $LWC_CACHE_DIR or .lwc-cache/ beside lw)\n"
           "  --lora               also train LoRA on the receiver (the manifest's \"lora\" block, else\n"
           "                       rank 8, alpha 16, targets q,v, every layer); on when the manifest has the block\n"
           "  --lora-rank N        LoRA rank (alpha becomes 2 N)\n"
           "  --lora-targets LIST  e.g. q,k,v,o,gate,up,down\n"
           "  --lora-layers SPEC   N (the first N layers) or a list 0,3,5\n"
           "  --deep-prefix        also train a deep prefix (the manifest's \"deep_prefix\" block, else\n"
           "                       length 8, hidden 128); on when the manifest has the block\n"
           "  --prefix-length P    keys/values per layer\n"
           "  --no-adapters        bridge only, whatever the manifest says\n"
           "  --method M           bridge (default), or a trained baseline on the receiver reading the\n"
           "                       text (no sender): prompt-tuning (--soft-tokens learned soft tokens\n"
           "                       before the text) or lora (the --lora-* options; default r 8 on q,v)\n"
           "  --quiet              no progress line\n"
           "  --dtype fp32|bf16|q8|native  the frozen sender and receiver on the CPU (default fp32, the\n"
           "                       reference): bf16 keeps their projections and output head in bf16, q8 as\n"
           "                       Q8_0 blocks made at load, native as the GGUF file's blocks (fp32 sums);\n"
           "                       with --device cuda, fp32 or bf16: the GPU receiver's weights (bf16: its\n"
           "                       backward in bf16 products, fp32 sums), the CPU's stay fp32\n"
           LW_THREADS_HELP
           "  --device cpu|cuda    where the receiver runs (bridge method; default cpu). cuda: fp32 (or\n"
           "                       --dtype bf16) weights on GPU LW_LOCAL_RANK (0), cuBLAS and this pair's kernels; the\n"
           "                       bridge (and a deep prefix's generator) stay on the CPU\n"
           "  --comm NAME          data parallel over the ranks mpirun started: mpi (CPU processes), nccl\n"
           "                       (one GPU a rank, bootstrapped through MPI) or local (world size 1);\n"
           "                       default mpi under `mpirun -np N` with N > 1, else local. See\n"
           "                       docs/distributed.md\n\n"
           "The same seed gives the same run, whatever --threads (OpenBLAS runs one thread of its own).\n"
           "On a generate task (squad, hotpotqa, gsm8k) lw train trains the bridge on written answers, or\n"
           "the interlingua when the manifest has its block: --split FILE, options in docs/interlingua.md.\n",
           pair->manifest.bridge.soft_tokens, pair->manifest.bridge.source_layer, t->steps, t->batch,
           t->grad_accum, (double)t->lr, t->warmup_steps, t->seed, (double)t->diversity_weight,
           pair->manifest.bridge.soft_tokens);
}

typedef struct {
    const char *task, *data, *train, *out, *resume, *tasks_dir, *cache_dir;
    const char *method;             /* "bridge" or a text method (train_text.h) */
    const char *comm;               /* --comm; NULL: from the environment */
    const char *device;             /* --device: "cpu" or "cuda" */
    lw_weights_dtype dtype;         /* --dtype: the frozen models' matrices on the CPU */
    int threads;                    /* --threads; 0: $LWC_THREADS, else 1 */
    int limit, M, checkpoint_every;
    bool stratified;                /* --subset stratified */
    bool no_head_cache;             /* --no-head-cache: every example's receiver pass from position 0 */
    int subset_seed;
    bool quiet;
    bool force;                     /* --force: move a run already in --out aside */
    int skip_nonfinite;             /* --skip-nonfinite N */
    bool first_token_ce;            /* --ce first */
    float align_weight;             /* --align X */
    float spread_weight;            /* --spread X (spread_term.h) */
    bool log_grad_groups;           /* --log-grad-groups */
    int eval_every, dev_slice, patience;   /* early stopping (early_stop.h) */
    const char *dev;                /* --dev FILE */
    const char *sender_layers;      /* --sender-layers L1,L2,..: a layer mix; NULL: the manifest's layer */
    lw_train_config cfg;
    bool lora, prefix;              /* adapters trained with the bridge */
    lw_lora_config lora_cfg;
    lw_deep_prefix_config prefix_cfg;
} train_args;

/* The options whose ranges are the manifest's (train_rules.h): the rule's
 * key for a flag, or NULL. */
static const char *train_rule_of(const char *flag)
{
    static const char *const keys[] = {"lr", "steps", "batch", "grad_accum", "warmup_steps", "weight_decay",
                                       "grad_clip", "diversity_weight", "seed"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
        if (!strcmp(lw_train_rule_find(keys[k])->flag, flag)) return keys[k];
    return NULL;
}

static void set_train_option(lw_train_config *c, const char *key, double v)
{
    if (!strcmp(key, "lr")) c->lr = (float)v;
    else if (!strcmp(key, "steps")) c->steps = (int)v;
    else if (!strcmp(key, "batch")) c->batch = (int)v;
    else if (!strcmp(key, "grad_accum")) c->grad_accum = (int)v;
    else if (!strcmp(key, "warmup_steps")) c->warmup_steps = (int)v;
    else if (!strcmp(key, "weight_decay")) c->weight_decay = (float)v;
    else if (!strcmp(key, "grad_clip")) c->grad_clip = (float)v;
    else if (!strcmp(key, "diversity_weight")) c->diversity_weight = (float)v;
    else if (!strcmp(key, "seed")) c->seed = (unsigned long long)v;
}

static bool parse(const lw_pair *pair, int argc, char **argv, train_args *a)
{
    memset(a, 0, sizeof *a);
    a->cfg = pair->manifest.train;
    a->M = pair->manifest.bridge.soft_tokens;
    a->method = "bridge";
    a->device = "cpu";
    a->subset_seed = 1;
    const lw_manifest *man = &pair->manifest;
    a->lora = man->has_lora;
    a->prefix = man->has_deep_prefix;
    if (man->has_lora) a->lora_cfg = man->lora;
    else lw_lora_config_parse(&a->lora_cfg, 8, 16.0f, 0.0f, "q,v", NULL);
    a->prefix_cfg = man->has_deep_prefix ? man->deep_prefix
                                         : (lw_deep_prefix_config){.length = 8, .dropout = 0.0f, .hidden = 128};
    const char *targets = NULL, *layers = NULL;
    int rank = 0;
    bool no_adapters = false;
    for (int i = 0; i < argc; i++) {
        const char *o = argv[i];
        bool ok = true;
        const char *rule;
        if (!strcmp(o, "--task")) ok = lw_opt_str(argc, argv, &i, &a->task);
        else if (!strcmp(o, "--data")) ok = lw_opt_str(argc, argv, &i, &a->data);
        else if (!strcmp(o, "--train")) ok = lw_opt_str(argc, argv, &i, &a->train);
        else if (!strcmp(o, "--out")) ok = lw_opt_str(argc, argv, &i, &a->out);
        else if (!strcmp(o, "--resume")) ok = lw_opt_str(argc, argv, &i, &a->resume);
        else if (!strcmp(o, "--method")) ok = lw_opt_str(argc, argv, &i, &a->method);
        else if (!strcmp(o, "--comm")) ok = lw_opt_str(argc, argv, &i, &a->comm);
        else if (!strcmp(o, "--device")) ok = lw_opt_str(argc, argv, &i, &a->device);
        else if (!strcmp(o, "--dtype")) {
            const char *v = NULL;
            ok = lw_opt_str(argc, argv, &i, &v) && lw_opt_dtype("train", v, &a->dtype);
        }
        else if (!strcmp(o, "--threads")) ok = lw_opt_int(argc, argv, &i, 1, LW_THREADS_MAX, &a->threads);
        else if (!strcmp(o, "--tasks-dir")) ok = lw_opt_str(argc, argv, &i, &a->tasks_dir);
        else if (!strcmp(o, "--cache-dir")) ok = lw_opt_str(argc, argv, &i, &a->cache_dir);
        else if (!strcmp(o, "--limit-train")) ok = lw_opt_int(argc, argv, &i, 1, 1 << 28, &a->limit);
        else if (!strcmp(o, "--subset")) ok = lw_opt_subset(argc, argv, &i, &a->stratified);
        else if (!strcmp(o, "--subset-seed")) ok = lw_opt_int(argc, argv, &i, 0, 2147483647L, &a->subset_seed);
        else if (!strcmp(o, "--soft-tokens")) ok = lw_opt_int(argc, argv, &i, 1, 64, &a->M);
        else if (!strcmp(o, "--checkpoint-every")) ok = lw_opt_int(argc, argv, &i, 0, 1 << 30, &a->checkpoint_every);
        else if ((rule = train_rule_of(o))) {
            double v;
            if ((ok = lw_opt_train_rule(argc, argv, &i, rule, &v))) set_train_option(&a->cfg, rule, v);
        } else if (!strcmp(o, "--skip-nonfinite"))
            ok = lw_opt_int(argc, argv, &i, 0, 1 << 30, &a->skip_nonfinite);
        else if (!strcmp(o, "--ce")) {
            const char *v = NULL;
            if ((ok = lw_opt_str(argc, argv, &i, &v)) && strcmp(v, "full") && strcmp(v, "first")) {
                fprintf(stderr, "lw train: --ce is full or first, not '%s'\n", v);
                ok = false;
            }
            if (ok) a->first_token_ce = !strcmp(v, "first");
        } else if (!strcmp(o, "--align")) {
            const char *v = NULL;
            char *end = NULL;
            if ((ok = lw_opt_str(argc, argv, &i, &v))) {
                double w = strtod(v, &end);
                if (end == v || *end || !(w >= 0.0 && w <= 100.0)) {
                    fprintf(stderr, "lw train: --align takes a weight in [0, 100], not '%s'\n", v);
                    ok = false;
                } else a->align_weight = (float)w;
            }
        } else if (!strcmp(o, "--spread")) {
            const char *v = NULL;
            char *end = NULL;
            if ((ok = lw_opt_str(argc, argv, &i, &v))) {
                double w = strtod(v, &end);
                if (end == v || *end || !(w >= 0.0 && w <= 100.0)) {
                    fprintf(stderr, "lw train: --spread takes a weight in [0, 100], not '%s'\n", v);
                    ok = false;
                } else a->spread_weight = (float)w;
            }
        }
        else if (!strcmp(o, "--log-grad-groups")) a->log_grad_groups = true;
        else if (!strcmp(o, "--sender-layers")) ok = lw_opt_str(argc, argv, &i, &a->sender_layers);
        else if (!strcmp(o, "--eval-every")) ok = lw_opt_int(argc, argv, &i, 1, 1 << 30, &a->eval_every);
        else if (!strcmp(o, "--dev-slice")) ok = lw_opt_int(argc, argv, &i, 1, 1 << 28, &a->dev_slice);
        else if (!strcmp(o, "--patience")) ok = lw_opt_int(argc, argv, &i, 0, 1 << 20, &a->patience);
        else if (!strcmp(o, "--dev")) ok = lw_opt_str(argc, argv, &i, &a->dev);
        else if (!strcmp(o, "--force")) a->force = true;
        else if (!strcmp(o, "--balanced")) a->cfg.class_balanced = true;
        else if (!strcmp(o, "--quiet")) a->quiet = true;
        else if (!strcmp(o, "--no-head-cache")) a->no_head_cache = true;
        else if (!strcmp(o, "--lora")) a->lora = true;
        else if (!strcmp(o, "--deep-prefix")) a->prefix = true;
        else if (!strcmp(o, "--no-adapters")) no_adapters = true;
        else if (!strcmp(o, "--lora-rank")) ok = lw_opt_int(argc, argv, &i, 1, 1024, &rank), a->lora = true;
        else if (!strcmp(o, "--lora-targets")) ok = lw_opt_str(argc, argv, &i, &targets), a->lora = true;
        else if (!strcmp(o, "--lora-layers")) ok = lw_opt_str(argc, argv, &i, &layers), a->lora = true;
        else if (!strcmp(o, "--prefix-length"))
            ok = lw_opt_int(argc, argv, &i, 1, 256, &a->prefix_cfg.length), a->prefix = true;
        else {
            fprintf(stderr, "lw train: unknown option '%s' (see lw train --help)\n", o);
            return false;
        }
        if (!ok) return false;
    }
    if (!a->task || (!a->data && !a->train)) {
        fprintf(stderr, "lw train: --task and --data (or --train) are required (see lw train --help)\n");
        return false;
    }
    if (strcmp(a->method, "bridge") && lw_text_method_from_name(a->method) < 0) {
        fprintf(stderr, "lw train: --method is bridge, prompt-tuning or lora, not '%s'\n", a->method);
        return false;
    }
    if (strcmp(a->device, "cpu") && strcmp(a->device, "cuda")) {
        fprintf(stderr, "lw train: --device is cpu or cuda, not '%s'\n", a->device);
        return false;
    }
    if (!strcmp(a->device, "cuda") && a->dtype != LW_WEIGHTS_F32 && a->dtype != LW_WEIGHTS_BF16) {
        fprintf(stderr, "lw train: --dtype %s is for --device cpu (the GPU receiver is fp32 or bf16)\n",
                lw_weights_dtype_name(a->dtype));
        return false;
    }
    if (!strcmp(a->device, "cuda") && strcmp(a->method, "bridge")) {
        fprintf(stderr, "lw train: --device cuda trains the bridge only (not --method %s) for now\n", a->method);
        return false;
    }
    if (a->comm && lw_comm_backend_from_name(a->comm) < 0) {
        fprintf(stderr, "lw train: --comm is mpi, nccl or local, not '%s'\n", a->comm);
        return false;
    }
    if (no_adapters) a->lora = a->prefix = false;
    lw_lora_config c;   /* the flags replace only what they name */
    if ((targets || layers) && lw_lora_config_parse(&c, 1, 1.0f, 0.0f, targets ? targets : "q", layers)) {
        fprintf(stderr, "lw train: %s\n", lw_last_error());
        return false;
    }
    if (targets) a->lora_cfg.targets = c.targets;
    if (layers) {
        a->lora_cfg.first_layers = c.first_layers;
        a->lora_cfg.n_layer_list = c.n_layer_list;
        memcpy(a->lora_cfg.layer_list, c.layer_list, sizeof c.layer_list);
    }
    if (rank) a->lora_cfg.rank = rank, a->lora_cfg.alpha = 2.0f * (float)rank;
    if ((a->eval_every > 0) != (a->dev_slice > 0) || (a->patience > 0 && !a->eval_every) ||
        (a->dev && !a->dev_slice)) {
        fprintf(stderr, "lw train: early stopping takes --eval-every K and --dev-slice N together (--patience P "
                "and --dev FILE need them)\n");
        return false;
    }
    if (a->eval_every && (strcmp(a->method, "bridge") || !strcmp(a->device, "cuda"))) {
        fprintf(stderr, "lw train: early stopping is for the bridge on the CPU for now\n");
        return false;
    }
    if (a->spread_weight > 0.0f && strcmp(a->method, "bridge")) {
        fprintf(stderr, "lw train: --spread is a term on the bridge's soft tokens (not --method %s)\n", a->method);
        return false;
    }
    if (a->force && a->resume) {
        fprintf(stderr, "lw train: --force replaces the run in --out, --resume continues it: not both\n");
        return false;
    }
    return true;
}

/* DIR/run.json's text: what the run was, for lw eval (seed, soft_tokens)
 * and for people; the training loop writes it once the run has started. */
static char *run_json_text(const train_args *a, const char *train_path, int n)
{
    const lw_train_config *c = &a->cfg;
    json_t *o = json_pack("{s:s, s:s, s:i, s:I, s:i, s:i, s:i, s:i, s:f, s:i, s:f, s:f, s:b}", "task", a->task,
                          "train", train_path, "train_examples", n, "seed", (json_int_t)c->seed, "soft_tokens", a->M,
                          "steps", c->steps, "batch", c->batch, "grad_accum", c->grad_accum, "lr", (double)c->lr,
                          "warmup_steps", c->warmup_steps, "weight_decay", (double)c->weight_decay,
                          "diversity_weight", (double)c->diversity_weight, "class_balanced", c->class_balanced);
    if (o) json_object_set_new(o, "method", json_string(a->method));
    if (o) json_object_set_new(o, "dtype", json_string(lw_weights_dtype_name(a->dtype)));
    char subset[96];
    lw_subset_describe(&(lw_subset){a->limit, a->stratified, (uint64_t)a->subset_seed}, subset, sizeof subset);
    if (o) json_object_set_new(o, "train_subset", json_string(subset));
    if (o) json_object_set_new(o, "head_cache", json_boolean(!a->no_head_cache));
    if (o) json_object_set_new(o, "ce", json_string(a->first_token_ce ? "first" : "full"));
    if (o) json_object_set_new(o, "align_weight", json_real(a->align_weight));
    if (o) json_object_set_new(o, "spread_weight", json_real(a->spread_weight));
    if (o && a->sender_layers) json_object_set_new(o, "sender_layers", json_string(a->sender_layers));
    if (o && a->eval_every)
        json_object_set_new(o, "early_stop", json_pack("{s:i, s:i, s:i}", "eval_every", a->eval_every, "dev_slice",
                                                       a->dev_slice, "patience", a->patience));
    if (o && !strcmp(a->method, "lora")) json_object_set_new(o, "soft_tokens", json_null());
    char *text = o ? json_dumps(o, JSON_INDENT(2) | JSON_REAL_PRECISION(7)) : NULL;
    json_decref(o);
    if (!text) lw_fail(LW_ERR_NOMEM, "train: building run.json");
    return text;
}

/* This process's rank in a data-parallel run, for its messages. */
static int g_rank;

static int fail(const char *what)
{
    if (g_rank) fprintf(stderr, "lw train (rank %d): %s: %s\n", g_rank, what, lw_last_error());
    else fprintf(stderr, "lw train: %s: %s\n", what, lw_last_error());
    return 1;
}

/* prompt-tuning / lora: the receiver reads the text; no sender states. */
static int run_text(const lw_manifest *m, const train_args *a, const lw_task *task, const lw_dataset *data,
                    const char *train_path, const char *out)
{
    lw_text_method method = (lw_text_method)lw_text_method_from_name(a->method);
    char *run_json = run_json_text(a, train_path, data->n);
    if (!run_json) return fail("run.json");
    lw_train_options o = {.cfg = a->cfg, .checkpoint_every = a->checkpoint_every, .out_dir = out,
                          .no_head_cache = a->no_head_cache, .skip_nonfinite = a->skip_nonfinite,
                          .run_json = run_json, .resume_dir = a->resume, .quiet = a->quiet};
    lw_train_result r;
    lw_status st = lw_text_method_train(m, task, data, method, a->M, &a->lora_cfg, &o, &r);
    free(run_json);
    if (st) return fail("training");
    printf("trained %s %ld steps in %.1f s (%.3f s/step); last loss %.4f, train acc %.3f; checkpoint %s/final\n",
           a->method, r.steps_done, r.seconds, r.seconds / (r.steps_done ? r.steps_done : 1), r.last_loss,
           r.train_acc, out);
    return 0;
}

/* Every rank needs the sender states; rank 0 builds them (or finds them)
 * while the others wait, so a cold cache is computed once. */
static lw_status sender_states(const lw_manifest *m, const train_args *a, const lw_layer_mix *mix,
                               const char *train_path, const lw_dataset *data, lw_comm *comm, lw_sender_cache *states)
{
    char cache[4096];
    lw_status st = lw_cache_dir(a->cache_dir, cache, sizeof cache);
    if (!st && comm->rank != 0) st = lw_comm_barrier(comm);
    if (!st)
        st = mix ? lw_sender_cache_get_layers(&m->sender, mix->layers, mix->K, train_path, data, cache,
                                              a->quiet || comm->rank != 0, states)
                 : lw_sender_cache_get(&m->sender, m->bridge.source_layer, train_path, data, cache,
                                       a->quiet || comm->rank != 0, states);
    if (!st && comm->rank == 0) st = lw_comm_barrier(comm);
    return st;
}

static int run(const lw_pair *pair, const train_args *a, lw_comm *comm, int gpu_ordinal)
{
    const lw_manifest *m = &pair->manifest;
    char task_path[4096], train_path[4096], out[4096];
    bool lead = comm->rank == 0;
    lw_task task;
    lw_dataset data = {0};
    lw_sender_cache states = {.fd = -1}, dev_states = {.fd = -1};
    lw_dataset dev = {0};
    char dev_path[4096];
    lw_bridge_side side = {0};
    lw_trainer trainer = {0};
    lw_receiver_layout first_layout = {0};   /* --ce first: the layout the trainer reads */
    float *align_targets = NULL;             /* --align: [n_labels, hidden] */
    lw_adapter_set adapters = {0};
    lw_layer_mix mix = {0};                  /* --sender-layers */
    lw_gpu_receiver gpu = {0};
    lw_run_dir run_dir = {.lock_fd = -1};
    char *run_json = NULL;
    int rc = 1;
    if (lw_task_file(m, a->tasks_dir, a->task, task_path, sizeof task_path) || lw_task_load(task_path, &task))
        return fail("task");
    if (task.kind != LW_TASK_CLASSIFY) {   /* before the run folder exists */
        fprintf(stderr, "lw train: task %s is a %s task: only lw eval takes it (--method receiver-text or "
                "sender-text); training on answers is built for generate tasks only\n", task.name,
                lw_task_kind_name(task.kind));
        lw_task_free(&task);
        return 1;
    }
    lw_pathf(train_path, sizeof train_path, "%s", a->train ? a->train : "");
    if (!a->train) lw_pathf(train_path, sizeof train_path, "%s/train.jsonl", a->data);
    lw_pathf(out, sizeof out, "%s", a->out ? a->out : "runs/");
    if (!a->out) lw_pathf(out, sizeof out, "runs/%s", a->task);
    /* rank 0 writes the run folder for all: it alone locks it */
    if (lead && lw_run_dir_open(&run_dir, out, a->resume ? LW_RUN_RESUME : a->force ? LW_RUN_FORCE : LW_RUN_NEW)) {
        fail("--out");
        goto done;
    }
    if (*run_dir.stale_holder)
        fprintf(stderr, "lw train: %s/.lock named a run that ended without releasing it (%s): taken over\n", out,
                run_dir.stale_holder);
    if (*run_dir.moved_to) fprintf(stderr, "lw train: --force: the run that was in %s is now in %s\n", out,
                                   run_dir.moved_to);
    if (a->M != m->bridge.soft_tokens && lead)
        fprintf(stderr, "lw train: %d soft tokens instead of the built %d: CPU path only\n", a->M,
                m->bridge.soft_tokens);
    double t0 = lw_now_s();
    lw_subset sel = {a->limit, a->stratified, (uint64_t)a->subset_seed};
    if (lw_dataset_load_subset(train_path, &task, &sel, &data)) { fail("training data"); goto done; }
    if (strcmp(a->method, "bridge")) {
        rc = run_text(m, a, &task, &data, train_path, out);
        goto done;
    }
    if (a->sender_layers) {
        int layers[LW_LAYER_MIX_MAX], K;
        if (lw_layer_mix_parse(a->sender_layers, m->sender.n_layers + 1, layers, &K) ||
            lw_layer_mix_create(&mix, layers, K, m->sender.hidden)) {
            fail("--sender-layers");
            goto done;
        }
    }
    if (sender_states(m, a, a->sender_layers ? &mix : NULL, train_path, &data, comm, &states)) {
        fail("sender states");
        goto done;
    }
    if (a->eval_every) {   /* the dev slice and its sender states, as the training set's */
        lw_pathf(dev_path, sizeof dev_path, "%s", a->dev ? a->dev : "");
        if (!a->dev && !a->data) {
            fprintf(stderr, "lw train: --dev-slice without --data needs --dev FILE\n");
            goto done;
        }
        if (!a->dev) lw_pathf(dev_path, sizeof dev_path, "%s/dev.jsonl", a->data);
        lw_subset dsel = {a->dev_slice, a->stratified, (uint64_t)a->subset_seed};
        if (lw_dataset_load_subset(dev_path, &task, &dsel, &dev)) { fail("dev slice"); goto done; }
        if (sender_states(m, a, a->sender_layers ? &mix : NULL, dev_path, &dev, comm, &dev_states)) { fail("dev slice sender states"); goto done; }
    }
    double t_cache = lw_now_s();
    if (lw_bridge_side_open(&side, m, &task, a->M) ||
        (a->first_token_ce && lw_receiver_layout_first_tokens(&side.layout, &first_layout)) ||
        lw_trainer_create(&trainer, side.receiver, a->first_token_ce ? &first_layout : &side.layout, &side.bridge,
                          a->cfg.diversity_weight) ||
        (a->align_weight > 0.0f && lw_answer_embeddings(side.receiver, &side.layout, &align_targets))) {
        fail("bridge");
        goto done;
    }
    if (a->sender_layers && lw_trainer_attach_layer_mix(&trainer, &mix)) {
        fail("--sender-layers");
        goto done;
    }
    if (lw_trainer_set_spread(&trainer, a->spread_weight)) {
        fail("--spread");
        goto done;
    }
    trainer.align_weight = a->align_weight;
    trainer.align_targets = align_targets;
    lw_verbalizer_stats vs;
    lw_verbalizer_stats_of(&side.layout, &vs);
    if (lead)
        fprintf(stderr, "train: %d labels, verbalizers of %d-%d receiver tokens (mean %.2f), %d told apart by their "
                "first token alone; loss: %s cross-entropy%s%s\n", side.layout.n_labels, vs.min_len, vs.max_len,
                vs.mean_len, vs.distinct_first, a->first_token_ce ? "first-token" : "full-verbalizer",
                a->align_weight > 0.0f ? " + alignment" : "", a->spread_weight > 0.0f ? " + spread term" : "");
    if (lead && a->first_token_ce && vs.distinct_first < side.layout.n_labels)
        fprintf(stderr, "lw train: --ce first: %d of the %d labels share their first token with another, and this "
                "loss cannot tell those apart (docs/objectives.md)\n", side.layout.n_labels - vs.distinct_first,
                side.layout.n_labels);
    if ((a->lora || a->prefix) &&
        (lw_adapter_set_create(&adapters, side.receiver, trainer.max_T, a->lora ? &a->lora_cfg : NULL,
                               a->prefix ? &a->prefix_cfg : NULL, a->cfg.seed) ||
         lw_trainer_attach_adapters(&trainer, &adapters))) {
        fail("adapters");
        goto done;
    }
    if (!strcmp(a->device, "cuda") &&
        (lw_gpu_receiver_open(&gpu, pair, side.receiver, trainer.layout, trainer.max_T,
                              a->dtype == LW_WEIGHTS_BF16 ? LW_DTYPE_BF16 : LW_DTYPE_F32, gpu_ordinal) ||
         lw_trainer_use_gpu(&trainer, &gpu.pass))) {
        fail("receiver on the GPU");
        goto done;
    }
    if ((a->lora || a->prefix) && lead)
        fprintf(stderr, "train: adapters on the receiver: LoRA %ld parameters, deep prefix %ld parameters\n",
                (long)(adapters.has_lora ? adapters.lora.p.n_params : 0),
                (long)(adapters.has_prefix ? adapters.prefix.p.n_params : 0));
    double t_load = lw_now_s();
    if (lead)
        fprintf(stderr, "train: %s, %d examples, %ld bridge parameters, %d steps x %d examples, receiver prompt %d+%d "
            "tokens\n", train_path, data.n, (long)side.bridge.n_params, a->cfg.steps, a->cfg.batch * a->cfg.grad_accum,
            lw_receiver_prefix_len(&side.layout), side.layout.max_verb);
    if (comm->world > 1 && lead)
        fprintf(stderr, "train: data parallel over %d ranks (%s), %d examples a step on each\n", comm->world,
                lw_comm_backend_name(comm->backend), (a->cfg.batch * a->cfg.grad_accum + comm->world - 1) / comm->world);
    if (lead && !(run_json = run_json_text(a, train_path, data.n))) { fail("run.json"); goto done; }
    lw_train_options o = {.cfg = a->cfg, .checkpoint_every = a->checkpoint_every, .out_dir = out,
                          .no_head_cache = a->no_head_cache, .skip_nonfinite = a->skip_nonfinite,
                          .run_json = run_json, .resume_dir = a->resume, .quiet = a->quiet, .comm = comm,
                          .log_grad_groups = a->log_grad_groups};
    lw_early_stop_options es = {.states = &dev_states, .data = &dev, .every = a->eval_every, .patience = a->patience};
    if (a->eval_every) o.early_stop = &es;
    lw_train_result r;
    if (lw_train_run(&trainer, &states, &data, &o, &r)) { fail("training"); goto done; }
    rc = 0;
    if (!lead) goto done;
    printf("trained %ld steps in %.1f s (%.3f s/step, %.3f s/example); last loss %.4f, train acc %.3f\n",
           r.steps_done, r.seconds, r.seconds / (r.steps_done ? r.steps_done : 1),
           r.seconds / (double)(r.steps_done ? r.steps_done * a->cfg.batch * a->cfg.grad_accum : 1), r.last_loss,
           r.train_acc);
    printf("sender states %.1f s, model load %.1f s; checkpoint %s/final\n", t_cache - t0, t_load - t_cache, out);
    if (a->eval_every)
        printf("dev slice (%d examples): best loss %.4f at step %ld, checkpoint %s/best%s\n", dev.n, r.best_dev_loss,
               r.best_step, out, r.stopped_early ? "; stopped early (--patience)" : "");
done:
    free(run_json);
    lw_run_dir_close(&run_dir);
    lw_trainer_free(&trainer);
    lw_receiver_layout_free(&first_layout);
    free(align_targets);
    lw_gpu_receiver_close(&gpu);
    lw_adapter_set_free(&adapters);
    lw_layer_mix_free(&mix);
    lw_bridge_side_close(&side);
    lw_sender_cache_close(&states);
    lw_sender_cache_close(&dev_states);
    lw_dataset_free(&dev);
    lw_dataset_free(&data);
    lw_task_free(&task);
    return rc;
}

int lw_cmd_train(const lw_pair *pair, int argc, char **argv)
{
    if (lw_wants_help(argc, argv)) {
        usage(pair);
        return 0;
    }
    lw_task il_task;
    if (lw_interlingua_task(pair, argc, argv, &il_task)) {   /* the pair's interlingua on answers */
        int rc = lw_cmd_train_interlingua(pair, &il_task, argc, argv);
        lw_task_free(&il_task);
        return rc;
    }
    if (lw_bridge_answer_task(pair, argc, argv, &il_task)) {   /* the pair's bridge on answers */
        int rc = lw_cmd_train_bridge_answer(pair, &il_task, argc, argv);
        lw_task_free(&il_task);
        return rc;
    }
    train_args a;
    if (!parse(pair, argc, argv, &a)) return 2;
    lw_comm_config cc;
    lw_comm comm;
    lw_cuda cu = {0};
    if (lw_comm_config_from_env(&cc)) return fail("distributed setup");
    if (a.comm) cc.backend = (lw_comm_backend)lw_comm_backend_from_name(a.comm);
    g_rank = cc.rank;
    if (cc.world > 1 && strcmp(a.method, "bridge")) {
        fprintf(stderr, "lw train: --method %s trains at world size 1 only (mpirun started %d ranks)\n", a.method,
                cc.world);
        return 2;
    }
    if (lw_comm_init(&comm, &cc)) return fail("distributed setup");
    lw_status st = cc.backend == LW_COMM_NCCL ? lw_cuda_init(&cu, cc.local_rank) : LW_OK;
    if (st) lw_fail_wrap(st, "the GPU of --comm nccl (LW_LOCAL_RANK %d)", cc.local_rank);
    else if (cc.backend == LW_COMM_NCCL) st = lw_comm_nccl_attach(&comm, &cu);
    if (st) {
        int rc = fail("NCCL");
        lw_cuda_close(&cu);
        lw_comm_abort(&comm, rc);   /* the others would wait for this rank in NCCL's set-up */
        return rc;
    }
    if (!lw_threads_apply("train", a.threads)) return 2;
    lw_pair with_dtype;
    /* --device cuda --dtype bf16: the CPU holds fp32 models; the receiver goes up to the GPU in bf16 */
    lw_pair_with_dtype(&with_dtype, pair, strcmp(a.device, "cuda") ? a.dtype : LW_WEIGHTS_F32);
    with_dtype.manifest.receiver.load.backward = true;   /* the bridge's gradient comes through it */
    int rc = run(&with_dtype, &a, &comm, cc.local_rank);
    lw_cuda_close(&cu);
    /* a failed rank stops the job: the others may be waiting for it in a
     * collective, and MPI has no timeout */
    if (rc) lw_comm_abort(&comm, rc);
    else lw_comm_close(&comm);
    return rc;
}
