"""Pointwise family: l1_loss, mse_loss, huber_loss, smooth_l1_loss, log_cosh_loss,
mean_absolute_percentage_error, hinge_loss, squared_hinge_loss, exponential_loss, kl_div, l2_loss,
sigmoid_l2_loss and log_loss: one fused elementwise op, ``fusedloss::pointwise_fwd[_triton]``.

Truth: ``fusedloss.reference`` (``backend="reference"``) run in float64 on fresh random inputs. The
reference is itself anchored outside itself in the first section: torch's own F.l1_loss / mse_loss /
huber_loss / smooth_l1_loss / kl_div, and written-out numpy formulas for the losses torch lacks
(Keras log-cosh, MAPE, hinge, squared hinge, exponential; EasyRec's SIGMOID_L2; TF's log_loss and
SUM_BY_NONZERO_WEIGHTS).

The large crosses run on the C++ ``cpu`` backend (and ``cuda``/``triton`` when a GPU is present); the
Triton interpreter (milliseconds per program) gets a representative subset.

Sizes and what each one hits:
    ()            0-d input, 0-d / number weight; kl_div batchmean on 0-d is the sum (torch)
    (7,)          one short row, [B] weight
    (0,), (0, 4)  empty: mean -> NaN, sum / SBNZ -> 0, none -> empty, batchmean -> NaN (0 / 0)
    (37, 19)      2-D: [C] / [B, 1] / full / expanded / transposed weights, odd extents
    (2, 3, 5)     3-D: middle-dim and split broadcast weights (materialised layout)
    (1023,) (1025,) (4097,) (16385,)  Triton block +- 1, CPU tiles and reduction chunks with tails
    (2**20 + 3,)  large launch: many Triton programs, CPU chunks across threads, fp32 accumulation
"""

import contextlib
import functools
import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import (
    DEVICES,
    INTERPRET,
    NEEDS_CUDA,
    canary,
    fused_backends_for,
    fusedloss_ops_called,
    lowp_bound,
    make_logits,
    make_target,
    make_weight,
)

import fusedloss
from fusedloss.ops import pointwise as pw_ops
from fusedloss.ops.focal import broadcast_layout
from fusedloss.reference import pointwise as ref

PUBLIC = {
    "l1": fusedloss.l1_loss,
    "mse": fusedloss.mse_loss,
    "huber": fusedloss.huber_loss,
    "smooth_l1": fusedloss.smooth_l1_loss,
    "log_cosh": fusedloss.log_cosh_loss,
    "mape": fusedloss.mean_absolute_percentage_error,
    "hinge": fusedloss.hinge_loss,
    "squared_hinge": fusedloss.squared_hinge_loss,
    "exponential": fusedloss.exponential_loss,
    "l2": fusedloss.l2_loss,
    "sigmoid_l2": fusedloss.sigmoid_l2_loss,
    "log_loss": fusedloss.log_loss,
    "kl_div": fusedloss.kl_div,
    "kl_div_log": functools.partial(fusedloss.kl_div, log_target=True),
}
EASYREC = ("l2", "sigmoid_l2", "log_loss")  # ``weights=``, default reduction SBNZ
KL = ("kl_div", "kl_div_log")  # no weight; reductions none / mean / sum / batchmean
WEIGHTED = tuple(f for f in PUBLIC if f not in KL)
FUNCS = tuple(PUBLIC)
REDUCTIONS = ("none", "mean", "sum", "sum_by_nonzero_weights")
KL_REDUCTIONS = ("none", "mean", "sum", "batchmean")
LOWP = [torch.float32, torch.float16, torch.bfloat16]
SBNZ = "sum_by_nonzero_weights"

FUSED = [(d, b) for d in DEVICES for b in fused_backends_for(d)]
BACKENDS_ALL = [(d, b) for d in DEVICES for b in ["reference"] + fused_backends_for(d)]


def interpreted(device, backend):
    """Triton under the interpreter (milliseconds per program): such tests take a subset."""
    return backend == "triton" and torch.device(device).type == "cpu"


# The interpreter evaluates both sides of every tl.where in numpy (log 0 for KL's zero targets,
# x / 0 for smooth L1 with beta 0): harmless, the kernels select the other side.
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning:triton.runtime.interpreter")


# ----------------------------------------------------------------------------------------------
# call helpers
# ----------------------------------------------------------------------------------------------


def call(fn, x, t, backend, **kw):
    kw = dict(kw)
    if fn in EASYREC and "weight" in kw:
        kw["weights"] = kw.pop("weight")
    return PUBLIC[fn](x, t, backend=backend, **kw)


def default_reduction(fn):
    return SBNZ if fn in EASYREC else "mean"


def is_reduced(fn, kw):
    return kw.get("reduction", default_reduction(fn)) != "none"


def make_pair(fn, shape, dtype=torch.float64, device="cpu"):
    """(input, target) in each function's domain, rounded from fp64 to ``dtype``. Never all zeros."""

    def out(v):
        return v.to(device=device, dtype=dtype)

    def r64():
        return torch.rand(shape, dtype=torch.float64)

    if fn in ("hinge", "squared_hinge", "exponential"):
        # margins 1 - y x on both sides of 0; 0/1 labels (converted to -1/1), both classes present
        return make_logits(shape, dtype, device, scale=1.5), make_target(shape, "float", dtype, device)
    if fn == "sigmoid_l2":
        return make_logits(shape, dtype, device), make_target(shape, "soft", dtype, device)
    if fn == "log_loss":
        return out(0.02 + 0.96 * r64()), make_target(shape, "soft", dtype, device)
    if fn == "mape":
        # |y| >= 0.5 here (the epsilon branch has its own tests)
        sign = torch.where(r64() < 0.5, -1.0, 1.0).double()
        return make_logits(shape, dtype, device), out(sign * (0.5 + 3 * r64()))
    if fn == "kl_div":
        y = r64() * (r64() > 0.2)  # about 1/5 exact zeros: the 0 log 0 = 0 branch
        if y.numel():
            y.view(-1)[0] = 0.5
        return out(torch.log(0.01 + 0.98 * r64())), out(y)
    if fn == "kl_div_log":
        return out(torch.log(0.01 + 0.98 * r64())), out(torch.log(0.01 + 0.98 * r64()))
    return make_logits(shape, dtype, device), make_logits(shape, dtype, device)


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
    weights are cast too (exactly); for a same-dtype run they stay as given."""

    def cast(v):
        if dtype == torch.float64 and isinstance(v, torch.Tensor) and v.is_floating_point():
            return v.double()
        return v

    xl = x.detach().to(dtype).requires_grad_()
    loss = call(fn, xl, cast(t), "reference", **{k: cast(v) for k, v in kw.items()})
    (g,) = torch.autograd.grad(loss, xl, go.to(dtype))
    return loss.detach(), g


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
        # the mean of nothing (and batchmean of an empty batch): the loss must be NaN
        assert x.numel() == 0 and loss.isnan(), f"expected NaN, got {loss}"
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
    """Readable ids: (37, 19) -> "37x19", () -> "0d"; other values keep pytest's default."""
    if isinstance(v, tuple) and all(isinstance(d, int) for d in v):
        return "x".join(map(str, v)) if v else "0d"
    if isinstance(v, dict):
        return "-".join(f"{k}={w}" for k, w in v.items()) or "default"
    return None


def dict_id(v):
    """Parameter dicts as "delta=0.3"; other values keep pytest's default."""
    return shape_id(v) if isinstance(v, dict) else None


def _cases(full, subset):
    """(device, backend, *case): the full list on compiled backends, ``subset`` on the interpreter."""
    out = []
    for device in DEVICES:
        for backend in fused_backends_for(device):
            cases = subset if interpreted(device, backend) else full
            out += [(device, backend) + tuple(c) for c in cases]
    return out


