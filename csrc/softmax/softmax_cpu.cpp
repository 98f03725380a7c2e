// CPU kernel of fusedloss::softmax_fwd (schema: fusedloss/ops/_library.py; per-row math:
// softmax_math.h, the same functions the CUDA kernel runs).
//
// Rows (x[n, :, j], r = n D + j) run in parallel (at::parallel_for, at least ~kRowWork elements per
// task). A row is a contiguous acc_t array of its C logits: the input itself (fp32/fp64, D = 1), or
// a row buffer it is expanded into (fp16/bf16; D > 1, where blocks of up to 16 consecutive positions
// j are gathered together, reading runs of x[n, c, j0:j0 + J], and their gradients scattered back
// the same way). Per row, in tiles of kTile classes:
//   pass 1: the tile's maximum, then e = e^{x - m'_tile} (kept in a row buffer) and its sum, and
//           where needed the split sums W, S (softmax_math.h's RowSums: v = w for class indices with
//           smoothing, w q for probabilities); tiles merge with row_sums_merge;
//   focal with smoothing: pass 2, sum q a f(p) and G = sum q a g(p), with q a g(p) stored in the
//           gradient row;
//   gradient: p = e r_tile (r_tile = e^{m'_tile - m'} / s: no second exp), then ce_index_grad,
//           ce_prob_grad, focal_onehot_grad or focal_grad_of.
// Ignored rows get loss 0, denominator 0 and gradient 0. Per-row losses and denominators go to
// double arrays and are summed in row order (the result does not depend on the thread count); the
// reduction is fusedloss.ops._reduce.finish_rows's. Class-index targets are checked first: a value
// outside [0, C) that is not ignore_index raises.
//
// Speed. The tile loops are compiled for the x86-64 baseline, AVX2+FMA and AVX-512 and picked at run
// time (FUSEDLOSS_CPU_ISA=base|avx2 lowers it), with exp/log/expm1 vectorised through libmvec
// (cpu_vector.h; setup.py's -fno-math-errno -fno-trapping-math -fopenmp-simd). The position of the
// target class is compared inside the loops (i == y - c0), which GCC 12 vectorises. Pass 1 takes
// ~0.55 ns per element on one core (AVX-512, [4096, 1000] fp32): the first read of x (the max loop)
// and libmvec's expf (~0.27 ns per element alone, in cache); the gradient pass is bound by the
// writes (and first-touch page faults) of a fresh output.
// Forward + backward timings against eager and compiled torch: benchmarks/bench_softmax.py and the
// README.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/scalar_tensor.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <tuple>
#include <type_traits>
#include <vector>


#include "../common/checks.h"
#include "../common/cpu_vector.h"
#include "softmax_checks.h"
#include "softmax_math.h"

// `#pragma omp simd reduction` lets the vectoriser reassociate the max and sum reductions (setup.py
// passes -fopenmp-simd and defines FUSEDLOSS_OPENMP_SIMD; without them the loops stay scalar).
#if defined(FUSEDLOSS_OPENMP_SIMD)
#define FL_SM_SIMD_MAX _Pragma("omp simd reduction(max : k)")
#define FL_SM_SIMD_SUM1 _Pragma("omp simd reduction(+ : sa)")
#define FL_SM_SIMD_SUM2 _Pragma("omp simd reduction(+ : sa, sb)")
#define FL_SM_SIMD _Pragma("omp simd")
#else
#define FL_SM_SIMD_MAX
#define FL_SM_SIMD_SUM1
#define FL_SM_SIMD_SUM2
#define FL_SM_SIMD
#endif

