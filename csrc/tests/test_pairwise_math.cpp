// Torch-free unit tests of the per-pair math and the OHEM key helpers in
// csrc/pairwise/pairwise_math.h (run by ctest; see CMakeLists.txt). Exits nonzero on any failure and
// prints a summary.
//
//  1. pair_eval against an independent transcription of spec section 3 (loss, v, validity), and its
//     d loss / d s_i, d loss / d s_j against central finite differences, in double, for every kind x
//     every flag combination x temperatures {1, 0.5, 2.3} x weights {1, 0.7, -1.3, 0} x scores (with
//     EasyRec's focal clip active at |d| > ~16.1) x label pairs (binary, graded, invalid, equal),
//     focal gamma {0, 1, 2, 1.7} x alpha {none, 0.25}, hinge margins (focal: the filter d < h).
//  2. Known values, and the label transform.
//  3. OHEM keys: ohem_key_bits is order-preserving over negative, zero and positive floats (with
//     infinities and denormals); selecting with ohem_selected and K* = the k-th largest key of a
//     random set (many equal losses) gives exactly the top-k set, for every k; a radix select by 9
//     histogram passes (ohem_prefix_match / ohem_digit), as the cpu/cuda/triton kernels and the Python
//     driver run it, finds K* exactly; the digits tile each 32-bit word.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "check.h"
#include "../pairwise/pairwise_math.h"

namespace pw = fusedloss::pairwise;
using pw::PairOut;
using pw::Params;

namespace {

using fltest::expect;
using fltest::expect_close;
using fltest::g_checks;
using fltest::g_failures;

const char* kind_name(int64_t kind) {
  switch (kind) {
    case pw::kPairWise:
      return "pair_wise";
    case pw::kLogistic:
      return "logistic";
    case pw::kFocal:
      return "focal";
    default:
      return "hinge";
  }
}

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
double softplus(double x) { return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x)); }

struct Ref {
  bool valid;
  double loss, v;
};

// Spec section 3, written from the spec (not from pairwise_math.h): raw scores and raw labels in.
Ref reference(const Params<double>& prm, double s_i, double s_j, double y_i, double y_j, double w_i) {
  const double T = 1.0 / prm.inv_temperature;
  const int64_t f = prm.flags;
  Ref r{};
  if (prm.kind == pw::kHinge) {
    double yi = (f & pw::kLabelIsLogits) ? y_i / T : y_i, yj = (f & pw::kLabelIsLogits) ? y_j / T : y_j;
    double si = s_i / T, sj = s_j / T;
    if (f & pw::kUseExponent) {  // the intended formula (spec 3.4 BUG note): sigmoid of both
      yi = sigmoid(yi);
      yj = sigmoid(yj);
      si = sigmoid(si);
      sj = sigmoid(sj);
    }
    r.valid = yi > yj;
    const double delta = ((f & pw::kUseLabelMargin) ? (yi - yj) : prm.margin) - (si - sj);
    const double l = (f & pw::kUseExponent) ? std::max(std::exp(std::min(88.0, std::max(-88.0, delta))) - 1.0, 0.0)
                                            : std::max(delta, 0.0);
    r.loss = w_i * l;
    r.v = w_i;
    return r;
  }
  const double d = (s_i - s_j) / T;
  if (prm.kind == pw::kFocal) {
    r.valid = y_i > y_j && (!(f & pw::kHasHingeMargin) || d < prm.hinge_margin);
    // 1 - p with p clipped to [1e-7, 1 - 1e-7], taken as clip(sigmoid(-d)) as focal_math.h does (TF
    // computes 1 - clip(p), which differs in the last bits where the clip is active).
    const double q = std::min(std::max(sigmoid(-d), 1e-7), 1.0 - 1e-7);
    const double a = prm.alpha >= 0 ? prm.alpha : 1.0;
    r.v = w_i * a * (prm.gamma == 0 ? 1.0 : std::pow(q, prm.gamma));
    r.loss = r.v * softplus(-d);
    return r;
  }
  double u = d;
  if (prm.kind == pw::kPairWise) {
    u = d - prm.margin;
    r.valid = y_i > y_j;
  } else {  // logistic: labels divided by T only with use_label_margin
    const double yi = (f & pw::kUseLabelMargin) ? y_i / T : y_i, yj = (f & pw::kUseLabelMargin) ? y_j / T : y_j;
    r.valid = yi > yj;
    if (f & pw::kUseLabelMargin) {
      u = d - (yi - yj);
    } else if (f & pw::kHasHingeMargin) {
      u = d - prm.hinge_margin;
    }
  }
  r.loss = w_i * softplus(-u);
  r.v = w_i;
  return r;
}

