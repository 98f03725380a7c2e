// A CPU emulator of the part of the CUDA execution model fusedloss's kernels use, so that ctest runs
// the .cu sources themselves, unchanged, on a machine without a GPU. This directory goes first on the
// include path of the emulated test targets (CMakeLists.txt): its cuda_runtime.h and
// cuda_runtime_api.h stand for the toolkit's, and FUSEDLOSS_CUDA_SIM routes
// csrc/common/cuda_launch.cuh's launch_kernel and FL_DYNAMIC_SHARED here.
//
// Model. A launch runs its blocks one after another. A block's threads are fibers (ucontext) on the
// calling OS thread, run in turn until each reaches a synchronisation point, so a run is
// deterministic. Warps are 32 consecutive linear thread indices. __shared__ variables are function
// statics: one copy per kernel instantiation, reused by the next block as the hardware reuses shared
// memory (their contents are not reset between blocks); dynamic shared memory is filled with 0xCD at
// every block, so a read before a write shows as garbage rather than zeros. Atomics are plain
// read-modify-writes (one OS thread). Device code takes its host path: __CUDA_ARCH__ is not defined,
// so inline PTX and fast-math intrinsics are replaced by their host equivalents, and the results can
// differ from a GPU's in the last bits of approximate functions, never in indexing or control flow.
//
// What the emulator checks, beyond what a GPU reports: a warp collective (__shfl*_sync, __any_sync,
// __all_sync, __ballot_sync, __syncwarp, __reduce_*_sync) whose mask leaves out the calling lane,
// names a lane that has exited or does not exist, or that the lanes of its mask reach with different
// masks, operations or source lines; a shuffle that reads a lane outside the mask; a thread exiting
// while its warp waits for it; a block that can no longer progress (a __syncthreads or collective
// some threads never reach); and launch configurations the hardware rejects (reported by
// cudaGetLastError as cudaErrorInvalidConfiguration / cudaErrorInvalidValue). Each violation prints
// the block, thread and source line and aborts the test program.
#pragma once

#include <math.h>
#include <stdarg.h>
#include <ucontext.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

// ---- Types and built-in variables ------------------------------------------------------------------
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct uint3 {
  unsigned x, y, z;
};
typedef struct CUstream_st* cudaStream_t;
enum cudaError { cudaSuccess = 0, cudaErrorInvalidValue = 1, cudaErrorInvalidConfiguration = 9 };
typedef enum cudaError cudaError_t;

inline uint3 threadIdx{0, 0, 0};
inline uint3 blockIdx{0, 0, 0};
inline dim3 blockDim;
inline dim3 gridDim;
inline constexpr int warpSize = 32;

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static

