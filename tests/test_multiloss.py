"""MultiLoss: fixed, uncertainty and random weighting of several losses (spec 8.2)."""

import math

import pytest
import torch

import fusedloss
from fusedloss import LossTerm, MultiLoss


def _sq(x, y):
    return ((x - y) ** 2).mean()


def _abs(x, y):
    return (x - y).abs().mean()


def _cube(x, y):
    return ((x - y) ** 2).sum() / 3


def _inputs(n=12, dtype=torch.float64):
    return torch.randn(n, dtype=dtype, requires_grad=True), torch.randn(n, dtype=dtype)


# ---------------------------------------------------------------------------------------- fixed


def test_fixed_is_weighted_sum():
    x, y = _inputs()
    m = MultiLoss([LossTerm(_sq, "sq", weight=0.3), LossTerm(_abs, "abs", weight=2.0),
                   LossTerm(_cube, "cube")])
    expected = 0.3 * _sq(x, y) + 2.0 * _abs(x, y) + _cube(x, y)
    torch.testing.assert_close(m(x, y), expected)
    values = m.compute(x, y)
    assert list(values) == ["sq", "abs", "cube"]
    torch.testing.assert_close(values["abs"], _abs(x, y))  # unweighted
    parts = m.weigh(values)
    torch.testing.assert_close(parts["sq"], 0.3 * _sq(x, y))
    torch.testing.assert_close(m.combine(values), expected)
    assert list(m.parameters()) == []


def test_fixed_gradient_reaches_inputs():
    x, y = _inputs()
    MultiLoss([LossTerm(_sq, "sq", weight=0.5), LossTerm(_abs, "abs", weight=0.0)])(x, y).backward()
    torch.testing.assert_close(x.grad, 0.5 * 2 * (x - y).detach() / x.numel())


def test_kwargs_are_passed_to_every_term():
    seen = []

    def term(x, *, features):
        seen.append(features["k"])
        return x.sum()

    m = MultiLoss([LossTerm(term, "a"), LossTerm(term, "b")])
    m(torch.ones(3), features={"k": 7})
    assert seen == [7, 7]


def test_module_terms_are_submodules():
    class Scaled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("scale", torch.tensor(2.0))

        def forward(self, x, y):
            return self.scale * _sq(x, y)

    m = MultiLoss([LossTerm(Scaled(), "scaled"), LossTerm(_abs, "abs")])
    assert "term_modules.scaled.scale" in m.state_dict()
    assert m.to(torch.float64).term_modules["scaled"].scale.dtype == torch.float64


@pytest.mark.parametrize("strategy", ["fixed", "Fixed", "FIXED", "Uncertainty", "random", "RANDOM"])
def test_strategy_any_case(strategy):
    assert MultiLoss([LossTerm(_sq, "sq")], strategy=strategy).strategy == strategy.lower()


# ---------------------------------------------------------------------------------- uncertainty


def _uncertainty():
    return MultiLoss([LossTerm(_sq, "cls", weight=5.0, learn_weight=True),
                      LossTerm(_abs, "reg", weight=7.0, learn_weight=True, regression=True),
                      LossTerm(_cube, "fixed", weight=0.25)], strategy="Uncertainty")


def test_uncertainty_parameters():
    m = _uncertainty()
    names = [n for n, _ in m.named_parameters()]
    assert names == ["cls_loss_weight", "reg_loss_weight"]  # EasyRec's variable names
    assert set(m.uncertainties) == {"cls", "reg"}
    for p in m.parameters():
        assert p.shape == () and p.item() == 0.0 and p.requires_grad


def test_uncertainty_values_match_formula():
    m = _uncertainty()
    with torch.no_grad():
        m.cls_loss_weight.fill_(0.7)
        m.reg_loss_weight.fill_(-0.4)
    x, y = _inputs()
    lc, lr, lf = _sq(x, y), _abs(x, y), _cube(x, y)
    parts = m.weigh(m.compute(x, y))
    # classification form e^-u L + u/2, regression form e^-u L / 2 + u/2; loss.weight ignored
    torch.testing.assert_close(parts["cls"], math.exp(-0.7) * lc + 0.35, check_dtype=False)
    torch.testing.assert_close(parts["reg"], 0.5 * math.exp(0.4) * lr - 0.2, check_dtype=False)
    torch.testing.assert_close(parts["fixed"], 0.25 * lf)  # no learn_weight: keeps its weight
    torch.testing.assert_close(m(x, y), parts["cls"] + parts["reg"] + parts["fixed"])


