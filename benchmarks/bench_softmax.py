"""Benchmark of the softmax family: torch's cross-entropy (drop-in) and the softmax focal loss, on [B, C].

    python benchmarks/bench_softmax.py [--device cpu|cuda] [--quick] [--out DIR] [--no-save]

Row sets (logits ``x`` of shape [B, C], int64 class-index targets ``t`` of shape [B], reduction
``"mean"``, forward + backward; 5% of the rows, drawn at random, have ``t = ignore_index = -100``,
to exercise the ignore path: they count neither in the loss nor in the mean's denominator):

* ``cross_entropy``: ``fusedloss.cross_entropy(x, t, ignore_index=-100, backend=...)``
  (``label_smoothing=0``, ``z_loss=0``, no class weight).
* ``softmax_focal_loss``: ``fusedloss.softmax_focal_loss(x, t, gamma=2.0, alpha=a,
  ignore_index=-100, backend=...)`` with a per-class ``alpha`` ``a``: an fp32 [C] tensor drawn
  uniformly in [0.25, 0.75] (the same for every provider); no label smoothing.
* ``cross_entropy_smoothed``: the ``cross_entropy`` row set with ``label_smoothing=0.1`` (the one
  smoothing case: it adds a plain sum per row, not a transcendental, so it should cost the same).

Providers, side by side in one process on the same data (one seed):

* ``torch``: eager ``torch.nn.functional.cross_entropy(x, t, ignore_index=-100,
  label_smoothing=...)``; for the focal loss, the usual eager way in the input dtype:
  ``logp = log_softmax(x, 1)``, ``logp_t = logp.gather(1, t)``, ``p_t = exp(logp_t)``,
  ``-alpha[t] (1 - p_t)^gamma logp_t`` masked on ignored rows, summed, divided by the rows kept;
* ``torch_compile``: ``torch.compile`` of those same eager functions (one static graph per shape);
* ``fusedloss_<backend>``: every fused backend that runs ``fusedloss::softmax_fwd`` on the device:
  ``cpu`` on CPU; ``cuda`` and ``triton`` on CUDA (never the Triton interpreter);
* ``fusedloss_<backend>_inplace`` (cross-entropy row sets): the same call with
  ``inplace_grad=True``: the kernel writes the gradient into the logits' storage and backward
  scales it there, as Liger does (so the same two remarks as for Liger below apply: no [B, C]
  gradient in its peak memory, and timed repeats on overwritten logits);
* ``liger`` (cross-entropy row sets, CUDA only): Liger-Kernel's ``liger_cross_entropy(x, t,
  ignore_index=-100, reduction="mean", label_smoothing=...)`` (``liger_kernel.transformers.
  functional``; ``LigerCrossEntropyLoss`` on versions without it) when ``liger_kernel`` imports;
  otherwise the output says it was skipped and why (the GPU machine has no network: a carried
  wheel must be pip-installed there). Liger has no focal loss. Liger writes the gradient into the
  logits' own storage during the forward, so (a) its peak memory leaves out the [B, C] gradient
  every other provider allocates, and (b) its timed repeats run on the overwritten logits (the same
  work: nothing in the kernel depends on the values); its loss and gradient are checked on the
  first call, and its forward-only rows run on an untouched copy of the logits.

Shapes [B, C] (the issue: [8192, 32768], [8192, 131072], [65536, 1000]): on CUDA [65536, 1000],
[8192, 32768], [8192, 131072] in fp32 and bf16 (``--quick``: the first and the last). [8192, 131072]
is 2^30 elements: 4 GiB of fp32 logits plus 4 GiB of gradient, and the eager baseline, the kept
reference gradient, the checks' fp32 temporaries and the copy probe add more; before each setup
the script compares a conservative estimate, ``N x (8 x itemsize + 12) B + 1 GiB``, with the free
device memory and skips the shape (an error in the summary, exit status 1) when it does not fit.
On CPU (a 2-core machine; a default run takes a few minutes) [4096, 1000], [512, 32768],
[256, 131072] in fp32 (``--quick``: the first two). The harness's "size" is the element count
N = B x C (the CSV's ``x_value``; the config's ``shapes`` maps it back to B x C, so the shapes of a
device have distinct element counts).

Memory floor, bytes per element of the [B, C] logits (what a single fused pass must move):

* forward + backward (``full``): read x once, write the gradient once = 2 x itemsize:
  **8 B/elem at fp32, 4 B/elem at bf16**. The targets (8 B per row, int64), the per-row loss and
  denominator and alpha (4 B per class) are O(B + C) and left out (at C = 1000: 0.1% of the floor).
* forward only: read x = 4 B/elem fp32, 2 B/elem bf16.

A kernel whose row does not fit on chip reads x again in its gradient pass; that second read comes
from L2 (or the CPU's caches) only while the rows in flight fit there, and counts nothing in the
floor. Eager ``F.cross_entropy`` moves about 3 x the floor's bytes (6 x itemsize per element): its
forward reads x and writes the [B, C] log-probabilities; its backward writes a one-hot-like [B, C]
gradient of ``nll_loss``, reads it and the log-probabilities back and writes the input gradient.

Transcendental ops per element (fused kernels):

* cross-entropy: 1 exp in pass 1 (the online log-sum-exp; its rescaling costs per block, not per
  element) + 1 exp in the gradient pass (``p_c = e^{x_c - lse}``); a row held on chip (Triton's
  single-tile path, C <= 4096) reuses the first. Per row: 1 log. Label smoothing adds a plain sum
  (``sum_c x_c``), no transcendental.
* focal, no smoothing: the same 1 + 1 exp per element (``grad_c = G ([c = y] - p_c)``); the focal
  part is per row: ``p_y``, ``1 - p_y = -expm1(log p_y)`` and ``(1 - p_y)^gamma`` (gamma = 2: a
  square; other gamma a log2 and two exp2). With smoothing (not run here) every class carries a
  focal term: expm1 and, for gamma not in {0, 1, 2}, log2 + 2 exp2 per element, in a third pass.
* eager: ``log_softmax`` (1 exp per element + 1 log per row) and its backward (1 exp per element);
  the focal port adds only O(B) work on top.

"Copy" (``frac_of_copy``) is a measured ``y.copy_(x)`` on the same device moving the same total
bytes as the floor (reads floor/2, writes floor/2): ``frac_of_copy = copy_ms / ms``, 1.0 meaning
the loss and its gradient ran at the device's copy bandwidth.

Targets printed at the end, full mode, largest shape: on CUDA the fused backends (``cuda``,
``triton``) at >= 0.9 of a copy's bandwidth. No CPU target is set for this family (``xEager`` in
the table says how the ``cpu`` backend compares with torch's own CPU kernels).
"""

