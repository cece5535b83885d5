"""The Panoptic Scene Graph dataset: COCO images, COCO panoptic PNGs and ``psg.json``."""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np
from torch.utils.data import Dataset, get_worker_info

from ..paths import check_relative_name
from ..registry import DATASETS
from ..structures import GroundTruth
from .annotations import (Annotations, load_annotations, predicate_counts, split_rows, statistics,
                          triplet_counts, triplet_set)
from .errors import DatasetError, problem
from .io import data_path, outside_problem, read_panoptic
from .transforms import Compose

Transform = Callable[[dict], Any]
REL_MODES = ('sample_one', 'dedup')


def sample_one_predicate(rels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Keep one ``(s, o, p)`` row per ``(s, o)`` pair of ``rels (M, 3)``, drawn uniformly at random.

    The draw is over the pair's rows, so an exactly repeated triplet is twice as likely (as in
    OpenPSG). Pairs come out in the order of their first occurrence.
    """
    if len(rels) == 0:
        return rels.reshape(0, 3)
    _, first, group = np.unique(rels[:, :2], axis=0, return_index=True, return_inverse=True)
    group = group.reshape(-1)
    counts = np.bincount(group)
    order = np.argsort(group, kind='stable')
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    picked = order[starts + rng.integers(counts)]
    return rels[picked[np.argsort(first)]]


def _name(transform: Transform) -> str:
    return getattr(transform, '__name__', type(transform).__name__)


def _worker_seed() -> int | None:
    info = get_worker_info()
    return None if info is None else info.seed


@DATASETS.register()
class PSGDataset(Dataset):
    """Panoptic scene graphs read from a ``psg.json``-schema file.

    Args:
        ann_file: path of the annotation file (e.g. ``data/psg/psg.json``).
        data_root: folder that ``file_name`` and ``pan_seg_file_name`` are relative to
            (e.g. ``data/coco``).
        split: ``'train'`` (images not in ``test_image_ids``) or ``'test'`` (images in it).
        pipeline: transforms applied by ``__getitem__``; config dicts (built from ``TRANSFORMS``)
            or callables ``dict -> dict | None``, ``None`` rejecting the sample.
        drop_no_rels: remove images without relations before splitting (OpenPSG's rule; set
            ``False`` for challenge files whose test images are unlabelled).
        max_images: keep only the first ``max_images`` images of the split (file order).
        seed: seed of the dataset's generator (:attr:`rng`), which draws the per-load relation
            sampling, the random transforms (as ``results['rng']``) and the replacement of
            rejected samples. :meth:`reseed` restarts it (the training loader does so before
            every sample). In a plain dataloader worker it is first seeded from
            ``(seed, worker_info.seed)``, so workers draw differently and runs repeat under
            ``torch.manual_seed``.
        rel_mode: ``'sample_one'`` (one random predicate per subject-object pair, re-drawn every
            load) or ``'dedup'`` (exact repeats removed, several predicates per pair kept).
            Default: ``'sample_one'`` for train, ``'dedup'`` for test.
        allow_outside_root: accept ``file_name`` / ``pan_seg_file_name`` that are absolute or
            lead out of ``data_root`` (``..``, symlinks). Off by default: such a name in the split
            is an error naming the file, the image_id and the field, and no file outside
            ``data_root`` is ever opened.

    Object labels are 0-based indices into ``classes`` = thing_classes + stuff_classes;
    predicates are 0-based indices into ``predicates``, both as in the file.
    """

    with_masks = True
    splits: tuple[str, ...] = ('train', 'test')
    max_refetch = 50

    def __init__(self, ann_file: str, data_root: str, split: str = 'train',
                 pipeline: Sequence[Mapping[str, Any] | Transform] = (), drop_no_rels: bool = True,
                 max_images: int | None = None, seed: int | None = None,
                 rel_mode: str | None = None, allow_outside_root: bool = False) -> None:
        self.check_split(split, rel_mode)
        self.ann_file = ann_file
        self.data_root = data_root
        self.allow_outside_root = allow_outside_root
        ann = load_annotations(ann_file, with_masks=self.with_masks)
        self.setup(ann, split_rows(ann, split, drop_no_rels), split, pipeline, max_images, seed,
                   rel_mode)

    def check_split(self, split: str, rel_mode: str | None) -> None:
        """Raise ``ValueError`` for a ``split`` not in :attr:`splits` or an unknown ``rel_mode``."""
        if split not in self.splits:
            raise ValueError(f'split must be one of {self.splits}, got {split!r}')
        if rel_mode is not None and rel_mode not in REL_MODES:
            raise ValueError(f'rel_mode must be one of {REL_MODES}, got {rel_mode!r}')

    def setup(self, ann: Annotations, rows: np.ndarray, split: str,
              pipeline: Sequence[Mapping[str, Any] | Transform], max_images: int | None,
              seed: int | None, rel_mode: str | None) -> None:
        """Serve the images ``rows`` of ``ann`` as the split ``split`` (the end of ``__init__``,
        shared by readers of other file formats)."""
        self.split = split
        self.rel_mode = rel_mode or ('sample_one' if split == 'train' else 'dedup')
        self.ann: Annotations = ann
        self.rows = rows if max_images is None else rows[:max_images]
        self._check_file_names()
        self._index = {str(self.ann.image_ids[r]): i for i, r in enumerate(self.rows)}
        self.pipeline = Compose(pipeline)
        self.reseed(seed)

    # ----------------------------------------------------------------------------- vocabulary
    @property
    def classes(self) -> tuple[str, ...]:
        """Object class names, things first (``thing_classes + stuff_classes``)."""
        return self.ann.classes

    @property
    def predicates(self) -> tuple[str, ...]:
        return self.ann.predicate_classes

    @property
    def num_things(self) -> int:
        return len(self.ann.thing_classes)

    @property
    def image_ids(self) -> list[str]:
        return [str(i) for i in self.ann.image_ids[self.rows]]

    def __len__(self) -> int:
        return len(self.rows)

    # ----------------------------------------------------------------------------- randomness
    def reseed(self, seed: int | None) -> None:
        """Restart the dataset's generator from ``seed`` (``None``: fresh entropy)."""
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._rng_worker = _worker_seed()

    @property
    def rng(self) -> np.random.Generator:
        """The dataset's generator; on first use in a dataloader worker, re-seeded for that worker
        (unless :meth:`reseed` was called there)."""
        worker = _worker_seed()
        if worker != self._rng_worker:
            self._rng_worker = worker
            self._rng = np.random.default_rng([worker] if self.seed is None else [self.seed, worker])
        return self._rng

    # ----------------------------------------------------------------------------- samples
    def _file_columns(self) -> dict[str, np.ndarray]:
        """The annotation table's file-name columns, by field."""
        columns = {'file_name': self.ann.file_names}
        if self.with_masks:
            columns['pan_seg_file_name'] = self.ann.pan_seg_file_names
        return columns

    def _check_file_names(self) -> None:
        """Every file name of the split must stay inside ``data_root`` as written (no absolute
        path, no ``..`` out); symlinks are resolved and checked when a file is opened
        (:meth:`_path`)."""
        problems = []
        columns = self._file_columns().items()
        for row in self.rows.tolist():
            for field, names in columns:
                reason = check_relative_name(str(names[row]), self.allow_outside_root)
                if reason is not None:
                    problems.append(outside_problem(self.data_root, reason, self.ann_file,
                                                    str(self.ann.image_ids[row]), field))
        if problems:
            raise DatasetError(problems)

    def _path(self, row: int, field: str) -> str:
        """The file ``field`` of image ``row`` (checked against ``data_root``, see
        :func:`~openpsg.datasets.io.data_path`)."""
        return data_path(self.data_root, str(self._file_columns()[field][row]), self.ann_file,
                         str(self.ann.image_ids[row]), field, self.allow_outside_root)

    def get_data_info(self, idx: int) -> dict[str, Any]:
        """The pipeline input of image ``idx``.

        Keys: ``image_id`` (str); ``img_path``, ``seg_path`` (absolute; ``seg_path`` ``None`` for
        box-only data); ``file_name``, ``pan_seg_file_name`` (as in the file); ``height``,
        ``width`` (int, original size); ``segment_ids (N,)`` int64 panoptic PNG ids (-1 for
        box-only data); ``labels (N,)`` int64; ``boxes (N, 4)`` float32 xyxy; ``iscrowd (N,)``
        bool; ``is_thing (N,)`` bool; ``rels (M, 3)`` int64 following ``rel_mode``.
        """
        row = int(self.rows[idx])
        ann = self.ann
        seg = ann.segments(row)
        pan_seg_file_name = str(ann.pan_seg_file_names[row]) if self.with_masks else None
        return {
            'image_id': str(ann.image_ids[row]),
            'img_path': self._path(row, 'file_name'),
            'seg_path': self._path(row, 'pan_seg_file_name') if self.with_masks else None,
            'file_name': str(ann.file_names[row]),
            'pan_seg_file_name': pan_seg_file_name,
            'height': int(ann.heights[row]),
            'width': int(ann.widths[row]),
            'segment_ids': ann.segment_ids[seg].copy(),
            'labels': ann.labels[seg].copy(),
            'boxes': ann.boxes[seg].copy(),
            'iscrowd': ann.iscrowd[seg].copy(),
            'is_thing': ann.is_thing[seg].copy(),
            'rels': self._relations(row),
        }

    def _relations(self, row: int) -> np.ndarray:
        if self.rel_mode == 'dedup':
            return self.ann.relations(row, unique=True)
        return sample_one_predicate(self.ann.relations(row), self.rng)

    def __getitem__(self, idx: int) -> Any:
        """The pipeline's output for image ``idx``: its input is :meth:`get_data_info` plus
        ``rng`` (:attr:`rng`, for random transforms). A rejected sample (``None``) is replaced by
        a random other image, at most ``max_refetch`` times in a row."""
        first = idx
        for _ in range(self.max_refetch):
            results = self.pipeline({**self.get_data_info(idx), 'rng': self.rng})
            if results is not None:
                return results
            idx = int(self.rng.integers(len(self)))
        raise DatasetError(problem(
            self.ann_file, str(self.ann.image_ids[self.rows[first]]), 'pipeline',
            f'{self.max_refetch} samples in a row (starting here) were rejected by the pipeline '
            f'[{", ".join(_name(t) for t in self.pipeline.transforms)}]; check the transforms, '
            'e.g. crop sizes that keep no relation'))

    # ----------------------------------------------------------------------------- evaluation
    def get_gt(self, idx: int) -> GroundTruth:
        """Ground truth of image ``idx`` at original resolution (relations: evaluation rule)."""
        row = int(self.rows[idx])
        seg = self.ann.segments(row)
        return GroundTruth(image_id=str(self.ann.image_ids[row]), labels=self.ann.labels[seg].copy(),
                           boxes=self.ann.boxes[seg].copy(), rels=self.ann.relations(row, unique=True),
                           id_map=self._id_map(row), iscrowd=self.ann.iscrowd[seg].copy(),
                           rels_raw=self.ann.relations(row))

    def _id_map(self, row: int) -> np.ndarray | None:
        seg = self.ann.segments(row)
        return read_panoptic(self._path(row, 'pan_seg_file_name'),
                             str(self.ann.image_ids[row]), self.ann.segment_ids[seg].tolist(),
                             (int(self.ann.heights[row]), int(self.ann.widths[row])))

    def index_of(self, image_id: str) -> int:
        """Position of ``image_id`` in this split."""
        if image_id not in self._index:
            raise KeyError(f'{self.ann_file}: image_id {image_id!r} is not in the {self.split} split '
                           f'({len(self)} images)')
        return self._index[image_id]

    def get_gt_by_id(self, image_id: str) -> GroundTruth:
        return self.get_gt(self.index_of(image_id))

    # ----------------------------------------------------------------------------- statistics
    def aspect_ratios(self) -> np.ndarray:
        """``(len,)`` float64 width / height of every image (for aspect-ratio grouping)."""
        return self.ann.widths[self.rows] / self.ann.heights[self.rows]

    def triplet_counts(self) -> np.ndarray:
        """``(C, C, P)`` int64 count of every ``(subject label, object label, predicate)``
        relation row of the split (exact repeats counted each time), e.g. for a frequency bias."""
        return triplet_counts(self.ann, self.rows)

    def triplets(self) -> set[tuple[int, int, int]]:
        """Distinct ``(subject label, object label, predicate)`` of the split (zero-shot recall)."""
        return triplet_set(self.ann, self.rows)

    def predicate_frequencies(self) -> np.ndarray:
        """``(num_predicates,)`` int64 relation count per predicate (exact repeats counted once)."""
        return predicate_counts(self.ann, self.rows)

    def statistics(self) -> dict[str, Any]:
        """Images, objects and relations per image, predicate histogram (see
        :func:`openpsg.datasets.annotations.statistics`)."""
        return statistics(self.ann, self.rows)

    def __repr__(self) -> str:
        return (f'{type(self).__name__}({self.ann_file!r}, split={self.split!r}, images={len(self)}, '
                f'classes={len(self.classes)}, predicates={len(self.predicates)})')

