// Second-line argument checks of fusedloss::pairwise_fwd / pairwise_ohem_hist, shared by the CPU
// op and the CUDA binding (the Python layer validates first; each caller checks the device).
#pragma once

#include <cmath>

#include "../common/checks.h"
#include "pairwise_math.h"

namespace fusedloss {
namespace pairwise {

inline void check_pairwise_args(const at::Tensor& scores, const at::Tensor& labels, const std::optional<at::Tensor>& weight,
                  const at::Tensor& order, const at::Tensor& seg_lo, const at::Tensor& seg_hi, int64_t kind,
                  int64_t flags, double temperature, double gamma, double alpha) {
  CHECK_DTYPE_IN(scores, at::kFloat, at::kDouble);
  CHECK_ARG(scores.dim() == 1, "scores must be 1-D, got shape ", scores.sizes());
  CHECK_CONTIGUOUS(scores);
  const int64_t n = scores.numel();
  for (const at::Tensor* t : {&labels, &order, &seg_lo, &seg_hi}) {
    TORCH_CHECK(t->device() == scores.device(), "labels/order/seg_lo/seg_hi must be on ", scores.device(),
                ", got ", t->device());
    TORCH_CHECK(t->dim() == 1 && t->numel() == n && t->is_contiguous(),
                "labels/order/seg_lo/seg_hi must be contiguous 1-D of size ", n, ", got ", t->sizes());
  }
  CHECK_DTYPE(labels, scores.scalar_type());
  CHECK_DTYPE(order, at::kLong);
  CHECK_DTYPE(seg_lo, at::kLong);
  CHECK_DTYPE(seg_hi, at::kLong);
  if (weight.has_value() && weight->defined()) {
    const at::Tensor& w = *weight;
    CHECK_DEVICE(w, scores.device());
    CHECK_DTYPE(w, scores.scalar_type());
    CHECK_CONTIGUOUS(w);
    CHECK_ARG(w.numel() == n || w.numel() == 1, "weight must have numel ", n, " or 1, got ", w.numel());
  }
  CHECK_ARG(kind >= kPairWise && kind <= kHinge, "kind must be 0 (pair_wise), 1 (logistic), 2 (focal) or 3 "
            "(hinge), got ", kind);
  CHECK_ARG(n <= (int64_t(1) << 32), "at most 2^32 items are supported (OHEM keys hold 32-bit indices), got ", n);
  CHECK_ARG(flags >= 0 && flags <= 15, "flags must be in [0, 15], got ", flags);
  CHECK_ARG(temperature > 0.0 && std::isfinite(temperature), "temperature must be finite and > 0, got ",
            temperature);
  CHECK_ARG(gamma >= 0.0 && std::isfinite(gamma), "gamma must be finite and >= 0, got ", gamma);
  CHECK_ARG(!std::isnan(alpha), "alpha must not be NaN");
}

}  // namespace pairwise
}  // namespace fusedloss
