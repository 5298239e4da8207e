/* The communication layer (comm.h) and data-parallel training through it,
 * on the CPU: W forked processes on 127.0.0.1 (rank 0 binds an ephemeral
 * port and hands it to the others through a pipe) check the tcp
 * collectives' sums, broadcast and barrier; peers that die, hang, never
 * come or run another collective give errors, not hangs; the environment
 * is parsed strictly. End to end: the tiny synthetic pair of check_train.c
 * trained at world 2 ends where world 1 ends (up to summation order), with
 * identical parameters on both ranks and only rank 0 writing; world 1
 * through a local comm is bit for bit the run without one. */
#include "testlib.h"
#include "tiny_models.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint.h"
#include "comm.h"
#include "comm_nccl.h"
#include "train.h"

enum { MAX_W = 4 };

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* What one rank runs; returns its exit code (0: as expected). */
typedef int (*rank_fn)(lw_comm *c, void *arg);

static lw_comm_config tcp_config(int rank, int world, int port, double timeout)
{
    lw_comm_config cfg = {.backend = LW_COMM_TCP, .rank = rank, .world = world, .port = port, .timeout_s = timeout};
    snprintf(cfg.host, sizeof cfg.host, "127.0.0.1");
    return cfg;
}

static void child(int rank, int world, double timeout, int port_pipe[2], rank_fn fn, void *arg)
{
    lw_comm_config cfg = tcp_config(rank, world, 0, timeout);
    lw_comm c;
    int port = 0;
    if (rank == 0) {
        if (lw_comm_open(&c, &cfg)) goto fail;
        for (int r = 1; r < world; r++)
            if (write(port_pipe[1], &c.port, sizeof c.port) != sizeof c.port) _exit(90);
        if (lw_comm_connect(&c)) goto fail;
    } else {
        if (read(port_pipe[0], &port, sizeof port) != sizeof port) _exit(91);
        cfg.port = port;
        if (lw_comm_init(&c, &cfg)) goto fail;
    }
    int rc = fn(&c, arg);
    lw_comm_close(&c);
    _exit(rc);
fail:
    fprintf(stderr, "rank %d: %s\n", rank, lw_last_error());
    _exit(92);
}

