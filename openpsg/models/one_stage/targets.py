"""Training targets of the one-stage models, checked against the sample they come from: boxes as
DETR regresses them, relations, masks at the resolution the mask losses compare them at, and masks
on the stride-4 grid of the mask logits for matching costs.

Bad input raises :class:`~openpsg.datasets.errors.DatasetError` naming the file, the image and the
field (:mod:`openpsg.models.sample_checks`).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torchvision.ops import box_convert

from ...structures import Sample, upsample_stride
from ..sample_checks import check_labels, check_masks, sample_error

Target = tuple[torch.Tensor, torch.Tensor]
Size = tuple[int, int]
#: where mask logits and GT masks meet: ``'input'`` the padded batch size (DETR), ``'half'`` half
#: of it (OpenPSG's PSGTR and PSGFormer)
LOSS_RESOLUTIONS = ('input', 'half')


def box_targets(samples: Sequence[Sample], num_classes: int) -> list[Target]:
    """Per image ``(labels (N,), boxes (N, 4))`` with boxes as cxcywh normalised by ``img_shape``;
    labels must be in ``0..num_classes - 1`` and boxes finite with ``x2 > x1``, ``y2 > y1``."""
    targets = []
    for s in samples:
        check_labels(s, num_classes)
        labels, boxes = s.labels, s.boxes.float()
        if boxes.shape != (len(labels), 4) or not torch.isfinite(boxes).all() or \
                (boxes[:, 2:] <= boxes[:, :2]).any():
            raise sample_error(s.meta, 'boxes', f'need {len(labels)} finite xyxy boxes with '
                               f'x2 > x1 and y2 > y1, got shape {tuple(boxes.shape)}')
        h, w = s.meta.img_shape
        scale = boxes.new_tensor([w, h, w, h])
        targets.append((labels, box_convert(boxes / scale, 'xyxy', 'cxcywh')))
    return targets


def padded_masks(samples: Sequence[Sample], picks: Sequence[torch.Tensor], size: Size,
                 owner: str) -> torch.Tensor:
    """The GT masks ``picks[b]`` of each image ``b``, zero-padded to the batch size ``size = (H, W)``:
    ``(K, H, W)`` float in batch order. ``owner`` (the model) is named when a sample has no mask per
    object at its image size."""
    out = []
    for sample, pick in zip(samples, picks):
        check_masks(sample, owner)
        masks = sample.masks[pick].float()
        out.append(F.pad(masks, (0, size[1] - masks.shape[2], 0, size[0] - masks.shape[1])))
    return torch.cat(out)


def masks_at_loss_resolution(logits: torch.Tensor, samples: Sequence[Sample],
                             picks: Sequence[torch.Tensor], size: Size, resolution: str,
                             owner: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask logits and GT masks where the mask losses compare them, each flattened to ``(K, P)``.

    ``logits (K, h, w)``: stride-4 logits of the matched queries of the padded batch of size
    ``size = (H, W)``, in the order of the GT masks ``picks`` (see :func:`padded_masks`).
    ``resolution='input'`` (DETR): logits upsampled x4 (bilinear, cropped to ``(H, W)``) against
    the padded GT masks; ``'half'`` (OpenPSG): logits resized bilinearly to ``(H // 2, W // 2)``,
    GT masks padded then nearest-downsampled to it.
    """
    if resolution not in LOSS_RESOLUTIONS:
        raise ValueError(f'{owner}: mask loss resolution must be one of {LOSS_RESOLUTIONS}, '
                         f'got {resolution!r}')
    target = padded_masks(samples, picks, size, owner)
    if resolution == 'input':
        return upsample_stride(logits, 4, size).flatten(1), target.flatten(1)
    half = (size[0] // 2, size[1] // 2)
    pred = F.interpolate(logits[:, None], size=half, mode='bilinear', align_corners=False)
    target = F.interpolate(target[:, None], size=half, mode='nearest')
    return pred.flatten(1), target.flatten(1)


def masks_on_logit_grid(samples: Sequence[Sample], size: Size, grid: Size, owner: str,
                        stride: int = 4) -> list[torch.Tensor]:
    """Every GT mask of each image on the grid ``grid = (h, w)`` of the mask logits (at
    ``stride`` 4) of the padded batch of size ``size = (H, W)``: ``(N_b, h * w)`` float 0/1 per
    image. Cell
    ``(i, j)`` covers input pixels ``stride * i .. stride * i + stride - 1`` (rows, likewise
    columns) and is 1 when at least half of them belong to the mask (masks zero-padded to the
    batch size, then to ``stride * grid``)."""
    counts = [len(s.labels) for s in samples]
    masks = padded_masks(samples, [torch.arange(n) for n in counts], size, owner)
    h, w = grid
    masks = F.pad(masks, (0, stride * w - size[1], 0, stride * h - size[0]))
    cells = F.avg_pool2d(masks[:, None], stride)[:, 0] >= 0.5
    return list(cells.flatten(1).float().split(counts))
