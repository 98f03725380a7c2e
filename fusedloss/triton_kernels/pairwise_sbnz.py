"""The lean float32 kernel of the pairwise softplus losses under SBNZ (PAIR_WISE and PAIRWISE_LOGISTIC).

``pairwise.py``'s general kernel serves every kind, OHEM and both schedules, and keeps a pair's loss
bit-identical from either side for OHEM's key; it costs about 100 SASS instructions per pair (sm_90,
fp32 logistic SBNZ). This kernel serves the common training case only: float32 compute, SBNZ (no
OHEM), the SYMMETRIC schedule (each unordered pair once, float atomics on the gradient), kinds
PAIR_WISE and PAIRWISE_LOGISTIC with every margin option. Same contract as ``pairwise.py``: items
session-sorted, [seg_lo[p], seg_hi[p]) p's sorted session, pair (i, j) valid when y'_i > y'_j in one
session, w_i the weight of the higher item, loss = sum_valid w_i softplus(-u_ij) / #{valid, w_i != 0}
with u_ij = (s_i - s_j) / T - mu_ij, mu = margin (PAIR_WISE), (y_i - y_j) / T (use_label_margin),
hinge_margin (LOGISTIC with one) or 0 (spec 3.1, 3.2). Its twins: the CUDA lean kernel
(csrc/pairwise/pairwise_sbnz_cuda.cu) and the cpu backend's SBNZ loop, which share the per-pair
math of csrc/pairwise/pairwise_lean_math.h.

Base 2 throughout: per item a = s (log2(e) / T), so u2 = a_i - a_j - mu log2(e) = u log2(e) and
    e  = 2^(-|u2|) = exp(-|u|)                         (one MUFU.EX2)
    L  = log2(1 + e) = e P(e)                          (P of degree 8: FMAs only)
    softplus(-u) = ln 2 (max(-u2, 0) + L)
    sigmoid(-u)  = exp(-softplus(u)) = 2^(-(max(u2, 0) + L))   (a second MUFU.EX2; no division)
    d loss / d s_i = -w_i sigmoid(-u) / T = -d loss / d s_j
The ln 2 and 1 / T factors are applied to sums, never per pair. Accuracy: P is a degree-8 relative
minimax fit of log2(1 + e) / e on [0, 1] (3.3 ulp after fp32 evaluation); ex2.approx is within 2
ulp of its argument's 2^x; scaling the scores before the difference (EasyRec's order, spec 3) costs
at most an ulp of max |s| / T in u. A pair's loss and gradient stay within ~1e-6 relative of
float64 (the tests hold the sums to 2e-6).

Layout: a program (one warp) owns BLOCK_R = 16 consecutive sorted rows and walks column tiles of
BLOCK_C = 32, from its first row to the end of its rows' sessions. Triton's default blocked layout
puts a [16, 32] tile's columns across the warp's threads (one column per thread) and its 16 rows in
every thread's registers, so the column-side sums over the rows (loss, count, d loss
/ d s_q) are additions inside a thread: no shuffles and no barriers in the loop, one atomicAdd per
column and tile (16 pairs). The row side accumulates in registers and is reduced once at the end.
The loss is summed per tile in fp32 and across tiles in fp64. A tile wholly after the rows and
inside all their sessions, with finite scores (FULL), skips the session test and the guard that
keeps an inf or NaN score out of the pairs it is not in.

Work per pair, from the sm_90 SASS of the loop (``benchmarks/sass_pairwise.py``, logistic, no
weight, grad): 26.9 instructions in a FULL tile, 33.0 in the others, 2 of them MUFU (EX2); the
general kernel: 99-100, 3 MUFU. An SM issues 128 lanes' instructions and 16 MUFU results per clock,
so the loop cannot exceed 128 / 26.9 = 4.8 pairs per SM and clock (MUFU alone: 8). Bytes: O(1) per
column tile (two float32 loads and an atomicAdd per column and 16 pairs), nothing per pair.
"""

import triton
import triton.language as tl

LOG2E = tl.constexpr(1.4426950408889634)
LN2 = tl.constexpr(0.6931471805599453)
INF = tl.constexpr(float("inf"))
BLOCK_R = 16

