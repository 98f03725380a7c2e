// CPU kernels of fusedloss::pairwise_fwd and fusedloss::pairwise_ohem_hist (schemas:
// fusedloss/ops/_library.py; per-pair math: pairwise_math.h; semantics: spec sections 1.3, 1.4, 3).
//
// Items come in session-sorted order; [seg_lo[p], seg_hi[p]) is the sorted range of p's session.
// Row p walks its whole session. For each q there, with yt the transformed labels:
//   yt_p > yt_q: pair (i, j) = (p, q), evaluated here as pair_eval(s_p, s_q, yt_p, yt_q, w_p): the
//                pair's loss, SBNZ count and OHEM histogram are taken here (its higher side), and
//                d loss / d s_p = ds_i goes to grad[p];
//   yt_q > yt_p: pair (q, p): the same call with the arguments of q's row, pair_eval(s_q, s_p, ...,
//                w_q), only for ds_j (into grad[p]) and, under OHEM, for the pair's key.
// So every row computes its whole gradient itself: no scatter, no atomics, deterministic, O(B)
// extra memory, and each pair is evaluated twice (once from each side).
//
// OHEM consistency. The two sides of a pair, and the histogram passes and the final pass, must
// compute bit-identical losses (the key is the loss's float32 bits). So every pair, in every mode and
// from either side, is evaluated by one loop (eval_body): the arguments are selected per lane (p's or
// q's as the higher item) before one pair_eval; that loop is compiled once per (acc_t, kind, flags,
// gamma, ISA) in a noinline, noclone function the modes share; its columns run in blocks of exactly
// kPad lanes, so GCC emits no scalar or narrower epilogue (whose libm / libmvec results could differ
// in the last bit). Each such function contains only vector calls, or (x86-64 baseline, fp64) only
// scalar ones. The modes then read the loop's buffers (loss, d loss / d s_p, flags). Different ISA
// variants round differently, so the passes of one OHEM selection must use one variant (they do within
// a process unless FUSEDLOSS_CPU_ISA changes in between).
//
// Speed. Rows are split into chunks of similar cost (cost of a row = its padded session length plus a
// per-row overhead), run with at::parallel_for; each chunk writes its double sum and int64 count
// (summed afterwards in chunk order: the result does not depend on the thread count) and the
// histogram is merged per task. The evaluation loop is specialised at compile time on the kind, the
// flags pair_eval reads and, for focal, gamma (GammaKind), so that GCC if-converts and vectorises it
// through libmvec (see focal_cpu.cpp for the flags and the `simd` declarations); it is compiled for
// the x86-64 baseline, AVX2+FMA and AVX-512 and picked at run time (FUSEDLOSS_CPU_ISA=base|avx2
// lowers it). Measured on a 2-core Xeon (Sapphire Rapids, KVM guest, shared with other jobs), torch
// 2.13 CPU, 2 threads, B = 262,144 in 2,597 sessions of 50-150 items, 5 label grades (28.7M row x
// column evaluations, 11.4M valid pairs), one call, best of 3: SBNZ loss + grad 57 (hinge) to 103
// (hinge with use_exponent) ms in fp32, 70 to 156 ms in fp64 (focal with gamma not in {0, 1, 2}:
// 180 / 250 ms); one histogram pass about the same; a whole OHEM selection (9 histogram passes + the
// final pass) 0.57-1.0 s in fp32, 0.72-1.5 s in fp64 (general-gamma focal 1.5 / 2.2 s). Extra memory
// is O(B): four padded column arrays and the chunk table, ~10 MB here.
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
#include <vector>

#include "../common/checks.h"
#include "pairwise_checks.h"
#include "../common/cpu_vector.h"
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
// Column tile: the evaluation buffers' size (double: 20 KiB), and the run over which sums and counts
// stay in acc_t (a float count is exact up to 2^24).
constexpr int64_t kColTile = 1024;
// Work per parallel chunk, in padded pair evaluations (~0.1 ms vectorised), and a row's fixed cost.
constexpr int64_t kChunkCost = int64_t(1) << 16;
constexpr int64_t kRowCost = 32;
constexpr int kHistBins = 2048;

