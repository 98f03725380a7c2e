"""Multilabel family: multilabel_categorical_crossentropy (dense), its sparse form, multilabel_focal_loss.

Truth (spec section 10): ``fusedloss.reference.multilabel`` run in float64 on fresh random inputs,
loss and input gradient. The reference is itself anchored outside the package:
    - the direct formula ``log1p(sum (1 - y) e^s) + log1p(sum y e^-s)`` in float64 on moderate logits
      (no stabilisation needed there), soft labels, gradient by autograd;
    - bert4keras's formulas (``reference.*_bert4keras``) where they are exact: hard labels, unique
      indices, moderate logits, float64;
    - for C = 1 and hard labels, torch's own BCE-with-logits (the loss is log(1 + e^{-+s}));
    - for the sparse form, the dense form on the multi-hot target (unique indices), and a closed form
      for duplicated indices and K = 0.

The large parameter crosses run on the C++ backends (``cpu``; ``cuda`` and compiled ``triton`` when a
GPU is present); the Triton interpreter (~2-3 ms per program) gets a
representative subset.

Shapes [..., C] and the code path each one hits. Triton: rows of C <= 4096 sit in one power-of-2
tile (at least 16 wide) with rows stacked to 2048 elements per program; longer rows loop over
4096-wide chunks, and fewer than ~264 such rows are split across programs (a stats pass and a
finish pass). CPU: rows in parallel tasks of ~16384 elements, each row in tiles of 2048 classes.
    (1, 1), (7, 1)    C = 1: one class per row (hard labels: the BCE of that class); 16-wide tile
    (5, 3)            tiny, C not a power of two
    (37, 19)          odd N and C: 37 of the 64 rows of one Triton program
    (3, 100)          C not a power of two, a partial 128-wide tile
    (130, 9)          two Triton programs of 128 rows, the second with 2
    (2, 3, 17)        multi-dim leading shape (6 rows); reduction "none" returns [2, 3]
    (3, 4096)         the widest single tile (8 warps); CPU: two full tiles
    (2, 4999)         longer than one Triton block: two chunks, rows split in two; CPU: 3 tiles
    (0, 7), (2, 0, 5) empty batch: mean -> NaN (as torch), sum -> 0, none -> [0] / [2, 0]
    (4, 0)            C = 0: every row is log(1) + log(1) = 0, gradient [4, 0]
    (2, 100000)       C = 1e5, GlobalPointer-like (compiled backends only)
    (4000, 33)        CPU: ~8 parallel tasks (thread count must not change the result)
The Triton looped whole-row path (few programs per row only when N >= ~264) and forced splits are
exercised through ``triton_kernels.multilabel``'s ``splits`` hook on 3 chunks.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import (
    DEVICES,
    NEEDS_CUDA,
    backends_for,
    canary,
    fused_backends_for,
    fusedloss_ops_called,
    lowp_bound,
    make_logits,
    make_target,
    triton_runs_on,
)

import fusedloss
from fusedloss import nn as fl_nn
from fusedloss.reference import multilabel as ref

REDUCTIONS = ("none", "mean", "sum")
LOWP = [torch.float32, torch.float16, torch.bfloat16]
# float64 against the float64 reference: only summation order differs (rows of up to 1e5 terms).
RTOL64, ATOL64 = 1e-10, 1e-12
NEG_INF = float("-inf")

PUBLIC = {
    "dense": fusedloss.multilabel_categorical_crossentropy,
    "sparse": fusedloss.sparse_multilabel_categorical_crossentropy,
    "focal": fusedloss.multilabel_focal_loss,
}
REFERENCE = {
    "dense": ref.multilabel_categorical_crossentropy_reference,
    "sparse": ref.sparse_multilabel_categorical_crossentropy_reference,
    "focal": ref.multilabel_focal_loss_reference,
}


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------


def call(kind, backend, x, other, **kw):
    """The public function on ``backend``; ``backend=None`` calls the reference function itself."""
    if backend is None:
        return REFERENCE[kind](x, other, **kw)
    return PUBLIC[kind](x, other, **kw, backend=backend)


def forward_backward(kind, backend, x, other, kw, go=None):
    """(loss, d loss / d x . go, go) with ``x`` itself as the leaf (its strides are kept)."""
    xl = x.detach().requires_grad_()
    loss = call(kind, backend, xl, other, **kw)
    assert loss.requires_grad, "the loss is not connected to the input"
    if go is None:
        go = torch.randn(loss.shape, dtype=torch.float64).to(loss.device, loss.dtype)
    (g,) = torch.autograd.grad(loss, xl, go)
    return loss.detach(), g, go


def _as64(v):
    return v.double() if isinstance(v, torch.Tensor) and v.is_floating_point() else v


def assert_matches_reference(kind, backend, x, other, kw):
    """fp64 input: tight comparison with the fp64 reference. Low precision: flash-attn's bound
    against the reference run in the same dtype. Always: dtype and shape of loss and grad."""
    loss, g, go = forward_backward(kind, backend, x, other, kw)
    reduced = kw.get("reduction", "mean") != "none"
    assert loss.dtype == x.dtype and g.dtype == x.dtype
    assert loss.shape == (() if reduced else x.shape[:-1])
    assert g.shape == x.shape
    ref_loss, ref_g, _ = forward_backward(kind, None, x.double(), _as64(other), kw, go.double())
    if x.dtype == torch.float64:
        torch.testing.assert_close(loss, ref_loss, rtol=RTOL64, atol=ATOL64, equal_nan=True)
        torch.testing.assert_close(g, ref_g, rtol=RTOL64, atol=ATOL64, equal_nan=True)
    else:
        same_loss, same_g, _ = forward_backward(kind, None, x, other, kw, go)
        lowp_bound(loss, same_loss, ref_loss, x.dtype, 16.0 if x.dtype == torch.float32 else 2.0)
        lowp_bound(g, same_g, ref_g, x.dtype, 8.0 if x.dtype == torch.float32 else 2.0)
    return loss, g


def make_index(lead, c, k, kind="unique", mask_zero=False, device="cpu"):
    """positive_index [*lead, k] int64, unsorted.

    "unique": distinct classes per row (from 1..C-1 with ``mask_zero``, where entries beyond C - 1
    classes, and one entry mid-row when k >= 2, are the padding 0). "dup": uniform in [0, C) with
    the first two entries of each row equal (a class listed twice; with ``mask_zero`` a drawn 0 is
    padding)."""
    n = math.prod(lead)
    lo = 1 if mask_zero else 0
    assert kind == "dup" or mask_zero or k <= c
    out = torch.zeros(n, k, dtype=torch.int64)
    for r in range(n):
        if k == 0:
            break
        if kind == "unique":
            m = min(k, c - lo)
            row = torch.zeros(k, dtype=torch.int64)
            row[:m] = torch.randperm(c - lo)[:m] + lo
            if mask_zero and k >= 2 and m == k:
                row[k // 2] = 0
            out[r] = row[torch.randperm(k)]
        else:
            row = torch.randint(0, c, (k,))
            if k >= 2:
                row[1] = row[0]
            out[r] = row
    return out.reshape(*lead, k).to(device)


def multi_hot(idx, c, dtype=torch.float64):
    """The dense 0/1 target of an index tensor (duplicates collapse)."""
    return torch.zeros(idx.shape[:-1] + (c,), dtype=dtype, device=idx.device).scatter_(-1, idx, 1.0)


def shape_id(v):
    if isinstance(v, tuple) and all(isinstance(d, int) for d in v):
        return "x".join(map(str, v))
    if isinstance(v, torch.dtype):
        return str(v).replace("torch.", "")
    return None


def _cases(full, subset):
    """(device, backend, *case): ``full`` on compiled backends, ``subset`` on the interpreter."""
    out = []
    for device in DEVICES:
        for backend in fused_backends_for(device):
            cases = subset if (backend == "triton" and device == "cpu") else full
            out += [(device, backend) + tuple(c) for c in cases]
    return out


FUSED = [(d, b) for d in DEVICES for b in fused_backends_for(d)]
ALL = [(d, b) for d in DEVICES for b in backends_for(d)]
COMPILED = [(d, b) for d, b in FUSED if not (b == "triton" and d == "cpu")]  # no interpreter

SHAPES = [
    (1, 1),
    (7, 1),
    (5, 3),
    (37, 19),
    (3, 100),
    (130, 9),
    (2, 3, 17),
    (3, 4096),
    (2, 4999),
    (0, 7),
    (2, 0, 5),
    (4, 0),
]


# ----------------------------------------------------------------------------------------------
# the reference against independent formulas
# ----------------------------------------------------------------------------------------------


def _direct(x, y):
    """Su's formula as written, float64, moderate logits only (no stabilisation)."""
    return torch.log1p(((1 - y) * x.exp()).sum(-1)) + torch.log1p((y * (-x).exp()).sum(-1))