# log2(1 + e) / e on [0, 1], degree 8, relative minimax; float32 values (exact as written). Module
# floats that jit code reads must be tl.constexpr.
_P0 = tl.constexpr(1.4426950216293335)
_P1 = tl.constexpr(-0.7213401794433594)
_P2 = tl.constexpr(0.48069295287132263)
_P3 = tl.constexpr(-0.35840848088264465)
_P4 = tl.constexpr(0.27564141154289246)
_P5 = tl.constexpr(-0.19711896777153015)
_P6 = tl.constexpr(0.1128561943769455)
_P7 = tl.constexpr(-0.04256706312298775)
_P8 = tl.constexpr(0.007549182511866093)


@triton.jit
def log2_1p_unit(e):
    """log2(1 + e) for e in [0, 1] (float32): e P(e), Horner, FMAs only."""
    p = e * _P8 + _P7
    p = p * e + _P6
    p = p * e + _P5
    p = p * e + _P4
    p = p * e + _P3
    p = p * e + _P2
    p = p * e + _P1
    p = p * e + _P0
    return e * p


@triton.jit
def _tile(cols, cmask, a_c, y_c, w_c, rows, hi_r, a_r, y_r, yl_r, w_r, shift2, inv_t,
          acc_g, acc_s, acc_n, GRAD, SHIFT: tl.constexpr, HAS_WEIGHT: tl.constexpr,
          COMPUTE_GRAD: tl.constexpr, FULL: tl.constexpr):
    """One [BLOCK_R, BLOCK_C] tile against the loaded columns (a = s log2(e) / T, y' and w): the
    accumulators updated, the columns' gradient added to GRAD. FULL: every column is after every row
    and inside every row's session (the interior of a long session, all of an all-pairs batch but
    the diagonal) and every score (and label, with a label margin) of the tile is finite: no session
    test and no guard per pair."""
    # sgn = +1 where the row is the lower item j, -1 where it is the higher item i, 0 for no pair
    # (equal or NaN labels, other sessions). Floats rather than predicates: 16 live predicates per
    # thread made ptxas pack them into registers (4 LOP3 per pair).
    sgn = (y_c[None, :] > y_r[:, None]).to(tl.float32) - (y_r[:, None] > y_c[None, :]).to(tl.float32)
    if not FULL:
        # q > p >= seg_lo[p] and q < seg_hi[p]: same session; columns past col_hi fail the second.
        same = (cols[None, :] > rows[:, None]) & (cols[None, :] < hi_r[:, None])
        sgn = tl.where(same, sgn, 0.0)
    # u2 = (s_i - s_j) log2(e) / T. Outside FULL tiles, 0 where there is no pair, so that an inf or
    # NaN score never reaches the sums through a pair that does not exist (0 * inf is NaN).
    u2 = -sgn * (a_r[:, None] - a_c[None, :])
    if not FULL:
        u2 = tl.where(sgn != 0.0, u2, 0.0)
    if SHIFT == 1:
        u2 = u2 - shift2
    elif SHIFT == 2:
        u2 = u2 - tl.abs(yl_r[:, None] - y_c[None, :] * LOG2E)
    e = tl.exp2(-tl.abs(u2))
    l2 = log2_1p_unit(e)
    sp2 = tl.maximum(-u2, 0.0) + l2                         # softplus(-u) / ln 2
    pair = tl.abs(sgn)                                      # 1 for a pair, else 0
    if HAS_WEIGHT:
        w = tl.where(sgn < 0.0, w_r[:, None], w_c[None, :]) * pair
        acc_s += tl.sum(w * sp2, axis=0).to(tl.float64)
        acc_n += tl.sum((w != 0.0).to(tl.float32), axis=0).to(tl.int32)
    else:
        w = pair
        acc_s += tl.sum(pair * sp2, axis=0).to(tl.float64)
        acc_n += tl.sum(pair, axis=0).to(tl.int32)       # at most BLOCK_R per column: exact
    if COMPUTE_GRAD:
        # sigmoid(-u) = exp(-softplus(u)), softplus(u) / ln 2 = max(u2, 0) + log2(1 + e): one EX2,
        # no division, and no cancellation (both terms >= 0).
        sig = tl.exp2(-(tl.maximum(u2, 0.0) + l2))
        if HAS_WEIGHT:
            sg = (sgn * w) * sig
        else:
            sg = sgn * sig                                  # T d loss / d s_p
        acc_g += sg
        g_c = tl.sum(sg, axis=0) * -inv_t
        tl.atomic_add(GRAD + cols, g_c, mask=cmask & (g_c != 0.0), sem="relaxed")
    return acc_g, acc_s, acc_n


