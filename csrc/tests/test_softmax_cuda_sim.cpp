// The CUDA softmax kernel itself (softmax_cuda.cu), run on the CPU by the emulator of csrc/tests/cuda_sim
// through its extern "C" launcher, against a float64 plain loop per row over softmax_math.h's direct
// (non-split) formulas: lse = max + log sum e^{x - max}, ce_index_loss / ce_index_grad, ce_prob_loss /
// ce_prob_grad, focal_term / focal_coef / focal_grad (checked against the spec by test_softmax_math.cpp).
// Inputs are rounded to the input dtype first and the truth is computed from the rounded values. Run by
// ctest; exits nonzero on any failure.
//
// Every launch checks: the status; each row's loss (within rtol of the sum of the magnitudes of its
// split-form terms plus the coefficient of log s; rtol 1e-13 for float64, 1e-5 for the float
// accumulators, ~10x the largest errors seen) and denominator (exact: w_y, 1, or 0 for an ignored
// row); every gradient element (same rtol of its terms' magnitudes, plus the rounding of the stored
// float16 / bfloat16 value); and the binding's finish of the rows (sum, and mean = sum / sum of
// denominators, NaN when that is 0). Outputs start as NaN, so an unwritten one fails.
//
//  1. Warp rows (D < 32, C <= 512): C = 1, 2, 31, 32, 33, 300, 512 with D = 1 to 3 and rows across
//     blocks of 8 rows; every dtype (float32, float64, float16, bfloat16) x cross-entropy with class
//     index, with probabilities, and focal; options cycled over the cases: class weights (some 0),
//     label smoothing 0 / 0.1, z-loss 0 / 1e-3 (ignored in focal mode), gamma 0 / 1 / 2 / 1.5,
//     gradient none / separate / in place over the input; ignored targets (ignore_index -100 or a
//     valid class) and out-of-range targets (clamped into [0, C)).
//  2. Thread rows (D >= 32, C <= 4096): D = 32, 33, 70 with C = 1, 7, 40 and more rows than one
//     256-thread block, every dtype and kind, options as in 1.
//  3. Block rows (C > 512 and D < 32, or C > 4096): C = 513, 4096 (256 threads), 4097, 5000 (512
//     threads), D = 1 and 2, every kind, the dtypes in turn. (D >= 32 with C > 4096 also takes block
//     rows; left out for time: its 32 rows of 512 threads cost as much as the rest of this group.)
//  4. Special inputs: logits offset by 1000 in float32 (the split form loses nothing to |x|), classes
//     masked with -inf (cross-entropy without smoothing, focal without smoothing), all rows ignored
//     (mean NaN), C = 0 with rows (loss 0, denominator 0, input may be NULL).
//  5. Launch arguments the launcher rejects (kSoftmaxBadArgs, kSoftmaxBadInputDType), a grid too large
//     for gridDim.y (rejected before any access), and empty inputs (nothing launched or written).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <random>
#include <vector>

#include "check.h"
#include "sim_data.h"
#include "../softmax/softmax_cuda.h"
#include "../softmax/softmax_math.h"

using namespace fusedloss::softmax;
using fltest::expect;
using fltest::expect_close;

