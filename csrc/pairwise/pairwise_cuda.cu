// CUDA kernel of fusedloss::pairwise_fwd and fusedloss::pairwise_ohem_hist. Torch-free: raw pointers,
// int64 sizes, an explicit stream (pairwise_cuda.h); pairwise_cuda_binding.cpp turns tensors into
// PairwiseLaunchArgs. The CPU kernel (pairwise_cpu.cpp) computes the same thing; this is its twin.
// float32 SBNZ PAIR_WISE / PAIRWISE_LOGISTIC under the symmetric schedule runs the lean kernel of
// pairwise_sbnz_cuda.cu instead; this one serves everything else (OHEM, focal, hinge, float64, the
// two-sided schedule).
//
// Items come in session-sorted order; [seg_lo[p], seg_hi[p]) is the sorted range of p's session
// (clamped to [0, n) here: the cpu op checks it, a check here would need a host sync). Row block x
// (blockIdx.x) holds kPairwiseThreads consecutive rows, one thread per row; the block's column range is
// staged through shared memory in tiles of kTile columns (scores, transformed labels, weights, order),
// and each thread walks the part of each tile inside its own column range. In the symmetric schedule
// the range's tiles are dealt over gridDim.y column groups (pairwise_grid.h's col_splits): block (x, y)
// takes tiles y, y + gridDim.y, ...; a row's gradient then comes from several blocks, which it gets by
// atomics anyway. Two schedules (kSymmetric):
//
// Symmetric (the default). Thread p takes the columns q > p of its session, [max(seg_lo, p + 1),
// seg_hi), so each unordered pair is evaluated once; the block's column range starts after its first
// row (row0 + 1 at the earliest) rather than at its sessions' lo. The pair gives loss, SBNZ count and
// (hist mode) its histogram entry once, whichever side is the higher item; d loss / d s_p goes to a
// register, added to grad[p] with one atomicAdd at the end, and d loss / d s_q is reduced across the
// block's rows: each warp walks a tile in chunks of 32 columns with a rotation (at step j lane l
// evaluates column (l + j) & 31 of the chunk and adds into that column's accumulator, which then
// moves one lane down with __shfl_sync; after 32 steps lane l holds column l's sum over the warp's
// rows: no shared atomics, no bank conflicts), the warps' sums are added in shared memory in a fixed
// order, and each column gets one atomicAdd per block into grad (zeroed by the binding). Work per
// pair: one pair_eval, plus per 32-column step of a warp one shuffle (two for double) whether or not
// the lane's column is in its range (the warp runs all 32 steps of a chunk any of its rows reaches:
// the chunks on the diagonal and at session boundaries are partly idle); per tile and block a 4-way
// shared sum and at most one global atomicAdd per column, and one per row at the end.
//
// Two-sided (deterministic mode). Thread p walks its whole session and evaluates every pair from both
// sides, for each column q, with yt the transformed labels:
//   yt_p > yt_q: pair (p, q): loss, SBNZ count and OHEM histogram are taken here (its higher side),
//                and ds_i goes to grad[p];
//   yt_q > yt_p: pair (q, p): only ds_j (into grad[p]) and, under OHEM, the pair's key.
// Every thread computes its row's whole gradient and writes it once: no atomics on grad, twice the
// pair evaluations of the symmetric schedule (about half its throughput at the special-function
// bound).
//
// Why atomics only in the symmetric schedule: a pair's column share belongs to an item that is a row
// of another thread, usually of another block (q > p runs past the block), and adding it there
// without atomics would need per-tile buffers (O(B^2 / tile) memory) or a schedule of disjoint
// blocks per round like the cpu kernel's (a grid-wide sync per round). Float atomics make the order
// of the additions into grad vary between runs, so its last bits may vary; the loss and the count
// never use atomics (per-thread sums, fixed block reductions, per-block partials finished by the
// binding), and the histogram's are integer: those are deterministic in both schedules (the loss
// value differs between the two schedules in its rounding, the pairs being summed in other
// groupings). The binding picks the two-sided schedule when at::globalContext().deterministicAlgorithms()
// (torch.use_deterministic_algorithms(True)) is set, which makes the gradient bitwise reproducible;
// otherwise the symmetric one.
//
// OHEM consistency. Within one schedule, the histogram passes and the final pass (and in the
// two-sided schedule both sides of a pair) must compute bit-identical losses (the key holds the acc_t
// loss's own bits: float32's for float, all 64 of float64's for double, ranked exactly, not rounded to
// float32). So each kernel serves all modes, with one pair evaluation site (the arguments selected per
// pair, p's or q's as the higher item, as in the cpu kernel) whose outputs are used in every mode,
// and the mode is re-read per pair from shared memory so the loop cannot be split per mode (each copy
// could be contracted into FMAs differently). The two schedules are different kernels, so the passes
// of one OHEM selection must use one schedule: the binding reads the same flag for both ops.
// Transformed labels come from one staging site, the block's own rows included, so a row's value is
// bit-identical to the same item's as a column. (A __noinline__ pair function would guarantee it more
// directly, but the call ABI made ptxas spill in the fp64 focal kernel.)
//
// Fwd modes: per-thread loss sum (acc_t within a tile, double across tiles) and count, block
// reductions, per-block partials[block] (sum) and partials[num_blocks + block] (count) in double,
// finished on the device by the binding. Hist mode: a 2048-bin shared histogram (dynamic shared
// memory), added to the global one with atomicAdd; the kernel exits at once when state[kOhemWords]
// (state[4], the done flag) != 0. The OHEM key is pairwise_math.h's 128-bit one: kOhemWords = 4
// words, kOhemDigits = 12 digits.
// Instantiated for float and double x 4 kinds x 2 schedules: 16 kernels.
#include <cuda_runtime.h>

