"""Op registration: ``torch.library.opcheck`` of the raw ops, their documented outputs, and
``torch.compile(fullgraph=True, dynamic=True)`` of every public function on the fused backends.

opcheck's default ``test_utils`` are ``test_schema``, ``test_autograd_registration``,
``test_faketensor`` and ``test_aot_dispatch_dynamic`` (the last one runs the op through
AOTAutograd with dynamic shapes, forward and backward, and compares with eager).
"""

import math

import pytest
import torch
from conftest import DEVICES, fused_backends_for, make_logits, make_target, make_weight

import fusedloss
from fusedloss.reference import focal as ref

RAW_OPS = {
    "binary_focal_fwd": lambda: torch.ops.fusedloss.binary_focal_fwd.default,
    "binary_focal_fwd_triton": lambda: torch.ops.fusedloss.binary_focal_fwd_triton.default,
}
OP_OF_BACKEND = {"cpu": "binary_focal_fwd", "cuda": "binary_focal_fwd", "triton": "binary_focal_fwd_triton"}
MODE_BCE, MODE_TORCHVISION, MODE_EASYREC = 0, 1, 2
RED_NONE, RED_SUM, RED_MEAN, RED_SBNZ = 0, 1, 2, 3

SHAPE = (4, 6, 5)  # 3-D, 120 elements: one Triton program; [C], [B, 1, 1] and full weight layouts


