/* The process's thread pool (base/thread_pool.h): every index of a job runs
 * exactly once for any thread count, more tasks than workers, zero-size
 * jobs, work really spread over the workers, nested calls serialised on the
 * calling thread, a resize refused inside a job, two callers at once, a
 * clean shutdown and restart, and the hand-off with spinning and parked
 * workers. Depends on base/ alone, so that it also builds
 * under ThreadSanitizer (make check-tsan: clang -fsanitize=thread). */
#include "thread_pool.h"

#include <check.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { MAXN = 5000 };

typedef struct {
    atomic_int count[MAXN];
    atomic_int calls;
} counts;

static void bump(void *ctx, int i)
{
    counts *c = ctx;
    atomic_fetch_add(&c->count[i], 1);
    atomic_fetch_add(&c->calls, 1);
}

static void check_once_each(int n)
{
    counts *c = calloc(1, sizeof *c);
    ck_assert_ptr_nonnull(c);
    lw_parallel_for(n, bump, c);
    ck_assert_int_eq(atomic_load(&c->calls), n > 0 ? n : 0);
    for (int i = 0; i < MAXN; i++)
        ck_assert_msg(atomic_load(&c->count[i]) == (i < n ? 1 : 0), "n %d: index %d ran %d times (threads %d)", n,
                      i, atomic_load(&c->count[i]), lw_threads_get());
    free(c);
}

START_TEST(every_index_once_for_any_thread_count)
{
    const int sizes[] = {0, -3, 1, 2, 3, 7, 64, 1000, MAXN};
    for (int t = 1; t <= 4; t++) {
        ck_assert_int_eq(lw_threads_set(t), LW_OK);
        ck_assert_int_eq(lw_threads_get(), t);
        for (int rep = 0; rep < 5; rep++)
            for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) check_once_each(sizes[k]);
    }
    lw_threads_shutdown();
    ck_assert_int_eq(lw_threads_get(), 1);
}
END_TEST

/* Each task waits (up to 10 s) until a second task is running at the same
 * time: with one thread that never happens and the test fails on the
 * thread ids; with workers it happens at once. */
typedef struct {
    atomic_int entered;
    pthread_t who[64];
} meet;

static void wait_for_company(void *ctx, int i)
{
    meet *m = ctx;
    m->who[i] = pthread_self();
    atomic_fetch_add(&m->entered, 1);
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (atomic_load(&m->entered) < 2) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        if (t.tv_sec - t0.tv_sec > 10) break;
        sched_yield();
    }
}

START_TEST(work_spreads_over_the_workers)
{
    ck_assert_int_eq(lw_threads_set(3), LW_OK);
    long before = lw_threads_parallel_jobs();
    meet m;
    memset(&m, 0, sizeof m);
    lw_parallel_for(64, wait_for_company, &m);
    int distinct = 1;
    for (int i = 1; i < 64; i++) {
        bool seen = false;
        for (int j = 0; j < i; j++) seen |= pthread_equal(m.who[i], m.who[j]);
        distinct += !seen;
    }
    ck_assert_msg(distinct >= 2, "64 tasks on 3 threads ran on %d thread(s)", distinct);
    ck_assert_int_eq(lw_threads_parallel_jobs(), before + 1);
    lw_threads_shutdown();
}
END_TEST

/* A nested call runs its tasks in order on the thread of the outer task. */
typedef struct {
    pthread_t outer[8];
    pthread_t inner[8][16];
    int order[8][16];
    atomic_int next[8];
    atomic_int resize_refused;
} nest;

typedef struct {
    nest *n;
    int o;
} inner_ctx;

static void inner_task(void *ctx, int i)
{
    inner_ctx *c = ctx;
    c->n->inner[c->o][i] = pthread_self();
    c->n->order[c->o][i] = atomic_fetch_add(&c->n->next[c->o], 1);
}

static void outer_task(void *ctx, int o)
{
    nest *n = ctx;
    n->outer[o] = pthread_self();
    inner_ctx c = {n, o};
    lw_parallel_for(16, inner_task, &c);
    if (lw_threads_set(2) == LW_ERR_INVALID) atomic_fetch_add(&n->resize_refused, 1);
}

