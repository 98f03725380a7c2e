"""Binary sigmoid family: sigmoid_focal_loss, binary_focal_loss, binary_cross_entropy_with_logits.

Truth: ``fusedloss.reference`` run in float64 on fresh random inputs (spec sections 1.1-1.3, 2.5, 11).
The large parameter crosses run on the C++ ``cpu`` backend (and on ``cuda``/``triton`` when a GPU is
present); the Triton interpreter (~2-3 ms per program) gets a representative subset.

Sizes and the code path each one hits (Triton BLOCK is 1024 below 2**20 elements, 4096 above):
    (0,)          empty: no launch; SBNZ -> 0, mean -> NaN, OHEM -> NaN
    (1,)          one element, one program with 1023 masked lanes
    (1023,)       one program, one masked lane (block - 1)
    (1025,)       two programs, the second with a single live lane (block + 1)
    (4097,)       five programs, multi-block partial sums with a 1-element tail; CPU: 4 tiles + 1
    (16385,)      CPU: two reduction chunks (kChunk 16384), the second of one element; 17 programs
    (37, 19)      2-D: [C] / [B, 1] / full weight layouts, odd extents in both dims
    (2, 3, 5)     3-D: middle-dim and split broadcast weights (materialised layout)
    (2**20 + 3,)  large-launch config (BLOCK 4096, 8 warps); 65 CPU chunks across threads
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import (
    DEVICES,
    EPS,
    canary,
    fused_backends_for,
    lowp_bound,
    make_inputs,
    make_logits,
    make_weight,
)

import fusedloss
from fusedloss import nn as fl_nn
from fusedloss.reference import focal as ref

FUNCS = ("sigmoid_focal", "binary_focal", "bce")
SHAPES = [(0,), (1,), (1023,), (1025,), (4097,), (16385,), (37, 19), (2, 3, 5)]
LOWP = [torch.float32, torch.float16, torch.bfloat16]


# ----------------------------------------------------------------------------------------------
# call helpers
# ----------------------------------------------------------------------------------------------


def call(fn, x, t, backend, **kw):
    if fn == "sigmoid_focal":
        return fusedloss.sigmoid_focal_loss(x, t, backend=backend, **kw)
    if fn == "binary_focal":
        return fusedloss.binary_focal_loss(x, t, backend=backend, **kw)
    return fusedloss.binary_cross_entropy_with_logits(x, t, backend=backend, **kw)


def call_ref(fn, x, t, **kw):
    if fn == "sigmoid_focal":
        return ref.sigmoid_focal_loss_reference(x, t, **kw)
    if fn == "binary_focal":
        return ref.binary_focal_loss_reference(x, t, **kw)
    return ref.binary_cross_entropy_with_logits_reference(x, t, **kw)


DEFAULT_REDUCTION = {"sigmoid_focal": "none", "bce": "mean"}


def is_reduced(fn, kw):
    return fn == "binary_focal" or kw.get("reduction", DEFAULT_REDUCTION[fn]) != "none"


def _grad_out(loss, kind):
    if kind == "ones":
        return torch.ones_like(loss)
    return torch.randn(loss.shape, dtype=torch.float64).to(loss.device, loss.dtype)


def forward_backward(fn, backend, x, t, kw, grad_kind="random", go=None):
    """(loss, grad wrt x, grad_output) of the public function on a fresh leaf copy of x."""
    xl = x.detach().clone().requires_grad_()
    loss = call(fn, xl, t, backend, **kw)
    go = _grad_out(loss, grad_kind) if go is None else go
    (g,) = torch.autograd.grad(loss, xl, go)
    return loss.detach(), g, go


def reference_fb(fn, x, t, kw, go, dtype=torch.float64):
    """(loss, grad) of the reference on x cast to ``dtype``. For the float64 truth, float targets and
    weights are cast too (exactly); for a same-dtype run they stay as given (the reference casts
    them to its own compute dtype)."""

    def cast(v):
        if dtype == torch.float64 and isinstance(v, torch.Tensor) and v.is_floating_point():
            return v.double()
        return v

    xl = x.detach().to(dtype).requires_grad_()
    loss = call_ref(fn, xl, cast(t), **{k: cast(v) for k, v in kw.items()})
    if not loss.requires_grad:  # the reference's OHEM NaN (no survivor) is a constant
        return loss, torch.zeros_like(xl)
    (g,) = torch.autograd.grad(loss, xl, go.to(dtype), allow_unused=True)
    return loss.detach(), torch.zeros_like(xl) if g is None else g


def assert_matches_reference(fn, backend, x, t, kw, grad_kind="random"):
    """fp64 input: tight comparison with the fp64 reference. Low precision: flash-attn's bound
    against the reference run in the same dtype. Always: dtype and shape of loss and grad."""
    loss, g, go = forward_backward(fn, backend, x, t, kw, grad_kind)
    reduced = is_reduced(fn, kw)
    assert loss.dtype == x.dtype and g.dtype == x.dtype
    assert loss.shape == (() if reduced else x.shape)
    assert g.shape == x.shape
    ref_loss, ref_g = reference_fb(fn, x, t, kw, go.double())
    if reduced and ref_loss.isnan():
        # OHEM with no survivor (or the mean of nothing): the loss must be NaN; the gradient of a
        # NaN loss is unspecified, so it is not compared.
        assert loss.isnan(), f"expected NaN, got {loss}"
        return loss, g
    if x.dtype == torch.float64:
        torch.testing.assert_close(loss, ref_loss, rtol=1e-10, atol=1e-12, equal_nan=True)
        torch.testing.assert_close(g, ref_g, rtol=1e-10, atol=1e-12, equal_nan=True)
    else:
        same_loss, same_g = reference_fb(fn, x, t, kw, go, dtype=x.dtype)
        factor = 2.0 if x.dtype != torch.float32 else (16.0 if reduced else 8.0)
        lowp_bound(loss, same_loss, ref_loss, x.dtype, factor)
        lowp_bound(g, same_g, ref_g, x.dtype, 8.0 if x.dtype == torch.float32 else 2.0)
    return loss, g


def shape_id(v):
    """Readable ids: (37, 19) -> "37x19"; other values keep pytest's default."""
    if isinstance(v, tuple) and all(isinstance(d, int) for d in v):
        return "x".join(map(str, v))
    return None