#include <stdint.h>

#include "../common/cuda_launch.cuh"
#include "../common/warp_reduce.cuh"
#include "pairwise_cuda.h"
#include "pairwise_math.h"

namespace fusedloss {
namespace pairwise {
namespace {

constexpr int kThreads = kPairwiseThreads;
constexpr int kWarp = 32;
constexpr int kWarps = kThreads / kWarp;
constexpr int kTile = kPairwiseTile;  // staged columns per tile: 256 x (8 + 8 + 8 + 4) B = 7 KiB (double)
constexpr int kBins = kPairwiseHistBins;

// Digit `digit` of the radix select in mask form: ohem_prefix_match(k, p, digit) is
// ((k[w] ^ p[w]) & mask[w]) == 0 for every word w of the kOhemWords, and ohem_digit(k, digit) is
// (OR over w of k[w] & digit_mask[w]) >> shift, digit_mask being zero outside the digit's word. The
// kernel uses this form: with the digit at run time, the header functions index the key by it,
// which puts the key in local memory (and a switch over the digits as constants, 9 of them with the
// former 96-bit key, made ptxas spill). Picking the digit's word with selects (a loop of
// `w = word == i ? key[i] : w`) is no better: the compiler turned it back into an indexed load of
// the key, in local memory (16-byte stack frames); the masks are plain arithmetic on every word.
// The launcher reads the masks off the header functions themselves (hist_digit_from_header), so
// the header stays the one definition.
struct HistDigit {
  uint32_t mask[kOhemWords];        // the bits decided before the digit
  uint32_t digit_mask[kOhemWords];  // the digit's bits
  int shift;                        // the digit's lowest bit within its word
};

template <typename acc_t>
struct KernelArgs {
  const acc_t* __restrict__ s;
  const acc_t* __restrict__ y;
  const acc_t* __restrict__ w;  // nullptr: weight 1
  int64_t w_numel;
  const int64_t* __restrict__ order;
  const int64_t* __restrict__ seg_lo;
  const int64_t* __restrict__ seg_hi;
  const int64_t* __restrict__ words;  // select / state, int64 [kOhemWords + 1], or nullptr (SBNZ)
  acc_t* __restrict__ grad;           // nullptr: not wanted
  double* __restrict__ partials;
  unsigned long long* __restrict__ hist;
  int64_t n;
  Params<acc_t> prm;
  HistDigit hd;  // hist mode: the digit in mask form
  int mode;
};

// One pair as seen from row p against column q (the twin of eval_body in pairwise_cpu.cpp): the
// arguments are selected per pair (p's or q's as the higher item i) before the one pair_eval.
template <typename acc_t>
struct PairEval {
  acc_t loss;  // the pair's weighted loss
  acc_t ds;    // d loss / d s_p (ds_i when p is the higher item, else ds_j)
  acc_t dsq;   // d loss / d s_q (the other one; used by the symmetric schedule only)
  bool valid;  // a pair (labels ordered, focal filter passed)
  bool ph;     // p is the higher item
  bool nz;     // v != 0
};

template <typename acc_t, int kKind>
__device__ __forceinline__ PairEval<acc_t> eval_pair(const Params<acc_t>& prm_rt, acc_t s_p, acc_t yt_p, acc_t w_p,
                                                     acc_t s_q, acc_t yt_q, acc_t w_q) {
  Params<acc_t> prm = prm_rt;
  prm.kind = kKind;
  const bool ph = yt_p > yt_q;
  // Neither (equal or NaN labels): o.valid is false, pair_eval tests yt_i > yt_j.
  const PairOut<acc_t> o = pair_eval<acc_t>(ph ? s_p : s_q, ph ? s_q : s_p, ph ? yt_p : yt_q, ph ? yt_q : yt_p,
                                            ph ? w_p : w_q, prm);
  PairEval<acc_t> e;
  e.loss = o.loss;
  e.ds = ph ? o.ds_i : o.ds_j;
  e.dsq = ph ? o.ds_j : o.ds_i;
  e.valid = o.valid;
  e.ph = ph;
  e.nz = o.v != acc_t(0);
  return e;
}

// Whether key matches the decided prefix p (the state's words): ohem_prefix_match in mask form.
// Unrolled over the constant word count, so the key stays in registers.
__device__ __forceinline__ bool hist_match(const HistDigit& h, const uint32_t (&key)[kOhemWords],
                                           const int64_t* __restrict__ p) {
  uint32_t diff = 0u;
#pragma unroll
  for (int w = 0; w < kOhemWords; ++w) diff |= (key[w] ^ static_cast<uint32_t>(p[w])) & h.mask[w];
  return diff == 0u;
}

// ohem_digit in mask form: every word masked and merged, no indexing and no selects.
__device__ __forceinline__ uint32_t hist_bin(const HistDigit& h, const uint32_t (&key)[kOhemWords]) {
  uint32_t bits = 0u;
#pragma unroll
  for (int w = 0; w < kOhemWords; ++w) bits |= key[w] & h.digit_mask[w];
  return bits >> h.shift;
}

// Host: HistDigit of `digit` probed from ohem_prefix_match / ohem_digit (pairwise_math.h), one key
// bit at a time over all 32 * kOhemWords: a bit is decided before `digit` iff setting it alone breaks
// the prefix match with zeros, and is one of the digit's bits iff setting it alone makes the digit
// nonzero; the shift is the lowest of those. (The digit's bits are contiguous within one word, the
// header's layout, so (OR of the masked words) >> shift is the digit's value.)
HistDigit hist_digit_from_header(int digit) {
  HistDigit h{};
  h.shift = -1;
  const int64_t zeros[kOhemWords] = {};
  for (int bit = 0; bit < 32 * kOhemWords; ++bit) {  // every bit of the key, low to high per word
    uint32_t k[kOhemWords] = {};
    k[bit / 32] = 1u << (bit % 32);
    if (!ohem_prefix_match(k, zeros, digit)) h.mask[bit / 32] |= k[bit / 32];
    if (ohem_digit(k, digit) != 0u) {
      h.digit_mask[bit / 32] |= k[bit / 32];
      if (h.shift < 0) h.shift = bit % 32;
    }
  }
  return h;
}

// Warp-wide min / max of an int, in every lane (shuffles rather than sm_80's __reduce_min_sync, so
// that FUSEDLOSS_CUDA_ARCHS below 80 still compiles). Every lane of the warp must call it.
__device__ __forceinline__ int warp_min(int v) {
#pragma unroll
  for (int offset = kWarp / 2; offset > 0; offset >>= 1) v = min(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

__device__ __forceinline__ int warp_max(int v) {
#pragma unroll
  for (int offset = kWarp / 2; offset > 0; offset >>= 1) v = max(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

template <typename acc_t>
__device__ __forceinline__ acc_t weight_at(const KernelArgs<acc_t>& a, int64_t q) {
  if (a.w == nullptr) return acc_t(1);
  return a.w_numel == 1 ? a.w[0] : a.w[q];
}

// minBlocks 4 (at most 128 registers): with no minimum, ptxas's allocation around its division
// slow-path calls spilled a few bytes in some kernels (sm_80 fp64 focal, sm_90 fp32 pair_wise);
// with 1 to 6 it spills nothing. scripts/check_cuda_build.sh guards it.
constexpr int kMinBlocks = kPairwiseMinBlocksPerSm;

template <typename acc_t, int kKind, bool kSymmetric>
__global__ void __launch_bounds__(kThreads, kMinBlocks) pairwise_kernel(const KernelArgs<acc_t> a) {
  __shared__ acc_t sh_s[kTile];
  __shared__ acc_t sh_yt[kTile];
  __shared__ acc_t sh_w[kTile];
  __shared__ uint32_t sh_o[kTile];
  // Symmetric schedule: each warp's d loss / d s_q sums of the tile's columns, [kWarps][kTile]
  // (8 KiB for double); one element in the two-sided kernels, which do not use it.
  __shared__ acc_t sh_colg[kSymmetric ? kWarps * kTile : 1];
  // Per-thread state kept in shared memory rather than registers between tiles: ptxas calls a
  // slow-path subroutine for IEEE division (the sigmoids of pair_eval), and with more values live
  // across those calls it spilled on sm_90 (fp64 focal, fp32 hinge).
  __shared__ long long sh_lo[kThreads];
  __shared__ long long sh_hi[kThreads];
  __shared__ double sh_sum[kThreads];
  __shared__ long long sh_cnt[kThreads];
  __shared__ long long sh_range[2];
  __shared__ int sh_mode;
  FL_DYNAMIC_SHARED(unsigned long long, sh_hist);  // [kBins] in hist mode, else 0 bytes

  const int tid = threadIdx.x;
  const int64_t* words = a.words;  // select / state (nullptr for SBNZ)
  // words[kOhemWords]: the done flag (hist) / the enabled flag (select), after K*'s words.
  if (a.mode == kPairwiseHist && words[kOhemWords] != 0) return;  // K* decided: the caller's zeros stand
  const bool active = a.mode != kPairwiseSelect || words[kOhemWords] != 0;  // k == 0: nothing is selected

  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * kThreads;
  const bool has_row = row0 + tid < a.n;
  int64_t lo = 0, hi = 0;
  if (has_row) {
    // Clamped to [0, n): the cpu op checks these, here a check would need a host sync.
    lo = a.seg_lo[row0 + tid] < 0 ? 0 : a.seg_lo[row0 + tid];
    hi = a.seg_hi[row0 + tid] > a.n ? a.n : a.seg_hi[row0 + tid];
    // Symmetric: only the columns after the row (q > p), so the block's range starts at row0 + 1
    // at the earliest, not at its sessions' lo.
    if (kSymmetric && lo <= row0 + tid) lo = row0 + tid + 1;
  }
  sh_lo[tid] = lo;
  sh_hi[tid] = hi;
  sh_sum[tid] = 0.0;
  sh_cnt[tid] = 0;
  if (tid == 0) {
    sh_range[0] = a.n;
    sh_range[1] = 0;
    sh_mode = a.mode;
  }
  if (a.mode == kPairwiseHist) {
    for (int b = tid; b < kBins; b += kThreads) sh_hist[b] = 0ull;
  }
  __syncthreads();
  if (has_row && lo < hi) {
    atomicMin(&sh_range[0], static_cast<long long>(lo));
    atomicMax(&sh_range[1], static_cast<long long>(hi));
  }
  __syncthreads();
  const int64_t n_tiles = active && sh_range[1] > sh_range[0] ? (sh_range[1] - sh_range[0] + kTile - 1) / kTile : 0;

  acc_t s_p = acc_t(0), yt_p = acc_t(0), w_p = acc_t(0);
  uint32_t o_p = 0;
  acc_t g = acc_t(0);
  // t = -1 stages the block's own rows, t >= 0 the column tiles: one staging site, so that a row's
  // transformed label is bit-identical to the same item's as a column.
  // Then this block's tiles: blockIdx.y, blockIdx.y + gridDim.y, ... (gridDim.y is 1 when two-sided).
  for (int64_t t = -1; t < n_tiles; t = t < 0 ? static_cast<int64_t>(blockIdx.y) : t + gridDim.y) {
    const volatile long long* range = sh_range;
    const int64_t base = t < 0 ? row0 : range[0] + t * kTile;
    const int64_t end = t < 0 ? (a.n < row0 + kThreads ? a.n : row0 + kThreads) : range[1];
    const int cn = static_cast<int>(end - base < kTile ? end - base : kTile);
    __syncthreads();  // the previous tile (sh_s .. sh_o, and sh_colg) is consumed
    for (int k = tid; k < cn; k += kThreads) {
      const int64_t q = base + k;
      sh_s[k] = a.s[q];
      sh_yt[k] = transform_label<acc_t>(a.y[q], a.prm);
      sh_w[k] = weight_at(a, q);
      sh_o[k] = static_cast<uint32_t>(a.order[q]);
    }
    __syncthreads();
    if (t < 0) {
      if (has_row) {
        s_p = sh_s[tid];
        yt_p = sh_yt[tid];
        w_p = sh_w[tid];
        o_p = sh_o[tid];
      }
      continue;
    }
    // Two-sided: threads without a row have nothing to do until the next tile's barrier. Symmetric:
    // every thread goes on (the warp's shuffles and the barrier before the column flush); a thread
    // without a row has lo = hi = 0, hence the empty range k0 = k1 = 0 below.
    if (!kSymmetric && !has_row) continue;
    const int64_t my_lo = sh_lo[tid], my_hi = sh_hi[tid];
    // The row's columns within this tile, clamped to [0, cn] in 64 bits before narrowing.
    const int64_t r0 = my_lo - base, r1 = my_hi - base;
    const int k0 = static_cast<int>(r0 < 0 ? 0 : (r0 > cn ? cn : r0));
    const int k1 = static_cast<int>(r1 < 0 ? 0 : (r1 > cn ? cn : r1));
    acc_t tile_sum = acc_t(0);
    int tile_cnt = 0;
    if constexpr (!kSymmetric) {
      for (int k = k0; k < k1; ++k) {
        // One pair evaluation for every mode and both sides of a pair: the mode is re-read from
        // shared memory (volatile) so that the compiler cannot split this loop per mode, which could
        // contract (FMA) the pair's arithmetic differently in each copy; every output is used below.
        const PairEval<acc_t> e = eval_pair<acc_t, kKind>(a.prm, s_p, yt_p, w_p, sh_s[k], sh_yt[k], sh_w[k]);
        const int mode = *static_cast<volatile int*>(&sh_mode);
        if (!e.valid) continue;
        const uint32_t o_q = sh_o[k];
        // The acc_t loss: ohem_key's double overload keys a float64 loss on all its 64 bits.
        uint32_t key[kOhemWords];
        ohem_key(e.loss, e.ph ? o_p : o_q, e.ph ? o_q : o_p, key);
        if (mode == kPairwiseHist) {
          // Counted once, from its higher side.
          if (e.ph && hist_match(a.hd, key, words)) {
            atomicAdd(&sh_hist[hist_bin(a.hd, key)], 1ull);
          }
          continue;
        }
        const bool contrib = mode == kPairwiseSbnz || (ohem_selected(key, words) && e.loss > acc_t(0));
        if (!contrib) continue;
        g += e.ds;
        if (e.ph) {
          tile_sum += e.loss;
          tile_cnt += (mode == kPairwiseSelect || e.nz) ? 1 : 0;
        }
      }
    } else {
      // Each warp walks the tile in chunks of 32 columns, rotating: at step j lane l evaluates column
      // cb + ((l + j) & 31) and adds d loss / d s_q into cacc, the accumulator of that column, which
      // then moves one lane down, so at step j + 1 lane l holds the accumulator of the column it
      // evaluates next; after 32 steps lane l holds column cb + l's sum over the warp's 32 rows.
      // Chunks the warp's rows do not reach are skipped (warp-uniform), and store zeros.
      const int lane = tid % kWarp;
      const int warp = tid / kWarp;
      const int wk0 = warp_min(k0 < k1 ? k0 : kTile);  // the warp's columns in this tile: [wk0, wk1)
      const int wk1 = warp_max(k0 < k1 ? k1 : 0);
      const int n_chunks = (cn + kWarp - 1) / kWarp;
      for (int cb = 0; cb < n_chunks * kWarp; cb += kWarp) {
        acc_t cacc = acc_t(0);
        if (cb < wk1 && cb + kWarp > wk0) {
#pragma unroll 1
          for (int j = 0; j < kWarp; ++j) {
            const int k = cb + ((lane + j) & (kWarp - 1));
            if (k >= k0 && k < k1) {
              // The one pair evaluation of this kernel, for every mode (the mode re-read as in the
              // two-sided loop): each unordered pair is evaluated here once, by the thread of its
              // lower sorted position, and its loss, count and key are taken whichever side is higher.
              const PairEval<acc_t> e = eval_pair<acc_t, kKind>(a.prm, s_p, yt_p, w_p, sh_s[k], sh_yt[k], sh_w[k]);
              const int mode = *static_cast<volatile int*>(&sh_mode);
              if (e.valid) {
                const uint32_t o_q = sh_o[k];
                uint32_t key[kOhemWords];
                ohem_key(e.loss, e.ph ? o_p : o_q, e.ph ? o_q : o_p, key);
                if (mode == kPairwiseHist) {
                  if (hist_match(a.hd, key, words)) atomicAdd(&sh_hist[hist_bin(a.hd, key)], 1ull);
                } else if (mode == kPairwiseSbnz || (ohem_selected(key, words) && e.loss > acc_t(0))) {
                  g += e.ds;
                  cacc += e.dsq;
                  tile_sum += e.loss;
                  tile_cnt += (mode == kPairwiseSelect || e.nz) ? 1 : 0;
                }
              }
            }
            cacc = __shfl_sync(0xffffffffu, cacc, (lane + 1) & (kWarp - 1));  // every lane, every step
          }
        }
        sh_colg[warp * kTile + cb + lane] = cacc;  // cb + lane < n_chunks * 32 <= kTile
      }
      __syncthreads();  // every warp's column sums are in
      // The warps' sums in a fixed order, then one atomicAdd per column and block (the column's
      // item is a row of this block or a later one, whose own threads add to it too).
      if (a.grad != nullptr && a.mode != kPairwiseHist) {
        for (int k = tid; k < cn; k += kThreads) {
          acc_t c = sh_colg[k];
#pragma unroll
          for (int w = 1; w < kWarps; ++w) c += sh_colg[w * kTile + k];
          if (c != acc_t(0)) atomicAdd(&a.grad[base + k], c);
        }
      }
    }
    sh_sum[tid] += static_cast<double>(tile_sum);
    sh_cnt[tid] += tile_cnt;
  }

  if (a.mode == kPairwiseHist) {
    __syncthreads();
    for (int b = tid; b < kBins; b += kThreads) {
      if (sh_hist[b] != 0ull) atomicAdd(&a.hist[b], sh_hist[b]);
    }
    return;
  }
  if (has_row && a.grad != nullptr) {
    if constexpr (kSymmetric) {
      // Other threads and blocks add this item's column shares: grad was zeroed by the binding.
      if (g != acc_t(0)) atomicAdd(&a.grad[row0 + tid], g);
    } else {
      a.grad[row0 + tid] = g;  // the row's whole gradient
    }
  }

  // Block reduction of the sum and the count: shuffles within each warp, then the first warp.
  __syncthreads();
  const int lane = tid % kWarp;
  const int warp = tid / kWarp;
  double sum = warp_sum(sh_sum[tid]);
  long long cnt = warp_sum(sh_cnt[tid]);
  __syncthreads();  // everyone has read its slot
  if (lane == 0) {
    sh_sum[warp] = sum;
    sh_cnt[warp] = cnt;
  }
  __syncthreads();
  if (warp == 0) {
    sum = lane < kWarps ? sh_sum[lane] : 0.0;
    cnt = lane < kWarps ? sh_cnt[lane] : 0;
    sum = warp_sum(sum);
    cnt = warp_sum(cnt);
    if (lane == 0) {
      const int64_t n_blocks = static_cast<int64_t>(gridDim.x) * gridDim.y;
      const int64_t bid = static_cast<int64_t>(blockIdx.y) * gridDim.x + blockIdx.x;
      a.partials[bid] = sum;
      a.partials[n_blocks + bid] = static_cast<double>(cnt);
    }
  }
}

template <typename acc_t, int kKind>
int launch_kind(const KernelArgs<acc_t>& ka, bool symmetric, int32_t num_blocks, int32_t col_splits,
                cudaStream_t stream) {
  const size_t dyn_smem = ka.mode == kPairwiseHist ? kBins * sizeof(unsigned long long) : 0;
  if (symmetric) {
    const dim3 grid(static_cast<unsigned>(num_blocks), static_cast<unsigned>(col_splits));
    launch_kernel(pairwise_kernel<acc_t, kKind, true>, grid, kThreads, dyn_smem, stream, ka);
  } else {
    launch_kernel(pairwise_kernel<acc_t, kKind, false>, static_cast<unsigned>(num_blocks), kThreads, dyn_smem, stream, ka);
  }
  return static_cast<int>(cudaGetLastError());
}

template <typename acc_t>
int launch(const PairwiseLaunchArgs& a, cudaStream_t stream) {
  KernelArgs<acc_t> ka;
  ka.s = static_cast<const acc_t*>(a.scores);
  ka.y = static_cast<const acc_t*>(a.labels);
  ka.w = static_cast<const acc_t*>(a.weight);
  ka.w_numel = a.weight_numel;
  ka.order = a.order;
  ka.seg_lo = a.seg_lo;
  ka.seg_hi = a.seg_hi;
  ka.words = a.words;
  ka.grad = static_cast<acc_t*>(a.grad);
  ka.partials = a.partials;
  ka.hist = a.hist;
  ka.n = a.n;
  ka.prm.kind = a.kind;
  ka.prm.flags = a.flags;
  ka.prm.inv_temperature = static_cast<acc_t>(1.0 / a.temperature);
  ka.prm.margin = static_cast<acc_t>(a.margin);
  ka.prm.hinge_margin = static_cast<acc_t>(a.hinge_margin);
  ka.prm.gamma = static_cast<acc_t>(a.gamma);
  ka.prm.alpha = static_cast<acc_t>(a.alpha);
  ka.mode = a.mode;
  if (a.mode == kPairwiseHist) ka.hd = hist_digit_from_header(a.digit);
  const bool sym = a.symmetric != 0;
  switch (a.kind) {
    case kPairWise:
      return launch_kind<acc_t, kPairWise>(ka, sym, a.num_blocks, a.col_splits, stream);
    case kLogistic:
      return launch_kind<acc_t, kLogistic>(ka, sym, a.num_blocks, a.col_splits, stream);
    case kFocal:
      return launch_kind<acc_t, kFocal>(ka, sym, a.num_blocks, a.col_splits, stream);
    default:
      return launch_kind<acc_t, kHinge>(ka, sym, a.num_blocks, a.col_splits, stream);
  }
}

}  // namespace
}  // namespace pairwise
}  // namespace fusedloss

extern "C" int fusedloss_pairwise_cuda(const PairwiseLaunchArgs* args, cudaStream_t stream) {
  using namespace fusedloss::pairwise;
  if (args == nullptr || args->n < 0) return kPairwiseBadArgs;
  const PairwiseLaunchArgs& a = *args;
  if (a.n == 0) return 0;
  const bool fwd = a.mode == kPairwiseSbnz || a.mode == kPairwiseSelect;
  if (a.num_blocks != fusedloss_pairwise_num_blocks(a.n) || a.col_splits < 1 || a.col_splits > 65535 ||
      (a.symmetric == 0 && a.col_splits != 1) || a.scores == nullptr || a.labels == nullptr ||
      a.order == nullptr || a.seg_lo == nullptr || a.seg_hi == nullptr ||
      (a.weight != nullptr && a.weight_numel != 1 && a.weight_numel != a.n) || a.kind < kPairWise ||
      a.kind > kHinge || !(a.temperature > 0.0) || (a.mode < kPairwiseSbnz || a.mode > kPairwiseHist) ||
      (fwd && a.partials == nullptr) || (a.mode != kPairwiseSbnz && a.words == nullptr) ||
      (a.mode == kPairwiseHist && (a.hist == nullptr || a.digit < 0 || a.digit >= kOhemDigits)) ||
      (a.symmetric != 0 && a.symmetric != 1)) {
    return kPairwiseBadArgs;
  }
  switch (a.dtype) {
    case kPairwiseF32:
      return launch<float>(a, stream);
    case kPairwiseF64:
      return launch<double>(a, stream);
    default:
      return kPairwiseBadDType;
  }
}
