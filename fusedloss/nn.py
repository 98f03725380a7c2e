"""``torch.nn.Module`` wrappers of ``fusedloss.functional``."""

import torch

from fusedloss import functional as F


class SigmoidFocalLoss(torch.nn.Module):
    """torchvision's sigmoid focal loss: ``a_t (1 - p_t)^gamma ce(x, t)`` (see ``F.sigmoid_focal_loss``).

    Shape: input (*), target (*) like input; output (*) for ``reduction="none"`` (default), else ().

    Example:
        >>> loss = SigmoidFocalLoss(alpha=0.25, gamma=2.0, reduction="mean")
        >>> loss(torch.randn(8, 3), torch.randint(0, 2, (8, 3)).float())
    """

    def __init__(self, alpha=0.25, gamma=2.0, reduction="none", backend="auto"):
        super().__init__()
        self.alpha, self.gamma, self.reduction, self.backend = alpha, gamma, reduction, backend

    def forward(self, input, target):
        return F.sigmoid_focal_loss(input, target, self.alpha, self.gamma, self.reduction,
                                    backend=self.backend)


class BinaryFocalLoss(torch.nn.Module):
    """EasyRec BINARY_FOCAL_LOSS: ``sum(v ce) / #{v != 0}`` or OHEM (see ``F.binary_focal_loss``).

    Shape: input (*) ([B] in EasyRec), target (*), weight broadcastable to input; output ().

    Example:
        >>> loss = BinaryFocalLoss(gamma=2.0, alpha=0.25, ohem_ratio=0.5)
        >>> loss(torch.randn(64), torch.randint(0, 2, (64,)).float())
    """

    def __init__(self, gamma=2.0, alpha=None, label_smoothing=0.0, ohem_ratio=1.0, backend="auto"):
        super().__init__()
        self.gamma, self.alpha = gamma, alpha
        self.label_smoothing, self.ohem_ratio, self.backend = label_smoothing, ohem_ratio, backend

    def forward(self, input, target, weight=None):
        return F.binary_focal_loss(input, target, self.gamma, self.alpha, self.label_smoothing,
                                   weight, self.ohem_ratio, backend=self.backend)


class BCEWithLogitsLoss(torch.nn.Module):
    """``torch.nn.BCEWithLogitsLoss`` with label smoothing (see ``F.binary_cross_entropy_with_logits``).

    Shape: input (*), target (*); output (*) for ``reduction="none"``, else ().

    Example:
        >>> loss = BCEWithLogitsLoss(pos_weight=torch.full((3,), 2.0))
        >>> loss(torch.randn(8, 3), torch.rand(8, 3))
    """

    def __init__(self, weight=None, reduction="mean", pos_weight=None, label_smoothing=0.0,
                 backend="auto"):
        super().__init__()
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)
        self.reduction, self.label_smoothing, self.backend = reduction, label_smoothing, backend

    def forward(self, input, target):
        return F.binary_cross_entropy_with_logits(input, target, self.weight, self.pos_weight,
                                                  self.reduction, self.label_smoothing,
                                                  backend=self.backend)


class _PairwiseBase(torch.nn.Module):
    """Holds the keyword parameters of a pairwise loss; forward(input, target, session_ids, weight)."""

    _fn = None

    def __init__(self, backend="auto", **params):
        super().__init__()
        self.backend, self.params = backend, params

    def forward(self, input, target, session_ids=None, weight=None):
        return type(self)._fn(input, target, session_ids, weight=weight, backend=self.backend,
                              **self.params)

    def extra_repr(self):
        return ", ".join(f"{k}={v!r}" for k, v in self.params.items())


