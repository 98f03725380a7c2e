"""Fused kernels of EasyRec's in-batch metric-learning losses from embeddings (spec 6.2 CIRCLE_LOSS,
6.3 MULTI_SIMILARITY_LOSS; mirror of csrc/metric/metric_math.h, whose header states the math).

e [B, D]; inv_j = 1 / sqrt(max(sum e_j^2, 1e-12)) (1 without NORMALIZE); S_ij = inv_i inv_j e_i.e_j.
Anchor i's positives: j != i with y_j = y_i (and g_j = g_i with sessions); negatives: the other
j != i. Tiled: S exists only as [BLOCK_I, BLOCK_J] tiles, never as a [B, B] matrix.

Kernels (scratch SCR [5, B] in the compute dtype: inv, proj, A, N, c):
    _metric_norm_kernel   (NORMALIZE only) BLOCK_R rows per program: SCR[0] = inv_i,
                          SCR[1] = proj_i = [sum e_i^2 > 1e-12].
    _metric_stats_kernel  pass 1, BLOCK_I anchors per program, looping over every BLOCK_J tile of
                          rows: S tile by tl.dot over D chunks, the two online LSEs per anchor
                          (positives' and negatives' pair_logit), then row_stats (A_i, N_i),
                          ROW_LOSS[i] = loss_i and, with COMPUTE_GRAD, SCR[2..4] = A, N, c_i.
    _metric_grad_kernel   pass 2 (COMPUTE_GRAD only), BLOCK_I rows x BLOCK_D gradient columns
                          per program (grid axis 1 over D), looping over every BLOCK_J tile:
                          recomputes S, H_ij = G_ij + G_ji (pair_grad of both anchors),
                          sh_i += H @ (inv_j e_j) (tl.dot, accumulated transposed) and
                          hc_i += sum_j H_ij S_ij; then
                          d/de_i = inv_i (sh_i - proj_i hc_i inv_i e_i)  (inv_i sh_i without proj).
                          Each row writes its own gradient: no atomics, deterministic.
Both passes compute S with the same dots (D in chunks of one size), so pass 2 sees pass 1's S bit
for bit. Pass 1 keeps the anchors' tile in registers when one chunk covers D (SINGLE); pass 2
recomputes S once per gradient chunk (ceil(D / 128) times: 1 up to D = 128, 8 at D = 1024).

Dots: fp16/bf16 tiles go to tl.dot as they are (products exact in the fp32 accumulator); fp32
operands (fp32 input, and pass 2's H and inv_j e_j for every 32-bit-or-less input) with
input_precision FP32_DOT = "tf32x3" (~fp32 accuracy on the tensor cores; plain tf32 would cost
~1e-3 in S, times gamma in the logits); fp64 with "ieee". Compute dtype fp32 (fp64 for fp64
input), defined by ROW_LOSS / SCR; p0, p1, p2 arrive as fp64 and are rounded once to it
(acc_t(param) in C++). Core ``tl.*`` math only (log1p in core form, sqrt_rn / div_rn for the
norms), so the interpreter and the compiled kernel run the same code (but for bf16 dots:
_BF16_DOT_IN_FP32). Offsets are int64 (row * D with B D >= 2^31).

Cost: pass 1 B^2 D multiply-adds and B^2 exp; pass 2 (1 + ceil(D / 128)) B^2 D and 2 B^2 exp.
Memory: O(B) scratch; every row is read B / 32 times per pass (from L2 while B D fits there).
Parallelism: cdiv(B, 32) programs in pass 1 (times ceil(D / 128) in pass 2): below B ~ 4096 an
H100 is not filled (splitting the j range with lse_merge would be the next step).
"""

import torch
import triton
import triton.language as tl

from fusedloss.triton_kernels.focal import log1p_unit
from fusedloss.triton_kernels.sv_softmax import _inv_norm

KIND_CIRCLE, KIND_MULTI_SIMILARITY = 0, 1
EMPTY_LSE = tl.constexpr(-1e12)   # metric_math.h's empty_lse(), EasyRec's mask (a constexpr global:
                                  # compiled kernels may only read those)
