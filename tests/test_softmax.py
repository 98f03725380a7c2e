"""Softmax family: cross_entropy (torch's, plus z-loss) and softmax_focal_loss; the op fusedloss::softmax_fwd.

Truth, always float64, loss and input gradient (with a random grad_output):
    - ``torch.nn.functional.cross_entropy`` itself for the cross-entropy without z-loss (class
      indices and probabilities, weight, ignore_index, label_smoothing, every reduction);
    - ``fusedloss.reference`` for the z-loss and the focal loss. That reference is anchored outside
      the package here: the z-loss by its formula written out (CE + z lse^2 over the rows not ignored,
      reduced with the CE's own denominator), the focal loss by softmax / log / pow written out, by
      gamma = 0 being torch's cross-entropy, and a per-class alpha at gamma = 0 being torch's weight.
Low precision (fp32, fp16, bf16): flash-attn's bound (``lowp_bound``): at most twice as far from the
float64 truth as torch (or the reference) computed in the same dtype, plus a few ulps.

The large parameter crosses run on ``reference`` and the C++ ``cpu`` backend (and ``cuda`` / compiled
``triton`` with a GPU); the Triton interpreter (~2-3 ms per program, one core) gets a subset
that still touches every option, dtype and shape path.

Shapes and the path each one hits (Triton: rows of C <= 4096 classes, 2048 in fp64, in one tile with
rows stacked to >= 1024 elements per program; longer rows loop over chunks; D > 1 is the strided path):
    (7,)           unbatched [C], target 0-d; reduction "none" returns a 0-d loss
    (1, 1), (6, 1) C = 1: the loss is 0 (with smoothing too), the gradient 0
    (5, 3)         tiny, C not a power of two
    (37, 19)       the default: odd N and C; two Triton programs of 32 rows, the second with 5
    (130, 9)       three Triton programs of 64 rows, the last one with 2
    (3, 100)       C not a power of two, a partial 128-wide tile
    (2, 5, 3, 7)   [N, C, d1, d2]: D = 21 positions per example, class stride 21 (strided path)
    (2, 100, 21)   strided with 8 positions per program: three position blocks, the last with 5
    (2, 5000)      C larger than one Triton block: the looped (chunked) path, fp32 and fp64
    (1, 5000, 3)   strided and looped
    (0, 7), (0, 7, 3), (2, 7, 0)   empty: mean -> NaN (torch), sum -> 0, none -> empty
"""

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import (
    DEVICES,
    NEEDS_CUDA,
    OpRecorder,
    backends_for,
    canary,
    fused_backends_for,
    fusedloss_ops_called,
    lowp_bound,
    make_logits,
    make_target,
)

import fusedloss
from fusedloss import nn as fl_nn
from fusedloss.reference import softmax as ref

REDUCTIONS = ("none", "mean", "sum")
DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]
LOWP = DTYPES[1:]
# float64 against float64 truth: only the order of summation differs.
RTOL64, ATOL64 = 1e-10, 1e-12
GAMMAS = (0.0, 0.5, 1.0, 2.0, 3.7)

ALL = [(d, b) for d in DEVICES for b in backends_for(d)]
FUSED = [(d, b) for d in DEVICES for b in fused_backends_for(d)]
COMPILED = [(d, b) for d, b in FUSED if not (b == "triton" and d == "cpu")]  # no interpreter


def interpreted(device, backend) -> bool:
    return backend == "triton" and torch.device(device).type == "cpu"


def _cases(full, subset, pairs=ALL):
    """(device, backend, *case): ``full`` everywhere but the interpreter, which gets ``subset``."""
    out = []
    for device, backend in pairs:
        out += [(device, backend) + tuple(c) for c in (subset if interpreted(device, backend) else full)]
    return out


def ids(v):
    if isinstance(v, tuple) and all(isinstance(d, int) for d in v):
        return "x".join(map(str, v)) or "0d"
    if isinstance(v, torch.dtype):
        return str(v).replace("torch.", "")
    if isinstance(v, dict):
        return "-".join(f"{k}={v2}" for k, v2 in v.items()) or "default"
    return None


# ----------------------------------------------------------------------------------------------
# input builders
# ----------------------------------------------------------------------------------------------


def num_classes(shape) -> int:
    return shape[0] if len(shape) == 1 else shape[1]


def target_shape(shape) -> tuple:
    """Shape of a class-index target (and of the unreduced loss) for input ``shape``."""
    return () if len(shape) == 1 else tuple(shape[:1]) + tuple(shape[2:])


def class_target(shape, device="cpu", ignore_index=None, frac=0.3):
    """int64 class indices for input ``shape``; with ``ignore_index`` about ``frac`` of the rows get
    it, the first row always and the last one never (a single row is never ignored: every row
    ignored is test_all_rows_ignored's case)."""
    c = num_classes(shape)
    tshape = target_shape(shape)
    t = torch.randint(0, max(c, 1), tshape)
    if ignore_index is not None and t.numel() > 1:
        mask = torch.rand(tshape) < frac
        mask.view(-1)[0], mask.view(-1)[-1] = True, False
        t[mask] = ignore_index
    elif ignore_index is not None and t.numel() == 1 and int(t) == ignore_index:
        t.fill_((ignore_index + 1) % c)
    return t.to(device)


def target_for(fn, shape, dtype, device, ignore_index=None):
    """Probabilities (uniform [0, 1], ``dtype``) for ``fn`` "ce_soft*", else class indices."""
    if fn.startswith("ce_soft"):
        return make_target(shape, "soft", dtype, device)
    return class_target(shape, device, ignore_index)


def class_weight(c, dtype=torch.float64, device="cpu"):
    return (torch.rand(c, dtype=torch.float64) * 1.5 + 0.25).to(device=device, dtype=dtype)


def make_case(shape, kind, dtype, device, weight=False, smoothing=0.0, reduction="mean", z_loss=0.0):
    """(x, target, kw) for cross_entropy. kind: "index" (no ignored rows), "ignore" (ignore_index
    -100 on some rows), "ignore3" (ignore_index=3, a valid class when C > 3), "soft" (class
    probabilities: uniform [0, 1], unnormalised, in the input's dtype)."""
    x = make_logits(shape, dtype, device)
    kw = dict(reduction=reduction, label_smoothing=smoothing)
    if weight:
        kw["weight"] = class_weight(num_classes(shape), dtype, device)
    if z_loss:
        kw["z_loss"] = z_loss
    if kind == "soft":
        t = make_target(shape, "soft", dtype, device)
    elif kind == "index":
        t = class_target(shape, device)
    elif kind == "ignore":
        t = class_target(shape, device, -100)
    elif kind == "ignore3":
        t = class_target(shape, device, 3)
        kw["ignore_index"] = 3
    else:
        raise AssertionError(kind)
    return x, t, kw


# ----------------------------------------------------------------------------------------------
# call helpers
# ----------------------------------------------------------------------------------------------


def call(fn, backend, x, t, kw):
    """fn "ce" / "focal" on ``backend``; backend "torch" is F.cross_entropy (no z-loss)."""
    if backend == "torch":
        assert fn == "ce" and not kw.get("z_loss")
        return F.cross_entropy(x, t, **{k: v for k, v in kw.items() if k != "z_loss"})
    if fn == "ce":
        return fusedloss.cross_entropy(x, t, **kw, backend=backend)
    return fusedloss.softmax_focal_loss(x, t, **kw, backend=backend)


def truth_of(fn, kw) -> str:
    return "torch" if fn == "ce" and not kw.get("z_loss") else "reference"


def _to(v, dtype):
    return v.to(dtype) if isinstance(v, torch.Tensor) and v.is_floating_point() else v


def forward_backward(fn, backend, x, t, kw, go=None):
    """(loss, d loss / d x . go, go), with ``x`` itself as the leaf (its strides are kept)."""
    xl = x.detach().requires_grad_()
    loss = call(fn, backend, xl, t, kw)
    assert loss.requires_grad, "the loss is not connected to the input"
    if go is None:
        go = torch.randn(loss.shape, dtype=torch.float64).to(loss.device, loss.dtype)
    (g,) = torch.autograd.grad(loss, xl, go)
    return loss.detach(), g, go


def expected_loss_shape(x, t, reduction):
    if reduction != "none":
        return ()
    return target_shape(tuple(x.shape))


def assert_matches(fn, backend, x, t, kw, factor=None):
    """Loss and gradient of ``backend`` against the float64 truth (torch's cross_entropy, or the
    reference for z-loss and focal). fp64: tight. Low precision: flash-attn's bound against the
    truth function run in the input's dtype. Always: dtype and shape of loss and gradient."""
    loss, g, go = forward_backward(fn, backend, x, t, kw)
    assert loss.dtype == x.dtype and g.dtype == x.dtype
    assert tuple(loss.shape) == expected_loss_shape(x, t, kw.get("reduction", "mean"))
    assert g.shape == x.shape
    truth = truth_of(fn, kw)
    kw64 = {k: _to(v, torch.float64) for k, v in kw.items()}
    ref_loss, ref_g, _ = forward_backward(fn, truth, x.double(), _to(t, torch.float64), kw64, go.double())
    if x.dtype == torch.float64:
        torch.testing.assert_close(loss, ref_loss, rtol=RTOL64, atol=ATOL64, equal_nan=True)
        torch.testing.assert_close(g, ref_g, rtol=RTOL64, atol=ATOL64, equal_nan=True)
    else:
        same_loss, same_g, _ = forward_backward(fn, truth, x, t, kw, go)
        f_loss, f_g = factor or ((16.0, 8.0) if x.dtype == torch.float32 else (2.0, 2.0))
        lowp_bound(loss, same_loss, ref_loss, x.dtype, f_loss)
        lowp_bound(g, same_g, ref_g, x.dtype, f_g)
    return loss, g


# ----------------------------------------------------------------------------------------------
# the reference against torch and against formulas written out
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["index", "ignore", "ignore3", "soft"])
def test_reference_without_z_loss_is_torch(kind):
    # In float64 the reference is torch's cross_entropy exactly (including "mean"'s denominator).
    for reduction in REDUCTIONS:
        for weight in (False, True):
            for smoothing in (0.0, 0.2):
                x, t, kw = make_case((37, 19), kind, torch.float64, "cpu", weight, smoothing, reduction)
                got = ref.cross_entropy_reference(x, t, kw.get("weight"), kw.get("ignore_index", -100),
                                                  reduction, smoothing, 0.0)
                torch.testing.assert_close(got, F.cross_entropy(x, t, **kw), rtol=1e-14, atol=1e-15)


