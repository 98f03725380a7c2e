"""L1/L2 regularisation helpers: values against the written-out sums, gradients, bias skipping and
bad arguments."""

import pytest
import torch

import fusedloss


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3))


@pytest.mark.parametrize("l1, l2", [(0.0, 0.3), (0.2, 0.0), (0.2, 0.3)])
def test_module_values_and_gradients_skip_biases(l1, l2):
    m = _model()
    reg = fusedloss.l1_l2_regularization(m, l1=l1, l2=l2)
    weights = [m[0].weight, m[2].weight]
    expected = sum(l1 * w.abs().sum() + l2 * w.square().sum() for w in weights)
    torch.testing.assert_close(reg, expected)
    reg.backward()
    for w in weights:
        torch.testing.assert_close(w.grad, l1 * w.detach().sign() + 2 * l2 * w.detach())
    for b in (m[0].bias, m[2].bias):
        assert b.grad is None, "a bias was regularised"


def test_biases_count_without_skip_and_named_pairs():
    m = _model()
    all_params = list(m.parameters())
    with_bias = fusedloss.l2_regularization(m, 0.5, skip_bias=False)
    torch.testing.assert_close(with_bias, sum(0.5 * p.square().sum() for p in all_params))
    named = fusedloss.l2_regularization(m.named_parameters(), 0.5)
    torch.testing.assert_close(named, fusedloss.l2_regularization(m, 0.5))
    assert named < with_bias
    unnamed = fusedloss.l1_regularization(m.parameters(), 0.1)  # no names: nothing to skip
    torch.testing.assert_close(unnamed, sum(0.1 * p.abs().sum() for p in all_params))


def test_frozen_and_empty_and_float64():
    m = _model().double()
    m[0].weight.requires_grad_(False)
    reg = fusedloss.l2_regularization(m, 1.0)
    assert reg.dtype == torch.float64
    torch.testing.assert_close(reg, m[2].weight.square().sum())
    assert float(fusedloss.l1_l2_regularization([], l1=1.0)) == 0.0


@pytest.mark.parametrize("kw, err, match", [
    (dict(l1=-1.0), ValueError, "l1"),
    (dict(l2=float("nan")), ValueError, "l2"),
    (dict(l2="0.1"), TypeError, "l2"),
    (dict(skip_bias=1), TypeError, "skip_bias"),
])
def test_bad_arguments(kw, err, match):
    with pytest.raises(err, match=match):
        fusedloss.l1_l2_regularization(_model(), **kw)


def test_bad_params():
    with pytest.raises(TypeError, match="params"):
        fusedloss.l1_l2_regularization(3.0, l2=1.0)
    with pytest.raises(TypeError, match="params"):
        fusedloss.l1_l2_regularization([("w", 3.0)], l2=1.0)
