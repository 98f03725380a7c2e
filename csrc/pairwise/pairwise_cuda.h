// Torch-free interface of the CUDA kernel of fusedloss::pairwise_fwd and
// fusedloss::pairwise_ohem_hist (flash-attn params-struct style). pairwise_cuda.cu implements it with
// nvcc alone; pairwise_cuda_binding.cpp fills it from tensors. Keeping torch out of the .cu is what
// lets CMakeLists.txt compile it on a machine whose torch is a CPU build.
#pragma once

#include <cuda_runtime_api.h>  // cudaStream_t

#include <stdint.h>

#include "pairwise_grid.h"  // kPairwiseThreads, fusedloss_pairwise_num_blocks, _col_splits

#ifdef __cplusplus
extern "C" {
#endif

// Element type of scores, labels and weight (the accumulation type acc_t).
enum PairwiseDType {
  kPairwiseF32 = 0,
  kPairwiseF64 = 1,
};

// What one launch computes.
enum PairwiseMode {
  kPairwiseSbnz = 0,    // pairwise_fwd, select None
  kPairwiseSelect = 1,  // pairwise_fwd, select given (OHEM's final pass)
  kPairwiseHist = 2,    // pairwise_ohem_hist
};

// Return codes of the launchers besides 0 (success) and positive cudaError_t values.
enum PairwiseStatus {
  kPairwiseBadDType = -1,
  kPairwiseBadArgs = -2,
};

// kPairwiseHistBins bins of the OHEM digit histogram (the grid: pairwise_grid.h).
enum { kPairwiseHistBins = 2048 };

typedef struct PairwiseLaunchArgs {
  const void* scores;     // [n] acc_t, session-sorted, contiguous
  const void* labels;     // [n] acc_t
  const void* weight;     // [n] or [1] acc_t, or NULL (weight 1)
  int64_t weight_numel;   // n or 1 (0 when weight is NULL)
  const int64_t* order;   // [n] original batch index of each sorted position (< 2^32)
  const int64_t* seg_lo;  // [n] first sorted position of the row's session
  const int64_t* seg_hi;  // [n] one past its last
  // Select mode: the select tensor, int64 [5] (K*'s four words and the enabled flag); hist mode: the
  // state tensor, int64 [5] (the decided prefix's four words and the done flag); the 128-bit OHEM key
  // of pairwise_math.h (kOhemWords words, then the flag). Read on the device; NULL for SBNZ.
  const int64_t* words;
  void* grad;               // [n] acc_t (fwd modes with compute_grad), or NULL
  double* partials;         // fwd modes: [2 * num_blocks * col_splits]: per-block loss sums, then counts
  unsigned long long* hist; // hist mode: [kPairwiseHistBins] int64, zeroed by the caller
  int64_t n;
  int64_t kind;    // fusedloss::pairwise::Kind
  int64_t flags;   // fusedloss::pairwise::Flag bits
  double temperature, margin, hinge_margin, gamma, alpha;
  int32_t dtype;       // PairwiseDType
  int32_t mode;        // PairwiseMode
  int32_t digit;       // hist mode: 0 .. 11 (kOhemDigits - 1, pairwise_math.h)
  int32_t num_blocks;  // row blocks (gridDim.x): fusedloss_pairwise_num_blocks(n)
  int32_t col_splits;  // column groups (gridDim.y): fusedloss_pairwise_col_splits(n, symmetric, SMs)
  // 1: the symmetric schedule (each pair evaluated once; grad, when wanted, must be zeroed by the
  // caller and receives float atomics, so its last bits may vary between runs); 0: the two-sided
  // one (each pair from both sides; every row's gradient written once, deterministic).
  int32_t symmetric;
} PairwiseLaunchArgs;

// Launches the kernel on `stream` (asynchronous; never synchronises). Returns 0, a PairwiseStatus, or
// the cudaError_t of the launch. With n == 0 it launches nothing and returns 0.
int fusedloss_pairwise_cuda(const PairwiseLaunchArgs* args, cudaStream_t stream);

// Whether a launch goes to the lean kernel (pairwise_sbnz_cuda.cu): float32 SBNZ of PAIR_WISE (kind
// 0) or PAIRWISE_LOGISTIC (kind 1) under the symmetric schedule, n < 2^31.
static inline int fusedloss_pairwise_sbnz_applies(int32_t dtype, int32_t mode, int64_t kind, int32_t symmetric,
                                                  int64_t n) {
  return dtype == kPairwiseF32 && mode == kPairwiseSbnz && (kind == 0 || kind == 1) && symmetric == 1 &&
         n > 0 && n < ((int64_t)1 << 31);
}

// The lean kernel on `stream`, for the launches fusedloss_pairwise_sbnz_applies accepts; the same
// args, but num_blocks = fusedloss_pairwise_sbnz_blocks(n), col_splits unused, partials
// [2 * num_blocks] (per-block loss sums, then counts), words, hist, gamma and alpha unused.
int fusedloss_pairwise_sbnz_cuda(const PairwiseLaunchArgs* args, cudaStream_t stream);

#ifdef __cplusplus
}  // extern "C"
#endif
