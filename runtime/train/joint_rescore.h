/* Joint rescoring (issue #24 item 3): every reader proposes candidate
 * answers, every reader scores every candidate given its own view of the
 * same latents (the length-normalised log-prob: the mean log-prob per token
 * of the candidate in that reader's tokenization), and the candidate with
 * the best sum over readers wins.
 *
 * Reported beside it, each reader alone: its best-scored candidate among
 * those it proposed itself (with one greedy candidate, its greedy answer).
 * Ties go to the lower index (candidates keep the order they were
 * proposed in, reader 0's first). A score that is not finite (a candidate a
 * reader cannot tokenize, an empty answer) counts as -inf; a candidate
 * with -inf from any reader cannot win jointly. */
#ifndef LW_JOINT_RESCORE_H
#define LW_JOINT_RESCORE_H

#include "status.h"

enum { LW_JOINT_MAX_READERS = 4 };

typedef struct {
    int alone[LW_JOINT_MAX_READERS];   /* each reader's pick (-1: it proposed nothing scorable) */
    int joint;                         /* the summed pick */
    double joint_score;                /* its summed score */
} lw_joint_pick;

/* scores[r * n_cand + c]: reader r's score of candidate c; owner[c]: the
 * reader that proposed c. Fails when no candidate has a finite sum. */
lw_status lw_joint_rescore(const double *scores, int n_readers, int n_cand, const int *owner, lw_joint_pick *out);

#endif
