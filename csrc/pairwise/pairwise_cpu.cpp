// CPU kernels of fusedloss::pairwise_fwd and fusedloss::pairwise_ohem_hist (schemas:
// fusedloss/ops/_library.py; per-pair math: pairwise_math.h; semantics: spec sections 1.3, 1.4, 3).
//
// Items come in session-sorted order; [seg_lo[p], seg_hi[p]) is the sorted range of p's session.
// Each pair is evaluated once (symmetric tiles): a session is cut into blocks of kBlock items, and
// the pairs (p, q), p < q in sorted order, are covered by tiles: block I against itself (q > p
// only) and block I against block J > I. For each pair, with yt the transformed labels, the higher
// item i (yt_i > yt_j) gives pair_eval(s_i, s_j, yt_i, yt_j, w_i); its loss and SBNZ count are taken
// once, d loss / d s_p goes to grad[p] and d loss / d s_q to grad[q].
//
// Determinism without atomics or per-tile buffers: tiles run in rounds. Round 0 holds every block's
// diagonal tile; rounds 1.. hold each session's block pairs in round-robin tournament order (the
// circle method), so the tiles of one round touch disjoint blocks and write grad directly. Rounds
// run one after another; within a round, tiles are grouped into chunks of similar cost run with
// at::parallel_for, each chunk writing its double sum and int64 count, summed in chunk order. The
// schedule depends on the sessions only, so results do not depend on the thread count. Extra memory
// is O(B): four padded column arrays and one round's tile list.
//
// OHEM consistency. The histogram passes and the final pass must compute bit-identical losses (the
// key holds the loss's bits). So every pair, in every mode, is evaluated by one loop (eval_body) in
// the same tile: the arguments are selected per lane (p's or q's as the higher item) before one
// pair_eval; that loop is compiled once per (acc_t, kind, flags, gamma, ISA) in a noinline, noclone
// function the modes share; its columns run in blocks of exactly kPad lanes, so GCC emits no scalar
// or narrower epilogue (whose libm / libmvec results could differ in the last bit). Each such function
// contains only vector calls, or (x86-64 baseline, fp64) only scalar ones. The modes then read the
// loop's buffers (loss, d loss / d s_p, d loss / d s_q, flags). Different ISA variants round
// differently, so the passes of one OHEM selection must use one variant (they do within a process
// unless FUSEDLOSS_CPU_ISA changes in between).
//
// SBNZ of float32 PAIR_WISE / PAIRWISE_LOGISTIC runs eval_body's other loop (kKindLean) on
// pairwise_lean_math.h's lean_pair: the math of the CUDA lean kernel (pairwise_sbnz_cuda.cu), in
// base 2 with a polynomial log2(1 + e). SBNZ has no second pass to agree with bit for bit.
//
// Speed. The evaluation loop is specialised at compile time on the kind, the flags pair_eval reads
// and, for focal, gamma (GammaKind), so that GCC if-converts and vectorises it through libmvec (see
// focal_cpu.cpp for the flags and the `simd` declarations); it is compiled for the x86-64 baseline,
// AVX2+FMA and AVX-512 and picked at run time (FUSEDLOSS_CPU_ISA=base|avx2 lowers it). Timings: see
// benchmarks/bench_pairwise.py and the README's CPU table.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/scalar_tensor.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <tuple>
#include <type_traits>
#include <vector>

#include "../common/checks.h"
#include "pairwise_checks.h"
#include "../common/cpu_vector.h"
#include "pairwise_lean_math.h"
#include "pairwise_math.h"

#if defined(FUSEDLOSS_OPENMP_SIMD)
#define FL_PW_SIMD_REDUCE _Pragma("omp simd reduction(+ : g, ls, c)")
#define FL_PW_SIMD _Pragma("omp simd")
#else
#define FL_PW_SIMD_REDUCE
#define FL_PW_SIMD
#endif