class PairwiseLoss(_PairwiseBase):
    """EasyRec PAIR_WISE_LOSS: ``softplus(-((s_i - s_j)/T - margin))`` over in-session pairs with
    ``y_i > y_j``, SBNZ with pair weight ``w_i`` (see ``F.pairwise_loss``).

    Shape: input (B,), target (B,), session_ids (B,) or None, weight (B,), a number or None; output ().

    Example:
        >>> loss = PairwiseLoss(temperature=0.5)
        >>> loss(torch.randn(64), torch.randint(0, 3, (64,)), torch.randint(0, 8, (64,)))
    """

    _fn = staticmethod(F.pairwise_loss)

    def __init__(self, temperature=1.0, margin=0.0, backend="auto"):
        super().__init__(backend, temperature=temperature, margin=margin)


class PairwiseLogisticLoss(_PairwiseBase):
    """EasyRec PAIRWISE_LOGISTIC_LOSS (RankNet), see ``F.pairwise_logistic_loss``.

    Shape: input (B,), target (B,), session_ids (B,) or None, weight (B,), a number or None; output ().

    Example:
        >>> loss = PairwiseLogisticLoss(use_label_margin=True, ohem_ratio=0.5)
        >>> loss(torch.randn(64), torch.randint(0, 3, (64,)), torch.randint(0, 8, (64,)))
    """

    _fn = staticmethod(F.pairwise_logistic_loss)

    def __init__(self, temperature=1.0, hinge_margin=None, use_label_margin=False, ohem_ratio=1.0,
                 backend="auto"):
        super().__init__(backend, temperature=temperature, hinge_margin=hinge_margin,
                         use_label_margin=use_label_margin, ohem_ratio=ohem_ratio)


class PairwiseFocalLoss(_PairwiseBase):
    """EasyRec PAIRWISE_FOCAL_LOSS, see ``F.pairwise_focal_loss``.

    Shape: input (B,), target (B,), session_ids (B,) or None, weight (B,), a number or None; output ().

    Example:
        >>> loss = PairwiseFocalLoss(gamma=2.0, hinge_margin=1.0)
        >>> loss(torch.randn(64), torch.randint(0, 3, (64,)), torch.randint(0, 8, (64,)))
    """

    _fn = staticmethod(F.pairwise_focal_loss)

    def __init__(self, temperature=1.0, gamma=2.0, alpha=None, hinge_margin=None, ohem_ratio=1.0,
                 backend="auto"):
        super().__init__(backend, temperature=temperature, gamma=gamma, alpha=alpha,
                         hinge_margin=hinge_margin, ohem_ratio=ohem_ratio)


class PairwiseHingeLoss(_PairwiseBase):
    """EasyRec PAIRWISE_HINGE_LOSS (``use_exponent`` as intended, not EasyRec's gradient-less bug),
    see ``F.pairwise_hinge_loss``.

    Shape: input (B,), target (B,), session_ids (B,) or None, weight (B,), a number or None; output ().

    Example:
        >>> loss = PairwiseHingeLoss()
        >>> loss(torch.randn(64), torch.randint(0, 3, (64,)), torch.randint(0, 8, (64,)))
    """

    _fn = staticmethod(F.pairwise_hinge_loss)

    def __init__(self, temperature=1.0, margin=1.0, use_label_margin=True, label_is_logits=True,
                 use_exponent=False, ohem_ratio=1.0, backend="auto"):
        super().__init__(backend, temperature=temperature, margin=margin,
                         use_label_margin=use_label_margin, label_is_logits=label_is_logits,
                         use_exponent=use_exponent, ohem_ratio=ohem_ratio)


class MultilabelCategoricalCrossEntropyLoss(torch.nn.Module):
    """Su's multilabel cross-entropy ``log(1 + sum_neg e^s) + log(1 + sum_pos e^-s)`` per row
    (see ``F.multilabel_categorical_crossentropy``).

    Shape: input (*, C) logits, target (*, C) 0/1 or soft labels; output () or (*) for "none".

    Example:
        >>> loss = MultilabelCategoricalCrossEntropyLoss()
        >>> loss(torch.randn(8, 100), torch.randint(0, 2, (8, 100)))
    """

    def __init__(self, reduction="mean", backend="auto"):
        super().__init__()
        self.reduction, self.backend = reduction, backend

    def forward(self, input, target):
        return F.multilabel_categorical_crossentropy(input, target, self.reduction,
                                                     backend=self.backend)


