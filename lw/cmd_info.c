#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cuda_driver.h"
#include "cuda_pair.h"
#include "cuda_memplan.h"
#include "lw_cli.h"

static void print_model(const char *role, const lw_model_config *m)
{
    struct stat st;
    printf("%s: %s (%s)\n", role, m->name, lw_family_name(m->family));
    printf("  hidden %d, layers %d, heads %d, kv heads %d, head_dim %d, ffn %d (%s), vocab %d\n", m->hidden,
           m->n_layers, m->n_heads, m->n_kv_heads, m->head_dim, m->ffn, lw_activation_name(m->activation), m->vocab);
    printf("  norm %s eps %g, rope theta %g", lw_norm_name(m->norm), (double)m->norm_eps, (double)m->rope_base);
    if (m->sliding_window) printf(" (local %g, window %d, global every %d)", (double)m->rope_base_local,
                                  m->sliding_window, m->global_every);
    if (m->rope_scaling.kind != LW_ROPE_SCALING_NONE)
        printf(", scaling %s x%g", lw_rope_scaling_name(m->rope_scaling.kind), (double)m->rope_scaling.factor);
    printf("\n  embedding RMS %g, %s embeddings\n", (double)m->embed_rms, m->tied_embeddings ? "tied" : "untied");
    printf("  weights %s (%s)%s\n", m->weights_path, lw_weights_format_name(m->weights_format),
           stat(m->weights_path, &st) == 0 ? "" : "  [not present on this machine]");
    printf("  tokenizer %s (%s), chat template %s\n", m->tokenizer_path, lw_tokenizer_kind_name(m->tokenizer_kind),
           lw_chat_template_name(m->chat_template));
}

static const char *bridge_kind_name(lw_bridge_kind k)
{
    return k == LW_BRIDGE_PERCEIVER ? "perceiver" : k == LW_BRIDGE_MLP ? "mlp" : "linear";
}

/* A GPU is usable only if the driver library loads: lw links no CUDA
 * driver, so a CPU-only machine runs the same binary. */
static void print_devices(const lw_pair *pair)
{
    if (pair->n_kernels == 0) {
        printf("devices: CPU only (this binary was built without NVRTC: no CUDA kernels embedded)\n");
        return;
    }
    printf("kernels: %d CUBINs embedded (NVRTC %s)\n", pair->n_kernels, pair->nvrtc_version);
    for (int i = 0; i < pair->n_kernels; i++)
        printf("  %-8s sm_%d  %zu bytes\n", pair->kernels[i].unit, pair->kernels[i].arch, pair->kernels[i].size);
    void *cuda = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
    printf("devices: CPU%s\n", cuda ? ", CUDA driver present" : " (no CUDA driver on this machine: --device cuda unavailable)");
    if (cuda) dlclose(cuda);
}

int lw_cmd_info(const lw_pair *pair, int argc, char **argv)
{
    if (lw_wants_help(argc, argv)) {
        printf("usage: lw info [--device cuda] [--seq N]\n\nPrints what this binary was built for: the two models,\n"
               "the bridge, the training defaults, the embedded kernels and the devices it can use.\n"
               "--device cuda adds the CUDA driver and device, the CUBIN each unit would load and the\n"
               "GPU memory plan (weights, activations for batch x --seq tokens, KV cache, optimiser).\n");
        return 0;
    }
    const lw_manifest *m = &pair->manifest;
    printf("pair: %s  (lwc %s, build %s)\nmanifest: %s\n", m->name, pair->lwc_version, pair->build_stamp, m->path);
    print_model("sender", &m->sender);
    print_model("receiver", &m->receiver);
    const lw_bridge_config *b = &m->bridge;
    printf("bridge: %s, M = %d soft tokens from sender layer %d, width %d, depth %d, heads %d, ffn x%d, "
           "calibration %s\n", bridge_kind_name(b->kind), b->soft_tokens, b->source_layer, b->width, b->depth,
           b->heads, b->ffn_mult, b->calibration == LW_CALIB_RMS ? "rms" : "none");
    const lw_train_config *t = &m->train;
    printf("train: lr %g, %d steps, batch %d x %d, warmup %d, wd %g, clip %g, seed %llu, diversity %g\n",
           (double)t->lr, t->steps, t->batch, t->grad_accum, t->warmup_steps, (double)t->weight_decay,
           (double)t->grad_clip, t->seed, (double)t->diversity_weight);
    print_devices(pair);
    int cuda = 0, seq = 512;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--device") && i + 1 < argc) cuda = !strcmp(argv[++i], "cuda");
        else if (!strcmp(argv[i], "--seq") && i + 1 < argc) seq = atoi(argv[++i]);
    }
    if (cuda) {
        lw_cuda_print_info(pair, stdout);
        if (lw_memplan_print(m, m->train.batch, seq, stdout) != LW_OK) {
            fprintf(stderr, "lw info: %s\n", lw_last_error());
            return 1;
        }
    }
    return 0;
}
