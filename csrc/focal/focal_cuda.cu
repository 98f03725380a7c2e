// CUDA kernel of fusedloss::binary_focal_fwd. Torch-free: raw pointers, int64 sizes, an explicit
// stream (focal_cuda.h); focal_cuda_binding.cpp turns tensors into FocalLaunchArgs.
//
// One grid-stride pass over the flattened input: per element, binary_focal_elem (focal_math.h, the
// same code as the CPU kernel) gives the loss (stored for reduction "none"), d loss / dx (stored when
// asked) and v, the SBNZ weight. Each block reduces its threads' acc_t sums of loss and counts of
// v != 0 with warp shuffles and writes them, as doubles, to partials[block] and
// partials[num_blocks + block]; the binding sums the partials on the device (no host sync).
//
// Instantiated for input {float, double, __half, __nv_bfloat16} x target {float, double, __half,
// __nv_bfloat16, uint8 (and bool), int8, int16, int32, int64}: 36 kernels. Mode and gamma stay runtime
// (uniform branches): the kernel is memory bound, and 36 x modes x gammas would multiply build time.
// Transcendentals per element: see focal_math.h. Bytes per element: input + target (+ loss and/or
// grad) in their dtypes; weights come from small tables that stay in L1/L2.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <stdint.h>

#include "../common/cuda_convert.cuh"
#include "focal_cuda.h"
#include "focal_math.h"

namespace fusedloss {
namespace focal {
namespace {

constexpr int kWarp = 32;
constexpr int kWarps = kFocalThreads / kWarp;

template <typename acc_t>
struct KernelParams {
  int64_t numel;
  int64_t weight_div, weight_mod;
  int64_t pos_weight_div, pos_weight_mod;
  Params<acc_t> prm;
  bool narrow;  // every index fits in 32 bits: use 32-bit division for the table lookups
};

// tab[(i / div) % mod]. 64-bit division is a long software sequence on the GPU; 32-bit is much
// shorter, and mod == 1 (scalar weight) and div == 1 with mod == numel (full weight) need none.
template <typename acc_t>
__device__ __forceinline__ acc_t table_at(const acc_t* __restrict__ tab, int64_t i, int64_t div, int64_t mod,
                                          int64_t numel, bool narrow) {
  if (mod == 1) return tab[0];
  if (div == 1 && mod >= numel) return tab[i];
  if (narrow) {
    const uint32_t q = static_cast<uint32_t>(i) / static_cast<uint32_t>(div);
    return tab[q % static_cast<uint32_t>(mod)];
  }
  return tab[(i / div) % mod];
}

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
  for (int offset = kWarp / 2; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
  return v;
}

template <typename scalar_t, typename target_t>
__global__ void __launch_bounds__(kFocalThreads)
    binary_focal_fwd_kernel(const scalar_t* __restrict__ x, const target_t* __restrict__ t,
                            const typename AccOf<scalar_t>::type* __restrict__ w,
                            const typename AccOf<scalar_t>::type* __restrict__ pw, scalar_t* __restrict__ loss,
                            scalar_t* __restrict__ grad, double* __restrict__ partials,
                            const KernelParams<typename AccOf<scalar_t>::type> kp) {
  using acc_t = typename AccOf<scalar_t>::type;
  const bool has_pw = pw != nullptr;
  acc_t sum = acc_t(0);
  long long nnz = 0;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < kp.numel; i += stride) {
    const acc_t xi = to_acc<acc_t>(x[i]);
    const acc_t ti = to_acc<acc_t>(t[i]);
    const acc_t wi =
        w != nullptr ? table_at(w, i, kp.weight_div, kp.weight_mod, kp.numel, kp.narrow) : acc_t(1);
    const acc_t pwi =
        has_pw ? table_at(pw, i, kp.pos_weight_div, kp.pos_weight_mod, kp.numel, kp.narrow) : acc_t(1);
    const ElemOut<acc_t> o = binary_focal_elem<acc_t>(xi, ti, wi, pwi, has_pw, kp.prm);
    if (loss != nullptr) loss[i] = from_acc<scalar_t>(o.loss);
    if (grad != nullptr) grad[i] = from_acc<scalar_t>(o.grad);
    sum += o.loss;
    nnz += o.v != acc_t(0) ? 1 : 0;
  }