_SCR_ROWS = 5                 # inv, proj, A, N, c
# fp32 operands of tl.dot: "tf32x3" (three tf32 tensor-core products, ~fp32 accuracy: ~2^-21 per
# product). "ieee" runs on the FMA units and spills at these tiles; plain "tf32" is too coarse
# (~1e-3 in S, times gamma in the logits).
FP32_DOT = tl.constexpr("tf32x3")
# The interpreter (triton 3.9) keeps bf16 tiles as raw uint16 and its tl.dot multiplies those
# integers; there bf16 tiles go to the dot as fp32 instead (the same exact products).
_BF16_DOT_IN_FP32 = tl.constexpr(bool(triton.knobs.runtime.interpret))


@triton.jit
def _softplus(x):
    """log(1 + e^x) as logistic.h's softplus (log1p from core ops)."""
    ax = tl.where(x < 0.0, -x, x)
    return tl.where(x > 0.0, x, 0.0) + log1p_unit(tl.exp(-ax))


@triton.jit
def _sigmoid(x):
    """logistic.h's sigmoid: 1 / (1 + e^-x) for x >= 0, e^x / (1 + e^x) below."""
    e = tl.exp(-tl.abs(x))
    return tl.where(x >= 0.0, 1.0 / (1.0 + e), e / (1.0 + e))


@triton.jit
def _pair_logit(s, pos, p0, p1, p2, KIND: tl.constexpr):
    """metric_math.h's pair_logit for a tile: circle lambda+ / lambda-, multi-similarity
    -alpha (S+ - lambda) / beta (S+ - lambda); pos selects the positives' formula."""
    if KIND == 0:
        ap = 1.0 + p0 - s
        lp = -p1 * tl.where(ap > 0.0, ap, 0.0) * (s - (1.0 - p0))
        an = s + p0
        ln = p1 * tl.where(an > 0.0, an, 0.0) * (s - p0)
        return tl.where(pos, lp, ln)
    else:
        sp = tl.where(s > 0.0, s, 0.0)
        return tl.where(pos, -p0 * (sp - p2), p1 * (sp - p2))


@triton.jit
def _pair_logit_slope(s, pos, p0, p1, KIND: tl.constexpr):
    """metric_math.h's pair_logit_slope: d logit / d S (circle, alphas constant); multi-similarity
    -[S >= 0] (positives) or [S >= 0] (negatives), the 1 / alpha, 1 / beta folded in."""
    if KIND == 0:
        ap = 1.0 + p0 - s
        an = s + p0
        return tl.where(pos, -p1 * tl.where(ap > 0.0, ap, 0.0), p1 * tl.where(an > 0.0, an, 0.0))
    else:
        one = tl.where(s >= 0.0, 1.0, 0.0).to(s.dtype)
        return tl.where(pos, -one, one)


@triton.jit
def _lse_add_tile(m, s, x):
    """Adds the entries x [BLOCK_I, BLOCK_J] (-inf: absent) to the online LSE states (m, s)
    [BLOCK_I] (online_lse.h's two-pass part: lse_part_max, then lse_add_part)."""
    mt = tl.max(x, axis=1)
    m_new = tl.where(mt > m, mt, m)
    m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)      # an empty state stays (-inf, 0)
    scale = tl.where(m == m_new, 1.0, tl.exp(m - m_safe))
    term = tl.where(x != float("-inf"), tl.exp(x - m_safe[:, None]), 0.0)
    return m_new, s * scale + tl.sum(term, axis=1)


@triton.jit
def _dot(a, b, acc):
    """acc + a @ b: 16-bit tiles natively (exact products, fp32 accumulator), fp32 / fp64 in full
    precision (bf16 too under the interpreter: _BF16_DOT_IN_FP32)."""
    if a.dtype.primitive_bitwidth == 16:
        if _BF16_DOT_IN_FP32 and a.dtype == tl.bfloat16:
            out = tl.dot(a.to(tl.float32), b.to(tl.float32), acc, input_precision=FP32_DOT)
        else:
            out = tl.dot(a, b, acc)
    elif a.dtype == tl.float32:
        out = tl.dot(a, b, acc, input_precision=FP32_DOT)
    else:
        # out_dtype: Triton 3.6 (torch 2.11's) defaults it to fp32 and then rejects an fp64 accumulator.
        out = tl.dot(a, b, acc, input_precision="ieee", out_dtype=tl.float64)
    return out


@triton.jit
def _load_rows(E, rows, rmask, cols, D, ACC: tl.constexpr):
    """The [len(rows), len(cols)] tile of E (0 outside), 16-bit kept as is (the dot's operand
    type), other dtypes in the compute dtype."""
    t = tl.load(E + rows[:, None] * D + cols[None, :], mask=rmask[:, None] & (cols < D)[None, :],
                other=0)
    if t.dtype.primitive_bitwidth != 16:
        t = t.to(ACC)
    return t


