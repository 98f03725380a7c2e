"""Registration and call path of the per-session softmax losses (``fusedloss::session_softmax_fwd``
and its Triton twin): fake kernel, autograd formula, Triton kernel and ``run_session_softmax``.

The op returns each part's numerator and denominator (sums over the batch of the per-item terms)
and the Jacobian of the numerators; the division happens here, on [P] tensors, so the public
function stays differentiable through the numerator only.
"""

import torch

from fusedloss.ops import _library  # noqa: F401
from fusedloss.ops.pairwise import session_layout

KINDS = {"rank": 0, "distill": 1, "jrc": 2, "jrc_split": 3}
LABEL_IS_LOGITS, TARGETS_GIVEN = 1, 2

_OPS = {
    "cpu": torch.ops.fusedloss.session_softmax_fwd.default,
    "cuda": torch.ops.fusedloss.session_softmax_fwd.default,
    "triton": torch.ops.fusedloss.session_softmax_fwd_triton.default,
}


def num_parts(kind: int) -> int:
    return 2 if kind >= KINDS["jrc"] else 1


def _fake(logits, labels, weight, seg_lo, seg_hi, kind, flags, temperature, clip_max, compute_grad):
    p = num_parts(kind)
    grad_shape = (p,) + tuple(logits.shape) if compute_grad else (0,)
    return logits.new_empty((p,)), logits.new_empty((p,)), logits.new_empty(grad_shape)


def _triton_impl(logits, labels, weight, seg_lo, seg_hi, kind, flags, temperature, clip_max,
                 compute_grad):
    from fusedloss.triton_kernels.session_softmax import session_softmax_rows_triton

    p = num_parts(kind)
    b = logits.shape[0]
    # zeros: an item outside every leader's range (a malformed layout passed to the op directly)
    # is then never read uninitialised
    row_loss = logits.new_zeros((p, b))
    row_den = logits.new_zeros((p, b))
    grad = logits.new_zeros((p,) + tuple(logits.shape) if compute_grad else (0,))
    session_softmax_rows_triton(logits.contiguous(), labels.contiguous(),
                                None if weight is None else weight.contiguous(),
                                seg_lo.contiguous(), seg_hi.contiguous(), row_loss, row_den, grad,
                                kind=kind, flags=flags, temperature=temperature,
                                clip_max=clip_max, compute_grad=compute_grad)
    return row_loss.sum(1), row_den.sum(1), grad


def _setup_context(ctx, inputs, output):
    ctx.mark_non_differentiable(output[1], output[2])
    ctx.set_materialize_grads(False)
    if ctx.needs_input_grad[0]:
        if not inputs[9]:
            raise RuntimeError("session_softmax_fwd was called with compute_grad=False on logits "
                               "that require grad")
        ctx.save_for_backward(output[2])


def _backward(ctx, grad_num, _grad_den, _grad_grad):
    none = (None,) * 9
    if grad_num is None or not ctx.needs_input_grad[0]:
        return (None,) + none
    (grad,) = ctx.saved_tensors
    if grad.shape[0] == 1:
        return (grad[0] * grad_num[0],) + none
    return (torch.einsum("p,pbc->bc", grad_num.to(grad.dtype), grad),) + none


for _name in ("fusedloss::session_softmax_fwd", "fusedloss::session_softmax_fwd_triton"):
    torch.library.register_fake(_name, _fake)
    torch.library.register_autograd(_name, _backward, setup_context=_setup_context)
torch.library.register_kernel("fusedloss::session_softmax_fwd_triton", ("cpu", "cuda"), _triton_impl)


def acc_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def run_session_softmax(backend, logits, labels, session_ids, weight, *, kind, flags=0,
                        temperature=1.0, clip_max=512.0):
    """Call the fused op of ``backend`` ('cpu', 'cuda' or 'triton').

    logits [B, C] (any float dtype), labels [B] (float, already transformed where ``flags`` says
    so), session_ids [B] or None, weight [B] or None. Returns (num, den) [P] in the accumulation
    dtype, num differentiable in ``logits``.
    """
    acc = acc_dtype(logits)
    b = logits.shape[0]
    order, seg_lo, seg_hi = session_layout(session_ids, b, logits.device)
    z, y = logits.to(acc), labels.reshape(-1).to(acc)
    w = None if weight is None else weight.to(acc).reshape(-1).expand(b)
    if order is not None:
        z, y = z[order], y[order]
        w = None if w is None else w[order]
    compute_grad = logits.requires_grad and torch.is_grad_enabled()
    num, den, _ = _OPS[backend](z.contiguous(), y.contiguous(),
                                None if w is None else w.contiguous(), seg_lo, seg_hi, KINDS[kind]
                                if isinstance(kind, str) else kind, flags, float(temperature),
                                float(clip_max), compute_grad)
    return num, den
