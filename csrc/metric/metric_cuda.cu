// CUDA kernels of fusedloss::metric_fwd. Torch-free: raw pointers, int64 sizes, an explicit stream
// (metric_cuda.h); metric_cuda_binding.cpp turns tensors into MetricLaunchArgs. The cpu kernel
// (metric_cpu.cpp) computes the same thing with the same header math (metric_math.h). No [B, B]
// matrix: the cosines are computed tile by tile, twice.
//
// A block of kThreads owns kTI anchors and walks the row tiles of kTJ rows in order:
//   sums of squares (normalize only): a warp per row, into [B] scratch, so that every reader of a row
//     sees the same inv;
//   the dots of a tile (both passes, the same code): the anchors' and the rows' embeddings staged in
//     shared memory kDK columns at a time (converted to acc_t), each thread a 2 x 4 micro-tile
//     (anchors ty, ty + 16; rows tx + 16 q), FMA over D in order, so S_ij and S_ji are the same bits;
//   pass 1: each thread keeps the two online LSEs (RowLse) of its 2 anchors over its rows, online
//     over the tiles; the 16 threads of an anchor (a half-warp) merge theirs with shuffles
//     (row_lse_merge is commutative, bit for bit), then row_stats, row_loss, row_factor;
//   pass 2 (gradient only): per tile, H_ij = pair_grad(i) + pair_grad(j) for the thread's pairs into
//     shared memory (times inv_j) and hc_i += H_ij S_ij; then sh_i += sum_j H_ij inv_j e_j: the rows'
//     embeddings staged kDK columns at a time, each thread 2 anchors x 2 columns, summed in acc_t over
//     the tile and added to the block's own rows of the double scratch `sh` (each element always
//     by the same thread); at the end grad_elem over sh and hc (double), converted to the input dtype.
// Each row computes its own gradient: no atomics, and the results are deterministic.
// Instantiated for {float, double, __half, __nv_bfloat16} (acc_t float, or double for double).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <stdint.h>

#include "../common/cuda_convert.cuh"
#include "../common/cuda_launch.cuh"
#include "metric_cuda.h"
#include "metric_math.h"