def _cases(full, subset):
    """(device, backend, *case): the full list on compiled backends, ``subset`` on the interpreter."""
    out = []
    for device in DEVICES:
        for backend in fused_backends_for(device):
            cases = subset if (backend == "triton" and device == "cpu") else full
            out += [(device, backend) + tuple(c) for c in cases]
    return out


# ----------------------------------------------------------------------------------------------
# sigmoid_focal_loss (torchvision semantics)
# ----------------------------------------------------------------------------------------------

_SF_FULL = [
    (shape, alpha, gamma, red, tk)
    for shape in SHAPES
    for alpha in (0.25, 1.0, 0.0, -1.0)
    for gamma in (0.0, 0.5, 1.0, 2.0, 3.0)  # 0/1/2 are special-cased in the kernels, 0.5/3 take pow
    for red in ("none", "mean", "sum")
    for tk in ("float", "soft")
]
_SF_SUB = [(shape, 0.25, 2.0, red, "float") for shape in SHAPES for red in ("none", "mean", "sum")] + [
    ((37, 19), a, g, "mean", "soft") for a in (0.25, 1.0, -1.0) for g in (0.0, 0.5, 1.0, 3.0)
]


@pytest.mark.parametrize(
    "device, backend, shape, alpha, gamma, reduction, target_kind", _cases(_SF_FULL, _SF_SUB), ids=shape_id
)
def test_sigmoid_focal_matches_reference(device, backend, shape, alpha, gamma, reduction, target_kind):
    x, t = make_inputs(shape, torch.float64, device, target_kind)
    loss, g = assert_matches_reference(
        "sigmoid_focal", backend, x, t, dict(alpha=alpha, gamma=gamma, reduction=reduction)
    )
    # ce >= 0, a_t >= 0, (1 - p_t)^gamma >= 0; the mean of nothing is NaN
    assert ((loss >= 0) | (loss.isnan() & (x.numel() == 0))).all() and torch.isfinite(g).all()


# ----------------------------------------------------------------------------------------------
# binary_focal_loss (EasyRec BINARY_FOCAL_LOSS: SBNZ, OHEM)
# ----------------------------------------------------------------------------------------------

# weight layouts that make sense for each shape (see conftest.make_weight)
_WEIGHTS = {
    (0,): [None, "scalar", "B"],
    (1,): [None, "scalar", "tensor0d", "B"],
    (1023,): [None, "scalar", "B", "zeros"],
    (1025,): [None, "B", "neg"],
    (4097,): [None, "scalar", "B", "zeros", "neg"],
    (16385,): [None, "B", "zeros"],
    (37, 19): [None, "scalar", "tensor0d", "C", "B1", "full", "zeros", "neg", "expand", "transposed"],
    (2, 3, 5): [None, "C", "B1", "mid", "split", "full"],
}
_BF_FULL = (
    [
        (shape, w, 2.0, None, 0.0, ratio)
        for shape in SHAPES
        for w in _WEIGHTS[shape]
        for ratio in (1.0, 0.5, 0.3)
    ]
    + [
        ((37, 19), "zeros", g, a, ls, ratio)
        for g in (0.0, 0.5, 1.0, 2.0, 3.0)
        for a in (None, 0.25, 1.0, 0.0)
        for ls in (0.0, 0.1)
        for ratio in (1.0, 0.5)
    ]
    + [((4097,), "B", g, a, 0.1, 1.0) for g in (0.5, 3.0) for a in (None, 0.25)]
)
_BF_SUB = (
    [(shape, w, 2.0, 0.25, 0.0, 1.0) for shape in SHAPES for w in _WEIGHTS[shape][:3]]
    + [((37, 19), w, 2.0, None, 0.1, 1.0) for w in ("C", "B1", "full", "expand", "transposed")]
    + [((2, 3, 5), w, 2.0, None, 0.0, 1.0) for w in ("mid", "split")]
    + [((37, 19), "zeros", g, a, 0.1, 1.0) for g in (0.0, 0.5, 1.0, 3.0) for a in (None, 1.0)]
    + [((1025,), "neg", 2.0, 0.25, 0.0, 0.5), ((37, 19), "C", 0.5, None, 0.1, 0.3)]
)


@pytest.mark.parametrize(
    "device, backend, shape, weight, gamma, alpha, label_smoothing, ohem_ratio",
    _cases(_BF_FULL, _BF_SUB),
    ids=shape_id,
)
def test_binary_focal_matches_reference(
    device, backend, shape, weight, gamma, alpha, label_smoothing, ohem_ratio
):
    x, t = make_inputs(shape, torch.float64, device)
    kw = dict(
        gamma=gamma,
        alpha=alpha,
        label_smoothing=label_smoothing,
        weight=make_weight(weight, shape, torch.float64, device),
        ohem_ratio=ohem_ratio,
    )
    assert_matches_reference("binary_focal", backend, x, t, kw)


# ----------------------------------------------------------------------------------------------
# binary_cross_entropy_with_logits (torch semantics on the smoothed target)
# ----------------------------------------------------------------------------------------------

_BCE_WEIGHTS = {s: [w for w in ws if w not in ("scalar",)] for s, ws in _WEIGHTS.items()}
_BCE_FULL = [
    (shape, w, pw, red, ls, tk)
    for shape in SHAPES
    for w in _BCE_WEIGHTS[shape]
    for pw in (None, "C")
    for red in ("none", "mean", "sum")
    for ls in (0.0, 0.1)
    for tk in ("float", "soft")
] + [((37, 19), None, "B1", red, 0.0, "soft") for red in ("none", "sum")]
_BCE_SUB = (
    [(shape, None, None, red, 0.0, "float") for shape in SHAPES for red in ("none", "mean", "sum")]
    + [((37, 19), w, pw, "mean", 0.1, "soft") for w in ("C", "B1", "full", "zeros") for pw in (None, "C")]
    + [
        ((2, 3, 5), "split", "C", "sum", 0.0, "float"),
        ((37, 19), None, "B1", "none", 0.0, "soft"),
        ((4097,), "neg", "C", "mean", 0.1, "float"),
    ]
)


