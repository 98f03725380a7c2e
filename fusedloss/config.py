"""Build losses from EasyRec loss configs (``easy_rec/python/protos/loss.proto``): dicts, YAML or JSON.

One loss::

    loss_type: PAIRWISE_LOGISTIC_LOSS      # LossType enum name (any case)
    loss_name: rank                        # optional; EasyRec's default name otherwise
    weight: 1.0                            # optional, finite, >= 0
    learn_loss_weight: false               # optional; used by loss_weight_strategy Uncertainty
    pairwise_logistic_loss:                # optional parameter block; the one matching loss_type
      session_name: user_id                # a key of the ``features`` dict given at call time
      temperature: 1.0

Several losses (EasyRec's ``losses`` list and ``loss_weight_strategy`` of a rank model)::

    loss_weight_strategy: Uncertainty      # Fixed (default), Uncertainty or Random, any case
    losses:
      - {loss_type: CLASSIFICATION, learn_loss_weight: true}
      - {loss_type: PAIRWISE_LOGISTIC_LOSS, pairwise_logistic_loss: {session_name: user_id}}

``build_loss`` turns the first into a ``ConfiguredLoss`` and the second into a ``MultiLoss`` of
``ConfiguredLoss`` terms. Both have ``to_config()``, the normalised dict (every parameter spelled out
with its effective value; unset optional ones left out), and ``build_loss(m.to_config())`` builds the
same loss. EasyRec's protobuf text format (``losses { ... }``) is not parsed: write it as YAML.
"""

import copy
import difflib
import importlib
import json
import math
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from fusedloss import functional as F
from fusedloss.functional.session_softmax import JRC_STRATEGIES
from fusedloss.multiloss import EASYREC_STRATEGY_NAMES, LossTerm, MultiLoss, normalize_strategy

_REQUIRED = object()


@dataclass(frozen=True)
class _Param:
    kind: str  # "float", "int", "bool" or "str"
    default: object = None  # _REQUIRED, None (optional: unset means absent) or the proto default
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    choices: tuple | None = None  # "str" parameters with a closed set of values


_TEMPERATURE = _Param("float", 1.0, lo=0.0, lo_open=True)
_OHEM_RATIO = _Param("float", 1.0, lo=0.0, hi=1.0, lo_open=True)
_GAMMA = _Param("float", 2.0, lo=0.0)
_ALPHA = _Param("float", None, lo=0.0, hi=1.0)  # EasyRec: used only when set (HasField)
_SESSION = _Param("str", None)

