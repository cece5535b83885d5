"""The PSG challenge submission: writing it from predictions, and reading + validating it.

Layout of a submission folder::

    relation.json      # list, one entry per test image, in split order
    panseg/0.png ...   # one RGB panoptic PNG per entry (segment id = R + 256 G + 256^2 B, 0 = void)

Each entry is ``{"image_id": str, "relations": [[s, o, predicate], ...], "segments_info":
[{"id": int, "category_id": int}, ...], "pan_seg_file_name": "<k>.png"}``. ``s``/``o`` index
``segments_info``; relations are ranked best first. This file format is the only place in openpsg
where labels are **1-based**: ``predicate`` is 1..56 and ``category_id`` is 1..133 (OpenPSG's
grader reads them so). ``image_id`` is optional when reading: without it entries are matched to the
test images by position, as in OpenPSG's own submissions.

Which folders may receive a submission, and how it is put in place, is in
:mod:`~openpsg.evaluation.submission_folder`. When reading, every path must lead to a regular
file inside the submission folder (symlinks resolved); anything else is a listed problem and is
never opened.

Grading (:func:`grade_submission`, :func:`write_scores`) reads the submission, scores SGDet under
the chosen protocols plus PQ, and writes ``scores.txt`` (OpenPSG's three lines: recall and mean
recall at 20 as fractions, PQ in percent) and ``scores.json`` (everything, in percent), both or
neither (:func:`remove_scores` clears an earlier run's before grading starts).
"""
from __future__ import annotations

import json
import logging
import math
import os
import shutil
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
from PIL import Image

from ..datasets.errors import DatasetError, problem
from ..datasets.io import read_panoptic
from ..datasets.validate import (Numbering, check_label, check_relation, check_segment_id,
                                 type_name)
from ..fileio import write_files_atomically
from ..paths import OutsideRootError, resolve_inside
from ..safe_json import JSONFileError, describe, load_json
from ..structures.labels import NUM_CLASSES, NUM_PREDICATES
from ..parallel import parallel_map
from ..structures.masks import VOID, id2rgb, id_map_segments
from ..structures.scene_graph import Prediction, index_predictions
from .panoptic import PQ_KEYS
from .runner import evaluate
from .submission_folder import (PANSEG_DIR, RELATION_FILE, check_submission_dir,
                                install_submission, make_staging_dir)

ENTRY_KEYS = ('relations', 'segments_info', 'pan_seg_file_name')
SCORE_FILES = ('scores.txt', 'scores.json')
GRADE_KS = (20, 50, 100)
PROTOCOL_METRICS = {'openpsg': ('R', 'mR'), 'fair': ('R', 'mR', 'ngR', 'ng-mR')}
MAX_SEGMENTS = 1000  # per entry: a submission's masks are decoded densely, N x H x W
NUMBERING = Numbering(first=1, num_classes=NUM_CLASSES, num_predicates=NUM_PREDICATES,
                      class_note='1-based classes', predicate_note='1-based predicates')


class SubmissionError(DatasetError):
    """A malformed submission; ``problems`` lists every problem found, one string each."""


