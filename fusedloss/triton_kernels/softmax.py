"""Fused forward+backward kernel of the softmax family: torch's cross-entropy (class indices or
class probabilities, class weight, label smoothing) plus z-loss, and the softmax focal loss (mirror
of csrc/softmax/softmax_math.h).

A row is the C logits of one position of x [N, C, D] (row r = n D + j, class c at x[n, c, j]:
stride 1 when D == 1, stride D otherwise). Per row, with m its maximum and s = sum_c e^{x_c - m}:
    lse = m + log s,  log p_c = (x_c - m) - log s,  p_c = e^{x_c - m} / s;
sums of the form sum_c w_c (lse - x_c) are kept as W log s + sum_c w_c (m - x_c), a sum of
non-negative terms, so logits of +-1e4 lose nothing to cancellation against lse. On the looped path
the running sum is moved with the running maximum (S += W_seen (m_new - m_old)).
    cross-entropy, class index y: (1 - eps) w_y (lse - x_y) + eps/C sum_c w_c (lse - x_c) + z lse^2
        grad_c = (1 - eps) w_y (p_c - [c = y]) + eps/C (W p_c - w_c) + 2 z lse p_c
    cross-entropy, probabilities: A log s + sum_c w_c q_c (m - x_c) + z lse^2, A = sum_c w_c q_c
        (q = t (1 - eps) + eps/C);  grad_c = A p_c - w_c q_c + 2 z lse p_c
    focal (a = alpha): f(p) = -(1 - p)^gamma log p, g(p) = p f'(p); loss = sum_c q_c a_c f(p_c),
        G = sum_c q_c a_c g(p_c), grad_c = q_c a_c g(p_c) - p_c G; without smoothing only class y
        has q > 0, so loss = a_y f(p_y) and grad_c = G ([c = y] - p_c) (the cross-entropy form with
        (1 - eps) w_y replaced by -G). 1 - p = -expm1(log p) by a short series where p > 1/2
        (no libdevice).
Ignored rows (y == ignore_index) get loss 0, denominator 0 and gradient 0. Core ``tl.*`` math only,
so the interpreter and the compiled kernel run the same code; compute dtype fp32 (fp64 for fp64
input), which the LOSS pointer defines. Runtime float scalars reach a kernel as fp32, so eps, z and
gamma travel as fp32 (hi, lo) pairs and are rebuilt in the compute dtype (fp64 stays exact).

Paths (constexpr SINGLE) and grid (one axis, programs over rows):
    SINGLE  C <= BLOCK_C (at most 4096 classes, 2048 in fp64): the [BLOCK_R, BLOCK_C] tile stays
            in registers, rows stacked to >= 1024 elements per program; the row is read once and
            one exp per element serves lse, the sums and the gradient.
    looped  longer rows, chunks of BLOCK_C: pass 1 (online maximum, s and the weighted sums),
            [focal with smoothing: pass 2, loss and G], then the gradient pass. Each pass walks the
            chunks in the opposite order of the one before, so it starts on what the last pass left
            in L1/L2.
    STRIDED D > 1: a program takes BLOCK_R consecutive positions j of one n (grid N x
            cdiv(D, BLOCK_R)), so every class is a contiguous run of BLOCK_R logits.

Memory floor, per element (x's bytes B_x): class indices B_x read + B_x grad written (bf16: 4 B,
fp32: 8 B), plus 8 B of target and 8 B of (loss, denominator) per row; probability targets add B_x
read; without grad B_x (+ B_x). Looped rows read x again per extra pass, from L2 while the rows in
flight fit there (one row per program: about 264 rows on an H100 resident at once; 32k-class bf16
rows fit the 50 MB L2, 256k-class rows only partly).
Transcendentals per element: one exp (cross-entropy; focal without smoothing), plus for focal with
smoothing a log2 and two exp2 when gamma is not 0, 1 or 2 (the 1 - p series is FMAs only). Per row:
one log, plus for focal without smoothing one exp (p_y) and the pow of the target class. The
looped path recomputes the exp (and the focal terms) in its gradient pass.
"""

import struct

import torch
import triton
import triton.language as tl

from fusedloss.triton_kernels.focal import GAMMA_ANY, GAMMA_ONE, GAMMA_TWO, GAMMA_ZERO
from fusedloss.triton_kernels.focal import gamma_kind, modulating_factor