def _layout(kind, shape):
    """(weight shape, [div, mod]) with element i of the row-major input reading w[(i // div) % mod]."""
    n = math.prod(shape)
    if kind == "C":
        return (shape[-1],), [1, shape[-1]]
    if kind == "B":
        return (shape[0],), [n // shape[0], shape[0]]
    return tuple(shape), [1, n]


def raw_args(device, dtype, mode, reduction, weight, permuted, requires_grad, compute_grad):
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    if permuted:
        # dense but permuted: storage order (5, 4, 6), logical shape (4, 6, 5)
        x = make_logits((SHAPE[2], SHAPE[0], SHAPE[1]), dtype, device).permute(1, 2, 0)
        assert not x.is_contiguous() and x.shape == SHAPE
    else:
        x = make_logits(SHAPE, dtype, device)
    x.requires_grad_(requires_grad)
    t = make_target(SHAPE, "soft" if mode != MODE_EASYREC else "float", dtype, device)
    w, w_layout = None, [1, 1]
    if weight is not None:
        wshape, w_layout = _layout(weight, SHAPE)
        w = torch.rand(wshape, dtype=acc, device=device) + 0.5
    pw, pw_layout = None, [1, 1]
    if mode == MODE_BCE:
        pwshape, pw_layout = _layout("C", SHAPE)
        pw = torch.rand(pwshape, dtype=acc, device=device) * 2
    alpha = {MODE_BCE: -1.0, MODE_TORCHVISION: 0.25, MODE_EASYREC: -1.0}[mode]
    gamma = {MODE_BCE: 0.0, MODE_TORCHVISION: 2.0, MODE_EASYREC: 0.5}[mode]
    smoothing = 0.1 if mode != MODE_TORCHVISION else 0.0
    return (x, t, w, pw, mode, alpha, gamma, smoothing, reduction, w_layout, pw_layout, compute_grad)


def _raw_cases():
    cases = []
    for device in DEVICES:
        for op in [OP_OF_BACKEND[b] for b in fused_backends_for(device)]:
            for mode, reduction, weight in [
                (MODE_BCE, RED_NONE, "B"),
                (MODE_BCE, RED_MEAN, None),
                (MODE_TORCHVISION, RED_NONE, None),
                (MODE_TORCHVISION, RED_SUM, None),
                (MODE_EASYREC, RED_SBNZ, "C"),
                (MODE_EASYREC, RED_SBNZ, None),
                (MODE_EASYREC, RED_NONE, "full"),
            ]:
                for permuted in (False, True):
                    for requires_grad, compute_grad in ((True, True), (False, False), (False, True)):
                        cases.append(
                            (op, device, mode, reduction, weight, permuted, requires_grad, compute_grad)
                        )
    return cases


def test_cpu_op_has_a_cpu_kernel():
    # The CI always builds the C++ extension: a missing CPU kernel is a failure, never a skip.
    assert torch._C._dispatch_has_kernel_for_dispatch_key("fusedloss::binary_focal_fwd", "CPU")


@pytest.mark.parametrize(
    "op, device, mode, reduction, weight, permuted, requires_grad, compute_grad", _raw_cases()
)
def test_opcheck(op, device, mode, reduction, weight, permuted, requires_grad, compute_grad):
    args = raw_args(device, torch.float32, mode, reduction, weight, permuted, requires_grad, compute_grad)
    torch.library.opcheck(RAW_OPS[op](), args)


DEVICE_OPS = [(d, OP_OF_BACKEND[b]) for d in DEVICES for b in fused_backends_for(d)]


@pytest.mark.parametrize("device, op", DEVICE_OPS)
def test_opcheck_fp64_and_empty(op, device):
    torch.library.opcheck(
        RAW_OPS[op](), raw_args(device, torch.float64, MODE_EASYREC, RED_SBNZ, "C", True, True, True)
    )
    x = torch.empty(0, 3, device=device, requires_grad=True)
    torch.library.opcheck(
        RAW_OPS[op](),
        (
            x,
            torch.zeros(0, 3, device=device),
            None,
            None,
            MODE_TORCHVISION,
            0.25,
            2.0,
            0.0,
            RED_SBNZ,
            [1, 1],
            [1, 1],
            True,
        ),
    )


@pytest.mark.parametrize("device, op", DEVICE_OPS)
@pytest.mark.parametrize(
    "mode, reduction",
    [
        (MODE_BCE, RED_NONE),
        (MODE_BCE, RED_MEAN),
        (MODE_BCE, RED_SUM),
        (MODE_TORCHVISION, RED_NONE),
        (MODE_TORCHVISION, RED_SUM),
        (MODE_TORCHVISION, RED_MEAN),
        (MODE_EASYREC, RED_SBNZ),
    ],
)
@pytest.mark.parametrize("permuted", [False, True])
def test_raw_op_outputs(op, device, mode, reduction, permuted):
    # (loss, grad, scale): grad is d(sum of unreduced loss)/d input, scale is 1/N, 1 or 1/N_nz.
    x, t, w, pw, _, alpha, gamma, ls, _, w_layout, pw_layout, _ = raw_args(
        device,
        torch.float64,
        mode,
        reduction,
        "B" if mode != MODE_TORCHVISION else None,
        permuted,
        False,
        True,
    )
    if mode == MODE_EASYREC:
        w = w * (torch.arange(w.numel(), device=device) % 3 != 0)  # zero weights leave N_nz
    loss, grad, scale = RAW_OPS[op]()(
        x, t, w, pw, mode, alpha, gamma, ls, reduction, w_layout, pw_layout, True
    )
    wfull = None if w is None else w.reshape(-1, 1, 1).expand(SHAPE)  # layout "B": w[b] for x[b, ...]
    pwfull = None if pw is None else pw.expand(SHAPE)
    x64 = x.detach().clone().requires_grad_()
    if mode == MODE_BCE:
        per = ref.binary_cross_entropy_with_logits_reference(x64, t, wfull, pwfull, "none", ls)
        n_nz = x.numel()
    elif mode == MODE_TORCHVISION:
        per = ref.sigmoid_focal_loss_reference(x64, t, alpha, gamma, "none")
        n_nz = x.numel()
    else:
        # EasyRec per-element v * ce, from the SBNZ reference times N_nz (m > 0 thanks to the clip)
        n_nz = int((wfull != 0).sum())
        per = torch.stack(
            [
                ref.binary_focal_loss_reference(
                    x64.reshape(-1)[i : i + 1],
                    t.reshape(-1)[i : i + 1],
                    gamma,
                    None,
                    ls,
                    wfull.reshape(-1)[i : i + 1],
                )
                for i in range(x.numel())
            ]
        ).reshape(SHAPE)
    (ref_grad,) = torch.autograd.grad(per.sum(), x64)
    expected_scale = {RED_SUM: 1.0, RED_MEAN: 1.0 / x.numel(), RED_SBNZ: 1.0 / n_nz}.get(reduction)
    if reduction == RED_NONE:
        torch.testing.assert_close(loss, per.detach(), rtol=1e-10, atol=1e-12)
        assert loss.shape == SHAPE
    else:
        assert loss.shape == () and scale.shape == ()
        torch.testing.assert_close(loss, per.detach().sum() * expected_scale, rtol=1e-10, atol=1e-12)
        assert math.isclose(float(scale), expected_scale, rel_tol=1e-12)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-10, atol=1e-12)
    # compute_grad=False returns an empty grad
    _, no_grad, _ = RAW_OPS[op]()(x, t, w, pw, mode, alpha, gamma, ls, reduction, w_layout, pw_layout, False)
    assert no_grad.numel() == 0


