/* The model-pair manifest: every file in pairs/ loads, defaults fill in,
 * each class of error names the file, the JSON path and what was expected,
 * a MODEL block round-trips through its JSON, and the manifest agrees with
 * the real weights files. */
#include "testlib.h"
#include "manifest.h"
#include "manifest_text.h"
#include "manifest_weights.h"

#include <dirent.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static const char *FILE_NAME = "d/m.json";

static json_t *base(void)
{
    char *text = tl_manifest_text("");   /* the smallest manifest the schema accepts */
    json_t *j = json_loads(text, 0, NULL);
    free(text);
    ck_assert_ptr_nonnull(j);
    return j;
}

/* The object at a dotted path ("sender.weights"); "" is the root. */
static json_t *at(json_t *root, const char *dotted)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", dotted);
    json_t *o = root;
    for (char *save = NULL, *k = strtok_r(buf, ".", &save); k; k = strtok_r(NULL, ".", &save)) {
        json_t *next = json_object_get(o, k);
        if (!next) { next = json_object(); json_object_set_new(o, k, next); }
        o = next;
    }
    return o;
}

static lw_status parse_json(json_t *root, lw_manifest *m)
{
    char *text = json_dumps(root, 0);
    ck_assert_ptr_nonnull(text);
    lw_status st = lw_manifest_parse(text, strlen(text), FILE_NAME, m);
    free(text);
    json_decref(root);
    return st;
}

static void expect_error(json_t *root, lw_status code, const char *message)
{
    lw_manifest *m = malloc(sizeof *m);
    lw_status st = parse_json(root, m);
    free(m);
    ck_assert_msg(st == code, "status %s, want %s; message: %s", lw_status_name(st), lw_status_name(code),
                  lw_last_error());
    ck_assert_str_eq(lw_last_error(), message);
}

static void expect_error_prefix(json_t *root, lw_status code, const char *prefix)
{
    lw_manifest *m = malloc(sizeof *m);
    lw_status st = parse_json(root, m);
    free(m);
    ck_assert_msg(st == code, "status %s, want %s; message: %s", lw_status_name(st), lw_status_name(code),
                  lw_last_error());
    ck_assert_msg(strncmp(lw_last_error(), prefix, strlen(prefix)) == 0, "message\n  %s\ndoes not start with\n  %s",
                  lw_last_error(), prefix);
}

static void expect_text_error(const char *text, lw_status code, const char *message)
{
    lw_manifest *m = malloc(sizeof *m);
    lw_status st = lw_manifest_parse(text, strlen(text), FILE_NAME, m);
    free(m);
    ck_assert_int_eq(st, code);
    ck_assert_str_eq(lw_last_error(), message);
}

/* ---- loading ---------------------------------------------------------- */

START_TEST(every_pair_loads)
{
    DIR *d = opendir(tl_src("pairs"));
    ck_assert_ptr_nonnull(d);
    int n = 0;
    lw_manifest *m = malloc(sizeof *m);
    for (struct dirent *e; (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".json") != 0) continue;
        char rel[512];
        snprintf(rel, sizeof rel, "pairs/%s", e->d_name);
        lw_status st = lw_manifest_load(tl_src(rel), m);
        ck_assert_msg(st == LW_OK, "%s: %s", rel, lw_last_error());
        /* The pair's name is its file name: it names build/<name>/. */
        ck_assert_int_eq(strlen(m->name), len - 5);
        ck_assert(strncmp(m->name, e->d_name, len - 5) == 0);
        n++;
    }
    closedir(d);
    free(m);
    ck_assert_int_ge(n, 5);
}
END_TEST

START_TEST(default_pair_matches_the_models)
{
    lw_manifest *m = malloc(sizeof *m);
    ck_assert_msg(lw_manifest_load(tl_src("pairs/smollm2-135m_to_gemma3-270m.json"), m) == LW_OK, "%s",
                  lw_last_error());
    ck_assert_int_eq(m->sender.family, LW_FAMILY_LLAMA);
    ck_assert_int_eq(m->sender.hidden, 576);
    ck_assert_int_eq(m->sender.n_kv_heads, 3);
    ck_assert_int_eq(m->sender.chat_template, LW_CHAT_CHATML);
    ck_assert_int_eq(m->receiver.family, LW_FAMILY_GEMMA3);
    ck_assert_int_eq(m->receiver.head_dim, 256);
    ck_assert(m->receiver.qk_norm && m->receiver.post_norms && m->receiver.scale_embeddings);
    ck_assert_float_eq(m->receiver.rope_base_local, 10000.0f);
    ck_assert_int_eq(m->receiver.chat_template, LW_CHAT_GEMMA);
    ck_assert_int_eq(m->receiver.stop_ids[0], 106);
    ck_assert_int_eq(m->bridge.source_layer, 20);
    ck_assert_int_eq(m->bridge.soft_tokens, 16);
    ck_assert_int_eq(m->n_archs, 2);
    ck_assert_int_eq(m->gpu_archs[0], 80);
    ck_assert_int_eq(m->gpu_archs[1], 90);
    tl_require_file(m->sender.weights_path);
    tl_require_file(m->receiver.weights_path);
    free(m);
}
END_TEST

