"""PanopticFCN's training targets (Li et al., CVPR'21; the released code's ``GenerateGT``).

For one image and each FPN level P3..P7 the targets say which thing instances the level trains
(by the square root of their box area, with overlapping ranges), where their centres are (a
CornerNet Gaussian per instance in its class channel) and which stuff regions the level sees (soft
region maps), together with the stride-4 masks the generated kernels must reproduce.

The position head's stuff map has ``1 + num_stuff`` channels with the "thing" region **first**
(channel 0), as PanopticFCN has it; PSG's stuff class ``num_things + s`` is channel ``1 + s``. This
module is the only place that converts between the two.

Every segment of the sample is used as it is: PSG keeps crowd segments as ordinary objects (they
carry relations), so a crowd thing gets a centre like any instance (PanopticFCN on COCO drops
crowd instances; ``Sample`` carries no crowd flag). The masks are a panoptic segmentation
(non-overlapping).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from ...structures import Sample
from ..sample_checks import check_boxes, check_labels, check_masks
from .heatmaps import draw_gaussian_, gaussian_radius, mass_centres
from .resize import resize_maps

#: The "thing" region's channel in the position head's stuff map.
THING_REGION = 0

#: sqrt(box area) ranges, in input pixels, of the thing instances each level P3..P7 trains.
INSTANCE_SCALES = ((1, 64), (32, 128), (64, 256), (128, 512), (256, 2048))


@dataclass
class LevelTargets:
    """The targets of one image on one FPN level of size ``(h, w)``; ``(H4, W4)`` is the size of
    the stride-4 encoder map of the batch (the image sits in its top-left corner).

    * ``thing_labels (n,)`` int64: classes of the thing instances this level trains.
    * ``thing_masks (n, H4, W4)`` float: their masks, bilinearly downsampled to stride 4 (soft).
    * ``heatmap (num_things, h, w)`` float: Gaussian centre targets, max-merged per class.
    * ``stuff_channels (m,)`` int64: stuff-map channels present on this level (0 = "thing").
    * ``stuff_regions (m, h, w)`` bool: where each of them is present on this level.
    * ``stuff_masks (m, H4, W4)`` float: their soft stride-4 masks.
    * ``region_scores (1 + num_stuff, h, w)`` float: soft targets of the stuff map.
    """

    thing_labels: torch.Tensor
    thing_masks: torch.Tensor
    heatmap: torch.Tensor
    stuff_channels: torch.Tensor
    stuff_regions: torch.Tensor
    stuff_masks: torch.Tensor
    region_scores: torch.Tensor


def _stride4_masks(sample: Sample, encoder_size: tuple[int, int], stride: int) -> torch.Tensor:
    """The sample's masks ``(N, H, W)`` bilinearly downsampled to ``round(H / stride)`` x
    ``round(W / stride)`` and placed top-left in zeros of ``(N, *encoder_size)``."""
    h, w = sample.masks.shape[-2:]
    small = resize_maps(sample.masks.float(), (int(h / stride + 0.5), int(w / stride + 0.5)))
    out = small.new_zeros((len(small), *encoder_size))
    rows, cols = min(small.shape[1], encoder_size[0]), min(small.shape[2], encoder_size[1])
    out[:, :rows, :cols] = small[:, :rows, :cols]
    return out


def panoptic_fcn_targets(sample: Sample, pad_size: tuple[int, int],
                         encoder_size: tuple[int, int], level_sizes: Sequence[tuple[int, int]],
                         num_things: int, num_stuff: int,
                         instance_scales: Sequence[tuple[float, float]] = INSTANCE_SCALES,
                         min_overlap: float = 0.7, sigma_factor: float = 3.0,
                         stride: int = 4) -> list[LevelTargets]:
    """The :class:`LevelTargets` of ``sample`` on every level of ``level_sizes`` (P3..P7).

    Args:
        sample: masks ``(N, H, W)`` bool at the image's (padded) size, ``labels (N,)`` PSG classes,
            ``boxes (N, 4)`` xyxy input pixels.
        pad_size: ``(H, W)`` of the padded batch; ``encoder_size`` the ``(H4, W4)`` of its
            stride-``stride`` encoder map; ``level_sizes`` the ``(h, w)`` of each level.
        instance_scales: per level, the inclusive range of ``sqrt(box area)`` it trains.
        min_overlap: CornerNet's overlap for the Gaussian radius (:func:`gaussian_radius` of the
            box size at the level, i.e. divided by the level's stride).
        sigma_factor: Gaussian ``sigma = (2 r + 1) / sigma_factor``.

    Centres: the mass centre of each thing's stride-4 mask (:func:`mass_centres`), scaled to the
    level and truncated to integers, clamped to the last row / column (the released code clamps
    to the size, one past it). A thing whose stride-4 mask is empty (under ~2 px wide) trains no
    level. There is no cap on the number of things per level (the released code's fixed-size
    tensors hold 100).

    Stuff: the one-hot map of the 54 channels ("thing", stuff), bilinearly downsampled to stride
    4 (soft ``stuff_masks``), then to each level, where values are clamped at 1 and values below
    0.5 zeroed (``region_scores``); a channel is present on a level where that map is non-zero.
    Unlabelled pixels are 0 in every channel.
    """
    check_masks(sample, 'PanopticFCN')
    check_labels(sample, num_things + num_stuff)
    check_boxes(sample)
    if len(level_sizes) != len(instance_scales):
        raise ValueError(f'PanopticFCN: {len(level_sizes)} levels but {len(instance_scales)} '
                         'instance_scales')
    labels, device = sample.labels, sample.labels.device
    soft = _stride4_masks(sample, encoder_size, stride)
    enc_h, enc_w = encoder_size
    pad_h, pad_w = pad_size

    is_thing = labels < num_things
    visible = soft[is_thing].flatten(1).amax(1) > 0
    thing_labels = labels[is_thing][visible]
    thing_boxes = sample.boxes[is_thing][visible].float()
    thing_soft = soft[is_thing][visible]
    widths = thing_boxes[:, 2] - thing_boxes[:, 0]
    heights = thing_boxes[:, 3] - thing_boxes[:, 1]
    scale = torch.sqrt(widths * heights)
    centres = mass_centres(thing_soft)

    channels = torch.where(is_thing, torch.full_like(labels, THING_REGION),
                           labels - num_things + 1)
    present, segment_channel = torch.unique(channels, return_inverse=True)
    one_hot = (segment_channel[:, None] == torch.arange(len(present), device=device)).float()
    stuff_soft = torch.einsum('nk,nhw->khw', one_hot, soft).clamp(max=1)

    targets = []
    for (h, w), (low, high) in zip(level_sizes, instance_scales):
        chosen = (scale >= low) & (scale <= high)
        heatmap = torch.zeros((num_things, h, w), device=device)
        xs = (centres[chosen, 0] * w / enc_w).long().clamp(0, w - 1).tolist()
        ys = (centres[chosen, 1] * h / enc_h).long().clamp(0, h - 1).tolist()
        radii = gaussian_radius(widths[chosen] * w / pad_w, heights[chosen] * h / pad_h,
                                min_overlap).clamp(min=0).int().tolist()
        for label, x, y, radius in zip(thing_labels[chosen].tolist(), xs, ys, radii):
            draw_gaussian_(heatmap[label], (x, y), radius, (2 * radius + 1) / sigma_factor)

        scores = resize_maps(stuff_soft, (h, w)).clamp(max=1)
        scores = torch.where(scores < 0.5, torch.zeros_like(scores), scores)
        on_level = scores.flatten(1).amax(1) > 0
        region_scores = torch.zeros((1 + num_stuff, h, w), device=device)
        region_scores[present] = scores
        targets.append(LevelTargets(
            thing_labels=thing_labels[chosen], thing_masks=thing_soft[chosen], heatmap=heatmap,
            stuff_channels=present[on_level], stuff_regions=scores[on_level] > 0,
            stuff_masks=stuff_soft[on_level], region_scores=region_scores))
    return targets
