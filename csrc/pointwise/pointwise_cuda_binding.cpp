// CUDA implementation of fusedloss::pointwise_fwd (schema: fusedloss/ops/_library.py): checks,
// allocation and stream here (common/elementwise_cuda_binding.h), the kernel behind the torch-free
// launcher in pointwise_cuda.cu. The reduction of the per-block partials finishes with torch ops on
// the device: no .item(), no sync.
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
#include "pointwise_checks.h"
#include "pointwise_cuda.h"

namespace fusedloss {
namespace pointwise {
namespace {

namespace ew = ::fusedloss::elementwise;

ew::Result pointwise_fwd_cuda(const at::Tensor& input, const at::Tensor& target,
                              const std::optional<at::Tensor>& weight, int64_t kind, double param,
                              int64_t reduction, at::IntArrayRef weight_layout, bool compute_grad) {
  CHECK_CUDA(input);
  const at::Tensor w = check_pointwise_args(input, target, weight, kind, param, reduction, weight_layout);
  const c10::cuda::CUDAGuard device_guard(input.device());
  const ew::CudaCall c = ew::prepare_cuda(input, target, w, weight_layout, reduction, compute_grad, "pointwise_fwd");
  const PointwiseLaunchArgs a{c.io, kind, param};
  if (c.e.numel > 0) ew::check_launch(fusedloss_pointwise_fwd_cuda(&a, c.stream), "pointwise_fwd");
  return ew::finish_device(c.e, c.partials);
}

}  // namespace
}  // namespace pointwise
}  // namespace fusedloss

TORCH_LIBRARY_IMPL(fusedloss, CUDA, m) {
  m.impl("pointwise_fwd", TORCH_FN(fusedloss::pointwise::pointwise_fwd_cuda));
}

#endif  // FUSEDLOSS_WITH_CUDA
