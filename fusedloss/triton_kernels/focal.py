"""Fused forward+backward kernel of the binary sigmoid family (mirror of csrc/focal/focal_math.h).

For a logit x, target t, weight w and pos_weight pw (formulas in focal_math.h):
    loss = w * a_t * (1 - p_t)^gamma * ce(x, z),      grad = d loss / d x,     v = w * a_t * (1 - p_t)^gamma
One program handles BLOCK consecutive elements of the flattened input. With REDUCE it writes the
block's (sum of loss, count of v != 0) to PARTIAL[pid] instead of the per-element loss; the grad is
written in the same pass when COMPUTE_GRAD. Core ``tl.*`` math only (no libdevice), so the
interpreter and the compiled kernel run the same code.

Memory floor (fp32 x and t, mean, with grad): 4 + 4 bytes read, 4 written = 12 B/element.
Transcendentals per element: exp, log, and exp2 + log2 unless gamma is 0, 1 or 2.
"""

import torch
import triton
import triton.language as tl

MODE_BCE, MODE_TORCHVISION, MODE_EASYREC = 0, 1, 2
GAMMA_ZERO, GAMMA_ONE, GAMMA_TWO, GAMMA_ANY = 0, 1, 2, 3


@triton.jit
def log1p_unit(u):
    # log1p for u in [0, 1] from core ops: log(1 + u) * u / ((1 + u) - 1) cancels the rounding of 1 + u.
    w = 1.0 + u
    d = w - 1.0
    return tl.where(d == 0.0, u, tl.log(w) * (u / tl.where(d == 0.0, 1.0, d)))


@triton.jit
def load_block(X, T, n, IS_FP64: tl.constexpr, BLOCK: tl.constexpr):
    """(pid, offs, mask, x, t) of the program's BLOCK consecutive elements of an elementwise kernel:
    x and t in the compute dtype (fp64 for fp64 input, else fp32), 0 past n."""
    pid = tl.program_id(0).to(tl.int64)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    if IS_FP64:
        x = tl.load(X + offs, mask=mask, other=0).to(tl.float64)
        t = tl.load(T + offs, mask=mask, other=0).to(tl.float64)
    else:
        x = tl.load(X + offs, mask=mask, other=0).to(tl.float32)
        t = tl.load(T + offs, mask=mask, other=0).to(tl.float32)
    return pid, offs, mask, x, t


@triton.jit
def store_block(LOSS, GRAD, PARTIAL, pid, offs, mask, loss, grad, counted, REDUCE: tl.constexpr,
                COMPUTE_GRAD: tl.constexpr):
    """The outputs of an elementwise kernel: with REDUCE the block's (sum of loss, number of lanes
    where counted holds) to PARTIAL[pid], else the loss per element; the grad when COMPUTE_GRAD
    (otherwise unused, and the compiler drops its computation)."""
    if REDUCE:
        tl.store(PARTIAL + 2 * pid, tl.sum(tl.where(mask, loss, 0.0), axis=0))
        tl.store(PARTIAL + 2 * pid + 1, tl.sum(tl.where(mask & counted, 1.0, 0.0), axis=0))
    else:
        tl.store(LOSS + offs, loss.to(LOSS.dtype.element_ty), mask=mask)
    if COMPUTE_GRAD:
        tl.store(GRAD + offs, grad.to(GRAD.dtype.element_ty), mask=mask)


@triton.jit
def modulating_factor(q, dq, gamma, GAMMA_KIND: tl.constexpr):
    """(m, dm/dx) for m = q^gamma and dq = dq/dx (focal_math.h's modulating_pow); GAMMA_KIND:
    0: gamma = 0, 1: gamma = 1, 2: gamma = 2, 3: any other gamma."""
    if GAMMA_KIND == 0:
        m = tl.zeros_like(q) + 1.0
        dm = tl.zeros_like(q)
    elif GAMMA_KIND == 1:
        m = q
        dm = dq
    elif GAMMA_KIND == 2:
        m = q * q
        dm = 2.0 * q * dq
    else:
        pos = q > 0.0
        lq = tl.log2(tl.where(pos, q, 1.0))
        m = tl.where(pos, tl.exp2(gamma * lq), 0.0)
        # q == 0 only where p * pm == 0, so dq == 0 there and the limit of dm is 0.
        dm = tl.where(pos, gamma * tl.exp2((gamma - 1.0) * lq), 0.0) * dq
    return m, dm


