// CUDA kernel of fusedloss::session_softmax_fwd. Torch-free: raw pointers, int64 sizes, an explicit
// stream (session_softmax_cuda.h); session_softmax_cuda_binding.cpp turns tensors into
// SessionSoftmaxLaunchArgs and sums the per-item outputs. The CPU kernel (session_softmax_cpu.cpp)
// computes the same thing with the same header functions (session_softmax_math.h).
//
// Items come in session-sorted order; item p leads its session iff seg_lo[p] == p, and the leader's
// session is [p, seg_hi[p]). One block of kThreads threads per kSpan = 32 consecutive items (the
// span): warp 0 finds the span's leaders (a ballot) and their sessions' ends. A session of at most
// kWarpMax items runs on one warp (the span's small sessions are dealt round-robin to the warps),
// a longer one on the whole block; with valid ranges a span holds at most one long session (only the
// span's last session can reach past it), so a block is never busy for long on several. Within a
// group (warp or block) the threads stride over the session and run the header's three sweeps:
//   1. the session statistics (ListStats / JrcStats, online LSEs) per thread, merged over the group
//      (lse_merge through list_stats_merge / jrc_stats_merge; warp shuffles, then shared memory
//      across the warps of a block);
//   2. Q (listwise) or T0, T1 (kJrcSplit): per-thread sums, group sums;
//   3. per item: row_loss, row_den and grad writes (every item belongs to one session: no atomics).
// A session is always run by the same group kind (it depends on its length only), and every merge
// and sum has a fixed order, so the results are deterministic. The session ranges are not checked
// (that would need a host sync; the cpu op checks them): they are clamped (seg_lo to [0, n), seg_hi
// to [p + 1, n]) so that no access is out of bounds whatever their values.
// Instantiated for float and double x 4 kinds: 8 kernels.
#include <cuda_runtime.h>

#include <stdint.h>

#include "../common/cuda_launch.cuh"
#include "session_softmax_cuda.h"
#include "session_softmax_math.h"

