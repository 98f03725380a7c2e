"""EasyRec's ZILN_LOSS (zero-inflated lognormal, spec 7.1): ``fusedloss.ziln_loss``,
``fusedloss.nn.ZILNLoss`` and the ops ``fusedloss::ziln_fwd`` (C++ cpu/cuda) and
``fusedloss::ziln_fwd_triton``.

Truth: ``fusedloss.reference`` (``backend="reference"``) run in float64 on fresh random inputs, loss
and gradient (with a random grad_output). The reference is anchored outside the package in the first
section: the spec's formula written row by row in plain Python (``brute_force``: math on floats, or
the same code on 0-d float64 tensors so that autograd gives its gradient), central finite
differences, and a hand value on EasyRec's own unit-test input. Low precision (fp32, fp16, bf16):
flash-attn's bound (``lowp_bound``): at most twice as far from the float64 truth as the reference
run in the same dtype, plus a few ulps of the largest magnitude.

Sizes and what each one hits (the kernels are row-parallel with one reduction of four sums):
    0            empty: NaN (TF's means of nothing), an empty [0, 3] gradient
    1, 2         one row (positive, zero label), the smallest mixed batch
    37           odd, the default random case
    300          one Triton program (BLOCK 1024 rows, fp64 512), two CPU tiles of 256 with a tail
    1100         two Triton programs (fp64: three) with a tail: the interpreter's largest case
    1000, 4099   several CPU tiles / Triton programs, not a multiple of any power-of-2 block
    200,003      cpu only: 13 chunks of 16384 rows across threads (the result must not depend on
                 the thread count)
The Triton interpreter (~ms per program, one core) gets a subset with B <= 1100 that still touches
every option.
"""

import math

import pytest
import torch
from conftest import (
    ALL,
    DEVICES,
    FUSED,
    NEEDS_CUDA,
    backend_cases,
    backends_for,
    canary,
    fusedloss_ops_called,
    interpreted,
    loss_and_grad,
    lowp_bound,
    param_id,
)

import fusedloss
from fusedloss import nn as fl_nn
from fusedloss.reference import ziln_loss_reference

LOWP = [torch.float32, torch.float16, torch.bfloat16]
# float64 against the float64 reference: only the order of summation differs
RTOL64, ATOL64 = 1e-10, 1e-12
# ulps of the largest magnitude allowed on top of twice the same-dtype reference's error
# (lowp_bound). fp32: the kernels and the reference both accumulate B rows in float32 (or better) in
# a different order: a few ulps of the largest term per reduction level, 16 covers B = 4099. fp16 /
# bf16: the sums run in float32 and the result is rounded once, like the reference: 2 ulps cover
# one rounding flip of the loss and the grad_output scaling of the gradient.
LOWP_FACTOR = {torch.float32: 16.0, torch.float16: 2.0, torch.bfloat16: 2.0}
SIGMA_MIN = math.sqrt(1e-7)  # TF: sqrt(keras epsilon)
DEFAULTS = dict(max_sigma=5.0, mu_reg=0.01, sigma_reg=0.01, class_weight=1.0, reg_weight=1.0)
OP_OF_BACKEND = {"cpu": "ziln_fwd", "cuda": "ziln_fwd", "triton": "ziln_fwd_triton"}
NAN, INF = float("nan"), float("inf")


# ----------------------------------------------------------------------------------------------
# input builders
# ----------------------------------------------------------------------------------------------

# l_s values on both sides of both clip ends of sigma = clip(softplus(l_s), sqrt(1e-7), 5):
# softplus(l_s) = sqrt(1e-7) at l_s = log(expm1(sqrt(1e-7))) = -8.0588 and = 5 at log(expm1(5)) =
# 4.9933. -8.0 is just inside, -8.12 just outside; 4.95 inside, 5.05 outside; the rest far away
# (-40: softplus underflows towards 0; 25: past torch's softplus threshold of 20). No value sits
# within 1e-2 of a kink (the gradient jumps there).
# Ordered so that any prefix of two or more holds a clipped and an unclipped value.
CLIP_LS = [-12.0, 0.0, 7.0, -3.0, -8.12, -8.0, 4.95, 5.05, -40.0, 1.5, 15.0, -20.0, 25.0]
# labels at the extremes: 0, tiny and large positives, negatives (treated as zero)
EXTREME_Y = [0.0, 1e-6, 1e6, 2.5, -3.0, 1e-6, 1e6, 0.0, -1e-6, 40.0]


def make_ziln_logits(b, kind="normal", dtype=torch.float64, device="cpu", layout="contiguous"):
    """Fresh [B, 3] logits (l_p, mu, l_s), drawn in float64 and rounded to ``dtype``.

    kind: "normal" (l_p ~ N(0, 2^2), mu ~ N(1, 1), l_s ~ N(0, 1): sigma inside the clip); "clip"
    (l_s from CLIP_LS: both clip ends); "large" (l_p ~ N(0, 30^2), mu ~ N(0, 5^2): saturated
    sigmoid / softplus); "smooth" (l_s in [-3, 3]: far from the clips, for gradcheck).
    layout: "contiguous"; "transposed" (a [3, B] tensor's .t(): strides (1, B)); "slice" (columns
    1..3 of a [B, 5] tensor: row stride 5); "rows" (every other row of a [2B, 3] tensor).
    """
    x = torch.randn(b, 3, dtype=torch.float64)
    if kind == "large":
        x = x * torch.tensor([30.0, 5.0, 1.0], dtype=torch.float64)
    else:
        x = x * torch.tensor([2.0, 1.0, 1.0], dtype=torch.float64) + torch.tensor([0.0, 1.0, 0.0],
                                                                                  dtype=torch.float64)
    if kind == "clip":
        pool = torch.tensor(CLIP_LS, dtype=torch.float64)
        x[:, 2] = pool[torch.randint(0, len(pool), (b,))]
        x[: min(b, len(pool)), 2] = pool[: min(b, len(pool))]
    elif kind == "smooth":
        x[:, 2] = torch.rand(b, dtype=torch.float64) * 6 - 3
    x = x.to(dtype)
    if layout == "transposed":
        x = x.t().contiguous().t()
    elif layout == "slice":
        wide = torch.randn(b, 5, dtype=torch.float64).to(dtype)
        wide[:, 1:4] = x
        x = wide[:, 1:4]
    elif layout == "rows":
        tall = torch.randn(2 * b, 3, dtype=torch.float64).to(dtype)
        tall[::2] = x
        x = tall[::2]
    x = x.to(device)
    if layout != "contiguous" and b > 1:
        assert not x.is_contiguous()
    return x