@pytest.mark.parametrize(
    "device, backend, shape, weight, pos_weight, reduction, label_smoothing, target_kind",
    _cases(_BCE_FULL, _BCE_SUB),
    ids=shape_id,
)
def test_bce_matches_reference(
    device, backend, shape, weight, pos_weight, reduction, label_smoothing, target_kind
):
    x, t = make_inputs(shape, torch.float64, device, target_kind)
    kw = dict(
        weight=make_weight(weight, shape, torch.float64, device),
        pos_weight=make_weight(pos_weight, shape, torch.float64, device),
        reduction=reduction,
        label_smoothing=label_smoothing,
    )
    assert_matches_reference("bce", backend, x, t, kw)


def test_bce_reference_is_torch():
    # The BCE reference against torch itself (no smoothing), so the truth is anchored outside us.
    x, t = make_inputs((37, 19), torch.float64, "cpu", "soft")
    w, pw = make_weight("B1", (37, 19)), make_weight("C", (37, 19))
    for red in ("none", "mean", "sum"):
        torch.testing.assert_close(
            ref.binary_cross_entropy_with_logits_reference(x, t, w, pw, red),
            F.binary_cross_entropy_with_logits(x, t, weight=w, pos_weight=pw, reduction=red),
        )
    # smoothing eps moves a hard 0 to eps/2 and a hard 1 to 1 - eps/2 (spec 1.2)
    torch.testing.assert_close(
        ref.binary_cross_entropy_with_logits_reference(x, (t > 0.5).double(), label_smoothing=0.2),
        F.binary_cross_entropy_with_logits(x, torch.where(t > 0.5, 0.9, 0.1).double()),
    )


# ----------------------------------------------------------------------------------------------
# every backend through the same small set (plumbing of the reference and auto paths too)
# ----------------------------------------------------------------------------------------------


def _small_kw(fn, device, shape):
    if fn == "sigmoid_focal":
        return dict(alpha=0.25, gamma=2.0, reduction="mean")
    if fn == "binary_focal":
        return dict(
            gamma=2.0,
            alpha=0.25,
            label_smoothing=0.1,
            weight=make_weight("zeros", shape, torch.float64, device),
        )
    return dict(
        weight=make_weight("B1", shape, torch.float64, device),
        pos_weight=make_weight("C", shape, torch.float64, device),
        label_smoothing=0.1,
    )


@pytest.mark.parametrize(
    "device, backend", [(d, b) for d in DEVICES for b in ["reference", "auto"] + fused_backends_for(d)]
)
@pytest.mark.parametrize("fn", FUNCS)
def test_every_backend_matches_reference(device, backend, fn):
    shape = (37, 19)  # 2-D, one Triton program
    x, t = make_inputs(shape, torch.float64, device)
    assert_matches_reference(fn, backend, x, t, _small_kw(fn, device, shape))


# ----------------------------------------------------------------------------------------------
# low precision: fp32 / fp16 / bf16 with flash-attn's bound, result dtype
# ----------------------------------------------------------------------------------------------

_LOWP_SHAPES = [(4097,), (37, 19)]  # multi-block 1-D with a tail; 2-D with a [C] weight


def _lowp_kw(fn, reduction, shape, device):
    if fn == "sigmoid_focal":
        return dict(alpha=0.25, gamma=2.0, reduction=reduction)
    if fn == "binary_focal":
        return dict(
            gamma=2.0,
            alpha=None,
            weight=make_weight("C", shape, torch.float32, device),
            ohem_ratio=1.0 if reduction != "none" else 0.5,
        )
    return dict(
        pos_weight=make_weight("C", shape, torch.float32, device), reduction=reduction, label_smoothing=0.1
    )


@pytest.mark.parametrize("device, backend", [(d, b) for d in DEVICES for b in fused_backends_for(d)])
@pytest.mark.parametrize("dtype", LOWP, ids=str)
@pytest.mark.parametrize("shape", _LOWP_SHAPES, ids=shape_id)
@pytest.mark.parametrize(
    "fn, reduction",
    [(f, r) for f in ("sigmoid_focal", "bce") for r in ("none", "sum", "mean")]
    + [("binary_focal", "none"), ("binary_focal", "mean")],
)  # binary_focal: none -> OHEM 0.5, mean -> SBNZ
def test_low_precision_matches_reference(device, backend, dtype, shape, fn, reduction):
    x, t = make_inputs(shape, dtype, device, "soft" if fn != "binary_focal" else "float")
    assert_matches_reference(fn, backend, x, t, _lowp_kw(fn, reduction, shape, device))


@pytest.mark.parametrize("device, backend", [(d, b) for d in DEVICES for b in fused_backends_for(d)])
@pytest.mark.parametrize("fn", FUNCS)
def test_large_launch(device, backend, fn):
    # 2**20 + 3 elements: BLOCK 4096 / 8 warps in Triton (257 programs), CPU parallel chunks, fp32
    # accumulation over a million terms checked against torch's own fp32 error.
    n = (1 << 20) + 3
    x, t = make_inputs((n,), torch.float32, device)
    kw = {
        "sigmoid_focal": dict(reduction="sum"),
        "binary_focal": dict(weight=make_weight("zeros", (n,), torch.float32, device)),
        "bce": dict(reduction="mean"),
    }[fn]
    assert_matches_reference(fn, backend, x, t, kw)


# ----------------------------------------------------------------------------------------------
# layouts: non-contiguous input, canaries
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("device, backend", [(d, b) for d in DEVICES for b in fused_backends_for(d)])
@pytest.mark.parametrize("fn", FUNCS)
def test_transposed_input(device, backend, fn):
    # [19, 37] transposed to [37, 19]: strided input, target and weight; [C] weight indexes the
    # logical (row-major) position, not the storage position.
    x, t = make_inputs((19, 37), torch.float64, device, "soft" if fn != "binary_focal" else "float")
    x, t = x.t(), t.t()
    assert not x.is_contiguous()
    shape = tuple(x.shape)
    kw = {
        "sigmoid_focal": dict(reduction="none", gamma=0.5),
        "binary_focal": dict(weight=make_weight("transposed", shape, torch.float64, device)),
        "bce": dict(
            weight=make_weight("C", shape, torch.float64, device),
            pos_weight=make_weight("transposed", shape, torch.float64, device),
            reduction="none",
        ),
    }[fn]
    assert_matches_reference(fn, backend, x, t, kw)


