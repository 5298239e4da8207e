/* lw serve's model work queue (serve_queue.h) and the HOST:PORT parser of
 * the wire's sockets (wire_socket.h): jobs that arrive together are one
 * batch, one that arrives alone with no window is its own, the batch never
 * passes max_batch, every job is done exactly once and its submitter wakes
 * with its own answer, stop drains what is queued; a listening socket on
 * port 0 gets a real port a client connects to. */
#include "testlib.h"
#include "serve_queue.h"
#include "wire_socket.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum { N_JOBS = 24 };

typedef struct {
    atomic_int calls, processed;
    int sizes[N_JOBS];
    pthread_mutex_t mu;
} counter;

typedef struct {
    int in, out, times;
} work;

static void process(void *ctx, lw_serve_job **jobs, int n)
{
    counter *c = ctx;
    int call = atomic_fetch_add(&c->calls, 1);
    if (call < N_JOBS) c->sizes[call] = n;
    usleep(20000);   /* model work: long enough for the others to queue behind it */
    for (int i = 0; i < n; i++) {
        work *w = jobs[i]->data;
        w->out = w->in * 3 + 1;
        w->times++;
        atomic_fetch_add(&c->processed, 1);
    }
}

typedef struct {
    lw_serve_queue *q;
    work w;
} submitter;

static void *submit(void *arg)
{
    submitter *s = arg;
    lw_serve_job job = {.data = &s->w};
    lw_serve_queue_run(s->q, &job);
    return NULL;
}

START_TEST(jobs_together_are_batched_each_done_once)
{
    lw_serve_queue q;
    counter c = {0};
    ck_assert_int_eq(lw_serve_queue_start(&q, 5, 50, process, &c), LW_OK);
    submitter s[N_JOBS];
    pthread_t th[N_JOBS];
    for (int i = 0; i < N_JOBS; i++) {
        s[i] = (submitter){.q = &q, .w = {.in = i}};
        ck_assert_int_eq(pthread_create(&th[i], NULL, submit, &s[i]), 0);
    }
    for (int i = 0; i < N_JOBS; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < N_JOBS; i++) {
        ck_assert_int_eq(s[i].w.times, 1);
        ck_assert_int_eq(s[i].w.out, i * 3 + 1);
    }
    long jobs, batches;
    int largest;
    lw_serve_queue_stats(&q, &jobs, &batches, &largest);
    ck_assert_int_eq(jobs, N_JOBS);
    ck_assert_int_eq(atomic_load(&c.processed), N_JOBS);
    ck_assert_int_le(largest, 5);
    ck_assert_int_gt(largest, 1);                    /* 24 at once in a 50 ms window: some batched */
    ck_assert_int_lt(batches, N_JOBS);
    for (int i = 0; i < atomic_load(&c.calls) && i < N_JOBS; i++) ck_assert_int_le(c.sizes[i], 5);
    lw_serve_queue_stop(&q);
}
END_TEST

START_TEST(no_window_alone_is_a_batch_of_one)
{
    lw_serve_queue q;
    counter c = {0};
    ck_assert_int_eq(lw_serve_queue_start(&q, 8, 0, process, &c), LW_OK);
    for (int i = 0; i < 3; i++) {
        work w = {.in = 10 + i};
        lw_serve_job job = {.data = &w};
        lw_serve_queue_run(&q, &job);
        ck_assert_int_eq(w.out, 31 + 3 * i);
    }
    long jobs, batches;
    int largest;
    lw_serve_queue_stats(&q, &jobs, &batches, &largest);
    ck_assert_int_eq(jobs, 3);
    ck_assert_int_eq(batches, 3);
    ck_assert_int_eq(largest, 1);
    lw_serve_queue_stop(&q);
    lw_serve_queue_stats(&q, &jobs, &batches, &largest);   /* readable after stop */
    ck_assert_int_eq(jobs, 3);
}
END_TEST

START_TEST(bad_settings_refused)
{
    lw_serve_queue q;
    counter c = {0};
    ck_assert_int_ne(lw_serve_queue_start(&q, 0, 1, process, &c), LW_OK);
    ck_assert_int_ne(lw_serve_queue_start(&q, 4, -1, process, &c), LW_OK);
    lw_serve_queue_stop(&q);   /* a queue that never started: nothing to do */
}
END_TEST

START_TEST(host_port_parsed_and_refused)
{
    char host[64];
    int port;
    ck_assert_int_eq(lw_socket_parse("127.0.0.1:8080", host, sizeof host, &port), LW_OK);
    ck_assert_str_eq(host, "127.0.0.1");
    ck_assert_int_eq(port, 8080);
    ck_assert_int_eq(lw_socket_parse("[::1]:0", host, sizeof host, &port), LW_OK);
    ck_assert_str_eq(host, "::1");
    ck_assert_int_eq(port, 0);
    ck_assert_int_eq(lw_socket_parse("localhost:65535", host, sizeof host, &port), LW_OK);
    const char *bad[] = {"8080", ":80", "host:", "host:65536", "host:-1", "host:80x", "h:1:2x"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        ck_assert_msg(lw_socket_parse(bad[i], host, sizeof host, &port) != LW_OK, "%s accepted", bad[i]);
    ck_assert_ptr_nonnull(strstr(lw_last_error(), "2x"));   /* the last one: its port named */
}
END_TEST

START_TEST(port_zero_listens_on_a_real_port)
{
    int lfd, port, cfd;
    char spec[32];
    ck_assert_int_eq(lw_socket_listen("127.0.0.1:0", 4, &lfd, &port), LW_OK);
    ck_assert_int_gt(port, 0);
    snprintf(spec, sizeof spec, "127.0.0.1:%d", port);
    ck_assert_int_eq(lw_socket_connect(spec, &cfd), LW_OK);
    int afd = accept(lfd, NULL, NULL);
    ck_assert_int_ge(afd, 0);
    ck_assert_int_eq(write(cfd, "hi", 2), 2);
    char b[2];
    ck_assert_int_eq(read(afd, b, 2), 2);
    ck_assert_int_eq(memcmp(b, "hi", 2), 0);
    close(afd);
    close(cfd);
    close(lfd);
    /* nobody listens there now */
    ck_assert_int_ne(lw_socket_connect(spec, &cfd), LW_OK);
    ck_assert_ptr_nonnull(strstr(lw_last_error(), "cannot connect"));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("serve_queue");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, jobs_together_are_batched_each_done_once);
    tcase_add_test(tc, no_window_alone_is_a_batch_of_one);
    tcase_add_test(tc, bad_settings_refused);
    tcase_add_test(tc, host_port_parsed_and_refused);
    tcase_add_test(tc, port_zero_listens_on_a_real_port);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
