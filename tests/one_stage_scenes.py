"""Hand-made scenes shared by the one-stage model tests (DETR4Seg, PSGTR, PSGFormer)."""
from __future__ import annotations

import numpy as np
import torch

from openpsg.structures import ImageMeta, Sample, masks_to_boxes

SKY, GRASS, PERSON, HORSE = 119, 125, 0, 17  # sky-other-merged, grass-merged (stuff), things
#: the thing (segment 2) standing on (14) the grass, in front of (1) the sky
RELATIONS = ((2, 1, 14), (2, 0, 1))
#: the small one-stage transformer the tests build models with
TINY = dict(backbone=dict(type='ResNet', depth=18, frozen_stages=1),
            transformer=dict(d_model=64, nhead=8, num_encoder_layers=2, num_decoder_layers=2,
                             dim_feedforward=128, dropout=0.0))


def sky_grass_scene(image_id: str, h: int, w: int, thing: tuple[int, int, int, int], label: int,
                    rels=RELATIONS, ori_shape: tuple[int, int] | None = None,
                    flip: bool = False) -> tuple[Sample, np.ndarray]:
    """Sky on the top third, grass below, one thing rectangle ``(y0, y1, x0, x1)`` of class
    ``label``; colours make the three segments easy to tell apart. Returns the sample (segments
    sky 0, grass 1, thing 2; relations ``rels``) and its GT id map ``(h, w)``."""
    ids = np.ones((h, w), np.int64)
    ids[:h // 3] = 0
    y0, y1, x0, x1 = thing
    ids[y0:y1, x0:x1] = 2
    masks = ids[None] == np.arange(3)[:, None, None]
    colours = np.array([[0.2, 0.5, 1.5], [-1.0, 1.2, -1.0], [1.5, -0.5, -0.5]], np.float32)
    img = colours[ids].transpose(2, 0, 1) + 0.1 * np.random.RandomState(0).randn(3, h, w)
    oh, ow = ori_shape or (h, w)
    meta = ImageMeta(image_id, file_name=f'{image_id}.jpg', ori_shape=(oh, ow), img_shape=(h, w),
                     pad_shape=(h, w), scale_factor=(w / ow, h / oh), flip=flip)
    sample = Sample(img=torch.from_numpy(img.astype(np.float32)), meta=meta,
                    labels=torch.tensor([SKY, GRASS, label]),
                    boxes=torch.from_numpy(masks_to_boxes(masks)), masks=torch.from_numpy(masks),
                    rels=torch.tensor(rels, dtype=torch.int64).reshape(-1, 3))
    return sample, ids


def coco_sized_scene(rels=RELATIONS) -> Sample:
    """An 800x1333 random image with sky, grass and a person (segments 0, 1, 2) and ``rels``."""
    h, w = 800, 1333
    masks = torch.zeros(3, h, w, dtype=torch.bool)
    masks[0, :300] = True
    masks[1, 300:] = True
    masks[2, 400:700, 200:600] = True
    masks[1] &= ~masks[2]
    return Sample(img=torch.randn(3, h, w), meta=ImageMeta('big', ori_shape=(h, w), img_shape=(h, w)),
                  labels=torch.tensor([SKY, GRASS, PERSON]),
                  boxes=torch.from_numpy(masks_to_boxes(masks.numpy())), masks=masks,
                  rels=torch.tensor(rels, dtype=torch.int64).reshape(-1, 3))
