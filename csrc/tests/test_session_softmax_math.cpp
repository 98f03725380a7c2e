// Torch-free unit tests of the math in csrc/session_softmax/session_softmax_math.h (run by ctest; see
// CMakeLists.txt), against direct long-double computations of the formulas in its header comment.
// Exits nonzero on any failure and prints a summary.
//
// A driver runs one session through the header's three sweeps as the kernels do (sweep 1 and 2 in
// `lanes` strided per-thread states merged in order, like the CUDA groups; lanes = 1 is the cpu
// kernel), and its per-item row_loss, row_den and grad are checked against:
//  1. listwise (kRank raw / label logits / targets given, kDistill with and without targets given):
//     the per-item loss q_i (LSE(s) - s_i) with q computed directly, row_den = [i == lo], and the
//     gradient against central differences of the direct session loss in z;
//  2. JRC part 0 (CE): w softplus(z_other - z_c) and its gradient, row_den = [w != 0];
//  3. JRC part 1 (GE): kJrc a (LSE_session(z_c) - z_c,i) with a the mean weight; kJrcSplit w_j
//     (LSE over j and the opposite-label items of z_{c_j} - z_{c_j, j}); gradients of the part's
//     session sum against central differences;
//  4. edge cases: lse_value of the empty state is -inf (not NaN); kJrcSplit sessions whose label
//     sets are empty (all positive, all negative), singleton sessions (listwise loss 0, gradient 0;
//     JRC GE 0), zero and negative weights, clipped distill labels, a zero-mass distill session (NaN
//     as EasyRec's 0 / 0), large logits (no overflow), and merged states (lanes 1, 3, 32) agreeing.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "../session_softmax/session_softmax_math.h"

namespace ss = fusedloss::session_softmax;
using ss::Params;

