/* The ranges of the training options, in one table read by both the
 * manifest validator ("train" block) and lw train's command line, so the
 * two accept the same values and refuse the others with the same words. */
#ifndef LW_TRAIN_RULES_H
#define LW_TRAIN_RULES_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    const char *key;    /* the manifest's train.<key> */
    const char *flag;   /* lw train's option, "--lr" */
    bool integer;       /* an integer (else any finite number) */
    double lo, hi;      /* the range; lo excluded when lo_open */
    bool lo_open;
} lw_train_rule;

/* The rule of train.<key>, or NULL if there is none. */
const lw_train_rule *lw_train_rule_find(const char *key);

/* "a number in (0, 1]", "an integer from 1 to 65536". */
void lw_train_rule_expect(const lw_train_rule *r, char *buf, size_t cap);

/* Whether x is an allowed value (finite, in range, integral if required). */
bool lw_train_rule_allows(const lw_train_rule *r, double x);

/* The shared refusal: "1e+09 is out of range; expected a number in (0, 1]". */
void lw_train_rule_refusal(const lw_train_rule *r, double x, char *buf, size_t cap);

#endif
