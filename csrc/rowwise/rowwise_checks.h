// Second-line argument checks of fusedloss::rowwise_fwd, shared by the CPU op and the CUDA binding
// (the Python layer validates first; each caller checks a's device itself).
#pragma once

#include <cmath>
#include <optional>
#include <tuple>

#include "../common/checks.h"
#include "rowwise_math.h"

namespace fusedloss {
namespace rowwise {

// The given optional tensor, or an undefined one.
inline at::Tensor value_or_undefined(const std::optional<at::Tensor>& t) {
  return t.has_value() && t->defined() ? *t : at::Tensor();
}

// Checks the arguments; returns (c, target), each undefined when absent.
inline std::tuple<at::Tensor, at::Tensor> check_rowwise_args(const at::Tensor& a, const at::Tensor& b,
                                                             const std::optional<at::Tensor>& c_opt,
                                                             const std::optional<at::Tensor>& target_opt,
                                                             int64_t kind, double margin, double p, double eps,
                                                             int64_t reduction) {
  CHECK_DTYPE_IN(a, at::kFloat, at::kDouble, at::kHalf, at::kBFloat16);
  CHECK_ARG(a.dim() == 2, "a must be 2-D [N, D], got shape ", a.sizes());
  CHECK_DEVICE(b, a.device());
  CHECK_DTYPE(b, a.scalar_type());
  CHECK_SAME_SHAPE(b, a);
  CHECK_ARG(kind >= kMarginRanking && kind <= kContrastive,
            "kind must be 0 (margin_ranking), 1 (order_calibrate), 2 (cosine_embedding), 3 "
            "(cosine_similarity), 4 (triplet) or 5 (contrastive), got ",
            kind);
  CHECK_ARG(reduction >= 0 && reduction <= 2, "reduction must be 0 (none), 1 (sum) or 2 (mean), got ",
            reduction);
  CHECK_ARG((kind != kMarginRanking && kind != kOrderCalibrate) || a.size(1) == 1,
            "kind ", kind, " (margin_ranking / order_calibrate) takes one element per row: a must be [N, 1], got ",
            a.sizes());
  CHECK_ARG(std::isfinite(margin), "margin must be finite, got ", margin);
  CHECK_ARG(p >= 1.0 && std::isfinite(p), "p must be finite and >= 1, got ", p);
  CHECK_ARG(eps >= 0.0 && std::isfinite(eps), "eps must be finite and >= 0, got ", eps);

  const at::Tensor c = value_or_undefined(c_opt);
  if (kind == kTriplet) {
    CHECK_ARG(c.defined(), "c (the negatives) is required for kind 4 (triplet)");
  } else {
    CHECK_ARG(!c.defined(), "c must be None for kind ", kind, " (only kind 4, triplet, takes it)");
  }
  if (c.defined()) {
    CHECK_DEVICE(c, a.device());
    CHECK_DTYPE(c, a.scalar_type());
    CHECK_SAME_SHAPE(c, a);
  }

  const at::Tensor target = value_or_undefined(target_opt);
  const bool needs_target = kind == kMarginRanking || kind == kCosineEmbedding || kind == kContrastive;
  CHECK_ARG(!needs_target || target.defined(), "target is required for kind ", kind,
            " (margin_ranking, cosine_embedding and contrastive take one)");
  if (target.defined()) {
    CHECK_DEVICE(target, a.device());
    CHECK_DTYPE(target, opmath_dtype(a.scalar_type()));
    CHECK_ARG(target.dim() == 1 && target.size(0) == a.size(0), "target must have shape [N] = [", a.size(0),
              "], got ", target.sizes());
  }
  return {c, target};
}

}  // namespace rowwise
}  // namespace fusedloss