@pytest.mark.parametrize("target_kind", ["float", "soft"])
def test_reference_is_the_direct_formula(target_kind):
    x = make_logits((37, 19))
    y = make_target((37, 19), target_kind)
    xr, xd = x.clone().requires_grad_(), x.clone().requires_grad_()
    got = ref.multilabel_categorical_crossentropy_reference(xr, y, "none")
    want = _direct(xd, y)
    go = torch.randn(37, dtype=torch.float64)
    got.backward(go)
    want.backward(go)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(xr.grad, xd.grad, rtol=1e-12, atol=1e-13)
    # spec 10.1's gradient, written out
    neg = (1 - y) * x.exp() / (1 + ((1 - y) * x.exp()).sum(-1, keepdim=True))
    pos = y * (-x).exp() / (1 + (y * (-x).exp()).sum(-1, keepdim=True))
    torch.testing.assert_close(xr.grad, (neg - pos) * go[:, None], rtol=1e-12, atol=1e-13)


def test_reference_c1_is_bce():
    x = make_logits((50, 1))
    y = make_target((50, 1))
    torch.testing.assert_close(
        ref.multilabel_categorical_crossentropy_reference(x, y, "none"),
        F.binary_cross_entropy_with_logits(x, y, reduction="none")[:, 0],
        rtol=1e-12,
        atol=1e-14,
    )


def test_reference_sparse_semantics():
    # Hand-written: positives are a multiset, negatives the classes not listed; mask_zero drops class 0.
    x = make_logits((9,))
    idx = torch.tensor([2, 5, 2, 0])
    e = math.exp
    s = x.tolist()
    pos = math.log(1 + 2 * e(-s[2]) + e(-s[5]) + e(-s[0]))
    neg = math.log(1 + sum(e(s[c]) for c in range(9) if c not in (0, 2, 5)))
    got = ref.sparse_multilabel_categorical_crossentropy_reference(x[None], idx[None], False, "none")
    assert math.isclose(float(got), pos + neg, rel_tol=1e-13)
    pos = math.log(1 + 2 * e(-s[2]) + e(-s[5]))
    neg = math.log(1 + sum(e(s[c]) for c in range(9) if c not in (0, 2, 5)))
    got = ref.sparse_multilabel_categorical_crossentropy_reference(x[None], idx[None], True, "none")
    assert math.isclose(float(got), pos + neg, rel_tol=1e-13)


# ----------------------------------------------------------------------------------------------
# dense: every shape, reduction and target kind against the float64 reference
# ----------------------------------------------------------------------------------------------

_DENSE_FULL = [(s, r, tk) for s in SHAPES for r in REDUCTIONS for tk in ("float", "soft", "int64", "bool")]
_DENSE_SUB = [(s, r, "soft") for s in SHAPES for r in REDUCTIONS] + [
    ((37, 19), "mean", tk) for tk in ("float", "int64", "bool")
]


@pytest.mark.parametrize(
    "device, backend, shape, reduction, target_kind", _cases(_DENSE_FULL, _DENSE_SUB), ids=shape_id
)
def test_dense_matches_reference(device, backend, shape, reduction, target_kind):
    x = make_logits(shape, torch.float64, device)
    t = make_target(shape, target_kind, torch.float64, device)
    loss, g = assert_matches_reference("dense", backend, x, t, dict(reduction=reduction))
    n = math.prod(shape[:-1])
    if n == 0 and reduction != "none":  # no rows: mean is NaN (torch's mean of nothing), sum is 0
        assert loss.isnan() if reduction == "mean" else loss == 0
    if n > 0 and shape[-1] == 0:
        assert (loss == 0).all()
    assert torch.isfinite(g).all()
    # both log terms are >= 0 (the "1 +")
    assert (loss[~loss.isnan()] >= 0).all()


@pytest.mark.parametrize("device, backend", ALL + [(d, "auto") for d in DEVICES])
@pytest.mark.parametrize("kind", ["dense", "sparse", "focal"])
def test_every_backend_matches_reference(device, backend, kind):
    x = make_logits((37, 19), torch.float64, device)
    if kind == "sparse":
        other, kw = make_index((37,), 19, 4, "dup", True, device), dict(mask_zero=True, reduction="mean")
    else:
        other, kw = make_target((37, 19), "soft", torch.float64, device), dict(reduction="mean")
    assert_matches_reference(kind, backend, x, other, kw)


# ----------------------------------------------------------------------------------------------
# low precision: fp32 / fp16 / bf16 with flash-attn's bound, result dtype
# ----------------------------------------------------------------------------------------------

_LOWP_SHAPES = [(37, 19), (2, 3, 17), (2, 4999)]
_LOWP_FULL = [
    (k, dt, s, r)
    for k in ("dense", "sparse", "focal")
    for dt in LOWP
    for s in _LOWP_SHAPES + [(7, 1), (130, 9), (0, 7), (4, 0)]
    for r in REDUCTIONS
]
_LOWP_SUB = [
    (k, dt, s, r)
    for k in ("dense", "sparse", "focal")
    for dt in LOWP
    for s, r in zip(_LOWP_SHAPES, REDUCTIONS)
]


@pytest.mark.parametrize(
    "device, backend, kind, dtype, shape, reduction", _cases(_LOWP_FULL, _LOWP_SUB), ids=shape_id
)
def test_low_precision_matches_reference(device, backend, kind, dtype, shape, reduction):
    x = make_logits(shape, dtype, device)
    if kind == "sparse":
        other = make_index(shape[:-1], shape[-1], 5 if shape[-1] else 0, "dup", reduction == "sum", device)
        kw = dict(mask_zero=reduction == "sum", reduction=reduction)
    else:
        other, kw = make_target(shape, "soft", dtype, device), dict(reduction=reduction)
    assert_matches_reference(kind, backend, x, other, kw)


# ----------------------------------------------------------------------------------------------
# dense: targets, special rows, -inf, large logits, large C
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("device, backend", ALL)
@pytest.mark.parametrize(
    "dtype, target_dtype",
    [
        (torch.float32, torch.float16),
        (torch.float32, torch.bfloat16),
        (torch.float32, torch.float64),
        (torch.float16, torch.float32),
        (torch.bfloat16, torch.float64),
        (torch.float64, torch.float32),
    ],
    ids=shape_id,
)
def test_dense_target_of_another_float_dtype(device, backend, dtype, target_dtype):
    # soft labels in their own float dtype, read as they are (no rounding to the input's dtype)
    x = make_logits((37, 19), dtype, device)
    t = make_target((37, 19), "soft", target_dtype, device)
    assert_matches_reference("dense", backend, x, t, dict(reduction="none"))


@pytest.mark.parametrize("device, backend", ALL)
@pytest.mark.parametrize("target_kind", ["int64", "int32", "int8", "uint8", "bool"])
def test_dense_int_and_bool_targets_equal_float(device, backend, target_kind):
    x = make_logits((37, 19), torch.float32, device)
    t = make_target((37, 19), target_kind, torch.float32, device)
    loss_i, g_i, go = forward_backward("dense", backend, x, t, dict(reduction="none"))
    loss_f, g_f, _ = forward_backward("dense", backend, x, t.float(), dict(reduction="none"), go)
    torch.testing.assert_close(loss_i, loss_f, rtol=0, atol=0)
    torch.testing.assert_close(g_i, g_f, rtol=0, atol=0)
    assert_matches_reference("dense", backend, x, t, dict(reduction="sum"))


def _special_rows(dtype, device):
    """(x, y) [6, 13] with: no positives; all positives; -inf on negatives and positives; an all -inf
    row; soft labels with exact 0 and 1 and -inf; a random hard row."""
    c = 13
    x = make_logits((6, c))
    y = make_target((6, c), "float")
    y[0] = 0
    y[1] = 1
    x[2, [1, 4, 7]] = NEG_INF
    y[2, [1, 2, 3]] = 1.0
    y[2, [4, 5, 6, 7]] = 0.0  # -inf at positives (1) and negatives (4, 7)
    x[3] = NEG_INF
    y[4] = torch.rand(c, dtype=torch.float64)
    y[4, [0, 3]] = 0.0
    y[4, [5, 9]] = 1.0
    x[4, [3, 9, 11]] = NEG_INF
    return x.to(device, dtype), y.to(device, dtype)


