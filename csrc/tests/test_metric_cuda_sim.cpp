// The CUDA metric-learning kernels themselves (metric_cuda.cu: sumsq_kernel, stats_kernel, grad_kernel),
// run on the CPU by the emulator of csrc/tests/cuda_sim through their extern "C" launcher, against a
// float64 O(B^2 D) loop over metric_math.h's pair_logit / row_loss / row_factor / pair_grad and
// l2_normalize.h's grad_elem (checked against spec sections 6.2 and 6.3 by test_metric_math.cpp), with
// two-pass LSEs (max, then sum) instead of the kernels' online ones. The truth takes the same rounded
// inputs and the parameters rounded to acc_t, as the kernels do. Run by ctest; exits nonzero on any
// failure. Every output the launcher writes is compared: row_loss, the stats scratch (A_i, N_i, the
// row factor c_i), the sums of squares (normalize), the sh scratch (sum_j H_ij inv_j e_j) and the
// gradient; outputs are prefilled with NaN, so a row or element a kernel leaves unwritten fails.
//
//  1. Circle (margin 0.25, gamma 32 and margin -0.1, gamma 4) and multi-similarity (alpha 2, beta 50,
//     lambda 0.5 and alpha 0.5, beta 4, lambda -0.25), float32 and float64 (each loss and size in one of
//     them, alternating, so that every size runs in both): B from 1 to 300 (around the 32-anchor block
//     and the 64-row tile: 1, 2, 31, 32, 33, 64, 65, 130, 300) and D from 1 to 70 (around the 32-column
//     staging: 1, 5, 7, 16, 20, 31, 32, 33, 40, 70); random l2 normalisation, sessions and gradient.
//     Per-row values within rtol (1e-5 float32, 1e-10 float64) of the row's logit scale (1 + its
//     largest |logit| + |d logit / dS|); the gradient and sh per element within rtol times that scale
//     times the sum of its terms' magnitudes (plus, for multi-similarity, the whole term of a pair whose
//     cosine is within rounding of the step of d S+ / d S at 0).
//  2. float16 and bfloat16 inputs (acc float; B 33 and 80): the same outputs against a truth from the
//     rounded inputs; the gradient, stored in the input type, also within half an ulp of its rounding.
//  3. Edge cases: D = 0 (every cosine 0; no embedding pointer, sh NULL), an all-zero row under
//     normalisation (norm clamped at 1e-12, no projection), one label for all rows (circle: every N_i
//     empty, -1e12; multi-similarity 0), all labels distinct (every A_i empty), one session per row.
//     Without the gradient sh is left untouched; without normalisation the sumsq buffer is too.
//  4. Launch arguments the launcher rejects (kMetricBadArgs: NULL args, B < 0, D < 0, a bad kind,
//     missing labels / row_loss / stats / emb / sumsq / sh; kMetricBadInputDType: an unknown dtype)
//     and an empty batch (B = 0: returns 0, writes nothing, even with NULL pointers).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <type_traits>
#include <vector>

#include "check.h"
#include "sim_data.h"
#include "cuda_bf16.h"
#include "cuda_fp16.h"
#include "../metric/metric_cuda.h"
#include "../metric/metric_math.h"

using namespace fusedloss::metric;
using fltest::expect;
using fltest::expect_close;

