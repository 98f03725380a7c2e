// CUDA kernels of fusedloss::rowwise_fwd. Torch-free: raw pointers, int64 sizes, an explicit stream
// (rowwise_cuda.h); rowwise_cuda_binding.cpp turns tensors into RowwiseLaunchArgs and finishes the
// reduction over rows. The cpu kernel (rowwise_cpu.cpp) computes the same thing with the same header
// math (rowwise_math.h).
//
// Rows with D elements (cosine embedding, cosine similarity, triplet, contrastive): a group of kGroup
// lanes per row (kGroup = 4, 8, 16 or 32 picked from D, so that short rows do not idle most of a
// warp), grid-stride over rows, warp-uniform loop. Sweep 1: the lanes stride over the row, each
// accumulating a RowAcc with row_accumulate, merged by a butterfly of shuffles (row_acc_merge), after
// which every lane of the group holds the same bits; every lane runs row_finish, lane 0 of the group
// writes the row's loss; sweep 2 (with a gradient): the lanes stride over the row again and write
// grad_elems, converted to the input dtype. No atomics and a fixed order: deterministic.
//
// D = 1 kinds (margin ranking, order calibration; millions of one-element rows): a thread per row.
//
// Instantiated for {float, double, __half, __nv_bfloat16} x the kinds (the switches of rowwise_math.h
// fold) x the group sizes.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <stdint.h>

#include "../common/cuda_convert.cuh"
#include "../common/cuda_launch.cuh"
#include "rowwise_cuda.h"
#include "rowwise_math.h"

