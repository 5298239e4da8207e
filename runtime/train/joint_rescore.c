/* Picking the candidate both readers score best. */
#include "joint_rescore.h"

#include <math.h>
#include <stddef.h>

lw_status lw_joint_rescore(const double *scores, int n_readers, int n_cand, const int *owner, lw_joint_pick *out)
{
    if (n_readers < 1 || n_readers > LW_JOINT_MAX_READERS || n_cand < 1)
        return lw_fail(LW_ERR_INVALID, "joint rescoring: %d readers (1..%d), %d candidates", n_readers,
                       LW_JOINT_MAX_READERS, n_cand);
    for (int c = 0; c < n_cand; c++)
        if (owner[c] < 0 || owner[c] >= n_readers)
            return lw_fail(LW_ERR_INVALID, "joint rescoring: candidate %d proposed by reader %d of %d", c, owner[c],
                           n_readers);
    out->joint = -1;
    out->joint_score = -INFINITY;
    for (int r = 0; r < LW_JOINT_MAX_READERS; r++) out->alone[r] = -1;
    double best_alone[LW_JOINT_MAX_READERS];
    for (int r = 0; r < n_readers; r++) best_alone[r] = -INFINITY;
    for (int c = 0; c < n_cand; c++) {
        double sum = 0.0;
        for (int r = 0; r < n_readers; r++) {
            double s = scores[(size_t)r * n_cand + c];
            sum += isfinite(s) ? s : -INFINITY;
        }
        if (isfinite(sum) && sum > out->joint_score) out->joint_score = sum, out->joint = c;
        int o = owner[c];
        double s = scores[(size_t)o * n_cand + c];
        if (isfinite(s) && s > best_alone[o]) best_alone[o] = s, out->alone[o] = c;
    }
    if (out->joint < 0) return lw_fail(LW_ERR_INVALID, "joint rescoring: no candidate has a finite score from every reader");
    return LW_OK;
}
