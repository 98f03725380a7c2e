// Torch-free unit tests of the per-row math in csrc/multilabel/multilabel_math.h (run by ctest; see
// CMakeLists.txt), against a direct long-double computation of the formulas in its header comment.
// Exits nonzero on any failure and prints a summary.
//
//  1. Order independence: a row summed with lse_add in one sequence, split among "workers" (one from
//     lse_init, the rest from lse_empty) merged in shuffled order, and in two-pass tiles (lse_key,
//     lse_part_max, lse_term, lse_add_part) of random sizes, all give the direct value; lse_merge is
//     commutative bit for bit (the CUDA butterfly relies on it) and lse_empty is its neutral element.
//  2. Dense form: hard and soft labels, -inf entries (absent: the row's value without them, gradient
//     0), all-absent rows; loss and gradient against the direct formulas and central differences.
//     The hard-label forms (dense_terms_hard, dense_grad_hard) equal the general ones on hard labels,
//     +-inf and huge logits included.
//  3. Huge logits (+-1e4, fp32 and fp64): finite, and the direct value.
//  4. Sparse form: duplicated indices, mask_zero with padding zeros, K = 0; the per-class path (as the
//     CUDA kernel runs it) and the cpu kernel's path (weights, then sparse_grad for listed classes)
//     against the direct formulas; hard-label sparse equals dense.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "check.h"
#include "../multilabel/multilabel_math.h"

namespace ml = fusedloss::multilabel;
using ml::Lse;

namespace {

using fltest::expect;
using fltest::expect_close;
using fltest::g_checks;
using fltest::g_failures;

const double kInf = std::numeric_limits<double>::infinity();

// log(1 + sum w e^x) over entries with w > 0 and x > -inf, in long double with a max shift.
long double direct_lse(const std::vector<double>& x, const std::vector<double>& w) {
  long double m = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    if (w[i] > 0 && x[i] != -kInf) m = std::max(m, static_cast<long double>(x[i]));
  }
  long double s = std::exp(-m);
  for (size_t i = 0; i < x.size(); ++i) {
    if (w[i] > 0 && x[i] != -kInf) s += static_cast<long double>(w[i]) * std::exp(static_cast<long double>(x[i]) - m);
  }
  return m + std::log(s);
}

struct Direct {
  double loss;
  std::vector<double> grad;
};

// Both sums from the weights: wn on e^{s}, wp on e^{-s}; d loss / d s_i = wn_i e^{s_i} / (1 + N) -
// wp_i e^{-s_i} / (1 + P).
Direct direct_weighted(const std::vector<double>& s, const std::vector<double>& wn, const std::vector<double>& wp) {
  std::vector<double> neg_s(s.size());
  for (size_t i = 0; i < s.size(); ++i) neg_s[i] = -s[i];
  const long double ln = direct_lse(s, wn), lp = direct_lse(neg_s, wp);
  Direct d;
  d.loss = static_cast<double>(ln + lp);
  d.grad.resize(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    long double g = 0;
    if (s[i] != -kInf && wn[i] > 0) g += wn[i] * std::exp(static_cast<long double>(s[i]) - ln);
    if (s[i] != -kInf && wp[i] > 0) g -= wp[i] * std::exp(-static_cast<long double>(s[i]) - lp);
    d.grad[i] = static_cast<double>(g);
  }
  return d;
}

Direct direct_dense(const std::vector<double>& s, const std::vector<double>& y) {
  std::vector<double> wn(s.size()), wp(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    wn[i] = s[i] == -kInf ? 0.0 : 1.0 - y[i];
    wp[i] = s[i] == -kInf ? 0.0 : y[i];
  }
  return direct_weighted(s, wn, wp);
}

template <typename acc_t>
double dense_loss(const std::vector<double>& s, const std::vector<double>& y, Lse<acc_t>* neg_out = nullptr,
                  Lse<acc_t>* pos_out = nullptr) {
  Lse<acc_t> neg = ml::lse_init<acc_t>(), pos = ml::lse_init<acc_t>();
  for (size_t i = 0; i < s.size(); ++i) ml::dense_accumulate<acc_t>(neg, pos, acc_t(s[i]), acc_t(y[i]));
  if (neg_out != nullptr) *neg_out = neg;
  if (pos_out != nullptr) *pos_out = pos;
  return static_cast<double>(ml::lse_value(neg) + ml::lse_value(pos));
}

