"""Registration and call path of the pairwise session losses (``fusedloss::pairwise_*``).

The C++ extension registers the CPU and CUDA kernels; this module adds the Triton kernels, the fake
kernels, the autograd formula, the O(B log B) session layout and the exact OHEM selection.

OHEM without pairs in memory: every valid pair has a 128-bit key (its weighted loss's bits, then
its row-major (i, j) position, lower first: csrc/pairwise/pairwise_math.h). The k-th largest key K*
is found by a radix select: histogram passes over the pairs, one 11/11/10-bit digit each, each pass
restricted to the pairs matching the digits decided so far; the selection state lives on the device
(no host sync) and passes after the decisive one return at once. A final pass then sums the loss
and the gradient of the pairs with key >= K* and loss > 0. float64 losses are ranked exactly (12
digits); float32 ones have a 32-bit loss word (9 digits: the second key word is always 0).
"""

import numpy as np
import torch

from fusedloss.ops import _library  # noqa: F401
from fusedloss.ops._autograd import register_fused_op

KINDS = {"pair_wise": 0, "logistic": 1, "focal": 2, "hinge": 3}
HAS_HINGE_MARGIN, USE_LABEL_MARGIN, LABEL_IS_LOGITS, USE_EXPONENT = 1, 2, 4, 8
OHEM_BINS = 2048
_DIGIT_SHIFT = (21, 10, 0)
KEY_WORDS = 4
# Digits of the radix select per compute dtype: float32 keys have 0 in word 1 (digits 3..5).
OHEM_DIGITS = {torch.float32: (0, 1, 2, 6, 7, 8, 9, 10, 11), torch.float64: tuple(range(12))}

_FWD = {
    "cpu": torch.ops.fusedloss.pairwise_fwd.default,
    "cuda": torch.ops.fusedloss.pairwise_fwd.default,
    "triton": torch.ops.fusedloss.pairwise_fwd_triton.default,
}
_HIST = {
    "cpu": torch.ops.fusedloss.pairwise_ohem_hist.default,
    "cuda": torch.ops.fusedloss.pairwise_ohem_hist.default,
    "triton": torch.ops.fusedloss.pairwise_ohem_hist_triton.default,
}


def _fake_fwd(scores, labels, weight, order, seg_lo, seg_hi, kind, flags, temperature, margin,
              hinge_margin, gamma, alpha, select, compute_grad):
    grad = scores.new_empty(scores.shape if compute_grad else (0,))
    return scores.new_empty(()), grad, scores.new_empty(())


def _fake_hist(scores, labels, weight, order, seg_lo, seg_hi, kind, flags, temperature, margin,
               hinge_margin, gamma, alpha, state, digit):
    return scores.new_empty((OHEM_BINS,), dtype=torch.int64)


def _triton_fwd(*args):
    from fusedloss.triton_kernels.pairwise import pairwise_fwd_triton

    return pairwise_fwd_triton(*args)


def _triton_hist(*args):
    from fusedloss.triton_kernels.pairwise import pairwise_ohem_hist_triton

    return pairwise_ohem_hist_triton(*args)


register_fused_op(("fusedloss::pairwise_fwd", "fusedloss::pairwise_fwd_triton"), _fake_fwd,
                  n_args=15, compute_grad_arg=14)
for _name in ("fusedloss::pairwise_ohem_hist", "fusedloss::pairwise_ohem_hist_triton"):
    torch.library.register_fake(_name, _fake_hist)
torch.library.register_kernel("fusedloss::pairwise_fwd_triton", ("cpu", "cuda"), _triton_fwd)
torch.library.register_kernel("fusedloss::pairwise_ohem_hist_triton", ("cpu", "cuda"), _triton_hist)


