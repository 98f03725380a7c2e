"""Registration and call path of the in-batch metric-learning losses (``fusedloss::metric_fwd`` and
its Triton twin): fake kernel, autograd formula (``register_fused_op``), Triton kernel and
``run_metric``.

Every backend makes three passes over the embeddings and keeps O(B) state: the row norms, then per
anchor row its two online log-sum-exps over the other rows (tile by tile), then per row its whole
gradient (the cosine matrix is symmetric, so row i needs only the statistics of every row j, not a
scatter). No [B, B] matrix exists at any time.
"""

import torch

from fusedloss.ops import _library  # noqa: F401
from fusedloss.ops._autograd import register_fused_op

KINDS = {"circle": 0, "multi_similarity": 1}

_OPS = {
    "cpu": torch.ops.fusedloss.metric_fwd.default,
    "cuda": torch.ops.fusedloss.metric_fwd.default,
    "triton": torch.ops.fusedloss.metric_fwd_triton.default,
}


def acc_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _fake(emb, labels, sessions, kind, normalize, p0, p1, p2, compute_grad):
    grad = emb.new_empty(emb.shape if compute_grad else (0,))
    return emb.new_empty(()), grad, emb.new_empty((), dtype=acc_dtype(emb))


def _triton_impl(emb, labels, sessions, kind, normalize, p0, p1, p2, compute_grad):
    from fusedloss.triton_kernels.metric import metric_rows_triton

    e = emb.contiguous()
    b = e.shape[0]
    acc = acc_dtype(e)
    row_loss = e.new_empty((b,), dtype=acc)
    grad = e.new_empty(e.shape if compute_grad else (0,))
    metric_rows_triton(e, labels.contiguous(), None if sessions is None else sessions.contiguous(),
                       row_loss, grad, kind=kind, normalize=normalize, p0=p0, p1=p1, p2=p2,
                       compute_grad=compute_grad)
    loss, scale = finish(row_loss, emb.dtype)
    return loss, grad, scale


def finish(row_loss: torch.Tensor, dtype: torch.dtype):
    """(loss, scale): the mean of the anchor losses (NaN for B = 0, as EasyRec's reduce_mean) and
    1/B."""
    b = row_loss.shape[0]
    scale = torch.full((), 1.0 / b if b else float("nan"), dtype=row_loss.dtype,
                       device=row_loss.device)
    return (row_loss.sum(dtype=torch.float64) * scale).to(dtype), scale


register_fused_op(("fusedloss::metric_fwd", "fusedloss::metric_fwd_triton"), _fake, n_args=9,
                  compute_grad_arg=8)
torch.library.register_kernel("fusedloss::metric_fwd_triton", ("cpu", "cuda"), _triton_impl)


def run_metric(backend, embeddings, labels, session_ids, *, kind, embed_normed, p0, p1, p2=0.0):
    """Call the fused op of ``backend`` ('cpu', 'cuda' or 'triton'); returns the 0-d loss."""
    labels = labels.reshape(-1).to(torch.int64).contiguous()
    sessions = None if session_ids is None else session_ids.reshape(-1).to(torch.int64).contiguous()
    compute_grad = embeddings.requires_grad and torch.is_grad_enabled()
    loss, _, _ = _OPS[backend](embeddings, labels, sessions, KINDS[kind], not embed_normed,
                               float(p0), float(p1), float(p2), compute_grad)
    return loss
