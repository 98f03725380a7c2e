// Torch-free unit tests of the math in csrc/rowwise/rowwise_math.h (run by ctest; see CMakeLists.txt),
// against direct long-double computations of the formulas in its header comment. Exits nonzero on any
// failure and prints a summary.
//  1. Losses: row_accumulate over the row (in one run, and split in blocks merged by row_acc_merge)
//     + row_finish against the direct formula of every kind, in double and float, for random rows,
//     margins, p, eps, swap and targets (+-1, 0 and 1 labels, other values for cosine embedding).
//  2. Gradients: grad_elems with row_finish's coefficients against central differences of the direct
//     loss in every element of a, b (and c), away from the hinges' kinks: every kind, triplet with
//     p = 1, 2, 3 (and 1.5) with and without swap, contrastive with both labels and the margin active
//     and inactive, cosine embedding with both targets and a zero row, cosine similarity with a zero
//     row (l2_normalize's clamp).
//  3. Edge cases: zero distances (triplet and contrastive: finite, zero gradient where the norm is not
//     differentiable), cosine embedding targets other than +-1 (loss and gradient 0), the kinks'
//     conventions (margin ranking at u = 0 takes the gradient, order calibration at a = b does not),
//     the scale factor f of grad_elems.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#include "check.h"
#include "../rowwise/rowwise_math.h"

namespace rw = fusedloss::rowwise;
using rw::Coef;
using rw::Params;
using rw::RowAcc;

