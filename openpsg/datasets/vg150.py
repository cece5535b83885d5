"""The standard VG-150 release of Visual Genome scene graphs (150 object classes, 50 predicates).

Box-SGG work since Xu et al. (CVPR'17) - Neural Motifs, Scene-Graph-Benchmark (SGB), EGTR - trains
and tests on three files, read here as they are:

* ``VG-SGG-with-attri.h5``: per image (in ``image_data.json`` order) ``split`` (0 train, 2 test),
  ``img_to_first_box``/``img_to_last_box`` and ``img_to_first_rel``/``img_to_last_rel``
  (inclusive row ranges, -1 when the image has none); per box ``labels (B, 1)`` (1-based, 0 is
  the background) and ``boxes_1024 (B, 4)`` (centre x, centre y, width, height in pixels of the
  image scaled so that its longer side is ``BOX_SCALE`` = 1024); per relation
  ``relationships (R, 2)`` (global box rows of subject and object) and ``predicates (R, 1)``
  (1-based, 1..50).
* ``VG-SGG-dicts-with-attri.json``: ``idx_to_label`` and ``idx_to_predicate`` (``{"1": name}``).
* ``image_data.json``: one entry per image with ``image_id``, ``width``, ``height``; images are
  ``<image_id>.jpg`` in the image folder (``VG_100K``).

The split follows SGB's ``load_graphs`` (the convention of Neural Motifs and EGTR): ``test`` =
``split == 2``, ``train``/``val`` = ``split == 0``, keeping images with at least one box and,
with ``drop_no_rels``, at least one relation; ``val`` is the first ``num_val_images`` (5000) of
those train images and ``train`` the rest. Inside openpsg labels and predicates are 0-based
(file value - 1). Boxes become xyxy at the original image size (``/ 1024 * max(width,
height)``) and are clipped to the image, as SGB does. An image with a box of zero width or height
(after clipping) is dropped from its split, with a warning.
"""
from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from ..registry import DATASETS
from .annotations import Annotations, read_json
from .errors import DatasetError, problem
from .psg import Transform
from .vg import VGDataset

logger = logging.getLogger(__name__)

#: the boxes of ``VG-SGG-with-attri.h5`` are in an image scaled to this longer side (SGB, Motifs)
BOX_SCALE = 1024
#: ``split`` values of the h5 (SGB ``load_graphs``: ``split_flag = 2 if split == 'test' else 0``)
SPLIT_FLAG = {'train': 0, 'val': 0, 'test': 2}
#: entries of ``image_data.json`` without a row in the h5 (SGB ``load_image_filenames``)
CORRUPTED_IMAGE_IDS = frozenset({1592, 1722, 4616, 4617})
H5_KEYS = ('split', 'img_to_first_box', 'img_to_last_box', 'img_to_first_rel', 'img_to_last_rel',
           'labels', f'boxes_{BOX_SCALE}', 'relationships', 'predicates')
MAX_LISTED_PROBLEMS = 50


@dataclass(frozen=True)
class _Release:
    """The three files read into arrays (h5 columns as stored; images aligned with the h5)."""

    classes: tuple[str, ...]
    predicates: tuple[str, ...]
    image_ids: np.ndarray
    widths: np.ndarray
    heights: np.ndarray
    h5: dict[str, np.ndarray]


def _file_stamp(path: str, field: str) -> tuple[str, int, int]:
    if not os.path.isfile(path):
        raise DatasetError(problem(path, None, field, 'file not found'))
    stat = os.stat(path)
    return path, stat.st_mtime_ns, stat.st_size


def _names(dicts: Any, key: str, dict_file: str) -> tuple[str, ...]:
    """Names ordered by their 1-based file index (``{"1": "airplane", ...}``)."""
    table = dicts.get(key) if isinstance(dicts, dict) else None
    if not isinstance(table, dict) or not table:
        raise DatasetError(problem(dict_file, None, key, 'missing or not a {"1": name, ...} object'))
    try:
        index = {int(k): v for k, v in table.items()}
    except ValueError as err:
        raise DatasetError(problem(dict_file, None, key, f'keys must be integers ({err})')) from err
    if sorted(index) != list(range(1, len(index) + 1)) or \
            not all(isinstance(v, str) for v in index.values()):
        raise DatasetError(problem(dict_file, None, key, f'must map 1..{len(index)} to names, '
                                   f'got keys {sorted(index)[:5]}...'))
    return tuple(index[i] for i in range(1, len(index) + 1))


