"""Public loss functions: validate, pick a backend, call the fused op (or the reference)."""

import numpy as np
import torch

from fusedloss import reference
from fusedloss._validate import as_weight, check_binary_target, check_choice, check_input, check_number
from fusedloss.ops import _backends
from fusedloss.ops.focal import run_binary_focal

_REDUCTIONS = ("none", "mean", "sum")


def sigmoid_focal_loss(input, target, alpha=0.25, gamma=2.0, reduction="none", *, backend="auto"):
    """Focal loss of RetinaNet with exactly ``torchvision.ops.sigmoid_focal_loss`` semantics.

    ``loss = a_t * (1 - p_t)^gamma * ce(x, t)`` with ``p = sigmoid(x)``,
    ``p_t = p t + (1 - p)(1 - t)``, ``a_t = alpha t + (1 - alpha)(1 - t)`` (no ``a_t`` when
    ``alpha < 0``), ``ce`` the BCE-with-logits; the gradient flows through ``(1 - p_t)^gamma``.

    Args:
        input: logits of any shape, float16/bfloat16/float32/float64.
        target: same shape; float (soft labels allowed), integer or bool 0/1.
        alpha: in [0, 1], or negative to disable the class weight. Default 0.25.
        gamma: >= 0. Default 2.0.
        reduction: ``"none"`` (default, elementwise, input's shape), ``"mean"`` or ``"sum"``.
        backend: ``"auto"``, ``"reference"``, ``"triton"``, ``"cuda"`` or ``"cpu"``.

    Returns the loss in the input's dtype (computed in float32, float64 for float64 input).
    """
    check_input(input)
    check_binary_target(input, target)
    alpha = check_number("alpha", alpha, hi=1.0)
    gamma = check_number("gamma", gamma, lo=0.0)
    check_choice("reduction", reduction, _REDUCTIONS)
    name = _backends.choose(backend, input, "binary_focal_fwd", target)
    if name == "reference":
        return reference.sigmoid_focal_loss_reference(input, target, alpha, gamma, reduction)
    return run_binary_focal(name, input, target, mode="torchvision", alpha=alpha, gamma=gamma,
                            reduction=reduction)


def binary_focal_loss(input, target, gamma=2.0, alpha=None, label_smoothing=0.0, weight=None,
                      ohem_ratio=1.0, *, backend="auto"):
    """EasyRec's BINARY_FOCAL_LOSS (``sigmoid_focal_loss_with_logits``), its semantics exactly.

    Per element, with raw labels ``t`` and ``p = clip(sigmoid(x), 1e-7, 1 - 1e-7)`` (the clip is
    used, and blocks the gradient, in the modulating factor only):
    ``v = (1 - p_t)^gamma * a_t * w`` (``a_t = alpha t + (1 - alpha)(1 - t)`` only if alpha is set),
    ``l = ce(x, t')`` with ``t' = t (1 - eps) + eps / 2``. The loss is
    ``sum(v * l) / #{v != 0}`` (0 if every ``v`` is 0, e.g. an empty batch) when
    ``ohem_ratio == 1``; otherwise OHEM: the mean of the strictly positive values among the
    ``k = rint(float32(N) * float32(ohem_ratio))`` largest ``v * l`` (ties: lower index first; NaN
    if none survive). The gradient flows through ``(1 - p_t)^gamma``.

    Args:
        input: logits of any shape ([B] in EasyRec), float16/bfloat16/float32/float64.
        target: same shape; float, integer or bool.
        gamma: >= 0. Default 2.0.
        alpha: None (default: no class weight) or a float in [0, 1].
        label_smoothing: in [0, 1). Default 0.
        weight: None, a number or a tensor broadcastable to ``input`` (sample weights).
        ohem_ratio: in (0, 1]. Default 1.0 (no OHEM).
        backend: ``"auto"``, ``"reference"``, ``"triton"``, ``"cuda"`` or ``"cpu"``.

    Returns a 0-d loss in the input's dtype.
    """
    check_input(input)
    check_binary_target(input, target)
    gamma = check_number("gamma", gamma, lo=0.0)
    if alpha is not None:
        alpha = check_number("alpha", alpha, lo=0.0, hi=1.0)
    label_smoothing = check_number("label_smoothing", label_smoothing, lo=0.0, hi=1.0, hi_open=True)
    ohem_ratio = check_number("ohem_ratio", ohem_ratio, lo=0.0, hi=1.0, lo_open=True)
    weight = as_weight("weight", weight, input)
    name = _backends.choose(backend, input, "binary_focal_fwd", target, weight)
    if name == "reference":
        return reference.binary_focal_loss_reference(input, target, gamma, alpha, label_smoothing,
                                                     weight, ohem_ratio)
    common = dict(mode="easyrec", alpha=-1.0 if alpha is None else alpha, gamma=gamma,
                  label_smoothing=label_smoothing)
    if ohem_ratio == 1.0:
        return run_binary_focal(name, input, target, weight, reduction="sbnz", **common)
    # OHEM ranks the per-element losses: rank them in float32, not rounded to float16/bfloat16,
    # where ties that the reference does not have would reorder the selection.
    x = input.float() if input.dtype in (torch.float16, torch.bfloat16) else input
    per_element = run_binary_focal(name, x, target, weight, reduction="none", **common)
    return ohem_mean(per_element, ohem_ratio).to(input.dtype)