enum Mode : int { kModeSbnz = 0, kModeSelect = 1, kModeHist = 2 };

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
  acc_t* loss;       // [n_pad] out: the pair's weighted loss
  acc_t* ds;         // [n_pad] out: d loss / d s_p (ds_i or ds_j, whichever p is)
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
  const Params<acc_t> prm = specialise<acc_t, kKind, kFlags, kGamma>(io.prm);
  const acc_t s_p = io.s_p, yt_p = io.yt_p, w_p = io.w_p;
  const acc_t* __restrict s = io.s;
  const acc_t* __restrict yt = io.yt;
  const acc_t* __restrict w = io.w;
  acc_t* __restrict loss = io.loss;
  acc_t* __restrict ds = io.ds;
  uint32_t* __restrict flags = io.flags;
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
      ds[k] = ph ? o.ds_i : o.ds_j;
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

template <typename acc_t>
struct ChunkIO {
  EvalFn<acc_t> eval;
  Params<acc_t> prm;
  // Column arrays in sorted order, each with kPad padding entries past B.
  const acc_t* s;
  const acc_t* yt;      // transform_label(labels)
  const acc_t* w;       // weight expanded to [B] (1s when absent)
  const uint32_t* ord;  // order as uint32 (select and hist modes), else nullptr
  const int64_t* seg_lo;
  const int64_t* seg_hi;
  int64_t r0, r1;    // rows of this chunk
  int64_t words[3];  // select: K*'s words; hist: the decided prefix
  int digit;         // hist
  acc_t* grad;       // [B] or nullptr
  double* sum;       // out: this chunk's loss sum
  int64_t* cnt;      // out: this chunk's count
  int64_t* hist;     // hist: [kHistBins], accumulated into
};

// Rows [r0, r1): per row and column tile, the evaluation loop, then the mode's pass over its buffers.
template <typename acc_t, int kMode>
void chunk_run(const ChunkIO<acc_t>& io) {
  alignas(64) acc_t loss_buf[kColTile];
  alignas(64) acc_t ds_buf[kColTile];
  alignas(64) uint32_t flag_buf[kColTile];
  EvalIO<acc_t> ev;
  ev.prm = io.prm;
  ev.loss = loss_buf;
  ev.ds = ds_buf;
  ev.flags = flag_buf;
  double sum = 0.0;
  int64_t cnt = 0;
  for (int64_t p = io.r0; p < io.r1; ++p) {
    const int64_t lo = io.seg_lo[p], hi = io.seg_hi[p];
    ev.s_p = io.s[p];
    ev.yt_p = io.yt[p];
    ev.w_p = io.w[p];
    const uint32_t o_p = io.ord != nullptr ? io.ord[p] : 0u;
    acc_t g_row = 0;
    for (int64_t c0 = lo; c0 < hi; c0 += kColTile) {
      const int64_t n = std::min(kColTile, hi - c0);
      ev.s = io.s + c0;
      ev.yt = io.yt + c0;
      ev.w = io.w + c0;
      ev.n_pad = (n + kPad - 1) / kPad * kPad;
      io.eval(ev);
      const acc_t* __restrict loss = loss_buf;
      const acc_t* __restrict ds = ds_buf;
      const uint32_t* __restrict fl = flag_buf;
      if constexpr (kMode == kModeHist) {
        // The keys of the valid pairs whose higher side is p, matching the decided prefix.
        const uint32_t* ord = io.ord + c0;
        for (int64_t k = 0; k < n; ++k) {
          if ((fl[k] & (kValid | kPHigher)) != (kValid | kPHigher)) continue;
          uint32_t key[3];
          ohem_key(static_cast<float>(loss[k]), o_p, ord[k], key);
          if (ohem_prefix_match(key, io.words, io.digit)) ++io.hist[ohem_digit(key, io.digit)];
        }
      } else {
        acc_t g = 0, ls = 0, c = 0;
        if constexpr (kMode == kModeSbnz) {
          // Every valid pair contributes; the count is of those with v != 0 (SBNZ).
          FL_PW_SIMD_REDUCE
          for (int64_t k = 0; k < n; ++k) {
            const uint32_t f = fl[k];
            const bool valid = (f & kValid) != 0, ph = (f & kPHigher) != 0, nz = (f & kVNonzero) != 0;
            g += valid ? ds[k] : acc_t(0);
            ls += (valid && ph) ? loss[k] : acc_t(0);
            c += (valid && ph && nz) ? acc_t(1) : acc_t(0);
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
            uint32_t key[3];
            ohem_key(static_cast<float>(loss[k]), ph ? o_p : o_q, ph ? o_q : o_p, key);
            const bool contrib = valid && ohem_selected(key, sel) && loss[k] > acc_t(0);
            g += contrib ? ds[k] : acc_t(0);
            ls += (contrib && ph) ? loss[k] : acc_t(0);
            c += (contrib && ph) ? acc_t(1) : acc_t(0);
          }
        }
        g_row += g;
        sum += static_cast<double>(ls);
        cnt += static_cast<int64_t>(c);
      }
    }
    if (io.grad != nullptr) io.grad[p] = g_row;
  }
  *io.sum = sum;
  *io.cnt = cnt;
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
  std::vector<int64_t> bounds;  // chunk c = rows [bounds[c], bounds[c + 1])
};

