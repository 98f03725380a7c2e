// Torch-free interface of the CUDA kernels of fusedloss::ziln_fwd (flash-attn params-struct style).
// ziln_cuda.cu implements it with nvcc alone; ziln_cuda_binding.cpp fills it from tensors. Keeping
// torch out of the .cu is what lets CMakeLists.txt compile it on a machine whose torch is a CPU build.
#pragma once

#include <cuda_runtime_api.h>  // cudaStream_t

#include <stdint.h>

#include "../common/grid_stride.h"

#ifdef __cplusplus
extern "C" {
#endif

// Element types of the logits (and of the loss and grad).
enum ZilnDType {
  kZilnF32 = 0,
  kZilnF64 = 1,
  kZilnF16 = 2,
  kZilnBF16 = 3,
};

// Return codes of the launcher besides 0 (success) and positive cudaError_t values.
enum ZilnStatus {
  kZilnBadDType = -1,
  kZilnBadArgs = -2,
};

enum { kZilnThreads = 256 };

typedef struct ZilnLaunchArgs {
  const void* logits;   // [B, 3] dtype, contiguous: (l_p, mu, l_s) per row
  const void* labels;   // [B] acc_t (double for F64 logits, else float), contiguous
  void* loss;           // 0-d, dtype: the loss (written by the last kernel)
  void* grad;           // [B, 3] dtype: the final d loss / d logits, or NULL (no gradient)
  double* partials;     // [4 * num_blocks] workspace: the blocks' sums of cls, reg, mu^2, l_s^2
  int64_t* pos_count;   // [1] workspace: P = #{labels > 0} (zeroed and filled on the device)
  int64_t B;
  double max_sigma, class_weight, reg_weight, mu_reg, sigma_reg;
  int32_t dtype;        // ZilnDType
  int32_t num_blocks;   // fusedloss_ziln_num_blocks(B, sm_count)
} ZilnLaunchArgs;

// Grid of the grid-stride kernels: enough blocks to fill the GPU (8 per SM of kZilnThreads threads),
// fewer when there is less work; 0 for B = 0 (nothing is launched).
static inline int32_t fusedloss_ziln_num_blocks(int64_t B, int32_t sm_count) {
  return fusedloss_grid_stride_blocks(B, kZilnThreads, sm_count);
}

// Enqueues on `stream` (asynchronous; never synchronises): the zeroing and counting of P, the row
// kernel (grad and the per-block partials) and the finishing kernel (loss = combine(...) in double,
// written in dtype). Returns 0, a ZilnStatus, or the cudaError_t of a launch; with B == 0 it
// launches nothing (the loss is the caller's: NaN) and returns 0.
int fusedloss_ziln_fwd_cuda(const ZilnLaunchArgs* args, cudaStream_t stream);

#ifdef __cplusplus
}  // extern "C"
#endif
