"""Reading the image and the panoptic PNG of a sample.

Input fields (set by the dataset): ``image_id``, ``img_path``, ``seg_path`` (``None`` for box-only
data), ``file_name``, ``pan_seg_file_name``, ``height``, ``width``, ``segment_ids (N,)``,
``labels (N,)``, ``boxes (N, 4)``, ``iscrowd (N,)``, ``is_thing (N,)``, ``rels (M, 3)``.
"""
from __future__ import annotations

import numpy as np

from ...registry import TRANSFORMS
from ...structures.masks import VOID, id_map_to_masks
from ..errors import DatasetError, problem
from ..io import read_image, read_panoptic
from .compose import require

IGNORE_INDEX = 255


@TRANSFORMS.register()
class LoadImage:
    """Read ``img_path`` as ``img (H, W, 3)`` uint8 RGB, checked against ``height``/``width``.

    Adds ``img``, ``ori_shape`` and ``img_shape`` (both ``(H, W)``).
    """

    def __call__(self, results: dict) -> dict:
        expected = (int(require(results, 'height', self)), int(require(results, 'width', self)))
        img = read_image(require(results, 'img_path', self), str(results.get('image_id')), expected)
        results['img'] = img
        results['ori_shape'] = img.shape[:2]
        results['img_shape'] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return 'LoadImage()'


@TRANSFORMS.register()
class LoadPanopticAnnotations:
    """Decode the panoptic PNG ``seg_path`` into one mask per segment.

    Adds ``masks (N, H, W)`` bool for every segment (things and stuff) in ``segment_ids`` order.
    ``with_seg=True`` also adds ``gt_semantic_seg (H, W)`` uint8: the class id of each pixel,
    255 where no segment is. ``with_rel=False`` replaces ``rels`` by an empty ``(0, 3)`` array
    (segmentation-only training).
    """

    def __init__(self, with_seg: bool = False, with_rel: bool = True) -> None:
        self.with_seg = with_seg
        self.with_rel = with_rel

    def __call__(self, results: dict) -> dict:
        image_id = str(results.get('image_id'))
        seg_path = require(results, 'seg_path', self)
        if seg_path is None:
            raise DatasetError(problem(
                str(results.get('file_name', '?')), image_id, 'pan_seg_file_name',
                'this sample has no panoptic PNG (box-only data); remove LoadPanopticAnnotations '
                'from the pipeline'))
        segment_ids = np.asarray(require(results, 'segment_ids', self), dtype=np.int64)
        expected = (int(require(results, 'height', self)), int(require(results, 'width', self)))
        id_map = read_panoptic(seg_path, image_id, segment_ids, expected)
        results['masks'] = id_map_to_masks(id_map, len(segment_ids))
        if self.with_seg:
            labels = np.asarray(require(results, 'labels', self), dtype=np.int64)
            bad = labels[(labels < 0) | (labels >= IGNORE_INDEX)]
            if bad.size:
                raise DatasetError(problem(seg_path, image_id, 'segments_info.category_id',
                                           f'class ids {bad.tolist()} do not fit a uint8 '
                                           f'semantic map (0..{IGNORE_INDEX - 1})'))
            lookup = np.append(labels, IGNORE_INDEX).astype(np.uint8)
            results['gt_semantic_seg'] = lookup[np.where(id_map == VOID, len(labels), id_map)]
        if not self.with_rel:
            results['rels'] = np.zeros((0, 3), dtype=np.int64)
        return results

    def __repr__(self) -> str:
        return f'LoadPanopticAnnotations(with_seg={self.with_seg}, with_rel={self.with_rel})'
