// Torch-free unit tests of the per-row math in csrc/softmax/softmax_math.h (run by ctest; see
// CMakeLists.txt), against direct long-double computations of the formulas in its header comment.
// Exits nonzero on any failure and prints a summary.
//
// A row is evaluated the two ways the kernels do: element by element (row_sums_add) in "workers"
// merged in shuffled order with row_sums_merge (the CUDA kernel), and in tiles of random sizes whose
// maximum, e^{x - m'} sums and W, S are taken first and merged (the cpu kernel), then the loss and
// the gradient from the header's functions.
//  1. Split sums: the row state (lse, W, S) of both ways against direct sums; row_sums_merge is
//     commutative bit for bit; row_sums_empty is neutral; the split losses equal the lse forms
//     (ce_index_loss, ce_prob_loss, focal_term) on moderate logits.
//  2. Cross-entropy, class index, with and without smoothing, weights and z-loss: loss = -sum_c q'_c
//     log p_c + z lse^2 with q'_c = (1 - eps) w_y [c = y] + eps/C w_c; gradient against the direct
//     formula and central differences.
//  3. Cross-entropy, probabilities (soft targets, weights, smoothing, z-loss): the same checks.
//  4. Focal: gamma = 0 without alpha equals the cross-entropy; loss and gradient against the direct
//     formula and central differences for gamma in {0, 0.5, 1, 2, 3.7}, with and without smoothing,
//     incl. rows where p_y is within 1e-9 of 1 (gamma 0.5: (1 - p)^-0.5 is large there).
//  5. Huge logits (+-1e4, fp32 and fp64): finite losses and gradients equal to the direct values.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "check.h"
#include "../softmax/softmax_math.h"

namespace sm = fusedloss::softmax;
using fusedloss::Lse;
using sm::FocalTerm;
using sm::Params;
using sm::RowNorm;
using sm::RowSums;

