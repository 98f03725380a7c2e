// CUDA implementation of fusedloss::rowwise_fwd (schema: fusedloss/ops/_library.py): checks,
// allocation and stream here, the kernels behind the torch-free launcher in rowwise_cuda.cu. The
// kernel writes each row's loss; the reduction over rows finishes with torch ops on the device, in
// double (fusedloss.ops.rowwise.finish): no .item(), no sync.
//
// Only built into CUDAExtension builds (setup.py), which define FUSEDLOSS_WITH_CUDA.
#if defined(FUSEDLOSS_WITH_CUDA)

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/full.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <cuda_runtime_api.h>

#include <cstdint>
#include <limits>
#include <optional>
#include <tuple>

#include "../common/checks.h"
#include "rowwise_checks.h"
#include "rowwise_cuda.h"
#include "rowwise_math.h"

namespace fusedloss {
namespace rowwise {
namespace {

int32_t rowwise_dtype_code(at::ScalarType t) {
  switch (t) {
    case at::kFloat:
      return kRowwiseF32;
    case at::kDouble:
      return kRowwiseF64;
    case at::kHalf:
      return kRowwiseF16;
    case at::kBFloat16:
      return kRowwiseBF16;
    default:
      TORCH_CHECK(false, "rowwise_fwd (cuda): unsupported dtype ", t);
  }
  return -1;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> rowwise_fwd_cuda(
    const at::Tensor& a_in, const at::Tensor& b_in, const std::optional<at::Tensor>& c_opt,
    const std::optional<at::Tensor>& target_opt, int64_t kind, double margin, double p, double eps, bool swap,
    int64_t reduction, bool compute_grad) {
  CHECK_CUDA(a_in);
  at::Tensor c_in, t_in;
  std::tie(c_in, t_in) = check_rowwise_args(a_in, b_in, c_opt, target_opt, kind, margin, p, eps, reduction);
  const c10::cuda::CUDAGuard device_guard(a_in.device());
  const at::Tensor a = a_in.contiguous();
  const at::Tensor b = b_in.contiguous();
  const at::Tensor c = c_in.defined() ? c_in.contiguous() : at::Tensor();
  const at::Tensor t = t_in.defined() ? t_in.contiguous() : at::Tensor();
  const int64_t N = a.size(0), D = a.size(1);
  const at::ScalarType dtype = a.scalar_type();
  const at::TensorOptions acc_opts = a.options().dtype(opmath_dtype(dtype));

  const at::Tensor row_loss = at::empty({N}, acc_opts);
  at::Tensor ga = compute_grad ? at::empty({N, D}, a.options()) : a.new_empty({0});
  at::Tensor gb = compute_grad ? at::empty({N, D}, a.options()) : a.new_empty({0});
  at::Tensor gc = compute_grad && c.defined() ? at::empty({N, D}, a.options()) : a.new_empty({0});
  const bool has_elems = N > 0 && D > 0;  // else the tensors may have no storage (and nothing to write)

  RowwiseLaunchArgs args{};
  args.a = has_elems ? a.const_data_ptr() : nullptr;
  args.b = has_elems ? b.const_data_ptr() : nullptr;
  args.c = has_elems && c.defined() ? c.const_data_ptr() : nullptr;
  args.target = t.defined() ? t.const_data_ptr() : nullptr;
  args.row_loss = N > 0 ? row_loss.mutable_data_ptr() : nullptr;
  args.grad_a = compute_grad && has_elems ? ga.mutable_data_ptr() : nullptr;
  args.grad_b = compute_grad && has_elems ? gb.mutable_data_ptr() : nullptr;
  args.grad_c = compute_grad && has_elems && c.defined() ? gc.mutable_data_ptr() : nullptr;
  args.N = N;
  args.D = D;
  args.margin = margin;
  args.p = p;
  args.eps = eps;
  args.kind = static_cast<int32_t>(kind);
  args.swap = swap ? 1 : 0;
  args.input_dtype = rowwise_dtype_code(dtype);
  if (N > 0) {
    const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(a.device().index()).stream();
    const int rc = fusedloss_rowwise_fwd_cuda(&args, stream);
    TORCH_CHECK(rc == 0, "rowwise_fwd (cuda): launch failed: ",
                rc > 0 ? cudaGetErrorString(static_cast<cudaError_t>(rc)) : "invalid launch arguments",
                " (code ", rc, ")");
  }

  // fusedloss.ops.rowwise.finish, on the device: the sum in double; the mean multiplies it by 1/N
  // rounded to acc_t (the scale the backward uses).
  if (reduction == 0) {
    return {row_loss.to(dtype), ga, gb, gc, at::full(at::IntArrayRef{}, 1.0, acc_opts)};
  }
  const at::Tensor total = row_loss.sum(at::kDouble);
  if (reduction == 1) {
    return {total.to(dtype), ga, gb, gc, at::full(at::IntArrayRef{}, 1.0, acc_opts)};
  }
  const double inv_n = N > 0 ? 1.0 / static_cast<double>(N) : std::numeric_limits<double>::quiet_NaN();
  const at::Tensor scale = at::full(at::IntArrayRef{}, inv_n, acc_opts);
  return {total.mul(scale.to(at::kDouble)).to(dtype), ga, gb, gc, scale};
}

}  // namespace
}  // namespace rowwise
}  // namespace fusedloss

TORCH_LIBRARY_IMPL(fusedloss, CUDA, m) {
  m.impl("rowwise_fwd", TORCH_FN(fusedloss::rowwise::rowwise_fwd_cuda));
}

#endif  // FUSEDLOSS_WITH_CUDA