import importlib.metadata
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# _harness first: it keeps the Triton interpreter out of this process before triton is imported.
import _harness as H  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

Shape = H.Shape

SHAPES = {
    "cpu": [Shape(4096, 1000), Shape(512, 32768), Shape(256, 131072)],
    "cuda": [Shape(65536, 1000), Shape(8192, 32768), Shape(8192, 131072)],
}
QUICK_SHAPES = {
    "cpu": [Shape(4096, 1000), Shape(512, 32768)],
    "cuda": [Shape(65536, 1000), Shape(8192, 131072)],
}
DTYPES = {"cpu": [torch.float32], "cuda": [torch.float32, torch.bfloat16]}
IGNORE_INDEX, IGNORE_FRAC = -100, 0.05  # 5% of the rows ignored
SMOOTHING = 0.1  # the cross_entropy_smoothed row set
GAMMA, ALPHA_RANGE = 2.0, (0.25, 0.75)  # focal: gamma, per-class alpha uniform in this range
TARGETS = [
    H.Target("cuda", "fusedloss_cuda", "frac_of_copy", 0.9),
    H.Target("cuda", "fusedloss_triton", "frac_of_copy", 0.9),
]
OP = "softmax_fwd"


def bytes_per_elem(mode: str, dtype: torch.dtype) -> int:
    """x read, plus the gradient written in ``full`` mode (targets, per-row outputs left out)."""
    return (2 if mode == "full" else 1) * dtype.itemsize


