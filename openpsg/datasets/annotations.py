"""Reading and validating ``psg.json`` (and box-only files on the same schema).

The file is a JSON object with exactly five keys: ``data`` (one dict per image), ``thing_classes``,
``stuff_classes``, ``predicate_classes`` and ``test_image_ids`` (string image ids of the test split).
Each image has ``file_name``, ``height``, ``width``, a string ``image_id``, ``pan_seg_file_name``,
``segments_info`` (``{id, category_id, iscrowd, isthing, area}``), ``annotations``
(``{bbox, bbox_mode, category_id}``, parallel to ``segments_info``, boxes ``[x1, y1, x2, y2]``
absolute pixels with ``bbox_mode`` 0) and ``relations`` (``[subject, object, predicate]``, indices
0-based into the segment list, predicates 0-based). Box-only files (Visual Genome) need neither
``pan_seg_file_name`` nor ``segments_info``. Heights and widths are 1..65535, an ``image_id`` must
be usable as a file name (tools save ``<image_id>.png``), and every number is range-checked
before it enters an int64/float32 column; the checks shared with challenge submissions live in
:mod:`~openpsg.datasets.validate`.

:func:`parse_annotations` checks all of that at JSON level and reports every problem it finds,
together with values that fit the schema but not the image: ``height x width`` above the image
size limit (:func:`~openpsg.datasets.io.max_image_pixels`), a relation whose subject is its
object, and boxes that are degenerate or outside their image (errors: zero area where a segment
exists, a corner more than the image's width/height beyond its edge, no overlap with the image;
notes: zero area in box-only files, sticking out of the image by more than
:data:`BOX_TOLERANCE` pixels);
:func:`load_annotations` raises them together as one :class:`DatasetError`. The result is an
:class:`Annotations` table: column arrays over all images (no per-image Python objects, so
dataloader workers share it without copying).
"""
from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..safe_json import JSONFileError, describe, load_json
from ..structures.masks import VOID
from .errors import DatasetError, problem
from .io import ImageReadError, check_image_size
from .validate import (MAX_IMAGE_SIDE, Numbering, Report, check_image_side, check_label, check_relation,
                       check_segment_id, is_int, is_number, type_name)

logger = logging.getLogger(__name__)

TOP_LEVEL_KEYS = ('data', 'thing_classes', 'stuff_classes', 'predicate_classes', 'test_image_ids')
SEGMENT_KEYS = ('id', 'category_id', 'iscrowd', 'isthing', 'area')
BBOX_MODE_XYXY_ABS = 0
MAX_IMAGE_ID_BYTES = 200
#: A box may stick out of its image by this many pixels before it is noted.
BOX_TOLERANCE = 1.0


