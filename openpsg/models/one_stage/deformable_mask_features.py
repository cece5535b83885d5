"""The mask branch's inputs (:class:`~.mask_head.MaskFeatures`) from a multi-scale deformable
transformer: DETR's mask head attends to one single-scale memory map, so it reads one level of the
deformable encoder's memory (the level of the backbone map DETR's transformer would read, e.g.
C5 or C4), that level's padding and projected input map, and the backbone's C4, C3, C2.

Used by every model that puts DETR's mask branch on
:class:`~.deformable_transformer.DeformableTransformer` (PSGTR and PSGFormer through
:class:`~.detr_base.DETRBase`).
"""
from __future__ import annotations

import torch

from .deformable_transformer import DeformableMemory
from .mask_head import MaskFeatures


def level_map(tokens: torch.Tensor, memory: DeformableMemory, level: int) -> torch.Tensor:
    """The tokens of one level as a map: ``tokens (B, S, C)`` (or ``(B, S)``) laid out as the
    encoder's (levels flattened in order) -> ``(B, C, h_l, w_l)`` (or ``(B, h_l, w_l)``)."""
    h, w = memory.spatial_shapes[level].tolist()
    start = int(memory.level_start_index[level])
    part = tokens[:, start:start + h * w]
    if part.dim() == 2:
        return part.reshape(-1, h, w)
    return part.transpose(1, 2).reshape(part.shape[0], part.shape[2], h, w)


def deformable_mask_features(features: list[torch.Tensor], src: torch.Tensor,
                             memory: DeformableMemory, level: int) -> MaskFeatures:
    """:class:`~.mask_head.MaskFeatures` of transformer level ``level``: its memory map ``(B, d,
    h, w)`` and padding ``(B, h, w)``, its projected input ``src (B, d, h, w)`` (``input_proj``'s
    output for that level) and the backbone maps ``features`` C2..C5 as ``[C4, C3, C2]``."""
    return MaskFeatures.at_level(level_map(memory.memory, memory, level),
                                 level_map(memory.mask_flatten, memory, level), src, features)
