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
DEFAULT_B2_BYTES, MEM_SHARE, MAX_CALL_S = 64, 0.6, {True: 5.0, False: 60.0}
BB_PROVIDERS = (H.EAGER, H.COMPILED)


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

    if provider in BB_PROVIDERS:
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


# --------------------------------------------------------------------------------------------
# Too large / too slow: estimates from the last smaller shape measured


def free_bytes(device) -> int:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    with open("/proc/meminfo") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable"))


def too_large(calib: dict, key, shape: Shape, device, quick: bool) -> str | None:
    """Why a [B, B] provider is not run at ``shape`` (None: run it). ``calib[key]`` = (shape', MiB,
    ms)."""
    prev = calib.get(key)
    b = shape.b
    need = (prev[1] * 2**20 / prev[0].b ** 2 if prev else DEFAULT_B2_BYTES) * b * b
    free = free_bytes(device)
    if need > MEM_SHARE * free:
        return (f"the B x B provider needs ~{need / 2**30:.1f} GiB, {free / 2**30:.1f} GiB free "
                f"(limit {MEM_SHARE:.0%})")
    if prev:
        est_s = prev[2] * 1e-3 * (b / prev[0].b) ** 2 * (shape.c / prev[0].c)
        if est_s > MAX_CALL_S[quick]:
            return (f"~{est_s:.1f} s per call estimated (O(B^2 D) from {prev[2]:.1f} ms at "
                    f"{prev[0]:}; limit {MAX_CALL_S[quick]:g} s{' with --quick' if quick else ''})")
    return None


def is_oom(exc: BaseException) -> bool:
    msg = str(exc).lower()
    return isinstance(exc, (torch.OutOfMemoryError, MemoryError)) or "out of memory" in msg \
        or "can't allocate memory" in msg


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


# --------------------------------------------------------------------------------------------
# Running


def run_row_set(rows, loss, providers, shapes, dtypes, device, args, errors, compiled, deadline):
    """Measure every provider at every (dtype, shape); appends result dicts to ``rows``."""
    calib = {}  # (provider, dtype) -> (shape, peak MiB, ms) of the [B, B] providers
    for dtype in dtypes:
        low = dtype in (torch.float16, torch.bfloat16)
        tol = H.CHECK_TOL_LOW if low else H.CHECK_TOL.get(dtype, 1e-3)
        for shape in shapes:
            if time.monotonic() > deadline:
                errors.append(f"{loss} {H._dtype_name(dtype)} {shape}: not run (--time-budget "
                              f"{args.time_budget:g} s spent)")
                print(f"   {errors[-1]}", flush=True)
                continue
            e, y = make_inputs(shape, dtype, device)
            ref, group = None, []  # group: the timed rows of this (dtype, shape)
            for provider in providers:
                label = f"{loss} {provider} {H._dtype_name(dtype)} {shape}"
                base = {"provider": provider, "dtype": dtype, "shape": shape, "ms": None}
                if provider in BB_PROVIDERS:
                    why = too_large(calib, (provider, dtype), shape, device, args.quick)
                    if why:
                        print(f".. {label}: not run: {why}", flush=True)
                        rows.append({**base, "check": "not run", "note": f"not run: {why}"})
                        continue
                fn = make_fn(loss, provider, compiled)
                leaf = e.detach().clone().requires_grad_(True)

                def step(fn=fn, leaf=leaf, y=y):
                    leaf.grad = None
                    out = fn(leaf, y)
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
                    calib[(provider, dtype)] = (shape, mem, ms[0])
                b = shape.b
                tflops = flops(shape) / (ms[0] * 1e-3) / 1e12
                mm = mm_tflops(shape, dtype, device, args.min_run_time)
                row = {**base, "ms": ms, "peak_extra_mb": mem,
                       "pairs_per_s": b * (b - 1) / (ms[0] * 1e-3), "tflops": tflops,
                       "mm_tflops": mm, "of_mm": tflops / mm, "check": check, "other_load": load,
                       "ref": ref[0]}
                group.append(row)
                rows.append(row)
                print(f".. {loss:<24} {H._dtype_name(dtype):<8} {shape:<10} {provider:<18} "
                      f"{ms[0]:10.3f} ms  {row['pairs_per_s']:10.3e} pairs/s  {tflops:8.4f} "
                      f"TFLOP/s  {mem:9.2f} MiB  {check}  other load {H._fmt(load, '.2f')}",
                      flush=True)
            timed_ms = {r["provider"]: r["ms"][0] for r in group}
            for r in group:  # speedups within (dtype, shape)
                r["speedup_vs_eager"] = (timed_ms[H.EAGER] / r["ms"][0]
                                         if H.EAGER in timed_ms else None)
                r["speedup_vs_compile"] = (timed_ms[H.COMPILED] / r["ms"][0]
                                           if H.COMPILED in timed_ms else None)


