// CPU kernel of fusedloss::metric_fwd (schema: fusedloss/ops/_library.py; math and algorithm:
// metric_math.h, the same functions the CUDA kernels run). No [B, B] matrix: the cosines are
// computed tile by tile, twice (once for the row statistics, once for the gradient).
//
// The embeddings are copied once in acc_t (fp16/bf16 converted to float), zero-padded to Bp rows
// (a multiple of kRowPad) and Dp columns (a multiple of kColPad), row-major (E) and transposed by
// row tile (Et: [Bp / kTileJ, D, kTileJ], each tile's rows contiguous per column). Anchor blocks of
// kTileA rows run in parallel (at::parallel_for); each walks the row tiles of kTileJ rows:
//   pass 0: sum e_i^2 per row, inv_i and proj_i;
//   pass 1: the [kTileA, kTileJ] dots of the tile (a register-blocked outer-product kernel: MR
//           anchors broadcast against vectors of Et, no horizontal sums), then per anchor the two
//           online LSEs of its tile (one part each: the part's maximum, then the sum of its terms,
//           lse_part_max / lse_add_part), finally row_stats, row_loss and row_factor -> A, N, c;
//   pass 2 (gradient only): the same dots again (the same kernel, so the same bits: S_ij and S_ji
//           agree exactly), H_ij = pair_grad(i) + pair_grad(j) per pair, then sh_i += sum_j
//           H_ij inv_j e_j (an outer-product kernel over D) and hc_i += sum_j H_ij S_ij; grad_elem
//           over them at the end. Each row computes its own gradient: no atomics, and the result
//           does not depend on the thread count.
// Accuracy: dots are summed in acc_t over kSumBlock elements of D, the blocks in double; sh and hc
// are summed in acc_t over a row tile, the tiles in double; grad_elem runs in double. The per-row
// losses are summed in double in row order (fusedloss.ops.metric.finish).
//
// The loops are compiled for the x86-64 baseline, AVX2+FMA and AVX-512 and picked at run time
// (FUSEDLOSS_CPU_ISA=base|avx2 lowers it), with GCC vector extensions of that width.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/scalar_tensor.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <tuple>
#include <vector>

#include "../common/checks.h"
#include "../common/cpu_vector.h"
#include "metric_checks.h"
#include "metric_math.h"

#if defined(FUSEDLOSS_OPENMP_SIMD)
#define FL_METRIC_SIMD_MAX _Pragma("omp simd reduction(max : kp, kn)")
#define FL_METRIC_SIMD_SUM _Pragma("omp simd reduction(+ : tp, tn)")
#define FL_METRIC_SIMD_HC _Pragma("omp simd reduction(+ : hcs)")
#define FL_METRIC_SIMD _Pragma("omp simd")
#define FL_METRIC_SIMD_SS _Pragma("omp simd reduction(+ : s)")
#else
#define FL_METRIC_SIMD_SS
#define FL_METRIC_SIMD_MAX
#define FL_METRIC_SIMD_SUM
#define FL_METRIC_SIMD_HC
#define FL_METRIC_SIMD
#endif