def make_ziln_labels(b, kind="half", device="cpu"):
    """Labels [B] (value, e.g. LTV): "half" (~half zeros, positives exp(N(1, 1.5^2))); "neg"
    (zeros, positives and negatives, which count as zeros); "extreme" (EXTREME_Y: 1e-6 and 1e6);
    "zeros" (all zero: P = 0); "pos" (all positive); "int" (int64 in -2..5); "int32"; "uint8"
    (0..5); "bool"; "f32" ("half" in float32); "col" ("half" as [B, 1]); "int-col" ("int" as
    [B, 1]). Mixed kinds hold both a zero and a positive when B >= 2."""
    if kind == "zeros":
        return torch.zeros(b, dtype=torch.float64, device=device)
    if kind == "pos":
        return torch.exp(torch.randn(b, dtype=torch.float64) * 1.5 + 1).to(device)
    if kind == "extreme":
        pool = torch.tensor(EXTREME_Y, dtype=torch.float64)
        y = pool[torch.randint(0, len(pool), (b,))]
        y[: min(b, len(pool))] = pool[: min(b, len(pool))]
        return y.to(device)
    if kind in ("int", "int32", "uint8", "bool", "int-col"):
        lo = 0 if kind in ("uint8", "bool") else -2
        y = torch.randint(lo, 2 if kind == "bool" else 6, (b,))
        if b >= 2:
            y[0], y[1] = 0, 1
        dt = {"int": torch.int64, "int-col": torch.int64, "int32": torch.int32, "uint8": torch.uint8,
              "bool": torch.bool}[kind]
        y = y.to(dt).to(device)
        return y[:, None] if kind == "int-col" else y
    pos = torch.rand(b) < 0.5
    if b >= 2:
        pos[0], pos[1] = False, True
    y = torch.exp(torch.randn(b, dtype=torch.float64) * 1.5 + 1) * pos
    if kind == "neg":
        neg = (torch.rand(b) < 0.5) & ~pos
        y = torch.where(neg, -torch.exp(torch.randn(b, dtype=torch.float64)), y)
        if b >= 3:
            y[2] = -1.0
    y = y.to(device)
    if kind == "f32":
        return y.float()
    if kind == "col":
        return y[:, None]
    assert kind in ("half", "neg"), kind
    return y


# ----------------------------------------------------------------------------------------------
# the spec's formula, row by row in plain Python (independent of the package)
# ----------------------------------------------------------------------------------------------


def _float(v):
    return float(v.detach()) if isinstance(v, torch.Tensor) else float(v)


def _log(v):
    return torch.log(v) if isinstance(v, torch.Tensor) else math.log(v)


def _exp(v):
    return torch.exp(v) if isinstance(v, torch.Tensor) else math.exp(v)


def _softplus(v):
    """log(1 + e^v), written as log(1 + e^v) for v <= 0 and v + log(1 + e^-v) above."""
    if _float(v) > 0:
        return v + _log(1.0 + _exp(-v))
    return _log(1.0 + _exp(v))


def _log_sigmoid(v):
    return -_softplus(-v)


def brute_force(rows, labels, max_sigma=5.0, mu_reg=0.01, sigma_reg=0.01, class_weight=1.0,
                reg_weight=1.0):
    """Spec 7.1 for ``rows`` (a list of (l_p, mu, l_s)) and ``labels`` (a list of numbers): Python
    floats (math), or 0-d float64 tensors, so that autograd differentiates it. The clip is a Python
    branch: outside [sqrt(1e-7), max_sigma] sigma is a constant (TF's clip_by_value gradient: 0)."""
    b = len(rows)
    if b == 0:
        return NAN  # TF's mean of nothing
    cls = reg = mu2 = ls2 = 0.0
    n_pos = 0
    for (lp, mu, ls), y in zip(rows, labels):
        y = float(y)
        z = 1.0 if y > 0 else 0.0  # labels <= 0 (negatives too) are zeros
        # BCE with logits, target z: -z log sigmoid(l_p) - (1 - z) log(1 - sigmoid(l_p))
        cls = cls - z * _log_sigmoid(lp) - (1.0 - z) * _log_sigmoid(-lp)
        sp = _softplus(ls)
        sigma = SIGMA_MIN if _float(sp) < SIGMA_MIN else (max_sigma if _float(sp) > max_sigma else sp)
        if z:
            n_pos += 1
            # the lognormal log-density at y: -log y - log sigma - log(2 pi)/2 - (log y - mu)^2/(2 sigma^2)
            log_density = (-math.log(y) - _log(sigma) - 0.5 * math.log(2 * math.pi)
                           - (math.log(y) - mu) ** 2 / (2 * sigma ** 2))
            reg = reg - log_density
        mu2 = mu2 + mu * mu
        ls2 = ls2 + ls * ls  # the sigma penalty is on the raw l_s
    return (class_weight * cls / b + reg_weight * reg / (n_pos + 1e-8) + mu_reg * mu2 / b
            + sigma_reg * ls2 / b)


def _label_list(labels):
    return [float(v) for v in labels.reshape(-1).double().tolist()]


def brute_force_value_and_grad(x, labels, **kw):
    """(loss, d loss / d x) of ``brute_force``: the value on floats, the gradient by autograd on
    0-d float64 tensors (x float64 [B, 3])."""
    ys = _label_list(labels)
    value = brute_force([tuple(r) for r in x.tolist()], ys, **kw)
    leaves = [[torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in r] for r in x.tolist()]
    if not leaves:
        return value, torch.zeros(0, 3, dtype=torch.float64)
    loss = brute_force([tuple(r) for r in leaves], ys, **kw)
    flat = [v for r in leaves for v in r]
    grads = torch.autograd.grad(loss, flat, allow_unused=True)
    g = [0.0 if gi is None else float(gi) for gi in grads]
    return value, torch.tensor(g, dtype=torch.float64).reshape(-1, 3)


def finite_difference_grad(x, labels, h=1e-6, **kw):
    """Central differences of the float brute force, entry by entry (error ~ h^2 f''' + eps f / h)."""
    ys = _label_list(labels)
    g = torch.zeros_like(x)
    rows = x.tolist()
    for i in range(len(rows)):
        for j in range(3):
            up = [list(r) for r in rows]
            dn = [list(r) for r in rows]
            up[i][j] += h
            dn[i][j] -= h
            g[i, j] = (brute_force(up, ys, **kw) - brute_force(dn, ys, **kw)) / (2 * h)
    return g


# ----------------------------------------------------------------------------------------------
# call helpers
# ----------------------------------------------------------------------------------------------


def call(backend, x, y, **kw):
    return fusedloss.ziln_loss(x, y, backend=backend, **kw)


def forward_backward(backend, x, y, go=None, **kw):
    """(loss, d loss/dx . go, go); x itself is the leaf (its strides are kept)."""
    return loss_and_grad(lambda xl: call(backend, xl, y, **kw), x, go)


