"""References for EasyRec's in-batch metric-learning losses (spec 6.2 CIRCLE_LOSS, 6.3
MULTI_SIMILARITY_LOSS), written with the [B, B] cosine matrix the way EasyRec computes them, plus
EasyRec's as-coded multi-similarity (its [B, B, B] broadcast bug) for bit-parity checks.
"""

import torch

from .focal import _opmath
from .sv_softmax import l2_normalize

_CIRCLE_MASK = -1e12


def _masks(labels, session_ids, b, device):
    """(positive, negative) [B, B] masks: positives share the label (and session), j != i."""
    y = labels.reshape(-1)
    eye = torch.eye(b, dtype=torch.bool, device=device)
    pos = (y[:, None] == y[None, :]) & ~eye
    if session_ids is not None:
        g = session_ids.reshape(-1)
        pos &= g[:, None] == g[None, :]
    return pos, ~pos & ~eye


def _cosines(embeddings, embed_normed):
    acc = _opmath(embeddings)
    e = embeddings.to(acc)
    if not embed_normed:
        e = l2_normalize(e)
    return e @ e.T


def circle_loss_reference(embeddings, labels, session_ids=None, margin=0.25, gamma=32.0,
                          embed_normed=False):
    """Spec 6.2: ``mean_i softplus(LSE_j lambda-_ij + LSE_j lambda+_ij)`` with alpha+ and alpha-
    detached and the masked entries -1e12 (an anchor without positives or negatives adds 0 but
    counts in the mean). NaN for B = 0."""
    s = _cosines(embeddings, embed_normed)
    b = s.shape[0]
    pos, neg = _masks(labels, session_ids, b, s.device)
    ap = torch.relu(1 + margin - s).detach()
    an = torch.relu(s + margin).detach()
    lp = torch.where(pos, -gamma * ap * (s - (1 - margin)), _CIRCLE_MASK)
    ln = torch.where(neg, gamma * an * (s - margin), _CIRCLE_MASK)
    z = torch.logsumexp(ln, dim=1) + torch.logsumexp(lp, dim=1)
    return torch.logaddexp(z, torch.zeros_like(z)).mean().to(embeddings.dtype)


def multi_similarity_loss_reference(embeddings, labels, session_ids=None, alpha=2.0, beta=50.0,
                                    lamb=1.0, embed_normed=False):
    """Spec 6.3, the intended (paper) formula: with ``S+ = max(S, 0)``, per anchor c
    ``(1/alpha) log(1 + sum_pos e^{-alpha (S+ - lamb)}) + (1/beta) log(1 + sum_neg e^{beta (S+ -
    lamb)})``, averaged over the B anchors (masked terms contribute 0). NaN for B = 0."""
    s = _cosines(embeddings, embed_normed).clamp(min=0)
    b = s.shape[0]
    pos, neg = _masks(labels, session_ids, b, s.device)
    zero = torch.zeros(b, 1, dtype=s.dtype, device=s.device)
    vp = torch.where(pos, -alpha * (s - lamb), -torch.inf)
    vn = torch.where(neg, beta * (s - lamb), -torch.inf)
    lp = torch.logsumexp(torch.cat([zero, vp], 1), dim=1)
    ln = torch.logsumexp(torch.cat([zero, vn], 1), dim=1)
    return (lp / alpha + ln / beta).mean().to(embeddings.dtype)


def multi_similarity_loss_easyrec_reference(embeddings, labels, session_ids=None, alpha=2.0,
                                            beta=50.0, lamb=1.0, embed_normed=False):
    """EasyRec's multi-similarity as coded (spec 6.3, a bug): the [B, 1] labels make the masks
    [B, B, B], ``Pos[a, n, c] = [n != c][y_n = y_a][g_n = g_c]``, ``Neg = [n != c](1 - Pos)``, and
    the loss is ``(1/B^2) sum_a sum_c`` of the per-anchor terms over those masks. O(B^3) memory."""
    s = _cosines(embeddings, embed_normed).clamp(min=0)             # s[n, c]
    b = s.shape[0]
    y = labels.reshape(-1)
    offdiag = ~torch.eye(b, dtype=torch.bool, device=s.device)   # [n, c]
    same_label = y[:, None] == y[None, :]                        # [a, n]
    pos = same_label[:, :, None] & offdiag[None]                 # [a, n, c]
    if session_ids is not None:
        g = session_ids.reshape(-1)
        pos = pos & (g[:, None] == g[None, :])[None]
    neg = offdiag[None] & ~pos
    ep = torch.where(pos, torch.exp(-alpha * (s - lamb))[None], 0.0).sum(1)    # [a, c]
    en = torch.where(neg, torch.exp(beta * (s - lamb))[None], 0.0).sum(1)
    per = torch.log1p(ep) / alpha + torch.log1p(en) / beta
    return (per.sum() / (b * b)).to(embeddings.dtype)
