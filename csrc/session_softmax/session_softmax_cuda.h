// Torch-free interface of the CUDA kernel of fusedloss::session_softmax_fwd (flash-attn params-struct
// style). session_softmax_cuda.cu implements it with nvcc alone; session_softmax_cuda_binding.cpp
// fills it from tensors and sums the per-item outputs. Keeping torch out of the .cu is what lets
// CMakeLists.txt compile it on a machine whose torch is a CPU build.
#pragma once

#include <cuda_runtime_api.h>  // cudaStream_t

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Element type of logits, labels, weight and the outputs (the accumulation type acc_t).
enum SessionSoftmaxDType {
  kSessionSoftmaxF32 = 0,
  kSessionSoftmaxF64 = 1,
};

// Return codes of the launcher besides 0 (success) and positive cudaError_t values.
enum SessionSoftmaxStatus {
  kSessionSoftmaxBadDType = -1,
  kSessionSoftmaxBadArgs = -2,
};

// One block of kSessionSoftmaxThreads threads per kSessionSoftmaxSpan consecutive sorted items: it
// runs the sessions that start there (see session_softmax_cuda.cu).
enum { kSessionSoftmaxThreads = 256, kSessionSoftmaxSpan = 32 };

typedef struct SessionSoftmaxLaunchArgs {
  const void* logits;     // [n, C] acc_t, session-sorted, contiguous (C = 1 listwise, 2 JRC)
  const void* labels;     // [n] acc_t
  const void* weight;     // [n] acc_t (JRC), or NULL (weight 1)
  const int64_t* seg_lo;  // [n] first sorted position of the item's session
  const int64_t* seg_hi;  // [n] one past its last
  void* row_loss;         // [P, n] acc_t out: the per-item terms of each part's numerator
  void* row_den;          // [P, n] acc_t out: the per-item terms of each part's denominator
  void* grad;             // [P, n, C] acc_t out (d numerator / d logits), or NULL
  int64_t n;
  int64_t kind;           // fusedloss::session_softmax::Kind
  int64_t flags;          // fusedloss::session_softmax::Flag bits
  double temperature;     // > 0
  double clip_max;        // >= 1
  int32_t dtype;          // SessionSoftmaxDType
  int32_t num_blocks;     // fusedloss_session_softmax_num_blocks(n)
} SessionSoftmaxLaunchArgs;

// Grid size: one block per kSessionSoftmaxSpan items; 0 for an empty input (nothing is launched).
static inline int32_t fusedloss_session_softmax_num_blocks(int64_t n) {
  if (n <= 0) return 0;
  return (int32_t)((n + kSessionSoftmaxSpan - 1) / kSessionSoftmaxSpan);
}

// Launches the kernel on `stream` (asynchronous; never synchronises). Returns 0, a
// SessionSoftmaxStatus, or the cudaError_t of the launch. With n == 0 it launches nothing and
// returns 0.
int fusedloss_session_softmax_cuda(const SessionSoftmaxLaunchArgs* args, cudaStream_t stream);

#ifdef __cplusplus
}  // extern "C"
#endif
