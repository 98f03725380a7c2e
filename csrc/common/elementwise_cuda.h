// Torch-free C interface shared by the CUDA launchers of the elementwise loss ops (binary_focal_fwd,
// pointwise_fwd; see elementwise_op.h for the contract): element dtype codes, return codes, the
// operands and outputs every such launch has, and the grid size. The device side is
// elementwise_cuda.cuh; the binding side elementwise_cuda_binding.h.
#pragma once

#include <stdint.h>

#include "grid_stride.h"

#ifdef __cplusplus
extern "C" {
#endif

// Element types of inputs (the first four) and targets (all). Bool targets use kFlElemU8: torch
// stores them as one byte holding 0 or 1.
enum FlElemDType {
  kFlElemF32 = 0,
  kFlElemF64 = 1,
  kFlElemF16 = 2,
  kFlElemBF16 = 3,
  kFlElemU8 = 4,
  kFlElemI8 = 5,
  kFlElemI16 = 6,
  kFlElemI32 = 7,
  kFlElemI64 = 8,
};

// Return codes of the launchers besides 0 (success) and positive cudaError_t values.
enum FlElemStatus {
  kFlElemBadInputDType = -1,
  kFlElemBadTargetDType = -2,
  kFlElemBadArgs = -3,
};

enum { kFlElemThreads = 256 };

typedef struct FlElemIO {
  const void* input;   // [numel], input_dtype, contiguous
  const void* target;  // [numel], target_dtype, contiguous
  const void* weight;  // acc_t table read as weight[(i / weight_div) % weight_mod], or NULL
  void* loss;          // [numel] input_dtype (reduction none), or NULL
  void* grad;          // [numel] input_dtype (compute_grad), or NULL
  double* partials;    // [2 * num_blocks]: per-block sum of loss, then per-block count
  int64_t numel;
  int64_t weight_div, weight_mod;
  int32_t input_dtype;   // F32, F64, F16 or BF16; acc_t is double for F64, else float
  int32_t target_dtype;  // FlElemDType
  int32_t num_blocks;    // fusedloss_elementwise_num_blocks(numel, sm_count)
} FlElemIO;

// Grid of the grid-stride kernels: enough blocks to fill the GPU (8 per SM of kFlElemThreads
// threads), fewer when there is less work. 0 for an empty input (nothing is launched).
static inline int32_t fusedloss_elementwise_num_blocks(int64_t numel, int32_t sm_count) {
  return fusedloss_grid_stride_blocks(numel, kFlElemThreads, sm_count);
}

#ifdef __cplusplus
}  // extern "C"
#endif
