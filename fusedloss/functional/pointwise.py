"""Pointwise losses: torch's regression losses and KL divergence, Keras's log-cosh, MAPE, hinge,
squared hinge and exponential losses, and EasyRec's L2_LOSS, SIGMOID_L2_LOSS and CROSS_ENTROPY_LOSS.

All share one fused elementwise kernel (csrc/pointwise/pointwise_math.h): per element, the loss and
its derivative in one pass. ``input`` and ``target`` have one shape (the target is read in the
input's dtype: a float32 target of an fp16 input is rounded to fp16, where torch would promote); ``weight`` (None, a number, or
a tensor broadcastable to the input) multiplies each element's loss; reductions are ``"none"``,
``"sum"``, ``"mean"`` (over elements) and ``"sum_by_nonzero_weights"`` (TF's SUM_BY_NONZERO_WEIGHTS:
the sum over the number of nonzero weights, 0 when there is none).
"""

import torch
from torch.nn import _reduction as _Reduction

from fusedloss import reference
from fusedloss._validate import as_weight, check_choice, check_input, check_number, check_same_device
from fusedloss.ops import _backends
from fusedloss.ops.pointwise import REDUCTIONS, run_pointwise


def _pointwise(kind, input, target, *, param=0.0, weight=None, reduction="mean", backend="auto"):
    check_input(input)
    if not isinstance(target, torch.Tensor):
        raise TypeError(f"target must be a torch.Tensor, got {type(target).__name__}")
    if target.dtype.is_complex:
        raise TypeError(f"target must be a real or bool tensor, got {target.dtype}")
    if target.shape != input.shape:
        raise ValueError(f"target must have the input's shape {tuple(input.shape)}, got "
                         f"{tuple(target.shape)}")
    check_same_device("target", input, target)
    weight = as_weight("weight", weight, input)
    check_choice("reduction", reduction, tuple(REDUCTIONS))
    name = _backends.choose(backend, input, "pointwise_fwd", target, weight)
    if name == "reference":
        return reference.pointwise_loss_reference(kind, input, target, param, weight, reduction)
    return run_pointwise(name, kind, input, target, param, weight, reduction)


def _legacy(size_average, reduce, reduction):
    if size_average is not None or reduce is not None:
        return _Reduction.legacy_get_string(size_average, reduce)
    return reduction


def _signed_labels(target):
    """Keras's hinge convention: labels that are all 0 or 1 become -1 or 1 (no host sync)."""
    t = target.to(torch.float64 if target.dtype == torch.float64 else torch.float32)
    binary = ((t == 0) | (t == 1)).all()
    return torch.where(binary, 2 * t - 1, t)


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean", *, weight=None,
            backend="auto"):
    """``torch.nn.functional.l1_loss``: ``|x - y|`` (gradient ``sign(x - y)``, 0 at a tie), fused;
    plus ``weight`` and ``reduction="sum_by_nonzero_weights"``."""
    return _pointwise("l1", input, target, weight=weight,
                      reduction=_legacy(size_average, reduce, reduction), backend=backend)


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", *, weight=None,
             backend="auto"):
    """``torch.nn.functional.mse_loss``: ``(x - y)^2``, fused; plus ``weight`` and SBNZ."""
    return _pointwise("mse", input, target, weight=weight,
                      reduction=_legacy(size_average, reduce, reduction), backend=backend)


def huber_loss(input, target, reduction="mean", delta=1.0, *, weight=None, backend="auto"):
    """``torch.nn.functional.huber_loss``: ``d^2 / 2`` for ``|d| <= delta``, else
    ``delta (|d| - delta / 2)``, d = x - y. delta > 0 (default 1)."""
    delta = check_number("delta", delta, lo=0.0, lo_open=True)
    return _pointwise("huber", input, target, param=delta, weight=weight, reduction=reduction,
                      backend=backend)


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0, *,
                   weight=None, backend="auto"):
    """``torch.nn.functional.smooth_l1_loss``: ``d^2 / (2 beta)`` for ``|d| < beta``, else
    ``|d| - beta / 2``; beta >= 0 (0: the L1 loss). Default 1."""
    beta = check_number("beta", beta, lo=0.0)
    return _pointwise("smooth_l1", input, target, param=beta, weight=weight,
                      reduction=_legacy(size_average, reduce, reduction), backend=backend)


