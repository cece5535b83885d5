"""Field checks shared by the readers of annotation files and of challenge submissions.

Both files list segments (panoptic PNG ids and class labels) and relations ``[subject, object,
predicate]`` indexing those segments; they differ only in where labels start (``psg.json`` is
0-based, ``relation.json`` 1-based), described by a :class:`Numbering`. Each check reports through
``bad(field, message)`` and never raises, so a reader lists every problem at once. Values from a
file are shown with :func:`~openpsg.safe_json.describe` (bounded length and depth).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from ..safe_json import describe

Report = Callable[[str, str], None]  # bad(field, message): record one problem

MAX_SEGMENT_ID = 256 ** 3 - 1   # the largest id an RGB panoptic PNG can hold
MAX_IMAGE_SIDE = 65535          # the largest height or width a file may state (JPEG's limit)
MAX_INDEX = 2 ** 31 - 1         # labels of a file whose class list is unusable stay below this
MAX_ABS_NUMBER = 2 ** 53        # numbers beyond this lose integer precision as float64


def is_int(value: Any) -> bool:
    """A JSON integer (``True``/``False`` are not)."""
    return type(value) is int


def is_number(value: Any) -> bool:
    """A finite JSON number that a float32/float64 column holds (``NaN``, ``Infinity``,
    ``1e999`` and integers beyond ±2**53 are not)."""
    if type(value) is int:
        return -MAX_ABS_NUMBER <= value <= MAX_ABS_NUMBER
    return type(value) is float and math.isfinite(value)


def type_name(value: Any) -> str:
    return 'null' if value is None else type(value).__name__


@dataclass(frozen=True)
class Numbering:
    """How a file numbers object classes and predicates: ``first`` index (0 or 1), the number of
    each (``None`` when the file's own class list is unusable: only the type and a sane range are
    checked) and the note that says so in messages."""

    first: int
    num_classes: int | None
    num_predicates: int | None
    class_note: str
    predicate_note: str


def _outside(value: int, first: int, count: int | None) -> str | None:
    """``'first..last'`` if ``value`` is outside it, else ``None``."""
    last = first + count - 1 if count is not None else MAX_INDEX
    return None if first <= value <= last else f'{first}..{last}'


def check_label(value: Any, field: str, numbering: Numbering, bad: Report) -> None:
    """An object class label."""
    if not is_int(value):
        bad(field, f'must be an integer class index, got {describe(value)}')
        return
    span = _outside(value, numbering.first, numbering.num_classes)
    if span is not None:
        bad(field, f'{value} is outside {span} ({numbering.class_note})')


def check_segment_id(seg_id: Any, field: str, seen: dict[int, int], k: int, bad: Report) -> None:
    """Segment ``k``'s panoptic PNG id: an integer in 1..MAX_SEGMENT_ID, unique in ``seen``
    (``id -> first segment index``, updated)."""
    if not is_int(seg_id) or not 0 < seg_id <= MAX_SEGMENT_ID:
        bad(field, f'must be an integer in 1..{MAX_SEGMENT_ID} (0 is void), got {describe(seg_id)}')
    elif seg_id in seen:
        bad(field, f'duplicate segment id {seg_id}, also segments_info[{seen[seg_id]}]')
    else:
        seen[seg_id] = k


def check_relation(rel: Any, field: str, num_segments: int, numbering: Numbering, owner: str,
                   bad: Report) -> None:
    """``[subject, object, predicate]``: subject and object index the ``num_segments`` segments
    of the ``owner`` (``'image'``, ``'entry'``), the predicate follows ``numbering``."""
    if not isinstance(rel, list) or len(rel) != 3 or not all(map(is_int, rel)):
        bad(field, f'must be [subject, object, predicate] (3 integers), got {describe(rel)}')
        return
    for value, role in zip(rel[:2], ('subject', 'object')):
        if not 0 <= value < num_segments:
            bad(field, f'{role} index {value} is outside 0..{num_segments - 1} '
                       f'(the {owner} has {num_segments} segments)')
    span = _outside(rel[2], numbering.first, numbering.num_predicates)
    if span is not None:
        bad(field, f'predicate {rel[2]} is outside {span} ({numbering.predicate_note})')


def check_image_side(value: Any, field: str, bad: Report) -> None:
    """An image height or width: an integer in 1..MAX_IMAGE_SIDE."""
    if not is_int(value) or not 0 < value <= MAX_IMAGE_SIDE:
        bad(field, f'must be a positive integer up to {MAX_IMAGE_SIDE}, got {describe(value)}')
