"""Shared benchmark harness: every provider of a loss family, side by side, in one process.

A family script (``bench_<family>.py``) describes each row set as a :class:`Family`: its providers
(the eager baseline first), a ``setup(provider, size, dtype, *, device)`` factory returning a
:class:`Case`, and the family's memory floor in bytes per element. :func:`main` then, for every
dtype, size and provider, measures two modes:

* ``full``: forward + backward of a scalar loss (the headline). ``input.grad`` is reset to None
  before every call, as ``do_bench(grad_to_none=...)`` does, so no gradient accumulation is timed.
* ``forward``: forward only under ``torch.no_grad()`` on inputs that do not require grad (the
  fused backends then skip the gradient).

Metrics per (row set, mode, dtype, size, provider):

* time: ``triton.testing.do_bench`` quantiles 0.5/0.2/0.8 on CUDA (L2 flushed before each call);
  ``torch.utils.benchmark.Timer.blocked_autorange`` on CPU with torch's intra-op threads (all
  cores unless ``--threads``; recorded as ``num_threads``), the median and the 0.2/0.8 quantiles
  of its per-block times. A warm-up call (which also compiles) precedes every timing.
* peak extra memory: CUDA, ``max_memory_allocated`` after ``reset_peak_memory_stats`` minus what
  was allocated just before the call (the inputs and anything else alive); CPU, the running sum of
  the ``torch.profiler`` ``profile_memory`` allocation events of one call, peak of that sum. The CPU
  figure counts tensors from the c10 CPU allocator only (what eager ops, Inductor's C++ kernels and
  the extension allocate as tensors); malloc inside a kernel is not seen.
  In ``full`` mode both include the gradient the call returns (N elements of the input dtype).
* bandwidth: ``gbps = floor_bytes / time``, where ``floor_bytes = bytes_per_elem(mode, dtype) * N``
  comes from the family's docstring (the bytes a fused single pass must move). It is the same for
  every provider, so it is an effective bandwidth, not the traffic a provider really generates.
  ``frac_of_copy = copy_ms / ms`` where ``copy_ms`` is a measured ``y.copy_(x)`` on the same device
  that moves the same total bytes (reads floor_bytes/2, writes floor_bytes/2).
* speedups: time of the eager provider (``torch``) and of ``torch_compile`` over this provider's.
* check: the provider's loss and gradient against the eager provider's, relative to the largest
  eager value (a benchmark of a wrong result is flagged, not hidden).
* other_load: CPU cores used by other processes while the timing ran (``/proc/stat`` busy time
  minus this process's own CPU time, over the wall time). On a shared CPU machine a timing taken
  while other processes used more than ``BUSY_CORES`` is repeated, up to ``BUSY_RETRIES`` times,
  after waiting for a quiet moment (``--wait-quiet`` seconds in all per run), and the least
  disturbed one is kept; the column says how quiet it was.

Results: a table per row set on stdout, then the targets; rows appended to
``<out>/<device-slug>.csv`` after each row set (Liger's columns plus the device, versions, git sha
and the metrics above) and a PNG per script (if matplotlib imports). The device name comes from
the runtime. ``--no-save`` prints only; ``--time-budget`` stops starting new sizes after a while
(what was skipped is listed and makes the exit status 1).

Benches whose eager providers build [B, B] matrices (bench_metric, bench_session_softmax) describe
each row set as a :class:`SquareRowSet` and run through :func:`main_square` instead: ``full`` mode
only, the row set's own rates (pairs/s, items/s) in place of the copy bandwidth, each provider
checked against the first that ran, and a [B, B] provider not run where its memory or time per
call, estimated from the last smaller size (:func:`too_large`), would be too large.

Never runs the Triton interpreter: ``TRITON_INTERPRET`` is removed from the environment before
Triton is imported, so import this module before ``fusedloss`` or ``triton``.
"""

from __future__ import annotations

import os
import sys

if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
    if "triton" in sys.modules:
        raise RuntimeError("benchmarks never run the Triton interpreter: unset TRITON_INTERPRET "
                           "(triton was imported before benchmarks/_harness.py could unset it)")
    print("note: unsetting TRITON_INTERPRET; benchmarks never run the Triton interpreter")
    os.environ.pop("TRITON_INTERPRET")
# Triton 3.9 warns when this is unset and flips its default in 3.10; pin today's default (fusion on).
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")

import argparse
import contextlib
import csv
import dataclasses
import datetime
import json
import math
import platform
import re
import subprocess
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

MODES = ("full", "forward")
QUANTILES = (0.5, 0.2, 0.8)
EAGER, COMPILED = "torch", "torch_compile"
RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPO_ROOT = Path(__file__).resolve().parent.parent

CSV_COLUMNS = (
    # Liger-Kernel's benchmark CSV columns (gpu_name -> device_name, liger_version -> fusedloss_version)
    "kernel_name", "kernel_provider", "kernel_operation_mode", "metric_name", "metric_unit",
    "x_name", "x_label", "x_value", "y_value_50", "y_value_20", "y_value_80",
    "extra_benchmark_config_str", "device_name", "timestamp", "fusedloss_version",
    # ours
    "torch", "triton", "git_sha", "dtype", "peak_extra_mb", "gbps", "copy_gbps", "frac_of_copy",
    "speedup_vs_eager", "speedup_vs_compile", "check", "other_load",
)

# Largest |provider - eager| / max|eager| accepted for the loss and the gradient.
CHECK_TOL = {torch.float32: 1e-3, torch.float64: 1e-6}
CHECK_TOL_LOW = 5e-2  # fp16/bf16: the eager baseline itself rounds every intermediate
BUSY_CORES, BUSY_RETRIES = 0.25, 4


@dataclasses.dataclass
class Case:
    """What a family's ``setup`` returns: ``fn(*inputs)`` computes a scalar loss.

    ``inputs[i]`` for i in ``grad_argnums`` are differentiated in ``full`` mode (the harness makes
    them leaves that require grad, sharing storage; ``setup`` should create them without grad).
    """

    fn: Callable[..., torch.Tensor]
    inputs: tuple
    grad_argnums: tuple = (0,)