def _z_loss_formula(x, t, weight, ignore_index, reduction, smoothing, z):
    """CE (torch, unreduced) + z lse^2 on rows not ignored; mean divides the total by the CE's own
    denominator: sum of w_y over the rows not ignored (class indices) or the row count (probabilities)."""
    ce = F.cross_entropy(x, t, weight=weight, ignore_index=ignore_index, reduction="none",
                         label_smoothing=smoothing)
    lse = torch.logsumexp(x, dim=0 if x.dim() == 1 else 1)
    if t.dtype.is_floating_point:
        valid = torch.ones_like(lse, dtype=torch.bool)
        den = torch.tensor(float(lse.numel()), dtype=x.dtype)
    else:
        valid = t != ignore_index
        w_y = torch.ones_like(lse) if weight is None else weight[torch.where(valid, t, 0)]
        den = (w_y * valid).sum()
    per = ce + torch.where(valid, z * lse * lse, 0.0)
    if reduction == "none":
        return per
    return per.sum() if reduction == "sum" else per.sum() / den


@pytest.mark.parametrize("kind", ["index", "ignore3", "soft"])
@pytest.mark.parametrize("shape", [(37, 19), (2, 5, 3, 7), (7,)], ids=ids)
def test_reference_z_loss_is_the_formula(kind, shape):
    for reduction in REDUCTIONS:
        for weight in (False, True):
            x, t, kw = make_case(shape, kind, torch.float64, "cpu", weight, 0.1, reduction)
            ii = kw.get("ignore_index", -100)
            for z in (1e-4, 0.3):
                xr, xf = x.clone().requires_grad_(), x.clone().requires_grad_()
                got = ref.cross_entropy_reference(xr, t, kw.get("weight"), ii, reduction, 0.1, z)
                want = _z_loss_formula(xf, t, kw.get("weight"), ii, reduction, 0.1, z)
                go = torch.randn(got.shape, dtype=torch.float64)
                torch.testing.assert_close(got, want, rtol=1e-13, atol=1e-14)
                (gg,) = torch.autograd.grad(got, xr, go)
                (gw,) = torch.autograd.grad(want, xf, go)
                torch.testing.assert_close(gg, gw, rtol=1e-13, atol=1e-14)
                # the z term matters at this size: it is not lost in the comparison
                assert not torch.allclose(got, F.cross_entropy(x, t, **kw), rtol=1e-9, atol=0)


def _focal_formula(x, t, gamma, alpha, ignore_index, smoothing, reduction):
    """-sum_c q_c a_c (1 - p_c)^gamma log p_c, written with softmax / log / pow (moderate logits)."""
    rows = x.unsqueeze(0) if x.dim() == 1 else x.movedim(1, -1)
    c = rows.shape[-1]
    rows = rows.reshape(-1, c)
    tt = t.reshape(-1)
    p = rows.softmax(-1)
    if alpha is None:
        a = torch.ones(c, dtype=x.dtype)
    elif isinstance(alpha, torch.Tensor):
        a = alpha.to(x.dtype)
    else:
        a = torch.full((c,), float(alpha), dtype=x.dtype)
    losses = []
    for r in range(rows.shape[0]):
        if int(tt[r]) == ignore_index:
            losses.append(rows.new_zeros(()))
            continue
        q = torch.full((c,), smoothing / c, dtype=x.dtype)
        q[int(tt[r])] += 1 - smoothing
        losses.append(-(q * a * (1 - p[r]) ** gamma * torch.log(p[r])).sum())
    per = torch.stack(losses) if losses else rows.new_zeros((0,))
    n_valid = int((tt != ignore_index).sum())
    if reduction == "none":
        return per.reshape(t.shape)
    return per.sum() if reduction == "sum" else per.sum() / n_valid


@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("alpha", [None, 0.25, "tensor"])
def test_reference_focal_is_the_formula(gamma, alpha):
    shape = (11, 6)
    x = make_logits(shape)
    t = class_target(shape, "cpu", 2)  # ignore_index 2: a valid class
    a = class_weight(6) if alpha == "tensor" else alpha
    for smoothing in (0.0, 0.15):
        for reduction in REDUCTIONS:
            xr, xf = x.clone().requires_grad_(), x.clone().requires_grad_()
            got = ref.softmax_focal_loss_reference(xr, t, gamma, a, 2, smoothing, reduction)
            want = _focal_formula(xf, t, gamma, a, 2, smoothing, reduction)
            torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)
            go = torch.randn(got.shape, dtype=torch.float64)
            (gg,) = torch.autograd.grad(got, xr, go)
            (gw,) = torch.autograd.grad(want, xf, go)
            torch.testing.assert_close(gg, gw, rtol=1e-11, atol=1e-13)
            assert (gg[t == 2] == 0).all()


# ----------------------------------------------------------------------------------------------
# cross-entropy: every option, dtype and reduction against torch in float64
# ----------------------------------------------------------------------------------------------

def combos(device, backend, full, key=0, k=1):
    """The inner loop of a test: all of ``full`` on compiled backends; under the interpreter ``k`` of
    them, rotated by ``key`` so that the interpreter's cases together still visit every entry."""
    if not interpreted(device, backend):
        return list(full)
    return [full[(key * k + i) % len(full)] for i in range(k)]


_CE_KINDS = ("index", "ignore", "ignore3", "soft")
_CE_OPTIONS = [(r, w, ls) for r in REDUCTIONS for w in (False, True) for ls in (0.0, 0.2)]


@pytest.mark.parametrize("device, backend", ALL)
@pytest.mark.parametrize("dtype", DTYPES, ids=ids)
@pytest.mark.parametrize("kind", _CE_KINDS)
def test_ce_matches_torch(device, backend, dtype, kind):
    # (37, 19) for every reduction x weight x smoothing; ignore: some rows -100, ignore3: some rows 3
    # (a valid class) with ignore_index=3; soft: probability targets.
    key = DTYPES.index(dtype) * len(_CE_KINDS) + _CE_KINDS.index(kind)
    for reduction, weight, smoothing in combos(device, backend, _CE_OPTIONS, key, 2):
        x, t, kw = make_case((37, 19), kind, dtype, device, weight, smoothing, reduction)
        loss, g = assert_matches("ce", backend, x, t, kw)
        if kind.startswith("ignore"):
            ignored = t == kw.get("ignore_index", -100)
            assert ignored.any() and (g[ignored] == 0).all(), "an ignored row got a gradient"
            if reduction == "none":
                assert (loss[ignored] == 0).all()


_SHAPES = [(7,), (1, 1), (6, 1), (5, 3), (37, 19), (130, 9), (3, 100), (2, 5, 3, 7), (2, 100, 21),
           (2, 5000), (1, 5000, 3), (0, 7), (0, 7, 3), (2, 7, 0)]
_VARIANTS = {
    "plain": dict(kind="index"),
    "weighted": dict(kind="ignore3", weight=True, smoothing=0.1),
    "soft": dict(kind="soft", weight=True, smoothing=0.25),
}


@pytest.mark.parametrize("device, backend", ALL)
@pytest.mark.parametrize("shape", _SHAPES, ids=ids)
@pytest.mark.parametrize("variant", list(_VARIANTS))
def test_ce_shapes(device, backend, shape, variant):
    v = _VARIANTS[variant]
    key = _SHAPES.index(shape) + list(_VARIANTS).index(variant)
    for reduction in combos(device, backend, REDUCTIONS, key):
        x, t, kw = make_case(shape, v["kind"], torch.float64, device, v.get("weight", False),
                             v.get("smoothing", 0.0), reduction)
        loss, g = assert_matches("ce", backend, x, t, kw)
        rows = math.prod(target_shape(shape))
        if rows == 0 and reduction != "none":  # torch: the mean of nothing is NaN, the sum 0
            assert loss.isnan() if reduction == "mean" else loss == 0
        if num_classes(shape) == 1:  # one class: p = 1, the loss and the gradient are 0
            assert (loss[~loss.isnan()] == 0).all() and (g == 0).all()
        assert torch.isfinite(g).all()


_LOWP_SHAPES = [(7,), (6, 1), (130, 9), (2, 5, 3, 7), (2, 5000)]
_LOWP_OPTIONS = [(v, r) for v in _VARIANTS for r in REDUCTIONS]


@pytest.mark.parametrize("device, backend", ALL)
@pytest.mark.parametrize("dtype", LOWP, ids=ids)
@pytest.mark.parametrize("shape", _LOWP_SHAPES, ids=ids)
def test_ce_shapes_low_precision(device, backend, dtype, shape):
    key = LOWP.index(dtype) * len(_LOWP_SHAPES) + _LOWP_SHAPES.index(shape)
    for variant, reduction in combos(device, backend, _LOWP_OPTIONS, key):
        v = _VARIANTS[variant]
        x, t, kw = make_case(shape, v["kind"], dtype, device, v.get("weight", False), v.get("smoothing", 0.0),
                             reduction)
        assert_matches("ce", backend, x, t, kw)


@pytest.mark.parametrize("device, backend", ALL)
@pytest.mark.parametrize("smoothing", [0.3, 1.0])
@pytest.mark.parametrize("kind", ["ignore", "soft"])
def test_ce_smoothing_edges(device, backend, smoothing, kind):
    # label_smoothing = 1: the target is uniform (torch accepts [0, 1] inclusive)
    x, t, kw = make_case((9, 13), kind, torch.float64, device, True, smoothing, "mean")
    assert_matches("ce", backend, x, t, kw)


@pytest.mark.parametrize("device, backend", ALL)
@pytest.mark.parametrize("target_dtype", [torch.int32, torch.int16, torch.int8, torch.uint8], ids=ids)
def test_index_dtypes(device, backend, target_dtype):
    # every integer dtype holds class indices: the same loss and gradient as int64 (uint8 is never a
    # mask; (4, 4): as many rows as classes)
    for shape in ((37, 19), (4, 4), (2, 5, 3)):
        c = num_classes(shape)
        x = make_logits(shape, torch.float32, device)
        t = class_target(shape, device)
        w = class_weight(c, torch.float32, device)
        for fn, kw in (("ce", dict(reduction="none")),
                       ("ce", dict(reduction="mean", weight=w, label_smoothing=0.1)),
                       ("focal", dict(gamma=2.0, alpha=w, reduction="mean"))):
            want, gw, go = forward_backward(fn, backend, x, t, kw)
            got, gg, _ = forward_backward(fn, backend, x, t.to(target_dtype), kw, go)
            torch.testing.assert_close(got, want, rtol=0, atol=0)
            torch.testing.assert_close(gg, gw, rtol=0, atol=0)