MODE_CE, MODE_FOCAL = 0, 1
SINGLE_MAX_C = 4096             # rows up to this length stay in registers (fp64: half)


@triton.jit
def _one_minus_exp(a, e):
    """1 - e^a for a <= 0, given e = e^a: -(a + a^2/2! + ... + a^n/n!) for a > -ln 2 (p > 1/2,
    where 1 - e loses digits; truncation below 1e-9 relative in fp32, 1e-17 in fp64), else 1 - e."""
    if a.dtype == tl.float64:
        N_TERMS: tl.constexpr = 16
    else:
        N_TERMS: tl.constexpr = 9
    s = tl.zeros_like(a) + 1.0
    for i in tl.static_range(N_TERMS - 1):
        s = 1.0 + s * a * (1.0 / (N_TERMS - i))
    return tl.where(a > -0.6931471805599453, -(a * s), 1.0 - e)


@triton.jit
def _focal_fg(logp, p, gamma, GAMMA_KIND: tl.constexpr):
    """f = -(1 - p)^gamma log p and g = p f'(p) = gamma p (1 - p)^(gamma - 1) log p - (1 - p)^gamma
    (softmax_math.h's focal_term; the q == 0 limits of modulating_pow)."""
    u = tl.maximum(_one_minus_exp(logp, p), 0.0)
    mu, dmu = modulating_factor(u, 1.0, gamma, GAMMA_KIND)
    return -mu * logp, p * logp * dmu - mu


@triton.jit
def _load_chunk(X, T, W, base, rmask, cols, C, D, eps, eps_c, ACC: tl.constexpr, PROB: tl.constexpr,
                HAS_WEIGHT: tl.constexpr, HAS_SMOOTHING: tl.constexpr, STRIDED: tl.constexpr):
    """The tile rows x cols: (offsets, lane mask, x (-inf off the lanes), w, wq).

    w: [1, BLOCK_C] class weight (1 without one), 0 past C. wq: the weight of the pass-1 sums,
    w q for probability targets, else w (all in the compute dtype)."""
    cmask = cols < C
    lane = rmask[:, None] & cmask[None, :]
    if STRIDED:
        off = base[:, None] + cols[None, :].to(tl.int64) * D
    else:
        off = base[:, None] + cols[None, :]
    x = tl.load(X + off, mask=lane, other=float("-inf")).to(ACC)
    if HAS_WEIGHT:
        w = tl.load(W + cols, mask=cmask, other=0.0)[None, :]
    else:
        w = tl.where(cmask, 1.0, 0.0).to(ACC)[None, :]
    if PROB:
        t = tl.load(T + off, mask=lane, other=0).to(ACC)
        if HAS_SMOOTHING:
            t = t * (1.0 - eps) + eps_c
        wq = w * t
    else:
        wq = w
    return off, lane, x, w, wq


@triton.jit
def _lse_update(x, wq, lane, m, s, S, Wa, NEED_S: tl.constexpr):
    """Adds a chunk to the row state: m (maximum, -inf while empty), s = sum e^{x - m'},
    S = sum wq (m' - x), Wa = sum wq, where m' is m, or 0 while m is -inf. Returns the new state
    and e^{x - m'} of the chunk."""
    m_new = tl.maximum(m, tl.max(x, axis=1))
    ms = tl.where(m_new == float("-inf"), 0.0, m_new)
    e = tl.exp(x - ms[:, None])
    s = s * tl.exp(m - ms) + tl.sum(e, axis=1)
    if NEED_S:
        ms_old = tl.where(m == float("-inf"), 0.0, m)
        S = S + Wa * (ms - ms_old) + tl.sum(wq * tl.where(lane, ms[:, None] - x, 0.0), axis=1)
        Wa = Wa + tl.sum(tl.where(lane, wq, 0.0), axis=1)
    return m_new, s, S, Wa, e


