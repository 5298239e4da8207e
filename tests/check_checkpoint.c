/* Checkpoints: bit-exact round trip, the safetensors header layout, and
 * clear errors for truncated, corrupt or mismatched files. */
#include "testlib.h"
#include "checkpoint.h"
#include "ops.h"
#include "safetensors_write.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    lw_bridge b;
    lw_adamw opt;
    lw_rng rng;
} trainer;

static void trainer_make(trainer *t, int width, uint64_t seed)
{
    lw_bridge_config c = {0};
    c.kind = LW_BRIDGE_PERCEIVER;
    c.soft_tokens = 3, c.width = width, c.depth = 2, c.heads = 2, c.ffn_mult = 2, c.calibration = LW_CALIB_RMS;
    ck_assert_int_eq(lw_bridge_create(&t->b, &c, 12, 10, 0.8f), LW_OK);
    lw_bridge_init(&t->b, seed);
    ck_assert_int_eq(lw_adamw_init(&t->opt, t->b.n_params, lw_adamw_defaults()), LW_OK);
    lw_rng_seed(&t->rng, seed);
}

static void trainer_free(trainer *t)
{
    lw_bridge_free(&t->b);
    lw_adamw_free(&t->opt);
}

/* A few optimiser steps on random gradients so every state is non-trivial. */
static void churn(trainer *t, int steps)
{
    for (int s = 0; s < steps; s++) {
        for (size_t i = 0; i < t->b.n_params; i++) t->b.grads[i] = (float)lw_rng_normal(&t->rng);
        lw_bridge_adamw_step(&t->b, &t->opt, 1e-2f, 0.01f);
    }
}

static void save_ok(const char *dir, trainer *t, long step)
{
    ck_assert_msg(lw_checkpoint_save(dir, &t->b, &t->opt, &t->rng, step) == LW_OK, "%s", lw_last_error());
}

static const char *file_in(const char *dir, const char *name)
{
    static char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return path;
}

START_TEST(round_trip_is_bit_exact)
{
    const char *dir = tl_tmpdir("ckpt_round_trip");
    trainer a, b;
    trainer_make(&a, 8, 1);
    churn(&a, 3);
    save_ok(dir, &a, 3);
    ck_assert(access(file_in(dir, "bridge.safetensors.tmp"), F_OK) != 0);
    trainer_make(&b, 8, 99);
    long step = -1;
    ck_assert_msg(lw_checkpoint_load(dir, &b.b, &b.opt, &b.rng, &step) == LW_OK, "%s", lw_last_error());
    ck_assert_int_eq(step, 3);
    ck_assert_int_eq(b.opt.step, 3);
    ck_assert_int_eq(memcmp(a.b.params, b.b.params, a.b.n_params * sizeof(float)), 0);
    ck_assert_int_eq(memcmp(a.opt.m, b.opt.m, a.opt.n * sizeof(float)), 0);
    ck_assert_int_eq(memcmp(a.opt.v, b.opt.v, a.opt.n * sizeof(float)), 0);
    ck_assert_int_eq(memcmp(a.rng.s, b.rng.s, sizeof a.rng.s), 0);
    ck_assert_uint_eq(lw_rng_next(&a.rng), lw_rng_next(&b.rng));
    trainer_free(&a), trainer_free(&b);
}
END_TEST

START_TEST(header_layout)
{
    const char *dir = tl_tmpdir("ckpt_layout");
    trainer a;
    trainer_make(&a, 8, 1);
    save_ok(dir, &a, 0);
    size_t len;
    unsigned char *buf = (unsigned char *)tl_read_file(file_in(dir, "bridge.safetensors"), &len);
    ck_assert_ptr_nonnull(buf);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | buf[i];
    ck_assert_uint_eq(n % 8, 0);
    ck_assert_uint_le(n + 8, len);
    ck_assert_int_eq(buf[8], '{');
    json_error_t err;
    json_t *h = json_loadb((const char *)buf + 8, n, 0, &err);
    ck_assert_msg(h != NULL, "header JSON: %s", err.text);
    /* What follows the JSON up to the data is padding spaces. */
    char *compact = json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER);
    for (size_t i = strlen(compact); i < n; i++) ck_assert_int_eq(buf[8 + i], ' ');
    free(compact);
    json_t *meta = json_object_get(h, "__metadata__");
    ck_assert_str_eq(json_string_value(json_object_get(meta, "kind")), "perceiver");
    ck_assert_str_eq(json_string_value(json_object_get(meta, "width")), "8");
    /* Every bridge tensor, in table order, contiguous, covering the data. */
    json_int_t next = 0;
    for (int i = 0; i < a.b.n_tensors; i++) {
        json_t *e = json_object_get(h, a.b.tensors[i].name);
        ck_assert_ptr_nonnull(e);
        ck_assert_str_eq(json_string_value(json_object_get(e, "dtype")), "F32");
        json_t *shape = json_object_get(e, "shape");
        ck_assert_int_eq(json_array_size(shape), a.b.tensors[i].ndim);
        ck_assert_int_eq(json_integer_value(json_array_get(shape, 0)), a.b.tensors[i].shape[0]);
        json_t *off = json_object_get(e, "data_offsets");
        ck_assert_int_eq(json_integer_value(json_array_get(off, 0)), next);
        next = json_integer_value(json_array_get(off, 1));
        float first;
        memcpy(&first, buf + 8 + n + json_integer_value(json_array_get(off, 0)), 4);
        ck_assert_float_eq(first, a.b.params[a.b.tensors[i].offset]);
    }
    ck_assert_uint_eq((size_t)next, len - 8 - n);
    json_decref(h);
    free(buf);
    trainer_free(&a);
}
END_TEST

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    fclose(f);
}

