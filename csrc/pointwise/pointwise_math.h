// Per-element math of the pointwise family: regression losses and EasyRec's pointwise losses that
// are neither sigmoid cross-entropy nor focal (those are csrc/focal). Shared by the cpu backend
// (g++) and the cuda backend (nvcc); fusedloss/triton_kernels/pointwise.py mirrors it.
//
// For a prediction x, target y and the kind's parameter a, with d = x - y:
//   kL1            |d|                                        sign(d)            (torch l1_loss)
//   kMSE           d^2                                        2 d                (mse_loss, L2_LOSS)
//   kHuber         |d| <= a: d^2 / 2, else a (|d| - a / 2)     d or a sign(d)     (huber_loss, delta a > 0)
//   kSmoothL1      |d| < a: d^2 / (2 a), else |d| - a / 2      d / a or sign(d)   (smooth_l1_loss, beta a;
//                                                                                 a = 0 is kL1)
//   kLogCosh       log cosh d (stable form below)             tanh(d)            (Keras log_cosh)
//   kMAPE          100 |d| / max(|y|, a)                      100 sign(d) / max(|y|, a)  (Keras, a = 1e-7)
//   kHinge         max(1 - y x, 0)                            -y [1 - y x >= 0]  (y in {-1, 1})
//   kSquaredHinge  max(1 - y x, 0)^2                          -2 y max(1 - y x, 0)
//   kExponential   e^{-y x}                                   -y e^{-y x}
//   kSigmoidMSE    (s - y)^2, s = sigmoid(x)                  2 (s - y) s (1 - s) (SIGMOID_L2_LOSS)
//   kLogLoss       -y log(x + a) - (1 - y) log(1 - x + a)     -y / (x + a) + (1 - y) / (1 - x + a)
//                  (x a probability; a = epsilon, 1e-7 in TF's log_loss: EasyRec CROSS_ENTROPY_LOSS)
//   kKLDiv         y (log y - x), 0 where y = 0               -y                 (kl_div, x = log q)
//   kKLDivLogTarget e^y (y - x)                               -e^y               (kl_div, log_target)
// sign(0) = 0 (torch's subgradient). The element's loss is then scaled by its weight w: the kernel
// reports w loss, w grad, and [w != 0] for SUM_BY_NONZERO_WEIGHTS.
#pragma once

#include <cmath>

#include "../common/host_device.h"

#if !defined(__CUDACC__) && !defined(__HIPCC__) && defined(__GNUC__)
#define FL_PW_FORCEINLINE __attribute__((always_inline))
#else
#define FL_PW_FORCEINLINE
#endif

