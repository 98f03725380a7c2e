// The CUDA ZILN kernels themselves (ziln_cuda.cu: the zeroing of P, count_kernel, rows_kernel and
// finish_kernel), run on the CPU by the emulator of csrc/tests/cuda_sim through their extern "C"
// launcher, against a float64 O(B) loop over row_eval / row_grad / combine (ziln_math.h, checked
// against the formula of spec 7.1 by test_ziln_math.cpp) on the same rounded logits. Run by ctest;
// exits nonzero on any failure. What a GPU run adds is timing and the last bits of the device's
// exp / log; the grid-stride loops, the block and warp reductions, the integer count of P and the
// finishing warp are the kernels' own code here.
//
//  1. B around the 256-thread block and the finishing warp (1, 31, 32, 33, 255, 256, 257, 1000, 3000),
//     each with the grid of fusedloss_ziln_num_blocks for many SMs (one block per 256 rows), for one
//     SM (at most 8 blocks: the grid-stride loops run several rows per thread) and a single block;
//     B = 8,548 on 34 blocks (the finishing warp's lanes sum more than one partial each); float32,
//     float64, float16 and bfloat16 logits (B = 3000 in f32 / f64 only); in turn the default weights
//     (max_sigma 5, cw 1, rw 1, mu_reg and sigma_reg 0.01) and others (max_sigma 2 so that sigma clips
//     at the top too, cw or rw 0), the gradient on three launches of four;
//     labels 0, negative and lognormal positive, with l_s clipping sigma at sqrt(1e-7) (f32 / f64).
//     Checked: P (pos_count) exactly; each block's four partials (the sums of cls, reg, mu^2, l_s^2
//     over the rows of its grid-stride) within 1e-5 (f32 arithmetic) / 1e-10 (f64) of the magnitude
//     of their terms; the loss likewise plus the storage type's rounding; every element of the
//     gradient likewise (plus 2^-11 / 2^-8 for f16 / bf16), except d/d l_s of rows whose softplus(l_s)
//     sits within the tolerance of a clip bound (counted: at most 1%).
//  2. The loss and partials are bitwise the same with the other gradient setting (a second launch on
//     a third of the batches), as the kernel's comment claims.
//  3. Every gradient element is written (prefilled with NaN); nothing past the end of grad, partials,
//     loss or pos_count is (guard tails left untouched); ASan covers the reads.
//  4. All labels <= 0 (P = 0: inv_pos = 1e8, the reg term 0) and a NaN label (the loss is NaN, that
//     row's d/d mu and d/d l_s are NaN, P and every other gradient element as without it).
//  5. Arguments the launcher rejects (kZilnBadArgs: NULL pointers, B < 0, num_blocks 0 or beyond one
//     per 256 rows, max_sigma <= sqrt(1e-7) or NaN; kZilnBadDType) and B = 0 (returns 0, writes
//     nothing).
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "check.h"
#include "sim_data.h"
#include "../ziln/ziln_cuda.h"
#include "../ziln/ziln_math.h"

using namespace fusedloss::ziln;
using fltest::expect;
using fltest::expect_close;

