// Per-pair math of EasyRec's pairwise losses (spec sections 1.4 and 3), shared by the cpu backend
// (g++) and the cuda backend (nvcc); fusedloss/triton_kernels/pairwise.py mirrors it.
//
// A pair (i, j) is valid when y'_i > y'_j (labels after the kind's transform) and i, j share a
// session. Temperature T divides the scores before the difference. w_i is the weight of the
// higher-labelled item. Per kind, with d = (s_i - s_j) / T:
//   kPairWise  : u = d - margin,                       loss = w_i softplus(-u)
//   kLogistic  : u = d - mu, mu = (y_i - y_j)/T (use_label_margin) | hinge_margin (if set) | 0,
//                                                      loss = w_i softplus(-u)
//   kFocal     : valid also needs d < hinge_margin (if set): a filter, not a shift;
//                p = clip(sigmoid(d), 1e-7, 1 - 1e-7), loss = w_i a (1 - p)^gamma softplus(-d)
//                (EasyRec binary focal with target 1: binary_focal_elem), v = w_i a (1 - p)^gamma
//   kHinge     : s' = s / T, y' = y / T if label_is_logits; with use_exponent (the intended
//                formula: EasyRec overwrites the logits with sigmoid(sigmoid(labels)), leaving no
//                gradient) s' = sigmoid(s'), y' = sigmoid(y');
//                delta = (y'_i - y'_j) - (s'_i - s'_j) (use_label_margin) | margin - (s'_i - s'_j),
//                loss = w_i relu(delta), or w_i relu(exp(clip(delta, -88, 88)) - 1) with use_exponent
// v (the SBNZ weight) is w_i except for kFocal. Returned: the weighted loss, v, and
// d loss / d s_i, d loss / d s_j.
#pragma once

#include "../common/host_device.h"
#include "../focal/focal_math.h"

