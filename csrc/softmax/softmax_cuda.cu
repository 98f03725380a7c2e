// CUDA kernel of fusedloss::softmax_fwd. Torch-free: raw pointers, int64 sizes, an explicit stream
// (softmax_cuda.h); softmax_cuda_binding.cpp turns tensors into SoftmaxLaunchArgs. The cpu kernel
// (softmax_cpu.cpp) computes the same thing with the same header math (softmax_math.h).
//
// One group of threads per row (row r = n D + j, class c at x[n C D + c D + j]):
//   - D = 1, C <= kWarpRowCols: a warp per row (8 rows per 256-thread block);
//   - D = 1 (or D < kThreadRowMinD), longer rows: the block per row (256 threads, 512 above
//     kWideCols), block-strided loops;
//   - D >= kThreadRowMinD and C <= kThreadRowMaxCols: a thread per row. Neighbouring threads take
//     neighbouring positions j, so every class is a coalesced run (segmentation-style [N, C, H, W]).
// Each thread walks its classes keeping a RowSums (row_sums_add: the online log-sum-exp and, where
// needed, W and S of the split form); the group's states merge with row_sums_merge through warp
// shuffles and, for block groups, shared memory. Then the loss (focal with smoothing: a second
// strided pass and a group sum of sum q a f(p) and G), written by the group's first thread with
// the row's denominator, and a last strided pass writes the gradient (p = e^{x - m'} / s).
// Class indices are clamped into [0, C) (the CPU op raises on them; here that would need a sync),
// so that no value indexes out of bounds. Indices in int64 throughout.
//
// Instantiated for input {float, double, __half, __nv_bfloat16} x {class index, probabilities} x
// {thread, warp, block} groups (24 kernels); mode, smoothing, z-loss and gamma are uniform runtime
// values.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <stdint.h>

#include "../common/cuda_convert.cuh"
#include "../common/cuda_launch.cuh"
#include "softmax_cuda.h"
#include "softmax_math.h"

