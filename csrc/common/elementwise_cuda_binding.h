// The CUDA-binding side of the elementwise loss ops (elementwise_op.h): dtype codes, the grid, the
// partials buffer, the FlElemIO of a call and the launch-error check. Only for *_cuda_binding.cpp
// files (built into CUDAExtension builds, which define FUSEDLOSS_WITH_CUDA); c10/cuda headers only,
// so that scripts/check_cuda_build.sh can syntax-check the bindings against a CPU build of torch.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>

#include <cuda_runtime_api.h>

#include <cstdint>

#include "cuda_device.h"
#include "elementwise_cuda.h"
#include "elementwise_op.h"

namespace fusedloss {
namespace elementwise {

inline int32_t dtype_code(at::ScalarType t, const char* op) {
  switch (t) {
    case at::kFloat:
      return kFlElemF32;
    case at::kDouble:
      return kFlElemF64;
    case at::kHalf:
      return kFlElemF16;
    case at::kBFloat16:
      return kFlElemBF16;
    case at::kByte:
    case at::kBool:  // one byte holding 0 or 1
      return kFlElemU8;
    case at::kChar:
      return kFlElemI8;
    case at::kShort:
      return kFlElemI16;
    case at::kInt:
      return kFlElemI32;
    case at::kLong:
      return kFlElemI64;
    default:
      TORCH_CHECK(false, op, " (cuda): unsupported dtype ", t);
  }
  return -1;
}

// One call's tensors (elementwise_op.h's prepare), its partials (double [2, num_blocks]), the
// launcher's FlElemIO and the current stream. The caller holds a CUDAGuard for the input's device.
struct CudaCall {
  Tensors e;
  at::Tensor partials;
  FlElemIO io;
  cudaStream_t stream;
};

inline CudaCall prepare_cuda(const at::Tensor& input, const at::Tensor& target, const at::Tensor& w,
                             at::IntArrayRef layout, int64_t reduction, bool compute_grad, const char* op) {
  CudaCall c;
  c.e = prepare(input, target, w, layout, reduction, compute_grad);
  const c10::DeviceIndex device = input.device().index();
  FlElemIO& io = c.io;
  io = FlElemIO{};
  io.num_blocks = c.e.numel > 0 ? fusedloss_elementwise_num_blocks(c.e.numel, sm_count(device)) : 0;
  c.partials = at::empty({2, static_cast<int64_t>(io.num_blocks)}, c.e.x.options().dtype(at::kDouble));
  io.input = c.e.x.data_ptr();
  io.target = c.e.t.data_ptr();
  io.weight = w.defined() ? c.e.w.data_ptr() : nullptr;
  io.loss = c.e.loss_elem.defined() ? c.e.loss_elem.data_ptr() : nullptr;
  io.grad = compute_grad ? c.e.grad.data_ptr() : nullptr;
  io.partials = c.partials.data_ptr<double>();
  io.numel = c.e.numel;
  io.weight_div = c.e.w_div;
  io.weight_mod = c.e.w_mod;
  io.input_dtype = dtype_code(c.e.x.scalar_type(), op);
  io.target_dtype = dtype_code(c.e.t.scalar_type(), op);
  c.stream = c10::cuda::getCurrentCUDAStream(device).stream();
  return c;
}

// rc: a launcher's return value (0, an FlElemStatus, or a cudaError_t).
inline void check_launch(int rc, const char* op) {
  TORCH_CHECK(rc == 0, op, " (cuda): launch failed: ",
              rc > 0 ? cudaGetErrorString(static_cast<cudaError_t>(rc)) : "invalid launch arguments", " (code ", rc,
              ")");
}

}  // namespace elementwise
}  // namespace fusedloss
