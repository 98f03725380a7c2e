"""Support-vector-guided softmax: EasyRec's SOFTMAX_CROSS_ENTROPY_WITH_NEGATIVE_MINING (spec 6.1)."""

import torch

from fusedloss import reference
from fusedloss._validate import check_choice, check_input, check_number, check_same_device
from fusedloss.ops import _backends
from fusedloss.ops.sv_softmax import REDUCTIONS, run_sv_softmax

_INT_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def _check_embeddings(user_emb, item_emb) -> None:
    for name, emb in (("user_emb", user_emb), ("item_emb", item_emb)):
        if not isinstance(emb, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(emb).__name__}")
        if emb.dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
            raise TypeError(f"{name} must be float16, bfloat16, float32 or float64, got {emb.dtype}")
        if emb.dim() != 2:
            raise ValueError(f"{name} must be 2-D [B, D], got shape {tuple(emb.shape)}")
    if item_emb.shape != user_emb.shape:
        raise ValueError(f"item_emb must have user_emb's shape {tuple(user_emb.shape)}, got "
                         f"{tuple(item_emb.shape)}")
    if item_emb.dtype != user_emb.dtype:
        raise TypeError(f"item_emb must have user_emb's dtype {user_emb.dtype}, got {item_emb.dtype}")
    check_same_device("item_emb", user_emb, item_emb, "user_emb")


def _check_labels(labels, b, user_emb) -> None:
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"labels must be a torch.Tensor, got {type(labels).__name__}")
    if labels.dtype.is_complex:
        raise TypeError(f"labels must be a real or bool tensor, got {labels.dtype}")
    if tuple(labels.shape) not in ((b,), (b, 1)):
        raise ValueError(f"labels must have shape ({b},) or ({b}, 1), got {tuple(labels.shape)}")
    check_same_device("labels", user_emb, labels, "user_emb")


def _check_weights(weights, b, user_emb):
    if weights is None:
        return None
    if isinstance(weights, (int, float)) and not isinstance(weights, bool):
        check_number("weights", weights)
        return torch.tensor([float(weights)], dtype=torch.float64, device=user_emb.device)
    if not isinstance(weights, torch.Tensor):
        raise TypeError(f"weights must be None, a number or a tensor, got {type(weights).__name__}")
    if not weights.dtype.is_floating_point:
        raise TypeError(f"weights must be a floating tensor, got {weights.dtype}")
    if tuple(weights.shape) not in ((), (1,), (b,), (b, 1)):
        raise ValueError(f"weights must be a number or a tensor of 1 or B = {b} elements "
                         f"([], [1], [B] or [B, 1]), got shape {tuple(weights.shape)}")
    check_same_device("weights", user_emb, weights, "user_emb")
    return weights


def _shifts(shifts, num_negative_samples, b, generator, device):
    if num_negative_samples is not None:
        if isinstance(num_negative_samples, bool) or not isinstance(num_negative_samples, int):
            raise TypeError(f"num_negative_samples must be an int, got {type(num_negative_samples).__name__}")
        if num_negative_samples < 1:
            raise ValueError(f"num_negative_samples must be >= 1, got {num_negative_samples}")
    if shifts is None:
        if num_negative_samples is None:
            raise ValueError("num_negative_samples is required when shifts is not given")
        k = num_negative_samples
        if b > 0 and k >= b:
            raise ValueError(f"num_negative_samples must be < the batch size B = {b}, got {k}")
        if b == 0:
            return torch.ones(k, dtype=torch.int64, device=device)
        return torch.randint(1, b, (k,), generator=generator, device=device)
    if not isinstance(shifts, torch.Tensor):
        raise TypeError(f"shifts must be None or an integer tensor, got {type(shifts).__name__}")
    if shifts.dtype not in _INT_DTYPES:
        raise TypeError(f"shifts must be an integer tensor, got {shifts.dtype}")
    if shifts.dim() != 1 or shifts.numel() < 1:
        raise ValueError(f"shifts must be a non-empty 1-D tensor [K], got shape {tuple(shifts.shape)}")
    if num_negative_samples is not None and shifts.numel() != num_negative_samples:
        raise ValueError(f"shifts has {shifts.numel()} elements but num_negative_samples is "
                         f"{num_negative_samples}")
    if shifts.device != torch.device(device):
        raise ValueError(f"shifts is on device {shifts.device} but user_emb is on device {device}")
    if b > 0 and not torch.compiler.is_compiling():
        if bool(((shifts < 1) | (shifts > b - 1)).any()):
            raise ValueError(f"shifts must hold values in [1, B - 1] = [1, {b - 1}], got "
                             f"{shifts.tolist()}")
    return shifts


