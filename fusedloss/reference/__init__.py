"""Pure-PyTorch references: the truth every backend is tested against (run them in float64)."""

from .focal import (
    binary_cross_entropy_with_logits_reference,
    binary_focal_loss_reference,
    ohem_mean_reference,
    sigmoid_focal_loss_reference,
)
from .multilabel import (
    multilabel_categorical_crossentropy_bert4keras,
    multilabel_categorical_crossentropy_reference,
    multilabel_focal_loss_reference,
    sparse_multilabel_categorical_crossentropy_bert4keras,
    sparse_multilabel_categorical_crossentropy_reference,
)
from .softmax import cross_entropy_reference, softmax_focal_loss_reference
from .pointwise import pointwise_loss_reference
from .sv_softmax import sv_softmax_loss_reference
from .pairwise import (
    pairwise_focal_loss_reference,
    pairwise_hinge_loss_reference,
    pairwise_logistic_loss_reference,
    pairwise_loss_reference,
)

__all__ = [
    "binary_cross_entropy_with_logits_reference",
    "binary_focal_loss_reference",
    "cross_entropy_reference",
    "multilabel_categorical_crossentropy_bert4keras",
    "multilabel_categorical_crossentropy_reference",
    "multilabel_focal_loss_reference",
    "ohem_mean_reference",
    "pairwise_focal_loss_reference",
    "pairwise_hinge_loss_reference",
    "pairwise_logistic_loss_reference",
    "pairwise_loss_reference",
    "pointwise_loss_reference",
    "sigmoid_focal_loss_reference",
    "softmax_focal_loss_reference",
    "sparse_multilabel_categorical_crossentropy_bert4keras",
    "sparse_multilabel_categorical_crossentropy_reference",
    "sv_softmax_loss_reference",
]
