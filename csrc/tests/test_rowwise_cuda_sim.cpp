// The CUDA rowwise kernels themselves (rowwise_cuda.cu: rows_kernel with 4, 8, 16 or 32 lanes per row,
// and flat_kernel for one-element rows), run on the CPU by the emulator of csrc/tests/cuda_sim through
// their extern "C" launcher, against a float64 O(N D) loop over row_accumulate / row_finish /
// grad_elems (rowwise_math.h, checked against the formulas by test_rowwise_math.cpp) on the same
// rounded inputs. Run by ctest; exits nonzero on any failure. What a GPU run adds is timing and the
// last bits of the device's sqrt / pow; the lane groups, the butterfly merge, the grid-stride over
// rows and the per-element gradient sweep are the kernel's own code here.
//
//  1. Row kinds (cosine embedding with targets 1 / -1 / 0 and margins 0 and 0.2, cosine similarity,
//     triplet with p = 2, 1 and 3, with and without swap, eps 1e-6 and 0, contrastive with labels 0 /
//     1), D from 1 to 300 around every group size's switch (4 | 16 | 17, 8 | 32 | 33, 16 | 64 | 65,
//     32 lanes), N in turn 1, one row more than a warp holds, one more than a block holds and three
//     blocks less one, the gradient on two launches of three; float32 and float64 at every D, float16
//     and bfloat16 at D = 4, 17, 33, 130 (one per group size). Each row's loss (acc_t) within 1e-5
//     (f32, f16, bf16) / 1e-10 (f64) of the magnitude of its terms, every element of grad_a, grad_b
//     (and grad_c for triplet) likewise, plus the storage type's rounding (2^-11, 2^-8) for the half
//     types; rows whose hinge or swap choice sits within 10x that tolerance of its kink skip the
//     gradient comparison (counted: at most 1% of the rows); every hinged kind has rows on both sides
//     of its hinge. The host sum of the row losses (the binding's sum / mean) as well. A zero row of a
//     (the norm clamps) for the cosine kinds in f32 / f64.
//  2. One-element kinds (margin ranking with targets +-1 and margins 0 / 0.3, order calibration), N
//     around the 256-thread block (1, 31, 32, 33, 255, 256, 257, 1000), every dtype, with the gradient
//     on two launches of three; gradients exact (0 or +-1), losses as in 1.
//  3. Every output element is written (outputs are prefilled with NaN) and nothing past the end of
//     row_loss / grad_a / grad_b / grad_c is (a guard tail left untouched); ASan covers the reads.
//  4. D = 0 rows (a, b, c NULL, as the binding passes them) for every row kind (the dtypes in turn):
//     row_finish of empty sums.
//  5. Arguments the launcher rejects (kRowwiseBadArgs, kRowwiseBadInputDType) and an empty batch
//     (N = 0: returns 0, writes nothing).
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
#include "../rowwise/rowwise_cuda.h"
#include "../rowwise/rowwise_math.h"

using namespace fusedloss::rowwise;
using fltest::expect;
using fltest::expect_close;

