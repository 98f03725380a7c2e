// CUDA kernels of fusedloss::multilabel_ce_fwd and fusedloss::sparse_multilabel_ce_fwd. Torch-free:
// raw pointers, int64 sizes, an explicit stream (multilabel_cuda.h); multilabel_cuda_binding.cpp
// turns tensors into MultilabelLaunchArgs. The cpu kernels (multilabel_cpu.cpp) compute the same
// thing with the same header math (multilabel_math.h).
//
// One group of threads per row: a warp (8 rows per 256-thread block) when C <= kWarpRowCols, else
// the whole block (256 threads, 512 above kWideCols). Each thread strides over the row's classes
// keeping its own two log-sum-exp states (dense_accumulate; the group's first thread starts from
// lse_init, the others from lse_empty); the states merge with lse_merge through warp shuffles and,
// for block groups, shared memory; a second strided loop writes the gradient (dense_grad). The row's
// loss goes to row_loss[row] in acc_t; the binding reduces the rows in double on the device.
//
// Sparse form: the positive sum strides over the row's K indices (sparse_accumulate_positive,
// skipping indices outside [0, C) and 0 under mask_zero); each class's count is found by binary
// search in the row's sorted indices (staged in shared memory by block groups when K <=
// kSmemIndices), for sparse_accumulate_negative and sparse_grad. Unsorted rows give wrong values but
// never out-of-bounds accesses.
//
// Instantiated for input {float, double, __half, __nv_bfloat16} x target {float, double, __half,
// __nv_bfloat16, uint8 (and bool), int8, int16, int32, int64} (36 dense kernels) and the four inputs
// (4 sparse kernels). Row index x C in int64 throughout.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <stdint.h>

#include "../common/cuda_convert.cuh"
#include "../common/cuda_launch.cuh"
#include "multilabel_cuda.h"
#include "multilabel_math.h"

