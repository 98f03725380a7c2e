// Per-element math of the binary sigmoid family (BCE-with-logits, torchvision sigmoid focal,
// EasyRec BINARY_FOCAL_LOSS). One definition, compiled by g++ for the `cpu` backend and by nvcc for
// the `cuda` backend; the Triton kernel in fusedloss/triton_kernels/focal.py mirrors it line by line.
//
// For a logit x, target t (any real, soft labels allowed), sample weight w and pos_weight pw:
//   p  = sigmoid(x), pm = sigmoid(-x) = 1 - p                      (both stable, from e = exp(-|x|))
//   z  = t (1 - eps) + eps / 2         if eps > 0 else t             (label smoothing, CE target only)
//   ce = max(x, 0) - x z + log1p(e)                                  (pw == 1)
//      = (1 - z) x + (1 + (pw - 1) z) softplus(-x)                   (pos_weight, torch semantics)
//   q  = 1 - p_t = p (1 - t) + pm t                                  (raw t; EasyRec clips p to
//                                                                     [1e-7, 1 - 1e-7] here only)
//   m  = q^gamma                        (1 for BCE)
//   a  = alpha t + (1 - alpha)(1 - t)   if alpha >= 0 else 1
//   v  = w a m                          (the SBNZ weight: its nonzero count is EasyRec's denominator)
//   loss = v ce
//   d loss / dx = w a (dm/dx ce + m dce/dx),  dm/dx = gamma q^(gamma-1) (1 - 2t) p pm
//                 (0 where EasyRec's clip is active), dce/dx = p - z  or  (1 - z) - lw pm.
// Transcendentals per element: one exp, one log1p, and for gamma not in {0, 1, 2} one log + two exps.
#pragma once

#include "../common/host_device.h"

// Host compilers must inline these into the CPU kernel's loop, or it stays scalar. FL_HD is only
// `inline` on the host, and g++ 12 -O3 -DNDEBUG let IPA-CP clone binary_focal_elem and call the clone
// from 6 of the 108 loops of focal_cpu.cpp (5x slower). (On the device FL_HD already force-inlines.)
#if !defined(__CUDACC__) && !defined(__HIPCC__) && defined(__GNUC__)
#define FL_FOCAL_FORCEINLINE __attribute__((always_inline))
#else
#define FL_FOCAL_FORCEINLINE
#endif

