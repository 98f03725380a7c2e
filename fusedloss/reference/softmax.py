"""References for the softmax family: torch's cross-entropy (plus z-loss) and the softmax focal loss.

Computed in ``max(float32, input dtype)``; they return the input's dtype, gradients from autograd.
The class dim is dim 1 of ``[N, C, d...]`` (dim 0 of an unbatched ``[C]``), as in torch.
"""

import math

import torch
import torch.nn.functional as F

from .focal import _opmath


def _classes_last(input: torch.Tensor) -> torch.Tensor:
    """[N, C, d...] -> [N, d..., C]; [C] -> [1, C]."""
    return input.unsqueeze(0) if input.dim() == 1 else input.movedim(1, -1)


def _reduce_rows(loss, denominator, reduction, shape):
    if reduction == "none":
        return loss.reshape(shape)
    total = loss.sum()
    return total if reduction == "sum" else total / denominator


def cross_entropy_reference(input, target, weight=None, ignore_index=-100, reduction="mean",
                            label_smoothing=0.0, z_loss=0.0):
    """``F.cross_entropy`` plus ``z_loss * logsumexp(x)^2`` per (non-ignored) row, reduced with the
    cross-entropy's own denominator (sum of target weights, or the row count)."""
    acc = _opmath(input)
    x = input.to(acc)
    w = None if weight is None else weight.to(acc)
    probs = target.dtype.is_floating_point
    t = target.to(acc) if probs else target.long()
    loss = F.cross_entropy(x, t, weight=w, ignore_index=ignore_index, reduction="none",
                           label_smoothing=label_smoothing)
    rows = _classes_last(x)
    rows = rows.reshape(math.prod(rows.shape[:-1]), rows.shape[-1])
    if probs:
        valid = torch.ones(rows.shape[0], dtype=torch.bool, device=x.device)
        denominator = rows.new_tensor(float(rows.shape[0]))
    else:
        flat_t = t.reshape(-1)
        valid = flat_t != ignore_index
        safe_t = torch.where(valid, flat_t, 0)
        row_w = rows.new_ones(rows.shape[0]) if w is None else w[safe_t]
        denominator = (row_w * valid).sum()
    flat = loss.reshape(-1)
    if z_loss:
        flat = flat + torch.where(valid, z_loss * torch.logsumexp(rows, dim=-1).square(), 0.0)
    shape = loss.shape
    return _reduce_rows(flat, denominator, reduction, shape).to(input.dtype)


def softmax_focal_loss_reference(input, target, gamma=2.0, alpha=None, ignore_index=-100,
                                 label_smoothing=0.0, reduction="mean"):
    """``-sum_c q_c a_c (1 - p_c)^gamma log p_c`` per row, ``p = softmax(x)``,
    ``q = (1 - eps) onehot(y) + eps / C``, ``a`` = alpha (a number for every class, a [C] tensor,
    or 1 when None); ignored rows give 0 and "mean" divides by the number of rows not ignored."""
    acc = _opmath(input)
    rows = _classes_last(input.to(acc))
    c = rows.shape[-1]
    rows = rows.reshape(math.prod(rows.shape[:-1]), c)
    flat_t = target.reshape(-1).long()
    valid = flat_t != ignore_index
    safe_t = torch.where(valid, flat_t, 0)
    logp = torch.log_softmax(rows, dim=-1)
    q = F.one_hot(safe_t, c).to(acc) * (1 - label_smoothing) + label_smoothing / c
    if alpha is None:
        a = rows.new_ones(c)
    elif isinstance(alpha, torch.Tensor):
        a = alpha.to(acc)
    else:
        a = rows.new_full((c,), float(alpha))
    one_minus_p = -torch.expm1(logp)
    per_class = -q * a * one_minus_p.clamp(min=0) ** gamma * logp
    loss = torch.where(valid, per_class.sum(-1), 0.0)
    shape = target.shape
    return _reduce_rows(loss, valid.sum(), reduction, shape).to(input.dtype)
