"""Benchmark of the pointwise family: torch's regression losses and KL divergence, Keras's log-cosh, EasyRec's L2 and log loss.

    python benchmarks/bench_pointwise.py [--device cpu|cuda] [--quick] [--out DIR] [--no-save]

Every loss of the family (``fusedloss/functional/pointwise.py``) is one parametrised elementwise
fused kernel (math in ``csrc/pointwise/pointwise_math.h``): per element the loss and its derivative
in one pass. The row sets below are a representative subset (the other kinds, l1, MAPE, hinge,
squared hinge, exponential, sigmoid-L2, cost the same bytes and at most the transcendentals of
these). Input ``x`` and target ``t`` have one shape, [N / 1024, 1024] (so that ``kl_div``'s
``batchmean`` has a batch dim), and the same dtype; reduction to a scalar; forward + backward:

* ``mse_loss``: ``fusedloss.mse_loss(x, t)`` (mean), the drop-in for ``F.mse_loss``; x, t ~ N(0, 1).
* ``kl_div``: ``fusedloss.kl_div(x, t, reduction="batchmean")`` (sum / B) against
  ``F.kl_div``; x = ``log_softmax`` of N(0, 1) rows (log-probabilities), t = ``softmax`` of other
  N(0, 1) rows (probabilities, ``log_target=False``), both computed in fp32 and stored in the dtype.
* ``huber_loss``: ``fusedloss.huber_loss(x, t, delta=1.0)`` (mean) against ``F.huber_loss``.
  With x, t ~ N(0, 1), |x - t| <= 1 for about half of the elements: both branches are taken.
* ``smooth_l1_loss``: ``fusedloss.smooth_l1_loss(x, t, beta=1.0)`` (mean) against
  ``F.smooth_l1_loss``.
* ``log_cosh_loss``: Keras's ``log_cosh``, ``fusedloss.log_cosh_loss(x, t)`` (mean); eager =
  Keras's formula in torch, ``d + softplus(-2 d) - log 2`` with ``d = x - t``, averaged.
* ``l2_loss``: EasyRec's L2_LOSS, ``fusedloss.l2_loss(x, t, weights=w)`` with a per-sample weight
  ``w`` of shape [B, 1] (a [B] sample weight, broadcast over the row; uniform in [0.5, 1.5], 10% of
  the samples 0) and TF's SUM_BY_NONZERO_WEIGHTS reduction. Eager = the EasyRec / TF code in torch
  (``tf.losses.mean_squared_error``): ``losses = (x - t)^2 * w``, ``num_present`` = nonzero
  weights broadcast to the losses' shape, ``div_no_nan(sum(losses), num_present)``.
* ``log_loss``: EasyRec's CROSS_ENTROPY_LOSS (TF's ``log_loss``, epsilon 1e-7, weight 1, SBNZ:
  the mean over elements), ``fusedloss.log_loss(p, t)`` on probabilities ``p = sigmoid(N(0, 1))``
  and targets in {0, 1} (25% ones); eager = the formula ``-t log(p + eps) - (1 - t) log(1 - p +
  eps)``, averaged.

Providers, side by side in one process on the same data (one seed):

* ``torch``: eager PyTorch: ``F.mse_loss``, ``F.kl_div``, ``F.huber_loss``, ``F.smooth_l1_loss``,
  and for the Keras / EasyRec losses their formulas above, written as a user would, in the
  input dtype (the reference of the checks);
* ``torch_compile``: ``torch.compile`` of those same eager functions (one static graph per shape);
* ``fusedloss_<backend>``: every fused backend that runs ``fusedloss::pointwise_fwd`` on the
  device: ``cpu`` on CPU; ``cuda`` and ``triton`` on CUDA (never the Triton interpreter);
* ``liger`` (``kl_div`` only, CUDA only): Liger-Kernel's ``liger_kl_div(x, t,
  reduction="batchmean")`` (``liger_kernel.transformers.functional``; ``LigerKLDIVLoss`` on
  versions without it) when ``liger_kernel`` imports; otherwise the output says it was skipped
  and why (the GPU machine has no network: a carried wheel must be pip-installed there). Liger has
  no other loss of this family (its losses are cross-entropy, JSD, KL, TVD and preference losses).
  Its KL is two kernels: the forward reads x and t and writes per-row sums; the backward reads t,
  writes ``-t`` and then divides it by B in a separate torch op (another read and write of N).

Sizes N (elements): on CUDA 2^24, 2^26, 2^28 in fp32 and bf16 (``--quick``: 2^24 and 2^28);
before each setup the script compares a conservative estimate, ``N x (10 x itemsize + 12) B +
1 GiB``, with the free device memory and skips the size (an error in the summary) when it does not
fit. On CPU (a 2-core machine; ``--quick`` needs about a minute of CPU time, most of it
torch.compile's compiles, plus whatever ``--wait-quiet`` spends waiting for other processes) 2^20,
2^22 and 2^24 in fp32 (``--quick``: 2^20 and 2^22). The tables print the size as ``BxC``; the
CSV's ``x_value`` is N.

Memory floor, bytes per element (what a single fused pass must move; targets in the input dtype):

* forward + backward (``full``): read x, read t, write the gradient = 3 x itemsize:
  **12 B/elem at fp32, 6 B/elem at bf16**. ``l2_loss``'s [B, 1] weight is O(B) (4 B per row of
  1024 elements, 0.1%) and is left out; a per-element weight would add its itemsize (not run here).
* forward only: read x and t = 2 x itemsize: 8 B/elem fp32, 4 B/elem bf16.
  The scalar loss and per-block partial sums are negligible.

What the peers move (full mode, in units of itemsize per element, besides the floor's 3):
``torch.compile`` saves x and t (no copies) and recomputes the cheap pointwise math in the backward:
its forward reads x and t, its backward reads them again and writes the gradient, 5 in all (the
fused pass can be 5/3 = 1.67x faster); for ``kl_div`` the backward needs only t (the gradient is
``-t / B``), 4 in all (1.33x). Eager runs one kernel per op and writes every intermediate (its
backward, ``mse_loss_backward``, ``huber_loss_backward`` and the like, is one kernel for the torch
losses; the formulas' backward is a chain of ops). Liger's KL moves 6 (2 + 2 + 2, see above).
The fused ops reach the floor only if their backward does not touch the gradient again: the
autograd formula shared by the fused ops (``fusedloss/ops/_autograd.py``) multiplies the gradient
saved by the forward by ``grad_output x scale`` (the mean's 1 / N, SBNZ's 1 / count) out of place,
one more read and write of N (5 in all, as much as torch.compile) and a second N-sized buffer,
which shows in ``peakMiB`` (2 x N x itemsize for the fused ``full`` rows against compile's 1).

Transcendental ops per element (fused kernels, forward + backward in one evaluation; the ``forward``
mode computes the same loss):

* ``mse_loss``, ``l2_loss``, ``huber_loss``: 0 (multiply-adds and a compare);
  ``smooth_l1_loss``: 0 (plus one division by beta in the quadratic branch);
* ``kl_div``: 1 log (``log t``, skipped where t = 0); the gradient ``-t`` needs none;
* ``log_cosh_loss``: 3: ``exp(-2|d|)``, its ``log1p``, and ``tanh(d)`` for the gradient
  (eager: softplus's exp and log1p in the forward, a sigmoid's exp in the backward: also 3);
* ``log_loss``: 2 logs (``log(p + eps)``, ``log(1 - p + eps)``) and 2 divisions for the gradient.

"Copy" (``frac_of_copy``) is a measured ``y.copy_(x)`` on the same device moving the same total
bytes as the floor (reads floor/2, writes floor/2): ``frac_of_copy = copy_ms / ms``, 1.0 meaning
the loss and its gradient ran at the device's copy bandwidth.

Targets printed at the end, full mode, largest size: on CPU ``fusedloss_cpu`` >= 1.5x eager
``torch``; on CUDA the fused backends >= 0.9 of a copy's bandwidth and >= 1.2x ``torch_compile``
(below the 1.67x / 1.33x that the bytes above allow, since compile's two passes are also
bandwidth-bound kernels).
"""

