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

import datetime
import math
import os
import sys
import time
import traceback
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
DEFAULT_B2_BYTES, MEM_SHARE, MAX_CALL_S = 32, 0.6, {True: 2.0, False: 30.0}
BB_PROVIDERS = (H.EAGER, H.COMPILED)


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
    """(x, target, session_ids, stats): x is what gets differentiated (scores [B] or logits [B, 2])."""
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
    return (x.to(device, dtype), t.to(device), None if g is None else g.to(device), stats)


def make_fn(loss: str, provider: str, compiled: dict):
    """fn(x, target, session_ids) -> 0-d loss for a provider."""
    import fusedloss
    from fusedloss import reference as R

    if provider in BB_PROVIDERS:
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


# --------------------------------------------------------------------------------------------
# Too large / too slow: estimates from the largest smaller B measured


def free_bytes(device) -> int:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    with open("/proc/meminfo") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable"))


def too_large(calib: dict, key, b: int, device, quick: bool) -> str | None:
    """Why a [B, B] provider is not run at ``b`` (None: run it). ``calib[key]`` = (B', MiB, ms)."""
    prev = calib.get(key)
    need = (prev[1] * 2**20 / prev[0] ** 2 if prev else DEFAULT_B2_BYTES) * b * b
    free = free_bytes(device)
    if need > MEM_SHARE * free:
        return (f"the B x B provider needs ~{need / 2**30:.1f} GiB, {free / 2**30:.1f} GiB free "
                f"(limit {MEM_SHARE:.0%})")
    if prev:
        est_s = prev[2] * 1e-3 * (b / prev[0]) ** 2
        if est_s > MAX_CALL_S[quick]:
            return (f"~{est_s:.1f} s per call estimated (O(B^2) from {prev[2]:.1f} ms at "
                    f"B={prev[0]}; limit {MAX_CALL_S[quick]:g} s{' with --quick' if quick else ''})")
    return None


def is_oom(exc: BaseException) -> bool:
    msg = str(exc).lower()
    return isinstance(exc, (torch.OutOfMemoryError, MemoryError)) or "out of memory" in msg \
        or "can't allocate memory" in msg


# --------------------------------------------------------------------------------------------
# Running


def run_row_set(rows, loss, layout, providers, sizes, dtypes, device, args, errors, compiled,
                deadline):
    """Measure every provider at every (dtype, B); appends result dicts to ``rows`` as it goes."""
    name = f"{loss}/{layout}"
    calib = {}  # (provider, dtype) -> (B, peak MiB, ms) of the [B, B] providers
    for dtype in dtypes:
        low = dtype in (torch.float16, torch.bfloat16)
        tol = H.CHECK_TOL_LOW if low else H.CHECK_TOL.get(dtype, 1e-3)
        for b in sizes:
            if time.monotonic() > deadline:
                errors.append(f"{name} {H._dtype_name(dtype)} B={b}: not run (--time-budget "
                              f"{args.time_budget:g} s spent)")
                print(f"   {errors[-1]}", flush=True)
                continue
            x, t, g, stats = make_inputs(loss, layout, b, dtype, device)
            ref, group = None, []  # group: the timed rows of this (dtype, B)
            for provider in providers:
                label = f"{name} {provider} {H._dtype_name(dtype)} B={b}"
                base = {"provider": provider, "dtype": dtype, "B": b, "ms": None, **stats}
                if provider in BB_PROVIDERS:
                    why = too_large(calib, (provider, dtype), b, device, args.quick)
                    if why:
                        print(f".. {label}: not run: {why}", flush=True)
                        rows.append({**base, "check": "not run", "note": f"not run: {why}"})
                        continue
                fn = make_fn(loss, provider, compiled)
                leaf = x.detach().clone().requires_grad_(True)

                def step(fn=fn, leaf=leaf, t=t, g=g):
                    leaf.grad = None
                    out = fn(leaf, t, g)
                    out.backward()
                    return out

                try:
                    loss_v = step().detach()  # warm-up: compiles (torch.compile, Triton JIT)
                    H._sync(device)
                    grad = leaf.grad.detach().clone()
                    if ref is None:
                        ref, check = (provider, loss_v, grad), "ref"
                    else:
                        err = max(H._rel_err(loss_v, ref[1]), H._rel_err(grad, ref[2]))
                        check = "ok" if err <= tol else f"MISMATCH {err:.1e}"
                        if check != "ok":
                            errors.append(f"{label}: result differs from {ref[0]} by {err:.2e} "
                                          f"(tol {tol:g})")
                    del loss_v, grad
                    mem = H.peak_extra_mb(step, device)
                    ms, load = H.timed(step, device, args.min_run_time, (leaf,))
                except KeyboardInterrupt:
                    raise
                except Exception as exc:  # reported in the table; the other providers still run
                    oom = is_oom(exc)
                    what = "OOM" if oom else f"failed: {type(exc).__name__}: {str(exc)[:160]}"
                    print(f".. {label}: {what}", flush=True)
                    rows.append({**base, "check": "OOM" if oom else "failed", "note": what})
                    if not oom:
                        errors.append(f"{label}: {what}")
                        if args.verbose:
                            traceback.print_exc()
                    if device.type == "cuda":
                        torch.cuda.empty_cache()
                    continue
                finally:
                    leaf.grad = None
                if provider in BB_PROVIDERS:
                    calib[(provider, dtype)] = (b, mem, ms[0])
                row = {**base, "ms": ms, "peak_extra_mb": mem, "items_per_s": b / (ms[0] * 1e-3),
                       "gbps": bytes_per_item(loss, dtype) * b / (ms[0] * 1e-3) / 1e9,
                       "check": check, "other_load": load, "ref": ref[0]}
                group.append(row)
                rows.append(row)
                print(f".. {name:<34} {H._dtype_name(dtype):<8} B={b:<8} {provider:<18} "
                      f"{ms[0]:10.3f} ms  {row['items_per_s']:10.3e} items/s  {mem:9.2f} MiB  "
                      f"{check}  other load {H._fmt(load, '.2f')}", flush=True)
            timed_ms = {r["provider"]: r["ms"][0] for r in group}
            for r in group:  # speedups within (dtype, B)
                r["speedup_vs_eager"] = (timed_ms[H.EAGER] / r["ms"][0]
                                         if H.EAGER in timed_ms else None)
                r["speedup_vs_compile"] = (timed_ms[H.COMPILED] / r["ms"][0]
                                           if H.COMPILED in timed_ms else None)