namespace fusedloss {
namespace softmax {
namespace {

constexpr int64_t kTile = 2048;        // classes per tile
constexpr int64_t kRowWork = 16384;    // at::parallel_for grain, in elements (rows x C)
constexpr int64_t kBlockWork = 16384;  // D > 1: elements per gathered block of positions
constexpr int64_t kMaxBlockRows = 16;  // D > 1: positions per gathered block
// Sums are taken in acc_t over blocks of kSumBlock (16 to 128 per SIMD lane), the blocks in double
// (as multilabel_cpu.cpp: float sums over a whole tile lose ~1e-6 relative).
constexpr int64_t kSumBlock = 256;

// ---- Tile loops over acc_t arrays (compiled once per ISA) ----

template <typename acc_t>
struct TileArgs {
  const acc_t* x;  // logits
  const acc_t* t;  // probabilities (probability targets)
  const acc_t* w;  // class weight or alpha (when the loop's kHasW)
  const acc_t* e;  // e^{x - m'_tile} from pass 1
  acc_t* out;      // e (pass 1), q a g (focal pass 2), or the gradient
  int64_t n;
  int64_t iy;  // the target class's position in the tile, y - c0 (anywhere, even outside [0, n))
  acc_t ref;   // pass 1: m'_tile
  acc_t r;     // gradient: p = e r
  acc_t w_y, big_g, wsum;
  RowNorm<acc_t> nrm;
  Params<acc_t> prm;
};

template <typename acc_t>
using TileFn = void (*)(const TileArgs<acc_t>&, double*);

template <typename acc_t>
FL_ALWAYS_INLINE acc_t weight_at(const acc_t* __restrict w, int64_t i, bool has_w) {
  return has_w ? w[i] : acc_t(1);
}

// out[0] = max x (-inf for none; NaN entries are skipped: they reach the sum through e).
template <typename acc_t>
FL_ALWAYS_INLINE void max_body(const TileArgs<acc_t>& a, double* out) {
  const acc_t* __restrict x = a.x;
  const int64_t n = a.n;
  acc_t k = -INFINITY;
  FL_SM_SIMD_MAX
  for (int64_t i = 0; i < n; ++i) k = x[i] > k ? x[i] : k;
  out[0] = static_cast<double>(k);
}

// e = e^{x - ref} (lse_term with unit weights), out[0] = sum e.
template <typename acc_t>
FL_ALWAYS_INLINE void exp_sum_body(const TileArgs<acc_t>& a, double* out) {
  const acc_t* __restrict x = a.x;
  acc_t* __restrict e = a.out;
  const acc_t ref = a.ref;
  double total = 0;
  for (int64_t i0 = 0; i0 < a.n; i0 += kSumBlock) {
    const int64_t i1 = std::min(a.n, i0 + kSumBlock);
    acc_t sa = 0;
    FL_SM_SIMD_SUM1
    for (int64_t i = i0; i < i1; ++i) {
      const acc_t v = lse_term(x[i], acc_t(1), ref);
      e[i] = v;
      sa += v;
    }
    total += static_cast<double>(sa);
  }
  out[0] = total;
}

// out = {W, S} of the tile: sum v, sum v (ref - x), v = w (class index) or w q (probabilities).
template <typename acc_t, bool kProb, bool kHasW>
FL_ALWAYS_INLINE void shift_body(const TileArgs<acc_t>& a, double* out) {
  const acc_t* __restrict x = a.x;
  const acc_t* __restrict t = a.t;
  const acc_t* __restrict w = a.w;
  const Params<acc_t> prm = a.prm;
  const acc_t ref = a.ref;
  double tw = 0, ts = 0;
  for (int64_t i0 = 0; i0 < a.n; i0 += kSumBlock) {
    const int64_t i1 = std::min(a.n, i0 + kSumBlock);
    acc_t sa = 0, sb = 0;
    FL_SM_SIMD_SUM2
    for (int64_t i = i0; i < i1; ++i) {
      const acc_t wc = weight_at(w, i, kHasW);
      const acc_t v = kProb ? ce_prob_weight(t[i], wc, prm) : wc;
      sa += v;
      sb += v * (ref - x[i]);
    }
    tw += static_cast<double>(sa);
    ts += static_cast<double>(sb);
  }
  out[0] = tw;
  out[1] = ts;
}

// Focal with smoothing, pass 2: out = q a g(p) per class; sums {sum q a f(p), G = sum q a g(p)}.
template <typename acc_t, int kGamma, bool kHasW>
FL_ALWAYS_INLINE void focal_sums_body(const TileArgs<acc_t>& a, double* out) {
  const acc_t* __restrict x = a.x;
  const acc_t* __restrict w = a.w;
  acc_t* __restrict qag = a.out;
  const Params<acc_t> prm = a.prm;
  const RowNorm<acc_t> nrm = a.nrm;
  const int64_t iy = a.iy;
  double tl = 0, tg = 0;
  for (int64_t i0 = 0; i0 < a.n; i0 += kSumBlock) {
    const int64_t i1 = std::min(a.n, i0 + kSumBlock);
    acc_t sa = 0, sb = 0;
    FL_SM_SIMD_SUM2
    for (int64_t i = i0; i < i1; ++i) {
      const FocalTerm<acc_t> term = focal_term_logp<acc_t, kGamma>(log_prob_of(x[i], nrm), prm.gamma);
      const acc_t coef = focal_coef(i == iy, weight_at(w, i, kHasW), prm);
      const acc_t g = coef * term.g;
      qag[i] = g;
      sa += coef * term.f;
      sb += g;
    }
    tl += static_cast<double>(sa);
    tg += static_cast<double>(sb);
  }
  out[0] = tl;
  out[1] = tg;
}

template <typename acc_t, bool kHasW>
FL_ALWAYS_INLINE void ce_index_grad_body(const TileArgs<acc_t>& a, double*) {
  const acc_t* __restrict e = a.e;
  const acc_t* __restrict w = a.w;
  acc_t* __restrict g = a.out;
  const Params<acc_t> prm = a.prm;
  const acc_t r = a.r, w_y = a.w_y, lse = a.nrm.lse;
  const int64_t iy = a.iy, n = a.n;
  FL_SM_SIMD
  for (int64_t i = 0; i < n; ++i) g[i] = ce_index_grad(e[i] * r, i == iy, weight_at(w, i, kHasW), w_y, lse, prm);
}

template <typename acc_t, bool kHasW>
FL_ALWAYS_INLINE void ce_prob_grad_body(const TileArgs<acc_t>& a, double*) {
  const acc_t* __restrict e = a.e;
  const acc_t* __restrict t = a.t;
  const acc_t* __restrict w = a.w;
  acc_t* __restrict g = a.out;
  const Params<acc_t> prm = a.prm;
  const acc_t r = a.r, wsum = a.wsum, lse = a.nrm.lse;
  const int64_t n = a.n;
  FL_SM_SIMD
  for (int64_t i = 0; i < n; ++i) g[i] = ce_prob_grad(e[i] * r, t[i], weight_at(w, i, kHasW), wsum, lse, prm);
}

template <typename acc_t>
FL_ALWAYS_INLINE void focal_onehot_grad_body(const TileArgs<acc_t>& a, double*) {
  const acc_t* __restrict e = a.e;
  acc_t* __restrict g = a.out;
  const acc_t r = a.r, big_g = a.big_g;
  const int64_t iy = a.iy, n = a.n;
  FL_SM_SIMD
  for (int64_t i = 0; i < n; ++i) g[i] = focal_onehot_grad(e[i] * r, i == iy, big_g);
}

// g holds q a g(p) from pass 2 and becomes the gradient.
template <typename acc_t>
FL_ALWAYS_INLINE void focal_smooth_grad_body(const TileArgs<acc_t>& a, double*) {
  const acc_t* __restrict e = a.e;
  acc_t* __restrict g = a.out;
  const acc_t r = a.r, big_g = a.big_g;
  const int64_t n = a.n;
  FL_SM_SIMD
  for (int64_t i = 0; i < n; ++i) g[i] = focal_grad_of(g[i], e[i] * r, big_g);
}

template <typename acc_t>
struct TileFns {
  TileFn<acc_t> max, exp_sum;
  TileFn<acc_t> shift[2][2];       // [prob][has weight]
  TileFn<acc_t> focal_sums[4][2];  // [GammaKind - 1][has alpha]
  TileFn<acc_t> ce_index_grad[2];  // [has weight]
  TileFn<acc_t> ce_prob_grad[2];   // [has weight]
  TileFn<acc_t> focal_onehot_grad, focal_smooth_grad;
};

#define FL_SM_VARIANT(ATTR, SUFFIX)                                                                       \
  template <typename acc_t>                                                                              \
  ATTR void max_##SUFFIX(const TileArgs<acc_t>& a, double* o) {                                          \
    max_body<acc_t>(a, o);                                                                               \
  }                                                                                                      \
  template <typename acc_t>                                                                              \
  ATTR void exp_sum_##SUFFIX(const TileArgs<acc_t>& a, double* o) {                                      \
    exp_sum_body<acc_t>(a, o);                                                                           \
  }                                                                                                      \
  template <typename acc_t, bool kProb, bool kHasW>                                                      \
  ATTR void shift_##SUFFIX(const TileArgs<acc_t>& a, double* o) {                                        \
    shift_body<acc_t, kProb, kHasW>(a, o);                                                               \
  }                                                                                                      \
  template <typename acc_t, int kGamma, bool kHasW>                                                      \
  ATTR void focal_sums_##SUFFIX(const TileArgs<acc_t>& a, double* o) {                                   \
    focal_sums_body<acc_t, kGamma, kHasW>(a, o);                                                         \
  }                                                                                                      \
  template <typename acc_t, bool kHasW>                                                                  \
  ATTR void ce_index_grad_##SUFFIX(const TileArgs<acc_t>& a, double* o) {                                \
    ce_index_grad_body<acc_t, kHasW>(a, o);                                                              \
  }                                                                                                      \
  template <typename acc_t, bool kHasW>                                                                  \
  ATTR void ce_prob_grad_##SUFFIX(const TileArgs<acc_t>& a, double* o) {                                 \
    ce_prob_grad_body<acc_t, kHasW>(a, o);                                                               \
  }                                                                                                      \
  template <typename acc_t>                                                                              \
  ATTR void focal_onehot_grad_##SUFFIX(const TileArgs<acc_t>& a, double* o) {                            \
    focal_onehot_grad_body<acc_t>(a, o);                                                                 \
  }                                                                                                      \
  template <typename acc_t>                                                                              \
  ATTR void focal_smooth_grad_##SUFFIX(const TileArgs<acc_t>& a, double* o) {                            \
    focal_smooth_grad_body<acc_t>(a, o);                                                                 \
  }                                                                                                      \
  template <typename acc_t>                                                                              \
  TileFns<acc_t> fns_##SUFFIX() {                                                                        \
    TileFns<acc_t> f;                                                                                    \
    f.max = &max_##SUFFIX<acc_t>;                                                                        \
    f.exp_sum = &exp_sum_##SUFFIX<acc_t>;                                                                \
    f.shift[0][0] = &shift_##SUFFIX<acc_t, false, false>;                                                \
    f.shift[0][1] = &shift_##SUFFIX<acc_t, false, true>;                                                 \
    f.shift[1][0] = &shift_##SUFFIX<acc_t, true, false>;                                                 \
    f.shift[1][1] = &shift_##SUFFIX<acc_t, true, true>;                                                  \
    f.focal_sums[0][0] = &focal_sums_##SUFFIX<acc_t, focal::kGammaZero, false>;                          \
    f.focal_sums[0][1] = &focal_sums_##SUFFIX<acc_t, focal::kGammaZero, true>;                           \
    f.focal_sums[1][0] = &focal_sums_##SUFFIX<acc_t, focal::kGammaOne, false>;                           \
    f.focal_sums[1][1] = &focal_sums_##SUFFIX<acc_t, focal::kGammaOne, true>;                            \
    f.focal_sums[2][0] = &focal_sums_##SUFFIX<acc_t, focal::kGammaTwo, false>;                           \
    f.focal_sums[2][1] = &focal_sums_##SUFFIX<acc_t, focal::kGammaTwo, true>;                            \
    f.focal_sums[3][0] = &focal_sums_##SUFFIX<acc_t, focal::kGammaGeneral, false>;                       \
    f.focal_sums[3][1] = &focal_sums_##SUFFIX<acc_t, focal::kGammaGeneral, true>;                        \
    f.ce_index_grad[0] = &ce_index_grad_##SUFFIX<acc_t, false>;                                          \
    f.ce_index_grad[1] = &ce_index_grad_##SUFFIX<acc_t, true>;                                           \
    f.ce_prob_grad[0] = &ce_prob_grad_##SUFFIX<acc_t, false>;                                            \
    f.ce_prob_grad[1] = &ce_prob_grad_##SUFFIX<acc_t, true>;                                             \
    f.focal_onehot_grad = &focal_onehot_grad_##SUFFIX<acc_t>;                                            \
    f.focal_smooth_grad = &focal_smooth_grad_##SUFFIX<acc_t>;                                            \
    return f;                                                                                            \
  }

