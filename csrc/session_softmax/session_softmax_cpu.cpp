// CPU kernel of fusedloss::session_softmax_fwd (schema: fusedloss/ops/_library.py; math and sweeps:
// session_softmax_math.h, the same functions the CUDA kernel runs).
//
// Items come in session-sorted order. Item p leads its session iff seg_lo[p] == p; a leader runs its
// session [p, seg_hi[p]) in the header's three sweeps (statistics, then Q or T0/T1, then the per-item
// row_loss / row_den / grad writes). Sessions run in parallel (at::parallel_for over the items,
// non-leaders skipped), each on one thread: one giant session is correct, just serial. The ranges are
// checked first (each item's range contains it, lies in [0, B] and continues or follows its
// predecessor's), so every output element is written exactly once and nothing is read out of
// bounds. The per-item terms go to [P, B] acc_t buffers, summed per part in double over fixed blocks
// of kSumBlock items, the blocks in order: the result does not depend on the thread count.
//
// Speed. Sweep 1 (the online LSEs) is a serial chain per state: it runs kLanes interleaved states,
// merged at the end. Sweeps 2 and 3 are `omp simd` loops over the session through the header
// functions, vectorised through libmvec (cpu_vector.h; setup.py's -fno-math-errno
// -fno-trapping-math -fopenmp-simd), specialised at compile time on the kind, the flags, the weight
// and the gradient (runtime branches keep GCC 12 from if-converting them), and compiled for the
// x86-64 baseline, AVX2+FMA and AVX-512, picked at run time (FUSEDLOSS_CPU_ISA=base|avx2 lowers it).
// Measured on a 2-core Xeon (AVX-512, KVM guest shared with other jobs), torch 2.13 CPU, one
// thread, CPU time of the op alone, B = 262,144 in sessions of 50-150 items: JRC 5.3 ms (fp32) /
// 7.4 ms (fp64), JRC without same_label_loss 7.7 / 11.7 ms, listwise rank 2.1 / 2.9 ms, with label
// logits 3.3 / 6.5 ms, distill 7.2 / 9.8 ms (scalar, unvectorised: 14 / 17 ms for JRC).
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <optional>
#include <tuple>
#include <vector>

#include "../common/checks.h"
#include "../common/cpu_vector.h"
#include "session_softmax_checks.h"
#include "session_softmax_math.h"

#if defined(FUSEDLOSS_OPENMP_SIMD)
#define FL_SS_SIMD_SUM_Q _Pragma("omp simd reduction(+ : q)")
#define FL_SS_SIMD_SUM_T _Pragma("omp simd reduction(+ : s0, s1)")
#define FL_SS_SIMD _Pragma("omp simd")
#else
#define FL_SS_SIMD_SUM_Q
#define FL_SS_SIMD_SUM_T
#define FL_SS_SIMD
#endif

#if defined(__GNUC__)
#define FL_SS_FLATTEN __attribute__((flatten))
#else
#define FL_SS_FLATTEN
#endif