@contextlib.contextmanager
def _no_legacy_warnings():
    """torch's size_average / reduce deprecation warning and kl_div's 'mean' warning, silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


# ----------------------------------------------------------------------------------------------
# 1. the reference anchored outside itself
# ----------------------------------------------------------------------------------------------

TORCH_LOSSES = [
    ("l1", F.l1_loss, {}),
    ("mse", F.mse_loss, {}),
    ("huber", F.huber_loss, {}),
    ("huber", F.huber_loss, {"delta": 0.3}),
    ("huber", F.huber_loss, {"delta": 5.0}),
    ("smooth_l1", F.smooth_l1_loss, {}),
    ("smooth_l1", F.smooth_l1_loss, {"beta": 0.0}),
    ("smooth_l1", F.smooth_l1_loss, {"beta": 0.5}),
]


@pytest.mark.parametrize("fn, torch_fn, params", TORCH_LOSSES, ids=lambda v: dict_id(v))
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("shape", [(37, 19), (2, 3, 5), ()], ids=shape_id)
def test_reference_is_torch(fn, torch_fn, params, reduction, dtype, shape):
    x, t = make_pair(fn, shape, dtype)
    t.view(-1)[: max(x.numel() // 5, 0)] = x.view(-1)[: max(x.numel() // 5, 0)]  # ties: sign(0) = 0
    xr, xt = x.clone().requires_grad_(), x.clone().requires_grad_()
    ours = call(fn, xr, t, "reference", reduction=reduction, **params)
    theirs = torch_fn(xt, t, reduction=reduction, **params)
    go = torch.randn(theirs.shape, dtype=dtype)
    (g,) = torch.autograd.grad(ours, xr, go)
    (gt,) = torch.autograd.grad(theirs, xt, go)
    tol = dict(rtol=1e-12, atol=1e-14) if dtype == torch.float64 else dict(rtol=1e-6, atol=1e-6)
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    torch.testing.assert_close(ours, theirs, **tol)
    torch.testing.assert_close(g, gt, **tol)


@pytest.mark.parametrize("log_target", [False, True])
@pytest.mark.parametrize("reduction", KL_REDUCTIONS)
@pytest.mark.parametrize("shape", [(37, 19), (2, 3, 5), (), (0, 4)], ids=shape_id)
def test_kl_div_reference_is_torch(log_target, reduction, shape):
    fn = "kl_div_log" if log_target else "kl_div"
    x, t = make_pair(fn, shape)
    xr, xt = x.clone().requires_grad_(), x.clone().requires_grad_()
    ours = call(fn, xr, t, "reference", reduction=reduction)
    with _no_legacy_warnings():
        theirs = F.kl_div(xt, t, reduction=reduction, log_target=log_target)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-14, equal_nan=True)
    if x.numel():
        go = torch.randn(theirs.shape, dtype=torch.float64)
        (g,) = torch.autograd.grad(ours, xr, go)
        (gt,) = torch.autograd.grad(theirs, xt, go)
        torch.testing.assert_close(g, gt, rtol=1e-12, atol=1e-14)
    if reduction == "batchmean" and len(shape) == 2 and x.numel():
        # batchmean is sum / batch size, not the elementwise mean
        torch.testing.assert_close(ours, call(fn, x, t, "reference", reduction="sum") / shape[0])
        assert not torch.isclose(ours, call(fn, x, t, "reference", reduction="mean"))


def _np(v):
    return v.detach().cpu().double().numpy()


def _grad(fn, backend, x, t, **kw):
    xl = x.detach().clone().requires_grad_()
    loss = call(fn, xl, t, backend, **kw)
    (g,) = torch.autograd.grad(loss.sum(), xl)
    return loss.detach(), g


@pytest.mark.parametrize("device, backend", BACKENDS_ALL)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
def test_log_cosh_formula_and_large_d(device, backend, dtype):
    # log cosh d written out (numpy, float64) where cosh does not overflow, and |d| = 1e3 / 60
    # (cosh overflows in float64 beyond ~710): finite, |d| - log 2, gradient tanh(d) = +-1.
    x, t = make_pair("log_cosh", (37, 19), dtype, device)
    loss, g = _grad("log_cosh", backend, x, t, reduction="none")
    d = _np(x) - _np(t)
    tol = dict(rtol=1e-12, atol=1e-13) if dtype == torch.float64 else dict(rtol=2e-6, atol=2e-6)
    np.testing.assert_allclose(_np(loss), np.log(np.cosh(d)), **tol)
    np.testing.assert_allclose(_np(g), np.tanh(d), **tol)
    big = torch.tensor([1e3, -1e3, 60.0, -60.0, 0.0, 1e-4], dtype=torch.float64)
    xb = (big + 0.25).to(device, dtype)
    tb = torch.full_like(xb, 0.25)
    loss, g = _grad("log_cosh", backend, xb, tb, reduction="none")
    assert torch.isfinite(loss).all() and torch.isfinite(g).all()
    db = _np(xb) - _np(tb)
    expected = np.where(np.abs(db) > 30, np.abs(db) - math.log(2.0), np.log(np.cosh(np.clip(db, -30, 30))))
    np.testing.assert_allclose(_np(loss), expected, rtol=tol["rtol"], atol=tol["atol"])
    np.testing.assert_allclose(_np(g), np.tanh(db), rtol=tol["rtol"], atol=tol["atol"])
    assert _np(g)[0] == 1.0 and _np(g)[1] == -1.0
    total = call("log_cosh", xb, tb, backend, reduction="sum")
    assert torch.isfinite(total)


@pytest.mark.parametrize("device, backend", BACKENDS_ALL)
@pytest.mark.parametrize("epsilon", [1e-7, 1e-3])
def test_mape_formula_and_epsilon_branch(device, backend, epsilon):
    # Keras: 100 * mean(|(y - x) / max(|y|, eps)|); gradient 100 sign(x - y) / max(|y|, eps). Targets
    # at and near 0 (below, at and above epsilon, both signs) take the epsilon branch.
    y = torch.tensor(
        [0.0, 1e-9, -1e-9, 1e-7, -1e-7, 5e-7, 1e-4, -1e-3, 2e-3, 0.3, -2.0, 7.0], dtype=torch.float64
    ).repeat(3)
    x = y + torch.randn(y.shape, dtype=torch.float64)
    x, y = x.to(device), y.to(device)
    loss, g = _grad("mape", backend, x, y, reduction="none", epsilon=epsilon)
    xn, yn = _np(x), _np(y)
    den = np.maximum(np.abs(yn), epsilon)
    np.testing.assert_allclose(_np(loss), 100.0 * np.abs((yn - xn) / den), rtol=1e-12, atol=0)
    np.testing.assert_allclose(_np(g), 100.0 * np.sign(xn - yn) / den, rtol=1e-12, atol=0)
    mean = call("mape", x, y, backend, epsilon=epsilon)
    np.testing.assert_allclose(float(mean), 100.0 * np.mean(np.abs((yn - xn) / den)), rtol=1e-12)
    assert torch.isfinite(loss).all()


def _signed_labels_np(y):
    y = np.asarray(y, dtype=np.float64)
    return 2 * y - 1 if np.all((y == 0) | (y == 1)) else y


LABEL_KINDS = ["01", "pm1", "mixed", "soft", "int64", "bool", "all0", "all1"]


def _labels(kind, shape, device):
    hard = make_target(shape, "float")
    if kind == "01":
        return hard.to(device)
    if kind == "pm1":
        return (2 * hard - 1).to(device)
    if kind == "mixed":  # -1, 0 and 1: not all 0/1, so NOT converted (0 stays 0)
        y = torch.randint(-1, 2, shape).double()
        y.view(-1)[:3] = torch.tensor([-1.0, 0.0, 1.0])
        return y.to(device)
    if kind == "soft":
        return make_target(shape, "soft").to(device)
    if kind == "int64":
        return hard.long().to(device)
    if kind == "bool":
        return hard.bool().to(device)
    if kind == "all0":
        return torch.zeros(shape, dtype=torch.float64, device=device)
    return torch.ones(shape, dtype=torch.float64, device=device)


@pytest.mark.parametrize("device, backend", BACKENDS_ALL)
@pytest.mark.parametrize("fn", ["hinge", "squared_hinge", "exponential"])
@pytest.mark.parametrize("label_kind", LABEL_KINDS)
def test_margin_losses_formula_and_label_conversion(device, backend, fn, label_kind):
    # Keras: labels that are all 0 or 1 become -1 / 1 (2y - 1); anything else is used as given.
    # hinge max(1 - y x, 0), grad -y [1 - y x >= 0]; squared hinge max(.)^2, grad -2 y max(.);
    # exponential e^{-y x}, grad -y e^{-y x}.
    shape = (9, 7)
    x = make_logits(shape, torch.float64, device, scale=1.5)
    t = _labels(label_kind, shape, device)
    loss, g = _grad(fn, backend, x, t, reduction="none")
    y = _signed_labels_np(_np(t))
    if label_kind in ("mixed", "soft"):
        np.testing.assert_array_equal(y, _np(t))  # not converted
    else:
        assert set(np.unique(y)) <= {-1.0, 1.0}
    xn = _np(x)
    m = 1 - y * xn
    if fn == "hinge":
        expected, expected_g = np.maximum(m, 0), np.where(m >= 0, -y, 0.0)
    elif fn == "squared_hinge":
        expected, expected_g = np.maximum(m, 0) ** 2, -2 * y * np.maximum(m, 0)
    else:
        expected, expected_g = np.exp(-y * xn), -y * np.exp(-y * xn)
    np.testing.assert_allclose(_np(loss), expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(_np(g), expected_g, rtol=1e-12, atol=1e-14)
    # the Keras mean
    np.testing.assert_allclose(float(call(fn, x, t, backend)), expected.mean(), rtol=1e-12)


@pytest.mark.parametrize("device, backend", BACKENDS_ALL)
def test_sigmoid_l2_formula(device, backend):
    # EasyRec SIGMOID_L2_LOSS: (sigmoid(x) - y)^2, grad 2 (s - y) s (1 - s); logits to +-60 (sigmoid
    # saturates), soft targets; default reduction SBNZ with weights 1 = the mean.
    x = torch.cat([torch.linspace(-60, 60, 121, dtype=torch.float64), torch.randn(60, dtype=torch.float64)])
    t = torch.rand(x.shape, dtype=torch.float64)
    x, t = x.to(device), t.to(device)
    loss, g = _grad("sigmoid_l2", backend, x, t, reduction="none")
    s = 1.0 / (1.0 + np.exp(-_np(x)))
    yn = _np(t)
    np.testing.assert_allclose(_np(loss), (s - yn) ** 2, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(_np(g), 2 * (s - yn) * s * (1 - s), rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(float(call("sigmoid_l2", x, t, backend)), np.mean((s - yn) ** 2), rtol=1e-12)


@pytest.mark.parametrize("device, backend", BACKENDS_ALL)
@pytest.mark.parametrize("epsilon", [1e-7, 1e-3])
def test_log_loss_formula_near_0_and_1(device, backend, epsilon):
    # TF log_loss: -y log(p + eps) - (1 - y) log(1 - p + eps), grad -y / (p + eps) + (1 - y) /
    # (1 - p + eps); probabilities at and near 0 and 1 stay finite thanks to eps; SBNZ over [B]
    # weights with zeros.
    p = torch.tensor([0.0, 1e-12, 1e-8, 1e-3, 0.2, 0.5, 0.9, 1 - 1e-8, 1 - 1e-12, 1.0], dtype=torch.float64)
    p = p.repeat(4)
    y = torch.cat([torch.zeros(10), torch.ones(10), torch.full((10,), 0.3), torch.rand(10)]).double()
    w = torch.rand(40, dtype=torch.float64) + 0.5
    w[::7] = 0.0
    p, y, w = p.to(device), y.to(device), w.to(device)
    loss, g = _grad("log_loss", backend, p, y, reduction="none", epsilon=epsilon)
    pn, yn, wn = _np(p), _np(y), _np(w)
    expected = -yn * np.log(pn + epsilon) - (1 - yn) * np.log(1 - pn + epsilon)
    np.testing.assert_allclose(_np(loss), expected, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(_np(g), -yn / (pn + epsilon) + (1 - yn) / (1 - pn + epsilon), rtol=1e-12)
    assert torch.isfinite(loss).all() and torch.isfinite(g).all()
    sbnz = call("log_loss", p, y, backend, weight=w, epsilon=epsilon)
    np.testing.assert_allclose(float(sbnz), (wn * expected).sum() / np.count_nonzero(wn), rtol=1e-12)


@pytest.mark.parametrize("device, backend", BACKENDS_ALL)
@pytest.mark.parametrize("fn", ["l2", "sigmoid_l2", "log_loss", "mse", "huber"])
@pytest.mark.parametrize(
    "weight", ["B", "B1", "C", "scalar", "tensor0d", "scalar0", "allzero", "none", "expand"]
)
def test_sbnz_formula(device, backend, fn, weight):
    # TF SUM_BY_NONZERO_WEIGHTS: sum(w l) / count_nonzero(w broadcast to the input), 0 when every
    # weight is 0 (with a zero gradient); no weight: every element counts (the mean).
    shape = (12,) if weight == "B" else (12, 5)
    x, t = make_pair(fn, shape, torch.float64, device)
    if weight == "scalar0":
        w = 0.0
    elif weight == "none":
        w = None
    elif weight in ("B", "B1", "C"):
        w = make_weight(weight, shape, torch.float64, device)
        w.view(-1)[::3] = 0.0  # some zero weights
    else:  # scalar, tensor0d, allzero, expand
        w = make_weight(weight, shape, torch.float64, device)
    per = _np(call(fn, x, t, "reference", reduction="none"))
    wn = np.ones(shape) if w is None else np.broadcast_to(_np(torch.as_tensor(w, dtype=torch.float64)), shape)
    count = np.count_nonzero(wn)
    expected = (wn * per).sum() / count if count else 0.0
    loss, g = _grad(fn, backend, x, t, weight=w, reduction=SBNZ)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-12, atol=0)
    if count == 0:
        assert float(loss) == 0.0 and torch.equal(g, torch.zeros_like(g))
    elif count < wn.size:  # zeros leave the denominator: SBNZ is not the weighted mean
        assert not math.isclose(float(loss), (wn * per).mean(), rel_tol=1e-6)


def test_sbnz_default_is_mean_for_easyrec():
    # l2_loss / sigmoid_l2_loss / log_loss default to SBNZ with weights = 1.0: the plain mean.
    for fn in EASYREC:
        x, t = make_pair(fn, (37, 19))
        torch.testing.assert_close(
            call(fn, x, t, "reference"), call(fn, x, t, "reference", reduction="none").mean()
        )
    x, t = make_pair("l2", (37, 19))
    torch.testing.assert_close(call("l2", x, t, "reference"), F.mse_loss(x, t))


# ----------------------------------------------------------------------------------------------
# 2. every fused backend vs the float64 reference
# ----------------------------------------------------------------------------------------------

SHAPES = [(), (7,), (37, 19), (2, 3, 5), (0,), (0, 4)]
# weight layouts that make sense for each shape (see conftest.make_weight)
_WEIGHTS = {
    (): [None, "scalar", "tensor0d"],
    (7,): [None, "scalar", "B", "zeros"],
    (37, 19): [None, "scalar", "tensor0d", "C", "B1", "full", "zeros", "neg", "expand", "transposed"],
    (2, 3, 5): [None, "C", "B1", "mid", "split", "full"],
    (0,): [None, "scalar", "B"],
    (0, 4): [None, "C", "B1"],
}
# one setting per function for the big cross; the parameter sweeps follow
_MAIN_PARAMS = {"huber": {"delta": 1.0}, "smooth_l1": {"beta": 0.5}, "mape": {}, "log_loss": {}}

_W_FULL = [
    (fn, shape, w, red)
    for fn in WEIGHTED
    for shape in SHAPES
    for w in _WEIGHTS[shape]
    for red in REDUCTIONS
]
_W_SUB = [(fn, (37, 19), "C", "none") for fn in WEIGHTED] + [
    (fn, shape, w, red)
    for fn, shape, w, red in [
        ("l1", (37, 19), "zeros", SBNZ),
        ("mse", (2, 3, 5), "split", "mean"),
        ("huber", (2, 3, 5), "mid", "sum"),
        ("smooth_l1", (37, 19), "B1", SBNZ),
        ("log_cosh", (), "tensor0d", "none"),
        ("mape", (7,), "B", "mean"),
        ("hinge", (37, 19), "transposed", "sum"),
        ("squared_hinge", (37, 19), "neg", SBNZ),
        ("exponential", (0, 4), "C", "mean"),
        ("l2", (0,), None, SBNZ),
        ("sigmoid_l2", (37, 19), "expand", SBNZ),
        ("log_loss", (37, 19), "full", "mean"),
        ("l1", (), None, "sum"),
        ("mse", (0, 4), "B1", "none"),
    ]
]


@pytest.mark.parametrize(
    "device, backend, fn, shape, weight, reduction", _cases(_W_FULL, _W_SUB), ids=shape_id
)
def test_matches_reference(device, backend, fn, shape, weight, reduction):
    x, t = make_pair(fn, shape, torch.float64, device)
    w = make_weight(weight, shape, torch.float64, device)
    kw = dict(_MAIN_PARAMS.get(fn, {}), weight=w, reduction=reduction)
    loss, g = assert_matches_reference(fn, backend, x, t, kw)
    if fn not in ("l1", "mse", "huber", "smooth_l1", "log_cosh") or weight in ("neg",):
        return
    # losses >= 0 with nonnegative weights; the mean of nothing is NaN
    assert ((loss >= 0) | (loss.isnan() & (x.numel() == 0))).all()


_P_FULL = [
    (fn, params, shape, w, red)
    for fn, params in [
        ("huber", {"delta": 0.3}),
        ("huber", {"delta": 5.0}),
        ("huber", {}),
        ("smooth_l1", {"beta": 0.0}),
        ("smooth_l1", {}),
        ("mape", {"epsilon": 1e-3}),
        ("log_loss", {"epsilon": 0.0}),
        ("log_loss", {"epsilon": 1e-3}),
    ]
    for shape, w in [((37, 19), None), ((37, 19), "zeros"), ((2, 3, 5), "C"), ((7,), "B")]
    for red in REDUCTIONS
]
_P_SUB = [
    ("huber", {"delta": 0.3}, (37, 19), "zeros", "none"),
    ("huber", {"delta": 5.0}, (37, 19), None, "mean"),
    ("smooth_l1", {"beta": 0.0}, (37, 19), "zeros", "none"),
    ("smooth_l1", {"beta": 0.0}, (2, 3, 5), "C", SBNZ),
    ("log_loss", {"epsilon": 0.0}, (37, 19), None, "sum"),
]


@pytest.mark.parametrize(
    "device, backend, fn, params, shape, weight, reduction", _cases(_P_FULL, _P_SUB), ids=shape_id
)
def test_parameters_match_reference(device, backend, fn, params, shape, weight, reduction):
    # huber delta 0.3 / 1 / 5 (both branches: |d| ~ 3 sqrt 2), smooth_l1 beta 0 (the L1 loss) / 0.5 / 1,
    # MAPE and log_loss epsilon
    x, t = make_pair(fn, shape, torch.float64, device)
    kw = dict(params, weight=make_weight(weight, shape, torch.float64, device), reduction=reduction)
    assert_matches_reference(fn, backend, x, t, kw)


_KL_FULL = [(fn, shape, red) for fn in KL for shape in SHAPES for red in KL_REDUCTIONS]
_KL_SUB = [(fn, (37, 19), red) for fn in KL for red in ("none", "batchmean")] + [
    ("kl_div", (0, 4), "batchmean"),
    ("kl_div_log", (), "batchmean"),
]


@pytest.mark.parametrize("device, backend, fn, shape, reduction", _cases(_KL_FULL, _KL_SUB), ids=shape_id)
def test_kl_div_matches_reference(device, backend, fn, shape, reduction):
    x, t = make_pair(fn, shape, torch.float64, device)
    assert_matches_reference(fn, backend, x, t, dict(reduction=reduction))


@pytest.mark.parametrize(
    "device, backend", [(d, b) for d in DEVICES for b in ["reference", "auto"] + fused_backends_for(d)]
)
@pytest.mark.parametrize("fn", FUNCS)
def test_every_backend_matches_reference(device, backend, fn):
    shape = (37, 19)  # 2-D, one Triton program; [C] weight with zeros and SBNZ where there is one
    x, t = make_pair(fn, shape, torch.float64, device)
    if fn in KL:
        kw = dict(reduction="batchmean")
    else:
        kw = dict(weight=make_weight("zeros", shape, torch.float64, device), reduction=SBNZ)
    assert_matches_reference(fn, backend, x, t, kw)


# ----------------------------------------------------------------------------------------------
# low precision: fp32 / fp16 / bf16 with flash-attn's bound, result dtype
# ----------------------------------------------------------------------------------------------


def _lowp_kw(fn, reduction, shape, device):
    if fn in KL:
        return dict(reduction={SBNZ: "batchmean"}.get(reduction, reduction))
    return dict(weight=make_weight("C", shape, torch.float32, device), reduction=reduction)


_LOWP_FULL = [
    (fn, shape, red) for fn in FUNCS for shape in [(4097,), (37, 19)] for red in ("none", "mean", SBNZ)
]
_LOWP_SUB = [(fn, (37, 19), "none") for fn in FUNCS] + [
    (fn, (37, 19), SBNZ) for fn in ("mse", "log_loss", "kl_div")
]


@pytest.mark.parametrize("device, backend, fn, shape, reduction", _cases(_LOWP_FULL, _LOWP_SUB), ids=shape_id)
@pytest.mark.parametrize("dtype", LOWP, ids=str)
def test_low_precision_matches_reference(device, backend, fn, shape, reduction, dtype):
    x, t = make_pair(fn, shape, dtype, device)
    assert_matches_reference(fn, backend, x, t, _lowp_kw(fn, reduction, shape, device))


@pytest.mark.parametrize("device, backend", [c for c in FUSED if not interpreted(*c)])
@pytest.mark.parametrize("fn", ["mse", "l1", "log_cosh"])
def test_fp16_mean_with_subnormal_scale(device, backend, fn):
    # 1/N = 1.4e-5 is subnormal in fp16: the backward scales in fp32 and rounds once. (Not under
    # the interpreter: 70001 elements; its fp16 tests run (4097,) and (37, 19).)
    x, t = make_pair(fn, (70001,), torch.float16, device)
    assert_matches_reference(fn, backend, x, t, dict(reduction="mean"))


@pytest.mark.parametrize("device, backend", FUSED)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("fn", ["mse", "l1"])
def test_target_of_another_float_dtype(device, backend, dtype, fn):
    # The documented semantics: the target is read in the input's dtype (the op takes it so, and
    # the reference rounds it the same way), not promoted as torch would. With |y| >> |x - y| the
    # rounding dominates, so agreeing here means fused and reference round alike.
    shape = (37, 19)
    x64, t64 = make_pair(fn, shape, torch.float64, device)
    t64 = x64 + 1e-2 * torch.randn_like(x64) + 0.3
    x, t = x64.to(dtype), t64.float()
    assert_matches_reference(fn, backend, x, t, dict(reduction="none"))
    rounded = fusedloss.reference.pointwise_loss_reference(fn if fn != "l2" else "mse", x.double(), t.to(dtype).double(), reduction="none")
    promoted = fusedloss.reference.pointwise_loss_reference(fn, x.double(), t.double(), reduction="none")
    assert not torch.equal(rounded, promoted), "the case does not distinguish the two semantics"


# ----------------------------------------------------------------------------------------------
# sizes: CPU tiles / chunks, Triton blocks, the large launch
# ----------------------------------------------------------------------------------------------

SIZES = [(1,), (1023,), (1025,), (4097,), (16385,)]
_SZ_FULL = [(fn, s, red) for fn in FUNCS for s in SIZES for red in ("none", "sum")] + [
    (fn, s, SBNZ) for fn in ("l1", "l2", "log_loss") for s in SIZES
]
_SZ_SUB = [(fn, (1025,), "sum") for fn in ("l1", "huber", "log_cosh", "kl_div")] + [
    ("mse", (1,), "none"),
    ("log_loss", (1023,), SBNZ),
]


@pytest.mark.parametrize("device, backend, fn, shape, reduction", _cases(_SZ_FULL, _SZ_SUB), ids=shape_id)
def test_sizes(device, backend, fn, shape, reduction):
    x, t = make_pair(fn, shape, torch.float64, device)
    kw = dict(reduction=reduction)
    if fn not in KL and reduction == SBNZ:
        kw["weight"] = make_weight("zeros", shape, torch.float64, device)
    assert_matches_reference(fn, backend, x, t, kw)


_LARGE = [("mse", "sum"), ("log_cosh", "mean"), ("l2", SBNZ), ("kl_div", "batchmean")]


@pytest.mark.parametrize(
    "device, backend, fn, reduction", _cases(_LARGE, [c for c in _LARGE if c[0] == "l2"]), ids=shape_id
)
def test_large_launch(device, backend, fn, reduction):
    # 2**20 + 3 elements in fp32: many Triton programs with a tail, CPU chunks across threads; the
    # accumulation over a million terms checked against torch's own fp32 error. The interpreter
    # runs one (a million elements at milliseconds per program).
    n = (1 << 20) + 3
    x, t = make_pair(fn, (n,), torch.float32, device)
    kw = dict(reduction=reduction)
    if fn == "l2":
        kw["weight"] = make_weight("zeros", (n,), torch.float32, device)
    assert_matches_reference(fn, backend, x, t, kw)


# ----------------------------------------------------------------------------------------------
# layouts: non-contiguous input, canaries
# ----------------------------------------------------------------------------------------------


_T_FULL = [(fn, red) for fn in FUNCS for red in ("none", "sum")]
_T_SUB = [(fn, "none") for fn in FUNCS] + [("mse", "sum"), ("kl_div", "sum")]


@pytest.mark.parametrize("device, backend, fn, reduction", _cases(_T_FULL, _T_SUB))
def test_transposed_input(device, backend, fn, reduction):
    # [19, 37] transposed to [37, 19]: strided input, target and weight; a [C] weight indexes the
    # logical (row-major) position, not the storage position.
    x, t = make_pair(fn, (19, 37), torch.float64, device)
    x, t = x.t(), t.t()
    assert not x.is_contiguous() and not t.is_contiguous()
    shape = tuple(x.shape)
    kw = dict(reduction=reduction)
    if fn not in KL:
        kw["weight"] = make_weight("transposed" if reduction == "none" else "C", shape, torch.float64, device)
    assert_matches_reference(fn, backend, x, t, kw)


@pytest.mark.parametrize("device, backend", FUSED)
@pytest.mark.parametrize("fn", ["mse", "huber", "hinge", "kl_div_log", "log_loss"])
def test_sliced_and_expanded_input(device, backend, fn):
    # a strided slice (every other column) and a stride-0 expanded target
    x, t = make_pair(fn, (13, 22), torch.float64, device)
    x, t = x[:, ::2], t[:1, ::2].expand(13, 11)
    assert not x.is_contiguous() and t.stride(0) == 0
    kw = {} if fn in KL else dict(weight=make_weight("B1", (13, 11), torch.float64, device))
    assert_matches_reference(fn, backend, x, t, dict(kw, reduction="none"))


@pytest.mark.parametrize("device, backend", FUSED)
@pytest.mark.parametrize("fn", ["l1", "mape", "sigmoid_l2", "kl_div"])
@pytest.mark.parametrize("shape", [(1,), (1025,), (37, 19)], ids=shape_id)
def test_canaries(device, backend, fn, shape):
    # Inputs and weights inside NaN-filled buffers: an out-of-bounds read that reaches the result
    # leaks NaN into it (e.g. a weight index without its modulo), a stray write changes a margin.
    x, t = make_pair(fn, shape, torch.float32, device)
    w = make_weight("C" if len(shape) == 2 else "B", shape, torch.float32, device)
    xv, check_x = canary(x)
    tv, check_t = canary(t)
    wv, check_w = canary(w)
    kw = dict(reduction="none") if fn in KL else dict(weight=wv, reduction="sum")
    xl = xv.requires_grad_()
    loss = call(fn, xl, tv, backend, **kw)
    loss.backward(torch.ones_like(loss))
    assert torch.isfinite(loss).all() and torch.isfinite(xl.grad).all()
    for check in (check_x, check_t, check_w):
        check()
    kw = dict(reduction="none") if fn in KL else dict(weight=w, reduction="sum")
    assert_matches_reference(fn, backend, x, t, kw)


# ----------------------------------------------------------------------------------------------
# ties, kinks, large |d|
# ----------------------------------------------------------------------------------------------

TIE_CASES = [
    ("l1", {}, F.l1_loss),
    ("mse", {}, F.mse_loss),
    ("huber", {"delta": 0.5}, F.huber_loss),
    ("smooth_l1", {"beta": 0.0}, F.smooth_l1_loss),
    ("smooth_l1", {"beta": 0.5}, F.smooth_l1_loss),
    ("log_cosh", {}, None),
    ("mape", {}, None),
]


@pytest.mark.parametrize("device, backend", BACKENDS_ALL)
@pytest.mark.parametrize("fn, params, torch_fn", TIE_CASES, ids=lambda v: dict_id(v))
def test_ties_have_zero_gradient(device, backend, fn, params, torch_fn):
    # x == y exactly: sign(0) = 0, so the gradient is 0 there, like torch's (and |d| == delta /
    # beta exactly: torch's branch choice at the kink).
    x, t = make_pair(fn, (8, 9), torch.float64, device)
    x[0, :4] = 2.0
    tie = torch.rand(x.shape, device=device) < 0.4
    t = torch.where(tie, x, t)
    if "delta" in params or "beta" in params:
        # d = x - t = +-edge exactly (dyadic values), and +-2 edge
        edge = params.get("delta", params.get("beta"))
        t[0, :4] = 2.0 - torch.tensor([edge, -edge, 2 * edge, -2 * edge], dtype=torch.float64, device=device)
    loss, g = _grad(fn, backend, x, t, reduction="none", **params)
    assert tie.any() and torch.equal(g[tie & (t == x)], torch.zeros_like(g[tie & (t == x)]))
    if torch_fn is not None:
        xt = x.clone().requires_grad_()
        expected = torch_fn(xt, t, reduction="none", **params)
        (gt,) = torch.autograd.grad(expected.sum(), xt)
        torch.testing.assert_close(loss, expected.detach(), rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(g, gt, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("device, backend", BACKENDS_ALL)
@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16], ids=str)
def test_hinge_kink_gradient(device, backend, dtype):
    # 1 - y x == 0 exactly (x = y = +-1): loss 0 and gradient -y (pointwise_math.h's
    # -y [1 - y x >= 0]: torch's clamp(min=0) and TF's maximum pass the gradient at the tie) on
    # every backend, so auto's reference fallback and the kernels agree. Random fp16 / bf16 logits
    # hit x = +-1 exactly often enough for this to matter.
    x = torch.tensor([1.0, -1.0, 1.0, -1.0, 0.5, 2.0], dtype=dtype, device=device)
    t = torch.tensor([1.0, -1.0, 0.0, 1.0, 0.0, 1.0], dtype=dtype, device=device)  # mixed: not converted
    loss, g = _grad("hinge", backend, x, t, reduction="none")
    assert loss.tolist() == [0.0, 0.0, 1.0, 2.0, 1.0, 0.0]
    assert g.tolist() == [-1.0, 1.0, 0.0, -1.0, 0.0, 0.0]
    t2 = torch.tensor([1.0, -1.0, 1.0, 1.0, 1.0, -1.0], dtype=dtype, device=device)
    loss, g = _grad("hinge", backend, x, t2, reduction="none")
    assert loss.tolist() == [0.0, 0.0, 0.0, 2.0, 0.5, 3.0]
    assert g.tolist() == [-1.0, 1.0, -1.0, -1.0, -1.0, 1.0]
    # squared hinge: 2 max(m, 0) is 0 at the kink either way
    _, g = _grad("squared_hinge", backend, x, t2, reduction="none")
    assert g.tolist() == [0.0, 0.0, 0.0, -4.0, -1.0, 6.0]


@pytest.mark.parametrize("device, backend", BACKENDS_ALL)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize(
    "fn, params, d",
    [
        ("l1", {}, 1e6),
        ("mse", {}, 1e3),
        ("huber", {"delta": 0.3}, 1e6),
        ("smooth_l1", {"beta": 0.5}, 1e6),
        ("log_cosh", {}, 1e3),
        ("sigmoid_l2", {}, 100.0),
        ("exponential", {}, 40.0),
        ("kl_div_log", {}, 40.0),
    ],
)
def test_large_d_is_finite(device, backend, dtype, fn, params, d):
    # |x - y| (or |x| for the logit losses) large: finite loss and gradient, equal to the reference
    base = torch.tensor([d, -d, d / 3, -d / 7, 0.5, -0.25], dtype=torch.float64)
    if fn in ("sigmoid_l2",):
        x, t = base, torch.tensor([0.0, 1.0, 0.3, 1.0, 0.0, 0.7], dtype=torch.float64)
    elif fn == "exponential":
        x, t = base, torch.tensor([1.0, -1.0, -1.0, 1.0, 1.0, -1.0], dtype=torch.float64)
    elif fn == "kl_div_log":
        x, t = torch.zeros(6, dtype=torch.float64) - 1.0, base.clamp(max=d / 3) - d / 3
    else:
        x, t = base + 0.125, torch.full((6,), 0.125, dtype=torch.float64)
    x, t = x.to(device, dtype), t.to(device, dtype)
    loss, g = assert_matches_reference(fn, backend, x, t, dict(params, reduction="none"))
    assert torch.isfinite(loss).all() and torch.isfinite(g).all()
    total, _ = assert_matches_reference(fn, backend, x, t, dict(params, reduction="sum"))
    assert torch.isfinite(total)


# ----------------------------------------------------------------------------------------------
# targets of other dtypes, empty input, grad_output, gradcheck, double backward
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("device, backend", BACKENDS_ALL)
@pytest.mark.parametrize("fn", ["l1", "mse", "hinge", "exponential", "log_loss"])
@pytest.mark.parametrize("target_kind", ["int64", "int32", "uint8", "bool"])
def test_int_and_bool_targets(device, backend, fn, target_kind):
    # same loss and grad as the float 0/1 target
    x, _ = make_pair(fn, (37, 19), torch.float32, device)
    t = make_target((37, 19), target_kind, device=device)
    kw = dict(reduction="none")
    loss_i, g_i, go = forward_backward(fn, backend, x, t, kw)
    loss_f, g_f, _ = forward_backward(fn, backend, x, t.float(), kw, go=go)
    torch.testing.assert_close(loss_i, loss_f, rtol=0, atol=0)
    torch.testing.assert_close(g_i, g_f, rtol=0, atol=0)


@pytest.mark.parametrize("device, backend", BACKENDS_ALL)
@pytest.mark.parametrize("fn", FUNCS)
def test_empty_input(device, backend, fn):
    # 0 elements: mean -> NaN (torch), sum -> 0, SBNZ -> 0, none -> empty, batchmean -> NaN (0 / 0);
    # the gradient is empty, of the input's shape
    for shape in ((0,), (0, 4)):
        x, t = make_pair(fn, shape, torch.float32, device)
        xl = x.clone().requires_grad_()
        reds = KL_REDUCTIONS if fn in KL else REDUCTIONS
        for red in reds:
            loss = call(fn, xl, t, backend, reduction=red)
            if red == "none":
                assert loss.shape == shape
            elif red in ("mean", "batchmean"):
                assert loss.shape == () and math.isnan(loss.item())
            else:
                assert loss.shape == () and loss.item() == 0.0
            (g,) = torch.autograd.grad(loss, xl, torch.ones_like(loss))
            assert g.shape == shape and g.dtype == x.dtype
        if fn not in KL:
            loss = call(fn, xl, t, backend, weight=torch.ones(shape[-1:], device=device), reduction=SBNZ)
            assert loss.item() == 0.0


@pytest.mark.parametrize("device, backend", FUSED)
@pytest.mark.parametrize(
    "fn, kw",
    [
        ("l1", dict(reduction="none")),
        ("mse", dict(reduction="mean")),
        ("huber", dict(reduction="sum", delta=0.5)),
        ("l2", dict(weight="zeros")),  # SBNZ
        ("kl_div", dict(reduction="batchmean")),
        ("exponential", dict(reduction="none", weight="C")),
    ],
    ids=lambda v: dict_id(v),
)
@pytest.mark.parametrize("grad_kind", ["ones", "random"])
def test_grad_output(device, backend, fn, kw, grad_kind):
    # "random": per-element grad_output for reduction none, a random scalar for reduced losses
    x, t = make_pair(fn, (37, 19), torch.float64, device)
    kw = {k: make_weight(v, (37, 19), torch.float64, device) if k == "weight" else v for k, v in kw.items()}
    _, g, go = forward_backward(fn, backend, x, t, kw, grad_kind)
    assert (go == 1).all() if grad_kind == "ones" else not (go == 1).any()
    _, ref_g = reference_fb(fn, x, t, kw, go)
    torch.testing.assert_close(g, ref_g, rtol=1e-10, atol=1e-12)


_GRADCHECK = [
    ("mse", dict(reduction="none")),
    ("huber", dict(delta=0.7, weight="C", reduction="mean")),
    ("log_cosh", dict(weight="zeros", reduction=SBNZ)),
    ("squared_hinge", dict(reduction="sum")),
    ("sigmoid_l2", dict(weight="B1")),
    ("kl_div_log", dict(reduction="batchmean")),
    ("log_loss", dict(reduction="none")),
]


@pytest.mark.parametrize(
    "device, backend, fn, kw",
    [
        (d, b, fn, kw)
        for d, b in BACKENDS_ALL
        for fn, kw in _GRADCHECK
        if not interpreted(d, b) or fn in ("huber", "kl_div_log")  # ~50 launches per gradcheck
    ],
    ids=lambda v: dict_id(v),
)
def test_gradcheck(device, backend, fn, kw):
    shape = (4, 5)  # small: gradcheck perturbs every element twice
    x, t = make_pair(fn, shape, torch.float64, device)
    kw = {k: make_weight(v, shape, torch.float64, device) if k == "weight" else v for k, v in kw.items()}
    x.requires_grad_()
    assert torch.autograd.gradcheck(lambda xx: call(fn, xx, t, backend, **kw), (x,), eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("device, backend", FUSED)
@pytest.mark.parametrize("fn", ["mse", "log_cosh", "kl_div"])
def test_double_backward_is_right_or_raises(device, backend, fn):
    x, t = make_pair(fn, (4, 5), torch.float64, device)
    xl = x.clone().requires_grad_()
    try:
        (g,) = torch.autograd.grad(call(fn, xl, t, backend, reduction="sum"), xl, create_graph=True)
        (h,) = torch.autograd.grad((g * g).sum(), xl)
    except RuntimeError:
        return  # refusing double backward is acceptable
    xr = x.clone().requires_grad_()
    (gr,) = torch.autograd.grad(call(fn, xr, t, "reference", reduction="sum"), xr, create_graph=True)
    (hr,) = torch.autograd.grad((gr * gr).sum(), xr)
    torch.testing.assert_close(h, hr, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("isa", ["base", "avx2", "native"])
@pytest.mark.parametrize("fn", [f for f in FUNCS if f != "l2"])  # every kind (l2 is mse's)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16], ids=str)
def test_cpu_isa_variants_match_reference(monkeypatch, isa, fn, dtype):
    # FUSEDLOSS_CPU_ISA lowers the loop the C++ kernel picks; 67 x 31 = 2077 elements: full vectors
    # plus a scalar tail in every variant, with a [C] weight.
    if isa != "native":
        monkeypatch.setenv("FUSEDLOSS_CPU_ISA", isa)
    shape = (67, 31)
    x, t = make_pair(fn, shape, dtype)
    kw = dict(reduction="none")
    if fn not in KL:
        kw["weight"] = make_weight("C", shape, torch.float32)
    assert_matches_reference(fn, "cpu", x, t, kw)
    assert_matches_reference(fn, "cpu", x, t, dict(kw, reduction="sum"))


# ----------------------------------------------------------------------------------------------
# 3. legacy size_average / reduce
# ----------------------------------------------------------------------------------------------

LEGACY = [
    (None, False), (False, None), (True, None), (False, True), (True, True), (None, True), (True, False)
]


@pytest.mark.parametrize("device, backend", BACKENDS_ALL)
@pytest.mark.parametrize("fn", ["l1", "mse", "smooth_l1", "kl_div"])
@pytest.mark.parametrize("size_average, reduce", LEGACY)
def test_legacy_reduction_arguments(device, backend, fn, size_average, reduce):
    # mapped like torch (legacy_get_string): reduce=False -> none; else size_average False -> sum,
    # otherwise mean; and they override ``reduction``.
    torch_fn = {"l1": F.l1_loss, "mse": F.mse_loss, "smooth_l1": F.smooth_l1_loss, "kl_div": F.kl_div}[fn]
    x, t = make_pair(fn, (5, 6), torch.float64, device)
    xl, xt = x.clone().requires_grad_(), x.clone().requires_grad_()
    with _no_legacy_warnings():
        ours = call(fn, xl, t, backend, size_average=size_average, reduce=reduce, reduction="sum")
        theirs = torch_fn(xt, t, size_average=size_average, reduce=reduce, reduction="sum")
    expected_red = "none" if reduce is False else ("sum" if size_average is False else "mean")
    assert ours.shape == (x.shape if expected_red == "none" else ())
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-14)
    go = torch.randn(ours.shape, dtype=torch.float64, device=device)
    (g,) = torch.autograd.grad(ours, xl, go)
    (gt,) = torch.autograd.grad(theirs, xt, go)
    torch.testing.assert_close(g, gt, rtol=1e-12, atol=1e-14)


# ----------------------------------------------------------------------------------------------
# 4. bad input
# ----------------------------------------------------------------------------------------------


def _bad_cases():
    x = torch.randn(6, 4)
    t = torch.randn(6, 4)
    cases = []
    for name in FUNCS:
        f = PUBLIC[name]
        cases += [
            (name + "-target-shape", lambda f=f: f(x, t[:, :3]), ValueError, "target"),
            (name + "-target-broadcastable", lambda f=f: f(x, t[:1]), ValueError, "target"),
            (name + "-target-list", lambda f=f: f(x, t.tolist()), TypeError, "target"),
            (name + "-target-number", lambda f=f: f(x, 1.0), TypeError, "target"),
            (name + "-target-complex", lambda f=f: f(x, t.to(torch.complex64)), TypeError, "target"),
            (name + "-int-input", lambda f=f: f(x.long(), t), TypeError, "input"),
            (name + "-bool-input", lambda f=f: f(x > 0, t), TypeError, "input"),
            (name + "-list-input", lambda f=f: f(x.tolist(), t), TypeError, "input"),
            (name + "-meta-target", lambda f=f: f(x, t.to("meta")), ValueError, "device"),
            (name + "-reduction", lambda f=f: f(x, t, reduction="avg"), ValueError, "reduction"),
            (name + "-backend-unknown", lambda f=f: f(x, t, backend="fast"), ValueError, "backend"),
        ]
        if not torch.cuda.is_available():
            cases.append((name + "-backend-cuda", lambda f=f: f(x, t, backend="cuda"), ValueError, "cuda"))
    for name in WEIGHTED:
        wkey = "weights" if name in EASYREC else "weight"
        f = PUBLIC[name]
        cases += [
            (name + "-batchmean", lambda f=f: f(x, t, reduction="batchmean"), ValueError, "reduction"),
            (name + "-weight-shape", lambda f=f, k=wkey: f(x, t, **{k: torch.ones(5)}), ValueError, "weight"),
            (name + "-weight-rows", lambda f=f, k=wkey: f(x, t, **{k: torch.ones(6)}), ValueError, "weight"),
            (name + "-weight-dims", lambda f=f, k=wkey: f(x, t, **{k: torch.ones(2, 6, 4)}), ValueError,
             "weight"),
            (name + "-weight-int", lambda f=f, k=wkey: f(x, t, **{k: torch.ones(4, dtype=torch.int64)}),
             TypeError, "weight"),
            (name + "-weight-bool", lambda f=f, k=wkey: f(x, t, **{k: True}), TypeError, "weight"),
            (name + "-weight-str", lambda f=f, k=wkey: f(x, t, **{k: "1"}), TypeError, "weight"),
            (name + "-weight-nan", lambda f=f, k=wkey: f(x, t, **{k: float("nan")}), ValueError, "weight"),
            (name + "-weight-meta", lambda f=f, k=wkey: f(x, t, **{k: torch.ones(4, device="meta")}),
             ValueError, "device"),
        ]
    hub, sl1, mape, ll, kl = (
        fusedloss.huber_loss,
        fusedloss.smooth_l1_loss,
        fusedloss.mean_absolute_percentage_error,
        fusedloss.log_loss,
        fusedloss.kl_div,
    )
    cases += [
        ("huber-delta-0", lambda: hub(x, t, delta=0.0), ValueError, "delta"),
        ("huber-delta-neg", lambda: hub(x, t, delta=-1.0), ValueError, "delta"),
        ("huber-delta-nan", lambda: hub(x, t, delta=float("nan")), ValueError, "delta"),
        ("huber-delta-inf", lambda: hub(x, t, delta=float("inf")), ValueError, "delta"),
        ("huber-delta-str", lambda: hub(x, t, delta="1"), TypeError, "delta"),
        ("huber-delta-bool", lambda: hub(x, t, delta=True), TypeError, "delta"),
        ("smooth_l1-beta-neg", lambda: sl1(x, t, beta=-0.1), ValueError, "beta"),
        ("smooth_l1-beta-nan", lambda: sl1(x, t, beta=float("nan")), ValueError, "beta"),
        ("smooth_l1-beta-tensor", lambda: sl1(x, t, beta=torch.tensor(1.0)), TypeError, "beta"),
        ("mape-epsilon-0", lambda: mape(x, t, epsilon=0.0), ValueError, "epsilon"),
        ("mape-epsilon-neg", lambda: mape(x, t, epsilon=-1e-7), ValueError, "epsilon"),
        ("mape-epsilon-inf", lambda: mape(x, t, epsilon=float("inf")), ValueError, "epsilon"),
        ("log_loss-epsilon-neg", lambda: ll(x.sigmoid(), t, epsilon=-1e-7), ValueError, "epsilon"),
        ("kl_div-sbnz", lambda: kl(x, t, reduction=SBNZ), ValueError, "reduction"),
        ("kl_div-log_target-sbnz", lambda: kl(x, t, reduction=SBNZ, log_target=True), ValueError,
         "reduction"),
    ]
    return cases


@pytest.mark.parametrize("case", _bad_cases(), ids=lambda c: c[0])
def test_bad_input(case):
    _, thunk, exc, match = case
    with pytest.raises(exc, match=match):
        thunk()


@pytest.mark.parametrize("backend", ["reference", "cpu", "triton"])
def test_bad_input_explicit_backend(backend):
    # the same checks run before any backend (the C++ / Triton layers never see bad input), and the
    # valid edge values pass: delta > 0 tiny, beta = 0, log_loss epsilon = 0
    x, t = torch.randn(6, 4), torch.randn(6, 4)
    with pytest.raises(ValueError, match="target"):
        fusedloss.mse_loss(x, t[:3], backend=backend)
    with pytest.raises(ValueError, match="weight"):
        fusedloss.l1_loss(x, t, weight=torch.ones(5), backend=backend)
    with pytest.raises(ValueError, match="delta"):
        fusedloss.huber_loss(x, t, delta=0.0, backend=backend)
    with pytest.raises(TypeError, match="target"):
        fusedloss.hinge_loss(x, t.to(torch.complex64), backend=backend)
    if backend == "triton" and not INTERPRET:
        return
    assert torch.isfinite(fusedloss.huber_loss(x, t, delta=1e-30, backend=backend))
    assert torch.isfinite(fusedloss.smooth_l1_loss(x, t, beta=0, backend=backend))
    p, q = x.sigmoid() * 0.9 + 0.05, t.sigmoid()
    assert torch.isfinite(fusedloss.log_loss(p, q, epsilon=0, backend=backend))


# ----------------------------------------------------------------------------------------------
# fused backends differentiate input only: auto falls back to the reference
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "fn, which",
    [("mse", "weight"), ("l2", "weight"), ("huber", "target"), ("hinge", "target"), ("kl_div", "target")],
)
def test_grad_of_other_args_falls_back(device, fn, which):
    shape = (37, 19)
    x, t = make_pair(fn, shape, torch.float64, device)
    if fn == "hinge":
        t = 2 * t - 1  # already -1/1: the conversion is the identity, a gradient flows to t
    if fn == "kl_div":
        t = t + 0.05  # no zero target: d/dy of y log y is -inf there
    kw = dict(reduction="sum") if fn != "l2" else {}
    if which == "weight":
        kw["weight"] = make_weight("C", shape, torch.float64, device)
    leaf = (t if which == "target" else kw["weight"]).requires_grad_()
    # explicit fused backends refuse
    for backend in fused_backends_for(device):
        with pytest.raises(ValueError, match="requires grad"):
            call(fn, x, t, backend, **kw)
    # auto runs no fused op and returns the reference's gradients for both tensors
    xl = x.clone().requires_grad_()
    loss = None

    def run():
        nonlocal loss
        loss = call(fn, xl, t, "auto", **kw)

    assert fusedloss_ops_called(run) == []
    gx, gother = torch.autograd.grad(loss, (xl, leaf))
    xr = x.clone().requires_grad_()
    ref_loss = call(fn, xr, t, "reference", **kw)
    rx, rother = torch.autograd.grad(ref_loss, (xr, leaf))
    torch.testing.assert_close(loss, ref_loss, rtol=1e-12, atol=0)
    torch.testing.assert_close(gx, rx, rtol=1e-12, atol=0)
    torch.testing.assert_close(gother, rother, rtol=1e-12, atol=0)
    assert gother.abs().sum() > 0
    # under no_grad the fused path is fine again
    with torch.no_grad():
        assert fusedloss_ops_called(lambda: call(fn, xl, t, "auto", **kw)) == ["fusedloss::pointwise_fwd"]


@pytest.mark.parametrize("fn", FUNCS)
def test_auto_picks_cpu_kernel(fn):
    x, t = make_pair(fn, (37, 19), torch.float32)
    x.requires_grad_()
    kw = {} if fn in KL else dict(weight=make_weight("C", (37, 19), torch.float32))
    assert fusedloss_ops_called(lambda: call(fn, x, t, "auto", **kw)) == ["fusedloss::pointwise_fwd"]
    # the same result as the explicit cpu backend
    torch.testing.assert_close(call(fn, x, t, "auto", **kw), call(fn, x, t, "cpu", **kw), rtol=0, atol=0)
    if INTERPRET:
        ops = fusedloss_ops_called(lambda: call(fn, x, t, "triton", **kw))
        assert ops == ["fusedloss::pointwise_fwd_triton"]
    assert fusedloss_ops_called(lambda: call(fn, x, t, "reference", **kw)) == []


@NEEDS_CUDA
@pytest.mark.parametrize("fn", ["mse", "log_cosh", "kl_div"])
def test_auto_picks_cuda_kernel(fn):
    assert torch._C._dispatch_has_kernel_for_dispatch_key("fusedloss::pointwise_fwd", "CUDA")
    x, t = make_pair(fn, (37, 19), torch.float32, "cuda")
    assert fusedloss_ops_called(lambda: call(fn, x, t, "auto")) == ["fusedloss::pointwise_fwd"]


# ----------------------------------------------------------------------------------------------
# 5. registration: kernels, raw op outputs, opcheck, torch.compile
# ----------------------------------------------------------------------------------------------

OP_OF_BACKEND = {"cpu": "pointwise_fwd", "cuda": "pointwise_fwd", "triton": "pointwise_fwd_triton"}
FN_OF_KIND = {
    "l1": "l1", "mse": "mse", "huber": "huber", "smooth_l1": "smooth_l1", "log_cosh": "log_cosh",
    "mape": "mape", "hinge": "hinge", "squared_hinge": "squared_hinge", "exponential": "exponential",
    "sigmoid_mse": "sigmoid_l2", "log_loss": "log_loss", "kl_div": "kl_div",
    "kl_div_log_target": "kl_div_log",
}
RAW_PARAM = {"huber": 0.7, "smooth_l1": 0.5, "mape": 1e-7, "log_loss": 1e-7}
RAW_SHAPE = (4, 6, 5)  # 3-D, 120 elements: one Triton program; [C], [B, 1, 1], full, split weights
OPCHECK_UTILS = ("test_schema", "test_autograd_registration", "test_faketensor", "test_aot_dispatch_dynamic")


def _op(backend):
    return getattr(torch.ops.fusedloss, OP_OF_BACKEND[backend]).default


def raw_args(device, dtype, kind, reduction, weight, permuted=False, requires_grad=False, compute_grad=True,
             shape=RAW_SHAPE):
    """The op's arguments as run_pointwise prepares them; also the full-shape weight (or None)."""
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    fn = FN_OF_KIND[kind]
    if permuted:  # dense but permuted: storage order (5, 4, 6), logical shape (4, 6, 5)
        x, t = make_pair(fn, (shape[2], shape[0], shape[1]), dtype, device)
        x, t = x.permute(1, 2, 0), t.permute(1, 2, 0)
        assert not x.is_contiguous() and x.shape == shape
    else:
        x, t = make_pair(fn, shape, dtype, device)
    if fn in ("hinge", "squared_hinge", "exponential"):
        t = 2 * t - 1  # the op takes labels already in {-1, 1}
    x = x.detach().requires_grad_(requires_grad)
    w = make_weight(weight, shape, acc, device)
    if weight is not None and w.numel() > 2:
        w = w * (torch.arange(w.numel(), device=device) % 3 != 0).reshape(w.shape)  # zeros leave N_nz
    wflat, layout = broadcast_layout(w, torch.Size(shape), acc)
    args = (x, t, wflat, pw_ops.KINDS[kind], float(RAW_PARAM.get(kind, 0.0)), pw_ops.REDUCTIONS[reduction],
            layout, compute_grad)
    return args, (None if w is None else w.expand(shape))