// ---- 1. order independence ----

void test_order_independence() {
  std::mt19937_64 rng(1);
  std::normal_distribution<double> normal(0.0, 4.0);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  char ctx[160];
  for (int trial = 0; trial < 200; ++trial) {
    const int n = 1 + static_cast<int>(rng() % 300);
    std::vector<double> x(n), w(n);
    for (int i = 0; i < n; ++i) {
      x[i] = normal(rng) + (trial % 4 == 0 ? 40.0 : 0.0);
      const double u = unit(rng);
      w[i] = u < 0.2 ? 0.0 : (u < 0.3 ? -0.5 : unit(rng));
      if (unit(rng) < 0.05) x[i] = -kInf;
    }
    const double want = static_cast<double>(direct_lse(x, w));
    std::snprintf(ctx, sizeof(ctx), "trial %d n=%d", trial, n);

    Lse<double> seq = ml::lse_init<double>();
    for (int i = 0; i < n; ++i) ml::lse_add(seq, x[i], w[i]);
    expect_close("sequential lse_add", ml::lse_value(seq), want, 1e-13, 1e-13, ctx);
    expect(seq.m >= 0.0, "m >= 0", seq.m, 0.0, ctx);

    // Workers: contiguous or strided parts, merged in shuffled order.
    const int workers = 1 + static_cast<int>(rng() % 9);
    std::vector<Lse<double>> parts(workers);
    for (int k = 0; k < workers; ++k) parts[k] = k == 0 ? ml::lse_init<double>() : ml::lse_empty<double>();
    const bool strided = trial % 2 == 0;
    for (int i = 0; i < n; ++i) ml::lse_add(parts[strided ? i % workers : (i * workers) / n], x[i], w[i]);
    std::shuffle(parts.begin(), parts.end(), rng);
    Lse<double> merged = parts[0];
    for (int k = 1; k < workers; ++k) merged = ml::lse_merge(parts[k], merged);
    expect_close("merged workers", ml::lse_value(merged), want, 1e-13, 1e-13, ctx);

    // Two-pass tiles of random sizes, in double and float.
    Lse<double> tiled = ml::lse_init<double>();
    Lse<float> tiled_f = ml::lse_init<float>();
    for (int i0 = 0; i0 < n;) {
      const int len = std::min(n - i0, 1 + static_cast<int>(rng() % 64));
      double key = -kInf;
      float key_f = -INFINITY;
      for (int i = i0; i < i0 + len; ++i) {
        key = std::max(key, ml::lse_key(x[i], w[i]));
        key_f = std::max(key_f, ml::lse_key(float(x[i]), float(w[i])));
      }
      const double m = ml::lse_part_max(tiled, key);
      const float m_f = ml::lse_part_max(tiled_f, key_f);
      double sum = 0;
      float sum_f = 0;
      for (int i = i0; i < i0 + len; ++i) {
        sum += ml::lse_term(x[i], w[i], m);
        sum_f += ml::lse_term(float(x[i]), float(w[i]), m_f);
      }
      ml::lse_add_part(tiled, m, sum);
      ml::lse_add_part(tiled_f, m_f, sum_f);
      i0 += len;
    }
    expect_close("two-pass tiles", ml::lse_value(tiled), want, 1e-13, 1e-13, ctx);
    expect_close("two-pass tiles (fp32)", ml::lse_value(tiled_f), want, 2e-6, 2e-6, ctx);
  }

  // Commutativity, bit for bit, and the neutral element.
  std::uniform_real_distribution<double> ms(0.0, 30.0);
  for (int trial = 0; trial < 1000; ++trial) {
    const Lse<double> a{ms(rng), 0.5 + ms(rng)};
    const Lse<double> b{trial % 3 == 0 ? a.m : ms(rng), 0.5 + ms(rng)};
    const Lse<double> ab = ml::lse_merge(a, b), ba = ml::lse_merge(b, a);
    expect(std::memcmp(&ab, &ba, sizeof(ab)) == 0, "lse_merge commutative (bits)", ab.s, ba.s, "fp64");
    const Lse<float> af{float(a.m), float(a.s)}, bf{float(b.m), float(b.s)};
    const Lse<float> abf = ml::lse_merge(af, bf), baf = ml::lse_merge(bf, af);
    expect(std::memcmp(&abf, &baf, sizeof(abf)) == 0, "lse_merge commutative (bits)", abf.s, baf.s, "fp32");
    const Lse<double> ae = ml::lse_merge(a, ml::lse_empty<double>()), ea = ml::lse_merge(ml::lse_empty<double>(), a);
    expect(ae.m == a.m && ae.s == a.s && ea.m == a.m && ea.s == a.s, "lse_empty is neutral", ae.s, a.s, "");
  }
  const Lse<double> ee = ml::lse_merge(ml::lse_empty<double>(), ml::lse_empty<double>());
  expect(ee.m == -INFINITY && ee.s == 0.0, "empty + empty", ee.s, 0.0, "");
  expect(ml::lse_value(ml::lse_init<double>()) == 0.0, "empty sum: log 1", ml::lse_value(ml::lse_init<double>()),
         0.0, "");
}

