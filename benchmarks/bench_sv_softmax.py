"""Benchmark of the support-vector-guided softmax with rolled in-batch negatives (EasyRec's
SOFTMAX_CROSS_ENTROPY_WITH_NEGATIVE_MINING, spec 6.1) on [B, D] user and item embeddings.

    python benchmarks/bench_sv_softmax.py [--device cpu|cuda] [--quick] [--out DIR] [--no-save]

Row sets, one per number of negatives K (``sv_softmax_loss_k4``, ``sv_softmax_loss_k16``):
``fusedloss.sv_softmax_loss(u, v, labels, gamma=1.8, margin=0.25, t=2.0, shifts=r, backend=...)``,
forward + backward with **both** embeddings requiring grad. These are the settings of EasyRec's
DropoutNet documentation (``softmax_loss { margin: 0.25 gamma: 1.8 coefficient_of_support_vector: 2
}``). Other settings are EasyRec's defaults: ``embed_normed=False`` (both embeddings are
l2-normalised inside the loss), scalar ``weights=1.0``, and the SUM_BY_NONZERO_WEIGHTS reduction.
Data, all from one seed so that every provider sees the same values:

* ``u`` is N(0, 1) and ``v = u + N(0, 1)``. The positive cosine is then about 0.7 (a trained two-tower
  model), and a negative cosine is about N(0, 1/sqrt(D)). With the margin, about 1e-3 of the
  negatives are hard at D = 64 (c+ - c- < 0), and about 1e-5 at D = 128 (measured at B = 16384,
  K = 16: 8e-4 and 4e-6; the closest negative sits 2e-5 from the boundary). The hard/easy choice is a
  select in every provider, so its rate does not change the work. Keeping negatives away from that
  boundary keeps the checks meaningful: the indicator is a discontinuity of the loss, not
  differentiated. If rounding differences between providers flipped one negative, that row's
  gradient would change by O(1).
* ``labels`` is 1 except for 5% of the rows, drawn at random, which are 0. Those rows are dropped (the
  ``labels > 0`` mask), which exercises that path.
* ``shifts`` ``r`` is int64 [K], ``torch.randint(1, B, (K,))`` from a generator seeded with
  ``1000 + K``. It is fixed per (B, K) and the same for every provider and every call, so all
  providers compute the same loss. EasyRec draws new shifts each step. One cost comes with
  ``shifts=``: ``sv_softmax_loss`` checks that the given shifts lie in [1, B - 1] with a
  ``.any()`` read back on the host. On CUDA that is one device sync per call, and the fused rows'
  times include it. Calls that let the function draw the shifts (``num_negative_samples=K``) skip
  the check.

Providers, side by side in one process on the same data:

* ``torch``: :func:`sv_softmax_easyrec`, EasyRec's TF code ported to eager PyTorch line by line.
  It l2-normalises both embeddings as TF's ``l2_normalize`` does. It builds ``[v] + [torch.roll(v,
  r_k, 0) for k]``, stacks them into [B, K + 1, D], and takes ``torch.bmm`` with ``u`` (Keras
  ``batch_dot``). It then applies the support-vector rewrite with ``torch.where`` and uses
  ``F.cross_entropy`` at class 0. There are two changes, both needed for a fair compile and
  check: the ``labels > 0`` rows are masked with ``torch.where`` and not dropped with boolean
  indexing (``tf.boolean_mask`` has a data-dependent shape that would break the
  ``torch.compile`` graph), and bf16 embeddings are cast to fp32 first (losses are computed in
  fp32 under mixed precision, as Keras's policy does; ``fusedloss.reference`` does the same).
  At startup it is checked against ``fusedloss.reference.sv_softmax_loss_reference`` (the [B, K]
  gather form).
* ``torch_compile``: ``torch.compile`` of that same function (one static graph per shape).
* ``fusedloss_<backend>``: every fused backend that runs ``fusedloss::sv_softmax_fwd`` on the
  device: ``cpu`` on CPU, ``cuda`` and ``triton`` on CUDA (never the Triton interpreter).
* No Liger-Kernel provider: Liger has no support-vector softmax or negative-mining loss.

Checks, before timing: the harness compares every provider's loss and ``u``'s gradient with the
``torch`` provider's. This script also compares ``v``'s gradient (the harness differentiates both
inputs but checks only the first), with the harness's tolerances, relative to the largest eager
value. A mismatch prints a line, is listed at the end, and makes the exit status 1.

Shapes [B, D] (the harness's "size" is the element count N = B x D of one embedding, the CSV's
``x_value``; the config's ``shapes`` maps it back to B x D):

* On CUDA: B in {4096, 65536, 262144} x D in {64, 128}, fp32 and bf16 (``--quick``: 4096 x 64,
  65536 x 128, 262144 x 128).
* On CPU, a 2-core machine: 4096 and 16384 x {64, 128}, plus 65536 x 128 in a default run, fp32
  only. ``--quick`` runs the four smaller shapes: about 30 s of measurement on a quiet machine
  (the slowest call, eager at 16384 x 128, K = 16, takes 0.16 s), plus ``torch.compile``'s first
  compiles (cached by Inductor after that) and any ``--wait-quiet`` waiting.

Memory floor per element of one [B, D] embedding, with s the itemsize (what a fused kernel must
move at least):

* forward + backward (``full``): read u and v once, write grad_u and grad_v once: 4 B D s bytes, so
  **4 s B/elem: 16 at fp32, 8 at bf16**. Left out: the labels (B bytes, as a bool mask), the shifts
  (8 K bytes), and the O(B K) scratch. Pass 1 writes G and G cos ([B, K + 1] fp32 each) and pass 2
  reads them back: 16 (K + 1) B bytes, so 16 (K + 1) / D B/elem. That is 0.6 B/elem at K = 4,
  D = 128 (4% of the fp32 floor), and 4.3 B/elem at K = 16, D = 64 (27% of the fp32 floor, 53% of
  the bf16 floor). The GB/s column therefore understates the traffic most at large K and small D.
* forward only: read u and v: 2 s B/elem, 8 at fp32, 4 at bf16. There is no scratch: pass 1 alone
  runs.

What the fused kernels actually move:

* Pass 1 (row i) reads u_i and the K + 1 rows v_i, v_{i - r_1}, ..., v_{i - r_K} (mod B), and
  writes grad_u_i, the row loss and the scratch.
* Pass 2 (row j) reads v_j and the K + 1 rows u_j, u_{j + r_1}, ... that read it, plus their
  scratch entries, and writes grad_v_j.
* The backends differ in where the norms come from. The ``cpu`` backend runs a pass 0 first: the
  sums of squares of every u_i and v_j ([2, B]), which is one more read of both embeddings
  (2 B D s). Triton computes them in pass 1 from the rows it reads anyway, and stores sum u_i^2
  and sum v_i^2 in the row's scratch for pass 2.

Consecutive rows read consecutive rows (a roll), so each of the K + 1 streams is a sequential,
coalesced sweep: full cache lines, and prefetchable on CPU. Reusing a row across its K + 1 readers
is a different matter. The readers are |r_k - r_k'| rows apart, and random shifts spread them over
the whole batch, so a row is still in cache for its next reader only if the whole embedding fits:
B D s <= the L2 (H100: 50 MB, e.g. B = 65536 x D = 128 fp32 = 32 MiB) or the CPU's last-level
cache. Beyond that, each pass reads the gathered side K + 1 times from DRAM. The total is then about
(2 (K + 2) + 2) B D s bytes, (K + 3) / 2 x the floor: 3.5 x at K = 4 and 9.5 x at K = 16. So
``frac_of_copy`` (computed from the floor bytes) is bounded near 0.29 (K = 4) and 0.11 (K = 16) at
the largest shapes. That bound comes from the access pattern, not from a slow kernel: any schedule
needs each row's K + 1 partners, which are spread over the batch. For that reason no bandwidth
target is set for this family.

Eager traffic is far above the floor. The K rolls and the stack write and read (K + 1) B D s bytes
each, ``bmm`` reads the stack again, and the backward writes a [B, K + 1, D] gradient of the stack,
then splits and un-rolls it into v's gradient (K + 1 adds). That is about 10 (K + 1) B D s bytes,
roughly 2.5 (K + 1) x the floor (~12 x at K = 4, ~40 x at K = 16), plus fp32 casts at bf16.

Work per row (fused kernels):

* Pass 1: (K + 1) dot products over D, and the (K + 1) x D gradient accumulation. Triton also
  computes the K + 2 sums of squares here; the ``cpu`` backend's pass 0 computes 2.
* Pass 2: (K + 1) x D accumulation.

That is about 3 (``cpu``) to 4 (Triton) (K + 1) D FMAs per row, for 4 D s bytes. At K = 16 that is
3-4 FMA per floor byte at fp32 and 6-8.5 at bf16: near an H100's FMA-to-DRAM balance (~10 fp32
FMA/B), and far above a 2-core CPU's, where the loss is compute-bound. Transcendental ops per row:

* exps: K + 1 in Triton, which keeps the exps of the log-sum-exp in registers for the shares.
  2 (K + 1) in the C++ math (``cpu``, ``cuda``), which recomputes them for the gradient's shares;
* 1 log;
* 2 K + 4 square roots and divisions (inverse norms) in both. Pass 1 computes inv(u_i) and the
  K + 1 inv(v_{j_k}); pass 2 computes inv(v_j) and the K + 1 inv(u_i) of its readers. Each comes
  from a stored sum of squares.

The eager code does the same exps and logs through ``log_softmax`` on [B, K + 1] and its backward,
plus 2 B rsqrt for the norms.

"Copy" (``frac_of_copy``) is a measured ``y.copy_(x)`` on the same device moving the same total
bytes as the floor (reads floor/2, writes floor/2): ``frac_of_copy = copy_ms / ms``. 1.0 would mean
the loss and both gradients ran at the device's copy bandwidth, which large B cannot reach (see
above).

Targets: none. The floor is unreachable once an embedding outgrows the cache (above), and the spec
sets no speedup goal for this loss; ``xEager`` and ``xCompile`` in the table compare the providers.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# _harness first: it keeps the Triton interpreter out of this process before triton is imported.
import _harness as H  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

Shape = H.Shape  # [B, D] here: B rows of D-dimensional embeddings

SHAPES = {
    "cpu": [Shape(4096, 64), Shape(4096, 128), Shape(16384, 64), Shape(16384, 128),
            Shape(65536, 128)],
    "cuda": [Shape(b, d) for b in (4096, 65536, 262144) for d in (64, 128)],
}
QUICK_SHAPES = {
    "cpu": [Shape(4096, 64), Shape(4096, 128), Shape(16384, 64), Shape(16384, 128)],
    "cuda": [Shape(4096, 64), Shape(65536, 128), Shape(262144, 128)],
}
DTYPES = {"cpu": [torch.float32], "cuda": [torch.float32, torch.bfloat16]}
KS = (4, 16)
GAMMA, MARGIN, T = 1.8, 0.25, 2.0  # EasyRec's DropoutNet doc: gamma, margin, coefficient_of_support_vector
LABEL_ZERO_FRAC = 0.05  # rows with label 0, dropped by the loss
SHIFT_SEED = 1000  # + K
TARGETS = []  # none: see the module docstring
OP = "sv_softmax_fwd"

GRAD_V_ERRORS: list[str] = []  # mismatches of v's gradient (checked here; the harness checks u's)


def bytes_per_elem(mode: str, dtype: torch.dtype) -> int:
    """Per element of one [B, D] embedding: read u and v, plus write both gradients in ``full``."""
    return (4 if mode == "full" else 2) * dtype.itemsize


def _l2_normalize(a: torch.Tensor) -> torch.Tensor:
    """TF's ``tf.nn.l2_normalize(a, axis=-1)``: ``a * rsqrt(max(sum a^2, 1e-12))``."""
    return a * torch.rsqrt(a.square().sum(-1, keepdim=True).clamp(min=1e-12))


