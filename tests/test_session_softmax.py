"""Per-session softmax losses (EasyRec LISTWISE_RANK_LOSS, LISTWISE_DISTILL_LOSS, JRC_LOSS; spec
4.1-4.3): ``fusedloss.listwise_rank_loss``, ``listwise_distill_loss``, ``jrc_loss``, their modules, and
the ops ``fusedloss::session_softmax_fwd`` (C++ cpu/cuda) and ``fusedloss::session_softmax_fwd_triton``.

Truth: ``fusedloss.reference`` (``backend="reference"``, [B, B] session masks the way EasyRec builds
them) run in float64 on fresh random inputs, loss and gradient (with a random grad_output). The
reference is anchored outside the package by ``spec_*`` below: the spec's per-session formulas
written with segment sums in float64 (O(B), no [B, B] matrix, gradients by autograd), by the spec's
closed-form gradients (4.1, 4.3) and by hand values. The O(B) form is also the truth of the large
cpu cases (B = 20,000), where the reference's [B, B] masks would take gigabytes.
Low precision (fp32, fp16, bf16): flash-attn's bound (``lowp_bound``): at most twice as far from the
float64 truth as the reference computed in the same dtype, plus a few ulps.

Sizes: B = 0 (empty: NaN, EasyRec's mean over nothing), 1, 2, 13 (gradcheck), 37 (odd, the default
random case: ~7 unsorted sessions of arbitrary int64 ids), 64 (the largest interpreter case: one
session of 58 items plus three pairs), 131 and 300 (cpu), 20,000 (cpu: sessions of ~50, and one
session). The Triton interpreter (~ms per program, one core) gets a subset with B <= 64 that still
touches every option.
"""

import math

import pytest
import torch
from conftest import (
    ALL,
    DEVICES,
    FUSED,
    ID_POOL,
    NEEDS_CUDA,
    backend_cases,
    backends_for,
    canary,
    fused_backends_for,
    interpreted,
    loss_and_grad,
    lowp_bound,
    param_id,
)

import fusedloss
from fusedloss import nn as fl_nn
from fusedloss.ops import session_softmax as ss_ops
from fusedloss.ops.pairwise import session_layout

LOWP = [torch.float32, torch.float16, torch.bfloat16]
# float64 against the float64 reference: only the order of summation differs.
RTOL64, ATOL64 = 1e-10, 1e-12
# ulps of the largest magnitude allowed on top of twice torch's own error (lowp_bound)
LOWP_FACTOR = {torch.float32: 16.0, torch.float16: 2.0, torch.bfloat16: 2.0}

FNS = {
    "rank": fusedloss.listwise_rank_loss,
    "distill": fusedloss.listwise_distill_loss,
    "jrc": fusedloss.jrc_loss,
}
INF = float("inf")


# ----------------------------------------------------------------------------------------------
# input builders
# ----------------------------------------------------------------------------------------------


def make_scores(b, dtype=torch.float64, device="cpu", scale=2.0, cols=None):
    """Fresh ``randn * scale`` scores [B] (or [B, cols]), rounded from float64 to ``dtype``."""
    shape = (b,) if cols is None else (b, cols)
    x = torch.randn(shape, dtype=torch.float64) * scale
    return x.to(device=device, dtype=dtype)


