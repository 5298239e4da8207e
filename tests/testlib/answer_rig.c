/* The answer-trained runs' shared tiny rig (answer_rig.h). */
#include "answer_rig.h"

#include <stdio.h>
#include <stdlib.h>

#include "testlib.h"
#include "tiny_models.h"

const char *const TL_SQUAD_ROWS =
    "{\"context\": \"The cat sat on the mat in Paris.\", \"question\": \"Where did the cat sit?\","
    " \"answers\": [\"on the mat\"]}\n"
    "{\"context\": \"Denver Broncos won Super Bowl 50.\", \"question\": \"Who won?\", \"answers\": [\"Denver\"]}\n"
    "{\"context\": \"Water boils at 100 degrees.\", \"question\": \"At what temperature?\", \"answers\": [\"100\"]}\n";

void tl_tiny_reader(lw_model_config *c, int which, uint64_t seed)
{
    lw_chat_template tpl = c->chat_template;
    lw_model_config t = which ? tl_tiny_receiver_config(8, false) : tl_tiny_llama_config(LW_WEIGHTS_GGUF);
    t.vocab = 300;     /* the byte tokenizer's 259 ids fit */
    t.context = 512;   /* SmolLM2's template carries a default system prompt; the soft field's text in bytes */
    t.embed_rms = 1.0f;
    t.chat_template = tpl;
    t.load.random_weights = true;
    t.load.seed = seed;
    *c = t;
}

void tl_answer_rig_open(tl_answer_rig *f, const char *pair, const char *tmp, uint64_t sender_seed,
                        uint64_t receiver_seed)
{
    f->m = malloc(sizeof *f->m);
    ck_assert(f->m != NULL);
    ck_assert_msg(lw_manifest_load(tl_src(pair), f->m) == LW_OK, "%s", lw_last_error());
    tl_tiny_reader(&f->m->sender, 0, sender_seed);
    tl_tiny_reader(&f->m->receiver, 1, receiver_seed);
    ck_assert_msg(lw_task_load(tl_src("tasks/squad.json"), &f->task) == LW_OK, "%s", lw_last_error());
    snprintf(f->rows, sizeof f->rows, "%s/rows.jsonl", tl_tmpdir(tmp));
    tl_write_file(f->rows, TL_SQUAD_ROWS);
    ck_assert_msg(lw_answer_data_load(f->rows, &f->task, 0, &f->d) == LW_OK, "%s", lw_last_error());
}

void tl_answer_rig_close(tl_answer_rig *f)
{
    lw_answer_data_free(&f->d);
    lw_task_free(&f->task);
    free(f->m);
    f->m = NULL;
}