def check_memory(shape: Shape, dtype: torch.dtype, device: torch.device) -> None:
    """Raise MemoryError when a CUDA shape would not fit (estimate: see the module docstring)."""
    # x, its gradient, the eager reference's gradient kept for the checks, eager's [B, C]
    # temporaries (~3), Liger's untouched copy, the copy probe (2): 8 tensors.
    H.check_device_memory(shape, dtype, device, copies=8)


def make_inputs(shape: Shape, dtype, device):
    """Logits N(0, 1) in ``dtype``; int64 class indices with IGNORE_FRAC of them ignore_index."""
    x = torch.randn(shape.b, shape.c, device=device, dtype=dtype)
    t = torch.randint(0, shape.c, (shape.b,), device=device)
    t = torch.where(torch.rand(shape.b, device=device) < IGNORE_FRAC, IGNORE_INDEX, t)
    return x, t


def make_alpha(shape: Shape, device):
    return torch.empty(shape.c, device=device).uniform_(*ALPHA_RANGE)


def focal_eager(x, t, alpha, gamma=GAMMA, ignore_index=IGNORE_INDEX):
    """The softmax focal loss written the usual way, in the input dtype; mean over kept rows."""
    valid = t != ignore_index
    safe_t = torch.where(valid, t, 0)
    logp_t = F.log_softmax(x, dim=1).gather(1, safe_t[:, None]).squeeze(1)
    p_t = logp_t.exp()
    loss = -alpha[safe_t] * (1 - p_t) ** gamma * logp_t
    return (loss * valid).sum() / valid.sum()


def liger_cross_entropy_fn(device):
    """(fn(x, t, label_smoothing) or None, why not, version) for Liger-Kernel's cross-entropy."""
    if device.type != "cuda":
        return None, "Liger-Kernel's cross entropy is a Triton kernel for CUDA tensors", None
    try:
        version = importlib.metadata.version("liger-kernel")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    try:
        from liger_kernel.transformers.functional import liger_cross_entropy

        def fn(x, t, label_smoothing):
            return liger_cross_entropy(x, t, ignore_index=IGNORE_INDEX, reduction="mean",
                                       label_smoothing=label_smoothing)
        return fn, None, version
    except Exception as first:
        try:  # older releases: the nn.Module only
            from liger_kernel.transformers.cross_entropy import LigerCrossEntropyLoss
        except Exception as exc:
            why = f"{type(exc).__name__}: {exc}"
            if isinstance(first, ModuleNotFoundError) and first.name in ("liger_kernel",):
                why = ("liger_kernel is not installed (the GPU machine has no network: carry a "
                       "liger_kernel wheel and pip install --no-deps it there to compare)")
            return None, why, None

        def fn(x, t, label_smoothing):
            return LigerCrossEntropyLoss(ignore_index=IGNORE_INDEX, reduction="mean",
                                         label_smoothing=label_smoothing)(x, t)
        return fn, None, version


