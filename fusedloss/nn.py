"""``torch.nn.Module`` wrappers of ``fusedloss.functional``."""

import torch

from fusedloss import functional as F


class SigmoidFocalLoss(torch.nn.Module):
    """torchvision's sigmoid focal loss: ``a_t (1 - p_t)^gamma ce(x, t)`` (see ``F.sigmoid_focal_loss``).

    Shape: input (*), target (*) like input; output (*) for ``reduction="none"`` (default), else ().

    Example:
        >>> loss = SigmoidFocalLoss(alpha=0.25, gamma=2.0, reduction="mean")
        >>> loss(torch.randn(8, 3), torch.randint(0, 2, (8, 3)).float())
    """

    def __init__(self, alpha=0.25, gamma=2.0, reduction="none", backend="auto"):
        super().__init__()
        self.alpha, self.gamma, self.reduction, self.backend = alpha, gamma, reduction, backend

    def forward(self, input, target):
        return F.sigmoid_focal_loss(input, target, self.alpha, self.gamma, self.reduction,
                                    backend=self.backend)


class BinaryFocalLoss(torch.nn.Module):
    """EasyRec BINARY_FOCAL_LOSS: ``sum(v ce) / #{v != 0}`` or OHEM (see ``F.binary_focal_loss``).

    Shape: input (*) ([B] in EasyRec), target (*), weight broadcastable to input; output ().

    Example:
        >>> loss = BinaryFocalLoss(gamma=2.0, alpha=0.25, ohem_ratio=0.5)
        >>> loss(torch.randn(64), torch.randint(0, 2, (64,)).float())
    """

    def __init__(self, gamma=2.0, alpha=None, label_smoothing=0.0, ohem_ratio=1.0, backend="auto"):
        super().__init__()
        self.gamma, self.alpha = gamma, alpha
        self.label_smoothing, self.ohem_ratio, self.backend = label_smoothing, ohem_ratio, backend

    def forward(self, input, target, weight=None):
        return F.binary_focal_loss(input, target, self.gamma, self.alpha, self.label_smoothing,
                                   weight, self.ohem_ratio, backend=self.backend)


class BCEWithLogitsLoss(torch.nn.Module):
    """``torch.nn.BCEWithLogitsLoss`` with label smoothing (see ``F.binary_cross_entropy_with_logits``).

    Shape: input (*), target (*); output (*) for ``reduction="none"``, else ().

    Example:
        >>> loss = BCEWithLogitsLoss(pos_weight=torch.full((3,), 2.0))
        >>> loss(torch.randn(8, 3), torch.rand(8, 3))
    """

    def __init__(self, weight=None, reduction="mean", pos_weight=None, label_smoothing=0.0,
                 backend="auto"):
        super().__init__()
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)
        self.reduction, self.label_smoothing, self.backend = reduction, label_smoothing, backend

    def forward(self, input, target):
        return F.binary_cross_entropy_with_logits(input, target, self.weight, self.pos_weight,
                                                  self.reduction, self.label_smoothing,
                                                  backend=self.backend)