namespace fusedloss {
namespace metric {
namespace {

constexpr int64_t kTileA = 32;      // anchors per parallel task
constexpr int64_t kTileJ = 64;      // rows per tile
constexpr int64_t kRowPad = 64;     // Bp: a multiple of every kernel's row width (and of kTileA)
constexpr int64_t kColPad = 32;     // Dp: a multiple of every kernel's column width
constexpr int64_t kSumBlock = 256;  // elements of D summed in acc_t before double
constexpr int64_t kWork = 1 << 16;  // at::parallel_for grain, in multiply-adds

static_assert(kRowPad % kTileJ == 0 && kRowPad % kTileA == 0, "Bp holds whole tiles");

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

template <typename acc_t>
struct Problem {
  Params<acc_t> prm;
  const acc_t* E;        // [Bp, Dp] row-major, zero-padded
  const acc_t* Et;       // [Bp / kTileJ, D, kTileJ]: Et[t, d, c] = E[t kTileJ + c, d]
  const int64_t* y;      // [Bp] labels (padding: 0)
  const int64_t* g;      // [Bp] sessions (zeros without sessions)
  acc_t* inv;            // [Bp] (padding: 0)
  uint8_t* proj;         // [Bp]
  acc_t* A;              // [Bp] row statistics (padding: 0, c = 0)
  acc_t* N;
  acc_t* C;
  acc_t* row_loss;       // [B]
  acc_t* grad;           // [B, D] or nullptr
  int64_t B, D, Bp, Dp;
};

// ---- Kernels over one tile (compiled once per ISA: VB vector bytes, MR anchors per micro-tile) ----

template <typename acc_t, int VB>
struct Vec {
  typedef acc_t type __attribute__((vector_size(VB)));
  static constexpr int kLanes = VB / static_cast<int>(sizeof(acc_t));
};

// Unaligned load (no vector by value across functions: -Wpsabi where the ISA lacks the width).
template <typename V, typename acc_t>
FL_ALWAYS_INLINE void vload(V* v, const acc_t* p) {
  std::memcpy(v, p, sizeof(V));
}

// pair_grad (metric_math.h) with its logit and slope given, as selects so that the loop vectorises
// (the same formula; the exponential is computed, then discarded where pair_grad returns 0).
template <typename acc_t>
FL_ALWAYS_INLINE acc_t pair_grad_sel(acc_t x, acc_t slope, bool pos, acc_t a, acc_t n, acc_t c) {
  const acc_t g = c * slope * exp(x - (pos ? a : n));
  return (slope == acc_t(0) || c == acc_t(0)) ? acc_t(0) : g;
}

template <typename acc_t, int VB, int MR>
struct Body {
  using V = typename Vec<acc_t, VB>::type;
  static constexpr int kLanes = Vec<acc_t, VB>::kLanes;
  static constexpr int kNV = 2;                   // vectors per micro-tile row
  static constexpr int kNR = kNV * kLanes;        // rows (dots) or columns (sh) per micro-tile
  static_assert(kRowPad % kNR == 0 && kTileJ % kNR == 0 && kColPad % kNR == 0, "tile widths");
  static_assert(kTileA % MR == 0, "anchor tile");

  // acc[r][v] = sum_{d in [k0, k1)} E[a0 + r, d] E[c0 + v kLanes + lane, d] for r < MR (c0 a multiple
  // of kNR: the micro-tile lies in one row tile).
  static FL_ALWAYS_INLINE void dot_block(const Problem<acc_t>& P, int64_t a0, int64_t c0, int64_t k0, int64_t k1,
                                         V (&acc)[MR][kNV]) {
    const int64_t Dp = P.Dp;
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 4
      for (int v = 0; v < kNV; ++v) acc[r][v] = V{};
    }
    const acc_t* ea = P.E + a0 * Dp;
    const acc_t* et = P.Et + (c0 / kTileJ) * P.D * kTileJ + c0 % kTileJ;
    for (int64_t d = k0; d < k1; ++d) {
      V b[kNV];
#pragma GCC unroll 4
      for (int v = 0; v < kNV; ++v) vload(&b[v], et + d * kTileJ + v * kLanes);
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r) {
        const acc_t x = ea[r * Dp + d];
#pragma GCC unroll 4
        for (int v = 0; v < kNV; ++v) acc[r][v] += x * b[v];  // scalar * vector: a broadcast
      }
    }
  }

  // st[r][c] = sum_d E[a0 + r, d] Et[d, j0 + c] for r < na (a multiple of MR), c < nj (a multiple of
  // kNR): acc_t over blocks of kSumBlock, double across (dt, used when D > kSumBlock; with one block
  // the value is the same). The order of the sums does not depend on which row is the anchor, so
  // S_ij and S_ji are the same bits.
  static FL_ALWAYS_INLINE void dots(const Problem<acc_t>& P, int64_t a0, int64_t na, int64_t j0, int64_t nj,
                                    double* dt, acc_t* st) {
    V acc[MR][kNV];
    if (P.D <= kSumBlock) {
      for (int64_t r0 = 0; r0 < na; r0 += MR) {
        for (int64_t c0 = 0; c0 < nj; c0 += kNR) {
          dot_block(P, a0 + r0, j0 + c0, 0, P.D, acc);
#pragma GCC unroll 16
          for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 4
            for (int v = 0; v < kNV; ++v) std::memcpy(st + (r0 + r) * kTileJ + c0 + v * kLanes, &acc[r][v], sizeof(V));
          }
        }
      }
      return;
    }
    std::fill(dt, dt + kTileA * kTileJ, 0.0);
    for (int64_t k0 = 0; k0 < P.D; k0 += kSumBlock) {
      const int64_t k1 = std::min(P.D, k0 + kSumBlock);
      for (int64_t r0 = 0; r0 < na; r0 += MR) {
        for (int64_t c0 = 0; c0 < nj; c0 += kNR) {
          dot_block(P, a0 + r0, j0 + c0, k0, k1, acc);
#pragma GCC unroll 16
          for (int r = 0; r < MR; ++r) {
            double* out = dt + (r0 + r) * kTileJ + c0;
#pragma GCC unroll 4
            for (int v = 0; v < kNV; ++v) {
#pragma GCC unroll 16
              for (int w = 0; w < kLanes; ++w) out[v * kLanes + w] += static_cast<double>(acc[r][v][w]);
            }
          }
        }
      }
    }
    for (int64_t r = 0; r < na; ++r) {
      FL_METRIC_SIMD
      for (int64_t c = 0; c < nj; ++c) st[r * kTileJ + c] = static_cast<acc_t>(dt[r * kTileJ + c]);
    }
  }

