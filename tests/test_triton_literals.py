"""A static check of the Triton kernel sources, which needs no GPU and no interpreter.

Triton turns a bare Python float passed to a function such as ``tl.maximum(p, 1e-7)`` into an fp32
constant, so an fp64 kernel gets the fp32 rounding of the value (arithmetic operators, ``p * 0.1``,
take the other operand's type and are exact). The interpreter computes such calls in float64, so
only a compiled fp64 kernel shows the error, as a ~1e-8 relative difference from the reference.
This test fails when a float literal, or a module-level ``tl.constexpr`` float, that fp32 cannot
hold exactly is an argument of a ``tl.*`` call; write ``tl.full([], value, dtype)`` instead.
"""

import ast
import pkgutil
from pathlib import Path

import numpy as np
import pytest

import fusedloss.triton_kernels as tk

# tl functions whose float arguments become tensors of their own dtype (tl.full takes a dtype)
_EXEMPT = {"full", "constexpr", "static_assert", "device_assert", "static_print", "device_print"}


def _float_constants(tree: ast.Module) -> dict[str, float]:
    """Module-level NAME = float or NAME = tl.constexpr(float)."""
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            v = node.value
            if isinstance(v, ast.Call) and v.args and getattr(v.func, "attr", "") == "constexpr":
                v = v.args[0]
            try:
                val = ast.literal_eval(v)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                continue
            if isinstance(val, float):
                out[node.targets[0].id] = val
    return out


_OPS = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
        ast.Div: lambda a, b: a / b}


def _literal(node: ast.AST, consts: dict[str, float]):
    """The float value of a constant expression (literals, module constants, + - * /), else None;
    Triton folds such an expression in Python before it makes the fp32 constant."""
    if isinstance(node, ast.Name):
        return consts.get(node.id)
    if isinstance(node, ast.Constant):
        return float(node.value) if isinstance(node.value, (int, float)) and not isinstance(node.value, bool) else None
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _literal(node.operand, consts)
        return None if v is None else (-v if isinstance(node.op, ast.USub) else v)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        a, b = _literal(node.left, consts), _literal(node.right, consts)
        if a is None or b is None:
            return None
        try:
            return float(_OPS[type(node.op)](a, b))
        except ZeroDivisionError:
            return None
    return None


def inexact_float_arguments(source: str) -> list[str]:
    tree = ast.parse(source)
    consts = _float_constants(tree)
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "tl"):
            continue
        if node.func.attr in _EXEMPT:
            continue
        for arg in list(node.args) + [k.value for k in node.keywords]:
            val = _literal(arg, consts)
            if val is not None and np.isfinite(val) and float(np.float32(val)) != val:
                found.append(f"line {node.lineno}: tl.{node.func.attr}(... {ast.unparse(arg)} ...)")
    return found


MODULES = [m.name for m in pkgutil.iter_modules(tk.__path__)]


@pytest.mark.parametrize("module", MODULES)
def test_no_fp32_rounded_float_arguments(module):
    source = (Path(tk.__path__[0]) / f"{module}.py").read_text()
    assert not inexact_float_arguments(source), inexact_float_arguments(source)


def test_the_check_can_fail():
    src = "\n".join([
        "LO = tl.constexpr(1e-12)",
        "def k(p):",
        "    a = tl.maximum(p, 1e-7)",          # caught
        "    b = tl.where(p > 0, p, LO)",       # caught: a module constexpr
        "    c = tl.minimum(p, 1.0 - 1e-7)",    # caught: folded in Python, then rounded
        "    d = tl.minimum(p, 0.5)",           # exact in fp32
        "    e = p * 0.1",                      # an operator: exact
        "    f = tl.full([], 1e-7, p.dtype)",   # the fix
    ])
    found = inexact_float_arguments(src)
    assert [f.split(":")[0] for f in found] == ["line 3", "line 4", "line 5"], found


def test_the_check_finds_the_old_focal_clip():
    # the form fixed in focal.py after the first GPU run (fp64 binary_focal off by ~1e-8)
    src = "def k(p, pm):\n    pq = tl.minimum(tl.maximum(p, 1e-7), 1.0 - 1e-7)\n"
    assert len(inexact_float_arguments(src)) == 2
