// Online log-sum-exp: the state (m, s) stands for e^m * s = sum of w e^x over the entries seen.
// Shared by every family that normalises a row (softmax, multilabel cross-entropy). Parts of a row
// reduce independently (SIMD lanes, CUDA threads, Triton blocks) and merge with lse_merge; a part
// can also be added in two passes (its maximum lse_key, then the sum of lse_term).
// Branch-free selects where possible: the cpu kernels' loops must if-convert to vectorise.
#pragma once

#include <cmath>

#include "host_device.h"

// Host compilers must inline these into the cpu kernels' loops, or they stay scalar (g++ 12 -O3
// may otherwise clone and call them). On the device FL_HD force-inlines.
#if !defined(__CUDACC__) && !defined(__HIPCC__) && defined(__GNUC__)
#define FL_LSE_INLINE __attribute__((always_inline))
#else
#define FL_LSE_INLINE
#endif

namespace fusedloss {

template <typename acc_t>
struct Lse {
  acc_t m;  // running maximum exponent (-inf while empty, unless a caller starts it higher)
  acc_t s;  // sum of w e^{x - m}
};

// The empty sum, the neutral element of lse_merge.
template <typename acc_t>
FL_HD FL_LSE_INLINE Lse<acc_t> lse_empty() {
  return Lse<acc_t>{acc_t(-INFINITY), acc_t(0)};
}

// Adds w e^x. Does nothing for w <= 0 or x = -inf (absent entries).
template <typename acc_t>
FL_HD FL_LSE_INLINE void lse_add(Lse<acc_t>& a, acc_t x, acc_t w) {
  if (!(w > acc_t(0)) || x == -INFINITY) return;
  if (x > a.m) {
    a.s = a.s * exp(a.m - x) + w;
    a.m = x;
  } else {
    a.s += w * exp(x - a.m);
  }
}

template <typename acc_t>
FL_HD FL_LSE_INLINE Lse<acc_t> lse_merge(const Lse<acc_t>& a, const Lse<acc_t>& b) {
  if (b.s == acc_t(0)) return a;
  if (a.s == acc_t(0)) return b;
  if (a.m >= b.m) return Lse<acc_t>{a.m, a.s + b.s * exp(b.m - a.m)};
  return Lse<acc_t>{b.m, b.s + a.s * exp(a.m - b.m)};
}

// log(sum w e^x); -inf for the empty sum.
template <typename acc_t>
FL_HD FL_LSE_INLINE acc_t lse_value(const Lse<acc_t>& a) {
  return a.m + log(a.s);
}

// w e^x / sum w e^x, the softmax weight of one term; 0 for an absent entry, where e^{x - m} may
// overflow (x is not bounded by m when w = 0).
template <typename acc_t>
FL_HD FL_LSE_INLINE acc_t lse_share_of(acc_t m, acc_t s, acc_t x, acc_t w) {
  return (w > acc_t(0) && x != -INFINITY) ? w * exp(x - m) / s : acc_t(0);
}

template <typename acc_t>
FL_HD FL_LSE_INLINE acc_t lse_share(const Lse<acc_t>& a, acc_t x, acc_t w) {
  return lse_share_of(a.m, a.s, x, w);
}

// What an entry brings to a sum's maximum: x, or -inf for an absent entry.
template <typename acc_t>
FL_HD FL_LSE_INLINE acc_t lse_key(acc_t x, acc_t w) {
  return (w > acc_t(0) && x != -INFINITY) ? x : acc_t(-INFINITY);
}

// w e^{x - m} for a maximum m >= lse_key(x, w); 0 for an absent entry.
template <typename acc_t>
FL_HD FL_LSE_INLINE acc_t lse_term(acc_t x, acc_t w, acc_t m) {
  return (w > acc_t(0) && x != -INFINITY) ? w * exp(x - m) : acc_t(0);
}

// Two-pass addition of a part: m = lse_part_max(a, key) with key the part's maximum lse_key, then
// lse_add_part(a, m, sum of lse_term(x, w, m) over the part).
template <typename acc_t>
FL_HD FL_LSE_INLINE acc_t lse_part_max(const Lse<acc_t>& a, acc_t key) {
  return key > a.m ? key : a.m;
}

template <typename acc_t>
FL_HD FL_LSE_INLINE void lse_add_part(Lse<acc_t>& a, acc_t m, acc_t sum) {
  a = lse_merge(a, Lse<acc_t>{m, sum});
}

}  // namespace fusedloss