/* Without LWC_MODELS the ${LWC_MODELS:-../models} default finds models/
 * beside pairs/. */
START_TEST(pairs_work_without_environment)
{
    char *saved = getenv("LWC_MODELS") ? strdup(getenv("LWC_MODELS")) : NULL;
    unsetenv("LWC_MODELS");
    lw_manifest *m = malloc(sizeof *m);
    char want[4200];
    snprintf(want, sizeof want, "%s", tl_src("pairs/../models/SmolLM2-135M-Instruct.Q4_1.gguf"));
    lw_status st = lw_manifest_load(tl_src("pairs/smollm2-135m_to_gemma3-270m.json"), m);
    if (saved) { setenv("LWC_MODELS", saved, 1); free(saved); }
    ck_assert_msg(st == LW_OK, "%s", lw_last_error());
    ck_assert_str_eq(m->sender.weights_path, want);
    tl_require_file(m->sender.weights_path);
    free(m);
}
END_TEST

START_TEST(missing_file_is_io_error)
{
    lw_manifest *m = malloc(sizeof *m);
    ck_assert_int_eq(lw_manifest_load("/nonexistent/m.json", m), LW_ERR_IO);
    ck_assert_str_eq(lw_last_error(), "/nonexistent/m.json: cannot open manifest; expected a readable JSON file");
    free(m);
}
END_TEST

START_TEST(defaults_fill_in)
{
    lw_manifest *m = malloc(sizeof *m);
    ck_assert_msg(parse_json(base(), m) == LW_OK, "%s", lw_last_error());
    ck_assert_str_eq(m->name, "a_to_b");
    ck_assert_str_eq(m->path, FILE_NAME);
    /* llama: n_kv_heads = n_heads, head_dim = hidden / n_heads, plain norms */
    ck_assert_int_eq(m->sender.n_kv_heads, 9);
    ck_assert_int_eq(m->sender.head_dim, 64);
    ck_assert_int_eq(m->sender.activation, LW_ACT_SILU);
    ck_assert_int_eq(m->sender.norm, LW_NORM_RMSNORM);
    ck_assert(!m->sender.qk_norm && !m->sender.scale_embeddings);
    ck_assert_float_eq(m->sender.rope_base_local, 100000.0f);
    ck_assert_int_eq(m->sender.rope_scaling.kind, LW_ROPE_SCALING_NONE);
    ck_assert_int_eq(m->sender.bos_id, -1);
    ck_assert_int_eq(m->sender.n_stop_ids, 0);
    ck_assert_int_eq(m->sender.chat_template, LW_CHAT_NONE);
    /* gemma3 family defaults */
    ck_assert_int_eq(m->receiver.activation, LW_ACT_GELU_TANH);
    ck_assert_int_eq(m->receiver.norm, LW_NORM_RMSNORM_GEMMA);
    ck_assert(m->receiver.qk_norm && m->receiver.post_norms && m->receiver.scale_embeddings);
    ck_assert_int_eq(m->receiver.sliding_window, 512);
    ck_assert_int_eq(m->receiver.global_every, 6);
    ck_assert_float_eq(m->receiver.rope_base_local, 10000.0f);
    /* paths: relative to the manifest's folder, absolute kept, GGUF tokenizer = weights */
    ck_assert_str_eq(m->sender.weights_path, "d/a.gguf");
    ck_assert_str_eq(m->sender.tokenizer_path, "d/a.gguf");
    ck_assert_str_eq(m->receiver.weights_path, "/abs/b.gguf");
    ck_assert_str_eq(m->receiver.tokenizer_path, "d/tok/b.json");
    /* bridge, train, build */
    ck_assert_int_eq(m->bridge.kind, LW_BRIDGE_PERCEIVER);
    ck_assert_int_eq(m->bridge.soft_tokens, 16);
    ck_assert_int_eq(m->bridge.width, 256);
    ck_assert_int_eq(m->bridge.depth, 2);
    ck_assert_int_eq(m->bridge.heads, 4);
    ck_assert_int_eq(m->bridge.ffn_mult, 4);
    ck_assert_int_eq(m->bridge.calibration, LW_CALIB_RMS);
    ck_assert_float_eq(m->train.lr, 1e-4f);
    ck_assert_int_eq(m->train.steps, 1000);
    ck_assert_int_eq(m->train.batch, 8);
    ck_assert_int_eq(m->train.warmup_steps, 50);
    ck_assert_float_eq(m->train.weight_decay, 0.01f);
    ck_assert_float_eq(m->train.grad_clip, 1.0f);
    ck_assert_uint_eq(m->train.seed, 1);
    ck_assert(!m->train.class_balanced);
    ck_assert_int_eq(m->n_archs, 2);
    ck_assert_int_eq(m->gpu_archs[0], 80);
    ck_assert_int_eq(m->gpu_archs[1], 90);
    free(m);
}
END_TEST