@triton.jit
def _cosine_tile(E, ri, vi, rj, vj, ei, ej, D, ACC: tl.constexpr, SINGLE: tl.constexpr,
                 BLOCK_I: tl.constexpr, BLOCK_J: tl.constexpr, BLOCK_D: tl.constexpr):
    """e_i . e_j for the [BLOCK_I, BLOCK_J] tile: from the resident tiles ei, ej when SINGLE, else
    over D in chunks of BLOCK_D."""
    acc = tl.zeros([BLOCK_I, BLOCK_J], ACC)
    if SINGLE:
        acc = _dot(ei, tl.trans(ej), acc)
    else:
        cols = tl.arange(0, BLOCK_D)
        for d0 in range(0, D, BLOCK_D):
            c = d0 + cols
            a = _load_rows(E, ri, vi, c, D, ACC)
            b = _load_rows(E, rj, vj, c, D, ACC)
            acc = _dot(a, tl.trans(b), acc)
    return acc


@triton.jit
def _metric_norm_kernel(E, SCR, B, D, BLOCK_R: tl.constexpr, BLOCK_D: tl.constexpr):
    """SCR[0, i] = inv_i and SCR[1, i] = proj_i (1.0 / 0.0) for the program's BLOCK_R rows."""
    ACC: tl.constexpr = SCR.dtype.element_ty
    rows = tl.program_id(0).to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)
    rmask = rows < B
    cols = tl.arange(0, BLOCK_D)
    sq = tl.zeros([BLOCK_R, BLOCK_D], ACC)
    for d0 in range(0, D, BLOCK_D):
        c = d0 + cols
        x = tl.load(E + rows[:, None] * D + c[None, :], mask=rmask[:, None] & (c < D)[None, :],
                    other=0).to(ACC)
        sq += x * x
    sumsq = tl.sum(sq, axis=1)
    tl.store(SCR + rows, _inv_norm(sumsq, True), mask=rmask)
    tl.store(SCR + B + rows, tl.where(sumsq > 1e-12, 1.0, 0.0).to(ACC), mask=rmask)


