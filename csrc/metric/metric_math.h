// Math of the in-batch metric-learning losses from embeddings (EasyRec CIRCLE_LOSS and
// MULTI_SIMILARITY_LOSS, spec 6.2 and 6.3, the intended multi-similarity formula), shared by the cpu
// backend (g++) and the cuda backend (nvcc); fusedloss/triton_kernels/metric.py mirrors it.
//
// Embeddings e [B, D]; inv_j = 1 / sqrt(max(sum e_j^2, 1e-12)) (1 without normalisation) and
// S_ij = inv_i inv_j (e_i . e_j), the cosine. Anchor i's positives: j != i with y_j = y_i (and
// g_j = g_i when sessions are given); its negatives: every other j != i. Both masks are symmetric.
//
// Circle (p0 = margin m, p1 = gamma), with alpha+ = relu(1 + m - S), alpha- = relu(S + m) (both
// treated as constants), lambda+ = -gamma alpha+ (S - (1 - m)), lambda- = gamma alpha- (S - m):
//   A_i = LSE over positives of lambda+_ij, N_i = LSE over negatives of lambda-_ij, an empty set
//   counting empty_lse() = -1e12 (EasyRec masks with -1e12, whose softplus is 0);
//   loss_i = softplus(Z_i), Z_i = A_i + N_i;
//   G_ij = d loss_i / d S_ij = sigmoid(Z_i) (-gamma alpha+_ij) e^{lambda+_ij - A_i} (positive j),
//          sigmoid(Z_i) (gamma alpha-_ij) e^{lambda-_ij - N_i} (negative j).
// Multi-similarity (p0 = alpha, p1 = beta, p2 = lambda), S+ = max(S, 0) (d S+ / d S = [S >= 0], the
// derivative of torch.clamp):
//   A_i = log(1 + sum over positives of e^{-alpha (S+_ij - lambda)}),
//   N_i = log(1 + sum over negatives of e^{beta (S+_ij - lambda)});
//   loss_i = A_i / alpha + N_i / beta;
//   G_ij = -[S_ij >= 0] e^{-alpha (S+_ij - lambda) - A_i} (positive j),
//           [S_ij >= 0] e^{beta (S+_ij - lambda) - N_i} (negative j).
// Row statistics (A_i, N_i) are kept per row: pass 1 computes them (one online LSE each), pass 2
// the gradient of sum_i loss_i with respect to the cosines, H_ij = G_ij + G_ji (S is symmetric),
// then through the normalisation: with sh_i = sum_j H_ij inv_j e_j and hc_i = sum_j H_ij S_ij,
//   d/de_i = inv_i (sh_i - proj_i hc_i inv_i e_i),  proj_i = [normalize and sum e_i^2 > 1e-12]
// (sv_softmax_math.h's grad_elem). Each row computes its own gradient: no atomics.
#pragma once

#include <cmath>

#include "../common/host_device.h"
#include "../common/l2_normalize.h"
#include "../common/logistic.h"
#include "../common/online_lse.h"

