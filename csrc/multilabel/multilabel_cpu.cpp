// CPU kernels of fusedloss::multilabel_ce_fwd and fusedloss::sparse_multilabel_ce_fwd (schemas:
// fusedloss/ops/_library.py; per-row math: multilabel_math.h, the same functions the CUDA kernel runs).
//
// Rows run in parallel (at::parallel_for, at least ~kRowWork elements per task); each row is two
// passes over its C logits in tiles of kTile: the sums (the loss), then the gradient. Within a tile
// the sums take two vectorised loops, the maxima of lse_key (and whether every label is hard), then
// the sums of lse_term relative to them, added to the row's state with lse_add_part (the header's
// two-pass form of lse_add). Hard labels (y not in (0, 1): all integer and bool targets) take one
// exp per entry and pass (dense_terms_hard, dense_grad_hard), soft ones two. Inputs of another dtype
// (fp16/bf16 logits, integer targets) are first expanded into acc_t buffers; a row of one tile keeps
// them for the gradient pass. The per-row losses are summed in double in row order, so the result
// does not depend on the thread count.
//
// Sparse form: per tile, a walk through the row's sorted indices gives the negative weights
// (sparse_neg_weight: 0 for the listed classes and the masked one); the positive sum gathers the K
// listed logits (indices outside [0, C), and 0 under mask_zero, are skipped, so no value can index
// out of bounds). The gradient loop writes every class's negative share (sparse_grad of an unlisted
// class; 0 for a listed or masked one), then the listed classes are overwritten with sparse_grad,
// their count being the length of their run in the sorted row: one exp per class and pass, plus O(K).
//
// Speed. The tile loops are compiled for the x86-64 baseline, AVX2+FMA and AVX-512 and picked at run
// time (FUSEDLOSS_CPU_ISA=base|avx2 lowers it), with exp vectorised through libmvec (cpu_vector.h;
// setup.py's -fno-math-errno -fno-trapping-math -fopenmp-simd let GCC if-convert the header's
// selects). Per element and core, in cache (fp32, [64, 2000], AVX-512): ~0.8 ns for the sums and
// ~0.8 ns more for the gradient with hard labels, ~1.1 + 0.7 ns with soft ones; sparse ~0.6 + 0.4 ns.
// Measured on a 2-core Xeon (Sapphire Rapids, KVM guest, shared with other jobs), torch 2.13 CPU, 2
// threads, fp32, hard float labels (1% positives), forward + backward of the mean through the public
// function, median of torch.utils.benchmark: [4096, 1000] 11 ms against 137-141 ms for eager torch
// (bert4keras's formula; 12x), [256, 131072] 173 ms against 1.78 s (10x), [1024, 131072] 0.68 s
// against 8.4 s (12x). The op alone (loss and gradient) takes 7.7 / 122 / 507 ms of these; at 131072
// classes most of it is DRAM traffic and the first touch (page faults) of the fresh [N, C] gradient
// (fused forward alone: ~45 ms at [256, 131072]). Sparse form, K = 5: 7.1 ms / 137 ms / 0.56 s against
// 19 ms / 0.42 s / 1.58 s for bert4keras's sparse formula.
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
#include <tuple>
#include <type_traits>
#include <vector>

#include "../common/checks.h"
#include "../common/cpu_vector.h"
#include "multilabel_checks.h"
#include "multilabel_math.h"

// `#pragma omp simd reduction` lets the vectoriser reassociate the max and sum reductions (setup.py
// passes -fopenmp-simd and defines FUSEDLOSS_OPENMP_SIMD; without them the loops stay scalar).
#if defined(FUSEDLOSS_OPENMP_SIMD)
#define FL_ML_SIMD_MAX2_SUM1 _Pragma("omp simd reduction(max : ka, kb) reduction(+ : soft)")
#define FL_ML_SIMD_SUM2 _Pragma("omp simd reduction(+ : sa, sb)")
#define FL_ML_SIMD_MAX1 _Pragma("omp simd reduction(max : ka)")
#define FL_ML_SIMD_SUM1 _Pragma("omp simd reduction(+ : sa)")
#define FL_ML_SIMD _Pragma("omp simd")
#else
#define FL_ML_SIMD_MAX2_SUM1
#define FL_ML_SIMD_SUM2
#define FL_ML_SIMD_MAX1
#define FL_ML_SIMD_SUM1
#define FL_ML_SIMD
#endif