START_TEST(nested_calls_run_serially_on_the_caller)
{
    ck_assert_int_eq(lw_threads_set(3), LW_OK);
    nest *n = calloc(1, sizeof *n);
    ck_assert_ptr_nonnull(n);
    lw_parallel_for(8, outer_task, n);
    for (int o = 0; o < 8; o++)
        for (int i = 0; i < 16; i++) {
            ck_assert_msg(pthread_equal(n->inner[o][i], n->outer[o]), "outer %d inner %d ran on another thread", o,
                          i);
            ck_assert_int_eq(n->order[o][i], i);
        }
    ck_assert_int_eq(atomic_load(&n->resize_refused), 8);
    ck_assert_int_eq(lw_threads_get(), 3);
    free(n);
    lw_threads_shutdown();
}
END_TEST

static void *caller(void *arg)
{
    (void)arg;
    for (int rep = 0; rep < 20; rep++) check_once_each(1000);
    return NULL;
}

START_TEST(two_callers_at_once)
{
    ck_assert_int_eq(lw_threads_set(2), LW_OK);
    pthread_t a, b;
    ck_assert_int_eq(pthread_create(&a, NULL, caller, NULL), 0);
    ck_assert_int_eq(pthread_create(&b, NULL, caller, NULL), 0);
    caller(NULL);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    lw_threads_shutdown();
}
END_TEST

START_TEST(shutdown_restart_and_bad_counts)
{
    ck_assert_int_eq(lw_threads_set(0), LW_ERR_INVALID);
    ck_assert_int_eq(lw_threads_set(LW_THREADS_MAX + 1), LW_ERR_INVALID);
    ck_assert_int_eq(lw_threads_get(), 1);
    for (int round = 0; round < 5; round++) {
        ck_assert_int_eq(lw_threads_set(4), LW_OK);
        check_once_each(777);
        ck_assert_int_eq(lw_threads_set(2), LW_OK);
        check_once_each(777);
        lw_threads_shutdown();
        lw_threads_shutdown();
        ck_assert_int_eq(lw_threads_get(), 1);
        check_once_each(777);
    }
    ck_assert_int_eq(lw_threads_set(LW_THREADS_MAX), LW_OK);
    check_once_each(MAXN);
    lw_threads_shutdown();
}
END_TEST

/* Jobs back to back (the workers still spinning from the last one) and
 * jobs after a pause longer than the spin (the workers parked), with the
 * spin off, short and long: every index once each time. A bad
 * LW_POOL_SPIN_US is refused and leaves the pool as it was. */
START_TEST(spinning_and_parked_hand_offs)
{
    const char *spins[] = {"0", "50", "200000"};
    for (size_t k = 0; k < sizeof spins / sizeof spins[0]; k++) {
        ck_assert_int_eq(setenv("LW_POOL_SPIN_US", spins[k], 1), 0);
        ck_assert_int_eq(lw_threads_set(2), LW_OK);
        for (int rep = 0; rep < 200; rep++) check_once_each(rep % 2 ? 2 : 3);
        for (int rep = 0; rep < 5; rep++) {
            struct timespec pause = {0, 2 * 1000 * 1000};
            nanosleep(&pause, NULL);
            check_once_each(2);
        }
    }
    const char *bad[] = {"-1", "1000001", "12us", "x"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        ck_assert_int_eq(setenv("LW_POOL_SPIN_US", bad[k], 1), 0);
        ck_assert_int_eq(lw_threads_set(3), LW_ERR_INVALID);
        ck_assert_int_eq(lw_threads_get(), 2);
        check_once_each(1000);
    }
    ck_assert_int_eq(unsetenv("LW_POOL_SPIN_US"), 0);
    lw_threads_shutdown();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("thread_pool");
    TCase *tc = tcase_create("pool");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, every_index_once_for_any_thread_count);
    tcase_add_test(tc, work_spreads_over_the_workers);
    tcase_add_test(tc, nested_calls_run_serially_on_the_caller);
    tcase_add_test(tc, two_callers_at_once);
    tcase_add_test(tc, shutdown_restart_and_bad_counts);
    tcase_add_test(tc, spinning_and_parked_hand_offs);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
