"""Fused forward+backward kernel of EasyRec's ZILN loss (mirror of csrc/ziln/ziln_math.h).

A row holds logits (l_p, mu, l_s) and a label y; z = [y > 0], P = #{z = 1} over the B rows:
    cls   = max(l_p, 0) - l_p z + log1p(e^{-|l_p|})                 (BCE with logits, target z)
    sigma = clip(softplus(l_s), sigma_min, max_sigma)                (sigma_min = sqrt(1e-7) in acc)
    reg   = z (log y + log sigma + log(2 pi) / 2 + t^2 / 2),         t = (log y - mu) / sigma
    L = cw sum(cls) / B + rw sum(reg) / (P + 1e-8) + mu_reg sum(mu^2) / B + sigma_reg sum(l_s^2) / B
(rows with z = 0 evaluate the lognormal at the safe label 1 and are masked). Gradients, written
final (already divided by B and P + 1e-8, as ziln_math.h's row_grad):
    dL/dl_p = cw (sigmoid(l_p) - z) / B
    dL/dmu  = rw (-z t / sigma) / (P + 1e-8) + 2 mu_reg mu / B
    dL/dl_s = rw z (1 - t^2) / sigma * dsigma / (P + 1e-8) + 2 sigma_reg l_s / B
with dsigma = sigmoid(l_s) where sigma_min <= softplus(l_s) <= max_sigma, else 0 (TF's
clip_by_value gradient: it passes at equality).

Shapes: logits [B, 3] contiguous (fp16/bf16/fp32/fp64), labels [B] in the accumulation dtype
(fp32; fp64 for fp64 logits). Returns (loss 0-d in the logits' dtype, NaN for B = 0; grad [B, 3] in
the logits' dtype, [0] without compute_grad; scale 0-d = 1 in the accumulation dtype).

Passes, no host sync:
  1. (compute_grad only) _ziln_count_kernel: P = #{y > 0}, one int64 atomic add per program into a
     zeroed device counter (integer adds: exact and order independent).
  2. _ziln_fwd_kernel over blocks of BLOCK rows (64-bit block base, 32-bit offsets inside it): a
     [BLOCK, 4]-padded 2-D load of the logits (every warp reads consecutive addresses), split into
     the three columns (tl.reshape to [BLOCK, 2, 2] and tl.split); the four terms,
     the final gradient (stored through the same padded 2-D layout), and per-program partial sums
     (cls, reg, mu^2, l_s^2, #positives) in the accumulation dtype to PARTIAL[pid, 0:5].
  3. _ziln_finish_kernel, one program: the partials' columns summed in fp64 (fixed order:
     deterministic), combined with ziln_math.h's combine formula in double (P from the count
     column), stored as the 0-d loss in the logits' dtype: one launch instead of a dozen small
     torch ops on 0-d tensors.
Accumulation in fp32 for fp16/bf16/fp32 logits, fp64 for fp64. The coefficients travel as fp64
kernel arguments rounded to the accumulation dtype in the kernel (C++: acc_t(param)); sigma_min is
sqrt(acc(1e-7)) correctly rounded in the accumulation dtype (host-computed, exact). Core ``tl.*``
math only (no libdevice), so the interpreter and the compiled kernel run the same code.

Memory floor per row (read 3 logits + 1 label, write 3 grads): fp32 12 + 4 + 12 = 28 B, fp16/bf16
6 + 4 + 6 = 16 B, fp64 24 + 8 + 24 = 56 B (without grad 16 / 10 / 32 B). The count pass re-reads
the labels (4 B, fp64 8 B; from L2 when they fit). Partials: 5 acc values per BLOCK rows.
Transcendentals per row: 2 exp (e^{-|l_p|}, e^{-|l_s|}) and 4 log (log1p of each, log y,
log sigma); divisions: 2 in the log1p's, 1 / sigma, and with grad the two sigmoids' 1 / (1 + e)
(5 with grad, 3 without). ziln_math.h divides by sigma three times; here one reciprocal 1 / sigma
is multiplied in (same math, last-bit rounding only).
"""

import functools

import torch
import triton
import triton.language as tl

from fusedloss.triton_kernels.focal import log1p_unit

_HALF_LOG_2PI = tl.constexpr(0.91893853320467274178)   # log(2 pi) / 2
_NPARTIAL = tl.constexpr(5)              # per program: sum cls, reg, mu^2, l_s^2; #positives
FINISH_BLOCK = 256                       # partial rows per step of _ziln_finish_kernel