class SparseMultilabelCategoricalCrossEntropyLoss(torch.nn.Module):
    """The multilabel cross-entropy with positives as class indices
    (see ``F.sparse_multilabel_categorical_crossentropy``).

    Shape: input (*, C) logits, positive_index (*, K) integer in [0, C); output () or (*) for "none".

    Example:
        >>> loss = SparseMultilabelCategoricalCrossEntropyLoss(mask_zero=True)
        >>> loss(torch.randn(8, 100), torch.randint(0, 100, (8, 5)))
    """

    def __init__(self, mask_zero=False, reduction="mean", backend="auto"):
        super().__init__()
        self.mask_zero, self.reduction, self.backend = mask_zero, reduction, backend

    def forward(self, input, positive_index):
        return F.sparse_multilabel_categorical_crossentropy(
            input, positive_index, self.mask_zero, self.reduction, backend=self.backend)


class MultilabelFocalLoss(torch.nn.Module):
    """Per-label sigmoid focal loss averaged over labels (see ``F.multilabel_focal_loss``).

    Shape: input (*, C), target (*, C); output () or (*) for "none".

    Example:
        >>> loss = MultilabelFocalLoss(alpha=0.25, gamma=2.0)
        >>> loss(torch.randn(8, 20), torch.randint(0, 2, (8, 20)).float())
    """

    def __init__(self, alpha=0.25, gamma=2.0, reduction="mean", backend="auto"):
        super().__init__()
        self.alpha, self.gamma, self.reduction, self.backend = alpha, gamma, reduction, backend

    def forward(self, input, target):
        return F.multilabel_focal_loss(input, target, self.alpha, self.gamma, self.reduction,
                                       backend=self.backend)


class CrossEntropyLoss(torch.nn.Module):
    """``torch.nn.CrossEntropyLoss`` with the same constructor, fused, plus ``z_loss``
    (see ``F.cross_entropy``).

    Shape: input (C), (N, C) or (N, C, d...); target (), (N) or (N, d...) class indices, or
    probabilities shaped like input; output () or the target's shape for "none".

    Example:
        >>> loss = CrossEntropyLoss(label_smoothing=0.1, z_loss=1e-4)
        >>> loss(torch.randn(8, 1000), torch.randint(0, 1000, (8,)))
    """

    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None,
                 reduction="mean", label_smoothing=0.0, *, z_loss=0.0, inplace_grad=False,
                 backend="auto"):
        super().__init__()
        if size_average is not None or reduce is not None:
            reduction = torch.nn._reduction.legacy_get_string(size_average, reduce)
        self.register_buffer("weight", weight)
        self.ignore_index, self.reduction = ignore_index, reduction
        self.label_smoothing, self.z_loss, self.backend = label_smoothing, z_loss, backend
        self.inplace_grad = inplace_grad

    def forward(self, input, target):
        return F.cross_entropy(input, target, self.weight, ignore_index=self.ignore_index,
                               reduction=self.reduction, label_smoothing=self.label_smoothing,
                               z_loss=self.z_loss, inplace_grad=self.inplace_grad,
                               backend=self.backend)


class SoftmaxFocalLoss(torch.nn.Module):
    """Multiclass focal loss ``-sum_c q_c a_c (1 - p_c)^gamma log p_c`` (see ``F.softmax_focal_loss``).

    Shape: input (C), (N, C) or (N, C, d...); target class indices; output () or the target's shape.

    Example:
        >>> loss = SoftmaxFocalLoss(gamma=2.0, alpha=torch.full((10,), 0.25))
        >>> loss(torch.randn(8, 10), torch.randint(0, 10, (8,)))
    """

    def __init__(self, gamma=2.0, alpha=None, ignore_index=-100, label_smoothing=0.0,
                 reduction="mean", backend="auto"):
        super().__init__()
        if isinstance(alpha, torch.Tensor):
            self.register_buffer("alpha", alpha)
        else:
            self.alpha = alpha
        self.gamma, self.ignore_index, self.reduction = gamma, ignore_index, reduction
        self.label_smoothing, self.backend = label_smoothing, backend

    def forward(self, input, target):
        return F.softmax_focal_loss(input, target, self.gamma, self.alpha, self.ignore_index,
                                    self.label_smoothing, self.reduction, backend=self.backend)