/* Loading must fail with code, mention `needle`, and leave the bridge as it was. */
static void expect_load_error(const char *dir, trainer *t, lw_status code, const char *needle)
{
    float *keep = malloc(t->b.n_params * sizeof(float));
    memcpy(keep, t->b.params, t->b.n_params * sizeof(float));
    long step = -7;
    lw_status st = lw_checkpoint_load(dir, &t->b, &t->opt, &t->rng, &step);
    ck_assert_msg(st == code, "status %d, want %d: %s", st, code, lw_last_error());
    ck_assert_msg(strstr(lw_last_error(), needle), "message \"%s\" lacks \"%s\"", lw_last_error(), needle);
    ck_assert_int_eq(step, -7);
    ck_assert_int_eq(memcmp(keep, t->b.params, t->b.n_params * sizeof(float)), 0);
    free(keep);
}

START_TEST(truncated_and_corrupt_files_give_clear_errors)
{
    const char *dir = tl_tmpdir("ckpt_corrupt");
    trainer a, b;
    trainer_make(&a, 8, 1);
    trainer_make(&b, 8, 2);
    save_ok(dir, &a, 5);
    char path[4200];
    snprintf(path, sizeof path, "%s", file_in(dir, "bridge.safetensors"));
    size_t len;
    char *good = tl_read_file(path, &len);

    write_bytes(path, good, len - 100); /* the data is cut short */
    expect_load_error(dir, &b, LW_ERR_FORMAT, "truncated");
    expect_load_error(dir, &b, LW_ERR_FORMAT, "bridge.safetensors");
    write_bytes(path, good, 5);
    expect_load_error(dir, &b, LW_ERR_FORMAT, "too short");
    write_bytes(path, good, 300); /* the header is cut short */
    expect_load_error(dir, &b, LW_ERR_FORMAT, "header length");
    char *bad = malloc(len);
    memcpy(bad, good, len);
    bad[9] = '#';
    write_bytes(path, bad, len);
    expect_load_error(dir, &b, LW_ERR_FORMAT, "not a JSON object");
    free(bad);

    unlink(path);
    expect_load_error(dir, &b, LW_ERR_IO, "bridge.safetensors");
    write_bytes(path, good, len);
    long step;
    ck_assert_int_eq(lw_checkpoint_load(dir, &b.b, &b.opt, &b.rng, &step), LW_OK);
    free(good);
    trainer_free(&a), trainer_free(&b);
}
END_TEST

/* st_open used to read the size after freeing the file: "0 bytes". */
START_TEST(short_file_names_its_size)
{
    const char *dir = tl_tmpdir("ckpt_short");
    trainer a;
    trainer_make(&a, 8, 1);
    save_ok(dir, &a, 1);
    write_bytes(file_in(dir, "bridge.safetensors"), "\x10\0\0\0\0\0\0", 7);
    expect_load_error(dir, &a, LW_ERR_FORMAT, "bridge.safetensors: 7 bytes is too short");
    trainer_free(&a);
}
END_TEST

/* A safetensors file of the given header and data bytes. */
static void write_st(const char *path, const char *header, const void *data, size_t n)
{
    size_t hl = strlen(header);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    for (int i = 0; i < 8; i++) fputc((int)((uint64_t)hl >> (8 * i) & 0xff), f);
    fwrite(header, 1, hl, f);
    if (n) fwrite(data, 1, n, f);
    ck_assert_int_eq(fclose(f), 0);
}

