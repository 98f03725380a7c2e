// CPU kernel of fusedloss::sv_softmax_fwd (schema: fusedloss/ops/_library.py; math and algorithm:
// sv_softmax_math.h, the same functions the CUDA kernels run).
//
// The embeddings are taken in acc_t: fp16/bf16 are converted to float first and their gradients are
// produced in float and converted back. Rows run in parallel (at::parallel_for, at least ~kRowWork
// multiply-adds per task) in up to three passes:
//   pass 0 (normalize only): the sums of squares of every u_i and v_j ([B] each), so that pass 1
//           reads each v_{j_k} once per slot (its dot) and every reader of a row sees the same inv;
//   pass 1, per row i: the K + 1 cosines, row_loss_coef, the row's weighted loss and denominator,
//           and with a gradient G, G cos (scratch [B, K + 1]) and d/du_i: S = sum_k G_k inv(v_{j_k})
//           v_{j_k} accumulated in a row buffer (an axpy per slot), then grad_elem over it;
//   pass 2 (gradient only), per item row j: the K + 1 rows (i, k) that read v_j, d/dv_j likewise.
// The sums over slots (S and sum G cos) and grad_elem are taken in double whatever acc_t: float
// sums over hundreds of slots exceeded twice torch's error. Slots with G = 0 (rows not kept, zero
// weights, shares that underflow) are skipped in the sums of the gradients. Per-row losses and
// denominators go to double arrays and are summed in row order (the result does not depend on the
// thread count); the reduction is fusedloss.ops.sv_softmax.finish's.
//
// The loops over D are compiled for the x86-64 baseline, AVX2+FMA and AVX-512 and picked at run time
// (FUSEDLOSS_CPU_ISA=base|avx2 lowers it); dots are summed in acc_t over blocks of kSumBlock, the
// blocks in double.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/scalar_tensor.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <tuple>
#include <vector>

#include "../common/checks.h"
#include "../common/cpu_vector.h"
#include "sv_softmax_checks.h"
#include "sv_softmax_math.h"

#if defined(FUSEDLOSS_OPENMP_SIMD)
#define FL_SV_SIMD_SUM1 _Pragma("omp simd reduction(+ : s)")
#define FL_SV_SIMD _Pragma("omp simd")
#else
#define FL_SV_SIMD_SUM1
#define FL_SV_SIMD
#endif

namespace fusedloss {
namespace sv_softmax {
namespace {

constexpr int64_t kRowWork = 32768;  // at::parallel_for grain, in multiply-adds (rows x slots x D)
constexpr int64_t kSumBlock = 256;

// ---- Loops over D (compiled once per ISA) ----

template <typename acc_t>
FL_ALWAYS_INLINE acc_t dot_body(const acc_t* __restrict a, const acc_t* __restrict b, int64_t n) {
  double total = 0;
  for (int64_t i0 = 0; i0 < n; i0 += kSumBlock) {
    const int64_t i1 = std::min(n, i0 + kSumBlock);
    acc_t s = 0;
    FL_SV_SIMD_SUM1
    for (int64_t i = i0; i < i1; ++i) s += a[i] * b[i];
    total += static_cast<double>(s);
  }
  return static_cast<acc_t>(total);
}

// y += a x
template <typename acc_t>
FL_ALWAYS_INLINE void axpy_body(double* __restrict y, double a, const acc_t* __restrict x, int64_t n) {
  FL_SV_SIMD
  for (int64_t i = 0; i < n; ++i) y[i] += a * static_cast<double>(x[i]);
}

// g = grad_elem(s, a, gc, inv, proj) elementwise.
template <typename acc_t>
FL_ALWAYS_INLINE void finish_body(acc_t* __restrict g, const double* __restrict s, const acc_t* __restrict a,
                                  int64_t n, double gc, double inv, bool proj) {
  FL_SV_SIMD
  for (int64_t i = 0; i < n; ++i) g[i] = static_cast<acc_t>(grad_elem(s[i], static_cast<double>(a[i]), gc, inv, proj));
}

template <typename acc_t>
struct VecFns {
  acc_t (*dot)(const acc_t*, const acc_t*, int64_t);
  void (*axpy)(double*, double, const acc_t*, int64_t);
  void (*finish)(acc_t*, const double*, const acc_t*, int64_t, double, double, bool);
};

#define FL_SV_VARIANT(ATTR, SUFFIX)                                                         \
  template <typename acc_t>                                                                 \
  ATTR acc_t dot_##SUFFIX(const acc_t* a, const acc_t* b, int64_t n) {                      \
    return dot_body(a, b, n);                                                               \
  }                                                                                         \
  template <typename acc_t>                                                                 \
  ATTR void axpy_##SUFFIX(double* y, double a, const acc_t* x, int64_t n) {                 \
    axpy_body(y, a, x, n);                                                                  \
  }                                                                                         \
  template <typename acc_t>                                                                 \
  ATTR void finish_##SUFFIX(acc_t* g, const double* s, const acc_t* a, int64_t n, double gc, \
                            double inv, bool proj) {                                        \
    finish_body(g, s, a, n, gc, inv, proj);                                                 \
  }                                                                                         \
  template <typename acc_t>                                                                 \
  VecFns<acc_t> fns_##SUFFIX() {                                                            \
    return {&dot_##SUFFIX<acc_t>, &axpy_##SUFFIX<acc_t>, &finish_##SUFFIX<acc_t>};          \
  }