def assert_matches_reference(backend, x, y, **kw):
    """float64: tight against the float64 reference. Low precision: flash-attn's bound against the
    reference in the same dtype. Always: dtype and shape of loss and gradient."""
    loss, g, go = forward_backward(backend, x, y, **kw)
    assert loss.dtype == x.dtype and loss.shape == () and g.dtype == x.dtype and g.shape == x.shape
    truth, tg, _ = forward_backward("reference", x.double(), y, go.double(), **kw)
    if truth.isnan():
        assert loss.isnan(), f"expected NaN, got {loss}"
        return loss, g
    if x.dtype == torch.float64:
        torch.testing.assert_close(loss, truth, rtol=RTOL64, atol=ATOL64)
        torch.testing.assert_close(g, tg, rtol=RTOL64, atol=ATOL64)
    else:
        same, sg, _ = forward_backward("reference", x, y, go, **kw)
        lowp_bound(loss, same, truth, x.dtype, LOWP_FACTOR[x.dtype])
        lowp_bound(g, sg, tg, x.dtype, LOWP_FACTOR[x.dtype])
    return loss, g


# ----------------------------------------------------------------------------------------------
# 1. the reference against the spec's formula (row by row), finite differences, hand values
# ----------------------------------------------------------------------------------------------

SPEC_CASES = [
    dict(b=37, logits="normal", labels="half"),
    dict(b=37, logits="normal", labels="neg"),
    dict(b=37, logits="normal", labels="extreme"),
    dict(b=37, logits="normal", labels="zeros"),
    dict(b=37, logits="normal", labels="pos"),
    dict(b=37, logits="clip", labels="pos"),
    dict(b=29, logits="clip", labels="half", kw=dict(max_sigma=2.0)),
    dict(b=29, logits="clip", labels="extreme", kw=dict(max_sigma=12.0, mu_reg=0.0)),
    dict(b=29, logits="clip", labels="half", kw=dict(max_sigma=0.01)),
    dict(b=23, logits="large", labels="half"),
    dict(b=23, logits="normal", labels="int", kw=dict(max_sigma=3.0, mu_reg=0.3, sigma_reg=0.05,
                                                      class_weight=0.7, reg_weight=1.9)),
    dict(b=23, logits="normal", labels="bool", kw=dict(class_weight=0.0, reg_weight=0.0)),
    dict(b=23, logits="normal", labels="col", kw=dict(class_weight=-0.5, mu_reg=-0.2, sigma_reg=2.0)),
    dict(b=1, logits="normal", labels="pos"),
    dict(b=1, logits="normal", labels="zeros"),
    dict(b=2, logits="clip", labels="half"),
]


@pytest.mark.parametrize("cfg", SPEC_CASES, ids=param_id)
def test_reference_is_the_spec(cfg):
    # value and gradient (with a grad_output != 1) against the row-by-row spec formula
    kw = cfg.get("kw", {})
    x = make_ziln_logits(cfg["b"], cfg["logits"])
    y = make_ziln_labels(cfg["b"], cfg["labels"])
    go = torch.tensor(-1.7, dtype=torch.float64)
    loss, g, _ = forward_backward("reference", x, y, go, **kw)
    want, wg = brute_force_value_and_grad(x, y, **kw)
    assert loss.dtype == torch.float64 and loss.shape == ()
    torch.testing.assert_close(loss, torch.tensor(want, dtype=torch.float64), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(g, go * wg, rtol=1e-10, atol=1e-13)
    if cfg["logits"] == "clip":
        # the gradient through sigma is 0 outside the clip: for a row whose l_s is clipped only the
        # sigma penalty 2 sigma_reg l_s / B is left
        sp = torch.nn.functional.softplus(x[:, 2])
        out = (sp < SIGMA_MIN) | (sp > kw.get("max_sigma", 5.0))
        assert out.any() and (~out).any()
        s_reg = kw.get("sigma_reg", 0.01)
        torch.testing.assert_close(g[out, 2], go * 2 * s_reg * x[out, 2] / cfg["b"], rtol=1e-12, atol=1e-15)


def test_reference_gradient_by_finite_differences():
    # the autograd gradient of the reference against central differences of the float brute force,
    # away from the clip kinks (l_s in [-3, 3]), non-default parameters, labels with negatives
    kw = dict(max_sigma=2.5, mu_reg=0.2, sigma_reg=0.1, class_weight=0.6, reg_weight=1.4)
    x = make_ziln_logits(9, "smooth")
    y = make_ziln_labels(9, "neg")
    _, g, _ = forward_backward("reference", x, y, torch.ones((), dtype=torch.float64), **kw)
    torch.testing.assert_close(g, finite_difference_grad(x, y, **kw), rtol=1e-6, atol=1e-8)


def test_reference_hand_value_easyrec_case():
    # EasyRec's unit-test input: logits [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]], labels [[0.], [1.5]]
    # (B = 2, one positive: P = 1), default parameters.
    def sp(v):
        return math.log(1.0 + math.exp(v))

    # row 0: y = 0 -> BCE(0.1, 0) = softplus(0.1) = 0.7443967;
    # row 1: y > 0 -> BCE(0.4, 1) = softplus(-0.4) = 0.5130153
    cls = (sp(0.1) + sp(-0.4)) / 2  # = 0.6287060
    # row 1: sigma = softplus(0.6) = 1.0374880, inside [sqrt(1e-7), 5]; t = (log 1.5 - 0.5) / sigma
    sigma = sp(0.6)
    t = (math.log(1.5) - 0.5) / sigma  # = (0.4054651 - 0.5) / 1.0374880 = -0.0911190
    # -logLogNormal(1.5; 0.5, sigma) = log 1.5 + log sigma + log(2 pi) / 2 + t^2 / 2, over P + 1e-8
    #   = (0.4054651 + 0.0368024 + 0.9189385 + 0.0041513) / (1 + 1e-8) = 1.3653573
    reg = (math.log(1.5) + math.log(sigma) + 0.5 * math.log(2 * math.pi) + 0.5 * t * t) / (1 + 1e-8)
    mu_pen = 0.01 * (0.2 ** 2 + 0.5 ** 2) / 2  # mu_reg mean(mu^2) = 0.01 * 0.29 / 2 = 0.00145
    ls_pen = 0.01 * (0.3 ** 2 + 0.6 ** 2) / 2  # sigma_reg mean(l_s^2), the raw l_s: 0.01 * 0.45 / 2 = 0.00225
    want = cls + reg + mu_pen + ls_pen  # = 0.6287060 + 1.3653573 + 0.00145 + 0.00225 = 1.9977633
    assert abs(cls - 0.6287060) < 1e-7 and abs(reg - 1.3653573) < 1e-7 and abs(want - 1.9977633) < 1e-7
    logits = [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]]
    labels = [[0.0], [1.5]]
    for dtype, tol in ((torch.float64, 1e-14), (torch.float32, 1e-6)):  # EasyRec runs in float32
        x = torch.tensor(logits, dtype=dtype, requires_grad=True)
        got = fusedloss.ziln_loss(x, torch.tensor(labels, dtype=dtype), backend="reference")
        assert got.dtype == dtype
        assert abs(float(got.detach()) - want) <= tol * want, (dtype, float(got.detach()), want)
        if dtype == torch.float64:
            # the closed-form gradient (spec 7.1 differentiated by hand): d/d l_p = (sigmoid - z) / B;
            # d/d mu = -z t / sigma / (P + 1e-8) + 2 mu_reg mu / B;
            # d/d l_s = z (1 - t^2) / sigma * sigmoid(l_s) / (P + 1e-8) + 2 sigma_reg l_s / B
            (g,) = torch.autograd.grad(got, x)

            def sig(v):
                return 1.0 / (1.0 + math.exp(-v))

            want_g = [[sig(0.1) / 2, 2 * 0.01 * 0.2 / 2, 2 * 0.01 * 0.3 / 2],
                      [(sig(0.4) - 1) / 2, -t / sigma / (1 + 1e-8) + 2 * 0.01 * 0.5 / 2,
                       (1 - t * t) / sigma * sig(0.6) / (1 + 1e-8) + 2 * 0.01 * 0.6 / 2]]
            torch.testing.assert_close(g, torch.tensor(want_g, dtype=dtype), rtol=1e-13, atol=1e-15)
    # and the brute force agrees with the hand value
    assert abs(brute_force([tuple(r) for r in logits], [0.0, 1.5]) - want) < 1e-14


