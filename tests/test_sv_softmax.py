"""Support-vector-guided softmax (EasyRec SOFTMAX_CROSS_ENTROPY_WITH_NEGATIVE_MINING, spec 6.1):
``fusedloss.sv_softmax_loss``, its module, and the ops ``fusedloss::sv_softmax_fwd`` (C++ cpu/cuda) and
``fusedloss::sv_softmax_fwd_triton``.

Truth: ``fusedloss.reference.sv_softmax_loss_reference`` run in float64 on fresh random inputs, the
loss and the gradients of BOTH embeddings (with a random grad_output). The reference is anchored
outside the package:
    - a direct formula written one row at a time in float64 (``F.normalize``, the hard-negative rule
      spelled out, ``logsumexp``; the reductions counted by hand), loss and both gradients;
    - EasyRec's own vectorised form (``tf.roll`` of the items, ``boolean_mask`` of the kept rows,
      the 0/1 hard mask arithmetic of ``support_vector_guided_softmax_loss`` and TF's
      SUM_BY_NONZERO_WEIGHTS) transcribed to torch;
    - at t = 1 (no re-weighting) torch's own ``F.cross_entropy`` of ``gamma [c+, c-_1..c-_K]``;
    - ``torch.autograd.gradcheck`` of the reference (user, item and weights).
Low precision (fp32, fp16, bf16): flash-attn's bound (``lowp_bound``): at most twice as far from the
float64 truth as the reference computed in the same dtype, plus a few ulps. The loss is discontinuous
where a negative becomes hard (t != 1), so low-precision inputs are redrawn until no negative lies
within 1e-4 of the boundary (the fp32 accumulation error is ~1e-6): a flip there is not an error.

Every main case asserts that its kept rows have both hard and easy negatives (margin 0.1, t 1.3,
gamma 5), so the hard-negative branch and its gradient factor t are really exercised.

The large crosses run on ``reference`` and the C++ ``cpu`` backend (and ``cuda`` / compiled ``triton``
with a GPU); the Triton interpreter (~ms per program, one core) gets a subset with smaller sizes that
still touches every option, dtype and shape path (D = 1100 > 1024: the chunked loop over D).
"""

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import (
    ALL,
    DEVICES,
    FUSED,
    NEEDS_CUDA,
    OpRecorder,
    backend_cases,
    canary,
    fused_backends_for,
    fusedloss_ops_called,
    interpreted,
    lowp_bound,
    param_id,
)

import fusedloss
from fusedloss import nn as fl_nn
from fusedloss.reference import sv_softmax as ref

REDUCTIONS = ("sum_by_nonzero_weights", "mean", "sum")
SBNZ = "sum_by_nonzero_weights"
LOWP = [torch.float32, torch.float16, torch.bfloat16]
# float64 against the float64 reference: only the order of summation differs.
RTOL64, ATOL64 = 1e-10, 1e-12
GAP_LOWP = 1e-4  # low-precision inputs keep every negative this far from the hard boundary

# ----------------------------------------------------------------------------------------------
# input builders
# ----------------------------------------------------------------------------------------------


def l2n64(a):
    return a / a.square().sum(-1, keepdim=True).clamp(min=1e-12).sqrt()


def make_embeddings(b, d, *, normed=False, zero_row=False, scale=1.0):
    """float64 (user, item) [B, D]: item row i = s_i user_i + noise with s_i ~ U(-0.5, 1.5), so the
    positive cosines spread over about (-0.5, 0.85) whatever D is, and some rows' negatives are hard
    (c+ - margin < c-) and others' are not. ``zero_row``: user row 1 and item row 2 are all zeros
    (the clamp of l2n, whose Jacobian is 1e6 I)."""
    u = torch.randn(b, d, dtype=torch.float64) * scale
    s = torch.rand(b, 1, dtype=torch.float64) * 2.0 - 0.5
    v = s * u + torch.randn(b, d, dtype=torch.float64) * scale
    if zero_row and b >= 3:
        u[1] = 0.0
        v[2] = 0.0
    if normed:
        u, v = l2n64(u), l2n64(v)
    return u, v


def make_labels(b, kind="float", col=False):
    """Labels [B] (or [B, 1]): row 0 kept, row 1 dropped, the rest random; ``kind``: "float" (from
    -0.5, 0, 0.3, 1, 2), "int" (int64 from -1, 0, 1, 2), "int32", "uint8" (0, 1, 3), "bool",
    "keep_all", "drop_all"."""
    if kind == "keep_all":
        lab = torch.ones(b, dtype=torch.float64)
    elif kind == "drop_all":
        lab = torch.tensor([0.0, -1.0, -0.5] * b, dtype=torch.float64)[:b]
    else:
        pools = {
            "float": torch.tensor([-0.5, 0.0, 0.3, 1.0, 2.0], dtype=torch.float64),
            "int": torch.tensor([-1, 0, 1, 2]),
            "int32": torch.tensor([-1, 0, 1, 2], dtype=torch.int32),
            "uint8": torch.tensor([0, 1, 3], dtype=torch.uint8),
            "bool": torch.tensor([False, True]),
        }
        pool = pools[kind]
        lab = pool[torch.randint(0, len(pool), (b,))]
        pos = pool[pool > 0][-1] if kind != "bool" else torch.tensor(True)
        neg = pool[~(pool > 0)][0] if kind != "bool" else torch.tensor(False)
        if b >= 1:
            lab[0] = pos
        if b >= 2:
            lab[1] = neg
    return lab[:, None] if col else lab