namespace fusedloss {
namespace multilabel {
namespace {

constexpr int kWarp = 32;
constexpr int kMaxThreads = 512;
constexpr int kMaxWarps = kMaxThreads / kWarp;
constexpr int kWarpRowThreads = 256;  // warp groups: 8 rows per block
constexpr int64_t kWarpRowCols = 512;
constexpr int64_t kWideCols = 4096;
constexpr int64_t kSmemIndices = 4096;  // 32 KiB of int64, under the 48 KiB default limit
constexpr int64_t kMaxGridX = int64_t(1) << 30;  // more row groups than this go to gridDim.y
constexpr unsigned kMaxGridY = 65535;

struct RowGroups {
  int64_t n_rows, n_cols;
  bool warp_rows;  // a warp per row (blockDim.x / 32 rows per block), else the block per row
};

// The thread's rank, the size of its row's group, and its row (>= n_rows: none). One row group per
// block or warp, no grid-stride loop: its loop counters made ptxas spill the fp64 sparse kernel.
struct Group {
  int tid, size;
  int64_t row;
};

__device__ __forceinline__ Group group_of(const RowGroups& g) {
  const int64_t block = static_cast<int64_t>(blockIdx.y) * gridDim.x + blockIdx.x;
  Group r;
  if (g.warp_rows) {
    r.tid = threadIdx.x % kWarp;
    r.size = kWarp;
    r.row = block * (blockDim.x / kWarp) + threadIdx.x / kWarp;
  } else {
    r.tid = threadIdx.x;
    r.size = blockDim.x;
    r.row = block;
  }
  return r;
}

template <typename acc_t>
__device__ __forceinline__ Lse<acc_t> warp_merge(Lse<acc_t> a) {
#pragma unroll
  for (int offset = kWarp / 2; offset > 0; offset >>= 1) {
    const Lse<acc_t> b{__shfl_xor_sync(0xffffffffu, a.m, offset), __shfl_xor_sync(0xffffffffu, a.s, offset)};
    a = lse_merge(a, b);
  }
  // lse_merge is commutative, so every lane holds the same state; lane 0's is taken to be sure.
  return Lse<acc_t>{__shfl_sync(0xffffffffu, a.m, 0), __shfl_sync(0xffffffffu, a.s, 0)};
}

// Merges the group's states of both sums; every thread of the group gets the row's states. Block
// groups go through shared memory: the whole block must call it.
template <typename acc_t>
__device__ __forceinline__ void group_merge(Lse<acc_t>& a, Lse<acc_t>& b, bool warp_rows) {
  a = warp_merge(a);
  b = warp_merge(b);
  if (warp_rows) return;
  __shared__ acc_t part[4][kMaxWarps + 1];  // a.m, a.s, b.m, b.s per warp; [kMaxWarps]: the result
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  const int n_warps = blockDim.x / kWarp;
  if (lane == 0) {
    part[0][warp] = a.m;
    part[1][warp] = a.s;
    part[2][warp] = b.m;
    part[3][warp] = b.s;
  }
  __syncthreads();
  if (warp == 0) {
    Lse<acc_t> ta = lse_empty<acc_t>(), tb = lse_empty<acc_t>();
    if (lane < n_warps) {
      ta = Lse<acc_t>{part[0][lane], part[1][lane]};
      tb = Lse<acc_t>{part[2][lane], part[3][lane]};
    }
    ta = warp_merge(ta);
    tb = warp_merge(tb);
    if (lane == 0) {
      part[0][kMaxWarps] = ta.m;
      part[1][kMaxWarps] = ta.s;
      part[2][kMaxWarps] = tb.m;
      part[3][kMaxWarps] = tb.s;
    }
  }
  __syncthreads();
  a = Lse<acc_t>{part[0][kMaxWarps], part[1][kMaxWarps]};
  b = Lse<acc_t>{part[2][kMaxWarps], part[3][kMaxWarps]};
}

template <typename scalar_t, typename target_t>
__global__ void __launch_bounds__(kMaxThreads)
    multilabel_ce_kernel(const scalar_t* __restrict__ x, const target_t* __restrict__ t,
                         typename AccOf<scalar_t>::type* __restrict__ row_loss, scalar_t* __restrict__ grad,
                         const RowGroups g) {
  using acc_t = typename AccOf<scalar_t>::type;
  const Group grp = group_of(g);
  if (grp.row >= g.n_rows) return;  // uniform per group; block groups return as a whole
  const int64_t base = grp.row * g.n_cols;
  Lse<acc_t> neg = grp.tid == 0 ? lse_init<acc_t>() : lse_empty<acc_t>();
  Lse<acc_t> pos = neg;
  for (int64_t c = grp.tid; c < g.n_cols; c += grp.size) {
    dense_accumulate(neg, pos, to_acc<acc_t>(x[base + c]), to_acc<acc_t>(t[base + c]));
  }
  group_merge(neg, pos, g.warp_rows);
  if (grp.tid == 0) row_loss[grp.row] = lse_value(neg) + lse_value(pos);
  if (grad == nullptr) return;
  for (int64_t c = grp.tid; c < g.n_cols; c += grp.size) {
    const acc_t d = dense_grad(neg, pos, to_acc<acc_t>(x[base + c]), to_acc<acc_t>(t[base + c]));
    grad[base + c] = from_acc<scalar_t>(d);
  }
}

// First position in p[lo, hi) whose value is >= v (hi if none).
__device__ __forceinline__ int64_t lower_bound(const int64_t* p, int64_t lo, int64_t hi, int64_t v) {
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (p[mid] < v) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo;
}

// How many times class c is listed in the sorted p[0, k).
__device__ __forceinline__ int64_t count_of(const int64_t* p, int64_t k, int64_t c) {
  const int64_t lo = lower_bound(p, 0, k, c);
  if (lo == k || p[lo] != c) return 0;
  return lower_bound(p, lo, k, c + 1) - lo;
}

template <typename scalar_t>
__global__ void __launch_bounds__(kMaxThreads)
    sparse_multilabel_ce_kernel(const scalar_t* __restrict__ x, const int64_t* __restrict__ idx,
                                typename AccOf<scalar_t>::type* __restrict__ row_loss, scalar_t* __restrict__ grad,
                                const RowGroups g, int64_t k, bool mask_zero, bool stage) {
  using acc_t = typename AccOf<scalar_t>::type;
  FL_DYNAMIC_SHARED(int64_t, staged);  // [k] when `stage` (block groups only)
  const Group grp = group_of(g);
  if (grp.row >= g.n_rows) return;  // uniform per group; block groups return as a whole
  const int64_t base = grp.row * g.n_cols;
  const int64_t* p = idx + grp.row * k;
  if (stage) {
    for (int64_t j = grp.tid; j < k; j += grp.size) staged[j] = p[j];
    __syncthreads();
    p = staged;
  }
  Lse<acc_t> neg = grp.tid == 0 ? lse_init<acc_t>() : lse_empty<acc_t>();
  Lse<acc_t> pos = neg;
  for (int64_t j = grp.tid; j < k; j += grp.size) {
    const int64_t v = p[j];
    if (v >= 0 && v < g.n_cols && !(mask_zero && v == 0)) {
      sparse_accumulate_positive(pos, to_acc<acc_t>(x[base + v]));
    }
  }
  for (int64_t c = grp.tid; c < g.n_cols; c += grp.size) {
    const bool masked = mask_zero && c == 0;
    const int64_t count = masked ? 0 : count_of(p, k, c);
    sparse_accumulate_negative(neg, to_acc<acc_t>(x[base + c]), count, masked);
  }
  group_merge(neg, pos, g.warp_rows);
  if (grp.tid == 0) row_loss[grp.row] = lse_value(neg) + lse_value(pos);
  if (grad == nullptr) return;
  for (int64_t c = grp.tid; c < g.n_cols; c += grp.size) {
    const bool masked = mask_zero && c == 0;
    const int64_t count = masked ? 0 : count_of(p, k, c);
    grad[base + c] = from_acc<scalar_t>(sparse_grad(neg, pos, to_acc<acc_t>(x[base + c]), count, masked));
  }
}

struct Config {
  RowGroups groups;
  int threads;
  dim3 grid;
};

Config configure(const MultilabelLaunchArgs& a) {
  Config cfg;
  cfg.groups.n_rows = a.n_rows;
  cfg.groups.n_cols = a.n_cols;
  cfg.groups.warp_rows = a.n_cols <= kWarpRowCols;
  cfg.threads = cfg.groups.warp_rows ? kWarpRowThreads : (a.n_cols > kWideCols ? kMaxThreads : 256);
  const int64_t per_block = cfg.groups.warp_rows ? kWarpRowThreads / kWarp : 1;
  const int64_t blocks = (a.n_rows + per_block - 1) / per_block;
  const int64_t gx = blocks < kMaxGridX ? blocks : kMaxGridX;
  const int64_t gy = (blocks + gx - 1) / gx;
  cfg.grid = dim3(static_cast<unsigned>(gx), static_cast<unsigned>(gy < kMaxGridY ? gy : kMaxGridY + 1), 1);
  return cfg;
}

template <typename scalar_t, typename target_t>
int launch_dense(const MultilabelLaunchArgs& a, cudaStream_t stream) {
  using acc_t = typename AccOf<scalar_t>::type;
  const Config cfg = configure(a);
  if (cfg.grid.y > kMaxGridY) return kMultilabelBadArgs;
  launch_kernel(multilabel_ce_kernel<scalar_t, target_t>, cfg.grid, cfg.threads, 0, stream,
                static_cast<const scalar_t*>(a.input), static_cast<const target_t*>(a.target),
                static_cast<acc_t*>(a.row_loss), static_cast<scalar_t*>(a.grad), cfg.groups);
  return static_cast<int>(cudaGetLastError());
}

template <typename scalar_t>
int dispatch_target(const MultilabelLaunchArgs& a, cudaStream_t stream) {
  switch (a.target_dtype) {
    case kMultilabelF32:
      return launch_dense<scalar_t, float>(a, stream);
    case kMultilabelF64:
      return launch_dense<scalar_t, double>(a, stream);
    case kMultilabelF16:
      return launch_dense<scalar_t, __half>(a, stream);
    case kMultilabelBF16:
      return launch_dense<scalar_t, __nv_bfloat16>(a, stream);
    case kMultilabelU8:
      return launch_dense<scalar_t, uint8_t>(a, stream);
    case kMultilabelI8:
      return launch_dense<scalar_t, int8_t>(a, stream);
    case kMultilabelI16:
      return launch_dense<scalar_t, int16_t>(a, stream);
    case kMultilabelI32:
      return launch_dense<scalar_t, int32_t>(a, stream);
    case kMultilabelI64:
      return launch_dense<scalar_t, int64_t>(a, stream);
    default:
      return kMultilabelBadTargetDType;
  }
}

template <typename scalar_t>
int launch_sparse(const MultilabelLaunchArgs& a, cudaStream_t stream) {
  using acc_t = typename AccOf<scalar_t>::type;
  const Config cfg = configure(a);
  if (cfg.grid.y > kMaxGridY) return kMultilabelBadArgs;
  const bool stage = !cfg.groups.warp_rows && a.k > 0 && a.k <= kSmemIndices;
  const size_t smem = stage ? static_cast<size_t>(a.k) * sizeof(int64_t) : 0;
  launch_kernel(sparse_multilabel_ce_kernel<scalar_t>, cfg.grid, cfg.threads, smem, stream,
                static_cast<const scalar_t*>(a.input), a.positive_index, static_cast<acc_t*>(a.row_loss),
                static_cast<scalar_t*>(a.grad), cfg.groups, a.k, a.mask_zero != 0, stage);
  return static_cast<int>(cudaGetLastError());
}

bool args_ok(const MultilabelLaunchArgs* a) {
  return a != nullptr && a->n_rows >= 0 && a->n_cols >= 0 && a->k >= 0;
}

}  // namespace
}  // namespace multilabel
}  // namespace fusedloss

