// Second-line argument checks of fusedloss::pointwise_fwd, shared by the CPU op and the CUDA binding
// (the Python layer validates first; each caller checks input's device itself).
#pragma once

#include <cmath>

#include "../common/checks.h"
#include "../common/elementwise_op.h"
#include "pointwise_math.h"

namespace fusedloss {
namespace pointwise {

static_assert(int64_t{kNone} == elementwise::kNone && int64_t{kSum} == elementwise::kSum &&
                  int64_t{kMean} == elementwise::kMean && int64_t{kSBNZ} == elementwise::kSBNZ,
              "pointwise_math.h and elementwise_op.h must number the reductions alike");

// Returns the weight table (undefined when absent).
inline at::Tensor check_pointwise_args(const at::Tensor& input, const at::Tensor& target,
                                       const std::optional<at::Tensor>& weight, int64_t kind, double param,
                                       int64_t reduction, at::IntArrayRef weight_layout) {
  CHECK_DEVICE(target, input.device());
  CHECK_DTYPE_IN(input, at::kFloat, at::kDouble, at::kHalf, at::kBFloat16);
  CHECK_DTYPE(target, input.scalar_type());
  CHECK_SAME_SHAPE(target, input);
  CHECK_ARG(kind >= 0 && kind < kNumKinds, "kind must be in [0, ", static_cast<int64_t>(kNumKinds),
            "), got ", kind);
  elementwise::check_reduction(reduction);
  const bool positive = kind == kHuber || kind == kMAPE;
  const bool nonnegative = kind == kSmoothL1 || kind == kLogLoss;
  CHECK_ARG(!positive || (param > 0.0 && std::isfinite(param)), "param must be finite and > 0 for kind ",
            kind, ", got ", param);
  CHECK_ARG(!nonnegative || (param >= 0.0 && std::isfinite(param)),
            "param must be finite and >= 0 for kind ", kind, ", got ", param);
  return check_broadcast_table(weight, weight_layout, input, opmath_dtype(input.scalar_type()), "weight");
}

}  // namespace pointwise
}  // namespace fusedloss
