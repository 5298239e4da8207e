#include "run_dir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fileutil.h"

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* A writer's leftover: a hidden temporary checkpoint folder
 * (lw_checkpoint_temp_dir) or the temporary file of an atomic write of the
 * run's own files; nothing else of the folder is touched. */
static bool is_leftover(const char *name)
{
    return (name[0] == '.' && strstr(name, ".tmp-")) || !strncmp(name, "run.json.tmp.", 13) ||
           !strncmp(name, "train_log.jsonl.tmp.", 20);
}

void lw_remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        unlink(dir);
        return;
    }
    struct dirent *e;
    char path[4400];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (!lw_pathf(path, sizeof path, "%s/%s", dir, e->d_name)) continue;
        if (is_dir(path)) {
            DIR *sub = opendir(path);
            struct dirent *f;
            char inner[4700];
            while (sub && (f = readdir(sub)))
                if (strcmp(f->d_name, ".") && strcmp(f->d_name, "..") &&
                    lw_pathf(inner, sizeof inner, "%s/%s", path, f->d_name))
                    unlink(inner);
            if (sub) closedir(sub);
            rmdir(path);
        } else {
            unlink(path);
        }
    }
    closedir(d);
    rmdir(dir);
}

bool lw_run_dir_holds_run(const char *dir, char *what, size_t cap)
{
    char p[4200];
    int steps = 0;
    bool run_json = false, log = false, final = false;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        const char *n = e->d_name;
        if (!strcmp(n, "run.json")) run_json = true;
        else if (!strcmp(n, "train_log.jsonl")) log = true;
        else if (!strcmp(n, "final") && lw_pathf(p, sizeof p, "%s/%s", dir, n) && is_dir(p)) final = true;
        else if (!strncmp(n, "step-", 5) && lw_pathf(p, sizeof p, "%s/%s", dir, n) && is_dir(p)) steps++;
    }
    if (d) closedir(d);
    if (what && cap) {
        snprintf(what, cap, "%s%s%s%s%s%s", run_json ? "run.json" : "", run_json && (log || final || steps) ? ", " : "",
                 log ? "train_log.jsonl" : "", log && (final || steps) ? ", " : "", final ? "final/" : "",
                 final && steps ? ", " : "");
        size_t n = strlen(what);
        if (steps) snprintf(what + n, cap - n, "%d step-N/ folder%s", steps, steps > 1 ? "s" : "");
    }
    return run_json || log || final || steps;
}

/* Removes what a killed writer left (we hold the lock: nobody writes them). */
static void remove_leftovers(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[4200];
    while (d && (e = readdir(d)))
        if (is_leftover(e->d_name) && lw_pathf(p, sizeof p, "%s/%s", dir, e->d_name)) lw_remove_tree(p);
    if (d) closedir(d);
}

