"""Fused forward+backward kernels of the row-wise pair losses (torch margin_ranking /
cosine_embedding / triplet_margin, Keras cosine_similarity, siamese contrastive, AITM order
calibration; mirror of csrc/rowwise/rowwise_math.h, whose header states the math, and of
csrc/common/l2_normalize.h).

Row i of a, b (and c for triplet) [N, D], target y_i (0 without one). Per row: the sums
s0, s1, s2 (row_accumulate: a.b, |a|^2, |b|^2; or the p-norm sums sum |a - b + eps|^p,
sum |a - c + eps|^p, with swap sum |b - c + eps|^p; or sum (a - b + eps)^2), then the loss and the
coefficients k0..k2 (row_finish, with its >= / > tie rules), then the gradients element by element
(grad_elems):
    cosine kinds   d/da = k0 a + k1 b,  d/db = k2 b + k1 a
    triplet        t_ab = k0 psi(a - b + eps) (t_ac: k1, t_bc: k2; 0 where the k is 0):
                   d/da = t_ab + t_ac,  d/db = t_bc - t_ab,  d/dc = -t_ac - t_bc
    contrastive    d/da = k0 (a - b + eps),  d/db = -d/da
    D = 1 kinds    d/da = k0,  d/db = -k0
The gradients are those of the sum of the row losses, unscaled (fusedloss.ops.rowwise scales them).

Kernels:
    _rowwise_rows_kernel  kinds 2-5: a [BLOCK_N, BLOCK_D] tile of rows per program. SINGLE
                          (next_pow2(D) <= BLOCK_D): the tile holds whole rows, the sums are
                          tl.sum(axis=1) and the gradients come from the same registers. Otherwise
                          (BLOCK_N = 1) sweep 1 accumulates the element terms chunk by chunk and
                          sweep 2 re-reads the row backwards (the last chunks are still in L1/L2)
                          and writes the gradients.
    _rowwise_flat_kernel  kinds 0, 1 (D = 1): BLOCK consecutive rows per program, elementwise.
KIND, SWAP, P_KIND (p == 2, p == 1 or general, after rounding p to the compute dtype, as C++'s
acc_t(p) == 2 test) and COMPUTE_GRAD are constexprs: each specialization holds only its own math.
General p: |w|^q = exp2(q log2 |w|) (0 at w = 0), core tl.* only, so the interpreter and the
compiled kernel run the same code (libdevice pow does not run under the interpreter); compiled, fp32
log2 is libdevice's log2f and exp2 ex2.approx (~2 ulp, a relative error of about
|q log2 |w|| 2^-23 in all), fp64 both libdevice's. Compute dtype
fp32 (fp64 for fp64 input), defined by ROW_LOSS; margin, p, eps arrive as fp64 and are rounded once
to it (acc_t(param) in C++). fp32 divisions and square roots of the per-row step are the IEEE-rounded
div_rn / sqrt_rn, as in C++. Offsets are int64 (row * D with N D >= 2^31).

Memory floor per element (B_x bytes per input element): 2 B_x read (3 for triplet) and, with grad,
as many written; the looped path (D > 2048, fp64 1024) reads each row twice, the second time
mostly from cache. Transcendentals per element: none, except triplet with a general p (a log2 and
an exp2 per distance term, and again per gradient term); per row at most two sqrt and a few
divisions.
"""

import math
import struct

import torch
import triton
import triton.language as tl

from fusedloss.triton_kernels.sv_softmax import _inv_norm

KIND_MARGIN_RANKING, KIND_ORDER_CALIBRATE, KIND_COSINE_EMBEDDING = 0, 1, 2
KIND_COSINE_SIMILARITY, KIND_TRIPLET, KIND_CONTRASTIVE = 3, 4, 5
P_GENERAL, P_ONE, P_TWO = 0, 1, 2
_TILE = 2048          # BLOCK_N * BLOCK_D elements per program (fp64: half)
_FLAT_BLOCK = 2048    # D = 1 kinds: rows per program


@triton.jit
def _div(x, y):
    """x / y correctly rounded (fp32: div_rn, not the approximate division; fp64 is IEEE)."""
    if x.dtype == tl.float64:
        return x / y
    else:
        return tl.div_rn(x, y)


@triton.jit
def _sqrt(x):
    """Correctly rounded sqrt (fp32: sqrt_rn)."""
    if x.dtype == tl.float64:
        return tl.sqrt(x)
    else:
        return tl.sqrt_rn(x)


