"""Fused kernels of the pairwise session losses (mirror of csrc/pairwise/pairwise_math.h).

Items come session-sorted: scores s, transformed labels y' (``transform_label``), weights w, the
original batch index ``order[p]`` and p's session range ``[seg_lo[p], seg_hi[p])``. A pair (i, j) is
valid when y'_i > y'_j, both share a session, and (PAIRWISE_FOCAL with a hinge margin) d_ij < h;
``pair_eval`` gives its weighted loss, SBNZ weight v and d loss / d s_i, d loss / d s_j (spec 1.4, 3).

One program owns BLOCK_R consecutive sorted rows [r0, r0 + BLOCK_R) and walks the columns of their
sessions in tiles of BLOCK_C (runtime loop bounds). A pair's arguments are selected per element so
that the higher item is i whichever side holds it (``hi_side``): a pair gives bit-identical values
seen from either side, in every mode (the OHEM histogram passes and the final pass rank the same
loss bits). Loss sums and counts are per-program partials (PART_S, PART_N) finished by torch ops, so
the loss is deterministic for a given B under both schedules (constexpr SYMMETRIC):

    SYMMETRIC (the default): the column loop starts at r0 and a pair (p, q) is taken only when
        q > p, so every pair is evaluated once, by the program of its lower sorted position, and
        counted there. d loss / d s of the row side accumulates in registers; the column side's is
        summed over the tile's rows and added to GRAD[q] with tl.atomic_add, and the row sums are
        atomically added at the end (GRAD is zero-initialised by the caller). Float atomics add a
        gradient's terms in a run-dependent order: its last bits may vary from run to run.
    two-sided (SYMMETRIC False), used when ``torch.are_deterministic_algorithms_enabled()``: the
        program walks every column of its rows' sessions. With a gradient it sees each of its rows'
        pairs from both sides: as the higher item i (the pair's loss and count are taken there,
        once) and as the lower item j (gradient only); every row's gradient is then complete in
        registers and stored once, without atomics, so results are bitwise reproducible. Without a
        gradient (MODE 2, or no grad) the row is item i and each pair counts at its higher row.

MODE (constexpr):
    0  SBNZ: loss = sum over valid pairs of loss / #{valid pairs with v != 0}; 0 when there are none.
    1  OHEM final pass: a pair counts iff valid, loss > 0 and its 128-bit key (ohem_key: loss word
       high, loss word low, ~order[i], ~order[j]) >= the k-th largest key K* = select[0:4]
       (unsigned 32-bit words, lexicographic); select[4] == 0 disables every pair.
       loss = sum / count (NaN for no pairs: OHEM's empty mean).
    2  OHEM histogram of one radix digit (0..11; digit d is bits [shift, shift + width) of word
       d // 3, shift (21, 10, 0)[d % 3], width 11, 11, 10) of the keys of the valid pairs whose
       decided digits match state[0:4]; a per-program tl.histogram, added once per program to the
       int64 [2048] output. state[4] != 0 (selection finished) empties the column loop, leaving the
       output zero.
The loss words are an order-preserving map of the loss's bits: float32 acc -> (ohem_key_bits(loss),
0); float64 acc -> the 64-bit map split into its high and low 32-bit words, so float64 losses are
ranked exactly. Key words are handled as int64 holding the unsigned 32-bit value, so comparisons,
~ and shifts (shift 32 included) mean the same thing under the interpreter and in the compiled
kernel.

Float32 SBNZ PAIR_WISE / PAIRWISE_LOGISTIC under the SYMMETRIC schedule goes to the lean kernel of
``pairwise_sbnz.py`` instead (``pairwise_fwd_triton`` dispatches; about a third of this kernel's
instructions per pair); everything else runs here.

Work: SYMMETRIC evaluates each pair of a session (p, q), p < q, once; the two-sided schedule twice
(once from each side). Each evaluation is one exp and one log (plus one log and two exps for
PAIRWISE_FOCAL with gamma not in {0, 1, 2}).
"""

import itertools

import numpy as np
import torch
import triton
import triton.language as tl

from fusedloss.triton_kernels import pairwise_sbnz
from fusedloss.triton_kernels.focal import log1p_unit, modulating_factor

KIND_PAIR_WISE, KIND_LOGISTIC, KIND_FOCAL, KIND_HINGE = 0, 1, 2, 3
FLAG_HAS_HINGE_MARGIN, FLAG_USE_LABEL_MARGIN, FLAG_LABEL_IS_LOGITS, FLAG_USE_EXPONENT = 1, 2, 4, 8
MODE_SBNZ, MODE_SELECT, MODE_HIST = 0, 1, 2
GAMMA_ZERO, GAMMA_ONE, GAMMA_TWO, GAMMA_ANY = 0, 1, 2, 3
N_BINS = 2048
OHEM_WORDS, OHEM_DIGITS = 4, 12    # 128-bit OHEM key: four 32-bit words of three digits each
HIST_BINS = tl.constexpr(N_BINS)   # a constexpr global: compiled kernels may only read those


@triton.jit
def _sigmoid_of(x):
    e = tl.exp(-tl.abs(x))
    inv = 1.0 / (1.0 + e)
    return tl.where(x >= 0, inv, e * inv)


