/* The sender's layer-l hidden states of every example of a data file, kept
 * on disk so that training and evaluation run the sender once per example,
 * not once per epoch or per run.
 *
 * Each example's rows are what a lw_sender_source gives: lw_sender_cache_get
 * (sender_states.h) fills the cache with lw_sender_run_states (the text in
 * the sender's chat template, the rows after the template's head, at most
 * LW_SENDER_MAX_TOKENS). The cache itself runs no model: it stands below the
 * sender run, and what trains or evaluates on cached states needs only it.
 *
 * One file per (sender weights, layer, prompt format, data file):
 *   <cache_dir>/<data file stem>.L<layer>.<key hex>.states
 * The key hashes the weights file's size and mtime, the tokenizer file's
 * size and mtime, the layer, the chat template, the prompt format version,
 * the data file's absolute path, size and mtime, and the dataset's
 * subset_key when it is a stratified subset (dataset.h). A file covers the
 * first n examples of the data file (or of that subset); a run needing more
 * rebuilds it. Written to a
 * temporary name then renamed, so a reader sees a whole file or none.
 *
 * Layout (host byte order, little-endian on every machine we build for):
 *   "LWSC0001"  u64 key  u32 n  u32 hidden
 *   n x { u64 offset  u32 tokens  u32 zero }   offsets into the file
 *   the float32 rows [tokens, hidden] of each example
 * Every offset and count is checked against the file's size when opened. */
#ifndef LW_SENDER_CACHE_H
#define LW_SENDER_CACHE_H

#include <stdint.h>

#include "dataset.h"
#include "model_config.h"
#include "status.h"

/* The rows a sender run keeps of one text, and so a cache entry holds, at most. */
enum { LW_SENDER_MAX_TOKENS = 512 };

typedef struct {
    int n;               /* examples */
    int hidden;
    int *tokens;         /* [n] rows per example */
    uint64_t *offset;    /* [n] file offsets (file mode) or float offsets into mem */
    int fd;              /* -1 in memory mode */
    float *mem;          /* memory mode: every example's rows back to back */
    char path[4096];
} lw_sender_cache;

/* What fills a cache file: open (called only when a file must be built),
 * then states for each example's text in turn (*rows [*T, hidden], valid
 * until the next call), then close (always called after open, even when open
 * failed). */
typedef struct {
    void *ctx;
    lw_status (*open)(void *ctx);
    lw_status (*states)(void *ctx, const char *text, const float **rows, int *T);
    void (*close)(void *ctx);
} lw_sender_source;

/* Opens the cache file for data_path's first d->n examples, building it
 * from src if it is missing, stale or too short. cache_dir is created if
 * needed. Progress goes to stderr unless quiet. lw_sender_cache_get
 * (sender_states.h) calls it with the sender itself as the source. */
lw_status lw_sender_cache_get_from(const lw_model_config *sender, int layer, const char *data_path,
                                   const lw_dataset *d, const char *cache_dir, int quiet,
                                   const lw_sender_source *src, lw_sender_cache *out);

/* An in-memory cache (tests, synthetic runs): tokens[n] rows per example,
 * zero-filled; fill c->mem + c->offset[i] with example i's rows. */
lw_status lw_sender_cache_init_memory(lw_sender_cache *c, int n, int hidden, const int *tokens);

/* Example i's rows into *buf (grown as needed, capacity *cap floats);
 * *T gets the row count. */
lw_status lw_sender_cache_read(const lw_sender_cache *c, int i, float **buf, size_t *cap, int *T);

void lw_sender_cache_close(lw_sender_cache *c);

#endif