namespace fusedloss {
namespace pairwise {
namespace {

// Columns are evaluated in runs whose length is a multiple of kPad (the column arrays carry kPad
// padding entries past B; lanes past the run's end are masked), so that no vector epilogue runs:
// 16 = the widest VF of the evaluation loop (AVX-512 float with uint32 flags).
constexpr int64_t kPad = 16;
// Items per block: a tile is at most kBlock x kBlock pairs, and sums and counts stay in acc_t over
// one row of a tile (a float count is exact up to 2^24).
constexpr int64_t kBlock = 256;
// Work per parallel chunk, in padded pair evaluations (~0.1 ms vectorised), and a row's fixed cost.
constexpr int64_t kChunkCost = int64_t(1) << 16;
constexpr int64_t kRowCost = 32;
constexpr int kHistBins = 2048;

enum Mode : int { kModeSbnz = 0, kModeSelect = 1, kModeHist = 2 };

// eval_body's kKind for the lean SBNZ loop of float32 PAIR_WISE / PAIRWISE_LOGISTIC (not a Kind of
// pairwise_math.h; kFlags then holds the LeanShift).
constexpr int kKindLean = -1;

// Per-column flags of an evaluated pair, from row p's side.
enum PairFlag : uint32_t { kValid = 1u, kPHigher = 2u, kVNonzero = 4u };

// One row p against a run of columns: the input and the output buffers of the evaluation loop.
template <typename acc_t>
struct EvalIO {
  Params<acc_t> prm;
  acc_t s_p, yt_p, w_p;
  const acc_t* s;  // the run's columns; n_pad entries readable
  const acc_t* yt;
  const acc_t* w;
  int64_t n_pad;     // the run's length rounded up to kPad; lanes past the run hold garbage
  acc_t lean_k2, lean_shift2;  // kKindLean only: log2(e) / T and mu log2(e), rounded from double
  acc_t* loss;       // [n_pad] out: the pair's weighted loss
  acc_t* ds_p;       // [n_pad] out: d loss / d s_p (ds_i or ds_j, whichever p is)
  acc_t* ds_q;       // [n_pad] out: d loss / d s_q
  uint32_t* flags;   // [n_pad] out: PairFlag bits
};

template <typename acc_t>
using EvalFn = void (*)(const EvalIO<acc_t>&);

// The runtime parameters with what the template fixes made constant, so that the kind's branches
// in pair_eval fold after inlining: the kind, the flags pair_eval reads (kFlags), and for focal gamma
// (kGamma, a focal::GammaKind). Runtime flags or gamma keep GCC 12 from vectorising the loop (the
// invariant branches are if-converted into masks it cannot handle), hence one loop per combination.
template <typename acc_t, int kKind, int kFlags, int kGamma>
FL_ALWAYS_INLINE Params<acc_t> specialise(const Params<acc_t>& rt) {
  Params<acc_t> p = rt;
  p.kind = kKind;
  p.flags = kFlags;
  if (kKind == kFocal) {
    if (kGamma == focal::kGammaZero) p.gamma = acc_t(0);
    if (kGamma == focal::kGammaOne) p.gamma = acc_t(1);
    if (kGamma == focal::kGammaTwo) p.gamma = acc_t(2);
#if defined(__GNUC__)
    // pick_focal sends only other gammas here: the hint removes modulating_pow's runtime tests of
    // gamma, which kept GCC 12 from vectorising the loop.
    if (kGamma == focal::kGammaGeneral && (p.gamma == acc_t(0) || p.gamma == acc_t(1) || p.gamma == acc_t(2))) {
      __builtin_unreachable();
    }
#endif
  }
  return p;
}

// The one loop that evaluates pairs. Whatever the mode (SBNZ, OHEM histogram, OHEM selection) and
// whichever side of a pair the row is, a pair is evaluated by this code: the arguments are selected
// per lane (p's or q's as the higher item i) before one pair_eval, so both sides of a pair, and the
// histogram and the final pass, get bit-identical losses, hence identical OHEM keys.
template <typename acc_t, int kKind, int kFlags, int kGamma>
FL_ALWAYS_INLINE void eval_body(const EvalIO<acc_t>& io) {
  const acc_t s_p = io.s_p, yt_p = io.yt_p, w_p = io.w_p;
  const acc_t* __restrict s = io.s;
  const acc_t* __restrict yt = io.yt;
  const acc_t* __restrict w = io.w;
  acc_t* __restrict loss = io.loss;
  acc_t* __restrict ds_p = io.ds_p;
  acc_t* __restrict ds_q = io.ds_q;
  uint32_t* __restrict flags = io.flags;
  if constexpr (kKind == kKindLean) {
    // SBNZ of float32 PAIR_WISE / PAIRWISE_LOGISTIC (kFlags: the LeanShift): pairwise_lean_math.h's
    // lean_pair, the CUDA lean kernel's math, instead of pair_eval (SBNZ has no second pass whose
    // losses must match bit for bit). The same output buffers.
    static_assert(std::is_same_v<acc_t, float>, "the lean loop is float32 only");
    const float k2 = io.lean_k2, shift2 = io.lean_shift2, it = io.prm.inv_temperature;
    const float ln2 = static_cast<float>(kLeanLn2), l2e = static_cast<float>(kLeanLog2e);
    const float a_p = s_p * k2, yl_p = yt_p * l2e;
    for (int64_t b = 0; b < io.n_pad; b += kPad) {
      FL_PW_SIMD
      for (int64_t k = b; k < b + kPad; ++k) {
        const float ytq = yt[k];
        const LeanPair o = lean_pair<kFlags, true, false>(true, a_p, yt_p, yl_p, s[k] * k2, ytq, ytq * l2e, shift2);
        const bool ph = yt_p > ytq, valid = ph || ytq > yt_p;  // = o.sgn < 0, o.sgn != 0
        const float wi = ph ? w_p : w[k];
        const float g = o.sgn * wi * o.sig * it;
        loss[k] = wi * o.sp2 * ln2;
        ds_p[k] = g;
        ds_q[k] = -g;
        flags[k] = uint32_t(valid) * uint32_t(kValid) | uint32_t(ph) * uint32_t(kPHigher) |
                   uint32_t(wi != 0.0f) * uint32_t(kVNonzero);
      }
    }
    return;
  }
  const Params<acc_t> prm = specialise<acc_t, kKind, kFlags, kGamma>(io.prm);
  // Blocks of exactly kPad lanes: the inner loop's trip count is a compile-time multiple of every VF
  // (<= 16), so GCC emits no epilogue at all and every lane runs the same vector code. (No `k < n`
  // test either: GCC would split the loop there; lanes past the run are ignored by the callers.)
  for (int64_t b = 0; b < io.n_pad; b += kPad) {
    FL_PW_SIMD
    for (int64_t k = b; k < b + kPad; ++k) {
      const acc_t ytq = yt[k], sq = s[k], wq = w[k];
      const bool ph = yt_p > ytq;  // p is the higher item i (else q is, or neither)
      // Neither (equal or NaN labels): o.valid is false, pair_eval tests yt_i > yt_j.
      const PairOut<acc_t> o = pair_eval<acc_t>(ph ? s_p : sq, ph ? sq : s_p, ph ? yt_p : ytq,
                                                ph ? ytq : yt_p, ph ? w_p : wq, prm);
      loss[k] = o.loss;
      ds_p[k] = ph ? o.ds_i : o.ds_j;
      ds_q[k] = ph ? o.ds_j : o.ds_i;
      flags[k] = (o.valid ? uint32_t(kValid) : 0u) | (ph ? uint32_t(kPHigher) : 0u) |
                 (o.v != acc_t(0) ? uint32_t(kVNonzero) : 0u);
    }
  }
}

// One compiled copy per (acc_t, kind, flags, gamma, ISA), called by every mode: noinline and noclone
// keep GCC from inlining or specialising it into callers, which could round differently (FMA
// contraction, scalar vs vector libm); flatten inlines pair_eval and its helpers into the loop, which
// needs that to vectorise. For hinge with use_exponent, GCC 12's PRE + jump threading turn
// `(pos && inside) ? ex : 0` into a select of masks its vectoriser rejects; without those two passes
// (this function only) the loop vectorises.
#if defined(__GNUC__) && !defined(__clang__)
#define FL_PW_EVAL_ATTRS __attribute__((noinline, noclone, flatten))
#define FL_PW_EVAL_ATTRS_HINGE_EXP \
  __attribute__((noinline, noclone, flatten, optimize("no-tree-pre", "no-thread-jumps")))
#elif defined(__GNUC__)
#define FL_PW_EVAL_ATTRS __attribute__((noinline, flatten))
#define FL_PW_EVAL_ATTRS_HINGE_EXP FL_PW_EVAL_ATTRS
#else
#define FL_PW_EVAL_ATTRS
#define FL_PW_EVAL_ATTRS_HINGE_EXP
#endif

template <typename acc_t, int kKind, int kFlags, int kGamma>
FL_PW_EVAL_ATTRS void eval_base(const EvalIO<acc_t>& io) {
  eval_body<acc_t, kKind, kFlags, kGamma>(io);
}

#if FL_CPU_MULTIVERSION
template <typename acc_t, int kKind, int kFlags, int kGamma>
FL_PW_EVAL_ATTRS FL_TARGET_AVX2 void eval_avx2(const EvalIO<acc_t>& io) {
  eval_body<acc_t, kKind, kFlags, kGamma>(io);
}

template <typename acc_t, int kKind, int kFlags, int kGamma>
FL_PW_EVAL_ATTRS FL_TARGET_AVX512 void eval_avx512(const EvalIO<acc_t>& io) {
  eval_body<acc_t, kKind, kFlags, kGamma>(io);
}
#endif

// Hinge with use_exponent (kFlags has kUseExponent): the same loop under FL_PW_EVAL_ATTRS_HINGE_EXP.
template <typename acc_t, int kFlags>
FL_PW_EVAL_ATTRS_HINGE_EXP void eval_hexp_base(const EvalIO<acc_t>& io) {
  eval_body<acc_t, kHinge, kFlags, 0>(io);
}

#if FL_CPU_MULTIVERSION
template <typename acc_t, int kFlags>
FL_PW_EVAL_ATTRS_HINGE_EXP FL_TARGET_AVX2 void eval_hexp_avx2(const EvalIO<acc_t>& io) {
  eval_body<acc_t, kHinge, kFlags, 0>(io);
}

template <typename acc_t, int kFlags>
FL_PW_EVAL_ATTRS_HINGE_EXP FL_TARGET_AVX512 void eval_hexp_avx512(const EvalIO<acc_t>& io) {
  eval_body<acc_t, kHinge, kFlags, 0>(io);
}
#endif

template <typename acc_t, int kKind, int kFlags, int kGamma>
EvalFn<acc_t> pick_isa(Isa isa) {
  constexpr bool kHexp = kKind == kHinge && (kFlags & kUseExponent) != 0;
#if FL_CPU_MULTIVERSION
  if (isa == Isa::kAvx512) {
    return kHexp ? &eval_hexp_avx512<acc_t, kFlags> : &eval_avx512<acc_t, kKind, kFlags, kGamma>;
  }
  if (isa == Isa::kAvx2) return kHexp ? &eval_hexp_avx2<acc_t, kFlags> : &eval_avx2<acc_t, kKind, kFlags, kGamma>;
#endif
  (void)isa;
  return kHexp ? &eval_hexp_base<acc_t, kFlags> : &eval_base<acc_t, kKind, kFlags, kGamma>;
}

template <typename acc_t, int kFlags>
EvalFn<acc_t> pick_focal(acc_t gamma, Isa isa) {
  // Compared in acc_t: the general loop assumes its (acc_t) gamma is none of 0, 1, 2.
  if (gamma == acc_t(0)) return pick_isa<acc_t, kFocal, kFlags, focal::kGammaZero>(isa);
  if (gamma == acc_t(1)) return pick_isa<acc_t, kFocal, kFlags, focal::kGammaOne>(isa);
  if (gamma == acc_t(2)) return pick_isa<acc_t, kFocal, kFlags, focal::kGammaTwo>(isa);
  return pick_isa<acc_t, kFocal, kFlags, focal::kGammaGeneral>(isa);
}

// Per acc type and ISA: pair_wise 1 + logistic 3 (no shift, label margin, hinge margin) + focal
// 2 (hinge-margin filter) x 4 (gamma) + hinge 4 (use_label_margin x use_exponent) = 16 loops; 96 in all.
template <typename acc_t>
EvalFn<acc_t> pick_eval_fn(const Params<acc_t>& prm, Isa isa) {
  const int64_t f = prm.flags;
  switch (prm.kind) {
    case kPairWise:
      return pick_isa<acc_t, kPairWise, 0, 0>(isa);
    case kLogistic:
      if (f & kUseLabelMargin) return pick_isa<acc_t, kLogistic, kUseLabelMargin, 0>(isa);  // overrides
      if (f & kHasHingeMargin) return pick_isa<acc_t, kLogistic, kHasHingeMargin, 0>(isa);
      return pick_isa<acc_t, kLogistic, 0, 0>(isa);
    case kFocal:
      return (f & kHasHingeMargin) ? pick_focal<acc_t, kHasHingeMargin>(prm.gamma, isa)
                                   : pick_focal<acc_t, 0>(prm.gamma, isa);
    default: {  // kHinge; label_is_logits only matters to transform_label
      const bool ulm = (f & kUseLabelMargin) != 0, ue = (f & kUseExponent) != 0;
      if (ue) {
        return ulm ? pick_isa<acc_t, kHinge, kUseLabelMargin | kUseExponent, 0>(isa)
                   : pick_isa<acc_t, kHinge, kUseExponent, 0>(isa);
      }
      return ulm ? pick_isa<acc_t, kHinge, kUseLabelMargin, 0>(isa) : pick_isa<acc_t, kHinge, 0, 0>(isa);
    }
  }
}

// The lean SBNZ loop (kKindLean), its LeanShift as kFlags.
inline EvalFn<float> pick_lean_fn(int shift, Isa isa) {
  if (shift == kLeanShiftConst) return pick_isa<float, kKindLean, kLeanShiftConst, 0>(isa);
  if (shift == kLeanShiftLabel) return pick_isa<float, kKindLean, kLeanShiftLabel, 0>(isa);
  return pick_isa<float, kKindLean, kLeanShiftNone, 0>(isa);
}

// A tile: rows [r0, r1) against columns [c0, c1) of one session, disjoint blocks or (r0 == c0) a
// block against itself, where row p takes the columns q > p.
struct Tile {
  int64_t r0, r1, c0, c1;
};

template <typename acc_t>
struct RunIO {
  EvalFn<acc_t> eval;
  Params<acc_t> prm;
  // Column arrays in sorted order, each with kPad padding entries past B.
  const acc_t* s;
  const acc_t* yt;      // transform_label(labels)
  const acc_t* w;       // weight expanded to [B] (1s when absent)
  const uint32_t* ord;  // order as uint32 (select and hist modes), else nullptr
  int64_t words[kOhemWords];  // select: K*'s words; hist: the decided prefix
  int digit;                  // hist
  acc_t* grad;                // [B], accumulated into, or nullptr
  acc_t lean_k2, lean_shift2;  // kKindLean only (EvalIO)
};

// The tiles [t0, t1): per row, the evaluation loop over the row's columns, then the mode's pass over
// its buffers. Adds into grad (rows and columns), *sum, *cnt and hist (hist mode).
template <typename acc_t, int kMode>
void tiles_run(const RunIO<acc_t>& io, const Tile* t0, const Tile* t1, double* sum_out, int64_t* cnt_out,
               int64_t* hist) {
  alignas(64) acc_t loss_buf[kBlock];
  alignas(64) acc_t dsp_buf[kBlock];
  alignas(64) acc_t dsq_buf[kBlock];
  alignas(64) uint32_t flag_buf[kBlock];
  alignas(64) acc_t sink_buf[kBlock];  // column gradients when grad is not wanted
  EvalIO<acc_t> ev;
  ev.prm = io.prm;
  ev.lean_k2 = io.lean_k2;
  ev.lean_shift2 = io.lean_shift2;
  ev.loss = loss_buf;
  ev.ds_p = dsp_buf;
  ev.ds_q = dsq_buf;
  ev.flags = flag_buf;
  double sum = 0.0;
  int64_t cnt = 0;
  for (const Tile* t = t0; t < t1; ++t) {
    const bool diag = t->r0 == t->c0;
    for (int64_t p = t->r0; p < t->r1; ++p) {
      const int64_t c0 = diag ? p + 1 : t->c0;
      const int64_t n = t->c1 - c0;
      if (n <= 0) continue;
      ev.s_p = io.s[p];
      ev.yt_p = io.yt[p];
      ev.w_p = io.w[p];
      ev.s = io.s + c0;
      ev.yt = io.yt + c0;
      ev.w = io.w + c0;
      ev.n_pad = (n + kPad - 1) / kPad * kPad;
      io.eval(ev);
      const acc_t* __restrict loss = loss_buf;
      const acc_t* __restrict dsp = dsp_buf;
      const acc_t* __restrict dsq = dsq_buf;
      const uint32_t* __restrict fl = flag_buf;
      const uint32_t o_p = io.ord != nullptr ? io.ord[p] : 0u;
      if constexpr (kMode == kModeHist) {
        // The keys of the valid pairs matching the decided prefix.
        const uint32_t* ord = io.ord + c0;
        for (int64_t k = 0; k < n; ++k) {
          const uint32_t f = fl[k];
          if ((f & kValid) == 0u) continue;
          const bool ph = (f & kPHigher) != 0u;
          uint32_t key[kOhemWords];
          ohem_key(loss[k], ph ? o_p : ord[k], ph ? ord[k] : o_p, key);
          if (ohem_prefix_match(key, io.words, io.digit)) ++hist[ohem_digit(key, io.digit)];
        }
        continue;
      }
      acc_t g = 0, ls = 0, c = 0;
      acc_t* __restrict gq = io.grad != nullptr ? io.grad + c0 : sink_buf;
      if constexpr (kMode == kModeSbnz) {
        // Every valid pair contributes; the count is of those with v != 0 (SBNZ).
        FL_PW_SIMD_REDUCE
        for (int64_t k = 0; k < n; ++k) {
          const uint32_t f = fl[k];
          const bool valid = (f & kValid) != 0, nz = (f & kVNonzero) != 0;
          g += valid ? dsp[k] : acc_t(0);
          gq[k] += valid ? dsq[k] : acc_t(0);
          ls += valid ? loss[k] : acc_t(0);
          c += (valid && nz) ? acc_t(1) : acc_t(0);
        }
      } else {
        // OHEM: the selected pairs (key >= K*) with a positive loss; the key is the one the
        // histogram passes counted (same loss bits, same indices).
        const uint32_t* __restrict ord = io.ord + c0;
        const int64_t* sel = io.words;
        FL_PW_SIMD_REDUCE
        for (int64_t k = 0; k < n; ++k) {
          const uint32_t f = fl[k];
          const bool valid = (f & kValid) != 0, ph = (f & kPHigher) != 0;
          const uint32_t o_q = ord[k];
          uint32_t key[kOhemWords];
          ohem_key(loss[k], ph ? o_p : o_q, ph ? o_q : o_p, key);
          const bool contrib = valid && ohem_selected(key, sel) && loss[k] > acc_t(0);
          g += contrib ? dsp[k] : acc_t(0);
          gq[k] += contrib ? dsq[k] : acc_t(0);
          ls += contrib ? loss[k] : acc_t(0);
          c += contrib ? acc_t(1) : acc_t(0);
        }
      }
      if (io.grad != nullptr) io.grad[p] += g;
      sum += static_cast<double>(ls);
      cnt += static_cast<int64_t>(c);
    }
  }
  *sum_out = sum;
  *cnt_out = cnt;
}

// transform_label out of line: every label goes through the same scalar code, so equal labels get
// equal transformed values (a vector body and its scalar epilogue can differ in the last bit of
// the hinge's sigmoid, which would make pairs of equal labels valid).
template <typename acc_t>
FL_NOINLINE acc_t transform_label_scalar(acc_t y, const Params<acc_t>& prm) {
  return transform_label<acc_t>(y, prm);
}

struct Prepared {
  at::Tensor cols;  // [3, n + kPad] acc_t: s, yt, w
  at::Tensor ord;   // [n + kPad] int32 (uint32 bits), or undefined
  std::vector<std::pair<int64_t, int64_t>> sessions;  // sorted ranges [a, b)
};

// The padded column arrays (scores, transformed labels, expanded weights, uint32 order) and the
// sessions; checks the session ranges and the order values on the way.
template <typename acc_t>
Prepared prepare(const at::Tensor& scores, const at::Tensor& labels, const at::Tensor& weight,
                 const at::Tensor& order, const at::Tensor& seg_lo, const at::Tensor& seg_hi,
                 const Params<acc_t>& prm, bool need_order) {
  const int64_t n = scores.numel();
  Prepared out;
  out.cols = at::empty({3, n + kPad}, scores.options());
  acc_t* s = out.cols.data_ptr<acc_t>();
  acc_t* yt = s + (n + kPad);
  acc_t* w = yt + (n + kPad);
  const acc_t* sc = scores.data_ptr<acc_t>();
  const acc_t* lb = labels.data_ptr<acc_t>();
  const acc_t* wt = weight.defined() ? weight.data_ptr<acc_t>() : nullptr;
  const bool w_full = wt != nullptr && weight.numel() == n && n != 1;
  const acc_t w_one = wt != nullptr ? wt[0] : acc_t(1);
  const int64_t* ord = order.data_ptr<int64_t>();
  uint32_t* ord32 = nullptr;
  if (need_order) {
    out.ord = at::empty({n + kPad}, order.options().dtype(at::kInt));
    ord32 = reinterpret_cast<uint32_t*>(out.ord.data_ptr<int32_t>());
  }
  at::parallel_for(0, n, 16384, [&](int64_t b, int64_t e) {
    for (int64_t q = b; q < e; ++q) {
      s[q] = sc[q];
      yt[q] = transform_label_scalar<acc_t>(lb[q], prm);
      w[q] = w_full ? wt[q] : w_one;
      if (ord32 != nullptr) ord32[q] = static_cast<uint32_t>(ord[q]);
    }
  });
  for (int64_t q = n; q < n + kPad; ++q) {  // padding lanes are masked; any finite values do
    s[q] = acc_t(0);
    yt[q] = acc_t(0);
    w[q] = acc_t(0);
    if (ord32 != nullptr) ord32[q] = 0u;
  }

  // Checks and sessions (serial: O(n), small next to the O(n * session) pair work). Sessions must
  // tile [0, n): each item's range is its run's, as session_layout makes them.
  const int64_t* lo = seg_lo.data_ptr<int64_t>();
  const int64_t* hi = seg_hi.data_ptr<int64_t>();
  for (int64_t p = 0; p < n; ++p) {
    TORCH_CHECK(lo[p] >= 0 && lo[p] <= p && p < hi[p] && hi[p] <= n, "seg_lo/seg_hi: row ", p,
                " has session range [", lo[p], ", ", hi[p], "), which must contain it and lie in [0, ", n,
                ")");
    const bool starts = lo[p] == p;
    TORCH_CHECK(starts ? (p == 0 || hi[p - 1] == p) : (lo[p] == lo[p - 1] && hi[p] == hi[p - 1]),
                "seg_lo/seg_hi: row ", p, "'s range [", lo[p], ", ", hi[p],
                ") is not the range of a run of consecutive items (every item of a session must "
                "share it)");
    TORCH_CHECK(!need_order || (ord[p] >= 0 && ord[p] <= int64_t(UINT32_MAX)), "order[", p, "] = ", ord[p],
                " must be in [0, 2^32)");
    if (starts) out.sessions.emplace_back(p, hi[p]);
  }
  return out;
}

// Cost of a tile in padded pair evaluations plus per-row overheads (for chunking).
inline int64_t tile_cost(const Tile& t) {
  const int64_t rows = t.r1 - t.r0;
  if (t.r0 != t.c0) return rows * ((t.c1 - t.c0 + kPad - 1) / kPad * kPad + kRowCost);
  return rows * (rows / 2 + kPad / 2 + kRowCost);
}

// The tiles of round `round` (see the file comment): round 0 the diagonal tiles of every block,
// round r >= 1 round r - 1 of each session's round-robin tournament between its blocks. `big`
// lists the sessions with at least two blocks, by block count, largest first.
void round_tiles(const std::vector<std::pair<int64_t, int64_t>>& sessions, const std::vector<size_t>& big,
                 int64_t round, std::vector<Tile>& out) {
  out.clear();
  auto block = [](int64_t a, int64_t b, int64_t i, int64_t* lo, int64_t* hi) {
    *lo = a + i * kBlock;
    *hi = std::min(b, *lo + kBlock);
  };
  if (round == 0) {
    for (const auto& [a, b] : sessions) {
      for (int64_t lo = a; lo < b; lo += kBlock) {
        const int64_t hi = std::min(b, lo + kBlock);
        if (hi - lo >= 2) out.push_back({lo, hi, lo, hi});
      }
    }
    return;
  }
  const int64_t r = round - 1;
  for (const size_t si : big) {
    const auto [a, b] = sessions[si];
    const int64_t nb = (b - a + kBlock - 1) / kBlock;
    const int64_t teams = nb + (nb & 1);  // odd: one dummy team, whose matches are byes
    if (r >= teams - 1) break;            // `big` is by block count: the rest have finished
    auto add = [&](int64_t x, int64_t y) {
      if (x >= nb || y >= nb) return;
      if (x > y) std::swap(x, y);
      Tile t;
      block(a, b, x, &t.r0, &t.r1);
      block(a, b, y, &t.c0, &t.c1);
      out.push_back(t);
    };
    add(teams - 1, r);
    for (int64_t k = 1; k < teams / 2; ++k) add((r + k) % (teams - 1), (r - k + teams - 1) % (teams - 1));
  }
}

struct RunResult {
  double sum = 0.0;
  int64_t cnt = 0;
};

template <typename acc_t>
RunResult run(const at::Tensor& scores, const at::Tensor& labels, const at::Tensor& weight,
              const at::Tensor& order, const at::Tensor& seg_lo, const at::Tensor& seg_hi, int64_t kind,
              int64_t flags, double temperature, double margin, double hinge_margin, double gamma,
              double alpha, int mode, const int64_t words[kOhemWords], int digit, acc_t* grad, int64_t* hist) {
  Params<acc_t> prm;
  prm.kind = kind;
  prm.flags = flags;
  prm.inv_temperature = static_cast<acc_t>(1.0 / temperature);
  prm.margin = static_cast<acc_t>(margin);
  prm.hinge_margin = static_cast<acc_t>(hinge_margin);
  prm.gamma = static_cast<acc_t>(gamma);
  prm.alpha = static_cast<acc_t>(alpha);
  const bool need_order = mode != kModeSbnz;
  const Prepared prep = prepare<acc_t>(scores, labels, weight, order, seg_lo, seg_hi, prm, need_order);
  const int64_t n = scores.numel();
  RunIO<acc_t> io;
  io.eval = pick_eval_fn<acc_t>(prm, cpu_isa());
  io.lean_k2 = acc_t(0);
  io.lean_shift2 = acc_t(0);
  if constexpr (std::is_same_v<acc_t, float>) {
    if (mode == kModeSbnz && (kind == kPairWise || kind == kLogistic)) {
      double mu = 0.0;
      const int shift = lean_shift(kind, flags, margin, hinge_margin, &mu);
      io.eval = pick_lean_fn(shift, cpu_isa());
      io.lean_k2 = static_cast<float>(1.0 / temperature * kLeanLog2e);
      io.lean_shift2 = static_cast<float>(mu * kLeanLog2e);
    }
  }
  io.prm = prm;
  io.s = prep.cols.data_ptr<acc_t>();
  io.yt = io.s + (n + kPad);
  io.w = io.s + 2 * (n + kPad);
  io.ord = prep.ord.defined() ? reinterpret_cast<const uint32_t*>(prep.ord.data_ptr<int32_t>()) : nullptr;
  for (int i = 0; i < kOhemWords; ++i) io.words[i] = words[i];
  io.digit = digit;
  io.grad = grad;

  std::vector<size_t> big;
  int64_t rounds = 1;
  for (size_t i = 0; i < prep.sessions.size(); ++i) {
    const int64_t nb = (prep.sessions[i].second - prep.sessions[i].first + kBlock - 1) / kBlock;
    if (nb < 2) continue;
    big.push_back(i);
    rounds = std::max(rounds, 1 + nb + (nb & 1) - 1);
  }
  std::stable_sort(big.begin(), big.end(), [&](size_t x, size_t y) {
    return prep.sessions[x].second - prep.sessions[x].first > prep.sessions[y].second - prep.sessions[y].first;
  });

  RunResult r;
  std::mutex hist_mutex;
  std::vector<Tile> tiles;
  std::vector<int64_t> bounds;  // chunk c = tiles [bounds[c], bounds[c + 1])
  std::vector<double> chunk_sum;
  std::vector<int64_t> chunk_cnt;
  for (int64_t round = 0; round < rounds; ++round) {
    round_tiles(prep.sessions, big, round, tiles);
    if (tiles.empty()) continue;
    bounds.assign(1, 0);
    int64_t cost = 0;
    for (size_t t = 0; t < tiles.size(); ++t) {
      cost += tile_cost(tiles[t]);
      if (cost >= kChunkCost || t + 1 == tiles.size()) {
        bounds.push_back(static_cast<int64_t>(t) + 1);
        cost = 0;
      }
    }
    const int64_t chunks = static_cast<int64_t>(bounds.size()) - 1;
    chunk_sum.assign(static_cast<size_t>(chunks), 0.0);
    chunk_cnt.assign(static_cast<size_t>(chunks), 0);
    at::parallel_for(0, chunks, 1, [&](int64_t cb, int64_t ce) {
      std::vector<int64_t> local(mode == kModeHist ? kHistBins : 0, 0);
      for (int64_t c = cb; c < ce; ++c) {
        const Tile* t0 = tiles.data() + bounds[static_cast<size_t>(c)];
        const Tile* t1 = tiles.data() + bounds[static_cast<size_t>(c) + 1];
        double* sum = &chunk_sum[static_cast<size_t>(c)];
        int64_t* cnt = &chunk_cnt[static_cast<size_t>(c)];
        if (mode == kModeHist) {
          tiles_run<acc_t, kModeHist>(io, t0, t1, sum, cnt, local.data());
        } else if (mode == kModeSelect) {
          tiles_run<acc_t, kModeSelect>(io, t0, t1, sum, cnt, nullptr);
        } else {
          tiles_run<acc_t, kModeSbnz>(io, t0, t1, sum, cnt, nullptr);
        }
      }
      if (mode == kModeHist) {
        const std::lock_guard<std::mutex> lock(hist_mutex);
        for (int b = 0; b < kHistBins; ++b) hist[b] += local[static_cast<size_t>(b)];
      }
    });
    for (int64_t c = 0; c < chunks; ++c) {
      r.sum += chunk_sum[static_cast<size_t>(c)];
      r.cnt += chunk_cnt[static_cast<size_t>(c)];
    }
  }
  return r;
}

// Shared argument checks of both ops (the Python layer has already validated; second line).
void check_inputs(const at::Tensor& scores, const at::Tensor& labels, const std::optional<at::Tensor>& weight,
                  const at::Tensor& order, const at::Tensor& seg_lo, const at::Tensor& seg_hi, int64_t kind,
                  int64_t flags, double temperature, double gamma, double alpha) {
  CHECK_CPU(scores);
  check_pairwise_args(scores, labels, weight, order, seg_lo, seg_hi, kind, flags, temperature, gamma, alpha);
}

at::Tensor defined_or_empty(const std::optional<at::Tensor>& t) {
  return t.has_value() && t->defined() ? *t : at::Tensor();
}

// The key words and the flag word of an int64 [kOhemWords + 1] select/state tensor (CPU: read
// directly).
void read_words(const at::Tensor& t, const at::Tensor& scores, const char* name, int64_t out[kOhemWords + 1]) {
  TORCH_CHECK(t.device() == scores.device(), name, " must be on ", scores.device(), ", got ", t.device());
  TORCH_CHECK(t.scalar_type() == at::kLong && t.numel() == kOhemWords + 1, name, " must be int64 with ",
              kOhemWords + 1, " elements, got ", t.scalar_type(), " ", t.sizes());
  const at::Tensor c = t.contiguous();
  const int64_t* p = c.data_ptr<int64_t>();
  for (int i = 0; i <= kOhemWords; ++i) out[i] = p[i];
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> pairwise_fwd_cpu(
    const at::Tensor& scores, const at::Tensor& labels, const std::optional<at::Tensor>& weight,
    const at::Tensor& order, const at::Tensor& seg_lo, const at::Tensor& seg_hi, int64_t kind, int64_t flags,
    double temperature, double margin, double hinge_margin, double gamma, double alpha,
    const std::optional<at::Tensor>& select, bool compute_grad) {
  check_inputs(scores, labels, weight, order, seg_lo, seg_hi, kind, flags, temperature, gamma, alpha);
  const int64_t n = scores.numel();
  const bool has_select = select.has_value() && select->defined();
  int64_t words[kOhemWords + 1] = {0, 0, 0, 0, 0};
  if (has_select) read_words(*select, scores, "select", words);
  const bool enabled = !has_select || words[kOhemWords] != 0;
  at::Tensor grad = compute_grad ? at::zeros({n}, scores.options()) : scores.new_empty({0});
  RunResult r;
  if (n > 0 && enabled) {
    const at::Tensor w = defined_or_empty(weight);
    const int mode = has_select ? kModeSelect : kModeSbnz;
    if (scores.scalar_type() == at::kDouble) {
      r = run<double>(scores, labels, w, order, seg_lo, seg_hi, kind, flags, temperature, margin, hinge_margin,
                      gamma, alpha, mode, words, 0, compute_grad ? grad.data_ptr<double>() : nullptr, nullptr);
    } else {
      r = run<float>(scores, labels, w, order, seg_lo, seg_hi, kind, flags, temperature, margin, hinge_margin,
                     gamma, alpha, mode, words, 0, compute_grad ? grad.data_ptr<float>() : nullptr, nullptr);
    }
  }
  const double denom = static_cast<double>(r.cnt);
  double value;
  if (has_select) {
    value = r.sum / denom;  // OHEM: the mean of the survivors; 0 / 0 = NaN when there are none
  } else {
    value = r.cnt > 0 ? r.sum / denom : 0.0;  // SBNZ: 0 without nonzero-weight pairs
  }
  const double scale = r.cnt > 0 ? 1.0 / denom : 0.0;
  return {at::scalar_tensor(value, scores.options()), grad, at::scalar_tensor(scale, scores.options())};
}

at::Tensor pairwise_ohem_hist_cpu(const at::Tensor& scores, const at::Tensor& labels,
                                  const std::optional<at::Tensor>& weight, const at::Tensor& order,
                                  const at::Tensor& seg_lo, const at::Tensor& seg_hi, int64_t kind, int64_t flags,
                                  double temperature, double margin, double hinge_margin, double gamma,
                                  double alpha, const at::Tensor& state, int64_t digit) {
  check_inputs(scores, labels, weight, order, seg_lo, seg_hi, kind, flags, temperature, gamma, alpha);
  CHECK_ARG(digit >= 0 && digit < kOhemDigits, "digit must be in [0, ", kOhemDigits, "), got ", digit);
  int64_t words[kOhemWords + 1];
  read_words(state, scores, "state", words);
  at::Tensor hist = at::zeros({kHistBins}, scores.options().dtype(at::kLong));
  const int64_t n = scores.numel();
  if (n == 0 || words[kOhemWords] != 0) return hist;  // done: K* is decided
  const at::Tensor w = defined_or_empty(weight);
  int64_t* h = hist.data_ptr<int64_t>();
  const int d = static_cast<int>(digit);
  if (scores.scalar_type() == at::kDouble) {
    run<double>(scores, labels, w, order, seg_lo, seg_hi, kind, flags, temperature, margin, hinge_margin, gamma,
                alpha, kModeHist, words, d, nullptr, h);
  } else {
    run<float>(scores, labels, w, order, seg_lo, seg_hi, kind, flags, temperature, margin, hinge_margin, gamma,
               alpha, kModeHist, words, d, nullptr, h);
  }
  return hist;
}

}  // namespace
}  // namespace pairwise
}  // namespace fusedloss

TORCH_LIBRARY_IMPL(fusedloss, CPU, m) {
  m.impl("pairwise_fwd", TORCH_FN(fusedloss::pairwise::pairwise_fwd_cpu));
  m.impl("pairwise_ohem_hist", TORCH_FN(fusedloss::pairwise::pairwise_ohem_hist_cpu));
}
