"""Fused forward+backward kernels of the support-vector-guided softmax, EasyRec's
SOFTMAX_CROSS_ENTROPY_WITH_NEGATIVE_MINING (spec 6.1; mirror of csrc/sv_softmax/sv_softmax_math.h).

Row i (kept when label_i > 0) compares u_i with K + 1 item rows: slot 0 is its positive v_i, slot
k = 1..K the rolled negative v_{j_k}, j_k = (i - r_k) mod B (shifts r taken mod B, any int64 value).
With inv(a) = 1 / sqrt(max(sum a^2, 1e-12)) (1 without NORMALIZE):
    cos_k = inv(u_i) inv(v_{j_k}) (u_i . v_{j_k});  c+ = cos_0 - margin;  hard_k = [c+ - cos_k < 0]
    z = gamma [c+, h_1..h_K] with h_k = hard_k ? t cos_k + t - 1 : cos_k;  loss_i = lse(z) - z_0
    G_k = w_i coef_k: coef_0 = -gamma (p_1 + .. + p_K) (1 - p_0 as the negatives' shares),
                      coef_k = gamma p_k (hard_k ? t : 1)     (the indicator is not differentiated)
    d/du_i = inv(u_i) (S_u - proj(u_i) (sum_k G_k cos_k) inv(u_i) u_i),  S_u = sum_k G_k inv(v_k) v_k
    d/dv_j = inv(v_j) (S_v - proj(v_j) (sum G cos) inv(v_j) v_j) over the K + 1 (row, slot) that read
             v_j: (j, 0) and ((j + r_k) mod B, k), S_v = sum G inv(u) u of those rows (a gather).
proj(a) = NORMALIZE and sum a^2 > 1e-12 (the clamped branch of l2n is inv I). Rows not kept, and
rows of weight 0, write loss 0 and G = 0; their user and negative rows are not even loaded (masked).

Kernels (one program per row; grid [B]):
    _sv_user_kernel  pass 1, row i: the [BLOCK_K, BLOCK_D] tile of its K + 1 item rows, looped over
                     D in chunks of BLOCK_D (SINGLE: D <= BLOCK_D, the tiles stay in registers
                     between the dots and the gradient). Writes ROW_LOSS[i] = w_i loss_i (0 when
                     not kept), ROW_DEN[i], and with COMPUTE_GRAD the scratch row
                     SCR[i] = [G_0..G_K, G_0 cos_0..G_K cos_K, sum u_i^2, sum v_i^2] and d/du_i.
    _sv_item_kernel  pass 2 (COMPUTE_GRAD only), row j: gathers G, G cos and sum u^2 of the K + 1
                     (row, slot) pairs that read v_j from SCR (written by pass 1, hence a second
                     launch), then the [BLOCK_K, BLOCK_D] tiles of those user rows, and writes d/dv_j.
                     Deterministic: no atomics.
BLOCK_K = next_pow2(K + 1) slots hold the whole row, so K <= MAX_K = 1023 (a ValueError naming
num_negative_samples otherwise); BLOCK_D shrinks as BLOCK_K grows (tile <= 4096 elements, 2048 in
fp64, and BLOCK_D >= 8, fp64 4: 8192 / 4096 elements at K = 1023). Compute dtype fp32 (fp64 for
fp64 input), defined by ROW_LOSS / SCR; margin, gamma, t arrive as fp64 and are rounded once to it
(acc_t(param) in C++).
Core ``tl.*`` math only (sqrt_rn / div_rn for the norms), so the interpreter and the compiled
kernel run the same code. Offsets are int64 (row * D with B D >= 2^31).

Memory floor per row (B_x bytes per element): pass 1 reads (K + 2) D B_x (u_i and K + 1 item rows)
and writes D B_x (d/du_i), pass 2 the same for d/dv_j; (2 K + 4) acc words of scratch per row.
Consecutive rows read consecutive item rows (a roll), and every item row is read K + 1 times, from
L2 while B D B_x fits there (H100: 50 MB, e.g. B = 65536, D = 128 fp32). Without grad pass 1 alone:
(K + 2) D B_x. Transcendentals per row: K + 1 exp, one log, two sqrt.
"""

import torch
import triton
import triton.language as tl

MAX_K = 1023                 # BLOCK_K = next_pow2(K + 1) <= 1024 slots per program
_TILE = 4096                 # BLOCK_K * BLOCK_D budget (fp64: half); BLOCK_D >= 8 (fp64: 4)