def test_reference_edge_values():
    # all labels <= 0 (P = 0): the lognormal term is 0 whatever reg_weight is (0 / (0 + 1e-8)); the
    # mu gradient is then only the penalty's; B = 0 is NaN (means of nothing), the gradient empty
    x = make_ziln_logits(13)
    y = torch.tensor([0.0, -1.0, 0.0, -1e6, 0.0, 0.0, -1e-6, 0.0, 0.0, -2.0, 0.0, 0.0, 0.0],
                     dtype=torch.float64)
    a = fusedloss.ziln_loss(x, y, backend="reference")
    b = fusedloss.ziln_loss(x, y, reg_weight=123.0, backend="reference")
    c = fusedloss.ziln_loss(x, y, reg_weight=0.0, backend="reference")
    assert float(a) == float(b) == float(c)
    _, g, _ = forward_backward("reference", x, y, torch.ones((), dtype=torch.float64))
    torch.testing.assert_close(g[:, 1], 2 * 0.01 * x[:, 1] / 13, rtol=1e-13, atol=0)
    torch.testing.assert_close(g[:, 2], 2 * 0.01 * x[:, 2] / 13, rtol=1e-13, atol=0)
    e = torch.empty(0, 3, dtype=torch.float64, requires_grad=True)
    loss = fusedloss.ziln_loss(e, torch.empty(0), backend="reference")
    assert loss.isnan() and math.isnan(brute_force([], []))
    loss.backward()
    assert e.grad.shape == (0, 3)


# ----------------------------------------------------------------------------------------------
# 2. every backend against the float64 reference
# ----------------------------------------------------------------------------------------------

# name -> (B, logits kind, labels kind, keywords, logits layout). Sizes: see the module docstring.
MAIN = {
    "base": (37, "normal", "half", {}, "contiguous"),
    "b1-pos": (1, "normal", "pos", {}, "contiguous"),
    "b1-zero": (1, "normal", "zeros", {}, "contiguous"),
    "b2": (2, "normal", "half", {}, "contiguous"),
    "b300": (300, "normal", "neg", {}, "contiguous"),
    "b1000": (1000, "normal", "neg", {}, "contiguous"),
    "b1100": (1100, "normal", "half", {}, "contiguous"),
    "b4099": (4099, "normal", "half", {}, "contiguous"),
    "neg-labels": (37, "normal", "neg", {}, "contiguous"),
    "extreme-labels": (37, "normal", "extreme", {}, "contiguous"),
    "all-zero": (37, "normal", "zeros", {}, "contiguous"),
    "all-pos": (37, "normal", "pos", {}, "contiguous"),
    "clip": (37, "clip", "pos", {}, "contiguous"),
    "clip-half": (64, "clip", "half", {}, "contiguous"),
    "clip-max2": (37, "clip", "half", dict(max_sigma=2.0), "contiguous"),
    "clip-max0.01": (37, "clip", "half", dict(max_sigma=0.01), "contiguous"),
    "clip-max12-extreme": (37, "clip", "extreme", dict(max_sigma=12.0), "contiguous"),
    "params": (37, "normal", "half", dict(max_sigma=3.0, mu_reg=0.3, sigma_reg=0.05, class_weight=0.7,
                                          reg_weight=1.9), "contiguous"),
    "reg-weight0": (37, "normal", "half", dict(reg_weight=0.0), "contiguous"),
    "class-weight0": (37, "normal", "half", dict(class_weight=0.0, mu_reg=0.0, sigma_reg=0.0), "contiguous"),
    "all-weights0": (37, "normal", "half", dict(class_weight=0.0, reg_weight=0.0, mu_reg=0.0,
                                                sigma_reg=0.0), "contiguous"),
    "negative-weights": (37, "normal", "neg", dict(class_weight=-0.5, mu_reg=-0.2, sigma_reg=2.0),
                         "contiguous"),
    "int-params": (37, "normal", "half", dict(max_sigma=4, mu_reg=0, class_weight=2), "contiguous"),
    "large-logits": (37, "large", "half", {}, "contiguous"),
    "labels-col": (37, "normal", "col", {}, "contiguous"),
    "labels-int64": (37, "normal", "int", {}, "contiguous"),
    "labels-int-col": (37, "normal", "int-col", {}, "contiguous"),
    "labels-int32": (37, "normal", "int32", {}, "contiguous"),
    "labels-uint8": (37, "normal", "uint8", {}, "contiguous"),
    "labels-bool": (37, "normal", "bool", {}, "contiguous"),
    "labels-f32": (37, "normal", "f32", {}, "contiguous"),
    "transposed": (37, "normal", "half", {}, "transposed"),
    "slice": (37, "clip", "neg", dict(max_sigma=3.0), "slice"),
    "rows": (1000, "normal", "half", {}, "rows"),
}
INTERP = {
    "base": (37, "normal", "half", {}, "contiguous"),
    "b1-pos": (1, "normal", "pos", {}, "contiguous"),
    "b2": (2, "normal", "half", {}, "contiguous"),
    "b300": (300, "normal", "neg", {}, "contiguous"),
    "b1100": (1100, "normal", "half", {}, "contiguous"),
    "extreme-labels": (23, "normal", "extreme", {}, "contiguous"),
    "all-zero": (13, "normal", "zeros", {}, "contiguous"),
    "all-pos": (13, "normal", "pos", {}, "contiguous"),
    "clip": (37, "clip", "half", {}, "contiguous"),
    "clip-max2": (23, "clip", "extreme", dict(max_sigma=2.0), "contiguous"),
    "params": (23, "normal", "neg", dict(max_sigma=3.0, mu_reg=0.3, sigma_reg=0.05, class_weight=0.7,
                                         reg_weight=1.9), "contiguous"),
    "reg-weight0": (13, "normal", "half", dict(reg_weight=0.0, class_weight=0.0), "contiguous"),
    "large-logits": (13, "large", "half", {}, "contiguous"),
    "labels-int-col": (13, "normal", "int-col", {}, "contiguous"),
    "labels-bool": (13, "normal", "bool", {}, "contiguous"),
    "transposed": (23, "normal", "col", {}, "transposed"),
    "slice": (23, "clip", "neg", {}, "slice"),
}


