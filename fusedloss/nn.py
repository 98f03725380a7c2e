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
