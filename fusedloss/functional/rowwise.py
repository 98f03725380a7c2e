"""Row-wise pair losses: torch's ``margin_ranking_loss``, ``cosine_embedding_loss`` and
``triplet_margin_loss``, Keras' ``cosine_similarity``, the siamese contrastive loss and AITM's
ORDER_CALIBRATE_LOSS (spec 5).

Each row's loss depends on a few of its sums (a dot product, two squared norms, or p-norm
distances); the fused backends read each row once, write its gradients in a second sweep over the
row, and keep no [N, D] intermediate. Every float input is differentiated (targets are not: a
target that requires grad sends ``auto`` to the reference).
"""

import math

import torch

from fusedloss import reference
from fusedloss._validate import check_choice, check_number, check_same_device
from fusedloss.ops import _backends
from fusedloss.ops.rowwise import REDUCTIONS, run_rowwise


def _check_pair(names, tensors):
    first = tensors[0]
    _check_float(names[0], first)
    for name, t in zip(names[1:], tensors[1:]):
        _check_float(name, t)
        if t.shape != first.shape:
            raise ValueError(f"{name} must have {names[0]}'s shape {tuple(first.shape)}, got "
                             f"{tuple(t.shape)}")
        if t.dtype != first.dtype:
            raise TypeError(f"{name} must have {names[0]}'s dtype {first.dtype}, got {t.dtype}")
        if t.device != first.device:
            raise ValueError(f"{name} is on device {t.device} but {names[0]} is on device {first.device}")


def _check_float(name, t):
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        raise TypeError(f"{name} must be float16, bfloat16, float32 or float64, got {t.dtype}")


def _check_target(target, n, ref, *, shape=None):
    if not isinstance(target, torch.Tensor):
        raise TypeError(f"target must be a torch.Tensor, got {type(target).__name__}")
    if target.dtype.is_complex:
        raise TypeError(f"target must be a real or bool tensor, got {target.dtype}")
    want = shape if shape is not None else (n,)
    if tuple(target.shape) != tuple(want):
        raise ValueError(f"target must have shape {tuple(want)}, got {tuple(target.shape)}")
    check_same_device("target", ref, target, "input1")


def _rows(x: torch.Tensor) -> torch.Tensor:
    """[N, D] rows of a [D] (one row) or [N, D] tensor."""
    return x.reshape(1, -1) if x.dim() == 1 else x


def _backend(backend, first, target):
    return _backends.choose(backend, first, "rowwise_fwd", target)


def margin_ranking_loss(input1, input2, target, margin=0.0, reduction="mean", *, backend="auto"):
    """torch's ``margin_ranking_loss``: ``max(0, -y (x1 - x2) + margin)`` element-wise.

    input1, input2: one shape (any), float16/bfloat16/float32/float64; target: that shape, values
    +1 / -1 (any float works). reduction "mean" (default; NaN for no element), "sum" or "none".
    """
    _check_pair(("input1", "input2"), (input1, input2))
    _check_target(target, input1.numel(), input1, shape=input1.shape)
    margin = check_number("margin", margin)
    check_choice("reduction", reduction, tuple(REDUCTIONS))
    name = _backend(backend, input1, target)
    if name == "reference":
        return reference.margin_ranking_loss_reference(input1, input2, target, margin, reduction)
    loss = run_rowwise(name, input1.reshape(-1, 1), input2.reshape(-1, 1), target=target,
                       kind="margin_ranking", margin=margin, reduction=reduction)
    return loss.reshape(input1.shape) if reduction == "none" else loss


def order_calibrate_loss(probs, relation_probs, weight=1.0, *, backend="auto"):
    """AITM's ORDER_CALIBRATE_LOSS (spec 5): ``weight * sum_r mean(relu(p_t - p_r))``.

    probs: the tower's probabilities p_t (sigmoid [B], or the softmax matrix [B, C]: the mean runs
    over every entry); relation_probs: a tensor or a list of tensors p_r of probs' shape (the
    upstream towers of ``relation_tower_names``). Both sides receive gradient (no stop-gradient).
    ``weight``: the loss's weight (a number). An empty list gives 0 (EasyRec: the loss does not
    exist). Not multiplied by sample weights or task weights, as in EasyRec.
    """
    if isinstance(relation_probs, torch.Tensor):
        relation_probs = [relation_probs]
    if not isinstance(relation_probs, (list, tuple)):
        raise TypeError(f"relation_probs must be a tensor or a list of tensors, got "
                        f"{type(relation_probs).__name__}")
    _check_float("probs", probs)
    for k, r in enumerate(relation_probs):
        _check_pair(("probs", f"relation_probs[{k}]"), (probs, r))
    weight = check_number("weight", weight)
    total = torch.zeros((), dtype=probs.dtype, device=probs.device)
    if not relation_probs:
        return total
    name = _backend(backend, probs, None)
    if name == "reference":
        return reference.order_calibrate_loss_reference(probs, relation_probs, weight)
    for r in relation_probs:
        total = total + run_rowwise(name, probs.reshape(-1, 1), r.reshape(-1, 1),
                                    kind="order_calibrate", reduction="mean")
    return total * weight