@triton.jit
def _pow_pos(x, q):
    """x^q as exp2(q log2 x) for x > 0 (callers take x = 0 apart: log2 of 1 there)."""
    return tl.exp2(q * tl.log2(tl.where(x == 0.0, 1.0, x)))


@triton.jit
def _abs_pow(w, p, P_KIND: tl.constexpr):
    """rowwise_math.h's abs_pow: |w|^p (p = 2 and 1 exact)."""
    aw = tl.abs(w)
    if P_KIND == 2:
        return aw * aw
    elif P_KIND == 1:
        return aw
    else:
        return tl.where(aw == 0.0, 0.0, _pow_pos(aw, p))


@triton.jit
def _psi(w, p, P_KIND: tl.constexpr):
    """rowwise_math.h's psi: |w|^{p-1} sign(w) (sign(NaN) = 0, as the C++ comparisons)."""
    if P_KIND == 2:
        return w
    else:
        s = tl.where(w > 0.0, 1.0, tl.where(w < 0.0, -1.0, 0.0)).to(w.dtype)
        if P_KIND == 1:
            return s
        else:
            aw = tl.abs(w)
            return tl.where(aw == 0.0, 0.0, s * _pow_pos(aw, p - 1.0))


@triton.jit
def _root(s, inv_p, P_KIND: tl.constexpr):
    """rowwise_math.h's root: s^{1/p} (0 at s = 0). inv_p = 1 / p in the compute dtype."""
    if P_KIND == 2:
        return _sqrt(s)
    elif P_KIND == 1:
        return s
    else:
        return tl.where(s == 0.0, 0.0, _pow_pos(s, inv_p))


@triton.jit
def _pow_pm1(d, p, P_KIND: tl.constexpr):
    """pow(d, p - 1) for d > 0 (callers mask d = 0)."""
    if P_KIND == 2:
        return d
    elif P_KIND == 1:
        return tl.full(d.shape, 1.0, d.dtype)
    else:
        return _pow_pos(d, p - 1.0)


@triton.jit
def _terms(a, b, c, mask, eps, p, KIND: tl.constexpr, P_KIND: tl.constexpr, SWAP: tl.constexpr):
    """row_accumulate's element terms of a tile (0 outside mask: the eps of the distance kinds
    would otherwise count on the padding)."""
    if KIND == 4:
        t0 = tl.where(mask, _abs_pow(a - b + eps, p, P_KIND), 0.0)
        t1 = tl.where(mask, _abs_pow(a - c + eps, p, P_KIND), 0.0)
        if SWAP:
            t2 = tl.where(mask, _abs_pow(b - c + eps, p, P_KIND), 0.0)
        else:
            t2 = tl.zeros(a.shape, a.dtype)
    elif KIND == 5:
        w = a - b + eps
        t0 = tl.where(mask, w * w, 0.0)
        t1 = tl.zeros(a.shape, a.dtype)
        t2 = tl.zeros(a.shape, a.dtype)
    else:   # cosine kinds (masked elements load as 0)
        t0 = a * b
        t1 = a * a
        t2 = b * b
    return t0, t1, t2


