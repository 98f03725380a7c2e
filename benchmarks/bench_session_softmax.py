"""Benchmark of the per-session softmax losses (EasyRec LISTWISE_RANK_LOSS, LISTWISE_DISTILL_LOSS,
JRC_LOSS; spec 4.1-4.3): items/s and peak extra memory, forward + backward.

    python benchmarks/bench_session_softmax.py [--device cpu|cuda] [--quick] [--out DIR] [--no-save]

Row sets (loss / layout), each forward + backward of a scalar loss, the scores (logits) requiring
grad:

* ``listwise_rank_loss/power_law`` and ``/one_session``:
  ``fusedloss.listwise_rank_loss(s, y, session_ids)`` with EasyRec's defaults (raw labels as the
  target, ``temperature=1``, ``weight=1``); ``y`` graded 0..4 (float).
* ``listwise_distill_loss/power_law`` and ``/one_session``:
  ``fusedloss.listwise_distill_loss(s, r, session_ids)``, ``label_clip_max_value=512``; ``r`` a
  teacher's rank position, uniform in 1..1024 (about half are clipped to 512).
* ``jrc_loss/power_law``: ``fusedloss.jrc_loss(z, c, session_ids)`` on [B, 2] logits, labels
  ``c`` in {0, 1} (int64), ``alpha=0.5``, ``same_label_loss=True``, no sample weight. JRC needs
  session ids, so it has no one-session row set.

Layouts: ``power_law`` sessions of ``ceil(25 * Pareto(1.2))`` items, capped at 2,000 (mean about
100, median about 45, the recommender case; shuffled, unsorted ids); ``one_session``:
``session_ids=None`` (the listwise case: one softmax over the whole batch). Every provider sees
the same data (one seed per row set and B). Scores are N(0, 4); JRC logits N(0, 1).

Providers, side by side in one process:

* ``torch``: ``fusedloss.reference.*_reference``, the [B, B] formulation EasyRec uses (row j of a
  [B, B] matrix holds j's whole session, the rest masked with -1e9, then ``log_softmax`` over it).
  O(B^2) time and memory whatever the sessions: about 17 (rank) to 21 (distill, JRC) bytes per
  B^2 entry at fp32, measured. It does not fit at B = 2^16 (about 70 GiB).
* ``torch_compile``: ``torch.compile`` of the same function (one static graph per shape). Inductor
  fuses the masks away for one session (no [B, B] buffer at all, still O(B^2) time); with sessions it
  keeps 4 (listwise) to 8 (JRC) bytes per B^2 entry.
* ``fusedloss_<backend>``: every fused backend that runs ``fusedloss::session_softmax_fwd`` on the
  device: ``cpu`` on CPU, ``cuda`` and ``triton`` on CUDA (never the Triton interpreter). A backend
  that is missing (``fusedloss/_C`` built without its kernel, no Triton) is listed as skipped with
  the reason.
* No Liger-Kernel provider: Liger has no listwise, distillation or JRC loss.

Too large: before running a [B, B] provider at a B, its memory and time per call are estimated
from its measured peak and time at the largest smaller B (times (B / B')^2; before any measurement,
32 bytes per B^2 entry). A provider that would need more than 60% of the free memory (CUDA) or of
MemAvailable (CPU), or more than 2 s (``--quick``) / 30 s per call, is reported as not run, with
the estimate; an out-of-memory error at run time is reported as ``OOM``.

Checks, before timing: every provider's loss and gradient against the first provider that ran at
that (dtype, B) (``torch`` where it fits; otherwise the fused backends are compared with each
other, and a lone provider shows ``ref``), relative to the largest reference value, with the
harness's tolerances. A mismatch is listed at the end and makes the exit status 1.

Sizes: B in {2^12, 2^16, 2^18} on both devices; ``--quick``: {2^12, 2^16}. fp32 on CPU; fp32 and
bf16 on CUDA. The [B, B] providers run at 2^12 only (and ``torch_compile`` of one session at
2^16 in a full CPU run, where it fits in time). ``--device cpu --quick`` takes about 30-60 s on
a 2-core machine, most of it the [B, B] providers at 2^12 and ``torch.compile``'s first compiles.

Memory floor per item, with s the score itemsize (what a fused single pass must move at least):

* listwise: read the score (s), the label (4, float32) and the session id (8, int64), write the
  gradient (s): **2 s + 12 B/item, 20 at fp32** (the one-session rows read no id: 2 s + 4, counted
  as 2 s + 12 all the same, so GB/s stays comparable across layouts);
* JRC: read the two logits (2 s), the label (8, int64) and the session id (8), write the two
  gradients (2 s): **4 s + 16 B/item, 32 at fp32**.

GB/s below is that floor over the time, the same bytes for every provider (an effective bandwidth,
not the traffic a provider really generates). What the fused path moves on top: a stable sort of
the session ids and two ``searchsorted`` for the session bounds (O(B log B); none for one
session), the gathers into session order and the fp32 casts, three sweeps per session over
its items (statistics, the target sums, the row losses and gradients), the [P, B, C] gradient in
the accumulation dtype, and in backward its scale by ``grad_output`` and the scatter back to the
caller's order. The [B, B] providers move O(B^2) bytes: at B = 2^12 that is thousands of times the
floor.

Transcendental ops per item, fused kernels (EasyRec's [B, B] code does about 2 B exps per row:
``log_softmax`` over B masked entries forward and its softmax backward, i.e. O(B^2) in all):

* rank: 2 exp (the online log-sum-exp of the session, then e^(s_i - LSE) for the gradient), plus
  1 log per session; ``label_is_logits`` (not benchmarked) adds 2 exp;
* distill: 2 exp and 2 log (log r_i in the target sum and again for q_i), 1 log per session;
* JRC: about 6 exp and 1 log: 2 for the two-class cross-entropy (sigmoid, softplus), 2 for the two
  online log-sum-exps of the session (columns 0 and 1), 2 for the gradient's softmax weights.

items/s counts the B items of a call (forward + backward). Targets: none (the spec sets no speedup
goal for these losses); xEager and xCompile compare the providers at each size.

Results: a table per row set; rows appended to ``<out>/<device-slug>.csv`` in the harness's
columns (``x_name`` B, ``gbps`` the floor above, ``copy_gbps`` and ``frac_of_copy`` empty, the row
set's settings, items/s and session statistics in ``extra_benchmark_config_str``).
"""