@dataclass
class Annotations:
    """An annotation file as column arrays.

    Image ``i`` owns segment rows ``seg_offsets[i]:seg_offsets[i + 1]`` of ``segment_ids (S,)``
    int64 (panoptic PNG ids, ``-1`` for box-only files), ``labels (S,)`` int64 0-based,
    ``boxes (S, 4)`` float32 xyxy, ``iscrowd (S,)`` bool and ``is_thing (S,)`` bool; and relation
    rows ``rel_offsets[i]:rel_offsets[i + 1]`` of ``rels (R, 3)`` int64 ``(subject, object,
    predicate)`` with subject/object local to the image, in file order. ``rel_unique (R,)`` is True on
    the first occurrence of each exact ``(s, o, p)`` within its image. Per-image columns
    ``image_ids``, ``file_names``, ``pan_seg_file_names`` (``''`` for box-only files) are numpy
    string arrays; ``heights``/``widths`` int64.
    """

    file: str
    thing_classes: tuple[str, ...]
    stuff_classes: tuple[str, ...]
    predicate_classes: tuple[str, ...]
    test_image_ids: frozenset[str]
    image_ids: np.ndarray
    file_names: np.ndarray
    pan_seg_file_names: np.ndarray
    heights: np.ndarray
    widths: np.ndarray
    seg_offsets: np.ndarray
    segment_ids: np.ndarray
    labels: np.ndarray
    boxes: np.ndarray
    iscrowd: np.ndarray
    is_thing: np.ndarray
    rel_offsets: np.ndarray
    rels: np.ndarray
    rel_unique: np.ndarray

    def __post_init__(self) -> None:
        for value in vars(self).values():
            if isinstance(value, np.ndarray):
                value.flags.writeable = False

    @classmethod
    def from_columns(cls, *, num_segments: np.ndarray, num_rels: np.ndarray,
                     **columns: Any) -> 'Annotations':
        """Build the table from per-image counts instead of offsets: ``num_segments (I,)`` and
        ``num_rels (I,)`` give the rows each image owns in the segment and relation columns;
        ``rel_unique`` is computed. The other keyword arguments are the fields of the class."""
        rel_offsets = _offsets(num_rels)
        return cls(seg_offsets=_offsets(num_segments), rel_offsets=rel_offsets,
                   rel_unique=_first_occurrences(columns['rels'], rel_offsets), **columns)

    @property
    def classes(self) -> tuple[str, ...]:
        return self.thing_classes + self.stuff_classes

    @property
    def num_images(self) -> int:
        return len(self.image_ids)

    def segments(self, i: int) -> slice:
        """Rows of image ``i`` in the segment columns."""
        return slice(int(self.seg_offsets[i]), int(self.seg_offsets[i + 1]))

    def relations(self, i: int, unique: bool = False) -> np.ndarray:
        """``(M, 3)`` relation rows of image ``i``; ``unique`` drops exact repeats (first kept)."""
        rows = slice(int(self.rel_offsets[i]), int(self.rel_offsets[i + 1]))
        rels = self.rels[rows]
        return rels[self.rel_unique[rows]] if unique else rels.copy()

    def num_relations(self, unique: bool = False) -> np.ndarray:
        """``(I,)`` number of relation rows per image (exact repeats dropped when ``unique``)."""
        if not unique:
            return np.diff(self.rel_offsets)
        return np.bincount(self.rel_image()[self.rel_unique], minlength=self.num_images)

    def rel_image(self) -> np.ndarray:
        """``(R,)`` image index of every relation row."""
        return np.repeat(np.arange(self.num_images), np.diff(self.rel_offsets))


def read_json(path: str) -> Any:
    """Load an annotation file with :func:`~openpsg.safe_json.load_json`; any way it cannot be
    read (missing, not UTF-8, invalid or pathological JSON) raises :class:`DatasetError`."""
    try:
        return load_json(path)
    except JSONFileError as err:
        raise DatasetError(problem(path, None, 'ann_file', err.reason)) from None


def load_annotations(path: str, with_masks: bool = True) -> Annotations:
    """Read and validate an annotation file; raise one :class:`DatasetError` listing every problem.

    ``with_masks=False`` reads box-only files (no ``pan_seg_file_name``/``segments_info``).
    Harmless oddities (e.g. ``test_image_ids`` naming images absent from ``data``) are logged as
    warnings. The result is read-only and shared by every caller in the process until the file
    changes (so a train and a test dataset parse ``psg.json`` once).
    """
    if not os.path.isfile(path):
        read_json(path)  # raises the error that says why
    stat = os.stat(path)
    return _load_cached(path, os.path.realpath(path), stat.st_mtime_ns, stat.st_size, with_masks)


@functools.lru_cache(maxsize=4)
def _load_cached(path: str, real_path: str, mtime_ns: int, size: int, with_masks: bool
                 ) -> Annotations:
    ann, problems, notes = parse_annotations(read_json(path), path, with_masks)
    if problems:
        raise DatasetError(problems)
    for note in notes:
        logger.warning(note)
    return ann


