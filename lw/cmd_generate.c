/* lw generate / lw hidden: run one of the pair's two models by hand. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_template.h"
#include "cmd_common.h"
#include "cuda_blas.h"
#include "cuda_driver.h"
#include "cuda_pair.h"
#include "gpu_model.h"
#include "lw_cli.h"
#include "model.h"
#include "random_weights.h"
#include "tokenizer.h"

typedef struct {
    const char *which;        /* "sender" or "receiver" */
    const char *prompt;
    const char *system;
    int chat;                 /* wrap the prompt in the model's chat template */
    int max_new;
    float temperature;
    float top_p;
    unsigned long long seed;
    int layer;                /* lw hidden */
    const char *out_path;     /* lw hidden: raw float32 [T, hidden] */
    const char *device;       /* lw generate: "cpu" or "cuda" */
    const char *dtype;        /* lw generate: the weights, "fp32" or "bf16" (CPU: narrow_weights.h; GPU: gpu_model.h) */
    int threads;              /* --threads; 0: $LWC_THREADS, else 1 */
} run_opts;

static int parse_opts(int argc, char **argv, run_opts *o, const char *cmd)
{
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--chat")) { o->chat = 1; continue; }
        if (!v) { fprintf(stderr, "lw %s: %s needs a value (see --help)\n", cmd, a); return -1; }
        if (!strcmp(a, "--model")) o->which = v;
        else if (!strcmp(a, "--prompt")) o->prompt = v;
        else if (!strcmp(a, "--system")) o->system = v;
        else if (!strcmp(a, "--max-new")) o->max_new = atoi(v);
        else if (!strcmp(a, "--temperature")) o->temperature = strtof(v, NULL);
        else if (!strcmp(a, "--top-p")) o->top_p = strtof(v, NULL);
        else if (!strcmp(a, "--seed")) o->seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--layer")) o->layer = atoi(v);
        else if (!strcmp(a, "--out")) o->out_path = v;
        else if (!strcmp(a, "--device") && o->device) o->device = v;
        else if (!strcmp(a, "--dtype") && o->dtype) o->dtype = v;
        else if (!strcmp(a, "--threads")) {
            char *end;
            long t = strtol(v, &end, 10);
            if (end == v || *end || t < 1 || t > LW_THREADS_MAX) {
                fprintf(stderr, "lw %s: --threads expects an integer in 1..%d, got '%s'\n", cmd, LW_THREADS_MAX, v);
                return -1;
            }
            o->threads = (int)t;
        }
        else { fprintf(stderr, "lw %s: unknown option %s (see --help)\n", cmd, a); return -1; }
        i++;
    }
    if (strcmp(o->which, "sender") && strcmp(o->which, "receiver")) {
        fprintf(stderr, "lw %s: --model takes sender or receiver, not %s\n", cmd, o->which);
        return -1;
    }
    if (!o->prompt) { fprintf(stderr, "lw %s: --prompt TEXT is required\n", cmd); return -1; }
    if (o->device && strcmp(o->device, "cpu") && strcmp(o->device, "cuda")) {
        fprintf(stderr, "lw %s: --device takes cpu or cuda, not %s\n", cmd, o->device);
        return -1;
    }
    /* the CPU holds any narrow dtype (narrow_weights.h); the GPU fp32 or bf16 */
    lw_weight_dtype dt = LW_DTYPE_F32;
    lw_weights_dtype wd = LW_WEIGHTS_F32;
    bool cuda = o->device && !strcmp(o->device, "cuda");
    if (o->dtype && cuda && !lw_gpu_dtype_parse(o->dtype, &dt)) {
        fprintf(stderr, "lw %s: --dtype takes fp32 or bf16, not %s\n", cmd, o->dtype);
        return -1;
    }
    if (o->dtype && !cuda && !lw_weights_dtype_parse(o->dtype, &wd)) {
        fprintf(stderr, "lw %s: --dtype takes fp32, bf16, q8 or native, not %s\n", cmd, o->dtype);
        return -1;
    }
    return lw_threads_apply(cmd, o->threads) ? 0 : -1;
}