namespace {

using flsim::randint;
using flsim::uniform;


// Storage types: dtype code, rounding to it and back, unit roundoff of storing a result in it.
template <typename S>
struct Store;
template <>
struct Store<float> {
  using acc_t = float;
  static constexpr int code = kZilnF32;
  static constexpr double u = 0x1p-24;
  static constexpr double rtol = 1e-5;
  static float put(double v) { return static_cast<float>(v); }
  static double get(float v) { return v; }
  static const char* name() { return "f32"; }
};
template <>
struct Store<double> {
  using acc_t = double;
  static constexpr int code = kZilnF64;
  static constexpr double u = 0.0;
  static constexpr double rtol = 1e-10;
  static double put(double v) { return v; }
  static double get(double v) { return v; }
  static const char* name() { return "f64"; }
};
template <>
struct Store<__half> {
  using acc_t = float;
  static constexpr int code = kZilnF16;
  static constexpr double u = 0x1p-11 + 0x1p-24;  // the float result rounded again
  static constexpr double rtol = 1e-5;
  static __half put(double v) { return __float2half_rn(static_cast<float>(v)); }
  static double get(__half v) { return __half2float(v); }
  static const char* name() { return "f16"; }
};
template <>
struct Store<__nv_bfloat16> {
  using acc_t = float;
  static constexpr int code = kZilnBF16;
  static constexpr double u = 0x1p-8 + 0x1p-24;
  static constexpr double rtol = 1e-5;
  static __nv_bfloat16 put(double v) { return __float2bfloat16_rn(static_cast<float>(v)); }
  static double get(__nv_bfloat16 v) { return __bfloat162float(v); }
  static const char* name() { return "bf16"; }
};

constexpr size_t kGuard = 8;

struct Opts {
  double max_sigma, cw, rw, mu_reg, sigma_reg;
};

enum Labels { kMixed, kNonPositive, kOneNaN };

struct Batch {
  int64_t B = 0;
  std::vector<double> x, y;  // [B, 3] (l_p, mu, l_s), [B]
};

// narrow: l_s >= -3 (sigma >= 0.05), so that the half types' gradients stay in range.
Batch make_batch(int64_t B, Labels labels, bool narrow) {
  Batch b;
  b.B = B;
  for (int64_t i = 0; i < B; ++i) {
    b.x.push_back(uniform(-4.0, 4.0));
    b.x.push_back(uniform(-1.0, 2.0));
    b.x.push_back(narrow ? uniform(-3.0, 4.0) : uniform(-10.0, 4.0));
    const int r = randint(0, 5);
    double y = r < 2 ? 0.0 : (r == 2 ? -uniform(0.1, 3.0) : std::exp(uniform(-2.0, 3.0)));
    if (labels == kNonPositive && y > 0.0) y = 0.0;
    b.y.push_back(y);
  }
  if (labels == kOneNaN) b.y[static_cast<size_t>(B / 2)] = std::nan("");
  return b;
}

template <typename T>
std::vector<T> prefilled(size_t n) {
  std::vector<T> v(n + kGuard);
  std::memset(static_cast<void*>(v.data()), 0xFF, v.size() * sizeof(T));  // a NaN (or -1) in each type
  return v;
}

template <typename T>
bool guard_intact(const std::vector<T>& v, size_t n) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(v.data() + n);
  for (size_t i = 0; i < kGuard * sizeof(T); ++i) {
    if (p[i] != 0xFF) return false;
  }
  return true;
}

template <typename S>
struct Out {
  int rc = 0;
  std::vector<S> loss, grad;
  std::vector<double> partials;
  std::vector<int64_t> pos;
};

template <typename S>
Out<S> launch(const std::vector<S>& x, const std::vector<typename Store<S>::acc_t>& y, int64_t B, const Opts& o,
              int32_t num_blocks, bool grad) {
  Out<S> out;
  out.loss = prefilled<S>(1);
  out.grad = prefilled<S>(grad ? static_cast<size_t>(3 * B) : 0);
  out.partials = prefilled<double>(static_cast<size_t>(4 * num_blocks));
  out.pos = prefilled<int64_t>(1);
  ZilnLaunchArgs a{};
  a.logits = x.data();
  a.labels = y.data();
  a.loss = out.loss.data();
  a.grad = grad ? out.grad.data() : nullptr;
  a.partials = out.partials.data();
  a.pos_count = out.pos.data();
  a.B = B;
  a.max_sigma = o.max_sigma;
  a.class_weight = o.cw;
  a.reg_weight = o.rw;
  a.mu_reg = o.mu_reg;
  a.sigma_reg = o.sigma_reg;
  a.dtype = Store<S>::code;
  a.num_blocks = num_blocks;
  out.rc = fusedloss_ziln_fwd_cuda(&a, nullptr);
  return out;
}

struct Tally {
  long rows = 0, near_clip = 0, clipped_low = 0, clipped_high = 0;
};