namespace fusedloss {
namespace rowwise {
namespace {

constexpr int kWarp = 32;
constexpr unsigned kFull = 0xffffffffu;
constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = int64_t(1) << 16;  // grid-stride beyond this

template <typename acc_t>
__device__ __forceinline__ RowAcc<acc_t> shfl_xor(const RowAcc<acc_t>& r, int offset) {
  return RowAcc<acc_t>{__shfl_xor_sync(kFull, r.s0, offset), __shfl_xor_sync(kFull, r.s1, offset),
                       __shfl_xor_sync(kFull, r.s2, offset)};
}

template <int kKind, typename acc_t>
__device__ __forceinline__ Params<acc_t> fixed(Params<acc_t> prm) {
  prm.kind = kKind;
  return prm;
}

// Rows of D elements, kGroup lanes per row.
template <typename scalar_t, int kKind, int kGroup>
__global__ void __launch_bounds__(kThreads)
    rows_kernel(const scalar_t* __restrict__ a, const scalar_t* __restrict__ b, const scalar_t* __restrict__ c,
                const typename AccOf<scalar_t>::type* __restrict__ y,
                typename AccOf<scalar_t>::type* __restrict__ row_loss, scalar_t* __restrict__ ga,
                scalar_t* __restrict__ gb, scalar_t* __restrict__ gc, const int64_t N, const int64_t D,
                const Params<typename AccOf<scalar_t>::type> prm_in) {
  using acc_t = typename AccOf<scalar_t>::type;
  constexpr int kRowsPerWarp = kWarp / kGroup;
  const Params<acc_t> prm = fixed<kKind>(prm_in);
  const int lane = threadIdx.x % kWarp;
  const int glane = lane % kGroup;
  const int64_t warp = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * blockDim.x / kWarp;
  // base is uniform over the warp, so every lane reaches every shuffle.
  for (int64_t base = warp * kRowsPerWarp; base < N; base += warps * kRowsPerWarp) {
    const int64_t i = base + lane / kGroup;
    const bool valid = i < N;
    const int64_t off = valid ? i * D : 0;
    RowAcc<acc_t> r = row_acc_zero<acc_t>();
    if (valid) {
#pragma unroll 4
      for (int64_t d = glane; d < D; d += kGroup) {
        row_accumulate(r, to_acc<acc_t>(a[off + d]), to_acc<acc_t>(b[off + d]),
                       kKind == kTriplet ? to_acc<acc_t>(c[off + d]) : acc_t(0), prm);
      }
    }
#pragma unroll
    for (int o = kGroup / 2; o > 0; o >>= 1) r = row_acc_merge(r, shfl_xor(r, o));
    if (!valid) continue;  // the last iteration of this warp: no shuffles follow

    Coef<acc_t> k;
    const acc_t loss = row_finish(r, y != nullptr ? y[i] : acc_t(0), prm, &k);
    if (glane == 0) row_loss[i] = loss;
    if (ga == nullptr) continue;
    for (int64_t d = glane; d < D; d += kGroup) {
      acc_t xa, xb, xc;
      grad_elems(to_acc<acc_t>(a[off + d]), to_acc<acc_t>(b[off + d]),
                 kKind == kTriplet ? to_acc<acc_t>(c[off + d]) : acc_t(0), k, prm, acc_t(1), &xa, &xb, &xc);
      ga[off + d] = from_acc<scalar_t>(xa);
      gb[off + d] = from_acc<scalar_t>(xb);
      if constexpr (kKind == kTriplet) gc[off + d] = from_acc<scalar_t>(xc);
    }
  }
}

// One-element rows (kinds 0 and 1), a thread per row.
template <typename scalar_t, int kKind>
__global__ void __launch_bounds__(kThreads)
    flat_kernel(const scalar_t* __restrict__ a, const scalar_t* __restrict__ b,
                const typename AccOf<scalar_t>::type* __restrict__ y,
                typename AccOf<scalar_t>::type* __restrict__ row_loss, scalar_t* __restrict__ ga,
                scalar_t* __restrict__ gb, const int64_t N, const Params<typename AccOf<scalar_t>::type> prm_in) {
  using acc_t = typename AccOf<scalar_t>::type;
  const Params<acc_t> prm = fixed<kKind>(prm_in);
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < N; i += stride) {
    const acc_t ai = to_acc<acc_t>(a[i]), bi = to_acc<acc_t>(b[i]);
    RowAcc<acc_t> r = row_acc_zero<acc_t>();
    row_accumulate(r, ai, bi, acc_t(0), prm);
    Coef<acc_t> k;
    row_loss[i] = row_finish(r, kKind == kMarginRanking ? y[i] : acc_t(0), prm, &k);
    if (ga != nullptr) {
      acc_t xa, xb, xc;
      grad_elems(ai, bi, acc_t(0), k, prm, acc_t(1), &xa, &xb, &xc);
      ga[i] = from_acc<scalar_t>(xa);
      gb[i] = from_acc<scalar_t>(xb);
    }
  }
}

unsigned blocks_for(int64_t threads) {
  const int64_t blocks = (threads + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < kMaxBlocks ? (blocks > 0 ? blocks : 1) : kMaxBlocks);
}

template <typename scalar_t, int kKind, int kGroup>
void launch_rows(const RowwiseLaunchArgs& a, const Params<typename AccOf<scalar_t>::type>& prm,
                 cudaStream_t stream) {
  using acc_t = typename AccOf<scalar_t>::type;
  const int64_t rows_per_block = kThreads / kGroup;
  const unsigned grid = blocks_for((a.N + rows_per_block - 1) / rows_per_block * kThreads);
  launch_kernel(
      rows_kernel<scalar_t, kKind, kGroup>, grid, kThreads, 0, stream, static_cast<const scalar_t*>(a.a),
      static_cast<const scalar_t*>(a.b), static_cast<const scalar_t*>(a.c),
      static_cast<const acc_t*>(a.target), static_cast<acc_t*>(a.row_loss), static_cast<scalar_t*>(a.grad_a),
      static_cast<scalar_t*>(a.grad_b), static_cast<scalar_t*>(a.grad_c), a.N, a.D, prm);
}

template <typename scalar_t, int kKind>
void launch_rows_kind(const RowwiseLaunchArgs& a, const Params<typename AccOf<scalar_t>::type>& prm,
                      cudaStream_t stream) {
  if (a.D > 64) {
    launch_rows<scalar_t, kKind, 32>(a, prm, stream);
  } else if (a.D > 32) {
    launch_rows<scalar_t, kKind, 16>(a, prm, stream);
  } else if (a.D > 16) {
    launch_rows<scalar_t, kKind, 8>(a, prm, stream);
  } else {
    launch_rows<scalar_t, kKind, 4>(a, prm, stream);
  }
}

template <typename scalar_t, int kKind>
void launch_flat(const RowwiseLaunchArgs& a, const Params<typename AccOf<scalar_t>::type>& prm,
                 cudaStream_t stream) {
  using acc_t = typename AccOf<scalar_t>::type;
  launch_kernel(
      flat_kernel<scalar_t, kKind>, blocks_for(a.N), kThreads, 0, stream, static_cast<const scalar_t*>(a.a),
      static_cast<const scalar_t*>(a.b), static_cast<const acc_t*>(a.target),
      static_cast<acc_t*>(a.row_loss), static_cast<scalar_t*>(a.grad_a), static_cast<scalar_t*>(a.grad_b), a.N,
      prm);
}

template <typename scalar_t>
int launch(const RowwiseLaunchArgs& a, cudaStream_t stream) {
  using acc_t = typename AccOf<scalar_t>::type;
  Params<acc_t> prm;
  prm.kind = a.kind;
  prm.margin = static_cast<acc_t>(a.margin);
  prm.p = static_cast<acc_t>(a.p);
  prm.eps = static_cast<acc_t>(a.eps);
  prm.swap = a.swap != 0;
  switch (a.kind) {
    case kMarginRanking:
      launch_flat<scalar_t, kMarginRanking>(a, prm, stream);
      break;
    case kOrderCalibrate:
      launch_flat<scalar_t, kOrderCalibrate>(a, prm, stream);
      break;
    case kCosineEmbedding:
      launch_rows_kind<scalar_t, kCosineEmbedding>(a, prm, stream);
      break;
    case kCosineSimilarity:
      launch_rows_kind<scalar_t, kCosineSimilarity>(a, prm, stream);
      break;
    case kTriplet:
      launch_rows_kind<scalar_t, kTriplet>(a, prm, stream);
      break;
    default:
      launch_rows_kind<scalar_t, kContrastive>(a, prm, stream);
      break;
  }
  return static_cast<int>(cudaGetLastError());
}

bool args_ok(const RowwiseLaunchArgs* a) {
  if (a == nullptr || a->N < 0 || a->D < 0) return false;
  if (a->kind < kMarginRanking || a->kind > kContrastive) return false;
  const bool flat = a->kind == kMarginRanking || a->kind == kOrderCalibrate;
  if (flat && a->D != 1) return false;
  if (!(a->p >= 1.0) || !(a->eps >= 0.0)) return false;
  if (a->N == 0) return true;
  if (a->row_loss == nullptr) return false;
  if (a->D > 0 && (a->a == nullptr || a->b == nullptr)) return false;
  const bool triplet = a->kind == kTriplet;
  if (triplet != (a->c != nullptr) && !(triplet && a->D == 0)) return false;
  const bool needs_target = a->kind == kMarginRanking || a->kind == kCosineEmbedding || a->kind == kContrastive;
  if (needs_target && a->target == nullptr) return false;
  const bool grad = a->grad_a != nullptr;
  if (grad != (a->grad_b != nullptr)) return false;
  if (grad && triplet && a->D > 0 && a->grad_c == nullptr) return false;
  return true;
}

}  // namespace
}  // namespace rowwise
}  // namespace fusedloss

extern "C" int fusedloss_rowwise_fwd_cuda(const RowwiseLaunchArgs* args, cudaStream_t stream) {
  using namespace fusedloss::rowwise;
  if (!args_ok(args)) return kRowwiseBadArgs;
  const RowwiseLaunchArgs& a = *args;
  if (a.N == 0) return 0;
  switch (a.input_dtype) {
    case kRowwiseF32:
      return launch<float>(a, stream);
    case kRowwiseF64:
      return launch<double>(a, stream);
    case kRowwiseF16:
      return launch<__half>(a, stream);
    case kRowwiseBF16:
      return launch<__nv_bfloat16>(a, stream);
    default:
      return kRowwiseBadInputDType;
  }
}