def print_header(loss, layout, providers, skipped, config):
    floor = bytes_per_item(loss, torch.float32)
    transc = {"listwise_rank_loss": "2 exp + 1 log per session",
              "listwise_distill_loss": "2 exp + 2 log, + 1 log per session",
              "jrc_loss": "~6 exp + 1 log"}[loss]
    print(f"\n### {loss}/{layout}  (floor: {floor} B/item full fp32; transcendentals/item "
          f"(fused): {transc}; the B x B providers: ~2 B exp/item)")
    print(f"config: {config}")
    print(f"providers: {', '.join(providers)}")
    for provider, why in skipped.items():
        print(f"skipped {provider}: {why}")
    sys.stdout.flush()


def print_table(rows):
    if not rows:
        print("(no rows)")
        return
    head = (f"{'dtype':<8} {'B':>7} {'sessions':>8} {'provider':<18} {'ms p50':>10} {'p20':>10} "
            f"{'p80':>10} {'items/s':>10} {'GB/s':>8} {'peakMiB':>9} {'xEager':>7} "
            f"{'xCompile':>8} {'busy':>5}  check")
    print(head)
    print("-" * len(head))
    for r in rows:
        lead = (f"{H._dtype_name(r['dtype']):<8} {r['B']:>7} {r['sessions']:>8} "
                f"{r['provider']:<18} ")
        if not r["ms"]:
            print(lead + r["note"])
            continue
        print(lead + f"{r['ms'][0]:>10.3f} {r['ms'][1]:>10.3f} {r['ms'][2]:>10.3f} "
              f"{r['items_per_s']:>10.3e} {r['gbps']:>8.3g} {r['peak_extra_mb']:>9.2f} "
              f"{H._fmt(r.get('speedup_vs_eager'), '.2f'):>7} "
              f"{H._fmt(r.get('speedup_vs_compile'), '.2f'):>8} {H._fmt(r['other_load'], '.2f'):>5}  "
              f"{r['check']}")
    sys.stdout.flush()


