// Lean float32 math of one SBNZ softplus pair (PAIR_WISE, PAIRWISE_LOGISTIC; spec 3.1, 3.2) in base
// 2. The cpu backend's SBNZ loop (pairwise_cpu.cpp, eval_body with kKindLean) and the CUDA lean kernel
// (pairwise_sbnz_cuda.cu) run these functions; fusedloss/triton_kernels/pairwise_sbnz.py mirrors them.
// OHEM and the other kinds keep pair_eval (pairwise_math.h): their histogram passes need one
// evaluation in every pass, and these functions serve SBNZ only.
//
// Row p against column q, a = s log2(e) / T per item, yt the transformed labels (transform_label):
//   sgn = [yt_q > yt_p] - [yt_p > yt_q]: -1 where p is the higher item i, +1 where q is, 0 no pair
//   u2  = -sgn (a_p - a_q) - mu log2(e) = (s_i - s_j) log2(e) / T - mu log2(e)   (0 without a pair)
//   e   = 2^-|u2|,  L = log2(1 + e) = e P(e)   (P: degree-8 relative minimax on [0, 1], FMAs only)
//   sp2 = max(-u2, 0) + L = softplus(-u) / ln 2
//   sig = 2^-(max(u2, 0) + L) = exp(-softplus(u)) = sigmoid(-u)   (no division, no cancellation),
//         or (u2 > 0 ? e : 1) / (1 + e), the same value (kSigExp2 below)
// Then loss = ln 2 w_i sp2 and d loss / d s_p = sgn w_i sig / T = -d loss / d s_q. mu: kLeanShiftConst
// a constant (margin, hinge_margin), kLeanShiftLabel (yt_i - yt_j) (use_label_margin).
// Accuracy: P is within 3.3 ulp in float32, ex2.approx (device) within 2 ulp, exp2f (host) within 1:
// a pair's loss and gradient stay within ~1e-6 relative of float64.
#pragma once

#include "../common/host_device.h"
#include "pairwise_math.h"

namespace fusedloss {
namespace pairwise {

enum LeanShift : int { kLeanShiftNone = 0, kLeanShiftConst = 1, kLeanShiftLabel = 2 };

constexpr double kLeanLog2e = 1.4426950408889634;
constexpr double kLeanLn2 = 0.6931471805599453;

// 2^x: the MUFU instruction on the device (flush-to-zero, as Triton's tl.exp2), libm on the host.
FL_HD float lean_exp2(float x) {
#if defined(__CUDA_ARCH__)
  float r;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(x));
  return r;
#else
  return exp2f(x);
#endif
}

// log2(1 + e) for e in [0, 1]: e P(e), Horner (float32 coefficients, exact as written).
FL_HD float lean_log2_1p_unit(float e) {
  float p = e * 0.007549182511866093f - 0.04256706312298775f;
  p = p * e + 0.1128561943769455f;
  p = p * e - 0.19711896777153015f;
  p = p * e + 0.27564141154289246f;
  p = p * e - 0.35840848088264465f;
  p = p * e + 0.48069295287132263f;
  p = p * e - 0.7213401794433594f;
  p = p * e + 1.4426950216293335f;
  return e * p;
}

struct LeanPair {
  float sgn;  // -1: p is the higher item, +1: q is, 0: no pair
  float sp2;  // softplus(-u) / ln 2 (1 without a pair: u2 = 0)
  float sig;  // sigmoid(-u)
};

// One pair. in_session: q may pair with p at all (same session, q after p); kGuard: without a pair,
// u2 is -0 * 0 rather than -0 (a_p - a_q), which an inf or NaN score would make NaN (0 * inf); callers
// that know every score of the pair finite may drop it. shift2: mu log2(e) for kLeanShiftConst;
// yl_p, yl_q: yt log2(e) for kLeanShiftLabel (else unused). kSigExp2: sigmoid(-u) as the second
// exp2 (the GPU's choice: MUFU has room, a division costs ~8 instructions), else as
// (u2 > 0 ? e : 1) / (1 + e) (the CPU's: a vector division is cheaper than a second libmvec call);
// the C++ tests check both forms.
template <int kShift, bool kGuard, bool kSigExp2>
FL_HD LeanPair lean_pair(bool in_session, float a_p, float yt_p, float yl_p, float a_q, float yt_q, float yl_q,
                         float shift2) {
  // Bools and selects in this form: GCC 12 vectorises the cpu loop with one exp2 per lane (a float
  // sgn from two compares, then tested for the guard, made it evaluate exp2 and P twice, and
  // returning the bools in LeanPair kept it scalar).
  LeanPair out;
  const bool q_higher = yt_q > yt_p, p_higher = yt_p > yt_q;
  const bool pair = in_session && (q_higher || p_higher);
  out.sgn = pair ? (q_higher ? 1.0f : -1.0f) : 0.0f;
  const float d = (!kGuard || pair) ? a_p - a_q : 0.0f;
  float u2 = -out.sgn * d;
  if (kShift == kLeanShiftConst) u2 = u2 - shift2;
  if (kShift == kLeanShiftLabel) u2 = u2 - fabsf(yl_p - yl_q);
  const float e = lean_exp2(-fabsf(u2));
  const float l = lean_log2_1p_unit(e);
  // max(x, 0) as selects, which g++ vectorises without -ffast-math (fmaxf's NaN rule stops it);
  // a NaN u2 still gives NaN through l.
  out.sp2 = (u2 < 0.0f ? -u2 : 0.0f) + l;
  if (kSigExp2) {
    out.sig = lean_exp2(-((u2 > 0.0f ? u2 : 0.0f) + l));
  } else {
    out.sig = (u2 > 0.0f ? e : 1.0f) / (1.0f + e);
  }
  return out;
}

// The LeanShift of a PAIR_WISE / PAIRWISE_LOGISTIC call (kind, flags: pairwise_math.h) and its
// constant mu: PAIR_WISE shifts by margin, LOGISTIC by (yt_i - yt_j) with use_label_margin (which
// overrides hinge_margin), else by hinge_margin when it has one.
inline int lean_shift(int64_t kind, int64_t flags, double margin, double hinge_margin, double* mu) {
  *mu = 0.0;
  if (kind == kPairWise) {
    *mu = margin;
    return margin != 0.0 ? kLeanShiftConst : kLeanShiftNone;
  }
  if (flags & kUseLabelMargin) return kLeanShiftLabel;
  if (flags & kHasHingeMargin) {
    *mu = hinge_margin;
    return kLeanShiftConst;
  }
  return kLeanShiftNone;
}

}  // namespace pairwise
}  // namespace fusedloss