import functools
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# _harness first: it keeps the Triton interpreter out of this process before triton is imported.
import _harness as H  # noqa: E402
import torch  # noqa: E402

NAME = "session_softmax"
OP = "session_softmax_fwd"
SIZES = {"cpu": [2**12, 2**16, 2**18], "cuda": [2**12, 2**16, 2**18]}
QUICK = {"cpu": [2**12, 2**16], "cuda": [2**12, 2**16]}
DTYPES = {"cpu": [torch.float32], "cuda": [torch.float32, torch.bfloat16]}
ROW_SETS = [("listwise_rank_loss", "power_law"), ("listwise_rank_loss", "one_session"),
            ("listwise_distill_loss", "power_law"), ("listwise_distill_loss", "one_session"),
            ("jrc_loss", "power_law")]
SESSION_SCALE, SESSION_ALPHA, SESSION_CAP = 25, 1.2, 2000
DISTILL_RANK_MAX, CLIP_MAX = 1024, 512.0
JRC_ALPHA = 0.5
SEED = 0
# [B, B] providers: bytes per B^2 entry before any measurement, share of free memory they may take,
# seconds per call they may take (quick, full).
LIMITS = H.SquareLimits(default_bytes=32, mem_share=0.6, max_call_s={True: 2.0, False: 30.0})


def bytes_per_item(loss: str, dtype: torch.dtype) -> int:
    """The memory floor of one item, forward + backward (see the module docstring)."""
    s = dtype.itemsize
    return 4 * s + 16 if loss == "jrc_loss" else 2 * s + 12


def power_law_sessions(b: int, gen: torch.Generator) -> torch.Tensor:
    """[B] int64 session ids: sizes ceil(25 Pareto(1.2)) capped at 2,000, arbitrary shuffled ids."""
    sizes, total = [], 0
    while total < b:
        u = 1 - torch.rand((), generator=gen).item()
        n = min(SESSION_CAP, math.ceil(SESSION_SCALE * u ** (-1 / SESSION_ALPHA)), b - total)
        sizes.append(n)
        total += n
    ids = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    perm = torch.randperm(len(sizes), generator=gen) * 7919 + 13
    return perm[ids][torch.randperm(b, generator=gen)]


def make_inputs(loss: str, layout: str, b: int, dtype, device):
    """((x, target, session_ids), stats): x is what gets differentiated (scores [B] or logits
    [B, 2]); stats: the number of sessions, their mean and largest size."""
    gen = torch.Generator().manual_seed(SEED + b)
    g = power_law_sessions(b, gen) if layout == "power_law" else None
    if loss == "jrc_loss":
        x = torch.randn(b, 2, generator=gen)
        t = torch.randint(0, 2, (b,), generator=gen)
    elif loss == "listwise_rank_loss":
        x = torch.randn(b, generator=gen) * 2
        t = torch.randint(0, 5, (b,), generator=gen).float()
    else:
        x = torch.randn(b, generator=gen) * 2
        t = torch.randint(1, DISTILL_RANK_MAX + 1, (b,), generator=gen).float()
    if g is None:
        stats = {"sessions": 1, "mean_session": b, "max_session": b}
    else:
        n = torch.unique(g, return_counts=True)[1]
        stats = {"sessions": int(n.numel()), "mean_session": round(b / n.numel(), 1),
                 "max_session": int(n.max())}
    return (x.to(device, dtype), t.to(device), None if g is None else g.to(device)), stats


