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
                label_smoothing=0.0, z_loss=0.0, gamma=0.0, reduction="mean"):
    """Call the fused op of ``backend`` ('cpu', 'cuda' or 'triton'); returns the reduced loss with
    torch's shapes (reduction "none": the target's shape for class indices, input's shape without
    the class dim for probabilities)."""
    probabilities = target.dtype.is_floating_point
    x, t = as_rows(input, target, probabilities)
    w = None if weight is None else weight.to(_acc_dtype(input)).contiguous()
    compute_grad = input.requires_grad and torch.is_grad_enabled()
    loss, _, _ = _OPS[backend](x, t, w, MODES[mode], int(ignore_index), float(label_smoothing),
                               float(z_loss), float(gamma), REDUCTIONS[reduction], compute_grad)
    if reduction != "none":
        return loss
    out_shape = input.shape[:1] + input.shape[2:] if input.dim() > 1 else ()
    return loss.reshape(out_shape)
