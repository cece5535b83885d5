"""Classification losses of set prediction: softmax with a background class (DETR), or
sigmoid focal without one (Deformable DETR), where unmatched queries learn all-zero targets."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .mask import sigmoid_focal_loss


def no_object_cross_entropy(logits: torch.Tensor, targets: torch.Tensor,
                            no_object_weight: float) -> torch.Tensor:
    """Weighted mean cross-entropy in which the last class (DETR's "no object", or "no relation")
    has class weight ``no_object_weight`` (DETR's ``eos_coef``) and every other class weight 1.

    ``logits (..., C + 1)``, ``targets (...)`` int64 in ``0..C``. Returns
    ``sum_i w(t_i) * CE_i / sum_i w(t_i)``, a scalar.
    """
    num_classes = logits.shape[-1]
    weight = logits.new_ones(num_classes)
    weight[-1] = no_object_weight
    return F.cross_entropy(logits.reshape(-1, num_classes), targets.reshape(-1), weight=weight)


def sigmoid_focal_classification(logits: torch.Tensor, labels: torch.Tensor, num_boxes: float,
                                 alpha: float = 0.25, gamma: float = 2.0) -> torch.Tensor:
    """Deformable DETR's classification loss: sigmoid focal loss of ``logits (B, Q, C)`` against
    one-hot targets (``labels (B, Q)`` int64, ``C`` = no object: all targets 0), averaged over the
    queries, summed, divided by ``num_boxes`` and multiplied by ``Q`` -- i.e. the sum over every
    query and class divided by ``num_boxes`` (the reference's normalisation)."""
    onehot = F.one_hot(labels, logits.shape[-1] + 1)[..., :-1].to(logits.dtype)
    return sigmoid_focal_loss(logits, onehot, num_boxes, alpha, gamma) * logits.shape[1]
