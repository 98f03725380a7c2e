"""Every ``fusedloss::`` schema, defined once in Python.

The schemas exist even where the C++ extension could not be built, so the Triton path and the fake
(meta) kernels register against the same names. C++ files only carry ``TORCH_LIBRARY_IMPL``.
"""

import torch

LIB = torch.library.Library("fusedloss", "DEF")

# Binary sigmoid family (BCE-with-logits, torchvision sigmoid focal, EasyRec binary focal).
#   mode: 0 BCE, 1 torchvision focal, 2 EasyRec focal (probability clipped in the modulating factor)
#   reduction: 0 none, 1 sum, 2 mean, 3 SBNZ (sum / number of nonzero w * a * m)
#   weight_layout / pos_weight_layout: [div, mod]; element i of the flattened input reads
#     weight[(i // div) % mod] from a contiguous weight of numel mod.
# Returns (loss, grad, scale): loss has the input's shape for reduction 0 and is 0-d otherwise;
# grad is d(sum of unreduced loss)/d input, unscaled (empty when compute_grad is false); scale is the
# 0-d factor (1/N, 1, 1/N_nz) that backward applies to grad * grad_output.
BINARY_FOCAL_SCHEMA = (
    "(Tensor input, Tensor target, Tensor? weight, Tensor? pos_weight, int mode, float alpha, "
    "float gamma, float label_smoothing, int reduction, int[] weight_layout, "
    "int[] pos_weight_layout, bool compute_grad) -> (Tensor, Tensor, Tensor)"
)
LIB.define("binary_focal_fwd" + BINARY_FOCAL_SCHEMA)
LIB.define("binary_focal_fwd_triton" + BINARY_FOCAL_SCHEMA)

# Pairwise session losses (EasyRec PAIR_WISE / PAIRWISE_LOGISTIC / PAIRWISE_FOCAL / PAIRWISE_HINGE).
# Items are given in session-sorted order: scores, labels, weight ([B] or [1]) in the compute dtype
# (float32, float64 for float64 input); order[p] is the original batch index of sorted position p;
# [seg_lo[p], seg_hi[p]) is the sorted range of p's session. kind: 0 pair_wise, 1 logistic,
# 2 focal, 3 hinge; flags: 1 has_hinge_margin, 2 use_label_margin, 4 label_is_logits,
# 8 use_exponent; alpha < 0: none.
#   pairwise_fwd: select None -> SBNZ over valid pairs; select (int64 [5]: the k-th largest OHEM
#     key's four words and an enabled flag) -> OHEM's final pass over the selected pairs whose
#     loss is > 0. Returns (loss, grad, scale): 0-d loss, grad [B] (sorted order, unscaled; empty
#     without compute_grad), 0-d scale (1 / denominator, 0 when it is 0).
#   pairwise_ohem_hist: histogram (int64 [2048]) of digit `digit` (0..11) of the OHEM keys of the
#     valid pairs matching the decided prefix in state (int64 [5]: four key words, done flag; all
#     zeros returned when done).
PAIRWISE_ARGS = (
    "Tensor scores, Tensor labels, Tensor? weight, Tensor order, Tensor seg_lo, Tensor seg_hi, "
    "int kind, int flags, float temperature, float margin, float hinge_margin, float gamma, "
    "float alpha"
)
LIB.define(f"pairwise_fwd({PAIRWISE_ARGS}, Tensor? select, bool compute_grad) -> (Tensor, Tensor, Tensor)")
LIB.define(f"pairwise_fwd_triton({PAIRWISE_ARGS}, Tensor? select, bool compute_grad) -> (Tensor, Tensor, Tensor)")
LIB.define(f"pairwise_ohem_hist({PAIRWISE_ARGS}, Tensor state, int digit) -> Tensor")
LIB.define(f"pairwise_ohem_hist_triton({PAIRWISE_ARGS}, Tensor state, int digit) -> Tensor")

# Multilabel categorical cross-entropy (Su's log-sum-exp form, spec 10; math in
# csrc/multilabel/multilabel_math.h). input [N, C] (rows: the classes of one example);
# reduction: 0 none, 1 sum, 2 mean (over rows).
#   multilabel_ce_fwd: target [N, C], float (soft labels in [0, 1]) or integer/bool 0/1.
#   sparse_multilabel_ce_fwd: positive_index [N, K] int64, each row sorted ascending, values in
#     [0, C); mask_zero: index 0 is padding and class 0 is in neither sum.
# Returns (loss, grad, scale): loss [N] for reduction 0, else 0-d, in the input's dtype; grad [N, C]
# = d(sum of row losses)/d input, unscaled (empty without compute_grad); scale 0-d (1 for none and
# sum, 1/N for mean, 0 when N = 0) in the accumulation dtype.
LIB.define("multilabel_ce_fwd(Tensor input, Tensor target, int reduction, bool compute_grad) "
           "-> (Tensor, Tensor, Tensor)")
LIB.define("multilabel_ce_fwd_triton(Tensor input, Tensor target, int reduction, bool compute_grad) "
           "-> (Tensor, Tensor, Tensor)")
