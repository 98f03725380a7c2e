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
//  3. OHEM keys (128 bits: 4 words, 12 digits): ohem_key_bits is order-preserving over negative, zero
//     and positive floats, and ohem_key_bits64 over doubles (both with infinities and denormals; for
//     doubles also neighbours that round to the same float32, e.g. 1 and 1 + 1e-12, which must get
//     different, correctly ordered keys); the float key's words are (bits, 0, ~oi, ~oj) and the
//     double key's (hi, lo, ~oi, ~oj); selecting with ohem_selected and K* = the k-th largest key of
//     a random set (many equal losses) gives exactly the top-k set, for every k, for float and double
//     keys; a radix select by histogram passes (ohem_prefix_match / ohem_digit), as the
//     cpu/cuda/triton kernels and the Python driver run it, finds K* exactly, for every k: float keys
//     over the driver's digits 0-2, 6-11 (word 1 is 0), double keys over all 12; the digits tile each
//     32-bit word.
//  4. The lean float32 SBNZ math (pairwise_lean_math.h, the cpu backend's SBNZ loop and the CUDA lean
//     kernel): lean_pair against pair_eval in double for PAIR_WISE and LOGISTIC with every shift, both
//     sides of a pair, label pairs (ordered both ways, equal, NaN), scores up to |d| / T = 60, relative
//     1e-6 on the loss and on each gradient term; the guard against a non-finite score outside a pair;
//     lean_shift's rule; the lean kernel's block count.
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
#include "../pairwise/pairwise_grid.h"
#include "../pairwise/pairwise_lean_math.h"
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

using Key = std::array<uint32_t, pw::kOhemWords>;
using Words = std::array<int64_t, pw::kOhemWords>;  // a select / state prefix (the flag left out)

// The float overload for a float loss, the double overload for a double one (as the kernels call it
// on their acc_t loss).
template <typename loss_t>
Key make_key(loss_t loss, int64_t oi, int64_t oj) {
  Key k;
  pw::ohem_key(loss, oi, oj, k.data());
  return k;
}

Words as_words(const Key& k) {
  Words w;
  for (int i = 0; i < pw::kOhemWords; ++i) w[static_cast<size_t>(i)] = int64_t(k[static_cast<size_t>(i)]);
  return w;
}

// The driver's digit lists: float keys skip word 1's digits (K1 is always 0), double keys use all.
std::vector<int> float_digits() {
  std::vector<int> d;
  for (int i = 0; i < pw::kOhemDigits; ++i) {
    if (i / 3 != 1) d.push_back(i);
  }
  return d;
}

std::vector<int> all_digits() {
  std::vector<int> d;
  for (int i = 0; i < pw::kOhemDigits; ++i) d.push_back(i);
  return d;
}

void test_key_bits_order() {
  expect(pw::kOhemWords == 4 && pw::kOhemDigits == 12, "128-bit key: 4 words, 12 digits", pw::kOhemDigits, 12,
         "constants");
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
  // The float key's words: (ohem_key_bits(l), 0, ~oi, ~oj).
  for (int t = 0; t < 1000; ++t) {
    const uint32_t bl = bits(rng);
    float l;
    std::memcpy(&l, &bl, 4);
    if (std::isnan(l)) continue;
    const int64_t oi = bits(rng), oj = bits(rng);
    const Key k = make_key(l, oi, oj);
    expect(k[0] == pw::ohem_key_bits(l) && k[1] == 0u && k[2] == ~static_cast<uint32_t>(oi) &&
               k[3] == ~static_cast<uint32_t>(oj),
           "float key words", k[1], 0, "float key");
  }
  // The digits tile each word: 11 + 11 + 10 bits, top to bottom; 3 digits per word, 12 in all.
  for (int word = 0; word < pw::kOhemWords; ++word) {
    for (int t = 0; t < 1000; ++t) {
      const Key k = {bits(rng), bits(rng), bits(rng), bits(rng)};
      uint32_t rebuilt = 0;
      for (int d = 3 * word; d < 3 * word + 3; ++d) rebuilt |= pw::ohem_digit(k.data(), d) << pw::ohem_digit_shift(d);
      expect(rebuilt == k[static_cast<size_t>(word)], "digits tile the word", rebuilt, k[static_cast<size_t>(word)],
             "digits");
    }
  }
}

