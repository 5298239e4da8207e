/* One thread pool per process (issue 19, item 3: both cores on one run).
 *
 * Workers are created once (lw_threads_set) and parked on a condition
 * variable between jobs; a job is a fork-join lw_parallel_for(n, fn, ctx):
 * fn(ctx, i) for every i in [0, n), the calling thread working beside the
 * workers, and the call returns when all n are done. Tasks are handed out
 * one index at a time from a shared counter, so more tasks than threads
 * balance themselves; WHICH thread runs a task is not fixed, so a caller
 * that wants results independent of the thread count (every caller in
 * lwc) must make the tasks write disjoint outputs and must not let the
 * partition into tasks depend on lw_threads_get() in a way that changes a
 * sum's order (see runtime/ops/cpu_threads.h for the products' rule).
 *
 * A call made from inside a task (nested), or while another thread's job
 * is running, is not refused: it runs its tasks in order on the calling
 * thread (serialised), which gives the same results.
 *
 * No OpenMP: the build has none, and a pool we own lets us pin OpenBLAS to
 * one thread so the two do not fight over the cores. */
#ifndef LW_THREAD_POOL_H
#define LW_THREAD_POOL_H

#include "status.h"

enum { LW_THREADS_MAX = 64 };

typedef void (*lw_task_fn)(void *ctx, int i);

/* n threads in all (the caller and n - 1 workers), 1..LW_THREADS_MAX; 1
 * stops the workers. Not while a job runs (LW_ERR_INVALID then). Also
 * reads LW_POOL_SPIN_US: how long (microseconds, 0..1000000, default 200)
 * an idle worker, and a caller waiting for its last task, spin before they
 * sleep (thread_pool.c); a bad value is LW_ERR_INVALID. */
lw_status lw_threads_set(int n);
int lw_threads_get(void);
/* Runs fn(ctx, i) for i in [0, n); n <= 0 does nothing. */
void lw_parallel_for(int n, lw_task_fn fn, void *ctx);
/* Jobs handed to the workers (not run serially) since the process started:
 * the tests' proof that a split happened. */
long lw_threads_parallel_jobs(void);
/* Joins the workers (lw_threads_set(1)); safe to call more than once. */
void lw_threads_shutdown(void);

#endif