@triton.jit
def _finish(s0, s1, s2, y, margin, p, KIND: tl.constexpr, P_KIND: tl.constexpr,
            SWAP: tl.constexpr):
    """rowwise_math.h's row_finish for kinds 2-5 on [BLOCK_N] vectors: (loss, k0, k1, k2)."""
    zero = tl.zeros(s0.shape, s0.dtype)
    if KIND == 2:      # cosine embedding (torch)
        m1 = s1 + 9.999999960041972e-13  # torch: the float 1e-12f
        m2 = s2 + 9.999999960041972e-13
        inv = _div(zero + 1.0, _sqrt(m1 * m2))
        cos = s0 * inv
        u = cos - margin
        g = tl.where(y == 1.0, -1.0, tl.where((y == -1.0) & (u >= 0.0), 1.0, 0.0)).to(s0.dtype)
        loss = tl.where(y == 1.0, 1.0 - cos, tl.where((y == -1.0) & (u > 0.0), u, 0.0))
        k0 = _div(-g * cos, m1)
        k1 = g * inv
        k2 = _div(-g * cos, m2)
    elif KIND == 3:    # cosine similarity (Keras, l2_normalize.h)
        ia = _inv_norm(s1, True)
        ib = _inv_norm(s2, True)
        cos = s0 * ia * ib
        k0 = tl.where(s1 > 1e-12, cos * ia * ia, 0.0)
        k1 = -ia * ib
        k2 = tl.where(s2 > 1e-12, cos * ib * ib, 0.0)
        loss = -cos
    elif KIND == 4:    # triplet (torch, p-norm distances)
        if P_KIND == 0:
            inv_p = _div(zero + 1.0, zero + p)
        else:
            inv_p = zero
        d_ap = _root(s0, inv_p, P_KIND)
        d_an = _root(s1, inv_p, P_KIND)
        if SWAP:
            d_pn = _root(s2, inv_p, P_KIND)
            use_pn = d_pn < d_an                      # ties take d(a, c)
            d_neg = tl.where(use_pn, d_pn, d_an)
        else:
            use_pn = zero != zero                     # all False (vector form)
            d_neg = d_an
        u = d_ap - d_neg + margin
        on = u >= 0.0
        pos_ap = on & (d_ap > 0.0)
        pos_neg = on & (d_neg > 0.0)
        k0 = tl.where(pos_ap, _div(zero + 1.0, _pow_pm1(tl.where(pos_ap, d_ap, 1.0), p, P_KIND)),
                      0.0)
        kn = tl.where(pos_neg,
                      -_div(zero + 1.0, _pow_pm1(tl.where(pos_neg, d_neg, 1.0), p, P_KIND)), 0.0)
        k1 = tl.where(use_pn, 0.0, kn)
        k2 = tl.where(use_pn, kn, 0.0)
        loss = tl.where(u > 0.0, u, 0.0)
    else:              # contrastive
        d = _sqrt(s0)
        h = margin - d
        hp = tl.where(h > 0.0, h, 0.0)
        k0 = 2.0 * y - tl.where((hp > 0.0) & (d > 0.0),
                                _div(2.0 * (1.0 - y) * hp, tl.where(d > 0.0, d, 1.0)), 0.0)
        k1 = zero
        k2 = zero
        loss = y * s0 + (1.0 - y) * hp * hp
    return loss, k0, k1, k2


@triton.jit
def _grads(a, b, c, k0, k1, k2, eps, p, KIND: tl.constexpr, P_KIND: tl.constexpr,
           SWAP: tl.constexpr):
    """rowwise_math.h's grad_elems on a tile (k0..k2: [BLOCK_N, 1]); gc only for triplet."""
    if KIND == 4:
        t_ab = tl.where(k0 == 0.0, 0.0, k0 * _psi(a - b + eps, p, P_KIND))
        t_ac = tl.where(k1 == 0.0, 0.0, k1 * _psi(a - c + eps, p, P_KIND))
        if SWAP:
            t_bc = tl.where(k2 == 0.0, 0.0, k2 * _psi(b - c + eps, p, P_KIND))
            ga = t_ab + t_ac
            gb = t_bc - t_ab
            gc = -t_ac - t_bc
        else:   # k2 = 0: t_bc = 0
            ga = t_ab + t_ac
            gb = -t_ab
            gc = -t_ac
    elif KIND == 5:
        ga = k0 * (a - b + eps)
        gb = -ga
        gc = ga
    else:
        ga = k0 * a + k1 * b
        gb = k2 * b + k1 * a
        gc = ga
    return ga, gb, gc