namespace fusedloss {
namespace session_softmax {
namespace {

constexpr int64_t kGrain = 2048;     // at::parallel_for grain, in items
constexpr int64_t kSumBlock = 4096;  // items per block of the final double sums
constexpr int kSumLanes = 8;         // interleaved accumulators of a block sum (a power of 2)
constexpr int kLanes = 4;            // independent sweep-1 states (the online LSE's add is a serial chain)
static_assert(kLanes == 4, "the sweep-1 merges below are written for 4 states");

template <typename acc_t>
struct SegIO {
  Params<acc_t> prm;
  const acc_t* z;         // [B, C]
  const acc_t* y;         // [B]
  const acc_t* w;         // [B], or nullptr (weight 1)
  const int64_t* seg_lo;  // [B]
  const int64_t* seg_hi;  // [B]
  int64_t b;
  acc_t* row_loss;        // [P, B]
  acc_t* row_den;         // [P, B]
  acc_t* grad;            // [P, B, C], or nullptr
};

// The runtime parameters with what the template fixes made constant, so that the kind's and the
// flags' branches in the header functions fold and the loops if-convert and vectorise.
template <typename acc_t, int kKind, int kFlags>
FL_ALWAYS_INLINE Params<acc_t> specialise(const Params<acc_t>& rt) {
  Params<acc_t> p = rt;
  p.kind = kKind;
  p.flags = kFlags;
  return p;
}

// One listwise session [lo, hi) (kinds kRank, kDistill; C = P = 1).
template <typename acc_t, int kKind, int kFlags, bool kGrad>
FL_ALWAYS_INLINE void listwise_session(const SegIO<acc_t>& io, int64_t lo, int64_t hi) {
  const Params<acc_t> prm = specialise<acc_t, kKind, kFlags>(io.prm);
  const acc_t* __restrict z = io.z;
  const acc_t* __restrict y = io.y;
  acc_t* __restrict loss = io.row_loss;
  acc_t* __restrict den = io.row_den;
  acc_t* __restrict grad = io.grad;
  // Sweep 1: kLanes interleaved states (item lo + k goes to state k % kLanes), merged in order.
  ListStats<acc_t> part[kLanes];
  for (int l = 0; l < kLanes; ++l) part[l] = list_stats_empty<acc_t>();
  int64_t i = lo;
  for (; i + kLanes <= hi; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) list_stats_add(part[l], z[i + l], y[i + l], prm);
  }
  for (int l = 0; i < hi; ++i, ++l) list_stats_add(part[l], z[i], y[i], prm);
  const ListStats<acc_t> st = list_stats_merge(list_stats_merge(part[0], part[1]), list_stats_merge(part[2], part[3]));
  const acc_t lse_s = lse_value(st.s);
  // Sweep 2: Q.
  acc_t q = acc_t(0);
  FL_SS_SIMD_SUM_Q
  for (int64_t k = lo; k < hi; ++k) q += list_target(y[k], st, prm);
  const acc_t q_sum = q;
  // Sweep 3.
  FL_SS_SIMD
  for (int64_t k = lo; k < hi; ++k) {
    acc_t g;
    loss[k] = list_item(z[k], y[k], st, lse_s, q_sum, prm, &g);
    den[k] = k == lo ? acc_t(1) : acc_t(0);
    if (kGrad) grad[k] = g;
  }
}

// One JRC session [lo, hi) (kinds kJrc, kJrcSplit; C = P = 2).
template <typename acc_t, int kKind, bool kHasW, bool kGrad>
FL_ALWAYS_INLINE void jrc_session(const SegIO<acc_t>& io, int64_t lo, int64_t hi) {
  const acc_t* __restrict z = io.z;
  const acc_t* __restrict y = io.y;
  const acc_t* __restrict w = io.w;
  const int64_t b = io.b;
  acc_t* __restrict loss = io.row_loss;
  acc_t* __restrict den = io.row_den;
  acc_t* __restrict grad = io.grad;
  // Sweep 1: kLanes interleaved states, merged in order.
  JrcStats<acc_t> part[kLanes];
  for (int l = 0; l < kLanes; ++l) part[l] = jrc_stats_empty<acc_t>();
  int64_t i = lo;
  for (; i + kLanes <= hi; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) {
      const int64_t k = i + l;
      jrc_stats_add(part[l], z[2 * k], z[2 * k + 1], y[k] == acc_t(1), kHasW ? w[k] : acc_t(1), kKind);
    }
  }
  for (int l = 0; i < hi; ++i, ++l) {
    jrc_stats_add(part[l], z[2 * i], z[2 * i + 1], y[i] == acc_t(1), kHasW ? w[i] : acc_t(1), kKind);
  }
  const JrcStats<acc_t> st = jrc_stats_merge(jrc_stats_merge(part[0], part[1]), jrc_stats_merge(part[2], part[3]));
  // -inf (not NaN) for an empty label set of kJrcSplit: -inf + log(0).
  const acc_t m0 = lse_value(st.a);
  const acc_t m1 = lse_value(st.b);
  // Sweep 2 (kJrcSplit): T0 over the label-0 items, T1 over the label-1 items.
  acc_t s0 = acc_t(0), s1 = acc_t(0);
  if (kKind == kJrcSplit) {
    FL_SS_SIMD_SUM_T
    for (int64_t k = lo; k < hi; ++k) {
      const bool pos = y[k] == acc_t(1);
      const acc_t share = jrc_split_share(z[2 * k], z[2 * k + 1], pos, kHasW ? w[k] : acc_t(1), m0, m1);
      s0 += pos ? acc_t(0) : share;
      s1 += pos ? share : acc_t(0);
    }
  }
  const acc_t t0 = s0, t1 = s1;
  // Sweep 3.
  FL_SS_SIMD
  for (int64_t k = lo; k < hi; ++k) {
    const acc_t z0 = z[2 * k], z1 = z[2 * k + 1];
    const bool pos = y[k] == acc_t(1);
    const acc_t wk = kHasW ? w[k] : acc_t(1);
    acc_t c0, c1, g0, g1;
    loss[k] = jrc_ce(z0, z1, pos, wk, &c0, &c1);
    den[k] = wk != acc_t(0) ? acc_t(1) : acc_t(0);
    loss[b + k] = jrc_ge_item(z0, z1, pos, wk, st, m0, m1, t0, t1, static_cast<int64_t>(kKind), &g0, &g1);
    den[b + k] = acc_t(1);
    if (kGrad) {
      grad[2 * k] = c0;
      grad[2 * k + 1] = c1;
      grad[2 * (b + k)] = g0;
      grad[2 * (b + k) + 1] = g1;
    }
  }
}

// The sessions led by items [p0, p1) (each run whole, wherever it ends).
template <typename acc_t, int kKind, int kFlags, bool kHasW, bool kGrad>
FL_ALWAYS_INLINE void sessions_body(const SegIO<acc_t>* io, int64_t p0, int64_t p1) {
  const int64_t* lo = io->seg_lo;
  const int64_t* hi = io->seg_hi;
  for (int64_t p = p0; p < p1; ++p) {
    if (lo[p] != p) continue;
    if constexpr (kKind >= kJrc) {
      jrc_session<acc_t, kKind, kHasW, kGrad>(*io, p, hi[p]);
    } else {
      listwise_session<acc_t, kKind, kFlags, kGrad>(*io, p, hi[p]);
    }
  }
}

template <typename acc_t>
using SessionsFn = void (*)(const SegIO<acc_t>*, int64_t, int64_t);

// sessions_body compiled for the x86-64 baseline, AVX2+FMA and AVX-512. flatten: the header
// functions must be inlined into the loops for them to vectorise (through libmvec).
template <typename acc_t, int kKind, int kFlags, bool kHasW, bool kGrad>
FL_SS_FLATTEN void sessions_base(const SegIO<acc_t>* io, int64_t p0, int64_t p1) {
  sessions_body<acc_t, kKind, kFlags, kHasW, kGrad>(io, p0, p1);
}

#if FL_CPU_MULTIVERSION
template <typename acc_t, int kKind, int kFlags, bool kHasW, bool kGrad>
FL_SS_FLATTEN FL_TARGET_AVX2 void sessions_avx2(const SegIO<acc_t>* io, int64_t p0, int64_t p1) {
  sessions_body<acc_t, kKind, kFlags, kHasW, kGrad>(io, p0, p1);
}

template <typename acc_t, int kKind, int kFlags, bool kHasW, bool kGrad>
FL_SS_FLATTEN FL_TARGET_AVX512 void sessions_avx512(const SegIO<acc_t>* io, int64_t p0, int64_t p1) {
  sessions_body<acc_t, kKind, kFlags, kHasW, kGrad>(io, p0, p1);
}
#endif

template <typename acc_t, int kKind, int kFlags, bool kHasW, bool kGrad>
SessionsFn<acc_t> pick_isa(Isa isa) {
#if FL_CPU_MULTIVERSION
  if (isa == Isa::kAvx512) return &sessions_avx512<acc_t, kKind, kFlags, kHasW, kGrad>;
  if (isa == Isa::kAvx2) return &sessions_avx2<acc_t, kKind, kFlags, kHasW, kGrad>;
#endif
  (void)isa;
  return &sessions_base<acc_t, kKind, kFlags, kHasW, kGrad>;
}

template <typename acc_t, int kKind, int kFlags, bool kHasW>
SessionsFn<acc_t> pick_grad(bool grad, Isa isa) {
  return grad ? pick_isa<acc_t, kKind, kFlags, kHasW, true>(isa) : pick_isa<acc_t, kKind, kFlags, kHasW, false>(isa);
}

// kRank: flags 0-3; kDistill: kLabelIsLogits does not matter (only kTargetsGiven); JRC: no flags,
// with or without weight.
template <typename acc_t>
SessionsFn<acc_t> pick_sessions(int64_t kind, int64_t flags, bool has_w, bool grad, Isa isa) {
  switch (kind) {
    case kRank:
      switch (flags) {
        case 0:
          return pick_grad<acc_t, kRank, 0, false>(grad, isa);
        case kLabelIsLogits:
          return pick_grad<acc_t, kRank, kLabelIsLogits, false>(grad, isa);
        case kTargetsGiven:
          return pick_grad<acc_t, kRank, kTargetsGiven, false>(grad, isa);
        default:
          return pick_grad<acc_t, kRank, kLabelIsLogits | kTargetsGiven, false>(grad, isa);
      }
    case kDistill:
      return (flags & kTargetsGiven) ? pick_grad<acc_t, kDistill, kTargetsGiven, false>(grad, isa)
                                     : pick_grad<acc_t, kDistill, 0, false>(grad, isa);
    case kJrc:
      return has_w ? pick_grad<acc_t, kJrc, 0, true>(grad, isa) : pick_grad<acc_t, kJrc, 0, false>(grad, isa);
    default:
      return has_w ? pick_grad<acc_t, kJrcSplit, 0, true>(grad, isa)
                   : pick_grad<acc_t, kJrcSplit, 0, false>(grad, isa);
  }
}

// Every item's range must contain it and lie in [0, B), and the ranges must partition [0, B) into
// consecutive sessions (each item's range is its predecessor's, or starts right after it).
void check_session_ranges(const at::Tensor& seg_lo, const at::Tensor& seg_hi) {
  const int64_t b = seg_lo.size(0);
  const int64_t* lo = seg_lo.data_ptr<int64_t>();
  const int64_t* hi = seg_hi.data_ptr<int64_t>();
  std::atomic<int64_t> first_bad{b};
  at::parallel_for(0, b, 16384, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      bool ok = lo[p] >= 0 && lo[p] <= p && p < hi[p] && hi[p] <= b;
      if (ok && p > 0) {
        ok = lo[p] == p ? hi[p - 1] == p : (lo[p] == lo[p - 1] && hi[p] == hi[p - 1]);
      }
      if (!ok) {
        int64_t cur = first_bad.load();
        while (p < cur && !first_bad.compare_exchange_weak(cur, p)) {
        }
        return;
      }
    }
  });
  const int64_t p = first_bad.load();
  if (p == b) return;
  TORCH_CHECK(p > 0, "seg_lo/seg_hi: item 0 has session range [", lo[0], ", ", hi[0],
              "), which must contain it and lie in [0, ", b, "]");
  TORCH_CHECK(false, "seg_lo/seg_hi: item ", p, " has session range [", lo[p], ", ", hi[p],
              "), which must contain it, lie in [0, ", b, "] and continue or follow item ", p - 1, "'s [",
              lo[p - 1], ", ", hi[p - 1], ") (the ranges must partition the items into consecutive sessions)");
}