@pytest.mark.parametrize("device, backend", ALL)
@pytest.mark.parametrize("weight_dtype", [torch.float64, torch.float16, torch.float32], ids=ids)
def test_ce_weight_of_another_dtype(device, backend, weight_dtype):
    # the weight is read in its own dtype's values (converted once); the result has the input's dtype
    x, t, kw = make_case((37, 19), "ignore", torch.float32, device, False, 0.1, "mean")
    w = class_weight(19, weight_dtype, device)
    loss, g, go = forward_backward("ce", backend, x, t, dict(kw, weight=w))
    want, gw, _ = forward_backward("ce", "torch", x.double(), t, dict(kw, weight=w.double()), go.double())
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss.double(), want, rtol=2e-6, atol=1e-7)
    torch.testing.assert_close(g.double(), gw, rtol=2e-5, atol=1e-7)


# ----------------------------------------------------------------------------------------------
# ignored rows, zero weights, empty, C = 1
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("device, backend", ALL)
@pytest.mark.parametrize("fn", ["ce", "ce_z", "focal"])
def test_all_rows_ignored(device, backend, fn):
    # torch: mean -> NaN (0 / 0), sum -> 0, none -> zeros; the gradient is 0 everywhere (not NaN).
    for shape in ((5, 7), (2, 7, 3), (7,)):
        x = make_logits(shape, torch.float64, device)
        for ignore_index in (-100, 3):
            t = torch.full(target_shape(shape), ignore_index, dtype=torch.int64, device=device)
            for reduction in REDUCTIONS:
                for w in (None, class_weight(7, torch.float64, device)):
                    if fn == "focal":
                        kw = dict(gamma=2.0, alpha=w, ignore_index=ignore_index, label_smoothing=0.1,
                                  reduction=reduction)
                    else:
                        kw = dict(weight=w, ignore_index=ignore_index, label_smoothing=0.1,
                                  reduction=reduction, z_loss=0.1 if fn == "ce_z" else 0.0)
                    loss, g, _ = forward_backward("focal" if fn == "focal" else "ce", backend, x, t, kw)
                    if reduction == "mean":
                        assert loss.isnan()
                    else:
                        assert (loss == 0).all() and loss.shape == (() if reduction == "sum" else t.shape)
                    assert torch.equal(g, torch.zeros_like(x)), f"all rows ignored, {reduction}: gradient {g}"
                    if fn == "ce":
                        want, gw, _ = forward_backward("ce", "torch", x, t, kw)
                        torch.testing.assert_close(loss, want, rtol=0, atol=0, equal_nan=True)
                        torch.testing.assert_close(g, gw, rtol=0, atol=0)


@pytest.mark.parametrize("device, backend", ALL)
def test_ignore_index_values(device, backend):
    # any int: negative (-1), a valid class at either end (0, C - 1), beyond C (never a class), 2**40
    x = make_logits((37, 19), torch.float64, device)
    for ii in (-1, 0, 18, 1000, 2**40):
        t = class_target((37, 19), device, ii)
        assert (t == ii).any()
        for reduction in REDUCTIONS:
            kw = dict(ignore_index=ii, weight=class_weight(19, torch.float64, device), reduction=reduction,
                      label_smoothing=0.1)
            assert_matches("ce", backend, x, t, kw)
            if backend != "reference":
                fkw = dict(gamma=2.0, ignore_index=ii, reduction=reduction)
                assert_matches("focal", backend, x, t, fkw)


@pytest.mark.parametrize("device, backend", ALL)
def test_zero_target_weight(device, backend):
    # Rows whose target class has weight 0 add nothing and count nothing; rows of weight-0 classes only
    # leave "mean" at 0 / 0 = NaN, as in torch.
    x = make_logits((8, 5), torch.float64, device)
    w = torch.tensor([0.0, 1.5, 0.0, 0.5, 2.0], dtype=torch.float64, device=device)
    t = torch.tensor([0, 1, 2, 3, 4, 0, 2, 1], device=device)
    for reduction in REDUCTIONS:
        assert_matches("ce", backend, x, t, dict(weight=w, reduction=reduction, label_smoothing=0.1))
    zero_rows = torch.tensor([0, 2, 0, 2, 2, 0, 0, 2], device=device)
    for reduction in ("sum", "none"):
        assert_matches("ce", backend, x, zero_rows, dict(weight=w, reduction=reduction))
    # "mean" of rows whose weights are all 0: NaN, as in torch. (torch's gradient is then NaN too; the
    # fused backends return 0, their documented scale of 0 for a zero denominator: not checked.)
    loss = call("ce", backend, x, zero_rows, dict(weight=w))
    assert loss.isnan()


@pytest.mark.parametrize("device, backend", ALL)
@pytest.mark.parametrize("fn", ["ce", "ce_soft", "ce_z", "focal"])
def test_empty(device, backend, fn):
    for shape in ((0, 7), (0, 7, 3), (2, 7, 0)):
        x = make_logits(shape, torch.float32, device)
        t = target_for(fn, shape, torch.float32, device)
        for reduction in REDUCTIONS:
            if fn == "focal":
                kw = dict(gamma=2.0, reduction=reduction)
            else:
                kw = dict(reduction=reduction, z_loss=0.1 if fn == "ce_z" else 0.0)
            loss, g, _ = forward_backward("focal" if fn == "focal" else "ce", backend, x, t, kw)
            assert g.shape == x.shape and loss.dtype == x.dtype
            if reduction == "none":
                assert loss.shape == target_shape(shape)
            elif reduction == "mean":
                assert loss.shape == () and loss.isnan()
            else:
                assert loss.shape == () and loss == 0
            if fn in ("ce", "ce_soft"):
                want = call("ce", "torch", x, t, kw)
                torch.testing.assert_close(loss, want.detach(), rtol=0, atol=0, equal_nan=True)


# ----------------------------------------------------------------------------------------------
# z-loss: against the float64 reference
# ----------------------------------------------------------------------------------------------

_Z_OPTIONS = [(r, z) for r in REDUCTIONS for z in (1e-4, 0.1)]


@pytest.mark.parametrize("device, backend", FUSED)
@pytest.mark.parametrize("dtype", DTYPES, ids=ids)
@pytest.mark.parametrize("kind", ["ignore3", "soft", "index"])
def test_z_loss_matches_reference(device, backend, dtype, kind):
    key = DTYPES.index(dtype) * 3 + ["ignore3", "soft", "index"].index(kind)
    for reduction, z_loss in combos(device, backend, _Z_OPTIONS, key):
        x, t, kw = make_case((37, 19), kind, dtype, device, True, 0.1, reduction, z_loss)
        loss, _ = assert_matches("ce", backend, x, t, kw)
        if dtype == torch.float64 and z_loss >= 0.1:  # the z term is not lost in the comparison
            plain = call("ce", "torch", x, t, {k: v for k, v in kw.items() if k != "z_loss"})
            assert not torch.allclose(loss, plain, rtol=1e-6, atol=0)


@pytest.mark.parametrize("device, backend", FUSED)
@pytest.mark.parametrize("shape", [(7,), (2, 5, 3, 7), (2, 5000), (6, 1)], ids=ids)
@pytest.mark.parametrize("kind", ["ignore3", "soft"])
def test_z_loss_shapes(device, backend, shape, kind):
    for reduction in REDUCTIONS:
        x, t, kw = make_case(shape, kind, torch.float64, device, True, 0.2, reduction, 0.05)
        assert_matches("ce", backend, x, t, kw)


# ----------------------------------------------------------------------------------------------
# focal
# ----------------------------------------------------------------------------------------------

_FOCAL_OPTIONS = [(ls, ii, r) for ls in (0.0, 0.2) for ii in (None, -100, 3) for r in REDUCTIONS]


def focal_case(shape, dtype, device, gamma, alpha, smoothing, ignore_index, reduction):
    x = make_logits(shape, dtype, device)
    t = class_target(shape, device, ignore_index)
    if alpha == "tensor":
        alpha = class_weight(num_classes(shape), dtype, device)
    kw = dict(gamma=gamma, alpha=alpha, label_smoothing=smoothing, reduction=reduction)
    if ignore_index is not None:
        kw["ignore_index"] = ignore_index
    return x, t, kw


@pytest.mark.parametrize("device, backend", FUSED)
@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("alpha", [None, 0.25, "tensor"])
def test_focal_matches_reference(device, backend, gamma, alpha):
    key = GAMMAS.index(gamma) * 3 + [None, 0.25, "tensor"].index(alpha)
    for smoothing, ignore_index, reduction in combos(device, backend, _FOCAL_OPTIONS, key):
        x, t, kw = focal_case((37, 19), torch.float64, device, gamma, alpha, smoothing, ignore_index,
                              reduction)
        _, g = assert_matches("focal", backend, x, t, kw)
        if ignore_index is not None:
            assert (g[t == ignore_index] == 0).all()


@pytest.mark.parametrize(
    "device, backend, dtype, gamma, shape",
    _cases([(dt, g, s) for dt in LOWP for g in (0.5, 2.0, 3.7) for s in ((37, 19), (2, 5, 3, 7), (2, 5000))],
           [(dt, g, s) for dt, g, s in zip(LOWP, (0.5, 2.0, 3.7), ((37, 19), (2, 5, 3, 7), (2, 5000)))],
           FUSED),
    ids=ids,
)
def test_focal_low_precision(device, backend, dtype, gamma, shape):
    for reduction, smoothing in (("none", 0.0), ("mean", 0.1)):
        x, t, kw = focal_case(shape, dtype, device, gamma, "tensor", smoothing, -100, reduction)
        assert_matches("focal", backend, x, t, kw)


@pytest.mark.parametrize("device, backend", FUSED)
@pytest.mark.parametrize("shape", [(7,), (6, 1), (2, 5, 3, 7), (2, 5000), (0, 7)], ids=ids)
def test_focal_shapes(device, backend, shape):
    for reduction in REDUCTIONS:
        x, t, kw = focal_case(shape, torch.float64, device, 2.0, "tensor", 0.1, 3, reduction)
        loss, g = assert_matches("focal", backend, x, t, kw)
        if num_classes(shape) == 1:
            assert (g == 0).all()


