// CUDA kernel of fusedloss::binary_focal_fwd. Torch-free: raw pointers, int64 sizes, an explicit
// stream (focal_cuda.h); focal_cuda_binding.cpp turns tensors into FocalLaunchArgs.
//
// The shared grid-stride kernel (common/elementwise_cuda.cuh) with binary_focal_elem (focal_math.h,
// the same code as the CPU kernel) as its functor: per element the loss (stored for reduction
// "none"), d loss / dx (stored when asked) and v, the SBNZ weight, whose nonzero count goes to the
// per-block partials.
//
// Instantiated for input {float, double, __half, __nv_bfloat16} x target {float, double, __half,
// __nv_bfloat16, uint8 (and bool), int8, int16, int32, int64}: 36 kernels. Mode and gamma stay runtime
// (uniform branches): the kernel is memory bound, and 36 x modes x gammas would multiply build time.
// Transcendentals per element: see focal_math.h.
#include <cuda_runtime.h>

#include <stdint.h>

#include "../common/cuda_convert.cuh"
#include "../common/elementwise_cuda.cuh"
#include "focal_cuda.h"
#include "focal_math.h"

namespace fusedloss {
namespace focal {
namespace {

namespace ew = ::fusedloss::elementwise;

template <typename acc_t>
struct FocalOp {
  Params<acc_t> prm;
  ew::Table<acc_t> pw;  // 1s when there is no pos_weight

  __device__ __forceinline__ ew::ElemResult<acc_t> operator()(int64_t i, acc_t x, acc_t t, acc_t w) const {
    const ElemOut<acc_t> o = binary_focal_elem<acc_t>(x, t, w, pw.at(i), pw.tab != nullptr, prm);
    return {o.loss, o.grad, o.v != acc_t(0)};
  }
};

template <typename scalar_t>
int launch_focal(const FocalLaunchArgs& a, cudaStream_t stream) {
  using acc_t = typename AccOf<scalar_t>::type;
  FocalOp<acc_t> op;
  op.prm.mode = a.mode;
  op.prm.alpha = static_cast<acc_t>(a.alpha);
  op.prm.gamma = static_cast<acc_t>(a.gamma);
  op.prm.smoothing = static_cast<acc_t>(a.label_smoothing);
  op.pw = ew::make_table<acc_t>(a.pos_weight, a.pos_weight_div, a.pos_weight_mod, a.io.numel);
  return ew::dispatch_target(a.io.target_dtype, [&](auto tag) {
    return ew::launch<scalar_t, typename decltype(tag)::type>(a.io, op, stream);
  });
}

}  // namespace
}  // namespace focal
}  // namespace fusedloss

extern "C" int fusedloss_binary_focal_fwd_cuda(const FocalLaunchArgs* args, cudaStream_t stream) {
  int rc = 0;
  if (!fusedloss::elementwise::should_launch(args, &rc)) return rc;
  if (!fusedloss::elementwise::table_ok(args->pos_weight, args->pos_weight_div, args->pos_weight_mod)) {
    return kFlElemBadArgs;
  }
  return fusedloss::elementwise::dispatch_input(args->io.input_dtype, [&](auto tag) {
    return fusedloss::focal::launch_focal<typename decltype(tag)::type>(*args, stream);
  });
}