@pytest.mark.parametrize("device, backend", [(d, b) for d in DEVICES for b in fused_backends_for(d)])
@pytest.mark.parametrize("fn", FUNCS)
@pytest.mark.parametrize("shape", [(1,), (1025,), (37, 19)], ids=shape_id)  # partial block, 1-lane tail, 2-D
def test_canaries(device, backend, fn, shape):
    # Inputs and weights live inside NaN-filled buffers: an out-of-bounds read that reaches the result
    # leaks NaN into it (e.g. a weight index without its modulo), a stray write changes a margin.
    x, t = make_inputs(shape, torch.float32, device)
    w = make_weight("C" if len(shape) == 2 else "B", shape, torch.float32, device)
    xv, check_x = canary(x)
    tv, check_t = canary(t)
    wv, check_w = canary(w)

    def kw_for(weight):
        return {
            "sigmoid_focal": dict(reduction="sum"),
            "binary_focal": dict(weight=weight, alpha=0.25),
            "bce": dict(weight=weight, pos_weight=weight, reduction="none"),
        }[fn]

    xl = xv.requires_grad_()
    loss = call(fn, xl, tv, backend, **kw_for(wv))
    loss.backward(torch.ones_like(loss))
    assert torch.isfinite(loss).all() and torch.isfinite(xl.grad).all()
    for check in (check_x, check_t, check_w):
        check()
    assert_matches_reference(fn, backend, x, t, kw_for(w))