def session_layout(session_ids, b: int, device):
    """(order, seg_lo, seg_hi): a stable sort by session and each sorted item's session range.

    O(B log B) time (the sort; the ranges are two O(B) scans), O(B) memory, static shapes;
    ``order`` is None when there are no sessions (one segment).
    """
    if session_ids is None:
        return (None, torch.zeros(b, dtype=torch.int64, device=device),
                torch.full((b,), b, dtype=torch.int64, device=device))
    order = torch.argsort(session_ids, stable=True)
    ids = session_ids[order]
    pos = torch.arange(b, device=device)
    starts = torch.ones(b, dtype=torch.bool, device=device)
    starts[1:] = ids[1:] != ids[:-1]
    ends = torch.ones(b, dtype=torch.bool, device=device)
    ends[:-1] = starts[1:]
    seg_lo = torch.cummax(torch.where(starts, pos, 0), 0).values
    seg_hi = torch.cummin(torch.where(ends, pos + 1, b).flip(0), 0).values.flip(0)
    return order, seg_lo, seg_hi


def _ohem_select(hist_op, args, ratio: float) -> torch.Tensor:
    """The ``select`` words of the k-th largest pair key (see the module docstring)."""
    device = args[0].device
    digits = OHEM_DIGITS[args[0].dtype]
    state = torch.zeros(KEY_WORDS + 1, dtype=torch.int64, device=device)
    hist = hist_op(*args, state, digits[0])
    k = (hist.sum().to(torch.float32) * np.float32(ratio)).round().to(torch.int64)  # rint: half-even
    k_rem = k
    done = k == 0
    bins = torch.arange(OHEM_BINS, device=device)
    for step, digit in enumerate(digits):
        if step:
            hist = hist_op(*args, state, digit)
        at_least = hist.flip(0).cumsum(0).flip(0)          # pairs in this digit's bins >= b
        b = ((at_least >= k_rem).sum() - 1).clamp(min=0)  # the bin holding the k_rem-th largest
        in_b = (hist * (bins == b)).sum()
        above = (at_least * (bins == b)).sum() - in_b
        word = digit // 3
        new_word = state[word] | (b << _DIGIT_SHIFT[digit % 3])
        words = [torch.where(done, state[w], new_word) if w == word else state[w]
                 for w in range(KEY_WORDS)]
        k_rem = torch.where(done, k_rem, k_rem - above)
        done = done | (in_b == k_rem)   # the whole bin is taken: the digits below need no pass
        state = torch.stack(words + [done.to(torch.int64)])
    return torch.cat([state[:KEY_WORDS], (k > 0).to(torch.int64).reshape(1)])


def run_pairwise(backend, input, target, session_ids, weight, *, kind, flags=0, temperature=1.0,
                 margin=0.0, hinge_margin=0.0, gamma=0.0, alpha=-1.0, ohem_ratio=1.0):
    """Call the fused pairwise op of ``backend`` ('cpu', 'cuda' or 'triton'); returns the loss."""
    acc = torch.float64 if input.dtype == torch.float64 else torch.float32
    b = input.shape[0]
    order, seg_lo, seg_hi = session_layout(session_ids, b, input.device)
    scores, labels = input.to(acc), target.to(acc)
    if weight is not None:
        weight = weight.to(acc).reshape(-1)
    if order is not None:
        scores, labels = scores[order], labels[order]
        if weight is not None and weight.numel() == b and b != 1:
            weight = weight[order]
    else:
        order = torch.arange(b, device=input.device)
    args = (scores.contiguous(), labels.contiguous(), None if weight is None else weight.contiguous(),
            order, seg_lo, seg_hi, KINDS[kind], flags, float(temperature), float(margin),
            float(hinge_margin), float(gamma), float(alpha))
    select = None
    if ohem_ratio != 1.0:
        select = _ohem_select(_HIST[backend], (args[0].detach(),) + args[1:], ohem_ratio)
    compute_grad = input.requires_grad and torch.is_grad_enabled()
    loss, _, _ = _FWD[backend](*args, select, compute_grad)
    return loss.to(input.dtype)
