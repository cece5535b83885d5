"""Ordered pairs of an image's segments: the candidate relations ``(subject, object)``."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch


def ordered_pairs(n: int, device: torch.device | None = None) -> torch.Tensor:
    """All ``(i, j)`` with ``i != j`` of ``n`` segments, ``(n * (n - 1), 2)`` int64, row-major."""
    index = torch.arange(n, device=device)
    i, j = torch.meshgrid(index, index, indexing='ij')
    keep = i != j
    return torch.stack([i[keep], j[keep]], 1)


def unrelated_pairs(related: torch.Tensor) -> torch.Tensor:
    """The ordered pairs ``(M, 2)`` (row-major, ``i != j``) with ``related[i, j]`` False, given
    ``related (N, N)`` bool: the "no relation" pairs of an image."""
    pairs = ordered_pairs(len(related), related.device)
    return pairs[~related[pairs[:, 0], pairs[:, 1]]]


def object_offsets(num_objects: Sequence[int]) -> list[int]:
    """Index of each image's first object when the objects of all images are concatenated."""
    return np.cumsum([0, *num_objects[:-1]]).tolist()


def concat_pairs(pairs: Sequence[torch.Tensor], num_objects: Sequence[int]) -> torch.Tensor:
    """Pairs ``(R, 2)`` of several images, each ``pairs[i]`` indexing the ``num_objects[i]``
    objects of image ``i``, shifted to index the objects of all images concatenated."""
    return torch.cat([p + o for p, o in zip(pairs, object_offsets(num_objects))])
