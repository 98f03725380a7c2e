"""Fused forward+backward kernels of the multilabel categorical cross-entropy, dense and sparse
(mirror of csrc/multilabel/multilabel_math.h).

A row of logits s[0..C) gives ``loss = log(1 + sum_i wn_i e^{s_i}) + log(1 + sum_i wp_i e^{-s_i})``
and ``d loss / d s_i = wn_i e^{s_i} / (1 + sum_neg) - wp_i e^{-s_i} / (1 + sum_pos)``, with
    dense : wn = 1 - y, wp = y; entries with s = -inf are absent;
    sparse: wp_c = count_c (how often c is listed among the valid indices), wn_c = [count_c == 0];
            under MASK_ZERO class 0 (the padding index) is in neither sum.
A term takes part only where its weight is > 0 (and its exponent is not -inf), so 0 * e^{+inf} never
happens. Each sum is held as (m, s) with e^m * s = 1 + sum w e^x, m >= 0 and m >= every exponent of
nonzero weight: the running maximum ignores weight-0 entries, else a big positive logit would
underflow the other terms away. Core ``tl.*`` math only (no libdevice), so the interpreter and the
compiled kernel run the same code; compute dtype fp32 (fp64 for fp64 input).

PHASE (constexpr) and grid:
    0  one program per BLOCK_R rows, the whole row. SINGLE (C <= BLOCK_C): the [BLOCK_R, BLOCK_C]
       tile stays in registers; the row maxima come first, then one exp per element serves both
       the sums and the gradient, and the row is read once. Otherwise (BLOCK_R = 1) an online pass
       over BLOCK_C chunks (per chunk: the chunk's maximum, one exp per element, one rescale exp
       per row and set), then a second pass that re-reads the row and writes the gradient.
    1  long rows, few of them (grid [N, n_splits]): each program folds the columns
       [split * split_cols, +split_cols) into partial states, written to STATS [N, n_splits, 4]
       (split 0 carries the appended zero logit, the others start from the empty sum).
    2  same grid: merges the row's partial states (at most MAX_SPLITS), writes the row's loss
       (split 0) and the gradient of its columns.

Sparse counts: the row's K indices are sorted, so the indices that fall in a chunk [c0, c1) form one
slice [lb(c0), lb(c1)) of the row, found by a per-row binary search (at most ceil(log2 K) + 1 loads
of one int64 per row and chunk; the slice's end is the next chunk's start). Each class c of the chunk
then takes count_c = ub(c) - lb(c) by two branchless binary searches inside that slice: 2 *
(ceil(log2 L) + 1) gathered int64 loads per element, L = the number of indices in the chunk (no
memory traffic where L = 0, the common case for wide rows with few positives; the loads hit L1).
Indices outside [0, C) are never counted, and every load stays inside the row's [0, K) whatever the
values are (unsorted rows give wrong counts, never an out-of-bounds access).

Memory floor, per element (x's bytes B_x, target's B_t): dense B_x + B_t read + B_x grad written
(fp32/fp32: 12 B; bf16 x, bool target: 5 B; no grad: B_x + B_t); sparse B_x + B_x (fp32: 8 B) plus
8 K B per row of indices. Rows longer than BLOCK_C read x (and t) twice, so their floor is
2 B_x + 2 B_t + B_x (dense) and 3 B_x (sparse) unless L2 still holds the rows in flight (a
few MB per program on the split path).
Transcendentals per element: one exp (integer/bool targets and the sparse form: each entry is in
one sum at most, so one exponent is selected) or two (float soft labels); twice that on the looped
and split paths (the gradient pass recomputes them). Per row: two logs, plus two exps per chunk.
"""

import torch
import triton
import triton.language as tl

PHASE_ROW, PHASE_STATS, PHASE_FINISH = 0, 1, 2
N_SPLITS_MAX = 64
MAX_SPLITS = tl.constexpr(N_SPLITS_MAX)   # a constexpr global: compiled kernels may only read those
SINGLE_MAX_C = 4096                       # rows up to this length stay in registers (fp64: 2048)
_FALLBACK_SMS = 132                       # the split heuristic's SM count off CUDA (H100 SXM)


