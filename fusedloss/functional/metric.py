"""In-batch metric-learning losses of EasyRec from embeddings (spec 6.2 CIRCLE_LOSS, 6.3
MULTI_SIMILARITY_LOSS), tiled: the fused backends never hold the [B, B] cosine matrix.

Common: ``embeddings`` [B, D] (l2-normalised first unless ``embed_normed``), ``labels`` [B] (any
dtype; compared for equality), ``session_ids`` [B] or None. Anchor i's positives are the other rows
with its label (and session, when given); its negatives every other row. Only the embeddings are
differentiated. Cost: two passes of B^2 D multiply-adds (the cosines are computed twice: once for
the row statistics, once for the gradient); extra memory O(B).
"""

import torch

from fusedloss import reference
from fusedloss._validate import check_input, check_number, check_same_device
from fusedloss.ops import _backends
from fusedloss.ops.metric import run_metric


def _as_ids(name, t, b, embeddings):
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype.is_complex:
        raise TypeError(f"{name} must be a real or bool tensor, got {t.dtype}")
    if tuple(t.shape) not in ((b,), (b, 1)):
        raise ValueError(f"{name} must have shape ({b},) or ({b}, 1), got {tuple(t.shape)}")
    check_same_device(name, embeddings, t, "embeddings")
    t = t.reshape(-1)
    if t.dtype.is_floating_point:  # equality classes of the values, exactly
        # unique over an int64 key, not the floats: torch 2.11's fake _unique2 types the inverse as
        # the input's dtype, and under torch.compile the int64 indices were then read as floats.
        # Key: the float64 value's bits, -0.0 as +0.0, each NaN a NaN pattern of its own (NaN != NaN)
        v = t.to(torch.float64)
        v = torch.where(v == 0, 0.0, v)
        nan_keys = torch.iinfo(torch.int64).max - torch.arange(v.numel(), device=v.device)
        t = torch.unique(torch.where(v.isnan(), nan_keys, v.view(torch.int64)), return_inverse=True)[1]
    return t


def _check(embeddings, labels, session_ids, embed_normed):
    check_input(embeddings)
    if embeddings.dim() != 2:
        raise ValueError(f"embeddings must be 2-D [B, D], got shape {tuple(embeddings.shape)}")
    b = embeddings.shape[0]
    # EasyRec applies the session condition only when the ids are not the labels tensor itself
    if session_ids is labels:
        session_ids = None
    labels = _as_ids("labels", labels, b, embeddings)
    if session_ids is not None:
        session_ids = _as_ids("session_ids", session_ids, b, embeddings)
    if not isinstance(embed_normed, bool):
        raise TypeError(f"embed_normed must be a bool, got {type(embed_normed).__name__}")
    return labels, session_ids


def circle_loss(embeddings, labels, session_ids=None, *, margin=0.25, gamma=32.0,
                embed_normed=False, backend="auto"):
    """CIRCLE_LOSS (spec 6.2; Sun et al. 2020) over the in-batch cosine matrix S.

    ``alpha+ = relu(1 + m - S)``, ``alpha- = relu(S + m)`` (both detached),
    ``lambda+ = -gamma alpha+ (S - (1 - m))`` on positives, ``lambda- = gamma alpha- (S - m)`` on
    negatives; ``loss = mean_i softplus(LSE_j lambda-_ij + LSE_j lambda+_ij)``. An anchor without
    positives or negatives adds 0 (EasyRec's -1e12 mask) and still counts in the mean.

    Args:
        embeddings: [B, D] float16/bfloat16/float32/float64.
        labels: [B] (or [B, 1]) class ids.
        session_ids: [B] (or [B, 1]) or None; ignored when it is the labels tensor itself.
        margin: m, default 0.25. gamma: scale, > 0, default 32.
        embed_normed: the rows are already l2-normalised. Default False.
        backend: ``"auto"``, ``"reference"``, ``"triton"``, ``"cuda"`` or ``"cpu"``.

    Returns a 0-d loss in the embeddings' dtype; NaN for B = 0.
    """
    labels, session_ids = _check(embeddings, labels, session_ids, embed_normed)
    margin = check_number("margin", margin)
    gamma = check_number("gamma", gamma, lo=0.0, lo_open=True)
    name = _backends.choose(backend, embeddings, "metric_fwd")
    if name == "reference":
        return reference.circle_loss_reference(embeddings, labels, session_ids, margin, gamma,
                                               embed_normed)
    return run_metric(name, embeddings, labels, session_ids, kind="circle",
                      embed_normed=embed_normed, p0=margin, p1=gamma)


def multi_similarity_loss(embeddings, labels, session_ids=None, *, alpha=2.0, beta=50.0, lamb=1.0,
                          eps=0.1, embed_normed=False, easyrec_compat_ms_bug=False,
                          backend="auto"):
    """MULTI_SIMILARITY_LOSS (spec 6.3; Wang et al. 2019), the intended formula.

    With ``S+ = max(S, 0)``, per anchor c:
    ``(1/alpha) log(1 + sum_pos e^{-alpha (S+ - lamb)}) + (1/beta) log(1 + sum_neg e^{beta (S+ -
    lamb)})``, averaged over the B anchors.

    Args:
        embeddings, labels, session_ids, embed_normed, backend: as ``circle_loss``.
        alpha: positive scale, > 0, default 2. beta: negative scale, > 0, default 50.
        lamb: the similarity threshold lambda, default 1.
        eps: accepted for config compatibility and unused, as in EasyRec (it only matters with
            ``ms_mining``, which no EasyRec caller enables).
        easyrec_compat_ms_bug: compute EasyRec's as-coded loss instead (its [B, B, B] broadcast of
            the masks, spec 6.3: a different value, O(B^3) memory). Only the ``reference`` backend
            has it; ``auto`` then picks it. Default False.

    Returns a 0-d loss in the embeddings' dtype; NaN for B = 0.
    """
    labels, session_ids = _check(embeddings, labels, session_ids, embed_normed)
    alpha = check_number("alpha", alpha, lo=0.0, lo_open=True)
    beta = check_number("beta", beta, lo=0.0, lo_open=True)
    lamb = check_number("lamb", lamb)
    check_number("eps", eps)
    if not isinstance(easyrec_compat_ms_bug, bool):
        raise TypeError(f"easyrec_compat_ms_bug must be a bool, got {type(easyrec_compat_ms_bug).__name__}")
    if easyrec_compat_ms_bug:
        if backend not in ("auto", "reference"):
            raise ValueError(f"easyrec_compat_ms_bug=True runs on backend='reference' only (an "
                             f"O(B^3) bug reproduction), got backend={backend!r}")
        return reference.multi_similarity_loss_easyrec_reference(embeddings, labels, session_ids,
                                                                 alpha, beta, lamb, embed_normed)
    name = _backends.choose(backend, embeddings, "metric_fwd")
    if name == "reference":
        return reference.multi_similarity_loss_reference(embeddings, labels, session_ids, alpha,
                                                         beta, lamb, embed_normed)
    return run_metric(name, embeddings, labels, session_ids, kind="multi_similarity",
                      embed_normed=embed_normed, p0=alpha, p1=beta, p2=lamb)