SPARSE_MLCE_SCHEMA = ("(Tensor input, Tensor positive_index, bool mask_zero, int reduction, "
                      "bool compute_grad) -> (Tensor, Tensor, Tensor)")
LIB.define("sparse_multilabel_ce_fwd" + SPARSE_MLCE_SCHEMA)
LIB.define("sparse_multilabel_ce_fwd_triton" + SPARSE_MLCE_SCHEMA)

# Softmax family (torch cross-entropy + z-loss, softmax focal; math in csrc/softmax/softmax_math.h).
# input [N, C, D] contiguous-able (class dim 1; D = 1 for [N, C]); target int64 [N, D] class indices
# (values in [0, C) or ignore_index) or, for mode 0 only, probabilities [N, C, D] in the input's
# dtype; weight None or [C] in the accumulation dtype (mode 0: class weight; mode 1: alpha).
# mode: 0 cross-entropy, 1 focal; reduction: 0 none, 1 sum, 2 mean (sum / sum of row denominators:
# w_y for class-index cross-entropy, 1 for probability targets and focal rows; ignored rows 0).
# Returns (loss, grad, scale): loss [N, D] for reduction 0 else 0-d, in the input's dtype; grad
# [N, C, D] = d(sum of row losses)/d input, unscaled (empty without compute_grad); scale 0-d
# (1 for none and sum, 1/denominator for mean, 0 when the denominator is 0) in the accumulation dtype.
SOFTMAX_SCHEMA = (
    "(Tensor input, Tensor target, Tensor? weight, int mode, int ignore_index, "
    "float label_smoothing, float z_loss, float gamma, int reduction, bool compute_grad) "
    "-> (Tensor, Tensor, Tensor)"
)
LIB.define("softmax_fwd" + SOFTMAX_SCHEMA)
LIB.define("softmax_fwd_triton" + SOFTMAX_SCHEMA)
# inplace_grad: the same kernel, writing the gradient into `input` (contiguous) instead of a new
# tensor; returns (loss, scale); kind is softmax_fwd's mode (an argument named `mode` breaks
# torch.compile's functionalization of mutating ops). No autograd formula: fusedloss.ops.softmax
# wraps it.
SOFTMAX_INPLACE_SCHEMA = (
    "(Tensor(a!) input, Tensor target, Tensor? weight, int kind, int ignore_index, "
    "float label_smoothing, float z_loss, float gamma, int reduction) -> (Tensor, Tensor)"
)
LIB.define("softmax_fwd_inplace" + SOFTMAX_INPLACE_SCHEMA)
LIB.define("softmax_fwd_inplace_triton" + SOFTMAX_INPLACE_SCHEMA)

# Support-vector-guided softmax (EasyRec SOFTMAX_CROSS_ENTROPY_WITH_NEGATIVE_MINING, spec 6.1; math
# in csrc/sv_softmax/sv_softmax_math.h). user, item [B, D] (same dtype); kept bool [B] (label > 0);
# weight None, [1] or [B] in the accumulation dtype; shifts int64 [K], K >= 1 (negative k of row i
# is item[(i - shifts[k]) mod B]); normalize: l2-normalise both embeddings first; reduction:
# 1 sum, 2 mean over kept rows, 3 SUM_BY_NONZERO_WEIGHTS (0 when the denominator is 0).
# Returns (loss, grad_user, grad_item, scale): 0-d loss in the input's dtype; the gradients of
# sum_i w_i loss_i, unscaled, in the input's dtype (empty without compute_grad); 0-d scale in the
# accumulation dtype (1 for sum, 1/denominator, 0 when it is 0).
SV_SOFTMAX_SCHEMA = (
    "(Tensor user, Tensor item, Tensor kept, Tensor? weight, Tensor shifts, bool normalize, "
    "float margin, float gamma, float t, int reduction, bool compute_grad) "
    "-> (Tensor, Tensor, Tensor, Tensor)"
)
LIB.define("sv_softmax_fwd" + SV_SOFTMAX_SCHEMA)
LIB.define("sv_softmax_fwd_triton" + SV_SOFTMAX_SCHEMA)

# Pointwise family (regression losses; EasyRec L2_LOSS, SIGMOID_L2_LOSS, CROSS_ENTROPY_LOSS; math in
# csrc/pointwise/pointwise_math.h). input and target of one shape (target in the input's dtype);
# kind: pointwise_math.h's Kind (0 l1 ... 12 kl_div with log target); param: the kind's parameter
# (huber delta, smooth-L1 beta, MAPE / log-loss epsilon; unused otherwise); weight and
# weight_layout as in binary_focal_fwd; reduction: 0 none, 1 sum, 2 mean, 3 SBNZ (sum of w l /
# number of nonzero w; every element counts without a weight; 0 when none is nonzero).
# Returns (loss, grad, scale) as binary_focal_fwd does.
POINTWISE_SCHEMA = (
    "(Tensor input, Tensor target, Tensor? weight, int kind, float param, int reduction, "
    "int[] weight_layout, bool compute_grad) -> (Tensor, Tensor, Tensor)"
)
LIB.define("pointwise_fwd" + POINTWISE_SCHEMA)
LIB.define("pointwise_fwd_triton" + POINTWISE_SCHEMA)

