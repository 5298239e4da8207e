/* Runs that never lose work: the run folder's lock and its refusals, the
 * old run moved aside by --force, checkpoints swapped in whole (and still
 * loadable after a SIGKILL at any moment of a write), a non-finite step
 * stopping (or skipped) without touching the last checkpoint, the log cut
 * back to the checkpoint on resume, and the shared option rules. */
#include "testlib.h"
#include "tiny_models.h"
#include "checkpoint.h"
#include "cmd_common.h"
#include "run_dir.h"
#include "train.h"
#include "train_log.h"
#include "train_rules.h"
#include "manifest.h"

#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *in(const char *dir, const char *name)
{
    static char path[4][4400];
    static int k;
    char d[4096];
    k = (k + 1) % 4;
    snprintf(d, sizeof d, "%.4000s", dir);   /* dir may be an earlier result */
    snprintf(path[k], sizeof path[k], "%s/%.200s", d, name);
    return path[k];
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static void mkdir_ok(const char *path) { ck_assert_int_eq(mkdir(path, 0755), 0); }

START_TEST(second_writer_is_refused_with_the_holder)
{
    const char *dir = tl_tmpdir("run_lock");
    lw_run_dir a, b;
    ck_assert_msg(lw_run_dir_open(&a, dir, LW_RUN_NEW) == LW_OK, "%s", lw_last_error());
    /* flock locks belong to the open file, so a second open in this process
     * is refused as another process's would be */
    ck_assert_int_eq(lw_run_dir_open(&b, dir, LW_RUN_RESUME), LW_ERR_INVALID);
    char pid[32];
    snprintf(pid, sizeof pid, "pid %d on host", (int)getpid());
    ck_assert_msg(strstr(lw_last_error(), "is being written by another run") && strstr(lw_last_error(), pid),
                  "%s", lw_last_error());
    lw_run_dir_close(&a);
    ck_assert_msg(lw_run_dir_open(&b, dir, LW_RUN_NEW) == LW_OK, "%s", lw_last_error());
    ck_assert_str_eq(b.stale_holder, "");   /* a released lock is emptied: nothing stale */
    lw_run_dir_close(&b);
}
END_TEST

START_TEST(stale_lock_is_taken_over)
{
    const char *dir = tl_tmpdir("run_stale_lock");
    tl_write_file(in(dir, ".lock"), "pid 999999 on host gone since 2026-01-01T00:00:00Z\n");
    lw_run_dir r;
    ck_assert_msg(lw_run_dir_open(&r, dir, LW_RUN_NEW) == LW_OK, "%s", lw_last_error());
    ck_assert_str_eq(r.stale_holder, "pid 999999 on host gone since 2026-01-01T00:00:00Z");
    char *held = tl_read_file(in(dir, ".lock"), NULL);
    char pid[32];
    snprintf(pid, sizeof pid, "pid %d on host", (int)getpid());
    ck_assert_msg(held && strstr(held, pid), "lock holds '%s'", held ? held : "(unreadable)");
    free(held);
    lw_run_dir_close(&r);
}
END_TEST

START_TEST(a_folder_holding_a_run_is_refused_for_a_new_one)
{
    const char *dir = tl_tmpdir("run_refused");
    tl_write_file(in(dir, "run.json"), "{\"seed\": 1}\n");
    tl_write_file(in(dir, "train_log.jsonl"), "{\"step\": 1}\n");
    mkdir_ok(in(dir, "final"));
    lw_run_dir r;
    ck_assert_int_eq(lw_run_dir_open(&r, dir, LW_RUN_NEW), LW_ERR_INVALID);
    ck_assert_msg(strstr(lw_last_error(), "already holds a run (run.json, train_log.jsonl, final/)") &&
                  strstr(lw_last_error(), "--resume") && strstr(lw_last_error(), "--force"), "%s", lw_last_error());
    char *kept = tl_read_file(in(dir, "run.json"), NULL);
    ck_assert_str_eq(kept, "{\"seed\": 1}\n");
    free(kept);
    /* refused, the lock was given back */
    ck_assert_msg(lw_run_dir_open(&r, dir, LW_RUN_RESUME) == LW_OK, "%s", lw_last_error());
    lw_run_dir_close(&r);
}
END_TEST

START_TEST(force_moves_the_old_run_aside_whole)
{
    const char *dir = tl_tmpdir("run_force");
    tl_write_file(in(dir, "run.json"), "old run\n");
    mkdir_ok(in(dir, "step-2"));
    tl_write_file(in(dir, "step-2/bridge.safetensors"), "old step 2\n");
    lw_run_dir r;
    ck_assert_msg(lw_run_dir_open(&r, dir, LW_RUN_FORCE) == LW_OK, "%s", lw_last_error());
    ck_assert_msg(strstr(r.moved_to, ".replaced-"), "moved to '%s'", r.moved_to);
    ck_assert(!lw_run_dir_holds_run(dir, NULL, 0));
    ck_assert(!exists(in(dir, "step-2")));
    char *a = tl_read_file(in(r.moved_to, "run.json"), NULL), *b = tl_read_file(in(r.moved_to, "step-2/bridge.safetensors"), NULL);
    ck_assert_str_eq(a, "old run\n");
    ck_assert_str_eq(b, "old step 2\n");
    free(a), free(b);
    lw_run_dir_close(&r);
}
END_TEST

START_TEST(a_killed_writers_leftovers_are_removed)
{
    const char *dir = tl_tmpdir("run_leftovers");
    mkdir_ok(in(dir, ".final.tmp-abc123"));
    tl_write_file(in(dir, ".final.tmp-abc123/bridge.safetensors"), "half\n");
    tl_write_file(in(dir, "run.json.tmp.Xy12Zw"), "half\n");
    tl_write_file(in(dir, "notes.tmp.txt"), "a user's file\n");
    mkdir_ok(in(dir, "final"));
    lw_run_dir r;
    ck_assert_msg(lw_run_dir_open(&r, dir, LW_RUN_RESUME) == LW_OK, "%s", lw_last_error());
    ck_assert(!exists(in(dir, ".final.tmp-abc123")));
    ck_assert(!exists(in(dir, "run.json.tmp.Xy12Zw")));
    ck_assert(exists(in(dir, "final")));
    ck_assert(exists(in(dir, "notes.tmp.txt")));   /* only what lw writes is cleared */
    lw_run_dir_close(&r);
}
END_TEST

START_TEST(publish_swaps_a_checkpoint_in_whole)
{
    const char *dir = tl_tmpdir("run_publish");
    char tmp[4300];
    for (int round = 0; round < 2; round++) {
        ck_assert_int_eq(lw_checkpoint_temp_dir(dir, "final", tmp, sizeof tmp), LW_OK);
        tl_write_file(in(tmp, "x"), round ? "second\n" : "first\n");
        ck_assert_msg(lw_checkpoint_publish(tmp, in(dir, "final")) == LW_OK, "%s", lw_last_error());
        ck_assert(!exists(tmp));
        char *x = tl_read_file(in(in(dir, "final"), "x"), NULL);
        ck_assert_str_eq(x, round ? "second\n" : "first\n");
        free(x);
    }
}
END_TEST

/* A fresh optimiser and rng for saving p's bridge (seed 7). */
static void fresh_state(const lw_bridge *b, lw_adamw *opt, lw_rng *rng)
{
    ck_assert_int_eq(lw_adamw_init(opt, b->n_params, lw_adamw_defaults()), LW_OK);
    lw_rng_seed(rng, 7);
}

/* Every visible checkpoint folder under dir loads; returns how many. */
static int every_checkpoint_loads(const char *dir, lw_bridge *b)
{
    lw_adamw opt;
    lw_rng rng;
    ck_assert_int_eq(lw_adamw_init(&opt, b->n_params, lw_adamw_defaults()), LW_OK);
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        long step = -1;
        char path[4300];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        ck_assert_msg(lw_checkpoint_load(path, b, &opt, &rng, &step) == LW_OK, "%s after a kill: %s", e->d_name,
                      lw_last_error());
        n++;
    }
    closedir(d);
    lw_adamw_free(&opt);
    return n;
}

