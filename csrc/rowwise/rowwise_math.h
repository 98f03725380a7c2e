// Math of the row-wise pair losses (torch margin_ranking_loss, cosine_embedding_loss,
// triplet_margin_loss; Keras cosine_similarity; siamese contrastive loss; AITM's
// ORDER_CALIBRATE_LOSS, spec 5), shared by the cpu backend (g++) and the cuda backend (nvcc);
// fusedloss/triton_kernels/rowwise.py mirrors it.
//
// Rows i of a, b (and c for triplet) [N, D], target y_i. Two sweeps over a row: 1) accumulate the
// row sums (acc0..acc2) with row_accumulate; 2) row_finish gives the loss and the coefficients, and
// the gradients are written element by element (grad_elems). For every kind the row gradients are
// combinations of a few per-element vectors:
//   kMarginRanking (D = 1): loss = max(0, -y (a - b) + margin); d/da = -y [. >= 0], d/db = -d/da.
//   kOrderCalibrate (D = 1): loss = relu(a - b) (AITM: a = p_t, b = p_r); d/da = [a - b > 0].
//   kCosineEmbedding (torch): m1 = |a|^2 + 1e-12f, m2 = |b|^2 + 1e-12f, cos = a.b / sqrt(m1 m2);
//     loss = 1 - cos (y = 1), max(0, cos - margin) (y = -1), 0 otherwise; with g = d loss / d cos:
//     d/da = g (b / sqrt(m1 m2) - cos a / m1), d/db = g (a / sqrt(m1 m2) - cos b / m2).
//   kCosineSimilarity (Keras): loss = -l2n(a) . l2n(b) (l2n: TF's l2_normalize, eps 1e-12);
//     d/da = -inv_a (inv_b b - proj_a cos inv_a a), and symmetrically for b.
//   kTriplet (torch, p-norm): d(u, v) = ||u - v + eps||_p; loss = max(d(a, b) - d_neg + margin, 0)
//     with d_neg = d(a, c), or with swap min(d(a, c), d(b, c)) (ties take d(a, c)); d d / d w =
//     psi(w) / d^{p-1}, psi(w) = |w|^{p-1} sign(w), taken as 0 where d = 0.
//   kContrastive (Hadsell et al., tfa's contrastive_loss on d = ||a - b + eps||_2): loss =
//     y d^2 + (1 - y) max(margin - d, 0)^2; d/da = k (a - b + eps), d/db = -d/da,
//     k = 2 y - 2 (1 - y) max(margin - d, 0) / d (0 for that part where d = 0).
#pragma once

#include <cmath>

#include "../common/host_device.h"
#include "../common/l2_normalize.h"