def build(device):
    import fusedloss

    def ce_eager(x, t):
        return F.cross_entropy(x, t, ignore_index=IGNORE_INDEX)

    def ce_smoothed_eager(x, t):
        return F.cross_entropy(x, t, ignore_index=IGNORE_INDEX, label_smoothing=SMOOTHING)

    compiled = {"ce": H.compiled(ce_eager), "ce_smoothed": H.compiled(ce_smoothed_eager),
                "focal": H.compiled(focal_eager)}
    liger_fn, liger_why, liger_version = liger_cross_entropy_fn(device)

    def ce_setup_for(smoothing, eager, compiled_fn):
        def setup(provider, shape, dtype, *, device):
            check_memory(shape, dtype, device)
            x, t = make_inputs(shape, dtype, device)
            if provider == "torch":
                fn = eager
            elif provider == "torch_compile":
                fn = compiled_fn
            elif provider == "liger":
                pristine = x.clone()  # Liger overwrites its input with the gradient (docstring)

                def fn(x, t):
                    if not x.requires_grad:  # forward-only rows: the logits as generated
                        x = pristine
                    return liger_fn(x, t, smoothing)
            else:
                backend = provider.removeprefix("fusedloss_").removesuffix("_inplace")
                inplace = provider.endswith("_inplace")
                pristine = x.clone() if inplace else x

                def fn(x, t):
                    if inplace and not x.requires_grad:  # forward-only rows: untouched logits
                        x = pristine
                    return fusedloss.cross_entropy(x, t, ignore_index=IGNORE_INDEX,
                                                   label_smoothing=smoothing, backend=backend,
                                                   inplace_grad=inplace)
            return H.Case(fn, (x, t))
        return setup

    def focal_setup(provider, shape, dtype, *, device):
        check_memory(shape, dtype, device)
        x, t = make_inputs(shape, dtype, device)
        alpha = make_alpha(shape, device)
        if provider == "torch":
            fn = focal_eager
        elif provider == "torch_compile":
            fn = compiled["focal"]
        else:
            backend = provider.removeprefix("fusedloss_")

            def fn(x, t, alpha):
                return fusedloss.softmax_focal_loss(x, t, gamma=GAMMA, alpha=alpha,
                                                    ignore_index=IGNORE_INDEX, backend=backend)
        return H.Case(fn, (x, t, alpha))

    fused, skipped = H.fused_providers(device, OP)
    inplace = [f"{p}_inplace" for p in fused]
    liger = ["liger"] if liger_fn else []
    ce_skipped = dict(skipped) if liger_fn else {**skipped, "liger": liger_why}
    focal_skipped = {**skipped, "liger": "Liger-Kernel has no softmax focal loss"}
    shapes = {str(s): f"{s.b}x{s.c}" for s in SHAPES[device.type] + QUICK_SHAPES[device.type]}
    common = {"reduction": "mean", "target": "class indices (int64)", "ignore_index": IGNORE_INDEX,
              "ignore_frac": IGNORE_FRAC, "shapes": shapes}
    if liger_fn:
        common["liger_kernel"] = liger_version
    ce_transc = ("1 exp (lse pass) + 1 exp (gradient pass; rows held on chip reuse the first), "
                 "1 log per row; eager: exp in log_softmax + exp in its backward")
    return [
        H.Family(
            "cross_entropy",
            ["torch", "torch_compile"] + fused + inplace + liger,
            ce_setup_for(0.0, ce_eager, compiled["ce"]), bytes_per_elem, ce_transc,
            config={**common, "label_smoothing": 0.0, "z_loss": 0.0},
            skipped=ce_skipped,
        ),
        H.Family(
            "softmax_focal_loss",
            ["torch", "torch_compile"] + fused,
            focal_setup, bytes_per_elem,
            "as cross_entropy (1 + 1 exp); per row p_y, expm1, (1 - p_y)^2 (a square); "
            "eager: log_softmax and its backward",
            config={**common, "gamma": GAMMA, "alpha": f"per class, fp32, uniform in "
                    f"{list(ALPHA_RANGE)}", "label_smoothing": 0.0},
            skipped=focal_skipped,
        ),
        H.Family(
            "cross_entropy_smoothed",
            ["torch", "torch_compile"] + fused + inplace + liger,
            ce_setup_for(SMOOTHING, ce_smoothed_eager, compiled["ce_smoothed"]), bytes_per_elem,
            ce_transc + "; smoothing adds a plain sum per row",
            config={**common, "label_smoothing": SMOOTHING, "z_loss": 0.0},
            skipped=ce_skipped,
        ),
    ]


if __name__ == "__main__":
    sys.exit(H.main("softmax", build, SHAPES, QUICK_SHAPES, DTYPES, TARGETS))