@triton.jit
def _pairwise_sbnz_kernel(
    S, Y, W, SEG_HI, GRAD, PART_S, PART_N,
    B, w_stride,
    inv_t_arg: tl.float64, shift_arg: tl.float64,
    SHIFT: tl.constexpr,             # 0 none, 1 the constant shift_arg, 2 (y'_i - y'_j) (label margin)
    HAS_WEIGHT: tl.constexpr,        # W[p * w_stride] (w_stride 0: a [1] weight), else w = 1
    COMPUTE_GRAD: tl.constexpr,      # GRAD[p] += d loss / d s_p (sorted order, unscaled by 1 / N)
    BLOCK_R: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    """Rows [pid * BLOCK_R, +BLOCK_R) against the columns q > p of their sessions.

    S, Y: [B] float32 scores and labels; W: [B] or [1] float32, or unused; SEG_HI: [B] int64 (sorted
    session ends); B < 2^31. Writes PART_S[pid] (float64 sum of the program's pair losses) and
    PART_N[pid] (int64, its pairs with w_i != 0); atomically adds both sides' d loss / d s to GRAD
    (zero-initialised by the caller). shift_arg: the constant mu (SHIFT 1).
    """
    pid = tl.program_id(0)
    inv_t = tl.full([], inv_t_arg, tl.float32)
    k2 = (tl.full([], inv_t_arg, tl.float64) * LOG2E).to(tl.float32)   # a = s log2(e) / T
    shift2 = (tl.full([], shift_arg, tl.float64) * LOG2E).to(tl.float32)

    r0 = pid * BLOCK_R
    rows = r0 + tl.arange(0, BLOCK_R)
    rmask = rows < B
    hi_r = tl.load(SEG_HI + rows, mask=rmask, other=0).to(tl.int32)   # masked rows: no columns
    col_hi = tl.max(hi_r, axis=0)
    full_hi = tl.min(hi_r, axis=0)   # columns below it are in every row's session (0: a row is masked)
    a_r = tl.load(S + rows, mask=rmask, other=0) * k2
    y_r = tl.load(Y + rows, mask=rmask, other=0)
    yl_r = y_r
    if SHIFT == 2:
        y_r = y_r * inv_t                                  # transform_label: y' = y / T
        yl_r = y_r * LOG2E
    w_r = y_r
    if HAS_WEIGHT:
        w_r = tl.load(W + rows * w_stride, mask=rmask, other=0)
    # FULL tiles need finite scores (and labels, which a label margin puts into u): counted here
    # once for the rows, per tile for the columns (a warp-wide max).
    bad_r = (~(tl.abs(a_r) < INF)).to(tl.int32)
    if SHIFT == 2:
        bad_r = bad_r | (~(tl.abs(y_r) < INF)).to(tl.int32)
    rows_finite = tl.max(bad_r, axis=0) == 0

    acc_g = tl.zeros([BLOCK_R, BLOCK_C], tl.float32)
    acc_s = tl.zeros([BLOCK_C], tl.float64)
    acc_n = tl.zeros([BLOCK_C], tl.int32)
    for c0 in range(r0, col_hi, BLOCK_C):
        cols = c0 + tl.arange(0, BLOCK_C)
        cmask = cols < col_hi
        a_c = tl.load(S + cols, mask=cmask, other=0) * k2
        y_c = tl.load(Y + cols, mask=cmask, other=0)
        bad_c = (~(tl.abs(a_c) < INF)).to(tl.int32)
        if SHIFT == 2:
            y_c = y_c * inv_t
            bad_c = bad_c | (~(tl.abs(y_c) < INF)).to(tl.int32)
        w_c = y_c
        if HAS_WEIGHT:
            w_c = tl.load(W + cols * w_stride, mask=cmask, other=0)
        inside = (c0 >= r0 + BLOCK_R) & (c0 + BLOCK_C <= full_hi)
        if inside & rows_finite & (tl.max(bad_c, axis=0) == 0):
            acc_g, acc_s, acc_n = _tile(cols, cmask, a_c, y_c, w_c, rows, hi_r, a_r, y_r, yl_r, w_r,
                                        shift2, inv_t, acc_g, acc_s, acc_n, GRAD, SHIFT, HAS_WEIGHT,
                                        COMPUTE_GRAD, True)
        else:
            acc_g, acc_s, acc_n = _tile(cols, cmask, a_c, y_c, w_c, rows, hi_r, a_r, y_r, yl_r, w_r,
                                        shift2, inv_t, acc_g, acc_s, acc_n, GRAD, SHIFT, HAS_WEIGHT,
                                        COMPUTE_GRAD, False)

    tl.store(PART_S + pid, tl.sum(acc_s, axis=0) * LN2)
    tl.store(PART_N + pid, tl.sum(acc_n.to(tl.int64), axis=0))
    if COMPUTE_GRAD:
        g_r = tl.sum(acc_g, axis=1) * inv_t
        tl.atomic_add(GRAD + rows, g_r, mask=rmask & (g_r != 0.0), sem="relaxed")

# One warp per program: its 32 threads hold one column each of a 16 x 32 tile. Wider programs
# (more warps, 32 columns each) cost the same per pair but walk their rows' sessions in wider tiles,
# most of a tile wasted past the end of a short session, and meet the FULL condition less often.
BLOCK_C = 32
NUM_WARPS = 1


# False sends every launch to the general kernel: benchmarks/bench_pairwise.py times both side by side.
ENABLED = True


def uses_sbnz_kernel(n: int, acc, kind: int, select, symmetric: bool) -> bool:
    """Whether ``pairwise_fwd_triton`` takes this kernel: float32 SBNZ PAIR_WISE / LOGISTIC under the
    SYMMETRIC schedule, B < 2^31 (int32 indices)."""
    import torch

    return (ENABLED and select is None and acc == torch.float32 and int(kind) in (0, 1) and symmetric
            and 0 < n < 2**31)


def pairwise_sbnz_fwd(scores, labels, weight, seg_hi, kind, flags, temperature, margin,
                      hinge_margin, compute_grad, grad):
    """Launches the kernel, adding into grad when compute_grad: returns (PART_S float64
    [programs], PART_N int64 [programs]); kind, flags as pairwise_math.h (kHasHingeMargin 1,
    kUseLabelMargin 2)."""
    import torch

    n = scores.shape[0]
    programs = triton.cdiv(n, BLOCK_R)
    part_s = scores.new_zeros((programs,), dtype=torch.float64)
    part_n = scores.new_zeros((programs,), dtype=torch.int64)
    if int(kind) == 0:
        shift, shift_val = (1 if float(margin) != 0.0 else 0), float(margin)
    elif flags & 2:
        shift, shift_val = 2, 0.0
    elif flags & 1:
        shift, shift_val = 1, float(hinge_margin)
    else:
        shift, shift_val = 0, 0.0
    has_w = weight is not None
    _pairwise_sbnz_kernel[(programs,)](
        scores, labels, weight if has_w else scores, seg_hi, grad if compute_grad else scores,
        part_s, part_n, n, (1 if weight.numel() == n and n != 1 else 0) if has_w else 0,
        1.0 / float(temperature), shift_val,
        SHIFT=shift, HAS_WEIGHT=has_w, COMPUTE_GRAD=bool(compute_grad), BLOCK_R=BLOCK_R,
        BLOCK_C=BLOCK_C, num_warps=NUM_WARPS,
    )
    return part_s, part_n


def aot_specializations() -> list[dict]:
    """Signatures compiled ahead of time by tests/test_triton_aot.py (sm_80 and sm_90): every SHIFT,
    with and without weight and grad."""
    specs = []
    for shift, has_w, grad in [(0, False, True), (0, True, True), (1, True, True), (2, True, True),
                               (1, False, False), (2, False, True)]:
        specs.append({
            "name": f"pairwise_sbnz_s{shift}_w{int(has_w)}_d{int(grad)}",
            "fn": _pairwise_sbnz_kernel,
            "signature": {
                "S": "*fp32", "Y": "*fp32", "W": "*fp32", "SEG_HI": "*i64", "GRAD": "*fp32",
                "PART_S": "*fp64", "PART_N": "*i64", "B": "i32", "w_stride": "i32",
                "inv_t_arg": "fp64", "shift_arg": "fp64",
                "SHIFT": "constexpr", "HAS_WEIGHT": "constexpr", "COMPUTE_GRAD": "constexpr",
                "BLOCK_R": "constexpr", "BLOCK_C": "constexpr",
            },
            "constexprs": {"SHIFT": shift, "HAS_WEIGHT": has_w, "COMPUTE_GRAD": grad,
                           "BLOCK_R": BLOCK_R, "BLOCK_C": BLOCK_C},
            "num_warps": NUM_WARPS,
        })
    return specs
