// CPU kernel of fusedloss::rowwise_fwd (schema: fusedloss/ops/_library.py; math: rowwise_math.h, the
// same functions the CUDA kernel runs; output contract: fusedloss/ops/rowwise.py).
//
// Rows of a, b (and c) [N, D] run in parallel (at::parallel_for) in fixed chunks of about kChunkWork
// elements. Per row, sweep 1 adds row_accumulate's element terms in acc_t over blocks of kBlock
// elements and the block sums in double (row_acc_merge of RowAcc<double>), row_finish gives the loss
// and the coefficients, and sweep 2 (with a gradient) writes grad_elems element by element. fp16/bf16
// blocks are converted to float in stack buffers first (and reused by sweep 2 when the row fits in one
// block); their gradients are computed in float and converted back. Each chunk's row losses are
// summed in double in row order and the chunks in chunk order, so the result does not depend on the
// thread count; the reduction is fusedloss.ops.rowwise.finish's.
//
// The D = 1 kinds (margin ranking, order calibration: up to millions of one-element rows) skip the
// row machinery: one flat loop over tiles of kFlatTile rows computes the loss, both gradients and the
// tile's loss sum.
//
// Speed: the loops are specialised at compile time on the kind (and for triplet on p in {1, 2, other}
// and swap) so that the switches of rowwise_math.h fold away and the loops vectorise (omp simd sums;
// the flat loop by plain auto-vectorisation, see FlatBlock); each is compiled for the x86-64
// baseline, AVX2+FMA and AVX-512 and picked at run time (cpu_vector.h; FUSEDLOSS_CPU_ISA=base|avx2
// lowers it).
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/scalar_tensor.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <optional>
#include <tuple>
#include <type_traits>
#include <vector>

#include "../common/checks.h"
#include "../common/cpu_vector.h"
#include "rowwise_checks.h"
#include "rowwise_math.h"

#if defined(FUSEDLOSS_OPENMP_SIMD)
#define FL_RW_SIMD_SUM3 _Pragma("omp simd reduction(+ : s0, s1, s2)")
#define FL_RW_SIMD_SUM _Pragma("omp simd reduction(+ : s)")
#define FL_RW_SIMD _Pragma("omp simd")
#else
#define FL_RW_SIMD_SUM3
#define FL_RW_SIMD_SUM
#define FL_RW_SIMD
#endif

// Every call of rowwise_math.h is inlined into the loops' bodies (GCC 12 left some out of line, and
// those loops scalar); the always_inline run() is then inlined into each ISA variant.
#if defined(__GNUC__)
#define FL_RW_FLATTEN __attribute__((flatten))
#else
#define FL_RW_FLATTEN
#endif