# ----------------------------------------------------------------------------------------------
# grad_output == 1 and != 1
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("device, backend", [(d, b) for d in DEVICES for b in fused_backends_for(d)])
@pytest.mark.parametrize(
    "fn, kw",
    [
        ("sigmoid_focal", dict(reduction="none")),
        ("sigmoid_focal", dict(reduction="mean")),
        ("sigmoid_focal", dict(reduction="sum")),
        ("binary_focal", dict()),  # SBNZ
        ("binary_focal", dict(ohem_ratio=0.5)),  # OHEM
        ("bce", dict(reduction="none")),
        ("bce", dict(reduction="mean")),
    ],
)
@pytest.mark.parametrize("grad_kind", ["ones", "random"])
def test_grad_output(device, backend, fn, kw, grad_kind):
    # (37, 19): 2-D, one Triton program. "random": per-element grad_output for reduction none, a
    # random scalar for reduced losses.
    x, t = make_inputs((37, 19), torch.float64, device)
    _, g, go = forward_backward(fn, backend, x, t, kw, grad_kind)
    assert (go == 1).all() if grad_kind == "ones" else not (go == 1).any()
    _, ref_g = reference_fb(fn, x, t, kw, go)
    torch.testing.assert_close(g, ref_g, rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------------------------------
# gradcheck in fp64 (reference, cpu, triton / cuda)
# ----------------------------------------------------------------------------------------------

_GRADCHECK = [
    ("sigmoid_focal", dict(alpha=0.25, gamma=2.0, reduction="none")),
    ("sigmoid_focal", dict(alpha=-1.0, gamma=0.5, reduction="mean")),
    ("sigmoid_focal", dict(alpha=1.0, gamma=3.0, reduction="sum")),
    ("binary_focal", dict(gamma=2.0, alpha=0.25, label_smoothing=0.1, weight="zeros")),
    ("binary_focal", dict(gamma=0.5, weight="C", ohem_ratio=0.5)),
    ("bce", dict(weight="B1", pos_weight="C", reduction="mean", label_smoothing=0.1)),
    ("bce", dict(reduction="none")),
]


@pytest.mark.parametrize(
    "device, backend", [(d, b) for d in DEVICES for b in ["reference"] + fused_backends_for(d)]
)
@pytest.mark.parametrize("fn, kw", _GRADCHECK)
def test_gradcheck(device, backend, fn, kw):
    shape = (4, 5)  # small: gradcheck perturbs every element twice
    x, t = make_inputs(shape, torch.float64, device, "soft" if fn != "binary_focal" else "float")
    kw = {
        k: (make_weight(v, shape, torch.float64, device) if k in ("weight", "pos_weight") else v)
        for k, v in kw.items()
    }
    x.requires_grad_()
    assert torch.autograd.gradcheck(lambda xx: call(fn, xx, t, backend, **kw), (x,), eps=1e-6, atol=1e-7)


# ----------------------------------------------------------------------------------------------
# saturated logits, EasyRec's clip
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("device, backend", [(d, b) for d in DEVICES for b in fused_backends_for(d)])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize(
    "fn, kw",
    [
        ("binary_focal", dict(gamma=2.0)),
        ("binary_focal", dict(gamma=0.5, alpha=0.25)),  # clip keeps (1 - p_t)^(gamma - 1) finite
        ("sigmoid_focal", dict(gamma=2.0, reduction="none")),
        ("sigmoid_focal", dict(gamma=3.0, reduction="none")),
        ("bce", dict(reduction="none", pos_weight="C")),
    ],
)
def test_saturated_logits(device, backend, dtype, fn, kw):
    # Logits from -60 to 60 cross EasyRec's clip at |x| ~ 16.1 and saturate sigmoid in fp32 and fp64;
    # every logit appears with target 0 and 1. One Triton program.
    x = torch.linspace(-60, 60, 121, dtype=torch.float64).repeat(2).reshape(2, 121).to(device, dtype)
    t = torch.stack([torch.zeros(121), torch.ones(121)]).to(device, dtype)
    kw = {
        k: (make_weight(v, tuple(x.shape), dtype, device) if k == "pos_weight" else v) for k, v in kw.items()
    }
    loss, g = assert_matches_reference(fn, backend, x, t, kw)
    assert torch.isfinite(loss).all() and torch.isfinite(g).all()


# ----------------------------------------------------------------------------------------------
# SBNZ and OHEM semantics (spec 1.1, 1.3)
# ----------------------------------------------------------------------------------------------

BACKENDS_ALL = [(d, b) for d in DEVICES for b in ["reference"] + fused_backends_for(d)]


@pytest.mark.parametrize("device, backend", BACKENDS_ALL)
@pytest.mark.parametrize("gamma", [0.0, 2.0, 3.0])
def test_sbnz_alpha_one_is_mean_over_positives(device, backend, gamma):
    # alpha = 1 zeroes every negative's weight, so the SBNZ denominator is the positive count.
    # Independent formula: mean over positives of (1 - clip(p))^gamma * softplus(-x).
    x, t = make_inputs((37, 19), torch.float64, device)
    loss = fusedloss.binary_focal_loss(x, t, gamma=gamma, alpha=1.0, backend=backend)
    p = torch.sigmoid(x).clamp(1e-7, 1 - 1e-7)
    expected = ((1 - p) ** gamma * F.softplus(-x))[t == 1].mean()
    torch.testing.assert_close(loss, expected, rtol=1e-10, atol=0)
    # and it is not the plain mean over all elements
    assert not torch.isclose(loss, ((1 - p) ** gamma * F.softplus(-x) * t).mean())


@pytest.mark.parametrize("device, backend", BACKENDS_ALL)
def test_sbnz_scalar_weight_is_scaled_mean(device, backend):
    # A nonzero scalar weight v counts every element: result = v * mean(focal loss) (spec 1.1).
    x, t = make_inputs((37, 19), torch.float64, device)
    plain = fusedloss.binary_focal_loss(x, t, backend=backend)
    torch.testing.assert_close(
        fusedloss.binary_focal_loss(x, t, weight=0.7, backend=backend), 0.7 * plain, rtol=1e-12, atol=0
    )
    p = torch.sigmoid(x).clamp(1e-7, 1 - 1e-7)
    q = torch.where(t == 1, 1 - p, p)
    torch.testing.assert_close(
        plain, (q**2 * F.binary_cross_entropy_with_logits(x, t, reduction="none")).mean(), rtol=1e-10, atol=0
    )


@pytest.mark.parametrize("device, backend", BACKENDS_ALL)
@pytest.mark.parametrize("weight", ["allzero", "scalar0"])
def test_sbnz_all_zero_weight_is_zero(device, backend, weight):
    # N_nz = 0: loss 0 and gradient 0 (a safe division), not NaN.
    x, t = make_inputs((37, 19), torch.float64, device)
    w = 0.0 if weight == "scalar0" else make_weight("allzero", (37, 19), torch.float64, device)
    x.requires_grad_()
    loss = fusedloss.binary_focal_loss(x, t, weight=w, backend=backend)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.equal(x.grad, torch.zeros_like(x))


@pytest.mark.parametrize("device, backend", BACKENDS_ALL)
def test_empty_input(device, backend):
    # 0 elements: SBNZ -> 0, OHEM -> NaN, mean -> NaN (torch), sum -> 0, none -> empty.
    x, t = make_inputs((0,), torch.float32, device)
    x.requires_grad_()
    sbnz = fusedloss.binary_focal_loss(x, t, backend=backend)
    assert sbnz.shape == () and sbnz.item() == 0.0
    (g,) = torch.autograd.grad(sbnz, x)
    assert g.shape == (0,)
    assert math.isnan(fusedloss.binary_focal_loss(x, t, ohem_ratio=0.5, backend=backend).item())
    assert math.isnan(fusedloss.sigmoid_focal_loss(x, t, reduction="mean", backend=backend).item())
    assert fusedloss.sigmoid_focal_loss(x, t, reduction="sum", backend=backend).item() == 0.0
    assert fusedloss.binary_cross_entropy_with_logits(x, t, reduction="none", backend=backend).shape == (0,)
    x2 = make_logits((0, 7), torch.float32, device)  # empty 2-D with a [C] weight
    assert (
        fusedloss.binary_focal_loss(
            x2, torch.zeros_like(x2), weight=torch.ones(7, device=device), backend=backend
        ).item()
        == 0.0
    )


def test_ohem_k_rounding_rule():
    # k = rint(float32(N) * float32(ratio)), half to even (spec 1.3): 2.5 -> 2, 3.5 -> 4, 1.5 -> 2;
    # float32(45) * float32(0.7) is exactly 31.5 -> 32, while the float64 product 31.4999... -> 31;
    # float32(50) * float32(0.59) = 29.499998 -> 29, while float64 gives 29.5 -> 30.
    assert [ref.ohem_k(n, r) for n, r in [(5, 0.5), (7, 0.5), (3, 0.5), (1, 0.3), (45, 0.7), (50, 0.59)]] == [
        2,
        4,
        2,
        0,
        32,
        29,
    ]


@pytest.mark.parametrize("device, backend", BACKENDS_ALL)
@pytest.mark.parametrize(
    "n, ratio",
    [
        (5, 0.5),  # 2.5 -> k = 2 (half to even, not 3)
        (7, 0.5),  # 3.5 -> k = 4
        (45, 0.7),  # float32 product 31.5 -> 32 (float64 would give 31)
        (50, 0.59),  # float32 product 29.499998 -> 29 (float64 would give 30)
        (1023, 0.3),  # one Triton program, k = 307
        (4097, 0.5),  # five programs, 2048.5 -> k = 2048
    ],
)
def test_ohem_selects_k(device, backend, n, ratio):
    # Positive weights, so all top-k values survive: exactly k elements get a gradient, and the loss
    # is the mean of the k largest weighted losses.
    x, t = make_inputs((n,), torch.float64, device)
    w = make_weight("B", (n,), torch.float64, device)
    k = int(np.rint(np.float32(n) * np.float32(ratio)))
    x.requires_grad_()
    loss = fusedloss.binary_focal_loss(x, t, weight=w, ohem_ratio=ratio, backend=backend)
    loss.backward()
    assert int((x.grad != 0).sum()) == k
    xd = x.detach()
    p = torch.sigmoid(xd).clamp(1e-7, 1 - 1e-7)
    weighted = (
        w * torch.where(t == 1, 1 - p, p) ** 2 * F.binary_cross_entropy_with_logits(xd, t, reduction="none")
    )
    torch.testing.assert_close(loss.detach(), weighted.topk(k).values.mean(), rtol=1e-10, atol=0)


@pytest.mark.parametrize("device, backend", BACKENDS_ALL)
def test_ohem_ties_take_lower_index(device, backend):
    # Six copies of the same (logit, target) tie; k = rint(10 * 0.5) = 5 takes the two distinct
    # larger values plus the three lowest-indexed copies of the tie.
    x = torch.tensor([0.3, 2.0, 0.3, 0.3, -1.0, 0.3, 3.0, 0.3, 0.3, -2.0], dtype=torch.float64, device=device)
    t = torch.zeros_like(x)
    x.requires_grad_()
    loss = fusedloss.binary_focal_loss(x, t, ohem_ratio=0.5, backend=backend)
    loss.backward()
    chosen = (x.grad != 0).nonzero().flatten().tolist()
    assert chosen == [0, 1, 2, 3, 6], chosen
    xr = x.detach().clone().requires_grad_()
    ref_loss = ref.binary_focal_loss_reference(xr, t, ohem_ratio=0.5)
    ref_loss.backward()
    torch.testing.assert_close(loss, ref_loss, rtol=1e-12, atol=0)
    torch.testing.assert_close(x.grad, xr.grad, rtol=1e-12, atol=0)


@pytest.mark.parametrize("device, backend", BACKENDS_ALL)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_ohem_low_precision_ranks_exact_losses(device, backend, dtype):
    # Every representable logit in [1, 2) in increasing order with target 0 and gamma 0: the weighted
    # loss softplus(x) strictly increases with the index (1024 values in fp16, one Triton program; 128
    # in bf16). Neighbouring losses often round to the same fp16/bf16 value, so ranking the rounded
    # losses (ties -> lower index) picks different elements than ranking the losses themselves,
    # which the reference computes in fp32: the top k must be exactly the last k indices.
    x = torch.arange(1, 2, torch.finfo(dtype).eps, dtype=torch.float64).to(dtype).unique().to(device)
    t = torch.zeros_like(x)
    n = x.numel()
    for ratio in (0.1, 0.25, 0.3, 0.5, 0.7, 0.9):
        k = ref.ohem_k(n, ratio)
        xl = x.clone().requires_grad_()
        fusedloss.binary_focal_loss(xl, t, gamma=0.0, ohem_ratio=ratio, backend=backend).backward()
        chosen = (xl.grad != 0).nonzero().flatten().tolist()
        assert chosen == list(range(n - k, n)), f"ratio {ratio}: {sorted(set(chosen) ^ set(range(n - k, n)))}"


@pytest.mark.parametrize("device, backend", BACKENDS_ALL)
def test_ohem_drops_nonpositive_and_nan_when_none_survive(device, backend):
    x, t = make_inputs((40,), torch.float64, device)
    # negative weights make negative weighted losses: they are dropped from the top-k, and the mean
    # is over the survivors only (not / k)
    w = torch.where(torch.arange(40, device=device) % 4 == 0, 1.0, -1.0).double()
    loss = fusedloss.binary_focal_loss(
        x, t, weight=w, ohem_ratio=0.5, backend=backend
    )  # k = 20 > 10 positives
    torch.testing.assert_close(
        loss, ref.binary_focal_loss_reference(x, t, weight=w, ohem_ratio=0.5), rtol=1e-10, atol=0
    )
    p = torch.sigmoid(x).clamp(1e-7, 1 - 1e-7)
    weighted = (
        w * torch.where(t == 1, 1 - p, p) ** 2 * F.binary_cross_entropy_with_logits(x, t, reduction="none")
    )
    torch.testing.assert_close(loss, weighted[weighted > 0].mean(), rtol=1e-10, atol=0)
    # no survivor: all-zero weight, all-negative weight, k = 0 -> NaN, and (as on every backend) a
    # loss that backward() accepts, so a training step on such a batch does not crash
    xl = x.clone().requires_grad_()
    for loss in (
        fusedloss.binary_focal_loss(xl, t, weight=0.0, ohem_ratio=0.5, backend=backend),
        fusedloss.binary_focal_loss(xl, t, weight=-1.0, ohem_ratio=0.5, backend=backend),
        fusedloss.binary_focal_loss(xl[:1], t[:1], ohem_ratio=0.3, backend=backend),
    ):
        assert loss.isnan()
        assert loss.requires_grad, "backward() on this NaN loss would raise"
        loss.backward()


@pytest.mark.parametrize("device, backend", BACKENDS_ALL)
def test_ohem_ratio_one_is_sbnz(device, backend):
    # ratio 1.0 exactly takes the SBNZ path (zero-weight elements leave the denominator), while
    # ratio 0.9999 (k = N) is the OHEM mean over positive weighted losses: they differ (spec 1.3).
    x, t = make_inputs((200,), torch.float64, device)
    w = make_weight("neg", (200,), torch.float64, device)
    sbnz = fusedloss.binary_focal_loss(x, t, weight=w, ohem_ratio=1.0, backend=backend)
    ohem = fusedloss.binary_focal_loss(x, t, weight=w, ohem_ratio=0.9999, backend=backend)
    torch.testing.assert_close(sbnz, ref.binary_focal_loss_reference(x, t, weight=w), rtol=1e-10, atol=0)
    torch.testing.assert_close(
        ohem, ref.binary_focal_loss_reference(x, t, weight=w, ohem_ratio=0.9999), rtol=1e-10, atol=0
    )
    assert not torch.isclose(sbnz, ohem)


# ----------------------------------------------------------------------------------------------
# targets: int and bool, range checks
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("device, backend", BACKENDS_ALL)
@pytest.mark.parametrize("fn", FUNCS)
@pytest.mark.parametrize("target_kind", ["int64", "int32", "uint8", "bool"])
def test_int_and_bool_targets(device, backend, fn, target_kind):
    # (37, 19): one Triton program; same loss and grad as the float 0/1 target: bit for bit on the
    # CPU; on CUDA the compiled kernel for another target dtype may lay out (and so sum) the block
    # in another order, which moves the reduced loss by an ulp or two.
    x, t = make_inputs((37, 19), torch.float32, device, target_kind)
    kw = {
        "sigmoid_focal": dict(reduction="none"),
        "binary_focal": dict(alpha=0.25),
        "bce": dict(pos_weight=make_weight("C", (37, 19), torch.float32, device)),
    }[fn]
    loss_i, g_i, go = forward_backward(fn, backend, x, t, kw)
    loss_f, g_f, _ = forward_backward(fn, backend, x, t.float(), kw, go=go)
    tol = dict(rtol=0, atol=0) if device == "cpu" else dict(rtol=4 * EPS[torch.float32], atol=1e-7)
    torch.testing.assert_close(loss_i, loss_f, **tol)
    torch.testing.assert_close(g_i, g_f, **tol)
    assert_matches_reference(fn, backend, x, t, kw)


# ----------------------------------------------------------------------------------------------
# nn modules
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("device, backend", BACKENDS_ALL)
def test_modules_match_reference(device, backend):
    x, t = make_inputs((37, 19), torch.float64, device)
    w, pw = (
        make_weight("B1", (37, 19), torch.float64, device),
        make_weight("C", (37, 19), torch.float64, device),
    )
    cases = [
        (
            fl_nn.SigmoidFocalLoss(alpha=0.5, gamma=3.0, reduction="mean", backend=backend),
            (x, t),
            ref.sigmoid_focal_loss_reference(x, t, 0.5, 3.0, "mean"),
        ),
        (fl_nn.SigmoidFocalLoss(backend=backend), (x, t), ref.sigmoid_focal_loss_reference(x, t)),  # defaults
        (
            fl_nn.BinaryFocalLoss(gamma=1.5, alpha=0.3, label_smoothing=0.1, ohem_ratio=0.5, backend=backend),
            (x, t, w),
            ref.binary_focal_loss_reference(x, t, 1.5, 0.3, 0.1, w, 0.5),
        ),
        (fl_nn.BinaryFocalLoss(backend=backend), (x, t), ref.binary_focal_loss_reference(x, t)),
        (
            fl_nn.BCEWithLogitsLoss(
                weight=w, reduction="sum", pos_weight=pw, label_smoothing=0.2, backend=backend
            ),
            (x, t),
            ref.binary_cross_entropy_with_logits_reference(x, t, w, pw, "sum", 0.2),
        ),
        (fl_nn.BCEWithLogitsLoss(backend=backend), (x, t), F.binary_cross_entropy_with_logits(x, t)),
    ]
    for module, args, expected in cases:
        torch.testing.assert_close(module(*args), expected, rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------------------------------
# bad input
# ----------------------------------------------------------------------------------------------


def _bad_cases():
    x = torch.randn(6, 4)
    t = torch.randint(0, 2, (6, 4)).float()
    sf, bf, bce = (
        fusedloss.sigmoid_focal_loss,
        fusedloss.binary_focal_loss,
        fusedloss.binary_cross_entropy_with_logits,
    )
    cases = []
    for name, f in (("sigmoid_focal", sf), ("binary_focal", bf), ("bce", bce)):
        cases += [
            (name + "-target-shape", lambda f=f: f(x, t[:, :3]), ValueError, "target"),
            (name + "-target-shape-broadcastable", lambda f=f: f(x, t[:1]), ValueError, "target"),
            (name + "-int-input", lambda f=f: f(x.long(), t), TypeError, "input"),
            (name + "-bool-input", lambda f=f: f(x > 0, t), TypeError, "input"),
            (name + "-int-target-2", lambda f=f: f(x, t.long() * 2), ValueError, "target"),
            (name + "-int-target-neg", lambda f=f: f(x, -t.long()), ValueError, "target"),
            (name + "-meta-target", lambda f=f: f(x, t.to("meta")), ValueError, "device"),
            (name + "-backend-cuda", lambda f=f: f(x, t, backend="cuda"), ValueError, "cuda"),
            (name + "-backend-unknown", lambda f=f: f(x, t, backend="fast"), ValueError, "backend"),
        ]
    cases += [
        ("sigmoid_focal-gamma", lambda: sf(x, t, gamma=-0.5), ValueError, "gamma"),
        ("sigmoid_focal-alpha", lambda: sf(x, t, alpha=1.5), ValueError, "alpha"),
        ("sigmoid_focal-reduction", lambda: sf(x, t, reduction="avg"), ValueError, "reduction"),
        ("binary_focal-gamma", lambda: bf(x, t, gamma=-1.0), ValueError, "gamma"),
        ("binary_focal-alpha", lambda: bf(x, t, alpha=1.5), ValueError, "alpha"),
        ("binary_focal-ohem-0", lambda: bf(x, t, ohem_ratio=0.0), ValueError, "ohem_ratio"),
        ("binary_focal-ohem-neg", lambda: bf(x, t, ohem_ratio=-0.5), ValueError, "ohem_ratio"),
        ("binary_focal-ohem-big", lambda: bf(x, t, ohem_ratio=1.5), ValueError, "ohem_ratio"),
        ("binary_focal-smoothing-1", lambda: bf(x, t, label_smoothing=1.0), ValueError, "label_smoothing"),
        ("binary_focal-smoothing-neg", lambda: bf(x, t, label_smoothing=-0.1), ValueError, "label_smoothing"),
        ("binary_focal-weight-shape", lambda: bf(x, t, weight=torch.ones(5)), ValueError, "weight"),
        (
            "binary_focal-weight-too-many-dims",
            lambda: bf(x, t, weight=torch.ones(2, 6, 4)),
            ValueError,
            "weight",
        ),
        (
            "binary_focal-weight-meta",
            lambda: bf(x, t, weight=torch.ones(4, device="meta")),
            ValueError,
            "device",
        ),
        ("bce-weight-shape", lambda: bce(x, t, weight=torch.ones(6)), ValueError, "weight"),
        ("bce-pos_weight-shape", lambda: bce(x, t, pos_weight=torch.ones(3)), ValueError, "pos_weight"),
        ("bce-reduction", lambda: bce(x, t, reduction="batchmean"), ValueError, "reduction"),
        ("bce-smoothing", lambda: bce(x, t, label_smoothing=1.0), ValueError, "label_smoothing"),
        ("bce-smoothing-neg", lambda: bce(x, t, label_smoothing=-0.5), ValueError, "label_smoothing"),
    ]
    return cases


@pytest.mark.parametrize("case", _bad_cases(), ids=lambda c: c[0])
def test_bad_input(case):
    _, thunk, exc, match = case
    with pytest.raises(exc, match=match):
        thunk()


@pytest.mark.parametrize("backend", ["cpu", "triton"])
def test_bad_input_explicit_fused_backend(backend):
    # the same checks run before any fused backend (the C++/Triton layers never see bad input)
    x, t = torch.randn(6, 4), torch.randint(0, 2, (6, 4))
    with pytest.raises(ValueError, match="target"):
        fusedloss.binary_focal_loss(x, t * 3, backend=backend)
    with pytest.raises(ValueError, match="weight"):
        fusedloss.binary_focal_loss(x, t, weight=torch.ones(5), backend=backend)
    with pytest.raises(ValueError, match="gamma"):
        fusedloss.sigmoid_focal_loss(x, t, gamma=-2.0, backend=backend)


# ----------------------------------------------------------------------------------------------
# fused backends differentiate input only: auto falls back to the reference
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "fn, which",
    [
        ("sigmoid_focal", "target"),
        ("binary_focal", "target"),
        ("binary_focal", "weight"),
        ("bce", "target"),
        ("bce", "weight"),
        ("bce", "pos_weight"),
    ],
)
def test_grad_of_other_args_falls_back(device, fn, which):
    shape = (37, 19)
    x, t = make_inputs(shape, torch.float64, device, "soft")
    kw = {}
    if which in ("weight", "pos_weight"):
        kw[which] = make_weight("C", shape, torch.float64, device)
    if fn == "sigmoid_focal":
        kw["reduction"] = "mean"
    leaf = (t if which == "target" else kw[which]).requires_grad_()
    # explicit fused backends refuse
    for backend in fused_backends_for(device):
        with pytest.raises(ValueError):
            call(fn, x, t, backend, **kw)
    if fn == "bce" and which != "target":
        return  # torch's BCE has no gradient for weight or pos_weight, so the reference fallback has none
    # auto falls back to the reference and returns the reference's gradients for both tensors
    xl = x.clone().requires_grad_()
    loss = call(fn, xl, t, "auto", **kw)
    gx, gother = torch.autograd.grad(loss, (xl, leaf))
    xr = x.clone().requires_grad_()
    ref_loss = call_ref(fn, xr, t, **kw)
    rx, rother = torch.autograd.grad(ref_loss, (xr, leaf))
    torch.testing.assert_close(loss, ref_loss, rtol=1e-12, atol=0)
    torch.testing.assert_close(gx, rx, rtol=1e-12, atol=0)
    torch.testing.assert_close(gother, rother, rtol=1e-12, atol=0)
    assert gother.abs().sum() > 0


# ----------------------------------------------------------------------------------------------
# double backward: either right or refused, never silently wrong
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("device, backend", [(d, b) for d in DEVICES for b in fused_backends_for(d)])
@pytest.mark.parametrize("fn", FUNCS)
def test_double_backward_is_right_or_raises(device, backend, fn):
    x, t = make_inputs((4, 5), torch.float64, device)
    kw = {"sigmoid_focal": dict(reduction="sum")}.get(fn, {})
    xl = x.clone().requires_grad_()
    try:
        (g,) = torch.autograd.grad(call(fn, xl, t, backend, **kw), xl, create_graph=True)
        (h,) = torch.autograd.grad(g.sum(), xl)
    except RuntimeError:
        return  # refusing double backward is acceptable
    xr = x.clone().requires_grad_()
    (gr,) = torch.autograd.grad(call_ref(fn, xr, t, **kw), xr, create_graph=True)
    (hr,) = torch.autograd.grad(gr.sum(), xr)
    torch.testing.assert_close(h, hr, rtol=1e-8, atol=1e-10)


# ----------------------------------------------------------------------------------------------
# every vectorised loop of the cpu backend (baseline, AVX2, AVX-512: picked at run time)
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("isa", ["base", "avx2", "native"])
@pytest.mark.parametrize(
    "fn, kw",
    [
        (fusedloss.sigmoid_focal_loss, dict(alpha=0.25, gamma=2.0, reduction="none")),
        (fusedloss.sigmoid_focal_loss, dict(alpha=-1.0, gamma=1.5, reduction="sum")),
        (fusedloss.binary_focal_loss, dict(gamma=0.0, alpha=0.3, label_smoothing=0.1)),
        (fusedloss.binary_focal_loss, dict(gamma=1.0)),
        (fusedloss.binary_cross_entropy_with_logits, dict(pos_weight="C", reduction="mean")),
    ],
    ids=["tv-g2", "tv-g1.5", "easyrec-g0", "easyrec-g1", "bce-pw"],
)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16], ids=str)
def test_cpu_isa_variants_match_reference(monkeypatch, isa, fn, kw, dtype):
    # FUSEDLOSS_CPU_ISA lowers the loop the C++ kernel picks (asking above the CPU gives the CPU's);
    # 67 x 31 = 2077 elements: full vectors plus a scalar tail in every variant.
    if isa != "native":
        monkeypatch.setenv("FUSEDLOSS_CPU_ISA", isa)
    shape = (67, 31)
    x64, t = make_inputs(shape, torch.float64)
    kw = dict(kw)
    if kw.get("pos_weight") == "C":
        kw["pos_weight"] = make_weight("C", shape)
    x = x64.to(dtype).requires_grad_()
    ours = fn(x, t.to(dtype), **kw, backend="cpu")
    (g,) = torch.autograd.grad(ours.sum(), x)
    xr = x.detach().double().requires_grad_()
    ref = fn(xr, t, **kw, backend="reference")
    (gr,) = torch.autograd.grad(ref.sum(), xr)
    tol = {torch.float64: 1e-12, torch.float32: 2e-5, torch.bfloat16: 2e-2}[dtype]
    torch.testing.assert_close(ours.double(), ref, rtol=tol, atol=tol)
    torch.testing.assert_close(g.double(), gr, rtol=tol, atol=tol)