namespace fusedloss {
namespace multilabel {
namespace {

constexpr int64_t kTile = 2048;      // classes per tile: buffers of 2048 x 8 B = 16 KiB (fp64)
constexpr int64_t kRowWork = 16384;  // at::parallel_for grain, in elements (rows x C)
// Terms are summed in acc_t over blocks of kSumBlock (16 to 128 per SIMD lane), the blocks in double:
// float sums over a whole tile lost ~1e-6 relative (base ISA). (A double accumulator in the vector
// loop itself was miscompiled by GCC 12 with libmvec's expf at AVX2/AVX-512.)
constexpr int64_t kSumBlock = 256;

// ---- Tile loops over acc_t arrays (compiled once per ISA) ----

// Adds entries (x, y) to the dense form's sums. One pass takes the maxima of lse_key and whether every
// label is hard; the second takes the terms, from one exp per entry when every label is hard
// (dense_terms_hard), else two. Returns whether every label was hard.
template <typename acc_t>
FL_ALWAYS_INLINE bool dense_sums_body(Lse<acc_t>* neg, Lse<acc_t>* pos, const acc_t* __restrict x,
                                      const acc_t* __restrict y, int64_t n) {
  acc_t ka = -INFINITY, kb = -INFINITY, soft = 0;
  FL_ML_SIMD_MAX2_SUM1
  for (int64_t i = 0; i < n; ++i) {
    const acc_t a = lse_key(x[i], dense_neg_weight(x[i], y[i]));
    const acc_t b = lse_key(-x[i], dense_pos_weight(x[i], y[i]));
    ka = a > ka ? a : ka;
    kb = b > kb ? b : kb;
    soft += dense_label_is_hard(y[i]) ? acc_t(0) : acc_t(1);
  }
  const bool hard = soft == acc_t(0);
  const acc_t ma = lse_part_max(*neg, ka), mb = lse_part_max(*pos, kb);
  double total_a = 0, total_b = 0;
  for (int64_t i0 = 0; i0 < n; i0 += kSumBlock) {
    const int64_t i1 = std::min(n, i0 + kSumBlock);
    acc_t sa = 0, sb = 0;
    if (hard) {
      FL_ML_SIMD_SUM2
      for (int64_t i = i0; i < i1; ++i) {
        const DenseTerms<acc_t> t = dense_terms_hard(x[i], y[i], ma, mb);
        sa += t.neg;
        sb += t.pos;
      }
    } else {
      FL_ML_SIMD_SUM2
      for (int64_t i = i0; i < i1; ++i) {
        sa += lse_term(x[i], dense_neg_weight(x[i], y[i]), ma);
        sb += lse_term(-x[i], dense_pos_weight(x[i], y[i]), mb);
      }
    }
    total_a += sa;
    total_b += sb;
  }
  lse_add_part(*neg, ma, static_cast<acc_t>(total_a));
  lse_add_part(*pos, mb, static_cast<acc_t>(total_b));
  return hard;
}

template <typename acc_t, bool kHard>
FL_ALWAYS_INLINE void dense_grads_body(const Lse<acc_t>* neg_state, const Lse<acc_t>* pos_state,
                                       const acc_t* __restrict x, const acc_t* __restrict y,
                                       acc_t* __restrict g, int64_t n) {
  const acc_t nm = neg_state->m, ns = neg_state->s, pm = pos_state->m, ps = pos_state->s;
  FL_ML_SIMD
  for (int64_t i = 0; i < n; ++i) {
    const Lse<acc_t> neg{nm, ns}, pos{pm, ps};
    g[i] = kHard ? dense_grad_hard(neg, pos, x[i], y[i]) : dense_grad(neg, pos, x[i], y[i]);
  }
}

// Whether every label of a tile is hard (dense_label_is_hard).
template <typename acc_t>
FL_ALWAYS_INLINE bool all_hard_body(const acc_t* __restrict y, int64_t n) {
  acc_t sa = 0;
  FL_ML_SIMD_SUM1
  for (int64_t i = 0; i < n; ++i) sa += dense_label_is_hard(y[i]) ? acc_t(0) : acc_t(1);
  return sa == acc_t(0);
}

// Adds w e^x to a sum.
template <typename acc_t>
FL_ALWAYS_INLINE void weighted_sum_body(Lse<acc_t>* acc, const acc_t* __restrict x,
                                        const acc_t* __restrict w, int64_t n) {
  acc_t ka = -INFINITY;
  FL_ML_SIMD_MAX1
  for (int64_t i = 0; i < n; ++i) {
    const acc_t a = lse_key(x[i], w[i]);
    ka = a > ka ? a : ka;
  }
  const acc_t ma = lse_part_max(*acc, ka);
  double total = 0;
  for (int64_t i0 = 0; i0 < n; i0 += kSumBlock) {
    const int64_t i1 = std::min(n, i0 + kSumBlock);
    acc_t sa = 0;
    FL_ML_SIMD_SUM1
    for (int64_t i = i0; i < i1; ++i) sa += lse_term(x[i], w[i], ma);
    total += sa;
  }
  lse_add_part(*acc, ma, static_cast<acc_t>(total));
}

// g = the share of w e^x in a sum.
template <typename acc_t>
FL_ALWAYS_INLINE void shares_body(const Lse<acc_t>* state, const acc_t* __restrict x,
                                  const acc_t* __restrict w, acc_t* __restrict g, int64_t n) {
  const Lse<acc_t> a = *state;
  FL_ML_SIMD
  for (int64_t i = 0; i < n; ++i) g[i] = lse_share(a, x[i], w[i]);
}

template <typename acc_t>
struct TileFns {
  bool (*dense_sums)(Lse<acc_t>*, Lse<acc_t>*, const acc_t*, const acc_t*, int64_t);
  void (*dense_grads[2])(const Lse<acc_t>*, const Lse<acc_t>*, const acc_t*, const acc_t*, acc_t*, int64_t);
  bool (*all_hard)(const acc_t*, int64_t);
  void (*weighted_sum)(Lse<acc_t>*, const acc_t*, const acc_t*, int64_t);
  void (*shares)(const Lse<acc_t>*, const acc_t*, const acc_t*, acc_t*, int64_t);
};

#define FL_ML_VARIANT(ATTR, SUFFIX)                                                                     \
  template <typename acc_t>                                                                            \
  ATTR bool dense_sums_##SUFFIX(Lse<acc_t>* neg, Lse<acc_t>* pos, const acc_t* x, const acc_t* y,      \
                                int64_t n) {                                                           \
    return dense_sums_body<acc_t>(neg, pos, x, y, n);                                                  \
  }                                                                                                    \
  template <typename acc_t, bool kHard>                                                                \
  ATTR void dense_grads_##SUFFIX(const Lse<acc_t>* neg, const Lse<acc_t>* pos, const acc_t* x,         \
                                 const acc_t* y, acc_t* g, int64_t n) {                                \
    dense_grads_body<acc_t, kHard>(neg, pos, x, y, g, n);                                              \
  }                                                                                                    \
  template <typename acc_t>                                                                            \
  ATTR bool all_hard_##SUFFIX(const acc_t* y, int64_t n) {                                             \
    return all_hard_body<acc_t>(y, n);                                                                 \
  }                                                                                                    \
  template <typename acc_t>                                                                            \
  ATTR void weighted_sum_##SUFFIX(Lse<acc_t>* acc, const acc_t* x, const acc_t* w, int64_t n) {        \
    weighted_sum_body<acc_t>(acc, x, w, n);                                                            \
  }                                                                                                    \
  template <typename acc_t>                                                                            \
  ATTR void shares_##SUFFIX(const Lse<acc_t>* a, const acc_t* x, const acc_t* w, acc_t* g, int64_t n) { \
    shares_body<acc_t>(a, x, w, g, n);                                                                 \
  }                                                                                                    \
  template <typename acc_t>                                                                            \
  TileFns<acc_t> fns_##SUFFIX() {                                                                      \
    return TileFns<acc_t>{&dense_sums_##SUFFIX<acc_t>,                                                 \
                          {&dense_grads_##SUFFIX<acc_t, false>, &dense_grads_##SUFFIX<acc_t, true>},   \
                          &all_hard_##SUFFIX<acc_t>, &weighted_sum_##SUFFIX<acc_t>,                    \
                          &shares_##SUFFIX<acc_t>};                                                    \
  }

FL_ML_VARIANT(, base)
#if FL_CPU_MULTIVERSION
FL_ML_VARIANT(FL_TARGET_AVX2, avx2)
FL_ML_VARIANT(FL_TARGET_AVX512, avx512)
#endif
#undef FL_ML_VARIANT

template <typename acc_t>
TileFns<acc_t> pick_fns(Isa isa) {
#if FL_CPU_MULTIVERSION
  if (isa == Isa::kAvx512) return fns_avx512<acc_t>();
  if (isa == Isa::kAvx2) return fns_avx2<acc_t>();
#endif
  (void)isa;
  return fns_base<acc_t>();
}

// ---- Rows ----

struct CpuArgs {
  const void* x;       // [n_rows, n_cols] scalar_t
  const void* t;       // dense: [n_rows, n_cols] target_t
  const int64_t* idx;  // sparse: [n_rows, k], sorted per row
  void* loss;          // [n_rows] scalar_t (reduction none), or nullptr
  void* grad;          // [n_rows, n_cols] scalar_t, or nullptr
  double* row_loss;    // [n_rows]
  int64_t n_rows, n_cols, k;
  bool mask_zero;
};

int64_t row_grain(int64_t n_cols) { return std::max<int64_t>(1, kRowWork / std::max<int64_t>(n_cols, 1)); }

template <typename scalar_t, typename acc_t>
void store_row(const CpuArgs& a, int64_t r, acc_t value) {
  a.row_loss[r] = static_cast<double>(value);
  if (a.loss != nullptr) static_cast<scalar_t*>(a.loss)[r] = static_cast<scalar_t>(value);
}

// g (acc_t, kTile) -> out[0, n): the output itself when the dtypes agree, else a buffer converted after.
template <typename scalar_t, typename acc_t>
acc_t* grad_tile(scalar_t* out, acc_t* buf) {
  if constexpr (std::is_same_v<scalar_t, acc_t>) {
    (void)buf;
    return out;
  } else {
    (void)out;
    return buf;
  }
}

template <typename scalar_t, typename acc_t>
void finish_grad_tile(scalar_t* out, const acc_t* g, int64_t n) {
  if constexpr (!std::is_same_v<scalar_t, acc_t>) {
    for (int64_t k = 0; k < n; ++k) out[k] = static_cast<scalar_t>(g[k]);
  } else {
    (void)out;
    (void)g;
    (void)n;
  }
}

template <typename scalar_t, typename target_t>
void dense_rows(const CpuArgs& a) {
  using acc_t = at::opmath_type<scalar_t>;
  // Integer and bool targets hold hard labels only (dense_label_is_hard); float ones are checked per tile.
  constexpr bool kAlwaysHard = !std::is_floating_point_v<target_t> && !std::is_same_v<target_t, c10::Half> &&
                               !std::is_same_v<target_t, c10::BFloat16>;
  const TileFns<acc_t> fns = pick_fns<acc_t>(cpu_isa());
  const int64_t C = a.n_cols;
  const scalar_t* x = static_cast<const scalar_t*>(a.x);
  const target_t* t = static_cast<const target_t*>(a.t);
  scalar_t* grad = static_cast<scalar_t*>(a.grad);
  at::parallel_for(0, a.n_rows, row_grain(C), [&](int64_t r0, int64_t r1) {
    std::vector<acc_t> buf(static_cast<size_t>(3 * kTile));
    acc_t* xbuf = buf.data();
    acc_t* ybuf = xbuf + kTile;
    acc_t* gbuf = ybuf + kTile;
    for (int64_t r = r0; r < r1; ++r) {
      const scalar_t* xr = x + r * C;
      const target_t* tr = t + r * C;
      Lse<acc_t> neg = lse_init<acc_t>(), pos = lse_init<acc_t>();
      const acc_t* xs = nullptr;
      const acc_t* ys = nullptr;
      bool hard = true;
      for (int64_t c0 = 0; c0 < C; c0 += kTile) {
        const int64_t n = std::min(kTile, C - c0);
        xs = as_acc<acc_t>(xr + c0, n, xbuf);
        ys = as_acc<acc_t>(tr + c0, n, ybuf);
        hard = fns.dense_sums(&neg, &pos, xs, ys, n);
      }
      store_row<scalar_t>(a, r, lse_value(neg) + lse_value(pos));
      if (grad == nullptr) continue;
      scalar_t* gr = grad + r * C;
      for (int64_t c0 = 0; c0 < C; c0 += kTile) {
        const int64_t n = std::min(kTile, C - c0);
        if (C > kTile) {  // else xs, ys and hard are still the only tile's
          xs = as_acc<acc_t>(xr + c0, n, xbuf);
          ys = as_acc<acc_t>(tr + c0, n, ybuf);
          hard = kAlwaysHard || fns.all_hard(ys, n);
        }
        acc_t* g = grad_tile(gr + c0, gbuf);
        fns.dense_grads[hard](&neg, &pos, xs, ys, g, n);
        finish_grad_tile(gr + c0, g, n);
      }
    }
  });
}

// A listed index that takes part in the sums: in [0, C), and not the padding 0 under mask_zero.
bool is_positive(int64_t v, int64_t n_cols, bool mask_zero) {
  return v >= 0 && v < n_cols && !(mask_zero && v == 0);
}

// The negative weights of the tile [c0, c0 + n) (sparse_neg_weight: 0 for a listed or a masked
// class, else 1), walking the row's sorted indices p[0, k) from position j; returns the position
// after the tile's indices. Indices outside the tile are skipped (never written), whatever their order.
template <typename acc_t>
int64_t negative_weights(const int64_t* p, int64_t k, int64_t j, int64_t c0, int64_t n, bool mask_zero,
                         acc_t* w) {
  std::fill(w, w + n, sparse_neg_weight<acc_t>(0, false));
  if (mask_zero && c0 == 0) w[0] = sparse_neg_weight<acc_t>(0, true);
  const int64_t c1 = c0 + n;
  for (; j < k && p[j] < c1; ++j) {
    const int64_t v = p[j];
    if (v >= c0 && !(mask_zero && v == 0)) w[v - c0] = sparse_neg_weight<acc_t>(1, false);
  }
  return j;
}

// Overwrites g with sparse_grad for the listed classes of the tile, p[j0, j1): a class's count is the
// length of its run of equal indices.
template <typename acc_t>
void listed_grads(const Lse<acc_t>& neg, const Lse<acc_t>& pos, const int64_t* p, int64_t j0, int64_t j1,
                  int64_t c0, int64_t n, bool mask_zero, const acc_t* x, acc_t* g) {
  for (int64_t q = j0; q < j1;) {
    const int64_t v = p[q];
    int64_t e = q + 1;
    while (e < j1 && p[e] == v) ++e;
    if (v >= c0 && v < c0 + n && !(mask_zero && v == 0)) {
      g[v - c0] = sparse_grad(neg, pos, x[v - c0], e - q, false);
    }
    q = e;
  }
}

template <typename scalar_t>
void sparse_rows(const CpuArgs& a) {
  using acc_t = at::opmath_type<scalar_t>;
  const TileFns<acc_t> fns = pick_fns<acc_t>(cpu_isa());
  const int64_t C = a.n_cols, K = a.k;
  const bool mask_zero = a.mask_zero;
  const scalar_t* x = static_cast<const scalar_t*>(a.x);
  scalar_t* grad = static_cast<scalar_t*>(a.grad);
  at::parallel_for(0, a.n_rows, row_grain(C + K), [&](int64_t r0, int64_t r1) {
    std::vector<acc_t> buf(static_cast<size_t>(5 * kTile));
    acc_t* xbuf = buf.data();
    acc_t* wbuf = xbuf + kTile;
    acc_t* gbuf = wbuf + kTile;
    acc_t* pvals = gbuf + kTile;
    acc_t* pw = pvals + kTile;
    for (int64_t r = r0; r < r1; ++r) {
      const scalar_t* xr = x + r * C;
      const int64_t* p = a.idx + r * K;
      Lse<acc_t> pos = lse_init<acc_t>(), neg = lse_init<acc_t>();
      for (int64_t k0 = 0; k0 < K; k0 += kTile) {  // the positives: -s of each listing
        const int64_t m = std::min(kTile, K - k0);
        for (int64_t j = 0; j < m; ++j) {
          const int64_t v = p[k0 + j];
          pvals[j] = acc_t(0);
          pw[j] = acc_t(0);
          if (is_positive(v, C, mask_zero)) {
            pvals[j] = -static_cast<acc_t>(xr[v]);
            pw[j] = acc_t(1);
          }
        }
        fns.weighted_sum(&pos, pvals, pw, m);
      }
      const acc_t* xs = nullptr;
      int64_t j = 0, j_first = 0;
      for (int64_t c0 = 0; c0 < C; c0 += kTile) {
        const int64_t n = std::min(kTile, C - c0);
        xs = as_acc<acc_t>(xr + c0, n, xbuf);
        j_first = j;
        j = negative_weights(p, K, j, c0, n, mask_zero, wbuf);
        fns.weighted_sum(&neg, xs, wbuf, n);
      }
      store_row<scalar_t>(a, r, lse_value(neg) + lse_value(pos));
      if (grad == nullptr) continue;
      scalar_t* gr = grad + r * C;
      if (C > kTile) j = 0;
      for (int64_t c0 = 0; c0 < C; c0 += kTile) {
        const int64_t n = std::min(kTile, C - c0);
        if (C > kTile) {  // else xs, wbuf and [j_first, j) are still the only tile's
          xs = as_acc<acc_t>(xr + c0, n, xbuf);
          j_first = j;
          j = negative_weights(p, K, j, c0, n, mask_zero, wbuf);
        }
        acc_t* g = grad_tile(gr + c0, gbuf);
        fns.shares(&neg, xs, wbuf, g, n);
        listed_grads(neg, pos, p, j_first, j, c0, n, mask_zero, xs, g);
        finish_grad_tile(gr + c0, g, n);
      }
    }
  });
}

// (loss, scale) from the per-row losses, as fusedloss.ops.multilabel.finish_rows does.
std::tuple<at::Tensor, at::Tensor> finish(const std::vector<double>& row_loss, const at::Tensor& loss_none,
                                          int64_t reduction, const at::Tensor& x) {
  const at::TensorOptions acc_opts = x.options().dtype(opmath_dtype(x.scalar_type()));
  if (reduction == kNone) return {loss_none, at::scalar_tensor(1.0, acc_opts)};
  double total = 0.0;
  for (const double v : row_loss) total += v;
  const int64_t n = static_cast<int64_t>(row_loss.size());
  if (reduction == kSum) return {at::scalar_tensor(total, x.options()), at::scalar_tensor(1.0, acc_opts)};
  if (n == 0) {
    return {at::scalar_tensor(std::numeric_limits<double>::quiet_NaN(), x.options()),
            at::scalar_tensor(0.0, acc_opts)};
  }
  return {at::scalar_tensor(total / static_cast<double>(n), x.options()),
          at::scalar_tensor(1.0 / static_cast<double>(n), acc_opts)};
}

struct Outputs {
  at::Tensor x, loss_none, grad;
  std::vector<double> row_loss;
  CpuArgs args;
};

Outputs prepare(const at::Tensor& input, int64_t reduction, bool compute_grad) {
  Outputs o;
  o.x = input.contiguous();
  const int64_t n = o.x.size(0);
  o.loss_none = reduction == kNone ? at::empty({n}, o.x.options()) : at::Tensor();
  o.grad = compute_grad ? at::empty(o.x.sizes(), o.x.options()) : input.new_empty({0});
  o.row_loss.resize(static_cast<size_t>(n));
  CpuArgs& a = o.args;
  a.x = o.x.data_ptr();
  a.t = nullptr;
  a.idx = nullptr;
  a.loss = o.loss_none.defined() ? o.loss_none.data_ptr() : nullptr;
  a.grad = compute_grad ? o.grad.data_ptr() : nullptr;
  a.row_loss = o.row_loss.data();
  a.n_rows = n;
  a.n_cols = o.x.size(1);
  a.k = 0;
  a.mask_zero = false;
  return o;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> multilabel_ce_fwd_cpu(const at::Tensor& input,
                                                                     const at::Tensor& target,
                                                                     int64_t reduction, bool compute_grad) {
  CHECK_CPU(input);
  check_multilabel_ce_args(input, target, reduction);
  Outputs o = prepare(input, reduction, compute_grad);
  // Bool as uint8 (the same bytes, 0 or 1): its conversion loop vectorises, bool's does not.
  const at::Tensor t = target.scalar_type() == at::kBool ? target.contiguous().view(at::kByte) : target.contiguous();
  o.args.t = t.data_ptr();
  if (o.args.n_rows > 0) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, o.x.scalar_type(), "multilabel_ce_fwd_cpu", [&] {
      using input_t = scalar_t;
      AT_DISPATCH_ALL_TYPES_AND3(at::kHalf, at::kBFloat16, at::kBool, t.scalar_type(),
                                 "multilabel_ce_fwd_cpu_target", [&] { dense_rows<input_t, scalar_t>(o.args); });
    });
  }
  auto [loss, scale] = finish(o.row_loss, o.loss_none, reduction, o.x);
  return {loss, o.grad, scale};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> sparse_multilabel_ce_fwd_cpu(const at::Tensor& input,
                                                                            const at::Tensor& positive_index,
                                                                            bool mask_zero, int64_t reduction,
                                                                            bool compute_grad) {
  CHECK_CPU(input);
  check_sparse_multilabel_ce_args(input, positive_index, reduction);
  Outputs o = prepare(input, reduction, compute_grad);
  const at::Tensor idx = positive_index.contiguous();
  o.args.idx = idx.data_ptr<int64_t>();
  o.args.k = idx.size(1);
  o.args.mask_zero = mask_zero;
  if (o.args.n_rows > 0) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, o.x.scalar_type(), "sparse_multilabel_ce_fwd_cpu",
                                    [&] { sparse_rows<scalar_t>(o.args); });
  }
  auto [loss, scale] = finish(o.row_loss, o.loss_none, reduction, o.x);
  return {loss, o.grad, scale};
}

}  // namespace
}  // namespace multilabel
}  // namespace fusedloss

TORCH_LIBRARY_IMPL(fusedloss, CPU, m) {
  m.impl("multilabel_ce_fwd", TORCH_FN(fusedloss::multilabel::multilabel_ce_fwd_cpu));
  m.impl("sparse_multilabel_ce_fwd", TORCH_FN(fusedloss::multilabel::sparse_multilabel_ce_fwd_cpu));
}
