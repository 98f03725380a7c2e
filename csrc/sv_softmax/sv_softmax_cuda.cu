// CUDA kernels of fusedloss::sv_softmax_fwd. Torch-free: raw pointers, int64 sizes, an explicit stream
// (sv_softmax_cuda.h); sv_softmax_cuda_binding.cpp turns tensors into SvSoftmaxLaunchArgs. The cpu
// kernel (sv_softmax_cpu.cpp) computes the same thing with the same header math (sv_softmax_math.h).
//
// A warp per row (8 rows per 256-thread block), lanes striding over D, in up to three kernels:
//   sums of squares (normalize only): sum u_i^2 and sum v_i^2 per row into [B] scratch, so that every
//     reader of a row sees the same inv;
//   pass 1, row i: the K + 1 cosines (one dot per slot, reduced with warp shuffles), then lane 0 runs
//     row_loss_coef over them and writes the row's loss and denominator; with a gradient the lanes
//     write G and G cos to the [B, K + 1] scratch and d/du_i;
//   pass 2 (gradient only), item row j: the K + 1 rows (i, k) that read v_j, d/dv_j.
// Cosines and coefficients live in shared memory when K + 1 <= kSvSoftmaxSmemSlots, else in the
// scratch rows themselves (written as cosines, turned into G cos in place). Slot indices and their
// inv are computed 32 slots at a time, a slot per lane (one 64-bit modulo per lane instead of one per
// slot), and broadcast with shuffles. The gradient loops keep kChunk elements per lane in registers
// and add each slot's row to them; slots with G = 0 are skipped (warp-uniform). The sums over slots
// (S and sum G cos) and grad_elem are taken in double whatever the input dtype, as on the cpu (float
// sums over hundreds of slots exceeded twice torch's error). No atomics: every output element is
// written by one lane, in a fixed order, so the results are deterministic.
// Instantiated for {float, double, __half, __nv_bfloat16} x {shared, global} cosines.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <stdint.h>

#include "../common/cuda_convert.cuh"
#include "../common/cuda_launch.cuh"
#include "sv_softmax_cuda.h"
#include "sv_softmax_math.h"