# loss_type -> (parameter block name or None, {parameter: _Param}). Names and defaults are those of
# EasyRec's loss.proto; the effective defaults follow spec sections 2.5, 3.1-3.4 and 6.1 (e.g.
# hinge_margin is None unless set, as the builders gate it on HasField).
_BLOCKS: dict[str, tuple[str | None, dict[str, _Param]]] = {
    "CLASSIFICATION": (None, {}),
    "BINARY_CROSS_ENTROPY_LOSS": (None, {}),
    "L2_LOSS": (None, {}),
    "SIGMOID_L2_LOSS": (None, {}),
    "CROSS_ENTROPY_LOSS": (None, {}),
    "BINARY_FOCAL_LOSS": ("binary_focal_loss", {
        "gamma": _GAMMA, "alpha": _ALPHA, "ohem_ratio": _OHEM_RATIO,
        "label_smoothing": _Param("float", 0.0, lo=0.0, hi=1.0, hi_open=True),
    }),
    "PAIR_WISE_LOSS": ("pairwise_loss", {
        "margin": _Param("float", 0.0), "session_name": _SESSION, "temperature": _TEMPERATURE,
    }),
    "PAIRWISE_LOGISTIC_LOSS": ("pairwise_logistic_loss", {
        "temperature": _TEMPERATURE, "session_name": _SESSION, "hinge_margin": _Param("float", None),
        "ohem_ratio": _OHEM_RATIO, "use_label_margin": _Param("bool", False),
    }),
    "PAIRWISE_FOCAL_LOSS": ("pairwise_focal_loss", {
        "gamma": _GAMMA, "alpha": _ALPHA, "hinge_margin": _Param("float", None),
        "session_name": _SESSION, "ohem_ratio": _OHEM_RATIO, "temperature": _TEMPERATURE,
    }),
    "PAIRWISE_HINGE_LOSS": ("pairwise_hinge_loss", {
        "temperature": _TEMPERATURE, "margin": _Param("float", 1.0), "ohem_ratio": _OHEM_RATIO,
        "label_is_logits": _Param("bool", True), "use_label_margin": _Param("bool", True),
        "use_exponent": _Param("bool", False), "session_name": _SESSION,
    }),
    "SOFTMAX_CROSS_ENTROPY_WITH_NEGATIVE_MINING": ("softmax_loss", {
        "num_negative_samples": _Param("int", _REQUIRED, lo=1),
        "margin": _Param("float", 0.0),
        "gamma": _Param("float", 1.0, lo=0.0, lo_open=True),
        "coefficient_of_support_vector": _Param("float", 1.0),
        # Not in EasyRec's proto: DropoutNet passes it to the loss function in code.
        "embed_normed": _Param("bool", False),
    }),
    "JRC_LOSS": ("jrc_loss", {
        "session_name": _Param("str", _REQUIRED),
        "alpha": _Param("float", 0.5, lo=0.0, hi=1.0),
        "same_label_loss": _Param("bool", True),
        "loss_weight_strategy": _Param("str", "fixed", choices=JRC_STRATEGIES),
    }),
    "LISTWISE_RANK_LOSS": ("listwise_rank_loss", {
        "temperature": _TEMPERATURE, "session_name": _SESSION, "transform_fn": _Param("str", None),
        "label_is_logits": _Param("bool", False), "scale_logits": _Param("bool", False),
    }),
    "LISTWISE_DISTILL_LOSS": ("listwise_distill_loss", {
        "temperature": _TEMPERATURE, "session_name": _SESSION, "transform_fn": _Param("str", None),
        "label_clip_max_value": _Param("float", 512.0, lo=1.0),
        "scale_logits": _Param("bool", False),
    }),
    "CIRCLE_LOSS": ("circle_loss", {
        "margin": _Param("float", 0.25), "gamma": _Param("float", 32.0, lo=0.0, lo_open=True),
        # Not in EasyRec's proto: the model passes it to the loss function in code.
        "embed_normed": _Param("bool", False),
    }),
    "F1_REWEIGHTED_LOSS": ("f1_reweighted_loss", {
        "f1_beta_square": _Param("float", 1.0, lo=0.0, lo_open=True),
        "label_smoothing": _Param("float", 0.0, lo=0.0, hi=1.0, hi_open=True),
    }),
    "ORDER_CALIBRATE_LOSS": (None, {}),
    # EasyRec's builder calls zero_inflated_lognormal_loss with its defaults: no parameter block.
    "ZILN_LOSS": (None, {}),
    "MULTI_SIMILARITY_LOSS": ("multi_simi_loss", {
        "alpha": _Param("float", 2.0, lo=0.0, lo_open=True),
        "beta": _Param("float", 50.0, lo=0.0, lo_open=True),
        "lamb": _Param("float", 1.0), "eps": _Param("float", 0.1),
        "embed_normed": _Param("bool", False),
    }),
}

# EasyRec loss types that fusedloss does not implement yet.
NOT_BUILT = ("SOFTMAX_CROSS_ENTROPY", "KL_DIVERGENCE_LOSS")
# Parameter blocks of the types above (loss.proto's oneof), to say which type a stray block belongs to.
_NOT_BUILT_BLOCKS: dict[str, str] = {}
LOSS_TYPES = tuple(_BLOCKS)
_BLOCK_OWNER = {block: t for t, (block, _) in _BLOCKS.items() if block} | _NOT_BUILT_BLOCKS
_COMMON_KEYS = ("loss_type", "loss_name", "weight", "learn_loss_weight")
_LIST_KEYS = ("losses", "loss_weight_strategy")
_REGRESSION = ("L2_LOSS", "SIGMOID_L2_LOSS")
_PAIRWISE = {
    "PAIR_WISE_LOSS": F.pairwise_loss,
    "PAIRWISE_LOGISTIC_LOSS": F.pairwise_logistic_loss,
    "PAIRWISE_FOCAL_LOSS": F.pairwise_focal_loss,
    "PAIRWISE_HINGE_LOSS": F.pairwise_hinge_loss,
}


def default_loss_name(loss_type: str) -> str:
    """EasyRec RankModel's name for an unnamed loss (two types can share one: set loss_name)."""
    if loss_type in ("CLASSIFICATION", "BINARY_CROSS_ENTROPY_LOSS"):
        return "cross_entropy_loss"
    if loss_type in _REGRESSION:
        return "l2_loss"
    return loss_type.lower()


