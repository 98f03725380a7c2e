// Torch-free unit tests of the math in csrc/metric/metric_math.h (run by ctest; see CMakeLists.txt),
// against direct long-double computations of the formulas in its header comment. Exits nonzero on
// any failure and prints a summary.
//  1. The loss: the header's 3-pass algorithm (row_lse_add over j != i, row_stats, row_loss) on small
//     batches against the direct formula over the [B, B] cosines: circle's softplus(LSE+ + LSE-)
//     with an empty set counting -1e12 (an anchor without positives, a batch without negatives,
//     B = 1 adds 0), multi-similarity's log(1 + sum) / alpha + log(1 + sum) / beta; both kinds, with
//     and without sessions and normalisation, in double and float.
//  2. The gradient: pass 2 (H_ij = pair_grad(i) + pair_grad(j), sh, hc, grad_elem) against central
//     differences of the direct loss in the embeddings, circle's alphas held at their values at the
//     point (they are constants, EasyRec stops their gradient); multi-similarity's batches keep every
//     cosine away from its kink at 0. Includes a zero row (the norm clamp: l2n linear there).
//  3. row_lse_merge: a row's pairs split between two partial states, merged, gives the same
//     statistics; pair_grad is 0 where the slope or the row factor is (empty sets, S < 0 in
//     multi-similarity).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "../metric/metric_math.h"

namespace mt = fusedloss::metric;
using mt::Params;

