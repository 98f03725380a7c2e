"""Benchmark of the pairwise session losses: pairs/s and peak extra memory, forward + backward.

    python benchmarks/bench_pairwise.py [--device cpu|cuda] [--quick] [--no-save]

Loss: ``fusedloss.pairwise_logistic_loss(s, y, session_ids, temperature=0.5)`` (SBNZ), and the
same with ``ohem_ratio=0.5`` (exact OHEM: up to 9 histogram passes for float32 losses, 12 for
float64, + 1 selection pass over the pairs). Labels are graded 0..4; the weight is the default.

Batches: power-law sessions (sizes ``ceil(10 * Pareto(1.2))``, capped at 2,000, shuffled ids), the
recommender case; and "all pairs" (no session ids). Providers, side by side in one process:
``torch`` (the B x B reference, ``fusedloss.reference.pairwise_logistic_loss_reference``),
``torch_compile`` (its ``torch.compile``), ``fusedloss_<backend>`` for every fused backend that runs
on the device (never the Triton interpreter). A provider whose B x B float32 tensors would not fit
(``B^2 x 4 B x 12`` above 60% of free memory) is reported as not run, with the bytes it needs.

Work: a valid pair (y_i > y_j, same session) costs one exp and one log1p in the forward pass and
reuses them for the gradient (focal adds a pow, hinge none): the special-function floor is
2 transcendentals per valid pair, sum_g (n_g^2 - sum_label c^2) / 2 valid pairs. Every fused
backend evaluates each unordered pair of a session once, sum_g n_g (n_g - 1) / 2 evaluations;
the CUDA kernel and Triton under ``torch.use_deterministic_algorithms`` evaluate it from both rows
(each row accumulates its own gradient without atomics), twice that. pairs/s below
counts valid pairs, the number a user's batch contains. For SBNZ (float32, PAIR_WISE / LOGISTIC)
``fusedloss_triton`` and ``fusedloss_cuda`` take the lean kernels (``triton_kernels/pairwise_sbnz.py``,
``csrc/pairwise/pairwise_sbnz_cuda.cu``) and ``fusedloss_cpu`` their base-2 math;
``fusedloss_triton_general`` times the general Triton kernel that OHEM and the other kinds use.
Issue slots per pair of each kernel's loop, without a GPU: ``benchmarks/sass_pairwise.py``. Memory floor: O(B) (sort order, session bounds,
gradient), about 40 B per item.
"""

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as H  # noqa: E402  (keeps the Triton interpreter out of this process)
import torch  # noqa: E402

SIZES = {"cpu": [2**10, 2**12, 2**14, 2**16, 2**18], "cuda": [2**k for k in range(10, 21, 2)]}
QUICK = {"cpu": [2**10, 2**14], "cuda": [2**12, 2**16]}
ALL_PAIRS_MAX = {"cpu": 2**14, "cuda": 2**17}
TEMPERATURE = 0.5


def power_law_sessions(b: int, gen: torch.Generator) -> torch.Tensor:
    sizes, total = [], 0
    while total < b:
        n = min(2000, math.ceil(10 * (1 - torch.rand((), generator=gen).item()) ** (-1 / 1.2)))
        n = min(n, b - total)
        sizes.append(n)
        total += n
    ids = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    perm = torch.randperm(len(sizes), generator=gen) * 7919 + 13  # arbitrary, unsorted ids
    return perm[ids][torch.randperm(b, generator=gen)]


def valid_pairs(labels: torch.Tensor, sessions) -> int:
    if sessions is None:
        sessions = torch.zeros_like(labels)
    _, sess = torch.unique(sessions, return_inverse=True)
    n_g = torch.bincount(sess).double()
    key = sess * 5 + labels
    c = torch.bincount(key).double()
    return int(((n_g**2).sum() - (c**2).sum()).item() / 2)


def reference_fits(b: int, device) -> tuple[bool, float]:
    need = b * b * 4 * 12
    if device.type == "cuda":
        free = torch.cuda.mem_get_info()[0]
    else:
        free = next(int(line.split()[1]) * 1024 for line in open("/proc/meminfo")
                    if line.startswith("MemAvailable"))
    return need < 0.6 * free, need / 2**30


def providers(device):
    import fusedloss

    avail = fusedloss.available_backends(device)
    fused = [f"fusedloss_{b}" for b in ("cpu", "cuda", "triton")
             if not avail[b] and not (b == "triton" and device.type != "cuda")]
    if "fusedloss_triton" in fused:
        fused.append("fusedloss_triton_general")
    return ["torch", "torch_compile"] + fused