PairOut<double> eval(const Params<double>& prm, double s_i, double s_j, double y_i, double y_j, double w_i) {
  return pw::pair_eval<double>(s_i, s_j, pw::transform_label<double>(y_i, prm),
                               pw::transform_label<double>(y_j, prm), w_i, prm);
}

// Distance of the pair from the nearest kink of its loss, in the loss's own variable (so that a
// finite difference never straddles one): relu at delta = 0 and the clip at +-88 (hinge); EasyRec's
// probability clip at |d| = logit(1 - 1e-7) (focal).
double kink_distance(const Params<double>& prm, double s_i, double s_j, double y_i, double y_j) {
  const double T = 1.0 / prm.inv_temperature;
  const int64_t f = prm.flags;
  if (prm.kind == pw::kHinge) {
    double yi = (f & pw::kLabelIsLogits) ? y_i / T : y_i, yj = (f & pw::kLabelIsLogits) ? y_j / T : y_j;
    double si = s_i / T, sj = s_j / T;
    if (f & pw::kUseExponent) {
      yi = sigmoid(yi);
      yj = sigmoid(yj);
      si = sigmoid(si);
      sj = sigmoid(sj);
    }
    const double delta = ((f & pw::kUseLabelMargin) ? (yi - yj) : prm.margin) - (si - sj);
    return std::min({std::fabs(delta), std::fabs(delta - 88.0), std::fabs(delta + 88.0)});
  }
  if (prm.kind == pw::kFocal) {
    const double d = (s_i - s_j) / T;
    return std::fabs(std::fabs(d) - std::log((1.0 - 1e-7) / 1e-7));
  }
  return std::numeric_limits<double>::infinity();
}

void test_pair_eval() {
  const double scores[] = {-20.0, -3.0, -0.7, 0.0, 0.4, 2.5, 21.0};
  struct Labels {
    double yi, yj;
  };
  const Labels labels[] = {{1.0, 0.0}, {3.0, 1.0}, {0.5, 0.2}, {0.0, 1.0}, {1.0, 1.0}, {-0.4, -2.0}};
  const double temps[] = {1.0, 0.5, 2.3};
  const double weights[] = {1.0, 0.7, -1.3, 0.0};
  char ctx[256];
  int fd_checked = 0;
  for (int64_t kind = pw::kPairWise; kind <= pw::kHinge; ++kind) {
    for (int64_t flags = 0; flags < 16; ++flags) {
      for (const double T : temps) {
        for (const double gamma : {0.0, 1.0, 2.0, 1.7}) {
          if (kind != pw::kFocal && gamma != 2.0) continue;  // gamma, alpha: focal only
          for (const double alpha : {-1.0, 0.25}) {
            if (kind != pw::kFocal && alpha != -1.0) continue;
            for (const double hm : {0.8, -0.5}) {
              Params<double> prm;
              prm.kind = kind;
              prm.flags = flags;
              prm.inv_temperature = 1.0 / T;
              prm.margin = kind == pw::kHinge ? 1.0 : 0.3;
              prm.hinge_margin = hm;
              prm.gamma = gamma;
              prm.alpha = alpha;
              for (const Labels lab : labels)
                for (const double w : weights)
                  for (const double si : scores)
                    for (const double sj : scores) {
                      std::snprintf(ctx, sizeof(ctx),
                                    "%s flags=%lld T=%g gamma=%g alpha=%g hm=%g y=(%g,%g) w=%g s=(%g,%g)",
                                    kind_name(kind), static_cast<long long>(flags), T, gamma, alpha, hm, lab.yi,
                                    lab.yj, w, si, sj);
                      const PairOut<double> o = eval(prm, si, sj, lab.yi, lab.yj, w);
                      const Ref r = reference(prm, si, sj, lab.yi, lab.yj, w);
                      expect(o.valid == r.valid, "valid", o.valid, r.valid, ctx);
                      expect_close("loss vs spec", o.loss, r.loss, 1e-12, 1e-300, ctx);
                      expect_close("v vs spec", o.v, r.v, 1e-12, 1e-300, ctx);
                      expect(std::isfinite(o.loss) && std::isfinite(o.ds_i) && std::isfinite(o.ds_j), "finite",
                             o.loss, 0.0, ctx);
                      if (!o.valid) continue;
                      // Finite differences in s_i and s_j.
                      const double h = 1e-6 * std::max(1.0, std::max(std::fabs(si), std::fabs(sj)));
                      if (kink_distance(prm, si, sj, lab.yi, lab.yj) < 1e-3) continue;
                      const double fi = (eval(prm, si + h, sj, lab.yi, lab.yj, w).loss -
                                         eval(prm, si - h, sj, lab.yi, lab.yj, w).loss) / (2 * h);
                      const double fj = (eval(prm, si, sj + h, lab.yi, lab.yj, w).loss -
                                         eval(prm, si, sj - h, lab.yi, lab.yj, w).loss) / (2 * h);
                      // O(h^2 f''') truncation + O(ulp(loss) / h) rounding.
                      const double atol = 1e-8 + 1e-10 * std::fabs(o.loss) / h;
                      expect_close("ds_i vs finite difference", o.ds_i, fi, 1e-6, atol, ctx);
                      expect_close("ds_j vs finite difference", o.ds_j, fj, 1e-6, atol, ctx);
                      if (kind != pw::kHinge || !(flags & pw::kUseExponent)) {
                        expect(o.ds_j == -o.ds_i, "ds_j == -ds_i", o.ds_j, -o.ds_i, ctx);
                      }
                      ++fd_checked;
                    }
            }
          }
        }
      }
    }
  }
  expect(fd_checked > 20000, "enough finite-difference points", fd_checked, 20000, "count");
}

