// The lean CUDA kernel of fusedloss::pairwise_fwd for float32 SBNZ PAIR_WISE / PAIRWISE_LOGISTIC under
// the symmetric schedule (pairwise_cuda_binding.cpp picks it; everything else runs pairwise_cuda.cu).
// Torch-free: pairwise_cuda.h's PairwiseLaunchArgs and an explicit stream. The twin of
// fusedloss/triton_kernels/pairwise_sbnz.py; the per-pair math is pairwise_lean_math.h's lean_pair,
// which the cpu backend's SBNZ loop runs too.
//
// One warp per block owns kPairwiseSbnzRows = 16 consecutive sorted rows, every lane holding all 16
// rows in registers, and walks the columns of their sessions from its first row on in tiles of 32,
// one column per lane. A pair (p, q) is taken when q > p and q < seg_hi[p] (q > p >= seg_lo[p]: the
// same session). Per tile and lane: 16 lean_pair evaluations; the column's loss, count and d loss /
// d s_q are sums inside the lane (no shuffles, no shared memory), and d loss / d s_q goes to grad
// with one atomicAdd per column and tile (grad zeroed by the binding). The rows' d loss / d s_p
// accumulate in registers and are warp-reduced once at the end (one atomicAdd per row). Tiles wholly
// after the rows, inside all their sessions and with finite scores (and labels, with a label margin)
// skip the session test and lean_pair's guard. The loss is summed per tile in float and across tiles
// in double; per-block partials[block] (ln 2 * sum) and partials[blocks + block] (count) are finished
// by the binding, as for pairwise_cuda.cu. B < 2^31 (int indices; the binding checks it).
#include <cuda_runtime.h>

#include <stdint.h>

#include "../common/cuda_launch.cuh"
#include "../common/warp_reduce.cuh"
#include "pairwise_cuda.h"
#include "pairwise_lean_math.h"

namespace fusedloss {
namespace pairwise {
namespace {

constexpr int kRows = kPairwiseSbnzRows;
constexpr int kLanes = 32;

struct LeanArgs {
  const float* __restrict__ s;
  const float* __restrict__ y;
  const float* __restrict__ w;  // nullptr: weight 1
  int w_stride;                 // 1 for [n], 0 for [1]
  const int64_t* __restrict__ seg_hi;
  float* __restrict__ grad;  // nullptr: not wanted
  double* __restrict__ partials;
  int n;
  float inv_t, k2, shift2;  // 1 / T, log2(e) / T, mu log2(e)
  bool label_transform;     // yt = y / T (use_label_margin)
};

// One 16 x 32 tile against this lane's column: the tile's loss sum, count and column gradient sum
// (all times what the caller scales by), and the rows' gradient terms into acc_g.
template <int kShift, bool kWeight, bool kFull>
__device__ __forceinline__ void tile(int c, const float (&a_r)[kRows], const float (&y_r)[kRows],
                                     const float (&yl_r)[kRows], const float (&w_r)[kRows],
                                     const int (&hi_r)[kRows], int r0, float a_c, float y_c, float yl_c,
                                     float w_c, float shift2, float (&acc_g)[kRows], float* ls, float* cnt,
                                     float* gc) {
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    const bool in_session = kFull || (c > r0 + r && c < hi_r[r]);
    const LeanPair o = lean_pair<kShift, !kFull, true>(in_session, a_r[r], y_r[r], yl_r[r], a_c, y_c, yl_c, shift2);
    const float pair = fabsf(o.sgn);
    float wv = pair;
    if (kWeight) wv = (o.sgn < 0.0f ? w_r[r] : w_c) * pair;
    *ls += wv * o.sp2;
    *cnt += kWeight ? (wv != 0.0f ? 1.0f : 0.0f) : pair;
    const float sg = o.sgn * wv * o.sig;  // T d loss / d s_p
    acc_g[r] += sg;
    *gc += sg;
  }
}

template <int kShift, bool kWeight, bool kGrad>
__global__ void __launch_bounds__(kLanes) pairwise_sbnz_kernel(const LeanArgs a) {
  const int lane = threadIdx.x;
  const int r0 = static_cast<int>(blockIdx.x) * kRows;
  const float l2e = static_cast<float>(kLeanLog2e);
  float a_r[kRows], y_r[kRows], yl_r[kRows], w_r[kRows], acc_g[kRows];
  int hi_r[kRows];
  int col_hi = 0, full_hi = a.n;
  bool rows_finite = true;
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    const int row = r0 + r;
    const bool ok = row < a.n;
    a_r[r] = ok ? a.s[row] * a.k2 : 0.0f;
    y_r[r] = ok ? a.y[row] : 0.0f;
    if (a.label_transform) y_r[r] = y_r[r] * a.inv_t;
    yl_r[r] = y_r[r] * l2e;
    w_r[r] = (kWeight && ok) ? a.w[row * a.w_stride] : 1.0f;
    // Clamped to [0, n]: the cpu op checks the ranges, here a check would need a host sync.
    const int64_t h = ok ? a.seg_hi[row] : 0;
    hi_r[r] = static_cast<int>(h < 0 ? 0 : (h > a.n ? a.n : h));
    col_hi = max(col_hi, hi_r[r]);
    full_hi = min(full_hi, hi_r[r]);  // 0 when a row is past n
    rows_finite = rows_finite && fabsf(a_r[r]) < INFINITY && (kShift != kLeanShiftLabel || fabsf(y_r[r]) < INFINITY);
    acc_g[r] = 0.0f;
  }
  double sum = 0.0, count = 0.0;  // per lane, across tiles (a tile's count, <= 16, is exact in float)
  for (int c0 = r0; c0 < col_hi; c0 += kLanes) {
    const int c = c0 + lane;
    const bool cm = c < col_hi;
    const float a_c = cm ? a.s[c] * a.k2 : 0.0f;
    float y_c = cm ? a.y[c] : 0.0f;
    if (a.label_transform) y_c = y_c * a.inv_t;
    const float w_c = (kWeight && cm) ? a.w[c * a.w_stride] : 1.0f;
    const bool bad = !(fabsf(a_c) < INFINITY) || (kShift == kLeanShiftLabel && !(fabsf(y_c) < INFINITY));
    const bool full = c0 >= r0 + kRows && c0 + kLanes <= full_hi && rows_finite && !__any_sync(0xffffffffu, bad);
    float ls = 0.0f, cnt = 0.0f, gc = 0.0f;
    if (full) {
      tile<kShift, kWeight, true>(c, a_r, y_r, yl_r, w_r, hi_r, r0, a_c, y_c, y_c * l2e, w_c, a.shift2, acc_g, &ls,
                                  &cnt, &gc);
    } else {
      tile<kShift, kWeight, false>(c, a_r, y_r, yl_r, w_r, hi_r, r0, a_c, y_c, y_c * l2e, w_c, a.shift2, acc_g, &ls,
                                   &cnt, &gc);
    }
    sum += static_cast<double>(ls);
    count += cnt;
    if (kGrad && cm && gc != 0.0f) atomicAdd(&a.grad[c], -gc * a.inv_t);
  }
  if (kGrad) {
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      const float g = warp_sum(acc_g[r]);  // in lane 0
      if (lane == 0 && r0 + r < a.n && g != 0.0f) atomicAdd(&a.grad[r0 + r], g * a.inv_t);
    }
  }
  sum = warp_sum(sum);
  count = warp_sum(count);
  if (lane == 0) {
    a.partials[blockIdx.x] = sum * kLeanLn2;
    a.partials[gridDim.x + blockIdx.x] = count;
  }
}

