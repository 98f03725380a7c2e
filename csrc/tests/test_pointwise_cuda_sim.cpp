// The CUDA kernel of pointwise_fwd (pointwise_cuda.cu: the shared grid-stride kernel of
// common/elementwise_cuda.cuh with the pointwise functor), run on the CPU by the emulator of
// csrc/tests/cuda_sim through its extern "C" launcher, against a float64 O(n) loop over
// pointwise_elem (pointwise_math.h, checked against the spec by test_pointwise_math.cpp) times the
// element's weight, on the same (rounded) inputs and the acc_t-rounded parameter. Run by ctest; exits
// nonzero on any failure. Per element the loss (when stored) and the gradient (when stored) must be
// within rtol of the magnitude of the terms that form them (float64 1e-12, float32 1e-6; half types
// add the rounding of the stored value), the per-block partials' loss sum within that plus the
// accumulation's rounding, the partials' count (weights != 0) exact; mean and SBNZ are finished from
// the partials as the binding does (elementwise_op.h's finish_device). Every block must write both of
// its partials slots, every element its loss / gradient (outputs start as NaN), nothing past numel.
//
//  1. Every kind (L1, MSE, Huber, SmoothL1, LogCosh, MAPE, Hinge, SquaredHinge, Exponential,
//     SigmoidMSE, LogLoss, KLDiv, KLDivLogTarget) x every input dtype (float32, float64, float16,
//     bfloat16; the target has the input's), inputs in each kind's domain, random weight layout.
//  2. float32 and float64, sizes 1, 31, 32, 33, 255, 256, 257, 700, 2100, 5000 (one block to eight,
//     grid-stride loops of one to three passes, an explicit 3-block grid) x the kinds with their
//     parameters' branches (Huber delta 1 / 0.5, SmoothL1 beta 1 / 0.3 / 0, MAPE epsilon 1e-7 / 1,
//     LogLoss epsilon 1e-7 / 0), with and without the stored loss and the gradient.
//  3. The weight table in each of Table::at's paths: absent, scalar (mod 1), full (div 1, mod >=
//     numel), innermost broadcast (div 1, mod 7), outer broadcast (div 5), 64-bit index path (mod 2^33).
//  4. SBNZ counts: all weights 0 (count 0, SBNZ loss 0), a third of the weights 0.
//  5. Launch arguments the launcher rejects: null args, numel < 0, no blocks, null input / target /
//     partials, bad weight layout, kind < 0 or >= kNumKinds (kFlElemBadArgs), a target dtype other than
//     the input's (kFlElemBadTargetDType), non-floating input dtype (kFlElemBadInputDType); the empty
//     input returns 0 and launches nothing.
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
#include "../pointwise/pointwise_cuda.h"
#include "../pointwise/pointwise_math.h"

using namespace fusedloss::pointwise;
using fltest::expect;
using fltest::expect_close;

