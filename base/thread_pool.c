/* The process's thread pool (thread_pool.h).
 *
 * A job is published under the mutex with a new generation number and a
 * broadcast; each worker runs tasks until the counter passes n. The counter
 * holds (generation << 32 | next index) in one 64-bit atomic, so a worker
 * that wakes late, after its job has ended and the next one started, cannot
 * take an index of the new job with the old job's function: its
 * compare-and-swap fails on the generation. The caller waits for n
 * completed tasks (not for every worker to have woken), so a descheduled
 * worker on a loaded machine costs nothing once the others have done the
 * work.
 *
 * The hand-off: a worker that finishes its tasks spins (a pause loop
 * watching the generation, no mutex) for up to spin_ns before it parks on
 * the condition variable, and the caller spins as long for the last task
 * before it sleeps on done_cv. Decode's products are tens of microseconds
 * and follow each other every few tens (a 135M model's token is ~90 of them
 * in ~10 ms): a parked worker's futex wake-up costs as much as the piece it
 * is woken for, a spinning one starts within a cache-line transfer. The
 * spin is bounded, so an idle pool parks (and costs nothing) after it;
 * LW_POOL_SPIN_US (read when the pool is sized) sets it, 0 never spins. */
#include "thread_pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

enum { SPIN_US_DEFAULT = 200 };

static struct {
    pthread_mutex_t mu;
    pthread_cond_t wake, done_cv;
    pthread_t th[LW_THREADS_MAX];
    atomic_int nworkers;  /* read without the mutex by lw_parallel_for */
    bool quit;
    /* the current job, written under mu before the generation moves (read
     * without mu only by the spinning waits) */
    _Atomic uint32_t gen;
    lw_task_fn fn;
    void *ctx;
    int n;
    _Atomic uint64_t next;   /* gen << 32 | next index */
    atomic_int done;         /* tasks finished in this job */
    atomic_flag busy;        /* a job is running (held by its caller) */
} pool = {.mu = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER,
          .done_cv = PTHREAD_COND_INITIALIZER, .busy = ATOMIC_FLAG_INIT};

static atomic_long parallel_jobs;
static _Atomic long spin_ns = SPIN_US_DEFAULT * 1000L;
static _Thread_local bool in_task; /* this thread is inside a task: nested calls run serially */

static bool grab(uint32_t gen, int n, int *i)
{
    uint64_t cur = atomic_load(&pool.next);
    for (;;) {
        if ((uint32_t)(cur >> 32) != gen || (int)(uint32_t)cur >= n) return false;
        if (atomic_compare_exchange_weak(&pool.next, &cur, cur + 1)) {
            *i = (int)(uint32_t)cur;
            return true;
        }
    }
}

static void run_tasks(uint32_t gen, lw_task_fn fn, void *ctx, int n)
{
    int i;
    in_task = true;
    while (grab(gen, n, &i)) {
        fn(ctx, i);
        if (atomic_fetch_add(&pool.done, 1) + 1 == n) {
            pthread_mutex_lock(&pool.mu);
            pthread_cond_signal(&pool.done_cv);
            pthread_mutex_unlock(&pool.mu);
        }
    }
    in_task = false;
}

static long now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long)t.tv_sec * 1000000000L + t.tv_nsec;
}

/* Spins until *gen != old (a new job, or quit), or, with gen NULL, until
 * *done >= n (the job's last task finished), for up to spin_ns; returns
 * whether that happened. The clock is read once every 64 pauses. */
static bool spin_until(_Atomic uint32_t *gen, uint32_t old, atomic_int *done, int n)
{
    long budget = atomic_load_explicit(&spin_ns, memory_order_relaxed);
    if (budget <= 0) return false;
    long t0 = now_ns();
    for (int k = 1;; k++) {
        if (gen ? atomic_load_explicit(gen, memory_order_acquire) != old
                : atomic_load_explicit(done, memory_order_acquire) >= n)
            return true;
        CPU_RELAX();
        if (k % 64 == 0 && now_ns() - t0 > budget) return false;
    }
}

/* arg: the generation when the worker was made. A thread can start running
 * after its first job was published; starting from the generation it was
 * made at, it still sees that job as new and joins it. */