// One batch in storage type S on num_blocks blocks, checked against the float64 truth.
template <typename S>
void run_case(int64_t B, int32_t num_blocks, const Opts& o, Labels labels, bool grad, bool twin, Tally* tally) {
  using acc_t = typename Store<S>::acc_t;
  const bool narrow = Store<S>::code == kZilnF16 || Store<S>::code == kZilnBF16;
  const Batch b = make_batch(B, labels, narrow);
  std::vector<S> x(b.x.size());
  std::vector<double> xr(b.x.size());  // the logits the kernel reads
  for (size_t i = 0; i < x.size(); ++i) {
    x[i] = Store<S>::put(b.x[i]);
    xr[i] = Store<S>::get(x[i]);
  }
  const std::vector<acc_t> y(b.y.begin(), b.y.end());
  const Out<S> got = launch<S>(x, y, B, o, num_blocks, grad);

  char ctx[200];
  std::snprintf(ctx, sizeof ctx, "%s B %lld blocks %d max_sigma %g cw %g rw %g mu_reg %g sigma_reg %g labels %d grad %d",
                Store<S>::name(), static_cast<long long>(B), num_blocks, o.max_sigma, o.cw, o.rw, o.mu_reg,
                o.sigma_reg, labels, grad ? 1 : 0);
  expect(got.rc == 0, "launch status", got.rc, 0, ctx);

  // Truth: P, the rows' terms and gradients, the blocks' partials, the loss; and their scales.
  int64_t P = 0;
  for (double v : b.y) P += static_cast<acc_t>(v) > acc_t(0) ? 1 : 0;
  const Params<double> prm{o.max_sigma, sigma_min_default<double>(), o.cw, o.rw, o.mu_reg, o.sigma_reg};
  const double inv_b = 1.0 / static_cast<double>(B), inv_pos = 1.0 / (static_cast<double>(P) + 1e-8);
  const size_t nb = static_cast<size_t>(num_blocks);
  std::vector<double> part(4 * nb, 0.0), part_scale(4 * nb, 0.0);
  double sums[4] = {0, 0, 0, 0}, scales[4] = {0, 0, 0, 0};
  const double rtol = Store<S>::rtol, u = Store<S>::u;
  int bad_grad = 0;
  for (int64_t i = 0; i < B; ++i) {
    const size_t r = static_cast<size_t>(i);
    const double lp = xr[3 * r], mu = xr[3 * r + 1], ls = xr[3 * r + 2];
    const double yv = static_cast<double>(y[r]);
    const RowOut<double> ro = row_eval(lp, mu, ls, yv, prm);
    double g[3];
    row_grad(ro, mu, ls, inv_b, inv_pos, prm, g);
    // Error scales of the acc_t terms (see the derivation in ziln_math.h's formulas).
    const double sp = fusedloss::softplus(ls);
    const double sigma = sp < prm.sigma_min ? prm.sigma_min : (sp > prm.max_sigma ? prm.max_sigma : sp);
    const double dsigma = sp >= prm.sigma_min && sp <= prm.max_sigma ? fusedloss::sigmoid(ls) : 0.0;
    const double log_y = ro.pos ? std::log(yv) : 0.0, t = (log_y - mu) / sigma;
    const double spread = (std::fabs(log_y) + std::fabs(mu)) / sigma;  // t's error scale / eps
    const double s_cls = fusedloss::softplus(lp) + std::fabs(lp) + 1.0;
    const double s_reg = ro.pos ? std::fabs(log_y) + std::fabs(std::log(sigma)) + 1.0 + t * t + std::fabs(t) * spread : 0.0;
    const double term[4] = {ro.cls, ro.reg, ro.mu2, ro.ls2};
    const double term_scale[4] = {s_cls, s_reg, ro.mu2, ro.ls2};
    const size_t blk = static_cast<size_t>(i / kZilnThreads) % nb;  // the grid-stride's block of row i
    for (int k = 0; k < 4; ++k) {
      part[static_cast<size_t>(k) * nb + blk] += term[k];
      part_scale[static_cast<size_t>(k) * nb + blk] += term_scale[k];
      sums[k] += term[k];
      scales[k] += term_scale[k];
    }
    const bool near_clip = std::fabs(sp - prm.sigma_min) <= 10.0 * rtol * prm.sigma_min ||
                           std::fabs(sp - prm.max_sigma) <= 10.0 * rtol * prm.max_sigma;
    ++tally->rows;
    tally->near_clip += near_clip ? 1 : 0;
    tally->clipped_low += sp < prm.sigma_min ? 1 : 0;
    tally->clipped_high += sp > prm.max_sigma ? 1 : 0;
    if (!grad) continue;
    const double gs[3] = {
        std::fabs(o.cw) * inv_b,
        (ro.pos ? std::fabs(o.rw) * inv_pos * spread / sigma : 0.0) + std::fabs(o.mu_reg * 2.0 * mu) * inv_b,
        (ro.pos ? std::fabs(o.rw) * inv_pos * (1.0 + t * t + 2.0 * std::fabs(t) * spread) / sigma * dsigma : 0.0) +
            std::fabs(o.sigma_reg * 2.0 * ls) * inv_b};
    for (int k = 0; k < 3; ++k) {
      if (k == 2 && near_clip) continue;
      const double gv = Store<S>::get(got.grad[3 * r + static_cast<size_t>(k)]);
      const double ftol = rtol * gs[k];
      const double gtol = u * (std::fabs(g[k]) + ftol) + ftol + (narrow ? 0x1p-25 : 0.0) + 1e-300;
      const bool ok = std::isnan(g[k]) ? std::isnan(gv) : std::fabs(gv - g[k]) <= gtol;
      if (!ok && ++bad_grad <= 3) expect(false, k == 0 ? "grad l_p" : (k == 1 ? "grad mu" : "grad l_s"), gv, g[k], ctx);
    }
  }
  expect(bad_grad == 0, "wrong gradient elements", bad_grad, 0, ctx);
  expect(got.pos[0] == P, "P (pos_count)", static_cast<double>(got.pos[0]), static_cast<double>(P), ctx);
  const bool nan_label = labels == kOneNaN;
  int bad_part = 0;
  for (size_t k = 0; k < 4 * nb; ++k) {
    const double pv = got.partials[k], want = part[k];
    const bool ok = std::isnan(want) ? std::isnan(pv) : std::fabs(pv - want) <= rtol * part_scale[k] + 1e-300;
    if (!ok && ++bad_part <= 3) expect_close("block partial", pv, want, 0.0, rtol * part_scale[k], ctx);
  }
  expect(bad_part == 0, "wrong block partials", bad_part, 0, ctx);
  const double loss = Store<S>::get(got.loss[0]);
  const double want = combine(sums[0], sums[1], sums[2], sums[3], static_cast<double>(B), static_cast<double>(P),
                              o.cw, o.rw, o.mu_reg, o.sigma_reg);
  const double scale = std::fabs(o.cw) * scales[0] * inv_b + std::fabs(o.rw) * scales[1] * inv_pos +
                       std::fabs(o.mu_reg) * scales[2] * inv_b + std::fabs(o.sigma_reg) * scales[3] * inv_b;
  if (nan_label) {
    expect(std::isnan(loss), "NaN loss with a NaN label", loss, NAN, ctx);
  } else {
    expect_close("loss", loss, want, 0.0, u * std::fabs(want) + rtol * scale + 1e-300, ctx);
  }
  expect(guard_intact(got.loss, 1) && guard_intact(got.pos, 1), "loss / pos_count guards untouched", 0, 0, ctx);
  expect(guard_intact(got.partials, 4 * nb), "partials guard untouched", 0, 0, ctx);
  expect(guard_intact(got.grad, grad ? static_cast<size_t>(3 * B) : 0), "grad guard untouched", 0, 0, ctx);

  if (twin) {  // the same batch with the other gradient setting: loss and partials bitwise equal
    const Out<S> other = launch<S>(x, y, B, o, num_blocks, !grad);
    expect(other.rc == 0 && std::memcmp(other.loss.data(), got.loss.data(), sizeof(S)) == 0,
           "loss bitwise the same with and without the gradient", Store<S>::get(other.loss[0]), loss, ctx);
    expect(std::memcmp(other.partials.data(), got.partials.data(), 4 * nb * sizeof(double)) == 0,
           "partials bitwise the same with and without the gradient", 0, 0, ctx);
  }
}

