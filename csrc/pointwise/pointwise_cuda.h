// Torch-free interface of the CUDA kernel of fusedloss::pointwise_fwd (flash-attn params-struct
// style). pointwise_cuda.cu implements it with nvcc alone; pointwise_cuda_binding.cpp fills it from
// tensors. Keeping torch out of the .cu is what lets CMakeLists.txt compile it on a machine whose
// torch is a CPU build.
#pragma once

#include <cuda_runtime_api.h>  // cudaStream_t

#include <stdint.h>

#include "../common/elementwise_cuda.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct PointwiseLaunchArgs {
  FlElemIO io;    // target_dtype == input_dtype; the count is of weights != 0 (all without weight)
  int64_t kind;   // fusedloss::pointwise::Kind
  double param;   // the kind's parameter (pointwise_math.h)
} PointwiseLaunchArgs;

// Launches the kernel on `stream` (asynchronous; never synchronises). Returns 0, an FlElemStatus, or
// the cudaError_t of the launch. With io.numel == 0 it launches nothing and returns 0.
int fusedloss_pointwise_fwd_cuda(const PointwiseLaunchArgs* args, cudaStream_t stream);

#ifdef __cplusplus
}  // extern "C"
#endif
