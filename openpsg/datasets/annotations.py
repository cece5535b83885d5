"""Reading and validating ``psg.json`` (and box-only files on the same schema).

The file is a JSON object with exactly five keys: ``data`` (one dict per image), ``thing_classes``,
``stuff_classes``, ``predicate_classes`` and ``test_image_ids`` (string image ids of the test split).
Each image has ``file_name``, ``height``, ``width``, a string ``image_id``, ``pan_seg_file_name``,
``segments_info`` (``{id, category_id, iscrowd, isthing, area}``), ``annotations``
(``{bbox, bbox_mode, category_id}``, parallel to ``segments_info``, boxes ``[x1, y1, x2, y2]``
absolute pixels with ``bbox_mode`` 0) and ``relations`` (``[subject, object, predicate]``, indices
0-based into the segment list, predicates 0-based). Box-only files (Visual Genome) need neither
``pan_seg_file_name`` nor ``segments_info``.

:func:`parse_annotations` checks all of that at JSON level and reports every problem it finds;
:func:`load_annotations` raises them together as one :class:`DatasetError`. The result is an
:class:`Annotations` table: column arrays over all images (no per-image Python objects, so
dataloader workers share it without copying).
"""
from __future__ import annotations

import functools
import json
import logging
import math
import os
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..structures.masks import VOID
from .errors import DatasetError, problem

logger = logging.getLogger(__name__)

TOP_LEVEL_KEYS = ('data', 'thing_classes', 'stuff_classes', 'predicate_classes', 'test_image_ids')
SEGMENT_KEYS = ('id', 'category_id', 'iscrowd', 'isthing', 'area')
BBOX_MODE_XYXY_ABS = 0
MAX_SEGMENT_ID = 256 ** 3 - 1

Report = Callable[[str, str], None]  # report(field, message): record one problem of the image


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


def _not_found(path: str) -> DatasetError:
    return DatasetError(problem(path, None, 'ann_file', 'file not found'))


def read_json(path: str) -> Any:
    """Load a JSON file; a missing file or a syntax error raises :class:`DatasetError`."""
    if not os.path.isfile(path):
        raise _not_found(path)
    try:
        with open(path, encoding='utf-8') as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DatasetError(problem(path, None, 'ann_file', f'not valid JSON ({err})')) from err


def load_annotations(path: str, with_masks: bool = True) -> Annotations:
    """Read and validate an annotation file; raise one :class:`DatasetError` listing every problem.

    ``with_masks=False`` reads box-only files (no ``pan_seg_file_name``/``segments_info``).
    Harmless oddities (e.g. ``test_image_ids`` naming images absent from ``data``) are logged as
    warnings. The result is read-only and shared by every caller in the process until the file
    changes (so a train and a test dataset parse ``psg.json`` once).
    """
    if not os.path.isfile(path):
        raise _not_found(path)
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
                                f'{list(TOP_LEVEL_KEYS)}, got {_type_name(raw)}'))
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
    vocab = _Vocab(
        num_things=None if things is None else len(things),
        num_classes=None if things is None or stuff is None else len(things) + len(stuff),
        num_predicates=None if predicates is None else len(predicates))

    data = raw.get('data', [])
    if not isinstance(data, list):
        problems.append(problem(file, None, 'data', f'must be a list of images, got {_type_name(data)}'))
        data = []
    builder = _TableBuilder(with_masks, vocab.num_things or 0)
    first_seen: dict[str, int] = {}
    for i, image in enumerate(data):
        found = _check_image(image, i, file, vocab, with_masks, first_seen)
        problems.extend(found)
        if not found:
            builder.add(image)

    test_ids = _test_image_ids(raw.get('test_image_ids', []), file, problems)
    unknown = sorted(test_ids - set(first_seen))
    if unknown:
        notes.append(problem(file, None, 'test_image_ids', f'{len(unknown)} id(s) name no image in '
                             f'data: {_preview(unknown)}'))
    ann = builder.build(file, tuple(things or ()), tuple(stuff or ()), tuple(predicates or ()),
                        frozenset(test_ids))
    return ann, problems, notes


@dataclass(frozen=True)
class _Vocab:
    """Label-space sizes; ``None`` when the file's class list is unusable (range checks skipped)."""

    num_things: int | None
    num_classes: int | None
    num_predicates: int | None


def _preview(items: list[str], n: int = 5) -> str:
    shown = ', '.join(repr(x) for x in items[:n])
    return shown + (f', ... ({len(items) - n} more)' if len(items) > n else '')