FL_SM_VARIANT(, base)
#if FL_CPU_MULTIVERSION
FL_SM_VARIANT(FL_TARGET_AVX2, avx2)
FL_SM_VARIANT(FL_TARGET_AVX512, avx512)
#endif
#undef FL_SM_VARIANT

template <typename acc_t>
TileFns<acc_t> pick_fns(Isa isa) {
#if FL_CPU_MULTIVERSION
  if (isa == Isa::kAvx512) return fns_avx512<acc_t>();
  if (isa == Isa::kAvx2) return fns_avx2<acc_t>();
#endif
  (void)isa;
  return fns_base<acc_t>();
}

int gamma_kind(double gamma) {
  if (gamma == 0.0) return focal::kGammaZero;
  if (gamma == 1.0) return focal::kGammaOne;
  if (gamma == 2.0) return focal::kGammaTwo;
  return focal::kGammaGeneral;
}

// ---- Rows ----

// What every row of a launch shares.
template <typename acc_t>
struct Launch {
  TileFns<acc_t> fns;
  Params<acc_t> prm;
  const acc_t* w;  // [C] class weight (mode 0) or alpha (mode 1), or nullptr
  int64_t C;
  int64_t ignore_index;
  bool prob;        // probability targets
  bool need_shift;  // pass 1 takes W and S
  bool smoothing;   // eps > 0
  int gamma_kind;
};