def _case(cfg_name, device, dtype, interp):
    b, lkind, ykind, kw, layout = (INTERP if interp else MAIN)[cfg_name]
    return make_ziln_logits(b, lkind, dtype, device, layout), make_ziln_labels(b, ykind, device), kw


@pytest.mark.parametrize("device, backend, cfg_name", backend_cases(list(MAIN), list(INTERP), FUSED))
def test_matches_reference(device, backend, cfg_name):
    x, y, kw = _case(cfg_name, device, torch.float64, interpreted(device, backend))
    loss, g = assert_matches_reference(backend, x, y, **kw)
    assert torch.isfinite(loss) and torch.isfinite(g).all()
    if "weights0" not in cfg_name:
        assert g.abs().sum() > 0


# "clip" puts sigma at sqrt(1e-7) under positive labels, a loss of ~1e7 that float16
# cannot hold (inf where the truth is finite): float32 and bfloat16 only (LOWP_CASES)
LOWP_NAMES = ["base", "b1100", "b4099", "neg-labels", "extreme-labels", "all-zero", "all-pos", "params",
              "large-logits", "labels-int64", "transposed", "clip", "b1-pos"]
LOWP_INTERP = ["base", "b1100", "extreme-labels", "params", "clip", "transposed"]
LOWP_CASES = [(d, b, n, dtype) for d, b, n in backend_cases(LOWP_NAMES, LOWP_INTERP, FUSED) for dtype in LOWP
              if not (n == "clip" and dtype == torch.float16)]


@pytest.mark.parametrize("device, backend, cfg_name, dtype", LOWP_CASES, ids=str)
def test_low_precision(device, backend, cfg_name, dtype):
    x, y, kw = _case(cfg_name, device, dtype, interpreted(device, backend))
    loss, g = assert_matches_reference(backend, x, y, **kw)
    assert torch.isfinite(loss) and torch.isfinite(g).all()


# ----------------------------------------------------------------------------------------------
# 3. edges: empty, layouts, grad_output, no_grad, canaries, one op per call, threads
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("device, backend", ALL)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=param_id)
def test_empty_is_nan(device, backend, dtype):
    # B = 0: NaN (EasyRec's means over no row), in the logits' dtype; backward runs and returns an
    # empty [0, 3] gradient; labels [0] or [0, 1], float or int
    for y in (torch.empty(0, device=device), torch.empty(0, 1, dtype=torch.int64, device=device)):
        xl = torch.empty(0, 3, dtype=dtype, device=device, requires_grad=True)
        loss = call(backend, xl, y, max_sigma=2.0, reg_weight=0.5)
        assert loss.shape == () and loss.dtype == dtype and loss.isnan()
        loss.backward(torch.tensor(1.3, dtype=dtype, device=device))
        assert xl.grad is not None and xl.grad.shape == (0, 3)
        with torch.no_grad():
            assert call(backend, xl, y).isnan()


@pytest.mark.parametrize("device, backend", FUSED)
def test_non_contiguous_is_the_contiguous_call(device, backend):
    # logits transposed ([3, B].t()), a column slice of [B, 5], every other row; labels a strided
    # column of a matrix and a non-contiguous [B, 1]: read by logical position, bitwise equal to the
    # contiguous call (the op takes contiguous logits: the copy must be the only difference)
    b = 37 if not interpreted(device, backend) else 13
    one = torch.ones((), dtype=torch.float64, device=device)
    y = make_ziln_labels(3 * b, "neg", device).reshape(b, 3)[:, 1]
    y_col = make_ziln_labels(2 * b, "half", device).reshape(b, 2)[:, :1]
    assert not y.is_contiguous() and not y_col.is_contiguous()
    for layout in ("transposed", "slice", "rows"):
        x = make_ziln_logits(b, "clip", torch.float64, device, layout)
        for yy in (y, y_col):
            assert_matches_reference(backend, x, yy, max_sigma=3.0)
            a = forward_backward(backend, x, yy, one, max_sigma=3.0)
            c = forward_backward(backend, x.contiguous(), yy.contiguous(), one, max_sigma=3.0)
            assert torch.equal(a[0], c[0]) and torch.equal(a[1], c[1]), layout


@pytest.mark.parametrize("device, backend", FUSED)
def test_grad_output_and_no_grad(device, backend):
    # d(c L)/dx = c dL/dx (the registered backward scales by grad_output), also through a larger
    # graph; under no_grad or for logits that do not require grad, the same loss without a graph
    b = 37 if not interpreted(device, backend) else 13
    kw = dict(max_sigma=3.0, mu_reg=0.1, class_weight=0.8)
    for dtype in (torch.float64, torch.float32):
        tight = 1e-14 if dtype == torch.float64 else 1e-6
        x, y = make_ziln_logits(b, "normal", dtype, device), make_ziln_labels(b, "neg", device)
        _, g1, _ = forward_backward(backend, x, y, torch.ones((), dtype=dtype, device=device), **kw)
        _, gc, _ = forward_backward(backend, x, y, torch.tensor(-2.5, dtype=dtype, device=device), **kw)
        torch.testing.assert_close(gc, -2.5 * g1, rtol=tight, atol=0)
        xl = x.clone().requires_grad_()
        loss = call(backend, xl, y, **kw)
        (loss * 3 + loss ** 2).backward()
        torch.testing.assert_close(xl.grad, (3 + 2 * loss.detach()) * g1, rtol=100 * tight, atol=1e-15)
        plain = call(backend, x, y, **kw)
        with torch.no_grad():
            nograd = call(backend, x.clone().requires_grad_(), y, **kw)
        assert not plain.requires_grad and not nograd.requires_grad
        # the same value (bitwise: test_no_grad_loss_is_bitwise_the_grad_loss)
        torch.testing.assert_close(plain, loss.detach(), rtol=4 * tight, atol=0)
        torch.testing.assert_close(nograd, plain, rtol=0, atol=0)


@pytest.mark.parametrize("device, backend", FUSED)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=param_id)
def test_no_grad_loss_is_bitwise_the_grad_loss(device, backend, dtype):
    # a forward without the gradient (compute_grad=False: no_grad, or logits without requires_grad)
    # returns bitwise the loss of the forward with it, as the other families do: the loss must not
    # depend on whether the gradient is stored (same per-row math, same summation order)
    sizes = (2, 37, 300, 4099) if not interpreted(device, backend) else (2, 37)
    for b in sizes:
        for kind in ("normal", "clip"):
            x, y = make_ziln_logits(b, kind, dtype, device), make_ziln_labels(b, "neg", device)
            with_grad = call(backend, x.clone().requires_grad_(), y)
            without = call(backend, x, y)
            assert torch.equal(with_grad.detach(), without), (b, kind, float(with_grad.detach()),
                                                              float(without))


