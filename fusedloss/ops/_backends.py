"""Which backend runs a call: availability, the reasons a backend cannot run, and the auto choice.

``auto`` never picks the Triton interpreter (milliseconds per program): on CPU tensors it takes the
C++ ``cpu`` backend, on CUDA tensors ``cuda`` then ``triton`` (no GPU timing has ranked them yet),
and falls back to ``reference`` when nothing fused can run or when a tensor other than ``input``
requires grad (fused kernels differentiate ``input`` only).
"""

import torch

from fusedloss import _extension

BACKENDS = ("reference", "triton", "cuda", "cpu")
_AUTO_ORDER = {"cpu": ("cpu", "reference"), "cuda": ("cuda", "triton", "reference")}


def _triton_state() -> tuple[bool, str | None]:
    """(interpreted, import error). Decided by whether TRITON_INTERPRET=1 was set at import."""
    try:
        from triton.runtime.interpreter import InterpretedFunction

        from fusedloss.triton_kernels import focal
    except Exception as exc:  # any import failure makes the backend unavailable, with the reason
        return False, f"triton could not be imported ({type(exc).__name__}: {exc})"
    return isinstance(focal._binary_focal_fwd_kernel, InterpretedFunction), None


def _has_kernel(op: str, key: str) -> bool:
    return torch._C._dispatch_has_kernel_for_dispatch_key(f"fusedloss::{op}", key)


_REASONS: dict[tuple[str, str, str], tuple[str, ...]] = {}


@torch.compiler.assume_constant_result
def _static_reasons(backend: str, kind: str, op: str) -> tuple[str, ...]:
    # Fixed for the life of the process; Dynamo takes the result as a constant instead of tracing
    # into the Triton import and the dispatcher query.
    key = (backend, kind, op)
    if key not in _REASONS:
        _REASONS[key] = tuple(_compute_reasons(backend, kind, op))
    return _REASONS[key]


def not_supported_reasons(backend: str, device: torch.device, op: str) -> list[str]:
    """Why ``backend`` cannot run ``fusedloss::op`` on tensors of ``device`` (empty: it can)."""
    return list(_static_reasons(backend, device.type, op))


def _compute_reasons(backend: str, kind: str, op: str) -> list[str]:
    if backend == "reference":
        return []
    if backend == "triton":
        interpreted, error = _triton_state()
        if error:
            return [error]
        if kind == "cpu" and not interpreted:
            return ["backend='triton' runs on CPU tensors only under the Triton interpreter: set "
                    "TRITON_INTERPRET=1 before importing fusedloss (slow; meant for tests)"]
        if kind == "cuda" and interpreted:
            return ["backend='triton' needs CPU tensors while TRITON_INTERPRET=1 is set"]
        if kind not in ("cpu", "cuda"):
            return [f"backend='triton' needs CPU or CUDA tensors, got device {kind}"]
        return []
    reasons = []
    if kind != backend:
        reasons.append(f"backend='{backend}' needs {backend.upper()} tensors; input is on {kind}")
    if _extension.EXTENSION_ERROR:
        reasons.append(_extension.EXTENSION_ERROR)
    elif not _has_kernel(op, backend.upper()):
        if backend == "cuda":
            why = ("torch is a CPU build" if torch.version.cuda is None
                   else "nvcc was missing or FUSEDLOSS_NO_CUDA=1 at build time")
            reasons.append(f"fusedloss was built without CUDA kernels ({why})")
        else:
            reasons.append(f"fusedloss._C has no CPU kernel for fusedloss::{op}")
    return reasons


def choose(backend: str, input: torch.Tensor, op: str, *others) -> str:
    """Resolve ``backend`` for a call whose first tensor is ``input``.

    ``others`` are the remaining tensor arguments (None allowed): fused backends cannot return a
    gradient for them.
    """
    if backend not in BACKENDS + ("auto",):
        raise ValueError(f"backend must be one of 'auto', {', '.join(map(repr, BACKENDS))}; got {backend!r}")
    grad_others = [o for o in others if isinstance(o, torch.Tensor) and o.requires_grad]
    if backend == "auto":
        if grad_others and torch.is_grad_enabled():
            return "reference"
        for name in _AUTO_ORDER.get(input.device.type, ("reference",)):
            if not not_supported_reasons(name, input.device, op):
                return name
        return "reference"
    reasons = not_supported_reasons(backend, input.device, op)
    if backend != "reference" and grad_others and torch.is_grad_enabled():
        reasons.append("a tensor other than input requires grad; fused backends differentiate "
                       "input only (use backend='reference')")
    if reasons:
        raise ValueError(f"backend='{backend}' is not available: " + "; ".join(reasons))
    return backend


def available_backends(device=None) -> dict[str, list[str]]:
    """For each backend, the reasons it cannot run on ``device`` (an empty list: it can).

    ``device`` defaults to ``cuda`` when a GPU is visible, else ``cpu``.
    """
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    return {name: not_supported_reasons(name, device, "binary_focal_fwd") for name in BACKENDS}
