"""Scene-graph metrics per image and over a dataset, under two protocols side by side.

    cfg = SGGConfig(mode='sgdet')
    records = [evaluate_image(gt, pred, cfg) for gt, pred in images]  # any process, any order
    results = summarize(records, cfg)          # {'openpsg/R@20': 28.4, 'fair/mR@50': 11.6, ...}
    print(per_predicate_table(records, cfg, PREDICATES))

Protocols (see :mod:`.openpsg_protocol` and :mod:`.fair_protocol` for the rules):

* ``openpsg`` reproduces OpenPSG's evaluator, the one published tables used: rows in emitted
  order, IoU ``>=`` threshold, images with no prediction or no rows skipped, GT duplicates removed.
* ``fair`` is the SingleMPO protocol of fair-psgg: one-to-one label-gated matching with IoU ``>``
  threshold, duplicate pairs de-duplicated before ranking by score, missing or empty predictions
  scored 0, GT triplets counted as annotated (duplicates twice).

Metrics (percent): ``R@K`` (mean over images of the per-image recall), ``mR@K`` (per predicate, the
mean over the images containing it of its per-image recall, then the mean over predicates),
``ngR@K``/``ng-mR@K`` (no graph constraint), ``zR@K`` (recall of GT triplets whose
(subject label, object label, predicate) is not in ``zero_shot_triplets``, over images having
such triplets), ``PhrDet_R@K``/``PhrDet_mR@K`` (``openpsg``, SGDet) and ``A@K`` (``openpsg`` pair
accuracy, PredCls/SGCls: GT triplets hit by the first K rows whose pair is a GT pair, summed over
images, over all GT triplets). ``openpsg`` divides the predicate sum by ``num_predicates``
(a predicate absent from the evaluated GT counts 0); ``fair`` averages over the predicates present
(so it is never NaN). Both report ``num_images`` (evaluated) and ``num_skipped``.

Modes: ``predcls`` (rows index the GT segments; GT labels and masks are used), ``sgcls`` (rows index
the GT segments; predicted labels, GT masks), ``sgdet`` (predicted labels and masks). With
``match='box'`` segments are compared by box IoU (VG-style datasets without masks).

Under ``sgdet``, ``openpsg`` compares each predicted mask as given (masks may overlap), while
``fair`` first turns them into one id map where the lowest index wins on overlap.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from ..structures.labels import MODES
from ..structures.scene_graph import GroundTruth, Prediction
from .fair_protocol import DEDUP_MODES, fair_triplet_hits
from .matching import (BoxGeometry, EvaluationError, MaskGeometry, Relations, UnionIoU,
                       input_error)
from .openpsg_protocol import openpsg_triplet_hits

PROTOCOLS = ('openpsg', 'fair')
MATCH_KINDS = ('mask', 'box')
OPENPSG_BOX_EPS = 1e-6  # mmdet bbox_overlaps clamps the union to this

__all__ = ['EvaluationError', 'ImageRecord', 'ProtocolRecord', 'SGGConfig', 'evaluate_image',
           'per_predicate_recall', 'per_predicate_table', 'prediction_geometry', 'summarize']


@dataclass(frozen=True)
class SGGConfig:
    """Scene-graph evaluation settings (picklable; shared by every image of a run).

    Attributes:
        mode: ``'predcls'``, ``'sgcls'`` or ``'sgdet'``.
        protocols: any of ``'openpsg'`` and ``'fair'``.
        ks: the K of every ``@K`` metric (positive ints).
        iou_thr: segment IoU threshold (``openpsg``: ``>=``, ``fair``: ``>``).
        match: ``'mask'`` (panoptic masks) or ``'box'``.
        dedup: how ``fair`` treats several rows of one (subject, object) pair:
            ``'first'``, ``'max'``, ``'ng'``, ``'fail'`` or ``'none'``.
        num_predicates: width of ``predicate_scores`` (56 for PSG).
        zero_shot_triplets: ``(subject label, object label, predicate)`` seen in training; when
            given, ``zR@K`` is the recall of the GT triplets not in this set.
    """

    mode: str = 'sgdet'
    protocols: tuple[str, ...] = PROTOCOLS
    ks: tuple[int, ...] = (20, 50, 100)
    iou_thr: float = 0.5
    match: str = 'mask'
    dedup: str = 'first'
    num_predicates: int = 56
    zero_shot_triplets: frozenset[tuple[int, int, int]] | None = None

    def __post_init__(self) -> None:
        def choose(name: str, value: object, choices: Sequence[str]) -> None:
            if value not in choices:
                raise ValueError(f'SGGConfig.{name}={value!r}; choose from {list(choices)}')

        choose('mode', self.mode, MODES)
        choose('match', self.match, MATCH_KINDS)
        choose('dedup', self.dedup, DEDUP_MODES)
        object.__setattr__(self, 'protocols', tuple(self.protocols))
        if not self.protocols:
            raise ValueError('SGGConfig.protocols is empty')
        for protocol in self.protocols:
            choose('protocols', protocol, PROTOCOLS)
        object.__setattr__(self, 'ks', tuple(int(k) for k in self.ks))
        if not self.ks or min(self.ks) < 1:
            raise ValueError(f'SGGConfig.ks={self.ks!r}; give one or more positive ints')
        if self.num_predicates < 1:
            raise ValueError(f'SGGConfig.num_predicates={self.num_predicates!r}; must be positive')
        if self.zero_shot_triplets is not None:
            object.__setattr__(self, 'zero_shot_triplets', frozenset(
                tuple(int(v) for v in t) for t in self.zero_shot_triplets))


@dataclass
class ProtocolRecord:
    """One image's counts under one protocol, per predicate present in its GT.

    ``predicates (U,)`` the predicates of its GT triplets, ``gt_counts (U,)`` their GT triplets,
    ``hits`` metric name (``'R'``, ``'ngR'``, ``'PhrDet'``, ``'A'``) -> ``(len(ks), U)`` hits per K;
    ``zs_count`` zero-shot GT triplets and ``zs_hits (len(ks),)`` their hits (``None`` when no
    zero-shot set is configured).
    """

    predicates: np.ndarray
    gt_counts: np.ndarray
    hits: dict[str, np.ndarray]
    zs_count: int = 0
    zs_hits: np.ndarray | None = None


@dataclass
class ImageRecord:
    """What :func:`evaluate_image` keeps of one image: a :class:`ProtocolRecord` per protocol, or
    ``None`` where that protocol skips the image. Records of any processes can be concatenated."""

    image_id: str
    protocols: dict[str, ProtocolRecord | None] = field(default_factory=dict)


def evaluate_image(gt: GroundTruth, pred: Prediction | None, cfg: SGGConfig,
                   rels_raw: np.ndarray | None = None,
                   geometry: MaskGeometry | None = None) -> ImageRecord:
    """Score one image under every protocol of ``cfg``.

    Args:
        gt: the image's ground truth; ``gt.rels`` with exact duplicates removed (OpenPSG's test rule).
        pred: the model's prediction, or ``None`` when it has none.
        cfg: the settings.
        rels_raw: ``(M', 3)`` the relations as annotated, exact duplicates kept; ``fair`` counts
            them as fair-psgg does (a duplicated triplet counts twice). Defaults to ``gt.rels``.
        geometry: :func:`prediction_geometry` of ``gt`` and ``pred`` when the caller has it
            (SGDet with mask matching uses it instead of counting the pixels again).

    Raises:
        EvaluationError: malformed ground truth or prediction (the message names the image_id
            and the field), or duplicate pairs with ``dedup='fail'``.
    """
    deduplicated = _checked_rels(gt, gt.rels, 'gt.rels', cfg)
    rels = {'openpsg': deduplicated, 'fair': deduplicated if rels_raw is None else
            _checked_rels(gt, rels_raw, 'rels_raw', cfg)}
    scored = [p for p in cfg.protocols if len(rels[p])]
    if pred is not None:
        _check_prediction(gt, pred, cfg)
    has_rows = pred is not None and len(pred.pairs) > 0
    record = ImageRecord(gt.image_id, {p: None for p in cfg.protocols})
    if not scored:
        return record
    if not has_rows:
        if 'fair' in scored:
            zeros = np.zeros((len(cfg.ks), len(rels['fair'])), dtype=np.int64)
            record.protocols['fair'] = _record({'R': zeros, 'ngR': zeros}, rels['fair'], gt, cfg)
        return record

    rel = _relations(gt, pred, cfg)
    ious, union_iou = _segment_ious(gt, pred, cfg, scored, geometry)
    if 'openpsg' in scored:
        hits = openpsg_triplet_hits(rel, gt.labels, rels['openpsg'], ious['openpsg'], cfg.ks,
                                    cfg.iou_thr, union_iou=union_iou,
                                    pair_accuracy=cfg.mode != 'sgdet')
        record.protocols['openpsg'] = _record(hits, rels['openpsg'], gt, cfg)
    if 'fair' in scored:
        hits = fair_triplet_hits(rel, gt.labels, rels['fair'], ious['fair'], cfg.ks, cfg.iou_thr,
                                 cfg.dedup, gt.image_id)
        record.protocols['fair'] = _record(hits, rels['fair'], gt, cfg)
    return record


def _segment_ious(gt: GroundTruth, pred: Prediction, cfg: SGGConfig, protocols: Sequence[str],
                  geometry: MaskGeometry | None
                  ) -> tuple[dict[str, np.ndarray], UnionIoU | None]:
    """``(N, G)`` segment IoU per protocol, and (SGDet) the union IoU of phrase detection.

    PredCls/SGCls rows index the GT segments, so their masks/boxes are the GT ones. Under SGDet
    ``openpsg`` compares the predicted masks as given and ``fair`` the id map they make.
    """
    if cfg.match == 'box':
        boxes = BoxGeometry(pred.boxes if cfg.mode == 'sgdet' else gt.boxes, gt.boxes)
        ious = {'openpsg': lambda: boxes.iou(OPENPSG_BOX_EPS), 'fair': boxes.iou}
        union_iou = boxes.pair_union_iou
    elif cfg.mode != 'sgdet':
        num = gt.num_segments
        masks = MaskGeometry.from_id_map(gt.id_map, num, gt.id_map, num)
        ious, union_iou = {'openpsg': masks.iou, 'fair': masks.iou}, None
    else:
        masks = prediction_geometry(gt, pred) if geometry is None else geometry
        ious = {'openpsg': masks.iou, 'fair': lambda: masks.resolved().iou()}
        union_iou = masks.pair_union_iou
    return {p: ious[p]() for p in protocols}, union_iou if cfg.mode == 'sgdet' else None


def _relations(gt: GroundTruth, pred: Prediction, cfg: SGGConfig) -> Relations:
    """The prediction's rows with the labels and scores the mode prescribes."""
    if cfg.mode == 'predcls':
        labels = np.asarray(gt.labels, dtype=np.int64)
        scores = np.ones(len(labels), dtype=np.float32)
    else:
        labels = np.asarray(pred.labels, dtype=np.int64)
        scores = np.asarray(pred.scores)
    return Relations(labels, scores, np.asarray(pred.pairs, dtype=np.int64),
                     np.asarray(pred.predicate_scores),
                     None if pred.triplet_scores is None else np.asarray(pred.triplet_scores),
                     None if pred.no_relation_scores is None else np.asarray(pred.no_relation_scores))


def _record(hits: dict[str, np.ndarray], rels: np.ndarray, gt: GroundTruth,
            cfg: SGGConfig) -> ProtocolRecord:
    """Reduce per-GT-triplet hits ``(len(ks), M)`` to per-predicate counts."""
    predicates, inverse, counts = np.unique(rels[:, 2], return_inverse=True, return_counts=True)
    one_hot = (inverse.ravel()[:, None] == np.arange(len(predicates))[None, :]).astype(np.int64)
    per_predicate = {name: (h @ one_hot).astype(np.int32) for name, h in hits.items()}
    record = ProtocolRecord(predicates.astype(np.int16), counts.astype(np.int32), per_predicate)
    if cfg.zero_shot_triplets is not None:
        labels = np.asarray(gt.labels)
        unseen = np.array([(int(labels[s]), int(labels[o]), int(p)) not in cfg.zero_shot_triplets
                           for s, o, p in rels], dtype=bool)
        record.zs_count = int(unseen.sum())
        record.zs_hits = hits['R'][:, unseen].sum(1).astype(np.int32)
    return record


def _checked_rels(gt: GroundTruth, rels: np.ndarray, name: str, cfg: SGGConfig) -> np.ndarray:
    rels = np.asarray(rels)
    if rels.size == 0:
        return np.zeros((0, 3), dtype=np.int64)
    if rels.ndim != 2 or rels.shape[1] != 3 or not np.issubdtype(rels.dtype, np.integer):
        raise input_error(gt.image_id, name, f'expected (M, 3) integer (subject, object, predicate) '
                          f'rows, got shape {rels.shape} of {rels.dtype}')
    num = gt.num_segments
    if rels[:, :2].min() < 0 or rels[:, :2].max() >= num:
        raise input_error(gt.image_id, name, f'segment index out of range 0..{num - 1}')
    if rels[:, 2].min() < 0 or rels[:, 2].max() >= cfg.num_predicates:
        raise input_error(gt.image_id, name,
                          f'predicate out of range 0..{cfg.num_predicates - 1}')
    return rels.astype(np.int64)


def _check_prediction(gt: GroundTruth, pred: Prediction, cfg: SGGConfig) -> None:
    """Raise :class:`EvaluationError` naming the field if ``pred`` cannot be scored against ``gt``."""
    num = len(pred.labels)
    if cfg.mode != 'sgdet' and num != gt.num_segments:
        raise input_error(gt.image_id, 'prediction.labels', f'{cfg.mode} rows index the '
                          f'ground-truth segments, so the prediction must have its '
                          f'{gt.num_segments} segments; it has {num}')
    if cfg.mode != 'predcls' and np.shape(pred.scores) != (num,):
        raise input_error(gt.image_id, 'prediction.scores',
                          f'expected shape ({num},), got {np.shape(pred.scores)}')
    rows = len(pred.pairs)
    if rows:
        _check_rows(gt.image_id, pred, num, cfg.num_predicates)
    if cfg.match == 'box':
        if cfg.mode == 'sgdet' and np.shape(pred.boxes) != (num, 4):
            raise input_error(gt.image_id, 'prediction.boxes',
                              f'expected shape ({num}, 4), got {np.shape(pred.boxes)}')
        if np.shape(gt.boxes) != (gt.num_segments, 4):
            raise input_error(gt.image_id, 'gt.boxes', f'expected shape ({gt.num_segments}, 4), '
                              f'got {np.shape(gt.boxes)}')
        return
    if gt.id_map is None:
        raise input_error(gt.image_id, 'gt.id_map', "the ground truth has no masks; evaluate "
                          "box-only datasets with match='box'")
    if gt.id_map.size and gt.id_map.max() >= gt.num_segments:
        raise input_error(gt.image_id, 'gt.id_map', f'segment index {gt.id_map.max()} but only '
                          f'{gt.num_segments} labels')
    if cfg.mode == 'sgdet' and rows:
        _check_masks(gt, pred, num)


def _check_rows(image_id: str, pred: Prediction, num: int, num_predicates: int) -> None:
    pairs = np.asarray(pred.pairs)
    rows = len(pairs)
    if pairs.ndim != 2 or pairs.shape[1] != 2 or not np.issubdtype(pairs.dtype, np.integer):
        raise input_error(image_id, 'prediction.pairs', f'expected (R, 2) integer segment '
                          f'indices, got shape {pairs.shape} of {pairs.dtype}')
    if pairs.min() < 0 or pairs.max() >= num:
        raise input_error(image_id, 'prediction.pairs', f'segment index out of range 0..{num - 1}')
    shapes = {'predicate_scores': (rows, num_predicates), 'triplet_scores': (rows,),
              'no_relation_scores': (rows,)}
    for name, shape in shapes.items():
        value = getattr(pred, name)
        if value is None and name != 'predicate_scores':
            continue
        value = np.asarray(value)
        if value.shape != shape:
            raise input_error(image_id, f'prediction.{name}',
                              f'expected shape {shape}, got {value.shape}')
        if not np.isfinite(value).all():
            raise input_error(image_id, f'prediction.{name}', 'contains NaN or infinite values')


def prediction_geometry(gt: GroundTruth, pred: Prediction) -> MaskGeometry:
    """Pixel counts of ``pred``'s masks against ``gt``'s id map, shared by both protocols and
    PQ (:meth:`MaskGeometry.from_masks`).

    Raises:
        EvaluationError: the ground truth has no id map, or the masks are not one per segment at
            the ground truth's size (or an RLE is damaged); the message names the image.
    """
    if gt.id_map is None:
        raise input_error(gt.image_id, 'gt.id_map', 'the ground truth has no masks')
    _check_masks(gt, pred, len(pred.labels))
    try:
        return MaskGeometry.from_masks(pred.masks, gt.id_map, gt.num_segments)
    except ValueError as err:
        raise input_error(gt.image_id, 'prediction.masks', str(err)) from err


def _check_masks(gt: GroundTruth, pred: Prediction, num: int) -> None:
    size = tuple(gt.id_map.shape)
    if pred.masks is None:
        raise input_error(gt.image_id, 'prediction.masks',
                          "sgdet with match='mask' needs the predicted masks")
    sizes = ({tuple(pred.masks.shape[1:])} if isinstance(pred.masks, np.ndarray)
             else {tuple(m['size']) for m in pred.masks})
    if len(pred.masks) != num or sizes - {size}:
        raise input_error(gt.image_id, 'prediction.masks', f'expected {num} masks of size {size} '
                          f'(the ground-truth size), got {len(pred.masks)} of size '
                          f'{", ".join(map(str, sorted(sizes)))}')


def _key(protocol: str, metric: str, k: int, mean: bool) -> str:
    names = {'R': ('R', 'mR'), 'ngR': ('ngR', 'ng-mR'), 'PhrDet': ('PhrDet_R', 'PhrDet_mR'),
             'A': ('A', 'A')}
    return f'{protocol}/{names[metric][int(mean)]}@{k}'


def _metrics(protocol: str, cfg: SGGConfig) -> tuple[str, ...]:
    """Metrics a protocol reports in the mode of ``cfg``."""
    if protocol == 'fair':
        return ('R', 'ngR')
    return ('R', 'ngR', 'PhrDet') if cfg.mode == 'sgdet' else ('R', 'ngR', 'A')


def _evaluated(records: Sequence[ImageRecord], protocol: str,
               cfg: SGGConfig) -> list[ProtocolRecord]:
    """The records of the images ``protocol`` evaluated (not skipped)."""
    recs = [r.protocols.get(protocol) for r in records]
    recs = [r for r in recs if r is not None]
    for r in recs:
        if r.hits['R'].shape[0] != len(cfg.ks):
            raise ValueError(f'a {protocol} record holds {r.hits["R"].shape[0]} K values but '
                             f'cfg.ks={cfg.ks}; summarize records with the config that made them')
    return recs


def _per_predicate(recs: Sequence[ProtocolRecord], cfg: SGGConfig, metric: str) -> np.ndarray:
    """``(len(ks), num_predicates)`` mean per-image recall (fraction) per predicate, NaN if absent."""
    total = np.zeros((len(cfg.ks), cfg.num_predicates))
    images = np.zeros(cfg.num_predicates)
    for r in recs:
        total[:, r.predicates] += r.hits[metric] / r.gt_counts
        images[r.predicates] += 1
    with np.errstate(divide='ignore', invalid='ignore'):
        return np.where(images > 0, total / images, np.nan)


def per_predicate_recall(records: Iterable[ImageRecord], cfg: SGGConfig,
                         protocol: str = 'openpsg', metric: str = 'R') -> np.ndarray:
    """``(len(ks), num_predicates)`` per-predicate recall in percent: for each predicate, the mean
    over the evaluated images containing it of its per-image recall; NaN where none contains it.

    ``metric`` is ``'R'``, ``'ngR'`` or (``openpsg``, SGDet) ``'PhrDet'``.
    """
    if metric not in _metrics(protocol, cfg) or metric == 'A':
        raise ValueError(f'per_predicate_recall: {protocol} has no per-predicate {metric!r} in '
                         f'{cfg.mode}; choose from {[m for m in _metrics(protocol, cfg) if m != "A"]}')
    return 100 * _per_predicate(_evaluated(list(records), protocol, cfg), cfg, metric)


def _mean_recall(per_predicate: np.ndarray, protocol: str) -> np.ndarray:
    """``(len(ks),)`` mean over predicates: OpenPSG divides by all of them (absent = 0), fair-psgg
    averages the predicates present."""
    if protocol == 'openpsg':
        return np.nan_to_num(per_predicate, nan=0.0).mean(1)
    present = ~np.isnan(per_predicate)
    with np.errstate(divide='ignore', invalid='ignore'):
        return np.nansum(per_predicate, 1) / present.sum(1)


def summarize(records: Iterable[ImageRecord], cfg: SGGConfig) -> dict[str, float]:
    """Dataset metrics in percent from the records of :func:`evaluate_image` (see the module
    docstring for each key); NaN where no image was evaluated."""
    records = list(records)
    out: dict[str, float] = {}
    for protocol in cfg.protocols:
        recs = _evaluated(records, protocol, cfg)
        gt_total = np.array([r.gt_counts.sum() for r in recs], dtype=np.float64)
        for metric in _metrics(protocol, cfg):
            hits = np.array([r.hits[metric].sum(1) for r in recs], dtype=np.float64).reshape(
                len(recs), len(cfg.ks))
            with np.errstate(divide='ignore', invalid='ignore'):
                if metric == 'A':  # OpenPSG: mean hits / mean GT count
                    values = {False: hits.sum(0) / gt_total.sum()}
                else:
                    values = {False: (hits / gt_total[:, None]).mean(0) if recs else
                              np.full(len(cfg.ks), np.nan),
                              True: _mean_recall(_per_predicate(recs, cfg, metric), protocol)}
            for mean, per_k in values.items():
                for k, value in zip(cfg.ks, per_k):
                    out[_key(protocol, metric, k, mean)] = float(100 * value)
        if cfg.zero_shot_triplets is not None:
            zs = [r.zs_hits / r.zs_count for r in recs if r.zs_count > 0]
            zr = np.mean(zs, axis=0) if zs else np.full(len(cfg.ks), np.nan)
            for k, value in zip(cfg.ks, zr):
                out[f'{protocol}/zR@{k}'] = float(100 * value)
        out[f'{protocol}/num_images'] = float(len(recs))
        out[f'{protocol}/num_skipped'] = float(len(records) - len(recs))
    return out


def per_predicate_table(records: Iterable[ImageRecord], cfg: SGGConfig,
                        predicate_names: Sequence[str]) -> str:
    """A printable table: one line per predicate with its GT triplets (``#GT``, over the images the
    first protocol evaluated) and its recall at each K under each protocol (``-`` where no
    evaluated image contains it), then the mean recall line."""
    if len(predicate_names) != cfg.num_predicates:
        raise ValueError(f'per_predicate_table: {len(predicate_names)} predicate names for '
                         f'num_predicates={cfg.num_predicates}')
    records = list(records)
    recalls, counts = {}, np.zeros(cfg.num_predicates, dtype=np.int64)
    for protocol in cfg.protocols:
        recs = _evaluated(records, protocol, cfg)
        recalls[protocol] = 100 * _per_predicate(recs, cfg, 'R')
        if protocol == cfg.protocols[0]:
            for r in recs:
                counts[r.predicates] += r.gt_counts
    width = max(len('predicate'), *(len(n) for n in predicate_names))
    columns = [f'{p} R@{k}' for p in cfg.protocols for k in cfg.ks]
    col = max(9, *(len(c) + 1 for c in columns))

    def line(name: str, count: str, values: Iterable[float]) -> str:
        cells = ''.join(f'{"-" if np.isnan(v) else f"{v:.2f}":>{col}}' for v in values)
        return f'{name:<{width}}{count:>8}{cells}'

    lines = [f'{"predicate":<{width}}{"#GT":>8}' + ''.join(f'{c:>{col}}' for c in columns)]
    for i, name in enumerate(predicate_names):
        lines.append(line(name, str(counts[i]),
                          [recalls[p][j, i] for p in cfg.protocols for j in range(len(cfg.ks))]))
    means = [100 * v for p in cfg.protocols for v in _mean_recall(recalls[p] / 100, p)]
    lines.append(line('mean', '', means))
    return '\n'.join(lines)