// Per-task scratch: e [C], the tiles' maxima, and a tile of discarded stores.
template <typename acc_t>
struct Scratch {
  std::unique_ptr<acc_t[]> e, keys, junk;
  explicit Scratch(int64_t C)
      : e(new acc_t[static_cast<size_t>(std::max<int64_t>(C, 1))]),
        keys(new acc_t[static_cast<size_t>((C + kTile - 1) / kTile + 1)]),
        junk(new acc_t[kTile]) {}
};

template <typename acc_t>
struct RowResult {
  acc_t loss, den;
};

// One row: x [C] (acc_t, contiguous), t [C] its probabilities (probability targets) or y its class
// (checked: in [0, C) or ignore_index), g [C] its gradient (nullptr: none).
template <typename acc_t>
RowResult<acc_t> run_row(const Launch<acc_t>& L, const acc_t* x, const acc_t* t, int64_t y, acc_t* g,
                         Scratch<acc_t>& s) {
  const int64_t C = L.C;
  if ((!L.prob && y == L.ignore_index) || C == 0) {
    if (g != nullptr) std::fill(g, g + C, acc_t(0));
    return {acc_t(0), acc_t(0)};
  }
  const TileFns<acc_t>& fns = L.fns;
  const bool has_w = L.w != nullptr;
  TileArgs<acc_t> ta{};
  ta.t = t;
  ta.prm = L.prm;
  double sums[2];

  // Pass 1: per tile m'_tile, e and its sum, and W, S; merged into the row's state.
  acc_t* const e = s.e.get();
  RowSums<acc_t> row = row_sums_empty<acc_t>();
  for (int64_t k = 0, c0 = 0; c0 < C; ++k, c0 += kTile) {
    ta.n = std::min(kTile, C - c0);
    ta.x = x + c0;
    ta.t = t != nullptr ? t + c0 : nullptr;
    ta.w = has_w ? L.w + c0 : nullptr;
    fns.max(ta, sums);
    const acc_t key = static_cast<acc_t>(sums[0]);
    ta.ref = finite_max(key);
    ta.out = e + c0;
    fns.exp_sum(ta, sums);
    RowSums<acc_t> part{Lse<acc_t>{key, static_cast<acc_t>(sums[0])}, acc_t(0), acc_t(0)};
    if (L.need_shift) {
      fns.shift[L.prob][has_w](ta, sums);
      part.wsum = static_cast<acc_t>(sums[0]);
      part.shift = static_cast<acc_t>(sums[1]);
    }
    s.keys[k] = key;
    row = row_sums_merge(row, part);
  }
  const RowNorm<acc_t> nrm = row_norm(row.lse);
  ta.nrm = nrm;
  ta.prm.weight_sum = row.wsum;  // W: the row's sum of w (class index with smoothing)

  RowResult<acc_t> res{acc_t(0), acc_t(1)};
  TileFn<acc_t> grad_fn = nullptr;
  if (L.prm.mode == kCrossEntropy) {
    if (L.prob) {
      res.loss = ce_prob_loss_split(nrm, row.wsum, row.shift, ta.prm);
      ta.wsum = row.wsum;
      grad_fn = fns.ce_prob_grad[has_w];
    } else {
      ta.w_y = has_w ? L.w[y] : acc_t(1);
      res.loss = ce_index_loss_split(nrm, x[y], ta.w_y, row.shift, ta.prm);
      res.den = ta.w_y;
      grad_fn = fns.ce_index_grad[has_w];
    }
  } else if (L.smoothing) {
    // Pass 2: sum q a f(p) and G; q a g(p) goes to the gradient row (or is discarded).
    double loss = 0, big_g = 0;
    for (int64_t c0 = 0; c0 < C; c0 += kTile) {
      ta.n = std::min(kTile, C - c0);
      ta.x = x + c0;
      ta.w = has_w ? L.w + c0 : nullptr;
      ta.iy = y - c0;
      ta.out = g != nullptr ? g + c0 : s.junk.get();
      fns.focal_sums[L.gamma_kind - 1][has_w](ta, sums);
      loss += sums[0];
      big_g += sums[1];
    }
    res.loss = static_cast<acc_t>(loss);
    ta.big_g = static_cast<acc_t>(big_g);
    grad_fn = fns.focal_smooth_grad;
  } else {
    const FocalTerm<acc_t> term = focal_term_logp(log_prob_of(x[y], nrm), ta.prm.gamma);
    const acc_t a_y = has_w ? L.w[y] : acc_t(1);
    res.loss = a_y * term.f;
    ta.big_g = a_y * term.g;
    grad_fn = fns.focal_onehot_grad;
  }
  if (g == nullptr) return res;

  for (int64_t k = 0, c0 = 0; c0 < C; ++k, c0 += kTile) {
    ta.n = std::min(kTile, C - c0);
    ta.t = t != nullptr ? t + c0 : nullptr;
    ta.w = has_w ? L.w + c0 : nullptr;
    ta.e = e + c0;
    ta.out = g + c0;
    ta.iy = y - c0;
    const acc_t key = s.keys[k];
    // p = e^{x - m'_tile} e^{m'_tile - m'} / s; a tile of -inf logits has e = 0 and r = 0.
    ta.r = key == acc_t(-INFINITY) ? acc_t(0) : exp(key - nrm.m) * nrm.inv_s;
    grad_fn(ta, sums);
  }
  return res;
}

