"""References for the pointwise family (spec 2.3, 2.4 and the seeds' generic losses), written with
torch's own functions where torch has the loss and as formulas otherwise.

Computed in ``max(float32, input dtype)``; they return the input's dtype, gradients from autograd.
"""

import math

import torch
import torch.nn.functional as F

from .focal import _opmath

REDUCTIONS = ("none", "mean", "sum", "sum_by_nonzero_weights")


def elementwise_loss(kind: str, x: torch.Tensor, y: torch.Tensor, param: float = 0.0) -> torch.Tensor:
    """The unreduced loss of ``kind`` (names as in fusedloss.ops.pointwise.KINDS)."""
    d = x - y
    if kind == "l1":
        return F.l1_loss(x, y, reduction="none")
    if kind == "mse":
        return F.mse_loss(x, y, reduction="none")
    if kind == "huber":
        return F.huber_loss(x, y, reduction="none", delta=param)
    if kind == "smooth_l1":
        return F.smooth_l1_loss(x, y, reduction="none", beta=param)
    if kind == "log_cosh":
        ad = d.abs()  # log cosh d: exact near 0 (log1p of cosh - 1), overflow-free for large |d|
        near = ad < 1
        return torch.where(near, torch.log1p(2 * torch.sinh(torch.where(near, d, 0.0) / 2).square()),
                           ad + F.softplus(-2 * ad) - math.log(2.0))
    if kind == "mape":
        return 100 * d.abs() / y.abs().clamp(min=param)
    if kind == "hinge":
        return (1 - y * x).clamp(min=0)
    if kind == "squared_hinge":
        return (1 - y * x).clamp(min=0).square()
    if kind == "exponential":
        return torch.exp(-y * x)
    if kind == "sigmoid_mse":
        return (torch.sigmoid(x) - y).square()
    if kind == "log_loss":
        return -y * torch.log(x + param) - (1 - y) * torch.log(1 - x + param)
    if kind == "kl_div":
        return F.kl_div(x, y, reduction="none")
    if kind == "kl_div_log_target":
        return F.kl_div(x, y, reduction="none", log_target=True)
    raise ValueError(f"unknown pointwise kind {kind!r}")


def pointwise_loss_reference(kind, input, target, param=0.0, weight=None,
                             reduction="mean") -> torch.Tensor:
    """``w * loss(input, target)``, the target rounded to the input's dtype first, reduced: "none", "sum", "mean" (over elements) or
    "sum_by_nonzero_weights" (sum / number of nonzero broadcast weights; 0 when there is none)."""
    acc = _opmath(input)
    # the target is read in the input's dtype, as the fused op takes it
    x, y = input.to(acc), target.to(input.dtype).to(acc)
    loss = elementwise_loss(kind, x, y, param)
    if weight is not None:
        w = torch.as_tensor(weight, dtype=acc, device=x.device).to(acc).expand(x.shape)
        loss = loss * w
    else:
        w = torch.ones_like(x)
    if reduction == "none":
        out = loss
    elif reduction == "sum":
        out = loss.sum()
    elif reduction == "mean":
        out = loss.mean()
    else:
        count = (w != 0).sum()
        out = torch.where(count > 0, loss.sum() / count.clamp(min=1), 0.0)
    return out.to(input.dtype)
