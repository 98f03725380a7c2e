// CUDA implementations of fusedloss::multilabel_ce_fwd and fusedloss::sparse_multilabel_ce_fwd
// (schemas: fusedloss/ops/_library.py): checks, allocation and stream here, the kernels behind the
// torch-free launchers in multilabel_cuda.cu. The kernels write one loss per row; the reduction over
// rows finishes with torch ops on the device (in double, as fusedloss.ops.multilabel.finish_rows):
// no .item(), no sync. positive_index values are not checked (that would need a sync): the kernel
// skips indices outside [0, C).
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

#include <cmath>
#include <cstdint>
#include <limits>
#include <tuple>

#include "../common/checks.h"
#include "multilabel_checks.h"
#include "multilabel_cuda.h"
#include "multilabel_math.h"

namespace fusedloss {
namespace multilabel {
namespace {

int32_t multilabel_dtype_code(at::ScalarType t) {
  switch (t) {
    case at::kFloat:
      return kMultilabelF32;
    case at::kDouble:
      return kMultilabelF64;
    case at::kHalf:
      return kMultilabelF16;
    case at::kBFloat16:
      return kMultilabelBF16;
    case at::kByte:
    case at::kBool:  // one byte holding 0 or 1
      return kMultilabelU8;
    case at::kChar:
      return kMultilabelI8;
    case at::kShort:
      return kMultilabelI16;
    case at::kInt:
      return kMultilabelI32;
    case at::kLong:
      return kMultilabelI64;
    default:
      TORCH_CHECK(false, "multilabel_ce_fwd (cuda): unsupported dtype ", t);
  }
  return -1;
}

using Launcher = int (*)(const MultilabelLaunchArgs*, cudaStream_t);

struct Rows {
  at::Tensor x, row_loss, grad;
  MultilabelLaunchArgs args;
};

Rows prepare(const at::Tensor& input, bool compute_grad) {
  Rows r;
  r.x = input.contiguous();
  const int64_t n = r.x.size(0);
  r.row_loss = at::empty({n}, r.x.options().dtype(opmath_dtype(r.x.scalar_type())));
  r.grad = compute_grad ? at::empty(r.x.sizes(), r.x.options()) : input.new_empty({0});
  MultilabelLaunchArgs& a = r.args;
  a = MultilabelLaunchArgs{};
  a.input = r.x.data_ptr();
  a.row_loss = r.row_loss.data_ptr();
  a.grad = compute_grad ? r.grad.data_ptr() : nullptr;
  a.n_rows = n;
  a.n_cols = r.x.size(1);
  a.input_dtype = multilabel_dtype_code(r.x.scalar_type());
  return r;
}

void launch(Launcher fn, const Rows& r, const char* op) {
  if (r.args.n_rows == 0) return;
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(r.x.device().index()).stream();
  const int rc = fn(&r.args, stream);
  TORCH_CHECK(rc == 0, op, " (cuda): launch failed: ",
              rc > 0 ? cudaGetErrorString(static_cast<cudaError_t>(rc)) : "invalid launch arguments", " (code ",
              rc, ")");
}

// (loss, grad, scale) from the per-row losses, without a host sync.
std::tuple<at::Tensor, at::Tensor, at::Tensor> finish(const Rows& r, int64_t reduction) {
  const at::ScalarType dtype = r.x.scalar_type();
  const at::TensorOptions acc_opts = r.row_loss.options();
  const int64_t n = r.args.n_rows;
  if (reduction == kNone) {
    return {r.row_loss.to(dtype), r.grad,
            at::full(at::IntArrayRef{}, 1.0, acc_opts)};
  }
  const at::Tensor total = r.row_loss.sum(at::kDouble);
  if (reduction == kSum) {
    return {total.to(dtype), r.grad, at::full(at::IntArrayRef{}, 1.0, acc_opts)};
  }
  if (n == 0) {
    return {at::full(at::IntArrayRef{}, std::numeric_limits<double>::quiet_NaN(), r.x.options()), r.grad,
            at::full(at::IntArrayRef{}, 0.0, acc_opts)};
  }
  return {total.div(static_cast<double>(n)).to(dtype), r.grad,
          at::full(at::IntArrayRef{}, 1.0 / static_cast<double>(n), acc_opts)};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> multilabel_ce_fwd_cuda(const at::Tensor& input,
                                                                      const at::Tensor& target,
                                                                      int64_t reduction, bool compute_grad) {
  CHECK_CUDA(input);
  check_multilabel_ce_args(input, target, reduction);
  const c10::cuda::CUDAGuard device_guard(input.device());
  Rows r = prepare(input, compute_grad);
  const at::Tensor t = target.contiguous();
  r.args.target = t.data_ptr();
  r.args.target_dtype = multilabel_dtype_code(t.scalar_type());
  launch(&fusedloss_multilabel_ce_fwd_cuda, r, "multilabel_ce_fwd");
  return finish(r, reduction);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> sparse_multilabel_ce_fwd_cuda(const at::Tensor& input,
                                                                             const at::Tensor& positive_index,
                                                                             bool mask_zero, int64_t reduction,
                                                                             bool compute_grad) {
  CHECK_CUDA(input);
  check_sparse_multilabel_ce_args(input, positive_index, reduction);
  const c10::cuda::CUDAGuard device_guard(input.device());
  Rows r = prepare(input, compute_grad);
  const at::Tensor idx = positive_index.contiguous();
  r.args.positive_index = idx.data_ptr<int64_t>();
  r.args.k = idx.size(1);
  r.args.mask_zero = mask_zero ? 1 : 0;
  launch(&fusedloss_sparse_multilabel_ce_fwd_cuda, r, "sparse_multilabel_ce_fwd");
  return finish(r, reduction);
}

}  // namespace
}  // namespace multilabel
}  // namespace fusedloss

TORCH_LIBRARY_IMPL(fusedloss, CUDA, m) {
  m.impl("multilabel_ce_fwd", TORCH_FN(fusedloss::multilabel::multilabel_ce_fwd_cuda));
  m.impl("sparse_multilabel_ce_fwd", TORCH_FN(fusedloss::multilabel::sparse_multilabel_ce_fwd_cuda));
}

#endif  // FUSEDLOSS_WITH_CUDA