def sv_softmax_easyrec(user_emb, item_emb, labels, shifts, gamma=GAMMA, margin=MARGIN, t=T):
    """EasyRec's ``softmax_loss_with_negative_mining`` written in eager PyTorch the obvious way.

    ``shifts`` is a tuple of Python ints (``torch.roll`` takes ints), the K rolls that EasyRec
    draws with ``tf.random_uniform``. Rows with ``labels <= 0`` are masked, not dropped (a static
    shape for ``torch.compile``). With the scalar weight 1, SUM_BY_NONZERO_WEIGHTS is the mean over
    the kept rows. fp16/bf16 inputs are computed in fp32 and the loss is returned in their dtype.
    """
    dtype = user_emb.dtype
    if dtype in (torch.float16, torch.bfloat16):
        user_emb, item_emb = user_emb.float(), item_emb.float()
    u = _l2_normalize(user_emb)
    v = _l2_normalize(item_emb)
    vectors = [v] + [torch.roll(v, s, 0) for s in shifts]
    all_embeddings = torch.stack(vectors, dim=1)                        # [B, K + 1, D]
    sim = torch.bmm(all_embeddings, u.unsqueeze(2)).squeeze(2)          # [B, K + 1]
    pos = sim[:, :1] - margin
    neg = sim[:, 1:]
    hard = pos - neg < 0                                                # not (pos - neg >= 0)
    neg = torch.where(hard, neg * t + t - 1, neg)
    logits = torch.cat([pos, neg], dim=1)
    if gamma != 1.0:
        logits = logits * gamma
    row_loss = F.cross_entropy(logits, logits.new_zeros(logits.shape[0], dtype=torch.long),
                               reduction="none")
    keep = labels.reshape(-1) > 0
    loss = torch.where(keep, row_loss, 0.0).sum() / keep.sum()
    loss = torch.where(torch.isnan(loss), 0.0, loss)  # EasyRec: no kept row gives 0, not NaN
    return loss.to(dtype)


