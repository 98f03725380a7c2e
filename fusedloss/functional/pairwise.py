"""In-batch pairwise session losses of EasyRec (spec sections 1.4 and 3), at O(B) extra memory.

Common to all four: ``input`` [B] scores, ``target`` [B] graded labels (float, int or bool),
``session_ids`` [B] integers in any order and with any values (None: one session, all pairs).
Pairs (i, j) need ``y_i > y_j`` and the same session; the pair weight is ``w_i``, the weight of the
higher-labelled item (``weight``: None, a number, or a [B] tensor); the temperature ``T`` divides
the scores before the difference. The loss is SBNZ over pairs, ``sum(v l) / #{v != 0}`` (0 with no
pair), or with ``ohem_ratio < 1`` EasyRec's OHEM over the pairs' weighted losses (NaN when nothing
survives). Backends other than ``reference`` never build a B x B tensor.

OHEM on the fused backends ranks pairs by their weighted loss in the compute dtype (float32, or
float64 for float64 input, exactly), then by row-major (i, j) position, as the reference does.
Scores are differentiated; target, session_ids and weight are not (a weight that requires grad
sends ``auto`` to the reference).

The fused backends evaluate each pair once and add its gradient to both items. On CUDA tensors
(``cuda`` and ``triton``) the second item's share is added with atomics, so the gradient's last
bits may vary between runs; under ``torch.use_deterministic_algorithms(True)`` they evaluate each
pair from both sides instead (deterministic, twice the work). The ``cpu`` backend is deterministic
and does not depend on the thread count.
"""

import torch

from fusedloss import reference
from fusedloss._validate import as_weight, check_input, check_number, check_same_device
from fusedloss.ops import _backends
from fusedloss.ops import pairwise as _ops


def _check(input, target, session_ids, weight, temperature, ohem_ratio=1.0):
    check_input(input)
    if input.dim() != 1:
        raise ValueError(f"input must be 1-D scores [B], got shape {tuple(input.shape)}")
    if not isinstance(target, torch.Tensor):
        raise TypeError(f"target must be a torch.Tensor, got {type(target).__name__}")
    if target.dtype.is_complex:
        raise TypeError(f"target must be a real or bool tensor, got {target.dtype}")
    if target.shape != input.shape:
        raise ValueError(f"target must have the input's shape {tuple(input.shape)}, got {tuple(target.shape)}")
    check_same_device("target", input, target)
    if session_ids is not None:
        if not isinstance(session_ids, torch.Tensor):
            raise TypeError(f"session_ids must be None or an integer tensor, got {type(session_ids).__name__}")
        if session_ids.dtype.is_floating_point or session_ids.dtype.is_complex or session_ids.dtype == torch.bool:
            raise TypeError(f"session_ids must be an integer tensor, got {session_ids.dtype}")
        if session_ids.shape != input.shape:
            raise ValueError(
                f"session_ids must have the input's shape {tuple(input.shape)}, got {tuple(session_ids.shape)}"
            )
        check_same_device("session_ids", input, session_ids)
    weight = as_weight("weight", weight, input)
    if weight is not None and weight.dim() > 1:
        raise ValueError(f"weight must be a number, a 0-d or a [B] tensor, got shape {tuple(weight.shape)}")
    check_number("temperature", temperature, lo=0.0, lo_open=True)
    check_number("ohem_ratio", ohem_ratio, lo=0.0, hi=1.0, lo_open=True)
    return weight


def _hinge_margin(hinge_margin):
    if hinge_margin is None:
        return 0, 0.0
    return _ops.HAS_HINGE_MARGIN, check_number("hinge_margin", hinge_margin)


def pairwise_loss(input, target, session_ids=None, *, weight=None, temperature=1.0, margin=0.0,
                  backend="auto"):
    """PAIR_WISE_LOSS: ``l_ij = softplus(-((s_i - s_j)/T - margin))``, SBNZ over pairs.

    Defaults: temperature 1.0 (> 0), margin 0.0. No OHEM (EasyRec has none for this loss).
    """
    weight = _check(input, target, session_ids, weight, temperature)
    margin = check_number("margin", margin)
    name = _backends.choose(backend, input, "pairwise_fwd", target, weight)
    if name == "reference":
        return reference.pairwise_loss_reference(input, target, session_ids, weight, temperature, margin)
    return _ops.run_pairwise(name, input, target, session_ids, weight, kind="pair_wise",
                             temperature=temperature, margin=margin)


