// Warp-wide sum shared by the CUDA kernels: shuffles down, so lane 0 ends with the sum of the 32
// lanes (the other lanes hold partial sums). Every lane of the warp must call it.
#pragma once

#include <cuda_runtime.h>

namespace fusedloss {

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
  return v;
}

}  // namespace fusedloss
