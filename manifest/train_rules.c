#include "train_rules.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* lr above 1 is never a learning rate for AdamW on these models (it
 * reaches a NaN within steps); the integer caps keep every product of them
 * (batch x grad_accum, steps x that) inside the sampler's long. seed stops
 * at 2^53 so that it survives a trip through JSON numbers. */
static const lw_train_rule rules[] = {
    {"lr", "--lr", false, 0, 1, true},
    {"steps", "--steps", true, 1, 100000000, false},
    {"batch", "--batch", true, 1, 65536, false},
    {"grad_accum", "--grad-accum", true, 1, 65536, false},
    {"warmup_steps", "--warmup", true, 0, 100000000, false},
    {"weight_decay", "--weight-decay", false, 0, 10, false},
    {"grad_clip", "--grad-clip", false, 0, 1e6, false},
    {"diversity_weight", "--diversity", false, 0, 1e6, false},
    {"seed", "--seed", true, 0, 9007199254740992.0, false},
};

const lw_train_rule *lw_train_rule_find(const char *key)
{
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++)
        if (!strcmp(rules[i].key, key)) return &rules[i];
    return NULL;
}

void lw_train_rule_expect(const lw_train_rule *r, char *buf, size_t cap)
{
    if (r->integer) snprintf(buf, cap, "an integer from %.0f to %.0f", r->lo, r->hi);
    else snprintf(buf, cap, "a number in %c%g, %g]", r->lo_open ? '(' : '[', r->lo, r->hi);
}

bool lw_train_rule_allows(const lw_train_rule *r, double x)
{
    if (!isfinite(x) || x > r->hi || x < r->lo || (r->lo_open && x == r->lo)) return false;
    return !r->integer || x == floor(x);
}

void lw_train_rule_refusal(const lw_train_rule *r, double x, char *buf, size_t cap)
{
    char expect[96];
    lw_train_rule_expect(r, expect, sizeof expect);
    snprintf(buf, cap, "%g is out of range; expected %s", x, expect);
}
