/* lw eval on a generate or choice task (task.h) with the text itself: one
 * model of the pair reads each row's prompt and
 *
 *   generate: writes up to the task's max_new_tokens greedily (stopping at
 *             its end-of-turn / EOS ids); the text, its first non-empty line
 *             when the task says first_line, trimmed, is scored by the
 *             task's metric (SQuAD EM/F1, GSM8K's last number);
 *   choice:   every choice is scored by the model's log-prob of
 *             choice_prefix + choice right after the prompt (summed, or
 *             divided by its token count: choice_score "mean"); the argmax
 *             is the prediction.
 *
 * The model reads its chat template's user turn holding the prompt, then
 * the assistant prefix and the task's answer prompt (what the classification
 * baselines read, baselines.h); pieces tokenized with add_special = false
 * (the template text carries BOS).
 *
 * Methods: receiver-text (alias receiver-zeroshot) and sender-text (alias
 * sender-zeroshot); token-budget (alias receiver-token-budget) and
 * sender-token-budget: the same reader, the task's budget_field (SQuAD's
 * context) cut to its FIRST `budget` tokens in that reader's tokenizer (the
 * field tokenized alone, the kept ids decoded back and the prompt filled
 * again), the rest of the prompt (instruction, question) whole: the text
 * baseline at the soft tokens' M. The others need labels or a training
 * split of the same kind and are refused by name (lw_answer_method); the
 * bridge on answers is bridge_answer_run.h's. */
#ifndef LW_ANSWER_EVAL_H
#define LW_ANSWER_EVAL_H

#include <stdbool.h>

#include "answer_data.h"
#include "manifest.h"
#include "status.h"
#include "task.h"

/* HotpotQA's ten paragraphs reach about 2,500 tokens: more than the 2048
 * positions the classification baselines default to. */
enum { LW_ANSWER_DEFAULT_CONTEXT = 4096 };

typedef struct {
    bool sender;          /* the sender reads, else the receiver */
    int max_context;      /* positions; 0 = min(LW_ANSWER_DEFAULT_CONTEXT, the model's context) */
    bool verbose;         /* the first prompts and every answer to stderr */
    bool quiet;           /* no progress line */
    int budget;           /* > 0: the token budget (the budget_field cut to this many tokens) */
} lw_answer_options;

typedef struct {
    double em, f1;        /* squad_em_f1 */
    double correct;       /* gsm8k_number, choice: 0 or 1 */
    int pred;             /* choice: the chosen index */
    char *answer;         /* generate: the scored text (malloc'd) */
    int prompt_tokens, gen_tokens;
    int field_tokens;     /* token budget: the budget_field's tokens before the cut */
    double seconds;
} lw_answer_result;

/* Which model a method name means for an answer task: 1 sender, 0 receiver,
 * plus LW_ANSWER_BUDGET for the token budget; -1 (with lw_fail saying why
 * and what applies) for any other method. */
enum { LW_ANSWER_BUDGET = 2 };
int lw_answer_method(const lw_task *task, const char *method);

/* Runs the model of o over d into out[d->n]; free with lw_answer_results_free. */
lw_status lw_answer_run(const lw_manifest *m, const lw_task *task, const lw_answer_data *d,
                        const lw_answer_options *o, lw_answer_result *out);
void lw_answer_results_free(lw_answer_result *r, int n);

/* lw eval's path for generate and choice tasks (cmd_eval_answer.c): its own
 * options, the table and the JSON. task is loaded; returns an exit code. */
int lw_cmd_eval_answer(const lw_manifest *m, const lw_task *task, int argc, char **argv);
#endif