# ZILN (EasyRec ZILN_LOSS, zero-inflated lognormal; math in csrc/ziln/ziln_math.h). logits [B, 3]
# (l_p, mu, l_s; float16/bfloat16/float32/float64, contiguous), labels [B] in the accumulation dtype
# (float32, float64 for float64 logits). Returns (loss, grad, scale): 0-d loss in the logits' dtype
# (NaN for B = 0: TF's means of nothing); grad [B, 3] = d loss / d logits, final (already divided by
# B and P + 1e-8), in the logits' dtype (empty without compute_grad); 0-d scale, 1, in the
# accumulation dtype.
ZILN_SCHEMA = (
    "(Tensor logits, Tensor labels, float max_sigma, float class_weight, float reg_weight, "
    "float mu_reg, float sigma_reg, bool compute_grad) -> (Tensor, Tensor, Tensor)"
)
LIB.define("ziln_fwd" + ZILN_SCHEMA)
LIB.define("ziln_fwd_triton" + ZILN_SCHEMA)

# Per-session softmax losses (EasyRec LISTWISE_RANK_LOSS, LISTWISE_DISTILL_LOSS, JRC_LOSS; math in
# csrc/session_softmax/session_softmax_math.h). Items in session-sorted order: logits [B, C] (C = 1
# listwise, 2 JRC), labels [B] and weight ([B], JRC only, or None) in the accumulation dtype
# (float32, float64 for float64 input), contiguous; [seg_lo[p], seg_hi[p]) the sorted range of p's
# session. kind: 0 rank, 1 distill, 2 jrc (same_label_loss), 3 jrc split (same_label_loss false);
# flags: 1 label_is_logits, 2 targets given (distill); clip_max: distill's label_clip_max_value.
# Returns (num, den, grad): num [P] and den [P] (P = 1 listwise, 2 JRC: the CE and GE parts), the
# sums of the per-item losses and denominators; grad [P, B, C] = d num / d logits (empty without
# compute_grad), all in the accumulation dtype. The loss of part p is num[p] / den[p].
SESSION_SOFTMAX_SCHEMA = (
    "(Tensor logits, Tensor labels, Tensor? weight, Tensor seg_lo, Tensor seg_hi, int kind, "
    "int flags, float temperature, float clip_max, bool compute_grad) -> (Tensor, Tensor, Tensor)"
)
LIB.define("session_softmax_fwd" + SESSION_SOFTMAX_SCHEMA)
LIB.define("session_softmax_fwd_triton" + SESSION_SOFTMAX_SCHEMA)

# In-batch metric-learning losses from embeddings (EasyRec CIRCLE_LOSS, MULTI_SIMILARITY_LOSS with
# the intended formula; math in csrc/metric/metric_math.h), tiled: no [B, B] matrix. emb [B, D];
# labels int64 [B]; sessions int64 [B] or None; kind: 0 circle (p0 margin, p1 gamma), 1
# multi-similarity (p0 alpha, p1 beta, p2 lambda); normalize: l2-normalise the rows first.
# Returns (loss, grad, scale) as binary_focal_fwd does: 0-d loss (the mean over the B anchors, NaN
# for B = 0) in emb's dtype, grad [B, D] = d(sum of anchor losses)/d emb in emb's dtype (empty
# without compute_grad), 0-d scale 1/B in the accumulation dtype.
METRIC_SCHEMA = (
    "(Tensor emb, Tensor labels, Tensor? sessions, int kind, bool normalize, float p0, float p1, "
    "float p2, bool compute_grad) -> (Tensor, Tensor, Tensor)"
)
LIB.define("metric_fwd" + METRIC_SCHEMA)
LIB.define("metric_fwd_triton" + METRIC_SCHEMA)

# Row-wise pair losses (torch margin_ranking / cosine_embedding / triplet_margin, Keras
# cosine_similarity, siamese contrastive, AITM order calibration; math in
# csrc/rowwise/rowwise_math.h). a, b (and c: triplet's negative, else None) [N, D] contiguous, one
# float dtype; target [N] in the accumulation dtype or None (kinds that take none); kind:
# rowwise_math.h's Kind; reduction: 0 none, 1 sum, 2 mean. Returns (loss, grad_a, grad_b, grad_c,
# scale): loss [N] for reduction 0 else 0-d, in the input's dtype (mean of nothing: NaN); the
# gradients of the sum of row losses, unscaled, in the input's dtype (empty without compute_grad;
# grad_c empty without c); 0-d scale in the accumulation dtype (1 none / sum, 1/N mean).
ROWWISE_SCHEMA = (
    "(Tensor a, Tensor b, Tensor? c, Tensor? target, int kind, float margin, float p, float eps, "
    "bool swap, int reduction, bool compute_grad) -> (Tensor, Tensor, Tensor, Tensor, Tensor)"
)
LIB.define("rowwise_fwd" + ROWWISE_SCHEMA)
LIB.define("rowwise_fwd_triton" + ROWWISE_SCHEMA)
