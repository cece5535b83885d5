"""From the padded input batch to the frame a segmenter's output is given in: the input size
``meta.img_shape`` or the original size ``meta.ori_shape``."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ...structures import ImageMeta


def output_shape(meta: ImageMeta, rescale: bool) -> tuple[int, int]:
    """``(h, w)`` to segment an image at: ``meta.img_shape``, or with ``rescale`` its original
    size ``meta.ori_shape`` (a ``ValueError`` naming the image when that is unknown)."""
    if not rescale:
        return tuple(meta.img_shape)
    if min(meta.ori_shape) <= 0:
        raise ValueError(f'image_id={meta.image_id}: field \'ori_shape\' is {meta.ori_shape}; '
                         'segmenting at the original size needs it')
    return tuple(meta.ori_shape)


def maps_to_output(maps: torch.Tensor, pad_size: tuple[int, int], img_shape: tuple[int, int],
                   size: tuple[int, int]) -> torch.Tensor:
    """Maps ``(C, h, w)`` over a padded batch of size ``pad_size`` (e.g. stride-4 logits) ->
    ``(C, *size)``: upsampled to the padded size, cropped to the image ``img_shape``, resized to
    ``size`` (all bilinear)."""
    out = resize_maps(maps, pad_size)[:, :img_shape[0], :img_shape[1]]
    if tuple(size) != tuple(img_shape):
        out = resize_maps(out, size)
    return out


def resize_maps(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of ``maps (C, H, W)`` to ``(C, *size)``; ``C`` may be 0."""
    if len(maps) == 0:
        return maps.new_zeros((0, *size))
    return F.interpolate(maps[None], size=tuple(size), mode='bilinear', align_corners=False)[0]
