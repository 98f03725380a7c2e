// Torch-free interface of the CUDA kernel of fusedloss::binary_focal_fwd (flash-attn params-struct
// style). focal_cuda.cu implements it with nvcc alone; focal_cuda_binding.cpp fills it from tensors.
// Keeping torch out of the .cu is what lets CMakeLists.txt compile it on a machine whose torch is a
// CPU build (no libtorch_cuda / libc10_cuda to link against). The dtype codes, return codes, the
// common operands and the grid size are the elementwise ops' (common/elementwise_cuda.h).
#pragma once

#include <cuda_runtime_api.h>  // cudaStream_t

#include <stdint.h>

#include "../common/elementwise_cuda.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct FocalLaunchArgs {
  FlElemIO io;             // any target dtype; the count is of v != 0 (focal_math.h)
  const void* pos_weight;  // acc_t table read as pos_weight[(i / pos_weight_div) % pos_weight_mod], or NULL
  int64_t pos_weight_div, pos_weight_mod;
  int64_t mode;            // fusedloss::focal::Mode
  double alpha, gamma, label_smoothing;
} FocalLaunchArgs;

// Launches the kernel on `stream` (asynchronous; never synchronises). Returns 0, an FlElemStatus, or
// the cudaError_t of the launch. With io.numel == 0 it launches nothing and returns 0.
int fusedloss_binary_focal_fwd_cuda(const FocalLaunchArgs* args, cudaStream_t stream);

#ifdef __cplusplus
}  // extern "C"
#endif