struct CpuArgs {
  const void* x;     // [N, C, D] scalar_t
  const void* t;     // [N, D] int64, or [N, C, D] scalar_t (probabilities)
  const void* w;     // [C] acc_t or nullptr
  void* loss;        // [N, D] scalar_t (reduction none), or nullptr
  void* grad;        // [N, C, D] scalar_t, or nullptr
  double* row_loss;  // [N D]
  double* row_den;   // [N D]
  int64_t N, C, D;
  int64_t mode, ignore_index;
  double smoothing, z_loss, gamma;
  bool prob;
};

template <typename scalar_t, typename acc_t>
void store_row(const CpuArgs& a, int64_t r, RowResult<acc_t> res) {
  a.row_loss[r] = static_cast<double>(res.loss);
  a.row_den[r] = static_cast<double>(res.den);
  if (a.loss != nullptr) static_cast<scalar_t*>(a.loss)[r] = static_cast<scalar_t>(res.loss);
}

template <typename acc_t>
Launch<acc_t> make_launch(const CpuArgs& a) {
  Launch<acc_t> L;
  L.fns = pick_fns<acc_t>(cpu_isa());
  L.prm.mode = a.mode;
  L.prm.num_classes = a.C;
  L.prm.smoothing = static_cast<acc_t>(a.smoothing);
  L.prm.z_loss = a.mode == kCrossEntropy ? static_cast<acc_t>(a.z_loss) : acc_t(0);
  L.prm.gamma = static_cast<acc_t>(a.gamma);
  L.prm.weight_sum = acc_t(0);  // set per row from pass 1
  L.w = static_cast<const acc_t*>(a.w);
  L.C = a.C;
  L.ignore_index = a.ignore_index;
  L.prob = a.prob;
  L.smoothing = a.smoothing > 0.0;
  L.need_shift = a.mode == kCrossEntropy && (a.prob || a.smoothing > 0.0);
  L.gamma_kind = gamma_kind(a.gamma);
  return L;
}

