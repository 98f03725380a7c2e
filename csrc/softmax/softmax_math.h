// Per-row math of the softmax family (torch's cross-entropy plus z-loss; the softmax focal loss),
// shared by the cpu backend (g++) and the cuda backend (nvcc); fusedloss/triton_kernels/softmax.py
// mirrors it. A row is the C logits x of one example (one position of [N, C, d...]).
//
// Pass 1 (any order, any split; online_lse.h): lse = log sum_c e^{x_c}, and for the cross-entropy
//   class-index target y: wx = sum_c w_c x_c (only with label smoothing eps > 0)
//   probability target t: A = sum_c w_c q_c, B = sum_c w_c q_c x_c with q_c = t_c (1 - eps) + eps/C
// (w: the class weight, 1 without one; W = sum_c w_c is known before the launch.)
// p_c = e^{x_c - lse}. Per mode:
//   cross-entropy, class index: loss = (1 - eps) w_y (lse - x_y) + eps/C (W lse - wx) + z lse^2
//       grad_c = (1 - eps) w_y (p_c - [c = y]) + eps/C (W p_c - w_c) + 2 z lse p_c
//   cross-entropy, probabilities: loss = A lse - B + z lse^2
//       grad_c = A p_c - w_c q_c + 2 z lse p_c
//   focal (class index, a = alpha per class): with f(p) = -(1 - p)^gamma log p and
//       g(p) = p f'(p) = gamma p (1 - p)^(gamma - 1) log p - (1 - p)^gamma (log p = x - lse, 1 - p
//       = -expm1(log p): exact for p near 1), loss = sum_c q_c a_c f(p_c) with q = (1 - eps) onehot(y)
//       + eps/C; G = sum_c q_c a_c g(p_c) (pass 2 when eps > 0; a_y g(p_y) otherwise)
//       grad_c = q_c a_c g(p_c) - p_c G
// Ignored rows (y == ignore_index) have loss 0, grad 0 and denominator 0. The mean divides by the
// sum over rows of the row's denominator: w_y (cross-entropy, class index), 1 (probabilities;
// focal rows not ignored).
//
// Split form (what the kernels run; same values, better rounding). With m' the row's maximum (0
// while it is -inf) and s = sum_c e^{x_c - m'}: lse = m' + log s, log p_c = (x_c - m') - log s,
// p_c = e^{x_c - m'} / s, and sums of the form sum_c v_c (lse - x_c) are W log s + S with W = sum v_c
// and S = sum v_c (m' - x_c), a sum of non-negative terms. lse - x computed as such loses |x| ulp
// (~1e-3 at logits of 1e4 in fp32); the split form loses nothing to cancellation. RowSums is the
// pass-1 state (lse, W, S) of a row or of any part of it; parts merge in any order (lse_merge, S
// moved with the maximum: S += W (m'_new - m'_old)).
#pragma once

#include "../common/host_device.h"
#include "../common/online_lse.h"
#include "../focal/focal_math.h"

