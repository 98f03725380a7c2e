// TF's l2_normalize, l2n(a) = a inv(a) with inv(a) = 1 / sqrt(max(sum a^2, 1e-12)), and its
// backward, for the families that take embeddings (sv_softmax, metric).
#pragma once

#include <cmath>

#include "host_device.h"

namespace fusedloss {
namespace l2n {

#if !defined(__CUDACC__)
using std::sqrt;  // else unqualified sqrt of a float is ::sqrt(double) on the host
#endif

template <typename acc_t>
FL_HD acc_t norm_eps() {
  return acc_t(1e-12);
}

// inv(a) from sum a^2; 1 when the embeddings come normalised (normalize = false).
template <typename acc_t>
FL_HD acc_t inv_norm(acc_t sumsq, bool normalize) {
  if (!normalize) return acc_t(1);
  return acc_t(1) / sqrt(sumsq > norm_eps<acc_t>() ? sumsq : norm_eps<acc_t>());
}

// proj(a) = [sum a^2 > 1e-12]: the Jacobian of l2n is inv (I - l2n l2n^T), or inv I where the norm
// is clamped (and I without normalisation).
template <typename acc_t>
FL_HD bool projects(acc_t sumsq, bool normalize) {
  return normalize && sumsq > norm_eps<acc_t>();
}

// One element of d/da = inv(a) (S - proj gc l2n(a)) for d/d l2n(a) = S and gc = S . l2n(a):
// s_d the element of S, a_d of a.
template <typename acc_t>
FL_HD acc_t grad_elem(acc_t s_d, acc_t a_d, acc_t gc, acc_t inv_a, bool proj) {
  return proj ? inv_a * (s_d - gc * inv_a * a_d) : inv_a * s_d;
}

}  // namespace l2n
}  // namespace fusedloss
