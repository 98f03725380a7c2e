// The CUDA pairwise kernels themselves (pairwise_cuda.cu and the lean pairwise_sbnz_cuda.cu), run on
// the CPU by the emulator of csrc/tests/cuda_sim through their extern "C" launchers, against a
// float64 O(B^2) loop over pair_eval (pairwise_math.h, checked against spec section 3 by
// test_pairwise_math.cpp and, through the cpu backend, against the Python reference). Run by ctest;
// exits nonzero on any failure. What a GPU run adds is timing and the last bits of the device's
// approximate functions; indexing, tiling, session ranges, the warp collectives and the reductions
// are the kernels' own code here.
//
//  1. The lean kernel: PAIR_WISE (margin 0 and 0.25) and PAIRWISE_LOGISTIC (plain, hinge_margin
//     shift, label margin), B from 1 to 1,100 (around the 16-row block and the 32-column tile), one
//     session, random sessions of 1 to 12, one huge session among small ones, all sessions of one;
//     weights none / [B] with zeros / [1]; temperatures 1 and 0.6; with and without the gradient.
//     Loss sum and count from the per-block partials, and the raw gradient, per element within
//     1e-4 of the sum of its terms' magnitudes plus 1e-6 of sum |w| / T over its pairs (Ref). A NaN score stays in its own session's pairs.
//  2. The general kernel, float32 and float64, every kind (focal with gamma / alpha / the hinge
//     filter, hinge with its flags), the symmetric schedule with 1 and 3 column groups and the
//     two-sided one: SBNZ as in 1.
//  3. Its OHEM modes: the digit histogram for digits 0, 1 and a low word's digit with the prefix of
//     K* decided, bit for bit against the keys of the same acc_t pair_eval; the done flag leaves the
//     histogram untouched; the select pass with K* the k-th largest key (sum, count, gradient of the
//     pairs selected with a positive loss), and with selection disabled (all zeros).
//  4. Launch arguments the launchers reject (kPairwiseBadArgs) and an empty batch (nothing launched).
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <random>
#include <vector>

#include "check.h"
#include "sim_data.h"
#include "../pairwise/pairwise_cuda.h"
#include "../pairwise/pairwise_lean_math.h"
#include "../pairwise/pairwise_math.h"

using namespace fusedloss::pairwise;
using fltest::expect;
using fltest::expect_close;

