"""Fused kernel of the per-session softmax losses: EasyRec LISTWISE_RANK_LOSS, LISTWISE_DISTILL_LOSS
and JRC_LOSS (spec 4.1-4.3; mirror of csrc/session_softmax/session_softmax_math.h, whose comment
holds the formulas).

Items come session-sorted: logits Z [B, C] (C = 1 listwise, 2 JRC), labels Y [B], weights W [B]
(JRC only) and item p's session range [SEG_LO[p], SEG_HI[p]). One program per item (grid [B]); item
p leads its session when SEG_LO[p] == p, and only leaders work: the others return at once. The
leader walks [p, hi) (hi clamped to [p, B], so bad ranges never read or write out of bounds) in
chunks of BLOCK items, three times:
    sweep 1  the session statistics: chunked log-sum-exps (a chunk's maximum and sum merged with
             lse_merge), sums and counts;
    sweep 2  (with grad only) kRank with label logits / kDistill: Q = sum of q;
             kJrcSplit: T0, T1 (plain kRank sums Q = sum of y in sweep 1; kJrc needs no sweep 2);
    sweep 3  per item: ROW_LOSS[p, i], ROW_DEN[p, i] and with grad GRAD[p, i, :].
Outputs (all in the compute dtype, that of Z): ROW_LOSS, ROW_DEN [P, B] (P = 1 listwise, 2 JRC:
part 0 the CE, part 1 the GE) and GRAD [P, B, C] = d(sum_i ROW_LOSS[p, i]) / dZ. Listwise row_den is
1 on the session's first item, else 0; JRC part 0 row_den = [w != 0], part 1 row_den = 1.
Every item of a well-formed layout (``session_layout``) is written exactly once, by its leader, so
the results are deterministic; no atomics.

Core ``tl.*`` math only (softplus via ``log1p_unit``; divisions IEEE-rounded in fp32 too, as in
C++), so the interpreter and the compiled kernel run the same code. Float parameters arrive as fp64
and are rounded once to the compute dtype (acc_t(param) in C++). Offsets are int64.

Memory floor per item: sweep 1 and 3 read z (and y, w where needed), sweep 2 reads them again; the
writes are 2P + P C words. A session's re-reads come from L1/L2 while it fits there.
Transcendentals per item: listwise 2 exp + 1 log (distill: + 2 log); JRC 3-4 exp + 2 log.
Work is serial within a session: a batch that is one huge session runs on a single program.
"""

import math

import numpy as np
import torch
import triton
import triton.language as tl

from fusedloss.triton_kernels.focal import log1p_unit

KIND_RANK, KIND_DISTILL, KIND_JRC, KIND_JRC_SPLIT = 0, 1, 2, 3
FLAG_LABEL_IS_LOGITS, FLAG_TARGETS_GIVEN = 1, 2


@triton.jit
def _div(a, b):
    """a / b rounded as IEEE division (C++'s operator/) in fp32 too, not the approximate fp32 div."""
    if a.dtype == tl.float64:
        return a / b
    else:
        return tl.div_rn(a, b)


@triton.jit
def _sigmoid(x):
    """logistic.h's sigmoid: 1 / (1 + e^{-x}) for x >= 0, e^x / (1 + e^x) otherwise."""
    nonneg = x >= 0.0
    e = tl.exp(tl.where(nonneg, -x, x))
    return _div(tl.where(nonneg, 1.0, e), 1.0 + e)


@triton.jit
def _softplus(x):
    """logistic.h's softplus: max(x, 0) + log1p(e^{-|x|})."""
    return tl.where(x > 0.0, x, 0.0) + log1p_unit(tl.exp(-tl.abs(x)))


@triton.jit
def _lse_merge(am, as_, bm, bs):
    """online_lse.h's lse_merge of (am, as_) and (bm, bs) (scalars); the untaken branches' NaNs
    (e^{-inf - -inf} of an empty side) are discarded by the selects."""
    a_ge = am >= bm
    m = tl.where(a_ge, am, bm)
    s = tl.where(a_ge, as_ + bs * tl.exp(bm - am), bs + as_ * tl.exp(am - bm))
    m = tl.where(as_ == 0.0, bm, m)
    s = tl.where(as_ == 0.0, bs, s)
    m = tl.where(bs == 0.0, am, m)
    s = tl.where(bs == 0.0, as_, s)
    return m, s