# --------------------------------------------------------------------------------------- writing
def write_submission(predictions: Iterable[Prediction], image_ids: Sequence[str], out_dir: str,
                     max_rels: int = 100,
                     image_shapes: Mapping[str, tuple[int, int]] | None = None) -> None:
    """Write ``relation.json`` and ``panseg/<k>.png`` for the test images ``image_ids`` (in order).

    ``predictions`` are matched to ``image_ids`` by ``image_id``; every test image needs one.
    Segment ``k`` of the PNG (id ``k + 1``) is the prediction's segment in index order, painted
    lowest index first on overlap; segments left with no pixel are dropped together with the
    relations that use them. Each relation row keeps its rank; its predicate is the argmax of
    ``predicate_scores``; at most ``max_rels`` rows are written (0 = all). ``image_shapes`` gives
    ``(H, W)`` for predictions without any mask to tell the size.

    ``out_dir`` must be absent, empty or a previous submission
    (:func:`~openpsg.evaluation.submission_folder.check_submission_dir`, else
    :class:`~openpsg.evaluation.submission_folder.SubmissionDirError` before anything is
    written). The submission is written beside ``out_dir`` and swapped into place, so on any
    error no (partial) output appears and an existing ``out_dir`` is left untouched; on success
    only a previous submission's files are replaced.
    """
    _check_max_rels(max_rels)
    by_id = index_predictions(predictions, image_ids, 'submission', 'test images', complete=True)
    check_submission_dir(out_dir)
    target, staging = make_staging_dir(out_dir)
    try:
        os.mkdir(os.path.join(staging, PANSEG_DIR))
        entries = []
        for k, image_id in enumerate(image_ids):
            shape = None if image_shapes is None else image_shapes.get(image_id)
            entry, pan = _submission_entry(by_id[image_id], k, max_rels, shape)
            Image.fromarray(pan).save(os.path.join(staging, PANSEG_DIR,
                                                   entry['pan_seg_file_name']))
            entries.append(entry)
        with open(os.path.join(staging, RELATION_FILE), 'w', encoding='utf-8') as f:
            json.dump(entries, f)
        install_submission(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _check_max_rels(max_rels: int) -> None:
    if max_rels < 0:
        raise ValueError(f'submission: max_rels must be 0 (all) or positive, got {max_rels}')


def _submission_entry(pred: Prediction, k: int, max_rels: int, shape: tuple[int, int] | None
                      ) -> tuple[dict[str, Any], np.ndarray]:
    """The ``relation.json`` entry and the ``(H, W, 3)`` uint8 PNG of one prediction."""
    where = f'submission: image_id {pred.image_id}'
    labels = np.asarray(pred.labels, dtype=np.int64)
    if len(labels) and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise ValueError(f'{where}: labels must be in 0..{NUM_CLASSES - 1}, got '
                         f'{sorted(set(labels[(labels < 0) | (labels >= NUM_CLASSES)].tolist()))}')
    scores = np.asarray(pred.predicate_scores)
    pairs = np.asarray(pred.pairs, dtype=np.int64).reshape(-1, 2)
    if scores.shape != (len(pairs), NUM_PREDICATES):
        raise ValueError(f'{where}: predicate_scores has shape {scores.shape}, expected '
                         f'({len(pairs)}, {NUM_PREDICATES}) for {len(pairs)} pairs')
    if len(pairs) and (pairs.min() < 0 or pairs.max() >= len(labels)):
        raise ValueError(f'{where}: pairs index segments {int(pairs.min())}..{int(pairs.max())} '
                         f'but there are {len(labels)} segments')
    shape = pred.image_shape or shape
    if shape is None:
        raise ValueError(f'{where}: the prediction has no mask to tell the image size; pass '
                         'image_shapes')
    id_map = pred.segment_id_map(shape)

    present = np.bincount(id_map[id_map != VOID], minlength=len(labels)) > 0
    new_index = np.cumsum(present) - 1
    keep = present[pairs[:, 0]] & present[pairs[:, 1]]
    rows = np.flatnonzero(keep)[:max_rels] if max_rels > 0 else np.flatnonzero(keep)
    predicates = scores[rows].argmax(1) + 1
    relations = np.concatenate([new_index[pairs[rows]], predicates[:, None]], axis=1)
    segment_ids = np.concatenate([[0], new_index + 1])[id_map + 1]  # void -> 0
    entry = {
        'image_id': pred.image_id,
        'relations': relations.tolist(),
        'segments_info': [{'id': j + 1, 'category_id': int(label) + 1}
                          for j, label in enumerate(labels[present])],
        'pan_seg_file_name': f'{k}.png',
    }
    return entry, id2rgb(segment_ids)


# --------------------------------------------------------------------------------------- reading
def read_submission(sub_dir: str, expected_image_ids: Sequence[str], max_rels: int = 20,
                    image_shapes: Mapping[str, tuple[int, int]] | None = None,
                    workers: int = 0) -> list[Prediction]:
    """Validate a submission folder and turn it into one :class:`Prediction` per expected image.

    Returns predictions in ``expected_image_ids`` order: 0-based labels (``category_id - 1``),
    segment scores 1, masks (RLE) ``rgb2id(png) == id``, the first ``max_rels`` relations
    (0 = all) with one-hot ``predicate_scores`` at ``predicate - 1`` and ``triplet_scores``
    decreasing with row order. ``image_shapes`` (``image_id -> (H, W)``) enables the PNG size check.
    ``workers > 0`` reads the entries in that many processes.

    Raises :class:`SubmissionError` listing every problem (entry index, image_id, field): missing
    ``relation.json`` or PNG, wrong number of entries, unknown/duplicate/missing image_id, malformed
    fields, segment id absent from its PNG, duplicate segment ids, relation index out of range,
    predicate outside 1..56, category outside 1..133, PNG size different from the image, more than
    ``MAX_SEGMENTS`` segments, a path that is not a regular file inside ``sub_dir`` (``..``,
    absolute, a symlink leading out, a device or FIFO), unreadable or pathological JSON.
    """
    _check_max_rels(max_rels)
    rel_path = os.path.join(sub_dir, RELATION_FILE)
    entries = _load_relation_file(sub_dir, rel_path, len(expected_image_ids))
    problems: list[str] = []
    aligned = _align_entries(entries, expected_image_ids, rel_path, problems)
    tasks = [(entries[i], i, image_id, None if image_shapes is None else image_shapes.get(image_id))
             for i, image_id in aligned]
    predictions: dict[str, Prediction] = {}
    for found, pred in parallel_map(_read_entry, tasks, len(tasks), workers, 'read submission',
                                    (sub_dir, rel_path, max_rels)):
        problems.extend(found)
        if pred is not None:
            predictions[pred.image_id] = pred
    if problems:
        raise SubmissionError(problems)
    return [predictions[image_id] for image_id in expected_image_ids]


def _load_relation_file(sub_dir: str, rel_path: str, expected: int) -> list:
    def fail(message: str) -> SubmissionError:
        return SubmissionError(problem(rel_path, None, RELATION_FILE, message))

    try:
        resolve_inside(sub_dir, RELATION_FILE)
        entries = load_json(rel_path)
    except OutsideRootError as err:
        raise fail(f'{err} (submission folder {sub_dir})') from None
    except JSONFileError as err:
        raise fail(err.reason) from None
    if not isinstance(entries, list):
        raise fail(f'must be a JSON list with one entry per test image ({expected}), got '
                   f'{type_name(entries)}')
    return entries


def _entry_problem(i: int, file: str, image_id: str | None, field: str, message: str) -> str:
    return f'entry {i}: ' + problem(file, image_id, field, message)


def _align_entries(entries: list, expected: Sequence[str], rel_path: str,
                   problems: list[str]) -> list[tuple[int, str]]:
    """``(entry index, image_id)`` pairs to read; problems of count and identity are recorded."""
    if len(entries) != len(expected):
        problems.append(problem(rel_path, None, RELATION_FILE, f'{len(entries)} entries, expected '
                                f'one per test image ({len(expected)})'))
    with_id = [isinstance(e, dict) and 'image_id' in e for e in entries]
    if not any(with_id):
        return [(i, image_id) for i, image_id in enumerate(expected[:len(entries)])]
    wanted = set(expected)
    seen: dict[str, int] = {}
    aligned = []
    for i, entry in enumerate(entries):
        image_id = entry.get('image_id') if isinstance(entry, dict) else None
        if not with_id[i]:
            problems.append(_entry_problem(i, rel_path, None, 'image_id',
                                           'missing (other entries have one; give it everywhere '
                                           'or nowhere)'))
        elif not isinstance(image_id, str):
            problems.append(_entry_problem(i, rel_path, describe(image_id), 'image_id',
                                           f'must be a string, got {type_name(image_id)}'))
        elif image_id not in wanted:
            problems.append(_entry_problem(i, rel_path, image_id, 'image_id',
                                           'unknown image_id (not a test image)'))
        elif image_id in seen:
            problems.append(_entry_problem(i, rel_path, image_id, 'image_id',
                                           f'duplicate, also entry {seen[image_id]}'))
        else:
            seen[image_id] = i
            aligned.append((i, image_id))
    missing = [image_id for image_id in expected if image_id not in seen]
    if missing:
        shown = ', '.join(repr(m) for m in missing[:5]) + (' ...' if len(missing) > 5 else '')
        problems.append(problem(rel_path, None, 'image_id',
                                f'{len(missing)} test image(s) have no entry: {shown}'))
    return aligned


def _read_entry(context: tuple[str, str, int],
                task: tuple[Any, int, str, tuple[int, int] | None]
                ) -> tuple[list[str], Prediction | None]:
    """Validate one entry and its PNG -> ``(problems, prediction)`` (``None`` if any problem).

    ``context`` = ``(sub_dir, path of relation.json, max_rels)``; ``task`` = ``(entry, entry index,
    image_id, expected image (H, W) or None)``.
    """
    sub_dir, rel_path, max_rels = context
    entry, i, image_id, shape = task
    found: list[str] = []

    def bad(field: str, message: str, file: str = rel_path) -> None:
        found.append(_entry_problem(i, file, image_id, field, message))

    if not isinstance(entry, dict):
        bad('entry', f'must be an object, got {type_name(entry)}')
        return found, None
    for key in ENTRY_KEYS:
        if key not in entry:
            bad(key, 'missing')
    segments = _list_field(entry, 'segments_info', bad)
    relations = _list_field(entry, 'relations', bad)
    if len(segments) > MAX_SEGMENTS:
        bad('segments_info', f'{len(segments)} segments; an entry may have at most {MAX_SEGMENTS}')
        return found, None

    categories: list[int] = []
    first: dict[int, int] = {}
    for k, seg in enumerate(segments):
        field = f'segments_info[{k}]'
        if not isinstance(seg, dict):
            bad(field, f'must be an object {{id, category_id}}, got {type_name(seg)}')
            continue
        check_segment_id(seg.get('id'), f'{field}.id', first, k, bad)
        check_label(seg.get('category_id'), f'{field}.category_id', NUMBERING, bad)
        categories.append(seg.get('category_id'))
    for j, rel in enumerate(relations):
        check_relation(rel, f'relations[{j}]', len(segments), NUMBERING, 'entry', bad)

    id_map = None
    name = entry.get('pan_seg_file_name')
    if not isinstance(name, str) or not name:
        if 'pan_seg_file_name' in entry:
            bad('pan_seg_file_name', f'must be a PNG file name, got {describe(name)}')
    else:
        try:
            png = resolve_inside(sub_dir, os.path.join(PANSEG_DIR, name))
            id_map = read_panoptic(png, image_id, list(first), shape)
        except OutsideRootError as err:
            bad('pan_seg_file_name', f'{err} (submission folder {sub_dir})')
        except DatasetError as err:
            found.extend(f'entry {i}: {p}' for p in err.problems)

    if found:
        return found, None
    return found, _to_prediction(image_id, id_map, np.asarray(categories, np.int64) - 1,
                                 np.asarray(relations, np.int64).reshape(-1, 3), max_rels)


def _list_field(entry: dict, key: str, bad) -> list:
    value = entry.get(key, [])
    if not isinstance(value, list):
        bad(key, f'must be a list, got {type_name(value)}')
        return []
    return value


def _to_prediction(image_id: str, id_map: np.ndarray, labels: np.ndarray, relations: np.ndarray,
                   max_rels: int) -> Prediction:
    if max_rels > 0:
        relations = relations[:max_rels]
    r = len(relations)
    predicate_scores = np.zeros((r, NUM_PREDICATES), np.float32)
    predicate_scores[np.arange(r), relations[:, 2] - 1] = 1.0
    masks, boxes = id_map_segments(id_map, len(labels))
    return Prediction(image_id=image_id, labels=labels, scores=np.ones(len(labels), np.float32),
                      boxes=boxes, masks=masks,
                      pairs=relations[:, :2].copy(), predicate_scores=predicate_scores,
                      triplet_scores=np.arange(r, 0, -1, dtype=np.float32) / max(r, 1))


# --------------------------------------------------------------------------------------- grading
def grade_submission(sub_dir: str, dataset: Any, max_rels: int = 20,
                     protocols: Sequence[str] = ('openpsg', 'fair'), dedup: str = 'first',
                     workers: int = 0, logger: logging.Logger | None = None
                     ) -> dict[str, dict[str, float]]:
    """Read, validate and score a submission against the test images of ``dataset`` (SGDet + PQ).

    ``dataset`` is a :class:`~openpsg.datasets.PSGDataset` (its ``image_ids`` in split order, image
    sizes from ``get_data_info``). Returns ``{protocol: {'R@20': ..., 'mR@20': ..., ...},
    'panoptic': {'PQ': ..., ...}}`` in percent: ``R@K, mR@K`` for ``openpsg`` and additionally
    ``ngR@K, ng-mR@K`` for ``fair``, K in 20/50/100. Raises :class:`SubmissionError` for a
    malformed submission (before anything is scored).
    """
    shapes = {}
    for idx, image_id in enumerate(dataset.image_ids):
        info = dataset.get_data_info(idx)
        shapes[image_id] = (info['height'], info['width'])
    predictions = read_submission(sub_dir, dataset.image_ids, max_rels, shapes, workers)
    results = evaluate(predictions, dataset, metrics=('sgdet', 'PQ'), protocols=protocols,
                       ks=GRADE_KS, dedup=dedup, workers=workers, logger=logger)
    scores = {protocol: {f'{metric}@{k}': results[f'sgdet/{protocol}/{metric}@{k}']
                         for k in GRADE_KS for metric in PROTOCOL_METRICS[protocol]}
              for protocol in protocols}
    scores['panoptic'] = {key: results[key] for key in PQ_KEYS}
    return scores


def remove_scores(out_dir: str) -> list[str]:
    """Delete ``scores.txt`` / ``scores.json`` left in ``out_dir`` by an earlier run (call it
    before grading, so that a run that fails in any way leaves no score). Returns the removed
    paths."""
    removed = []
    for name in SCORE_FILES:
        path = os.path.join(out_dir, name)
        if os.path.isfile(path) or os.path.islink(path):
            os.remove(path)
            removed.append(path)
    return removed


def write_scores(scores: Mapping[str, Mapping[str, float]], out_dir: str) -> None:
    """Write ``out_dir/scores.json`` (``scores`` as given, NaN as ``null``) and
    ``out_dir/scores.txt``: ``Recall R 20``, ``MeanRecall R 20`` (fractions 0-1, from the
    ``openpsg`` protocol, or ``fair`` when only that one was scored) and ``PQ`` (0-100).

    The two files are written as one (:func:`~openpsg.fileio.write_files_atomically`): if either
    cannot be written (e.g. a full disk) neither is left, nor any temporary file."""
    protocol = 'openpsg' if 'openpsg' in scores else 'fair'
    lines = [f'Recall R 20: {scores[protocol]["R@20"] / 100}',
             f'MeanRecall R 20: {scores[protocol]["mR@20"] / 100}',
             f'PQ: {scores["panoptic"]["PQ"]}']
    as_json = {group: {k: None if math.isnan(v) else v for k, v in values.items()}
               for group, values in scores.items()}
    texts = ('\n'.join(lines) + '\n', json.dumps(as_json, indent=2) + '\n')
    write_files_atomically({os.path.join(out_dir, name): text
                            for name, text in zip(SCORE_FILES, texts)})
