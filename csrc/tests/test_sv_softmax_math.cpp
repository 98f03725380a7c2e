// Torch-free unit tests of the math in csrc/sv_softmax/sv_softmax_math.h (run by ctest; see
// CMakeLists.txt), against direct long-double computations of the formulas in its header comment.
// Exits nonzero on any failure and prints a summary.
//  1. row_loss_coef: the loss -log softmax(z)_0 and coef = scale d loss / d cos against a direct
//     long-double softmax, in float and double, for random cosines, margins, gammas (up to 64, where
//     the shares underflow), t, K, scales; a row of scale 0 writes zeros and returns 0.
//  2. row_loss_coef's coefficients against central differences of the direct loss in cos (away from
//     the hard-negative switch, which is not differentiated).
//  3. grad_elem: the gradient of f(a) = sum_k G_k cos(a, b_k) against central differences, with and
//     without normalisation, and for a vector whose norm is clamped (l2n linear there).
//  4. inv_norm / projects: the clamp at sum a^2 = 1e-12 and the identity without normalisation.
//  5. negative_row / reader_row: in [0, B), each the inverse of the other, equal to the floored
//     (i - r) mod B for shifts that are negative, >= B, or near the int64 limits; row_den's table.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <random>
#include <vector>

#include "check.h"
#include "../sv_softmax/sv_softmax_math.h"

namespace sv = fusedloss::sv_softmax;
using sv::Params;

