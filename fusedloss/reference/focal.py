"""References for the binary sigmoid family, written the obvious way (spec sections 1, 2.5, 11).

They compute in ``max(float32, input dtype)`` and return the input's dtype, so the same code is the
float64 truth in tests and the ``backend="reference"`` path for users. Gradients come from autograd.
"""

import numpy as np
import torch
import torch.nn.functional as F


def _opmath(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _as_acc(weight, x: torch.Tensor) -> torch.Tensor:
    """A tensor or Python number as a tensor of x's dtype and device (numbers stay exact in fp64)."""
    if isinstance(weight, torch.Tensor):
        return weight.to(x.device, x.dtype)
    return torch.tensor(weight, dtype=x.dtype, device=x.device)


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.mean()


def sigmoid_focal_loss_reference(input, target, alpha=0.25, gamma=2.0, reduction="none"):
    """torchvision.ops.sigmoid_focal_loss: ``a_t * (1 - p_t)^gamma * ce(x, t)``; alpha < 0 disables a_t."""
    acc = _opmath(input)
    x, t = input.to(acc), target.to(acc)
    p = torch.sigmoid(x)
    ce = F.binary_cross_entropy_with_logits(x, t, reduction="none")
    p_t = p * t + (1 - p) * (1 - t)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * t + (1 - alpha) * (1 - t)) * loss
    return _reduce(loss, reduction).to(input.dtype)


def binary_cross_entropy_with_logits_reference(
    input, target, weight=None, pos_weight=None, reduction="mean", label_smoothing=0.0
):
    """torch's BCE-with-logits on the smoothed target ``t (1 - eps) + eps / 2``."""
    acc = _opmath(input)
    x, t = input.to(acc), target.to(acc)
    if label_smoothing > 0:
        t = t * (1 - label_smoothing) + 0.5 * label_smoothing
    w = None if weight is None else _as_acc(weight, x)
    pw = None if pos_weight is None else pos_weight.to(acc)
    loss = F.binary_cross_entropy_with_logits(x, t, weight=w, pos_weight=pw, reduction=reduction)
    return loss.to(input.dtype)


def ohem_k(n: int, ratio: float) -> int:
    """EasyRec's ``k = rint(float32(n) * float32(ratio))``, rounding half to even."""
    return int(np.rint(np.float32(n) * np.float32(ratio)))


def ohem_mean_reference(weighted_loss: torch.Tensor, ratio: float) -> torch.Tensor:
    """Spec 1.3: mean of the strictly positive values among the top-k (ties: lower index first).

    NaN when nothing survives (k = 0, empty input, or all top-k values <= 0).
    """
    flat = weighted_loss.reshape(-1)
    k = ohem_k(flat.numel(), ratio)
    order = torch.sort(flat.detach(), descending=True, stable=True).indices[:k]
    top = flat[order]
    keep = top[top.detach() > 0]
    return keep.sum() / keep.numel() if keep.numel() else flat.sum() * float("nan")


def binary_focal_loss_reference(
    input, target, gamma=2.0, alpha=None, label_smoothing=0.0, weight=None, ohem_ratio=1.0
):
    """EasyRec BINARY_FOCAL_LOSS (spec 2.5).

    ``v = (1 - p_t)^gamma * a_t * w`` with ``p = clip(sigmoid(x), 1e-7, 1 - 1e-7)`` and raw labels,
    ``loss = SBNZ(ce(x, t'), v) = sum(v * ce) / #{v != 0}`` (0 if none) when ``ohem_ratio == 1``,
    else the OHEM mean of ``v * ce``. The modulating factor is not detached.
    """
    acc = _opmath(input)
    x, t = input.to(acc), target.to(acc)
    p = torch.sigmoid(x).clamp(1e-7, 1 - 1e-7)
    p_t = t * p + (1 - t) * (1 - p)
    v = (1 - p_t) ** gamma
    if alpha is not None:
        v = v * (alpha * t + (1 - alpha) * (1 - t))
    if weight is not None:
        v = v * _as_acc(weight, x)
    v = v.expand(x.shape)
    z = t * (1 - label_smoothing) + 0.5 * label_smoothing if label_smoothing > 0 else t
    weighted = v * F.binary_cross_entropy_with_logits(x, z, reduction="none")
    if ohem_ratio == 1.0:
        nz = (v != 0).sum()
        loss = torch.where(nz > 0, weighted.sum() / nz.clamp(min=1), weighted.sum() * 0)
    else:
        loss = ohem_mean_reference(weighted, ohem_ratio)
    return loss.to(input.dtype)
