"""Shared test machinery: seeds, the device list, the interpreter guard, the (device, backend) case
lists, input builders, canaries.

Helpers are plain functions imported by the test modules (``from conftest import make_inputs``);
pytest puts ``tests/`` on ``sys.path`` for its rootdir conftest.
"""

import os
import random
import zlib

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
NEEDS_CUDA = pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="needs CUDA; covered on CPU by the interpreter and the cpu backend",
)

# Machine epsilon per dtype: the unit of every low-precision tolerance below.
EPS = {
    dtype: torch.finfo(dtype).eps for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64)
}


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "aot: ahead-of-time Triton compile for sm_80/sm_90 (run without TRITON_INTERPRET)"
    )


def pytest_collection_finish(session):
    """Fail the session (never skip) if Triton tests would run on CPU without the interpreter.

    Without CUDA the ``triton`` backend runs only under ``TRITON_INTERPRET=1``, which must be set
    before ``triton`` is imported; a session without it would silently test nothing of Triton. The
    AOT tests are the exception: they need the variable unset (they spawn their own process).
    """
    if INTERPRET or torch.cuda.is_available():
        return
    non_aot = [item.nodeid for item in session.items if item.get_closest_marker("aot") is None]
    if non_aot:
        pytest.exit(
            "TRITON_INTERPRET=1 is not set and no CUDA device is visible, so the Triton backend "
            f"cannot run ({len(non_aot)} selected tests need it, e.g. {non_aot[0]}). Run "
            "`TRITON_INTERPRET=1 pytest tests -m 'not aot'` and `pytest tests/test_triton_aot.py`.",
            returncode=pytest.ExitCode.USAGE_ERROR,
        )