def _where(path: str) -> str:
    return f"{path}: " if path else ""


def _did_you_mean(word, choices) -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_value(path: str, key: str, value, spec: _Param):
    name = f"{path}.{key}" if path else key
    if value is None:
        if spec.default is _REQUIRED:
            raise ValueError(f"{name} is required")
        if spec.default is None:
            return None
        raise ValueError(f"{name} must be a {spec.kind}, got None (leave the key out for the default "
                         f"{spec.default!r})")
    if spec.kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false, got {type(value).__name__} {value!r}")
        return value
    if spec.kind == "str":
        if not isinstance(value, str) or not value:
            raise ValueError(f"{name} must be a non-empty string, got {type(value).__name__} {value!r}")
        if spec.choices is not None and value not in spec.choices:
            raise ValueError(f"{name} must be one of {', '.join(map(repr, spec.choices))}; got "
                             f"{value!r}{_did_you_mean(value, spec.choices)}")
        return value
    if spec.kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    else:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            hint = ""
            if isinstance(value, str):
                try:
                    float(value)
                    hint = (" (a quoted number, or PyYAML reading an exponent without a dot such as "
                            "1e-3 as a string: write 1.0e-3)")
                except ValueError:
                    pass
            raise ValueError(f"{name} must be a number, got {type(value).__name__} {value!r}{hint}")
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value}")
        value = float(value)
    if spec.lo is not None and (value <= spec.lo if spec.lo_open else value < spec.lo):
        raise ValueError(f"{name} must be {'>' if spec.lo_open else '>='} {spec.lo:g}, got {value}")
    if spec.hi is not None and (value >= spec.hi if spec.hi_open else value > spec.hi):
        raise ValueError(f"{name} must be {'<' if spec.hi_open else '<='} {spec.hi:g}, got {value}")
    return value


def _loss_type(path: str, value) -> str:
    accepted = ", ".join(LOSS_TYPES)
    if not isinstance(value, str):
        raise ValueError(f"{_where(path)}loss_type must be a string, one of {accepted}; got "
                         f"{type(value).__name__} {value!r}")
    t = value.upper()
    if t in NOT_BUILT:
        raise NotImplementedError(f"{_where(path)}loss_type {t} is not built yet in fusedloss; the "
                                  f"buildable types are {accepted}")
    if t not in _BLOCKS:
        raise ValueError(f"{_where(path)}unknown loss_type {value!r}{_did_you_mean(t, LOSS_TYPES)}; "
                         f"accepted: {accepted} (not built yet: {', '.join(NOT_BUILT)})")
    return t


def normalize_loss_config(config: Mapping, path: str = "") -> dict:
    """One loss config checked and spelled out: ``loss_type`` upper case, ``loss_name``, ``weight``,
    ``learn_loss_weight`` and the parameter block (if the type has one) with every parameter's
    effective value; unset optional parameters (alpha, hinge_margin, session_name) are left out.

    Raises ValueError naming the key at fault (unknown key, a block of another type, a bad value),
    NotImplementedError for EasyRec types not built yet.
    """
    if not isinstance(config, Mapping):
        raise ValueError(f"{_where(path)}a loss config must be a mapping with a loss_type, got "
                         f"{type(config).__name__} {config!r}")
    if "loss_type" not in config:
        raise ValueError(f"{_where(path)}loss config needs a loss_type; got keys {sorted(map(str, config))}")
    t = _loss_type(path, config["loss_type"])
    block, params = _BLOCKS[t]
    accepted = _COMMON_KEYS + ((block,) if block else ())
    blocks_given = [k for k in config if k in _BLOCK_OWNER]
    if len(blocks_given) > 1:
        raise ValueError(f"{_where(path)}a loss takes at most one parameter block, got {blocks_given}")
    for key in config:
        if key in accepted:
            continue
        if key in _BLOCK_OWNER:
            takes = f"its block is {block!r}" if block else "it takes no parameter block"
            raise ValueError(f"{_where(path)}parameter block {key!r} belongs to {_BLOCK_OWNER[key]}, not "
                             f"to loss_type {t} ({takes})")
        raise ValueError(f"{_where(path)}unknown key {key!r} in a {t} config"
                         f"{_did_you_mean(key, accepted)}; accepted keys: {', '.join(accepted)}")
    out = {"loss_type": t}
    name = config.get("loss_name")
    if name is None:
        name = default_loss_name(t)
    out["loss_name"] = _check_value(path, "loss_name", name, _Param("str"))
    if "." in out["loss_name"]:
        raise ValueError(f"{_where(path)}loss_name must not contain '.', got {out['loss_name']!r}")
    out["weight"] = _check_value(path, "weight", config.get("weight", 1.0), _Param("float", 1.0, lo=0.0))
    out["learn_loss_weight"] = _check_value(path, "learn_loss_weight",
                                            config.get("learn_loss_weight", False), _Param("bool", False))
    if block:
        given = config.get(block)
        if given is None:
            given = {}
        bpath = f"{path}.{block}" if path else block
        if not isinstance(given, Mapping):
            raise ValueError(f"{bpath} must be a mapping of parameters, got {type(given).__name__} {given!r}")
        for key in given:
            if key not in params:
                raise ValueError(f"unknown parameter {key!r} in {bpath}{_did_you_mean(key, params)}; "
                                 f"accepted: {', '.join(params)}")
        values = {}
        for key, spec in params.items():
            default = None if spec.default is _REQUIRED else spec.default
            v = _check_value(bpath, key, given.get(key, default), spec)
            if v is not None:
                values[key] = v
        out[block] = values
    return out


