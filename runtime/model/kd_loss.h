/* k-token knowledge distillation at the verbalizer positions (issue 21
 * item 3; docs/objectives.md): the teacher is the receiver reading the
 * text, its distribution at each of the gold verbalizer's L positions kept
 * as its top-k tokens (ids and probabilities at temperature T, renormalised
 * over those k). The student is the same receiver reading the soft tokens,
 * teacher-forced on the same verbalizer. Over the teacher's set S of a
 * position, with q = softmax(z_S / T) the student's logits z restricted to
 * S,
 *
 *   term = W * T^2 * (1/L) * sum_positions KL(p || q)
 *   d term / d z_j = W * T / L * (q_j - p_j)   for j in S, 0 elsewhere
 *
 * (the T^2 of Hinton et al. keeps the gradient's size independent of T).
 * Restricting both to S keeps the cache small (k values a position, not
 * the vocabulary) and is exact when k is the vocabulary. */
#ifndef LW_KD_LOSS_H
#define LW_KD_LOSS_H

typedef struct {
    int L;             /* verbalizer positions (the gold label's verb_len) */
    int k;             /* tokens per position */
    const int *ids;    /* [L, k] vocabulary ids, distinct within a position */
    const float *p;    /* [L, k] teacher probabilities, each row summing to 1 */
    float weight;      /* W */
    float temp;        /* T > 0 */
} lw_kd_target;

/* The term for the student's logits [L, V]. */
double lw_kd_loss(const lw_kd_target *kd, const float *logits, int V);
/* dlogits [L, V] += scale * d term / d logits. */
void lw_kd_backward(const lw_kd_target *kd, const float *logits, int V, float scale, float *dlogits);

#endif