def pytest_collection_modifyitems(config, items):
    """FUSEDLOSS_TEST_CUDA_ONLY=1 (scripts/gpu_check.sh sets it) keeps the tests that run on CUDA:
    a "cuda" in the test id, or a NEEDS_CUDA mark. The CPU cases are CI's, and the GPU machine's
    10-minute command cannot hold both; pytest reports the rest as deselected."""
    if os.environ.get("FUSEDLOSS_TEST_CUDA_ONLY") != "1":
        return
    keep, drop = [], []
    for item in items:
        marked = any("needs CUDA" in str(m.kwargs.get("reason", "")) for m in item.iter_markers("skipif"))
        (keep if marked or "cuda" in item.nodeid else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(autouse=True)
def _seed(request):
    """A per-test seed derived from the test id: reproducible, and different across tests."""
    seed = zlib.crc32(request.node.nodeid.encode())
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    yield


def triton_runs_on(device) -> bool:
    """Triton runs on CPU tensors only under the interpreter, and on CUDA tensors only without it.

    So a CPU-only CI (interpreter on, enforced by the guard above) tests Triton on CPU tensors, and a
    GPU run (interpreter off) tests the compiled kernels on CUDA tensors.
    """
    return INTERPRET if torch.device(device).type == "cpu" else not INTERPRET


def backends_for(device) -> list[str]:
    """Every explicit backend that must work on ``device``: reference, the C++ backend of that
    device, and triton where it can run (see ``triton_runs_on``)."""
    device = torch.device(device).type
    return ["reference", device] + (["triton"] if triton_runs_on(device) else [])


def fused_backends_for(device) -> list[str]:
    return [b for b in backends_for(device) if b != "reference"]


# (device, backend) pairs: every explicit backend on every device, and the fused ones only
ALL = [(d, b) for d in DEVICES for b in backends_for(d)]
FUSED = [(d, b) for d in DEVICES for b in fused_backends_for(d)]


def interpreted(device, backend) -> bool:
    """Whether ``backend`` on ``device`` is the Triton interpreter (~ms per program, one core)."""
    return backend == "triton" and torch.device(device).type == "cpu"


def backend_cases(full, subset, pairs=ALL):
    """(device, backend, *case): ``full`` everywhere but the interpreter, which gets ``subset``."""
    out = []
    for device, backend in pairs:
        for c in subset if interpreted(device, backend) else full:
            out.append((device, backend) + (tuple(c) if isinstance(c, tuple) else (c,)))
    return out


def param_id(v):
    """pytest ids: a dtype by its name, a dict of keyword arguments as ``k=v-...`` (a callable value
    by its ``__name__``; ``default`` if empty); anything else left to pytest."""
    if isinstance(v, torch.dtype):
        return str(v).replace("torch.", "")
    if isinstance(v, dict):
        return "-".join(f"{k}={getattr(v2, '__name__', v2)}" for k, v2 in v.items()) or "default"
    return None


# arbitrary int64 ids (labels, sessions): the extremes, negative, zero (compared for equality only)
ID_POOL = [-(2**63), 2**63 - 1, -1, 0, 7, -123456789012345, 2**40 + 3, 42]


def make_logits(shape, dtype=torch.float64, device="cpu", scale=3.0) -> torch.Tensor:
    """Fresh ``randn * scale`` logits in ``dtype`` (rounded from fp64). Never all zeros."""
    x = torch.randn(shape, dtype=torch.float64) * scale
    if x.numel() and not x.any():
        x.view(-1)[0] = 1.0
    return x.to(device=device, dtype=dtype)


def make_target(shape, kind="float", dtype=torch.float64, device="cpu") -> torch.Tensor:
    """Random targets. kind: "float" (hard 0/1 in ``dtype``), "soft" (uniform [0, 1] in ``dtype``),
    "int64", "int32", "uint8", "bool" (hard 0/1 in that dtype)."""
    if kind == "soft":
        return torch.rand(shape, dtype=torch.float64).to(device=device, dtype=dtype)
    hard = torch.randint(0, 2, shape)
    if hard.numel() > 1:
        # both classes present, so positives and negatives are always exercised
        hard.view(-1)[0], hard.view(-1)[1] = 0, 1
    if kind == "float":
        return hard.to(device=device, dtype=dtype)
    return hard.to(device=device, dtype=getattr(torch, kind))


def make_inputs(shape, dtype=torch.float64, device="cpu", target_kind="float"):
    """(logits, target): logits in ``dtype``; float targets in ``dtype``, others in their own."""
    return make_logits(shape, dtype, device), make_target(shape, target_kind, dtype, device)


def make_weight(spec, shape, dtype=torch.float64, device="cpu"):
    """A sample weight for ``input`` of ``shape`` described by ``spec``.

    None; "scalar" (a Python float); "tensor0d"; "B" (shape [B] for 1-D input); "C" (the last dim);
    "B1" ([B, 1]); "full"; "zeros" (full with ~1/3 exact zeros); "neg" (full, some negative);
    "mid" ([1, C1, 1] for 3-D input, one run of middle dims); "split" ([B, 1, C2] for 3-D input, two
    separated runs: no single [div, mod] layout exists); "expand" (a stride-0 expanded view);
    "transposed" (a non-contiguous full weight); "allzero".
    """

    def rand(s):
        return (torch.rand(s, dtype=torch.float64) * 1.5 + 0.25).to(device=device, dtype=dtype)

    if spec is None:
        return None
    if spec == "scalar":
        return 0.7
    if spec == "tensor0d":
        return rand(())
    if spec == "B":
        assert len(shape) == 1
        return rand(shape)
    if spec == "C":
        return rand(shape[-1:])
    if spec == "B1":
        return rand((shape[0],) + (1,) * (len(shape) - 1))
    if spec == "full":
        return rand(shape)
    if spec == "zeros":
        w = rand(shape)
        return w * (torch.rand(shape, device=device) > 0.33).to(dtype)
    if spec == "neg":
        return rand(shape) * torch.where(torch.rand(shape, device=device) > 0.3, 1.0, -1.0).to(dtype)
    if spec == "mid":
        assert len(shape) == 3
        return rand((1, shape[1], 1))
    if spec == "split":
        assert len(shape) == 3
        return rand((shape[0], 1, shape[2]))
    if spec == "expand":
        return rand(shape[-1:]).expand(shape)
    if spec == "transposed":
        assert len(shape) == 2
        return rand(shape[::-1]).t()
    if spec == "allzero":
        return torch.zeros(shape, dtype=dtype, device=device)
    raise AssertionError(spec)


def loss_and_grad(loss_of, x, go=None):
    """(loss, d loss/dx . go, go) of ``loss_of(x)``, with ``x`` itself the leaf (its strides are
    kept); ``go``, the grad_output, is drawn around 2 after the forward unless given."""
    xl = x.detach().requires_grad_()
    loss = loss_of(xl)
    if go is None:
        go = (torch.randn((), dtype=torch.float64) + 2.0).to(loss.device, loss.dtype)
    (g,) = torch.autograd.grad(loss, xl, go)
    return loss.detach(), g, go


def canary(t: torch.Tensor, margin: int = 67):
    """Copy ``t`` into the interior of a larger sentinel-filled buffer.

    Returns ``(view, check)``: ``view`` equals ``t`` (same shape and strides pattern as a contiguous
    tensor) but lives at offset ``margin`` of the buffer; ``check()`` asserts the margins on both
    sides and the interior are bit-for-bit unchanged. Floating sentinels are NaN, so an unmasked
    out-of-bounds read leaks NaN into the result; an out-of-bounds write changes a margin.
    """
    n = t.numel()
    if t.dtype.is_floating_point:
        sentinel = float("nan")
    elif t.dtype == torch.bool:
        sentinel = True
    else:
        sentinel = 7  # not a valid binary label
    buf = torch.full((n + 2 * margin,), sentinel, dtype=t.dtype, device=t.device)
    view = buf[margin : margin + n].view(t.shape)
    view.copy_(t)
    before = buf.clone()

    def check():
        def bits(x):
            return x.view(torch.uint8) if x.dtype != torch.bool else x

        assert torch.equal(bits(buf[:margin]), bits(before[:margin])), "left canary overwritten"
        assert torch.equal(bits(buf[margin + n :]), bits(before[margin + n :])), "right canary overwritten"
        assert torch.equal(bits(buf[margin : margin + n]), bits(before[margin : margin + n])), (
            "input modified"
        )

    return view, check


def lowp_bound(ours, ref_same, ref64, dtype, factor=2.0):
    """flash-attn's bound: ours is at most twice as far from the fp64 truth as torch in the same
    dtype, plus ``factor`` ulps of the largest magnitude (covers a one-ulp rounding flip where
    torch happened to round exactly). NaN in the same places."""
    ours64, same64, truth = ours.double(), ref_same.double(), ref64.double()
    assert torch.equal(ours64.isnan(), truth.isnan()), "NaN pattern differs from the fp64 reference"
    finite = ~truth.isnan()
    if not finite.any():
        return
    ours64, same64, truth = ours64[finite], same64[finite], truth[finite]
    atol = factor * EPS[dtype] * max(float(truth.abs().max()), 1e-30)
    err = float((ours64 - truth).abs().max())
    ref_err = float((same64 - truth).abs().max())
    assert err <= 2 * ref_err + atol, f"max error {err:.3g} > 2 * torch's {ref_err:.3g} + {atol:.3g}"


class OpRecorder(TorchDispatchMode):
    """Records the schema name of every op dispatched while active."""

    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(func._schema.name)
        return func(*args, **(kwargs or {}))


def fusedloss_ops_called(thunk) -> list[str]:
    """The ``fusedloss::`` ops that ``thunk()`` dispatches, in order."""
    with OpRecorder() as rec:
        thunk()
    return [op for op in rec.ops if op.startswith("fusedloss::")]