// The padded column arrays (scores, transformed labels, expanded weights, uint32 order) and the
// chunking; checks the session ranges and the order values on the way.
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

  // Checks and cost prefix (serial: O(n), small next to the O(n * session) pair work).
  const int64_t* lo = seg_lo.data_ptr<int64_t>();
  const int64_t* hi = seg_hi.data_ptr<int64_t>();
  std::vector<int64_t> prefix(static_cast<size_t>(n) + 1);
  prefix[0] = 0;
  for (int64_t p = 0; p < n; ++p) {
    TORCH_CHECK(lo[p] >= 0 && lo[p] <= p && p < hi[p] && hi[p] <= n, "seg_lo/seg_hi: row ", p,
                " has session range [", lo[p], ", ", hi[p], "), which must contain it and lie in [0, ", n,
                ")");
    TORCH_CHECK(!need_order || (ord[p] >= 0 && ord[p] <= int64_t(UINT32_MAX)), "order[", p, "] = ", ord[p],
                " must be in [0, 2^32)");
    const int64_t len = hi[p] - lo[p];
    prefix[static_cast<size_t>(p) + 1] = prefix[static_cast<size_t>(p)] + (len + kPad - 1) / kPad * kPad + kRowCost;
  }
  const int64_t total = prefix[static_cast<size_t>(n)];
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(n, (total + kChunkCost - 1) / kChunkCost));
  out.bounds.resize(static_cast<size_t>(chunks) + 1);
  int64_t p = 0;
  for (int64_t c = 0; c <= chunks; ++c) {
    // First row whose cost prefix reaches c / chunks of the total.
    const int64_t target = static_cast<int64_t>(static_cast<double>(total) * static_cast<double>(c) /
                                                static_cast<double>(chunks));
    while (p < n && prefix[static_cast<size_t>(p)] < target) ++p;
    out.bounds[static_cast<size_t>(c)] = c == chunks ? n : p;
  }
  return out;
}

struct RunResult {
  double sum = 0.0;
  int64_t cnt = 0;
};

