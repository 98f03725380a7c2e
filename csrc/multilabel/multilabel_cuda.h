// Torch-free interface of the CUDA kernels of fusedloss::multilabel_ce_fwd and
// fusedloss::sparse_multilabel_ce_fwd (flash-attn params-struct style). multilabel_cuda.cu implements
// it with nvcc alone; multilabel_cuda_binding.cpp fills it from tensors. Keeping torch out of the .cu
// is what lets CMakeLists.txt compile it on a machine whose torch is a CPU build.
#pragma once

#include <cuda_runtime_api.h>  // cudaStream_t

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Element types of `input` (the first four) and `target` (all). Bool targets use kMultilabelU8: torch
// stores them as one byte holding 0 or 1.
enum MultilabelDType {
  kMultilabelF32 = 0,
  kMultilabelF64 = 1,
  kMultilabelF16 = 2,
  kMultilabelBF16 = 3,
  kMultilabelU8 = 4,
  kMultilabelI8 = 5,
  kMultilabelI16 = 6,
  kMultilabelI32 = 7,
  kMultilabelI64 = 8,
};

// Return codes of the launchers besides 0 (success) and positive cudaError_t values.
enum MultilabelStatus {
  kMultilabelBadInputDType = -1,
  kMultilabelBadTargetDType = -2,
  kMultilabelBadArgs = -3,
};

typedef struct MultilabelLaunchArgs {
  const void* input;              // [n_rows, n_cols] input_dtype, contiguous
  const void* target;             // dense: [n_rows, n_cols] target_dtype, contiguous; sparse: NULL
  const int64_t* positive_index;  // sparse: [n_rows, k] contiguous, each row sorted; dense: NULL
  void* row_loss;                 // [n_rows] acc_t (double for F64 input, else float)
  void* grad;                     // [n_rows, n_cols] input_dtype, or NULL (no gradient)
  int64_t n_rows, n_cols;
  int64_t k;                      // sparse: listed indices per row (>= 0)
  int32_t input_dtype;            // MultilabelDType: F32, F64, F16 or BF16
  int32_t target_dtype;           // dense: MultilabelDType
  int32_t mask_zero;              // sparse: index 0 is padding and class 0 in neither sum
} MultilabelLaunchArgs;

// Launch on `stream` (asynchronous; never synchronise). Each writes row_loss (and grad) for every
// row. Return 0, a MultilabelStatus, or the cudaError_t of the launch; with n_rows == 0 they launch
// nothing and return 0.
int fusedloss_multilabel_ce_fwd_cuda(const MultilabelLaunchArgs* args, cudaStream_t stream);
int fusedloss_sparse_multilabel_ce_fwd_cuda(const MultilabelLaunchArgs* args, cudaStream_t stream);

#ifdef __cplusplus
}  // extern "C"
#endif