namespace fusedloss {
namespace pairwise {

enum Kind : int64_t { kPairWise = 0, kLogistic = 1, kFocal = 2, kHinge = 3 };
enum Flag : int64_t {
  kHasHingeMargin = 1,
  kUseLabelMargin = 2,
  kLabelIsLogits = 4,
  kUseExponent = 8,
};

template <typename acc_t>
struct Params {
  int64_t kind;
  int64_t flags;
  acc_t inv_temperature;
  acc_t margin;
  acc_t hinge_margin;
  acc_t gamma;
  acc_t alpha;  // < 0: no alpha factor (kFocal)
};

template <typename acc_t>
struct PairOut {
  bool valid;
  acc_t loss;   // weighted loss of the pair
  acc_t v;      // SBNZ weight of the pair
  acc_t ds_i;   // d loss / d s_i
  acc_t ds_j;   // d loss / d s_j
};

template <typename acc_t>
FL_HD acc_t sigmoid_of(acc_t x) {
  const acc_t e = exp(-fabs(x));
  const acc_t inv = acc_t(1) / (acc_t(1) + e);
  return x >= acc_t(0) ? inv : e * inv;
}

// Label transform of the kind (only kHinge and kLogistic-with-label-margin rescale labels; the
// order of labels, hence validity, is unchanged by a positive scale but is computed on the
// transformed values as EasyRec does).
template <typename acc_t>
FL_HD acc_t transform_label(acc_t y, const Params<acc_t>& prm) {
  if (prm.kind == kHinge) {
    if (prm.flags & kLabelIsLogits) y = y * prm.inv_temperature;
    if (prm.flags & kUseExponent) y = sigmoid_of(y);
  } else if (prm.kind == kLogistic && (prm.flags & kUseLabelMargin)) {
    y = y * prm.inv_temperature;
  }
  return y;
}

// s_i, s_j raw scores; yt_i, yt_j transformed labels (transform_label); w_i weight of item i.
template <typename acc_t>
FL_HD PairOut<acc_t> pair_eval(acc_t s_i, acc_t s_j, acc_t yt_i, acc_t yt_j, acc_t w_i,
                               const Params<acc_t>& prm) {
  PairOut<acc_t> out;
  out.valid = yt_i > yt_j;
  out.loss = acc_t(0);
  out.v = acc_t(0);
  out.ds_i = acc_t(0);
  out.ds_j = acc_t(0);
  const acc_t it = prm.inv_temperature;
  if (prm.kind == kHinge) {
    acc_t si = s_i * it, sj = s_j * it, dsi = it, dsj = it;
    if (prm.flags & kUseExponent) {
      si = sigmoid_of(si);
      sj = sigmoid_of(sj);
      dsi = it * si * (acc_t(1) - si);
      dsj = it * sj * (acc_t(1) - sj);
    }
    const acc_t delta = ((prm.flags & kUseLabelMargin) ? (yt_i - yt_j) : prm.margin) - (si - sj);
    acc_t l, dl;
    if (prm.flags & kUseExponent) {
      const acc_t c = delta < acc_t(-88) ? acc_t(-88) : (delta > acc_t(88) ? acc_t(88) : delta);
      const acc_t ex = exp(c);
      const bool pos = ex - acc_t(1) > acc_t(0);
      const bool inside = delta > acc_t(-88) && delta < acc_t(88);
      l = pos ? ex - acc_t(1) : acc_t(0);
      dl = (pos && inside) ? ex : acc_t(0);
    } else {
      l = delta > acc_t(0) ? delta : acc_t(0);
      dl = delta > acc_t(0) ? acc_t(1) : acc_t(0);
    }
    out.v = w_i;
    out.loss = w_i * l;
    out.ds_i = -w_i * dl * dsi;
    out.ds_j = w_i * dl * dsj;
    return out;
  }
  const acc_t d = (s_i - s_j) * it;
  focal::Params<acc_t> fp;
  fp.smoothing = acc_t(0);
  acc_t u = d;
  if (prm.kind == kFocal) {
    if ((prm.flags & kHasHingeMargin) && !(d < prm.hinge_margin)) out.valid = false;
    fp.mode = focal::kEasyRec;
    fp.alpha = prm.alpha;
    fp.gamma = prm.gamma;
  } else {
    fp.mode = focal::kBCE;
    fp.alpha = acc_t(-1);
    fp.gamma = acc_t(0);
    if (prm.kind == kPairWise) {
      u = d - prm.margin;
    } else if (prm.flags & kUseLabelMargin) {
      u = d - (yt_i - yt_j);
    } else if (prm.flags & kHasHingeMargin) {
      u = d - prm.hinge_margin;
    }
  }
  // softplus(-u) = ce(u, 1): the binary element with target 1.
  const focal::ElemOut<acc_t> e = focal::binary_focal_elem(u, acc_t(1), w_i, acc_t(1), false, fp);
  out.loss = e.loss;
  out.v = e.v;
  out.ds_i = e.grad * it;
  out.ds_j = -e.grad * it;
  return out;
}

// ---- OHEM: exact top-k over pairs by radix select on a 128-bit composite key ------------------
// A valid pair (i, j), i the higher-labelled item, with original batch indices oi, oj and weighted
// loss l (acc_t) has the key (K0, K1, K2, K3) = (loss word high, loss word low, ~oi, ~oj), four
// unsigned 32-bit words: comparing keys lexicographically ranks pairs by loss, then by row-major
// (oi, oj) order, lower index first, which is how TF's top_k breaks ties. The loss words are an
// order-preserving map of l's bits: for float, (K0, K1) = (ohem_key_bits(l), 0); for double, the
// 64-bit map split in two (so float64 losses are ranked exactly, not rounded to float32).
// Top-k = the pairs whose key is >= the k-th largest key K*. K* is found digit by digit, 12 digits
// of 11, 11, 10 bits per word (histogram passes; the driver skips word 1's digits for float, where
// K1 is always 0); state/select words hold K*'s decided bits (undecided bits 0).
constexpr int kOhemWords = 4;
constexpr int kOhemDigits = 3 * kOhemWords;

// Order-preserving map of a float32 loss to uint32.
FL_HD uint32_t ohem_key_bits(float loss) {
  uint32_t b;
  memcpy(&b, &loss, sizeof(b));
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

// Order-preserving map of a float64 loss to uint64.
FL_HD uint64_t ohem_key_bits64(double loss) {
  uint64_t b;
  memcpy(&b, &loss, sizeof(b));
  return (b & 0x8000000000000000ull) ? ~b : (b | 0x8000000000000000ull);
}

FL_HD int ohem_digit_shift(int digit) { return digit % 3 == 0 ? 21 : (digit % 3 == 1 ? 10 : 0); }
FL_HD int ohem_digit_width(int digit) { return digit % 3 == 2 ? 10 : 11; }

// Value of digit `digit` of key k (0 .. 2047).
FL_HD uint32_t ohem_digit(const uint32_t k[kOhemWords], int digit) {
  const uint32_t w = k[digit / 3];
  return (w >> ohem_digit_shift(digit)) & ((1u << ohem_digit_width(digit)) - 1u);
}

// Whether k agrees with the prefix p on every digit before `digit`.
FL_HD bool ohem_prefix_match(const uint32_t k[kOhemWords], const int64_t p[kOhemWords], int digit) {
  const int word = digit / 3;
  for (int w = 0; w < word; ++w) {
    if (k[w] != static_cast<uint32_t>(p[w])) return false;
  }
  const int above = ohem_digit_shift(digit) + ohem_digit_width(digit);  // 32 for the word's top digit
  if (above >= 32) return true;
  return (k[word] >> above) == (static_cast<uint32_t>(p[word]) >> above);
}

// Whether k >= p lexicographically (the pair is among the top k).
FL_HD bool ohem_selected(const uint32_t k[kOhemWords], const int64_t p[kOhemWords]) {
  for (int w = 0; w < kOhemWords; ++w) {
    const uint32_t pw = static_cast<uint32_t>(p[w]);
    if (k[w] != pw) return k[w] > pw;
  }
  return true;
}

FL_HD void ohem_key(float loss, int64_t oi, int64_t oj, uint32_t k[kOhemWords]) {
  k[0] = ohem_key_bits(loss);
  k[1] = 0u;
  k[2] = ~static_cast<uint32_t>(oi);
  k[3] = ~static_cast<uint32_t>(oj);
}

FL_HD void ohem_key(double loss, int64_t oi, int64_t oj, uint32_t k[kOhemWords]) {
  const uint64_t b = ohem_key_bits64(loss);
  k[0] = static_cast<uint32_t>(b >> 32);
  k[1] = static_cast<uint32_t>(b);
  k[2] = ~static_cast<uint32_t>(oi);
  k[3] = ~static_cast<uint32_t>(oj);
}

}  // namespace pairwise
}  // namespace fusedloss