@triton.jit
def _ziln_count_kernel(Y, NPOS, B, BLOCK: tl.constexpr):
    """NPOS[0] (int64, zeroed by the caller) += #{Y[i] > 0} over the program's BLOCK labels."""
    pid = tl.program_id(0).to(tl.int64)
    rows = pid * BLOCK + tl.arange(0, BLOCK)
    y = tl.load(Y + rows, mask=rows < B, other=0)
    count = tl.sum((y > 0.0).to(tl.int64), axis=0)
    tl.atomic_add(NPOS, count, sem="relaxed")


@triton.jit
def _logistic(x):
    """(softplus(x), sigmoid(x)) as csrc/common/logistic.h: max(x, 0) + log1p(e^{-|x|}) and
    1 / (1 + e^{-x}) for x >= 0, e^x / (1 + e^x) below, from one e = e^{-|x|}."""
    e = tl.exp(-tl.abs(x))
    sp = tl.maximum(x, 0.0) + log1p_unit(e)
    inv = 1.0 / (1.0 + e)
    sg = tl.where(x >= 0.0, inv, e * inv)
    return sp, sg


@triton.jit
def _ziln_fwd_kernel(
    X, Y, NPOS, GRAD, PARTIAL, B,
    max_sigma_arg: tl.float64, sigma_min_arg: tl.float64, cw_arg: tl.float64, rw_arg: tl.float64,
    mu_reg_arg: tl.float64, sigma_reg_arg: tl.float64,
    COMPUTE_GRAD: tl.constexpr,   # write GRAD (reads NPOS = P)
    BLOCK: tl.constexpr,          # rows per program
):
    """X [B, 3] contiguous logits (input dtype); Y [B] labels and PARTIAL [programs, 5] in the
    accumulation dtype (which PARTIAL defines); NPOS int64 [1] = P (COMPUTE_GRAD only); GRAD [B, 3]
    in the input dtype (COMPUTE_GRAD only)."""
    ACC: tl.constexpr = PARTIAL.dtype.element_ty
    pid = tl.program_id(0).to(tl.int64)
    max_sigma = tl.full([], max_sigma_arg, ACC)
    sigma_min = tl.full([], sigma_min_arg, ACC)

    # 64-bit program bases, 32-bit offsets inside the block.
    row0 = pid * BLOCK
    X += row0 * 3
    Y += row0
    GRAD += row0 * 3
    rows = tl.arange(0, BLOCK)
    rmask = rows < B - row0
    cols = tl.arange(0, 4)
    offs = rows[:, None] * 3 + cols[None, :]
    mask = rmask[:, None] & (cols < 3)[None, :]
    x = tl.load(X + offs, mask=mask, other=0).to(ACC)
    # [BLOCK, 4] -> [BLOCK, 2, 2] (column c = 2 i + j): j = 0 holds (l_p, l_s), j = 1 (mu, pad).
    ev, od = tl.split(tl.reshape(x, [BLOCK, 2, 2]))
    lp, ls = tl.split(ev)
    mu, _ = tl.split(od)
    y = tl.load(Y + rows, mask=rmask, other=0).to(ACC)

    pos = y > 0.0
    z = tl.where(pos, 1.0, 0.0).to(ACC)
    sp_p, sg_p = _logistic(lp)
    cls = sp_p - lp * z
    sp, sg_s = _logistic(ls)
    inside = (sp >= sigma_min) & (sp <= max_sigma)
    sigma = tl.where(sp < sigma_min, sigma_min, tl.where(sp > max_sigma, max_sigma, sp))
    log_y = tl.log(tl.where(pos, y, 1.0))          # 0 where z = 0
    inv_sigma = 1.0 / sigma
    t = (log_y - mu) * inv_sigma
    nan_or_zero = tl.where(y == y, 0.0, y)          # a NaN label: NaN, as EasyRec's 0 x NaN
    reg = tl.where(pos, log_y + tl.log(sigma) + _HALF_LOG_2PI + 0.5 * t * t, nan_or_zero)

    tl.store(PARTIAL + 5 * pid, tl.sum(tl.where(rmask, cls, 0.0), axis=0))
    tl.store(PARTIAL + 5 * pid + 1, tl.sum(tl.where(rmask, reg, 0.0), axis=0))
    tl.store(PARTIAL + 5 * pid + 2, tl.sum(mu * mu, axis=0))     # 0 past B (masked loads)
    tl.store(PARTIAL + 5 * pid + 3, tl.sum(ls * ls, axis=0))
    tl.store(PARTIAL + 5 * pid + 4, tl.sum(z, axis=0))           # y = 0 past B

    if COMPUTE_GRAD:
        cw = tl.full([], cw_arg, ACC)
        rw = tl.full([], rw_arg, ACC)
        mu_reg = tl.full([], mu_reg_arg, ACC)
        sigma_reg = tl.full([], sigma_reg_arg, ACC)
        inv_b = 1.0 / tl.full([], B, ACC)
        inv_pos = 1.0 / (tl.load(NPOS).to(ACC) + 1e-8)
        dsigma = tl.where(inside, sg_s, 0.0)
        d_reg_mu = tl.where(pos, -t * inv_sigma, nan_or_zero)
        d_reg_ls = tl.where(pos, (1.0 - t * t) * inv_sigma * dsigma, nan_or_zero)
        g0 = cw * (sg_p - z) * inv_b
        g1 = rw * d_reg_mu * inv_pos + mu_reg * 2.0 * mu * inv_b
        g2 = rw * d_reg_ls * inv_pos + sigma_reg * 2.0 * ls * inv_b
        GT: tl.constexpr = GRAD.dtype.element_ty
        # Back through [BLOCK, 2, 2] (column 2 i + j; join appends the last dim j) to [BLOCK, 4].
        pad = tl.zeros_like(g1)
        g = tl.reshape(tl.join(tl.join(g0, g2), tl.join(g1, pad)).to(GT), [BLOCK, 4])
        tl.store(GRAD + offs, g, mask=mask)


