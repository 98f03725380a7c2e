// Grid of a grid-stride kernel: plain C arithmetic, shared by the torch-free CUDA interfaces
// (elementwise_cuda.h, ziln_cuda.h).
#pragma once

#include <stdint.h>

// Enough blocks of `threads` threads to fill the GPU (8 per SM), fewer when there is less work;
// 0 for an empty input (nothing is launched).
static inline int32_t fusedloss_grid_stride_blocks(int64_t n, int32_t threads, int32_t sm_count) {
  if (n <= 0) return 0;
  const int64_t by_work = (n + threads - 1) / threads;
  const int64_t by_gpu = (int64_t)(sm_count > 0 ? sm_count : 1) * 8;
  return (int32_t)(by_work < by_gpu ? by_work : by_gpu);
}