@pytest.mark.parametrize("device, backend", FUSED)
def test_double_backward_is_right_or_raises(device, backend):
    x, y = make_ziln_logits(9, "smooth", device=device), make_ziln_labels(9, "half", device)
    w = torch.arange(27, dtype=torch.float64, device=device).reshape(9, 3)
    xl = x.clone().requires_grad_()
    try:
        (g,) = torch.autograd.grad(call(backend, xl, y), xl, create_graph=True)
        (h,) = torch.autograd.grad((g * w).sum(), xl)
    except RuntimeError:
        return  # refusing double backward is acceptable (the op's grad is marked non-differentiable)
    xr = x.clone().requires_grad_()
    (gr,) = torch.autograd.grad(call("reference", xr, y), xr, create_graph=True)
    (hr,) = torch.autograd.grad((gr * w).sum(), xr)
    torch.testing.assert_close(h, hr, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("device, backend", FUSED)
def test_canaries(device, backend):
    # logits and labels (float32: the op's label dtype, so no copy is made) inside NaN-filled
    # buffers: an out-of-bounds read that reaches the result leaks NaN, a stray write changes a margin
    b = 37 if not interpreted(device, backend) else 17
    x, check_x = canary(make_ziln_logits(b, "clip", torch.float32, device))
    y, check_y = canary(make_ziln_labels(b, "neg", device).float())
    loss, g = assert_matches_reference(backend, x, y, max_sigma=3.0)
    assert torch.isfinite(loss) and torch.isfinite(g).all()
    check_x()
    check_y()


@pytest.mark.parametrize("device, backend", [(d, b) for d, b in ALL] + [(d, "auto") for d in DEVICES])
def test_one_fused_op_per_call(device, backend):
    # a fused backend is one call of its op (loss and gradient in one pass; backward dispatches no
    # other fusedloss op); the reference none; auto on CPU tensors is the C++ op, never the interpreter
    x, y = make_ziln_logits(13, device=device).requires_grad_(), make_ziln_labels(13, "half", device)

    def run():
        call(backend, x, y).backward()

    ops = fusedloss_ops_called(run)
    if backend == "reference":
        assert ops == []
    elif backend == "auto":
        assert ops == ["fusedloss::ziln_fwd"]
    else:
        assert ops == [f"fusedloss::{OP_OF_BACKEND[backend]}"]


@pytest.mark.parametrize("device, backend", FUSED)
def test_nan_labels_propagate_as_in_easyrec(device, backend):
    # EasyRec evaluates the lognormal at a NaN label (positive * logprob = 0 * NaN): the loss is
    # NaN, the NaN rows' mu and l_s derivatives too; every other gradient entry is finite and
    # matches the reference's.
    x, y = make_ziln_logits(13, device=device), make_ziln_labels(13, "half", device)
    y_nan = y.clone()
    y_nan[[0, 5]] = NAN  # y[0] is a zero label, y[5] random
    one = torch.ones((), dtype=torch.float64, device=device)
    got, g, _ = forward_backward(backend, x, y_nan, one)
    want, wg, _ = forward_backward("reference", x, y_nan, one)
    assert got.isnan() and want.isnan()
    rows = ~y_nan.isnan()
    assert g[~rows][:, 1].isnan().all() and torch.isfinite(g[rows]).all()
    torch.testing.assert_close(g[rows], wg[rows], rtol=RTOL64, atol=ATOL64)
    torch.testing.assert_close(g[~rows][:, 0], wg[~rows][:, 0], rtol=RTOL64, atol=ATOL64)


@pytest.mark.parametrize("device", DEVICES)
def test_auto_is_the_native_backend(device):
    x, y = make_ziln_logits(37, "normal", torch.float32, device), make_ziln_labels(37, "neg", device)
    one = torch.ones((), device=device)
    a, ga, _ = forward_backward("auto", x, y, one)
    n, gn, _ = forward_backward(device, x, y, one)
    assert torch.equal(a, n) and torch.equal(ga, gn)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=param_id)
def test_cpu_large_batch_and_thread_count(dtype):
    # B = 200,003 rows: chunks across threads. Against the float64 reference, and bitwise equal on
    # one thread and on the default count (the four sums go over fixed blocks, not per thread)
    b = 200_003
    x, y = make_ziln_logits(b, "clip", dtype), make_ziln_labels(b, "neg")
    kw = dict(max_sigma=3.0, mu_reg=0.05)
    loss, g = assert_matches_reference("cpu", x, y, **kw)
    go = torch.ones((), dtype=dtype)
    ref = forward_backward("cpu", x, y, go, **kw)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = forward_backward("cpu", x, y, go, **kw)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one[0], ref[0]) and torch.equal(one[1], ref[1])


# ----------------------------------------------------------------------------------------------
# 4. gradcheck (float64, away from the clip kinks)
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("device, backend", ALL)
@pytest.mark.parametrize("kw", [{}, dict(max_sigma=2.0, mu_reg=0.3, sigma_reg=0.2, class_weight=0.6,
                                         reg_weight=1.7)], ids=param_id)
def test_gradcheck(device, backend, kw):
    # B = 7, l_s in [-3, 3] (sigma inside the clip, or clipped far from the kink at max_sigma = 2:
    # softplus(3) = 3.05); labels with zeros and negatives
    x = make_ziln_logits(7, "smooth", device=device)
    x[0, 2], x[1, 2] = 0.0, 2.9  # one at sigma = log 2, one clipped at max_sigma = 2
    y = make_ziln_labels(7, "neg", device)
    xl = x.requires_grad_()
    # the interpreter: fast mode (one random direction: 2 launches instead of 2 per element)
    assert torch.autograd.gradcheck(lambda v: call(backend, v, y, **kw), (xl,), eps=1e-6, atol=1e-7,
                                    fast_mode=interpreted(device, backend))


# ----------------------------------------------------------------------------------------------
# 5. raw ops: documented outputs, opcheck
# ----------------------------------------------------------------------------------------------


def _op(backend):
    return getattr(torch.ops.fusedloss, OP_OF_BACKEND[backend]).default


def test_ziln_op_has_a_cpu_kernel():
    # The CI always builds the C++ extension: a missing CPU kernel is a failure, never a skip.
    assert torch._C._dispatch_has_kernel_for_dispatch_key("fusedloss::ziln_fwd", "CPU")


def raw_args(device, dtype, *, b=11, requires_grad=False, compute_grad=True, logits=None, labels="neg",
             params=(3.0, 0.7, 1.9, 0.3, 0.05)):
    """The op's arguments as run_ziln prepares them: contiguous logits [B, 3] in ``dtype``, labels
    [B] in the accumulation dtype (float32, float64 for float64), then (max_sigma, class_weight,
    reg_weight, mu_reg, sigma_reg, compute_grad): note the op's order differs from the public one.
    Logits "clip" by default, "normal" for float16 (a gradient of ~1e7 at sigma = sqrt(1e-7)
    overflows it)."""
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    if logits is None:
        logits = "normal" if dtype == torch.float16 else "clip"
    x = make_ziln_logits(b, logits, dtype, device).requires_grad_(requires_grad)
    y = make_ziln_labels(b, labels, device).to(acc)
    return (x, y) + tuple(params) + (compute_grad,)