def _parse_text(text: str):
    s = text.strip()
    if s.startswith(("{", "[")):
        try:
            return json.loads(s)
        except json.JSONDecodeError as exc:
            raise ValueError(f"the config text starts with {s[0]!r} but is not valid JSON: {exc}") from None
    if re.search(r"^\s*[A-Za-z_]\w*\s*\{", s, flags=re.MULTILINE):
        raise ValueError("the config text looks like EasyRec's protobuf text format (name { ... }), which "
                         "build_loss does not parse; write it as YAML (name: followed by an indented "
                         "block) or JSON")
    try:
        import yaml
    except ImportError:
        raise ImportError("a YAML loss config needs PyYAML (pip install pyyaml; it is in fusedloss's dev "
                          "extra); or pass a dict or JSON text") from None
    try:
        return yaml.safe_load(s)
    except yaml.YAMLError as exc:
        raise ValueError(f"the config text is not valid YAML: {exc}") from None


def _resolve_callable(path, loss_type: str):
    """EasyRec's transform_fn: a dotted Python path (``torch.log1p``, ``mypkg.mod.fn``) or None."""
    if path is None:
        return None
    module, _, attr = path.rpartition(".")
    try:
        fn = getattr(importlib.import_module(module), attr) if module else None
    except (ImportError, AttributeError):
        fn = None
    if not callable(fn):
        raise ValueError(f"{loss_type}: transform_fn {path!r} is not an importable callable (write "
                         f"a dotted path such as 'torch.log1p')")
    return fn


def _session_ids(features, session_name: str, loss_type: str):
    if features is None:
        raise ValueError(f"{loss_type} has session_name {session_name!r}: pass features={{"
                         f"{session_name!r}: session_ids, ...}}")
    if not isinstance(features, Mapping):
        raise TypeError(f"features must be a mapping from feature name to tensor, got "
                        f"{type(features).__name__}")
    if session_name not in features:
        raise ValueError(f"{loss_type}: session_name {session_name!r} is not a key of features; keys: "
                         f"{sorted(map(str, features))}")
    ids = features[session_name]
    return ids.reshape(-1) if isinstance(ids, torch.Tensor) and ids.dim() == 2 and ids.shape[1] == 1 else ids


def _squeeze(x, name: str, loss_type: str):
    """[B] or [B, 1] (the head output) -> [B]."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor for {loss_type}, got {type(x).__name__}")
    if x.dim() == 2 and x.shape[1] == 1:
        return x.reshape(-1)
    if x.dim() != 1:
        raise ValueError(f"{name} must be [B] or [B, 1] for {loss_type}, got shape {tuple(x.shape)}")
    return x


def _sample_weights(weights):
    """None -> 1.0 (EasyRec without a sample-weight feature); [B, 1] -> [B]."""
    if weights is None:
        return 1.0
    if isinstance(weights, torch.Tensor) and weights.dim() == 2 and weights.shape[1] == 1:
        return weights.reshape(-1)
    return weights


def _float_labels(labels, logits):
    return labels.to(logits.dtype) if isinstance(labels, torch.Tensor) else labels


def _sbnz(per: torch.Tensor, weights) -> torch.Tensor:
    """TF's SUM_BY_NONZERO_WEIGHTS (spec 1.1): sum(w l) / #{w != 0}, 0 when every weight is 0."""
    w = torch.as_tensor(weights, dtype=per.dtype, device=per.device).expand_as(per)
    nnz = (w != 0).sum()
    return torch.where(nnz > 0, (w * per).sum() / nnz.clamp_min(1), torch.zeros((), dtype=per.dtype,
                                                                             device=per.device))


