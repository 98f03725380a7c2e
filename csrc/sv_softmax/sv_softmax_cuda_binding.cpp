// CUDA implementation of fusedloss::sv_softmax_fwd (schema: fusedloss/ops/_library.py): checks,
// allocation (outputs and scratch) and stream here, the kernels behind the torch-free launcher in
// sv_softmax_cuda.cu. The kernels write each row's weighted loss and mean denominator; the reduction
// over rows finishes with torch ops on the device, in double (fusedloss.ops.sv_softmax.finish): no
// .item(), no sync. Shift values need no check: the kernels take them mod B.
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

#include <cstdint>
#include <optional>
#include <tuple>

#include "../common/checks.h"
#include "sv_softmax_checks.h"
#include "sv_softmax_cuda.h"
#include "sv_softmax_math.h"

namespace fusedloss {
namespace sv_softmax {
namespace {

int32_t sv_softmax_dtype_code(at::ScalarType t) {
  switch (t) {
    case at::kFloat:
      return kSvSoftmaxF32;
    case at::kDouble:
      return kSvSoftmaxF64;
    case at::kHalf:
      return kSvSoftmaxF16;
    case at::kBFloat16:
      return kSvSoftmaxBF16;
    default:
      TORCH_CHECK(false, "sv_softmax_fwd (cuda): unsupported dtype ", t);
  }
  return -1;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> sv_softmax_fwd_cuda(
    const at::Tensor& user, const at::Tensor& item, const at::Tensor& kept,
    const std::optional<at::Tensor>& weight, const at::Tensor& shifts, bool normalize, double margin,
    double gamma, double t, int64_t reduction, bool compute_grad) {
  CHECK_CUDA(user);
  const at::Tensor w = check_sv_softmax_args(user, item, kept, weight, shifts, margin, gamma, t, reduction);
  const c10::cuda::CUDAGuard device_guard(user.device());
  const at::Tensor u = user.contiguous();
  const at::Tensor v = item.contiguous();
  const at::Tensor kc = kept.contiguous();
  const at::Tensor r = shifts.contiguous();
  const int64_t B = u.size(0), D = u.size(1), K = r.numel();
  const at::TensorOptions acc_opts = u.options().dtype(opmath_dtype(u.scalar_type()));
  const at::Tensor row_loss = at::empty({B}, acc_opts);
  const at::Tensor row_den = at::empty({B}, acc_opts);
  const at::Tensor sumsq = normalize ? at::empty({2, B}, acc_opts) : at::Tensor();
  const bool need_scratch = compute_grad || K + 1 > kSvSoftmaxSmemSlots;
  const at::Tensor scratch = need_scratch ? at::empty({2, B, K + 1}, acc_opts) : at::Tensor();
  at::Tensor grad_u = compute_grad ? at::empty({B, D}, u.options()) : user.new_empty({0});
  at::Tensor grad_v = compute_grad ? at::empty({B, D}, v.options()) : item.new_empty({0});

  SvSoftmaxLaunchArgs a{};
  a.user = u.data_ptr();
  a.item = v.data_ptr();
  a.kept = kc.data_ptr<bool>();
  a.weight = w.defined() ? w.data_ptr() : nullptr;
  a.shifts = r.data_ptr<int64_t>();
  a.row_loss = row_loss.data_ptr();
  a.row_den = row_den.data_ptr();
  a.sumsq_user = normalize ? sumsq[0].data_ptr() : nullptr;
  a.sumsq_item = normalize ? sumsq[1].data_ptr() : nullptr;
  a.coef = need_scratch ? scratch[0].data_ptr() : nullptr;
  a.coef_cos = need_scratch ? scratch[1].data_ptr() : nullptr;
  a.grad_user = compute_grad ? grad_u.data_ptr() : nullptr;
  a.grad_item = compute_grad ? grad_v.data_ptr() : nullptr;
  a.B = B;
  a.D = D;
  a.K = K;
  a.margin = margin;
  a.gamma = gamma;
  a.t = t;
  a.normalize = normalize ? 1 : 0;
  a.reduction = static_cast<int32_t>(reduction);
  a.weight_per_row = w.defined() && w.numel() != 1 ? 1 : 0;
  a.input_dtype = sv_softmax_dtype_code(u.scalar_type());
  if (B > 0) {
    const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(u.device().index()).stream();
    const int rc = fusedloss_sv_softmax_fwd_cuda(&a, stream);
    TORCH_CHECK(rc == 0, "sv_softmax_fwd (cuda): launch failed: ",
                rc > 0 ? cudaGetErrorString(static_cast<cudaError_t>(rc)) : "invalid launch arguments",
                " (code ", rc, ")");
  }

  // fusedloss.ops.sv_softmax.finish, on the device.
  const at::Tensor total = row_loss.sum(at::kDouble);
  if (reduction == kSum) {
    return {total.to(u.scalar_type()), grad_u, grad_v, at::full(at::IntArrayRef{}, 1.0, acc_opts)};
  }
  const at::Tensor den = row_den.sum(at::kDouble);
  const at::Tensor nonzero = den.ne(0.0);
  const at::Tensor safe = at::where(nonzero, den, 1.0);
  const at::Tensor loss = at::where(nonzero, total.div(safe), 0.0);
  const at::Tensor scale = at::where(nonzero, safe.reciprocal(), 0.0);
  return {loss.to(u.scalar_type()), grad_u, grad_v, scale.to(acc_opts.dtype())};
}

}  // namespace
}  // namespace sv_softmax
}  // namespace fusedloss

TORCH_LIBRARY_IMPL(fusedloss, CUDA, m) {
  m.impl("sv_softmax_fwd", TORCH_FN(fusedloss::sv_softmax::sv_softmax_fwd_cuda));
}

#endif  // FUSEDLOSS_WITH_CUDA
