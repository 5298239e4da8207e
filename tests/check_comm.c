/* The communication layer (comm.h) and data-parallel training through it,
 * on the CPU. The ranks are real MPI processes: the test starts this same
 * binary under mpirun (scripts/launch.sh N check_comm --rank WHAT DIR),
 * each rank runs WHAT and exits 0 when every check of WHAT held. They check
 * the mpi collectives' sums, broadcasts and barrier; a rank that fails
 * stops the whole job (no rank left waiting); the environment is parsed
 * strictly. End to end: the tiny synthetic pair of check_train.c trained
 * at world 2 ends where world 1 ends (up to summation order), with
 * identical parameters on both ranks and only rank 0 writing; world 1
 * through a local comm is bit for bit the run without one. In a build
 * without MPI a world of 2 must be refused with a message saying so. */
#include "testlib.h"
#include "tiny_models.h"

#include <limits.h>
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

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Starts `launch.sh world <this binary> --rank what dir` and returns
 * mpirun's exit code (-1: killed, -2: still running after limit seconds,
 * then killed). */
static int run_world(int world, const char *what, const char *dir, double limit, double *took)
{
    char self[PATH_MAX], launch[PATH_MAX + 64], n[16];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    ck_assert(len > 0);
    self[len] = '\0';
    const char *src = getenv("LWC_SRCDIR");
    snprintf(launch, sizeof launch, "%s/scripts/launch.sh", src ? src : ".");
    snprintf(n, sizeof n, "%d", world);
    double t0 = now_s();
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        /* Open MPI keeps some allocations until exit: a sanitized rank
         * must not fail on them (the parent keeps its own leak check) */
        const char *asan = getenv("ASAN_OPTIONS");
        char opts[1024];
        snprintf(opts, sizeof opts, "%s%sdetect_leaks=0", asan ? asan : "", asan && *asan ? ":" : "");
        setenv("ASAN_OPTIONS", opts, 1);
        setpgid(0, 0);   /* so a hung job can be killed whole */
        execl(launch, launch, n, self, "--rank", what, dir, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        ck_assert_int_ge(w, 0);
        if (w == pid) break;
        if (now_s() - t0 > limit) {
            kill(-pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -2;
        }
        usleep(20 * 1000);
    }
    if (took) *took = now_s() - t0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

#define REQUIRE(cond, code)                                                                                         \
    do {                                                                                                           \
        if (!(cond)) {                                                                                             \
            fprintf(stderr, "rank %d: line %d: %s (%s)\n", c->rank, __LINE__, #cond, lw_last_error());              \
            return code;                                                                                           \
        }                                                                                                          \
    } while (0)

/* Sums of known values, exact in float; the big buffer is many MPI
 * messages. Every rank must end with the same bits. */
static int sums_and_broadcast(lw_comm *c, const char *dir)
{
    int W = c->world, R = c->rank;
    size_t n = 3 * 1000 * 1000 + 7;
    float *f = malloc(n * sizeof *f), *copy = malloc(n * sizeof *copy);
    REQUIRE(f && copy, 10);
    REQUIRE(c->backend == LW_COMM_MPI && W >= 2, 9);
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
    /* inexact sums: every rank must still hold the same bits (rank 0's
     * broadcast is the reference) */
    double g[64], ref[64];
    for (int i = 0; i < 64; i++) g[i] = sin(1.0 + i * (R + 1.7)) * pow(10.0, (i % 7) - 3);
    REQUIRE(lw_comm_allreduce_sum_f64(c, g, 64) == LW_OK, 24);
    memcpy(ref, g, sizeof g);
    REQUIRE(lw_comm_broadcast(c, ref, sizeof ref, 0) == LW_OK, 25);
    REQUIRE(memcmp(ref, g, sizeof g) == 0, 26);

    /* broadcast from the last rank */
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
    (void)dir;
    return 0;
}

START_TEST(collectives_sum_broadcast_and_wait)
{
    if (!lw_comm_have_mpi()) {
        /* this build has no MPI: a world of 2 is refused, saying why */
        lw_comm_config cfg = {.backend = LW_COMM_MPI, .rank = 0, .world = 2};
        lw_comm c;
        ck_assert_int_eq(lw_comm_init(&c, &cfg), LW_ERR_UNSUPPORTED);
        ck_assert_msg(strstr(lw_last_error(), "built without it"), "%s", lw_last_error());
        ck_assert_int_eq(c.world, 1);
        fprintf(stderr, "check_comm: no MPI in this build: only the refusal is tested\n");
        return;
    }
    for (int W = 2; W <= 3; W++) {
        int rc = run_world(W, "collectives", "-", 120, NULL);
        ck_assert_msg(rc == 0, "a world of %d: mpirun exited with %d", W, rc);
    }
}
END_TEST

/* Rank 1 fails while rank 0 waits for it in an all-reduce: lw_comm_abort
 * must end the job, with rank 1's code, instead of leaving rank 0 waiting. */
static int last_rank_fails(lw_comm *c, const char *dir)
{
    if (c->rank == c->world - 1) {
        usleep(200 * 1000);
        lw_comm_abort(c, 7);
        return 99;   /* not reached: MPI_Abort does not return */
    }
    float x[100] = {0};
    lw_comm_allreduce_sum_f32(c, x, 100);
    char path[4200];   /* rank 0 must never get here: it waits until killed */
    snprintf(path, sizeof path, "%s/rank0-returned", dir);
    FILE *f = fopen(path, "w");
    if (f) fclose(f);
    return 98;
}

START_TEST(a_failing_rank_stops_the_job)
{
    if (!lw_comm_have_mpi()) return;   /* collectives_sum_broadcast_and_wait tests the refusal */
    const char *dir = tl_tmpdir("comm_fail");
    char path[4200];
    snprintf(path, sizeof path, "%s/rank0-returned", dir);
    double took = 0;
    fprintf(stderr, "check_comm: rank 1 aborts on purpose: the MPI_ABORT message below is expected\n");
    int rc = run_world(2, "fail", dir, 60, &took);
    ck_assert_msg(rc > 0, "mpirun exited with %d (-2: the job hung)", rc);
    ck_assert_msg(took < 30, "the job took %.1f s to stop", took);
    struct stat st;
    ck_assert_msg(stat(path, &st) != 0, "rank 0's all-reduce returned without rank 1");
}
END_TEST

static void clear_env(void)
{
    const char *vars[] = {"LW_LOCAL_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK",
                          "OMPI_COMM_WORLD_LOCAL_RANK", "PMI_SIZE", "PMI_RANK"};
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

    /* Open MPI's mpirun */
    setenv("OMPI_COMM_WORLD_SIZE", "3", 1);
    setenv("OMPI_COMM_WORLD_RANK", "2", 1);
    setenv("OMPI_COMM_WORLD_LOCAL_RANK", "1", 1);
    ck_assert_int_eq(lw_comm_config_from_env(&cfg), LW_OK);
    ck_assert(cfg.world == 3 && cfg.rank == 2 && cfg.local_rank == 1 && cfg.backend == LW_COMM_MPI);
    setenv("LW_LOCAL_RANK", "5", 1);   /* ours wins over mpirun's */
    ck_assert_int_eq(lw_comm_config_from_env(&cfg), LW_OK);
    ck_assert_int_eq(cfg.local_rank, 5);
    expect_env_error("LW_LOCAL_RANK", "x", "LW_LOCAL_RANK");
    unsetenv("LW_LOCAL_RANK");
    expect_env_error("OMPI_COMM_WORLD_RANK", "3", "outside the world");
    expect_env_error("OMPI_COMM_WORLD_RANK", "1x", "OMPI_COMM_WORLD_RANK");
    setenv("OMPI_COMM_WORLD_RANK", "1", 1);
    expect_env_error("OMPI_COMM_WORLD_SIZE", "abc", "OMPI_COMM_WORLD_SIZE");
    expect_env_error("OMPI_COMM_WORLD_SIZE", "0", "OMPI_COMM_WORLD_SIZE");
    expect_env_error("OMPI_COMM_WORLD_SIZE", "99999999999999999999", "OMPI_COMM_WORLD_SIZE");
    unsetenv("OMPI_COMM_WORLD_RANK");
    expect_env_error("OMPI_COMM_WORLD_SIZE", "2", "OMPI_COMM_WORLD_RANK is not");
    /* mpirun -np 1: world 1, no MPI */
    setenv("OMPI_COMM_WORLD_SIZE", "1", 1);
    setenv("OMPI_COMM_WORLD_RANK", "0", 1);
    ck_assert_int_eq(lw_comm_config_from_env(&cfg), LW_OK);
    ck_assert(cfg.world == 1 && cfg.backend == LW_COMM_LOCAL);

    /* MPICH's and Slurm's */
    clear_env();
    setenv("PMI_SIZE", "4", 1);
    setenv("PMI_RANK", "3", 1);
    ck_assert_int_eq(lw_comm_config_from_env(&cfg), LW_OK);
    ck_assert(cfg.world == 4 && cfg.rank == 3 && cfg.backend == LW_COMM_MPI);
    clear_env();

    ck_assert_int_eq(lw_comm_backend_from_name("nccl"), LW_COMM_NCCL);
    ck_assert_int_eq(lw_comm_backend_from_name("mpi"), LW_COMM_MPI);
    ck_assert_int_eq(lw_comm_backend_from_name("tcp"), -1);

    /* what lw_comm_init refuses before it touches MPI */
    lw_comm c;
    lw_comm_config bad = {.backend = LW_COMM_LOCAL, .rank = 0, .world = 2};
    ck_assert_int_eq(lw_comm_init(&c, &bad), LW_ERR_INVALID);
    bad = (lw_comm_config){.backend = LW_COMM_MPI, .rank = 2, .world = 2};
    ck_assert_int_eq(lw_comm_init(&c, &bad), LW_ERR_INVALID);
    /* world 1 asks for no MPI whatever the backend */
    lw_comm_config one = {.backend = LW_COMM_MPI, .rank = 0, .world = 1};
    ck_assert_int_eq(lw_comm_init(&c, &one), LW_OK);
    ck_assert(c.backend == LW_COMM_LOCAL && c.mpi == NULL);
    lw_comm_close(&c);
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
static int train_rank(lw_comm *c, const char *dir)
{
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

    if (!lw_comm_have_mpi()) {   /* the refusal is tested by collectives_sum_broadcast_and_wait */
        teardown(&a);
        teardown(&b);
        return;
    }
    int rc = run_world(2, "train", dir, 120, NULL);
    ck_assert_msg(rc == 0, "mpirun exited with %d", rc);

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

/* `check_comm --rank WHAT DIR`: one rank of a world started by mpirun.
 * The rank's work runs as a Check test too (the test library's helpers
 * assert), in this process (no fork: MPI is initialised here). */
static const char *g_what, *g_dir;
static lw_comm g_comm;
static int g_ready;

START_TEST(one_rank)
{
    int (*fn)(lw_comm *, const char *) = !strcmp(g_what, "collectives") ? sums_and_broadcast
                                         : !strcmp(g_what, "fail")      ? last_rank_fails
                                         : !strcmp(g_what, "train")     ? train_rank
                                                                        : NULL;
    ck_assert_msg(fn, "--rank %s: unknown", g_what);
    lw_comm_config cfg;
    ck_assert_msg(lw_comm_config_from_env(&cfg) == LW_OK && lw_comm_init(&g_comm, &cfg) == LW_OK, "%s",
                  lw_last_error());
    g_ready = 1;
    int rc = fn(&g_comm, g_dir);
    ck_assert_msg(rc == 0, "rank %d: %s failed with %d", g_comm.rank, g_what, rc);
}
END_TEST

static int rank_main(const char *what, const char *dir)
{
    g_what = what, g_dir = dir;
    Suite *s = suite_create("comm-rank");
    TCase *tc = tcase_create("rank");
    tcase_set_timeout(tc, 0);   /* mpirun and the parent test bound it */
    tcase_add_test(tc, one_rank);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_SILENT);
    int failed = srunner_ntests_failed(sr);
    if (failed) {
        TestResult **r = srunner_failures(sr);
        fprintf(stderr, "check_comm --rank %s: %s:%d: %s\n", what, tr_lfile(r[0]), tr_lno(r[0]), tr_msg(r[0]));
        free(r);
    }
    srunner_free(sr);
    /* a failed rank ends the job: the others may wait for it in a collective */
    if (failed && g_ready) lw_comm_abort(&g_comm, 1);
    lw_comm_close(&g_comm);
    return failed ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "--rank")) return rank_main(argv[2], argv[3]);
    Suite *s = suite_create("comm");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, collectives_sum_broadcast_and_wait);
    tcase_add_test(tc, a_failing_rank_stops_the_job);
    tcase_add_test(tc, environment_is_parsed_strictly);
    tcase_add_test(tc, local_collectives_leave_buffers_alone_and_nccl_says_what_is_missing);
    tcase_add_test(tc, world_two_trains_like_world_one);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