namespace {

using fltest::expect;
using fltest::expect_close;

using ld = long double;

struct Session {
  int64_t kind = ss::kRank;
  int64_t flags = 0;
  double temperature = 1.0;
  double clip_max = 512.0;
  std::vector<double> z;  // [n, C]
  std::vector<double> y;  // [n]
  std::vector<double> w;  // [n] or empty (weight 1)
  int64_t n() const { return static_cast<int64_t>(y.size()); }
  int64_t cols() const { return ss::num_cols(kind); }
  double weight(int64_t i) const { return w.empty() ? 1.0 : w[static_cast<size_t>(i)]; }
};

// Per-item outputs of one session: loss, den [P, n]; grad [P, n, C].
template <typename acc_t>
struct Out {
  std::vector<acc_t> loss, den, grad;
};

// The kernels' sweeps over one session, with `lanes` per-thread states (item i -> state i % lanes)
// merged in lane order.
template <typename acc_t>
Out<acc_t> run_session(const Session& s, int lanes) {
  Params<acc_t> prm;
  prm.kind = s.kind;
  prm.flags = s.flags;
  prm.temperature = static_cast<acc_t>(s.temperature);
  prm.clip_max = static_cast<acc_t>(s.clip_max);
  const int64_t n = s.n(), c = s.cols(), parts = ss::num_parts(s.kind);
  std::vector<acc_t> z(s.z.begin(), s.z.end()), y(s.y.begin(), s.y.end());
  auto w_at = [&](int64_t i) { return static_cast<acc_t>(s.weight(i)); };
  Out<acc_t> o;
  o.loss.assign(static_cast<size_t>(parts * n), acc_t(-12345));
  o.den.assign(static_cast<size_t>(parts * n), acc_t(-12345));
  o.grad.assign(static_cast<size_t>(parts * n * c), acc_t(-12345));
  if (s.kind < ss::kJrc) {
    std::vector<ss::ListStats<acc_t>> part(static_cast<size_t>(lanes), ss::list_stats_empty<acc_t>());
    for (int64_t i = 0; i < n; ++i) ss::list_stats_add(part[static_cast<size_t>(i % lanes)], z[i], y[i], prm);
    ss::ListStats<acc_t> st = part[0];
    for (int l = 1; l < lanes; ++l) st = ss::list_stats_merge(st, part[static_cast<size_t>(l)]);
    const acc_t lse_s = fusedloss::lse_value(st.s);
    std::vector<acc_t> qs(static_cast<size_t>(lanes), acc_t(0));
    for (int64_t i = 0; i < n; ++i) qs[static_cast<size_t>(i % lanes)] += ss::list_target(y[i], st, prm);
    acc_t q_sum = acc_t(0);
    for (int l = 0; l < lanes; ++l) q_sum += qs[static_cast<size_t>(l)];
    for (int64_t i = 0; i < n; ++i) {
      acc_t g;
      o.loss[i] = ss::list_item(z[i], y[i], st, lse_s, q_sum, prm, &g);
      o.den[i] = i == 0 ? acc_t(1) : acc_t(0);
      o.grad[i] = g;
    }
    return o;
  }
  std::vector<ss::JrcStats<acc_t>> part(static_cast<size_t>(lanes), ss::jrc_stats_empty<acc_t>());
  for (int64_t i = 0; i < n; ++i) {
    ss::jrc_stats_add(part[static_cast<size_t>(i % lanes)], z[2 * i], z[2 * i + 1], y[i] == acc_t(1), w_at(i), s.kind);
  }
  ss::JrcStats<acc_t> st = part[0];
  for (int l = 1; l < lanes; ++l) st = ss::jrc_stats_merge(st, part[static_cast<size_t>(l)]);
  const acc_t m0 = fusedloss::lse_value(st.a), m1 = fusedloss::lse_value(st.b);
  acc_t t0 = acc_t(0), t1 = acc_t(0);
  if (s.kind == ss::kJrcSplit) {
    std::vector<acc_t> p0(static_cast<size_t>(lanes), acc_t(0)), p1(static_cast<size_t>(lanes), acc_t(0));
    for (int64_t i = 0; i < n; ++i) {
      const bool pos = y[i] == acc_t(1);
      const acc_t share = ss::jrc_split_share(z[2 * i], z[2 * i + 1], pos, w_at(i), m0, m1);
      (pos ? p1 : p0)[static_cast<size_t>(i % lanes)] += share;
    }
    for (int l = 0; l < lanes; ++l) {
      t0 += p0[static_cast<size_t>(l)];
      t1 += p1[static_cast<size_t>(l)];
    }
  }
  for (int64_t i = 0; i < n; ++i) {
    const bool pos = y[i] == acc_t(1);
    const acc_t wi = w_at(i);
    acc_t c0, c1, g0, g1;
    o.loss[i] = ss::jrc_ce(z[2 * i], z[2 * i + 1], pos, wi, &c0, &c1);
    o.den[i] = wi != acc_t(0) ? acc_t(1) : acc_t(0);
    o.loss[n + i] = ss::jrc_ge_item(z[2 * i], z[2 * i + 1], pos, wi, st, m0, m1, t0, t1, s.kind, &g0, &g1);
    o.den[n + i] = acc_t(1);
    o.grad[2 * i] = c0;
    o.grad[2 * i + 1] = c1;
    o.grad[2 * (n + i)] = g0;
    o.grad[2 * (n + i) + 1] = g1;
  }
  return o;
}

// ---- Direct long-double formulas ----

ld lse(const std::vector<ld>& x) {
  ld m = -std::numeric_limits<ld>::infinity();
  for (ld v : x) m = std::max(m, v);
  if (m == -std::numeric_limits<ld>::infinity()) return m;
  ld s = 0;
  for (ld v : x) s += std::exp(v - m);
  return m + std::log(s);
}

// q of the listwise kinds (does not depend on z).
std::vector<ld> direct_q(const Session& s) {
  const int64_t n = s.n();
  const ld t = s.temperature, m = s.clip_max;
  const bool given = (s.flags & ss::kTargetsGiven) != 0;
  std::vector<ld> q(static_cast<size_t>(n));
  if (s.kind == ss::kDistill) {
    ld sum = 0;
    for (int64_t i = 0; i < n; ++i) {
      const ld yi = s.y[static_cast<size_t>(i)];
      q[static_cast<size_t>(i)] = given ? yi : std::log1p(m) - std::log(std::min(std::max(yi, ld(1)), m));
      sum += q[static_cast<size_t>(i)];
    }
    for (ld& v : q) v /= sum;
  } else if (s.flags & ss::kLabelIsLogits) {
    std::vector<ld> u(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) u[static_cast<size_t>(i)] = given ? ld(s.y[i]) : ld(s.y[i]) / t;
    const ld l = lse(u);
    for (int64_t i = 0; i < n; ++i) q[static_cast<size_t>(i)] = std::exp(u[static_cast<size_t>(i)] - l);
  } else {
    for (int64_t i = 0; i < n; ++i) q[static_cast<size_t>(i)] = s.y[static_cast<size_t>(i)];
  }
  return q;
}

// Per-item direct losses [P, n] at logits z (the session's z perturbed by the caller).
std::vector<ld> direct_losses(const Session& s, const std::vector<ld>& z) {
  const int64_t n = s.n();
  std::vector<ld> out(static_cast<size_t>(ss::num_parts(s.kind) * n), 0);
  if (s.kind < ss::kJrc) {
    const std::vector<ld> q = direct_q(s);
    std::vector<ld> sc(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) sc[static_cast<size_t>(i)] = z[static_cast<size_t>(i)] / ld(s.temperature);
    const ld l = lse(sc);
    for (int64_t i = 0; i < n; ++i) out[static_cast<size_t>(i)] = q[static_cast<size_t>(i)] * (l - sc[static_cast<size_t>(i)]);
    return out;
  }
  auto col = [&](int64_t i, int c) { return z[static_cast<size_t>(2 * i + c)]; };
  auto pos = [&](int64_t i) { return s.y[static_cast<size_t>(i)] == 1.0; };
  ld w_mean = 0;
  for (int64_t i = 0; i < n; ++i) w_mean += s.weight(i);
  w_mean /= n;
  for (int64_t i = 0; i < n; ++i) {
    const int c = pos(i) ? 1 : 0;
    const ld wi = s.weight(i);
    out[static_cast<size_t>(i)] = wi * (lse({col(i, 0), col(i, 1)}) - col(i, c));  // -w log softmax(z_i)_c
    std::vector<ld> set;
    for (int64_t k = 0; k < n; ++k) {
      if (s.kind == ss::kJrc || k == i || pos(k) != pos(i)) set.push_back(col(k, c));
    }
    const ld ge = lse(set) - col(i, c);
    out[static_cast<size_t>(n + i)] = (s.kind == ss::kJrc ? w_mean : wi) * ge;
  }
  return out;
}

const char* kind_name(int64_t kind) {
  static const char* names[] = {"rank", "distill", "jrc", "jrc_split"};
  return names[kind];
}

// Checks run_session<acc_t> against the direct formulas: per-item losses, denominators, and the
// gradient of each part's session sum against central differences.
template <typename acc_t>
void check_session(const Session& s, int lanes, const char* what) {
  const bool f32 = sizeof(acc_t) == 4;
  const double rtol = f32 ? 2e-5 : 1e-11;
  const Out<acc_t> o = run_session<acc_t>(s, lanes);
  const int64_t n = s.n(), c = s.cols(), parts = ss::num_parts(s.kind);
  std::vector<ld> z0(s.z.begin(), s.z.end());
  if (f32) {  // the direct formulas on the float-rounded inputs
    for (ld& v : z0) v = static_cast<float>(v);
  }
  const std::vector<ld> want = direct_losses(s, z0);
  char ctx[200];
  // Loss scale of the session, for the absolute tolerance.
  ld scale = 1;
  for (ld v : want) scale = std::max(scale, std::fabs(v));
  for (int64_t k = 0; k < parts * n; ++k) {
    std::snprintf(ctx, sizeof ctx, "%s %s %s flags %lld n %lld lanes %d item %lld", what, f32 ? "f32" : "f64",
                  kind_name(s.kind), static_cast<long long>(s.flags), static_cast<long long>(n), lanes,
                  static_cast<long long>(k));
    expect_close("row_loss", static_cast<double>(o.loss[static_cast<size_t>(k)]),
                 static_cast<double>(want[static_cast<size_t>(k)]), rtol, rtol * static_cast<double>(scale), ctx);
    const int64_t part = k / n, i = k % n;
    double den_want = 1.0;
    if (s.kind < ss::kJrc) den_want = i == 0 ? 1.0 : 0.0;
    if (s.kind >= ss::kJrc && part == 0) den_want = s.weight(i) != 0.0 ? 1.0 : 0.0;
    expect(o.den[static_cast<size_t>(k)] == static_cast<acc_t>(den_want), "row_den",
           static_cast<double>(o.den[static_cast<size_t>(k)]), den_want, ctx);
  }
  // Central differences of each part's sum over the session.
  const ld h = 1e-5L;
  for (int64_t part = 0; part < parts; ++part) {
    for (int64_t j = 0; j < n * c; ++j) {
      std::vector<ld> zp = z0, zm = z0;
      zp[static_cast<size_t>(j)] += h;
      zm[static_cast<size_t>(j)] -= h;
      const std::vector<ld> lp = direct_losses(s, zp), lm = direct_losses(s, zm);
      ld fd = 0;
      for (int64_t i = 0; i < n; ++i) {
        fd += (lp[static_cast<size_t>(part * n + i)] - lm[static_cast<size_t>(part * n + i)]) / (2 * h);
      }
      std::snprintf(ctx, sizeof ctx, "%s %s %s flags %lld n %lld lanes %d part %lld elem %lld", what,
                    f32 ? "f32" : "f64", kind_name(s.kind), static_cast<long long>(s.flags),
                    static_cast<long long>(n), lanes, static_cast<long long>(part), static_cast<long long>(j));
      const double got = static_cast<double>(o.grad[static_cast<size_t>(part * n * c + j)]);
      expect_close("grad vs central differences", got, static_cast<double>(fd), f32 ? 1e-4 : 1e-7,
                   (f32 ? 1e-4 : 1e-7) * static_cast<double>(scale), ctx);
    }
  }
}

std::mt19937_64& rng() {
  static std::mt19937_64 g(20240611);
  return g;
}

double uniform(double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(rng()); }
int64_t randint(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng()); }