def print_header(loss, providers, skipped, config):
    print(f"\n### {loss}  (floor: compute, 6 B^2 D FLOP forward + backward (2 passes x 2 B^2 D, "
          f"+ 2 B^2 D in pass 2); transcendentals/ordered pair (fused): 3 exp)")
    print(f"config: {config}")
    print(f"providers: {', '.join(providers)}")
    for provider, why in skipped.items():
        print(f"skipped {provider}: {why}")
    sys.stdout.flush()


def print_table(rows):
    if not rows:
        print("(no rows)")
        return
    head = (f"{'dtype':<8} {'BxD':>9} {'provider':<18} {'ms p50':>10} {'p20':>10} {'p80':>10} "
            f"{'pairs/s':>10} {'TFLOP/s':>8} {'mmTF/s':>7} {'ofMM':>5} {'peakMiB':>9} "
            f"{'xEager':>7} {'xCompile':>8} {'busy':>5}  check")
    print(head)
    print("-" * len(head))
    for r in rows:
        lead = f"{H._dtype_name(r['dtype']):<8} {r['shape']:>9} {r['provider']:<18} "
        if not r["ms"]:
            print(lead + r["note"])
            continue
        print(lead + f"{r['ms'][0]:>10.3f} {r['ms'][1]:>10.3f} {r['ms'][2]:>10.3f} "
              f"{r['pairs_per_s']:>10.3e} {r['tflops']:>8.4f} {r['mm_tflops']:>7.3f} "
              f"{r['of_mm']:>5.2f} {r['peak_extra_mb']:>9.2f} "
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
            cfg = {**config, "dtype": H._dtype_name(r["dtype"]), "D": r["shape"].c,
                   "pairs_per_s": float(f"{r['pairs_per_s']:.4g}"),
                   "tflops": float(f"{r['tflops']:.4g}"), "mm_tflops": float(f"{r['mm_tflops']:.4g}"),
                   "check_ref": r["ref"]}
            w.writerow({
                "kernel_name": kernel, "kernel_provider": r["provider"],
                "kernel_operation_mode": "full", "metric_name": "speed", "metric_unit": "ms",
                "x_name": "B", "x_label": "rows", "x_value": r["shape"].b,
                "y_value_50": f"{r['ms'][0]:.6g}", "y_value_20": f"{r['ms'][1]:.6g}",
                "y_value_80": f"{r['ms'][2]:.6g}",
                "extra_benchmark_config_str": json.dumps(cfg, sort_keys=True),
                "device_name": meta["device_name"], "timestamp": meta["timestamp"],
                "fusedloss_version": meta["fusedloss"], "torch": meta["torch"],
                "triton": meta["triton"], "git_sha": meta["git_sha"],
                "dtype": H._dtype_name(r["dtype"]), "peak_extra_mb": f"{r['peak_extra_mb']:.4g}",
                "gbps": "", "copy_gbps": "", "frac_of_copy": "",
                "speedup_vs_eager": H._csv_num(r.get("speedup_vs_eager")),
                "speedup_vs_compile": H._csv_num(r.get("speedup_vs_compile")),
                "check": r["check"], "other_load": H._csv_num(r["other_load"]),
            })
    return path


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
    skipped["liger"] = "Liger-Kernel has no circle or multi-similarity loss"
    providers = [H.EAGER, H.COMPILED] + fused
    only = {p for p in args.providers.split(",") if p}
    if only:
        providers = [p for p in providers if p in only]
    shapes = (QUICK if args.quick else SHAPES)[device.type]
    dev_slug = H.slug(meta["device_name"])
    print(f"\n## {NAME} on {meta['device_name']} ({'quick' if args.quick else 'full'} run; "
          f"lines starting '..' are progress)")
    errors, compiled, written, n_rows, n_busy = [], {}, None, 0, 0
    for loss in LOSSES:
        params = CIRCLE if loss == "circle_loss" else MULTI_SIMILARITY
        config = {**params, "embed_normed": False, "session_ids": None,
                  "labels": f"uniform over B / {CLASS_DIV} classes",
                  "data": "e = c[y] + N(0, 1), c ~ N(0, 1)", "grad": "embeddings", **extra,
                  "quick": args.quick}
        print_header(loss, providers, skipped, config)
        rows, interrupted = [], False
        try:
            run_row_set(rows, loss, providers, shapes, DTYPES[device.type], device, args, errors,
                        compiled, deadline)
        except KeyboardInterrupt:  # e.g. `timeout -s INT`: stop, report what was measured
            errors.append(f"interrupted during {loss}; later rows not run")
            print(f"\n{errors[-1]}", flush=True)
            interrupted = True
        print_table(rows)
        timed_rows = [r for r in rows if r["ms"]]
        n_rows += len(timed_rows)
        n_busy += sum(1 for r in timed_rows
                      if r["other_load"] is not None and r["other_load"] > H.BUSY_CORES)
        if not args.no_save and timed_rows:
            written = write_csv(args.out / f"{dev_slug}.csv", loss, rows, meta, config)
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