static void *worker(void *arg)
{
    uint32_t seen = (uint32_t)(uintptr_t)arg;
    for (;;) {
        /* the next job usually comes within microseconds (decode): watch for
         * it before parking (quit moves the generation too) */
        (void)spin_until(&pool.gen, seen, NULL, 0);
        pthread_mutex_lock(&pool.mu);
        while (pool.gen == seen && !pool.quit) pthread_cond_wait(&pool.wake, &pool.mu);
        if (pool.quit) break;
        seen = pool.gen;
        lw_task_fn fn = pool.fn;
        void *ctx = pool.ctx;
        int n = pool.n;
        pthread_mutex_unlock(&pool.mu);
        run_tasks(seen, fn, ctx, n);
    }
    pthread_mutex_unlock(&pool.mu);
    return NULL;
}

static void stop_workers(void)
{
    pthread_mutex_lock(&pool.mu);
    pool.quit = true;
    pool.gen++; /* ends the spinning workers' watch at once */
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.mu);
    for (int w = 0; w < pool.nworkers; w++) pthread_join(pool.th[w], NULL);
    pool.nworkers = 0;
    pool.quit = false;
}

lw_status lw_threads_set(int n)
{
    if (n < 1 || n > LW_THREADS_MAX)
        return lw_fail(LW_ERR_INVALID, "threads: %d, expected 1..%d", n, LW_THREADS_MAX);
    if (in_task || atomic_flag_test_and_set(&pool.busy))
        return lw_fail(LW_ERR_INVALID, "threads: cannot resize the pool while a job runs");
    lw_status st = LW_OK;
    const char *env = getenv("LW_POOL_SPIN_US");
    long us = SPIN_US_DEFAULT;
    if (env && *env) {
        char *end;
        us = strtol(env, &end, 10);
        if (*end || us < 0 || us > 1000000) {
            atomic_flag_clear(&pool.busy);
            return lw_fail(LW_ERR_INVALID, "LW_POOL_SPIN_US: '%s', expected microseconds 0..1000000", env);
        }
    }
    atomic_store(&spin_ns, us * 1000L);
    if (n - 1 != pool.nworkers) {
        stop_workers();
        for (int w = 0; w < n - 1; w++) {
            if (pthread_create(&pool.th[w], NULL, worker, (void *)(uintptr_t)pool.gen)) {
                st = lw_fail(LW_ERR_EXTERNAL, "threads: could not start worker %d of %d", w + 1, n - 1);
                break;
            }
            pool.nworkers++;
        }
        if (st != LW_OK) stop_workers();
    }
    atomic_flag_clear(&pool.busy);
    return st;
}

int lw_threads_get(void) { return pool.nworkers + 1; }

long lw_threads_parallel_jobs(void) { return atomic_load(&parallel_jobs); }

void lw_threads_shutdown(void) { (void)lw_threads_set(1); }

void lw_parallel_for(int n, lw_task_fn fn, void *ctx)
{
    if (n <= 0) return;
    if (pool.nworkers == 0 || n == 1 || in_task || atomic_flag_test_and_set(&pool.busy)) {
        /* serial, in index order: no workers, one task, nested, or another
         * thread's job running */
        bool outer = in_task;
        in_task = true;
        for (int i = 0; i < n; i++) fn(ctx, i);
        in_task = outer;
        return;
    }
    atomic_fetch_add(&parallel_jobs, 1);
    pthread_mutex_lock(&pool.mu);
    uint32_t gen = ++pool.gen;
    pool.fn = fn;
    pool.ctx = ctx;
    pool.n = n;
    atomic_store(&pool.done, 0);
    atomic_store(&pool.next, (uint64_t)gen << 32);
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.mu);
    run_tasks(gen, fn, ctx, n);
    if (spin_until(NULL, 0, &pool.done, n)) {
        atomic_flag_clear(&pool.busy);
        return;
    }
    pthread_mutex_lock(&pool.mu);
    while (atomic_load(&pool.done) < n) pthread_cond_wait(&pool.done_cv, &pool.mu);
    pthread_mutex_unlock(&pool.mu);
    atomic_flag_clear(&pool.busy);
}