START_TEST(explicit_values_beat_family_defaults)
{
    json_t *j = base();
    json_t *r = at(j, "receiver");
    json_object_set_new(r, "qk_norm", json_false());
    json_object_set_new(r, "activation", json_string("silu"));
    json_object_set_new(r, "sliding_window", json_integer(1024));
    json_object_set_new(r, "rope_theta_local", json_real(5e4));
    json_object_set_new(at(j, "train"), "seed", json_integer(1234567890123LL));
    json_object_set_new(at(j, "build"), "gpu_archs", json_pack("[s]", "sm_86"));
    lw_manifest *m = malloc(sizeof *m);
    ck_assert_msg(parse_json(j, m) == LW_OK, "%s", lw_last_error());
    ck_assert(!m->receiver.qk_norm);
    ck_assert(m->receiver.post_norms);
    ck_assert_int_eq(m->receiver.activation, LW_ACT_SILU);
    ck_assert_int_eq(m->receiver.sliding_window, 1024);
    ck_assert_float_eq(m->receiver.rope_base_local, 5e4f);
    ck_assert_uint_eq(m->train.seed, 1234567890123ULL);
    ck_assert_int_eq(m->n_archs, 1);
    ck_assert_int_eq(m->gpu_archs[0], 86);
    free(m);
}
END_TEST

/* ---- one test per class of error -------------------------------------- */

START_TEST(error_missing_field)
{
    json_t *j = base();
    json_object_del(at(j, "sender"), "hidden");
    expect_error(j, LW_ERR_FORMAT, "d/m.json: sender.hidden: missing required field; expected an integer from 1 to 65536");
    j = base();
    json_object_del(at(j, "bridge"), "source_layer");
    expect_error(j, LW_ERR_FORMAT,
                 "d/m.json: bridge.source_layer: missing required field; expected an integer from 1 to 30");
    j = base();
    json_object_del(j, "receiver");
    expect_error(j, LW_ERR_FORMAT, "d/m.json: receiver: missing required field; expected an object");
}
END_TEST

START_TEST(error_wrong_type)
{
    json_t *j = base();
    json_object_set_new(at(j, "sender"), "hidden", json_string("576"));
    expect_error(j, LW_ERR_FORMAT, "d/m.json: sender.hidden: got a string; expected an integer from 1 to 65536");
    j = base();
    json_object_set_new(at(j, "bridge"), "width", json_real(256.5));
    expect_error(j, LW_ERR_FORMAT,
                 "d/m.json: bridge.width: got a fractional number; expected an integer from 1 to 65536");
    j = base();
    json_object_set_new(at(j, "receiver"), "qk_norm", json_integer(1));
    expect_error(j, LW_ERR_FORMAT, "d/m.json: receiver.qk_norm: got an integer; expected true or false");
    j = base();
    json_object_set_new(j, "train", json_array());
    expect_error(j, LW_ERR_FORMAT, "d/m.json: train: got an array; expected an object");
    expect_text_error("[1]", LW_ERR_FORMAT, "d/m.json: (top level): got an array; expected an object");
}
END_TEST

START_TEST(error_out_of_range)
{
    json_t *j = base();
    json_object_set_new(at(j, "bridge"), "soft_tokens", json_integer(0));
    expect_error(j, LW_ERR_INVALID, "d/m.json: bridge.soft_tokens: 0 is out of range; expected an integer from 1 to 64");
    j = base();
    json_object_set_new(at(j, "receiver"), "ffn", json_integer(-2048));
    expect_error(j, LW_ERR_INVALID, "d/m.json: receiver.ffn: -2048 is out of range; expected an integer from 1 to 262144");
    j = base();
    json_object_set_new(at(j, "sender"), "norm_eps", json_integer(0));
    expect_error(j, LW_ERR_INVALID, "d/m.json: sender.norm_eps: 0 is out of range; expected a number in (0, 1]");
    j = base();
    json_object_set_new(at(j, "sender"), "embed_rms", json_real(-0.5));
    expect_error(j, LW_ERR_INVALID, "d/m.json: sender.embed_rms: -0.5 is out of range; expected a number in (0, 1e+06]");
    j = base();
    json_object_set_new(at(j, "train"), "seed", json_integer(-1));
    expect_error(j, LW_ERR_INVALID, "d/m.json: train.seed: -1 is out of range; expected an integer from 0 to 9007199254740992");
}
END_TEST