@triton.jit
def _metric_stats_kernel(
    E, Y, G, SCR, ROW_LOSS,
    B, D,
    p0_arg: tl.float64, p1_arg: tl.float64, p2_arg: tl.float64,
    KIND: tl.constexpr,           # 0 circle (p0 margin, p1 gamma), 1 multi-similarity (alpha, beta, lambda)
    NORMALIZE: tl.constexpr,      # inv from SCR[0] (written by _metric_norm_kernel), else 1
    HAS_SESSIONS: tl.constexpr,   # positives also need g_j = g_i
    COMPUTE_GRAD: tl.constexpr,   # write A, N, c to SCR[2..4]
    SINGLE: tl.constexpr,         # D <= BLOCK_D
    BLOCK_I: tl.constexpr, BLOCK_J: tl.constexpr, BLOCK_D: tl.constexpr,
):
    """Pass 1 for anchors [pid BLOCK_I, pid BLOCK_I + BLOCK_I): E [B, D]; Y, G int64 [B];
    ROW_LOSS [B] and SCR [5, B] in the compute dtype (which ROW_LOSS defines)."""
    ACC: tl.constexpr = ROW_LOSS.dtype.element_ty
    p0 = tl.full([], p0_arg, ACC)
    p1 = tl.full([], p1_arg, ACC)
    p2 = tl.full([], p2_arg, ACC)
    ri = tl.program_id(0).to(tl.int64) * BLOCK_I + tl.arange(0, BLOCK_I)
    vi = ri < B
    yi = tl.load(Y + ri, mask=vi, other=0)
    if HAS_SESSIONS:
        gi = tl.load(G + ri, mask=vi, other=0)
    if NORMALIZE:
        inv_i = tl.load(SCR + ri, mask=vi, other=1.0)
    cols = tl.arange(0, BLOCK_D)
    ei = None
    if SINGLE:
        ei = _load_rows(E, ri, vi, cols, D, ACC)

    m_pos = tl.full([BLOCK_I], float("-inf"), ACC)
    s_pos = tl.zeros([BLOCK_I], ACC)
    m_neg = tl.full([BLOCK_I], float("-inf"), ACC)
    s_neg = tl.zeros([BLOCK_I], ACC)
    for j0 in range(0, B, BLOCK_J):
        rj = j0 + tl.arange(0, BLOCK_J).to(tl.int64)
        vj = rj < B
        ej = None
        if SINGLE:
            ej = _load_rows(E, rj, vj, cols, D, ACC)
        s = _cosine_tile(E, ri, vi, rj, vj, ei, ej, D, ACC, SINGLE, BLOCK_I, BLOCK_J, BLOCK_D)
        if NORMALIZE:
            inv_j = tl.load(SCR + rj, mask=vj, other=1.0)
            s = s * inv_i[:, None] * inv_j[None, :]
        yj = tl.load(Y + rj, mask=vj, other=0)
        valid = vi[:, None] & vj[None, :] & (ri[:, None] != rj[None, :])
        same = yi[:, None] == yj[None, :]
        if HAS_SESSIONS:
            gj = tl.load(G + rj, mask=vj, other=0)
            same = same & (gi[:, None] == gj[None, :])
        pos = valid & same
        neg = valid & (same == 0)
        x = _pair_logit(s, pos, p0, p1, p2, KIND)
        m_pos, s_pos = _lse_add_tile(m_pos, s_pos, tl.where(pos, x, float("-inf")))
        m_neg, s_neg = _lse_add_tile(m_neg, s_neg, tl.where(neg, x, float("-inf")))

    # row_stats, row_loss, row_factor (an empty set, s = 0, takes the where's other branch).
    lse_pos = m_pos + tl.log(tl.where(s_pos > 0.0, s_pos, 1.0))
    lse_neg = m_neg + tl.log(tl.where(s_neg > 0.0, s_neg, 1.0))
    if KIND == 0:
        empty = tl.full([], EMPTY_LSE, lse_pos.dtype)   # exact in fp64 (-1e12 is not an fp32)
        a = tl.where(s_pos > 0.0, lse_pos, empty)
        n = tl.where(s_neg > 0.0, lse_neg, empty)
        z = a + n
        loss = _softplus(z)
        c = _sigmoid(z)
    else:
        a = tl.where(s_pos > 0.0, _softplus(lse_pos), 0.0)
        n = tl.where(s_neg > 0.0, _softplus(lse_neg), 0.0)
        loss = a / p0 + n / p1
        c = tl.full([BLOCK_I], 1.0, ACC)
    tl.store(ROW_LOSS + ri, loss, mask=vi)
    if COMPUTE_GRAD:
        tl.store(SCR + 2 * B + ri, a, mask=vi)
        tl.store(SCR + 3 * B + ri, n, mask=vi)
        tl.store(SCR + 4 * B + ri, c, mask=vi)


