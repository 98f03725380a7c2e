"""Ahead-of-time compile of every Triton kernel specialization for sm_80 and sm_90 (no GPU needed).

The interpreter replaces ``@triton.jit`` functions by ``InterpretedFunction``s, which cannot be
compiled, so the compile runs in a child process with ``TRITON_INTERPRET`` removed from its
environment (STYLE.md 2.6). The child writes one JSON record per (specialization, arch); the tests
below assert on those records. ``TRITON_CACHE_DIR`` points at a fresh directory so every
specialization really goes through ptxas instead of being read back from an earlier run.
"""

import json
import os
import pkgutil
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytestmark = pytest.mark.aot

REPO = Path(__file__).resolve().parents[1]
# Kernel modules compile in parallel children (each is one process compiling its specs in turn).
AOT_WORKERS = max(1, int(os.environ.get("FUSEDLOSS_AOT_WORKERS", os.cpu_count() or 1)))
ARCHS = (80, 90)
PTX_TARGET = {80: ".target sm_80", 90: ".target sm_90a"}

# Runs in the child. argv[1:]: modules to compile. Prints one JSON list on the last stdout line.
_CHILD = textwrap.dedent(
    r"""
    import importlib, inspect, json, sys, traceback
    import triton
    from triton.backends.compiler import GPUTarget

    records = []
    for modname in sys.argv[1:]:
        try:
            mod = importlib.import_module(modname)
        except Exception:
            records.append({"module": modname, "error": "import failed:\n" + traceback.format_exc()})
            continue
        if not hasattr(mod, "aot_specializations"):
            records.append({"module": modname, "error": "no aot_specializations()"})
            continue
        specs = mod.aot_specializations()
        records.append({"module": modname, "count": len(specs)})
        for spec in specs:
            fn = spec["fn"]
            problems = []
            if not isinstance(fn, triton.runtime.jit.JITFunction):
                problems.append(f"fn is {type(fn).__name__}, not a JITFunction")
            else:
                params = fn.arg_names
                sig, consts = spec["signature"], spec["constexprs"]
                if sorted(sig) != sorted(params):
                    problems.append(f"signature keys {sorted(sig)} != kernel params {sorted(params)}")
                declared = {p.name for p in fn.params if p.is_constexpr}
                marked = {k for k, v in sig.items() if v == "constexpr"}
                if declared != marked:
                    problems.append(f"constexpr params {sorted(declared)} marked {sorted(marked)}")
                if set(consts) != marked:
                    problems.append(f"constexprs {sorted(consts)} != constexpr params {sorted(marked)}")
                # A Python float launched into an unannotated parameter becomes fp32, so an fp64
                # kernel would compute with a rounded parameter: float scalars are annotated
                # tl.float64, or passed as an fp32 hi/lo pair (names ending in _hi / _lo).
                for p in fn.params:
                    ty = sig.get(p.name, "")
                    if p.is_constexpr or ty.startswith("*") or not ty.startswith(("fp", "bf")):
                        continue
                    if p.name.endswith(("_hi", "_lo")):
                        continue
                    if p.annotation_type != "fp64" or ty != "fp64":
                        problems.append(f"float scalar {p.name} is {ty!r} (annotation "
                                        f"{p.annotation!r}), not tl.float64")
            for cc in (80, 90):
                rec = {"module": modname, "name": spec["name"], "cc": cc}
                if problems:
                    rec["error"] = "; ".join(problems)
                    records.append(rec)
                    continue
                options = {k: spec[k] for k in ("num_warps", "num_stages") if k in spec}
                try:
                    src = triton.compiler.ASTSource(
                        fn=fn, signature=spec["signature"], constexprs=spec["constexprs"]
                    )
                    compiled = triton.compile(src, target=GPUTarget("cuda", cc, 32), options=options)
                    asm = compiled.asm
                    rec["stages"] = sorted(asm)
                    rec["cubin_bytes"] = len(asm.get("cubin") or b"")
                    rec["ptx_targets"] = [
                        l.strip() for l in asm.get("ptx", "").splitlines() if l.startswith(".target")
                    ]
                except Exception:
                    rec["error"] = traceback.format_exc()
                records.append(rec)
    print(json.dumps(records))
    """
)