@pytest.mark.parametrize("device, backend", ALL)
def test_focal_gamma0_is_cross_entropy(device, backend):
    # gamma = 0, no alpha: -sum_c q_c log p_c is torch's cross-entropy, "mean" over rows not ignored.
    x = make_logits((37, 19), torch.float64, device)
    options = [(ls, ii, r) for ls in (0.0, 0.2) for ii in (-100, 3) for r in REDUCTIONS]
    for smoothing, ignore_index, reduction in combos(device, backend, options, 0, 4):
        t = class_target((37, 19), device, ignore_index)
        kw = dict(ignore_index=ignore_index, label_smoothing=smoothing, reduction=reduction)
        got, g, go = forward_backward("focal", backend, x, t, dict(kw, gamma=0.0))
        want, gw, _ = forward_backward("ce", "torch", x, t, kw, go)
        torch.testing.assert_close(got, want, rtol=RTOL64, atol=ATOL64)
        torch.testing.assert_close(g, gw, rtol=RTOL64, atol=ATOL64)
        if reduction != "mean":
            # a per-class alpha at gamma = 0 is torch's class weight (the means differ: focal divides
            # by the row count, torch by the sum of the target weights)
            w = class_weight(19, torch.float64, device)
            got, g, go = forward_backward("focal", backend, x, t, dict(kw, gamma=0.0, alpha=w))
            want, gw, _ = forward_backward("ce", "torch", x, t, dict(kw, weight=w), go)
            torch.testing.assert_close(got, want, rtol=RTOL64, atol=ATOL64)
            torch.testing.assert_close(g, gw, rtol=RTOL64, atol=ATOL64)


@pytest.mark.parametrize("device, backend", ALL)
def test_focal_alpha_number_scales(device, backend):
    # alpha = a (a number) is a times the loss without alpha, in every reduction (the mean's
    # denominator is the row count, untouched by alpha); alpha = 1 is no alpha.
    x = make_logits((37, 19), torch.float64, device)
    t = class_target((37, 19), device, -100)
    for reduction in REDUCTIONS:
        kw = dict(gamma=1.5, label_smoothing=0.1, reduction=reduction)
        base, gb, go = forward_backward("focal", backend, x, t, kw)
        scaled, gs, _ = forward_backward("focal", backend, x, t, dict(kw, alpha=0.3), go)
        one, go1, _ = forward_backward("focal", backend, x, t, dict(kw, alpha=1.0), go)
        torch.testing.assert_close(scaled, 0.3 * base, rtol=RTOL64, atol=ATOL64)
        torch.testing.assert_close(gs, 0.3 * gb, rtol=RTOL64, atol=ATOL64)
        torch.testing.assert_close(one, base, rtol=RTOL64, atol=ATOL64)
        torch.testing.assert_close(go1, gb, rtol=RTOL64, atol=ATOL64)


@pytest.mark.parametrize("device, backend", ALL)
def test_focal_down_weights_easy_rows(device, backend):
    # the point of the loss: a confident correct row loses more of its loss to (1 - p)^gamma than a
    # wrong one, and the loss falls as gamma grows (0 <= 1 - p <= 1).
    x = torch.tensor([[6.0, 0.0, 0.0], [0.0, 6.0, 0.0]], dtype=torch.float64, device=device)
    t = torch.tensor([0, 0], device=device)
    prev = None
    for gamma in GAMMAS:
        loss = call("focal", backend, x, t, dict(gamma=gamma, reduction="none"))
        ce = F.cross_entropy(x, t, reduction="none")
        if gamma > 0:
            assert loss[0] / ce[0] < loss[1] / ce[1]
        if prev is not None:
            assert (loss < prev).all()
        prev = loss


# ----------------------------------------------------------------------------------------------
# large logits, -inf logits, non-contiguous input and target, canaries, many rows
# ----------------------------------------------------------------------------------------------


def huge_logits(shape, dtype, device):
    """+-1e4 logits: a row all huge, a row with one huge entry, a row whose target logit is -1e4."""
    x = torch.randn(shape, dtype=torch.float64) * 3
    x[0] = torch.where(torch.rand(shape[1]) < 0.5, 1e4, -1e4) + torch.randn(shape[1])
    x[1, 2] = 1e4
    x[2] = 1e4 + torch.randn(shape[1]) * 10
    x[3, 0] = -1e4
    x[3, 1:] = 1e4 - torch.arange(shape[1] - 1, dtype=torch.float64)
    return x.to(device=device, dtype=dtype)


@pytest.mark.parametrize(
    "device, backend, fn",
    # the reference is itself the truth for z-loss and focal
    [(d, b, fn) for d, b in ALL for fn in ("ce", "ce_soft", "ce_z", "focal")
     if b != "reference" or fn in ("ce", "ce_soft")],
)
def test_huge_logits(device, backend, fn):
    shape = (6, 11)
    for dtype in DTYPES:
        x = huge_logits(shape, dtype, device)
        if fn == "ce_soft":  # rows summing to 1: a row loss of ~2e4 stays inside fp16's range
            t = make_target(shape, "soft", torch.float64, device)
            t = (t / t.sum(1, keepdim=True)).to(dtype)
        else:
            t = torch.tensor([0, 3, 5, 0, 1, 2], device=device)
        for reduction in ("none", "mean"):
            if fn == "focal":
                kw = dict(gamma=2.0, alpha=class_weight(11, dtype, device), label_smoothing=0.1,
                          reduction=reduction)
            else:
                kw = dict(weight=class_weight(11, dtype, device), label_smoothing=0.1, reduction=reduction,
                          z_loss=1e-6 if fn == "ce_z" else 0.0)
            loss, g = assert_matches("focal" if fn == "focal" else "ce", backend, x, t, kw)
            assert torch.isfinite(loss).all() and torch.isfinite(g).all()


@pytest.mark.parametrize("device, backend", ALL)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16], ids=ids)
def test_ce_neg_inf_logits(device, backend, dtype):
    # masked classes (-inf logits, never the target) without smoothing: finite loss, zero gradient there
    x = make_logits((9, 13), dtype, device)
    x[:, [2, 7]] = float("-inf")
    x[4, :6] = float("-inf")
    t = torch.tensor([0, 1, 3, 12, 8, 4, 5, 6, 9], device=device)
    for kw in (dict(reduction="none"), dict(reduction="mean", weight=class_weight(13, dtype, device))):
        loss, g = assert_matches("ce", backend, x, t, kw)
        assert torch.isfinite(loss).all() and torch.isfinite(g).all()
        assert (g[:, [2, 7]] == 0).all()


def _layouts(name, device):
    """(x, t) for a non-contiguous layout of a [N, C] or [N, C, d1, d2] problem."""
    if name == "transposed":  # [C, N] storage: class stride 1 -> N, row stride 1
        x = make_logits((19, 37), torch.float64, device).t()
        t = class_target((74, 19), device, -100)[::2]
    elif name == "sliced":  # rows of a wider buffer: row stride 30 > C
        x = make_logits((37, 30), torch.float64, device)[:, 5:24]
        t = class_target((37, 3, 19), device, -100)[:, 1]
    elif name == "expanded":  # one row, stride 0; the target a stride-0 class too
        x = make_logits((1, 19), torch.float64, device).expand(37, 19)
        t = class_target((1, 19), device).expand(37)
    elif name == "permuted":  # [N, d1, d2, C] storage; target [d2, N, d1] storage
        x = make_logits((2, 3, 4, 5), torch.float64, device).permute(0, 3, 1, 2)
        t = class_target((4, 5, 2, 3), device, 3).permute(1, 2, 0)
    elif name == "soft_transposed":
        x = make_logits((19, 37), torch.float64, device).t()
        t = make_target((19, 37), "soft", torch.float64, device).t()
    else:  # soft_permuted
        x = make_logits((2, 3, 4, 5), torch.float64, device).permute(0, 3, 1, 2)
        t = make_target((5, 2, 3, 4), "soft", torch.float64, device).permute(1, 0, 2, 3)
    return x, t


@pytest.mark.parametrize("device, backend", ALL)
@pytest.mark.parametrize("layout", ["transposed", "sliced", "expanded", "permuted", "soft_transposed",
                                    "soft_permuted"])
def test_non_contiguous(device, backend, layout):
    x, t = _layouts(layout, device)
    assert not x.is_contiguous()
    c = num_classes(tuple(x.shape))
    ii = 3 if layout == "permuted" else -100
    for reduction in REDUCTIONS:
        kw = dict(weight=class_weight(c, torch.float64, device), label_smoothing=0.1, reduction=reduction)
        if layout != "soft_transposed" and layout != "soft_permuted":
            kw["ignore_index"] = ii
        assert_matches("ce", backend, x, t, kw)
        if backend != "reference":
            assert_matches("ce", backend, x, t, dict(kw, z_loss=0.05))
            if not layout.startswith("soft"):
                fkw = dict(gamma=2.0, alpha=kw["weight"], ignore_index=ii, label_smoothing=0.1,
                           reduction=reduction)
                assert_matches("focal", backend, x, t, fkw)


@pytest.mark.parametrize("device, backend", FUSED)
@pytest.mark.parametrize("shape", [(1, 1), (37, 19), (2, 5, 3, 7), (2, 5000)], ids=ids)
@pytest.mark.parametrize("fn", ["ce", "ce_soft", "focal"])
def test_canaries(device, backend, shape, fn):
    # x, target and weight inside NaN-filled (index: 7-filled) buffers at an odd offset: an
    # out-of-bounds read reaches the result as NaN, a stray write changes a margin.
    x = make_logits(shape, torch.float32, device)
    t = target_for(fn, shape, torch.float32, device, -100)
    w = class_weight(num_classes(shape), torch.float32, device)
    xv, check_x = canary(x)
    tv, check_t = canary(t)
    wv, check_w = canary(w)

    def kw_for(weight):
        if fn == "focal":
            return dict(gamma=2.0, alpha=weight, label_smoothing=0.1, reduction="none")
        return dict(weight=weight, label_smoothing=0.1, reduction="none", z_loss=0.01)

    loss, g, _ = forward_backward("focal" if fn == "focal" else "ce", backend, xv, tv, kw_for(wv))
    assert torch.isfinite(loss).all() and torch.isfinite(g).all()
    for check in (check_x, check_t, check_w):
        check()
    assert_matches("focal" if fn == "focal" else "ce", backend, x, t, kw_for(w))


@pytest.mark.parametrize("device, backend", COMPILED)
@pytest.mark.parametrize("fn", ["ce", "ce_soft", "focal"])
def test_many_rows_and_thread_count(device, backend, fn):
    # (4000, 33): several parallel row tasks on CPU (many blocks on a GPU); on CPU the thread count
    # does not change a bit of the result.
    shape = (4000, 33)
    x = make_logits(shape, torch.float32, device)
    if fn == "focal":
        t = class_target(shape, device, -100)
        kw = dict(gamma=2.0, label_smoothing=0.1, reduction="mean")
    else:
        t = target_for(fn, shape, torch.float32, device, -100)
        kw = dict(weight=class_weight(33, torch.float32, device), label_smoothing=0.1, reduction="sum",
                  z_loss=1e-3)
    name = "focal" if fn == "focal" else "ce"
    assert_matches(name, backend, x, t, kw)
    if device != "cpu":
        return
    loss, g, go = forward_backward(name, backend, x, t, kw)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        loss1, g1, _ = forward_backward(name, backend, x, t, kw, go)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(loss1, loss) and torch.equal(g1, g)