namespace fusedloss {
namespace rowwise {
namespace {

constexpr int64_t kBlock = 256;        // row elements summed in acc_t (and converted) at a time
constexpr int64_t kChunkWork = 16384;  // elements per chunk of rows: parallel grain and loss partial
constexpr int64_t kFlatTile = 1024;    // D = 1 kinds: rows per tile
constexpr int64_t kFlatChunk = 16 * kFlatTile;

// The params with what the loop is specialised on fixed at compile time (the same values the
// dispatch saw at run time), so that the switches and the p == 1 / p == 2 tests fold.
// kP: 0 (p read at run time), 1 or 2.
template <int kKind, int kP, bool kSwap, typename acc_t>
FL_ALWAYS_INLINE Params<acc_t> fixed(const Params<acc_t>& prm) {
  Params<acc_t> q = prm;
  q.kind = kKind;
  if constexpr (kP != 0) q.p = acc_t(kP);
  if constexpr (kKind == kTriplet) q.swap = kSwap;
  return q;
}

// ---- Loops over one block of a row (compiled once per ISA) ----

// Sweep 1: the block's RowAcc. Each element's term is row_accumulate applied to -0 (the identity of
// +, so the term is exact and costs no add), summed by a vector reduction.
template <typename acc_t, int kKind, int kP, bool kSwap>
struct SumBlock {
  using Sig = void(const acc_t*, const acc_t*, const acc_t*, int64_t, const Params<acc_t>&, RowAcc<acc_t>*);
  FL_RW_FLATTEN static FL_ALWAYS_INLINE void run(const acc_t* __restrict a, const acc_t* __restrict b,
                                                 const acc_t* __restrict c, int64_t n,
                                                 const Params<acc_t>& prm_ref, RowAcc<acc_t>* out) {
    const Params<acc_t> prm = fixed<kKind, kP, kSwap>(prm_ref);
    acc_t s0 = 0, s1 = 0, s2 = 0;
    FL_RW_SIMD_SUM3
    for (int64_t d = 0; d < n; ++d) {
      RowAcc<acc_t> r{acc_t(-0.0), acc_t(-0.0), acc_t(-0.0)};
      row_accumulate(r, a[d], b[d], kKind == kTriplet ? c[d] : acc_t(0), prm);
      s0 += r.s0;
      s1 += r.s1;
      s2 += r.s2;
    }
    *out = RowAcc<acc_t>{s0, s1, s2};
  }
};

// Sweep 2: the block's gradients (gc written for triplet only).
template <typename acc_t, int kKind, int kP, bool kSwap>
struct GradBlock {
  using Sig = void(const acc_t*, const acc_t*, const acc_t*, int64_t, const Coef<acc_t>&, const Params<acc_t>&,
                   acc_t*, acc_t*, acc_t*);
  FL_RW_FLATTEN static FL_ALWAYS_INLINE void run(const acc_t* __restrict a, const acc_t* __restrict b,
                                                 const acc_t* __restrict c, int64_t n, const Coef<acc_t>& k_ref,
                                                 const Params<acc_t>& prm_ref, acc_t* __restrict ga,
                                                 acc_t* __restrict gb, acc_t* __restrict gc) {
    const Params<acc_t> prm = fixed<kKind, kP, kSwap>(prm_ref);
    const Coef<acc_t> k = k_ref;
    FL_RW_SIMD
    for (int64_t d = 0; d < n; ++d) {
      acc_t x, y, z;
      grad_elems(a[d], b[d], kKind == kTriplet ? c[d] : acc_t(0), k, prm, acc_t(1), &x, &y, &z);
      ga[d] = x;
      gb[d] = y;
      if constexpr (kKind == kTriplet) gc[d] = z;
    }
  }
};

// D = 1 kinds: n one-element rows; writes every row's loss and both gradients (to scratch when not
// wanted: unconditional stores keep the loop branch-free) and returns the sum of the losses.
template <typename acc_t, int kKind>
struct FlatBlock {
  using Sig = double(const acc_t*, const acc_t*, const acc_t*, int64_t, const Params<acc_t>&, acc_t*, acc_t*,
                     acc_t*);
  FL_RW_FLATTEN static FL_ALWAYS_INLINE double run(const acc_t* __restrict a, const acc_t* __restrict b,
                                                   const acc_t* __restrict y, int64_t n,
                                                   const Params<acc_t>& prm_ref, acc_t* __restrict loss,
                                                   acc_t* __restrict ga, acc_t* __restrict gb) {
    const Params<acc_t> prm = fixed<kKind, 0, false>(prm_ref);
    // Plain auto-vectorisation: under omp simd GCC 12 kept r and k in memory for float and left the
    // loop scalar. The sum is a second (omp simd) loop over the tile, still in L1.
    for (int64_t i = 0; i < n; ++i) {
      RowAcc<acc_t> r = row_acc_zero<acc_t>();
      row_accumulate(r, a[i], b[i], acc_t(0), prm);
      Coef<acc_t> k{};
      const acc_t l = row_finish(r, kKind == kMarginRanking ? y[i] : acc_t(0), prm, &k);
      acc_t x, g, z;
      grad_elems(a[i], b[i], acc_t(0), k, prm, acc_t(1), &x, &g, &z);
      loss[i] = l;
      ga[i] = x;
      gb[i] = g;
    }
    acc_t s = 0;  // n <= kFlatTile terms; the tiles are summed in double
    FL_RW_SIMD_SUM
    for (int64_t i = 0; i < n; ++i) s += loss[i];
    return static_cast<double>(s);
  }
};

template <typename acc_t>
struct RowFns {
  typename SumBlock<acc_t, kCosineSimilarity, 0, false>::Sig* sum;
  typename GradBlock<acc_t, kCosineSimilarity, 0, false>::Sig* grad;
};

template <typename acc_t, int kKind, int kP, bool kSwap>
RowFns<acc_t> fns_of(Isa isa) {
  using S = SumBlock<acc_t, kKind, kP, kSwap>;
  using G = GradBlock<acc_t, kKind, kP, kSwap>;
  return {IsaVariants<S, typename S::Sig>::pick(isa), IsaVariants<G, typename G::Sig>::pick(isa)};
}

template <typename acc_t, int kP>
RowFns<acc_t> triplet_fns(bool swap, Isa isa) {
  return swap ? fns_of<acc_t, kTriplet, kP, true>(isa) : fns_of<acc_t, kTriplet, kP, false>(isa);
}

template <typename acc_t>
RowFns<acc_t> pick_row_fns(const Params<acc_t>& prm, Isa isa) {
  switch (prm.kind) {
    case kCosineEmbedding:
      return fns_of<acc_t, kCosineEmbedding, 0, false>(isa);
    case kCosineSimilarity:
      return fns_of<acc_t, kCosineSimilarity, 0, false>(isa);
    case kContrastive:
      return fns_of<acc_t, kContrastive, 0, false>(isa);
    default:  // kTriplet (the D = 1 kinds never get here)
      if (prm.p == acc_t(2)) return triplet_fns<acc_t, 2>(prm.swap, isa);
      if (prm.p == acc_t(1)) return triplet_fns<acc_t, 1>(prm.swap, isa);
      return triplet_fns<acc_t, 0>(prm.swap, isa);
  }
}

template <typename acc_t>
typename FlatBlock<acc_t, kMarginRanking>::Sig* pick_flat_fn(int64_t kind, Isa isa) {
  using M = FlatBlock<acc_t, kMarginRanking>;
  using O = FlatBlock<acc_t, kOrderCalibrate>;
  return kind == kMarginRanking ? IsaVariants<M, typename M::Sig>::pick(isa)
                                : IsaVariants<O, typename O::Sig>::pick(isa);
}

// ---- Drivers ----

template <typename scalar_t>
struct Problem {
  using acc_t = at::opmath_type<scalar_t>;
  const scalar_t* a;
  const scalar_t* b;
  const scalar_t* c;   // [N, D] (triplet), else nullptr
  const acc_t* y;      // [N] targets, or nullptr (0)
  acc_t* row_loss;     // [N] (reduction none), else nullptr
  scalar_t* ga;        // [N, D] (gradient), else nullptr
  scalar_t* gb;
  scalar_t* gc;        // [N, D] (gradient and c), else nullptr
  int64_t N, D;
  Params<acc_t> prm;
};

// p itself when it already holds acc_t (the output), else the scratch buffer.
template <typename acc_t, typename scalar_t>
acc_t* out_or(scalar_t* p, acc_t* buf) {
  if constexpr (std::is_same_v<scalar_t, acc_t>) {
    return p != nullptr ? p : buf;
  } else {
    (void)p;
    return buf;
  }
}

template <typename acc_t, typename scalar_t>
void store(scalar_t* dst, const acc_t* src, int64_t n) {
  if constexpr (!std::is_same_v<scalar_t, acc_t>) {
    for (int64_t k = 0; k < n; ++k) dst[k] = static_cast<scalar_t>(src[k]);
  } else {
    (void)dst;
    (void)src;
    (void)n;
  }
}

template <typename acc_t>
struct RowScratch {
  alignas(64) acc_t a[kBlock];
  alignas(64) acc_t b[kBlock];
  alignas(64) acc_t c[kBlock];
  alignas(64) acc_t ga[kBlock];
  alignas(64) acc_t gb[kBlock];
  alignas(64) acc_t gc[kBlock];
};

// Kinds with D elements per row; returns the sum of the row losses.
template <typename scalar_t>
double run_rows(const Problem<scalar_t>& P) {
  using acc_t = at::opmath_type<scalar_t>;
  constexpr bool kSame = std::is_same_v<scalar_t, acc_t>;
  const RowFns<acc_t> fns = pick_row_fns(P.prm, cpu_isa());
  const int64_t N = P.N, D = P.D;
  const int64_t rows_per_chunk = std::max<int64_t>(1, kChunkWork / std::max<int64_t>(D, 1));
  const int64_t num_chunks = (N + rows_per_chunk - 1) / rows_per_chunk;
  std::vector<double> partial(static_cast<size_t>(num_chunks));
  // Sweep 2 reuses sweep 1's converted block when the row is a single block.
  const bool reuse = !kSame && D <= kBlock;

  at::parallel_for(0, num_chunks, 1, [&](int64_t chunk0, int64_t chunk1) {
    RowScratch<acc_t> s;
    for (int64_t chunk = chunk0; chunk < chunk1; ++chunk) {
      const int64_t i0 = chunk * rows_per_chunk, i1 = std::min(N, i0 + rows_per_chunk);
      double total = 0;
      for (int64_t i = i0; i < i1; ++i) {
        const scalar_t* ai = P.a + i * D;
        const scalar_t* bi = P.b + i * D;
        const scalar_t* ci = P.c != nullptr ? P.c + i * D : nullptr;
        const acc_t* pa = nullptr;
        const acc_t* pb = nullptr;
        const acc_t* pc = nullptr;
        RowAcc<double> tot = row_acc_zero<double>();
        for (int64_t d0 = 0; d0 < D; d0 += kBlock) {
          const int64_t n = std::min(kBlock, D - d0);
          pa = as_acc(ai + d0, n, s.a);
          pb = as_acc(bi + d0, n, s.b);
          pc = ci != nullptr ? as_acc(ci + d0, n, s.c) : nullptr;
          RowAcc<acc_t> blk;
          fns.sum(pa, pb, pc, n, P.prm, &blk);
          tot = row_acc_merge(tot, RowAcc<double>{static_cast<double>(blk.s0), static_cast<double>(blk.s1),
                                                  static_cast<double>(blk.s2)});
        }
        const RowAcc<acc_t> r{static_cast<acc_t>(tot.s0), static_cast<acc_t>(tot.s1), static_cast<acc_t>(tot.s2)};
        Coef<acc_t> k{};
        const acc_t loss = row_finish(r, P.y != nullptr ? P.y[i] : acc_t(0), P.prm, &k);
        if (P.row_loss != nullptr) P.row_loss[i] = loss;
        total += static_cast<double>(loss);
        if (P.ga == nullptr) continue;

        scalar_t* gai = P.ga + i * D;
        scalar_t* gbi = P.gb + i * D;
        scalar_t* gci = P.gc != nullptr ? P.gc + i * D : nullptr;
        for (int64_t d0 = 0; d0 < D; d0 += kBlock) {
          const int64_t n = std::min(kBlock, D - d0);
          if (!reuse) {
            pa = as_acc(ai + d0, n, s.a);
            pb = as_acc(bi + d0, n, s.b);
            pc = ci != nullptr ? as_acc(ci + d0, n, s.c) : nullptr;
          }
          acc_t* oa = out_or<acc_t>(gai + d0, s.ga);
          acc_t* ob = out_or<acc_t>(gbi + d0, s.gb);
          acc_t* oc = out_or<acc_t>(gci != nullptr ? gci + d0 : nullptr, s.gc);
          fns.grad(pa, pb, pc, n, k, P.prm, oa, ob, oc);
          store(gai + d0, oa, n);
          store(gbi + d0, ob, n);
          if (gci != nullptr) store(gci + d0, oc, n);
        }
      }
      partial[static_cast<size_t>(chunk)] = total;
    }
  });
  double total = 0;
  for (const double x : partial) total += x;
  return total;
}

template <typename acc_t>
struct FlatScratch {
  alignas(64) acc_t a[kFlatTile];
  alignas(64) acc_t b[kFlatTile];
  alignas(64) acc_t loss[kFlatTile];
  alignas(64) acc_t ga[kFlatTile];
  alignas(64) acc_t gb[kFlatTile];
};

// The D = 1 kinds; returns the sum of the row losses.
template <typename scalar_t>
double run_flat(const Problem<scalar_t>& P) {
  using acc_t = at::opmath_type<scalar_t>;
  const auto fn = pick_flat_fn<acc_t>(P.prm.kind, cpu_isa());
  const int64_t N = P.N;
  const int64_t num_chunks = (N + kFlatChunk - 1) / kFlatChunk;
  std::vector<double> partial(static_cast<size_t>(num_chunks));

  at::parallel_for(0, num_chunks, 1, [&](int64_t chunk0, int64_t chunk1) {
    FlatScratch<acc_t> s;
    for (int64_t chunk = chunk0; chunk < chunk1; ++chunk) {
      const int64_t end = std::min(N, (chunk + 1) * kFlatChunk);
      double total = 0;
      for (int64_t i0 = chunk * kFlatChunk; i0 < end; i0 += kFlatTile) {
        const int64_t n = std::min(kFlatTile, end - i0);
        const acc_t* pa = as_acc(P.a + i0, n, s.a);
        const acc_t* pb = as_acc(P.b + i0, n, s.b);
        acc_t* loss = P.row_loss != nullptr ? P.row_loss + i0 : s.loss;
        scalar_t* gai = P.ga != nullptr ? P.ga + i0 : nullptr;
        scalar_t* gbi = P.gb != nullptr ? P.gb + i0 : nullptr;
        acc_t* oa = out_or<acc_t>(gai, s.ga);
        acc_t* ob = out_or<acc_t>(gbi, s.gb);
        total += fn(pa, pb, P.y != nullptr ? P.y + i0 : nullptr, n, P.prm, loss, oa, ob);
        if (gai != nullptr) {
          store(gai, oa, n);
          store(gbi, ob, n);
        }
      }
      partial[static_cast<size_t>(chunk)] = total;
    }
  });
  double total = 0;
  for (const double x : partial) total += x;
  return total;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> rowwise_fwd_cpu(
    const at::Tensor& a_in, const at::Tensor& b_in, const std::optional<at::Tensor>& c_opt,
    const std::optional<at::Tensor>& target_opt, int64_t kind, double margin, double p, double eps, bool swap,
    int64_t reduction, bool compute_grad) {
  CHECK_CPU(a_in);
  at::Tensor c_in, t_in;
  std::tie(c_in, t_in) = check_rowwise_args(a_in, b_in, c_opt, target_opt, kind, margin, p, eps, reduction);
  const at::Tensor a = a_in.contiguous();
  const at::Tensor b = b_in.contiguous();
  const at::Tensor c = c_in.defined() ? c_in.contiguous() : at::Tensor();
  const at::Tensor t = t_in.defined() ? t_in.contiguous() : at::Tensor();
  const int64_t N = a.size(0), D = a.size(1);
  const at::ScalarType dtype = a.scalar_type();
  const at::ScalarType acc = opmath_dtype(dtype);
  const at::TensorOptions acc_opts = a.options().dtype(acc);

  at::Tensor ga = compute_grad ? at::empty({N, D}, a.options()) : a.new_empty({0});
  at::Tensor gb = compute_grad ? at::empty({N, D}, a.options()) : a.new_empty({0});
  at::Tensor gc = compute_grad && c.defined() ? at::empty({N, D}, a.options()) : a.new_empty({0});
  const at::Tensor row_loss = reduction == 0 ? at::empty({N}, acc_opts) : at::Tensor();
  double total = 0.0;
  if (N > 0) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "rowwise_fwd_cpu", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      Problem<scalar_t> P;
      P.a = a.const_data_ptr<scalar_t>();
      P.b = b.const_data_ptr<scalar_t>();
      P.c = c.defined() ? c.const_data_ptr<scalar_t>() : nullptr;
      P.y = t.defined() ? t.const_data_ptr<acc_t>() : nullptr;
      P.row_loss = row_loss.defined() ? row_loss.mutable_data_ptr<acc_t>() : nullptr;
      P.ga = compute_grad ? ga.mutable_data_ptr<scalar_t>() : nullptr;
      P.gb = compute_grad ? gb.mutable_data_ptr<scalar_t>() : nullptr;
      P.gc = compute_grad && c.defined() ? gc.mutable_data_ptr<scalar_t>() : nullptr;
      P.N = N;
      P.D = D;
      P.prm.kind = kind;
      P.prm.margin = static_cast<acc_t>(margin);
      P.prm.p = static_cast<acc_t>(p);
      P.prm.eps = static_cast<acc_t>(eps);
      P.prm.swap = swap;
      total = kind == kMarginRanking || kind == kOrderCalibrate ? run_flat(P) : run_rows(P);
    });
  }

  // fusedloss.ops.rowwise.finish: the sum in double; the mean multiplies it by 1/N in acc_t.
  const at::TensorOptions out_opts = a.options();
  if (reduction == 0) {
    return {row_loss.to(dtype), ga, gb, gc, at::scalar_tensor(1.0, acc_opts)};
  }
  if (reduction == 1) {
    return {at::scalar_tensor(total, out_opts), ga, gb, gc, at::scalar_tensor(1.0, acc_opts)};
  }
  double scale = std::numeric_limits<double>::quiet_NaN();
  if (N > 0) {
    const double inv_n = 1.0 / static_cast<double>(N);
    scale = acc == at::kDouble ? inv_n : static_cast<double>(static_cast<float>(inv_n));
  }
  return {at::scalar_tensor(total * scale, out_opts), ga, gb, gc, at::scalar_tensor(scale, acc_opts)};
}

}  // namespace
}  // namespace rowwise
}  // namespace fusedloss

TORCH_LIBRARY_IMPL(fusedloss, CPU, m) {
  m.impl("rowwise_fwd", TORCH_FN(fusedloss::rowwise::rowwise_fwd_cpu));
}