@triton.jit
def _ziln_finish_kernel(
    PARTIAL, OUT, programs, B,
    cw_arg: tl.float64, rw_arg: tl.float64, mu_reg_arg: tl.float64, sigma_reg_arg: tl.float64,
    BLOCK: tl.constexpr,          # partial rows per step
):
    """One program. s = the column sums of PARTIAL [programs, 5] in fp64; OUT (0-d, the logits'
    dtype) = cw s0 / B + rw s1 / (s4 + 1e-8) + mu_reg s2 / B + sigma_reg s3 / B."""
    cols = tl.arange(0, 8)
    sums = tl.zeros([8], tl.float64)
    for r0 in range(0, programs, BLOCK):
        rows = r0 + tl.arange(0, BLOCK).to(tl.int64)
        m = (rows < programs)[:, None] & (cols < _NPARTIAL)[None, :]
        v = tl.load(PARTIAL + rows[:, None] * _NPARTIAL + cols[None, :], mask=m, other=0)
        sums += tl.sum(v.to(tl.float64), axis=0)
    s_cls = tl.sum(tl.where(cols == 0, sums, 0.0), axis=0)
    s_reg = tl.sum(tl.where(cols == 1, sums, 0.0), axis=0)
    s_mu = tl.sum(tl.where(cols == 2, sums, 0.0), axis=0)
    s_ls = tl.sum(tl.where(cols == 3, sums, 0.0), axis=0)
    s_pos = tl.sum(tl.where(cols == 4, sums, 0.0), axis=0)
    b = tl.full([], B, tl.float64)   # B = 1 arrives as a constexpr
    loss = cw_arg * s_cls / b + rw_arg * s_reg / (s_pos + 1e-8) + mu_reg_arg * s_mu / b \
        + sigma_reg_arg * s_ls / b
    if OUT.dtype.element_ty != tl.float64:
        loss = loss.to(tl.float32)   # 16-bit outputs through fp32, as torch casts double to half
    tl.store(OUT, loss.to(OUT.dtype.element_ty))


def launch_config(b: int, fp64: bool = False) -> tuple[int, int]:
    """(BLOCK rows, num_warps) of _ziln_fwd_kernel, whatever B: 1024 rows (fp64: 512) on 8 warps,
    4 (2) rows per thread. ptxas, every AOT specialization (sm_80, sm_90): no spill, at most 101
    registers with grad (fp64 92), 68 without."""
    return (512, 8) if fp64 else (1024, 8)


def count_launch_config() -> tuple[int, int]:
    """(BLOCK labels, num_warps) of _ziln_count_kernel: 4096 labels on 4 warps."""
    return 4096, 4


@functools.lru_cache(maxsize=None)
def sigma_min(acc: torch.dtype) -> float:
    """sqrt(1e-7) as ziln_math.h's sigma_min_default<acc_t>(): sqrt(acc_t(1e-7)), correctly rounded
    in ``acc`` (exact as a Python float)."""
    return torch.tensor(1e-7, dtype=acc).sqrt().item()