def ohem_mean(weighted_loss: torch.Tensor, ratio: float) -> torch.Tensor:
    """EasyRec OHEM (spec 1.3) of per-element weighted losses, differentiable through the survivors.

    The k-th largest value comes from ``torch.topk`` (a selection, not a full sort); among values
    equal to it the lowest indices are taken, as TF's ``top_k`` does.
    """
    flat = weighted_loss.reshape(-1)
    k = int(np.rint(np.float32(flat.numel()) * np.float32(ratio)))
    if k == 0:
        return flat.sum() * float("nan")
    values = flat.detach()
    kth = torch.topk(values, k, sorted=False).values.min()
    above = values > kth
    tied = values == kth
    chosen = above | (tied & (tied.cumsum(0) <= k - above.sum()))
    survivors = chosen & (values > 0)
    return (flat * survivors).sum() / survivors.sum()


def binary_cross_entropy_with_logits(input, target, weight=None, pos_weight=None, reduction="mean",
                                     label_smoothing=0.0, *, backend="auto"):
    """``torch.nn.functional.binary_cross_entropy_with_logits`` on the smoothed target.

    ``loss = w * [(1 - z) x + (1 + (pw - 1) z) softplus(-x)]`` with ``z = t (1 - eps) + eps / 2``.

    Args:
        input: logits of any shape, float16/bfloat16/float32/float64.
        target: same shape; float (soft labels allowed), integer or bool 0/1.
        weight: None or a tensor broadcastable to ``input``.
        pos_weight: None or a tensor broadcastable to ``input`` (usually [C]).
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.
        label_smoothing: in [0, 1). Default 0.
        backend: ``"auto"``, ``"reference"``, ``"triton"``, ``"cuda"`` or ``"cpu"``.
    """
    check_input(input)
    check_binary_target(input, target)
    weight = as_weight("weight", weight, input)
    pos_weight = as_weight("pos_weight", pos_weight, input)
    check_choice("reduction", reduction, _REDUCTIONS)
    label_smoothing = check_number("label_smoothing", label_smoothing, lo=0.0, hi=1.0, hi_open=True)
    name = _backends.choose(backend, input, "binary_focal_fwd", target, weight, pos_weight)
    if name == "reference":
        return reference.binary_cross_entropy_with_logits_reference(
            input, target, weight, pos_weight, reduction, label_smoothing)
    return run_binary_focal(name, input, target, weight, pos_weight, mode="bce",
                            label_smoothing=label_smoothing, reduction=reduction)
