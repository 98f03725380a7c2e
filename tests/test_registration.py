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


# ----------------------------------------------------------------------------------------------
# pairwise session losses: fusedloss::pairwise_fwd[_triton], fusedloss::pairwise_ohem_hist[_triton]
# ----------------------------------------------------------------------------------------------

from fusedloss.ops import pairwise as pw_ops  # noqa: E402
from fusedloss.reference import pairwise as pw_ref  # noqa: E402

PW_FWD = {"cpu": "pairwise_fwd", "cuda": "pairwise_fwd", "triton": "pairwise_fwd_triton"}
PW_HIST = {"cpu": "pairwise_ohem_hist", "cuda": "pairwise_ohem_hist", "triton": "pairwise_ohem_hist_triton"}
PW_B = 29  # two Triton row blocks (16 + 13), CPU columns padded to 16; ~5 unsorted sessions

# (kind, flags, temperature, margin, hinge_margin, gamma, alpha): every kind, the flags it reads
PW_SETTINGS = [
    ("pair_wise", 0, 0.5, 0.7, 0.0, 0.0, -1.0),
    ("logistic", pw_ops.HAS_HINGE_MARGIN, 2.0, 0.0, 0.5, 0.0, -1.0),
    ("logistic", pw_ops.USE_LABEL_MARGIN, 0.5, 0.0, 0.0, 0.0, -1.0),
    ("focal", pw_ops.HAS_HINGE_MARGIN, 1.0, 0.0, 1.0, 2.5, 0.25),
    ("focal", 0, 0.5, 0.0, 0.0, 2.0, -1.0),
    ("hinge", pw_ops.USE_LABEL_MARGIN | pw_ops.LABEL_IS_LOGITS, 2.0, 1.0, 0.0, 0.0, -1.0),
    ("hinge", pw_ops.USE_EXPONENT, 1.0, 0.3, 0.0, 0.0, -1.0),
]


def pw_raw_args(device, dtype, setting, weight="B", requires_grad=False):
    """The op's arguments as run_pairwise prepares them: items stably sorted by session, compute
    dtype (float32, float64 for float64), order / seg_lo / seg_hi from session_layout."""
    kind, flags, temperature, margin, hinge_margin, gamma, alpha = setting
    x = make_logits((PW_B,), dtype, device)
    y = torch.randint(0, 4, (PW_B,), device=device).to(dtype)
    sid = torch.tensor([9, -4, 2**40, 0, -7], device=device)[torch.randint(0, 5, (PW_B,))]
    order, seg_lo, seg_hi = pw_ops.session_layout(sid, PW_B, device)
    w = None
    if weight == "B":
        w = torch.rand(PW_B, dtype=dtype, device=device) + 0.5
        w = w * (torch.arange(PW_B, device=device) % 4 != 0)  # zero weights leave the denominator
        w = w[order].contiguous()
    elif weight == "scalar":
        w = torch.full((1,), 0.7, dtype=dtype, device=device)
    scores = x[order].contiguous().requires_grad_(requires_grad)
    args = (scores, y[order].contiguous(), w, order, seg_lo, seg_hi, pw_ops.KINDS[kind], flags,
            temperature, margin, hinge_margin, gamma, alpha)
    return args, (x, y, sid)


def _pw_select(backend, args, ratio):
    return pw_ops._ohem_select(pw_ops._HIST[backend], (args[0].detach(),) + args[1:], ratio)


def _pw_cases():
    out = []
    for device in DEVICES:
        for backend in fused_backends_for(device):
            for setting in PW_SETTINGS:
                for ohem in (False, True):
                    out.append((device, backend, setting, ohem))
    return out


def test_pairwise_ops_have_a_cpu_kernel():
    # The CI always builds the C++ extension: a missing CPU kernel is a failure, never a skip.
    for op in ("pairwise_fwd", "pairwise_ohem_hist"):
        assert torch._C._dispatch_has_kernel_for_dispatch_key(f"fusedloss::{op}", "CPU"), op


@pytest.mark.parametrize("device, backend, setting, ohem", _pw_cases(), ids=str)
def test_pairwise_fwd_opcheck(device, backend, setting, ohem):
    # SBNZ (select None) and OHEM's final pass (select from the real radix select); input grad
    # on and off; [B] weight, [1] weight (a scalar) and none.
    op = getattr(torch.ops.fusedloss, PW_FWD[backend]).default
    for weight in ("B", "scalar", None):
        for requires_grad, compute_grad in ((True, True), (False, False), (False, True)):
            args, _ = pw_raw_args(device, torch.float32, setting, weight, requires_grad)
            select = _pw_select(backend, args, 0.5) if ohem else None
            torch.library.opcheck(op, args + (select, compute_grad))


