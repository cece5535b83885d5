"""Classification loss of set prediction, where unmatched queries learn a background class."""
from __future__ import annotations

import torch
import torch.nn.functional as F


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