  // sh[r][d] += sum_{c < nj} hs[r][c] E[j0 + c, d] for r < na (a multiple of MR), d < Dp: acc_t
  // over the tile, double across tiles.
  static FL_ALWAYS_INLINE void gather(const Problem<acc_t>& P, int64_t na, int64_t j0, int64_t nj, const acc_t* hs,
                                      double* sh) {
    const int64_t Dp = P.Dp;
    for (int64_t d0 = 0; d0 < Dp; d0 += kNR) {
      for (int64_t r0 = 0; r0 < na; r0 += MR) {
        V acc[MR][kNV];
#pragma GCC unroll 16
        for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 4
          for (int v = 0; v < kNV; ++v) acc[r][v] = V{};
        }
        const acc_t* ej = P.E + j0 * Dp + d0;
        const acc_t* h = hs + r0 * kTileJ;
        for (int64_t c = 0; c < nj; ++c) {
          V b[kNV];
#pragma GCC unroll 4
          for (int v = 0; v < kNV; ++v) vload(&b[v], ej + c * Dp + v * kLanes);
#pragma GCC unroll 16
          for (int r = 0; r < MR; ++r) {
            const acc_t x = h[r * kTileJ + c];
#pragma GCC unroll 4
            for (int v = 0; v < kNV; ++v) acc[r][v] += x * b[v];
          }
        }
#pragma GCC unroll 16
        for (int r = 0; r < MR; ++r) {
          double* out = sh + (r0 + r) * Dp + d0;
#pragma GCC unroll 4
          for (int v = 0; v < kNV; ++v) {
#pragma GCC unroll 16
            for (int w = 0; w < kLanes; ++w) out[v * kLanes + w] += static_cast<double>(acc[r][v][w]);
          }
        }
      }
    }
  }

  // Anchor i's cosines with the rows j0 + c of the tile (sr: the dots) and their sets: pf = 1 for a
  // positive, -1 for a negative, 0 for j = i or a padding row. (Split from the math below: GCC
  // vectorises neither loop when the int64 compares and the float selects share one.)
  static FL_ALWAYS_INLINE void pairs(const Problem<acc_t>& P, int64_t i, int64_t j0, int64_t nj, const acc_t* sr,
                                     acc_t* sv, acc_t* pf) {
    const acc_t inv_i = P.inv[i];
    const int64_t yi = P.y[i], gi = P.g[i], B = P.B;
    const acc_t* inv = P.inv + j0;
    const int64_t* y = P.y + j0;
    const int64_t* g = P.g + j0;
    FL_METRIC_SIMD
    for (int64_t c = 0; c < nj; ++c) {
      sv[c] = (inv_i * inv[c]) * sr[c];
      const bool valid = j0 + c != i && j0 + c < B;
      pf[c] = valid ? ((y[c] == yi && g[c] == gi) ? acc_t(1) : acc_t(-1)) : acc_t(0);
    }
  }

  // Pass 1 over the anchor blocks [b0, b1).
  static FL_ALWAYS_INLINE void pass1(const Problem<acc_t>& P, int64_t b0, int64_t b1) {
    const Params<acc_t> prm = P.prm;
    std::vector<double> dt(kTileA * kTileJ);
    std::vector<acc_t> st(kTileA * kTileJ), sv(kTileJ), pf(kTileJ), xs(kTileJ), wp(kTileJ), wn(kTileJ);
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t a0 = blk * kTileA;
      const int64_t na_real = std::min(kTileA, P.B - a0);
      const int64_t na = round_up(na_real, MR);
      RowLse<acc_t> lse[kTileA];
      for (int64_t r = 0; r < na_real; ++r) lse[r] = row_lse_start<acc_t>();
      for (int64_t j0 = 0; j0 < P.B; j0 += kTileJ) {
        const int64_t nj = std::min(kTileJ, P.Bp - j0);
        dots(P, a0, na, j0, nj, dt.data(), st.data());
        for (int64_t r = 0; r < na_real; ++r) {
          pairs(P, a0 + r, j0, nj, st.data() + r * kTileJ, sv.data(), pf.data());
          // One part per set: its maximum, then the sum of its terms (online_lse.h).
          FL_METRIC_SIMD
          for (int64_t c = 0; c < nj; ++c) {
            xs[c] = pair_logit(sv[c], pf[c] > acc_t(0), prm);
            wp[c] = pf[c] > acc_t(0) ? acc_t(1) : acc_t(0);
            wn[c] = pf[c] < acc_t(0) ? acc_t(1) : acc_t(0);
          }
          acc_t kp = -INFINITY, kn = -INFINITY;
          FL_METRIC_SIMD_MAX
          for (int64_t c = 0; c < nj; ++c) {
            const acc_t keyp = lse_key(xs[c], wp[c]), keyn = lse_key(xs[c], wn[c]);
            kp = keyp > kp ? keyp : kp;
            kn = keyn > kn ? keyn : kn;
          }
          const acc_t mp = lse_part_max(lse[r].pos, kp);
          const acc_t mn = lse_part_max(lse[r].neg, kn);
          acc_t tp = 0, tn = 0;
          FL_METRIC_SIMD_SUM
          for (int64_t c = 0; c < nj; ++c) {
            tp += lse_term(xs[c], wp[c], mp);
            tn += lse_term(xs[c], wn[c], mn);
          }
          lse_add_part(lse[r].pos, mp, tp);
          lse_add_part(lse[r].neg, mn, tn);
        }
      }
      for (int64_t r = 0; r < na_real; ++r) {
        const int64_t i = a0 + r;
        acc_t a, n;
        row_stats(lse[r], prm, &a, &n);
        P.A[i] = a;
        P.N[i] = n;
        P.C[i] = row_factor(a, n, prm);
        P.row_loss[i] = row_loss(a, n, prm);
      }
    }
  }

  // Pass 2 over the anchor blocks [b0, b1).
  static FL_ALWAYS_INLINE void pass2(const Problem<acc_t>& P, int64_t b0, int64_t b1) {
    const Params<acc_t> prm = P.prm;
    const int64_t D = P.D, Dp = P.Dp;
    std::vector<double> dt(kTileA * kTileJ), sh(kTileA * Dp);
    std::vector<acc_t> st(kTileA * kTileJ), hs(kTileA * kTileJ, acc_t(0));
    std::vector<acc_t> sv(kTileJ), pf(kTileJ), xs(kTileJ), sl(kTileJ);
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t a0 = blk * kTileA;
      const int64_t na_real = std::min(kTileA, P.B - a0);
      const int64_t na = round_up(na_real, MR);
      double hc[kTileA] = {};
      std::fill(sh.begin(), sh.end(), 0.0);
      std::fill(hs.begin() + na_real * kTileJ, hs.begin() + na * kTileJ, acc_t(0));  // padding anchors
      for (int64_t j0 = 0; j0 < P.B; j0 += kTileJ) {
        const int64_t nj = std::min(kTileJ, P.Bp - j0);
        dots(P, a0, na, j0, nj, dt.data(), st.data());
        const acc_t* inv = P.inv + j0;
        const acc_t* A = P.A + j0;
        const acc_t* N = P.N + j0;
        const acc_t* C = P.C + j0;
        for (int64_t r = 0; r < na_real; ++r) {
          const int64_t i = a0 + r;
          pairs(P, i, j0, nj, st.data() + r * kTileJ, sv.data(), pf.data());
          FL_METRIC_SIMD
          for (int64_t c = 0; c < nj; ++c) {
            xs[c] = pair_logit(sv[c], pf[c] > acc_t(0), prm);
            sl[c] = pair_logit_slope(sv[c], pf[c] > acc_t(0), prm);
          }
          // H_ij = G_ij + G_ji (pair_grad of anchor i and of anchor j).
          const acc_t ai = P.A[i], ni = P.N[i], ci = P.C[i];
          acc_t* hr = hs.data() + r * kTileJ;
          acc_t hcs = 0;
          FL_METRIC_SIMD_HC
          for (int64_t c = 0; c < nj; ++c) {
            const bool pos = pf[c] > acc_t(0);
            const acc_t h = pair_grad_sel(xs[c], sl[c], pos, ai, ni, ci) + pair_grad_sel(xs[c], sl[c], pos, A[c], N[c], C[c]);
            const acc_t hv = pf[c] != acc_t(0) ? h : acc_t(0);
            hr[c] = hv * inv[c];
            hcs += hv * sv[c];
          }
          hc[r] += static_cast<double>(hcs);
        }
        gather(P, na, j0, nj, hs.data(), sh.data());
      }
      for (int64_t r = 0; r < na_real; ++r) {
        const int64_t i = a0 + r;
        const double inv_i = static_cast<double>(P.inv[i]);
        const bool proj = P.proj[i] != 0;
        const double* shr = sh.data() + r * Dp;
        const acc_t* ei = P.E + i * Dp;
        acc_t* gr = P.grad + i * D;
        FL_METRIC_SIMD
        for (int64_t d = 0; d < D; ++d) {
          gr[d] = static_cast<acc_t>(grad_elem(shr[d], static_cast<double>(ei[d]), hc[r], inv_i, proj));
        }
      }
    }
  }
};

