/* The trained baselines of `lw train/eval --method`: the receiver reads the
 * TEXT (no sender, no bridge) and something small is trained on it with the
 * bridge's loss, optimiser, schedule and sampler (train.h):
 *
 *   prompt-tuning  M free soft tokens P [M, hidden] (Lester et al. 2021) sit
 *                  before the text inside the receiver's prompt:
 *                    [before] [P] [text] [after] [verbalizer]
 *                  (the text prompt of the receiver-zeroshot baseline,
 *                  baselines.h, with P where the bridge's soft tokens would
 *                  go). P starts as the input embeddings of M token ids drawn
 *                  uniformly from the vocabulary by the seed (as the model
 *                  sees them, embed scale included). No weight decay on P:
 *                  it is an embedding, and decay would pull it off the
 *                  embedding scale.
 *   lora           LoRA on the receiver (lora.h; default rank 8 on q, v of
 *                  every layer), reading [before] [text] [after] [verbalizer].
 *
 * An example is the receiver-zeroshot prompt's ids (lw_baseline_prompt with
 * no shots: n_before template ids, then the text, then the tail); the loss
 * is the mean cross-entropy of the gold verbalizer's tokens (teacher
 * forcing); a label is scored by its verbalizer's summed log-probs, as
 * everywhere else.
 *
 * Checkpoint folder (step-N/, final/), each file written atomically:
 *   prompt-tuning: prompt.safetensors ("prompt" [M, hidden], metadata
 *                  "method") and prompt_state.safetensors (AdamW moments and
 *                  step);
 *   lora:          lora.safetensors and lora_state.safetensors (adapter_set.h).
 * The step of a checkpoint is its optimiser's step count. A resumed run
 * continues bit for bit (same seed, same BLAS thread count). */
#ifndef LW_TRAIN_TEXT_H
#define LW_TRAIN_TEXT_H

#include <stdbool.h>
#include <stdint.h>

#include "adapter_set.h"
#include "adapters.h"
#include "dataset.h"
#include "manifest.h"
#include "model.h"
#include "receiver_input.h"
#include "receiver_pass.h"
#include "status.h"
#include "task.h"
#include "train_options.h"

typedef enum { LW_TEXT_PROMPT_TUNING, LW_TEXT_LORA } lw_text_method;

/* "prompt-tuning" -> LW_TEXT_PROMPT_TUNING, "lora" -> LW_TEXT_LORA, else -1. */
int lw_text_method_from_name(const char *name);
const char *lw_text_method_name(lw_text_method m);

typedef struct {
    const lw_model *receiver;              /* frozen */
    const lw_receiver_layout *layout;      /* n_before and the verbalizers (its M is not used) */
    lw_text_method method;
    int M;                                 /* prompt-tuning: soft tokens; lora: 0 */
    lw_adapter_params prompt;              /* prompt-tuning: "prompt" [M, hidden] */
    lw_adamw opt;                          /* prompt-tuning: AdamW over prompt */
    lw_adapter_set lora;                   /* lora: has_lora */
    uint64_t dropout_seed;                 /* LoRA dropout draw of the next example */
    /* scratch for prompts of up to max_T positions (soft rows and verbalizer included) */
    int max_T;
    lw_receiver_pass rx;
} lw_text_trainer;

/* max_prompt: the longest example prompt (ids, without soft tokens) it will
 * see. lora: the LoRA config (lora only). Parameters are initialised from
 * seed. */
lw_status lw_text_trainer_create(lw_text_trainer *t, const lw_model *receiver, const lw_receiver_layout *layout,
                                 lw_text_method method, int M, const lw_lora_config *lora, int max_prompt,
                                 uint64_t seed);
void lw_text_trainer_free(lw_text_trainer *t);
size_t lw_text_trainer_n_params(const lw_text_trainer *t);

/* Forward and backward of one example (ids[n]: the text prompt); adds
 * scale * d(loss)/d(params) to the grads. *loss and *correct (the gold
 * label's first verbalizer token outscores the others') may be NULL. */
lw_status lw_text_trainer_example(lw_text_trainer *t, const int *ids, int n, int label, float scale, float *loss,
                                  bool *correct);
/* The loss alone, dropout off (what the finite-difference test probes). */
lw_status lw_text_trainer_loss(lw_text_trainer *t, const int *ids, int n, int label, float *loss);
/* scores[n_labels]: the summed log-probs of each label's verbalizer. */
lw_status lw_text_trainer_score(lw_text_trainer *t, const int *ids, int n, double *scores);

/* The trainable parameters and their gradients as one list of spans (for
 * tests): the prompt, or LoRA's flat buffer. */
float *lw_text_trainer_params(lw_text_trainer *t, float **grads, size_t *n);
void lw_text_trainer_zero_grad(lw_text_trainer *t);
/* n examples (prompt ids and lengths, labels, the LoRA dropout draws) as
 * lw_text_trainer_example does them one by one; prompt tuning packs them
 * into one receiver pass when it can (receiver_pass.h). losses[n], correct[n]. */
lw_status lw_text_trainer_examples(lw_text_trainer *t, const int *const *ids, const int *n_ids, const int *labels,
                                   const uint64_t *dropout_seeds, int n, float scale, float *losses, bool *correct);

/* Checkpoint files in dir (see above); load also restores the optimiser
 * state, and *step its step count. */
lw_status lw_text_trainer_save(const lw_text_trainer *t, const char *dir);
lw_status lw_text_trainer_load(lw_text_trainer *t, const char *dir, long *step);
/* The M of a prompt-tuning checkpoint folder (from the tensor's shape). */
lw_status lw_text_checkpoint_soft_tokens(const char *dir, int *M);
/* For evaluation: replaces the trainer's parameters with the weights of
 * checkpoint dir (the LoRA config comes from the file's metadata). */
lw_status lw_text_trainer_open(lw_text_trainer *t, const char *dir);

/* Text prompts, one per example: ids[i][len[i]]. */
typedef struct {
    int n, max_len;
    int **ids, *len;
} lw_text_prompts;
void lw_text_prompts_free(lw_text_prompts *p);

/* The training loop of train.h over text prompts (o->cfg.diversity_weight
 * is ignored). */
lw_status lw_text_train_run(lw_text_trainer *t, const lw_text_prompts *prompts, const lw_dataset *data,
                            const lw_train_options *o, lw_train_result *r);

/* What lw train / lw eval call: load the receiver of m and its tokenizer,
 * tokenize data as the receiver-zeroshot baseline does, then train (fresh
 * or resumed as o says) or predict pred[data->n] from checkpoint dir
 * (*M gets the soft tokens, 0 for lora). */
lw_status lw_text_method_train(const lw_manifest *m, const lw_task *task, const lw_dataset *data,
                               lw_text_method method, int M, const lw_lora_config *lora, const lw_train_options *o,
                               lw_train_result *r);
lw_status lw_text_method_predict(const lw_manifest *m, const lw_task *task, const lw_dataset *data,
                                 lw_text_method method, const char *dir, bool quiet, int *pred, int *M);

#endif