namespace {

using flsim::randint;
using flsim::uniform;
using flsim::load;
using flsim::store;

template <typename T>
int32_t dtype_code();
template <>
int32_t dtype_code<float>() {
  return kMetricF32;
}
template <>
int32_t dtype_code<double>() {
  return kMetricF64;
}
template <>
int32_t dtype_code<__half>() {
  return kMetricF16;
}
template <>
int32_t dtype_code<__nv_bfloat16>() {
  return kMetricBF16;
}

// Half an ulp of the stored gradient, relative (0 for float / double: acc_t is the stored type).
template <typename T>
double store_rel() {
  return 0.0;
}
template <>
double store_rel<__half>() {
  return std::ldexp(1.0, -11);
}
template <>
double store_rel<__nv_bfloat16>() {
  return std::ldexp(1.0, -8);
}

enum Labels { kRandomLabels, kOneLabel, kDistinct };
enum Rows { kPlain, kZeroRow };

struct Batch {
  int64_t B = 0, D = 0;
  std::vector<double> e;  // [B, D]
  std::vector<int64_t> y, g;  // g empty: no sessions
};

// Cosines within the kernels' range: rows of norm about 1 (also without normalisation).
Batch make_batch(int64_t B, int64_t D, Labels labels, bool sessions, Rows rows) {
  Batch b;
  b.B = B;
  b.D = D;
  const double scale = D > 0 ? 1.7 / std::sqrt(static_cast<double>(D)) : 1.0;
  for (int64_t k = 0; k < B * D; ++k) b.e.push_back(uniform(-scale, scale));
  if (rows == kZeroRow && B > 0) {
    const int64_t z = B / 2;
    for (int64_t d = 0; d < D; ++d) b.e[static_cast<size_t>(z * D + d)] = 0.0;
  }
  const int classes = std::max(2, static_cast<int>(B / 4));
  for (int64_t i = 0; i < B; ++i) {
    b.y.push_back(labels == kOneLabel ? 7 : (labels == kDistinct ? 1000 + i : randint(0, classes)));
    if (sessions) b.g.push_back(randint(0, 2));
  }
  return b;
}

struct Prm {
  int64_t kind;
  double p0, p1, p2;
  bool normalize;
};

struct Ref {
  std::vector<double> ss, A, N, C, loss, row_scale;  // row_scale: 1 + the largest |logit| and |slope| of the row
  std::vector<bool> a_empty, n_empty;
  std::vector<double> sh, grad, grad_scale;  // grad_scale: sum of the magnitudes of an element's terms
  // Multi-similarity's d S+ / d S = [S >= 0] is a step: the terms of pairs with |S| within rounding of 0
  // may be in or out in acc_t; step_tol (per element of sh and grad) allows either.
  std::vector<double> step_tol;
};

// The float64 truth on the inputs `e` (already rounded to the stored type) with the parameters rounded
// to acc_t.
template <typename acc_t>
double rtol_of() {
  return sizeof(acc_t) == 8 ? 1e-10 : 1e-5;
}

template <typename acc_t>
Ref reference(const Batch& b, const std::vector<double>& e, const Prm& pr) {
  const int64_t B = b.B, D = b.D;
  Params<double> p;
  p.kind = pr.kind;
  p.p0 = static_cast<double>(static_cast<acc_t>(pr.p0));
  p.p1 = static_cast<double>(static_cast<acc_t>(pr.p1));
  p.p2 = static_cast<double>(static_cast<acc_t>(pr.p2));
  p.normalize = pr.normalize;
  Ref r;
  r.ss.assign(static_cast<size_t>(B), 0.0);
  std::vector<double> inv(static_cast<size_t>(B));
  for (int64_t i = 0; i < B; ++i) {
    double s = 0.0;
    for (int64_t d = 0; d < D; ++d) s += e[static_cast<size_t>(i * D + d)] * e[static_cast<size_t>(i * D + d)];
    r.ss[static_cast<size_t>(i)] = s;
    inv[static_cast<size_t>(i)] = inv_norm(s, pr.normalize);
  }
  std::vector<double> S(static_cast<size_t>(B * B), 0.0);
  for (int64_t i = 0; i < B; ++i) {
    for (int64_t j = 0; j < B; ++j) {
      double dot = 0.0;
      for (int64_t d = 0; d < D; ++d) dot += e[static_cast<size_t>(i * D + d)] * e[static_cast<size_t>(j * D + d)];
      S[static_cast<size_t>(i * B + j)] = (inv[static_cast<size_t>(i)] * inv[static_cast<size_t>(j)]) * dot;
    }
  }
  auto pos_of = [&](int64_t i, int64_t j) {
    return b.y[static_cast<size_t>(i)] == b.y[static_cast<size_t>(j)] &&
           (b.g.empty() || b.g[static_cast<size_t>(i)] == b.g[static_cast<size_t>(j)]);
  };
  r.A.resize(static_cast<size_t>(B));
  r.N.resize(static_cast<size_t>(B));
  r.C.resize(static_cast<size_t>(B));
  r.loss.resize(static_cast<size_t>(B));
  r.row_scale.resize(static_cast<size_t>(B));
  r.a_empty.resize(static_cast<size_t>(B));
  r.n_empty.resize(static_cast<size_t>(B));
  for (int64_t i = 0; i < B; ++i) {
    double mp = -INFINITY, mn = -INFINITY, scale = 1.0;
    for (int64_t j = 0; j < B; ++j) {
      if (j == i) continue;
      const double s = S[static_cast<size_t>(i * B + j)];
      const bool pos = pos_of(i, j);
      const double x = pair_logit(s, pos, p);
      (pos ? mp : mn) = std::max(pos ? mp : mn, x);
      scale = std::max(scale, 1.0 + std::fabs(x) + std::fabs(pair_logit_slope(s, pos, p)));
    }
    double sp = 0.0, sn = 0.0;
    for (int64_t j = 0; j < B; ++j) {
      if (j == i) continue;
      const bool pos = pos_of(i, j);
      const double x = pair_logit(S[static_cast<size_t>(i * B + j)], pos, p);
      (pos ? sp : sn) += std::exp(x - (pos ? mp : mn));
    }
    const size_t k = static_cast<size_t>(i);
    r.a_empty[k] = sp == 0.0;
    r.n_empty[k] = sn == 0.0;
    const double lp = mp + std::log(sp), ln = mn + std::log(sn);
    if (pr.kind == kCircle) {
      r.A[k] = r.a_empty[k] ? empty_lse<double>() : lp;
      r.N[k] = r.n_empty[k] ? empty_lse<double>() : ln;
    } else {
      r.A[k] = r.a_empty[k] ? 0.0 : fusedloss::softplus(lp);
      r.N[k] = r.n_empty[k] ? 0.0 : fusedloss::softplus(ln);
    }
    r.loss[k] = row_loss(r.A[k], r.N[k], p);
    r.C[k] = row_factor(r.A[k], r.N[k], p);
    r.row_scale[k] = scale;
  }
  r.sh.assign(static_cast<size_t>(B * D), 0.0);
  r.grad.assign(static_cast<size_t>(B * D), 0.0);
  r.grad_scale.assign(static_cast<size_t>(B * D), 0.0);
  r.step_tol.assign(static_cast<size_t>(B * D), 0.0);
  std::vector<double> sh_abs(static_cast<size_t>(B * D), 0.0);
  for (int64_t i = 0; i < B; ++i) {
    const size_t ki = static_cast<size_t>(i);
    double hc = 0.0, hc_abs = 0.0;
    for (int64_t j = 0; j < B; ++j) {
      if (j == i) continue;
      const size_t kj = static_cast<size_t>(j);
      const double s = S[static_cast<size_t>(i * B + j)];
      const bool pos = pos_of(i, j);
      const double h =
          pair_grad(s, pos, r.A[ki], r.N[ki], r.C[ki], p) + pair_grad(s, pos, r.A[kj], r.N[kj], r.C[kj], p);
      hc += h * s;
      hc_abs += std::fabs(h * s);
      // Near the step: the whole term either way (its value at S = 0 from above).
      const bool step = pr.kind == kMultiSimilarity && std::fabs(s) <= 16.0 * rtol_of<acc_t>() && s != 0.0;
      const double h0 = step ? std::fabs(pair_grad(0.0, pos, r.A[ki], r.N[ki], r.C[ki], p)) +
                                   std::fabs(pair_grad(0.0, pos, r.A[kj], r.N[kj], r.C[kj], p))
                             : 0.0;
      for (int64_t d = 0; d < D; ++d) {
        const double t = h * inv[kj] * e[static_cast<size_t>(j * D + d)];
        r.sh[static_cast<size_t>(i * D + d)] += t;
        sh_abs[static_cast<size_t>(i * D + d)] += std::fabs(t);
        r.step_tol[static_cast<size_t>(i * D + d)] += 2.0 * h0 * inv[kj] * std::fabs(e[static_cast<size_t>(j * D + d)]);
      }
    }
    const bool proj = projects(r.ss[ki], pr.normalize);
    for (int64_t d = 0; d < D; ++d) {
      const size_t k = static_cast<size_t>(i * D + d);
      r.grad[k] = grad_elem(r.sh[k], e[k], hc, inv[ki], proj);
      // The scale of each term times the row's logit scale (the relative error of each H_ij).
      r.grad_scale[k] = inv[ki] * (sh_abs[k] + (proj ? hc_abs * inv[ki] * std::fabs(e[k]) : 0.0));
    }
  }
  return r;
}

const double kNaN = std::nan("");

// One launch on host arrays, every output compared with the truth.
template <typename T>
void run_case(const Batch& b, const Prm& pr, bool grad, const char* name) {
  using acc_t = std::conditional_t<std::is_same<T, double>::value, double, float>;  // as the kernels' AccOf
  char ctx[320];
  std::snprintf(ctx, sizeof ctx, "%s kind %lld p %g %g %g normalize %d B %lld D %lld sessions %d grad %d", name,
                static_cast<long long>(pr.kind), pr.p0, pr.p1, pr.p2, pr.normalize ? 1 : 0,
                static_cast<long long>(b.B), static_cast<long long>(b.D), b.g.empty() ? 0 : 1, grad ? 1 : 0);
  const int64_t B = b.B, D = b.D;
  std::vector<T> e;
  std::vector<double> ed;
  for (double v : b.e) {
    e.push_back(store<T>(v));
    ed.push_back(load(e.back()));
  }
  const acc_t nan_acc = static_cast<acc_t>(kNaN);
  std::vector<acc_t> loss(static_cast<size_t>(B), nan_acc), ss(static_cast<size_t>(B), nan_acc),
      stats(static_cast<size_t>(3 * B), nan_acc);
  std::vector<double> sh(static_cast<size_t>(B * D), kNaN);
  std::vector<T> g(static_cast<size_t>(B * D), store<T>(kNaN));
  MetricLaunchArgs a{};
  a.emb = D > 0 ? e.data() : nullptr;  // D == 0: no data (an empty tensor's pointer may be NULL)
  a.labels = b.y.data();
  a.sessions = b.g.empty() ? nullptr : b.g.data();
  a.row_loss = loss.data();
  a.sumsq = ss.data();  // given also without normalize: must stay untouched
  a.stats = stats.data();
  a.sh = D > 0 ? sh.data() : nullptr;  // given also without the gradient: must stay untouched
  a.grad = grad ? g.data() : nullptr;
  a.B = B;
  a.D = D;
  a.kind = pr.kind;
  a.p0 = pr.p0;
  a.p1 = pr.p1;
  a.p2 = pr.p2;
  a.normalize = pr.normalize ? 1 : 0;
  a.input_dtype = dtype_code<T>();
  const int rc = fusedloss_metric_fwd_cuda(&a, nullptr);
  expect(rc == 0, "launch status", rc, 0, ctx);
  if (rc != 0) return;
  const Ref r = reference<acc_t>(b, ed, pr);
  const double rtol = rtol_of<acc_t>();
  const acc_t empty_c = empty_lse<acc_t>();
  for (int64_t i = 0; i < B; ++i) {
    const size_t k = static_cast<size_t>(i);
    const double sc = r.row_scale[k];
    if (pr.normalize) {
      expect_close("sumsq", ss[k], r.ss[k], rtol, 1e-300, ctx);
    } else {
      expect(std::isnan(ss[k]), "sumsq untouched without normalize", ss[k], kNaN, ctx);
    }
    const size_t nb = static_cast<size_t>(B);
    const double a_got = stats[k], n_got = stats[nb + k], c_got = stats[2 * nb + k];
    // An empty set: exactly empty_lse<acc_t>() (circle) or 0 (multi-similarity).
    const double a_empty = pr.kind == kCircle ? static_cast<double>(empty_c) : 0.0;
    if (r.a_empty[k]) {
      expect(a_got == a_empty, "A_i of an empty positive set", a_got, a_empty, ctx);
    } else {
      expect_close("A_i", a_got, r.A[k], 0.0, rtol * sc, ctx);
    }
    if (r.n_empty[k]) {
      expect(n_got == a_empty, "N_i of an empty negative set", n_got, a_empty, ctx);
    } else {
      expect_close("N_i", n_got, r.N[k], 0.0, rtol * sc, ctx);
    }
    // d loss / d (A, N) and d c / d (A, N) are at most 1, 1 / alpha, 1 / beta.
    const double lscale = pr.kind == kCircle ? 2.0 * sc : sc * (1.0 / pr.p0 + 1.0 / pr.p1);
    expect_close("row factor c_i", c_got, r.C[k], 0.0, rtol * lscale + 1e-300, ctx);
    expect_close("row_loss", loss[k], r.loss[k], 0.0, rtol * lscale + 1e-300, ctx);
  }
  if (!grad) {
    for (double v : sh) expect(std::isnan(v), "sh untouched without the gradient", v, kNaN, ctx);
    return;
  }
  const double srel = store_rel<T>();
  for (int64_t i = 0; i < B; ++i) {
    const double sc = r.row_scale[static_cast<size_t>(i)];
    for (int64_t d = 0; d < D; ++d) {
      const size_t k = static_cast<size_t>(i * D + d);
      // sh: the same scale as the gradient's terms, without inv_i.
      const double inv_i = inv_norm(r.ss[static_cast<size_t>(i)], pr.normalize);
      expect_close("sh", sh[k], r.sh[k], 0.0, rtol * sc * r.grad_scale[k] / inv_i + r.step_tol[k] + 1e-300, ctx);
      // Half-type storage: half an ulp of the value (plus half types' smallest subnormal step).
      const double atol = rtol * sc * r.grad_scale[k] + inv_i * r.step_tol[k] +
                          srel * std::fabs(r.grad[k]) * (1.0 + 1e-3) +
                          (srel > 0.0 ? std::ldexp(1.0, -25) : 1e-300);
      expect_close("grad", load(g[k]), r.grad[k], 0.0, atol, ctx);
    }
  }
}

const Prm kCircleA{kCircle, 0.25, 32.0, 0.0, true};
const Prm kCircleB{kCircle, -0.1, 4.0, 0.0, true};
const Prm kMsA{kMultiSimilarity, 2.0, 50.0, 0.5, true};
const Prm kMsB{kMultiSimilarity, 0.5, 4.0, -0.25, true};

Prm with_norm(Prm p, bool normalize) {
  p.normalize = normalize;
  return p;
}

void float_kernels() {
  struct Size {
    int64_t B, D;
  };
  // Each (loss, size) in one precision, alternating, so that every size runs in both (time).
  const Size sizes[] = {{1, 5}, {2, 1}, {31, 33}, {32, 32}, {33, 31}, {64, 7}, {65, 40}, {130, 70}, {130, 20}};
  const Prm losses[] = {kCircleA, kCircleB, kMsA, kMsB};
  int which = 0;  // 9 sizes: the next loss starts in the other precision
  for (int l = 0; l < 4; ++l) {
    const Prm& base = losses[l];
    for (const Size& sz : sizes) {
      const bool f64 = which++ % 2 == 1;
      if (sz.B == 130 && (sz.D == 70) != (l % 2 == 0)) continue;  // one B = 130 per loss (time)
      const bool normalize = randint(0, 3) != 0;
      const bool sessions = randint(0, 2) == 0;
      const bool grad = randint(0, 4) != 0;
      const Batch b = make_batch(sz.B, sz.D, kRandomLabels, sessions, kPlain);
      const Prm pr = with_norm(base, normalize);
      if (f64) {
        run_case<double>(b, pr, grad, "f64");
      } else {
        run_case<float>(b, pr, grad, "f32");
      }
    }
  }
  // A multi-block batch of several row tiles with every output.
  run_case<float>(make_batch(300, 16, kRandomLabels, true, kPlain), kCircleA, true, "f32 big");
}

void half_kernels() {
  for (const Prm& base : {kCircleA, kMsA, kMsB}) {
    for (int64_t B : {33, 80}) {
      const Batch b = make_batch(B, B == 33 ? 40 : 20, kRandomLabels, randint(0, 1) == 1, kPlain);
      run_case<__half>(b, with_norm(base, randint(0, 3) != 0), true, "f16");
      run_case<__nv_bfloat16>(b, with_norm(base, randint(0, 3) != 0), true, "bf16");
    }
  }
}

void edge_cases() {
  for (const Prm& pr : {kCircleA, kMsA}) {
    const Prm norm = with_norm(pr, true), raw = with_norm(pr, false);
    run_case<float>(make_batch(40, 0, kRandomLabels, false, kPlain), norm, true, "f32 D=0");
    run_case<double>(make_batch(40, 0, kRandomLabels, true, kPlain), raw, false, "f64 D=0");
    run_case<float>(make_batch(37, 9, kRandomLabels, false, kZeroRow), norm, true, "f32 zero row");
    run_case<double>(make_batch(40, 9, kRandomLabels, false, kZeroRow), norm, true, "f64 zero row");
    run_case<float>(make_batch(45, 6, kOneLabel, false, kPlain), pr.kind == kCircle ? norm : raw, true,
                    "f32 one label");
    run_case<double>(make_batch(45, 6, kDistinct, false, kPlain), pr.kind == kCircle ? raw : norm, true,
                     "f64 distinct labels");
    Batch singles = make_batch(20, 6, kRandomLabels, false, kPlain);
    for (int64_t i = 0; i < singles.B; ++i) singles.g.push_back(i);  // one session per row: no positives
    run_case<float>(singles, norm, true, "f32 one session per row");
  }
}

void launch_checks() {
  const Batch b = make_batch(10, 4, kRandomLabels, false, kPlain);
  const std::vector<float> e(b.e.begin(), b.e.end());
  std::vector<float> loss(10), ss(10), stats(30), g(40);
  std::vector<double> sh(40);
  auto base = [&]() {
    MetricLaunchArgs a{};
    a.emb = e.data();
    a.labels = b.y.data();
    a.row_loss = loss.data();
    a.sumsq = ss.data();
    a.stats = stats.data();
    a.sh = sh.data();
    a.grad = g.data();
    a.B = 10;
    a.D = 4;
    a.kind = kCircle;
    a.p0 = 0.25;
    a.p1 = 32.0;
    a.normalize = 1;
    a.input_dtype = kMetricF32;
    return a;
  };
  MetricLaunchArgs a = base();
  expect(fusedloss_metric_fwd_cuda(&a, nullptr) == 0, "valid arguments accepted", 0, 0, "");
  expect(fusedloss_metric_fwd_cuda(nullptr, nullptr) == kMetricBadArgs, "NULL args", 0, 0, "");
  struct Bad {
    const char* what;
    void (*edit)(MetricLaunchArgs&);
  };
  const Bad bad[] = {{"B < 0", [](MetricLaunchArgs& x) { x.B = -1; }},
                     {"D < 0", [](MetricLaunchArgs& x) { x.D = -1; }},
                     {"kind 2", [](MetricLaunchArgs& x) { x.kind = 2; }},
                     {"kind -1", [](MetricLaunchArgs& x) { x.kind = -1; }},
                     {"labels NULL", [](MetricLaunchArgs& x) { x.labels = nullptr; }},
                     {"row_loss NULL", [](MetricLaunchArgs& x) { x.row_loss = nullptr; }},
                     {"stats NULL", [](MetricLaunchArgs& x) { x.stats = nullptr; }},
                     {"emb NULL with D > 0", [](MetricLaunchArgs& x) { x.emb = nullptr; }},
                     {"sumsq NULL with normalize", [](MetricLaunchArgs& x) { x.sumsq = nullptr; }},
                     {"sh NULL with the gradient", [](MetricLaunchArgs& x) { x.sh = nullptr; }}};
  for (const Bad& c : bad) {
    a = base();
    c.edit(a);
    expect(fusedloss_metric_fwd_cuda(&a, nullptr) == kMetricBadArgs, c.what, 0, 0, "rejected with kMetricBadArgs");
  }
  for (int32_t dt : {-1, 4, 99}) {
    a = base();
    a.input_dtype = dt;
    expect(fusedloss_metric_fwd_cuda(&a, nullptr) == kMetricBadInputDType, "unknown dtype", dt, kMetricBadInputDType,
           "");
  }
  // Accepted: sumsq NULL without normalize, sh NULL without the gradient or with D == 0.
  a = base();
  a.normalize = 0;
  a.sumsq = nullptr;
  expect(fusedloss_metric_fwd_cuda(&a, nullptr) == 0, "sumsq NULL without normalize", 0, 0, "");
  a = base();
  a.grad = nullptr;
  a.sh = nullptr;
  expect(fusedloss_metric_fwd_cuda(&a, nullptr) == 0, "sh NULL without the gradient", 0, 0, "");
  a = base();
  a.D = 0;
  a.emb = nullptr;
  a.sh = nullptr;
  expect(fusedloss_metric_fwd_cuda(&a, nullptr) == 0, "sh and emb NULL with D == 0", 0, 0, "");
  // B == 0: nothing launched or written, whatever the pointers (also an unknown dtype is not looked at).
  std::fill(loss.begin(), loss.end(), -3.0f);
  a = MetricLaunchArgs{};
  a.B = 0;
  a.D = 4;
  a.kind = kMultiSimilarity;
  a.input_dtype = 99;
  expect(fusedloss_metric_fwd_cuda(&a, nullptr) == 0, "empty batch, NULL pointers", 0, 0, "");
  a = base();
  a.B = 0;
  expect(fusedloss_metric_fwd_cuda(&a, nullptr) == 0, "empty batch", 0, 0, "");
  bool untouched = true;
  for (float v : loss) untouched = untouched && v == -3.0f;
  expect(untouched, "empty batch writes nothing", 0, 0, "");
}

}  // namespace

int main() {
  flsim::g_rng.seed(20261201);
  const fltest::Group groups[] = {{"float32 / float64", float_kernels},
                                  {"float16 / bfloat16", half_kernels},
                                  {"edge cases", edge_cases},
                                  {"launch checks", launch_checks}};
  return fltest::run_groups("test_metric_cuda_sim", groups);
}