namespace fusedloss {
namespace metric {
namespace {

constexpr int kWarp = 32;
constexpr unsigned kFull = 0xffffffffu;
constexpr int kThreads = 256;
constexpr int kTI = 32;              // anchors per block
constexpr int kTJ = 64;              // rows per tile
constexpr int kDK = 32;              // columns of D staged at a time
constexpr int kPad = kDK + 1;        // row stride of the dot tiles (conflict-free column reads)
constexpr int kGroup = 16;           // threads per anchor (tx); a half-warp
constexpr int kAR = kTI / kGroup;    // anchors per thread: ty, ty + 16
constexpr int kRR = kTJ / kGroup;    // rows per thread: tx + 16 q
constexpr int kGC = kDK / kGroup;    // sh columns per thread: tx + 16 q
static_assert(kThreads == kGroup * kGroup, "a 16 x 16 thread grid");
static_assert(kTI == kAR * kGroup && kTJ == kRR * kGroup && kDK == kGC * kGroup, "tile shapes");

// Shared tiles, in acc_t: the dots phase holds As [kTI][kPad] and Bs [kTJ][kPad]; pass 2's gather
// phase Hs [kTI][kTJ] and Es [kTJ][kDK] in the same memory.
constexpr int kDotsElems = (kTI + kTJ) * kPad;
constexpr int kGatherElems = kTI * kTJ + kTJ * kDK;
constexpr int kTileElems = kDotsElems > kGatherElems ? kDotsElems : kGatherElems;

__device__ __forceinline__ int lane_tx() { return static_cast<int>(threadIdx.x) % kGroup; }
__device__ __forceinline__ int lane_ty() { return static_cast<int>(threadIdx.x) / kGroup; }

template <typename acc_t>
__device__ __forceinline__ acc_t sumsq_of(const acc_t* __restrict__ ss, int64_t i, bool normalize) {
  return normalize ? ss[i] : acc_t(0);
}

template <typename scalar_t>
__global__ void __launch_bounds__(kThreads)
    sumsq_kernel(const scalar_t* __restrict__ e, typename AccOf<scalar_t>::type* __restrict__ ss, int64_t B,
                 int64_t D) {
  using acc_t = typename AccOf<scalar_t>::type;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * (kThreads / kWarp) + threadIdx.x / kWarp;
  if (i >= B) return;  // uniform per warp
  const int lane = threadIdx.x % kWarp;
  const scalar_t* ei = e + i * D;
  acc_t s = acc_t(0);
  for (int64_t d = lane; d < D; d += kWarp) {
    const acc_t v = to_acc<acc_t>(ei[d]);
    s += v * v;
  }
#pragma unroll
  for (int offset = kWarp / 2; offset > 0; offset >>= 1) s += __shfl_xor_sync(kFull, s, offset);
  if (lane == 0) ss[i] = s;
}

// acc[p][q] = e_{a0 + ty + 16 p} . e_{j0 + tx + 16 q} (0 outside [0, B)). Starts and ends with every
// thread past a __syncthreads() when D > 0 (callers sync themselves for D == 0).
template <typename scalar_t, typename acc_t>
__device__ __forceinline__ void tile_dots(const scalar_t* __restrict__ e, int64_t B, int64_t D, int64_t a0,
                                          int64_t j0, acc_t* tile, acc_t (&acc)[kAR][kRR]) {
  const int t = threadIdx.x, tx = lane_tx(), ty = lane_ty();
  acc_t* As = tile;
  acc_t* Bs = tile + kTI * kPad;
#pragma unroll
  for (int p = 0; p < kAR; ++p) {
#pragma unroll
    for (int q = 0; q < kRR; ++q) acc[p][q] = acc_t(0);
  }
  for (int64_t k0 = 0; k0 < D; k0 += kDK) {
    __syncthreads();  // the previous readers of the tile memory are done
    for (int idx = t; idx < kTI * kDK; idx += kThreads) {
      const int r = idx / kDK, k = idx % kDK;
      const int64_t i = a0 + r, d = k0 + k;
      As[r * kPad + k] = (i < B && d < D) ? to_acc<acc_t>(e[i * D + d]) : acc_t(0);
    }
    for (int idx = t; idx < kTJ * kDK; idx += kThreads) {
      const int r = idx / kDK, k = idx % kDK;
      const int64_t j = j0 + r, d = k0 + k;
      Bs[r * kPad + k] = (j < B && d < D) ? to_acc<acc_t>(e[j * D + d]) : acc_t(0);
    }
    __syncthreads();
#pragma unroll 8
    for (int k = 0; k < kDK; ++k) {
      acc_t a[kAR], b[kRR];
#pragma unroll
      for (int p = 0; p < kAR; ++p) a[p] = As[(ty + kGroup * p) * kPad + k];
#pragma unroll
      for (int q = 0; q < kRR; ++q) b[q] = Bs[(tx + kGroup * q) * kPad + k];
#pragma unroll
      for (int p = 0; p < kAR; ++p) {
#pragma unroll
        for (int q = 0; q < kRR; ++q) acc[p][q] = fma(a[p], b[q], acc[p][q]);
      }
    }
  }
}

// The anchors of this thread: labels, sessions, inv (and pass 2's statistics).
template <typename acc_t>
struct Anchor {
  int64_t i, y, g;
  acc_t inv;
  bool valid;
};

template <typename acc_t>
__device__ __forceinline__ Anchor<acc_t> load_anchor(int64_t i, const int64_t* __restrict__ y,
                                                     const int64_t* __restrict__ g,
                                                     const acc_t* __restrict__ ss, int64_t B, bool normalize) {
  Anchor<acc_t> a;
  a.i = i;
  a.valid = i < B;
  a.y = a.valid ? y[i] : 0;
  a.g = (a.valid && g != nullptr) ? g[i] : 0;
  a.inv = a.valid ? inv_norm(sumsq_of(ss, i, normalize), normalize) : acc_t(0);
  return a;
}

// Pass 1: row statistics and losses. minBlocksPerMultiprocessor = 1 stated (as in grad_kernel):
// without it ptxas held the fp64 instantiation to too few registers and spilled.
template <typename scalar_t>
__global__ void __launch_bounds__(kThreads, 1)
    stats_kernel(const scalar_t* __restrict__ e, const int64_t* __restrict__ y, const int64_t* __restrict__ g,
                 const typename AccOf<scalar_t>::type* __restrict__ ss, typename AccOf<scalar_t>::type* __restrict__ A,
                 typename AccOf<scalar_t>::type* __restrict__ N, typename AccOf<scalar_t>::type* __restrict__ C,
                 typename AccOf<scalar_t>::type* __restrict__ row_loss, int64_t B, int64_t D,
                 const Params<typename AccOf<scalar_t>::type> prm) {
  using acc_t = typename AccOf<scalar_t>::type;
  __shared__ acc_t tile[kDotsElems];
  __shared__ int64_t s_y[kTJ], s_g[kTJ];
  __shared__ acc_t s_inv[kTJ];
  const int t = threadIdx.x, tx = lane_tx(), ty = lane_ty();
  const int64_t a0 = static_cast<int64_t>(blockIdx.x) * kTI;
  Anchor<acc_t> an[kAR];
  RowLse<acc_t> st[kAR];
#pragma unroll
  for (int p = 0; p < kAR; ++p) {
    an[p] = load_anchor(a0 + ty + kGroup * p, y, g, ss, B, prm.normalize);
    st[p] = row_lse_start<acc_t>();
  }
  for (int64_t j0 = 0; j0 < B; j0 += kTJ) {
    __syncthreads();  // the previous tile's readers of s_y, s_g, s_inv are done
    if (t < kTJ) {
      const int64_t j = j0 + t;
      const bool in = j < B;
      s_y[t] = in ? y[j] : 0;
      s_g[t] = (in && g != nullptr) ? g[j] : 0;
      s_inv[t] = in ? inv_norm(sumsq_of(ss, j, prm.normalize), prm.normalize) : acc_t(0);
    }
    acc_t acc[kAR][kRR];
    tile_dots(e, B, D, a0, j0, tile, acc);
    __syncthreads();  // s_y, s_g, s_inv visible (also for D == 0)
#pragma unroll
    for (int p = 0; p < kAR; ++p) {
#pragma unroll
      for (int q = 0; q < kRR; ++q) {
        const int c = tx + kGroup * q;
        const int64_t j = j0 + c;
        if (an[p].valid && j < B && j != an[p].i) {
          const acc_t s = (an[p].inv * s_inv[c]) * acc[p][q];
          const bool pos = s_y[c] == an[p].y && s_g[c] == an[p].g;
          row_lse_add(st[p], s, pos, prm);
        }
      }
    }
  }
  // Merge the 16 partial states of each anchor (its half-warp).
#pragma unroll
  for (int p = 0; p < kAR; ++p) {
#pragma unroll
    for (int offset = kGroup / 2; offset > 0; offset >>= 1) {
      RowLse<acc_t> o;
      o.pos.m = __shfl_xor_sync(kFull, st[p].pos.m, offset);
      o.pos.s = __shfl_xor_sync(kFull, st[p].pos.s, offset);
      o.neg.m = __shfl_xor_sync(kFull, st[p].neg.m, offset);
      o.neg.s = __shfl_xor_sync(kFull, st[p].neg.s, offset);
      st[p] = row_lse_merge(st[p], o);
    }
    if (tx == 0 && an[p].valid) {
      acc_t a, n;
      row_stats(st[p], prm, &a, &n);
      A[an[p].i] = a;
      N[an[p].i] = n;
      C[an[p].i] = row_factor(a, n, prm);
      row_loss[an[p].i] = metric::row_loss(a, n, prm);
    }
  }
}

// Pass 2: the gradient. minBlocksPerMultiprocessor = 1 stated: the fp64 instantiation holds 8 double
// accumulators, 2 anchors' statistics and the tile's indices.
template <typename scalar_t>
__global__ void __launch_bounds__(kThreads, 1)
    grad_kernel(const scalar_t* __restrict__ e, const int64_t* __restrict__ y, const int64_t* __restrict__ g,
                const typename AccOf<scalar_t>::type* __restrict__ ss,
                const typename AccOf<scalar_t>::type* __restrict__ A, const typename AccOf<scalar_t>::type* __restrict__ N,
                const typename AccOf<scalar_t>::type* __restrict__ C, double* __restrict__ sh,
                scalar_t* __restrict__ grad, int64_t B, int64_t D, const Params<typename AccOf<scalar_t>::type> prm) {
  using acc_t = typename AccOf<scalar_t>::type;
  __shared__ acc_t tile[kTileElems];
  __shared__ int64_t s_y[kTJ], s_g[kTJ];
  __shared__ acc_t s_inv[kTJ], s_A[kTJ], s_N[kTJ], s_C[kTJ];
  __shared__ double s_hc[kTI];
  const int t = threadIdx.x, tx = lane_tx(), ty = lane_ty();
  const int64_t a0 = static_cast<int64_t>(blockIdx.x) * kTI;
  Anchor<acc_t> an[kAR];
  acc_t an_a[kAR], an_n[kAR], an_c[kAR];
  double hc[kAR];
#pragma unroll
  for (int p = 0; p < kAR; ++p) {
    an[p] = load_anchor(a0 + ty + kGroup * p, y, g, ss, B, prm.normalize);
    an_a[p] = an[p].valid ? A[an[p].i] : acc_t(0);
    an_n[p] = an[p].valid ? N[an[p].i] : acc_t(0);
    an_c[p] = an[p].valid ? C[an[p].i] : acc_t(0);
    hc[p] = 0.0;
  }
  acc_t* Hs = tile;
  acc_t* Es = tile + kTI * kTJ;
  for (int64_t j0 = 0; j0 < B; j0 += kTJ) {
    __syncthreads();  // the previous tile's readers of the row data and of Hs / Es are done
    if (t < kTJ) {
      const int64_t j = j0 + t;
      const bool in = j < B;
      s_y[t] = in ? y[j] : 0;
      s_g[t] = (in && g != nullptr) ? g[j] : 0;
      s_inv[t] = in ? inv_norm(sumsq_of(ss, j, prm.normalize), prm.normalize) : acc_t(0);
      s_A[t] = in ? A[j] : acc_t(0);
      s_N[t] = in ? N[j] : acc_t(0);
      s_C[t] = in ? C[j] : acc_t(0);
    }
    acc_t acc[kAR][kRR];
    tile_dots(e, B, D, a0, j0, tile, acc);
    __syncthreads();  // the dot tiles are read; the row data visible (also for D == 0)
    // H_ij inv_j into Hs, H_ij S_ij into hc.
#pragma unroll
    for (int p = 0; p < kAR; ++p) {
      acc_t hcp = acc_t(0);
#pragma unroll
      for (int q = 0; q < kRR; ++q) {
        const int c = tx + kGroup * q;
        const int64_t j = j0 + c;
        acc_t h = acc_t(0);
        if (an[p].valid && j < B && j != an[p].i) {
          const acc_t s = (an[p].inv * s_inv[c]) * acc[p][q];
          const bool pos = s_y[c] == an[p].y && s_g[c] == an[p].g;
          h = pair_grad(s, pos, an_a[p], an_n[p], an_c[p], prm) + pair_grad(s, pos, s_A[c], s_N[c], s_C[c], prm);
          hcp += h * s;
        }
        Hs[(ty + kGroup * p) * kTJ + c] = h * s_inv[c];
      }
      hc[p] += static_cast<double>(hcp);
    }
    // sh_i += sum_c Hs[i][c] e_{j0 + c}, kDK columns at a time.
    for (int64_t d0 = 0; d0 < D; d0 += kDK) {
      __syncthreads();  // Hs written; the previous columns' readers of Es are done
      for (int idx = t; idx < kTJ * kDK; idx += kThreads) {
        const int r = idx / kDK, k = idx % kDK;
        const int64_t j = j0 + r, d = d0 + k;
        Es[r * kDK + k] = (j < B && d < D) ? to_acc<acc_t>(e[j * D + d]) : acc_t(0);
      }
      __syncthreads();
      acc_t o[kAR][kGC];
#pragma unroll
      for (int p = 0; p < kAR; ++p) {
#pragma unroll
        for (int q = 0; q < kGC; ++q) o[p][q] = acc_t(0);
      }
#pragma unroll 8
      for (int c = 0; c < kTJ; ++c) {
        acc_t h[kAR], v[kGC];
#pragma unroll
        for (int p = 0; p < kAR; ++p) h[p] = Hs[(ty + kGroup * p) * kTJ + c];
#pragma unroll
        for (int q = 0; q < kGC; ++q) v[q] = Es[c * kDK + tx + kGroup * q];
#pragma unroll
        for (int p = 0; p < kAR; ++p) {
#pragma unroll
          for (int q = 0; q < kGC; ++q) o[p][q] = fma(h[p], v[q], o[p][q]);
        }
      }
#pragma unroll
      for (int p = 0; p < kAR; ++p) {
#pragma unroll
        for (int q = 0; q < kGC; ++q) {
          const int64_t d = d0 + tx + kGroup * q;
          if (an[p].valid && d < D) {
            double* dst = sh + an[p].i * D + d;
            *dst = (j0 == 0 ? 0.0 : *dst) + static_cast<double>(o[p][q]);
          }
        }
      }
    }
  }
  // hc of each anchor: the sum over its half-warp (a butterfly: every lane gets the same bits).
#pragma unroll
  for (int p = 0; p < kAR; ++p) {
#pragma unroll
    for (int offset = kGroup / 2; offset > 0; offset >>= 1) hc[p] += __shfl_xor_sync(kFull, hc[p], offset);
    if (tx == 0) s_hc[ty + kGroup * p] = hc[p];
  }
  __syncthreads();  // s_hc and this block's rows of sh visible
  for (int64_t idx = t; idx < static_cast<int64_t>(kTI) * D; idx += kThreads) {
    const int64_t r = idx / D, d = idx % D;
    const int64_t i = a0 + r;
    if (i >= B) break;  // the rows run in order
    const acc_t sq = sumsq_of(ss, i, prm.normalize);
    const double inv = static_cast<double>(inv_norm(sq, prm.normalize));
    const double v = grad_elem(sh[i * D + d], to_acc<double>(e[i * D + d]), s_hc[r], inv, projects(sq, prm.normalize));
    grad[i * D + d] = from_acc<scalar_t>(static_cast<acc_t>(v));
  }
}

constexpr int64_t kMaxGridX = (int64_t(1) << 31) - 1;

template <typename scalar_t>
int launch(const MetricLaunchArgs& a, cudaStream_t stream) {
  using acc_t = typename AccOf<scalar_t>::type;
  Params<acc_t> prm;
  prm.kind = a.kind;
  prm.p0 = static_cast<acc_t>(a.p0);
  prm.p1 = static_cast<acc_t>(a.p1);
  prm.p2 = static_cast<acc_t>(a.p2);
  prm.normalize = a.normalize != 0;
  const scalar_t* e = static_cast<const scalar_t*>(a.emb);
  acc_t* ss = static_cast<acc_t*>(a.sumsq);
  acc_t* stats = static_cast<acc_t*>(a.stats);
  acc_t* A = stats;
  acc_t* N = stats + a.B;
  acc_t* C = stats + 2 * a.B;
  acc_t* loss = static_cast<acc_t*>(a.row_loss);
  scalar_t* grad = static_cast<scalar_t*>(a.grad);
  const int64_t blocks = (a.B + kTI - 1) / kTI;
  const int64_t warps_per_block = kThreads / kWarp;
  const int64_t norm_blocks = (a.B + warps_per_block - 1) / warps_per_block;
  if (blocks > kMaxGridX || norm_blocks > kMaxGridX) return kMetricBadArgs;
  cudaError_t err;
  if (prm.normalize) {
    launch_kernel(sumsq_kernel<scalar_t>, static_cast<unsigned>(norm_blocks), kThreads, 0, stream, e, ss, a.B, a.D);
    if ((err = cudaGetLastError()) != cudaSuccess) return static_cast<int>(err);
  }
  launch_kernel(stats_kernel<scalar_t>, static_cast<unsigned>(blocks), kThreads, 0, stream, e, a.labels, a.sessions, ss, A,
                N, C, loss, a.B, a.D, prm);
  if ((err = cudaGetLastError()) != cudaSuccess) return static_cast<int>(err);
  if (grad != nullptr) {
    launch_kernel(grad_kernel<scalar_t>, static_cast<unsigned>(blocks), kThreads, 0, stream, e, a.labels, a.sessions, ss,
                  A, N, C, a.sh, grad, a.B, a.D, prm);
  }
  return static_cast<int>(cudaGetLastError());
}

bool args_ok(const MetricLaunchArgs* a) {
  if (a == nullptr || a->B < 0 || a->D < 0) return false;
  if (a->kind != kCircle && a->kind != kMultiSimilarity) return false;
  if (a->B == 0) return true;
  if (a->labels == nullptr || a->row_loss == nullptr || a->stats == nullptr) return false;
  if (a->D > 0 && a->emb == nullptr) return false;
  if (a->normalize && a->sumsq == nullptr) return false;
  if (a->grad != nullptr && a->D > 0 && a->sh == nullptr) return false;
  return true;
}

}  // namespace
}  // namespace metric
}  // namespace fusedloss

extern "C" int fusedloss_metric_fwd_cuda(const MetricLaunchArgs* args, cudaStream_t stream) {
  using namespace fusedloss::metric;
  if (!args_ok(args)) return kMetricBadArgs;
  const MetricLaunchArgs& a = *args;
  if (a.B == 0) return 0;
  switch (a.input_dtype) {
    case kMetricF32:
      return launch<float>(a, stream);
    case kMetricF64:
      return launch<double>(a, stream);
    case kMetricF16:
      return launch<__half>(a, stream);
    case kMetricBF16:
      return launch<__nv_bfloat16>(a, stream);
    default:
      return kMetricBadInputDType;
  }
}
