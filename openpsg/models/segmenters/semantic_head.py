"""Panoptic FPN's semantic branch: stuff classes plus one "thing" channel at stride 4."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...structures import Sample
from ..sample_checks import check_labels, check_masks

IGNORE_INDEX = 255


def _conv_gn_relu(in_channels: int, out_channels: int, num_groups: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
                         nn.GroupNorm(num_groups, out_channels), nn.ReLU(inplace=True))


class SemanticFPNMerge(nn.Module):
    """The multi-level merge of the semantic FPN (Kirillov et al., Panoptic FPN).

    FPN level ``i`` (stride ``4 * 2**i``) goes through ``max(i, 1)`` blocks of 3x3 conv + GroupNorm
    + ReLU; after each block but the last of level 0 it is upsampled x2 (bilinear) towards stride 4.
    The levels are summed.

    ``forward(feats)`` takes the FPN maps from stride 4 upwards, ``(B, in_channels, H_i, W_i)``, and
    returns ``(B, inner_channels, H_0, W_0)`` at the size of the first (stride-4) map. The
    convolutions keep PyTorch's default initialisation until :meth:`reset_parameters`.
    """

    def __init__(self, in_channels: int = 256, inner_channels: int = 128, num_levels: int = 4,
                 num_groups: int = 32) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            nn.ModuleList(_conv_gn_relu(in_channels if j == 0 else inner_channels, inner_channels,
                                        num_groups) for j in range(max(level, 1)))
            for level in range(num_levels))

    def reset_parameters(self) -> None:
        """MSRA (Kaiming normal, fan-out) initialisation of every convolution of this module."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode='fan_out', nonlinearity='relu')

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        if len(feats) < len(self.branches):
            raise ValueError(f'{type(self).__name__} needs {len(self.branches)} FPN levels, '
                             f'got {len(feats)}')
        sizes = [f.shape[-2:] for f in feats]
        out = 0
        for level, (blocks, x) in enumerate(zip(self.branches, feats)):
            for j, block in enumerate(blocks):
                x = block(x)
                if level > 0:  # upsample to the next finer level's size
                    x = F.interpolate(x, size=sizes[level - 1 - j], mode='bilinear', align_corners=False)
            out = out + x
        return out


class SemanticFPNHead(SemanticFPNMerge):
    """Semantic FPN head (Kirillov et al., Panoptic FPN): :class:`SemanticFPNMerge`, then a 1x1
    conv predicting ``num_classes`` logits (the stuff classes, then "thing").

    ``forward(feats)`` takes the FPN maps from stride 4 upwards, ``(B, in_channels, H_i, W_i)``, and
    returns logits ``(B, num_classes, H_0, W_0)`` at the size of the first (stride-4) map.
    """

    def __init__(self, in_channels: int = 256, inner_channels: int = 128, num_classes: int = 54,
                 num_levels: int = 4, num_groups: int = 32, loss_weight: float = 0.5) -> None:
        super().__init__(in_channels, inner_channels, num_levels, num_groups)
        self.num_classes = num_classes
        self.loss_weight = loss_weight
        self.conv_logits = nn.Conv2d(inner_channels, num_classes, 1)
        self.reset_parameters()
        nn.init.normal_(self.conv_logits.weight, std=0.01)
        nn.init.zeros_(self.conv_logits.bias)

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.conv_logits(super().forward(feats))

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """``loss_weight`` x cross-entropy of ``logits (B, C, h, w)`` against ``targets (B, h, w)``
        int64 (``255`` = ignore), averaged over all ``B*h*w`` pixels (ignored ones count as 0, as
        in mmdet 2.x), so a batch with nothing labelled gives 0 rather than NaN."""
        ce = F.cross_entropy(logits, targets, ignore_index=IGNORE_INDEX, reduction='sum')
        return self.loss_weight * ce / targets.numel()


def _nearest_indices(in_size: int, out_size: int, device: torch.device) -> torch.Tensor:
    """Input index of each output pixel for a nearest resize sampling at pixel centres."""
    idx = ((torch.arange(out_size, device=device) + 0.5) * in_size / out_size).long()
    return idx.clamp_(max=in_size - 1)


def semantic_target(sample: Sample, num_things: int, num_stuff: int, stride: int = 4) -> torch.Tensor:
    """The semantic head's target for one sample, ``(round(H/stride), round(W/stride))`` int64.

    Built from the sample's masks ``(N, H, W)`` and labels ``(N,)``: a stuff class ``c``
    (``num_things <= c < num_things + num_stuff``) becomes ``c - num_things``, every thing class
    becomes ``num_stuff`` and unlabelled pixels ``255``. The map is nearest-downsampled at pixel
    centres, which gives exactly the ``gt_semantic_seg`` of ``LoadPanopticAnnotations(with_seg=True)``
    followed by ``SegRescale(1 / stride)``.
    """
    check_masks(sample, 'the semantic head')
    check_labels(sample, num_things + num_stuff)
    masks, labels = sample.masks, sample.labels
    h, w = masks.shape[-2:]
    out_h, out_w = max(1, int(h / stride + 0.5)), max(1, int(w / stride + 0.5))
    device = labels.device
    if len(labels) == 0:
        return torch.full((out_h, out_w), IGNORE_INDEX, dtype=torch.long, device=device)
    rows = _nearest_indices(h, out_h, device)
    cols = _nearest_indices(w, out_w, device)
    small = masks[:, rows][:, :, cols]
    channel = torch.where(labels < num_things, torch.full_like(labels, num_stuff), labels - num_things)
    target = channel[small.byte().argmax(0)]
    return torch.where(small.any(0), target, torch.full_like(target, IGNORE_INDEX))


def semantic_targets(samples: Sequence[Sample], size: tuple[int, int], num_things: int,
                     num_stuff: int, stride: int = 4) -> torch.Tensor:
    """:func:`semantic_target` of every sample placed top-left in a ``(B, *size)`` map of 255."""
    out = torch.full((len(samples), *size), IGNORE_INDEX, dtype=torch.long,
                     device=samples[0].labels.device if samples else None)
    for i, sample in enumerate(samples):
        target = semantic_target(sample, num_things, num_stuff, stride)[:size[0], :size[1]]
        out[i, :target.shape[0], :target.shape[1]] = target
    return out
