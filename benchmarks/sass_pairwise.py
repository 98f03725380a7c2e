"""Static cost of the pairwise kernels' inner loops: SASS instructions per pair, without a GPU.

    python benchmarks/sass_pairwise.py [--arch 90] [--no-cuda]

Compiles, for one sm arch (default sm_90), the float32 PAIRWISE_LOGISTIC SBNZ kernels that the
benchmark times (bench_pairwise.py: temperature 0.5, grad, the SYMMETRIC schedule):
    triton lean   fusedloss/triton_kernels/pairwise_sbnz.py, 16 x 32 tiles on one warp (no weight)
    triton general  fusedloss/triton_kernels/pairwise.py, 16 x 32 tiles on 4 warps (its AOT
                  specialization has a weight; the benchmark's has none)
    cuda lean     csrc/pairwise/pairwise_sbnz_cuda.cu, one warp per 16 x 32 tile (no weight)
    cuda general  csrc/pairwise/pairwise_cuda.cu, pairwise_kernel<float, kLogistic, symmetric>
                  (nvcc from PATH; both skipped with --no-cuda or without nvcc)
disassembles them with the cuobjdump that Triton ships, takes the innermost loop that evaluates
pairs (the smallest backward branch whose body holds MUFU.EX2, and for the CUDA kernel the
rotation's SHFL.IDX; pairs are counted by their EX2: two per pair in the lean kernels, one in the
others),
and walks every path from its head to its back edge (a predicated branch forks; CALL, the IEEE
division slow path of the CUDA kernel, and the back edges of loops nested in the body count as
not taken). Per path: instructions / EX2 =
instructions issued per pair, and MUFU per pair. Printed: the cheapest and the dearest path that
evaluates pairs (for the lean kernel: a FULL tile and one with the session test).

What it is and is not: a count of issue slots, not a time. An SM issues at most 4 warp
instructions per clock (128 lanes) and 16 MUFU results per clock, so a loop of n instructions and
m MUFU per pair cannot exceed min(128 / n, 16 / m) pairs per SM and clock; latency, occupancy,
atomics and memory come on top. Only a GPU run (bench_pairwise.py --device cuda) measures time.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _tool(name: str) -> str:
    import triton

    path = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / name
    if not path.exists():
        raise SystemExit(f"{path} not found: this Triton wheel ships no {name}")
    return str(path)


def _triton_cubin(module: str, name: str, arch: int) -> bytes:
    import importlib

    import triton
    from triton.backends.compiler import GPUTarget

    mod = importlib.import_module(module)
    spec = next(s for s in mod.aot_specializations() if s["name"] == name)
    src = triton.compiler.ASTSource(fn=spec["fn"], signature=spec["signature"],
                                    constexprs=spec["constexprs"])
    kernel = triton.compile(src, target=GPUTarget("cuda", arch, 32),
                            options={"num_warps": spec["num_warps"]})
    return kernel.asm["cubin"]


def _cuda_cubin(source: str, arch: int, tmp: Path) -> bytes | None:
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        return None
    out = tmp / (Path(source).stem + ".cubin")
    subprocess.run([nvcc, "-O3", f"-arch=sm_{arch}", "-cubin", "-std=c++17", "-o", str(out),
                    str(ROOT / "csrc" / "pairwise" / source)], check=True)
    return out.read_bytes()


def _functions(sass: str) -> dict[str, list[tuple[int, str]]]:
    """Function name -> [(address, instruction text)]."""
    funcs, cur = {}, None
    for line in sass.splitlines():
        m = re.match(r"\s*Function : (\S+)", line)
        if m:
            cur = funcs.setdefault(m.group(1), [])
            continue
        m = re.match(r"\s*/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;", line)
        if m and cur is not None:
            cur.append((int(m.group(1), 16), m.group(2)))
    return funcs


def _opcode(text: str) -> str:
    return re.sub(r"^@!?U?P[T0-9]\s+", "", text).split()[0]


def _branch(text: str):
    """(target, conditional) of a BRA, else None."""
    m = re.search(r"\bBRA(?:\.\w+)*\s+(?:\S+\s+)?0x([0-9a-f]+)", text)
    if not m or _opcode(text).startswith("BRA.DIV"):
        return None
    return int(m.group(1), 16), text.lstrip().startswith("@")


def loop_paths(ins: list[tuple[int, str]], must_have: str = "MUFU.EX2", max_paths: int = 4096):
    """Paths of the innermost pair loop, the smallest loop whose body holds MUFU.EX2 and the opcode
    must_have: [(instructions, EX2, MUFU)] per head-to-back-edge path."""
    index = {a: k for k, (a, _) in enumerate(ins)}
    loops = []
    for k, (a, t) in enumerate(ins):
        br = _branch(t)
        if br and br[0] <= a and br[0] in index:
            body = ins[index[br[0]]:k + 1]
            ops = {_opcode(x) for _, x in body}
            if "MUFU.EX2" in ops and must_have in ops:
                loops.append((a - br[0], index[br[0]], k))
    if not loops:
        raise ValueError(f"no loop with MUFU.EX2 and {must_have}")
    _, head, back = min(loops)
    paths, stack = [], [(head, 0, 0, 0)]
    while stack and len(paths) < max_paths:
        k, n, ex2, mufu = stack.pop()
        while True:
            if k > back or k < head:       # left the loop (a break): not a pair path
                break
            op = _opcode(ins[k][1])
            n += 1
            ex2 += op == "MUFU.EX2"
            mufu += op.startswith("MUFU")
            if op == "EXIT":
                break
            br = _branch(ins[k][1])
            if k == back:
                paths.append((n, ex2, mufu))
                break
            if br:
                target = index.get(br[0])
                if target is None or (target <= k and not br[1]):
                    break
                if target <= k:            # an inner loop's back edge: counted once, not taken
                    k += 1
                elif br[1]:
                    stack.append((target, n, ex2, mufu))
                    k += 1
                else:
                    k = target
                continue
            k += 1
    return paths


def report(label: str, cubin: bytes, func_pattern: str, tmp: Path, ex2_per_pair: int,
           must_have: str = "MUFU.EX2") -> dict:
    path = tmp / "k.cubin"
    path.write_bytes(cubin)
    sass = subprocess.run([_tool("cuobjdump"), "-sass", str(path)], check=True, capture_output=True,
                          text=True).stdout
    funcs = {n: i for n, i in _functions(sass).items() if re.search(func_pattern, n)}
    if len(funcs) != 1:
        raise ValueError(f"{label}: {len(funcs)} functions match {func_pattern}")
    paths = [p for p in loop_paths(next(iter(funcs.values())), must_have) if p[1] > 0]
    per_pair = sorted((n * ex2_per_pair / ex2, mufu * ex2_per_pair / ex2, ex2 // ex2_per_pair)
                      for n, ex2, mufu in paths)
    lo, hi = per_pair[0], per_pair[-1]
    print(f"{label:16s} {len(paths):5d} paths  instructions / pair {lo[0]:6.1f} .. {hi[0]:6.1f}"
          f"  MUFU / pair {lo[1]:.1f} .. {hi[1]:.1f}  pairs / iteration {lo[2]} .. {hi[2]}"
          f"  issue bound {128 / hi[0]:.1f} .. {128 / lo[0]:.1f} pairs / SM / clock", flush=True)
    return {"kernel": label, "paths": len(paths), "instructions_per_pair": [lo[0], hi[0]],
            "mufu_per_pair": [lo[1], hi[1]]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", type=int, default=90)
    ap.add_argument("--no-cuda", action="store_true")
    ap.add_argument("--json", action="store_true", help="also print the counts as one JSON line")
    args = ap.parse_args()
    os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    print(f"sm_{args.arch}, float32 PAIRWISE_LOGISTIC SBNZ with grad, SYMMETRIC schedule")
    rows = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        rows.append(report("triton lean", _triton_cubin("fusedloss.triton_kernels.pairwise_sbnz",
                                            "pairwise_sbnz_s0_w0_d1", args.arch),
               "_pairwise_sbnz_kernel", tmp, ex2_per_pair=2))
        general = _triton_cubin("fusedloss.triton_kernels.pairwise",
                                "pairwise_fp32_m0_k1_f0_g0_a0_w1_d1_s1_r16c32", args.arch)
        rows.append(report("triton general", general, "_pairwise_kernel", tmp, ex2_per_pair=1))
        lean = None if args.no_cuda else _cuda_cubin("pairwise_sbnz_cuda.cu", args.arch, tmp)
        general = None if args.no_cuda else _cuda_cubin("pairwise_cuda.cu", args.arch, tmp)
        if lean is None or general is None:
            print("cuda             skipped (--no-cuda or no nvcc)")
        else:
            # kShift 0, no weight, grad
            rows.append(report("cuda lean", lean, r"pairwise_sbnz_kernelILi0ELb0ELb1E", tmp,
                               ex2_per_pair=2))
            # its pair loop is the one with the rotation's shuffle (the tile staging loop holds
            # transform_label's exp, dead for this kind but compiled in)
            rows.append(report("cuda general", general, r"pairwise_kernelIfLi1ELb1E", tmp, ex2_per_pair=1,
                               must_have="SHFL.IDX"))
    if args.json:
        print(json.dumps(rows))


if __name__ == "__main__":
    main()
