// Second-line argument checks of fusedloss::sv_softmax_fwd, shared by the CPU op and the CUDA binding
// (the Python layer validates first; each caller checks user's device itself). Shift values are not
// checked: every kernel takes them mod B (negative_row, reader_row), so any value is safe.
#pragma once

#include <cmath>
#include <optional>

#include "../common/checks.h"
#include "sv_softmax_math.h"

namespace fusedloss {
namespace sv_softmax {

// Returns the weight contiguous (undefined when absent).
inline at::Tensor check_sv_softmax_args(const at::Tensor& user, const at::Tensor& item, const at::Tensor& kept,
                                        const std::optional<at::Tensor>& weight, const at::Tensor& shifts,
                                        double margin, double gamma, double t, int64_t reduction) {
  CHECK_DEVICE(item, user.device());
  CHECK_DEVICE(kept, user.device());
  CHECK_DEVICE(shifts, user.device());
  CHECK_DTYPE_IN(user, at::kFloat, at::kDouble, at::kHalf, at::kBFloat16);
  CHECK_ARG(user.dim() == 2, "user must be 2-D [B, D], got shape ", user.sizes());
  CHECK_DTYPE(item, user.scalar_type());
  CHECK_SAME_SHAPE(item, user);
  CHECK_DTYPE(kept, at::kBool);
  CHECK_SHAPE(kept, user.size(0));
  CHECK_DTYPE(shifts, at::kLong);
  CHECK_ARG(shifts.dim() == 1 && shifts.numel() >= 1, "shifts must be 1-D [K] with K >= 1, got shape ",
            shifts.sizes());
  CHECK_ARG(reduction >= kSum && reduction <= kSumByNonzeroWeights,
            "reduction must be 1 (sum), 2 (mean) or 3 (sum_by_nonzero_weights), got ", reduction);
  CHECK_ARG(std::isfinite(margin), "margin must be finite, got ", margin);
  CHECK_ARG(gamma > 0.0 && std::isfinite(gamma), "gamma must be finite and > 0, got ", gamma);
  CHECK_ARG(std::isfinite(t), "t must be finite, got ", t);
  if (!weight.has_value() || !weight->defined()) return at::Tensor();
  const at::Tensor& w = *weight;
  CHECK_DEVICE(w, user.device());
  CHECK_DTYPE(w, opmath_dtype(user.scalar_type()));
  CHECK_ARG(w.dim() == 1 && (w.numel() == 1 || w.numel() == user.size(0)),
            "weight must be 1-D with 1 or B = ", user.size(0), " elements, got shape ", w.sizes());
  return w.contiguous();
}

}  // namespace sv_softmax
}  // namespace fusedloss