@triton.jit
def _binary_focal_fwd_kernel(
    X, T, W, PW, LOSS, GRAD, PARTIAL,
    n, w_div, w_mod, pw_div, pw_mod,
    alpha_arg: tl.float64, gamma_arg: tl.float64, smoothing_arg: tl.float64,
    MODE: tl.constexpr,            # 0 BCE, 1 torchvision focal, 2 EasyRec focal (clipped p in q)
    GAMMA_KIND: tl.constexpr,      # 0: m = 1, 1: m = q, 2: m = q^2, 3: m = q^gamma
    HAS_ALPHA: tl.constexpr,
    HAS_SMOOTHING: tl.constexpr,
    HAS_WEIGHT: tl.constexpr,
    HAS_POS_WEIGHT: tl.constexpr,
    REDUCE: tl.constexpr,          # write block partials instead of the per-element loss
    COMPUTE_GRAD: tl.constexpr,
    IS_FP64: tl.constexpr,         # accumulate in fp64 (fp64 input), else fp32
    BLOCK: tl.constexpr,
):
    pid, offs, mask, x, t = load_block(X, T, n, IS_FP64, BLOCK)
    # Passed as fp64 so that an fp64 kernel sees them unrounded; computed in x's dtype.
    alpha = tl.full([], alpha_arg, x.dtype)
    gamma = tl.full([], gamma_arg, x.dtype)
    smoothing = tl.full([], smoothing_arg, x.dtype)

    e = tl.exp(-tl.abs(x))
    inv = 1.0 / (1.0 + e)
    p = tl.where(x >= 0, inv, e * inv)       # sigmoid(x)
    pm = tl.where(x >= 0, e * inv, inv)      # sigmoid(-x) = 1 - p without cancellation
    if HAS_SMOOTHING:
        z = t * (1.0 - smoothing) + 0.5 * smoothing
    else:
        z = t
    l1p = log1p_unit(e)
    if HAS_POS_WEIGHT:
        pw = tl.load(PW + (offs // pw_div) % pw_mod, mask=mask, other=1.0).to(x.dtype)
        lw = 1.0 + (pw - 1.0) * z
        ce = (1.0 - z) * x + lw * (l1p + tl.maximum(-x, 0.0))   # lw * softplus(-x)
        dce = (1.0 - z) - lw * pm
    else:
        ce = tl.maximum(x, 0.0) - x * z + l1p
        dce = p - z

    if MODE == 0:
        m = tl.full(x.shape, 1.0, x.dtype)
        dm = tl.zeros(x.shape, x.dtype)
    else:
        if MODE == 2:
            # EasyRec clips p to [1e-7, 1 - 1e-7] inside the modulating factor only; the clip
            # blocks d q / d x where it is active.
            # tl.full, not bare literals: tl.maximum(p, 1e-7) would round 1e-7 to fp32 first
            lo = tl.full([], 1e-7, x.dtype)
            hi = tl.full([], 1.0 - 1e-7, x.dtype)
            pq = tl.minimum(tl.maximum(p, lo), hi)
            pmq = tl.minimum(tl.maximum(pm, lo), hi)
            gate = ((p > lo) & (p < hi)).to(x.dtype)   # the same constants as the clip
        else:
            pq = p
            pmq = pm
            gate = tl.full(x.shape, 1.0, x.dtype)
        q = pq * (1.0 - t) + pmq * t                 # 1 - p_t
        dq = gate * (1.0 - 2.0 * t) * p * pm         # d q / d x
        m, dm = modulating_factor(q, dq, gamma, GAMMA_KIND)

    if HAS_ALPHA:
        a = alpha * t + (1.0 - alpha) * (1.0 - t)
    else:
        a = tl.full(x.shape, 1.0, x.dtype)
    if HAS_WEIGHT:
        w = tl.load(W + (offs // w_div) % w_mod, mask=mask, other=0.0).to(x.dtype)
        wa = w * a
    else:
        wa = a
    v = wa * m
    loss = v * ce

    grad = wa * (dm * ce + m * dce)
    store_block(LOSS, GRAD, PARTIAL, pid, offs, mask, loss, grad, v != 0.0, REDUCE, COMPUTE_GRAD)


def launch_config(n: int) -> tuple[int, int]:
    """(BLOCK, num_warps): small launches keep 1024-element blocks, large ones 4096 per program."""
    return (1024, 4) if n < (1 << 20) else (4096, 8)


def elementwise_grid(x: torch.Tensor, block: int, reduce: bool) -> tuple[int, torch.Tensor]:
    """(programs, partial) of an elementwise launch over x in blocks of ``block``: with ``reduce``,
    partial is the zeroed [programs, 2] (sum, count) buffer in the compute dtype, else empty."""
    programs = triton.cdiv(x.numel(), block)
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    return programs, x.new_zeros((max(programs, 1), 2) if reduce else (0,), dtype=acc)


def gamma_kind(gamma: float) -> int:
    return {0.0: GAMMA_ZERO, 1.0: GAMMA_ONE, 2.0: GAMMA_TWO}.get(float(gamma), GAMMA_ANY)


def binary_focal_fwd_triton(x, t, w, pw, w_layout, pw_layout, *, mode, alpha, gamma, smoothing,
                            reduce, compute_grad, loss, grad):
    """Launch over contiguous ``x``/``t`` into preallocated ``loss`` (per element unless ``reduce``)
    and ``grad``; with ``reduce`` returns the [programs, 2] partials (sum of loss, nonzero v count).
    """
    n = x.numel()
    block, num_warps = launch_config(n)
    programs, partial = elementwise_grid(x, block, reduce)
    if n == 0:
        return partial
    if t.dtype == torch.bool:
        t = t.view(torch.uint8)
    _binary_focal_fwd_kernel[(programs,)](
        x, t, w if w is not None else x, pw if pw is not None else x,
        loss, grad, partial,
        n, w_layout[0], w_layout[1], pw_layout[0], pw_layout[1],
        float(alpha), float(gamma), float(smoothing),
        MODE=mode, GAMMA_KIND=gamma_kind(gamma) if mode != MODE_BCE else GAMMA_ZERO,
        HAS_ALPHA=alpha >= 0, HAS_SMOOTHING=smoothing > 0,
        HAS_WEIGHT=w is not None, HAS_POS_WEIGHT=pw is not None,
        REDUCE=reduce, COMPUTE_GRAD=compute_grad, IS_FP64=x.dtype == torch.float64,
        BLOCK=block, num_warps=num_warps,
    )
    return partial


def aot_specializations() -> list[dict]:
    """Signatures compiled ahead of time by tests/test_triton_aot.py (sm_80 and sm_90)."""
    specs = []
    cases = [
        # (input dtype, target dtype, mode, gamma kind, alpha, smoothing, weight, pos_weight, reduce, grad)
        ("fp32", "fp32", MODE_TORCHVISION, GAMMA_TWO, True, False, False, False, True, True),
        ("fp32", "fp32", MODE_TORCHVISION, GAMMA_ANY, True, False, False, False, False, True),
        ("fp16", "fp16", MODE_TORCHVISION, GAMMA_TWO, True, False, False, False, True, True),
        ("bf16", "fp32", MODE_EASYREC, GAMMA_ANY, False, True, True, False, True, True),
        ("bf16", "i64", MODE_EASYREC, GAMMA_TWO, True, False, True, False, False, False),
        ("fp32", "u8", MODE_BCE, GAMMA_ZERO, False, True, True, True, True, True),
        ("fp64", "fp64", MODE_EASYREC, GAMMA_ANY, True, True, True, False, True, True),
    ]
    for xd, td, mode, gk, has_a, has_s, has_w, has_pw, reduce, grad in cases:
        acc = "fp64" if xd == "fp64" else "fp32"
        for block, num_warps in {launch_config(1), launch_config(1 << 24)}:
            specs.append({
                "name": f"binary_focal_{xd}_{td}_m{mode}_g{gk}_r{int(reduce)}_b{block}",
                "fn": _binary_focal_fwd_kernel,
                "signature": {
                    "X": f"*{xd}", "T": f"*{td}", "W": f"*{acc}", "PW": f"*{acc}",
                    "LOSS": f"*{xd}", "GRAD": f"*{xd}", "PARTIAL": f"*{acc}",
                    "n": "i64", "w_div": "i64", "w_mod": "i64", "pw_div": "i64", "pw_mod": "i64",
                    "alpha_arg": "fp64", "gamma_arg": "fp64", "smoothing_arg": "fp64",
                    "MODE": "constexpr", "GAMMA_KIND": "constexpr", "HAS_ALPHA": "constexpr",
                    "HAS_SMOOTHING": "constexpr", "HAS_WEIGHT": "constexpr",
                    "HAS_POS_WEIGHT": "constexpr", "REDUCE": "constexpr", "COMPUTE_GRAD": "constexpr",
                    "IS_FP64": "constexpr", "BLOCK": "constexpr",
                },
                "constexprs": {
                    "MODE": mode, "GAMMA_KIND": gk, "HAS_ALPHA": has_a, "HAS_SMOOTHING": has_s,
                    "HAS_WEIGHT": has_w, "HAS_POS_WEIGHT": has_pw, "REDUCE": reduce,
                    "COMPUTE_GRAD": grad, "IS_FP64": xd == "fp64", "BLOCK": block,
                },
                "num_warps": num_warps,
            })
    return specs