FL_SV_VARIANT(, base)
#if FL_CPU_MULTIVERSION
FL_SV_VARIANT(FL_TARGET_AVX2, avx2)
FL_SV_VARIANT(FL_TARGET_AVX512, avx512)
#endif
#undef FL_SV_VARIANT

template <typename acc_t>
VecFns<acc_t> pick_fns(Isa isa) {
#if FL_CPU_MULTIVERSION
  if (isa == Isa::kAvx512) return fns_avx512<acc_t>();
  if (isa == Isa::kAvx2) return fns_avx2<acc_t>();
#endif
  (void)isa;
  return fns_base<acc_t>();
}

// ---- Passes ----

template <typename acc_t>
struct Problem {
  VecFns<acc_t> fns;
  Params<acc_t> prm;
  const acc_t* u;          // [B, D]
  const acc_t* v;          // [B, D]
  const bool* kept;        // [B]
  const acc_t* w;          // [1] or [B], or nullptr (1)
  bool w_per_row;
  const int64_t* shifts;   // [K]
  acc_t* ss_u;             // [B] sums of squares (normalize), else nullptr
  acc_t* ss_v;
  acc_t* g;                // [B, K + 1] G and G cos (gradient), else nullptr
  acc_t* gc;
  acc_t* grad_u;           // [B, D] (gradient), else nullptr
  acc_t* grad_v;
  double* row_loss;        // [B]
  double* row_den;         // [B]
  int64_t B, D, K, reduction;
};

template <typename acc_t>
struct Norm {
  acc_t inv;
  bool proj;
};

template <typename acc_t>
Norm<acc_t> norm_of(const acc_t* ss, int64_t i, bool normalize) {
  const acc_t s = ss != nullptr ? ss[i] : acc_t(0);
  return {inv_norm(s, normalize), projects(s, normalize)};
}

template <typename acc_t>
int64_t grain_of(const Problem<acc_t>& P, int64_t slots) {
  return std::max<int64_t>(1, kRowWork / std::max<int64_t>(slots * P.D, 1));
}

template <typename acc_t>
void sums_of_squares(const Problem<acc_t>& P) {
  const int64_t D = P.D;
  at::parallel_for(0, P.B, grain_of(P, 2), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      P.ss_u[i] = P.fns.dot(P.u + i * D, P.u + i * D, D);
      P.ss_v[i] = P.fns.dot(P.v + i * D, P.v + i * D, D);
    }
  });
}