namespace fusedloss {
namespace focal {

enum Mode : int64_t { kBCE = 0, kTorchvision = 1, kEasyRec = 2 };
enum Reduction : int64_t { kNone = 0, kSum = 1, kMean = 2, kSBNZ = 3 };

template <typename acc_t>
struct Params {
  int64_t mode;
  acc_t alpha;   // < 0: no alpha factor
  acc_t gamma;   // >= 0
  acc_t smoothing;
};

template <typename acc_t>
struct ElemOut {
  acc_t loss;   // v * ce
  acc_t grad;   // d loss / dx
  acc_t v;      // w * a * m
};

template <typename acc_t>
FL_HD FL_FOCAL_FORCEINLINE acc_t clip_prob(acc_t p) {
  const acc_t lo = acc_t(1e-7), hi = acc_t(1) - acc_t(1e-7);
  return p < lo ? lo : (p > hi ? hi : p);
}

// What the caller knows about gamma at compile time. kGammaAny (the default) branches on the runtime
// value, which is what the CUDA kernel wants (the branch is uniform). A caller that has already
// dispatched on gamma passes the kind, so the body has no branch left: the CPU kernel needs that to
// if-convert and vectorise its loop (focal_cpu.cpp). Every kind computes the same values.
enum GammaKind : int { kGammaAny = 0, kGammaZero = 1, kGammaOne = 2, kGammaTwo = 3, kGammaGeneral = 4 };

// q^gamma and gamma q^(gamma-1), with the q == 0 limits (the caller multiplies the second by
// dq/dx, which is 0 whenever q is 0 for targets in [0, 1]).
template <typename acc_t, int kGamma = kGammaAny>
FL_HD FL_FOCAL_FORCEINLINE void modulating_pow(acc_t q, acc_t gamma, acc_t* m, acc_t* dm_dq) {
  if (kGamma == kGammaTwo || (kGamma == kGammaAny && gamma == acc_t(2))) {
    *m = q * q;
    *dm_dq = acc_t(2) * q;
  } else if (kGamma == kGammaOne || (kGamma == kGammaAny && gamma == acc_t(1))) {
    *m = q;
    *dm_dq = acc_t(1);
  } else if (kGamma == kGammaZero || (kGamma == kGammaAny && gamma == acc_t(0))) {
    // q^0 = 1 for every q (torch: 0^0 = 1). Not left to the general form, whose 0 * q^-1 is
    // 0 * inf = NaN once q < ~1e-38 (fp32: logits below about -88).
    *m = acc_t(1);
    *dm_dq = acc_t(0);
  } else {
    // Both exps are computed and then selected, so there is no data-dependent branch.
    const bool pos = q > acc_t(0);
    const acc_t lq = log(pos ? q : acc_t(1));
    const acc_t mg = exp(gamma * lq);
    const acc_t dg = gamma * exp((gamma - acc_t(1)) * lq);
    *m = pos ? mg : acc_t(0);
    *dm_dq = pos ? dg : acc_t(0);
  }
}

template <typename acc_t, int kGamma = kGammaAny>
FL_HD FL_FOCAL_FORCEINLINE ElemOut<acc_t> binary_focal_elem(acc_t x, acc_t t, acc_t w, acc_t pw,
                                                            bool has_pos_weight, const Params<acc_t>& prm) {
  const acc_t e = exp(-fabs(x));
  const acc_t inv = acc_t(1) / (acc_t(1) + e);
  const acc_t p = x >= acc_t(0) ? inv : e * inv;
  const acc_t pm = x >= acc_t(0) ? e * inv : inv;
  const acc_t z = prm.smoothing > acc_t(0)
                      ? t * (acc_t(1) - prm.smoothing) + acc_t(0.5) * prm.smoothing
                      : t;
  const acc_t l1p = log1p(e);
  acc_t ce, dce;
  if (has_pos_weight) {
    const acc_t lw = acc_t(1) + (pw - acc_t(1)) * z;
    const acc_t sp_neg = l1p + (x < acc_t(0) ? -x : acc_t(0));  // softplus(-x)
    ce = (acc_t(1) - z) * x + lw * sp_neg;
    dce = (acc_t(1) - z) - lw * pm;
  } else {
    ce = (x > acc_t(0) ? x : acc_t(0)) - x * z + l1p;
    dce = p - z;
  }

  acc_t m = acc_t(1), dm = acc_t(0);
  if (prm.mode != kBCE) {
    acc_t pq = p, pmq = pm, dq_gate = acc_t(1);
    if (prm.mode == kEasyRec) {
      pq = clip_prob(p);
      pmq = clip_prob(pm);
      dq_gate = (p > acc_t(1e-7) && p < acc_t(1) - acc_t(1e-7)) ? acc_t(1) : acc_t(0);
    }
    const acc_t q = pq * (acc_t(1) - t) + pmq * t;
    const acc_t dq = dq_gate * (acc_t(1) - acc_t(2) * t) * p * pm;
    acc_t dm_dq;
    modulating_pow<acc_t, kGamma>(q, prm.gamma, &m, &dm_dq);
    dm = dm_dq * dq;
  }
  const acc_t a = prm.alpha >= acc_t(0) ? prm.alpha * t + (acc_t(1) - prm.alpha) * (acc_t(1) - t)
                                        : acc_t(1);
  ElemOut<acc_t> out;
  out.v = w * a * m;
  out.loss = out.v * ce;
  out.grad = w * a * (dm * ce + m * dce);
  return out;
}

}  // namespace focal
}  // namespace fusedloss
