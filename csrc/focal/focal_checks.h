// Second-line argument checks of fusedloss::binary_focal_fwd, shared by the CPU op and the CUDA
// binding (the Python layer validates first; each caller checks input's device itself).
#pragma once

#include <cmath>
#include <utility>

#include "../common/checks.h"
#include "../common/elementwise_op.h"
#include "focal_math.h"

namespace fusedloss {
namespace focal {

// Returns the weight and pos_weight tables (undefined when absent).
inline std::pair<at::Tensor, at::Tensor> check_binary_focal_args(
    const at::Tensor& input, const at::Tensor& target, const std::optional<at::Tensor>& weight,
    const std::optional<at::Tensor>& pos_weight, int64_t mode, double alpha, double gamma,
    double label_smoothing, int64_t reduction, at::IntArrayRef weight_layout,
    at::IntArrayRef pos_weight_layout) {
  CHECK_DEVICE(target, input.device());
  CHECK_DTYPE_IN(input, at::kFloat, at::kDouble, at::kHalf, at::kBFloat16);
  CHECK_DTYPE_IN(target, at::kFloat, at::kDouble, at::kHalf, at::kBFloat16, at::kByte, at::kChar,
                 at::kShort, at::kInt, at::kLong, at::kBool);
  CHECK_SAME_SHAPE(target, input);
  CHECK_ARG(mode >= kBCE && mode <= kEasyRec, "mode must be 0 (BCE), 1 (torchvision) or 2 (EasyRec), got ",
            mode);
  elementwise::check_reduction(reduction);
  CHECK_ARG(gamma >= 0.0 && std::isfinite(gamma), "gamma must be finite and >= 0, got ", gamma);
  CHECK_ARG(label_smoothing >= 0.0 && label_smoothing <= 1.0, "label_smoothing must be in [0, 1], got ",
            label_smoothing);
  CHECK_ARG(!std::isnan(alpha), "alpha must not be NaN");
  const at::ScalarType acc = opmath_dtype(input.scalar_type());
  const at::Tensor w = check_broadcast_table(weight, weight_layout, input, acc, "weight");
  const at::Tensor pw = check_broadcast_table(pos_weight, pos_weight_layout, input, acc, "pos_weight");
  return {w, pw};
}

}  // namespace focal
}  // namespace fusedloss