@pytest.mark.parametrize("fn", ["ce", "ce_soft", "focal"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16], ids=ids)
def test_cpu_isa_variants_match_reference(monkeypatch, fn, dtype):
    # FUSEDLOSS_CPU_ISA lowers the vector loop the C++ kernel picks (asking above the CPU gives the
    # CPU's). (5, 2053): vector bodies plus scalar tails in every variant.
    shape = (5, 2053)
    x = make_logits(shape, dtype)
    if fn == "focal":
        t = class_target(shape, "cpu", 3)
        kw = dict(gamma=0.5, ignore_index=3, label_smoothing=0.1, reduction="none")
    else:
        t = make_target(shape, "soft", dtype) if fn == "ce_soft" else class_target(shape, "cpu", -100)
        kw = dict(weight=class_weight(2053, dtype), label_smoothing=0.1, reduction="none", z_loss=1e-3)
    for isa in ("base", "avx2", "avx512", None):
        if isa is None:
            monkeypatch.delenv("FUSEDLOSS_CPU_ISA", raising=False)
        else:
            monkeypatch.setenv("FUSEDLOSS_CPU_ISA", isa)
        assert_matches("focal" if fn == "focal" else "ce", "cpu", x, t, kw)


# ----------------------------------------------------------------------------------------------
# modules
# ----------------------------------------------------------------------------------------------

_MODULE_CONFIGS = [
    dict(),
    dict(reduction="sum"),
    dict(reduction="none", ignore_index=3),
    dict(weight="w", label_smoothing=0.2),
    dict(weight="w", ignore_index=3, reduction="mean", label_smoothing=0.1),
    dict(size_average=False),
    dict(reduce=False),
    dict(size_average=True, reduce=True),
    dict(size_average=False, reduce=True, weight="w"),
]


@pytest.mark.parametrize("device, backend", ALL + [(d, "auto") for d in DEVICES])
@pytest.mark.parametrize("config", _MODULE_CONFIGS, ids=ids)
def test_cross_entropy_module_is_torch(device, backend, config):
    # torch.nn.CrossEntropyLoss's constructor, legacy size_average / reduce included.
    w = class_weight(19, torch.float64, device)
    cfg = {k: (w if v == "w" else v) for k, v in config.items()}
    ours = fl_nn.CrossEntropyLoss(**cfg, backend=backend)
    theirs = torch.nn.CrossEntropyLoss(**cfg)
    x = make_logits((37, 19), torch.float64, device)
    t = class_target((37, 19), device, cfg.get("ignore_index", -100))
    for target in (t, make_target((37, 19), "soft", torch.float64, device)):
        if target.is_floating_point() and cfg.get("ignore_index", -100) != -100:
            continue
        xl, xr = x.clone().requires_grad_(), x.clone().requires_grad_()
        got, want = ours(xl, target), theirs(xr, target)
        assert got.shape == want.shape
        go = torch.randn(got.shape, dtype=torch.float64, device=device)
        torch.testing.assert_close(got, want, rtol=RTOL64, atol=ATOL64)
        torch.testing.assert_close(torch.autograd.grad(got, xl, go)[0], torch.autograd.grad(want, xr, go)[0],
                                   rtol=RTOL64, atol=ATOL64)


@pytest.mark.parametrize("device, backend", ALL)
def test_modules_z_loss_and_focal(device, backend):
    x = make_logits((37, 19), torch.float64, device)
    t = class_target((37, 19), device, 3)
    w = class_weight(19, torch.float64, device)
    m = fl_nn.CrossEntropyLoss(weight=w, ignore_index=3, label_smoothing=0.1, z_loss=0.05, backend=backend)
    torch.testing.assert_close(m(x, t), ref.cross_entropy_reference(x, t, w, 3, "mean", 0.1, 0.05),
                               rtol=RTOL64, atol=ATOL64)
    assert "weight" in m.state_dict() and m.z_loss == 0.05
    for alpha in (w, 0.25, None):
        f = fl_nn.SoftmaxFocalLoss(gamma=1.5, alpha=alpha, ignore_index=3, label_smoothing=0.1,
                                   reduction="sum", backend=backend)
        torch.testing.assert_close(f(x, t), ref.softmax_focal_loss_reference(x, t, 1.5, alpha, 3, 0.1, "sum"),
                                   rtol=RTOL64, atol=ATOL64)
        assert ("alpha" in f.state_dict()) == isinstance(alpha, torch.Tensor)
    d = fl_nn.SoftmaxFocalLoss(backend=backend)  # defaults: gamma 2, no alpha, mean
    torch.testing.assert_close(d(x, t.clamp(min=0)), ref.softmax_focal_loss_reference(x, t.clamp(min=0)),
                               rtol=RTOL64, atol=ATOL64)
    # buffers follow .to(): a float32 module on float32 input
    m32 = fl_nn.CrossEntropyLoss(weight=w, backend=backend).to(torch.float32)
    assert m32.weight.dtype == torch.float32
    out = m32(x.float(), t.clamp(min=0))
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, F.cross_entropy(x.float(), t.clamp(min=0), weight=w.float()),
                               rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------------------------
# backend choice, grad of the other arguments, no-grad path, double backward
# ----------------------------------------------------------------------------------------------


def _fused_ops(thunk):
    return set(fusedloss_ops_called(thunk))


@pytest.mark.parametrize("device, backend", ALL + [(d, "auto") for d in DEVICES])
def test_backend_runs_its_op(device, backend):
    x = make_logits((5, 7), torch.float32, device).requires_grad_()
    t = class_target((5, 7), device)
    soft = make_target((5, 7), "soft", torch.float32, device)
    ops = [
        _fused_ops(lambda: fusedloss.cross_entropy(x, t, backend=backend)),
        _fused_ops(lambda: fusedloss.cross_entropy(x, soft, z_loss=0.1, backend=backend)),
        _fused_ops(lambda: fusedloss.softmax_focal_loss(x, t, backend=backend)),
        _fused_ops(lambda: fl_nn.CrossEntropyLoss(backend=backend)(x, t)),
    ]
    if backend == "reference":
        assert all(o == set() for o in ops)
    else:  # auto: the C++ backend of the device
        name = "fusedloss::softmax_fwd" + ("_triton" if backend == "triton" else "")
        assert all(o == {name} for o in ops), ops


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("which", ["weight", "soft_target", "alpha"])
def test_grad_of_other_args_falls_back(device, which):
    # Fused backends differentiate the input only: an explicit one refuses, "auto" takes the reference
    # and returns torch's gradient for the other tensor too.
    x = make_logits((37, 19), torch.float64, device)
    w = class_weight(19, torch.float64, device)
    if which == "soft_target":
        t = make_target((37, 19), "soft", torch.float64, device).requires_grad_()
        leaf, kw, fn = t, dict(weight=w, label_smoothing=0.1), "ce"
    elif which == "weight":
        # torch has no gradient for the class weight: "auto" (the reference) refuses as torch does
        t = class_target((37, 19), device, -100)
        leaf, kw, fn = w.requires_grad_(), dict(weight=w, label_smoothing=0.1), "ce"
        for backend in fused_backends_for(device):
            with pytest.raises(ValueError, match="requires grad"):
                call(fn, backend, x, t, kw)
        with pytest.raises(RuntimeError, match="weight"):
            call("ce", "torch", x.clone().requires_grad_(), t, kw)
        with pytest.raises(RuntimeError, match="weight"):
            call("ce", "auto", x.clone().requires_grad_(), t, kw)
        return
    else:
        t = class_target((37, 19), device, -100)
        leaf, kw, fn = w.requires_grad_(), dict(alpha=w, gamma=2.0), "focal"
    for backend in fused_backends_for(device):
        with pytest.raises(ValueError, match="requires grad"):
            call(fn, backend, x, t, kw)
    xl = x.clone().requires_grad_()
    loss = call(fn, "auto", xl, t, kw)
    gx, gother = torch.autograd.grad(loss, (xl, leaf))
    xr = x.clone().requires_grad_()
    want = call(fn, "torch" if fn == "ce" else "reference", xr, t, kw)
    rx, rother = torch.autograd.grad(want, (xr, leaf))
    torch.testing.assert_close(loss, want, rtol=1e-12, atol=0)
    torch.testing.assert_close(gx, rx, rtol=1e-12, atol=0)
    torch.testing.assert_close(gother, rother, rtol=1e-12, atol=0)
    assert gother.abs().sum() > 0
    # without grad mode the fused backends take it (nothing to differentiate)
    with torch.no_grad():
        for backend in fused_backends_for(device):
            torch.testing.assert_close(call(fn, backend, x, t, kw), want.detach(), rtol=RTOL64, atol=ATOL64)


@pytest.mark.parametrize("device, backend", FUSED)
@pytest.mark.parametrize("fn", ["ce", "ce_soft", "focal"])
def test_no_grad_path(device, backend, fn):
    # input without requires_grad (and under no_grad): the kernel skips the gradient; same loss.
    x = make_logits((37, 19), torch.float32, device)
    t = target_for(fn, (37, 19), torch.float32, device, 3)
    kw = (dict(gamma=2.0, ignore_index=3, reduction="none") if fn == "focal"
          else dict(reduction="none", z_loss=0.01, **({} if fn == "ce_soft" else dict(ignore_index=3))))
    with_grad, _, _ = forward_backward("focal" if fn == "focal" else "ce", backend, x, t, kw)
    plain = call("focal" if fn == "focal" else "ce", backend, x, t, kw)
    assert not plain.requires_grad
    with torch.no_grad():
        nograd = call("focal" if fn == "focal" else "ce", backend, x.clone().requires_grad_(), t, kw)
    assert not nograd.requires_grad
    torch.testing.assert_close(plain, with_grad, rtol=0, atol=0)
    torch.testing.assert_close(nograd, with_grad, rtol=0, atol=0)