/* Loads the chosen model and tokenizer and tokenizes the (templated) prompt. */
static lw_status prepare(const lw_pair *pair, const run_opts *o, lw_model **m, lw_tokenizer **tok, int **ids,
                         int *n)
{
    const lw_model_config *cfg = strcmp(o->which, "sender") ? &pair->manifest.receiver : &pair->manifest.sender;
    char *text = NULL;
    lw_status st = lw_config_load_tokenizer(cfg, tok);
    if (st == LW_OK && o->chat) st = lw_chat_render(cfg->chat_template, o->system, o->prompt, &text);
    if (st == LW_OK) {
        const char *t = text ? text : o->prompt;
        /* A rendered template already holds its BOS text. */
        st = lw_tokenizer_encode(*tok, t, strlen(t), !o->chat, ids, n);
    }
    free(text);
    /* --dtype bf16|q8|native on the CPU: the model holds narrow matrices (narrow_weights.h);
     * a GPU run converts its own copy from the fp32 host model */
    lw_model_config narrow = *cfg;
    lw_weights_dtype dt = LW_WEIGHTS_F32;
    if (o->dtype && (!o->device || strcmp(o->device, "cuda"))) lw_weights_dtype_parse(o->dtype, &dt);
    narrow.load.dtype = dt;
    if (st == LW_OK) st = lw_config_load_model(&narrow, m);
    return st;
}

static bool print_token(void *user, int token)
{
    char *piece = NULL;
    if (lw_tokenizer_decode(user, &token, 1, &piece) == LW_OK) fputs(piece, stdout);
    fflush(stdout);
    free(piece);
    return true;
}

/* The model's kernels, cuBLAS, the weights and a state on the GPU, then
 * the same generation loop as the CPU's; everything is released here. */
static lw_status generate_on_gpu(const lw_pair *pair, const char *unit, lw_weight_dtype dtype, lw_cuda *cu,
                                 const lw_model *m, const int *ids, int n, const lw_generate_args *g, int *out,
                                 int *n_out)
{
    lw_cuda_module mod;
    lw_cublas blas = {0};
    lw_gpu_model *gm = NULL;
    lw_gpu_state *s = NULL;
    lw_status st = lw_cuda_load_unit(cu, pair, unit, &mod);
    if (st == LW_OK) st = lw_cublas_init(&blas, cu);
    if (st == LW_OK) st = lw_gpu_model_upload_dtype(cu, &blas, &mod, m, dtype, &gm);
    if (st == LW_OK) st = lw_gpu_state_alloc(gm, n + g->max_new, &s);
    if (st == LW_OK) st = lw_gpu_generate(gm, s, ids, n, g, out, n_out);
    lw_gpu_state_free(s);
    lw_gpu_model_free(gm);
    lw_cublas_close(&blas);
    lw_cuda_unload(cu, &mod);
    return st;
}

int lw_cmd_generate(const lw_pair *pair, int argc, char **argv)
{
    if (lw_wants_help(argc, argv)) {
        printf("usage: lw generate --prompt TEXT [--model sender|receiver] [--chat] [--system TEXT]\n"
               "                   [--max-new N] [--temperature T] [--top-p P] [--seed S] [--device cpu|cuda]\n"
               "                   [--dtype fp32|bf16|q8|native] [--threads N]\n\n"
               "Runs one of the pair's models and prints the continuation as it comes; --device cuda\n"
               "runs the forward pass on GPU 0 (cuBLAS and this pair's kernels) with fp32 weights, or\n"
               "with --dtype bf16 the projections and output head in bf16 (fp32 accumulation); on the\n"
               "CPU, --dtype bf16 keeps the model's projections and output head in bf16 (fp32 sums), q8\n"
               "as Q8_0 blocks made at load, native as the GGUF file's own blocks (int8 x per 32).\n"
               "--chat wraps the prompt in the model's chat template. Greedy unless --temperature > 0;\n"
               "stops at the model's stop tokens. Defaults: receiver, 64 new tokens, seed 1.\n");
        return 0;
    }
    run_opts o = {.which = "receiver", .max_new = 64, .top_p = 1.f, .seed = 1, .device = "cpu", .dtype = "fp32"};
    if (parse_opts(argc, argv, &o, "generate") != 0) return 2;
    bool cuda = !strcmp(o.device, "cuda");
    lw_cuda cu = {0};
    lw_model *m = NULL;
    lw_tokenizer *tok = NULL;
    lw_state *s = NULL;
    int *ids = NULL, n = 0, n_out = 0;
    /* The driver first: without a GPU that is the one thing to say. */
    lw_status st = cuda ? lw_cuda_init(&cu, 0) : LW_OK;
    if (st == LW_OK) st = prepare(pair, &o, &m, &tok, &ids, &n);
    int *out = malloc(sizeof(int) * (size_t)(o.max_new > 0 ? o.max_new : 1));
    if (st == LW_OK && !out) st = lw_fail(LW_ERR_NOMEM, "out of memory");
    if (st == LW_OK && !cuda) st = lw_state_alloc(m, n + o.max_new, false, &s);
    if (st == LW_OK) {
        /* The model's end-of-sequence ends a generation as its stop list does. */
        const lw_model_config *c = &m->cfg;
        int stops[LW_MAX_SPECIAL + 1], n_stop = 0;
        for (int i = 0; i < c->n_stop_ids && i < LW_MAX_SPECIAL; i++) stops[n_stop++] = c->stop_ids[i];
        if (c->eos_id >= 0) stops[n_stop++] = c->eos_id;
        lw_generate_args g = {.max_new = o.max_new, .temperature = o.temperature, .top_p = o.top_p,
                              .seed = o.seed, .stop_ids = stops, .n_stop = n_stop,
                              .on_token = print_token, .user = tok};
        lw_weight_dtype dtype = LW_DTYPE_F32;
        lw_gpu_dtype_parse(o.dtype, &dtype);   /* checked by parse_opts */
        if (cuda) st = generate_on_gpu(pair, o.which, dtype, &cu, m, ids, n, &g, out, &n_out);
        else st = lw_generate(m, s, ids, n, &g, out, &n_out);
        putchar('\n');
    }
    free(out);
    free(ids);
    lw_state_free(s);
    lw_model_free(m);
    lw_tokenizer_free(tok);
    lw_cuda_close(&cu);
    if (st != LW_OK) { fprintf(stderr, "lw generate: %s\n", lw_last_error()); return 1; }
    return 0;
}

