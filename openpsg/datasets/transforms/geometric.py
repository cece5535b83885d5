"""Geometric transforms: :class:`Resize`, :class:`RandomFlip`, :class:`Pad`, :class:`SegRescale`.

Each one keeps ``img (H, W, 3)``, ``masks (N, H, W)``, ``gt_semantic_seg (H, W)`` and
``boxes (N, 4)`` xyxy aligned, for whichever of them are present. Masks and semantic maps are
resized with nearest-neighbour sampling at pixel centres: output pixel ``i`` takes input pixel
``floor((i + 0.5) * in_size / out_size)``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image

from ...registry import TRANSFORMS
from .compose import PipelineError, get_rng, require
from .loading import IGNORE_INDEX


def resize_nearest(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of the last two axes of ``arr (..., H, W)`` to ``size = (h, w)``."""
    in_h, in_w = arr.shape[-2:]
    h, w = size
    rows = np.minimum(((np.arange(h) + 0.5) * in_h / h).astype(np.int64), in_h - 1)
    cols = np.minimum(((np.arange(w) + 0.5) * in_w / w).astype(np.int64), in_w - 1)
    return arr[..., rows[:, None], cols[None, :]]


def rescale_size(hw: tuple[int, int], scale: tuple[int, int], keep_ratio: bool) -> tuple[int, int]:
    """Output ``(h, w)`` for an image of size ``hw``.

    ``keep_ratio=True``: ``scale`` is ``(long, short)`` in either order and the factor is
    ``min(long / max(h, w), short / min(h, w))``, each side rounded to the nearest integer.
    ``keep_ratio=False``: ``scale`` is the exact output ``(w, h)``.
    """
    h, w = hw
    if not keep_ratio:
        return int(scale[1]), int(scale[0])
    factor = min(max(scale) / max(h, w), min(scale) / min(h, w))
    return max(1, int(h * factor + 0.5)), max(1, int(w * factor + 0.5))


def _scale_boxes(boxes: np.ndarray, w_scale: float, h_scale: float,
                 size: tuple[int, int]) -> np.ndarray:
    """Scale xyxy boxes and clip them to an image of ``size = (h, w)``."""
    out = boxes * np.array([w_scale, h_scale, w_scale, h_scale], dtype=np.float32)
    out[:, 0::2] = out[:, 0::2].clip(0, size[1])
    out[:, 1::2] = out[:, 1::2].clip(0, size[0])
    return out.astype(np.float32)


@TRANSFORMS.register()
class Resize:
    """Resize image, boxes, masks and semantic map.

    Give either ``scale`` (one target) or ``scales`` (a list; one is chosen uniformly at random
    per sample). With ``keep_ratio=True`` a target ``(1333, 800)`` means "long side at most 1333,
    short side at most 800" (see :func:`rescale_size`); with ``keep_ratio=False`` it is the exact
    output ``(w, h)``. The image is resampled bilinearly (antialiased when shrinking); boxes are
    scaled per axis and clipped to the new image. ``img_shape`` is updated and ``scale_factor
    (w_scale, h_scale)`` is multiplied by this resize's factors (so after several resizes it maps
    the original size to the current one; a crop in between changes the size but not the factor).
    """

    def __init__(self, scale: tuple[int, int] | None = None,
                 scales: Sequence[tuple[int, int]] | None = None, keep_ratio: bool = True) -> None:
        if (scale is None) == (scales is None):
            raise ValueError('Resize needs exactly one of `scale` (one target) or `scales` '
                             '(a list)')
        self.scales = [tuple(scale)] if scale is not None else [tuple(s) for s in scales]
        if not self.scales or any(len(s) != 2 or min(s) <= 0 for s in self.scales):
            raise ValueError(f'Resize scales must be positive (a, b) pairs, got {self.scales}')
        self.random = scales is not None
        self.keep_ratio = keep_ratio

    def __call__(self, results: dict) -> dict:
        img = require(results, 'img', self, 'put LoadImage before Resize')
        if img.dtype != np.uint8:
            raise PipelineError(f'Resize: image_id={results.get("image_id")}: expects a uint8 '
                                f'image (got {img.dtype}); put Resize before Normalize')
        scale = self.scales[int(get_rng(results, self).integers(len(self.scales)))] \
            if self.random else self.scales[0]
        h, w = img.shape[:2]
        new_h, new_w = rescale_size((h, w), scale, self.keep_ratio)
        w_scale, h_scale = new_w / w, new_h / h
        results['img'] = np.asarray(Image.fromarray(img).resize((new_w, new_h), Image.BILINEAR))
        for key in ('masks', 'gt_semantic_seg'):
            if key in results:
                results[key] = resize_nearest(results[key], (new_h, new_w))
        if 'boxes' in results:
            results['boxes'] = _scale_boxes(results['boxes'], w_scale, h_scale, (new_h, new_w))
        prev_w, prev_h = results.get('scale_factor', (1.0, 1.0))
        results['scale_factor'] = (prev_w * w_scale, prev_h * h_scale)
        results['img_shape'] = (new_h, new_w)
        return results

    def __repr__(self) -> str:
        target = f'scales={self.scales}' if self.random else f'scale={self.scales[0]}'
        return f'Resize({target}, keep_ratio={self.keep_ratio})'