@triton.jit
def _lower_bound(IDX, row_off, base, n, value, UPPER: tl.constexpr):
    """First position p in [base, base + n) of the sorted row IDX + row_off with IDX[p] >= value
    (UPPER: > value), else base + n; element-wise over base's shape (n and value broadcast to it).
    Branchless: ceil(log2 max(n)) halving steps and one final probe, every load inside the range.
    """
    nmax = tl.max(n)
    while nmax > 1:
        half = n // 2
        v = tl.load(IDX + row_off + base + half, mask=half > 0, other=0)
        if UPPER:
            go = v <= value
        else:
            go = v < value
        base = tl.where(go & (half > 0), base + half, base)
        n = n - half
        nmax = nmax - nmax // 2
    v = tl.load(IDX + row_off + base, mask=n > 0, other=0)
    if UPPER:
        go = v <= value
    else:
        go = v < value
    return base + (go & (n > 0)).to(base.dtype)


@triton.jit
def _chunk(X, T, IDX, rows, rmask, cols, C, c_end, K, p_lo, p_hi, ACC: tl.constexpr,
           SPARSE: tl.constexpr, MASK_ZERO: tl.constexpr):
    """Loads the tile of rows x cols (columns below c_end <= C, the row length): (offsets, lane
    mask, s, wn, wp, in_neg, in_pos).

    in_neg / in_pos: the entry is a term of the negative / positive sum (weight > 0, exponent not
    -inf); the gradient is 0 on lanes in neither. Sparse: p_lo, p_hi [BLOCK_R] bound the slice of
    each row's indices that can equal a column of the tile.
    """
    lane = rmask[:, None] & (cols[None, :] < c_end)
    off = rows[:, None] * C + cols[None, :]
    s = tl.load(X + off, mask=lane, other=0).to(ACC)
    if SPARSE:
        row_off = rows[:, None] * K
        base = p_lo[:, None] + tl.zeros(off.shape, tl.int32)
        n = (p_hi - p_lo)[:, None]
        value = cols[None, :]
        count = (_lower_bound(IDX, row_off, base, n, value, True)
                 - _lower_bound(IDX, row_off, base, n, value, False))
        if MASK_ZERO:
            keep = lane & (cols[None, :] != 0)
        else:
            keep = lane
        wp = count.to(ACC)
        wn = tl.where(count == 0, 1.0, 0.0).to(ACC)
        in_neg = keep & (count == 0) & (s != float("-inf"))
        in_pos = keep & (count > 0) & (s != float("inf"))
    else:
        y = tl.load(T + off, mask=lane, other=0).to(ACC)
        wn = 1.0 - y
        wp = y
        present = lane & (s != float("-inf"))
        in_neg = present & (wn > 0.0)
        in_pos = present & (wp > 0.0) & (s != float("inf"))
    return off, lane, s, wn, wp, in_neg, in_pos


@triton.jit
def _exps(s, in_neg, in_pos, mn, mp, ONE_EXP: tl.constexpr):
    """(e^{s - mn}, e^{-s - mp}) on the entries of each sum. ONE_EXP: no entry is in both sums, so
    one exp of the selected exponent serves both (values off a sum are garbage, masked by callers).
    """
    if ONE_EXP:
        e = tl.exp(tl.where(in_pos, -s - mp[:, None], s - mn[:, None]))
        return e, e
    else:
        en = tl.exp(tl.where(in_neg, s - mn[:, None], float("-inf")))
        ep = tl.exp(tl.where(in_pos, -s - mp[:, None], float("-inf")))
        return en, ep


@triton.jit
def _slice_start(IDX, rows, rmask, K, value):
    """Per row, the position of the first index >= value (the row's indices are sorted)."""
    zero = tl.zeros(rows.shape, tl.int32)
    return _lower_bound(IDX, rows * K, zero, tl.where(rmask, zero + K, 0).to(tl.int32), value, False)


