// Torch-free unit tests of the per-element math in csrc/focal/focal_math.h (run by ctest; see
// CMakeLists.txt). Exits nonzero on any failure and prints a summary.
//
//  1. d loss / dx against central finite differences, in double, over modes x alpha x pos_weight x
//     smoothing x gamma in {0, 0.5, 1, 2, 3.3} x weights x logits (including +-30) x targets (hard
//     and soft).
//  2. Known values (BCE at x = 0 is log 2, ...).
//  3. EasyRec's probability clip: where it is active (|x| >~ 16.1), d m / dx is 0, so the gradient is
//     exactly v * dce/dx; torchvision mode keeps the (tiny) modulating term there.
//  4. Every GammaKind agrees with the runtime-gamma path, and fp32 stays finite at extreme logits.
#include <cmath>
#include <cstdio>
#include <initializer_list>
#include <limits>

#include "check.h"
#include "../focal/focal_math.h"

using fusedloss::focal::binary_focal_elem;
using fusedloss::focal::ElemOut;
using fusedloss::focal::Params;
namespace fl = fusedloss::focal;

namespace {

using fltest::expect;
using fltest::expect_close;
using fltest::g_checks;
using fltest::g_failures;

const char* mode_name(int64_t mode) {
  return mode == fl::kBCE ? "bce" : (mode == fl::kTorchvision ? "torchvision" : "easyrec");
}

// EasyRec's clip changes regime where sigmoid(x) crosses 1e-7 or 1 - 1e-7: the loss has a kink there,
// so no finite difference across it. x = logit(1 - 1e-7) ~ 16.118.
bool near_easyrec_kink(double x, double h) {
  const double k = std::log((1.0 - 1e-7) / 1e-7);
  return std::fabs(std::fabs(x) - k) < 2 * h;
}

void test_finite_differences() {
  const double logits[] = {-30.0, -12.0, -3.7, -1.0, -0.3, 0.0, 0.2, 1.0, 2.5, 7.0, 12.0, 17.0, 30.0};
  const double targets[] = {0.0, 1.0, 0.3, 0.75};
  const double gammas[] = {0.0, 0.5, 1.0, 2.0, 3.3};
  const double alphas[] = {-1.0, 0.25};
  const double smoothings[] = {0.0, 0.1};
  const double weights[] = {1.0, 0.7, -1.2};
  struct Pw {
    bool has;
    double pw;
  };
  const Pw pws[] = {{false, 1.0}, {true, 0.5}, {true, 3.0}};
  char ctx[256];
  for (int64_t mode = fl::kBCE; mode <= fl::kEasyRec; ++mode) {
    for (const double gamma : gammas) {
      if (mode == fl::kBCE && gamma != 2.0) continue;  // gamma unused
      for (const double alpha : alphas)
        for (const double eps : smoothings)
          for (const Pw pw : pws)
            for (const double w : weights)
              for (const double t : targets)
                for (const double x : logits) {
                  const Params<double> prm{mode, alpha, gamma, eps};
                  const double h = 1e-5 * std::fmax(1.0, std::fabs(x));
                  if (mode == fl::kEasyRec && near_easyrec_kink(x, h)) continue;
                  const ElemOut<double> o = binary_focal_elem<double>(x, t, w, pw.pw, pw.has, prm);
                  const double lp = binary_focal_elem<double>(x + h, t, w, pw.pw, pw.has, prm).loss;
                  const double lm = binary_focal_elem<double>(x - h, t, w, pw.pw, pw.has, prm).loss;
                  const double fd = (lp - lm) / (2 * h);
                  std::snprintf(ctx, sizeof(ctx), "%s x=%g t=%g gamma=%g alpha=%g eps=%g pw=%s%g w=%g",
                                mode_name(mode), x, t, gamma, alpha, eps, pw.has ? "" : "none/", pw.pw, w);
                  // Central differences: O(h^2 f''') truncation + O(ulp(f) / h) rounding.
                  const double atol = 1e-9 + 1e-10 * std::fabs(o.loss) / h;
                  expect_close("grad vs finite difference", o.grad, fd, 1e-6, atol, ctx);
                  expect(std::isfinite(o.loss) && std::isfinite(o.grad) && std::isfinite(o.v), "finite",
                         o.grad, 0.0, ctx);
                }
    }
  }
}

void test_known_values() {
  const double log2 = std::log(2.0);
  const Params<double> bce{fl::kBCE, -1.0, 0.0, 0.0};
  ElemOut<double> o = binary_focal_elem<double>(0.0, 1.0, 1.0, 1.0, false, bce);
  expect_close("BCE(0, 1)", o.loss, log2, 1e-15, 0, "x=0 t=1");
  expect_close("dBCE(0, 1)", o.grad, -0.5, 1e-15, 0, "x=0 t=1");
  expect_close("v of BCE", o.v, 1.0, 0, 0, "x=0 t=1");
  o = binary_focal_elem<double>(0.0, 0.0, 1.0, 1.0, false, bce);
  expect_close("BCE(0, 0)", o.loss, log2, 1e-15, 0, "x=0 t=0");
  expect_close("dBCE(0, 0)", o.grad, 0.5, 1e-15, 0, "x=0 t=0");
  // Large logits: no overflow, and softplus(-30) = log1p(exp(-30)).
  o = binary_focal_elem<double>(30.0, 1.0, 1.0, 1.0, false, bce);
  expect_close("BCE(30, 1)", o.loss, std::log1p(std::exp(-30.0)), 1e-14, 0, "x=30 t=1");
  o = binary_focal_elem<double>(-30.0, 1.0, 1.0, 1.0, false, bce);
  expect_close("BCE(-30, 1)", o.loss, 30.0 + std::log1p(std::exp(-30.0)), 1e-15, 0, "x=-30 t=1");
  o = binary_focal_elem<double>(1000.0, 0.0, 1.0, 1.0, false, bce);
  expect_close("BCE(1000, 0)", o.loss, 1000.0, 1e-15, 0, "x=1000 t=0");
  expect_close("dBCE(1000, 0)", o.grad, 1.0, 1e-15, 0, "x=1000 t=0");
  // Weight 0.5 and pos_weight 3 at x = 0, t = 1: 0.5 * 3 * log 2.
  o = binary_focal_elem<double>(0.0, 1.0, 0.5, 3.0, true, bce);
  expect_close("BCE pos_weight", o.loss, 1.5 * log2, 1e-15, 0, "x=0 t=1 w=0.5 pw=3");
  expect_close("dBCE pos_weight", o.grad, 0.5 * (0.0 - 3.0 * 0.5), 1e-15, 0, "x=0 t=1 w=0.5 pw=3");
  // Label smoothing 0.1: target 1 -> 0.95; at x = 0 the loss is still log 2, the gradient 0.5 - 0.95.
  const Params<double> smooth{fl::kBCE, -1.0, 0.0, 0.1};
  o = binary_focal_elem<double>(0.0, 1.0, 1.0, 1.0, false, smooth);
  expect_close("BCE smoothed", o.loss, log2, 1e-15, 0, "x=0 t=1 eps=0.1");
  expect_close("dBCE smoothed", o.grad, -0.45, 1e-15, 0, "x=0 t=1 eps=0.1");
  // torchvision focal, alpha 0.25, gamma 2, x = 0, t = 1: 0.25 * 0.5^2 * log 2; v = 0.0625.
  const Params<double> tv{fl::kTorchvision, 0.25, 2.0, 0.0};
  o = binary_focal_elem<double>(0.0, 1.0, 1.0, 1.0, false, tv);
  expect_close("focal(0, 1)", o.loss, 0.0625 * log2, 1e-15, 0, "x=0 t=1 alpha=.25 gamma=2");
  expect_close("v focal(0, 1)", o.v, 0.0625, 1e-15, 0, "x=0 t=1 alpha=.25 gamma=2");
  // d/dx [a (1-p)^2 ce] at 0 with t = 1: a [-2 (1-p) p (1-p) ce + (1-p)^2 (p - 1)] = a [-0.25 log2 - 0.125]
  expect_close("dfocal(0, 1)", o.grad, 0.25 * (-0.25 * log2 - 0.125), 1e-15, 0, "x=0 t=1 alpha=.25 gamma=2");
  // alpha = 1 zeroes the negatives (v = 0: they leave the SBNZ denominator).
  const Params<double> a1{fl::kEasyRec, 1.0, 2.0, 0.0};
  o = binary_focal_elem<double>(0.7, 0.0, 1.0, 1.0, false, a1);
  expect(o.v == 0.0 && o.loss == 0.0 && o.grad == 0.0, "alpha=1 negative is zero", o.v, 0.0, "t=0");
  // gamma = 0 is weighted BCE in both focal modes.
  const Params<double> g0{fl::kTorchvision, 0.25, 0.0, 0.0};
  o = binary_focal_elem<double>(1.3, 1.0, 1.0, 1.0, false, g0);
  const ElemOut<double> b = binary_focal_elem<double>(1.3, 1.0, 1.0, 1.0, false, bce);
  expect_close("gamma=0 is alpha * BCE", o.loss, 0.25 * b.loss, 1e-15, 0, "x=1.3 t=1");
  expect_close("gamma=0 grad", o.grad, 0.25 * b.grad, 1e-15, 0, "x=1.3 t=1");
}

void test_easyrec_clip() {
  char ctx[128];
  const double xs[] = {-100.0, -30.0, -20.0, 17.0, 20.0, 30.0, 100.0};
  const double ts[] = {0.0, 1.0, 0.25};
  for (const double gamma : {0.5, 2.0, 3.3}) {
    for (const double x : xs) {
      for (const double t : ts) {
        std::snprintf(ctx, sizeof(ctx), "x=%g t=%g gamma=%g", x, t, gamma);
        const Params<double> er{fl::kEasyRec, 0.25, gamma, 0.0};
        const ElemOut<double> o = binary_focal_elem<double>(x, t, 0.8, 1.0, false, er);
        // With the clip active m is constant in x: grad = w a m dce = v dce, dce = p - t.
        const double p = 1.0 / (1.0 + std::exp(-x));
        const double v_dce = o.v * (p - t);
        expect_close("easyrec clip: grad == v * dce", o.grad, v_dce, 1e-14, 1e-300, ctx);
        expect(o.v > 0.0, "easyrec clip keeps v > 0", o.v, 0.0, ctx);
      }
    }
  }
  // Control: torchvision mode keeps d m / dx there (x = 12, soft target), so the same identity fails.
  const Params<double> tv{fl::kTorchvision, 0.25, 2.0, 0.0};
  const ElemOut<double> o = binary_focal_elem<double>(12.0, 0.25, 0.8, 1.0, false, tv);
  const double p = 1.0 / (1.0 + std::exp(-12.0));
  expect(std::fabs(o.grad - o.v * (p - 0.25)) > 1e-8 * std::fabs(o.grad), "torchvision keeps dm", o.grad,
         o.v * (p - 0.25), "x=12 t=0.25");
}

template <typename acc_t, int kGamma>
void compare_kind(acc_t gamma, const char* name) {
  char ctx[128];
  for (int64_t mode = fl::kTorchvision; mode <= fl::kEasyRec; ++mode) {
    for (const double x : {-40.0, -5.0, -0.5, 0.0, 0.5, 5.0, 40.0}) {
      for (const double t : {0.0, 1.0, 0.4}) {
        const Params<acc_t> prm{mode, acc_t(0.25), gamma, acc_t(0.05)};
        const ElemOut<acc_t> any = binary_focal_elem<acc_t>(acc_t(x), acc_t(t), acc_t(1), acc_t(2), true, prm);
        const ElemOut<acc_t> kind =
            binary_focal_elem<acc_t, kGamma>(acc_t(x), acc_t(t), acc_t(1), acc_t(2), true, prm);
        std::snprintf(ctx, sizeof(ctx), "%s %s x=%g t=%g", name, mode_name(mode), x, t);
        expect_close("GammaKind loss", kind.loss, any.loss, 0, 0, ctx);
        expect_close("GammaKind grad", kind.grad, any.grad, 0, 0, ctx);
        expect_close("GammaKind v", kind.v, any.v, 0, 0, ctx);
      }
    }
  }
}

void test_gamma_kinds_and_fp32() {
  compare_kind<double, fl::kGammaZero>(0.0, "zero");
  compare_kind<double, fl::kGammaOne>(1.0, "one");
  compare_kind<double, fl::kGammaTwo>(2.0, "two");
  compare_kind<double, fl::kGammaGeneral>(3.3, "general");
  compare_kind<float, fl::kGammaGeneral>(0.5f, "general fp32");
  // fp32 at extreme logits: finite everywhere (gamma = 0 used to give 0 * inf = NaN below x ~ -88).
  char ctx[128];
  for (int64_t mode = fl::kBCE; mode <= fl::kEasyRec; ++mode) {
    for (const float gamma : {0.0f, 0.5f, 1.0f, 2.0f, 3.3f}) {
      for (const float x : {-1000.0f, -100.0f, -89.0f, -30.0f, 30.0f, 89.0f, 100.0f, 1000.0f}) {
        for (const float t : {0.0f, 1.0f}) {
          const Params<float> prm{mode, 0.25f, gamma, 0.0f};
          const ElemOut<float> o = binary_focal_elem<float>(x, t, 1.0f, 1.0f, false, prm);
          std::snprintf(ctx, sizeof(ctx), "fp32 %s gamma=%g x=%g t=%g", mode_name(mode), gamma, x, t);
          expect(std::isfinite(o.loss) && std::isfinite(o.grad) && std::isfinite(o.v), "fp32 finite", o.grad,
                 0.0, ctx);
          expect(o.loss >= 0.0f, "fp32 loss >= 0", o.loss, 0.0, ctx);
        }
      }
    }
  }
  // fp32 vs fp64 on moderate inputs.
  for (int64_t mode = fl::kBCE; mode <= fl::kEasyRec; ++mode) {
    for (const double x : {-8.0, -2.0, -0.1, 0.0, 0.3, 3.0, 9.0}) {
      const Params<double> pd{mode, 0.25, 1.7, 0.1};
      const Params<float> pf{mode, 0.25f, 1.7f, 0.1f};
      const ElemOut<double> d = binary_focal_elem<double>(x, 1.0, 0.9, 2.0, true, pd);
      const ElemOut<float> f = binary_focal_elem<float>(float(x), 1.0f, 0.9f, 2.0f, true, pf);
      std::snprintf(ctx, sizeof(ctx), "fp32 vs fp64 %s x=%g", mode_name(mode), x);
      expect_close("fp32 loss", f.loss, d.loss, 2e-6, 1e-30, ctx);
      expect_close("fp32 grad", f.grad, d.grad, 2e-6, 1e-30, ctx);
    }
  }
}

}  // namespace

int main() {
  const fltest::Group groups[] = {
      {"finite differences (fp64)", test_finite_differences},
      {"known values", test_known_values},
      {"EasyRec clip zeroes dm", test_easyrec_clip},
      {"gamma kinds, fp32", test_gamma_kinds_and_fp32},
  };
  return fltest::run_groups("test_focal_math", groups);
}