/* A child saves checkpoints as fast as it can (step-N, then final again);
 * SIGKILL lands at random moments, most of them inside a write. Whatever
 * is visible afterwards must load, and final/ never goes missing. */
START_TEST(sigkill_during_checkpoint_writes_leaves_every_checkpoint_loadable)
{
    const char *dir = tl_tmpdir("run_sigkill");
    tl_synthetic_pair p;
    tl_synthetic_pair_open(&p, 2, 4, 0.0f, 5);
    lw_adamw opt;
    lw_rng rng;
    fresh_state(&p.bridge, &opt, &rng);
    ck_assert_msg(lw_train_save_checkpoint(dir, "final", &p.trainer, &opt, &rng, 0, "{\"seed\": 3}\n") == LW_OK, "%s",
                  lw_last_error());
    char *described = tl_read_file(in(dir, "final/run.json"), NULL);   /* the folder describes itself */
    ck_assert_msg(described && !strcmp(described, "{\"seed\": 3}\n"), "final/run.json: %s",
                  described ? described : "none");
    free(described);
    srand(12345);
    int killed_mid_write = 0;
    for (int round = 0; round < 25; round++) {
        pid_t child = fork();
        ck_assert_int_ge(child, 0);
        if (child == 0) {
            for (long step = 1;; step++) {
                char name[32];
                snprintf(name, sizeof name, "step-%ld", step % 3 + 1);
                if (lw_train_save_checkpoint(dir, name, &p.trainer, &opt, &rng, step, NULL) ||
                    lw_train_save_checkpoint(dir, "final", &p.trainer, &opt, &rng, step, NULL))
                    _exit(3);
            }
        }
        struct timespec ts = {0, (long)(rand() % 20000) * 1000L};
        nanosleep(&ts, NULL);
        kill(child, SIGKILL);
        int status;
        ck_assert_int_eq(waitpid(child, &status, 0), child);
        ck_assert_msg(WIFSIGNALED(status), "the writer stopped by itself (status %d): %s", status, lw_last_error());
        /* hidden leftovers mean the kill landed inside a write */
        DIR *d = opendir(dir);
        struct dirent *e;
        while (d && (e = readdir(d)))
            if (e->d_name[0] == '.' && strstr(e->d_name, ".tmp-")) killed_mid_write++;
        if (d) closedir(d);
        ck_assert(exists(in(dir, "final/bridge.safetensors")));
        ck_assert_int_ge(every_checkpoint_loads(dir, &p.bridge), 1);
        lw_run_dir r;   /* the next writer clears the leftovers */
        ck_assert_int_eq(lw_run_dir_open(&r, dir, LW_RUN_RESUME), LW_OK);
        lw_run_dir_close(&r);
    }
    ck_assert_msg(killed_mid_write > 0, "no kill landed inside a checkpoint write");
    lw_adamw_free(&opt);
    tl_synthetic_pair_close(&p);
}
END_TEST

