"""fusedloss: fused forward+backward loss kernels (Triton, CUDA, C++) with a PyTorch reference.

No device is queried at import; the C++ extension is optional (its absence is reported by
``available_backends`` and by any call that asks for the ``cpu`` or ``cuda`` backend).
"""

from fusedloss import _extension  # noqa: F401  (defines the schemas, loads fusedloss._C)
from fusedloss import nn, reference
from fusedloss.functional import (
    binary_cross_entropy_with_logits,
    binary_focal_loss,
    cross_entropy,
    exponential_loss,
    hinge_loss,
    huber_loss,
    kl_div,
    l1_loss,
    l2_loss,
    log_cosh_loss,
    log_loss,
    mean_absolute_percentage_error,
    mse_loss,
    multilabel_categorical_crossentropy,
    multilabel_focal_loss,
    pairwise_focal_loss,
    pairwise_hinge_loss,
    pairwise_logistic_loss,
    pairwise_loss,
    sigmoid_focal_loss,
    sigmoid_l2_loss,
    smooth_l1_loss,
    softmax_focal_loss,
    sparse_multilabel_categorical_crossentropy,
    squared_hinge_loss,
    sv_softmax_loss,
)
from fusedloss.ops import focal as _focal_ops  # noqa: F401  (registers fakes, autograd, Triton)
from fusedloss.ops import multilabel as _multilabel_ops  # noqa: F401
from fusedloss.ops import pairwise as _pairwise_ops  # noqa: F401
from fusedloss.ops import pointwise as _pointwise_ops  # noqa: F401
from fusedloss.ops import softmax as _softmax_ops  # noqa: F401
from fusedloss.ops import sv_softmax as _sv_softmax_ops  # noqa: F401
from fusedloss.config import build_loss
from fusedloss.multiloss import LossTerm, MultiLoss
from fusedloss.ops._backends import available_backends
from fusedloss.regularization import l1_l2_regularization, l1_regularization, l2_regularization

__all__ = [
    "LossTerm",
    "MultiLoss",
    "available_backends",
    "binary_cross_entropy_with_logits",
    "binary_focal_loss",
    "build_loss",
    "cross_entropy",
    "exponential_loss",
    "hinge_loss",
    "huber_loss",
    "kl_div",
    "l1_l2_regularization",
    "l1_loss",
    "l1_regularization",
    "l2_loss",
    "l2_regularization",
    "log_cosh_loss",
    "log_loss",
    "mean_absolute_percentage_error",
    "mse_loss",
    "multilabel_categorical_crossentropy",
    "multilabel_focal_loss",
    "nn",
    "pairwise_focal_loss",
    "pairwise_hinge_loss",
    "pairwise_logistic_loss",
    "pairwise_loss",
    "reference",
    "sigmoid_focal_loss",
    "sigmoid_l2_loss",
    "smooth_l1_loss",
    "softmax_focal_loss",
    "sparse_multilabel_categorical_crossentropy",
    "squared_hinge_loss",
    "sv_softmax_loss",
]
__version__ = "0.1.0"