Session random_session(int64_t kind, int64_t flags, int64_t n, bool weighted) {
  Session s;
  s.kind = kind;
  s.flags = flags;
  s.temperature = uniform(0.3, 2.0);
  s.clip_max = kind == ss::kDistill ? uniform(5.0, 40.0) : 512.0;
  const int64_t c = s.cols();
  for (int64_t i = 0; i < n * c; ++i) s.z.push_back(uniform(-3.0, 3.0));
  for (int64_t i = 0; i < n; ++i) {
    if (kind >= ss::kJrc) {
      s.y.push_back(static_cast<double>(randint(0, 1)));
    } else if (kind == ss::kDistill) {
      s.y.push_back(flags & ss::kTargetsGiven ? uniform(0.1, 2.0) : static_cast<double>(randint(0, 50)));
    } else {
      s.y.push_back(uniform(0.0, 3.0));
    }
  }
  if (weighted) {
    for (int64_t i = 0; i < n; ++i) s.w.push_back(uniform(0.0, 2.0));
  }
  return s;
}

void check_both(const Session& s, const char* what) {
  for (int lanes : {1, 3, 32}) {
    check_session<double>(s, lanes, what);
    check_session<float>(s, lanes, what);
  }
}

// ---- Groups ----

void test_listwise() {
  for (int64_t kind : {ss::kRank, ss::kDistill}) {
    for (int64_t flags : {0, 1, 2, 3}) {
      if (kind == ss::kDistill && (flags & ss::kLabelIsLogits)) continue;
      for (int rep = 0; rep < 12; ++rep) {
        const int64_t n = rep < 2 ? 1 : randint(2, 40);
        check_both(random_session(kind, flags, n, false), "random");
      }
    }
  }
}