void run_dtype(int dtype, int64_t B, int32_t nb, const Opts& o, Labels labels, bool grad, bool twin, Tally* t) {
  switch (dtype) {
    case 0:
      run_case<float>(B, nb, o, labels, grad, twin, t);
      break;
    case 1:
      run_case<double>(B, nb, o, labels, grad, twin, t);
      break;
    case 2:
      run_case<__half>(B, nb, o, labels, grad, twin, t);
      break;
    default:
      run_case<__nv_bfloat16>(B, nb, o, labels, grad, twin, t);
      break;
  }
}

const Opts kOpts[] = {{5.0, 1.0, 1.0, 0.01, 0.01},
                      {2.0, 0.7, 1.3, 0.05, 0.2},
                      {3.5, 0.0, 2.0, 0.1, 0.0},
                      {5.0, 1.5, 0.0, 0.0, 0.03}};

void batches() {
  Tally tally;
  int at = 0;
  for (int64_t B : {1, 31, 32, 33, 255, 256, 257, 1000, 3000}) {
    const int32_t by_work = fusedloss_ziln_num_blocks(B, 132), one_sm = fusedloss_ziln_num_blocks(B, 1);
    for (int32_t nb : {by_work, one_sm, 1}) {
      if ((nb == one_sm && one_sm == by_work) || (nb == 1 && (one_sm == 1 || by_work == 1))) continue;
      for (int dtype = 0; dtype < 4; ++dtype) {
        if (B == 3000 && dtype >= 2) continue;
        const Opts& o = kOpts[static_cast<size_t>(at++) % 4];
        run_dtype(dtype, B, nb, o, kMixed, at % 4 != 0, at % 3 == 0, &tally);
      }
    }
  }
  // The finishing warp with more partials than lanes.
  run_dtype(0, 8548, fusedloss_ziln_num_blocks(8548, 132), kOpts[0], kMixed, true, false, &tally);
  expect(tally.near_clip * 100 <= tally.rows, "rows near a clip bound (d/d l_s not compared) <= 1%",
         static_cast<double>(tally.near_clip), static_cast<double>(tally.rows) / 100, "batches");
  expect(tally.clipped_low > 0 && tally.clipped_high > 0, "sigma clipped at both bounds",
         static_cast<double>(tally.clipped_low), static_cast<double>(tally.clipped_high), "batches");
}

