// Per-row math of the multilabel categorical cross-entropy (Su Jianlin; spec section 10), shared by
// the cpu backend (g++) and the cuda backend (nvcc); fusedloss/triton_kernels/multilabel.py mirrors it.
//
// A row of logits s[0..C) gives
//   loss = log(1 + sum_i wn_i e^{s_i}) + log(1 + sum_i wp_i e^{-s_i})
// where the "1 +" is the appended zero logit and, per form:
//   dense : wn_i = 1 - y_i, wp_i = y_i (y hard 0/1 or soft in [0, 1]); entries with s_i = -inf are
//           absent (GlobalPointer's masking), so 0 * e^{+inf} never happens.
//   sparse: positive_index lists K classes (a multiset: a class listed twice counts twice in the
//           positive sum). wp_c = count_c; wn_c = 1 if count_c == 0 else 0 (the negatives are exactly
//           the classes not listed, summed directly instead of as "all minus positives", which
//           cancels catastrophically once the positives dominate). With mask_zero, index 0 is
//           padding and class 0 takes no part in either sum.
// d loss / d s_i = wn_i e^{s_i} / (1 + sum_neg) - wp_i e^{-s_i} / (1 + sum_pos).
//
// Each sum is an online log-sum-exp state (m, s) meaning e^m * s = 1 + sum w e^x, with m >= 0 (once
// the zero logit is in) and m >= every x of nonzero weight (so no term overflows and the largest
// never underflows). States of
// disjoint parts of a row merge with lse_merge, so any split of the row (SIMD lanes, CUDA threads,
// Triton blocks) gives the same value up to rounding. A part can also be added in two passes
// (lse_add_part: the cpu kernel's vectorised tiles): the maximum of lse_key over the part, then the
// sum of lse_term relative to max(a.m, that maximum).
#pragma once

#include <cmath>

#include "../common/host_device.h"
#include "../common/online_lse.h"

#define FL_ML_FORCEINLINE FL_LSE_INLINE