@triton.jit
def _metric_grad_kernel(
    E, Y, G, SCR, GRAD,
    B, D,
    p0_arg: tl.float64, p1_arg: tl.float64, p2_arg: tl.float64,
    KIND: tl.constexpr,
    NORMALIZE: tl.constexpr,
    HAS_SESSIONS: tl.constexpr,
    BLOCK_I: tl.constexpr, BLOCK_J: tl.constexpr,
    BLOCK_K: tl.constexpr,        # the D chunk of the cosine dot
    BLOCK_D: tl.constexpr,        # the gradient columns of one program
):
    """Pass 2: GRAD[i, d] for the program's BLOCK_I rows (axis 0) and BLOCK_D columns (axis 1),
    from the row statistics of pass 1 in SCR [5, B] (compute dtype, which it defines). GRAD [B, D]
    in E's dtype. The gradient accumulates transposed, sh^T [BLOCK_D, BLOCK_I] += (inv_j e_j)^T
    H^T, so that the wide operand is the dot's first (split over the warps, not replicated)."""
    ACC: tl.constexpr = SCR.dtype.element_ty
    p0 = tl.full([], p0_arg, ACC)
    p1 = tl.full([], p1_arg, ACC)
    p2 = tl.full([], p2_arg, ACC)
    ri = tl.program_id(0).to(tl.int64) * BLOCK_I + tl.arange(0, BLOCK_I)
    vi = ri < B
    yi = tl.load(Y + ri, mask=vi, other=0)
    if HAS_SESSIONS:
        gi = tl.load(G + ri, mask=vi, other=0)
    if NORMALIZE:
        inv_i = tl.load(SCR + ri, mask=vi, other=1.0)
    a_i = tl.load(SCR + 2 * B + ri, mask=vi, other=0.0)
    n_i = tl.load(SCR + 3 * B + ri, mask=vi, other=0.0)
    c_i = tl.load(SCR + 4 * B + ri, mask=vi, other=0.0)
    dcols = tl.program_id(1).to(tl.int64) * BLOCK_D + tl.arange(0, BLOCK_D)
    dvalid = dcols < D

    sht = tl.zeros([BLOCK_D, BLOCK_I], ACC)
    hc = tl.zeros([BLOCK_I], ACC)
    for j0 in range(0, B, BLOCK_J):
        rj = j0 + tl.arange(0, BLOCK_J).to(tl.int64)
        vj = rj < B
        s = _cosine_tile(E, ri, vi, rj, vj, None, None, D, ACC, False, BLOCK_I, BLOCK_J, BLOCK_K)
        if NORMALIZE:
            inv_j = tl.load(SCR + rj, mask=vj, other=1.0)
            s = s * inv_i[:, None] * inv_j[None, :]
        yj = tl.load(Y + rj, mask=vj, other=0)
        a_j = tl.load(SCR + 2 * B + rj, mask=vj, other=0.0)
        n_j = tl.load(SCR + 3 * B + rj, mask=vj, other=0.0)
        c_j = tl.load(SCR + 4 * B + rj, mask=vj, other=0.0)
        valid = vi[:, None] & vj[None, :] & (ri[:, None] != rj[None, :])
        same = yi[:, None] == yj[None, :]
        if HAS_SESSIONS:
            gj = tl.load(G + rj, mask=vj, other=0)
            same = same & (gi[:, None] == gj[None, :])
        pos = valid & same
        # pair_grad of (i, j) and of (j, i): the masks and S are symmetric, so one logit and slope
        # (x - r is <= 0 up to rounding on the pairs of the sets; 0 elsewhere: no overflow).
        x = _pair_logit(s, pos, p0, p1, p2, KIND)
        slope = _pair_logit_slope(s, pos, p0, p1, KIND)
        r_i = tl.where(pos, a_i[:, None], n_i[:, None])
        r_j = tl.where(pos, a_j[None, :], n_j[None, :])
        g_ij = tl.where(c_i[:, None] != 0.0,
                        c_i[:, None] * slope * tl.exp(tl.where(valid, x - r_i, 0.0)), 0.0)
        g_ji = tl.where(c_j[None, :] != 0.0,
                        c_j[None, :] * slope * tl.exp(tl.where(valid, x - r_j, 0.0)), 0.0)
        h = tl.where(valid & (slope != 0.0), g_ij + g_ji, 0.0)
        hc += tl.sum(h * s, axis=1)
        ejt = tl.load(E + rj[None, :] * D + dcols[:, None], mask=dvalid[:, None] & vj[None, :],
                      other=0).to(ACC)                      # e_j^T [BLOCK_D, BLOCK_J]
        if NORMALIZE:
            ejt = ejt * inv_j[None, :]
        sht = _dot(ejt, tl.trans(h), sht)

    dmask = dvalid[:, None] & vi[None, :]
    if NORMALIZE:
        eit = tl.load(E + ri[None, :] * D + dcols[:, None], mask=dmask, other=0).to(ACC)
        proj = tl.load(SCR + B + ri, mask=vi, other=0.0) != 0.0
        gci = hc * inv_i
        gr = tl.where(proj[None, :], inv_i[None, :] * (sht - gci[None, :] * eit),
                      inv_i[None, :] * sht)
    else:
        gr = sht
    tl.store(GRAD + ri[None, :] * D + dcols[:, None], gr.to(GRAD.dtype.element_ty), mask=dmask)


