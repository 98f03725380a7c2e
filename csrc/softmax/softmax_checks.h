// Second-line argument checks of fusedloss::softmax_fwd, shared by the CPU op and the CUDA binding
// (the Python layer validates first; each caller checks input's device itself). Class-index values
// are not checked here (that would need a pass, and a sync on CUDA): the CPU op scans them and
// raises, the CUDA kernel clamps them into [0, C) so that no value can index out of bounds.
#pragma once

#include <cmath>
#include <optional>

#include "../common/checks.h"
#include "softmax_math.h"

namespace fusedloss {
namespace softmax {

// Returns the weight contiguous (undefined when absent).
inline at::Tensor check_softmax_args(const at::Tensor& input, const at::Tensor& target,
                                     const std::optional<at::Tensor>& weight, int64_t mode,
                                     double label_smoothing, double z_loss, double gamma, int64_t reduction) {
  CHECK_DEVICE(target, input.device());
  CHECK_DTYPE_IN(input, at::kFloat, at::kDouble, at::kHalf, at::kBFloat16);
  CHECK_ARG(input.dim() == 3, "input must be 3-D [N, C, D], got shape ", input.sizes());
  CHECK_ARG(mode == kCrossEntropy || mode == kFocal, "mode must be 0 (cross-entropy) or 1 (focal), got ", mode);
  CHECK_ARG(reduction >= kNone && reduction <= kMean, "reduction must be 0 (none), 1 (sum) or 2 (mean), got ",
            reduction);
  CHECK_ARG(label_smoothing >= 0.0 && label_smoothing <= 1.0, "label_smoothing must be in [0, 1], got ",
            label_smoothing);
  CHECK_ARG(z_loss >= 0.0 && std::isfinite(z_loss), "z_loss must be finite and >= 0, got ", z_loss);
  CHECK_ARG(gamma >= 0.0 && std::isfinite(gamma), "gamma must be finite and >= 0, got ", gamma);
  if (target.is_floating_point()) {
    CHECK_ARG(mode == kCrossEntropy, "probability targets are for mode 0 (cross-entropy) only");
    CHECK_DTYPE(target, input.scalar_type());
    CHECK_SAME_SHAPE(target, input);
  } else {
    CHECK_DTYPE(target, at::kLong);
    CHECK_SHAPE(target, input.size(0), input.size(2));
  }
  if (!weight.has_value() || !weight->defined()) return at::Tensor();
  const at::Tensor& w = *weight;
  CHECK_DEVICE(w, input.device());
  CHECK_DTYPE(w, opmath_dtype(input.scalar_type()));
  CHECK_SHAPE(w, input.size(1));
  return w.contiguous();
}

}  // namespace softmax
}  // namespace fusedloss