def test_cpu_op_has_a_cpu_kernel():
    # The CI always builds the C++ extension: a missing CPU kernel is a failure, never a skip.
    assert torch._C._dispatch_has_kernel_for_dispatch_key("fusedloss::pointwise_fwd", "CPU")


@NEEDS_CUDA
def test_cuda_op_has_a_cuda_kernel():
    assert torch._C._dispatch_has_kernel_for_dispatch_key("fusedloss::pointwise_fwd", "CUDA")


def _opcheck_cases():
    out = []
    for device, backend in FUSED:
        for kind, reduction, weight in [
            ("l1", "none", "B1"),
            ("mse", "mean", None),
            ("huber", "sum", "C"),
            ("smooth_l1", SBNZ, "full"),
            ("log_cosh", "none", None),
            ("mape", "mean", "C"),
            ("hinge", SBNZ, "split"),
            ("squared_hinge", "sum", None),
            ("exponential", "none", "C"),
            ("sigmoid_mse", SBNZ, "B1"),
            ("log_loss", SBNZ, None),
            ("kl_div", "sum", None),
            ("kl_div_log_target", "none", None),
        ]:
            interp = interpreted(device, backend)
            out.append((device, backend, kind, reduction, weight, False, True, True))
            if kind in ("l1", "huber", "hinge", "log_loss", "kl_div_log_target") and not interp:
                out.append((device, backend, kind, reduction, weight, True, True, True))
            if kind in ("mse", "smooth_l1", "sigmoid_mse") or (kind == "l1" and not interp):
                for requires_grad, compute_grad in ((False, False), (False, True)):
                    out.append((device, backend, kind, reduction, weight, kind == "sigmoid_mse",
                                requires_grad, compute_grad))
    return out


