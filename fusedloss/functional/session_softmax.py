"""Per-session softmax losses of EasyRec (spec 4.1-4.3): LISTWISE_RANK_LOSS,
LISTWISE_DISTILL_LOSS and JRC_LOSS, at O(B) extra memory.

Sessions: ``session_ids`` [B] integers in any order and with any values (None: one session). The
fused backends sort by session once (O(B log B)) and run one softmax per session in three sweeps
over its items; no [B, B] tensor exists (the ``reference`` backend builds the [B, B] masks EasyRec
builds). Logits are differentiated; labels, session ids and weights are not.
"""

import torch

from fusedloss import reference
from fusedloss._validate import as_weight, check_choice, check_input, check_number, check_same_device
from fusedloss.ops import _backends
from fusedloss.ops import session_softmax as _ops

JRC_STRATEGIES = ("fixed", "random_uniform", "random_normal", "random_bernoulli", "uncertainty")


def _check_session_ids(session_ids, b, input, *, required=False):
    if session_ids is None:
        if required:
            raise ValueError("session_ids is required (EasyRec's session_name)")
        return None
    if not isinstance(session_ids, torch.Tensor):
        raise TypeError(f"session_ids must be None or an integer tensor, got {type(session_ids).__name__}")
    if session_ids.dtype.is_floating_point or session_ids.dtype.is_complex or session_ids.dtype == torch.bool:
        raise TypeError(f"session_ids must be an integer tensor, got {session_ids.dtype}")
    if tuple(session_ids.shape) not in ((b,), (b, 1)):
        raise ValueError(f"session_ids must have shape ({b},) or ({b}, 1), got {tuple(session_ids.shape)}")
    check_same_device("session_ids", input, session_ids)
    return session_ids.reshape(-1)


def _check_scores(input, target):
    check_input(input)
    if input.dim() == 2 and input.shape[1] == 1:
        input = input.reshape(-1)
    if input.dim() != 1:
        raise ValueError(f"input must be 1-D scores [B] (or [B, 1]), got shape {tuple(input.shape)}")
    b = input.shape[0]
    if not isinstance(target, torch.Tensor):
        raise TypeError(f"target must be a torch.Tensor, got {type(target).__name__}")
    if target.dtype.is_complex:
        raise TypeError(f"target must be a real or bool tensor, got {target.dtype}")
    if tuple(target.shape) not in ((b,), (b, 1)):
        raise ValueError(f"target must have shape ({b},) or ({b}, 1), got {tuple(target.shape)}")
    check_same_device("target", input, target)
    return input, target.reshape(-1)


def _scalar_weight(weight) -> float:
    if isinstance(weight, torch.Tensor):
        raise TypeError("weight of a listwise loss must be a number: EasyRec ignores tensor sample "
                        "weights for LISTWISE_RANK_LOSS / LISTWISE_DISTILL_LOSS (it only logs an "
                        "error), so fusedloss refuses them instead of dropping them silently")
    return check_number("weight", weight)


def _scale_logits(input, logit_scale, logit_bias):
    """EasyRec's scale_logits: ``s |a| + b`` with trainable scalars a, b (fusedloss.nn owns them)."""
    if logit_scale is None and logit_bias is None:
        return input
    for name, t in (("logit_scale", logit_scale), ("logit_bias", logit_bias)):
        if t is not None and (not isinstance(t, torch.Tensor) or t.numel() != 1):
            raise TypeError(f"{name} must be None or a one-element tensor")
    if logit_scale is not None:
        input = input * logit_scale.reshape(()).abs().to(input.dtype)
    if logit_bias is not None:
        input = input + logit_bias.reshape(()).to(input.dtype)
    return input


def _listwise(kind, input, target, session_ids, weight, temperature, flags, clip_max, backend,
              ref_fn):
    name = _backends.choose(backend, input, "session_softmax_fwd")
    if name == "reference":
        return ref_fn()
    num, den = _ops.run_session_softmax(name, input[:, None], target, session_ids, None,
                                        kind=kind, flags=flags, temperature=temperature,
                                        clip_max=clip_max)
    return (num[0] / den[0] * weight).to(input.dtype)


