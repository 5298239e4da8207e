/* The smallest manifest the schema accepts; see manifest_text.h. */
#include "manifest_text.h"
#include "testlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Without its closing brace, so that members can follow. */
static const char *BASE =
    "{\"lwc_manifest\": 1, \"name\": \"a_to_b\","
    " \"sender\": {\"name\": \"a\", \"family\": \"llama\", \"hidden\": 576, \"n_layers\": 30, \"n_heads\": 9,"
    "   \"ffn\": 1536, \"norm_eps\": 1e-5, \"rope_theta\": 100000, \"vocab\": 49152, \"context\": 8192,"
    "   \"tied_embeddings\": true, \"embed_rms\": 0.1,"
    "   \"weights\": {\"path\": \"a.gguf\", \"format\": \"gguf\"}, \"tokenizer\": {\"kind\": \"gguf\"}},"
    " \"receiver\": {\"name\": \"b\", \"family\": \"gemma3\", \"hidden\": 640, \"n_layers\": 18,"
    "   \"n_heads\": 4, \"n_kv_heads\": 1, \"head_dim\": 256, \"ffn\": 2048, \"norm_eps\": 1e-6,"
    "   \"rope_theta\": 1e6, \"vocab\": 262144, \"context\": 32768, \"tied_embeddings\": true,"
    "   \"embed_rms\": 1.0, \"weights\": {\"path\": \"/abs/b.gguf\", \"format\": \"gguf\"},"
    "   \"tokenizer\": {\"path\": \"tok/b.json\", \"kind\": \"spm_json\"}},"
    " \"bridge\": {\"source_layer\": 20}";

char *tl_manifest_text(const char *extra)
{
    size_t n = strlen(BASE) + strlen(extra) + 2;
    char *text = malloc(n);
    ck_assert_ptr_nonnull(text);
    snprintf(text, n, "%s%s}", BASE, extra);
    return text;
}

lw_status tl_manifest_parse_with(const char *extra, const char *file, lw_manifest *m)
{
    char *text = tl_manifest_text(extra);
    lw_status st = lw_manifest_parse(text, strlen(text), file, m);
    free(text);
    return st;
}

void tl_manifest_expect_error(const char *extra, const char *file, lw_status code, const char *message)
{
    lw_manifest *m = malloc(sizeof *m);
    ck_assert_ptr_nonnull(m);
    lw_status st = tl_manifest_parse_with(extra, file, m);
    free(m);
    ck_assert_msg(st == code, "%s: status %s, want %s; message: %s", extra, lw_status_name(st),
                  lw_status_name(code), lw_last_error());
    ck_assert_str_eq(lw_last_error(), message);
}
