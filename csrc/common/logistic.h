// softplus and sigmoid for the per-item and per-pair math of several families.
#pragma once

#include <cmath>

#include "host_device.h"

namespace fusedloss {

// log(1 + e^x): 0 at x = -inf, x + log1p(e^{-x}) for large x (never overflows).
template <typename acc_t>
FL_HD acc_t softplus(acc_t x) {
  const acc_t ax = x < acc_t(0) ? -x : x;
  return (x > acc_t(0) ? x : acc_t(0)) + log1p(exp(-ax));
}

// 1 / (1 + e^{-x}): 1 at x = +inf, 0 at x = -inf, no overflow.
template <typename acc_t>
FL_HD acc_t sigmoid(acc_t x) {
  if (x >= acc_t(0)) return acc_t(1) / (acc_t(1) + exp(-x));
  const acc_t e = exp(x);
  return e / (acc_t(1) + e);
}

}  // namespace fusedloss
