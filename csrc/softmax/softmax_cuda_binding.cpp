// CUDA implementation of fusedloss::softmax_fwd (schema: fusedloss/ops/_library.py): checks,
// allocation and stream here, the kernel behind the torch-free launcher in softmax_cuda.cu. The
// kernel writes each row's loss and mean denominator; the reduction over rows finishes with torch
// ops on the device, in double (fusedloss.ops._reduce.finish_rows): no .item(), no sync. Class
// indices are not checked (that would need a sync): the kernel clamps them into [0, C).
//
// Only built into CUDAExtension builds (setup.py), which define FUSEDLOSS_WITH_CUDA.
#if defined(FUSEDLOSS_WITH_CUDA)

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/full.h>
#include <ATen/ops/where.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <tuple>

#include "../common/checks.h"
#include "softmax_checks.h"
#include "softmax_cuda.h"
#include "softmax_math.h"

namespace fusedloss {
namespace softmax {
namespace {

int32_t softmax_dtype_code(at::ScalarType t) {
  switch (t) {
    case at::kFloat:
      return kSoftmaxF32;
    case at::kDouble:
      return kSoftmaxF64;
    case at::kHalf:
      return kSoftmaxF16;
    case at::kBFloat16:
      return kSoftmaxBF16;
    default:
      TORCH_CHECK(false, "softmax_fwd (cuda): unsupported dtype ", t);
  }
  return -1;
}

// Launches the kernel; the gradient goes to `grad` when it is defined (a fresh tensor, or the input
// itself for softmax_fwd_inplace). Returns (loss, scale).
std::tuple<at::Tensor, at::Tensor> run_softmax_cuda(const at::Tensor& x, const at::Tensor& target,
                                                    const at::Tensor& w, int64_t mode, int64_t ignore_index,
                                                    double label_smoothing, double z_loss, double gamma,
                                                    int64_t reduction, const at::Tensor& grad) {
  const at::Tensor t = target.contiguous();
  const int64_t N = x.size(0), C = x.size(1), D = x.size(2);
  const at::TensorOptions acc_opts = x.options().dtype(opmath_dtype(x.scalar_type()));
  const at::Tensor row_loss = at::empty({N * D}, acc_opts);
  const at::Tensor row_den = at::empty({N * D}, acc_opts);

  SoftmaxLaunchArgs a{};
  a.input = x.data_ptr();
  const bool prob = t.is_floating_point();
  a.target = prob ? nullptr : t.data_ptr<int64_t>();
  a.probs = prob ? t.data_ptr() : nullptr;
  a.weight = w.defined() ? w.data_ptr() : nullptr;
  a.row_loss = row_loss.data_ptr();
  a.row_den = row_den.data_ptr();
  a.grad = grad.defined() ? grad.data_ptr() : nullptr;
  a.n = N;
  a.C = C;
  a.D = D;
  a.ignore_index = ignore_index;
  a.smoothing = label_smoothing;
  a.z_loss = z_loss;
  a.gamma = gamma;
  a.mode = static_cast<int32_t>(mode);
  a.input_dtype = softmax_dtype_code(x.scalar_type());
  if (N * D > 0) {
    const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(x.device().index()).stream();
    const int rc = fusedloss_softmax_fwd_cuda(&a, stream);
    TORCH_CHECK(rc == 0, "softmax_fwd (cuda): launch failed: ",
                rc > 0 ? cudaGetErrorString(static_cast<cudaError_t>(rc)) : "invalid launch arguments",
                " (code ", rc, ")");
  }

  // fusedloss.ops._reduce.finish_rows, on the device.
  if (reduction == kNone) {
    return {row_loss.to(x.scalar_type()).reshape({N, D}), at::full(at::IntArrayRef{}, 1.0, acc_opts)};
  }
  const at::Tensor total = row_loss.sum(at::kDouble);
  if (reduction == kSum) return {total.to(x.scalar_type()), at::full(at::IntArrayRef{}, 1.0, acc_opts)};
  const at::Tensor den = row_den.sum(at::kDouble);
  const at::Tensor nonzero = den.ne(0.0);
  const at::Tensor loss = at::where(nonzero, total.div(den), std::numeric_limits<double>::quiet_NaN());
  const at::Tensor safe = at::where(nonzero, den, 1.0);
  const at::Tensor scale = at::where(nonzero, safe.reciprocal(), 0.0);
  return {loss.to(x.scalar_type()), scale.to(acc_opts.dtype())};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> softmax_fwd_cuda(
    const at::Tensor& input, const at::Tensor& target, const std::optional<at::Tensor>& weight,
    int64_t mode, int64_t ignore_index, double label_smoothing, double z_loss, double gamma,
    int64_t reduction, bool compute_grad) {
  CHECK_CUDA(input);
  const at::Tensor w = check_softmax_args(input, target, weight, mode, label_smoothing, z_loss, gamma,
                                          reduction);
  const c10::cuda::CUDAGuard device_guard(input.device());
  const at::Tensor x = input.contiguous();
  at::Tensor grad = compute_grad ? at::empty(x.sizes(), x.options()) : input.new_empty({0});
  auto [loss, scale] = run_softmax_cuda(x, target, w, mode, ignore_index, label_smoothing, z_loss, gamma,
                                        reduction, compute_grad ? grad : at::Tensor());
  return {loss, grad, scale};
}

// inplace_grad: the gradient overwrites the (contiguous) input.
std::tuple<at::Tensor, at::Tensor> softmax_fwd_inplace_cuda(
    const at::Tensor& input, const at::Tensor& target, const std::optional<at::Tensor>& weight,
    int64_t mode, int64_t ignore_index, double label_smoothing, double z_loss, double gamma,
    int64_t reduction) {
  CHECK_CUDA(input);
  CHECK_CONTIGUOUS(input);
  const at::Tensor w = check_softmax_args(input, target, weight, mode, label_smoothing, z_loss, gamma,
                                          reduction);
  const c10::cuda::CUDAGuard device_guard(input.device());
  return run_softmax_cuda(input, target, w, mode, ignore_index, label_smoothing, z_loss, gamma, reduction,
                          input);
}

}  // namespace
}  // namespace softmax
}  // namespace fusedloss

TORCH_LIBRARY_IMPL(fusedloss, CUDA, m) {
  m.impl("softmax_fwd", TORCH_FN(fusedloss::softmax::softmax_fwd_cuda));
  m.impl("softmax_fwd_inplace", TORCH_FN(fusedloss::softmax::softmax_fwd_inplace_cuda));
}

#endif  // FUSEDLOSS_WITH_CUDA
