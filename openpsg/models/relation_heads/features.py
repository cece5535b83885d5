"""RoI features of the relation heads: multi-level RoIAlign of object boxes and of the union box of
each pair, the union's two-rectangle spatial branch and the optional mask weighting."""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import roi_align

from ...structures.pairs import concat_pairs
from .contracts import ObjectSet


def union_boxes(subj: torch.Tensor, obj: torch.Tensor) -> torch.Tensor:
    """Smallest boxes ``(R, 4)`` holding both ``subj (R, 4)`` and ``obj (R, 4)`` (xyxy)."""
    return torch.cat([torch.minimum(subj[:, :2], obj[:, :2]),
                      torch.maximum(subj[:, 2:], obj[:, 2:])], 1)


def roi_levels(boxes: torch.Tensor, strides: Sequence[int], finest_scale: float = 56.0
               ) -> torch.Tensor:
    """Feature level of each box ``(K, 4)`` among levels of ``strides``: the box wants stride
    ``strides[0] * 2 ** floor(log2(sqrt(w h) / finest_scale))`` and gets the level whose stride is
    nearest to it in log2 (ties to the finer level). With strides doubling from level to level
    this is mmdet's rule ``clamp(floor(log2(sqrt(w h) / finest_scale)), 0, L - 1)``: on strides
    4..32, boxes under 112 px go to the stride-4 level."""
    wh = (boxes[:, 2:] - boxes[:, :2]).clamp(min=0)
    scale = torch.sqrt(wh[:, 0] * wh[:, 1])
    wanted = math.log2(strides[0]) + torch.floor(torch.log2(scale / finest_scale + 1e-6))
    log_strides = torch.log2(torch.as_tensor(strides, dtype=wanted.dtype, device=boxes.device))
    return (wanted[:, None] - log_strides[None]).abs().argmin(1)


def multilevel_roi_align(feats: Sequence[torch.Tensor], rois: torch.Tensor, output_size: int,
                         strides: Sequence[int], finest_scale: float = 56.0,
                         sampling_ratio: int = 2) -> torch.Tensor:
    """RoIAlign ``(K, C, S, S)`` of ``rois (K, 5)`` (batch index, xyxy in input pixels), each read
    from the FPN level :func:`roi_levels` picks; ``feats[i]`` has stride ``strides[i]``. Sampling
    runs in float32 (box coordinates need it); the output has the features' dtype."""
    out = feats[0].new_zeros((len(rois), feats[0].shape[1], output_size, output_size))
    if len(rois) == 0:
        return out
    levels = roi_levels(rois[:, 1:], strides, finest_scale)
    for level, (feat, stride) in enumerate(zip(feats, strides)):
        idx = torch.nonzero(levels == level).squeeze(1)
        if len(idx):
            out[idx] = roi_align(feat.float(), rois[idx].float(), output_size,
                                 spatial_scale=1.0 / stride, sampling_ratio=sampling_ratio,
                                 aligned=True).to(out.dtype)
    return out


def pooled_masks(masks: torch.Tensor, mask_index: torch.Tensor, boxes: torch.Tensor,
                 output_size: int) -> torch.Tensor:
    """``(K, 1, S, S)`` RoIAlign of mask ``mask_index[k]`` of ``masks (M, H, W)`` over ``boxes[k]``
    (input pixels): the fraction of each RoI bin covered by the mask."""
    rois = torch.cat([mask_index[:, None].to(boxes.dtype), boxes], 1)
    return roi_align(masks[:, None].to(boxes.dtype), rois, output_size, sampling_ratio=2,
                     aligned=True)


def two_rect_maps(subj: torch.Tensor, obj: torch.Tensor, img_sizes: torch.Tensor, size: int = 27,
                  rect_coord_bug: bool = False) -> torch.Tensor:
    """Binary maps ``(R, 2, size, size)`` of the subject (channel 0) and object (channel 1) boxes
    ``(R, 4)`` drawn on a ``size x size`` grid covering the image (``img_sizes (R, 2)`` = ``h, w``).

    Box coordinates are scaled by ``size / w`` and ``size / h``; grid cell ``(y, x)`` is inside
    when ``floor(x1) <= x <= ceil(x2)`` and ``floor(y1) <= y <= ceil(y2)``. ``rect_coord_bug``
    reproduces OpenPSG's object rectangle, which reads its x-range from ``(x1, y1)`` and its
    y-range from ``(x2, y2)``.
    """
    h, w = img_sizes[:, 0:1].to(subj.dtype), img_sizes[:, 1:2].to(subj.dtype)
    scale = torch.cat([size / w, size / h, size / w, size / h], 1)
    s, o = subj * scale, obj * scale
    grid = torch.arange(size, device=subj.device, dtype=subj.dtype)
    xs, ys = grid.view(1, 1, size), grid.view(1, size, 1)

    def rect(x_lo: torch.Tensor, x_hi: torch.Tensor, y_lo: torch.Tensor,
             y_hi: torch.Tensor) -> torch.Tensor:
        def col(v: torch.Tensor) -> torch.Tensor:
            return v.view(-1, 1, 1)
        return ((xs >= col(x_lo.floor())) & (xs <= col(x_hi.ceil())) &
                (ys >= col(y_lo.floor())) & (ys <= col(y_hi.ceil())))

    subj_rect = rect(s[:, 0], s[:, 2], s[:, 1], s[:, 3])
    if rect_coord_bug:
        obj_rect = rect(o[:, 0], o[:, 1], o[:, 2], o[:, 3])
    else:
        obj_rect = rect(o[:, 0], o[:, 2], o[:, 1], o[:, 3])
    return torch.stack([subj_rect, obj_rect], 1).to(subj.dtype)


