// Torch-free unit tests of the per-row math in csrc/ziln/ziln_math.h (run by ctest; see
// CMakeLists.txt). Exits nonzero on any failure and prints a summary.
//
//  1. row_eval's four terms against the ZILN formula written out in long double, over a grid of rows:
//     y > 0 and y <= 0 (tiny and huge labels too), sigma inside and clipped at both ends, large |l_p|.
//  2. row_eval's derivatives against 5-point central finite differences of its own terms in double;
//     where the clip is active (softplus(l_s) < sqrt(1e-7) or > max_sigma) d reg / d l_s is exactly 0
//     (the clip blocks the gradient, as TF's clip_by_value).
//  3. row_grad (d L / d logits with inv_b = 1 / B, inv_pos = 1 / (P + 1e-8)) against finite differences
//     of the whole batch loss combine(sums of row_eval's terms), default and other parameters.
//  4. combine against the direct sum of the formula's terms (long double), P = 0, B = 0 (NaN).
//  5. EasyRec's own unit-test rows: logits [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]], labels [0, 1.5], with the
//     default parameters and with mu_reg = sigma_reg = 0 (EasyRec's test): the kernel math equals the
//     formula evaluated here in double to 1e-12.
//  6. The float instantiation agrees with the double one.
#include <cmath>
#include <cstdio>
#include <initializer_list>
#include <limits>
#include <vector>

#include "check.h"
#include "../ziln/ziln_math.h"

namespace zl = fusedloss::ziln;