namespace fusedloss {
namespace rowwise {

#if !defined(__CUDACC__)
using std::pow;
using std::sqrt;
#endif

enum Kind : int64_t {
  kMarginRanking = 0,
  kOrderCalibrate = 1,
  kCosineEmbedding = 2,
  kCosineSimilarity = 3,
  kTriplet = 4,
  kContrastive = 5,
};

template <typename acc_t>
struct Params {
  int64_t kind;
  acc_t margin;
  acc_t p;    // kTriplet: the norm's order, >= 1
  acc_t eps;  // kTriplet, kContrastive: added to the difference (torch's pairwise_distance)
  bool swap;  // kTriplet
};

template <typename acc_t>
struct RowAcc {
  acc_t s0, s1, s2;
};

// |w|^p (p = 2 and 1 exact and fast).
template <typename acc_t>
FL_HD acc_t abs_pow(acc_t w, acc_t p) {
  const acc_t aw = w < acc_t(0) ? -w : w;
  if (p == acc_t(2)) return aw * aw;
  if (p == acc_t(1)) return aw;
  return aw == acc_t(0) ? acc_t(0) : pow(aw, p);
}

// psi(w) = |w|^{p-1} sign(w).
template <typename acc_t>
FL_HD acc_t psi(acc_t w, acc_t p) {
  if (p == acc_t(2)) return w;
  const acc_t s = w > acc_t(0) ? acc_t(1) : (w < acc_t(0) ? acc_t(-1) : acc_t(0));
  if (p == acc_t(1)) return s;
  const acc_t aw = w < acc_t(0) ? -w : w;
  return aw == acc_t(0) ? acc_t(0) : s * pow(aw, p - acc_t(1));
}

// d^{1/p} of the accumulated sum.
template <typename acc_t>
FL_HD acc_t root(acc_t s, acc_t p) {
  if (p == acc_t(2)) return sqrt(s);
  if (p == acc_t(1)) return s;
  return s == acc_t(0) ? acc_t(0) : pow(s, acc_t(1) / p);
}

template <typename acc_t>
FL_HD RowAcc<acc_t> row_acc_zero() {
  return RowAcc<acc_t>{acc_t(0), acc_t(0), acc_t(0)};
}

// Adds element d of the row (c is read only by kTriplet).
template <typename acc_t>
FL_HD void row_accumulate(RowAcc<acc_t>& r, acc_t a, acc_t b, acc_t c, const Params<acc_t>& p) {
  switch (p.kind) {
    case kCosineEmbedding:
    case kCosineSimilarity:
      r.s0 += a * b;
      r.s1 += a * a;
      r.s2 += b * b;
      break;
    case kTriplet:
      r.s0 += abs_pow(a - b + p.eps, p.p);
      r.s1 += abs_pow(a - c + p.eps, p.p);
      if (p.swap) r.s2 += abs_pow(b - c + p.eps, p.p);
      break;
    case kContrastive: {
      const acc_t w = a - b + p.eps;
      r.s0 += w * w;
      break;
    }
    default:  // D = 1 kinds: the element itself
      r.s0 = a - b;
      break;
  }
}

template <typename acc_t>
FL_HD RowAcc<acc_t> row_acc_merge(const RowAcc<acc_t>& x, const RowAcc<acc_t>& y) {
  return RowAcc<acc_t>{x.s0 + y.s0, x.s1 + y.s1, x.s2 + y.s2};
}

// Coefficients of a row's gradients (meaning per kind, see grad_elems).
template <typename acc_t>
struct Coef {
  acc_t k0, k1, k2, k3;
};

// The row's loss and gradient coefficients (times g_out, the incoming gradient of this row: 1 for
// the unscaled gradient). y: the target (unused by kOrderCalibrate, kCosineSimilarity, kTriplet).
template <typename acc_t>
FL_HD acc_t row_finish(const RowAcc<acc_t>& r, acc_t y, const Params<acc_t>& p, Coef<acc_t>* k) {
  *k = Coef<acc_t>{acc_t(0), acc_t(0), acc_t(0), acc_t(0)};
  switch (p.kind) {
    case kMarginRanking: {
      const acc_t u = -y * r.s0 + p.margin;
      if (u >= acc_t(0)) k->k0 = -y;  // d/da; d/db = -k0
      return u > acc_t(0) ? u : acc_t(0);
    }
    case kOrderCalibrate: {
      if (r.s0 > acc_t(0)) {
        k->k0 = acc_t(1);
        return r.s0;
      }
      return acc_t(0);
    }
    case kCosineEmbedding: {
      // torch's EPSILON is the float 1e-12f (9.999999960041972e-13 in double), not the double 1e-12
      const acc_t m1 = r.s1 + acc_t(1e-12f), m2 = r.s2 + acc_t(1e-12f);
      const acc_t inv = acc_t(1) / sqrt(m1 * m2);
      const acc_t cos = r.s0 * inv;
      acc_t g = acc_t(0), loss = acc_t(0);
      if (y == acc_t(1)) {
        g = acc_t(-1);
        loss = acc_t(1) - cos;
      } else if (y == acc_t(-1)) {
        const acc_t u = cos - p.margin;
        if (u >= acc_t(0)) g = acc_t(1);
        loss = u > acc_t(0) ? u : acc_t(0);
      }
      // d/da = k0 a + k1 b, d/db = k2 b + k1 a
      k->k0 = -g * cos / m1;
      k->k1 = g * inv;
      k->k2 = -g * cos / m2;
      return loss;
    }
    case kCosineSimilarity: {
      const acc_t ia = l2n::inv_norm(r.s1, true), ib = l2n::inv_norm(r.s2, true);
      const acc_t cos = r.s0 * ia * ib;
      const bool pa = l2n::projects(r.s1, true), pb = l2n::projects(r.s2, true);
      // d/da = k0 a + k1 b, d/db = k2 b + k1 a
      k->k0 = pa ? cos * ia * ia : acc_t(0);
      k->k1 = -ia * ib;
      k->k2 = pb ? cos * ib * ib : acc_t(0);
      return -cos;
    }
    case kTriplet: {
      const acc_t d_ap = root(r.s0, p.p), d_an = root(r.s1, p.p);
      acc_t d_neg = d_an;
      bool use_pn = false;
      if (p.swap) {
        const acc_t d_pn = root(r.s2, p.p);
        if (d_pn < d_an) {
          d_neg = d_pn;
          use_pn = true;
        }
      }
      const acc_t u = d_ap - d_neg + p.margin;
      if (u >= acc_t(0)) {
        // k0: coefficient of psi(a - b + eps) (d(a, b)), k1 of psi(a - c + eps), k2 of psi(b - c + eps)
        k->k0 = d_ap > acc_t(0) ? acc_t(1) / pow(d_ap, p.p - acc_t(1)) : acc_t(0);
        const acc_t kn = d_neg > acc_t(0) ? -acc_t(1) / pow(d_neg, p.p - acc_t(1)) : acc_t(0);
        if (use_pn) {
          k->k2 = kn;
        } else {
          k->k1 = kn;
        }
      }
      return u > acc_t(0) ? u : acc_t(0);
    }
    default: {  // kContrastive
      const acc_t d = sqrt(r.s0);
      const acc_t h = p.margin - d;
      const acc_t hp = h > acc_t(0) ? h : acc_t(0);
      k->k0 = acc_t(2) * y - ((hp > acc_t(0) && d > acc_t(0)) ? acc_t(2) * (acc_t(1) - y) * hp / d
                                                                : acc_t(0));
      return y * r.s0 + (acc_t(1) - y) * hp * hp;
    }
  }
}

// Element d of the row's gradients (scaled by the row's factor f).
template <typename acc_t>
FL_HD void grad_elems(acc_t a, acc_t b, acc_t c, const Coef<acc_t>& k, const Params<acc_t>& p,
                      acc_t f, acc_t* ga, acc_t* gb, acc_t* gc) {
  switch (p.kind) {
    case kCosineEmbedding:
    case kCosineSimilarity:
      *ga = f * (k.k0 * a + k.k1 * b);
      *gb = f * (k.k2 * b + k.k1 * a);
      *gc = acc_t(0);
      return;
    case kTriplet: {
      const acc_t t_ab = k.k0 == acc_t(0) ? acc_t(0) : k.k0 * psi(a - b + p.eps, p.p);
      const acc_t t_ac = k.k1 == acc_t(0) ? acc_t(0) : k.k1 * psi(a - c + p.eps, p.p);
      const acc_t t_bc = k.k2 == acc_t(0) ? acc_t(0) : k.k2 * psi(b - c + p.eps, p.p);
      *ga = f * (t_ab + t_ac);
      *gb = f * (t_bc - t_ab);
      *gc = f * (-t_ac - t_bc);
      return;
    }
    case kContrastive:
      *ga = f * k.k0 * (a - b + p.eps);
      *gb = -*ga;
      *gc = acc_t(0);
      return;
    default:  // D = 1 kinds
      *ga = f * k.k0;
      *gb = -*ga;
      *gc = acc_t(0);
      return;
  }
}

}  // namespace rowwise
}  // namespace fusedloss