template <typename acc_t>
void user_rows(const Problem<acc_t>& P) {
  const int64_t B = P.B, D = P.D, K = P.K, S = K + 1;
  const bool normalize = P.prm.normalize;
  at::parallel_for(0, B, grain_of(P, 2 * S), [&](int64_t i0, int64_t i1) {
    std::vector<acc_t> cos(S), coef(S), inv_v(S);
    std::vector<int64_t> rows(S);
    std::vector<double> sbuf(static_cast<size_t>(std::max<int64_t>(D, 1)));
    for (int64_t i = i0; i < i1; ++i) {
      const acc_t* ui = P.u + i * D;
      const Norm<acc_t> nu = norm_of(P.ss_u, i, normalize);
      for (int64_t k = 0; k < S; ++k) {
        const int64_t j = k == 0 ? i : negative_row(i, P.shifts[k - 1], B);
        rows[k] = j;
        inv_v[k] = norm_of(P.ss_v, j, normalize).inv;
        cos[k] = nu.inv * inv_v[k] * P.fns.dot(ui, P.v + j * D, D);
      }
      const bool kept = P.kept[i];
      const acc_t w = P.w == nullptr ? acc_t(1) : P.w[P.w_per_row ? i : 0];
      const acc_t scale = kept ? w : acc_t(0);
      acc_t* G = P.g != nullptr ? P.g + i * S : coef.data();
      P.row_loss[i] = static_cast<double>(row_loss_coef(cos.data(), G, K, scale, P.prm));
      P.row_den[i] = static_cast<double>(row_den(kept, w, P.reduction));
      if (P.grad_u == nullptr) continue;

      acc_t* GC = P.gc + i * S;
      double gc = 0;
      for (int64_t k = 0; k < S; ++k) {
        GC[k] = G[k] * cos[k];
        gc += GC[k];
      }
      acc_t* gu = P.grad_u + i * D;
      if (scale == acc_t(0)) {
        std::fill(gu, gu + D, acc_t(0));
        continue;
      }
      double* sb = sbuf.data();
      std::fill(sb, sb + D, 0.0);
      for (int64_t k = 0; k < S; ++k) {
        const double a = static_cast<double>(G[k]) * static_cast<double>(inv_v[k]);
        if (a != 0.0) P.fns.axpy(sb, a, P.v + rows[k] * D, D);
      }
      P.fns.finish(gu, sb, ui, D, gc, nu.inv, nu.proj);
    }
  });
}

