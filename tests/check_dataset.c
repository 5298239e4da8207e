/* Tasks (tasks/<name>.json), JSONL data loading with file:line errors, and the
 * deterministic samplers. */
#include "testlib.h"
#include "dataset.h"
#include "task.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void load_task(const char *name, lw_task *t)
{
    char rel[128];
    snprintf(rel, sizeof rel, "tasks/%s.json", name);
    ck_assert_msg(lw_task_load(tl_src(rel), t) == LW_OK, "%s", lw_last_error());
}

START_TEST(every_task_covers_its_data)
{
    const char *names[] = {"sst2", "agnews", "trec", "banking77"};
    int n_labels[] = {2, 4, 6, 77};
    for (int i = 0; i < 4; i++) {
        lw_task t;
        load_task(names[i], &t);
        ck_assert_str_eq(t.name, names[i]);
        ck_assert_int_eq(t.n_labels, n_labels[i]);
        ck_assert(strlen(t.primer) > 0 && strlen(t.answer_prompt) > 0);
        char rel[128];
        snprintf(rel, sizeof rel, "data/%s/dev.jsonl", names[i]);
        tl_require_file(tl_shared(rel));
        lw_dataset d;
        ck_assert_msg(lw_dataset_load(tl_shared(rel), &t, 0, &d) == LW_OK, "%s", lw_last_error());
        int seen = 0;
        for (int l = 0; l < t.n_labels; l++) seen += d.label_counts[l] > 0;
        ck_assert_msg(seen == t.n_labels || i == 3, "%s dev lacks labels", names[i]);
        lw_dataset_free(&d);
        lw_task_free(&t);
    }
}
END_TEST

START_TEST(reads_sst2_dev)
{
    lw_task t;
    load_task("sst2", &t);
    ck_assert_int_eq(lw_task_label_index(&t, "positive"), 1);
    ck_assert_str_eq(t.verbalizers[0], " negative");
    ck_assert_str_eq(t.primer, "Classify the sentiment of this review.");
    lw_dataset d;
    ck_assert_int_eq(lw_dataset_load(tl_shared("data/sst2/dev.jsonl"), &t, 0, &d), LW_OK);
    ck_assert_int_eq(d.n, 1000);
    ck_assert_str_eq(d.examples[0].text, "the promise of digital filmmaking");
    ck_assert_int_eq(d.examples[0].label, 1);
    ck_assert_str_eq(d.examples[2].text, "disney again ransacks its archives for a quick-buck sequel .");
    ck_assert_int_eq(d.examples[2].label, 0);
    ck_assert_int_eq(d.label_counts[0] + d.label_counts[1], 1000);
    lw_dataset_free(&d);
    ck_assert_int_eq(lw_dataset_load(tl_shared("data/sst2/dev.jsonl"), &t, 10, &d), LW_OK);
    ck_assert_int_eq(d.n, 10);
    lw_dataset_free(&d);
    lw_task_free(&t);
}
END_TEST

static const char *write_tmp(const char *dir, const char *name, const char *text)
{
    static char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    tl_write_file(path, text);
    return path;
}

static void expect_error(const char *path, const lw_task *t, const char *needle)
{
    lw_dataset d;
    ck_assert_int_eq(lw_dataset_load(path, t, 0, &d), LW_ERR_FORMAT);
    ck_assert_msg(strstr(lw_last_error(), needle), "\"%s\" lacks \"%s\"", lw_last_error(), needle);
}

static int labels_present(const lw_dataset *d)
{
    int seen = 0;
    for (int l = 0; l < d->n_labels; l++) seen += d->label_counts[l] > 0;
    return seen;
}

/* Banking77's files are sorted by label: the first 800 training lines hold a
 * handful of intents, a stratified 800 holds every one, 10 or 11 each. */
