"""Mapping predictions from a model's input frame back to the original image.

The pipeline resizes the original image (``meta.ori_shape``) by ``meta.scale_factor = (w_scale,
h_scale)`` to ``meta.img_shape``, may mirror it (``meta.flip``) and pads it at the bottom and right
into the batch. Models predict in that padded input frame; a
:class:`~openpsg.structures.Prediction` lives in the original one. Every model maps its outputs
back with the functions here, which undo the padding (crop to ``img_shape``), the flip and the
resize, and say which interpolation they use:

* boxes: exact arithmetic (:func:`boxes_to_original`, :func:`normalized_boxes_to_original`);
* discrete maps (masks, id maps): nearest neighbour, since an interpolated label means nothing
  (:func:`nearest_to_original`);
* mask and class logits, three ways, each the published method's own:
  :func:`logits_to_original` (bilinear to the input size, then bilinear to the original size: DETR's
  panoptic post-processing and mmdet's Panoptic FPN), :func:`sample_logits_at_original` (one
  bilinear sampling at the original pixel centres, no full-size intermediate map: PSGTR/PSGFormer's
  ``single_mpo`` output, which resizes up to 200 candidates) and :func:`openpsg_logits_to_original`
  (nearest neighbour from the stride-4 map: OpenPSG's one-stage post-processing, reproduced by the
  ``legacy`` and ``openpsg_panoptic`` outputs).

All functions take and return torch tensors (on the input's device); shapes ``(..., H, W)`` are
maps, ``(N, 4)`` boxes.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torchvision.ops import box_convert, roi_align

from .scene_graph import ImageMeta


def original_shape(meta: ImageMeta) -> tuple[int, int]:
    """``meta.ori_shape``; a ``ValueError`` naming the image and the field when it is unset."""
    if min(meta.ori_shape) <= 0:
        raise ValueError(f"image_id={meta.image_id}: field 'ori_shape' is {meta.ori_shape}; "
                         'mapping back to the original image needs it')
    return tuple(meta.ori_shape)


def unflip(maps: torch.Tensor, meta: ImageMeta) -> torch.Tensor:
    """``maps (..., W)`` mirrored along the last axis when ``meta.flip``, else unchanged."""
    return maps.flip(-1) if meta.flip else maps


def _mirror_xyxy(boxes: torch.Tensor, width: float) -> torch.Tensor:
    """xyxy boxes mirrored in an image ``width`` wide: ``x1' = width - x2``, ``x2' = width - x1``."""
    return torch.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], 1)


def boxes_to_original(boxes: torch.Tensor, meta: ImageMeta) -> torch.Tensor:
    """``(N, 4)`` xyxy boxes in input pixels -> float32 xyxy in original pixels: the flip undone
    in the input width ``img_shape[1]``, then divided by the scale factor."""
    boxes = boxes.float()
    if meta.flip:
        boxes = _mirror_xyxy(boxes, float(meta.img_shape[1]))
    w_scale, h_scale = meta.scale_factor
    return boxes / boxes.new_tensor([w_scale, h_scale, w_scale, h_scale])


def normalized_boxes_to_original(boxes: torch.Tensor, meta: ImageMeta) -> torch.Tensor:
    """``(N, 4)`` cxcywh boxes normalised by ``img_shape`` (what DETR regresses) -> xyxy in original
    pixels: normalised coordinates are the same in both frames, so they are scaled by
    ``ori_shape``; the flip is undone in the original width."""
    h, w = original_shape(meta)
    xyxy = box_convert(boxes, 'cxcywh', 'xyxy') * boxes.new_tensor([w, h, w, h])
    return _mirror_xyxy(xyxy, w) if meta.flip else xyxy


def nearest_to_original(maps: torch.Tensor, meta: ImageMeta) -> torch.Tensor:
    """Discrete maps ``(..., H, W)`` at the (padded) input size - bool masks or integer id maps -
    -> ``(..., H0, W0)`` at ``ori_shape``, same dtype: cropped to ``img_shape``, flip undone,
    nearest-neighbour resize."""
    h, w = meta.img_shape
    out = unflip(maps[..., :h, :w], meta)
    size = original_shape(meta)
    if tuple(out.shape[-2:]) == size:
        return out
    lead = out.shape[:-2]
    resized = F.interpolate(out.reshape(1, -1, h, w).float(), size=size, mode='nearest')
    return resized.reshape(*lead, *size).to(maps.dtype)


def upsample_stride(logits: torch.Tensor, stride: int, size: tuple[int, int]) -> torch.Tensor:
    """Logits ``(K, h, w)`` of a map at ``stride`` -> ``(K, H, W)``: bilinear x ``stride`` (cell
    ``i`` covers input pixels ``stride * i .. stride * i + stride - 1``), cropped to ``size``;
    ``K`` may be 0."""
    if len(logits) == 0:
        return logits.new_zeros((0, *size))
    up = F.interpolate(logits[:, None], scale_factor=stride, mode='bilinear', align_corners=False)
    return up[:, 0, :size[0], :size[1]]


def logits_to_original(logits: torch.Tensor, meta: ImageMeta, stride: int = 4) -> torch.Tensor:
    """Logits ``(K, h, w)`` at ``stride`` of the padded batch image -> float32 ``(K, H0, W0)``:
    bilinear to the input size (:func:`upsample_stride`, cropped to ``img_shape``), bilinear again
    to ``ori_shape``, flip undone - DETR's panoptic post-processing and mmdet's Panoptic FPN."""
    up = upsample_stride(logits.float(), stride, meta.img_shape)
    size = original_shape(meta)
    if len(up) == 0:
        return up.new_zeros((0, *size))
    if tuple(up.shape[-2:]) != size:
        up = F.interpolate(up[None], size=size, mode='bilinear', align_corners=False)[0]
    return unflip(up, meta)


def sample_logits_at_original(logits: torch.Tensor, meta: ImageMeta, stride: int = 4
                              ) -> torch.Tensor:
    """Logits ``(K, h, w)`` at ``stride`` of the padded batch image -> float32 ``(K, H0, W0)``: the
    ``img_shape / stride`` region of the map sampled bilinearly at the centres of the original
    pixels (one interpolation, close to :func:`logits_to_original` without building the
    input-size map), flip undone."""
    out_h, out_w = original_shape(meta)
    if len(logits) == 0:
        return logits.new_zeros((0, out_h, out_w), dtype=torch.float32)
    h, w = meta.img_shape
    box = logits.new_tensor([[0.0, 0.0, 0.0, w / stride, h / stride]], dtype=torch.float32)
    out = roi_align(logits[None].float(), box, (out_h, out_w), spatial_scale=1.0, sampling_ratio=1,
                    aligned=True)[0]
    return unflip(out, meta)


def openpsg_logits_to_original(logits: torch.Tensor, meta: ImageMeta, stride: int = 4
                               ) -> torch.Tensor:
    """OpenPSG's one-stage mask resize: logits ``(K, h, w)`` at ``stride`` -> float32
    ``(K, H0, W0)``.

    The cells covering the image (``ceil(img_shape / stride)``: the whole map of an unpadded image,
    OpenPSG's test setting of one image per batch without padding) are nearest-resized
    (``F.interpolate``'s ``'nearest'``: cell ``floor(i * h / H0)``) to ``round(img_shape /
    scale_factor)``, which must be ``ori_shape``; the flip is undone. Raises ``ValueError`` naming
    the image and the fields when the metadata disagree.
    """
    h, w = meta.img_shape
    w_scale, h_scale = meta.scale_factor
    size = (round(h / h_scale), round(w / w_scale))
    if size != original_shape(meta):
        raise ValueError(f'image_id={meta.image_id}: round(img_shape / scale_factor) = {size} '
                         f"(img_shape {meta.img_shape}, scale_factor {meta.scale_factor}) is not "
                         f"the field 'ori_shape' {meta.ori_shape}")
    cells = logits[:, :math.ceil(h / stride), :math.ceil(w / stride)].float()
    if len(cells) == 0:
        return cells.new_zeros((0, *size))
    return unflip(F.interpolate(cells[:, None], size=size, mode='nearest')[:, 0], meta)