def sv_softmax_loss(user_emb, item_emb, labels, num_negative_samples=None, embed_normed=False,
                    weights=1.0, gamma=1.0, margin=0.0, t=1.0, *, shifts=None, generator=None,
                    reduction="sum_by_nonzero_weights", backend="auto"):
    """Support-vector-guided softmax with in-batch rolled negatives (EasyRec's
    ``softmax_loss_with_negative_mining``, spec 6.1).

    With ``u = l2n(user_emb)``, ``v = l2n(item_emb)`` (``l2n(a) = a / sqrt(max(sum a^2, 1e-12))``,
    skipped when ``embed_normed``) and K shifts ``r_k``, row i (kept when ``labels[i] > 0``) has
    the positive ``c+ = u_i.v_i - margin`` and the negatives ``c-_k = u_i.v_{(i - r_k) mod B}``; a
    negative with ``c+ - c-_k < 0`` is hard and becomes ``t c-_k + t - 1``; the row loss is
    ``-log softmax(gamma [c+, h_1..h_K])_0``. The loss is reduced over kept rows with the row
    weights (``reduction``) and a NaN result is replaced by 0, as EasyRec does (one departure: a
    kept row of weight 0 contributes 0 even when its own loss is NaN, where EasyRec's NaN * 0 would
    zero the whole loss).

    Args:
        user_emb, item_emb: [B, D] float16/bfloat16/float32/float64, same dtype; both differentiated.
        labels: [B] or [B, 1]; rows with ``labels <= 0`` are dropped.
        num_negative_samples: K >= 1 and < B; required unless ``shifts`` is given.
        embed_normed: the embeddings are already l2-normalised. Default False.
        weights: a number or a [B] tensor (a sample weight per row). Default 1.
        gamma: logit scale, > 0. Default 1.
        margin: subtracted from the positive cosine. Default 0.
        t: hard-negative coefficient (``coefficient_of_support_vector``). Default 1 (plain softmax).
        shifts: int [K] with values in [1, B - 1]; default: drawn uniformly each call (with
            ``generator``), like EasyRec. Give them for reproducible losses.
        reduction: ``"sum_by_nonzero_weights"`` (default, EasyRec: sum of ``w l`` over the number
            of kept rows with ``w != 0``; 0 when there is none), ``"mean"`` (over kept rows) or
            ``"sum"``.
        backend: ``"auto"``, ``"reference"``, ``"triton"``, ``"cuda"`` or ``"cpu"``.

    Returns a 0-d loss in the embeddings' dtype. The fused backends never materialise the [B, K, D]
    gather: pass 1 reads each row's K + 1 item rows (consecutive rows read consecutive rows: a roll)
    and writes the user gradient; pass 2 gathers the K + 1 user rows that read each item row.
    """
    _check_embeddings(user_emb, item_emb)
    b = user_emb.shape[0]
    _check_labels(labels, b, user_emb)
    if b == 1:
        raise ValueError("user_emb must have B >= 2 rows: the negatives are other rows of the batch")
    if not isinstance(embed_normed, bool):
        raise TypeError(f"embed_normed must be a bool, got {type(embed_normed).__name__}")
    weights = _check_weights(weights, b, user_emb)
    gamma = check_number("gamma", gamma, lo=0.0, lo_open=True)
    margin = check_number("margin", margin)
    t = check_number("t", t)
    check_choice("reduction", reduction, tuple(REDUCTIONS))
    shifts = _shifts(shifts, num_negative_samples, b, generator, user_emb.device)
    check_input(user_emb)
    name = _backends.choose(backend, user_emb, "sv_softmax_fwd", weights)
    if name == "reference":
        return reference.sv_softmax_loss_reference(
            user_emb, item_emb, labels, shifts, embed_normed,
            1.0 if weights is None else weights.reshape(-1), gamma, margin, t, reduction)
    return run_sv_softmax(name, user_emb, item_emb, labels, shifts, weights,
                          embed_normed=embed_normed, margin=margin, gamma=gamma, t=t,
                          reduction=reduction)
