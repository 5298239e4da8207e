/* The model work queue of lw serve (serve_queue.h). */
#include "serve_queue.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { MAX_BATCH_CAP = 256 };

static lw_serve_job *pop(lw_serve_queue *q)
{
    lw_serve_job *j = q->head;
    q->head = j->next;
    if (!q->head) q->tail = NULL;
    q->queued--;
    j->next = NULL;
    return j;
}

static void *worker(void *arg)
{
    lw_serve_queue *q = arg;
    lw_serve_job *batch[MAX_BATCH_CAP];
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (!q->head && !q->stop) pthread_cond_wait(&q->work, &q->mu);
        if (!q->head) break;   /* stopping, nothing left */
        int n = 0;
        batch[n++] = pop(q);
        /* the ones that arrive within the window join the batch */
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += (long)q->window_ms * 1000000L;
        until.tv_sec += until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        while (n < q->max_batch) {
            if (q->head) batch[n++] = pop(q);
            else if (q->stop || q->window_ms == 0 || pthread_cond_timedwait(&q->work, &q->mu, &until) == ETIMEDOUT)
                break;
        }
        pthread_mutex_unlock(&q->mu);
        q->process(q->ctx, batch, n);
        pthread_mutex_lock(&q->mu);
        for (int i = 0; i < n; i++) batch[i]->done = true;
        q->jobs += n;
        q->batches++;
        if (n > q->largest_batch) q->largest_batch = n;
        pthread_cond_broadcast(&q->done);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

lw_status lw_serve_queue_start(lw_serve_queue *q, int max_batch, int window_ms, lw_serve_process process,
                               void *ctx)
{
    memset(q, 0, sizeof *q);
    if (max_batch < 1 || max_batch > MAX_BATCH_CAP || window_ms < 0)
        return lw_fail(LW_ERR_INVALID, "serve queue: max batch 1..%d and a window >= 0 ms", MAX_BATCH_CAP);
    q->max_batch = max_batch;
    q->window_ms = window_ms;
    q->process = process;
    q->ctx = ctx;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->work, NULL);
    pthread_cond_init(&q->done, NULL);
    int rc = pthread_create(&q->thread, NULL, worker, q);
    if (rc) return lw_fail(LW_ERR_EXTERNAL, "serve queue: cannot start the worker thread: %s", strerror(rc));
    q->started = true;
    return LW_OK;
}

void lw_serve_queue_run(lw_serve_queue *q, lw_serve_job *job)
{
    job->done = false;
    job->next = NULL;
    pthread_mutex_lock(&q->mu);
    if (q->tail) q->tail->next = job;
    else q->head = job;
    q->tail = job;
    q->queued++;
    pthread_cond_signal(&q->work);
    while (!job->done) pthread_cond_wait(&q->done, &q->mu);
    pthread_mutex_unlock(&q->mu);
}

void lw_serve_queue_stop(lw_serve_queue *q)
{
    if (!q->started) return;
    pthread_mutex_lock(&q->mu);
    q->stop = true;
    pthread_cond_broadcast(&q->work);
    pthread_mutex_unlock(&q->mu);
    pthread_join(q->thread, NULL);   /* the mutex stays: the stats are read after */
    q->started = false;
}

void lw_serve_queue_stats(lw_serve_queue *q, long *jobs, long *batches, int *largest)
{
    pthread_mutex_lock(&q->mu);
    *jobs = q->jobs;
    *batches = q->batches;
    *largest = q->largest_batch;
    pthread_mutex_unlock(&q->mu);
}