namespace fusedloss {
namespace pointwise {

enum Kind : int64_t {
  kL1 = 0,
  kMSE = 1,
  kHuber = 2,
  kSmoothL1 = 3,
  kLogCosh = 4,
  kMAPE = 5,
  kHinge = 6,
  kSquaredHinge = 7,
  kExponential = 8,
  kSigmoidMSE = 9,
  kLogLoss = 10,
  kKLDiv = 11,
  kKLDivLogTarget = 12,
  kNumKinds = 13,
};
enum Reduction : int64_t { kNone = 0, kSum = 1, kMean = 2, kSBNZ = 3 };

template <typename acc_t>
struct ElemOut {
  acc_t loss;
  acc_t grad;  // d loss / dx
};

template <typename acc_t>
FL_HD FL_PW_FORCEINLINE acc_t sign_of(acc_t v) {
  return v > acc_t(0) ? acc_t(1) : (v < acc_t(0) ? acc_t(-1) : acc_t(0));
}

// kKind: a Kind when the caller dispatched on it at compile time (the cpu loops, to vectorise), or
// -1 to branch on `kind` at run time (uniform per launch on the GPU).
template <typename acc_t, int kKind = -1>
FL_HD FL_PW_FORCEINLINE ElemOut<acc_t> pointwise_elem(int64_t kind, acc_t x, acc_t y, acc_t a) {
  const int64_t k = kKind >= 0 ? kKind : kind;
  const acc_t d = x - y;
  const acc_t ad = fabs(d);
  ElemOut<acc_t> o;
  switch (k) {
    case kL1:
      o.loss = ad;
      o.grad = sign_of(d);
      break;
    case kMSE:
      o.loss = d * d;
      o.grad = acc_t(2) * d;
      break;
    case kHuber: {
      const bool quad = ad <= a;
      o.loss = quad ? acc_t(0.5) * d * d : a * (ad - acc_t(0.5) * a);
      o.grad = quad ? d : a * sign_of(d);
      break;
    }
    case kSmoothL1: {
      const bool quad = ad < a;  // never for a = 0: L1
      const acc_t inv = quad ? acc_t(1) / a : acc_t(0);
      o.loss = quad ? acc_t(0.5) * d * d * inv : ad - acc_t(0.5) * a;
      o.grad = quad ? d * inv : sign_of(d);
      break;
    }
    case kLogCosh: {
      // With v = e^{-|d|} - 1 and e = e^{-|d|}: cosh d - 1 = v^2 / (2 e), so for |d| < 1
      // log cosh d = log1p(v^2 / (2 e)), free of the cancellation of |d| - log 2 + log1p(e^2) (which
      // returns 0 for |d| = 1e-4 in fp32); that form, overflow-free, for |d| >= 1. One log1p either
      // way. tanh|d| = (1 - e^2) / (1 + e^2) = -v (2 + v) / (1 + e^2).
      const acc_t v = expm1(-ad);
      const acc_t e = acc_t(1) + v;
      const bool near = ad < acc_t(1);
      const acc_t z = near ? v * v / (acc_t(2) * e) : e * e;
      o.loss = log1p(z) + (near ? acc_t(0) : ad - acc_t(0.69314718055994530942));
      o.grad = sign_of(d) * (-v * (acc_t(2) + v) / (acc_t(1) + e * e));
      break;
    }
    case kMAPE: {
      const acc_t ay = fabs(y);
      const acc_t inv = acc_t(100) / (ay > a ? ay : a);
      o.loss = ad * inv;
      o.grad = sign_of(d) * inv;
      break;
    }
    case kHinge: {
      const acc_t m = acc_t(1) - y * x;
      o.loss = m > acc_t(0) ? m : acc_t(0);
      o.grad = m >= acc_t(0) ? -y : acc_t(0);  // -y at m = 0: torch's clamp and TF's maximum
      break;
    }
    case kSquaredHinge: {
      const acc_t m = acc_t(1) - y * x;
      const acc_t h = m > acc_t(0) ? m : acc_t(0);
      o.loss = h * h;
      o.grad = acc_t(-2) * y * h;
      break;
    }
    case kExponential: {
      const acc_t e = exp(-y * x);
      o.loss = e;
      o.grad = -y * e;
      break;
    }
    case kSigmoidMSE: {
      const acc_t e = exp(-fabs(x));
      const acc_t inv = acc_t(1) / (acc_t(1) + e);
      const acc_t s = x >= acc_t(0) ? inv : e * inv;
      const acc_t sm = x >= acc_t(0) ? e * inv : inv;  // 1 - s, without cancellation
      const acc_t r = s - y;
      o.loss = r * r;
      o.grad = acc_t(2) * r * s * sm;
      break;
    }
    case kLogLoss: {
      const acc_t p = x + a, q = acc_t(1) - x + a;
      o.loss = -y * log(p) - (acc_t(1) - y) * log(q);
      o.grad = -y / p + (acc_t(1) - y) / q;
      break;
    }
    case kKLDiv:
      o.loss = y == acc_t(0) ? acc_t(0) : y * (log(y) - x);  // torch's xlogy: 0 log 0 = 0
      o.grad = -y;
      break;
    default: {  // kKLDivLogTarget
      const acc_t e = exp(y);
      o.loss = e * (y - x);
      o.grad = -e;
      break;
    }
  }
  return o;
}

}  // namespace pointwise
}  // namespace fusedloss
