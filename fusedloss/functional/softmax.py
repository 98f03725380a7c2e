"""Softmax family: a drop-in ``cross_entropy`` (plus z-loss) and the softmax focal loss."""

import torch
from torch.nn import _reduction as _Reduction

from fusedloss import reference
from fusedloss._validate import check_choice, check_input, check_number, check_same_device
from fusedloss.ops import _backends
from fusedloss.ops.softmax import run_softmax

_REDUCTIONS = ("none", "mean", "sum")
_INDEX_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def _check_logits(input) -> None:
    check_input(input)
    if input.dim() == 0:
        raise ValueError("input must be [C], [N, C] or [N, C, d...] (classes in dim 1), got a 0-d tensor")


def _check_class_target(input, target, ignore_index) -> None:
    if not isinstance(ignore_index, int) or isinstance(ignore_index, bool):
        raise TypeError(f"ignore_index must be an int, got {type(ignore_index).__name__}")
    if target.dtype not in _INDEX_DTYPES:
        raise TypeError(f"target must hold class indices (an integer tensor) or class probabilities "
                        f"(a floating tensor), got {target.dtype}")
    expected = () if input.dim() == 1 else input.shape[:1] + input.shape[2:]
    if tuple(target.shape) != tuple(expected):
        raise ValueError(f"target of class indices must have shape {tuple(expected)} for input of "
                         f"shape {tuple(input.shape)}, got {tuple(target.shape)}")
    check_same_device("target", input, target)
    c = input.shape[0] if input.dim() == 1 else input.shape[1]
    if target.numel() and not torch.compiler.is_compiling():
        bad = ((target < 0) | (target >= c)) & (target != ignore_index)
        if bool(bad.any()):
            raise ValueError(f"target must hold class indices in [0, {c}) or ignore_index "
                             f"({ignore_index}); got {int(target[bad].reshape(-1)[0])}")


def _check_class_weight(name, weight, input):
    if weight is None:
        return None
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"{name} must be None or a tensor, got {type(weight).__name__}")
    if not weight.dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating tensor, got {weight.dtype}")
    c = input.shape[0] if input.dim() == 1 else input.shape[1]
    if weight.dim() != 1 or weight.shape[0] != c:
        raise ValueError(f"{name} must be a 1-D tensor of C = {c} elements, got shape {tuple(weight.shape)}")
    check_same_device(name, input, weight)
    return weight


def _check_inplace(inplace_grad, input, backend_name) -> bool:
    """Whether to overwrite the logits with their gradient (only when one is computed)."""
    if not isinstance(inplace_grad, bool):
        raise TypeError(f"inplace_grad must be a bool, got {type(inplace_grad).__name__}")
    if not (inplace_grad and input.requires_grad and torch.is_grad_enabled()):
        return False
    if backend_name == "reference":
        raise ValueError("inplace_grad=True needs a fused backend ('cpu', 'cuda' or 'triton'); "
                         "the call resolved to 'reference'")
    if not input.is_contiguous():
        raise ValueError("inplace_grad=True needs a contiguous input (its memory receives the "
                         "gradient)")
    return True


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
                  reduction="mean", label_smoothing=0.0, *, z_loss=0.0, inplace_grad=False,
                  backend="auto"):
    """``torch.nn.functional.cross_entropy``, fused, plus an optional z-loss.

    Per row (one example, or one position of [N, C, d...]), with ``lse = logsumexp(x)``:
    class index y: ``(1 - eps) w_y (lse - x_y) + eps/C sum_c w_c (lse - x_c)``; probabilities t:
    ``sum_c w_c q_c (lse - x_c)`` with ``q = t (1 - eps) + eps/C``; plus ``z_loss * lse^2``.
    "mean" divides by the sum of ``w_y`` over rows not ignored (class indices) or by the number
    of rows (probabilities), as torch does; the z-loss term is reduced with the same denominator
    (without a weight: the mean over rows not ignored, as in PaLM). All rows ignored: NaN (torch).

    Args:
        input: logits [C], [N, C] or [N, C, d...], float16/bfloat16/float32/float64.
        target: class indices (integer, [], [N] or [N, d...]; values in [0, C) or ignore_index)
            or class probabilities (the input's shape and dtype).
        weight: None or a [C] floating tensor (rescales each class).
        size_average, reduce: torch's deprecated arguments, mapped to ``reduction`` as torch does.
        ignore_index: target value whose rows count neither in the loss nor in the mean. Default
            -100. Class indices only (torch forbids it with probabilities).
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"`` (the target's shape).
        label_smoothing: in [0, 1]. Default 0.
        z_loss: >= 0; coefficient of ``lse^2`` (keeps the logits' normaliser near 0). Default 0.
        inplace_grad: when input requires grad, overwrite it with the gradient instead of
            allocating one (Liger-style; saves an [N, C] tensor). The logits are garbage afterwards,
            backward runs once, and autograd raises if the logits' producer saved them for its
            own backward. Needs a contiguous input and a fused backend. Default False: the
            caller's logits are never written.
        backend: ``"auto"``, ``"reference"``, ``"triton"``, ``"cuda"`` or ``"cpu"``.

    One pass per row with an online max/sum, the gradient written by the same kernel; no [N, C]
    probability tensor is kept. Returns the loss in the input's dtype.
    """
    if size_average is not None or reduce is not None:
        reduction = _Reduction.legacy_get_string(size_average, reduce)
    _check_logits(input)
    if not isinstance(target, torch.Tensor):
        raise TypeError(f"target must be a torch.Tensor, got {type(target).__name__}")
    if target.dtype.is_floating_point:
        if target.shape != input.shape:
            raise ValueError(f"target of class probabilities must have the input's shape "
                             f"{tuple(input.shape)}, got {tuple(target.shape)}")
        if target.dtype != input.dtype:
            raise TypeError(f"target of class probabilities must have the input's dtype "
                            f"{input.dtype}, got {target.dtype}")
        check_same_device("target", input, target)
        if ignore_index != -100:
            raise ValueError("ignore_index is not supported with class-probability targets")
    else:
        _check_class_target(input, target, ignore_index)
    weight = _check_class_weight("weight", weight, input)
    check_choice("reduction", reduction, _REDUCTIONS)
    label_smoothing = check_number("label_smoothing", label_smoothing, lo=0.0, hi=1.0)
    z_loss = check_number("z_loss", z_loss, lo=0.0)
    name = _backends.choose(backend, input, "softmax_fwd", target, weight)
    inplace = _check_inplace(inplace_grad, input, name)
    if name == "reference":
        return reference.cross_entropy_reference(input, target, weight, ignore_index, reduction,
                                                 label_smoothing, z_loss)
    return run_softmax(name, input, target, weight, mode="cross_entropy", ignore_index=ignore_index,
                       label_smoothing=label_smoothing, z_loss=z_loss, reduction=reduction,
                       inplace_grad=inplace)