  // Block reduction: shuffle within each warp, then the first warp reduces the warps' results.
  __shared__ acc_t warp_sums[kWarps];
  __shared__ long long warp_nnz[kWarps];
  const int lane = threadIdx.x % kWarp;
  const int warp = threadIdx.x / kWarp;
  sum = warp_sum(sum);
  nnz = warp_sum(nnz);
  if (lane == 0) {
    warp_sums[warp] = sum;
    warp_nnz[warp] = nnz;
  }
  __syncthreads();
  if (warp == 0) {
    sum = lane < kWarps ? warp_sums[lane] : acc_t(0);
    nnz = lane < kWarps ? warp_nnz[lane] : 0;
    sum = warp_sum(sum);
    nnz = warp_sum(nnz);
    if (lane == 0) {
      partials[blockIdx.x] = static_cast<double>(sum);
      partials[gridDim.x + blockIdx.x] = static_cast<double>(nnz);
    }
  }
}

template <typename scalar_t, typename target_t>
int launch(const FocalLaunchArgs& a, cudaStream_t stream) {
  using acc_t = typename AccOf<scalar_t>::type;
  KernelParams<acc_t> kp;
  kp.numel = a.numel;
  kp.weight_div = a.weight_div;
  kp.weight_mod = a.weight_mod;
  kp.pos_weight_div = a.pos_weight_div;
  kp.pos_weight_mod = a.pos_weight_mod;
  kp.prm.mode = a.mode;
  kp.prm.alpha = static_cast<acc_t>(a.alpha);
  kp.prm.gamma = static_cast<acc_t>(a.gamma);
  kp.prm.smoothing = static_cast<acc_t>(a.label_smoothing);
  const int64_t u32 = static_cast<int64_t>(UINT32_MAX);
  kp.narrow = a.numel <= u32 && (a.weight == nullptr || (a.weight_div <= u32 && a.weight_mod <= u32)) &&
              (a.pos_weight == nullptr || (a.pos_weight_div <= u32 && a.pos_weight_mod <= u32));
  binary_focal_fwd_kernel<scalar_t, target_t><<<a.num_blocks, kFocalThreads, 0, stream>>>(
      static_cast<const scalar_t*>(a.input), static_cast<const target_t*>(a.target),
      static_cast<const acc_t*>(a.weight), static_cast<const acc_t*>(a.pos_weight),
      static_cast<scalar_t*>(a.loss), static_cast<scalar_t*>(a.grad), a.partials, kp);
  return static_cast<int>(cudaGetLastError());
}

template <typename scalar_t>
int dispatch_target(const FocalLaunchArgs& a, cudaStream_t stream) {
  switch (a.target_dtype) {
    case kFocalF32:
      return launch<scalar_t, float>(a, stream);
    case kFocalF64:
      return launch<scalar_t, double>(a, stream);
    case kFocalF16:
      return launch<scalar_t, __half>(a, stream);
    case kFocalBF16:
      return launch<scalar_t, __nv_bfloat16>(a, stream);
    case kFocalU8:
      return launch<scalar_t, uint8_t>(a, stream);
    case kFocalI8:
      return launch<scalar_t, int8_t>(a, stream);
    case kFocalI16:
      return launch<scalar_t, int16_t>(a, stream);
    case kFocalI32:
      return launch<scalar_t, int32_t>(a, stream);
    case kFocalI64:
      return launch<scalar_t, int64_t>(a, stream);
    default:
      return kFocalBadTargetDType;
  }
}

bool table_ok(const void* tab, int64_t div, int64_t mod) {
  return tab == nullptr || (div >= 1 && mod >= 1);
}

}  // namespace
}  // namespace focal
}  // namespace fusedloss

extern "C" int fusedloss_binary_focal_fwd_cuda(const FocalLaunchArgs* args, cudaStream_t stream) {
  using namespace fusedloss::focal;
  if (args == nullptr || args->numel < 0) return kFocalBadArgs;
  const FocalLaunchArgs& a = *args;
  if (a.numel == 0) return 0;
  if (a.num_blocks <= 0 || a.input == nullptr || a.target == nullptr || a.partials == nullptr ||
      !table_ok(a.weight, a.weight_div, a.weight_mod) ||
      !table_ok(a.pos_weight, a.pos_weight_div, a.pos_weight_mod)) {
    return kFocalBadArgs;
  }
  switch (a.input_dtype) {
    case kFocalF32:
      return dispatch_target<float>(a, stream);
    case kFocalF64:
      return dispatch_target<double>(a, stream);
    case kFocalF16:
      return dispatch_target<__half>(a, stream);
    case kFocalBF16:
      return dispatch_target<__nv_bfloat16>(a, stream);
    default:
      return kFocalBadInputDType;
  }
}