@triton.jit
def _inv_norm(sumsq, NORMALIZE: tl.constexpr):
    """inv(a) from sum a^2: 1 / sqrt(max(sumsq, 1e-12)) (NaN takes the clamp, as in C++)."""
    if NORMALIZE:
        clamped = tl.where(sumsq > 1e-12, sumsq, tl.full([], 1e-12, sumsq.dtype))
        if sumsq.dtype == tl.float64:    # fp64 sqrt and division are IEEE-rounded already
            return 1.0 / tl.sqrt(clamped)
        else:                            # fp32: the rounded forms, not the approximations
            return tl.div_rn(tl.full(sumsq.shape, 1.0, sumsq.dtype), tl.sqrt_rn(clamped))
    else:
        return tl.full(sumsq.shape, 1.0, sumsq.dtype)


@triton.jit
def _shift_mod(SHIFTS, slot, neg, B):
    """r_k mod B in [0, B) for the negative slots (slot k reads SHIFTS[k - 1]), 0 elsewhere; right
    under both remainder conventions (interpreter and compiled)."""
    r = tl.load(SHIFTS + (slot - 1), mask=neg, other=0)
    rm = r % B
    return tl.where(rm < 0, rm + B, rm)


@triton.jit
def _sv_user_kernel(
    U, V, KEPT, W, SHIFTS, ROW_LOSS, ROW_DEN, GU, SCR,
    B, D, K, w_stride, scr_stride, reduction,
    margin_arg: tl.float64, gamma_arg: tl.float64, t_arg: tl.float64,
    NORMALIZE: tl.constexpr,      # l2-normalise u and v (EasyRec embed_normed = false)
    HAS_WEIGHT: tl.constexpr,     # W[i * w_stride] (w_stride 0: a [1] weight), else w = 1
    COMPUTE_GRAD: tl.constexpr,   # write SCR[i] and GU[i]
    SINGLE: tl.constexpr,         # D <= BLOCK_D: one chunk, the tiles stay in registers
    BLOCK_K: tl.constexpr,        # next_pow2(K + 1) slots
    BLOCK_D: tl.constexpr,
):
    """Pass 1, row i = program_id. U, V [B, D]; KEPT [B] uint8; W [B] or [1] (compute dtype);
    SHIFTS [K] int64; ROW_LOSS, ROW_DEN [B] compute dtype (which they define); GU [B, D] in U's
    dtype; SCR [B, scr_stride] compute dtype, scr_stride >= 2 (K + 1) + 2. reduction: 1 sum,
    2 mean, 3 sum_by_nonzero_weights (the denominator of a kept row of weight 0 is 0)."""
    ACC: tl.constexpr = ROW_LOSS.dtype.element_ty
    i = tl.program_id(0).to(tl.int64)
    margin = tl.full([], margin_arg, ACC)
    gamma = tl.full([], gamma_arg, ACC)
    t = tl.full([], t_arg, ACC)

    kept = tl.load(KEPT + i) != 0
    if HAS_WEIGHT:
        w = tl.load(W + i * w_stride)
    else:
        w = tl.full([], 1.0, ACC)
    scale = tl.where(kept, w, 0.0)
    active = scale != 0.0             # loss, G and d/du_i are 0 otherwise (row_loss_coef)
    # The flag as vectors (the interpreter cannot mix scalar and tensor masks in & and |).
    act_k = (tl.zeros([BLOCK_K], ACC) + scale) != 0.0
    act_d = (tl.zeros([BLOCK_D], ACC) + scale) != 0.0

    slot = tl.arange(0, BLOCK_K)
    svalid = slot <= K
    neg = svalid & (slot >= 1)
    j = i - _shift_mod(SHIFTS, slot, neg, B)           # slot 0: i itself
    j = tl.where(j < 0, j + B, j)
    # Slot 0 (v_i) is always read: pass 2 needs sum v_i^2 whatever row i's weight.
    lmask = svalid & (act_k | (slot == 0))
    vrow = V + j * D
    urow = U + i * D
    cols = tl.arange(0, BLOCK_D)

    # Dots u_i . v_{j_k} and the sums of squares.
    if SINGLE:
        dmask = cols < D
        u = tl.load(urow + cols, mask=dmask & act_d, other=0).to(ACC)
        vt = tl.load(vrow[:, None] + cols[None, :], mask=lmask[:, None] & dmask[None, :],
                     other=0).to(ACC)
        dot = tl.sum(u[None, :] * vt, axis=1)
        usq = tl.sum(u * u, axis=0)
        vsq = tl.sum(vt * vt, axis=1)
    else:
        dot = tl.zeros([BLOCK_K], ACC)
        vsq = tl.zeros([BLOCK_K], ACC)
        usq_v = tl.zeros([BLOCK_D], ACC)
        for d0 in range(0, D, BLOCK_D):
            c = d0 + cols
            dmask = c < D
            u = tl.load(urow + c, mask=dmask & act_d, other=0).to(ACC)
            vt = tl.load(vrow[:, None] + c[None, :], mask=lmask[:, None] & dmask[None, :],
                         other=0).to(ACC)
            dot += tl.sum(u[None, :] * vt, axis=1)
            if NORMALIZE:
                usq_v += u * u
                vsq += tl.sum(vt * vt, axis=1)
        usq = tl.sum(usq_v, axis=0)
    inv_u = _inv_norm(usq, NORMALIZE)
    inv_v = _inv_norm(vsq, NORMALIZE)
    if NORMALIZE:
        cos = inv_u * inv_v * dot
    else:
        cos = dot

    # row_loss_coef: the row's loss and coef_k = w_i d loss / d cos_k.
    c_pos = tl.sum(tl.where(slot == 0, cos, 0.0), axis=0) - margin
    z0 = gamma * c_pos
    hard = neg & (c_pos - cos < 0.0)
    h = tl.where(hard, t * cos + t - 1.0, cos)
    z = tl.where(slot == 0, z0, gamma * h)
    z = tl.where(svalid, z, float("-inf"))
    m = tl.max(z, axis=0)
    e = tl.exp(z - m)                                  # 0 on the padding slots
    s = tl.sum(e, axis=0)
    loss = tl.log(s) + (m - z0)                        # both terms >= 0
    tl.store(ROW_LOSS + i, tl.where(active, scale * loss, 0.0))
    den = tl.where(kept & ((reduction != 3) | (w != 0.0)), 1.0, 0.0).to(ACC)
    tl.store(ROW_DEN + i, den)

    if COMPUTE_GRAD:
        p = e * (1.0 / s)
        p_neg = tl.sum(tl.where(neg, p, 0.0), axis=0)
        coef = tl.where(slot == 0, -scale * gamma * p_neg,
                        scale * gamma * p * tl.where(hard, t, 1.0))
        g = tl.where(svalid & act_k, coef, 0.0)
        gcos = g * cos
        gc = tl.sum(gcos, axis=0)
        srow = SCR + i * scr_stride
        tl.store(srow + slot, g, mask=svalid)
        tl.store(srow + (K + 1) + slot, gcos, mask=svalid)
        if NORMALIZE:
            tl.store(srow + 2 * (K + 1), usq)
            tl.store(srow + 2 * (K + 1) + 1, tl.sum(tl.where(slot == 0, vsq, 0.0), axis=0))
            proj = usq > 1e-12
            a = g * inv_v                              # S_u = sum_k a_k v_k
            gci = gc * inv_u
        else:
            a = g
        if SINGLE:
            su = tl.sum(a[:, None] * vt, axis=0)
            if NORMALIZE:
                gu = tl.where(proj, inv_u * (su - gci * u), inv_u * su)
            else:
                gu = su
            tl.store(GU + i * D + cols, gu.to(GU.dtype.element_ty), mask=cols < D)
        else:
            gmask = svalid & (g != 0.0)                # rows of a zero coefficient: not read
            n_chunks = tl.cdiv(D, BLOCK_D)
            for ci in range(n_chunks):                 # backwards: from what the dots left in L1
                c = (n_chunks - 1 - ci) * BLOCK_D + cols
                dmask = c < D
                vt = tl.load(vrow[:, None] + c[None, :], mask=gmask[:, None] & dmask[None, :],
                             other=0).to(ACC)
                su = tl.sum(a[:, None] * vt, axis=0)
                if NORMALIZE:
                    u = tl.load(urow + c, mask=dmask & act_d, other=0).to(ACC)
                    gu = tl.where(proj, inv_u * (su - gci * u), inv_u * su)
                else:
                    gu = su
                tl.store(GU + i * D + c, gu.to(GU.dtype.element_ty), mask=dmask)