@pytest.mark.parametrize("device, backend", FUSED)
@pytest.mark.parametrize("b", [0, 1, 37])
def test_raw_op_outputs(device, backend, b):
    # (loss, grad, scale): 0-d loss in the logits' dtype; grad [B, 3] = d loss / d logits, final
    # (already divided by B and P + 1e-8); scale 1, 0-d, in the accumulation dtype; grad empty
    # without compute_grad
    args = raw_args(device, torch.float64, b=b)
    x, y = args[:2]
    max_sigma, cw, rw, mu_reg, sigma_reg = args[2:7]
    loss, grad, scale = _op(backend)(*args)
    assert loss.shape == () and scale.shape == () and grad.shape == (b, 3)
    assert loss.dtype == grad.dtype == scale.dtype == torch.float64 and float(scale) == 1.0
    xr = x.detach().clone().requires_grad_()
    want = ziln_loss_reference(xr, y, max_sigma=max_sigma, class_weight=cw, reg_weight=rw,
                               mu_reg=mu_reg, sigma_reg=sigma_reg)
    (wg,) = torch.autograd.grad(want, xr)
    torch.testing.assert_close(loss, want.detach(), rtol=RTOL64, atol=ATOL64, equal_nan=True)
    torch.testing.assert_close(grad, wg, rtol=RTOL64, atol=ATOL64)
    l2, g2, s2 = _op(backend)(*args[:-1], False)
    assert g2.numel() == 0 and torch.equal(s2, scale)
    # the same loss (bitwise: test_no_grad_loss_is_bitwise_the_grad_loss)
    torch.testing.assert_close(l2, loss, rtol=1e-14, atol=0, equal_nan=True)
    # low precision logits: loss and grad in their dtype, scale in float32
    for dtype in (torch.float16, torch.bfloat16, torch.float32):
        lo, go, so = _op(backend)(*raw_args(device, dtype, b=b))
        assert lo.dtype == go.dtype == dtype and so.dtype == torch.float32 and go.shape == (b, 3)


def _opcheck_cases():
    out = []
    for device, backend in FUSED:
        for dtype in (torch.float32, torch.float64, torch.float16):
            for rg, cg in ((True, True), (False, False), (False, True)):
                out.append((device, backend, dtype, rg, cg))
    return out


@pytest.mark.parametrize("device, backend, dtype, requires_grad, compute_grad", _opcheck_cases(), ids=str)
def test_opcheck(device, backend, dtype, requires_grad, compute_grad):
    torch.library.opcheck(_op(backend), raw_args(device, dtype, requires_grad=requires_grad,
                                                 compute_grad=compute_grad))


@pytest.mark.parametrize("device, backend", FUSED)
def test_opcheck_empty_and_one_row(device, backend):
    op = _op(backend)
    torch.library.opcheck(op, raw_args(device, torch.float32, b=1, requires_grad=True, labels="pos"))
    torch.library.opcheck(op, raw_args(device, torch.float64, b=5, requires_grad=True, labels="zeros",
                                       params=(5.0, 1.0, 1.0, 0.01, 0.01)))
    # B = 0: the loss is NaN, and opcheck's eager-vs-AOT comparison treats NaN != NaN: the other three
    # utils here, and the NaN and the empty gradient checked directly
    for cg in (True, False):
        args = raw_args(device, torch.float32, b=0, requires_grad=cg, compute_grad=cg)
        torch.library.opcheck(op, args,
                              test_utils=("test_schema", "test_autograd_registration", "test_faketensor"))
        loss, grad, scale = op(*args)
        assert loss.isnan() and grad.shape == ((0, 3) if cg else (0,)) and float(scale) == 1.0


@pytest.mark.parametrize("device, backend", FUSED)
def test_compute_grad_false_with_requires_grad_raises(device, backend):
    args = raw_args(device, torch.float32, requires_grad=True, compute_grad=False)
    with pytest.raises(RuntimeError, match="compute_grad=False"):
        _op(backend)(*args)


# ----------------------------------------------------------------------------------------------
# 6. torch.compile(fullgraph=True)
# ----------------------------------------------------------------------------------------------


def _compiled_fn(backend):
    def f(x, y):
        return fusedloss.ziln_loss(x, y, 3.0, 0.05, 0.02, class_weight=0.8, reg_weight=1.3, backend=backend)

    return f