namespace {

using flsim::randint;
using flsim::uniform;


const double kNaN = std::numeric_limits<double>::quiet_NaN();

using flsim::load;
using flsim::store;

template <typename S>
int dtype_code();
template <>
int dtype_code<float>() { return kSoftmaxF32; }
template <>
int dtype_code<double>() { return kSoftmaxF64; }
template <>
int dtype_code<__half>() { return kSoftmaxF16; }
template <>
int dtype_code<__nv_bfloat16>() { return kSoftmaxBF16; }

// Unit roundoff of the stored gradient, and half the smallest subnormal step.
template <typename S>
double store_u() {
  return 0.0;
}
template <>
double store_u<__half>() { return std::ldexp(1.0, -11); }
template <>
double store_u<__nv_bfloat16>() { return std::ldexp(1.0, -8); }
template <typename S>
double store_floor() {
  return std::is_same<S, __half>::value ? std::ldexp(1.0, -25) : 1e-300;
}

enum Kind { kIndex, kProb, kFocalKind };
const char* const kKindName[] = {"ce-index", "ce-prob", "focal"};
enum GradMode { kNoGrad, kSeparate, kInPlace };

struct Case {
  int64_t n = 1, C = 1, D = 1;
  Kind kind = kIndex;
  bool weights = false;
  double eps = 0.0, z = 0.0, gamma = 0.0;
  GradMode grad = kNoGrad;
  int64_t ignore_index = -100;
  double offset = 0.0;  // added to every logit
  bool masked = false;  // some non-target classes at -inf
  bool all_ignored = false;
};

// The case's inputs in double, before rounding to the storage type.
struct Data {
  std::vector<double> x, probs, w;  // x, probs [n, C, D]; w [C] or empty
  std::vector<int64_t> target;      // [n D] (class index kinds)
};

Data make_data(const Case& k) {
  Data d;
  const int64_t rows = k.n * k.D, numel = k.n * k.C * k.D;
  d.x.resize(static_cast<size_t>(numel));
  for (double& v : d.x) v = uniform(-4.0, 4.0) + k.offset;
  if (k.weights) {
    for (int64_t c = 0; c < k.C; ++c) d.w.push_back(randint(0, 9) == 0 ? 0.0 : uniform(0.2, 2.0));
  }
  if (k.kind == kProb) {
    d.probs.resize(static_cast<size_t>(numel));
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t n = r / k.D, j = r % k.D;
      double total = 0.0;
      for (int64_t c = 0; c < k.C; ++c) {
        const double u = uniform(0.0, 1.0);
        d.probs[static_cast<size_t>(n * k.C * k.D + c * k.D + j)] = u * u * u;
        total += u * u * u;
      }
      for (int64_t c = 0; c < k.C; ++c) d.probs[static_cast<size_t>(n * k.C * k.D + c * k.D + j)] /= total;
    }
    return d;
  }
  for (int64_t r = 0; r < rows; ++r) {
    int64_t t = k.C > 0 ? randint(0, k.C - 1) : 0;
    const int64_t pick = randint(0, 15);
    if (k.all_ignored || pick == 0) t = k.ignore_index;
    if (pick == 1) t = -3;           // clamped to 0
    if (pick == 2) t = k.C + 2;      // clamped to C - 1
    d.target.push_back(t);
  }
  if (k.masked) {  // -inf on some classes other than the (clamped) target
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t n = r / k.D, j = r % k.D, raw = d.target[static_cast<size_t>(r)];
      const int64_t y = raw < 0 ? 0 : (raw >= k.C ? k.C - 1 : raw);
      for (int64_t c = 0; c < k.C; ++c) {
        if (c != y && randint(0, 3) == 0) d.x[static_cast<size_t>(n * k.C * k.D + c * k.D + j)] = -INFINITY;
      }
    }
  }
  return d;
}

struct Ref {
  std::vector<double> loss, loss_mag, den, grad, grad_mag;
};

