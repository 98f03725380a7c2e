"""Registration of the softmax family's fused op (``fusedloss::softmax_fwd`` and its Triton twin).

The C++ extension registers the CPU and CUDA kernels; this module adds the Triton kernel, the fake
kernel, the autograd formula and ``run_softmax``, the call path of the public functions. Every
kernel writes, per row, the loss and the mean's denominator in the accumulation dtype, and the
gradient, in one launch; the reduction over rows happens here (Triton) or in the C++ op.
"""

import math

import torch

from fusedloss.ops import _library  # noqa: F401
from fusedloss.ops._autograd import register_fused_op
from fusedloss.ops._reduce import finish_rows

MODES = {"cross_entropy": 0, "focal": 1}
REDUCTIONS = {"none": 0, "sum": 1, "mean": 2}

_OPS = {
    "cpu": torch.ops.fusedloss.softmax_fwd.default,
    "cuda": torch.ops.fusedloss.softmax_fwd.default,
    "triton": torch.ops.fusedloss.softmax_fwd_triton.default,
}


def _acc_dtype(input: torch.Tensor) -> torch.dtype:
    return torch.float64 if input.dtype == torch.float64 else torch.float32


def _fake(input, target, weight, mode, ignore_index, label_smoothing, z_loss, gamma, reduction,
          compute_grad):
    n, _, d = input.shape
    loss = input.new_empty((n, d) if reduction == 0 else ())
    grad = input.new_empty(input.shape if compute_grad else (0,))
    return loss, grad, input.new_empty((), dtype=_acc_dtype(input))


def _triton_impl(input, target, weight, mode, ignore_index, label_smoothing, z_loss, gamma,
                 reduction, compute_grad):
    from fusedloss.triton_kernels.softmax import softmax_rows_triton

    x, t = input.contiguous(), target.contiguous()
    n, _, d = x.shape
    row_loss = x.new_empty((n * d,), dtype=_acc_dtype(x))
    row_den = torch.empty_like(row_loss)
    grad = x.new_empty(x.shape if compute_grad else (0,))
    softmax_rows_triton(x, t, weight, row_loss, row_den, grad, mode=mode, ignore_index=ignore_index,
                        smoothing=label_smoothing, z_loss=z_loss, gamma=gamma,
                        compute_grad=compute_grad)
    loss, scale = finish_rows(row_loss, reduction, x.dtype, row_den)
    return (loss.reshape(n, d) if reduction == 0 else loss), grad, scale


register_fused_op(("fusedloss::softmax_fwd", "fusedloss::softmax_fwd_triton"), _fake,
                  n_args=10, compute_grad_arg=9, reduction_arg=8, class_dim=1)
torch.library.register_kernel("fusedloss::softmax_fwd_triton", ("cpu", "cuda"), _triton_impl)


def _fake_inplace(input, target, weight, kind, ignore_index, label_smoothing, z_loss, gamma,
                  reduction):
    n, _, d = input.shape
    return input.new_empty((n, d) if reduction == 0 else ()), input.new_empty((), dtype=_acc_dtype(input))


def _triton_inplace_impl(input, target, weight, kind, ignore_index, label_smoothing, z_loss, gamma,
                         reduction):
    from fusedloss.triton_kernels.softmax import softmax_rows_triton

    n, _, d = input.shape
    row_loss = input.new_empty((n * d,), dtype=_acc_dtype(input))
    row_den = torch.empty_like(row_loss)
    softmax_rows_triton(input, target.contiguous(), weight, row_loss, row_den, input, mode=kind,
                        ignore_index=ignore_index, smoothing=label_smoothing, z_loss=z_loss,
                        gamma=gamma, compute_grad=True)
    loss, scale = finish_rows(row_loss, reduction, input.dtype, row_den)
    return (loss.reshape(n, d) if reduction == 0 else loss), scale