@pytest.mark.parametrize("device, backend", ALL)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16], ids=shape_id)
@pytest.mark.parametrize("label", ["soft", "bool"])
def test_dense_special_rows_and_neg_inf(device, backend, dtype, label):
    # "bool": the same rows with hard labels in a bool tensor (the kernels' hard-label path)
    x, y = _special_rows(dtype, device)
    if label == "bool":
        y = y > 0.5
    loss, g = assert_matches_reference("dense", backend, x, y, dict(reduction="none"))
    assert torch.isfinite(loss).all() and torch.isfinite(g).all()
    absent = x == NEG_INF
    assert (g[absent] == 0).all(), "an absent (-inf) entry got a gradient"
    assert loss[3] == 0 and (g[3] == 0).all(), "an all -inf row is log(1) + log(1)"
    if dtype != torch.float64:
        return
    # absent means absent: the same rows with the -inf columns removed give the same loss and grad
    for r in range(6):
        keep = ~absent[r]
        xr = x[r, keep].detach().clone().requires_grad_()
        want = ref.multilabel_categorical_crossentropy_reference(xr[None], y[r, keep][None], "none")
        xl = x[r].clone().requires_grad_()
        got = call("dense", backend, xl[None], y[r][None], reduction="none")
        got.sum().backward()
        want.sum().backward()
        torch.testing.assert_close(got, want, rtol=RTOL64, atol=ATOL64)
        torch.testing.assert_close(xl.grad[keep], xr.grad, rtol=RTOL64, atol=ATOL64)
    # closed forms: no positives -> log(1 + sum e^s); all positives -> log(1 + sum e^-s)
    zero = torch.zeros(1, dtype=dtype, device=device)
    torch.testing.assert_close(loss[0], torch.logsumexp(torch.cat([x[0], zero]), 0), rtol=RTOL64, atol=ATOL64)
    torch.testing.assert_close(
        loss[1], torch.logsumexp(torch.cat([-x[1], zero]), 0), rtol=RTOL64, atol=ATOL64
    )


@pytest.mark.parametrize("device, backend", ALL)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16], ids=shape_id)
def test_dense_large_logits_stay_finite(device, backend, dtype):
    # +-1e4 logits on positives and negatives: e^{1e4} overflows every dtype, the online
    # log-sum-exp must not; the loss is ~1e4 where a positive has -1e4 or a negative +1e4.
    x = make_logits((9, 23))
    pick = torch.rand(9, 23)
    x[pick < 0.2] = 1e4
    x[pick > 0.8] = -1e4
    y = make_target((9, 23), "float")
    y[0], y[1] = 1.0, 0.0
    loss, g = assert_matches_reference(
        "dense", backend, x.to(device, dtype), y.to(device, dtype), dict(reduction="none")
    )
    assert torch.isfinite(loss).all() and torch.isfinite(g).all()
    assert loss.double().max() > 5e3  # the saturated rows really are in the sums


@pytest.mark.parametrize("device, backend", COMPILED)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=shape_id)
@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_huge_c(device, backend, dtype, kind):
    # C = 1e5 (GlobalPointer's L*L): two rows, each a long reduction split across SIMD lanes /
    # threads / blocks; the negative sum has ~1e5 terms.
    shape = (2, 100_000)
    x = make_logits(shape, dtype, device)
    if kind == "sparse":
        other, kw = (
            make_index((2,), shape[-1], 50, "dup", True, device),
            dict(mask_zero=True, reduction="none"),
        )
    else:
        other, kw = make_target(shape, "soft", dtype, device), dict(reduction="none")
    assert_matches_reference(kind, backend, x, other, kw)


@pytest.mark.parametrize("kind", ["dense", "sparse"])
@pytest.mark.parametrize("splits", [1, 2, 3])
def test_triton_long_row_paths(kind, splits):
    # C = 2 * 4096 + 5: three 4096-wide chunks, the last with 5 live lanes. splits=1 is the looped
    # whole-row pass (one program per row, the row read twice), 2 and 3 the split stats/finish
    # passes (2: uneven column ranges). Called at the kernel layer, whose splits hook forces the
    # path the public call picks only for N >= ~264 rows.
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if not triton_runs_on(device):
        pytest.skip("Triton cannot run here (CPU without TRITON_INTERPRET=1)")
    from fusedloss.triton_kernels import multilabel as tk

    n, c = 2, 2 * 4096 + 5
    for dtype in (torch.float64, torch.float32):
        x = make_logits((n, c), dtype, device)
        x[0, 7] = NEG_INF
        row_loss = torch.empty(
            n, dtype=torch.float64 if dtype == torch.float64 else torch.float32, device=device
        )
        grad = torch.empty_like(x)
        xr = x.double().requires_grad_()
        if kind == "dense":
            t = make_target((n, c), "soft", dtype, device)
            tk.multilabel_ce_rows_triton(x, t, row_loss, grad, True, splits=splits)
            want = ref.multilabel_categorical_crossentropy_reference(xr, t.double(), "none")
        else:
            idx = make_index((n,), c, 40, "dup", True, device)
            idx[:, :3] = torch.tensor([4095, 4096, c - 1])  # chunk edges and the last class
            idx[idx == 7] = 8  # the -inf logit on a negative class only (a -inf positive is +inf)
            idx = idx.sort(-1).values
            tk.sparse_multilabel_ce_rows_triton(x, idx, True, row_loss, grad, True, splits=splits)
            want = ref.sparse_multilabel_categorical_crossentropy_reference(xr, idx, True, "none")
        want.sum().backward()
        tol = dict(rtol=RTOL64, atol=ATOL64) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(row_loss.double(), want.detach(), **tol)
        torch.testing.assert_close(grad.double(), xr.grad, **tol)


@pytest.mark.parametrize("device, backend", COMPILED)
@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_many_rows_and_thread_count(device, backend, kind):
    # (4000, 33): several parallel row tasks on CPU (many thread blocks on GPU); the reduced loss
    # sums the rows in a fixed order, so the thread count does not change a bit of it.
    shape = (4000, 33)
    x = make_logits(shape, torch.float32, device)
    if kind == "sparse":
        other, kw = make_index(shape[:1], 33, 4, "dup", True, device), dict(mask_zero=True, reduction="mean")
    else:
        other, kw = make_target(shape, "soft", torch.float32, device), dict(reduction="sum")
    assert_matches_reference(kind, backend, x, other, kw)
    if device != "cpu":
        return
    loss, g, go = forward_backward(kind, backend, x, other, kw)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        loss1, g1, _ = forward_backward(kind, backend, x, other, kw, go)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(loss1, loss) and torch.equal(g1, g)


@pytest.mark.parametrize("isa", ["base", "avx2", "native"])
@pytest.mark.parametrize(
    "kind, kw",
    [
        ("dense", dict(reduction="none")),
        ("sparse", dict(mask_zero=True, reduction="sum")),
        ("sparse", dict(mask_zero=False, reduction="none")),
    ],
    ids=["dense", "sparse-mask", "sparse"],
)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16], ids=shape_id)
def test_cpu_isa_variants_match_reference(monkeypatch, isa, kind, kw, dtype):
    # FUSEDLOSS_CPU_ISA lowers the loop the C++ kernel picks. (5, 2053): a full 2048 tile plus a
    # 5-class tail, vector bodies plus scalar tails in every variant; -inf entries in the dense rows.
    if isa != "native":
        monkeypatch.setenv("FUSEDLOSS_CPU_ISA", isa)
    shape = (5, 2053)
    x = make_logits(shape, dtype)
    if kind == "dense":
        x[0, [3, 2050]] = NEG_INF
        other = make_target(shape, "soft", dtype)
    else:
        other = make_index((5,), shape[1], 17, "dup", kw["mask_zero"])
    assert_matches_reference(kind, "cpu", x, other, kw)


@pytest.mark.parametrize("device, backend", ALL)
def test_dense_matches_bert4keras(device, backend):
    # bert4keras's original formula ((1 - 2y) s, +-1e12 masks, a zero column) is exact for hard labels
    # and moderate logits in float64.
    x = make_logits((37, 19), torch.float64, device)
    for kind in ("float", "int64", "bool"):
        y = make_target((37, 19), kind, torch.float64, device)
        got = call("dense", backend, x, y, reduction="none")
        torch.testing.assert_close(
            got, ref.multilabel_categorical_crossentropy_bert4keras(x, y), rtol=1e-10, atol=1e-12
        )


@pytest.mark.parametrize("device, backend", ALL)
def test_dense_c1_is_bce(device, backend):
    x = make_logits((41, 1), torch.float64, device)
    y = make_target((41, 1), "float", torch.float64, device)
    got = call("dense", backend, x, y, reduction="none")
    torch.testing.assert_close(
        got, F.binary_cross_entropy_with_logits(x, y, reduction="none")[:, 0], rtol=1e-10, atol=1e-12
    )


# ----------------------------------------------------------------------------------------------
# layouts: non-contiguous input / target / positive_index, canaries
# ----------------------------------------------------------------------------------------------


def _strided(kind, shape, dtype, device, fn=None):
    """A non-contiguous view of ``shape`` (kind: "transposed", "sliced" every other column/row,
    "permuted" 3-D, "expanded" stride-0 rows) of fresh logits, mapped by ``fn`` before the view."""

    def base(s):
        v = make_logits(s, dtype, device)
        return v if fn is None else fn(v)

    if kind == "transposed":
        v = base(shape[::-1]).t()
    elif kind == "sliced":
        v = base((shape[0] * 2, shape[1] * 2 + 1))[::2, 1::2]
    elif kind == "permuted":
        v = base((shape[2], shape[0], shape[1])).permute(1, 2, 0)
    else:
        v = base(shape[-1:]).expand(shape)
    assert v.shape == shape and not v.is_contiguous()
    return v