template <int kShift>
int launch_shift(const LeanArgs& la, int32_t blocks, bool weight, bool grad, cudaStream_t stream) {
  if (weight) {
    if (grad) {
      launch_kernel(pairwise_sbnz_kernel<kShift, true, true>, blocks, kLanes, 0, stream, la);
    } else {
      launch_kernel(pairwise_sbnz_kernel<kShift, true, false>, blocks, kLanes, 0, stream, la);
    }
  } else if (grad) {
    launch_kernel(pairwise_sbnz_kernel<kShift, false, true>, blocks, kLanes, 0, stream, la);
  } else {
    launch_kernel(pairwise_sbnz_kernel<kShift, false, false>, blocks, kLanes, 0, stream, la);
  }
  return static_cast<int>(cudaGetLastError());
}

}  // namespace
}  // namespace pairwise
}  // namespace fusedloss

extern "C" int fusedloss_pairwise_sbnz_cuda(const PairwiseLaunchArgs* args, cudaStream_t stream) {
  using namespace fusedloss::pairwise;
  if (args == nullptr) return kPairwiseBadArgs;
  const PairwiseLaunchArgs& a = *args;
  if (a.n == 0) return 0;
  if (!fusedloss_pairwise_sbnz_applies(a.dtype, a.mode, a.kind, a.symmetric, a.n) ||
      a.num_blocks != fusedloss_pairwise_sbnz_blocks(a.n) || a.scores == nullptr || a.labels == nullptr ||
      a.seg_hi == nullptr || a.partials == nullptr || !(a.temperature > 0.0) ||
      (a.weight != nullptr && a.weight_numel != 1 && a.weight_numel != a.n)) {
    return kPairwiseBadArgs;
  }
  LeanArgs la;
  la.s = static_cast<const float*>(a.scores);
  la.y = static_cast<const float*>(a.labels);
  la.w = static_cast<const float*>(a.weight);
  la.w_stride = (a.weight != nullptr && a.weight_numel == a.n && a.n != 1) ? 1 : 0;
  la.seg_hi = a.seg_hi;
  la.grad = static_cast<float*>(a.grad);
  la.partials = a.partials;
  la.n = static_cast<int>(a.n);
  la.inv_t = static_cast<float>(1.0 / a.temperature);
  la.k2 = static_cast<float>(1.0 / a.temperature * kLeanLog2e);
  double mu = 0.0;
  const int shift = lean_shift(a.kind, a.flags, a.margin, a.hinge_margin, &mu);
  la.shift2 = static_cast<float>(mu * kLeanLog2e);
  la.label_transform = shift == kLeanShiftLabel;
  const bool weight = a.weight != nullptr, grad = a.grad != nullptr;
  switch (shift) {
    case kLeanShiftConst:
      return launch_shift<kLeanShiftConst>(la, a.num_blocks, weight, grad, stream);
    case kLeanShiftLabel:
      return launch_shift<kLeanShiftLabel>(la, a.num_blocks, weight, grad, stream);
    default:
      return launch_shift<kLeanShiftNone>(la, a.num_blocks, weight, grad, stream);
  }
}