@triton.jit
def _multilabel_kernel(
    X, T, IDX, LOSS, GRAD, STATS,
    N, C, K, split_cols, n_splits,
    SPARSE: tl.constexpr,         # sparse form (IDX), else dense (T)
    HARD: tl.constexpr,           # dense: integer/bool targets (never in both sums: one exp)
    MASK_ZERO: tl.constexpr,      # sparse: index 0 is padding, class 0 in neither sum
    COMPUTE_GRAD: tl.constexpr,
    PHASE: tl.constexpr,          # 0 whole rows, 1 split partial states, 2 split merge + grad
    SINGLE: tl.constexpr,         # phase 0: C <= BLOCK_C, the row tile stays in registers
    BLOCK_R: tl.constexpr,        # rows per program (1 unless SINGLE)
    BLOCK_C: tl.constexpr,
):
    """X [N, C] logits; T [N, C] targets (dense) or IDX [N, K] int64 sorted per row (sparse);
    LOSS [N] per-row loss in the compute dtype (which it defines); GRAD [N, C] in X's dtype;
    STATS [N, n_splits, 4] compute dtype, (m_neg, s_neg, m_pos, s_pos) per split (phases 1, 2)."""
    ACC: tl.constexpr = LOSS.dtype.element_ty
    ONE_EXP: tl.constexpr = SPARSE or HARD
    rows = tl.program_id(0).to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)
    rmask = rows < N

    if SINGLE:
        cols = tl.arange(0, BLOCK_C)
        if SPARSE:
            p_lo = _slice_start(IDX, rows, rmask, K, 0)
            p_hi = _slice_start(IDX, rows, rmask, K, C)
        else:
            p_lo = rows
            p_hi = rows
        off, lane, s, wn, wp, in_neg, in_pos = _chunk(X, T, IDX, rows, rmask, cols, C, C, K, p_lo,
                                                      p_hi, ACC, SPARSE, MASK_ZERO)
        mn = tl.max(tl.where(in_neg, s, 0.0), axis=1)
        mp = tl.max(tl.where(in_pos, -s, 0.0), axis=1)
        en, ep = _exps(s, in_neg, in_pos, mn, mp, ONE_EXP)
        tn = tl.where(in_neg, wn * en, 0.0)
        tp = tl.where(in_pos, wp * ep, 0.0)
        sn = tl.exp(-mn) + tl.sum(tn, axis=1)       # e^{0 - m}: the appended zero logit
        sp = tl.exp(-mp) + tl.sum(tp, axis=1)
        tl.store(LOSS + rows, mn + tl.log(sn) + mp + tl.log(sp), mask=rmask)
        if COMPUTE_GRAD:
            g = tn * (1.0 / sn)[:, None] - tp * (1.0 / sp)[:, None]
            tl.store(GRAD + off, g.to(GRAD.dtype.element_ty), mask=lane)
    else:
        split = tl.program_id(1)
        if PHASE == 0:
            lo = split * 0
            hi = lo + C
        else:
            lo = split.to(tl.int64) * split_cols
            hi = tl.minimum(lo + split_cols, C)
        mn = tl.zeros([BLOCK_R], ACC)
        mp = tl.zeros([BLOCK_R], ACC)
        if PHASE == 1:
            # Only split 0 holds the appended zero logit: the merge adds the partial sums.
            sn = tl.zeros([BLOCK_R], ACC) + tl.where(split == 0, 1.0, 0.0).to(ACC)
        else:
            sn = tl.zeros([BLOCK_R], ACC) + 1.0
        sp = sn

        if PHASE != 2:
            if SPARSE:
                p_lo = _slice_start(IDX, rows, rmask, K, lo)
            else:
                p_lo = rows
            for c0 in range(lo, hi, BLOCK_C):
                cols = c0 + tl.arange(0, BLOCK_C)
                if SPARSE:
                    p_hi = _slice_start(IDX, rows, rmask, K, tl.minimum(c0 + BLOCK_C, hi))
                else:
                    p_hi = p_lo
                off, lane, s, wn, wp, in_neg, in_pos = _chunk(
                    X, T, IDX, rows, rmask, cols, C, hi, K, p_lo, p_hi, ACC, SPARSE, MASK_ZERO)
                mn_new = tl.maximum(mn, tl.max(tl.where(in_neg, s, 0.0), axis=1))
                mp_new = tl.maximum(mp, tl.max(tl.where(in_pos, -s, 0.0), axis=1))
                en, ep = _exps(s, in_neg, in_pos, mn_new, mp_new, ONE_EXP)
                sn = sn * tl.exp(mn - mn_new) + tl.sum(tl.where(in_neg, wn * en, 0.0), axis=1)
                sp = sp * tl.exp(mp - mp_new) + tl.sum(tl.where(in_pos, wp * ep, 0.0), axis=1)
                mn = mn_new
                mp = mp_new
                p_lo = p_hi

        if PHASE == 1:
            st = STATS + (rows * n_splits + split) * 4
            tl.store(st, mn, mask=rmask)
            tl.store(st + 1, sn, mask=rmask)
            tl.store(st + 2, mp, mask=rmask)
            tl.store(st + 3, sp, mask=rmask)
        else:
            if PHASE == 2:
                sid = tl.arange(0, MAX_SPLITS)
                smask = rmask[:, None] & (sid[None, :] < n_splits)
                st = STATS + (rows[:, None] * n_splits + sid[None, :]) * 4
                m_all = tl.load(st, mask=smask, other=0.0)
                mn = tl.max(m_all, axis=1)
                sn = tl.sum(tl.load(st + 1, mask=smask, other=0.0) * tl.exp(m_all - mn[:, None]),
                            axis=1)
                m_all = tl.load(st + 2, mask=smask, other=0.0)
                mp = tl.max(m_all, axis=1)
                sp = tl.sum(tl.load(st + 3, mask=smask, other=0.0) * tl.exp(m_all - mp[:, None]),
                            axis=1)
            if split == 0:
                tl.store(LOSS + rows, mn + tl.log(sn) + mp + tl.log(sp), mask=rmask)
            if COMPUTE_GRAD:
                rn = 1.0 / sn
                rp = 1.0 / sp
                if SPARSE:
                    p_lo = _slice_start(IDX, rows, rmask, K, lo)
                else:
                    p_lo = rows
                for c0 in range(lo, hi, BLOCK_C):
                    cols = c0 + tl.arange(0, BLOCK_C)
                    if SPARSE:
                        p_hi = _slice_start(IDX, rows, rmask, K, tl.minimum(c0 + BLOCK_C, hi))
                    else:
                        p_hi = p_lo
                    off, lane, s, wn, wp, in_neg, in_pos = _chunk(
                        X, T, IDX, rows, rmask, cols, C, hi, K, p_lo, p_hi, ACC, SPARSE,
                        MASK_ZERO)
                    en, ep = _exps(s, in_neg, in_pos, mn, mp, ONE_EXP)
                    g = (tl.where(in_neg, wn * en, 0.0) * rn[:, None]
                         - tl.where(in_pos, wp * ep, 0.0) * rp[:, None])
                    tl.store(GRAD + off, g.to(GRAD.dtype.element_ty), mask=lane)
                    p_lo = p_hi


