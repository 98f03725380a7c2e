"""EasyRec's ZILN_LOSS (zero-inflated lognormal, for lifetime-value regression; spec 7.1)."""

import math

import torch

from fusedloss import reference
from fusedloss._validate import FLOAT_INPUT_DTYPES, check_number, check_same_device
from fusedloss.ops import _backends
from fusedloss.ops import ziln as _ops


def ziln_loss(logits, labels, max_sigma=5.0, mu_reg=0.01, sigma_reg=0.01, class_weight=1.0,
              reg_weight=1.0, *, backend="auto"):
    """Zero-inflated lognormal loss (Wang et al. 2019, as EasyRec's ``zero_inflated_lognormal_loss``).

    ``logits`` [B, 3] = (l_p, mu, l_s) per row; ``labels`` [B] or [B, 1], the value (e.g. LTV);
    ``z = [y > 0]``, ``P = sum z``, ``sigma = clip(softplus(l_s), sqrt(1e-7), max_sigma)``:

        L = class_weight mean(BCE(l_p, z)) + reg_weight (-sum_z logLogNormal(y; mu, sigma)) / (P + 1e-8)
            + mu_reg mean(mu^2) + sigma_reg mean(l_s^2)

    The sigma penalty is on the raw ``l_s``; labels <= 0 are zeros (their lognormal term is masked).
    Defaults: max_sigma 5, mu_reg 0.01, sigma_reg 0.01, class_weight 1, reg_weight 1. EasyRec
    ignores tensor sample weights for this loss, so there is no ``weight`` (``build_loss`` multiplies
    by a number weight). The predicted value is ``sigmoid(l_p) exp(mu + sigma^2 / 2)``.

    Returns a 0-d loss in the logits' dtype (NaN for an empty batch: TF's means of nothing). Only
    the logits are differentiated. One fused pass computes the loss and d loss / d logits.
    """
    if not isinstance(logits, torch.Tensor) or logits.dtype not in FLOAT_INPUT_DTYPES:
        raise TypeError("logits must be a float16, bfloat16, float32 or float64 tensor, got "
                        + (str(logits.dtype) if isinstance(logits, torch.Tensor) else type(logits).__name__))
    if logits.dim() != 2 or logits.shape[1] != 3:
        raise ValueError(f"logits must be [B, 3] (l_p, mu, l_s), got shape {tuple(logits.shape)}")
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"labels must be a torch.Tensor, got {type(labels).__name__}")
    b = logits.shape[0]
    if labels.shape not in ((b,), (b, 1)):
        raise ValueError(f"labels must be [{b}] or [{b}, 1] (one value per row of logits), got shape "
                         f"{tuple(labels.shape)}")
    if labels.dtype.is_complex or not (labels.dtype.is_floating_point or labels.dtype in (
            torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8, torch.bool)):
        raise TypeError(f"labels must be a real (float, int or bool) tensor, got {labels.dtype}")
    check_same_device("labels", logits, labels, "logits")
    max_sigma = check_number("max_sigma", max_sigma, lo=math.sqrt(1e-7), lo_open=True)
    mu_reg = check_number("mu_reg", mu_reg)
    sigma_reg = check_number("sigma_reg", sigma_reg)
    class_weight = check_number("class_weight", class_weight)
    reg_weight = check_number("reg_weight", reg_weight)
    name = _backends.choose(backend, logits, "ziln_fwd", labels)
    if name == "reference":
        return reference.ziln_loss_reference(logits, labels, max_sigma, class_weight, reg_weight,
                                             mu_reg, sigma_reg)
    return _ops.run_ziln(name, logits, labels, max_sigma=max_sigma, class_weight=class_weight,
                         reg_weight=reg_weight, mu_reg=mu_reg, sigma_reg=sigma_reg)
