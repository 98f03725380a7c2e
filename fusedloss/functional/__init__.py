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
from fusedloss.functional.session_softmax import jrc_loss, listwise_distill_loss, listwise_rank_loss
from fusedloss.functional.f1_reweight import f1_reweighted_loss
from fusedloss.functional.ziln import ziln_loss
from fusedloss.functional.metric import circle_loss, multi_similarity_loss
from fusedloss.functional.rowwise import (
    contrastive_loss,
    cosine_embedding_loss,
    cosine_similarity_loss,
    margin_ranking_loss,
    order_calibrate_loss,
    triplet_margin_loss,
)

__all__ = [
    "binary_cross_entropy_with_logits",
    "binary_focal_loss",
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
    "l1_loss",
    "l2_loss",
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
    "ohem_mean",
    "order_calibrate_loss",
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
    "triplet_margin_loss",
    "ziln_loss",
]