def make_inputs(shape: Shape, k: int, dtype, device):
    """(u, v, labels, shifts tensor, shifts tuple); see the module docstring."""
    b, d = shape.b, shape.c
    u = torch.randn(b, d, device=device)
    v = u + torch.randn(b, d, device=device)
    labels = (torch.rand(b, device=device) >= LABEL_ZERO_FRAC).float()
    gen = torch.Generator().manual_seed(SHIFT_SEED + k)
    shifts = torch.randint(1, b, (k,), generator=gen)
    return (u.to(dtype), v.to(dtype), labels, shifts.to(device),
            tuple(int(s) for s in shifts.tolist()))


def check_memory(shape: Shape, k: int, dtype, device) -> None:
    """Raise MemoryError when a CUDA case would not fit (an over-estimate of the eager port's needs).

    The eager port holds, in fp32, K rolled copies, the [B, K + 1, D] stack and its gradient and
    the split gradients: about 6 (K + 1) B D x 4 bytes, plus the inputs, the gradients and the
    kept reference gradients (8 B D s), and 1 GiB for the rest.
    """
    if device.type != "cuda":
        return
    n = int(shape)
    need = n * (6 * (k + 1) * 4 + 8 * dtype.itemsize) + 2**30
    free, _ = torch.cuda.mem_get_info(device)
    free += torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    if need > free:
        raise MemoryError(f"[{shape.b}, {shape.c}] K={k} {H._dtype_name(dtype)} needs about "
                          f"{need / 2**30:.1f} GiB of device memory, {free / 2**30:.1f} GiB free; "
                          "not run")


