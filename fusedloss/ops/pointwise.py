"""Registration of the pointwise family's fused op (``fusedloss::pointwise_fwd[_triton]``): fake
kernel, autograd formula, Triton kernel and ``run_pointwise``, the call path of the public functions.

Same contract as the binary sigmoid family (fusedloss.ops.focal): one launch writes the loss (or
per-block partial sums and nonzero-weight counts) and the gradient.
"""

import torch

from fusedloss.ops import _library  # noqa: F401
from fusedloss.ops._autograd import register_fused_op
from fusedloss.ops.focal import _finish_reduction, broadcast_layout

KINDS = {
    "l1": 0, "mse": 1, "huber": 2, "smooth_l1": 3, "log_cosh": 4, "mape": 5, "hinge": 6,
    "squared_hinge": 7, "exponential": 8, "sigmoid_mse": 9, "log_loss": 10, "kl_div": 11,
    "kl_div_log_target": 12,
}
REDUCTIONS = {"none": 0, "sum": 1, "mean": 2, "sum_by_nonzero_weights": 3}

_OPS = {
    "cpu": torch.ops.fusedloss.pointwise_fwd.default,
    "cuda": torch.ops.fusedloss.pointwise_fwd.default,
    "triton": torch.ops.fusedloss.pointwise_fwd_triton.default,
}


def _acc_dtype(input: torch.Tensor) -> torch.dtype:
    return torch.float64 if input.dtype == torch.float64 else torch.float32


def _fake(input, target, weight, kind, param, reduction, weight_layout, compute_grad):
    loss = input.new_empty(input.shape if reduction == 0 else ())
    grad = input.new_empty(input.shape if compute_grad else (0,))
    return loss, grad, input.new_empty((), dtype=_acc_dtype(input))


def _triton_impl(input, target, weight, kind, param, reduction, weight_layout, compute_grad):
    from fusedloss.triton_kernels.pointwise import pointwise_fwd_triton

    x, t = input.contiguous(), target.contiguous()
    acc = _acc_dtype(input)
    reduce = reduction != REDUCTIONS["none"]
    loss = x.new_empty(()) if reduce else x.new_empty(x.shape)
    grad = x.new_empty(x.shape if compute_grad else (0,))
    partial = pointwise_fwd_triton(x, t, weight, weight_layout, kind=kind, param=param,
                                   reduce=reduce, compute_grad=compute_grad, loss=loss, grad=grad)
    if not reduce:
        return loss, grad, x.new_ones((), dtype=acc)
    loss, scale = _finish_reduction(partial, x.numel(), reduction, input.dtype)
    return loss, grad, scale


register_fused_op(("fusedloss::pointwise_fwd", "fusedloss::pointwise_fwd_triton"), _fake,
                  n_args=8, compute_grad_arg=7, reduction_arg=5)
torch.library.register_kernel("fusedloss::pointwise_fwd_triton", ("cpu", "cuda"), _triton_impl)


def run_pointwise(backend, kind, input, target, param=0.0, weight=None, reduction="mean"):
    """Call the fused op of ``backend`` ('cpu', 'cuda' or 'triton'); returns the reduced loss."""
    acc = _acc_dtype(input)
    w, layout = broadcast_layout(weight, input.shape, acc)
    compute_grad = input.requires_grad and torch.is_grad_enabled()
    loss, _, _ = _OPS[backend](input, target.to(input.dtype), w, KINDS[kind], float(param),
                               REDUCTIONS[reduction], layout, compute_grad)
    return loss
