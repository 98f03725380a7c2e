// Torch-free unit tests of the per-element math in csrc/pointwise/pointwise_math.h (run by ctest; see
// CMakeLists.txt). Exits nonzero on any failure and prints a summary.
//
//  1. Each kind's loss against its formula in long double, over a grid of predictions, targets and
//     parameters, in double (tight) and float.
//  2. d loss / dx against central finite differences, in double, away from the kinks.
//  3. Kink and sign(0) conventions (torch's subgradients: sign(0) = 0; Huber / smooth L1 at the
//     switch; hinge at margin 0; KL at y = 0).
//  4. Stability: log-cosh and sigmoid-MSE finite and exact at |d| = 1e4 (float and double); log-cosh
//     relatively accurate at small |d| in float.
//  5. Every compile-time kind (the cpu loops' specialisation) agrees bit for bit with the runtime
//     switch (the GPU's).
#include <cmath>
#include <cstdio>
#include <initializer_list>
#include <limits>
#include <utility>

#include "check.h"
#include "../pointwise/pointwise_math.h"

namespace pw = fusedloss::pointwise;
using pw::ElemOut;
using pw::pointwise_elem;

namespace {

using fltest::expect;
using fltest::expect_close;

using ld = long double;

const char* kind_name(int64_t k) {
  static const char* names[] = {"l1",          "mse",     "huber",     "smooth_l1",    "log_cosh",
                                "mape",        "hinge",   "sq_hinge",  "exponential",  "sigmoid_mse",
                                "log_loss",    "kl_div",  "kl_div_log_target"};
  return k >= 0 && k < pw::kNumKinds ? names[k] : "?";
}

// The loss of kind k, written directly from its definition in long double.
ld formula(int64_t k, ld x, ld y, ld a) {
  const ld d = x - y, ad = std::fabs(d);
  switch (k) {
    case pw::kL1:
      return ad;
    case pw::kMSE:
      return d * d;
    case pw::kHuber:
      return ad <= a ? d * d / 2 : a * (ad - a / 2);
    case pw::kSmoothL1:
      return ad < a ? d * d / (2 * a) : ad - a / 2;
    case pw::kLogCosh:
      return std::log(std::cosh(d));
    case pw::kMAPE:
      return 100 * ad / std::fmax(std::fabs(y), a);
    case pw::kHinge:
      return std::fmax(1 - y * x, ld(0));
    case pw::kSquaredHinge: {
      const ld h = std::fmax(1 - y * x, ld(0));
      return h * h;
    }
    case pw::kExponential:
      return std::exp(-y * x);
    case pw::kSigmoidMSE: {
      const ld s = 1 / (1 + std::exp(-x));
      return (s - y) * (s - y);
    }
    case pw::kLogLoss:
      return -y * std::log(x + a) - (1 - y) * std::log(1 - x + a);
    case pw::kKLDiv:
      return y == 0 ? ld(0) : y * (std::log(y) - x);
    default:
      return std::exp(y) * (y - x);
  }
}

// The (x, y, a) grid of kind k: predictions and targets in each kind's domain.
struct Grid {
  const double* xs;
  int nx;
  const double* ys;
  int ny;
  const double* as;
  int na;
};

const double kReals[] = {-7.5, -2.0, -1.1, -0.3, 0.0, 0.05, 0.7, 1.0, 2.4, 9.0};
const double kLabels[] = {-1.0, 1.0};
const double kProbs[] = {0.0, 0.2, 0.5, 0.9, 1.0};
const double kPreds[] = {1e-3, 0.1, 0.35, 0.6, 0.97};
const double kLogits[] = {-30.0, -8.0, -1.5, -0.2, 0.0, 0.4, 2.0, 12.0, 30.0};
const double kLogProbs[] = {-9.0, -2.3, -0.7, -0.05};
const double kKLTargets[] = {0.0, 1e-6, 0.25, 0.8};
const double kLogTargets[] = {-6.0, -1.2, -0.3, 0.0, 0.4};
const double kNone[] = {0.0};
const double kWidths[] = {0.3, 1.0, 2.5};
const double kBetas[] = {0.0, 0.3, 1.0, 2.5};
const double kEps[] = {1e-7, 0.5};
const double kLogEps[] = {0.0, 1e-7, 0.01};

#define FL_N(a) static_cast<int>(sizeof(a) / sizeof((a)[0]))
Grid grid_of(int64_t k) {
  switch (k) {
    case pw::kHuber:
      return {kReals, FL_N(kReals), kReals, FL_N(kReals), kWidths, FL_N(kWidths)};
    case pw::kSmoothL1:
      return {kReals, FL_N(kReals), kReals, FL_N(kReals), kBetas, FL_N(kBetas)};
    case pw::kMAPE:
      return {kReals, FL_N(kReals), kReals, FL_N(kReals), kEps, FL_N(kEps)};
    case pw::kHinge:
    case pw::kSquaredHinge:
    case pw::kExponential:
      return {kReals, FL_N(kReals), kLabels, FL_N(kLabels), kNone, 1};
    case pw::kSigmoidMSE:
      return {kLogits, FL_N(kLogits), kProbs, FL_N(kProbs), kNone, 1};
    case pw::kLogLoss:
      return {kPreds, FL_N(kPreds), kProbs, FL_N(kProbs), kLogEps, FL_N(kLogEps)};
    case pw::kKLDiv:
      return {kLogProbs, FL_N(kLogProbs), kKLTargets, FL_N(kKLTargets), kNone, 1};
    case pw::kKLDivLogTarget:
      return {kLogProbs, FL_N(kLogProbs), kLogTargets, FL_N(kLogTargets), kNone, 1};
    default:
      return {kReals, FL_N(kReals), kReals, FL_N(kReals), kNone, 1};
  }
}
#undef FL_N

// Distance from x to the nearest kink of kind k (x where the loss is not differentiable), or +inf.
double kink_distance(int64_t k, double x, double y, double a) {
  const double d = x - y, inf = std::numeric_limits<double>::infinity();
  switch (k) {
    case pw::kL1:
    case pw::kMAPE:
      return std::fabs(d);
    case pw::kHuber:
      return std::fabs(std::fabs(d) - a);
    case pw::kSmoothL1:
      return a == 0.0 ? std::fabs(d) : std::fabs(std::fabs(d) - a);
    case pw::kHinge:
    case pw::kSquaredHinge:  // C1 only: the finite difference is off by O(h) across the margin
      return std::fabs(1 - y * x);  // |y| = 1
    default:
      return inf;
  }
}

template <typename F>
void for_each_point(F&& f) {
  for (int64_t k = 0; k < pw::kNumKinds; ++k) {
    const Grid g = grid_of(k);
    for (int ia = 0; ia < g.na; ++ia)
      for (int iy = 0; iy < g.ny; ++iy)
        for (int ix = 0; ix < g.nx; ++ix) f(k, g.xs[ix], g.ys[iy], g.as[ia]);
  }
}

// Rounding error the formula itself implies at these arguments (in units of the working epsilon),
// beyond a few ulps of the result: the cancellation in sigmoid(x) - y, and the rounding of x + a and
// 1 - x + a before log in the log loss.
double conditioning(int64_t k, double x, double y, double a) {
  if (k == pw::kSigmoidMSE) {
    const double r = 1 / (1 + std::exp(-x)) - y;
    return 4 * (1 + std::fabs(y)) * std::fabs(r);
  }
  if (k == pw::kLogLoss) {
    return 4 * (std::fabs(y) * (std::fabs(x) + a) / (x + a) + std::fabs(1 - y) * (1 + std::fabs(x) + a) / (1 - x + a));
  }
  return 0.0;
}

void test_loss_vs_formula() {
  char ctx[160];
  for_each_point([&](int64_t k, double x, double y, double a) {
    std::snprintf(ctx, sizeof(ctx), "%s x=%g y=%g a=%g", kind_name(k), x, y, a);
    const ld want = formula(k, x, y, a);
    const double cond = conditioning(k, x, y, a);
    const double got = pointwise_elem<double>(k, x, y, a).loss;
    expect_close("loss (double) vs long double", got, static_cast<double>(want), 1e-14, 1.2e-16 * cond, ctx);
    const float gotf = pointwise_elem<float>(k, static_cast<float>(x), static_cast<float>(y),
                                             static_cast<float>(a)).loss;
    // float: the formula at the float-rounded arguments.
    const ld wantf = formula(k, static_cast<float>(x), static_cast<float>(y), static_cast<float>(a));
    expect_close("loss (float) vs long double", gotf, static_cast<double>(wantf), 4e-6, 6e-8 * cond, ctx);
  });
}

void test_grad_vs_finite_differences() {
  char ctx[160];
  for_each_point([&](int64_t k, double x, double y, double a) {
    const double h = 1e-6 * std::fmax(1.0, std::fabs(x));
    if (kink_distance(k, x, y, a) < 4 * h) return;
    if (k == pw::kLogLoss && (x - h + a <= 0.0 || 1 - x - h + a <= 0.0)) return;
    std::snprintf(ctx, sizeof(ctx), "%s x=%g y=%g a=%g", kind_name(k), x, y, a);
    const ElemOut<double> o = pointwise_elem<double>(k, x, y, a);
    const double lp = pointwise_elem<double>(k, x + h, y, a).loss;
    const double lm = pointwise_elem<double>(k, x - h, y, a).loss;
    const double fd = (lp - lm) / (2 * h);
    // Central differences: O(h^2 f''') truncation + O(ulp(f) / h) rounding.
    const double atol = 1e-8 + 4e-16 * std::fabs(o.loss) / h;
    expect_close("grad vs finite difference", o.grad, fd, 1e-6, atol, ctx);
    expect(std::isfinite(o.loss) && std::isfinite(o.grad), "finite", o.grad, 0.0, ctx);
  });
}

ElemOut<double> at(int64_t k, double x, double y, double a = 0.0) { return pointwise_elem<double>(k, x, y, a); }

void test_kinks() {
  // sign(0) = 0: L1, smooth L1 with beta 0 (= L1), MAPE at a tie.
  expect(at(pw::kL1, 1.5, 1.5).grad == 0.0, "l1 grad at d = 0", at(pw::kL1, 1.5, 1.5).grad, 0.0, "");
  expect(at(pw::kL1, -2.0, 1.0).grad == -1.0, "l1 grad at d < 0", at(pw::kL1, -2.0, 1.0).grad, -1.0, "");
  expect(at(pw::kSmoothL1, 0.5, 0.5, 0.0).grad == 0.0, "smooth_l1 beta 0 grad at d = 0",
         at(pw::kSmoothL1, 0.5, 0.5, 0.0).grad, 0.0, "");
  expect(at(pw::kSmoothL1, 3.0, 0.5, 0.0).loss == 2.5, "smooth_l1 beta 0 is l1",
         at(pw::kSmoothL1, 3.0, 0.5, 0.0).loss, 2.5, "");
  expect(at(pw::kMAPE, 2.0, 2.0, 1e-7).grad == 0.0, "mape grad at d = 0", at(pw::kMAPE, 2.0, 2.0, 1e-7).grad,
         0.0, "");
  // MAPE's denominator: max(|y|, eps).
  expect_close("mape at y = 0 uses eps", at(pw::kMAPE, 1e-7, 0.0, 1e-7).loss, 100.0, 1e-15, 0.0, "");
  expect_close("mape grad uses |y|", at(pw::kMAPE, 1.0, -4.0, 1e-7).grad, 25.0, 1e-15, 0.0, "");
  // Huber at |d| = delta: both branches agree; torch's gradient there is d.
  for (const double s : {-1.0, 1.0}) {
    const ElemOut<double> o = at(pw::kHuber, 0.5 + s * 2.0, 0.5, 2.0);
    expect(o.loss == 2.0, "huber loss at |d| = delta", o.loss, 2.0, "");
    expect(o.grad == s * 2.0, "huber grad at |d| = delta", o.grad, s * 2.0, "");
    // Smooth L1 at |d| = beta: the linear branch, gradient sign(d) (= d / beta).
    const ElemOut<double> q = at(pw::kSmoothL1, s * 0.5, 0.0, 0.5);
    expect(q.loss == 0.25, "smooth_l1 loss at |d| = beta", q.loss, 0.25, "");
    expect(q.grad == s, "smooth_l1 grad at |d| = beta", q.grad, s, "");
  }
  // Hinge at margin 0: torch's clamp(min=0) and TF's maximum pass the gradient (-y).
  for (const double y : {-1.0, 1.0}) {
    const ElemOut<double> o = at(pw::kHinge, y, y);
    expect(o.loss == 0.0 && o.grad == -y, "hinge at 1 - y x = 0: loss 0, grad -y", o.grad, -y, "");
    const ElemOut<double> q = at(pw::kHinge, 2.0 * y, y);
    expect(q.loss == 0.0 && q.grad == 0.0, "hinge beyond the margin: 0", q.grad, 0.0, "");
    const ElemOut<double> r = at(pw::kSquaredHinge, y, y);
    expect(r.loss == 0.0 && r.grad == 0.0, "squared hinge at the margin: 0", r.grad, 0.0, "");
  }
  // KL at y = 0: loss 0 (0 log 0 = 0, torch's xlogy), gradient -y = -0.
  const ElemOut<double> kl = at(pw::kKLDiv, -3.0, 0.0);
  expect(kl.loss == 0.0 && kl.grad == 0.0, "kl_div at y = 0", kl.loss, 0.0, "");
  expect(std::isnan(at(pw::kKLDiv, -3.0, -0.5).loss), "kl_div at y < 0 is NaN (as torch)", 0.0, 0.0, "");
  // Log loss with epsilon 0 at p = y = 1: TF's formula has 0 log 0 = NaN there, and so do we (and the
  // reference); with the default epsilon it is finite.
  expect(std::isnan(at(pw::kLogLoss, 1.0, 1.0, 0.0).loss), "log_loss(p = 1, y = 1, eps = 0) is NaN",
         at(pw::kLogLoss, 1.0, 1.0, 0.0).loss, 0.0, "");
  expect_close("log_loss(p = 1, y = 1, eps = 1e-7)", at(pw::kLogLoss, 1.0, 1.0, 1e-7).loss, -std::log1p(1e-7),
               1e-8, 0.0, "");  // log(1 + 1e-7) after rounding 1 + 1e-7, as TF
  // Log-cosh and sigmoid-MSE at 0.
  expect(at(pw::kLogCosh, 0.3, 0.3).loss == 0.0 && at(pw::kLogCosh, 0.3, 0.3).grad == 0.0, "log_cosh at d = 0",
         at(pw::kLogCosh, 0.3, 0.3).loss, 0.0, "");
  expect(at(pw::kSigmoidMSE, 0.0, 0.5).loss == 0.0, "sigmoid_mse(0, 0.5) = 0", at(pw::kSigmoidMSE, 0.0, 0.5).loss,
         0.0, "");
  expect_close("sigmoid_mse grad at x = 0, y = 0", at(pw::kSigmoidMSE, 0.0, 0.0).grad, 0.25, 1e-15, 0.0, "");
}

template <typename T>
void stability_at(T d) {
  char ctx[96];
  std::snprintf(ctx, sizeof(ctx), "%s d=%g", sizeof(T) == 4 ? "float" : "double", static_cast<double>(d));
  for (const T y : {T(0), T(-3), T(2.5)}) {
    const ElemOut<T> lc = pointwise_elem<T>(pw::kLogCosh, y + d, y, T(0));
    // log cosh d = |d| - log 2 + log1p(e^{-2|d|}); the last term underflows to 0.
    const double want = std::fabs(static_cast<double>((y + d) - y)) - std::log(2.0);
    expect(std::isfinite(lc.loss) && std::isfinite(lc.grad), "log_cosh finite", lc.loss, want, ctx);
    expect_close("log_cosh loss at large |d|", lc.loss, want, sizeof(T) == 4 ? 1e-7 : 1e-15, 0.0, ctx);
    expect(lc.grad == (d > 0 ? T(1) : T(-1)), "log_cosh grad at large |d| is sign(d)", lc.grad, d > 0 ? 1 : -1,
           ctx);
  }
  for (const T y : {T(0), T(0.3), T(1)}) {
    const ElemOut<T> sm = pointwise_elem<T>(pw::kSigmoidMSE, d, y, T(0));
    const double yd = static_cast<double>(y);
    const double s = d > 0 ? 1.0 : 0.0, tail = std::exp(-std::fabs(static_cast<double>(d)));  // |s - sigmoid|
    expect(std::isfinite(sm.loss) && std::isfinite(sm.grad), "sigmoid_mse finite", sm.loss, 0.0, ctx);
    expect_close("sigmoid_mse loss at large |x|", sm.loss, (s - yd) * (s - yd), 1e-7, 3 * tail + 1e-300, ctx);
    expect_close("sigmoid_mse grad at large |x|", sm.grad, 0.0, 0.0, 3 * tail + 1e-300, ctx);
    if (std::fabs(static_cast<double>(d)) > 800) {
      expect(sm.loss == (T(s) - y) * (T(s) - y) && sm.grad == T(0), "sigmoid_mse saturates exactly", sm.grad, 0.0,
             ctx);
    }
  }
}

void test_stability() {
  for (const double d : {1e4, -1e4, 300.0, -300.0, 89.0, -89.0}) {
    stability_at<double>(d);
    stability_at<float>(static_cast<float>(d));
  }
  // Small |d|: log cosh d ~ d^2 / 2 keeps its relative accuracy in float (|d| - log 2 + log1p(e^{-2|d|})
  // gives 0 at 1e-4 and is 5% off at 1e-3), and tanh d ~ d.
  for (const double d : {1e-6, -1e-4, 1e-3, -0.02, 0.5, 0.999, 1.0, 1.001}) {
    const ElemOut<float> o = pointwise_elem<float>(pw::kLogCosh, static_cast<float>(d), 0.0f, 0.0f);
    const double df = static_cast<float>(d);
    expect_close("log_cosh (float) relative accuracy", o.loss, static_cast<double>(std::log(std::cosh((ld)df))),
                 4e-7, 0.0, "small |d|");
    expect_close("log_cosh grad (float) relative accuracy", o.grad, std::tanh(df), 4e-7, 0.0, "small |d|");
  }
  // Moderate |x| for sigmoid-MSE: the gradient keeps its relative accuracy (no 1 - s cancellation).
  const double x = 25.0, e = std::exp(-x), s = 1 / (1 + e);
  const double want = 2 * (s - 1.0) * s * (e / (1 + e));
  expect_close("sigmoid_mse grad at x = 25, y = 1", at(pw::kSigmoidMSE, x, 1.0).grad, want, 1e-12, 0.0, "");
}

template <int K>
void compile_time_kind_matches(const char* ctx, double x, double y, double a) {
  const ElemOut<double> r = pointwise_elem<double>(K, x, y, a);
  const ElemOut<double> c = pointwise_elem<double, K>(-1, x, y, a);  // kind argument ignored
  const bool same = (r.loss == c.loss || (std::isnan(r.loss) && std::isnan(c.loss))) &&
                    (r.grad == c.grad || (std::isnan(r.grad) && std::isnan(c.grad)));
  expect(same, "compile-time kind == runtime kind", c.loss, r.loss, ctx);
}

template <int... K>
void all_kinds_match(double x, double y, double a, std::integer_sequence<int, K...>) {
  char ctx[96];
  std::snprintf(ctx, sizeof(ctx), "x=%g y=%g a=%g", x, y, a);
  (compile_time_kind_matches<K>(ctx, x, y, a), ...);
}

void test_compile_time_kinds() {
  for (const double x : {-2.0, -0.4, 0.0, 0.3, 0.5, 1.0, 3.0})
    for (const double y : {-1.0, 0.0, 0.25, 1.0})
      for (const double a : {0.0, 0.5, 1.0})
        all_kinds_match(x, y, a, std::make_integer_sequence<int, pw::kNumKinds>{});
}

}  // namespace

int main() {
  static const fltest::Group groups[] = {
      {"loss vs long double", test_loss_vs_formula},
      {"grad vs finite differences", test_grad_vs_finite_differences},
      {"kinks and sign(0)", test_kinks},
      {"stability at large |d|", test_stability},
      {"compile-time kinds", test_compile_time_kinds},
  };
  return fltest::run_groups("test_pointwise_math", groups);
}