@triton.jit
def _sv_item_kernel(
    U, V, SHIFTS, GV, SCR,
    B, D, K, scr_stride,
    NORMALIZE: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    """Pass 2, item row j = program_id: d/dv_j from the scratch rows of its K + 1 readers (slot 0:
    row j; slot k: row (j + r_k) mod B) and their user rows. GV [B, D] in V's dtype."""
    ACC: tl.constexpr = SCR.dtype.element_ty
    jrow = tl.program_id(0).to(tl.int64)
    slot = tl.arange(0, BLOCK_K)
    svalid = slot <= K
    neg = svalid & (slot >= 1)
    i = jrow + _shift_mod(SHIFTS, slot, neg, B)        # slot 0: j itself
    i = tl.where(i >= B, i - B, i)
    srow = SCR + i * scr_stride
    g = tl.load(srow + slot, mask=svalid, other=0.0)
    gc = tl.sum(tl.load(srow + (K + 1) + slot, mask=svalid, other=0.0), axis=0)
    if NORMALIZE:
        usq = tl.load(srow + 2 * (K + 1), mask=svalid, other=1.0)
        a = g * _inv_norm(usq, NORMALIZE)              # S_v = sum_k a_k u_{i_k}
        vsq = tl.load(SCR + jrow * scr_stride + 2 * (K + 1) + 1)
        inv_v = _inv_norm(vsq, NORMALIZE)
        proj = vsq > 1e-12
        gci = gc * inv_v
    else:
        a = g
    gmask = svalid & (g != 0.0)                        # readers of a zero coefficient: not read
    urow = U + i * D
    cols = tl.arange(0, BLOCK_D)
    for d0 in range(0, D, BLOCK_D):
        c = d0 + cols
        dmask = c < D
        ut = tl.load(urow[:, None] + c[None, :], mask=gmask[:, None] & dmask[None, :],
                     other=0).to(ACC)
        sv = tl.sum(a[:, None] * ut, axis=0)
        if NORMALIZE:
            v = tl.load(V + jrow * D + c, mask=dmask, other=0).to(ACC)
            gv = tl.where(proj, inv_v * (sv - gci * v), inv_v * sv)
        else:
            gv = sv
        tl.store(GV + jrow * D + c, gv.to(GV.dtype.element_ty), mask=dmask)


def launch_config(K: int, D: int, fp64: bool = False) -> tuple[bool, int, int, int]:
    """(single, BLOCK_K, BLOCK_D, num_warps) from K, D and the compute dtype alone (no autotune:
    the interpreter and the AOT test see the same configs).

    BLOCK_K = next_pow2(K + 1) (at least 2) holds every slot of a row; BLOCK_D fills the tile to
    _TILE elements (fp64: half), at least 8 (fp64: 4) and at most next_pow2(D); SINGLE when one
    chunk covers D. Warps for 16 tile elements per thread (fp64: 8), 1 to 16 of them. ptxas, every
    AOT specialization (sm_80, sm_90): no spills; pass 2 at most 98 registers, pass 1 at most 113
    in fp32/fp16/bf16 and 128 in fp64, and up to 128 at K = 1023 (16 warps: the cap; the [BLOCK_K]
    slot vectors add to the tile). fp64 with BLOCK_D = 8 there spilled 96-344 bytes, hence its
    floor of 4.
    """
    if K > MAX_K:
        raise ValueError(f"num_negative_samples (K = {K}) must be <= {MAX_K} on the triton backend")
    block_k = max(2, triton.next_power_of_2(int(K) + 1))
    tile = _TILE // 2 if fp64 else _TILE
    d_pow = max(2, triton.next_power_of_2(max(int(D), 1)))
    block_d = min(d_pow, max(4 if fp64 else 8, tile // block_k))
    single = d_pow <= block_d
    per_thread = 8 if fp64 else 16
    num_warps = max(1, min(16, block_k * block_d // (32 * per_thread)))
    return single, block_k, block_d, num_warps


_FLOAT = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _check(u, v, kept, weight, shifts, row_loss, row_den, grad_user, grad_item, compute_grad):
    if u.dim() != 2 or not u.is_contiguous() or u.dtype not in _FLOAT:
        raise ValueError(f"u must be a contiguous [B, D] float tensor, got {tuple(u.shape)} {u.dtype}")
    if v.shape != u.shape or v.dtype != u.dtype or not v.is_contiguous():
        raise ValueError(f"v must be a contiguous {tuple(u.shape)} {u.dtype} tensor, got "
                         f"{tuple(v.shape)} {v.dtype}")
    b = u.shape[0]
    acc = torch.float64 if u.dtype == torch.float64 else torch.float32
    if kept.shape != (b,) or kept.dtype != torch.bool or not kept.is_contiguous():
        raise ValueError(f"kept must be a contiguous [{b}] bool tensor, got {tuple(kept.shape)} "
                         f"{kept.dtype}")
    if weight is not None and (weight.dim() != 1 or weight.shape[0] not in (1, b)
                               or weight.dtype != acc or not weight.is_contiguous()):
        raise ValueError(f"weight must be a contiguous [1] or [{b}] {acc} tensor, got "
                         f"{tuple(weight.shape)} {weight.dtype}")
    if shifts.dim() != 1 or shifts.dtype != torch.int64 or not shifts.is_contiguous():
        raise ValueError(f"shifts must be a contiguous [K] int64 tensor, got {tuple(shifts.shape)} "
                         f"{shifts.dtype}")
    for name, out in (("row_loss", row_loss), ("row_den", row_den)):
        if out.shape != (b,) or out.dtype != acc or not out.is_contiguous():
            raise ValueError(f"{name} must be a contiguous [{b}] {acc} tensor, got "
                             f"{tuple(out.shape)} {out.dtype}")
    if compute_grad:
        for name, g in (("grad_user", grad_user), ("grad_item", grad_item)):
            if g.shape != u.shape or g.dtype != u.dtype or not g.is_contiguous():
                raise ValueError(f"{name} must be a contiguous {tuple(u.shape)} {u.dtype} tensor, "
                                 f"got {tuple(g.shape)} {g.dtype}")


def sv_softmax_rows_triton(u, v, kept, weight, shifts, row_loss, row_den, grad_user, grad_item, *,
                           normalize, margin, gamma, t, reduction, compute_grad):
    """Fills row_loss [B] (w_i loss_i, 0 for rows not kept) and row_den [B] (the mean's
    denominator: 1 for kept rows, under reduction 3 only those of nonzero weight) in the compute
    dtype (fp32, fp64 for fp64 input) and, when compute_grad, grad_user / grad_item [B, D] (input
    dtype) with the gradients of sum_i w_i loss_i.

    u, v: contiguous [B, D] fp16/bf16/fp32/fp64; kept: bool [B]; weight: None, [1] or [B] in the
    compute dtype; shifts: int64 [K] (negative k of row i is v[(i - shifts[k]) mod B], any value).
    K must be <= MAX_K (1023): a ValueError naming num_negative_samples otherwise.
    reduction: 1 sum, 2 mean, 3 sum_by_nonzero_weights.
    """
    compute_grad = bool(compute_grad)
    _check(u, v, kept, weight, shifts, row_loss, row_den, grad_user, grad_item, compute_grad)
    b, d = u.shape
    k = shifts.shape[0]
    fp64 = u.dtype == torch.float64
    single, block_k, block_d, num_warps = launch_config(k, d, fp64)   # K checked even for B = 0
    if b == 0:
        return
    reduction = int(reduction)
    if reduction not in (1, 2, 3):
        raise ValueError(f"reduction must be 1 (sum), 2 (mean) or 3 (sum_by_nonzero_weights), "
                         f"got {reduction}")
    # Unused pointers get a real tensor of the right type: empty tensors may have a null data_ptr.
    if d == 0:
        u = v = torch.zeros(1, dtype=u.dtype, device=u.device)
        if compute_grad:
            grad_user = grad_item = u
    if k == 0:
        shifts = torch.zeros(1, dtype=torch.int64, device=u.device)
    if compute_grad:
        scr_stride = 2 * (k + 1) + 2
        scratch = torch.empty((b, scr_stride), dtype=row_loss.dtype, device=u.device)
    else:
        scr_stride = 0
        scratch = row_loss
    has_w = weight is not None
    _sv_user_kernel[(b,)](
        u, v, kept.view(torch.uint8), weight if has_w else row_loss, shifts, row_loss, row_den,
        grad_user if compute_grad else u, scratch,
        b, d, k, (1 if weight.numel() == b and b != 1 else 0) if has_w else 0, scr_stride, reduction,
        float(margin), float(gamma), float(t),
        NORMALIZE=bool(normalize), HAS_WEIGHT=has_w, COMPUTE_GRAD=compute_grad, SINGLE=single,
        BLOCK_K=block_k, BLOCK_D=block_d, num_warps=num_warps,
    )
    if compute_grad:
        _sv_item_kernel[(b,)](
            u, v, shifts, grad_item, scratch, b, d, k, scr_stride,
            NORMALIZE=bool(normalize), BLOCK_K=block_k, BLOCK_D=block_d, num_warps=num_warps,
        )


def aot_specializations() -> list[dict]:
    """Signatures compiled ahead of time by tests/test_triton_aot.py (sm_80 and sm_90): pass 1 for
    fp32/fp16/bf16/fp64 inputs, normalised or not, with and without weight and grad, and pass 2,
    each at the single-tile configs (small K and D; K = 15, D = 256, the widest tile), the looped
    D path (K = 3, D = 4096) and the largest K (1023, BLOCK_D = 8, looped)."""
    cases = [
        # (dtype, normalize, weight, grad)
        ("fp32", True, False, True),
        ("fp32", False, True, True),
        ("fp32", True, True, False),
        ("fp16", True, True, True),
        ("bf16", True, False, True),
        ("bf16", False, False, False),
        ("fp64", True, True, True),
        ("fp64", False, False, True),
    ]
    shapes = [(4, 64), (15, 256), (3, 4096), (MAX_K, 64)]   # (K, D)
    specs = []
    for xd, norm, has_w, grad in cases:
        fp64 = xd == "fp64"
        acc = "fp64" if fp64 else "fp32"
        for k, d in shapes:
            single, block_k, block_d, num_warps = launch_config(k, d, fp64)
            tag = f"{xd}_n{int(norm)}_k{block_k}d{block_d}_s{int(single)}"
            specs.append({
                "name": f"sv_softmax_user_{tag}_w{int(has_w)}_g{int(grad)}",
                "fn": _sv_user_kernel,
                "signature": {
                    "U": f"*{xd}", "V": f"*{xd}", "KEPT": "*u8", "W": f"*{acc}", "SHIFTS": "*i64",
                    "ROW_LOSS": f"*{acc}", "ROW_DEN": f"*{acc}", "GU": f"*{xd}", "SCR": f"*{acc}",
                    "B": "i64", "D": "i64", "K": "i64", "w_stride": "i32", "scr_stride": "i64",
                    "reduction": "i32",
                    "margin_arg": "fp64", "gamma_arg": "fp64", "t_arg": "fp64",
                    "NORMALIZE": "constexpr", "HAS_WEIGHT": "constexpr",
                    "COMPUTE_GRAD": "constexpr", "SINGLE": "constexpr",
                    "BLOCK_K": "constexpr", "BLOCK_D": "constexpr",
                },
                "constexprs": {
                    "NORMALIZE": norm, "HAS_WEIGHT": has_w, "COMPUTE_GRAD": grad,
                    "SINGLE": single, "BLOCK_K": block_k, "BLOCK_D": block_d,
                },
                "num_warps": num_warps,
            })
    # Pass 2 (no weight, always with grad): every (dtype, normalize) of the cases with grad.
    for xd, norm in dict.fromkeys((xd, norm) for xd, norm, _, grad in cases if grad):
        fp64 = xd == "fp64"
        acc = "fp64" if fp64 else "fp32"
        for k, d in shapes:
            single, block_k, block_d, num_warps = launch_config(k, d, fp64)
            specs.append({
                "name": f"sv_softmax_item_{xd}_n{int(norm)}_k{block_k}d{block_d}",
                "fn": _sv_item_kernel,
                "signature": {
                    "U": f"*{xd}", "V": f"*{xd}", "SHIFTS": "*i64", "GV": f"*{xd}",
                    "SCR": f"*{acc}", "B": "i64", "D": "i64", "K": "i64", "scr_stride": "i64",
                    "NORMALIZE": "constexpr", "BLOCK_K": "constexpr", "BLOCK_D": "constexpr",
                },
                "constexprs": {"NORMALIZE": norm, "BLOCK_K": block_k, "BLOCK_D": block_d},
                "num_warps": num_warps,
            })
    return specs