void test_known_values() {
  const double log2 = std::log(2.0);
  Params<double> prm{pw::kPairWise, 0, 1.0, 0.0, 0.0, 2.0, -1.0};
  // pair_wise, equal scores, margin 0: softplus(0) = log 2, d/ds_i = sigmoid(0) - 1 = -0.5.
  PairOut<double> o = eval(prm, 0.3, 0.3, 1.0, 0.0, 1.0);
  expect_close("pair_wise(0)", o.loss, log2, 1e-15, 0, "s_i = s_j");
  expect_close("dpair_wise(0)", o.ds_i, -0.5, 1e-15, 0, "s_i = s_j");
  // Temperature 0.5 doubles the gradient; the margin is not divided by T.
  prm.inv_temperature = 2.0;
  prm.margin = 0.4;
  o = eval(prm, 0.7, 0.5, 1.0, 0.0, 2.0);  // d = 0.4, u = 0
  expect_close("pair_wise margin, T", o.loss, 2.0 * log2, 1e-15, 0, "u = 0");
  expect_close("dpair_wise margin, T", o.ds_i, 2.0 * -0.5 * 2.0, 1e-15, 0, "u = 0");
  // logistic with use_label_margin: labels / T too; y = (2, 1), T = 1, equal scores: softplus(1).
  prm = Params<double>{pw::kLogistic, pw::kUseLabelMargin | pw::kHasHingeMargin, 1.0, 0.0, 5.0, 2.0, -1.0};
  o = eval(prm, 0.0, 0.0, 2.0, 1.0, 1.0);
  expect_close("logistic label margin", o.loss, std::log1p(std::exp(1.0)), 1e-15, 0, "overrides hinge");
  // logistic hinge_margin is a shift inside the softplus: loss > 0 beyond the margin.
  prm.flags = pw::kHasHingeMargin;
  prm.hinge_margin = 1.0;
  o = eval(prm, 3.0, 0.0, 1.0, 0.0, 1.0);
  expect_close("logistic hinge shift", o.loss, softplus(-2.0), 1e-15, 0, "u = 2");
  // focal, gamma 2, alpha 0.25, d = 0: 0.25 * 0.25 * log 2; v = 0.0625.
  prm = Params<double>{pw::kFocal, 0, 1.0, 0.0, 0.0, 2.0, 0.25};
  o = eval(prm, 1.0, 1.0, 1.0, 0.0, 1.0);
  expect_close("focal(0)", o.loss, 0.0625 * log2, 1e-15, 0, "d = 0");
  expect_close("v focal(0)", o.v, 0.0625, 1e-15, 0, "d = 0");
  // d/dd of a (1-p)^2 softplus(-d) at 0: a [-2 (1-p) p softplus + (1-p)^2 (p - 1)] = a [-0.25 log2 - 0.125]
  expect_close("dfocal(0)", o.ds_i, 0.25 * (-0.25 * log2 - 0.125), 1e-15, 0, "d = 0");
  // focal hinge filter: d >= h is not a pair (removed, not a zero).
  prm.flags = pw::kHasHingeMargin;
  prm.hinge_margin = 0.5;
  expect(!eval(prm, 0.5, 0.0, 1.0, 0.0, 1.0).valid, "focal filter d = h", 0, 0, "d = h");
  expect(eval(prm, 0.49, 0.0, 1.0, 0.0, 1.0).valid, "focal filter d < h", 0, 0, "d < h");
  // hinge defaults (use_label_margin, label_is_logits), T = 1, binary labels: margin-1 hinge.
  prm = Params<double>{pw::kHinge, pw::kUseLabelMargin | pw::kLabelIsLogits, 1.0, 1.0, 0.0, 2.0, -1.0};
  o = eval(prm, 0.3, 0.1, 1.0, 0.0, 1.0);
  expect_close("hinge", o.loss, 0.8, 1e-15, 0, "delta = 0.8");
  expect(o.ds_i == -1.0 && o.ds_j == 1.0, "dhinge", o.ds_i, -1.0, "delta = 0.8");
  o = eval(prm, 2.0, 0.1, 1.0, 0.0, 1.0);
  expect(o.valid && o.loss == 0.0 && o.ds_i == 0.0 && o.v == 1.0, "hinge zero loss still counts", o.loss, 0,
         "delta < 0");
  // T = 0.5 with label_is_logits: effective margin 1/T in the scaled space.
  prm.inv_temperature = 2.0;
  o = eval(prm, 0.0, 0.0, 1.0, 0.0, 1.0);
  expect_close("hinge T", o.loss, 2.0, 1e-15, 0, "labels / T");
  // Label transform.
  prm = Params<double>{pw::kHinge, pw::kLabelIsLogits | pw::kUseExponent, 0.5, 1.0, 0.0, 2.0, -1.0};
  expect_close("transform hinge", pw::transform_label(1.0, prm), sigmoid(0.5), 1e-15, 0, "sigmoid(y / T)");
  prm.flags = pw::kUseExponent;
  expect_close("transform hinge no logits", pw::transform_label(1.0, prm), sigmoid(1.0), 1e-15, 0, "sigmoid(y)");
  prm = Params<double>{pw::kLogistic, pw::kUseLabelMargin, 0.5, 0.0, 0.0, 2.0, -1.0};
  expect_close("transform logistic", pw::transform_label(3.0, prm), 1.5, 0, 0, "y / T");
  prm.flags = 0;
  expect_close("transform logistic no margin", pw::transform_label(3.0, prm), 3.0, 0, 0, "y");
  prm.kind = pw::kFocal;
  prm.flags = 15;
  expect_close("transform focal", pw::transform_label(3.0, prm), 3.0, 0, 0, "y");
}