_LAYOUTS = [
    ("transposed", "transposed"),
    ("sliced", "transposed"),
    ("transposed", "expanded"),
    ("sliced", "sliced"),
]


@pytest.mark.parametrize("device, backend", ALL)
@pytest.mark.parametrize("x_layout, t_layout", _LAYOUTS)
@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_dense_non_contiguous(device, backend, x_layout, t_layout, reduction):
    shape = (37, 19)
    x = _strided(x_layout, shape, torch.float64, device)
    t = _strided(t_layout, shape, torch.float64, device, torch.sigmoid)  # soft labels in (0, 1)
    assert_matches_reference("dense", backend, x, t, dict(reduction=reduction))


@pytest.mark.parametrize("device, backend", ALL)
def test_dense_permuted_3d(device, backend):
    shape = (4, 6, 5)
    x = _strided("permuted", shape, torch.float32, device)
    t = _strided("permuted", shape, torch.float32, device, lambda v: (v > 0).to(torch.int64))
    assert_matches_reference("dense", backend, x, t, dict(reduction="none"))


@pytest.mark.parametrize("device, backend", ALL)
@pytest.mark.parametrize("x_layout", ["transposed", "sliced"])
@pytest.mark.parametrize("idx_layout", ["transposed", "sliced", "expanded"])
def test_sparse_non_contiguous(device, backend, x_layout, idx_layout):
    n, c, k = 37, 19, 4
    x = _strided(x_layout, (n, c), torch.float64, device)
    if idx_layout == "transposed":
        idx = make_index((k,), c, n, "dup", False, device).t()  # [n, k] view of a [k, n] tensor
    elif idx_layout == "sliced":
        idx = make_index((n,), c, 2 * k, "dup", False, device)[:, ::2]
    else:
        idx = make_index((), c, k, "dup", False, device).expand(n, k)
    assert idx.shape == (n, k) and not idx.is_contiguous()
    for mask_zero in (False, True):
        assert_matches_reference("sparse", backend, x, idx, dict(mask_zero=mask_zero, reduction="none"))


@pytest.mark.parametrize("device, backend", FUSED)
@pytest.mark.parametrize("kind", ["dense", "sparse", "focal"])
@pytest.mark.parametrize("shape", [(1, 1), (37, 19), (2, 3, 17)], ids=shape_id)
def test_canaries(device, backend, kind, shape):
    # Inputs live inside NaN-filled (index: 7-filled) buffers at an odd offset: an out-of-bounds
    # read reaches the result as NaN, a stray write changes a margin, an in-place write the interior.
    x = make_logits(shape, torch.float32, device)
    if kind == "sparse":
        other = make_index(shape[:-1], shape[-1], 3, "dup", True, device)
        kw = dict(mask_zero=True, reduction="none")
    else:
        other, kw = make_target(shape, "soft", torch.float32, device), dict(reduction="none")
    xv, check_x = canary(x)
    ov, check_o = canary(other)
    loss, g, _ = forward_backward(kind, backend, xv, ov, kw)
    assert torch.isfinite(loss).all() and torch.isfinite(g).all()
    check_x()
    check_o()
    assert_matches_reference(kind, backend, x, other, kw)


# ----------------------------------------------------------------------------------------------
# sparse: against the reference, the dense form, closed forms and bert4keras
# ----------------------------------------------------------------------------------------------

# (leading shape, C, K)
SPARSE_SHAPES = [
    ((1,), 1, 1),  # C = 1; under mask_zero the only index is padding
    ((7,), 1, 0),  # C = 1, K = 0
    ((5,), 3, 2),
    ((37,), 19, 4),
    ((3,), 100, 7),
    ((2, 3), 17, 3),
    ((2,), 4999, 9),
    ((0,), 7, 3),  # empty batch
    ((2, 0), 5, 2),
    ((4,), 0, 0),  # C = 0
    ((4,), 9, 0),  # K = 0
    ((3,), 5, 20),  # K > C: every class listed, most of them several times (index kind "dup")
]
_SPARSE_FULL = [
    (s, mz, r, ik)
    for s in SPARSE_SHAPES
    for mz in (False, True)
    for r in REDUCTIONS
    for ik in ("unique", "dup")
    if ik == "dup" or s[2] <= s[1]
]
_SPARSE_SUB = [(s, mz, r, "dup") for s in SPARSE_SHAPES for mz, r in ((False, "none"), (True, "mean"))] + [
    (((37,), 19, 4), True, "sum", "unique"),
    (((2, 3), 17, 3), False, "sum", "unique"),
]


def _sparse_id(v):
    if isinstance(v, tuple) and len(v) == 3 and isinstance(v[0], tuple):
        return "x".join(map(str, v[0] + (v[1],))) + f"-K{v[2]}"
    return shape_id(v)


@pytest.mark.parametrize(
    "device, backend, sshape, mask_zero, reduction, index_kind",
    _cases(_SPARSE_FULL, _SPARSE_SUB),
    ids=_sparse_id,
)
def test_sparse_matches_reference(device, backend, sshape, mask_zero, reduction, index_kind):
    lead, c, k = sshape
    x = make_logits(lead + (c,), torch.float64, device)
    idx = make_index(lead, c, k, index_kind, mask_zero, device)
    _, g = assert_matches_reference("sparse", backend, x, idx, dict(mask_zero=mask_zero, reduction=reduction))
    assert torch.isfinite(g).all()
    if mask_zero and c > 0:
        assert (g[..., 0] == 0).all(), "class 0 under mask_zero got a gradient"


@pytest.mark.parametrize("device, backend", ALL)
@pytest.mark.parametrize(
    "sshape", [((37,), 19, 4), ((2, 3), 17, 5), ((2,), 4999, 9), ((3,), 1, 1)], ids=_sparse_id
)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=shape_id)
def test_sparse_equals_dense_on_unique_indices(device, backend, sshape, dtype):
    lead, c, k = sshape
    x = make_logits(lead + (c,), dtype, device)
    idx = make_index(lead, c, k, "unique", False, device)
    y = multi_hot(idx, c, dtype)
    tol = dict(rtol=RTOL64, atol=ATOL64) if dtype == torch.float64 else dict(rtol=2e-6, atol=2e-6)
    ls, gs, go = forward_backward("sparse", backend, x, idx, dict(reduction="none"))
    ld, gd, _ = forward_backward("dense", backend, x, y, dict(reduction="none"), go)
    torch.testing.assert_close(ls, ld, **tol)
    torch.testing.assert_close(gs, gd, **tol)
    # mask_zero: with zero padding, the dense form over classes 1..C-1; class 0 gets no gradient
    if c < 2:
        return
    idx0 = make_index(lead, c, k, "unique", True, device)
    y0 = multi_hot(idx0, c, dtype)[..., 1:]
    ls, gs, go = forward_backward("sparse", backend, x, idx0, dict(mask_zero=True, reduction="none"))
    ld, gd, _ = forward_backward("dense", backend, x[..., 1:].contiguous(), y0, dict(reduction="none"), go)
    torch.testing.assert_close(ls, ld, **tol)
    torch.testing.assert_close(gs[..., 1:], gd, **tol)
    assert (gs[..., 0] == 0).all()


@pytest.mark.parametrize("device, backend", ALL)
def test_sparse_duplicates_are_a_multiset(device, backend):
    # The documented semantics (as bert4keras): an index listed twice counts twice in the positive
    # sum, so the loss differs from the dense form on the multi-hot target, and the class's gradient
    # is that of weight 2. Row 0: class 2 twice; row 1: class 5 three times; row 2: no duplicates.
    c = 8
    x = make_logits((3, c), torch.float64, device)
    idx = torch.tensor([[2, 2, 5], [5, 5, 5], [1, 3, 6]], device=device)
    loss, g, go = forward_backward("sparse", backend, x, idx, dict(reduction="none"))
    counts = torch.zeros(3, c, dtype=torch.float64, device=device).scatter_add_(
        -1, idx, torch.ones(idx.shape, dtype=torch.float64, device=device)
    )
    neg = counts == 0
    xd = x.clone().requires_grad_()
    pos_sum = (counts * (-xd).exp()).sum(-1)
    neg_sum = torch.where(neg, xd.exp(), 0.0).sum(-1)
    want = torch.log1p(pos_sum) + torch.log1p(neg_sum)
    want.backward(go)
    torch.testing.assert_close(loss, want.detach(), rtol=RTOL64, atol=ATOL64)
    torch.testing.assert_close(g, xd.grad, rtol=RTOL64, atol=ATOL64)
    dense = call("dense", backend, x, multi_hot(idx, c), reduction="none")
    assert not torch.isclose(loss[0], dense[0]) and not torch.isclose(loss[1], dense[1])
    torch.testing.assert_close(loss[2], dense[2], rtol=RTOL64, atol=ATOL64)
    # index order is irrelevant (the fused backends sort each row)
    perm = call("sparse", backend, x, idx.flip(-1), reduction="none")
    torch.testing.assert_close(perm, loss, rtol=RTOL64, atol=ATOL64)