def parse_annotations(raw: Any, file: str, with_masks: bool = True
                      ) -> tuple[Annotations, list[str], list[str]]:
    """Validate a loaded JSON document.

    Returns ``(annotations, problems, notes)``: the table holds only the images without problems;
    ``problems`` lists every error found (formatted by :func:`problem`); ``notes`` lists oddities
    that do not prevent use.
    """
    problems: list[str] = []
    notes: list[str] = []
    if not isinstance(raw, dict):
        problems.append(problem(file, None, 'top level', f'must be a JSON object with keys '
                                f'{list(TOP_LEVEL_KEYS)}, got {type_name(raw)}'))
        return _TableBuilder(with_masks, 0).build(file, (), (), (), frozenset()), problems, notes
    for key in TOP_LEVEL_KEYS:
        if key not in raw:
            problems.append(problem(file, None, key, 'missing top-level key'))
    extra = sorted(set(raw) - set(TOP_LEVEL_KEYS))
    if extra:
        notes.append(problem(file, None, 'top level', f'unexpected keys {extra} are ignored'))

    things = _name_list(raw, 'thing_classes', file, problems)
    stuff = _name_list(raw, 'stuff_classes', file, problems)
    predicates = _name_list(raw, 'predicate_classes', file, problems)
    vocab = Numbering(
        first=0, num_classes=None if things is None or stuff is None else len(things) + len(stuff),
        num_predicates=None if predicates is None else len(predicates),
        class_note='thing_classes + stuff_classes', predicate_note='predicate_classes')
    num_things = None if things is None else len(things)

    data = raw.get('data', [])
    if not isinstance(data, list):
        problems.append(problem(file, None, 'data', f'must be a list of images, got {type_name(data)}'))
        data = []
    builder = _TableBuilder(with_masks, num_things or 0)
    first_seen: dict[str, int] = {}
    odd_boxes: dict[str, list[str]] = {}
    for i, image in enumerate(data):
        found = _check_image(image, i, file, vocab, num_things, with_masks, first_seen, odd_boxes)
        problems.extend(found)
        if not found:
            builder.add(image)
    for what, where in odd_boxes.items():
        notes.append(problem(file, None, 'annotations.bbox',
                             f'{len(where)} box(es) {what}: {_preview(where)}'))

    test_ids = _test_image_ids(raw.get('test_image_ids', []), file, problems)
    unknown = sorted(test_ids - set(first_seen))
    if unknown:
        notes.append(problem(file, None, 'test_image_ids', f'{len(unknown)} id(s) name no image in '
                             f'data: {_preview(unknown)}'))
    ann = builder.build(file, tuple(things or ()), tuple(stuff or ()), tuple(predicates or ()),
                        frozenset(test_ids))
    return ann, problems, notes


def _preview(items: list[str], n: int = 5) -> str:
    shown = ', '.join(describe(x) for x in items[:n])
    return shown + (f', ... ({len(items) - n} more)' if len(items) > n else '')


def _name_list(raw: dict, key: str, file: str, problems: list[str]) -> list[str] | None:
    if key not in raw:
        return None
    names = raw[key]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        problems.append(problem(file, None, key, 'must be a list of class-name strings'))
        return None
    return names


def _test_image_ids(ids: Any, file: str, problems: list[str]) -> set[str]:
    if not isinstance(ids, list):
        problems.append(problem(file, None, 'test_image_ids',
                                f'must be a list of image_id strings, got {type_name(ids)}'))
        return set()
    for j, image_id in enumerate(ids):
        if not isinstance(image_id, str):
            problems.append(problem(file, None, f'test_image_ids[{j}]', f'must be a string image_id '
                                    f'(splits compare strings), got {type_name(image_id)} '
                                    f'{describe(image_id)}'))
    return {image_id for image_id in ids if isinstance(image_id, str)}