def test_uncertainty_gradients_are_analytic():
    m = _uncertainty()
    u_c, u_r = 0.3, -1.1
    with torch.no_grad():
        m.cls_loss_weight.fill_(u_c)
        m.reg_loss_weight.fill_(u_r)
    x, y = _inputs()
    m(x, y).backward()
    lc, lr = _sq(x, y).item(), _abs(x, y).item()
    g_c, g_r = m.cls_loss_weight.grad.item(), m.reg_loss_weight.grad.item()
    assert g_c != 0 and g_r != 0
    assert g_c == pytest.approx(0.5 - math.exp(-u_c) * lc, rel=1e-5)
    assert g_r == pytest.approx(0.5 - 0.5 * math.exp(-u_r) * lr, rel=1e-5)
    # the model's inputs get exp(-u)-scaled gradients through the learned terms
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_uncertainty_optimizer_step_moves_u_towards_stationary_point():
    m = MultiLoss([LossTerm(_sq, "cls", learn_weight=True),
                   LossTerm(_abs, "reg", learn_weight=True, regression=True)], strategy="uncertainty")
    x = torch.randn(32)
    y = x + 3.0  # L large: u* = log(2 L) (classification) and log(L) (regression) are > 0
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    for _ in range(200):
        opt.zero_grad()
        m(x, y).backward()
        opt.step()
    assert m.cls_loss_weight.item() > 0 and m.reg_loss_weight.item() > 0
    assert m.cls_loss_weight.item() == pytest.approx(math.log(2 * _sq(x, y).item()), abs=1e-3)
    assert m.reg_loss_weight.item() == pytest.approx(math.log(_abs(x, y).item()), abs=1e-3)


def test_uncertainty_single_step_changes_u():
    m = MultiLoss([LossTerm(_sq, "cls", learn_weight=True)], strategy="uncertainty")
    opt = torch.optim.Adam(m.parameters(), lr=0.01)
    m(*_inputs()).backward()
    opt.step()
    assert m.cls_loss_weight.item() != 0.0


@pytest.mark.parametrize("strategy", ["fixed", "random"])
def test_learn_weight_ignored_outside_uncertainty(strategy):
    m = MultiLoss([LossTerm(_sq, "a", weight=3.0, learn_weight=True)], strategy=strategy)
    assert list(m.parameters()) == [] and m.uncertainties == {}
    x, y = _inputs()
    expected = 3.0 * _sq(x, y) if strategy == "fixed" else _sq(x, y)
    torch.testing.assert_close(m(x, y), expected)


# --------------------------------------------------------------------------------------- random


def _ones(names, dtype=torch.float64):
    return {n: torch.ones((), dtype=dtype) for n in names}


def test_random_weights_sum_to_one_and_change():
    m = MultiLoss([LossTerm(_sq, "a", weight=5.0), LossTerm(_abs, "b"), LossTerm(_cube, "c")],
                  strategy="random")
    draws = [torch.stack(list(m.weigh(_ones(m.names)).values())) for _ in range(4)]
    for lam in draws:
        assert lam.min() > 0
        torch.testing.assert_close(lam.sum(), torch.tensor(1.0, dtype=torch.float64))
    assert not torch.equal(draws[0], draws[1])  # a fresh draw per call


def test_random_is_softmax_of_normal_draw_and_reproducible():
    terms = [LossTerm(_sq, "a"), LossTerm(_abs, "b"), LossTerm(_cube, "c")]
    m1 = MultiLoss(terms, strategy="random", generator=torch.Generator().manual_seed(123))
    m2 = MultiLoss(terms, strategy="random", generator=torch.Generator().manual_seed(123))
    g = torch.Generator().manual_seed(123)
    x, y = _inputs()
    values = m1.compute(x, y)
    for _ in range(3):
        lam = torch.softmax(torch.randn(3, generator=g), 0).double()
        expected = lam[0] * values["a"] + lam[1] * values["b"] + lam[2] * values["c"]
        t1, t2 = m1.combine(values), m2.combine(values)
        torch.testing.assert_close(t1, expected)
        assert torch.equal(t1, t2)


