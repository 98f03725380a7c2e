"""Benchmark of the multilabel categorical cross-entropy (Su's loss), dense and sparse, on [B, C] logits.

    python benchmarks/bench_multilabel.py [--device cpu|cuda] [--quick] [--out DIR] [--no-save]

Row sets (logits ``x`` of shape [B, C], reduction ``"mean"`` over the B rows, forward + backward):

* ``multilabel_categorical_crossentropy`` (dense): ``fusedloss.multilabel_categorical_crossentropy(
  x, t, reduction="mean", backend=...)``. Targets ``t`` are hard 0/1 labels with 1-5% positives per
  row (a per-row rate drawn uniformly in [0.01, 0.05]: the GlobalPointer / extreme multilabel
  regime), **stored in the input's float dtype** (fp32 targets for fp32 logits, bf16 for bf16), as
  the bert4keras formula multiplies them with the logits.
* ``sparse_multilabel_categorical_crossentropy`` (sparse, GPLinker's form):
  ``fusedloss.sparse_multilabel_categorical_crossentropy(x, idx, mask_zero=True, reduction="mean",
  backend=...)``. ``idx`` is int64 [B, K] with K = 16 slots; each row lists between 8 and 16 distinct
  positive classes in [1, C) (one per stratum of C / 16 classes, shuffled), the remaining slots
  padded with index 0, which ``mask_zero=True`` makes the padding value (class 0 is in neither sum).

Providers, side by side in one process on the same data:

* ``torch``: the eager "usual way", the common PyTorch port of bert4keras:
  ``fusedloss.reference.multilabel_categorical_crossentropy_bert4keras(x, t).mean()`` (``(1 - 2t) x``
  masked with +-1e12, a concatenated zero column, two ``logsumexp`` over [B, C + 1]), and
  ``fusedloss.reference.sparse_multilabel_categorical_crossentropy_bert4keras(x, idx, True).mean()``
  (zero column and +-inf column concatenated, gather, ``all + log(clip(1 - e^{pos - all}))``);
* ``torch_compile``: ``torch.compile`` of those same eager functions (one static graph per shape);
* ``fusedloss_<backend>``: every fused backend that runs the op on the device: ``cpu`` on CPU;
  ``cuda`` and ``triton`` on CUDA (never the Triton interpreter).

Shapes [B, C] (the issue asks for [4096, 1000] up to [1024, 131072]): on CUDA [4096, 1000],
[4096, 8192], [2048, 32768], [1024, 131072] in fp32 and bf16 (``--quick``: the first and the last);
on CPU (a 2-core machine; a default run takes a few minutes) [4096, 1000], [1024, 8192],
[256, 131072] in fp32 (``--quick``: the first two). The harness's "size" is the element count
N = B x C (what the CSV's ``x_value`` holds; the config's ``shapes`` maps it back to B x C).

Memory floor, bytes per element of the [B, C] input (what a single fused pass must move):

* dense, forward + backward (``full``): read x, read t, write grad = 3 x itemsize:
  **12 B/elem at fp32** (fp32 targets), **6 B/elem at bf16** (bf16 x and t, bf16 grad).
  Forward only: read x, read t = 8 B/elem fp32, 4 B/elem bf16.
* sparse, forward + backward: read x, write grad = 2 x itemsize: **8 B/elem at fp32**, 4 B/elem at
  bf16, plus B x K x 8 bytes of int64 indices; forward only: read x, 4 B/elem fp32. The indices are
  left out of the per-element floor used for GB/s (8K/C B/elem: 1.6% of the floor at C = 1000,
  K = 16, under 0.2% from C = 8192), so the sparse GB/s slightly understate the traffic.

The per-row loss and the scalar are negligible. A kernel that reads each row twice (once for the
two log-sum-exps, once for the gradient) moves more than the floor unless the second read hits
cache; the floor counts one read.

Transcendental ops per element (fused kernels): dense, hard labels: 1 exp in the sums pass
(``e^{s}`` for a negative, ``e^{-s}`` for a positive) + 1 in the gradient pass; soft labels: ~2 + ~2
(both signs carry a weight); the online log-sum-exp's rescaling costs per block, not per element.
Sparse: 1 + 1 (the K positives add 2K per row). The eager port evaluates ``exp`` over both
[B, C + 1] masked copies in ``logsumexp`` and again in its backward: ~4 per element.

"Copy" (``frac_of_copy``) is a measured ``y.copy_(x)`` on the same device moving the same total
bytes as the floor (reads floor/2, writes floor/2): ``frac_of_copy = copy_ms / ms``, 1.0 meaning the
loss and its gradient ran at the device's copy bandwidth.

Targets printed at the end, full mode, largest shape: on CUDA the fused backends at >= 0.9 of a
copy's bandwidth; on CPU ``fusedloss_cpu`` >= 3x the eager port (the focal family's CPU target).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# _harness first: it keeps the Triton interpreter out of this process before triton is imported.
import _harness as H  # noqa: E402
import torch  # noqa: E402


Shape = H.Shape

SHAPES = {
    "cpu": [Shape(4096, 1000), Shape(1024, 8192), Shape(256, 131072)],
    "cuda": [Shape(4096, 1000), Shape(4096, 8192), Shape(2048, 32768), Shape(1024, 131072)],
}
QUICK_SHAPES = {
    "cpu": [Shape(4096, 1000), Shape(1024, 8192)],
    "cuda": [Shape(4096, 1000), Shape(1024, 131072)],
}
DTYPES = {"cpu": [torch.float32], "cuda": [torch.float32, torch.bfloat16]}
POS_RATE = (0.01, 0.05)  # dense: per-row positive rate, uniform in this range
K, K_MIN = 16, 8  # sparse: index slots per row, fewest real positives (the rest is 0 padding)
TARGETS = [
    H.Target("cpu", "fusedloss_cpu", "speedup_vs_eager", 3.0),
    H.Target("cuda", "fusedloss_cuda", "frac_of_copy", 0.9),
    H.Target("cuda", "fusedloss_triton", "frac_of_copy", 0.9),
]
DENSE_OP, SPARSE_OP = "multilabel_ce_fwd", "sparse_multilabel_ce_fwd"


def dense_bytes(mode: str, dtype: torch.dtype) -> int:
    """x and t read (t in the input dtype), plus the gradient written in ``full`` mode."""
    return (3 if mode == "full" else 2) * dtype.itemsize


def sparse_bytes(mode: str, dtype: torch.dtype) -> int:
    """x read, plus the gradient written in ``full`` mode (the B x K indices left out)."""
    return (2 if mode == "full" else 1) * dtype.itemsize


def dense_inputs(shape: Shape, dtype, device):
    """Logits N(0, 1) and hard 0/1 targets in the input dtype, 1-5% positives per row."""
    x = torch.randn(shape.b, shape.c, device=device, dtype=dtype)
    rate = torch.empty(shape.b, 1, device=device).uniform_(*POS_RATE)
    t = (torch.rand(shape.b, shape.c, device=device) < rate).to(dtype)
    return x, t


def sparse_inputs(shape: Shape, dtype, device):
    """Logits N(0, 1) and int64 [B, K] positives: K_MIN..K distinct classes in [1, C), 0-padded."""
    b, c = shape.b, shape.c
    if c - 1 < K:
        raise ValueError(f"C = {c} leaves fewer than K = {K} classes besides the padding class 0")
    x = torch.randn(b, c, device=device, dtype=dtype)
    stride = (c - 1) // K  # one positive per stratum: distinct without a [B, C] sort
    idx = 1 + torch.arange(K, device=device) * stride + torch.randint(0, stride, (b, K),
                                                                      device=device)
    idx = idx.gather(1, torch.rand(b, K, device=device).argsort(dim=1))
    n_pos = torch.randint(K_MIN, K + 1, (b, 1), device=device)
    idx = torch.where(torch.arange(K, device=device) < n_pos, idx, 0)
    return x, idx


def build(device):
    import fusedloss
    from fusedloss.reference import (
        multilabel_categorical_crossentropy_bert4keras as dense_eager,
        sparse_multilabel_categorical_crossentropy_bert4keras as sparse_eager,
    )

    def dense_mean(x, t):
        return dense_eager(x, t).mean()

    def sparse_mean(x, idx):
        return sparse_eager(x, idx, True).mean()

    compiled_dense = H.compiled(dense_mean)
    compiled_sparse = H.compiled(sparse_mean)

    def dense_setup(provider, shape, dtype, *, device):
        x, t = dense_inputs(shape, dtype, device)
        if provider == "torch":
            fn = dense_mean
        elif provider == "torch_compile":
            fn = compiled_dense
        else:
            backend = provider.removeprefix("fusedloss_")

            def fn(x, t):
                return fusedloss.multilabel_categorical_crossentropy(x, t, reduction="mean",
                                                                     backend=backend)
        return H.Case(fn, (x, t))

    def sparse_setup(provider, shape, dtype, *, device):
        x, idx = sparse_inputs(shape, dtype, device)
        if provider == "torch":
            fn = sparse_mean
        elif provider == "torch_compile":
            fn = compiled_sparse
        else:
            backend = provider.removeprefix("fusedloss_")

            def fn(x, idx):
                return fusedloss.sparse_multilabel_categorical_crossentropy(
                    x, idx, mask_zero=True, reduction="mean", backend=backend)
        return H.Case(fn, (x, idx))

    shapes = {str(s): f"{s.b}x{s.c}" for s in SHAPES[device.type] + QUICK_SHAPES[device.type]}
    dense_fused, dense_skipped = H.fused_providers(device, DENSE_OP)
    sparse_fused, sparse_skipped = H.fused_providers(device, SPARSE_OP)
    return [
        H.Family(
            "multilabel_categorical_crossentropy",
            ["torch", "torch_compile"] + dense_fused,
            dense_setup, dense_bytes,
            "hard labels 1 exp (sums) + 1 exp (gradient); soft labels ~2 + ~2; eager port ~4",
            config={"reduction": "mean", "target_dtype": "input", "labels": "hard 0/1",
                    "pos_rate": list(POS_RATE), "shapes": shapes},
            skipped=dense_skipped,
        ),
        H.Family(
            "sparse_multilabel_categorical_crossentropy",
            ["torch", "torch_compile"] + sparse_fused,
            sparse_setup, sparse_bytes,
            f"1 exp (sums) + 1 exp (gradient), + 2K per row; index bytes B*K*8 (K = {K}) "
            "not in the floor",
            config={"reduction": "mean", "mask_zero": True, "K": K, "positives_per_row":
                    [K_MIN, K], "index_dtype": "int64", "shapes": shapes},
            skipped=sparse_skipped,
        ),
    ]


if __name__ == "__main__":
    sys.exit(H.main("multilabel", build, SHAPES, QUICK_SHAPES, DTYPES, TARGETS))