def make_fn(loss: str, provider: str, compiled: dict):
    """fn(x, target, session_ids) -> 0-d loss for a provider."""
    import fusedloss
    from fusedloss import reference as R

    if provider in H.SQUARE_PROVIDERS:
        ref = {"listwise_rank_loss": R.listwise_rank_loss_reference,
               "listwise_distill_loss": R.listwise_distill_loss_reference,
               "jrc_loss": R.jrc_loss_reference}[loss]
        if provider == H.COMPILED:
            ref = compiled.setdefault(loss, H.compiled(ref))
        if loss == "listwise_distill_loss":
            return lambda x, t, g: ref(x, t, g, label_clip_max_value=CLIP_MAX)
        if loss == "jrc_loss":
            return lambda x, t, g: ref(x, t, g, alpha=JRC_ALPHA)
        return ref
    backend = provider.removeprefix("fusedloss_")
    if loss == "listwise_distill_loss":
        return lambda x, t, g: fusedloss.listwise_distill_loss(
            x, t, g, label_clip_max_value=CLIP_MAX, backend=backend)
    if loss == "jrc_loss":
        return lambda x, t, g: fusedloss.jrc_loss(x, t, g, alpha=JRC_ALPHA, backend=backend)
    return lambda x, t, g: fusedloss.listwise_rank_loss(x, t, g, backend=backend)


def title(loss, layout) -> str:
    """The row set's header: its memory floor and transcendentals."""
    floor = bytes_per_item(loss, torch.float32)
    transc = {"listwise_rank_loss": "2 exp + 1 log per session",
              "listwise_distill_loss": "2 exp + 2 log, + 1 log per session",
              "jrc_loss": "~6 exp + 1 log"}[loss]
    return (f"{loss}/{layout}  (floor: {floor} B/item full fp32; transcendentals/item "
            f"(fused): {transc}; the B x B providers: ~2 B exp/item)")


def print_table(rows):
    H.print_square_table(rows, lead=[("size", "B", 7, ""), ("sessions", "sessions", 8, "")],
                         figures=[("items_per_s", "items/s", 10, ".3e"), ("gbps", "GB/s", 8, ".3g")])


def config_of(loss, layout, extra):
    cfg = {"layout": layout, "grad": "scores" if loss != "jrc_loss" else "logits [B, 2]", **extra}
    if layout == "power_law":
        cfg["sessions"] = (f"ceil({SESSION_SCALE} * Pareto({SESSION_ALPHA})) capped at "
                           f"{SESSION_CAP}, shuffled ids")
    else:
        cfg["sessions"] = "None (one session)"
    if loss == "listwise_rank_loss":
        cfg.update(labels="graded 0..4 (float)", temperature=1.0, weight=1.0)
    elif loss == "listwise_distill_loss":
        cfg.update(labels=f"rank positions 1..{DISTILL_RANK_MAX}", label_clip_max_value=CLIP_MAX)
    else:
        cfg.update(labels="{0, 1} int64", alpha=JRC_ALPHA, same_label_loss=True, weight=None)
    return cfg


def figures(loss: str, row) -> dict:
    """items/s and the floor's GB/s of a timed row."""
    b, s = row["size"], row["ms"][0] * 1e-3
    return {"items_per_s": b / s, "gbps": bytes_per_item(loss, row["dtype"]) * b / s / 1e9}


def build(device, args, extra) -> list:
    """The row sets of ``ROW_SETS``; the two layouts of a loss share its compiled reference."""
    compiled = {}
    return [H.SquareRowSet(
        name=f"{loss}/{layout}", kernel=f"{loss}_{layout}", title=title(loss, layout),
        config=config_of(loss, layout, {**extra, "quick": args.quick}),
        inputs=functools.partial(make_inputs, loss, layout),
        make_fn=functools.partial(make_fn, loss, compiled=compiled),
        figures=functools.partial(figures, loss),
        rate=lambda r: f"{r['items_per_s']:10.3e} items/s",
        csv_config=lambda r: {"sessions": r["sessions"], "mean_session": r["mean_session"],
                              "max_session": r["max_session"],
                              "items_per_s": float(f"{r['items_per_s']:.4g}")},
    ) for loss, layout in ROW_SETS]


def main(argv=None) -> int:
    return H.main_square(
        NAME, OP, build, SIZES, QUICK, DTYPES, limits=LIMITS, print_table=print_table,
        x_label="items", name_width=34,
        skipped={"liger": "Liger-Kernel has no listwise, listwise-distillation or JRC loss"},
        argv=argv)


if __name__ == "__main__":
    sys.exit(main())