def _check_image(image: Any, i: int, file: str, vocab: Numbering, num_things: int | None,
                 with_masks: bool, first_seen: dict[str, int],
                 odd_boxes: dict[str, list[str]]) -> list[str]:
    """Every problem of one ``data[i]`` entry; records its image_id in ``first_seen`` and boxes
    that are odd but usable in ``odd_boxes`` (``{what: ['image_id=ID annotations[k]', ...]}``)."""
    if not isinstance(image, dict):
        return [problem(file, None, f'data[{i}]', f'must be an object, got {type_name(image)}')]
    found: list[str] = []
    image_id = image.get('image_id')
    if isinstance(image_id, str):
        label = image_id
    else:
        label = f'data[{i}]' if 'image_id' not in image else f'{describe(image_id)} (data[{i}])'

    def bad(field: str, message: str) -> None:
        found.append(problem(file, label, field, message))

    if 'image_id' not in image:
        bad('image_id', 'missing')
    elif not isinstance(image_id, str):
        bad('image_id', f'must be a string (PSG ids are strings, e.g. "107902"), '
                        f'got {type_name(image_id)}')
    elif image_id in first_seen:
        bad('image_id', f'duplicate image_id, also used by data[{first_seen[image_id]}]')
    else:
        first_seen[image_id] = i
        _check_image_id_name(image_id, bad)

    file_keys = ('file_name', 'pan_seg_file_name') if with_masks else ('file_name',)
    for key in file_keys:
        if not isinstance(image.get(key), str) or not image[key]:
            bad(key, f'must be a non-empty relative path string, got {type_name(image.get(key))}')
    for key in ('height', 'width'):
        check_image_side(image.get(key), key, bad)
    size = None
    if all(is_int(image.get(key)) and 0 < image[key] <= MAX_IMAGE_SIDE
           for key in ('height', 'width')):
        try:
            check_image_size((image['height'], image['width']), what='the image')
            size = (image['height'], image['width'])
        except ImageReadError as err:
            bad('height/width', str(err))

    def odd(what: str, field: str) -> None:
        odd_boxes.setdefault(what, []).append(f'image_id={label} {field}')

    segments = _list_field(image, 'segments_info', bad) if with_masks else []
    seen_ids: dict[int, int] = {}
    for k, seg in enumerate(segments):
        _check_segment(seg, f'segments_info[{k}]', vocab, num_things, seen_ids, k, bad)
    annotations = _list_field(image, 'annotations', bad)
    for k, ann in enumerate(annotations):
        _check_annotation(ann, f'annotations[{k}]', vocab, with_masks, size, bad, odd)
    num_objects = len(annotations)
    if with_masks:
        if 'segments_info' in image and 'annotations' in image and len(segments) != len(annotations):
            bad('annotations', f'{len(annotations)} entries but segments_info has {len(segments)}; '
                               'the two lists must be parallel')
        for k, (seg, ann) in enumerate(zip(segments, annotations)):
            if (isinstance(seg, dict) and isinstance(ann, dict) and is_int(seg.get('category_id'))
                    and is_int(ann.get('category_id')) and seg['category_id'] != ann['category_id']):
                bad(f'annotations[{k}].category_id', f'{ann["category_id"]} differs from '
                    f'segments_info[{k}].category_id {seg["category_id"]}')
        num_objects = min(num_objects, len(segments))

    for k, rel in enumerate(_list_field(image, 'relations', bad)):
        field = f'relations[{k}]'
        check_relation(rel, field, num_objects, vocab, 'image', bad)
        if isinstance(rel, list) and len(rel) == 3 and is_int(rel[0]) and rel[0] == rel[1]:
            bad(field, f'subject and object are both segment {rel[0]}; a relation joins two '
                       'different segments')
    return found


def _check_image_id_name(image_id: str, bad: Report) -> None:
    """Tools save drawings as ``<image_id>.png``: the id must be a plain file name."""
    if (not image_id or not image_id.isprintable() or image_id in ('.', '..')
            or any(c in image_id for c in '/\\') or len(image_id.encode()) > MAX_IMAGE_ID_BYTES):
        bad('image_id', f'{describe(image_id)} cannot be used as a file name (it must be 1 to '
                        f'{MAX_IMAGE_ID_BYTES} bytes of printable characters without / or \\, '
                        'not . or ..)')


def _list_field(image: dict, key: str, bad: Report) -> list:
    if key not in image:
        bad(key, 'missing')
        return []
    if not isinstance(image[key], list):
        bad(key, f'must be a list, got {type_name(image[key])}')
        return []
    return image[key]


