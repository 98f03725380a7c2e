"""L1/L2 weight regularisation that leaves biases alone (issue 6: the seeds' regularisation helpers).

``l1 * sum |w| + l2 * sum w^2`` over the selected parameters: Keras's ``l1_l2`` regulariser (no
1/2 on the L2 term; TF's ``l2_regularizer(scale)`` is ``scale * sum w^2 / 2``, i.e. ``l2 = scale / 2``).
"""

from collections.abc import Iterable

import torch

from fusedloss._validate import check_number


def regularized_parameters(params, *, skip_bias: bool = True) -> list[torch.Tensor]:
    """The parameters a regulariser sees: from an ``nn.Module`` or an iterable of tensors or of
    ``(name, tensor)`` pairs; with ``skip_bias``, those whose name ends in ``"bias"`` are left out
    (unnamed tensors are all kept). Parameters that do not require grad are left out."""
    if isinstance(params, torch.nn.Module):
        items = list(params.named_parameters())
    elif isinstance(params, torch.Tensor):
        items = [("", params)]
    elif isinstance(params, Iterable):
        items = []
        for p in params:
            if isinstance(p, torch.Tensor):
                items.append(("", p))
            elif (isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str)
                  and isinstance(p[1], torch.Tensor)):
                items.append(p)
            else:
                raise TypeError("params must hold tensors or (name, tensor) pairs, got "
                                f"{type(p).__name__}")
    else:
        raise TypeError(f"params must be an nn.Module, a tensor or an iterable of tensors or "
                        f"(name, tensor) pairs, got {type(params).__name__}")
    if not isinstance(skip_bias, bool):
        raise TypeError(f"skip_bias must be a bool, got {type(skip_bias).__name__}")
    return [p for name, p in items
            if p.requires_grad and not (skip_bias and name.split(".")[-1].endswith("bias"))]


def l1_l2_regularization(params, l1: float = 0.0, l2: float = 0.0, *,
                         skip_bias: bool = True) -> torch.Tensor:
    """``l1 * sum |w| + l2 * sum w^2`` over ``regularized_parameters(params, skip_bias=...)``,
    accumulated in float32 (float64 for float64 parameters); a 0-d tensor (0 with no parameter).

    Args:
        params: an ``nn.Module``, a tensor, or an iterable of tensors or ``(name, tensor)`` pairs
            (e.g. ``model.named_parameters()``).
        l1, l2: finite, >= 0. Default 0.
        skip_bias: leave out parameters named ``*bias``. Default True.
    """
    l1 = check_number("l1", l1, lo=0.0)
    l2 = check_number("l2", l2, lo=0.0)
    selected = regularized_parameters(params, skip_bias=skip_bias)
    if not selected:
        return torch.zeros(())
    acc = torch.float64 if any(p.dtype == torch.float64 for p in selected) else torch.float32
    total = torch.zeros((), dtype=acc, device=selected[0].device)
    for p in selected:
        q = p.to(acc)
        if l1:
            total = total + l1 * q.abs().sum()
        if l2:
            total = total + l2 * q.square().sum()
    return total


def l1_regularization(params, scale: float, *, skip_bias: bool = True) -> torch.Tensor:
    """``scale * sum |w|`` (``l1_l2_regularization`` with ``l2 = 0``)."""
    return l1_l2_regularization(params, l1=scale, skip_bias=skip_bias)


def l2_regularization(params, scale: float, *, skip_bias: bool = True) -> torch.Tensor:
    """``scale * sum w^2`` (Keras's ``l2``; TF's ``l2_regularizer(s)`` is ``scale = s / 2``)."""
    return l1_l2_regularization(params, l2=scale, skip_bias=skip_bias)
