// Second-line argument checks of fusedloss::session_softmax_fwd, shared by the CPU op and the CUDA
// binding (the Python layer validates first; each caller checks the device kind itself). The session
// ranges are checked by the CPU op only (check_session_ranges): on CUDA that would need a host sync,
// and the kernel clamps them instead.
#pragma once

#include <cmath>
#include <optional>

#include "../common/checks.h"
#include "session_softmax_math.h"

namespace fusedloss {
namespace session_softmax {

// Returns the weight contiguous (undefined when absent).
inline at::Tensor check_session_softmax_args(const at::Tensor& logits, const at::Tensor& labels,
                                             const std::optional<at::Tensor>& weight, const at::Tensor& seg_lo,
                                             const at::Tensor& seg_hi, int64_t kind, int64_t flags,
                                             double temperature, double clip_max) {
  CHECK_ARG(kind >= kRank && kind <= kJrcSplit, "kind must be 0 (rank), 1 (distill), 2 (jrc) or 3 (jrc split), got ",
            kind);
  CHECK_ARG(flags >= 0 && flags <= (kLabelIsLogits | kTargetsGiven), "flags must be in [0, 3], got ", flags);
  CHECK_ARG(temperature > 0.0 && std::isfinite(temperature), "temperature must be finite and > 0, got ",
            temperature);
  CHECK_ARG(clip_max >= 1.0 && std::isfinite(clip_max), "clip_max must be finite and >= 1, got ", clip_max);
  CHECK_DTYPE_IN(logits, at::kFloat, at::kDouble);
  const int64_t cols = num_cols(kind);
  CHECK_ARG(logits.dim() == 2 && logits.size(1) == cols, "logits must be [B, ", cols, "] for kind ", kind,
            ", got shape ", logits.sizes());
  CHECK_CONTIGUOUS(logits);
  const int64_t b = logits.size(0);
  for (const at::Tensor* t : {&labels, &seg_lo, &seg_hi}) {
    TORCH_CHECK(t->device() == logits.device(), "labels/seg_lo/seg_hi must be on ", logits.device(), ", got ",
                t->device());
    TORCH_CHECK(t->dim() == 1 && t->size(0) == b && t->is_contiguous(),
                "labels/seg_lo/seg_hi must be contiguous 1-D of size B = ", b, ", got shape ", t->sizes());
  }
  CHECK_DTYPE(labels, logits.scalar_type());
  CHECK_DTYPE(seg_lo, at::kLong);
  CHECK_DTYPE(seg_hi, at::kLong);
  if (!weight.has_value() || !weight->defined()) return at::Tensor();
  const at::Tensor& w = *weight;
  CHECK_ARG(kind >= kJrc, "weight must be None for the listwise kinds (0, 1), got a tensor for kind ", kind);
  CHECK_DEVICE(w, logits.device());
  CHECK_DTYPE(w, logits.scalar_type());
  CHECK_ARG(w.dim() == 1 && w.size(0) == b, "weight must be 1-D of size B = ", b, ", got shape ", w.sizes());
  return w.contiguous();
}

}  // namespace session_softmax
}  // namespace fusedloss
