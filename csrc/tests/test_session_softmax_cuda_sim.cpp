// The CUDA session_softmax kernel itself (session_softmax_cuda.cu), run on the CPU by the emulator of
// csrc/tests/cuda_sim through its extern "C" launcher, against a float64 truth: the header's three
// sweeps (session_softmax_math.h, checked against the spec's section 4 by
// test_session_softmax_math.cpp) run serially, one session after another, in a plain O(B) loop. Run
// by ctest; exits nonzero on any failure. What a GPU run adds is timing and the last bits of the
// device's approximate functions; the span / leader logic, the warp and block groups, the shuffles,
// the shared-memory merges and the output indexing are the kernel's own code here.
//
// Every element the launcher writes is compared: row_loss and row_den [P, B] and, when asked for,
// grad [P, B, C], the buffers filled with NaN first (an element left unwritten fails). row_den
// exactly; row_loss and grad within rtol (float32 1e-6, float64 1e-14) of an error scale built from
// the magnitudes of the terms each value is formed from (per formula: the LSEs, logits, targets,
// weights and the cancellations of differences such as log1p(M) - log(r)); the program prints the
// largest error / tolerance seen per dtype (about 0.12 and 0.015).
//  1. Listwise kinds: kRank with plain labels, label logits (kLabelIsLogits), targets given
//     (kTargetsGiven) and both; kDistill with label_clip_max 512 and 8 (labels clipped at both ends)
//     and with targets given; temperatures 1 and 0.6. Per configuration: B = 300 with one 150-item
//     session (run by the whole block) among short ones, B = 65 in sessions of 1 to 12 (one of the two
//     in float32, the other in float64), and B = 97 in sessions of 32 to 66 items without gradient.
//  2. JRC kinds (kJrc, kJrcSplit), weights none or per item (zeros and a few negative ones), as in 1;
//     and sessions with no positives / only positives (kJrcSplit's empty label sets).
//  3. Sizes and layouts: B in {1, 31, 32, 33, 64, 65, 97, 300} x session layouts around the kernel's
//     boundaries: one session (a warp's up to 64 items, a block's beyond), sessions of 1 to 12 items,
//     all singletons (B <= 65: slow to emulate), lengths around the 32-item span and the 64-item warp
//     limit (32, 33, 63, 64, 65, 66, 1), one huge session among small ones (spans with no leader);
//     the configuration round-robin, the dtype and the gradient (or NULL) drawn. Then B = 1,000 (32
//     blocks) in one session (both dtypes) and in sessions of 1 to 66 (one dtype per configuration).
//  4. Clamped ranges: a valid partition with seg_lo[0] < 0, a leader's seg_hi past B or not past
//     its item (a singleton), and garbage seg_lo / seg_hi on non-leaders give the clamped
//     partition's result; fully random ranges (overlapping sessions, several long ones in a span)
//     return 0 and stay in bounds (the ASan build checks the accesses).
//  5. Launch arguments the launcher rejects (kSessionSoftmaxBadArgs, kSessionSoftmaxBadDType)
//     without writing anything, and an empty batch (returns 0, launches nothing).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <random>
#include <vector>

#include "check.h"
#include "sim_data.h"
#include "../session_softmax/session_softmax_cuda.h"
#include "../session_softmax/session_softmax_math.h"

using namespace fusedloss;
using namespace fusedloss::session_softmax;
using fltest::expect;
using fltest::expect_close;

