// CUDA kernel of fusedloss::pointwise_fwd. Torch-free: raw pointers, int64 sizes, an explicit stream
// (pointwise_cuda.h); pointwise_cuda_binding.cpp turns tensors into PointwiseLaunchArgs.
//
// The shared grid-stride kernel (common/elementwise_cuda.cuh) with pointwise_elem (pointwise_math.h,
// the same code as the CPU kernel) times the element's weight as its functor; the kind stays a
// runtime value (a uniform branch: the kernel is memory bound). Instantiated for the four input
// dtypes, the target having the input's: 4 kernels. Transcendentals per element: at most one exp,
// expm1 or two logs (pointwise_math.h).
#include <cuda_runtime.h>

#include <stdint.h>

#include "../common/cuda_convert.cuh"
#include "../common/elementwise_cuda.cuh"
#include "pointwise_cuda.h"
#include "pointwise_math.h"

namespace fusedloss {
namespace pointwise {
namespace {

namespace ew = ::fusedloss::elementwise;

template <typename acc_t>
struct PointwiseOp {
  int64_t kind;
  acc_t param;

  __device__ __forceinline__ ew::ElemResult<acc_t> operator()(int64_t, acc_t x, acc_t t, acc_t w) const {
    const ElemOut<acc_t> o = pointwise_elem<acc_t>(kind, x, t, param);
    return {w * o.loss, w * o.grad, w != acc_t(0)};
  }
};

template <typename scalar_t>
int launch_pointwise(const PointwiseLaunchArgs& a, cudaStream_t stream) {
  using acc_t = typename AccOf<scalar_t>::type;
  const PointwiseOp<acc_t> op{a.kind, static_cast<acc_t>(a.param)};
  return ew::launch<scalar_t, scalar_t>(a.io, op, stream);
}

}  // namespace
}  // namespace pointwise
}  // namespace fusedloss

extern "C" int fusedloss_pointwise_fwd_cuda(const PointwiseLaunchArgs* args, cudaStream_t stream) {
  int rc = 0;
  if (!fusedloss::elementwise::should_launch(args, &rc)) return rc;
  if (args->kind < 0 || args->kind >= fusedloss::pointwise::kNumKinds) return kFlElemBadArgs;
  if (args->io.target_dtype != args->io.input_dtype) return kFlElemBadTargetDType;
  return fusedloss::elementwise::dispatch_input(args->io.input_dtype, [&](auto tag) {
    return fusedloss::pointwise::launch_pointwise<typename decltype(tag)::type>(*args, stream);
  });
}