template <typename acc_t>
RunResult run(const at::Tensor& scores, const at::Tensor& labels, const at::Tensor& weight,
              const at::Tensor& order, const at::Tensor& seg_lo, const at::Tensor& seg_hi, int64_t kind,
              int64_t flags, double temperature, double margin, double hinge_margin, double gamma,
              double alpha, int mode, const int64_t words[3], int digit, acc_t* grad, int64_t* hist) {
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
  const int64_t chunks = static_cast<int64_t>(prep.bounds.size()) - 1;
  std::vector<double> chunk_sum(static_cast<size_t>(chunks), 0.0);
  std::vector<int64_t> chunk_cnt(static_cast<size_t>(chunks), 0);
  const EvalFn<acc_t> eval = pick_eval_fn<acc_t>(prm, cpu_isa());
  const acc_t* cols = prep.cols.data_ptr<acc_t>();
  std::mutex hist_mutex;

  at::parallel_for(0, chunks, 1, [&](int64_t cb, int64_t ce) {
    std::vector<int64_t> local(mode == kModeHist ? kHistBins : 0, 0);
    ChunkIO<acc_t> io;
    io.eval = eval;
    io.prm = prm;
    io.s = cols;
    io.yt = cols + (n + kPad);
    io.w = cols + 2 * (n + kPad);
    io.ord = prep.ord.defined() ? reinterpret_cast<const uint32_t*>(prep.ord.data_ptr<int32_t>()) : nullptr;
    io.seg_lo = seg_lo.data_ptr<int64_t>();
    io.seg_hi = seg_hi.data_ptr<int64_t>();
    io.words[0] = words[0];
    io.words[1] = words[1];
    io.words[2] = words[2];
    io.digit = digit;
    io.grad = grad;
    io.hist = local.data();
    for (int64_t c = cb; c < ce; ++c) {
      io.r0 = prep.bounds[static_cast<size_t>(c)];
      io.r1 = prep.bounds[static_cast<size_t>(c) + 1];
      io.sum = &chunk_sum[static_cast<size_t>(c)];
      io.cnt = &chunk_cnt[static_cast<size_t>(c)];
      if (io.r0 >= io.r1) continue;
      if (mode == kModeHist) {
        chunk_run<acc_t, kModeHist>(io);
      } else if (mode == kModeSelect) {
        chunk_run<acc_t, kModeSelect>(io);
      } else {
        chunk_run<acc_t, kModeSbnz>(io);
      }
    }
    if (mode == kModeHist) {
      const std::lock_guard<std::mutex> lock(hist_mutex);
      for (int b = 0; b < kHistBins; ++b) hist[b] += local[static_cast<size_t>(b)];
    }
  });
  RunResult r;
  for (int64_t c = 0; c < chunks; ++c) {
    r.sum += chunk_sum[static_cast<size_t>(c)];
    r.cnt += chunk_cnt[static_cast<size_t>(c)];
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

// words[0..2] and the flag word of an int64 [4] select/state tensor (CPU: read directly).
void read_words(const at::Tensor& t, const at::Tensor& scores, const char* name, int64_t out[4]) {
  TORCH_CHECK(t.device() == scores.device(), name, " must be on ", scores.device(), ", got ", t.device());
  TORCH_CHECK(t.scalar_type() == at::kLong && t.numel() == 4, name, " must be int64 with 4 elements, got ",
              t.scalar_type(), " ", t.sizes());
  const at::Tensor c = t.contiguous();
  const int64_t* p = c.data_ptr<int64_t>();
  for (int i = 0; i < 4; ++i) out[i] = p[i];
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> pairwise_fwd_cpu(
    const at::Tensor& scores, const at::Tensor& labels, const std::optional<at::Tensor>& weight,
    const at::Tensor& order, const at::Tensor& seg_lo, const at::Tensor& seg_hi, int64_t kind, int64_t flags,
    double temperature, double margin, double hinge_margin, double gamma, double alpha,
    const std::optional<at::Tensor>& select, bool compute_grad) {
  check_inputs(scores, labels, weight, order, seg_lo, seg_hi, kind, flags, temperature, gamma, alpha);
  const int64_t n = scores.numel();
  const bool has_select = select.has_value() && select->defined();
  int64_t words[4] = {0, 0, 0, 0};
  if (has_select) read_words(*select, scores, "select", words);
  const bool enabled = !has_select || words[3] != 0;
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
  CHECK_ARG(digit >= 0 && digit < 9, "digit must be in [0, 9), got ", digit);
  int64_t words[4];
  read_words(state, scores, "state", words);
  at::Tensor hist = at::zeros({kHistBins}, scores.options().dtype(at::kLong));
  const int64_t n = scores.numel();
  if (n == 0 || words[3] != 0) return hist;  // done: K* is decided
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