/* Forks the world, waits for every rank, gives each exit code (-1 killed). */
static void run_world(int world, double timeout, rank_fn fn, void *arg, int *codes)
{
    int pp[2];
    pid_t pids[MAX_W];
    ck_assert_int_eq(pipe(pp), 0);
    for (int r = 0; r < world; r++) {
        pids[r] = fork();
        ck_assert_int_ge(pids[r], 0);
        if (pids[r] == 0) child(r, world, timeout, pp, fn, arg);
    }
    close(pp[0]);
    close(pp[1]);
    for (int r = 0; r < world; r++) {
        int status;
        ck_assert_int_eq(waitpid(pids[r], &status, 0), pids[r]);
        codes[r] = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
}

static void expect_all(int world, const int *codes, int want)
{
    for (int r = 0; r < world; r++)
        ck_assert_msg(codes[r] == want, "rank %d of %d exited with %d, expected %d", r, world, codes[r], want);
}

#define REQUIRE(cond, code)                                                                                         \
    do {                                                                                                           \
        if (!(cond)) {                                                                                             \
            fprintf(stderr, "rank %d: line %d: %s (%s)\n", c->rank, __LINE__, #cond, lw_last_error());              \
            return code;                                                                                           \
        }                                                                                                          \
    } while (0)

/* Sums of known values, exact in float; the big buffer needs several chunks
 * and many socket writes. Every rank must end with rank 0's bits. */
static int sums_and_broadcast(lw_comm *c, void *arg)
{
    int W = c->world, R = c->rank;
    size_t n = 3 * 1000 * 1000 + 7;
    float *f = malloc(n * sizeof *f), *copy = malloc(n * sizeof *copy);
    REQUIRE(f && copy, 10);
    for (size_t i = 0; i < n; i++) f[i] = (float)(R * 1000) + 0.5f * (float)(i % 4096);
    REQUIRE(lw_comm_allreduce_sum_f32(c, f, n) == LW_OK, 11);
    float rank_sum = (float)(1000 * W * (W - 1) / 2);
    for (size_t i = 0; i < n; i++) REQUIRE(f[i] == rank_sum + (float)W * 0.5f * (float)(i % 4096), 12);
    memcpy(copy, f, n * sizeof *f);
    REQUIRE(lw_comm_broadcast(c, copy, n * sizeof *copy, 0) == LW_OK, 13);
    REQUIRE(memcmp(copy, f, n * sizeof *f) == 0, 14);

    double d[5] = {0.1 * (R + 1), 1e300, -(double)R, 3.0, 1.0 / 3.0};
    REQUIRE(lw_comm_allreduce_sum_f64(c, d, 5) == LW_OK, 15);
    REQUIRE(fabs(d[0] - 0.1 * W * (W + 1) / 2) < 1e-12 && d[1] == 1e300 * W && d[2] == -(double)(W * (W - 1) / 2), 16);
    REQUIRE(d[3] == 3.0 * W && fabs(d[4] - W / 3.0) < 1e-15, 17);

    /* broadcast from the last rank, which is not the hub */
    char msg[64] = {0};
    if (R == W - 1) snprintf(msg, sizeof msg, "from rank %d", R);
    REQUIRE(lw_comm_broadcast(c, msg, sizeof msg, W - 1) == LW_OK, 18);
    char want[64];
    snprintf(want, sizeof want, "from rank %d", W - 1);
    REQUIRE(strcmp(msg, want) == 0, 19);
    REQUIRE(lw_comm_broadcast(c, msg, sizeof msg, W) == LW_ERR_INVALID, 20);

    /* the barrier holds everyone until the slowest rank arrives */
    double t0 = now_s();
    if (R == 1) usleep(300 * 1000);
    REQUIRE(lw_comm_barrier(c) == LW_OK, 21);
    REQUIRE(now_s() - t0 > 0.25, 22);
    REQUIRE(lw_comm_allreduce_sum_f32(c, f, 0) == LW_OK, 23);
    free(f);
    free(copy);
    return 0;
}

START_TEST(collectives_sum_broadcast_and_wait)
{
    for (int W = 2; W <= 3; W++) {
        int codes[MAX_W];
        run_world(W, 20, sums_and_broadcast, NULL, codes);
        expect_all(W, codes, 0);
    }
}
END_TEST

/* The last rank leaves without a word; the others' all-reduce fails fast. */
static int last_rank_dies(lw_comm *c, void *arg)
{
    if (c->rank == c->world - 1) _exit(0);
    float x[100] = {0};
    double t0 = now_s();
    REQUIRE(lw_comm_allreduce_sum_f32(c, x, 100) != LW_OK, 10);
    REQUIRE(strstr(lw_last_error(), "closed the connection"), 11);
    REQUIRE(now_s() - t0 < 10, 12);
    return 0;
}

/* The last rank hangs; the others time out. */
static int last_rank_hangs(lw_comm *c, void *arg)
{
    if (c->rank == c->world - 1) {
        usleep(1500 * 1000);
        return 0;
    }
    double x = 1, t0 = now_s();
    REQUIRE(lw_comm_allreduce_sum_f64(c, &x, 1) != LW_OK, 10);
    REQUIRE(strstr(lw_last_error(), "LW_COMM_TIMEOUT") || strstr(lw_last_error(), "closed the connection"), 11);
    REQUIRE(now_s() - t0 < 1.4, 12);
    return 0;
}

/* Ranks that disagree on the collective get a message saying so. */
static int ranks_disagree(lw_comm *c, void *arg)
{
    float x[20] = {0};
    lw_status st = lw_comm_allreduce_sum_f32(c, x, c->rank == 0 ? 10 : 20);
    if (c->rank == 0) {
        REQUIRE(st == LW_ERR_INVALID, 10);
        REQUIRE(strstr(lw_last_error(), "different collectives"), 11);
    } else {
        REQUIRE(st != LW_OK, 12);   /* rank 0 gave up and closed */
    }
    return 0;
}

START_TEST(failing_peers_give_errors_not_hangs)
{
    int codes[MAX_W];
    run_world(3, 20, last_rank_dies, NULL, codes);
    expect_all(3, codes, 0);
    run_world(2, 0.5, last_rank_hangs, NULL, codes);
    expect_all(2, codes, 0);
    run_world(2, 20, ranks_disagree, NULL, codes);
    expect_all(2, codes, 0);
}
END_TEST

START_TEST(rendezvous_without_peers_times_out)
{
    /* rank 0 waits for a rank that never comes */
    lw_comm_config cfg = tcp_config(0, 2, 0, 0.4);
    lw_comm c;
    double t0 = now_s();
    ck_assert_int_eq(lw_comm_init(&c, &cfg), LW_ERR_IO);
    ck_assert_msg(strstr(lw_last_error(), "only 1 of 2 ranks joined"), "%s", lw_last_error());
    ck_assert(now_s() - t0 < 3);
    /* rank 1 finds nobody listening: a port that was free a moment ago */
    ck_assert_int_eq(lw_comm_open(&c, &cfg), LW_OK);
    int port = c.port;
    lw_comm_close(&c);
    cfg = tcp_config(1, 2, port, 0.4);
    t0 = now_s();
    ck_assert_int_eq(lw_comm_init(&c, &cfg), LW_ERR_IO);
    ck_assert_msg(strstr(lw_last_error(), "cannot reach rank 0"), "%s", lw_last_error());
    ck_assert(now_s() - t0 < 3);
    /* a local comm above world 1 is refused */
    cfg.backend = LW_COMM_LOCAL;
    ck_assert_int_eq(lw_comm_init(&c, &cfg), LW_ERR_INVALID);
}
END_TEST

static void clear_env(void)
{
    const char *vars[] = {"LW_WORLD_SIZE", "LW_RANK", "LW_MASTER", "LW_COMM_TIMEOUT", "LW_LOCAL_RANK",
                          "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_LOCAL_RANK"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) unsetenv(vars[i]);
}

static void expect_env_error(const char *var, const char *value, const char *needle)
{
    lw_comm_config cfg;
    setenv(var, value, 1);
    ck_assert_int_eq(lw_comm_config_from_env(&cfg), LW_ERR_INVALID);
    ck_assert_msg(strstr(lw_last_error(), needle), "%s=%s: %s", var, value, lw_last_error());
}

START_TEST(environment_is_parsed_strictly)
{
    lw_comm_config cfg;
    clear_env();
    ck_assert_int_eq(lw_comm_config_from_env(&cfg), LW_OK);
    ck_assert_int_eq(cfg.world, 1);
    ck_assert_int_eq(cfg.backend, LW_COMM_LOCAL);

    setenv("LW_WORLD_SIZE", "4", 1);
    setenv("LW_RANK", "3", 1);
    setenv("LW_MASTER", "node-a:1234", 1);
    setenv("LW_COMM_TIMEOUT", "2.5", 1);
    ck_assert_int_eq(lw_comm_config_from_env(&cfg), LW_OK);
    ck_assert(cfg.world == 4 && cfg.rank == 3 && cfg.port == 1234 && cfg.backend == LW_COMM_TCP);
    ck_assert_str_eq(cfg.host, "node-a");
    ck_assert(cfg.timeout_s == 2.5);
    setenv("LW_MASTER", "[::1]:29500", 1);
    ck_assert_int_eq(lw_comm_config_from_env(&cfg), LW_OK);
    ck_assert_str_eq(cfg.host, "::1");

    expect_env_error("LW_MASTER", "node-a", "host:port");
    expect_env_error("LW_MASTER", "node-a:70000", "port");
    expect_env_error("LW_MASTER", ":29500", "host:port");
    setenv("LW_MASTER", "127.0.0.1:29500", 1);
    expect_env_error("LW_COMM_TIMEOUT", "-1", "LW_COMM_TIMEOUT");
    setenv("LW_COMM_TIMEOUT", "5", 1);
    expect_env_error("LW_RANK", "4", "outside the world");
    expect_env_error("LW_RANK", "1x", "LW_RANK");
    setenv("LW_RANK", "1", 1);
    expect_env_error("LW_WORLD_SIZE", "abc", "LW_WORLD_SIZE");
    expect_env_error("LW_WORLD_SIZE", "0", "LW_WORLD_SIZE");
    expect_env_error("LW_WORLD_SIZE", "99999999999999999999", "LW_WORLD_SIZE");
    unsetenv("LW_RANK");
    expect_env_error("LW_WORLD_SIZE", "2", "LW_RANK is not set");

    /* mpirun's variables when ours are unset */
    clear_env();
    setenv("OMPI_COMM_WORLD_SIZE", "3", 1);
    setenv("OMPI_COMM_WORLD_RANK", "2", 1);
    setenv("OMPI_COMM_WORLD_LOCAL_RANK", "1", 1);
    ck_assert_int_eq(lw_comm_config_from_env(&cfg), LW_OK);
    ck_assert(cfg.world == 3 && cfg.rank == 2 && cfg.local_rank == 1 && cfg.backend == LW_COMM_TCP);
    expect_env_error("OMPI_COMM_WORLD_RANK", "3", "outside the world");
    clear_env();

    ck_assert_int_eq(lw_comm_backend_from_name("nccl"), LW_COMM_NCCL);
    ck_assert_int_eq(lw_comm_backend_from_name("mpi"), -1);
}
END_TEST

START_TEST(local_collectives_leave_buffers_alone_and_nccl_says_what_is_missing)
{
    lw_comm c;
    lw_comm_init_local(&c);
    float f[3] = {1, 2, 3};
    double d[2] = {4, 5};
    ck_assert_int_eq(lw_comm_allreduce_sum_f32(&c, f, 3), LW_OK);
    ck_assert_int_eq(lw_comm_allreduce_sum_f64(&c, d, 2), LW_OK);
    ck_assert_int_eq(lw_comm_broadcast(&c, f, sizeof f, 0), LW_OK);
    ck_assert_int_eq(lw_comm_barrier(&c), LW_OK);
    ck_assert(f[0] == 1 && f[1] == 2 && f[2] == 3 && d[0] == 4 && d[1] == 5);
    ck_assert_int_eq(lw_comm_broadcast(&c, f, sizeof f, 1), LW_ERR_INVALID);

    ck_assert_int_eq(lw_comm_nccl_attach_from(&c, NULL, "libnccl-not-here.so.2"), LW_ERR_UNSUPPORTED);
    ck_assert_msg(strstr(lw_last_error(), "libnccl-not-here.so.2"), "%s", lw_last_error());
    ck_assert(c.backend == LW_COMM_LOCAL && c.nccl == NULL);
    /* the real library: absent here, or present without a GPU */
    ck_assert_int_ne(lw_comm_nccl_attach_from(&c, NULL, "libnccl.so.2"), LW_OK);
    ck_assert(strstr(lw_last_error(), "NCCL") || strstr(lw_last_error(), "libnccl"));
    ck_assert_int_eq(lw_comm_nccl_allreduce_host(&c, f, 3, false), LW_ERR_INVALID);
    lw_comm_close(&c);
}
END_TEST

/* ---- data-parallel training ---- */

enum { S_HIDDEN = TL_SENDER_HIDDEN, N_EX = 48, M_SOFT = 2, STEPS = 6 };

typedef tl_synthetic_pair pair;

/* check_train.c's pair: class +-1.5 along four dimensions, two dimensions
 * with large offsets. */
static void setup(pair *p)
{
    tl_synthetic_pair_open(p, M_SOFT, N_EX, 0.1f, 3);
}

static void teardown(pair *p) { tl_synthetic_pair_close(p); }

static lw_train_options options(void)
{
    lw_train_options o;
    memset(&o, 0, sizeof o);
    o.cfg = (lw_train_config){.lr = 3e-3f, .steps = STEPS, .batch = 4, .grad_accum = 2, .warmup_steps = 2,
                              .weight_decay = 0.01f, .grad_clip = 1.0f, .seed = 5};
    o.quiet = true;
    return o;
}

/* Each rank trains into <dir>/rank<R> and leaves its final parameters and
 * result in <dir>/params<R>.bin. */
static int train_rank(lw_comm *c, void *arg)
{
    const char *dir = arg;
    char out[4200], path[4200];
    snprintf(out, sizeof out, "%s/rank%d", dir, c->rank);
    snprintf(path, sizeof path, "%s/params%d.bin", dir, c->rank);
    pair p;
    setup(&p);
    if (c->rank == 1) lw_bridge_init(&p.bridge, 77);   /* rank 0's init must win */
    lw_train_options o = options();
    o.out_dir = out;
    o.comm = c;
    lw_train_result r;
    REQUIRE(lw_train_run(&p.trainer, &p.states, &p.data, &o, &r) == LW_OK, 10);
    REQUIRE(r.steps_done == STEPS, 11);
    FILE *f = fopen(path, "wb");
    REQUIRE(f, 12);
    REQUIRE(fwrite(p.bridge.params, sizeof(float), p.bridge.n_params, f) == p.bridge.n_params, 13);
    REQUIRE(fwrite(&r.last_loss, sizeof r.last_loss, 1, f) == 1 && fwrite(&r.train_acc, sizeof(double), 1, f) == 1, 14);
    REQUIRE(fclose(f) == 0, 15);
    teardown(&p);
    return 0;
}

START_TEST(world_two_trains_like_world_one)
{
    const char *tmp = tl_tmpdir("comm_train");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", tmp);

    /* world 1 without a comm, and through a local comm: the same bits */
    pair a, b;
    setup(&a);
    setup(&b);
    lw_train_options o = options();
    lw_train_result ra, rb;
    ck_assert_int_eq(lw_train_run(&a.trainer, &a.states, &a.data, &o, &ra), LW_OK);
    lw_comm local;
    lw_comm_init_local(&local);
    o.comm = &local;
    ck_assert_int_eq(lw_train_run(&b.trainer, &b.states, &b.data, &o, &rb), LW_OK);
    ck_assert(memcmp(a.bridge.params, b.bridge.params, a.bridge.n_params * sizeof(float)) == 0);
    ck_assert(ra.last_loss == rb.last_loss && ra.train_acc == rb.train_acc);

    int codes[MAX_W];
    run_world(2, 30, train_rank, dir, codes);
    expect_all(2, codes, 0);

    size_t n = a.bridge.n_params, len0, len1;
    char path[4200];
    snprintf(path, sizeof path, "%s/params0.bin", dir);
    char *p0 = tl_read_file(path, &len0);
    snprintf(path, sizeof path, "%s/params1.bin", dir);
    char *p1 = tl_read_file(path, &len1);
    ck_assert(p0 && p1 && len0 == n * sizeof(float) + 2 * sizeof(double) && len1 == len0);
    /* the ranks hold the same bits */
    ck_assert(memcmp(p0, p1, len0) == 0);
    /* and world 1's parameters up to the order of the sums */
    const float *w2 = (const float *)p0;
    double diff = 0, norm = 0, moved = 0;
    for (int k = 0; k < a.bridge.n_tensors; k++) {
        const lw_bridge_tensor *t = &a.bridge.tensors[k];
        for (size_t i = t->offset; t->trainable && i < t->offset + t->count; i++) {
            double d = (double)w2[i] - a.bridge.params[i];
            diff += d * d, norm += (double)a.bridge.params[i] * a.bridge.params[i];
        }
    }
    /* the input_norm buffers (not trained) are rank 0's own statistics */
    ck_assert(memcmp(w2 + a.bridge.in_mean, a.bridge.params + a.bridge.in_mean, S_HIDDEN * sizeof(float)) == 0);
    ck_assert_msg(sqrt(diff) <= 1e-5 * sqrt(norm), "world 2 is %g from world 1 (norm %g)", sqrt(diff), sqrt(norm));
    /* ... which did train: the step moved them away from the init */
    lw_bridge_init(&b.bridge, 5);
    for (size_t i = 0; i < n; i++) moved += fabs((double)b.bridge.params[i] - a.bridge.params[i]);
    ck_assert(moved > 1e-3);
    double loss2, acc2;
    memcpy(&loss2, p0 + n * sizeof(float), sizeof loss2);
    memcpy(&acc2, p0 + n * sizeof(float) + sizeof loss2, sizeof acc2);
    ck_assert_msg(fabs(loss2 - ra.last_loss) <= 1e-5 * fabs(ra.last_loss), "loss %g vs %g", loss2, ra.last_loss);
    ck_assert(acc2 == ra.train_acc);

    /* rank 0 alone wrote: its final checkpoint holds world 2's parameters */
    struct stat st;
    snprintf(path, sizeof path, "%s/rank1", dir);
    ck_assert_msg(stat(path, &st) != 0, "rank 1 wrote %s", path);
    snprintf(path, sizeof path, "%s/rank0/final", dir);
    lw_adamw opt;
    lw_rng rng;
    long step = 0;
    ck_assert_int_eq(lw_adamw_init(&opt, n, lw_adamw_defaults()), LW_OK);
    ck_assert_int_eq(lw_checkpoint_load(path, &b.bridge, &opt, &rng, &step), LW_OK);
    ck_assert_int_eq(step, STEPS);
    ck_assert(memcmp(b.bridge.params, w2, n * sizeof(float)) == 0);
    snprintf(path, sizeof path, "%s/rank0/train_log.jsonl", dir);
    char *log = tl_read_file(path, NULL);
    ck_assert(log);
    int lines = 0;
    for (char *s = log; *s; s++) lines += *s == '\n';
    ck_assert_int_eq(lines, STEPS);
    free(log);
    lw_adamw_free(&opt);
    free(p0);
    free(p1);
    teardown(&a);
    teardown(&b);
}
END_TEST

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    Suite *s = suite_create("comm");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, collectives_sum_broadcast_and_wait);
    tcase_add_test(tc, failing_peers_give_errors_not_hangs);
    tcase_add_test(tc, rendezvous_without_peers_times_out);
    tcase_add_test(tc, environment_is_parsed_strictly);
    tcase_add_test(tc, local_collectives_leave_buffers_alone_and_nccl_says_what_is_missing);
    tcase_add_test(tc, world_two_trains_like_world_one);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
