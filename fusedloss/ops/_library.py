"""Every ``fusedloss::`` schema, defined once in Python.

The schemas exist even where the C++ extension could not be built, so the Triton path and the fake
(meta) kernels register against the same names. C++ files only carry ``TORCH_LIBRARY_IMPL``.
"""

import torch

LIB = torch.library.Library("fusedloss", "DEF")

# Binary sigmoid family (BCE-with-logits, torchvision sigmoid focal, EasyRec binary focal).
#   mode: 0 BCE, 1 torchvision focal, 2 EasyRec focal (probability clipped in the modulating factor)
#   reduction: 0 none, 1 sum, 2 mean, 3 SBNZ (sum / number of nonzero w * a * m)
#   weight_layout / pos_weight_layout: [div, mod]; element i of the flattened input reads
#     weight[(i // div) % mod] from a contiguous weight of numel mod.
# Returns (loss, grad, scale): loss has the input's shape for reduction 0 and is 0-d otherwise;
# grad is d(sum of unreduced loss)/d input, unscaled (empty when compute_grad is false); scale is the
# 0-d factor (1/N, 1, 1/N_nz) that backward applies to grad * grad_output.
BINARY_FOCAL_SCHEMA = (
    "(Tensor input, Tensor target, Tensor? weight, Tensor? pos_weight, int mode, float alpha, "
    "float gamma, float label_smoothing, int reduction, int[] weight_layout, "
    "int[] pos_weight_layout, bool compute_grad) -> (Tensor, Tensor, Tensor)"
)
LIB.define("binary_focal_fwd" + BINARY_FOCAL_SCHEMA)
LIB.define("binary_focal_fwd_triton" + BINARY_FOCAL_SCHEMA)