template <typename acc_t>
struct PassFns {
  void (*pass1)(const Problem<acc_t>&, int64_t, int64_t);
  void (*pass2)(const Problem<acc_t>&, int64_t, int64_t);
};

#define FL_METRIC_VARIANT(ATTR, SUFFIX, VB, MR)                                        \
  template <typename acc_t>                                                            \
  ATTR void pass1_##SUFFIX(const Problem<acc_t>& P, int64_t b0, int64_t b1) {          \
    Body<acc_t, VB, MR>::pass1(P, b0, b1);                                             \
  }                                                                                    \
  template <typename acc_t>                                                            \
  ATTR void pass2_##SUFFIX(const Problem<acc_t>& P, int64_t b0, int64_t b1) {          \
    Body<acc_t, VB, MR>::pass2(P, b0, b1);                                             \
  }                                                                                    \
  template <typename acc_t>                                                            \
  PassFns<acc_t> fns_##SUFFIX() {                                                      \
    return {&pass1_##SUFFIX<acc_t>, &pass2_##SUFFIX<acc_t>};                           \
  }

// MR x 2 vector accumulators: 8 of the 16 registers of SSE2 / AVX2, 16 of AVX-512's 32.
FL_METRIC_VARIANT(, base, 16, 4)
#if FL_CPU_MULTIVERSION
FL_METRIC_VARIANT(FL_TARGET_AVX2, avx2, 32, 4)
FL_METRIC_VARIANT(FL_TARGET_AVX512, avx512, 64, 8)
#endif
#undef FL_METRIC_VARIANT

