// Launch geometry of the CUDA pairwise kernel (pairwise_cuda.cu): plain C arithmetic, no CUDA or
// torch, so that the C++ tests (csrc/tests/test_pairwise_math.cpp) check it on any machine.
#pragma once

#include <stdint.h>

// One block of kPairwiseThreads threads per kPairwiseThreads consecutive sorted rows; columns are
// staged in tiles of kPairwiseTile; the kernel asks for kPairwiseMinBlocksPerSm resident blocks per SM.
enum {
  kPairwiseThreads = 128,
  kPairwiseTile = 256,
  kPairwiseMinBlocksPerSm = 4,
  kPairwiseTargetWaves = 8,
  kPairwiseSbnzRows = 16,  // rows per one-warp block of the lean SBNZ kernel (pairwise_sbnz_cuda.cu)
};

// Row blocks: one per kPairwiseThreads rows; 0 for an empty input (nothing is launched).
static inline int32_t fusedloss_pairwise_num_blocks(int64_t n) {
  if (n <= 0) return 0;
  return (int32_t)((n + kPairwiseThreads - 1) / kPairwiseThreads);
}

// Column groups per row block (gridDim.y) in the symmetric schedule: block (x, y) takes column tiles
// y, y + col_splits, ... of row block x's range. Row blocks alone leave an all-pairs batch with few
// blocks of triangular work (B = 65,536: 512 blocks, one wave at 4 per SM on 132 SMs, block 0 walking
// 256 tiles and the last one), so that a few long blocks of 4 warps set the time; the groups aim at
// about kPairwiseTargetWaves waves of resident blocks. Never more groups than the longest possible
// range has tiles (a block without tiles only stages its rows); 1 for the two-sided schedule (each
// row writes its whole gradient once, so a row block cannot be split) and for a batch whose row blocks
// alone fill that many waves, such as B = 2^20 with sessions.
static inline int32_t fusedloss_pairwise_col_splits(int64_t n, int32_t symmetric, int32_t num_sms) {
  const int64_t row_blocks = fusedloss_pairwise_num_blocks(n);
  if (row_blocks == 0 || symmetric == 0 || num_sms <= 0) return 1;
  const int64_t target = (int64_t)num_sms * kPairwiseMinBlocksPerSm * kPairwiseTargetWaves;
  int64_t splits = (target + row_blocks - 1) / row_blocks;
  const int64_t max_tiles = (n + kPairwiseTile - 1) / kPairwiseTile;
  if (splits > max_tiles) splits = max_tiles;
  if (splits > 65535) splits = 65535;  // gridDim.y's limit
  return (int32_t)(splits < 1 ? 1 : splits);
}

// Blocks of the lean SBNZ kernel: one warp per kPairwiseSbnzRows sorted rows.
static inline int32_t fusedloss_pairwise_sbnz_blocks(int64_t n) {
  if (n <= 0) return 0;
  return (int32_t)((n + kPairwiseSbnzRows - 1) / kPairwiseSbnzRows);
}
