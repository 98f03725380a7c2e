"""build_loss: EasyRec loss configs (dict, JSON, YAML) to ConfiguredLoss / MultiLoss, and back."""

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import fusedloss
from fusedloss import MultiLoss, build_loss
from fusedloss import functional as F
from fusedloss.config import NOT_BUILT, ConfiguredLoss

yaml = pytest.importorskip("yaml")

B = 16  # 4 sessions of 4 items: every pairwise loss has pairs in every session
ROOT = Path(__file__).resolve().parents[1]


def _text_forms(cfg):
    """The same config as a dict, JSON text and YAML text."""
    return [cfg, json.dumps(cfg), yaml.safe_dump(cfg, sort_keys=False)]


def _data(dtype=torch.float64):
    logits = torch.randn(B, 1, dtype=dtype, requires_grad=True)  # [B, 1]: EasyRec's rank head
    labels = torch.randint(0, 2, (B,)).to(dtype)
    labels[:2] = torch.tensor([0.0, 1.0], dtype=dtype)  # both classes present
    weights = torch.rand(B, dtype=dtype)
    weights[3] = 0.0  # a zero weight leaves the SBNZ denominator
    features = {"user_id": torch.arange(B) // 4, "other": torch.zeros(B, dtype=torch.int64)}
    return logits, labels, weights, features


def _ce(x, z):
    return torch.nn.functional.binary_cross_entropy_with_logits(x, z, reduction="none")


def _sbnz(per, w):
    return (w * per).sum() / (w != 0).sum()


# Buildable types with one parameter set each: (config, expected(x [B], y [B], w [B], sessions)).
CASES = {
    "CLASSIFICATION": (
        {"loss_type": "CLASSIFICATION"},
        lambda x, y, w, s: _sbnz(_ce(x, y), w)),
    "BINARY_CROSS_ENTROPY_LOSS": (
        {"loss_type": "BINARY_CROSS_ENTROPY_LOSS"},
        lambda x, y, w, s: _ce(x, y).mean()),  # sample weights ignored (spec 2.2)
    "L2_LOSS": (
        {"loss_type": "L2_LOSS"},
        lambda x, y, w, s: F.l2_loss(x, y, w, backend="reference")),
    "SIGMOID_L2_LOSS": (
        {"loss_type": "SIGMOID_L2_LOSS"},
        lambda x, y, w, s: F.sigmoid_l2_loss(x, y, w, backend="reference")),
    "BINARY_FOCAL_LOSS": (
        {"loss_type": "BINARY_FOCAL_LOSS",
         "binary_focal_loss": {"gamma": 1.5, "alpha": 0.3, "ohem_ratio": 0.75, "label_smoothing": 0.1}},
        lambda x, y, w, s: F.binary_focal_loss(x, y, gamma=1.5, alpha=0.3, label_smoothing=0.1, weight=w,
                                               ohem_ratio=0.75, backend="reference")),
    "PAIR_WISE_LOSS": (
        {"loss_type": "PAIR_WISE_LOSS",
         "pairwise_loss": {"margin": 0.2, "temperature": 0.5, "session_name": "user_id"}},
        lambda x, y, w, s: F.pairwise_loss(x, y, s, weight=w, temperature=0.5, margin=0.2,
                                           backend="reference")),
    "PAIRWISE_LOGISTIC_LOSS": (
        {"loss_type": "PAIRWISE_LOGISTIC_LOSS",
         "pairwise_logistic_loss": {"temperature": 2.0, "session_name": "user_id", "hinge_margin": 0.5,
                                    "ohem_ratio": 0.5}},
        lambda x, y, w, s: F.pairwise_logistic_loss(x, y, s, weight=w, temperature=2.0, hinge_margin=0.5,
                                                    ohem_ratio=0.5, backend="reference")),
    "PAIRWISE_FOCAL_LOSS": (
        {"loss_type": "PAIRWISE_FOCAL_LOSS",
         "pairwise_focal_loss": {"gamma": 1.0, "alpha": 0.4, "hinge_margin": 1.5, "session_name": "user_id",
                                 "temperature": 0.8}},
        lambda x, y, w, s: F.pairwise_focal_loss(x, y, s, weight=w, temperature=0.8, gamma=1.0, alpha=0.4,
                                                 hinge_margin=1.5, backend="reference")),
    "PAIRWISE_HINGE_LOSS": (
        {"loss_type": "PAIRWISE_HINGE_LOSS",
         "pairwise_hinge_loss": {"temperature": 0.5, "margin": 0.3, "use_label_margin": False,
                                 "label_is_logits": False, "session_name": "user_id"}},
        lambda x, y, w, s: F.pairwise_hinge_loss(x, y, s, weight=w, temperature=0.5, margin=0.3,
                                                 use_label_margin=False, label_is_logits=False,
                                                 backend="reference")),
}


@pytest.mark.parametrize("form", ["dict", "json", "yaml"])
@pytest.mark.parametrize("loss_type", list(CASES))
def test_value_equals_function(loss_type, form):
    cfg, expected = CASES[loss_type]
    text = _text_forms(cfg)[["dict", "json", "yaml"].index(form)]
    loss = build_loss(text, backend="reference")
    assert isinstance(loss, ConfiguredLoss) and loss.loss_type == loss_type
    logits, labels, weights, features = _data()
    got = loss(logits, labels, weights, features)
    want = expected(logits.reshape(-1), labels, weights, features["user_id"])
    torch.testing.assert_close(got, want)
    got.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("loss_type", list(CASES))
def test_auto_backend_matches_reference(loss_type):
    cfg, _ = CASES[loss_type]
    logits, labels, weights, features = _data(torch.float32)
    got = build_loss(cfg)(logits, labels, weights, features)
    want = build_loss(cfg, backend="reference")(logits, labels, weights, features)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_classification_binary_gradient():
    logits, labels, weights, _ = _data()
    build_loss({"loss_type": "CLASSIFICATION"}, backend="reference")(logits, labels, weights).backward()
    x = logits.detach().reshape(-1)
    want = weights * (torch.sigmoid(x) - labels) / (weights != 0).sum()  # spec 2.1
    torch.testing.assert_close(logits.grad.reshape(-1), want)


def test_classification_no_weights_is_mean_ce():
    logits, labels, _, _ = _data()
    got = build_loss({"loss_type": "CLASSIFICATION"}, backend="reference")(logits, labels)
    torch.testing.assert_close(got, _ce(logits.reshape(-1), labels).mean())


@pytest.mark.parametrize("label_dtype", [torch.int64, torch.int32])
def test_classification_multiclass(label_dtype):
    logits = torch.randn(B, 5, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 5, (B,), dtype=label_dtype)
    weights = torch.rand(B, dtype=torch.float64)
    weights[:3] = 0.0
    loss = build_loss({"loss_type": "CLASSIFICATION"}, backend="reference")
    per = torch.nn.functional.cross_entropy(logits, labels.long(), reduction="none")
    torch.testing.assert_close(loss(logits, labels, weights), _sbnz(per, weights))
    torch.testing.assert_close(loss(logits, labels), per.mean())
    torch.testing.assert_close(loss(logits, labels, torch.zeros(B, dtype=torch.float64)),
                               torch.zeros((), dtype=torch.float64))
    with pytest.raises(TypeError, match="int32 or int64"):
        loss(logits, labels.double())
    with pytest.raises(ValueError, match="class indices"):
        loss(logits, torch.full((B,), -100, dtype=torch.int64))


def test_cross_entropy_loss_takes_probabilities():
    probs = torch.rand(B, 3, dtype=torch.float64)
    labels = torch.randint(0, 2, (B, 3)).double()
    weights = torch.rand(B, dtype=torch.float64)
    loss = build_loss("loss_type: CROSS_ENTROPY_LOSS", backend="reference")
    want = F.log_loss(probs, labels, weights.reshape(-1, 1), backend="reference")
    torch.testing.assert_close(loss(probs, labels, weights), want)
    p1 = probs[:, :1]
    torch.testing.assert_close(loss(p1, labels[:, 0]),
                               F.log_loss(p1.reshape(-1), labels[:, 0], backend="reference"))


def test_sv_softmax_takes_embedding_pair():
    cfg = {"loss_type": "SOFTMAX_CROSS_ENTROPY_WITH_NEGATIVE_MINING",
           "softmax_loss": {"num_negative_samples": 3, "margin": 0.1, "gamma": 2.0,
                            "coefficient_of_support_vector": 1.5}}
    user, item = torch.randn(B, 8, dtype=torch.float64), torch.randn(B, 8, dtype=torch.float64)
    labels = torch.randint(0, 2, (B,))
    weights = torch.rand(B, dtype=torch.float64)
    for text in _text_forms(cfg):
        loss = build_loss(text, backend="reference")
        torch.manual_seed(7)  # the negatives' shifts come from the global RNG
        got = loss((user, item), labels, weights)
        torch.manual_seed(7)
        want = F.sv_softmax_loss(user, item, labels, 3, weights=weights, gamma=2.0, margin=0.1, t=1.5,
                                 backend="reference")
        torch.testing.assert_close(got, want)
    with pytest.raises(TypeError, match=r"\(user_emb, item_emb\)"):
        loss(user, labels)


def test_weight_scales_a_single_loss():
    logits, labels, weights, _ = _data()
    base = build_loss({"loss_type": "L2_LOSS"}, backend="reference")(logits, labels, weights)
    scaled = build_loss({"loss_type": "L2_LOSS", "weight": 2.5}, backend="reference")(logits, labels, weights)
    torch.testing.assert_close(scaled, 2.5 * base)


def test_binary_cross_entropy_ignores_weights():
    logits, labels, weights, _ = _data()
    loss = build_loss({"loss_type": "BINARY_CROSS_ENTROPY_LOSS"}, backend="reference")
    torch.testing.assert_close(loss(logits, labels, weights), loss(logits, labels))


def test_defaults_follow_easyrec():
    """Effective defaults (spec 2.5, 3.x, 6.1): alpha and hinge_margin unset unless given."""
    cfg = build_loss({"loss_type": "pairwise_focal_loss"}).to_config()
    assert cfg == {"loss_type": "PAIRWISE_FOCAL_LOSS", "loss_name": "pairwise_focal_loss", "weight": 1.0,
                   "learn_loss_weight": False,
                   "pairwise_focal_loss": {"gamma": 2.0, "ohem_ratio": 1.0, "temperature": 1.0}}
    hinge = build_loss({"loss_type": "PAIRWISE_HINGE_LOSS"})
    assert hinge.params == {"temperature": 1.0, "margin": 1.0, "ohem_ratio": 1.0, "label_is_logits": True,
                            "use_label_margin": True, "use_exponent": False}
    assert build_loss({"loss_type": "BINARY_FOCAL_LOSS"}).params == {
        "gamma": 2.0, "ohem_ratio": 1.0, "label_smoothing": 0.0}
    assert build_loss({"loss_type": "CLASSIFICATION"}).loss_name == "cross_entropy_loss"
    assert build_loss({"loss_type": "BINARY_CROSS_ENTROPY_LOSS"}).loss_name == "cross_entropy_loss"
    assert build_loss({"loss_type": "SIGMOID_L2_LOSS"}).loss_name == "l2_loss"
    assert build_loss({"loss_type": "SIGMOID_L2_LOSS"}).regression


# ------------------------------------------------------------------------------------- sessions


def test_session_name_reads_features():
    cfg = CASES["PAIRWISE_LOGISTIC_LOSS"][0]
    loss = build_loss(cfg, backend="reference")
    logits, labels, weights, features = _data()
    want = loss(logits, labels, weights, features)
    col = {"user_id": features["user_id"].reshape(-1, 1)}  # [B, 1] feature columns work too
    torch.testing.assert_close(loss(logits, labels, weights, col), want)
    one_session = build_loss({**cfg, "pairwise_logistic_loss": {**cfg["pairwise_logistic_loss"],
                                                                 "session_name": "other"}},
                             backend="reference")
    torch.testing.assert_close(
        one_session(logits, labels, weights, features),
        F.pairwise_logistic_loss(logits.reshape(-1), labels, None, weight=weights, temperature=2.0,
                                 hinge_margin=0.5, ohem_ratio=0.5, backend="reference"))
    with pytest.raises(ValueError, match=r"'user_id' is not a key of features; keys: \['item'\]"):
        loss(logits, labels, weights, {"item": features["user_id"]})
    with pytest.raises(ValueError, match="pass features="):
        loss(logits, labels, weights)
    with pytest.raises(TypeError, match="mapping"):
        loss(logits, labels, weights, [features["user_id"]])


def test_no_session_name_uses_all_pairs():
    logits, labels, weights, features = _data()
    loss = build_loss({"loss_type": "PAIRWISE_LOGISTIC_LOSS"}, backend="reference")
    torch.testing.assert_close(loss(logits, labels, weights, features),
                               F.pairwise_logistic_loss(logits.reshape(-1), labels, weight=weights,
                                                        backend="reference"))


# ------------------------------------------------------------------------------------ multi-loss

MULTI_YAML = """
loss_weight_strategy: Uncertainty
losses:
  - loss_type: CLASSIFICATION
    learn_loss_weight: true
  - loss_type: PAIRWISE_LOGISTIC_LOSS
    loss_name: rank
    weight: 0.5
    pairwise_logistic_loss:
      session_name: user_id
  - loss_type: SIGMOID_L2_LOSS
    learn_loss_weight: true
    weight: 3.0
"""


def test_multi_config_builds_multiloss():
    m = build_loss(MULTI_YAML, backend="reference")
    assert isinstance(m, MultiLoss) and m.strategy == "uncertainty"
    assert m.names == ["cross_entropy_loss", "rank", "l2_loss"]
    assert [t.regression for t in m.terms] == [False, False, True]
    assert set(m.uncertainties) == {"cross_entropy_loss", "l2_loss"}
    with torch.no_grad():
        m.cross_entropy_loss_loss_weight.fill_(0.2)
        m.l2_loss_loss_weight.fill_(-0.3)
    logits, labels, weights, features = _data()
    x = logits.reshape(-1)
    ce = _sbnz(_ce(x, labels), weights)
    rank = F.pairwise_logistic_loss(x, labels, features["user_id"], weight=weights, backend="reference")
    l2 = F.sigmoid_l2_loss(x, labels, weights, backend="reference")
    want = (math.exp(-0.2) * ce + 0.1) + 0.5 * rank + (0.5 * math.exp(0.3) * l2 - 0.15)
    total = m(logits, labels, weights, features)
    torch.testing.assert_close(total, want, check_dtype=False)
    total.backward()
    g = m.cross_entropy_loss_loss_weight.grad.item()
    assert g == pytest.approx(0.5 - math.exp(-0.2) * ce.item(), rel=1e-5)
    g = m.l2_loss_loss_weight.grad.item()
    assert g == pytest.approx(0.5 - 0.5 * math.exp(0.3) * l2.item(), rel=1e-5)


def test_fixed_multi_config_and_bare_list():
    losses = [{"loss_type": "L2_LOSS", "weight": 0.25}, {"loss_type": "CLASSIFICATION", "weight": 2.0}]
    logits, labels, weights, _ = _data()
    x = logits.reshape(-1)
    want = 0.25 * F.l2_loss(x, labels, weights, backend="reference") + 2.0 * _sbnz(_ce(x, labels), weights)
    for cfg in ({"losses": losses}, losses, {"losses": losses, "loss_weight_strategy": "fixed"}):
        m = build_loss(cfg, backend="reference")
        assert m.strategy == "fixed"
        torch.testing.assert_close(m(logits, labels, weights), want)


def test_random_multi_config():
    m = build_loss({"loss_weight_strategy": "RANDOM", "losses": [
        {"loss_type": "L2_LOSS", "weight": 9.0}, {"loss_type": "CLASSIFICATION"}]})
    lam = torch.stack(list(m.weigh({"l2_loss": torch.tensor(1.0), "cross_entropy_loss": torch.tensor(1.0)})
                           .values()))
    torch.testing.assert_close(lam.sum(), torch.tensor(1.0))


def test_learn_loss_weight_outside_uncertainty_warns_and_is_ignored():
    match = r"ignored under loss_weight_strategy Fixed \(losses \['l2_loss'\]\)"
    with pytest.warns(UserWarning, match=match):
        m = build_loss({"losses": [{"loss_type": "L2_LOSS", "learn_loss_weight": True}]})
    assert list(m.parameters()) == []


def test_duplicate_default_names_raise():
    # CLASSIFICATION and BINARY_CROSS_ENTROPY_LOSS share EasyRec's default name (spec 8.1)
    with pytest.raises(ValueError, match=r"losses\[1\] and losses\[0\] are both named 'cross_entropy_loss'"):
        build_loss({"losses": [{"loss_type": "CLASSIFICATION"}, {"loss_type": "BINARY_CROSS_ENTROPY_LOSS"}]})
    m = build_loss({"losses": [{"loss_type": "CLASSIFICATION"},
                               {"loss_type": "BINARY_CROSS_ENTROPY_LOSS", "loss_name": "bce"}]})
    assert m.names == ["cross_entropy_loss", "bce"]


# ----------------------------------------------------------------------------------- round trips

ROUND_TRIP_CONFIGS = [c for c, _ in CASES.values()] + [
    {"loss_type": "CROSS_ENTROPY_LOSS", "weight": 0.5, "learn_loss_weight": True},
    {"loss_type": "SOFTMAX_CROSS_ENTROPY_WITH_NEGATIVE_MINING",
     "softmax_loss": {"num_negative_samples": 4, "embed_normed": True}},
    yaml.safe_load(MULTI_YAML),
    {"loss_weight_strategy": "Random", "losses": [{"loss_type": "L2_LOSS"},
                                                  {"loss_type": "BINARY_FOCAL_LOSS", "loss_name": "focal"}]},
    {"losses": [{"loss_type": "PAIRWISE_HINGE_LOSS", "weight": 0.0}]},
]


@pytest.mark.parametrize("cfg", ROUND_TRIP_CONFIGS, ids=lambda c: str(c)[:60])
def test_round_trip(cfg):
    first = build_loss(cfg).to_config()
    assert build_loss(first).to_config() == first
    assert build_loss(json.dumps(first)).to_config() == first
    assert build_loss(yaml.safe_dump(first)).to_config() == first
    assert json.loads(json.dumps(first)) == first  # plain JSON types only


def test_round_trip_keeps_values():
    m = build_loss(MULTI_YAML)
    cfg = m.to_config()
    assert cfg["loss_weight_strategy"] == "Uncertainty"
    assert cfg["losses"][1] == {
        "loss_type": "PAIRWISE_LOGISTIC_LOSS", "loss_name": "rank", "weight": 0.5, "learn_loss_weight": False,
        "pairwise_logistic_loss": {"temperature": 1.0, "session_name": "user_id", "ohem_ratio": 1.0,
                                   "use_label_margin": False}}
    assert cfg["losses"][2]["weight"] == 3.0 and cfg["losses"][2]["learn_loss_weight"] is True


def test_case_insensitive_names_are_normalised():
    cfg = build_loss({"loss_type": "binary_focal_loss", "binary_focal_loss": {"gamma": 1}}).to_config()
    assert cfg["loss_type"] == "BINARY_FOCAL_LOSS" and cfg["binary_focal_loss"]["gamma"] == 1.0
    assert build_loss({"losses": [{"loss_type": "L2_LOSS"}], "loss_weight_strategy": "uncertainty"}) \
        .to_config()["loss_weight_strategy"] == "Uncertainty"


# ---------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("loss_type", NOT_BUILT)
def test_not_built_types(loss_type):
    with pytest.raises(NotImplementedError, match=f"{loss_type} is not built yet in fusedloss"):
        build_loss({"loss_type": loss_type})
    with pytest.raises(NotImplementedError, match=rf"losses\[1\]: loss_type {loss_type} is not built"):
        build_loss({"losses": [{"loss_type": "L2_LOSS"}, {"loss_type": loss_type}]})


@pytest.mark.parametrize("cfg, match", [
    ({"loss_type": "CLASIFICATION"},
     r"unknown loss_type 'CLASIFICATION' \(did you mean 'CLASSIFICATION'\?\); accepted: CLASSIFICATION, "),
    ({"loss_type": 3}, "loss_type must be a string"),
    ({"weight": 1.0}, "needs loss_type .* or losses"),
    ({"loss_type": "L2_LOSS", "wieght": 2.0},
     r"unknown key 'wieght' in a L2_LOSS config \(did you mean 'weight'\?\); accepted keys: loss_type, "
     r"loss_name, weight, learn_loss_weight"),
    ({"loss_type": "L2_LOSS", "binary_focal_loss": {}},
     "parameter block 'binary_focal_loss' belongs to BINARY_FOCAL_LOSS, not to loss_type L2_LOSS "
     r"\(it takes no parameter block\)"),
    ({"loss_type": "PAIRWISE_LOGISTIC_LOSS", "pairwise_focal_loss": {}},
     "belongs to PAIRWISE_FOCAL_LOSS.*its block is 'pairwise_logistic_loss'"),
    ({"loss_type": "CLASSIFICATION", "circle_loss": {}}, "belongs to CIRCLE_LOSS"),
    ({"loss_type": "BINARY_FOCAL_LOSS", "binary_focal_loss": {"gama": 2.0}},
     r"unknown parameter 'gama' in binary_focal_loss \(did you mean 'gamma'\?\); accepted: gamma, alpha, "
     "ohem_ratio, label_smoothing"),
    ({"loss_type": "BINARY_FOCAL_LOSS", "binary_focal_loss": [1]}, "binary_focal_loss must be a mapping"),
    ({"loss_type": "BINARY_FOCAL_LOSS", "binary_focal_loss": {"gamma": -1}},
     r"binary_focal_loss.gamma must be >= 0, got -1.0"),
    ({"loss_type": "BINARY_FOCAL_LOSS", "binary_focal_loss": {"alpha": 1.5}}, r"alpha must be <= 1"),
    ({"loss_type": "BINARY_FOCAL_LOSS", "binary_focal_loss": {"ohem_ratio": 0}}, r"ohem_ratio must be > 0"),
    ({"loss_type": "BINARY_FOCAL_LOSS", "binary_focal_loss": {"label_smoothing": 1}},
     r"label_smoothing must be < 1"),
    ({"loss_type": "BINARY_FOCAL_LOSS", "binary_focal_loss": {"gamma": "2"}},
     r"gamma must be a number, got str '2' \(a quoted number"),
    ({"loss_type": "BINARY_FOCAL_LOSS", "binary_focal_loss": {"gamma": True}}, "gamma must be a number"),
    ({"loss_type": "PAIR_WISE_LOSS", "pairwise_loss": {"temperature": 0.0}}, r"temperature must be > 0"),
    ({"loss_type": "PAIR_WISE_LOSS", "pairwise_loss": {"margin": float("nan")}}, "margin must be finite"),
    ({"loss_type": "PAIR_WISE_LOSS", "pairwise_loss": {"session_name": 5}},
     "session_name must be a non-empty string"),
    ({"loss_type": "PAIRWISE_HINGE_LOSS", "pairwise_hinge_loss": {"use_exponent": "yes"}},
     "use_exponent must be true or false"),
    ({"loss_type": "PAIRWISE_HINGE_LOSS", "pairwise_hinge_loss": {"margin": None}},
     "margin must be a float, got None"),
    ({"loss_type": "SOFTMAX_CROSS_ENTROPY_WITH_NEGATIVE_MINING"},
     "softmax_loss.num_negative_samples is required"),
    ({"loss_type": "SOFTMAX_CROSS_ENTROPY_WITH_NEGATIVE_MINING", "softmax_loss": {"num_negative_samples": 0}},
     "num_negative_samples must be >= 1"),
    ({"loss_type": "SOFTMAX_CROSS_ENTROPY_WITH_NEGATIVE_MINING",
      "softmax_loss": {"num_negative_samples": 2.0}},
     "num_negative_samples must be an integer"),
    ({"loss_type": "L2_LOSS", "weight": -1}, "weight must be >= 0, got -1.0"),
    ({"loss_type": "L2_LOSS", "weight": "heavy"}, "weight must be a number, got str 'heavy'"),
    ({"loss_type": "L2_LOSS", "learn_loss_weight": 1}, "learn_loss_weight must be true or false"),
    ({"loss_type": "L2_LOSS", "loss_name": ""}, "loss_name must be a non-empty string"),
    ({"loss_type": "L2_LOSS", "loss_name": "a.b"}, "loss_name must not contain '.'"),
    ({"loss_type": "L2_LOSS", "loss_weight_strategy": "Random"}, "loss_weight_strategy needs a losses list"),
    ({"losses": [], "loss_weight_strategy": "Fixed"}, "losses must be a non-empty list"),
    ({"losses": {"loss_type": "L2_LOSS"}}, "losses must be a non-empty list"),
    ({"losses": [{"loss_type": "L2_LOSS"}], "strategy": "Random"},
     r"unknown key 'strategy' next to losses; accepted keys: losses, loss_weight_strategy"),
    ({"losses": [{"loss_type": "L2_LOSS"}], "loss_weight_strategy": "Pareto"},
     "loss_weight_strategy must be one of Fixed, Uncertainty, Random"),
    ({"losses": [{"loss_type": "L2_LOSS"}], "loss_weight_strategy": 1},
     "loss_weight_strategy must be a string"),
    ({"losses": [{"loss_type": "L2_LOSS"}, "CLASSIFICATION"]},
     r"losses\[1\]: a loss config must be a mapping"),
    ({"losses": [{"loss_type": "L2_LOSS"},
                 {"loss_type": "PAIR_WISE_LOSS", "pairwise_loss": {"temperature": -1}}]},
     r"losses\[1\].pairwise_loss.temperature must be > 0"),
])
def test_bad_config(cfg, match):
    with pytest.raises(ValueError, match=match):
        build_loss(cfg)


def test_bad_text():
    with pytest.raises(ValueError, match="not valid JSON"):
        build_loss('{"loss_type": L2_LOSS}')
    with pytest.raises(ValueError, match="not valid YAML"):
        build_loss("loss_type: [L2_LOSS")
    with pytest.raises(ValueError, match="protobuf text format"):
        build_loss("losses {\n  loss_type: L2_LOSS\n}")  # EasyRec's own format
    with pytest.raises(ValueError, match="must be a mapping"):
        build_loss("just a string")
    with pytest.raises(ValueError, match=r"1.0e-3"):
        build_loss("loss_type: BINARY_FOCAL_LOSS\nbinary_focal_loss: {label_smoothing: 1e-3}")
    assert build_loss("loss_type: BINARY_FOCAL_LOSS\nbinary_focal_loss:\n").params["gamma"] == 2.0


def test_yaml_missing_gives_clear_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "yaml", None)
    with pytest.raises(ImportError, match="needs PyYAML"):
        build_loss("loss_type: L2_LOSS")
    assert build_loss('{"loss_type": "L2_LOSS"}').loss_type == "L2_LOSS"  # JSON needs no yaml


