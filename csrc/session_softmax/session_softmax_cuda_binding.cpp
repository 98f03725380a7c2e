// CUDA implementation of fusedloss::session_softmax_fwd (schema: fusedloss/ops/_library.py): checks,
// allocation and stream here, the kernel behind the torch-free launcher in session_softmax_cuda.cu.
// The kernel writes per-item terms ([P, B] row_loss and row_den); their sums over the batch are taken
// here with ATen on the device, in double (deterministic; no .item(), no sync). The session ranges
// are not checked here (that would need a sync); the kernel clamps them to [0, B), and the cpu op
// checks them.
//
// Only built into CUDAExtension builds (setup.py), which define FUSEDLOSS_WITH_CUDA.
#if defined(FUSEDLOSS_WITH_CUDA)

#include <ATen/core/Tensor.h>
#include <ATen/ops/sum.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <cuda_runtime_api.h>

#include <cstdint>
#include <optional>
#include <tuple>

#include "../common/checks.h"
#include "session_softmax_checks.h"
#include "session_softmax_cuda.h"

namespace fusedloss {
namespace session_softmax {
namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor> session_softmax_fwd_cuda(
    const at::Tensor& logits, const at::Tensor& labels, const std::optional<at::Tensor>& weight,
    const at::Tensor& seg_lo, const at::Tensor& seg_hi, int64_t kind, int64_t flags, double temperature,
    double clip_max, bool compute_grad) {
  CHECK_CUDA(logits);
  const at::Tensor w =
      check_session_softmax_args(logits, labels, weight, seg_lo, seg_hi, kind, flags, temperature, clip_max);
  const c10::cuda::CUDAGuard device_guard(logits.device());
  const int64_t n = logits.size(0);
  const int64_t parts = num_parts(kind);
  const at::TensorOptions opts = logits.options();
  // Zeros, though every item of a valid partition is written: with bad ranges (clamped in the
  // kernel) an item that no session covers reads 0 rather than garbage.
  at::Tensor row_loss = at::zeros({parts, n}, opts);
  at::Tensor row_den = at::zeros({parts, n}, opts);
  at::Tensor grad = compute_grad ? at::zeros({parts, n, logits.size(1)}, opts) : logits.new_empty({0});

  SessionSoftmaxLaunchArgs a{};
  a.logits = logits.data_ptr();
  a.labels = labels.data_ptr();
  a.weight = w.defined() ? w.data_ptr() : nullptr;
  a.seg_lo = seg_lo.data_ptr<int64_t>();
  a.seg_hi = seg_hi.data_ptr<int64_t>();
  a.row_loss = row_loss.data_ptr();
  a.row_den = row_den.data_ptr();
  a.grad = compute_grad ? grad.data_ptr() : nullptr;
  a.n = n;
  a.kind = kind;
  a.flags = flags;
  a.temperature = temperature;
  a.clip_max = clip_max;
  a.dtype = logits.scalar_type() == at::kDouble ? kSessionSoftmaxF64 : kSessionSoftmaxF32;
  a.num_blocks = fusedloss_session_softmax_num_blocks(n);
  if (n > 0) {
    const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(logits.device().index()).stream();
    const int rc = fusedloss_session_softmax_cuda(&a, stream);
    TORCH_CHECK(rc == 0, "session_softmax_fwd (cuda): launch failed: ",
                rc > 0 ? cudaGetErrorString(static_cast<cudaError_t>(rc)) : "invalid launch arguments", " (code ",
                rc, ")");
  }
  // Sums over the batch in double (fresh tensors: no aliasing), returned in the accumulation dtype.
  const at::Tensor num = row_loss.sum({1}, false, at::kDouble).to(logits.scalar_type());
  const at::Tensor den = row_den.sum({1}, false, at::kDouble).to(logits.scalar_type());
  return {num, den, grad};
}

}  // namespace
}  // namespace session_softmax
}  // namespace fusedloss

TORCH_LIBRARY_IMPL(fusedloss, CUDA, m) {
  m.impl("session_softmax_fwd", TORCH_FN(fusedloss::session_softmax::session_softmax_fwd_cuda));
}

#endif  // FUSEDLOSS_WITH_CUDA
