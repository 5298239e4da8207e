/* The tiny rig the answer-trained runs' tests share (the pair's bridge on
 * answers, tests/check_bridge_answer_run.c; the interlingua,
 * tests/check_interlingua_run.c): a pair's manifest with its sender and
 * receiver made tiny random models of the same families (random mode: byte
 * tokenizers, no stop ids) keeping their chat templates, SQuAD's task file,
 * and three SQuAD-shaped rows written to a scratch file and loaded. */
#ifndef TL_ANSWER_RIG_H
#define TL_ANSWER_RIG_H

#include "answer_data.h"
#include "manifest.h"
#include "task.h"

extern const char *const TL_SQUAD_ROWS;

/* c becomes a tiny random model of the family the pair names (which 0:
 * the llama-like sender, 1: the Gemma-like receiver), with c's chat
 * template, vocab 300 (the byte tokenizer's 259 ids fit), context 512 and
 * embed_rms 1; its weights drawn from seed. */
void tl_tiny_reader(lw_model_config *c, int which, uint64_t seed);

typedef struct {
    lw_manifest *m;
    lw_task task;
    lw_answer_data d;
    char rows[600];   /* the rows' file */
} tl_answer_rig;

/* pair: a manifest under the source tree ("pairs/..."); tmp: the scratch
 * folder's name; the readers' weights from sender_seed and receiver_seed. */
void tl_answer_rig_open(tl_answer_rig *f, const char *pair, const char *tmp, uint64_t sender_seed,
                        uint64_t receiver_seed);
void tl_answer_rig_close(tl_answer_rig *f);

#endif