def test_bad_inputs_at_call_time():
    loss = build_loss({"loss_type": "L2_LOSS"})
    with pytest.raises(ValueError, match=r"logits must be \[B\] or \[B, 1\] for L2_LOSS"):
        loss(torch.randn(4, 2), torch.randn(4))


def test_exported():
    assert fusedloss.build_loss is build_loss and "build_loss" in fusedloss.__all__


# --------------------------------------------------------------------------------------- example


def test_example_trains_and_loss_decreases():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "train_ranking.py"), "--steps", "80",
                          "--print-every", "20"], capture_output=True, text=True, env=env, timeout=120,
                         check=True).stdout
    rows = [list(map(float, line.split())) for line in out.splitlines() if re.match(r"^\s*\d+\s+-?\d", line)]
    assert [int(r[0]) for r in rows] == [20, 40, 60, 80], out
    # columns: step, total, cross_entropy_loss, pairwise_logistic_loss, l2_loss
    assert rows[-1][1] < rows[0][1], out
    assert rows[-1][2] < rows[0][2], out
    assert "learned weights" in out and "held-out session AUC" in out


# ------------------------------------------------- session softmax and metric-learning types


def test_jrc_config_reads_session_and_learns_uncertainty():
    torch.manual_seed(7)
    logits = torch.randn(B, 2, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 2, (B,))
    _, _, weights, features = _data()
    cfg = {"loss_type": "JRC_LOSS", "jrc_loss": {"session_name": "user_id", "alpha": 0.3,
                                                 "same_label_loss": False}}
    for form in _text_forms(cfg):
        got = build_loss(form, backend="reference")(logits, labels, weights, features)
        want = F.jrc_loss(logits, labels, features["user_id"], weight=weights, alpha=0.3,
                          same_label_loss=False, backend="reference")
        torch.testing.assert_close(got, want)
    unc = build_loss({"loss_type": "JRC_LOSS", "jrc_loss": {"session_name": "user_id",
                                                            "loss_weight_strategy": "uncertainty"}})
    unc(logits, labels, weights, features).backward()
    assert unc.uncertainty.grad is not None and bool((unc.uncertainty.grad != 0).all())
    with pytest.raises(ValueError, match="jrc_loss.session_name is required"):
        build_loss({"loss_type": "JRC_LOSS"})
    with pytest.raises(ValueError, match=r"loss_weight_strategy must be one of .*did you mean 'fixed'"):
        build_loss({"loss_type": "JRC_LOSS", "jrc_loss": {"session_name": "u",
                                                          "loss_weight_strategy": "fixd"}})