@TRANSFORMS.register()
class RandomFlip:
    """Flip horizontally with probability ``prob``: image, masks, semantic map and boxes
    (``x1' = W - x2``, ``x2' = W - x1``). Sets ``flip`` (True if the sample ends up mirrored)."""

    def __init__(self, prob: float = 0.5) -> None:
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f'RandomFlip prob must be in [0, 1], got {prob}')
        self.prob = prob

    def __call__(self, results: dict) -> dict:
        img = require(results, 'img', self, 'put LoadImage before RandomFlip')
        flipped = bool(get_rng(results, self).random() < self.prob)
        if flipped:
            width = img.shape[1]
            results['img'] = np.ascontiguousarray(img[:, ::-1])
            for key in ('masks', 'gt_semantic_seg'):
                if key in results:
                    results[key] = np.ascontiguousarray(results[key][..., ::-1])
            if 'boxes' in results:
                boxes = results['boxes'].copy()
                boxes[:, 0] = width - results['boxes'][:, 2]
                boxes[:, 2] = width - results['boxes'][:, 0]
                results['boxes'] = boxes
        results['flip'] = bool(results.get('flip', False)) ^ flipped
        return results

    def __repr__(self) -> str:
        return f'RandomFlip(prob={self.prob})'


@TRANSFORMS.register()
class Pad:
    """Pad bottom/right so height and width are multiples of ``size_divisor``.

    Padding values: image 0 (after :class:`Normalize` that is the mean colour), masks False,
    semantic map 255. Sets ``pad_shape (H, W)``; ``img_shape`` keeps the unpadded size.
    """

    def __init__(self, size_divisor: int = 32) -> None:
        if size_divisor < 1:
            raise ValueError(f'Pad size_divisor must be >= 1, got {size_divisor}')
        self.size_divisor = size_divisor

    def __call__(self, results: dict) -> dict:
        img = require(results, 'img', self, 'put LoadImage before Pad')
        h, w = img.shape[:2]
        d = self.size_divisor
        pad_h, pad_w = -(-h // d) * d - h, -(-w // d) * d - w
        results['img'] = np.pad(img, ((0, pad_h), (0, pad_w), (0, 0)))
        if 'masks' in results:
            results['masks'] = np.pad(results['masks'], ((0, 0), (0, pad_h), (0, pad_w)))
        if 'gt_semantic_seg' in results:
            results['gt_semantic_seg'] = np.pad(results['gt_semantic_seg'],
                                                ((0, pad_h), (0, pad_w)),
                                                constant_values=IGNORE_INDEX)
        results['pad_shape'] = (h + pad_h, w + pad_w)
        return results

    def __repr__(self) -> str:
        return f'Pad(size_divisor={self.size_divisor})'


@TRANSFORMS.register()
class SegRescale:
    """Rescale ``gt_semantic_seg`` by ``scale_factor`` (nearest), e.g. 1/4 for a stride-4 head."""

    def __init__(self, scale_factor: float = 0.25) -> None:
        if scale_factor <= 0:
            raise ValueError(f'SegRescale scale_factor must be positive, got {scale_factor}')
        self.scale_factor = scale_factor

    def __call__(self, results: dict) -> dict:
        seg = require(results, 'gt_semantic_seg', self,
                      'load it with LoadPanopticAnnotations(with_seg=True)')
        h, w = seg.shape
        size = (max(1, int(h * self.scale_factor + 0.5)), max(1, int(w * self.scale_factor + 0.5)))
        results['gt_semantic_seg'] = resize_nearest(seg, size)
        return results

    def __repr__(self) -> str:
        return f'SegRescale(scale_factor={self.scale_factor})'