class ConfiguredLoss(torch.nn.Module):
    """One EasyRec loss built from its config (see ``build_loss``).

    ``forward(logits, labels, weights=None, features=None)`` returns ``weight * L`` where ``L`` is
    the loss EasyRec's builder computes for ``loss_type`` with sample weights ``weights`` (None:
    the scalar 1; else a number or a [B] tensor) and, for a ``session_name``, the session ids
    ``features[session_name]``. Inputs per type:

    * CLASSIFICATION: logits [B] or [B, 1] (binary, SBNZ of sigmoid CE; labels cast to float,
      soft labels allowed) or [B, C], C > 1 (SBNZ of softmax CE; labels int32/int64 in [0, C)).
    * BINARY_CROSS_ENTROPY_LOSS: logits [B] or [B, 1]; mean sigmoid CE, sample weights ignored.
    * L2_LOSS / SIGMOID_L2_LOSS: logits [B] or [B, 1]; SBNZ of ``(x - y)^2`` / ``(sigmoid(x) - y)^2``.
    * CROSS_ENTROPY_LOSS: ``logits`` holds probabilities (any shape; [B, C] is an element-wise
      binary log loss); SBNZ of TF's log loss.
    * BINARY_FOCAL_LOSS and the four pairwise types: logits [B] or [B, 1].
    * SOFTMAX_CROSS_ENTROPY_WITH_NEGATIVE_MINING: ``logits`` is the pair ``(user_emb, item_emb)``,
      each [B, D]; negatives are drawn from torch's global RNG at every call.
    * JRC_LOSS: logits [B, 2], labels [B] in {0, 1}, ``features[session_name]`` required; the
      'uncertainty' strategy's two log-variances are the parameter ``uncertainty``.
    * LISTWISE_RANK_LOSS / LISTWISE_DISTILL_LOSS: logits [B] or [B, 1]; without ``session_name``
      the batch is one session; tensor sample weights are ignored with a warning (EasyRec logs an
      error and ignores them); ``scale_logits`` adds the parameters ``logit_scale`` and
      ``logit_bias``; ``transform_fn`` is a dotted Python path (``torch.log1p``).
    * CIRCLE_LOSS / MULTI_SIMILARITY_LOSS: ``logits`` is the embeddings [B, D], labels [B] class
      ids; sample weights are not used (EasyRec's take none).
    * F1_REWEIGHTED_LOSS: logits [B], [B, 1] or [B, C], labels of that shape.
    * ORDER_CALIBRATE_LOSS (AITM, spec 5): ``logits`` is this tower's probabilities and ``labels``
      the list of the relation towers' probabilities; ``weight * sum_r mean(relu(p - p_r))``,
      sample weights unused (as in EasyRec).
    * ZILN_LOSS (spec 7.1): logits [B, 3] = (l_p, mu, l_s), labels [B] or [B, 1] (the value, e.g.
      LTV); the defaults of ``ziln_loss``; a number sample weight multiplies the loss, a tensor one
      is ignored (as in EasyRec).

    In a ``MultiLoss`` built by ``build_loss`` the weighting is the ``MultiLoss``'s: its
    ``ConfiguredLoss`` terms have weight 1 and the ``LossTerm`` carries the config's weight.
    ``learn_loss_weight`` only matters there (with strategy Uncertainty); a lone loss ignores it,
    as EasyRec's Fixed strategy does.

    Attributes: ``loss_type``, ``loss_name``, ``weight``, ``learn_loss_weight``, ``params`` (the
    block's effective parameters), ``session_name``, ``regression``, ``backend``.

    Example:
        >>> loss = ConfiguredLoss({"loss_type": "PAIRWISE_LOGISTIC_LOSS",
        ...                        "pairwise_logistic_loss": {"session_name": "uid"}})
        >>> loss(torch.randn(8), torch.randint(0, 2, (8,)), features={"uid": torch.arange(8) // 4})
    """

    def __init__(self, config: Mapping, *, backend: str = "auto"):
        super().__init__()
        self._config = normalize_loss_config(config)
        self.backend = backend
        self.loss_type = self._config["loss_type"]
        self.loss_name = self._config["loss_name"]
        self.weight = self._config["weight"]
        self.learn_loss_weight = self._config["learn_loss_weight"]
        block = _BLOCKS[self.loss_type][0]
        self.params = dict(self._config.get(block, {})) if block else {}
        self.session_name = self.params.pop("session_name", None)
        self.regression = self.loss_type in _REGRESSION
        self.transform_fn = _resolve_callable(self.params.get("transform_fn"), self.loss_type)
        # EasyRec's trainable scalars: scale_logits' |a| s + b, JRC's uncertainty log-variances
        self.logit_scale = self.logit_bias = self.uncertainty = None
        if self.params.get("scale_logits"):
            self.logit_scale = torch.nn.Parameter(torch.ones(()))
            self.logit_bias = torch.nn.Parameter(torch.zeros(()))
        if self.params.get("loss_weight_strategy") == "uncertainty":
            self.uncertainty = torch.nn.Parameter(torch.zeros(2))

    def to_config(self) -> dict:
        """The normalised config dict (JSON/YAML-safe); ``build_loss`` of it builds this loss."""
        return copy.deepcopy(self._config)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self._config.items())

    def forward(self, logits, labels, weights=None, features=None) -> torch.Tensor:
        loss = self._loss(logits, labels, weights, features)
        return loss if self.weight == 1.0 else loss * self.weight

    def _loss(self, logits, labels, weights, features) -> torch.Tensor:
        t, p, backend = self.loss_type, self.params, self.backend
        w = _sample_weights(weights)
        if t == "SOFTMAX_CROSS_ENTROPY_WITH_NEGATIVE_MINING":
            if not (isinstance(logits, Sequence) and len(logits) == 2):
                raise TypeError(f"{t} takes logits=(user_emb, item_emb), got {type(logits).__name__}")
            return F.sv_softmax_loss(
                logits[0], logits[1], labels, num_negative_samples=p["num_negative_samples"],
                embed_normed=p["embed_normed"], weights=w, gamma=p["gamma"], margin=p["margin"],
                t=p["coefficient_of_support_vector"], backend=backend)
        if t == "CROSS_ENTROPY_LOSS":
            return self._log_loss(logits, labels, w)
        if t == "F1_REWEIGHTED_LOSS":
            x = _squeeze(logits, "logits", t) if logits.dim() == 2 and logits.shape[1] == 1 else logits
            y = labels.reshape(x.shape) if isinstance(labels, torch.Tensor) else labels
            return F.f1_reweighted_loss(x, y, w, backend=backend, **p)
        if t == "ORDER_CALIBRATE_LOSS":
            return F.order_calibrate_loss(logits, labels, backend=backend)
        if t == "ZILN_LOSS":
            loss = F.ziln_loss(logits, labels, backend=backend)
            # EasyRec: a scalar sample weight != 1 scales the loss; tensor weights are ignored
            return loss * w if isinstance(w, (int, float)) and w != 1.0 else loss
        if t in ("CIRCLE_LOSS", "MULTI_SIMILARITY_LOSS"):
            fn = F.circle_loss if t == "CIRCLE_LOSS" else F.multi_similarity_loss
            return fn(logits, _squeeze(labels, "labels", t), backend=backend, **p)
        if t == "JRC_LOSS":
            session = _session_ids(features, self.session_name, t)
            return F.jrc_loss(logits, _squeeze(labels, "labels", t), session, weight=w,
                              alpha=p["alpha"], same_label_loss=p["same_label_loss"],
                              loss_weight_strategy=p["loss_weight_strategy"],
                              uncertainty=self.uncertainty, backend=backend)
        if t in ("LISTWISE_RANK_LOSS", "LISTWISE_DISTILL_LOSS"):
            return self._listwise(logits, labels, w, features)
        if t == "CLASSIFICATION" and isinstance(logits, torch.Tensor) and logits.dim() == 2 \
                and logits.shape[1] > 1:
            return self._softmax_classification(logits, labels, w)
        x = _squeeze(logits, "logits", t)
        y = _squeeze(labels, "labels", t)
        if t == "CLASSIFICATION":
            # gamma = 0, no alpha: the focal factor is 1, so the SBNZ denominator is #{w != 0}
            # and the loss is TF's sigmoid_cross_entropy with weights (spec 2.1, 2.5).
            return F.binary_focal_loss(x, _float_labels(y, x), gamma=0.0, weight=w, backend=backend)
        if t == "BINARY_CROSS_ENTROPY_LOSS":
            return F.binary_cross_entropy_with_logits(x, _float_labels(y, x), reduction="mean",
                                                      backend=backend)
        if t == "L2_LOSS":
            return F.l2_loss(x, _float_labels(y, x), weights=w, backend=backend)
        if t == "SIGMOID_L2_LOSS":
            return F.sigmoid_l2_loss(x, _float_labels(y, x), weights=w, backend=backend)
        if t == "BINARY_FOCAL_LOSS":
            return F.binary_focal_loss(x, _float_labels(y, x), weight=w, backend=backend, **p)
        session = None if self.session_name is None else _session_ids(features, self.session_name, t)
        return _PAIRWISE[t](x, y, session, weight=w, backend=backend, **p)

    def _listwise(self, logits, labels, w, features):
        t, p = self.loss_type, self.params
        if isinstance(w, torch.Tensor):
            # EasyRec logs an error and drops tensor sample weights for the listwise losses
            warnings.warn(f"{t} ignores tensor sample weights (as EasyRec does)", stacklevel=3)
            w = 1.0
        x = _squeeze(logits, "logits", t)
        y = _squeeze(labels, "labels", t)
        session = None if self.session_name is None else _session_ids(features, self.session_name, t)
        common = dict(weight=w, temperature=p["temperature"], transform_fn=self.transform_fn,
                      logit_scale=self.logit_scale, logit_bias=self.logit_bias, backend=self.backend)
        if t == "LISTWISE_RANK_LOSS":
            return F.listwise_rank_loss(x, _float_labels(y, x), session,
                                        label_is_logits=p["label_is_logits"], **common)
        return F.listwise_distill_loss(x, _float_labels(y, x), session,
                                       label_clip_max_value=p["label_clip_max_value"], **common)

    def _softmax_classification(self, logits, labels, w):
        t = self.loss_type
        if not isinstance(labels, torch.Tensor):
            raise TypeError(f"labels must be a torch.Tensor for {t}, got {type(labels).__name__}")
        if labels.dtype not in (torch.int32, torch.int64):
            raise TypeError(f"labels must be int32 or int64 class indices for {t} with "
                            f"{logits.shape[1]} classes, got {labels.dtype}")
        labels = _squeeze(labels, "labels", t)
        if labels.numel() and not torch.compiler.is_compiling() and bool((labels < 0).any()):
            raise ValueError(f"labels must hold class indices in [0, {logits.shape[1]}) for {t}, got "
                             f"{int(labels.min())}")
        per_row = F.cross_entropy(logits, labels, reduction="none", backend=self.backend)
        return _sbnz(per_row, w)

    def _log_loss(self, probs, labels, w):
        t = self.loss_type
        if not isinstance(probs, torch.Tensor) or not isinstance(labels, torch.Tensor):
            raise TypeError(f"{t} takes tensors of probabilities and labels")
        if probs.dim() == 2 and probs.shape[1] == 1:
            probs = probs.reshape(-1)
        if labels.shape != probs.shape and labels.numel() == probs.numel():
            labels = labels.reshape(probs.shape)
        if isinstance(w, torch.Tensor) and probs.dim() == 2 and w.dim() == 1 and w.shape[0] == probs.shape[0]:
            w = w.reshape(-1, 1)  # a sample weight per row of [B, C]
        return F.log_loss(probs, _float_labels(labels, probs), weights=w, backend=self.backend)