def make_fn(provider, ohem, reference, compiled_reference):
    import fusedloss

    kw = dict(temperature=TEMPERATURE, ohem_ratio=0.5 if ohem else 1.0)
    if provider == "torch":
        return lambda s, y, g: reference(s, y, g, **kw)
    if provider == "torch_compile":
        return lambda s, y, g: compiled_reference(s, y, g, **kw)
    if provider == "fusedloss_triton_general":
        from fusedloss.triton_kernels import pairwise_sbnz

        def general(s, y, g):
            pairwise_sbnz.ENABLED = False
            try:
                return fusedloss.pairwise_logistic_loss(s, y, g, backend="triton", **kw)
            finally:
                pairwise_sbnz.ENABLED = True

        return general
    backend = provider.removeprefix("fusedloss_")
    return lambda s, y, g: fusedloss.pairwise_logistic_loss(s, y, g, backend=backend, **kw)


def main(argv=None) -> int:
    args = H.parse_args(argv)
    device = torch.device(args.device)
    H._wait_budget[0] = args.wait_quiet
    if args.threads:
        torch.set_num_threads(args.threads)
    from fusedloss.reference import pairwise_logistic_loss_reference as reference

    compiled_reference = H.compiled(reference)
    meta = {**H.versions(), "device_name": H.device_name(device), "git_sha": H.git_sha()}
    print(f"device: {meta['device_name']}  torch {meta['torch']}  git {meta['git_sha']}")
    rows = []
    gen = torch.Generator().manual_seed(0)
    sizes = (QUICK if args.quick else SIZES)[device.type]
    layouts = [("power_law", b) for b in sizes] + [
        ("all_pairs", b) for b in sizes if b <= ALL_PAIRS_MAX[device.type]]
    for layout, b in layouts:
        y = torch.randint(0, 5, (b,), generator=gen)
        g = power_law_sessions(b, gen) if layout == "power_law" else None
        s = torch.randn(b, generator=gen) * 2
        npairs = valid_pairs(y, g)
        s, y = s.to(device), y.to(device)
        g = None if g is None else g.to(device)
        for ohem in (False, True):
            ref_loss = None
            for provider in providers(device):
                label = f"{layout:<9} B={b:<8} {'ohem' if ohem else 'sbnz'} {provider:<16}"
                if provider in ("torch", "torch_compile"):
                    fits, gib = reference_fits(b, device)
                    if not fits:
                        print(f"{label} not run: the B x B reference needs ~{gib:.0f} GiB")
                        rows.append(dict(layout=layout, B=b, ohem=ohem, provider=provider,
                                         pairs=npairs, ms=None, note=f"needs ~{gib:.0f} GiB"))
                        continue
                fn = make_fn(provider, ohem, reference, compiled_reference)
                leaf = s.clone().requires_grad_()

                def step():
                    leaf.grad = None
                    loss = fn(leaf, y, g)
                    loss.backward()
                    return loss

                try:
                    loss = step().detach()
                    mem = H.peak_extra_mb(step, device)
                    ms, load = H.timed(step, device, args.min_run_time, (leaf,))
                except (RuntimeError, torch.OutOfMemoryError) as exc:
                    print(f"{label} failed: {type(exc).__name__}: {str(exc)[:120]}")
                    rows.append(dict(layout=layout, B=b, ohem=ohem, provider=provider,
                                     pairs=npairs, ms=None, note=type(exc).__name__))
                    continue
                if ref_loss is None:
                    ref_loss = loss
                agree = torch.allclose(loss.double(), ref_loss.double(), rtol=1e-3, atol=1e-6,
                                       equal_nan=True)
                rate = npairs / (ms[0] * 1e-3)
                print(f"{label} {ms[0]:10.2f} ms  {rate:10.3e} pairs/s  {mem:9.1f} MiB  "
                      f"{'ok' if agree else 'MISMATCH'}  (other load {H._fmt(load, '.2f')})",
                      flush=True)
                rows.append(dict(layout=layout, B=b, ohem=ohem, provider=provider, pairs=npairs,
                                 ms=ms[0], pairs_per_s=rate, peak_extra_mb=mem,
                                 check="ok" if agree else "MISMATCH", other_load=load))
    if not args.no_save:
        path = args.out / f"pairwise_{H.slug(meta['device_name'])}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        cols = ["layout", "B", "ohem", "provider", "pairs", "ms", "pairs_per_s", "peak_extra_mb",
                "check", "other_load", "note"]
        new = not path.exists()
        with open(path, "a") as f:
            if new:
                f.write(",".join(cols + list(meta)) + "\n")
            for r in rows:
                f.write(",".join([str(r.get(c, "")) for c in cols] + [str(v) for v in meta.values()])
                        + "\n")
        print(f"CSV: {path}")
    return 1 if any(r.get("check") == "MISMATCH" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