namespace fusedloss {
namespace session_softmax {
namespace {

constexpr int kThreads = kSessionSoftmaxThreads;
constexpr int kWarp = 32;
constexpr int kWarps = kThreads / kWarp;
constexpr int kSpan = kSessionSoftmaxSpan;
static_assert(kSpan == kWarp, "warp 0 finds the span's leaders with one ballot");
static_assert(kThreads % kWarp == 0 && kWarps <= kWarp, "one warp merges the per-warp states");
constexpr int64_t kWarpMax = 64;  // sessions of at most this many items run on one warp
constexpr unsigned kFull = 0xffffffffu;

template <typename acc_t>
struct KernelArgs {
  const acc_t* __restrict__ z;  // [n, C]
  const acc_t* __restrict__ y;  // [n]
  const acc_t* __restrict__ w;  // [n], or nullptr (weight 1)
  const int64_t* __restrict__ seg_lo;
  const int64_t* __restrict__ seg_hi;
  acc_t* __restrict__ row_loss;  // [P, n]
  acc_t* __restrict__ row_den;   // [P, n]
  acc_t* __restrict__ grad;      // [P, n, C], or nullptr
  int64_t n;
  Params<acc_t> prm;
};

// T0, T1 of kJrcSplit's sweep 2.
template <typename acc_t>
struct Pair {
  acc_t t0, t1;
};

// ---- Merges and shuffles of the per-thread states ----

__device__ __forceinline__ float merge(float a, float b) { return a + b; }
__device__ __forceinline__ double merge(double a, double b) { return a + b; }

template <typename acc_t>
__device__ __forceinline__ ListStats<acc_t> merge(const ListStats<acc_t>& a, const ListStats<acc_t>& b) {
  return list_stats_merge(a, b);
}

template <typename acc_t>
__device__ __forceinline__ JrcStats<acc_t> merge(const JrcStats<acc_t>& a, const JrcStats<acc_t>& b) {
  return jrc_stats_merge(a, b);
}

template <typename acc_t>
__device__ __forceinline__ Pair<acc_t> merge(const Pair<acc_t>& a, const Pair<acc_t>& b) {
  return Pair<acc_t>{a.t0 + b.t0, a.t1 + b.t1};
}

struct ShflDown {
  int delta;
  template <typename T>
  __device__ __forceinline__ T operator()(T v) const {
    return __shfl_down_sync(kFull, v, delta);
  }
};

struct ShflFrom {
  int src;
  template <typename T>
  __device__ __forceinline__ T operator()(T v) const {
    return __shfl_sync(kFull, v, src);
  }
};

template <typename S>
__device__ __forceinline__ float shfl(float v, const S& s) {
  return s(v);
}

template <typename S>
__device__ __forceinline__ double shfl(double v, const S& s) {
  return s(v);
}

template <typename acc_t, typename S>
__device__ __forceinline__ Lse<acc_t> shfl(const Lse<acc_t>& v, const S& s) {
  return Lse<acc_t>{s(v.m), s(v.s)};
}

template <typename acc_t, typename S>
__device__ __forceinline__ ListStats<acc_t> shfl(const ListStats<acc_t>& v, const S& s) {
  return ListStats<acc_t>{shfl(v.s, s), shfl(v.u, s), s(v.r_sum)};
}

template <typename acc_t, typename S>
__device__ __forceinline__ JrcStats<acc_t> shfl(const JrcStats<acc_t>& v, const S& s) {
  return JrcStats<acc_t>{shfl(v.a, s), shfl(v.b, s), s(v.w_sum), s(v.n_pos), s(v.n)};
}

template <typename acc_t, typename S>
__device__ __forceinline__ Pair<acc_t> shfl(const Pair<acc_t>& v, const S& s) {
  return Pair<acc_t>{s(v.t0), s(v.t1)};
}

// The merge of lanes [0, kLanes) of the warp, in lane 0 (a fixed tree: deterministic). Every lane
// must call it; lanes >= kLanes only feed lanes that lane 0 ignores.
template <int kLanes, typename T>
__device__ __forceinline__ T warp_reduce(T v) {
#pragma unroll
  for (int d = kLanes / 2; d > 0; d >>= 1) v = merge(v, shfl(v, ShflDown{d}));
  return v;
}

// Shared memory of the block-wide merges: per-warp states, then the result in [kWarps].
template <typename acc_t>
struct BlockShared {
  ListStats<acc_t> list[kWarps + 1];
  JrcStats<acc_t> jrc[kWarps + 1];
  Pair<acc_t> pair[kWarps + 1];
  acc_t sum[kWarps + 1];
};

// A warp running one session: lane = rank; merges by shuffles, the result broadcast from lane 0.
struct WarpGroup {
  static constexpr int kSize = kWarp;
  int rank;
  template <typename T>
  __device__ __forceinline__ T allreduce(T v, T* /*sh*/) const {
    return shfl(warp_reduce<kWarp>(v), ShflFrom{0});
  }
};

// The whole block running one session: per-warp merges, then warp 0 merges the kWarps states in
// shared memory and publishes the result. Every thread of the block must call it. Consecutive calls
// on one buffer need no third barrier: a warp writes sh[warp] of the next call only after the second
// barrier of this one, which warp 0 reaches after reading sh[0 .. kWarps), and sh[kWarps] is
// rewritten only after the next call's first barrier, which every thread reaches after reading it.
struct BlockGroup {
  static constexpr int kSize = kThreads;
  int rank;
  template <typename T>
  __device__ __forceinline__ T allreduce(T v, T* sh) const {
    const int lane = rank % kWarp, warp = rank / kWarp;
    v = warp_reduce<kWarp>(v);
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    if (warp == 0) {
      T x = sh[lane < kWarps ? lane : 0];
      x = warp_reduce<kWarps>(x);
      if (lane == 0) sh[kWarps] = x;
    }
    __syncthreads();
    return sh[kWarps];
  }
};

// ---- One session [lo, hi) on a group ----

template <typename acc_t, int kKind, typename G>
__device__ __forceinline__ void listwise_session(const KernelArgs<acc_t>& a, int64_t lo, int64_t hi, const G& g,
                                                 BlockShared<acc_t>& sh) {
  Params<acc_t> prm = a.prm;
  prm.kind = kKind;
  ListStats<acc_t> st = list_stats_empty<acc_t>();
  for (int64_t i = lo + g.rank; i < hi; i += G::kSize) list_stats_add(st, a.z[i], a.y[i], prm);
  st = g.allreduce(st, sh.list);
  const acc_t lse_s = lse_value(st.s);
  acc_t q_sum = acc_t(0);
  for (int64_t i = lo + g.rank; i < hi; i += G::kSize) q_sum += list_target(a.y[i], st, prm);
  q_sum = g.allreduce(q_sum, sh.sum);
  for (int64_t i = lo + g.rank; i < hi; i += G::kSize) {
    acc_t gr;
    a.row_loss[i] = list_item(a.z[i], a.y[i], st, lse_s, q_sum, prm, &gr);
    a.row_den[i] = i == lo ? acc_t(1) : acc_t(0);
    if (a.grad != nullptr) a.grad[i] = gr;
  }
}

template <typename acc_t>
__device__ __forceinline__ acc_t weight_at(const KernelArgs<acc_t>& a, int64_t i) {
  return a.w != nullptr ? a.w[i] : acc_t(1);
}

template <typename acc_t, int kKind, typename G>
__device__ __forceinline__ void jrc_session(const KernelArgs<acc_t>& a, int64_t lo, int64_t hi, const G& g,
                                            BlockShared<acc_t>& sh) {
  JrcStats<acc_t> st = jrc_stats_empty<acc_t>();
  for (int64_t i = lo + g.rank; i < hi; i += G::kSize) {
    jrc_stats_add(st, a.z[2 * i], a.z[2 * i + 1], a.y[i] == acc_t(1), weight_at(a, i), kKind);
  }
  st = g.allreduce(st, sh.jrc);
  // -inf (not NaN) for an empty label set of kJrcSplit: -inf + log(0).
  const acc_t m0 = lse_value(st.a);
  const acc_t m1 = lse_value(st.b);
  Pair<acc_t> t{acc_t(0), acc_t(0)};
  if (kKind == kJrcSplit) {
    for (int64_t i = lo + g.rank; i < hi; i += G::kSize) {
      const bool pos = a.y[i] == acc_t(1);
      const acc_t share = jrc_split_share(a.z[2 * i], a.z[2 * i + 1], pos, weight_at(a, i), m0, m1);
      if (pos) {
        t.t1 += share;
      } else {
        t.t0 += share;
      }
    }
    t = g.allreduce(t, sh.pair);
  }
  const int64_t n = a.n;
  for (int64_t i = lo + g.rank; i < hi; i += G::kSize) {
    const acc_t z0 = a.z[2 * i], z1 = a.z[2 * i + 1];
    const bool pos = a.y[i] == acc_t(1);
    const acc_t wi = weight_at(a, i);
    acc_t c0, c1, g0, g1;
    a.row_loss[i] = jrc_ce(z0, z1, pos, wi, &c0, &c1);
    a.row_den[i] = wi != acc_t(0) ? acc_t(1) : acc_t(0);
    a.row_loss[n + i] = jrc_ge_item(z0, z1, pos, wi, st, m0, m1, t.t0, t.t1, static_cast<int64_t>(kKind), &g0, &g1);
    a.row_den[n + i] = acc_t(1);
    if (a.grad != nullptr) {
      a.grad[2 * i] = c0;
      a.grad[2 * i + 1] = c1;
      a.grad[2 * (n + i)] = g0;
      a.grad[2 * (n + i) + 1] = g1;
    }
  }
}

template <typename acc_t, int kKind, typename G>
__device__ __forceinline__ void run_session(const KernelArgs<acc_t>& a, int64_t lo, int64_t hi, const G& g,
                                            BlockShared<acc_t>& sh) {
  if (kKind >= kJrc) {
    jrc_session<acc_t, kKind>(a, lo, hi, g, sh);
  } else {
    listwise_session<acc_t, kKind>(a, lo, hi, g, sh);
  }
}

// minBlocks 2 (at most 128 registers): with no minimum, ptxas's allocation around the IEEE division
// and log slow-path calls spilled 8-16 bytes in two kernels (sm_80 float distill, sm_90 double jrc and
// float rank); with 1 to 3 it spills nothing. scripts/check_cuda_build.sh guards it.
constexpr int kMinBlocks = 2;

template <typename acc_t, int kKind>
__global__ void __launch_bounds__(kThreads, kMinBlocks) session_softmax_kernel(const KernelArgs<acc_t> a) {
  __shared__ BlockShared<acc_t> sh;
  __shared__ long long sh_hi[kSpan];
  __shared__ unsigned sh_small, sh_big;

  const int tid = threadIdx.x;
  const int lane = tid % kWarp, warp = tid / kWarp;
  const int64_t span0 = static_cast<int64_t>(blockIdx.x) * kSpan;
  if (warp == 0) {
    const int64_t p = span0 + lane;
    bool leader = false;
    int64_t hi = p + 1;
    if (p < a.n) {
      // Clamped: seg_lo to [0, n) (so item 0 always leads), seg_hi to [p + 1, n].
      int64_t lo = a.seg_lo[p];
      lo = lo < 0 ? 0 : (lo >= a.n ? a.n - 1 : lo);
      leader = lo == p;
      const int64_t h = a.seg_hi[p];
      hi = h <= p ? p + 1 : (h > a.n ? a.n : h);
    }
    const unsigned lead = __ballot_sync(kFull, leader);
    const unsigned big = __ballot_sync(kFull, leader && hi - p > kWarpMax);
    sh_hi[lane] = hi;
    if (lane == 0) {
      sh_small = lead & ~big;
      sh_big = big;
    }
  }
  __syncthreads();
  const unsigned small = sh_small, big = sh_big;
  if ((small | big) == 0u) return;  // uniform: no session starts in this span

  // Short sessions: warp w runs the span's short sessions of rank w, w + kWarps, ...
  int rank = 0;
  for (unsigned m = small; m != 0u; m &= m - 1u, ++rank) {
    if (rank % kWarps != warp) continue;
    const int k = __ffs(m) - 1;
    run_session<acc_t, kKind>(a, span0 + k, static_cast<int64_t>(sh_hi[k]), WarpGroup{lane}, sh);
  }
  // Long sessions (at most one for valid ranges): the whole block, in order (uniform loop).
  for (unsigned m = big; m != 0u; m &= m - 1u) {
    const int k = __ffs(m) - 1;
    run_session<acc_t, kKind>(a, span0 + k, static_cast<int64_t>(sh_hi[k]), BlockGroup{tid}, sh);
  }
}

template <typename acc_t, int kKind>
int launch_kind(const KernelArgs<acc_t>& ka, int32_t num_blocks, cudaStream_t stream) {
  launch_kernel(session_softmax_kernel<acc_t, kKind>, num_blocks, kThreads, 0, stream, ka);
  return static_cast<int>(cudaGetLastError());
}

template <typename acc_t>
int launch(const SessionSoftmaxLaunchArgs& a, cudaStream_t stream) {
  KernelArgs<acc_t> ka;
  ka.z = static_cast<const acc_t*>(a.logits);
  ka.y = static_cast<const acc_t*>(a.labels);
  ka.w = static_cast<const acc_t*>(a.weight);
  ka.seg_lo = a.seg_lo;
  ka.seg_hi = a.seg_hi;
  ka.row_loss = static_cast<acc_t*>(a.row_loss);
  ka.row_den = static_cast<acc_t*>(a.row_den);
  ka.grad = static_cast<acc_t*>(a.grad);
  ka.n = a.n;
  ka.prm.kind = a.kind;
  ka.prm.flags = a.flags;
  ka.prm.temperature = static_cast<acc_t>(a.temperature);
  ka.prm.clip_max = static_cast<acc_t>(a.clip_max);
  switch (a.kind) {
    case kRank:
      return launch_kind<acc_t, kRank>(ka, a.num_blocks, stream);
    case kDistill:
      return launch_kind<acc_t, kDistill>(ka, a.num_blocks, stream);
    case kJrc:
      return launch_kind<acc_t, kJrc>(ka, a.num_blocks, stream);
    default:
      return launch_kind<acc_t, kJrcSplit>(ka, a.num_blocks, stream);
  }
}

}  // namespace
}  // namespace session_softmax
}  // namespace fusedloss

extern "C" int fusedloss_session_softmax_cuda(const SessionSoftmaxLaunchArgs* args, cudaStream_t stream) {
  using namespace fusedloss::session_softmax;
  if (args == nullptr || args->n < 0) return kSessionSoftmaxBadArgs;
  const SessionSoftmaxLaunchArgs& a = *args;
  if (a.n == 0) return 0;
  if (a.num_blocks != fusedloss_session_softmax_num_blocks(a.n) || a.logits == nullptr || a.labels == nullptr ||
      a.seg_lo == nullptr || a.seg_hi == nullptr || a.row_loss == nullptr || a.row_den == nullptr ||
      a.kind < kRank || a.kind > kJrcSplit || a.flags < 0 || a.flags > (kLabelIsLogits | kTargetsGiven) ||
      !(a.temperature > 0.0) || !(a.clip_max >= 1.0)) {
    return kSessionSoftmaxBadArgs;
  }
  switch (a.dtype) {
    case kSessionSoftmaxF32:
      return launch<float>(a, stream);
    case kSessionSoftmaxF64:
      return launch<double>(a, stream);
    default:
      return kSessionSoftmaxBadDType;
  }
}