static void expect_read_error(const char *path, const char *name, const char *needle)
{
    float *data = NULL;
    int64_t shape[4];
    int ndim;
    lw_status st = lw_safetensors_read_f32(path, name, &data, shape, &ndim);
    ck_assert_msg(st == LW_ERR_FORMAT, "status %d: %s", st, lw_last_error());
    ck_assert_ptr_null(data);
    ck_assert_msg(strstr(lw_last_error(), path) && strstr(lw_last_error(), needle), "message \"%s\" lacks \"%s\"",
                  lw_last_error(), needle);
}

/* The whole header is checked at open, not only the tensor asked for. */
START_TEST(overlapping_or_bad_ranges_are_refused)
{
    const char *dir = tl_tmpdir("ckpt_ranges");
    char path[4200];
    float d[5] = {1, 2, 3, 4, 5};
    snprintf(path, sizeof path, "%s/x.safetensors", dir);
    write_st(path, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                   "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", d, 12);
    expect_read_error(path, "a", "tensors \"a\" [0, 8] and \"b\" [4, 12] overlap");
    write_st(path, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                   "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0.5,8]}}", d, 8);
    expect_read_error(path, "a", "tensor \"b\": data_offsets is [0.5, 8], expected two non-negative integers");
    write_st(path, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                   "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":\"0-8\"}}", d, 8);
    expect_read_error(path, "a", "tensor \"b\": data_offsets is \"0-8\"");
    write_st(path, "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,4]}}", d, 8);
    expect_read_error(path, "a", "[8, 4] run backwards");
    write_st(path, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"a\":{}}", d, 8);
    expect_read_error(path, "a", "duplicate");

    /* A gap (here 4 bytes between a and b) is allowed: see lw_safetensors_check_offsets. */
    write_st(path, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                   "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", d, 16);
    float *x = NULL;
    int64_t shape[4];
    int ndim;
    ck_assert_msg(lw_safetensors_read_f32(path, "b", &x, shape, &ndim) == LW_OK, "%s", lw_last_error());
    ck_assert(ndim == 1 && shape[0] == 2 && x[0] == 3.0f && x[1] == 4.0f);
    free(x);
}
END_TEST

/* Index of a bridge tensor by name. */
static int tensor_index(const lw_bridge *b, const char *name)
{
    for (int i = 0; i < b->n_tensors; i++)
        if (strcmp(b->tensors[i].name, name) == 0) return i;
    ck_abort_msg("no bridge tensor %s", name);
    return -1;
}

START_TEST(non_finite_values_are_refused)
{
    const char *dir = tl_tmpdir("ckpt_nonfinite");
    trainer a, b;
    trainer_make(&a, 8, 1);
    trainer_make(&b, 8, 2);
    churn(&a, 2);
    const lw_bridge_tensor *t = &a.b.tensors[tensor_index(&a.b, "in_proj.weight")];
    float keep = a.b.params[t->offset + 5];
    a.b.params[t->offset + 5] = NAN;
    save_ok(dir, &a, 2);
    expect_load_error(dir, &b, LW_ERR_FORMAT, "\"in_proj.weight\" holds NaN at index 5");
    float *before = malloc(b.b.n_params * sizeof(float));
    memcpy(before, b.b.params, b.b.n_params * sizeof(float));
    ck_assert_int_eq(lw_checkpoint_load_bridge(file_in(dir, "bridge.safetensors"), &b.b), LW_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(lw_last_error(), "bridge.safetensors: tensor \"in_proj.weight\" holds NaN"));
    ck_assert_int_eq(memcmp(before, b.b.params, b.b.n_params * sizeof(float)), 0);
    free(before);

    /* The moments too: an infinite second moment in the train state. */
    a.b.params[t->offset + 5] = keep;
    const lw_bridge_tensor *q = &a.b.tensors[tensor_index(&a.b, "queries")];
    a.opt.v[q->offset + 7] = INFINITY;
    save_ok(dir, &a, 2);
    expect_load_error(dir, &b, LW_ERR_FORMAT, "train_state.safetensors: tensor \"adam_v.queries\" holds +inf at "
                      "index 7");
    a.opt.v[q->offset + 7] = 0.5f;
    save_ok(dir, &a, 2);
    long step = 0;
    ck_assert_msg(lw_checkpoint_load(dir, &b.b, &b.opt, &b.rng, &step) == LW_OK, "%s", lw_last_error());
    trainer_free(&a), trainer_free(&b);
}
END_TEST