namespace fusedloss {
namespace softmax {
namespace {

constexpr int kWarp = 32;
constexpr int kMaxThreads = 512;
constexpr int kMaxWarps = kMaxThreads / kWarp;
constexpr int kRowThreads = 256;  // warp and thread groups: 256-thread blocks
constexpr int64_t kWarpRowCols = 512;
constexpr int64_t kWideCols = 4096;
constexpr int64_t kThreadRowMinD = 32;
constexpr int64_t kThreadRowMaxCols = 4096;
constexpr int64_t kMaxGridX = int64_t(1) << 30;  // more blocks than this go to gridDim.y
constexpr unsigned kMaxGridY = 65535;

enum GroupKind : int { kThreadRows = 0, kWarpRows = 1, kBlockRows = 2 };

struct Shape {
  int64_t n_rows, C, D;
  int64_t ignore_index;
};

// The thread's rank, the size of its row's group, and its row (>= n_rows: none).
struct Group {
  int tid, size;
  int64_t row;
};

template <int kGroup>
__device__ __forceinline__ Group group_of(const Shape& sh) {
  const int64_t block = static_cast<int64_t>(blockIdx.y) * gridDim.x + blockIdx.x;
  Group g;
  if constexpr (kGroup == kThreadRows) {
    g.tid = 0;
    g.size = 1;
    g.row = block * blockDim.x + threadIdx.x;
  } else if constexpr (kGroup == kWarpRows) {
    g.tid = threadIdx.x % kWarp;
    g.size = kWarp;
    g.row = block * (blockDim.x / kWarp) + threadIdx.x / kWarp;
  } else {
    g.tid = threadIdx.x;
    g.size = blockDim.x;
    g.row = block;
  }
  return g;
}

template <typename acc_t>
__device__ __forceinline__ RowSums<acc_t> shfl_xor(const RowSums<acc_t>& a, int offset) {
  RowSums<acc_t> b;
  b.lse.m = __shfl_xor_sync(0xffffffffu, a.lse.m, offset);
  b.lse.s = __shfl_xor_sync(0xffffffffu, a.lse.s, offset);
  b.wsum = __shfl_xor_sync(0xffffffffu, a.wsum, offset);
  b.shift = __shfl_xor_sync(0xffffffffu, a.shift, offset);
  return b;
}

template <typename acc_t>
__device__ __forceinline__ RowSums<acc_t> shfl_lane0(const RowSums<acc_t>& a) {
  RowSums<acc_t> b;
  b.lse.m = __shfl_sync(0xffffffffu, a.lse.m, 0);
  b.lse.s = __shfl_sync(0xffffffffu, a.lse.s, 0);
  b.wsum = __shfl_sync(0xffffffffu, a.wsum, 0);
  b.shift = __shfl_sync(0xffffffffu, a.shift, 0);
  return b;
}

template <typename acc_t>
__device__ __forceinline__ RowSums<acc_t> warp_merge(RowSums<acc_t> a) {
#pragma unroll
  for (int offset = kWarp / 2; offset > 0; offset >>= 1) a = row_sums_merge(a, shfl_xor(a, offset));
  // row_sums_merge is commutative bit for bit, so every lane holds the same state; lane 0's is
  // broadcast to be sure.
  return shfl_lane0(a);
}

template <typename acc_t>
__device__ __forceinline__ RowSums<acc_t> block_merge(RowSums<acc_t> a) {
  __shared__ acc_t part[4][kMaxWarps + 1];  // m, s, W, S per warp; [kMaxWarps]: the result
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  const int n_warps = blockDim.x / kWarp;
  if (lane == 0) {
    part[0][warp] = a.lse.m;
    part[1][warp] = a.lse.s;
    part[2][warp] = a.wsum;
    part[3][warp] = a.shift;
  }
  __syncthreads();
  if (warp == 0) {
    RowSums<acc_t> t = row_sums_empty<acc_t>();
    if (lane < n_warps) t = RowSums<acc_t>{Lse<acc_t>{part[0][lane], part[1][lane]}, part[2][lane], part[3][lane]};
    t = warp_merge(t);
    if (lane == 0) {
      part[0][kMaxWarps] = t.lse.m;
      part[1][kMaxWarps] = t.lse.s;
      part[2][kMaxWarps] = t.wsum;
      part[3][kMaxWarps] = t.shift;
    }
  }
  __syncthreads();
  return RowSums<acc_t>{Lse<acc_t>{part[0][kMaxWarps], part[1][kMaxWarps]}, part[2][kMaxWarps], part[3][kMaxWarps]};
}

// Every thread of the group gets the row's state. Block groups go through shared memory: the whole
// block must call it.
template <typename acc_t, int kGroup>
__device__ __forceinline__ RowSums<acc_t> group_merge(RowSums<acc_t> a) {
  if constexpr (kGroup == kThreadRows) {
    return a;
  } else {
    a = warp_merge(a);
    if constexpr (kGroup == kWarpRows) {
      return a;
    } else {
      return block_merge(a);
    }
  }
}

template <typename acc_t>
__device__ __forceinline__ void warp_sum(acc_t& a, acc_t& b) {
#pragma unroll
  for (int offset = kWarp / 2; offset > 0; offset >>= 1) {
    a += __shfl_xor_sync(0xffffffffu, a, offset);
    b += __shfl_xor_sync(0xffffffffu, b, offset);
  }
  a = __shfl_sync(0xffffffffu, a, 0);
  b = __shfl_sync(0xffffffffu, b, 0);
}

// The block's sums of the warps' (a, b): the whole block must call it.
template <typename acc_t>
__device__ __forceinline__ void block_sum(acc_t& a, acc_t& b) {
  __shared__ acc_t part[2][kMaxWarps + 1];
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  const int n_warps = blockDim.x / kWarp;
  if (lane == 0) {
    part[0][warp] = a;
    part[1][warp] = b;
  }
  __syncthreads();
  if (warp == 0) {
    acc_t ta = lane < n_warps ? part[0][lane] : acc_t(0);
    acc_t tb = lane < n_warps ? part[1][lane] : acc_t(0);
#pragma unroll
    for (int offset = kWarp / 2; offset > 0; offset >>= 1) {
      ta += __shfl_xor_sync(0xffffffffu, ta, offset);
      tb += __shfl_xor_sync(0xffffffffu, tb, offset);
    }
    if (lane == 0) {
      part[0][kMaxWarps] = ta;
      part[1][kMaxWarps] = tb;
    }
  }
  __syncthreads();
  a = part[0][kMaxWarps];
  b = part[1][kMaxWarps];
}

// The group's sums of (a, b), in a fixed order; every thread gets them.
template <typename acc_t, int kGroup>
__device__ __forceinline__ void group_sum(acc_t& a, acc_t& b) {
  if constexpr (kGroup != kThreadRows) {
    warp_sum(a, b);
    if constexpr (kGroup == kBlockRows) block_sum(a, b);
  }
}

template <typename acc_t>
__device__ __forceinline__ acc_t weight_of(const acc_t* __restrict__ w, int64_t c) {
  return w != nullptr ? w[c] : acc_t(1);
}

// minBlocksPerMultiprocessor = 1 stated: without it ptxas 13 held the fp64 kernels to 64 registers
// and spilled (sm_90), with it they take 60 to 90 and none spills.
template <typename scalar_t, bool kProb, int kGroup>
__global__ void __launch_bounds__(kMaxThreads, 1)
    softmax_kernel(const scalar_t* x, const int64_t* __restrict__ target,
                   const scalar_t* __restrict__ probs, const typename AccOf<scalar_t>::type* __restrict__ w,
                   typename AccOf<scalar_t>::type* __restrict__ row_loss,
                   typename AccOf<scalar_t>::type* __restrict__ row_den, scalar_t* grad,
                   const Shape sh, Params<typename AccOf<scalar_t>::type> prm) {
  using acc_t = typename AccOf<scalar_t>::type;
  const Group grp = group_of<kGroup>(sh);
  if (grp.row >= sh.n_rows) return;  // uniform per group; block groups return as a whole
  const int64_t C = sh.C, D = sh.D;
  const int64_t n = grp.row / D;
  const int64_t base = n * C * D + (grp.row - n * D);  // x[n, 0, j]; class c at base + c D

  int64_t y = 0;
  bool valid = C > 0;
  if (!kProb) {
    const int64_t raw = target[grp.row];
    valid = valid && raw != sh.ignore_index;
    y = raw < 0 ? 0 : (raw >= C ? C - 1 : raw);
  }
  if (!valid) {  // ignored (or C = 0): loss 0, denominator 0, gradient 0; uniform per group
    if (grp.tid == 0) {
      row_loss[grp.row] = acc_t(0);
      row_den[grp.row] = acc_t(0);
    }
    if (grad != nullptr) {
      for (int64_t c = grp.tid; c < C; c += grp.size) grad[base + c * D] = from_acc<scalar_t>(acc_t(0));
    }
    return;
  }
  const bool need_shift = prm.mode == kCrossEntropy && (kProb || prm.smoothing > acc_t(0));
  // Read before pass 1: with grad == x (inplace_grad) the thread owning class y overwrites it in the
  // gradient pass, and group_merge (and the __syncwarp below) orders this read before that write.
  const acc_t x_y = kProb ? acc_t(0) : to_acc<acc_t>(x[base + y * D]);

  // Pass 1: the online log-sum-exp and, where needed, W and S of the split form.
  RowSums<acc_t> st = row_sums_empty<acc_t>();
  for (int64_t c = grp.tid; c < C; c += grp.size) {
    const int64_t i = base + c * D;
    acc_t v = acc_t(0);
    if (need_shift) {
      v = weight_of(w, c);
      if (kProb) v = ce_prob_weight(to_acc<acc_t>(probs[i]), v, prm);
    }
    row_sums_add(st, to_acc<acc_t>(x[i]), v);
  }
  st = group_merge<acc_t, kGroup>(st);
  if constexpr (kGroup == kWarpRows) __syncwarp();  // shuffles alone do not order memory
  const RowNorm<acc_t> nrm = row_norm(st.lse);
  prm.weight_sum = st.wsum;  // W: the row's sum of w (class index with smoothing)

  acc_t loss, den = acc_t(1), w_y = acc_t(1), big_g = acc_t(0);
  const bool focal_smooth = prm.mode == kFocal && prm.smoothing > acc_t(0);
  if (prm.mode == kCrossEntropy) {
    if (kProb) {
      loss = ce_prob_loss_split(nrm, st.wsum, st.shift, prm);
    } else {
      w_y = weight_of(w, y);
      loss = ce_index_loss_split(nrm, x_y, w_y, st.shift, prm);
      den = w_y;
    }
  } else if (focal_smooth) {
    // Pass 2: sum q a f(p) and G = sum q a g(p).
    acc_t lf = acc_t(0);
    for (int64_t c = grp.tid; c < C; c += grp.size) {
      const FocalTerm<acc_t> term = focal_term_logp(log_prob_of(to_acc<acc_t>(x[base + c * D]), nrm), prm.gamma);
      const acc_t coef = focal_coef(c == y, weight_of(w, c), prm);
      lf += coef * term.f;
      big_g += coef * term.g;
    }
    group_sum<acc_t, kGroup>(lf, big_g);
    loss = lf;
  } else {
    const FocalTerm<acc_t> term = focal_term_logp(log_prob_of(x_y, nrm), prm.gamma);
    const acc_t a_y = weight_of(w, y);
    loss = a_y * term.f;
    big_g = a_y * term.g;
  }
  if (grp.tid == 0) {
    row_loss[grp.row] = loss;
    row_den[grp.row] = den;
  }
  if (grad == nullptr) return;

  for (int64_t c = grp.tid; c < C; c += grp.size) {
    const int64_t i = base + c * D;
    const acc_t xv = to_acc<acc_t>(x[i]);
    const acc_t p = prob_of(xv, nrm);
    acc_t g;
    if (prm.mode == kCrossEntropy) {
      if (kProb) {
        g = ce_prob_grad(p, to_acc<acc_t>(probs[i]), weight_of(w, c), st.wsum, nrm.lse, prm);
      } else {
        g = ce_index_grad(p, c == y, weight_of(w, c), w_y, nrm.lse, prm);
      }
    } else if (focal_smooth) {
      const FocalTerm<acc_t> term = focal_term_logp(log_prob_of(xv, nrm), prm.gamma);
      g = focal_grad(term, focal_coef(c == y, weight_of(w, c), prm), big_g);
    } else {
      g = focal_onehot_grad(p, c == y, big_g);
    }
    grad[i] = from_acc<scalar_t>(g);
  }
}

struct Config {
  int group;
  int threads;
  dim3 grid;
};

bool configure(const SoftmaxLaunchArgs& a, Config* cfg) {
  const int64_t rows = a.n * a.D;
  int64_t per_block;
  if (a.D >= kThreadRowMinD && a.C <= kThreadRowMaxCols) {
    cfg->group = kThreadRows;
    cfg->threads = kRowThreads;
    per_block = kRowThreads;
  } else if (a.C <= kWarpRowCols) {
    cfg->group = kWarpRows;
    cfg->threads = kRowThreads;
    per_block = kRowThreads / kWarp;
  } else {
    cfg->group = kBlockRows;
    cfg->threads = a.C > kWideCols ? kMaxThreads : 256;
    per_block = 1;
  }
  const int64_t blocks = (rows + per_block - 1) / per_block;
  const int64_t gx = blocks < kMaxGridX ? blocks : kMaxGridX;
  const int64_t gy = (blocks + gx - 1) / gx;
  if (gy > kMaxGridY) return false;
  cfg->grid = dim3(static_cast<unsigned>(gx), static_cast<unsigned>(gy), 1);
  return true;
}

template <typename scalar_t, bool kProb>
int launch(const SoftmaxLaunchArgs& a, cudaStream_t stream) {
  using acc_t = typename AccOf<scalar_t>::type;
  Config cfg;
  if (!configure(a, &cfg)) return kSoftmaxBadArgs;
  const Shape sh{a.n * a.D, a.C, a.D, a.ignore_index};
  Params<acc_t> prm;
  prm.mode = a.mode;
  prm.num_classes = a.C;
  prm.smoothing = static_cast<acc_t>(a.smoothing);
  prm.z_loss = a.mode == kCrossEntropy ? static_cast<acc_t>(a.z_loss) : acc_t(0);
  prm.gamma = static_cast<acc_t>(a.gamma);
  prm.weight_sum = acc_t(0);  // set per row
  const scalar_t* x = static_cast<const scalar_t*>(a.input);
  const scalar_t* probs = static_cast<const scalar_t*>(a.probs);
  const acc_t* w = static_cast<const acc_t*>(a.weight);
  acc_t* loss = static_cast<acc_t*>(a.row_loss);
  acc_t* den = static_cast<acc_t*>(a.row_den);
  scalar_t* grad = static_cast<scalar_t*>(a.grad);
  switch (cfg.group) {
    case kThreadRows:
      launch_kernel(softmax_kernel<scalar_t, kProb, kThreadRows>, cfg.grid, cfg.threads, 0, stream, x, a.target,
                    probs, w, loss, den, grad, sh, prm);
      break;
    case kWarpRows:
      launch_kernel(softmax_kernel<scalar_t, kProb, kWarpRows>, cfg.grid, cfg.threads, 0, stream, x, a.target,
                    probs, w, loss, den, grad, sh, prm);
      break;
    default:
      launch_kernel(softmax_kernel<scalar_t, kProb, kBlockRows>, cfg.grid, cfg.threads, 0, stream, x, a.target,
                    probs, w, loss, den, grad, sh, prm);
  }
  return static_cast<int>(cudaGetLastError());
}

template <typename scalar_t>
int dispatch_target(const SoftmaxLaunchArgs& a, cudaStream_t stream) {
  return a.probs != nullptr ? launch<scalar_t, true>(a, stream) : launch<scalar_t, false>(a, stream);
}

bool args_ok(const SoftmaxLaunchArgs* a) {
  if (a == nullptr || a->n < 0 || a->C < 0 || a->D < 0) return false;
  if (a->mode != kCrossEntropy && a->mode != kFocal) return false;
  if (a->n * a->D == 0) return true;
  if (a->row_loss == nullptr || a->row_den == nullptr) return false;
  if ((a->target == nullptr) == (a->probs == nullptr)) return false;  // exactly one kind of target
  if (a->probs != nullptr && a->mode != kCrossEntropy) return false;
  return a->C == 0 || a->input != nullptr;
}

}  // namespace
}  // namespace softmax
}  // namespace fusedloss

extern "C" int fusedloss_softmax_fwd_cuda(const SoftmaxLaunchArgs* args, cudaStream_t stream) {
  using namespace fusedloss::softmax;
  if (!args_ok(args)) return kSoftmaxBadArgs;
  const SoftmaxLaunchArgs& a = *args;
  if (a.n * a.D == 0) return 0;
  switch (a.input_dtype) {
    case kSoftmaxF32:
      return dispatch_target<float>(a, stream);
    case kSoftmaxF64:
      return dispatch_target<double>(a, stream);
    case kSoftmaxF16:
      return dispatch_target<__half>(a, stream);
    case kSoftmaxBF16:
      return dispatch_target<__nv_bfloat16>(a, stream);
    default:
      return kSoftmaxBadInputDType;
  }
}