@pytest.mark.parametrize("device, backend", [(d, b) for d in DEVICES for b in fused_backends_for(d)])
def test_pairwise_fwd_opcheck_fp64_and_empty(device, backend):
    op = getattr(torch.ops.fusedloss, PW_FWD[backend]).default
    args, _ = pw_raw_args(device, torch.float64, PW_SETTINGS[3], "B", True)
    torch.library.opcheck(op, args + (None, True))
    torch.library.opcheck(op, args + (_pw_select(backend, args, 0.3), True))
    e = torch.empty(0, device=device)
    ei = torch.empty(0, dtype=torch.int64, device=device)
    empty = (e.clone().requires_grad_(), e, None, ei, ei, ei, 1, 0, 1.0, 0.0, 0.0, 0.0, -1.0)
    torch.library.opcheck(op, empty + (None, True))
    # OHEM of no pair is NaN, and opcheck's eager-vs-AOT comparison treats NaN != NaN: the other
    # three utils here, and the NaN itself checked directly
    no_select = torch.zeros(5, dtype=torch.int64, device=device)
    torch.library.opcheck(op, empty + (no_select, True),
                          test_utils=("test_schema", "test_autograd_registration", "test_faketensor"))
    loss, grad, scale = op(*empty, no_select, True)
    assert loss.isnan() and grad.shape == (0,) and scale.shape == ()


@pytest.mark.parametrize("device, backend, setting", [c[:3] for c in _pw_cases() if c[3]], ids=str)
def test_pairwise_hist_opcheck(device, backend, setting):
    # The histogram op has no autograd (requires_grad False): the first digit, the first digit of
    # the row-index word under a decided loss word (float32: the loss's low word is 0), and a
    # finished state (all zeros returned).
    op = getattr(torch.ops.fusedloss, PW_HIST[backend]).default
    args, _ = pw_raw_args(device, torch.float32, setting)
    select = _pw_select(backend, args, 0.5)
    zeros = torch.zeros(5, dtype=torch.int64, device=device)
    mid = torch.stack([select[0], zeros[0], zeros[0], zeros[0], zeros[0]])
    done = torch.tensor([0, 0, 0, 0, 1], dtype=torch.int64, device=device)
    for state, digit in ((zeros, 0), (mid, 6), (done, 11)):
        torch.library.opcheck(op, args + (state, digit))
    assert int(op(*args, zeros, 0).sum()) > 0  # counts every valid pair on the first pass
    assert not op(*args, done, 11).any()


@pytest.mark.parametrize("device, backend, setting, ohem", _pw_cases(), ids=str)
def test_pairwise_raw_op_outputs(device, backend, setting, ohem):
    # (loss, grad, scale): grad is d(sum of the counted pairs' losses)/d scores in sorted order,
    # scale = 1 / denominator; loss = sum * scale. Checked against the float64 reference through the
    # public path: loss equal, and grad * scale mapped back through order equals d loss / d input.
    op = getattr(torch.ops.fusedloss, PW_FWD[backend]).default
    args, (x, y, sid) = pw_raw_args(device, torch.float64, setting, "B")
    select = _pw_select(backend, args, 0.5) if ohem else None
    loss, grad, scale = op(*args, select, True)
    assert loss.shape == () and scale.shape == () and grad.shape == (PW_B,)
    kind, flags, temperature, margin, hinge_margin, gamma, alpha = setting
    w = torch.empty_like(x)
    w[args[3]] = args[2]
    params = dict(temperature=temperature)
    if kind == "pair_wise":
        params.update(margin=margin)
    elif kind == "logistic":
        params.update(use_label_margin=bool(flags & pw_ops.USE_LABEL_MARGIN),
                      hinge_margin=hinge_margin if flags & pw_ops.HAS_HINGE_MARGIN else None)
    elif kind == "focal":
        params.update(gamma=gamma, alpha=None if alpha < 0 else alpha,
                      hinge_margin=hinge_margin if flags & pw_ops.HAS_HINGE_MARGIN else None)
    else:
        params.update(margin=margin, use_label_margin=bool(flags & pw_ops.USE_LABEL_MARGIN),
                      label_is_logits=bool(flags & pw_ops.LABEL_IS_LOGITS),
                      use_exponent=bool(flags & pw_ops.USE_EXPONENT))
    if ohem:
        params["ohem_ratio"] = 0.5
        if kind == "pair_wise":  # no OHEM in its public API: the same loss is logistic with a shift
            kind, params = "logistic", dict(temperature=temperature, hinge_margin=margin, ohem_ratio=0.5)
    fn = {"pair_wise": pw_ref.pairwise_loss_reference, "logistic": pw_ref.pairwise_logistic_loss_reference,
          "focal": pw_ref.pairwise_focal_loss_reference, "hinge": pw_ref.pairwise_hinge_loss_reference}[kind]
    xr = x.clone().requires_grad_()
    expected = fn(xr, y, sid, w, **params)
    expected.backward()
    torch.testing.assert_close(loss, expected.detach(), rtol=1e-8, atol=1e-11)
    unsorted = torch.empty_like(grad)
    unsorted[args[3]] = grad * scale
    torch.testing.assert_close(unsorted, xr.grad, rtol=1e-8, atol=1e-11)
    assert scale.item() > 0
    _, no_grad, _ = op(*args, select, False)
    assert no_grad.numel() == 0


