"""Deformable DETR's input side: which backbone maps its transformer reads, their projections to
``d`` channels and the embedding of a batch (maps, padding masks and position encodings per
level). Shared by :class:`~.deformable_detr.DeformableDETRBase` and the DETR base on the
deformable transformer (:class:`~.detr_base.DETRBase`).

With ``num_feature_levels >= 3`` the transformer reads C3, C4, C5 and ``num_feature_levels - 3``
extra maps, each a 3x3 stride-2 conv of the previous (strides 8, 16, 32, 64 for 4 levels); with
``num_feature_levels == 1`` it reads C5 alone. Projections are one 1x1 conv + GroupNorm(32) per
backbone level and a 3x3/2 conv + GroupNorm(32) per extra level, the first on C5
(``input_proj.{i}.0`` / ``.1``, the reference's names).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .position_encoding import PositionEmbeddingSine


def backbone_levels(num_feature_levels: int) -> list[int]:
    """The backbone maps (0..3 = C2..C5) the transformer reads, in level order."""
    if num_feature_levels == 2:
        raise ValueError('num_feature_levels must be 1 (C5) or at least 3 (C3..C5 and extra '
                         'levels), got 2')
    return [3] if num_feature_levels == 1 else [1, 2, 3]


def deformable_position_encoding(d_model: int) -> PositionEmbeddingSine:
    """Deformable DETR's sine encoding: ``d_model / 2`` features per axis, pixel centres."""
    return PositionEmbeddingSine(d_model // 2, normalize=True, offset=-0.5)


def level_projections(channels: Sequence[int], d_model: int, num_feature_levels: int
                      ) -> nn.ModuleList:
    """``input_proj``: per level a conv + GroupNorm(32) to ``d_model`` channels, Xavier-uniform
    weights and zero biases; ``channels`` are those of the backbone levels read."""
    if d_model % 32:
        raise ValueError(f'd_model must be a multiple of 32 (input_proj uses GroupNorm(32)), '
                         f'got {d_model}')
    projections = [nn.Sequential(nn.Conv2d(c, d_model, kernel_size=1), nn.GroupNorm(32, d_model))
                   for c in channels]
    in_channels = channels[-1]
    for _ in range(num_feature_levels - len(channels)):
        projections.append(nn.Sequential(
            nn.Conv2d(in_channels, d_model, kernel_size=3, stride=2, padding=1),
            nn.GroupNorm(32, d_model)))
        in_channels = d_model
    for projection in projections:
        nn.init.xavier_uniform_(projection[0].weight, gain=1)
        nn.init.zeros_(projection[0].bias)
    return nn.ModuleList(projections)


def embed_levels(backbone: nn.Module, input_proj: nn.ModuleList, levels: Sequence[int],
                 imgs: torch.Tensor, pad_mask: torch.Tensor
                 ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor],
                            list[torch.Tensor]]:
    """Run ``backbone`` (a :class:`~.detr_base.Joiner`) on ``imgs (B, 3, H, W)`` with ``pad_mask
    (B, H, W)`` True on padding. Returns the backbone maps C2..C5 ``(B, C_i, H_i, W_i)`` and, per
    transformer level, the projected map ``(B, d, h_l, w_l)``, its padding mask ``(B, h_l, w_l)``
    and position encoding ``(B, d, h_l, w_l)``. Extra levels take their padding mask from
    ``pad_mask`` (nearest), as the reference does."""
    features, masks = backbone[0](imgs, pad_mask)
    srcs = [proj(features[i]) for proj, i in zip(input_proj, levels)]
    src_masks = [masks[i] for i in levels]
    for proj in input_proj[len(srcs):]:
        src = proj(features[-1] if len(srcs) == len(levels) else srcs[-1])
        srcs.append(src)
        src_masks.append(F.interpolate(pad_mask[None].float(), size=src.shape[-2:]).bool()[0])
    pos = [backbone[1](m).to(src.dtype) for src, m in zip(srcs, src_masks)]
    return features, srcs, src_masks, pos