def listwise_rank_loss(input, target, session_ids=None, *, weight=1.0, temperature=1.0,
                       label_is_logits=False, transform_fn=None, logit_scale=None, logit_bias=None,
                       backend="auto"):
    """LISTWISE_RANK_LOSS (spec 4.1): per session g, ``-sum_i q_i log_softmax(s_g)_i``; the mean over
    sessions, times ``weight``.

    ``s = input / T``. ``q = y`` (the raw labels, not normalised: a session's loss scales with its
    label mass, and a session with mass 0 adds 0 but counts in the mean) or, with
    ``label_is_logits``, ``q = softmax_g(y)``, where ``y = target / T`` with ``label_is_logits``
    (else ``target``), then ``transform_fn(y)`` if given.

    Args:
        input: [B] (or [B, 1]) scores, float16/bfloat16/float32/float64.
        target: [B] labels (float, int or bool).
        session_ids: [B] integers, any order and values; None: the whole batch is one session.
        weight: a number (default 1). Tensor sample weights raise TypeError (EasyRec ignores them).
        temperature: T > 0, default 1.
        label_is_logits: labels are logits of the target distribution. Default False.
        transform_fn: a callable applied to the labels (EasyRec's ``transform_fn``). Default None.
        logit_scale, logit_bias: one-element tensors a, b for EasyRec's ``scale_logits``: the scores
            become ``input |a| + b`` before T (``fusedloss.nn.ListwiseRankLoss`` owns them).
        backend: ``"auto"``, ``"reference"``, ``"triton"``, ``"cuda"`` or ``"cpu"``.

    Returns a 0-d loss in the input's dtype; NaN for an empty batch (EasyRec's mean of nothing).
    Gradient ``((sum_g q) softmax_g(s) - q) / (T G)``.
    """
    input, target = _check_scores(input, target)
    b = input.shape[0]
    session_ids = _check_session_ids(session_ids, b, input)
    weight = _scalar_weight(weight)
    temperature = check_number("temperature", temperature, lo=0.0, lo_open=True)
    if not isinstance(label_is_logits, bool):
        raise TypeError(f"label_is_logits must be a bool, got {type(label_is_logits).__name__}")
    if transform_fn is not None and not callable(transform_fn):
        raise TypeError(f"transform_fn must be None or a callable, got {type(transform_fn).__name__}")
    input = _scale_logits(input, logit_scale, logit_bias)
    flags = _ops.LABEL_IS_LOGITS if label_is_logits else 0
    y = target
    if transform_fn is not None:
        acc = _ops.acc_dtype(input)
        y = target.to(acc)
        y = transform_fn(y / temperature if label_is_logits else y).to(acc)
        if y.shape != target.shape:
            raise ValueError(f"transform_fn must keep the labels' shape {tuple(target.shape)}, got "
                             f"{tuple(y.shape)}")
        flags |= _ops.TARGETS_GIVEN
    return _listwise(
        "rank", input, y, session_ids, weight, temperature, flags, 512.0, backend,
        lambda: reference.listwise_rank_loss_reference(input, target, session_ids, temperature,
                                                       label_is_logits, transform_fn, weight))


def listwise_distill_loss(input, target, session_ids=None, *, weight=1.0, temperature=1.0,
                          label_clip_max_value=512.0, transform_fn=None, logit_scale=None,
                          logit_bias=None, backend="auto"):
    """LISTWISE_DISTILL_LOSS (spec 4.2): distil a teacher's ranking given as rank positions.

    ``r = clip(target, 1, M)`` (1 is the best rank), ``r' = transform_fn(r)`` or
    ``log(1 + M) - log(r)``, ``q = r' / sum_g r'`` per session;
    ``loss = mean_g -sum_i q_i log_softmax(input_g / T)_i``, times ``weight``.

    Args as ``listwise_rank_loss``, plus ``label_clip_max_value`` M >= 1 (default 512).
    Returns a 0-d loss in the input's dtype; NaN for an empty batch, or for a session whose
    transformed labels sum to 0 (EasyRec's 0 / 0). Gradient ``(softmax_g(s) - q) / (T G)``.
    """
    input, target = _check_scores(input, target)
    b = input.shape[0]
    session_ids = _check_session_ids(session_ids, b, input)
    weight = _scalar_weight(weight)
    temperature = check_number("temperature", temperature, lo=0.0, lo_open=True)
    clip_max = check_number("label_clip_max_value", label_clip_max_value, lo=1.0)
    if transform_fn is not None and not callable(transform_fn):
        raise TypeError(f"transform_fn must be None or a callable, got {type(transform_fn).__name__}")
    input = _scale_logits(input, logit_scale, logit_bias)
    flags, y = 0, target
    if transform_fn is not None:
        acc = _ops.acc_dtype(input)
        y = transform_fn(target.to(acc).clamp(1.0, clip_max)).to(acc)
        if y.shape != target.shape:
            raise ValueError(f"transform_fn must keep the labels' shape {tuple(target.shape)}, got "
                             f"{tuple(y.shape)}")
        flags = _ops.TARGETS_GIVEN
    return _listwise(
        "distill", input, y, session_ids, weight, temperature, flags, clip_max, backend,
        lambda: reference.listwise_distill_loss_reference(input, target, session_ids, temperature,
                                                          clip_max, transform_fn, weight))


def _jrc_weights(strategy, uncertainty, alpha, generator, device):
    """(a, b, extra): L = a CE + b GE + extra, per EasyRec's loss_weight_strategy (spec 4.3)."""
    if strategy == "fixed":
        return alpha, 1.0 - alpha, 0.0
    if strategy == "random_uniform":
        u = torch.rand((), generator=generator, device=device)
        return u, 1.0 - u, 0.0
    if strategy == "random_normal":
        ab = torch.softmax(torch.randn(2, generator=generator, device=device), 0)
        return ab[0], ab[1], 0.0
    if strategy == "random_bernoulli":
        draws = torch.bernoulli(torch.full((2,), 0.5, device=device), generator=generator)
        ok = draws.sum() == 1
        return torch.where(ok, draws[0], 0.5), torch.where(ok, draws[1], 0.5), 0.0
    # uncertainty: exp(-u1) CE + u1/2 + exp(-u2) GE + u2/2
    if not isinstance(uncertainty, torch.Tensor) or uncertainty.numel() != 2:
        raise TypeError("loss_weight_strategy='uncertainty' needs uncertainty: a tensor of 2 "
                        "trainable log-variances (u1, u2) (fusedloss.nn.JRCLoss owns them)")
    u = uncertainty.reshape(2)
    return torch.exp(-u[0]), torch.exp(-u[1]), 0.5 * (u[0] + u[1])


