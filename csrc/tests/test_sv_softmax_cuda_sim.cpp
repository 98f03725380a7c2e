// The CUDA sv_softmax kernels themselves (sv_softmax_cuda.cu: sums of squares, pass 1 per user row,
// pass 2 per item row), run on the CPU by the emulator of csrc/tests/cuda_sim through their extern "C"
// launcher, against a float64 O(B (K + 1) D) loop composed from sv_softmax_math.h (row_loss_coef,
// row_den, negative_row, inv_norm / projects / grad_elem; checked against spec 6.1 by
// test_sv_softmax_math.cpp) on the same rounded inputs. Run by ctest; exits nonzero on any failure.
// What a GPU run adds is timing and the last bits of exp / log / sqrt; the warp-per-row indexing, the
// 32-slot broadcast groups, the shared / global cosine paths, the kChunk gradient loops and the
// shuffle reductions are the kernels' own code here.
//
//  1. Every input dtype (float32, float64, float16, bfloat16, the 16-bit ones through the emulator's
//     stand-ins, the truth on the same rounded values): B from 1 to 41 (around the 8-row block), D from 0
//     to 260 (0, 1, 31, 32, 33, 129, 260: around the warp and the 128-element gradient chunk),
//     K in {1, 3, 31, 32} (around the 32-slot groups) and one of 127, 128, 140 per dtype (K + 1 = 128
//     keeps the cosines in shared memory, 129 and more in the global scratch, with and without the
//     gradient), with and without normalisation, weights none / [1] / [B] with zeros, reductions
//     1 / 2 / 3, rows not kept, shifts negative, >= B and at the int64 limits, margins, gammas and t,
//     with and without the gradient. Outputs, each starting NaN so that an element left unwritten
//     fails: row_loss, the scratch G and G cos (with the gradient) within e (1 + gamma (1 + |t|)) of
//     their scale, e = eps(acc_t) (D / 32 + 4) the cosines' error; row_den exactly; the sums of
//     squares within 2e relative; grad_user and grad_item per element within e (1 + gamma (1 + |t|))
//     of the sum of their terms' magnitudes, plus half an ulp of the stored float16 / bfloat16; the
//     reduced loss as the binding finishes it (sum row_loss / sum row_den, 0 when that is 0).
//  2. The clamped norm (a zero row with normalisation, float32 and float64), gamma 30, no row kept.
//  3. A repeated launch gives the same bits (no atomics: a fixed order).
//  4. Launch arguments the launcher rejects (kSvSoftmaxBadArgs, kSvSoftmaxBadInputDType; B too large
//     for gridDim.y), the optional pointers it accepts as null, and the empty batch (returns 0,
//     writes nothing, with any pointers and dtype).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <vector>

#include "check.h"
#include "sim_data.h"
#include "../sv_softmax/sv_softmax_cuda.h"
#include "../sv_softmax/sv_softmax_math.h"

namespace sv = fusedloss::sv_softmax;
using fltest::expect;
using fltest::expect_close;

