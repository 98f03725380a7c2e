"""Backend availability, explicit-backend errors, the auto choice, and import-time behaviour."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from conftest import (
    DEVICES,
    INTERPRET,
    NEEDS_CUDA,
    fusedloss_ops_called,
    make_inputs,
    make_weight,
    triton_runs_on,
)

import fusedloss

REPO = Path(__file__).resolve().parents[1]
NAMES = {"reference", "triton", "cuda", "cpu"}
FUSED_OPS = {"fusedloss::binary_focal_fwd", "fusedloss::binary_focal_fwd_triton"}


def fused_ops_called(thunk):
    return [op for op in fusedloss_ops_called(thunk) if op in FUSED_OPS]


def _calls(x, t, backend):
    return [
        lambda: fusedloss.sigmoid_focal_loss(x, t, backend=backend),
        lambda: fusedloss.binary_focal_loss(x, t, backend=backend),
        lambda: fusedloss.binary_focal_loss(x, t, ohem_ratio=0.5, backend=backend),
        lambda: fusedloss.binary_cross_entropy_with_logits(x, t, backend=backend),
    ]


# ----------------------------------------------------------------------------------------------
# available_backends
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", ["cpu", "cuda", torch.device("cpu")])
def test_available_backends_shape(device):
    av = fusedloss.available_backends(device)
    assert set(av) == NAMES
    for name, reasons in av.items():
        assert isinstance(reasons, list) and all(isinstance(r, str) and r for r in reasons), (name, reasons)
    assert av["reference"] == []


def test_available_backends_default_device():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert fusedloss.available_backends() == fusedloss.available_backends(expected)


def test_cpu_extension_is_built():
    # CI always builds the C++ extension; its absence must fail here, never skip the cpu tests.
    assert fusedloss.available_backends("cpu")["cpu"] == []


def test_triton_runs_on_cpu_under_the_interpreter():
    assert INTERPRET or torch.cuda.is_available()  # conftest's guard makes this hold
    if INTERPRET:
        assert fusedloss.available_backends("cpu")["triton"] == []


def test_cuda_backend_not_available_for_cpu_tensors():
    reasons = fusedloss.available_backends("cpu")["cuda"]
    assert reasons
    x, t = make_inputs((5, 3), torch.float32)
    for thunk in _calls(x, t, "cuda"):
        with pytest.raises(ValueError) as info:
            thunk()
        msg = str(info.value)
        assert "cuda" in msg
        for reason in reasons:
            assert reason in msg, (reason, msg)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU report; this machine has CUDA")
def test_cuda_device_without_gpu_reports_reasons():
    assert fusedloss.available_backends("cuda")["cuda"]


@NEEDS_CUDA
def test_cuda_backends_available_on_gpu():
    av = fusedloss.available_backends("cuda")
    assert av["cuda"] == [] and av["reference"] == []
    if not INTERPRET:
        assert av["triton"] == []


@pytest.mark.parametrize("backend", ["fast", "CPU", "", "torch"])
def test_unknown_backend_name(backend):
    x, t = make_inputs((5, 3), torch.float32)
    for thunk in _calls(x, t, backend):
        with pytest.raises(ValueError, match="backend"):
            thunk()


# ----------------------------------------------------------------------------------------------
# which op runs
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "device, backend, expected",
    [
        (d, b, e)
        for d in DEVICES
        for b, e in [
            ("reference", set()),
            ("auto", {"fusedloss::binary_focal_fwd"}),  # cpu on CPU tensors, cuda on CUDA tensors
            (d, {"fusedloss::binary_focal_fwd"}),
        ]
        + ([("triton", {"fusedloss::binary_focal_fwd_triton"})] if triton_runs_on(d) else [])
    ],
)
def test_backend_runs_its_op(device, backend, expected):
    x, t = make_inputs((37, 19), torch.float32, device)
    x.requires_grad_()
    for thunk in _calls(x, t, backend):
        assert set(fused_ops_called(thunk)) == expected


@pytest.mark.parametrize("device", DEVICES)
def test_auto_equals_native_backend(device):
    # auto on CPU tensors is the C++ cpu backend (the interpreter is never picked): bitwise equal.
    x, t = make_inputs((37, 19), torch.float32, device)
    for auto, native in zip(_calls(x, t, "auto"), _calls(x, t, device)):
        assert torch.equal(auto(), native())


@pytest.mark.parametrize("device", DEVICES)
def test_auto_falls_back_when_other_args_need_grad(device):
    x, t = make_inputs((37, 19), torch.float64, device, "soft")
    w = make_weight("C", (37, 19), torch.float64, device).requires_grad_()
    t.requires_grad_()
    assert fused_ops_called(lambda: fusedloss.sigmoid_focal_loss(x, t)) == []
    assert fused_ops_called(lambda: fusedloss.binary_focal_loss(x, t.detach(), weight=w)) == []
    assert fused_ops_called(lambda: fusedloss.binary_cross_entropy_with_logits(x, t)) == []
    # ... but not when only the input needs grad
    assert fused_ops_called(
        lambda: fusedloss.binary_focal_loss(x.requires_grad_(), t.detach(), weight=w.detach())
    )


# ----------------------------------------------------------------------------------------------
# import-time behaviour, in fresh processes
# ----------------------------------------------------------------------------------------------


def _python(code, **env_changes):
    env = dict(os.environ)
    for k, v in env_changes.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        cwd=str(REPO),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-6000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_import_makes_no_cuda_calls():
    # Every torch.cuda query is wrapped; a call whose caller is a fusedloss file is recorded.
    calls = _python(
        """
        import json, traceback
        import torch
        calls = []
        def wrap(name, orig):
            def wrapper(*a, **k):
                ours = [f for f in traceback.extract_stack()[:-1]
                        if "/fusedloss/" in f.filename.replace("\\\\", "/")]
                if ours:
                    calls.append(f"torch.cuda.{name} from {ours[-1].filename}:{ours[-1].lineno}")
                return orig(*a, **k)
            return wrapper
        for name in ("is_available", "device_count", "current_device", "get_device_properties",
                     "get_device_capability", "get_device_name", "init", "_lazy_init", "synchronize",
                     "is_initialized", "mem_get_info", "set_device", "get_arch_list", "current_stream"):
            if hasattr(torch.cuda, name):
                setattr(torch.cuda, name, wrap(name, getattr(torch.cuda, name)))
        import fusedloss, fusedloss.nn, fusedloss.functional, fusedloss.reference
        import fusedloss.triton_kernels.focal
        print(json.dumps(calls))
        """,
        CUDA_VISIBLE_DEVICES="",
    )
    assert calls == []


def test_import_and_run_without_gpu_or_interpreter():
    # No GPU visible, no interpreter: the package imports, triton reports why it cannot run on CPU
    # tensors (and refuses it with that reason), auto runs the C++ cpu backend.
    out = _python(
        """
        import json, torch, fusedloss
        from fusedloss.reference import focal as ref
        av = fusedloss.available_backends("cpu")
        x = torch.randn(33, 5, dtype=torch.float64) * 3
        t = torch.randint(0, 2, (33, 5)).double()
        try:
            fusedloss.sigmoid_focal_loss(x, t, backend="triton")
            err = None
        except ValueError as e:
            err = str(e)
        ours = fusedloss.binary_focal_loss(x, t, alpha=0.25)
        diff = (ours - ref.binary_focal_loss_reference(x, t, alpha=0.25)).abs().item()
        print(json.dumps({"av": av, "err": err, "diff": diff, "cuda": torch.cuda.is_available()}))
        """,
        CUDA_VISIBLE_DEVICES="",
        TRITON_INTERPRET=None,
    )
    assert not out["cuda"]
    assert out["av"]["cpu"] == [] and out["av"]["reference"] == []
    assert out["av"]["triton"], "triton must report a reason on CPU tensors without the interpreter"
    assert out["err"] is not None and "triton" in out["err"]
    assert all(r in out["err"] for r in out["av"]["triton"])
    assert out["diff"] < 1e-12


def _pytest_exit_code(*args):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    env.pop("TRITON_INTERPRET", None)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        env=env,
        cwd=str(REPO),
        capture_output=True,
        text=True,
        timeout=300,
    )
    return proc.returncode, proc.stdout + proc.stderr


def test_session_guard_fails_without_interpreter():
    # conftest's guard: no CUDA and no TRITON_INTERPRET=1 -> the session fails (usage error, rc 4)
    # instead of skipping Triton; selecting only the AOT tests is allowed.
    rc, out = _pytest_exit_code("--collect-only", "tests/test_backends.py")
    assert rc == pytest.ExitCode.USAGE_ERROR and "TRITON_INTERPRET=1" in out, out[-3000:]
    rc, out = _pytest_exit_code("--collect-only", "-m", "aot", "tests")
    assert rc == pytest.ExitCode.OK, out[-3000:]


# ----------------------------------------------------------------------------------------------
# pairwise session losses: which op each backend runs, errors, import-time behaviour
# ----------------------------------------------------------------------------------------------

PAIRWISE_OPS = {
    "fusedloss::pairwise_fwd",
    "fusedloss::pairwise_fwd_triton",
    "fusedloss::pairwise_ohem_hist",
    "fusedloss::pairwise_ohem_hist_triton",
}


def pairwise_ops_called(thunk):
    return [op for op in fusedloss_ops_called(thunk) if op in PAIRWISE_OPS]


def _pairwise_calls(x, y, sid, backend, weight=None):
    return [
        lambda: fusedloss.pairwise_loss(x, y, sid, weight=weight, backend=backend),
        lambda: fusedloss.pairwise_logistic_loss(x, y, sid, weight=weight, backend=backend),
        lambda: fusedloss.pairwise_focal_loss(x, y, sid, weight=weight, backend=backend),
        lambda: fusedloss.pairwise_hinge_loss(x, y, sid, weight=weight, backend=backend),
        lambda: fusedloss.pairwise_logistic_loss(x, y, sid, weight=weight, ohem_ratio=0.5, backend=backend),
        lambda: fusedloss.pairwise_focal_loss(x, y, sid, weight=weight, ohem_ratio=0.5, backend=backend),
        lambda: fusedloss.pairwise_hinge_loss(x, y, sid, weight=weight, ohem_ratio=0.5, backend=backend),
    ]


def _pairwise_inputs(device, dtype=torch.float32):
    x = torch.randn(37, device=device, dtype=dtype)
    y = torch.randint(0, 4, (37,), device=device).to(dtype)
    sid = torch.randint(0, 6, (37,), device=device)
    return x, y, sid


@pytest.mark.parametrize(
    "device, backend, fwd, hist",
    [
        (d, b, f, h)
        for d in DEVICES
        for b, f, h in [
            ("reference", None, None),
            ("auto", "fusedloss::pairwise_fwd", "fusedloss::pairwise_ohem_hist"),  # cpu / cuda
            (d, "fusedloss::pairwise_fwd", "fusedloss::pairwise_ohem_hist"),
        ]
        + (
            [("triton", "fusedloss::pairwise_fwd_triton", "fusedloss::pairwise_ohem_hist_triton")]
            if triton_runs_on(d)
            else []
        )
    ],
)
def test_pairwise_backend_runs_its_op(device, backend, fwd, hist):
    # one fused forward per call; OHEM adds the radix select's histogram passes (at most 9: three
    # 32-bit key words in 11/11/10-bit digits) before it, nothing else
    x, y, sid = _pairwise_inputs(device)
    x.requires_grad_()
    for n, thunk in enumerate(_pairwise_calls(x, y, sid, backend)):
        ops = pairwise_ops_called(thunk)
        if fwd is None:
            assert ops == []
        elif n < 4:
            assert ops == [fwd]
        else:
            assert ops[-1] == fwd and 1 <= len(ops) - 1 <= 9 and set(ops[:-1]) == {hist}, ops


def test_pairwise_cuda_backend_not_available_for_cpu_tensors():
    reasons = fusedloss.available_backends("cpu")["cuda"]
    assert reasons
    x, y, sid = _pairwise_inputs("cpu")
    for thunk in _pairwise_calls(x, y, sid, "cuda"):
        with pytest.raises(ValueError) as info:
            thunk()
        msg = str(info.value)
        assert "cuda" in msg
        for reason in reasons:
            assert reason in msg, (reason, msg)


@pytest.mark.parametrize("backend", ["fast", "CPU", "", "torch"])
def test_pairwise_unknown_backend_name(backend):
    x, y, sid = _pairwise_inputs("cpu")
    for thunk in _pairwise_calls(x, y, sid, backend):
        with pytest.raises(ValueError, match="backend"):
            thunk()


@pytest.mark.parametrize("device", DEVICES)
def test_pairwise_auto_falls_back_when_weight_needs_grad(device):
    x, y, sid = _pairwise_inputs(device, torch.float64)
    w = torch.rand(37, dtype=torch.float64, device=device).requires_grad_()
    for thunk in _pairwise_calls(x, y, sid, "auto", w):
        assert pairwise_ops_called(thunk) == []
    # ... but not when only the input needs grad, nor under no_grad
    x.requires_grad_()
    for thunk in _pairwise_calls(x, y, sid, "auto", w.detach()):
        assert pairwise_ops_called(thunk)
    with torch.no_grad():
        for thunk in _pairwise_calls(x, y, sid, "auto", w):
            assert pairwise_ops_called(thunk)


def test_pairwise_import_makes_no_cuda_calls():
    # as test_import_makes_no_cuda_calls, for the pairwise modules and their Triton kernels
    calls = _python(
        """
        import json, traceback
        import torch
        calls = []
        def wrap(name, orig):
            def wrapper(*a, **k):
                ours = [f for f in traceback.extract_stack()[:-1]
                        if "/fusedloss/" in f.filename.replace("\\\\", "/")]
                if ours:
                    calls.append(f"torch.cuda.{name} from {ours[-1].filename}:{ours[-1].lineno}")
                return orig(*a, **k)
            return wrapper
        for name in ("is_available", "device_count", "current_device", "get_device_properties",
                     "get_device_capability", "get_device_name", "init", "_lazy_init", "synchronize",
                     "is_initialized", "mem_get_info", "set_device", "get_arch_list", "current_stream"):
            if hasattr(torch.cuda, name):
                setattr(torch.cuda, name, wrap(name, getattr(torch.cuda, name)))
        import fusedloss, fusedloss.ops.pairwise, fusedloss.functional.pairwise
        import fusedloss.reference.pairwise, fusedloss.triton_kernels.pairwise
        print(json.dumps(calls))
        """,
        CUDA_VISIBLE_DEVICES="",
    )
    assert calls == []


def test_pairwise_runs_without_gpu_or_interpreter():
    # No GPU, no interpreter: triton is refused with its reason, auto runs the C++ cpu backend and
    # matches the reference.
    out = _python(
        """
        import json, torch, fusedloss
        from fusedloss.reference import pairwise as ref
        x = torch.randn(33, dtype=torch.float64) * 3
        y = torch.randint(0, 4, (33,)).double()
        sid = torch.randint(0, 4, (33,))
        try:
            fusedloss.pairwise_logistic_loss(x, y, sid, backend="triton")
            err = None
        except ValueError as e:
            err = str(e)
        diff = (fusedloss.pairwise_focal_loss(x, y, sid, ohem_ratio=0.5)
                - ref.pairwise_focal_loss_reference(x, y, sid, ohem_ratio=0.5)).abs().item()
        reasons = fusedloss.available_backends("cpu")["triton"]
        print(json.dumps({"err": err, "diff": diff, "reasons": reasons}))
        """,
        CUDA_VISIBLE_DEVICES="",
        TRITON_INTERPRET=None,
    )
    assert out["err"] is not None and "triton" in out["err"]
    assert out["reasons"] and all(r in out["err"] for r in out["reasons"])
    assert out["diff"] < 1e-12


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: fusedloss.ziln_loss(torch.randn(4, 3), torch.rand(4, device="meta")),
         "labels is on device meta but logits is on device cpu"),
        (lambda: fusedloss.circle_loss(torch.randn(4, 3), torch.zeros(4, dtype=torch.int64, device="meta")),
         "labels is on device meta but embeddings is on device cpu"),
        (lambda: fusedloss.sv_softmax_loss(torch.randn(4, 3), torch.randn(4, 3, device="meta"),
                                           torch.ones(4)),
         "item_emb is on device meta but user_emb is on device cpu"),
        (lambda: fusedloss.cosine_embedding_loss(torch.randn(4, 3), torch.randn(4, 3),
                                                 torch.ones(4, device="meta")),
         "target is on device meta but input1 is on device cpu"),
        (lambda: fusedloss.sigmoid_focal_loss(torch.randn(4), torch.rand(4, device="meta")),
         "target is on device meta but input is on device cpu"),
    ],
    ids=["ziln", "circle", "sv_softmax", "cosine_embedding", "sigmoid_focal"],
)
def test_device_mismatch_names_both_arguments(call, message):
    # Checked in Python before any launch; "meta" stands in for a second device on a CPU machine.
    with pytest.raises(ValueError, match=message):
        call()
