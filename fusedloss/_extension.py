"""Loads the C++ extension ``fusedloss._C`` once and remembers why it failed, if it did."""

import importlib

import fusedloss.ops._library  # noqa: F401  (schemas must exist before the C++ impls register)

try:
    importlib.import_module("fusedloss._C")

    EXTENSION_ERROR = None
except ImportError as exc:  # the package still works with the reference and Triton backends
    EXTENSION_ERROR = f"the C++ extension fusedloss._C could not be loaded ({exc})"