namespace fusedloss_sim {

constexpr int kWarp = 32;
constexpr size_t kStackBytes = 256 * 1024;
constexpr size_t kMaxDynamicShared = 48 * 1024;  // without cudaFuncSetAttribute, which is not emulated

enum Op : int { kShfl, kShflXor, kShflDown, kShflUp, kBallot, kSyncWarp, kReduceMin, kReduceMax, kReduceAdd };

inline const char* op_name(int op) {
  static const char* const names[] = {"__shfl_sync",       "__shfl_xor_sync",   "__shfl_down_sync",
                                      "__shfl_up_sync",    "vote/ballot",       "__syncwarp",
                                      "__reduce_min_sync", "__reduce_max_sync", "__reduce_add_sync"};
  return names[op];
}

struct Arrival {
  uint64_t value;
  int op;
  const char* file;
  int line;
};

struct Warp {
  int size = 0;            // lanes that exist (the block's last warp may be partial)
  unsigned live = 0;       // lanes that have not exited
  unsigned arrived = 0;    // lanes at the pending collective
  unsigned gen = 0;        // completed collectives; the slots alternate by its parity
  unsigned mask[2] = {0, 0};
  Arrival slot[2][kWarp];
};

struct Thread {
  ucontext_t ctx;
  uint3 idx;
  bool done = false;
};

struct State {
  std::vector<Thread> threads;
  std::vector<Warp> warps;
  int live = 0;      // threads of the block that have not exited
  int arrived = 0;   // at the pending __syncthreads
  unsigned gen = 0;  // completed __syncthreads
  int cur = -1;      // the running thread
  long progress = 0;
  ucontext_t sched;
  std::function<void()> body;
  std::unique_ptr<unsigned char[]> dyn_smem;
  cudaError_t error = cudaSuccess;
  bool in_kernel = false;
};

inline State& state() {
  static State s;
  return s;
}

[[noreturn]] inline void fail(const char* fmt, ...) {
  const State& s = state();
  std::fprintf(stderr, "cuda_sim: block (%u, %u, %u), thread %d: ", blockIdx.x, blockIdx.y, blockIdx.z, s.cur);
  va_list ap;
  va_start(ap, fmt);
  std::vfprintf(stderr, fmt, ap);
  va_end(ap);
  std::fprintf(stderr, "\n");
  std::abort();
}

inline void yield() {
  State& s = state();
  swapcontext(&s.threads[s.cur].ctx, &s.sched);
}

inline void complete_barrier(State& s) {
  s.arrived = 0;
  ++s.gen;
}

inline void thread_exit() {
  State& s = state();
  const int lane = s.cur % kWarp;
  Warp& w = s.warps[s.cur / kWarp];
  const unsigned bit = 1u << lane;
  if (w.arrived != 0 && (w.mask[w.gen & 1] & bit)) {
    const Arrival& a = w.slot[w.gen & 1][__builtin_ctz(w.arrived)];
    fail("exits while lanes %#x of its warp wait for it at %s (%s:%d)", w.arrived, op_name(a.op), a.file, a.line);
  }
  w.live &= ~bit;
  s.threads[s.cur].done = true;
  --s.live;
  ++s.progress;
  if (s.arrived > 0 && s.arrived == s.live) complete_barrier(s);  // exited threads do not hold a barrier
}

inline void entry() {
  state().body();
  thread_exit();
}  // returns to uc_link, the scheduler

// Every lane named by `mask` passes its value; returns the generation's slots once all have.
inline const Arrival* collective(unsigned mask, int op, uint64_t value, const char* file, int line) {
  State& s = state();
  const int lane = s.cur % kWarp;
  Warp& w = s.warps[s.cur / kWarp];
  const unsigned bit = 1u << lane;
  const unsigned exists = w.size == kWarp ? ~0u : ((1u << w.size) - 1u);
  if (!(mask & bit)) fail("%s (%s:%d) with mask %#x, which leaves out the calling lane %d", op_name(op), file, line, mask, lane);
  if (mask & ~exists) fail("%s (%s:%d) with mask %#x names lanes a warp of %d lanes lacks", op_name(op), file, line, mask, w.size);
  if (mask & ~w.live) fail("%s (%s:%d) with mask %#x names exited lanes %#x", op_name(op), file, line, mask, mask & ~w.live);
  const unsigned g = w.gen;
  const int p = static_cast<int>(g & 1u);
  if (w.arrived == 0) {
    w.mask[p] = mask;
  } else {
    const Arrival& first = w.slot[p][__builtin_ctz(w.arrived)];
    if (w.mask[p] != mask || first.op != op || first.line != line || std::strcmp(first.file, file) != 0) {
      fail("lane %d reaches %s (%s:%d) with mask %#x while lanes %#x wait at %s (%s:%d) with mask %#x", lane,
           op_name(op), file, line, mask, w.arrived, op_name(first.op), first.file, first.line, w.mask[p]);
    }
  }
  w.slot[p][lane] = Arrival{value, op, file, line};
  w.arrived |= bit;
  ++s.progress;
  if (w.arrived == mask) {
    w.arrived = 0;
    ++w.gen;
  } else {
    while (w.gen == g) yield();
  }
  return w.slot[p];
}

template <typename T>
inline uint64_t to_bits(T v) {
  static_assert(std::is_trivially_copyable<T>::value && sizeof(T) <= 8, "warp shuffles move at most 8 bytes");
  uint64_t b = 0;
  std::memcpy(&b, &v, sizeof(T));
  return b;
}

template <typename T>
inline T from_bits(uint64_t b) {
  T v;
  std::memcpy(&v, &b, sizeof(T));
  return v;
}

template <typename T>
inline T shuffle(unsigned mask, T v, int op, int arg, int width, const char* file, int line) {
  if (width <= 0 || width > kWarp || (width & (width - 1)) != 0) fail("%s (%s:%d): width %d", op_name(op), file, line, width);
  const Arrival* slots = collective(mask, op, to_bits(v), file, line);
  const int lane = state().cur % kWarp;
  const int base = lane & ~(width - 1), sub = lane & (width - 1);
  int src = lane;
  switch (op) {
    case kShfl:
      src = base + (arg & (width - 1));
      break;
    case kShflXor:
      src = lane ^ arg;
      if (src < base || src >= base + width) src = lane;
      break;
    case kShflDown:
      src = sub + arg < width ? lane + arg : lane;
      break;
    default:  // kShflUp
      src = sub - arg >= 0 ? lane - arg : lane;
      break;
  }
  if (!(mask & (1u << src))) fail("%s (%s:%d) reads lane %d, outside mask %#x", op_name(op), file, line, src, mask);
  return from_bits<T>(slots[src].value);
}

inline unsigned ballot(unsigned mask, bool pred, const char* file, int line) {
  const Arrival* slots = collective(mask, kBallot, pred ? 1u : 0u, file, line);
  unsigned r = 0;
  for (int l = 0; l < kWarp; ++l) {
    if ((mask & (1u << l)) && slots[l].value != 0) r |= 1u << l;
  }
  return r;
}

template <typename T>
inline T reduce(unsigned mask, T v, int op, const char* file, int line) {
  const Arrival* slots = collective(mask, op, to_bits(v), file, line);
  bool first = true;
  T r{};
  for (int l = 0; l < kWarp; ++l) {
    if (!(mask & (1u << l))) continue;
    const T x = from_bits<T>(slots[l].value);
    if (first) {
      r = x;
      first = false;
    } else {
      r = op == kReduceMin ? (x < r ? x : r) : (op == kReduceMax ? (x > r ? x : r) : static_cast<T>(r + x));
    }
  }
  return r;
}

// The block's dynamic shared memory (FL_DYNAMIC_SHARED).
template <typename T>
inline T* dynamic_shared() {
  return reinterpret_cast<T*>(state().dyn_smem.get());
}

inline void run_block(dim3 block, char* stacks) {
  State& s = state();
  const int n = static_cast<int>(block.x * block.y * block.z);
  s.threads.assign(static_cast<size_t>(n), Thread{});
  s.warps.assign(static_cast<size_t>((n + kWarp - 1) / kWarp), Warp{});
  for (size_t w = 0; w < s.warps.size(); ++w) {
    const int size = std::min(kWarp, n - static_cast<int>(w) * kWarp);
    s.warps[w].size = size;
    s.warps[w].live = size == kWarp ? ~0u : ((1u << size) - 1u);
  }
  s.live = n;
  s.arrived = 0;
  s.gen = 0;
  for (int i = 0; i < n; ++i) {
    Thread& t = s.threads[static_cast<size_t>(i)];
    const unsigned u = static_cast<unsigned>(i);
    t.idx = uint3{u % block.x, (u / block.x) % block.y, u / (block.x * block.y)};
    getcontext(&t.ctx);
    t.ctx.uc_stack.ss_sp = stacks + static_cast<size_t>(i) * kStackBytes;
    t.ctx.uc_stack.ss_size = kStackBytes;
    t.ctx.uc_link = &s.sched;
    makecontext(&t.ctx, entry, 0);
  }
  for (;;) {
    const long before = s.progress;
    bool any = false;
    for (int i = 0; i < n; ++i) {
      Thread& t = s.threads[static_cast<size_t>(i)];
      if (t.done) continue;
      any = true;
      s.cur = i;
      threadIdx = t.idx;
      swapcontext(&s.sched, &t.ctx);
    }
    if (!any) break;
    if (s.progress == before) {
      s.cur = -1;
      fail("deadlock: %d live threads wait at a __syncthreads (%d arrived) or a warp collective that cannot complete",
           s.live, s.arrived);
    }
  }
  s.cur = -1;
}

// kernel<<<grid, block, smem>>>(args...): every block in turn, x fastest.
template <typename... Params, typename... Args>
void launch(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, Args&&... args) {
  State& s = state();
  if (s.in_kernel) fail("a kernel launches a kernel (dynamic parallelism is not emulated)");
  const unsigned long long threads = 1ull * block.x * block.y * block.z;
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 0x7fffffffu || grid.y > 65535 || grid.z > 65535 ||
      threads == 0 || threads > 1024 || block.z > 64) {
    s.error = cudaErrorInvalidConfiguration;
    return;
  }
  if (smem > kMaxDynamicShared) {
    s.error = cudaErrorInvalidValue;
    return;
  }
  std::tuple<std::decay_t<Params>...> params(std::forward<Args>(args)...);
  std::unique_ptr<char[]> stacks(new char[threads * kStackBytes]);
  s.body = [&]() { std::apply(kernel, params); };
  s.in_kernel = true;
  gridDim = grid;
  blockDim = block;
  for (unsigned z = 0; z < grid.z; ++z) {
    for (unsigned y = 0; y < grid.y; ++y) {
      for (unsigned x = 0; x < grid.x; ++x) {
        blockIdx = uint3{x, y, z};
        s.dyn_smem.reset(new unsigned char[smem == 0 ? 1 : smem]);
        std::memset(s.dyn_smem.get(), 0xCD, smem == 0 ? 1 : smem);
        run_block(block, stacks.get());
      }
    }
  }
  s.in_kernel = false;
  s.body = nullptr;
}

}  // namespace fusedloss_sim

