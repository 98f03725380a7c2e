"""EasyRec's F1_REWEIGHTED_LOSS (spec 2.6). No fused kernel yet: it runs as PyTorch code
(``backend="reference"``; ``"auto"`` picks it), two passes over the logits (the column statistics,
then the weighted cross-entropy) plus autograd's."""

import torch

from fusedloss import reference
from fusedloss._validate import as_weight, check_binary_target, check_input, check_number


def f1_reweighted_loss(input, target, weight=1.0, f1_beta_square=1.0, label_smoothing=0.0, *,
                       backend="auto"):
    """F1-reweighted sigmoid cross-entropy (adaptive scaling as EasyRec implements it, which
    departs from Lu et al. 2018).

    Per column of ``input`` ([B] is one column): ``P = sum y``, ``tp = sum sigmoid(x)`` over every
    sample, ``nw = tp / ((b2 - 1) P + tp + 1e-8)``; negatives (``y != 1``) are weighted ``nw w``,
    positives ``w``; the loss is the SUM_BY_NONZERO_WEIGHTS mean of ``ce(x, y')`` with TF's label
    smoothing ``y' = y (1 - e) + e / 2`` (the class test uses the raw labels). The gradient flows
    through ``nw``. With ``b2 < 1`` the negative weight can explode or turn negative when
    ``sum sigmoid < (1 - b2) P`` (no guard, as in EasyRec).

    Args:
        input: [B] or [B, C] logits. target: same shape, float (soft labels allowed) or int/bool.
        weight: a number or a tensor broadcastable to input ([B] weights a row of [B, C]).
        f1_beta_square: b2 > 0, default 1 (plain cross-entropy up to the 1e-8).
        label_smoothing: e in [0, 1), default 0.
        backend: ``"auto"`` or ``"reference"`` (no fused kernel yet).

    Returns a 0-d loss in the input's dtype; 0 when every weight is 0 or the input is empty.
    """
    check_input(input)
    if input.dim() not in (1, 2):
        raise ValueError(f"input must be [B] or [B, C], got shape {tuple(input.shape)}")
    check_binary_target(input, target)
    if isinstance(weight, torch.Tensor) and weight.dim() == 1 and input.dim() == 2 \
            and weight.shape[0] == input.shape[0]:
        weight = weight[:, None]
    weight = as_weight("weight", weight, input)
    f1_beta_square = check_number("f1_beta_square", f1_beta_square, lo=0.0, lo_open=True)
    label_smoothing = check_number("label_smoothing", label_smoothing, lo=0.0, hi=1.0, hi_open=True)
    if backend not in ("auto", "reference"):
        raise ValueError(f"f1_reweighted_loss has no fused kernel yet: backend must be 'auto' or "
                         f"'reference', got {backend!r}")
    return reference.f1_reweighted_loss_reference(input, target, 1.0 if weight is None else weight,
                                                  f1_beta_square, label_smoothing)
