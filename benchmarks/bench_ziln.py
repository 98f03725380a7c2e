"""Benchmark of EasyRec's ZILN_LOSS (zero-inflated lognormal, ``fusedloss.ziln_loss``).

    python benchmarks/bench_ziln.py [--device cpu|cuda] [--quick] [--out DIR] [--no-save]

Inputs: logits [B, 3] ~ N(0, 1) in the dtype (l_p, mu, l_s), labels [B] float32, 60% zeros and the
rest lognormal (exp(N(1, 1)), an LTV-like value); default parameters; forward + backward of the
scalar loss. Sizes are rows B.

Providers, side by side in one process on the same data:

* ``torch``: EasyRec's ``zero_inflated_lognormal_loss`` ported to torch as a user would write it
  (BCE with logits, softplus, clamp, the lognormal log-density, masked sums and means), in the
  logits' dtype;
* ``torch_compile``: ``torch.compile`` of that function;
* ``fusedloss_<backend>``: every fused backend that runs ``fusedloss::ziln_fwd`` on the device.

Memory floor per row (one fused pass: ``fusedloss/ops/ziln.py``): read 3 logits and the label,
write 3 gradients: **28 B/row at fp32 (12 + 4 + 12), 16 B/row at bf16 (6 + 4 + 6)**; forward only
16 and 10. The positive count P, which the gradient needs first, is one more read of the labels
(4 B/row) on the cuda and triton backends. Transcendental ops per row: softplus and sigmoid of l_p
and l_s (2 exp, 2 log1p; the sigmoids reuse the exps), log y and log sigma for positive rows, and
two divisions. "Copy" (``frac_of_copy``) is a measured device copy of the floor's bytes.
"""

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as H  # noqa: E402  (keeps the Triton interpreter out of this process)
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

SIZES = {"cpu": [2**16, 2**18, 2**20], "cuda": [2**20, 2**22, 2**24]}
QUICK_SIZES = {"cpu": [2**16, 2**20], "cuda": [2**20, 2**24]}
DTYPES = {"cpu": [torch.float32], "cuda": [torch.float32, torch.bfloat16]}
TARGETS = [
    H.Target("cpu", "fusedloss_cpu", "speedup_vs_eager", 3.0),
    H.Target("cuda", "fusedloss_cuda", "frac_of_copy", 0.8),
    H.Target("cuda", "fusedloss_triton", "frac_of_copy", 0.8),
]
OP = "ziln_fwd"
POS_FRAC = 0.4


def bytes_per_elem(mode: str, dtype: torch.dtype) -> int:
    """Per row: 3 logits and a float32 label read; 3 gradients written in ``full`` mode."""
    return 3 * dtype.itemsize + 4 + (3 * dtype.itemsize if mode == "full" else 0)


def inputs(b: int, dtype, device):
    logits = torch.randn(b, 3, device=device).to(dtype)
    value = torch.exp(torch.randn(b, device=device) + 1.0)
    labels = torch.where(torch.rand(b, device=device) < POS_FRAC, value, 0.0)
    return logits, labels


def easyrec_ziln(logits, labels, max_sigma=5.0, mu_reg=0.01, sigma_reg=0.01):
    """EasyRec's zero_inflated_lognormal_loss, written in torch as a user would port it."""
    labels = labels.to(logits.dtype).unsqueeze(1)
    positive = (labels > 0).to(logits.dtype)
    cls = F.binary_cross_entropy_with_logits(logits[:, :1], positive)
    mu = logits[:, 1:2]
    sigma = torch.clamp(F.softplus(logits[:, 2:]), math.sqrt(1e-7), max_sigma)
    safe = positive * labels + (1 - positive)
    log_y = torch.log(safe)
    logprob = -log_y - torch.log(sigma) - 0.5 * math.log(2 * math.pi) - 0.5 * ((log_y - mu) / sigma) ** 2
    reg = -(positive * logprob).sum() / (positive.sum() + 1e-8)
    return cls + reg + mu_reg * mu.square().mean() + sigma_reg * logits[:, 2:].square().mean()


def build(device):
    import fusedloss

    fused, skipped = H.fused_providers(device, OP)
    compiled = H.compiled(easyrec_ziln)

    def setup(provider, b, dtype, *, device):
        H.check_device_memory(H.Shape(b, 3), dtype, device, copies=12)
        x, y = inputs(b, dtype, device)
        if provider == "torch":
            fn = easyrec_ziln
        elif provider == "torch_compile":
            fn = compiled
        else:
            backend = provider.removeprefix("fusedloss_")

            def fn(logits, labels):
                return fusedloss.ziln_loss(logits, labels, backend=backend)
        return H.Case(fn, (x, y))

    return [H.Family("ziln_loss", ["torch", "torch_compile"] + fused, setup, bytes_per_elem,
                     "2 exp + 2 log1p (softplus/sigmoid of l_p, l_s), log y and log sigma for "
                     "positives, 2 divisions",
                     config={"labels": f"{POS_FRAC:.0%} exp(N(1, 1)), rest 0", "x_value": "rows B"},
                     skipped={**skipped, "liger": "Liger-Kernel has no ZILN loss"})]


if __name__ == "__main__":
    sys.exit(H.main("ziln", build, SIZES, QUICK_SIZES, DTYPES, TARGETS))