def test_random_forward_gradient():
    m = MultiLoss([LossTerm(_sq, "a"), LossTerm(_abs, "b")], strategy="random",
                  generator=torch.Generator().manual_seed(0))
    x, y = _inputs()
    m(x, y).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_random_single_term_has_weight_one():
    m = MultiLoss([LossTerm(_sq, "only", weight=4.0)], strategy="random")
    x, y = _inputs()
    for _ in range(3):
        torch.testing.assert_close(m(x, y), _sq(x, y))


# --------------------------------------------------------------------------------------- errors


def test_duplicate_names_raise():
    with pytest.raises(ValueError, match="duplicate loss name 'a'"):
        MultiLoss([LossTerm(_sq, "a"), LossTerm(_abs, "b"), LossTerm(_cube, "a")])


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(loss=_sq, name=""), ValueError, "name"),
    (dict(loss=_sq, name="a.b"), ValueError, "'.'"),
    (dict(loss=3, name="a"), TypeError, "callable"),
    (dict(loss=_sq, name="a", weight=-1.0), ValueError, ">= 0"),
    (dict(loss=_sq, name="a", weight=float("inf")), ValueError, "finite"),
    (dict(loss=_sq, name="a", weight="1"), TypeError, "number"),
    (dict(loss=_sq, name="a", learn_weight=1), TypeError, "learn_weight"),
    (dict(loss=_sq, name="a", regression="yes"), TypeError, "regression"),
])
def test_bad_term(kwargs, error, match):
    with pytest.raises(error, match=match):
        LossTerm(**kwargs)


def test_bad_multiloss_arguments():
    with pytest.raises(ValueError, match="at least one"):
        MultiLoss([])
    with pytest.raises(TypeError, match=r"terms\[1\]"):
        MultiLoss([LossTerm(_sq, "a"), _abs])
    with pytest.raises(TypeError, match="sequence of LossTerm"):
        MultiLoss(LossTerm(_sq, "a"))
    with pytest.raises(ValueError, match="Fixed, Uncertainty, Random"):
        MultiLoss([LossTerm(_sq, "a")], strategy="pareto")
    with pytest.raises(TypeError, match="generator"):
        MultiLoss([LossTerm(_sq, "a")], generator=0)


def test_combine_checks_names():
    m = MultiLoss([LossTerm(_sq, "a"), LossTerm(_abs, "b")])
    with pytest.raises(ValueError, match=r"missing \['b'\], unknown \['c'\]"):
        m.combine({"a": torch.tensor(1.0), "c": torch.tensor(2.0)})


def test_to_config_needs_configured_losses():
    with pytest.raises(TypeError, match="term 'a'"):
        MultiLoss([LossTerm(_sq, "a")]).to_config()


def test_to_config_of_hand_built_multiloss():
    from fusedloss.config import ConfiguredLoss

    inner = ConfiguredLoss({"loss_type": "L2_LOSS"})
    m = MultiLoss([LossTerm(inner, "mse", weight=0.5, learn_weight=True, regression=True)],
                  strategy="uncertainty")
    assert m.to_config() == {"loss_weight_strategy": "Uncertainty", "losses": [
        {"loss_type": "L2_LOSS", "loss_name": "mse", "weight": 0.5, "learn_loss_weight": True}]}
    assert fusedloss.build_loss(m.to_config()).to_config() == m.to_config()
    weighted = ConfiguredLoss({"loss_type": "L2_LOSS", "weight": 2.0})
    with pytest.raises(ValueError, match="its own weight 2"):
        MultiLoss([LossTerm(weighted, "mse")]).to_config()


def test_exported():
    assert fusedloss.MultiLoss is MultiLoss and fusedloss.LossTerm is LossTerm
    assert "MultiLoss" in fusedloss.__all__ and "LossTerm" in fusedloss.__all__