@pytest.mark.parametrize("device, backend", ALL)
def test_sparse_mask_zero_padding(device, backend):
    n, c = 11, 23
    x = make_logits((n, c), torch.float64, device)
    x[:, 0] = 0.0  # so that class 0 as a positive (mask_zero=False) adds e^0 = 1: a visible change
    idx = make_index((n,), c, 4, "unique", True, device)
    base, g, go = forward_backward("sparse", backend, x, idx, dict(mask_zero=True, reduction="none"))
    assert (g[:, 0] == 0).all()
    # more padding anywhere in the row changes nothing
    pad = torch.zeros(n, 3, dtype=idx.dtype, device=device)
    for padded in (
        torch.cat([idx, pad], -1),
        torch.cat([pad, idx], -1),
        torch.cat([idx[:, :2], pad, idx[:, 2:]], -1),
    ):
        more, g2, _ = forward_backward(
            "sparse", backend, x, padded, dict(mask_zero=True, reduction="none"), go
        )
        torch.testing.assert_close(more, base, rtol=RTOL64, atol=ATOL64)
        torch.testing.assert_close(g2, g, rtol=RTOL64, atol=ATOL64)
    # class 0's logit takes no part: changing it changes nothing
    x2 = x.clone()
    x2[:, 0] = torch.randn(n, dtype=torch.float64, device=device) * 10
    torch.testing.assert_close(
        call("sparse", backend, x2, idx, mask_zero=True, reduction="none"), base, rtol=RTOL64, atol=ATOL64
    )
    # without mask_zero, index 0 is class 0, a positive (and not a negative)
    plain = call("sparse", backend, x, idx, mask_zero=False, reduction="none")
    dense = call("dense", backend, x, multi_hot(idx, c), reduction="none")
    has_zero = (idx == 0).any(-1)
    assert has_zero.any()
    torch.testing.assert_close(plain, dense, rtol=RTOL64, atol=ATOL64)
    assert (plain > base)[has_zero].all()  # class 0 adds e^0 to the positive sum (and nothing else)
    # all padding: class 0 is in neither sum, every other class is a negative
    allpad = torch.zeros(n, 3, dtype=torch.int64, device=device)
    zero = torch.zeros(n, 1, dtype=torch.float64, device=device)
    torch.testing.assert_close(
        call("sparse", backend, x, allpad, mask_zero=True, reduction="none"),
        torch.logsumexp(torch.cat([x[:, 1:], zero], -1), -1),
        rtol=RTOL64,
        atol=ATOL64,
    )


@pytest.mark.parametrize("device, backend", ALL)
@pytest.mark.parametrize("mask_zero", [False, True])
def test_sparse_k0(device, backend, mask_zero):
    # No positives: log(1 + sum over all classes (but class 0 under mask_zero) e^s).
    x = make_logits((2, 3, 13), torch.float64, device)
    idx = torch.empty(2, 3, 0, dtype=torch.int64, device=device)
    loss, g, go = forward_backward("sparse", backend, x, idx, dict(mask_zero=mask_zero, reduction="none"))
    xd = x.clone().requires_grad_()
    body = xd[..., 1:] if mask_zero else xd
    want = torch.logsumexp(torch.cat([body, torch.zeros_like(xd[..., :1])], -1), -1)
    want.backward(go)
    torch.testing.assert_close(loss, want.detach(), rtol=RTOL64, atol=ATOL64)
    torch.testing.assert_close(g, xd.grad, rtol=RTOL64, atol=ATOL64)


@pytest.mark.parametrize("device, backend", ALL)
@pytest.mark.parametrize("form", ["sparse", "dense"])
def test_positives_dominating_stays_exact_in_fp32(device, backend, form):
    # Positive logits +30, negatives -5: 1 - e^{LSE(pos) - all} is ~1e-14, so bert4keras's sparse
    # formula hits its 1e-7 clip in fp32 (an error of ~15 nats); the direct negative sum is exact.
    n, c, k = 6, 50, 5
    idx = make_index((n,), c, k, "unique", False, device)
    y = multi_hot(idx, c, torch.float32)
    x = torch.where(y > 0, 30.0, -5.0) + torch.rand(n, c, device=device) * 0.5
    other = idx if form == "sparse" else y
    loss, g, go = forward_backward(form, backend, x, other, dict(reduction="none"))
    ref_loss, ref_g, _ = forward_backward(
        form, None, x.double(), _as64(other), dict(reduction="none"), go.double()
    )
    torch.testing.assert_close(loss.double(), ref_loss, rtol=2e-6, atol=1e-7)
    torch.testing.assert_close(g.double(), ref_g, rtol=2e-6, atol=1e-7)
    # the truth here is ~log(1 + 45 e^-5) ~ 0.26 per row
    assert (ref_loss > 0.1).all() and (ref_loss < 0.5).all()
    b4k = ref.sparse_multilabel_categorical_crossentropy_bert4keras(x, idx)
    assert ((b4k.double() - ref_loss).abs() > 1.0).all(), (
        "bert4keras's clip formula was expected to fail here"
    )


@pytest.mark.parametrize("device, backend", ALL)
@pytest.mark.parametrize("mask_zero", [False, True])
def test_sparse_matches_bert4keras(device, backend, mask_zero):
    # Unique indices and moderate logits: bert4keras's "all minus positives" is exact in float64.
    x = make_logits((37, 19), torch.float64, device, scale=2.0)
    idx = make_index((37,), 19, 4, "unique", mask_zero, device)
    got = call("sparse", backend, x, idx, mask_zero=mask_zero, reduction="none")
    want = ref.sparse_multilabel_categorical_crossentropy_bert4keras(x, idx, mask_zero)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("device, backend", ALL)
@pytest.mark.parametrize("index_dtype", [torch.int32, torch.int16, torch.int8, torch.uint8])
def test_sparse_index_dtypes(device, backend, index_dtype):
    x = make_logits((37, 19), torch.float32, device)
    idx = make_index((37,), 19, 5, "dup", True, device)
    l64, g64, go = forward_backward("sparse", backend, x, idx, dict(mask_zero=True, reduction="none"))
    lo, go_, _ = forward_backward(
        "sparse", backend, x, idx.to(index_dtype), dict(mask_zero=True, reduction="none"), go
    )
    torch.testing.assert_close(lo, l64, rtol=0, atol=0)
    torch.testing.assert_close(go_, g64, rtol=0, atol=0)


# ----------------------------------------------------------------------------------------------
# multilabel focal loss
# ----------------------------------------------------------------------------------------------

_FOCAL_FULL = [
    (s, r, a, gm) for s in SHAPES for r in REDUCTIONS for a, gm in ((0.25, 2.0), (-1.0, 0.5), (1.0, 0.0))
]
_FOCAL_SUB = [(s, r, 0.25, 2.0) for s in SHAPES for r in REDUCTIONS]


@pytest.mark.parametrize(
    "device, backend, shape, reduction, alpha, gamma", _cases(_FOCAL_FULL, _FOCAL_SUB), ids=shape_id
)
def test_focal_matches_reference(device, backend, shape, reduction, alpha, gamma):
    x = make_logits(shape, torch.float64, device)
    t = make_target(shape, "soft", torch.float64, device)
    assert_matches_reference("focal", backend, x, t, dict(alpha=alpha, gamma=gamma, reduction=reduction))


def test_focal_reference_is_the_mean_of_torchvision():
    # per row: the mean over labels of torchvision's per-element focal loss, written out
    x = make_logits((13, 7))
    t = make_target((13, 7), "soft")
    p = torch.sigmoid(x)
    ce = F.binary_cross_entropy_with_logits(x, t, reduction="none")
    p_t = p * t + (1 - p) * (1 - t)
    per = (0.25 * t + 0.75 * (1 - t)) * ce * (1 - p_t) ** 2
    torch.testing.assert_close(ref.multilabel_focal_loss_reference(x, t, reduction="none"), per.mean(-1))
    torch.testing.assert_close(ref.multilabel_focal_loss_reference(x, t, reduction="sum"), per.mean(-1).sum())
    torch.testing.assert_close(ref.multilabel_focal_loss_reference(x, t), per.mean())


@pytest.mark.parametrize("device, backend", ALL)
def test_focal_fp16_sum_does_not_overflow(device, backend):
    # The true value (sum over rows of the per-row mean) is ~24 here, far inside fp16's range; the
    # sum over all N * C elements (~1e5) is not, so it must not be formed in fp16.
    x = torch.full((4, 4096), 8.0, dtype=torch.float16, device=device)
    t = torch.zeros(4, 4096, dtype=torch.float16, device=device)
    got = call("focal", backend, x, t, reduction="sum")
    want = ref.multilabel_focal_loss_reference(x.double(), t.double(), reduction="sum")
    assert torch.isfinite(got), f"got {got}, expected {float(want):.4g}"
    torch.testing.assert_close(got.double(), want, rtol=2e-3, atol=0)