@pytest.mark.parametrize(
    "device, backend, kind, reduction, weight, permuted, requires_grad, compute_grad",
    _opcheck_cases(),
    ids=str,
)
def test_opcheck(device, backend, kind, reduction, weight, permuted, requires_grad, compute_grad):
    args, _ = raw_args(device, torch.float32, kind, reduction, weight, permuted, requires_grad, compute_grad)
    torch.library.opcheck(_op(backend), args)


@pytest.mark.parametrize("device, backend", FUSED)
def test_opcheck_fp64_and_empty(device, backend):
    op = _op(backend)
    for reduction in REDUCTIONS:
        args, _ = raw_args(device, torch.float64, "huber", reduction, "C", True, True, True)
        torch.library.opcheck(op, args)
    # empty, every reduction: [0, 4] with a [C] weight and grad, [0] without either
    for shape, weight, rg in (((0, 4), "C", True), ((0,), None, False)):
        for reduction in REDUCTIONS:
            args, _ = raw_args(device, torch.float32, "mse", reduction, weight, False, rg, rg, shape)
            utils = OPCHECK_UTILS
            if reduction == "mean":
                # the loss is NaN (the mean of nothing), and opcheck's eager-vs-AOT comparison has no
                # equal_nan; test_raw_op_empty_and_all_zero_weight checks the NaN itself
                utils = tuple(u for u in OPCHECK_UTILS if u != "test_aot_dispatch_dynamic")
            torch.library.opcheck(op, args, test_utils=utils)


