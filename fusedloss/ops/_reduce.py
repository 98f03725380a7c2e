"""Reduction of per-row kernel outputs to the ``(loss, scale)`` pair of the fused ops."""

import torch

NONE, SUM, MEAN = 0, 1, 2


def finish_rows(row_loss: torch.Tensor, reduction: int, dtype: torch.dtype, row_den=None):
    """(loss, scale) from the per-row losses, without a host sync.

    ``mean`` divides by the sum of ``row_den`` (the row count when None); a zero denominator gives
    a NaN loss (torch's mean of nothing) and scale 0.
    """
    if reduction == NONE:
        return row_loss.to(dtype), row_loss.new_ones(())
    total = row_loss.sum(dtype=torch.float64)
    if reduction == SUM:
        return total.to(dtype), row_loss.new_ones(())
    if row_den is None:
        den = total.new_full((), float(row_loss.shape[0]))
    else:
        den = row_den.sum(dtype=torch.float64)
    loss = torch.where(den != 0, total / den, float("nan"))
    scale = torch.where(den != 0, 1.0 / torch.where(den != 0, den, 1.0), 0.0)
    return loss.to(dtype), scale.to(row_loss.dtype)
