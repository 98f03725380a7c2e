"""Argument checks shared by every public function; each error names the argument at fault."""

import math

import torch

FLOAT_INPUT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
TARGET_DTYPES = FLOAT_INPUT_DTYPES + (
    torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64,
)


def check_input(input) -> None:
    if not isinstance(input, torch.Tensor):
        raise TypeError(f"input must be a torch.Tensor, got {type(input).__name__}")
    if input.dtype not in FLOAT_INPUT_DTYPES:
        raise TypeError(f"input must be float16, bfloat16, float32 or float64, got {input.dtype}")


def check_same_device(name: str, input: torch.Tensor, other: torch.Tensor, input_name: str = "input") -> None:
    """ValueError naming both arguments when ``other`` is not on ``input``'s device."""
    if other.device != input.device:
        raise ValueError(f"{name} is on device {other.device} but {input_name} is on device {input.device}")


def check_binary_target(input: torch.Tensor, target) -> None:
    """target: same shape as input; float (soft labels allowed) or int/bool holding only 0 and 1."""
    if not isinstance(target, torch.Tensor):
        raise TypeError(f"target must be a torch.Tensor, got {type(target).__name__}")
    if target.dtype not in TARGET_DTYPES:
        raise TypeError(f"target must be a float, integer or bool tensor, got {target.dtype}")
    if target.shape != input.shape:
        raise ValueError(
            f"target must have the input's shape {tuple(input.shape)}, got {tuple(target.shape)}"
        )
    check_same_device("target", input, target)
    if (
        not target.dtype.is_floating_point
        and target.dtype != torch.bool
        and target.numel()
        and not torch.compiler.is_compiling()
        and bool(((target != 0) & (target != 1)).any())
    ):
        raise ValueError("target of an integer dtype must hold only 0 and 1 for a binary loss")


def as_weight(name: str, weight, input: torch.Tensor):
    """None, a Python number or a floating tensor broadcastable to input's shape."""
    if weight is None:
        return None
    if isinstance(weight, (int, float)) and not isinstance(weight, bool):
        if weight != weight or abs(weight) == math.inf:
            raise ValueError(f"{name} must be finite, got {weight}")
        # float64, so the number is exact for float64 input; the op casts it to its compute dtype
        return torch.tensor(float(weight), dtype=torch.float64, device=input.device)
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"{name} must be None, a number or a tensor, got {type(weight).__name__}")
    if not weight.dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating tensor, got {weight.dtype}")
    check_same_device(name, input, weight)
    try:
        shape = torch.broadcast_shapes(weight.shape, input.shape)
    except RuntimeError:
        shape = None
    if shape != input.shape:
        raise ValueError(
            f"{name} of shape {tuple(weight.shape)} does not broadcast to the input's shape "
            f"{tuple(input.shape)}"
        )
    return weight


def check_number(name: str, value, *, lo=None, hi=None, lo_open=False, hi_open=False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    value = float(value)
    bad = value != value or abs(value) == math.inf  # not math.isfinite: Dynamo cannot trace it
    if lo is not None:
        bad |= value <= lo if lo_open else value < lo
    if hi is not None:
        bad |= value >= hi if hi_open else value > hi
    if bad:
        left = "(" if lo_open else "["
        right = ")" if hi_open else "]"
        lo_s = "-inf" if lo is None else lo
        hi_s = "inf" if hi is None else hi
        raise ValueError(f"{name} must be in {left}{lo_s}, {hi_s}{right}, got {value}")
    return value


def check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