static lw_train_options options(int steps)
{
    lw_train_options o = {0};
    o.cfg = (lw_train_config){.lr = 1e-2f, .steps = steps, .batch = 2, .grad_accum = 1, .warmup_steps = 1,
                              .weight_decay = 0.01f, .grad_clip = 1.0f, .seed = 3};
    o.quiet = true;
    return o;
}

/* Poisons one sender row of every example: every step's loss is NaN. */
static void poison(tl_synthetic_pair *p)
{
    for (int i = 0; i < p->states.n; i++) p->states.mem[p->states.offset[i]] = NAN;
}

static char *file_sha(const char *path)
{
    char *out = NULL;
    ck_assert_int_eq(tl_run(&out, "sha256sum < '%s'", path), 0);
    return out;
}

START_TEST(nonfinite_step_stops_the_run_and_keeps_the_last_checkpoint)
{
    const char *dir = tl_tmpdir("run_nan");
    tl_synthetic_pair p;
    tl_synthetic_pair_open(&p, 2, 6, 0.0f, 5);
    lw_train_options o = options(2);
    o.out_dir = dir;
    lw_train_result r;
    ck_assert_msg(lw_train_run(&p.trainer, &p.states, &p.data, &o, &r) == LW_OK, "%s", lw_last_error());
    char *before = file_sha(in(dir, "final/bridge.safetensors"));

    poison(&p);
    lw_train_options resume = options(5);
    char from[4300];
    snprintf(from, sizeof from, "%s/final", dir);
    resume.out_dir = dir, resume.resume_dir = from, resume.checkpoint_every = 1;
    ck_assert_int_eq(lw_train_run(&p.trainer, &p.states, &p.data, &resume, &r), LW_ERR_INVALID);
    ck_assert_msg(strstr(lw_last_error(), "step 3: the loss is NaN") && strstr(lw_last_error(), "is as it was"),
                  "%s", lw_last_error());
    char *after = file_sha(in(dir, "final/bridge.safetensors"));
    ck_assert_str_eq(before, after);
    ck_assert(!exists(in(dir, "step-3")));
    /* the log: steps 1-2, then step 3 marked non-finite */
    char *log = tl_read_file(in(dir, "train_log.jsonl"), NULL);
    ck_assert_msg(strstr(log, "{\"step\": 2,") && strstr(log, "{\"step\": 3, \"loss\": null") &&
                  strstr(log, "\"nonfinite\": true") && !strstr(log, "{\"step\": 4,"), "%s", log);
    free(log);

    /* with --skip-nonfinite 3: steps 3-5 skipped, exit OK, the bridge as it was */
    float *kept = malloc(p.bridge.n_params * sizeof(float));
    lw_adamw opt;
    lw_rng rng;
    long step;
    ck_assert_int_eq(lw_adamw_init(&opt, p.bridge.n_params, lw_adamw_defaults()), LW_OK);
    ck_assert_int_eq(lw_checkpoint_load(from, &p.bridge, &opt, &rng, &step), LW_OK);
    memcpy(kept, p.bridge.params, p.bridge.n_params * sizeof(float));
    resume.skip_nonfinite = 3;
    char elsewhere[4300];   /* this run's final/ must not become the next one's start */
    snprintf(elsewhere, sizeof elsewhere, "%s/skipped", dir);
    resume.out_dir = elsewhere;
    ck_assert_msg(lw_train_run(&p.trainer, &p.states, &p.data, &resume, &r) == LW_OK, "%s", lw_last_error());
    ck_assert_int_eq(r.steps_skipped, 3);
    ck_assert(memcmp(kept, p.bridge.params, p.bridge.n_params * sizeof(float)) == 0);
    /* one more than allowed stops it */
    resume.skip_nonfinite = 2;
    ck_assert_int_eq(lw_train_run(&p.trainer, &p.states, &p.data, &resume, &r), LW_ERR_INVALID);
    ck_assert_msg(strstr(lw_last_error(), "step 5:") && strstr(lw_last_error(), "the 2 steps --skip-nonfinite"),
                  "%s", lw_last_error());
    free(kept), free(before), free(after);
    lw_adamw_free(&opt);
    tl_synthetic_pair_close(&p);
}
END_TEST