_FLOAT = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def ziln_fwd_triton(logits, labels, max_sigma, class_weight, reg_weight, mu_reg, sigma_reg,
                    compute_grad):
    """The op ``fusedloss::ziln_fwd_triton`` (contract: ZILN_SCHEMA in fusedloss/ops/_library.py):
    logits [B, 3] (fp16/bf16/fp32/fp64), labels [B] (any real dtype; read in the accumulation
    dtype). Returns (loss, grad, scale) as described in the module docstring."""
    if logits.dim() != 2 or logits.shape[1] != 3 or logits.dtype not in _FLOAT:
        raise ValueError(f"logits must be a [B, 3] float tensor, got {tuple(logits.shape)} "
                         f"{logits.dtype}")
    b = logits.shape[0]
    if labels.numel() != b:
        raise ValueError(f"labels must hold one value per row ({b}), got {tuple(labels.shape)}")
    acc = torch.float64 if logits.dtype == torch.float64 else torch.float32
    compute_grad = bool(compute_grad)
    x = logits.contiguous()
    y = labels.reshape(-1).to(acc).contiguous()
    grad = x.new_empty((b, 3) if compute_grad else (0,))
    scale = x.new_ones((), dtype=acc)
    if b == 0:
        return x.new_full((), float("nan")), grad, scale
    block, num_warps = launch_config(b, acc == torch.float64)
    programs = triton.cdiv(b, block)
    partial = x.new_empty((programs, _NPARTIAL.value), dtype=acc)
    if compute_grad:
        npos = x.new_zeros((1,), dtype=torch.int64)
        cblock, cwarps = count_launch_config()
        _ziln_count_kernel[(triton.cdiv(b, cblock),)](y, npos, b, BLOCK=cblock, num_warps=cwarps)
    else:
        npos = partial   # unused
    _ziln_fwd_kernel[(programs,)](
        x, y, npos, grad if compute_grad else x, partial, b,
        float(max_sigma), sigma_min(acc), float(class_weight), float(reg_weight), float(mu_reg),
        float(sigma_reg),
        COMPUTE_GRAD=compute_grad, BLOCK=block, num_warps=num_warps,
    )
    loss = x.new_empty(())
    _ziln_finish_kernel[(1,)](
        partial, loss, programs, b, float(class_weight), float(reg_weight), float(mu_reg),
        float(sigma_reg), BLOCK=FINISH_BLOCK, num_warps=4,
    )
    return loss, grad, scale


def aot_specializations() -> list[dict]:
    """Signatures compiled ahead of time by tests/test_triton_aot.py (sm_80 and sm_90): the row
    kernel for fp32/fp16/bf16 logits (fp32 accumulation) and fp64, with and without grad; the count
    kernel for fp32 and fp64 labels."""
    specs = []
    for xd in ("fp32", "fp16", "bf16", "fp64"):
        acc = "fp64" if xd == "fp64" else "fp32"
        block, num_warps = launch_config(1, xd == "fp64")
        for grad in (True, False):
            constexprs = {"COMPUTE_GRAD": grad, "BLOCK": block}
            specs.append({
                "name": f"ziln_{xd}_g{int(grad)}_b{block}",
                "fn": _ziln_fwd_kernel,
                "signature": {"X": f"*{xd}", "Y": f"*{acc}", "NPOS": "*i64" if grad else f"*{acc}",
                              "GRAD": f"*{xd}", "PARTIAL": f"*{acc}", "B": "i64",
                              "max_sigma_arg": "fp64", "sigma_min_arg": "fp64", "cw_arg": "fp64",
                              "rw_arg": "fp64", "mu_reg_arg": "fp64", "sigma_reg_arg": "fp64",
                              **{k: "constexpr" for k in constexprs}},
                "constexprs": constexprs,
                "num_warps": num_warps,
            })
    for xd in ("fp32", "fp16", "bf16", "fp64"):
        specs.append({
            "name": f"ziln_finish_{xd}",
            "fn": _ziln_finish_kernel,
            "signature": {"PARTIAL": "*fp64" if xd == "fp64" else "*fp32", "OUT": f"*{xd}",
                          "programs": "i64", "B": "i64", "cw_arg": "fp64", "rw_arg": "fp64",
                          "mu_reg_arg": "fp64", "sigma_reg_arg": "fp64", "BLOCK": "constexpr"},
            "constexprs": {"BLOCK": FINISH_BLOCK},
            "num_warps": 4,
        })
    block, num_warps = count_launch_config()
    for yd in ("fp32", "fp64"):
        specs.append({
            "name": f"ziln_count_{yd}_b{block}",
            "fn": _ziln_count_kernel,
            "signature": {"Y": f"*{yd}", "NPOS": "*i64", "B": "i64", "BLOCK": "constexpr"},
            "constexprs": {"BLOCK": block},
            "num_warps": num_warps,
        })
    return specs
