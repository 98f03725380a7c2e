// The CUDA kernel of binary_focal_fwd (focal_cuda.cu: the shared grid-stride kernel of
// common/elementwise_cuda.cuh with the focal functor), run on the CPU by the emulator of
// csrc/tests/cuda_sim through its extern "C" launcher, against a float64 O(n) loop over
// binary_focal_elem (focal_math.h, checked against spec sections 2.5 and 11 by test_focal_math.cpp)
// on the same (rounded) inputs and acc_t-rounded parameters. Run by ctest; exits nonzero on any
// failure. Per element the loss (when stored) and the gradient (when stored) must be within rtol of
// the magnitude of the terms that form them (float64 1e-12, float32 2e-6; half types add the rounding
// of the stored value), the per-block partials' loss sum within that plus the accumulation's rounding,
// the partials' count (elements with v != 0) exact; mean and SBNZ are finished from the partials as
// the binding does (elementwise_op.h's finish_device). Every block must write both of its partials
// slots, every element its loss / gradient (outputs start as NaN), nothing past numel (sentinels).
//
//  1. Every input dtype (float32, float64, float16, bfloat16) x every target dtype (those four, uint8 /
//     bool, int8, int16, int32, int64): 36 kernels, soft or hard targets, random mode and options.
//  2. float32 and float64 input, sizes 1, 31, 32, 33, 255, 256, 257, 700, 2100, 5000 (one block to
//     eight, grid-stride loops of one to three passes, an explicit 3-block grid) x BCE (plain, label
//     smoothing + pos_weight), torchvision (gamma 2 / 0 / 1.5, alpha 0.25 / none / 1) and EasyRec
//     (gamma 2 / 1, alpha, smoothing), logits in [-6, 6] with some at +-12, +-20, +-30; with and
//     without the stored loss (reduction none or not) and the gradient.
//  3. The weight and pos_weight tables in each of Table::at's paths: absent, scalar (mod 1), full
//     (div 1, mod >= numel), innermost broadcast (div 1, mod 7), outer broadcast (div 5), and the
//     64-bit index path (mod 2^33); weights with zeros (not counted).
//  4. SBNZ counts: all weights 0 (count 0, SBNZ loss 0), alpha 1 with hard targets (a = 0 for t = 0).
//  5. Launch arguments the launcher rejects: null args, numel < 0, no blocks, null input / target /
//     partials, bad weight or pos_weight layout (kFlElemBadArgs), non-floating input dtype
//     (kFlElemBadInputDType), unknown target dtype (kFlElemBadTargetDType); the empty input returns 0
//     and launches nothing.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "check.h"
#include "elementwise_sim_data.h"
#include "../focal/focal_cuda.h"
#include "../focal/focal_math.h"

using namespace fusedloss::focal;
using fltest::expect;
using fltest::expect_close;

