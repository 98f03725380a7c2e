// Device side of the elementwise loss ops (elementwise_op.h, elementwise_cuda.h): one grid-stride
// kernel template that every family instantiates with its per-element functor, the launcher and the
// dtype dispatch. Torch-free (nvcc only).
//
// The kernel: per element i, Op(i, x, t, w) gives the (weighted) loss, d loss / dx and whether the
// element counts for SUM_BY_NONZERO_WEIGHTS; the loss is stored for reduction "none", the gradient
// when asked. Each block reduces its threads' acc_t sums and 64-bit counts with warp shuffles and
// writes them, as doubles, to partials[block] and partials[num_blocks + block]; the binding sums the
// partials on the device (elementwise_op.h's finish_device: no host sync). Bytes per element: input +
// target (+ loss and/or grad) in their dtypes; weights come from small tables that stay in L1/L2.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <stdint.h>

#include "cuda_convert.cuh"
#include "cuda_launch.cuh"
#include "elementwise_cuda.h"
#include "warp_reduce.cuh"

namespace fusedloss {
namespace elementwise {

constexpr int kWarp = 32;
constexpr int kWarps = kFlElemThreads / kWarp;

// A broadcast table tab[(i / div) % mod], or 1 everywhere when tab is null. 64-bit division is a long
// software sequence on the GPU; 32-bit is much shorter (`narrow`: every index fits in 32 bits), and
// mod == 1 (scalar weight) and div == 1 with mod >= numel (full weight) need none.
template <typename acc_t>
struct Table {
  const acc_t* __restrict__ tab;
  int64_t div, mod, numel;
  bool narrow;

  __device__ __forceinline__ acc_t at(int64_t i) const {
    if (tab == nullptr) return acc_t(1);
    if (mod == 1) return tab[0];
    if (div == 1 && mod >= numel) return tab[i];
    if (narrow) {
      const uint32_t q = static_cast<uint32_t>(i) / static_cast<uint32_t>(div);
      return tab[q % static_cast<uint32_t>(mod)];
    }
    return tab[(i / div) % mod];
  }
};

template <typename acc_t>
Table<acc_t> make_table(const void* tab, int64_t div, int64_t mod, int64_t numel) {
  const int64_t u32 = static_cast<int64_t>(UINT32_MAX);
  return Table<acc_t>{static_cast<const acc_t*>(tab), div, mod, numel, numel <= u32 && div <= u32 && mod <= u32};
}

inline bool table_ok(const void* tab, int64_t div, int64_t mod) { return tab == nullptr || (div >= 1 && mod >= 1); }

// What a family's functor returns for one element.
template <typename acc_t>
struct ElemResult {
  acc_t loss;
  acc_t grad;
  bool counted;  // counts for SUM_BY_NONZERO_WEIGHTS
};

template <typename scalar_t, typename target_t>
struct KernelIO {
  using acc_t = typename AccOf<scalar_t>::type;
  const scalar_t* __restrict__ x;
  const target_t* __restrict__ t;
  Table<acc_t> w;
  scalar_t* __restrict__ loss;  // or null
  scalar_t* __restrict__ grad;  // or null
  double* __restrict__ partials;
  int64_t numel;
};

// Op: __device__ ElemResult<acc_t> operator()(int64_t i, acc_t x, acc_t t, acc_t w) const.
template <typename scalar_t, typename target_t, typename Op>
__global__ void __launch_bounds__(kFlElemThreads)
    elementwise_fwd_kernel(const KernelIO<scalar_t, target_t> io, const Op op) {
  using acc_t = typename AccOf<scalar_t>::type;
  acc_t sum = acc_t(0);
  long long count = 0;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < io.numel; i += stride) {
    const ElemResult<acc_t> r = op(i, to_acc<acc_t>(io.x[i]), to_acc<acc_t>(io.t[i]), io.w.at(i));
    if (io.loss != nullptr) io.loss[i] = from_acc<scalar_t>(r.loss);
    if (io.grad != nullptr) io.grad[i] = from_acc<scalar_t>(r.grad);
    sum += r.loss;
    count += r.counted ? 1 : 0;
  }