def launch_config(C: int, fp64: bool = False) -> tuple[int, int, int]:
    """(BLOCK_R, BLOCK_C, num_warps) from the row length and the compute dtype alone (no autotune:
    the interpreter and the AOT test see the same configs).

    Rows up to SINGLE_MAX_C (fp64: half of it) take one power-of-2 tile, rows stacked to at least
    1024 elements per program; longer rows one row per program in chunks of that width. Warps are
    set for 8 elements per thread (fp64: 4). ptxas, every AOT specialization (sm_80, sm_90): at
    most 96 registers (dense fp32), 119 (fp64, and sparse: the binary searches), 8 bytes of stack
    in a few; 16 elements per thread took 110-200 registers in fp32 and spilled up to 400 bytes in
    fp64.
    """
    single_max = SINGLE_MAX_C // 2 if fp64 else SINGLE_MAX_C
    per_warp = 32 * (4 if fp64 else 8)
    block_c = max(16, triton.next_power_of_2(max(int(C), 1)))
    if block_c > single_max:
        return 1, single_max, single_max // per_warp
    tile = max(1024, block_c)
    return tile // block_c, block_c, tile // per_warp


def split_plan(n: int, C: int, fp64: bool = False, device: torch.device | None = None
               ) -> tuple[int, int]:
    """(n_splits, split_cols) for rows longer than SINGLE_MAX_C: with fewer rows than two per SM a
    row is cut into column ranges of whole chunks (at most MAX_SPLITS of them, about 4 programs per
    SM in all), so that a handful of very long rows (GlobalPointer's flattened heads x L x L) still
    fills the GPU; (1, C) otherwise."""
    _, block_c, _ = launch_config(C, fp64)
    chunks = triton.cdiv(C, block_c)
    if chunks < 2:
        return 1, C
    sms = _FALLBACK_SMS
    if device is not None and device.type == "cuda":
        sms = torch.cuda.get_device_properties(device).multi_processor_count
    if n >= 2 * sms:
        return 1, C
    splits = min(N_SPLITS_MAX, chunks, triton.cdiv(4 * sms, max(n, 1)))
    split_cols = triton.cdiv(chunks, splits) * block_c
    return triton.cdiv(C, split_cols), split_cols