def _check_segment(seg: Any, field: str, vocab: Numbering, num_things: int | None,
                   seen_ids: dict[int, int], k: int, bad: Report) -> None:
    if not isinstance(seg, dict):
        bad(field, f'must be an object, got {type_name(seg)}')
        return
    missing = [key for key in SEGMENT_KEYS if key not in seg]
    if missing:
        bad(field, f'missing key(s) {missing}')
    if 'id' in seg:
        check_segment_id(seg['id'], f'{field}.id', seen_ids, k, bad)
    if 'category_id' in seg:
        check_label(seg['category_id'], f'{field}.category_id', vocab, bad)
    for key in ('iscrowd', 'isthing'):
        if key in seg and seg[key] not in (0, 1):
            bad(f'{field}.{key}', f'must be 0 or 1, got {describe(seg[key])}')
    if ('isthing' in seg and seg['isthing'] in (0, 1) and num_things is not None
            and is_int(seg.get('category_id'))
            and bool(seg['isthing']) != (seg['category_id'] < num_things)):
        bad(f'{field}.isthing', f'{seg["isthing"]} contradicts category_id {seg["category_id"]} '
                                f'(indices below {num_things} are things)')
    if 'area' in seg and (not is_number(seg['area']) or seg['area'] < 0):
        bad(f'{field}.area', f'must be a non-negative number, got {describe(seg["area"])}')


def _check_annotation(ann: Any, field: str, vocab: Numbering, with_masks: bool,
                      size: tuple[int, int] | None, bad: Report, odd: Report) -> None:
    if not isinstance(ann, dict):
        bad(field, f'must be an object, got {type_name(ann)}')
        return
    if 'bbox' not in ann:
        bad(f'{field}.bbox', 'missing')
    else:
        _check_box(ann['bbox'], f'{field}.bbox', with_masks, size, bad, odd)
    if 'bbox_mode' in ann or with_masks:
        mode = ann.get('bbox_mode')
        if mode != BBOX_MODE_XYXY_ABS or not is_int(mode):
            bad(f'{field}.bbox_mode', f'must be {BBOX_MODE_XYXY_ABS} (XYXY_ABS), got {describe(mode)}')
    if 'category_id' not in ann:
        bad(f'{field}.category_id', 'missing')
    else:
        check_label(ann['category_id'], f'{field}.category_id', vocab, bad)


def _check_box(box: Any, field: str, with_masks: bool, size: tuple[int, int] | None,
               bad: Report, odd: Report) -> None:
    """Errors: not 4 finite numbers, x2 < x1 or y2 < y1, zero area in a file with segments (each
    box belongs to a segment, which has pixels), a coordinate more than the image's own width
    (height) beyond its edge, no overlap with the image. Noted (``odd``): zero area in a box-only
    file, sticking out of the image by more than :data:`BOX_TOLERANCE` pixels."""
    if not isinstance(box, list) or len(box) != 4 or not all(map(is_number, box)):
        bad(field, f'must be [x1, y1, x2, y2] (4 finite numbers), got {describe(box)}')
        return
    x1, y1, x2, y2 = box
    if x2 < x1 or y2 < y1:
        bad(field, f'{box} has x2 < x1 or y2 < y1 (boxes are xyxy, not xywh)')
        return
    if x2 == x1 or y2 == y1:
        if with_masks:
            bad(field, f'{box} has zero area but belongs to a segment (boxes are xyxy, '
                       'not xywh)')
        else:
            odd('have zero area', field)
        return
    if size is None:
        return
    h, w = size
    if min(x1, x2) < -w or max(x1, x2) > 2 * w or min(y1, y2) < -h or max(y1, y2) > 2 * h:
        bad(field, f'{box} lies far outside the {w}x{h} (WxH) image')
    elif x2 <= 0 or y2 <= 0 or x1 >= w or y1 >= h:
        bad(field, f'{box} lies outside the {w}x{h} (WxH) image')
    elif (min(x1, y1) < -BOX_TOLERANCE or x2 > w + BOX_TOLERANCE
          or y2 > h + BOX_TOLERANCE):
        odd('stick out of their image by more than 1 px', field)