@triton.jit
def _lse_chunk(m, s, x, present):
    """Adds e^x over the lanes where ``present`` holds (lse_add of each, as one part: its maximum
    and sum, then lse_merge). x = -inf entries are absent, as in lse_add."""
    present = present & (x != float("-inf"))
    cm = tl.max(tl.where(present, x, float("-inf")), axis=0)
    cs = tl.sum(tl.where(present, tl.exp(x - cm), 0.0), axis=0)
    return _lse_merge(m, s, cm, cs)


@triton.jit
def _listwise_raw(y, temperature, clip_max, log1p_clip, KIND: tl.constexpr,
                  LABEL_IS_LOGITS: tl.constexpr, TARGETS_GIVEN: tl.constexpr):
    """listwise_raw: r_i (kDistill), the label logit y / T (kRank with label logits) or y."""
    if TARGETS_GIVEN:
        return y
    elif KIND == 1:
        r = tl.where(y < 1.0, 1.0, tl.where(y > clip_max, clip_max, y))
        return log1p_clip - tl.log(r)
    elif LABEL_IS_LOGITS:
        return _div(y, temperature)
    else:
        return y


@triton.jit
def _session_softmax_kernel(
    Z, Y, W, SEG_LO, SEG_HI, ROW_LOSS, ROW_DEN, GRAD,
    B, w_stride,
    temperature_arg: tl.float64, clip_max_arg: tl.float64, log1p_clip_arg: tl.float64,
    KIND: tl.constexpr,             # 0 rank, 1 distill, 2 jrc, 3 jrc_split
    LABEL_IS_LOGITS: tl.constexpr,  # kRank only
    TARGETS_GIVEN: tl.constexpr,    # listwise: y is the target (kRank with label logits) or r
    HAS_WEIGHT: tl.constexpr,       # JRC: W[i * w_stride] (w_stride 0: a [1] weight), else w = 1
    COMPUTE_GRAD: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """Session of leader p = program_id (see the module docstring). Z [B, C], Y, SEG_LO, SEG_HI [B];
    ROW_LOSS, ROW_DEN [P, B]; GRAD [P, B, C] (unused without COMPUTE_GRAD)."""
    ACC: tl.constexpr = ROW_LOSS.dtype.element_ty
    pid = tl.program_id(0).to(tl.int64)
    if tl.load(SEG_LO + pid) != pid:      # not a session leader: its leader writes its rows
        return
    nb = tl.zeros([], tl.int64) + B       # int64 (B may arrive as i32 or a constexpr)
    lo = pid
    hi = tl.load(SEG_HI + pid)
    hi = tl.where(hi > nb, nb, tl.where(hi < lo, lo, hi))   # clamped to [p, B]
    offs = tl.arange(0, BLOCK)
    zero = tl.zeros([], ACC)
    ninf = tl.full([], float("-inf"), ACC)

    if KIND < 2:
        # ------------------------------------------------------------------ listwise (C = 1)
        temperature = tl.full([], temperature_arg, ACC)
        clip_max = tl.full([], clip_max_arg, ACC)
        log1p_clip = tl.full([], log1p_clip_arg, ACC)
        NEED_Y1: tl.constexpr = KIND == 1 or LABEL_IS_LOGITS or COMPUTE_GRAD
        ms = ninf            # LSE of s = z / T
        ss = zero
        mu = ninf            # kRank with label logits: LSE of the label logits
        su = zero
        r_sum = zero         # kDistill: sum of r
        q_sum = zero         # Q (plain kRank: here; otherwise sweep 2)
        for start in range(lo, hi, BLOCK):
            i = start + offs
            mask = i < hi
            s = _div(tl.load(Z + i, mask=mask, other=0.0), temperature)
            ms, ss = _lse_chunk(ms, ss, s, mask)
            if NEED_Y1:
                raw = _listwise_raw(tl.load(Y + i, mask=mask, other=0.0), temperature, clip_max,
                                    log1p_clip, KIND, LABEL_IS_LOGITS, TARGETS_GIVEN)
                if KIND == 1:
                    r_sum += tl.sum(tl.where(mask, raw, 0.0), axis=0)
                elif LABEL_IS_LOGITS:
                    mu, su = _lse_chunk(mu, su, raw, mask)
                else:
                    q_sum += tl.sum(tl.where(mask, raw, 0.0), axis=0)
        lse_s = ms + tl.log(ss)
        if LABEL_IS_LOGITS:
            lse_u = mu + tl.log(su)
        else:
            lse_u = zero
        if COMPUTE_GRAD and (KIND == 1 or LABEL_IS_LOGITS):
            for start in range(lo, hi, BLOCK):
                i = start + offs
                mask = i < hi
                raw = _listwise_raw(tl.load(Y + i, mask=mask, other=0.0), temperature, clip_max,
                                    log1p_clip, KIND, LABEL_IS_LOGITS, TARGETS_GIVEN)
                if KIND == 1:
                    q = _div(raw, r_sum + tl.zeros_like(raw))
                else:
                    q = tl.exp(raw - lse_u)
                q_sum += tl.sum(tl.where(mask, q, 0.0), axis=0)
        for start in range(lo, hi, BLOCK):
            i = start + offs
            mask = i < hi
            s = _div(tl.load(Z + i, mask=mask, other=0.0), temperature)
            raw = _listwise_raw(tl.load(Y + i, mask=mask, other=0.0), temperature, clip_max,
                                log1p_clip, KIND, LABEL_IS_LOGITS, TARGETS_GIVEN)
            if KIND == 1:
                q = _div(raw, r_sum + tl.zeros_like(raw))   # 0 / 0 = NaN for a zero-mass session
            elif LABEL_IS_LOGITS:
                q = tl.exp(raw - lse_u)
            else:
                q = raw
            tl.store(ROW_LOSS + i, q * (lse_s - s), mask=mask)
            tl.store(ROW_DEN + i, tl.where(i == lo, 1.0, 0.0).to(ACC), mask=mask)
            if COMPUTE_GRAD:
                g = _div(q_sum * tl.exp(s - lse_s) - q, temperature + tl.zeros_like(s))
                tl.store(GRAD + i, g, mask=mask)
    else:
        # ------------------------------------------------------------------ JRC (C = 2)
        ma = ninf            # kJrc: LSE of z0 over the session; kJrcSplit: M0 (label-1 items)
        sa = zero
        mb = ninf            # kJrc: LSE of z1 over the session; kJrcSplit: M1 (label-0 items)
        sb = zero
        w_sum = zero
        n_pos = zero
        for start in range(lo, hi, BLOCK):
            i = start + offs
            mask = i < hi
            z0 = tl.load(Z + 2 * i, mask=mask, other=0.0)
            z1 = tl.load(Z + 2 * i + 1, mask=mask, other=0.0)
            pos = tl.load(Y + i, mask=mask, other=0.0) == 1.0
            if KIND == 2:
                ma, sa = _lse_chunk(ma, sa, z0, mask)
                mb, sb = _lse_chunk(mb, sb, z1, mask)
                if HAS_WEIGHT:
                    w = tl.load(W + i * w_stride, mask=mask, other=0.0)
                    w_sum += tl.sum(tl.where(mask, w, 0.0), axis=0)
                else:
                    w_sum += tl.sum(tl.where(mask, 1.0, 0.0).to(ACC), axis=0)
                n_pos += tl.sum(tl.where(mask & pos, 1.0, 0.0).to(ACC), axis=0)
            else:
                ma, sa = _lse_chunk(ma, sa, z0, mask & pos)
                mb, sb = _lse_chunk(mb, sb, z1, mask & ~pos)
        m0 = ma + tl.log(sa)                  # -inf for an empty set
        m1 = mb + tl.log(sb)
        n = (hi - lo).to(ACC)
        a = _div(w_sum, n)                    # kJrc: the session's mean weight
        n_neg = n - n_pos
        t0 = zero                             # kJrcSplit: sums of the label-0 / label-1 shares
        t1 = zero
        if COMPUTE_GRAD and KIND == 3:
            for start in range(lo, hi, BLOCK):
                i = start + offs
                mask = i < hi
                z0 = tl.load(Z + 2 * i, mask=mask, other=0.0)
                z1 = tl.load(Z + 2 * i + 1, mask=mask, other=0.0)
                pos = tl.load(Y + i, mask=mask, other=0.0) == 1.0
                if HAS_WEIGHT:
                    w = tl.load(W + i * w_stride, mask=mask, other=0.0)
                else:
                    w = tl.full([BLOCK], 1.0, ACC)
                share = w * _sigmoid(tl.where(pos, m1 - z1, m0 - z0))
                t1 += tl.sum(tl.where(mask & pos, share, 0.0), axis=0)
                t0 += tl.sum(tl.where(mask & ~pos, share, 0.0), axis=0)
        for start in range(lo, hi, BLOCK):
            i = start + offs
            mask = i < hi
            z0 = tl.load(Z + 2 * i, mask=mask, other=0.0)
            z1 = tl.load(Z + 2 * i + 1, mask=mask, other=0.0)
            pos = tl.load(Y + i, mask=mask, other=0.0) == 1.0
            if HAS_WEIGHT:
                w = tl.load(W + i * w_stride, mask=mask, other=0.0)
            else:
                w = tl.full([BLOCK], 1.0, ACC)
            # Part 0: jrc_ce.
            zc = tl.where(pos, z1, z0)
            zo = tl.where(pos, z0, z1)
            tl.store(ROW_LOSS + i, w * _softplus(zo - zc), mask=mask)
            tl.store(ROW_DEN + i, tl.where(w != 0.0, 1.0, 0.0).to(ACC), mask=mask)
            # Part 1: jrc_ge_item.
            if KIND == 2:
                ge = a * tl.where(pos, m1 - z1, m0 - z0)
            else:
                u = tl.where(pos, m1 - z1, m0 - z0)
                ge = w * _softplus(u)
            tl.store(ROW_LOSS + nb + i, ge, mask=mask)
            tl.store(ROW_DEN + nb + i, tl.full([BLOCK], 1.0, ACC), mask=mask)
            if COMPUTE_GRAD:
                d_other = w * _sigmoid(zo - zc)
                tl.store(GRAD + 2 * i, tl.where(pos, d_other, -d_other), mask=mask)
                tl.store(GRAD + 2 * i + 1, tl.where(pos, -d_other, d_other), mask=mask)
                if KIND == 2:
                    g0 = a * (n_neg * tl.exp(z0 - m0) - tl.where(pos, 0.0, 1.0))
                    g1 = a * (n_pos * tl.exp(z1 - m1) - tl.where(pos, 1.0, 0.0))
                else:
                    own = -w * _sigmoid(u)
                    # A competitor's share: 0 when T is 0 (e^{z - M} may be inf there).
                    c0 = tl.where(t0 == 0.0, 0.0, tl.exp(z0 - m0) * t0)
                    c1 = tl.where(t1 == 0.0, 0.0, tl.exp(z1 - m1) * t1)
                    g0 = tl.where(pos, c0, own)
                    g1 = tl.where(pos, own, c1)
                tl.store(GRAD + 2 * nb + 2 * i, g0, mask=mask)
                tl.store(GRAD + 2 * nb + 2 * i + 1, g1, mask=mask)


def launch_config(fp64: bool) -> tuple[int, int]:
    """(BLOCK, num_warps), from the compute dtype alone (no autotune, no look at the session lengths,
    which would need a host sync): the interpreter and the AOT test see the same configs. A leader
    walks its session serially, BLOCK items per step; 128 items on 4 warps (one per thread) keep
    short sessions (the usual tens of items) from wasting lanes while a long one still moves 128
    items per step."""
    return 128, 4


def num_parts(kind: int) -> int:
    return 2 if kind >= KIND_JRC else 1


def _constexprs(kind: int, flags: int, has_weight: bool, compute_grad: bool) -> dict:
    """The kernel's compile-time switches, with the flags a kind ignores cleared (fewer variants)."""
    kind = int(kind)
    if kind not in (0, 1, 2, 3):
        raise ValueError(f"kind must be 0 (rank), 1 (distill), 2 (jrc) or 3 (jrc_split), got {kind}")
    flags = int(flags)
    label_logits = bool(flags & FLAG_LABEL_IS_LOGITS) and kind == KIND_RANK
    return {
        "KIND": kind,
        "LABEL_IS_LOGITS": label_logits,
        # kRank without label logits uses y either way; kDistill's r; JRC never reads it.
        "TARGETS_GIVEN": bool(flags & FLAG_TARGETS_GIVEN) and (kind == KIND_DISTILL or label_logits),
        "HAS_WEIGHT": bool(has_weight) and kind >= KIND_JRC,
        "COMPUTE_GRAD": bool(compute_grad),
    }


def _check(logits, labels, weight, seg_lo, seg_hi, row_loss, row_den, grad, kind, compute_grad):
    acc = logits.dtype
    if acc not in (torch.float32, torch.float64):
        raise TypeError(f"logits must be float32 or float64 (the compute dtype), got {acc}")
    cols = 2 if kind >= KIND_JRC else 1
    if logits.dim() != 2 or logits.shape[1] != cols or not logits.is_contiguous():
        raise ValueError(f"logits must be a contiguous [B, {cols}] tensor for kind {kind}, got "
                         f"{tuple(logits.shape)}")
    b = logits.shape[0]
    p = num_parts(kind)
    if labels.shape != (b,) or labels.dtype != acc or not labels.is_contiguous():
        raise ValueError(f"labels must be a contiguous [{b}] {acc} tensor, got "
                         f"{tuple(labels.shape)} {labels.dtype}")
    if weight is not None and (weight.dim() != 1 or weight.shape[0] not in (1, b)
                               or weight.dtype != acc or not weight.is_contiguous()):
        raise ValueError(f"weight must be a contiguous [{b}] or [1] {acc} tensor, got "
                         f"{tuple(weight.shape)} {weight.dtype}")
    for name, t in (("seg_lo", seg_lo), ("seg_hi", seg_hi)):
        if t.shape != (b,) or t.dtype != torch.int64 or not t.is_contiguous():
            raise ValueError(f"{name} must be a contiguous [{b}] int64 tensor, got "
                             f"{tuple(t.shape)} {t.dtype}")
    for name, out in (("row_loss", row_loss), ("row_den", row_den)):
        if out.shape != (p, b) or out.dtype != acc or not out.is_contiguous():
            raise ValueError(f"{name} must be a contiguous [{p}, {b}] {acc} tensor, got "
                             f"{tuple(out.shape)} {out.dtype}")
    if compute_grad and (grad.shape != (p, b, cols) or grad.dtype != acc
                         or not grad.is_contiguous()):
        raise ValueError(f"grad must be a contiguous [{p}, {b}, {cols}] {acc} tensor, got "
                         f"{tuple(grad.shape)} {grad.dtype}")


def session_softmax_rows_triton(logits, labels, weight, seg_lo, seg_hi, row_loss, row_den, grad, *,
                                kind, flags, temperature, clip_max, compute_grad):
    """Fills row_loss, row_den [P, B] and, when compute_grad, grad [P, B, C] (all in logits' dtype,
    the compute dtype: float32 or float64) for ``fusedloss::session_softmax_fwd_triton``.

    logits [B, C] session-sorted (C = 1 for kinds 0/1, 2 for JRC), labels [B], weight None, [B] or
    [1] (JRC only; ignored by the listwise kinds), seg_lo / seg_hi int64 [B] (each item's sorted
    session range). kind: 0 rank, 1 distill, 2 jrc, 3 jrc_split; flags: 1 label_is_logits,
    2 targets_given. grad is not touched without compute_grad.
    """
    kind = int(kind)
    compute_grad = bool(compute_grad)
    cx = _constexprs(kind, flags, weight is not None, compute_grad)
    _check(logits, labels, weight, seg_lo, seg_hi, row_loss, row_den, grad, kind, compute_grad)
    b = logits.shape[0]
    if b == 0:
        return
    fp64 = logits.dtype == torch.float64
    clip_max = float(clip_max)
    if fp64:
        log1p_clip = math.log1p(clip_max)
    else:   # log1p(acc_t(M)) in float, as the C++ float path
        with np.errstate(all="ignore"):
            log1p_clip = float(np.log1p(np.float32(clip_max)))
    block, num_warps = launch_config(fp64)
    has_w = cx["HAS_WEIGHT"]
    # Unused pointers get a real tensor of the right type: empty tensors may have a null data_ptr.
    _session_softmax_kernel[(b,)](
        logits, labels, weight if has_w else labels, seg_lo, seg_hi, row_loss, row_den,
        grad if compute_grad else row_loss,
        b, (1 if weight.numel() == b and b != 1 else 0) if has_w else 0,
        float(temperature), clip_max, log1p_clip,
        **cx, BLOCK=block, num_warps=num_warps,
    )


def aot_specializations() -> list[dict]:
    """Signatures compiled ahead of time by tests/test_triton_aot.py (sm_80 and sm_90): fp32 and
    fp64, every kind and the flags each kind reads, with and without weight (JRC) and grad."""
    cases = [
        # (acc, kind, flags, weight, grad)
        ("fp32", KIND_RANK, 0, False, True),
        ("fp32", KIND_RANK, FLAG_LABEL_IS_LOGITS, False, True),
        ("fp32", KIND_RANK, FLAG_LABEL_IS_LOGITS | FLAG_TARGETS_GIVEN, False, False),
        ("fp32", KIND_DISTILL, 0, False, True),
        ("fp32", KIND_DISTILL, FLAG_TARGETS_GIVEN, False, False),
        ("fp32", KIND_JRC, 0, True, True),
        ("fp32", KIND_JRC, 0, False, False),
        ("fp32", KIND_JRC_SPLIT, 0, True, True),
        ("fp32", KIND_JRC_SPLIT, 0, False, True),
        ("fp64", KIND_RANK, 0, False, False),
        ("fp64", KIND_RANK, FLAG_LABEL_IS_LOGITS | FLAG_TARGETS_GIVEN, False, True),
        ("fp64", KIND_DISTILL, 0, False, True),
        ("fp64", KIND_JRC, 0, True, True),
        ("fp64", KIND_JRC_SPLIT, 0, True, True),
        ("fp64", KIND_JRC_SPLIT, 0, True, False),
    ]
    specs = []
    for acc, kind, flags, has_w, grad in cases:
        cx = _constexprs(kind, flags, has_w, grad)
        block, num_warps = launch_config(acc == "fp64")
        specs.append({
            "name": f"session_softmax_{acc}_k{kind}_f{flags}_w{int(has_w)}_g{int(grad)}",
            "fn": _session_softmax_kernel,
            "signature": {
                "Z": f"*{acc}", "Y": f"*{acc}", "W": f"*{acc}", "SEG_LO": "*i64", "SEG_HI": "*i64",
                "ROW_LOSS": f"*{acc}", "ROW_DEN": f"*{acc}", "GRAD": f"*{acc}",
                "B": "i64", "w_stride": "i32",
                "temperature_arg": "fp64", "clip_max_arg": "fp64", "log1p_clip_arg": "fp64",
                **{k: "constexpr" for k in cx}, "BLOCK": "constexpr",
            },
            "constexprs": {**cx, "BLOCK": block},
            "num_warps": num_warps,
        })
    return specs
