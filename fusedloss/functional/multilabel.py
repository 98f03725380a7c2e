"""Multilabel losses: Su's log-sum-exp multilabel cross-entropy (dense, sparse) and multilabel focal."""

import torch

from fusedloss import reference
from fusedloss._validate import check_binary_target, check_choice, check_input, check_same_device
from fusedloss.functional.focal import sigmoid_focal_loss
from fusedloss.ops import _backends
from fusedloss.ops.multilabel import run_multilabel_ce, run_sparse_multilabel_ce

_REDUCTIONS = ("none", "mean", "sum")
_INDEX_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def _check_rows(input) -> None:
    check_input(input)
    if input.dim() == 0:
        raise ValueError("input must have at least one dim (the classes, last), got a 0-d tensor")


def multilabel_categorical_crossentropy(input, target, reduction="mean", *, backend="auto"):
    """Multilabel categorical cross-entropy (Su Jianlin, kexue.fm/archives/7359), per row:

    ``loss = log(1 + sum_i (1 - y_i) e^{s_i}) + log(1 + sum_i y_i e^{-s_i})``

    over the last dim, with logits ``s`` (no sigmoid; the decision threshold is 0) and labels ``y``.
    Entries with ``s_i = -inf`` are absent (GlobalPointer's masking). One fused pass per row: two
    online log-sum-exps and the gradient, no +-1e12 masks and no concatenated zero column.

    Args:
        input: logits [..., C], float16/bfloat16/float32/float64.
        target: [..., C]; float (soft labels in [0, 1]), integer or bool 0/1.
        reduction: ``"mean"`` (default, over rows), ``"sum"`` or ``"none"`` (shape [...]).
        backend: ``"auto"``, ``"reference"``, ``"triton"``, ``"cuda"`` or ``"cpu"``.

    Returns the loss in the input's dtype (computed in float32, float64 for float64 input).
    """
    _check_rows(input)
    check_binary_target(input, target)
    check_choice("reduction", reduction, _REDUCTIONS)
    name = _backends.choose(backend, input, "multilabel_ce_fwd", target)
    if name == "reference":
        return reference.multilabel_categorical_crossentropy_reference(input, target, reduction)
    return run_multilabel_ce(name, input, target, reduction)


def _check_positive_index(input: torch.Tensor, positive_index) -> None:
    if not isinstance(positive_index, torch.Tensor):
        raise TypeError(f"positive_index must be a torch.Tensor, got {type(positive_index).__name__}")
    if positive_index.dtype not in _INDEX_DTYPES:
        raise TypeError(f"positive_index must be an integer tensor, got {positive_index.dtype}")
    if positive_index.dim() != input.dim() or positive_index.shape[:-1] != input.shape[:-1]:
        raise ValueError(
            f"positive_index must have shape [..., K] with the input's leading dims "
            f"{tuple(input.shape[:-1])}, got {tuple(positive_index.shape)}"
        )
    check_same_device("positive_index", input, positive_index)
    c = input.shape[-1]
    if (
        positive_index.numel()
        and not torch.compiler.is_compiling()
        and bool(((positive_index < 0) | (positive_index >= c)).any())
    ):
        raise ValueError(f"positive_index must hold class indices in [0, {c}) (C = input.shape[-1])")


def sparse_multilabel_categorical_crossentropy(input, positive_index, mask_zero=False,
                                               reduction="mean", *, backend="auto"):
    """The multilabel categorical cross-entropy with the positives given as class indices:

    ``loss = log(1 + sum_{k} e^{-s_{p_k}}) + log(1 + sum_{c not in p} e^{s_c})`` per row.

    The positive sum counts an index listed twice twice (as bert4keras does); the negative sum runs
    over the classes not listed, computed directly and stably. bert4keras instead takes it as
    ``all + log(clip(1 - e^{LSE(pos) - all}, 1e-7, 1))``, which loses every digit once the positives
    outweigh the negatives by ~1e7 (fp32), and with duplicates subtracts a class twice.

    Args:
        input: logits [..., C], float16/bfloat16/float32/float64.
        positive_index: integer [..., K] (the input's leading dims), values in [0, C). K may be 0.
            A listed class must have a finite logit (the positive sum is infinite at -inf: the fused
            backends then return NaN, the reference inf).
        mask_zero: if True, index 0 is padding: class 0 is in neither sum (GPLinker's flat index
            (0, 0)). Without it every entry is a positive: there is no padding value.
        reduction: ``"mean"`` (default, over rows), ``"sum"`` or ``"none"`` (shape [...]).
        backend: ``"auto"``, ``"reference"``, ``"triton"``, ``"cuda"`` or ``"cpu"``.

    Reads the K positives and the row once for the sums and once for the gradient; no [..., C]
    mask or one-hot is built (the fused backends sort each row's K indices).
    """
    _check_rows(input)
    _check_positive_index(input, positive_index)
    if not isinstance(mask_zero, bool):
        raise TypeError(f"mask_zero must be a bool, got {type(mask_zero).__name__}")
    check_choice("reduction", reduction, _REDUCTIONS)
    name = _backends.choose(backend, input, "sparse_multilabel_ce_fwd", positive_index)
    if name == "reference":
        return reference.sparse_multilabel_categorical_crossentropy_reference(
            input, positive_index, mask_zero, reduction)
    return run_sparse_multilabel_ce(name, input, positive_index, mask_zero, reduction)


def multilabel_focal_loss(input, target, alpha=0.25, gamma=2.0, reduction="mean", *, backend="auto"):
    """torchvision's sigmoid focal loss per label, averaged over the labels (last dim):

    ``loss_row = mean_c a_t (1 - p_t)^gamma ce(s_c, y_c)`` (see ``sigmoid_focal_loss``).

    It runs on the ``sigmoid_focal_loss`` kernels: ``"mean"`` is their global mean and ``"sum"``
    that mean times the number of rows, both fused; ``"none"`` (per-row, shape [...]) takes the per-label losses
    and averages them in torch.

    Args:
        input: logits [..., C]; target: [..., C] float, integer or bool.
        alpha: in [0, 1], or negative to disable the class weight. Default 0.25.
        gamma: >= 0. Default 2.0.
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.
        backend: as in ``sigmoid_focal_loss``.
    """
    _check_rows(input)
    check_choice("reduction", reduction, _REDUCTIONS)
    if reduction == "mean" or (reduction == "sum" and input.numel() > 0):
        mean = sigmoid_focal_loss(input, target, alpha, gamma, "mean", backend=backend)
        # sum of row means = global mean x rows; not the global sum / C, which overflows float16
        return mean if reduction == "mean" else mean * (input.numel() // input.shape[-1])
    per_row = sigmoid_focal_loss(input, target, alpha, gamma, "none", backend=backend).mean(-1)
    return per_row if reduction == "none" else per_row.sum()
