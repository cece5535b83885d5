"""An 800x1333 panoptic training batch shared by the segmenters' real-resolution tests (this
module holds no tests itself)."""
from __future__ import annotations

import torch

from openpsg.structures import Batch, ImageMeta, Sample, collate_samples

H, W = 800, 1333


def coco_sized_batch() -> Batch:
    """One random 800x1333 image (padded to 800x1344) with a person, a horse and grass."""
    masks = torch.zeros(3, H, 1344, dtype=torch.bool)
    masks[0, 100:500, 200:600] = True
    masks[1, 300:700, 700:1100] = True
    masks[2, 700:800, :W] = True
    meta = ImageMeta(image_id='1', ori_shape=(H, W), img_shape=(H, W), pad_shape=(H, 1344))
    sample = Sample(img=torch.randn(3, H, 1344), meta=meta, labels=torch.tensor([0, 17, 125]),
                    boxes=torch.tensor([[200., 100, 600, 500], [700, 300, 1100, 700],
                                        [0, 700, W, 800]]),
                    masks=masks, rels=torch.zeros(0, 3, dtype=torch.long))
    return collate_samples([sample], size_divisor=32)