// The float64 truth from the rounded inputs xr, pr (probabilities) and wr (weights, as acc_t).
Ref reference(const Case& k, const Data& d, const std::vector<double>& xr, const std::vector<double>& pr,
              const std::vector<double>& wr) {
  const int64_t rows = k.n * k.D, C = k.C, D = k.D;
  Ref r;
  r.loss.assign(static_cast<size_t>(rows), 0.0);
  r.loss_mag.assign(static_cast<size_t>(rows), 0.0);
  r.den.assign(static_cast<size_t>(rows), 0.0);
  r.grad.assign(xr.size(), 0.0);
  r.grad_mag.assign(xr.size(), 0.0);
  auto w_of = [&](int64_t c) { return wr.empty() ? 1.0 : wr[static_cast<size_t>(c)]; };
  double W = 0.0;
  for (int64_t c = 0; c < C; ++c) W += w_of(c);
  const Params<double> prm{k.kind == kFocalKind ? kFocal : kCrossEntropy, C, k.eps,
                           k.kind == kFocalKind ? 0.0 : k.z, k.gamma, W};
  std::vector<double> xs(static_cast<size_t>(C)), ts(static_cast<size_t>(C));
  for (int64_t row = 0; row < rows; ++row) {
    const int64_t n = row / D, base = n * C * D + row % D;
    auto at = [&](int64_t c) { return static_cast<size_t>(base + c * D); };
    int64_t y = 0;
    if (k.kind != kProb) {
      const int64_t raw = d.target[static_cast<size_t>(row)];
      if (raw == k.ignore_index || C == 0) continue;  // loss, den, grad 0
      y = raw < 0 ? 0 : (raw >= C ? C - 1 : raw);
    } else if (C == 0) {
      continue;
    }
    double m = -INFINITY;
    for (int64_t c = 0; c < C; ++c) {
      xs[static_cast<size_t>(c)] = xr[at(c)];
      ts[static_cast<size_t>(c)] = k.kind == kProb ? pr[at(c)] : 0.0;
      m = std::max(m, xs[static_cast<size_t>(c)]);
    }
    double s = 0.0;
    for (int64_t c = 0; c < C; ++c) s += std::exp(xs[static_cast<size_t>(c)] - m);
    const double lse = m + std::log(s), log_s = std::log(s);
    const double zterm = prm.z_loss * lse * lse;
    double& loss = r.loss[static_cast<size_t>(row)];
    double& mag = r.loss_mag[static_cast<size_t>(row)];
    if (k.kind == kIndex) {
      const double x_y = xs[static_cast<size_t>(y)], w_y = w_of(y);
      double wx = 0.0, shift = 0.0;
      for (int64_t c = 0; c < C; ++c) {
        wx += w_of(c) * xs[static_cast<size_t>(c)];
        shift += w_of(c) * (m - xs[static_cast<size_t>(c)]);
      }
      loss = ce_index_loss(lse, x_y, w_y, wx, prm);
      // The split form's terms, and once more the coefficient of log s: the rounding of s (>= 1) is
      // an absolute error in log s, whatever the size of log s.
      const double coef_log_s = (1.0 - k.eps) * w_y + (k.eps > 0.0 ? k.eps / static_cast<double>(C) * W : 0.0);
      mag = (1.0 - k.eps) * w_y * ((m - x_y) + log_s) + zterm + coef_log_s;
      if (k.eps > 0.0) mag += k.eps / static_cast<double>(C) * (W * log_s + shift);
      r.den[static_cast<size_t>(row)] = w_y;
      for (int64_t c = 0; c < C; ++c) {
        const double p = prob(xs[static_cast<size_t>(c)], lse);
        r.grad[at(c)] = ce_index_grad(p, c == y, w_of(c), w_y, lse, prm);
        r.grad_mag[at(c)] = (1.0 - k.eps) * w_y * (p + (c == y ? 1.0 : 0.0)) +
                            k.eps / static_cast<double>(C) * (W * p + w_of(c)) +
                            2.0 * prm.z_loss * std::fabs(lse) * p;
      }
    } else if (k.kind == kProb) {
      double a = 0.0, b = 0.0, shift = 0.0;
      for (int64_t c = 0; c < C; ++c) {
        ce_prob_accumulate(a, b, xs[static_cast<size_t>(c)], ts[static_cast<size_t>(c)], w_of(c), prm);
        shift += ce_prob_weight(ts[static_cast<size_t>(c)], w_of(c), prm) * (m - xs[static_cast<size_t>(c)]);
      }
      loss = ce_prob_loss(lse, a, b, prm);
      mag = a * log_s + shift + zterm + a;  // + a: the rounding of log s, as above
      r.den[static_cast<size_t>(row)] = 1.0;
      for (int64_t c = 0; c < C; ++c) {
        const double p = prob(xs[static_cast<size_t>(c)], lse);
        r.grad[at(c)] = ce_prob_grad(p, ts[static_cast<size_t>(c)], w_of(c), a, lse, prm);
        r.grad_mag[at(c)] = a * p + w_of(c) * smoothed(ts[static_cast<size_t>(c)], prm) +
                            2.0 * prm.z_loss * std::fabs(lse) * p;
      }
    } else {
      double big_g = 0.0, abs_g = 0.0;
      std::vector<FocalTerm<double>> terms(static_cast<size_t>(C));
      for (int64_t c = 0; c < C; ++c) {
        terms[static_cast<size_t>(c)] = focal_term(xs[static_cast<size_t>(c)], lse, k.gamma);
        const double coef = focal_coef(c == y, w_of(c), prm);
        if (coef == 0.0) continue;  // 0 f, also where f = inf (a masked class)
        loss += coef * terms[static_cast<size_t>(c)].f;
        mag += std::fabs(coef * terms[static_cast<size_t>(c)].f);
        big_g += coef * terms[static_cast<size_t>(c)].g;
        abs_g += std::fabs(coef * terms[static_cast<size_t>(c)].g);
      }
      r.den[static_cast<size_t>(row)] = 1.0;
      for (int64_t c = 0; c < C; ++c) {
        const double coef = focal_coef(c == y, w_of(c), prm);
        const FocalTerm<double>& t = terms[static_cast<size_t>(c)];
        r.grad[at(c)] = coef == 0.0 ? -t.p * big_g : focal_grad(t, coef, big_g);
        r.grad_mag[at(c)] = (coef == 0.0 ? 0.0 : std::fabs(coef * t.g)) + t.p * abs_g;
      }
    }
  }
  return r;
}