namespace {

using namespace flsim_elem;

const char* const kKindNames[] = {"l1",          "mse",         "huber",     "smooth_l1",   "log_cosh",
                                  "mape",        "hinge",       "sq_hinge",  "exponential", "sigmoid_mse",
                                  "log_loss",    "kl_div",      "kl_div_log_target"};

struct Case {
  int input = kFlElemF32;
  int64_t n = 1;
  int sm = 132;    // SM count for fusedloss_elementwise_num_blocks
  int blocks = 0;  // > 0: this grid instead
  Layout wl = kAbsent;
  double w_zero = 0.2;  // fraction of zero weights
  int64_t kind = kL1;
  double param = 0.0;
  bool loss = true, grad = true;
};

// A prediction and a target in the kind's domain.
void sample(int64_t kind, double* x, double* y) {
  switch (kind) {
    case kHinge:
    case kSquaredHinge:
    case kExponential:
      *x = uniform(-3.0, 3.0);
      *y = randint(0, 1) ? 1.0 : -1.0;
      break;
    case kSigmoidMSE:
      *x = uniform(-8.0, 8.0);
      *y = randint(0, 2) == 0 ? static_cast<double>(randint(0, 1)) : uniform(0.0, 1.0);
      break;
    case kLogLoss:  // x a probability
      *x = uniform(0.02, 0.98);
      *y = randint(0, 2) == 0 ? static_cast<double>(randint(0, 1)) : uniform(0.0, 1.0);
      break;
    case kKLDiv:  // x = log q, y a probability (some exactly 0)
      *x = uniform(-5.0, 0.0);
      *y = randint(0, 4) == 0 ? 0.0 : uniform(0.0, 1.0);
      break;
    case kKLDivLogTarget:
      *x = uniform(-5.0, 0.0);
      *y = uniform(-5.0, 0.5);
      break;
    default:
      *x = uniform(-3.0, 3.0);
      *y = uniform(-3.0, 3.0);
      break;
  }
}

// The magnitudes of the terms that form an element's loss and gradient (unweighted): what acc_t's
// rounding is relative to. s = |x| + |y| bounds the rounding of d = x - y.
void magnitudes(int64_t kind, double x, double y, double a, double* lm, double* gm) {
  const double s = std::fabs(x) + std::fabs(y);
  switch (kind) {
    case kL1:
      *lm = s;
      *gm = 1.0;
      break;
    case kMSE:
      *lm = s * s;
      *gm = 2.0 * s;
      break;
    case kHuber:
      *lm = s * (s + a) + a * a;
      *gm = s + a;
      break;
    case kSmoothL1:
      *lm = s + a + (a > 0 ? s * s / a : 0.0);
      *gm = 1.0 + (a > 0 ? s / a : 0.0);
      break;
    case kLogCosh:
      *lm = s + 1.0;
      *gm = s + 1.0;
      break;
    case kMAPE: {
      const double inv = 100.0 / std::fmax(std::fabs(y), a);
      *lm = s * inv;
      *gm = inv;
      break;
    }
    case kHinge:
      *lm = 1.0 + std::fabs(x * y);
      *gm = std::fabs(y);
      break;
    case kSquaredHinge:
      *lm = (1.0 + std::fabs(x * y)) * (1.0 + std::fabs(x * y));
      *gm = 2.0 * std::fabs(y) * (1.0 + std::fabs(x * y));
      break;
    case kExponential: {
      const double e = std::exp(-y * x);
      *lm = e * (1.0 + std::fabs(x * y));
      *gm = std::fabs(y) * e * (1.0 + std::fabs(x * y));
      break;
    }
    case kSigmoidMSE:
      *lm = (1.0 + std::fabs(y)) * (1.0 + std::fabs(y));
      *gm = 2.0 * (1.0 + std::fabs(y));
      break;
    case kLogLoss: {
      const double p = x + a, q = 1.0 - x + a;  // q: 1 - x rounds absolutely
      *lm = std::fabs(y) * (std::fabs(std::log(p)) + 1.0) + std::fabs(1.0 - y) * (std::fabs(std::log(q)) + 1.0 / q);
      *gm = (std::fabs(y) / p + std::fabs(1.0 - y) / q) * (1.0 + 1.0 / q);
      break;
    }
    case kKLDiv:
      *lm = std::fabs(y) * (std::fabs(y > 0 ? std::log(y) : 0.0) + std::fabs(x) + 1.0);
      *gm = std::fabs(y);
      break;
    default: {  // kKLDivLogTarget
      const double e = std::exp(y);
      *lm = e * (std::fabs(y) + std::fabs(x)) * (1.0 + std::fabs(y));
      *gm = e * (1.0 + std::fabs(y));
      break;
    }
  }
}

double rtol_of(int input) { return input == kFlElemF64 ? 1e-12 : 1e-6; }

// Tolerance of a stored output whose float64 value is `want` and whose terms have magnitude `mag`.
// Whether got is want stored in the input dtype, where that overflows it (half's 65504): the
// kernel's rounding of a finite acc_t value to infinity is the right result there.
bool overflow_matches(int input, double got, double want) {
  std::vector<unsigned char> b(8);
  put(input, b.data(), 0, want);
  const double stored = get(input, b.data(), 0);
  return std::isinf(stored) && std::isfinite(want) && got == stored;
}

double tol_stored(int input, double want, double mag) {
  const double acc = rtol_of(input) * mag + 1e-300;
  if (input == kFlElemF16) return acc + std::ldexp(std::fabs(want) + acc, -11) + std::ldexp(1.0, -25);
  // bf16 keeps float32's exponent range: below 2^-126 its spacing is 2^-133, a float32 subnormal.
  if (input == kFlElemBF16) return acc + std::ldexp(std::fabs(want) + acc, -8) + std::ldexp(1.0, -133);
  return acc;
}

PointwiseLaunchArgs base_args() {
  PointwiseLaunchArgs a{};
  a.io.weight_div = a.io.weight_mod = 1;
  return a;
}

void run_case(const Case& c) {
  const size_t n = static_cast<size_t>(c.n);
  const size_t xs = dsize(c.input);
  std::vector<unsigned char> xb(n * xs), tb(n * xs);
  std::vector<double> x(n), t(n);
  for (size_t i = 0; i < n; ++i) {
    double xv, tv;
    sample(c.kind, &xv, &tv);
    put(c.input, xb.data(), i, xv);
    put(c.input, tb.data(), i, tv);
    x[i] = get(c.input, xb.data(), i);
    t[i] = get(c.input, tb.data(), i);
  }
  const Table w = make_table(c.wl, c.n, c.input, 0.2, 2.0, c.w_zero);
  const int nb = c.blocks > 0 ? c.blocks : fusedloss_elementwise_num_blocks(c.n, c.sm);
  constexpr size_t kTail = 4;  // sentinel elements past numel
  std::vector<unsigned char> loss((n + kTail) * xs, 0xFF), grad((n + kTail) * xs, 0xFF);  // NaN in every dtype
  std::vector<double> partials(2 * static_cast<size_t>(nb), std::nan(""));

  PointwiseLaunchArgs a = base_args();
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
  a.io.target_dtype = c.input;
  a.io.num_blocks = nb;
  a.kind = c.kind;
  a.param = c.param;
  const int rc = fusedloss_pointwise_fwd_cuda(&a, nullptr);

  char ctx[256];
  std::snprintf(ctx, sizeof ctx, "%s %s param %g n %lld blocks %d weight %s loss %d grad %d", kKindNames[c.kind],
                kDTypeNames[c.input], c.param, static_cast<long long>(c.n), nb, kLayoutNames[c.wl], c.loss, c.grad);
  expect(rc == 0, "launch status", rc, 0, ctx);

  const double prm = acc_round(c.input, c.param);
  double sum = 0.0, sum_abs = 0.0, sum_mag = 0.0, count = 0.0;
  int bad_loss = 0, bad_grad = 0;
  for (size_t i = 0; i < n; ++i) {
    const double wi = w.at(static_cast<int64_t>(i));
    const ElemOut<double> o = pointwise_elem<double>(c.kind, x[i], t[i], prm);
    double lm, gm;
    magnitudes(c.kind, x[i], t[i], prm, &lm, &gm);
    const double want_loss = wi * o.loss, want_grad = wi * o.grad;
    lm *= std::fabs(wi);
    gm *= std::fabs(wi);
    sum += want_loss;
    sum_abs += std::fabs(want_loss);
    sum_mag += lm;
    count += wi != 0.0 ? 1.0 : 0.0;
    if (c.loss) {
      const double got = get(c.input, loss.data(), i);
      const bool ok = std::fabs(got - want_loss) <= tol_stored(c.input, want_loss, lm) ||
                      overflow_matches(c.input, got, want_loss);
      if (!ok && bad_loss++ < 3) expect(false, "loss", got, want_loss, ctx);
    }
    if (c.grad) {
      const double got = get(c.input, grad.data(), i);
      const bool ok = std::fabs(got - want_grad) <= tol_stored(c.input, want_grad, gm) ||
                      overflow_matches(c.input, got, want_grad);
      if (!ok && bad_grad++ < 3) expect(false, "grad", got, want_grad, ctx);
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
  expect(got_count == count, "count of weights != 0 (partials)", got_count, count, ctx);
  expect_close("mean (finished)", got_sum / static_cast<double>(c.n), sum / static_cast<double>(c.n), 0.0,
               sum_tol / static_cast<double>(c.n), ctx);
  const double sbnz_got = got_count > 0 ? got_sum / got_count : 0.0, sbnz_want = count > 0 ? sum / count : 0.0;
  expect_close("SBNZ (finished)", sbnz_got, sbnz_want, 0.0, count > 0 ? sum_tol / count : 0.0, ctx);
}

// Each kind with a parameter in its branch-deciding range.
struct KindParam {
  int64_t kind;
  double param;
};
const KindParam kKindParams[] = {{kL1, 0.0},          {kMSE, 0.0},         {kHuber, 1.0},         {kHuber, 0.5},
                                 {kSmoothL1, 1.0},    {kSmoothL1, 0.3},    {kSmoothL1, 0.0},      {kLogCosh, 0.0},
                                 {kMAPE, 1e-7},       {kMAPE, 1.0},        {kHinge, 0.0},         {kSquaredHinge, 0.0},
                                 {kExponential, 0.0}, {kSigmoidMSE, 0.0},  {kLogLoss, 1e-7},      {kLogLoss, 0.0},
                                 {kKLDiv, 0.0},       {kKLDivLogTarget, 0.0}};

void kinds_by_dtype() {
  const double params[kNumKinds] = {0.0, 0.0, 1.0, 0.4, 0.0, 1e-7, 0.0, 0.0, 0.0, 0.0, 1e-7, 0.0, 0.0};
  for (int64_t kind = 0; kind < kNumKinds; ++kind) {
    for (int in = kFlElemF32; in <= kFlElemBF16; ++in) {
      Case c;
      c.input = in;
      c.n = 300;
      c.kind = kind;
      c.param = params[kind];
      c.wl = static_cast<Layout>(randint(0, kNumLayouts - 1));
      run_case(c);
    }
  }
}

void sizes_and_options() {
  const int64_t sizes[] = {1, 31, 32, 33, 255, 256, 257, 700, 2100, 5000};
  int k = 0;
  for (int in : {kFlElemF32, kFlElemF64}) {
    for (int64_t n : sizes) {
      for (const KindParam& kp : kKindParams) {
        if (n >= 255 && (k++ % 4) != 0) continue;  // time: a quarter of the kinds from 255 up
        Case c;
        c.input = in;
        c.n = n;
        if (n == 700 || n == 2100) c.sm = 1;  // 3 and 8 blocks; 2100: a second grid-stride pass
        if (n == 5000) c.blocks = 3;          // an explicit grid: 7 passes
        c.kind = kp.kind;
        c.param = kp.param;
        c.wl = randint(0, 1) ? kFull : kAbsent;
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
      c.input = in;
      c.n = 300;
      c.wl = static_cast<Layout>(l);
      c.kind = kHuber;
      c.param = 1.0;
      run_case(c);
    }
  }
}

void sbnz_counts() {
  Case c;
  c.n = 400;
  c.kind = kMSE;
  c.wl = kScalar;
  c.w_zero = 1.0;  // weight 0: nothing counted, sum 0, SBNZ 0
  run_case(c);
  c.wl = kInner;
  c.w_zero = 0.34;
  run_case(c);
}

void launch_checks() {
  std::vector<float> x(64, 0.5f), t(64, 1.0f), tab(4, 1.0f);
  std::vector<double> partials(8, -7.0);
  auto valid = [&]() {
    PointwiseLaunchArgs a = base_args();
    a.io.input = x.data();
    a.io.target = t.data();
    a.io.partials = partials.data();
    a.io.numel = 64;
    a.io.input_dtype = kFlElemF32;
    a.io.target_dtype = kFlElemF32;
    a.io.num_blocks = 1;
    a.kind = kMSE;
    return a;
  };
  PointwiseLaunchArgs a = valid();
  expect(fusedloss_pointwise_fwd_cuda(&a, nullptr) == 0, "valid arguments launch", 0, 0, "");
  expect(partials[0] == 16.0 && partials[1] == 64.0, "valid launch's sum and count", partials[0], 16.0, "");
  expect(fusedloss_pointwise_fwd_cuda(nullptr, nullptr) == kFlElemBadArgs, "null args", 0, 0, "");
  struct Bad {
    const char* what;
    void (*edit)(PointwiseLaunchArgs*);
    int rc;
  };
  const Bad bads[] = {
      {"numel < 0", [](PointwiseLaunchArgs* p) { p->io.numel = -1; }, kFlElemBadArgs},
      {"no blocks", [](PointwiseLaunchArgs* p) { p->io.num_blocks = 0; }, kFlElemBadArgs},
      {"null input", [](PointwiseLaunchArgs* p) { p->io.input = nullptr; }, kFlElemBadArgs},
      {"null target", [](PointwiseLaunchArgs* p) { p->io.target = nullptr; }, kFlElemBadArgs},
      {"null partials", [](PointwiseLaunchArgs* p) { p->io.partials = nullptr; }, kFlElemBadArgs},
      {"kind -1", [](PointwiseLaunchArgs* p) { p->kind = -1; }, kFlElemBadArgs},
      {"kind kNumKinds", [](PointwiseLaunchArgs* p) { p->kind = kNumKinds; }, kFlElemBadArgs},
      {"target dtype f64 for f32 input", [](PointwiseLaunchArgs* p) { p->io.target_dtype = kFlElemF64; },
       kFlElemBadTargetDType},
      {"target dtype u8", [](PointwiseLaunchArgs* p) { p->io.target_dtype = kFlElemU8; }, kFlElemBadTargetDType},
      {"input and target u8",
       [](PointwiseLaunchArgs* p) { p->io.input_dtype = p->io.target_dtype = kFlElemU8; }, kFlElemBadInputDType},
      {"input and target 99", [](PointwiseLaunchArgs* p) { p->io.input_dtype = p->io.target_dtype = 99; },
       kFlElemBadInputDType},
  };
  for (const Bad& b : bads) {
    a = valid();
    b.edit(&a);
    partials.assign(8, -7.0);
    const int rc = fusedloss_pointwise_fwd_cuda(&a, nullptr);
    expect(rc == b.rc, b.what, rc, b.rc, "rejected");
    expect(partials[0] == -7.0 && partials[1] == -7.0, b.what, partials[0], -7.0, "nothing launched");
  }
  // Weight layout: div or mod 0 with a table is rejected; without one it is ignored.
  for (int which = 0; which < 2; ++which) {
    a = valid();
    (which == 0 ? a.io.weight_div : a.io.weight_mod) = 0;
    expect(fusedloss_pointwise_fwd_cuda(&a, nullptr) == 0, "zero layout without a table", which, 0, "");
    a.io.weight = tab.data();
    expect(fusedloss_pointwise_fwd_cuda(&a, nullptr) == kFlElemBadArgs, "zero layout with a table", which,
           kFlElemBadArgs, "");
  }
  // The empty input: 0, nothing launched, whatever else the arguments say.
  a = valid();
  a.io.numel = 0;
  a.io.num_blocks = 0;
  a.io.input = a.io.target = nullptr;
  a.kind = 99;
  partials.assign(8, -7.0);
  expect(fusedloss_pointwise_fwd_cuda(&a, nullptr) == 0 && partials[0] == -7.0, "empty input", 0, 0, "");
}

}  // namespace

int main() {
  flsim::g_rng.seed(20261126);
  const fltest::Group groups[] = {{"kinds by dtype", kinds_by_dtype},
                                  {"sizes and options", sizes_and_options},
                                  {"tables", tables},
                                  {"sbnz counts", sbnz_counts},
                                  {"launch checks", launch_checks}};
  return fltest::run_groups("test_pointwise_cuda_sim", groups);
}
