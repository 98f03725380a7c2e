"""fusedloss: fused forward+backward loss kernels (Triton, CUDA, C++) with a PyTorch reference.

No device is queried at import; the C++ extension is optional (its absence is reported by
``available_backends`` and by any call that asks for the ``cpu`` or ``cuda`` backend).
"""

from fusedloss import _extension  # noqa: F401  (defines the schemas, loads fusedloss._C)
from fusedloss import nn, reference
from fusedloss.functional import (
    binary_cross_entropy_with_logits,
    binary_focal_loss,
    circle_loss,
    contrastive_loss,
    cosine_embedding_loss,
    cosine_similarity_loss,
    cross_entropy,
    exponential_loss,
    f1_reweighted_loss,
    hinge_loss,
    huber_loss,
    jrc_loss,
    kl_div,
    l1_loss,
    l2_loss,
    listwise_distill_loss,
    listwise_rank_loss,
    log_cosh_loss,
    log_loss,
    margin_ranking_loss,
    mean_absolute_percentage_error,
    mse_loss,
    multi_similarity_loss,
    multilabel_categorical_crossentropy,
    multilabel_focal_loss,
    order_calibrate_loss,
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
    triplet_margin_loss,
    ziln_loss,
)
from fusedloss.ops import focal as _focal_ops  # noqa: F401  (registers fakes, autograd, Triton)
from fusedloss.ops import metric as _metric_ops  # noqa: F401
from fusedloss.ops import multilabel as _multilabel_ops  # noqa: F401
from fusedloss.ops import pairwise as _pairwise_ops  # noqa: F401
from fusedloss.ops import pointwise as _pointwise_ops  # noqa: F401
from fusedloss.ops import rowwise as _rowwise_ops  # noqa: F401
from fusedloss.ops import session_softmax as _session_softmax_ops  # noqa: F401
from fusedloss.ops import softmax as _softmax_ops  # noqa: F401
from fusedloss.ops import sv_softmax as _sv_softmax_ops  # noqa: F401
from fusedloss.ops import ziln as _ziln_ops  # noqa: F401
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
    "circle_loss",
    "contrastive_loss",
    "cosine_embedding_loss",
    "cosine_similarity_loss",
    "cross_entropy",
    "exponential_loss",
    "f1_reweighted_loss",
    "hinge_loss",
    "huber_loss",
    "jrc_loss",
    "kl_div",
    "l1_l2_regularization",
    "l1_loss",
    "l1_regularization",
    "l2_loss",
    "l2_regularization",
    "listwise_distill_loss",
    "listwise_rank_loss",
    "log_cosh_loss",
    "log_loss",
    "margin_ranking_loss",
    "mean_absolute_percentage_error",
    "mse_loss",
    "multi_similarity_loss",
    "multilabel_categorical_crossentropy",
    "multilabel_focal_loss",
    "nn",
    "order_calibrate_loss",
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
    "triplet_margin_loss",
    "ziln_loss",
]
__version__ = "0.1.0"
