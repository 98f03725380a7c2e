// CUDA implementation of fusedloss::binary_focal_fwd (schema: fusedloss/ops/_library.py): checks,
// allocation and stream here (common/elementwise_cuda_binding.h), the kernel behind the torch-free
// launcher in focal_cuda.cu. The reduction of the per-block partials finishes with torch ops on the
// device: no .item(), no sync.
//
// Only built into CUDAExtension builds (setup.py), which define FUSEDLOSS_WITH_CUDA.
#if defined(FUSEDLOSS_WITH_CUDA)

#include <ATen/core/Tensor.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <cstdint>
#include <optional>

#include "../common/checks.h"
#include "../common/elementwise_cuda_binding.h"
#include "../common/elementwise_op.h"
#include "focal_checks.h"
#include "focal_cuda.h"

namespace fusedloss {
namespace focal {
namespace {

namespace ew = ::fusedloss::elementwise;

ew::Result binary_focal_fwd_cuda(const at::Tensor& input, const at::Tensor& target,
                                 const std::optional<at::Tensor>& weight,
                                 const std::optional<at::Tensor>& pos_weight, int64_t mode, double alpha,
                                 double gamma, double label_smoothing, int64_t reduction,
                                 at::IntArrayRef weight_layout, at::IntArrayRef pos_weight_layout,
                                 bool compute_grad) {
  CHECK_CUDA(input);
  const auto [w, pw] = check_binary_focal_args(input, target, weight, pos_weight, mode, alpha, gamma,
                                               label_smoothing, reduction, weight_layout,
                                               pos_weight_layout);
  const c10::cuda::CUDAGuard device_guard(input.device());
  const ew::CudaCall c =
      ew::prepare_cuda(input, target, w, weight_layout, reduction, compute_grad, "binary_focal_fwd");
  FocalLaunchArgs a{};
  a.io = c.io;
  a.pos_weight = pw.defined() ? pw.data_ptr() : nullptr;
  a.pos_weight_div = pos_weight_layout[0];
  a.pos_weight_mod = pos_weight_layout[1];
  a.mode = mode;
  a.alpha = alpha;
  a.gamma = gamma;
  a.label_smoothing = label_smoothing;
  if (c.e.numel > 0) ew::check_launch(fusedloss_binary_focal_fwd_cuda(&a, c.stream), "binary_focal_fwd");
  return ew::finish_device(c.e, c.partials);
}

}  // namespace
}  // namespace focal
}  // namespace fusedloss

TORCH_LIBRARY_IMPL(fusedloss, CUDA, m) {
  m.impl("binary_focal_fwd", TORCH_FN(fusedloss::focal::binary_focal_fwd_cuda));
}

#endif  // FUSEDLOSS_WITH_CUDA