_RAW_FULL = [(kind, red) for kind in pw_ops.KINDS for red in REDUCTIONS]
_RAW_SUB = [(k, r) for k, r in _RAW_FULL if r in ("none", SBNZ) or k in ("l1", "kl_div")]


@pytest.mark.parametrize("device, backend, kind, reduction", _cases(_RAW_FULL, _RAW_SUB))
def test_raw_op_outputs(device, backend, kind, reduction):
    # (loss, grad, scale): grad = d(sum of w l) / d input, unscaled; scale 0-d in the accumulation
    # dtype: 1 (none, sum), 1/N (mean), 1/N_nz (SBNZ). Permuted input, [B, 1, 1] weight with zeros.
    # Interpreter: none and SBNZ for every kind, sum and mean for two.
    args, wfull = raw_args(device, torch.float64, kind, reduction, "B1", permuted=True)
    loss, grad, scale = _op(backend)(*args)
    x, t, param = args[0], args[1], args[4]
    x64 = x.detach().clone().requires_grad_()
    per = ref.pointwise_loss_reference(kind, x64, t, param, wfull, "none")
    (ref_grad,) = torch.autograd.grad(per.sum(), x64)
    n, n_nz = x.numel(), int((wfull != 0).sum())
    assert scale.shape == () and scale.dtype == torch.float64
    expected_scale = {"none": 1.0, "sum": 1.0, "mean": 1.0 / n, SBNZ: 1.0 / n_nz}[reduction]
    assert math.isclose(float(scale), expected_scale, rel_tol=1e-12)
    if reduction == "none":
        assert loss.shape == RAW_SHAPE
        torch.testing.assert_close(loss, per.detach(), rtol=1e-10, atol=1e-12)
    else:
        assert loss.shape == ()
        torch.testing.assert_close(loss, per.detach().sum() * expected_scale, rtol=1e-10, atol=1e-12)
    assert grad.shape == RAW_SHAPE and grad.dtype == torch.float64
    torch.testing.assert_close(grad, ref_grad, rtol=1e-10, atol=1e-12)
    _, no_grad, _ = _op(backend)(*args[:-1], False)
    assert no_grad.numel() == 0
    # low precision: loss and grad in the input's dtype, scale in float32
    args16, _ = raw_args(device, torch.float16, kind, reduction, None)
    loss16, grad16, scale16 = _op(backend)(*args16)
    assert loss16.dtype == grad16.dtype == torch.float16 and scale16.dtype == torch.float32


