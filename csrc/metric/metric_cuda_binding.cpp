// CUDA implementation of fusedloss::metric_fwd (schema: fusedloss/ops/_library.py): checks,
// allocation (outputs and scratch) and stream here, the kernels behind the torch-free launcher in
// metric_cuda.cu. The kernels write each anchor's loss; the mean finishes with torch ops on the
// device, in double (fusedloss.ops.metric.finish): no .item(), no sync.
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

#include <cmath>
#include <cstdint>
#include <optional>
#include <tuple>

#include "../common/checks.h"
#include "metric_checks.h"
#include "metric_cuda.h"
#include "metric_math.h"

namespace fusedloss {
namespace metric {
namespace {

int32_t metric_dtype_code(at::ScalarType t) {
  switch (t) {
    case at::kFloat:
      return kMetricF32;
    case at::kDouble:
      return kMetricF64;
    case at::kHalf:
      return kMetricF16;
    case at::kBFloat16:
      return kMetricBF16;
    default:
      TORCH_CHECK(false, "metric_fwd (cuda): unsupported dtype ", t);
  }
  return -1;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> metric_fwd_cuda(const at::Tensor& emb, const at::Tensor& labels,
                                                               const std::optional<at::Tensor>& sessions,
                                                               int64_t kind, bool normalize, double p0, double p1,
                                                               double p2, bool compute_grad) {
  CHECK_CUDA(emb);
  const at::Tensor g = check_metric_args(emb, labels, sessions, kind, p0, p1, p2);
  const c10::cuda::CUDAGuard device_guard(emb.device());
  const at::Tensor e = emb.contiguous();
  const at::Tensor y = labels.contiguous();
  const int64_t B = e.size(0), D = e.size(1);
  const at::TensorOptions acc_opts = e.options().dtype(opmath_dtype(e.scalar_type()));
  const at::Tensor row_loss = at::empty({B}, acc_opts);
  const at::Tensor sumsq = normalize ? at::empty({B}, acc_opts) : at::Tensor();
  const at::Tensor stats = at::empty({3, B}, acc_opts);
  const at::Tensor sh = compute_grad ? at::empty({B, D}, e.options().dtype(at::kDouble)) : at::Tensor();
  at::Tensor grad = compute_grad ? at::empty({B, D}, e.options()) : emb.new_empty({0});

  MetricLaunchArgs a{};
  a.emb = e.data_ptr();
  a.labels = y.data_ptr<int64_t>();
  a.sessions = g.defined() ? g.data_ptr<int64_t>() : nullptr;
  a.row_loss = row_loss.data_ptr();
  a.sumsq = normalize ? sumsq.data_ptr() : nullptr;
  a.stats = stats.data_ptr();
  a.sh = compute_grad ? sh.data_ptr<double>() : nullptr;
  a.grad = compute_grad ? grad.data_ptr() : nullptr;
  a.B = B;
  a.D = D;
  a.kind = kind;
  a.p0 = p0;
  a.p1 = p1;
  a.p2 = p2;
  a.normalize = normalize ? 1 : 0;
  a.input_dtype = metric_dtype_code(e.scalar_type());
  if (B > 0) {
    const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(e.device().index()).stream();
    const int rc = fusedloss_metric_fwd_cuda(&a, stream);
    TORCH_CHECK(rc == 0, "metric_fwd (cuda): launch failed: ",
                rc > 0 ? cudaGetErrorString(static_cast<cudaError_t>(rc)) : "invalid launch arguments", " (code ", rc,
                ")");
  }

  // fusedloss.ops.metric.finish, on the device: the anchor losses summed in double, times 1/B (NaN
  // for B = 0).
  const at::Tensor scale =
      at::full(at::IntArrayRef{}, B > 0 ? 1.0 / static_cast<double>(B) : static_cast<double>(NAN), acc_opts);
  const at::Tensor loss = row_loss.sum(at::kDouble).mul(scale).to(e.scalar_type());
  return {loss, grad, scale};
}

}  // namespace
}  // namespace metric
}  // namespace fusedloss

TORCH_LIBRARY_IMPL(fusedloss, CUDA, m) {
  m.impl("metric_fwd", TORCH_FN(fusedloss::metric::metric_fwd_cuda));
}

#endif  // FUSEDLOSS_WITH_CUDA