@pytest.mark.parametrize("device, backend", FUSED)
def test_compile_fullgraph(device, backend):
    # validation, backend choice and the fused op trace through Inductor without a graph break;
    # forward and backward against the float64 reference, twice (fresh values of the same shapes)
    torch._dynamo.reset()
    compiled = torch.compile(_compiled_fn(backend), fullgraph=True)
    b = 37
    for _ in range(2):
        x, y = make_ziln_logits(b, "clip", torch.float32, device), make_ziln_labels(b, "neg", device)
        xl = x.clone().requires_grad_()
        loss = compiled(xl, y)
        go = torch.rand((), device=device) + 0.5
        loss.backward(go)
        xr = x.double().requires_grad_()
        expected = _compiled_fn("reference")(xr, y)
        expected.backward(go.double())
        assert loss.dtype == torch.float32 and loss.shape == ()
        torch.testing.assert_close(loss.detach(), expected.detach().float(), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(xl.grad, xr.grad.float(), rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------------------------
# 7. bad input: clear errors naming the argument, before any backend
# ----------------------------------------------------------------------------------------------


def _bad_cases():
    b = 6
    x = torch.randn(b, 3)
    y = torch.rand(b)
    f = fusedloss.ziln_loss
    cases = []

    def c(name, thunk, exc, match):
        cases.append((name, thunk, exc, match))

    c("logits-2col", lambda: f(torch.randn(b, 2), y), ValueError, "logits")
    c("logits-4col", lambda: f(torch.randn(b, 4), y), ValueError, "logits")
    c("logits-1d", lambda: f(torch.randn(b), y), ValueError, "logits")
    c("logits-3d", lambda: f(x[None], y), ValueError, "logits")
    c("logits-int", lambda: f(x.long(), y), TypeError, "logits")
    c("logits-bool", lambda: f(x > 0, y), TypeError, "logits")
    c("logits-complex", lambda: f(x.to(torch.complex64), y), TypeError, "logits")
    c("logits-list", lambda: f(x.tolist(), y), TypeError, "logits")
    c("labels-length", lambda: f(x, y[:5]), ValueError, "labels")
    c("labels-longer", lambda: f(x, torch.rand(b + 1)), ValueError, "labels")
    c("labels-2col", lambda: f(x, torch.rand(b, 2)), ValueError, "labels")
    c("labels-row", lambda: f(x, y[None]), ValueError, "labels")
    c("labels-0d", lambda: f(x[:1], y[0]), ValueError, "labels")
    c("labels-complex", lambda: f(x, y.to(torch.complex64)), TypeError, "labels")
    c("labels-list", lambda: f(x, y.tolist()), TypeError, "labels")
    c("labels-meta", lambda: f(x, y.to("meta")), ValueError, "labels")
    for name in ("max_sigma", "mu_reg", "sigma_reg", "class_weight", "reg_weight"):
        c(f"{name}-nan", lambda n=name: f(x, y, **{n: NAN}), ValueError, name)
        c(f"{name}-inf", lambda n=name: f(x, y, **{n: INF}), ValueError, name)
        c(f"{name}-neg-inf", lambda n=name: f(x, y, **{n: -INF}), ValueError, name)
        c(f"{name}-str", lambda n=name: f(x, y, **{n: "0.5"}), TypeError, name)
        c(f"{name}-none", lambda n=name: f(x, y, **{n: None}), TypeError, name)
        c(f"{name}-bool", lambda n=name: f(x, y, **{n: True}), TypeError, name)
        c(f"{name}-tensor", lambda n=name: f(x, y, **{n: torch.tensor(1.0)}), TypeError, name)
    c("max_sigma-sigma-min", lambda: f(x, y, max_sigma=SIGMA_MIN), ValueError, "max_sigma")
    c("max_sigma-below-sigma-min", lambda: f(x, y, max_sigma=1e-4), ValueError, "max_sigma")
    c("max_sigma-0", lambda: f(x, y, max_sigma=0.0), ValueError, "max_sigma")
    c("max_sigma-neg", lambda: f(x, y, max_sigma=-1.0), ValueError, "max_sigma")
    c("backend-unknown", lambda: f(x, y, backend="fast"), ValueError, "backend")
    c("backend-none", lambda: f(x, y, backend=None), ValueError, "backend")
    c("backend-cuda-on-cpu", lambda: f(x, y, backend="cuda"), ValueError, "cuda")
    c("module-max_sigma", lambda: fl_nn.ZILNLoss(max_sigma=0.0)(x, y), ValueError, "max_sigma")
    c("module-reg_weight", lambda: fl_nn.ZILNLoss(reg_weight=NAN)(x, y), ValueError, "reg_weight")
    c("module-backend", lambda: fl_nn.ZILNLoss(backend="gpu")(x, y), ValueError, "backend")
    return cases


@pytest.mark.parametrize("case", _bad_cases(), ids=lambda c: c[0])
def test_bad_input(case):
    _, thunk, exc, match = case
    with pytest.raises(exc, match=match):
        thunk()


@pytest.mark.parametrize("backend", ["reference", "cpu", "triton"])
def test_bad_input_on_every_backend(backend):
    # the checks run before every backend: the kernels never see bad input
    x, y = torch.randn(6, 3), torch.rand(6)
    with pytest.raises(ValueError, match="logits"):
        fusedloss.ziln_loss(torch.randn(6, 2), y, backend=backend)
    with pytest.raises(ValueError, match="labels"):
        fusedloss.ziln_loss(x, y[:4], backend=backend)
    with pytest.raises(ValueError, match="max_sigma"):
        fusedloss.ziln_loss(x, y, max_sigma=1e-4, backend=backend)
    with pytest.raises(TypeError, match="labels"):
        fusedloss.ziln_loss(x, y.to(torch.complex128), backend=backend)


def test_max_sigma_just_above_sigma_min_is_accepted():
    # the bound is open: the smallest max_sigma above sqrt(1e-7) runs (every sigma is then ~sqrt(1e-7))
    x, y = make_ziln_logits(13), make_ziln_labels(13, "half")
    ms = math.nextafter(SIGMA_MIN, INF)
    for backend in backends_for("cpu"):
        torch.testing.assert_close(call(backend, x, y, max_sigma=ms), call("reference", x, y, max_sigma=ms),
                                   rtol=RTOL64, atol=ATOL64)


@NEEDS_CUDA
def test_cuda_backend_and_other_device_refused():
    # the cuda backend against the float64 reference, and mixed devices refused naming the labels
    x, y = make_ziln_logits(4099, "clip", device="cuda"), make_ziln_labels(4099, "neg", "cuda")
    assert_matches_reference("cuda", x, y, max_sigma=3.0)
    with pytest.raises(ValueError, match="labels"):
        fusedloss.ziln_loss(x, y.cpu())
    with pytest.raises(ValueError, match="labels"):
        fusedloss.ziln_loss(x.cpu(), y)
    with pytest.raises(ValueError, match="cpu"):
        fusedloss.ziln_loss(x, y, backend="cpu")


# ----------------------------------------------------------------------------------------------
# 8. nn.ZILNLoss, positional order
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("device, backend", [(d, b) for d in DEVICES for b in ["auto"] + backends_for(d)])
def test_module_forwards_its_arguments(device, backend):
    # all labels positive and l_s on both clip ends, so that each parameter changes the loss
    b = 13 if interpreted(device, backend) else 37
    x, y = make_ziln_logits(b, "clip", device=device), make_ziln_labels(b, "pos", device)
    kw = dict(max_sigma=3.0, mu_reg=0.3, sigma_reg=0.05, class_weight=0.7, reg_weight=1.9)
    m = fl_nn.ZILNLoss(**kw, backend=backend)
    assert isinstance(m, torch.nn.Module) and list(m.parameters()) == []
    got = m(x, y)
    assert torch.equal(got, fusedloss.ziln_loss(x, y, **kw, backend=backend))
    torch.testing.assert_close(got, call("reference", x, y, **kw), rtol=RTOL64, atol=ATOL64)
    # positional order: (max_sigma, mu_reg, sigma_reg, class_weight, reg_weight), as EasyRec's
    assert torch.equal(fl_nn.ZILNLoss(3.0, 0.3, 0.05, 0.7, 1.9, backend=backend)(x, y), got)
    assert torch.equal(fusedloss.ziln_loss(x, y, 3.0, 0.3, 0.05, 0.7, 1.9, backend=backend), got)
    # defaults: EasyRec's (5, 0.01, 0.01, 1, 1)
    default = fl_nn.ZILNLoss(backend=backend)
    assert (default.max_sigma, default.mu_reg, default.sigma_reg, default.class_weight,
            default.reg_weight) == tuple(DEFAULTS.values())
    assert torch.equal(default(x, y), fusedloss.ziln_loss(x, y, **DEFAULTS, backend=backend))
    # every parameter matters (none silently dropped or swapped)
    base = call(backend, x, y, **kw)
    for name in kw:
        moved = dict(kw, **{name: kw[name] * 1.5})
        assert float(fl_nn.ZILNLoss(**moved, backend=backend)(x, y)) != float(base), name
    xl = x.clone().requires_grad_()
    m(xl, y).backward()
    assert xl.grad is not None and xl.grad.shape == x.shape


def test_public_exports():
    assert fusedloss.ziln_loss is fusedloss.functional.ziln_loss
    assert "ziln_loss" in fusedloss.__all__
    assert fl_nn.ZILNLoss.__doc__ and fusedloss.ziln_loss.__doc__