namespace {

using flsim::randint;
using flsim::uniform;


// Storage types: the launcher's dtype code, rounding of a double to it and back, and the unit
// roundoff of storing an acc_t result in it (0: acc_t itself, compared with the acc_t tolerance).
template <typename S>
struct Store;
template <>
struct Store<float> {
  using acc_t = float;
  static constexpr int code = kRowwiseF32;
  static constexpr double u = 0.0;
  static constexpr double rtol = 1e-5;
  static float put(double v) { return static_cast<float>(v); }
  static double get(float v) { return v; }
  static const char* name() { return "f32"; }
};
template <>
struct Store<double> {
  using acc_t = double;
  static constexpr int code = kRowwiseF64;
  static constexpr double u = 0.0;
  static constexpr double rtol = 1e-10;
  static double put(double v) { return v; }
  static double get(double v) { return v; }
  static const char* name() { return "f64"; }
};
template <>
struct Store<__half> {
  using acc_t = float;
  static constexpr int code = kRowwiseF16;
  static constexpr double u = 0x1p-11;
  static constexpr double rtol = 1e-5;
  static __half put(double v) { return __float2half_rn(static_cast<float>(v)); }
  static double get(__half v) { return __half2float(v); }
  static const char* name() { return "f16"; }
};
template <>
struct Store<__nv_bfloat16> {
  using acc_t = float;
  static constexpr int code = kRowwiseBF16;
  static constexpr double u = 0x1p-8;
  static constexpr double rtol = 1e-5;
  static __nv_bfloat16 put(double v) { return __float2bfloat16_rn(static_cast<float>(v)); }
  static double get(__nv_bfloat16 v) { return __bfloat162float(v); }
  static const char* name() { return "bf16"; }
};

constexpr size_t kGuard = 8;  // elements past each output's end that must stay as prefilled

struct Case {
  int64_t kind;
  double margin, p, eps;
  bool swap;
};

// Inputs in double: a, b, c [N, D] (c only for triplet) and the target [N] (empty where unused).
struct Data {
  int64_t N = 0, D = 0;
  std::vector<double> a, b, c, y;
};

Data make_data(const Case& k, int64_t N, int64_t D, bool zero_row) {
  Data x;
  x.N = N;
  x.D = D;
  const size_t n = static_cast<size_t>(N * D);
  x.a.resize(n);
  x.b.resize(n);
  if (k.kind == kTriplet) x.c.resize(n);
  const double inv_sqrt_d = D > 0 ? 1.0 / std::sqrt(static_cast<double>(D)) : 1.0;
  for (int64_t i = 0; i < N; ++i) {
    // Rows near and far: the hinges / margins active on some rows and not on others.
    const double r1 = uniform(0.2, 2.0), r2 = uniform(0.2, 2.0);
    const int mode = randint(0, 2);  // cosine kinds: independent, b near a, b near -a
    for (int64_t d = 0; d < D; ++d) {
      const size_t e = static_cast<size_t>(i * D + d);
      const double a = k.kind <= kOrderCalibrate ? uniform(-2.0, 2.0) : uniform(-1.0, 1.0);
      x.a[e] = a;
      if (k.kind == kCosineEmbedding || k.kind == kCosineSimilarity) {
        x.b[e] = mode == 0 ? uniform(-1.0, 1.0) : (mode == 1 ? 1.0 : -1.0) * a + uniform(-0.3, 0.3);
      } else if (k.kind == kTriplet || k.kind == kContrastive) {
        x.b[e] = a + uniform(-1.0, 1.0) * r1 * inv_sqrt_d;
        if (k.kind == kTriplet) x.c[e] = a + uniform(-1.0, 1.0) * r2 * inv_sqrt_d;
      } else {
        x.b[e] = uniform(-2.0, 2.0);
      }
    }
    if (zero_row && i == N / 2) {
      for (int64_t d = 0; d < D; ++d) x.a[static_cast<size_t>(i * D + d)] = 0.0;
    }
  }
  if (k.kind == kMarginRanking) {
    for (int64_t i = 0; i < N; ++i) x.y.push_back(randint(0, 1) ? 1.0 : -1.0);
  } else if (k.kind == kCosineEmbedding) {
    const double ys[] = {1.0, -1.0, -1.0, 0.0};
    for (int64_t i = 0; i < N; ++i) x.y.push_back(ys[randint(0, 3)]);
  } else if (k.kind == kContrastive) {
    for (int64_t i = 0; i < N; ++i) x.y.push_back(static_cast<double>(randint(0, 1)));
  }
  return x;
}

// The float64 truth of one row and the magnitudes its tolerances scale with.
struct RowRef {
  double loss = 0.0, loss_scale = 0.0;
  bool near_kink = false;
  std::vector<double> ga, gb, gc, sa, sb, sc;  // gradients and their per-element scales
};

RowRef reference_row(const Case& k, const double* a, const double* b, const double* c, int64_t D, double y,
                     double kink_tol) {
  Params<double> prm{k.kind, k.margin, k.p, k.eps, k.swap};
  RowRef r;
  RowAcc<double> acc = row_acc_zero<double>();
  double sum_ab = 0.0;  // sum |a b|: the cosine kinds' dot product's error scale
  for (int64_t d = 0; d < D; ++d) {
    row_accumulate(acc, a[d], b[d], c != nullptr ? c[d] : 0.0, prm);
    sum_ab += std::fabs(a[d] * b[d]);
  }
  Coef<double> co;
  r.loss = row_finish(acc, y, prm, &co);
  const size_t n = static_cast<size_t>(D);
  r.ga.assign(n, 0.0);
  r.gb.assign(n, 0.0);
  r.gc.assign(n, 0.0);
  r.sa.assign(n, 0.0);
  r.sb.assign(n, 0.0);
  r.sc.assign(n, 0.0);
  for (int64_t d = 0; d < D; ++d) {
    const size_t e = static_cast<size_t>(d);
    grad_elems(a[d], b[d], c != nullptr ? c[d] : 0.0, co, prm, 1.0, &r.ga[e], &r.gb[e], &r.gc[e]);
  }
  switch (k.kind) {
    case kMarginRanking: {
      const double u = -y * acc.s0 + k.margin;
      r.loss_scale = std::fabs(y * acc.s0) + std::fabs(k.margin);
      r.near_kink = std::fabs(u) <= kink_tol * r.loss_scale;
      break;  // gradients exact: 0 or +-y
    }
    case kOrderCalibrate:
      r.loss_scale = std::fabs(a[0]) + std::fabs(b[0]);  // the sign of a - b is exact
      break;
    case kCosineEmbedding: {
      const double m1 = acc.s1 + double(1e-12f), m2 = acc.s2 + double(1e-12f);
      const double inv = 1.0 / std::sqrt(m1 * m2), cos = acc.s0 * inv;
      const double dcos = std::fabs(cos) + sum_ab * inv;  // cos's error scale
      r.loss_scale = 1.0 + std::fabs(k.margin) + dcos;
      if (y == -1.0) r.near_kink = std::fabs(cos - k.margin) <= kink_tol * r.loss_scale;
      const double g = (y == 1.0 || y == -1.0) ? 1.0 : 0.0;
      for (size_t e = 0; e < n; ++e) {
        r.sa[e] = g * (std::fabs(b[e]) * inv + std::fabs(a[e]) * dcos / m1);
        r.sb[e] = g * (std::fabs(a[e]) * inv + std::fabs(b[e]) * dcos / m2);
      }
      break;
    }
    case kCosineSimilarity: {
      const double ia = fusedloss::l2n::inv_norm(acc.s1, true), ib = fusedloss::l2n::inv_norm(acc.s2, true);
      const double dcos = std::fabs(acc.s0 * ia * ib) + sum_ab * ia * ib;
      r.loss_scale = dcos;
      for (size_t e = 0; e < n; ++e) {
        r.sa[e] = std::fabs(b[e]) * ia * ib + std::fabs(a[e]) * dcos * ia * ia;
        r.sb[e] = std::fabs(a[e]) * ia * ib + std::fabs(b[e]) * dcos * ib * ib;
      }
      break;
    }
    case kTriplet: {
      const double d_ap = root(acc.s0, k.p), d_an = root(acc.s1, k.p), d_pn = k.swap ? root(acc.s2, k.p) : 0.0;
      const double d_neg = k.swap && d_pn < d_an ? d_pn : d_an;
      r.loss_scale = d_ap + d_an + d_pn + std::fabs(k.margin);
      r.near_kink = std::fabs(d_ap - d_neg + k.margin) <= kink_tol * r.loss_scale ||
                    (k.swap && std::fabs(d_pn - d_an) <= kink_tol * r.loss_scale);
      const double k0 = d_ap > 0.0 ? 1.0 / std::pow(d_ap, k.p - 1.0) : 0.0;
      const double kn = d_neg > 0.0 ? 1.0 / std::pow(d_neg, k.p - 1.0) : 0.0;
      for (size_t e = 0; e < n; ++e) {
        const double t_ab = k0 * std::fabs(psi(a[e] - b[e] + k.eps, k.p));
        const double t_ac = kn * std::fabs(psi(a[e] - c[e] + k.eps, k.p));
        const double t_bc = kn * std::fabs(psi(b[e] - c[e] + k.eps, k.p));
        r.sa[e] = t_ab + t_ac;
        r.sb[e] = t_ab + t_bc;
        r.sc[e] = t_ac + t_bc;
      }
      break;
    }
    default: {  // kContrastive
      const double dist = std::sqrt(acc.s0), m = std::fabs(k.margin) + dist;
      r.loss_scale = std::fabs(y) * acc.s0 + std::fabs(1.0 - y) * m * m;
      const double kk = 2.0 * std::fabs(y) + (dist > 0.0 ? 2.0 * std::fabs(1.0 - y) * m / dist : 0.0);
      for (size_t e = 0; e < n; ++e) {
        r.sa[e] = kk * std::fabs(a[e] - b[e] + k.eps);
        r.sb[e] = r.sa[e];
      }
      break;
    }
  }
  return r;
}

template <typename S>
std::vector<S> store(const std::vector<double>& v) {
  std::vector<S> s(v.size());
  for (size_t i = 0; i < v.size(); ++i) s[i] = Store<S>::put(v[i]);
  return s;
}

template <typename S>
std::vector<double> load(const std::vector<S>& s) {
  std::vector<double> v(s.size());
  for (size_t i = 0; i < s.size(); ++i) v[i] = Store<S>::get(s[i]);
  return v;
}

// An output buffer of n elements and a guard tail, every byte 0xFF (a NaN in each type).
template <typename T>
std::vector<T> prefilled(size_t n) {
  std::vector<T> v(n + kGuard);
  std::memset(static_cast<void*>(v.data()), 0xFF, v.size() * sizeof(T));
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

struct Tally {
  long rows = 0, near_kink = 0;
  long zero = 0, positive = 0;  // rows whose true loss is 0 / > 0: both sides of the hinges ran
};

// One launch of the kernel in storage type S on a fresh random batch, checked against the truth.
template <typename S>
void run_case(const Case& k, int64_t N, int64_t D, bool grad, Tally* tally) {
  using acc_t = typename Store<S>::acc_t;
  const bool triplet = k.kind == kTriplet;
  const bool zero_row = N > 2 && D > 0 && Store<S>::u == 0.0 &&
                        (k.kind == kCosineEmbedding || k.kind == kCosineSimilarity);
  const Data x = make_data(k, N, D, zero_row);
  const std::vector<S> sa = store<S>(x.a), sb = store<S>(x.b), sc = store<S>(x.c);
  const std::vector<double> ra = load(sa), rb = load(sb), rc = load(sc);  // the values the kernel reads
  const std::vector<acc_t> y(x.y.begin(), x.y.end());
  const size_t n = static_cast<size_t>(N * D);
  const bool has_elems = N > 0 && D > 0;
  std::vector<acc_t> row_loss = prefilled<acc_t>(static_cast<size_t>(N));
  std::vector<S> ga = prefilled<S>(n), gb = prefilled<S>(n), gc = prefilled<S>(triplet ? n : 0);

  RowwiseLaunchArgs a{};
  a.a = has_elems ? sa.data() : nullptr;  // as the binding: no pointers without elements
  a.b = has_elems ? sb.data() : nullptr;
  a.c = has_elems && triplet ? sc.data() : nullptr;
  a.target = y.empty() ? nullptr : y.data();
  a.row_loss = row_loss.data();
  a.grad_a = grad && has_elems ? ga.data() : nullptr;
  a.grad_b = grad && has_elems ? gb.data() : nullptr;
  a.grad_c = grad && has_elems && triplet ? gc.data() : nullptr;
  a.N = N;
  a.D = D;
  a.margin = k.margin;
  a.p = k.p;
  a.eps = k.eps;
  a.kind = static_cast<int32_t>(k.kind);
  a.swap = k.swap ? 1 : 0;
  a.input_dtype = Store<S>::code;
  const int rc_launch = fusedloss_rowwise_fwd_cuda(&a, nullptr);

  char ctx[200];
  std::snprintf(ctx, sizeof ctx, "%s kind %lld margin %g p %g eps %g swap %d N %lld D %lld grad %d",
                Store<S>::name(), static_cast<long long>(k.kind), k.margin, k.p, k.eps, k.swap ? 1 : 0,
                static_cast<long long>(N), static_cast<long long>(D), grad ? 1 : 0);
  expect(rc_launch == 0, "launch status", rc_launch, 0, ctx);
  const double rtol = Store<S>::rtol, u = Store<S>::u;
  const double kink_tol = 10.0 * rtol;
  double sum = 0.0, sum_want = 0.0, sum_scale = 0.0;
  int bad_loss = 0, bad_grad = 0;
  for (int64_t i = 0; i < N; ++i) {
    const size_t off = static_cast<size_t>(i * D);
    const RowRef r = reference_row(k, ra.data() + off, rb.data() + off, triplet ? rc.data() + off : nullptr, D,
                                   y.empty() ? 0.0 : static_cast<double>(y[static_cast<size_t>(i)]), kink_tol);
    const double got = row_loss[static_cast<size_t>(i)];
    const double tol = rtol * r.loss_scale + 1e-300;
    if (!(std::fabs(got - r.loss) <= tol)) {
      if (++bad_loss <= 3) expect_close("row loss", got, r.loss, 0.0, tol, ctx);
    }
    sum += got;
    sum_want += r.loss;
    sum_scale += r.loss_scale;
    ++tally->rows;
    if (r.near_kink) ++tally->near_kink;
    if (r.loss == 0.0) ++tally->zero;
    if (r.loss > 0.0) ++tally->positive;
    if (!grad || !has_elems || r.near_kink) continue;
    for (int64_t d = 0; d < D; ++d) {
      const size_t e = static_cast<size_t>(d), o = off + e;
      const double* want[3] = {&r.ga[e], &r.gb[e], &r.gc[e]};
      const double scale[3] = {r.sa[e], r.sb[e], r.sc[e]};
      const S* gotp[3] = {&ga[o], &gb[o], triplet ? &gc[o] : nullptr};
      for (int t = 0; t < (triplet ? 3 : 2); ++t) {
        const double g = Store<S>::get(*gotp[t]), w = *want[t];
        const double ftol = rtol * scale[t];
        const double gtol = u == 0.0 ? ftol + 1e-300 : u * (std::fabs(w) + ftol) + ftol + 0x1p-25;
        if (!(std::fabs(g - w) <= gtol)) {
          if (++bad_grad <= 3) expect_close(t == 0 ? "grad_a" : (t == 1 ? "grad_b" : "grad_c"), g, w, 0.0, gtol, ctx);
        }
      }
    }
  }
  expect(bad_loss == 0, "rows with a wrong loss", bad_loss, 0, ctx);
  expect(bad_grad == 0, "wrong gradient elements", bad_grad, 0, ctx);
  expect_close("sum of the row losses", sum, sum_want, 0.0, rtol * sum_scale + 1e-300, ctx);
  expect(guard_intact(row_loss, static_cast<size_t>(N)), "row_loss guard untouched", 0, 0, ctx);
  if (grad && has_elems) {
    expect(guard_intact(ga, n) && guard_intact(gb, n), "grad_a / grad_b guards untouched", 0, 0, ctx);
    if (triplet) expect(guard_intact(gc, n), "grad_c guard untouched", 0, 0, ctx);
  } else {
    expect(guard_intact(ga, 0) && guard_intact(gb, 0) && (!triplet || guard_intact(gc, 0)),
           "no gradient written without one", 0, 0, ctx);
  }
}

void run_dtype(int dtype, const Case& k, int64_t N, int64_t D, bool grad, Tally* tally) {
  switch (dtype) {
    case 0:
      run_case<float>(k, N, D, grad, tally);
      break;
    case 1:
      run_case<double>(k, N, D, grad, tally);
      break;
    case 2:
      run_case<__half>(k, N, D, grad, tally);
      break;
    default:
      run_case<__nv_bfloat16>(k, N, D, grad, tally);
      break;
  }
}

const Case kRowCases[] = {
    {kCosineEmbedding, 0.0, 2.0, 0.0, false}, {kCosineEmbedding, 0.2, 2.0, 0.0, false},
    {kCosineSimilarity, 0.0, 2.0, 0.0, false}, {kTriplet, 0.3, 2.0, 1e-6, false},
    {kTriplet, 0.3, 2.0, 1e-6, true},          {kTriplet, 0.5, 1.0, 0.0, true},
    {kTriplet, 0.2, 3.0, 1e-6, false},         {kContrastive, 0.6, 2.0, 1e-6, false},
    {kContrastive, 0.8, 2.0, 0.0, false},
};

void row_kinds() {
  // D around the switches of launch_rows_kind (kGroup = 4, 8, 16, 32 lanes, 64, 32, 16, 8 rows per
  // block); N cycles through 1, a partial warp's rows, and a few blocks. The half types on a subset.
  const int64_t kD[] = {1, 3, 4, 16, 17, 31, 32, 33, 64, 65, 130, 300};
  Tally tally;
  int at = 0;
  for (const Case& k : kRowCases) {
    Tally kt;
    for (int64_t D : kD) {
      const int64_t group = D > 64 ? 32 : (D > 32 ? 16 : (D > 16 ? 8 : 4));
      const int64_t rows_per_block = 256 / group;
      const int64_t sizes[] = {1, 32 / group + 1, rows_per_block + 1, 3 * rows_per_block - 1};
      const bool halves = D == 4 || D == 17 || D == 33 || D == 130;
      for (int dtype = 0; dtype < (halves ? 4 : 2); ++dtype) {
        const int64_t N = sizes[static_cast<size_t>(at++) % 4];
        run_dtype(dtype, k, N, D, (at % 3) != 0, &kt);
      }
    }
    char ctx[80];
    std::snprintf(ctx, sizeof ctx, "kind %lld margin %g p %g swap %d", static_cast<long long>(k.kind), k.margin,
                  k.p, k.swap ? 1 : 0);
    if (k.kind != kCosineSimilarity) {
      expect(kt.zero > 0 && kt.positive > 0, "rows on both sides of the hinge", static_cast<double>(kt.zero),
             static_cast<double>(kt.positive), ctx);
    }
    tally.rows += kt.rows;
    tally.near_kink += kt.near_kink;
  }
  expect(tally.near_kink * 100 <= tally.rows, "rows near a kink (gradient not compared) <= 1%",
         static_cast<double>(tally.near_kink), static_cast<double>(tally.rows) / 100, "row kinds");
}

void flat_kinds() {
  const Case cases[] = {{kMarginRanking, 0.0, 2.0, 0.0, false},
                        {kMarginRanking, 0.3, 2.0, 0.0, false},
                        {kOrderCalibrate, 0.0, 2.0, 0.0, false}};
  Tally tally;
  for (const Case& k : cases) {
    Tally kt;
    int at = 0;
    for (int64_t N : {1, 31, 32, 33, 255, 256, 257, 1000}) {
      for (int dtype = 0; dtype < 4; ++dtype) run_dtype(dtype, k, N, 1, (at++ % 3) != 0, &kt);
    }
    expect(kt.zero > 0 && kt.positive > 0, "rows on both sides of the hinge", static_cast<double>(kt.zero),
           static_cast<double>(kt.positive), "flat kinds");
    tally.rows += kt.rows;
    tally.near_kink += kt.near_kink;
  }
  expect(tally.near_kink * 100 <= tally.rows, "rows near a kink (gradient not compared) <= 1%",
         static_cast<double>(tally.near_kink), static_cast<double>(tally.rows) / 100, "flat kinds");
}

void empty_rows() {
  Tally tally;
  int at = 0;
  for (const Case& k : kRowCases) run_dtype(at++ % 4, k, 37, 0, true, &tally);
}

void launch_checks() {
  const std::vector<float> av(12, 0.5f), bv(12, -0.25f), cv(12, 1.0f), tv(4, 1.0f);
  std::vector<float> loss(4), g1(12), g2(12), g3(12);
  auto base = [&]() {
    RowwiseLaunchArgs a{};
    a.a = av.data();
    a.b = bv.data();
    a.target = tv.data();
    a.row_loss = loss.data();
    a.grad_a = g1.data();
    a.grad_b = g2.data();
    a.N = 4;
    a.D = 3;
    a.margin = 0.1;
    a.p = 2.0;
    a.eps = 1e-6;
    a.kind = kCosineEmbedding;
    a.input_dtype = kRowwiseF32;
    return a;
  };
  auto status = [](const RowwiseLaunchArgs& a, int code, const char* what) {
    const int rc = fusedloss_rowwise_fwd_cuda(&a, nullptr);
    expect(rc == code, what, rc, code, "launch checks");
  };
  status(base(), 0, "valid arguments");
  expect(fusedloss_rowwise_fwd_cuda(nullptr, nullptr) == kRowwiseBadArgs, "NULL args", 0, 0, "launch checks");
  RowwiseLaunchArgs a = base();
  a.N = -1;
  status(a, kRowwiseBadArgs, "N < 0");
  a = base();
  a.D = -1;
  status(a, kRowwiseBadArgs, "D < 0");
  for (int32_t kind : {-1, 6}) {
    a = base();
    a.kind = kind;
    status(a, kRowwiseBadArgs, "kind out of range");
  }
  for (int32_t kind : {int32_t(kMarginRanking), int32_t(kOrderCalibrate)}) {
    a = base();
    a.kind = kind;  // D = 3
    status(a, kRowwiseBadArgs, "one-element kind with D != 1");
  }
  for (double p : {0.5, std::nan("")}) {
    a = base();
    a.p = p;
    status(a, kRowwiseBadArgs, "p < 1 or NaN");
  }
  for (double eps : {-1e-6, std::nan("")}) {
    a = base();
    a.eps = eps;
    status(a, kRowwiseBadArgs, "eps < 0 or NaN");
  }
  a = base();
  a.row_loss = nullptr;
  status(a, kRowwiseBadArgs, "no row_loss");
  a = base();
  a.a = nullptr;
  status(a, kRowwiseBadArgs, "no a with D > 0");
  a = base();
  a.b = nullptr;
  status(a, kRowwiseBadArgs, "no b with D > 0");
  a = base();
  a.kind = kTriplet;
  a.grad_c = g3.data();
  status(a, kRowwiseBadArgs, "triplet without c");
  a = base();
  a.c = cv.data();
  status(a, kRowwiseBadArgs, "c for a kind other than triplet");
  a = base();
  a.kind = kTriplet;
  a.c = cv.data();
  status(a, kRowwiseBadArgs, "triplet gradient without grad_c");
  a.grad_c = g3.data();
  status(a, 0, "triplet with grad_c");
  for (int32_t kind : {int32_t(kCosineEmbedding), int32_t(kContrastive)}) {
    a = base();
    a.kind = kind;
    a.target = nullptr;
    status(a, kRowwiseBadArgs, "no target for a kind that needs one");
  }
  a = base();
  a.kind = kMarginRanking;
  a.D = 1;
  a.target = nullptr;
  status(a, kRowwiseBadArgs, "margin ranking without target");
  a = base();
  a.grad_b = nullptr;
  status(a, kRowwiseBadArgs, "grad_a without grad_b");
  a = base();
  a.grad_a = nullptr;
  status(a, kRowwiseBadArgs, "grad_b without grad_a");
  for (int32_t dt : {-1, 4}) {
    a = base();
    a.input_dtype = dt;
    status(a, kRowwiseBadInputDType, "unknown input dtype");
  }
  // Empty batch: 0, nothing written (also with every pointer NULL).
  for (float& v : loss) v = 42.0f;
  for (float& v : g1) v = 42.0f;
  a = base();
  a.N = 0;
  status(a, 0, "N = 0");
  RowwiseLaunchArgs e{};
  e.p = 2.0;
  e.kind = kCosineSimilarity;
  e.D = 5;
  status(e, 0, "N = 0 with NULL pointers");
  bool untouched = true;
  for (float v : loss) untouched = untouched && v == 42.0f;
  for (float v : g1) untouched = untouched && v == 42.0f;
  expect(untouched, "N = 0 writes nothing", 0, 0, "launch checks");
}

}  // namespace

int main() {
  flsim::g_rng.seed(20261207);
  const fltest::Group groups[] = {{"row kinds", row_kinds},
                                  {"one-element kinds", flat_kinds},
                                  {"D = 0 rows", empty_rows},
                                  {"launch checks", launch_checks}};
  return fltest::run_groups("test_rowwise_cuda_sim", groups);
}
