"""References for the multilabel family (spec section 10 and the multilabel focal loss).

The ``*_reference`` functions are the truth: they compute in ``max(float32, input dtype)`` and
return the input's dtype, gradients from autograd. The ``*_bert4keras`` functions are the eager code
users write today (bert4keras's formulas, ported to torch): the benchmark's eager peers, and a check
that the truth agrees with them where they are exact.
"""

import torch

from .focal import _opmath, _reduce, sigmoid_focal_loss_reference

_INF = float("inf")


def _lse_with_zero(terms: torch.Tensor) -> torch.Tensor:
    """log(1 + sum exp(terms)) over the last dim (-inf terms are absent)."""
    zeros = terms.new_zeros(terms.shape[:-1] + (1,))
    return torch.logsumexp(torch.cat([terms, zeros], dim=-1), dim=-1)


def multilabel_categorical_crossentropy_reference(input, target, reduction="mean"):
    """``log(1 + sum_i (1 - y_i) e^{s_i}) + log(1 + sum_i y_i e^{-s_i})`` per row (last dim),
    entries with ``s_i = -inf`` absent; written in log weights as current bert4keras does."""
    acc = _opmath(input)
    s, y = input.to(acc), target.to(acc)
    present = s != -_INF
    s0 = torch.where(present, s, 0.0)
    neg = torch.where(present & (y < 1), s0 + torch.log1p(-y.clamp(max=1)), -_INF)
    pos = torch.where(present & (y > 0), -s0 + torch.log(y.clamp(min=0)), -_INF)
    loss = _lse_with_zero(neg) + _lse_with_zero(pos)
    return _reduce(loss, reduction).to(input.dtype)


def sparse_multilabel_categorical_crossentropy_reference(input, positive_index, mask_zero=False,
                                                         reduction="mean"):
    """Sparse form: the positive sum takes each listed index once per listing; the negative sum runs
    over the classes not listed, computed directly. With ``mask_zero`` index 0 is padding and class 0
    is in neither sum."""
    acc = _opmath(input)
    s = input.to(acc)
    idx = positive_index.long()
    valid = idx != 0 if mask_zero else torch.ones_like(idx, dtype=torch.bool)
    count = torch.zeros(s.shape, dtype=acc, device=s.device).scatter_add_(-1, idx, valid.to(acc))
    negative = count == 0
    if mask_zero and s.shape[-1] > 0:
        negative[..., 0] = False
    pos = torch.where(valid, -s.gather(-1, idx), -_INF)
    neg = torch.where(negative, s, -_INF)
    loss = _lse_with_zero(pos) + _lse_with_zero(neg)
    return _reduce(loss, reduction).to(input.dtype)


def multilabel_focal_loss_reference(input, target, alpha=0.25, gamma=2.0, reduction="mean"):
    """torchvision's sigmoid focal loss per label, averaged over the labels (last dim)."""
    acc = _opmath(input)
    per_label = sigmoid_focal_loss_reference(input.to(acc), target, alpha, gamma, "none")
    return _reduce(per_label.mean(-1), reduction).to(input.dtype)


def multilabel_categorical_crossentropy_bert4keras(input, target):
    """The common port of bert4keras's first version: ``(1 - 2y) s`` masked with +-1e12 and a
    concatenated zero column. Hard 0/1 labels only; returns the per-row loss."""
    t = target.to(input.dtype)
    signed = (1 - 2 * t) * input
    zeros = torch.zeros_like(signed[..., :1])
    neg = torch.cat([signed - t * 1e12, zeros], dim=-1)
    pos = torch.cat([signed - (1 - t) * 1e12, zeros], dim=-1)
    return torch.logsumexp(neg, dim=-1) + torch.logsumexp(pos, dim=-1)


def sparse_multilabel_categorical_crossentropy_bert4keras(input, positive_index, mask_zero=False):
    """bert4keras's sparse form: the negative sum as ``all + log(clip(1 - e^{LSE(pos) - all}))``,
    so it hits the 1e-7 clip once the positives dominate. Returns the per-row loss."""
    zeros = torch.zeros_like(input[..., :1])
    pred = torch.cat([input, zeros], dim=-1)
    idx = positive_index.long()
    if mask_zero:
        infs = zeros + _INF
        pred = torch.cat([infs, pred[..., 1:]], dim=-1)
    pos_gathered = pred.gather(-1, idx)
    pos_loss = torch.logsumexp(-torch.cat([pos_gathered, zeros], dim=-1), dim=-1)
    if mask_zero:
        pred = torch.cat([-infs, pred[..., 1:]], dim=-1)
        pos_gathered = pred.gather(-1, idx)
    all_loss = torch.logsumexp(pred, dim=-1)
    aux = torch.clamp(1 - torch.exp(torch.logsumexp(pos_gathered, dim=-1) - all_loss), 1e-7, 1)
    return pos_loss + all_loss + torch.log(aux)