namespace {

using fltest::expect;
using fltest::expect_close;

using ld = long double;
using Vec = std::vector<double>;

struct Case {
  int64_t kind = rw::kCosineEmbedding;
  double margin = 0, p = 2, eps = 0;
  bool swap = false;
  double y = 0;
  Vec a, b, c;  // c: triplet only (else zeros)
};

template <typename acc_t>
Params<acc_t> params_of(const Case& k) {
  Params<acc_t> prm;
  prm.kind = k.kind;
  prm.margin = acc_t(k.margin);
  prm.p = acc_t(k.p);
  prm.eps = acc_t(k.eps);
  prm.swap = k.swap;
  return prm;
}

// ---- Direct formulas (long double) ----

ld pnorm(const Vec& u, const Vec& v, ld p, ld eps) {
  ld s = 0;
  for (size_t d = 0; d < u.size(); ++d) s += std::pow(std::fabs(static_cast<ld>(u[d]) - v[d] + eps), p);
  return std::pow(s, 1 / p);
}

ld direct_loss(const Case& k) {
  const ld y = k.y, margin = k.margin;
  switch (k.kind) {
    case rw::kMarginRanking:
      return std::max<ld>(0, -y * (static_cast<ld>(k.a[0]) - k.b[0]) + margin);
    case rw::kOrderCalibrate:
      return std::max<ld>(0, static_cast<ld>(k.a[0]) - k.b[0]);
    case rw::kCosineEmbedding: {
      ld ab = 0, aa = 0, bb = 0;
      for (size_t d = 0; d < k.a.size(); ++d) {
        ab += static_cast<ld>(k.a[d]) * k.b[d];
        aa += static_cast<ld>(k.a[d]) * k.a[d];
        bb += static_cast<ld>(k.b[d]) * k.b[d];
      }
      const ld eps = static_cast<ld>(1e-12f);  // torch's EPSILON, a float
      const ld cos = ab / std::sqrt((aa + eps) * (bb + eps));
      if (y == 1) return 1 - cos;
      if (y == -1) return std::max<ld>(0, cos - margin);
      return 0;
    }
    case rw::kCosineSimilarity: {
      ld ab = 0, aa = 0, bb = 0;
      for (size_t d = 0; d < k.a.size(); ++d) {
        ab += static_cast<ld>(k.a[d]) * k.b[d];
        aa += static_cast<ld>(k.a[d]) * k.a[d];
        bb += static_cast<ld>(k.b[d]) * k.b[d];
      }
      const ld clamp = 1e-12L;
      return -ab / (std::sqrt(std::max(aa, clamp)) * std::sqrt(std::max(bb, clamp)));
    }
    case rw::kTriplet: {
      const ld d_ap = pnorm(k.a, k.b, k.p, k.eps);
      ld d_neg = pnorm(k.a, k.c, k.p, k.eps);
      if (k.swap) d_neg = std::min(d_neg, pnorm(k.b, k.c, k.p, k.eps));
      return std::max<ld>(0, d_ap - d_neg + margin);
    }
    default: {  // kContrastive
      const ld d = pnorm(k.a, k.b, 2, k.eps);
      const ld h = std::max<ld>(0, margin - d);
      return y * d * d + (1 - y) * h * h;
    }
  }
}

// ---- The header's row, as a kernel runs it ----

template <typename acc_t>
struct Out {
  acc_t loss;
  std::vector<acc_t> ga, gb, gc;
};

// Sweep 1 in blocks of `block` elements merged with row_acc_merge (block >= D: one run), row_finish,
// sweep 2 with grad_elems times f.
template <typename acc_t>
Out<acc_t> header_row(const Case& k, size_t block, acc_t f = acc_t(1)) {
  const Params<acc_t> prm = params_of<acc_t>(k);
  const size_t D = k.a.size();
  auto c_at = [&](size_t d) { return k.kind == rw::kTriplet ? acc_t(k.c[d]) : acc_t(0); };
  RowAcc<acc_t> r = rw::row_acc_zero<acc_t>();
  for (size_t d0 = 0; d0 < std::max<size_t>(D, 1); d0 += block) {
    RowAcc<acc_t> part = rw::row_acc_zero<acc_t>();
    for (size_t d = d0; d < std::min(D, d0 + block); ++d) {
      rw::row_accumulate(part, acc_t(k.a[d]), acc_t(k.b[d]), c_at(d), prm);
    }
    r = rw::row_acc_merge(r, part);
  }
  Coef<acc_t> coef;
  Out<acc_t> o;
  o.loss = rw::row_finish(r, acc_t(k.y), prm, &coef);
  o.ga.resize(D);
  o.gb.resize(D);
  o.gc.resize(D);
  for (size_t d = 0; d < D; ++d) {
    rw::grad_elems(acc_t(k.a[d]), acc_t(k.b[d]), c_at(d), coef, prm, f, &o.ga[d], &o.gb[d], &o.gc[d]);
  }
  return o;
}

// ---- Random cases ----

Vec random_vec(std::mt19937_64& rng, size_t D, double scale) {
  std::normal_distribution<double> n(0.0, scale);
  Vec v(D);
  for (auto& x : v) x = n(rng);
  return v;
}

Case random_case(std::mt19937_64& rng, int64_t kind, size_t D) {
  std::uniform_real_distribution<double> unif(-1.0, 1.0);
  Case k;
  k.kind = kind;
  k.a = random_vec(rng, D, 1.0);
  k.b = random_vec(rng, D, 1.0);
  k.c = kind == rw::kTriplet ? random_vec(rng, D, 1.0) : Vec(D, 0.0);
  switch (kind) {
    case rw::kMarginRanking:
      k.y = rng() % 2 ? 1.0 : -1.0;
      k.margin = 0.5 * unif(rng);
      break;
    case rw::kCosineEmbedding: {
      const double ys[] = {1.0, -1.0, 1.0, -1.0, 0.0, 0.5};
      k.y = ys[rng() % 6];
      k.margin = 0.5 * unif(rng);
      break;
    }
    case rw::kTriplet: {
      const double ps[] = {1.0, 2.0, 3.0, 1.5};
      k.p = ps[rng() % 4];
      k.margin = 2.0 * std::fabs(unif(rng));
      k.eps = rng() % 2 ? 1e-6 : 0.0;
      k.swap = rng() % 2 == 0;
      break;
    }
    case rw::kContrastive:
      k.y = rng() % 2 ? 1.0 : 0.0;
      k.margin = std::sqrt(2.0 * static_cast<double>(D)) * (0.5 + std::fabs(unif(rng)));
      k.eps = rng() % 2 ? 1e-6 : 0.0;
      break;
    default:
      break;
  }
  return k;
}

const int64_t kKinds[] = {rw::kMarginRanking, rw::kOrderCalibrate, rw::kCosineEmbedding,
                          rw::kCosineSimilarity, rw::kTriplet, rw::kContrastive};

bool flat_kind(int64_t kind) { return kind == rw::kMarginRanking || kind == rw::kOrderCalibrate; }

void describe(const Case& k, const char* what, char* ctx, size_t n) {
  std::snprintf(ctx, n, "%s kind=%lld D=%zu y=%g margin=%g p=%g eps=%g swap=%d", what,
                static_cast<long long>(k.kind), k.a.size(), k.y, k.margin, k.p, k.eps, static_cast<int>(k.swap));
}

// The size of the terms the loss is a difference of (its rounding scale).
double magnitude(const Case& k, ld loss) {
  ld m = std::max<ld>(1, std::fabs(loss));
  if (k.kind == rw::kTriplet) {
    m = std::max(m, pnorm(k.a, k.b, k.p, k.eps) + pnorm(k.a, k.c, k.p, k.eps) + pnorm(k.b, k.c, k.p, k.eps));
  }
  return static_cast<double>(m);
}

// 1. Losses.
void test_losses() {
  std::mt19937_64 rng(3);
  const size_t Ds[] = {1, 3, 17, 300};
  char ctx[200];
  for (int64_t kind : kKinds) {
    for (size_t D : Ds) {
      if (flat_kind(kind) && D != 1) continue;
      for (int rep = 0; rep < 40; ++rep) {
        const Case k = random_case(rng, kind, D);
        describe(k, "loss", ctx, sizeof ctx);
        const ld want = direct_loss(k);
        const double scale = magnitude(k, want);
        const Out<double> one = header_row<double>(k, D + 1);
        const Out<double> blocks = header_row<double>(k, 7);
        expect_close("loss (double)", one.loss, static_cast<double>(want), 1e-13, 1e-13 * scale, ctx);
        expect_close("loss (double, blocks merged)", blocks.loss, static_cast<double>(want), 1e-13,
                     1e-13 * scale, ctx);
        const Out<float> fl = header_row<float>(k, 5);
        expect_close("loss (float)", fl.loss, static_cast<double>(want), 2e-5, 2e-5 * scale, ctx);
      }
    }
  }
}

// Central differences of the direct loss in x[d] (a member of k).
double fd(Case k, Vec Case::*x, size_t d, double h) {
  const double x0 = (k.*x)[d];
  (k.*x)[d] = x0 + h;
  const ld up = direct_loss(k);
  (k.*x)[d] = x0 - h;
  const ld down = direct_loss(k);
  return static_cast<double>((up - down) / (2 * static_cast<ld>(h)));
}

// True when the loss's kinks (a hinge's argument, the swap's switch, |w| = 0 in an element of a
// p-norm with p = 1) are farther than `gap` from this point.
bool smooth_here(const Case& k, double gap) {
  const ld y = k.y;
  switch (k.kind) {
    case rw::kMarginRanking:
      return std::fabs(static_cast<double>(-y * (static_cast<ld>(k.a[0]) - k.b[0]) + k.margin)) > gap;
    case rw::kOrderCalibrate:
      return std::fabs(k.a[0] - k.b[0]) > gap;
    case rw::kCosineEmbedding: {
      if (k.y != -1) return true;
      Case t = k;
      t.y = 1;  // 1 - cos
      return std::fabs(static_cast<double>(1 - direct_loss(t) - k.margin)) > gap;
    }
    case rw::kTriplet: {
      const ld d_ap = pnorm(k.a, k.b, k.p, k.eps), d_an = pnorm(k.a, k.c, k.p, k.eps);
      const ld d_pn = pnorm(k.b, k.c, k.p, k.eps);
      const ld d_neg = k.swap ? std::min(d_an, d_pn) : d_an;
      if (std::fabs(static_cast<double>(d_ap - d_neg + k.margin)) <= gap) return false;
      if (k.swap && std::fabs(static_cast<double>(d_an - d_pn)) <= gap) return false;
      for (size_t d = 0; d < k.a.size(); ++d) {
        for (const Vec* u : {&k.a, &k.b}) {
          for (const Vec* v : {&k.b, &k.c}) {
            if (u != v && std::fabs((*u)[d] - (*v)[d] + k.eps) <= gap) return false;
          }
        }
      }
      return true;
    }
    case rw::kContrastive:
      return k.y == 1 || std::fabs(static_cast<double>(k.margin - pnorm(k.a, k.b, 2, k.eps))) > gap;
    default:
      return true;
  }
}

void check_grads(const Case& k, double h, double rtol, const char* what) {
  char ctx[200];
  describe(k, what, ctx, sizeof ctx);
  const Out<double> o = header_row<double>(k, 4);
  double gmax = 0;
  for (size_t d = 0; d < k.a.size(); ++d) {
    gmax = std::max({gmax, std::fabs(o.ga[d]), std::fabs(o.gb[d]), std::fabs(o.gc[d])});
  }
  const double atol = rtol * std::max(1.0, gmax);
  for (size_t d = 0; d < k.a.size(); ++d) {
    expect_close("d/da", o.ga[d], fd(k, &Case::a, d, h), rtol, atol, ctx);
    expect_close("d/db", o.gb[d], fd(k, &Case::b, d, h), rtol, atol, ctx);
    if (k.kind == rw::kTriplet) {
      expect_close("d/dc", o.gc[d], fd(k, &Case::c, d, h), rtol, atol, ctx);
    } else {
      expect(o.gc[d] == 0.0, "gc is 0 without c", o.gc[d], 0.0, ctx);
    }
  }
}

// 2. Gradients against central differences.
void test_gradients() {
  std::mt19937_64 rng(5);
  const size_t Ds[] = {1, 2, 5, 16};
  const double h = 1e-6;
  int checked[6] = {0, 0, 0, 0, 0, 0};
  for (int64_t kind : kKinds) {
    for (size_t D : Ds) {
      if (flat_kind(kind) && D != 1) continue;
      for (int rep = 0; rep < 60; ++rep) {
        const Case k = random_case(rng, kind, D);
        if (!smooth_here(k, 1e-3)) continue;
        check_grads(k, h, 1e-7, "random");
        ++checked[kind];
      }
    }
  }
  for (int64_t kind : kKinds) {
    expect(checked[kind] >= 30, "enough smooth random cases", checked[kind], 30, "gradients");
  }

  // Triplet: every p, with and without swap, the loss active (and both swap branches).
  for (double p : {1.0, 2.0, 3.0}) {
    for (bool swap : {false, true}) {
      for (int rep = 0; rep < 20; ++rep) {
        Case k = random_case(rng, rw::kTriplet, 6);
        k.p = p;
        k.swap = swap;
        k.margin = 10.0;  // active
        if (swap && rep % 2) std::swap(k.a, k.b);  // the other branch of the min half the time
        if (!smooth_here(k, 1e-3)) continue;
        check_grads(k, h, 1e-7, "triplet active");
        const Out<double> o = header_row<double>(k, 4);
        double s = 0;
        for (size_t d = 0; d < 6; ++d) s += std::fabs(o.ga[d]) + std::fabs(o.gc[d]);
        expect(s > 0, "active triplet has a gradient", s, 1, "triplet active");
      }
    }
  }
  // Triplet inactive: loss and gradients 0.
  {
    Case k = random_case(rng, rw::kTriplet, 6);
    k.margin = -100.0;
    const Out<double> o = header_row<double>(k, 4);
    expect(o.loss == 0.0, "inactive triplet loss", o.loss, 0, "triplet inactive");
    for (size_t d = 0; d < 6; ++d) expect(o.ga[d] == 0 && o.gb[d] == 0 && o.gc[d] == 0, "inactive triplet grad",
                                          o.ga[d], 0, "triplet inactive");
  }

  // Contrastive: both labels, margin active and inactive.
  for (double y : {0.0, 1.0}) {
    for (bool active : {false, true}) {
      for (int rep = 0; rep < 10; ++rep) {
        Case k = random_case(rng, rw::kContrastive, 5);
        k.y = y;
        const double d = static_cast<double>(pnorm(k.a, k.b, 2, k.eps));
        k.margin = active ? d + 0.5 : std::max(0.0, d - 0.5);
        check_grads(k, h, 1e-7, active ? "contrastive margin active" : "contrastive margin inactive");
        const Out<double> o = header_row<double>(k, 4);
        if (y == 0 && !active) {
          expect(o.loss == 0.0, "contrastive y=0 beyond the margin: loss 0", o.loss, 0, "contrastive");
          expect(o.ga[0] == 0.0, "contrastive y=0 beyond the margin: grad 0", o.ga[0], 0, "contrastive");
        }
      }
    }
  }

  // Cosine embedding: both targets, and a zero row (the gradient ~ 1/sqrt(1e-12): a smaller step).
  for (double y : {1.0, -1.0}) {
    for (int rep = 0; rep < 10; ++rep) {
      Case k = random_case(rng, rw::kCosineEmbedding, 7);
      k.y = y;
      k.margin = -0.9;  // y = -1 active (cos > -0.9 for these random rows, checked by smooth_here)
      if (smooth_here(k, 1e-3)) check_grads(k, h, 1e-7, "cosine embedding");
      std::fill(k.a.begin(), k.a.end(), 0.0);
      if (y == -1) k.margin = -0.5;  // cos = 0 with a zero row: active
      check_grads(k, 1e-10, 1e-5, "cosine embedding, zero row a");
    }
  }
  // Cosine similarity: a zero row (sum a^2 <= 1e-12: l2_normalize is linear there).
  for (int rep = 0; rep < 10; ++rep) {
    Case k = random_case(rng, rw::kCosineSimilarity, 5);
    check_grads(k, h, 1e-7, "cosine similarity");
    std::fill(k.b.begin(), k.b.end(), 0.0);
    check_grads(k, 1e-9, 1e-6, "cosine similarity, zero row b");
    const Out<double> o = header_row<double>(k, 4);
    expect(o.loss == 0.0, "cosine similarity with a zero row: loss 0", o.loss, 0, "cos sim zero");
  }
}

bool all_finite(const Out<double>& o) {
  bool ok = std::isfinite(o.loss);
  for (size_t d = 0; d < o.ga.size(); ++d) {
    ok = ok && std::isfinite(o.ga[d]) && std::isfinite(o.gb[d]) && std::isfinite(o.gc[d]);
  }
  return ok;
}

// 3. Edge cases and conventions.
void test_edges() {
  std::mt19937_64 rng(9);
  // Zero distances with eps = 0: finite, d(., .) = 0 contributes no gradient.
  {
    Case k = random_case(rng, rw::kTriplet, 4);
    k.eps = 0;
    k.swap = false;
    k.b = k.a;  // d(a, b) = 0
    for (double p : {1.0, 2.0, 3.0}) {
      k.p = p;
      k.margin = 100.0;
      const Out<double> o = header_row<double>(k, 4);
      expect(all_finite(o), "triplet d(a, b) = 0: finite", o.loss, 0, "triplet zero");
      expect_close("triplet d(a, b) = 0: loss", o.loss, static_cast<double>(direct_loss(k)), 1e-13, 1e-12,
                   "triplet zero");
      // only the d(a, c) term: d/db = 0
      for (size_t d = 0; d < 4; ++d) expect(o.gb[d] == 0.0, "triplet d(a, b) = 0: d/db", o.gb[d], 0, "triplet zero");
    }
  }
  {
    Case k = random_case(rng, rw::kContrastive, 4);
    k.eps = 0;
    k.b = k.a;
    for (double y : {0.0, 1.0}) {
      k.y = y;
      k.margin = 1.0;
      const Out<double> o = header_row<double>(k, 4);
      expect(all_finite(o), "contrastive d = 0: finite", o.loss, 0, "contrastive zero");
      expect_close("contrastive d = 0: loss", o.loss, y == 1 ? 0.0 : 1.0, 0, 0, "contrastive zero");
      expect(o.ga[0] == 0.0 && o.gb[0] == 0.0, "contrastive d = 0: grad 0", o.ga[0], 0, "contrastive zero");
    }
  }
  {
    Case k = random_case(rng, rw::kCosineEmbedding, 3);
    std::fill(k.a.begin(), k.a.end(), 0.0);
    std::fill(k.b.begin(), k.b.end(), 0.0);
    for (double y : {1.0, -1.0}) {
      k.y = y;
      const Out<double> o = header_row<double>(k, 4);
      expect(all_finite(o), "cosine embedding two zero rows: finite", o.loss, 0, "cos zero");
      expect_close("cosine embedding two zero rows: loss", o.loss, y == 1 ? 1.0 : std::max(0.0, -k.margin), 0, 0,
                   "cos zero");
    }
    Case s = k;
    s.kind = rw::kCosineSimilarity;
    const Out<double> o = header_row<double>(s, 4);
    expect(all_finite(o) && o.loss == 0.0, "cosine similarity two zero rows: 0, finite", o.loss, 0, "cos zero");
  }
  // Cosine embedding: targets other than +-1 give 0 and no gradient.
  for (double y : {0.0, 0.5, 2.0}) {
    Case k = random_case(rng, rw::kCosineEmbedding, 5);
    k.y = y;
    const Out<double> o = header_row<double>(k, 4);
    bool zero = o.loss == 0.0;
    for (size_t d = 0; d < 5; ++d) zero = zero && o.ga[d] == 0.0 && o.gb[d] == 0.0;
    expect(zero, "cosine embedding y not +-1: 0", o.loss, 0, "cos y");
  }
  // Kinks: margin ranking at u = 0 takes the gradient -y (torch's); order calibration at a = b not.
  {
    Case k;
    k.kind = rw::kMarginRanking;
    k.a = {0.75};
    k.b = {0.25};
    k.y = 1;
    k.margin = 0.5;  // u = -(0.5) + 0.5 = 0
    const Out<double> o = header_row<double>(k, 1);
    expect(o.loss == 0.0 && o.ga[0] == -1.0 && o.gb[0] == 1.0, "margin ranking at u = 0", o.ga[0], -1, "kink");
    Case q;
    q.kind = rw::kOrderCalibrate;
    q.a = {0.3};
    q.b = {0.3};
    const Out<double> oq = header_row<double>(q, 1);
    expect(oq.loss == 0.0 && oq.ga[0] == 0.0 && oq.gb[0] == 0.0, "order calibration at a = b", oq.ga[0], 0, "kink");
    q.a = {0.5};
    const Out<double> oq2 = header_row<double>(q, 1);
    expect_close("order calibration loss", oq2.loss, 0.2, 1e-15, 0, "order");
    expect(oq2.ga[0] == 1.0 && oq2.gb[0] == -1.0, "order calibration grad", oq2.ga[0], 1, "order");
  }
  // grad_elems' factor f scales every gradient.
  for (int64_t kind : kKinds) {
    const Case k = random_case(rng, kind, flat_kind(kind) ? 1 : 6);
    const Out<double> one = header_row<double>(k, 4);
    const Out<double> f = header_row<double>(k, 4, 0.25);
    for (size_t d = 0; d < k.a.size(); ++d) {
      expect_close("f ga", f.ga[d], 0.25 * one.ga[d], 1e-15, 0, "factor");
      expect_close("f gb", f.gb[d], 0.25 * one.gb[d], 1e-15, 0, "factor");
      expect_close("f gc", f.gc[d], 0.25 * one.gc[d], 1e-15, 0, "factor");
    }
  }
}

}  // namespace

int main() {
  const fltest::Group groups[] = {
      {"losses", test_losses},
      {"gradients", test_gradients},
      {"edge cases", test_edges},
  };
  return fltest::run_groups("test_rowwise_math", groups);
}