@dataclasses.dataclass
class Family:
    """One row set: a loss and the providers that compute it.

    ``setup(provider, size, dtype, *, device) -> Case``; the same seed for every provider, so they
    all see the same data. ``bytes_per_elem(mode, dtype)`` is the family's memory floor.
    ``skipped`` maps providers left out on this device to why (printed with the results).
    """

    name: str
    providers: Sequence[str]
    setup: Callable[..., Case]
    bytes_per_elem: Callable[[str, torch.dtype], float]
    transcendentals: str
    config: dict = dataclasses.field(default_factory=dict)
    skipped: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Target:
    """A goal printed in the summary: ``provider``'s ``metric`` at the largest size, full mode."""

    device: str
    provider: str
    metric: str  # "speedup_vs_eager", "speedup_vs_compile" or "frac_of_copy"
    at_least: float


class Shape(int):
    """[B, C] as an int: B x C elements, what the harness multiplies, sorts and plots sizes by.

    For families on [B, C] logits (bench_multilabel, bench_softmax). Formatted (tables, progress
    lines) as ``BxC``; ``str()`` (the CSV's ``x_value``) stays the element count, matching the CSV's
    ``x_label`` "elements" (a family's config maps it back to B x C, so keep the counts distinct).
    """

    def __new__(cls, b: int, c: int):
        self = super().__new__(cls, b * c)
        self.b, self.c = b, c
        return self

    def __format__(self, spec: str) -> str:
        try:
            return format(f"{self.b}x{self.c}", spec)
        except ValueError:  # a numeric format spec
            return int.__format__(self, spec)

    __str__ = int.__repr__


FUSED_BACKENDS = ("cpu", "triton", "cuda")


def check_device_memory(shape, dtype: torch.dtype, device: torch.device, copies: int) -> None:
    """Raise MemoryError when a CUDA case would not fit: ``copies`` tensors of the case's element
    count in ``dtype`` (inputs, gradients, the eager reference's kept gradient, eager temporaries,
    the copy probe: each bench counts its own), 12 B per element for the checks' fp32
    temporaries, and 1 GiB for the rest (torch.compile, L2 flush buffer, allocator slack)."""
    if device.type != "cuda":
        return
    need = int(shape) * (copies * dtype.itemsize + 12) + 2**30
    free, _ = torch.cuda.mem_get_info(device)
    free += torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    if need > free:
        raise MemoryError(f"[{shape.b}, {shape.c}] {_dtype_name(dtype)} needs about "
                          f"{need / 2**30:.1f} GiB of device memory, {free / 2**30:.1f} GiB free; "
                          "not run")


def fused_providers(device: torch.device, op: str, backends: Sequence[str] = FUSED_BACKENDS):
    """(providers, skipped) for the fusedloss backends that run ``fusedloss::op`` on ``device``.

    Providers are named ``fusedloss_<backend>``; ``skipped`` maps the others to why. Triton is
    never benchmarked on CPU tensors (that is the interpreter).
    """
    try:
        from fusedloss.ops._backends import not_supported_reasons
    except Exception as exc:  # reported in the output; the eager rows still run
        return [], {f"fusedloss_{b}": f"import fusedloss failed: {type(exc).__name__}: {exc}"
                    for b in backends}
    providers, skipped = [], {}
    for b in backends:
        name = f"fusedloss_{b}"
        reasons = not_supported_reasons(b, device, op)
        if b == "triton" and device.type != "cuda":
            skipped[name] = "Triton runs on CPU tensors only in the interpreter; never benchmarked"
        elif reasons:
            skipped[name] = "; ".join(reasons)
        else:
            providers.append(name)
    return providers, skipped


# --------------------------------------------------------------------------------------------
# Environment


