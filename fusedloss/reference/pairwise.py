"""References for EasyRec's pairwise losses (spec sections 1.4 and 3), written with B x B matrices.

The truth for tests (run in float64), and ``backend="reference"`` for users with small batches.
Pairs (i, j) need y_i > y_j (strict; ties and i == j excluded) and, with ``session_ids``, the same
session. The pair weight is the weight of the higher-labelled item ``w_i``. Pairs are flattened in
row-major (i, j) order, which decides OHEM ties.
"""

import torch

from fusedloss.reference.focal import binary_focal_loss_reference, ohem_mean_reference


def _opmath(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _pairs(input, target, session_ids, weight):
    """(x, y, valid mask [B, B] without the label test, W [B, B] = w_i) in the compute dtype."""
    acc = _opmath(input)
    x, y = input.to(acc), target.to(acc)
    b = x.shape[0]
    same = torch.ones(b, b, dtype=torch.bool, device=x.device)
    if session_ids is not None:
        same = session_ids[:, None] == session_ids[None, :]
    if weight is None:
        w = x.new_ones(())
    elif isinstance(weight, torch.Tensor):
        w = weight.to(x.device, acc)
    else:
        w = torch.tensor(weight, dtype=acc, device=x.device)
    wmat = (w[:, None] if w.dim() else w).expand(b, b)
    return x, y, same, wmat


def _softplus(z: torch.Tensor) -> torch.Tensor:
    # F.softplus returns z itself above its threshold (20); logaddexp is exact and its autograd
    # derivative is sigmoid(z) everywhere (a relu + log1p form gets 1 instead of 1/2 at z = 0).
    return torch.logaddexp(z, torch.zeros_like(z))


def _sbnz_or_ohem(loss, wmat, valid, ohem_ratio):
    """SBNZ(loss, W) over the valid pairs, or OHEM of W * loss."""
    l, v = loss[valid], wmat[valid]
    if ohem_ratio == 1.0:
        nz = (v != 0).sum()
        total = (v * l).sum()
        return torch.where(nz > 0, total / nz.clamp(min=1), total * 0)
    return ohem_mean_reference(v * l, ohem_ratio)


def pairwise_loss_reference(input, target, session_ids=None, weight=None, temperature=1.0, margin=0.0):
    """PAIR_WISE_LOSS: ``softplus(-((s_i - s_j)/T - margin))``, SBNZ with pair weight w_i."""
    x, y, same, wmat = _pairs(input, target, session_ids, weight)
    s = x / temperature
    u = s[:, None] - s[None, :] - margin
    valid = (y[:, None] > y[None, :]) & same
    return _sbnz_or_ohem(_softplus(-u), wmat, valid, 1.0).to(input.dtype)


def pairwise_logistic_loss_reference(input, target, session_ids=None, weight=None, temperature=1.0,
                                     hinge_margin=None, use_label_margin=False, ohem_ratio=1.0):
    """PAIRWISE_LOGISTIC_LOSS (RankNet): ``softplus(-(d_ij - mu_ij))``, ``d = (s_i - s_j)/T``,
    ``mu = (y_i - y_j)/T`` with use_label_margin, else hinge_margin (a shift) if set, else 0."""
    x, y, same, wmat = _pairs(input, target, session_ids, weight)
    s = x / temperature
    if use_label_margin:
        y = y / temperature
    u = s[:, None] - s[None, :]
    if use_label_margin:
        u = u - (y[:, None] - y[None, :])
    elif hinge_margin is not None:
        u = u - hinge_margin
    valid = (y[:, None] > y[None, :]) & same
    return _sbnz_or_ohem(_softplus(-u), wmat, valid, ohem_ratio).to(input.dtype)


def pairwise_focal_loss_reference(input, target, session_ids=None, weight=None, temperature=1.0,
                                  gamma=2.0, alpha=None, hinge_margin=None, ohem_ratio=1.0):
    """PAIRWISE_FOCAL_LOSS: EasyRec's binary focal loss on logits ``d_ij = (s_i - s_j)/T`` with
    label 1 and sample weight w_i; hinge_margin filters pairs (``d_ij < h``)."""
    x, y, same, wmat = _pairs(input, target, session_ids, weight)
    s = x / temperature
    d = s[:, None] - s[None, :]
    valid = (y[:, None] > y[None, :]) & same
    if hinge_margin is not None:
        valid = valid & (d < hinge_margin)
    logits = d[valid]
    return binary_focal_loss_reference(logits, torch.ones_like(logits), gamma, alpha, 0.0,
                                       wmat[valid], ohem_ratio).to(input.dtype)


def pairwise_hinge_loss_reference(input, target, session_ids=None, weight=None, temperature=1.0,
                                  margin=1.0, use_label_margin=True, label_is_logits=True,
                                  use_exponent=False, ohem_ratio=1.0):
    """PAIRWISE_HINGE_LOSS: ``relu(delta)`` or ``relu(exp(clip(delta, -88, 88)) - 1)``,
    ``delta = (y'_i - y'_j) - (s'_i - s'_j)`` (use_label_margin) or ``margin - (s'_i - s'_j)``,
    ``s' = s/T``, ``y' = y/T`` if label_is_logits. With use_exponent this is the intended formula,
    ``s' = sigmoid(s')`` and ``y' = sigmoid(y')``; EasyRec instead overwrites the logits with
    ``sigmoid(sigmoid(y))``, which leaves the loss without a gradient (spec 3.4)."""
    x, y, same, wmat = _pairs(input, target, session_ids, weight)
    s = x / temperature
    if label_is_logits:
        y = y / temperature
    if use_exponent:
        y, s = torch.sigmoid(y), torch.sigmoid(s)
    dy = y[:, None] - y[None, :]
    ds = s[:, None] - s[None, :]
    delta = (dy if use_label_margin else margin) - ds
    loss = torch.relu(torch.exp(delta.clamp(-88, 88)) - 1) if use_exponent else torch.relu(delta)
    valid = (dy > 0) & same
    return _sbnz_or_ohem(loss, wmat, valid, ohem_ratio).to(input.dtype)