namespace fusedloss {
namespace multilabel {

enum Reduction : int64_t { kNone = 0, kSum = 1, kMean = 2 };

// The generic online log-sum-exp (../common/online_lse.h); here every sum also holds the appended
// zero logit, which the part that starts from lse_init counts (the other parts of a split row start
// from lse_empty).
using fusedloss::Lse;
using fusedloss::lse_add;
using fusedloss::lse_add_part;
using fusedloss::lse_empty;
using fusedloss::lse_key;
using fusedloss::lse_merge;
using fusedloss::lse_part_max;
using fusedloss::lse_share;
using fusedloss::lse_share_of;
using fusedloss::lse_term;
using fusedloss::lse_value;

// The empty sum of this loss: only the appended zero logit, log(1 + 0) = 0.
template <typename acc_t>
FL_HD FL_ML_FORCEINLINE Lse<acc_t> lse_init() {
  return Lse<acc_t>{acc_t(0), acc_t(1)};
}

// Dense form as weights: wn = 1 - y, wp = y; both 0 for an absent entry (s = -inf, whose e^{-s}
// would be +inf).
template <typename acc_t>
FL_HD FL_ML_FORCEINLINE acc_t dense_neg_weight(acc_t s, acc_t y) {
  return s == -INFINITY ? acc_t(0) : acc_t(1) - y;
}

template <typename acc_t>
FL_HD FL_ML_FORCEINLINE acc_t dense_pos_weight(acc_t s, acc_t y) {
  return s == -INFINITY ? acc_t(0) : y;
}

// Sparse form: the negative weight of a class, 1 if it is not listed and not masked, else 0.
template <typename acc_t>
FL_HD FL_ML_FORCEINLINE acc_t sparse_neg_weight(int64_t count, bool masked) {
  return (masked || count != 0) ? acc_t(0) : acc_t(1);
}

// Dense form: one entry (logit s, label y) into the negative and positive sums.
template <typename acc_t>
FL_HD FL_ML_FORCEINLINE void dense_accumulate(Lse<acc_t>& neg, Lse<acc_t>& pos, acc_t s, acc_t y) {
  lse_add(neg, s, dense_neg_weight(s, y));
  lse_add(pos, -s, dense_pos_weight(s, y));
}

// Dense form: d loss / d s for one entry, given the row's final sums (0 for s = -inf).
template <typename acc_t>
FL_HD FL_ML_FORCEINLINE acc_t dense_grad(const Lse<acc_t>& neg, const Lse<acc_t>& pos, acc_t s,
                                         acc_t y) {
  return lse_share(neg, s, dense_neg_weight(s, y)) - lse_share(pos, -s, dense_pos_weight(s, y));
}

// Dense form with a hard label (y not in (0, 1), so at most one weight is positive): the terms
// lse_term(s, wn, mn) and lse_term(-s, wp, mp) of both sums from one exp, bit for bit. (lse_term's
// x = -inf test is left out: with a hard label it only matters for the positive term at s = +inf,
// where w e^{-inf - mp} is 0 anyway. With it, GCC 12 does not vectorise the cpu kernel's loop.)
template <typename acc_t>
struct DenseTerms {
  acc_t neg, pos;
};

template <typename acc_t>
FL_HD FL_ML_FORCEINLINE DenseTerms<acc_t> dense_terms_hard(acc_t s, acc_t y, acc_t mn, acc_t mp) {
  const acc_t wn = dense_neg_weight(s, y), wp = dense_pos_weight(s, y);
  const bool positive = wp > acc_t(0);
  const acc_t w = positive ? wp : wn;
  const acc_t t = w > acc_t(0) ? w * exp((positive ? -s : s) - (positive ? mp : mn)) : acc_t(0);
  return DenseTerms<acc_t>{positive ? acc_t(0) : t, positive ? t : acc_t(0)};
}

// dense_grad for a hard label, from one exp and one division; equal but for the sign of a zero, and
// for NaN sums. (lse_share's x = -inf test is left out: with a hard label it only matters for the
// positive share at s = +inf, where w e^{-inf - m} / sum is 0 anyway. With it, GCC 12 does not
// vectorise the cpu kernel's loop.)
template <typename acc_t>
FL_HD FL_ML_FORCEINLINE acc_t dense_grad_hard(const Lse<acc_t>& neg, const Lse<acc_t>& pos, acc_t s,
                                              acc_t y) {
  const acc_t wn = dense_neg_weight(s, y), wp = dense_pos_weight(s, y);
  const bool positive = wp > acc_t(0);
  const acc_t nm = neg.m, ns = neg.s, pm = pos.m, ps = pos.s;
  const acc_t w = positive ? wp : wn;
  const acc_t share =
      w > acc_t(0) ? w * exp((positive ? -s : s) - (positive ? pm : nm)) / (positive ? ps : ns) : acc_t(0);
  return positive ? -share : share;
}

// Whether y is a hard label for dense_terms_hard / dense_grad_hard.
template <typename acc_t>
FL_HD FL_ML_FORCEINLINE bool dense_label_is_hard(acc_t y) {
  return !(y > acc_t(0) && y < acc_t(1));
}

// Sparse form: one class c with logit s, listed `count` times among the valid positive indices.
// `masked` is true for class 0 under mask_zero (then it is in neither sum).
template <typename acc_t>
FL_HD FL_ML_FORCEINLINE void sparse_accumulate_negative(Lse<acc_t>& neg, acc_t s, int64_t count,
                                                        bool masked) {
  lse_add(neg, s, sparse_neg_weight<acc_t>(count, masked));
}

// Sparse form: the positive sum takes each valid listed index once per listing.
template <typename acc_t>
FL_HD FL_ML_FORCEINLINE void sparse_accumulate_positive(Lse<acc_t>& pos, acc_t s) {
  lse_add(pos, -s, acc_t(1));
}

template <typename acc_t>
FL_HD FL_ML_FORCEINLINE acc_t sparse_grad(const Lse<acc_t>& neg, const Lse<acc_t>& pos, acc_t s,
                                          int64_t count, bool masked) {
  if (masked) return acc_t(0);
  if (count != 0) return -lse_share(pos, -s, acc_t(count));
  return lse_share(neg, s, acc_t(1));
}

}  // namespace multilabel
}  // namespace fusedloss