namespace {

using fltest::expect;
using fltest::expect_close;

using ld = long double;

struct Cfg {
  double max_sigma = 5.0, class_weight = 1.0, reg_weight = 1.0, mu_reg = 0.01, sigma_reg = 0.01;
};

template <typename acc_t>
zl::Params<acc_t> params(const Cfg& c) {
  zl::Params<acc_t> p;
  p.max_sigma = static_cast<acc_t>(c.max_sigma);
  p.sigma_min = zl::sigma_min_default<acc_t>();
  p.class_weight = static_cast<acc_t>(c.class_weight);
  p.reg_weight = static_cast<acc_t>(c.reg_weight);
  p.mu_reg = static_cast<acc_t>(c.mu_reg);
  p.sigma_reg = static_cast<acc_t>(c.sigma_reg);
  return p;
}

// One row's terms straight from the definition (EasyRec / TF), in long double; `scale` bounds the
// magnitude of the reg term's parts (for the tolerance: they may cancel).
struct Terms {
  ld cls, reg, mu2, ls2, scale;
};

Terms formula(ld lp, ld mu, ld ls, ld y, ld max_sigma) {
  const ld z = y > 0 ? 1 : 0;
  Terms t;
  t.cls = std::fmax(lp, ld(0)) - lp * z + std::log1p(std::exp(-std::fabs(lp)));
  const ld sp = ls > 0 ? ls + std::log1p(std::exp(-ls)) : std::log1p(std::exp(ls));
  const ld sigma_min = static_cast<ld>(std::sqrt(1e-7));  // the double value the kernels use
  const ld sigma = std::fmin(std::fmax(sp, sigma_min), max_sigma);
  const ld safe = z * (y > 0 ? y : 0) + (1 - z);
  const ld log_y = std::log(safe);
  const ld u = (log_y - mu) / sigma;
  const ld logprob = -log_y - std::log(sigma) - std::log(2 * ld(M_PI)) / 2 - u * u / 2;
  t.reg = -z * logprob;
  t.scale = z * (std::fabs(log_y) + std::fabs(std::log(sigma)) + 1 + u * u / 2);
  t.mu2 = mu * mu;
  t.ls2 = ls * ls;
  return t;
}

const double kLps[] = {-60.0, -30.0, -5.0, -0.3, 0.0, 0.1, 2.0, 30.0, 60.0};
const double kMus[] = {-3.0, 0.0, 0.5, 4.0};
// softplus(l_s) = sqrt(1e-7) at l_s = -8.0588..., = 5 at l_s = 4.9932...: -15 and -9 clip low, 6, 12 and 40
// clip high; the rest (-8 near the lower end, 4.9 near the upper) are inside.
const double kLss[] = {-15.0, -9.0, -8.0, -3.0, 0.0, 0.6, 3.0, 4.9, 6.0, 12.0, 40.0};
const double kYs[] = {-1.0, 0.0, 1e-30, 1e-6, 0.5, 1.5, 1e6, 1e20};

bool inside_clip(double ls, double max_sigma) {
  const double sp = ls > 0 ? ls + std::log1p(std::exp(-ls)) : std::log1p(std::exp(ls));
  return sp >= std::sqrt(1e-7) && sp <= max_sigma;
}

// Calls f(lp, mu, ls, y, row_eval's output, context) on every point of the test grid.
template <typename F>
void for_each_point(const zl::Params<double>& prm, F f) {
  char ctx[128];
  for (const double lp : kLps)
    for (const double mu : kMus)
      for (const double ls : kLss)
        for (const double y : kYs) {
          std::snprintf(ctx, sizeof(ctx), "lp=%g mu=%g ls=%g y=%g", lp, mu, ls, y);
          f(lp, mu, ls, y, zl::row_eval(lp, mu, ls, y, prm), static_cast<const char*>(ctx));
        }
}

void test_terms_vs_formula() {
  const Cfg cfg;
  const zl::Params<double> prm = params<double>(cfg);
  for_each_point(prm, [&](double lp, double mu, double ls, double y, const zl::RowOut<double>& o,
                          const char* ctx) {
    const Terms t = formula(lp, mu, ls, y, cfg.max_sigma);
    expect(o.pos == (y > 0), "pos == (y > 0)", o.pos, y > 0, ctx);
    // softplus(l_p) - l_p z loses the last bits of a tiny result at large |l_p| (absolute error
    // ~ ulp(|l_p|)); that is what BCE with logits does too.
    expect_close("cls", o.cls, static_cast<double>(t.cls), 1e-14, 4e-16 * (1 + std::fabs(lp)), ctx);
    expect_close("reg", o.reg, static_cast<double>(t.reg), 0.0, 1e-14 * static_cast<double>(t.scale), ctx);
    if (!(y > 0)) expect(o.reg == 0.0, "reg == 0 for y <= 0", o.reg, 0.0, ctx);
    expect(o.mu2 == mu * mu, "mu2", o.mu2, mu * mu, ctx);
    expect(o.ls2 == ls * ls, "ls2", o.ls2, ls * ls, ctx);
  });
  expect(zl::sigma_min_default<double>() == std::sqrt(1e-7), "sigma_min_default<double>", zl::sigma_min_default<double>(),
         std::sqrt(1e-7), "");
  expect(zl::sigma_min_default<float>() == std::sqrt(1e-7f), "sigma_min_default<float>", zl::sigma_min_default<float>(),
         std::sqrt(1e-7f), "");
}

// 5-point central difference of f at x with step h.
template <typename F>
double fd5(F f, double x, double h) {
  return (-f(x + 2 * h) + 8 * f(x + h) - 8 * f(x - h) + f(x - 2 * h)) / (12 * h);
}

void test_derivatives_vs_fd() {
  const Cfg cfg;
  const zl::Params<double> prm = params<double>(cfg);
  for_each_point(prm, [&](double lp, double mu, double ls, double y, const zl::RowOut<double>& o,
                          const char* ctx) {
    const double h_lp = 1e-3 * std::fmax(1.0, std::fabs(lp));
    const double d_lp = fd5([&](double v) { return zl::row_eval(v, mu, ls, y, prm).cls; }, lp, h_lp);
    expect_close("d cls / d l_p", o.d_cls_lp, d_lp, 1e-8, 1e-12 * (1 + std::fabs(o.cls)) / h_lp, ctx);
    const double h_mu = 1e-3 * std::fmax(1.0, std::fabs(mu));
    const double d_mu = fd5([&](double v) { return zl::row_eval(lp, v, ls, y, prm).reg; }, mu, h_mu);
    expect_close("d reg / d mu", o.d_reg_mu, d_mu, 1e-8, 1e-12 * (1 + std::fabs(o.reg)) / h_mu, ctx);
    const bool inside = inside_clip(ls, cfg.max_sigma);
    if (inside && y > 0) {
      // Near sigma_min, sigma ~ e^{l_s}: a smaller step keeps the stencil's truncation error small.
      const double h_ls = ls < -5 ? 1e-4 : 1e-3 * std::fmax(1.0, std::fabs(ls));
      const double d_ls = fd5([&](double v) { return zl::row_eval(lp, mu, v, y, prm).reg; }, ls, h_ls);
      expect_close("d reg / d l_s", o.d_reg_ls, d_ls, 1e-7, 1e-12 * (1 + std::fabs(o.reg)) / h_ls, ctx);
    } else {
      // The clip blocks the gradient (and y <= 0 rows have no reg term): exactly 0.
      expect(o.d_reg_ls == 0.0, "d reg / d l_s == 0 (clipped or y <= 0)", o.d_reg_ls, 0.0, ctx);
    }
    if (!(y > 0)) expect(o.d_reg_mu == 0.0, "d reg / d mu == 0 for y <= 0", o.d_reg_mu, 0.0, ctx);
    // Large |l_p|: d cls / d l_p = sigmoid(l_p) - z saturates cleanly.
    if (std::fabs(lp) >= 30) {
      const double z = y > 0 ? 1.0 : 0.0;
      const double want = (lp > 0 ? 1.0 : 0.0) - z;
      expect_close("d cls / d l_p at large |l_p|", o.d_cls_lp, want, 0.0, 1e-12, ctx);
    }
  });
}

struct Row {
  double lp, mu, ls, y;
};

// The batch loss from row_eval's terms: combine(sums) with P = #{y > 0}.
double batch_loss(const std::vector<Row>& rows, const Cfg& cfg) {
  const zl::Params<double> prm = params<double>(cfg);
  double s[4] = {0, 0, 0, 0};
  double p = 0;
  for (const Row& r : rows) {
    const zl::RowOut<double> o = zl::row_eval(r.lp, r.mu, r.ls, r.y, prm);
    s[0] += o.cls;
    s[1] += o.reg;
    s[2] += o.mu2;
    s[3] += o.ls2;
    p += o.pos ? 1 : 0;
  }
  return zl::combine(s[0], s[1], s[2], s[3], static_cast<double>(rows.size()), p, cfg.class_weight, cfg.reg_weight,
                     cfg.mu_reg, cfg.sigma_reg);
}

// The batch gradient from row_grad.
std::vector<double> batch_grad(const std::vector<Row>& rows, const Cfg& cfg) {
  const zl::Params<double> prm = params<double>(cfg);
  double p = 0;
  for (const Row& r : rows) p += r.y > 0 ? 1 : 0;
  const double inv_b = 1.0 / static_cast<double>(rows.size());
  const double inv_pos = 1.0 / (p + 1e-8);
  std::vector<double> g(3 * rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    const Row& r = rows[i];
    const zl::RowOut<double> o = zl::row_eval(r.lp, r.mu, r.ls, r.y, prm);
    zl::row_grad(o, r.mu, r.ls, inv_b, inv_pos, prm, &g[3 * i]);
  }
  return g;
}

const std::vector<Row> kBatch = {
    {0.3, 0.2, 0.5, 0.0},    {-1.2, 1.5, -2.0, 3.0},  {2.5, -0.7, 1.0, 0.25}, {40.0, 0.1, -9.0, 2.0},
    {-35.0, 2.0, 6.0, 7.5},  {0.0, 0.0, 0.0, -1.0},   {1.0, -3.0, 4.5, 1e-4}, {-0.5, 0.9, -7.5, 1.2},
    {0.7, 6.0, 12.0, 0.0},   {-2.0, -1.0, 3.5, 50.0},
};

void check_batch_grad(const std::vector<Row>& rows, const Cfg& cfg, const char* name) {
  const std::vector<double> g = batch_grad(rows, cfg);
  char ctx[160];
  for (size_t i = 0; i < rows.size(); ++i) {
    for (int k = 0; k < 3; ++k) {
      std::vector<Row> rs = rows;
      double* v = k == 0 ? &rs[i].lp : (k == 1 ? &rs[i].mu : &rs[i].ls);
      const double x0 = *v;
      const double h = (k == 2 && x0 < -5 ? 1e-4 : 1e-3) * std::fmax(1.0, std::fabs(x0));
      auto f = [&](double x) {
        *v = x;
        return batch_loss(rs, cfg);
      };
      const double fd = fd5(f, x0, h);
      *v = x0;
      std::snprintf(ctx, sizeof(ctx), "%s: row %zu logit %d", name, i, k);
      const double L = batch_loss(rows, cfg);
      expect_close("d L / d logit (row_grad)", g[3 * i + k], fd, 1e-7, 1e-12 * (1 + std::fabs(L)) / h, ctx);
    }
  }
}

void test_row_grad_vs_fd() {
  check_batch_grad(kBatch, Cfg{}, "defaults");
  Cfg other;
  other.max_sigma = 3.0;
  other.class_weight = 0.7;
  other.reg_weight = 1.3;
  other.mu_reg = 0.05;
  other.sigma_reg = 0.02;
  check_batch_grad(kBatch, other, "other params");
  // P = 0: the reg term and its gradient vanish (no division by ~1e-8 of anything nonzero).
  std::vector<Row> zeros = kBatch;
  for (Row& r : zeros) r.y = 0.0;
  check_batch_grad(zeros, other, "P = 0");
  // B = 1.
  check_batch_grad(std::vector<Row>{{0.4, 0.5, 0.6, 1.5}}, Cfg{}, "B = 1");
}

void test_combine() {
  for (const Cfg& cfg : {Cfg{}, Cfg{3.0, 0.7, 1.3, 0.05, 0.02}, Cfg{5.0, 0.0, 2.0, 0.0, 0.1}}) {
    for (const bool all_zero : {false, true}) {
      std::vector<Row> rows = kBatch;
      if (all_zero)
        for (Row& r : rows) r.y = 0.0;
      ld s_cls = 0, s_reg = 0, s_mu2 = 0, s_ls2 = 0, p = 0;
      for (const Row& r : rows) {
        const Terms t = formula(r.lp, r.mu, r.ls, r.y, cfg.max_sigma);
        s_cls += t.cls;
        s_reg += t.reg;
        s_mu2 += t.mu2;
        s_ls2 += t.ls2;
        p += r.y > 0 ? 1 : 0;
      }
      const ld b = static_cast<ld>(rows.size());
      const ld want = ld(cfg.class_weight) * s_cls / b + ld(cfg.reg_weight) * s_reg / (p + ld(1e-8)) +
                      ld(cfg.mu_reg) * s_mu2 / b + ld(cfg.sigma_reg) * s_ls2 / b;
      const double got = batch_loss(rows, cfg);
      expect_close("combine(sums) vs direct long double sum", got, static_cast<double>(want), 1e-14, 1e-15,
                   all_zero ? "P = 0" : "mixed labels");
    }
  }
  // combine itself is the plain weighted sum.
  const double s[4] = {3.25, 7.5, 1.125, 2.0};
  const double direct = 0.7 * 3.25 / 4 + 1.3 * 7.5 / (2 + 1e-8) + 0.05 * 1.125 / 4 + 0.02 * 2.0 / 4;
  expect(zl::combine(s[0], s[1], s[2], s[3], 4, 2, 0.7, 1.3, 0.05, 0.02) == direct, "combine == direct expression",
         zl::combine(s[0], s[1], s[2], s[3], 4, 2, 0.7, 1.3, 0.05, 0.02), direct, "");
  // B = 0: TF's means of nothing are NaN.
  const double empty = zl::combine(0, 0, 0, 0, 0, 0, 1, 1, 0.01, 0.01);
  expect(std::isnan(empty), "combine at B = 0 is NaN", empty, std::numeric_limits<double>::quiet_NaN(), "");
}

// EasyRec's ZeroInflatedLognormalLossTest rows, the expected value written out here in double.
double easyrec_expected(double mu_reg, double sigma_reg) {
  const double max_sigma = 5.0;
  auto softplus = [](double x) { return std::fmax(x, 0.0) + std::log1p(std::exp(-std::fabs(x))); };
  // Row 0: logits (0.1, 0.2, 0.3), label 0 -> BCE with target 0 only.
  const double cls0 = softplus(0.1);
  // Row 1: logits (0.4, 0.5, 0.6), label 1.5 -> BCE with target 1, and -log LogNormal(1.5; 0.5, sigma).
  const double cls1 = softplus(0.4) - 0.4;
  const double sigma = std::fmin(std::fmax(softplus(0.6), std::sqrt(1e-7)), max_sigma);
  const double u = (std::log(1.5) - 0.5) / sigma;
  const double reg1 = std::log(1.5) + std::log(sigma) + 0.5 * std::log(2 * M_PI) + 0.5 * u * u;
  return (cls0 + cls1) / 2 + reg1 / (1 + 1e-8) + mu_reg * (0.2 * 0.2 + 0.5 * 0.5) / 2 +
         sigma_reg * (0.3 * 0.3 + 0.6 * 0.6) / 2;
}

void test_easyrec_values() {
  const std::vector<Row> rows = {{0.1, 0.2, 0.3, 0.0}, {0.4, 0.5, 0.6, 1.5}};
  Cfg defaults;
  const double want = easyrec_expected(0.01, 0.01);
  expect_close("EasyRec rows, default params", batch_loss(rows, defaults), want, 0.0, 1e-12, "");
  // The same value computed independently in Python (math module, double): 1.9977632814427244.
  expect_close("EasyRec rows, default params (literal)", batch_loss(rows, defaults), 1.9977632814427244, 0.0, 1e-12,
               "");
  Cfg no_reg;
  no_reg.mu_reg = 0.0;
  no_reg.sigma_reg = 0.0;
  expect_close("EasyRec rows, mu_reg = sigma_reg = 0 (EasyRec's test)", batch_loss(rows, no_reg),
               easyrec_expected(0.0, 0.0), 0.0, 1e-12, "");
  check_batch_grad(rows, defaults, "EasyRec rows");
  std::printf("  EasyRec rows: loss %.17g (defaults), %.17g (mu_reg = sigma_reg = 0)\n", batch_loss(rows, defaults),
              batch_loss(rows, no_reg));
}

void test_float_matches_double() {
  const Cfg cfg;
  const zl::Params<double> pd = params<double>(cfg);
  const zl::Params<float> pf = params<float>(cfg);
  char ctx[128];
  for (const double lp : {-20.0, -2.0, 0.0, 0.1, 3.0, 20.0})
    for (const double mu : {-2.0, 0.0, 0.5, 3.0})
      for (const double ls : {-9.0, -4.0, 0.0, 0.6, 3.0, 6.0})
        for (const double y : {0.0, 0.01, 1.5, 100.0}) {
          std::snprintf(ctx, sizeof(ctx), "lp=%g mu=%g ls=%g y=%g", lp, mu, ls, y);
          const zl::RowOut<double> d = zl::row_eval(lp, mu, ls, y, pd);
          const zl::RowOut<float> f = zl::row_eval(static_cast<float>(lp), static_cast<float>(mu),
                                                   static_cast<float>(ls), static_cast<float>(y), pf);
          const double scale = static_cast<double>(formula(lp, mu, ls, y, cfg.max_sigma).scale);
          expect_close("cls (float)", f.cls, d.cls, 1e-6, 1e-6, ctx);
          expect_close("reg (float)", f.reg, d.reg, 1e-6, 1e-6 * scale, ctx);
          expect_close("d cls / d l_p (float)", f.d_cls_lp, d.d_cls_lp, 1e-6, 1e-7, ctx);
          expect_close("d reg / d mu (float)", f.d_reg_mu, d.d_reg_mu, 1e-5, 1e-6 * (1 + scale), ctx);
          expect_close("d reg / d l_s (float)", f.d_reg_ls, d.d_reg_ls, 1e-5, 1e-6 * (1 + scale), ctx);
        }
}

}  // namespace

int main() {
  static const fltest::Group groups[] = {
      {"terms vs long double", test_terms_vs_formula},
      {"derivatives vs fd (+ clip)", test_derivatives_vs_fd},
      {"row_grad vs fd of batch", test_row_grad_vs_fd},
      {"combine vs direct sum", test_combine},
      {"EasyRec unit-test values", test_easyrec_values},
      {"float vs double", test_float_matches_double},
  };
  return fltest::run_groups("test_ziln_math", groups);
}