@triton.jit
def _grad_chunk(x, p, w, wq, lane, cols, ys, valid, ms, log_s, Wa, coef_y, zz, big_g, eps,
                eps_c, gamma, MODE: tl.constexpr, PROB: tl.constexpr, HAS_SMOOTHING: tl.constexpr,
                HAS_Z: tl.constexpr, GAMMA_KIND: tl.constexpr):
    """d(row loss)/dx of a tile from the row's quantities, grouped as in softmax_math.h (exact 0
    where p = [c = y], e.g. C = 1); 0 on ignored rows."""
    if MODE == 1 and HAS_SMOOTHING:
        q = tl.where(cols[None, :] == ys[:, None], 1.0 - eps, 0.0) + eps_c
        logp = tl.where(lane, (x - ms[:, None]) - log_s[:, None], 0.0)   # finite off the lanes
        _, g = _focal_fg(logp, p, gamma, GAMMA_KIND)
        gr = q * w * g - p * big_g[:, None]
    elif PROB:
        gr = Wa[:, None] * p - wq
    else:
        gr = coef_y[:, None] * (p - tl.where(cols[None, :] == ys[:, None], 1.0, 0.0))
        if HAS_SMOOTHING:
            gr += eps_c * (Wa[:, None] * p - w)
    if HAS_Z:
        gr += zz[:, None] * p
    return tl.where(valid[:, None], gr, 0.0)


@triton.jit
def _focal_sums(x, p, w, lane, cols, ys, ms, log_s, eps, eps_c, gamma, GAMMA_KIND: tl.constexpr):
    """Per row of a tile: sum q a f(p) and sum q a g(p) (focal with smoothing)."""
    q = tl.where(cols[None, :] == ys[:, None], 1.0 - eps, 0.0) + eps_c
    logp = tl.where(lane, (x - ms[:, None]) - log_s[:, None], 0.0)       # finite off the lanes
    f, g = _focal_fg(logp, p, gamma, GAMMA_KIND)
    qa = q * w
    return (tl.sum(tl.where(lane, qa * f, 0.0), axis=1),
            tl.sum(tl.where(lane, qa * g, 0.0), axis=1))


@triton.jit
def _chunk_start(i, n_chunks, REVERSE: tl.constexpr, BLOCK_C: tl.constexpr):
    if REVERSE:
        return (n_chunks - 1 - i) * BLOCK_C
    else:
        return i * BLOCK_C