extern "C" int fusedloss_multilabel_ce_fwd_cuda(const MultilabelLaunchArgs* args, cudaStream_t stream) {
  using namespace fusedloss::multilabel;
  if (!args_ok(args)) return kMultilabelBadArgs;
  const MultilabelLaunchArgs& a = *args;
  if (a.n_rows == 0) return 0;
  if (a.row_loss == nullptr || (a.n_cols > 0 && (a.input == nullptr || a.target == nullptr))) {
    return kMultilabelBadArgs;
  }
  switch (a.input_dtype) {
    case kMultilabelF32:
      return dispatch_target<float>(a, stream);
    case kMultilabelF64:
      return dispatch_target<double>(a, stream);
    case kMultilabelF16:
      return dispatch_target<__half>(a, stream);
    case kMultilabelBF16:
      return dispatch_target<__nv_bfloat16>(a, stream);
    default:
      return kMultilabelBadInputDType;
  }
}

extern "C" int fusedloss_sparse_multilabel_ce_fwd_cuda(const MultilabelLaunchArgs* args, cudaStream_t stream) {
  using namespace fusedloss::multilabel;
  if (!args_ok(args)) return kMultilabelBadArgs;
  const MultilabelLaunchArgs& a = *args;
  if (a.n_rows == 0) return 0;
  if (a.row_loss == nullptr || (a.n_cols > 0 && a.input == nullptr) ||
      (a.k > 0 && a.positive_index == nullptr)) {
    return kMultilabelBadArgs;
  }
  switch (a.input_dtype) {
    case kMultilabelF32:
      return launch_sparse<float>(a, stream);
    case kMultilabelF64:
      return launch_sparse<double>(a, stream);
    case kMultilabelF16:
      return launch_sparse<__half>(a, stream);
    case kMultilabelBF16:
      return launch_sparse<__nv_bfloat16>(a, stream);
    default:
      return kMultilabelBadInputDType;
  }
}
