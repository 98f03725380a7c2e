"""Weighted sums of losses: EasyRec's ``losses`` list with its three weighting strategies (spec 8.2).

``MultiLoss`` calls several losses with the same arguments and adds them up:

* ``"fixed"``: ``L = sum_k w_k L_k``.
* ``"uncertainty"`` (Kendall, Gal and Cipolla, CVPR 2018, as EasyRec's RankModel codes it): each term
  with ``learn_weight`` gets a trainable scalar ``u_k`` (initialised to 0) and contributes
  ``exp(-u_k) L_k + u_k / 2``, or ``exp(-u_k) L_k / 2 + u_k / 2`` for regression terms (EasyRec's
  L2_LOSS and SIGMOID_L2_LOSS); ``w_k`` is ignored for those terms, the others keep ``w_k L_k``.
* ``"random"`` (random loss weighting): with n > 1 terms, ``L = sum_k lambda_k L_k`` with
  ``lambda = softmax(eps)``, ``eps ~ N(0, I_n)`` drawn afresh at every call; ``w_k`` is ignored.
  A single term has weight 1.
"""

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

STRATEGIES = ("fixed", "uncertainty", "random")
# EasyRec's spelling of the strategies (the LossWeightStrategy enum of easy_rec_model.proto).
EASYREC_STRATEGY_NAMES = {"fixed": "Fixed", "uncertainty": "Uncertainty", "random": "Random"}


def normalize_strategy(strategy, name: str = "strategy") -> str:
    """``"fixed"``, ``"uncertainty"`` or ``"random"`` from any capitalisation (EasyRec writes
    ``Fixed``, ``Uncertainty``, ``Random``)."""
    if not isinstance(strategy, str):
        raise TypeError(f"{name} must be a string, one of {', '.join(EASYREC_STRATEGY_NAMES.values())} "
                        f"(any case), got {type(strategy).__name__} {strategy!r}")
    if strategy.lower() not in STRATEGIES:
        raise ValueError(f"{name} must be one of {', '.join(EASYREC_STRATEGY_NAMES.values())} (any "
                         f"case), got {strategy!r}")
    return strategy.lower()


@dataclass
class LossTerm:
    """One term of a ``MultiLoss``.

    Args:
        loss: any callable returning a 0-d tensor (a function or an ``nn.Module``; modules become
            submodules of the ``MultiLoss``, so ``.to(device)`` and ``state_dict`` reach them).
        name: unique within the ``MultiLoss``; keys the per-term dicts and names the learned weight
            ``<name>_loss_weight``. No ``"."`` (PyTorch parameter names cannot hold one).
        weight: finite and >= 0; used by the ``"fixed"`` strategy and by ``"uncertainty"`` terms
            without ``learn_weight``. Default 1.
        learn_weight: learn ``u`` for this term under ``"uncertainty"``; ignored by ``"fixed"`` and
            ``"random"`` (as EasyRec's RankModel does). Default False.
        regression: use the regression form ``exp(-u) L / 2 + u / 2`` under ``"uncertainty"``
            (EasyRec: L2_LOSS and SIGMOID_L2_LOSS). Default False.
    """

    loss: Callable[..., torch.Tensor]
    name: str
    weight: float = 1.0
    learn_weight: bool = False
    regression: bool = False

    def __post_init__(self):
        if not callable(self.loss):
            raise TypeError(f"LossTerm.loss must be callable, got {type(self.loss).__name__}")
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"LossTerm.name must be a non-empty string, got {self.name!r}")
        if "." in self.name:
            raise ValueError(f"LossTerm.name must not contain '.', got {self.name!r}")
        if isinstance(self.weight, bool) or not isinstance(self.weight, (int, float)):
            raise TypeError(f"weight of loss term {self.name!r} must be a number, got "
                            f"{type(self.weight).__name__} {self.weight!r}")
        if not math.isfinite(self.weight) or self.weight < 0:
            raise ValueError(f"weight of loss term {self.name!r} must be finite and >= 0, got {self.weight}")
        self.weight = float(self.weight)
        for flag in ("learn_weight", "regression"):
            if not isinstance(getattr(self, flag), bool):
                raise TypeError(f"{flag} of loss term {self.name!r} must be a bool, got "
                                f"{getattr(self, flag)!r}")