namespace fusedloss {
namespace sv_softmax {
namespace {

constexpr int kWarp = 32;
constexpr unsigned kFull = 0xffffffffu;
constexpr int kThreads = 256;
constexpr int kWarpsPerBlock = kThreads / kWarp;
constexpr int kChunk = 4;                        // gradient elements per lane held in registers
constexpr int64_t kMaxGridX = int64_t(1) << 30;  // more blocks than this go to gridDim.y
constexpr unsigned kMaxGridY = 65535;

struct Shape {
  int64_t B, D, K;
  int64_t reduction;
  bool weight_per_row;
};

__device__ __forceinline__ int64_t warp_row() {
  const int64_t block = static_cast<int64_t>(blockIdx.y) * gridDim.x + blockIdx.x;
  return block * kWarpsPerBlock + threadIdx.x / kWarp;
}

// Butterfly sum: every lane ends with the same bits (each step adds the same two values).
template <typename acc_t>
__device__ __forceinline__ acc_t warp_sum(acc_t v) {
#pragma unroll
  for (int offset = kWarp / 2; offset > 0; offset >>= 1) v += __shfl_xor_sync(kFull, v, offset);
  return v;
}

template <typename acc_t>
struct Norm {
  acc_t inv;
  bool proj;
};

template <typename acc_t>
__device__ __forceinline__ Norm<acc_t> norm_of(const acc_t* __restrict__ ss, int64_t i, bool normalize) {
  const acc_t s = normalize ? ss[i] : acc_t(0);
  return {inv_norm(s, normalize), projects(s, normalize)};
}

template <typename scalar_t>
__global__ void __launch_bounds__(kThreads)
    sumsq_kernel(const scalar_t* __restrict__ u, const scalar_t* __restrict__ v,
                 typename AccOf<scalar_t>::type* __restrict__ ss_u,
                 typename AccOf<scalar_t>::type* __restrict__ ss_v, const Shape sh) {
  using acc_t = typename AccOf<scalar_t>::type;
  const int64_t i = warp_row();
  if (i >= sh.B) return;
  const int lane = threadIdx.x % kWarp;
  const scalar_t* ui = u + i * sh.D;
  const scalar_t* vi = v + i * sh.D;
  acc_t su = acc_t(0), sv = acc_t(0);
  for (int64_t d = lane; d < sh.D; d += kWarp) {
    const acc_t a = to_acc<acc_t>(ui[d]);
    const acc_t b = to_acc<acc_t>(vi[d]);
    su += a * a;
    sv += b * b;
  }
  su = warp_sum(su);
  sv = warp_sum(sv);
  if (lane == 0) {
    ss_u[i] = su;
    ss_v[i] = sv;
  }
}

// s[c] += a row[d0 + c kWarp + lane] over the chunk.
template <typename scalar_t>
__device__ __forceinline__ void add_row(double (&s)[kChunk], double a, const scalar_t* __restrict__ row,
                                        int64_t d0, int64_t D, int lane) {
#pragma unroll
  for (int c = 0; c < kChunk; ++c) {
    const int64_t d = d0 + c * kWarp + lane;
    if (d < D) s[c] += a * to_acc<double>(row[d]);
  }
}

template <typename scalar_t, typename acc_t>
__device__ __forceinline__ void store_grad(scalar_t* __restrict__ g, const double (&s)[kChunk],
                                           const scalar_t* __restrict__ a, int64_t d0, int64_t D, int lane,
                                           double gc, Norm<acc_t> n, bool zero) {
#pragma unroll
  for (int c = 0; c < kChunk; ++c) {
    const int64_t d = d0 + c * kWarp + lane;
    if (d < D) {
      const double v = zero ? 0.0 : grad_elem(s[c], to_acc<double>(a[d]), gc, static_cast<double>(n.inv), n.proj);
      g[d] = from_acc<scalar_t>(static_cast<acc_t>(v));
    }
  }
}

// Pass 1. kSmem: cosines and coefficients in shared memory (K + 1 <= kSvSoftmaxSmemSlots), else in
// coef_cos and coef. minBlocksPerMultiprocessor = 1 stated: without it ptxas 13 held the fp64 kernel
// to 64 registers on sm_90 and spilled.
template <typename scalar_t, bool kSmem>
__global__ void __launch_bounds__(kThreads, 1)
    user_rows_kernel(const scalar_t* __restrict__ u, const scalar_t* __restrict__ v,
                     const bool* __restrict__ kept, const typename AccOf<scalar_t>::type* __restrict__ w,
                     const int64_t* __restrict__ shifts, const typename AccOf<scalar_t>::type* __restrict__ ss_u,
                     const typename AccOf<scalar_t>::type* __restrict__ ss_v,
                     typename AccOf<scalar_t>::type* __restrict__ row_loss,
                     typename AccOf<scalar_t>::type* __restrict__ row_den,
                     typename AccOf<scalar_t>::type* coef, typename AccOf<scalar_t>::type* coef_cos,
                     scalar_t* __restrict__ grad_u, const Shape sh, const Params<typename AccOf<scalar_t>::type> prm) {
  using acc_t = typename AccOf<scalar_t>::type;
  constexpr int kSlots = kSmem ? kSvSoftmaxSmemSlots : 1;
  __shared__ acc_t smem_cos[kWarpsPerBlock][kSlots];
  __shared__ acc_t smem_coef[kWarpsPerBlock][kSlots];
  const int64_t i = warp_row();
  if (i >= sh.B) return;  // uniform per warp
  const int lane = threadIdx.x % kWarp;
  const int64_t B = sh.B, D = sh.D, K = sh.K, S = K + 1;
  acc_t* cs;
  acc_t* cf;
  if constexpr (kSmem) {
    cs = smem_cos[threadIdx.x / kWarp];
    cf = smem_coef[threadIdx.x / kWarp];
  } else {
    cs = coef_cos + i * S;
    cf = coef + i * S;
  }
  const scalar_t* ui = u + i * D;
  const Norm<acc_t> nu = norm_of(ss_u, i, prm.normalize);

  for (int64_t k0 = 0; k0 < S; k0 += kWarp) {
    const int64_t k = k0 + lane;
    int64_t j = 0;
    acc_t inv_v = acc_t(0);
    if (k < S) {
      j = k == 0 ? i : negative_row(i, shifts[k - 1], B);
      inv_v = norm_of(ss_v, j, prm.normalize).inv;
    }
    const int n = S - k0 < kWarp ? static_cast<int>(S - k0) : kWarp;
    acc_t mine = acc_t(0);
    for (int kk = 0; kk < n; ++kk) {
      const scalar_t* vj = v + __shfl_sync(kFull, j, kk) * D;
      acc_t dot = acc_t(0);
#pragma unroll 4
      for (int64_t d = lane; d < D; d += kWarp) dot += to_acc<acc_t>(ui[d]) * to_acc<acc_t>(vj[d]);
      dot = warp_sum(dot);
      const acc_t c = nu.inv * __shfl_sync(kFull, inv_v, kk) * dot;
      if (lane == kk) mine = c;
    }
    if (k < S) cs[k] = mine;
  }
  __syncwarp();
  const bool kp = kept[i];
  const acc_t wi = w == nullptr ? acc_t(1) : w[sh.weight_per_row ? i : 0];
  const acc_t scale = kp ? wi : acc_t(0);
  if (lane == 0) {
    row_loss[i] = row_loss_coef(cs, cf, K, scale, prm);
    row_den[i] = sv_softmax::row_den(kp, wi, sh.reduction);
  }
  __syncwarp();
  if (grad_u == nullptr) return;

  double gc = 0;
  for (int64_t k = lane; k < S; k += kWarp) {
    const acc_t g = cf[k];
    const acc_t c = g * cs[k];
    if constexpr (kSmem) coef[i * S + k] = g;
    coef_cos[i * S + k] = c;
    gc += c;
  }
  gc = warp_sum(gc);

  const bool zero = scale == acc_t(0);
  scalar_t* gu = grad_u + i * D;
  for (int64_t d0 = 0; d0 < D; d0 += kWarp * kChunk) {
    double s[kChunk];
#pragma unroll
    for (int c = 0; c < kChunk; ++c) s[c] = 0.0;
    for (int64_t k0 = 0; !zero && k0 < S; k0 += kWarp) {
      const int64_t k = k0 + lane;
      int64_t j = 0;
      double a = 0.0;
      if (k < S) {
        j = k == 0 ? i : negative_row(i, shifts[k - 1], B);
        a = static_cast<double>(cf[k]) * static_cast<double>(norm_of(ss_v, j, prm.normalize).inv);
      }
      const int n = S - k0 < kWarp ? static_cast<int>(S - k0) : kWarp;
      for (int kk = 0; kk < n; ++kk) {
        const double ak = __shfl_sync(kFull, a, kk);
        const int64_t jk = __shfl_sync(kFull, j, kk);
        if (ak != 0.0) add_row(s, ak, v + jk * D, d0, D, lane);
      }
    }
    store_grad(gu, s, ui, d0, D, lane, gc, nu, zero);
  }
}

// Pass 2: item row j gathers the K + 1 rows (i, k) that read it.
template <typename scalar_t>
__global__ void __launch_bounds__(kThreads)
    item_rows_kernel(const scalar_t* __restrict__ u, const scalar_t* __restrict__ v,
                     const int64_t* __restrict__ shifts, const typename AccOf<scalar_t>::type* __restrict__ ss_u,
                     const typename AccOf<scalar_t>::type* __restrict__ ss_v,
                     const typename AccOf<scalar_t>::type* __restrict__ coef,
                     const typename AccOf<scalar_t>::type* __restrict__ coef_cos, scalar_t* __restrict__ grad_v,
                     const Shape sh, const bool normalize) {
  using acc_t = typename AccOf<scalar_t>::type;
  const int64_t j = warp_row();
  if (j >= sh.B) return;
  const int lane = threadIdx.x % kWarp;
  const int64_t B = sh.B, D = sh.D, S = sh.K + 1;

  double gc = 0;
  for (int64_t k = lane; k < S; k += kWarp) {
    const int64_t i = k == 0 ? j : reader_row(j, shifts[k - 1], B);
    if (coef[i * S + k] != acc_t(0)) gc += coef_cos[i * S + k];
  }
  gc = warp_sum(gc);
  const Norm<acc_t> nv = norm_of(ss_v, j, normalize);

  const scalar_t* vj = v + j * D;
  scalar_t* gv = grad_v + j * D;
  for (int64_t d0 = 0; d0 < D; d0 += kWarp * kChunk) {
    double s[kChunk];
#pragma unroll
    for (int c = 0; c < kChunk; ++c) s[c] = 0.0;
    for (int64_t k0 = 0; k0 < S; k0 += kWarp) {
      const int64_t k = k0 + lane;
      int64_t i = 0;
      double a = 0.0;
      if (k < S) {
        i = k == 0 ? j : reader_row(j, shifts[k - 1], B);
        const acc_t g = coef[i * S + k];
        if (g != acc_t(0)) a = static_cast<double>(g) * static_cast<double>(norm_of(ss_u, i, normalize).inv);
      }
      const int n = S - k0 < kWarp ? static_cast<int>(S - k0) : kWarp;
      for (int kk = 0; kk < n; ++kk) {
        const double ak = __shfl_sync(kFull, a, kk);
        const int64_t ik = __shfl_sync(kFull, i, kk);
        if (ak != 0.0) add_row(s, ak, u + ik * D, d0, D, lane);
      }
    }
    store_grad(gv, s, vj, d0, D, lane, gc, nv, false);
  }
}

bool grid_for(int64_t rows, dim3* grid) {
  const int64_t blocks = (rows + kWarpsPerBlock - 1) / kWarpsPerBlock;
  const int64_t gx = blocks < kMaxGridX ? blocks : kMaxGridX;
  const int64_t gy = (blocks + gx - 1) / gx;
  if (gy > kMaxGridY) return false;
  *grid = dim3(static_cast<unsigned>(gx), static_cast<unsigned>(gy), 1);
  return true;
}

template <typename scalar_t>
int launch(const SvSoftmaxLaunchArgs& a, cudaStream_t stream) {
  using acc_t = typename AccOf<scalar_t>::type;
  dim3 grid;
  if (!grid_for(a.B, &grid)) return kSvSoftmaxBadArgs;
  const Shape sh{a.B, a.D, a.K, a.reduction, a.weight_per_row != 0};
  Params<acc_t> prm;
  prm.margin = static_cast<acc_t>(a.margin);
  prm.gamma = static_cast<acc_t>(a.gamma);
  prm.t = static_cast<acc_t>(a.t);
  prm.normalize = a.normalize != 0;
  const scalar_t* u = static_cast<const scalar_t*>(a.user);
  const scalar_t* v = static_cast<const scalar_t*>(a.item);
  const acc_t* w = static_cast<const acc_t*>(a.weight);
  acc_t* ss_u = static_cast<acc_t*>(a.sumsq_user);
  acc_t* ss_v = static_cast<acc_t*>(a.sumsq_item);
  acc_t* loss = static_cast<acc_t*>(a.row_loss);
  acc_t* den = static_cast<acc_t*>(a.row_den);
  acc_t* coef = static_cast<acc_t*>(a.coef);
  acc_t* coef_cos = static_cast<acc_t*>(a.coef_cos);
  scalar_t* grad_u = static_cast<scalar_t*>(a.grad_user);
  scalar_t* grad_v = static_cast<scalar_t*>(a.grad_item);
  cudaError_t err;
  if (prm.normalize) {
    launch_kernel(sumsq_kernel<scalar_t>, grid, kThreads, 0, stream, u, v, ss_u, ss_v, sh);
    if ((err = cudaGetLastError()) != cudaSuccess) return static_cast<int>(err);
  }
  if (a.K + 1 <= kSvSoftmaxSmemSlots) {
    launch_kernel(user_rows_kernel<scalar_t, true>, grid, kThreads, 0, stream, u, v, a.kept, w, a.shifts, ss_u, ss_v,
                  loss, den, coef, coef_cos, grad_u, sh, prm);
  } else {
    launch_kernel(user_rows_kernel<scalar_t, false>, grid, kThreads, 0, stream, u, v, a.kept, w, a.shifts, ss_u, ss_v,
                  loss, den, coef, coef_cos, grad_u, sh, prm);
  }
  if ((err = cudaGetLastError()) != cudaSuccess) return static_cast<int>(err);
  if (grad_v != nullptr) {
    launch_kernel(item_rows_kernel<scalar_t>, grid, kThreads, 0, stream, u, v, a.shifts, ss_u, ss_v, coef, coef_cos,
                  grad_v, sh, prm.normalize);
  }
  return static_cast<int>(cudaGetLastError());
}

bool args_ok(const SvSoftmaxLaunchArgs* a) {
  if (a == nullptr || a->B < 0 || a->D < 0 || a->K < 1) return false;
  if (a->reduction < kSum || a->reduction > kSumByNonzeroWeights) return false;
  if (a->B == 0) return true;
  if (a->kept == nullptr || a->shifts == nullptr || a->row_loss == nullptr || a->row_den == nullptr) return false;
  if (a->D > 0 && (a->user == nullptr || a->item == nullptr)) return false;
  if (a->normalize && (a->sumsq_user == nullptr || a->sumsq_item == nullptr)) return false;
  const bool grad = a->grad_user != nullptr;
  if (grad != (a->grad_item != nullptr)) return false;
  if ((grad || a->K + 1 > kSvSoftmaxSmemSlots) && (a->coef == nullptr || a->coef_cos == nullptr)) return false;
  return true;
}

}  // namespace
}  // namespace sv_softmax
}  // namespace fusedloss

extern "C" int fusedloss_sv_softmax_fwd_cuda(const SvSoftmaxLaunchArgs* args, cudaStream_t stream) {
  using namespace fusedloss::sv_softmax;
  if (!args_ok(args)) return kSvSoftmaxBadArgs;
  const SvSoftmaxLaunchArgs& a = *args;
  if (a.B == 0) return 0;
  switch (a.input_dtype) {
    case kSvSoftmaxF32:
      return launch<float>(a, stream);
    case kSvSoftmaxF64:
      return launch<double>(a, stream);
    case kSvSoftmaxF16:
      return launch<__half>(a, stream);
    case kSvSoftmaxBF16:
      return launch<__nv_bfloat16>(a, stream);
    default:
      return kSvSoftmaxBadInputDType;
  }
}
