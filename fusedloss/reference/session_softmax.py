"""References for EasyRec's per-session softmax losses (spec 4.1-4.3), written with [B, B] session
masks: row j of a matrix holds j's whole session (other items masked), the way EasyRec builds them.

The truth for tests (run them in float64), and ``backend="reference"`` for small batches.
"""

import math

import torch

from .focal import _opmath

_MASK = -1e9  # EasyRec's additive mask (e^{-1e9} is 0 in float32 and float64)


def _same_session(session_ids, b, device):
    if session_ids is None:
        return torch.ones(b, b, dtype=torch.bool, device=device)
    sid = session_ids.reshape(-1)
    return sid[:, None] == sid[None, :]


def _session_log_softmax(x, same):
    """Row j: log_softmax of x over j's session (entries outside it -1e9)."""
    return torch.log_softmax(torch.where(same, x[None, :], _MASK), dim=1)


def _mean_over_sessions(per_row, same):
    """mean over sessions of a per-session value given on every row of the session (NaN at B = 0)."""
    n = same.sum(1).to(per_row.dtype)
    return (per_row / n).sum() / (1.0 / n).sum()


def listwise_rank_loss_reference(input, target, session_ids=None, temperature=1.0,
                                 label_is_logits=False, transform_fn=None, weight=1.0):
    """Spec 4.1: per session g, ``-sum_i q_i log_softmax(s_g)_i`` with ``s = input / T`` and
    ``q = y`` (raw labels) or ``softmax_g(y)`` with ``label_is_logits``, where ``y = target / T``
    with ``label_is_logits`` (else ``target``), then ``transform_fn(y)`` if given; the mean over
    sessions, times the scalar ``weight``. NaN for an empty batch (EasyRec's mean of nothing)."""
    acc = _opmath(input)
    s, y = input.to(acc).reshape(-1), target.to(acc).reshape(-1)
    b = s.shape[0]
    same = _same_session(session_ids, b, s.device)
    s = s / temperature
    if label_is_logits:
        y = y / temperature
    if transform_fn is not None:
        y = transform_fn(y).to(acc)
    if label_is_logits:
        q = torch.exp(_session_log_softmax(y, same))                     # [B, B], row j: j's session
    else:
        q = torch.where(same, y[None, :], 0.0)
    per_row = -(q * _session_log_softmax(s, same)).sum(1)
    return (_mean_over_sessions(per_row, same) * weight).to(input.dtype)


def listwise_distill_loss_reference(input, target, session_ids=None, temperature=1.0,
                                    label_clip_max_value=512.0, transform_fn=None, weight=1.0):
    """Spec 4.2: ``r = clip(target, 1, M)``, ``r' = transform_fn(r)`` or ``log(1 + M) - log(r)``,
    ``q = r' / sum_g r'`` per session, ``-sum_i q_i log_softmax(s_g / T)_i``, mean over sessions,
    times the scalar ``weight``."""
    acc = _opmath(input)
    s, y = input.to(acc).reshape(-1), target.to(acc).reshape(-1)
    b = s.shape[0]
    same = _same_session(session_ids, b, s.device)
    m = float(label_clip_max_value)
    r = y.clamp(1.0, m)
    r = transform_fn(r).to(acc) if transform_fn is not None else math.log1p(m) - torch.log(r)
    rm = torch.where(same, r[None, :], 0.0)
    q = rm / rm.sum(1, keepdim=True)
    per_row = -(q * _session_log_softmax(s / temperature, same)).sum(1)
    return (_mean_over_sessions(per_row, same) * weight).to(input.dtype)


def jrc_loss_parts_reference(logits, labels, session_ids, weight=None, same_label_loss=True):
    """Spec 4.3: (CE, GE) of JRC in the compute dtype.

    CE = SBNZ(softmax cross-entropy of ``logits`` [B, 2] at ``labels``, weight). GE with
    ``same_label_loss``: ``(1/B) sum_j w_j / n_j * G_{s(j)}``, ``G_s`` the listwise loss of the
    positives on column 1 and of the negatives on column 0 over session s; without: ``(1/B) sum_j
    w_j CE_j`` where ``CE_j`` is the cross-entropy of j's own column against the opposite-label
    items of its session. NaN for B = 0 (EasyRec's mean over nothing).
    """
    acc = _opmath(logits)
    z = logits.to(acc)
    y = labels.reshape(-1).to(torch.int64)
    b = z.shape[0]
    w = (torch.ones(b, dtype=acc, device=z.device) if weight is None
         else torch.as_tensor(weight, dtype=acc, device=z.device).reshape(-1).expand(b))
    ce_rows = torch.logsumexp(z, dim=1) - z.gather(1, y[:, None]).squeeze(1)
    nnz = (w != 0).sum()
    ce = torch.where(nnz > 0, (w * ce_rows).sum() / nnz.clamp(min=1), 0.0)

    same = _same_session(session_ids, b, z.device)
    pos = y == 1
    z0, z1 = z[:, 0], z[:, 1]
    if same_label_loss:
        # row j: column 1 over j's session at the positives, column 0 at the negatives
        lp1 = _session_log_softmax(z1, same)
        lp0 = _session_log_softmax(z0, same)
        take = torch.where(pos[None, :], lp1, lp0)
        g = -torch.where(same, take, 0.0).sum(1)
        ge = (w * g / same.sum(1).to(acc)).sum() / b
    else:
        # row j: j's own column over j and the opposite-label items of its session
        col = torch.where(pos[:, None], z1[None, :], z0[None, :])          # [B, B]
        keep = same & ((pos[:, None] != pos[None, :]) | torch.eye(b, dtype=torch.bool, device=z.device))
        lsm = torch.log_softmax(torch.where(keep, col, _MASK), dim=1)
        ge = (w * -lsm.diagonal()).sum() / b
    return ce, ge


def jrc_loss_reference(logits, labels, session_ids, weight=None, alpha=0.5, same_label_loss=True):
    """``alpha CE + (1 - alpha) GE`` (the 'fixed' strategy) in the logits' dtype."""
    ce, ge = jrc_loss_parts_reference(logits, labels, session_ids, weight, same_label_loss)
    return (alpha * ce + (1 - alpha) * ge).to(logits.dtype)
