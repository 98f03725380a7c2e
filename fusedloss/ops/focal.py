"""Registration of the binary sigmoid family's fused op (``fusedloss::binary_focal_fwd[_triton]``).

The C++ extension registers the CPU and CUDA kernels of ``binary_focal_fwd``; this module adds the
Triton kernel, the fake (shape) kernel and the autograd formula shared by both ops, and
``run_binary_focal``, the one call path the public functions use.
"""

import math

import torch

from fusedloss.ops import _library  # noqa: F401
from fusedloss.ops._autograd import register_fused_op

MODES = {"bce": 0, "torchvision": 1, "easyrec": 2}
REDUCTIONS = {"none": 0, "sum": 1, "mean": 2, "sbnz": 3}

_OPS = {
    "cpu": torch.ops.fusedloss.binary_focal_fwd.default,
    "cuda": torch.ops.fusedloss.binary_focal_fwd.default,
    "triton": torch.ops.fusedloss.binary_focal_fwd_triton.default,
}


def _acc_dtype(input: torch.Tensor) -> torch.dtype:
    return torch.float64 if input.dtype == torch.float64 else torch.float32


def broadcast_layout(weight, shape: torch.Size, acc: torch.dtype):
    """A contiguous 1-D weight and ``[div, mod]`` such that element i reads weight[(i // div) % mod].

    Exact for a weight that varies along one contiguous run of dims (scalar, [C], [B, 1], full);
    any other broadcast is materialised at the input's size.
    """
    if weight is None:
        return None, [1, 1]
    n = math.prod(shape)
    wshape = [1] * (len(shape) - weight.dim()) + list(weight.shape)
    varying = [d for d, size in enumerate(wshape) if size != 1]
    if n == 0 or not varying:
        flat = weight.reshape(-1)[:1] if weight.numel() else weight.new_ones(1)
        return flat.to(acc).contiguous(), [1, 1]
    lo, hi = varying[0], varying[-1] + 1
    if all(wshape[d] == shape[d] for d in range(lo, hi)):
        return weight.reshape(-1).to(acc).contiguous(), [math.prod(shape[hi:]), math.prod(shape[lo:hi])]
    return weight.expand(shape).reshape(-1).to(acc).contiguous(), [1, n]


def _fake(input, target, weight, pos_weight, mode, alpha, gamma, label_smoothing, reduction,
          weight_layout, pos_weight_layout, compute_grad):
    loss = input.new_empty(input.shape if reduction == 0 else ())
    grad = input.new_empty(input.shape if compute_grad else (0,))
    return loss, grad, input.new_empty((), dtype=_acc_dtype(input))


def _finish_reduction(partial: torch.Tensor, n: int, reduction: int, dtype: torch.dtype):
    """(loss, scale) from per-block (sum, nonzero count) partials, without a host sync."""
    total = partial[:, 0].sum(dtype=torch.float64)
    if reduction == REDUCTIONS["sum"]:
        scale = total.new_ones(())
    elif reduction == REDUCTIONS["mean"]:
        scale = total.new_full((), 1.0 / n if n else 0.0)
        total = total / n if n else total.new_full((), float("nan"))
    else:
        count = partial[:, 1].sum(dtype=torch.float64)
        scale = torch.where(count > 0, 1.0 / count.clamp(min=1), 0.0)
        total = total * scale
    return total.to(dtype), scale.to(partial.dtype)


def _triton_impl(input, target, weight, pos_weight, mode, alpha, gamma, label_smoothing, reduction,
                 weight_layout, pos_weight_layout, compute_grad):
    from fusedloss.triton_kernels.focal import binary_focal_fwd_triton

    x, t = input.contiguous(), target.contiguous()
    acc = _acc_dtype(input)
    reduce = reduction != REDUCTIONS["none"]
    n = x.numel()
    loss = x.new_empty(()) if reduce else x.new_empty(x.shape)
    grad = x.new_empty(x.shape if compute_grad else (0,))
    partial = binary_focal_fwd_triton(
        x, t, weight, pos_weight, weight_layout, pos_weight_layout, mode=mode, alpha=alpha,
        gamma=gamma, smoothing=label_smoothing, reduce=reduce, compute_grad=compute_grad,
        loss=loss, grad=grad,
    )
    if not reduce:
        return loss, grad, x.new_ones((), dtype=acc)
    loss, scale = _finish_reduction(partial, n, reduction, input.dtype)
    return loss, grad, scale


register_fused_op(("fusedloss::binary_focal_fwd", "fusedloss::binary_focal_fwd_triton"), _fake,
                  n_args=12, compute_grad_arg=11, reduction_arg=8)
torch.library.register_kernel("fusedloss::binary_focal_fwd_triton", ("cpu", "cuda"), _triton_impl)


def run_binary_focal(backend, input, target, weight=None, pos_weight=None, *, mode, alpha=-1.0,
                     gamma=0.0, label_smoothing=0.0, reduction="mean"):
    """Call the fused op of ``backend`` ('cpu', 'cuda' or 'triton'); returns the reduced loss."""
    acc = _acc_dtype(input)
    w, w_layout = broadcast_layout(weight, input.shape, acc)
    pw, pw_layout = broadcast_layout(pos_weight, input.shape, acc)
    compute_grad = input.requires_grad and torch.is_grad_enabled()
    loss, _, _ = _OPS[backend](
        input, target, w, pw, MODES[mode], float(alpha), float(gamma), float(label_smoothing),
        REDUCTIONS[reduction], w_layout, pw_layout, compute_grad,
    )
    return loss
