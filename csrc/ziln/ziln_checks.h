// Second-line argument checks of fusedloss::ziln_fwd, shared by the CPU op and the CUDA binding (the
// Python layer, fusedloss/functional/ziln.py, validates first; each caller checks logits' device
// itself).
#pragma once

#include <cmath>

#include "../common/checks.h"
#include "ziln_math.h"

namespace fusedloss {
namespace ziln {

inline void check_ziln_args(const at::Tensor& logits, const at::Tensor& labels, double max_sigma,
                            double class_weight, double reg_weight, double mu_reg, double sigma_reg) {
  CHECK_DTYPE_IN(logits, at::kFloat, at::kDouble, at::kHalf, at::kBFloat16);
  CHECK_ARG(logits.dim() == 2 && logits.size(1) == 3, "logits must be [B, 3] (l_p, mu, l_s), got shape ",
            logits.sizes());
  CHECK_CONTIGUOUS(logits);
  CHECK_DEVICE(labels, logits.device());
  CHECK_ARG(labels.scalar_type() == opmath_dtype(logits.scalar_type()), "labels must have dtype ",
            opmath_dtype(logits.scalar_type()), " (the accumulation dtype of ", logits.scalar_type(),
            " logits), got ", labels.scalar_type());
  CHECK_ARG(labels.dim() == 1 && labels.size(0) == logits.size(0), "labels must have shape [B] = [",
            logits.size(0), "], got ", labels.sizes());
  CHECK_CONTIGUOUS(labels);
  const double sigma_min = sigma_min_default<double>();
  CHECK_ARG(std::isfinite(max_sigma) && max_sigma > sigma_min, "max_sigma must be finite and > sqrt(1e-7) = ",
            sigma_min, ", got ", max_sigma);
  CHECK_ARG(std::isfinite(class_weight), "class_weight must be finite, got ", class_weight);
  CHECK_ARG(std::isfinite(reg_weight), "reg_weight must be finite, got ", reg_weight);
  CHECK_ARG(std::isfinite(mu_reg), "mu_reg must be finite, got ", mu_reg);
  CHECK_ARG(std::isfinite(sigma_reg), "sigma_reg must be finite, got ", sigma_reg);
}

}  // namespace ziln
}  // namespace fusedloss
