"""Dataset-level evaluation: scene-graph recall of both protocols and PQ in one streamed pass.

    results = evaluate(predictions, PSGDataset('data/psg/psg.json', 'data/coco', split='test'),
                       metrics=('sgdet', 'PQ'), workers=4)
    print(format_results(results))

Ground truth is read one image at a time (``dataset.get_gt_by_id``), scored, and dropped; only the
small per-image records are kept, so memory does not grow with the image size. Per image, the
pixels of the predicted masks are counted once against the ground-truth id map (one joint
histogram when the masks do not overlap) and those counts serve both protocols and PQ. With
``workers > 0`` images are scored by a process pool, in chunks, and the records are combined in
split order, so the numbers do not depend on ``workers``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from ..parallel import parallel_map, resolve_workers
from ..structures.labels import MODES
from ..structures.scene_graph import GroundTruth, Prediction, index_predictions
from .matching import MaskGeometry
from .panoptic import PQ_KEYS, PQStat, pq_stats_counts, pq_stats_image, summarize_pq
from .sgg import SGGConfig, evaluate_image, prediction_geometry, summarize

PANOPTIC = 'PQ'


def evaluate(predictions: Iterable[Prediction], dataset: Any,
             metrics: Sequence[str] = ('sgdet', PANOPTIC),
             protocols: Sequence[str] = ('openpsg', 'fair'), ks: Sequence[int] = (20, 50, 100),
             dedup: str = 'first', iou_thr: float = 0.5, match: str | None = None,
             zero_shot_triplets: set[tuple[int, int, int]] | None = None,
             workers: int | None = 0,
             logger: logging.Logger | None = None) -> dict[str, float]:
    """Score ``predictions`` against the test images of ``dataset``.

    Args:
        predictions: one :class:`Prediction` per image, in any order, matched to
            ``dataset.image_ids`` by ``image_id``. A test image without prediction counts as
            "missing" (skipped by the ``openpsg`` protocol, recall 0 under ``fair``; all its
            segments are false negatives for PQ). A prediction for an image that is not in the
            dataset, or two for one image, is an error.
        dataset: provides ``image_ids``, ``classes``, ``predicates``, ``num_things`` and
            ``get_gt_by_id(image_id) -> GroundTruth`` (e.g. :class:`~openpsg.datasets.PSGDataset`).
        metrics: any of ``predcls``, ``sgcls``, ``sgdet`` (scene-graph modes) and ``PQ``.
        protocols, ks, dedup, iou_thr, match, zero_shot_triplets: scene-graph settings, see
            :class:`~openpsg.evaluation.sgg.SGGConfig`; ``match=None`` compares boxes for a
            dataset whose ``with_masks`` is False (box-only, e.g. Visual Genome), else masks.
        workers: processes scoring images in parallel (0 = in this process; ``None`` =
            :func:`openpsg.parallel.default_workers`: one per available core).
        logger: if given, receives the :func:`format_results` table.

    Returns:
        One flat dict of percentages: ``'<mode>/<protocol>/<metric>'`` (e.g.
        ``'sgdet/openpsg/R@20'``, ``'sgdet/fair/ng-mR@50'``) for each scene-graph mode, and
        ``PQ, SQ, RQ, PQ_th, SQ_th, RQ_th, PQ_st, SQ_st, RQ_st`` when PQ is asked for.
    """
    unknown = [m for m in metrics if m not in MODES + (PANOPTIC,)]
    if unknown or not metrics:
        raise ValueError(f'evaluate: unknown metric(s) {unknown}; choose from '
                         f'{list(MODES) + [PANOPTIC]}')
    if match is None:
        match = 'mask' if getattr(dataset, 'with_masks', True) else 'box'
    configs = {mode: SGGConfig(mode=mode, protocols=tuple(protocols), ks=tuple(ks), iou_thr=iou_thr,
                               match=match, dedup=dedup, num_predicates=len(dataset.predicates),
                               zero_shot_triplets=zero_shot_triplets)
               for mode in MODES if mode in metrics}
    is_thing = np.arange(len(dataset.classes)) < dataset.num_things
    scoring = _Scoring(dataset, configs, is_thing if PANOPTIC in metrics else None)

    image_ids = list(dataset.image_ids)
    by_id = index_predictions(predictions, image_ids, 'evaluate',
                              f"images evaluated ({getattr(dataset, 'ann_file', 'dataset')})")
    workers = resolve_workers(workers, len(image_ids))
    compact = workers > 0  # RLE masks travel to the worker processes far cheaper than dense ones
    tasks = ((image_id, _pop(by_id, image_id, compact)) for image_id in image_ids)
    records: dict[str, list] = {mode: [] for mode in configs}
    pq_total = PQStat.zeros(is_thing)
    for per_mode, pq in parallel_map(_score_image, tasks, len(image_ids), workers, 'evaluate',
                                      scoring):
        for mode, record in per_mode.items():
            records[mode].append(record)
        if pq is not None:
            pq_total = pq_total + pq

    results: dict[str, float] = {}
    for mode, cfg in configs.items():
        summary = summarize(records[mode], cfg)
        results.update({f'{mode}/{key}': value for key, value in summary.items()})
    if PANOPTIC in metrics:
        results.update(summarize_pq(pq_total))
    if logger is not None:
        logger.info('evaluation on %d images\n%s', len(image_ids), format_results(results))
    return results


def _pop(by_id: dict[str, Prediction], image_id: str, compact: bool) -> Prediction | None:
    pred = by_id.pop(image_id, None)
    if compact and pred is not None and isinstance(pred.masks, np.ndarray):
        return pred.compact()
    return pred


@dataclass(frozen=True)
class _Scoring:
    """What every image is scored with: the dataset, one config per scene-graph mode and, when PQ
    is asked for, which classes are things."""

    dataset: Any
    configs: dict[str, SGGConfig]
    is_thing: np.ndarray | None


def _score_image(scoring: _Scoring, task: tuple[str, Prediction | None]
                 ) -> tuple[dict[str, Any], PQStat | None]:
    """One image -> (scene-graph record per mode, PQ counts or ``None``).

    The pixel counts of the predicted masks against the ground truth are computed once and serve
    SGDet under both protocols and PQ.
    """
    image_id, pred = task
    gt = scoring.dataset.get_gt_by_id(image_id)
    sgdet_masks = 'sgdet' in scoring.configs and scoring.configs['sgdet'].match == 'mask'
    geometry = None
    if pred is not None and pred.masks is not None and gt.id_map is not None and (
            sgdet_masks or (scoring.is_thing is not None and pred.pan_id_map is None)):
        geometry = prediction_geometry(gt, pred)
    records = {mode: evaluate_image(gt, pred, cfg, rels_raw=gt.rels_raw,
                                    geometry=geometry if mode == 'sgdet' else None)
               for mode, cfg in scoring.configs.items()}
    pq = None if scoring.is_thing is None else _panoptic_stats(gt, pred, geometry,
                                                               scoring.is_thing)
    return records, pq


def _panoptic_stats(gt: GroundTruth, pred: Prediction | None, geometry: MaskGeometry | None,
                    is_thing: np.ndarray) -> PQStat:
    if gt.id_map is None:
        raise ValueError(f'PQ, image {gt.image_id}: the ground truth has no panoptic map '
                         '(box-only dataset)')
    if pred is not None and pred.pan_id_map is None and geometry is not None:
        return pq_stats_counts(geometry.resolved(), gt.labels, gt.iscrowd, pred.labels, is_thing,
                               image_id=gt.image_id)
    if pred is None:
        pred_map, pred_labels = np.full(gt.id_map.shape, -1, np.int32), np.zeros(0, np.int64)
    else:
        pred_map, pred_labels = pred.panoptic(gt.id_map.shape)
    return pq_stats_image(gt.id_map, gt.labels, gt.iscrowd, pred_map, pred_labels, is_thing,
                          image_id=gt.image_id)


def format_results(results: dict[str, float]) -> str:
    """A readable table: per scene-graph mode one row per metric and one column per protocol,
    then PQ/SQ/RQ for All, Things and Stuff."""
    blocks = []
    modes: dict[str, dict[str, dict[str, float]]] = {}
    for key, value in results.items():
        parts = key.split('/')
        if len(parts) == 3:
            mode, protocol, metric = parts
            modes.setdefault(mode, {}).setdefault(metric, {})[protocol] = value
    for mode, rows in modes.items():
        protocols = list(dict.fromkeys(p for row in rows.values() for p in row))
        width = max(len(mode), *(len(m) for m in rows))
        lines = [f'{mode:<{width}}' + ''.join(f'{p:>10}' for p in protocols)]
        for metric, row in rows.items():
            digits = 0 if metric.startswith('num_') else 2
            lines.append(f'{metric:<{width}}' + ''.join(
                f'{row[p]:>10.{digits}f}' if p in row else f'{"-":>10}' for p in protocols))
        blocks.append('\n'.join(lines))
    if all(k in results for k in PQ_KEYS):
        lines = [f'{"":<4}{"All":>10}{"Things":>10}{"Stuff":>10}']
        for name in ('PQ', 'SQ', 'RQ'):
            lines.append(f'{name:<4}' + ''.join(f'{results[name + group]:>10.2f}'
                                                for group in ('', '_th', '_st')))
        blocks.append('\n'.join(lines))
    return '\n\n'.join(blocks)