def test_listwise_configs():
    torch.manual_seed(8)
    logits, _, weights, features = _data()
    labels = torch.randint(1, 6, (B,)).double()
    rank = build_loss({"loss_type": "LISTWISE_RANK_LOSS",
                       "listwise_rank_loss": {"session_name": "user_id", "temperature": 0.5,
                                              "transform_fn": "torch.log1p"}}, backend="reference")
    want = F.listwise_rank_loss(logits.reshape(-1), labels, features["user_id"], temperature=0.5,
                                transform_fn=torch.log1p, backend="reference")
    torch.testing.assert_close(rank(logits, labels, None, features), want)
    with pytest.warns(UserWarning, match="ignores tensor sample weights"):
        torch.testing.assert_close(rank(logits, labels, weights, features), want)
    distill = build_loss({"loss_type": "LISTWISE_DISTILL_LOSS",
                          "listwise_distill_loss": {"scale_logits": True,
                                                    "label_clip_max_value": 4.0}})
    distill(logits, labels).backward()
    assert distill.logit_scale.grad is not None
    with pytest.raises(ValueError, match="transform_fn 'torch.not_a_function' is not an importable"):
        build_loss({"loss_type": "LISTWISE_RANK_LOSS",
                    "listwise_rank_loss": {"transform_fn": "torch.not_a_function"}})


