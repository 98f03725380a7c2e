"""References for the row-wise pair losses: torch's own functions where the semantics are torch's
(margin ranking, cosine embedding, triplet margin), and the formulas of Keras'
``cosine_similarity``, the siamese contrastive loss and AITM's order calibration (spec 5).

Computed in ``max(float32, input dtype)``; returns the input's dtype.
"""

import torch
import torch.nn.functional as TF

from .focal import _opmath
from .sv_softmax import l2_normalize


def _reduce(per, reduction):
    if reduction == "none":
        return per
    return per.sum() if reduction == "sum" else per.mean()


def margin_ranking_loss_reference(input1, input2, target, margin=0.0, reduction="mean"):
    acc = _opmath(input1)
    return TF.margin_ranking_loss(input1.to(acc), input2.to(acc), target.to(acc), margin=margin,
                                  reduction=reduction).to(input1.dtype)


def cosine_embedding_loss_reference(input1, input2, target, margin=0.0, reduction="mean"):
    acc = _opmath(input1)
    return TF.cosine_embedding_loss(input1.to(acc), input2.to(acc), target.to(acc), margin=margin,
                                    reduction=reduction).to(input1.dtype)


def triplet_margin_loss_reference(anchor, positive, negative, margin=1.0, p=2.0, eps=1e-6,
                                  swap=False, reduction="mean"):
    acc = _opmath(anchor)
    return TF.triplet_margin_loss(anchor.to(acc), positive.to(acc), negative.to(acc), margin=margin,
                                  p=p, eps=eps, swap=swap, reduction=reduction).to(anchor.dtype)


def cosine_similarity_loss_reference(y_pred, y_true, reduction="mean"):
    """Keras ``cosine_similarity(y_true, y_pred, axis=-1)``: ``-sum(l2n(y_true) * l2n(y_pred))``."""
    acc = _opmath(y_pred)
    per = -(l2_normalize(y_true.to(acc)) * l2_normalize(y_pred.to(acc))).sum(-1)
    return _reduce(per, reduction).to(y_pred.dtype)


def contrastive_loss_reference(input1, input2, target, margin=1.0, eps=1e-6, reduction="mean"):
    """``y d^2 + (1 - y) max(margin - d, 0)^2`` with ``d = ||input1 - input2 + eps||_2``."""
    acc = _opmath(input1)
    w = input1.to(acc) - input2.to(acc) + eps
    d2 = w.square().sum(-1)
    y = target.to(acc)
    hinge = (margin - torch.sqrt(d2)).clamp(min=0)
    return _reduce(y * d2 + (1 - y) * hinge.square(), reduction).to(input1.dtype)


def order_calibrate_loss_reference(probs, relation_probs, weight=1.0):
    """AITM: ``weight * sum_r mean(relu(probs - relation_probs[r]))`` (spec 5)."""
    acc = _opmath(probs)
    total = sum(torch.relu(probs.to(acc) - r.to(acc)).mean() for r in relation_probs)
    return (weight * total).to(probs.dtype)