def _type_name(value: Any) -> str:
    return 'null' if value is None else type(value).__name__


def _is_int(value: Any) -> bool:
    return type(value) is int


def _is_number(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


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
                                f'must be a list of image_id strings, got {_type_name(ids)}'))
        return set()
    for j, image_id in enumerate(ids):
        if not isinstance(image_id, str):
            problems.append(problem(file, None, f'test_image_ids[{j}]', f'must be a string image_id '
                                    f'(splits compare strings), got {_type_name(image_id)} {image_id!r}'))
    return {image_id for image_id in ids if isinstance(image_id, str)}


def _check_image(image: Any, i: int, file: str, vocab: _Vocab, with_masks: bool,
                 first_seen: dict[str, int]) -> list[str]:
    """Every problem of one ``data[i]`` entry; records its image_id in ``first_seen``."""
    if not isinstance(image, dict):
        return [problem(file, None, f'data[{i}]', f'must be an object, got {_type_name(image)}')]
    found: list[str] = []
    image_id = image.get('image_id')
    if isinstance(image_id, str):
        label = image_id
    else:
        label = f'data[{i}]' if 'image_id' not in image else f'{image_id!r} (data[{i}])'

    def bad(field: str, message: str) -> None:
        found.append(problem(file, label, field, message))

    if 'image_id' not in image:
        bad('image_id', 'missing')
    elif not isinstance(image_id, str):
        bad('image_id', f'must be a string (PSG ids are strings, e.g. "107902"), '
                        f'got {_type_name(image_id)}')
    elif image_id in first_seen:
        bad('image_id', f'duplicate image_id, also used by data[{first_seen[image_id]}]')
    else:
        first_seen[image_id] = i

    file_keys = ('file_name', 'pan_seg_file_name') if with_masks else ('file_name',)
    for key in file_keys:
        if not isinstance(image.get(key), str) or not image[key]:
            bad(key, f'must be a non-empty relative path string, got {_type_name(image.get(key))}')
    for key in ('height', 'width'):
        if not _is_int(image.get(key)) or image[key] <= 0:
            bad(key, f'must be a positive integer, got {image.get(key)!r}')

    segments = _list_field(image, 'segments_info', bad) if with_masks else []
    seen_ids: dict[int, int] = {}
    for k, seg in enumerate(segments):
        _check_segment(seg, f'segments_info[{k}]', vocab, seen_ids, k, bad)
    annotations = _list_field(image, 'annotations', bad)
    for k, ann in enumerate(annotations):
        _check_annotation(ann, f'annotations[{k}]', vocab, with_masks, bad)
    num_objects = len(annotations)
    if with_masks:
        if 'segments_info' in image and 'annotations' in image and len(segments) != len(annotations):
            bad('annotations', f'{len(annotations)} entries but segments_info has {len(segments)}; '
                               'the two lists must be parallel')
        for k, (seg, ann) in enumerate(zip(segments, annotations)):
            if (isinstance(seg, dict) and isinstance(ann, dict) and _is_int(seg.get('category_id'))
                    and _is_int(ann.get('category_id')) and seg['category_id'] != ann['category_id']):
                bad(f'annotations[{k}].category_id', f'{ann["category_id"]} differs from '
                    f'segments_info[{k}].category_id {seg["category_id"]}')
        num_objects = min(num_objects, len(segments))

    for k, rel in enumerate(_list_field(image, 'relations', bad)):
        _check_relation(rel, f'relations[{k}]', num_objects, vocab.num_predicates, bad)
    return found


def _list_field(image: dict, key: str, bad: Report) -> list:
    if key not in image:
        bad(key, 'missing')
        return []
    if not isinstance(image[key], list):
        bad(key, f'must be a list, got {_type_name(image[key])}')
        return []
    return image[key]


def _check_category(value: Any, field: str, vocab: _Vocab, bad: Report) -> None:
    if not _is_int(value):
        bad(field, f'must be an integer class index, got {value!r}')
    elif vocab.num_classes is not None and not 0 <= value < vocab.num_classes:
        bad(field, f'{value} is outside 0..{vocab.num_classes - 1} '
                   f'(thing_classes + stuff_classes)')