/* run.json describes runs that started: a resume from a missing folder
 * writes none (and leaves the real one alone) */
START_TEST(a_run_that_fails_to_start_writes_no_run_json)
{
    const char *dir = tl_tmpdir("run_no_start");
    tl_synthetic_pair p;
    tl_synthetic_pair_open(&p, 2, 4, 0.0f, 5);
    lw_train_options o = options(2);
    o.out_dir = dir;
    o.run_json = "{\"seed\": 42}\n";
    o.resume_dir = in(dir, "no-such-checkpoint");
    lw_train_result r;
    ck_assert_int_ne(lw_train_run(&p.trainer, &p.states, &p.data, &o, &r), LW_OK);
    ck_assert(!exists(in(dir, "run.json")));
    ck_assert(!exists(in(dir, "train_log.jsonl")));
    o.resume_dir = NULL;
    ck_assert_msg(lw_train_run(&p.trainer, &p.states, &p.data, &o, &r) == LW_OK, "%s", lw_last_error());
    char *json = tl_read_file(in(dir, "run.json"), NULL);
    ck_assert_str_eq(json, "{\"seed\": 42}\n");
    free(json);
    tl_synthetic_pair_close(&p);
}
END_TEST

START_TEST(a_nonfinite_bridge_is_never_saved)
{
    const char *dir = tl_tmpdir("run_nan_save");
    tl_synthetic_pair p;
    tl_synthetic_pair_open(&p, 2, 4, 0.0f, 5);
    lw_adamw opt;
    lw_rng rng;
    fresh_state(&p.bridge, &opt, &rng);
    ck_assert_int_eq(lw_train_save_checkpoint(dir, "final", &p.trainer, &opt, &rng, 1, NULL), LW_OK);
    char *before = file_sha(in(dir, "final/bridge.safetensors"));
    p.bridge.params[p.bridge.out_w + 5] = INFINITY;
    ck_assert_int_eq(lw_train_save_checkpoint(dir, "final", &p.trainer, &opt, &rng, 2, NULL), LW_ERR_INVALID);
    ck_assert_msg(strstr(lw_last_error(), "bridge tensor \"out_proj.weight\": element 5 of") &&
                  strstr(lw_last_error(), "checkpoint") && strstr(lw_last_error(), "not written"), "%s",
                  lw_last_error());
    char *after = file_sha(in(dir, "final/bridge.safetensors"));
    ck_assert_str_eq(before, after);
    free(before), free(after);
    lw_adamw_free(&opt);
    tl_synthetic_pair_close(&p);
}
END_TEST