def log_cosh_loss(input, target, reduction="mean", *, weight=None, backend="auto"):
    """Keras ``log_cosh``: ``log cosh(x - y)``, computed as ``|d| + log1p(e^{-2|d|}) - log 2``
    (no overflow); gradient ``tanh(d)``."""
    return _pointwise("log_cosh", input, target, weight=weight, reduction=reduction,
                      backend=backend)


def mean_absolute_percentage_error(input, target, reduction="mean", epsilon=1e-7, *, weight=None,
                                   backend="auto"):
    """Keras ``MAPE``: ``100 |x - y| / max(|y|, epsilon)`` (input: predictions). epsilon > 0."""
    epsilon = check_number("epsilon", epsilon, lo=0.0, lo_open=True)
    return _pointwise("mape", input, target, param=epsilon, weight=weight, reduction=reduction,
                      backend=backend)


def hinge_loss(input, target, reduction="mean", *, weight=None, backend="auto"):
    """Keras ``hinge``: ``max(1 - y x, 0)`` with labels y in {-1, 1}; labels that are all 0 or 1
    are mapped to -1 or 1 first, as Keras does."""
    return _pointwise("hinge", input, _signed_labels(target) if isinstance(target, torch.Tensor)
                      and not target.dtype.is_complex else target,
                      weight=weight, reduction=reduction, backend=backend)


def squared_hinge_loss(input, target, reduction="mean", *, weight=None, backend="auto"):
    """Keras ``squared_hinge``: ``max(1 - y x, 0)^2``, labels as in ``hinge_loss``."""
    return _pointwise("squared_hinge", input, _signed_labels(target)
                      if isinstance(target, torch.Tensor) and not target.dtype.is_complex else target,
                      weight=weight, reduction=reduction, backend=backend)


def exponential_loss(input, target, reduction="mean", *, weight=None, backend="auto"):
    """The exponential (AdaBoost) loss ``e^{-y x}``, labels as in ``hinge_loss``."""
    return _pointwise("exponential", input, _signed_labels(target)
                      if isinstance(target, torch.Tensor) and not target.dtype.is_complex else target,
                      weight=weight, reduction=reduction, backend=backend)


def kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False, *,
           backend="auto"):
    """``torch.nn.functional.kl_div``: input holds log-probabilities, target probabilities (or
    log-probabilities with ``log_target``); elementwise ``y (log y - x)`` (0 where y = 0) or
    ``e^y (y - x)``. ``reduction="batchmean"`` divides the sum by ``input.size(0)`` (torch's
    mathematically correct mean); "mean" averages over elements, as torch does."""
    reduction = _legacy(size_average, reduce, reduction)
    check_choice("reduction", reduction, ("none", "mean", "sum", "batchmean"))
    kind = "kl_div_log_target" if log_target else "kl_div"
    if reduction != "batchmean":
        return _pointwise(kind, input, target, reduction=reduction, backend=backend)
    total = _pointwise(kind, input, target, reduction="sum", backend=backend)
    return total / input.size(0) if input.dim() > 0 else total


def l2_loss(input, target, weights=1.0, reduction="sum_by_nonzero_weights", *, backend="auto"):
    """EasyRec L2_LOSS (spec 2.3): ``SBNZ((x - y)^2, w)``, w a number or a [B] sample weight."""
    return _pointwise("mse", input, target, weight=weights, reduction=reduction, backend=backend)


def sigmoid_l2_loss(input, target, weights=1.0, reduction="sum_by_nonzero_weights", *,
                    backend="auto"):
    """EasyRec SIGMOID_L2_LOSS (spec 2.3): ``SBNZ((sigmoid(x) - y)^2, w)``; input holds logits."""
    return _pointwise("sigmoid_mse", input, target, weight=weights, reduction=reduction,
                      backend=backend)


def log_loss(input, target, weights=1.0, epsilon=1e-7, reduction="sum_by_nonzero_weights", *,
             backend="auto"):
    """EasyRec CROSS_ENTROPY_LOSS, TF's ``log_loss`` (spec 2.4): ``-y log(p + eps) - (1 - y)
    log(1 - p + eps)`` on probabilities p = input, SBNZ-reduced. epsilon >= 0 (default 1e-7)."""
    epsilon = check_number("epsilon", epsilon, lo=0.0)
    return _pointwise("log_loss", input, target, param=epsilon, weight=weights,
                      reduction=reduction, backend=backend)
