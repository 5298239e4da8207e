/* A training run's folder (--out): one writer at a time, never two runs
 * mixed in it, checkpoints that appear whole or not at all.
 *
 * lw_run_dir_open takes DIR/.lock with flock(2) and writes the holder
 * ("pid N on host H since T") into it, so a second writer is refused with
 * the first one's name; the kernel drops the lock when its process ends, so
 * a lock left by a killed run is stale, found so, and taken over (the old
 * holder is named in d->stale_holder). The lock file stays, emptied, when
 * the run ends.
 *
 * A folder that already holds a run (run.json, train_log.jsonl, final/ or
 * step-N/) is refused for a new run; LW_RUN_RESUME continues it;
 * LW_RUN_FORCE moves everything in it to a sibling DIR.replaced-<time>/
 * (d->moved_to) first. Leftovers of a writer that was killed (the hidden
 * temporary checkpoint folders and *.tmp.* files below) are removed once the
 * lock is held, since nobody else can be writing them. */
#ifndef LW_RUN_DIR_H
#define LW_RUN_DIR_H

#include <stdbool.h>
#include <stddef.h>

#include "status.h"

typedef enum { LW_RUN_NEW, LW_RUN_RESUME, LW_RUN_FORCE } lw_run_mode;

typedef struct {
    int lock_fd;              /* -1: not held */
    char path[4096];
    char moved_to[4096];      /* LW_RUN_FORCE: where the old run went; "" if there was none */
    char stale_holder[256];   /* the holder of a stale lock that was taken over; "" if none */
} lw_run_dir;

lw_status lw_run_dir_open(lw_run_dir *d, const char *path, lw_run_mode mode);
void lw_run_dir_close(lw_run_dir *d);

/* Whether dir holds a run; what (if not NULL) gets a short list of what it
 * holds ("run.json, final/, 3 step folders"). */
bool lw_run_dir_holds_run(const char *dir, char *what, size_t cap);

/* Checkpoints: a fresh hidden folder DIR/.<name>.tmp-XXXXXX to write one
 * into, then lw_checkpoint_publish swaps it in as DIR/<name> in one
 * rename(2) (an older DIR/<name> is exchanged out and removed), so a reader
 * or a crash never sees a half-written checkpoint under its name. */
lw_status lw_checkpoint_temp_dir(const char *dir, const char *name, char *tmp, size_t cap);
lw_status lw_checkpoint_publish(const char *tmp, const char *dest);

/* Removes a folder and what it holds (checkpoint folders are flat; one level
 * of subfolders is removed too). */
void lw_remove_tree(const char *dir);

#endif
