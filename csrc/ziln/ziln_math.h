// Per-row math of EasyRec's ZILN_LOSS (zero-inflated lognormal, spec 7.1), shared by the cpu
// backend (g++) and the cuda backend (nvcc); fusedloss/triton_kernels/ziln.py mirrors it.
//
// A row holds logits (l_p, mu, l_s) and a label y. With z = [y > 0]:
//   cls  = max(l_p, 0) - l_p z + log1p(exp(-|l_p|))           (BCE with logits, target z)
//   sigma = clip(softplus(l_s), sigma_min, max_sigma)          (sigma_min = sqrt(1e-7))
//   reg  = -z logLogNormal(y; mu, sigma)
//        = z (log y + log sigma + log(2 pi) / 2 + t^2 / 2),   t = (log y - mu) / sigma
//          (rows with z = 0 are evaluated at the safe label 1 and masked, as EasyRec does; a NaN
//          label makes reg and the row's mu, l_s derivatives NaN, as EasyRec's 0 x NaN does)
// The loss over B rows, P = #{z = 1}:
//   L = cw sum(cls) / B + rw sum(reg) / (P + 1e-8) + mu_reg sum(mu^2) / B + sigma_reg sum(l_s^2) / B
// (the sigma penalty is on the raw l_s). Gradients of the row's terms:
//   d cls / d l_p = sigmoid(l_p) - z
//   d reg / d mu  = -z t / sigma
//   d reg / d l_s = z (1 - t^2) / sigma * d sigma / d l_s,  d sigma / d l_s = sigmoid(l_s) where
//                   sigma_min <= softplus(l_s) <= max_sigma (TF's clip_by_value gradient), else 0
// row_grad combines them with the loss's coefficients into d L / d (l_p, mu, l_s).
#pragma once

#include <cmath>

#include "../common/host_device.h"
#include "../common/logistic.h"

namespace fusedloss {
namespace ziln {

#if !defined(__CUDACC__)
using std::sqrt;  // sqrt(float) in float on the host too (as rowwise_math.h)
#endif

// The loss's coefficients; inv_b = 1 / B and inv_pos = 1 / (P + 1e-8) are per call.
template <typename acc_t>
struct Params {
  acc_t max_sigma;
  acc_t sigma_min;  // sqrt(1e-7) in acc_t (TF: sqrt(keras epsilon))
  acc_t class_weight;
  acc_t reg_weight;
  acc_t mu_reg;
  acc_t sigma_reg;
};

template <typename acc_t>
FL_HD acc_t sigma_min_default() {
  return sqrt(acc_t(1e-7));
}

// The four terms of one row and the derivatives of its cls and reg terms.
template <typename acc_t>
struct RowOut {
  acc_t cls, reg, mu2, ls2;
  acc_t d_cls_lp;  // d cls / d l_p
  acc_t d_reg_mu;  // d reg / d mu
  acc_t d_reg_ls;  // d reg / d l_s
  bool pos;        // y > 0
};

template <typename acc_t>
FL_HD RowOut<acc_t> row_eval(acc_t lp, acc_t mu, acc_t ls, acc_t y, const Params<acc_t>& prm) {
  RowOut<acc_t> o;
  o.pos = y > acc_t(0);
  const acc_t z = o.pos ? acc_t(1) : acc_t(0);
  o.cls = softplus(lp) - lp * z;
  o.d_cls_lp = sigmoid(lp) - z;
  const acc_t sp = softplus(ls);
  const bool inside = sp >= prm.sigma_min && sp <= prm.max_sigma;
  const acc_t sigma = sp < prm.sigma_min ? prm.sigma_min : (sp > prm.max_sigma ? prm.max_sigma : sp);
  const acc_t dsigma = inside ? sigmoid(ls) : acc_t(0);
  const acc_t log_y = o.pos ? log(y) : acc_t(0);
  const acc_t t = (log_y - mu) / sigma;
  const acc_t half_log_2pi = acc_t(0.91893853320467274178);
  // A NaN label is not > 0, but EasyRec evaluates the lognormal at it (z logprob = 0 x NaN): the
  // loss is NaN, and so are the row's mu and l_s derivatives.
  const acc_t nan_or_zero = y == y ? acc_t(0) : y;
  o.reg = o.pos ? log_y + log(sigma) + half_log_2pi + acc_t(0.5) * t * t : nan_or_zero;
  o.d_reg_mu = o.pos ? -t / sigma : nan_or_zero;
  o.d_reg_ls = o.pos ? (acc_t(1) - t * t) / sigma * dsigma : nan_or_zero;
  o.mu2 = mu * mu;
  o.ls2 = ls * ls;
  return o;
}

// d L / d (l_p, mu, l_s) of one row, from row_eval's derivatives.
template <typename acc_t>
FL_HD void row_grad(const RowOut<acc_t>& o, acc_t mu, acc_t ls, acc_t inv_b, acc_t inv_pos,
                    const Params<acc_t>& prm, acc_t g[3]) {
  g[0] = prm.class_weight * o.d_cls_lp * inv_b;
  g[1] = prm.reg_weight * o.d_reg_mu * inv_pos + prm.mu_reg * acc_t(2) * mu * inv_b;
  g[2] = prm.reg_weight * o.d_reg_ls * inv_pos + prm.sigma_reg * acc_t(2) * ls * inv_b;
}

// L from the sums of the four terms over the rows.
FL_HD double combine(double s_cls, double s_reg, double s_mu2, double s_ls2, double b, double p,
                            double class_weight, double reg_weight, double mu_reg, double sigma_reg) {
  return class_weight * s_cls / b + reg_weight * s_reg / (p + 1e-8) + mu_reg * s_mu2 / b + sigma_reg * s_ls2 / b;
}

}  // namespace ziln
}  // namespace fusedloss
