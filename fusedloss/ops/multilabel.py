"""Registration of the multilabel categorical cross-entropy ops (``fusedloss::multilabel_ce_fwd``,
``fusedloss::sparse_multilabel_ce_fwd`` and their ``_triton`` twins).

The C++ extension registers the CPU and CUDA kernels; this module adds the Triton kernels, the fake
kernels, the autograd formula and ``run_multilabel_ce`` / ``run_sparse_multilabel_ce``, the call
paths of the public functions. Every kernel writes the per-row loss [N] in the accumulation dtype
and the gradient in one launch; the reduction over rows happens here (Triton) or in the C++ op.
"""

import math

import torch

from fusedloss.ops import _library  # noqa: F401
from fusedloss.ops._autograd import register_fused_op
from fusedloss.ops._reduce import finish_rows

REDUCTIONS = {"none": 0, "sum": 1, "mean": 2}

_DENSE = {
    "cpu": torch.ops.fusedloss.multilabel_ce_fwd.default,
    "cuda": torch.ops.fusedloss.multilabel_ce_fwd.default,
    "triton": torch.ops.fusedloss.multilabel_ce_fwd_triton.default,
}
_SPARSE = {
    "cpu": torch.ops.fusedloss.sparse_multilabel_ce_fwd.default,
    "cuda": torch.ops.fusedloss.sparse_multilabel_ce_fwd.default,
    "triton": torch.ops.fusedloss.sparse_multilabel_ce_fwd_triton.default,
}


def _acc_dtype(input: torch.Tensor) -> torch.dtype:
    return torch.float64 if input.dtype == torch.float64 else torch.float32


def _fake_outputs(input, reduction, compute_grad):
    loss = input.new_empty((input.shape[0],) if reduction == 0 else ())
    grad = input.new_empty(input.shape if compute_grad else (0,))
    return loss, grad, input.new_empty((), dtype=_acc_dtype(input))


def _fake_dense(input, target, reduction, compute_grad):
    return _fake_outputs(input, reduction, compute_grad)


def _fake_sparse(input, positive_index, mask_zero, reduction, compute_grad):
    return _fake_outputs(input, reduction, compute_grad)


def _triton_buffers(x, compute_grad):
    row_loss = x.new_empty((x.shape[0],), dtype=_acc_dtype(x))
    grad = x.new_empty(x.shape if compute_grad else (0,))
    return row_loss, grad


def _triton_dense(input, target, reduction, compute_grad):
    from fusedloss.triton_kernels.multilabel import multilabel_ce_rows_triton

    x, t = input.contiguous(), target.contiguous()
    row_loss, grad = _triton_buffers(x, compute_grad)
    multilabel_ce_rows_triton(x, t, row_loss, grad, compute_grad)
    loss, scale = finish_rows(row_loss, reduction, x.dtype)
    return loss, grad, scale


def _triton_sparse(input, positive_index, mask_zero, reduction, compute_grad):
    from fusedloss.triton_kernels.multilabel import sparse_multilabel_ce_rows_triton

    x, idx = input.contiguous(), positive_index.contiguous()
    row_loss, grad = _triton_buffers(x, compute_grad)
    sparse_multilabel_ce_rows_triton(x, idx, mask_zero, row_loss, grad, compute_grad)
    loss, scale = finish_rows(row_loss, reduction, x.dtype)
    return loss, grad, scale


register_fused_op(("fusedloss::multilabel_ce_fwd", "fusedloss::multilabel_ce_fwd_triton"),
                  _fake_dense, n_args=4, compute_grad_arg=3, reduction_arg=2)
register_fused_op(("fusedloss::sparse_multilabel_ce_fwd", "fusedloss::sparse_multilabel_ce_fwd_triton"),
                  _fake_sparse, n_args=5, compute_grad_arg=4, reduction_arg=3)
torch.library.register_kernel("fusedloss::multilabel_ce_fwd_triton", ("cpu", "cuda"), _triton_dense)
torch.library.register_kernel("fusedloss::sparse_multilabel_ce_fwd_triton", ("cpu", "cuda"),
                              _triton_sparse)


def _rows(input: torch.Tensor):
    """input [..., C] as [N, C], and the leading shape."""
    lead = input.shape[:-1]
    return input.reshape(math.prod(lead), input.shape[-1]), lead


def _call(op, input, others, reduction):
    x, lead = _rows(input)
    compute_grad = input.requires_grad and torch.is_grad_enabled()
    loss, _, _ = op(x, *others(x.shape[0]), REDUCTIONS[reduction], compute_grad)
    return loss.reshape(lead) if reduction == "none" else loss


def run_multilabel_ce(backend, input, target, reduction="mean"):
    """Dense form through the fused op of ``backend`` ('cpu', 'cuda' or 'triton')."""
    return _call(_DENSE[backend], input, lambda n: (target.reshape(n, input.shape[-1]),), reduction)


def run_sparse_multilabel_ce(backend, input, positive_index, mask_zero=False, reduction="mean"):
    """Sparse form through the fused op of ``backend``; sorts each row of indices (O(N K log K))."""

    def others(n):
        idx = positive_index.reshape(n, positive_index.shape[-1]).to(torch.int64)
        return idx.sort(dim=-1).values, bool(mask_zero)

    return _call(_SPARSE[backend], input, others, reduction)