namespace {

using fltest::expect;
using fltest::expect_close;
using fltest::g_checks;
using fltest::g_failures;

using ld = long double;

// A problem: logits, class index y or probabilities t, class weight / alpha w (empty: 1), and
// the parameters.
struct Row {
  std::vector<double> x;
  int64_t y = 0;
  std::vector<double> t;  // probabilities (cross-entropy), empty for a class index
  std::vector<double> w;  // empty: every class weighs 1
  int64_t mode = sm::kCrossEntropy;
  double eps = 0, z = 0, gamma = 0;
  double weight(size_t c) const { return w.empty() ? 1.0 : w[c]; }
};

// ---- direct long-double formulas ----

struct DirectSoftmax {
  ld m, lse;
  std::vector<ld> logp, one_minus_p;  // 1 - p_c as sum_{k != c} e^{x_k} / sum e^x (no cancellation)
};

DirectSoftmax direct_softmax(const std::vector<double>& x) {
  DirectSoftmax d;
  d.m = -INFINITY;
  for (double v : x) d.m = std::max(d.m, static_cast<ld>(v));
  ld s = 0;
  for (double v : x) s += std::exp(static_cast<ld>(v) - d.m);
  d.lse = d.m + std::log(s);
  for (size_t c = 0; c < x.size(); ++c) {
    d.logp.push_back((static_cast<ld>(x[c]) - d.m) - std::log(s));
    ld rest = 0;
    for (size_t k = 0; k < x.size(); ++k) {
      if (k != c) rest += std::exp(static_cast<ld>(x[k]) - d.m);
    }
    d.one_minus_p.push_back(rest / s);
  }
  return d;
}

// The row's loss: -sum_c q'_c log p_c + z lse^2 (cross-entropy) or -sum_c q_c a_c (1 - p_c)^gamma
// log p_c (focal).
ld direct_loss(const Row& r) {
  const DirectSoftmax d = direct_softmax(r.x);
  const size_t C = r.x.size();
  const ld eps = r.eps;
  ld loss = 0;
  for (size_t c = 0; c < C; ++c) {
    const ld hit = (r.t.empty() && static_cast<int64_t>(c) == r.y) ? 1 : 0;
    ld q;
    if (r.mode == sm::kCrossEntropy && r.t.empty()) {
      q = (1 - eps) * r.weight(r.y) * hit + eps / C * r.weight(c);
    } else if (r.mode == sm::kCrossEntropy) {
      q = r.weight(c) * (r.t[c] * (1 - eps) + eps / C);
    } else {
      q = r.weight(c) * ((1 - eps) * hit + eps / C) * std::pow(d.one_minus_p[c], static_cast<ld>(r.gamma));
    }
    if (q != 0) loss -= q * d.logp[c];
  }
  if (r.mode == sm::kCrossEntropy) loss += r.z * d.lse * d.lse;
  return loss;
}

// The cross-entropy gradient in closed form: d/dx_c = (sum_k q'_k) p_c - q'_c + 2 z lse p_c.
std::vector<ld> direct_ce_grad(const Row& r) {
  const DirectSoftmax d = direct_softmax(r.x);
  const size_t C = r.x.size();
  const ld eps = r.eps;
  std::vector<ld> q(C);
  ld qsum = 0;
  for (size_t c = 0; c < C; ++c) {
    if (r.t.empty()) {
      q[c] = (1 - eps) * r.weight(r.y) * (static_cast<int64_t>(c) == r.y ? 1 : 0) + eps / C * r.weight(c);
    } else {
      q[c] = r.weight(c) * (r.t[c] * (1 - eps) + eps / C);
    }
    qsum += q[c];
  }
  std::vector<ld> g(C);
  for (size_t c = 0; c < C; ++c) {
    const ld p = std::exp(d.logp[c]);
    g[c] = qsum * p - q[c] + 2 * static_cast<ld>(r.z) * d.lse * p;
  }
  return g;
}

// ---- the kernels' evaluation ----

struct Eval {
  double loss;
  std::vector<double> grad;
  RowSums<double> sums;  // in double whatever acc_t (for the state checks)
};

template <typename acc_t>
Params<acc_t> params_of(const Row& r) {
  Params<acc_t> prm;
  prm.mode = r.mode;
  prm.num_classes = static_cast<int64_t>(r.x.size());
  prm.smoothing = acc_t(r.eps);
  prm.z_loss = r.mode == sm::kCrossEntropy ? acc_t(r.z) : acc_t(0);
  prm.gamma = acc_t(r.gamma);
  prm.weight_sum = 0;
  return prm;
}

// v_c of the split sums (0 where not needed), as the kernels take it.
template <typename acc_t>
acc_t shift_weight(const Row& r, size_t c, const Params<acc_t>& prm) {
  if (r.mode != sm::kCrossEntropy) return acc_t(0);
  if (!r.t.empty()) return sm::ce_prob_weight(acc_t(r.t[c]), acc_t(r.weight(c)), prm);
  return r.eps > 0 ? acc_t(r.weight(c)) : acc_t(0);
}

// Pass 1 element by element in `workers` strided parts merged in shuffled order (tiles = false), or
// in two-pass tiles of random sizes (tiles = true).
template <typename acc_t>
RowSums<acc_t> pass1(const Row& r, const Params<acc_t>& prm, bool tiles, int workers, std::mt19937_64& rng) {
  const size_t C = r.x.size();
  if (!tiles) {
    std::vector<RowSums<acc_t>> parts(workers, sm::row_sums_empty<acc_t>());
    for (size_t c = 0; c < C; ++c) {
      sm::row_sums_add(parts[c % workers], acc_t(r.x[c]), shift_weight(r, c, prm));
    }
    std::shuffle(parts.begin(), parts.end(), rng);
    RowSums<acc_t> row = parts[0];
    for (int k = 1; k < workers; ++k) row = sm::row_sums_merge(parts[k], row);
    return row;
  }
  RowSums<acc_t> row = sm::row_sums_empty<acc_t>();
  for (size_t c0 = 0; c0 < C;) {
    const size_t len = std::min(C - c0, static_cast<size_t>(1 + rng() % 37));
    acc_t key = -INFINITY;
    for (size_t c = c0; c < c0 + len; ++c) key = std::max(key, acc_t(r.x[c]));
    const acc_t ref = sm::finite_max(key);
    acc_t s = 0, w = 0, sh = 0;
    for (size_t c = c0; c < c0 + len; ++c) {
      s += fusedloss::lse_term(acc_t(r.x[c]), acc_t(1), ref);
      const acc_t v = shift_weight(r, c, prm);
      w += v;
      sh += v * (ref - acc_t(r.x[c]));
    }
    row = sm::row_sums_merge(row, RowSums<acc_t>{Lse<acc_t>{key, s}, w, sh});
    c0 += len;
  }
  return row;
}

template <typename acc_t>
Eval kernel_row(const Row& r, bool tiles, int workers, std::mt19937_64& rng) {
  Params<acc_t> prm = params_of<acc_t>(r);
  const RowSums<acc_t> row = pass1(r, prm, tiles, workers, rng);
  const RowNorm<acc_t> nrm = sm::row_norm(row.lse);
  prm.weight_sum = row.wsum;
  const size_t C = r.x.size();
  Eval e;
  e.sums = RowSums<double>{Lse<double>{double(row.lse.m), double(row.lse.s)}, double(row.wsum), double(row.shift)};
  e.grad.resize(C);
  const auto wc = [&](size_t c) { return acc_t(r.weight(c)); };
  if (r.mode == sm::kCrossEntropy && !r.t.empty()) {
    e.loss = double(sm::ce_prob_loss_split(nrm, row.wsum, row.shift, prm));
    for (size_t c = 0; c < C; ++c) {
      e.grad[c] = double(sm::ce_prob_grad(sm::prob_of(acc_t(r.x[c]), nrm), acc_t(r.t[c]), wc(c), row.wsum,
                                          nrm.lse, prm));
    }
  } else if (r.mode == sm::kCrossEntropy) {
    const acc_t w_y = wc(r.y);
    e.loss = double(sm::ce_index_loss_split(nrm, acc_t(r.x[r.y]), w_y, row.shift, prm));
    for (size_t c = 0; c < C; ++c) {
      e.grad[c] = double(sm::ce_index_grad(sm::prob_of(acc_t(r.x[c]), nrm), static_cast<int64_t>(c) == r.y, wc(c),
                                           w_y, nrm.lse, prm));
    }
  } else if (r.eps > 0) {
    // Pass 2, then the gradient from q a g(p) (as the cpu kernel) and from focal_grad (as CUDA).
    acc_t loss = 0, big_g = 0;
    std::vector<acc_t> qag(C);
    for (size_t c = 0; c < C; ++c) {
      const FocalTerm<acc_t> term = sm::focal_term_logp(sm::log_prob_of(acc_t(r.x[c]), nrm), prm.gamma);
      const acc_t coef = sm::focal_coef(static_cast<int64_t>(c) == r.y, wc(c), prm);
      loss += coef * term.f;
      qag[c] = coef * term.g;
      big_g += qag[c];
    }
    e.loss = double(loss);
    for (size_t c = 0; c < C; ++c) {
      const acc_t p = sm::prob_of(acc_t(r.x[c]), nrm);
      e.grad[c] = double(sm::focal_grad_of(qag[c], p, big_g));
      const FocalTerm<acc_t> term = sm::focal_term_logp(sm::log_prob_of(acc_t(r.x[c]), nrm), prm.gamma);
      const double via_term =
          double(sm::focal_grad(term, sm::focal_coef(static_cast<int64_t>(c) == r.y, wc(c), prm), big_g));
      expect_close("focal_grad = focal_grad_of", via_term, e.grad[c], 1e-5, 1e-7, "pass 2");
    }
  } else {
    const FocalTerm<acc_t> term = sm::focal_term_logp(sm::log_prob_of(acc_t(r.x[r.y]), nrm), prm.gamma);
    const acc_t a_y = wc(r.y);
    e.loss = double(a_y * term.f);
    const acc_t big_g = a_y * term.g;
    for (size_t c = 0; c < C; ++c) {
      e.grad[c] = double(sm::focal_onehot_grad(sm::prob_of(acc_t(r.x[c]), nrm), static_cast<int64_t>(c) == r.y, big_g));
    }
  }
  return e;
}

// Central differences of the direct loss (long double), step h relative to the row's scale.
std::vector<double> finite_difference(const Row& r, double h) {
  std::vector<double> g(r.x.size());
  for (size_t c = 0; c < r.x.size(); ++c) {
    Row rp = r, rm = r;
    rp.x[c] += h;
    rm.x[c] -= h;
    g[c] = static_cast<double>((direct_loss(rp) - direct_loss(rm)) / (2 * static_cast<ld>(h)));
  }
  return g;
}

// Loss and gradient of both evaluation ways against the direct loss, the closed-form gradient (CE)
// and central differences; fp32 against the same values with looser tolerances.
void check_row(const Row& r, const char* ctx, double fd_rtol = 1e-6) {
  std::mt19937_64 rng(static_cast<uint64_t>(r.x.size()) * 7919u + static_cast<uint64_t>(r.y));
  const double want = static_cast<double>(direct_loss(r));
  const std::vector<double> fd = finite_difference(r, 1e-6);
  std::vector<ld> closed;
  if (r.mode == sm::kCrossEntropy) closed = direct_ce_grad(r);
  for (int way = 0; way < 4; ++way) {
    const bool tiles = way % 2 == 1;
    const int workers = 1 + way * 3;
    const Eval e = kernel_row<double>(r, tiles, workers, rng);
    expect_close("loss (fp64)", e.loss, want, 1e-12, 1e-13, ctx);
    double gscale = 0;
    for (double v : fd) gscale = std::max(gscale, std::fabs(v));
    for (size_t c = 0; c < r.x.size(); ++c) {
      expect_close("grad vs finite difference (fp64)", e.grad[c], fd[c], fd_rtol, 1e-8 * std::max(1.0, gscale), ctx);
      if (!closed.empty()) {
        expect_close("grad vs closed form (fp64)", e.grad[c], double(closed[c]), 1e-12, 1e-14, ctx);
      }
    }
    const Eval f = kernel_row<float>(r, tiles, workers, rng);
    expect_close("loss (fp32)", f.loss, want, 2e-5, 2e-5, ctx);
    for (size_t c = 0; c < r.x.size(); ++c) {
      expect_close("grad (fp32)", f.grad[c], e.grad[c], 1e-4, 2e-6 * std::max(1.0, gscale), ctx);
    }
  }
}

// ---- 1. split sums ----

void test_split_sums() {
  std::mt19937_64 rng(1);
  std::normal_distribution<double> normal(0.0, 4.0);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  char ctx[160];
  for (int trial = 0; trial < 300; ++trial) {
    Row r;
    const int n = 1 + static_cast<int>(rng() % 200);
    r.x.resize(n);
    for (int i = 0; i < n; ++i) r.x[i] = normal(rng) + (trial % 4 == 0 ? 60.0 : 0.0);
    r.eps = 0.3;
    r.y = static_cast<int64_t>(rng() % n);
    if (trial % 2) {
      r.w.resize(n);
      for (double& v : r.w) v = 0.1 + unit(rng);
    }
    if (trial % 3 == 0) {
      r.t.resize(n);
      for (double& v : r.t) v = unit(rng);
    }
    std::snprintf(ctx, sizeof(ctx), "trial %d n=%d", trial, n);
    // Direct: m, s = sum e^{x - m}, W = sum v, S = sum v (m - x).
    const Params<double> prm = params_of<double>(r);
    ld m = -INFINITY, s = 0, W = 0, S = 0;
    for (double v : r.x) m = std::max(m, static_cast<ld>(v));
    for (int i = 0; i < n; ++i) {
      s += std::exp(static_cast<ld>(r.x[i]) - m);
      const ld v = shift_weight(r, i, prm);
      W += v;
      S += v * (m - r.x[i]);
    }
    for (int way = 0; way < 4; ++way) {
      const Eval e = kernel_row<double>(r, way % 2 == 1, 1 + way * 5, rng);
      expect(e.sums.lse.m == static_cast<double>(m), "row maximum", e.sums.lse.m, double(m), ctx);
      expect_close("s", e.sums.lse.s, double(s), 1e-13, 0, ctx);
      expect_close("W", e.sums.wsum, double(W), 1e-13, 1e-13, ctx);
      expect_close("S", e.sums.shift, double(S), 1e-12, 1e-12, ctx);
    }
    // The split losses are the lse forms.
    const RowSums<double> row = pass1(r, prm, false, 3, rng);
    const RowNorm<double> nrm = sm::row_norm(row.lse);
    Params<double> p2 = prm;
    p2.weight_sum = row.wsum;
    p2.z_loss = 0.01;
    if (r.t.empty()) {
      ld wx = 0;
      for (int i = 0; i < n; ++i) wx += r.weight(i) * r.x[i];
      expect_close("ce_index_loss_split = ce_index_loss",
                   sm::ce_index_loss_split(nrm, r.x[r.y], r.weight(r.y), row.shift, p2),
                   sm::ce_index_loss(nrm.lse, r.x[r.y], r.weight(r.y), double(wx), p2), 1e-11, 1e-11, ctx);
    } else {
      double a = 0, b = 0;
      for (int i = 0; i < n; ++i) sm::ce_prob_accumulate(a, b, r.x[i], r.t[i], r.weight(i), p2);
      expect_close("ce_prob_loss_split = ce_prob_loss", sm::ce_prob_loss_split(nrm, row.wsum, row.shift, p2),
                   sm::ce_prob_loss(nrm.lse, a, b, p2), 1e-11, 1e-11, ctx);
    }
    const FocalTerm<double> t1 = sm::focal_term(r.x[r.y], nrm.lse, 1.5);
    const FocalTerm<double> t2 = sm::focal_term_logp(sm::log_prob_of(r.x[r.y], nrm), 1.5);
    expect_close("focal_term = focal_term_logp (f)", t1.f, t2.f, 1e-11, 1e-13, ctx);
    expect_close("focal_term = focal_term_logp (g)", t1.g, t2.g, 1e-11, 1e-13, ctx);
    expect_close("prob_of = prob", sm::prob_of(r.x[0], nrm), sm::prob(r.x[0], nrm.lse), 1e-12, 1e-300, ctx);
  }
  // Commutativity, bit for bit, and the neutral element.
  std::uniform_real_distribution<double> ms(-30.0, 30.0);
  for (int trial = 0; trial < 1000; ++trial) {
    const RowSums<double> a{Lse<double>{ms(rng), 1.0 + unit(rng) * 9}, unit(rng) * 5, unit(rng) * 50};
    const RowSums<double> b{Lse<double>{trial % 3 == 0 ? a.lse.m : ms(rng), 1.0 + unit(rng) * 9}, unit(rng) * 5,
                            unit(rng) * 50};
    const RowSums<double> ab = sm::row_sums_merge(a, b), ba = sm::row_sums_merge(b, a);
    expect(ab.lse.m == ba.lse.m && ab.lse.s == ba.lse.s && ab.wsum == ba.wsum && ab.shift == ba.shift,
           "row_sums_merge commutative (bits)", ab.shift, ba.shift, "fp64");
    const RowSums<double> ae = sm::row_sums_merge(a, sm::row_sums_empty<double>());
    const RowSums<double> ea = sm::row_sums_merge(sm::row_sums_empty<double>(), a);
    expect(ae.lse.m == a.lse.m && ae.lse.s == a.lse.s && ae.wsum == a.wsum && ae.shift == a.shift &&
               ea.lse.m == a.lse.m && ea.lse.s == a.lse.s && ea.wsum == a.wsum && ea.shift == a.shift,
           "row_sums_empty is neutral", ae.shift, a.shift, "");
  }
}

// ---- 2. cross-entropy, class index ----

void test_ce_index() {
  std::mt19937_64 rng(2);
  std::normal_distribution<double> normal(0.0, 3.0);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  char ctx[160];
  for (int trial = 0; trial < 160; ++trial) {
    Row r;
    const int n = 1 + static_cast<int>(rng() % 40);
    r.x.resize(n);
    for (double& v : r.x) v = normal(rng);
    r.y = static_cast<int64_t>(rng() % n);
    r.eps = trial % 4 == 0 ? 0.0 : (trial % 4 == 1 ? 1.0 : unit(rng));
    r.z = trial % 3 == 0 ? 0.0 : 0.01 * unit(rng);
    if (trial % 2) {
      r.w.resize(n);
      for (double& v : r.w) v = unit(rng) * 2;
    }
    std::snprintf(ctx, sizeof(ctx), "ce index trial %d n=%d eps=%g z=%g weight=%d", trial, n, r.eps, r.z,
                  int(!r.w.empty()));
    check_row(r, ctx);
  }
  // Known value: C equal logits, no smoothing: log C; C = 1: loss 0 and gradient exactly 0.
  Row r;
  r.x = {0.5, 0.5, 0.5, 0.5};
  std::mt19937_64 rng2(3);
  expect_close("equal logits: log C", kernel_row<double>(r, false, 2, rng2).loss, std::log(4.0), 1e-15, 0, "");
  r.x = {3.0};
  const Eval one = kernel_row<double>(r, true, 1, rng2);
  expect(one.loss == 0.0 && one.grad[0] == 0.0, "C = 1: loss 0, grad 0", one.grad[0], 0.0, "");
}

// ---- 3. cross-entropy, probabilities ----

void test_ce_prob() {
  std::mt19937_64 rng(4);
  std::normal_distribution<double> normal(0.0, 3.0);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  char ctx[160];
  for (int trial = 0; trial < 120; ++trial) {
    Row r;
    const int n = 1 + static_cast<int>(rng() % 40);
    r.x.resize(n);
    r.t.resize(n);
    for (double& v : r.x) v = normal(rng);
    double tsum = 0;
    for (double& v : r.t) tsum += (v = unit(rng));
    if (trial % 2) {
      for (double& v : r.t) v /= tsum;  // rows summing to 1 (and arbitrary soft rows otherwise)
    }
    r.eps = trial % 3 == 0 ? 0.0 : unit(rng);
    r.z = trial % 4 == 0 ? 0.0 : 0.02 * unit(rng);
    if (trial % 5 < 2) {
      r.w.resize(n);
      for (double& v : r.w) v = unit(rng) * 2;
    }
    std::snprintf(ctx, sizeof(ctx), "ce prob trial %d n=%d eps=%g z=%g", trial, n, r.eps, r.z);
    check_row(r, ctx);
  }
}

// ---- 4. focal ----

void test_focal() {
  std::mt19937_64 rng(5);
  std::normal_distribution<double> normal(0.0, 2.0);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  const double gammas[] = {0.0, 0.5, 1.0, 2.0, 3.7};
  char ctx[200];
  for (int trial = 0; trial < 200; ++trial) {
    Row r;
    r.mode = sm::kFocal;
    const int n = 2 + static_cast<int>(rng() % 30);
    r.x.resize(n);
    for (double& v : r.x) v = normal(rng);
    r.y = static_cast<int64_t>(rng() % n);
    r.gamma = gammas[trial % 5];
    r.eps = (trial / 5) % 2 ? 0.0 : unit(rng) * 0.5;
    if ((trial / 10) % 2) {
      r.w.resize(n);
      for (double& v : r.w) v = unit(rng);
    }
    const bool near_one = trial % 7 == 3;  // p_y within ~1e-9 of 1
    if (near_one) r.x[r.y] = 22.0;
    std::snprintf(ctx, sizeof(ctx), "focal trial %d n=%d gamma=%g eps=%g alpha=%d near_one=%d", trial, n, r.gamma,
                  r.eps, int(!r.w.empty()), int(near_one));
    check_row(r, ctx, near_one ? 1e-4 : 1e-6);

    // gamma = 0 without alpha is the cross-entropy (with the same smoothing).
    if (r.gamma == 0.0) {
      Row ce = r;
      ce.mode = sm::kCrossEntropy;
      ce.w.clear();
      Row fo = r;
      fo.w.clear();
      const Eval a = kernel_row<double>(ce, false, 2, rng), b = kernel_row<double>(fo, true, 1, rng);
      expect_close("focal gamma=0 = CE (loss)", b.loss, a.loss, 1e-13, 1e-14, ctx);
      for (int c = 0; c < n; ++c) expect_close("focal gamma=0 = CE (grad)", b.grad[c], a.grad[c], 1e-12, 1e-14, ctx);
    }
  }
  // gamma 0.5 near p = 1, one row checked finely: its gradient is large relative to the loss.
  Row r;
  r.mode = sm::kFocal;
  r.gamma = 0.5;
  r.x = {18.0, 0.0, -1.0, 0.5};
  r.y = 0;
  check_row(r, "focal gamma 0.5, p_y = 1 - 3e-8", 1e-4);
  r.eps = 0.05;
  check_row(r, "focal gamma 0.5, p_y = 1 - 3e-8, smoothing", 1e-4);
}

// ---- 5. huge logits ----

template <typename acc_t>
void check_huge(const Row& r, const char* ctx, double rtol) {
  std::mt19937_64 rng(9);
  const double want = static_cast<double>(direct_loss(r));
  std::vector<double> g_want;
  if (r.mode == sm::kCrossEntropy) {
    for (ld v : direct_ce_grad(r)) g_want.push_back(static_cast<double>(v));
  }
  for (int way = 0; way < 2; ++way) {
    const Eval e = kernel_row<acc_t>(r, way == 1, 3, rng);
    expect(std::isfinite(e.loss), "huge: finite loss", e.loss, want, ctx);
    expect_close("huge: loss", e.loss, want, rtol, rtol, ctx);
    for (size_t c = 0; c < r.x.size(); ++c) {
      expect(std::isfinite(e.grad[c]), "huge: finite grad", e.grad[c], 0, ctx);
      if (!g_want.empty()) expect_close("huge: grad", e.grad[c], g_want[c], rtol, rtol, ctx);
    }
  }
}

void test_huge() {
  std::mt19937_64 rng(6);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  char ctx[160];
  for (int trial = 0; trial < 60; ++trial) {
    Row r;
    const int n = 2 + static_cast<int>(rng() % 30);
    r.x.resize(n);
    for (int i = 0; i < n; ++i) {
      switch (trial % 4) {
        case 0:
          r.x[i] = unit(rng) < 0.5 ? 1e4 : -1e4;
          break;
        case 1:
          r.x[i] = 1e4 + unit(rng);  // all near 1e4: lse - x is small, lse is not
          break;
        case 2:
          r.x[i] = -1e4 - i;
          break;
        default:
          r.x[i] = (unit(rng) - 0.5) * 2e4;
      }
    }
    r.y = static_cast<int64_t>(rng() % n);
    r.mode = trial % 3 == 2 ? sm::kFocal : sm::kCrossEntropy;
    r.eps = trial % 2 ? 0.1 : 0.0;
    r.z = r.mode == sm::kCrossEntropy && trial % 5 == 0 ? 1e-6 : 0.0;
    r.gamma = 2.0;
    if (trial % 6 == 1) {
      r.t.resize(n);
      for (double& v : r.t) v = unit(rng) / n;
      r.mode = sm::kCrossEntropy;
    }
    std::snprintf(ctx, sizeof(ctx), "huge trial %d n=%d mode=%d eps=%g prob=%d", trial, n, int(r.mode), r.eps,
                  int(!r.t.empty()));
    check_huge<double>(r, ctx, 1e-12);
    // fp32, against the direct values of the fp32-rounded row: the split form keeps the row's loss to
    // a few ulp of the loss itself, not of |x| = 1e4 (lse - x in fp32 would lose ~1e-3).
    Row rf = r;
    for (double& v : rf.x) v = static_cast<double>(static_cast<float>(v));
    for (double& v : rf.t) v = static_cast<double>(static_cast<float>(v));
    check_huge<float>(rf, ctx, 3e-6);
  }
}

}  // namespace

int main() {
  const fltest::Group groups[] = {
      {"split sums", test_split_sums},
      {"cross-entropy, class index", test_ce_index},
      {"cross-entropy, probabilities", test_ce_prob},
      {"focal", test_focal},
      {"huge logits", test_huge},
  };
  return fltest::run_groups("test_softmax_math", groups);
}