# ----------------------------------------------------------------------------------------------
# empty tensors
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("device, backend", ALL)
@pytest.mark.parametrize("kind", ["dense", "sparse", "focal"])
@pytest.mark.parametrize("shape", [(0, 7), (2, 0, 5), (3, 0)], ids=shape_id)
def test_empty(device, backend, kind, shape):
    # N = 0: mean is NaN (torch's mean of nothing), sum is 0, none is [...] of zero size; C = 0 (dense,
    # sparse): every row's loss is 0. Gradients have the input's shape and are finite.
    n = math.prod(shape[:-1])
    for reduction in REDUCTIONS:
        x = make_logits(shape, torch.float32, device)
        if kind == "sparse":
            other, kw = (
                torch.zeros(shape[:-1] + (0,), dtype=torch.int64, device=device),
                dict(reduction=reduction),
            )
        else:
            other, kw = make_target(shape, "float", torch.float32, device), dict(reduction=reduction)
        loss, g, _ = forward_backward(kind, backend, x, other, kw)
        assert g.shape == x.shape and torch.isfinite(g).all()
        if reduction == "none":
            assert loss.shape == shape[:-1]
            if kind != "focal":
                assert (loss == 0).all()
        elif n == 0:
            assert loss.shape == () and (loss.isnan() if reduction == "mean" else loss == 0)
        elif kind != "focal":
            assert loss == 0  # C = 0
        else:
            assert loss.isnan()  # the per-row mean over no labels (as the reference and torch)
        ref_loss = REFERENCE[kind](x, other, **kw)
        torch.testing.assert_close(loss, ref_loss, equal_nan=True, rtol=0, atol=0)


# ----------------------------------------------------------------------------------------------
# modules, auto, gradient flow to other arguments, grad_output
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("device, backend", ALL + [(d, "auto") for d in DEVICES])
def test_modules_match_reference(device, backend):
    x = make_logits((37, 19), torch.float64, device)
    t = make_target((37, 19), "soft", torch.float64, device)
    idx = make_index((37,), 19, 4, "dup", True, device)
    cases = [
        (
            fl_nn.MultilabelCategoricalCrossEntropyLoss(backend=backend),
            (x, t),
            ref.multilabel_categorical_crossentropy_reference(x, t),
        ),
        (
            fl_nn.MultilabelCategoricalCrossEntropyLoss(reduction="none", backend=backend),
            (x, t),
            ref.multilabel_categorical_crossentropy_reference(x, t, "none"),
        ),
        (
            fl_nn.SparseMultilabelCategoricalCrossEntropyLoss(backend=backend),
            (x, idx),
            ref.sparse_multilabel_categorical_crossentropy_reference(x, idx),
        ),
        (
            fl_nn.SparseMultilabelCategoricalCrossEntropyLoss(
                mask_zero=True, reduction="sum", backend=backend
            ),
            (x, idx),
            ref.sparse_multilabel_categorical_crossentropy_reference(x, idx, True, "sum"),
        ),
        (fl_nn.MultilabelFocalLoss(backend=backend), (x, t), ref.multilabel_focal_loss_reference(x, t)),
        (
            fl_nn.MultilabelFocalLoss(alpha=0.6, gamma=1.5, reduction="none", backend=backend),
            (x, t),
            ref.multilabel_focal_loss_reference(x, t, 0.6, 1.5, "none"),
        ),
    ]
    for module, args, expected in cases:
        torch.testing.assert_close(module(*args), expected, rtol=RTOL64, atol=ATOL64)
    # the module defaults are the functions' defaults
    torch.testing.assert_close(
        fl_nn.SparseMultilabelCategoricalCrossEntropyLoss(backend=backend)(x, idx),
        fusedloss.sparse_multilabel_categorical_crossentropy(x, idx, backend=backend),
    )


def _fused_ops(thunk):
    return set(fusedloss_ops_called(thunk))


@pytest.mark.parametrize("device, backend", ALL + [(d, "auto") for d in DEVICES])
def test_backend_runs_its_op(device, backend):
    x = make_logits((5, 7), torch.float32, device).requires_grad_()
    t = make_target((5, 7), "float", torch.float32, device)
    idx = make_index((5,), 7, 2, "dup", False, device)
    suffix = "_triton" if backend == "triton" else ""
    dense = _fused_ops(lambda: fusedloss.multilabel_categorical_crossentropy(x, t, backend=backend))
    sparse = _fused_ops(lambda: fusedloss.sparse_multilabel_categorical_crossentropy(x, idx, backend=backend))
    focal = _fused_ops(lambda: fusedloss.multilabel_focal_loss(x, t, backend=backend))
    if backend == "reference":
        assert dense == sparse == focal == set()
    else:  # auto: the C++ backend of the device
        assert dense == {f"fusedloss::multilabel_ce_fwd{suffix}"}
        assert sparse == {f"fusedloss::sparse_multilabel_ce_fwd{suffix}"}
        assert focal == {f"fusedloss::binary_focal_fwd{suffix}"}


@pytest.mark.parametrize("device", DEVICES)
def test_target_requiring_grad_falls_back(device):
    x = make_logits((37, 19), torch.float64, device)
    t = make_target((37, 19), "soft", torch.float64, device).requires_grad_()
    for backend in fused_backends_for(device):
        with pytest.raises(ValueError, match="requires grad"):
            fusedloss.multilabel_categorical_crossentropy(x, t, backend=backend)
    xl = x.clone().requires_grad_()
    loss = fusedloss.multilabel_categorical_crossentropy(xl, t)
    gx, gt = torch.autograd.grad(loss, (xl, t))
    xr = x.clone().requires_grad_()
    rx, rt = torch.autograd.grad(ref.multilabel_categorical_crossentropy_reference(xr, t), (xr, t))
    torch.testing.assert_close(gx, rx, rtol=1e-12, atol=0)
    torch.testing.assert_close(gt, rt, rtol=1e-12, atol=0)
    assert gt.abs().sum() > 0


