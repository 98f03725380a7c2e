"""Registration of the support-vector-guided softmax (``fusedloss::sv_softmax_fwd`` and its Triton
twin): fake kernel, autograd formula (two differentiable embeddings), Triton kernel and
``run_sv_softmax``, the call path of the public function.

Every kernel writes per row the weighted loss and the mean's denominator in the accumulation dtype,
and both gradients (unscaled, of the sum of weighted row losses); the reduction happens here
(Triton) or in the C++ op.
"""

import torch

from fusedloss.ops import _library  # noqa: F401

REDUCTIONS = {"sum": 1, "mean": 2, "sum_by_nonzero_weights": 3}

_OPS = {
    "cpu": torch.ops.fusedloss.sv_softmax_fwd.default,
    "cuda": torch.ops.fusedloss.sv_softmax_fwd.default,
    "triton": torch.ops.fusedloss.sv_softmax_fwd_triton.default,
}


def acc_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def finish(row_loss: torch.Tensor, row_den: torch.Tensor, reduction: int, dtype: torch.dtype):
    """(loss, scale) from the per-row weighted losses and denominators, without a host sync; a zero
    denominator gives loss 0 and scale 0 (TF's SUM_BY_NONZERO_WEIGHTS)."""
    total = row_loss.sum(dtype=torch.float64)
    if reduction == REDUCTIONS["sum"]:
        return total.to(dtype), row_loss.new_ones(())
    den = row_den.sum(dtype=torch.float64)
    safe = torch.where(den != 0, den, 1.0)
    loss = torch.where(den != 0, total / safe, 0.0)
    scale = torch.where(den != 0, 1.0 / safe, 0.0)
    return loss.to(dtype), scale.to(row_loss.dtype)


def _fake(user, item, kept, weight, shifts, normalize, margin, gamma, t, reduction, compute_grad):
    grad_shape = user.shape if compute_grad else (0,)
    return (user.new_empty(()), user.new_empty(grad_shape), user.new_empty(grad_shape),
            user.new_empty((), dtype=acc_dtype(user)))


def _triton_impl(user, item, kept, weight, shifts, normalize, margin, gamma, t, reduction,
                 compute_grad):
    from fusedloss.triton_kernels.sv_softmax import sv_softmax_rows_triton

    u, v = user.contiguous(), item.contiguous()
    b = u.shape[0]
    acc = acc_dtype(u)
    row_loss = u.new_empty((b,), dtype=acc)
    row_den = torch.empty_like(row_loss)
    grad_user = u.new_empty(u.shape if compute_grad else (0,))
    grad_item = v.new_empty(v.shape if compute_grad else (0,))
    sv_softmax_rows_triton(u, v, kept.contiguous(), None if weight is None else weight.contiguous(),
                           shifts.contiguous(), row_loss, row_den, grad_user, grad_item,
                           normalize=normalize, margin=margin, gamma=gamma, t=t,
                           reduction=reduction, compute_grad=compute_grad)
    loss, scale = finish(row_loss, row_den, reduction, u.dtype)
    return loss, grad_user, grad_item, scale


def _setup_context(ctx, inputs, output):
    ctx.mark_non_differentiable(output[1], output[2], output[3])
    ctx.set_materialize_grads(False)
    if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
        if not inputs[10]:
            raise RuntimeError("sv_softmax_fwd was called with compute_grad=False on embeddings "
                               "that require grad")
        ctx.save_for_backward(output[1], output[2], output[3])


def _backward(ctx, grad_loss, _gu, _gv, _gs):
    none = (None,) * 9
    if grad_loss is None or not (ctx.needs_input_grad[0] or ctx.needs_input_grad[1]):
        return (None, None) + none
    grad_user, grad_item, scale = ctx.saved_tensors
    factor = grad_loss.to(scale.dtype) * scale
    out = []
    for needed, grad in ((ctx.needs_input_grad[0], grad_user), (ctx.needs_input_grad[1], grad_item)):
        if not needed:
            out.append(None)
        elif grad.dtype == torch.float16:  # scale in fp32 (1/N may be subnormal in fp16)
            out.append((grad.float() * factor).to(grad.dtype))
        else:
            out.append(grad * factor.to(grad.dtype))
    return tuple(out) + none


for _name in ("fusedloss::sv_softmax_fwd", "fusedloss::sv_softmax_fwd_triton"):
    torch.library.register_fake(_name, _fake)
    torch.library.register_autograd(_name, _backward, setup_context=_setup_context)
torch.library.register_kernel("fusedloss::sv_softmax_fwd_triton", ("cpu", "cuda"), _triton_impl)


def run_sv_softmax(backend, user, item, labels, shifts, weights, *, embed_normed, margin, gamma, t,
                   reduction):
    """Call the fused op of ``backend`` ('cpu', 'cuda' or 'triton'); returns the reduced loss
    (NaN replaced by 0, as EasyRec does)."""
    acc = acc_dtype(user)
    kept = (labels.reshape(-1) > 0).contiguous()
    weight = None if weights is None else weights.to(acc).reshape(-1).contiguous()
    compute_grad = (user.requires_grad or item.requires_grad) and torch.is_grad_enabled()
    loss, _, _, _ = _OPS[backend](user, item, kept, weight, shifts.to(torch.int64).contiguous(),
                                  not embed_normed, float(margin), float(gamma), float(t),
                                  REDUCTIONS[reduction], compute_grad)
    return torch.where(torch.isnan(loss), torch.zeros_like(loss), loss)