START_TEST(error_enum_value)
{
    json_t *j = base();
    json_object_set_new(at(j, "sender"), "family", json_string("mistral"));
    expect_error(j, LW_ERR_INVALID, "d/m.json: sender.family: \"mistral\" is not a valid value; "
                                    "expected one of \"llama\", \"gemma3\", \"llama2c\", \"qwen2\", \"qwen3\"");
    j = base();
    json_object_set_new(at(j, "receiver.tokenizer"), "kind", json_string("wordpiece"));
    expect_error(j, LW_ERR_INVALID, "d/m.json: receiver.tokenizer.kind: \"wordpiece\" is not a valid value; expected "
                                    "one of \"bpe_json\", \"spm_json\", \"spm_model\", \"gguf\", \"llama2c\", \"gpt2_files\"");
    j = base();
    json_object_set_new(at(j, "bridge"), "kind", json_string("transformer"));
    expect_error(j, LW_ERR_INVALID, "d/m.json: bridge.kind: \"transformer\" is not a valid value; "
                                    "expected one of \"perceiver\", \"mlp\", \"linear\"");
}
END_TEST

START_TEST(error_unknown_key)
{
    json_t *j = base();
    json_object_set_new(at(j, "sender"), "n_kv_head", json_integer(3));
    expect_error_prefix(j, LW_ERR_FORMAT, "d/m.json: sender.n_kv_head: unknown key (did you mean \"n_kv_heads\"?); "
                                          "expected one of: name, family, hidden, n_layers, n_heads, n_kv_heads,");
    j = base();
    json_object_set_new(at(j, "bridge"), "sofft_tokens", json_integer(3));
    expect_error(j, LW_ERR_FORMAT, "d/m.json: bridge.sofft_tokens: unknown key (did you mean \"soft_tokens\"?); "
                                   "expected one of: kind, soft_tokens, source_layer, width, depth, heads, ffn_mult, "
                                   "calibration, dropout");
    j = base();
    json_object_set_new(j, "zebra", json_integer(3));
    expect_error(j, LW_ERR_FORMAT, "d/m.json: zebra: unknown key; expected one of: lwc_manifest, name, sender, "
                                   "receiver, bridge, train, build, lora, deep_prefix, interlingua");
    /* Keys starting with '_' are comments. */
    j = base();
    json_object_set_new(at(j, "sender"), "_note", json_string("measured with gguf"));
    lw_manifest *m = malloc(sizeof *m);
    ck_assert_msg(parse_json(j, m) == LW_OK, "%s", lw_last_error());
    free(m);
}
END_TEST

START_TEST(error_inconsistent_shapes)
{
    json_t *j = base();
    json_object_set_new(at(j, "sender"), "n_kv_heads", json_integer(4));
    expect_error(j, LW_ERR_INVALID, "d/m.json: sender.n_kv_heads: 4 does not divide n_heads 9; expected a divisor of n_heads");
    j = base();
    json_object_set_new(at(j, "receiver"), "head_dim", json_integer(255));
    expect_error(j, LW_ERR_INVALID, "d/m.json: receiver.head_dim: 255 is odd; expected an even head_dim (RoPE rotates pairs)");
    j = base();
    json_object_set_new(at(j, "sender"), "n_heads", json_integer(7));
    json_object_set_new(at(j, "sender"), "n_kv_heads", json_integer(7));
    expect_error(j, LW_ERR_INVALID, "d/m.json: sender.head_dim: missing, and hidden 576 is not a multiple of n_heads 7; "
                                    "expected head_dim given explicitly");
    j = base();
    json_object_set_new(at(j, "bridge"), "source_layer", json_integer(31));
    expect_error(j, LW_ERR_INVALID, "d/m.json: bridge.source_layer: 31 is out of range; expected an integer from 1 to 30");
    j = base();
    json_object_set_new(at(j, "bridge"), "source_layer", json_integer(0));
    expect_error(j, LW_ERR_INVALID, "d/m.json: bridge.source_layer: 0 is out of range; expected an integer from 1 to 30");
    j = base();
    json_object_set_new(at(j, "bridge"), "heads", json_integer(3));
    expect_error(j, LW_ERR_INVALID, "d/m.json: bridge.heads: 3 does not divide width 256; expected a divisor of width");
    j = base();
    json_object_set_new(at(j, "sender"), "rope_scaling",
                        json_pack("{s:s, s:i, s:i, s:i}", "type", "llama3", "factor", 8, "high_freq_factor", 4,
                                  "original_context", 8192));
    expect_error(j, LW_ERR_FORMAT, "d/m.json: sender.rope_scaling.low_freq_factor: missing required field; "
                                   "expected a number in (0, 1e+06]");
    j = base();
    json_object_set_new(at(j, "sender"), "rope_scaling", json_pack("{s:s, s:i}", "type", "none", "factor", 8));
    expect_error(j, LW_ERR_INVALID, "d/m.json: sender.rope_scaling.factor: given with type \"none\"; expected type "
                                    "\"linear\" or \"llama3\", or no factor");
    j = base();
    json_object_set_new(at(j, "receiver"), "global_every", json_integer(0));
    expect_error(j, LW_ERR_INVALID, "d/m.json: receiver.global_every: 0 with sliding_window 512; expected every Nth "
                                    "layer global (N >= 1) when sliding_window is set");
}
END_TEST

