"""Reference for EasyRec's SOFTMAX_CROSS_ENTROPY_WITH_NEGATIVE_MINING (support-vector-guided
softmax, spec 6.1), written the obvious way: a [B, K] gather of the rolled negatives.

Computed in ``max(float32, input dtype)``; returns the input's dtype, gradients from autograd.
"""

import torch

from .focal import _opmath

REDUCTIONS = ("sum_by_nonzero_weights", "mean", "sum")


def l2_normalize(a: torch.Tensor) -> torch.Tensor:
    """TF's ``l2_normalize``: ``a / sqrt(max(sum a^2, 1e-12))`` over the last dim."""
    return a * torch.rsqrt(a.square().sum(-1, keepdim=True).clamp(min=1e-12))


def sv_softmax_loss_reference(user_emb, item_emb, labels, shifts, embed_normed=False, weights=1.0,
                              gamma=1.0, margin=0.0, t=1.0, reduction="sum_by_nonzero_weights"):
    """Spec 6.1 with the negative shifts given: negative k of row i is ``item[(i - shifts[k]) mod B]``.

    Per row i with ``labels[i] > 0``: ``c+ = u_i.v_i - margin``, ``c-_k = u_i.v_neg_k``; a negative
    is hard when ``c+ - c-_k < 0`` and its cosine becomes ``t c-_k + t - 1``; the row loss is the
    cross-entropy of logits ``gamma [c+, h_1..h_K]`` at index 0. Rows with ``labels <= 0`` are
    dropped. "sum_by_nonzero_weights": ``sum w l / #{kept rows with w != 0}`` (0 when none);
    "mean": ``sum w l / #{kept rows}``; "sum": ``sum w l``. A NaN result becomes 0 (EasyRec).
    A kept row of weight 0 contributes 0 even when its loss is NaN (EasyRec's ``NaN * 0`` would
    make the whole loss NaN, hence 0).
    """
    acc = _opmath(user_emb)
    u, v = user_emb.to(acc), item_emb.to(acc)
    if not embed_normed:
        u, v = l2_normalize(u), l2_normalize(v)
    b = u.shape[0]
    rows = torch.arange(b, device=u.device)
    neg = (rows[:, None] - shifts.to(u.device, torch.int64)[None, :]).remainder(max(b, 1))  # [B, K]
    keep = labels.reshape(-1) > 0
    cos_pos = (u * v).sum(-1) - margin                                              # [B]
    cos_neg = (u[:, None, :] * v[neg]).sum(-1)                                      # [B, K]
    hard = (cos_pos[:, None] - cos_neg).detach() < 0
    h = torch.where(hard, t * cos_neg + t - 1, cos_neg)
    logits = gamma * torch.cat([cos_pos[:, None], h], dim=1)
    row_loss = torch.logsumexp(logits, dim=1) - logits[:, 0]
    w = torch.as_tensor(weights, dtype=acc, device=u.device).to(acc).expand(b)
    w = torch.where(keep, w, 0.0)
    # a NaN loss of weight 0 counts 0; a finite one keeps d/dw = loss at w = 0
    total = (torch.where((w == 0) & torch.isnan(row_loss), 0.0, row_loss) * w).sum()
    if reduction == "sum":
        loss = total
    else:
        den = (keep & (w != 0)).sum() if reduction == "sum_by_nonzero_weights" else keep.sum()
        loss = torch.where(den > 0, total / den.clamp(min=1), 0.0)
    loss = torch.where(torch.isnan(loss), 0.0, loss)
    return loss.to(user_emb.dtype)