// sum over each part's B items of rows [P, B], in double over fixed blocks, the blocks in order.
template <typename acc_t>
at::Tensor part_sums(const at::Tensor& rows) {
  const int64_t parts = rows.size(0), b = rows.size(1);
  const int64_t blocks = (b + kSumBlock - 1) / kSumBlock;
  std::vector<double> partial(static_cast<size_t>(parts * blocks), 0.0);
  const acc_t* r = rows.data_ptr<acc_t>();
  at::parallel_for(0, parts * blocks, 1, [&](int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; ++k) {
      const int64_t part = k / blocks, blk = k % blocks;
      const acc_t* x = r + part * b;
      const int64_t i1 = std::min(b, (blk + 1) * kSumBlock);
      // kSumLanes interleaved accumulators (a fixed order: the same sums on every ISA; the
      // vectoriser maps them onto vector lanes), combined pairwise.
      double acc[kSumLanes] = {};
      int64_t i = blk * kSumBlock;
      for (; i + kSumLanes <= i1; i += kSumLanes) {
        for (int l = 0; l < kSumLanes; ++l) acc[l] += static_cast<double>(x[i + l]);
      }
      for (int l = 0; i < i1; ++i, ++l) acc[l] += static_cast<double>(x[i]);
      for (int width = kSumLanes / 2; width > 0; width /= 2) {
        for (int l = 0; l < width; ++l) acc[l] += acc[l + width];
      }
      partial[static_cast<size_t>(k)] = acc[0];
    }
  });
  at::Tensor out = at::empty({parts}, rows.options());
  acc_t* o = out.data_ptr<acc_t>();
  for (int64_t part = 0; part < parts; ++part) {
    double s = 0.0;
    for (int64_t blk = 0; blk < blocks; ++blk) s += partial[static_cast<size_t>(part * blocks + blk)];
    o[part] = static_cast<acc_t>(s);
  }
  return out;
}