START_TEST(error_special_tokens)
{
    json_t *j = base();
    json_t *stop = json_array();
    for (int i = 0; i < 17; i++) json_array_append_new(stop, json_integer(i));
    json_object_set_new(at(j, "sender.special_tokens"), "stop", stop);
    expect_error(j, LW_ERR_INVALID, "d/m.json: sender.special_tokens.stop: 17 ids is too many; expected at most 16");
    j = base();
    json_object_set_new(at(j, "sender.special_tokens"), "bos", json_integer(49152));
    expect_error(j, LW_ERR_INVALID, "d/m.json: sender.special_tokens.bos: 49152 is out of range; "
                                    "expected an integer from 0 to 49151");
    j = base();
    json_object_set_new(at(j, "sender.special_tokens"), "stop", json_pack("[i, i]", 2, 50000));
    expect_error(j, LW_ERR_INVALID, "d/m.json: sender.special_tokens.stop[1]: 50000 is not a token id; "
                                    "expected a token id from 0 to 49151 (vocab 49152)");
    j = base();
    json_object_set_new(at(j, "sender.special_tokens"), "eos", json_string("</s>"));
    expect_error(j, LW_ERR_FORMAT, "d/m.json: sender.special_tokens.eos: got a string; "
                                   "expected a token id from 0 to 49151, or null");
    j = base();
    json_object_set_new(at(j, "sender.special_tokens"), "pad", json_null());
    json_object_set_new(at(j, "sender.special_tokens"), "bos", json_integer(1));
    json_object_set_new(at(j, "sender.special_tokens"), "stop", json_pack("[i, i]", 2, 0));
    lw_manifest *m = malloc(sizeof *m);
    ck_assert_msg(parse_json(j, m) == LW_OK, "%s", lw_last_error());
    ck_assert_int_eq(m->sender.pad_id, -1);
    ck_assert_int_eq(m->sender.bos_id, 1);
    ck_assert_int_eq(m->sender.n_stop_ids, 2);
    ck_assert_int_eq(m->sender.stop_ids[1], 0);
    free(m);
}
END_TEST

START_TEST(error_bad_name)
{
    json_t *j = base();
    json_object_set_new(j, "name", json_string("a to b!"));
    expect_error(j, LW_ERR_INVALID, "d/m.json: name: \"a to b!\" is not a valid pair name; expected 1 to 63 characters "
                                    "from A-Z a-z 0-9 . _ -, not starting with a dot");
    j = base();
    json_object_set_new(j, "name", json_string(".."));
    expect_error_prefix(j, LW_ERR_INVALID, "d/m.json: name: \"..\" is not a valid pair name; expected");
    j = base();
    char longname[80];
    memset(longname, 'x', 64);
    longname[64] = 0;
    json_object_set_new(j, "name", json_string(longname));
    expect_error_prefix(j, LW_ERR_INVALID, "d/m.json: name: \"xxxx");
    j = base();
    json_object_set_new(at(j, "sender"), "name", json_string(""));
    expect_error(j, LW_ERR_INVALID, "d/m.json: sender.name: length 0; expected a name of 1 to 63 bytes");
}
END_TEST

