"""Registration and call path of the row-wise pair losses (``fusedloss::rowwise_fwd`` and its Triton
twin): fake kernel, autograd formula (up to three differentiable inputs), Triton kernel and
``run_rowwise``.

One pass over each row accumulates its sums (dot products, squared norms or p-norm distances), a
scalar step gives the row's loss and gradient coefficients, and a second sweep over the row (still
in cache) writes the gradients: 3 reads and up to 3 writes of each element, no [N, D]
intermediate.
"""

import torch

from fusedloss.ops import _library  # noqa: F401

KINDS = {"margin_ranking": 0, "order_calibrate": 1, "cosine_embedding": 2,
         "cosine_similarity": 3, "triplet": 4, "contrastive": 5}
REDUCTIONS = {"none": 0, "sum": 1, "mean": 2}

_OPS = {
    "cpu": torch.ops.fusedloss.rowwise_fwd.default,
    "cuda": torch.ops.fusedloss.rowwise_fwd.default,
    "triton": torch.ops.fusedloss.rowwise_fwd_triton.default,
}


def acc_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _fake(a, b, c, target, kind, margin, p, eps, swap, reduction, compute_grad):
    n = a.shape[0]
    loss = a.new_empty((n,) if reduction == 0 else ())
    grad_shape = a.shape if compute_grad else (0,)
    gc_shape = a.shape if (compute_grad and c is not None) else (0,)
    return (loss, a.new_empty(grad_shape), a.new_empty(grad_shape), a.new_empty(gc_shape),
            a.new_empty((), dtype=acc_dtype(a)))


def finish(row_loss: torch.Tensor, reduction: int, dtype: torch.dtype):
    """(loss, scale) from the per-row losses (accumulation dtype)."""
    n = row_loss.shape[0]
    if reduction == 0:
        return row_loss.to(dtype), row_loss.new_ones(())
    total = row_loss.sum(dtype=torch.float64)
    if reduction == 1:
        return total.to(dtype), row_loss.new_ones(())
    scale = torch.full((), 1.0 / n if n else float("nan"), dtype=row_loss.dtype,
                       device=row_loss.device)
    return (total * scale).to(dtype), scale


def _triton_impl(a, b, c, target, kind, margin, p, eps, swap, reduction, compute_grad):
    from fusedloss.triton_kernels.rowwise import rowwise_rows_triton

    a, b = a.contiguous(), b.contiguous()
    c = None if c is None else c.contiguous()
    n = a.shape[0]
    row_loss = a.new_empty((n,), dtype=acc_dtype(a))
    ga = a.new_empty(a.shape if compute_grad else (0,))
    gb = a.new_empty(a.shape if compute_grad else (0,))
    gc = a.new_empty(a.shape if (compute_grad and c is not None) else (0,))
    rowwise_rows_triton(a, b, c, None if target is None else target.contiguous(), row_loss, ga, gb,
                        gc, kind=kind, margin=margin, p=p, eps=eps, swap=swap,
                        compute_grad=compute_grad)
    loss, scale = finish(row_loss, reduction, a.dtype)
    return loss, ga, gb, gc, scale


def _setup_context(ctx, inputs, output):
    ctx.mark_non_differentiable(*output[1:])
    ctx.set_materialize_grads(False)
    ctx.reduction_none = inputs[9] == 0
    if any(ctx.needs_input_grad[:3]):
        if not inputs[10]:
            raise RuntimeError("rowwise_fwd was called with compute_grad=False on inputs that "
                               "require grad")
        ctx.save_for_backward(output[1], output[2], output[3], output[4])


def _backward(ctx, grad_loss, *_):
    none = (None,) * 8
    if grad_loss is None or not any(ctx.needs_input_grad[:3]):
        return (None, None, None) + none
    ga, gb, gc, scale = ctx.saved_tensors
    if ctx.reduction_none:
        factor = grad_loss.to(ga.dtype)[:, None]
    else:
        factor = (grad_loss.to(scale.dtype) * scale)
    out = []
    for needed, g in zip(ctx.needs_input_grad[:3], (ga, gb, gc)):
        if not needed:
            out.append(None)
        elif g.dtype == torch.float16 and not ctx.reduction_none:  # 1/N may be subnormal in fp16
            out.append((g.float() * factor).to(g.dtype))
        else:
            out.append(g * factor.to(g.dtype))
    return tuple(out) + none


for _name in ("fusedloss::rowwise_fwd", "fusedloss::rowwise_fwd_triton"):
    torch.library.register_fake(_name, _fake)
    torch.library.register_autograd(_name, _backward, setup_context=_setup_context)
torch.library.register_kernel("fusedloss::rowwise_fwd_triton", ("cpu", "cuda"), _triton_impl)


def run_rowwise(backend, a, b, c=None, target=None, *, kind, margin=0.0, p=2.0, eps=0.0,
                swap=False, reduction="mean"):
    """Call the fused op of ``backend`` on rows a, b (c) [N, D]; returns the loss ([N] or 0-d)."""
    acc = acc_dtype(a)
    t = None if target is None else target.reshape(-1).to(acc).contiguous()
    compute_grad = torch.is_grad_enabled() and any(
        x is not None and x.requires_grad for x in (a, b, c))
    loss = _OPS[backend](a.contiguous(), b.contiguous(), None if c is None else c.contiguous(), t,
                         KINDS[kind], float(margin), float(p), float(eps), bool(swap),
                         REDUCTIONS[reduction], compute_grad)[0]
    return loss