@triton.jit
def _softmax_kernel(
    X, T, W, LOSS, DEN, GRAD,
    n_rows, C, D, j_blocks, ignore_index,
    eps_hi, eps_lo, z_hi, z_lo, gamma_hi, gamma_lo,
    MODE: tl.constexpr,            # 0 cross-entropy, 1 focal
    PROB: tl.constexpr,            # T: probabilities [N, C, D] (mode 0), else int64 indices [N, D]
    HAS_WEIGHT: tl.constexpr,      # W [C]: class weight (mode 0) or alpha (mode 1)
    HAS_SMOOTHING: tl.constexpr,   # eps > 0
    HAS_Z: tl.constexpr,           # z > 0 (mode 0)
    GAMMA_KIND: tl.constexpr,      # focal.py's: 0, 1, 2 for gamma = 0, 1, 2; 3 any other
    COMPUTE_GRAD: tl.constexpr,
    STRIDED: tl.constexpr,         # D > 1: class stride D, BLOCK_R positions j of one n
    SINGLE: tl.constexpr,          # C <= BLOCK_C: the tile stays in registers
    BLOCK_R: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    """X [N, C, D]; LOSS, DEN [N D] in the compute dtype (which they define); GRAD [N, C, D] in X's
    dtype; n_rows = N D (unused when STRIDED); j_blocks = cdiv(D, BLOCK_R)."""
    ACC: tl.constexpr = LOSS.dtype.element_ty
    NEED_S: tl.constexpr = MODE == 0 and (PROB or HAS_SMOOTHING)
    if STRIDED:
        pid = tl.program_id(0)
        n32 = pid // j_blocks                          # 32-bit division (no 64-bit subroutine)
        j = (pid - n32 * j_blocks) * BLOCK_R + tl.arange(0, BLOCK_R)
        rmask = j < D
        n = n32.to(tl.int64)
        row = n * D + j
        base = n * C * D + j
    else:
        row = tl.program_id(0).to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)
        rmask = row < n_rows
        base = row * C
    eps = tl.cast(eps_hi, ACC) + tl.cast(eps_lo, ACC)
    eps_c = eps / C
    z = tl.cast(z_hi, ACC) + tl.cast(z_lo, ACC)
    gamma = tl.cast(gamma_hi, ACC) + tl.cast(gamma_lo, ACC)

    if PROB:
        ys = tl.zeros([BLOCK_R], tl.int32)
        valid = rmask
    else:
        y = tl.load(T + row, mask=rmask, other=0)
        valid = rmask & (y != ignore_index)
        ys = tl.minimum(tl.maximum(y, 0), C - 1).to(tl.int32)   # in range whatever y holds
        # Read before pass 1: with GRAD == X (inplace_grad) another thread of this program may
        # overwrite x_y in the gradient pass; pass 1's cross-warp reductions order the two.
        if STRIDED:
            x_y = tl.load(X + base + ys.to(tl.int64) * D, mask=valid, other=0).to(ACC)
        else:
            x_y = tl.load(X + base + ys, mask=valid, other=0).to(ACC)

    # Pass 1: the row's maximum, s, and (cross-entropy) the weighted sums.
    m = tl.full([BLOCK_R], float("-inf"), ACC)
    s = tl.zeros([BLOCK_R], ACC)
    S = tl.zeros([BLOCK_R], ACC)
    Wa = tl.zeros([BLOCK_R], ACC)
    if SINGLE:
        cols = tl.arange(0, BLOCK_C)
        off, lane, x, w, wq = _load_chunk(X, T, W, base, rmask, cols, C, D, eps, eps_c, ACC, PROB,
                                          HAS_WEIGHT, HAS_SMOOTHING, STRIDED)
        m, s, S, Wa, e = _lse_update(x, wq, lane, m, s, S, Wa, NEED_S)
    else:
        n_chunks = tl.cdiv(C, BLOCK_C)
        for i in range(n_chunks):
            cols = _chunk_start(i, n_chunks, False, BLOCK_C) + tl.arange(0, BLOCK_C)
            off, lane, x, w, wq = _load_chunk(X, T, W, base, rmask, cols, C, D, eps, eps_c, ACC,
                                              PROB, HAS_WEIGHT, HAS_SMOOTHING, STRIDED)
            m, s, S, Wa, e = _lse_update(x, wq, lane, m, s, S, Wa, NEED_S)
    ms = tl.where(m == float("-inf"), 0.0, m)
    s = tl.where(rmask, s, 1.0)                        # rows past the end: no log(0), no 1 / 0
    log_s = tl.log(s)
    lse = ms + log_s

    # The row's loss, denominator and gradient coefficients.
    coef_y = tl.zeros([BLOCK_R], ACC)
    big_g = tl.zeros([BLOCK_R], ACC)
    if PROB:
        loss = Wa * log_s + S
        den = tl.where(valid, 1.0, 0.0).to(ACC)
    else:
        if HAS_WEIGHT:
            w_y = tl.load(W + ys, mask=valid, other=0.0)
        else:
            w_y = tl.where(valid, 1.0, 0.0).to(ACC)
        if MODE == 0:
            den = w_y
            if HAS_SMOOTHING:
                loss = (1.0 - eps) * w_y * ((ms - x_y) + log_s) + eps_c * (Wa * log_s + S)
                coef_y = (1.0 - eps) * w_y
            else:
                loss = w_y * ((ms - x_y) + log_s)
                coef_y = w_y
        else:
            den = tl.where(valid, 1.0, 0.0).to(ACC)
            if HAS_SMOOTHING:
                # Pass 2: sum_c q_c a_c f(p_c) and G = sum_c q_c a_c g(p_c).
                loss = tl.zeros([BLOCK_R], ACC)
                if SINGLE:
                    p = e * (1.0 / s)[:, None]
                    loss, big_g = _focal_sums(x, p, w, lane, cols, ys, ms, log_s, eps, eps_c,
                                              gamma, GAMMA_KIND)
                else:
                    for i in range(n_chunks):
                        cols = _chunk_start(i, n_chunks, True, BLOCK_C) + tl.arange(0, BLOCK_C)
                        off, lane, x, w, wq = _load_chunk(X, T, W, base, rmask, cols, C, D, eps,
                                                          eps_c, ACC, PROB, HAS_WEIGHT,
                                                          HAS_SMOOTHING, STRIDED)
                        p = tl.exp((x - ms[:, None]) - log_s[:, None])
                        lc, gc = _focal_sums(x, p, w, lane, cols, ys, ms, log_s, eps, eps_c,
                                             gamma, GAMMA_KIND)
                        loss += lc
                        big_g += gc
                big_g = tl.where(valid, big_g, 0.0)
            else:
                logp_y = tl.where(valid, (x_y - ms) - log_s, 0.0)   # ignored rows: no overflow
                f_y, g_y = _focal_fg(logp_y, tl.exp(logp_y), gamma, GAMMA_KIND)
                loss = w_y * f_y
                big_g = w_y * g_y          # 0 on ignored rows (w_y = 0 there)
                coef_y = -big_g            # grad_c = G ([c = y] - p_c)
    zz = tl.where(valid, 2.0 * z * lse, 0.0)
    if HAS_Z:
        loss += z * lse * lse
    tl.store(LOSS + row, tl.where(valid, loss, 0.0), mask=rmask)
    tl.store(DEN + row, den, mask=rmask)

    if COMPUTE_GRAD:
        if SINGLE:
            p = e * (1.0 / s)[:, None]
            gr = _grad_chunk(x, p, w, wq, lane, cols, ys, valid, ms, log_s, Wa, coef_y, zz, big_g,
                             eps, eps_c, gamma, MODE, PROB, HAS_SMOOTHING, HAS_Z, GAMMA_KIND)
            tl.store(GRAD + off, gr.to(GRAD.dtype.element_ty), mask=lane)
        else:
            # Opposite to the last pass: reverse after pass 1, forward after the focal pass 2.
            REVERSE: tl.constexpr = not (MODE == 1 and HAS_SMOOTHING)
            for i in range(n_chunks):
                cols = _chunk_start(i, n_chunks, REVERSE, BLOCK_C) + tl.arange(0, BLOCK_C)
                off, lane, x, w, wq = _load_chunk(X, T, W, base, rmask, cols, C, D, eps, eps_c,
                                                  ACC, PROB, HAS_WEIGHT, HAS_SMOOTHING, STRIDED)
                p = tl.exp((x - ms[:, None]) - log_s[:, None])
                gr = _grad_chunk(x, p, w, wq, lane, cols, ys, valid, ms, log_s, Wa, coef_y, zz,
                                 big_g, eps, eps_c, gamma, MODE, PROB, HAS_SMOOTHING, HAS_Z,
                                 GAMMA_KIND)
                tl.store(GRAD + off, gr.to(GRAD.dtype.element_ty), mask=lane)