class SVSoftmaxLoss(torch.nn.Module):
    """Support-vector-guided softmax with rolled in-batch negatives (see ``F.sv_softmax_loss``).

    Shape: user_emb, item_emb (B, D); labels (B); weights a number or (B); output ().

    Example:
        >>> loss = SVSoftmaxLoss(num_negative_samples=4, gamma=10.0, t=1.2)
        >>> loss(torch.randn(64, 32), torch.randn(64, 32), torch.ones(64))
    """

    def __init__(self, num_negative_samples, embed_normed=False, gamma=1.0, margin=0.0, t=1.0,
                 reduction="sum_by_nonzero_weights", backend="auto"):
        super().__init__()
        self.num_negative_samples, self.embed_normed = num_negative_samples, embed_normed
        self.gamma, self.margin, self.t = gamma, margin, t
        self.reduction, self.backend = reduction, backend

    def forward(self, user_emb, item_emb, labels, weights=1.0, shifts=None):
        return F.sv_softmax_loss(user_emb, item_emb, labels, self.num_negative_samples,
                                 self.embed_normed, weights, self.gamma, self.margin, self.t,
                                 shifts=shifts, reduction=self.reduction, backend=self.backend)


class _PointwiseLoss(torch.nn.Module):
    """torch's constructor (``size_average``, ``reduce``, ``reduction``), fused, plus ``backend``."""

    def __init__(self, size_average=None, reduce=None, reduction="mean", *, backend="auto"):
        super().__init__()
        if size_average is not None or reduce is not None:
            reduction = torch.nn._reduction.legacy_get_string(size_average, reduce)
        self.reduction, self.backend = reduction, backend


class L1Loss(_PointwiseLoss):
    """``torch.nn.L1Loss`` on the fused pointwise kernel (see ``F.l1_loss``)."""

    def forward(self, input, target):
        return F.l1_loss(input, target, reduction=self.reduction, backend=self.backend)


class MSELoss(_PointwiseLoss):
    """``torch.nn.MSELoss`` on the fused pointwise kernel (see ``F.mse_loss``)."""

    def forward(self, input, target):
        return F.mse_loss(input, target, reduction=self.reduction, backend=self.backend)


class SmoothL1Loss(_PointwiseLoss):
    """``torch.nn.SmoothL1Loss`` (beta, default 1) on the fused pointwise kernel."""

    def __init__(self, size_average=None, reduce=None, reduction="mean", beta=1.0, *, backend="auto"):
        super().__init__(size_average, reduce, reduction, backend=backend)
        self.beta = beta

    def forward(self, input, target):
        return F.smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta,
                                backend=self.backend)


class HuberLoss(torch.nn.Module):
    """``torch.nn.HuberLoss`` (delta, default 1) on the fused pointwise kernel."""

    def __init__(self, reduction="mean", delta=1.0, *, backend="auto"):
        super().__init__()
        self.reduction, self.delta, self.backend = reduction, delta, backend

    def forward(self, input, target):
        return F.huber_loss(input, target, reduction=self.reduction, delta=self.delta,
                            backend=self.backend)


class KLDivLoss(_PointwiseLoss):
    """``torch.nn.KLDivLoss`` (input: log-probabilities; ``log_target``) on the fused kernel."""

    def __init__(self, size_average=None, reduce=None, reduction="mean", log_target=False, *,
                 backend="auto"):
        super().__init__(size_average, reduce, reduction, backend=backend)
        self.log_target = log_target

    def forward(self, input, target):
        return F.kl_div(input, target, reduction=self.reduction, log_target=self.log_target,
                        backend=self.backend)


