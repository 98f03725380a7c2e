"""Static guard on the lean pairwise kernels' cost (no GPU, no interpreter).

``benchmarks/sass_pairwise.py`` compiles the float32 PAIRWISE_LOGISTIC SBNZ kernels for sm_90 and
counts the SASS instructions on every path of the pair loop. This test holds the lean kernels
(``fusedloss/triton_kernels/pairwise_sbnz.py``, ``csrc/pairwise/pairwise_sbnz_cuda.cu``) to what
they were built for: at most 36 instructions per pair on any path (Triton 3.9: 26.9 in a FULL tile,
33.0 otherwise; nvcc 13.0: 28.6 and 32.3), 2 of them MUFU, and under half the general kernel's
count. A regression such as ptxas packing predicates into registers again, or a libdevice call
where an FMA polynomial was meant, fails here before any GPU sees it. It is a count of issue
slots, not a timing.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.aot

REPO = Path(__file__).resolve().parents[1]


def test_lean_pairwise_kernels_instructions_per_pair():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "sass_pairwise.py"), "--json"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    rows = {r["kernel"]: r for r in json.loads(proc.stdout.strip().splitlines()[-1])}
    pairs = [("triton lean", "triton general")]
    if shutil.which("nvcc") is not None:   # CI has nvcc; scripts/test.sh fails without it anyway
        pairs.append(("cuda lean", "cuda general"))
    for lean_name, general_name in pairs:
        lean, general = rows[lean_name], rows[general_name]
        assert lean["paths"] >= 2, lean             # the FULL tile and the session-tested one
        assert lean["instructions_per_pair"][1] <= 36, lean
        assert lean["mufu_per_pair"] == [2.0, 2.0], lean
        assert lean["instructions_per_pair"][1] * 2 < general["instructions_per_pair"][0], rows