// ---- 2. dense form ----

void check_dense_row(const std::vector<double>& s, const std::vector<double>& y, const char* ctx) {
  const Direct d = direct_dense(s, y);
  Lse<double> neg, pos;
  const double loss = dense_loss<double>(s, y, &neg, &pos);
  expect_close("dense loss", loss, d.loss, 1e-13, 1e-13, ctx);
  for (size_t i = 0; i < s.size(); ++i) {
    const double g = ml::dense_grad(neg, pos, s[i], y[i]);
    expect_close("dense grad", g, d.grad[i], 1e-12, 1e-15, ctx);
    if (s[i] == -kInf) expect(g == 0.0, "absent entry: grad 0", g, 0.0, ctx);
  }
  // Central differences on the finite entries.
  const double h = 1e-5;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -kInf) continue;
    std::vector<double> sp = s, sm = s;
    sp[i] += h;
    sm[i] -= h;
    const double fd = (dense_loss<double>(sp, y) - dense_loss<double>(sm, y)) / (2 * h);
    expect_close("dense grad vs finite difference", ml::dense_grad(neg, pos, s[i], y[i]), fd, 1e-6,
                 1e-9 + 1e-10 * std::fabs(loss) / h, ctx);
  }
  // fp32 against the same direct value.
  Lse<float> nf, pf;
  const double loss_f = dense_loss<float>(s, y, &nf, &pf);
  expect_close("dense loss (fp32)", loss_f, d.loss, 3e-6, 3e-6, ctx);
  for (size_t i = 0; i < s.size(); ++i) {
    expect_close("dense grad (fp32)", ml::dense_grad(nf, pf, float(s[i]), float(y[i])), d.grad[i], 2e-5, 1e-7,
                 ctx);
  }
}

void test_dense() {
  std::mt19937_64 rng(2);
  std::normal_distribution<double> normal(0.0, 3.0);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  char ctx[128];
  for (int trial = 0; trial < 120; ++trial) {
    const int n = 1 + static_cast<int>(rng() % 40);
    const bool soft = trial % 3 == 1, with_inf = trial % 3 == 2;
    std::vector<double> s(n), y(n);
    for (int i = 0; i < n; ++i) {
      s[i] = normal(rng);
      y[i] = soft ? unit(rng) : (unit(rng) < 0.3 ? 1.0 : 0.0);
      if (with_inf && unit(rng) < 0.3) s[i] = -kInf;
    }
    std::snprintf(ctx, sizeof(ctx), "trial %d n=%d soft=%d inf=%d", trial, n, soft, with_inf);
    check_dense_row(s, y, ctx);
    if (with_inf) {  // the row without its absent entries has the same loss
      std::vector<double> s2, y2;
      for (int i = 0; i < n; ++i) {
        if (s[i] != -kInf) {
          s2.push_back(s[i]);
          y2.push_back(y[i]);
        }
      }
      expect_close("-inf entries are absent", dense_loss<double>(s, y), dense_loss<double>(s2, y2), 1e-14, 1e-15,
                   ctx);
    }
  }
  // Known values: one class, s = 0: log 2 (y = 0 or 1) and, with y = 0.5, 2 log 1.5.
  expect_close("s=0 y=1", dense_loss<double>({0.0}, {1.0}), std::log(2.0), 1e-15, 0, "");
  expect_close("s=0 y=0.5", dense_loss<double>({0.0}, {0.5}), 2 * std::log(1.5), 1e-15, 0, "");
  // All entries absent: loss 0, gradient 0 (also with labels 1).
  Lse<double> neg, pos;
  expect(dense_loss<double>({-kInf, -kInf}, {1.0, 0.0}, &neg, &pos) == 0.0, "all absent: loss 0", 0, 0, "");
  expect(ml::dense_grad(neg, pos, -kInf, 1.0) == 0.0, "all absent: grad 0", 0, 0, "");
}