def pairwise_logistic_loss(input, target, session_ids=None, *, weight=None, temperature=1.0,
                           hinge_margin=None, use_label_margin=False, ohem_ratio=1.0, backend="auto"):
    """PAIRWISE_LOGISTIC_LOSS (RankNet): ``l_ij = softplus(-(d_ij - mu_ij))``, ``d_ij = (s_i - s_j)/T``.

    ``mu_ij = (y_i - y_j)/T`` with ``use_label_margin`` (labels are divided by T), else
    ``hinge_margin`` when set (a shift inside the softplus, not a hinge), else 0.
    Defaults: temperature 1.0, hinge_margin None, use_label_margin False, ohem_ratio 1.0.
    """
    weight = _check(input, target, session_ids, weight, temperature, ohem_ratio)
    flags, h = _hinge_margin(hinge_margin)
    flags |= _ops.USE_LABEL_MARGIN if use_label_margin else 0
    name = _backends.choose(backend, input, "pairwise_fwd", target, weight)
    if name == "reference":
        return reference.pairwise_logistic_loss_reference(
            input, target, session_ids, weight, temperature, hinge_margin, use_label_margin, ohem_ratio)
    return _ops.run_pairwise(name, input, target, session_ids, weight, kind="logistic", flags=flags,
                             temperature=temperature, hinge_margin=h, ohem_ratio=ohem_ratio)


def pairwise_focal_loss(input, target, session_ids=None, *, weight=None, temperature=1.0, gamma=2.0,
                        alpha=None, hinge_margin=None, ohem_ratio=1.0, backend="auto"):
    """PAIRWISE_FOCAL_LOSS: EasyRec's binary focal loss on ``d_ij = (s_i - s_j)/T`` with label 1.

    Per pair ``a (1 - p)^gamma softplus(-d_ij)``, ``p = clip(sigmoid(d_ij), 1e-7, 1 - 1e-7)``,
    ``a = alpha`` if set else 1; the SBNZ denominator counts pairs with nonzero
    ``a (1 - p)^gamma w_i``. ``hinge_margin`` is a filter: only pairs with ``d_ij < hinge_margin``.
    Defaults: temperature 1.0, gamma 2.0 (>= 0), alpha None, hinge_margin None, ohem_ratio 1.0.
    """
    weight = _check(input, target, session_ids, weight, temperature, ohem_ratio)
    gamma = check_number("gamma", gamma, lo=0.0)
    if alpha is not None:
        alpha = check_number("alpha", alpha, lo=0.0, hi=1.0)
    flags, h = _hinge_margin(hinge_margin)
    name = _backends.choose(backend, input, "pairwise_fwd", target, weight)
    if name == "reference":
        return reference.pairwise_focal_loss_reference(
            input, target, session_ids, weight, temperature, gamma, alpha, hinge_margin, ohem_ratio)
    return _ops.run_pairwise(name, input, target, session_ids, weight, kind="focal", flags=flags,
                             temperature=temperature, hinge_margin=h, gamma=gamma,
                             alpha=-1.0 if alpha is None else alpha, ohem_ratio=ohem_ratio)


def pairwise_hinge_loss(input, target, session_ids=None, *, weight=None, temperature=1.0, margin=1.0,
                        use_label_margin=True, label_is_logits=True, use_exponent=False,
                        ohem_ratio=1.0, backend="auto"):
    """PAIRWISE_HINGE_LOSS: ``relu(delta_ij)``, or ``relu(exp(clip(delta_ij, -88, 88)) - 1)`` with
    ``use_exponent``; ``delta = (y'_i - y'_j) - (s'_i - s'_j)`` with ``use_label_margin`` (default:
    ``margin`` is then unused) else ``margin - (s'_i - s'_j)``; ``s' = s/T``, ``y' = y/T`` when
    ``label_is_logits`` (default). Pairs with zero hinge loss still count in the SBNZ denominator.

    ``use_exponent`` implements the intended formula, ``s' = sigmoid(s')`` and
    ``y' = sigmoid(y')``. EasyRec's code overwrites the logits with ``sigmoid(sigmoid(labels))``,
    so its loss has no gradient; that bug is not reproduced.
    Defaults: temperature 1.0, margin 1.0, use_label_margin True, label_is_logits True,
    use_exponent False, ohem_ratio 1.0.
    """
    weight = _check(input, target, session_ids, weight, temperature, ohem_ratio)
    margin = check_number("margin", margin)
    flags = ((_ops.USE_LABEL_MARGIN if use_label_margin else 0)
             | (_ops.LABEL_IS_LOGITS if label_is_logits else 0)
             | (_ops.USE_EXPONENT if use_exponent else 0))
    name = _backends.choose(backend, input, "pairwise_fwd", target, weight)
    if name == "reference":
        return reference.pairwise_hinge_loss_reference(
            input, target, session_ids, weight, temperature, margin, use_label_margin,
            label_is_logits, use_exponent, ohem_ratio)
    return _ops.run_pairwise(name, input, target, session_ids, weight, kind="hinge", flags=flags,
                             temperature=temperature, margin=margin, ohem_ratio=ohem_ratio)