@pytest.mark.parametrize("device, backend", FUSED)
def test_raw_op_empty_and_all_zero_weight(device, backend):
    # N = 0: mean -> NaN with scale 0; SBNZ -> 0 with scale 0. All-zero weight: SBNZ -> 0, scale 0.
    op = _op(backend)
    for reduction, expect in (("mean", float("nan")), (SBNZ, 0.0), ("sum", 0.0)):
        args, _ = raw_args(device, torch.float32, "mse", reduction, None, shape=(0, 4))
        loss, grad, scale = op(*args)
        assert loss.shape == () and grad.shape == (0, 4)
        assert (math.isnan(loss.item()) if math.isnan(expect) else loss.item() == expect)
        if reduction != "sum":
            assert scale.item() == 0.0
    args, _ = raw_args(device, torch.float64, "l1", SBNZ, "allzero")
    loss, grad, scale = op(*args)
    assert loss.item() == 0.0 and scale.item() == 0.0


@pytest.mark.parametrize("device, backend", FUSED)
def test_compute_grad_false_with_requires_grad_raises(device, backend):
    # an input that requires grad with no gradient computed would silently train on zeros
    args, _ = raw_args(device, torch.float32, "mse", "mean", None, requires_grad=True, compute_grad=False)
    with pytest.raises(RuntimeError, match="compute_grad=False"):
        _op(backend)(*args)
    # the public path asks for no gradient under no_grad, and then returns a loss without a graph
    x, t = args[0], args[1]
    with torch.no_grad():
        loss = fusedloss.mse_loss(x, t, backend=backend)
    assert not loss.requires_grad


