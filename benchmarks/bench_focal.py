"""Benchmark of the binary sigmoid family: sigmoid focal (torchvision), BCE-with-logits, binary focal.

    python benchmarks/bench_focal.py [--device cpu|cuda] [--quick] [--out DIR] [--no-save]

Row sets (each loss on a flat input of N logits with targets in {0, 1}, reduction to a scalar):

* ``sigmoid_focal_loss``: ``fusedloss.sigmoid_focal_loss(x, t, alpha=0.25, gamma=2.0,
  reduction="mean")``. Baselines: ``torch``, the torchvision formula written in eager PyTorch
  (computes in the input dtype, as torchvision does); ``torchvision`` (``torchvision.ops.
  sigmoid_focal_loss``) when it imports; ``torch_compile``, ``torch.compile`` of
  ``fusedloss.reference.sigmoid_focal_loss_reference``.
* ``binary_cross_entropy_with_logits``: ``fusedloss.binary_cross_entropy_with_logits(x, t,
  reduction="mean")`` against ``torch.nn.functional.binary_cross_entropy_with_logits`` (``torch``)
  and its ``torch.compile`` (``torch_compile``).
* ``binary_focal_loss``: EasyRec's binary focal loss, ``fusedloss.binary_focal_loss(x, t)``
  (gamma=2, no alpha, SBNZ reduction) against ``fusedloss.reference.binary_focal_loss_reference``
  eager (``torch``) and compiled (``torch_compile``).

Fused providers ``fusedloss_cpu``, ``fusedloss_triton``, ``fusedloss_cuda`` run where
``fusedloss.available_backends(device)[name] == []``; Triton only on CUDA (never the interpreter).
Liger-Kernel has no sigmoid focal or BCE-with-logits loss (its losses are softmax cross-entropy,
JSD, KL and preference losses), so no ``liger`` provider overlaps this family.

Memory floor, bytes per element, with targets stored in the input's dtype (as run here):

* forward + backward (``full``), fused in one pass: read x, read t, write grad
  = 3 x itemsize: **12 B/elem at fp32**, **6 B/elem at bf16** (bf16 x and t, bf16 grad).
  (With fp32 targets and bf16 logits it would be 2 + 4 + 2 = 8 B/elem; not run here.)
* forward only (no grad): read x, read t = 2 x itemsize: 8 B/elem fp32, 4 B/elem bf16.
  The scalar loss and per-block partial sums are negligible.

Transcendental ops per element (same for forward and forward + backward: the gradient reuses
them): ``exp(-|x|)`` and ``log1p(exp(-|x|))``, i.e. 2; sigmoid is a division of the same exp.
A modulating factor ``(1 - p_t)^gamma`` costs nothing transcendental for gamma in {0, 1, 2}
(1, a copy, a square) and a ``pow`` (log + exp, 2 more) otherwise; every row set here uses
gamma = 2 (BCE has none), so all three run at 2 transcendentals per element.

Targets printed at the end, full mode, largest size: on CPU ``fusedloss_cpu`` >= 3x eager
``torch``; on CUDA the fused backends >= 1.5x ``torch_compile`` and >= 0.9 of a copy's bandwidth.
"""

import importlib.util
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# _harness first: it keeps the Triton interpreter out of this process before triton is imported.
import _harness as H
import torch
import torch.nn.functional as F

ALPHA, GAMMA = 0.25, 2.0
SIZES = {"cpu": [10**5, 10**6, 10**7], "cuda": [2**k for k in range(20, 29)]}
QUICK_SIZES = {"cpu": [10**5, 10**6], "cuda": [2**20, 2**24]}
DTYPES = {"cpu": [torch.float32], "cuda": [torch.float32, torch.bfloat16]}
TARGETS = [
    H.Target("cpu", "fusedloss_cpu", "speedup_vs_eager", 3.0),
    H.Target("cuda", "fusedloss_cuda", "speedup_vs_compile", 1.5),
    H.Target("cuda", "fusedloss_cuda", "frac_of_copy", 0.9),
    H.Target("cuda", "fusedloss_triton", "speedup_vs_compile", 1.5),
    H.Target("cuda", "fusedloss_triton", "frac_of_copy", 0.9),
]
FUSED = ("cpu", "triton", "cuda")


def bytes_per_elem(mode: str, dtype: torch.dtype) -> int:
    """x and t read (targets in the input dtype), plus the gradient written in ``full`` mode."""
    return (3 if mode == "full" else 2) * dtype.itemsize


def torchvision_style_sigmoid_focal(x, t, alpha=ALPHA, gamma=GAMMA):
    """The torchvision formula in eager PyTorch, in the input dtype, reduced by the mean."""
    p = torch.sigmoid(x)
    ce = F.binary_cross_entropy_with_logits(x, t, reduction="none")
    p_t = p * t + (1 - p) * (1 - t)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * t + (1 - alpha) * (1 - t)) * loss
    return loss.mean()


def bce_mean(x, t):
    return F.binary_cross_entropy_with_logits(x, t, reduction="mean")


