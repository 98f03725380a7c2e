"""Fused forward+backward kernel of the pointwise family (mirror of csrc/pointwise/pointwise_math.h).

For a prediction x, target y, weight w and the kind's parameter a (formulas and kind numbers in
pointwise_math.h), with d = x - y:
    loss = w * l_kind(x, y, a),      grad = w * d l_kind / d x,      counted: w != 0
e.g. L1 |d| (grad sign(d), sign(0) = 0), MSE d^2, Huber, smooth L1 (a = 0: L1), log cosh d as
|d| + log1p(e^{-2|d|}) - log 2 (grad tanh d = sign(d) (1 - e^{-2|d|}) / (1 + e^{-2|d|}), no
overflow), MAPE, hinge, squared hinge, exponential, sigmoid-MSE (stable sigmoid), TF's log_loss and
both forms of KL divergence (0 log 0 = 0). One program handles BLOCK consecutive elements of the
flattened input, the weight read as weight[(i // w_div) % w_mod]. With REDUCE it writes the block's
(sum of loss, count of w != 0) to PARTIAL[pid] instead of the per-element loss; the grad is written
in the same pass when COMPUTE_GRAD. KIND is a constexpr: each kind compiles to its own kernel with
only its own math. The parameter travels as an fp32 (hi, lo) pair rebuilt in the compute dtype
(fp64 for fp64 input, else fp32), so fp64 keeps it to ~2^-48. Core ``tl.*`` math only (no
libdevice), so the interpreter and the compiled kernel run the same code.

Memory floor (fp32 x and y, mean, with grad): 4 + 4 bytes read, 4 written = 12 B/element.
Transcendentals per element: none for L1, MSE, Huber, smooth L1, MAPE and the hinges (MAPE and
smooth L1 one division); log-cosh exp + log (+ one division); exponential, sigmoid-MSE and KL with
log targets one exp; KL one log; log_loss two logs and two divisions.
"""

import torch
import triton
import triton.language as tl

from fusedloss.triton_kernels.focal import elementwise_grid, load_block, log1p_unit
from fusedloss.triton_kernels.focal import store_block
from fusedloss.triton_kernels.softmax import _hi_lo, _one_minus_exp

NUM_KINDS = 13   # pointwise_math.h's Kind (names: fusedloss.ops.pointwise.KINDS)


@triton.jit
def sign_of(v):
    """sign(v) with sign(0) = 0 (torch's subgradient), in v's dtype."""
    return tl.where(v > 0.0, 1.0, tl.where(v < 0.0, -1.0, 0.0)).to(v.dtype)


@triton.jit
def pointwise_elem(x, y, a, KIND: tl.constexpr):
    """(loss, d loss / d x) of one kind (pointwise_math.h's pointwise_elem), in x's dtype."""
    d = x - y
    ad = tl.abs(d)
    if KIND == 0:      # L1
        loss = ad
        grad = sign_of(d)
    elif KIND == 1:    # MSE
        loss = d * d
        grad = 2.0 * d
    elif KIND == 2:    # Huber, delta a > 0
        quad = ad <= a
        loss = tl.where(quad, 0.5 * d * d, a * (ad - 0.5 * a))
        grad = tl.where(quad, d, a * sign_of(d))
    elif KIND == 3:    # smooth L1, beta a >= 0: never quadratic for a = 0 (L1)
        quad = ad < a
        inv = tl.where(quad, 1.0 / a, 0.0)
        loss = tl.where(quad, 0.5 * d * d * inv, ad - 0.5 * a)
        grad = tl.where(quad, d * inv, sign_of(d))
    elif KIND == 4:    # log cosh, as the header: v = e^{-|d|} - 1 (by its series near 0), e = 1 + v
        e1 = tl.exp(-ad)
        v = -_one_minus_exp(-ad, e1)
        near = ad < 1.0
        z = tl.where(near, v * v / (2.0 * e1), e1 * e1)   # cosh d - 1 = v^2 / (2 e) near 0
        loss = log1p_unit(z) + tl.where(near, 0.0, ad - 0.69314718055994530942)
        grad = sign_of(d) * (-v * (2.0 + v) / (1.0 + e1 * e1))
    elif KIND == 5:    # MAPE, epsilon a
        ay = tl.abs(y)
        inv = 100.0 / tl.where(ay > a, ay, a)
        loss = ad * inv
        grad = sign_of(d) * inv
    elif KIND == 6:    # hinge
        m = 1.0 - y * x
        loss = tl.where(m > 0.0, m, 0.0)
        grad = tl.where(m >= 0.0, -y, 0.0)  # torch clamp and TF maximum: -y at the kink
    elif KIND == 7:    # squared hinge
        m = 1.0 - y * x
        h = tl.where(m > 0.0, m, 0.0)
        loss = h * h
        grad = -2.0 * y * h
    elif KIND == 8:    # exponential
        e = tl.exp(-y * x)
        loss = e
        grad = -y * e
    elif KIND == 9:    # sigmoid-MSE
        e = tl.exp(-tl.abs(x))
        inv = 1.0 / (1.0 + e)
        s = tl.where(x >= 0.0, inv, e * inv)
        sm = tl.where(x >= 0.0, e * inv, inv)   # 1 - s, without cancellation
        r = s - y
        loss = r * r
        grad = 2.0 * r * s * sm
    elif KIND == 10:   # TF log_loss on probabilities, epsilon a
        p = x + a
        q = 1.0 - x + a
        loss = -y * tl.log(p) - (1.0 - y) * tl.log(q)
        grad = -y / p + (1.0 - y) / q
    elif KIND == 11:   # KL divergence, x = log q: torch's xlogy, 0 log 0 = 0
        loss = tl.where(y == 0.0, 0.0, y * (tl.log(y) - x))
        grad = -y
    else:              # KL divergence with log targets
        e = tl.exp(y)
        loss = e * (y - x)
        grad = -e
    return loss, grad