def launch_config(D: int, dtype: torch.dtype) -> dict:
    """{kernel: its tile constexprs, num_warps and num_stages} from D and the dtype alone (no
    autotune: the interpreter and the AOT test see the same configs); BLOCK_* >= 16 for tl.dot,
    the padding masked.

    norm:  BLOCK_R rows, D in chunks of BLOCK_D.
    stats: 32 x 64 cosine tiles, D in chunks of BLOCK_D (32 for 16-bit input, else 16); SINGLE
           when one chunk covers D (the anchors' tile stays in registers).
    grad:  32 rows x BLOCK_D gradient columns (at most 128) per program, 32-row tiles, the
           cosines over D in chunks of BLOCK_K = stats' BLOCK_D (recomputed by each of the
           ceil(D / 128) column programs of a row block).
    ptxas, every AOT specialization (sm_80 and sm_90a): no spills. Both passes are register-heavy
    (mma operands, the [32, 64] / [32, 32] elementwise tiles), hence 8 warps and at most 2 stages:
    4 warps or 3 stages spilled up to 300 bytes (pass 2 in fp32 with a D chunk of 32: 308), and
    256 gradient columns 48-60 bytes (fp32, normalised).
    """
    d_pow = max(16, triton.next_power_of_2(max(int(D), 1)))
    # One D chunk for the cosines of both passes: the same dots, so pass 2 sees bit for bit the S
    # of pass 1 (x_ij - A_i stays <= 0, and ill-conditioned cases, logits ~1e4 without
    # normalisation, keep fp64 at ~1e-15 instead of ~1e-12).
    chunk = min(d_pow, 32 if dtype in (torch.float16, torch.bfloat16) else 16)
    return {
        "norm": {"BLOCK_R": 16, "BLOCK_D": min(d_pow, 128), "num_warps": 4, "num_stages": 2},
        "stats": {"SINGLE": int(D) <= chunk, "BLOCK_I": 32, "BLOCK_J": 64, "BLOCK_D": chunk,
                  "num_warps": 8, "num_stages": 2},
        "grad": {"BLOCK_I": 32, "BLOCK_J": 32, "BLOCK_K": chunk,
                 "BLOCK_D": min(d_pow, 128), "num_warps": 8, "num_stages": 2},
    }


_FLOAT = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _check(emb, labels, sessions, row_loss, grad, kind, compute_grad):
    if emb.dim() != 2 or not emb.is_contiguous() or emb.dtype not in _FLOAT:
        raise ValueError(f"emb must be a contiguous [B, D] float tensor, got {tuple(emb.shape)} "
                         f"{emb.dtype}")
    b = emb.shape[0]
    acc = torch.float64 if emb.dtype == torch.float64 else torch.float32
    for name, t in (("labels", labels), ("sessions", sessions)):
        if t is not None and (t.shape != (b,) or t.dtype != torch.int64 or not t.is_contiguous()
                              or t.device != emb.device):
            raise ValueError(f"{name} must be a contiguous [{b}] int64 tensor on {emb.device}, got "
                             f"{tuple(t.shape)} {t.dtype}")
    if row_loss.shape != (b,) or row_loss.dtype != acc or not row_loss.is_contiguous():
        raise ValueError(f"row_loss must be a contiguous [{b}] {acc} tensor, got "
                         f"{tuple(row_loss.shape)} {row_loss.dtype}")
    if compute_grad and (grad.shape != emb.shape or grad.dtype != emb.dtype
                         or not grad.is_contiguous()):
        raise ValueError(f"grad must be a contiguous {tuple(emb.shape)} {emb.dtype} tensor, got "
                         f"{tuple(grad.shape)} {grad.dtype}")
    if kind not in (KIND_CIRCLE, KIND_MULTI_SIMILARITY):
        raise ValueError(f"kind must be 0 (circle) or 1 (multi-similarity), got {kind}")


def metric_rows_triton(emb, labels, sessions, row_loss, grad, *, kind, normalize, p0, p1, p2,
                       compute_grad):
    """Fills row_loss [B] (loss_i of every anchor, compute dtype: fp32, fp64 for fp64 input) and,
    when compute_grad, grad [B, D] (emb's dtype) = d(sum_i loss_i)/d emb; grad is not touched
    otherwise.

    emb: contiguous [B, D] fp16/bf16/fp32/fp64; labels, sessions: contiguous int64 [B] (sessions
    may be None); kind: 0 circle (p0 margin, p1 gamma), 1 multi-similarity (p0 alpha, p1 beta,
    p2 lambda); normalize: l2-normalise the rows first.
    """
    kind = int(kind)
    compute_grad = bool(compute_grad)
    normalize = bool(normalize)
    _check(emb, labels, sessions, row_loss, grad, kind, compute_grad)
    b, d = emb.shape
    if b == 0:
        return
    cfg = launch_config(d, emb.dtype)
    # Unused pointers get a real tensor: empty tensors may have a null data_ptr.
    if d == 0:
        emb = torch.zeros(1, dtype=emb.dtype, device=emb.device)
    has_sessions = sessions is not None
    scratch = torch.empty((_SCR_ROWS, b), dtype=row_loss.dtype, device=row_loss.device) \
        if (normalize or compute_grad) else row_loss
    p = (float(p0), float(p1), float(p2))
    if normalize:
        c0 = cfg["norm"]
        _metric_norm_kernel[(triton.cdiv(b, c0["BLOCK_R"]),)](emb, scratch, b, d, **c0)
    c1 = cfg["stats"]
    _metric_stats_kernel[(triton.cdiv(b, c1["BLOCK_I"]),)](
        emb, labels, sessions if has_sessions else labels, scratch, row_loss, b, d, *p,
        KIND=kind, NORMALIZE=normalize, HAS_SESSIONS=has_sessions, COMPUTE_GRAD=compute_grad,
        **c1)
    if compute_grad and d > 0:
        c2 = cfg["grad"]
        _metric_grad_kernel[(triton.cdiv(b, c2["BLOCK_I"]), triton.cdiv(d, c2["BLOCK_D"]))](
            emb, labels, sessions if has_sessions else labels, scratch, grad, b, d, *p,
            KIND=kind, NORMALIZE=normalize, HAS_SESSIONS=has_sessions, **c2)