for _name in ("fusedloss::softmax_fwd_inplace", "fusedloss::softmax_fwd_inplace_triton"):
    torch.library.register_fake(_name, _fake_inplace)
torch.library.register_kernel("fusedloss::softmax_fwd_inplace_triton", ("cpu", "cuda"),
                              _triton_inplace_impl)

_INPLACE_OPS = {
    "cpu": torch.ops.fusedloss.softmax_fwd_inplace.default,
    "cuda": torch.ops.fusedloss.softmax_fwd_inplace.default,
    "triton": torch.ops.fusedloss.softmax_fwd_inplace_triton.default,
}


class _InplaceGrad(torch.autograd.Function):
    """inplace_grad=True: the kernel overwrites the logits with d(sum of row losses)/dx, and
    backward scales that memory in place and hands it back as the gradient (no [N, C] allocation
    in forward or backward). Backward can therefore run once; a second run raises."""

    @staticmethod
    def forward(ctx, x, backend, t, w, mode, ignore_index, label_smoothing, z_loss, gamma,
                reduction):
        loss, scale = _INPLACE_OPS[backend](x, t, w, mode, ignore_index, label_smoothing, z_loss,
                                            gamma, reduction)
        ctx.save_for_backward(x.detach(), scale)
        ctx.reduction_none = reduction == 0
        ctx.spent = False
        return loss

    @staticmethod
    def backward(ctx, grad_loss):
        if ctx.spent:
            raise RuntimeError("a loss computed with inplace_grad=True can be backpropagated once: "
                               "its gradient lives in the logits' memory")
        ctx.spent = True
        grad, scale = ctx.saved_tensors
        if ctx.reduction_none:
            grad.mul_(grad_loss.unsqueeze(1))
        elif grad.dtype == torch.float16:  # 1/N can be subnormal in fp16: scale in fp32
            grad.copy_(grad.float() * (grad_loss.float() * scale))
        else:
            grad.mul_(grad_loss.to(scale.dtype) * scale)  # as scale_grad: the factor unrounded
        return (grad,) + (None,) * 9


def as_rows(input: torch.Tensor, target: torch.Tensor, probabilities: bool):
    """input [C] | [N, C] | [N, C, d...] as [N, C, D]; target as [N, D] (indices, int64) or
    [N, C, D] (probabilities)."""
    if input.dim() == 1:
        x = input.reshape(1, input.shape[0], 1)
    else:
        x = input.reshape(input.shape[0], input.shape[1], math.prod(input.shape[2:]))
    if probabilities:
        return x, target.reshape(x.shape)
    return x, target.reshape(x.shape[0], x.shape[2]).to(torch.int64)


def run_softmax(backend, input, target, weight=None, *, mode, ignore_index=-100,
                label_smoothing=0.0, z_loss=0.0, gamma=0.0, reduction="mean", inplace_grad=False):
    """Call the fused op of ``backend`` ('cpu', 'cuda' or 'triton'); returns the reduced loss with
    torch's shapes (reduction "none": the target's shape for class indices, input's shape without
    the class dim for probabilities). ``inplace_grad``: a contiguous input that requires grad is
    overwritten with the gradient (see ``_InplaceGrad``)."""
    probabilities = target.dtype.is_floating_point
    x, t = as_rows(input, target, probabilities)
    w = None if weight is None else weight.to(_acc_dtype(input)).contiguous()
    compute_grad = input.requires_grad and torch.is_grad_enabled()
    args = (int(ignore_index), float(label_smoothing), float(z_loss), float(gamma),
            REDUCTIONS[reduction])
    if inplace_grad and compute_grad:
        loss = _InplaceGrad.apply(x, backend, t.contiguous(), w, MODES[mode], *args)
    else:
        loss, _, _ = _OPS[backend](x, t, w, MODES[mode], *args, compute_grad)
    if reduction != "none":
        return loss
    out_shape = input.shape[:1] + input.shape[2:] if input.dim() > 1 else ()
    return loss.reshape(out_shape)
