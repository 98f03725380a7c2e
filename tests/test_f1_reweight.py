"""F1_REWEIGHTED_LOSS (spec 2.6): PyTorch-only for now; checked against the spec's closed-form
gradient (the gradient flows through the negative weight), its edge cases and the config path."""

import pytest
import torch

import fusedloss
from fusedloss import functional as F


def _closed_form(x, y, w, b2, eps_ls):
    """Spec 2.6's loss and verified gradient, one column."""
    s = torch.sigmoid(x)
    pos, tp = y.sum(), s.sum()
    den = (b2 - 1) * pos + tp + 1e-8
    nw = tp / den
    c = torch.where(y == 1, 1.0, nw)
    ys = y * (1 - eps_ls) + 0.5 * eps_ls
    ce = torch.clamp(x, min=0) - x * ys + torch.log1p(torch.exp(-x.abs()))
    nnz = ((c * w) != 0).sum()
    dnw = ((b2 - 1) * pos + 1e-8) / den ** 2
    loss = (c * w * ce).sum() / nnz
    grad = (w * c * (s - ys) + dnw * s * (1 - s) * (w * ce * (y != 1)).sum()) / nnz
    return loss, grad


@pytest.mark.parametrize("b2, eps_ls", [(1.0, 0.0), (0.6, 0.1), (2.5, 0.0)])
def test_matches_closed_form(b2, eps_ls):
    x = (torch.randn(23, dtype=torch.float64) * 2).requires_grad_()
    y = torch.randint(0, 2, (23,)).double()
    w = torch.rand(23, dtype=torch.float64)
    w[3] = 0.0
    loss = F.f1_reweighted_loss(x, y, w, b2, eps_ls)
    grad, = torch.autograd.grad(loss, x)
    want, want_grad = _closed_form(x.detach(), y, w, b2, eps_ls)
    torch.testing.assert_close(loss, want)
    torch.testing.assert_close(grad, want_grad)


def test_columns_are_independent_and_dtypes():
    x = torch.randn(17, 3, dtype=torch.float64)
    y = torch.randint(0, 2, (17, 3))
    w = torch.rand(17, dtype=torch.float64)
    whole = F.f1_reweighted_loss(x, y, w, 0.8)
    # SBNZ over all B*C entries = sum over columns of the column numerators / total count
    num = sum(F.f1_reweighted_loss(x[:, k], y[:, k], w, 0.8) * 17 for k in range(3))
    torch.testing.assert_close(whole, num / 51)
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        low = F.f1_reweighted_loss(x.to(dtype), y, w.to(dtype), 0.8)
        assert low.dtype == dtype
        torch.testing.assert_close(low.double(), whole, rtol=2e-2, atol=2e-2)


def test_edges_and_errors():
    assert float(F.f1_reweighted_loss(torch.zeros(0), torch.zeros(0))) == 0.0
    assert float(F.f1_reweighted_loss(torch.randn(5), torch.ones(5), 0.0)) == 0.0
    x = torch.randn(6)
    torch.testing.assert_close(F.f1_reweighted_loss(x, torch.ones(6) * (x > 0), 1.0, 1.0),
                               torch.nn.functional.binary_cross_entropy_with_logits(x, torch.ones(6) * (x > 0)),
                               rtol=1e-6, atol=1e-6)  # b2 = 1: nw = tp / (tp + 1e-8), plain BCE
    with pytest.raises(ValueError, match="f1_beta_square must be in"):
        F.f1_reweighted_loss(x, x > 0, f1_beta_square=0.0)
    with pytest.raises(ValueError, match="no fused kernel yet"):
        F.f1_reweighted_loss(x, x > 0, backend="cpu")
    with pytest.raises(ValueError, match="target must have the input's shape"):
        F.f1_reweighted_loss(x, torch.ones(5))
    with pytest.raises(ValueError, match="only 0 and 1"):
        F.f1_reweighted_loss(x, torch.full((6,), 2))


def test_config():
    x = torch.randn(9, 1, dtype=torch.float64)
    y = torch.randint(0, 2, (9, 1)).double()
    loss = fusedloss.build_loss({"loss_type": "F1_REWEIGHTED_LOSS",
                                 "f1_reweighted_loss": {"f1_beta_square": 0.5, "label_smoothing": 0.2}})
    torch.testing.assert_close(loss(x, y), F.f1_reweighted_loss(x.reshape(-1), y.reshape(-1), 1.0, 0.5, 0.2))
