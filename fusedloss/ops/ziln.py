"""Registration and call path of the ZILN loss (``fusedloss::ziln_fwd[_triton]``): fake kernel,
autograd formula (the op's grad is final, its scale 1), the Triton kernel, and ``run_ziln``."""

import torch

from fusedloss.ops import _library  # noqa: F401
from fusedloss.ops._autograd import register_fused_op

_OPS = {
    "cpu": torch.ops.fusedloss.ziln_fwd.default,
    "cuda": torch.ops.fusedloss.ziln_fwd.default,
    "triton": torch.ops.fusedloss.ziln_fwd_triton.default,
}


def acc_dtype(logits: torch.Tensor) -> torch.dtype:
    return torch.float64 if logits.dtype == torch.float64 else torch.float32


def _fake(logits, labels, max_sigma, class_weight, reg_weight, mu_reg, sigma_reg, compute_grad):
    grad = logits.new_empty(logits.shape if compute_grad else (0,))
    return logits.new_empty(()), grad, logits.new_empty((), dtype=acc_dtype(logits))


def _triton_impl(*args):
    from fusedloss.triton_kernels.ziln import ziln_fwd_triton

    return ziln_fwd_triton(*args)


register_fused_op(("fusedloss::ziln_fwd", "fusedloss::ziln_fwd_triton"), _fake, n_args=8,
                  compute_grad_arg=7)
torch.library.register_kernel("fusedloss::ziln_fwd_triton", ("cpu", "cuda"), _triton_impl)


def run_ziln(backend, logits, labels, *, max_sigma, class_weight, reg_weight, mu_reg, sigma_reg):
    """Call the fused ZILN op of ``backend`` ('cpu', 'cuda' or 'triton'); returns the 0-d loss."""
    compute_grad = logits.requires_grad and torch.is_grad_enabled()
    loss, _, _ = _OPS[backend](logits.contiguous(), labels.reshape(-1).to(acc_dtype(logits)).contiguous(),
                               float(max_sigma), float(class_weight), float(reg_weight),
                               float(mu_reg), float(sigma_reg), compute_grad)
    return loss
