// CUDA implementation of fusedloss::binary_focal_fwd (schema: fusedloss/ops/_library.py): checks,
// allocation and stream here, the kernel behind the torch-free launcher in focal_cuda.cu. The
// reduction of the per-block partials finishes with torch ops on the device: no .item(), no sync.
//
// Only built into CUDAExtension builds (setup.py), which define FUSEDLOSS_WITH_CUDA.
#if defined(FUSEDLOSS_WITH_CUDA)

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/full.h>
#include <ATen/ops/where.h>
#include <ATen/ops/zeros_like.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdint>
#include <optional>
#include <tuple>

#include "../common/checks.h"
#include "focal_checks.h"
#include "focal_cuda.h"
#include "focal_math.h"

namespace fusedloss {
namespace focal {
namespace {

int32_t focal_dtype_code(at::ScalarType t) {
  switch (t) {
    case at::kFloat:
      return kFocalF32;
    case at::kDouble:
      return kFocalF64;
    case at::kHalf:
      return kFocalF16;
    case at::kBFloat16:
      return kFocalBF16;
    case at::kByte:
    case at::kBool:  // one byte holding 0 or 1
      return kFocalU8;
    case at::kChar:
      return kFocalI8;
    case at::kShort:
      return kFocalI16;
    case at::kInt:
      return kFocalI32;
    case at::kLong:
      return kFocalI64;
    default:
      TORCH_CHECK(false, "binary_focal_fwd (cuda): unsupported dtype ", t);
  }
  return -1;
}

int32_t sm_count(c10::DeviceIndex device) {
  int count = 0;
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device));
  return count;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> binary_focal_fwd_cuda(
    const at::Tensor& input, const at::Tensor& target, const std::optional<at::Tensor>& weight,
    const std::optional<at::Tensor>& pos_weight, int64_t mode, double alpha, double gamma,
    double label_smoothing, int64_t reduction, at::IntArrayRef weight_layout,
    at::IntArrayRef pos_weight_layout, bool compute_grad) {
  CHECK_CUDA(input);
  const auto [w, pw] = check_binary_focal_args(input, target, weight, pos_weight, mode, alpha, gamma,
                                               label_smoothing, reduction, weight_layout,
                                               pos_weight_layout);
  const at::ScalarType acc = opmath_dtype(input.scalar_type());

  const c10::cuda::CUDAGuard device_guard(input.device());
  const at::Tensor x = input.contiguous();
  const at::Tensor t = target.contiguous();
  const int64_t numel = x.numel();
  at::Tensor loss_elem = reduction == kNone ? at::empty(x.sizes(), x.options()) : at::Tensor();
  at::Tensor grad = compute_grad ? at::empty(x.sizes(), x.options()) : input.new_empty({0});
  const at::TensorOptions acc_opts = x.options().dtype(acc);

  FocalLaunchArgs a{};
  a.num_blocks = numel > 0 ? fusedloss_binary_focal_num_blocks(numel, sm_count(input.device().index())) : 0;
  at::Tensor partials = at::empty({2, static_cast<int64_t>(a.num_blocks)}, x.options().dtype(at::kDouble));
  a.input = x.data_ptr();
  a.target = t.data_ptr();
  a.weight = w.defined() ? w.data_ptr() : nullptr;
  a.pos_weight = pw.defined() ? pw.data_ptr() : nullptr;
  a.loss = loss_elem.defined() ? loss_elem.data_ptr() : nullptr;
  a.grad = compute_grad ? grad.data_ptr() : nullptr;
  a.partials = partials.data_ptr<double>();
  a.numel = numel;
  a.weight_div = weight_layout[0];
  a.weight_mod = weight_layout[1];
  a.pos_weight_div = pos_weight_layout[0];
  a.pos_weight_mod = pos_weight_layout[1];
  a.mode = mode;
  a.alpha = alpha;
  a.gamma = gamma;
  a.label_smoothing = label_smoothing;
  a.input_dtype = focal_dtype_code(x.scalar_type());
  a.target_dtype = focal_dtype_code(t.scalar_type());
  if (numel > 0) {
    const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(input.device().index()).stream();
    const int rc = fusedloss_binary_focal_fwd_cuda(&a, stream);
    TORCH_CHECK(rc == 0, "binary_focal_fwd (cuda): launch failed: ",
                rc > 0 ? cudaGetErrorString(static_cast<cudaError_t>(rc)) : "invalid launch arguments",
                " (code ", rc, ")");
  }

  if (reduction == kNone) {
    return {loss_elem, grad, at::full(at::IntArrayRef{}, 1.0, acc_opts)};
  }
  // [2, num_blocks] -> [2]: the sum of the loss and the number of nonzero v, in double, on device.
  const at::Tensor totals = partials.sum(1);
  const at::Tensor sum = totals.select(0, 0);
  at::Tensor loss, scale;
  if (reduction == kSum) {
    loss = sum;
    scale = at::full(at::IntArrayRef{}, 1.0, acc_opts);
  } else if (reduction == kMean) {
    loss = sum.div(static_cast<double>(numel));  // 0 / 0 = NaN for an empty input, as torch's mean
    scale = at::full(at::IntArrayRef{}, numel > 0 ? 1.0 / static_cast<double>(numel) : 0.0, acc_opts);
  } else {  // SBNZ: sum / nnz, and 0 (value and scale) when nothing is nonzero
    const at::Tensor nnz = totals.select(0, 1);
    const at::Tensor any = nnz.gt(0);
    const at::Tensor denom = nnz.clamp_min(1.0);
    const at::Tensor zero = at::zeros_like(sum);
    loss = at::where(any, sum.div(denom), zero);
    scale = at::where(any, denom.reciprocal(), zero).to(acc);
  }
  // copy=true: for float64 input `loss` may still be a view of `totals` (two elements of storage).
  return {loss.to(x.scalar_type(), /*non_blocking=*/false, /*copy=*/true), grad, scale};
}

}  // namespace
}  // namespace focal
}  // namespace fusedloss

TORCH_LIBRARY_IMPL(fusedloss, CUDA, m) {
  m.impl("binary_focal_fwd", TORCH_FN(fusedloss::focal::binary_focal_fwd_cuda));
}

#endif  // FUSEDLOSS_WITH_CUDA