def _run_child(modules, tmp_path, extra_path=None):
    env = dict(os.environ)
    env.pop("TRITON_INTERPRET", None)
    env["TRITON_CACHE_DIR"] = str(tmp_path / "triton_cache")
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    env["PYTHONPATH"] = os.pathsep.join(
        [p for p in (str(extra_path) if extra_path else None, str(REPO), env.get("PYTHONPATH")) if p]
    )
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, *modules],
        env=env,
        cwd=str(tmp_path),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, f"AOT child failed (rc {proc.returncode}):\n{proc.stderr[-6000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _check_records(records, modules):
    """Every module imported, has at least one specialization, and each compiled for both archs."""
    errors = [r for r in records if "error" in r]
    assert not errors, "\n\n".join(
        f"{r['module']} {r.get('name', '')} sm_{r.get('cc', '?')}: {r['error']}" for r in errors
    )
    counts = {r["module"]: r["count"] for r in records if "count" in r}
    assert set(counts) == set(modules)
    for mod, count in counts.items():
        assert count > 0, f"{mod}.aot_specializations() is empty"
    compiled = [r for r in records if "cc" in r]
    assert len(compiled) == len(ARCHS) * sum(counts.values())
    for r in compiled:
        where = f"{r['module']}:{r['name']} sm_{r['cc']}"
        assert "cubin" in r["stages"] and r["cubin_bytes"] > 0, f"{where}: no cubin ({r['stages']})"
        assert PTX_TARGET[r["cc"]] in r["ptx_targets"], f"{where}: ptx targets {r['ptx_targets']}"
    return compiled


# A kernel unrelated to fusedloss, shaped like ours (pointers, ints, floats, typed and bool and dtype
# constexprs), proving the helper itself: if this fails the harness is wrong, not the package.
_TINY_MODULE = textwrap.dedent(
    """
    import triton
    import triton.language as tl

    @triton.jit
    def _scale_kernel(X, Y, n, alpha: tl.float64, BLOCK: tl.constexpr, HAS_ALPHA: tl.constexpr,
                      ACC: tl.constexpr):
        pid = tl.program_id(0).to(tl.int64)
        offs = pid * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n
        x = tl.load(X + offs, mask=mask, other=0).to(ACC)
        if HAS_ALPHA:
            x = x * tl.full([], alpha, ACC)
        tl.store(Y + offs, x.to(Y.dtype.element_ty), mask=mask)

    def aot_specializations():
        out = []
        for dt, acc in (("fp16", tl.float32), ("fp64", tl.float64)):
            out.append({
                "name": f"scale_{dt}",
                "fn": _scale_kernel,
                "signature": {"X": f"*{dt}", "Y": f"*{dt}", "n": "i64", "alpha": "fp64",
                              "BLOCK": "constexpr", "HAS_ALPHA": "constexpr", "ACC": "constexpr"},
                "constexprs": {"BLOCK": 1024, "HAS_ALPHA": True, "ACC": acc},
                "num_warps": 4,
            })
        return out
    """
)


def test_aot_helper_compiles_a_tiny_kernel(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "tiny_aot_kernel.py").write_text(_TINY_MODULE)
    records = _run_child(["tiny_aot_kernel"], tmp_path, extra_path=pkg)
    compiled = _check_records(records, ["tiny_aot_kernel"])
    assert len(compiled) == 4


def test_aot_helper_reports_a_broken_kernel(tmp_path):
    # The check must be able to fail: a kernel that does not type-check gives an error record.
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    broken = _TINY_MODULE.replace("tl.arange(0, BLOCK)", "tl.arange(0, BLOCK) + undefined_name")
    (pkg / "broken_aot_kernel.py").write_text(broken)
    records = _run_child(["broken_aot_kernel"], tmp_path, extra_path=pkg)
    with pytest.raises(AssertionError, match="undefined_name"):
        _check_records(records, ["broken_aot_kernel"])


def test_aot_helper_reports_an_fp32_float_scalar(tmp_path):
    # An unannotated float parameter is launched as fp32: the check names it.
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    fp32 = _TINY_MODULE.replace("alpha: tl.float64", "alpha").replace('"alpha": "fp64"', '"alpha": "fp32"')
    (pkg / "fp32_aot_kernel.py").write_text(fp32)
    records = _run_child(["fp32_aot_kernel"], tmp_path, extra_path=pkg)
    with pytest.raises(AssertionError, match="float scalar alpha is 'fp32'"):
        _check_records(records, ["fp32_aot_kernel"])


def _kernel_modules():
    import fusedloss.triton_kernels as tk

    return [f"fusedloss.triton_kernels.{m.name}" for m in pkgutil.iter_modules(tk.__path__)]


def test_every_kernel_module_is_listed():
    mods = _kernel_modules()
    assert "fusedloss.triton_kernels.focal" in mods, mods


@pytest.fixture(scope="module")
def kernel_module_records(tmp_path_factory):
    """module -> a future of its child's records; every module's child is started at the first use,
    AOT_WORKERS at a time."""
    pool = ThreadPoolExecutor(max_workers=AOT_WORKERS)
    futures = {m: pool.submit(_run_child, [m], tmp_path_factory.mktemp(m.rsplit(".", 1)[1]))
               for m in _kernel_modules()}
    yield futures
    pool.shutdown(wait=True)


@pytest.mark.parametrize("module", _kernel_modules())
def test_aot_compile_sm80_sm90(module, kernel_module_records):
    _check_records(kernel_module_records[module].result(), [module])