namespace fusedloss {
namespace metric {

using l2n::grad_elem;
using l2n::inv_norm;
using l2n::projects;

enum Kind : int64_t { kCircle = 0, kMultiSimilarity = 1 };

template <typename acc_t>
struct Params {
  int64_t kind;
  acc_t p0, p1, p2;  // circle: margin, gamma, unused; multi-similarity: alpha, beta, lambda
  bool normalize;
};

template <typename acc_t>
FL_HD acc_t empty_lse() {
  return acc_t(-1e12);
}

// The logit of pair (i, j) in its set's LSE: circle lambda+ / lambda-, multi-similarity
// -alpha (S+ - lambda) / beta (S+ - lambda).
template <typename acc_t>
FL_HD acc_t pair_logit(acc_t s, bool pos, const Params<acc_t>& p) {
  if (p.kind == kCircle) {
    if (pos) {
      const acc_t a = acc_t(1) + p.p0 - s;
      return -p.p1 * (a > acc_t(0) ? a : acc_t(0)) * (s - (acc_t(1) - p.p0));
    }
    const acc_t a = s + p.p0;
    return p.p1 * (a > acc_t(0) ? a : acc_t(0)) * (s - p.p0);
  }
  const acc_t sp = s > acc_t(0) ? s : acc_t(0);
  return pos ? -p.p0 * (sp - p.p2) : p.p1 * (sp - p.p2);
}

// d logit / d S with the alphas constant (circle); for multi-similarity d (logit / alpha) / d S
// (positives) or d (logit / beta) / d S (negatives) through max(S, 0), the 1 / alpha, 1 / beta of
// the loss folded in.
template <typename acc_t>
FL_HD acc_t pair_logit_slope(acc_t s, bool pos, const Params<acc_t>& p) {
  if (p.kind == kCircle) {
    if (pos) {
      const acc_t a = acc_t(1) + p.p0 - s;
      return -p.p1 * (a > acc_t(0) ? a : acc_t(0));
    }
    const acc_t a = s + p.p0;
    return p.p1 * (a > acc_t(0) ? a : acc_t(0));
  }
  if (!(s >= acc_t(0))) return acc_t(0);
  return pos ? acc_t(-1) : acc_t(1);
}

// The two online LSEs of an anchor (empty at the start; multi-similarity's "1 +" is added by
// row_stats). Partial states (Triton blocks, CUDA threads) merge with lse_merge.
template <typename acc_t>
struct RowLse {
  Lse<acc_t> pos;
  Lse<acc_t> neg;
};

template <typename acc_t>
FL_HD RowLse<acc_t> row_lse_start() {
  return RowLse<acc_t>{lse_empty<acc_t>(), lse_empty<acc_t>()};
}

// Adds pair (i, j), j != i (the caller skips j == i). Both sets through their weight (lse_add skips
// w = 0): a reference chosen at run time would put a CUDA thread's states in local memory.
template <typename acc_t>
FL_HD void row_lse_add(RowLse<acc_t>& r, acc_t s, bool pos, const Params<acc_t>& p) {
  const acc_t x = pair_logit(s, pos, p);
  lse_add(r.pos, x, pos ? acc_t(1) : acc_t(0));
  lse_add(r.neg, x, pos ? acc_t(0) : acc_t(1));
}

template <typename acc_t>
FL_HD RowLse<acc_t> row_lse_merge(const RowLse<acc_t>& a, const RowLse<acc_t>& b) {
  return RowLse<acc_t>{lse_merge(a.pos, b.pos), lse_merge(a.neg, b.neg)};
}

// (A_i, N_i) from the final state.
template <typename acc_t>
FL_HD void row_stats(const RowLse<acc_t>& r, const Params<acc_t>& p, acc_t* a, acc_t* n) {
  if (p.kind == kCircle) {
    *a = r.pos.s > acc_t(0) ? lse_value(r.pos) : empty_lse<acc_t>();
    *n = r.neg.s > acc_t(0) ? lse_value(r.neg) : empty_lse<acc_t>();
  } else {  // log(1 + e^{lse}) = softplus(lse); 0 for an empty set
    *a = r.pos.s > acc_t(0) ? softplus(lse_value(r.pos)) : acc_t(0);
    *n = r.neg.s > acc_t(0) ? softplus(lse_value(r.neg)) : acc_t(0);
  }
}

// loss_i from (A_i, N_i).
template <typename acc_t>
FL_HD acc_t row_loss(acc_t a, acc_t n, const Params<acc_t>& p) {
  if (p.kind == kCircle) return softplus(a + n);
  return a / p.p0 + n / p.p1;
}

// The factor c_i of anchor i's gradients: circle sigmoid(Z_i), multi-similarity 1.
template <typename acc_t>
FL_HD acc_t row_factor(acc_t a, acc_t n, const Params<acc_t>& p) {
  return p.kind == kCircle ? sigmoid(a + n) : acc_t(1);
}

// G_ij = d loss_i / d S_ij for j != i; a, n, c: anchor i's A_i, N_i and row_factor.
template <typename acc_t>
FL_HD acc_t pair_grad(acc_t s, bool pos, acc_t a, acc_t n, acc_t c, const Params<acc_t>& p) {
  const acc_t slope = pair_logit_slope(s, pos, p);
  if (slope == acc_t(0) || c == acc_t(0)) return acc_t(0);
  return c * slope * exp(pair_logit(s, pos, p) - (pos ? a : n));
}

}  // namespace metric
}  // namespace fusedloss