struct Out {
  int rc = 0;
  std::vector<double> loss, den, grad;  // grad empty without one
};

// One launch on host copies in storage type S; also returns the rounded inputs the truth needs.
template <typename S>
Out run(const Case& k, const Data& d, std::vector<double>* xr, std::vector<double>* pr, std::vector<double>* wr,
        bool null_input = false) {
  using acc_t = typename std::conditional<std::is_same<S, double>::value, double, float>::type;
  const int64_t rows = k.n * k.D;
  std::vector<S> x, probs;
  for (double v : d.x) x.push_back(store<S>(v));
  for (double v : d.probs) probs.push_back(store<S>(v));
  std::vector<acc_t> w(d.w.begin(), d.w.end());
  xr->clear();
  pr->clear();
  wr->assign(w.begin(), w.end());
  for (const S& v : x) xr->push_back(load(v));
  for (const S& v : probs) pr->push_back(load(v));
  std::vector<acc_t> loss(static_cast<size_t>(rows), static_cast<acc_t>(kNaN));
  std::vector<acc_t> den(static_cast<size_t>(rows), static_cast<acc_t>(kNaN));
  std::vector<S> grad(k.grad == kSeparate ? x.size() : 0, store<S>(kNaN));
  SoftmaxLaunchArgs a{};
  a.input = null_input ? nullptr : x.data();
  a.target = k.kind == kProb ? nullptr : d.target.data();
  a.probs = k.kind == kProb ? probs.data() : nullptr;
  a.weight = w.empty() ? nullptr : w.data();
  a.row_loss = loss.data();
  a.row_den = den.data();
  a.grad = k.grad == kSeparate ? static_cast<void*>(grad.data()) : (k.grad == kInPlace ? x.data() : nullptr);
  a.n = k.n;
  a.C = k.C;
  a.D = k.D;
  a.ignore_index = k.ignore_index;
  a.smoothing = k.eps;
  a.z_loss = k.z;
  a.gamma = k.gamma;
  a.mode = k.kind == kFocalKind ? kFocal : kCrossEntropy;
  a.input_dtype = dtype_code<S>();
  Out out;
  out.rc = fusedloss_softmax_fwd_cuda(&a, nullptr);
  out.loss.assign(loss.begin(), loss.end());
  out.den.assign(den.begin(), den.end());
  if (k.grad == kSeparate) {
    for (const S& v : grad) out.grad.push_back(load(v));
  } else if (k.grad == kInPlace) {
    for (const S& v : x) out.grad.push_back(load(v));
  }
  return out;
}

