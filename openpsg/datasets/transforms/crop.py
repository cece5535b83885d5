"""Relation-preserving random crop (the crop policy of one-stage training)."""
from __future__ import annotations

import numpy as np

from ...registry import TRANSFORMS
from .compose import get_rng, require

OBJECT_KEYS = ('segment_ids', 'labels', 'boxes', 'masks', 'iscrowd', 'is_thing')
"""Per-object fields: arrays whose first axis runs over the N segments of the sample."""


def crop_objects(results: dict, window: tuple[int, int, int, int]) -> dict:
    """Crop a sample to ``window = (y1, x1, y2, x2)`` (pixels, end exclusive); returns a new dict.

    The image, masks and semantic map are cut to the window; boxes are shifted and clipped to it.
    An object is removed when its clipped box has no area or (if masks are loaded) its mask has no
    pixel left. Every per-object field (:data:`OBJECT_KEYS`) is filtered alike; relations that
    touch a removed object are dropped and the others re-indexed to the kept objects.
    """
    y1, x1, y2, x2 = window
    out = dict(results)
    out['img'] = require(results, 'img', crop_objects)[y1:y2, x1:x2]
    h, w = out['img'].shape[:2]
    boxes = require(results, 'boxes', crop_objects) - np.array([x1, y1, x1, y1], dtype=np.float32)
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, w)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, h)
    out['boxes'] = boxes
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    if 'masks' in results:
        out['masks'] = results['masks'][:, y1:y2, x1:x2]
        keep &= out['masks'].any(axis=(1, 2))
    if 'gt_semantic_seg' in results:
        out['gt_semantic_seg'] = results['gt_semantic_seg'][y1:y2, x1:x2]
    for key in OBJECT_KEYS:
        if key in out:
            out[key] = out[key][keep]
    rels = np.asarray(require(results, 'rels', crop_objects), dtype=np.int64).reshape(-1, 3)
    new_index = np.cumsum(keep) - 1
    rels = rels[keep[rels[:, 0]] & keep[rels[:, 1]]]
    out['rels'] = np.stack([new_index[rels[:, 0]], new_index[rels[:, 1]], rels[:, 2]], axis=1)
    out['img_shape'] = (h, w)
    return out


@TRANSFORMS.register()
class RelRandomCrop:
    """Random crop that keeps at least one relation (see :func:`crop_objects` for what is kept).

    ``crop_type='absolute_range'``: the crop height and width are drawn independently and
    uniformly from the integers in ``crop_size = (min, max)`` (capped at the image size);
    ``crop_type='absolute'``: ``crop_size = (h, w)`` exactly (capped at the image size). The
    crop's top-left corner is uniform over the valid positions. A crop is accepted when at least
    one object and -- if the sample had relations -- at least one relation survive; otherwise a
    new crop is drawn, up to ``max_tries`` times, after which the sample is rejected (``None``).
    """

    CROP_TYPES = ('absolute', 'absolute_range')

    def __init__(self, crop_size: tuple[int, int] = (384, 600), crop_type: str = 'absolute_range',
                 max_tries: int = 10) -> None:
        if crop_type not in self.CROP_TYPES:
            raise ValueError(f'RelRandomCrop crop_type must be one of {self.CROP_TYPES}, '
                             f'got {crop_type!r}')
        if len(crop_size) != 2 or min(crop_size) < 1:
            raise ValueError(f'RelRandomCrop crop_size must be two positive ints, got {crop_size}')
        if crop_type == 'absolute_range' and crop_size[0] > crop_size[1]:
            raise ValueError(f'RelRandomCrop absolute_range needs crop_size=(min, max), '
                             f'got {crop_size}')
        if max_tries < 1:
            raise ValueError(f'RelRandomCrop max_tries must be >= 1, got {max_tries}')
        self.crop_size = (int(crop_size[0]), int(crop_size[1]))
        self.crop_type = crop_type
        self.max_tries = max_tries

    def _crop_hw(self, h: int, w: int, rng: np.random.Generator) -> tuple[int, int]:
        if self.crop_type == 'absolute':
            return min(h, self.crop_size[0]), min(w, self.crop_size[1])
        lo, hi = self.crop_size
        return (int(rng.integers(min(h, lo), min(h, hi) + 1)),
                int(rng.integers(min(w, lo), min(w, hi) + 1)))

    def __call__(self, results: dict) -> dict | None:
        rng = get_rng(results, self)
        h, w = require(results, 'img', self, 'put LoadImage before RelRandomCrop').shape[:2]
        had_rels = len(require(results, 'rels', self)) > 0
        for _ in range(self.max_tries):
            ch, cw = self._crop_hw(h, w, rng)
            y1 = int(rng.integers(h - ch + 1))
            x1 = int(rng.integers(w - cw + 1))
            out = crop_objects(results, (y1, x1, y1 + ch, x1 + cw))
            if len(out['labels']) > 0 and (len(out['rels']) > 0 or not had_rels):
                return out
        return None

    def __repr__(self) -> str:
        return (f'RelRandomCrop(crop_size={self.crop_size}, crop_type={self.crop_type!r}, '
                f'max_tries={self.max_tries})')