int lw_cmd_hidden(const lw_pair *pair, int argc, char **argv)
{
    if (lw_wants_help(argc, argv)) {
        printf("usage: lw hidden --prompt TEXT [--model sender|receiver] [--layer L] [--chat] [--out FILE]\n\n"
               "Prints the hidden states at layer L (Hugging Face's hidden_states[L]: 0 = embeddings;\n"
               "default: the bridge's source layer for the sender) as shape, RMS and the first values\n"
               "of each row; --out writes them as raw little-endian float32 [T, hidden].\n");
        return 0;
    }
    run_opts o = {.which = "sender", .layer = -1};
    if (parse_opts(argc, argv, &o, "hidden") != 0) return 2;
    if (o.layer < 0) o.layer = pair->manifest.bridge.source_layer;
    lw_model *m = NULL;
    lw_tokenizer *tok = NULL;
    lw_state *s = NULL;
    int *ids = NULL, n = 0;
    float *h = NULL;
    lw_status st = prepare(pair, &o, &m, &tok, &ids, &n);
    if (st == LW_OK && (o.layer > m->cfg.n_layers))
        st = lw_fail(LW_ERR_INVALID, "--layer %d: the model has %d layers", o.layer, m->cfg.n_layers);
    if (st == LW_OK) st = lw_state_alloc(m, n, false, &s);
    if (st == LW_OK && !(h = malloc(sizeof(float) * (size_t)n * (size_t)m->cfg.hidden)))
        st = lw_fail(LW_ERR_NOMEM, "out of memory");
    if (st == LW_OK) {
        lw_forward_args a = {.ids = ids, .T = n, .capture_layer = o.layer, .hidden_out = h};
        st = lw_forward(m, s, &a);
    }
    if (st == LW_OK) {
        int d = m->cfg.hidden;
        printf("%s hidden states at layer %d: [%d, %d]\n", o.which, o.layer, n, d);
        for (int t = 0; t < n; t++) {
            double ss = 0;
            for (int i = 0; i < d; i++) ss += (double)h[(size_t)t * d + i] * h[(size_t)t * d + i];
            printf("  %3d id %6d rms %.4f  [%.4f %.4f %.4f %.4f ...]\n", t, ids[t], sqrt(ss / d), h[(size_t)t * d],
                   h[(size_t)t * d + 1], h[(size_t)t * d + 2], h[(size_t)t * d + 3]);
        }
        if (o.out_path) {
            FILE *f = fopen(o.out_path, "wb");
            if (!f || fwrite(h, sizeof(float), (size_t)n * d, f) != (size_t)n * d)
                st = lw_fail(LW_ERR_IO, "%s: cannot write", o.out_path);
            if (f) fclose(f);
        }
    }
    free(h);
    free(ids);
    lw_state_free(s);
    lw_model_free(m);
    lw_tokenizer_free(tok);
    if (st != LW_OK) { fprintf(stderr, "lw hidden: %s\n", lw_last_error()); return 1; }
    return 0;
}
