"""The evaluator's fast path gives the numbers of the straightforward per-segment computation,
to the last digit: pixel counts from RLE runs and one joint histogram, PQ from the same counts,
panoptic ids looked up in a table.

The references here take every (predicted segment, GT segment) pair of dense boolean masks and
count pixels one pair at a time, and apply panopticapi's PQ rules segment by segment.
"""
import numpy as np
import pytest

from openpsg.evaluation import evaluate
from openpsg.evaluation.matching import MaskGeometry
from openpsg.evaluation.panoptic import PQStat, pq_stats_counts, summarize_pq
from openpsg.evaluation.sgg import SGGConfig, evaluate_image, prediction_geometry
from openpsg.structures import (GroundTruth, Prediction, decode_rle, encode_rle, id_map_to_masks,
                                masks_to_boxes, masks_to_id_map, rgb2id, segment_ids_to_id_map)
from openpsg.structures.masks import id_map_segments, rle_runs

NUM_CLASSES, NUM_THINGS, P = 6, 3, 56
IS_THING = np.arange(NUM_CLASSES) < NUM_THINGS


# --------------------------------------------------------------------------- random images
def gt_image(rng: np.random.Generator, image_id: str) -> GroundTruth:
    """Rectangles on a void background (later ones on top), labels from 6 classes, some crowd."""
    h, w = rng.integers(6, 24, 2)
    num = int(rng.integers(1, 7))
    id_map = np.full((h, w), -1, np.int32)
    for g in range(num):
        y, x = rng.integers(0, h), rng.integers(0, w)
        id_map[y:y + rng.integers(2, h + 1), x:x + rng.integers(2, w + 1)] = g
    present = np.bincount(id_map[id_map >= 0], minlength=num) > 0
    lookup = np.concatenate([[-1], np.cumsum(present) - 1]).astype(np.int32)
    id_map, num = lookup[id_map + 1], int(present.sum())
    labels = rng.integers(0, NUM_CLASSES, num)
    rels = np.stack([rng.integers(0, num, 4), rng.integers(0, num, 4), rng.integers(0, 3, 4)], 1)
    return GroundTruth(image_id, labels, masks_to_boxes(id_map_to_masks(id_map, num)), rels,
                       id_map, iscrowd=rng.random(num) < 0.2, rels_raw=rels)


def pred_masks(rng: np.random.Generator, gt: GroundTruth, kind: str) -> np.ndarray:
    """``(N, H, W)`` bool: ``disjoint`` (cut from one id map: segment ``g < G`` is GT segment
    ``g`` shifted), ``overlapping`` (per-triplet style: the first ``G`` are GT segments with
    pixels flipped, then more such copies and random rectangles) or ``empty`` (none)."""
    h, w = gt.id_map.shape
    if kind == 'empty':
        return np.zeros((0, h, w), bool)
    if kind == 'disjoint':
        shift = rng.integers(-2, 3, 2)
        id_map = np.roll(gt.id_map, tuple(shift), axis=(0, 1))
        extra = int(rng.integers(0, 3))
        for k in range(extra):
            y, x = rng.integers(0, h), rng.integers(0, w)
            id_map[y:y + 4, x:x + 5] = gt.num_segments + k
        return id_map_to_masks(id_map, gt.num_segments + extra + int(rng.integers(0, 2)))
    copies = list(range(gt.num_segments)) + list(rng.integers(0, gt.num_segments, 3))
    masks = [(gt.id_map == g) ^ (rng.random((h, w)) < 0.1) for g in copies]
    for _ in range(2):
        rect = np.zeros((h, w), bool)
        y, x = rng.integers(0, h), rng.integers(0, w)
        rect[y:y + 5, x:x + 6] = True
        masks.append(rect)
    return np.stack(masks)


