"""Pairwise session losses: pairwise_loss, pairwise_logistic_loss, pairwise_focal_loss, pairwise_hinge_loss.

Truth (spec sections 1.1, 1.3, 1.4, 3): ``fusedloss.reference.pairwise_*`` run in float64 (B x B
matrices). That reference is itself checked here against an independent brute force, plain Python
loops over the pairs (i, j) in row-major order in float64, written from the spec text, with
gradients by autograd (``brute_force`` below), and against hand-computed values.

The large parameter crosses run on the C++ ``cpu`` backend (and on ``cuda``/``triton`` with a GPU);
the Triton interpreter (~2-3 ms per program) gets a representative subset with B <= 300, plus one
16,389-item SBNZ case for its large launch config.

Batch sizes and the code path each one hits. Both fused kernels sort the items by session
(``session_layout``, stable) and evaluate each pair once. Triton: one program per BLOCK_R = 16
sorted rows walking its sessions' columns from its first row on, in BLOCK_C = 32 tiles (32 x 64
tiles, 8 warps from 16,384 rows), column gradients added atomically; under
``torch.use_deterministic_algorithms`` each pair is evaluated from both sides instead, so every row
finishes its own gradient. Float32 SBNZ pair_wise / logistic take Triton's lean kernel instead
(16 rows x 32 columns on one warp; tiles wholly inside every row's session skip the session test). CPU: sessions cut into blocks of 256, a diagonal tile
per block (round 0), then the blocks' pairs in round-robin rounds (disjoint blocks per round, so
gradients are written without atomics), tiles grouped into chunks of ~65k padded pair evaluations
(at::parallel_for), columns padded to 16 lanes.
    B = 0         empty: no launch; SBNZ -> 0, OHEM -> NaN
    B = 1         one row in a 16-row block; [1] weight read with stride 0; no pair
    B = 2, 3      the smallest batches with a pair; hand-computed values
    B = 8..13     brute-force sized; gradcheck (8: two sessions)
    B = 17        one full Triton row block + a block of 1 (canaries)
    B = 24, 40    OHEM exact-tie cases; 29: opcheck (16 + 13 rows)
    B = 37        odd: three Triton row blocks (16 + 16 + 5); the default random case
    B = 129       nine Triton row blocks, sessions crossing block boundaries
    B = 300       one session: 19 Triton row blocks x 10 column tiles each; CPU 2 blocks (256 + 44)
    B = 1,000     one session: CPU 4 blocks (even: 3 round-robin rounds, no bye)
    B = 2,100     no sessions: CPU 9 blocks (odd: a bye per round), parallel chunks
    B = 4,300     two unsorted sessions of ~2,150 items: 9 CPU blocks each
    B = 8,000     OHEM memory check (subprocess): the histogram passes + the final pass
    B = 16,389    Triton's large launch config (513 programs of 32 rows); sessions of 1..5 items
    B = 20,000    one session, no session ids: 2e8 pairs in O(B) memory (subprocess)
    B = 262,144   ~2,600 shuffled sessions of 50..150 items, checked a few sessions at a time
OHEM runs up to 12 radix-select histogram passes (11/11/10-bit digits of the 128-bit key: the
loss's bits in two words, then the row-major position; float32 losses fill one word, so 9 passes)
plus a final pass; ``ohem_ratio == 1.0`` exactly is the single SBNZ pass.
"""

import contextlib
import math

import numpy as np
import pytest
import torch
from conftest import DEVICES, NEEDS_CUDA, backends_for, canary, fused_backends_for, lowp_bound

import fusedloss
from fusedloss import nn as fl_nn
from fusedloss.reference import pairwise as ref

KINDS = ("pair_wise", "logistic", "focal", "hinge")
FNS = {
    "pair_wise": fusedloss.pairwise_loss,
    "logistic": fusedloss.pairwise_logistic_loss,
    "focal": fusedloss.pairwise_focal_loss,
    "hinge": fusedloss.pairwise_hinge_loss,
}
REFS = {
    "pair_wise": ref.pairwise_loss_reference,
    "logistic": ref.pairwise_logistic_loss_reference,
    "focal": ref.pairwise_focal_loss_reference,
    "hinge": ref.pairwise_hinge_loss_reference,
}
LOWP = [torch.float32, torch.float16, torch.bfloat16]

# float64 tolerance against the matrix reference. The fused kernels and the brute force compute
# softplus exactly; the reference uses F.softplus, whose threshold (returns z itself for z > 20)
# is off by log1p(exp(-z)) <= 2.1e-9 absolute, i.e. <= 1e-10 relative on a pair loss and up to
# ~2e-9 relative on a gradient term (test_reference_softplus_exact_beyond_threshold pins this
# separately). 1e-8 still catches any real kernel error by orders of magnitude.
RTOL64, ATOL64 = 1e-8, 1e-11


# ----------------------------------------------------------------------------------------------
# independent brute force (spec text, loops over pairs, float64, autograd)
# ----------------------------------------------------------------------------------------------


def _val(t) -> float:
    return float(t.detach()) if isinstance(t, torch.Tensor) else float(t)


def _sig(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v)) if v >= 0 else math.exp(v) / (1.0 + math.exp(v))


def _softplus(z: torch.Tensor) -> torch.Tensor:
    """log(1 + e^z), exact in float64 for every z.

    Written as z/2 + |z|/2 + log1p(e^-|z|) rather than the spec's relu(z) + log1p(e^-|z|): the
    value is the same, but torch's relu'(0) = 0 and sign(0) = 0 would give the literal form a zero
    derivative at z == 0 (exactly tied scores), where softplus' = sigmoid(0) = 1/2. The package
    (kernels and reference) uses the true derivative there; so does this brute force.
    """
    return 0.5 * z + 0.5 * z.abs() + torch.log1p(torch.exp(-z.abs()))


def ohem_k(n: int, ratio: float) -> int:
    """k = rint(float32(N) * float32(ratio)), numpy's rint rounds half to even (spec 1.3)."""
    return int(np.rint(np.float32(n) * np.float32(ratio)))


def _weights_list(weight, b):
    if weight is None:
        return [1.0] * b
    if isinstance(weight, (int, float)):
        return [float(weight)] * b
    if weight.dim() == 0:
        return [float(weight)] * b
    return [float(v) for v in weight.double().tolist()]


def brute_pairs(kind, x, target, session_ids=None, weight=None, *, temperature=1.0, margin=None,
                hinge_margin=None, use_label_margin=None, label_is_logits=True, use_exponent=False,
                gamma=2.0, alpha=None, ohem_ratio=1.0):
    """[(i, j, weighted loss (0-d tensor), SBNZ weight v (float))] over the valid pairs, row-major.

    ``x``: float64 [B] scores (may require grad); ``target``, ``session_ids``, ``weight`` as the
    public API takes them. Defaults of margin / use_label_margin follow each loss (spec 3.1-3.4).
    """
    del ohem_ratio
    t = float(temperature)
    b = x.shape[0]
    y = [float(v) for v in target.double().tolist()]
    sid = None if session_ids is None else [int(v) for v in session_ids.tolist()]
    w = _weights_list(weight, b)
    if margin is None:
        margin = 1.0 if kind == "hinge" else 0.0
    if use_label_margin is None:
        use_label_margin = kind == "hinge"
    # label transform (spec 3.2: y <- y / T with use_label_margin; 3.4: y <- y / T with
    # label_is_logits, then y <- sigmoid(y) with use_exponent, the intended formula)
    if kind == "logistic" and use_label_margin:
        y = [v / t for v in y]
    if kind == "hinge":
        if label_is_logits:
            y = [v / t for v in y]
        if use_exponent:
            y = [_sig(v) for v in y]
    out = []
    for i in range(b):
        for j in range(b):
            if sid is not None and sid[i] != sid[j]:
                continue
            if not y[i] > y[j]:  # strict: ties and i == j never pair
                continue
            if kind == "pair_wise":  # 3.1: u = (s_i - s_j)/T - m, l = softplus(-u), v = w_i
                u = (x[i] - x[j]) / t - margin
                out.append((i, j, w[i] * _softplus(-u), w[i]))
            elif kind == "logistic":  # 3.2: s <- s/T, u = s_i - s_j - mu
                u = x[i] / t - x[j] / t
                if use_label_margin:
                    u = u - (y[i] - y[j])
                elif hinge_margin is not None:
                    u = u - hinge_margin  # a shift inside the softplus, not a hinge
                out.append((i, j, w[i] * _softplus(-u), w[i]))
            elif kind == "focal":  # 3.3: binary focal with label 1 on d = (s_i - s_j)/T
                d = (x[i] - x[j]) / t
                if hinge_margin is not None and not _val(d) < hinge_margin:
                    continue  # a filter: such pairs leave numerator and denominator
                p = torch.sigmoid(d).clamp(1e-7, 1 - 1e-7)
                v = (1 - p) ** gamma * (1.0 if alpha is None else alpha) * w[i]
                out.append((i, j, v * _softplus(-d), _val(v)))
            else:  # 3.4 hinge
                si, sj = x[i] / t, x[j] / t
                if use_exponent:
                    si, sj = torch.sigmoid(si), torch.sigmoid(sj)
                delta = ((y[i] - y[j]) if use_label_margin else margin) - (si - sj)
                if use_exponent:
                    e = torch.exp(delta.clamp(-88.0, 88.0)) - 1
                    loss = e if _val(e) > 0 else e * 0
                else:
                    loss = delta if _val(delta) > 0 else delta * 0  # TF relu'(0) = 0
                out.append((i, j, w[i] * loss, w[i]))
    return out


def brute_force(kind, x, target, session_ids=None, weight=None, **params):
    """The loss from ``brute_pairs``: SBNZ (spec 1.1) or OHEM (spec 1.3), as a 0-d float64 tensor."""
    pairs = brute_pairs(kind, x, target, session_ids, weight, **params)
    ratio = params.get("ohem_ratio", 1.0)
    zero = x.sum() * 0
    if ratio == 1.0:
        nz = sum(1 for *_, v in pairs if v != 0)
        if nz == 0:
            return zero  # safe division: 0, and a zero gradient
        return sum((p[2] for p in pairs), zero) / nz
    k = ohem_k(len(pairs), ratio)
    # the k largest weighted losses, ties to the lower row-major position (list order)
    order = sorted(range(len(pairs)), key=lambda n: (-_val(pairs[n][2]), n))[:k]
    keep = [pairs[n][2] for n in order if _val(pairs[n][2]) > 0]
    if not keep:
        return zero + float("nan")
    return sum(keep, zero) / len(keep)


def brute_selected(kind, x, target, session_ids=None, weight=None, **params):
    """The (i, j) pairs OHEM keeps (top k, then > 0), in selection order."""
    pairs = brute_pairs(kind, x, target, session_ids, weight, **params)
    k = ohem_k(len(pairs), params["ohem_ratio"])
    order = sorted(range(len(pairs)), key=lambda n: (-_val(pairs[n][2]), n))[:k]
    return [(pairs[n][0], pairs[n][1]) for n in order if _val(pairs[n][2]) > 0]


# ----------------------------------------------------------------------------------------------
# input builders and call helpers
# ----------------------------------------------------------------------------------------------


def make_scores(b, dtype=torch.float64, device="cpu", scale=2.0):
    """Fresh ``randn * scale`` scores, rounded from float64 to ``dtype``."""
    return (torch.randn(b, dtype=torch.float64) * scale).to(device=device, dtype=dtype)


def make_labels(b, kind="graded", device="cpu"):
    """graded: float64 0..3 (ties in labels); int: int64 0..3; binary: float 0/1; bool; soft:
    uniform [0, 1) float32 (graded without ties); equal: every label 2 (no pair at all).
    graded/int/binary/bool hold both extremes when b >= 2."""
    if kind == "equal":
        return torch.full((b,), 2.0, dtype=torch.float64, device=device)
    if kind == "soft":
        return torch.rand(b, dtype=torch.float64).to(device=device, dtype=torch.float32)
    hi = 2 if kind in ("binary", "bool") else 4
    y = torch.randint(0, hi, (b,))
    if b >= 2:
        y[0], y[1] = 0, hi - 1
        y = y[torch.randperm(b)]
    if kind == "int":
        return y.to(device)
    if kind == "bool":
        return y.bool().to(device)
    return y.to(device=device, dtype=torch.float64)


# arbitrary session values: negative, zero, and the int64 extremes (compared for equality only)
_ID_POOL64 = [-(2**63), 2**63 - 1, -1, 0, 7, -123456789012345, 2**40 + 3, 42]
_ID_POOL32 = [-(2**31), 2**31 - 1, -1, 0, 7, -65537, 1 << 20, 42]


