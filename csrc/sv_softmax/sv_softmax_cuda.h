// Torch-free interface of the CUDA kernels of fusedloss::sv_softmax_fwd (flash-attn params-struct
// style). sv_softmax_cuda.cu implements it with nvcc alone; sv_softmax_cuda_binding.cpp fills it from
// tensors. Keeping torch out of the .cu is what lets CMakeLists.txt compile it on a machine whose
// torch is a CPU build.
#pragma once

#include <cuda_runtime_api.h>  // cudaStream_t

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Element types of `user` and `item`.
enum SvSoftmaxDType {
  kSvSoftmaxF32 = 0,
  kSvSoftmaxF64 = 1,
  kSvSoftmaxF16 = 2,
  kSvSoftmaxBF16 = 3,
};

// Return codes of the launcher besides 0 (success) and positive cudaError_t values.
enum SvSoftmaxStatus {
  kSvSoftmaxBadInputDType = -1,
  kSvSoftmaxBadArgs = -2,
};

// Rows with K + 1 <= kSvSoftmaxSmemSlots keep their cosines and coefficients in shared memory; the
// [B, K + 1] scratch `coef` / `coef_cos` is then needed only for a gradient.
enum { kSvSoftmaxSmemSlots = 128 };

typedef struct SvSoftmaxLaunchArgs {
  const void* user;        // [B, D] input_dtype, contiguous
  const void* item;        // [B, D] input_dtype, contiguous
  const bool* kept;        // [B]: label > 0
  const void* weight;      // [1] (every row) or [B] acc_t (double for F64 input, else float); NULL: 1
  const int64_t* shifts;   // [K], any values (taken mod B)
  void* row_loss;          // [B] acc_t: w_i loss_i (0 for rows not kept)
  void* row_den;           // [B] acc_t: the row's mean denominator (row_den)
  void* sumsq_user;        // [B] acc_t scratch: sum u_i^2 (normalize only; else unused, may be NULL)
  void* sumsq_item;        // [B] acc_t scratch: sum v_j^2 (likewise)
  void* coef;              // [B, K + 1] acc_t scratch: G; needed with a gradient or K + 1 >
                           // kSvSoftmaxSmemSlots, else may be NULL
  void* coef_cos;          // [B, K + 1] acc_t scratch: G cos (likewise)
  void* grad_user;         // [B, D] input_dtype: d(sum_i w_i loss_i)/du, or NULL (no gradient)
  void* grad_item;         // [B, D] input_dtype: likewise for item (NULL exactly when grad_user is)
  int64_t B, D, K;
  double margin, gamma, t;
  int32_t normalize;       // l2-normalise both embeddings
  int32_t reduction;       // 1 sum, 2 mean, 3 sum_by_nonzero_weights (the row denominators)
  int32_t weight_per_row;  // weight has B elements (else 1)
  int32_t input_dtype;     // SvSoftmaxDType
} SvSoftmaxLaunchArgs;

// Launch on `stream` (asynchronous; never synchronises): with normalize the sums of squares, then
// pass 1 (row_loss, row_den, and with a gradient coef, coef_cos and grad_user), then with a gradient
// pass 2 (grad_item). Returns 0, a SvSoftmaxStatus, or the cudaError_t of a launch; with B == 0 it
// launches nothing and returns 0.
int fusedloss_sv_softmax_fwd_cuda(const SvSoftmaxLaunchArgs* args, cudaStream_t stream);

#ifdef __cplusplus
}  // extern "C"
#endif