// ---- Device functions --------------------------------------------------------------------------------
#define FL_SIM_SITE const char *file_ = __builtin_FILE(), int line_ = __builtin_LINE()

inline void __syncthreads() {
  fusedloss_sim::State& s = fusedloss_sim::state();
  const unsigned g = s.gen;
  ++s.arrived;
  ++s.progress;
  if (s.arrived == s.live) {
    fusedloss_sim::complete_barrier(s);
    return;
  }
  while (s.gen == g) fusedloss_sim::yield();
}

inline void __syncwarp(unsigned mask = 0xffffffffu, FL_SIM_SITE) {
  fusedloss_sim::collective(mask, fusedloss_sim::kSyncWarp, 0, file_, line_);
}
inline void __threadfence() {}
inline void __threadfence_block() {}

template <typename T>
inline T __shfl_sync(unsigned mask, T v, int src, int width = 32, FL_SIM_SITE) {
  return fusedloss_sim::shuffle(mask, v, fusedloss_sim::kShfl, src, width, file_, line_);
}
template <typename T>
inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32, FL_SIM_SITE) {
  return fusedloss_sim::shuffle(mask, v, fusedloss_sim::kShflXor, lane_mask, width, file_, line_);
}
template <typename T>
inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32, FL_SIM_SITE) {
  return fusedloss_sim::shuffle(mask, v, fusedloss_sim::kShflDown, static_cast<int>(delta), width, file_, line_);
}
template <typename T>
inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32, FL_SIM_SITE) {
  return fusedloss_sim::shuffle(mask, v, fusedloss_sim::kShflUp, static_cast<int>(delta), width, file_, line_);
}
inline unsigned __ballot_sync(unsigned mask, int pred, FL_SIM_SITE) {
  return fusedloss_sim::ballot(mask, pred != 0, file_, line_);
}
inline int __any_sync(unsigned mask, int pred, FL_SIM_SITE) {
  return fusedloss_sim::ballot(mask, pred != 0, file_, line_) != 0;
}
inline int __all_sync(unsigned mask, int pred, FL_SIM_SITE) {
  return fusedloss_sim::ballot(mask, pred != 0, file_, line_) == mask;
}
inline unsigned __reduce_min_sync(unsigned mask, unsigned v, FL_SIM_SITE) {
  return fusedloss_sim::reduce(mask, v, fusedloss_sim::kReduceMin, file_, line_);
}
inline int __reduce_min_sync(unsigned mask, int v, FL_SIM_SITE) {
  return fusedloss_sim::reduce(mask, v, fusedloss_sim::kReduceMin, file_, line_);
}
inline unsigned __reduce_max_sync(unsigned mask, unsigned v, FL_SIM_SITE) {
  return fusedloss_sim::reduce(mask, v, fusedloss_sim::kReduceMax, file_, line_);
}
inline int __reduce_max_sync(unsigned mask, int v, FL_SIM_SITE) {
  return fusedloss_sim::reduce(mask, v, fusedloss_sim::kReduceMax, file_, line_);
}
inline unsigned __reduce_add_sync(unsigned mask, unsigned v, FL_SIM_SITE) {
  return fusedloss_sim::reduce(mask, v, fusedloss_sim::kReduceAdd, file_, line_);
}
#undef FL_SIM_SITE

