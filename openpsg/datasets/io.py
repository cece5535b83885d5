"""Reading images and panoptic PNGs with checks that name the file, the image and the field."""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..paths import OutsideRootError, resolve_inside
from ..structures.masks import rgb2id, segment_ids_to_id_map
from .errors import DatasetError, problem


def data_path(data_root: str, name: str, ann_file: str, image_id: str, field: str,
              allow_outside_root: bool = False) -> str:
    """The file ``name`` (the ``field`` of ``image_id`` in ``ann_file``) under ``data_root``,
    checked by :func:`~openpsg.paths.resolve_inside`; a name leading elsewhere raises
    :class:`DatasetError` naming the annotation file, the image and the field."""
    try:
        return resolve_inside(data_root, name, allow_outside_root)
    except OutsideRootError as err:
        raise DatasetError(outside_problem(data_root, str(err), ann_file, image_id,
                                           field)) from None


def outside_problem(data_root: str, reason: str, ann_file: str, image_id: str, field: str) -> str:
    """The problem line of a file name that does not lead into ``data_root``."""
    return problem(ann_file, image_id, field, f'{reason} (data_root {data_root})')


def _open_rgb(path: str, image_id: str, field: str, expected_hw: tuple[int, int] | None) -> np.ndarray:
    if not os.path.isfile(path):
        raise DatasetError(problem(path, image_id, field, 'file not found'))
    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert('RGB'))
    except (UnidentifiedImageError, OSError) as err:
        raise DatasetError(problem(path, image_id, field, f'cannot read image ({err})')) from err
    if expected_hw is not None and tuple(arr.shape[:2]) != tuple(expected_hw):
        raise DatasetError(problem(
            path, image_id, field, f'image is {arr.shape[0]}x{arr.shape[1]} (HxW) but the annotation '
            f'says height={expected_hw[0]}, width={expected_hw[1]}'))
    return arr


def read_image(path: str, image_id: str, expected_hw: tuple[int, int] | None = None) -> np.ndarray:
    """Read an image as ``(H, W, 3)`` uint8 RGB; checks existence, decodability and size."""
    return _open_rgb(path, image_id, 'file_name', expected_hw)


def read_panoptic(path: str, image_id: str, segment_ids: Sequence[int],
                  expected_hw: tuple[int, int] | None = None) -> np.ndarray:
    """Read a panoptic PNG into an ``(H, W)`` int32 id map indexing ``segment_ids`` (-1 = void).

    Raises :class:`DatasetError` if the PNG is missing/unreadable, has the wrong size, or a listed
    segment id does not occur in it.
    """
    pan_ids = rgb2id(_open_rgb(path, image_id, 'pan_seg_file_name', expected_hw))
    id_map = segment_ids_to_id_map(pan_ids, segment_ids)
    present = np.bincount(id_map.ravel() + 1, minlength=len(segment_ids) + 1)[1:] > 0
    missing = [int(s) for s, ok in zip(segment_ids, present) if not ok]
    if missing:
        raise DatasetError(problem(path, image_id, 'segments_info.id',
                                   f'segment id(s) {missing} do not occur in the panoptic PNG'))
    return id_map