START_TEST(error_schema_version)
{
    json_t *j = base();
    json_object_set_new(j, "lwc_manifest", json_integer(2));
    json_object_set_new(j, "new_in_v2", json_true());
    expect_error(j, LW_ERR_UNSUPPORTED, "d/m.json: lwc_manifest: unsupported schema version 2; expected 1");
    j = base();
    json_object_del(j, "lwc_manifest");
    expect_error(j, LW_ERR_FORMAT, "d/m.json: lwc_manifest: missing required field; expected the schema version 1");
}
END_TEST

START_TEST(error_json_syntax)
{
    expect_text_error("{\n  \"lwc_manifest\": 1,\n  \"name\": }\n", LW_ERR_FORMAT,
                      "d/m.json: line 3, column 11: JSON syntax error: unexpected token near '}'; expected valid JSON");
    expect_text_error("", LW_ERR_FORMAT,
                      "d/m.json: line 1, column 0: JSON syntax error: '[' or '{' expected near end of file; "
                      "expected valid JSON");
}
END_TEST

/* A BOM used to print raw (invisibly) inside jansson's "near ''". */
START_TEST(error_byte_order_mark)
{
    expect_text_error("\xEF\xBB\xBF{\"lwc_manifest\": 1}", LW_ERR_FORMAT,
                      "d/m.json: starts with a UTF-8 byte-order mark (EF BB BF); save the file without it");
    ck_assert_ptr_null(strchr(lw_last_error(), '\xEF'));
    expect_text_error("{\"lwc_manifest\": 1,\n \x7f}", LW_ERR_FORMAT,
                      "d/m.json: line 2, column 2: JSON syntax error: string or '}' expected near '\\x7F'; "
                      "expected valid JSON");
    ck_assert_ptr_null(strchr(lw_last_error(), '\x7f'));
}
END_TEST

START_TEST(error_duplicate_key)
{
    expect_text_error("{\"lwc_manifest\": 1,\n \"name\": \"a\",\n \"name\": \"b\"}", LW_ERR_FORMAT,
                      "d/m.json: line 3, column 7: duplicate object key near '\"name\"'; expected each key once per object");
}
END_TEST

START_TEST(error_unset_variable)
{
    unsetenv("LWC_TEST_UNSET");
    json_t *j = base();
    json_object_set_new(at(j, "sender.weights"), "path", json_string("$LWC_TEST_UNSET/a.gguf"));
    expect_error(j, LW_ERR_INVALID, "d/m.json: sender.weights.path: environment variable LWC_TEST_UNSET is not set; "
                                    "expected it set (export LWC_TEST_UNSET=...) or a default written "
                                    "${LWC_TEST_UNSET:-default}");
    j = base();
    json_object_set_new(at(j, "receiver.tokenizer"), "path", json_string("${LWC_TEST_UNSET/x"));
    expect_error(j, LW_ERR_INVALID, "d/m.json: receiver.tokenizer.path: unterminated ${ in \"${LWC_TEST_UNSET/x\"; "
                                    "expected $NAME, ${NAME}, ${NAME:-default} or $$");
}
END_TEST

START_TEST(variables_expand)
{
    setenv("LWC_TEST_SET", "/models", 1);
    unsetenv("LWC_TEST_UNSET");
    json_t *j = base();
    json_object_set_new(at(j, "sender.weights"), "path", json_string("$LWC_TEST_SET/a.gguf"));
    json_object_set_new(at(j, "receiver.weights"), "path", json_string("${LWC_TEST_UNSET:-../m}/b$$1.gguf"));
    json_object_set_new(at(j, "receiver.tokenizer"), "path", json_string("${LWC_TEST_SET:-x}/t.json"));
    lw_manifest *m = malloc(sizeof *m);
    ck_assert_msg(parse_json(j, m) == LW_OK, "%s", lw_last_error());
    ck_assert_str_eq(m->sender.weights_path, "/models/a.gguf");
    ck_assert_str_eq(m->receiver.weights_path, "d/../m/b$1.gguf");
    ck_assert_str_eq(m->receiver.tokenizer_path, "/models/t.json");
    unsetenv("LWC_TEST_SET");
    free(m);
}
END_TEST