// One OS thread: a read-modify-write is atomic. The value is converted to the pointee's type, as the
// CUDA overloads' parameters are.
template <typename T, typename U>
inline T atomicAdd(T* p, U v) {
  const T old = *p;
  *p = static_cast<T>(old + static_cast<T>(v));
  return old;
}
template <typename T, typename U>
inline T atomicMin(T* p, U v) {
  const T old = *p;
  if (static_cast<T>(v) < old) *p = static_cast<T>(v);
  return old;
}
template <typename T, typename U>
inline T atomicMax(T* p, U v) {
  const T old = *p;
  if (static_cast<T>(v) > old) *p = static_cast<T>(v);
  return old;
}
template <typename T, typename U>
inline T atomicExch(T* p, U v) {
  const T old = *p;
  *p = static_cast<T>(v);
  return old;
}
template <typename T>
inline T atomicCAS(T* p, T compare, T v) {
  const T old = *p;
  if (old == compare) *p = v;
  return old;
}

// CUDA's integer and floating min / max for device code (fmin / fmax semantics for floats).
template <typename A, typename B, typename = std::enable_if_t<std::is_arithmetic<A>::value && std::is_arithmetic<B>::value>>
inline std::common_type_t<A, B> min(A a, B b) {
  using C = std::common_type_t<A, B>;
  if constexpr (std::is_floating_point<C>::value) {
    return std::fmin(static_cast<C>(a), static_cast<C>(b));
  } else {
    return static_cast<C>(b) < static_cast<C>(a) ? static_cast<C>(b) : static_cast<C>(a);
  }
}
template <typename A, typename B, typename = std::enable_if_t<std::is_arithmetic<A>::value && std::is_arithmetic<B>::value>>
inline std::common_type_t<A, B> max(A a, B b) {
  using C = std::common_type_t<A, B>;
  if constexpr (std::is_floating_point<C>::value) {
    return std::fmax(static_cast<C>(a), static_cast<C>(b));
  } else {
    return static_cast<C>(b) > static_cast<C>(a) ? static_cast<C>(b) : static_cast<C>(a);
  }
}

inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(static_cast<unsigned>(x)); }
template <typename T>
inline T __ldg(const T* p) {
  return *p;
}
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __fdividef(float a, float b) { return a / b; }

// ---- Host API ---------------------------------------------------------------------------------------
inline cudaError_t cudaGetLastError() {
  const cudaError_t e = fusedloss_sim::state().error;
  fusedloss_sim::state().error = cudaSuccess;
  return e;
}
inline cudaError_t cudaPeekAtLastError() { return fusedloss_sim::state().error; }
// Stream order is launch order here, so the asynchronous memset is a plain one.
inline cudaError_t cudaMemsetAsync(void* p, int value, size_t count, cudaStream_t stream = nullptr) {
  (void)stream;
  std::memset(p, value, count);
  return cudaSuccess;
}
inline const char* cudaGetErrorString(cudaError_t e) {
  return e == cudaSuccess ? "no error" : (e == cudaErrorInvalidConfiguration ? "invalid configuration argument" : "invalid argument");
}