// ---- OHEM keys --------------------------------------------------------------------------------

using Key = std::array<uint32_t, 3>;

Key make_key(float loss, int64_t oi, int64_t oj) {
  Key k;
  pw::ohem_key(loss, oi, oj, k.data());
  return k;
}

void test_key_bits_order() {
  const float inf = std::numeric_limits<float>::infinity();
  const float den = std::numeric_limits<float>::denorm_min();
  const float ordered[] = {-inf, -3e38f, -1e30f, -2.5f, -1.0f, -1e-30f, -1e-39f, -den, -0.0f,
                           0.0f, den,    1e-39f, 1e-30f, 1.0f, 2.5f,   1e30f,  3e38f, inf};
  const int n = static_cast<int>(sizeof(ordered) / sizeof(ordered[0]));
  char ctx[96];
  for (int a = 0; a + 1 < n; ++a) {
    std::snprintf(ctx, sizeof(ctx), "%g < %g", ordered[a], ordered[a + 1]);
    expect(pw::ohem_key_bits(ordered[a]) < pw::ohem_key_bits(ordered[a + 1]), "key bits increasing",
           pw::ohem_key_bits(ordered[a]), pw::ohem_key_bits(ordered[a + 1]), ctx);
  }
  // Random floats: key order == float order (ties: equal keys, except -0 < +0).
  std::mt19937 rng(123);
  std::uniform_int_distribution<uint32_t> bits;
  for (int t = 0; t < 200000; ++t) {
    uint32_t ba = bits(rng), bb = bits(rng);
    float a, b;
    std::memcpy(&a, &ba, 4);
    std::memcpy(&b, &bb, 4);
    if (std::isnan(a) || std::isnan(b)) continue;
    const uint32_t ka = pw::ohem_key_bits(a), kb = pw::ohem_key_bits(b);
    const bool ok = (a < b) ? ka < kb : (a > b ? ka > kb : (ka == kb || (a == 0.0f && b == 0.0f)));
    std::snprintf(ctx, sizeof(ctx), "a=%g b=%g", a, b);
    expect(ok, "key bits preserve order", ka, kb, ctx);
  }
  // The digits tile each word: 11 + 11 + 10 bits, top to bottom.
  for (int word = 0; word < 3; ++word) {
    for (int t = 0; t < 1000; ++t) {
      const Key k = {bits(rng), bits(rng), bits(rng)};
      uint32_t rebuilt = 0;
      for (int d = 3 * word; d < 3 * word + 3; ++d) rebuilt |= pw::ohem_digit(k.data(), d) << pw::ohem_digit_shift(d);
      expect(rebuilt == k[word], "digits tile the word", rebuilt, k[word], "digits");
    }
  }
}

