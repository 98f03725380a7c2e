"""Reference for EasyRec's F1_REWEIGHTED_LOSS (``f1_reweight_sigmoid_cross_entropy``, spec 2.6)."""

import torch

from .focal import _opmath


def f1_reweighted_loss_reference(input, target, weight=1.0, f1_beta_square=1.0,
                                 label_smoothing=0.0):
    """Spec 2.6, per column of ``input`` ([B] is taken as [B, 1]):
    ``P = sum y``, ``tp = sum sigmoid(x)`` (over every sample), ``nw = tp / ((b2 - 1) P + tp + 1e-8)``
    (``= tp / (b2 P + N - tn + 1e-8)``), ``c = 1`` where ``y == 1`` else ``nw``; the loss is
    ``SBNZ(ce(x, y'), c w)`` with TF's binary label smoothing ``y' = y (1 - e) + e / 2``. The
    gradient flows through ``nw`` (it is not detached), as in EasyRec."""
    acc = _opmath(input)
    x = input.to(acc)
    y = target.to(acc)
    if x.dim() == 1:
        x, y = x[:, None], y[:, None]
    b = x.shape[0]
    pos = y.sum(0)
    neg = b - pos
    tp = torch.sigmoid(x).sum(0)
    tn = b - tp
    nw = tp / (f1_beta_square * pos + neg - tn + 1e-8)
    c = torch.where(y == 1.0, torch.ones_like(x), nw.expand_as(x))
    w = torch.as_tensor(weight, dtype=acc, device=x.device)
    if w.dim() == 1 and w.shape[0] == b and b != 1:
        w = w[:, None]
    v = c * w.expand_as(x) if x.numel() else c
    ys = y * (1 - label_smoothing) + 0.5 * label_smoothing if label_smoothing > 0 else y
    ce = torch.clamp(x, min=0) - x * ys + torch.log1p(torch.exp(-x.abs()))
    nnz = (v != 0).sum()
    loss = torch.where(nnz > 0, (v * ce).sum() / nnz.clamp(min=1), 0.0)
    return loss.to(input.dtype)
