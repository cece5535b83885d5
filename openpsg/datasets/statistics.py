"""Predicate frequency counts of an annotation file's training split: the prior of the frequency
bias of the relation heads and of the frequency baselines."""
from __future__ import annotations

import os

import numpy as np
import torch

from ..fileio import atomic_write
from ..structures import NUM_CLASSES, NUM_PREDICATES
from ..structures.pairs import unrelated_pairs
from .annotations import load_annotations, relation_classes, selected_relations, split_rows


def predicate_frequency_counts(ann_file: str, num_classes: int = NUM_CLASSES,
                               num_predicates: int = NUM_PREDICATES,
                               with_no_relation: bool = False) -> np.ndarray:
    """``(C, C, P + 1)`` float64 counts of ``(subject class, object class, predicate)`` over the
    relations of the training split of ``ann_file`` (every relation row of the file). The last
    column, "no relation", stays 0 unless ``with_no_relation``: then it counts the ordered pairs
    of distinct segments of the split's images that have no relation.
    """
    ann = load_annotations(ann_file, with_masks=False)
    if len(ann.classes) != num_classes or len(ann.predicate_classes) != num_predicates:
        raise ValueError(f'{ann_file}: {len(ann.classes)} classes and {len(ann.predicate_classes)} '
                         f'predicates, the model expects {num_classes} and {num_predicates}')
    rows = split_rows(ann, 'train')
    rels, image = selected_relations(ann, rows, unique=False)
    subject, obj = relation_classes(ann, rels, image)
    counts = np.zeros((num_classes, num_classes, num_predicates + 1), dtype=np.float64)
    np.add.at(counts, (subject, obj, rels[:, 2]), 1)
    if with_no_relation:
        for row in rows:
            labels = ann.labels[ann.segments(row)]
            own = ann.relations(row)
            related = np.zeros((len(labels), len(labels)), dtype=bool)
            related[own[:, 0], own[:, 1]] = True
            i, j = unrelated_pairs(torch.from_numpy(related)).numpy().T
            np.add.at(counts, (labels[i], labels[j], num_predicates), 1)
    return counts


def load_frequency_counts(cache: str | None, ann_file: str | None, num_classes: int,
                          num_predicates: int) -> np.ndarray:
    """The counts of :func:`predicate_frequency_counts`, read from the ``.npy`` file ``cache`` when
    it exists, else computed from ``ann_file`` (and written to ``cache``, atomically, when
    given)."""
    shape = (num_classes, num_classes, num_predicates + 1)
    if cache is not None and os.path.isfile(cache):
        counts = np.load(cache, allow_pickle=False)
        if counts.shape != shape:
            raise ValueError(f'{cache}: frequency counts of shape {counts.shape}, expected {shape}')
        return counts
    if ann_file is None:
        raise ValueError('the frequency bias needs `freq_ann_file` (the training annotations) '
                         f'or an existing `freq_cache` file (got {cache!r})')
    counts = predicate_frequency_counts(ann_file, num_classes, num_predicates)
    if cache is not None:
        with atomic_write(cache) as f:
            np.save(f, counts)
    return counts