def launch_config(C: int, D: int = 1, fp64: bool = False) -> tuple[bool, int, int, int]:
    """(single, BLOCK_R, BLOCK_C, num_warps) from the shape and the compute dtype alone (no
    autotune: the interpreter and the AOT test see the same configs).

    D == 1: rows up to SINGLE_MAX_C classes (fp64: half) take one power-of-2 tile, rows stacked to
    at least 1024 elements per program; longer rows one per program in chunks of that width.
    D > 1: at least 8 (up to 1024 / BLOCK_C) consecutive positions per program for coalescing; the
    single tile then holds up to SINGLE_MAX_C / 8 classes, longer rows loop over chunks of 32
    positions. Warps are set for 8 elements per thread (fp64: 4), 4 to 16 of them.
    """
    single_max = SINGLE_MAX_C // 2 if fp64 else SINGLE_MAX_C
    per_thread = 4 if fp64 else 8
    block_c = max(2, triton.next_power_of_2(max(int(C), 1)))
    if D <= 1:
        if block_c <= single_max:
            single, block_r = True, max(1, 1024 // block_c)
        else:
            single, block_r, block_c = False, 1, single_max
    else:
        d_pow = triton.next_power_of_2(int(D))
        block_r = min(d_pow, max(8, 1024 // block_c))
        if block_c * block_r <= single_max:
            single = True
        else:
            single, block_r = False, min(d_pow, 32)
            block_c = single_max // block_r
    num_warps = max(4, min(16, block_r * block_c // (32 * per_thread)))
    return single, block_r, block_c, num_warps


def _hi_lo(v: float) -> tuple[float, float]:
    """v as fp32 hi + fp32 lo (kernel float arguments are fp32; hi + lo in fp64 is v to ~2^-48)."""
    v = float(v)
    if not abs(v) < 3.0e38:
        return v, 0.0
    hi = struct.unpack("f", struct.pack("f", v))[0]
    lo = v - hi
    return hi, (struct.unpack("f", struct.pack("f", lo))[0] if abs(lo) > 1e-38 else 0.0)


_FLOAT = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def softmax_rows_triton(x, t, weight, row_loss, row_den, grad, *, mode, ignore_index, smoothing,
                        z_loss, gamma, compute_grad):
    """Fills row_loss, row_den [N D] (compute dtype: fp32, fp64 for fp64 x) with each row's loss and
    mean denominator and, when compute_grad, grad [N, C, D] (x's dtype) with d(row loss)/dx.

    x: contiguous [N, C, D]; t: int64 [N, D] class indices (in [0, C) or ignore_index) or, mode 0
    only, probabilities [N, C, D] in x's dtype; weight: None or [C] in the compute dtype (class
    weight for mode 0, alpha for mode 1). mode 0 cross-entropy (+ z_loss), 1 focal (gamma)."""
    if x.dim() != 3 or not x.is_contiguous() or x.dtype not in _FLOAT:
        raise ValueError(f"x must be a contiguous [N, C, D] float tensor, got {tuple(x.shape)} "
                         f"{x.dtype}")
    n, c, d = x.shape
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    prob = t.dtype.is_floating_point
    for name, out in (("row_loss", row_loss), ("row_den", row_den)):
        if out.shape != (n * d,) or out.dtype != acc or not out.is_contiguous():
            raise ValueError(f"{name} must be a contiguous [{n * d}] {acc} tensor, got "
                             f"{tuple(out.shape)} {out.dtype}")
    if prob:
        if mode != MODE_CE or t.shape != x.shape or t.dtype != x.dtype or not t.is_contiguous():
            raise ValueError(f"probability targets (cross-entropy only) must be a contiguous "
                             f"{tuple(x.shape)} {x.dtype} tensor, got {tuple(t.shape)} {t.dtype}")
    elif t.shape != (n, d) or t.dtype != torch.int64 or not t.is_contiguous():
        raise ValueError(f"t must be a contiguous [{n}, {d}] int64 tensor, got {tuple(t.shape)} "
                         f"{t.dtype}")
    if weight is not None and (weight.shape != (c,) or weight.dtype != acc
                               or not weight.is_contiguous()):
        raise ValueError(f"weight must be a contiguous [{c}] {acc} tensor, got "
                         f"{tuple(weight.shape)} {weight.dtype}")
    if compute_grad and (grad.shape != x.shape or grad.dtype != x.dtype
                         or not grad.is_contiguous()):
        raise ValueError(f"grad must be a contiguous {tuple(x.shape)} {x.dtype} tensor, got "
                         f"{tuple(grad.shape)} {grad.dtype}")
    if mode not in (MODE_CE, MODE_FOCAL):
        raise ValueError(f"mode must be 0 (cross-entropy) or 1 (focal), got {mode}")
    if n * d == 0:
        return
    if c == 0:
        # Every row sums over nothing: loss 0, and denominator 0 so that the mean is NaN as in
        # torch (index targets are all ignored; torch divides probabilities by numel / C = 0 / 0).
        row_loss.zero_()
        row_den.zero_()
        return

    single, block_r, block_c, num_warps = launch_config(c, d, x.dtype == torch.float64)
    strided = d > 1
    if strided:
        j_blocks = triton.cdiv(d, block_r)
        programs = n * j_blocks
    else:
        block_r = min(block_r, triton.next_power_of_2(n))
        j_blocks = 1
        programs = triton.cdiv(n, block_r)
    eps_hi, eps_lo = _hi_lo(smoothing)
    z_hi, z_lo = _hi_lo(z_loss)
    g_hi, g_lo = _hi_lo(gamma)
    _softmax_kernel[(programs,)](
        x, t, row_loss if weight is None else weight, row_loss, row_den,
        grad if compute_grad else x,
        n * d, c, d, j_blocks, int(ignore_index),
        eps_hi, eps_lo, z_hi, z_lo, g_hi, g_lo,
        MODE=int(mode), PROB=prob, HAS_WEIGHT=weight is not None,
        HAS_SMOOTHING=float(smoothing) > 0, HAS_Z=mode == MODE_CE and float(z_loss) > 0,
        GAMMA_KIND=gamma_kind(gamma) if mode == MODE_FOCAL else GAMMA_ZERO,
        COMPUTE_GRAD=bool(compute_grad), STRIDED=strided, SINGLE=single,
        BLOCK_R=block_r, BLOCK_C=block_c, num_warps=num_warps,
    )


def aot_specializations() -> list[dict]:
    """Signatures compiled ahead of time by tests/test_triton_aot.py (sm_80 and sm_90):
    cross-entropy with class indices (weight, smoothing, z-loss) and probabilities, focal with and
    without smoothing over the gamma kinds, fp32/fp16/bf16/fp64, with and without grad, on the
    single-tile path (multi-row 16- and 128-wide tiles, the widest tile), the looped path, and
    D > 1 (single and looped)."""
    cases = [
        # (x dtype, mode, prob, weight, smoothing, z, gamma kind, grad)
        ("fp32", MODE_CE, False, False, False, False, GAMMA_ZERO, True),
        ("fp32", MODE_CE, False, True, True, True, GAMMA_ZERO, True),
        ("bf16", MODE_CE, False, False, False, True, GAMMA_ZERO, True),
        ("bf16", MODE_CE, False, True, True, False, GAMMA_ZERO, False),
        ("fp16", MODE_CE, False, False, True, False, GAMMA_ZERO, True),
        ("fp32", MODE_CE, True, False, False, False, GAMMA_ZERO, True),
        ("bf16", MODE_CE, True, True, True, True, GAMMA_ZERO, True),
        ("fp64", MODE_CE, False, True, True, True, GAMMA_ZERO, True),
        ("fp64", MODE_CE, True, True, True, False, GAMMA_ZERO, True),
        ("fp32", MODE_FOCAL, False, True, False, False, GAMMA_TWO, True),
        ("fp32", MODE_FOCAL, False, True, True, False, GAMMA_ANY, True),
        ("bf16", MODE_FOCAL, False, False, True, False, GAMMA_TWO, True),
        ("fp16", MODE_FOCAL, False, False, False, False, GAMMA_ANY, False),
        ("bf16", MODE_FOCAL, False, True, True, False, GAMMA_ONE, False),
        ("fp32", MODE_FOCAL, False, False, True, False, GAMMA_ZERO, True),
        ("fp64", MODE_FOCAL, False, True, True, False, GAMMA_ANY, True),
        ("fp64", MODE_FOCAL, False, False, False, False, GAMMA_ANY, True),
    ]
    shapes = [(16, 1), (100, 1), ("max", 1), (5000, 1), (21, 4096), (5000, 64)]   # (C, D)
    specs = []
    for xd, mode, prob, has_w, has_s, has_z, gk, grad in cases:
        fp64 = xd == "fp64"
        acc = "fp64" if fp64 else "fp32"
        for c, d in shapes:
            if c == "max":
                c = SINGLE_MAX_C // 2 if fp64 else SINGLE_MAX_C
            single, block_r, block_c, num_warps = launch_config(c, d, fp64)
            specs.append({
                "name": f"softmax_{xd}_m{mode}_p{int(prob)}_w{int(has_w)}_s{int(has_s)}"
                        f"_z{int(has_z)}_g{gk}_grad{int(grad)}_d{int(d > 1)}_single{int(single)}"
                        f"_r{block_r}c{block_c}",
                "fn": _softmax_kernel,
                "signature": {
                    "X": f"*{xd}", "T": f"*{xd}" if prob else "*i64", "W": f"*{acc}",
                    "LOSS": f"*{acc}", "DEN": f"*{acc}", "GRAD": f"*{xd}",
                    "n_rows": "i64", "C": "i64", "D": "i64", "j_blocks": "i32",
                    "ignore_index": "i64",
                    "eps_hi": "fp32", "eps_lo": "fp32", "z_hi": "fp32", "z_lo": "fp32",
                    "gamma_hi": "fp32", "gamma_lo": "fp32",
                    "MODE": "constexpr", "PROB": "constexpr", "HAS_WEIGHT": "constexpr",
                    "HAS_SMOOTHING": "constexpr", "HAS_Z": "constexpr", "GAMMA_KIND": "constexpr",
                    "COMPUTE_GRAD": "constexpr", "STRIDED": "constexpr", "SINGLE": "constexpr",
                    "BLOCK_R": "constexpr", "BLOCK_C": "constexpr",
                },
                "constexprs": {
                    "MODE": mode, "PROB": prob, "HAS_WEIGHT": has_w, "HAS_SMOOTHING": has_s,
                    "HAS_Z": has_z, "GAMMA_KIND": gk, "COMPUTE_GRAD": grad, "STRIDED": d > 1,
                    "SINGLE": single, "BLOCK_R": block_r, "BLOCK_C": block_c,
                },
                "num_warps": num_warps,
            })
    return specs