namespace {

using flsim::randint;
using flsim::uniform;


// The element types: rounding from double, the value back, a NaN pattern, the launcher's code and the
// relative half ulp of the stored value.
template <typename T>
struct Elem;
template <>
struct Elem<float> {
  using acc_t = float;  // the kernels' AccOf
  static float of(double x) { return static_cast<float>(x); }
  static double val(float x) { return x; }
  static float nan() { return std::numeric_limits<float>::quiet_NaN(); }
  static constexpr int32_t code = kSvSoftmaxF32;
  static constexpr double half_ulp = 0.0;
  static constexpr double half_ulp_abs = 0.0;
  static constexpr const char* name = "f32";
};
template <>
struct Elem<double> {
  using acc_t = double;  // the kernels' AccOf
  static double of(double x) { return x; }
  static double val(double x) { return x; }
  static double nan() { return std::numeric_limits<double>::quiet_NaN(); }
  static constexpr int32_t code = kSvSoftmaxF64;
  static constexpr double half_ulp = 0.0;
  static constexpr double half_ulp_abs = 0.0;
  static constexpr const char* name = "f64";
};
template <>
struct Elem<__half> {
  using acc_t = float;  // the kernels' AccOf
  static __half of(double x) { return __float2half_rn(static_cast<float>(x)); }
  static double val(__half x) { return __half2float(x); }
  static __half nan() { return __half{0x7e00u}; }
  static constexpr int32_t code = kSvSoftmaxF16;
  static constexpr double half_ulp = 0x1p-11;
  static constexpr double half_ulp_abs = 0x1p-25;  // subnormals
  static constexpr const char* name = "f16";
};
template <>
struct Elem<__nv_bfloat16> {
  using acc_t = float;  // the kernels' AccOf
  static __nv_bfloat16 of(double x) { return __float2bfloat16_rn(static_cast<float>(x)); }
  static double val(__nv_bfloat16 x) { return __bfloat162float(x); }
  static __nv_bfloat16 nan() { return __nv_bfloat16{0x7fc0u}; }
  static constexpr int32_t code = kSvSoftmaxBF16;
  static constexpr double half_ulp = 0x1p-8;
  static constexpr double half_ulp_abs = 0x1p-134;
  static constexpr const char* name = "bf16";
};

enum Weights { kNone, kScalar, kPerRow };

struct Case {
  int64_t B, D, K;
  bool normalize;
  Weights weights;
  int32_t reduction;
  bool grad;
  double margin, gamma, t;
  int64_t zero_row = -1;  // u and v of this row all zero (the clamped norm)
  bool extreme_shifts = false;
  bool none_kept = false;
};

// Host copies of one batch: the stored inputs and their values as doubles.
template <typename scalar_t>
struct Batch {
  using acc_t = typename Elem<scalar_t>::acc_t;
  std::vector<scalar_t> u, v;
  std::vector<double> ud, vd;
  std::vector<acc_t> w;
  std::vector<double> wd;  // per row
  std::vector<int64_t> shifts;
  std::unique_ptr<bool[]> kept;
};

template <typename scalar_t>
void make_batch(const Case& c, Batch<scalar_t>* b) {
  using acc_t = typename Batch<scalar_t>::acc_t;
  const size_t n = static_cast<size_t>(c.B * c.D);
  b->u.resize(n);
  b->v.resize(n);
  b->ud.resize(n);
  b->vd.resize(n);
  for (int64_t i = 0; i < c.B; ++i) {
    // Rows of varied norms with normalisation, else of norm about 1 (raw dots as cosines).
    const double su = c.normalize ? uniform(0.2, 3.0) : 1.0 / std::sqrt(static_cast<double>(std::max<int64_t>(c.D, 1)));
    const double sv_ = c.normalize ? uniform(0.2, 3.0) : su;
    for (int64_t d = 0; d < c.D; ++d) {
      const size_t e = static_cast<size_t>(i * c.D + d);
      const bool zero = i == c.zero_row;
      b->u[e] = Elem<scalar_t>::of(zero ? 0.0 : su * uniform(-1.7, 1.7));
      b->v[e] = Elem<scalar_t>::of(zero ? 0.0 : sv_ * uniform(-1.7, 1.7));
      b->ud[e] = Elem<scalar_t>::val(b->u[e]);
      b->vd[e] = Elem<scalar_t>::val(b->v[e]);
    }
  }
  b->kept.reset(new bool[static_cast<size_t>(std::max<int64_t>(c.B, 1))]);
  for (int64_t i = 0; i < c.B; ++i) b->kept[static_cast<size_t>(i)] = !c.none_kept && randint(0, 4) != 0;
  b->w.clear();
  if (c.weights == kScalar) b->w.push_back(static_cast<acc_t>(uniform(0.3, 2.0)));
  if (c.weights == kPerRow) {
    for (int64_t i = 0; i < c.B; ++i) b->w.push_back(static_cast<acc_t>(randint(0, 3) == 0 ? 0.0 : uniform(0.1, 2.0)));
  }
  b->wd.assign(static_cast<size_t>(c.B), 1.0);
  for (int64_t i = 0; i < c.B; ++i) {
    const size_t wi = c.weights == kPerRow ? static_cast<size_t>(i) : 0;
    if (!b->w.empty()) b->wd[static_cast<size_t>(i)] = static_cast<double>(b->w[wi]);
  }
  b->shifts.resize(static_cast<size_t>(c.K));
  for (int64_t k = 0; k < c.K; ++k) b->shifts[static_cast<size_t>(k)] = randint(-3 * c.B, 3 * c.B);
  if (c.extreme_shifts && c.K >= 3) {
    b->shifts[0] = std::numeric_limits<int64_t>::max();
    b->shifts[1] = std::numeric_limits<int64_t>::min();
    b->shifts[2] = std::numeric_limits<int64_t>::min() + 1;
  }
}

// The float64 truth from sv_softmax_math.h on the batch's stored values, parameters as acc_t holds them.
struct Truth {
  std::vector<double> loss, den, ss_u, ss_v, cos, coef, gu, gv, gu_mag, gv_mag;
  double total = 0.0, den_sum = 0.0, total_tol = 0.0;
  double min_gap = INFINITY;  // of the kept rows' hard-negative decisions
};

template <typename scalar_t>
Truth truth(const Case& c, const Batch<scalar_t>& b, double margin, double gamma, double t) {
  const int64_t B = c.B, D = c.D, K = c.K, S = K + 1;
  Truth r;
  r.loss.assign(static_cast<size_t>(B), 0.0);
  r.den.assign(static_cast<size_t>(B), 0.0);
  r.ss_u.assign(static_cast<size_t>(B), 0.0);
  r.ss_v.assign(static_cast<size_t>(B), 0.0);
  r.cos.assign(static_cast<size_t>(B * S), 0.0);
  r.coef.assign(static_cast<size_t>(B * S), 0.0);
  r.gu.assign(static_cast<size_t>(B * D), 0.0);
  r.gv.assign(static_cast<size_t>(B * D), 0.0);
  r.gu_mag.assign(static_cast<size_t>(B * D), 0.0);
  r.gv_mag.assign(static_cast<size_t>(B * D), 0.0);
  std::vector<double> inv_u(static_cast<size_t>(B)), inv_v(static_cast<size_t>(B));
  std::vector<char> proj_u(static_cast<size_t>(B)), proj_v(static_cast<size_t>(B));
  for (int64_t i = 0; i < B; ++i) {
    double su = 0.0, sv_ = 0.0;
    for (int64_t d = 0; d < D; ++d) {
      su += b.ud[static_cast<size_t>(i * D + d)] * b.ud[static_cast<size_t>(i * D + d)];
      sv_ += b.vd[static_cast<size_t>(i * D + d)] * b.vd[static_cast<size_t>(i * D + d)];
    }
    r.ss_u[static_cast<size_t>(i)] = su;
    r.ss_v[static_cast<size_t>(i)] = sv_;
    inv_u[static_cast<size_t>(i)] = sv::inv_norm(su, c.normalize);
    inv_v[static_cast<size_t>(i)] = sv::inv_norm(sv_, c.normalize);
    proj_u[static_cast<size_t>(i)] = sv::projects(su, c.normalize);
    proj_v[static_cast<size_t>(i)] = sv::projects(sv_, c.normalize);
  }
  const sv::Params<double> prm{margin, gamma, t, c.normalize};
  std::vector<double> gc_v(static_cast<size_t>(B), 0.0), gc_v_abs(static_cast<size_t>(B), 0.0);
  std::vector<double> su_row(static_cast<size_t>(D)), su_abs(static_cast<size_t>(D));
  for (int64_t i = 0; i < B; ++i) {
    const size_t is = static_cast<size_t>(i);
    double* cs = r.cos.data() + i * S;
    for (int64_t k = 0; k < S; ++k) {
      const int64_t j = k == 0 ? i : sv::negative_row(i, b.shifts[static_cast<size_t>(k - 1)], B);
      double dot = 0.0;
      for (int64_t d = 0; d < D; ++d) {
        dot += b.ud[static_cast<size_t>(i * D + d)] * b.vd[static_cast<size_t>(j * D + d)];
      }
      cs[k] = inv_u[is] * inv_v[static_cast<size_t>(j)] * dot;
    }
    const bool kept = b.kept[is];
    const double scale = kept ? b.wd[is] : 0.0;
    r.loss[is] = sv::row_loss_coef(cs, r.coef.data() + i * S, K, scale, prm);
    r.den[is] = sv::row_den(kept, b.wd[is], c.reduction);
    r.total += r.loss[is];
    r.den_sum += r.den[is];
    if (scale != 0.0) {
      for (int64_t k = 1; k < S; ++k) r.min_gap = std::min(r.min_gap, std::fabs(cs[0] - margin - cs[k]));
    }
    // d/du_i and the terms of d/dv_j.
    double gc = 0.0, gc_abs = 0.0;
    std::fill(su_row.begin(), su_row.end(), 0.0);
    std::fill(su_abs.begin(), su_abs.end(), 0.0);
    for (int64_t k = 0; k < S; ++k) {
      const int64_t j = k == 0 ? i : sv::negative_row(i, b.shifts[static_cast<size_t>(k - 1)], B);
      const size_t js = static_cast<size_t>(j);
      const double g = r.coef[static_cast<size_t>(i * S + k)];
      gc += g * cs[k];
      gc_abs += std::fabs(g * cs[k]);
      gc_v[js] += g * cs[k];
      gc_v_abs[js] += std::fabs(g * cs[k]);
      for (int64_t d = 0; d < D; ++d) {
        const double vjd = b.vd[static_cast<size_t>(j * D + d)], uid = b.ud[static_cast<size_t>(i * D + d)];
        su_row[static_cast<size_t>(d)] += g * inv_v[js] * vjd;
        su_abs[static_cast<size_t>(d)] += std::fabs(g * inv_v[js] * vjd);
        r.gv[static_cast<size_t>(j * D + d)] += g * inv_u[is] * uid;  // S_v, finished below
        r.gv_mag[static_cast<size_t>(j * D + d)] += std::fabs(g * inv_u[is] * uid);
      }
    }
    for (int64_t d = 0; d < D; ++d) {
      const size_t e = static_cast<size_t>(i * D + d);
      const double a = b.ud[e];
      r.gu[e] = sv::grad_elem(su_row[static_cast<size_t>(d)], a, gc, inv_u[is], proj_u[is] != 0);
      const double proj_term = proj_u[is] ? gc_abs * inv_u[is] * std::fabs(a) : 0.0;
      r.gu_mag[e] = inv_u[is] * (su_abs[static_cast<size_t>(d)] + proj_term);
    }
  }
  for (int64_t j = 0; j < B; ++j) {
    const size_t js = static_cast<size_t>(j);
    for (int64_t d = 0; d < D; ++d) {
      const size_t e = static_cast<size_t>(j * D + d);
      const double a = b.vd[e];
      r.gv[e] = sv::grad_elem(r.gv[e], a, gc_v[js], inv_v[js], proj_v[js] != 0);
      r.gv_mag[e] = inv_v[js] * (r.gv_mag[e] + (proj_v[js] ? gc_v_abs[js] * inv_v[js] * std::fabs(a) : 0.0));
    }
  }
  return r;
}

// The launcher's outputs, as doubles.
struct Out {
  int rc = 0;
  std::vector<double> loss, den, ss, coef, coef_cos, gu, gv;
};

template <typename scalar_t>
Out run(const Case& c, const Batch<scalar_t>& b, double margin) {
  using acc_t = typename Batch<scalar_t>::acc_t;
  const int64_t B = c.B, D = c.D, S = c.K + 1;
  const acc_t nan = std::numeric_limits<acc_t>::quiet_NaN();
  std::vector<acc_t> loss(static_cast<size_t>(B), nan), den(static_cast<size_t>(B), nan);
  std::vector<acc_t> ss(c.normalize ? static_cast<size_t>(2 * B) : 0, nan);
  const bool scratch = c.grad || S > kSvSoftmaxSmemSlots;
  std::vector<acc_t> coef(scratch ? static_cast<size_t>(2 * B * S) : 0, nan);
  // At least one element, so that D = 0 passes non-null gradient pointers (the gradient path).
  std::vector<scalar_t> gu(c.grad ? static_cast<size_t>(std::max<int64_t>(B * D, 1)) : 0, Elem<scalar_t>::nan());
  std::vector<scalar_t> gv(c.grad ? static_cast<size_t>(std::max<int64_t>(B * D, 1)) : 0, Elem<scalar_t>::nan());
  SvSoftmaxLaunchArgs a{};
  a.user = b.u.data();
  a.item = b.v.data();
  a.kept = b.kept.get();
  a.weight = b.w.empty() ? nullptr : b.w.data();
  a.shifts = b.shifts.data();
  a.row_loss = loss.data();
  a.row_den = den.data();
  a.sumsq_user = c.normalize ? ss.data() : nullptr;
  a.sumsq_item = c.normalize ? ss.data() + B : nullptr;
  a.coef = scratch ? coef.data() : nullptr;
  a.coef_cos = scratch ? coef.data() + B * S : nullptr;
  a.grad_user = c.grad ? gu.data() : nullptr;
  a.grad_item = c.grad ? gv.data() : nullptr;
  a.B = B;
  a.D = D;
  a.K = c.K;
  a.margin = margin;
  a.gamma = c.gamma;
  a.t = c.t;
  a.normalize = c.normalize ? 1 : 0;
  a.reduction = c.reduction;
  a.weight_per_row = c.weights == kPerRow ? 1 : 0;
  a.input_dtype = Elem<scalar_t>::code;
  Out o;
  o.rc = fusedloss_sv_softmax_fwd_cuda(&a, nullptr);
  o.loss.assign(loss.begin(), loss.end());
  o.den.assign(den.begin(), den.end());
  o.ss.assign(ss.begin(), ss.end());
  if (scratch) {
    o.coef.assign(coef.begin(), coef.begin() + B * S);
    o.coef_cos.assign(coef.begin() + B * S, coef.end());
  }
  for (size_t e = 0; c.grad && e < static_cast<size_t>(B * D); ++e) {
    o.gu.push_back(Elem<scalar_t>::val(gu[e]));
    o.gv.push_back(Elem<scalar_t>::val(gv[e]));
  }
  return o;
}

bool same_bits(const std::vector<double>& x, const std::vector<double>& y) {
  return x.size() == y.size() && (x.empty() || std::memcmp(x.data(), y.data(), x.size() * sizeof(double)) == 0);
}

template <typename scalar_t>
void check_case(Case c, bool repeat = false) {
  using acc_t = typename Batch<scalar_t>::acc_t;
  Batch<scalar_t> b;
  make_batch(c, &b);
  // Parameters as acc_t holds them; the margin moved off any hard-negative decision that float and
  // double could take differently.
  const double eps = std::numeric_limits<acc_t>::epsilon();
  const double gap = sizeof(acc_t) == 4 ? 1e-4 : 1e-9;
  double margin = c.margin;
  Truth r;
  for (;;) {
    margin = static_cast<double>(static_cast<acc_t>(margin));
    r = truth(c, b, margin, static_cast<double>(static_cast<acc_t>(c.gamma)),
              static_cast<double>(static_cast<acc_t>(c.t)));
    if (r.min_gap > gap) break;
    margin += 0.0173;
  }
  const Out o = run(c, b, margin);
  char ctx[256];
  std::snprintf(ctx, sizeof ctx, "%s B %lld D %lld K %lld norm %d weights %d red %d grad %d m %g gamma %g t %g",
                Elem<scalar_t>::name, static_cast<long long>(c.B), static_cast<long long>(c.D),
                static_cast<long long>(c.K), c.normalize, c.weights, c.reduction, c.grad, margin, c.gamma, c.t);
  expect(o.rc == 0, "launch status", o.rc, 0, ctx);
  const int64_t B = c.B, D = c.D, S = c.K + 1;
  // The cosines' error (dot products of D terms: a strided sum of D / 32 then 5 shuffle steps, then
  // the two inverse norms), and the loss's and coefficients' sensitivity to it.
  const double e_cos = eps * (static_cast<double>(D) / 32.0 + 4.0);
  const double sens = c.gamma * (1.0 + std::fabs(c.t));
  const double tol = e_cos * (1.0 + sens);
  double total_tol = 0.0;
  for (int64_t i = 0; i < B; ++i) {
    const size_t is = static_cast<size_t>(i);
    const double w = std::fabs(b.wd[is]);
    const double ltol = tol * w * (std::fabs(r.loss[is]) / std::max(w, 1e-300) + sens) + 1e-300;
    total_tol += ltol;
    expect_close("row_loss", o.loss[is], r.loss[is], 0.0, ltol, ctx);
    expect(o.den[is] == r.den[is], "row_den", o.den[is], r.den[is], ctx);
    if (c.normalize) {
      const double stol = 2.0 * e_cos;
      expect_close("sumsq_user", o.ss[is], r.ss_u[is], stol, 0.0, ctx);
      expect_close("sumsq_item", o.ss[static_cast<size_t>(B + i)], r.ss_v[is], stol, 0.0, ctx);
    }
    if (c.grad) {
      const double ctol = tol * w * c.gamma * std::max(1.0, std::fabs(c.t)) + 1e-300;
      for (int64_t k = 0; k < S; ++k) {
        const size_t e = static_cast<size_t>(i * S + k);
        expect_close("coef (G)", o.coef[e], r.coef[e], 0.0, ctol, ctx);
        expect_close("coef_cos (G cos)", o.coef_cos[e], r.coef[e] * r.cos[e], 0.0,
                     ctol * (std::fabs(r.cos[e]) + 1.0), ctx);
      }
    }
  }
  // The reduced loss as the binding finishes it (fusedloss.ops.sv_softmax.finish).
  double got_total = 0.0, got_den = 0.0;
  for (int64_t i = 0; i < B; ++i) {
    got_total += o.loss[static_cast<size_t>(i)];
    got_den += o.den[static_cast<size_t>(i)];
  }
  const double want_red = c.reduction == sv::kSum ? r.total : (r.den_sum != 0.0 ? r.total / r.den_sum : 0.0);
  const double got_red = c.reduction == sv::kSum ? got_total : (got_den != 0.0 ? got_total / got_den : 0.0);
  const double red_tol = c.reduction == sv::kSum ? total_tol : total_tol / std::max(r.den_sum, 1.0);
  expect_close("reduced loss", got_red, want_red, 0.0, red_tol + 1e-300, ctx);
  if (c.grad) {
    const double hu = Elem<scalar_t>::half_ulp, hua = Elem<scalar_t>::half_ulp_abs;
    const double gtol = tol;
    for (size_t e = 0; e < static_cast<size_t>(B * D); ++e) {
      const double atol_u = gtol * r.gu_mag[e] * (1.0 + hu) + hu * std::fabs(r.gu[e]) + hua + 1e-300;
      const double atol_v = gtol * r.gv_mag[e] * (1.0 + hu) + hu * std::fabs(r.gv[e]) + hua + 1e-300;
      expect_close("grad_user", o.gu[e], r.gu[e], 0.0, atol_u, ctx);
      expect_close("grad_item", o.gv[e], r.gv[e], 0.0, atol_v, ctx);
    }
  }
  if (repeat) {
    const Out o2 = run(c, b, margin);
    const bool same = o2.rc == 0 && same_bits(o.loss, o2.loss) && same_bits(o.coef, o2.coef) &&
                      same_bits(o.coef_cos, o2.coef_cos) && same_bits(o.gu, o2.gu) && same_bits(o.gv, o2.gv);
    expect(same, "a repeated launch gives the same bits", 0, 0, ctx);
  }
}

// Random options for one shape.
Case random_case(int64_t B, int64_t D, int64_t K) {
  Case c{};
  c.B = B;
  c.D = D;
  c.K = K;
  c.normalize = randint(0, 2) != 0;
  c.weights = static_cast<Weights>(randint(0, 2));
  c.reduction = static_cast<int32_t>(randint(1, 3));
  c.grad = randint(0, 4) != 0;
  const double margins[] = {0.0, 0.1, 0.35, -0.2};
  const double gammas[] = {1.0, 2.5, 8.0};
  const double ts[] = {1.0, 1.4, 2.0, 0.8};
  c.margin = margins[randint(0, 3)];
  c.gamma = gammas[randint(0, 2)];
  c.t = ts[randint(0, 3)];
  return c;
}

struct Shape {
  int64_t B, D, K;
};

// Shapes around the 8-row block, the 32-lane warp and the 128-element gradient chunk in D and the
// 32-slot groups in K + 1, with random options; one shape around the 128-slot shared-memory limit
// per dtype (the emulator's cost grows with B (K + 1)); each reduction, weight kind and normalisation
// at least once with the gradient; a repeated launch.
template <typename scalar_t>
void dtype_cases(Shape big_k) {
  const Shape shapes[] = {{1, 1, 1},   {1, 33, 4},  {7, 32, 3},   {8, 31, 31}, {9, 33, 32},
                          {17, 129, 5}, {10, 260, 2}, {25, 40, 6}, {41, 20, 3}, {12, 0, 3}, big_k};
  for (const Shape& s : shapes) {
    Case c = random_case(s.B, s.D, s.K);
    if (s.K + 1 > kSvSoftmaxSmemSlots && randint(0, 1) == 0) c.grad = false;  // global cosines without gradient
    check_case<scalar_t>(c);
  }
  const int combos[][3] = {{1, kNone, 0},    {1, kPerRow, 1}, {2, kScalar, 1},
                           {2, kPerRow, 0}, {3, kPerRow, 1}, {3, kNone, 1}};  // reduction, weights, normalize
  for (const auto& cb : combos) {
    Case c = random_case(12, 45, 4);
    c.reduction = cb[0];
    c.weights = static_cast<Weights>(cb[1]);
    c.normalize = cb[2] != 0;
    c.grad = true;
    c.extreme_shifts = cb[0] == 2;
    check_case<scalar_t>(c, cb[0] == 3 && cb[1] == kPerRow);
  }
}

void float_cases() { dtype_cases<float>({4, 33, 127}); }  // K + 1 = 128: shared cosines
void double_cases() { dtype_cases<double>({5, 20, 128}); }  // K + 1 = 129: global cosines
void half_cases() { dtype_cases<__half>({3, 17, 140}); }
void bfloat16_cases() { dtype_cases<__nv_bfloat16>({3, 33, 128}); }

// The clamped norm (a zero row), all rows dropped, a large gamma.
void special_cases() {
  for (int f64 = 0; f64 < 2; ++f64) {
    Case c = random_case(11, 37, 5);
    c.normalize = true;
    c.grad = true;
    c.zero_row = 4;
    if (f64) {
      check_case<double>(c);
    } else {
      check_case<float>(c);
    }
  }
  Case c = random_case(9, 16, 4);
  c.gamma = 30.0;
  c.grad = true;
  check_case<float>(c);
  check_case<double>(c);
  for (int32_t red = 2; red <= 3; ++red) {  // no row kept: zero losses, gradients and denominators
    Case none = random_case(10, 12, 3);
    none.none_kept = true;
    none.reduction = red;
    none.grad = true;
    check_case<float>(none);
  }
}

void launch_checks() {
  const int64_t B = 4, D = 8, K = 2;
  std::vector<float> u(static_cast<size_t>(B * D), 0.5f), v(static_cast<size_t>(B * D), 0.25f);
  bool kept[B] = {true, false, true, true};
  const int64_t shifts[K] = {1, 3};
  std::vector<float> loss(B), den(B), ss(2 * B), scratch(2 * B * (K + 1)), gu(B * D), gv(B * D);
  auto base = [&]() {
    SvSoftmaxLaunchArgs a{};
    a.user = u.data();
    a.item = v.data();
    a.kept = kept;
    a.shifts = shifts;
    a.row_loss = loss.data();
    a.row_den = den.data();
    a.sumsq_user = ss.data();
    a.sumsq_item = ss.data() + B;
    a.coef = scratch.data();
    a.coef_cos = scratch.data() + B * (K + 1);
    a.grad_user = gu.data();
    a.grad_item = gv.data();
    a.B = B;
    a.D = D;
    a.K = K;
    a.gamma = 1.0;
    a.t = 1.0;
    a.normalize = 1;
    a.reduction = sv::kMean;
    a.input_dtype = kSvSoftmaxF32;
    return a;
  };
  SvSoftmaxLaunchArgs a = base();
  expect(fusedloss_sv_softmax_fwd_cuda(&a, nullptr) == 0, "the base arguments launch", 0, 0, "");
  expect(fusedloss_sv_softmax_fwd_cuda(nullptr, nullptr) == kSvSoftmaxBadArgs, "null args", 0, 0, "");
  struct Bad {
    const char* what;
    void (*edit)(SvSoftmaxLaunchArgs*);
    int rc;
  };
  const Bad bads[] = {
      {"B < 0", [](SvSoftmaxLaunchArgs* x) { x->B = -1; }, kSvSoftmaxBadArgs},
      {"D < 0", [](SvSoftmaxLaunchArgs* x) { x->D = -1; }, kSvSoftmaxBadArgs},
      {"K = 0", [](SvSoftmaxLaunchArgs* x) { x->K = 0; }, kSvSoftmaxBadArgs},
      {"reduction 0", [](SvSoftmaxLaunchArgs* x) { x->reduction = 0; }, kSvSoftmaxBadArgs},
      {"reduction 4", [](SvSoftmaxLaunchArgs* x) { x->reduction = 4; }, kSvSoftmaxBadArgs},
      {"kept null", [](SvSoftmaxLaunchArgs* x) { x->kept = nullptr; }, kSvSoftmaxBadArgs},
      {"shifts null", [](SvSoftmaxLaunchArgs* x) { x->shifts = nullptr; }, kSvSoftmaxBadArgs},
      {"row_loss null", [](SvSoftmaxLaunchArgs* x) { x->row_loss = nullptr; }, kSvSoftmaxBadArgs},
      {"row_den null", [](SvSoftmaxLaunchArgs* x) { x->row_den = nullptr; }, kSvSoftmaxBadArgs},
      {"user null", [](SvSoftmaxLaunchArgs* x) { x->user = nullptr; }, kSvSoftmaxBadArgs},
      {"item null", [](SvSoftmaxLaunchArgs* x) { x->item = nullptr; }, kSvSoftmaxBadArgs},
      {"normalize without sumsq_user", [](SvSoftmaxLaunchArgs* x) { x->sumsq_user = nullptr; }, kSvSoftmaxBadArgs},
      {"normalize without sumsq_item", [](SvSoftmaxLaunchArgs* x) { x->sumsq_item = nullptr; }, kSvSoftmaxBadArgs},
      {"grad_user without grad_item", [](SvSoftmaxLaunchArgs* x) { x->grad_item = nullptr; }, kSvSoftmaxBadArgs},
      {"grad_item without grad_user", [](SvSoftmaxLaunchArgs* x) { x->grad_user = nullptr; }, kSvSoftmaxBadArgs},
      {"gradient without coef", [](SvSoftmaxLaunchArgs* x) { x->coef = nullptr; }, kSvSoftmaxBadArgs},
      {"gradient without coef_cos", [](SvSoftmaxLaunchArgs* x) { x->coef_cos = nullptr; }, kSvSoftmaxBadArgs},
      {"K + 1 > 128 without scratch",
       [](SvSoftmaxLaunchArgs* x) {
         x->K = kSvSoftmaxSmemSlots;
         x->grad_user = x->grad_item = nullptr;
         x->coef = nullptr;
       },
       kSvSoftmaxBadArgs},
      {"grid beyond gridDim.y", [](SvSoftmaxLaunchArgs* x) { x->B = int64_t(1) << 50; }, kSvSoftmaxBadArgs},
      {"input dtype 4", [](SvSoftmaxLaunchArgs* x) { x->input_dtype = 4; }, kSvSoftmaxBadInputDType},
      {"input dtype -1", [](SvSoftmaxLaunchArgs* x) { x->input_dtype = -1; }, kSvSoftmaxBadInputDType},
  };
  for (const Bad& bad : bads) {
    a = base();
    bad.edit(&a);
    const int rc = fusedloss_sv_softmax_fwd_cuda(&a, nullptr);
    expect(rc == bad.rc, bad.what, rc, bad.rc, "rejected");
  }
  // Accepted without what they do not need: no normalisation without sumsq; no gradient and
  // K + 1 <= 128 without scratch; D = 0 without user / item.
  a = base();
  a.normalize = 0;
  a.sumsq_user = a.sumsq_item = nullptr;
  expect(fusedloss_sv_softmax_fwd_cuda(&a, nullptr) == 0, "no normalisation, no sumsq", 0, 0, "");
  a = base();
  a.grad_user = a.grad_item = nullptr;
  a.coef = a.coef_cos = nullptr;
  expect(fusedloss_sv_softmax_fwd_cuda(&a, nullptr) == 0, "no gradient, no scratch", 0, 0, "");
  a = base();
  a.D = 0;
  a.user = a.item = nullptr;
  expect(fusedloss_sv_softmax_fwd_cuda(&a, nullptr) == 0, "D = 0, no embeddings", 0, 0, "");
  // The empty batch: 0 returned, nothing written, even with every pointer null.
  std::fill(loss.begin(), loss.end(), -3.0f);
  a = SvSoftmaxLaunchArgs{};
  a.K = 1;
  a.reduction = sv::kSum;
  a.input_dtype = kSvSoftmaxF32;
  expect(fusedloss_sv_softmax_fwd_cuda(&a, nullptr) == 0, "empty batch, null pointers", 0, 0, "");
  a = base();
  a.B = 0;
  expect(fusedloss_sv_softmax_fwd_cuda(&a, nullptr) == 0, "empty batch", 0, 0, "");
  a.input_dtype = 9;
  expect(fusedloss_sv_softmax_fwd_cuda(&a, nullptr) == 0, "empty batch, any dtype", 0, 0, "");
  bool untouched = true;
  for (float x : loss) untouched = untouched && x == -3.0f;
  expect(untouched, "empty batch writes nothing", 0, 0, "");
}

}  // namespace

int main() {
  flsim::g_rng.seed(20261207);
  const fltest::Group groups[] = {{"float32", float_cases},     {"float64", double_cases},
                                  {"float16", half_cases},      {"bfloat16", bfloat16_cases},
                                  {"special cases", special_cases}, {"launch checks", launch_checks}};
  return fltest::run_groups("test_sv_softmax_cuda_sim", groups);
}