class _TableBuilder:
    """Accumulates validated images into the flat columns of :class:`Annotations`."""

    def __init__(self, with_masks: bool, num_things: int) -> None:
        self.with_masks = with_masks
        self.num_things = num_things
        self.images: dict[str, list] = {k: [] for k in ('image_id', 'file_name', 'pan_seg_file_name',
                                                        'height', 'width')}
        self.num_segments: list[int] = []
        self.num_rels: list[int] = []
        self.segment_ids: list[int] = []
        self.labels: list[int] = []
        self.boxes: list[list[float]] = []
        self.iscrowd: list[int] = []
        self.is_thing: list[int] = []
        self.rels: list[list[int]] = []

    def add(self, image: dict) -> None:
        for key, column in self.images.items():
            column.append(image.get(key, ''))
        anns = image['annotations']
        self.num_segments.append(len(anns))
        self.labels.extend(a['category_id'] for a in anns)
        self.boxes.extend(a['bbox'] for a in anns)
        if self.with_masks:
            segs = image['segments_info']
            self.segment_ids.extend(s['id'] for s in segs)
            self.iscrowd.extend(s['iscrowd'] for s in segs)
            self.is_thing.extend(s['isthing'] for s in segs)
        else:
            self.segment_ids.extend([VOID] * len(anns))
            self.iscrowd.extend([0] * len(anns))
            self.is_thing.extend(int(a['category_id'] < self.num_things) for a in anns)
        self.num_rels.append(len(image['relations']))
        self.rels.extend(image['relations'])

    def build(self, file: str, things: tuple[str, ...], stuff: tuple[str, ...],
              predicates: tuple[str, ...], test_ids: frozenset[str]) -> Annotations:
        return Annotations.from_columns(
            file=file, thing_classes=things, stuff_classes=stuff, predicate_classes=predicates,
            test_image_ids=test_ids,
            image_ids=np.asarray(self.images['image_id'], dtype=str),
            file_names=np.asarray(self.images['file_name'], dtype=str),
            pan_seg_file_names=np.asarray(self.images['pan_seg_file_name'], dtype=str),
            heights=np.asarray(self.images['height'], dtype=np.int64),
            widths=np.asarray(self.images['width'], dtype=np.int64),
            num_segments=np.asarray(self.num_segments, dtype=np.int64),
            segment_ids=np.asarray(self.segment_ids, dtype=np.int64),
            labels=np.asarray(self.labels, dtype=np.int64),
            boxes=np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4),
            iscrowd=np.asarray(self.iscrowd, dtype=bool),
            is_thing=np.asarray(self.is_thing, dtype=bool),
            num_rels=np.asarray(self.num_rels, dtype=np.int64),
            rels=np.asarray(self.rels, dtype=np.int64).reshape(-1, 3))


def _offsets(counts: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(counts, dtype=np.int64)]).astype(np.int64)


def _first_occurrences(rels: np.ndarray, rel_offsets: np.ndarray) -> np.ndarray:
    """``(R,)`` True where the row ``(image, s, o, p)`` occurs for the first time."""
    image = np.repeat(np.arange(len(rel_offsets) - 1), np.diff(rel_offsets))
    keyed = np.concatenate([image[:, None], rels], axis=1)
    unique = np.zeros(len(rels), dtype=bool)
    if len(rels):
        unique[np.unique(keyed, axis=0, return_index=True)[1]] = True
    return unique