def softmax_focal_loss(input, target, gamma=2.0, alpha=None, ignore_index=-100, label_smoothing=0.0,
                       reduction="mean", *, inplace_grad=False, backend="auto"):
    """Multiclass focal loss on the softmax:

    ``loss = -sum_c q_c a_c (1 - p_c)^gamma log p_c`` per row, ``p = softmax(x)``,
    ``q = (1 - eps) onehot(y) + eps/C`` (without smoothing: ``-a_y (1 - p_y)^gamma log p_y``);
    the gradient flows through ``(1 - p)^gamma``. gamma = 0 and no alpha is the cross-entropy.

    Args:
        input: logits [C], [N, C] or [N, C, d...] (classes in dim 1).
        target: class indices, as in ``cross_entropy``.
        gamma: >= 0. Default 2.0.
        alpha: None (1 for every class), a number >= 0 (every class), or a [C] tensor per class.
        ignore_index: rows with this target give 0 and do not count in the mean. Default -100.
        label_smoothing: in [0, 1]. Default 0.
        reduction: ``"mean"`` (default: over rows not ignored; alpha does not enter the
            denominator), ``"sum"`` or ``"none"`` (the target's shape).
        inplace_grad: overwrite the logits with their gradient, as in ``cross_entropy``.
        backend: ``"auto"``, ``"reference"``, ``"triton"``, ``"cuda"`` or ``"cpu"``.
    """
    _check_logits(input)
    if not isinstance(target, torch.Tensor):
        raise TypeError(f"target must be a torch.Tensor, got {type(target).__name__}")
    _check_class_target(input, target, ignore_index)
    gamma = check_number("gamma", gamma, lo=0.0)
    if isinstance(alpha, (int, float)) and not isinstance(alpha, bool):
        alpha = check_number("alpha", alpha, lo=0.0)
        c = input.shape[0] if input.dim() == 1 else input.shape[1]
        alpha = torch.full((c,), alpha, dtype=torch.float64, device=input.device)
    else:
        alpha = _check_class_weight("alpha", alpha, input)
    check_choice("reduction", reduction, _REDUCTIONS)
    label_smoothing = check_number("label_smoothing", label_smoothing, lo=0.0, hi=1.0)
    name = _backends.choose(backend, input, "softmax_fwd", target, alpha)
    inplace = _check_inplace(inplace_grad, input, name)
    if name == "reference":
        return reference.softmax_focal_loss_reference(input, target, gamma, alpha, ignore_index,
                                                      label_smoothing, reduction)
    return run_softmax(name, input, target, alpha, mode="focal", ignore_index=ignore_index,
                       label_smoothing=label_smoothing, gamma=gamma, reduction=reduction,
                       inplace_grad=inplace)