def make_sessions(kind, b, device="cpu"):
    """None; "one": a single id; "size1": every item alone; "random": ~B/5 unsorted sessions of
    arbitrary int64 ids; "int32", "uint8": the same in int32, uint8; "sorted": contiguous ids;
    "huge": one session of B - 6 items and three pairs, shuffled; "col": "random" as [B, 1]."""
    if kind is None:
        return None
    if kind == "one":
        ids_ = torch.full((b,), -(2**40), dtype=torch.int64)
    elif kind == "size1":
        ids_ = torch.randperm(b) * 1000 - 500
    elif kind == "sorted":
        ids_ = torch.sort(torch.randint(0, max(1, b // 5), (b,))).values
    elif kind == "huge":
        ids_ = torch.full((b,), 2**62, dtype=torch.int64)
        ids_[: min(6, b)] = torch.tensor([-3, -3, 5, 5, -(2**63), -(2**63)])[: min(6, b)]
        ids_ = ids_[torch.randperm(b)]
    else:
        n = max(1, b // 5)
        pool = torch.tensor(ID_POOL, dtype=torch.int64)
        if n > len(ID_POOL):
            pool = torch.cat([pool, torch.randint(-(2**62), 2**62, (n - len(ID_POOL),))])
        ids_ = pool[:n][torch.randint(0, n, (b,))]
        if kind == "int32":
            ids_ = (ids_ % 1000003 - 500000).to(torch.int32)
        elif kind == "uint8":
            ids_ = (ids_ % 251).to(torch.uint8)
    ids_ = ids_.to(device)
    return ids_[:, None] if kind == "col" else ids_


def make_rank_labels(b, kind="graded", device="cpu"):
    """graded: float64 0..3; binary: float 0/1; int: int64 0..3; bool; soft: uniform [0, 1);
    equal: every label 1; sparse: mostly 0 (sessions of label mass 0 appear); logits: N(0, 2^2)
    (for label_is_logits)."""
    if kind == "equal":
        return torch.ones(b, dtype=torch.float64, device=device)
    if kind == "soft":
        return torch.rand(b, dtype=torch.float64, device=device)
    if kind == "logits":
        return torch.randn(b, dtype=torch.float64, device=device) * 2
    if kind == "sparse":
        return (torch.rand(b) < 0.15).double().to(device)
    hi = 2 if kind in ("binary", "bool") else 4
    y = torch.randint(0, hi, (b,))
    if b >= 2:
        y[0], y[1] = 0, hi - 1
    if kind == "int":
        return y.to(device)
    if kind == "bool":
        return y.bool().to(device)
    return y.to(device=device, dtype=torch.float64)


def make_ranks(b, kind="ranks", device="cpu"):
    """Teacher rank positions: "ranks": float 1..12; "clip": values outside [1, M] too (-1, 0, 0.5
    clip to 1; 700 clips to M); "int": int64 1..12."""
    if kind == "clip":
        pool = torch.tensor([-1.0, 0.0, 0.5, 1.0, 2.0, 3.5, 5.0, 9.0, 700.0], dtype=torch.float64)
        return pool[torch.randint(0, len(pool), (b,))].to(device)
    r = torch.randint(1, 13, (b,))
    return r.to(device) if kind == "int" else r.to(device=device, dtype=torch.float64)


def make_jrc_labels(b, kind="int", device="cpu"):
    """{0, 1} class indices: int (int64, both present), int32, bool, col ([B, 1]), all0, all1."""
    if kind == "all0":
        return torch.zeros(b, dtype=torch.int64, device=device)
    if kind == "all1":
        return torch.ones(b, dtype=torch.int64, device=device)
    y = torch.randint(0, 2, (b,))
    if b >= 2:
        y[0], y[1] = 0, 1
    if kind == "int32":
        y = y.to(torch.int32)
    elif kind == "bool":
        y = y.bool()
    elif kind == "col":
        y = y[:, None]
    return y.to(device)


def make_jrc_weight(spec, b, device="cpu"):
    """None; scalar (0.7); tensor0d; one ([1]); B (positive); zeros ([B], ~1/3 exact zeros);
    neg ([B], some negative); allzero."""
    if spec is None:
        return None
    if spec == "scalar":
        return 0.7
    w = torch.rand(() if spec == "tensor0d" else ((1,) if spec == "one" else (b,)), dtype=torch.float64)
    w = w * 1.5 + 0.25
    if spec == "zeros":
        w = w * (torch.rand(b) > 0.33)
    elif spec == "neg":
        w = w * torch.where(torch.rand(b) > 0.3, 1.0, -1.0).double()
    elif spec == "allzero":
        w = w * 0
    return w.to(device)


# ----------------------------------------------------------------------------------------------
# the spec's per-session formulas, O(B), float64 (independent of the package)
# ----------------------------------------------------------------------------------------------


def _groups(sid, b, device):
    """(inv, G): each item's session index in 0..G-1; no session ids: one session (none at B = 0)."""
    if sid is None:
        return torch.zeros(b, dtype=torch.int64, device=device), (1 if b else 0)
    _, inv = torch.unique(sid.reshape(-1), return_inverse=True)
    return inv, (int(inv.max()) + 1 if b else 0)


def seg_sum(v, inv, g):
    return v.new_zeros(g).index_add(0, inv, v)


def seg_lse(v, inv, g, mask=None):
    """Per session: log sum exp of v over the items (with ``mask``: over those); -inf if none."""
    if mask is not None:
        v = torch.where(mask, v, -INF)
    m = v.new_full((g,), -INF).scatter_reduce(0, inv, v.detach(), "amax")
    m = torch.where(torch.isfinite(m), m, 0.0)
    e = seg_sum(torch.exp(v - m[inv]), inv, g)
    some = e > 0
    return torch.where(some, m + torch.log(torch.where(some, e, 1.0)), -INF)


def spec_listwise_parts(kind, x, y, sid, *, temperature=1.0, label_is_logits=False, transform_fn=None,
                        label_clip_max_value=512.0):
    """(sum over sessions of l_g, G): spec 4.1 (kind "rank") or 4.2 ("distill"), x float64 [B]."""
    b = x.shape[0]
    inv, g = _groups(sid, b, x.device)
    s = x.reshape(-1) / temperature
    yy = y.reshape(-1).double()
    if kind == "rank":
        if label_is_logits:
            yy = yy / temperature
        if transform_fn is not None:
            yy = transform_fn(yy)
        q = torch.exp(yy - seg_lse(yy, inv, g)[inv]) if label_is_logits else yy  # raw labels
    else:
        m = float(label_clip_max_value)
        r = yy.clamp(1.0, m)
        r = transform_fn(r) if transform_fn is not None else math.log1p(m) - torch.log(r)
        q = r / seg_sum(r, inv, g)[inv]
    log_softmax = s - seg_lse(s, inv, g)[inv]
    return seg_sum(-q * log_softmax, inv, g).sum(), g


def spec_listwise(kind, x, y, sid, *, weight=1.0, **kw):
    """mean over sessions times the scalar weight; NaN for B = 0."""
    num, g = spec_listwise_parts(kind, x, y, sid, **kw)
    return num / g * weight if g else num * float("nan")


def spec_jrc_parts(z, y, sid, w=None, same_label_loss=True):
    """(CE numerator, CE denominator, GE numerator, GE denominator) of spec 4.3: CE = SBNZ of the
    two-class softmax CE; GE numerator = sum_j w_j G_s(j) / n_s(j) (same_label_loss) or sum_j w_j
    ce_j over {j} and its session's opposite-label items; GE denominator B."""
    b = z.shape[0]
    inv, g = _groups(sid, b, z.device)
    if w is None:
        w = torch.ones(b, dtype=torch.float64, device=z.device)
    else:
        w = torch.as_tensor(w, dtype=torch.float64, device=z.device).reshape(-1).expand(b)
    c = y.reshape(-1).long()
    pos = c == 1
    zc = z.gather(1, c[:, None])[:, 0]
    ce_rows = torch.logsumexp(z, 1) - zc
    ce_num, ce_den = (w * ce_rows).sum(), (w != 0).sum().double()
    if same_label_loss:
        lse0, lse1 = seg_lse(z[:, 0], inv, g), seg_lse(z[:, 1], inv, g)
        # G_s: positives on column 1, negatives on column 0, each over the whole session
        g_s = seg_sum(torch.where(pos, lse1[inv], lse0[inv]) - zc, inv, g)
        n = seg_sum(torch.ones_like(zc), inv, g)
        ge_num = (w * g_s[inv] / n[inv]).sum()
    else:
        m1 = seg_lse(z[:, 1], inv, g, mask=~pos)  # column 1 over the session's label-0 items
        m0 = seg_lse(z[:, 0], inv, g, mask=pos)   # column 0 over its label-1 items
        lse_j = torch.logaddexp(zc, torch.where(pos, m1[inv], m0[inv]))
        ge_num = (w * (lse_j - zc)).sum()
    return ce_num, ce_den, ge_num, float(b)


def spec_jrc(z, y, sid, w=None, alpha=0.5, same_label_loss=True):
    ce_num, ce_den, ge_num, ge_den = spec_jrc_parts(z, y, sid, w, same_label_loss)
    ce = ce_num / ce_den if ce_den else ce_num * 0
    return alpha * ce + (1 - alpha) * ge_num / ge_den


# ----------------------------------------------------------------------------------------------
# call helpers
# ----------------------------------------------------------------------------------------------


def _f64(v):
    return v.double() if isinstance(v, torch.Tensor) and v.is_floating_point() else v


def call(name, backend, x, y, sid, **kw):
    return FNS[name](x, y, sid, backend=backend, **kw)


def forward_backward(name, backend, x, y, sid, go=None, **kw):
    """(loss, d loss/dx . go, go); x itself is the leaf (its strides are kept)."""
    return loss_and_grad(lambda xl: call(name, backend, xl, y, sid, **kw), x, go)


def assert_matches_reference(name, backend, x, y, sid, **kw):
    """float64: tight against the float64 reference. Low precision: flash-attn's bound against the
    reference in the same dtype. Always: dtype and shape of loss and gradient. A NaN truth needs a
    NaN loss (its gradient is unspecified)."""
    loss, g, go = forward_backward(name, backend, x, y, sid, **kw)
    assert loss.dtype == x.dtype and loss.shape == () and g.dtype == x.dtype and g.shape == x.shape
    kw64 = {k: _f64(v) for k, v in kw.items()}
    truth, tg, _ = forward_backward(name, "reference", x.double(), _f64(y), sid, go.double(), **kw64)
    if truth.isnan():
        assert loss.isnan(), f"expected NaN, got {loss}"
        return loss, g
    if x.dtype == torch.float64:
        torch.testing.assert_close(loss, truth, rtol=RTOL64, atol=ATOL64)
        torch.testing.assert_close(g, tg, rtol=RTOL64, atol=ATOL64)
    else:
        same, sg, _ = forward_backward(name, "reference", x, y, sid, go, **kw)
        lowp_bound(loss, same, truth, x.dtype, LOWP_FACTOR[x.dtype])
        lowp_bound(g, sg, tg, x.dtype, LOWP_FACTOR[x.dtype])
    return loss, g


# ----------------------------------------------------------------------------------------------
# 1. the reference against the spec's per-session formulas, closed-form gradients, hand values
# ----------------------------------------------------------------------------------------------

_log1p = torch.log1p
_recip = torch.reciprocal


def _double(t):
    return 2.0 * t


LISTWISE_SPEC_CASES = [
    ("rank", dict(b=37, sessions="random", labels="graded"), {}),
    ("rank", dict(b=37, sessions="random", labels="sparse"), dict(temperature=0.5)),
    ("rank", dict(b=29, sessions=None, labels="soft"), dict(temperature=2.0, weight=0.3)),
    ("rank", dict(b=37, sessions="random", labels="logits"), dict(label_is_logits=True, temperature=2.0)),
    ("rank", dict(b=23, sessions="int32", labels="graded"), dict(transform_fn=_log1p, temperature=0.5)),
    ("rank", dict(b=23, sessions="random", labels="logits"),
     dict(label_is_logits=True, transform_fn=_double, temperature=0.5)),
    ("rank", dict(b=9, sessions="size1", labels="graded"), {}),
    ("distill", dict(b=37, sessions="random", labels="ranks"), {}),
    ("distill", dict(b=37, sessions="random", labels="clip"),
     dict(label_clip_max_value=5.0, temperature=2.0)),
    ("distill", dict(b=29, sessions=None, labels="ranks"), dict(transform_fn=_recip, weight=1.7)),
    ("distill", dict(b=23, sessions="huge", labels="clip"), dict(label_clip_max_value=1.0)),
]


def _listwise_inputs(name, cfg, device="cpu", dtype=torch.float64):
    b = cfg["b"]
    x = make_scores(b, dtype, device, scale=cfg.get("scale", 2.0))
    if name == "rank":
        y = make_rank_labels(b, cfg.get("labels", "graded"), device)
    else:
        y = make_ranks(b, cfg.get("labels", "ranks"), device)
    return x, y, make_sessions(cfg.get("sessions", "random"), b, device)


@pytest.mark.parametrize("name, cfg, kw", LISTWISE_SPEC_CASES, ids=param_id)
def test_reference_listwise_is_the_spec(name, cfg, kw):
    x, y, sid = _listwise_inputs(name, cfg)
    go = torch.tensor(1.7, dtype=torch.float64)
    loss, g, _ = forward_backward(name, "reference", x, y, sid, go, **kw)
    xs = x.clone().requires_grad_()
    want = spec_listwise(name, xs, y, sid, **kw)
    (wg,) = torch.autograd.grad(want, xs, go)
    torch.testing.assert_close(loss, want.detach(), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(g, wg, rtol=1e-10, atol=1e-13)
    if cfg.get("sessions") != "size1":
        assert loss.abs() > 0 and g.abs().sum() > 0


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
@pytest.mark.parametrize("label_is_logits", [False, True])
def test_reference_listwise_rank_gradient_closed_form(temperature, label_is_logits):
    # spec 4.1: d l_g / d s_k = Q_g softmax(s_g)_k - q_k (Q_g the session's label mass), then x 1/T
    # and / G (the mean over sessions)
    b = 37
    x, y, sid = make_scores(b), make_rank_labels(b, "logits" if label_is_logits else "graded"), \
        make_sessions("random", b)
    _, g, _ = forward_backward("rank", "reference", x, y, sid, torch.ones((), dtype=torch.float64),
                               temperature=temperature, label_is_logits=label_is_logits)
    inv, ng = _groups(sid, b, "cpu")
    s = x / temperature
    sm = torch.exp(s - seg_lse(s, inv, ng)[inv])
    if label_is_logits:
        yy = y / temperature
        q = torch.exp(yy - seg_lse(yy, inv, ng)[inv])
    else:
        q = y
    want = (seg_sum(q, inv, ng)[inv] * sm - q) / temperature / ng
    torch.testing.assert_close(g, want, rtol=1e-10, atol=1e-13)


def test_reference_jrc_gradient_closed_form():
    # spec 4.3 (same_label_loss, unweighted, alpha): dL/dz_i = alpha (p_i - onehot(y_i)) / B
    #   + (1 - alpha)/B [n1_s softmax_s(z1)_i - [y_i = 1]] on z1, [n0_s softmax_s(z0)_i - [y_i = 0]] on z0
    b, alpha = 37, 0.3
    z, y, sid = make_scores(b, cols=2), make_jrc_labels(b), make_sessions("random", b)
    zl = z.clone().requires_grad_()
    fusedloss.jrc_loss(zl, y, sid, alpha=alpha, backend="reference").backward()
    inv, ng = _groups(sid, b, "cpu")
    pos = (y == 1).double()
    p = torch.softmax(z, 1)
    onehot = torch.stack([1 - pos, pos], 1)
    n1, n0 = seg_sum(pos, inv, ng)[inv], seg_sum(1 - pos, inv, ng)[inv]
    sm0 = torch.exp(z[:, 0] - seg_lse(z[:, 0], inv, ng)[inv])
    sm1 = torch.exp(z[:, 1] - seg_lse(z[:, 1], inv, ng)[inv])
    ge = torch.stack([n0 * sm0 - (1 - pos), n1 * sm1 - pos], 1)
    want = alpha * (p - onehot) / b + (1 - alpha) / b * ge
    torch.testing.assert_close(zl.grad, want, rtol=1e-10, atol=1e-13)


JRC_SPEC_CASES = [
    dict(b=37, sessions="random", weight=None),
    dict(b=37, sessions="random", weight="zeros"),
    dict(b=37, sessions="random", weight="neg"),
    dict(b=29, sessions="int32", weight="scalar", labels="bool"),
    dict(b=23, sessions="size1", weight="B"),
    dict(b=23, sessions="one", weight="tensor0d"),
    dict(b=13, sessions="random", weight="B", labels="all1"),
    dict(b=13, sessions="random", weight=None, labels="all0"),
]


@pytest.mark.parametrize("same_label_loss", [True, False])
@pytest.mark.parametrize("cfg", JRC_SPEC_CASES, ids=param_id)
def test_reference_jrc_is_the_spec(cfg, same_label_loss):
    b = cfg["b"]
    z = make_scores(b, cols=2)
    y = make_jrc_labels(b, cfg.get("labels", "int"))
    sid = make_sessions(cfg["sessions"], b)
    w = make_jrc_weight(cfg["weight"], b)
    ce, ge = fusedloss.reference.jrc_loss_parts_reference(z, y, sid, None if w is None else
                                                          torch.as_tensor(w, dtype=torch.float64),
                                                          same_label_loss)
    ce_num, ce_den, ge_num, ge_den = spec_jrc_parts(z, y, sid, w, same_label_loss)
    torch.testing.assert_close(ce, ce_num / ce_den if ce_den else ce_num * 0, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(ge, ge_num / ge_den, rtol=1e-12, atol=1e-14)
    for alpha in (0.0, 0.3, 1.0):
        go = torch.tensor(-0.6, dtype=torch.float64)
        loss, g, _ = forward_backward("jrc", "reference", z, y, sid, go, weight=w, alpha=alpha,
                                      same_label_loss=same_label_loss)
        zs = z.clone().requires_grad_()
        want = spec_jrc(zs, y, sid, w, alpha, same_label_loss)
        (wg,) = torch.autograd.grad(want, zs, go)
        torch.testing.assert_close(loss, want.detach(), rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(g, wg, rtol=1e-10, atol=1e-13)
    if cfg["sessions"] == "size1":
        assert ge == 0  # singleton sessions add 0 (a log-softmax over one element)


def test_reference_hand_values():
    ln2 = math.log(2.0)
    z0 = torch.zeros(2, dtype=torch.float64)
    one = torch.tensor([7, 7])
    # one session of two equal scores, labels (1, 0): -log(1/2); raw labels, not normalised: (2, 0)
    # doubles it; label logits (0, 0) -> q = (1/2, 1/2): log 2 again
    assert math.isclose(fusedloss.listwise_rank_loss(z0, torch.tensor([1.0, 0.0]), one,
                                                     backend="reference"), ln2, rel_tol=1e-14)
    assert math.isclose(fusedloss.listwise_rank_loss(z0, torch.tensor([2.0, 0.0]), one,
                                                     backend="reference"), 2 * ln2, rel_tol=1e-14)
    assert math.isclose(fusedloss.listwise_rank_loss(z0, torch.zeros(2), one, label_is_logits=True,
                                                     backend="reference"), ln2, rel_tol=1e-14)
    # two sessions: (a) labels (1, 0) -> log 2, (b) label mass 0 -> 0 but it counts: mean log 2 / 2
    z4 = torch.zeros(4, dtype=torch.float64)
    assert math.isclose(fusedloss.listwise_rank_loss(z4, torch.tensor([1.0, 0.0, 0.0, 0.0]),
                                                     torch.tensor([1, 1, 2, 2]), backend="reference"),
                        ln2 / 2, rel_tol=1e-14)
    # distill: ranks (1, 7) clipped at M = 3: r' = (log 4, log 4 - log 3), q = r' / sum r'; scores
    # (0, log 3): softmax (1/4, 3/4)
    x = torch.tensor([0.0, math.log(3.0)], dtype=torch.float64)
    r1, r2 = math.log(4.0), math.log(4.0 / 3.0)
    want = (r1 * math.log(4.0) + r2 * math.log(4.0 / 3.0)) / (r1 + r2)
    assert math.isclose(fusedloss.listwise_distill_loss(x, torch.tensor([1.0, 7.0]), one,
                                                        label_clip_max_value=3.0, backend="reference"),
                        want, rel_tol=1e-14)
    # JRC, one session, logits 0, labels (1, 0): CE = log 2; GE (same label) = (1/2) sum_j G / 2
    # with G = 2 log 2 -> log 2; GE (split) = (1/2)(log 2 + log 2) = log 2
    zz = torch.zeros(2, 2, dtype=torch.float64)
    for sll in (True, False):
        got = fusedloss.jrc_loss(zz, torch.tensor([1, 0]), one, same_label_loss=sll, backend="reference")
        assert math.isclose(got, ln2, rel_tol=1e-14)
    # JRC split with z1 = (0, log 3) on a positive and a negative item: the positive's z1 competes
    # with the negative's z1: -log(1/4) = log 4; the negative's z0 (0, 0): log 2. GE = (log 4 + log 2)/2
    zz = torch.tensor([[0.0, 0.0], [0.0, math.log(3.0)]], dtype=torch.float64)
    ce, ge = fusedloss.reference.jrc_loss_parts_reference(zz, torch.tensor([1, 0]), one, None, False)
    assert math.isclose(ge, (math.log(4.0) + ln2) / 2, rel_tol=1e-14)


# ----------------------------------------------------------------------------------------------
# 2. every backend against the float64 reference
# ----------------------------------------------------------------------------------------------

# name -> (loss, input config, keywords). Sizes: see the module docstring.
MAIN = {
    "rank-base": ("rank", dict(b=37), {}),
    "rank-no-sessions": ("rank", dict(b=37, sessions=None), {}),
    "rank-T0.5": ("rank", dict(b=37), dict(temperature=0.5)),
    "rank-logits-T2": ("rank", dict(b=37, labels="logits"), dict(label_is_logits=True, temperature=2.0)),
    "rank-logits-T1": ("rank", dict(b=37, labels="logits", sessions="sorted"), dict(label_is_logits=True)),
    "rank-transform": ("rank", dict(b=37), dict(transform_fn=_log1p, temperature=0.5)),
    "rank-transform-logits": ("rank", dict(b=37, labels="logits"),
                              dict(transform_fn=_double, label_is_logits=True, temperature=2.0)),
    "rank-weight": ("rank", dict(b=37), dict(weight=0.3)),
    "rank-weight0": ("rank", dict(b=37), dict(weight=0.0)),
    "rank-size1": ("rank", dict(b=37, sessions="size1"), {}),
    "rank-one-session": ("rank", dict(b=37, sessions="one"), {}),
    "rank-huge-session": ("rank", dict(b=300, sessions="huge"), dict(temperature=0.5)),
    "rank-int32-ids": ("rank", dict(b=37, sessions="int32"), {}),
    "rank-col": ("rank", dict(b=37, sessions="col", col=True), {}),
    "rank-int-labels": ("rank", dict(b=37, labels="int"), {}),
    "rank-bool-labels": ("rank", dict(b=37, labels="bool"), {}),
    "rank-sparse": ("rank", dict(b=37, labels="sparse"), {}),
    "rank-equal": ("rank", dict(b=37, labels="equal"), {}),
    "rank-b1": ("rank", dict(b=1, sessions=None), {}),
    "rank-b2": ("rank", dict(b=2, sessions="one"), {}),
    "rank-b131": ("rank", dict(b=131, sessions="sorted", labels="soft"), dict(temperature=2.0)),
    "rank-large-scores": ("rank", dict(b=37, scale=40.0), {}),
    "distill-base": ("distill", dict(b=37), {}),
    "distill-no-sessions": ("distill", dict(b=37, sessions=None), dict(temperature=0.5)),
    "distill-clip5": ("distill", dict(b=37, labels="clip"), dict(label_clip_max_value=5.0)),
    "distill-clip1": ("distill", dict(b=37, labels="clip"), dict(label_clip_max_value=1.0)),
    "distill-clip-default": ("distill", dict(b=37, labels="clip"), dict(temperature=2.0)),
    "distill-transform": ("distill", dict(b=37), dict(transform_fn=_recip, temperature=0.5)),
    "distill-weight": ("distill", dict(b=37), dict(weight=2.5)),
    "distill-size1": ("distill", dict(b=37, sessions="size1"), {}),
    "distill-huge-session": ("distill", dict(b=300, sessions="huge", labels="int"), {}),
    "distill-int-labels": ("distill", dict(b=37, labels="int", sessions="int32"), {}),
    "distill-uint8-ids": ("distill", dict(b=37, sessions="uint8"), {}),
    "distill-col": ("distill", dict(b=37, sessions="col", col=True), {}),
    "distill-b1": ("distill", dict(b=1), {}),
    "distill-b131": ("distill", dict(b=131, sessions="sorted"), {}),
}
INTERP = {
    "rank-base": ("rank", dict(b=37), {}),
    "rank-no-sessions": ("rank", dict(b=13, sessions=None), dict(temperature=0.5)),
    "rank-logits-T2": ("rank", dict(b=23, labels="logits"), dict(label_is_logits=True, temperature=2.0)),
    "rank-transform-logits": ("rank", dict(b=13, labels="logits"),
                              dict(transform_fn=_double, label_is_logits=True, temperature=0.5)),
    "rank-transform": ("rank", dict(b=13, labels="int"), dict(transform_fn=_log1p, weight=0.3)),
    "rank-size1": ("rank", dict(b=9, sessions="size1"), {}),
    "rank-huge-session": ("rank", dict(b=64, sessions="huge"), {}),
    # one session of 144 items: past one Triton BLOCK of 128 items (two chunks per sweep); 150
    # programs, the largest interpreter launch of this file
    "rank-long-session": ("rank", dict(b=150, sessions="huge", labels="logits"),
                          dict(label_is_logits=True, temperature=0.5)),
    "rank-col": ("rank", dict(b=13, sessions="col", col=True, labels="sparse"), {}),
    "rank-b1": ("rank", dict(b=1, sessions=None), {}),
    "distill-base": ("distill", dict(b=37, labels="clip"), dict(label_clip_max_value=5.0)),
    "distill-no-sessions": ("distill", dict(b=13, sessions=None), dict(temperature=2.0)),
    "distill-transform": ("distill", dict(b=13, labels="int"), dict(transform_fn=_recip, weight=2.5)),
    "distill-huge-session": ("distill", dict(b=64, sessions="huge"), {}),
}


def _listwise_case(cfg_name, device, dtype, interp):
    name, cfg, kw = (INTERP if interp else MAIN)[cfg_name]
    x, y, sid = _listwise_inputs(name, cfg, device, dtype)
    if cfg.get("col"):
        x, y = x[:, None], y[:, None]
    return name, x, y, sid, kw


@pytest.mark.parametrize("device, backend, cfg_name", backend_cases(list(MAIN), list(INTERP)))
def test_listwise_matches_reference(device, backend, cfg_name):
    name, x, y, sid, kw = _listwise_case(cfg_name, device, torch.float64, interpreted(device, backend))
    loss, g = assert_matches_reference(name, backend, x, y, sid, **kw)
    assert torch.isfinite(loss) and torch.isfinite(g).all()
    if "size1" in cfg_name or cfg_name.endswith("-b1"):
        # a session of one item: log_softmax over one element is 0, so is the gradient
        assert float(loss) == 0.0 and not g.any()
    elif kw.get("weight", 1.0) != 0.0:
        assert loss > 0 and g.abs().sum() > 0


LOWP_NAMES = ["rank-base", "rank-logits-T2", "rank-huge-session", "distill-base", "distill-clip5",
              "distill-no-sessions"]
LOWP_INTERP = ["rank-base", "rank-logits-T2", "distill-base"]


@pytest.mark.parametrize("device, backend, cfg_name", backend_cases(LOWP_NAMES, LOWP_INTERP))
@pytest.mark.parametrize("dtype", LOWP, ids=param_id)
def test_listwise_low_precision(device, backend, cfg_name, dtype):
    name, x, y, sid, kw = _listwise_case(cfg_name, device, dtype, interpreted(device, backend))
    assert_matches_reference(name, backend, x, y, sid, **kw)


JRC_MAIN = {
    "base": dict(b=37),
    "w-B": dict(b=37, weight="B"),
    "w-zeros": dict(b=37, weight="zeros"),
    "w-neg": dict(b=37, weight="neg"),
    "w-scalar": dict(b=37, weight="scalar"),
    "w-tensor0d": dict(b=37, weight="tensor0d"),
    "w-one": dict(b=37, weight="one"),
    "w-allzero": dict(b=37, weight="allzero"),
    "alpha0": dict(b=37, alpha=0.0, weight="B"),
    "alpha1": dict(b=37, alpha=1.0, weight="B"),
    "alpha0.3": dict(b=37, alpha=0.3),
    "size1": dict(b=37, sessions="size1", weight="B"),
    "one-session": dict(b=37, sessions="one"),
    "huge-session": dict(b=300, sessions="huge", weight="zeros"),
    "sorted": dict(b=131, sessions="sorted", weight="B"),
    "int32-ids": dict(b=37, sessions="int32"),
    "col": dict(b=37, sessions="col", labels="col"),
    "labels-bool": dict(b=37, labels="bool", weight="neg"),
    "labels-int32": dict(b=37, labels="int32"),
    "all-pos": dict(b=37, labels="all1", weight="B"),
    "all-neg": dict(b=37, labels="all0"),
    "pure-sessions": dict(b=37, labels="pure", weight="B"),
    "b1": dict(b=1, sessions="one"),
    "b2": dict(b=2, sessions="one", weight="B"),
    "large-logits": dict(b=37, scale=40.0, weight="B"),
}
JRC_INTERP = {
    "base": dict(b=37),
    "w-zeros": dict(b=13, weight="zeros"),
    "w-neg": dict(b=13, weight="neg", alpha=0.3),
    "w-scalar": dict(b=13, weight="scalar"),
    "size1": dict(b=9, sessions="size1", weight="B"),
    "huge-session": dict(b=64, sessions="huge", weight="B"),
    "long-session": dict(b=150, sessions="huge", weight="zeros"),  # two BLOCKs of 128 items
    "col": dict(b=13, sessions="col", labels="col"),
    "pure-sessions": dict(b=13, labels="pure", weight="B"),
    "b1": dict(b=1, sessions="one"),
}


def _jrc_case(cfg, device, dtype=torch.float64):
    """(z, labels, sid, keywords). labels "pure": one session of only positives and one of only
    negatives next to mixed sessions."""
    b = cfg["b"]
    z = make_scores(b, dtype, device, scale=cfg.get("scale", 2.0), cols=2)
    sid = make_sessions(cfg.get("sessions", "random"), b, device)
    kind = cfg.get("labels", "int")
    if kind == "pure":
        y = make_jrc_labels(b, "int", device)
        sid = torch.tensor([11, 22, 33, 44], device=device)[torch.arange(b, device=device) % 4]
        y[sid == 11], y[sid == 22] = 1, 0
    else:
        y = make_jrc_labels(b, kind, device)
    kw = dict(weight=make_jrc_weight(cfg.get("weight"), b, device), alpha=cfg.get("alpha", 0.5))
    return z, y, sid, kw


def _jrc_cases(pairs=ALL):
    return [(d, b, n, sll) for d, b, n in backend_cases(list(JRC_MAIN), list(JRC_INTERP), pairs)
            for sll in (True, False)]


@pytest.mark.parametrize("device, backend, cfg_name, same_label_loss", _jrc_cases())
def test_jrc_matches_reference(device, backend, cfg_name, same_label_loss):
    cfg = (JRC_INTERP if interpreted(device, backend) else JRC_MAIN)[cfg_name]
    z, y, sid, kw = _jrc_case(cfg, device)
    loss, g = assert_matches_reference("jrc", backend, z, y, sid, same_label_loss=same_label_loss, **kw)
    assert torch.isfinite(loss) and torch.isfinite(g).all()  # no NaN without positives or negatives
    if cfg_name not in ("w-allzero", "b1"):
        assert g.abs().sum() > 0


JRC_LOWP = ["base", "w-zeros", "huge-session", "pure-sessions"]
JRC_LOWP_INTERP = ["base", "w-neg"]


@pytest.mark.parametrize("device, backend, cfg_name",
                         backend_cases(JRC_LOWP, JRC_LOWP_INTERP))
@pytest.mark.parametrize("same_label_loss", [True, False])
@pytest.mark.parametrize("dtype", LOWP, ids=param_id)
def test_jrc_low_precision(device, backend, cfg_name, same_label_loss, dtype):
    cfg = (JRC_INTERP if interpreted(device, backend) else JRC_MAIN)[cfg_name]
    z, y, sid, kw = _jrc_case(cfg, device, dtype)
    assert_matches_reference("jrc", backend, z, y, sid, same_label_loss=same_label_loss, **kw)


# ----------------------------------------------------------------------------------------------
# 3. edges: empty, layouts, gradcheck, grad_output, no_grad, canaries
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("device, backend", ALL)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=param_id)
def test_empty_is_nan(device, backend, dtype):
    # B = 0: EasyRec's mean over no session (listwise) / of an empty GE (JRC) is NaN; backward runs
    # and returns an empty gradient
    x = torch.empty(0, dtype=dtype, device=device)
    sid = torch.empty(0, dtype=torch.int64, device=device)
    for name, y, kws in (
        ("rank", torch.empty(0, device=device), [{}, dict(label_is_logits=True, temperature=2.0)]),
        ("distill", torch.empty(0, device=device), [{}]),
        ("jrc", torch.empty(0, dtype=torch.int64, device=device),
         [dict(same_label_loss=True), dict(same_label_loss=False, weight=torch.empty(0, device=device))]),
    ):
        xx = x.reshape(0, 2) if name == "jrc" else x
        for kw in kws:
            for s in ((sid, None) if name != "jrc" else (sid,)):
                xl = xx.clone().requires_grad_()
                loss = call(name, backend, xl, y, s, **kw)
                assert loss.shape == () and loss.dtype == dtype and loss.isnan(), (name, kw, loss)
                loss.backward()
                assert xl.grad is None or xl.grad.shape == xx.shape


@pytest.mark.parametrize("device, backend", ALL)
def test_distill_zero_mass_session_is_nan(device, backend):
    # a transform_fn that maps a whole session's ranks to 0: q = 0 / 0 (EasyRec's NaN)
    b = 13
    x = make_scores(b, device=device)
    y = make_ranks(b, device=device)
    sid = make_sessions("random", b, device)
    y[sid == sid[0]] = 1.0
    loss = fusedloss.listwise_distill_loss(x, y, sid, transform_fn=lambda r: r - 1.0, backend=backend)
    assert loss.isnan()


@pytest.mark.parametrize("device, backend", ALL)
def test_non_contiguous_inputs(device, backend):
    # scores x[::2], labels / ids as a column of a transposed matrix, JRC logits a [B, 2] column
    # slice of a [B, 5] matrix (row stride 5) and the transpose of a [2, B] one: read by logical
    # position; equal to the contiguous call bitwise on the fused backends
    b = 37 if not interpreted(device, backend) else 13
    one = torch.ones((), dtype=torch.float64, device=device)
    x = make_scores(2 * b, device=device)[::2]
    y = make_rank_labels(3 * b, device=device).reshape(b, 3)[:, 1]
    r = make_ranks(3 * b, device=device).reshape(b, 3)[:, 2]
    sid = make_sessions("random", 2 * b, device)[1::2]
    assert x.stride() == (2,) and y.stride() == (3,) and sid.stride() == (2,)
    zs = (make_scores(b, device=device, cols=5)[:, 1:4:2], make_scores(2, device=device, cols=b).t())
    yj = make_jrc_labels(2 * b, device=device)[::2]
    w = make_jrc_weight("neg", 2 * b, device)[1::2]
    runs = [("rank", x, y, sid, dict(label_is_logits=True, temperature=2.0)),
            ("distill", x, r, sid, dict(label_clip_max_value=5.0))]
    runs += [("jrc", z, yj, sid, dict(weight=w, same_label_loss=sll)) for z in zs for sll in (True, False)]
    for name, xx, yy, ss, kw in runs:
        assert not xx.is_contiguous()
        assert_matches_reference(name, backend, xx, yy, ss, **kw)
        a = forward_backward(name, backend, xx, yy, ss, one, **kw)
        kwc = {k: v.contiguous() if isinstance(v, torch.Tensor) else v for k, v in kw.items()}
        c = forward_backward(name, backend, xx.contiguous(), yy.contiguous(), ss.contiguous(), one, **kwc)
        torch.testing.assert_close(a[0], c[0], rtol=0, atol=0)
        torch.testing.assert_close(a[1], c[1], rtol=0, atol=0)


@pytest.mark.parametrize("device, backend", ALL)
def test_gradcheck(device, backend):
    # B = 13 in unsorted sessions (one of size 1), float64: the listwise options and JRC both modes
    # with weights that include 0 and a negative
    b = 13
    sid = torch.tensor([5, -2**40, 5, 9, 5, -2**40, 9, 9, 3, 5, -2**40, 9, 5], device=device)
    y = make_rank_labels(b, "logits", device)
    r = make_ranks(b, "clip", device)
    yj = make_jrc_labels(b, device=device)
    w = torch.tensor([1.0, 0.5, -0.7, 1.3, 0.0, 2.0, 0.9, 1.1, 0.4, 1.0, 0.6, 1.5, 0.8],
                     dtype=torch.float64, device=device)
    checks = [
        ("rank", make_scores(b, device=device), y, dict(temperature=0.5)),
        ("rank", make_scores(b, device=device), y, dict(label_is_logits=True, temperature=2.0)),
        ("distill", make_scores(b, device=device), r, dict(label_clip_max_value=5.0, temperature=0.5)),
        ("jrc", make_scores(b, device=device, cols=2), yj, dict(weight=w, alpha=0.3)),
        ("jrc", make_scores(b, device=device, cols=2), yj, dict(weight=w, same_label_loss=False)),
    ]
    for name, x, yy, kw in checks:
        xl = x.requires_grad_()
        # the interpreter: fast mode (one random direction: 2 launches instead of 2 per element)
        assert torch.autograd.gradcheck(lambda xx: call(name, backend, xx, yy, sid, **kw), (xl,), eps=1e-6,
                                        atol=1e-7, fast_mode=interpreted(device, backend)), (name, kw)


@pytest.mark.parametrize("device, backend", FUSED)
def test_grad_output_and_no_grad(device, backend):
    # d(c L)/dx = c dL/dx (the registered backward scales by grad_output), also through a larger graph;
    # under no_grad or for an input that does not require grad, the same loss without a gradient
    b = 37 if not interpreted(device, backend) else 13
    sid = make_sessions("random", b, device)
    runs = [("rank", make_scores(b, device=device), make_rank_labels(b, device=device), {}),
            ("distill", make_scores(b, device=device), make_ranks(b, device=device), {}),
            ("jrc", make_scores(b, device=device, cols=2), make_jrc_labels(b, device=device),
             dict(weight=make_jrc_weight("B", b, device))),
            ("jrc", make_scores(b, device=device, cols=2), make_jrc_labels(b, device=device),
             dict(same_label_loss=False))]
    for name, x, y, kw in runs:
        _, g1, _ = forward_backward(name, backend, x, y, sid, torch.ones((), dtype=torch.float64), **kw)
        _, gc, _ = forward_backward(name, backend, x, y, sid, torch.tensor(-2.5, dtype=torch.float64), **kw)
        torch.testing.assert_close(gc, -2.5 * g1, rtol=1e-14, atol=0)
        xl = x.clone().requires_grad_()
        loss = call(name, backend, xl, y, sid, **kw)
        (loss * 3 + loss**2).backward()
        torch.testing.assert_close(xl.grad, (3 + 2 * loss.detach()) * g1, rtol=1e-12, atol=1e-15)
        plain = call(name, backend, x, y, sid, **kw)
        with torch.no_grad():
            nograd = call(name, backend, x.clone().requires_grad_(), y, sid, **kw)
        assert not plain.requires_grad and not nograd.requires_grad
        torch.testing.assert_close(plain, loss.detach(), rtol=0, atol=0)
        torch.testing.assert_close(nograd, plain, rtol=0, atol=0)


@pytest.mark.parametrize("device, backend", FUSED)
def test_double_backward_is_right_or_raises(device, backend):
    b = 9
    x = make_scores(b, device=device)
    y = make_rank_labels(b, device=device)
    xl = x.clone().requires_grad_()
    try:
        (g,) = torch.autograd.grad(call("rank", backend, xl, y, None), xl, create_graph=True)
        (h,) = torch.autograd.grad((g * torch.arange(b, device=device)).sum(), xl)
    except RuntimeError:
        return  # refusing double backward is acceptable
    xr = x.clone().requires_grad_()
    (gr,) = torch.autograd.grad(call("rank", "reference", xr, y, None), xr, create_graph=True)
    (hr,) = torch.autograd.grad((gr * torch.arange(b, device=device)).sum(), xr)
    torch.testing.assert_close(h, hr, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("device, backend", FUSED)
def test_canaries(device, backend):
    # scores, labels and weights inside NaN-filled buffers, session ids inside a 7-filled one: an
    # out-of-bounds read that reaches the result leaks NaN, a stray write changes a margin
    b = 17
    x, check_x = canary(make_scores(b, torch.float32, device))
    z, check_z = canary(make_scores(b, torch.float32, device, cols=2))
    y, check_y = canary(make_rank_labels(b, device=device).float())
    yj, check_yj = canary(make_jrc_labels(b, device=device))
    w, check_w = canary(make_jrc_weight("B", b, device).float())
    sid, check_s = canary(make_sessions("sorted", b, device))
    for name, xx, yy, kw in (("rank", x, y, {}), ("distill", x, y + 1, {}), ("jrc", z, yj, dict(weight=w)),
                             ("jrc", z, yj, dict(weight=w, same_label_loss=False))):
        loss, g = assert_matches_reference(name, backend, xx, yy, sid, **kw)
        assert torch.isfinite(loss) and torch.isfinite(g).all()
    for check in (check_x, check_z, check_y, check_yj, check_w, check_s):
        check()


@pytest.mark.parametrize("device", DEVICES)
def test_auto_is_the_native_backend(device):
    # auto on CPU tensors is the C++ cpu backend (never the interpreter): bitwise equal
    b = 37
    sid = make_sessions("random", b, device)
    one = torch.ones((), device=device)
    runs = (("rank", make_scores(b, torch.float32, device), make_rank_labels(b, device=device)),
            ("jrc", make_scores(b, torch.float32, device, cols=2), make_jrc_labels(b, device=device)))
    for name, x, y in runs:
        a, ga, _ = forward_backward(name, "auto", x, y, sid, one)
        n, gn, _ = forward_backward(name, device, x, y, sid, one)
        assert torch.equal(a, n) and torch.equal(ga, gn)


# ----------------------------------------------------------------------------------------------
# 4. options: logit_scale / logit_bias, JRC strategies, weight that requires grad
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("device, backend", ALL)
@pytest.mark.parametrize("name", ["rank", "distill"])
def test_logit_scale_and_bias_get_gradients(device, backend, name):
    # EasyRec's scale_logits: s |a| + b with trainable a, b; a < 0 checks the |a|
    b = 23
    x = make_scores(b, device=device)
    y = make_rank_labels(b, device=device) if name == "rank" else make_ranks(b, device=device)
    sid = make_sessions("random", b, device)
    kw = dict(temperature=0.5)
    grads = []
    for bk in (backend, None):  # None: the spec formula on the scaled scores
        xl = x.clone().requires_grad_()
        a = torch.tensor(-1.3, dtype=torch.float64, device=device, requires_grad=True)
        c = torch.tensor(0.4, dtype=torch.float64, device=device, requires_grad=True)
        if bk is None:
            loss = spec_listwise(name, xl * a.abs() + c, y, sid, **kw)
        else:
            loss = call(name, bk, xl, y, sid, logit_scale=a, logit_bias=c, **kw)
        grads.append((loss.detach(),) + torch.autograd.grad(loss, (xl, a, c), allow_unused=True))
    got, want = grads
    for g, w in zip(got[:3], want[:3]):
        torch.testing.assert_close(g, w, rtol=RTOL64, atol=ATOL64)
    assert abs(float(got[3])) < 1e-10 and abs(float(want[3])) < 1e-10  # softmax is shift invariant
    assert got[2].abs() > 1e-3


def _seeded(seed, device="cpu"):
    return torch.Generator(device=device).manual_seed(seed)


@pytest.mark.parametrize("device, backend", ALL)
@pytest.mark.parametrize("strategy", ["random_uniform", "random_normal", "random_bernoulli"])
def test_jrc_random_strategies(device, backend, strategy):
    # L = a CE + b GE with (a, b) drawn from the generator: same seed -> same value (and the
    # reference's); a convex combination for uniform / normal; one of CE, GE, (CE + GE)/2 for
    # Bernoulli; different seeds give different values; the gradient is a grad CE + b grad GE
    b = 13 if interpreted(device, backend) else 37
    z, y, sid = make_scores(b, device=device, cols=2), make_jrc_labels(b, device=device), \
        make_sessions("random", b, device)
    w = make_jrc_weight("zeros", b, device)
    ce, ge = fusedloss.reference.jrc_loss_parts_reference(z, y, sid, w)
    assert abs(float(ce - ge)) > 1e-3
    values = []
    for seed in range(12 if interpreted(device, backend) else 24):
        kw = dict(weight=w, loss_weight_strategy=strategy)
        got = fusedloss.jrc_loss(z, y, sid, generator=_seeded(seed, device), backend=backend, **kw)
        again = fusedloss.jrc_loss(z, y, sid, generator=_seeded(seed, device), backend=backend, **kw)
        assert torch.equal(got, again)
        if seed < 2:
            loss, g, go = forward_backward("jrc", backend, z, y, sid, generator=_seeded(seed, device), **kw)
            rl, rg, _ = forward_backward("jrc", "reference", z, y, sid, go, generator=_seeded(seed, device),
                                         **kw)
            torch.testing.assert_close(loss, rl, rtol=RTOL64, atol=ATOL64)
            torch.testing.assert_close(g, rg, rtol=RTOL64, atol=ATOL64)
        u = float((got - ge) / (ce - ge))  # the weight of CE
        if strategy == "random_bernoulli":
            assert min(abs(u - v) for v in (0.0, 0.5, 1.0)) < 1e-9, u
        else:
            assert -1e-9 <= u <= 1 + 1e-9, u
        values.append(round(u, 9))
    if strategy == "random_bernoulli":
        assert set(values) == {0.0, 0.5, 1.0}
    else:
        assert len(set(values)) == len(values)
    # the global RNG without a generator: reproducible under manual_seed
    torch.manual_seed(3)
    g1 = fusedloss.jrc_loss(z, y, sid, loss_weight_strategy=strategy, backend=backend)
    torch.manual_seed(3)
    g2 = fusedloss.jrc_loss(z, y, sid, loss_weight_strategy=strategy, backend=backend)
    assert torch.equal(g1, g2)


@pytest.mark.parametrize("device, backend", ALL)
@pytest.mark.parametrize("same_label_loss", [True, False])
def test_jrc_uncertainty(device, backend, same_label_loss):
    # L = e^{-u1} CE + u1/2 + e^{-u2} GE + u2/2; u gets dL/du = (1/2 - e^{-u1} CE, 1/2 - e^{-u2} GE)
    b = 13 if interpreted(device, backend) else 37
    z, y, sid = make_scores(b, device=device, cols=2), make_jrc_labels(b, device=device), \
        make_sessions("random", b, device)
    w = make_jrc_weight("B", b, device)
    u = torch.tensor([0.3, -0.7], dtype=torch.float64, device=device, requires_grad=True)
    zl = z.clone().requires_grad_()
    loss = fusedloss.jrc_loss(zl, y, sid, weight=w, same_label_loss=same_label_loss,
                              loss_weight_strategy="uncertainty", uncertainty=u, backend=backend)
    gz, gu = torch.autograd.grad(loss, (zl, u))
    ce, ge = fusedloss.reference.jrc_loss_parts_reference(z, y, sid, w, same_label_loss)
    e1, e2 = math.exp(-0.3), math.exp(0.7)
    torch.testing.assert_close(loss, e1 * ce + 0.15 + e2 * ge - 0.35, rtol=RTOL64, atol=ATOL64)
    torch.testing.assert_close(gu, torch.stack([0.5 - e1 * ce, 0.5 - e2 * ge]), rtol=RTOL64, atol=ATOL64)
    zr = z.clone().requires_grad_()
    ce_r, ge_r = fusedloss.reference.jrc_loss_parts_reference(zr, y, sid, w, same_label_loss)
    (want,) = torch.autograd.grad(e1 * ce_r + e2 * ge_r, zr)
    torch.testing.assert_close(gz, want, rtol=RTOL64, atol=ATOL64)


@pytest.mark.parametrize("device", DEVICES)
def test_jrc_weight_that_requires_grad_falls_back(device):
    # the fused backends differentiate logits only: an explicit fused backend refuses a weight that
    # requires grad, auto falls back to the reference and returns gradients for both
    b = 37
    z, y, sid = make_scores(b, device=device, cols=2), make_jrc_labels(b, device=device), \
        make_sessions("random", b, device)
    w = make_jrc_weight("B", b, device).requires_grad_()
    for backend in fused_backends_for(device):
        with pytest.raises(ValueError, match="requires grad"):
            fusedloss.jrc_loss(z, y, sid, weight=w, backend=backend)
    zl = z.clone().requires_grad_()
    gz, gw = torch.autograd.grad(fusedloss.jrc_loss(zl, y, sid, weight=w), (zl, w))
    zr = z.clone().requires_grad_()
    rz, rw = torch.autograd.grad(fusedloss.jrc_loss(zr, y, sid, weight=w, backend="reference"), (zr, w))
    torch.testing.assert_close(gz, rz, rtol=0, atol=0)
    torch.testing.assert_close(gw, rw, rtol=0, atol=0)
    assert gw.abs().sum() > 0


# ----------------------------------------------------------------------------------------------
# 5. large cpu cases against the O(B) spec formulas (the reference would build [B, B] masks)
# ----------------------------------------------------------------------------------------------


def _sessions_of_about(n_items, lo, hi):
    """Session ids for ``n_items`` items in sessions of lo..hi items, shuffled; arbitrary int64 ids."""
    sizes = torch.randint(lo, hi + 1, (n_items // lo + 1,))
    sizes = sizes[: int((sizes.cumsum(0) < n_items).sum()) + 1]
    sizes[-1] -= int(sizes.sum()) - n_items
    ids_ = torch.randint(-(2**62), 2**62, (len(sizes),))
    return torch.repeat_interleave(ids_, sizes)[torch.randperm(n_items)]


@pytest.mark.parametrize("case", ["jrc", "jrc_split", "rank_one_session", "distill"])
def test_cpu_large_batch_matches_the_spec(case):
    # B = 20,000: JRC in ~400 shuffled sessions of 20..80 items (weights with zeros), listwise rank
    # in one session (no ids), distill in sessions of 1..100; float64, O(B) truth
    b = 20_000
    go = torch.tensor(0.8, dtype=torch.float64)
    if case.startswith("jrc"):
        z, y, sid = make_scores(b, cols=2), make_jrc_labels(b), _sessions_of_about(b, 20, 80)
        w = make_jrc_weight("zeros", b)
        kw = dict(weight=w, alpha=0.4, same_label_loss=case == "jrc")
        loss, g, _ = forward_backward("jrc", "cpu", z, y, sid, go, **kw)
        zs = z.clone().requires_grad_()
        want = spec_jrc(zs, y, sid, w, 0.4, case == "jrc")
    else:
        name = case.split("_")[0]
        x = make_scores(b)
        if name == "rank":
            y, sid, kw = make_rank_labels(b, "logits"), None, dict(label_is_logits=True, temperature=2.0)
        else:
            y, sid, kw = make_ranks(b, "clip"), _sessions_of_about(b, 1, 100), dict(label_clip_max_value=5.0)
        loss, g, _ = forward_backward(name, "cpu", x, y, sid, go, **kw)
        zs = x.clone().requires_grad_()
        want = spec_listwise(name, zs, y, sid, **kw)
    (wg,) = torch.autograd.grad(want, zs, go)
    torch.testing.assert_close(loss, want.detach(), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(g, wg, rtol=1e-9, atol=1e-14)
    # the result does not depend on the thread count (sessions run in parallel chunks of items;
    # the per-part sums go over fixed blocks): bitwise equal on one thread
    name = "jrc" if case.startswith("jrc") else case.split("_")[0]
    xx = zs.detach()
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        loss1, g1, _ = forward_backward(name, "cpu", xx, y, sid, go, **kw)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(loss1, loss) and torch.equal(g1, g)


# ----------------------------------------------------------------------------------------------
# 6. bad input: clear errors naming the argument, before any backend
# ----------------------------------------------------------------------------------------------


def _bad_cases():
    b = 6
    x, y = torch.randn(b), torch.rand(b)
    z, yj = torch.randn(b, 2), torch.tensor([0, 1, 1, 0, 1, 0])
    sid = torch.tensor([3, 3, -1, -1, 2**40, 3])
    rank, distill, jrc = fusedloss.listwise_rank_loss, fusedloss.listwise_distill_loss, fusedloss.jrc_loss
    cases = []
    for lname, f in (("rank", rank), ("distill", distill)):
        def c(name, thunk, exc, match, lname=lname):
            cases.append((f"{lname}-{name}", thunk, exc, match))

        c("input-2d", lambda f=f: f(z, y), ValueError, "input")
        c("input-0d", lambda f=f: f(x[0], y[0]), ValueError, "input")
        c("input-int", lambda f=f: f(x.long(), y), TypeError, "input")
        c("input-list", lambda f=f: f(x.tolist(), y), TypeError, "input")
        c("target-shape", lambda f=f: f(x, y[:5]), ValueError, "target")
        c("target-2col", lambda f=f: f(x, y.reshape(3, 2)), ValueError, "target")
        c("target-list", lambda f=f: f(x, y.tolist()), TypeError, "target")
        c("target-complex", lambda f=f: f(x, y.to(torch.complex64)), TypeError, "target")
        c("target-meta", lambda f=f: f(x, y.to("meta")), ValueError, "device")
        c("session_ids-length", lambda f=f: f(x, y, sid[:5]), ValueError, "session_ids")
        c("session_ids-2d", lambda f=f: f(x, y, sid.reshape(2, 3)), ValueError, "session_ids")
        c("session_ids-float", lambda f=f: f(x, y, sid.double()), TypeError, "session_ids")
        c("session_ids-bool", lambda f=f: f(x, y, sid > 0), TypeError, "session_ids")
        c("session_ids-list", lambda f=f: f(x, y, sid.tolist()), TypeError, "session_ids")
        c("session_ids-meta", lambda f=f: f(x, y, sid.to("meta")), ValueError, "device")
        c("weight-tensor", lambda f=f: f(x, y, weight=torch.ones(b)), TypeError, "weight")
        c("weight-0d-tensor", lambda f=f: f(x, y, weight=torch.tensor(2.0)), TypeError, "weight")
        c("weight-nan", lambda f=f: f(x, y, weight=float("nan")), ValueError, "weight")
        c("weight-str", lambda f=f: f(x, y, weight="1"), TypeError, "weight")
        c("temperature-0", lambda f=f: f(x, y, temperature=0.0), ValueError, "temperature")
        c("temperature-neg", lambda f=f: f(x, y, temperature=-1.0), ValueError, "temperature")
        c("temperature-nan", lambda f=f: f(x, y, temperature=float("nan")), ValueError, "temperature")
        c("temperature-inf", lambda f=f: f(x, y, temperature=INF), ValueError, "temperature")
        c("temperature-str", lambda f=f: f(x, y, temperature="1"), TypeError, "temperature")
        c("transform_fn-not-callable", lambda f=f: f(x, y, transform_fn=3), TypeError, "transform_fn")
        c("transform_fn-shape", lambda f=f: f(x, y, transform_fn=lambda t: t[:3]), ValueError,
          "transform_fn")
        c("logit_scale-float", lambda f=f: f(x, y, logit_scale=1.0), TypeError, "logit_scale")
        c("logit_bias-2", lambda f=f: f(x, y, logit_bias=torch.zeros(2)), TypeError, "logit_bias")
        c("backend-unknown", lambda f=f: f(x, y, backend="fast"), ValueError, "backend")
        c("backend-cuda", lambda f=f: f(x, y, backend="cuda"), ValueError, "cuda")
    cases += [
        ("rank-label_is_logits-int", lambda: rank(x, y, label_is_logits=1), TypeError, "label_is_logits"),
        ("distill-clip-below-1", lambda: distill(x, y, label_clip_max_value=0.5), ValueError,
         "label_clip_max_value"),
        ("distill-clip-nan", lambda: distill(x, y, label_clip_max_value=float("nan")), ValueError,
         "label_clip_max_value"),
    ]

    def j(name, thunk, exc, match):
        cases.append((f"jrc-{name}", thunk, exc, match))

    j("logits-1d", lambda: jrc(x, yj, sid), ValueError, "logits")
    j("logits-3col", lambda: jrc(torch.randn(b, 3), yj, sid), ValueError, "logits")
    j("logits-3d", lambda: jrc(z[None], yj, sid), ValueError, "logits")
    j("logits-int", lambda: jrc(z.long(), yj, sid), TypeError, "input")
    j("labels-float", lambda: jrc(z, yj.float(), sid), TypeError, "labels")
    j("labels-2", lambda: jrc(z, yj + 1, sid), ValueError, "labels")
    j("labels-neg", lambda: jrc(z, yj - 1, sid), ValueError, "labels")
    j("labels-shape", lambda: jrc(z, yj[:5], sid), ValueError, "labels")
    j("labels-list", lambda: jrc(z, yj.tolist(), sid), TypeError, "labels")
    j("labels-meta", lambda: jrc(z, yj.to("meta"), sid), ValueError, "device")
    j("session_ids-none", lambda: jrc(z, yj, None), ValueError, "session_ids")
    j("session_ids-float", lambda: jrc(z, yj, sid.float()), TypeError, "session_ids")
    j("session_ids-length", lambda: jrc(z, yj, sid[:4]), ValueError, "session_ids")
    j("weight-shape", lambda: jrc(z, yj, sid, weight=torch.ones(b, 2)), ValueError, "weight")
    j("weight-length", lambda: jrc(z, yj, sid, weight=torch.ones(b - 1)), ValueError, "weight")
    j("weight-int", lambda: jrc(z, yj, sid, weight=torch.ones(b, dtype=torch.int64)), TypeError, "weight")
    j("weight-nan", lambda: jrc(z, yj, sid, weight=float("nan")), ValueError, "weight")
    j("alpha-big", lambda: jrc(z, yj, sid, alpha=1.5), ValueError, "alpha")
    j("alpha-neg", lambda: jrc(z, yj, sid, alpha=-0.1), ValueError, "alpha")
    j("alpha-nan", lambda: jrc(z, yj, sid, alpha=float("nan")), ValueError, "alpha")
    j("alpha-str", lambda: jrc(z, yj, sid, alpha="0.5"), TypeError, "alpha")
    j("same_label_loss-int", lambda: jrc(z, yj, sid, same_label_loss=1), TypeError, "same_label_loss")
    j("strategy-unknown", lambda: jrc(z, yj, sid, loss_weight_strategy="dynamic"), ValueError,
      "loss_weight_strategy")
    j("strategy-none", lambda: jrc(z, yj, sid, loss_weight_strategy=None), ValueError, "loss_weight_strategy")
    j("uncertainty-missing", lambda: jrc(z, yj, sid, loss_weight_strategy="uncertainty"), TypeError,
      "uncertainty")
    j("uncertainty-3", lambda: jrc(z, yj, sid, loss_weight_strategy="uncertainty",
                                   uncertainty=torch.zeros(3)), TypeError, "uncertainty")
    j("backend-unknown", lambda: jrc(z, yj, sid, backend="fast"), ValueError, "backend")
    j("backend-cuda", lambda: jrc(z, yj, sid, backend="cuda"), ValueError, "cuda")
    cases += [
        ("module-jrc-alpha", lambda: fl_nn.JRCLoss(alpha=2.0)(z, yj, sid), ValueError, "alpha"),
        ("module-rank-temperature", lambda: fl_nn.ListwiseRankLoss(temperature=0.0)(x, y), ValueError,
         "temperature"),
    ]
    return cases


@pytest.mark.parametrize("case", _bad_cases(), ids=lambda c: c[0])
def test_bad_input(case):
    _, thunk, exc, match = case
    with pytest.raises(exc, match=match):
        thunk()


@pytest.mark.parametrize("backend", ["reference", "cpu", "triton"])
def test_bad_input_on_every_backend(backend):
    # the checks run before every backend: the kernels never see bad input
    x, y, z = torch.randn(6), torch.rand(6), torch.randn(6, 2)
    yj, sid = torch.tensor([0, 1, 1, 0, 1, 0]), torch.zeros(6, dtype=torch.int64)
    for f in (fusedloss.listwise_rank_loss, fusedloss.listwise_distill_loss):
        with pytest.raises(ValueError, match="session_ids"):
            f(x, y, sid[:5], backend=backend)
        with pytest.raises(ValueError, match="temperature"):
            f(x, y, temperature=-1.0, backend=backend)
        with pytest.raises(TypeError, match="weight"):
            f(x, y, weight=torch.ones(6), backend=backend)
    with pytest.raises(ValueError, match="labels"):
        fusedloss.jrc_loss(z, yj * 2, sid, backend=backend)
    with pytest.raises(TypeError, match="labels"):
        fusedloss.jrc_loss(z, yj.float(), sid, backend=backend)


@NEEDS_CUDA
def test_cuda_backend_and_other_device_refused():
    # the cuda backend against the float64 reference, and mixed devices refused naming the tensor
    b = 37
    x, y = make_scores(b, device="cuda"), make_rank_labels(b, device="cuda")
    sid = make_sessions("random", b, "cuda")
    assert_matches_reference("rank", "cuda", x, y, sid, temperature=0.5)
    z, yj = make_scores(b, device="cuda", cols=2), make_jrc_labels(b, device="cuda")
    assert_matches_reference("jrc", "cuda", z, yj, sid, weight=make_jrc_weight("zeros", b, "cuda"))
    with pytest.raises(ValueError, match="target"):
        fusedloss.listwise_rank_loss(x, y.cpu(), sid)
    with pytest.raises(ValueError, match="session_ids"):
        fusedloss.listwise_rank_loss(x, y, sid.cpu())
    with pytest.raises(ValueError, match="labels"):
        fusedloss.jrc_loss(z, yj.cpu(), sid)
    with pytest.raises(ValueError, match="cpu"):
        fusedloss.jrc_loss(z, yj, sid, backend="cpu")


def test_cuda_backend_names_the_reason():
    with pytest.raises(ValueError, match="cuda") as info:
        fusedloss.jrc_loss(torch.randn(4, 2), torch.tensor([0, 1, 0, 1]), torch.zeros(4, dtype=torch.int64),
                           backend="cuda")
    assert "needs CUDA tensors" in str(info.value) or "built without CUDA" in str(info.value)


# ----------------------------------------------------------------------------------------------
# 7. raw ops: documented outputs, opcheck
# ----------------------------------------------------------------------------------------------

OP_OF_BACKEND = {"cpu": "session_softmax_fwd", "cuda": "session_softmax_fwd",
                 "triton": "session_softmax_fwd_triton"}
KIND = ss_ops.KINDS
LIL, GIVEN = ss_ops.LABEL_IS_LOGITS, ss_ops.TARGETS_GIVEN


def _op(backend):
    return getattr(torch.ops.fusedloss, OP_OF_BACKEND[backend]).default


def test_session_softmax_op_has_a_cpu_kernel():
    # The CI always builds the C++ extension: a missing CPU kernel is a failure, never a skip.
    assert torch._C._dispatch_has_kernel_for_dispatch_key("fusedloss::session_softmax_fwd", "CPU")


# (kind, flags, temperature, clip_max, weight)
RAW_SETTINGS = [
    ("rank", 0, 0.5, 512.0, False),
    ("rank", LIL, 2.0, 512.0, False),
    ("rank", LIL | GIVEN, 0.5, 512.0, False),
    ("distill", 0, 2.0, 5.0, False),
    ("distill", GIVEN, 1.0, 512.0, False),
    ("jrc", 0, 1.0, 512.0, True),
    ("jrc", 0, 1.0, 512.0, False),
    ("jrc_split", 0, 1.0, 512.0, True),
]


def raw_args(device, dtype, setting, *, b=19, requires_grad=False, compute_grad=True, permuted=False,
             sessions="random"):
    """The op's arguments as run_session_softmax prepares them (items sorted by session, logits /
    labels / weight in the accumulation dtype), plus the sorted session ids."""
    kind, flags, temperature, clip_max, weighted = setting
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    jrc = kind.startswith("jrc")
    cols = 2 if jrc else 1
    sid = make_sessions(sessions, b, device)
    order, seg_lo, seg_hi = session_layout(sid, b, device)
    z = make_scores(b, acc, device, cols=cols)
    if jrc:
        y = make_jrc_labels(b, device=device).to(acc)
    elif kind == "rank":
        y = make_rank_labels(b, "logits" if flags & LIL else "graded", device).to(acc)
    else:
        y = make_ranks(b, "clip", device) if not flags & GIVEN else torch.rand(b, device=device) + 0.1
        y = y.to(acc)
    w = make_jrc_weight("zeros", b, device).to(acc) if weighted else None
    if order is not None:
        z, y, sid = z[order], y[order].contiguous(), sid[order]
        w = None if w is None else w[order].contiguous()
    z = z.t().contiguous().t() if permuted else z.contiguous()  # permuted: dense, column-major
    z.requires_grad_(requires_grad)
    args = (z, y, w, seg_lo, seg_hi, KIND[kind], flags, temperature, clip_max, compute_grad)
    return args, sid


def _raw_expected(setting, z, y, w, sid):
    """[(numerator, denominator)] per part from the spec formulas (z float64 leaf)."""
    kind, flags, temperature, clip_max, _ = setting
    if kind.startswith("jrc"):
        cn, cd, gn, gd = spec_jrc_parts(z, y.long(), sid, w, kind == "jrc")
        return [(cn, cd), (gn, gd)]
    given = (lambda _t: y.double()) if flags & GIVEN else None
    num, g = spec_listwise_parts(kind, z[:, 0], y, sid, temperature=temperature,
                                 label_is_logits=bool(flags & LIL), transform_fn=given,
                                 label_clip_max_value=clip_max)
    return [(num, float(g))]


@pytest.mark.parametrize("device, backend", FUSED)
@pytest.mark.parametrize("setting", RAW_SETTINGS, ids=str)
def test_raw_op_outputs(device, backend, setting):
    # (num, den, grad): num / den [P] the parts' numerators and denominators (listwise: sum over
    # sessions of l_g and G; JRC: CE's SBNZ numerator and nonzero-weight count, GE's numerator and
    # B), grad [P, B, C] = d num_p / d logits, all in the accumulation dtype; grad empty without
    # compute_grad
    args, sid = raw_args(device, torch.float64, setting)
    z, y, w = args[:3]
    num, den, grad = _op(backend)(*args)
    p = 2 if setting[0].startswith("jrc") else 1
    assert num.shape == den.shape == (p,) and grad.shape == (p,) + tuple(z.shape)
    assert num.dtype == den.dtype == grad.dtype == torch.float64
    zl = z.detach().clone().requires_grad_()
    for part, (en, ed) in enumerate(_raw_expected(setting, zl, y, w, sid)):
        (eg,) = torch.autograd.grad(en, zl, retain_graph=True)
        torch.testing.assert_close(num[part], en.detach(), rtol=RTOL64, atol=ATOL64)
        assert float(den[part]) == float(ed)
        torch.testing.assert_close(grad[part], eg, rtol=RTOL64, atol=ATOL64)
    n2, d2, g2 = _op(backend)(*args[:-1], False)
    assert g2.numel() == 0 and torch.equal(n2, num) and torch.equal(d2, den)
    # low precision input of the op is its accumulation dtype: float32 outputs
    args32, _ = raw_args(device, torch.float32, setting)
    assert all(t.dtype == torch.float32 for t in _op(backend)(*args32))


def _opcheck_cases():
    out = []
    for device, backend in FUSED:
        settings = RAW_SETTINGS if not interpreted(device, backend) else RAW_SETTINGS[1::2]
        for setting in settings:
            out.append((device, backend, setting))
    return out


@pytest.mark.parametrize("device, backend, setting", _opcheck_cases(), ids=str)
def test_opcheck(device, backend, setting):
    op = _op(backend)
    for rg, cg in ((True, True), (False, False)):
        args, _ = raw_args(device, torch.float32, setting, b=11, requires_grad=rg, compute_grad=cg)
        torch.library.opcheck(op, args)


@pytest.mark.parametrize("device, backend", FUSED)
def test_opcheck_fp64_permuted_empty_and_no_sessions(device, backend):
    op = _op(backend)
    jrc = ("jrc", 0, 1.0, 512.0, True)
    torch.library.opcheck(op, raw_args(device, torch.float64, jrc, b=11, requires_grad=True)[0])
    # a dense column-major logits: the C++ op documents contiguous logits (run_session_softmax makes
    # them so) and may refuse others with a RuntimeError; if it takes them, opcheck them
    permuted = raw_args(device, torch.float32, jrc, b=11, requires_grad=True, permuted=True)[0]
    assert not permuted[0].is_contiguous()
    try:
        op(*permuted)
    except RuntimeError as exc:
        assert "contiguous" in str(exc) and backend != "triton"
    else:
        torch.library.opcheck(op, permuted)
    torch.library.opcheck(op, raw_args(device, torch.float32, RAW_SETTINGS[0], b=11, requires_grad=True,
                                       sessions=None)[0])
    # B = 0: the listwise numerator and denominator are 0 (the NaN comes from the division outside)
    for setting in (RAW_SETTINGS[0], jrc):
        args, _ = raw_args(device, torch.float32, setting, b=0, requires_grad=True, sessions=None)
        torch.library.opcheck(op, args)


@pytest.mark.parametrize("device, backend", FUSED)
def test_malformed_session_ranges_never_crash(device, backend):
    # the op's second line of defence: ranges that do not contain their item or do not partition
    # [0, B) are refused with a RuntimeError naming seg_lo/seg_hi (C++), or at least never read or
    # write out of bounds (Triton clamps them; its outputs are then unspecified)
    args, _ = raw_args(device, torch.float32, RAW_SETTINGS[5], b=11)
    b = 11
    lo, hi = args[3], args[4]
    bad = [(lo, hi + 5), (lo - 3, hi), (torch.zeros_like(lo), torch.full_like(hi, 5)), (hi, lo)]
    for blo, bhi in bad:
        bad_args = args[:3] + (blo.contiguous(), bhi.contiguous()) + args[5:]
        if backend == "triton":
            try:
                num, den, grad = _op(backend)(*bad_args)
            except (RuntimeError, ValueError):
                continue
            assert num.shape == (2,) and grad.shape == (2, b, 2)
        else:
            with pytest.raises(RuntimeError, match="seg_lo"):
                _op(backend)(*bad_args)


@pytest.mark.parametrize("device, backend", FUSED)
def test_compute_grad_false_with_requires_grad_raises(device, backend):
    args, _ = raw_args(device, torch.float32, RAW_SETTINGS[0], requires_grad=True, compute_grad=False)
    with pytest.raises(RuntimeError, match="compute_grad=False"):
        _op(backend)(*args)


# ----------------------------------------------------------------------------------------------
# 8. torch.compile(fullgraph=True), nn modules
# ----------------------------------------------------------------------------------------------


def test_compile_fullgraph_cpu():
    # validation, backend choice, the session sort and the fused op trace without a graph break;
    # all three losses (JRC with the trainable 'uncertainty' weights) in one graph, forward and
    # backward against the float64 reference, twice (fresh values of the same shapes)
    torch._dynamo.reset()

    def f(x, y, r, z, yj, sid, w, u, backend):
        return (fusedloss.listwise_rank_loss(x, y, sid, temperature=0.5, label_is_logits=True,
                                             backend=backend)
                + fusedloss.listwise_distill_loss(x, r, sid, label_clip_max_value=5.0, backend=backend)
                + fusedloss.jrc_loss(z, yj, sid, weight=w, same_label_loss=False, backend=backend)
                + fusedloss.jrc_loss(z, yj, sid, weight=w, loss_weight_strategy="uncertainty",
                                     uncertainty=u, backend=backend))

    compiled = torch.compile(f, fullgraph=True)
    b = 37
    for _ in range(2):
        x, z = make_scores(b, torch.float32), make_scores(b, torch.float32, cols=2)
        y, r = make_rank_labels(b, "logits").float(), make_ranks(b, "clip").float()
        yj, sid, w = make_jrc_labels(b), make_sessions("random", b), make_jrc_weight("zeros", b).float()
        leaves = [x.clone().requires_grad_(), z.clone().requires_grad_(),
                  torch.tensor([0.2, -0.4], requires_grad=True)]
        loss = compiled(leaves[0], y, r, leaves[1], yj, sid, w, leaves[2], "cpu")
        grads = torch.autograd.grad(loss, leaves)
        ref_leaves = [t.detach().double().requires_grad_() for t in leaves]
        expected = f(ref_leaves[0], y.double(), r.double(), ref_leaves[1], yj, sid, w.double(),
                     ref_leaves[2], "reference")
        ref_grads = torch.autograd.grad(expected, ref_leaves)
        assert loss.dtype == torch.float32 and loss.shape == ()
        torch.testing.assert_close(loss.detach(), expected.detach().float(), rtol=1e-5, atol=1e-6)
        for g, rg in zip(grads, ref_grads):
            torch.testing.assert_close(g, rg.float(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("device, backend", [(d, b) for d in DEVICES for b in ["auto"] + backends_for(d)])
def test_modules(device, backend):
    # modules = the functions with the constructor's keywords; scale_logits adds logit_scale (1) and
    # logit_bias (0) parameters that get gradients; JRCLoss('uncertainty') owns a [2] parameter
    b = 13 if interpreted(device, backend) else 37
    x, sid = make_scores(b, device=device), make_sessions("random", b, device)
    y, r = make_rank_labels(b, device=device), make_ranks(b, device=device)
    z, yj, w = make_scores(b, device=device, cols=2), make_jrc_labels(b, device=device), \
        make_jrc_weight("B", b, device)
    m = fl_nn.ListwiseRankLoss(temperature=0.5, label_is_logits=True, weight=0.3, backend=backend)
    torch.testing.assert_close(m(x, y, sid), fusedloss.listwise_rank_loss(
        x, y, sid, temperature=0.5, label_is_logits=True, weight=0.3, backend="reference"),
        rtol=RTOL64, atol=ATOL64)
    m = fl_nn.ListwiseDistillLoss(label_clip_max_value=5.0, backend=backend)
    torch.testing.assert_close(m(x, r), fusedloss.listwise_distill_loss(
        x, r, label_clip_max_value=5.0, backend="reference"), rtol=RTOL64, atol=ATOL64)
    for cls, yy in ((fl_nn.ListwiseRankLoss, y), (fl_nn.ListwiseDistillLoss, r)):
        m = cls(scale_logits=True, backend=backend).double().to(device)
        assert m.logit_scale.item() == 1.0 and m.logit_bias.item() == 0.0
        loss = m(x, yy, sid)
        loss.backward()
        assert m.logit_scale.grad is not None and m.logit_bias.grad is not None
        torch.testing.assert_close(loss, cls(backend="reference")(x, yy, sid), rtol=RTOL64, atol=ATOL64)
    m = fl_nn.JRCLoss(alpha=0.3, same_label_loss=False, backend=backend)
    torch.testing.assert_close(m(z, yj, sid, w), fusedloss.jrc_loss(
        z, yj, sid, weight=w, alpha=0.3, same_label_loss=False, backend="reference"),
        rtol=RTOL64, atol=ATOL64)
    m = fl_nn.JRCLoss(loss_weight_strategy="uncertainty", backend=backend).double().to(device)
    assert m.uncertainty.shape == (2,) and not m.uncertainty.any()
    m(z, yj, sid).backward()
    assert m.uncertainty.grad is not None and m.uncertainty.grad.abs().sum() > 0
    m = fl_nn.JRCLoss(loss_weight_strategy="random_normal", generator=_seeded(5, device), backend=backend)
    torch.testing.assert_close(m(z, yj, sid), fusedloss.jrc_loss(
        z, yj, sid, loss_weight_strategy="random_normal", generator=_seeded(5, device), backend="reference"),
        rtol=RTOL64, atol=ATOL64)