class SpatialBranch(nn.Sequential):
    """Two-rectangle maps ``(R, 2, 27, 27)`` -> ``(R, C, 7, 7)``: conv 7x7/2 (2 -> C/2), ReLU, BN,
    max-pool 3/2, conv 3x3 (C/2 -> C), ReLU, BN."""

    def __init__(self, channels: int = 256) -> None:
        mid = channels // 2
        super().__init__(
            nn.Conv2d(2, mid, 7, stride=2, padding=3), nn.ReLU(inplace=True), nn.BatchNorm2d(mid),
            nn.MaxPool2d(3, stride=2, padding=1),
            nn.Conv2d(mid, channels, 3, padding=1), nn.ReLU(inplace=True), nn.BatchNorm2d(channels))


class RoIFeatureExtractor(nn.Module):
    """RoIAlign on the FPN levels, optionally weighted by the RoI-aligned mask and summed with the
    spatial branch, then FC -> ReLU -> FC -> ReLU: ``(K, out_dim)``.

    ``forward(feats, rois (K, 5), mask_weights (K, 1, S, S) | None, rects (K, 2, 27, 27) | None)``.
    """

    def __init__(self, in_channels: int = 256, out_dim: int = 1024, roi_size: int = 7,
                 strides: Sequence[int] = (4, 8, 16, 32), finest_scale: float = 56.0,
                 sampling_ratio: int = 2, with_spatial: bool = False) -> None:
        super().__init__()
        self.roi_size = roi_size
        self.strides = tuple(strides)
        self.finest_scale = finest_scale
        self.sampling_ratio = sampling_ratio
        self.spatial = SpatialBranch(in_channels) if with_spatial else None
        self.fc = nn.Sequential(nn.Linear(in_channels * roi_size * roi_size, out_dim),
                                nn.ReLU(inplace=True), nn.Linear(out_dim, out_dim),
                                nn.ReLU(inplace=True))

    def forward(self, feats: Sequence[torch.Tensor], rois: torch.Tensor,
                mask_weights: torch.Tensor | None = None,
                rects: torch.Tensor | None = None) -> torch.Tensor:
        x = multilevel_roi_align(feats, rois, self.roi_size, self.strides, self.finest_scale,
                                 self.sampling_ratio)
        if mask_weights is not None:
            x = x * mask_weights
        if self.spatial is not None:
            x = x + self.spatial(rects)
        return self.fc(x.flatten(1))


def padded_masks(objects: Sequence[ObjectSet], device: torch.device) -> torch.Tensor:
    """All objects' masks ``(K, H, W)`` zero-padded to the largest mask size of the batch."""
    h = max(o.masks.shape[1] for o in objects)
    w = max(o.masks.shape[2] for o in objects)
    return torch.cat([F.pad(o.masks.to(device), (0, w - o.masks.shape[2], 0, h - o.masks.shape[1]))
                      for o in objects])


def object_and_union_features(obj_extractor: RoIFeatureExtractor,
                              union_extractor: RoIFeatureExtractor,
                              feats: Sequence[torch.Tensor], objects: Sequence[ObjectSet],
                              boxes: Sequence[torch.Tensor], pairs: Sequence[torch.Tensor],
                              with_mask_feats: bool = False, rect_coord_bug: bool = False
                              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Object features ``(K, out_dim)`` of the concatenated ``boxes`` (float, on the features'
    device, one ``(N_i, 4)`` per image ``i`` = batch row ``i`` of ``feats``) and union features
    ``(R, out_dim)`` of the concatenated ``pairs`` (the union extractor adds the
    :func:`two_rect_maps` of subject and object). ``with_mask_feats`` weights the RoIs by the
    RoI-aligned masks of ``objects`` (a union: the maximum of its subject's and object's).
    """
    device = feats[0].device
    image = torch.cat([torch.full((len(b),), i, dtype=b.dtype, device=device)
                       for i, b in enumerate(boxes)])
    obj_boxes = torch.cat(list(boxes))
    global_pairs = concat_pairs(pairs, [len(b) for b in boxes])
    subj, obj = obj_boxes[global_pairs[:, 0]], obj_boxes[global_pairs[:, 1]]
    union = union_boxes(subj, obj)
    pair_image = image[global_pairs[:, 0]]
    sizes = torch.tensor([o.img_shape for o in objects], device=device)[pair_image.long()]
    rects = two_rect_maps(subj, obj, sizes, rect_coord_bug=rect_coord_bug)
    obj_weights = union_weights = None
    if with_mask_feats:
        masks = padded_masks(objects, device)
        size = obj_extractor.roi_size
        obj_weights = pooled_masks(masks, torch.arange(len(obj_boxes), device=device), obj_boxes,
                                   size)
        union_weights = torch.maximum(pooled_masks(masks, global_pairs[:, 0], union, size),
                                      pooled_masks(masks, global_pairs[:, 1], union, size))
    obj_feats = obj_extractor(feats, torch.cat([image[:, None], obj_boxes], 1), obj_weights)
    union_feats = union_extractor(feats, torch.cat([pair_image[:, None], union], 1),
                                  union_weights, rects)
    return obj_feats, union_feats