def _launch(x, t, idx, row_loss, grad, compute_grad, *, sparse, hard, mask_zero, splits):
    n, c = x.shape
    k = idx.shape[1] if sparse else 0
    if n == 0:
        return
    if c == 0:
        row_loss.zero_()          # both sums empty: log 1 + log 1 (indices then all lie outside [0, C))
        return
    fp64 = x.dtype == torch.float64
    block_r, block_c, num_warps = launch_config(c, fp64)
    single = c <= block_c
    if single:
        block_r = min(block_r, triton.next_power_of_2(n))
        n_splits, split_cols = 1, c
    elif splits is None:
        n_splits, split_cols = split_plan(n, c, fp64, x.device)
    else:
        n_splits = max(1, min(int(splits), N_SPLITS_MAX, triton.cdiv(c, block_c)))
        split_cols = triton.cdiv(triton.cdiv(c, block_c), n_splits) * block_c
        n_splits = triton.cdiv(c, split_cols)
    # Unused pointers get a real tensor of the right type: empty tensors may have a null data_ptr.
    dummy_t = x
    if sparse:
        if k == 0:
            idx = torch.zeros(1, dtype=torch.int64, device=x.device)
    else:
        idx = torch.zeros(1, dtype=torch.int64, device=x.device)
        if t.dtype == torch.bool:
            t = t.view(torch.uint8)
        dummy_t = t
    g = grad if compute_grad else x
    common = dict(SPARSE=sparse, HARD=hard, MASK_ZERO=mask_zero, BLOCK_R=block_r, BLOCK_C=block_c,
                  num_warps=num_warps)
    if n_splits == 1:
        _multilabel_kernel[(triton.cdiv(n, block_r), 1)](
            x, dummy_t, idx, row_loss, g, row_loss, n, c, k, c, 1,
            COMPUTE_GRAD=compute_grad, PHASE=PHASE_ROW, SINGLE=single, **common)
        return
    stats = torch.empty((n, n_splits, 4), dtype=row_loss.dtype, device=x.device)
    _multilabel_kernel[(n, n_splits)](
        x, dummy_t, idx, row_loss, g, stats, n, c, k, split_cols, n_splits,
        COMPUTE_GRAD=False, PHASE=PHASE_STATS, SINGLE=False, **common)
    _multilabel_kernel[(n, n_splits if compute_grad else 1)](
        x, dummy_t, idx, row_loss, g, stats, n, c, k, split_cols, n_splits,
        COMPUTE_GRAD=compute_grad, PHASE=PHASE_FINISH, SINGLE=False, **common)