// D == 1: row r is x[r * C, (r + 1) * C), used in place when scalar_t is acc_t.
template <typename scalar_t>
void contiguous_rows(const CpuArgs& a) {
  using acc_t = at::opmath_type<scalar_t>;
  constexpr bool kSame = std::is_same_v<scalar_t, acc_t>;
  const Launch<acc_t> L = make_launch<acc_t>(a);
  const int64_t C = a.C;
  const scalar_t* x = static_cast<const scalar_t*>(a.x);
  const scalar_t* tp = a.prob ? static_cast<const scalar_t*>(a.t) : nullptr;
  const int64_t* ti = a.prob ? nullptr : static_cast<const int64_t*>(a.t);
  scalar_t* grad = static_cast<scalar_t*>(a.grad);
  // inplace_grad (grad == x): the row loops take x and the gradient as __restrict, so the row is
  // read from a copy.
  const bool alias = static_cast<const void*>(grad) == a.x;
  const int64_t grain = std::max<int64_t>(1, kRowWork / std::max<int64_t>(C, 1));
  at::parallel_for(0, a.N, grain, [&](int64_t r0, int64_t r1) {
    Scratch<acc_t> s(C);
    const size_t row = static_cast<size_t>(std::max<int64_t>(C, 1));
    std::unique_ptr<acc_t[]> xbuf(kSame && !alias ? nullptr : new acc_t[row]);
    std::unique_ptr<acc_t[]> tbuf(kSame || tp == nullptr ? nullptr : new acc_t[row]);
    std::unique_ptr<acc_t[]> gbuf(kSame || grad == nullptr ? nullptr : new acc_t[row]);
    for (int64_t r = r0; r < r1; ++r) {
      const acc_t* xr;
      const acc_t* tr = nullptr;
      acc_t* gr = nullptr;
      if constexpr (kSame) {
        xr = x + r * C;
        if (alias) {
          std::copy(xr, xr + C, xbuf.get());
          xr = xbuf.get();
        }
        if (tp != nullptr) tr = tp + r * C;
        if (grad != nullptr) gr = grad + r * C;
      } else {
        for (int64_t c = 0; c < C; ++c) xbuf[c] = static_cast<acc_t>(x[r * C + c]);
        xr = xbuf.get();
        if (tp != nullptr) {
          for (int64_t c = 0; c < C; ++c) tbuf[c] = static_cast<acc_t>(tp[r * C + c]);
          tr = tbuf.get();
        }
        gr = gbuf.get();
      }
      const RowResult<acc_t> res = run_row(L, xr, tr, ti != nullptr ? ti[r] : 0, gr, s);
      if constexpr (!kSame) {
        if (grad != nullptr) {
          for (int64_t c = 0; c < C; ++c) grad[r * C + c] = static_cast<scalar_t>(gr[c]);
        }
      }
      store_row<scalar_t>(a, r, res);
    }
  });
}