START_TEST(resume_cuts_the_log_back_to_its_checkpoint)
{
    const char *dir = tl_tmpdir("run_log_cut");
    tl_write_file(in(dir, "train_log.jsonl"), "{\"step\": 1, \"loss\": 1}\n{\"step\": 2, \"loss\": 1}\n"
                                              "{\"step\": 3, \"loss\": 1}\n{\"step\": 4, \"lo");
    lw_status st;
    FILE *f = lw_train_log_open(dir, 2, &st);
    ck_assert_msg(f != NULL, "%s", lw_last_error());
    lw_train_log_line l = {.step = 3, .loss = 0.5};
    lw_train_log_write(f, &l);
    fclose(f);
    char *log = tl_read_file(in(dir, "train_log.jsonl"), NULL);
    ck_assert_str_eq(log, "{\"step\": 1, \"loss\": 1}\n{\"step\": 2, \"loss\": 1}\n{\"step\": 3, \"loss\": 0.500000, "
                          "\"lr\": 0.000000e+00, \"grad_norm\": 0.000000, \"train_acc\": 0.0000, \"examples_per_s\": "
                          "0.000, \"elapsed_s\": 0.000}\n");
    free(log);
    /* a fresh run starts the log anew */
    f = lw_train_log_open(dir, -1, &st);
    ck_assert_ptr_nonnull(f);
    fclose(f);
    size_t len = 1;
    free(tl_read_file(in(dir, "train_log.jsonl"), &len));
    ck_assert_uint_eq(len, 0);
}
END_TEST