// The hard-label forms (one exp) against the general ones, on hard labels: the same terms bit for bit,
// the same gradient but for the sign of a zero.
template <typename acc_t>
void test_hard_forms_t(const char* name) {
  std::mt19937_64 rng(5);
  std::normal_distribution<double> normal(0.0, 5.0);
  const acc_t inf = std::numeric_limits<acc_t>::infinity();
  const acc_t specials[] = {-inf, inf, acc_t(0), acc_t(-0.0), acc_t(1e4), acc_t(-1e4), acc_t(88), acc_t(-88)};
  const acc_t labels[] = {acc_t(0), acc_t(1), acc_t(-1), acc_t(2), acc_t(1.5), acc_t(-0.0)};
  char ctx[128];
  for (int trial = 0; trial < 3000; ++trial) {
    const acc_t s = trial < 8 * 6 ? specials[trial / 6] : acc_t(normal(rng));
    const acc_t y = labels[trial % 6];
    const Lse<acc_t> neg{acc_t(std::fabs(normal(rng))), acc_t(1.5 + std::fabs(normal(rng)))};
    const Lse<acc_t> pos{acc_t(std::fabs(normal(rng))), acc_t(1.5 + std::fabs(normal(rng)))};
    // Maxima that bound the entry as the kernels' are (m >= every present exponent).
    const acc_t mn = std::max(neg.m, ml::lse_key(s, ml::dense_neg_weight(s, y)));
    const acc_t mp = std::max(pos.m, ml::lse_key(-s, ml::dense_pos_weight(s, y)));
    std::snprintf(ctx, sizeof(ctx), "%s s=%g y=%g", name, double(s), double(y));
    expect(ml::dense_label_is_hard(y), "label is hard", double(y), 0, ctx);
    const ml::DenseTerms<acc_t> t = ml::dense_terms_hard(s, y, mn, mp);
    const acc_t tn = ml::lse_term(s, ml::dense_neg_weight(s, y), mn);
    const acc_t tp = ml::lse_term(-s, ml::dense_pos_weight(s, y), mp);
    expect(std::memcmp(&t.neg, &tn, sizeof(acc_t)) == 0 || (std::isnan(t.neg) && std::isnan(tn)),
           "dense_terms_hard neg", double(t.neg), double(tn), ctx);
    expect(std::memcmp(&t.pos, &tp, sizeof(acc_t)) == 0 || (std::isnan(t.pos) && std::isnan(tp)),
           "dense_terms_hard pos", double(t.pos), double(tp), ctx);
    const acc_t gh = ml::dense_grad_hard(neg, pos, s, y), g = ml::dense_grad(neg, pos, s, y);
    expect(gh == g || (std::isnan(gh) && std::isnan(g)), "dense_grad_hard", double(gh), double(g), ctx);
  }
  for (const acc_t y : {acc_t(0.5), acc_t(1e-6), acc_t(0.999)}) {
    expect(!ml::dense_label_is_hard(y), "soft label", double(y), 0, name);
  }
}

void test_hard_forms() {
  test_hard_forms_t<double>("fp64");
  test_hard_forms_t<float>("fp32");
}

// ---- 3. huge logits ----