// A random set of valid-pair keys: losses with many ties (and negative and zero ones), distinct
// (oi, oj).
std::vector<Key> random_keys(std::mt19937& rng, int n, int distinct_losses) {
  std::vector<float> losses;
  std::normal_distribution<float> nd(0.0f, 2.0f);
  for (int i = 0; i < distinct_losses; ++i) losses.push_back(i % 7 == 0 ? 0.0f : nd(rng));
  std::uniform_int_distribution<int> pick(0, distinct_losses - 1);
  std::uniform_int_distribution<int64_t> idx(0, (int64_t(1) << 32) - 1);
  std::vector<Key> keys;
  std::vector<std::pair<int64_t, int64_t>> used;
  while (static_cast<int>(keys.size()) < n) {
    int64_t oi = idx(rng) % 64, oj = idx(rng) % 64;  // small index range: many shared oi
    if (keys.size() % 5 == 0) {
      oi = idx(rng);  // and full 32-bit indices
      oj = idx(rng);
    }
    if (std::find(used.begin(), used.end(), std::make_pair(oi, oj)) != used.end()) continue;
    used.emplace_back(oi, oj);
    keys.push_back(make_key(losses[static_cast<size_t>(pick(rng))], oi, oj));
  }
  return keys;
}

std::array<int64_t, 3> as_words(const Key& k) { return {int64_t(k[0]), int64_t(k[1]), int64_t(k[2])}; }

void test_selected_is_top_k() {
  std::mt19937 rng(7);
  char ctx[96];
  for (int rep = 0; rep < 20; ++rep) {
    const int n = 1 + rep * 13;
    const std::vector<Key> keys = random_keys(rng, n, 1 + rep % 9);
    std::vector<int> by_rank(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) by_rank[static_cast<size_t>(i)] = i;
    std::sort(by_rank.begin(), by_rank.end(),
              [&](int a, int b) { return keys[static_cast<size_t>(a)] > keys[static_cast<size_t>(b)]; });
    for (int k = 1; k <= n; ++k) {
      const std::array<int64_t, 3> kstar = as_words(keys[static_cast<size_t>(by_rank[static_cast<size_t>(k - 1)])]);
      std::vector<bool> in_top(static_cast<size_t>(n), false);
      for (int r = 0; r < k; ++r) in_top[static_cast<size_t>(by_rank[static_cast<size_t>(r)])] = true;
      int count = 0;
      for (int i = 0; i < n; ++i) {
        const bool sel = pw::ohem_selected(keys[static_cast<size_t>(i)].data(), kstar.data());
        count += sel;
        std::snprintf(ctx, sizeof(ctx), "rep=%d n=%d k=%d i=%d", rep, n, k, i);
        expect(sel == in_top[static_cast<size_t>(i)], "ohem_selected == top-k", sel, in_top[static_cast<size_t>(i)],
               ctx);
      }
      expect(count == k, "exactly k selected", count, k, ctx);
    }
  }
}

