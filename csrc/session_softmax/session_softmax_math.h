// Math of the per-session softmax losses (EasyRec LISTWISE_RANK_LOSS, LISTWISE_DISTILL_LOSS and
// JRC_LOSS, spec 4.1-4.3), shared by the cpu backend (g++) and the cuda backend (nvcc);
// fusedloss/triton_kernels/session_softmax.py mirrors it.
//
// Items come in session-sorted order; [lo, hi) is the sorted range of a session of n = hi - lo
// items. z is [B, C] (C = 1 for the listwise kinds, 2 for JRC: column 0 the "negative" logit z0,
// column 1 the "positive" logit z1), y [B] the labels, w [B] the sample weights (JRC only; 1 when
// absent). Outputs, P parts (1 listwise, 2 JRC: part 0 the calibration CE, part 1 the ranking GE):
// row_loss [P, B] and row_den [P, B] (summed over the batch: the part's numerator and denominator)
// and grad [P, B, C] = d(numerator)/dz.
//
// Listwise (kinds kRank, kDistill), s_i = z_i / T:
//   kRank:    q_i = y_i, or with kLabelIsLogits q_i = softmax over the session of y / T
//   kDistill: r_i = log(1 + M) - log(clip(y_i, 1, M)); q_i = r_i / sum_session r
//   kTargetsGiven (the caller applied transform_fn): y_i is used as is in place of y / T (kRank
//   with label logits) or r_i (kDistill).
//   row_loss_i = q_i (LSE_s - s_i);  grad_i = (Q e^{s_i - LSE_s} - q_i) / T,  Q = sum_session q
//   row_den = 1 on the session's first item (the loss is a mean over sessions), else 0.
// JRC part 0 (CE, SBNZ): c = [y_i == 1]; row_loss = w_i softplus(z_{1-c} - z_c);
//   grad = w_i (softmax(z_i) - onehot(c)); row_den = [w_i != 0].
// JRC part 1 (GE), row_den = 1 for every item (GE is a mean over B):
//   kJrc (same_label_loss = true): a = mean of w over the session, n_k the session's count of
//     label k; row_loss_i = a (LSE_k(z_c) - z_{c,i}) over the session;
//     grad_i[k] = a (n_k e^{z_{k,i} - LSE(z_k)} - [c == k]) for k = 0, 1.
//   kJrcSplit (same_label_loss = false): M1 = LSE of z1 over the session's label-0 items, M0 = LSE
//     of z0 over its label-1 items (-inf when there is none). A label-1 item j: u = M1 - z1_j,
//     row_loss = w_j softplus(u), grad[1] = -w_j sigmoid(u); it adds T1 += w_j sigmoid(u) (= w_j
//     e^{M1 - lse_j}). A label-0 item symmetrically on column 0 with M0 and T0. Every label-0 item
//     k then gets grad[1] = e^{z1_k - M1} T1 (it is a competitor of the label-1 viewers), and every
//     label-1 item grad[0] = e^{z0_k - M0} T0. Same-label competitors are excluded whatever the
//     weight's sign (EasyRec's -1e9 w mask only excludes them for w > 0).
//
// Sweeps per session: 1) the session statistics (online LSEs, counts, sums); 2) kRank with label
// logits / kDistill: Q; kJrcSplit: T0, T1; 3) per item: the row_loss, row_den and grad writes.
#pragma once

#include <cmath>

#include "../common/host_device.h"
#include "../common/logistic.h"
#include "../common/online_lse.h"

