"""Benchmark of the in-batch metric-learning losses from embeddings (EasyRec CIRCLE_LOSS and
MULTI_SIMILARITY_LOSS; spec 6.2, 6.3): pairs/s, achieved FLOP/s and peak extra memory,
forward + backward.

    python benchmarks/bench_metric.py [--device cpu|cuda] [--quick] [--out DIR] [--no-save]

Row sets, each forward + backward of the scalar loss with the embeddings requiring grad:

* ``circle_loss``: ``fusedloss.circle_loss(e, y, margin=0.25, gamma=32)`` (EasyRec's defaults);
* ``multi_similarity_loss``: ``fusedloss.multi_similarity_loss(e, y, alpha=2, beta=50, lamb=1)``
  (EasyRec's defaults, the intended formula; EasyRec's as-coded O(B^3) variant is not timed).

Both l2-normalise the rows inside the loss (``embed_normed=False``, EasyRec's default) and take no
session ids. Data, one seed per shape so that every provider sees the same values: labels ``y``
uniform over B / 4 classes (about 3 positives per anchor), embeddings ``e = c[y] + N(0, 1)`` with
class centres ``c`` ~ N(0, 1) (same-class cosines about 0.5, others about 0 +- 1/sqrt(D)).

Providers, side by side in one process:

* ``torch``: ``fusedloss.reference.circle_loss_reference`` / ``multi_similarity_loss_reference``,
  EasyRec's formulation: the [B, B] cosine matrix ``e_n @ e_n.T``, [B, B] label masks, masked
  log-sum-exps over the rows. O(B^2) memory (tens of bytes per entry at fp32).
* ``torch_compile``: ``torch.compile`` of the same function (one static graph per shape).
* ``fusedloss_<backend>``: every fused backend that runs ``fusedloss::metric_fwd`` on the device:
  ``cpu`` on CPU, ``cuda`` and ``triton`` on CUDA (never the Triton interpreter). They tile the
  cosine matrix and keep O(B) state; a missing backend is listed as skipped with the reason.
* No Liger-Kernel provider: Liger has no circle or multi-similarity loss.

Too large: before running a [B, B] provider at a shape, its memory and time per call are estimated
from its measured peak (times (B / B')^2) and time (times (B / B')^2 D / D') at the last smaller
shape (before any measurement, 64 bytes per B^2 entry). A provider that would need more than 60% of
the free memory (CUDA) or MemAvailable (CPU), or more than 5 s (``--quick``) / 60 s per call, is
reported as not run with the estimate; an out-of-memory error at run time is reported as ``OOM``.

Checks, before timing: every provider's loss and gradient against the first provider that ran at
that (dtype, shape) (``torch`` where it fits), relative to the largest reference value, with the
harness's tolerances. A mismatch is listed at the end and makes the exit status 1.

Shapes [B, D]: B in {1024, 4096, 16384} x D in {64, 128} on both devices; ``--quick``: B in
{1024, 2048} x D in {64, 128} on CPU, B in {1024, 4096, 16384} x D = 128 on CUDA. fp32 on CPU,
fp32 and bf16 on CUDA. ``--device cpu --quick`` takes about 30-60 s on a 2-core machine.

The floor is compute, not memory: the inputs and the gradient are 2 B D s bytes, against B^2 D
multiply-adds. A fused kernel that keeps O(B) state makes 2 passes over the B^2 pairs, each
computing every cosine (2 B^2 D FLOPs per pass), and pass 2 also accumulates the gradient
``sum_j H_ij inv_j e_j`` (another 2 B^2 D): **6 B^2 D FLOPs forward + backward** (``FLOP``
below; the row norms, B D, are left out). The [B, B] reference does the same 6 B^2 D (one matmul
forward, two in backward), so ``TFLOP/s = 6 B^2 D / time`` is the same count for every provider.
``pairs/s`` counts the B (B - 1) ordered (anchor, other) pairs of a call.

For scale, ``mmTF/s`` is a measured ``torch.mm(x, x.T)`` of the same [B, D] in the same dtype on the
same device (the BLAS rate at this shape, which also writes the [B, B] result), and
``ofMM = TFLOP/s / mmTF/s``. On CUDA, fp32 ``torch.mm`` does not use TF32 (torch's default), while a
Triton ``tl.dot`` may: an fp32 ``ofMM`` above 1 is possible there.

Transcendental ops per ordered pair, fused kernels: 1 exp in pass 1 (the online log-sum-exp of the
pair's set), 2 exp in pass 2 (G_ij and G_ji, since the gradient of a row needs both directions),
plus per row a few logs, a softplus and a sigmoid. The [B, B] reference: 2 B^2 exps forward (both
log-sum-exps run over all B entries of a row, masked ones included) and 2 B^2 in backward.

Targets: none (the spec sets no speedup goal for these losses).

Results: a table per row set; rows appended to ``<out>/<device-slug>.csv`` in the harness's
columns (``x_name`` B, D in ``extra_benchmark_config_str`` with pairs/s, TFLOP/s and the mm
rate; ``gbps``, ``copy_gbps`` and ``frac_of_copy`` empty).
"""

import functools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# _harness first: it keeps the Triton interpreter out of this process before triton is imported.
import _harness as H  # noqa: E402
import torch  # noqa: E402

NAME = "metric"
OP = "metric_fwd"
Shape = H.Shape  # [B, D]
SHAPES = {"cpu": [Shape(b, d) for b in (1024, 4096, 16384) for d in (64, 128)],
          "cuda": [Shape(b, d) for b in (1024, 4096, 16384) for d in (64, 128)]}
QUICK = {"cpu": [Shape(b, d) for b in (1024, 2048) for d in (64, 128)],
         "cuda": [Shape(b, 128) for b in (1024, 4096, 16384)]}