// The radix select the kernels and the Python driver run: per digit, a 2048-bin histogram of the
// keys matching the decided prefix; the bin holding the k-th largest is the digit's value.
std::array<int64_t, 3> radix_select(const std::vector<Key>& keys, int64_t k) {
  std::array<int64_t, 3> state = {0, 0, 0};
  int64_t rem = k;
  for (int digit = 0; digit < 9; ++digit) {
    std::vector<int64_t> hist(2048, 0);
    for (const Key& key : keys) {
      if (pw::ohem_prefix_match(key.data(), state.data(), digit)) ++hist[pw::ohem_digit(key.data(), digit)];
    }
    int b = 2047;
    for (; b > 0; --b) {
      if (hist[static_cast<size_t>(b)] >= rem) break;
      rem -= hist[static_cast<size_t>(b)];
    }
    state[static_cast<size_t>(digit / 3)] |= int64_t(b) << pw::ohem_digit_shift(digit);
  }
  return state;
}

void test_radix_select() {
  std::mt19937 rng(99);
  char ctx[96];
  for (int rep = 0; rep < 40; ++rep) {
    const int n = 1 + (rep * 37) % 600;
    const std::vector<Key> keys = random_keys(rng, n, 1 + rep % 11);
    std::vector<Key> sorted = keys;
    std::sort(sorted.begin(), sorted.end(), [](const Key& a, const Key& b) { return a > b; });
    for (int k : {1, 2, n / 3 + 1, n / 2 + 1, n}) {
      if (k > n) continue;
      const std::array<int64_t, 3> got = radix_select(keys, k);
      const std::array<int64_t, 3> want = as_words(sorted[static_cast<size_t>(k - 1)]);
      std::snprintf(ctx, sizeof(ctx), "rep=%d n=%d k=%d", rep, n, k);
      expect(got == want, "radix select finds K*", static_cast<double>(got[0]), static_cast<double>(want[0]), ctx);
      // Prefix matching is consistent with the digits: after the last pass the only keys matching
      // every digit of K* are K* itself.
      int equal = 0;
      for (const Key& key : keys) equal += (as_words(key) == want);
      expect(equal == 1, "K* is one key", equal, 1, ctx);
    }
  }
  // Prefix match vs digits, directly: k matches p before `digit` iff every earlier digit agrees.
  std::uniform_int_distribution<uint32_t> bits;
  for (int t = 0; t < 20000; ++t) {
    Key a = {bits(rng), bits(rng), bits(rng)};
    Key b = a;
    const int flip = static_cast<int>(bits(rng) % 96);  // flip one bit of b
    b[static_cast<size_t>(flip / 32)] ^= 1u << (31 - flip % 32);
    const std::array<int64_t, 3> p = as_words(b);
    for (int digit = 0; digit < 9; ++digit) {
      bool agree = true;
      for (int e = 0; e < digit; ++e) agree = agree && pw::ohem_digit(a.data(), e) == pw::ohem_digit(b.data(), e);
      expect(pw::ohem_prefix_match(a.data(), p.data(), digit) == agree, "prefix_match == earlier digits agree",
             agree, digit, "flip");
    }
  }
}

}  // namespace

int main() {
  const fltest::Group groups[] = {
      {"pair_eval vs spec and FD", test_pair_eval},
      {"known values", test_known_values},
      {"ohem key bits, digits", test_key_bits_order},
      {"ohem_selected == top-k", test_selected_is_top_k},
      {"radix select == K*", test_radix_select},
  };
  return fltest::run_groups("test_pairwise_math", groups);
}