def write_csv(path: Path, kernel: str, rows, meta, config) -> Path:
    """Append timed rows in the harness's columns (``x_name`` B; see the module docstring)."""
    import csv
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        with path.open(newline="") as f:
            header = next(csv.reader(f), None)
        if header and tuple(header) != H.CSV_COLUMNS:
            path = path.with_name(f"{path.stem}.{meta['timestamp'].replace(':', '')}.csv")
    new = not path.exists()
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=H.CSV_COLUMNS)
        if new:
            w.writeheader()
        for r in rows:
            if not r["ms"]:
                continue
            cfg = {**config, "dtype": H._dtype_name(r["dtype"]), "sessions": r["sessions"],
                   "mean_session": r["mean_session"], "max_session": r["max_session"],
                   "items_per_s": float(f"{r['items_per_s']:.4g}"), "check_ref": r["ref"]}
            w.writerow({
                "kernel_name": kernel, "kernel_provider": r["provider"],
                "kernel_operation_mode": "full", "metric_name": "speed", "metric_unit": "ms",
                "x_name": "B", "x_label": "items", "x_value": r["B"],
                "y_value_50": f"{r['ms'][0]:.6g}", "y_value_20": f"{r['ms'][1]:.6g}",
                "y_value_80": f"{r['ms'][2]:.6g}",
                "extra_benchmark_config_str": json.dumps(cfg, sort_keys=True),
                "device_name": meta["device_name"], "timestamp": meta["timestamp"],
                "fusedloss_version": meta["fusedloss"], "torch": meta["torch"],
                "triton": meta["triton"], "git_sha": meta["git_sha"],
                "dtype": H._dtype_name(r["dtype"]), "peak_extra_mb": f"{r['peak_extra_mb']:.4g}",
                "gbps": f"{r['gbps']:.4g}", "copy_gbps": "", "frac_of_copy": "",
                "speedup_vs_eager": H._csv_num(r.get("speedup_vs_eager")),
                "speedup_vs_compile": H._csv_num(r.get("speedup_vs_compile")),
                "check": r["check"], "other_load": H._csv_num(r["other_load"]),
            })
    return path


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


def main(argv=None) -> int:
    args = H.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but torch.cuda.is_available() is False "
              f"(torch {torch.__version__}, built with CUDA {torch.version.cuda})")
        return 2
    device = torch.device(args.device)
    H._wait_budget[0] = args.wait_quiet
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.type == "cuda":
        device = torch.device("cuda", torch.cuda.current_device())
    meta = {**H.versions(), "device_name": H.device_name(device), "git_sha": H.git_sha(),
            "timestamp": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}
    extra = {}
    if device.type == "cpu":
        extra = {"num_threads": torch.get_num_threads(),
                 "loadavg_1m": round(os.getloadavg()[0], 2)}
        print(f"device: {meta['device_name']} ({extra['num_threads']} threads, load average "
              f"{extra['loadavg_1m']:.2f} over {os.cpu_count()} cpus)")
    else:
        print(f"device: {meta['device_name']} ({device})")
    print(f"torch {meta['torch']}  triton {meta['triton']}  fusedloss {meta['fusedloss']}  "
          f"git {meta['git_sha']}  TRITON_INTERPRET={os.environ.get('TRITON_INTERPRET', '')!r}")
    deadline = time.monotonic() + args.time_budget if args.time_budget else math.inf

    fused, skipped = H.fused_providers(device, OP)
    skipped["liger"] = "Liger-Kernel has no listwise, listwise-distillation or JRC loss"
    providers = [H.EAGER, H.COMPILED] + fused
    only = {p for p in args.providers.split(",") if p}
    if only:
        providers = [p for p in providers if p in only]
    sizes = (QUICK if args.quick else SIZES)[device.type]
    dev_slug = H.slug(meta["device_name"])
    print(f"\n## {NAME} on {meta['device_name']} ({'quick' if args.quick else 'full'} run; "
          f"lines starting '..' are progress)")
    errors, compiled, written, n_rows, n_busy = [], {}, None, 0, 0
    for loss, layout in ROW_SETS:
        config = config_of(loss, layout, {**extra, "quick": args.quick})
        print_header(loss, layout, providers, skipped, config)
        rows, interrupted = [], False
        try:
            run_row_set(rows, loss, layout, providers, sizes, DTYPES[device.type], device, args,
                        errors, compiled, deadline)
        except KeyboardInterrupt:  # e.g. `timeout -s INT`: stop, report what was measured
            errors.append(f"interrupted during {loss}/{layout}; later rows not run")
            print(f"\n{errors[-1]}", flush=True)
            interrupted = True
        print_table(rows)
        timed_rows = [r for r in rows if r["ms"]]
        n_rows += len(timed_rows)
        n_busy += sum(1 for r in timed_rows
                      if r["other_load"] is not None and r["other_load"] > H.BUSY_CORES)
        if not args.no_save and timed_rows:
            written = write_csv(args.out / f"{dev_slug}.csv", f"{loss}_{layout}", rows, meta,
                                config)
        if interrupted:
            break
    if device.type == "cpu":
        print(f"\n{n_busy} of {n_rows} timings ran while other processes used more than "
              f"{H.BUSY_CORES} cores ('busy' column); {args.wait_quiet - H._wait_budget[0]:.0f} s "
              f"of the {args.wait_quiet:.0f} s --wait-quiet budget were spent waiting")
    if written:
        print(f"\nCSV: {written}")
    if errors:
        print(f"\n{len(errors)} problem(s):")
        for e in errors:
            print(f"  - {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
