"""Public loss functions, one module per family: validate, pick a backend, call the fused op."""

from fusedloss.functional.focal import (
    binary_cross_entropy_with_logits,
    binary_focal_loss,
    ohem_mean,
    sigmoid_focal_loss,
)
from fusedloss.functional.multilabel import (
    multilabel_categorical_crossentropy,
    multilabel_focal_loss,
    sparse_multilabel_categorical_crossentropy,
)
from fusedloss.functional.softmax import cross_entropy, softmax_focal_loss
from fusedloss.functional.pointwise import (
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
    sigmoid_l2_loss,
    smooth_l1_loss,
    squared_hinge_loss,
)
from fusedloss.functional.pairwise import (
    pairwise_focal_loss,
    pairwise_hinge_loss,
    pairwise_logistic_loss,
    pairwise_loss,
)
from fusedloss.functional.sv_softmax import sv_softmax_loss

__all__ = [
    "binary_cross_entropy_with_logits",
    "binary_focal_loss",
    "cross_entropy",
    "exponential_loss",
    "hinge_loss",
    "huber_loss",
    "kl_div",
    "l1_loss",
    "l2_loss",
    "log_cosh_loss",
    "log_loss",
    "mean_absolute_percentage_error",
    "mse_loss",
    "multilabel_categorical_crossentropy",
    "multilabel_focal_loss",
    "ohem_mean",
    "pairwise_focal_loss",
    "pairwise_hinge_loss",
    "pairwise_logistic_loss",
    "pairwise_loss",
    "sigmoid_focal_loss",
    "sigmoid_l2_loss",
    "smooth_l1_loss",
    "softmax_focal_loss",
    "sparse_multilabel_categorical_crossentropy",
    "squared_hinge_loss",
    "sv_softmax_loss",
]