template <typename acc_t>
std::tuple<at::Tensor, at::Tensor> run(const at::Tensor& logits, const at::Tensor& labels, const at::Tensor& weight,
                                       const at::Tensor& seg_lo, const at::Tensor& seg_hi, int64_t kind,
                                       int64_t flags, double temperature, double clip_max, at::Tensor& grad) {
  const int64_t b = logits.size(0);
  const int64_t parts = num_parts(kind);
  at::Tensor row_loss = at::empty({parts, b}, logits.options());
  at::Tensor row_den = at::empty({parts, b}, logits.options());
  SegIO<acc_t> io;
  io.prm.kind = kind;
  io.prm.flags = flags;
  io.prm.temperature = static_cast<acc_t>(temperature);
  io.prm.clip_max = static_cast<acc_t>(clip_max);
  io.z = logits.data_ptr<acc_t>();
  io.y = labels.data_ptr<acc_t>();
  io.w = weight.defined() ? weight.data_ptr<acc_t>() : nullptr;
  io.b = b;
  io.row_loss = row_loss.data_ptr<acc_t>();
  io.row_den = row_den.data_ptr<acc_t>();
  io.grad = grad.numel() > 0 ? grad.data_ptr<acc_t>() : nullptr;
  io.seg_lo = seg_lo.data_ptr<int64_t>();
  io.seg_hi = seg_hi.data_ptr<int64_t>();
  const SessionsFn<acc_t> fn = pick_sessions<acc_t>(kind, flags, io.w != nullptr, io.grad != nullptr, cpu_isa());
  at::parallel_for(0, b, kGrain, [&](int64_t p0, int64_t p1) { fn(&io, p0, p1); });
  return {part_sums<acc_t>(row_loss), part_sums<acc_t>(row_den)};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> session_softmax_fwd_cpu(
    const at::Tensor& logits, const at::Tensor& labels, const std::optional<at::Tensor>& weight,
    const at::Tensor& seg_lo, const at::Tensor& seg_hi, int64_t kind, int64_t flags, double temperature,
    double clip_max, bool compute_grad) {
  CHECK_CPU(logits);
  const at::Tensor w =
      check_session_softmax_args(logits, labels, weight, seg_lo, seg_hi, kind, flags, temperature, clip_max);
  check_session_ranges(seg_lo, seg_hi);
  const int64_t parts = num_parts(kind);
  at::Tensor grad = compute_grad ? at::empty({parts, logits.size(0), logits.size(1)}, logits.options())
                                 : logits.new_empty({0});
  at::Tensor num, den;
  if (logits.scalar_type() == at::kDouble) {
    std::tie(num, den) = run<double>(logits, labels, w, seg_lo, seg_hi, kind, flags, temperature, clip_max, grad);
  } else {
    std::tie(num, den) = run<float>(logits, labels, w, seg_lo, seg_hi, kind, flags, temperature, clip_max, grad);
  }
  return {num, den, grad};
}

}  // namespace
}  // namespace session_softmax
}  // namespace fusedloss

TORCH_LIBRARY_IMPL(fusedloss, CPU, m) {
  m.impl("session_softmax_fwd", TORCH_FN(fusedloss::session_softmax::session_softmax_fwd_cpu));
}