namespace {

using namespace flsim_elem;

struct Case {
  int input = kFlElemF32, target = kFlElemF32;
  int64_t n = 1;
  int sm = 132;     // SM count for fusedloss_elementwise_num_blocks
  int blocks = 0;   // > 0: this grid instead
  Layout wl = kAbsent, pwl = kAbsent;
  double w_zero = 0.2;  // fraction of zero weights
  int64_t mode = kBCE;
  double alpha = -1.0, gamma = 2.0, eps = 0.0;
  bool loss = true, grad = true;
  bool hard = false;      // floating targets in {0, 1} (integer targets always are)
  bool extremes = true;   // some logits at +-12, +-20, +-30
};

// The float64 truth of one element, and the magnitudes of the terms that form its loss and gradient
// (what acc_t's rounding is relative to).
struct Truth {
  ElemOut<double> o;
  double loss_mag, grad_mag;
};

Truth truth(double x, double t, double w, double pw, bool has_pw, const Params<double>& prm) {
  Truth r;
  r.o = binary_focal_elem<double>(x, t, w, pw, has_pw, prm);
  const double e = std::exp(-std::fabs(x)), inv = 1.0 / (1.0 + e);
  const double p = x >= 0 ? inv : e * inv, pm = x >= 0 ? e * inv : inv;
  const double z = prm.smoothing > 0 ? t * (1 - prm.smoothing) + 0.5 * prm.smoothing : t;
  const double l1p = std::log1p(e);
  double ce, dce;
  if (has_pw) {
    const double lw = std::fabs(1 + (pw - 1) * z);
    ce = std::fabs((1 - z) * x) + lw * (l1p + (x < 0 ? -x : 0.0));
    dce = std::fabs(1 - z) + lw * pm;
  } else {
    ce = (x > 0 ? x : 0.0) + std::fabs(x * z) + l1p;
    dce = p + std::fabs(z);
  }
  double m = 1.0, dm = 0.0;
  if (prm.mode != kBCE) {
    const double pq = prm.mode == kEasyRec ? clip_prob(p) : p, pmq = prm.mode == kEasyRec ? clip_prob(pm) : pm;
    const double q = pq * (1 - t) + pmq * t;
    double dm_dq;
    modulating_pow<double>(q, prm.gamma, &m, &dm_dq);
    // q^gamma through exp(gamma log q): relative error grows with gamma |log q|.
    const double k = 1.0 + (q > 0 ? prm.gamma * std::fabs(std::log(q)) : 0.0);
    m *= k;
    dm = std::fabs(dm_dq) * (1 + 2 * std::fabs(t)) * p * pm * k;
  }
  const double a = prm.alpha >= 0 ? std::fabs(prm.alpha * t) + std::fabs((1 - prm.alpha) * (1 - t)) : 1.0;
  r.loss_mag = std::fabs(w) * a * m * ce;
  r.grad_mag = std::fabs(w) * a * (dm * ce + m * dce);
  return r;
}

double rtol_of(int input) { return input == kFlElemF64 ? 1e-12 : 2e-6; }

// Tolerance of a stored output whose float64 value is `want` and whose terms have magnitude `mag`.
double tol_stored(int input, double want, double mag) {
  const double acc = rtol_of(input) * mag + 1e-300;
  if (input == kFlElemF16) return acc + std::ldexp(std::fabs(want) + acc, -11) + std::ldexp(1.0, -25);
  // bf16 keeps float32's exponent range: below 2^-126 its spacing is 2^-133, a float32 subnormal.
  if (input == kFlElemBF16) return acc + std::ldexp(std::fabs(want) + acc, -8) + std::ldexp(1.0, -133);
  return acc;
}

FocalLaunchArgs base_args() {
  FocalLaunchArgs a{};
  a.io.weight_div = a.io.weight_mod = 1;
  a.pos_weight_div = a.pos_weight_mod = 1;
  return a;
}

void run_case(const Case& c) {
  const size_t n = static_cast<size_t>(c.n);
  const size_t xs = dsize(c.input);
  std::vector<unsigned char> xb(n * xs), tb(n * dsize(c.target));
  std::vector<double> x(n), t(n);
  for (size_t i = 0; i < n; ++i) {
    double xv = uniform(-6.0, 6.0);
    if (c.extremes && randint(0, 24) == 0) {
      const double mags[] = {12.0, 20.0, 30.0};
      xv = (randint(0, 1) ? 1.0 : -1.0) * (mags[randint(0, 2)] + uniform(-0.5, 0.5));
    }
    const double tv = (c.hard || !is_float(c.target)) ? static_cast<double>(randint(0, 1)) : uniform(0.0, 1.0);
    put(c.input, xb.data(), i, xv);
    put(c.target, tb.data(), i, tv);
    x[i] = get(c.input, xb.data(), i);
    t[i] = get(c.target, tb.data(), i);
  }
  const Table w = make_table(c.wl, c.n, c.input, 0.2, 2.0, c.w_zero);
  const Table pw = make_table(c.pwl, c.n, c.input, 0.5, 3.0, 0.0);
  const int nb = c.blocks > 0 ? c.blocks : fusedloss_elementwise_num_blocks(c.n, c.sm);
  constexpr size_t kTail = 4;  // sentinel elements past numel
  std::vector<unsigned char> loss((n + kTail) * xs, 0xFF), grad((n + kTail) * xs, 0xFF);  // NaN in every dtype
  std::vector<double> partials(2 * static_cast<size_t>(nb), std::nan(""));

  FocalLaunchArgs a = base_args();
  a.io.input = xb.data();
  a.io.target = tb.data();
  a.io.weight = w.ptr();
  a.io.loss = c.loss ? loss.data() : nullptr;
  a.io.grad = c.grad ? grad.data() : nullptr;
  a.io.partials = partials.data();
  a.io.numel = c.n;
  a.io.weight_div = w.div;
  a.io.weight_mod = w.mod;
  a.io.input_dtype = c.input;
  a.io.target_dtype = c.target;
  a.io.num_blocks = nb;
  a.pos_weight = pw.ptr();
  a.pos_weight_div = pw.div;
  a.pos_weight_mod = pw.mod;
  a.mode = c.mode;
  a.alpha = c.alpha;
  a.gamma = c.gamma;
  a.label_smoothing = c.eps;
  const int rc = fusedloss_binary_focal_fwd_cuda(&a, nullptr);

  char ctx[320];
  std::snprintf(ctx, sizeof ctx,
                "in %s target %s n %lld blocks %d weight %s pos_weight %s mode %lld alpha %g gamma %g eps %g loss %d "
                "grad %d hard %d",
                kDTypeNames[c.input], kDTypeNames[c.target], static_cast<long long>(c.n), nb, kLayoutNames[c.wl],
                kLayoutNames[c.pwl], static_cast<long long>(c.mode), c.alpha, c.gamma, c.eps, c.loss, c.grad,
                c.hard);
  expect(rc == 0, "launch status", rc, 0, ctx);

  const Params<double> prm{c.mode, acc_round(c.input, c.alpha), acc_round(c.input, c.gamma), acc_round(c.input, c.eps)};
  double sum = 0.0, sum_abs = 0.0, sum_mag = 0.0, count = 0.0;
  int bad_loss = 0, bad_grad = 0;
  for (size_t i = 0; i < n; ++i) {
    const int64_t ii = static_cast<int64_t>(i);
    const Truth r = truth(x[i], t[i], w.at(ii), pw.at(ii), c.pwl != kAbsent, prm);
    sum += r.o.loss;
    sum_abs += std::fabs(r.o.loss);
    sum_mag += r.loss_mag;
    count += r.o.v != 0.0 ? 1.0 : 0.0;
    if (c.loss) {
      const double got = get(c.input, loss.data(), i);
      const bool ok = std::fabs(got - r.o.loss) <= tol_stored(c.input, r.o.loss, r.loss_mag);
      if (!ok && bad_loss++ < 3) expect(false, "loss", got, r.o.loss, ctx);
    }
    if (c.grad) {
      const double got = get(c.input, grad.data(), i);
      const bool ok = std::fabs(got - r.o.grad) <= tol_stored(c.input, r.o.grad, r.grad_mag);
      if (!ok && bad_grad++ < 3) expect(false, "grad", got, r.o.grad, ctx);
    }
  }
  if (c.loss) expect(bad_loss == 0, "elements with a wrong loss", bad_loss, 0, ctx);
  if (c.grad) expect(bad_grad == 0, "elements with a wrong grad", bad_grad, 0, ctx);
  const std::vector<unsigned char> ff(kTail * xs, 0xFF);
  expect(std::memcmp(loss.data() + n * xs, ff.data(), ff.size()) == 0, "loss untouched past numel", 0, 0, ctx);
  expect(std::memcmp(grad.data() + n * xs, ff.data(), ff.size()) == 0, "grad untouched past numel", 0, 0, ctx);

  // Partials: every block writes both slots; the binding sums them (finish_device).
  double got_sum = 0.0, got_count = 0.0;
  int unwritten = 0;
  for (int b = 0; b < nb; ++b) {
    unwritten += std::isnan(partials[static_cast<size_t>(b)]) + std::isnan(partials[static_cast<size_t>(nb + b)]);
    got_sum += partials[static_cast<size_t>(b)];
    got_count += partials[static_cast<size_t>(nb + b)];
  }
  expect(unwritten == 0, "unwritten partials slots", unwritten, 0, ctx);
  const double passes = std::ceil(static_cast<double>(c.n) / (static_cast<double>(nb) * kFlElemThreads));
  const double eps_acc = c.input == kFlElemF64 ? 0x1p-52 : 0x1p-23;
  const double sum_tol = rtol_of(c.input) * sum_mag + (passes + 16) * eps_acc * sum_abs + 1e-300;
  expect_close("loss sum (partials)", got_sum, sum, 0.0, sum_tol, ctx);
  expect(got_count == count, "count of v != 0 (partials)", got_count, count, ctx);
  expect_close("mean (finished)", got_sum / static_cast<double>(c.n), sum / static_cast<double>(c.n), 0.0,
               sum_tol / static_cast<double>(c.n), ctx);
  const double sbnz_got = got_count > 0 ? got_sum / got_count : 0.0, sbnz_want = count > 0 ? sum / count : 0.0;
  expect_close("SBNZ (finished)", sbnz_got, sbnz_want, 0.0, count > 0 ? sum_tol / count : 0.0, ctx);
}

Layout random_layout() { return static_cast<Layout>(randint(0, kNumLayouts - 1)); }

// A random mode and its options.
void random_options(Case* c) {
  c->mode = randint(0, 2);
  const double gammas[] = {0.0, 1.0, 1.5, 2.0};
  c->gamma = gammas[randint(0, 3)];
  c->alpha = randint(0, 1) ? -1.0 : 0.25;
  c->eps = randint(0, 2) == 0 ? 0.1 : 0.0;
}

void dtype_grid() {
  for (int in = kFlElemF32; in <= kFlElemBF16; ++in) {
    for (int tg = kFlElemF32; tg <= kFlElemI64; ++tg) {
      Case c;
      c.input = in;
      c.target = tg;
      c.n = 300;
      c.hard = randint(0, 1) == 0;
      c.wl = random_layout();
      c.pwl = random_layout();
      random_options(&c);
      run_case(c);
    }
  }
}

void sizes_and_options() {
  struct Variant {
    int64_t mode;
    double alpha, gamma, eps;
    bool pos_weight;
  };
  const Variant variants[] = {{kBCE, -1.0, 2.0, 0.0, false},        {kBCE, -1.0, 2.0, 0.1, true},
                              {kTorchvision, 0.25, 2.0, 0.0, false}, {kTorchvision, 0.25, 0.0, 0.0, false},
                              {kTorchvision, -1.0, 1.5, 0.0, true},  {kTorchvision, 1.0, 2.0, 0.0, false},
                              {kEasyRec, 0.25, 2.0, 0.05, false},    {kEasyRec, 0.75, 1.0, 0.0, true}};
  const int64_t sizes[] = {1, 31, 32, 33, 255, 256, 257, 700, 2100, 5000};
  int k = 0;
  for (int in : {kFlElemF32, kFlElemF64}) {
    for (int64_t n : sizes) {
      for (const Variant& v : variants) {
        if (n >= 700 && (k++ % 3) != 0) continue;  // time: a third of the variants at the large sizes
        Case c;
        c.input = in;
        c.target = in;
        c.n = n;
        if (n == 700 || n == 2100) c.sm = 1;  // 3 and 8 blocks; 2100: a second grid-stride pass
        if (n == 5000) c.blocks = 3;          // an explicit grid: 7 passes
        c.mode = v.mode;
        c.alpha = v.alpha;
        c.gamma = v.gamma;
        c.eps = v.eps;
        c.hard = randint(0, 2) == 0;
        c.wl = randint(0, 1) ? kFull : kAbsent;
        c.pwl = v.pos_weight ? kFull : kAbsent;
        const int outputs = randint(0, 3);
        c.loss = outputs & 1;
        c.grad = outputs & 2;
        run_case(c);
      }
    }
  }
}

void tables() {
  for (int l = kAbsent; l < kNumLayouts; ++l) {
    for (int in : {kFlElemF32, kFlElemF64}) {
      Case c;
      c.input = c.target = in;
      c.n = 300;
      c.wl = static_cast<Layout>(l);
      c.pwl = static_cast<Layout>((l + 2) % kNumLayouts);
      c.mode = kTorchvision;
      c.alpha = 0.25;
      run_case(c);
    }
  }
}

void sbnz_counts() {
  Case c;
  c.n = 400;
  c.wl = kScalar;
  c.w_zero = 1.0;  // weight 0: nothing counted, sum 0, SBNZ 0
  run_case(c);
  c.wl = kOuter;
  c.w_zero = 0.5;
  run_case(c);
  c.wl = kAbsent;
  c.mode = kTorchvision;
  c.alpha = 1.0;  // a = 0 where t = 0
  c.hard = true;
  c.target = kFlElemU8;
  run_case(c);
}

void launch_checks() {
  std::vector<float> x(64, 0.5f), t(64, 1.0f), tab(4, 1.0f);
  std::vector<double> partials(8, -7.0);
  auto valid = [&]() {
    FocalLaunchArgs a = base_args();
    a.io.input = x.data();
    a.io.target = t.data();
    a.io.partials = partials.data();
    a.io.numel = 64;
    a.io.input_dtype = kFlElemF32;
    a.io.target_dtype = kFlElemF32;
    a.io.num_blocks = 1;
    a.mode = kBCE;
    a.alpha = -1.0;
    a.gamma = 2.0;
    return a;
  };
  FocalLaunchArgs a = valid();
  expect(fusedloss_binary_focal_fwd_cuda(&a, nullptr) == 0, "valid arguments launch", 0, 0, "");
  expect_close("valid launch's sum", partials[0], 64 * std::log1p(std::exp(-0.5)), 1e-6, 0.0, "");  // BCE, t = 1
  expect(partials[1] == 64.0, "valid launch's count", partials[1], 64.0, "");
  expect(fusedloss_binary_focal_fwd_cuda(nullptr, nullptr) == kFlElemBadArgs, "null args", 0, 0, "");
  struct Bad {
    const char* what;
    void (*edit)(FocalLaunchArgs*);
    int rc;
  };
  const Bad bads[] = {
      {"numel < 0", [](FocalLaunchArgs* p) { p->io.numel = -1; }, kFlElemBadArgs},
      {"no blocks", [](FocalLaunchArgs* p) { p->io.num_blocks = 0; }, kFlElemBadArgs},
      {"null input", [](FocalLaunchArgs* p) { p->io.input = nullptr; }, kFlElemBadArgs},
      {"null target", [](FocalLaunchArgs* p) { p->io.target = nullptr; }, kFlElemBadArgs},
      {"null partials", [](FocalLaunchArgs* p) { p->io.partials = nullptr; }, kFlElemBadArgs},
      {"input dtype u8", [](FocalLaunchArgs* p) { p->io.input_dtype = kFlElemU8; }, kFlElemBadInputDType},
      {"input dtype 99", [](FocalLaunchArgs* p) { p->io.input_dtype = 99; }, kFlElemBadInputDType},
      {"input dtype -1", [](FocalLaunchArgs* p) { p->io.input_dtype = -1; }, kFlElemBadInputDType},
      {"target dtype 9", [](FocalLaunchArgs* p) { p->io.target_dtype = 9; }, kFlElemBadTargetDType},
      {"target dtype -1", [](FocalLaunchArgs* p) { p->io.target_dtype = -1; }, kFlElemBadTargetDType},
  };
  for (const Bad& b : bads) {
    a = valid();
    b.edit(&a);
    partials.assign(8, -7.0);
    const int rc = fusedloss_binary_focal_fwd_cuda(&a, nullptr);
    expect(rc == b.rc, b.what, rc, b.rc, "rejected");
    expect(partials[0] == -7.0 && partials[1] == -7.0, b.what, partials[0], -7.0, "nothing launched");
  }
  // Table layouts: div or mod 0 with a table is rejected; without one it is ignored.
  for (int which = 0; which < 4; ++which) {
    a = valid();
    int64_t* const fields[] = {&a.io.weight_div, &a.io.weight_mod, &a.pos_weight_div, &a.pos_weight_mod};
    *fields[which] = 0;
    expect(fusedloss_binary_focal_fwd_cuda(&a, nullptr) == 0, "zero layout without a table", which, 0, "");
    if (which < 2) {
      a.io.weight = tab.data();
    } else {
      a.pos_weight = tab.data();
    }
    expect(fusedloss_binary_focal_fwd_cuda(&a, nullptr) == kFlElemBadArgs, "zero layout with a table", which,
           kFlElemBadArgs, "");
  }
  // The empty input: 0, nothing launched, whatever else the arguments say.
  a = valid();
  a.io.numel = 0;
  a.io.num_blocks = 0;
  a.io.input = a.io.target = nullptr;
  a.io.input_dtype = 99;
  partials.assign(8, -7.0);
  expect(fusedloss_binary_focal_fwd_cuda(&a, nullptr) == 0 && partials[0] == -7.0, "empty input", 0, 0, "");
}

}  // namespace

int main() {
  flsim::g_rng.seed(20261126);
  const fltest::Group groups[] = {{"dtype grid", dtype_grid},
                                  {"sizes and options", sizes_and_options},
                                  {"tables", tables},
                                  {"sbnz counts", sbnz_counts},
                                  {"launch checks", launch_checks}};
  return fltest::run_groups("test_focal_cuda_sim", groups);
}