def _check_segment(seg: Any, field: str, vocab: _Vocab, seen_ids: dict[int, int], k: int,
                   bad: Report) -> None:
    if not isinstance(seg, dict):
        bad(field, f'must be an object, got {_type_name(seg)}')
        return
    missing = [key for key in SEGMENT_KEYS if key not in seg]
    if missing:
        bad(field, f'missing key(s) {missing}')
    seg_id = seg.get('id')
    if 'id' in seg:
        if not _is_int(seg_id) or not 0 < seg_id <= MAX_SEGMENT_ID:
            bad(f'{field}.id', f'must be an integer in 1..{MAX_SEGMENT_ID} (0 is void), got {seg_id!r}')
        elif seg_id in seen_ids:
            bad(f'{field}.id', f'duplicate segment id {seg_id}, also segments_info[{seen_ids[seg_id]}]')
        else:
            seen_ids[seg_id] = k
    if 'category_id' in seg:
        _check_category(seg['category_id'], f'{field}.category_id', vocab, bad)
    for key in ('iscrowd', 'isthing'):
        if key in seg and seg[key] not in (0, 1):
            bad(f'{field}.{key}', f'must be 0 or 1, got {seg[key]!r}')
    if ('isthing' in seg and seg['isthing'] in (0, 1) and vocab.num_things is not None
            and _is_int(seg.get('category_id'))
            and bool(seg['isthing']) != (seg['category_id'] < vocab.num_things)):
        bad(f'{field}.isthing', f'{seg["isthing"]} contradicts category_id {seg["category_id"]} '
                                f'(indices below {vocab.num_things} are things)')
    if 'area' in seg and (not _is_number(seg['area']) or seg['area'] < 0):
        bad(f'{field}.area', f'must be a non-negative number, got {seg["area"]!r}')


def _check_annotation(ann: Any, field: str, vocab: _Vocab, with_masks: bool, bad: Report) -> None:
    if not isinstance(ann, dict):
        bad(field, f'must be an object, got {_type_name(ann)}')
        return
    if 'bbox' not in ann:
        bad(f'{field}.bbox', 'missing')
    else:
        box = ann['bbox']
        if not isinstance(box, list) or len(box) != 4 or not all(map(_is_number, box)):
            bad(f'{field}.bbox', f'must be [x1, y1, x2, y2] (4 finite numbers), got {box!r}')
        elif box[2] < box[0] or box[3] < box[1]:
            bad(f'{field}.bbox', f'{box} has x2 < x1 or y2 < y1 (boxes are xyxy, not xywh)')
    if 'bbox_mode' in ann or with_masks:
        mode = ann.get('bbox_mode')
        if mode != BBOX_MODE_XYXY_ABS or not _is_int(mode):
            bad(f'{field}.bbox_mode', f'must be {BBOX_MODE_XYXY_ABS} (XYXY_ABS), got {mode!r}')
    if 'category_id' not in ann:
        bad(f'{field}.category_id', 'missing')
    else:
        _check_category(ann['category_id'], f'{field}.category_id', vocab, bad)


def _check_relation(rel: Any, field: str, num_objects: int, num_predicates: int | None,
                    bad: Report) -> None:
    if not isinstance(rel, list) or len(rel) != 3 or not all(map(_is_int, rel)):
        bad(field, f'must be [subject, object, predicate] (3 integers), got {rel!r}')
        return
    for value, role in zip(rel[:2], ('subject', 'object')):
        if not 0 <= value < num_objects:
            bad(field, f'{role} index {value} is outside 0..{num_objects - 1} '
                       f'(the image has {num_objects} segments)')
    if num_predicates is not None and not 0 <= rel[2] < num_predicates:
        bad(field, f'predicate {rel[2]} is outside 0..{num_predicates - 1} (predicate_classes)')


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


def _selected_unique_rels(ann: Annotations, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique relation rows of the images ``rows``: ``(rels (M, 3), image index (M,))``."""
    rel_image = ann.rel_image()
    chosen = ann.rel_unique & np.isin(rel_image, rows)
    return ann.rels[chosen], rel_image[chosen]


def predicate_counts(ann: Annotations, rows: np.ndarray) -> np.ndarray:
    """``(P,)`` int64 count of each predicate over the images ``rows`` (exact repeats counted once)."""
    rels, _ = _selected_unique_rels(ann, rows)
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
    rels, image = _selected_unique_rels(ann, rows)
    base = ann.seg_offsets[image]
    subj = ann.labels[base + rels[:, 0]]
    obj = ann.labels[base + rels[:, 1]]
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
