"""A mini-batch of :class:`~openpsg.structures.Sample` as models receive it."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .scene_graph import ImageMeta, Sample


@dataclass
class Batch:
    """``imgs (B, 3, H, W)`` zero-padded to the largest image; ``pad_mask (B, H, W)`` bool, True on
    padding (DETR's mask convention); ``samples`` keep per-image targets and metas."""

    imgs: torch.Tensor
    pad_mask: torch.Tensor
    samples: list[Sample]

    @property
    def metas(self) -> list[ImageMeta]:
        return [s.meta for s in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def to(self, device: torch.device | str) -> 'Batch':
        """Move images and every target tensor to ``device``."""
        samples = [Sample(img=s.img.to(device), meta=s.meta, labels=s.labels.to(device),
                          boxes=s.boxes.to(device), masks=s.masks.to(device), rels=s.rels.to(device),
                          sem_seg=None if s.sem_seg is None else s.sem_seg.to(device))
                   for s in self.samples]
        return Batch(self.imgs.to(device), self.pad_mask.to(device), samples)


def collate_samples(samples: list[Sample], size_divisor: int = 1) -> Batch:
    """Stack samples into one padded tensor (height/width rounded up to ``size_divisor``)."""
    h = max(s.img.shape[1] for s in samples)
    w = max(s.img.shape[2] for s in samples)
    if size_divisor > 1:
        h = -(-h // size_divisor) * size_divisor
        w = -(-w // size_divisor) * size_divisor
    imgs = samples[0].img.new_zeros((len(samples), 3, h, w))
    pad_mask = torch.ones((len(samples), h, w), dtype=torch.bool)
    for i, s in enumerate(samples):
        ih, iw = s.meta.img_shape
        imgs[i, :, :s.img.shape[1], :s.img.shape[2]] = s.img
        pad_mask[i, :ih, :iw] = False
    return Batch(imgs, pad_mask, list(samples))