START_TEST(error_gpu_arch)
{
    json_t *j = base();
    json_object_set_new(at(j, "build"), "gpu_archs", json_pack("[s, s]", "sm_80", "compute_90"));
    expect_error(j, LW_ERR_INVALID, "d/m.json: build.gpu_archs[1]: \"compute_90\" is not a GPU architecture; expected "
                                    "\"sm_NN\" with NN from 50 to 120 (\"sm_80\", \"sm_90\")");
    j = base();
    json_object_set_new(at(j, "build"), "gpu_archs", json_pack("[s]", "sm_130"));
    expect_error_prefix(j, LW_ERR_INVALID, "d/m.json: build.gpu_archs[0]: \"sm_130\" is not a GPU architecture;");
    j = base();
    json_object_set_new(at(j, "build"), "gpu_archs", json_pack("[s, s]", "sm_90", "sm_90"));
    expect_error(j, LW_ERR_INVALID, "d/m.json: build.gpu_archs[1]: sm_90 listed twice; expected each architecture once");
    j = base();
    json_object_set_new(at(j, "build"), "gpu_archs", json_array());
    expect_error(j, LW_ERR_INVALID, "d/m.json: build.gpu_archs: 0 entries; expected 1 to 8");
    j = base();
    json_object_set_new(at(j, "build"), "gpu_archs", json_pack("[i]", 80));
    expect_error(j, LW_ERR_FORMAT, "d/m.json: build.gpu_archs[0]: got an integer; expected a string \"sm_NN\"");
}
END_TEST

/* ---- writing a MODEL block -------------------------------------------- */

static void assert_same_model(const lw_model_config *a, const lw_model_config *b)
{
    ck_assert_str_eq(a->name, b->name);
#define SAME(f) ck_assert_msg(a->f == b->f, "%s differs after the round trip", #f)
    SAME(family); SAME(hidden); SAME(n_layers); SAME(n_heads); SAME(n_kv_heads); SAME(head_dim); SAME(ffn);
    SAME(activation); SAME(norm); SAME(norm_eps); SAME(rope_base); SAME(rope_base_local);
    SAME(rope_scaling.kind); SAME(rope_scaling.factor); SAME(rope_scaling.low_freq_factor);
    SAME(rope_scaling.high_freq_factor); SAME(rope_scaling.original_context); SAME(sliding_window);
    SAME(global_every); SAME(qk_norm); SAME(post_norms); SAME(scale_embeddings); SAME(query_scale); SAME(vocab);
    SAME(context); SAME(tied_embeddings); SAME(embed_rms); SAME(weights_format); SAME(tokenizer_kind);
    SAME(chat_template); SAME(bos_id); SAME(eos_id); SAME(pad_id); SAME(n_stop_ids);
#undef SAME
    ck_assert_str_eq(a->weights_path, b->weights_path);
    ck_assert_str_eq(a->tokenizer_path, b->tokenizer_path);
    for (int i = 0; i < a->n_stop_ids; i++) ck_assert_int_eq(a->stop_ids[i], b->stop_ids[i]);
}

static void round_trip(const char *pair, bool use_receiver)
{
    lw_manifest *m = malloc(sizeof *m), *back = malloc(sizeof *back);
    ck_assert_msg(lw_manifest_load(tl_src(pair), m) == LW_OK, "%s", lw_last_error());
    const lw_model_config *c = use_receiver ? &m->receiver : &m->sender;
    char *text = lw_model_config_to_json(c);
    ck_assert_ptr_nonnull(text);
    json_error_t err;
    json_t *block = json_loads(text, JSON_REJECT_DUPLICATES, &err);
    ck_assert_msg(block != NULL, "to_json wrote invalid JSON: %s\n%s", err.text, text);
    free(text);
    json_t *j = base();
    json_object_set(j, "sender", block);
    json_object_set_new(j, "receiver", block);
    json_object_set_new(at(j, "bridge"), "source_layer", json_integer(1));
    ck_assert_msg(parse_json(j, back) == LW_OK, "%s", lw_last_error());
    assert_same_model(c, &back->sender);
    assert_same_model(c, &back->receiver);
    free(m);
    free(back);
}

START_TEST(model_json_round_trips)
{
    round_trip("pairs/smollm2-135m_to_gemma3-270m.json", false);
    round_trip("pairs/smollm2-135m_to_gemma3-270m.json", true);
    round_trip("pairs/llama31-8b_to_mistral-7b.json", false);  /* llama3 rope scaling, null pad */
    round_trip("pairs/stories260k_to_smollm2-135m.json", false);
}
END_TEST

START_TEST(model_json_escapes_dollar_and_prints_short_floats)
{
    lw_manifest *m = malloc(sizeof *m);
    ck_assert_msg(parse_json(base(), m) == LW_OK, "%s", lw_last_error());
    snprintf(m->sender.weights_path, sizeof m->sender.weights_path, "/x/$HOME/a.gguf");
    char *text = lw_model_config_to_json(&m->sender);
    ck_assert_ptr_nonnull(text);
    ck_assert_ptr_nonnull(strstr(text, "\"/x/$$HOME/a.gguf\""));
    ck_assert_ptr_nonnull(strstr(text, "\"norm_eps\": 1e-5"));
    ck_assert_ptr_nonnull(strstr(text, "\"rope_scaling\": {\n    \"type\": \"none\"\n  }"));
    free(text);
    free(m);
}
END_TEST

