// CUDA implementation of fusedloss::ziln_fwd (schema: fusedloss/ops/_library.py): checks, allocation
// and stream here, the kernels behind the torch-free launcher in ziln_cuda.cu. Nothing is read on the
// host: P is counted into a device scalar, and the per-block partials are finished into the 0-d loss
// by the launcher's last kernel (no .item(), no sync).
//
// Only built into CUDAExtension builds (setup.py), which define FUSEDLOSS_WITH_CUDA.
#if defined(FUSEDLOSS_WITH_CUDA)

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/full.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <cuda_runtime_api.h>

#include <cstdint>
#include <limits>
#include <tuple>

#include "../common/checks.h"
#include "../common/cuda_device.h"
#include "ziln_checks.h"
#include "ziln_cuda.h"

namespace fusedloss {
namespace ziln {
namespace {

int32_t ziln_dtype_code(at::ScalarType t) {
  switch (t) {
    case at::kFloat:
      return kZilnF32;
    case at::kDouble:
      return kZilnF64;
    case at::kHalf:
      return kZilnF16;
    case at::kBFloat16:
      return kZilnBF16;
    default:
      TORCH_CHECK(false, "ziln_fwd (cuda): unsupported dtype ", t);
  }
  return -1;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> ziln_fwd_cuda(const at::Tensor& logits, const at::Tensor& labels,
                                                             double max_sigma, double class_weight,
                                                             double reg_weight, double mu_reg, double sigma_reg,
                                                             bool compute_grad) {
  CHECK_CUDA(logits);
  check_ziln_args(logits, labels, max_sigma, class_weight, reg_weight, mu_reg, sigma_reg);
  const c10::cuda::CUDAGuard device_guard(logits.device());
  const int64_t B = logits.size(0);
  const at::ScalarType dtype = logits.scalar_type();
  const at::TensorOptions opts = logits.options();
  const at::Tensor scale = at::full(at::IntArrayRef{}, 1.0, opts.dtype(opmath_dtype(dtype)));
  at::Tensor grad = compute_grad ? at::empty({B, 3}, opts) : logits.new_empty({0});
  if (B == 0) {  // TF's means of nothing
    return {at::full(at::IntArrayRef{}, std::numeric_limits<double>::quiet_NaN(), opts), grad, scale};
  }

  const c10::DeviceIndex device = logits.device().index();
  at::Tensor loss = at::empty({}, opts);
  ZilnLaunchArgs a{};
  a.num_blocks = fusedloss_ziln_num_blocks(B, sm_count(device));
  const at::Tensor partials = at::empty({4, static_cast<int64_t>(a.num_blocks)}, opts.dtype(at::kDouble));
  const at::Tensor pos_count = at::empty({1}, opts.dtype(at::kLong));
  a.logits = logits.const_data_ptr();
  a.labels = labels.const_data_ptr();
  a.loss = loss.mutable_data_ptr();
  a.grad = compute_grad ? grad.mutable_data_ptr() : nullptr;
  a.partials = partials.mutable_data_ptr<double>();
  a.pos_count = pos_count.mutable_data_ptr<int64_t>();
  a.B = B;
  a.max_sigma = max_sigma;
  a.class_weight = class_weight;
  a.reg_weight = reg_weight;
  a.mu_reg = mu_reg;
  a.sigma_reg = sigma_reg;
  a.dtype = ziln_dtype_code(dtype);
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(device).stream();
  const int rc = fusedloss_ziln_fwd_cuda(&a, stream);
  TORCH_CHECK(rc == 0, "ziln_fwd (cuda): launch failed: ",
              rc > 0 ? cudaGetErrorString(static_cast<cudaError_t>(rc)) : "invalid launch arguments", " (code ", rc,
              ")");
  return {loss, grad, scale};
}

}  // namespace
}  // namespace ziln
}  // namespace fusedloss

TORCH_LIBRARY_IMPL(fusedloss, CUDA, m) {
  m.impl("ziln_fwd", TORCH_FN(fusedloss::ziln::ziln_fwd_cuda));
}

#endif  // FUSEDLOSS_WITH_CUDA