template <typename acc_t>
PassFns<acc_t> pick_fns(Isa isa) {
#if FL_CPU_MULTIVERSION
  if (isa == Isa::kAvx512) return fns_avx512<acc_t>();
  if (isa == Isa::kAvx2) return fns_avx2<acc_t>();
#endif
  (void)isa;
  return fns_base<acc_t>();
}

// Pass 0: sum e_i^2 (acc_t over blocks of kSumBlock, double across), inv_i and proj_i.
template <typename acc_t>
void norms(const Problem<acc_t>& P) {
  const int64_t D = P.D, Dp = P.Dp;
  const bool normalize = P.prm.normalize;
  at::parallel_for(0, P.B, std::max<int64_t>(1, kWork / std::max<int64_t>(D, 1)), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const acc_t* e = P.E + i * Dp;
      double total = 0;
      for (int64_t k0 = 0; k0 < D; k0 += kSumBlock) {
        const int64_t k1 = std::min(D, k0 + kSumBlock);
        acc_t s = 0;
        FL_METRIC_SIMD_SS
        for (int64_t k = k0; k < k1; ++k) s += e[k] * e[k];
        total += static_cast<double>(s);
      }
      const acc_t ss = static_cast<acc_t>(total);
      P.inv[i] = inv_norm(ss, normalize);
      P.proj[i] = projects(ss, normalize) ? 1 : 0;
    }
  });
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> metric_fwd_cpu(const at::Tensor& emb, const at::Tensor& labels,
                                                              const std::optional<at::Tensor>& sessions,
                                                              int64_t kind, bool normalize, double p0, double p1,
                                                              double p2, bool compute_grad) {
  CHECK_CPU(emb);
  const at::Tensor g = check_metric_args(emb, labels, sessions, kind, p0, p1, p2);
  const at::ScalarType dtype = emb.scalar_type();
  const at::ScalarType acc = opmath_dtype(dtype);
  const at::TensorOptions acc_opts = emb.options().dtype(acc);
  const int64_t B = emb.size(0), D = emb.size(1);
  const at::Tensor scale = at::scalar_tensor(B > 0 ? 1.0 / static_cast<double>(B) : NAN, acc_opts);
  if (B == 0) {
    return {at::scalar_tensor(NAN, emb.options()), compute_grad ? emb.new_empty({0, D}) : emb.new_empty({0}),
            scale};
  }
  const int64_t Bp = round_up(B, kRowPad), Dp = round_up(D, kColPad);
  const at::Tensor E = at::zeros({Bp, Dp}, acc_opts);
  E.narrow(0, 0, B).narrow(1, 0, D).copy_(emb);
  const at::Tensor Et = E.narrow(1, 0, D).reshape({Bp / kTileJ, kTileJ, D}).permute({0, 2, 1}).contiguous();
  std::vector<int64_t> y(static_cast<size_t>(Bp), 0), gs(static_cast<size_t>(Bp), 0);
  {
    const at::Tensor lc = labels.contiguous();
    std::copy(lc.data_ptr<int64_t>(), lc.data_ptr<int64_t>() + B, y.begin());
    if (g.defined()) std::copy(g.data_ptr<int64_t>(), g.data_ptr<int64_t>() + B, gs.begin());
  }
  std::vector<uint8_t> proj(static_cast<size_t>(Bp), 0);
  at::Tensor grad = compute_grad ? at::empty({B, D}, acc_opts) : emb.new_empty({0});
  const at::Tensor row_loss = at::empty({B}, acc_opts);

  AT_DISPATCH_FLOATING_TYPES(acc, "metric_fwd_cpu", [&] {
    std::vector<scalar_t> inv(static_cast<size_t>(Bp), scalar_t(0)), stats(static_cast<size_t>(3 * Bp), scalar_t(0));
    Problem<scalar_t> P;
    P.prm.kind = kind;
    P.prm.p0 = static_cast<scalar_t>(p0);
    P.prm.p1 = static_cast<scalar_t>(p1);
    P.prm.p2 = static_cast<scalar_t>(p2);
    P.prm.normalize = normalize;
    P.E = E.data_ptr<scalar_t>();
    P.Et = Et.data_ptr<scalar_t>();
    P.y = y.data();
    P.g = gs.data();
    P.inv = inv.data();
    P.proj = proj.data();
    P.A = stats.data();
    P.N = P.A + Bp;
    P.C = P.N + Bp;
    P.row_loss = row_loss.data_ptr<scalar_t>();
    P.grad = compute_grad ? grad.data_ptr<scalar_t>() : nullptr;
    P.B = B;
    P.D = D;
    P.Bp = Bp;
    P.Dp = Dp;
    const PassFns<scalar_t> fns = pick_fns<scalar_t>(cpu_isa());
    norms(P);
    const int64_t blocks = (B + kTileA - 1) / kTileA;
    const int64_t grain = std::max<int64_t>(1, kWork / std::max<int64_t>(kTileA * Bp * std::max<int64_t>(D, 1), 1));
    at::parallel_for(0, blocks, grain, [&](int64_t b0, int64_t b1) { fns.pass1(P, b0, b1); });
    if (compute_grad) at::parallel_for(0, blocks, grain, [&](int64_t b0, int64_t b1) { fns.pass2(P, b0, b1); });
  });
  if (compute_grad && acc != dtype) grad = grad.to(dtype);

  // fusedloss.ops.metric.finish: the row losses summed in double, in row order, times scale.
  double total = 0.0;
  AT_DISPATCH_FLOATING_TYPES(acc, "metric_fwd_cpu_sum", [&] {
    const scalar_t* rl = row_loss.data_ptr<scalar_t>();
    for (int64_t i = 0; i < B; ++i) total += static_cast<double>(rl[i]);
  });
  const double sc = acc == at::kDouble ? 1.0 / static_cast<double>(B)
                                       : static_cast<double>(static_cast<float>(1.0 / static_cast<double>(B)));
  return {at::scalar_tensor(total * sc, emb.options()), grad, scale};
}

}  // namespace
}  // namespace metric
}  // namespace fusedloss

TORCH_LIBRARY_IMPL(fusedloss, CPU, m) {
  m.impl("metric_fwd", TORCH_FN(fusedloss::metric::metric_fwd_cpu));
}
