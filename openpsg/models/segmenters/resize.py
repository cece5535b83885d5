"""Bilinear resizing of stacks of maps (masks, probabilities) for target building and inference
inside segmenters; mapping outputs back to the original image is
:mod:`openpsg.structures.to_original`'s job."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def resize_maps(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of ``maps (C, H, W)`` to ``(C, *size)``; ``C`` may be 0."""
    if len(maps) == 0:
        return maps.new_zeros((0, *size))
    return F.interpolate(maps[None], size=tuple(size), mode='bilinear', align_corners=False)[0]