void test_huge() {
  char ctx[128];
  const std::vector<std::vector<double>> rows = {
      {1e4, -1e4, 3.0, -2.0, 1e4 - 1.0}, {-1e4, -1e4, -1e4}, {1e4, 1e4, 1e4}, {-1e4, 1e4, 0.0, -kInf}};
  const std::vector<std::vector<double>> labels = {
      {0.0, 1.0, 1.0, 0.0, 0.0}, {1.0, 0.0, 1.0}, {0.0, 1.0, 0.5}, {0.0, 1.0, 0.3, 1.0}};
  for (size_t r = 0; r < rows.size(); ++r) {
    std::snprintf(ctx, sizeof(ctx), "huge row %zu", r);
    const Direct d = direct_dense(rows[r], labels[r]);
    Lse<double> nd, pd;
    Lse<float> nf, pf;
    const double ld = dense_loss<double>(rows[r], labels[r], &nd, &pd);
    const double lf = dense_loss<float>(rows[r], labels[r], &nf, &pf);
    expect(std::isfinite(ld) && std::isfinite(lf), "finite loss", lf, d.loss, ctx);
    expect_close("huge loss (fp64)", ld, d.loss, 1e-14, 1e-12, ctx);
    expect_close("huge loss (fp32)", lf, d.loss, 1e-6, 1e-3, ctx);
    for (size_t i = 0; i < rows[r].size(); ++i) {
      const double gd = ml::dense_grad(nd, pd, rows[r][i], labels[r][i]);
      const double gf = ml::dense_grad(nf, pf, float(rows[r][i]), float(labels[r][i]));
      expect(std::isfinite(gd) && std::isfinite(gf) && std::fabs(gf) <= 1.0, "finite grad", gf, d.grad[i], ctx);
      expect_close("huge grad (fp64)", gd, d.grad[i], 1e-12, 1e-15, ctx);
      expect_close("huge grad (fp32)", gf, d.grad[i], 1e-5, 1e-7, ctx);
    }
  }
}

// ---- 4. sparse form ----

struct SparseRow {
  std::vector<double> s;
  std::vector<int64_t> idx;  // sorted
  bool mask_zero;
};

bool is_positive(const SparseRow& r, int64_t v) {
  return v >= 0 && v < static_cast<int64_t>(r.s.size()) && !(r.mask_zero && v == 0);
}

std::vector<int64_t> counts(const SparseRow& r) {
  std::vector<int64_t> c(r.s.size(), 0);
  for (const int64_t v : r.idx) {
    if (is_positive(r, v)) ++c[static_cast<size_t>(v)];
  }
  return c;
}

Direct direct_sparse(const SparseRow& r) {
  const std::vector<int64_t> c = counts(r);
  std::vector<double> wn(r.s.size()), wp(r.s.size());
  for (size_t i = 0; i < r.s.size(); ++i) {
    const bool masked = r.mask_zero && i == 0;
    wn[i] = (!masked && c[i] == 0) ? 1.0 : 0.0;
    wp[i] = masked ? 0.0 : static_cast<double>(c[i]);
  }
  return direct_weighted(r.s, wn, wp);
}

template <typename acc_t>
void check_sparse_row(const SparseRow& r, const char* ctx, double rtol) {
  const Direct d = direct_sparse(r);
  const std::vector<int64_t> c = counts(r);
  const size_t n = r.s.size();
  // Per class, as the CUDA kernel.
  Lse<acc_t> neg = ml::lse_init<acc_t>(), pos = ml::lse_init<acc_t>();
  for (const int64_t v : r.idx) {
    if (is_positive(r, v)) ml::sparse_accumulate_positive(pos, acc_t(r.s[static_cast<size_t>(v)]));
  }
  for (size_t i = 0; i < n; ++i) ml::sparse_accumulate_negative(neg, acc_t(r.s[i]), c[i], r.mask_zero && i == 0);
  expect_close("sparse loss", static_cast<double>(ml::lse_value(neg) + ml::lse_value(pos)), d.loss, rtol, rtol, ctx);
  // As the cpu kernel: two-pass with the negative weights, then the shares and sparse_grad for listed.
  Lse<acc_t> neg2 = ml::lse_init<acc_t>();
  acc_t key = -INFINITY;
  for (size_t i = 0; i < n; ++i) {
    key = std::max(key, ml::lse_key(acc_t(r.s[i]), ml::sparse_neg_weight<acc_t>(c[i], r.mask_zero && i == 0)));
  }
  const acc_t m = ml::lse_part_max(neg2, key);
  acc_t sum = 0;
  for (size_t i = 0; i < n; ++i) {
    sum += ml::lse_term(acc_t(r.s[i]), ml::sparse_neg_weight<acc_t>(c[i], r.mask_zero && i == 0), m);
  }
  ml::lse_add_part(neg2, m, sum);
  expect_close("sparse negative sum, two-pass", ml::lse_value(neg2), ml::lse_value(neg), rtol, rtol, ctx);
  for (size_t i = 0; i < n; ++i) {
    const bool masked = r.mask_zero && i == 0;
    const double g = static_cast<double>(ml::sparse_grad(neg, pos, acc_t(r.s[i]), c[i], masked));
    expect_close("sparse grad", g, d.grad[i], rtol, 1e-15, ctx);
    if (masked) expect(g == 0.0, "masked class: grad 0", g, 0.0, ctx);
    const acc_t share = ml::lse_share(neg, acc_t(r.s[i]), ml::sparse_neg_weight<acc_t>(c[i], masked));
    if (c[i] == 0) expect(static_cast<double>(share) == g, "unlisted: the negative share", share, g, ctx);
    else expect(share == acc_t(0), "listed: no negative share", share, 0.0, ctx);
  }
}