def build_loss(config, *, backend: str = "auto"):
    """A loss module from an EasyRec loss config: a dict, or YAML or JSON text (text starting with
    ``{`` or ``[`` is JSON, anything else YAML, which needs PyYAML).

    * ``{"loss_type": ..., ...}`` (one loss): a ``ConfiguredLoss``.
    * ``{"losses": [...], "loss_weight_strategy": "Fixed" | "Uncertainty" | "Random"}`` (or a bare
      list of loss configs, strategy Fixed): a ``MultiLoss`` whose terms are ``ConfiguredLoss``
      modules named by ``loss_name`` (EasyRec's default name when unset), weighted by ``weight``,
      with learned weights for ``learn_loss_weight`` under Uncertainty (regression form for L2_LOSS
      and SIGMOID_L2_LOSS; spec 8.2). ``learn_loss_weight`` under Fixed or Random is ignored, as in
      EasyRec's RankModel, with a warning.

    Loss types and parameter blocks are EasyRec's (loss.proto): CLASSIFICATION, L2_LOSS,
    SIGMOID_L2_LOSS, CROSS_ENTROPY_LOSS, BINARY_CROSS_ENTROPY_LOSS, BINARY_FOCAL_LOSS
    (``binary_focal_loss``), PAIR_WISE_LOSS (``pairwise_loss``), PAIRWISE_LOGISTIC_LOSS
    (``pairwise_logistic_loss``), PAIRWISE_FOCAL_LOSS (``pairwise_focal_loss``), PAIRWISE_HINGE_LOSS
    (``pairwise_hinge_loss``), SOFTMAX_CROSS_ENTROPY_WITH_NEGATIVE_MINING (``softmax_loss``),
    F1_REWEIGHTED_LOSS (``f1_reweighted_loss``), ORDER_CALIBRATE_LOSS, ZILN_LOSS,
    JRC_LOSS (``jrc_loss``), LISTWISE_RANK_LOSS (``listwise_rank_loss``), LISTWISE_DISTILL_LOSS
    (``listwise_distill_loss``), CIRCLE_LOSS (``circle_loss``), MULTI_SIMILARITY_LOSS
    (``multi_simi_loss``).

    Departures from EasyRec, all errors where EasyRec is silent: two losses with one name raise
    (EasyRec keeps one of them), and so does a negative weight.

    Args:
        config: the config (dict, list, YAML or JSON text).
        backend: passed to every loss function (``"auto"``, ``"reference"``, ``"cpu"``, ...).

    Raises:
        ValueError: unknown key or loss_type, a parameter block of another type, a bad value; the
            message names the key (``losses[1].pairwise_logistic_loss.temperature``) and the
            accepted ones.
        NotImplementedError: an EasyRec loss type fusedloss does not build yet.
        ImportError: YAML text without PyYAML installed.
    """
    if isinstance(config, (str, bytes)):
        config = _parse_text(config.decode() if isinstance(config, bytes) else config)
    if isinstance(config, Sequence) and not isinstance(config, (str, bytes)):
        config = {"losses": list(config)}
    if not isinstance(config, Mapping):
        raise ValueError(f"a loss config must be a mapping (one loss with loss_type, or losses: [...]), "
                         f"got {type(config).__name__} {config!r}")
    if "losses" not in config:
        if "loss_weight_strategy" in config:
            raise ValueError("loss_weight_strategy needs a losses list (it weighs several losses); "
                             "for one loss leave it out")
        if "loss_type" not in config:
            raise ValueError(f"a loss config needs loss_type (one loss) or losses (a list); got keys "
                             f"{sorted(map(str, config))}")
        return ConfiguredLoss(config, backend=backend)
    for key in config:
        if key not in _LIST_KEYS:
            raise ValueError(f"unknown key {key!r} next to losses{_did_you_mean(key, _LIST_KEYS)}; "
                             f"accepted keys: {', '.join(_LIST_KEYS)}")
    losses = config["losses"]
    if isinstance(losses, (str, bytes, Mapping)) or not isinstance(losses, Sequence) or not losses:
        raise ValueError(f"losses must be a non-empty list of loss configs, got {losses!r}")
    strategy = config.get("loss_weight_strategy", "Fixed")
    try:
        strategy = normalize_strategy(strategy, "loss_weight_strategy")
    except TypeError as exc:
        raise ValueError(str(exc)) from None
    normalized = [normalize_loss_config(c, f"losses[{i}]") for i, c in enumerate(losses)]
    seen = {}
    for i, c in enumerate(normalized):
        if c["loss_name"] in seen:
            raise ValueError(f"losses[{i}] and losses[{seen[c['loss_name']]}] are both named "
                             f"{c['loss_name']!r}; set loss_name on one of them (EasyRec would keep "
                             "only one)")
        seen[c["loss_name"]] = i
    if strategy != "uncertainty":
        learned = [c["loss_name"] for c in normalized if c["learn_loss_weight"]]
        if learned:
            warnings.warn(f"learn_loss_weight is ignored under loss_weight_strategy "
                          f"{EASYREC_STRATEGY_NAMES[strategy]} (losses {learned}); it needs Uncertainty",
                          stacklevel=2)
    terms = []
    for c in normalized:
        inner = ConfiguredLoss({**c, "weight": 1.0, "learn_loss_weight": False}, backend=backend)
        terms.append(LossTerm(inner, c["loss_name"], weight=c["weight"],
                              learn_weight=c["learn_loss_weight"], regression=inner.regression))
    return MultiLoss(terms, strategy=strategy)
