"""Check a whole annotation file and its images/PNGs, listing every problem (``tools/check_dataset.py``)."""
from __future__ import annotations

from typing import Any, NamedTuple

from ..parallel import parallel_map
from .annotations import Annotations, parse_annotations, read_json, split_rows, statistics
from .errors import DatasetError
from .io import data_path, read_image, read_panoptic

SPLITS = ('train', 'test')


class CheckReport(NamedTuple):
    """``problems``: every error found, one line each (naming file, image_id and field);
    ``notes``: oddities that do not prevent use; ``stats``: :func:`~.annotations.statistics` per
    checked split (``'train'``/``'test'``; images without relations are included and counted)."""

    problems: list[str]
    notes: list[str]
    stats: dict[str, dict[str, Any]]


class _FileJob(NamedTuple):
    ann_file: str
    data_root: str
    allow_outside_root: bool
    image_id: str
    file_name: str
    pan_seg_file_name: str | None
    segment_ids: list[int]
    hw: tuple[int, int]


def check_dataset(ann_file: str, data_root: str, split: str = 'all', check_files: bool = True,
                  with_masks: bool = True, workers: int | None = 0, progress: bool = True,
                  allow_outside_root: bool = False) -> CheckReport:
    """Validate ``ann_file`` and read every image (and panoptic PNG) of ``split`` once.

    ``split`` is ``'all'``, ``'train'`` or ``'test'`` (membership in ``test_image_ids``; images
    without relations are kept). ``check_files=False`` stops after the JSON checks;
    ``with_masks=False`` is for box-only files (no PNGs); ``workers > 0`` reads files in that many
    processes (``None``: one per available core, :func:`openpsg.parallel.default_workers`).
    Images with JSON-level problems are not opened. File names must lead to regular
    files inside ``data_root`` (:func:`~openpsg.paths.resolve_inside`) unless
    ``allow_outside_root``; a name that does not is a problem and is not opened.
    """
    if split not in ('all', *SPLITS):
        raise ValueError(f"split must be 'all', 'train' or 'test', got {split!r}")
    try:
        raw = read_json(ann_file)
    except DatasetError as err:
        return CheckReport(err.problems, [], {})
    ann, problems, notes = parse_annotations(raw, ann_file, with_masks)
    del raw
    splits = SPLITS if split == 'all' else (split,)
    stats = {name: statistics(ann, split_rows(ann, name, drop_no_rels=False)) for name in splits}
    if check_files:
        rows = split_rows(ann, split, drop_no_rels=False)
        jobs = [_file_job(ann, int(r), data_root, with_masks, allow_outside_root) for r in rows]
        for found in parallel_map(_check_files, jobs, len(jobs), workers, 'reading images',
                                  progress=progress):
            problems.extend(found)
    return CheckReport(problems, notes, stats)


def _file_job(ann: Annotations, row: int, data_root: str, with_masks: bool,
              allow_outside_root: bool) -> _FileJob:
    return _FileJob(ann.file, data_root, allow_outside_root, str(ann.image_ids[row]),
                    str(ann.file_names[row]),
                    str(ann.pan_seg_file_names[row]) if with_masks else None,
                    ann.segment_ids[ann.segments(row)].tolist(),
                    (int(ann.heights[row]), int(ann.widths[row])))


def _check_files(context: None, job: _FileJob) -> list[str]:
    """Problems of one image's files: the JPEG and, when there is one, the panoptic PNG."""
    found = []
    img_path = _resolve(job, 'file_name', job.file_name, found)
    if img_path is not None:
        try:
            read_image(img_path, job.image_id, job.hw)
        except DatasetError as err:
            found.extend(err.problems)
    seg_path = (None if job.pan_seg_file_name is None
                else _resolve(job, 'pan_seg_file_name', job.pan_seg_file_name, found))
    if seg_path is not None:
        try:
            read_panoptic(seg_path, job.image_id, job.segment_ids, job.hw)
        except DatasetError as err:
            found.extend(err.problems)
    return found


def _resolve(job: _FileJob, field: str, name: str, found: list[str]) -> str | None:
    try:
        return data_path(job.data_root, name, job.ann_file, job.image_id, field,
                         job.allow_outside_root)
    except DatasetError as err:
        found.extend(err.problems)
        return None