template <typename S>
void check_case(const Case& k, const char* group) {
  using acc_t = typename std::conditional<std::is_same<S, double>::value, double, float>::type;
  const double rtol = std::is_same<acc_t, double>::value ? 1e-13 : 1e-5;
  char ctx[320];
  std::snprintf(ctx, sizeof ctx,
                "%s dtype %d %s n %lld C %lld D %lld w %d eps %g z %g gamma %g grad %d ignore %lld offset %g "
                "masked %d",
                group, dtype_code<S>(), kKindName[k.kind], static_cast<long long>(k.n), static_cast<long long>(k.C),
                static_cast<long long>(k.D), k.weights, k.eps, k.z, k.gamma, k.grad,
                static_cast<long long>(k.ignore_index), k.offset, k.masked);
  const Data d = make_data(k);
  std::vector<double> xr, pr, wr;
  const Out got = run<S>(k, d, &xr, &pr, &wr);
  const Ref want = reference(k, d, xr, pr, wr);
  expect(got.rc == 0, "launch status", got.rc, 0, ctx);
  double sum = 0.0, sum_want = 0.0, sum_mag = 0.0, den = 0.0, den_want = 0.0;
  for (size_t r = 0; r < want.loss.size(); ++r) {
    expect_close("row loss", got.loss[r], want.loss[r], 0.0, rtol * want.loss_mag[r] + 1e-300, ctx);
    expect(got.den[r] == want.den[r], "row denominator", got.den[r], want.den[r], ctx);
    sum += got.loss[r];
    sum_want += want.loss[r];
    sum_mag += want.loss_mag[r];
    den += got.den[r];
    den_want += want.den[r];
  }
  // The binding's finish (fusedloss.ops._reduce.finish_rows): sum, and mean over the denominators.
  expect_close("sum reduction", sum, sum_want, 0.0, rtol * sum_mag + 1e-300, ctx);
  const double mean = den != 0.0 ? sum / den : kNaN;
  if (den_want == 0.0) {
    expect(den == 0.0 && std::isnan(mean), "mean over no denominator is NaN", mean, kNaN, ctx);
  } else {
    expect_close("mean reduction", mean, sum_want / den_want, 0.0, rtol * sum_mag / den_want + 1e-300, ctx);
  }
  if (k.grad == kNoGrad) return;
  const double u = store_u<S>(), floor = store_floor<S>();
  for (size_t i = 0; i < want.grad.size(); ++i) {
    const double err = rtol * want.grad_mag[i];  // then the rounding of the stored value (half types)
    expect_close("grad", got.grad[i], want.grad[i], 0.0, u * std::fabs(want.grad[i]) + (1.0 + u) * err + floor,
                 ctx);
  }
}

// The options of case number i, cycled so that every combination of the pairs comes up.
Case with_options(Case k, int i) {
  k.weights = i % 2 == 1;
  k.eps = (i / 2) % 2 == 1 ? 0.1 : 0.0;
  k.z = (i / 4) % 2 == 1 ? 1e-3 : 0.0;
  const double gammas[] = {2.0, 0.0, 1.5, 1.0};
  k.gamma = gammas[(i / 3) % 4];
  k.grad = static_cast<GradMode>(i % 3);
  k.ignore_index = i % 5 == 4 ? 1 : -100;  // a valid class ignored
  return k;
}

int g_case = 0;

void run_all_dtypes(const Case& base, const char* group) {
  for (int dt = 0; dt < 4; ++dt) {
    const Case k = with_options(base, g_case++);
    switch (dt) {
      case 0:
        check_case<float>(k, group);
        break;
      case 1:
        check_case<double>(k, group);
        break;
      case 2:
        check_case<__half>(k, group);
        break;
      default:
        check_case<__nv_bfloat16>(k, group);
    }
  }
}