import importlib.metadata
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# _harness first: it keeps the Triton interpreter out of this process before triton is imported.
import _harness as H  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

Shape = H.Shape
COLS = 1024  # inputs are [N / COLS, COLS]


def _shapes(*log2s):
    return [Shape(2**k // COLS, COLS) for k in log2s]


SIZES = {"cpu": _shapes(20, 22, 24), "cuda": _shapes(24, 26, 28)}
QUICK_SIZES = {"cpu": _shapes(20, 22), "cuda": _shapes(24, 28)}
DTYPES = {"cpu": [torch.float32], "cuda": [torch.float32, torch.bfloat16]}
TARGETS = [
    H.Target("cpu", "fusedloss_cpu", "speedup_vs_eager", 1.5),
    H.Target("cuda", "fusedloss_cuda", "frac_of_copy", 0.9),
    H.Target("cuda", "fusedloss_cuda", "speedup_vs_compile", 1.2),
    H.Target("cuda", "fusedloss_triton", "frac_of_copy", 0.9),
    H.Target("cuda", "fusedloss_triton", "speedup_vs_compile", 1.2),
]
OP = "pointwise_fwd"
DELTA = BETA = 1.0  # huber_loss delta, smooth_l1_loss beta
LOG_LOSS_EPS = 1e-7  # TF's log_loss default, EasyRec's CROSS_ENTROPY_LOSS
WEIGHT_RANGE, WEIGHT_ZERO_FRAC = (0.5, 1.5), 0.10  # l2_loss's [B, 1] sample weight
LOG_LOSS_POS_FRAC = 0.25


def bytes_per_elem(mode: str, dtype: torch.dtype) -> int:
    """x and t read (targets in the input dtype), plus the gradient written in ``full`` mode."""
    return (3 if mode == "full" else 2) * dtype.itemsize


def check_memory(shape: Shape, dtype: torch.dtype, device: torch.device) -> None:
    """Raise MemoryError when a CUDA size would not fit (estimate: see the module docstring)."""
    # x, t, the gradient, the eager reference's gradient kept for the checks, eager's temporaries
    # (~4 for the formulas), the copy probe (2): 10 tensors.
    H.check_device_memory(shape, dtype, device, copies=10)


# --------------------------------------------------------------------------------------------
# Inputs


def regression_inputs(shape: Shape, dtype, device):
    x = torch.randn(shape.b, shape.c, device=device, dtype=dtype)
    t = torch.randn(shape.b, shape.c, device=device, dtype=dtype)
    return x, t


def kl_inputs(shape: Shape, dtype, device):
    """Log-probabilities x and probabilities t, rows of a softmax over the 1024 columns."""
    x = torch.log_softmax(torch.randn(shape.b, shape.c, device=device), dim=1).to(dtype)
    t = torch.softmax(torch.randn(shape.b, shape.c, device=device), dim=1).to(dtype)
    return x, t


def sample_weight(shape: Shape, dtype, device):
    """A [B, 1] per-sample weight, uniform in WEIGHT_RANGE, WEIGHT_ZERO_FRAC of the samples 0."""
    w = torch.empty(shape.b, 1, device=device).uniform_(*WEIGHT_RANGE)
    w = torch.where(torch.rand(shape.b, 1, device=device) < WEIGHT_ZERO_FRAC, 0.0, w)
    return w.to(dtype)


def log_loss_inputs(shape: Shape, dtype, device):
    """Probabilities sigmoid(N(0, 1)) and {0, 1} targets (LOG_LOSS_POS_FRAC ones)."""
    p = torch.sigmoid(torch.randn(shape.b, shape.c, device=device)).to(dtype)
    t = (torch.rand(shape.b, shape.c, device=device) < LOG_LOSS_POS_FRAC).to(dtype)
    return p, t


# --------------------------------------------------------------------------------------------
# Eager peers (the reference of the checks), in the input dtype


def mse_eager(x, t):
    return F.mse_loss(x, t)


def kl_eager(x, t):
    return F.kl_div(x, t, reduction="batchmean")


def huber_eager(x, t):
    return F.huber_loss(x, t, delta=DELTA)


def smooth_l1_eager(x, t):
    return F.smooth_l1_loss(x, t, beta=BETA)


def keras_log_cosh(x, t):
    """Keras's ``log_cosh``: ``d + softplus(-2 d) - log 2`` (mean over the last axis, then the
    batch: the mean over all elements)."""
    d = x - t
    return (d + F.softplus(-2.0 * d) - math.log(2.0)).mean()


def easyrec_l2_loss(x, t, w):
    """EasyRec L2_LOSS = ``tf.losses.mean_squared_error(t, x, weights=w)``, SUM_BY_NONZERO_WEIGHTS."""
    losses = (x - t).square() * w
    num_present = (w != 0).expand_as(losses).sum()  # TF's _num_present: weights broadcast
    return torch.where(num_present > 0, losses.sum() / num_present.clamp(min=1), 0.0)


def easyrec_log_loss(p, t):
    """EasyRec CROSS_ENTROPY_LOSS = ``tf.losses.log_loss(t, p)`` (weight 1: SBNZ is the mean)."""
    eps = LOG_LOSS_EPS
    return (-t * torch.log(p + eps) - (1 - t) * torch.log(1 - p + eps)).mean()


def liger_kl_div_fn(device):
    """(fn(x, t) or None, why not, version) for Liger-Kernel's KL divergence, batchmean."""
    if device.type != "cuda":
        return None, "Liger-Kernel's KL divergence is a Triton kernel for CUDA tensors", None
    try:
        version = importlib.metadata.version("liger-kernel")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    try:
        from liger_kernel.transformers.functional import liger_kl_div

        def fn(x, t):
            return liger_kl_div(x, t, reduction="batchmean")
        return fn, None, version
    except Exception as first:
        try:  # older releases: the nn.Module only (spelled LigerKLDIVLoss)
            from liger_kernel.transformers import kl_div as liger_mod

            cls = getattr(liger_mod, "LigerKLDIVLoss", None) or getattr(liger_mod,
                                                                        "LigerKLDivLoss")
        except Exception as exc:
            why = f"{type(exc).__name__}: {exc}"
            if isinstance(first, ModuleNotFoundError) and first.name in ("liger_kernel",):
                why = ("liger_kernel is not installed (the GPU machine has no network: carry a "
                       "liger_kernel wheel and pip install --no-deps it there to compare)")
            return None, why, None
        module = cls(reduction="batchmean")

        def fn(x, t):
            return module(x, t)
        return fn, None, version


# --------------------------------------------------------------------------------------------
# Row sets


def build(device):
    import fusedloss

    fused, skipped = H.fused_providers(device, OP)
    liger_fn, liger_why, liger_version = liger_kl_div_fn(device)

    def row_set(name, eager, fused_call, make_inputs, transc, config, liger_skip, weighted=False):
        """A Family whose providers call ``eager``, its compile, or ``fused_call(backend)``."""
        compiled = H.compiled(eager)
        use_liger = name == "kl_div" and liger_fn is not None

        def setup(provider, shape, dtype, *, device):
            check_memory(shape, dtype, device)
            inputs = make_inputs(shape, dtype, device)
            if weighted:
                inputs = (*inputs, sample_weight(shape, dtype, device))
            if provider == "torch":
                fn = eager
            elif provider == "torch_compile":
                fn = compiled
            elif provider == "liger":
                fn = liger_fn
            else:
                fn = fused_call(provider.removeprefix("fusedloss_"))
            return H.Case(fn, inputs)

        shapes = {str(s): f"{s.b}x{s.c}" for s in SIZES[device.type] + QUICK_SIZES[device.type]}
        cfg = {**config, "shapes": shapes}
        if use_liger:
            cfg["liger_kernel"] = liger_version
        return H.Family(name, ["torch", "torch_compile"] + fused + (["liger"] if use_liger else []),
                        setup, bytes_per_elem, transc, config=cfg,
                        skipped={**skipped, **({} if use_liger else {"liger": liger_skip})})

    no_liger = "Liger-Kernel has no {} (its losses: cross-entropy, JSD, KL, TVD, preference)"
    return [
        row_set("mse_loss", mse_eager,
                lambda b: lambda x, t: fusedloss.mse_loss(x, t, backend=b),
                regression_inputs, "0",
                {"reduction": "mean", "eager": "F.mse_loss"}, no_liger.format("MSE loss")),
        row_set("kl_div", kl_eager,
                lambda b: lambda x, t: fusedloss.kl_div(x, t, reduction="batchmean", backend=b),
                kl_inputs, "1 log (log t); gradient -t",
                {"reduction": "batchmean", "log_target": False, "eager": "F.kl_div",
                 "inputs": "x log_softmax, t softmax of N(0,1) rows"},
                liger_why),
        row_set("huber_loss", huber_eager,
                lambda b: lambda x, t: fusedloss.huber_loss(x, t, delta=DELTA, backend=b),
                regression_inputs, "0",
                {"reduction": "mean", "delta": DELTA, "eager": "F.huber_loss"},
                no_liger.format("Huber loss")),
        row_set("smooth_l1_loss", smooth_l1_eager,
                lambda b: lambda x, t: fusedloss.smooth_l1_loss(x, t, beta=BETA, backend=b),
                regression_inputs, "0 (a division by beta)",
                {"reduction": "mean", "beta": BETA, "eager": "F.smooth_l1_loss"},
                no_liger.format("smooth L1 loss")),
        row_set("log_cosh_loss", keras_log_cosh,
                lambda b: lambda x, t: fusedloss.log_cosh_loss(x, t, backend=b),
                regression_inputs, "3 (exp, log1p, tanh); eager 3 (softplus exp, log1p; sigmoid)",
                {"reduction": "mean", "eager": "Keras formula d + softplus(-2d) - log 2"},
                no_liger.format("log-cosh loss")),
        row_set("l2_loss", easyrec_l2_loss,
                lambda b: lambda x, t, w: fusedloss.l2_loss(x, t, weights=w, backend=b),
                regression_inputs, "0",
                {"reduction": "sum_by_nonzero_weights", "weight": "[B, 1] sample weight, uniform "
                 f"{list(WEIGHT_RANGE)}, {WEIGHT_ZERO_FRAC:.0%} zero, input dtype",
                 "eager": "EasyRec/TF mean_squared_error, SBNZ"},
                no_liger.format("L2 loss"), weighted=True),
        row_set("log_loss", easyrec_log_loss,
                lambda b: lambda p, t: fusedloss.log_loss(p, t, epsilon=LOG_LOSS_EPS, backend=b),
                log_loss_inputs, "2 log, 2 divisions",
                {"reduction": "sum_by_nonzero_weights", "weights": 1.0, "epsilon": LOG_LOSS_EPS,
                 "inputs": f"p = sigmoid(N(0,1)), t in {{0,1}} ({LOG_LOSS_POS_FRAC:.0%} ones)",
                 "eager": "EasyRec/TF log_loss formula"},
                no_liger.format("log loss")),
    ]


if __name__ == "__main__":
    sys.exit(H.main("pointwise", build, SIZES, QUICK_SIZES, DTYPES, TARGETS))