class _ListwiseBase(torch.nn.Module):
    def __init__(self, temperature, transform_fn, scale_logits, weight, backend):
        super().__init__()
        self.temperature, self.transform_fn, self.weight = temperature, transform_fn, weight
        self.backend = backend
        if scale_logits:  # EasyRec's trainable |a| s + b, a initialised to 1 and b to 0
            self.logit_scale = torch.nn.Parameter(torch.ones(()))
            self.logit_bias = torch.nn.Parameter(torch.zeros(()))
        else:
            self.logit_scale = self.logit_bias = None


class ListwiseRankLoss(_ListwiseBase):
    """EasyRec LISTWISE_RANK_LOSS (see ``F.listwise_rank_loss``); ``scale_logits`` adds the trainable
    scalars ``logit_scale`` (init 1) and ``logit_bias`` (init 0).

    Shape: input (B), target (B), session_ids (B) or None; output ().

    Example:
        >>> loss = ListwiseRankLoss(temperature=0.5)
        >>> loss(torch.randn(12), torch.randint(0, 3, (12,)).float(), torch.arange(12) // 4)
    """

    def __init__(self, temperature=1.0, label_is_logits=False, transform_fn=None,
                 scale_logits=False, weight=1.0, backend="auto"):
        super().__init__(temperature, transform_fn, scale_logits, weight, backend)
        self.label_is_logits = label_is_logits

    def forward(self, input, target, session_ids=None):
        return F.listwise_rank_loss(input, target, session_ids, weight=self.weight,
                                    temperature=self.temperature,
                                    label_is_logits=self.label_is_logits,
                                    transform_fn=self.transform_fn, logit_scale=self.logit_scale,
                                    logit_bias=self.logit_bias, backend=self.backend)


class ListwiseDistillLoss(_ListwiseBase):
    """EasyRec LISTWISE_DISTILL_LOSS (see ``F.listwise_distill_loss``); ``scale_logits`` as in
    ``ListwiseRankLoss``.

    Shape: input (B), target (B) teacher rank positions (1 is best), session_ids (B) or None;
    output ().

    Example:
        >>> loss = ListwiseDistillLoss(label_clip_max_value=100.0)
        >>> loss(torch.randn(12), torch.randint(1, 5, (12,)).float(), torch.arange(12) // 4)
    """

    def __init__(self, temperature=1.0, label_clip_max_value=512.0, transform_fn=None,
                 scale_logits=False, weight=1.0, backend="auto"):
        super().__init__(temperature, transform_fn, scale_logits, weight, backend)
        self.label_clip_max_value = label_clip_max_value

    def forward(self, input, target, session_ids=None):
        return F.listwise_distill_loss(input, target, session_ids, weight=self.weight,
                                       temperature=self.temperature,
                                       label_clip_max_value=self.label_clip_max_value,
                                       transform_fn=self.transform_fn,
                                       logit_scale=self.logit_scale, logit_bias=self.logit_bias,
                                       backend=self.backend)


class JRCLoss(torch.nn.Module):
    """EasyRec JRC_LOSS (see ``F.jrc_loss``). ``loss_weight_strategy="uncertainty"`` adds the
    trainable log-variances ``uncertainty`` ([2], init 0); the random strategies draw from
    ``generator`` (default: torch's global RNG) at every call.

    Shape: logits (B, 2), labels (B) in {0, 1}, session_ids (B), weight None, a number or (B);
    output ().

    Example:
        >>> loss = JRCLoss(alpha=0.5)
        >>> loss(torch.randn(12, 2), torch.randint(0, 2, (12,)), torch.arange(12) // 4)
    """

    def __init__(self, alpha=0.5, same_label_loss=True, loss_weight_strategy="fixed",
                 generator=None, backend="auto"):
        super().__init__()
        self.alpha, self.same_label_loss = alpha, same_label_loss
        self.loss_weight_strategy, self.generator, self.backend = loss_weight_strategy, generator, backend
        self.uncertainty = (torch.nn.Parameter(torch.zeros(2))
                            if loss_weight_strategy == "uncertainty" else None)

    def forward(self, logits, labels, session_ids, weight=None):
        return F.jrc_loss(logits, labels, session_ids, weight=weight, alpha=self.alpha,
                          same_label_loss=self.same_label_loss,
                          loss_weight_strategy=self.loss_weight_strategy,
                          uncertainty=self.uncertainty, generator=self.generator,
                          backend=self.backend)