  // Block reduction: shuffle within each warp, then the first warp reduces the warps' results.
  __shared__ acc_t warp_sums[kWarps];
  __shared__ long long warp_counts[kWarps];
  const int lane = threadIdx.x % kWarp;
  const int warp = threadIdx.x / kWarp;
  sum = warp_sum(sum);
  count = warp_sum(count);
  if (lane == 0) {
    warp_sums[warp] = sum;
    warp_counts[warp] = count;
  }
  __syncthreads();
  if (warp == 0) {
    sum = lane < kWarps ? warp_sums[lane] : acc_t(0);
    count = lane < kWarps ? warp_counts[lane] : 0;
    sum = warp_sum(sum);
    count = warp_sum(count);
    if (lane == 0) {
      io.partials[blockIdx.x] = static_cast<double>(sum);
      io.partials[gridDim.x + blockIdx.x] = static_cast<double>(count);
    }
  }
}

// Launches the kernel on `stream` for arguments should_launch accepted; returns the launch's
// cudaError_t.
template <typename scalar_t, typename target_t, typename Op>
int launch(const FlElemIO& a, const Op& op, cudaStream_t stream) {
  using acc_t = typename AccOf<scalar_t>::type;
  KernelIO<scalar_t, target_t> io;
  io.x = static_cast<const scalar_t*>(a.input);
  io.t = static_cast<const target_t*>(a.target);
  io.w = make_table<acc_t>(a.weight, a.weight_div, a.weight_mod, a.numel);
  io.loss = static_cast<scalar_t*>(a.loss);
  io.grad = static_cast<scalar_t*>(a.grad);
  io.partials = a.partials;
  io.numel = a.numel;
  launch_kernel(elementwise_fwd_kernel<scalar_t, target_t, Op>, a.num_blocks, kFlElemThreads, 0, stream, io, op);
  return static_cast<int>(cudaGetLastError());
}

// Whether a launcher's arguments (a struct with an FlElemIO `io`) call for a launch; when not, *rc is
// what the launcher returns: 0 for an empty input, kFlElemBadArgs for inconsistent arguments.
template <typename Args>
bool should_launch(const Args* args, int* rc) {
  *rc = kFlElemBadArgs;
  if (args == nullptr || args->io.numel < 0) return false;
  const FlElemIO& a = args->io;
  if (a.numel == 0) {
    *rc = 0;
    return false;
  }
  return a.num_blocks > 0 && a.input != nullptr && a.target != nullptr && a.partials != nullptr &&
         table_ok(a.weight, a.weight_div, a.weight_mod);
}

template <typename T>
struct Tag {
  using type = T;
};

// f(Tag<scalar_t>{}) for an input dtype code (floating types only).
template <typename F>
int dispatch_input(int32_t code, F&& f) {
  switch (code) {
    case kFlElemF32:
      return f(Tag<float>{});
    case kFlElemF64:
      return f(Tag<double>{});
    case kFlElemF16:
      return f(Tag<__half>{});
    case kFlElemBF16:
      return f(Tag<__nv_bfloat16>{});
    default:
      return kFlElemBadInputDType;
  }
}

// f(Tag<target_t>{}) for a target dtype code (floating, integer and bool types).
template <typename F>
int dispatch_target(int32_t code, F&& f) {
  switch (code) {
    case kFlElemU8:
      return f(Tag<uint8_t>{});
    case kFlElemI8:
      return f(Tag<int8_t>{});
    case kFlElemI16:
      return f(Tag<int16_t>{});
    case kFlElemI32:
      return f(Tag<int32_t>{});
    case kFlElemI64:
      return f(Tag<int64_t>{});
    default: {
      const int rc = dispatch_input(code, f);
      return rc == kFlElemBadInputDType ? kFlElemBadTargetDType : rc;
    }
  }
}

}  // namespace elementwise
}  // namespace fusedloss