def make_weights(spec, b, kept, dtype=torch.float64):
    """None; "scalar" (0.7); "zero_scalar" (0.0); "tensor0d"; "one" ([1]); "B"; "B1" ([B, 1]);
    "Bzeros" ([B], zero on about a third of the kept rows, never all of them); "Bneg" (some < 0)."""
    def rand(s):
        return (torch.rand(s, dtype=torch.float64) * 1.5 + 0.25).to(dtype)

    if spec is None:
        return None
    if spec == "scalar":
        return 0.7
    if spec == "zero_scalar":
        return 0.0
    if spec == "tensor0d":
        return rand(())
    if spec == "one":
        return rand((1,))
    if spec == "B":
        return rand((b,))
    if spec == "B1":
        return rand((b, 1))
    if spec == "Bzeros":
        w = rand((b,))
        idx = kept.nonzero().flatten()
        drop = idx[torch.randperm(len(idx))[: max(1, len(idx) // 3)]]
        if len(idx) > 1:
            w[drop] = 0.0
        return w
    if spec == "Bneg":
        return rand((b,)) * torch.where(torch.rand(b) > 0.3, 1.0, -1.0).to(dtype)
    raise AssertionError(spec)


def make_shifts(b, k, kind="random"):
    """int64 [K] in [1, B - 1]: "random" (uniform, like EasyRec), "dups" (shift 0 and 1 equal, and
    with K >= 4 the last one too), "all" (K = B - 1: every other row once, in random order)."""
    if kind == "all":
        assert k == b - 1
        return torch.randperm(b - 1) + 1
    s = torch.randint(1, max(b, 2), (k,))
    if kind == "dups" and k >= 2:
        s[1] = s[0]
        if k >= 4:
            s[-1] = s[0]
    return s


def gaps(u, v, shifts, normed, margin):
    """float64 [B, K]: c+ - margin - c-_k; a negative is hard where this is < 0."""
    u, v = u.double(), v.double()
    if not normed:
        u, v = l2n64(u), l2n64(v)
    b = u.shape[0]
    neg = (torch.arange(b, device=u.device)[:, None] - shifts.to(u.device)[None, :]).remainder(max(b, 1))
    cpos = (u * v).sum(-1) - margin
    cneg = (u[:, None, :] * v[neg]).sum(-1)
    return cpos[:, None] - cneg


class Case:
    """Inputs of one call. ``user``/``item`` in ``dtype``; labels, weights and shifts as built; kw:
    the scalar options (embed_normed, gamma, margin, t, reduction)."""

    def __init__(self, user, item, labels, weights, shifts, **kw):
        self.user, self.item, self.labels, self.weights, self.shifts = user, item, labels, weights, shifts
        self.kw = dict(embed_normed=False, gamma=1.0, margin=0.0, t=1.0, reduction=SBNZ)
        self.kw.update(kw)

    @property
    def kept(self):
        return self.labels.reshape(-1) > 0

    def gaps(self):
        return gaps(self.user, self.item, self.shifts, self.kw["embed_normed"], self.kw["margin"])


def build(cfg, dtype=torch.float64, device="cpu"):
    """A Case from a config dict: b, d, k; normed, zero_row; labels (kind), col ([B, 1] labels);
    weights (make_weights spec); shifts ("random", "dups", "all"); margin, t, gamma, reduction;
    mixed (default True). Defaults: margin 0.1, t 1.3, gamma 5 (hard negatives matter). With t != 1
    and B > 2 the embeddings are redrawn until the kept rows have hard and easy negatives (unless
    mixed=False) and, in low precision, no negative of a kept row is within GAP_LOWP of the hard
    boundary."""
    cfg = dict(cfg)
    b, d, k = cfg.pop("b"), cfg.pop("d"), cfg.pop("k")
    normed = cfg.pop("normed", False)
    zero_row = cfg.pop("zero_row", False)
    labels = make_labels(b, cfg.pop("labels", "float"), cfg.pop("col", False))
    shifts = make_shifts(b, k, cfg.pop("shifts", "random"))
    wspec = cfg.pop("weights", None)
    mixed = cfg.pop("mixed", True)
    kw = dict(margin=0.1, t=1.3, gamma=5.0, reduction=SBNZ)
    kw.update(cfg)
    kept = labels.reshape(-1) > 0
    mixed = mixed and kw["t"] != 1.0 and b > 2 and d > 0 and bool(kept.any())
    for _ in range(100):
        u, v = make_embeddings(b, d, normed=normed, zero_row=zero_row)
        u, v = u.to(dtype), v.to(dtype)
        g = gaps(u, v, shifts, normed, kw["margin"])[kept]
        if mixed and not ((g < 0).any() and (g >= 0).any()):
            continue
        if dtype == torch.float64 or kw["t"] == 1.0 or g.numel() == 0 or g.abs().min() > GAP_LOWP:
            break
    else:
        raise AssertionError("could not draw inputs with hard and easy negatives, away from the boundary")
    weights = make_weights(wspec, b, kept, dtype)
    mv = lambda x: x.to(device) if isinstance(x, torch.Tensor) else x  # noqa: E731
    return Case(mv(u), mv(v), mv(labels), mv(weights), mv(shifts), embed_normed=normed, **kw)


def assert_mixed_hardness(case):
    """The kept rows' negatives include hard ones and easy ones: the test would notice a wrong
    hard-negative rule (t != 1)."""
    g = case.gaps()[case.kept]
    assert (g < 0).any() and (g >= 0).any(), f"hard fraction {(g < 0).double().mean():.2f}: not mixed"


# ----------------------------------------------------------------------------------------------
# call helpers
# ----------------------------------------------------------------------------------------------


def _ref_weights(w):
    """The reference's ``weights`` for the public function's argument (as the function passes it)."""
    if w is None:
        return 1.0
    if isinstance(w, torch.Tensor):
        return w.reshape(-1)
    return float(w)


def call(backend, user, item, case, *, labels=None, weights="case", shifts="case", **over):
    """The public function on ``backend``; ``backend=None`` calls the reference function itself."""
    labels = case.labels if labels is None else labels
    weights = case.weights if isinstance(weights, str) and weights == "case" else weights
    shifts = case.shifts if isinstance(shifts, str) and shifts == "case" else shifts
    kw = dict(case.kw, **over)
    if backend is None:
        return ref.sv_softmax_loss_reference(
            user, item, labels, shifts, kw["embed_normed"], _ref_weights(weights), kw["gamma"],
            kw["margin"], kw["t"], kw["reduction"])
    return fusedloss.sv_softmax_loss(user, item, labels, None, kw["embed_normed"], weights, kw["gamma"],
                                     kw["margin"], kw["t"], shifts=shifts, reduction=kw["reduction"],
                                     backend=backend)


def forward_backward(backend, case, go=None, *, user=None, item=None, **over):
    """(loss, d loss/d user . go, d loss/d item . go, go); the embeddings themselves are the leaves
    (their strides are kept)."""
    ul = (case.user if user is None else user).detach().requires_grad_()
    il = (case.item if item is None else item).detach().requires_grad_()
    loss = call(backend, ul, il, case, **over)
    assert loss.requires_grad, "the loss is not connected to the embeddings"
    if go is None:
        go = (torch.randn((), dtype=torch.float64) + 2.0).to(loss.device, loss.dtype)
    gu, gi = torch.autograd.grad(loss, (ul, il), go)
    return loss.detach(), gu, gi, go


def _as64(case):
    w = case.weights
    w64 = w.double() if isinstance(w, torch.Tensor) else w
    return Case(case.user.double(), case.item.double(), case.labels, w64, case.shifts, **case.kw)


def assert_matches_reference(backend, case, factor=None):
    """fp64: tight against the fp64 reference. Low precision: flash-attn's bound against the
    reference in the same dtype. Always: dtypes and shapes of loss and both gradients."""
    loss, gu, gi, go = forward_backward(backend, case)
    dtype = case.user.dtype
    assert loss.dtype == dtype and gu.dtype == dtype and gi.dtype == dtype
    assert loss.shape == () and gu.shape == case.user.shape and gi.shape == case.item.shape
    ref_loss, ref_gu, ref_gi, _ = forward_backward(None, _as64(case), go.double())
    if dtype == torch.float64:
        torch.testing.assert_close(loss, ref_loss, rtol=RTOL64, atol=ATOL64)
        torch.testing.assert_close(gu, ref_gu, rtol=RTOL64, atol=ATOL64)
        torch.testing.assert_close(gi, ref_gi, rtol=RTOL64, atol=ATOL64)
    else:
        same_loss, same_gu, same_gi, _ = forward_backward(None, case, go)
        f_loss, f_grad = factor or ((16.0, 8.0) if dtype == torch.float32 else (2.0, 2.0))
        lowp_bound(loss, same_loss, ref_loss, dtype, f_loss)
        lowp_bound(gu, same_gu, ref_gu, dtype, f_grad)
        lowp_bound(gi, same_gi, ref_gi, dtype, f_grad)
    return loss, gu, gi


# ----------------------------------------------------------------------------------------------
# the reference against independent formulas
# ----------------------------------------------------------------------------------------------


def direct_loss(user, item, labels, shifts, normed, weights, gamma, margin, t, reduction):
    """Spec 6.1 one row at a time in float64: F.normalize (eps 1e-6 on the norm is l2n's 1e-12 on
    the squared norm), the hard-negative rule as an if, logsumexp, the reduction counted by hand."""
    b = user.shape[0]
    u = user if normed else F.normalize(user, dim=1, eps=1e-6)
    v = item if normed else F.normalize(item, dim=1, eps=1e-6)
    lab = labels.reshape(-1).tolist()
    if weights is None:
        w = [1.0] * b
    elif isinstance(weights, torch.Tensor):
        flat = weights.reshape(-1)
        w = [flat[0] if flat.numel() == 1 else flat[i] for i in range(b)]
    else:
        w = [float(weights)] * b
    total = user.new_zeros(())
    kept = nonzero = 0
    for i in range(b):
        if not lab[i] > 0:
            continue
        cpos = torch.dot(u[i], v[i]) - margin
        logits = [gamma * cpos]
        for r in shifts.tolist():
            cneg = torch.dot(u[i], v[(i - r) % b])
            h = t * cneg + t - 1 if float((cpos - cneg).detach()) < 0 else cneg
            logits.append(gamma * h)
        z = torch.stack(logits)
        total = total + w[i] * (torch.logsumexp(z, 0) - z[0])
        kept += 1
        nonzero += float(w[i]) != 0
    if reduction == "sum":
        loss = total
    else:
        den = nonzero if reduction == SBNZ else kept
        loss = total / den if den else total * 0.0
    return torch.where(torch.isnan(loss), 0.0, loss)


def easyrec_loss(user, item, labels, shifts, normed, weights, gamma, margin, t):
    """EasyRec's softmax_loss_with_negative_mining + support_vector_guided_softmax_loss, transcribed:
    rolled item copies stacked [B, K + 1, D], boolean_mask of the kept rows (and of tensor weights),
    batch_dot, the 0/1 mask arithmetic, sparse softmax CE with TF's SUM_BY_NONZERO_WEIGHTS."""
    if not normed:
        user, item = F.normalize(user, dim=-1, eps=1e-6), F.normalize(item, dim=-1, eps=1e-6)
    vectors = [item] + [torch.roll(item, int(r), dims=0) for r in shifts]
    all_emb = torch.stack(vectors, dim=1)
    mask = labels.reshape(-1) > 0
    mu, mi = user[mask], all_emb[mask]
    if isinstance(weights, torch.Tensor):
        weights = weights.reshape(-1)[mask] if weights.numel() > 1 else weights.reshape(())
    sim = torch.einsum("pd,pkd->pk", mu, mi)
    pos, neg = sim[:, :1] - margin, sim[:, 1:]
    cond = (pos - neg) >= 0
    m = torch.where(cond, 0.0, 1.0).to(sim.dtype)
    new_neg = m * (neg * t + t - 1) + (1 - m) * neg
    logits = torch.cat([pos, new_neg], dim=1) * gamma
    ce = F.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long), reduction="none")
    w = torch.as_tensor(weights, dtype=ce.dtype).expand(ce.shape)
    den = (w != 0).sum()
    loss = torch.where(den > 0, (ce * w).sum() / den.clamp(min=1), 0.0)
    return torch.where(torch.isnan(loss), 0.0, loss)


REF_CONFIGS = [
    dict(b=37, d=16, k=5),
    dict(b=37, d=16, k=5, normed=True, weights="Bzeros", reduction="mean"),
    dict(b=37, d=16, k=5, weights="Bzeros"),
    dict(b=37, d=16, k=5, weights="scalar", reduction="sum", labels="int"),
    dict(b=23, d=7, k=22, shifts="all", weights="B1", labels="bool", col=True),
    dict(b=11, d=5, k=6, shifts="dups", weights="Bneg", zero_row=True, t=0.6, margin=-0.2),
    dict(b=9, d=1, k=3, weights="tensor0d", gamma=30.0),
    dict(b=2, d=3, k=1, labels="keep_all", weights="one"),
]


@pytest.mark.parametrize("cfg", REF_CONFIGS, ids=param_id)
def test_reference_is_the_direct_formula(cfg):
    c = build(cfg)
    if cfg["b"] > 2:
        assert_mixed_hardness(c)
    loss, gu, gi, go = forward_backward(None, c)
    ul, il = c.user.clone().requires_grad_(), c.item.clone().requires_grad_()
    want = direct_loss(ul, il, c.labels, c.shifts, c.kw["embed_normed"], c.weights, c.kw["gamma"],
                       c.kw["margin"], c.kw["t"], c.kw["reduction"])
    wu, wi = torch.autograd.grad(want, (ul, il), go)
    torch.testing.assert_close(loss, want.detach(), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(gu, wu, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(gi, wi, rtol=1e-10, atol=1e-12)
    assert gu.abs().sum() > 0 and gi.abs().sum() > 0
    if cfg.get("zero_row"):
        # the clamp branch: user row 1 is dropped (labels[1] <= 0), but item row 2 is read
        assert gi[2].abs().max() > 1e3  # Jacobian 1e6 I: no projection of a zero row
    if c.kw["reduction"] == SBNZ:
        ul, il = c.user.clone().requires_grad_(), c.item.clone().requires_grad_()
        er = easyrec_loss(ul, il, c.labels, c.shifts, c.kw["embed_normed"],
                          1.0 if c.weights is None else c.weights, c.kw["gamma"], c.kw["margin"], c.kw["t"])
        eu, ei = torch.autograd.grad(er, (ul, il), go)
        torch.testing.assert_close(loss, er.detach(), rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(gu, eu, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(gi, ei, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("normed", [False, True])
def test_reference_t1_is_torch_cross_entropy(normed):
    # t = 1: h = c- whether hard or not, so the row loss is torch's CE of gamma [c+, c-_k] at class 0
    c = build(dict(b=29, d=9, k=4, normed=normed, t=1.0, gamma=3.0, margin=0.2, weights="B",
                   reduction="mean", labels="int"))
    u, v = (c.user, c.item) if normed else (l2n64(c.user), l2n64(c.item))
    b = u.shape[0]
    neg = (torch.arange(b)[:, None] - c.shifts[None]) % b
    logits = 3.0 * torch.cat([(u * v).sum(-1, keepdim=True) - 0.2, (u[:, None] * v[neg]).sum(-1)], 1)
    ce = F.cross_entropy(logits, torch.zeros(b, dtype=torch.long), reduction="none")
    kept = c.kept
    want = (ce * c.weights)[kept].sum() / kept.sum()
    torch.testing.assert_close(call(None, c.user, c.item, c), want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("cfg", [
    dict(b=5, d=3, k=2),
    dict(b=5, d=4, k=4, shifts="all", normed=True, weights="Bzeros", reduction="mean"),
    dict(b=6, d=3, k=3, shifts="dups", weights="B", reduction="sum", t=2.0),
], ids=param_id)
def test_reference_gradcheck(cfg):
    # (no zero row: a 1e-6 step from a zero row lands on l2n's clamp kink at norm 1e-6; the clamp's
    # gradient is checked against F.normalize's autograd in test_reference_is_the_direct_formula)
    c = build(cfg)
    g = c.gaps()[c.kept]
    assert g.abs().min() > 1e-4  # gradcheck's 1e-6 steps never flip a negative's hardness
    u, v = c.user.clone().requires_grad_(), c.item.clone().requires_grad_()
    w = c.weights if isinstance(c.weights, torch.Tensor) else torch.rand(cfg["b"], dtype=torch.float64) + 0.5
    w = w.clone().requires_grad_()
    kw = c.kw

    def f(uu, vv, ww):
        return ref.sv_softmax_loss_reference(uu, vv, c.labels, c.shifts, kw["embed_normed"], ww,
                                             kw["gamma"], kw["margin"], kw["t"], kw["reduction"])

    assert torch.autograd.gradcheck(f, (u, v, w), eps=1e-6, atol=1e-7)


def test_reference_low_precision_returns_input_dtype():
    for dtype in LOWP:
        c = build(dict(b=7, d=5, k=2), dtype)
        assert call(None, c.user, c.item, c).dtype == dtype


# ----------------------------------------------------------------------------------------------
# every backend against the float64 reference
# ----------------------------------------------------------------------------------------------

# name -> config. "mixed": the kept rows have hard and easy negatives (asserted).
MAIN = {
    "base": dict(b=37, d=16, k=5),
    "normed": dict(b=37, d=16, k=5, normed=True, weights="B"),
    "w_scalar_mean": dict(b=37, d=16, k=5, weights="scalar", reduction="mean"),
    "w_tensor0d_sum": dict(b=37, d=16, k=5, weights="tensor0d", reduction="sum"),
    "w_one": dict(b=37, d=16, k=5, weights="one", normed=True, reduction="mean"),
    "w_B1_col_labels": dict(b=37, d=16, k=5, weights="B1", col=True),
    "w_zeros_sbnz": dict(b=37, d=16, k=5, weights="Bzeros"),
    "w_zeros_mean": dict(b=37, d=16, k=5, weights="Bzeros", reduction="mean"),
    "w_neg_sum": dict(b=37, d=16, k=5, weights="Bneg", reduction="sum"),
    "w_zero_scalar_mean": dict(b=37, d=16, k=5, weights="zero_scalar", reduction="mean"),
    "labels_int": dict(b=37, d=16, k=5, labels="int", weights="B"),
    "labels_int32_col": dict(b=37, d=16, k=5, labels="int32", col=True, reduction="mean"),
    "labels_uint8": dict(b=37, d=16, k=5, labels="uint8", reduction="sum"),
    "labels_bool": dict(b=37, d=16, k=5, labels="bool", weights="Bzeros"),
    "keep_all": dict(b=37, d=16, k=5, labels="keep_all", normed=True),
    "k1": dict(b=37, d=16, k=1),
    "k_b_minus_1": dict(b=37, d=16, k=36, shifts="all", weights="B"),
    "dup_shifts": dict(b=37, d=16, k=6, shifts="dups", reduction="mean"),
    "b2": dict(b=2, d=5, k=1, labels="keep_all", mixed=False),
    "b2_normed_sum": dict(b=2, d=3, k=1, normed=True, reduction="sum", mixed=False),
    "b3_k2": dict(b=3, d=4, k=2, labels="keep_all"),
    "b131": dict(b=131, d=8, k=7, weights="B"),
    "d1": dict(b=37, d=1, k=5),
    "d1_normed": dict(b=37, d=1, k=3, normed=True, reduction="mean"),
    "d_odd": dict(b=37, d=33, k=4, weights="Bzeros"),
    "d1100": dict(b=9, d=1100, k=3, weights="B"),
    "d1100_normed_mean": dict(b=6, d=1100, k=5, normed=True, reduction="mean"),
    "d2100": dict(b=5, d=2100, k=2),
    "zero_rows": dict(b=37, d=16, k=5, zero_row=True, labels="keep_all"),
    "zero_rows_normed": dict(b=37, d=16, k=5, zero_row=True, normed=True, labels="keep_all"),
    "t1_defaults": dict(b=37, d=16, k=5, t=1.0, margin=0.0, gamma=1.0, mixed=False),
    "t_small_neg_margin": dict(b=37, d=16, k=5, t=0.5, margin=-0.3, gamma=2.5, weights="B"),
    "gamma_large": dict(b=37, d=16, k=5, gamma=64.0, t=1.2, reduction="mean"),
}
INTERP = {
    "base": dict(b=13, d=16, k=3),
    "normed": dict(b=11, d=16, k=3, normed=True, weights="B"),
    "w_scalar_mean": dict(b=9, d=8, k=3, weights="scalar", reduction="mean"),
    "w_tensor0d_sum": dict(b=9, d=8, k=2, weights="tensor0d", reduction="sum"),
    "w_one": dict(b=9, d=8, k=2, weights="one", normed=True, reduction="mean"),
    "w_B1_col_labels": dict(b=9, d=8, k=3, weights="B1", col=True),
    "w_zeros_sbnz": dict(b=13, d=8, k=3, weights="Bzeros"),
    "w_zeros_mean": dict(b=13, d=8, k=3, weights="Bzeros", reduction="mean"),
    "w_neg_sum": dict(b=9, d=8, k=3, weights="Bneg", reduction="sum"),
    "labels_int": dict(b=9, d=8, k=3, labels="int", weights="B"),
    "labels_bool": dict(b=9, d=8, k=3, labels="bool", weights="Bzeros"),
    "k1": dict(b=9, d=8, k=1, labels="keep_all"),
    "k_b_minus_1": dict(b=9, d=8, k=8, shifts="all", weights="B"),
    "dup_shifts": dict(b=9, d=8, k=5, shifts="dups", reduction="mean"),
    "b2": dict(b=2, d=5, k=1, labels="keep_all", mixed=False),
    "b37": dict(b=37, d=4, k=2, weights="B"),
    "d1": dict(b=9, d=1, k=3, labels="keep_all"),
    "d_odd": dict(b=9, d=33, k=3),
    "d1100": dict(b=5, d=1100, k=2, weights="B"),
    "d1100_normed_mean": dict(b=4, d=1100, k=3, normed=True, reduction="mean", labels="keep_all"),
    "zero_rows": dict(b=9, d=8, k=3, zero_row=True, labels="keep_all"),
    "t_small_neg_margin": dict(b=9, d=8, k=3, t=0.5, margin=-0.3, gamma=2.5, weights="B"),
    "gamma_large": dict(b=9, d=8, k=3, gamma=64.0, t=1.2, reduction="mean", labels="keep_all"),
}


@pytest.mark.parametrize("device, backend, name", backend_cases(list(MAIN), list(INTERP), ALL))
def test_matches_reference(device, backend, name):
    cfg = (INTERP if interpreted(device, backend) else MAIN)[name]
    c = build(cfg, torch.float64, device)
    if cfg.get("mixed", True) and cfg.get("t", 1.3) != 1.0 and cfg["b"] > 2:
        assert_mixed_hardness(c)
    if cfg["d"] == 1 and not cfg.get("normed"):
        # D = 1: l2n(a) = sign(a), the loss is piecewise constant and both gradients vanish (what
        # remains is rounding: the projection cancels S exactly); the comparison above has an
        # absolute tolerance of 1e-12, this checks the scale
        gu64, gi64 = forward_backward(None, c)[1:3]
        assert gu64.abs().max() < 1e-9 and gi64.abs().max() < 1e-9
    loss, gu, gi = assert_matches_reference(backend, c)
    if not (isinstance(c.weights, float) and c.weights == 0.0):
        assert loss.abs() > 0
        if cfg["d"] > 1 or cfg.get("normed"):
            assert gu.abs().sum() > 0 and gi.abs().sum() > 0


LOWP_NAMES = ["base", "normed", "w_zeros_sbnz", "w_neg_sum", "k_b_minus_1", "dup_shifts", "d1", "d_odd",
              "zero_rows", "b2"]
LOWP_INTERP = ["base", "w_zeros_sbnz", "d1", "zero_rows"]


def _lowp_cfg(name, interp):
    cfg = dict((INTERP if interp else MAIN)[name])
    if name == "k_b_minus_1":  # 36 * 37 pairs: too many to keep off the boundary; t = 1 is continuous
        cfg.update(t=1.0)
    if name == "d1":
        # normalised D = 1 has a zero true gradient (test_matches_reference): a relative bound on
        # rounding noise means nothing; D = 1 without normalisation has real gradients
        cfg.update(normed=True)
    return cfg


@pytest.mark.parametrize("device, backend, name", backend_cases(LOWP_NAMES, LOWP_INTERP, ALL))
@pytest.mark.parametrize("dtype", LOWP, ids=param_id)
def test_low_precision(device, backend, name, dtype):
    cfg = _lowp_cfg(name, interpreted(device, backend))
    if name == "zero_rows" and dtype == torch.float16:
        # l2n's clamp gives a zero row the Jacobian 1e6 I: its true gradient overflows fp16 (bf16
        # and fp32 cover the clamp); keep the zero rows, without normalisation
        cfg.update(normed=True)
    c = build(cfg, dtype, device)
    assert_matches_reference(backend, c)


@pytest.mark.parametrize("device, backend", FUSED)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=param_id)
def test_large_d(device, backend, dtype):
    # D = 1100 (interpreter) / 2100: longer than one Triton D chunk (the looped path) and several
    # CPU tiles; fp32 with the default low-precision bound, fp64 tight.
    d = 1100 if interpreted(device, backend) else 2100
    c = build(dict(b=5, d=d, k=3, weights="B"), dtype, device)
    assert_matches_reference(backend, c)


@pytest.mark.parametrize("device, backend", ALL)
@pytest.mark.parametrize("wdtype", [torch.float64, torch.float16, torch.bfloat16], ids=param_id)
def test_weights_of_another_dtype(device, backend, wdtype):
    # a weights tensor of any float dtype is taken in the accumulation dtype (fp32 here)
    c = build(dict(b=13, d=8, k=3, weights="B"), torch.float32, device)
    c.weights = c.weights.to(wdtype)
    assert_matches_reference(backend, c)


COMPILED = [(d, b) for d, b in FUSED if not interpreted(d, b)]


@pytest.mark.parametrize("device, backend", COMPILED)
def test_many_rows_and_thread_count(device, backend):
    # B = 3000: many parallel row tasks on CPU (grain ~32768 multiply-adds), many programs on a GPU;
    # on CPU the thread count does not change a bit of the result.
    c = build(dict(b=3000, d=40, k=5, weights="Bzeros", labels="int"), torch.float32, device)
    assert_matches_reference(backend, c)
    if device != "cpu":
        return
    loss, gu, gi, go = forward_backward(backend, c)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        loss1, gu1, gi1, _ = forward_backward(backend, c, go)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(loss1, loss) and torch.equal(gu1, gu) and torch.equal(gi1, gi)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16], ids=param_id)
@pytest.mark.parametrize("normed", [False, True])
def test_cpu_isa_variants_match_reference(monkeypatch, dtype, normed):
    # FUSEDLOSS_CPU_ISA lowers the vector loop the C++ kernel picks (asking above the CPU gives the
    # CPU's). D = 531: vector bodies, scalar tails and (dots in blocks of 256) three blocks.
    c = build(dict(b=7, d=531, k=3, weights="B", normed=normed), dtype)
    for isa in ("base", "avx2", "avx512", None):
        if isa is None:
            monkeypatch.delenv("FUSEDLOSS_CPU_ISA", raising=False)
        else:
            monkeypatch.setenv("FUSEDLOSS_CPU_ISA", isa)
        assert_matches_reference("cpu", c)


@pytest.mark.parametrize("device, backend", ALL)
def test_more_shifts_than_rows(device, backend):
    # explicit shifts may repeat beyond B - 1 (num_negative_samples < B only bounds the draw): K = 1023
    # at B = 5, the largest K of the Triton kernel (BLOCK_K = 1024 slots); K = 1024 is refused there
    # with a ValueError naming num_negative_samples, and computed by the other backends.
    b = 5
    c = build(dict(b=b, d=6, k=4, weights="B"), torch.float64, device)
    for k in (1023, 1024):
        shifts = torch.randint(1, b, (k,), device=device)
        if backend == "triton" and k == 1024:
            with pytest.raises(ValueError, match="num_negative_samples"):
                call(backend, c.user, c.item, c, shifts=shifts)
            continue
        cc = Case(c.user, c.item, c.labels, c.weights, shifts, **c.kw)
        assert_matches_reference(backend, cc)


@pytest.mark.parametrize("device, backend", ALL)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_all_rows_dropped(device, backend, reduction):
    # every label <= 0: the loss is 0 (no NaN from 0/0) and both gradients are exactly 0
    c = build(dict(b=9, d=6, k=3, labels="drop_all", weights="B", reduction=reduction), device=device)
    loss, gu, gi, _ = forward_backward(backend, c)
    assert float(loss) == 0.0
    assert torch.equal(gu, torch.zeros_like(gu)) and torch.equal(gi, torch.zeros_like(gi))


@pytest.mark.parametrize("device, backend", ALL)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_sbnz_with_every_kept_weight_zero(device, backend, reduction):
    # kept rows all with weight 0: SBNZ's denominator is 0 -> loss 0; mean divides by the kept count
    # (also 0 in the numerator); gradients 0.
    c = build(dict(b=9, d=6, k=3, weights="B", reduction=reduction), device=device)
    c.weights = torch.where(c.kept, 0.0, c.weights)
    loss, gu, gi, _ = forward_backward(backend, c)
    assert float(loss) == 0.0
    assert not gu.any() and not gi.any()


@pytest.mark.parametrize("device, backend", ALL)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_empty(device, backend, reduction):
    # B = 0: loss 0 for every reduction, gradients [0, D]; also D = 0 (every cosine is 0).
    for dtype in (torch.float32, torch.float64):
        u = torch.randn(0, 5, dtype=dtype, device=device)
        c = Case(u, torch.randn(0, 5, dtype=dtype, device=device), torch.zeros(0, device=device),
                 torch.rand(0, dtype=dtype, device=device), torch.tensor([1, 2], device=device),
                 reduction=reduction, gamma=5.0, margin=0.1, t=1.3)
        loss, gu, gi, _ = forward_backward(backend, c)
        assert loss.shape == () and float(loss) == 0.0 and loss.dtype == dtype
        assert gu.shape == (0, 5) and gi.shape == (0, 5)
        # num_negative_samples without shifts at B = 0
        loss = fusedloss.sv_softmax_loss(u, u, torch.zeros(0, device=device), 3, reduction=reduction,
                                         backend=backend)
        assert float(loss) == 0.0
    c = build(dict(b=6, d=0, k=2, reduction=reduction, weights="B"), device=device)
    assert_matches_reference(backend, c)


@pytest.mark.parametrize("device, backend", ALL)
@pytest.mark.parametrize("layout", ["transposed", "sliced"])
def test_non_contiguous(device, backend, layout):
    b, d = 13, 10
    c = build(dict(b=b, d=d, k=4, weights="B", labels="int"), torch.float64, device)
    if layout == "transposed":
        user = c.user.t().contiguous().t()
        item = c.item.t().contiguous().t()
        labels = torch.stack([c.labels, c.labels], 1)[:, 1]
        weights = torch.stack([c.weights, c.weights], 1)[:, 0]
    else:
        user = torch.zeros(2 * b, d + 3, dtype=torch.float64, device=device)[::2, 1:d + 1]
        item = torch.zeros(b, 2 * d, dtype=torch.float64, device=device)[:, ::2]
        user.copy_(c.user)
        item.copy_(c.item)
        labels = c.labels.repeat_interleave(3)[1::3]
        weights = c.weights.repeat_interleave(2)[::2]
    assert not user.is_contiguous() and not item.is_contiguous()
    assert not labels.is_contiguous() and not weights.is_contiguous()
    shifts = c.shifts.repeat_interleave(2)[::2]
    assert not shifts.is_contiguous()
    nc = Case(user, item, labels, weights, shifts, **c.kw)
    loss, gu, gi = assert_matches_reference(backend, nc)
    ref_loss, ref_gu, ref_gi, _ = forward_backward(None, c)
    torch.testing.assert_close(loss, ref_loss, rtol=RTOL64, atol=ATOL64)


@pytest.mark.parametrize("device, backend", FUSED)
def test_canaries(device, backend):
    # every tensor argument inside a NaN-filled (int: 7-filled) buffer at an odd offset: an
    # out-of-bounds read turns the result NaN (reported as 0 loss: checked against the reference),
    # a stray write changes a margin, an input written to fails the check.
    c = build(dict(b=13, d=9, k=4, weights="B"), torch.float32, device)
    views = [canary(t) for t in (c.user, c.item, c.labels, c.weights, c.shifts)]
    vc = Case(*[v for v, _ in views], **c.kw)
    loss, gu, gi, _ = forward_backward(backend, vc)
    assert torch.isfinite(gu).all() and torch.isfinite(gi).all() and loss != 0
    for _, check in views:
        check()
    assert_matches_reference(backend, c)


@pytest.mark.parametrize("device, backend", ALL)
def test_only_one_embedding_requires_grad(device, backend):
    c = build(dict(b=13, d=8, k=3, weights="B"), torch.float64, device)
    _, ref_gu, ref_gi, go = forward_backward(None, c)
    for which in ("user", "item"):
        u = c.user.clone().requires_grad_(which == "user")
        v = c.item.clone().requires_grad_(which == "item")
        loss = call(backend, u, v, c)
        (g,) = torch.autograd.grad(loss, (u if which == "user" else v,), go)
        torch.testing.assert_close(g, ref_gu if which == "user" else ref_gi, rtol=RTOL64, atol=ATOL64)


@pytest.mark.parametrize("device, backend", ALL)
def test_tied_embeddings(device, backend):
    # user_emb and item_emb the same tensor (a shared tower): the two gradients add up
    c = build(dict(b=13, d=8, k=3, weights="B"), torch.float64, device)
    x = c.user.clone().requires_grad_()
    (g,) = torch.autograd.grad(call(backend, x, x, c), x)
    xr = c.user.clone().requires_grad_()
    (gr,) = torch.autograd.grad(call(None, xr, xr, c), xr)
    torch.testing.assert_close(g, gr, rtol=RTOL64, atol=ATOL64)


@pytest.mark.parametrize("device, backend", ALL)
def test_embed_normed_means_no_normalisation(device, backend):
    # embed_normed=False on raw embeddings == embed_normed=True on their l2n; and embed_normed=True
    # on raw embeddings uses the raw dot products (the loss changes with the embeddings' scale)
    c = build(dict(b=13, d=8, k=3, weights="B", gamma=2.0), torch.float64, device)
    raw = call(backend, c.user, c.item, c)
    normed = call(backend, l2n64(c.user), l2n64(c.item), c, embed_normed=True)
    torch.testing.assert_close(raw, normed, rtol=1e-12, atol=1e-14)
    scaled = call(backend, 0.5 * c.user, 0.5 * c.item, c, embed_normed=True)
    torch.testing.assert_close(scaled, call(None, 0.5 * c.user, 0.5 * c.item, c, embed_normed=True),
                               rtol=RTOL64, atol=ATOL64)
    assert (scaled - normed).abs() > 1e-3


@pytest.mark.parametrize("device, backend", FUSED)
def test_no_grad_path(device, backend):
    # no embedding requires grad (or under no_grad): the kernel skips the gradients; same loss
    c = build(dict(b=13, d=8, k=3, weights="B"), torch.float32, device)
    with_grad, _, _, _ = forward_backward(backend, c)
    plain = call(backend, c.user, c.item, c)
    assert not plain.requires_grad
    with torch.no_grad():
        nograd = call(backend, c.user.clone().requires_grad_(), c.item.clone().requires_grad_(), c)
    assert not nograd.requires_grad
    torch.testing.assert_close(plain, with_grad, rtol=0, atol=0)
    torch.testing.assert_close(nograd, with_grad, rtol=0, atol=0)


@pytest.mark.parametrize("device, backend", FUSED)
def test_double_backward_is_right_or_raises(device, backend):
    c = build(dict(b=5, d=4, k=2, reduction="sum"), torch.float64, device)
    u, v = c.user.clone().requires_grad_(), c.item.clone().requires_grad_()
    try:
        gu, gi = torch.autograd.grad(call(backend, u, v, c), (u, v), create_graph=True)
        (h,) = torch.autograd.grad(gu.pow(2).sum() + gi.pow(2).sum(), u)
    except RuntimeError:
        return  # refusing double backward is acceptable; silently wrong is not
    ur, vr = c.user.clone().requires_grad_(), c.item.clone().requires_grad_()
    gur, gir = torch.autograd.grad(call(None, ur, vr, c), (ur, vr), create_graph=True)
    (hr,) = torch.autograd.grad(gur.pow(2).sum() + gir.pow(2).sum(), ur)
    torch.testing.assert_close(h, hr, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("device, backend", ALL)
def test_gradcheck(device, backend):
    small = interpreted(device, backend)
    cfg = dict(b=4, d=3, k=2, weights="B") if small else dict(b=6, d=4, k=3, weights="Bzeros", shifts="dups")
    c = build(cfg, torch.float64, device)
    assert c.gaps()[c.kept].abs().min() > 1e-4  # 1e-6 steps never flip a negative's hardness
    u, v = c.user.clone().requires_grad_(), c.item.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: call(backend, a, b, c), (u, v), eps=1e-6, atol=1e-7,
                                    fast_mode=small)


# ----------------------------------------------------------------------------------------------
# shifts drawn by the function (shifts=None)
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("device, backend", ALL)
def test_drawn_shifts_follow_the_generator(device, backend):
    c = build(dict(b=13, d=8, k=4, weights="B"), torch.float64, device)

    def drawn(seed, k=4):
        g = torch.Generator(device=device).manual_seed(seed)
        torch.manual_seed(seed + 1000)  # the global RNG must not matter
        return fusedloss.sv_softmax_loss(c.user, c.item, c.labels, k, False, c.weights, 5.0, 0.1, 1.3,
                                         generator=g, backend=backend)

    a, b = drawn(3), drawn(3)
    assert torch.equal(a, b)
    # the documented draw: torch.randint(1, B, (K,), generator) -> the reference with those shifts
    shifts = torch.randint(1, 13, (4,), generator=torch.Generator(device=device).manual_seed(3),
                           device=device)
    torch.testing.assert_close(a, call(None, c.user, c.item, c, shifts=shifts), rtol=RTOL64, atol=ATOL64)
    losses = {round(float(drawn(s)), 12) for s in range(8)}
    assert len(losses) >= 6
    # without a generator: the global RNG
    torch.manual_seed(5)
    x = fusedloss.sv_softmax_loss(c.user, c.item, c.labels, 4, backend=backend)
    torch.manual_seed(5)
    y = fusedloss.sv_softmax_loss(c.user, c.item, c.labels, 4, backend=backend)
    assert torch.equal(x, y)


@pytest.mark.parametrize("device, backend", ALL)
def test_drawn_shifts_are_in_range(device, backend):
    # Whatever the draw, a shift is in [1, B - 1]: a shift 0 (or B) would make the positive its own
    # negative. B = 2: every draw is shift 1. B = 3, K = 1: each loss is that of shift 1 or of
    # shift 2, and both occur.
    c2 = build(dict(b=2, d=5, k=1, labels="keep_all"), torch.float64, device)
    want2 = call(None, c2.user, c2.item, c2, shifts=torch.ones(1, dtype=torch.long, device=device))
    shift0 = call(None, c2.user, c2.item, c2, shifts=torch.zeros(1, dtype=torch.long, device=device))
    assert abs(float(want2) - float(shift0)) > 1e-6  # a shift 0 would be noticed
    for _ in range(5):
        got = fusedloss.sv_softmax_loss(c2.user, c2.item, c2.labels, 1, gamma=5.0, margin=0.1, t=1.3,
                                        backend=backend)
        torch.testing.assert_close(got, want2, rtol=RTOL64, atol=ATOL64)
    c3 = build(dict(b=3, d=5, k=1, labels="keep_all"), torch.float64, device)
    options = [float(call(None, c3.user, c3.item, c3, shifts=torch.tensor([r], device=device)))
               for r in (1, 2)]
    assert abs(options[0] - options[1]) > 1e-6
    seen = set()
    n = 12 if interpreted(device, backend) else 40
    for _ in range(n):
        got = float(fusedloss.sv_softmax_loss(c3.user, c3.item, c3.labels, 1, gamma=5.0, margin=0.1,
                                              t=1.3, backend=backend))
        match = [i for i, o in enumerate(options) if math.isclose(got, o, rel_tol=1e-10)]
        assert match, f"loss {got} is neither shift 1's nor shift 2's {options}"
        seen.add(match[0])
    assert seen == {0, 1}


def test_module_draws_from_global_rng():
    c = build(dict(b=13, d=8, k=4), torch.float64)
    m = fl_nn.SVSoftmaxLoss(4, gamma=5.0, margin=0.1, t=1.3)
    torch.manual_seed(11)
    a = m(c.user, c.item, c.labels)
    torch.manual_seed(11)
    b = fusedloss.sv_softmax_loss(c.user, c.item, c.labels, 4, gamma=5.0, margin=0.1, t=1.3)
    assert torch.equal(a, b)


# ----------------------------------------------------------------------------------------------
# NaN (EasyRec replaces a NaN loss by 0)
# ----------------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:All-NaN slice encountered")  # the Triton interpreter's numpy max
@pytest.mark.parametrize("device, backend", ALL)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=param_id)
def test_nan_in_a_kept_row_gives_zero(device, backend, dtype):
    c = build(dict(b=9, d=6, k=3, weights="B"), dtype, device)
    assert bool(c.kept[0])
    for which in ("user", "item"):
        for reduction in REDUCTIONS:
            u, v = c.user.clone(), c.item.clone()
            (u if which == "user" else v)[0, 2] = float("nan")
            loss = call(backend, u, v, c, reduction=reduction)
            assert loss.dtype == dtype and float(loss) == 0.0, (which, reduction, float(loss))


@pytest.mark.filterwarnings("ignore:All-NaN slice encountered")
@pytest.mark.parametrize("device, backend", ALL)
def test_nan_in_a_zero_weight_kept_row_is_ignored(device, backend):
    # A kept row of weight 0 contributes exactly 0, even when its loss is NaN. (A deliberate
    # departure from EasyRec, where tf.losses' NaN * 0 makes the whole loss NaN and then 0.) u_0 is
    # read by row 0 only, so the loss is the one with a finite u_0.
    c = build(dict(b=9, d=6, k=3, weights="B"), torch.float64, device)
    w = c.weights.clone()
    w[0] = 0.0
    assert bool(c.kept[0])
    u = c.user.clone()
    u[0, 2] = float("nan")
    for reduction in REDUCTIONS:
        want = call(None, c.user, c.item, c, weights=w, reduction=reduction)
        assert float(want) != 0.0
        torch.testing.assert_close(call(None, u, c.item, c, weights=w, reduction=reduction), want)
        torch.testing.assert_close(call(backend, u, c.item, c, weights=w, reduction=reduction), want)


@pytest.mark.filterwarnings("ignore:All-NaN slice encountered")
@pytest.mark.parametrize("device, backend", ALL)
def test_nan_in_a_dropped_user_row_is_ignored(device, backend):
    # EasyRec boolean_masks the user rows before any arithmetic: a NaN in a dropped row's user
    # embedding never reaches the loss (its item row is still a negative of other rows, so only the
    # user side is checked).
    c = build(dict(b=9, d=6, k=3, weights="B"), torch.float64, device)
    assert not bool(c.kept[1])
    u = c.user.clone()
    u[1, 3] = float("nan")
    want = call(None, c.user, c.item, c)
    assert want != 0
    for reduction in REDUCTIONS:
        torch.testing.assert_close(call(backend, u, c.item, c, reduction=reduction),
                                   call(None, c.user, c.item, c, reduction=reduction),
                                   rtol=RTOL64, atol=ATOL64)


# ----------------------------------------------------------------------------------------------
# module, auto backend, weights requiring grad
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("device, backend", ALL + [(d, "auto") for d in DEVICES])
def test_module_matches_function(device, backend):
    c = build(dict(b=13, d=8, k=4, weights="B"), torch.float64, device)
    for kw in (dict(), dict(embed_normed=True, gamma=5.0, margin=0.1, t=1.3, reduction="mean"),
               dict(gamma=2.0, t=1.5, reduction="sum")):
        m = fl_nn.SVSoftmaxLoss(4, backend=backend, **kw)
        for w in (1.0, c.weights, None):
            got = m(c.user, c.item, c.labels, w, c.shifts)
            want = fusedloss.sv_softmax_loss(c.user, c.item, c.labels, 4, weights=w, shifts=c.shifts,
                                             backend="reference", **kw)
            torch.testing.assert_close(got, want, rtol=RTOL64, atol=ATOL64)
    # the module's defaults are the function's
    default = fl_nn.SVSoftmaxLoss(4, backend=backend)(c.user, c.item, c.labels, shifts=c.shifts)
    torch.testing.assert_close(default, fusedloss.sv_softmax_loss(c.user, c.item, c.labels, shifts=c.shifts,
                                                                  backend=backend))
    with pytest.raises(ValueError, match="reduction"):
        fl_nn.SVSoftmaxLoss(4, reduction="none", backend=backend)(c.user, c.item, c.labels, shifts=c.shifts)


@pytest.mark.parametrize("device, backend", ALL + [(d, "auto") for d in DEVICES])
def test_backend_runs_its_op(device, backend):
    c = build(dict(b=7, d=5, k=2, weights="B"), torch.float32, device)
    u, v = c.user.clone().requires_grad_(), c.item.clone().requires_grad_()
    ops = [
        set(fusedloss_ops_called(lambda: call(backend, u, v, c))),
        set(fusedloss_ops_called(lambda: call(backend, c.user, c.item, c))),
        set(fusedloss_ops_called(lambda: fl_nn.SVSoftmaxLoss(2, backend=backend)(u, v, c.labels))),
    ]
    if backend == "reference":
        assert all(o == set() for o in ops)
    else:  # auto: the C++ backend of the device
        name = "fusedloss::sv_softmax_fwd" + ("_triton" if backend == "triton" else "")
        assert all(o == {name} for o in ops), ops


@pytest.mark.parametrize("device", DEVICES)
def test_weights_requiring_grad_fall_back(device):
    # fused kernels differentiate the embeddings only: an explicit fused backend refuses a weights
    # tensor that requires grad, "auto" takes the reference and returns its gradient too
    c = build(dict(b=13, d=8, k=3, weights="B"), torch.float64, device)
    w = c.weights.clone().requires_grad_()
    for backend in fused_backends_for(device):
        with pytest.raises(ValueError, match="requires grad"):
            call(backend, c.user, c.item, c, weights=w)
    u, v = c.user.clone().requires_grad_(), c.item.clone().requires_grad_()
    with OpRecorder() as rec:
        loss = call("auto", u, v, c, weights=w)
    assert [o for o in rec.ops if o.startswith("fusedloss::")] == []
    gu, gi, gw = torch.autograd.grad(loss, (u, v, w))
    ur, vr, wr = (t.detach().clone().requires_grad_() for t in (c.user, c.item, c.weights))
    want = call(None, ur, vr, c, weights=wr)
    rgu, rgi, rgw = torch.autograd.grad(want, (ur, vr, wr))
    torch.testing.assert_close(loss, want, rtol=1e-12, atol=0)
    for a, b in ((gu, rgu), (gi, rgi), (gw, rgw)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=0)
    # d loss / d w_i = loss_i / #{kept, w != 0} on kept rows, 0 on dropped ones
    assert gw[c.kept].abs().min() > 0 and not gw[~c.kept].any()
    # without grad mode the fused backends take it (nothing to differentiate)
    with torch.no_grad():
        for backend in fused_backends_for(device):
            torch.testing.assert_close(call(backend, c.user, c.item, c, weights=w), want.detach(),
                                       rtol=RTOL64, atol=ATOL64)


def test_auto_picks_cpu_on_cpu_tensors():
    c = build(dict(b=7, d=5, k=2), torch.float32)
    u = c.user.clone().requires_grad_()
    assert fusedloss_ops_called(lambda: call("auto", u, c.item, c)) == ["fusedloss::sv_softmax_fwd"]


# ----------------------------------------------------------------------------------------------
# bad input: clear errors naming the argument, before any kernel runs
# ----------------------------------------------------------------------------------------------


def _bad_cases():
    b, d = 6, 4
    u, v = torch.randn(b, d), torch.randn(b, d)
    lab = torch.ones(b)
    sh = torch.tensor([1, 3])
    f = fusedloss.sv_softmax_loss

    def s(**kw):
        kw.setdefault("shifts", sh)
        args = dict(user_emb=kw.pop("user", u), item_emb=kw.pop("item", v), labels=kw.pop("labels", lab))
        return lambda: f(**args, **kw)

    return [
        ("user-1d", s(user=u[0], item=v[0]), ValueError, "user_emb"),
        ("user-3d", s(user=u[None], item=v[None]), ValueError, "user_emb"),
        ("user-int", s(user=u.long(), item=v.long()), TypeError, "user_emb"),
        ("user-bool", s(user=u > 0, item=v > 0), TypeError, "user_emb"),
        ("user-not-tensor", s(user=u.tolist()), TypeError, "user_emb"),
        ("item-not-tensor", s(item=v.tolist()), TypeError, "item_emb"),
        ("item-1d", s(item=v[0]), ValueError, "item_emb"),
        ("item-int", s(item=v.long()), TypeError, "item_emb"),
        ("item-shape-d", s(item=v[:, :3]), ValueError, "item_emb"),
        ("item-shape-b", s(item=v[:5]), ValueError, "item_emb"),
        ("item-dtype", s(item=v.double()), TypeError, "item_emb"),
        ("item-dtype-half", s(item=v.half()), TypeError, "item_emb"),
        ("labels-not-tensor", s(labels=[1.0] * b), TypeError, "labels"),
        ("labels-complex", s(labels=lab.to(torch.complex64)), TypeError, "labels"),
        ("labels-short", s(labels=lab[:5]), ValueError, "labels"),
        ("labels-b2", s(labels=torch.ones(b, 2)), ValueError, "labels"),
        ("labels-1b", s(labels=torch.ones(1, b)), ValueError, "labels"),
        ("labels-0d", s(labels=torch.tensor(1.0)), ValueError, "labels"),
        ("weights-short", s(weights=torch.ones(b - 1)), ValueError, "weights"),
        ("weights-long", s(weights=torch.ones(b + 1)), ValueError, "weights"),
        ("weights-b2", s(weights=torch.ones(b, 2)), ValueError, "weights"),
        ("weights-reshaped", s(weights=torch.ones(2, 3)), ValueError, "weights"),
        ("weights-1b", s(weights=torch.ones(1, b)), ValueError, "weights"),
        ("weights-b11", s(weights=torch.ones(b, 1, 1)), ValueError, "weights"),
        ("weights-int", s(weights=torch.ones(b, dtype=torch.long)), TypeError, "weights"),
        ("weights-bool", s(weights=True), TypeError, "weights"),
        ("weights-str", s(weights="1"), TypeError, "weights"),
        ("weights-list", s(weights=[1.0] * b), TypeError, "weights"),
        ("weights-nan", s(weights=float("nan")), ValueError, "weights"),
        ("weights-inf", s(weights=float("inf")), ValueError, "weights"),
        ("b1", s(user=u[:1], item=v[:1], labels=lab[:1], shifts=torch.tensor([1])), ValueError, "B >= 2"),
        ("b1-no-shifts", s(user=u[:1], item=v[:1], labels=lab[:1], shifts=None, num_negative_samples=1),
         ValueError, "B >= 2"),
        ("k-missing", s(shifts=None), ValueError, "num_negative_samples"),
        ("k-0", s(shifts=None, num_negative_samples=0), ValueError, "num_negative_samples"),
        ("k-neg", s(shifts=None, num_negative_samples=-2), ValueError, "num_negative_samples"),
        ("k-eq-b", s(shifts=None, num_negative_samples=b), ValueError, "num_negative_samples"),
        ("k-gt-b", s(shifts=None, num_negative_samples=b + 3), ValueError, "num_negative_samples"),
        ("k-float", s(shifts=None, num_negative_samples=2.0), TypeError, "num_negative_samples"),
        ("k-bool", s(shifts=None, num_negative_samples=True), TypeError, "num_negative_samples"),
        ("k-tensor", s(shifts=None, num_negative_samples=torch.tensor(2)), TypeError, "num_negative_samples"),
        ("k-0-with-shifts", s(num_negative_samples=0), ValueError, "num_negative_samples"),
        ("k-mismatch-shifts", s(num_negative_samples=3), ValueError, "shifts"),
        ("shifts-0", s(shifts=torch.tensor([0, 2])), ValueError, "shifts"),
        ("shifts-b", s(shifts=torch.tensor([1, b])), ValueError, "shifts"),
        ("shifts-neg", s(shifts=torch.tensor([-1, 2])), ValueError, "shifts"),
        ("shifts-float", s(shifts=torch.tensor([1.0, 2.0])), TypeError, "shifts"),
        ("shifts-bool", s(shifts=torch.tensor([True, True])), TypeError, "shifts"),
        ("shifts-list", s(shifts=[1, 2]), TypeError, "shifts"),
        ("shifts-int", s(shifts=2), TypeError, "shifts"),
        ("shifts-2d", s(shifts=torch.tensor([[1, 2]])), ValueError, "shifts"),
        ("shifts-0d", s(shifts=torch.tensor(1)), ValueError, "shifts"),
        ("shifts-empty", s(shifts=torch.zeros(0, dtype=torch.long)), ValueError, "shifts"),
        ("shifts-meta", s(shifts=sh.to("meta")), ValueError, "shifts"),
        ("gamma-0", s(gamma=0.0), ValueError, "gamma"),
        ("gamma-neg", s(gamma=-1.0), ValueError, "gamma"),
        ("gamma-nan", s(gamma=float("nan")), ValueError, "gamma"),
        ("gamma-inf", s(gamma=float("inf")), ValueError, "gamma"),
        ("gamma-str", s(gamma="1"), TypeError, "gamma"),
        ("gamma-tensor", s(gamma=torch.tensor(1.0)), TypeError, "gamma"),
        ("margin-nan", s(margin=float("nan")), ValueError, "margin"),
        ("margin-inf", s(margin=float("-inf")), ValueError, "margin"),
        ("margin-none", s(margin=None), TypeError, "margin"),
        ("t-inf", s(t=float("inf")), ValueError, "^t must"),
        ("t-nan", s(t=float("nan")), ValueError, "^t must"),
        ("t-str", s(t="2"), TypeError, "^t must"),
        ("embed-normed-int", s(embed_normed=1), TypeError, "embed_normed"),
        ("embed-normed-str", s(embed_normed="yes"), TypeError, "embed_normed"),
        ("reduction-none", s(reduction="none"), ValueError, "reduction"),
        ("reduction-avg", s(reduction="avg"), ValueError, "reduction"),
        ("reduction-None", s(reduction=None), ValueError, "reduction"),
        ("backend", s(backend="fast"), ValueError, "backend"),
        ("backend-cuda", s(backend="cuda"), ValueError, "cuda"),
        ("labels-meta", s(labels=lab.to("meta")), ValueError, "labels.*device"),
        ("weights-meta", s(weights=torch.ones(b, device="meta")), ValueError, "weights.*device"),
        ("module-k", lambda: fl_nn.SVSoftmaxLoss(0)(u, v, lab), ValueError, "num_negative_samples"),
        ("module-gamma", lambda: fl_nn.SVSoftmaxLoss(2, gamma=0.0)(u, v, lab), ValueError, "gamma"),
    ]


@pytest.mark.parametrize("case", _bad_cases(), ids=lambda c: c[0])
def test_bad_input(case):
    _, thunk, exc, match = case
    with pytest.raises(exc, match=match):
        thunk()


@pytest.mark.parametrize("device, backend", ALL)
def test_bad_input_on_every_backend(device, backend):
    # the checks run before any backend: the kernels never see a shift outside [1, B - 1]
    u = torch.randn(6, 4, device=device)
    lab = torch.ones(6, device=device)
    for bad in ([0, 1], [6, 1], [-5, 1], [1, 2**40]):
        with pytest.raises(ValueError, match="shifts"):
            fusedloss.sv_softmax_loss(u, u, lab, shifts=torch.tensor(bad, device=device), backend=backend)
    with pytest.raises(ValueError, match="num_negative_samples"):
        fusedloss.sv_softmax_loss(u, u, lab, 6, backend=backend)


@NEEDS_CUDA
def test_other_device_is_refused():
    u = torch.randn(6, 4, device="cuda")
    lab = torch.ones(6, device="cuda")
    sh = torch.tensor([1, 2], device="cuda")
    f = fusedloss.sv_softmax_loss
    with pytest.raises(ValueError, match="item_emb.*device"):
        f(u, u.cpu(), lab, shifts=sh)
    with pytest.raises(ValueError, match="labels.*device"):
        f(u, u, lab.cpu(), shifts=sh)
    with pytest.raises(ValueError, match="weights.*device"):
        f(u, u, lab, weights=torch.ones(6), shifts=sh)
    with pytest.raises(ValueError, match="shifts.*device"):
        f(u, u, lab, shifts=sh.cpu())
    with pytest.raises(ValueError, match="cpu"):
        f(u, u, lab, shifts=sh, backend="cpu")


# ----------------------------------------------------------------------------------------------
# raw ops: documented outputs, opcheck
# ----------------------------------------------------------------------------------------------

OP_OF_BACKEND = {"cpu": "sv_softmax_fwd", "cuda": "sv_softmax_fwd", "triton": "sv_softmax_fwd_triton"}
RED = {"sum": 1, "mean": 2, SBNZ: 3}
OPCHECK_UTILS = ("test_schema", "test_autograd_registration", "test_faketensor", "test_aot_dispatch_dynamic")


def _op(backend):
    return getattr(torch.ops.fusedloss, OP_OF_BACKEND[backend]).default


def test_sv_softmax_op_has_a_cpu_kernel():
    # The CI always builds the C++ extension: a missing CPU kernel is a failure, never a skip.
    assert torch._C._dispatch_has_kernel_for_dispatch_key("fusedloss::sv_softmax_fwd", "CPU")


def raw_args(device, dtype, *, b=7, d=5, k=3, weight="B", normalize=True, reduction=SBNZ, labels="float",
             permuted=False, shifts=None, requires_grad=False, compute_grad=True, margin=0.1, gamma=5.0,
             t=1.3):
    """The op's arguments as run_sv_softmax prepares them: user, item [B, D] in ``dtype`` (``permuted``:
    transposed views), kept bool [B], weight None / [1] / [B] in the accumulation dtype, shifts int64."""
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    u, v = make_embeddings(b, d, normed=not normalize)
    if permuted:
        u, v = u.t().contiguous().t(), v.t().contiguous().t()
    u = u.to(device, dtype).requires_grad_(requires_grad)
    v = v.to(device, dtype).requires_grad_(requires_grad)
    kept = (make_labels(b, labels) > 0).to(device)
    if weight is None:
        w = None
    elif weight == "one":
        w = (torch.rand(1, dtype=acc) + 0.5).to(device)
    else:
        w = make_weights("Bzeros", b, kept.cpu(), acc).to(device)
    sh = (make_shifts(b, k) if shifts is None else torch.as_tensor(shifts)).to(device, torch.int64)
    return (u, v, kept, w, sh, normalize, margin, gamma, t, RED[reduction], compute_grad)


_RAW_CONFIGS = [
    dict(weight="B", normalize=True, reduction=SBNZ),
    dict(weight=None, normalize=False, reduction="mean", labels="bool"),
    dict(weight="one", normalize=True, reduction="sum", permuted=True),
    dict(weight="B", normalize=True, reduction="mean", b=9, k=8, d=1),
]
_GRAD_FLAGS = ((True, True), (False, False), (False, True))


def _opcheck_cases():
    out = []
    for device, backend in FUSED:
        for cfg in _RAW_CONFIGS:
            flags = _GRAD_FLAGS if not interpreted(device, backend) else _GRAD_FLAGS[:2]
            for rg, cg in flags:
                out.append((device, backend, cfg, rg, cg))
    return out


@pytest.mark.parametrize("device, backend, cfg, requires_grad, compute_grad", _opcheck_cases(), ids=param_id)
def test_opcheck(device, backend, cfg, requires_grad, compute_grad):
    args = raw_args(device, torch.float32, **cfg, requires_grad=requires_grad, compute_grad=compute_grad)
    torch.library.opcheck(_op(backend), args)


@pytest.mark.parametrize("device, backend", FUSED)
def test_opcheck_fp64_fp16_empty_and_all_dropped(device, backend):
    op = _op(backend)
    torch.library.opcheck(op, raw_args(device, torch.float64, requires_grad=True))
    torch.library.opcheck(op, raw_args(device, torch.float16, weight="one", reduction="mean",
                                       requires_grad=True))
    torch.library.opcheck(op, raw_args(device, torch.bfloat16, requires_grad=True))
    for reduction in REDUCTIONS:
        for rg, cg in ((True, True), (False, False)):
            torch.library.opcheck(op, raw_args(device, torch.float32, b=0, k=2, shifts=[1, 2],
                                               reduction=reduction, requires_grad=rg, compute_grad=cg))
    torch.library.opcheck(op, raw_args(device, torch.float32, labels="drop_all", requires_grad=True))


@pytest.mark.parametrize("device, backend", FUSED)
def test_compute_grad_false_with_requires_grad_raises(device, backend):
    # an embedding that requires grad with no gradient computed would silently train on zeros
    for which in (0, 1):
        args = list(raw_args(device, torch.float32, compute_grad=False))
        args[which] = args[which].detach().requires_grad_()
        with pytest.raises(RuntimeError, match="compute_grad=False"):
            _op(backend)(*args)


@pytest.mark.parametrize("device, backend", FUSED)
@pytest.mark.parametrize("cfg", _RAW_CONFIGS + [dict(b=0, shifts=[1, 2]), dict(labels="drop_all")], ids=param_id)
def test_raw_op_outputs(device, backend, cfg):
    # (loss, grad_user, grad_item, scale): 0-d loss in the input's dtype; the gradients of
    # sum_i w_i loss_i (kept rows), unscaled, in the input's dtype; 0-d scale in the accumulation
    # dtype: 1 for sum, else 1 / denominator (0 when that is 0). Denominator: kept rows (mean), kept
    # rows with w != 0 (SBNZ).
    cfg = dict(cfg)
    reduction = cfg.pop("reduction", SBNZ)
    args = raw_args(device, torch.float64, **cfg, reduction=reduction)
    u, v, kept, w, sh, normalize, margin, gamma, t = args[:9]
    loss, gu, gi, scale = _op(backend)(*args)
    ur, vr = u.detach().clone().requires_grad_(), v.detach().clone().requires_grad_()
    per_sum = ref.sv_softmax_loss_reference(ur, vr, kept, sh, not normalize, 1.0 if w is None else w,
                                            gamma, margin, t, "sum")
    rgu, rgi = torch.autograd.grad(per_sum, (ur, vr))
    wfull = torch.ones(len(kept), dtype=torch.float64, device=device) if w is None else w.expand(len(kept))
    den = float(kept.sum()) if reduction == "mean" else float((kept & (wfull != 0)).sum())
    assert scale.shape == () and scale.dtype == torch.float64 and loss.dtype == torch.float64
    assert loss.shape == ()
    if reduction == "sum":
        assert float(scale) == 1.0
        torch.testing.assert_close(loss, per_sum.detach(), rtol=RTOL64, atol=ATOL64)
    else:
        assert math.isclose(float(scale), 1.0 / den if den else 0.0, rel_tol=1e-12)
        want = per_sum.detach() / den if den else torch.zeros((), dtype=torch.float64, device=device)
        torch.testing.assert_close(loss, want, rtol=RTOL64, atol=ATOL64)
    assert gu.shape == u.shape and gi.shape == v.shape and gu.dtype == gi.dtype == torch.float64
    torch.testing.assert_close(gu, rgu, rtol=RTOL64, atol=ATOL64)
    torch.testing.assert_close(gi, rgi, rtol=RTOL64, atol=ATOL64)
    _, nu, ni, _ = _op(backend)(*args[:-1], False)
    assert nu.numel() == 0 and ni.numel() == 0
    # low precision: loss and gradients in the input's dtype, scale in float32
    args16 = raw_args(device, torch.float16, **cfg, reduction=reduction)
    l16, gu16, gi16, s16 = _op(backend)(*args16)
    assert l16.dtype == gu16.dtype == gi16.dtype == torch.float16 and s16.dtype == torch.float32


@pytest.mark.parametrize("device, backend", FUSED)
def test_raw_op_takes_any_shift_mod_b(device, backend):
    # the op (not the public function) documents negative k of row i as item[(i - r_k) mod B] for any r
    b = 7
    base = raw_args(device, torch.float64, b=b, shifts=[1, 3, 6])
    odd = base[:4] + (torch.tensor([1 + b, 3 - 2 * b, -1], device=device),) + base[5:]
    for x, y in zip(_op(backend)(*base), _op(backend)(*odd)):
        torch.testing.assert_close(x, y, rtol=RTOL64, atol=ATOL64)


# ----------------------------------------------------------------------------------------------
# torch.compile(fullgraph=True)
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("device, backend", FUSED)
def test_compile_fullgraph(device, backend):
    # validation, backend choice and the fused op trace without a graph break (dynamic=True: one
    # graph for two batch sizes); forward and both gradients against the float64 reference.
    torch._dynamo.reset()

    def f(u, v, labels, shifts, w):
        return fusedloss.sv_softmax_loss(u, v, labels, None, False, w, 5.0, 0.1, 1.3, shifts=shifts,
                                         reduction=SBNZ, backend=backend)

    compiled = torch.compile(f, fullgraph=True, dynamic=True)
    for b in (16, 37):
        c = build(dict(b=b, d=12, k=4, weights="Bzeros"), torch.float32, device)
        ul, il = c.user.clone().requires_grad_(), c.item.clone().requires_grad_()
        loss = compiled(ul, il, c.labels, c.shifts, c.weights)
        go = torch.randn_like(loss)
        loss.backward(go)
        eager, egu, egi, _ = forward_backward(backend, c, go)
        ref_loss, rgu, rgi, _ = forward_backward(None, _as64(c), go.double())
        assert loss.dtype == torch.float32 and loss.shape == ()
        torch.testing.assert_close(loss.detach(), ref_loss.float(), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(ul.grad, rgu.float(), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(il.grad, rgi.float(), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(loss.detach(), eager, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("device, backend", FUSED)
def test_compile_module(device, backend):
    torch._dynamo.reset()
    m = fl_nn.SVSoftmaxLoss(3, embed_normed=True, gamma=4.0, t=1.2, reduction="mean", backend=backend)
    compiled = torch.compile(m, fullgraph=True)
    c = build(dict(b=11, d=6, k=3, normed=True, gamma=4.0, t=1.2, margin=0.0, reduction="mean"),
              torch.float32, device)
    ul, il = c.user.clone().requires_grad_(), c.item.clone().requires_grad_()
    loss = compiled(ul, il, c.labels, 1.0, c.shifts)
    loss.backward()
    ref_loss, rgu, rgi, _ = forward_backward(None, _as64(c), torch.ones((), dtype=torch.float64))
    torch.testing.assert_close(loss.detach(), ref_loss.float(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ul.grad, rgu.float(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(il.grad, rgi.float(), rtol=1e-5, atol=1e-6)