def jrc_loss(logits, labels, session_ids, *, weight=None, alpha=0.5, same_label_loss=True,
             loss_weight_strategy="fixed", uncertainty=None, generator=None, backend="auto"):
    """JRC_LOSS (spec 4.3): joint ranking and calibration over two-column logits.

    ``CE`` = SBNZ of the two-class softmax cross-entropy of ``logits`` at ``labels`` with weight w.
    ``GE`` with ``same_label_loss`` (default): per session s, the listwise loss of its positives on
    column 1 and of its negatives on column 0, each over the whole session, weighted by the
    session's mean weight; ``GE = (1/B) sum_s w_mean_s G_s``. Without: item j's own column against
    itself and the opposite-label items of its session, ``GE = (1/B) sum_j w_j ce_j``. Singleton
    sessions add 0. The loss is ``alpha CE + (1 - alpha) GE`` ('fixed'), or the
    ``loss_weight_strategy``'s combination: 'random_uniform' (u ~ U[0, 1): u, 1 - u),
    'random_normal' (softmax of two normal draws), 'random_bernoulli' (two Bernoulli(0.5) draws if
    they sum to 1, else 0.5, 0.5), 'uncertainty' (``exp(-u1) CE + u1/2 + exp(-u2) GE + u2/2``).

    Args:
        logits: [B, 2] (column 0: the negative logit, column 1: the positive logit).
        labels: [B] or [B, 1] integers (or bool) in {0, 1}.
        session_ids: [B] integers, required (EasyRec's ``session_name``).
        weight: None, a number, or a [B] tensor of sample weights.
        alpha: CE's weight in [0, 1] for 'fixed'. Default 0.5.
        same_label_loss: default True.
        loss_weight_strategy: default 'fixed'.
        uncertainty: the [2] trainable tensor of 'uncertainty' (``fusedloss.nn.JRCLoss`` owns it).
        generator: a torch.Generator for the random strategies.
        backend: ``"auto"``, ``"reference"``, ``"triton"``, ``"cuda"`` or ``"cpu"``.

    Returns a 0-d loss in the logits' dtype; NaN for an empty batch (EasyRec's mean over nothing).
    Departures from EasyRec, both documented bugs there: a number ``weight`` scales the loss once
    (EasyRec multiplies it in a second time), and same-label competitors are excluded for every
    weight (EasyRec's ``-1e9 w`` mask fails for w <= 0).
    """
    check_input(logits)
    if logits.dim() != 2 or logits.shape[1] != 2:
        raise ValueError(f"logits must be [B, 2] (num_class 2), got shape {tuple(logits.shape)}")
    b = logits.shape[0]
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"labels must be a torch.Tensor, got {type(labels).__name__}")
    if labels.dtype.is_floating_point or labels.dtype.is_complex:
        raise TypeError(f"labels must be an integer or bool tensor (class indices), got {labels.dtype}")
    if tuple(labels.shape) not in ((b,), (b, 1)):
        raise ValueError(f"labels must have shape ({b},) or ({b}, 1), got {tuple(labels.shape)}")
    check_same_device("labels", logits, labels, "logits")
    labels = labels.reshape(-1)
    if b and not torch.compiler.is_compiling() and bool(((labels != 0) & (labels != 1)).any()):
        raise ValueError("labels must hold only 0 and 1 (JRC has two classes)")
    session_ids = _check_session_ids(session_ids, b, logits, required=True)
    if weight is not None:
        weight = as_weight("weight", weight, logits[:, 0])
    alpha = check_number("alpha", alpha, lo=0.0, hi=1.0)
    if not isinstance(same_label_loss, bool):
        raise TypeError(f"same_label_loss must be a bool, got {type(same_label_loss).__name__}")
    check_choice("loss_weight_strategy", loss_weight_strategy, JRC_STRATEGIES)
    name = _backends.choose(backend, logits, "session_softmax_fwd", weight)
    if name == "reference":
        ce, ge = reference.jrc_loss_parts_reference(logits, labels, session_ids, weight,
                                                    same_label_loss)
    else:
        kind = "jrc" if same_label_loss else "jrc_split"
        num, den = _ops.run_session_softmax(name, logits, labels, session_ids, weight, kind=kind)
        ce = torch.where(den[0] != 0, num[0] / torch.where(den[0] != 0, den[0], 1.0), 0.0)
        ge = num[1] / den[1]
    a, bw, extra = _jrc_weights(loss_weight_strategy, uncertainty, alpha, generator, logits.device)
    return (a * ce + bw * ge + extra).to(logits.dtype)
