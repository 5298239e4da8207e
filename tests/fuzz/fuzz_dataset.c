/* libFuzzer: JSONL data rows (lw_dataset_load) on arbitrary bytes. The
 * loader takes a path, so each input goes into a memfd opened through
 * /proc/self/fd: no disk I/O and the loader's API stays as it is. What loads
 * must be consistent (labels in range, counts summing to n) and must sample;
 * every failure must explain itself. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE   /* memfd_create */
#endif
#include "dataset.h"
#include "task.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static const char TASK[] =
    "{\"name\": \"fuzz\", \"primer\": \"Classify.\", \"answer_prompt\": \"Label:\", \"labels\": ["
    "{\"label\": \"negative\", \"verbalizer\": \" negative\"},"
    "{\"label\": \"positive\", \"verbalizer\": \" positive\"},"
    "{\"label\": \"n\\u00e9utre\", \"verbalizer\": \" neutral\"}]}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static lw_task task;
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        if (lw_task_parse(TASK, strlen(TASK), "fuzz/task.json", &task) != LW_OK) abort();
        fd = memfd_create("fuzz.jsonl", 0);
        if (fd < 0) abort();
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0 || (size && pwrite(fd, data, size, 0) != (ssize_t)size)) abort();

    lw_dataset d;
    lw_fail(LW_OK, "%s", "");
    /* Half the inputs with a cap on examples, as evaluation subsets load. */
    int max = size % 2 ? 0 : 3;
    if (lw_dataset_load(path, &task, max, &d) != LW_OK) {
        if (lw_last_error()[0] == 0) abort();   /* every failure explains itself */
        return 0;
    }
    if (d.n <= 0 || (max && d.n > max) || d.n_labels != task.n_labels) abort();
    long total = 0;
    for (int l = 0; l < d.n_labels; l++) total += d.label_counts[l];
    if (total != d.n) abort();
    for (int i = 0; i < d.n; i++)
        if (!d.examples[i].text || d.examples[i].label < 0 || d.examples[i].label >= d.n_labels) abort();
    lw_sampler s;
    if (lw_sampler_init(&s, &d, size % 3 == 0, 7) == LW_OK) {
        for (int i = 0; i < 2 * d.n + 1; i++) {
            int k = lw_sampler_next(&s);
            if (k < 0 || k >= d.n) abort();
        }
        lw_sampler_free(&s);
    }
    lw_dataset_free(&d);
    return 0;
}