namespace fusedloss {
namespace softmax {

enum Mode : int64_t { kCrossEntropy = 0, kFocal = 1 };
enum Reduction : int64_t { kNone = 0, kSum = 1, kMean = 2 };

template <typename acc_t>
struct Params {
  int64_t mode;
  int64_t num_classes;  // C
  acc_t smoothing;      // eps in [0, 1]
  acc_t z_loss;         // >= 0 (cross-entropy only)
  acc_t gamma;          // >= 0 (focal only)
  acc_t weight_sum;     // W = sum_c w_c (C without a weight)
};

// The smoothed target of class c: q_c = t_c (1 - eps) + eps / C.
template <typename acc_t>
FL_HD FL_LSE_INLINE acc_t smoothed(acc_t t, const Params<acc_t>& prm) {
  return t * (acc_t(1) - prm.smoothing) + prm.smoothing / acc_t(prm.num_classes);
}

template <typename acc_t>
FL_HD FL_LSE_INLINE acc_t prob(acc_t x, acc_t lse) {
  return exp(x - lse);
}

// Cross-entropy, class-index target y (x_y its logit, w_y its weight), row not ignored.
template <typename acc_t>
FL_HD FL_LSE_INLINE acc_t ce_index_loss(acc_t lse, acc_t x_y, acc_t w_y, acc_t wx,
                                        const Params<acc_t>& prm) {
  const acc_t eps = prm.smoothing;
  acc_t loss = (acc_t(1) - eps) * w_y * (lse - x_y) + prm.z_loss * lse * lse;
  if (eps > acc_t(0)) loss += eps / acc_t(prm.num_classes) * (prm.weight_sum * lse - wx);
  return loss;
}

template <typename acc_t>
FL_HD FL_LSE_INLINE acc_t ce_index_grad(acc_t p, bool is_target, acc_t w_c, acc_t w_y, acc_t lse,
                                        const Params<acc_t>& prm) {
  const acc_t eps = prm.smoothing;
  const acc_t hit = is_target ? acc_t(1) : acc_t(0);
  return (acc_t(1) - eps) * w_y * (p - hit) +
         eps / acc_t(prm.num_classes) * (prm.weight_sum * p - w_c) +
         acc_t(2) * prm.z_loss * lse * p;
}

// The pass-1 weight v_c of the split sums: w_c q_c (probabilities), w_c (class index with
// smoothing), 0 where W and S are not needed.
template <typename acc_t>
FL_HD FL_LSE_INLINE acc_t ce_prob_weight(acc_t t, acc_t w, const Params<acc_t>& prm) {
  return w * smoothed(t, prm);
}

// Cross-entropy, probability target: pass 1 adds w_c q_c to A and w_c q_c x_c to B.
template <typename acc_t>
FL_HD FL_LSE_INLINE void ce_prob_accumulate(acc_t& a, acc_t& b, acc_t x, acc_t t, acc_t w,
                                            const Params<acc_t>& prm) {
  const acc_t wq = ce_prob_weight(t, w, prm);
  a += wq;
  b += wq * x;
}

template <typename acc_t>
FL_HD FL_LSE_INLINE acc_t ce_prob_loss(acc_t lse, acc_t a, acc_t b, const Params<acc_t>& prm) {
  return a * lse - b + prm.z_loss * lse * lse;
}

template <typename acc_t>
FL_HD FL_LSE_INLINE acc_t ce_prob_grad(acc_t p, acc_t t, acc_t w, acc_t a, acc_t lse,
                                       const Params<acc_t>& prm) {
  return a * p - w * smoothed(t, prm) + acc_t(2) * prm.z_loss * lse * p;
}

// Focal: f(p) and g(p) = p f'(p) of one class from its logit, for the row's lse.
template <typename acc_t>
struct FocalTerm {
  acc_t f;
  acc_t g;
  acc_t p;
};

// From log p (<= 0). kGamma: focal_math.h's GammaKind, what the caller knows of gamma at compile
// time (the cpu kernel's loops need the branch gone to vectorise; every kind gives the same values).
template <typename acc_t, int kGamma = focal::kGammaAny>
FL_HD FL_LSE_INLINE FocalTerm<acc_t> focal_term_logp(acc_t logp, acc_t gamma) {
  const acc_t p = exp(logp);
  acc_t u = -expm1(logp);  // 1 - p
  u = u > acc_t(0) ? u : acc_t(0);
  acc_t m, dm;  // u^gamma, gamma u^(gamma - 1) (0 at u = 0 unless gamma == 0)
  focal::modulating_pow<acc_t, kGamma>(u, gamma, &m, &dm);
  return FocalTerm<acc_t>{-m * logp, p * logp * dm - m, p};
}

template <typename acc_t>
FL_HD FL_LSE_INLINE FocalTerm<acc_t> focal_term(acc_t x, acc_t lse, acc_t gamma) {
  return focal_term_logp(x - lse, gamma);
}

// Focal gradient of class c from qag = q_c a_c g(p_c): qag - p_c G.
template <typename acc_t>
FL_HD FL_LSE_INLINE acc_t focal_grad_of(acc_t qag, acc_t p, acc_t big_g) {
  return qag - p * big_g;
}

// Focal gradient of class c: coef = q_c a_c, G = sum over classes of q a g.
template <typename acc_t>
FL_HD FL_LSE_INLINE acc_t focal_grad(const FocalTerm<acc_t>& term, acc_t coef, acc_t big_g) {
  return focal_grad_of(coef * term.g, term.p, big_g);
}

// The focal coefficient q_c a_c of class c (q = (1 - eps) onehot(y) + eps/C).
template <typename acc_t>
FL_HD FL_LSE_INLINE acc_t focal_coef(bool is_target, acc_t a_c, const Params<acc_t>& prm) {
  return smoothed(is_target ? acc_t(1) : acc_t(0), prm) * a_c;
}

// Focal without smoothing: q = onehot(y), so G = a_y g(p_y) and q_c a_c g(p_c) = [c = y] G:
// grad_c = G ([c = y] - p_c), grouped so that it is exactly 0 where p_c = [c = y] (C = 1).
template <typename acc_t>
FL_HD FL_LSE_INLINE acc_t focal_onehot_grad(acc_t p, bool is_target, acc_t big_g) {
  return big_g * ((is_target ? acc_t(1) : acc_t(0)) - p);
}

// ---- Split form ----

// m', the reference point of the split form: the maximum, or 0 while it is -inf.
template <typename acc_t>
FL_HD FL_LSE_INLINE acc_t finite_max(acc_t m) {
  return m == acc_t(-INFINITY) ? acc_t(0) : m;
}

template <typename acc_t>
struct RowSums {
  Lse<acc_t> lse;  // m (-inf while empty), s = sum e^{x - m}
  acc_t wsum;      // W = sum v
  acc_t shift;     // S = sum v (m' - x), m' = finite_max(m)
};

template <typename acc_t>
FL_HD FL_LSE_INLINE RowSums<acc_t> row_sums_empty() {
  return RowSums<acc_t>{lse_empty<acc_t>(), acc_t(0), acc_t(0)};
}

// Adds logit x, with weight v in W and S (v = 0 where those sums are not needed).
template <typename acc_t>
FL_HD FL_LSE_INLINE void row_sums_add(RowSums<acc_t>& a, acc_t x, acc_t v) {
  const acc_t before = finite_max(a.lse.m);
  lse_add(a.lse, x, acc_t(1));
  const acc_t now = finite_max(a.lse.m);
  a.shift += a.wsum * (now - before) + v * (now - x);
  a.wsum += v;
}

template <typename acc_t>
FL_HD FL_LSE_INLINE RowSums<acc_t> row_sums_merge(const RowSums<acc_t>& a, const RowSums<acc_t>& b) {
  RowSums<acc_t> r;
  r.lse = lse_merge(a.lse, b.lse);
  const acc_t now = finite_max(r.lse.m);
  r.shift = (a.shift + a.wsum * (now - finite_max(a.lse.m))) +
            (b.shift + b.wsum * (now - finite_max(b.lse.m)));
  r.wsum = a.wsum + b.wsum;
  return r;
}

// What the later passes need of a row: m', log s, 1 / s, lse = m' + log s.
template <typename acc_t>
struct RowNorm {
  acc_t m, log_s, inv_s, lse;
};

template <typename acc_t>
FL_HD FL_LSE_INLINE RowNorm<acc_t> row_norm(const Lse<acc_t>& a) {
  RowNorm<acc_t> r;
  r.m = finite_max(a.m);
  r.log_s = log(a.s);
  r.inv_s = acc_t(1) / a.s;
  r.lse = r.m + r.log_s;
  return r;
}

// p = e^{x - m'} / s and log p = (x - m') - log s.
template <typename acc_t>
FL_HD FL_LSE_INLINE acc_t prob_of(acc_t x, const RowNorm<acc_t>& nrm) {
  return exp(x - nrm.m) * nrm.inv_s;
}

template <typename acc_t>
FL_HD FL_LSE_INLINE acc_t log_prob_of(acc_t x, const RowNorm<acc_t>& nrm) {
  return (x - nrm.m) - nrm.log_s;
}

// ce_index_loss in the split form: wsum, shift = W, S of v = w (prm.weight_sum = W).
template <typename acc_t>
FL_HD FL_LSE_INLINE acc_t ce_index_loss_split(const RowNorm<acc_t>& nrm, acc_t x_y, acc_t w_y,
                                              acc_t shift, const Params<acc_t>& prm) {
  const acc_t eps = prm.smoothing;
  acc_t loss = (acc_t(1) - eps) * w_y * ((nrm.m - x_y) + nrm.log_s) + prm.z_loss * nrm.lse * nrm.lse;
  if (eps > acc_t(0)) {
    loss += eps / acc_t(prm.num_classes) * (prm.weight_sum * nrm.log_s + shift);
  }
  return loss;
}

// ce_prob_loss in the split form: wsum, shift = A, S of v = w q.
template <typename acc_t>
FL_HD FL_LSE_INLINE acc_t ce_prob_loss_split(const RowNorm<acc_t>& nrm, acc_t wsum, acc_t shift,
                                             const Params<acc_t>& prm) {
  return wsum * nrm.log_s + shift + prm.z_loss * nrm.lse * nrm.lse;
}

}  // namespace softmax
}  // namespace fusedloss
