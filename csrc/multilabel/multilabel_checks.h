// Second-line argument checks of fusedloss::multilabel_ce_fwd and fusedloss::sparse_multilabel_ce_fwd,
// shared by the CPU ops and the CUDA bindings (the Python layer validates first; each caller checks
// input's device itself). positive_index values are not checked here (that would need a pass, and a
// sync on CUDA): the kernels skip indices outside [0, C).
#pragma once

#include "../common/checks.h"
#include "multilabel_math.h"

namespace fusedloss {
namespace multilabel {

inline void check_rows_and_reduction(const at::Tensor& input, int64_t reduction) {
  CHECK_DTYPE_IN(input, at::kFloat, at::kDouble, at::kHalf, at::kBFloat16);
  CHECK_ARG(input.dim() == 2, "input must be 2-D [N, C], got shape ", input.sizes());
  CHECK_ARG(reduction >= kNone && reduction <= kMean, "reduction must be 0 (none), 1 (sum) or 2 (mean), got ",
            reduction);
}

inline void check_multilabel_ce_args(const at::Tensor& input, const at::Tensor& target, int64_t reduction) {
  CHECK_DEVICE(target, input.device());
  check_rows_and_reduction(input, reduction);
  CHECK_DTYPE_IN(target, at::kFloat, at::kDouble, at::kHalf, at::kBFloat16, at::kByte, at::kChar,
                 at::kShort, at::kInt, at::kLong, at::kBool);
  CHECK_SAME_SHAPE(target, input);
}

inline void check_sparse_multilabel_ce_args(const at::Tensor& input, const at::Tensor& positive_index,
                                            int64_t reduction) {
  CHECK_DEVICE(positive_index, input.device());
  check_rows_and_reduction(input, reduction);
  CHECK_DTYPE(positive_index, at::kLong);
  CHECK_ARG(positive_index.dim() == 2 && positive_index.size(0) == input.size(0),
            "positive_index must be 2-D [N, K] with N = ", input.size(0), ", got shape ",
            positive_index.sizes());
}

}  // namespace multilabel
}  // namespace fusedloss
