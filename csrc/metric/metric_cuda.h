// Torch-free interface of the CUDA kernels of fusedloss::metric_fwd (flash-attn params-struct style).
// metric_cuda.cu implements it with nvcc alone; metric_cuda_binding.cpp fills it from tensors.
// Keeping torch out of the .cu is what lets CMakeLists.txt compile it on a machine whose torch is a
// CPU build.
#pragma once

#include <cuda_runtime_api.h>  // cudaStream_t

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Element types of `emb`.
enum MetricDType {
  kMetricF32 = 0,
  kMetricF64 = 1,
  kMetricF16 = 2,
  kMetricBF16 = 3,
};

// Return codes of the launcher besides 0 (success) and positive cudaError_t values.
enum MetricStatus {
  kMetricBadInputDType = -1,
  kMetricBadArgs = -2,
};

// acc_t below: double for F64 input, else float.
typedef struct MetricLaunchArgs {
  const void* emb;          // [B, D] input_dtype, contiguous
  const int64_t* labels;    // [B]
  const int64_t* sessions;  // [B], or NULL (no session condition)
  void* row_loss;           // [B] acc_t: loss_i
  void* sumsq;              // [B] acc_t scratch: sum e_i^2 (normalize only; else unused, may be NULL)
  void* stats;              // [3, B] acc_t scratch: A_i, N_i, row_factor c_i
  double* sh;               // [B, D] scratch: sum_j H_ij inv_j e_j (gradient only; else may be NULL)
  void* grad;               // [B, D] input_dtype: d(sum_i loss_i)/d emb, or NULL (no gradient)
  int64_t B, D;
  int64_t kind;             // 0 circle (p0 margin, p1 gamma), 1 multi-similarity (p0 alpha, p1 beta, p2 lambda)
  double p0, p1, p2;
  int32_t normalize;        // l2-normalise the rows first
  int32_t input_dtype;      // MetricDType
} MetricLaunchArgs;

// Launch on `stream` (asynchronous; never synchronises): with normalize the sums of squares, then
// pass 1 (stats, row_loss), then with a gradient pass 2 (sh, grad). Returns 0, a MetricStatus, or
// the cudaError_t of a launch; with B == 0 it launches nothing and returns 0.
int fusedloss_metric_fwd_cuda(const MetricLaunchArgs* args, cudaStream_t stream);

#ifdef __cplusplus
}  // extern "C"
#endif