START_TEST(mismatches_are_refused)
{
    const char *dir = tl_tmpdir("ckpt_mismatch");
    trainer a, wide;
    trainer_make(&a, 8, 1);
    trainer_make(&wide, 16, 1);
    save_ok(dir, &a, 5);
    expect_load_error(dir, &wide, LW_ERR_FORMAT, "in_proj.weight\" has shape [8, 12], expected [16, 12]");

    /* A bridge from another step beside the train state: an interrupted save. */
    char other[4200];
    snprintf(other, sizeof other, "%s/other", dir);
    save_ok(other, &a, 6);
    char cmd[9000];
    snprintf(cmd, sizeof cmd, "cp '%s/bridge.safetensors' '%s/bridge.safetensors'", other, dir);
    ck_assert_int_eq(tl_run(NULL, "%s", cmd), 0);
    expect_load_error(dir, &a, LW_ERR_FORMAT, "at step 6");
    trainer_free(&a), trainer_free(&wide);
}
END_TEST

START_TEST(writer_refuses_bad_tensors)
{
    const char *dir = tl_tmpdir("st_writer");
    float x[2] = {1, 2};
    lw_st_tensor t[2] = {{"a", x, 1, {2}}, {"a", x, 1, {2}}};
    char path[4200];
    snprintf(path, sizeof path, "%s/dup.safetensors", dir);
    ck_assert_int_eq(lw_safetensors_write(path, t, 2, NULL, 0), LW_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(lw_last_error(), "duplicate"));
    ck_assert(access(path, F_OK) != 0);
    snprintf(path, sizeof path, "%s/no/such/dir/x.safetensors", dir);
    ck_assert_int_eq(lw_safetensors_write(path, t, 1, NULL, 0), LW_ERR_IO);
    ck_assert_ptr_nonnull(strstr(lw_last_error(), "temporary file beside"));
    ck_assert_ptr_nonnull(strstr(lw_last_error(), "/no/such/dir/x.safetensors"));
}
END_TEST

/* ---- synthetic end-to-end training -------------------------------------
 * Sender states: T rows of noise plus +/- a fixed direction by class; the
 * "receiver" is a fixed random linear head on the mean soft token. Examples
 * come from the trainer's RNG, so the checkpointed RNG fixes the data too. */
enum { SYN_T = 4, SYN_S = 12, SYN_R = 10, SYN_C = 2, SYN_BATCH = 8 };

typedef struct {
    float dir[SYN_S];
    float head[SYN_C * SYN_R];
} synthetic;

static void synthetic_make(synthetic *syn)
{
    lw_rng r;
    lw_rng_seed(&r, 1234);
    for (int i = 0; i < SYN_S; i++) syn->dir[i] = (float)lw_rng_normal(&r);
    for (int i = 0; i < SYN_C * SYN_R; i++) syn->head[i] = (float)lw_rng_normal(&r);
}

static int synthetic_example(const synthetic *syn, lw_rng *r, float *x)
{
    int label = (int)lw_rng_below(r, 2);
    for (int t = 0; t < SYN_T; t++)
        for (int i = 0; i < SYN_S; i++)
            x[t * SYN_S + i] = (float)lw_rng_normal(r) + (label ? 1.0f : -1.0f) * syn->dir[i];
    return label;
}

/* Receiver head on the mean of the M soft tokens; returns the loss and, if
 * dsoft is given, writes d(loss)/d(soft). */
static float head_forward(const synthetic *syn, const float *soft, int M, int label, float *dsoft, int *pred)
{
    float mean[SYN_R] = {0}, logits[SYN_C], probs[SYN_C], dlogits[SYN_C] = {0};
    for (int m = 0; m < M; m++)
        for (int i = 0; i < SYN_R; i++) mean[i] += soft[m * SYN_R + i] / M;
    for (int c = 0; c < SYN_C; c++) {
        logits[c] = 0;
        for (int i = 0; i < SYN_R; i++) logits[c] += syn->head[c * SYN_R + i] * mean[i];
    }
    float loss = cross_entropy_forward(probs, logits, &label, 1, SYN_C);
    *pred = logits[1] > logits[0];
    if (!dsoft) return loss;
    cross_entropy_backward(dlogits, probs, &label, 1, SYN_C, 1.0f);
    for (int m = 0; m < M; m++)
        for (int i = 0; i < SYN_R; i++) {
            float g = 0;
            for (int c = 0; c < SYN_C; c++) g += dlogits[c] * syn->head[c * SYN_R + i];
            dsoft[m * SYN_R + i] = g / M;
        }
    return loss;
}