template <typename acc_t>
void item_rows(const Problem<acc_t>& P) {
  const int64_t B = P.B, D = P.D, K = P.K, S = K + 1;
  const bool normalize = P.prm.normalize;
  at::parallel_for(0, B, grain_of(P, S), [&](int64_t j0, int64_t j1) {
    std::vector<double> sbuf(static_cast<size_t>(std::max<int64_t>(D, 1)));
    double* sb = sbuf.data();
    for (int64_t j = j0; j < j1; ++j) {
      std::fill(sb, sb + D, 0.0);
      double gc = 0;
      for (int64_t k = 0; k < S; ++k) {
        const int64_t i = k == 0 ? j : reader_row(j, P.shifts[k - 1], B);
        const acc_t G = P.g[i * S + k];
        if (G == acc_t(0)) continue;
        gc += P.gc[i * S + k];
        const double a = static_cast<double>(G) * static_cast<double>(norm_of(P.ss_u, i, normalize).inv);
        P.fns.axpy(sb, a, P.u + i * D, D);
      }
      const Norm<acc_t> nv = norm_of(P.ss_v, j, normalize);
      P.fns.finish(P.grad_v + j * D, sb, P.v + j * D, D, gc, nv.inv, nv.proj);
    }
  });
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> sv_softmax_fwd_cpu(
    const at::Tensor& user, const at::Tensor& item, const at::Tensor& kept,
    const std::optional<at::Tensor>& weight, const at::Tensor& shifts, bool normalize, double margin,
    double gamma, double t, int64_t reduction, bool compute_grad) {
  CHECK_CPU(user);
  const at::Tensor w = check_sv_softmax_args(user, item, kept, weight, shifts, margin, gamma, t, reduction);
  const at::ScalarType dtype = user.scalar_type();
  const at::ScalarType acc = opmath_dtype(dtype);
  const at::Tensor u = user.to(acc).contiguous();
  const at::Tensor v = item.to(acc).contiguous();
  const at::Tensor kc = kept.contiguous();
  const at::Tensor r = shifts.contiguous();
  const int64_t B = u.size(0), D = u.size(1), K = r.numel();
  const at::TensorOptions acc_opts = u.options();

  at::Tensor grad_u = compute_grad ? at::empty({B, D}, acc_opts) : user.new_empty({0});
  at::Tensor grad_v = compute_grad ? at::empty({B, D}, acc_opts) : item.new_empty({0});
  std::vector<double> row_loss(static_cast<size_t>(B)), row_den(static_cast<size_t>(B));
  if (B > 0) {
    const at::Tensor ss = normalize ? at::empty({2, B}, acc_opts) : at::Tensor();
    const at::Tensor g = compute_grad ? at::empty({2, B, K + 1}, acc_opts) : at::Tensor();
    AT_DISPATCH_FLOATING_TYPES(acc, "sv_softmax_fwd_cpu", [&] {
      Problem<scalar_t> P;
      P.fns = pick_fns<scalar_t>(cpu_isa());
      P.prm.margin = static_cast<scalar_t>(margin);
      P.prm.gamma = static_cast<scalar_t>(gamma);
      P.prm.t = static_cast<scalar_t>(t);
      P.prm.normalize = normalize;
      P.u = u.data_ptr<scalar_t>();
      P.v = v.data_ptr<scalar_t>();
      P.kept = kc.data_ptr<bool>();
      P.w = w.defined() ? w.data_ptr<scalar_t>() : nullptr;
      P.w_per_row = w.defined() && w.numel() != 1;
      P.shifts = r.data_ptr<int64_t>();
      P.ss_u = normalize ? ss.data_ptr<scalar_t>() : nullptr;
      P.ss_v = normalize ? P.ss_u + B : nullptr;
      P.g = compute_grad ? g.data_ptr<scalar_t>() : nullptr;
      P.gc = compute_grad ? P.g + B * (K + 1) : nullptr;
      P.grad_u = compute_grad ? grad_u.data_ptr<scalar_t>() : nullptr;
      P.grad_v = compute_grad ? grad_v.data_ptr<scalar_t>() : nullptr;
      P.row_loss = row_loss.data();
      P.row_den = row_den.data();
      P.B = B;
      P.D = D;
      P.K = K;
      P.reduction = reduction;
      if (normalize) sums_of_squares(P);
      user_rows(P);
      if (compute_grad) item_rows(P);
    });
  }
  if (compute_grad && acc != dtype) {
    grad_u = grad_u.to(dtype);
    grad_v = grad_v.to(dtype);
  }

  // fusedloss.ops.sv_softmax.finish: sums over rows in double, in row order.
  double total = 0.0, den = 0.0;
  for (const double x : row_loss) total += x;
  if (reduction == kSum) {
    return {at::scalar_tensor(total, user.options()), grad_u, grad_v, at::scalar_tensor(1.0, acc_opts)};
  }
  for (const double x : row_den) den += x;
  if (den == 0.0) {
    return {at::scalar_tensor(0.0, user.options()), grad_u, grad_v, at::scalar_tensor(0.0, acc_opts)};
  }
  return {at::scalar_tensor(total / den, user.options()), grad_u, grad_v,
          at::scalar_tensor(1.0 / den, acc_opts)};
}

}  // namespace
}  // namespace sv_softmax
}  // namespace fusedloss

TORCH_LIBRARY_IMPL(fusedloss, CPU, m) {
  m.impl("sv_softmax_fwd", TORCH_FN(fusedloss::sv_softmax::sv_softmax_fwd_cpu));
}
