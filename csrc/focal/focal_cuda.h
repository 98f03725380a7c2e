// Torch-free interface of the CUDA kernel of fusedloss::binary_focal_fwd (flash-attn params-struct
// style). focal_cuda.cu implements it with nvcc alone; focal_cuda_binding.cpp fills it from tensors.
// Keeping torch out of the .cu is what lets CMakeLists.txt compile it on a machine whose torch is a
// CPU build (no libtorch_cuda / libc10_cuda to link against).
#pragma once

#include <cuda_runtime_api.h>  // cudaStream_t

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Element types of `input` (the first four) and `target` (all). Bool targets use kFocalU8: torch
// stores them as one byte holding 0 or 1.
enum FocalDType {
  kFocalF32 = 0,
  kFocalF64 = 1,
  kFocalF16 = 2,
  kFocalBF16 = 3,
  kFocalU8 = 4,
  kFocalI8 = 5,
  kFocalI16 = 6,
  kFocalI32 = 7,
  kFocalI64 = 8,
};

// Return codes of the launcher besides 0 (success) and positive cudaError_t values.
enum FocalStatus {
  kFocalBadInputDType = -1,
  kFocalBadTargetDType = -2,
  kFocalBadArgs = -3,
};

enum { kFocalThreads = 256 };

typedef struct FocalLaunchArgs {
  const void* input;       // [numel], input_dtype, contiguous
  const void* target;      // [numel], target_dtype, contiguous
  const void* weight;      // acc_t table read as weight[(i / weight_div) % weight_mod], or NULL
  const void* pos_weight;  // same with pos_weight_div / pos_weight_mod, or NULL
  void* loss;              // [numel] input_dtype (reduction none), or NULL
  void* grad;              // [numel] input_dtype (compute_grad), or NULL
  double* partials;        // [2 * num_blocks]: per-block sum of loss, then per-block count of v != 0
  int64_t numel;
  int64_t weight_div, weight_mod;
  int64_t pos_weight_div, pos_weight_mod;
  int64_t mode;            // fusedloss::focal::Mode
  double alpha, gamma, label_smoothing;
  int32_t input_dtype;     // FocalDType: F32, F64, F16 or BF16; acc_t is double for F64, else float
  int32_t target_dtype;    // FocalDType
  int32_t num_blocks;      // fusedloss_binary_focal_num_blocks(numel, sm_count)
} FocalLaunchArgs;

// Grid of the grid-stride kernel: enough blocks to fill the GPU (8 per SM of kFocalThreads threads),
// fewer when there is less work. 0 for an empty input (nothing is launched).
static inline int32_t fusedloss_binary_focal_num_blocks(int64_t numel, int32_t sm_count) {
  if (numel <= 0) return 0;
  const int64_t by_work = (numel + kFocalThreads - 1) / kFocalThreads;
  const int64_t by_gpu = (int64_t)(sm_count > 0 ? sm_count : 1) * 8;
  return (int32_t)(by_work < by_gpu ? by_work : by_gpu);
}

// Launches the kernel on `stream` (asynchronous; never synchronises). Returns 0, a FocalStatus, or
// the cudaError_t of the launch. With numel == 0 it launches nothing and returns 0.
int fusedloss_binary_focal_fwd_cuda(const FocalLaunchArgs* args, cudaStream_t stream);

#ifdef __cplusplus
}  // extern "C"
#endif
