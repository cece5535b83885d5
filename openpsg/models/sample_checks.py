"""Checks of a training sample against the model it trains.

A sample that does not fit the model - object classes or predicates outside the model's,
relations pointing at no segment, boxes or masks missing or of the wrong shape - raises
:class:`~openpsg.datasets.errors.DatasetError`, the error of every bad dataset input, whose
message names the file, the image and the field: ``'img7.jpg: image_id=img7: labels: ...'``.
Every model checks the fields it reads with these functions before using them.
"""
from __future__ import annotations

import torch

from ..datasets.errors import DatasetError, problem
from ..structures import ImageMeta, Sample


def sample_error(meta: ImageMeta, field: str, message: str) -> DatasetError:
    """The :class:`DatasetError` for ``field`` of the sample described by ``meta``."""
    return DatasetError(problem(meta.file_name or '<sample>', meta.image_id, field, message))


def check_labels(sample: Sample, num_classes: int) -> None:
    """``sample.labels (N,)`` must be object classes ``0..num_classes - 1``."""
    labels = sample.labels
    bad = labels[(labels < 0) | (labels >= num_classes)]
    if len(bad):
        raise sample_error(sample.meta, 'labels', f'classes {sorted(set(bad.tolist()))} are outside '
                           f'0..{num_classes - 1} (the model has {num_classes} classes)')


def check_boxes(sample: Sample) -> None:
    """``sample.boxes`` must hold one box ``(N, 4)`` per object."""
    expected = (len(sample.labels), 4)
    if tuple(sample.boxes.shape) != expected:
        raise sample_error(sample.meta, 'boxes', f'shape {tuple(sample.boxes.shape)}, expected '
                           f'{expected} (one xyxy box per object)')


def checked_rels(sample: Sample, num_predicates: int) -> torch.Tensor:
    """``sample.rels`` as ``(M, 3)`` rows ``(subject, object, predicate)``: subject and object
    must index the sample's ``N`` segments, predicates be in ``0..num_predicates - 1``."""
    rels, n = sample.rels.reshape(-1, 3), len(sample.labels)
    if not len(rels):
        return rels
    pairs, predicates = rels[:, :2], rels[:, 2]
    bad = pairs[((pairs < 0) | (pairs >= n)).any(1)]
    if len(bad):
        raise sample_error(sample.meta, 'rels', f'subject/object {bad.tolist()} must index the '
                           f'{n} segments (0..{n - 1})')
    bad = predicates[(predicates < 0) | (predicates >= num_predicates)]
    if len(bad):
        raise sample_error(sample.meta, 'rels', f'predicates {sorted(set(bad.tolist()))} are '
                           f'outside 0..{num_predicates - 1} (the model has {num_predicates} '
                           'predicates)')
    return rels


def check_masks(sample: Sample, owner: str) -> None:
    """``sample.masks`` must hold one mask per object at the image size ``(N, H, W)`` (any size
    when ``N = 0``); ``owner`` (the model or part that needs them) is named."""
    masks, n = sample.masks, len(sample.labels)
    size = tuple(sample.img.shape[-2:])
    if masks.dim() != 3 or masks.shape[0] != n or (n and tuple(masks.shape[-2:]) != size):
        raise sample_error(sample.meta, 'masks', f'{owner} needs one mask per object at the image '
                           f'size {(n, *size)}, got {tuple(masks.shape)} (load masks with '
                           'LoadPanopticAnnotations in the pipeline)')