def split_rows(ann: Annotations, split: str, drop_no_rels: bool = True) -> np.ndarray:
    """Image rows of ``split`` (``'train'``, ``'test'`` or ``'all'``) in file order.

    ``test`` = images whose string ``image_id`` is in ``test_image_ids``; ``train`` = the others.
    ``drop_no_rels`` first removes images without relations (OpenPSG's rule; turn it off for
    challenge files whose test images are unlabelled).
    """
    if split not in ('train', 'test', 'all'):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
    keep = np.ones(ann.num_images, dtype=bool)
    if drop_no_rels:
        keep &= ann.num_relations() > 0
    if split != 'all':
        in_test = np.isin(ann.image_ids, np.asarray(sorted(ann.test_image_ids), dtype=str))
        keep &= in_test if split == 'test' else ~in_test
    return np.flatnonzero(keep)


def selected_relations(ann: Annotations, rows: np.ndarray,
                       unique: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Relation rows of the images ``rows``: ``(rels (M, 3), image index (M,))``, exact repeats
    counted once when ``unique``."""
    rel_image = ann.rel_image()
    chosen = np.isin(rel_image, rows)
    if unique:
        chosen &= ann.rel_unique
    return ann.rels[chosen], rel_image[chosen]


def relation_classes(ann: Annotations, rels: np.ndarray,
                     image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Subject and object classes ``(M,)`` of relation rows ``rels (M, 3)`` of images ``image``."""
    base = ann.seg_offsets[image]
    return ann.labels[base + rels[:, 0]], ann.labels[base + rels[:, 1]]


def predicate_counts(ann: Annotations, rows: np.ndarray) -> np.ndarray:
    """``(P,)`` int64 count of each predicate over the images ``rows`` (exact repeats counted once)."""
    rels, _ = selected_relations(ann, rows)
    return np.bincount(rels[:, 2], minlength=len(ann.predicate_classes))


def triplet_counts(ann: Annotations, rows: np.ndarray) -> np.ndarray:
    """``(C, C, P)`` int64 count of ``(subject label, object label, predicate)`` over every relation
    row of the images ``rows`` (exact repeats counted each time), ``C`` = ``len(ann.classes)``."""
    rel_image = ann.rel_image()
    chosen = np.isin(rel_image, rows)
    rels, base = ann.rels[chosen], ann.seg_offsets[rel_image[chosen]]
    counts = np.zeros((len(ann.classes), len(ann.classes), len(ann.predicate_classes)), np.int64)
    np.add.at(counts, (ann.labels[base + rels[:, 0]], ann.labels[base + rels[:, 1]], rels[:, 2]), 1)
    return counts


def triplet_set(ann: Annotations, rows: np.ndarray) -> set[tuple[int, int, int]]:
    """Distinct ``(subject label, object label, predicate)`` over the images ``rows``."""
    rels, image = selected_relations(ann, rows)
    subj, obj = relation_classes(ann, rels, image)
    return set(zip(subj.tolist(), obj.tolist(), rels[:, 2].tolist()))


def statistics(ann: Annotations, rows: np.ndarray) -> dict[str, Any]:
    """Summary of the images ``rows``.

    Keys: ``images``; ``images_without_relations``; ``objects`` and ``relations`` each
    ``{total, mean, min, max}`` per image (relations with exact repeats counted once);
    ``duplicate_relations`` (exact repeats in the file); ``predicates`` ``{name: count}`` in
    ``predicate_classes`` order.
    """
    objects = np.diff(ann.seg_offsets)[rows]
    raw_rels = ann.num_relations()[rows]
    rels = ann.num_relations(unique=True)[rows]
    counts = predicate_counts(ann, rows)
    return {
        'images': int(len(rows)),
        'images_without_relations': int((raw_rels == 0).sum()),
        'objects': _summary(objects),
        'relations': _summary(rels),
        'duplicate_relations': int(raw_rels.sum() - rels.sum()),
        'predicates': {name: int(c) for name, c in zip(ann.predicate_classes, counts)},
    }


def _summary(per_image: np.ndarray) -> dict[str, float]:
    if len(per_image) == 0:
        return {'total': 0, 'mean': 0.0, 'min': 0, 'max': 0}
    return {'total': int(per_image.sum()), 'mean': float(per_image.mean()),
            'min': int(per_image.min()), 'max': int(per_image.max())}