void label_edges() {
  Tally tally;
  for (int dtype = 0; dtype < 4; ++dtype) {
    run_dtype(dtype, 300, 2, kOpts[dtype % 4], kNonPositive, true, false, &tally);
    run_dtype(dtype, 300, 2, kOpts[(dtype + 1) % 4], kOneNaN, true, false, &tally);
  }
}

void launch_checks() {
  const std::vector<float> x(30, 0.5f), y(10, 1.0f);
  std::vector<float> loss(1), grad(30);
  std::vector<double> partials(8);
  std::vector<int64_t> pos(1);
  auto base = [&]() {
    ZilnLaunchArgs a{};
    a.logits = x.data();
    a.labels = y.data();
    a.loss = loss.data();
    a.grad = grad.data();
    a.partials = partials.data();
    a.pos_count = pos.data();
    a.B = 10;
    a.max_sigma = 5.0;
    a.class_weight = 1.0;
    a.reg_weight = 1.0;
    a.mu_reg = 0.01;
    a.sigma_reg = 0.01;
    a.dtype = kZilnF32;
    a.num_blocks = 1;
    return a;
  };
  auto status = [](const ZilnLaunchArgs& a, int code, const char* what) {
    const int rc = fusedloss_ziln_fwd_cuda(&a, nullptr);
    expect(rc == code, what, rc, code, "launch checks");
  };
  status(base(), 0, "valid arguments");
  expect(fusedloss_ziln_fwd_cuda(nullptr, nullptr) == kZilnBadArgs, "NULL args", 0, 0, "launch checks");
  ZilnLaunchArgs a = base();
  a.B = -1;
  status(a, kZilnBadArgs, "B < 0");
  a = base();
  a.logits = nullptr;
  status(a, kZilnBadArgs, "no logits");
  a = base();
  a.labels = nullptr;
  status(a, kZilnBadArgs, "no labels");
  a = base();
  a.loss = nullptr;
  status(a, kZilnBadArgs, "no loss");
  a = base();
  a.partials = nullptr;
  status(a, kZilnBadArgs, "no partials");
  a = base();
  a.pos_count = nullptr;
  status(a, kZilnBadArgs, "no pos_count");
  a = base();
  a.grad = nullptr;
  status(a, 0, "no gradient is valid");
  for (int32_t nb : {0, -1, 2}) {  // B = 10: one block of 256 rows at most
    a = base();
    a.num_blocks = nb;
    status(a, kZilnBadArgs, "num_blocks out of range");
  }
  for (double ms : {0.0, 1e-4, std::nan("")}) {
    a = base();
    a.max_sigma = ms;
    status(a, kZilnBadArgs, "max_sigma <= sqrt(1e-7) or NaN");
  }
  for (int32_t dt : {-1, 4}) {
    a = base();
    a.dtype = dt;
    status(a, kZilnBadDType, "unknown dtype");
  }
  // B = 0: 0, nothing written (the loss is the caller's NaN), also with NULL pointers.
  loss[0] = 42.0f;
  pos[0] = 42;
  for (double& v : partials) v = 42.0;
  a = base();
  a.B = 0;
  a.num_blocks = 0;
  status(a, 0, "B = 0");
  ZilnLaunchArgs e{};
  e.max_sigma = 5.0;
  status(e, 0, "B = 0 with NULL pointers");
  bool untouched = loss[0] == 42.0f && pos[0] == 42;
  for (double v : partials) untouched = untouched && v == 42.0;
  expect(untouched, "B = 0 writes nothing", 0, 0, "launch checks");
}

}  // namespace

int main() {
  flsim::g_rng.seed(20261208);
  const fltest::Group groups[] = {{"batches", batches}, {"label edges", label_edges}, {"launch checks", launch_checks}};
  return fltest::run_groups("test_ziln_cuda_sim", groups);
}