def cosine_embedding_loss(input1, input2, target, margin=0.0, reduction="mean", *,
                          backend="auto"):
    """torch's ``cosine_embedding_loss``: ``1 - cos`` for y = 1, ``max(0, cos - margin)`` for
    y = -1 (0 for other targets), ``cos = x1.x2 / sqrt((|x1|^2 + 1e-12)(|x2|^2 + 1e-12))``.

    input1, input2: [N, D] or [D]; target [N] (or 0-d for [D] inputs). reduction as torch's.
    """
    _check_pair(("input1", "input2"), (input1, input2))
    if input1.dim() not in (1, 2):
        raise ValueError(f"input1 must be [N, D] or [D], got shape {tuple(input1.shape)}")
    _check_target(target, None, input1, shape=input1.shape[:-1])
    margin = check_number("margin", margin)
    check_choice("reduction", reduction, tuple(REDUCTIONS))
    name = _backend(backend, input1, target)
    if name == "reference":
        return reference.cosine_embedding_loss_reference(input1, input2, target, margin, reduction)
    loss = run_rowwise(name, _rows(input1), _rows(input2), target=target, kind="cosine_embedding",
                       margin=margin, reduction=reduction)
    return loss.reshape(target.shape) if reduction == "none" else loss


def cosine_similarity_loss(y_pred, y_true, reduction="mean", *, backend="auto"):
    """Keras' ``cosine_similarity(y_true, y_pred, axis=-1)`` loss: ``-l2n(y_true) . l2n(y_pred)``
    per row (``l2n``: TF's l2_normalize, ``x / sqrt(max(sum x^2, 1e-12))``), between -1 and 1.

    y_pred, y_true: [..., D], one shape; both differentiated. reduction "mean" (Keras'
    SUM_OVER_BATCH_SIZE, default), "sum" or "none" (shape [...]).
    """
    _check_pair(("y_pred", "y_true"), (y_pred, y_true))
    if y_pred.dim() < 1:
        raise ValueError("y_pred must have at least one dimension (the vectors' axis)")
    check_choice("reduction", reduction, tuple(REDUCTIONS))
    name = _backend(backend, y_pred, None)
    if name == "reference":
        return reference.cosine_similarity_loss_reference(y_pred, y_true, reduction)
    d = y_pred.shape[-1]
    n = math.prod(y_pred.shape[:-1])
    loss = run_rowwise(name, y_pred.reshape(n, d), y_true.reshape(n, d), kind="cosine_similarity",
                       reduction=reduction)
    return loss.reshape(y_pred.shape[:-1]) if reduction == "none" else loss


def triplet_margin_loss(anchor, positive, negative, margin=1.0, p=2.0, eps=1e-6, swap=False,
                        reduction="mean", *, backend="auto"):
    """torch's ``triplet_margin_loss``: ``max(d(a, p) - d(a, n) + margin, 0)``,
    ``d(u, v) = ||u - v + eps||_p``; ``swap`` takes ``min(d(a, n), d(p, n))`` (at an exact tie the
    gradient goes to d(a, n), where torch splits it).

    anchor, positive, negative: [N, D] or [D], one shape. p >= 1 (default 2), eps >= 0.
    """
    _check_pair(("anchor", "positive", "negative"), (anchor, positive, negative))
    if anchor.dim() not in (1, 2):
        raise ValueError(f"anchor must be [N, D] or [D], got shape {tuple(anchor.shape)}")
    margin = check_number("margin", margin)
    p = check_number("p", p, lo=1.0)
    eps = check_number("eps", eps, lo=0.0)
    if not isinstance(swap, bool):
        raise TypeError(f"swap must be a bool, got {type(swap).__name__}")
    check_choice("reduction", reduction, tuple(REDUCTIONS))
    name = _backend(backend, anchor, None)
    if name == "reference":
        return reference.triplet_margin_loss_reference(anchor, positive, negative, margin, p, eps,
                                                       swap, reduction)
    loss = run_rowwise(name, _rows(anchor), _rows(positive), _rows(negative), kind="triplet",
                       margin=margin, p=p, eps=eps, swap=swap, reduction=reduction)
    return loss.reshape(anchor.shape[:-1]) if reduction == "none" else loss


def contrastive_loss(input1, input2, target, margin=1.0, eps=1e-6, reduction="mean", *,
                     backend="auto"):
    """Siamese contrastive loss (Hadsell et al. 2006; tfa's ``contrastive_loss`` on the distance
    ``d = ||x1 - x2 + eps||_2``, torch's pairwise_distance): ``y d^2 + (1 - y) max(margin - d, 0)^2``,
    y = 1 for a similar pair, 0 for a dissimilar one.

    input1, input2: [N, D] or [D]; target [N] (or 0-d), float or int/bool. margin default 1.
    """
    _check_pair(("input1", "input2"), (input1, input2))
    if input1.dim() not in (1, 2):
        raise ValueError(f"input1 must be [N, D] or [D], got shape {tuple(input1.shape)}")
    _check_target(target, None, input1, shape=input1.shape[:-1])
    margin = check_number("margin", margin)
    eps = check_number("eps", eps, lo=0.0)
    check_choice("reduction", reduction, tuple(REDUCTIONS))
    name = _backend(backend, input1, target)
    if name == "reference":
        return reference.contrastive_loss_reference(input1, input2, target, margin, eps, reduction)
    loss = run_rowwise(name, _rows(input1), _rows(input2), target=target, kind="contrastive",
                       margin=margin, eps=eps, reduction=reduction)
    return loss.reshape(target.shape) if reduction == "none" else loss
