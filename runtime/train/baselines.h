/* The untrained baselines of `lw eval --method M`: the same task, data and
 * label scoring as the bridge, with the input handed over as text.
 *
 *   sender-zeroshot    the sender classifies the text itself
 *   receiver-zeroshot  the receiver classifies the text (the ceiling a bridge
 *                      that carried everything would reach)
 *   receiver-kshot     the same with k examples per class of the train split
 *                      in the prompt (seeded), dropped from the end while the
 *                      prompt does not fit (the query is never cut)
 *   text-relay         the sender summarises the text in at most relay_tokens
 *                      tokens (greedy); the receiver classifies the summary
 *   cot-relay          the sender writes its reasoning about which label
 *                      applies; the receiver classifies that
 *   token-budget       the receiver sees only the first M text tokens: as many
 *                      as the bridge sends soft tokens
 *
 * A model reads (receiver_input.h with the text where the soft tokens go):
 *   [template head, primer, "\n"] [shots] [text] [end of turn, assistant
 *   prefix, answer prompt]
 * each piece tokenized on its own; a shot is
 *   text "\n" answer_prompt verbalizer "\n\n".
 * A label is the argmax of its verbalizer's summed log-probs after the prompt
 * (label_scoring.h), or with `generate` the first verbalizer (trimmed, any
 * case) found in up to LW_BASELINE_GEN_TOKENS greedy tokens; none found is
 * "unparsed" (pred -1). */
#ifndef LW_BASELINES_H
#define LW_BASELINES_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "dataset.h"
#include "label_scoring.h"
#include "manifest.h"
#include "model.h"
#include "receiver_input.h"
#include "status.h"
#include "task.h"
#include "tokenizer.h"

typedef enum {
    LW_BASELINE_SENDER_ZEROSHOT,
    LW_BASELINE_RECEIVER_ZEROSHOT,
    LW_BASELINE_RECEIVER_KSHOT,
    LW_BASELINE_TEXT_RELAY,
    LW_BASELINE_COT_RELAY,
    LW_BASELINE_TOKEN_BUDGET,
    LW_BASELINE_COUNT
} lw_baseline_method;

enum { LW_BASELINE_GEN_TOKENS = 8, LW_BASELINE_DEFAULT_CONTEXT = 2048 };

/* The method called name, or -1 if name is not a baseline. */
int lw_baseline_from_name(const char *name);
const char *lw_baseline_name(lw_baseline_method m);

typedef struct {
    int k;                     /* receiver-kshot: examples per class */
    uint64_t seed;             /* receiver-kshot: which ones */
    int relay_tokens;          /* relays: most tokens the sender writes */
    const char *relay_prompt;  /* relays: NULL = the method's default */
    int budget_tokens;         /* token-budget: text tokens kept (the pair's M) */
    bool generate;             /* classify by generation + parsing */
    int max_context;           /* positions a prompt may use; 0 = min(model context, DEFAULT_CONTEXT) */
    bool verbose;              /* prompts of the first examples and every output to stderr */
    bool quiet;                /* no progress line */
} lw_baseline_options;

lw_baseline_options lw_baseline_defaults(void);

typedef struct {
    int pred;                  /* label index; -1 = unparsed (generate) */
    int prompt_tokens;         /* tokens of the classifying prompt */
    int shots;                 /* k-shot examples in it */
    int gen_tokens;            /* relays: tokens the sender wrote */
    int payload_bytes;         /* relays: UTF-8 bytes of the relayed text */
    double seconds;
} lw_baseline_result;

/* One model reading text: the task's prompt pieces and verbalizers in its
 * tokens, its stop ids, and a scorer. model and tok stay the caller's. */
typedef struct {
    const lw_model *model;
    const lw_tokenizer *tok;
    lw_receiver_layout layout;     /* M unused */
    lw_label_scorer scorer;
    int stop_ids[LW_MAX_SPECIAL + 1], n_stop;
    const char *role;              /* "sender" / "receiver": messages */
} lw_text_model;

lw_status lw_text_model_init(lw_text_model *t, const lw_model *m, const lw_tokenizer *tok, const lw_task *task,
                             int max_context, const char *role);
void lw_text_model_free(lw_text_model *t);

/* The k-shot examples: train indices, labels and token ids, in prompt order
 * (rounds of one example per class, classes shuffled in each round). */
typedef struct {
    int n;
    int *example, *label, *len;
    int **ids;
} lw_shots;

lw_status lw_shots_pick(lw_shots *s, const lw_text_model *t, const lw_task *task, const lw_dataset *train, int k,
                        uint64_t seed);
void lw_shots_free(lw_shots *s);

/* The classifying prompt for text: the first shots that fit with room
 * positions to spare after it (max_context), the text cut to its first
 * budget tokens when budget > 0. *ids is malloc'd; *n_shots gets how many
 * shots it holds. Fails if the prompt does not fit with no shot. */
lw_status lw_baseline_prompt(const lw_text_model *t, const lw_shots *shots, const char *text, int budget, int room,
                             int **ids, int *n, int *n_shots);

/* The label whose trimmed verbalizer occurs first in output (any ASCII
 * case; at one position the longest wins), or -1. */
int lw_baseline_parse_label(const lw_task *task, const char *output);

/* The method families; out[d->n]. */
lw_status lw_baseline_zeroshot(lw_text_model *t, const lw_task *task, const lw_dataset *d, int budget,
                               const lw_baseline_options *o, lw_baseline_result *out);
lw_status lw_baseline_kshot(lw_text_model *t, const lw_task *task, const lw_dataset *train, const lw_dataset *d,
                            const lw_baseline_options *o, lw_baseline_result *out);
lw_status lw_baseline_relay(lw_text_model *sender, lw_text_model *receiver, const lw_task *task, const lw_dataset *d,
                            bool cot, const lw_baseline_options *o, lw_baseline_result *out);

/* What sender writes for one text (relays): malloc'd, trimmed. */
lw_status lw_baseline_relay_text(lw_text_model *sender, const lw_task *task, const char *text, bool cot,
                                 const lw_baseline_options *o, char **relayed, int *gen_tokens);

/* lw eval's hook: loads the models the method needs from m, runs it on d
 * (train_path, train_sel: the k-shot pool) and writes pred[d->n], an unparsed example
 * as a wrong label so accuracy counts it wrong. *extra gets the JSON fields
 * to add: method options, mean prompt tokens, relay tokens and bytes,
 * unparsed count. */
lw_status lw_baseline_predict(const lw_manifest *m, const lw_task *task, const lw_dataset *d, const char *train_path,
                              const lw_subset *train_sel, lw_baseline_method method, const lw_baseline_options *o,
                              int *pred, json_t **extra);

/* The JSON fields of a run (what lw_baseline_predict returns in *extra). */
json_t *lw_baseline_json(lw_baseline_method method, const lw_baseline_options *o, const lw_baseline_result *r,
                         int n);

#endif
