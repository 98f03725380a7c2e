// Torch-free interface of the CUDA kernels of fusedloss::rowwise_fwd (flash-attn params-struct style).
// rowwise_cuda.cu implements it with nvcc alone; rowwise_cuda_binding.cpp fills it from tensors.
// Keeping torch out of the .cu is what lets CMakeLists.txt compile it on a machine whose torch is a
// CPU build.
#pragma once

#include <cuda_runtime_api.h>  // cudaStream_t

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Element types of a, b and c.
enum RowwiseDType {
  kRowwiseF32 = 0,
  kRowwiseF64 = 1,
  kRowwiseF16 = 2,
  kRowwiseBF16 = 3,
};

// Return codes of the launcher besides 0 (success) and positive cudaError_t values.
enum RowwiseStatus {
  kRowwiseBadInputDType = -1,
  kRowwiseBadArgs = -2,
};

typedef struct RowwiseLaunchArgs {
  const void* a;       // [N, D] input_dtype, contiguous
  const void* b;       // [N, D] input_dtype, contiguous
  const void* c;       // [N, D] input_dtype, contiguous: kind 4 (triplet) only, else NULL
  const void* target;  // [N] acc_t (double for F64 input, else float), or NULL (kinds 1, 3, 4: unused)
  void* row_loss;      // [N] acc_t: each row's loss (row_finish)
  void* grad_a;        // [N, D] input_dtype: d(sum of row losses)/da, or NULL (no gradient)
  void* grad_b;        // [N, D] input_dtype: likewise for b (NULL exactly when grad_a is)
  void* grad_c;        // [N, D] input_dtype: likewise for c (kind 4 with a gradient), else NULL
  int64_t N, D;
  double margin, p, eps;
  int32_t kind;         // rowwise_math.h's Kind; kinds 0 and 1 need D == 1
  int32_t swap;         // kind 4
  int32_t input_dtype;  // RowwiseDType
} RowwiseLaunchArgs;

// Launch on `stream` (asynchronous; never synchronises) the kernel that writes row_loss and, with a
// gradient, grad_a, grad_b (and grad_c). Returns 0, a RowwiseStatus, or the cudaError_t of the
// launch; with N == 0 it launches nothing and returns 0.
int fusedloss_rowwise_fwd_cuda(const RowwiseLaunchArgs* args, cudaStream_t stream);

#ifdef __cplusplus
}  // extern "C"
#endif
