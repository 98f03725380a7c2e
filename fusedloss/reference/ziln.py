"""Reference for EasyRec's ZILN_LOSS (``zero_inflated_lognormal_loss``, spec 7.1)."""

import math

import torch
import torch.nn.functional as F

from .focal import _opmath


def ziln_loss_reference(logits, labels, max_sigma=5.0, class_weight=1.0, reg_weight=1.0,
                        mu_reg=0.01, sigma_reg=0.01):
    """Spec 7.1, as EasyRec computes it: logits [B, 3] = (l_p, mu, l_s), labels [B] or [B, 1],
    ``z = [y > 0]``, ``P = sum z``, ``sigma = clip(softplus(l_s), sqrt(1e-7), max_sigma)``;
    ``L = cw mean(BCE(l_p, z)) + rw (-sum z logLogNormal(y; mu, sigma)) / (P + 1e-8)
    + mu_reg mean(mu^2) + sigma_reg mean(l_s^2)``. Rows with ``y <= 0`` evaluate the lognormal at
    the safe label 1 and are masked out. NaN for B = 0 (TF's means of nothing)."""
    acc = _opmath(logits)
    x = logits.to(acc)
    y = labels.to(acc).reshape(-1)
    lp, mu, ls = x[:, 0], x[:, 1], x[:, 2]
    z = (y > 0).to(acc)
    cls = F.binary_cross_entropy_with_logits(lp, z, reduction="none").mean()
    sigma = torch.clamp(F.softplus(ls), math.sqrt(1e-7), max_sigma)
    safe = z * y + (1 - z)
    log_y = torch.log(safe)
    logprob = -log_y - torch.log(sigma) - 0.5 * math.log(2 * math.pi) - 0.5 * ((log_y - mu) / sigma) ** 2
    reg = -(z * logprob).sum() / (z.sum() + 1e-8)
    loss = (class_weight * cls + reg_weight * reg + mu_reg * (mu ** 2).mean()
            + sigma_reg * (ls ** 2).mean())
    return loss.to(logits.dtype)