def prediction(rng: np.random.Generator, gt: GroundTruth, masks: np.ndarray, rle: bool,
               rows: int = 8) -> Prediction:
    """Labels mostly those of the GT segments the masks copy; rows: the GT relations (most with
    their predicate) among random pairs."""
    n = len(masks)
    labels = np.where(rng.random(n) < 0.8, np.resize(gt.labels, n),
                      rng.integers(0, NUM_CLASSES, n)).astype(np.int64)
    rows = rows if n else 0
    pairs = rng.integers(0, max(n, 1), (rows, 2))
    scores = rng.random((rows, P)).astype(np.float32)
    for r, (s, o, p) in enumerate(gt.rels[:rows // 2]):
        if max(s, o) < n:
            pairs[r] = s, o
            scores[r, p] += rng.choice([0.0, 2.0, 2.0])
    return Prediction(gt.image_id, labels, rng.random(n).astype(np.float32), masks_to_boxes(masks),
                      encode_rle(masks) if rle else masks, pairs, scores,
                      np.sort(rng.random(rows))[::-1].astype(np.float32))


# --------------------------------------------------------------------------- references
def reference_counts(masks: np.ndarray, gt_map: np.ndarray, num_gt: int) -> dict[str, list]:
    """Pixel counts one (predicted, GT) pair at a time."""
    void = gt_map == -1
    gt_masks = [gt_map == g for g in range(num_gt)]
    return {'inter': [[int((m & g).sum()) for g in gt_masks] for m in masks],
            'pred_area': [int(m.sum()) for m in masks],
            'gt_area': [int(g.sum()) for g in gt_masks],
            'on_void': [int((m & void).sum()) for m in masks]}


def as_lists(geometry: MaskGeometry) -> dict[str, list]:
    return {'inter': geometry.inter.tolist(), 'pred_area': geometry.pred_area.tolist(),
            'gt_area': geometry.gt_area.tolist(), 'on_void': geometry.on_void.tolist()}


def reference_pq(gt: GroundTruth, masks: np.ndarray, labels: np.ndarray) -> PQStat:
    """panopticapi's rules, one segment pair at a time, on the id map the masks make (lowest
    index wins)."""
    pan = masks_to_id_map(masks) if len(masks) else np.full(gt.id_map.shape, -1, np.int32)
    pred = [pan == p for p in range(len(labels))]
    gts = [gt.id_map == g for g in range(gt.num_segments)]
    void = gt.id_map == -1
    stat = PQStat.zeros(IS_THING)
    matched_gt, matched_pred = set(), set()
    for p, pm in enumerate(pred):
        for g, gm in enumerate(gts):
            if labels[p] != gt.labels[g] or gt.iscrowd[g]:
                continue
            inter = int((pm & gm).sum())
            union = int(pm.sum()) + int(gm.sum()) - inter - int((pm & void).sum())
            if inter > 0 and inter / union > 0.5:
                stat.tp[gt.labels[g]] += 1
                stat.iou_sum[gt.labels[g]] += inter / union
                matched_gt.add(g)
                matched_pred.add(p)
    for g in range(gt.num_segments):
        if g not in matched_gt and not gt.iscrowd[g]:
            stat.fn[gt.labels[g]] += 1
    for p, pm in enumerate(pred):
        if p in matched_pred or not pm.any():
            continue
        crowd = sum(int((pm & gm).sum()) for g, gm in enumerate(gts)
                    if gt.iscrowd[g] and gt.labels[g] == labels[p])
        if (int((pm & void).sum()) + crowd) / int(pm.sum()) <= 0.5:
            stat.fp[labels[p]] += 1
    return stat


def record_values(record) -> dict:
    """An :class:`~openpsg.evaluation.sgg.ImageRecord` as plain lists, for ``==``."""
    return {protocol: None if r is None else (r.predicates.tolist(), r.gt_counts.tolist(),
                                              {k: v.tolist() for k, v in r.hits.items()})
            for protocol, r in record.protocols.items()}


def same_stats(a: PQStat, b: PQStat) -> bool:
    return all(np.array_equal(getattr(a, f), getattr(b, f)) for f in ('tp', 'fp', 'fn', 'iou_sum'))


# --------------------------------------------------------------------------- tests
def test_rle_runs_draw_the_masks_pycocotools_decodes():
    rng = np.random.default_rng(0)
    for case in range(60):
        h, w = rng.integers(1, 30, 2)
        masks = rng.random((int(rng.integers(1, 5)), h, w)) < rng.random()
        masks[0] = case % 3 == 0  # all pixels or none
        rles = encode_rle(masks)
        starts, lengths, owner = rle_runs(rles)
        drawn = np.zeros((len(masks), h * w), bool)
        for start, length, i in zip(starts, lengths, owner):
            drawn[i, start:start + length] = True
        assert (lengths > 0).all()
        np.testing.assert_array_equal(drawn.reshape(-1, w, h).transpose(0, 2, 1),
                                      decode_rle(rles))
    big = np.zeros((1, 700, 900), bool)  # counts of several 5-bit groups, negative differences
    big[0, 350:, 20:] = True
    big[0, :3, :2] = True
    starts, lengths, _ = rle_runs(encode_rle(big))
    assert int(lengths.sum()) == int(big.sum())
    with pytest.raises(ValueError, match='do not add up to the mask size'):
        rle_runs([{'size': [4, 4], 'counts': '02'}])


@pytest.mark.parametrize('kind', ['disjoint', 'overlapping', 'empty'])
def test_pixel_counts_equal_the_per_segment_counts(kind):
    rng = np.random.default_rng({'disjoint': 1, 'overlapping': 2, 'empty': 3}[kind])
    for i in range(25):
        gt = gt_image(rng, str(i))
        masks = pred_masks(rng, gt, kind)
        expected = reference_counts(masks, gt.id_map, gt.num_segments)
        resolved = id_map_to_masks(masks_to_id_map(masks), len(masks)) if len(masks) else masks
        for form in (encode_rle(masks), masks):
            geometry = MaskGeometry.from_masks(form, gt.id_map, gt.num_segments)
            assert as_lists(geometry) == expected
            assert as_lists(geometry.resolved()) == reference_counts(resolved, gt.id_map,
                                                                     gt.num_segments)
        if kind == 'disjoint':  # the RLE path never draws the masks
            assert MaskGeometry.from_masks(encode_rle(masks), gt.id_map,
                                           gt.num_segments).masks is None


def test_pq_from_shared_counts_equals_panopticapi_rules():
    rng = np.random.default_rng(4)
    fast, reference = PQStat.zeros(IS_THING), PQStat.zeros(IS_THING)
    for i in range(60):
        gt = gt_image(rng, str(i))
        pred = prediction(rng, gt, pred_masks(rng, gt, ('disjoint', 'overlapping', 'empty')[i % 3]),
                          rle=True)
        stat = pq_stats_counts(prediction_geometry(gt, pred).resolved(), gt.labels, gt.iscrowd,
                               pred.labels, IS_THING)
        expected = reference_pq(gt, decode_rle(pred.masks, gt.id_map.shape), pred.labels)
        assert same_stats(stat, expected), i
        fast, reference = fast + stat, reference + expected
    assert summarize_pq(fast) == summarize_pq(reference)
    assert reference.tp.sum() > 10 and reference.fp.sum() > 10 and reference.fn.sum() > 10


class ListDataset:
    """The dataset interface :func:`evaluate` reads, over ground truths in memory."""

    def __init__(self, gts: list[GroundTruth]) -> None:
        self.gts = {gt.image_id: gt for gt in gts}
        self.image_ids = list(self.gts)
        self.classes = tuple(f'c{i}' for i in range(NUM_CLASSES))
        self.predicates = tuple(f'p{i}' for i in range(P))
        self.num_things = NUM_THINGS

    def get_gt_by_id(self, image_id: str) -> GroundTruth:
        return self.gts[image_id]


def test_evaluate_gives_the_numbers_of_per_mask_counting():
    """Both protocols and PQ over images of every kind (RLE masks: runs and one histogram;
    dense masks: counted one mask at a time), missing predictions and ones without rows."""
    rng = np.random.default_rng(5)
    gts, rle, dense = [], [], []
    for i in range(30):
        gt = gt_image(rng, f'im{i}')
        gts.append(gt)
        if i % 10 == 9:
            continue  # no prediction for this image
        masks = pred_masks(rng, gt, ('disjoint', 'overlapping', 'empty')[i % 3])
        pred = prediction(rng, gt, masks, rle=False, rows=0 if i % 10 == 4 else 8)
        dense.append(pred)
        rle.append(Prediction(**{**pred.__dict__, 'masks': encode_rle(masks)}))
    dataset = ListDataset(gts)
    kwargs = dict(metrics=('sgdet', 'PQ'), ks=(1, 3, 8))
    fast = evaluate(rle, dataset, **kwargs)
    assert fast == evaluate(dense, dataset, **kwargs)
    cfg = SGGConfig(mode='sgdet', ks=(1, 3, 8), num_predicates=P)
    for pred in dense:
        gt = dataset.get_gt_by_id(pred.image_id)
        as_rle = Prediction(**{**pred.__dict__, 'masks': encode_rle(pred.masks)})
        assert record_values(evaluate_image(gt, pred, cfg)) == record_values(
            evaluate_image(gt, as_rle, cfg))
    reference = sum((reference_pq(dataset.get_gt_by_id(p.image_id), p.masks, p.labels)
                     for p in dense), PQStat.zeros(IS_THING))
    for gt in gts[9::10]:  # missing predictions: every GT segment a false negative
        reference = reference + reference_pq(gt, np.zeros((0, *gt.id_map.shape), bool),
                                             np.zeros(0, np.int64))
    assert {k: fast[k] for k in summarize_pq(reference)} == summarize_pq(reference)
    assert fast['sgdet/openpsg/R@8'] > 0 and fast['sgdet/fair/R@8'] > 0


def test_panoptic_ids_looked_up_like_a_binary_search():
    rng = np.random.default_rng(6)
    rgb = rng.integers(0, 4, (9, 11, 3)).astype(np.uint8)
    ids = rgb2id(rgb)
    present = np.unique(ids)
    segment_ids = list(rng.permutation(present)[:5]) + [present[0], 123456789]  # repeat, absent
    id_map = segment_ids_to_id_map(ids, segment_ids)
    expected = np.full(ids.shape, -1)
    for position, value in reversed(list(enumerate(segment_ids))):  # first position wins
        expected[ids == value] = position
    np.testing.assert_array_equal(id_map, expected)
    assert id_map.dtype == np.int32
    # ids beyond 24 bits take the binary search, with the same answer
    np.testing.assert_array_equal(segment_ids_to_id_map(ids + (1 << 30), [s + (1 << 30)
                                                                          for s in segment_ids]),
                                  expected)


def test_submission_masks_and_boxes_come_from_the_id_map_runs():
    """The grader turns a submission PNG's id map into RLE masks and boxes without drawing the
    masks; the result is the one of drawing them."""
    rng = np.random.default_rng(7)
    for case in range(80):
        h, w = rng.integers(1, 20, 2)
        num = int(rng.integers(0, 6))
        if case % 2:
            id_map = rng.integers(-1, num + 1, (h, w)).astype(np.int32)  # speckle; num = absent
        else:
            id_map = np.full((h, w), -1, np.int32)
            for g in range(num):
                y, x = rng.integers(0, h), rng.integers(0, w)
                id_map[y:y + rng.integers(1, h + 1), x:x + rng.integers(1, w + 1)] = g
        id_map[id_map >= num] = -1
        masks = id_map_to_masks(id_map, num)
        rles, boxes = id_map_segments(id_map, num)
        assert rles == encode_rle(masks)
        np.testing.assert_array_equal(boxes, masks_to_boxes(masks))