/* ---- agreement with the weights files ---------------------------------- */

START_TEST(weights_agree_with_pairs)
{
    const char *pairs[] = {"pairs/smollm2-135m_to_gemma3-270m.json", "pairs/stories260k_to_smollm2-135m.json"};
    lw_manifest *m = malloc(sizeof *m);
    for (int i = 0; i < 2; i++) {
        ck_assert_msg(lw_manifest_load(tl_src(pairs[i]), m) == LW_OK, "%s", lw_last_error());
        tl_require_file(m->sender.weights_path);
        tl_require_file(m->receiver.weights_path);
        ck_assert_msg(lw_manifest_check_weights(m, "sender") == LW_OK, "%s: %s", pairs[i], lw_last_error());
        ck_assert_msg(lw_manifest_check_weights(m, "receiver") == LW_OK, "%s: %s", pairs[i], lw_last_error());
    }
    free(m);
}
END_TEST

START_TEST(weights_mismatch_names_both_values)
{
    lw_manifest *m = malloc(sizeof *m);
    ck_assert(lw_manifest_load(tl_src("pairs/smollm2-135m_to_gemma3-270m.json"), m) == LW_OK);
    char want[16384];
    m->receiver.n_kv_heads = 2;
    ck_assert_int_eq(lw_manifest_check_weights(m, "receiver"), LW_ERR_INVALID);
    snprintf(want, sizeof want, "%s: receiver.n_kv_heads: the manifest says 2 but %s says 1; expected the manifest "
             "to match the weights", m->path, m->receiver.weights_path);
    ck_assert_str_eq(lw_last_error(), want);
    m->receiver.n_kv_heads = 1;
    m->sender.norm_eps = 1e-6f;
    ck_assert_int_eq(lw_manifest_check_weights(m, "sender"), LW_ERR_INVALID);
    snprintf(want, sizeof want, "%s: sender.norm_eps: the manifest says 1e-06 but %s says 1e-05; expected the "
             "manifest to match the weights (relative tolerance 0.001)", m->path, m->sender.weights_path);
    ck_assert_str_eq(lw_last_error(), want);
    ck_assert_int_eq(lw_manifest_check_weights(m, "bridge"), LW_ERR_INVALID);
    snprintf(m->sender.weights_path, sizeof m->sender.weights_path, "/nonexistent.gguf");
    ck_assert_int_ne(lw_manifest_check_weights(m, "sender"), LW_OK);
    ck_assert_ptr_nonnull(strstr(lw_last_error(), "sender.weights.path"));
    free(m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("manifest");
    TCase *load = tcase_create("load");
    tcase_add_test(load, every_pair_loads);
    tcase_add_test(load, default_pair_matches_the_models);
    tcase_add_test(load, pairs_work_without_environment);
    tcase_add_test(load, missing_file_is_io_error);
    tcase_add_test(load, defaults_fill_in);
    tcase_add_test(load, explicit_values_beat_family_defaults);
    tcase_add_test(load, variables_expand);
    suite_add_tcase(s, load);
    TCase *errors = tcase_create("errors");
    tcase_add_test(errors, error_missing_field);
    tcase_add_test(errors, error_wrong_type);
    tcase_add_test(errors, error_out_of_range);
    tcase_add_test(errors, error_enum_value);
    tcase_add_test(errors, error_unknown_key);
    tcase_add_test(errors, error_inconsistent_shapes);
    tcase_add_test(errors, error_special_tokens);
    tcase_add_test(errors, error_bad_name);
    tcase_add_test(errors, error_schema_version);
    tcase_add_test(errors, error_json_syntax);
    tcase_add_test(errors, error_duplicate_key);
    tcase_add_test(errors, error_byte_order_mark);
    tcase_add_test(errors, error_unset_variable);
    tcase_add_test(errors, error_gpu_arch);
    suite_add_tcase(s, errors);
    TCase *json = tcase_create("to_json");
    tcase_add_test(json, model_json_round_trips);
    tcase_add_test(json, model_json_escapes_dollar_and_prints_short_floats);
    suite_add_tcase(s, json);
    TCase *weights = tcase_create("weights");
    tcase_set_timeout(weights, 30);
    tcase_add_test(weights, weights_agree_with_pairs);
    tcase_add_test(weights, weights_mismatch_names_both_values);
    suite_add_tcase(s, weights);
    return tl_run_suite(s);
}