DTYPES = {"cpu": [torch.float32], "cuda": [torch.float32, torch.bfloat16]}
LOSSES = ("circle_loss", "multi_similarity_loss")
CIRCLE = {"margin": 0.25, "gamma": 32.0}
MULTI_SIMILARITY = {"alpha": 2.0, "beta": 50.0, "lamb": 1.0}
CLASS_DIV = 4  # B / 4 classes
SEED = 0
# [B, B] providers: bytes per B^2 entry before any measurement, share of free memory they may take,
# seconds per call they may take (quick, full).
LIMITS = H.SquareLimits(default_bytes=64, mem_share=0.6, max_call_s={True: 5.0, False: 60.0})


def flops(shape: Shape) -> int:
    """The compute floor of forward + backward: 6 B^2 D (see the module docstring)."""
    return 6 * shape.b * shape.b * shape.c


def make_inputs(shape: Shape, dtype, device):
    """(embeddings [B, D], labels [B] int64)."""
    b, d = shape.b, shape.c
    gen = torch.Generator().manual_seed(SEED + b * 1000 + d)
    y = torch.randint(0, max(1, b // CLASS_DIV), (b,), generator=gen)
    centres = torch.randn(max(1, b // CLASS_DIV), d, generator=gen)
    e = centres[y] + torch.randn(b, d, generator=gen)
    return e.to(device, dtype), y.to(device)


def make_fn(loss: str, provider: str, compiled: dict):
    """fn(e, y) -> 0-d loss for a provider."""
    import fusedloss
    from fusedloss import reference as R

    if provider in H.SQUARE_PROVIDERS:
        if loss == "circle_loss":
            ref, kw = R.circle_loss_reference, CIRCLE
        else:
            ref, kw = R.multi_similarity_loss_reference, MULTI_SIMILARITY
        if provider == H.COMPILED:
            ref = compiled.setdefault(loss, H.compiled(ref))
        return lambda e, y: ref(e, y, None, **kw)
    backend = provider.removeprefix("fusedloss_")
    if loss == "circle_loss":
        return lambda e, y: fusedloss.circle_loss(e, y, backend=backend, **CIRCLE)
    return lambda e, y: fusedloss.multi_similarity_loss(e, y, backend=backend, **MULTI_SIMILARITY)


_mm_cache: dict = {}


def mm_tflops(shape: Shape, dtype, device, min_run_time: float) -> float:
    """TFLOP/s of a measured ``torch.mm(x, x.T)``, x [B, D] (cached per shape and dtype)."""
    key = (int(shape), shape.b, dtype, device)
    if key not in _mm_cache:
        x = torch.randn(shape.b, shape.c, device=device).to(dtype)
        ms, _ = H.timed(lambda: torch.mm(x, x.T), device, min_run_time)
        _mm_cache[key] = 2 * shape.b * shape.b * shape.c / (ms[0] * 1e-3) / 1e12
        del x
    return _mm_cache[key]


def figures(row, device, min_run_time: float) -> dict:
    """pairs/s, TFLOP/s and the ``torch.mm`` rate of a timed row."""
    shape, s = row["size"], row["ms"][0] * 1e-3
    b = shape.b
    tflops = flops(shape) / s / 1e12
    mm = mm_tflops(shape, row["dtype"], device, min_run_time)
    return {"pairs_per_s": b * (b - 1) / s, "tflops": tflops, "mm_tflops": mm, "of_mm": tflops / mm}


def build(device, args, extra) -> list:
    """One row set per loss in ``LOSSES``."""
    compiled = {}
    row_sets = []
    for loss in LOSSES:
        params = CIRCLE if loss == "circle_loss" else MULTI_SIMILARITY
        config = {**params, "embed_normed": False, "session_ids": None,
                  "labels": f"uniform over B / {CLASS_DIV} classes",
                  "data": "e = c[y] + N(0, 1), c ~ N(0, 1)", "grad": "embeddings", **extra,
                  "quick": args.quick}
        row_sets.append(H.SquareRowSet(
            name=loss, kernel=loss, config=config,
            title=(f"{loss}  (floor: compute, 6 B^2 D FLOP forward + backward (2 passes x 2 B^2 D, "
                   f"+ 2 B^2 D in pass 2); transcendentals/ordered pair (fused): 3 exp)"),
            inputs=lambda shape, dtype, device: (make_inputs(shape, dtype, device), {}),
            make_fn=functools.partial(make_fn, loss, compiled=compiled),
            figures=lambda row: figures(row, device, args.min_run_time),
            rate=lambda r: f"{r['pairs_per_s']:10.3e} pairs/s  {r['tflops']:8.4f} TFLOP/s",
            csv_config=lambda r: {"D": r["size"].c, "pairs_per_s": float(f"{r['pairs_per_s']:.4g}"),
                                  "tflops": float(f"{r['tflops']:.4g}"),
                                  "mm_tflops": float(f"{r['mm_tflops']:.4g}")},
        ))
    return row_sets


def print_table(rows):
    H.print_square_table(rows, lead=[("size", "BxD", 9, "")], figures=[
        ("pairs_per_s", "pairs/s", 10, ".3e"), ("tflops", "TFLOP/s", 8, ".4f"),
        ("mm_tflops", "mmTF/s", 7, ".3f"), ("of_mm", "ofMM", 5, ".2f")])


def main(argv=None) -> int:
    return H.main_square(NAME, OP, build, SHAPES, QUICK, DTYPES, limits=LIMITS,
                         print_table=print_table, x_label="rows", name_width=24,
                         skipped={"liger": "Liger-Kernel has no circle or multi-similarity loss"},
                         argv=argv)


if __name__ == "__main__":
    sys.exit(main())