/* Moves every entry of dir but the lock into a new sibling folder. */
static lw_status move_aside(lw_run_dir *r)
{
    char stamp[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
    size_t len = strlen(r->path);
    while (len > 1 && r->path[len - 1] == '/') len--;
    for (int k = 1;; k++) {
        bool fits = k == 1 ? lw_pathf(r->moved_to, sizeof r->moved_to, "%.*s.replaced-%s", (int)len, r->path, stamp)
                           : lw_pathf(r->moved_to, sizeof r->moved_to, "%.*s.replaced-%s-%d", (int)len, r->path,
                                      stamp, k);
        if (!fits) return lw_fail(LW_ERR_INVALID, "%s: path too long to move the old run aside", r->path);
        if (mkdir(r->moved_to, 0755) == 0) break;
        if (errno != EEXIST || k > 100)
            return lw_fail(LW_ERR_IO, "%s: cannot create %s to move the old run into: %s", r->path, r->moved_to,
                           strerror(errno));
    }
    DIR *d = opendir(r->path);
    if (!d) return lw_fail(LW_ERR_IO, "%s: cannot list: %s", r->path, strerror(errno));
    struct dirent *e;
    char from[4400], to[4400];
    lw_status st = LW_OK;
    while (!st && (e = readdir(d))) {
        const char *n = e->d_name;
        if (!strcmp(n, ".") || !strcmp(n, "..") || !strcmp(n, ".lock")) continue;
        if (!lw_pathf(from, sizeof from, "%s/%s", r->path, n) || !lw_pathf(to, sizeof to, "%s/%s", r->moved_to, n))
            st = lw_fail(LW_ERR_INVALID, "%s: path too long", r->path);
        else if (rename(from, to) != 0)
            st = lw_fail(LW_ERR_IO, "%s: cannot move %s aside to %s: %s (the rest of the old run is in %s)",
                         r->path, n, r->moved_to, strerror(errno), r->path);
    }
    closedir(d);
    return st;
}

static void read_holder(int fd, char *buf, size_t cap)
{
    ssize_t n = pread(fd, buf, cap - 1, 0);
    buf[n > 0 ? n : 0] = 0;
    char *nl = strchr(buf, '\n');
    if (nl) *nl = 0;
}

lw_status lw_run_dir_open(lw_run_dir *r, const char *path, lw_run_mode mode)
{
    memset(r, 0, sizeof *r);
    r->lock_fd = -1;
    if (!lw_pathf(r->path, sizeof r->path, "%s", path)) return lw_fail(LW_ERR_INVALID, "%s: path too long", path);
    lw_status st = lw_mkdir_p(path);
    if (st) return st;
    char lock[4200], holder[256];
    if (!lw_pathf(lock, sizeof lock, "%s/.lock", path)) return lw_fail(LW_ERR_INVALID, "%s: path too long", path);
    int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return lw_fail(LW_ERR_IO, "%s: cannot open: %s", lock, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        read_holder(fd, holder, sizeof holder);
        close(fd);
        if (e == EWOULDBLOCK)
            return lw_fail(LW_ERR_INVALID, "%s is being written by another run (%s; lock %s): wait for it to end "
                           "or choose another --out", path, *holder ? holder : "holder unknown", lock);
        return lw_fail(LW_ERR_IO, "%s: cannot lock: %s", lock, strerror(e));
    }
    read_holder(fd, r->stale_holder, sizeof r->stale_holder);   /* a holder still named there died holding it */
    r->lock_fd = fd;
    char host[128] = "?", stamp[32];
    gethostname(host, sizeof host - 1);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
    int n = snprintf(holder, sizeof holder, "pid %d on host %s since %s\n", (int)getpid(), host, stamp);
    if (ftruncate(fd, 0) != 0 || pwrite(fd, holder, (size_t)n, 0) != n) {
        st = lw_fail(LW_ERR_IO, "%s: cannot write the lock's holder: %s", lock, strerror(errno));
        lw_run_dir_close(r);
        return st;
    }
    remove_leftovers(path);
    char what[256];
    if (lw_run_dir_holds_run(path, what, sizeof what)) {
        if (mode == LW_RUN_NEW)
            st = lw_fail(LW_ERR_INVALID, "%s already holds a run (%s): continue it with --resume %s/<checkpoint>, "
                         "or replace it with --force (the old run is moved aside, not deleted)", path, what, path);
        else if (mode == LW_RUN_FORCE)
            st = move_aside(r);
    }
    if (st) lw_run_dir_close(r);
    return st;
}

void lw_run_dir_close(lw_run_dir *r)
{
    if (r->lock_fd >= 0) {
        if (ftruncate(r->lock_fd, 0) != 0) { /* the lock goes with the close all the same */ }
        close(r->lock_fd);
    }
    r->lock_fd = -1;
}

lw_status lw_checkpoint_temp_dir(const char *dir, const char *name, char *tmp, size_t cap)
{
    lw_status st = lw_mkdir_p(dir);
    if (st) return st;
    if (!lw_pathf(tmp, cap, "%s/.%s.tmp-XXXXXX", dir, name))
        return lw_fail(LW_ERR_INVALID, "%s: checkpoint path too long", dir);
    if (!mkdtemp(tmp) || chmod(tmp, 0755) != 0)   /* mkdtemp's 0700 would hide it from the group */
        return lw_fail(LW_ERR_IO, "%s: cannot create a folder for checkpoint %s: %s", dir, name, strerror(errno));
    return LW_OK;
}

lw_status lw_checkpoint_publish(const char *tmp, const char *dest)
{
    if (rename(tmp, dest) == 0) return LW_OK;   /* the usual case: dest is new */
    int e = errno;
    if (e == EEXIST || e == ENOTEMPTY || e == EISDIR) {
        /* dest holds an older checkpoint of that name: swap the two in one
         * step, then remove the old one (now under tmp's name) */
        if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dest, RENAME_EXCHANGE) == 0) {
            lw_remove_tree(tmp);
            return LW_OK;
        }
        e = errno;
    }
    lw_remove_tree(tmp);
    return lw_fail(LW_ERR_IO, "cannot move the checkpoint into %s: %s (what was there is unchanged)", dest,
                   strerror(e));
}