namespace {

using flsim::g_rng;
using flsim::randint;
using flsim::uniform;


enum Layout { kOne, kSmall, kSingles, kEdges, kHuge, kNumLayouts };

struct Cfg {
  int64_t kind = kRank;
  int64_t flags = 0;
  double temperature = 1.0;
  double clip_max = 512.0;
  bool weighted = false;
};

struct Batch {
  int n = 0;
  std::vector<double> z, y, w;  // z [n, C]; w [n] or empty
  std::vector<int64_t> lo, hi;
};

std::vector<int> session_sizes(int n, Layout layout) {
  std::vector<int> sizes;
  int left = n;
  if (layout == kHuge && n > 8) {
    sizes.push_back(n / 2);
    left -= n / 2;
  }
  static const int kEdgeLens[] = {32, 33, 63, 64, 65, 66, 1};
  int e = randint(0, 6);
  while (left > 0) {
    int len = left;
    if (layout == kSmall || layout == kHuge) len = randint(1, 12);
    if (layout == kSingles) len = 1;
    if (layout == kEdges) len = kEdgeLens[e++ % 7];
    len = std::min(len, left);
    sizes.push_back(len);
    left -= len;
  }
  if (layout == kHuge) std::shuffle(sizes.begin(), sizes.end(), g_rng);
  return sizes;
}

void set_ranges(Batch& b, const std::vector<int>& sizes) {
  b.lo.clear();
  b.hi.clear();
  int at = 0;
  for (int len : sizes) {
    for (int k = 0; k < len; ++k) {
      b.lo.push_back(at);
      b.hi.push_back(at + len);
    }
    at += len;
  }
}

// Inputs as the kind reads them; rounded to acc_t by the caller (the truth uses the rounded values).
Batch make_batch(int n, Layout layout, const Cfg& c) {
  Batch b;
  b.n = n;
  const int cols = static_cast<int>(num_cols(c.kind));
  for (int i = 0; i < n * cols; ++i) b.z.push_back(uniform(-4.0, 4.0));
  for (int i = 0; i < n; ++i) {
    double y = 0.0;
    if (c.kind == kRank) {
      if (c.flags & kLabelIsLogits) {
        y = uniform(-3.0, 3.0);
      } else if (c.flags & kTargetsGiven) {
        y = uniform(0.0, 2.0);
      } else {
        y = randint(0, 4);  // graded; some sessions have no label mass
      }
    } else if (c.kind == kDistill) {
      y = (c.flags & kTargetsGiven) ? uniform(0.05, 2.0) : static_cast<double>(randint(0, 20));  // ranks, clipped
    } else {
      y = randint(0, 9) < 3 ? 1.0 : 0.0;
    }
    b.y.push_back(y);
  }
  if (c.weighted) {
    for (int i = 0; i < n; ++i) {
      const int r = randint(0, 19);
      b.w.push_back(r < 4 ? 0.0 : (r == 4 ? uniform(-1.0, -0.1) : uniform(0.1, 2.0)));
    }
  }
  set_ranges(b, session_sizes(n, layout));
  return b;
}

template <typename acc_t>
std::vector<double> rounded(const std::vector<double>& v) {
  std::vector<double> r;
  for (double x : v) r.push_back(static_cast<double>(static_cast<acc_t>(x)));
  return r;
}

template <typename acc_t>
Batch rounded(const Batch& b) {
  Batch r = b;
  r.z = rounded<acc_t>(b.z);
  r.y = rounded<acc_t>(b.y);
  r.w = rounded<acc_t>(b.w);
  return r;
}

double fin(double x) { return std::isfinite(x) ? std::fabs(x) : 0.0; }

// The expected outputs and, per element, the scale of its rounding error (in units of acc_t's eps,
// up to the small constants rtol absorbs).
struct Truth {
  std::vector<double> loss, den, grad, loss_scale, grad_scale;
};

// One listwise session [lo, hi) in float64 through the header, and its error scales.
void listwise_truth(const Batch& b, const Cfg& c, int64_t lo, int64_t hi, Truth& t) {
  const Params<double> prm{c.kind, c.flags, c.temperature, c.clip_max};
  const double ln = std::log2(static_cast<double>(hi - lo)) + 1.0;
  ListStats<double> st = list_stats_empty<double>();
  for (int64_t i = lo; i < hi; ++i) list_stats_add(st, b.z[i], b.y[i], prm);
  const double lse_s = lse_value(st.s), lse_u = lse_value(st.u);
  double q_sum = 0.0, q_abs = 0.0, q_err_sum = 0.0, r_abs_sum = 0.0;
  const bool distill = c.kind == kDistill, label_logits = c.kind == kRank && (c.flags & kLabelIsLogits);
  // Absolute error scale of r (kDistill): log1p(M) - log(r) cancels when r is near M.
  auto r_abs = [&](int64_t i) {
    if (c.flags & kTargetsGiven) return std::fabs(b.y[i]);
    const double r = std::min(std::max(b.y[i], 1.0), c.clip_max);
    return std::log1p(c.clip_max) + std::log(r) + std::fabs(listwise_raw(b.y[i], prm));
  };
  if (distill) {
    for (int64_t i = lo; i < hi; ++i) r_abs_sum += r_abs(i);
  }
  std::vector<double> q_err(static_cast<size_t>(hi - lo));
  for (int64_t i = lo; i < hi; ++i) {
    const double q = list_target(b.y[i], st, prm);
    q_sum += q;
    q_abs += std::fabs(q);
    double e = std::fabs(q);
    if (label_logits) e = std::fabs(q) * (2.0 + std::fabs(listwise_raw(b.y[i], prm)) + fin(lse_u) + ln);
    if (distill) e = (r_abs(i) + std::fabs(q) * r_abs_sum * ln) / std::fabs(st.r_sum);
    q_err[static_cast<size_t>(i - lo)] = e;
    q_err_sum += e;
  }
  const double q_sum_err = q_err_sum + q_abs * ln;
  for (int64_t i = lo; i < hi; ++i) {
    double g = 0.0;
    t.loss[i] = list_item(b.z[i], b.y[i], st, lse_s, q_sum, prm, &g);
    t.den[i] = i == lo ? 1.0 : 0.0;
    t.grad[i] = g;
    const double s = b.z[i] / c.temperature, p = std::exp(s - lse_s), q = list_target(b.y[i], st, prm);
    const double qe = q_err[static_cast<size_t>(i - lo)];
    t.loss_scale[i] = std::fabs(q) * (std::fabs(lse_s) + std::fabs(s) + ln) + qe * std::fabs(lse_s - s);
    t.grad_scale[i] = (q_sum_err * p + std::fabs(q_sum) * p * (1.0 + std::fabs(s) + std::fabs(lse_s) + ln) + qe) / c.temperature;
  }
}

// One JRC session [lo, hi) in float64 through the header, and its error scales.
void jrc_truth(const Batch& b, const Cfg& c, int64_t lo, int64_t hi, Truth& t) {
  const int64_t n = b.n, kind = c.kind;
  const double ln = std::log2(static_cast<double>(hi - lo)) + 1.0;
  auto w_of = [&](int64_t i) { return b.w.empty() ? 1.0 : b.w[i]; };
  auto pos_of = [&](int64_t i) { return b.y[i] == 1.0; };
  JrcStats<double> st = jrc_stats_empty<double>();
  double w_abs = 0.0, z0_max = 0.0, z1_max = 0.0;
  for (int64_t i = lo; i < hi; ++i) {
    jrc_stats_add(st, b.z[2 * i], b.z[2 * i + 1], pos_of(i), w_of(i), kind);
    w_abs += std::fabs(w_of(i));
    z0_max = std::max(z0_max, std::fabs(b.z[2 * i]));
    z1_max = std::max(z1_max, std::fabs(b.z[2 * i + 1]));
  }
  const double m0 = lse_value(st.a), m1 = lse_value(st.b);
  const double lerr0 = 2.0 + ln + z0_max + fin(m0), lerr1 = 2.0 + ln + z1_max + fin(m1);  // of m0, m1
  double t0 = 0.0, t1 = 0.0, t0_err = 0.0, t1_err = 0.0;
  if (kind == kJrcSplit) {
    for (int64_t i = lo; i < hi; ++i) {
      const bool pos = pos_of(i);
      const double z0 = b.z[2 * i], z1 = b.z[2 * i + 1];
      const double share = jrc_split_share(z0, z1, pos, w_of(i), m0, m1);
      const double sg = pos ? sigmoid(m1 - z1) : sigmoid(m0 - z0);
      const double u_err = pos ? fin(m1) + std::fabs(z1) + lerr1 : fin(m0) + std::fabs(z0) + lerr0;
      const double err = std::fabs(w_of(i)) * (sg + sg * (1.0 - sg) * u_err) * ln;
      (pos ? t1 : t0) += share;
      (pos ? t1_err : t0_err) += err;
    }
  }
  const double a = st.w_sum / st.n, a_err = w_abs / st.n * ln;
  for (int64_t i = lo; i < hi; ++i) {
    const double z0 = b.z[2 * i], z1 = b.z[2 * i + 1], wi = w_of(i);
    const bool pos = pos_of(i);
    double c0 = 0.0, c1 = 0.0, g0 = 0.0, g1 = 0.0;
    // Part 0.
    t.loss[i] = jrc_ce(z0, z1, pos, wi, &c0, &c1);
    t.den[i] = wi != 0.0 ? 1.0 : 0.0;
    t.grad[2 * i] = c0;
    t.grad[2 * i + 1] = c1;
    const double x = pos ? z0 - z1 : z1 - z0, sg = sigmoid(x), zz = 2.0 + std::fabs(z0) + std::fabs(z1);
    t.loss_scale[i] = std::fabs(wi) * (softplus(x) + sg * zz);
    t.grad_scale[2 * i] = t.grad_scale[2 * i + 1] = std::fabs(wi) * (sg + sg * (1.0 - sg) * zz);
    // Part 1.
    t.loss[n + i] = jrc_ge_item(z0, z1, pos, wi, st, m0, m1, t0, t1, kind, &g0, &g1);
    t.den[n + i] = 1.0;
    t.grad[2 * (n + i)] = g0;
    t.grad[2 * (n + i) + 1] = g1;
    if (kind == kJrc) {
      const double mc = pos ? m1 : m0, zc = pos ? z1 : z0, lc = pos ? lerr1 : lerr0;
      t.loss_scale[n + i] = a_err * std::fabs(mc - zc) + std::fabs(a) * (lc + std::fabs(zc) + std::fabs(mc));
      const double n_pos = st.n_pos, n_neg = st.n - st.n_pos;
      const double e0 = n_neg * std::exp(z0 - m0), e1 = n_pos * std::exp(z1 - m1);
      t.grad_scale[2 * (n + i)] = a_err * (e0 + 1.0) + std::fabs(a) * e0 * (1.0 + std::fabs(z0) + fin(m0) + lerr0);
      t.grad_scale[2 * (n + i) + 1] = a_err * (e1 + 1.0) + std::fabs(a) * e1 * (1.0 + std::fabs(z1) + fin(m1) + lerr1);
    } else {
      const double u = pos ? m1 - z1 : m0 - z0;
      const double u_err = pos ? fin(m1) + std::fabs(z1) + lerr1 : fin(m0) + std::fabs(z0) + lerr0;
      const double su = sigmoid(u);
      t.loss_scale[n + i] = std::fabs(wi) * (softplus(u) + su * u_err);
      const double own = std::fabs(wi) * (su + su * (1.0 - su) * u_err);
      // The competitor column: e^{z - M} T with T's error and e's.
      const double e = pos ? (t0 == 0.0 ? 0.0 : std::exp(z0 - m0)) : (t1 == 0.0 ? 0.0 : std::exp(z1 - m1));
      const double other = pos ? e * (t0_err + std::fabs(t0) * (1.0 + std::fabs(z0) + fin(m0) + lerr0))
                               : e * (t1_err + std::fabs(t1) * (1.0 + std::fabs(z1) + fin(m1) + lerr1));
      t.grad_scale[2 * (n + i)] = pos ? other : own;
      t.grad_scale[2 * (n + i) + 1] = pos ? own : other;
    }
  }
}

// The truth of a partition given by leaders (lo[p] == p) and their ends hi[p].
Truth truth(const Batch& b, const Cfg& c, const std::vector<int64_t>& lo, const std::vector<int64_t>& hi) {
  const size_t parts = static_cast<size_t>(num_parts(c.kind)), cols = static_cast<size_t>(num_cols(c.kind));
  const size_t n = static_cast<size_t>(b.n);
  Truth t;
  t.loss.assign(parts * n, 0.0);
  t.den.assign(parts * n, 0.0);
  t.loss_scale.assign(parts * n, 0.0);
  t.grad.assign(parts * n * cols, 0.0);
  t.grad_scale.assign(parts * n * cols, 0.0);
  for (int64_t p = 0; p < b.n; ++p) {
    if (lo[static_cast<size_t>(p)] != p) continue;
    if (c.kind >= kJrc) {
      jrc_truth(b, c, p, hi[static_cast<size_t>(p)], t);
    } else {
      listwise_truth(b, c, p, hi[static_cast<size_t>(p)], t);
    }
  }
  return t;
}

struct Out {
  int rc = 0;
  std::vector<double> loss, den, grad;
};

template <typename acc_t>
SessionSoftmaxLaunchArgs launch_args(const Cfg& c, int64_t n) {
  SessionSoftmaxLaunchArgs a{};
  a.n = n;
  a.kind = c.kind;
  a.flags = c.flags;
  a.temperature = c.temperature;
  a.clip_max = c.clip_max;
  a.dtype = sizeof(acc_t) == 4 ? kSessionSoftmaxF32 : kSessionSoftmaxF64;
  a.num_blocks = fusedloss_session_softmax_num_blocks(n);
  return a;
}

// One launch on host copies of the batch in acc_t, outputs filled with NaN first.
template <typename acc_t>
Out run(const Batch& b, const Cfg& c, bool grad, const std::vector<int64_t>& lo, const std::vector<int64_t>& hi) {
  const size_t parts = static_cast<size_t>(num_parts(c.kind)), cols = static_cast<size_t>(num_cols(c.kind));
  const size_t n = static_cast<size_t>(b.n);
  const std::vector<acc_t> z(b.z.begin(), b.z.end()), y(b.y.begin(), b.y.end()), w(b.w.begin(), b.w.end());
  const acc_t nan = std::numeric_limits<acc_t>::quiet_NaN();
  std::vector<acc_t> loss(parts * n, nan), den(parts * n, nan), g(grad ? parts * n * cols : 0, nan);
  SessionSoftmaxLaunchArgs a = launch_args<acc_t>(c, b.n);
  a.logits = z.data();
  a.labels = y.data();
  a.weight = w.empty() ? nullptr : w.data();
  a.seg_lo = lo.data();
  a.seg_hi = hi.data();
  a.row_loss = loss.data();
  a.row_den = den.data();
  a.grad = grad ? g.data() : nullptr;
  Out o;
  o.rc = fusedloss_session_softmax_cuda(&a, nullptr);
  o.loss.assign(loss.begin(), loss.end());
  o.den.assign(den.begin(), den.end());
  o.grad.assign(g.begin(), g.end());
  return o;
}

double g_worst[2] = {0.0, 0.0};  // the largest |got - want| / (rtol * scale) seen, float32 / float64

void check_close(const char* what, double got, double want, double scale, double rtol, bool f64, const char* ctx) {
  const double atol = rtol * scale + 1e-300;
  const double r = std::fabs(got - want) / atol;
  if (std::isfinite(r)) g_worst[f64] = std::max(g_worst[f64], r);
  expect_close(what, got, want, 0.0, atol, ctx);
}

void compare(const Out& got, const Truth& want, bool grad, bool f64, const char* ctx) {
  const double rtol = f64 ? 1e-14 : 1e-6;
  expect(got.rc == 0, "launch status", got.rc, 0, ctx);
  if (got.rc != 0) return;
  for (size_t i = 0; i < want.loss.size(); ++i) {
    check_close("row_loss", got.loss[i], want.loss[i], want.loss_scale[i], rtol, f64, ctx);
    expect(got.den[i] == want.den[i], "row_den", got.den[i], want.den[i], ctx);
  }
  if (!grad) return;
  for (size_t i = 0; i < want.grad.size(); ++i) check_close("grad", got.grad[i], want.grad[i], want.grad_scale[i], rtol, f64, ctx);
}

template <typename acc_t>
void check_case(const Batch& b0, const Cfg& c, bool grad, const char* ctx) {
  const Batch b = rounded<acc_t>(b0);
  compare(run<acc_t>(b, c, grad, b.lo, b.hi), truth(b, c, b.lo, b.hi), grad, sizeof(acc_t) == 8, ctx);
}

const char* kind_name(int64_t kind) {
  static const char* const names[] = {"rank", "distill", "jrc", "jrc_split"};
  return names[kind];
}

// Listwise and JRC configurations: every kind, flag and weight option the kernel reads.
const Cfg kConfigs[] = {{kRank, 0, 1.0, 512.0, false},
                        {kRank, kLabelIsLogits, 0.6, 512.0, false},
                        {kRank, kTargetsGiven, 1.0, 512.0, false},
                        {kRank, kLabelIsLogits | kTargetsGiven, 0.6, 512.0, false},
                        {kDistill, 0, 1.0, 512.0, false},
                        {kDistill, 0, 0.6, 8.0, false},
                        {kDistill, kTargetsGiven, 1.0, 512.0, false},
                        {kJrc, 0, 1.0, 512.0, false},
                        {kJrc, 0, 1.0, 512.0, true},
                        {kJrcSplit, 0, 1.0, 512.0, false},
                        {kJrcSplit, 0, 1.0, 512.0, true}};
constexpr int kNumConfigs = sizeof kConfigs / sizeof kConfigs[0];

void one_case(const Cfg& c, int n, Layout layout, int dtypes, bool grad) {
  char ctx[256];
  const Batch b = make_batch(n, layout, c);
  std::snprintf(ctx, sizeof ctx, "%s flags %lld T %g M %g w %d n %d layout %d grad %d", kind_name(c.kind),
                static_cast<long long>(c.flags), c.temperature, c.clip_max, c.weighted, n, layout, grad);
  if (dtypes & 1) check_case<float>(b, c, grad, ctx);
  if (dtypes & 2) check_case<double>(b, c, grad, ctx);
}

// Per configuration: 10 blocks with one 150-item block session among short warp sessions, and short
// sessions over three spans, one in float32 and the other in float64 (alternating); sessions across
// the 32-item spans and the 64-item warp limit without the gradient.
void per_config(int first, int last) {
  for (int k = first; k < last; ++k) {
    const Cfg& c = kConfigs[k];
    one_case(c, 300, kHuge, 1 + k % 2, true);
    one_case(c, 65, kSmall, 2 - k % 2, true);
    one_case(c, 97, kEdges, randint(1, 2), false);
  }
}

void listwise_kinds() { per_config(0, 7); }

void jrc_kinds() {
  per_config(7, kNumConfigs);
  // Sessions with no positives and with only positives (kJrcSplit's empty label sets: M = -inf).
  char ctx[128];
  for (int64_t kind : {kJrc, kJrcSplit}) {
    for (double label : {0.0, 1.0}) {
      const Cfg c{kind, 0, 1.0, 512.0, true};
      Batch b = make_batch(150, kEdges, c);
      for (int i = 0; i < 100; ++i) b.y[static_cast<size_t>(i)] = label;  // the first sessions one-sided
      std::snprintf(ctx, sizeof ctx, "%s one-sided sessions label %g", kind_name(kind), label);
      check_case<float>(b, c, true, ctx);
      check_case<double>(b, c, true, ctx);
    }
  }
}

// Every size x layout once, the configuration round-robin and the dtype drawn; then 1,000 items
// (32 blocks) in one block session and in sessions of 32 to 66 items.
void sizes_and_layouts() {
  const int sizes[] = {1, 31, 32, 33, 64, 65, 97, 300};
  int next = 0;
  for (int n : sizes) {
    for (int l = 0; l < kNumLayouts; ++l) {
      const Layout layout = static_cast<Layout>(l);
      if ((n < 8 && layout != kOne) || (layout == kSingles && n > 65)) continue;  // singletons: slow to emulate
      const int dtypes = randint(1, 2);
      const bool grad = randint(0, 3) != 0;
      one_case(kConfigs[next++ % kNumConfigs], n, layout, dtypes, grad);
    }
  }
  one_case(kConfigs[1], 1000, kOne, 3, true);
  one_case(kConfigs[10], 1000, kOne, 3, true);
  one_case(kConfigs[5], 1000, kEdges, 1, true);
  one_case(kConfigs[8], 1000, kEdges, 2, true);
}

// Bad ranges the kernel clamps: seg_lo[0] < 0 (item 0 still leads), a leader's seg_hi past n (the
// last session's) or at / before its item (a singleton), and garbage seg_lo (other than a leader's
// value, below n - 1) and seg_hi on the non-leaders, which only decide who leads.
void clamped_ranges() {
  char ctx[128];
  const Cfg cfgs[] = {{kRank, kLabelIsLogits, 1.0, 512.0, false}, {kJrcSplit, 0, 1.0, 512.0, true}};
  for (const Cfg& c : cfgs) {
    for (int n : {45, 300}) {
      Batch b = make_batch(n, kHuge, c);
      std::vector<int64_t> lo = b.lo, hi = b.hi;
      const int64_t big = std::numeric_limits<int64_t>::max();
      int64_t last_leader = 0;
      for (int64_t p = 0; p < n; ++p) {
        if (b.lo[static_cast<size_t>(p)] == p) last_leader = p;
      }
      for (int64_t p = 0; p < n; ++p) {
        const size_t i = static_cast<size_t>(p);
        if (b.lo[i] == p) {
          if (p == 0) lo[i] = -7;
          if (p == last_leader) hi[i] = randint(0, 1) ? big : n + 5;
          if (b.hi[i] == p + 1) hi[i] = randint(0, 1) ? p : -big;
        } else {
          // Non-leaders: any seg_lo that does not clamp to p (p < n - 1 is not n - 1's clamp).
          const int r = randint(0, 3);
          lo[i] = r == 0 ? -big : (r == 1 ? (p == n - 1 ? p - 1 : big) : (r == 2 ? p + 1 : p - 1 - randint(0, 3)));
          if (lo[i] == p + 1 && p + 1 > n - 1) lo[i] = p - 1;
          hi[i] = r == 0 ? big : -3;
        }
      }
      std::snprintf(ctx, sizeof ctx, "clamped ranges %s n %d", kind_name(c.kind), n);
      if (n < 300 || c.kind == kRank) {
        const Batch bf = rounded<float>(b);
        compare(run<float>(bf, c, true, lo, hi), truth(bf, c, b.lo, b.hi), true, false, ctx);
      }
      if (n < 300 || c.kind != kRank) {
        const Batch bd = rounded<double>(b);
        compare(run<double>(bd, c, true, lo, hi), truth(bd, c, b.lo, b.hi), true, true, ctx);
      }
    }
  }
  // Random ranges: overlapping sessions, several long sessions in one span. Only the status is
  // checked here; the accesses are checked by the ASan build.
  for (int64_t kind : {kDistill, kJrc}) {
    const Cfg c{kind, 0, 1.0, 512.0, kind == kJrc};
    const int n = 100;
    Batch b = make_batch(n, kSmall, c);
    std::vector<int64_t> lo(static_cast<size_t>(n)), hi(static_cast<size_t>(n));
    for (int p = 0; p < n; ++p) {
      lo[static_cast<size_t>(p)] = randint(0, 2) == 0 ? p : randint(-5, n + 5);
      hi[static_cast<size_t>(p)] = randint(-5, n + 5);
    }
    std::snprintf(ctx, sizeof ctx, "random ranges %s", kind_name(kind));
    expect(run<float>(b, c, true, lo, hi).rc == 0, "random ranges launch status", 0, 0, ctx);
    expect(run<double>(b, c, false, lo, hi).rc == 0, "random ranges launch status", 0, 0, ctx);
  }
}

void launch_checks() {
  const Cfg c{kJrc, 0, 1.0, 512.0, true};
  const Batch b = rounded<float>(make_batch(40, kSmall, c));
  const std::vector<float> z(b.z.begin(), b.z.end()), y(b.y.begin(), b.y.end()), w(b.w.begin(), b.w.end());
  std::vector<float> loss(80, -1.0f), den(80, -1.0f), g(160, -1.0f);
  auto base = [&]() {
    SessionSoftmaxLaunchArgs a = launch_args<float>(c, b.n);
    a.logits = z.data();
    a.labels = y.data();
    a.weight = w.data();
    a.seg_lo = b.lo.data();
    a.seg_hi = b.hi.data();
    a.row_loss = loss.data();
    a.row_den = den.data();
    a.grad = g.data();
    return a;
  };
  struct Bad {
    const char* what;
    void (*edit)(SessionSoftmaxLaunchArgs&);
    int rc;
  };
  const Bad bad[] = {
      {"negative n", [](SessionSoftmaxLaunchArgs& a) { a.n = -1; }, kSessionSoftmaxBadArgs},
      {"num_blocks + 1", [](SessionSoftmaxLaunchArgs& a) { a.num_blocks += 1; }, kSessionSoftmaxBadArgs},
      {"num_blocks 0", [](SessionSoftmaxLaunchArgs& a) { a.num_blocks = 0; }, kSessionSoftmaxBadArgs},
      {"logits NULL", [](SessionSoftmaxLaunchArgs& a) { a.logits = nullptr; }, kSessionSoftmaxBadArgs},
      {"labels NULL", [](SessionSoftmaxLaunchArgs& a) { a.labels = nullptr; }, kSessionSoftmaxBadArgs},
      {"seg_lo NULL", [](SessionSoftmaxLaunchArgs& a) { a.seg_lo = nullptr; }, kSessionSoftmaxBadArgs},
      {"seg_hi NULL", [](SessionSoftmaxLaunchArgs& a) { a.seg_hi = nullptr; }, kSessionSoftmaxBadArgs},
      {"row_loss NULL", [](SessionSoftmaxLaunchArgs& a) { a.row_loss = nullptr; }, kSessionSoftmaxBadArgs},
      {"row_den NULL", [](SessionSoftmaxLaunchArgs& a) { a.row_den = nullptr; }, kSessionSoftmaxBadArgs},
      {"kind -1", [](SessionSoftmaxLaunchArgs& a) { a.kind = -1; }, kSessionSoftmaxBadArgs},
      {"kind 4", [](SessionSoftmaxLaunchArgs& a) { a.kind = 4; }, kSessionSoftmaxBadArgs},
      {"flags -1", [](SessionSoftmaxLaunchArgs& a) { a.flags = -1; }, kSessionSoftmaxBadArgs},
      {"flags 4", [](SessionSoftmaxLaunchArgs& a) { a.flags = 4; }, kSessionSoftmaxBadArgs},
      {"temperature 0", [](SessionSoftmaxLaunchArgs& a) { a.temperature = 0.0; }, kSessionSoftmaxBadArgs},
      {"temperature -1", [](SessionSoftmaxLaunchArgs& a) { a.temperature = -1.0; }, kSessionSoftmaxBadArgs},
      {"temperature NaN", [](SessionSoftmaxLaunchArgs& a) { a.temperature = std::nan(""); }, kSessionSoftmaxBadArgs},
      {"clip_max 0.5", [](SessionSoftmaxLaunchArgs& a) { a.clip_max = 0.5; }, kSessionSoftmaxBadArgs},
      {"clip_max NaN", [](SessionSoftmaxLaunchArgs& a) { a.clip_max = std::nan(""); }, kSessionSoftmaxBadArgs},
      {"dtype 2", [](SessionSoftmaxLaunchArgs& a) { a.dtype = 2; }, kSessionSoftmaxBadDType},
      {"dtype -1", [](SessionSoftmaxLaunchArgs& a) { a.dtype = -1; }, kSessionSoftmaxBadDType},
  };
  for (const Bad& x : bad) {
    SessionSoftmaxLaunchArgs a = base();
    x.edit(a);
    const int rc = fusedloss_session_softmax_cuda(&a, nullptr);
    expect(rc == x.rc, "rejected launch status", rc, x.rc, x.what);
  }
  expect(fusedloss_session_softmax_cuda(nullptr, nullptr) == kSessionSoftmaxBadArgs, "args NULL", 0, 0, "");
  bool untouched = true;
  for (float v : loss) untouched = untouched && v == -1.0f;
  for (float v : den) untouched = untouched && v == -1.0f;
  for (float v : g) untouched = untouched && v == -1.0f;
  expect(untouched, "rejected launches write nothing", 0, 0, "");
  // Accepted edge values: temperature tiny, clip_max 1, every flag, weight and grad NULL.
  SessionSoftmaxLaunchArgs a = base();
  a.flags = kLabelIsLogits | kTargetsGiven;
  a.clip_max = 1.0;
  a.weight = nullptr;
  a.grad = nullptr;
  expect(fusedloss_session_softmax_cuda(&a, nullptr) == 0, "edge values accepted", 0, 0, "");
  // Empty batch: 0 and nothing launched, whatever the pointers.
  SessionSoftmaxLaunchArgs e{};
  e.kind = kRank;
  e.temperature = 1.0;
  e.clip_max = 512.0;
  expect(fusedloss_session_softmax_cuda(&e, nullptr) == 0, "empty batch launches nothing", 0, 0, "");
  e = base();
  e.n = 0;
  e.num_blocks = 0;
  std::fill(loss.begin(), loss.end(), -1.0f);
  const int rc = fusedloss_session_softmax_cuda(&e, nullptr);
  expect(rc == 0 && loss[0] == -1.0f, "empty batch with buffers", rc, 0, "");
  expect(fusedloss_session_softmax_num_blocks(0) == 0 && fusedloss_session_softmax_num_blocks(32) == 1 &&
             fusedloss_session_softmax_num_blocks(33) == 2,
         "num_blocks", 0, 0, "");
}

void report_worst() {
  std::printf("largest error / tolerance: float32 %.3g, float64 %.3g\n", g_worst[0], g_worst[1]);
}

}  // namespace

int main() {
  flsim::g_rng.seed(20260311);
  const fltest::Group groups[] = {{"listwise kinds", listwise_kinds},
                                  {"jrc kinds", jrc_kinds},
                                  {"sizes and layouts", sizes_and_layouts},
                                  {"clamped ranges", clamped_ranges},
                                  {"launch checks", launch_checks},
                                  {"(error margins)", report_worst}};
  return fltest::run_groups("test_session_softmax_cuda_sim", groups);
}