def device_name(device: torch.device) -> str:
    """The runtime's name for the device: the CUDA device name or the CPU model in /proc/cpuinfo."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown-cpu"


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "unknown"


def git_sha() -> str:
    """Short HEAD sha, ``+dirty`` when tracked files differ from it; ``unknown`` outside git."""
    def git(*cmd):
        return subprocess.run(["git", *cmd], cwd=REPO_ROOT, capture_output=True, text=True,
                              timeout=10, check=False)
    try:
        head = git("rev-parse", "--short=12", "HEAD")
        if head.returncode != 0:
            return "unknown"
        dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
        return head.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def versions() -> dict:
    out = {"torch": torch.__version__, "triton": "n/a", "fusedloss": "n/a"}
    try:
        import triton

        out["triton"] = triton.__version__
    except Exception as exc:  # reported, never fatal: the CPU providers do not need Triton
        out["triton"] = f"n/a ({type(exc).__name__})"
    try:
        import fusedloss

        out["fusedloss"] = getattr(fusedloss, "__version__", "unknown")
    except Exception as exc:
        out["fusedloss"] = f"n/a ({type(exc).__name__}: {exc})"
    return out


def compiled(fn: Callable) -> Callable:
    """``torch.compile(fn, dynamic=False)``: one static graph per shape, dtype and grad mode.

    The benchmark sweeps up to 9 sizes x 2 dtypes x 2 modes through one function, past Dynamo's
    default limit of 8 recompiles per code object (after which it silently runs eager).
    """
    cfg = torch._dynamo.config
    cfg.recompile_limit = max(cfg.recompile_limit, 256)
    cfg.accumulated_recompile_limit = max(cfg.accumulated_recompile_limit, 4096)
    return torch.compile(fn, dynamic=False)


# --------------------------------------------------------------------------------------------
# Measurement


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _cpu_busy():
    """(busy seconds of all CPUs, this process's CPU seconds, wall seconds), or None off Linux."""
    try:
        with open("/proc/stat") as f:
            vals = [int(v) for v in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    busy = (sum(vals) - vals[3] - vals[4]) / os.sysconf("SC_CLK_TCK")  # minus idle and iowait
    t = os.times()
    return busy, t.user + t.system, time.monotonic()


def other_load(before, after) -> float | None:
    """Cores' worth of CPU time used by other processes between two ``_cpu_busy()`` snapshots."""
    if before is None or after is None or after[2] <= before[2]:
        return None
    others = (after[0] - before[0]) - (after[1] - before[1])
    return max(0.0, others / (after[2] - before[2]))


_wait_budget = [0.0]  # seconds left for waiting on other processes (set by open_run from --wait-quiet)


def _wait_quiet() -> None:
    """Wait, out of the run's ``--wait-quiet`` budget, for a 0.5 s window of other load <= BUSY_CORES."""
    while _wait_budget[0] > 0:
        before = _cpu_busy()
        time.sleep(0.5)
        _wait_budget[0] -= 0.5
        load = other_load(before, _cpu_busy())
        if load is None or load <= BUSY_CORES:
            return


def timed(step: Callable, device: torch.device, min_run_time: float, grads=()) -> tuple:
    """(ms quantiles, other_load) of the least disturbed of up to ``BUSY_RETRIES`` timings on CPU.

    After a disturbed timing it waits for a quiet moment (``--wait-quiet`` budget) and retries.
    """
    best = None
    for attempt in range(BUSY_RETRIES if device.type == "cpu" else 1):
        if attempt:
            _wait_quiet()
        before = _cpu_busy()
        ms = time_ms(step, device, min_run_time, grads)
        load = other_load(before, _cpu_busy())
        if best is None or (load is not None and (best[1] is None or load < best[1])):
            best = (ms, load)
        if load is None or load <= BUSY_CORES:
            break
    return best


def time_ms(step: Callable, device: torch.device, min_run_time: float, grads=()) -> tuple:
    """(p50, p20, p80) milliseconds of ``step()``."""
    if device.type == "cuda":
        import triton.testing

        # rep: 100 ms (do_bench's default) for --quick, 250 ms otherwise, so that the slowest eager
        # calls (~10-30 ms at 2^28) still give around ten samples for the quantiles.
        rep = max(100, int(250 * min_run_time))
        return tuple(triton.testing.do_bench(step, rep=rep, quantiles=list(QUANTILES),
                                             grad_to_none=list(grads) or None))
    import numpy as np
    from torch.utils import benchmark

    timer = benchmark.Timer(stmt="step()", globals={"step": step},
                            num_threads=torch.get_num_threads())
    m = timer.blocked_autorange(min_run_time=min_run_time)
    p20, p80 = np.quantile(np.asarray(m.times), [0.2, 0.8])
    return m.median * 1e3, float(p20) * 1e3, float(p80) * 1e3


@contextlib.contextmanager
def _quiet_stderr():
    """Silence fd 2 (Kineto prints two USDT lines per profile on stderr)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def peak_extra_mb(step: Callable, device: torch.device) -> float:
    """Peak memory above what was allocated before one ``step()`` call, in MiB (see module doc)."""
    if device.type == "cuda":
        _sync(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        out = step()
        _sync(device)
        peak = torch.cuda.max_memory_allocated(device) - base
        del out
        return peak / 2**20
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out = step()
    del out
    events = [e for e in prof.profiler.kineto_results.events()
              if e.name() == "[memory]" and e.device_type() == DeviceType.CPU]
    events.sort(key=lambda e: e.start_ns())
    cur = peak = 0
    for e in events:
        cur += e.nbytes()
        peak = max(peak, cur)
    return peak / 2**20


def _steps(case: Case, mode: str):
    """(step, grad leaves) for a mode; step() returns the loss."""
    if mode == "forward":
        def step():
            with torch.no_grad():
                return case.fn(*case.inputs)
        return step, []
    args = list(case.inputs)
    for i in case.grad_argnums:
        args[i] = args[i].detach().requires_grad_(True)
    leaves = [args[i] for i in case.grad_argnums]

    def step():
        for leaf in leaves:
            leaf.grad = None
        loss = case.fn(*args)
        loss.backward()
        return loss
    return step, leaves


def _rel_err(got: torch.Tensor, ref: torch.Tensor) -> float:
    if not ref.numel():
        return 0.0
    got, ref = got.detach().float(), ref.detach().float()  # fp32 temporaries: 2^28 elements fit
    scale = ref.abs().max().item()
    diff = (got - ref).abs_().max().item()
    if math.isnan(diff):
        return math.inf
    return diff / scale if scale > 0 else diff


_copy_cache: dict = {}


def copy_ms(total_bytes: int, device: torch.device, min_run_time: float) -> float:
    """Median ms of ``y.copy_(x)`` moving ``total_bytes`` (half read, half written).

    Cached per size; a probe disturbed by other processes is taken again at the next use and the
    less disturbed one kept, so one noisy moment does not skew every row of that size.
    """
    n = max(1, int(total_bytes // 8))  # float32 elements per side
    key = (device, n)
    cached = _copy_cache.get(key)
    if cached is None or (cached[1] is not None and cached[1] > BUSY_CORES):
        x = torch.randn(n, device=device)
        y = torch.empty_like(x)
        y.copy_(x)
        ms, load = timed(lambda: y.copy_(x), device, min_run_time)
        del x, y
        if cached is None or (load is not None and load < cached[1]):
            _copy_cache[key] = (ms[0], load)
    return _copy_cache[key][0]


# --------------------------------------------------------------------------------------------
# Running


def _fmt(v, spec):
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


_deadline = [math.inf]  # time.monotonic() after which no new (dtype, size) group starts
_partial: dict = {}  # rows of the (dtype, size) groups finished so far, for an interrupted run


def check_tol(dtype: torch.dtype) -> float:
    """The largest difference from the reference provider accepted in ``dtype`` (see CHECK_TOL)."""
    low = dtype in (torch.float16, torch.bfloat16)
    return CHECK_TOL_LOW if low else CHECK_TOL.get(dtype, 1e-3)


def out_of_time(what: str, args, errors: list) -> bool:
    """True once ``--time-budget`` is spent, with ``what`` listed as not run."""
    if time.monotonic() <= _deadline[0]:
        return False
    errors.append(f"{what}: not run (--time-budget {args.time_budget:g} s spent)")
    print(f"   {errors[-1]}", flush=True)
    return True


def run_family(fam: Family, device, sizes, dtypes, args, errors: list) -> list[dict]:
    """Measure every provider of ``fam``; returns result dicts (one per mode/dtype/size/provider)."""
    rows = _partial["rows"] = []
    for dtype in dtypes:
        tol = check_tol(dtype)
        for size in sizes:
            if out_of_time(f"{fam.name} {_dtype_name(dtype)} n={size}", args, errors):
                continue
            refs = {}  # mode -> (loss, grad) of the eager provider
            group = []
            for provider in fam.providers:
                label = f"{fam.name} {provider} {_dtype_name(dtype)} n={size}"
                try:
                    torch.manual_seed(0)
                    case = fam.setup(provider, size, dtype, device=device)
                except Exception as exc:
                    errors.append(f"{label}: setup failed: {type(exc).__name__}: {exc}")
                    print(f".. ERROR {errors[-1]}", flush=True)
                    continue
                for mode in MODES:
                    try:
                        step, leaves = _steps(case, mode)
                        loss = step()  # warm-up: compiles (torch.compile, Triton JIT) and checks
                        _sync(device)
                        if loss.dim() != 0:
                            raise ValueError("the harness times scalar losses (use a reduction)")
                        grad = leaves[0].grad if leaves else None
                        if provider == fam.providers[0]:
                            refs[mode] = (loss.detach(), grad)
                            check = "ref"
                        elif mode in refs:
                            rl, rg = refs[mode]
                            err = _rel_err(loss, rl)
                            if grad is not None and rg is not None:
                                err = max(err, _rel_err(grad, rg))
                            check = "ok" if err <= tol else f"MISMATCH {err:.1e}"
                            if check != "ok":
                                errors.append(f"{label} {mode}: result differs from "
                                              f"{fam.providers[0]} by {err:.2e} (tol {tol:g})")
                        else:
                            check = "no ref"
                        del loss, grad
                        for leaf in leaves:
                            leaf.grad = None
                        mem = peak_extra_mb(step, device)
                        for leaf in leaves:
                            leaf.grad = None
                        ms, load = timed(step, device, args.min_run_time, leaves)
                    except Exception as exc:
                        errors.append(f"{label} {mode}: {type(exc).__name__}: {exc}")
                        print(f".. ERROR {errors[-1]}", flush=True)
                        if args.verbose:
                            traceback.print_exc()
                        continue
                    nbytes = fam.bytes_per_elem(mode, dtype) * size
                    c_ms = copy_ms(nbytes, device, args.min_run_time)
                    row = {
                        "kernel": fam.name, "provider": provider, "mode": mode, "dtype": dtype,
                        "size": size, "ms": ms, "peak_extra_mb": mem,
                        "gbps": nbytes / (ms[0] * 1e-3) / 1e9,
                        "copy_gbps": nbytes / (c_ms * 1e-3) / 1e9, "frac_of_copy": c_ms / ms[0],
                        "check": check, "other_load": load,
                    }
                    group.append(row)
                    print(f".. {fam.name:<34} {mode:<7} {_dtype_name(dtype):<8} n={size:<10} "
                          f"{provider:<18} {ms[0]:10.4f} ms  {row['gbps']:8.2f} GB/s  "
                          f"{mem:9.2f} MiB  {check}  other load {_fmt(load, '.2f')}", flush=True)
                del case
            for row in group:  # speedups within (mode, dtype, size)
                base = {r["provider"]: r["ms"][0] for r in group if r["mode"] == row["mode"]}
                row["speedup_vs_eager"] = base[EAGER] / row["ms"][0] if EAGER in base else None
                row["speedup_vs_compile"] = (base[COMPILED] / row["ms"][0]
                                             if COMPILED in base else None)
            rows += group
    return rows


def print_family_header(fam: Family, file=None) -> None:
    print(f"\n### {fam.name}  (floor: {fam.bytes_per_elem('full', torch.float32):g} B/elem "
          f"full fp32, {fam.bytes_per_elem('forward', torch.float32):g} B/elem forward fp32; "
          f"transcendentals/elem: {fam.transcendentals})", file=file)
    if fam.config:
        print(f"config: {json.dumps(fam.config)}", file=file)
    print(f"providers: {', '.join(fam.providers)}", file=file)
    for provider, why in fam.skipped.items():
        print(f"skipped {provider}: {why}", file=file)
    sys.stdout.flush()


def print_table(rows: list[dict], file=None) -> None:
    if not rows:
        print("(no rows)", file=file)
        return
    head = (f"{'mode':<7} {'dtype':<8} {'size':>10} {'provider':<18} {'ms p50':>10} "
            f"{'p20':>10} {'p80':>10} {'GB/s':>8} {'ofCopy':>6} {'peakMiB':>9} {'xEager':>7} "
            f"{'xCompile':>8} {'busy':>5}  check")
    print(head, file=file)
    print("-" * len(head), file=file)
    for r in rows:
        print(f"{r['mode']:<7} {_dtype_name(r['dtype']):<8} {r['size']:>10} {r['provider']:<18} "
              f"{r['ms'][0]:>10.4f} {r['ms'][1]:>10.4f} {r['ms'][2]:>10.4f} {r['gbps']:>8.2f} "
              f"{r['frac_of_copy']:>6.2f} {r['peak_extra_mb']:>9.2f} "
              f"{_fmt(r['speedup_vs_eager'], '>7.2f')} {_fmt(r['speedup_vs_compile'], '>8.2f')} "
              f"{_fmt(r['other_load'], '>5.2f')}  {r['check']}", file=file)


def print_targets(targets: Sequence[Target], device, fams, results, file=None) -> None:
    """Each target at the largest size measured, full mode, per row set and dtype."""
    lines = []
    for fam in fams:
        rows = [r for r in results[fam.name] if r["mode"] == "full"]
        for tgt in targets:
            if tgt.device != device.type:
                continue
            for dtype in sorted({r["dtype"] for r in rows}, key=str):
                cand = [r for r in rows if r["provider"] == tgt.provider and r["dtype"] == dtype]
                if not cand:
                    continue
                r = max(cand, key=lambda r: r["size"])
                v = r[tgt.metric]
                verdict = "n/a" if v is None else ("MET" if v >= tgt.at_least else "NOT MET")
                loads = [x["other_load"] for x in rows if x["dtype"] == dtype
                         and x["size"] == r["size"] and x["other_load"] is not None]
                if loads and max(loads) > BUSY_CORES:
                    verdict += f" [disturbed: other processes used up to {max(loads):.2f} cores]"
                lines.append(f"  {fam.name:<34} {_dtype_name(dtype):<8} n={r['size']:<10} "
                             f"{tgt.provider:<18} {tgt.metric:<18} {_fmt(v, '.2f'):>6} "
                             f"(target >= {tgt.at_least:g}) {verdict}")
    if lines:
        print("\nTargets (full = forward + backward, largest size measured):", file=file)
        print("\n".join(lines), file=file)


def _csv_num(v) -> str:
    return "" if v is None else f"{v:.4g}"


def csv_record(kernel: str, r: dict, meta: dict, cfg: dict, *, mode: str, x_name: str, x_label: str,
               x_value, gbps: str = "", copy_gbps: str = "", frac_of_copy: str = "") -> dict:
    """One CSV row (``CSV_COLUMNS``) of the timed result ``r``; ``cfg`` goes, as JSON, into
    ``extra_benchmark_config_str``."""
    return {
        "kernel_name": kernel, "kernel_provider": r["provider"],
        "kernel_operation_mode": mode, "metric_name": "speed", "metric_unit": "ms",
        "x_name": x_name, "x_label": x_label, "x_value": x_value,
        "y_value_50": f"{r['ms'][0]:.6g}", "y_value_20": f"{r['ms'][1]:.6g}",
        "y_value_80": f"{r['ms'][2]:.6g}",
        "extra_benchmark_config_str": json.dumps(cfg, sort_keys=True),
        "device_name": meta["device_name"], "timestamp": meta["timestamp"],
        "fusedloss_version": meta["fusedloss"], "torch": meta["torch"],
        "triton": meta["triton"], "git_sha": meta["git_sha"],
        "dtype": _dtype_name(r["dtype"]), "peak_extra_mb": f"{r['peak_extra_mb']:.4g}",
        "gbps": gbps, "copy_gbps": copy_gbps, "frac_of_copy": frac_of_copy,
        "speedup_vs_eager": _csv_num(r.get("speedup_vs_eager")),
        "speedup_vs_compile": _csv_num(r.get("speedup_vs_compile")),
        "check": r["check"], "other_load": _csv_num(r["other_load"]),
    }


def append_csv(path: Path, records: list[dict], timestamp: str) -> Path:
    """Append ``records`` (see :func:`csv_record`) to ``path``, with a header if it is new.

    An existing CSV with other columns is left alone: the rows go to a new file named after
    ``timestamp``. Returns the path written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        with path.open(newline="") as f:
            header = next(csv.reader(f), None)
        if header and tuple(header) != CSV_COLUMNS:
            path = path.with_name(f"{path.stem}.{timestamp.replace(':', '')}.csv")
            print(f"note: {path.parent}/{path.name}: existing CSV has other columns; writing "
                  f"a new file")
    new = not path.exists()
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        if new:
            w.writeheader()
        w.writerows(records)
    return path


def write_csv(path: Path, fam: Family, rows: list[dict], meta: dict, extra: dict) -> Path:
    """Append a row set's results (``x_name`` N, its elements); returns the path written."""
    records = [
        csv_record(fam.name, r, meta, {**fam.config, "dtype": _dtype_name(r["dtype"]), **extra},
                   mode=r["mode"], x_name="N", x_label="elements", x_value=r["size"],
                   gbps=f"{r['gbps']:.4g}", copy_gbps=f"{r['copy_gbps']:.4g}",
                   frac_of_copy=f"{r['frac_of_copy']:.4g}")
        for r in rows
    ]
    return append_csv(path, records, meta["timestamp"])


def plot(path: Path, fams: Sequence[Family], results: dict, meta: dict) -> Path | None:
    """GB/s against size, full mode: one panel per (row set, dtype), the copy bandwidth dashed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("note: matplotlib is not importable; no PNG (pip install matplotlib to get one)")
        return None
    dts = sorted({r["dtype"] for fam in fams for r in results[fam.name]}, key=str)
    if not dts:
        return None
    fig, axes = plt.subplots(len(fams), len(dts), figsize=(max(7.0, 5.2 * len(dts)),
                                                            3.6 * len(fams) + 0.4), squeeze=False)
    for row_axes, fam in zip(axes, fams):
        for ax, dt in zip(row_axes, dts):
            rows = [r for r in results[fam.name] if r["mode"] == "full" and r["dtype"] == dt]
            ax.set_title(f"{fam.name}, {_dtype_name(dt)}, forward+backward", fontsize=9)
            if not rows:
                ax.text(0.5, 0.5, "not run", ha="center", va="center", transform=ax.transAxes)
                continue
            for prov in fam.providers:
                pr = sorted((r for r in rows if r["provider"] == prov), key=lambda r: r["size"])
                if pr:
                    ax.plot([r["size"] for r in pr], [r["gbps"] for r in pr], marker="o",
                            label=prov)
            cp = sorted({(r["size"], r["copy_gbps"]) for r in rows})
            if cp:
                ax.plot([s for s, _ in cp], [g for _, g in cp], "k--", label="copy_ (same bytes)")
            ax.set_xscale("log")
            ax.set_yscale("log")  # a CPU's copy runs 10-100x above compute-bound losses
            ax.set_xlabel("elements")
            ax.set_ylabel("GB/s (floor bytes / time)")
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=7)
    threads = f"  {meta['num_threads']} threads" if meta.get("num_threads") else ""
    fig.suptitle(f"{meta['device_name']}{threads}\ntorch {meta['torch']}  triton {meta['triton']}  "
                 f"git {meta['git_sha']}", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--device", choices=("cpu", "cuda"),
                   default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--quick", action="store_true", help="fewer sizes, shorter timing")
    p.add_argument("--out", type=Path, default=RESULTS_DIR, help="results folder (CSV, PNG)")
    p.add_argument("--no-save", action="store_true", help="print only; write no CSV or PNG")
    p.add_argument("--providers", default="", help="comma list: run only these providers")
    p.add_argument("--min-run-time", type=float, default=None,
                   help="CPU seconds per measurement (default 1.0, 0.3 with --quick)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU: torch.set_num_threads for every provider (default: torch's, i.e. "
                        "the cores); recorded as num_threads")
    p.add_argument("--wait-quiet", type=float, default=600.0,
                   help="CPU: seconds this run may spend in all waiting for other processes to "
                        "go quiet before re-timing a disturbed measurement (default 600)")
    p.add_argument("--time-budget", type=float, default=None,
                   help="seconds after which no new (dtype, size) group starts; the rest is "
                        "reported as not run")
    p.add_argument("--verbose", action="store_true", help="print tracebacks of provider errors")
    args = p.parse_args(argv)
    if args.min_run_time is None:
        args.min_run_time = 0.3 if args.quick else 1.0
    return args


def open_run(argv=None):
    """Parse the flags, set up the device and print it: ``(args, device, meta, extra)``, or None
    when ``--device cuda`` has no CUDA (the error printed). ``extra`` holds, on CPU, the thread count
    and the load average at the start; it goes into every CSV row."""
    args = parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but torch.cuda.is_available() is False "
              f"(torch {torch.__version__}, built with CUDA {torch.version.cuda})")
        return None
    device = torch.device(args.device)
    _wait_budget[0] = args.wait_quiet
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.type == "cuda":
        device = torch.device("cuda", torch.cuda.current_device())
    meta = {**versions(), "device_name": device_name(device), "git_sha": git_sha(),
            "timestamp": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}
    extra = {}
    if device.type == "cpu":
        # Other processes share the cores; the 1-minute load average at the start says how much.
        extra = {"num_threads": torch.get_num_threads(),
                 "loadavg_1m": round(os.getloadavg()[0], 2)}
        print(f"device: {meta['device_name']} ({extra['num_threads']} threads, load average "
              f"{extra['loadavg_1m']:.2f} over {os.cpu_count()} cpus)")
    else:
        print(f"device: {meta['device_name']} ({device})")
    print(f"torch {meta['torch']}  triton {meta['triton']}  fusedloss {meta['fusedloss']}  "
          f"git {meta['git_sha']}  TRITON_INTERPRET={os.environ.get('TRITON_INTERPRET', '')!r}")
    if args.time_budget:
        _deadline[0] = time.monotonic() + args.time_budget
    return args, device, meta, extra


def only_providers(args, providers: Sequence[str]) -> list[str]:
    """``providers`` less those that ``--providers`` leaves out."""
    only = {p for p in args.providers.split(",") if p}
    return [p for p in providers if p in only] if only else list(providers)


def print_run_title(name: str, meta: dict, args) -> None:
    print(f"\n## {name} on {meta['device_name']} ({'quick' if args.quick else 'full'} run; "
          f"lines starting '..' are progress)")


def print_busy(n_busy: int, n_timings: int, args) -> None:
    """How many CPU timings other processes disturbed, and how long the run waited for quiet."""
    print(f"\n{n_busy} of {n_timings} timings ran while other processes used more than "
          f"{BUSY_CORES} cores ('busy' column); {args.wait_quiet - _wait_budget[0]:.0f} s of "
          f"the {args.wait_quiet:.0f} s --wait-quiet budget were spent waiting")


def report_problems(errors: Sequence[str]) -> int:
    """Print the problems of the run; returns the exit status (1 if any)."""
    if not errors:
        return 0
    print(f"\n{len(errors)} problem(s):")
    for e in errors:
        print(f"  - {e}")
    return 1


def main(name: str, build: Callable[[torch.device], list], sizes: dict, quick_sizes: dict,
         dtypes: dict, targets: Sequence[Target] = (), argv=None) -> int:
    """Run a family script. ``build(device)`` returns its row sets; returns the exit status."""
    run = open_run(argv)
    if run is None:
        return 2
    args, device, meta, extra = run
    fams = build(device)
    for fam in fams:
        fam.providers = only_providers(args, fam.providers)
    size_list = (quick_sizes if args.quick else sizes)[device.type]
    dev_slug = slug(meta["device_name"])
    errors: list[str] = []
    results = {}
    written = None
    print_run_title(name, meta, args)
    for fam in fams:
        print_family_header(fam)
        try:
            results[fam.name] = run_family(fam, device, size_list, dtypes[device.type], args,
                                           errors)
        except KeyboardInterrupt:  # e.g. `timeout -s INT`: report what was measured, then stop
            errors.append(f"interrupted during {fam.name}; later row sets not run")
            print(f"\n{errors[-1]}", flush=True)
            results[fam.name] = _partial.pop("rows", [])
            fams = fams[: fams.index(fam) + 1]
        print_table(results[fam.name])
        sys.stdout.flush()
        if not args.no_save and results[fam.name]:  # per family: a killed run keeps what it has
            written = write_csv(args.out / f"{dev_slug}.csv", fam, results[fam.name], meta,
                                {**extra, "quick": args.quick})
        if errors and errors[-1].startswith("interrupted"):
            break
    print_targets(targets, device, fams, results)
    timings = [r for fam in fams for r in results[fam.name]]
    busy = [r for r in timings if r["other_load"] is not None and r["other_load"] > BUSY_CORES]
    if device.type == "cpu":
        print_busy(len(busy), len(timings), args)

    if not args.no_save:
        if written:
            print(f"\nCSV: {written}")
        png = plot(args.out / f"{name}_{dev_slug}.png", fams, results, {**meta, **extra})
        if png:
            print(f"PNG: {png}")
    return report_problems(errors)


# --------------------------------------------------------------------------------------------
# Benches whose eager providers build [B, B] matrices (bench_metric, bench_session_softmax)

SQUARE_PROVIDERS = (EAGER, COMPILED)


@dataclasses.dataclass
class SquareLimits:
    """When :func:`too_large` keeps a [B, B] provider from running: it would need more than
    ``mem_share`` of the free memory, or more than ``max_call_s[quick]`` seconds per call.
    ``default_bytes`` per B^2 entry is the memory estimate before any measurement."""

    default_bytes: float
    mem_share: float
    max_call_s: dict


@dataclasses.dataclass
class SquareRowSet:
    """One row set of a bench run by :func:`main_square`: forward + backward of a scalar loss.

    Sizes are B (an int) or a :class:`Shape` [B, D]. ``inputs(size, dtype, device) -> ((x, *rest),
    stats)``, the same data for every provider; ``make_fn(provider) -> fn(x, *rest)``, differentiated
    in ``x``; ``stats`` (a dict) goes into every row. ``figures(row)`` returns the row set's rates for
    a timed row (its ``size``, ``dtype`` and ``ms``), ``rate(row)`` their text in the progress line
    and ``csv_config(row)`` their entries in the CSV's ``extra_benchmark_config_str``.
    """

    name: str
    kernel: str
    title: str
    config: dict
    inputs: Callable
    make_fn: Callable
    figures: Callable[[dict], dict]
    rate: Callable[[dict], str]
    csv_config: Callable[[dict], dict]


def _rows_of(size) -> int:
    """B of a size: a Shape's rows, or the size itself."""
    return size.b if isinstance(size, Shape) else size


def _size_label(size) -> str:
    return f"{size}" if isinstance(size, Shape) else f"B={size}"


def free_bytes(device: torch.device) -> int:
    """Free device memory (CUDA, counting what torch's allocator holds unused) or MemAvailable (CPU)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    with open("/proc/meminfo") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable"))


def is_oom(exc: BaseException) -> bool:
    msg = str(exc).lower()
    return isinstance(exc, (torch.OutOfMemoryError, MemoryError)) or "out of memory" in msg \
        or "can't allocate memory" in msg


def too_large(calib: dict, key, size, device, quick: bool, limits: SquareLimits) -> str | None:
    """Why a [B, B] provider is not run at ``size`` (None: run it).

    Estimated from ``calib[key]`` = (size', peak MiB, ms) at the last smaller size measured: memory
    times (B / B')^2, time times (B / B')^2, and D / D' for a Shape [B, D].
    """
    prev = calib.get(key)
    b = _rows_of(size)
    need = (prev[1] * 2**20 / _rows_of(prev[0]) ** 2 if prev else limits.default_bytes) * b * b
    free = free_bytes(device)
    if need > limits.mem_share * free:
        return (f"the B x B provider needs ~{need / 2**30:.1f} GiB, {free / 2**30:.1f} GiB free "
                f"(limit {limits.mem_share:.0%})")
    if prev:
        est_s, order = prev[2] * 1e-3 * (b / _rows_of(prev[0])) ** 2, "O(B^2)"
        if isinstance(size, Shape):
            est_s, order = est_s * (size.c / prev[0].c), "O(B^2 D)"
        limit = limits.max_call_s[quick]
        if est_s > limit:
            return (f"~{est_s:.1f} s per call estimated ({order} from {prev[2]:.1f} ms at "
                    f"{_size_label(prev[0])}; limit {limit:g} s{' with --quick' if quick else ''})")
    return None


def run_square_row_set(rs: SquareRowSet, rows: list, providers, sizes, dtypes, device, args,
                       limits: SquareLimits, errors: list, name_width: int) -> None:
    """Measure every provider at every (dtype, size); appends result dicts to ``rows`` as it goes.

    A [B, B] provider that :func:`too_large` rules out, runs out of memory or fails gets a row with
    a ``note`` and no ``ms``. Every provider's loss and gradient are checked against the first
    provider that ran at that (dtype, size).
    """
    calib = {}  # (provider, dtype) -> (size, peak MiB, ms) of the [B, B] providers
    for dtype in dtypes:
        tol = check_tol(dtype)
        for size in sizes:
            if out_of_time(f"{rs.name} {_dtype_name(dtype)} {_size_label(size)}", args, errors):
                continue
            (x, *rest), stats = rs.inputs(size, dtype, device)
            ref, group = None, []  # group: the timed rows of this (dtype, size)
            for provider in providers:
                label = f"{rs.name} {provider} {_dtype_name(dtype)} {_size_label(size)}"
                base = {"provider": provider, "dtype": dtype, "size": size, "ms": None, **stats}
                if provider in SQUARE_PROVIDERS:
                    why = too_large(calib, (provider, dtype), size, device, args.quick, limits)
                    if why:
                        print(f".. {label}: not run: {why}", flush=True)
                        rows.append({**base, "check": "not run", "note": f"not run: {why}"})
                        continue
                fn = rs.make_fn(provider)
                leaf = x.detach().clone().requires_grad_(True)

                def step(fn=fn, leaf=leaf, rest=rest):
                    leaf.grad = None
                    out = fn(leaf, *rest)
                    out.backward()
                    return out

                try:
                    loss_v = step().detach()  # warm-up: compiles (torch.compile, Triton JIT)
                    _sync(device)
                    grad = leaf.grad.detach().clone()
                    if ref is None:
                        ref, check = (provider, loss_v, grad), "ref"
                    else:
                        err = max(_rel_err(loss_v, ref[1]), _rel_err(grad, ref[2]))
                        check = "ok" if err <= tol else f"MISMATCH {err:.1e}"
                        if check != "ok":
                            errors.append(f"{label}: result differs from {ref[0]} by {err:.2e} "
                                          f"(tol {tol:g})")
                    del loss_v, grad
                    mem = peak_extra_mb(step, device)
                    ms, load = timed(step, device, args.min_run_time, (leaf,))
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
                if provider in SQUARE_PROVIDERS:
                    calib[(provider, dtype)] = (size, mem, ms[0])
                row = {**base, "ms": ms, "peak_extra_mb": mem}
                row.update(rs.figures(row), check=check, other_load=load, ref=ref[0])
                group.append(row)
                rows.append(row)
                print(f".. {rs.name:<{name_width}} {_dtype_name(dtype):<8} {_size_label(size):<10} "
                      f"{provider:<18} {ms[0]:10.3f} ms  {rs.rate(row)}  {mem:9.2f} MiB  "
                      f"{check}  other load {_fmt(load, '.2f')}", flush=True)
            timed_ms = {r["provider"]: r["ms"][0] for r in group}
            for r in group:  # speedups within (dtype, size)
                r["speedup_vs_eager"] = (timed_ms[EAGER] / r["ms"][0]
                                         if EAGER in timed_ms else None)
                r["speedup_vs_compile"] = (timed_ms[COMPILED] / r["ms"][0]
                                           if COMPILED in timed_ms else None)


def print_square_table(rows: list[dict], lead: Sequence[tuple], figures: Sequence[tuple]) -> None:
    """A row set's results, a line per row: dtype, the ``lead`` columns, provider, the times, the
    ``figures`` columns, peak memory, speedups, other load and check; a row not timed shows its
    note after the provider. Columns are (key, header, width, format spec)."""
    if not rows:
        print("(no rows)")
        return

    def cells(columns, r=None):
        return " ".join(f"{h:>{w}}" if r is None else f"{r[k]:>{w}{spec}}" for k, h, w, spec in columns)

    head = (f"{'dtype':<8} {cells(lead)} {'provider':<18} {'ms p50':>10} {'p20':>10} {'p80':>10} "
            f"{cells(figures)} {'peakMiB':>9} {'xEager':>7} {'xCompile':>8} {'busy':>5}  check")
    print(head)
    print("-" * len(head))
    for r in rows:
        line = f"{_dtype_name(r['dtype']):<8} {cells(lead, r)} {r['provider']:<18} "
        if not r["ms"]:
            print(line + r["note"])
            continue
        print(line + f"{r['ms'][0]:>10.3f} {r['ms'][1]:>10.3f} {r['ms'][2]:>10.3f} "
              f"{cells(figures, r)} {r['peak_extra_mb']:>9.2f} "
              f"{_fmt(r.get('speedup_vs_eager'), '.2f'):>7} "
              f"{_fmt(r.get('speedup_vs_compile'), '.2f'):>8} {_fmt(r['other_load'], '.2f'):>5}  "
              f"{r['check']}")
    sys.stdout.flush()


def print_square_header(rs: SquareRowSet, providers, skipped: dict) -> None:
    print(f"\n### {rs.title}")
    print(f"config: {rs.config}")
    print(f"providers: {', '.join(providers)}")
    for provider, why in skipped.items():
        print(f"skipped {provider}: {why}")
    sys.stdout.flush()


def write_square_csv(path: Path, rs: SquareRowSet, rows: list[dict], meta: dict,
                     x_label: str) -> Path:
    """Append the timed rows of a row set (``x_name`` B, full mode); returns the path written."""
    records = [
        csv_record(rs.kernel, r, meta, {**rs.config, "dtype": _dtype_name(r["dtype"]),
                                        **rs.csv_config(r), "check_ref": r["ref"]},
                   mode="full", x_name="B", x_label=x_label, x_value=_rows_of(r["size"]),
                   gbps=_csv_num(r.get("gbps")))
        for r in rows if r["ms"]
    ]
    return append_csv(path, records, meta["timestamp"])


def main_square(name: str, op: str, build: Callable, sizes: dict, quick_sizes: dict, dtypes: dict,
                *, limits: SquareLimits, print_table: Callable[[list], None], x_label: str,
                name_width: int, skipped: dict | None = None, argv=None) -> int:
    """Run a bench of the [B, B] eager providers against the fused backends of ``fusedloss::op``.

    ``build(device, args, extra) -> list[SquareRowSet]``, ``extra`` to go into each row set's
    config; ``skipped`` adds providers left out on every device (with why); ``print_table(rows)``
    prints a row set's results; ``x_label`` names B in the CSV; ``name_width`` is the row set's
    column in the progress lines. Returns the exit status.
    """
    run = open_run(argv)
    if run is None:
        return 2
    args, device, meta, extra = run
    fused, skip = fused_providers(device, op)
    skip.update(skipped or {})
    providers = only_providers(args, [EAGER, COMPILED] + fused)
    size_list = (quick_sizes if args.quick else sizes)[device.type]
    dev_slug = slug(meta["device_name"])
    print_run_title(name, meta, args)
    errors, written, n_timed, n_busy = [], None, 0, 0
    for rs in build(device, args, extra):
        print_square_header(rs, providers, skip)
        rows, interrupted = [], False
        try:
            run_square_row_set(rs, rows, providers, size_list, dtypes[device.type], device, args,
                               limits, errors, name_width)
        except KeyboardInterrupt:  # e.g. `timeout -s INT`: stop, report what was measured
            errors.append(f"interrupted during {rs.name}; later rows not run")
            print(f"\n{errors[-1]}", flush=True)
            interrupted = True
        print_table(rows)
        timed_rows = [r for r in rows if r["ms"]]
        n_timed += len(timed_rows)
        n_busy += sum(1 for r in timed_rows
                      if r["other_load"] is not None and r["other_load"] > BUSY_CORES)
        if not args.no_save and timed_rows:
            written = write_square_csv(args.out / f"{dev_slug}.csv", rs, timed_rows, meta, x_label)
        if interrupted:
            break
    if device.type == "cpu":
        print_busy(n_busy, n_timed, args)
    if written:
        print(f"\nCSV: {written}")
    return report_problems(errors)