START_TEST(stratified_subset_covers_every_label)
{
    lw_task t;
    load_task("banking77", &t);
    const char *path = tl_shared("data/banking77/train.jsonl");
    tl_require_file(path);
    lw_dataset first, a, b, c, all;
    ck_assert_int_eq(lw_dataset_load_subset(path, &t, &(lw_subset){800, false, 1}, &first), LW_OK);
    ck_assert_int_eq(first.n, 800);
    ck_assert_int_le(labels_present(&first), 10);
    ck_assert_uint_eq(first.subset_key, 0);
    ck_assert_int_eq(lw_dataset_load_subset(path, &t, &(lw_subset){800, true, 1}, &a), LW_OK);
    ck_assert_int_eq(a.n, 800);
    ck_assert_int_eq(labels_present(&a), 77);
    for (int l = 0; l < 77; l++) ck_assert(a.label_counts[l] == 10 || a.label_counts[l] == 11);
    /* the same seed draws the same examples; another seed, others */
    ck_assert_int_eq(lw_dataset_load_subset(path, &t, &(lw_subset){800, true, 1}, &b), LW_OK);
    ck_assert_int_eq(lw_dataset_load_subset(path, &t, &(lw_subset){800, true, 2}, &c), LW_OK);
    int same = 0;
    for (int i = 0; i < 800; i++) {
        ck_assert_str_eq(a.examples[i].text, b.examples[i].text);
        same += !strcmp(a.examples[i].text, c.examples[i].text);
    }
    ck_assert_int_lt(same, 100);
    ck_assert(a.subset_key != 0 && a.subset_key == b.subset_key && a.subset_key != c.subset_key);
    /* kept in file order: a subsequence of the whole file */
    ck_assert_int_eq(lw_dataset_load(path, &t, 0, &all), LW_OK);
    int j = 0;
    for (int i = 0; i < a.n; i++) {
        while (j < all.n && strcmp(all.examples[j].text, a.examples[i].text)) j++;
        ck_assert_msg(j < all.n, "example %d of the subset is out of file order", i);
        ck_assert_int_eq(all.examples[j++].label, a.examples[i].label);
    }
    lw_dataset_free(&c);
    /* asking for the whole file or more is the whole file */
    ck_assert_int_eq(lw_dataset_load_subset(path, &t, &(lw_subset){all.n + 5, true, 1}, &c), LW_OK);
    ck_assert_int_eq(c.n, all.n);
    ck_assert_uint_eq(c.subset_key, 0);
    char desc[96];
    lw_subset_describe(&(lw_subset){800, true, 3}, desc, sizeof desc);
    ck_assert_str_eq(desc, "stratified 800 (seed 3)");
    lw_subset_describe(&(lw_subset){800, false, 3}, desc, sizeof desc);
    ck_assert_str_eq(desc, "first 800");
    lw_dataset_free(&first), lw_dataset_free(&a), lw_dataset_free(&b), lw_dataset_free(&c), lw_dataset_free(&all);
    lw_task_free(&t);
}
END_TEST

