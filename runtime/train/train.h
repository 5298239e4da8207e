/* Training a bridge on a classification task, on the CPU: the run loop
 * around the trainer of train_example.h (one example's forward and backward,
 * scoring).
 *
 * A fresh run first sets the bridge's input_norm buffers to the per-dimension
 * mean and std of the training set's sender states (every token of every
 * example); a resumed run keeps the checkpoint's.
 *
 * The loop: batch * grad_accum examples per optimiser step (drawn by
 * lw_sampler, uniform or class-balanced), gradients averaged, clipped by
 * global norm, AdamW with linear warmup then cosine decay to 10% of the
 * peak. The whole run is a function of the seed (bridge init, sampler) and
 * of the BLAS thread count (sums may be ordered differently), so the same
 * seed and threads give the same run, and a run resumed from a checkpoint
 * (the sampler is brought to its position with lw_sampler_skip) continues it
 * bit for bit.
 *
 * Outputs under out_dir: step-<N>/ checkpoints every checkpoint_every steps,
 * final/ at the end (checkpoint.h), each written into a hidden folder and
 * swapped in whole (run_dir.h), and only once every value in it is finite;
 * train_log.jsonl, one line a step (train_log.h); run.json.
 *
 * A step whose loss or gradient norm is NaN or infinite never updates the
 * parameters: it stops the run with an error naming the step and the last
 * checkpoint (which stays as it was), or, while fewer than skip_nonfinite
 * steps were skipped, is skipped (logged with "nonfinite": true).
 *
 * Data parallel (o->comm with world W > 1): every rank draws the same
 * global batch and runs example j of a step when j % W is its rank; the
 * gradients (each already scaled by 1/batch of the global batch) and the
 * loss and accuracy counters are summed over the ranks, so every rank
 * clips and steps the same parameters identically. Rank 0's initial
 * parameters are broadcast once; only rank 0 writes the log and the
 * checkpoints; a resumed run loads the same checkpoint on every rank.
 * World 1 runs exactly as without a comm.
 * train_acc counts an example right when its gold label's first verbalizer
 * token outscores the other labels' first tokens (free: no extra forward). */
#ifndef LW_TRAIN_H
#define LW_TRAIN_H

#include "adamw.h"
#include "comm.h"
#include "dataset.h"
#include "rng.h"
#include "sender_cache.h"
#include "status.h"
#include "train_example.h"
#include "train_options.h"

/* out_dir/<name>: the bridge (and t's adapters) with their optimiser
 * state, rng and step, and run_json (the run's run.json text, NULL: none)
 * as <name>/run.json, so a checkpoint folder (final/, best/, step-N/)
 * describes itself wherever it is copied; refused if any value is not
 * finite; written into a hidden folder and swapped in whole (run_dir.h), so
 * out_dir/<name> is always a whole checkpoint, the old one or the new. */
lw_status lw_train_save_checkpoint(const char *out_dir, const char *name, const lw_trainer *t,
                                   const lw_adamw *opt, const lw_rng *rng, long step, const char *run_json);

lw_status lw_train_run(lw_trainer *t, const lw_sender_cache *states, const lw_dataset *data,
                       const lw_train_options *o, lw_train_result *r);

#endif