@triton.jit
def _transform_label(y, inv_t, KIND: tl.constexpr, USE_LABEL_MARGIN: tl.constexpr,
                     LABEL_IS_LOGITS: tl.constexpr, USE_EXPONENT: tl.constexpr):
    if KIND == 3:
        if LABEL_IS_LOGITS:
            y = y * inv_t
        if USE_EXPONENT:
            y = _sigmoid_of(y)
    elif KIND == 1:
        if USE_LABEL_MARGIN:
            y = y * inv_t
    return y


@triton.jit
def _hinge_item(s, inv_t, USE_EXPONENT: tl.constexpr):
    """(s', d s' / d s) of one item: pair_eval's per-item part of kHinge (s' = s / T, sigmoided)."""
    sp = s * inv_t
    if USE_EXPONENT:
        sp = _sigmoid_of(sp)
        dsp = inv_t * sp * (1.0 - sp)
    else:
        dsp = tl.zeros_like(sp) + inv_t
    return sp, dsp


@triton.jit
def _pair_eval(s_i, s_j, yt_i, yt_j, w_i, ds_i_item, ds_j_item, inv_t, margin, hinge_margin, gamma,
               alpha_factor, KIND: tl.constexpr, HAS_HINGE_MARGIN: tl.constexpr,
               USE_LABEL_MARGIN: tl.constexpr, USE_EXPONENT: tl.constexpr,
               GAMMA_KIND: tl.constexpr, NEED_GRAD: tl.constexpr):
    """pair_eval of pairwise_math.h on a tile: (valid, loss, v, d loss/d s_i, d loss/d s_j).

    For kHinge, s_i / s_j are already s' (``_hinge_item``) and ds_*_item their derivatives;
    alpha_factor is pairwise_math's a (the alpha term at target 1; 1 without alpha).
    """
    valid = yt_i > yt_j
    if KIND == 3:
        if USE_LABEL_MARGIN:
            delta = (yt_i - yt_j) - (s_i - s_j)
        else:
            delta = margin - (s_i - s_j)
        if USE_EXPONENT:
            c = tl.where(delta < -88.0, -88.0, tl.where(delta > 88.0, 88.0, delta))
            ex = tl.exp(c)
            pos = ex - 1.0 > 0.0
            inside = (delta > -88.0) & (delta < 88.0)
            l = tl.where(pos, ex - 1.0, 0.0)
            dl = tl.where(pos & inside, ex, 0.0)
        else:
            l = tl.where(delta > 0.0, delta, 0.0)
            dl = tl.where(delta > 0.0, 1.0, 0.0)
        v = w_i
        loss = w_i * l
        if NEED_GRAD:
            ds_i = -w_i * dl * ds_i_item
            ds_j = w_i * dl * ds_j_item
        else:
            ds_i = loss
            ds_j = loss
    else:
        d = (s_i - s_j) * inv_t
        if KIND == 2:
            if HAS_HINGE_MARGIN:
                valid = valid & (d < hinge_margin)     # a filter, not a shift (spec 3.3)
            u = d
        elif KIND == 0:
            u = d - margin
        else:
            if USE_LABEL_MARGIN:
                u = d - (yt_i - yt_j)
            elif HAS_HINGE_MARGIN:
                u = d - hinge_margin                   # a shift inside the softplus (spec 3.2)
            else:
                u = d
        # softplus(-u) = ce(u, 1): focal_math.h's binary_focal_elem with target t = 1, pw = 1, no
        # smoothing; EasyRec mode (clipped p in the modulating factor) for kFocal, BCE otherwise.
        e = tl.exp(-tl.abs(u))
        inv = 1.0 / (1.0 + e)
        p = tl.where(u >= 0, inv, e * inv)
        pm = tl.where(u >= 0, e * inv, inv)
        ce = tl.where(u > 0, u, 0.0) - u + log1p_unit(e)      # max(u, 0) - u * 1 + log1p(e)
        dce = p - 1.0                                          # p - z
        if KIND == 2:
            lo: tl.constexpr = 1e-7
            hi: tl.constexpr = 1.0 - 1e-7
            # q = clip(p) (1 - t) + clip(pm) t = clip(pm) at t = 1 (the first term is exactly 0).
            q = tl.where(pm < lo, lo, tl.where(pm > hi, hi, pm))
            # dq/du = gate (1 - 2t) p pm; the clip blocks it where it is active.
            gate = (p > lo) & (p < hi)
            dq = tl.where(gate, -p * pm, 0.0)
            m, dm = modulating_factor(q, dq, gamma, GAMMA_KIND)
            wa = w_i * alpha_factor
            v = wa * m
            loss = v * ce
            if NEED_GRAD:
                ds_i = wa * (dm * ce + m * dce) * inv_t
            else:
                ds_i = loss
        else:
            # m = 1, dm = 0, a = 1: v = w, grad = w (0 * ce + dce) (0 * ce kept: NaN for infinite ce,
            # as in the C++ element).
            v = w_i
            loss = w_i * ce
            if NEED_GRAD:
                ds_i = w_i * (0.0 * ce + dce) * inv_t
            else:
                ds_i = loss
        ds_j = -ds_i
    return valid, loss, v, ds_i, ds_j