void test_jrc() {
  for (int64_t kind : {ss::kJrc, ss::kJrcSplit}) {
    for (int rep = 0; rep < 30; ++rep) {
      const int64_t n = rep < 2 ? 1 : randint(2, 40);
      check_both(random_session(kind, 0, n, rep % 3 != 0), "random");
    }
  }
}

void test_edge_cases() {
  // lse_value of the empty state: -inf + log(0) = -inf, not NaN.
  const double e64 = fusedloss::lse_value(fusedloss::lse_empty<double>());
  const float e32 = fusedloss::lse_value(fusedloss::lse_empty<float>());
  expect(std::isinf(e64) && e64 < 0, "lse_value(empty) f64", e64, -INFINITY, "");
  expect(std::isinf(e32) && e32 < 0, "lse_value(empty) f32", e32, -INFINITY, "");
  // kJrcSplit sessions with an empty label set (all positive, all negative): GE with M = -inf.
  for (double label : {0.0, 1.0}) {
    for (int64_t kind : {ss::kJrc, ss::kJrcSplit}) {
      Session s = random_session(kind, 0, 7, true);
      for (double& y : s.y) y = label;
      check_both(s, label == 1.0 ? "all positive" : "all negative");
      if (kind == ss::kJrcSplit) {  // softplus(-inf) = 0: the GE terms and gradients are exactly 0
        const Out<double> o = run_session<double>(s, 1);
        for (int64_t i = 0; i < s.n(); ++i) {
          expect(o.loss[static_cast<size_t>(s.n() + i)] == 0.0, "empty set: GE loss 0",
                 o.loss[static_cast<size_t>(s.n() + i)], 0.0, "");
          for (int c = 0; c < 2; ++c) {
            const double g = o.grad[static_cast<size_t>(2 * (s.n() + i) + c)];
            expect(g == 0.0, "empty set: GE grad 0", g, 0.0, "");
          }
        }
      }
    }
  }
  // Singletons: listwise loss and gradient 0 (q = Q softmax); JRC GE 0 for both kinds.
  for (int64_t kind : {ss::kRank, ss::kDistill, ss::kJrc, ss::kJrcSplit}) {
    for (int rep = 0; rep < 4; ++rep) {
      const Session s = random_session(kind, kind == ss::kRank ? (rep & 1) : 0, 1, true && kind >= ss::kJrc);
      const Out<double> o = run_session<double>(s, 1);
      const size_t ge = kind >= ss::kJrc ? 1 : 0;
      expect_close("singleton loss", o.loss[ge], 0.0, 0, 1e-15, kind_name(kind));
      for (int64_t c = 0; c < s.cols(); ++c) {
        expect_close("singleton grad", o.grad[ge * static_cast<size_t>(s.cols()) + static_cast<size_t>(c)], 0.0, 0,
                     1e-15, kind_name(kind));
      }
    }
  }
  // Zero and negative weights (JRC): CE den [w != 0]; kJrcSplit excludes same-label items for any w.
  for (int64_t kind : {ss::kJrc, ss::kJrcSplit}) {
    Session s = random_session(kind, 0, 9, true);
    s.w[0] = 0.0;
    s.w[3] = -0.7;
    s.w[5] = 0.0;
    check_both(s, "zero/negative weights");
  }
  // Distill: labels below 1 and above M are clipped; a zero-mass session (targets given, all 0) is NaN.
  {
    Session s = random_session(ss::kDistill, 0, 10, false);
    s.clip_max = 8.0;
    s.y = {0.0, -3.0, 1.0, 2.0, 8.0, 9.0, 100.0, 3.5, 0.5, 7.9};
    check_both(s, "clipped distill");
    Session zm = random_session(ss::kDistill, ss::kTargetsGiven, 5, false);
    for (double& y : zm.y) y = 0.0;
    const Out<double> o = run_session<double>(zm, 1);
    expect(std::isnan(o.loss[0]), "zero-mass distill session is NaN", o.loss[0], NAN, "");
  }
  // Large logits: no overflow in either type (float: e^90 overflows if exponentiated unshifted).
  for (int64_t kind : {ss::kRank, ss::kDistill, ss::kJrc, ss::kJrcSplit}) {
    Session s = random_session(kind, 0, 12, kind >= ss::kJrc);
    for (size_t i = 0; i < s.z.size(); ++i) s.z[i] = (i % 3 == 0 ? 90.0 : -85.0) + s.z[i];
    check_both(s, "large logits");
    const Out<float> o = run_session<float>(s, 4);
    bool finite = true;
    for (float v : o.loss) finite = finite && std::isfinite(v);
    for (float v : o.grad) finite = finite && std::isfinite(v);
    expect(finite, "large logits: finite f32 outputs", finite, 1, kind_name(kind));
  }
  // Ties and equal labels (kRank with label logits: uniform q; JRC: equal logits).
  {
    Session s = random_session(ss::kRank, ss::kLabelIsLogits, 6, false);
    for (double& y : s.y) y = 1.25;
    for (double& z : s.z) z = 0.5;
    check_both(s, "ties");
  }
}

}  // namespace

int main() {
  const fltest::Group groups[] = {
      {"listwise", test_listwise},
      {"jrc", test_jrc},
      {"edge cases", test_edge_cases},
  };
  return fltest::run_groups("test_session_softmax_math", groups);
}