@pytest.mark.parametrize("device, backend", FUSED)
@pytest.mark.parametrize("fn", ["ce", "focal"])
def test_double_backward_is_right_or_raises(device, backend, fn):
    x = make_logits((4, 5), torch.float64, device)
    t = torch.tensor([0, 3, 4, 1], device=device)
    kw = dict(label_smoothing=0.1, reduction="sum") if fn == "ce" else dict(gamma=2.0, reduction="sum")
    xl = x.clone().requires_grad_()
    try:
        (g,) = torch.autograd.grad(call(fn, backend, xl, t, kw), xl, create_graph=True)
        (h,) = torch.autograd.grad(g.pow(2).sum(), xl)
    except RuntimeError:
        return  # refusing double backward is acceptable; silently wrong is not
    xr = x.clone().requires_grad_()
    (gr,) = torch.autograd.grad(call(fn, "reference", xr, t, kw), xr, create_graph=True)
    (hr,) = torch.autograd.grad(gr.pow(2).sum(), xr)
    torch.testing.assert_close(h, hr, rtol=1e-8, atol=1e-10)


# ----------------------------------------------------------------------------------------------
# gradcheck in fp64
# ----------------------------------------------------------------------------------------------

_GRADCHECK = [
    ("ce", "index", dict(reduction="mean", weight="w", label_smoothing=0.1, ignore_index=3)),
    ("ce", "index", dict(reduction="none", z_loss=0.1)),
    ("ce", "soft", dict(reduction="sum", weight="w", label_smoothing=0.2, z_loss=0.05)),
    ("ce", "soft", dict(reduction="mean")),
    ("focal", "index", dict(gamma=2.0, alpha="w", label_smoothing=0.1, reduction="mean")),
    ("focal", "index", dict(gamma=0.5, ignore_index=3, reduction="none")),
]
_GRADCHECK_SUB = [_GRADCHECK[0], _GRADCHECK[2], _GRADCHECK[4], _GRADCHECK[5]]


@pytest.mark.parametrize("device, backend, fn, target, kw", _cases(_GRADCHECK, _GRADCHECK_SUB), ids=ids)
def test_gradcheck(device, backend, fn, target, kw):
    shape = (3, 5) if interpreted(device, backend) else (4, 5)  # gradcheck evaluates twice per element
    x = make_logits(shape, torch.float64, device).requires_grad_()
    t = (make_target(shape, "soft", torch.float64, device) if target == "soft"
         else torch.tensor([0, 3, 4, 1][: shape[0]], device=device))
    kw = {k: (class_weight(5, torch.float64, device) if v == "w" else v) for k, v in kw.items()}
    assert torch.autograd.gradcheck(lambda xx: call(fn, backend, xx, t, kw), (x,), eps=1e-6, atol=1e-7)
    if backend != "reference" and not interpreted(device, backend):  # [N, C, d] too
        x3 = make_logits((2, 5, 3), torch.float64, device).requires_grad_()
        t3 = make_target((2, 5, 3), "soft", torch.float64, device) if target == "soft" else \
            torch.tensor([[0, 3, 4], [1, 2, 3]], device=device)
        assert torch.autograd.gradcheck(lambda xx: call(fn, backend, xx, t3, kw), (x3,), eps=1e-6, atol=1e-7)


# ----------------------------------------------------------------------------------------------
# bad input: clear errors naming the argument, before any kernel runs
# ----------------------------------------------------------------------------------------------


def _bad_cases():
    x = torch.randn(6, 4)
    t = torch.tensor([0, 1, 2, 3, 0, 1])
    soft = torch.rand(6, 4)
    ce, fo = fusedloss.cross_entropy, fusedloss.softmax_focal_loss
    return [
        ("ce-target-too-big", lambda: ce(x, t.clone().fill_(4)), ValueError, "target"),
        ("ce-target-negative", lambda: ce(x, t - 1), ValueError, "target"),
        ("ce-target-negative-custom-ignore", lambda: ce(x, t - 1, ignore_index=3), ValueError, "target"),
        ("ce-target-ignore-index-too-big", lambda: ce(x, torch.full((6,), 4), ignore_index=5), ValueError,
         "target"),
        ("ce-target-int8-too-big", lambda: ce(x, t.to(torch.int8) + 4), ValueError, "target"),
        ("ce-target-huge", lambda: ce(x, t + 2**40), ValueError, "target"),
        ("ce-target-shape", lambda: ce(x, t[:5]), ValueError, "target"),
        ("ce-target-shape-2d", lambda: ce(x, t[:, None]), ValueError, "target"),
        ("ce-target-3d-shape", lambda: ce(torch.randn(2, 4, 3), torch.zeros(2, 4, dtype=torch.long)),
         ValueError, "target"),
        ("ce-target-unbatched-shape", lambda: ce(torch.randn(4), torch.tensor([1])), ValueError, "target"),
        ("ce-target-bool", lambda: ce(x, t > 1), TypeError, "target"),
        ("ce-target-list", lambda: ce(x, t.tolist()), TypeError, "target"),
        ("ce-soft-shape", lambda: ce(x, soft[:, :3]), ValueError, "target"),
        ("ce-soft-shape-transposed", lambda: ce(x, torch.rand(4, 6)), ValueError, "target"),
        ("ce-soft-dtype", lambda: ce(x, soft.double()), TypeError, "target"),
        ("ce-soft-dtype-half", lambda: ce(x, soft.half()), TypeError, "target"),
        ("ce-soft-ignore-index", lambda: ce(x, soft, ignore_index=3), ValueError, "ignore_index"),
        ("ce-ignore-index-float", lambda: ce(x, t, ignore_index=3.0), TypeError, "ignore_index"),
        ("ce-weight-length", lambda: ce(x, t, weight=torch.ones(5)), ValueError, "weight"),
        ("ce-weight-2d", lambda: ce(x, t, weight=torch.ones(1, 4)), ValueError, "weight"),
        ("ce-weight-0d", lambda: ce(x, t, weight=torch.tensor(1.0)), ValueError, "weight"),
        ("ce-weight-int", lambda: ce(x, t, weight=torch.ones(4, dtype=torch.long)), TypeError, "weight"),
        ("ce-weight-list", lambda: ce(x, t, weight=[1.0] * 4), TypeError, "weight"),
        ("ce-weight-meta", lambda: ce(x, t, weight=torch.ones(4, device="meta")), ValueError, "weight"),
        ("ce-target-meta", lambda: ce(x, t.to("meta")), ValueError, "target"),
        ("ce-soft-meta", lambda: ce(x, soft.to("meta")), ValueError, "target"),
        ("ce-input-0d", lambda: ce(torch.tensor(1.0), torch.tensor(0)), ValueError, "input"),
        ("ce-input-int", lambda: ce(x.long(), t), TypeError, "input"),
        ("ce-input-list", lambda: ce(x.tolist(), t), TypeError, "input"),
        ("ce-smoothing-neg", lambda: ce(x, t, label_smoothing=-0.1), ValueError, "label_smoothing"),
        ("ce-smoothing-big", lambda: ce(x, t, label_smoothing=1.5), ValueError, "label_smoothing"),
        ("ce-smoothing-nan", lambda: ce(x, t, label_smoothing=float("nan")), ValueError, "label_smoothing"),
        ("ce-smoothing-str", lambda: ce(x, t, label_smoothing="0.1"), TypeError, "label_smoothing"),
        ("ce-z-loss-neg", lambda: ce(x, t, z_loss=-1e-4), ValueError, "z_loss"),
        ("ce-z-loss-inf", lambda: ce(x, t, z_loss=float("inf")), ValueError, "z_loss"),
        ("ce-reduction", lambda: ce(x, t, reduction="avg"), ValueError, "reduction"),
        ("ce-reduction-none-obj", lambda: ce(x, t, reduction=None), ValueError, "reduction"),
        ("ce-backend", lambda: ce(x, t, backend="fast"), ValueError, "backend"),
        ("ce-backend-cuda", lambda: ce(x, t, backend="cuda"), ValueError, "cuda"),
        ("focal-target-too-big", lambda: fo(x, t + 1), ValueError, "target"),
        ("focal-target-negative", lambda: fo(x, t - 2, ignore_index=-1), ValueError, "target"),
        ("focal-target-float", lambda: fo(x, soft), TypeError, "target"),
        ("focal-target-shape", lambda: fo(x, t[:4]), ValueError, "target"),
        ("focal-gamma-neg", lambda: fo(x, t, gamma=-0.5), ValueError, "gamma"),
        ("focal-gamma-nan", lambda: fo(x, t, gamma=float("nan")), ValueError, "gamma"),
        ("focal-alpha-neg", lambda: fo(x, t, alpha=-0.25), ValueError, "alpha"),
        ("focal-alpha-length", lambda: fo(x, t, alpha=torch.ones(3)), ValueError, "alpha"),
        ("focal-alpha-int", lambda: fo(x, t, alpha=torch.ones(4, dtype=torch.long)), TypeError, "alpha"),
        ("focal-alpha-str", lambda: fo(x, t, alpha="0.25"), TypeError, "alpha"),
        ("focal-smoothing", lambda: fo(x, t, label_smoothing=2.0), ValueError, "label_smoothing"),
        ("focal-reduction", lambda: fo(x, t, reduction="batchmean"), ValueError, "reduction"),
        ("focal-input-0d", lambda: fo(torch.tensor(1.0), torch.tensor(0)), ValueError, "input"),
        ("focal-backend", lambda: fo(x, t, backend="fast"), ValueError, "backend"),
        ("module-ce-reduction", lambda: fl_nn.CrossEntropyLoss(reduction="avg")(x, t), ValueError,
         "reduction"),
        ("module-ce-z-loss", lambda: fl_nn.CrossEntropyLoss(z_loss=-1.0)(x, t), ValueError, "z_loss"),
        ("module-focal-gamma", lambda: fl_nn.SoftmaxFocalLoss(gamma=-1.0)(x, t), ValueError, "gamma"),
    ]


@pytest.mark.parametrize("case", _bad_cases(), ids=lambda c: c[0])
def test_bad_input(case):
    _, thunk, exc, match = case
    with pytest.raises(exc, match=match):
        thunk()


@pytest.mark.parametrize("device, backend", ALL)
def test_bad_input_on_every_backend(device, backend):
    # the checks run before any backend: no fused op is dispatched for a bad call
    x = make_logits((6, 4), torch.float32, device).requires_grad_()
    t = torch.tensor([0, 1, 2, 3, 0, 1], device=device)
    soft = make_target((6, 4), "soft", torch.float32, device)
    bad = [
        (lambda: fusedloss.cross_entropy(x, t + 1, backend=backend), ValueError, "target"),
        (lambda: fusedloss.cross_entropy(x, t - 1, backend=backend), ValueError, "target"),
        (lambda: fusedloss.cross_entropy(x, t, weight=torch.ones(5, device=device), backend=backend),
         ValueError, "weight"),
        (lambda: fusedloss.cross_entropy(x, soft.double(), backend=backend), TypeError, "target"),
        (lambda: fusedloss.cross_entropy(x, soft, ignore_index=1, backend=backend), ValueError,
         "ignore_index"),
        (lambda: fusedloss.cross_entropy(x, t, z_loss=-1.0, backend=backend), ValueError, "z_loss"),
        (lambda: fusedloss.cross_entropy(x, t, label_smoothing=1.1, backend=backend), ValueError,
         "label_smoothing"),
        (lambda: fusedloss.softmax_focal_loss(x, t + 1, backend=backend), ValueError, "target"),
        (lambda: fusedloss.softmax_focal_loss(x, t, gamma=-1.0, backend=backend), ValueError, "gamma"),
    ]
    for thunk, exc, match in bad:
        with OpRecorder() as rec:
            with pytest.raises(exc, match=match):
                thunk()
        assert not any(op.startswith("fusedloss::") for op in rec.ops)