def self_check() -> None:
    """The eager port against ``fusedloss.reference`` (loss and both gradients, fp64, small B)."""
    from fusedloss.reference import sv_softmax_loss_reference

    torch.manual_seed(0)
    b, d, k = 97, 16, 5
    u = torch.randn(b, d, dtype=torch.float64)
    v = (u + torch.randn(b, d, dtype=torch.float64)).requires_grad_(True)
    u.requires_grad_(True)
    labels = (torch.rand(b) >= 0.2).float()
    shifts = torch.randint(1, b, (k,))
    outs = []
    for fn in (lambda: sv_softmax_easyrec(u, v, labels, tuple(shifts.tolist())),
               lambda: sv_softmax_loss_reference(u, v, labels, shifts, False, 1.0, GAMMA, MARGIN, T,
                                                 "sum_by_nonzero_weights")):
        loss = fn()
        gu, gv = torch.autograd.grad(loss, (u, v))
        outs.append((loss.detach(), gu, gv))
    for name, a, r in zip(("loss", "grad_u", "grad_v"), outs[0], outs[1]):
        if not torch.allclose(a, r, rtol=1e-9, atol=1e-12):
            raise AssertionError(f"bench_sv_softmax: the eager port differs from "
                                 f"fusedloss.reference in {name} (max abs diff "
                                 f"{(a - r).abs().max().item():.3e}); fix the benchmark")