# ----------------------------------------------------------------------------------------------
# torch.compile(fullgraph=True, dynamic=True)
# ----------------------------------------------------------------------------------------------


def _compile_cases():
    out = []
    for device in DEVICES:
        for backend in fused_backends_for(device):
            for fn in ("sigmoid_focal", "binary_focal", "binary_focal_ohem", "bce"):
                out.append((device, backend, fn))
    return out


def _public(fn, backend):
    def f(x, t, w):
        if fn == "sigmoid_focal":
            return fusedloss.sigmoid_focal_loss(
                x, t, alpha=0.25, gamma=2.0, reduction="none", backend=backend
            )
        if fn == "binary_focal":
            return fusedloss.binary_focal_loss(x, t, gamma=2.0, alpha=0.25, weight=w, backend=backend)
        if fn == "binary_focal_ohem":
            return fusedloss.binary_focal_loss(x, t, gamma=1.5, weight=w, ohem_ratio=0.5, backend=backend)
        return fusedloss.binary_cross_entropy_with_logits(
            x, t, pos_weight=w, reduction="mean", label_smoothing=0.1, backend=backend
        )

    return f


def _reference(fn, x, t, w):
    if fn == "sigmoid_focal":
        return ref.sigmoid_focal_loss_reference(x, t, 0.25, 2.0, "none")
    if fn == "binary_focal":
        return ref.binary_focal_loss_reference(x, t, 2.0, 0.25, weight=w)
    if fn == "binary_focal_ohem":
        return ref.binary_focal_loss_reference(x, t, 1.5, weight=w, ohem_ratio=0.5)
    return ref.binary_cross_entropy_with_logits_reference(
        x, t, pos_weight=w, reduction="mean", label_smoothing=0.1
    )


@pytest.mark.parametrize("device, backend, fn", _compile_cases())
def test_compile_fullgraph_dynamic(device, backend, fn):
    torch._dynamo.reset()
    compiled = torch.compile(_public(fn, backend), fullgraph=True, dynamic=True)
    # two batch sizes through the same compiled function (the second one is not a multiple of 8)
    for rows in (16, 37):
        shape = (rows, 7)
        x = make_logits(shape, torch.float32, device)
        t = make_target(shape, "float", torch.float32, device)
        w = make_weight("C", shape, torch.float32, device)
        xl = x.clone().requires_grad_()
        loss = compiled(xl, t, w)
        go = torch.randn_like(loss)
        loss.backward(go)
        xr = x.double().requires_grad_()
        expected = _reference(fn, xr, t.double(), w.double())
        expected.backward(go.double())
        assert loss.dtype == torch.float32 and loss.shape == expected.shape
        torch.testing.assert_close(loss.detach(), expected.detach().float(), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(xl.grad, xr.grad.float(), rtol=1e-5, atol=1e-6)