/* The command line refuses what the manifest refuses, in the same words. */
START_TEST(cli_and_manifest_share_the_option_rules)
{
    const char *dir = tl_tmpdir("run_rules");
    const char *manifest = tl_src("pairs/stories260k_to_smollm2-135m.json");
    struct { const char *flag, *value, *key, *json, *words; } cases[] = {
        {"--lr", "1e9", "lr", "1e9", "1e+09 is out of range; expected a number in (0, 1]"},
        {"--lr", "inf", "lr", NULL, "inf is out of range; expected a number in (0, 1]"},
        {"--diversity", "-1", "diversity_weight", "-1", "-1 is out of range; expected a number in [0, 1e+06]"},
        {"--batch", "0", "batch", "0", "0 is out of range; expected an integer from 1 to 65536"},
        {"--grad-clip", "-0.5", "grad_clip", "-0.5", "-0.5 is out of range; expected a number in [0, 1e+06]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        /* the parser alone: no pair needed */
        const char *argv[] = {cases[i].flag, cases[i].value};
        double v = 0;
        int at = 0;
        char *captured = NULL;
        fflush(stderr);
        FILE *old = stderr, *mem = open_memstream(&captured, &(size_t){0});
        stderr = mem;
        bool ok = lw_opt_train_rule(2, (char **)argv, &at, cases[i].key, &v);
        fclose(mem);
        stderr = old;
        ck_assert_msg(!ok, "%s %s accepted", cases[i].flag, cases[i].value);
        ck_assert_msg(strstr(captured, cases[i].words), "%s %s: '%s'", cases[i].flag, cases[i].value, captured);
        free(captured);
        if (!cases[i].json) continue;
        /* the manifest with the same value */
        json_error_t jerr;
        json_t *root = json_load_file(manifest, 0, &jerr);
        ck_assert_ptr_nonnull(root);
        json_t *value = json_loads(cases[i].json, JSON_DECODE_ANY, &jerr);
        ck_assert_ptr_nonnull(value);
        json_object_set_new(json_object_get(root, "train"), cases[i].key, value);
        char path[4300];
        snprintf(path, sizeof path, "%s/m.json", dir);
        ck_assert_int_eq(json_dump_file(root, path, JSON_INDENT(2)), 0);
        json_decref(root);
        /* the manifest's relative paths do not matter: the train block fails first or not at all */
        lw_manifest m;
        lw_status st = lw_manifest_load(path, &m);
        char want[256];
        snprintf(want, sizeof want, "train.%s: %s", cases[i].key, cases[i].words);
        ck_assert_msg(st != LW_OK && strstr(lw_last_error(), want), "manifest: '%s', want '%s'", lw_last_error(), want);
    }
    /* a value inside every rule passes both */
    const char *argv[] = {"--lr", "1"};
    double v;
    int at = 0;
    ck_assert(lw_opt_train_rule(2, (char **)argv, &at, "lr", &v) && v == 1.0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("run_safety");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, second_writer_is_refused_with_the_holder);
    tcase_add_test(tc, stale_lock_is_taken_over);
    tcase_add_test(tc, a_folder_holding_a_run_is_refused_for_a_new_one);
    tcase_add_test(tc, force_moves_the_old_run_aside_whole);
    tcase_add_test(tc, a_killed_writers_leftovers_are_removed);
    tcase_add_test(tc, publish_swaps_a_checkpoint_in_whole);
    tcase_add_test(tc, sigkill_during_checkpoint_writes_leaves_every_checkpoint_loadable);
    tcase_add_test(tc, nonfinite_step_stops_the_run_and_keeps_the_last_checkpoint);
    tcase_add_test(tc, a_nonfinite_bridge_is_never_saved);
    tcase_add_test(tc, a_run_that_fails_to_start_writes_no_run_json);
    tcase_add_test(tc, resume_cuts_the_log_back_to_its_checkpoint);
    tcase_add_test(tc, cli_and_manifest_share_the_option_rules);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