@pytest.mark.parametrize("loss_type, block, fn", [
    ("CIRCLE_LOSS", "circle_loss", F.circle_loss),
    ("MULTI_SIMILARITY_LOSS", "multi_simi_loss", F.multi_similarity_loss),
])
def test_metric_configs(loss_type, block, fn):
    torch.manual_seed(9)
    emb = torch.randn(B, 5, dtype=torch.float64)
    labels = torch.randint(0, 3, (B,))
    loss = build_loss({"loss_type": loss_type, block: {}}, backend="reference")
    torch.testing.assert_close(loss(emb, labels), fn(emb, labels, backend="reference"))
    assert build_loss(loss.to_config()).to_config() == loss.to_config()


@pytest.mark.parametrize("backend", ["reference", "auto"])
def test_ziln_config(backend):
    # ZILN_LOSS has no parameter block (EasyRec calls it with its defaults); a number sample weight
    # scales the loss, a tensor one is ignored (spec 7.1), and the config weight multiplies.
    torch.manual_seed(5)
    logits = torch.randn(B, 3, dtype=torch.float64, requires_grad=True)
    labels = torch.rand(B, 1, dtype=torch.float64) * 100 * (torch.rand(B, 1) > 0.4)
    loss = build_loss({"loss_type": "ZILN_LOSS", "weight": 0.5}, backend=backend)
    want = 0.5 * F.ziln_loss(logits, labels, backend="reference")
    torch.testing.assert_close(loss(logits, labels), want)
    torch.testing.assert_close(loss(logits, labels, torch.rand(B, dtype=torch.float64)), want)
    torch.testing.assert_close(loss(logits, labels, 3.0), 3.0 * want)
    loss(logits, labels).backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="ziln_loss"):
        build_loss({"loss_type": "ZILN_LOSS", "ziln_loss": {"max_sigma": 3.0}})
