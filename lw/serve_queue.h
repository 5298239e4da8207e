/* The model work queue of lw serve: the models are not thread-safe, so one
 * worker thread does all model work, fed by the HTTP threads through this
 * queue. Jobs that arrive together (within window_ms of the first, up to
 * max_batch) are taken as one batch and handed to process() in one call:
 * one worker pass. A submitter blocks until its job is done. */
#ifndef LW_SERVE_QUEUE_H
#define LW_SERVE_QUEUE_H

#include <pthread.h>
#include <stdbool.h>

#include "status.h"

typedef struct lw_serve_job {
    void *data;                    /* the caller's: what to do and where the answer goes */
    bool done;
    struct lw_serve_job *next;
} lw_serve_job;

typedef void (*lw_serve_process)(void *ctx, lw_serve_job **jobs, int n);

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    lw_serve_job *head, *tail;
    int queued;
    bool stop, started;
    int max_batch, window_ms;
    lw_serve_process process;
    void *ctx;
    pthread_t thread;
    long jobs, batches;            /* done so far (read under mu) */
    int largest_batch;
} lw_serve_queue;

/* Starts the worker thread. max_batch >= 1, window_ms >= 0. */
lw_status lw_serve_queue_start(lw_serve_queue *q, int max_batch, int window_ms, lw_serve_process process,
                               void *ctx);
/* Queues job and waits until the worker has processed it. */
void lw_serve_queue_run(lw_serve_queue *q, lw_serve_job *job);
/* Processes what is queued, then stops and joins the worker (the stats
 * stay readable). */
void lw_serve_queue_stop(lw_serve_queue *q);
/* jobs done, batches and the largest batch so far. */
void lw_serve_queue_stats(lw_serve_queue *q, long *jobs, long *batches, int *largest);

#endif