static void train_steps(trainer *t, const synthetic *syn, lw_bridge_acts *a, long from, long to, long total)
{
    int M = t->b.cfg.soft_tokens;
    float x[SYN_T * SYN_S], soft[64 * SYN_R], dsoft[64 * SYN_R];
    for (long step = from; step < to; step++) {
        lw_bridge_zero_grad(&t->b);
        for (int i = 0; i < SYN_BATCH; i++) {
            int label = synthetic_example(syn, &t->rng, x), pred;
            ck_assert_int_eq(lw_bridge_forward(&t->b, a, x, SYN_T, soft), LW_OK);
            head_forward(syn, soft, M, label, dsoft, &pred);
            for (int j = 0; j < M * SYN_R; j++) dsoft[j] /= SYN_BATCH;
            lw_bridge_backward(&t->b, a, dsoft, NULL);
        }
        lw_clip_grad_norm(t->b.grads, t->b.n_params, 1.0f);
        lw_bridge_adamw_step(&t->b, &t->opt, lw_lr_at(step, 10, total, 2e-2f, 0.1f), 0.01f);
    }
}

static double accuracy(trainer *t, const synthetic *syn, lw_bridge_acts *a, int n)
{
    lw_rng r;
    lw_rng_seed(&r, 999);
    float x[SYN_T * SYN_S], soft[64 * SYN_R];
    int correct = 0;
    for (int i = 0; i < n; i++) {
        int label = synthetic_example(syn, &r, x), pred;
        ck_assert_int_eq(lw_bridge_forward(&t->b, a, x, SYN_T, soft), LW_OK);
        head_forward(syn, soft, t->b.cfg.soft_tokens, label, NULL, &pred);
        correct += pred == label;
    }
    return (double)correct / n;
}

START_TEST(synthetic_task_trains_to_95_percent)
{
    synthetic syn;
    synthetic_make(&syn);
    trainer t;
    trainer_make(&t, 8, 5);
    lw_bridge_acts *a;
    ck_assert_int_eq(lw_bridge_acts_create(&t.b, SYN_T, &a), LW_OK);
    double before = accuracy(&t, &syn, a, 400);
    train_steps(&t, &syn, a, 0, 150, 150);
    double after = accuracy(&t, &syn, a, 400);
    fprintf(stderr, "synthetic: held-out accuracy %.3f before, %.3f after 150 steps\n", before, after);
    ck_assert_msg(after >= 0.95, "accuracy %.3f after training", after);
    lw_bridge_acts_free(a);
    trainer_free(&t);
}
END_TEST

START_TEST(resume_is_bit_exact)
{
    const char *dir = tl_tmpdir("ckpt_resume");
    synthetic syn;
    synthetic_make(&syn);
    trainer straight, first, resumed;
    trainer_make(&straight, 8, 5);
    trainer_make(&first, 8, 5);
    trainer_make(&resumed, 8, 77); /* different init: everything must come from the checkpoint */
    lw_bridge_acts *a;
    ck_assert_int_eq(lw_bridge_acts_create(&straight.b, SYN_T, &a), LW_OK);
    train_steps(&straight, &syn, a, 0, 30, 30);
    train_steps(&first, &syn, a, 0, 15, 30);
    save_ok(dir, &first, 15);
    long step;
    ck_assert_msg(lw_checkpoint_load(dir, &resumed.b, &resumed.opt, &resumed.rng, &step) == LW_OK, "%s",
                  lw_last_error());
    ck_assert_int_eq(step, 15);
    train_steps(&resumed, &syn, a, step, 30, 30);
    ck_assert_int_eq(memcmp(straight.b.params, resumed.b.params, straight.b.n_params * sizeof(float)), 0);
    ck_assert_int_eq(memcmp(straight.opt.m, resumed.opt.m, straight.opt.n * sizeof(float)), 0);
    ck_assert_int_eq(memcmp(straight.opt.v, resumed.opt.v, straight.opt.n * sizeof(float)), 0);
    lw_bridge_acts_free(a);
    trainer_free(&straight), trainer_free(&first), trainer_free(&resumed);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("checkpoint");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, round_trip_is_bit_exact);
    tcase_add_test(tc, header_layout);
    tcase_add_test(tc, truncated_and_corrupt_files_give_clear_errors);
    tcase_add_test(tc, short_file_names_its_size);
    tcase_add_test(tc, overlapping_or_bad_ranges_are_refused);
    tcase_add_test(tc, non_finite_values_are_refused);
    tcase_add_test(tc, mismatches_are_refused);
    tcase_add_test(tc, writer_refuses_bad_tensors);
    tcase_add_test(tc, synthetic_task_trains_to_95_percent);
    tcase_add_test(tc, resume_is_bit_exact);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