START_TEST(bad_lines_name_file_and_line)
{
    const char *dir = tl_tmpdir("dataset_bad");
    lw_task t;
    load_task("sst2", &t);
    const char *ok = "{\"text\": \"a\", \"label\": \"positive\"}\n";
    char buf[1024];
    snprintf(buf, sizeof buf, "%s\n%s{\"text\": \"b\", \"label\": \"pos", ok, ok);
    expect_error(write_tmp(dir, "trunc.jsonl", buf), &t, "trunc.jsonl:4: not valid JSON");
    snprintf(buf, sizeof buf, "%s{\"text\": \"b\", \"label\": \"neutral\"}\n", ok);
    expect_error(write_tmp(dir, "unknown.jsonl", buf), &t, "unknown.jsonl:2: label \"neutral\" is not one of task sst2");
    snprintf(buf, sizeof buf, "%s{\"text\": 3, \"label\": \"positive\"}\n", ok);
    expect_error(write_tmp(dir, "type.jsonl", buf), &t, "type.jsonl:2: expected an object");
    snprintf(buf, sizeof buf, "%s[1, 2]\n", ok);
    expect_error(write_tmp(dir, "array.jsonl", buf), &t, "array.jsonl:2:");
    expect_error(write_tmp(dir, "empty.jsonl", "\n\n"), &t, "no examples");
    lw_dataset d;
    /* a row whose label is missing, null or not a string is refused, not
     * taken as label 0 (each after a good line and a blank one: line 3) */
    const char *no_label[][2] = {{"missing.jsonl", "{\"text\": \"b\"}"},
                                 {"null.jsonl", "{\"text\": \"b\", \"label\": null}"},
                                 {"number.jsonl", "{\"text\": \"b\", \"label\": 3}"},
                                 {"zero.jsonl", "{\"text\": \"b\", \"label\": 0}"}};
    for (size_t i = 0; i < sizeof no_label / sizeof *no_label; i++) {
        char needle[64];
        snprintf(buf, sizeof buf, "%s\n%s\n%s", ok, no_label[i][1], ok);
        snprintf(needle, sizeof needle, "%s:3: expected an object", no_label[i][0]);
        expect_error(write_tmp(dir, no_label[i][0], buf), &t, needle);
    }
    /* the same rows last in the file, with no newline after them */
    snprintf(buf, sizeof buf, "%s%s", ok, no_label[0][1]);
    expect_error(write_tmp(dir, "missing_last.jsonl", buf), &t, "missing_last.jsonl:2: expected an object");
    ck_assert_int_eq(lw_dataset_load("/nonexistent/x.jsonl", &t, 0, &d), LW_ERR_IO);
    lw_task_free(&t);
}
END_TEST

START_TEST(bad_tasks_name_the_field)
{
    lw_task t;
    const char *dup = "{\"name\":\"x\",\"primer\":\"\",\"answer_prompt\":\"A:\",\"labels\":"
                      "[{\"label\":\"a\",\"verbalizer\":\" a\"},{\"label\":\"a\",\"verbalizer\":\" b\"}]}";
    ck_assert_int_eq(lw_task_parse(dup, strlen(dup), "t.json", &t), LW_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(lw_last_error(), "t.json: labels[1].label \"a\" repeats labels[0]"));
    const char *nov = "{\"name\":\"x\",\"primer\":\"\",\"answer_prompt\":\"A:\",\"labels\":"
                      "[{\"label\":\"a\",\"verbalizer\":\" a\"},{\"label\":\"b\"}]}";
    ck_assert_int_eq(lw_task_parse(nov, strlen(nov), "t.json", &t), LW_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(lw_last_error(), "labels[1].verbalizer"));
    const char *broken = "{\"name\":";
    ck_assert_int_eq(lw_task_parse(broken, strlen(broken), "t.json", &t), LW_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(lw_last_error(), "t.json:1:"));
}
END_TEST

/* 90 examples of label 0, 10 of label 1. */
static void skewed(lw_dataset *d, lw_example *ex, int *counts)
{
    for (int i = 0; i < 100; i++) ex[i] = (lw_example){NULL, i < 90 ? 0 : 1};
    counts[0] = 90, counts[1] = 10;
    *d = (lw_dataset){100, ex, 2, counts, 0};
}

START_TEST(uniform_sampler_is_a_seeded_permutation_per_epoch)
{
    lw_example ex[100];
    int counts[2];
    lw_dataset d;
    skewed(&d, ex, counts);
    lw_sampler a, b, c;
    ck_assert_int_eq(lw_sampler_init(&a, &d, false, 1), LW_OK);
    ck_assert_int_eq(lw_sampler_init(&b, &d, false, 1), LW_OK);
    ck_assert_int_eq(lw_sampler_init(&c, &d, false, 2), LW_OK);
    int differs = 0;
    for (int epoch = 0; epoch < 2; epoch++) {
        int seen[100] = {0}, in_order = 0;
        for (int i = 0; i < 100; i++) {
            int x = lw_sampler_next(&a);
            ck_assert_int_eq(x, lw_sampler_next(&b));
            differs += x != lw_sampler_next(&c);
            in_order += x == i;
            seen[x]++;
        }
        for (int i = 0; i < 100; i++) ck_assert_int_eq(seen[i], 1);
        ck_assert_int_lt(in_order, 20);
    }
    ck_assert_int_gt(differs, 50);
    lw_sampler_free(&a), lw_sampler_free(&b), lw_sampler_free(&c);
}
END_TEST