def make_inputs(size, dtype, device):
    x = torch.randn(size, device=device, dtype=dtype)
    t = (torch.rand(size, device=device) < 0.25).to(dtype)
    return x, t


def fused_providers(device):
    """(providers, skipped) for the fusedloss backends on ``device``."""
    providers, skipped = [], {}
    try:
        import fusedloss

        avail = fusedloss.available_backends(device)
    except Exception as exc:  # reported in the output and the results; eager rows still run
        return [], {f"fusedloss_{b}": f"import fusedloss failed: {type(exc).__name__}: {exc}"
                    for b in FUSED}
    for b in FUSED:
        name = f"fusedloss_{b}"
        if b == "triton" and device.type != "cuda":
            skipped[name] = "Triton runs on CPU tensors only in the interpreter; never benchmarked"
        elif b not in avail:
            skipped[name] = f"not a backend of this fusedloss ({sorted(avail)})"
        elif avail[b]:
            skipped[name] = "; ".join(avail[b])
        else:
            providers.append(name)
    return providers, skipped


def build(device):
    fused, skipped = fused_providers(device)
    if importlib.util.find_spec("liger_kernel"):
        skipped["liger"] = "liger_kernel has no sigmoid focal or BCE-with-logits loss to compare"
    else:
        skipped["liger"] = "liger_kernel is not installed (and has no loss of this family)"
    try:
        from torchvision.ops import sigmoid_focal_loss as tv_focal
    except Exception as exc:
        tv_focal = None
        tv_skip = {"torchvision": f"torchvision does not import ({type(exc).__name__})"}
    else:
        tv_skip = {}

    import fusedloss
    from fusedloss.reference import (
        binary_focal_loss_reference,
        sigmoid_focal_loss_reference,
    )

    compiled_focal = H.compiled(sigmoid_focal_loss_reference)
    compiled_bce = H.compiled(bce_mean)
    compiled_binary_focal = H.compiled(binary_focal_loss_reference)

    def focal_setup(provider, size, dtype, *, device):
        x, t = make_inputs(size, dtype, device)
        if provider == "torch":
            fn = torchvision_style_sigmoid_focal
        elif provider == "torchvision":
            def fn(x, t):
                return tv_focal(x, t, alpha=ALPHA, gamma=GAMMA, reduction="mean")
        elif provider == "torch_compile":
            def fn(x, t):
                return compiled_focal(x, t, alpha=ALPHA, gamma=GAMMA, reduction="mean")
        else:
            backend = provider.removeprefix("fusedloss_")

            def fn(x, t):
                return fusedloss.sigmoid_focal_loss(x, t, alpha=ALPHA, gamma=GAMMA,
                                                    reduction="mean", backend=backend)
        return H.Case(fn, (x, t))

    def bce_setup(provider, size, dtype, *, device):
        x, t = make_inputs(size, dtype, device)
        if provider == "torch":
            fn = bce_mean
        elif provider == "torch_compile":
            fn = compiled_bce
        else:
            backend = provider.removeprefix("fusedloss_")

            def fn(x, t):
                return fusedloss.binary_cross_entropy_with_logits(x, t, reduction="mean",
                                                                  backend=backend)
        return H.Case(fn, (x, t))

    def binary_focal_setup(provider, size, dtype, *, device):
        x, t = make_inputs(size, dtype, device)
        if provider == "torch":
            def fn(x, t):
                return binary_focal_loss_reference(x, t, gamma=GAMMA)
        elif provider == "torch_compile":
            def fn(x, t):
                return compiled_binary_focal(x, t, gamma=GAMMA)
        else:
            backend = provider.removeprefix("fusedloss_")

            def fn(x, t):
                return fusedloss.binary_focal_loss(x, t, gamma=GAMMA, backend=backend)
        return H.Case(fn, (x, t))

    transc = "2 (exp, log1p); gamma=2 adds no pow"
    return [
        H.Family(
            "sigmoid_focal_loss",
            ["torch"] + (["torchvision"] if tv_focal else []) + ["torch_compile"] + fused,
            focal_setup, bytes_per_elem, transc,
            config={"alpha": ALPHA, "gamma": GAMMA, "reduction": "mean", "target_dtype": "input"},
            skipped={**skipped, **tv_skip},
        ),
        H.Family(
            "binary_cross_entropy_with_logits",
            ["torch", "torch_compile"] + fused,
            bce_setup, bytes_per_elem, "2 (exp, log1p)",
            config={"reduction": "mean", "target_dtype": "input"},
            skipped=skipped,
        ),
        H.Family(
            "binary_focal_loss",
            ["torch", "torch_compile"] + fused,
            binary_focal_setup, bytes_per_elem, transc,
            config={"gamma": GAMMA, "alpha": None, "reduction": "sbnz", "target_dtype": "input"},
            skipped=skipped,
        ),
    ]


if __name__ == "__main__":
    sys.exit(H.main("focal", build, SIZES, QUICK_SIZES, DTYPES, TARGETS))