def _compiled_public(name, backend):
    def f(x, t, w):
        if name == "l1":
            return fusedloss.l1_loss(x, t, weight=w, backend=backend)
        if name == "huber":
            return fusedloss.huber_loss(x, t, reduction="none", delta=0.5, weight=w, backend=backend)
        if name == "hinge":  # 0/1 labels: the Keras conversion traced without a host sync
            return fusedloss.hinge_loss(x, t, reduction=SBNZ, weight=w, backend=backend)
        if name == "kl_div":
            return fusedloss.kl_div(x, t, reduction="batchmean", log_target=True, backend=backend)
        return fusedloss.log_loss(x.sigmoid(), t, w, backend=backend)

    return f


def _compile_cases():
    out = []
    for device, backend in FUSED:
        interp = interpreted(device, backend)
        for name in ("l1", "hinge") if interp else ("l1", "huber", "hinge", "kl_div", "log_loss"):
            out.append((device, backend, name, True))
        if not interp:
            out.append((device, backend, "l1", False))
    return out


@pytest.mark.parametrize("device, backend, name, dynamic", _compile_cases())
def test_compile_fullgraph(device, backend, name, dynamic):
    # validation, backend choice, the label conversion, the weight layout and the fused op trace
    # without a graph break; forward and backward against eager's float64 reference, for two batch
    # sizes (dynamic=True: one graph; dynamic=False: a recompile). Interpreter: two functions.
    torch._dynamo.reset()
    compiled = torch.compile(_compiled_public(name, backend), fullgraph=True, dynamic=dynamic)
    for rows in (16, 37):
        shape = (rows, 7)
        fn = {"kl_div": "kl_div_log", "log_loss": "sigmoid_l2"}.get(name, name)
        x, t = make_pair(fn, shape, torch.float32, device)
        w = make_weight("C", shape, torch.float32, device)
        w[0] = 0.0
        xl = x.clone().requires_grad_()
        loss = compiled(xl, t, w)
        go = torch.randn_like(loss)
        loss.backward(go)
        xr = x.double().requires_grad_()
        expected = _compiled_public(name, "reference")(xr, t.double(), w.double())
        expected.backward(go.double())
        assert loss.dtype == torch.float32 and loss.shape == expected.shape
        torch.testing.assert_close(loss.detach(), expected.detach().float(), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(xl.grad, xr.grad.float(), rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------------------------
# nn modules: torch's constructors
# ----------------------------------------------------------------------------------------------

_MODULES = [
    ("L1Loss", {}, {}), ("MSELoss", dict(reduction="sum"), {}), ("SmoothL1Loss", dict(beta=0.5), {}),
    ("HuberLoss", dict(delta=0.3, reduction="none"), {}), ("KLDivLoss", dict(reduction="batchmean"), {}),
    ("KLDivLoss", dict(log_target=True, reduction="sum"), {}), ("MSELoss", dict(size_average=False), {}),
]


@pytest.mark.parametrize("name, kw, _unused", _MODULES, ids=str)
def test_nn_modules_match_torch(name, kw, _unused):
    torch.manual_seed(0)
    x = torch.randn(6, 5, dtype=torch.float64)
    t = torch.randn(6, 5, dtype=torch.float64)
    if name == "KLDivLoss":
        x = torch.log_softmax(x, 1)
        t = torch.log_softmax(t, 1) if kw.get("log_target") else torch.softmax(t, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # size_average's deprecation
        ours = getattr(fusedloss.nn, name)(**kw, backend="cpu")
        theirs = getattr(torch.nn, name)(**kw)
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    la, lb = ours(a, t), theirs(b, t)
    go = torch.rand_like(la) + 0.5
    la.backward(go)
    lb.backward(go)
    torch.testing.assert_close(la, lb, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-12, atol=1e-12)