namespace {

using flsim::g_rng;
using flsim::randint;
using flsim::uniform;


enum Sessions { kOne, kSmall, kHuge, kSingles };
enum Weights { kNone, kPerItem, kScalar };

struct Batch {
  int n = 0;
  std::vector<double> s, y, w;  // w: n, 1 or 0 values
  std::vector<int64_t> order, lo, hi;
};

Batch make_batch(int n, Sessions sessions, bool graded, Weights weights) {
  Batch b;
  b.n = n;
  for (int i = 0; i < n; ++i) {
    b.s.push_back(uniform(-4.0, 4.0));
    b.y.push_back(graded ? static_cast<double>(randint(0, 4)) : static_cast<double>(randint(0, 1)));
    b.order.push_back(i);
  }
  std::shuffle(b.order.begin(), b.order.end(), g_rng);  // original batch indices (OHEM tie-break)
  if (weights == kPerItem) {
    for (int i = 0; i < n; ++i) b.w.push_back(randint(0, 4) == 0 ? 0.0 : uniform(0.1, 2.0));
  } else if (weights == kScalar) {
    b.w.push_back(0.7);
  }
  std::vector<int> sizes;
  int left = n;
  if (sessions == kHuge && n > 8) {
    sizes.push_back(n / 2);
    left -= n / 2;
  }
  while (left > 0) {
    int len = sessions == kOne ? left : (sessions == kSingles ? 1 : randint(1, 12));
    len = std::min(len, left);
    sizes.push_back(len);
    left -= len;
  }
  std::shuffle(sizes.begin(), sizes.end(), g_rng);
  int at = 0;
  for (int len : sizes) {
    for (int k = 0; k < len; ++k) {
      b.lo.push_back(at);
      b.hi.push_back(at + len);
    }
    at += len;
  }
  return b;
}

template <typename T>
std::vector<T> cast(const std::vector<double>& v) {
  return std::vector<T>(v.begin(), v.end());
}

struct Ref {
  double sum = 0.0, sum_abs = 0.0, count = 0.0;
  // grad_scale: the sum of |w| / T over an item's pairs, the size of one term's d loss / d s bound:
  // float32 pair_eval forms some gradients as a difference near 1 (1 - sigmoid), whose absolute
  // error is float's epsilon times that, not relative to the small result.
  std::vector<double> grad, grad_abs, grad_scale;
};

// SBNZ (k_star == nullptr) or the pairs of one OHEM selection: float64 pair_eval, every unordered pair
// of a session once, from its higher-labelled side. The key is that of acc_t's pair_eval, as the
// kernel's. Items of `skip_session_of` (>= 0) are left out entirely.
template <typename acc_t>
Ref reference(const Batch& b, const Params<double>& prm, const int64_t* k_star = nullptr, int skip_session_of = -1) {
  Ref r;
  r.grad.assign(static_cast<size_t>(b.n), 0.0);
  r.grad_abs.assign(static_cast<size_t>(b.n), 0.0);
  r.grad_scale.assign(static_cast<size_t>(b.n), 0.0);
  const Params<acc_t> pa{prm.kind,
                         prm.flags,
                         static_cast<acc_t>(prm.inv_temperature),
                         static_cast<acc_t>(prm.margin),
                         static_cast<acc_t>(prm.hinge_margin),
                         static_cast<acc_t>(prm.gamma),
                         static_cast<acc_t>(prm.alpha)};
  auto w_of = [&](int i) { return b.w.empty() ? 1.0 : (b.w.size() == 1 ? b.w[0] : b.w[static_cast<size_t>(i)]); };
  for (int p = 0; p < b.n; ++p) {
    if (skip_session_of >= 0 && b.lo[static_cast<size_t>(p)] == b.lo[static_cast<size_t>(skip_session_of)]) continue;
    for (int64_t q = p + 1; q < b.hi[static_cast<size_t>(p)]; ++q) {
      const double yp = transform_label(b.y[static_cast<size_t>(p)], prm);
      const double yq = transform_label(b.y[static_cast<size_t>(q)], prm);
      if (!(yp > yq) && !(yq > yp)) continue;
      const int i = yp > yq ? p : static_cast<int>(q), j = yp > yq ? static_cast<int>(q) : p;
      const PairOut<double> o = pair_eval<double>(b.s[static_cast<size_t>(i)], b.s[static_cast<size_t>(j)],
                                                  transform_label(b.y[static_cast<size_t>(i)], prm),
                                                  transform_label(b.y[static_cast<size_t>(j)], prm), w_of(i), prm);
      if (!o.valid) continue;
      if (k_star != nullptr) {
        const acc_t yti = transform_label<acc_t>(static_cast<acc_t>(b.y[static_cast<size_t>(i)]), pa);
        const acc_t ytj = transform_label<acc_t>(static_cast<acc_t>(b.y[static_cast<size_t>(j)]), pa);
        const PairOut<acc_t> oa = pair_eval<acc_t>(static_cast<acc_t>(b.s[static_cast<size_t>(i)]),
                                                   static_cast<acc_t>(b.s[static_cast<size_t>(j)]), yti, ytj,
                                                   static_cast<acc_t>(w_of(i)), pa);
        uint32_t key[kOhemWords];
        ohem_key(oa.loss, b.order[static_cast<size_t>(i)], b.order[static_cast<size_t>(j)], key);
        if (!ohem_selected(key, k_star) || !(oa.loss > acc_t(0))) continue;
      }
      r.sum += o.loss;
      r.sum_abs += std::fabs(o.loss);
      r.count += (k_star != nullptr || o.v != 0.0) ? 1.0 : 0.0;
      r.grad[static_cast<size_t>(i)] += o.ds_i;
      r.grad[static_cast<size_t>(j)] += o.ds_j;
      r.grad_abs[static_cast<size_t>(i)] += std::fabs(o.ds_i);
      r.grad_abs[static_cast<size_t>(j)] += std::fabs(o.ds_j);
      r.grad_scale[static_cast<size_t>(i)] += std::fabs(w_of(i)) * prm.inv_temperature;
      r.grad_scale[static_cast<size_t>(j)] += std::fabs(w_of(i)) * prm.inv_temperature;
    }
  }
  return r;
}

// Every valid pair's acc_t key (as the kernels compute it), for the OHEM checks.
template <typename acc_t>
std::vector<std::array<uint32_t, kOhemWords>> pair_keys(const Batch& b, const Params<double>& prm) {
  const Params<acc_t> pa{prm.kind,
                         prm.flags,
                         static_cast<acc_t>(prm.inv_temperature),
                         static_cast<acc_t>(prm.margin),
                         static_cast<acc_t>(prm.hinge_margin),
                         static_cast<acc_t>(prm.gamma),
                         static_cast<acc_t>(prm.alpha)};
  std::vector<std::array<uint32_t, kOhemWords>> keys;
  for (int p = 0; p < b.n; ++p) {
    for (int64_t q = p + 1; q < b.hi[static_cast<size_t>(p)]; ++q) {
      const acc_t yp = transform_label<acc_t>(static_cast<acc_t>(b.y[static_cast<size_t>(p)]), pa);
      const acc_t yq = transform_label<acc_t>(static_cast<acc_t>(b.y[static_cast<size_t>(q)]), pa);
      if (!(yp > yq) && !(yq > yp)) continue;
      const size_t i = static_cast<size_t>(yp > yq ? p : q), j = static_cast<size_t>(yp > yq ? q : p);
      const acc_t wi = b.w.empty() ? acc_t(1) : static_cast<acc_t>(b.w.size() == 1 ? b.w[0] : b.w[i]);
      const PairOut<acc_t> o = pair_eval<acc_t>(static_cast<acc_t>(b.s[i]), static_cast<acc_t>(b.s[j]),
                                                yp > yq ? yp : yq, yp > yq ? yq : yp, wi, pa);
      if (!o.valid) continue;
      std::array<uint32_t, kOhemWords> k;
      ohem_key(o.loss, b.order[i], b.order[j], k.data());
      keys.push_back(k);
    }
  }
  std::sort(keys.begin(), keys.end(), std::greater<>());
  return keys;
}

// The batch in acc_t, and the launch arguments every mode shares.
template <typename acc_t>
struct Inputs {
  std::vector<acc_t> s, y, w;
  explicit Inputs(const Batch& b) : s(cast<acc_t>(b.s)), y(cast<acc_t>(b.y)), w(cast<acc_t>(b.w)) {}
  PairwiseLaunchArgs args(const Batch& b, const Params<double>& prm) const {
    PairwiseLaunchArgs a{};
    a.scores = s.data();
    a.labels = y.data();
    a.weight = w.empty() ? nullptr : w.data();
    a.weight_numel = static_cast<int64_t>(w.size());
    a.order = b.order.data();
    a.seg_lo = b.lo.data();
    a.seg_hi = b.hi.data();
    a.n = b.n;
    a.kind = prm.kind;
    a.flags = prm.flags;
    a.temperature = 1.0 / prm.inv_temperature;
    a.margin = prm.margin;
    a.hinge_margin = prm.hinge_margin;
    a.gamma = prm.gamma;
    a.alpha = prm.alpha;
    a.dtype = sizeof(acc_t) == 4 ? kPairwiseF32 : kPairwiseF64;
    return a;
  }
};

struct Out {
  int rc = 0;
  double sum = 0.0, count = 0.0;
  std::vector<double> grad;
};

enum Kernel { kLean, kGeneral };

// One launch of the chosen kernel on host copies of the batch in acc_t.
template <typename acc_t>
Out run(Kernel kernel, const Batch& b, const Params<double>& prm, bool grad, int symmetric, int col_splits,
        int mode = kPairwiseSbnz, const int64_t* words = nullptr) {
  const Inputs<acc_t> in(b);
  std::vector<acc_t> g(static_cast<size_t>(b.n), acc_t(0));
  PairwiseLaunchArgs a = in.args(b, prm);
  a.words = words;
  a.grad = grad ? g.data() : nullptr;
  a.mode = mode;
  a.symmetric = symmetric;
  a.num_blocks = kernel == kLean ? fusedloss_pairwise_sbnz_blocks(b.n) : fusedloss_pairwise_num_blocks(b.n);
  a.col_splits = kernel == kLean ? 1 : col_splits;
  const size_t blocks = static_cast<size_t>(a.num_blocks) * static_cast<size_t>(a.col_splits);
  std::vector<double> partials(2 * blocks, std::nan(""));  // every block must write both of its slots
  a.partials = partials.data();
  Out out;
  out.rc = kernel == kLean ? fusedloss_pairwise_sbnz_cuda(&a, nullptr) : fusedloss_pairwise_cuda(&a, nullptr);
  for (size_t k = 0; k < blocks; ++k) {
    out.sum += partials[k];
    out.count += partials[blocks + k];
  }
  out.grad.assign(g.begin(), g.end());
  return out;
}

void compare(const Out& got, const Ref& want, bool grad, double rtol, const char* ctx, int skip_session_of = -1,
             const Batch* b = nullptr) {
  expect(got.rc == 0, "launch status", got.rc, 0, ctx);
  if (skip_session_of < 0) expect(got.count == want.count, "pair count", got.count, want.count, ctx);
  if (skip_session_of < 0) expect_close("loss sum", got.sum, want.sum, 0.0, rtol * want.sum_abs + 1e-300, ctx);
  if (!grad) {
    for (double v : got.grad) expect(v == 0.0, "grad untouched without compute_grad", v, 0.0, ctx);
    return;
  }
  for (size_t i = 0; i < got.grad.size(); ++i) {
    if (skip_session_of >= 0 && b->lo[i] == b->lo[static_cast<size_t>(skip_session_of)]) continue;
    const double atol = rtol * want.grad_abs[i] + rtol * 1e-2 * want.grad_scale[i] + 1e-300;
    expect_close("grad", got.grad[i], want.grad[i], 0.0, atol, ctx);
  }
}

Params<double> params(int64_t kind, int64_t flags, double t, double margin, double hinge_margin, double gamma = 0.0,
                      double alpha = -1.0) {
  return Params<double>{kind, flags, 1.0 / t, margin, hinge_margin, gamma, alpha};
}

const int kSizes[] = {1, 2, 16, 17, 45, 300, 1100};

void lean_kernel() {
  struct Variant {
    int64_t kind, flags;
    double margin, hinge_margin;
    bool graded;
  };
  const Variant variants[] = {{kPairWise, 0, 0.0, 0.0, false},
                              {kPairWise, 0, 0.25, 0.0, true},
                              {kLogistic, 0, 0.0, 0.0, false},
                              {kLogistic, kHasHingeMargin, 0.0, 0.3, true},
                              {kLogistic, kUseLabelMargin, 0.0, 0.0, true}};
  char ctx[256];
  for (const Variant& v : variants) {
    for (int n : kSizes) {
      for (Sessions ss : {kOne, kSmall, kHuge, kSingles}) {
        if (n == 1100 && ss == kOne && v.kind == kLogistic && v.flags != 0) continue;  // time: the two B^2 ones suffice
        const Weights ws = static_cast<Weights>(randint(0, 2));
        const double t = randint(0, 1) ? 1.0 : 0.6;
        const bool grad = randint(0, 3) != 0;
        const Batch b = make_batch(n, ss, v.graded, ws);
        const Params<double> prm = params(v.kind, v.flags, t, v.margin, v.hinge_margin);
        std::snprintf(ctx, sizeof ctx, "lean kind %lld flags %lld margin %g n %d sessions %d weights %d T %g grad %d",
                      static_cast<long long>(v.kind), static_cast<long long>(v.flags), v.margin, n, ss, ws, t, grad);
        compare(run<float>(kLean, b, prm, grad, 1, 1), reference<float>(b, prm), grad, 1e-4, ctx);
      }
    }
  }
  // A NaN score: its session's pairs are NaN, every other session's loss terms and gradients exact.
  for (int n : {45, 300}) {
    Batch b = make_batch(n, kSmall, false, kNone);
    const int bad = n / 3;
    b.s[static_cast<size_t>(bad)] = std::nan("");
    const Params<double> prm = params(kPairWise, 0, 1.0, 0.0, 0.0);
    const Out got = run<float>(kLean, b, prm, true, 1, 1);
    std::snprintf(ctx, sizeof ctx, "lean NaN score n %d", n);
    compare(got, reference<float>(b, prm, nullptr, bad), true, 1e-4, ctx, bad, &b);
    const double count = reference<float>(b, prm).count;  // validity is the labels'; NaN pairs count
    expect(got.count == count, "pair count with a NaN score", got.count, count, ctx);
    expect(std::isnan(got.sum), "NaN loss sum", got.sum, NAN, ctx);
    for (size_t i = 0; i < got.grad.size(); ++i) {
      if (b.lo[i] != b.lo[static_cast<size_t>(bad)]) expect(std::isfinite(got.grad[i]), "finite grad outside the NaN's session", got.grad[i], 0, ctx);
    }
  }
}

void general_kernel() {
  struct Variant {
    int64_t kind, flags;
    double margin, hinge_margin, gamma, alpha;
    bool graded;
  };
  const Variant variants[] = {{kPairWise, 0, 0.2, 0.0, 0.0, -1.0, false},
                              {kLogistic, kUseLabelMargin, 0.0, 0.0, 0.0, -1.0, true},
                              {kLogistic, kHasHingeMargin, 0.0, 0.4, 0.0, -1.0, false},
                              {kFocal, 0, 0.0, 0.0, 2.0, 0.25, true},
                              {kFocal, kHasHingeMargin, 0.0, 0.5, 1.5, -1.0, false},
                              {kHinge, 0, 0.5, 0.0, 0.0, -1.0, true},
                              {kHinge, kUseLabelMargin | kUseExponent, 0.0, 0.0, 0.0, -1.0, true},
                              {kHinge, kLabelIsLogits | kUseExponent, 0.3, 0.0, 0.0, -1.0, false}};
  char ctx[256];
  for (const Variant& v : variants) {
    for (int n : {1, 5, 130, 300}) {
      for (int sched = 0; sched < 3; ++sched) {  // two-sided, symmetric in 1 group, symmetric in 3
        const int symmetric = sched == 0 ? 0 : 1, splits = sched == 2 ? 3 : 1;
        const Sessions ss = static_cast<Sessions>(randint(0, 2));
        const Weights ws = static_cast<Weights>(randint(0, 2));
        const double t = randint(0, 1) ? 1.0 : 0.6;
        const bool grad = randint(0, 3) != 0;
        const Batch b = make_batch(n, ss, v.graded, ws);
        const Params<double> prm = params(v.kind, v.flags, t, v.margin, v.hinge_margin, v.gamma, v.alpha);
        for (int f64 = 0; f64 < 2; ++f64) {
          std::snprintf(ctx, sizeof ctx,
                        "general %s kind %lld flags %lld n %d sched %d sessions %d weights %d T %g grad %d",
                        f64 ? "f64" : "f32", static_cast<long long>(v.kind), static_cast<long long>(v.flags), n,
                        sched, ss, ws, t, grad);
          if (f64) {
            compare(run<double>(kGeneral, b, prm, grad, symmetric, splits), reference<double>(b, prm), grad, 1e-10, ctx);
          } else {
            compare(run<float>(kGeneral, b, prm, grad, symmetric, splits), reference<float>(b, prm), grad, 1e-4, ctx);
          }
        }
      }
    }
  }
}

// pairwise_ohem_hist for one digit: the launcher's histogram (zeroed by the caller, as the binding does).
template <typename acc_t>
std::vector<unsigned long long> run_hist(const Batch& b, const Params<double>& prm, int symmetric, int splits,
                                         const int64_t* state, int digit, int* rc) {
  const Inputs<acc_t> in(b);
  std::vector<unsigned long long> hist(kPairwiseHistBins, 0ull);
  PairwiseLaunchArgs a = in.args(b, prm);
  a.words = state;
  a.hist = hist.data();
  a.mode = kPairwiseHist;
  a.digit = digit;
  a.symmetric = symmetric;
  a.num_blocks = fusedloss_pairwise_num_blocks(b.n);
  a.col_splits = splits;
  *rc = fusedloss_pairwise_cuda(&a, nullptr);
  return hist;
}

template <typename acc_t>
void ohem_case(const Batch& b, const Params<double>& prm, const char* name) {
  char ctx[256];
  const auto keys = pair_keys<acc_t>(b, prm);
  if (keys.size() < 3) return;
  const auto& ks = keys[keys.size() / 3];  // K*: the k-th largest key, k = a third of the pairs
  int64_t words[kOhemWords + 1];
  for (int k = 0; k < kOhemWords; ++k) words[k] = static_cast<int64_t>(ks[static_cast<size_t>(k)]);
  const int low_digit = sizeof(acc_t) == 4 ? 6 : 3;  // float keys: word 1 is 0 (the driver skips it)
  for (int sched = 0; sched < 3; ++sched) {
    const int symmetric = sched == 0 ? 0 : 1, splits = sched == 2 ? 3 : 1;
    for (int digit : {0, 1, low_digit}) {
      words[kOhemWords] = 0;  // not done
      int rc = 0;
      const auto hist = run_hist<acc_t>(b, prm, symmetric, splits, words, digit, &rc);
      std::vector<unsigned long long> want(kPairwiseHistBins, 0ull);
      for (const auto& k : keys) {
        if (ohem_prefix_match(k.data(), words, digit)) ++want[ohem_digit(k.data(), digit)];
      }
      std::snprintf(ctx, sizeof ctx, "%s hist sched %d digit %d", name, sched, digit);
      expect(rc == 0, "hist launch status", rc, 0, ctx);
      int bad = 0;
      for (int i = 0; i < kPairwiseHistBins; ++i) bad += hist[static_cast<size_t>(i)] != want[static_cast<size_t>(i)];
      expect(bad == 0, "histogram bins that differ", bad, 0, ctx);
    }
    words[kOhemWords] = 1;  // done: the kernel leaves the zeros
    int rc = 0;
    const auto hist = run_hist<acc_t>(b, prm, symmetric, splits, words, 0, &rc);
    unsigned long long total = 0;
    for (unsigned long long h : hist) total += h;
    std::snprintf(ctx, sizeof ctx, "%s hist done sched %d", name, sched);
    expect(rc == 0 && total == 0, "hist after done", static_cast<double>(total), 0, ctx);

    words[kOhemWords] = 1;  // select enabled
    std::snprintf(ctx, sizeof ctx, "%s select sched %d", name, sched);
    const double rtol = sizeof(acc_t) == 4 ? 1e-4 : 1e-10;
    compare(run<acc_t>(kGeneral, b, prm, true, symmetric, splits, kPairwiseSelect, words),
            reference<acc_t>(b, prm, words), true, rtol, ctx);
    words[kOhemWords] = 0;  // k == 0: nothing selected
    std::snprintf(ctx, sizeof ctx, "%s select disabled sched %d", name, sched);
    const Out none = run<acc_t>(kGeneral, b, prm, true, symmetric, splits, kPairwiseSelect, words);
    expect(none.rc == 0 && none.sum == 0.0 && none.count == 0.0, "disabled select", none.sum, 0.0, ctx);
    for (double gv : none.grad) expect(gv == 0.0, "disabled select grad", gv, 0.0, ctx);
  }
}

void ohem_modes() {
  const Batch b1 = make_batch(300, kHuge, true, kPerItem);
  ohem_case<float>(b1, params(kPairWise, 0, 1.0, 0.0, 0.0), "f32 pair_wise");
  ohem_case<double>(b1, params(kFocal, 0, 0.7, 0.0, 0.0, 2.0, 0.25), "f64 focal");
  const Batch b2 = make_batch(140, kOne, false, kNone);  // many equal losses: ties broken by index
  Batch tied = b2;
  for (double& s : tied.s) s = std::round(s);
  ohem_case<float>(tied, params(kLogistic, 0, 1.0, 0.0, 0.0), "f32 logistic ties");
  ohem_case<double>(tied, params(kHinge, 0, 1.0, 0.5, 0.0), "f64 hinge ties");
}

void launch_checks() {
  const Batch b = make_batch(40, kSmall, false, kNone);
  const Params<double> prm = params(kPairWise, 0, 1.0, 0.0, 0.0);
  const std::vector<float> s = cast<float>(b.s), y = cast<float>(b.y);
  std::vector<double> partials(64, 0.0);
  auto base = [&]() {
    PairwiseLaunchArgs a{};
    a.scores = s.data();
    a.labels = y.data();
    a.order = b.order.data();
    a.seg_lo = b.lo.data();
    a.seg_hi = b.hi.data();
    a.partials = partials.data();
    a.n = b.n;
    a.kind = prm.kind;
    a.temperature = 1.0;
    a.dtype = kPairwiseF32;
    a.mode = kPairwiseSbnz;
    a.symmetric = 1;
    a.col_splits = 1;
    return a;
  };
  PairwiseLaunchArgs a = base();
  a.num_blocks = fusedloss_pairwise_sbnz_blocks(b.n) + 1;
  expect(fusedloss_pairwise_sbnz_cuda(&a, nullptr) == kPairwiseBadArgs, "lean: wrong block count", 0, 0, "");
  a = base();
  a.num_blocks = fusedloss_pairwise_sbnz_blocks(b.n);
  a.kind = kFocal;
  expect(fusedloss_pairwise_sbnz_cuda(&a, nullptr) == kPairwiseBadArgs, "lean: focal refused", 0, 0, "");
  a = base();
  a.num_blocks = fusedloss_pairwise_sbnz_blocks(b.n);
  a.temperature = 0.0;
  expect(fusedloss_pairwise_sbnz_cuda(&a, nullptr) == kPairwiseBadArgs, "lean: temperature 0", 0, 0, "");
  a = base();
  a.num_blocks = fusedloss_pairwise_num_blocks(b.n);
  a.col_splits = 0;
  expect(fusedloss_pairwise_cuda(&a, nullptr) == kPairwiseBadArgs, "general: col_splits 0", 0, 0, "");
  a = base();
  a.num_blocks = fusedloss_pairwise_num_blocks(b.n);
  a.dtype = 7;
  expect(fusedloss_pairwise_cuda(&a, nullptr) == kPairwiseBadDType, "general: bad dtype", 0, 0, "");
  a = base();
  a.n = 0;
  a.num_blocks = 0;
  expect(fusedloss_pairwise_cuda(&a, nullptr) == 0 && fusedloss_pairwise_sbnz_cuda(&a, nullptr) == 0,
         "empty batch launches nothing", 0, 0, "");
}

}  // namespace

int main() {
  flsim::g_rng.seed(20261125);
  const fltest::Group groups[] = {{"lean kernel", lean_kernel},
                                  {"general kernel", general_kernel},
                                  {"ohem modes", ohem_modes},
                                  {"launch checks", launch_checks}};
  return fltest::run_groups("test_pairwise_cuda_sim", groups);
}