@pytest.mark.parametrize("device, backend", FUSED)
@pytest.mark.parametrize("kind", ["dense", "sparse"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_grad_output_ones_and_no_grad(device, backend, kind, reduction):
    x = make_logits((6, 11), torch.float64, device)
    other = (
        make_index((6,), 11, 3, "dup", False, device)
        if kind == "sparse"
        else make_target((6, 11), "soft", torch.float64, device)
    )
    kw = dict(reduction=reduction)
    loss, g, go = forward_backward(
        kind,
        backend,
        x,
        other,
        kw,
        go=torch.ones((6,) if reduction == "none" else (), dtype=torch.float64, device=device),
    )
    _, ref_g, _ = forward_backward(kind, None, x, other, kw, go)
    torch.testing.assert_close(g, ref_g, rtol=RTOL64, atol=ATOL64)
    # no grad needed (input without requires_grad, or under no_grad): same loss, no graph
    plain = call(kind, backend, x, other, **kw)
    xl = x.clone().requires_grad_()
    with torch.no_grad():
        nograd = call(kind, backend, xl, other, **kw)
    assert not plain.requires_grad and not nograd.requires_grad
    torch.testing.assert_close(plain, loss, rtol=0, atol=0)
    torch.testing.assert_close(nograd, loss, rtol=0, atol=0)


@pytest.mark.parametrize("device, backend", FUSED)
@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_double_backward_is_right_or_raises(device, backend, kind):
    x = make_logits((4, 5), torch.float64, device)
    other = (
        make_index((4,), 5, 2, "dup", False, device)
        if kind == "sparse"
        else make_target((4, 5), "soft", torch.float64, device)
    )
    xl = x.clone().requires_grad_()
    try:
        (g,) = torch.autograd.grad(call(kind, backend, xl, other, reduction="sum"), xl, create_graph=True)
        (h,) = torch.autograd.grad(g.pow(2).sum(), xl)
    except RuntimeError:
        return  # refusing double backward is acceptable
    xr = x.clone().requires_grad_()
    (gr,) = torch.autograd.grad(call(kind, None, xr, other, reduction="sum"), xr, create_graph=True)
    (hr,) = torch.autograd.grad(gr.pow(2).sum(), xr)
    torch.testing.assert_close(h, hr, rtol=1e-8, atol=1e-10)


# ----------------------------------------------------------------------------------------------
# gradcheck in fp64
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("device, backend", ALL)
@pytest.mark.parametrize(
    "kind, kw",
    [
        ("dense", dict(reduction="none")),
        ("dense", dict(reduction="mean")),
        ("dense", dict(reduction="sum")),
        ("sparse", dict(mask_zero=False, reduction="none")),
        ("sparse", dict(mask_zero=True, reduction="mean")),
        ("sparse", dict(mask_zero=True, reduction="sum")),
        ("focal", dict(alpha=0.25, gamma=2.0, reduction="none")),
    ],
    ids=lambda v: v if isinstance(v, str) else "-".join(map(str, v.values())),
)
def test_gradcheck(device, backend, kind, kw):
    shape = (4, 5)  # small: gradcheck perturbs every element twice
    x = make_logits(shape, torch.float64, device).requires_grad_()
    if kind == "sparse":
        other = torch.tensor([[1, 1, 3], [0, 4, 2], [2, 0, 0], [4, 3, 1]], device=device)  # dups, zeros
    else:
        other = make_target(shape, "soft", torch.float64, device)
    assert torch.autograd.gradcheck(
        lambda xx: call(kind, backend, xx, other, **kw), (x,), eps=1e-6, atol=1e-7
    )


# ----------------------------------------------------------------------------------------------
# bad input
# ----------------------------------------------------------------------------------------------


def _bad_cases():
    x = torch.randn(6, 4)
    t = torch.randint(0, 2, (6, 4)).float()
    idx = torch.randint(0, 4, (6, 2))
    d, s, f = PUBLIC["dense"], PUBLIC["sparse"], PUBLIC["focal"]
    return [
        # dense
        ("dense-target-shape", lambda: d(x, t[:, :3]), ValueError, "target"),
        ("dense-target-broadcastable", lambda: d(x, t[:1]), ValueError, "target"),
        ("dense-target-not-tensor", lambda: d(x, t.tolist()), TypeError, "target"),
        ("dense-target-int-2", lambda: d(x, t.long() * 2), ValueError, "target"),
        ("dense-target-int-neg", lambda: d(x, -t.long()), ValueError, "target"),
        ("dense-target-complex", lambda: d(x, t.to(torch.complex64)), TypeError, "target"),
        ("dense-target-meta", lambda: d(x, t.to("meta")), ValueError, "device"),
        ("dense-input-0d", lambda: d(torch.tensor(1.0), torch.tensor(1.0)), ValueError, "input"),
        ("dense-input-int", lambda: d(x.long(), t), TypeError, "input"),
        ("dense-input-bool", lambda: d(x > 0, t), TypeError, "input"),
        ("dense-input-not-tensor", lambda: d(x.tolist(), t), TypeError, "input"),
        ("dense-reduction", lambda: d(x, t, "batchmean"), ValueError, "reduction"),
        ("dense-reduction-none-obj", lambda: d(x, t, None), ValueError, "reduction"),
        ("dense-backend", lambda: d(x, t, backend="fast"), ValueError, "backend"),
        ("dense-backend-cuda", lambda: d(x, t, backend="cuda"), ValueError, "cuda"),
        # sparse
        ("sparse-index-too-big", lambda: s(x, torch.tensor([[0, 4]] * 6)), ValueError, "positive_index"),
        (
            "sparse-index-too-big-mask-zero",
            lambda: s(x, torch.tensor([[0, 9]] * 6), True),
            ValueError,
            "positive_index",
        ),
        ("sparse-index-negative", lambda: s(x, torch.tensor([[-1, 2]] * 6)), ValueError, "positive_index"),
        (
            "sparse-index-int8-too-big",
            lambda: s(x, torch.tensor([[0, 100]] * 6, dtype=torch.int8)),
            ValueError,
            "positive_index",
        ),
        (
            "sparse-index-int32-negative",
            lambda: s(x, torch.tensor([[-3, 1]] * 6, dtype=torch.int32), True),
            ValueError,
            "positive_index",
        ),
        (
            "sparse-index-C0",
            lambda: s(torch.randn(6, 0), torch.zeros(6, 1, dtype=torch.long)),
            ValueError,
            "positive_index",
        ),
        ("sparse-index-float", lambda: s(x, idx.float()), TypeError, "positive_index"),
        ("sparse-index-bool", lambda: s(x, idx > 1), TypeError, "positive_index"),
        ("sparse-index-not-tensor", lambda: s(x, idx.tolist()), TypeError, "positive_index"),
        ("sparse-index-lead-shape", lambda: s(x, idx[:5]), ValueError, "positive_index"),
        ("sparse-index-1d", lambda: s(x, idx[:, 0]), ValueError, "positive_index"),
        ("sparse-index-3d", lambda: s(x, idx[None]), ValueError, "positive_index"),
        ("sparse-index-meta", lambda: s(x, idx.to("meta")), ValueError, "device"),
        ("sparse-mask-zero-int", lambda: s(x, idx, 1), TypeError, "mask_zero"),
        ("sparse-mask-zero-str", lambda: s(x, idx, "yes"), TypeError, "mask_zero"),
        ("sparse-mask-zero-none", lambda: s(x, idx, None), TypeError, "mask_zero"),
        ("sparse-mask-zero-tensor", lambda: s(x, idx, torch.tensor(True)), TypeError, "mask_zero"),
        ("sparse-input-0d", lambda: s(torch.tensor(1.0), torch.tensor(0)), ValueError, "input"),
        ("sparse-input-int", lambda: s(x.long(), idx), TypeError, "input"),
        ("sparse-reduction", lambda: s(x, idx, reduction="avg"), ValueError, "reduction"),
        ("sparse-backend", lambda: s(x, idx, backend="fast"), ValueError, "backend"),
        ("sparse-backend-cuda", lambda: s(x, idx, backend="cuda"), ValueError, "cuda"),
        # multilabel focal
        ("focal-input-0d", lambda: f(torch.tensor(1.0), torch.tensor(1.0)), ValueError, "input"),
        ("focal-target-shape", lambda: f(x, t[:, :3]), ValueError, "target"),
        ("focal-target-int-2", lambda: f(x, t.long() * 2), ValueError, "target"),
        ("focal-alpha", lambda: f(x, t, alpha=1.5), ValueError, "alpha"),
        ("focal-gamma", lambda: f(x, t, gamma=-1.0), ValueError, "gamma"),
        ("focal-reduction", lambda: f(x, t, reduction="avg"), ValueError, "reduction"),
        ("focal-backend", lambda: f(x, t, backend="fast"), ValueError, "backend"),
        # modules validate on call
        (
            "module-sparse-mask-zero",
            lambda: fl_nn.SparseMultilabelCategoricalCrossEntropyLoss(mask_zero=1)(x, idx),
            TypeError,
            "mask_zero",
        ),
        (
            "module-dense-reduction",
            lambda: fl_nn.MultilabelCategoricalCrossEntropyLoss("avg")(x, t),
            ValueError,
            "reduction",
        ),
    ]


@pytest.mark.parametrize("case", _bad_cases(), ids=lambda c: c[0])
def test_bad_input(case):
    _, thunk, exc, match = case
    with pytest.raises(exc, match=match):
        thunk()


@pytest.mark.parametrize("device, backend", ALL)
def test_bad_input_on_every_backend(device, backend):
    # the checks run before any backend (the C++ / Triton layers never see bad indices)
    x = make_logits((6, 4), torch.float32, device)
    for bad in ([[0, 4]], [[-1, 0]], [[0, 2**40]]):
        with pytest.raises(ValueError, match="positive_index"):
            fusedloss.sparse_multilabel_categorical_crossentropy(
                x, torch.tensor(bad * 6, device=device), backend=backend
            )
    with pytest.raises(ValueError, match="target"):
        fusedloss.multilabel_categorical_crossentropy(
            x, torch.full((6, 4), 3, device=device), backend=backend
        )


@NEEDS_CUDA
def test_other_device_is_refused():
    x = make_logits((6, 4), torch.float32, "cuda")
    with pytest.raises(ValueError, match="positive_index.*device"):
        fusedloss.sparse_multilabel_categorical_crossentropy(x, torch.zeros(6, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="target.*device"):
        fusedloss.multilabel_categorical_crossentropy(x, torch.zeros(6, 4))
    with pytest.raises(ValueError, match="target.*device"):
        fusedloss.multilabel_focal_loss(x, torch.zeros(6, 4))


# ----------------------------------------------------------------------------------------------
# raw ops: documented outputs, opcheck
# ----------------------------------------------------------------------------------------------

OP_OF_BACKEND = {
    "dense": {"cpu": "multilabel_ce_fwd", "cuda": "multilabel_ce_fwd", "triton": "multilabel_ce_fwd_triton"},
    "sparse": {
        "cpu": "sparse_multilabel_ce_fwd",
        "cuda": "sparse_multilabel_ce_fwd",
        "triton": "sparse_multilabel_ce_fwd_triton",
    },
}
RED = {"none": 0, "sum": 1, "mean": 2}
OPCHECK_UTILS = ("test_schema", "test_autograd_registration", "test_faketensor", "test_aot_dispatch_dynamic")


def _op(kind, backend):
    return getattr(torch.ops.fusedloss, OP_OF_BACKEND[kind][backend]).default


def test_multilabel_ops_have_a_cpu_kernel():
    # The CI always builds the C++ extension: a missing CPU kernel is a failure, never a skip.
    for op in ("multilabel_ce_fwd", "sparse_multilabel_ce_fwd"):
        assert torch._C._dispatch_has_kernel_for_dispatch_key(f"fusedloss::{op}", "CPU"), op


def raw_args(
    kind,
    device,
    dtype,
    shape,
    *,
    permuted=False,
    target_kind="soft",
    mask_zero=False,
    k=3,
    reduction="mean",
    requires_grad=False,
    compute_grad=True,
):
    """The op's arguments as run_multilabel_ce / run_sparse_multilabel_ce prepare them ([N, C]
    input; sparse: int64 indices sorted per row)."""
    n, c = shape
    x = make_logits((c, n), dtype, device).t() if permuted else make_logits((n, c), dtype, device)
    x = x.detach().requires_grad_(requires_grad)
    if kind == "dense":
        t = make_target((n, c), target_kind, dtype, device)
        return (x, t, RED[reduction], compute_grad)
    idx = make_index((n,), c, k, "dup", mask_zero, device).sort(-1).values
    return (x, idx, mask_zero, RED[reduction], compute_grad)


def _opcheck_cases():
    out = []
    for device, backend in FUSED:
        for kind, variant, reduction in [
            ("dense", "soft", "none"),
            ("dense", "bool", "sum"),
            ("dense", "int64", "mean"),
            ("sparse", False, "none"),
            ("sparse", True, "sum"),
            ("sparse", True, "mean"),
        ]:
            for permuted in (False, True):
                for requires_grad, compute_grad in ((True, True), (False, False), (False, True)):
                    out.append(
                        (device, backend, kind, variant, reduction, permuted, requires_grad, compute_grad)
                    )
    return out


@pytest.mark.parametrize(
    "device, backend, kind, variant, reduction, permuted, requires_grad, compute_grad",
    _opcheck_cases(),
    ids=str,
)
def test_opcheck(device, backend, kind, variant, reduction, permuted, requires_grad, compute_grad):
    extra = dict(target_kind=variant) if kind == "dense" else dict(mask_zero=variant)
    args = raw_args(
        kind,
        device,
        torch.float32,
        (5, 7),
        permuted=permuted,
        reduction=reduction,
        requires_grad=requires_grad,
        compute_grad=compute_grad,
        **extra,
    )
    torch.library.opcheck(_op(kind, backend), args)


@pytest.mark.parametrize("device, backend", FUSED)
@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_opcheck_fp64_fp16_and_empty(device, backend, kind):
    op = _op(kind, backend)
    torch.library.opcheck(
        op, raw_args(kind, device, torch.float64, (5, 7), requires_grad=True, mask_zero=True)
    )
    torch.library.opcheck(
        op, raw_args(kind, device, torch.float16, (3, 9), reduction="none", requires_grad=True)
    )
    # N = 0, C = 0 and (sparse) K = 0
    for shape, k in (((0, 7), 3), ((4, 0), 0), ((4, 6), 0)):
        if kind == "dense" and k == 0 and shape[1] != 0:
            continue
        for reduction in REDUCTIONS:
            for rg, cg in ((True, True), (False, False)):
                args = raw_args(
                    kind,
                    device,
                    torch.float32,
                    shape,
                    k=k,
                    reduction=reduction,
                    requires_grad=rg,
                    compute_grad=cg,
                )
                utils = OPCHECK_UTILS
                if shape[0] == 0 and reduction == "mean":
                    # the loss is NaN (the mean of nothing), and opcheck's eager-vs-AOT comparison
                    # uses assert_close without equal_nan; test_raw_op_outputs checks the NaN
                    utils = tuple(u for u in OPCHECK_UTILS if u != "test_aot_dispatch_dynamic")
                torch.library.opcheck(op, args, test_utils=utils)


@pytest.mark.parametrize("device, backend", FUSED)
def test_compute_grad_false_with_requires_grad_raises(device, backend):
    # an input that requires grad with no gradient computed would silently train on zeros
    x = make_logits((3, 4), torch.float32, device).requires_grad_()
    for kind, others in (
        ("dense", (make_target((3, 4), "float", torch.float32, device), 2)),
        ("sparse", (torch.tensor([[0], [1], [2]], device=device), False, 2)),
    ):
        with pytest.raises(RuntimeError, match="compute_grad=False"):
            _op(kind, backend)(x, *others, False)


@pytest.mark.parametrize("device, backend", FUSED)
@pytest.mark.parametrize("kind", ["dense", "sparse"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(6, 11), (0, 5)], ids=shape_id)
def test_raw_op_outputs(device, backend, kind, reduction, shape):
    # (loss, grad, scale): loss [N] (none) or 0-d in the input's dtype; grad = d(sum of row losses)
    # / d input, unscaled; scale 0-d in the accumulation dtype: 1 (none, sum), 1/N (mean; 0 at N = 0).
    args = raw_args(kind, device, torch.float64, shape, permuted=True, reduction=reduction, mask_zero=True)
    loss, grad, scale = _op(kind, backend)(*args)
    x64 = args[0].detach().clone().requires_grad_()
    per = (
        ref.multilabel_categorical_crossentropy_reference(x64, args[1], "none")
        if kind == "dense"
        else ref.sparse_multilabel_categorical_crossentropy_reference(x64, args[1], True, "none")
    )
    (ref_grad,) = torch.autograd.grad(per.sum(), x64)
    n = shape[0]
    assert scale.shape == () and scale.dtype == torch.float64
    if reduction == "none":
        assert loss.shape == (n,)
        torch.testing.assert_close(loss, per.detach(), rtol=RTOL64, atol=ATOL64)
        assert float(scale) == 1.0
    elif reduction == "sum":
        assert loss.shape == ()
        torch.testing.assert_close(loss, per.detach().sum(), rtol=RTOL64, atol=ATOL64)
        assert float(scale) == 1.0
    else:
        assert loss.shape == ()
        torch.testing.assert_close(loss, per.detach().mean(), rtol=RTOL64, atol=ATOL64, equal_nan=True)
        assert float(scale) == (1.0 / n if n else 0.0)
    assert grad.shape == shape and grad.dtype == torch.float64
    torch.testing.assert_close(grad, ref_grad, rtol=RTOL64, atol=ATOL64)
    _, no_grad, _ = _op(kind, backend)(*args[:-1], False)
    assert no_grad.numel() == 0
    # low precision: loss and grad in the input's dtype, scale in float32
    args16 = raw_args(kind, device, torch.float16, shape, reduction=reduction)
    loss16, grad16, scale16 = _op(kind, backend)(*args16)
    assert loss16.dtype == grad16.dtype == torch.float16 and scale16.dtype == torch.float32


# ----------------------------------------------------------------------------------------------
# torch.compile(fullgraph=True)
# ----------------------------------------------------------------------------------------------


def _compiled_public(kind, backend):
    def f(x, other):
        if kind == "dense":
            return fusedloss.multilabel_categorical_crossentropy(x, other, "none", backend=backend)
        if kind == "sparse":
            return fusedloss.sparse_multilabel_categorical_crossentropy(
                x, other, True, "mean", backend=backend
            )
        return fusedloss.multilabel_focal_loss(x, other, 0.25, 2.0, "sum", backend=backend)

    return f


def _compiled_reference(kind, x, other):
    if kind == "dense":
        return ref.multilabel_categorical_crossentropy_reference(x, other, "none")
    if kind == "sparse":
        return ref.sparse_multilabel_categorical_crossentropy_reference(x, other, True, "mean")
    return ref.multilabel_focal_loss_reference(x, other, 0.25, 2.0, "sum")


@pytest.mark.parametrize("device, backend", FUSED)
@pytest.mark.parametrize("kind", ["dense", "sparse", "focal"])
@pytest.mark.parametrize("dynamic", [False, True])
def test_compile_fullgraph(device, backend, kind, dynamic):
    # validation, backend choice, the reshape to rows, the per-row index sort and the fused op trace
    # without a graph break; forward and backward against the float64 reference, for two batch
    # sizes (dynamic=True: one graph for both; dynamic=False: a recompile) and a 3-D input.
    torch._dynamo.reset()
    compiled = torch.compile(_compiled_public(kind, backend), fullgraph=True, dynamic=dynamic)
    for shape in ((16, 7), (37, 7), (2, 5, 7)):
        x = make_logits(shape, torch.float32, device)
        if kind == "sparse":
            other = make_index(shape[:-1], 7, 3, "dup", True, device)
        else:
            other = make_target(shape, "soft", torch.float32, device)
        xl = x.clone().requires_grad_()
        loss = compiled(xl, other)
        go = torch.randn_like(loss)
        loss.backward(go)
        xr = x.double().requires_grad_()
        expected = _compiled_reference(kind, xr, _as64(other))
        expected.backward(go.double())
        assert loss.dtype == torch.float32 and loss.shape == expected.shape
        torch.testing.assert_close(loss.detach(), expected.detach().float(), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(xl.grad, xr.grad.float(), rtol=1e-5, atol=1e-6)