def _grad_v_check(provider, fn, inputs, key, dtype, refs) -> None:
    """Compare ``v``'s gradient with the eager provider's (the harness checks the loss and u's)."""
    u, v = (x.detach().requires_grad_(True) for x in inputs[:2])
    loss = fn(u, v, *inputs[2:])
    loss.backward()
    gv = v.grad.detach()
    if provider == "torch":
        refs[key] = gv
        return
    if key not in refs:
        return
    low = dtype in (torch.float16, torch.bfloat16)
    tol = H.CHECK_TOL_LOW if low else H.CHECK_TOL.get(dtype, 1e-3)
    err = H._rel_err(gv, refs[key])
    if err > tol:
        GRAD_V_ERRORS.append(f"{key[0]} {provider} {H._dtype_name(dtype)} n={key[1]}: v's gradient "
                             f"differs from torch's by {err:.2e} (tol {tol:g})")
        print(f".. GRAD_V MISMATCH {GRAD_V_ERRORS[-1]}", flush=True)


def build(device):
    import fusedloss

    self_check()
    compiled = H.compiled(sv_softmax_easyrec)
    fused, skipped = H.fused_providers(device, OP)
    skipped["liger"] = "Liger-Kernel has no support-vector softmax / negative-mining loss"
    shapes = {str(s): f"{s.b}x{s.c}" for s in SHAPES[device.type] + QUICK_SHAPES[device.type]}
    common = {"gamma": GAMMA, "margin": MARGIN, "t": T, "embed_normed": False, "weights": 1.0,
              "reduction": "sum_by_nonzero_weights", "label_zero_frac": LABEL_ZERO_FRAC,
              "data": "u ~ N(0,1), v = u + N(0,1)", "grad": "user_emb and item_emb",
              "shifts": f"torch.randint(1, B, (K,)), generator seed {SHIFT_SEED} + K",
              "shapes": shapes}

    def setup_for(name, k):
        refs = {}  # (family, size) -> v's gradient from the torch provider

        def setup(provider, shape, dtype, *, device):
            check_memory(shape, k, dtype, device)
            u, v, labels, shifts, shift_ints = make_inputs(shape, k, dtype, device)
            if provider in ("torch", "torch_compile"):
                fn = sv_softmax_easyrec if provider == "torch" else compiled
                inputs = (u, v, labels, shift_ints)
            else:
                backend = provider.removeprefix("fusedloss_")

                def fn(u, v, labels, shifts):
                    return fusedloss.sv_softmax_loss(u, v, labels, gamma=GAMMA, margin=MARGIN, t=T,
                                                     shifts=shifts, backend=backend)
                inputs = (u, v, labels, shifts)
            _grad_v_check(provider, fn, inputs, (name, int(shape), dtype), dtype, refs)
            return H.Case(fn, inputs, grad_argnums=(0, 1))
        return setup

    transc = ("per row: K + 1 exp (Triton) or 2 (K + 1) (C++: recomputed for the shares), 1 log, "
              "2 K + 4 sqrt+div (inverse norms); 3-4 (K + 1) D FMA")
    fams = []
    for k in KS:
        name = f"sv_softmax_loss_k{k}"
        fams.append(H.Family(name, ["torch", "torch_compile"] + fused, setup_for(name, k),
                             bytes_per_elem, transc, config={**common, "K": k},
                             skipped=dict(skipped)))
    return fams


if __name__ == "__main__":
    rc = H.main("sv_softmax", build, SHAPES, QUICK_SHAPES, DTYPES, TARGETS)
    if GRAD_V_ERRORS:
        print(f"\n{len(GRAD_V_ERRORS)} v-gradient mismatch(es) (checked by this script):")
        for e in GRAD_V_ERRORS:
            print(f"  - {e}")
        rc = rc or 1
    sys.exit(rc)