@triton.jit
def _rowwise_rows_kernel(
    A, B, C, T, ROW_LOSS, GA, GB, GC,
    N, D,
    margin_arg: tl.float64, p_arg: tl.float64, eps_arg: tl.float64,
    KIND: tl.constexpr,           # 2 cosine embedding, 3 cosine similarity, 4 triplet, 5 contrastive
    P_KIND: tl.constexpr,         # triplet: 2 (p = 2), 1 (p = 1), 0 (general p)
    SWAP: tl.constexpr,           # triplet: min(d(a, c), d(b, c))
    HAS_TARGET: tl.constexpr,     # read T (kinds 2, 5), else y = 0
    COMPUTE_GRAD: tl.constexpr,   # write GA, GB (and GC for triplet)
    SINGLE: tl.constexpr,         # D <= BLOCK_D: whole rows in the tile
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    """A, B, C [N, D] (C read by triplet only) in the input dtype; T [N] and ROW_LOSS [N] in the
    compute dtype (which ROW_LOSS defines); GA, GB, GC [N, D] in the input dtype."""
    ACC: tl.constexpr = ROW_LOSS.dtype.element_ty
    pid = tl.program_id(0).to(tl.int64)
    margin = tl.full([], margin_arg, ACC)
    p = tl.full([], p_arg, ACC)
    eps = tl.full([], eps_arg, ACC)

    rows = pid * BLOCK_N + tl.arange(0, BLOCK_N)
    rmask = rows < N
    cols = tl.arange(0, BLOCK_D)
    roff = rows[:, None] * D
    if HAS_TARGET:
        y = tl.load(T + rows, mask=rmask, other=0.0)
    else:
        y = tl.zeros([BLOCK_N], ACC)

    if SINGLE:
        mask = rmask[:, None] & (cols < D)[None, :]
        offs = roff + cols[None, :]
        a = tl.load(A + offs, mask=mask, other=0).to(ACC)
        b = tl.load(B + offs, mask=mask, other=0).to(ACC)
        if KIND == 4:
            c = tl.load(C + offs, mask=mask, other=0).to(ACC)
        else:
            c = a
        t0, t1, t2 = _terms(a, b, c, mask, eps, p, KIND, P_KIND, SWAP)
        s0 = tl.sum(t0, axis=1)
        s1 = tl.sum(t1, axis=1)
        s2 = tl.sum(t2, axis=1)
    else:
        acc0 = tl.zeros([BLOCK_N, BLOCK_D], ACC)
        acc1 = tl.zeros([BLOCK_N, BLOCK_D], ACC)
        acc2 = tl.zeros([BLOCK_N, BLOCK_D], ACC)
        for d0 in range(0, D, BLOCK_D):
            cc = d0 + cols
            mask = rmask[:, None] & (cc < D)[None, :]
            offs = roff + cc[None, :]
            a = tl.load(A + offs, mask=mask, other=0).to(ACC)
            b = tl.load(B + offs, mask=mask, other=0).to(ACC)
            if KIND == 4:
                c = tl.load(C + offs, mask=mask, other=0).to(ACC)
            else:
                c = a
            t0, t1, t2 = _terms(a, b, c, mask, eps, p, KIND, P_KIND, SWAP)
            acc0 += t0
            if KIND != 5:
                acc1 += t1
                if KIND != 4 or SWAP:
                    acc2 += t2
        s0 = tl.sum(acc0, axis=1)
        s1 = tl.sum(acc1, axis=1)
        s2 = tl.sum(acc2, axis=1)

    loss, k0, k1, k2 = _finish(s0, s1, s2, y, margin, p, KIND, P_KIND, SWAP)
    tl.store(ROW_LOSS + rows, loss, mask=rmask)

    if COMPUTE_GRAD:
        k0 = k0[:, None]
        k1 = k1[:, None]
        k2 = k2[:, None]
        GT: tl.constexpr = GA.dtype.element_ty
        if SINGLE:
            ga, gb, gc = _grads(a, b, c, k0, k1, k2, eps, p, KIND, P_KIND, SWAP)
            tl.store(GA + offs, ga.to(GT), mask=mask)
            tl.store(GB + offs, gb.to(GT), mask=mask)
            if KIND == 4:
                tl.store(GC + offs, gc.to(GT), mask=mask)
        else:
            n_chunks = tl.cdiv(D, BLOCK_D)
            for ci in range(n_chunks):   # backwards: from what sweep 1 left in cache
                cc = (n_chunks - 1 - ci) * BLOCK_D + cols
                mask = rmask[:, None] & (cc < D)[None, :]
                offs = roff + cc[None, :]
                a = tl.load(A + offs, mask=mask, other=0).to(ACC)
                b = tl.load(B + offs, mask=mask, other=0).to(ACC)
                if KIND == 4:
                    c = tl.load(C + offs, mask=mask, other=0).to(ACC)
                else:
                    c = a
                ga, gb, gc = _grads(a, b, c, k0, k1, k2, eps, p, KIND, P_KIND, SWAP)
                tl.store(GA + offs, ga.to(GT), mask=mask)
                tl.store(GB + offs, gb.to(GT), mask=mask)
                if KIND == 4:
                    tl.store(GC + offs, gc.to(GT), mask=mask)


@triton.jit
def _rowwise_flat_kernel(
    A, B, T, ROW_LOSS, GA, GB, N, margin_arg: tl.float64,
    KIND: tl.constexpr,           # 0 margin ranking (reads T), 1 order calibration
    COMPUTE_GRAD: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """The D = 1 kinds, one element per row: A, B [N] (input dtype), T, ROW_LOSS [N] (compute
    dtype), GA, GB [N] (input dtype)."""
    ACC: tl.constexpr = ROW_LOSS.dtype.element_ty
    pid = tl.program_id(0).to(tl.int64)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    a = tl.load(A + offs, mask=mask, other=0).to(ACC)
    b = tl.load(B + offs, mask=mask, other=0).to(ACC)
    s0 = a - b
    if KIND == 0:     # margin ranking: u = -y (a - b) + margin
        margin = tl.full([], margin_arg, ACC)
        y = tl.load(T + offs, mask=mask, other=0.0)
        u = -y * s0 + margin
        k0 = tl.where(u >= 0.0, -y, 0.0)
        loss = tl.where(u > 0.0, u, 0.0)
    else:             # order calibration: relu(a - b)
        pos = s0 > 0.0
        k0 = tl.where(pos, 1.0, 0.0).to(ACC)
        loss = tl.where(pos, s0, 0.0)
    tl.store(ROW_LOSS + offs, loss, mask=mask)
    if COMPUTE_GRAD:
        GT: tl.constexpr = GA.dtype.element_ty
        tl.store(GA + offs, k0.to(GT), mask=mask)
        tl.store(GB + offs, (-k0).to(GT), mask=mask)


def launch_config(D: int, fp64: bool = False) -> tuple[bool, int, int, int]:
    """(single, BLOCK_N, BLOCK_D, num_warps) of _rowwise_rows_kernel from D and the compute dtype
    alone (no autotune: the interpreter and the AOT test see the same configs).

    Tiles of _TILE elements (fp64: half): next_pow2(D) columns and _TILE / next_pow2(D) rows while
    next_pow2(D) fits (SINGLE), else one row per program in chunks of _TILE columns. 8 tile
    elements per thread (fp64: 4), 1 to 8 warps. ptxas, every AOT specialization (sm_80, sm_90): no
    spills, at most 138 registers except the looped sm_90 kernels (up to 178: ptxas keeps more of
    the loop's loads in flight there). 16 elements per thread (4096-element tiles) took 188-255
    registers and spilled in triplet's looped sweep on sm_90.
    """
    tile = _TILE // 2 if fp64 else _TILE
    d_pow = triton.next_power_of_2(max(int(D), 1))
    if d_pow <= tile:
        single, block_n, block_d = True, tile // d_pow, d_pow
    else:
        single, block_n, block_d = False, 1, tile
    per_thread = 4 if fp64 else 8
    num_warps = max(1, min(8, block_n * block_d // (32 * per_thread)))
    return single, block_n, block_d, num_warps


def flat_launch_config() -> tuple[int, int]:
    """(BLOCK, num_warps) of _rowwise_flat_kernel: 8 rows per thread."""
    return _FLAT_BLOCK, 8


def p_kind(p: float, fp64: bool) -> int:
    """P_TWO / P_ONE / P_GENERAL from p rounded to the compute dtype (C++: acc_t(p) == 2)."""
    q = float(p) if fp64 else struct.unpack("f", struct.pack("f", float(p)))[0]
    return {2.0: P_TWO, 1.0: P_ONE}.get(q, P_GENERAL)


_FLOAT = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _check(a, b, c, target, row_loss, ga, gb, gc, kind, margin, p, eps, compute_grad):
    if a.dim() != 2 or not a.is_contiguous() or a.dtype not in _FLOAT:
        raise ValueError(f"a must be a contiguous [N, D] float tensor, got {tuple(a.shape)} {a.dtype}")
    for name, x in (("b", b), ("c", c)):
        if x is not None and (x.shape != a.shape or x.dtype != a.dtype or not x.is_contiguous()
                              or x.device != a.device):
            raise ValueError(f"{name} must be a contiguous {tuple(a.shape)} {a.dtype} tensor on "
                             f"{a.device}, got {tuple(x.shape)} {x.dtype} on {x.device}")
    if not 0 <= kind <= KIND_CONTRASTIVE:
        raise ValueError(f"kind must be 0 (margin_ranking), 1 (order_calibrate), 2 "
                         f"(cosine_embedding), 3 (cosine_similarity), 4 (triplet) or 5 "
                         f"(contrastive), got {kind}")
    if not math.isfinite(margin):
        raise ValueError(f"margin must be finite, got {margin}")
    if not (p >= 1.0 and math.isfinite(p)):
        raise ValueError(f"p must be finite and >= 1, got {p}")
    if not (eps >= 0.0 and math.isfinite(eps)):
        raise ValueError(f"eps must be finite and >= 0, got {eps}")
    n, d = a.shape
    if kind in (KIND_MARGIN_RANKING, KIND_ORDER_CALIBRATE) and d != 1:
        raise ValueError(f"kind {kind} (margin_ranking / order_calibrate) takes one element per "
                         f"row: a must be [N, 1], got {tuple(a.shape)}")
    if (kind == KIND_TRIPLET) != (c is not None):
        raise ValueError("c (the negatives) is required for kind 4 (triplet), and only taken by it")
    acc = torch.float64 if a.dtype == torch.float64 else torch.float32
    if target is None:
        if kind in (KIND_MARGIN_RANKING, KIND_COSINE_EMBEDDING, KIND_CONTRASTIVE):
            raise ValueError(f"target is required for kind {kind} (margin_ranking, "
                             f"cosine_embedding and contrastive take one)")
    elif (target.shape != (n,) or target.dtype != acc or not target.is_contiguous()
          or target.device != a.device):
        raise ValueError(f"target must be a contiguous [{n}] {acc} tensor, got "
                         f"{tuple(target.shape)} {target.dtype}")
    if row_loss.shape != (n,) or row_loss.dtype != acc or not row_loss.is_contiguous():
        raise ValueError(f"row_loss must be a contiguous [{n}] {acc} tensor, got "
                         f"{tuple(row_loss.shape)} {row_loss.dtype}")
    if compute_grad:
        for name, g in (("ga", ga), ("gb", gb)) + ((("gc", gc),) if c is not None else ()):
            if g.shape != a.shape or g.dtype != a.dtype or not g.is_contiguous():
                raise ValueError(f"{name} must be a contiguous {tuple(a.shape)} {a.dtype} tensor, "
                                 f"got {tuple(g.shape)} {g.dtype}")


def rowwise_rows_triton(a, b, c, target, row_loss, ga, gb, gc, *, kind, margin, p, eps, swap,
                        compute_grad):
    """Fills row_loss [N] (compute dtype: fp32, fp64 for fp64 input) with each row's loss and, when
    compute_grad, ga, gb (and gc when c is given) [N, D] (input dtype) with the gradients of the sum
    of the row losses; without compute_grad they are not touched.

    a, b (c: triplet's negatives, else None): contiguous [N, D] fp16/bf16/fp32/fp64; target [N] in
    the compute dtype or None (required by kinds 0, 2, 5); kind: rowwise_math.h's Kind (0 and 1 take
    D = 1); margin, p (>= 1), eps: floats; swap: triplet's swap."""
    kind = int(kind)
    margin, p, eps = float(margin), float(p), float(eps)
    compute_grad = bool(compute_grad)
    _check(a, b, c, target, row_loss, ga, gb, gc, kind, margin, p, eps, compute_grad)
    n, d = a.shape
    if n == 0:
        return
    fp64 = a.dtype == torch.float64
    if kind in (KIND_MARGIN_RANKING, KIND_ORDER_CALIBRATE):
        block, num_warps = flat_launch_config()
        has_t = kind == KIND_MARGIN_RANKING
        _rowwise_flat_kernel[(triton.cdiv(n, block),)](
            a, b, target if has_t else row_loss, row_loss,
            ga if compute_grad else a, gb if compute_grad else a, n, float(margin),
            KIND=kind, COMPUTE_GRAD=compute_grad, BLOCK=block, num_warps=num_warps,
        )
        return
    # Unused pointers get a real tensor of the right type: empty tensors may have a null data_ptr.
    if d == 0:
        a = b = torch.zeros(1, dtype=a.dtype, device=a.device)
        c = a if c is not None else None
        compute_grad = False      # nothing to write
    single, block_n, block_d, num_warps = launch_config(d, fp64)
    has_t = kind in (KIND_COSINE_EMBEDDING, KIND_CONTRASTIVE)
    triplet = kind == KIND_TRIPLET
    _rowwise_rows_kernel[(triton.cdiv(n, block_n),)](
        a, b, c if triplet else a, target if has_t else row_loss, row_loss,
        ga if compute_grad else a, gb if compute_grad else a,
        gc if (compute_grad and triplet) else a,
        n, d, float(margin), float(p), float(eps),
        KIND=kind, P_KIND=p_kind(p, fp64) if triplet else P_TWO, SWAP=bool(swap) and triplet,
        HAS_TARGET=has_t, COMPUTE_GRAD=compute_grad, SINGLE=single,
        BLOCK_N=block_n, BLOCK_D=block_d, num_warps=num_warps,
    )


def aot_specializations() -> list[dict]:
    """Signatures compiled ahead of time by tests/test_triton_aot.py (sm_80 and sm_90): every kind,
    fp32/fp16/bf16/fp64, with and without grad, triplet's p = 2 / 1 / general with and without
    swap, single-tile configs (narrow, and the widest one-row tile) and the looped D path."""
    rows_cases = [
        # (kind, dtype, P_KIND, swap, grad, D)
        (KIND_COSINE_EMBEDDING, "fp32", P_TWO, False, True, 128),
        (KIND_COSINE_EMBEDDING, "bf16", P_TWO, False, True, 8192),
        (KIND_COSINE_SIMILARITY, "fp16", P_TWO, False, True, 64),
        (KIND_COSINE_SIMILARITY, "fp64", P_TWO, False, True, 8192),
        (KIND_COSINE_SIMILARITY, "fp32", P_TWO, False, False, 1),
        (KIND_TRIPLET, "fp32", P_TWO, True, True, 2048),
        (KIND_TRIPLET, "fp32", P_ONE, False, True, 8192),
        (KIND_TRIPLET, "bf16", P_GENERAL, True, True, 256),
        (KIND_TRIPLET, "fp64", P_GENERAL, True, True, 8192),
        (KIND_TRIPLET, "fp64", P_TWO, False, False, 32),
        (KIND_CONTRASTIVE, "fp32", P_TWO, False, True, 512),
        (KIND_CONTRASTIVE, "fp16", P_TWO, False, True, 8192),
        (KIND_CONTRASTIVE, "fp64", P_TWO, False, True, 1024),
    ]
    specs = []
    for kind, xd, pk, swap, grad, d in rows_cases:
        fp64 = xd == "fp64"
        acc = "fp64" if fp64 else "fp32"
        single, block_n, block_d, num_warps = launch_config(d, fp64)
        constexprs = {"KIND": kind, "P_KIND": pk, "SWAP": swap,
                      "HAS_TARGET": kind in (KIND_COSINE_EMBEDDING, KIND_CONTRASTIVE),
                      "COMPUTE_GRAD": grad, "SINGLE": single, "BLOCK_N": block_n,
                      "BLOCK_D": block_d}
        specs.append({
            "name": (f"rowwise_k{kind}_{xd}_p{pk}_swap{int(swap)}_g{int(grad)}_n{block_n}d{block_d}"
                     f"_{'single' if single else 'loop'}"),
            "fn": _rowwise_rows_kernel,
            "signature": {"A": f"*{xd}", "B": f"*{xd}", "C": f"*{xd}", "T": f"*{acc}",
                          "ROW_LOSS": f"*{acc}", "GA": f"*{xd}", "GB": f"*{xd}", "GC": f"*{xd}",
                          "N": "i64", "D": "i64",
                          "margin_arg": "fp64", "p_arg": "fp64", "eps_arg": "fp64",
                          **{k: "constexpr" for k in constexprs}},
            "constexprs": constexprs,
            "num_warps": num_warps,
        })
    block, num_warps = flat_launch_config()
    for kind, xd, grad in ((KIND_MARGIN_RANKING, "fp32", True), (KIND_MARGIN_RANKING, "bf16", False),
                           (KIND_ORDER_CALIBRATE, "fp16", True), (KIND_ORDER_CALIBRATE, "fp64", True)):
        acc = "fp64" if xd == "fp64" else "fp32"
        constexprs = {"KIND": kind, "COMPUTE_GRAD": grad, "BLOCK": block}
        specs.append({
            "name": f"rowwise_flat_k{kind}_{xd}_g{int(grad)}",
            "fn": _rowwise_flat_kernel,
            "signature": {"A": f"*{xd}", "B": f"*{xd}", "T": f"*{acc}", "ROW_LOSS": f"*{acc}",
                          "GA": f"*{xd}", "GB": f"*{xd}", "N": "i64", "margin_arg": "fp64",
                          **{k: "constexpr" for k in constexprs}},
            "constexprs": constexprs,
            "num_warps": num_warps,
        })
    return specs
