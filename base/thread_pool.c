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
 * work. */
#include "thread_pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

static struct {
    pthread_mutex_t mu;
    pthread_cond_t wake, done_cv;
    pthread_t th[LW_THREADS_MAX];
    atomic_int nworkers;  /* read without the mutex by lw_parallel_for */
    bool quit;
    /* the current job, written under mu before the generation moves */
    uint32_t gen;
    lw_task_fn fn;
    void *ctx;
    int n;
    _Atomic uint64_t next;   /* gen << 32 | next index */
    atomic_int done;         /* tasks finished in this job */
    atomic_flag busy;        /* a job is running (held by its caller) */
} pool = {.mu = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER,
          .done_cv = PTHREAD_COND_INITIALIZER, .busy = ATOMIC_FLAG_INIT};

static atomic_long parallel_jobs;
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

/* arg: the generation when the worker was made. A thread can start running
 * after its first job was published; starting from the generation it was
 * made at, it still sees that job as new and joins it. */
static void *worker(void *arg)
{
    uint32_t seen = (uint32_t)(uintptr_t)arg;
    pthread_mutex_lock(&pool.mu);
    for (;;) {
        while (pool.gen == seen && !pool.quit) pthread_cond_wait(&pool.wake, &pool.mu);
        if (pool.quit) break;
        seen = pool.gen;
        lw_task_fn fn = pool.fn;
        void *ctx = pool.ctx;
        int n = pool.n;
        pthread_mutex_unlock(&pool.mu);
        run_tasks(seen, fn, ctx, n);
        pthread_mutex_lock(&pool.mu);
    }
    pthread_mutex_unlock(&pool.mu);
    return NULL;
}

static void stop_workers(void)
{
    pthread_mutex_lock(&pool.mu);
    pool.quit = true;
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
    pthread_mutex_lock(&pool.mu);
    while (atomic_load(&pool.done) < n) pthread_cond_wait(&pool.done_cv, &pool.mu);
    pthread_mutex_unlock(&pool.mu);
    atomic_flag_clear(&pool.busy);
}
