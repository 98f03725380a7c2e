// Second-line argument checks of fusedloss::metric_fwd, shared by the CPU op and the CUDA binding
// (the Python layer validates first; each caller checks emb's device itself).
#pragma once

#include <cmath>
#include <optional>

#include "../common/checks.h"
#include "metric_math.h"

namespace fusedloss {
namespace metric {

// Returns the sessions contiguous (undefined when absent).
inline at::Tensor check_metric_args(const at::Tensor& emb, const at::Tensor& labels,
                                    const std::optional<at::Tensor>& sessions, int64_t kind, double p0,
                                    double p1, double p2) {
  CHECK_DTYPE_IN(emb, at::kFloat, at::kDouble, at::kHalf, at::kBFloat16);
  CHECK_ARG(emb.dim() == 2, "emb must be 2-D [B, D], got shape ", emb.sizes());
  CHECK_DEVICE(labels, emb.device());
  CHECK_DTYPE(labels, at::kLong);
  CHECK_SHAPE(labels, emb.size(0));
  CHECK_ARG(kind == kCircle || kind == kMultiSimilarity,
            "kind must be 0 (circle) or 1 (multi_similarity), got ", kind);
  if (kind == kCircle) {
    CHECK_ARG(std::isfinite(p0), "margin (p0) must be finite, got ", p0);
    CHECK_ARG(p1 > 0.0 && std::isfinite(p1), "gamma (p1) must be finite and > 0, got ", p1);
  } else {
    CHECK_ARG(p0 > 0.0 && std::isfinite(p0), "alpha (p0) must be finite and > 0, got ", p0);
    CHECK_ARG(p1 > 0.0 && std::isfinite(p1), "beta (p1) must be finite and > 0, got ", p1);
    CHECK_ARG(std::isfinite(p2), "lambda (p2) must be finite, got ", p2);
  }
  if (!sessions.has_value() || !sessions->defined()) return at::Tensor();
  const at::Tensor& g = *sessions;
  CHECK_DEVICE(g, emb.device());
  CHECK_DTYPE(g, at::kLong);
  CHECK_SHAPE(g, emb.size(0));
  return g.contiguous();
}

}  // namespace metric
}  // namespace fusedloss