namespace fusedloss {
namespace session_softmax {

enum Kind : int64_t { kRank = 0, kDistill = 1, kJrc = 2, kJrcSplit = 3 };
enum Flag : int64_t { kLabelIsLogits = 1, kTargetsGiven = 2 };

FL_HD int64_t num_parts(int64_t kind) { return kind >= kJrc ? 2 : 1; }
FL_HD int64_t num_cols(int64_t kind) { return kind >= kJrc ? 2 : 1; }

template <typename acc_t>
struct Params {
  int64_t kind;
  int64_t flags;
  acc_t temperature;  // listwise: > 0
  acc_t clip_max;     // kDistill: label_clip_max_value M >= 1
};

// The listwise target r_i before normalisation (kDistill) or the label logit (kRank with label
// logits) or the target itself (kRank).
template <typename acc_t>
FL_HD acc_t listwise_raw(acc_t y, const Params<acc_t>& p) {
  if (p.flags & kTargetsGiven) return y;
  if (p.kind == kDistill) {
    const acc_t r = y < acc_t(1) ? acc_t(1) : (y > p.clip_max ? p.clip_max : y);
    return log1p(p.clip_max) - log(r);
  }
  return (p.flags & kLabelIsLogits) ? y / p.temperature : y;
}

// Session statistics of sweep 1 for the listwise kinds.
template <typename acc_t>
struct ListStats {
  Lse<acc_t> s;    // LSE of s = z / T
  Lse<acc_t> u;    // kRank with label logits: LSE of y / T
  acc_t r_sum;     // kDistill: sum of r
};

template <typename acc_t>
FL_HD ListStats<acc_t> list_stats_empty() {
  return ListStats<acc_t>{lse_empty<acc_t>(), lse_empty<acc_t>(), acc_t(0)};
}

template <typename acc_t>
FL_HD void list_stats_add(ListStats<acc_t>& st, acc_t z, acc_t y, const Params<acc_t>& p) {
  lse_add(st.s, z / p.temperature, acc_t(1));
  const acc_t raw = listwise_raw(y, p);
  if (p.kind == kDistill) {
    st.r_sum += raw;
  } else if (p.flags & kLabelIsLogits) {
    lse_add(st.u, raw, acc_t(1));
  }
}

template <typename acc_t>
FL_HD ListStats<acc_t> list_stats_merge(const ListStats<acc_t>& a, const ListStats<acc_t>& b) {
  return ListStats<acc_t>{lse_merge(a.s, b.s), lse_merge(a.u, b.u), a.r_sum + b.r_sum};
}

// q_i from the session statistics.
template <typename acc_t>
FL_HD acc_t list_target(acc_t y, const ListStats<acc_t>& st, const Params<acc_t>& p) {
  const acc_t raw = listwise_raw(y, p);
  if (p.kind == kDistill) return raw / st.r_sum;  // 0 / 0 = NaN for a zero-mass session, as EasyRec
  if (p.flags & kLabelIsLogits) return exp(raw - lse_value(st.u));
  return raw;
}

// Sweep 3 for item i (listwise): its row_loss; *grad = d/dz_i. lse_s = lse_value(st.s), q_sum = Q.
template <typename acc_t>
FL_HD acc_t list_item(acc_t z, acc_t y, const ListStats<acc_t>& st, acc_t lse_s, acc_t q_sum,
                      const Params<acc_t>& p, acc_t* grad) {
  const acc_t s = z / p.temperature;
  const acc_t q = list_target(y, st, p);
  *grad = (q_sum * exp(s - lse_s) - q) / p.temperature;
  return q * (lse_s - s);
}

// JRC part 0 for one item: w softplus(z_{1-c} - z_c); g0, g1 = w (softmax - onehot).
template <typename acc_t>
FL_HD acc_t jrc_ce(acc_t z0, acc_t z1, bool pos, acc_t w, acc_t* g0, acc_t* g1) {
  const acc_t zc = pos ? z1 : z0;
  const acc_t zo = pos ? z0 : z1;
  const acc_t p_other = sigmoid(zo - zc);
  const acc_t d_other = w * p_other;
  *g0 = pos ? d_other : -d_other;
  *g1 = pos ? -d_other : d_other;
  return w * softplus(zo - zc);
}

// Session statistics of sweep 1 for JRC.
template <typename acc_t>
struct JrcStats {
  Lse<acc_t> a;  // kJrc: LSE of z0 over the session;  kJrcSplit: M0, LSE of z0 over label-1 items
  Lse<acc_t> b;  // kJrc: LSE of z1 over the session;  kJrcSplit: M1, LSE of z1 over label-0 items
  acc_t w_sum;   // kJrc: sum of w
  acc_t n_pos;   // kJrc: number of label-1 items
  acc_t n;       // kJrc: number of items
};

template <typename acc_t>
FL_HD JrcStats<acc_t> jrc_stats_empty() {
  return JrcStats<acc_t>{lse_empty<acc_t>(), lse_empty<acc_t>(), acc_t(0), acc_t(0), acc_t(0)};
}

template <typename acc_t>
FL_HD void jrc_stats_add(JrcStats<acc_t>& st, acc_t z0, acc_t z1, bool pos, acc_t w, int64_t kind) {
  if (kind == kJrc) {
    lse_add(st.a, z0, acc_t(1));
    lse_add(st.b, z1, acc_t(1));
    st.w_sum += w;
    st.n_pos += pos ? acc_t(1) : acc_t(0);
    st.n += acc_t(1);
  } else if (pos) {
    lse_add(st.a, z0, acc_t(1));
  } else {
    lse_add(st.b, z1, acc_t(1));
  }
}

template <typename acc_t>
FL_HD JrcStats<acc_t> jrc_stats_merge(const JrcStats<acc_t>& x, const JrcStats<acc_t>& y) {
  return JrcStats<acc_t>{lse_merge(x.a, y.a), lse_merge(x.b, y.b), x.w_sum + y.w_sum,
                         x.n_pos + y.n_pos, x.n + y.n};
}

// kJrcSplit sweep 2: the item's share added to T0 (label 0) or T1 (label 1), w sigmoid(u).
template <typename acc_t>
FL_HD acc_t jrc_split_share(acc_t z0, acc_t z1, bool pos, acc_t w, acc_t m0, acc_t m1) {
  return w * sigmoid(pos ? m1 - z1 : m0 - z0);
}

// Sweep 3 for JRC part 1: the item's row_loss; g0, g1 = d/dz0, d/dz1 of the GE numerator.
// kJrc: m0, m1 = LSE of z0, z1 over the session, t0, t1 unused; kJrcSplit: m0 = M0, m1 = M1 and
// t0, t1 the sums of sweep 2.
template <typename acc_t>
FL_HD acc_t jrc_ge_item(acc_t z0, acc_t z1, bool pos, acc_t w, const JrcStats<acc_t>& st, acc_t m0,
                        acc_t m1, acc_t t0, acc_t t1, int64_t kind, acc_t* g0, acc_t* g1) {
  if (kind == kJrc) {
    const acc_t a = st.w_sum / st.n;
    const acc_t n_neg = st.n - st.n_pos;
    *g0 = a * (n_neg * exp(z0 - m0) - (pos ? acc_t(0) : acc_t(1)));
    *g1 = a * (st.n_pos * exp(z1 - m1) - (pos ? acc_t(1) : acc_t(0)));
    return a * (pos ? m1 - z1 : m0 - z0);
  }
  if (pos) {
    const acc_t u = m1 - z1;
    *g1 = -w * sigmoid(u);
    *g0 = t0 == acc_t(0) ? acc_t(0) : exp(z0 - m0) * t0;
    return w * softplus(u);
  }
  const acc_t u = m0 - z0;
  *g0 = -w * sigmoid(u);
  *g1 = t1 == acc_t(0) ? acc_t(0) : exp(z1 - m1) * t1;
  return w * softplus(u);
}

}  // namespace session_softmax
}  // namespace fusedloss