namespace {

using fltest::expect;
using fltest::expect_close;

using ld = long double;

struct Batch {
  int64_t B = 0, D = 0;
  std::vector<double> e;       // [B, D]
  std::vector<int64_t> y, g;   // labels, sessions (empty: none)
  int64_t kind = mt::kCircle;
  double p0 = 0.25, p1 = 32.0, p2 = 0.0;
  bool normalize = true;
};

bool positive(const Batch& b, int64_t i, int64_t j) {
  return b.y[i] == b.y[j] && (b.g.empty() || b.g[i] == b.g[j]);
}

// ---- Direct long-double formulas ----

std::vector<ld> direct_cos(const Batch& b, const std::vector<ld>& e) {
  const int64_t B = b.B, D = b.D;
  std::vector<ld> inv(B, 1);
  for (int64_t i = 0; i < B && b.normalize; ++i) {
    ld s = 0;
    for (int64_t d = 0; d < D; ++d) s += e[i * D + d] * e[i * D + d];
    inv[i] = 1 / std::sqrt(std::max(s, static_cast<ld>(1e-12)));
  }
  std::vector<ld> S(B * B);
  for (int64_t i = 0; i < B; ++i) {
    for (int64_t j = 0; j < B; ++j) {
      ld dot = 0;
      for (int64_t d = 0; d < D; ++d) dot += e[i * D + d] * e[j * D + d];
      S[i * B + j] = inv[i] * inv[j] * dot;
    }
  }
  return S;
}

ld lse(const std::vector<ld>& v) {
  if (v.empty()) return -INFINITY;
  ld m = v[0];
  for (ld x : v) m = std::max(m, x);
  ld s = 0;
  for (ld x : v) s += std::exp(x - m);
  return m + std::log(s);
}

ld softplus_ld(ld x) { return std::max(x, static_cast<ld>(0)) + std::log1p(std::exp(-std::fabs(x))); }

// sum_i loss_i. alpha (circle): [B, B] alpha+ / alpha- to use (nullptr: from S, the loss's value).
ld direct_sum(const Batch& b, const std::vector<ld>& e, const std::vector<ld>* alpha, std::vector<ld>* rows) {
  const int64_t B = b.B;
  const std::vector<ld> S = direct_cos(b, e);
  const ld p0 = b.p0, p1 = b.p1, p2 = b.p2;
  ld total = 0;
  for (int64_t i = 0; i < B; ++i) {
    std::vector<ld> lp, ln;
    for (int64_t j = 0; j < B; ++j) {
      if (j == i) continue;
      const ld s = S[i * B + j];
      const bool pos = positive(b, i, j);
      if (b.kind == mt::kCircle) {
        const ld a = alpha != nullptr ? (*alpha)[i * B + j]
                                      : (pos ? std::max(1 + p0 - s, static_cast<ld>(0)) : std::max(s + p0, static_cast<ld>(0)));
        (pos ? lp : ln).push_back(pos ? -p1 * a * (s - (1 - p0)) : p1 * a * (s - p0));
      } else {
        const ld sp = std::max(s, static_cast<ld>(0));
        (pos ? lp : ln).push_back(pos ? -p0 * (sp - p2) : p1 * (sp - p2));
      }
    }
    ld li;
    if (b.kind == mt::kCircle) {
      // EasyRec masks with -1e12: an empty set's LSE is -1e12 (+ log B, which the softplus ignores).
      const ld a = lp.empty() ? -1e12L : lse(lp);
      const ld n = ln.empty() ? -1e12L : lse(ln);
      li = softplus_ld(a + n);
    } else {
      ld sp = 0, sn = 0;
      for (ld x : lp) sp += std::exp(x);
      for (ld x : ln) sn += std::exp(x);
      li = std::log1p(sp) / p0 + std::log1p(sn) / p1;
    }
    if (rows != nullptr) rows->push_back(li);
    total += li;
  }
  return total;
}

std::vector<ld> circle_alphas(const Batch& b, const std::vector<ld>& e) {
  const int64_t B = b.B;
  const std::vector<ld> S = direct_cos(b, e);
  std::vector<ld> a(B * B, 0);
  for (int64_t i = 0; i < B; ++i) {
    for (int64_t j = 0; j < B; ++j) {
      const ld s = S[i * B + j];
      a[i * B + j] = positive(b, i, j) ? std::max(1 + b.p0 - s, static_cast<ld>(0)) : std::max(s + b.p0, static_cast<ld>(0));
    }
  }
  return a;
}

// ---- The header's algorithm (what the kernels run), in acc_t ----

template <typename acc_t>
struct Result {
  std::vector<acc_t> loss;   // [B]
  std::vector<double> grad;  // [B, D]
  std::vector<acc_t> A, N, C;
};

template <typename acc_t>
Result<acc_t> header_run(const Batch& b, bool merged_halves = false) {
  const int64_t B = b.B, D = b.D;
  Params<acc_t> p;
  p.kind = b.kind;
  p.p0 = static_cast<acc_t>(b.p0);
  p.p1 = static_cast<acc_t>(b.p1);
  p.p2 = static_cast<acc_t>(b.p2);
  p.normalize = b.normalize;
  std::vector<acc_t> e(b.e.begin(), b.e.end());
  // pass 0
  std::vector<acc_t> inv(B);
  std::vector<bool> proj(B);
  for (int64_t i = 0; i < B; ++i) {
    acc_t s = 0;
    for (int64_t d = 0; d < D; ++d) s += e[i * D + d] * e[i * D + d];
    inv[i] = mt::inv_norm(s, b.normalize);
    proj[i] = mt::projects(s, b.normalize);
  }
  auto cosine = [&](int64_t i, int64_t j) {
    acc_t dot = 0;
    for (int64_t d = 0; d < D; ++d) dot += e[i * D + d] * e[j * D + d];
    return inv[i] * inv[j] * dot;
  };
  // pass 1
  Result<acc_t> r;
  r.loss.resize(B);
  r.A.resize(B);
  r.N.resize(B);
  r.C.resize(B);
  for (int64_t i = 0; i < B; ++i) {
    mt::RowLse<acc_t> st = mt::row_lse_start<acc_t>();
    mt::RowLse<acc_t> st2 = mt::row_lse_start<acc_t>();
    for (int64_t j = 0; j < B; ++j) {
      if (j == i) continue;
      mt::row_lse_add((merged_halves && j % 2 == 1) ? st2 : st, cosine(i, j), positive(b, i, j), p);
    }
    if (merged_halves) st = mt::row_lse_merge(st, st2);
    mt::row_stats(st, p, &r.A[i], &r.N[i]);
    r.loss[i] = mt::row_loss(r.A[i], r.N[i], p);
    r.C[i] = mt::row_factor(r.A[i], r.N[i], p);
  }
  // pass 2
  r.grad.assign(B * D, 0.0);
  std::vector<acc_t> sh(D);
  for (int64_t i = 0; i < B; ++i) {
    std::fill(sh.begin(), sh.end(), acc_t(0));
    acc_t hc = 0;
    for (int64_t j = 0; j < B; ++j) {
      if (j == i) continue;
      const acc_t s = cosine(i, j);
      const bool pos = positive(b, i, j);
      const acc_t H = mt::pair_grad(s, pos, r.A[i], r.N[i], r.C[i], p) + mt::pair_grad(s, pos, r.A[j], r.N[j], r.C[j], p);
      for (int64_t d = 0; d < D; ++d) sh[d] += H * inv[j] * e[j * D + d];
      hc += H * s;
    }
    for (int64_t d = 0; d < D; ++d) {
      r.grad[i * D + d] = static_cast<double>(mt::grad_elem(sh[d], e[i * D + d], hc, inv[i], proj[i]));
    }
  }
  return r;
}

// ---- Batches ----

Batch make_batch(std::mt19937_64& rng, int64_t B, int64_t D, int64_t labels, int64_t sessions, int64_t kind) {
  Batch b;
  b.B = B;
  b.D = D;
  b.kind = kind;
  std::normal_distribution<double> nd(0.0, 1.0);
  b.e.resize(B * D);
  for (double& x : b.e) x = nd(rng);
  std::uniform_int_distribution<int64_t> ly(0, labels - 1), lg(0, sessions - 1);
  b.y.resize(B);
  for (int64_t& v : b.y) v = ly(rng);
  if (sessions > 0) {
    b.g.resize(B);
    for (int64_t& v : b.g) v = lg(rng);
  }
  if (kind == mt::kCircle) {
    b.p0 = 0.25;
    b.p1 = 8.0;  // moderate gamma: central differences stay accurate
  } else {
    b.p0 = 2.0;
    b.p1 = 10.0;
    b.p2 = 0.5;
  }
  return b;
}

std::string describe(const Batch& b, const char* what) {
  char buf[200];
  std::snprintf(buf, sizeof buf, "%s: kind %lld B %lld D %lld sessions %d normalize %d", what,
                static_cast<long long>(b.kind), static_cast<long long>(b.B), static_cast<long long>(b.D),
                b.g.empty() ? 0 : 1, b.normalize ? 1 : 0);
  return buf;
}

bool has_anchor_without_positives(const Batch& b) {
  for (int64_t i = 0; i < b.B; ++i) {
    bool any = false;
    for (int64_t j = 0; j < b.B; ++j) any = any || (j != i && positive(b, i, j));
    if (!any) return true;
  }
  return false;
}

// Multi-similarity's max(S, 0) has a kink at S = 0; central differences need every cosine away from it.
bool away_from_kink(const Batch& b) {
  if (b.kind != mt::kMultiSimilarity) return true;
  const std::vector<ld> e(b.e.begin(), b.e.end());
  const std::vector<ld> S = direct_cos(b, e);
  for (int64_t i = 0; i < b.B; ++i) {
    for (int64_t j = 0; j < b.B; ++j) {
      if (i != j && std::fabs(S[i * b.B + j]) < 1e-3) return false;
    }
  }
  return true;
}

void check_loss(const Batch& b, const char* what) {
  const std::string ctx = describe(b, what);
  const std::vector<ld> e(b.e.begin(), b.e.end());
  std::vector<ld> rows;
  direct_sum(b, e, nullptr, &rows);
  const Result<double> rd = header_run<double>(b);
  const Result<float> rf = header_run<float>(b);
  const Result<double> rm = header_run<double>(b, true);
  for (int64_t i = 0; i < b.B; ++i) {
    const double want = static_cast<double>(rows[i]);
    expect_close("loss_i (double)", rd.loss[i], want, 1e-12, 1e-13, ctx.c_str());
    expect_close("loss_i (float)", rf.loss[i], want, 2e-5, 2e-5, ctx.c_str());
    expect_close("loss_i (merged halves)", rm.loss[i], want, 1e-12, 1e-13, ctx.c_str());
    expect_close("A_i (merged halves)", rm.A[i], rd.A[i], 1e-12, 1e-13, ctx.c_str());
    expect_close("N_i (merged halves)", rm.N[i], rd.N[i], 1e-12, 1e-13, ctx.c_str());
  }
}

void check_grad(const Batch& b, const char* what) {
  const std::string ctx = describe(b, what);
  const std::vector<ld> e0(b.e.begin(), b.e.end());
  const std::vector<ld> alpha = circle_alphas(b, e0);
  const std::vector<ld>* fixed = b.kind == mt::kCircle ? &alpha : nullptr;
  const Result<double> rd = header_run<double>(b);
  const Result<float> rf = header_run<float>(b);
  double mag = 0;
  for (double g : rd.grad) mag = std::max(mag, std::fabs(g));
  for (int64_t k = 0; k < b.B * b.D; ++k) {
    std::vector<ld> up = e0, dn = e0;
    const ld h = 1e-6L * std::max(static_cast<ld>(1e-6), std::fabs(e0[k]));
    up[k] += h;
    dn[k] -= h;
    const ld fd = (direct_sum(b, up, fixed, nullptr) - direct_sum(b, dn, fixed, nullptr)) / (2 * h);
    expect_close("d sum loss / d e (double)", rd.grad[k], static_cast<double>(fd), 1e-6, 1e-8 * std::max(mag, 1.0),
                 ctx.c_str());
    expect_close("d sum loss / d e (float)", rf.grad[k], rd.grad[k], 1e-3, 1e-4 * std::max(mag, 1.0), ctx.c_str());
  }
}

void test_loss() {
  std::mt19937_64 rng(1);
  int with_empty = 0;
  for (int64_t kind : {int64_t(mt::kCircle), int64_t(mt::kMultiSimilarity)}) {
    for (int trial = 0; trial < 12; ++trial) {
      const int64_t B = 2 + trial, D = 1 + trial % 5;
      Batch b = make_batch(rng, B, D, 3, trial % 2 ? 2 : 0, kind);
      b.normalize = trial % 3 != 2;
      if (!b.normalize) {
        for (double& x : b.e) x *= 0.4;  // keep the cosines of unnormalised rows moderate
      }
      with_empty += has_anchor_without_positives(b) ? 1 : 0;
      check_loss(b, "random");
    }
    // An anchor without positives (a label of its own), a batch without negatives, B = 1, a zero row.
    Batch b = make_batch(rng, 7, 4, 2, 0, kind);
    b.y[3] = 42;
    check_loss(b, "anchor without positives");
    {
      const Result<double> r = header_run<double>(b);
      if (kind == mt::kCircle) {
        expect(r.A[3] == mt::empty_lse<double>(), "circle: empty positive set -> -1e12", r.A[3], -1e12, "A_3");
        expect(r.loss[3] == 0.0 && r.C[3] == 0.0, "circle: no positives -> loss 0, factor 0", r.loss[3], 0, "loss_3");
      } else {
        expect(r.A[3] == 0.0, "multi-similarity: empty positive set -> A = 0", r.A[3], 0, "A_3");
      }
    }
    std::fill(b.y.begin(), b.y.end(), 5);
    check_loss(b, "no negatives");
    Batch one = make_batch(rng, 1, 3, 1, 0, kind);
    check_loss(one, "B = 1");
    expect(header_run<double>(one).loss[0] == 0.0, "B = 1 adds 0", header_run<double>(one).loss[0], 0, "B = 1");
    Batch z = make_batch(rng, 6, 3, 2, 2, kind);
    std::fill(z.e.begin() + 2 * 3, z.e.begin() + 3 * 3, 0.0);
    check_loss(z, "zero row");
  }
  expect(with_empty > 0, "the random batches include an anchor without positives", with_empty, 1, "coverage");
}

void test_grad() {
  std::mt19937_64 rng(7);
  for (int64_t kind : {int64_t(mt::kCircle), int64_t(mt::kMultiSimilarity)}) {
    int done = 0;
    for (int trial = 0; done < 8 && trial < 400; ++trial) {
      const int64_t B = 3 + trial % 6, D = 2 + trial % 4;
      Batch b = make_batch(rng, B, D, 2, trial % 2 ? 2 : 0, kind);
      b.normalize = trial % 4 != 3;
      if (!b.normalize) {
        for (double& x : b.e) x *= 0.4;
      }
      if (trial % 5 == 4) b.y[0] = 99;  // an anchor without positives
      if (!away_from_kink(b)) continue;
      check_grad(b, "random");
      ++done;
    }
    expect(done == 8, "enough batches away from the kink", done, 8, "coverage");
    // A zero row: clamped norm, l2n linear there (circle only: its cosines are 0, multi-similarity's kink).
    if (kind == mt::kCircle) {
      Batch z = make_batch(rng, 5, 3, 2, 0, kind);
      std::fill(z.e.begin() + 3, z.e.begin() + 6, 0.0);
      check_grad(z, "zero row");
    }
  }
}

void test_pair_grad_zeros() {
  Params<double> c{mt::kCircle, 0.25, 32.0, 0.0, true};
  // Circle, an anchor whose positive set is empty: row_factor = sigmoid(-1e12 + N) = 0.
  const double f = mt::row_factor(mt::empty_lse<double>(), 3.0, c);
  expect(f == 0.0, "circle: factor 0 with an empty set", f, 0, "row_factor");
  expect(mt::pair_grad(0.3, false, mt::empty_lse<double>(), 3.0, f, c) == 0.0, "circle: pair_grad 0 with factor 0",
         0, 0, "pair_grad");
  // Circle: alpha- = relu(S + m) = 0 for S <= -m: slope 0.
  expect(mt::pair_grad(-0.5, false, 0.0, 0.0, 0.5, c) == 0.0, "circle: slope 0 below -m", 0, 0, "pair_grad");
  // Multi-similarity: S < 0 has slope 0 (max(S, 0)); S = 0 passes (torch.clamp's gradient).
  Params<double> m{mt::kMultiSimilarity, 2.0, 50.0, 1.0, true};
  expect(mt::pair_grad(-0.1, true, 1.0, 1.0, 1.0, m) == 0.0, "multi-similarity: S < 0 -> 0", 0, 0, "pair_grad");
  const double at0 = mt::pair_grad(0.0, false, 0.0, 1.0, 1.0, m);
  expect_close("multi-similarity: S = 0 negative", at0, std::exp(-50.0 - 1.0), 1e-14, 0, "pair_grad");
  // Multi-similarity: empty sets give A = N = 0 (log 1), loss 0.
  mt::RowLse<double> st = mt::row_lse_start<double>();
  double a = 1, n = 1;
  mt::row_stats(st, m, &a, &n);
  expect(a == 0.0 && n == 0.0 && mt::row_loss(a, n, m) == 0.0, "multi-similarity: empty sets -> 0", a + n, 0,
         "row_stats");
  // Circle: both sets empty (B = 1) -> softplus(-2e12) = 0.
  mt::row_stats(st, c, &a, &n);
  expect(a == -1e12 && n == -1e12 && mt::row_loss(a, n, c) == 0.0, "circle: empty sets -> -1e12, loss 0", a, -1e12,
         "row_stats");
}

}  // namespace

int main() {
  const fltest::Group groups[] = {
      {"loss vs direct", test_loss},
      {"gradient vs differences", test_grad},
      {"pair_grad zeros, empty sets", test_pair_grad_zeros},
  };
  return fltest::run_groups("test_metric_math", groups);
}