_FLOAT = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_TARGETS = _FLOAT + (torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def _check_outputs(x, row_loss, grad, compute_grad):
    if x.dim() != 2 or not x.is_contiguous() or x.dtype not in _FLOAT:
        raise ValueError(f"x must be a contiguous [N, C] float tensor, got {tuple(x.shape)} {x.dtype}")
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    if row_loss.shape != (x.shape[0],) or row_loss.dtype != acc or not row_loss.is_contiguous():
        raise ValueError(f"row_loss must be [{x.shape[0]}] {acc}, got {tuple(row_loss.shape)} "
                         f"{row_loss.dtype}")
    if compute_grad and (grad.shape != x.shape or grad.dtype != x.dtype or not grad.is_contiguous()):
        raise ValueError(f"grad must be a contiguous {tuple(x.shape)} {x.dtype} tensor, got "
                         f"{tuple(grad.shape)} {grad.dtype}")


def multilabel_ce_rows_triton(x, t, row_loss, grad, compute_grad, *, splits=None):
    """Dense form: fills row_loss [N] (fp32, fp64 for fp64 x) with each row's loss and, when
    compute_grad, grad [N, C] (x's dtype) with d loss_row / d x. x, t: contiguous [N, C]; t float
    (soft labels), integer or bool. ``splits`` forces the number of column ranges of a row longer
    than SINGLE_MAX_C (tests); None lets ``split_plan`` choose."""
    _check_outputs(x, row_loss, grad, compute_grad)
    if t.shape != x.shape or not t.is_contiguous() or t.dtype not in _TARGETS:
        raise ValueError(f"t must be a contiguous {tuple(x.shape)} float/integer/bool tensor, got "
                         f"{tuple(t.shape)} {t.dtype}")
    _launch(x, t, None, row_loss, grad, bool(compute_grad), sparse=False,
            hard=not t.dtype.is_floating_point, mask_zero=False, splits=splits)


def sparse_multilabel_ce_rows_triton(x, idx, mask_zero, row_loss, grad, compute_grad, *,
                                     splits=None):
    """Sparse form: as ``multilabel_ce_rows_triton`` with the positives given as idx [N, K] int64,
    each row sorted ascending (a multiset; indices outside [0, C) are ignored, and so is index 0
    under mask_zero, where class 0 is padding in neither sum)."""
    _check_outputs(x, row_loss, grad, compute_grad)
    if idx.dim() != 2 or idx.shape[0] != x.shape[0] or idx.dtype != torch.int64 \
            or not idx.is_contiguous():
        raise ValueError(f"idx must be a contiguous [{x.shape[0]}, K] int64 tensor, got "
                         f"{tuple(idx.shape)} {idx.dtype}")
    _launch(x, None, idx, row_loss, grad, bool(compute_grad), sparse=True, hard=False,
            mask_zero=bool(mask_zero), splits=splits)


def aot_specializations() -> list[dict]:
    """Signatures compiled ahead of time by tests/test_triton_aot.py (sm_80 and sm_90): dense with
    float and integer/bool targets, sparse with and without mask_zero, fp32/fp16/bf16/fp64 inputs,
    with and without grad, on the single-tile path (multi-row 16- and 128-wide tiles and the widest
    single tile), the looped whole-row path and both split phases."""
    cases = [
        # (x, target or "idx", mask_zero, grad)
        ("fp32", "fp32", False, True),
        ("fp32", "u8", False, False),
        ("fp16", "fp16", False, True),
        ("bf16", "i64", False, True),
        ("bf16", "fp32", False, False),
        ("fp64", "fp64", False, True),
        ("fp64", "i32", False, True),
        ("fp32", "idx", False, True),
        ("fp32", "idx", True, False),
        ("fp16", "idx", True, True),
        ("bf16", "idx", False, True),
        ("fp64", "idx", True, True),
    ]
    configs = [  # (phase, C giving the launch config); "max": the widest single tile
        (PHASE_ROW, 16), (PHASE_ROW, 100), (PHASE_ROW, "max"), (PHASE_ROW, 5000),
        (PHASE_STATS, 5000), (PHASE_FINISH, 5000),
    ]
    specs = []
    for xd, td, mask_zero, grad in cases:
        sparse = td == "idx"
        fp64 = xd == "fp64"
        acc = "fp64" if fp64 else "fp32"
        for phase, c in configs:
            if c == "max":
                c = SINGLE_MAX_C // 2 if fp64 else SINGLE_MAX_C
            block_r, block_c, num_warps = launch_config(c, fp64)
            single = c <= block_c
            cg = grad and phase != PHASE_STATS
            specs.append({
                "name": f"multilabel_{'sparse' if sparse else 'dense'}_{xd}_{td}_mz{int(mask_zero)}"
                        f"_g{int(cg)}_p{phase}_s{int(single)}_r{block_r}c{block_c}",
                "fn": _multilabel_kernel,
                "signature": {
                    "X": f"*{xd}", "T": f"*{xd if sparse else td}", "IDX": "*i64",
                    "LOSS": f"*{acc}", "GRAD": f"*{xd}", "STATS": f"*{acc}",
                    "N": "i32", "C": "i64", "K": "i64", "split_cols": "i64", "n_splits": "i32",
                    "SPARSE": "constexpr", "HARD": "constexpr", "MASK_ZERO": "constexpr",
                    "COMPUTE_GRAD": "constexpr", "PHASE": "constexpr", "SINGLE": "constexpr",
                    "BLOCK_R": "constexpr", "BLOCK_C": "constexpr",
                },
                "constexprs": {
                    "SPARSE": sparse, "HARD": not sparse and not td.startswith(("fp", "bf")),
                    "MASK_ZERO": mask_zero, "COMPUTE_GRAD": cg, "PHASE": phase,
                    "SINGLE": single, "BLOCK_R": block_r, "BLOCK_C": block_c,
                },
                "num_warps": num_warps,
            })
    return specs