class CircleLoss(torch.nn.Module):
    """EasyRec CIRCLE_LOSS over in-batch cosines (see ``F.circle_loss``).

    Shape: embeddings (B, D), labels (B), session_ids (B) or None; output ().

    Example:
        >>> loss = CircleLoss(margin=0.25, gamma=32.0)
        >>> loss(torch.randn(16, 8), torch.randint(0, 4, (16,)))
    """

    def __init__(self, margin=0.25, gamma=32.0, embed_normed=False, backend="auto"):
        super().__init__()
        self.margin, self.gamma, self.embed_normed, self.backend = margin, gamma, embed_normed, backend

    def forward(self, embeddings, labels, session_ids=None):
        return F.circle_loss(embeddings, labels, session_ids, margin=self.margin, gamma=self.gamma,
                             embed_normed=self.embed_normed, backend=self.backend)


class MultiSimilarityLoss(torch.nn.Module):
    """EasyRec MULTI_SIMILARITY_LOSS, the intended formula (see ``F.multi_similarity_loss``).

    Shape: embeddings (B, D), labels (B), session_ids (B) or None; output ().

    Example:
        >>> loss = MultiSimilarityLoss(alpha=2.0, beta=50.0, lamb=1.0)
        >>> loss(torch.randn(16, 8), torch.randint(0, 4, (16,)))
    """

    def __init__(self, alpha=2.0, beta=50.0, lamb=1.0, eps=0.1, embed_normed=False,
                 easyrec_compat_ms_bug=False, backend="auto"):
        super().__init__()
        self.alpha, self.beta, self.lamb, self.eps = alpha, beta, lamb, eps
        self.embed_normed, self.easyrec_compat_ms_bug = embed_normed, easyrec_compat_ms_bug
        self.backend = backend

    def forward(self, embeddings, labels, session_ids=None):
        return F.multi_similarity_loss(embeddings, labels, session_ids, alpha=self.alpha,
                                       beta=self.beta, lamb=self.lamb, eps=self.eps,
                                       embed_normed=self.embed_normed,
                                       easyrec_compat_ms_bug=self.easyrec_compat_ms_bug,
                                       backend=self.backend)


class MarginRankingLoss(torch.nn.Module):
    """``torch.nn.MarginRankingLoss`` (see ``F.margin_ranking_loss``).

    Shape: input1 (*), input2 (*), target (*) of +1 / -1; output (*) for ``reduction="none"``,
    else ().

    Example:
        >>> loss = MarginRankingLoss(margin=0.1)
        >>> loss(torch.randn(8), torch.randn(8), torch.randint(0, 2, (8,)) * 2.0 - 1)
    """

    def __init__(self, margin=0.0, reduction="mean", backend="auto"):
        super().__init__()
        self.margin, self.reduction, self.backend = margin, reduction, backend

    def forward(self, input1, input2, target):
        return F.margin_ranking_loss(input1, input2, target, self.margin, self.reduction,
                                     backend=self.backend)


class CosineEmbeddingLoss(torch.nn.Module):
    """``torch.nn.CosineEmbeddingLoss`` (see ``F.cosine_embedding_loss``).

    Shape: input1 (N, D) or (D), input2 like input1, target (N) or (); output (N) for
    ``reduction="none"``, else ().

    Example:
        >>> loss = CosineEmbeddingLoss(margin=0.2)
        >>> loss(torch.randn(8, 4), torch.randn(8, 4), torch.randint(0, 2, (8,)) * 2.0 - 1)
    """

    def __init__(self, margin=0.0, reduction="mean", backend="auto"):
        super().__init__()
        self.margin, self.reduction, self.backend = margin, reduction, backend

    def forward(self, input1, input2, target):
        return F.cosine_embedding_loss(input1, input2, target, self.margin, self.reduction,
                                       backend=self.backend)