def make_sessions(kind, b, device="cpu"):
    """None: no sessions (all pairs); one: a single id; size1: every item alone; random: ~b/6
    sessions of unsorted arbitrary int64 ids; int32: the same with int32 ids; sorted: contiguous."""
    if kind is None:
        return None
    if kind == "one":
        return torch.full((b,), -(2**40), dtype=torch.int64, device=device)
    if kind == "size1":
        return (torch.randperm(b) * 1000 - 500).to(device)
    if kind == "sorted":
        return torch.sort(torch.randint(0, max(1, b // 6), (b,))).values.to(device)
    pool = _ID_POOL64 if kind == "random" else _ID_POOL32
    n = max(1, min(len(pool), b // 6))
    ids = torch.tensor(pool[:n], dtype=torch.int64)[torch.randint(0, n, (b,))]
    return ids.to(device=device, dtype=torch.int64 if kind == "random" else torch.int32)


def make_weight(spec, b, dtype=torch.float64, device="cpu"):
    """None; scalar (0.7); scalar0 (0.0); tensor0d; B (positive [B]); zeros ([B], ~1/3 exact zeros);
    neg ([B], ~1/3 negative); allzero ([B] zeros)."""
    if spec is None:
        return None
    if spec == "scalar":
        return 0.7
    if spec == "scalar0":
        return 0.0
    w = (torch.rand(() if spec == "tensor0d" else (b,), dtype=torch.float64) * 1.5 + 0.25)
    if spec == "zeros":
        w = w * (torch.rand(b) > 0.33)
    elif spec == "neg":
        w = w * torch.where(torch.rand(b) > 0.33, 1.0, -1.0).double()
    elif spec == "allzero":
        w = w * 0
    return w.to(device=device, dtype=dtype)


def call(kind, x, y, sid, backend, weight=None, **params):
    return FNS[kind](x, y, sid, weight=weight, backend=backend, **params)


def call_ref(kind, x, y, sid, weight=None, **params):
    return REFS[kind](x, y, sid, weight, **params)


def _f64(v):
    return v.double() if isinstance(v, torch.Tensor) and v.is_floating_point() else v


def reference_fb(kind, x, y, sid, weight, params, go, dtype=torch.float64):
    """(loss, grad) of the matrix reference on x cast to ``dtype``; float targets and weights are
    cast to float64 for the truth and left as given for a same-dtype run."""
    xl = x.detach().to(dtype).requires_grad_()
    if dtype == torch.float64:
        y, weight = _f64(y), _f64(weight)
    loss = call_ref(kind, xl, y, sid, weight, **params)
    (g,) = torch.autograd.grad(loss, xl, go.to(device=xl.device, dtype=dtype), allow_unused=True)
    return loss.detach(), torch.zeros_like(xl) if g is None else g


def forward_backward(kind, backend, x, y, sid, weight, params, go=None):
    """(loss, grad wrt x, grad_output) of the public function on a fresh leaf copy of x."""
    xl = x.detach().clone().requires_grad_()
    loss = call(kind, xl, y, sid, backend, weight, **params)
    if go is None:
        go = torch.randn((), dtype=torch.float64).to(loss.device, loss.dtype)
    (g,) = torch.autograd.grad(loss, xl, go)
    return loss.detach(), g, go


def assert_matches_reference(kind, backend, x, y, sid, weight, params, go=None):
    """float64: RTOL64 against the float64 reference. Low precision: flash-attn's bound against the
    reference run in the same dtype (lowp_bound). Always: result dtype and shape. A NaN truth
    (OHEM without survivor) needs a NaN loss; its gradient is unspecified but backward must run."""
    loss, g, go = forward_backward(kind, backend, x, y, sid, weight, params, go)
    assert loss.dtype == x.dtype and g.dtype == x.dtype
    assert loss.shape == () and g.shape == x.shape
    truth, truth_g = reference_fb(kind, x, y, sid, weight, params, go.double())
    if truth.isnan():
        assert loss.isnan(), f"expected NaN (OHEM without survivor), got {loss}"
        return loss, g
    if x.dtype == torch.float64:
        torch.testing.assert_close(loss, truth, rtol=RTOL64, atol=ATOL64)
        torch.testing.assert_close(g, truth_g, rtol=RTOL64, atol=ATOL64)
    else:
        same, same_g = reference_fb(kind, x, y, sid, weight, params, go, dtype=x.dtype)
        lowp_bound(loss, same, truth, x.dtype, LOWP_FACTOR[x.dtype])
        lowp_bound(g, same_g, truth_g, x.dtype, LOWP_FACTOR[x.dtype])
    return loss, g


# Ulps of the largest magnitude allowed on top of twice torch's own error (lowp_bound). fp16/bf16:
# the result is one rounding of an fp32 computation. fp32: sums of up to B^2/2 pair terms in a
# different order than torch's.
LOWP_FACTOR = {torch.float32: 16.0, torch.float16: 2.0, torch.bfloat16: 2.0}


# ----------------------------------------------------------------------------------------------
# parameter crosses (spec 3.1-3.4 defaults and edges)
# ----------------------------------------------------------------------------------------------

TEMPS = (0.5, 1.0, 2.0)
PARAMS = {
    "pair_wise": [dict(temperature=t, margin=m) for t in TEMPS for m in (0.0, 0.7, -0.3)],
    "logistic": [
        dict(temperature=t, hinge_margin=h, use_label_margin=ulm, ohem_ratio=r)
        for t in TEMPS
        for h in (None, 0.5)  # a shift inside the softplus
        for ulm in (False, True)  # overrides hinge_margin
        for r in (1.0, 0.5)
    ],
    "focal": [
        dict(temperature=t, gamma=g, alpha=a, hinge_margin=h, ohem_ratio=r)
        for t in TEMPS
        for g in (0.0, 1.0, 2.0, 2.5)
        for a in (None, 0.25)
        for h in (None, 0.5)  # a filter d < h
        for r in (1.0, 0.3)
    ],
    "hinge": [
        dict(temperature=t, margin=m, use_label_margin=ulm, label_is_logits=lil, use_exponent=ue,
             ohem_ratio=r)
        for t in TEMPS
        for m in (1.0, 0.3)
        for ulm in (True, False)
        for lil in (True, False)
        for ue in (False, True)
        for r in (1.0, 0.77)
    ],
}
# The same with every parameter at its default, and the documented defaults spelled out.
DEFAULTS = {
    "pair_wise": dict(temperature=1.0, margin=0.0),
    "logistic": dict(temperature=1.0, hinge_margin=None, use_label_margin=False, ohem_ratio=1.0),
    "focal": dict(temperature=1.0, gamma=2.0, alpha=None, hinge_margin=None, ohem_ratio=1.0),
    "hinge": dict(temperature=1.0, margin=1.0, use_label_margin=True, label_is_logits=True,
                  use_exponent=False, ohem_ratio=1.0),
}
ALL_PARAMS = [(k, p) for k in KINDS for p in PARAMS[k]]


def pid(v):
    """Readable ids for parameter dicts: 't0.5-m0.7-r0.5'."""
    if isinstance(v, dict):
        short = {"temperature": "t", "margin": "m", "hinge_margin": "h", "use_label_margin": "ulm",
                 "label_is_logits": "lil", "use_exponent": "exp", "gamma": "g", "alpha": "a",
                 "ohem_ratio": "r"}
        return "-".join(f"{short.get(k, k)}{v_}" for k, v_ in v.items()) or "defaults"
    return None


def with_ohem(kind, params, ratio):
    """params with OHEM ratio (pair_wise has no OHEM in EasyRec, so it is returned unchanged)."""
    return params if kind == "pair_wise" else dict(params, ohem_ratio=ratio)


# ----------------------------------------------------------------------------------------------
# 1. the matrix reference against the brute force and hand-computed values
# ----------------------------------------------------------------------------------------------


def _check_brute_vs_reference(kind, x, y, sid, w, params, rtol=1e-12, atol=1e-13):
    xb = x.detach().clone().requires_grad_()
    xr = x.detach().clone().requires_grad_()
    lb = brute_force(kind, xb, y, sid, w, **params)
    lr = call_ref(kind, xr, y, sid, w, **params)
    assert lr.dtype == torch.float64 and lr.shape == ()
    if lb.isnan():
        assert lr.isnan(), f"reference {lr.item()} where the brute force is NaN"
        return lb
    torch.testing.assert_close(lr, lb, rtol=rtol, atol=atol)
    (gb,) = torch.autograd.grad(lb, xb, allow_unused=True)
    (gr,) = torch.autograd.grad(lr, xr, allow_unused=True)
    gb = torch.zeros_like(x) if gb is None else gb
    gr = torch.zeros_like(x) if gr is None else gr
    torch.testing.assert_close(gr, gb, rtol=rtol, atol=atol)
    return lb


@pytest.mark.parametrize("kind, params", ALL_PARAMS, ids=pid)
def test_reference_matches_brute_force(kind, params):
    # B = 12, ~2 unsorted sessions of arbitrary ids, graded labels with ties, weights with zeros.
    # scale 1 keeps every |u| below F.softplus's threshold (see RTOL64), so 1e-12 holds.
    b = 12
    x = make_scores(b, scale=1.0)
    y = make_labels(b)
    sid = make_sessions("random", b)
    w = make_weight("zeros", b)
    _check_brute_vs_reference(kind, x, y, sid, w, params)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "b, sessions, weight, labels",
    [
        (0, None, None, "graded"),  # empty: SBNZ 0, OHEM NaN
        (1, None, "B", "graded"),  # one item, no pair
        (2, None, "scalar", "binary"),  # one pair at most
        (7, "size1", "B", "graded"),  # every item alone: no pair
        (7, "one", "tensor0d", "int"),  # one explicit session == no sessions
        (9, None, "neg", "graded"),  # negative weights: negative SBNZ terms, dropped by OHEM
        (9, "int32", "allzero", "graded"),  # N_nz = 0 -> 0
        (9, "sorted", "scalar0", "bool"),  # scalar 0 -> 0
        (10, "random", None, "equal"),  # all-equal labels: no pair
        (13, "random", "zeros", "int"),
    ],
)
def test_reference_matches_brute_force_edge_inputs(kind, b, sessions, weight, labels):
    x = make_scores(b, scale=1.0)
    y = make_labels(b, labels)
    sid = make_sessions(sessions, b)
    w = make_weight(weight, b)
    for params in (DEFAULTS[kind], with_ohem(kind, DEFAULTS[kind], 0.5)):
        _check_brute_vs_reference(kind, x, y, sid, w, params)


def test_brute_force_tells_apart_plausible_misreadings():
    # The comparison above is only as good as the brute force's ability to disagree. Against a
    # vectorised formula: the pair weight is w_i (not w_j), the margin is not divided by T, and the
    # SBNZ denominator counts pairs with w_i != 0 (not all pairs, not sum of weights).
    b, t, m = 10, 2.0, 0.7
    x = make_scores(b, scale=1.0)
    y = make_labels(b)
    w = make_weight("zeros", b)
    lb = brute_force("pair_wise", x, y, None, w, temperature=t, margin=m)
    valid = y[:, None] > y[None, :]
    ds = x[:, None] - x[None, :]

    def sbnz(loss, wmat, count):
        return (wmat * loss)[valid].sum() / count

    wi, wj = w[:, None].expand(b, b), w[None, :].expand(b, b)
    sp = torch.nn.functional.softplus
    n_nz = ((wi != 0) & valid).sum()
    torch.testing.assert_close(lb, sbnz(sp(-(ds / t - m)), wi, n_nz), rtol=1e-12, atol=0)
    for wrong in (
        sbnz(sp(-(ds / t - m)), wj, ((wj != 0) & valid).sum()),  # weight of the lower item
        sbnz(sp(-((ds - m) / t)), wi, n_nz),  # margin divided by T
        sbnz(sp(-(ds / t - m)), wi, valid.sum()),  # denominator: all pairs
        sbnz(sp(-(ds / t - m)), wi, w[:, None].expand(b, b)[valid].sum()),  # denominator: sum of w
    ):
        assert not torch.isclose(lb, wrong, rtol=1e-6, atol=0), (lb, wrong)


def test_reference_softplus_exact_beyond_threshold():
    # softplus(z) for z > 20: F.softplus (threshold 20) returns z, the exact value is
    # z + log1p(exp(-z)) (2e-9 more at z = 20.1). Two items, one pair with u = -20.1 (s_i < s_j).
    x = torch.tensor([0.0, 20.1], dtype=torch.float64)
    y = torch.tensor([1.0, 0.0], dtype=torch.float64)
    exact = 20.1 + math.log1p(math.exp(-20.1))
    for kind in ("pair_wise", "logistic"):
        xb = x.clone().requires_grad_()
        lb = brute_force(kind, xb, y)
        assert lb.item() == pytest.approx(exact, rel=1e-15)
        lr = call_ref(kind, x, y, None)
        assert lr.item() == pytest.approx(exact, rel=1e-12), (
            f"{kind} reference: {lr.item()!r}, exact {exact!r}"
        )


# ----------------------------------------------------------------------------------------------
# hand-checkable values (B <= 5: one Triton program, one CPU chunk, one padded column run)
# ----------------------------------------------------------------------------------------------

L2 = math.log(2.0)


def _s(v):  # sigmoid of a Python float
    return 1.0 / (1.0 + math.exp(-v))


def _sp(v):  # softplus of a Python float
    return math.log1p(math.exp(v))


# (id, kind, scores, labels, session_ids, weight, params, loss, grad). Derivations in the comments;
# with all scores equal every pair has u = 0: softplus(0) = log 2, d/du = sigmoid(0) - 1 = -1/2.
_FOCAL_D0 = 0.25 * (L2 + 0.5)  # -d/dd of (1 - p)^2 softplus(-d) at d = 0: (1/4) log 2 + 1/8
_LM = (_s(-0.5) - 1, _s(-1.0) - 1)  # logistic label-margin T = 2: dl/du at u = -1/2, -1
_HEXP = _s(1.0) - 0.5  # hinge use_exponent: delta = sigmoid(1) - sigmoid(0) at equal scores
HAND = [
    # pairs (0,1), (0,2), (1,2): loss log 2; grad (-1/2 - 1/2)/3, (1/2 - 1/2)/3, (1/2 + 1/2)/3
    ("pair_wise-equal", "pair_wise", [0, 0, 0], [2, 1, 0], None, None, {}, L2, [-1 / 3, 0, 1 / 3]),
    ("logistic-equal", "logistic", [0, 0, 0], [2, 1, 0], None, None, {}, L2, [-1 / 3, 0, 1 / 3]),
    # (1 - 1/2)^2 log 2 per pair, all three count in the denominator
    ("focal-equal", "focal", [0, 0, 0], [2, 1, 0], None, None, {}, 0.25 * L2,
     [-2 * _FOCAL_D0 / 3, 0, 2 * _FOCAL_D0 / 3]),
    # delta = y_i - y_j: 1, 2, 1 -> 4/3; each pair -1 on s_i, +1 on s_j
    ("hinge-defaults", "hinge", [0, 0, 0], [2, 1, 0], None, None, {}, 4 / 3, [-2 / 3, 0, 2 / 3]),
    # label_is_logits: labels / 2 -> deltas 1/2, 1, 1/2 -> 2/3; grads -+1/T per pair
    ("hinge-T2", "hinge", [0, 0, 0], [2, 1, 0], None, None, dict(temperature=2.0), 2 / 3,
     [-1 / 3, 0, 1 / 3]),
    # pairs in row-major order: (1,0) delta 2, (1,2) delta 1, (2,0) delta 1; k = rint(1.5) = 2 takes
    # (1,0) and the tie (1,2) (lower position, not (2,0)): loss 3/2, grad s1 = -2/2
    ("hinge-ohem-tie", "hinge", [0, 0, 0], [0, 2, 1], None, None, dict(ohem_ratio=0.5), 1.5,
     [0.5, -1, 0.5]),
    # the same in session 9 = items 0, 2, 4 (session -3 = items 1, 3, tied labels: no pair); the
    # session sort moves them, the tie must still go to (2,4) before (4,0) in original indices
    ("hinge-ohem-tie-sessions", "hinge", [0, 0, 0, 0, 0], [0, 1, 2, 1, 1], [9, -3, 9, -3, 9], None,
     dict(ohem_ratio=0.5), 1.5, [0.5, 0, -1, 0, 0.5]),
    # k = rint(3 * 0.3) = 1: only the largest, (0,2) with delta 2
    ("hinge-ohem-k1", "hinge", [0, 0, 0], [2, 1, 0], None, None, dict(ohem_ratio=0.3), 2.0, [-1, 0, 1]),
    # pair weights w_i: (0,1) 1, (0,2) 1, (1,2) 0 -> N_nz = 2, loss 2 log 2 / 2
    ("pair_wise-weights", "pair_wise", [0, 0, 0], [2, 1, 0], None, [1.0, 0.0, 5.0], {}, L2,
     [-0.5, 0.25, 0.25]),
    # only (0,1) shares a session: u = 2
    ("pair_wise-sessions", "pair_wise", [1, -1, 5], [2, 1, 0], [7, 7, -1], None, {}, _sp(-2.0),
     [_s(2.0) - 1, 1 - _s(2.0), 0]),
    # u = (1 - 0)/2 - 0.7 = -0.2 for (0,1) and (0,2); dl/ds_0 = (sigmoid(u) - 1)/T per pair
    ("pair_wise-margin-T", "pair_wise", [1, 0, 0], [1, 0, 0], None, None,
     dict(temperature=2.0, margin=0.7), _sp(0.2),
     [(_s(-0.2) - 1) / 2, (1 - _s(-0.2)) / 4, (1 - _s(-0.2)) / 4]),
    # u = -(y_i - y_j)/2: -1/2, -1, -1/2
    ("logistic-label-margin-T2", "logistic", [0, 0, 0], [2, 1, 0], None, None,
     dict(temperature=2.0, use_label_margin=True), (2 * _sp(0.5) + _sp(1.0)) / 3,
     [(_LM[0] + _LM[1]) / 6, 0, -(_LM[0] + _LM[1]) / 6]),
    # hinge_margin is a shift: d = 0.5 = h gives u = 0, loss log 2 (not 0)
    ("logistic-hinge-shift", "logistic", [0.5, 0], [1, 0], None, None, dict(hinge_margin=0.5), L2,
     [-0.5, 0.5]),
    # hinge_margin is a filter: (0,1), (0,2) have d = 1 >= 0.5 and leave; (1,2) has d = 0
    ("focal-filter", "focal", [1, 0, 0], [2, 1, 0], None, None, dict(hinge_margin=0.5), 0.25 * L2,
     [0, -_FOCAL_D0, _FOCAL_D0]),
    # gamma 0, alpha 1/4: a softplus(-d) with v = a != 0
    ("focal-alpha-gamma0", "focal", [0, 0], [1, 0], None, None, dict(alpha=0.25, gamma=0.0), 0.25 * L2,
     [-0.125, 0.125]),
    # alpha 0: every v is 0, so N_nz = 0 and the loss is 0
    ("focal-alpha0", "focal", [0, 1], [1, 0], None, None, dict(alpha=0.0), 0.0, [0, 0]),
    # scores == labels at T = 1: every delta is exactly 0; relu'(0) = 0; all three pairs count
    ("hinge-exact-zero", "hinge", [2, 1, 0], [2, 1, 0], None, None, {}, 0.0, [0, 0, 0]),
    # margin 1 without label margin: delta = 1 - 0.25 for (0,1), (0,2)
    ("hinge-margin", "hinge", [0.25, 0, 0], [1, 0, 0], None, None, dict(use_label_margin=False), 0.75,
     [-1, 0.5, 0.5]),
    # use_exponent (intended formula): y' = sigmoid(y), s' = sigmoid(s); delta = sigmoid(1) - 1/2;
    # d/ds_0 = -exp(delta) sigmoid'(0) = -exp(delta)/4
    ("hinge-exponent", "hinge", [0, 0], [1, 0], None, None, dict(use_exponent=True),
     math.exp(_HEXP) - 1, [-math.exp(_HEXP) / 4, math.exp(_HEXP) / 4]),
    # scalar weight 0.5: v = 0.5 for both pairs: loss 0.5 log 2 (= w * mean)
    ("logistic-scalar-weight", "logistic", [0, 0, 0], [1, 0, 0], None, 0.5, {}, 0.5 * L2,
     [-0.25, 0.125, 0.125]),
]


@pytest.mark.parametrize("device, backend", [(d, b) for d in DEVICES for b in ["brute"] + backends_for(d)])
@pytest.mark.parametrize("case", HAND, ids=lambda c: c[0])
def test_hand_values(device, backend, case):
    _, kind, scores, labels, sid, w, params, loss_expected, grad_expected = case
    x = torch.tensor(scores, dtype=torch.float64, device=device, requires_grad=True)
    y = torch.tensor(labels, dtype=torch.float64, device=device)
    sid = None if sid is None else torch.tensor(sid, device=device)
    if isinstance(w, list):
        w = torch.tensor(w, dtype=torch.float64, device=device)
    if backend == "brute":
        loss = brute_force(kind, x, y, sid, w, **params)
    else:
        loss = call(kind, x, y, sid, backend, w, **params)
    (g,) = torch.autograd.grad(loss, x)
    assert loss.dtype == torch.float64
    assert loss.item() == pytest.approx(loss_expected, rel=1e-12, abs=1e-15)
    expected = torch.tensor(grad_expected, dtype=torch.float64, device=device)
    torch.testing.assert_close(g, expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("device, backend", [(d, b) for d in DEVICES for b in ["brute"] + backends_for(d)])
@pytest.mark.parametrize("kind", KINDS)
def test_hand_no_pair(device, backend, kind):
    # No valid pair (empty batch, one item, all-equal labels, every item its own session,
    # hinge with every loss exactly 0): SBNZ -> 0 with a zero gradient, OHEM -> NaN (spec 1.3, 3).
    cases = [
        ([], [], None),
        ([0.3], [1], None),
        ([0.3, -1.0, 2.0], [1, 1, 1], None),
        ([0.3, -1.0, 2.0], [2, 1, 0], [4, 5, 6]),
    ]
    for scores, labels, sid in cases:
        x = torch.tensor(scores, dtype=torch.float64, device=device, requires_grad=True)
        y = torch.tensor(labels, dtype=torch.float64, device=device)
        sid = None if sid is None else torch.tensor(sid, device=device)
        for ratio in (1.0, 0.5):
            params = with_ohem(kind, {}, ratio)
            f = brute_force if backend == "brute" else (lambda *a, **k: call(*a[:4], backend, **k))
            loss = f(kind, x, y, sid, **params)
            (g,) = torch.autograd.grad(loss, x)  # backward runs on the NaN loss too
            if params.get("ohem_ratio", 1.0) != 1.0:
                assert loss.isnan(), (scores, labels, sid, loss)
            else:
                assert loss.item() == 0.0 and not g.any(), (scores, labels, sid, loss, g)
    if kind == "hinge":
        # every delta exactly 0: all pairs count (0 by SBNZ), none survives OHEM (NaN)
        x = torch.tensor([2.0, 1.0, 0.0], dtype=torch.float64, device=device)
        y = x.clone()
        f = brute_force if backend == "brute" else (lambda *a, **k: call(*a[:4], backend, **k))
        assert f(kind, x, y, None).item() == 0.0
        assert f(kind, x, y, None, ohem_ratio=0.5).isnan()


# ----------------------------------------------------------------------------------------------
# 2. every backend against the float64 reference: the parameter cross
# ----------------------------------------------------------------------------------------------


def _cases(full, subset):
    """(device, backend, *case) for every backend of backends_for(device): ``full`` everywhere but
    the Triton interpreter, which gets ``subset`` (each OHEM call there is ~10 launches)."""
    out = []
    for device in DEVICES:
        for backend in backends_for(device):
            cases = subset if (backend == "triton" and device == "cpu") else full
            out += [(device, backend) + tuple(c) for c in cases]
    return out


# Triton subset of the cross: every kind's defaults, each temperature, each focal gamma kind
# (0, 1, 2 specialised; 2.5 the general pow), alpha, both meanings of hinge_margin, every hinge flag,
# and OHEM for each kind that has it.
_PARAMS_SUB = [
    ("pair_wise", DEFAULTS["pair_wise"]),
    ("pair_wise", dict(temperature=0.5, margin=0.7)),
    ("pair_wise", dict(temperature=2.0, margin=-0.3)),
    ("logistic", DEFAULTS["logistic"]),
    ("logistic", dict(temperature=0.5, hinge_margin=0.5, use_label_margin=False, ohem_ratio=1.0)),
    ("logistic", dict(temperature=2.0, hinge_margin=None, use_label_margin=True, ohem_ratio=0.5)),
    ("logistic", dict(temperature=1.0, hinge_margin=0.5, use_label_margin=True, ohem_ratio=1.0)),
    ("logistic", dict(temperature=0.5, hinge_margin=0.5, use_label_margin=False, ohem_ratio=0.5)),
    ("focal", DEFAULTS["focal"]),
    ("focal", dict(temperature=0.5, gamma=0.0, alpha=0.25, hinge_margin=None, ohem_ratio=1.0)),
    ("focal", dict(temperature=2.0, gamma=1.0, alpha=None, hinge_margin=0.5, ohem_ratio=1.0)),
    ("focal", dict(temperature=1.0, gamma=2.5, alpha=0.25, hinge_margin=0.5, ohem_ratio=0.3)),
    ("focal", dict(temperature=0.5, gamma=2.0, alpha=None, hinge_margin=None, ohem_ratio=0.3)),
    ("hinge", DEFAULTS["hinge"]),
    ("hinge", dict(temperature=0.5, margin=1.0, use_label_margin=True, label_is_logits=False,
                   use_exponent=False, ohem_ratio=0.77)),
    ("hinge", dict(temperature=2.0, margin=0.3, use_label_margin=False, label_is_logits=True,
                   use_exponent=False, ohem_ratio=1.0)),
    ("hinge", dict(temperature=2.0, margin=1.0, use_label_margin=True, label_is_logits=True,
                   use_exponent=True, ohem_ratio=1.0)),
    ("hinge", dict(temperature=0.5, margin=0.3, use_label_margin=False, label_is_logits=False,
                   use_exponent=True, ohem_ratio=0.77)),
]


@pytest.mark.parametrize("device, backend, kind, params", _cases(ALL_PARAMS, _PARAMS_SUB), ids=pid)
@pytest.mark.parametrize("layout", ["sessions", "no_sessions"])
def test_params_match_reference(device, backend, kind, params, layout):
    # B = 37 (odd; 3 Triton row blocks of 16, the last partial; CPU columns padded to 16).
    # sessions: ~6 unsorted sessions of arbitrary int64 ids, graded labels, [B] weights with zeros.
    # no_sessions: all pairs of one segment, negative weights (negative terms, dropped by OHEM).
    b = 37
    x = make_scores(b, device=device)
    y = make_labels(b, device=device)
    if layout == "sessions":
        sid, w = make_sessions("random", b, device), make_weight("zeros", b, device=device)
    else:
        sid, w = None, make_weight("neg", b, device=device)
    assert_matches_reference(kind, backend, x, y, sid, w, params)


# (B, sessions, weight, labels, where): the code path of each in the comment. where: "all" every
# backend; "sbnz" the interpreter only without OHEM (10 launches of 19 x 10 tiles are ~10 s there);
# "fused" no interpreter and no reference backend (comparing the B x B reference with itself).
_INPUTS = [
    (0, None, None, "graded", "all"),  # empty: no launch; SBNZ 0, OHEM NaN
    (0, "random", "B", "graded", "all"),  # empty with [0] session ids and weight
    (1, None, "B", "graded", "all"),  # one item: [1] weight read with stride 0, no pair
    (1, "random", "tensor0d", "graded", "all"),
    (2, None, "scalar", "binary", "all"),  # the smallest batch with a pair
    (2, "one", "neg", "graded", "all"),
    (37, "size1", "B", "graded", "all"),  # every item alone: segments of length 1, no pair
    (37, "one", "neg", "graded", "all"),  # one explicit session == no sessions
    (37, None, "zeros", "int", "all"),  # int64 labels
    (37, "random", "scalar", "graded", "all"),  # unsorted int64 ids incl. +-2**63 extremes
    (37, "int32", "tensor0d", "graded", "all"),  # int32 ids incl. +-2**31 extremes
    (37, "sorted", None, "bool", "all"),  # already sorted sessions, bool labels
    (37, "random", "B", "soft", "all"),  # float32 labels in [0, 1): graded, no label ties
    (37, "random", "allzero", "graded", "all"),  # N_nz = 0 -> 0
    (37, "random", "scalar0", "graded", "all"),  # scalar 0 -> 0
    (37, "random", "B", "equal", "all"),  # all labels equal: no pair -> 0 / NaN
    (129, "random", "neg", "graded", "all"),  # 9 Triton row blocks; sessions cross block boundaries
    (129, None, "B", "binary", "fused"),
    (300, "one", "B", "graded", "sbnz"),  # one huge session: 19 row blocks x 10 column tiles
    (1000, "one", "neg", "binary", "fused"),  # CPU: 4 blocks, round-robin without a bye
    (2100, None, "zeros", "graded", "fused"),  # CPU: 2 column tiles (2048 + 52), parallel chunks
    (4300, "two", "neg", "graded", "fused"),  # CPU: two unsorted sessions of ~2150 > one tile
]


def _inputs(b, sessions, weight, labels, device, dtype=torch.float64):
    x = make_scores(b, dtype, device)
    y = make_labels(b, labels, device)
    if sessions == "two":
        sid = torch.tensor([2**62, -5], device=device)[torch.randint(0, 2, (b,))]
    else:
        sid = make_sessions(sessions, b, device)
    return x, y, sid, make_weight(weight, b, torch.float64, device)


# Per kind, one non-default SBNZ setting and its OHEM twin.
_VARIANT_PARAMS = {
    "pair_wise": [dict(temperature=0.5, margin=0.7)],
    "logistic": [dict(temperature=2.0, use_label_margin=True), dict(temperature=0.5, ohem_ratio=0.5)],
    "focal": [dict(gamma=2.5, alpha=0.25, hinge_margin=0.5), dict(gamma=1.0, ohem_ratio=0.3)],
    "hinge": [dict(temperature=2.0), dict(use_exponent=True, ohem_ratio=0.77)],
}


def _input_cases():
    full, sub = [], []
    for k in KINDS:
        for p in _VARIANT_PARAMS[k]:
            for b, sessions, weight, labels, where in _INPUTS:
                case = (k, p, b, sessions, weight, labels)
                full.append(case)
                if where == "all" or (where == "sbnz" and "ohem_ratio" not in p):
                    sub.append(case)
    return full, sub


def _input_params():
    full, sub = _input_cases()
    where = {c[0]: c[4] for c in _INPUTS}
    return [
        c for c in _cases(full, sub) if not (c[1] == "reference" and where[c[4]] == "fused")
    ]


@pytest.mark.parametrize(
    "device, backend, kind, params, b, sessions, weight, labels", _input_params(), ids=pid
)
def test_inputs_match_reference(device, backend, kind, params, b, sessions, weight, labels):
    x, y, sid, w = _inputs(b, sessions, weight, labels, device)
    loss, g = assert_matches_reference(kind, backend, x, y, sid, w, params)
    if labels == "equal" or sessions == "size1" or b < 2 or weight in ("allzero", "scalar0"):
        # no valid pair, or N_nz = 0 (every weighted loss 0: nothing > 0 survives OHEM either)
        if params.get("ohem_ratio", 1.0) == 1.0:
            assert loss.item() == 0.0 and not g.any()
        else:
            assert loss.isnan()


# ----------------------------------------------------------------------------------------------
# low precision: fp32 / fp16 / bf16 inputs, result dtype = input dtype
# ----------------------------------------------------------------------------------------------

_LOWP_PARAMS = {
    "pair_wise": dict(temperature=0.5, margin=0.7),
    "logistic": dict(temperature=2.0, use_label_margin=True),
    "focal": dict(gamma=2.5, alpha=0.25),
    "hinge": dict(temperature=0.5, use_label_margin=False),
}


def _lowp_cases():
    out = []
    for device in DEVICES:
        for backend in backends_for(device):
            interp = backend == "triton" and device == "cpu"
            for kind in KINDS:
                for ohem in (False, True):
                    if ohem and kind == "pair_wise":
                        continue
                    # 37 in ~6 sessions everywhere; 300 items in one session (45k pair terms
                    # summed in fp32) on the compiled backends
                    for b, sessions in [(37, "random")] + ([] if interp else [(300, None)]):
                        out.append((device, backend, kind, ohem, b, sessions))
    return out


@pytest.mark.parametrize("device, backend, kind, ohem, b, sessions", _lowp_cases())
@pytest.mark.parametrize("dtype", LOWP, ids=str)
def test_low_precision_matches_reference(device, backend, dtype, kind, ohem, b, sessions):
    x = make_scores(b, dtype, device)
    y = make_labels(b, device=device)
    sid = make_sessions(sessions, b, device)
    w = make_weight("zeros", b, dtype, device)
    params = dict(_LOWP_PARAMS[kind], **({"ohem_ratio": 0.5} if ohem else {}))
    loss, g = assert_matches_reference(kind, backend, x, y, sid, w, params)
    assert torch.isfinite(loss) and torch.isfinite(g).all()
    if kind in ("pair_wise", "logistic", "focal"):
        assert loss.item() > 0  # a sum of positive pair losses with positive weights


# ----------------------------------------------------------------------------------------------
# gradcheck in float64 (reference, cpu, triton / cuda)
# ----------------------------------------------------------------------------------------------

_GRADCHECK = [
    ("pair_wise", dict(temperature=0.5, margin=0.7)),
    ("logistic", dict(temperature=2.0, hinge_margin=0.5)),
    ("logistic", dict(use_label_margin=True, ohem_ratio=0.5)),
    ("focal", dict(gamma=2.5, alpha=0.25, hinge_margin=1.0)),
    ("focal", dict(gamma=2.0, temperature=0.5, ohem_ratio=0.5)),
    ("hinge", dict(temperature=2.0)),
    ("hinge", dict(use_exponent=True, use_label_margin=False, ohem_ratio=0.77)),
]


@pytest.mark.parametrize("device, backend", [(d, b) for d in DEVICES for b in backends_for(d)])
@pytest.mark.parametrize("kind, params", _GRADCHECK, ids=pid)
def test_gradcheck(device, backend, kind, params):
    # B = 8 in two unsorted sessions, distinct scores (no exact ties: OHEM's selection and the
    # hinge/filter kinks stay put under gradcheck's 1e-6 perturbations), weights with a negative.
    b = 8
    x = make_scores(b, device=device).requires_grad_()
    y = make_labels(b, device=device)
    sid = torch.tensor([3, -1, 3, -1, 3, -1, 3, 3], device=device)
    w = torch.tensor([1.0, 0.5, -0.7, 1.3, 0.0, 2.0, 0.9, 1.1], dtype=torch.float64, device=device)
    assert torch.autograd.gradcheck(
        lambda xx: call(kind, xx, y, sid, backend, w, **params), (x,), eps=1e-6, atol=1e-7
    )


# ----------------------------------------------------------------------------------------------
# layouts: strided 1-D inputs, canaries, grad_output
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("device, backend", [(d, b) for d in DEVICES for b in backends_for(d)])
@pytest.mark.parametrize("kind", KINDS)
def test_strided_inputs(device, backend, kind):
    # x[::2] (stride 2) and a column of a transposed matrix (stride 3) for scores, labels, session
    # ids and weight: values are read by logical position, not storage position.
    b = 37
    x = make_scores(2 * b, device=device)[::2]
    y = make_labels(3 * b, device=device).reshape(b, 3)[:, 1]
    sid = make_sessions("random", 2 * b, device)[1::2]
    w = make_weight("neg", 3 * b, device=device).reshape(b, 3).t()[2]
    assert x.stride() == (2,) and y.stride() == (3,) and sid.stride() == (2,) and w.stride() == (3,)
    for params in (_VARIANT_PARAMS[kind][0], with_ohem(kind, DEFAULTS[kind], 0.5)):
        loss, g = assert_matches_reference(kind, backend, x, y, sid, w, params)
        loss_c, g_c, _ = forward_backward(
            kind, backend, x.contiguous(), y.contiguous(), sid.contiguous(), w.contiguous(), params,
            go=torch.ones((), dtype=torch.float64, device=device),
        )
        loss_s, g_s, _ = forward_backward(kind, backend, x, y, sid, w, params,
                                          go=torch.ones((), dtype=torch.float64, device=device))
        torch.testing.assert_close(loss_s, loss_c, rtol=0, atol=0)  # strided == contiguous, bitwise
        torch.testing.assert_close(g_s, g_c, rtol=0, atol=0)


@pytest.mark.parametrize("device, backend", [(d, b) for d in DEVICES for b in backends_for(d)])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("b", [1, 17, 37])  # one item; one Triton row block + 1; three blocks
def test_canaries(device, backend, kind, b):
    # Scores, labels and weights inside NaN-filled buffers, session ids inside a 7-filled one: an
    # out-of-bounds read that reaches the result leaks NaN, a stray write changes a margin.
    x = make_scores(b, torch.float32, device)
    y = make_labels(b, device=device)
    sid = make_sessions("sorted", b, device)
    w = make_weight("B", b, torch.float32, device)
    xv, check_x = canary(x)
    yv, check_y = canary(y)
    sv, check_s = canary(sid)
    wv, check_w = canary(w)
    for params in (DEFAULTS[kind], with_ohem(kind, DEFAULTS[kind], 0.5)):
        xl = xv.requires_grad_()
        loss = call(kind, xl, yv, sv, backend, wv, **params)
        loss.backward()
        assert torch.isfinite(xl.grad).all()
        assert torch.isfinite(loss) or (params.get("ohem_ratio", 1.0) != 1.0 and b == 1)
        xl.grad = None
        xv = xv.detach()
        assert_matches_reference(kind, backend, x, y, sid, w, params)
    for check in (check_x, check_y, check_s, check_w):
        check()


@pytest.mark.parametrize("device, backend", [(d, b) for d in DEVICES for b in backends_for(d)])
@pytest.mark.parametrize("kind", KINDS)
def test_grad_output(device, backend, kind):
    # d(c * loss)/dx = c * d loss/dx for grad_output 1 and not 1 (the registered backward scales
    # the saved gradient by grad_output); also through a larger graph (loss * 3 + loss ** 2).
    b = 37
    x = make_scores(b, device=device)
    y = make_labels(b, device=device)
    sid = make_sessions("random", b, device)
    for params in (DEFAULTS[kind], with_ohem(kind, DEFAULTS[kind], 0.5)):
        _, g1, _ = forward_backward(kind, backend, x, y, sid, None, params,
                                    go=torch.ones((), dtype=torch.float64, device=device))
        _, gc, _ = forward_backward(kind, backend, x, y, sid, None, params,
                                    go=torch.tensor(-2.5, dtype=torch.float64, device=device))
        torch.testing.assert_close(gc, -2.5 * g1, rtol=1e-14, atol=0)
        _, r1 = reference_fb(kind, x, y, sid, None, params, torch.ones((), dtype=torch.float64))
        torch.testing.assert_close(g1, r1, rtol=RTOL64, atol=ATOL64)
        xl = x.clone().requires_grad_()
        loss = call(kind, xl, y, sid, backend, **params)
        (loss * 3 + loss**2).backward()
        torch.testing.assert_close(xl.grad, (3 + 2 * loss.detach()) * g1, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("device, backend", [(d, b) for d in DEVICES for b in fused_backends_for(d)])
@pytest.mark.parametrize("kind", KINDS)
def test_double_backward_is_right_or_raises(device, backend, kind):
    b = 9
    x = make_scores(b, device=device)
    y = make_labels(b, device=device)
    params = _VARIANT_PARAMS[kind][0]
    xl = x.clone().requires_grad_()
    try:
        (g,) = torch.autograd.grad(call(kind, xl, y, None, backend, **params), xl, create_graph=True)
        (h,) = torch.autograd.grad((g * torch.arange(b, device=device)).sum(), xl)
    except RuntimeError:
        return  # refusing double backward is acceptable
    xr = x.clone().requires_grad_()
    (gr,) = torch.autograd.grad(call_ref(kind, xr, y, None, **params), xr, create_graph=True)
    (hr,) = torch.autograd.grad((gr * torch.arange(b, device=device)).sum(), xr)
    torch.testing.assert_close(h, hr, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("device, backend", [(d, b) for d in DEVICES for b in fused_backends_for(d)])
def test_no_grad_and_detached_input(device, backend):
    # Under no_grad, or for an input that does not require grad, the fused op runs without its
    # gradient pass and returns the same loss.
    b = 37
    x = make_scores(b, device=device)
    y = make_labels(b, device=device)
    sid = make_sessions("random", b, device)
    for kind in KINDS:
        params = with_ohem(kind, DEFAULTS[kind], 0.5)
        plain = call(kind, x, y, sid, backend, **params)
        assert not plain.requires_grad
        with torch.no_grad():
            nograd = call(kind, x.clone().requires_grad_(), y, sid, backend, **params)
        assert not nograd.requires_grad
        withgrad = call(kind, x.clone().requires_grad_(), y, sid, backend, **params)
        assert withgrad.requires_grad
        torch.testing.assert_close(plain, withgrad.detach(), rtol=0, atol=0)
        torch.testing.assert_close(nograd, plain, rtol=0, atol=0)


# ----------------------------------------------------------------------------------------------
# OHEM semantics (spec 1.3): k rounding, ties, survivors, the ratio-1 switch
# ----------------------------------------------------------------------------------------------

ALL_BACKENDS = [(d, b) for d in DEVICES for b in backends_for(d)]


def test_ohem_k_rounding_rule():
    # half to even on the float32 product: 2.5 -> 2, 3.5 -> 4, 1.5 -> 2, 0.3 -> 0; float32(45) *
    # float32(0.7) is exactly 31.5 -> 32 (the float64 product 31.4999... gives 31); float32(50) *
    # float32(0.59) = 29.499998 -> 29 (float64: 29.5 -> 30).
    cases = [(5, 0.5, 2), (7, 0.5, 4), (3, 0.5, 2), (1, 0.3, 0), (45, 0.7, 32), (50, 0.59, 29)]
    assert [ohem_k(n, r) for n, r, _ in cases] == [k for *_, k in cases]
    assert round(45 * 0.7) == 31 and round(50 * 0.59) == 30  # what float64 rounding would give


@pytest.mark.parametrize("device, backend", ALL_BACKENDS)
@pytest.mark.parametrize(
    "n, ratio",
    [
        (5, 0.5),  # 2.5 -> k = 2 (half to even, not 3)
        (7, 0.5),  # 3.5 -> k = 4
        (3, 0.5),  # 1.5 -> k = 2
        (45, 0.7),  # float32 product 31.5 -> 32 (float64 would give 31)
        (50, 0.59),  # float32 product 29.499998 -> 29 (float64 would give 30)
        (1, 0.3),  # k = 0 -> NaN
    ],
)
def test_ohem_selects_k(device, backend, n, ratio):
    # One item labelled 1 and n labelled 0 (in a shuffled batch with a second, pairless session):
    # exactly n valid pairs, all with positive loss, so exactly k pairs survive: the loss is the mean
    # of the k largest softplus(-(s_top - s_j)) and exactly k lower items get a gradient.
    b = n + 1 + 4
    x = make_scores(b, device=device)
    y = torch.zeros(b, dtype=torch.float64, device=device)
    sid = torch.zeros(b, dtype=torch.int64, device=device)
    y[0], sid[n + 1:] = 1.0, -9  # item 0 is the top item of session 0; items n+1.. are session -9
    y[n + 1] = 1.0  # session -9 has labels 1, 0, 0, 0: 3 more pairs...
    sid[n + 1:] = torch.arange(4, device=device) - 20  # ...unless each is its own session: none
    perm = torch.randperm(b, device=device)
    x, y, sid = x[perm], y[perm], sid[perm]
    top = int((perm == 0).nonzero())
    k = ohem_k(n, ratio)
    xl = x.clone().requires_grad_()
    loss = fusedloss.pairwise_logistic_loss(xl, y, sid, ohem_ratio=ratio, backend=backend)
    loss.backward()
    lower = (sid == 0) & (y == 0)
    pair_losses = torch.nn.functional.softplus(-(x[top] - x[lower]))
    if k == 0:
        assert loss.isnan()
        return
    assert int((xl.grad[lower] != 0).sum()) == k
    torch.testing.assert_close(loss.detach(), pair_losses.topk(k).values.mean(), rtol=1e-12, atol=0)
    assert_matches_reference("logistic", backend, x, y, sid, None, dict(ohem_ratio=ratio))


@pytest.mark.parametrize("device, backend", ALL_BACKENDS)
@pytest.mark.parametrize("kind", ["logistic", "focal", "hinge"])
@pytest.mark.parametrize("ratio", [0.3, 0.5, 0.77])
def test_ohem_exact_ties_take_lower_row_major_index(device, backend, kind, ratio):
    # 24 items whose scores take 3 values and labels 0..3 in 3 unsorted sessions: many pairs have
    # bit-identical losses (equal score and label differences). Where a group of equal losses
    # straddles the k-th place, the lower row-major (i, j) positions (original indices) are taken.
    # The gradient shows which: compared with the brute force and the reference at 1e-12. Inputs
    # are redrawn (from the test's seed) until a tie does straddle the k-th place.
    b = 24
    params = dict(temperature=0.5, ohem_ratio=ratio)
    for _ in range(200):
        x = (torch.randint(0, 3, (b,)).double() * 0.5).to(device)
        y = make_labels(b, device=device)
        sid = torch.tensor([5, -(2**40), 17], device=device)[torch.randint(0, 3, (b,))]
        xb = x.clone().requires_grad_()
        pairs = brute_pairs(kind, xb, y, sid, **params)
        vals = sorted(-_val(p[2]) for p in pairs)
        k = ohem_k(len(pairs), ratio)
        if 0 < k < len(pairs) and vals[k - 1] == vals[k] and vals[k - 1] < 0:
            break
    else:
        pytest.fail("no input with a positive tie straddling the k-th place was drawn")
    lb = brute_force(kind, xb, y, sid, **params)
    (gb,) = torch.autograd.grad(lb, xb)
    xl = x.clone().requires_grad_()
    loss = call(kind, xl, y, sid, backend, **params)
    (g,) = torch.autograd.grad(loss, xl)
    torch.testing.assert_close(loss.detach(), lb.detach(), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(g, gb, rtol=1e-12, atol=1e-14)
    # the other tie-break (higher positions first) gives another gradient: the check has teeth
    order = sorted(range(len(pairs)), key=lambda n: (-_val(pairs[n][2]), -n))[:k]
    alt = sum((pairs[n][2] for n in order if _val(pairs[n][2]) > 0), xb.sum() * 0)
    (galt,) = torch.autograd.grad(alt, xb)
    assert not torch.allclose(galt / max(1, sum(_val(pairs[n][2]) > 0 for n in order)), gb)


@pytest.mark.parametrize("device, backend", ALL_BACKENDS)
@pytest.mark.parametrize("ratio", [0.3, 0.5, 0.77])
def test_ohem_all_equal_scores_select_first_pairs(device, backend, ratio):
    # Equal scores: every logistic pair loss is log 2, so OHEM keeps the first k valid pairs in
    # row-major order of the ORIGINAL indices (the kernels work on session-sorted items).
    b = 40
    x = torch.full((b,), 0.25, dtype=torch.float64, device=device)
    y = make_labels(b, device=device)
    sid = make_sessions("random", b, device)
    pairs = [(i, j) for i in range(b) for j in range(b) if sid[i] == sid[j] and y[i] > y[j]]
    k = ohem_k(len(pairs), ratio)
    expected = torch.zeros(b, dtype=torch.float64)
    for i, j in pairs[:k]:  # d softplus(-(s_i - s_j)) / d s_i = -1/2 at s_i = s_j
        expected[i] -= 0.5 / k
        expected[j] += 0.5 / k
    xl = x.clone().requires_grad_()
    loss = fusedloss.pairwise_logistic_loss(xl, y, sid, ohem_ratio=ratio, backend=backend)
    loss.backward()
    assert loss.item() == pytest.approx(L2, rel=1e-14)
    torch.testing.assert_close(xl.grad, expected.to(device), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("device, backend", ALL_BACKENDS)
def test_ohem_nonpositive_dropped_and_nan_without_survivor(device, backend):
    b = 37
    x = make_scores(b, device=device)
    y = make_labels(b, device=device)
    sid = make_sessions("random", b, device)
    # hinge with scores 100 * label: every delta = (1 - 100)(y_i - y_j) < 0, every loss 0:
    # SBNZ counts the pairs (0), OHEM keeps none (NaN); the NaN loss still accepts backward()
    big = (100 * y).clone().requires_grad_()
    assert call("hinge", big, y, sid, backend).item() == 0.0
    for ratio in (0.3, 0.9999):
        loss = call("hinge", big, y, sid, backend, ohem_ratio=ratio)
        assert loss.isnan() and loss.requires_grad
        loss.backward()
    # all weights negative: every weighted loss < 0 -> NaN; a scalar 0 weight -> NaN
    for w in (-torch.rand(b, dtype=torch.float64, device=device) - 0.1, 0.0):
        loss = call("logistic", x.clone().requires_grad_(), y, sid, backend, w, ohem_ratio=0.5)
        assert loss.isnan()
        loss.backward()
    # some negative weights: those terms are dropped, the mean is over the survivors only (not / k)
    w = make_weight("neg", b, device=device)
    loss = call("logistic", x, y, sid, backend, w, ohem_ratio=0.9)
    pairs = brute_pairs("logistic", x, y, sid, w)
    top = sorted((_val(p[2]) for p in pairs), reverse=True)[: ohem_k(len(pairs), 0.9)]
    kept = [v for v in top if v > 0]
    assert len(kept) < len(top)
    assert loss.item() == pytest.approx(sum(kept) / len(kept), rel=1e-9)


@pytest.mark.parametrize("device, backend", ALL_BACKENDS)
@pytest.mark.parametrize("kind", ["logistic", "focal", "hinge"])
def test_ohem_ratio_one_is_sbnz(device, backend, kind):
    # ratio 1.0 exactly is SBNZ (zero-loss pairs and negative terms count, denominator = nonzero
    # weights); 0.9999 is the OHEM mean of the positive weighted losses: they differ (spec 1.3).
    b = 37
    x = make_scores(b, device=device)
    y = make_labels(b, device=device)
    w = make_weight("neg", b, device=device)
    sbnz = call(kind, x, y, None, backend, w, ohem_ratio=1.0)
    ohem = call(kind, x, y, None, backend, w, ohem_ratio=0.9999)
    torch.testing.assert_close(sbnz, call_ref(kind, x, y, None, w), rtol=RTOL64, atol=ATOL64)
    torch.testing.assert_close(ohem, call_ref(kind, x, y, None, w, ohem_ratio=0.9999), rtol=RTOL64,
                               atol=ATOL64)
    assert not torch.isclose(sbnz, ohem)


@pytest.mark.parametrize("device, backend", [(d, b) for d in DEVICES for b in fused_backends_for(d)])
@pytest.mark.parametrize("kind", ["logistic", "hinge"])
def test_ohem_float64_ranks_float64_losses(device, backend, kind):
    # Two pairs whose float64 losses differ by ~1e-11 round to the same float32. The key holds the
    # float64 loss's 64 bits, so the fused backends take the larger loss (0, 2), as the float64
    # reference does (k = rint(2 * 0.5) = 1); a float32 key would tie and take the lower position.
    x = torch.tensor([0.0, 1.0, 1.0 + 1e-11], dtype=torch.float64, device=device)
    y = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64, device=device)
    (_, _, l01, _), (_, _, l02, _) = brute_pairs(kind, x, y)
    assert _val(l02) > _val(l01) and np.float32(_val(l02)) == np.float32(_val(l01))
    assert brute_selected(kind, x, y, ohem_ratio=0.5) == [(0, 2)]
    xl = x.clone().requires_grad_()
    loss = call(kind, xl, y, None, backend, ohem_ratio=0.5)
    loss.backward()
    assert loss.item() == pytest.approx(_val(l02), rel=1e-14)
    assert xl.grad[1].item() == 0.0 and xl.grad[2].item() != 0.0, (
        f"expected the larger float64 loss (0, 2) to be selected: grad {xl.grad.tolist()}"
    )


@pytest.mark.parametrize("device, backend", [(d, b) for d in DEVICES for b in fused_backends_for(d)])
def test_ohem_float32_ties_go_to_the_lower_position(device, backend):
    # float32 input: losses are float32, so equal scores give bit-equal losses and the tie is broken
    # by row-major position, lower first: of the pairs (0, 1) and (0, 2), k = 1 keeps (0, 1).
    x = torch.tensor([0.0, 1.0, 1.0], dtype=torch.float32, device=device)
    y = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float32, device=device)
    xl = x.clone().requires_grad_()
    loss = call("logistic", xl, y, None, backend, ohem_ratio=0.5)
    loss.backward()
    assert xl.grad[1].item() != 0.0 and xl.grad[2].item() == 0.0, xl.grad.tolist()


# ----------------------------------------------------------------------------------------------
# Triton schedules: SYMMETRIC (the default: each pair evaluated once, float atomics on grad) and
# two-sided (under torch.use_deterministic_algorithms(True): each pair from both sides, no atomics)
# ----------------------------------------------------------------------------------------------

TRITON = [(d, b) for d in DEVICES for b in fused_backends_for(d) if b == "triton"]


@contextlib.contextmanager
def _deterministic_algorithms(on):
    """torch.use_deterministic_algorithms(on), restored on exit. warn_only: torch ops without a
    deterministic CUDA kernel warn instead of raising; the Triton launcher reads only the flag."""
    was = torch.are_deterministic_algorithms_enabled()
    was_warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(on, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was, warn_only=was_warn_only)


class _LaunchSpy:
    """Stands in for a Triton kernel: records the named constexprs of every launch, then launches."""

    def __init__(self, kernel, *keys):
        self.kernel, self.keys, self.launches = kernel, keys, []

    def __getitem__(self, grid):
        launch = self.kernel[grid]

        def run(*args, **kwargs):
            self.launches.append(tuple(kwargs[k] for k in self.keys))
            return launch(*args, **kwargs)

        return run


@pytest.mark.parametrize("device, backend", TRITON)
def test_triton_schedule_follows_deterministic_flag(device, backend, monkeypatch):
    # Every launch (SBNZ, OHEM histogram passes, OHEM final pass) is SYMMETRIC by default and
    # two-sided under torch.use_deterministic_algorithms(True); the flag is restored afterwards.
    from fusedloss.triton_kernels import pairwise as tk

    spy = _LaunchSpy(tk._pairwise_kernel, "MODE", "SYMMETRIC")
    monkeypatch.setattr(tk, "_pairwise_kernel", spy)
    b = 37
    x, y = make_scores(b, device=device), make_labels(b, device=device)
    sid, w = make_sessions("random", b, device), make_weight("zeros", b, device=device)
    before = torch.are_deterministic_algorithms_enabled()
    for deterministic in (False, True):
        spy.launches.clear()
        with _deterministic_algorithms(deterministic):
            for params in ({}, {"ohem_ratio": 0.5}):
                forward_backward("logistic", backend, x, y, sid, w, params)
        assert {mode for mode, _ in spy.launches} == {0, 1, 2}, spy.launches
        assert {sym for _, sym in spy.launches} == {not deterministic}, spy.launches
    assert torch.are_deterministic_algorithms_enabled() == before


# SBNZ and OHEM: the general focal pow with alpha and the hinge filter, logistic's shifted softplus,
# hinge with exponent (its own d s' / d s per side), focal at gamma 2.
_SCHEDULE_PARAMS = [
    ("logistic", dict(temperature=0.5, hinge_margin=0.5, use_label_margin=False)),
    ("focal", dict(gamma=2.5, alpha=0.25, hinge_margin=0.5)),
    ("hinge", dict(use_exponent=True, use_label_margin=False, ohem_ratio=0.77)),
    ("focal", dict(gamma=2.0, temperature=0.5, ohem_ratio=0.3)),
]


# The CUDA kernel has the same two schedules (the binding reads the deterministic flag); on a
# machine without a GPU its case is skipped, and the same check runs on Triton's interpreter.
SCHEDULED = TRITON + [pytest.param("cuda", "cuda", marks=NEEDS_CUDA)]


@pytest.mark.parametrize("device, backend", SCHEDULED)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize(
    "b, sessions",
    # ~8 unsorted sessions crossing the 32-row blocks (5 programs); one session of 150 items: the
    # first program walks 150 columns, the last 22 (SYMMETRIC) instead of 150 each (two-sided)
    [(129, "random"), (150, "one")],
)
@pytest.mark.parametrize("kind, params", _SCHEDULE_PARAMS, ids=pid)
def test_symmetric_matches_two_sided(device, backend, kind, params, b, sessions, dtype):
    # The same pair values summed in another order: loss and grad agree to rounding.
    x = make_scores(b, dtype, device)
    y = make_labels(b, device=device)
    sid = make_sessions(sessions, b, device)
    w = make_weight("zeros", b, dtype, device)
    go = torch.tensor(0.75, dtype=dtype, device=device)
    with _deterministic_algorithms(False):
        loss_sym, g_sym, _ = forward_backward(kind, backend, x, y, sid, w, params, go)
    with _deterministic_algorithms(True):
        loss_two, g_two, _ = forward_backward(kind, backend, x, y, sid, w, params, go)
    assert torch.isfinite(loss_two) and loss_two != 0 and g_two.abs().max() > 0
    rtol = 1e-12 if dtype == torch.float64 else 2e-5
    torch.testing.assert_close(loss_sym, loss_two, rtol=rtol, atol=0)
    torch.testing.assert_close(g_sym, g_two, rtol=rtol, atol=rtol * float(g_two.abs().max()))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA; the CPU checks the grid geometry "
                    "(csrc/tests/test_pairwise_math.cpp) and the schedules through Triton's interpreter")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("b, sessions", [(3000, None), (5000, "two")])
@pytest.mark.parametrize("kind, params", _SCHEDULE_PARAMS, ids=pid)
def test_cuda_column_groups_match_two_sided(kind, params, b, sessions, dtype):
    # Batches whose row blocks are dealt column tiles over several blocks (gridDim.y: 12 groups at
    # all pairs B = 3000 on 132 SMs, pairwise_grid.h); csrc/tests/test_pairwise_math.cpp checks the
    # geometry on the CPU, this checks the kernel against the unsplit two-sided schedule, OHEM's
    # histogram passes included.
    x = make_scores(b, dtype, "cuda")
    y = make_labels(b, device="cuda")
    sid = None if sessions is None else (torch.arange(b, device="cuda") % 2) * 7 - 3
    w = make_weight("zeros", b, dtype, "cuda")
    with _deterministic_algorithms(False):
        loss_sym, g_sym, _ = forward_backward(kind, "cuda", x, y, sid, w, params)
    with _deterministic_algorithms(True):
        loss_two, g_two, _ = forward_backward(kind, "cuda", x, y, sid, w, params)
    assert torch.isfinite(loss_two) and loss_two != 0 and g_two.abs().max() > 0
    rtol = 1e-11 if dtype == torch.float64 else 1e-4
    torch.testing.assert_close(loss_sym, loss_two, rtol=rtol, atol=0)
    torch.testing.assert_close(g_sym, g_two, rtol=rtol, atol=rtol * float(g_two.abs().max()))


@pytest.mark.parametrize("device, backend", TRITON)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_triton_symmetric_ohem_histograms_are_two_sided_histograms(device, backend, dtype):
    # Histograms are integer counts of the same keys: bit-identical under both schedules, and the
    # first digit's counts every valid pair exactly once (SYMMETRIC sees each pair once, from its
    # lower sorted position; the key still comes from the higher item). The whole radix select
    # (every digit's pass) then decides the same K*.
    from fusedloss.ops import pairwise as ops
    from fusedloss.triton_kernels import pairwise as tk

    b = 129
    x = make_scores(b, dtype, device)
    y = make_labels(b, device=device).to(dtype)
    sid = make_sessions("random", b, device)
    w = make_weight("zeros", b, dtype, device)
    order, seg_lo, seg_hi = ops.session_layout(sid, b, device)
    args = (x[order], y[order], w[order], order, seg_lo, seg_hi, ops.KINDS["logistic"], 0, 0.5, 0.0,
            0.0, 0.0, -1.0)
    out = {}
    for deterministic in (False, True):
        with _deterministic_algorithms(deterministic):
            first = tk.pairwise_ohem_hist_triton(*args, torch.zeros(5, dtype=torch.int64, device=device), 0)
            out[deterministic] = (first, ops._ohem_select(tk.pairwise_ohem_hist_triton, args, 0.4))
    assert torch.equal(out[False][0], out[True][0])
    assert torch.equal(out[False][1], out[True][1]) and out[False][1][4] == 1
    valid = (y[:, None] > y[None, :]) & (sid[:, None] == sid[None, :])
    assert int(out[False][0].sum()) == int(valid.sum()) > 0


@pytest.mark.parametrize("device, backend", TRITON)
@pytest.mark.parametrize(
    "kind, params",
    [
        ("pair_wise", dict(temperature=0.5, margin=0.7)),
        ("logistic", dict(temperature=2.0, use_label_margin=True, ohem_ratio=0.5)),
        ("focal", dict(gamma=2.5, alpha=0.25, hinge_margin=0.5, ohem_ratio=0.3)),
        ("hinge", dict(temperature=2.0)),
    ],
    ids=pid,
)
def test_triton_two_sided_matches_reference(device, backend, kind, params):
    # The deterministic (two-sided) path against the float64 reference, as the crosses above check
    # the default SYMMETRIC one: B = 129 in ~8 sessions crossing the row blocks, weights with zeros;
    # and bitwise reproducible.
    b = 129
    x, y = make_scores(b, device=device), make_labels(b, device=device)
    sid, w = make_sessions("random", b, device), make_weight("zeros", b, device=device)
    go = torch.tensor(-1.25, dtype=torch.float64, device=device)
    with _deterministic_algorithms(True):
        loss, g = assert_matches_reference(kind, backend, x, y, sid, w, params, go)
        loss2, g2, _ = forward_backward(kind, backend, x, y, sid, w, params, go)
    assert torch.equal(loss, loss2) and torch.equal(g, g2)


# ----------------------------------------------------------------------------------------------
# 3. scale: O(B) memory for one 20,000-item session; 262,144 items in ~2,600 sessions
# ----------------------------------------------------------------------------------------------

_MEMORY_SCRIPT = r"""
import json, resource, sys, time
import torch, fusedloss

def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux

torch.manual_seed(0)
kind, b, ratio = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
fn = {"logistic": fusedloss.pairwise_logistic_loss, "hinge": fusedloss.pairwise_hinge_loss}[kind]
x = torch.randn(b) * 2
y = torch.randint(0, 4, (b,)).float()
w = torch.rand(b) + 0.5
# warm up on a small batch: kernels, thread pool, autograd machinery are resident before measuring
small = torch.randn(64, requires_grad=True)
fn(small, torch.randint(0, 4, (64,)).float(), weight=torch.rand(64), ohem_ratio=ratio,
   backend="cpu").backward()
xl = x.clone().requires_grad_()
base = peak_mb()
t0 = time.perf_counter()
loss = fn(xl, y, weight=w, ohem_ratio=ratio, backend="cpu")  # no session ids: all B^2 pairs
loss.backward()
seconds = time.perf_counter() - t0
print(json.dumps({"growth_mb": peak_mb() - base, "loss": loss.item(), "seconds": seconds,
                  "grad_finite": bool(torch.isfinite(xl.grad).all()),
                  "grad_sum": xl.grad.double().sum().item(),
                  "grad_abs_sum": xl.grad.double().abs().sum().item()}))
"""


# ----------------------------------------------------------------------------------------------
# Triton's lean float32 SBNZ kernel (triton_kernels/pairwise_sbnz.py)
# ----------------------------------------------------------------------------------------------


_SBNZ_PARAMS = [
    ("pair_wise", dict(temperature=0.5, margin=0.7), 1),
    ("pair_wise", dict(temperature=2.0), 0),                       # the default margin 0
    ("logistic", dict(temperature=0.5), 0),
    ("logistic", dict(temperature=2.0, hinge_margin=0.5, use_label_margin=False), 1),
    ("logistic", dict(temperature=0.7, use_label_margin=True), 2),
]


@pytest.mark.parametrize("device, backend", TRITON)
@pytest.mark.parametrize("kind, params, shift", _SBNZ_PARAMS, ids=pid)
@pytest.mark.parametrize(
    "b, sessions, weight",
    # 1: no pair; 37: three row blocks, ~6 sessions, every tile partial; 300 in one session: the
    # interior tiles take the FULL path (no session test); 129 with [1] and zero weights
    [(1, None, None), (37, "random", "zeros"), (129, "random", "scalar"), (300, "one", None),
     (300, None, "B")],
)
def test_triton_sbnz_kernel_matches_reference(device, backend, kind, params, shift, b, sessions,
                                              weight, monkeypatch):
    from fusedloss.triton_kernels import pairwise_sbnz

    spy = _LaunchSpy(pairwise_sbnz._pairwise_sbnz_kernel, "SHIFT", "HAS_WEIGHT", "BLOCK_C")
    monkeypatch.setattr(pairwise_sbnz, "_pairwise_sbnz_kernel", spy)
    x = make_scores(b, torch.float32, device)
    y = make_labels(b, device=device)
    sid = make_sessions(sessions, b, device)
    w = make_weight(weight, b, torch.float32, device)
    with _deterministic_algorithms(False):
        loss, g = assert_matches_reference(kind, backend, x, y, sid, w, params)
    assert spy.launches == [(shift, weight is not None, 32)], spy.launches
    # Beyond the fp32 bound of assert_matches_reference: within 2e-6 of the float64 truth (the
    # kernel's base-2 softplus and approximate exp2 / rsqrt are a few ulp per pair).
    go = torch.ones((), dtype=torch.float64)
    truth, truth_g = reference_fb(kind, x, y, sid, w, params, go)
    xl = x.detach().clone().requires_grad_()
    l1 = call(kind, xl, y, sid, backend, w, **params)
    l1.backward()
    torch.testing.assert_close(l1.detach().double(), truth, rtol=2e-6, atol=1e-7)
    torch.testing.assert_close(xl.grad.double(), truth_g, rtol=0,
                               atol=2e-6 * max(float(truth_g.abs().max()), 1e-30))


@pytest.mark.parametrize("device, backend", TRITON)
def test_triton_sbnz_kernel_launch_rule(device, backend, monkeypatch):
    # Taken for float32 SBNZ pair_wise / logistic under the SYMMETRIC schedule only: float64, OHEM,
    # focal, hinge and torch.use_deterministic_algorithms(True) keep the general kernel.
    from fusedloss.triton_kernels import pairwise_sbnz

    spy = _LaunchSpy(pairwise_sbnz._pairwise_sbnz_kernel, "SHIFT", "HAS_WEIGHT", "BLOCK_C")
    monkeypatch.setattr(pairwise_sbnz, "_pairwise_sbnz_kernel", spy)
    b = 37
    y, sid = make_labels(b, device=device), make_sessions("random", b, device)
    x32, x64 = make_scores(b, torch.float32, device), make_scores(b, torch.float64, device)
    with _deterministic_algorithms(False):
        forward_backward("logistic", backend, x32, y, sid, None, {})
        assert len(spy.launches) == 1
        forward_backward("logistic", backend, x64, y, sid, None, {})
        forward_backward("logistic", backend, x32, y, sid, None, {"ohem_ratio": 0.5})
        forward_backward("focal", backend, x32, y, sid, None, {})
        forward_backward("hinge", backend, x32, y, sid, None, {})
        # half-precision scores are computed in float32: the lean kernel
        forward_backward("pair_wise", backend, x32.half(), y, sid, None, {})
    with _deterministic_algorithms(True):
        forward_backward("logistic", backend, x32, y, sid, None, {})
    assert len(spy.launches) == 2, spy.launches


@pytest.mark.parametrize("device, backend",
                         TRITON + [("cpu", "cpu"), pytest.param("cuda", "cuda", marks=NEEDS_CUDA)])
def test_lean_sbnz_keeps_nonfinite_scores_to_their_pairs(device, backend):
    # An inf and a NaN score on items without a pair (their sessions' labels all equal) share tiles
    # with valid pairs of another session: the loss and every gradient stay finite, 0 for the items
    # without pairs. Those scores are in no pair, so the truth is the reference on the same batch
    # with them replaced by 0 (the matrix reference itself returns the right loss but a NaN
    # gradient everywhere: its masked B x B backward multiplies NaN by 0). And scores that make a
    # valid pair NaN (inf - inf) make the loss NaN, as in the reference.
    b = 40
    x = make_scores(b, torch.float32, device)
    y = make_labels(b, device=device).float()
    sid = torch.zeros(b, dtype=torch.int64, device=device)
    sid[:4] = 1                        # session 1: items 0..3, all labelled 2
    y[:4] = 2.0
    x[1], x[2] = float("inf"), float("nan")
    go = torch.ones((), dtype=torch.float64)
    for kind, params in (("logistic", {}), ("pair_wise", {"margin": 0.3})):
        with _deterministic_algorithms(False):
            loss, g, _ = forward_backward(kind, backend, x, y, sid, None, params, go.float())
        finite = x.clone()
        finite[1:3] = 0.0
        truth, truth_g = reference_fb(kind, finite, y, sid, None, params, go)
        assert torch.isfinite(loss) and torch.isfinite(g).all(), (loss, g)
        assert (g[:4] == 0).all()
        torch.testing.assert_close(loss.double(), truth, rtol=2e-6, atol=0)
        torch.testing.assert_close(g.double(), truth_g, rtol=0, atol=2e-6 * float(truth_g.abs().max()))
    y[5], y[6] = 3.0, 0.0              # item 5 above item 6 in session 0, both scores inf:
    x[5] = x[6] = float("inf")         # (inf - inf) is NaN, so is the loss
    with _deterministic_algorithms(False):
        loss, _, _ = forward_backward("logistic", backend, x, y, sid, None, {}, go.float())
    truth, _ = reference_fb("logistic", x, y, sid, None, {}, go)
    assert loss.isnan() and truth.isnan(), (loss, truth)


@pytest.mark.parametrize("device, backend", TRITON)
@pytest.mark.parametrize("kind, params, shift", [_SBNZ_PARAMS[2], _SBNZ_PARAMS[4]], ids=pid)
def test_triton_sbnz_kernel_long_sessions(device, backend, kind, params, shift, monkeypatch):
    # 4,500 items in 9 unsorted sessions of ~500: mostly FULL tiles, 282 programs of up to 16
    # column tiles; the truth is the cpu backend in float64 (O(B) memory; it is checked against
    # the reference above), the B x B reference would need ~1.6 GB here.
    from fusedloss.triton_kernels import pairwise_sbnz

    spy = _LaunchSpy(pairwise_sbnz._pairwise_sbnz_kernel, "SHIFT", "HAS_WEIGHT", "BLOCK_C")
    monkeypatch.setattr(pairwise_sbnz, "_pairwise_sbnz_kernel", spy)
    b = 4500
    x = make_scores(b, torch.float32, device)
    y = make_labels(b, device=device)
    sid = (torch.randint(0, 9, (b,)) * 7919 - 3).to(device)
    w = make_weight("zeros", b, torch.float32, device)
    go = torch.ones((), dtype=torch.float64)
    with _deterministic_algorithms(False):
        loss, g, _ = forward_backward(kind, backend, x, y, sid, w, params, go.float())
    assert spy.launches == [(shift, True, 32)], spy.launches
    truth, truth_g, _ = forward_backward(kind, "cpu", x.double().cpu(), y.cpu(), sid.cpu(),
                                         w.double().cpu(), params, go)
    torch.testing.assert_close(loss.double().cpu(), truth, rtol=2e-6, atol=0)
    torch.testing.assert_close(g.double().cpu(), truth_g, rtol=0,
                               atol=2e-6 * float(truth_g.abs().max()))


def _assert_lean_matches_reference(device, backend, kind, params):
    """The lean SBNZ path of ``backend`` within 2e-6 of the float64 truth: sessions with zero
    weights, one 300-item session (FULL tiles on the GPU; CPU tiles of 256 and 44 columns), all
    pairs with [B] weights."""
    go = torch.ones((), dtype=torch.float64)
    for b, sessions, weight in [(129, "random", "zeros"), (300, "one", None), (300, None, "B")]:
        x = make_scores(b, torch.float32, device)
        y = make_labels(b, device=device)
        sid = make_sessions(sessions, b, device)
        w = make_weight(weight, b, torch.float32, device)
        loss, g, _ = forward_backward(kind, backend, x, y, sid, w, params, go.float().to(device))
        truth, truth_g = reference_fb(kind, x, y, sid, w, params, go.to(device))
        torch.testing.assert_close(loss.double(), truth, rtol=2e-6, atol=1e-7)
        torch.testing.assert_close(g.double(), truth_g, rtol=0,
                                   atol=2e-6 * max(float(truth_g.abs().max()), 1e-30))


@pytest.mark.parametrize("isa", ["base", "avx2", "avx512"])
@pytest.mark.parametrize("kind, params, shift", _SBNZ_PARAMS, ids=pid)
def test_cpu_lean_sbnz_matches_reference(kind, params, shift, isa, monkeypatch):
    # The cpu backend's float32 SBNZ pair_wise / logistic loop runs pairwise_lean_math.h's lean_pair,
    # the CUDA lean kernel's math, in every ISA variant (FUSEDLOSS_CPU_ISA lowers the variant;
    # asking above the CPU gives the CPU's).
    monkeypatch.setenv("FUSEDLOSS_CPU_ISA", isa)
    _assert_lean_matches_reference("cpu", "cpu", kind, params)


@NEEDS_CUDA
@pytest.mark.parametrize("kind, params, shift", _SBNZ_PARAMS, ids=pid)
def test_cuda_lean_sbnz_matches_reference(kind, params, shift):
    # The CUDA lean kernel (csrc/pairwise/pairwise_sbnz_cuda.cu; the binding takes it for float32
    # SBNZ pair_wise / logistic, symmetric schedule), and 4,500 items in 9 sessions against the cpu
    # backend. Without a GPU its per-pair math runs in test_cpu_lean_sbnz_matches_reference and in
    # csrc/tests/test_pairwise_math.cpp (both sigmoid forms).
    with _deterministic_algorithms(False):
        _assert_lean_matches_reference("cuda", "cuda", kind, params)
        b = 4500
        x, y = make_scores(b, torch.float32, "cuda"), make_labels(b, device="cuda")
        sid = (torch.randint(0, 9, (b,)) * 7919 - 3).cuda()
        go = torch.ones((), dtype=torch.float64)
        loss, g, _ = forward_backward(kind, "cuda", x, y, sid, None, params, go.float().cuda())
    truth, truth_g, _ = forward_backward(kind, "cpu", x.double().cpu(), y.cpu(), sid.cpu(), None, params, go)
    torch.testing.assert_close(loss.double().cpu(), truth, rtol=2e-6, atol=0)
    torch.testing.assert_close(g.double().cpu(), truth_g, rtol=0, atol=2e-6 * float(truth_g.abs().max()))


def test_triton_sbnz_log2_1p_polynomial():
    # log2(1 + e) = e P(e) on [0, 1]: float32 Horner within 4 ulp of float64 (3.3 by design),
    # relative, down to the smallest normal e; its derivative side is not used.
    from fusedloss.triton_kernels import pairwise_sbnz as ps

    coef = [ps._P0, ps._P1, ps._P2, ps._P3, ps._P4, ps._P5, ps._P6, ps._P7, ps._P8]
    coef = [np.float32(c.value if hasattr(c, "value") else c) for c in coef]
    assert all(float(c) == float(np.float64(c)) for c in coef)
    e = np.concatenate([np.linspace(0, 1, 200001), np.logspace(-37.9, 0, 4000)]).astype(np.float32)
    p = np.full_like(e, coef[-1])
    for c in coef[-2::-1]:
        p = (p * e + c).astype(np.float32)
    got = (e * p).astype(np.float64)
    truth = np.log1p(e.astype(np.float64)) / math.log(2)
    pos = truth > 0
    rel = np.abs(got[pos] - truth[pos]) / truth[pos]
    assert rel.max() < 4 * 2.0**-24, rel.max()
    assert got[~pos].tolist() == [0.0] * int((~pos).sum())


@pytest.mark.parametrize(
    "kind, b, ratio",
    [
        # 20,000 items, no session ids: 2e8 valid pairs, every one evaluated from both sides
        # (~9 s on 2 cores); one B x B float32 matrix would be 1.6 GB, float64 3.2 GB.
        ("logistic", 20000, 1.0),
        # OHEM: 9 radix-select histogram passes plus the final pass over 8,000^2 pairs; a B x B
        # float64 matrix would be 512 MB.
        ("hinge", 8000, 0.5),
    ],
)
def test_cpu_memory_is_linear_in_batch(kind, b, ratio):
    # In a fresh process (ru_maxrss is a process-wide peak): the peak resident set may grow by less
    # than 200 MB while the loss and its gradient are computed.
    import json
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-c", _MEMORY_SCRIPT, kind, str(b), str(ratio)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["growth_mb"] < 200, out
    # the result is a real loss: finite, positive, and translation invariant (the loss depends on
    # score differences only, so the gradient sums to 0 up to float32 rounding)
    assert math.isfinite(out["loss"]) and out["loss"] > 0 and out["grad_finite"], out
    assert abs(out["grad_sum"]) <= 1e-4 * out["grad_abs_sum"], out


def _sessions_of_about(n_items, lo, hi, device):
    """Session ids for ``n_items`` items in sessions of lo..hi items, shuffled; arbitrary int64 ids."""
    sizes = []
    while sum(sizes) < n_items:
        sizes.append(int(torch.randint(lo, hi + 1, ())))
    sizes[-1] -= sum(sizes) - n_items
    ids = torch.randint(-(2**62), 2**62, (len(sizes),))
    sid = torch.repeat_interleave(ids, torch.tensor(sizes))
    return sid[torch.randperm(n_items)].to(device)


@pytest.mark.parametrize("ohem_ratio", [1.0, 0.4])
def test_cpu_result_does_not_depend_on_thread_count(ohem_ratio):
    # The cpu backend's tile rounds and chunks depend on the sessions only: 1 and 2 threads give
    # bit-identical losses and gradients (sessions from 1 to 1,400 items: 1 to 6 blocks each). The
    # values are checked against the reference elsewhere (this B x B reference would need ~30 GB).
    torch.manual_seed(11)
    sid = torch.repeat_interleave(torch.arange(40), torch.randint(1, 1400, (40,)))
    sid = sid[torch.randperm(sid.numel())]
    b = sid.numel()
    x = torch.randn(b)
    y = torch.randint(0, 5, (b,)).float()
    w = torch.rand(b) + 0.5
    out = []
    n = torch.get_num_threads()
    for threads in (1, 2):
        torch.set_num_threads(threads)
        try:
            xl = x.clone().requires_grad_()
            loss = fusedloss.pairwise_logistic_loss(xl, y, sid, weight=w, ohem_ratio=ohem_ratio,
                                                    backend="cpu")
            loss.backward()
            out.append((loss.detach(), xl.grad))
        finally:
            torch.set_num_threads(n)
    assert torch.equal(out[0][0], out[1][0]) and torch.equal(out[0][1], out[1][1])
    assert torch.isfinite(out[0][0]) and out[0][1].abs().sum() > 0


@contextlib.contextmanager
def _one_thread():
    """Run many small torch ops on one intra-op thread: on a loaded 2-core machine, thread-pool
    hand-offs made the per-group reference loop below 5x slower (41 s vs 8 s measured)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def _session_groups(sid, per_group=8):
    """Original indices (ascending) of consecutive groups of ``per_group`` whole sessions."""
    order = torch.argsort(sid, stable=True)
    ends = torch.unique_consecutive(sid[order], return_counts=True)[1].cumsum(0).tolist()
    starts = [0] + ends[:-1]
    for g in range(0, len(ends), per_group):
        yield torch.sort(order[starts[g]:ends[min(g + per_group, len(ends)) - 1]]).values


def _grouped_sbnz_reference(kind, x, y, sid, w, params, per_group=8):
    """(loss, grad) of SBNZ from the float64 reference run on a few whole sessions at a time (with
    their ids, so it never builds B x B): sum of the groups' numerators / total denominator (valid
    pairs with w_i != 0; kinds whose SBNZ weight is w_i: all but focal)."""
    assert kind != "focal"
    xr = x.clone().requires_grad_()
    numer, denom = [], 0
    with _one_thread():
        for idx in _session_groups(sid, per_group):
            ys, ws, ss = y[idx], w[idx], sid[idx]
            valid = (ys[:, None] > ys[None, :]) & (ss[:, None] == ss[None, :])
            nz = int((valid & (ws[:, None] != 0)).sum())
            numer.append(call_ref(kind, xr[idx], ys, ss, ws, **params) * nz)
            denom += nz
        expected = torch.stack(numer).sum() / denom
        expected.backward()
    assert denom > 0
    return expected.detach(), xr.grad, denom


def test_cpu_many_sessions_sbnz_session_by_session():
    # 262,144 items in ~2,600 shuffled sessions of 50..150 items (~1e7 valid pairs; the kernel
    # walks ~2,600 segments in row chunks of ~65k padded pair evaluations): the cpu backend against
    # the float64 reference run on 8 whole sessions at a time (~800 items), combined as SBNZ
    # prescribes: sum of the numerators / total denominator (valid pairs with w_i != 0).
    b = 1 << 18
    sid = _sessions_of_about(b, 50, 150, "cpu")
    x = make_scores(b)
    y = make_labels(b)
    w = make_weight("zeros", b)
    params = dict(temperature=0.5, use_label_margin=True)
    xl = x.clone().requires_grad_()
    loss = fusedloss.pairwise_logistic_loss(xl, y, sid, weight=w, backend="cpu", **params)
    loss.backward()
    expected, grad, denom = _grouped_sbnz_reference("logistic", x, y, sid, w, params)
    assert denom > 5_000_000
    torch.testing.assert_close(loss.detach(), expected, rtol=RTOL64, atol=ATOL64)
    torch.testing.assert_close(xl.grad, grad, rtol=RTOL64, atol=ATOL64)


@pytest.mark.parametrize("device, backend", [(d, b) for d in DEVICES for b in fused_backends_for(d)])
def test_large_launch_config(device, backend):
    # B = 16,389 >= 16,384: Triton's second launch config (32-row blocks, 64-column tiles, 8 warps:
    # 513 programs, ~10 s under the interpreter, so SBNZ only), sessions of ~3 items crossing the
    # 32-row block boundaries; CPU: ~1 chunk per 65k padded pair evaluations.
    b = (1 << 14) + 5
    sid = _sessions_of_about(b, 1, 5, device)
    x = make_scores(b, device=device)
    y = make_labels(b, device=device)
    w = make_weight("neg", b, device=device)
    params = dict(temperature=0.5, margin=1.0, use_label_margin=False)
    xl = x.clone().requires_grad_()
    loss = fusedloss.pairwise_hinge_loss(xl, y, sid, weight=w, backend=backend, **params)
    loss.backward()
    expected, grad, _ = _grouped_sbnz_reference("hinge", x.cpu(), y.cpu(), sid.cpu(), w.cpu(), params,
                                                per_group=256)
    torch.testing.assert_close(loss.detach().cpu(), expected, rtol=RTOL64, atol=ATOL64)
    torch.testing.assert_close(xl.grad.cpu(), grad, rtol=RTOL64, atol=ATOL64)


def test_cpu_many_sessions_ohem_global_top_k():
    # The same layout under OHEM (hinge, ratio 0.3): top-k is global over all sessions' pairs.
    # Scores are multiples of 1/8 and weights of 1/4, so every hinge loss is exact in float32 and
    # float64 and exact ties are everywhere, also across sessions: the selection must follow the
    # global row-major position i * B + j of the original indices. The expected value and gradient
    # come from the exact per-pair losses of a few sessions at a time, then one global sort.
    b = 1 << 18
    sid = _sessions_of_about(b, 50, 150, "cpu")
    x = torch.randint(-24, 25, (b,)).double() / 8
    y = make_labels(b)
    w = torch.randint(1, 6, (b,)).double() / 4
    ratio = 0.3
    xl = x.clone().requires_grad_()
    loss = fusedloss.pairwise_hinge_loss(xl, y, sid, weight=w, ohem_ratio=ratio, backend="cpu")
    loss.backward()
    vals, pos_i, pos_j = [], [], []
    with _one_thread():
        for idx in _session_groups(sid):
            ys, xs, ss = y[idx], x[idx], sid[idx]
            valid = (ys[:, None] > ys[None, :]) & (ss[:, None] == ss[None, :])
            ii, jj = valid.nonzero(as_tuple=True)  # row-major within the group = global order
            delta = (ys[ii] - ys[jj]) - (xs[ii] - xs[jj])  # T = 1, label margin (the defaults)
            vals.append(w[idx][ii] * delta.clamp(min=0))
            pos_i.append(idx[ii])
            pos_j.append(idx[jj])
    vals, pi, pj = torch.cat(vals), torch.cat(pos_i), torch.cat(pos_j)
    n = vals.numel()
    k = ohem_k(n, ratio)
    # lexicographic (-value, i * B + j): sort by position, then stably by value, descending
    by_pos = torch.argsort(pi * b + pj)
    ranked = by_pos[torch.sort(vals[by_pos], descending=True, stable=True).indices]
    assert n > 5_000_000 and vals[ranked[k - 1]] == vals[ranked[k]] > 0, (
        "the k-th place must fall inside a tie of positive losses for this test to check tie-breaking"
    )
    keep = ranked[:k][vals[ranked[:k]] > 0]
    expected = vals[keep].mean()
    grad = torch.zeros(b, dtype=torch.float64)
    grad.index_add_(0, pi[keep], -w[pi[keep]] / keep.numel())
    grad.index_add_(0, pj[keep], w[pi[keep]] / keep.numel())
    torch.testing.assert_close(loss.detach(), expected, rtol=1e-12, atol=0)
    torch.testing.assert_close(xl.grad, grad, rtol=1e-12, atol=1e-15)


# ----------------------------------------------------------------------------------------------
# nn modules
# ----------------------------------------------------------------------------------------------

MODULES = {
    "pair_wise": fl_nn.PairwiseLoss,
    "logistic": fl_nn.PairwiseLogisticLoss,
    "focal": fl_nn.PairwiseFocalLoss,
    "hinge": fl_nn.PairwiseHingeLoss,
}


@pytest.mark.parametrize("device, backend", [(d, b) for d in DEVICES for b in ["auto"] + backends_for(d)])
@pytest.mark.parametrize("kind", KINDS)
def test_modules_match_reference(device, backend, kind):
    # forward(input, target, session_ids=None, weight=None); constructor keywords = the function's
    b = 37
    x = make_scores(b, device=device)
    y = make_labels(b, device=device)
    sid = make_sessions("random", b, device)
    w = make_weight("zeros", b, device=device)
    params = dict(_VARIANT_PARAMS[kind][-1])
    module = MODULES[kind](**params, backend=backend)
    for k, v in params.items():
        assert f"{k}={v!r}" in repr(module)
    torch.testing.assert_close(module(x, y, sid, w), call_ref(kind, x, y, sid, w, **params),
                               rtol=RTOL64, atol=ATOL64)
    torch.testing.assert_close(module(x, y, sid, weight=w), module(x, y, session_ids=sid, weight=w))
    torch.testing.assert_close(module(x, y), call_ref(kind, x, y, None, None, **params),
                               rtol=RTOL64, atol=ATOL64)
    # defaults: the module's equal the function's equal the documented ones (DEFAULTS)
    default = MODULES[kind](backend=backend)
    torch.testing.assert_close(default(x, y, sid), call_ref(kind, x, y, sid, None, **DEFAULTS[kind]),
                               rtol=RTOL64, atol=ATOL64)
    torch.testing.assert_close(FNS[kind](x, y, sid, backend=backend),
                               call_ref(kind, x, y, sid, None, **DEFAULTS[kind]), rtol=RTOL64, atol=ATOL64)
    # and gradients flow through the module
    xl = x.clone().requires_grad_()
    module(xl, y, sid, w).backward()
    _, g = reference_fb(kind, x, y, sid, w, params, torch.ones((), dtype=torch.float64))
    torch.testing.assert_close(xl.grad, g, rtol=RTOL64, atol=ATOL64)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", KINDS)
def test_auto_is_the_native_backend(device, kind):
    # auto on CPU tensors is the C++ cpu backend (never the interpreter): bitwise equal
    b = 37
    x = make_scores(b, torch.float32, device)
    y = make_labels(b, device=device)
    sid = make_sessions("random", b, device)
    for params in (DEFAULTS[kind], with_ohem(kind, DEFAULTS[kind], 0.5)):
        a, ga, _ = forward_backward(kind, "auto", x, y, sid, None, params,
                                    go=torch.ones((), device=device))
        n, gn, _ = forward_backward(kind, device, x, y, sid, None, params,
                                    go=torch.ones((), device=device))
        assert torch.equal(a, n) and torch.equal(ga, gn)


# ----------------------------------------------------------------------------------------------
# 4. bad input: clear errors naming the argument
# ----------------------------------------------------------------------------------------------


def _bad_cases():
    b = 6
    x = torch.randn(b)
    y = torch.randint(0, 3, (b,)).float()
    sid = torch.tensor([1, 1, 2, 2, 3, 3])
    cases = []
    for kind, f in FNS.items():
        def c(name, thunk, exc, match, kind=kind):
            cases.append((f"{kind}-{name}", thunk, exc, match))

        c("session_ids-length", lambda f=f: f(x, y, sid[:5]), ValueError, "session_ids")
        c("session_ids-2d", lambda f=f: f(x, y, sid.reshape(2, 3)), ValueError, "session_ids")
        c("session_ids-float", lambda f=f: f(x, y, sid.float()), TypeError, "session_ids")
        c("session_ids-bool", lambda f=f: f(x, y, sid > 1), TypeError, "session_ids")
        c("session_ids-list", lambda f=f: f(x, y, sid.tolist()), TypeError, "session_ids")
        c("session_ids-meta", lambda f=f: f(x, y, sid.to("meta")), ValueError, "device")
        c("input-2d", lambda f=f: f(x.reshape(2, 3), y.reshape(2, 3)), ValueError, "input")
        c("input-column", lambda f=f: f(x[:, None], y[:, None]), ValueError, "input")
        c("input-0d", lambda f=f: f(x[0], y[0]), ValueError, "input")
        c("input-int", lambda f=f: f(x.long(), y), TypeError, "input")
        c("input-list", lambda f=f: f(x.tolist(), y), TypeError, "input")
        c("target-shape", lambda f=f: f(x, y[:5]), ValueError, "target")
        c("target-broadcastable", lambda f=f: f(x, y[:1]), ValueError, "target")
        c("target-list", lambda f=f: f(x, y.tolist()), TypeError, "target")
        c("target-meta", lambda f=f: f(x, y.to("meta")), ValueError, "device")
        c("temperature-0", lambda f=f: f(x, y, temperature=0.0), ValueError, "temperature")
        c("temperature-neg", lambda f=f: f(x, y, temperature=-1.0), ValueError, "temperature")
        c("temperature-nan", lambda f=f: f(x, y, temperature=float("nan")), ValueError, "temperature")
        c("temperature-inf", lambda f=f: f(x, y, temperature=float("inf")), ValueError, "temperature")
        c("temperature-str", lambda f=f: f(x, y, temperature="1"), TypeError, "temperature")
        c("weight-B1", lambda f=f: f(x, y, weight=torch.ones(b, 1)), ValueError, "weight")
        c("weight-length", lambda f=f: f(x, y, weight=torch.ones(b - 1)), ValueError, "weight")
        c("weight-1xB", lambda f=f: f(x, y, weight=torch.ones(1, b)), ValueError, "weight")
        c("weight-int", lambda f=f: f(x, y, weight=torch.ones(b, dtype=torch.int64)), TypeError, "weight")
        c("weight-nan", lambda f=f: f(x, y, weight=float("nan")), ValueError, "weight")
        c("weight-meta", lambda f=f: f(x, y, weight=torch.ones(b, device="meta")), ValueError, "device")
        c("backend-cuda", lambda f=f: f(x, y, backend="cuda"), ValueError, "cuda")
        c("backend-unknown", lambda f=f: f(x, y, backend="fast"), ValueError, "backend")
        if kind != "pair_wise":
            for r in (0.0, -0.5, 1.5, float("nan")):
                c(f"ohem_ratio-{r}", lambda f=f, r=r: f(x, y, ohem_ratio=r), ValueError, "ohem_ratio")
        if kind in ("pair_wise", "hinge"):
            c("margin-inf", lambda f=f: f(x, y, margin=float("inf")), ValueError, "margin")
        if kind in ("logistic", "focal"):
            c("hinge_margin-nan", lambda f=f: f(x, y, hinge_margin=float("nan")), ValueError,
              "hinge_margin")
    pf = fusedloss.pairwise_focal_loss
    cases += [
        ("focal-gamma-neg", lambda: pf(x, y, gamma=-0.5), ValueError, "gamma"),
        ("focal-alpha-big", lambda: pf(x, y, alpha=1.5), ValueError, "alpha"),
        ("focal-alpha-neg", lambda: pf(x, y, alpha=-0.25), ValueError, "alpha"),
        ("pair_wise-no-ohem", lambda: fusedloss.pairwise_loss(x, y, ohem_ratio=0.5), TypeError, "ohem_ratio"),
    ]
    return cases


@pytest.mark.parametrize("case", _bad_cases(), ids=lambda c: c[0])
def test_bad_input(case):
    _, thunk, exc, match = case
    with pytest.raises(exc, match=match):
        thunk()


@pytest.mark.parametrize("backend", ["reference", "cpu", "triton"])
@pytest.mark.parametrize("kind", KINDS)
def test_bad_input_explicit_backend(backend, kind):
    # the checks run before every backend (the C++ / Triton layers never see bad input)
    x, y = torch.randn(6), torch.randint(0, 3, (6,))
    f = FNS[kind]
    with pytest.raises(ValueError, match="session_ids"):
        f(x, y, torch.zeros(5, dtype=torch.int64), backend=backend)
    with pytest.raises(TypeError, match="session_ids"):
        f(x, y, torch.zeros(6), backend=backend)
    with pytest.raises(ValueError, match="weight"):
        f(x, y, weight=torch.ones(6, 1), backend=backend)
    with pytest.raises(ValueError, match="temperature"):
        f(x, y, temperature=0, backend=backend)


def test_cuda_backend_names_the_reason():
    # backend="cuda" on CPU tensors: a ValueError listing available_backends' reasons
    x, y = torch.randn(6), torch.randint(0, 3, (6,))
    with pytest.raises(ValueError, match="cuda") as info:
        fusedloss.pairwise_hinge_loss(x, y, backend="cuda")
    assert "needs CUDA tensors" in str(info.value) or "built without CUDA" in str(info.value)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", KINDS)
def test_weight_that_requires_grad_falls_back(device, kind):
    # The fused backends differentiate input only: an explicit fused backend refuses a weight that
    # requires grad, auto falls back to the reference and returns its gradients for both.
    b = 37
    x = make_scores(b, device=device)
    y = make_labels(b, device=device)
    sid = make_sessions("random", b, device)
    w = make_weight("B", b, device=device).requires_grad_()
    for backend in fused_backends_for(device):
        with pytest.raises(ValueError, match="requires grad"):
            call(kind, x, y, sid, backend, w)
    xl = x.clone().requires_grad_()
    gx, gw = torch.autograd.grad(call(kind, xl, y, sid, "auto", w), (xl, w))
    xr = x.clone().requires_grad_()
    rx, rw = torch.autograd.grad(call_ref(kind, xr, y, sid, w), (xr, w))
    torch.testing.assert_close(gx, rx, rtol=0, atol=0)
    torch.testing.assert_close(gw, rw, rtol=0, atol=0)
    assert gw.abs().sum() > 0