START_TEST(balanced_sampler_evens_out_labels_and_skips)
{
    lw_example ex[100];
    int counts[2];
    lw_dataset d;
    skewed(&d, ex, counts);
    lw_sampler a, b;
    ck_assert_int_eq(lw_sampler_init(&a, &d, true, 3), LW_OK);
    int per_label[2] = {0, 0}, draws[2000];
    for (int i = 0; i < 2000; i++) per_label[d.examples[draws[i] = lw_sampler_next(&a)].label]++;
    ck_assert_int_gt(per_label[1], 900);
    ck_assert_int_lt(per_label[1], 1100);
    /* Skipping k draws reaches the same place as drawing them. */
    ck_assert_int_eq(lw_sampler_init(&b, &d, true, 3), LW_OK);
    lw_sampler_skip(&b, 1500);
    for (int i = 1500; i < 2000; i++) ck_assert_int_eq(lw_sampler_next(&b), draws[i]);
    lw_sampler_free(&a), lw_sampler_free(&b);
}
END_TEST

/* A leading UTF-8 BOM is named (it used to print as nothing between the
 * quotes of jansson's "near ''"), other control bytes are shown escaped,
 * and a directory is called one. */
START_TEST(bom_control_bytes_and_directories)
{
    const char *dir = tl_tmpdir("dataset_bom");
    lw_task t;
    load_task("sst2", &t);
    expect_error(write_tmp(dir, "bom.jsonl", "\xEF\xBB\xBF{\"text\": \"a\", \"label\": \"positive\"}\n"), &t,
                 "bom.jsonl:1: starts with a UTF-8 byte-order mark (EF BB BF); save the file without it");
    ck_assert_ptr_null(strchr(lw_last_error(), '\xEF'));
    expect_error(write_tmp(dir, "ctl.jsonl", "{\"text\": \"a\", \"label\": \"positive\"}\n\x01{}\n"), &t,
                 "ctl.jsonl:2: not valid JSON ('[' or '{' expected near '\\x01')");
    ck_assert_ptr_null(strchr(lw_last_error(), '\x01'));
    lw_dataset d;
    ck_assert_int_eq(lw_dataset_load(dir, &t, 0, &d), LW_ERR_IO);
    ck_assert_msg(strstr(lw_last_error(), "is a directory, expected a JSONL data file"), "%s", lw_last_error());
    lw_task_free(&t);

    lw_task bad;
    const char *task_path = write_tmp(dir, "task.json", "\xEF\xBB\xBF{\"name\": \"x\"}");
    ck_assert_int_eq(lw_task_load(task_path, &bad), LW_ERR_FORMAT);
    ck_assert_msg(strstr(lw_last_error(), "task.json: starts with a UTF-8 byte-order mark"), "%s", lw_last_error());
    ck_assert_int_eq(lw_task_load(dir, &bad), LW_ERR_IO);
    ck_assert_msg(strstr(lw_last_error(), "is a directory, expected a file"), "%s", lw_last_error());
}
END_TEST

int main(void)
{
    Suite *s = suite_create("dataset");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, every_task_covers_its_data);
    tcase_add_test(tc, reads_sst2_dev);
    tcase_add_test(tc, stratified_subset_covers_every_label);
    tcase_add_test(tc, bad_lines_name_file_and_line);
    tcase_add_test(tc, bad_tasks_name_the_field);
    tcase_add_test(tc, uniform_sampler_is_a_seeded_permutation_per_epoch);
    tcase_add_test(tc, balanced_sampler_evens_out_labels_and_skips);
    suite_add_tcase(s, tc);
    TCase *input = tcase_create("input_bytes");
    tcase_add_test(input, bom_control_bytes_and_directories);
    suite_add_tcase(s, input);
    return tl_run_suite(s);
}
