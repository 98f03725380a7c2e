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
from .session_softmax import (
    jrc_loss_parts_reference,
    jrc_loss_reference,
    listwise_distill_loss_reference,
    listwise_rank_loss_reference,
)
from .rowwise import (
    contrastive_loss_reference,
    cosine_embedding_loss_reference,
    cosine_similarity_loss_reference,
    margin_ranking_loss_reference,
    order_calibrate_loss_reference,
    triplet_margin_loss_reference,
)
from .f1_reweight import f1_reweighted_loss_reference
from .ziln import ziln_loss_reference
from .metric import (
    circle_loss_reference,
    multi_similarity_loss_easyrec_reference,
    multi_similarity_loss_reference,
)
from .pairwise import (
    pairwise_focal_loss_reference,
    pairwise_hinge_loss_reference,
    pairwise_logistic_loss_reference,
    pairwise_loss_reference,
)

__all__ = [
    "binary_cross_entropy_with_logits_reference",
    "binary_focal_loss_reference",
    "circle_loss_reference",
    "contrastive_loss_reference",
    "cosine_embedding_loss_reference",
    "cosine_similarity_loss_reference",
    "cross_entropy_reference",
    "f1_reweighted_loss_reference",
    "jrc_loss_parts_reference",
    "jrc_loss_reference",
    "listwise_distill_loss_reference",
    "listwise_rank_loss_reference",
    "margin_ranking_loss_reference",
    "multi_similarity_loss_easyrec_reference",
    "multi_similarity_loss_reference",
    "multilabel_categorical_crossentropy_bert4keras",
    "multilabel_categorical_crossentropy_reference",
    "multilabel_focal_loss_reference",
    "ohem_mean_reference",
    "order_calibrate_loss_reference",
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
    "triplet_margin_loss_reference",
    "ziln_loss_reference",
]