class TripletMarginLoss(torch.nn.Module):
    """``torch.nn.TripletMarginLoss`` (see ``F.triplet_margin_loss``).

    Shape: anchor, positive, negative (N, D) or (D); output (N) for ``reduction="none"``, else ().

    Example:
        >>> loss = TripletMarginLoss(margin=1.0, p=2.0)
        >>> loss(torch.randn(8, 4), torch.randn(8, 4), torch.randn(8, 4))
    """

    def __init__(self, margin=1.0, p=2.0, eps=1e-6, swap=False, reduction="mean", backend="auto"):
        super().__init__()
        self.margin, self.p, self.eps, self.swap = margin, p, eps, swap
        self.reduction, self.backend = reduction, backend

    def forward(self, anchor, positive, negative):
        return F.triplet_margin_loss(anchor, positive, negative, self.margin, self.p, self.eps,
                                     self.swap, self.reduction, backend=self.backend)


class CosineSimilarityLoss(torch.nn.Module):
    """Keras' ``CosineSimilarity`` loss, ``-l2n(y_true) . l2n(y_pred)`` over the last axis (see
    ``F.cosine_similarity_loss``). Note the argument order: prediction first, as torch losses do.

    Shape: y_pred (*, D), y_true like y_pred; output (*) for ``reduction="none"``, else ().

    Example:
        >>> loss = CosineSimilarityLoss()
        >>> loss(torch.randn(8, 4), torch.randn(8, 4))
    """

    def __init__(self, reduction="mean", backend="auto"):
        super().__init__()
        self.reduction, self.backend = reduction, backend

    def forward(self, y_pred, y_true):
        return F.cosine_similarity_loss(y_pred, y_true, self.reduction, backend=self.backend)


class ContrastiveLoss(torch.nn.Module):
    """Siamese contrastive loss on the Euclidean distance of two embeddings (see
    ``F.contrastive_loss``).

    Shape: input1 (N, D) or (D), input2 like input1, target (N) or () with 1 = similar; output (N)
    for ``reduction="none"``, else ().

    Example:
        >>> loss = ContrastiveLoss(margin=1.0)
        >>> loss(torch.randn(8, 4), torch.randn(8, 4), torch.randint(0, 2, (8,)))
    """

    def __init__(self, margin=1.0, eps=1e-6, reduction="mean", backend="auto"):
        super().__init__()
        self.margin, self.eps, self.reduction, self.backend = margin, eps, reduction, backend

    def forward(self, input1, input2, target):
        return F.contrastive_loss(input1, input2, target, self.margin, self.eps, self.reduction,
                                  backend=self.backend)


class ZILNLoss(torch.nn.Module):
    """EasyRec ZILN_LOSS, zero-inflated lognormal (see ``F.ziln_loss``).

    Shape: logits (B, 3) = (l_p, mu, l_s), labels (B) or (B, 1); output ().

    Example:
        >>> loss = ZILNLoss(max_sigma=5.0)
        >>> loss(torch.randn(16, 3), torch.rand(16) * (torch.rand(16) > 0.5))
    """

    def __init__(self, max_sigma=5.0, mu_reg=0.01, sigma_reg=0.01, class_weight=1.0, reg_weight=1.0,
                 backend="auto"):
        super().__init__()
        self.max_sigma, self.mu_reg, self.sigma_reg = max_sigma, mu_reg, sigma_reg
        self.class_weight, self.reg_weight, self.backend = class_weight, reg_weight, backend

    def forward(self, logits, labels):
        return F.ziln_loss(logits, labels, self.max_sigma, self.mu_reg, self.sigma_reg,
                           self.class_weight, self.reg_weight, backend=self.backend)