def _read_h5(roidb_file: str) -> dict[str, np.ndarray]:
    try:
        import h5py
    except ImportError as err:
        raise ImportError('reading VG-SGG-with-attri.h5 needs h5py: pip install h5py') from err

    try:
        with h5py.File(roidb_file, 'r') as f:
            missing = [k for k in H5_KEYS if k not in f]
            if missing:
                raise DatasetError([problem(roidb_file, None, k, 'missing dataset') for k in missing])
            return {k: f[k][()] for k in H5_KEYS}
    except OSError as err:
        raise DatasetError(problem(roidb_file, None, 'roidb_file',
                                   f'not a readable HDF5 file ({err})')) from err


def _image_data(image_file: str, num_images: int, roidb_file: str
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``image_ids``, ``widths``, ``heights`` of the images the h5 rows describe."""
    raw = read_json(image_file)
    if not isinstance(raw, list):
        raise DatasetError(problem(image_file, None, 'top level', 'must be a list of images'))
    problems = []
    kept = []
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict) or type(entry.get('image_id')) is not int:
            problems.append(problem(image_file, f'image_data[{i}]', 'image_id',
                                    'must be an integer'))
            continue
        if entry['image_id'] in CORRUPTED_IMAGE_IDS:
            continue
        for key in ('width', 'height'):
            if type(entry.get(key)) is not int or entry[key] <= 0:
                problems.append(problem(image_file, str(entry['image_id']), key,
                                        f'must be a positive integer, got {entry.get(key)!r}'))
        kept.append(entry)
    if problems:
        raise DatasetError(problems)
    if len(kept) != num_images:
        raise DatasetError(problem(
            image_file, None, 'top level', f'{len(kept)} images (without the corrupted ids '
            f'{sorted(CORRUPTED_IMAGE_IDS)}) but {roidb_file} describes {num_images}; the files '
            'must come from the same release'))
    return (np.array([e['image_id'] for e in kept], np.int64),
            np.array([e['width'] for e in kept], np.int64),
            np.array([e['height'] for e in kept], np.int64))


@functools.lru_cache(maxsize=2)
def _read_release(roidb: tuple[str, int, int], dicts: tuple[str, int, int],
                  images: tuple[str, int, int]) -> _Release:
    """The three files (``(path, mtime, size)`` stamps, so a changed file is read again)."""
    roidb_file, dict_file, image_file = roidb[0], dicts[0], images[0]
    raw_dicts = read_json(dict_file)
    classes = _names(raw_dicts, 'idx_to_label', dict_file)
    predicates = _names(raw_dicts, 'idx_to_predicate', dict_file)
    h5 = _read_h5(roidb_file)
    image_ids, widths, heights = _image_data(image_file, len(h5['split']), roidb_file)
    return _Release(classes, predicates, image_ids, widths, heights, h5)


def split_images(split_column: np.ndarray, first_box: np.ndarray, first_rel: np.ndarray,
                 split: str, drop_no_rels: bool, num_val_images: int) -> np.ndarray:
    """h5 rows of ``split`` in file order, by SGB's ``load_graphs`` rule (see the module doc)."""
    keep = (split_column == SPLIT_FLAG[split]) & (first_box >= 0)
    if drop_no_rels:
        keep &= first_rel >= 0
    rows = np.flatnonzero(keep)
    if split == 'val':
        return rows[:num_val_images]
    if split == 'train':
        return rows[num_val_images:]
    return rows


def _ranges(first: np.ndarray, last: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Counts ``(n,)`` and concatenated indices of the inclusive ranges ``first..last`` (-1: none)."""
    counts = np.where(first >= 0, last - first + 1, 0)
    starts = np.repeat(first - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    return counts, starts + np.arange(counts.sum())


class _Problems:
    """Collects ``problem`` strings for images flagged by a vectorised check."""

    def __init__(self, file: str, image_ids: np.ndarray) -> None:
        self.file = file
        self.image_ids = image_ids
        self.found: list[str] = []

    def check(self, bad_images: np.ndarray, field: str, message: str) -> None:
        for i in np.flatnonzero(bad_images):
            self.found.append(problem(self.file, str(self.image_ids[i]), field, message))

    def raise_if_any(self) -> None:
        if self.found:
            shown = self.found[:MAX_LISTED_PROBLEMS]
            if len(self.found) > MAX_LISTED_PROBLEMS:
                shown.append(f'{self.file}: ... and {len(self.found) - MAX_LISTED_PROBLEMS} more')
            raise DatasetError(shown)


def build_split(release: _Release, rows: np.ndarray, roidb_file: str) -> Annotations:
    """The images ``rows`` of the release as an :class:`Annotations` table (0-based labels and
    predicates, xyxy boxes at the original size clipped to the image); raises
    :class:`DatasetError` naming the h5 file, the image and the field for out-of-range indices,
    labels and predicates and for boxes that are not finite or have a negative size."""
    h5 = release.h5
    image_ids = release.image_ids[rows]
    found = _Problems(roidb_file, image_ids)
    num_boxes, num_rels = len(h5['labels']), len(h5['predicates'])
    first_box, last_box = h5['img_to_first_box'][rows], h5['img_to_last_box'][rows]
    first_rel, last_rel = h5['img_to_first_rel'][rows], h5['img_to_last_rel'][rows]
    found.check((first_box >= 0) & ((last_box < first_box) | (last_box >= num_boxes)),
                'img_to_last_box', f'box rows must satisfy first <= last < {num_boxes}')
    found.check((first_rel >= 0) & ((last_rel < first_rel) | (last_rel >= num_rels)),
                'img_to_last_rel', f'relation rows must satisfy first <= last < {num_rels}')
    found.raise_if_any()

    seg_counts, box_rows = _ranges(first_box, last_box)
    rel_counts, rel_rows = _ranges(first_rel, last_rel)
    seg_image = np.repeat(np.arange(len(rows)), seg_counts)
    rel_image = np.repeat(np.arange(len(rows)), rel_counts)
    labels = h5['labels'].reshape(num_boxes, -1)[box_rows, 0].astype(np.int64) - 1
    num_classes, num_predicates = len(release.classes), len(release.predicates)
    found.check(np.bincount(seg_image[(labels < 0) | (labels >= num_classes)], minlength=len(rows)),
                'labels', f'must be in 1..{num_classes} (0 is the background)')

    cxcywh = h5[f'boxes_{BOX_SCALE}'][box_rows].astype(np.float64)
    bad_box = ~np.isfinite(cxcywh).all(1) | (cxcywh[:, 2:] < 0).any(1)
    found.check(np.bincount(seg_image[bad_box], minlength=len(rows)), f'boxes_{BOX_SCALE}',
                'boxes must be finite (centre x, centre y, width, height) with width, height >= 0')

    subject_object = h5['relationships'][rel_rows].astype(np.int64) - first_box[rel_image, None]
    bad_rel = ((subject_object < 0) | (subject_object >= seg_counts[rel_image, None])).any(1)
    found.check(np.bincount(rel_image[bad_rel], minlength=len(rows)), 'relationships',
                "subject and object must be rows of the image's own boxes "
                "(img_to_first_box..img_to_last_box)")
    predicates = h5['predicates'].reshape(num_rels, -1)[rel_rows, 0].astype(np.int64) - 1
    found.check(np.bincount(rel_image[(predicates < 0) | (predicates >= num_predicates)],
                            minlength=len(rows)), 'predicates', f'must be in 1..{num_predicates}')
    found.raise_if_any()

    widths, heights = release.widths[rows], release.heights[rows]
    scale = (np.maximum(widths, heights) / BOX_SCALE)[seg_image, None]
    xyxy = np.concatenate([cxcywh[:, :2] - cxcywh[:, 2:] / 2, cxcywh[:, :2] + cxcywh[:, 2:] / 2], 1)
    limits = np.stack([widths, heights, widths, heights], 1)[seg_image]
    xyxy = np.clip(xyxy * scale, 0, limits).astype(np.float32)
    return Annotations.from_columns(
        file=roidb_file, thing_classes=release.classes, stuff_classes=(),
        predicate_classes=release.predicates, test_image_ids=frozenset(),
        image_ids=image_ids.astype(str), file_names=np.char.add(image_ids.astype(str), '.jpg'),
        pan_seg_file_names=np.full(len(rows), '', dtype=str), heights=heights, widths=widths,
        num_segments=seg_counts, segment_ids=np.full(len(labels), -1, np.int64), labels=labels,
        boxes=xyxy, iscrowd=np.zeros(len(labels), bool), is_thing=np.ones(len(labels), bool),
        num_rels=rel_counts, rels=np.concatenate([subject_object, predicates[:, None]], 1))


def images_with_empty_boxes(ann: Annotations) -> np.ndarray:
    """``(I,)`` bool: the image has a box of zero width or height."""
    empty = (ann.boxes[:, 2] <= ann.boxes[:, 0]) | (ann.boxes[:, 3] <= ann.boxes[:, 1])
    seg_image = np.repeat(np.arange(ann.num_images), np.diff(ann.seg_offsets))
    return np.bincount(seg_image[empty], minlength=ann.num_images) > 0


@DATASETS.register()
class VG150Dataset(VGDataset):
    """VG-150 box scene graphs from the standard release files (module docstring).

    Args:
        roidb_file: ``VG-SGG-with-attri.h5``.
        dict_file: ``VG-SGG-dicts-with-attri.json``.
        image_file: ``image_data.json``.
        data_root: the image folder (``VG_100K``).
        split: ``'train'``, ``'val'`` or ``'test'``.
        pipeline, max_images, seed, rel_mode, allow_outside_root: as
            :class:`~openpsg.datasets.PSGDataset`
            (``rel_mode='sample_one'`` on train is SGB's ``filter_duplicate_rels``).
        drop_no_rels: keep only images with relations (SGB's ``filter_empty_rels``).
        num_val_images: how many of the first train images form ``val`` (SGB: 5000).

    All 150 classes are things (``num_things`` = 150); ground truth has boxes and no masks, so
    evaluate with ``match='box'``. ``ann_file`` is the h5 path (named in errors).
    """

    splits = ('train', 'val', 'test')

    def __init__(self, roidb_file: str, dict_file: str, image_file: str, data_root: str,
                 split: str = 'train', pipeline: Sequence[Mapping[str, Any] | Transform] = (),
                 drop_no_rels: bool = True, num_val_images: int = 5000,
                 max_images: int | None = None, seed: int | None = None,
                 rel_mode: str | None = None, allow_outside_root: bool = False) -> None:
        self.check_split(split, rel_mode)
        self.allow_outside_root = allow_outside_root
        self.ann_file = roidb_file
        self.dict_file = dict_file
        self.image_file = image_file
        self.data_root = data_root
        release = _read_release(_file_stamp(roidb_file, 'roidb_file'),
                                _file_stamp(dict_file, 'dict_file'),
                                _file_stamp(image_file, 'image_file'))
        h5 = release.h5
        rows = split_images(h5['split'], h5['img_to_first_box'], h5['img_to_first_rel'], split,
                            drop_no_rels, num_val_images)
        ann = build_split(release, rows, roidb_file)
        empty = images_with_empty_boxes(ann)
        if empty.any():
            ids = ann.image_ids[empty]
            logger.warning('%s: %d %s image(s) dropped for a box of zero width or height after '
                           'scaling and clipping to the image: %s%s', roidb_file, len(ids), split,
                           ', '.join(ids[:10]), ' ...' if len(ids) > 10 else '')
        self.setup(ann, np.flatnonzero(~empty), split, pipeline, max_images, seed, rel_mode)