class MultiLoss(torch.nn.Module):
    r"""Several losses called with the same arguments, combined by fixed, uncertainty or random weights.

    .. math::
        \text{fixed: } \sum_k w_k L_k \qquad
        \text{uncertainty: } \sum_{k \in \text{learn}} (c_k e^{-u_k} L_k + u_k/2)
            + \sum_{k \notin \text{learn}} w_k L_k \qquad
        \text{random: } \sum_k \mathrm{softmax}(\epsilon)_k L_k,\ \epsilon \sim N(0, I)

    with ``c_k = 1/2`` for regression terms and 1 otherwise. Under ``"uncertainty"``
    ``dL/du_k = 1/2 - c_k e^{-u_k} L_k``, stationary at ``u_k = log(2 c_k L_k)``. The learned scalars
    are parameters of this module named ``<name>_loss_weight`` (EasyRec's variable names), float32,
    initialised to 0: give ``MultiLoss.parameters()`` to the optimiser along with the model's.

    API (stateless, one call = one random draw):

    * ``forward(*args, **kwargs)``: the total loss (0-d tensor); every term gets the same arguments.
    * ``compute(*args, **kwargs)``: the unweighted per-term values ``{name: L_k}``.
    * ``weigh(values)``: the weighted per-term contributions ``{name: L'_k}`` whose sum is the
      total (EasyRec's ``loss_dict``); draws the random weights under ``"random"``.
    * ``combine(values)``: ``sum(weigh(values).values())``, for losses computed elsewhere.
      ``forward(...) == combine(compute(...))``.

    To log both views from one step: ``values = m.compute(...); parts = m.weigh(values);
    total = sum(parts.values())``.

    Args:
        terms: ``LossTerm`` objects (at least one) with unique names.
        strategy: ``"fixed"`` (default), ``"uncertainty"`` or ``"random"``; any case, so EasyRec's
            ``Fixed``/``Uncertainty``/``Random`` work.
        generator: optional ``torch.Generator`` for the ``"random"`` draws (default: the global
            RNG of the generator's device, CPU). The draw is made on the generator's device and
            moved to the losses' device.

    Shape: whatever the terms take; output ().

    Example:
        >>> m = MultiLoss([LossTerm(F.binary_focal_loss, "ctr", learn_weight=True),
        ...                LossTerm(F.l2_loss, "mse", learn_weight=True, regression=True)],
        ...               strategy="uncertainty")
        >>> opt = torch.optim.Adam([*model.parameters(), *m.parameters()])
        >>> m(logits, labels).backward()
    """

    def __init__(self, terms: Sequence[LossTerm], strategy: str = "fixed", *,
                 generator: torch.Generator | None = None):
        super().__init__()
        if isinstance(terms, LossTerm) or not isinstance(terms, Sequence):
            raise TypeError(f"terms must be a sequence of LossTerm, got {type(terms).__name__}")
        if not terms:
            raise ValueError("terms must hold at least one LossTerm")
        seen = set()
        for i, term in enumerate(terms):
            if not isinstance(term, LossTerm):
                raise TypeError(f"terms[{i}] must be a LossTerm, got {type(term).__name__}")
            if term.name in seen:
                # EasyRec lets the second loss of a name silently replace the first (spec 8.1).
                raise ValueError(f"duplicate loss name {term.name!r} (terms[{i}]); every term needs a "
                                 "unique name (in a config, set loss_name)")
            seen.add(term.name)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be None or a torch.Generator, got {type(generator).__name__}")
        self.strategy = normalize_strategy(strategy)
        self.terms = list(terms)
        self.generator = generator
        # Module losses become submodules (device moves, state_dict); plain callables stay as is.
        self.term_modules = torch.nn.ModuleDict(
            {t.name: t.loss for t in self.terms if isinstance(t.loss, torch.nn.Module)})
        self._uncertainty_names: dict[str, str] = {}
        if self.strategy == "uncertainty":
            for t in self.terms:
                if t.learn_weight:
                    pname = f"{t.name}_loss_weight"
                    self.register_parameter(pname, torch.nn.Parameter(torch.zeros(())))
                    self._uncertainty_names[t.name] = pname

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.terms]

    @property
    def uncertainties(self) -> dict[str, torch.nn.Parameter]:
        """The learned ``u_k`` by term name (empty unless strategy is ``"uncertainty"``)."""
        return {name: getattr(self, pname) for name, pname in self._uncertainty_names.items()}

    def compute(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        """Every term called with ``(*args, **kwargs)``: ``{name: L_k}``, unweighted."""
        return {t.name: t.loss(*args, **kwargs) for t in self.terms}

    def _random_weights(self, device: torch.device) -> torch.Tensor:
        gen_device = self.generator.device if self.generator is not None else torch.device("cpu")
        eps = torch.randn(len(self.terms), generator=self.generator, device=gen_device)
        return torch.softmax(eps, dim=0).to(device)

    def weigh(self, values: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The weighted contribution of each term, ``{name: L'_k}`` (sum them for the total)."""
        if not isinstance(values, Mapping):
            raise TypeError(f"values must be a mapping from term name to loss, got {type(values).__name__}")
        names = self.names
        missing = [n for n in names if n not in values]
        unknown = [n for n in values if n not in names]
        if missing or unknown:
            raise ValueError(f"values must have exactly the term names {names}; missing {missing}, "
                             f"unknown {unknown}")
        vals = {n: torch.as_tensor(values[n]) for n in names}
        if self.strategy == "random":
            if len(names) == 1:
                return {names[0]: vals[names[0]] * 1.0}
            first = vals[names[0]]
            lam = self._random_weights(first.device)
            if first.dtype.is_floating_point:
                lam = lam.to(first.dtype)
            return {n: vals[n] * lam[k] for k, n in enumerate(names)}
        out = {}
        for t in self.terms:
            v = vals[t.name]
            if t.name in self._uncertainty_names:
                u = getattr(self, self._uncertainty_names[t.name])
                scale = 0.5 if t.regression else 1.0
                out[t.name] = scale * torch.exp(-u) * v + 0.5 * u
            else:
                out[t.name] = t.weight * v
        return out

    def combine(self, values: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The total loss from precomputed unweighted term values ``{name: L_k}``."""
        parts = list(self.weigh(values).values())
        total = parts[0]
        for p in parts[1:]:
            total = total + p
        return total

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        return self.combine(self.compute(*args, **kwargs))

    def to_config(self) -> dict:
        """EasyRec-style config ``{"loss_weight_strategy": ..., "losses": [...]}``; every term's loss
        must be a ``fusedloss.config.ConfiguredLoss`` (as ``build_loss`` makes them)."""
        from fusedloss.config import ConfiguredLoss

        losses = []
        for t in self.terms:
            if not isinstance(t.loss, ConfiguredLoss):
                raise TypeError(f"to_config needs every term's loss to be a ConfiguredLoss; term "
                                f"{t.name!r} holds a {type(t.loss).__name__}")
            if t.loss.weight != 1.0:
                # Its forward already scales by that weight: no single config weight says the same.
                raise ValueError(f"to_config: term {t.name!r} holds a ConfiguredLoss with its own weight "
                                 f"{t.loss.weight:g}; put the weight on the LossTerm instead")
            cfg = t.loss.to_config()
            cfg.update(loss_name=t.name, weight=t.weight, learn_loss_weight=t.learn_weight)
            losses.append(cfg)
        return {"loss_weight_strategy": EASYREC_STRATEGY_NAMES[self.strategy], "losses": losses}

    def extra_repr(self) -> str:
        terms = ", ".join(
            f"{t.name}(weight={t.weight:g}{', learn' if t.learn_weight else ''}"
            f"{', regression' if t.regression else ''})" for t in self.terms)
        return f"strategy={self.strategy!r}, terms=[{terms}]"