void test_sparse() {
  std::mt19937_64 rng(3);
  std::normal_distribution<double> normal(0.0, 3.0);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  char ctx[128];
  for (int trial = 0; trial < 300; ++trial) {
    SparseRow r;
    const int n = 1 + static_cast<int>(rng() % 30);
    const int k = static_cast<int>(rng() % 12);
    r.mask_zero = trial % 2 == 1;
    r.s.resize(n);
    for (int i = 0; i < n; ++i) r.s[i] = normal(rng) * (trial % 10 == 0 ? 3000.0 : 1.0);
    for (int j = 0; j < k; ++j) {
      const double u = unit(rng);
      // Duplicates, padding zeros and (skipped) out-of-range values.
      r.idx.push_back(u < 0.2 ? 0 : (u < 0.25 ? -3 : (u < 0.3 ? n + 2 : static_cast<int64_t>(rng() % n))));
      if (unit(rng) < 0.2 && j + 1 < k) {
        r.idx.push_back(r.idx.back());
        ++j;
      }
    }
    std::sort(r.idx.begin(), r.idx.end());
    std::snprintf(ctx, sizeof(ctx), "trial %d n=%d k=%d mask_zero=%d", trial, n, k, r.mask_zero);
    check_sparse_row<double>(r, ctx, 1e-12);
    check_sparse_row<float>(r, ctx, 2e-5);
  }
  // Hard labels without duplicates or masking: the sparse form is the dense form.
  for (int trial = 0; trial < 50; ++trial) {
    SparseRow r;
    const int n = 1 + static_cast<int>(rng() % 20);
    r.mask_zero = false;
    r.s.resize(n);
    std::vector<double> y(n, 0.0);
    for (int i = 0; i < n; ++i) {
      r.s[i] = normal(rng);
      if (unit(rng) < 0.3) {
        y[i] = 1.0;
        r.idx.push_back(i);
      }
    }
    std::snprintf(ctx, sizeof(ctx), "sparse = dense, trial %d", trial);
    expect_close("sparse = dense loss", direct_sparse(r).loss, dense_loss<double>(r.s, y), 1e-13, 1e-14, ctx);
  }
  // Known values: class 0 masked, one positive at s = 0 listed twice, one negative at s = 0.
  SparseRow r{{5.0, 0.0, 0.0}, {0, 1, 1}, true};
  expect_close("known sparse", direct_sparse(r).loss, std::log(3.0) + std::log(2.0), 1e-15, 0, "");
  check_sparse_row<double>(r, "known sparse", 1e-14);
}

}  // namespace

int main() {
  const fltest::Group groups[] = {
      {"order independence", test_order_independence},
      {"dense (soft, -inf)", test_dense},
      {"hard-label forms", test_hard_forms},
      {"huge logits", test_huge},
      {"sparse (dup, mask_zero)", test_sparse},
  };
  return fltest::run_groups("test_multilabel_math", groups);
}