void warp_rows() {
  struct Shape {
    int64_t n, C, D;
  };
  const Shape shapes[] = {{20, 1, 1}, {3, 2, 3}, {9, 31, 1}, {5, 32, 2}, {12, 33, 1}, {9, 300, 1}, {1, 512, 3}};
  for (const Shape& s : shapes) {
    for (Kind kind : {kIndex, kProb, kFocalKind}) {
      Case k;
      k.n = s.n;
      k.C = s.C;
      k.D = s.D;
      k.kind = kind;
      run_all_dtypes(k, "warp rows");
    }
  }
}

void thread_rows() {
  struct Shape {
    int64_t n, C, D;
  };
  const Shape shapes[] = {{9, 1, 32}, {9, 7, 33}, {4, 40, 70}};
  for (const Shape& s : shapes) {
    for (Kind kind : {kIndex, kProb, kFocalKind}) {
      Case k;
      k.n = s.n;
      k.C = s.C;
      k.D = s.D;
      k.kind = kind;
      run_all_dtypes(k, "thread rows");
    }
  }
}

void block_rows() {
  struct Shape {
    int64_t n, C, D;
  };
  const Shape shapes[] = {{2, 513, 1}, {1, 4096, 2}, {2, 4097, 1}, {1, 5000, 2}};
  int i = 0;
  for (const Shape& s : shapes) {
    for (Kind kind : {kIndex, kProb, kFocalKind}) {
      Case k = with_options(Case{}, g_case++);
      k.n = s.n;
      k.C = s.C;
      k.D = s.D;
      k.kind = kind;
      switch (i++ % 4) {
        case 0:
          check_case<float>(k, "block rows");
          break;
        case 1:
          check_case<double>(k, "block rows");
          break;
        case 2:
          check_case<__half>(k, "block rows");
          break;
        default:
          check_case<__nv_bfloat16>(k, "block rows");
      }
    }
  }
}

void special_inputs() {
  for (Kind kind : {kIndex, kProb, kFocalKind}) {
    for (int i = 0; i < 6; ++i) {
      Case k = with_options(Case{}, i);
      k.kind = kind;
      k.offset = 1000.0;
      k.n = i < 3 ? 12 : 3;
      k.C = i < 3 ? 45 : 600;
      check_case<float>(k, "logits + 1000");
    }
  }
  for (Kind kind : {kIndex, kFocalKind}) {
    for (int64_t D : {1, 40}) {
      Case k;
      k.kind = kind;
      k.n = 10;
      k.C = 37;
      k.D = D;
      k.masked = true;
      k.gamma = 2.0;
      k.grad = kSeparate;
      k.weights = true;
      check_case<float>(k, "masked -inf");
      check_case<double>(k, "masked -inf");
    }
  }
  for (Kind kind : {kIndex, kFocalKind}) {
    Case k;
    k.kind = kind;
    k.n = 11;
    k.C = 9;
    k.all_ignored = true;
    k.grad = kInPlace;
    check_case<float>(k, "all ignored");
  }
  // C = 0: every row loss 0, denominator 0, and the input may be NULL.
  for (Kind kind : {kIndex, kFocalKind}) {
    Case k;
    k.kind = kind;
    k.n = 5;
    k.C = 0;
    k.D = 2;
    const Data d = make_data(k);
    std::vector<double> xr, pr, wr;
    const Out got = run<float>(k, d, &xr, &pr, &wr, true);
    expect(got.rc == 0, "C = 0: status", got.rc, 0, kKindName[kind]);
    for (size_t r = 0; r < got.loss.size(); ++r) {
      expect(got.loss[r] == 0.0 && got.den[r] == 0.0, "C = 0: loss and denominator 0", got.loss[r], 0.0,
             kKindName[kind]);
    }
  }
}

