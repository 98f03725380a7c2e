// Math of the support-vector-guided softmax (EasyRec SOFTMAX_CROSS_ENTROPY_WITH_NEGATIVE_MINING,
// spec 6.1), shared by the cpu backend (g++) and the cuda backend (nvcc);
// fusedloss/triton_kernels/sv_softmax.py mirrors it.
//
// Inputs: user u [B, D], item v [B, D], shifts r [K] (values taken mod B). Row i (kept when
// label_i > 0) compares u_i with its positive v_i (slot k = 0) and with the K rolled negatives
// v_{j_k}, j_k = (i - r_k) mod B (slots k = 1..K). With l2n(a) = a * inv(a),
// inv(a) = 1 / sqrt(max(sum a^2, 1e-12)) (or inv = 1 when the embeddings come normalised):
//   cos_k = inv(u_i) inv(v_{j_k}) (u_i . v_{j_k})                    (raw cosine, no margin)
//   c+ = cos_0 - margin;  hard_k = [c+ - cos_k < 0];  h_k = hard_k ? t cos_k + t - 1 : cos_k
//   z = gamma [c+, h_1..h_K];  loss_i = logsumexp(z) - z_0
//   coef_k = d loss_i / d cos_k:  coef_0 = gamma (p_0 - 1),  coef_k = gamma p_k (hard_k ? t : 1)
// with p = softmax(z); the indicator is not differentiated.
//
// Gradients of sum_i w_i loss_i, with G_ik = w_i coef_ik (0 for rows not kept):
//   d/du_i = inv(u_i) (S_u - proj(u_i) (sum_k G_ik cos_ik) l2n(u_i)),  S_u = sum_k G_ik l2n(v_{j_k})
//   d/dv_j = inv(v_j) (S_v - proj(v_j) (sum_(i,k)->j G_ik cos_ik) l2n(v_j)),
//            S_v = sum over the (i, k) that read v_j of G_ik l2n(u_i): (j, 0) and
//            ((j + r_k) mod B, k) for k = 1..K, a gather of K + 1 rows (no atomics).
// proj(a) = [sum a^2 > 1e-12]: the Jacobian of l2n is inv (I - l2n l2n^T), or inv I where the norm
// is clamped. With normalised input embeddings inv = 1 and proj = 0 (the identity).
//
// Kernels: pass 1 per row i reads u_i and the K + 1 rows v_{j_k}, writes the row's loss and mean
// denominator, G and G cos (scratch [B, K + 1] each), inv(u_i), and d/du_i; pass 2 per row j reads
// v_j and the K + 1 rows u_i that read it and writes d/dv_j. Without a gradient pass 1 alone runs.
//
// Row denominators: kept rows count 1 for kMean and [w_i != 0] for kSumByNonzeroWeights (TF's
// SUM_BY_NONZERO_WEIGHTS); the reduced loss is sum_i w_i loss_i / sum of denominators, 0 when that
// is 0 (and sum_i w_i loss_i for kSum).
#pragma once

#include <cmath>

#include "../common/host_device.h"
#include "../common/l2_normalize.h"

namespace fusedloss {
namespace sv_softmax {

using l2n::grad_elem;
using l2n::inv_norm;
using l2n::norm_eps;
using l2n::projects;

enum Reduction : int64_t { kSum = 1, kMean = 2, kSumByNonzeroWeights = 3 };

template <typename acc_t>
struct Params {
  acc_t margin;    // subtracted from the positive cosine
  acc_t gamma;     // logit scale, > 0
  acc_t t;         // hard-negative coefficient, >= 1 in EasyRec (any finite value works)
  bool normalize;  // l2-normalise the embeddings (EasyRec embed_normed = false)
};

// Row i's loss from its K + 1 raw cosines cos[0..K] (cos[0]: the positive). Writes
// coef[k] = scale * d loss / d cos_k (scale: the row weight w_i; pass 0 for a row not kept, which
// then writes zeros and returns 0). Three passes over cos: the maximum logit, the sum, the shares.
template <typename acc_t>
FL_HD acc_t row_loss_coef(const acc_t* cos, acc_t* coef, int64_t K, acc_t scale,
                          const Params<acc_t>& prm) {
  const acc_t c_pos = cos[0] - prm.margin;
  const acc_t z0 = prm.gamma * c_pos;
  acc_t m = z0;
  for (int64_t k = 1; k <= K; ++k) {
    const acc_t c = cos[k];
    const acc_t h = (c_pos - c < acc_t(0)) ? prm.t * c + prm.t - acc_t(1) : c;
    const acc_t z = prm.gamma * h;
    m = z > m ? z : m;
  }
  // s and 1 - p_0 are sums of K + 1 shares, taken in double: sequential float sums grow an error of
  // ~K ulps, which at K in the hundreds exceeded twice torch's (pairwise-summed) error.
  double s = exp(z0 - m);
  for (int64_t k = 1; k <= K; ++k) {
    const acc_t c = cos[k];
    const acc_t h = (c_pos - c < acc_t(0)) ? prm.t * c + prm.t - acc_t(1) : c;
    s += exp(prm.gamma * h - m);
  }
  // loss = m + log s - z0, kept as log s + (m - z0): both terms are >= 0.
  const acc_t loss = static_cast<acc_t>(log(s)) + (m - z0);
  if (scale == acc_t(0)) {
    for (int64_t k = 0; k <= K; ++k) coef[k] = acc_t(0);
    return acc_t(0);
  }
  const acc_t inv_s = static_cast<acc_t>(1.0 / s);
  double p_neg = 0;  // 1 - p_0 as the sum of the negatives' shares: exact when p_0 is near 1
  for (int64_t k = K; k >= 1; --k) {
    const acc_t c = cos[k];
    const bool hard = c_pos - c < acc_t(0);
    const acc_t h = hard ? prm.t * c + prm.t - acc_t(1) : c;
    const acc_t p = exp(prm.gamma * h - m) * inv_s;
    p_neg += p;
    coef[k] = scale * prm.gamma * p * (hard ? prm.t : acc_t(1));
  }
  coef[0] = -scale * prm.gamma * static_cast<acc_t>(p_neg);
  return scale * loss;
}

// Row i's mean denominator (kept: label_i > 0).
template <typename acc_t>
FL_HD acc_t row_den(bool kept, acc_t w, int64_t reduction) {
  if (!kept) return acc_t(0);
  return (reduction == kSumByNonzeroWeights && w == acc_t(0)) ? acc_t(0) : acc_t(1);
}

// Row index of slot k >= 1 of row i in [0, B): (i - r) mod B, for any r (reduced first, so that
// i - r cannot overflow).
FL_HD int64_t negative_row(int64_t i, int64_t r, int64_t B) {
  const int64_t j = i - r % B;  // in (-B, 2B)
  return j < 0 ? j + B : (j >= B ? j - B : j);
}

// Row that reads v_j in slot k >= 1, for j in [0, B): (j + r) mod B.
FL_HD int64_t reader_row(int64_t j, int64_t r, int64_t B) {
  const int64_t i = j + r % B;  // in (-B, 2B)
  return i < 0 ? i + B : (i >= B ? i - B : i);
}

}  // namespace sv_softmax
}  // namespace fusedloss