// ohem_key_bits64 / the double key: order-preserving over negative, zero and positive doubles (with
// infinities, denormals, and neighbours that round to the same float32), words (hi, lo, ~oi, ~oj).
void test_key_bits64_order() {
  const double inf = std::numeric_limits<double>::infinity();
  const double den = std::numeric_limits<double>::denorm_min();
  const double dmin = std::numeric_limits<double>::min();  // smallest normal
  const double dmax = std::numeric_limits<double>::max();
  const double ordered[] = {-inf,
                            -dmax,
                            -1e300,
                            -3.5e38,  // beyond float's range
                            -2.5,
                            -1.0 - 1e-12,
                            -1.0,
                            -std::nextafter(1.0, 0.0),
                            -1e-30,
                            -1e-39,
                            -1e-300,
                            -dmin,
                            -std::nextafter(dmin, 0.0),  // largest denormal
                            -2 * den,
                            -den,
                            -0.0,
                            0.0,
                            den,
                            2 * den,
                            3 * den,
                            1e-310,
                            std::nextafter(dmin, 0.0),
                            dmin,
                            1e-300,
                            1e-46,  // rounds to float 0
                            1e-45,
                            1e-39,
                            1e-30,
                            0.1,
                            std::nextafter(1.0, 0.0),
                            1.0,
                            std::nextafter(1.0, 2.0),
                            1.0 + 1e-12,
                            1.0 + 1e-9,
                            1.0 + 1e-7,
                            2.5,
                            3.4028234663852886e38,  // FLT_MAX
                            3.5e38,
                            1e300,
                            dmax,
                            inf};
  const std::vector<double> v(std::begin(ordered), std::end(ordered));
  char ctx[128];
  for (size_t a = 0; a + 1 < v.size(); ++a) {
    std::snprintf(ctx, sizeof(ctx), "%.17g < %.17g", v[a], v[a + 1]);
    // The list itself is strictly increasing (-0 before +0).
    expect(v[a] < v[a + 1] || (v[a] == 0.0 && std::signbit(v[a]) && !std::signbit(v[a + 1])), "test values in order",
           v[a], v[a + 1], ctx);
    expect(pw::ohem_key_bits64(v[a]) < pw::ohem_key_bits64(v[a + 1]), "key bits64 increasing", v[a], v[a + 1], ctx);
    // The 4-word key of the same (oi, oj) is increasing lexicographically too.
    expect(make_key(v[a], 3, 9) < make_key(v[a + 1], 3, 9), "double key increasing", v[a], v[a + 1], ctx);
  }
  // Exactly ranked, not rounded to float32: 1.0 and 1.0 + 1e-12 are the same float, but get
  // different keys, in order, so that the larger ranks first whatever the indices.
  {
    const double a = 1.0, b = 1.0 + 1e-12;
    expect(static_cast<float>(a) == static_cast<float>(b), "1 and 1 + 1e-12 are one float32", a, b, "premise");
    expect(make_key(static_cast<float>(a), 0, 1) > make_key(static_cast<float>(b), 5, 1),
           "float keys: the tie goes to the lower index", a, b, "float");
    expect(make_key(b, 5, 1) > make_key(a, 0, 1), "double keys: the larger loss first", b, a, "double");
    expect(make_key(a, 0, 1)[1] != make_key(b, 5, 1)[1], "the low word tells them apart", a, b, "double");
    Words kstar = as_words(make_key(b, 5, 1));  // k = 1
    expect(pw::ohem_selected(make_key(b, 5, 1).data(), kstar.data()) &&
               !pw::ohem_selected(make_key(a, 0, 1).data(), kstar.data()),
           "top-1 is the 1 + 1e-12 pair", b, a, "double");
  }
  // The words: (hi, lo) of ohem_key_bits64, then ~oi, ~oj; for a float-representable double the
  // high word orders as ohem_key_bits of the float does.
  std::mt19937_64 rng(321);
  std::uniform_int_distribution<uint64_t> bits;
  for (int t = 0; t < 1000; ++t) {
    const uint64_t bl = bits(rng);
    double l;
    std::memcpy(&l, &bl, 8);
    if (std::isnan(l)) continue;
    const int64_t oi = static_cast<int64_t>(bits(rng) & 0xffffffffu), oj = static_cast<int64_t>(bits(rng) >> 32);
    const Key k = make_key(l, oi, oj);
    const uint64_t kb = pw::ohem_key_bits64(l);
    expect(k[0] == static_cast<uint32_t>(kb >> 32) && k[1] == static_cast<uint32_t>(kb) &&
               k[2] == ~static_cast<uint32_t>(oi) && k[3] == ~static_cast<uint32_t>(oj),
           "double key words", k[0], static_cast<double>(kb >> 32), "double key");
  }
  // Random doubles (random bit patterns: every exponent, denormals and infinities included), and
  // neighbours one ulp apart: key order == double order (ties: equal keys, except -0 < +0).
  for (int t = 0; t < 400000; ++t) {
    const uint64_t ba = bits(rng);
    double a, b;
    std::memcpy(&a, &ba, 8);
    if (t % 2 == 0) {
      const uint64_t bb = bits(rng);
      std::memcpy(&b, &bb, 8);
    } else {
      b = std::nextafter(a, (t % 4 == 1) ? inf : -inf);
    }
    if (std::isnan(a) || std::isnan(b)) continue;
    const uint64_t ka = pw::ohem_key_bits64(a), kb = pw::ohem_key_bits64(b);
    const bool ok = (a < b) ? ka < kb : (a > b ? ka > kb : (ka == kb || (a == 0.0 && b == 0.0)));
    std::snprintf(ctx, sizeof(ctx), "a=%.17g b=%.17g", a, b);
    expect(ok, "key bits64 preserve order", a, b, ctx);
    if (a == 0.0 && b == 0.0) {
      expect((ka < kb) == (std::signbit(a) && !std::signbit(b)) || ka == kb, "-0 < +0", a, b, ctx);
    }
    const Key key_a = make_key(a, 7, 8), key_b = make_key(b, 7, 8);
    const bool ok_key = (a < b) ? key_a < key_b : (a > b ? key_a > key_b : (key_a == key_b || (a == 0.0 && b == 0.0)));
    expect(ok_key, "double key preserves order", a, b, ctx);
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

// The same for double losses: many ties, and near-ties that one float32 cannot tell apart (1 ulp,
// 1e-12 relative apart, the same float after rounding), -0 and +0, denormals and infinities.
std::vector<Key> random_keys_double(std::mt19937& rng, int n, int distinct_losses) {
  std::vector<double> losses;
  std::normal_distribution<double> nd(0.0, 2.0);
  const double specials[] = {0.0,
                             -0.0,
                             std::numeric_limits<double>::denorm_min(),
                             -1e-310,
                             std::numeric_limits<double>::infinity(),
                             -std::numeric_limits<double>::infinity(),
                             1e-300};
  for (int i = 0; i < distinct_losses; ++i) {
    const int group = i % 5;
    if (group == 4) {
      losses.push_back(specials[static_cast<size_t>(i / 5) % (sizeof(specials) / sizeof(specials[0]))]);
    } else if (group == 0 || losses.empty()) {
      losses.push_back(nd(rng));
    } else {
      // Near the previous base value: equal as float32 in the usual case, distinct as double.
      const double base = losses[static_cast<size_t>(i - group)];
      losses.push_back(group == 1 ? std::nextafter(base, 1e300)
                                  : (group == 2 ? base * (1.0 + 1e-12) : std::nextafter(base, -1e300)));
    }
  }
  std::uniform_int_distribution<int> pick(0, distinct_losses - 1);
  std::uniform_int_distribution<int64_t> idx(0, (int64_t(1) << 32) - 1);
  std::vector<Key> keys;
  std::vector<std::pair<int64_t, int64_t>> used;
  while (static_cast<int>(keys.size()) < n) {
    int64_t oi = idx(rng) % 64, oj = idx(rng) % 64;
    if (keys.size() % 5 == 0) {
      oi = idx(rng);
      oj = idx(rng);
    }
    if (std::find(used.begin(), used.end(), std::make_pair(oi, oj)) != used.end()) continue;
    used.emplace_back(oi, oj);
    keys.push_back(make_key(losses[static_cast<size_t>(pick(rng))], oi, oj));
  }
  return keys;
}

void check_selected_is_top_k(const std::vector<Key>& keys, const char* what, int rep) {
  const int n = static_cast<int>(keys.size());
  char ctx[96];
  std::vector<int> by_rank(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) by_rank[static_cast<size_t>(i)] = i;
  std::sort(by_rank.begin(), by_rank.end(),
            [&](int a, int b) { return keys[static_cast<size_t>(a)] > keys[static_cast<size_t>(b)]; });
  for (int k = 1; k <= n; ++k) {
    const Words kstar = as_words(keys[static_cast<size_t>(by_rank[static_cast<size_t>(k - 1)])]);
    std::vector<bool> in_top(static_cast<size_t>(n), false);
    for (int r = 0; r < k; ++r) in_top[static_cast<size_t>(by_rank[static_cast<size_t>(r)])] = true;
    int count = 0;
    for (int i = 0; i < n; ++i) {
      const bool sel = pw::ohem_selected(keys[static_cast<size_t>(i)].data(), kstar.data());
      count += sel;
      std::snprintf(ctx, sizeof(ctx), "%s rep=%d n=%d k=%d i=%d", what, rep, n, k, i);
      expect(sel == in_top[static_cast<size_t>(i)], "ohem_selected == top-k", sel, in_top[static_cast<size_t>(i)],
             ctx);
    }
    expect(count == k, "exactly k selected", count, k, ctx);
  }
}

void test_selected_is_top_k() {
  std::mt19937 rng(7);
  for (int rep = 0; rep < 20; ++rep) {
    check_selected_is_top_k(random_keys(rng, 1 + rep * 13, 1 + rep % 9), "float", rep);
    check_selected_is_top_k(random_keys_double(rng, 1 + rep * 13, 1 + rep % 23), "double", rep);
  }
}

// The radix select the kernels and the Python driver run: per digit of `digits` (in order), a
// 2048-bin histogram of the keys matching the decided prefix; the bin holding the k-th largest is
// the digit's value. Digits left out stay 0 in the state.
Words radix_select(const std::vector<Key>& keys, int64_t k, const std::vector<int>& digits) {
  Words state{};
  int64_t rem = k;
  for (const int digit : digits) {
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

// radix_select == the k-th largest key for every k in `ks` (all of 1..n when empty).
void check_radix_select(const std::vector<Key>& keys, const std::vector<int>& digits, std::vector<int> ks,
                        const char* what, int rep) {
  const int n = static_cast<int>(keys.size());
  char ctx[96];
  std::vector<Key> sorted = keys;
  std::sort(sorted.begin(), sorted.end(), [](const Key& a, const Key& b) { return a > b; });
  if (ks.empty()) {
    for (int k = 1; k <= n; ++k) ks.push_back(k);
  }
  for (const int k : ks) {
    if (k < 1 || k > n) continue;
    const Words got = radix_select(keys, k, digits);
    const Words want = as_words(sorted[static_cast<size_t>(k - 1)]);
    std::snprintf(ctx, sizeof(ctx), "%s rep=%d n=%d k=%d", what, rep, n, k);
    expect(got == want, "radix select finds K*", static_cast<double>(got[0]), static_cast<double>(want[0]), ctx);
    // Prefix matching is consistent with the digits: after the last pass the only keys matching
    // every digit of K* are K* itself.
    int equal = 0;
    for (const Key& key : keys) equal += (as_words(key) == want);
    expect(equal == 1, "K* is one key", equal, 1, ctx);
  }
}

void test_radix_select() {
  std::mt19937 rng(99);
  const std::vector<int> fdigits = float_digits(), ddigits = all_digits();
  expect(fdigits.size() == 9 && fdigits[3] == 6, "the driver's float digits: 0, 1, 2, 6 .. 11",
         static_cast<double>(fdigits.size()), 9, "digits");
  for (int rep = 0; rep < 40; ++rep) {
    const int n = 1 + (rep * 37) % 600;
    const std::vector<Key> fkeys = random_keys(rng, n, 1 + rep % 11);
    // Float keys: the driver's digit list (word 1 skipped), every k; and all 12 digits at a few k.
    check_radix_select(fkeys, fdigits, {}, "float, digits 0-2 6-11", rep);
    check_radix_select(fkeys, ddigits, {1, 2, n / 3 + 1, n / 2 + 1, n}, "float, all digits", rep);
    // Double keys: all 12 digits, every k.
    const int nd = 1 + (rep * 53) % 400;
    check_radix_select(random_keys_double(rng, nd, 1 + rep % 31), ddigits, {}, "double, all digits", rep);
  }
  // Double losses that one float32 cannot tell apart, only those: the select must use word 1.
  {
    std::vector<Key> keys;
    for (int i = 0; i < 64; ++i) keys.push_back(make_key(1.0 + (i % 8) * 1e-12, i % 3, i));
    check_radix_select(keys, ddigits, {}, "double, one float value", 0);
  }
  // Prefix match vs digits, directly: k matches p before `digit` iff every earlier digit agrees.
  std::uniform_int_distribution<uint32_t> bits;
  for (int t = 0; t < 20000; ++t) {
    Key a = {bits(rng), bits(rng), bits(rng), bits(rng)};
    Key b = a;
    const int flip = static_cast<int>(bits(rng) % (32 * pw::kOhemWords));  // flip one bit of b
    b[static_cast<size_t>(flip / 32)] ^= 1u << (31 - flip % 32);
    const Words p = as_words(b);
    for (int digit = 0; digit < pw::kOhemDigits; ++digit) {
      bool agree = true;
      for (int e = 0; e < digit; ++e) agree = agree && pw::ohem_digit(a.data(), e) == pw::ohem_digit(b.data(), e);
      expect(pw::ohem_prefix_match(a.data(), p.data(), digit) == agree, "prefix_match == earlier digits agree",
             agree, digit, "flip");
    }
  }
}

// pairwise_grid.h: the CUDA kernel's row blocks and column groups (the kernel itself runs only on a
// GPU; its geometry is plain arithmetic).
void test_grid() {
  using fltest::expect;
  expect(fusedloss_pairwise_num_blocks(0) == 0, "no blocks for n = 0", fusedloss_pairwise_num_blocks(0), 0, "");
  expect(fusedloss_pairwise_num_blocks(129) == 2, "blocks of 128 rows", fusedloss_pairwise_num_blocks(129), 2, "");
  expect(fusedloss_pairwise_col_splits(0, 1, 132) == 1, "n = 0", fusedloss_pairwise_col_splits(0, 1, 132), 1, "");
  expect(fusedloss_pairwise_col_splits(65536, 0, 132) == 1, "two-sided is never split",
         fusedloss_pairwise_col_splits(65536, 0, 132), 1, "");
  expect(fusedloss_pairwise_col_splits(65536, 1, 0) == 1, "unknown SM count",
         fusedloss_pairwise_col_splits(65536, 1, 0), 1, "");
  // All pairs at B = 65,536 on an H100 (132 SMs): 512 row blocks, 132 * 4 * 8 = 4224 wanted -> 9 groups.
  expect(fusedloss_pairwise_col_splits(65536, 1, 132) == 9, "H100, B = 65,536",
         fusedloss_pairwise_col_splits(65536, 1, 132), 9, "");
  // Few rows: capped at the tiles of the longest range (300 columns: 2 tiles).
  expect(fusedloss_pairwise_col_splits(300, 1, 132) == 2, "capped by tiles",
         fusedloss_pairwise_col_splits(300, 1, 132), 2, "");
  // Row blocks that fill the waves alone: no split.
  expect(fusedloss_pairwise_col_splits(1 << 20, 1, 132) == 1, "B = 2^20",
         fusedloss_pairwise_col_splits(1 << 20, 1, 132), 1, "");
  // Every (n, SMs): 1 <= splits <= tiles, blocks within int32, and the kernel's tile walk (t = -1, then y,
  // y + splits, ...) visits each tile of a range exactly once across the groups.
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 2000; ++trial) {
    const int64_t n = static_cast<int64_t>(rng() % (trial < 1000 ? 5000 : 3000000)) + 1;
    const int32_t sms = static_cast<int32_t>(rng() % 200);
    const int32_t splits = fusedloss_pairwise_col_splits(n, 1, sms);
    const int64_t tiles = (n + kPairwiseTile - 1) / kPairwiseTile;
    expect(splits >= 1 && splits <= tiles, "1 <= splits <= tiles", splits, static_cast<double>(tiles), "");
    expect(static_cast<int64_t>(fusedloss_pairwise_num_blocks(n)) * splits < (int64_t{1} << 31), "blocks fit int32",
           static_cast<double>(fusedloss_pairwise_num_blocks(n)) * splits, 0, "");
    const int64_t n_tiles = static_cast<int64_t>(rng() % static_cast<uint64_t>(tiles)) + 1;  // some block's range
    std::vector<int> seen(static_cast<size_t>(n_tiles), 0);
    for (int32_t y = 0; y < splits; ++y) {
      for (int64_t t = -1; t < n_tiles; t = t < 0 ? static_cast<int64_t>(y) : t + splits) {
        if (t >= 0) ++seen[static_cast<size_t>(t)];
      }
    }
    const bool once = std::all_of(seen.begin(), seen.end(), [](int c) { return c == 1; });
    expect(once, "each tile in one group", once, 1, "");
  }
}

// pairwise_lean_math.h against pair_eval (double): the loss ln 2 w_i sp2 and d loss / d s_p =
// sgn w_i sig / T, from both sides of each pair.
template <bool kSigExp2>
void test_lean_pair_form() {
  using namespace fusedloss::pairwise;
  const double temps[] = {1.0, 0.5, 2.3};
  const double scores[] = {-30.0, -7.5, -1.0, -0.3, 0.0, 0.2, 1.7, 4.0, 11.0, 30.0};
  const double labels[][2] = {{3.0, 1.0}, {1.0, 3.0}, {2.0, 2.0}, {0.0, 1.0}, {NAN, 1.0}};
  struct Case {
    int64_t kind, flags;
    double margin, hinge;
  };
  const Case cases[] = {{kPairWise, 0, 0.0, 0.0}, {kPairWise, 0, 0.7, 0.0}, {kLogistic, 0, 0.0, 0.0},
                        {kLogistic, kHasHingeMargin, 0.0, 0.5}, {kLogistic, kUseLabelMargin, 0.0, 0.0},
                        {kLogistic, kUseLabelMargin | kHasHingeMargin, 0.0, 0.5}};
  const float l2e = static_cast<float>(kLeanLog2e);
  char ctx[160];
  for (const Case& cs : cases) {
    double mu = 0.0;
    const int shift = lean_shift(cs.kind, cs.flags, cs.margin, cs.hinge, &mu);
    for (double t : temps) {
      Params<double> prm{};
      prm.kind = cs.kind;
      prm.flags = cs.flags;
      prm.inv_temperature = 1.0 / t;
      prm.margin = cs.margin;
      prm.hinge_margin = cs.hinge;
      prm.alpha = -1.0;
      const float k2 = static_cast<float>(1.0 / t * kLeanLog2e), shift2 = static_cast<float>(mu * kLeanLog2e);
      const float it = static_cast<float>(1.0 / t);
      for (double sp : scores) {
        for (double sq : scores) {
          for (const auto& lab : labels) {
            const float yp = static_cast<float>(transform_label<double>(lab[0], prm));
            const float yq = static_cast<float>(transform_label<double>(lab[1], prm));
            LeanPair o;
            if (shift == kLeanShiftConst) {
              o = lean_pair<kLeanShiftConst, true, kSigExp2>(true, float(sp) * k2, yp, yp * l2e, float(sq) * k2, yq, yq * l2e, shift2);
            } else if (shift == kLeanShiftLabel) {
              o = lean_pair<kLeanShiftLabel, true, kSigExp2>(true, float(sp) * k2, yp, yp * l2e, float(sq) * k2, yq, yq * l2e, shift2);
            } else {
              o = lean_pair<kLeanShiftNone, true, kSigExp2>(true, float(sp) * k2, yp, yp * l2e, float(sq) * k2, yq, yq * l2e, shift2);
            }
            const bool ph = yp > yq, qh = yq > yp;
            std::snprintf(ctx, sizeof ctx, "kind %lld flags %lld T %g s %g %g y %g %g", (long long)cs.kind,
                          (long long)cs.flags, t, sp, sq, lab[0], lab[1]);
            fltest::expect(o.sgn == (qh ? 1.0f : (ph ? -1.0f : 0.0f)), "lean sgn", o.sgn, qh - ph, ctx);
            if (!ph && !qh) continue;
            // pair_eval with the higher item first, in double, on the same float-rounded inputs
            const PairOut<double> r = ph ? pair_eval<double>(float(sp), float(sq), yp, yq, 1.0, prm)
                                         : pair_eval<double>(float(sq), float(sp), yq, yp, 1.0, prm);
            const double loss = kLeanLn2 * o.sp2, dsp = o.sgn * o.sig * it;
            const double want_dsp = ph ? r.ds_i : r.ds_j;
            // Relative 1e-6 (P, exp2) plus the float rounding of u2 = a_p - a_q (half an ulp of |u2|
            // each way scales e^-|u| by up to |u2| 2^-24); atol: pair_eval's own cancellation in
            // p - 1 (double) where sigmoid(-u) is below ~1e-16.
            const double u2 = (float(sp) - float(sq)) * (1.0 / t) * kLeanLog2e;
            const double rtol = 1e-6 + 2.0 * std::fabs(u2) * std::ldexp(1.0, -24);
            fltest::expect_close("lean loss", loss, r.loss, rtol, 1e-30, ctx);
            fltest::expect_close("lean d loss / d s_p", dsp, want_dsp, rtol, 1e-15, ctx);
          }
        }
      }
    }
  }
  // Guard: a NaN or inf score on an item with no pair (equal labels, or out of session) gives
  // finite outputs; inside a pair it propagates.
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  for (float bad : {inf, -inf, nan}) {
    const LeanPair eq = lean_pair<kLeanShiftNone, true, kSigExp2>(true, bad, 1.0f, 0.0f, 0.5f, 1.0f, 0.0f, 0.0f);
    const LeanPair out = lean_pair<kLeanShiftConst, true, kSigExp2>(false, bad, 2.0f, 0.0f, 0.5f, 1.0f, 0.0f, 0.3f);
    fltest::expect(std::isfinite(eq.sp2) && std::isfinite(eq.sig) && eq.sgn == 0.0f, "no pair: finite", eq.sp2, 1, "");
    fltest::expect(std::isfinite(out.sp2) && std::isfinite(out.sig) && out.sgn == 0.0f, "out of session: finite",
                   out.sp2, 1, "");
  }
  const LeanPair nanpair = lean_pair<kLeanShiftNone, true, kSigExp2>(true, nan, 2.0f, 0.0f, 0.5f, 1.0f, 0.0f, 0.0f);
  fltest::expect(std::isnan(nanpair.sp2), "NaN score in a pair: NaN loss", nanpair.sp2, NAN, "");
  // lean_shift: use_label_margin overrides the hinge margin; PAIR_WISE with margin 0 has no shift.
  double mu = -1.0;
  fltest::expect(lean_shift(kPairWise, 0, 0.0, 0.0, &mu) == kLeanShiftNone && mu == 0.0, "pair_wise margin 0", mu, 0, "");
  fltest::expect(lean_shift(kLogistic, kUseLabelMargin | kHasHingeMargin, 0.0, 0.5, &mu) == kLeanShiftLabel,
                 "label margin overrides", mu, 0, "");
  fltest::expect(lean_shift(kLogistic, kHasHingeMargin, 0.0, 0.5, &mu) == kLeanShiftConst && mu == 0.5,
                 "hinge margin shift", mu, 0.5, "");
  fltest::expect(fusedloss_pairwise_sbnz_blocks(0) == 0 && fusedloss_pairwise_sbnz_blocks(1) == 1 &&
                     fusedloss_pairwise_sbnz_blocks(17) == 2 && fusedloss_pairwise_sbnz_blocks(65536) == 4096,
                 "lean blocks of 16 rows", fusedloss_pairwise_sbnz_blocks(17), 2, "");
}

// Both forms of sigmoid(-u): the CUDA kernel's second exp2 and the cpu backend's division.
void test_lean_pair() {
  test_lean_pair_form<true>();
  test_lean_pair_form<false>();
}

}  // namespace

int main() {
  const fltest::Group groups[] = {
      {"pair_eval vs spec and FD", test_pair_eval},
      {"known values", test_known_values},
      {"ohem key bits, digits", test_key_bits_order},
      {"ohem double key bits", test_key_bits64_order},
      {"ohem_selected == top-k", test_selected_is_top_k},
      {"radix select == K*", test_radix_select},
      {"cuda grid geometry", test_grid},
      {"lean SBNZ pair math", test_lean_pair},
  };
  return fltest::run_groups("test_pairwise_math", groups);
}