@NEEDS_CUDA
def test_other_device_is_refused():
    x = make_logits((6, 4), torch.float32, "cuda")
    t = torch.tensor([0, 1, 2, 3, 0, 1])
    with pytest.raises(ValueError, match="target.*device"):
        fusedloss.cross_entropy(x, t)
    with pytest.raises(ValueError, match="target.*device"):
        fusedloss.cross_entropy(x, torch.rand(6, 4))
    with pytest.raises(ValueError, match="weight.*device"):
        fusedloss.cross_entropy(x, t.cuda(), weight=torch.ones(4))
    with pytest.raises(ValueError, match="target.*device"):
        fusedloss.softmax_focal_loss(x, t)
    with pytest.raises(ValueError, match="alpha.*device"):
        fusedloss.softmax_focal_loss(x, t.cuda(), alpha=torch.ones(4))


# ----------------------------------------------------------------------------------------------
# raw ops: documented outputs, opcheck
# ----------------------------------------------------------------------------------------------

OP_OF_BACKEND = {"cpu": "softmax_fwd", "cuda": "softmax_fwd", "triton": "softmax_fwd_triton"}
MODE_CE, MODE_FOCAL = 0, 1
RED = {"none": 0, "sum": 1, "mean": 2}
OPCHECK_UTILS = ("test_schema", "test_autograd_registration", "test_faketensor", "test_aot_dispatch_dynamic")


def _op(backend):
    return getattr(torch.ops.fusedloss, OP_OF_BACKEND[backend]).default


def test_softmax_op_has_a_cpu_kernel():
    # The CI always builds the C++ extension: a missing CPU kernel is a failure, never a skip.
    assert torch._C._dispatch_has_kernel_for_dispatch_key("fusedloss::softmax_fwd", "CPU")


def raw_args(device, dtype, *, n=5, c=7, d=1, mode=MODE_CE, soft=False, weight=False, ignore_index=-100,
             smoothing=0.0, z_loss=0.0, gamma=0.0, reduction="mean", requires_grad=False, compute_grad=True):
    """The op's arguments as run_softmax prepares them: x [N, C, D], target int64 [N, D] (some rows
    ignore_index) or probabilities [N, C, D] in x's dtype, weight [C] in the accumulation dtype."""
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    x = make_logits((n, c, d), dtype, device).requires_grad_(requires_grad)
    if soft:
        t = make_target((n, c, d), "soft", dtype, device)
    else:
        t = class_target((n, c, d), device, ignore_index)
    w = class_weight(c, acc, device) if weight else None
    return (x, t, w, mode, ignore_index, smoothing, z_loss, gamma, RED[reduction], compute_grad)