@triton.jit
def _pointwise_fwd_kernel(
    X, T, W, LOSS, GRAD, PARTIAL, n, w_div, w_mod, param_hi, param_lo,
    KIND: tl.constexpr, HAS_WEIGHT: tl.constexpr, REDUCE: tl.constexpr, COMPUTE_GRAD: tl.constexpr,
    IS_FP64: tl.constexpr, BLOCK: tl.constexpr,
):
    """X, T [n] (T in X's dtype); W the weight table read at (i // w_div) % w_mod (HAS_WEIGHT);
    LOSS [n] unless REDUCE, GRAD [n] when COMPUTE_GRAD (X's dtype); PARTIAL [programs, 2] in the
    compute dtype when REDUCE. The kind's parameter a = param_hi + param_lo (fp32 each). KIND:
    pointwise_math.h's Kind, 0 (L1) to 12 (KL with log targets); IS_FP64: compute in fp64 (fp64
    input), else fp32."""
    pid, offs, mask, x, y = load_block(X, T, n, IS_FP64, BLOCK)
    a = tl.cast(param_hi, x.dtype) + tl.cast(param_lo, x.dtype)
    loss, grad = pointwise_elem(x, y, a, KIND)
    if HAS_WEIGHT:
        w = tl.load(W + (offs // w_div) % w_mod, mask=mask, other=0.0).to(x.dtype)
        loss = w * loss
        grad = w * grad
        counted = w != 0.0
    else:
        counted = mask
    store_block(LOSS, GRAD, PARTIAL, pid, offs, mask, loss, grad, counted, REDUCE, COMPUTE_GRAD)


def launch_config(n: int, fp64: bool = False) -> tuple[int, int]:
    """(BLOCK, num_warps): 1024-element blocks of 4 warps below 2^20 elements, 8 per thread; above,
    4096 (fp64: 2048) with 16 warps, 8 per thread (fp64: 4). ptxas, every AOT specialization
    (sm_80, sm_90): no spill, at most 128 registers with 16 warps, 162 with 4 (fp64 log-cosh).
    focal.py's 16 per thread (4096, 8 warps) took 239 registers for log-cosh in fp32 and spilled
    in fp64."""
    if n < (1 << 20):
        return 1024, 4
    return (2048, 16) if fp64 else (4096, 16)


def pointwise_fwd_triton(x, t, w, w_layout, *, kind, param, reduce, compute_grad, loss, grad):
    """Launch over contiguous ``x``/``t`` (t in x's dtype) into preallocated ``loss`` (per element
    unless ``reduce``) and ``grad``; with ``reduce`` returns the [programs, 2] partials (sum of
    weighted loss, nonzero weight count; every element counts without a weight)."""
    if not 0 <= kind < NUM_KINDS:
        raise ValueError(f"kind must be in [0, {NUM_KINDS}), got {kind}")
    n = x.numel()
    block, num_warps = launch_config(n, x.dtype == torch.float64)
    programs, partial = elementwise_grid(x, block, reduce)
    if n == 0:
        return partial
    param_hi, param_lo = _hi_lo(param)
    _pointwise_fwd_kernel[(programs,)](
        x, t, w if w is not None else x, loss, grad, partial,
        n, w_layout[0], w_layout[1], param_hi, param_lo,
        KIND=int(kind), HAS_WEIGHT=w is not None, REDUCE=reduce, COMPUTE_GRAD=compute_grad,
        IS_FP64=x.dtype == torch.float64, BLOCK=block, num_warps=num_warps,
    )
    return partial


def aot_specializations() -> list[dict]:
    """Signatures compiled ahead of time by tests/test_triton_aot.py (sm_80 and sm_90), every kind
    in each: fp32 without a weight (reduced with grad, both launch configs; per element without
    grad), with a weight in bf16 (reduced with grad) and fp32 (per element with grad), fp16 per
    element with grad, and fp64 with a weight, reduced with grad (both launch configs)."""
    cases = [
        # (input dtype, weight, reduce, grad, a size of the launch config)
        ("fp32", False, True, True, 1),
        ("fp32", False, True, True, 1 << 24),
        ("fp32", False, False, False, 1),
        ("fp32", True, False, True, 1 << 24),
        ("bf16", True, True, True, 1 << 24),
        ("fp16", False, False, True, 1),
        ("fp64", True, True, True, 1),
        ("fp64", True, True, True, 1 << 24),
    ]
    specs = []
    for kind in range(NUM_KINDS):
        for xd, has_w, reduce, grad, size in cases:
            acc = "fp64" if xd == "fp64" else "fp32"
            block, num_warps = launch_config(size, xd == "fp64")
            constexprs = {"KIND": kind, "HAS_WEIGHT": has_w, "REDUCE": reduce, "COMPUTE_GRAD": grad,
                          "IS_FP64": xd == "fp64", "BLOCK": block}
            pointers = {"X": xd, "T": xd, "W": acc, "LOSS": xd, "GRAD": xd, "PARTIAL": acc}
            specs.append({
                "name": f"pointwise_k{kind}_{xd}_w{int(has_w)}_r{int(reduce)}_g{int(grad)}_b{block}",
                "fn": _pointwise_fwd_kernel,
                "signature": {**{k: f"*{v}" for k, v in pointers.items()},
                              "n": "i64", "w_div": "i64", "w_mod": "i64",
                              "param_hi": "fp32", "param_lo": "fp32",
                              **{k: "constexpr" for k in constexprs}},
                "constexprs": constexprs,
                "num_warps": num_warps,
            })
    return specs