namespace {

using fltest::expect;
using fltest::expect_close;

using ld = long double;

struct Row {
  std::vector<double> cos;  // [K + 1], cos[0] the positive
  double margin = 0, gamma = 1, t = 1;
};

template <typename acc_t>
Params<acc_t> params_of(const Row& r) {
  Params<acc_t> prm;
  prm.margin = acc_t(r.margin);
  prm.gamma = acc_t(r.gamma);
  prm.t = acc_t(r.t);
  prm.normalize = true;
  return prm;
}

bool is_hard(const Row& r, size_t k, const std::vector<double>& cos) {
  return static_cast<ld>(cos[0]) - r.margin - static_cast<ld>(cos[k]) < 0;
}

// The logits gamma [c+, h_1..h_K], the hard-negative rule decided on `rule` (the unperturbed cosines).
std::vector<ld> direct_logits(const Row& r, const std::vector<double>& cos, const std::vector<double>& rule) {
  std::vector<ld> z(cos.size());
  z[0] = static_cast<ld>(r.gamma) * (static_cast<ld>(cos[0]) - r.margin);
  for (size_t k = 1; k < cos.size(); ++k) {
    const ld c = cos[k];
    z[k] = static_cast<ld>(r.gamma) * (is_hard(r, k, rule) ? r.t * c + r.t - 1 : c);
  }
  return z;
}

ld direct_loss(const Row& r, const std::vector<double>& cos, const std::vector<double>& rule) {
  const std::vector<ld> z = direct_logits(r, cos, rule);
  ld m = z[0];
  for (ld v : z) m = std::max(m, v);
  ld s = 0;
  for (ld v : z) s += std::exp(v - m);
  return m + std::log(s) - z[0];
}

// d loss / d cos: gamma (p_0 - 1) with 1 - p_0 summed from the negatives, gamma p_k (t or 1).
std::vector<ld> direct_coef(const Row& r) {
  const std::vector<ld> z = direct_logits(r, r.cos, r.cos);
  ld m = z[0];
  for (ld v : z) m = std::max(m, v);
  ld s = 0;
  for (ld v : z) s += std::exp(v - m);
  std::vector<ld> g(z.size());
  ld neg = 0;
  for (size_t k = 1; k < z.size(); ++k) {
    const ld p = std::exp(z[k] - m) / s;
    neg += p;
    g[k] = static_cast<ld>(r.gamma) * p * (is_hard(r, k, r.cos) ? static_cast<ld>(r.t) : 1);
  }
  g[0] = -static_cast<ld>(r.gamma) * neg;
  return g;
}

template <typename acc_t>
void check_row_loss_coef(const Row& r, double scale, double rtol, const char* ctx) {
  const int64_t K = static_cast<int64_t>(r.cos.size()) - 1;
  std::vector<acc_t> cos(r.cos.size()), coef(r.cos.size(), acc_t(-7));
  for (size_t k = 0; k < cos.size(); ++k) cos[k] = acc_t(r.cos[k]);
  // the direct values from the cosines as acc_t holds them
  Row ra = r;
  for (size_t k = 0; k < cos.size(); ++k) ra.cos[k] = static_cast<double>(cos[k]);
  const Params<acc_t> prm = params_of<acc_t>(ra);
  const acc_t loss = sv::row_loss_coef(cos.data(), coef.data(), K, acc_t(scale), prm);
  const ld want = static_cast<ld>(scale) * direct_loss(ra, ra.cos, ra.cos);
  const double gscale = std::fabs(scale) * r.gamma * std::max(1.0, std::fabs(r.t));
  expect_close("loss", static_cast<double>(loss), static_cast<double>(want), rtol,
               rtol * std::fabs(scale) * std::max(1.0, r.gamma), ctx);
  const std::vector<ld> g = direct_coef(ra);
  for (size_t k = 0; k < g.size(); ++k) {
    expect_close("coef", static_cast<double>(coef[k]), static_cast<double>(static_cast<ld>(scale) * g[k]), rtol,
                 rtol * 1e-3 * gscale, ctx);
  }
}

Row random_row(std::mt19937_64& rng, int64_t K, double cos_scale) {
  std::uniform_real_distribution<double> unif(-1.0, 1.0), pos(0.0, 1.0);
  Row r;
  r.cos.resize(static_cast<size_t>(K + 1));
  for (auto& c : r.cos) c = cos_scale * unif(rng);
  const double gammas[] = {0.5, 1.0, 5.0, 16.0, 64.0};
  const double ts[] = {1.0, 1.3, 2.0, 0.7};
  r.gamma = gammas[rng() % 5];
  r.t = ts[rng() % 4];
  r.margin = (rng() % 3 == 0) ? 0.0 : 0.4 * unif(rng);
  return r;
}

void test_row_loss_coef() {
  std::mt19937_64 rng(11);
  const int64_t Ks[] = {1, 2, 5, 17, 200};
  char ctx[160];
  for (int64_t K : Ks) {
    for (int rep = 0; rep < 60; ++rep) {
      const double cos_scale = rep % 4 == 3 ? 8.0 : 1.0;  // unnormalised inputs give larger cosines
      const Row r = random_row(rng, K, cos_scale);
      const double scale = rep % 5 == 0 ? 2.5 : (rep % 5 == 1 ? 0.3 : 1.0);
      std::snprintf(ctx, sizeof ctx, "K=%lld gamma=%g t=%g margin=%g scale=%g", static_cast<long long>(K), r.gamma,
                    r.t, r.margin, scale);
      check_row_loss_coef<double>(r, scale, 1e-12, ctx);
      // float: the logits carry an absolute error ~ eps |z|, the shares that much relative
      const double zmax = r.gamma * cos_scale * std::max(1.0, std::fabs(r.t)) * 2 + 1;
      check_row_loss_coef<float>(r, scale, 4e-7 * zmax + 2e-6, ctx);
    }
  }
  // a row not kept (scale 0): zeros and 0, whatever its cosines
  for (int rep = 0; rep < 10; ++rep) {
    const Row r = random_row(rng, 6, 1.0);
    std::vector<double> cos(r.cos), coef(r.cos.size(), 3.0);
    const double loss = sv::row_loss_coef(cos.data(), coef.data(), 6, 0.0, params_of<double>(r));
    expect(loss == 0.0, "scale 0 loss", loss, 0.0, "scale 0");
    for (double g : coef) expect(g == 0.0, "scale 0 coef", g, 0.0, "scale 0");
  }
  // the positive far above every negative: 1 - p_0 tiny, its coefficients still relatively exact
  {
    Row r;
    r.cos = {1.0, -1.0, -0.9, -0.95};
    r.gamma = 12.0;
    check_row_loss_coef<double>(r, 1.0, 1e-12, "dominant positive");
    check_row_loss_coef<float>(r, 1.0, 2e-5, "dominant positive");
  }
  // the coefficients sum to gamma (t - 1) sum_hard p_k (0 with t = 1)
  for (int rep = 0; rep < 20; ++rep) {
    Row r = random_row(rng, 9, 1.0);
    r.t = 1.0;
    std::vector<double> coef(r.cos.size());
    sv::row_loss_coef(r.cos.data(), coef.data(), 9, 1.0, params_of<double>(r));
    double sum = 0, mag = 0;
    for (double g : coef) {
      sum += g;
      mag += std::fabs(g);
    }
    expect_close("t=1 coef sum", sum, 0.0, 0, 1e-14 * std::max(mag, 1.0), "t = 1");
  }
}

void test_loss_finite_differences() {
  std::mt19937_64 rng(12);
  char ctx[160];
  int checked = 0;
  for (int rep = 0; rep < 200; ++rep) {
    Row r = random_row(rng, 1 + static_cast<int64_t>(rng() % 8), 1.0);
    r.gamma = std::min(r.gamma, 16.0);
    const size_t S = r.cos.size();
    std::vector<double> coef(S);
    sv::row_loss_coef(r.cos.data(), coef.data(), static_cast<int64_t>(S) - 1, 1.0, params_of<double>(r));
    const double h = 1e-6;
    for (size_t k = 0; k < S; ++k) {
      // skip where a step of h could cross the hard-negative switch
      bool near = false;
      for (size_t q = 1; q < S; ++q) near = near || std::fabs(r.cos[0] - r.margin - r.cos[q]) < 4 * h;
      if (near) continue;
      std::vector<double> up(r.cos), dn(r.cos);
      up[k] += h;
      dn[k] -= h;
      const ld fd = (direct_loss(r, up, r.cos) - direct_loss(r, dn, r.cos)) / (2 * static_cast<ld>(h));
      std::snprintf(ctx, sizeof ctx, "rep %d slot %zu gamma=%g t=%g", rep, k, r.gamma, r.t);
      expect_close("d loss / d cos", coef[k], static_cast<double>(fd), 1e-6, 1e-8 * r.gamma, ctx);
      ++checked;
    }
  }
  expect(checked > 500, "finite differences checked", checked, 500, "count");
}

// f(a) = sum_k G_k cos(a, b_k), cos = inv(a) inv(b) a.b; its gradient from grad_elem:
// inv(a) (S - proj gc l2n(a)), S = sum_k G_k inv(b_k) b_k, gc = sum_k G_k cos_k.
ld direct_f(const std::vector<ld>& a, const std::vector<std::vector<double>>& b, const std::vector<double>& G,
            bool normalize) {
  auto inv = [&](const std::vector<ld>& x) -> ld {
    if (!normalize) return 1;
    ld s = 0;
    for (ld e : x) s += e * e;
    return 1 / std::sqrt(std::max(s, static_cast<ld>(1e-12)));
  };
  const ld ia = inv(a);
  ld f = 0;
  for (size_t k = 0; k < b.size(); ++k) {
    std::vector<ld> bk(b[k].begin(), b[k].end());
    ld dot = 0;
    for (size_t d = 0; d < a.size(); ++d) dot += a[d] * bk[d];
    f += G[k] * ia * inv(bk) * dot;
  }
  return f;
}

void check_grad_elem(const std::vector<double>& a, const std::vector<std::vector<double>>& b,
                     const std::vector<double>& G, bool normalize, double h, const char* ctx) {
  const size_t D = a.size();
  auto sumsq = [](const std::vector<double>& x) {
    double s = 0;
    for (double e : x) s += e * e;
    return s;
  };
  const double ia = sv::inv_norm(sumsq(a), normalize);
  const bool proj = sv::projects(sumsq(a), normalize);
  std::vector<double> S(D, 0.0);
  double gc = 0;
  for (size_t k = 0; k < b.size(); ++k) {
    const double ib = sv::inv_norm(sumsq(b[k]), normalize);
    double dot = 0;
    for (size_t d = 0; d < D; ++d) dot += a[d] * b[k][d];
    gc += G[k] * ia * ib * dot;
    for (size_t d = 0; d < D; ++d) S[d] += G[k] * ib * b[k][d];
  }
  double mag = 0;
  for (size_t d = 0; d < D; ++d) mag = std::max(mag, std::fabs(sv::grad_elem(S[d], a[d], gc, ia, proj)));
  for (size_t d = 0; d < D; ++d) {
    const double g = sv::grad_elem(S[d], a[d], gc, ia, proj);
    std::vector<ld> up(a.begin(), a.end()), dn(a.begin(), a.end());
    up[d] += h;
    dn[d] -= h;
    const ld fd = (direct_f(up, b, G, normalize) - direct_f(dn, b, G, normalize)) / (2 * static_cast<ld>(h));
    expect_close("grad_elem", g, static_cast<double>(fd), 1e-6, 1e-7 * std::max(mag, 1.0), ctx);
  }
}

void test_grad_elem() {
  std::mt19937_64 rng(13);
  std::normal_distribution<double> normal(0.0, 1.0);
  char ctx[160];
  for (int rep = 0; rep < 120; ++rep) {
    const size_t D = 1 + rng() % 9, K = 1 + rng() % 5;
    const bool normalize = rep % 3 != 0;
    const double a_scale = rep % 7 == 0 ? 30.0 : 1.0;
    std::vector<double> a(D), G(K + 1);
    std::vector<std::vector<double>> b(K + 1, std::vector<double>(D));
    for (auto& e : a) e = a_scale * normal(rng);
    for (auto& row : b) {
      for (auto& e : row) e = normal(rng);
    }
    for (auto& g : G) g = 3 * normal(rng);
    std::snprintf(ctx, sizeof ctx, "rep %d D=%zu K=%zu normalize=%d", rep, D, K, normalize ? 1 : 0);
    check_grad_elem(a, b, G, normalize, 1e-6 * a_scale, ctx);
  }
  // clamped norms: sum a^2 < 1e-12, l2n(a) = 1e6 a is linear, the gradient inv S
  for (int rep = 0; rep < 20; ++rep) {
    const size_t D = 1 + rng() % 6;
    std::vector<double> a(D), G(3);
    std::vector<std::vector<double>> b(3, std::vector<double>(D));
    for (auto& e : a) e = 1e-8 * normal(rng);
    for (auto& row : b) {
      for (auto& e : row) e = normal(rng);
    }
    for (auto& g : G) g = normal(rng);
    double s = 0;
    for (double e : a) s += e * e;
    expect(!sv::projects(s, true), "clamped: no projection", s, 1e-12, "clamp");
    check_grad_elem(a, b, G, true, 1e-10, "clamped norm");
  }
  // D = 1 with normalisation: l2n(a) = sign(a) is locally constant, the gradient 0 (up to rounding)
  {
    const std::vector<double> a = {-0.7};
    const std::vector<std::vector<double>> b = {{0.3}, {-2.0}};
    const std::vector<double> G = {-1.5, 2.0};
    check_grad_elem(a, b, G, true, 1e-6, "D = 1");
  }
}

void test_norms() {
  expect(sv::inv_norm(4.0, true) == 0.5, "inv_norm(4)", sv::inv_norm(4.0, true), 0.5, "inv_norm");
  expect(sv::inv_norm(4.0f, true) == 0.5f, "inv_norm(4f)", sv::inv_norm(4.0f, true), 0.5, "inv_norm");
  expect_close("inv_norm(0)", sv::inv_norm(0.0, true), 1e6, 1e-12, 0, "inv_norm clamp");
  expect_close("inv_norm(1e-14)", sv::inv_norm(1e-14, true), 1e6, 1e-12, 0, "inv_norm clamp");
  expect_close("inv_norm(1e-14f)", sv::inv_norm(1e-14f, true), 1e6, 1e-6, 0, "inv_norm clamp f");
  expect(sv::inv_norm(123.0, false) == 1.0, "inv_norm, no normalise", sv::inv_norm(123.0, false), 1, "identity");
  expect(sv::inv_norm(0.0, false) == 1.0, "inv_norm(0), no normalise", sv::inv_norm(0.0, false), 1, "identity");
  expect(sv::projects(1.0, true), "projects(1)", 0, 1, "projects");
  expect(!sv::projects(1e-12, true), "projects(1e-12)", 1, 0, "projects boundary");
  expect(sv::projects(2e-12, true), "projects(2e-12)", 0, 1, "projects");
  expect(!sv::projects(1.0, false), "projects, no normalise", 1, 0, "projects");
  // the norm of l2n(a) is 1 (not clamped) in float and double
  std::mt19937_64 rng(14);
  std::normal_distribution<double> normal(0.0, 1.0);
  for (int rep = 0; rep < 50; ++rep) {
    double s = 0, sd = 0;
    float sf = 0;
    std::vector<double> a(1 + rng() % 40);
    for (auto& e : a) {
      e = normal(rng);
      s += e * e;
      sf += static_cast<float>(e) * static_cast<float>(e);
    }
    const double inv = sv::inv_norm(s, true);
    const float invf = sv::inv_norm(sf, true);
    double nf = 0;
    for (double e : a) {
      sd += (e * inv) * (e * inv);
      nf += static_cast<double>(static_cast<float>(e) * invf) * static_cast<double>(static_cast<float>(e) * invf);
    }
    expect_close("|l2n(a)|^2", sd, 1.0, 1e-14, 0, "double");
    expect_close("|l2n(a)|^2 (float)", nf, 1.0, 2e-6, 0, "float");
  }
}

// (x mod B) in [0, B) for any int64 x, through 128-bit arithmetic.
int64_t floor_mod(__int128 x, int64_t B) {
  __int128 m = x % B;
  if (m < 0) m += B;
  return static_cast<int64_t>(m);
}

void test_rows() {
  const int64_t big = std::numeric_limits<int64_t>::max(), small = std::numeric_limits<int64_t>::min();
  const int64_t Bs[] = {1, 2, 3, 7, 64, 1000, int64_t(1) << 40};
  char ctx[160];
  for (int64_t B : Bs) {
    const int64_t rs[] = {0, 1, B - 1, B, B + 1, -1, -B, -B - 3, 3 * B + 2, -5 * B + 1, big, small, big - 1, small + 1,
                          B / 2};
    const int64_t is[] = {0, 1 % B, B / 2, B - 1};
    for (int64_t r : rs) {
      for (int64_t i : is) {
        std::snprintf(ctx, sizeof ctx, "B=%lld i=%lld r=%lld", static_cast<long long>(B), static_cast<long long>(i),
                      static_cast<long long>(r));
        const int64_t j = sv::negative_row(i, r, B);
        const int64_t back = sv::reader_row(j, r, B);
        const int64_t fwd = sv::reader_row(i, r, B);
        expect(j >= 0 && j < B, "negative_row in [0, B)", static_cast<double>(j), static_cast<double>(B), ctx);
        expect(j == floor_mod(static_cast<__int128>(i) - r, B), "negative_row = (i - r) mod B",
               static_cast<double>(j), static_cast<double>(floor_mod(static_cast<__int128>(i) - r, B)), ctx);
        expect(fwd == floor_mod(static_cast<__int128>(i) + r, B), "reader_row = (j + r) mod B",
               static_cast<double>(fwd), static_cast<double>(floor_mod(static_cast<__int128>(i) + r, B)), ctx);
        expect(back == i, "reader_row(negative_row(i)) = i", static_cast<double>(back), static_cast<double>(i), ctx);
        expect(sv::negative_row(fwd, r, B) == i, "negative_row(reader_row(j)) = j",
               static_cast<double>(sv::negative_row(fwd, r, B)), static_cast<double>(i), ctx);
      }
    }
  }
  // every (i, k) is read by exactly one (j, k): the map i -> negative_row(i, r, B) is a bijection
  for (int64_t B = 1; B <= 40; ++B) {
    for (int64_t r = -2 * B; r <= 2 * B; ++r) {
      std::vector<int> hits(static_cast<size_t>(B), 0);
      for (int64_t i = 0; i < B; ++i) ++hits[static_cast<size_t>(sv::negative_row(i, r, B))];
      bool ok = true;
      for (int h : hits) ok = ok && h == 1;
      expect(ok, "negative_row is a permutation", static_cast<double>(B), static_cast<double>(r), "bijection");
    }
  }
  // row_den
  for (int64_t red : {int64_t(sv::kSum), int64_t(sv::kMean), int64_t(sv::kSumByNonzeroWeights)}) {
    expect(sv::row_den(false, 1.0, red) == 0.0, "row_den(not kept)", sv::row_den(false, 1.0, red), 0, "row_den");
    expect(sv::row_den(true, 2.5, red) == 1.0, "row_den(kept, w)", sv::row_den(true, 2.5, red), 1, "row_den");
    expect(sv::row_den(true, -0.5f, red) == 1.0f, "row_den(kept, w < 0)", sv::row_den(true, -0.5f, red), 1,
           "row_den");
    const double zero_w = sv::row_den(true, 0.0, red);
    expect(zero_w == (red == sv::kSumByNonzeroWeights ? 0.0 : 1.0), "row_den(kept, w = 0)", zero_w,
           red == sv::kSumByNonzeroWeights ? 0.0 : 1.0, "row_den");
  }
}

}  // namespace

int main() {
  const fltest::Group groups[] = {
      {"row_loss_coef", test_row_loss_coef},
      {"loss finite differences", test_loss_finite_differences},
      {"grad_elem", test_grad_elem},
      {"inv_norm, projects", test_norms},
      {"rows, row_den", test_rows},
  };
  return fltest::run_groups("test_sv_softmax_math", groups);
}