_RAW_CONFIGS = [
    dict(mode=MODE_CE, weight=True, smoothing=0.1, reduction="none"),
    dict(mode=MODE_CE, d=3, z_loss=0.01, ignore_index=3, reduction="mean"),
    dict(mode=MODE_CE, soft=True, weight=True, smoothing=0.2, reduction="sum"),
    dict(mode=MODE_CE, soft=True, d=3, z_loss=0.05, reduction="mean"),
    dict(mode=MODE_FOCAL, weight=True, gamma=2.0, reduction="mean"),
    dict(mode=MODE_FOCAL, d=3, gamma=0.5, smoothing=0.1, ignore_index=3, reduction="none"),
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


@pytest.mark.parametrize("device, backend, cfg, requires_grad, compute_grad", _opcheck_cases(), ids=ids)
def test_opcheck(device, backend, cfg, requires_grad, compute_grad):
    args = raw_args(device, torch.float32, **cfg, requires_grad=requires_grad, compute_grad=compute_grad)
    torch.library.opcheck(_op(backend), args)


@pytest.mark.parametrize("device, backend", FUSED)
def test_opcheck_fp64_fp16_empty_and_all_ignored(device, backend):
    op = _op(backend)
    torch.library.opcheck(op, raw_args(device, torch.float64, weight=True, smoothing=0.1, z_loss=0.1,
                                       requires_grad=True))
    torch.library.opcheck(op, raw_args(device, torch.float16, mode=MODE_FOCAL, gamma=2.0, reduction="none",
                                       requires_grad=True))
    no_nan = tuple(u for u in OPCHECK_UTILS if u != "test_aot_dispatch_dynamic")
    for n, d in ((0, 1), (0, 3), (2, 0)):
        for cfg in (dict(mode=MODE_CE), dict(mode=MODE_CE, soft=True), dict(mode=MODE_FOCAL, gamma=2.0)):
            for reduction in REDUCTIONS:
                for rg, cg in ((True, True), (False, False)):
                    args = raw_args(device, torch.float32, n=n, d=d, **cfg, reduction=reduction,
                                    requires_grad=rg, compute_grad=cg)
                    # the mean of nothing is NaN, and opcheck's eager-vs-AOT comparison has no
                    # equal_nan (test_empty checks the NaN)
                    utils = no_nan if reduction == "mean" else OPCHECK_UTILS
                    torch.library.opcheck(op, args, test_utils=utils)
    # every row ignored
    args = raw_args(device, torch.float32, requires_grad=True, reduction="sum")
    args = (args[0], torch.full_like(args[1], -100)) + args[2:]
    torch.library.opcheck(op, args)


@pytest.mark.parametrize("device, backend", FUSED)
def test_compute_grad_false_with_requires_grad_raises(device, backend):
    # an input that requires grad with no gradient computed would silently train on zeros
    args = raw_args(device, torch.float32, requires_grad=True, compute_grad=False)
    with pytest.raises(RuntimeError, match="compute_grad=False"):
        _op(backend)(*args)


@pytest.mark.parametrize("device, backend", FUSED)
@pytest.mark.parametrize("cfg", _RAW_CONFIGS + [dict(mode=MODE_CE, n=0, reduction="mean")], ids=ids)
def test_raw_op_outputs(device, backend, cfg):
    # (loss, grad, scale): loss [N, D] (none) or 0-d in x's dtype; grad = d(sum of row losses)/dx,
    # unscaled; scale 0-d in the accumulation dtype: 1 (none, sum), 1 / denominator (mean; 0 when
    # the denominator is 0). Denominator: sum of w_y over rows not ignored (class-index CE), the row
    # count (probabilities), the rows not ignored (focal).
    cfg = dict(cfg)
    reduction = cfg.pop("reduction")
    args = raw_args(device, torch.float64, **cfg, reduction=reduction)
    x, t, w, mode, ii, ls, z, gamma = args[:8]
    loss, grad, scale = _op(backend)(*args)
    n, c, d = x.shape
    xr = x.detach().clone().requires_grad_()
    if mode == MODE_CE:
        per = ref.cross_entropy_reference(xr, t, w, ii, "none", ls, z)
    else:
        per = ref.softmax_focal_loss_reference(xr, t, gamma, w, ii, ls, "none")
    (ref_grad,) = torch.autograd.grad(per.sum(), xr) if per.numel() else (torch.zeros_like(x),)
    if t.dtype.is_floating_point:
        den = float(n * d)
    elif mode == MODE_CE:
        valid = t != ii
        den = float(((w if w is not None else torch.ones(c, dtype=x.dtype, device=device))[
            torch.where(valid, t, 0)] * valid).sum())
    else:
        den = float((t != ii).sum())
    assert scale.shape == () and scale.dtype == torch.float64 and loss.dtype == torch.float64
    if reduction == "none":
        assert loss.shape == (n, d) and float(scale) == 1.0
        torch.testing.assert_close(loss, per.detach().reshape(n, d), rtol=RTOL64, atol=ATOL64)
    elif reduction == "sum":
        assert loss.shape == () and float(scale) == 1.0
        torch.testing.assert_close(loss, per.detach().sum(), rtol=RTOL64, atol=ATOL64)
    else:
        assert loss.shape == ()
        assert math.isclose(float(scale), 1.0 / den if den else 0.0, rel_tol=1e-12)
        want = per.detach().sum() / den if den else torch.full((), math.nan, dtype=x.dtype, device=device)
        torch.testing.assert_close(loss, want, rtol=RTOL64, atol=ATOL64, equal_nan=True)
    assert grad.shape == x.shape and grad.dtype == torch.float64
    torch.testing.assert_close(grad, ref_grad, rtol=RTOL64, atol=ATOL64)
    _, no_grad, _ = _op(backend)(*args[:-1], False)
    assert no_grad.numel() == 0
    # low precision: loss and grad in the input's dtype, scale in float32
    loss16, grad16, scale16 = _op(backend)(*raw_args(device, torch.float16, **cfg, reduction=reduction))
    assert loss16.dtype == grad16.dtype == torch.float16 and scale16.dtype == torch.float32


# ----------------------------------------------------------------------------------------------
# torch.compile(fullgraph=True)
# ----------------------------------------------------------------------------------------------


def _compiled_public(kind, backend):
    def f(x, t, w):
        if kind == "ce":
            return fusedloss.cross_entropy(x, t, w, ignore_index=3, label_smoothing=0.1, backend=backend)
        if kind == "ce_soft_z":
            return fusedloss.cross_entropy(x, t, w, reduction="none", z_loss=0.01, backend=backend)
        return fusedloss.softmax_focal_loss(x, t, 2.0, w, reduction="sum", backend=backend)

    return f


def _compiled_reference(kind, x, t, w):
    if kind == "ce":
        return F.cross_entropy(x, t, w, ignore_index=3, label_smoothing=0.1)
    if kind == "ce_soft_z":
        return ref.cross_entropy_reference(x, t, w, reduction="none", z_loss=0.01)
    return ref.softmax_focal_loss_reference(x, t, 2.0, w, reduction="sum")


@pytest.mark.parametrize("device, backend", FUSED)
@pytest.mark.parametrize("kind", ["ce", "ce_soft_z", "focal"])
def test_compile_fullgraph(device, backend, kind):
    # validation, backend choice, the reshape to rows and the fused op trace without a graph break
    # (dynamic=True: one graph for two batch sizes); forward and backward against float64 truth.
    torch._dynamo.reset()
    compiled = torch.compile(_compiled_public(kind, backend), fullgraph=True, dynamic=True)
    for shape in ((16, 7), (37, 7)):
        x = make_logits(shape, torch.float32, device)
        t = target_for(kind, shape, torch.float32, device, 3)
        w = class_weight(7, torch.float32, device)
        xl = x.clone().requires_grad_()
        loss = compiled(xl, t, w)
        go = torch.randn_like(loss)
        loss.backward(go)
        xr = x.double().requires_grad_()
        expected = _compiled_reference(kind, xr, _to(t, torch.float64), w.double())
        expected.backward(go.double())
        assert loss.dtype == torch.float32 and loss.shape == expected.shape
        torch.testing.assert_close(loss.detach(), expected.detach().float(), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(xl.grad, xr.grad.float(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("device, backend", FUSED)
def test_compile_module_4d(device, backend):
    torch._dynamo.reset()
    m = fl_nn.CrossEntropyLoss(weight=class_weight(5, torch.float32, device), z_loss=1e-3, backend=backend)
    compiled = torch.compile(m, fullgraph=True)
    x = make_logits((2, 5, 3, 4), torch.float32, device)
    t = class_target((2, 5, 3, 4), device, -100)
    xl = x.clone().requires_grad_()
    loss = compiled(xl, t)
    loss.backward()
    xr = x.double().requires_grad_()
    expected = ref.cross_entropy_reference(xr, t, m.weight.double(), z_loss=1e-3)
    expected.backward()
    torch.testing.assert_close(loss.detach(), expected.detach().float(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(xl.grad, xr.grad.float(), rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------------------------
# inplace_grad: the logits' memory receives the gradient
# ----------------------------------------------------------------------------------------------

_INPLACE_CASES = [
    ("ce", (37, 19), dict()),
    ("ce", (5, 3000), dict(label_smoothing=0.1, z_loss=1e-3, weight=True)),   # looped path
    ("ce", (2, 5, 3, 7), dict(ignore_index=2, reduction="none")),            # strided path
    ("ce_soft", (6, 11), dict(reduction="sum")),
    ("ce", (9,), dict(reduction="sum")),                                      # unbatched [C]
    ("focal", (37, 19), dict(gamma=2.0, label_smoothing=0.1)),
    ("focal", (3, 2100), dict(gamma=0.5, alpha="tensor")),
]


def _inplace_kwargs(kw, shape, device):
    """kw with "weight": True / "alpha": "tensor" replaced by one fixed [C] tensor."""
    kw = dict(kw)
    c = shape[0] if len(shape) == 1 else shape[1]
    if kw.pop("weight", False):
        kw["weight"] = class_weight(c, torch.float32, device)
    if kw.get("alpha") == "tensor":
        kw["alpha"] = class_weight(c, torch.float32, device)
    return kw


def _inplace_call(fn, x, t, kw, backend, inplace_grad):
    f = fusedloss.softmax_focal_loss if fn == "focal" else fusedloss.cross_entropy
    return f(x, t, **kw, inplace_grad=inplace_grad, backend=backend)


def _inplace_cases():
    out = []
    for device, backend in FUSED:
        dtypes = DTYPES if not interpreted(device, backend) else [torch.float64, torch.bfloat16]
        for dtype in dtypes:
            for i, case in enumerate(_INPLACE_CASES):
                if interpreted(device, backend) and i % 2 and dtype != torch.float64:
                    continue
                out.append((device, backend, dtype) + case)
    return out


@pytest.mark.parametrize("device, backend, dtype, fn, shape, kw", _inplace_cases(), ids=ids)
def test_inplace_grad_matches_the_allocating_path(device, backend, dtype, fn, shape, kw):
    # Same kernel, so the gradient must be bit-identical; the logits' memory holds it afterwards.
    x0 = make_logits(shape, dtype, device)
    t = target_for(fn, shape, dtype, device, kw.get("ignore_index"))
    kw = _inplace_kwargs(kw, shape, device)
    a = x0.clone().requires_grad_()
    la = _inplace_call(fn, a, t, kw, backend, False)
    go = torch.rand_like(la) + 0.5
    la.backward(go)
    assert torch.equal(a.detach(), x0), "inplace_grad=False must leave the logits alone"

    leaf = x0.clone().requires_grad_()
    h = leaf * 1                        # a non-leaf, as logits usually are
    storage = h.data_ptr()
    lb = _inplace_call(fn, h, t, kw, backend, True)
    assert not torch.equal(h.detach(), x0), "the logits were not overwritten"
    lb.backward(go)
    torch.testing.assert_close(lb, la, rtol=0, atol=0, equal_nan=True)
    torch.testing.assert_close(leaf.grad, a.grad, rtol=0, atol=0)
    assert h.data_ptr() == storage
    if dtype == torch.float64:  # and the float64 truth, so that "same as the other path" is not all
        xr = x0.clone().requires_grad_()
        _inplace_call(fn, xr, t, kw, "reference", False).backward(go)
        torch.testing.assert_close(leaf.grad, xr.grad, rtol=RTOL64, atol=ATOL64)


@pytest.mark.parametrize("device, backend", FUSED)
def test_inplace_grad_leaf_holds_its_own_gradient(device, backend):
    x = make_logits((8, 10), torch.float64, device).requires_grad_()
    x0 = x.detach().clone()
    t = class_target((8, 10), device, None)
    fusedloss.cross_entropy(x, t, inplace_grad=True, backend=backend).backward()
    xr = x0.clone().requires_grad_()
    F.cross_entropy(xr, t).backward()
    torch.testing.assert_close(x.grad, xr.grad, rtol=RTOL64, atol=ATOL64)
    # the leaf's data is now the (scaled) gradient itself: no second [N, C] buffer was allocated
    torch.testing.assert_close(x.detach(), xr.grad, rtol=RTOL64, atol=ATOL64)


@pytest.mark.parametrize("device, backend", FUSED)
def test_inplace_grad_backward_runs_once(device, backend):
    x = make_logits((6, 9), torch.float32, device).requires_grad_()
    t = class_target((6, 9), device, None)
    loss = fusedloss.cross_entropy(x * 1, t, inplace_grad=True, backend=backend)
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="backpropagated once"):
        loss.backward()


@pytest.mark.parametrize("device, backend", FUSED)
def test_inplace_grad_detects_a_producer_that_saved_the_logits(device, backend):
    # exp saves its output for backward: overwriting it must be caught by autograd, not used
    x = make_logits((6, 9), torch.float32, device).requires_grad_()
    t = class_target((6, 9), device, None)
    loss = fusedloss.cross_entropy(x.exp(), t, inplace_grad=True, backend=backend)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


@pytest.mark.parametrize("device, backend", FUSED)
def test_inplace_grad_without_grad_leaves_the_logits(device, backend):
    x = make_logits((6, 9), torch.float32, device)
    t = class_target((6, 9), device, None)
    before = x.clone()
    expected = fusedloss.cross_entropy(x, t, backend=backend)
    torch.testing.assert_close(fusedloss.cross_entropy(x, t, inplace_grad=True, backend=backend), expected)
    xg = x.clone().requires_grad_()
    with torch.no_grad():
        fusedloss.cross_entropy(xg, t, inplace_grad=True, backend=backend)
    assert torch.equal(x, before) and torch.equal(xg.detach(), before)


def test_inplace_grad_bad_arguments():
    x = make_logits((6, 9), torch.float32, "cpu").requires_grad_()
    t = class_target((6, 9), "cpu", None)
    with pytest.raises(ValueError, match="inplace_grad=True needs a fused backend"):
        fusedloss.cross_entropy(x * 1, t, inplace_grad=True, backend="reference")
    with pytest.raises(ValueError, match="inplace_grad=True needs a contiguous input"):
        fusedloss.cross_entropy((x * 1).t().contiguous().t(), t, inplace_grad=True, backend="cpu")
    with pytest.raises(TypeError, match="inplace_grad must be a bool"):
        fusedloss.softmax_focal_loss(x, t, inplace_grad=1, backend="cpu")


INPLACE_OP_OF_BACKEND = {"cpu": "softmax_fwd_inplace", "cuda": "softmax_fwd_inplace",
                         "triton": "softmax_fwd_inplace_triton"}


@pytest.mark.parametrize("device, backend", FUSED)
@pytest.mark.parametrize("cfg", _RAW_CONFIGS, ids=ids)
def test_inplace_opcheck_and_outputs(device, backend, cfg):
    op = getattr(torch.ops.fusedloss, INPLACE_OP_OF_BACKEND[backend]).default
    args = raw_args(device, torch.float32, **cfg)
    torch.library.opcheck(op, args[:-1])
    x = args[0].clone()
    loss, scale = op(x, *args[1:-1])
    ref_loss, ref_grad, ref_scale = _op(backend)(*args)
    torch.testing.assert_close(loss, ref_loss, rtol=0, atol=0, equal_nan=True)
    torch.testing.assert_close(scale, ref_scale, rtol=0, atol=0)
    torch.testing.assert_close(x, ref_grad, rtol=0, atol=0)


def test_inplace_op_has_a_cpu_kernel():
    assert torch._C._dispatch_has_kernel_for_dispatch_key("fusedloss::softmax_fwd_inplace", "CPU")


@pytest.mark.parametrize("device, backend", COMPILED)
def test_inplace_grad_compile_fullgraph(device, backend):
    torch._dynamo.reset()

    def f(h, t, inplace):
        return fusedloss.cross_entropy(h * 2, t, label_smoothing=0.1, inplace_grad=inplace,
                                       backend=backend)

    compiled = torch.compile(f, fullgraph=True)
    x = make_logits((16, 33), torch.float32, device)
    t = class_target((16, 33), device, -100)
    a = x.clone().requires_grad_()
    compiled(a, t, True).backward()
    b = x.clone().requires_grad_()
    f(b, t, False).backward()
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("device, backend", FUSED)
def test_inplace_grad_module(device, backend):
    m = fl_nn.CrossEntropyLoss(label_smoothing=0.1, inplace_grad=True, backend=backend)
    x = make_logits((7, 12), torch.float64, device)
    t = class_target((7, 12), device, None)
    a = x.clone().requires_grad_()
    h = a * 1
    m(h, t).backward()
    assert not torch.equal(h.detach(), x)
    b = x.clone().requires_grad_()
    F.cross_entropy(b, t, label_smoothing=0.1).backward()
    torch.testing.assert_close(a.grad, b.grad, rtol=RTOL64, atol=ATOL64)
