"""The autograd formula of every fused op that returns ``(loss, grad, scale)``.

Forward already computed ``grad`` = d(sum of unreduced losses)/d input (in the input's dtype, or
the accumulation dtype). Backward only multiplies it by the incoming gradient: elementwise (after
broadcasting a per-row ``grad_output`` over the trailing dims) for reduction "none", else by
``grad_output * scale``.
"""

import torch


def scale_grad(grad: torch.Tensor, grad_loss: torch.Tensor, scale: torch.Tensor,
               reduction_none: bool, class_dim: int = -1) -> torch.Tensor:
    if reduction_none:
        if grad.dim() > grad_loss.dim():  # a loss per row: broadcast it over the row's classes
            grad_loss = grad_loss.unsqueeze(class_dim)
        return grad * grad_loss
    if grad.dtype == torch.float16:
        # 1/N can be subnormal in fp16: scale in fp32, round once.
        return (grad.float() * (grad_loss.float() * scale)).to(grad.dtype)
    return grad * (grad_loss.to(scale.dtype) * scale)


def register_fused_op(names, fake, *, n_args: int, compute_grad_arg: int,
                      reduction_arg: int | None = None, class_dim: int = -1) -> None:
    """Register ``fake`` and the autograd formula for each op in ``names`` (differentiable in
    argument 0 only). ``inputs[reduction_arg] == 0`` means reduction "none"; a per-row loss is then
    broadcast over the gradient's dim ``class_dim``."""

    def setup_context(ctx, inputs, output):
        ctx.reduction_none = reduction_arg is not None and inputs[reduction_arg] == 0
        # grad and scale are not differentiable: a double backward then raises instead of silently
        # returning a zero second derivative.
        ctx.mark_non_differentiable(output[1], output[2])
        # Backward never reads the gradients of grad and scale: without this, autograd fills an
        # input-sized tensor of zeros for grad's before every backward call.
        ctx.set_materialize_grads(False)
        if ctx.needs_input_grad[0]:
            if not inputs[compute_grad_arg]:
                raise RuntimeError(f"{names[0]} was called with compute_grad=False on an input "
                                   "that requires grad")
            ctx.save_for_backward(output[1], output[2])

    def backward(ctx, grad_loss, _grad_grad, _grad_scale):
        if not ctx.needs_input_grad[0] or grad_loss is None:
            return (None,) * n_args
        grad, scale = ctx.saved_tensors
        return (scale_grad(grad, grad_loss, scale, ctx.reduction_none, class_dim),) + (None,) * (n_args - 1)

    for name in names:
        torch.library.register_fake(name, fake)
        torch.library.register_autograd(name, backward, setup_context=setup_context)