def _pw_public(kind, backend):
    """Each public pairwise function at non-default settings, SBNZ and OHEM (pair_wise: two SBNZ)."""
    def f(x, y, sid, w):
        if kind == "pair_wise":
            return (fusedloss.pairwise_loss(x, y, sid, weight=w, temperature=0.5, margin=0.7,
                                            backend=backend),
                    fusedloss.pairwise_loss(x, y, None, weight=0.5, backend=backend))
        if kind == "logistic":
            return (fusedloss.pairwise_logistic_loss(x, y, sid, weight=w, hinge_margin=0.5, backend=backend),
                    fusedloss.pairwise_logistic_loss(x, y, sid, weight=w, temperature=2.0,
                                                     use_label_margin=True, ohem_ratio=0.5, backend=backend))
        if kind == "focal":
            return (fusedloss.pairwise_focal_loss(x, y, sid, weight=w, gamma=2.5, alpha=0.25,
                                                  hinge_margin=1.0, backend=backend),
                    fusedloss.pairwise_focal_loss(x, y, sid, weight=w, temperature=0.5, ohem_ratio=0.3,
                                                  backend=backend))
        return (fusedloss.pairwise_hinge_loss(x, y, sid, weight=w, temperature=2.0, backend=backend),
                fusedloss.pairwise_hinge_loss(x, y, sid, weight=w, use_exponent=True, use_label_margin=False,
                                              ohem_ratio=0.77, backend=backend))

    return f


@pytest.mark.parametrize("device, backend", [(d, b) for d in DEVICES for b in fused_backends_for(d)])
@pytest.mark.parametrize("kind", ["pair_wise", "logistic", "focal", "hinge"])
def test_pairwise_compile_fullgraph(device, backend, kind):
    # torch.compile(fullgraph=True, dynamic=False): validation, backend choice, session layout,
    # the OHEM radix select (9 or 12 histogram ops with device-side state) and the fused op trace without
    # a graph break; forward and backward against the float64 reference, twice (the second call
    # reuses the compiled graph on fresh values of the same shapes).
    torch._dynamo.reset()
    compiled = torch.compile(_pw_public(kind, backend), fullgraph=True, dynamic=False)
    for _ in range(2):
        b = 37
        x = make_logits((b,), torch.float32, device)
        y = torch.randint(0, 4, (b,), device=device).float()
        sid = torch.tensor([5, -1, 2**35, 3, 11, 0], device=device)[torch.randint(0, 6, (b,))]
        w = torch.rand(b, device=device) + 0.5
        xl = x.clone().requires_grad_()
        a, c = compiled(xl, y, sid, w)
        (a + 2 * c).backward()
        xr = x.double().requires_grad_()
        ea, ec = _pw_public(kind, "reference")(xr, y.double(), sid, w.double())
        (ea + 2 * ec).backward()
        for got, exp in ((a, ea), (c, ec)):
            assert got.dtype == torch.float32 and got.shape == ()
            torch.testing.assert_close(got.detach(), exp.detach().float(), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(xl.grad, xr.grad.float(), rtol=1e-5, atol=1e-6)