void launch_checks() {
  std::vector<float> x(12, 0.5f), probs(12, 0.25f), loss(4, -7.0f), den(4, -7.0f), grad(12, -7.0f);
  std::vector<int64_t> target = {0, 1, 2, 0};
  auto base = [&]() {
    SoftmaxLaunchArgs a{};
    a.input = x.data();
    a.target = target.data();
    a.row_loss = loss.data();
    a.row_den = den.data();
    a.grad = grad.data();
    a.n = 4;
    a.C = 3;
    a.D = 1;
    a.ignore_index = -100;
    a.mode = kCrossEntropy;
    a.input_dtype = kSoftmaxF32;
    return a;
  };
  struct Bad {
    const char* what;
    void (*edit)(SoftmaxLaunchArgs&, const void* probs);
  };
  const Bad bads[] = {
      {"n < 0", [](SoftmaxLaunchArgs& a, const void*) { a.n = -1; }},
      {"C < 0", [](SoftmaxLaunchArgs& a, const void*) { a.C = -2; }},
      {"D < 0", [](SoftmaxLaunchArgs& a, const void*) { a.D = -1; }},
      {"mode 2", [](SoftmaxLaunchArgs& a, const void*) { a.mode = 2; }},
      {"mode -1", [](SoftmaxLaunchArgs& a, const void*) { a.mode = -1; }},
      {"row_loss NULL", [](SoftmaxLaunchArgs& a, const void*) { a.row_loss = nullptr; }},
      {"row_den NULL", [](SoftmaxLaunchArgs& a, const void*) { a.row_den = nullptr; }},
      {"both targets", [](SoftmaxLaunchArgs& a, const void* p) { a.probs = p; }},
      {"no target", [](SoftmaxLaunchArgs& a, const void*) { a.target = nullptr; }},
      {"probabilities in focal mode",
       [](SoftmaxLaunchArgs& a, const void* p) {
         a.target = nullptr;
         a.probs = p;
         a.mode = kFocal;
       }},
      {"input NULL with C > 0", [](SoftmaxLaunchArgs& a, const void*) { a.input = nullptr; }},
      // More blocks than gridDim.x * gridDim.y can hold (2^47 warp-row blocks): refused before any access.
      {"grid too large", [](SoftmaxLaunchArgs& a, const void*) { a.n = int64_t(1) << 50; }},
  };
  for (const Bad& b : bads) {
    SoftmaxLaunchArgs a = base();
    b.edit(a, probs.data());
    expect(fusedloss_softmax_fwd_cuda(&a, nullptr) == kSoftmaxBadArgs, "kSoftmaxBadArgs", 0, 0, b.what);
  }
  expect(fusedloss_softmax_fwd_cuda(nullptr, nullptr) == kSoftmaxBadArgs, "kSoftmaxBadArgs", 0, 0, "args NULL");
  for (int dt : {-1, 4, 99}) {
    SoftmaxLaunchArgs a = base();
    a.input_dtype = dt;
    expect(fusedloss_softmax_fwd_cuda(&a, nullptr) == kSoftmaxBadInputDType, "kSoftmaxBadInputDType", dt, 0, "");
  }
  // Empty inputs: status 0, nothing written (NULL outputs are fine then).
  for (int which = 0; which < 3; ++which) {
    SoftmaxLaunchArgs a = base();
    if (which == 0) a.n = 0;
    if (which == 1) a.D = 0;
    if (which == 2) {
      a.n = 0;
      a.row_loss = nullptr;
      a.row_den = nullptr;
      a.target = nullptr;
      a.input = nullptr;
      a.input_dtype = 77;  // not even looked at
    }
    expect(fusedloss_softmax_fwd_cuda(&a, nullptr) == 0, "empty input: status 0", which, 0, "");
  }
  bool untouched = true;
  for (float v : loss) untouched = untouched && v == -7.0f;
  for (float v : den) untouched = untouched && v == -7.0f;
  for (float v : grad) untouched = untouched && v == -7.0f;
  expect(untouched, "rejected and empty launches write nothing", 0, 0, "");
}

}  // namespace

int main() {
  flsim::g_rng.seed(20260611);
  const fltest::Group groups[] = {{"warp rows", warp_rows},
                                  {"thread rows", thread_rows},
                                  {"block rows", block_rows},
                                  {"special inputs", special_inputs},
                                  {"launch checks", launch_checks}};
  return fltest::run_groups("test_softmax_cuda_sim", groups);
}
