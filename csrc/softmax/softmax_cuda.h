// Torch-free interface of the CUDA kernel of fusedloss::softmax_fwd (flash-attn params-struct
// style). softmax_cuda.cu implements it with nvcc alone; softmax_cuda_binding.cpp fills it from
// tensors. Keeping torch out of the .cu is what lets CMakeLists.txt compile it on a machine whose
// torch is a CPU build.
#pragma once

#include <cuda_runtime_api.h>  // cudaStream_t

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Element types of `input` (and of probability targets).
enum SoftmaxDType {
  kSoftmaxF32 = 0,
  kSoftmaxF64 = 1,
  kSoftmaxF16 = 2,
  kSoftmaxBF16 = 3,
};

// Return codes of the launcher besides 0 (success) and positive cudaError_t values.
enum SoftmaxStatus {
  kSoftmaxBadInputDType = -1,
  kSoftmaxBadArgs = -2,
};

typedef struct SoftmaxLaunchArgs {
  const void* input;       // [n, C, D] input_dtype, contiguous (row r = n D + j: x[n, :, j])
  const int64_t* target;   // [n, D] class indices (in [0, C) or ignore_index; others are clamped
                           // into [0, C), never read out of bounds), or NULL with probabilities
  const void* probs;       // [n, C, D] input_dtype probabilities (mode 0 only), or NULL
  const void* weight;      // [C] acc_t (double for F64 input, else float): class weight (mode 0) or
                           // alpha (mode 1); NULL: 1 for every class
  void* row_loss;          // [n D] acc_t: each row's loss (0 for ignored rows)
  void* row_den;           // [n D] acc_t: each row's mean denominator (w_y, or 1; 0 when ignored)
  void* grad;              // [n, C, D] input_dtype: d(row loss)/dx, or NULL (no gradient); may
                           // be `input` itself (inplace_grad)
  int64_t n, C, D;
  int64_t ignore_index;
  double smoothing;        // eps in [0, 1]
  double z_loss;           // >= 0 (mode 0)
  double gamma;            // >= 0 (mode 1)
  int32_t mode;            // 0 cross-entropy, 1 focal
  int32_t input_dtype;     // SoftmaxDType
} SoftmaxLaunchArgs;

// Launch on `stream` (asynchronous; never synchronises). Writes row_loss, row_den (and grad) for
// every row. Returns 0, a SoftmaxStatus, or the cudaError_t of the launch; with n D == 0 it
// launches nothing and returns 0.
int fusedloss_softmax_fwd_cuda(const SoftmaxLaunchArgs* args, cudaStream_t stream);

#ifdef __cplusplus
}  // extern "C"
#endif