_XD = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16", torch.float64: "fp64"}


def _spec(name, fn, signature, consts, cfg):
    return {"name": name, "fn": fn, "signature": signature,
            "constexprs": {**consts, **{k: v for k, v in cfg.items() if not k.startswith("num_")}},
            "num_warps": cfg["num_warps"], "num_stages": cfg["num_stages"]}


def aot_specializations() -> list[dict]:
    """Signatures compiled ahead of time by tests/test_triton_aot.py (sm_80 and sm_90): the norm
    kernel per dtype, and passes 1 and 2 over fp32/fp16/bf16/fp64, both kinds, with and without
    sessions and normalisation, at a small D (pass 1 SINGLE, one gradient chunk) and a large one
    (1024: looped, several gradient chunks)."""
    specs = []
    for dt in (torch.float32, torch.float16, torch.bfloat16, torch.float64):
        xd, acc = _XD[dt], ("fp64" if dt == torch.float64 else "fp32")
        c0 = launch_config(1024, dt)["norm"]
        specs.append(_spec(f"metric_norm_{xd}", _metric_norm_kernel,
                           {"E": f"*{xd}", "SCR": f"*{acc}", "B": "i64", "D": "i64",
                            "BLOCK_R": "constexpr", "BLOCK_D": "constexpr"}, {}, c0))
    cases = [
        # (dtype, kind, normalize, sessions, D)
        (torch.float32, KIND_CIRCLE, True, True, 32),
        (torch.float32, KIND_MULTI_SIMILARITY, False, False, 1024),
        (torch.float16, KIND_MULTI_SIMILARITY, True, False, 64),
        (torch.bfloat16, KIND_CIRCLE, True, True, 1024),
        (torch.float64, KIND_CIRCLE, False, True, 32),
        (torch.float64, KIND_MULTI_SIMILARITY, True, False, 1024),
    ]
    for dt, kind, norm, sess, d in cases:
        xd, acc = _XD[dt], ("fp64" if dt == torch.float64 else "fp32")
        cfg = launch_config(d, dt)
        tag = f"{xd}_k{kind}_n{int(norm)}_s{int(sess)}_d{d}"
        common = {"E": f"*{xd}", "Y": "*i64", "G": "*i64", "SCR": f"*{acc}", "B": "i64",
                  "D": "i64", "p0_arg": "fp64", "p1_arg": "fp64", "p2_arg": "fp64",
                  "KIND": "constexpr", "NORMALIZE": "constexpr", "HAS_SESSIONS": "constexpr",
                  "BLOCK_I": "constexpr", "BLOCK_J": "constexpr", "BLOCK_D": "constexpr"}
        consts = {"KIND": kind, "NORMALIZE": norm, "HAS_SESSIONS": sess}
        specs.append(_spec(f"metric_stats_{tag}", _metric_stats_kernel,
                           {**common, "ROW_LOSS": f"*{acc}", "COMPUTE_GRAD": "constexpr",
                            "SINGLE": "constexpr"},
                           {**consts, "COMPUTE_GRAD": True}, cfg["stats"]))
        specs.append(_spec(f"metric_grad_{tag}", _metric_grad_kernel,
                           {**common, "GRAD": f"*{xd}", "BLOCK_K": "constexpr"}, consts,
                           cfg["grad"]))
    return specs