// D > 1: blocks of J consecutive positions j of one n, gathered into J row buffers through runs of
// x[n, c, j0:j0 + J]; their gradients go back the same way.
template <typename scalar_t>
void strided_rows(const CpuArgs& a) {
  using acc_t = at::opmath_type<scalar_t>;
  const Launch<acc_t> L = make_launch<acc_t>(a);
  const int64_t C = a.C, D = a.D;
  const int64_t J = std::min<int64_t>({kMaxBlockRows, D, std::max<int64_t>(1, kBlockWork / std::max<int64_t>(C, 1))});
  const int64_t j_blocks = (D + J - 1) / J;
  const scalar_t* x = static_cast<const scalar_t*>(a.x);
  const scalar_t* tp = a.prob ? static_cast<const scalar_t*>(a.t) : nullptr;
  const int64_t* ti = a.prob ? nullptr : static_cast<const int64_t*>(a.t);
  scalar_t* grad = static_cast<scalar_t*>(a.grad);
  const int64_t grain = std::max<int64_t>(1, kRowWork / std::max<int64_t>(J * C, 1));
  at::parallel_for(0, a.N * j_blocks, grain, [&](int64_t b0, int64_t b1) {
    Scratch<acc_t> s(C);
    const size_t block = static_cast<size_t>(std::max<int64_t>(J * C, 1));
    std::unique_ptr<acc_t[]> xbuf(new acc_t[block]);
    std::unique_ptr<acc_t[]> tbuf(tp == nullptr ? nullptr : new acc_t[block]);
    std::unique_ptr<acc_t[]> gbuf(grad == nullptr ? nullptr : new acc_t[block]);
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t n = b / j_blocks;
      const int64_t j0 = (b - n * j_blocks) * J;
      const int64_t jn = std::min(J, D - j0);
      const int64_t base = n * C * D + j0;
      for (int64_t c = 0; c < C; ++c) {
        const scalar_t* src = x + base + c * D;
        for (int64_t jj = 0; jj < jn; ++jj) xbuf[jj * C + c] = static_cast<acc_t>(src[jj]);
      }
      if (tp != nullptr) {
        for (int64_t c = 0; c < C; ++c) {
          const scalar_t* src = tp + base + c * D;
          for (int64_t jj = 0; jj < jn; ++jj) tbuf[jj * C + c] = static_cast<acc_t>(src[jj]);
        }
      }
      for (int64_t jj = 0; jj < jn; ++jj) {
        const int64_t r = n * D + j0 + jj;
        const RowResult<acc_t> res =
            run_row(L, xbuf.get() + jj * C, tp != nullptr ? tbuf.get() + jj * C : nullptr,
                    ti != nullptr ? ti[r] : 0, grad != nullptr ? gbuf.get() + jj * C : nullptr, s);
        store_row<scalar_t>(a, r, res);
      }
      if (grad != nullptr) {
        for (int64_t c = 0; c < C; ++c) {
          scalar_t* dst = grad + base + c * D;
          for (int64_t jj = 0; jj < jn; ++jj) dst[jj] = static_cast<scalar_t>(gbuf[jj * C + c]);
        }
      }
    }
  });
}

// Class indices must be in [0, C) or ignore_index: the kernel indexes x and the weight with them.
void check_class_indices(const int64_t* t, int64_t rows, int64_t C, int64_t ignore_index) {
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t v = t[r];
    CHECK_ARG(v == ignore_index || (v >= 0 && v < C), "target must hold class indices in [0, ", C,
              ") or ignore_index (", ignore_index, "); got ", v, " at flat position ", r);
  }
}