@triton.jit
def _ohem_loss_words(loss):
    """The loss words (K0, K1) of ohem_key, each an int64 in [0, 2^32).

    float32: (ohem_key_bits(loss), 0), ohem_key_bits: negative -> ~bits, else bits | 2^31.
    float64: ohem_key_bits64(loss) (negative -> ~bits, else bits | 2^63) split into its high and
    low 32-bit words, computed per word (no 2^63 literal): negative -> (~hi, ~lo), else
    (hi | 2^31, lo).
    """
    if loss.dtype == tl.float64:
        b = loss.to(tl.int64, bitcast=True)
        hi = (b >> 32) & 0xFFFFFFFF
        lo = b & 0xFFFFFFFF
        neg = hi >= 0x80000000
        k0 = tl.where(neg, 0xFFFFFFFF - hi, hi + 0x80000000)
        k1 = tl.where(neg, 0xFFFFFFFF - lo, lo)
    else:
        b = loss.to(tl.float32).to(tl.int32, bitcast=True).to(tl.int64) & 0xFFFFFFFF
        k0 = tl.where(b >= 0x80000000, 0xFFFFFFFF - b, b + 0x80000000)
        k1 = tl.zeros_like(k0)
    return k0, k1


@triton.jit
def _pairwise_kernel(
    S, Y, W, ORDER, SEG_LO, SEG_HI, SELECT, GRAD, PART_S, PART_N, HIST,
    B, w_stride,
    inv_t_arg: tl.float64, margin_arg: tl.float64, hinge_margin_arg: tl.float64,
    gamma_arg: tl.float64, alpha_arg: tl.float64,
    h_word, h_shift, h_above, h_mask,
    KIND: tl.constexpr,              # 0 pair_wise, 1 logistic, 2 focal, 3 hinge
    HAS_HINGE_MARGIN: tl.constexpr,  # flags of pairwise_math.h, cleared where the kind ignores them
    USE_LABEL_MARGIN: tl.constexpr,
    LABEL_IS_LOGITS: tl.constexpr,
    USE_EXPONENT: tl.constexpr,
    GAMMA_KIND: tl.constexpr,        # focal: 0 m = 1, 1 m = q, 2 m = q^2, 3 m = q^gamma
    HAS_ALPHA: tl.constexpr,         # focal: alpha >= 0
    HAS_WEIGHT: tl.constexpr,        # W[p * w_stride] (w_stride 0: a [1] weight), else w = 1
    MODE: tl.constexpr,              # 0 SBNZ, 1 OHEM final pass (SELECT), 2 OHEM histogram (SELECT = state)
    COMPUTE_GRAD: tl.constexpr,      # modes 0 and 1: GRAD[p] (sorted order, unscaled)
    SYMMETRIC: tl.constexpr,         # each pair once (columns q > p, atomics on GRAD), else two-sided
    BLOCK_R: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    """Rows [pid * BLOCK_R, +BLOCK_R) of the sorted batch against the columns of their sessions.

    S, Y: [B] scores and labels (acc dtype); W: [B] or [1] or unused; ORDER, SEG_LO, SEG_HI: [B]
    int64. Writes PART_S[pid] (sum of the counted pairs' loss, acc) and PART_N[pid] (their number,
    int64) in modes 0 and 1, and atomically adds the program's digit histogram to HIST in mode 2.
    GRAD (COMPUTE_GRAD): stored, one row per program, when two-sided; atomically added (rows and
    columns, GRAD zero-initialised by the caller) when SYMMETRIC.
    Float parameters arrive as fp64 and are rounded once to the acc dtype, as acc_t(param) in C++.
    """
    pid = tl.program_id(0).to(tl.int64)
    ACC: tl.constexpr = S.dtype.element_ty
    GRAD_ON: tl.constexpr = COMPUTE_GRAD and MODE != 2
    TWO_SIDED: tl.constexpr = GRAD_ON and not SYMMETRIC
    # Arguments selected per element (the higher item of the pair is i, whichever side it is on).
    BY_SIDE: tl.constexpr = TWO_SIDED or SYMMETRIC
    inv_t = tl.full([], inv_t_arg, ACC)
    margin = tl.full([], margin_arg, ACC)
    hinge_margin = tl.full([], hinge_margin_arg, ACC)
    gamma = tl.full([], gamma_arg, ACC)
    if HAS_ALPHA:
        alpha = tl.full([], alpha_arg, ACC)
        alpha_factor = alpha * 1.0 + (1.0 - alpha) * 0.0        # alpha t + (1 - alpha)(1 - t), t = 1
    else:
        alpha_factor = tl.full([], 1.0, ACC)

    r0 = pid * BLOCK_R
    rows = r0 + tl.arange(0, BLOCK_R)
    rmask = rows < B
    lo_r = tl.load(SEG_LO + rows, mask=rmask, other=0)
    hi_r = tl.load(SEG_HI + rows, mask=rmask, other=0)     # masked rows: empty range [0, 0)
    col_lo = tl.min(tl.where(rmask, lo_r, B), axis=0)
    if SYMMETRIC:
        # Only columns q > p: the pairs (p, q) with q < r0 belong to q's program. Tiles start at
        # the row block itself (col_lo <= r0), the first one holding the diagonal block.
        col_lo = tl.maximum(col_lo, r0)
    col_hi = tl.max(hi_r, axis=0)
    s_r = tl.load(S + rows, mask=rmask, other=0)
    y_r = _transform_label(tl.load(Y + rows, mask=rmask, other=0), inv_t, KIND, USE_LABEL_MARGIN,
                           LABEL_IS_LOGITS, USE_EXPONENT)
    if HAS_WEIGHT:
        w_r = tl.load(W + rows * w_stride, mask=rmask, other=0)
    else:
        w_r = tl.zeros_like(s_r) + 1.0
    if KIND == 3:
        s_r, d_r = _hinge_item(s_r, inv_t, USE_EXPONENT)
    else:
        d_r = s_r
    o_r = tl.load(ORDER + rows, mask=rmask, other=0)

    if MODE != 0:
        sel0 = tl.load(SELECT) & 0xFFFFFFFF
        sel1 = tl.load(SELECT + 1) & 0xFFFFFFFF
        sel2 = tl.load(SELECT + 2) & 0xFFFFFFFF
        sel3 = tl.load(SELECT + 3) & 0xFFFFFFFF
        flag = tl.load(SELECT + 4)
        # Mode 1: flag is "enabled" (0: no pair is selected). Mode 2: flag is "done" (output zero).
        # Either way nothing can count, so the column loop is left empty.
        if MODE == 1:
            col_hi = tl.where(flag == 0, col_lo, col_hi)
        else:
            col_hi = tl.where(flag != 0, col_lo, col_hi)
            sel_w = tl.where(h_word == 0, sel0,
                             tl.where(h_word == 1, sel1, tl.where(h_word == 2, sel2, sel3)))

    acc_s = tl.zeros([BLOCK_R, BLOCK_C], ACC)
    acc_n = tl.zeros([BLOCK_R, BLOCK_C], tl.int32)
    acc_g = tl.zeros([BLOCK_R, BLOCK_C], ACC)
    hist = tl.zeros([HIST_BINS], tl.int32)
    for c0 in range(col_lo, col_hi, BLOCK_C):
        cols = c0 + tl.arange(0, BLOCK_C)
        cmask = cols < col_hi
        # Same session; rows past B have the empty range, columns past col_hi fall outside every range.
        if SYMMETRIC:
            # q > p >= seg_lo[p]: the lower bound of the session is implied.
            same = (cols[None, :] > rows[:, None]) & (cols[None, :] < hi_r[:, None])
        else:
            same = (cols[None, :] >= lo_r[:, None]) & (cols[None, :] < hi_r[:, None])
        s_c = tl.load(S + cols, mask=cmask, other=0)
        y_c = _transform_label(tl.load(Y + cols, mask=cmask, other=0), inv_t, KIND,
                               USE_LABEL_MARGIN, LABEL_IS_LOGITS, USE_EXPONENT)
        if KIND == 3:
            s_c, d_c = _hinge_item(s_c, inv_t, USE_EXPONENT)
        else:
            d_c = s_c
        if MODE != 0:
            o_c = tl.load(ORDER + cols, mask=cmask, other=0)
        if BY_SIDE:
            # Row p is item i where y'_p > y'_q, else item j (ties give an invalid pair either way).
            hi_side = y_r[:, None] > y_c[None, :]
            s_i = tl.where(hi_side, s_r[:, None], s_c[None, :])
            s_j = tl.where(hi_side, s_c[None, :], s_r[:, None])
            yt_i = tl.where(hi_side, y_r[:, None], y_c[None, :])
            yt_j = tl.where(hi_side, y_c[None, :], y_r[:, None])
            di_i = tl.where(hi_side, d_r[:, None], d_c[None, :])
            di_j = tl.where(hi_side, d_c[None, :], d_r[:, None])
            if HAS_WEIGHT:
                w_c = tl.load(W + cols * w_stride, mask=cmask, other=0)
                w_i = tl.where(hi_side, w_r[:, None], w_c[None, :])
            else:
                w_i = tl.zeros([BLOCK_R, BLOCK_C], ACC) + 1.0
        else:
            s_i = s_r[:, None]
            s_j = s_c[None, :]
            yt_i = y_r[:, None]
            yt_j = y_c[None, :]
            di_i = d_r[:, None]
            di_j = d_c[None, :]
            w_i = w_r[:, None] + tl.zeros([BLOCK_R, BLOCK_C], ACC)
        valid, loss, v, ds_i, ds_j = _pair_eval(
            s_i, s_j, yt_i, yt_j, w_i, di_i, di_j, inv_t, margin, hinge_margin, gamma, alpha_factor,
            KIND, HAS_HINGE_MARGIN, USE_LABEL_MARGIN, USE_EXPONENT, GAMMA_KIND, GRAD_ON)
        valid = valid & same
        # row_is_i: the pair's loss and count are taken from this side. Two-sided: the row is the
        # higher item. Symmetric (each pair seen once) and one-sided (rows are i): every pair.
        if TWO_SIDED:
            row_is_i = hi_side
        else:
            row_is_i = valid
        if MODE == 0:
            take = valid
            acc_n += (take & row_is_i & (v != 0.0)).to(tl.int32)
        else:
            # Key of the pair (i, j): (loss word high, loss word low, ~order[i], ~order[j]) as
            # int64 words.
            k0, k1 = _ohem_loss_words(loss)
            if BY_SIDE:
                o_i = tl.where(hi_side, o_r[:, None], o_c[None, :])
                o_j = tl.where(hi_side, o_c[None, :], o_r[:, None])
            else:
                o_i = o_r[:, None] + tl.zeros([BLOCK_R, BLOCK_C], tl.int64)
                o_j = o_c[None, :] + tl.zeros([BLOCK_R, BLOCK_C], tl.int64)
            k2 = 0xFFFFFFFF - (o_i & 0xFFFFFFFF)
            k3 = 0xFFFFFFFF - (o_j & 0xFFFFFFFF)
            if MODE == 1:
                # ohem_selected: key >= K* lexicographically; and OHEM drops losses that are not > 0.
                ge = (k2 > sel2) | ((k2 == sel2) & (k3 >= sel3))
                ge = (k1 > sel1) | ((k1 == sel1) & ge)
                ge = (k0 > sel0) | ((k0 == sel0) & ge)
                take = valid & ge & (loss > 0.0)
                acc_n += (take & row_is_i).to(tl.int32)
            else:
                # ohem_prefix_match on the decided digits, then ohem_digit. Shifting the int64 word
                # by 32 (the word's top digit) leaves 0 == 0: no special case. The branch on the
                # (program-uniform) word keeps fp64 within registers (a 4-way where spilled).
                if h_word < 2:
                    k_w = tl.where(h_word == 0, k0, k1)
                    match = (h_word == 0) | (k0 == sel0)
                else:
                    k_w = tl.where(h_word == 2, k2, k3)
                    match = (k0 == sel0) & (k1 == sel1) & ((h_word == 2) | (k2 == sel2))
                match = match & ((k_w >> h_above) == (sel_w >> h_above))
                take = valid & match
                digit = ((k_w >> h_shift) & h_mask).to(tl.int32)
                # tl.histogram costs the same whatever its mask (per element, a ballot for each
                # of the 11 bin bits and a popcount for each of a lane's bins): once a few digits
                # are decided almost no pair matches, and a tile without one skips it.
                if tl.max(tl.max(take.to(tl.int32), axis=1), axis=0) != 0:
                    hist += tl.histogram(tl.reshape(digit, [BLOCK_R * BLOCK_C]), HIST_BINS,
                                         mask=tl.reshape(take, [BLOCK_R * BLOCK_C]))
        if MODE != 2:
            acc_s += tl.where(take & row_is_i, loss, 0.0)
            if COMPUTE_GRAD:
                acc_g += tl.where(take, tl.where(hi_side, ds_i, ds_j), 0.0)
                if SYMMETRIC:
                    # The column side's derivative, summed over this tile's rows; zero sums (no
                    # pair taken in the column) are not added.
                    g_c = tl.sum(tl.where(take, tl.where(hi_side, ds_j, ds_i), 0.0), axis=0)
                    tl.atomic_add(GRAD + cols, g_c, mask=cmask & (g_c != 0.0), sem="relaxed")

    if MODE == 2:
        bins = tl.arange(0, HIST_BINS)
        tl.atomic_add(HIST + bins, hist.to(tl.int64), mask=hist != 0, sem="relaxed")
    else:
        tl.store(PART_S + pid, tl.sum(tl.sum(acc_s, axis=1), axis=0))
        tl.store(PART_N + pid, tl.sum(tl.sum(acc_n.to(tl.int64), axis=1), axis=0))
        if COMPUTE_GRAD:
            g_r = tl.sum(acc_g, axis=1)
            if SYMMETRIC:
                # Other programs add these rows' column-side terms: add, never store.
                tl.atomic_add(GRAD + rows, g_r, mask=rmask & (g_r != 0.0), sem="relaxed")
            else:
                tl.store(GRAD + rows, g_r, mask=rmask)


def launch_config(n: int, fp64: bool) -> tuple[int, int, int]:
    """(BLOCK_R, BLOCK_C, num_warps) from the batch size and the acc dtype alone (no autotune, so
    the interpreter and the AOT test see the same configs); every config is 4 pairs per thread.

    n <= 2048: at most 64 programs, fewer than the SMs of an A100/H100, so each program is made
    wide: a 32 x 64 tile on 16 warps (fp32), half the column iterations of a 16 x 32 program, and
    2-3x fewer interpreter steps (B = 300, no sessions: ~0.3 s instead of ~0.9 s per call). fp64
    needs ~150-195 registers per thread, over the 128 that 16 warps allow (ptxas spilled up to
    224 bytes), so it takes 32 x 32 on 8 warps. Larger n: 16 x 32 on 4 warps: more programs per
    SM and less of each tile wasted past the ends of short sessions. ptxas (sm_90) for the AOT
    specializations: two-sided <= 111 registers in fp32, <= 194 in fp64; SYMMETRIC <= 106 in fp32,
    <= 202 in fp64 (sm_80: <= 109 / 194 and <= 107 / 194); no spills.

    SYMMETRIC halves the evaluations, but a program walks only the columns from its own rows on:
    with fewer programs than SMs (n <= 2048) the longest one, the first of a long session, walks
    as many columns as under the two-sided schedule, so the gain is in throughput at larger n.
    """
    if n <= 2048:
        return (32, 32, 8) if fp64 else (32, 64, 16)
    return (16, 32, 4)


def gamma_kind(gamma: float, acc: torch.dtype) -> int:
    """GAMMA_KIND of modulating_pow's runtime test ``acc_t(gamma) == 0, 1, 2``."""
    g = float(np.float32(gamma)) if acc == torch.float32 else float(gamma)
    return {0.0: GAMMA_ZERO, 1.0: GAMMA_ONE, 2.0: GAMMA_TWO}.get(g, GAMMA_ANY)


def _constexprs(kind: int, flags: int, gamma: float, alpha: float, acc: torch.dtype) -> dict:
    """The kernel's compile-time switches, with the flags a kind ignores cleared (fewer variants)."""
    kind = int(kind)
    if kind not in (0, 1, 2, 3):
        raise ValueError(f"kind must be 0, 1, 2 or 3, got {kind}")
    has_hinge = bool(flags & FLAG_HAS_HINGE_MARGIN)
    label_margin = bool(flags & FLAG_USE_LABEL_MARGIN)
    alpha_acc = float(np.float32(alpha)) if acc == torch.float32 else float(alpha)
    return {
        "KIND": kind,
        # kLogistic: use_label_margin overrides the hinge margin; kHinge never reads it.
        "HAS_HINGE_MARGIN": has_hinge and (kind == KIND_FOCAL
                                           or (kind == KIND_LOGISTIC and not label_margin)),
        "USE_LABEL_MARGIN": label_margin and kind in (KIND_LOGISTIC, KIND_HINGE),
        "LABEL_IS_LOGITS": bool(flags & FLAG_LABEL_IS_LOGITS) and kind == KIND_HINGE,
        "USE_EXPONENT": bool(flags & FLAG_USE_EXPONENT) and kind == KIND_HINGE,
        "GAMMA_KIND": gamma_kind(gamma, acc) if kind == KIND_FOCAL else GAMMA_ZERO,
        "HAS_ALPHA": kind == KIND_FOCAL and alpha_acc >= 0,   # C++: acc_t(alpha) >= 0
    }


def symmetric_schedule() -> bool:
    """SYMMETRIC of the next launch: each pair once with atomics on grad, unless
    ``torch.are_deterministic_algorithms_enabled()``, which selects the two-sided schedule (no
    atomics on grad; bitwise reproducible)."""
    return not torch.are_deterministic_algorithms_enabled()


def _launch(mode, scores, labels, weight, order, seg_lo, seg_hi, kind, flags, temperature, margin,
            hinge_margin, gamma, alpha, select, compute_grad, grad, part_s, part_n, hist, digit=0):
    n = scores.shape[0]
    block_r, block_c, num_warps = launch_config(n, scores.dtype == torch.float64)
    acc = scores.dtype
    word, shift = digit // 3, (21, 10, 0)[digit % 3]
    width = 10 if digit % 3 == 2 else 11
    has_w = weight is not None
    _pairwise_kernel[(triton.cdiv(n, block_r),)](
        scores, labels, weight if has_w else scores, order, seg_lo, seg_hi,
        select if select is not None else order, grad if compute_grad else scores,
        part_s if part_s is not None else scores, part_n if part_n is not None else order,
        hist if hist is not None else order,
        n, (1 if weight.numel() == n and n != 1 else 0) if has_w else 0,
        1.0 / float(temperature), float(margin), float(hinge_margin), float(gamma), float(alpha),
        word, shift, shift + width, (1 << width) - 1,
        **_constexprs(kind, flags, gamma, alpha, acc), HAS_WEIGHT=has_w, MODE=mode,
        COMPUTE_GRAD=compute_grad, SYMMETRIC=symmetric_schedule(), BLOCK_R=block_r, BLOCK_C=block_c,
        num_warps=num_warps,
    )


def _check(scores, labels, weight, order, seg_lo, seg_hi):
    acc = scores.dtype
    if acc not in (torch.float32, torch.float64):
        raise TypeError(f"scores must be float32 or float64 (the compute dtype), got {acc}")
    n = scores.shape[0]
    if scores.dim() != 1 or labels.shape != (n,) or labels.dtype != acc:
        raise ValueError(f"labels must be [{n}] {acc}, got {tuple(labels.shape)} {labels.dtype}")
    if weight is not None and (weight.dim() != 1 or weight.shape[0] not in (1, n) or weight.dtype != acc):
        raise ValueError(f"weight must be [{n}] or [1] {acc}, got {tuple(weight.shape)} {weight.dtype}")
    for name, t in (("order", order), ("seg_lo", seg_lo), ("seg_hi", seg_hi)):
        if t.shape != (n,) or t.dtype != torch.int64:
            raise ValueError(f"{name} must be [{n}] int64, got {tuple(t.shape)} {t.dtype}")


def _check_words(name, t):
    """select / state: int64 [5] (the four key words, then the flag), contiguous."""
    if t.shape != (OHEM_WORDS + 1,) or t.dtype != torch.int64:
        raise ValueError(f"{name} must be [{OHEM_WORDS + 1}] int64 (four key words and a flag), "
                         f"got {tuple(t.shape)} {t.dtype}")
    return t.contiguous()


def pairwise_fwd_triton(scores, labels, weight, order, seg_lo, seg_hi, kind, flags, temperature,
                        margin, hinge_margin, gamma, alpha, select, compute_grad):
    """``fusedloss::pairwise_fwd_triton``: (loss 0-d, grad [B] sorted and unscaled or [0], scale 0-d).

    select None: SBNZ (loss = S / N, 0 without pairs; scale = 1 / N or 0). select int64 [5]: OHEM's
    final pass over the pairs with key >= select[0:4] (four key words) and loss > 0, every pair
    disabled when select[4] == 0 (loss = S / N, NaN without pairs). No host synchronisation: the
    sums are finished with torch ops.

    Schedule (module docstring): SYMMETRIC by default, each pair evaluated once and the gradient
    accumulated with float atomics, so its last bits may differ from run to run (the loss does
    not: it is summed from per-program partials). When
    ``torch.are_deterministic_algorithms_enabled()``, the two-sided schedule (twice the pair
    evaluations, no atomics on grad) gives a bitwise reproducible gradient. The two agree up to
    float rounding.
    """
    scores, labels, order, seg_lo, seg_hi = (t.contiguous() for t in (scores, labels, order, seg_lo, seg_hi))
    weight = weight.contiguous() if weight is not None else None
    _check(scores, labels, weight, order, seg_lo, seg_hi)
    if select is not None:
        select = _check_words("select", select)
    n = scores.shape[0]
    acc = scores.dtype
    grad = scores.new_zeros((n,) if compute_grad else (0,))
    if pairwise_sbnz.uses_sbnz_kernel(n, acc, kind, select, symmetric_schedule()):
        part_s, part_n = pairwise_sbnz.pairwise_sbnz_fwd(scores, labels, weight, seg_hi, kind,
                                                         flags, temperature, margin, hinge_margin,
                                                         compute_grad, grad)
        return _finish(part_s, part_n, select, acc, grad)
    programs = triton.cdiv(n, launch_config(n, acc == torch.float64)[0])
    part_s = scores.new_zeros((max(programs, 1),))
    part_n = scores.new_zeros((max(programs, 1),), dtype=torch.int64)
    if n > 0:
        mode = MODE_SBNZ if select is None else MODE_SELECT
        _launch(mode, scores, labels, weight, order, seg_lo, seg_hi, kind, flags, temperature,
                margin, hinge_margin, gamma, alpha, select, compute_grad, grad, part_s, part_n, None)
    return _finish(part_s, part_n, select, acc, grad)


def _finish(part_s, part_n, select, acc, grad):
    """(loss, grad, scale) from the per-program partial sums and counts, on the device."""
    total = part_s.sum(dtype=torch.float64)
    count = part_n.sum().to(torch.float64)
    scale = torch.where(count > 0, 1.0 / count.clamp(min=1), 0.0)
    if select is None:
        loss = torch.where(count > 0, total / count.clamp(min=1), 0.0)   # SBNZ: 0 without pairs
    else:
        loss = total / count                  # OHEM: plain mean, 0 / 0 = NaN without pairs
    return loss.to(acc), grad, scale.to(acc)


def pairwise_ohem_hist_triton(scores, labels, weight, order, seg_lo, seg_hi, kind, flags,
                              temperature, margin, hinge_margin, gamma, alpha, state, digit):
    """``fusedloss::pairwise_ohem_hist_triton``: int64 [2048] histogram of OHEM key digit ``digit``
    (0..11, in word digit // 3 of the 128-bit key) over the valid pairs matching the decided digits
    in state[0:4] (int64 [5]: four key words, then the done flag); zeros when state[4] != 0.
    Integer counts, so both schedules give the same histogram; the schedule follows the same switch
    as ``pairwise_fwd_triton`` (SYMMETRIC, each pair evaluated once, unless
    ``torch.are_deterministic_algorithms_enabled()``)."""
    scores, labels, order, seg_lo, seg_hi = (t.contiguous() for t in (scores, labels, order, seg_lo, seg_hi))
    weight = weight.contiguous() if weight is not None else None
    _check(scores, labels, weight, order, seg_lo, seg_hi)
    digit = int(digit)
    if not 0 <= digit < OHEM_DIGITS:
        raise ValueError(f"digit must be in [0, {OHEM_DIGITS}) ({OHEM_WORDS} key words of 3 "
                         f"digits), got {digit}")
    hist = scores.new_zeros((N_BINS,), dtype=torch.int64)
    if scores.shape[0] > 0:
        _launch(MODE_HIST, scores, labels, weight, order, seg_lo, seg_hi, kind, flags, temperature,
                margin, hinge_margin, gamma, alpha, _check_words("state", state), False, None, None,
                None, hist, digit)
    return hist


def aot_specializations() -> list[dict]:
    """Signatures compiled ahead of time by tests/test_triton_aot.py (sm_80 and sm_90): fp32 and
    fp64, every kind and the flags each kind reads, SBNZ / OHEM select / OHEM histogram, with and
    without grad, at both launch configs, each in the SYMMETRIC schedule and the two-sided one
    (the one ``torch.use_deterministic_algorithms(True)`` selects)."""
    cases = [
        # (acc, mode, kind, flag bits, gamma kind, alpha, weight, grad)
        ("fp32", MODE_SBNZ, KIND_PAIR_WISE, 0, GAMMA_ZERO, False, True, True),
        ("fp32", MODE_SBNZ, KIND_LOGISTIC, 0, GAMMA_ZERO, False, True, True),
        ("fp32", MODE_SBNZ, KIND_LOGISTIC, FLAG_HAS_HINGE_MARGIN, GAMMA_ZERO, False, False, True),
        ("fp32", MODE_SBNZ, KIND_LOGISTIC, FLAG_USE_LABEL_MARGIN, GAMMA_ZERO, False, True, False),
        ("fp32", MODE_SBNZ, KIND_FOCAL, 0, GAMMA_TWO, False, True, True),
        ("fp32", MODE_SBNZ, KIND_FOCAL, FLAG_HAS_HINGE_MARGIN, GAMMA_ANY, True, True, True),
        ("fp32", MODE_SBNZ, KIND_FOCAL, 0, GAMMA_ZERO, True, False, True),
        ("fp32", MODE_SBNZ, KIND_FOCAL, 0, GAMMA_ONE, False, True, True),
        ("fp32", MODE_SBNZ, KIND_HINGE, FLAG_USE_LABEL_MARGIN | FLAG_LABEL_IS_LOGITS, GAMMA_ZERO,
         False, True, True),
        ("fp32", MODE_SBNZ, KIND_HINGE, FLAG_USE_EXPONENT, GAMMA_ZERO, False, True, True),
        ("fp32", MODE_SELECT, KIND_LOGISTIC, 0, GAMMA_ZERO, False, True, True),
        ("fp32", MODE_SELECT, KIND_FOCAL, FLAG_HAS_HINGE_MARGIN, GAMMA_TWO, True, True, True),
        ("fp32", MODE_SELECT, KIND_HINGE, FLAG_USE_LABEL_MARGIN | FLAG_LABEL_IS_LOGITS, GAMMA_ZERO,
         False, True, False),
        ("fp32", MODE_HIST, KIND_LOGISTIC, FLAG_USE_LABEL_MARGIN, GAMMA_ZERO, False, True, False),
        ("fp32", MODE_HIST, KIND_FOCAL, 0, GAMMA_ANY, True, True, False),
        ("fp32", MODE_HIST, KIND_HINGE, FLAG_USE_EXPONENT | FLAG_USE_LABEL_MARGIN, GAMMA_ZERO,
         False, False, False),
        ("fp64", MODE_SBNZ, KIND_PAIR_WISE, 0, GAMMA_ZERO, False, False, True),
        ("fp64", MODE_SBNZ, KIND_LOGISTIC, FLAG_USE_LABEL_MARGIN, GAMMA_ZERO, False, True, True),
        ("fp64", MODE_SBNZ, KIND_FOCAL, FLAG_HAS_HINGE_MARGIN, GAMMA_ANY, True, True, True),
        ("fp64", MODE_SBNZ, KIND_HINGE, FLAG_USE_EXPONENT | FLAG_LABEL_IS_LOGITS, GAMMA_ZERO,
         False, True, True),
        ("fp64", MODE_SELECT, KIND_FOCAL, 0, GAMMA_TWO, False, True, True),
        ("fp64", MODE_SELECT, KIND_HINGE, FLAG_USE_LABEL_MARGIN, GAMMA_ZERO, False, True, True),
        ("fp64", MODE_HIST, KIND_LOGISTIC, FLAG_HAS_HINGE_MARGIN, GAMMA_ZERO, False, True, False),
        ("fp64", MODE_HIST, KIND_FOCAL, FLAG_HAS_HINGE_MARGIN, GAMMA_ANY, True, True, False),
    ]
    specs = []
    for acc, mode, kind, flags, gk, has_alpha, has_w, grad in cases:
        cx = _constexprs(kind, flags, 0.0, -1.0, torch.float32)
        cx.update(GAMMA_KIND=gk, HAS_ALPHA=has_alpha, HAS_WEIGHT=has_w, MODE=mode,
                  COMPUTE_GRAD=grad and mode != MODE_HIST)
        fp64 = acc == "fp64"
        configs = sorted({launch_config(1, fp64), launch_config(1 << 20, fp64)})
        for symmetric, (block_r, block_c, num_warps) in itertools.product((False, True), configs):
            specs.append({
                "name": f"pairwise_{acc}_m{mode}_k{kind}_f{flags}_g{gk}_a{int(has_alpha)}"
                        f"_w{int(has_w)}_d{int(cx['COMPUTE_GRAD'])}_s{int(symmetric)}"
                        f"_r{block_r}c{block_c}",
                "fn": _pairwise_kernel,
                "signature": {
                    "S": f"*{acc}", "Y": f"*{acc}", "W": f"*{acc}", "ORDER": "*i64",
                    "SEG_LO": "*i64", "SEG_HI": "*i64", "SELECT": "*i64", "GRAD": f"*{acc}",
                    "PART_S": f"*{acc}", "PART_N": "*i64", "HIST": "*i64",
                    "B": "i64", "w_stride": "i32",
                    "inv_t_arg": "fp64", "margin_arg": "fp64", "hinge_margin_arg": "fp64",
                    "gamma_arg": "fp64", "alpha_arg": "fp64",
                    "h_word": "i32", "h_shift": "i32", "h_above": "i32", "h_mask": "i32",
                    **{k: "constexpr" for k in cx}, "SYMMETRIC": "constexpr",
                    "BLOCK_R": "constexpr", "BLOCK_C": "constexpr",
                },
                "constexprs": {**cx, "SYMMETRIC": symmetric, "BLOCK_R": block_r, "BLOCK_C": block_c},
                "num_warps": num_warps,
            })
    return specs