// Runs the kernel; the gradient goes to `grad` when it is defined (a fresh tensor, or the input
// itself for softmax_fwd_inplace). Returns (loss, scale).
std::tuple<at::Tensor, at::Tensor> run_softmax_cpu(const at::Tensor& x, const at::Tensor& target,
                                                   const at::Tensor& w, int64_t mode, int64_t ignore_index,
                                                   double label_smoothing, double z_loss, double gamma,
                                                   int64_t reduction, const at::Tensor& grad) {
  const at::Tensor t = target.contiguous();
  const int64_t N = x.size(0), C = x.size(1), D = x.size(2);
  const bool prob = t.is_floating_point();
  if (!prob) check_class_indices(t.data_ptr<int64_t>(), N * D, C, ignore_index);

  at::Tensor loss_none = reduction == kNone ? at::empty({N, D}, x.options()) : at::Tensor();
  std::vector<double> row_loss(static_cast<size_t>(N * D)), row_den(static_cast<size_t>(N * D));
  CpuArgs a;
  a.x = x.data_ptr();
  a.t = t.data_ptr();
  a.w = w.defined() ? w.data_ptr() : nullptr;
  a.loss = loss_none.defined() ? loss_none.data_ptr() : nullptr;
  a.grad = grad.defined() ? grad.data_ptr() : nullptr;
  a.row_loss = row_loss.data();
  a.row_den = row_den.data();
  a.N = N;
  a.C = C;
  a.D = D;
  a.mode = mode;
  a.ignore_index = ignore_index;
  a.smoothing = label_smoothing;
  a.z_loss = z_loss;
  a.gamma = gamma;
  a.prob = prob;
  if (N * D > 0) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "softmax_fwd_cpu", [&] {
      if (D == 1) {
        contiguous_rows<scalar_t>(a);
      } else {
        strided_rows<scalar_t>(a);
      }
    });
  }

  // fusedloss.ops._reduce.finish_rows: sums over rows in double, in row order.
  const at::TensorOptions acc_opts = x.options().dtype(opmath_dtype(x.scalar_type()));
  if (reduction == kNone) return {loss_none, at::scalar_tensor(1.0, acc_opts)};
  double total = 0.0, den = 0.0;
  for (const double v : row_loss) total += v;
  if (reduction == kSum) return {at::scalar_tensor(total, x.options()), at::scalar_tensor(1.0, acc_opts)};
  for (const double v : row_den) den += v;
  if (den == 0.0) {
    return {at::scalar_tensor(std::numeric_limits<double>::quiet_NaN(), x.options()),
            at::scalar_tensor(0.0, acc_opts)};
  }
  return {at::scalar_tensor(total / den, x.options()), at::scalar_tensor(1.0 / den, acc_opts)};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> softmax_fwd_cpu(
    const at::Tensor& input, const at::Tensor& target, const std::optional<at::Tensor>& weight,
    int64_t mode, int64_t ignore_index, double label_smoothing, double z_loss, double gamma,
    int64_t reduction, bool compute_grad) {
  CHECK_CPU(input);
  const at::Tensor w = check_softmax_args(input, target, weight, mode, label_smoothing, z_loss, gamma,
                                          reduction);
  const at::Tensor x = input.contiguous();
  at::Tensor grad = compute_grad ? at::empty(x.sizes(), x.options()) : input.new_empty({0});
  auto [loss, scale] = run_softmax_cpu(x, target, w, mode, ignore_index, label_smoothing, z_loss, gamma,
                                       reduction, compute_grad ? grad : at::Tensor());
  return {loss, grad, scale};
}

// inplace_grad: the gradient overwrites the (contiguous) input.
std::tuple<at::Tensor, at::Tensor> softmax_fwd_inplace_cpu(
    const at::Tensor& input, const at::Tensor& target, const std::optional<at::Tensor>& weight,
    int64_t mode, int64_t ignore_index, double label_smoothing, double z_loss, double gamma,
    int64_t reduction) {
  CHECK_CPU(input);
  CHECK_CONTIGUOUS(input);
  const at::Tensor w = check_softmax_args(input, target, weight, mode, label_smoothing, z_loss, gamma,
                                          reduction);
  return run_softmax_cpu(input, target, w, mode, ignore_index, label_smoothing, z_loss, gamma,
                         reduction, input);
}

}  // namespace
}  // namespace softmax
}  // namespace fusedloss

TORCH_LIBRARY_IMPL(fusedloss, CPU, m) {
  m.impl("softmax_fwd", TORCH_FN(fusedloss::softmax::softmax_fwd_cpu));
  m.impl("softmax_fwd_inplace", TORCH_FN(fusedloss::softmax::softmax_fwd_inplace_cpu));
}
