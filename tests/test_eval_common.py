"""Scene-graph metrics: API, errors, geometry, and quirks shared by both protocols.

Every expected number is worked out by hand in the comments. The helpers and the random scene
generator here are also used by ``test_eval_openpsg.py`` and ``test_eval_fair.py``.
"""
import pickle

import numpy as np
import pytest

from openpsg.evaluation.matching import MaskGeometry, box_iou, top_k_descending
from openpsg.evaluation.sgg import (EvaluationError, SGGConfig, evaluate_image,
                                    per_predicate_recall, per_predicate_table, summarize)
from openpsg.structures import (GroundTruth, Prediction, encode_rle, id_map_iou,
                                id_map_to_masks, masks_to_boxes, masks_to_id_map)

P = 56
PERSON, HORSE, GRASS = 0, 17, 125

# The 4x6 image used by the hand-made cases: four segments of 6 pixels each.
#   0 0 0 1 1 1
#   0 0 0 1 1 1
#   2 2 2 3 3 3
#   2 2 2 3 3 3
QUAD = np.array([[0, 0, 0, 1, 1, 1], [0, 0, 0, 1, 1, 1],
                 [2, 2, 2, 3, 3, 3], [2, 2, 2, 3, 3, 3]], np.int32)
QUAD_LABELS = [PERSON, HORSE, PERSON, GRASS]
QUAD_MASKS = id_map_to_masks(QUAD, 4)


def make_gt(rels, id_map=QUAD, labels=QUAD_LABELS, image_id='img', boxes=None) -> GroundTruth:
    """Ground truth from an id map (boxes = tight mask boxes unless given)."""
    labels = np.asarray(labels, np.int64)
    if boxes is None:
        boxes = masks_to_boxes(id_map_to_masks(id_map, len(labels)))
    return GroundTruth(image_id, labels, np.asarray(boxes, np.float32),
                       np.asarray(rels, np.int64).reshape(-1, 3), id_map)


def scores(spec: dict[int, float]) -> np.ndarray:
    """A (56,) predicate score row: zeros except ``{predicate: score}``."""
    row = np.zeros(P, np.float32)
    for predicate, value in spec.items():
        row[predicate] = value
    return row


def make_pred(rows, masks=QUAD_MASKS, labels=QUAD_LABELS, triplet_scores=None, no_relation=None,
              seg_scores=None, boxes=None, image_id='img') -> Prediction:
    """A prediction; ``rows`` = [(subject, object, {predicate: score}), ...] in emitted order.

    ``masks`` defaults to the exact QUAD segments; boxes default to the masks' boxes.
    """
    labels = np.asarray(labels, np.int64)
    if boxes is None and isinstance(masks, np.ndarray):
        boxes = masks_to_boxes(masks)
    pairs = np.array([(s, o) for s, o, _ in rows], np.int64).reshape(-1, 2)
    predicate_scores = np.stack([scores(d) for _, _, d in rows]) if rows else np.zeros((0, P),
                                                                                       np.float32)
    if triplet_scores is None:  # non-increasing in row order, as the Prediction contract asks
        triplet_scores = np.linspace(1, 0.5, len(rows))
    return Prediction(
        image_id, labels,
        np.ones(len(labels), np.float32) if seg_scores is None else np.asarray(seg_scores,
                                                                               np.float32),
        None if boxes is None else np.asarray(boxes, np.float32), masks, pairs, predicate_scores,
        np.asarray(triplet_scores, np.float32),
        None if no_relation is None else np.asarray(no_relation, np.float32))


def metrics(items, raw=None, **cfg) -> dict[str, float]:
    """summarize() of ``[(gt, pred), ...]``; ``raw`` = per-image raw relations for ``fair``."""
    config = SGGConfig(**cfg)
    raw = raw or [None] * len(items)
    return summarize([evaluate_image(g, p, config, r) for (g, p), r in zip(items, raw)], config)


def same(a: dict[str, float], b: dict[str, float]) -> bool:
    """Equal keys and values, NaN equal to NaN."""
    return a.keys() == b.keys() and all(a[k] == b[k] or (np.isnan(a[k]) and np.isnan(b[k]))
                                        for k in a)


def check(result: dict[str, float], **expected: float) -> None:
    """``check(r, openpsg__R_1=50)`` asserts ``r['openpsg/R@1'] == 50`` (``__`` -> ``/``,
    trailing ``_K`` -> ``@K``, other ``_`` kept: ``ng_mR`` -> ``ng-mR``)."""
    for name, value in expected.items():
        protocol, metric = name.split('__')
        metric, k = metric.rsplit('_', 1)
        key = f'{protocol}/{metric.replace("ng_mR", "ng-mR")}@{k}'
        assert result[key] == pytest.approx(value, abs=1e-9), key


# --------------------------------------------------------------------------- random scenes

def random_scene(rng: np.random.Generator, image_id: str, mode: str = 'sgdet'):
    """A random small image: (GroundTruth, Prediction or None, raw GT relations).

    Labels come from 3 classes and predicates mostly from 4, so matches, near-misses, duplicate
    masks (overlapping), duplicate rows, duplicate GT triplets and ties all occur.
    """
    h, w = rng.integers(4, 9, 2)
    num_gt = int(rng.integers(2, 6))
    id_map = np.full((h, w), -1, np.int32)
    for g in range(num_gt):  # rectangles, later ones on top (a segment may vanish)
        y, x = rng.integers(0, h), rng.integers(0, w)
        id_map[y:y + rng.integers(1, h), x:x + rng.integers(1, w)] = g
    gt_labels = rng.integers(0, 3, num_gt)
    num_rels = int(rng.integers(0, 6))
    rels = np.stack([rng.integers(0, num_gt, num_rels), rng.integers(0, num_gt, num_rels),
                     rng.integers(0, 4, num_rels)], 1) if num_rels else np.zeros((0, 3), np.int64)
    raw = np.concatenate([rels, rels[rng.random(num_rels) < 0.3]]) if num_rels else rels
    _, first = np.unique(raw, axis=0, return_index=True)
    gt = GroundTruth(image_id, gt_labels, masks_to_boxes(id_map_to_masks(id_map, num_gt)),
                     raw[np.sort(first)], id_map)
    if rng.random() < 0.1:
        return gt, None, raw

    gt_masks = id_map_to_masks(id_map, num_gt)
    gt_boxes = masks_to_boxes(gt_masks).astype(int)
    masks, labels, source = [], [], []
    for g in range(num_gt):
        x1, y1, x2, y2 = gt_boxes[g]
        near = np.zeros((h, w), bool)  # pixels flip only around the segment
        near[max(y1 - 1, 0):y2 + 1, max(x1 - 1, 0):x2 + 1] = True
        for _ in range(int(rng.integers(0, 3))):  # 0, 1 or 2 copies of each GT segment
            flip = near & (rng.random((h, w)) < rng.choice([0.0, 0.0, 0.1, 0.3]))
            masks.append(gt_masks[g] ^ flip)
            labels.append(gt_labels[g] if rng.random() < 0.8 else rng.integers(0, 3))
            source.append(g)
    masks.append(rng.random((h, w)) < 0.3)
    labels.append(rng.integers(0, 3))
    source.append(-1)
    masks, labels, source = np.stack(masks), np.asarray(labels, np.int64), np.asarray(source)
    if mode != 'sgdet':
        masks, source = gt_masks, np.arange(num_gt)
        labels = gt_labels if mode == 'predcls' else np.where(rng.random(num_gt) < 0.8, gt_labels,
                                                              rng.integers(0, 3, num_gt))
    num = len(labels)

    def segment_for(g: int) -> int:  # mostly a predicted copy of GT segment g
        copies = np.flatnonzero(source == g)
        if len(copies) and rng.random() < 0.85:
            return int(copies[0] if rng.random() < 0.6 else rng.choice(copies))
        return int(rng.integers(0, num))

    boxes = masks_to_boxes(masks) + (rng.random((num, 4)) < 0.2)  # some boxes 1 px larger
    num_rows = int(rng.integers(0, 12)) if rng.random() > 0.1 else 0
    pairs = np.zeros((num_rows, 2), np.int64)
    predicate = rng.integers(0, 4, num_rows)
    for r in range(num_rows):
        if num_rels and rng.random() < 0.8:
            s, o, p = raw[rng.integers(0, len(raw))]
            pairs[r] = segment_for(s), segment_for(o)
            predicate[r] = p if rng.random() < 0.7 else predicate[r]
        else:
            pairs[r] = rng.integers(0, num, 2)
    pred_scores = (rng.random((num_rows, P)) * 0.1).astype(np.float32)
    pred_scores[np.arange(num_rows), predicate] += rng.choice([0.3, 0.5, 0.7],
                                                              num_rows).astype(np.float32)
    triplet = np.round(rng.random(num_rows), 1).astype(np.float32)  # rounding makes ties
    no_rel = rng.random(num_rows).astype(np.float32) if rng.random() < 0.7 else None
    pred = Prediction(image_id, labels, np.round(rng.random(num), 1).astype(np.float32), boxes,
                      masks, pairs, pred_scores, triplet if rng.random() < 0.8 else None, no_rel)
    return gt, pred, raw


# --------------------------------------------------------------------------- tests

def test_config_validation():
    with pytest.raises(ValueError, match='mode'):
        SGGConfig(mode='detcls')
    with pytest.raises(ValueError, match='dedup'):
        SGGConfig(dedup='best')
    with pytest.raises(ValueError, match='ks'):
        SGGConfig(ks=(0, 20))
    with pytest.raises(ValueError, match='protocols'):
        SGGConfig(protocols=('openpsg', 'sgbench'))
    with pytest.raises(ValueError, match='match'):
        SGGConfig(match='polygon')
    cfg = SGGConfig(ks=[1, 2], zero_shot_triplets={(0, 17, 5)})
    assert cfg.ks == (1, 2) and cfg.zero_shot_triplets == frozenset({(0, 17, 5)})
    assert pickle.loads(pickle.dumps(cfg)) == cfg


def test_keys_depend_on_mode_ks_and_zero_shot():
    gt = make_gt([(0, 1, 5)])
    pred = make_pred([(0, 1, {5: 0.9})])
    sgdet = metrics([(gt, pred)], ks=(1, 2))
    assert set(sgdet) == {f'{p}/{m}@{k}' for p, ms in
                          [('openpsg', ['R', 'mR', 'ngR', 'ng-mR', 'PhrDet_R', 'PhrDet_mR']),
                           ('fair', ['R', 'mR', 'ngR', 'ng-mR'])] for m in ms for k in (1, 2)} | {
        'openpsg/num_images', 'openpsg/num_skipped', 'fair/num_images', 'fair/num_skipped'}
    predcls = metrics([(gt, pred)], mode='predcls', ks=(3,), protocols=('openpsg',),
                      zero_shot_triplets=set())
    assert set(predcls) == {'openpsg/R@3', 'openpsg/mR@3', 'openpsg/ngR@3', 'openpsg/ng-mR@3',
                            'openpsg/A@3', 'openpsg/zR@3', 'openpsg/num_images',
                            'openpsg/num_skipped'}


def test_records_are_small_picklable_and_concatenate():
    rng = np.random.default_rng(3)
    cfg = SGGConfig(ks=(1, 5, 20), zero_shot_triplets={(0, 0, 0)})
    scenes = [random_scene(rng, f'im{i}') for i in range(12)]
    records = [evaluate_image(g, p, cfg, r) for g, p, r in scenes]
    assert all(len(pickle.dumps(r)) < 4000 for r in records)
    # records made by different workers are merged by concatenation
    parts = [pickle.loads(pickle.dumps(records[:5])), pickle.loads(pickle.dumps(records[5:]))]
    assert same(summarize(parts[0] + parts[1], cfg), summarize(records, cfg))


def test_empty_and_missing_predictions():
    # image a: its one GT triplet hit -> 100; b: no rows; c: no prediction; d: no GT relation
    a = (make_gt([(0, 1, 5)], image_id='a'), make_pred([(0, 1, {5: 0.9})], image_id='a'))
    b = (make_gt([(0, 1, 5)], image_id='b'), make_pred([], image_id='b'))
    c = (make_gt([(0, 1, 5)], image_id='c'), None)
    d = (make_gt([], image_id='d'), make_pred([(0, 1, {5: 0.9})], image_id='d'))
    r = metrics([a, b, c, d], ks=(1,))
    # openpsg skips b, c (no rows) and d (no GT); fair scores b and c as 0 and skips d
    check(r, openpsg__R_1=100, openpsg__mR_1=100 / 56, fair__R_1=100 / 3, fair__mR_1=100 / 3)
    assert (r['openpsg/num_images'], r['openpsg/num_skipped']) == (1, 3)
    assert (r['fair/num_images'], r['fair/num_skipped']) == (3, 1)
    nothing = metrics([b, c], ks=(1,))
    assert np.isnan(nothing['openpsg/R@1']) and nothing['fair/R@1'] == 0


def test_mean_recall_averages_per_image_then_over_predicates():
    # image A: GT (0,1,5), (2,3,7); one row (0,1,5) -> p5 1/1, p7 0/1, recall 1/2
    # image B: GT (0,1,5), (2,3,5); one row (0,1,5) -> p5 1/2, recall 1/2
    a = (make_gt([(0, 1, 5), (2, 3, 7)]), make_pred([(0, 1, {5: 0.9})]))
    b = (make_gt([(0, 1, 5), (2, 3, 5)]), make_pred([(0, 1, {5: 0.9})]))
    r = metrics([a, b], ks=(1,))
    # p5 = mean(1, 1/2) = 0.75, p7 = 0; openpsg sums over 56 predicates, fair over the 2 present
    check(r, openpsg__R_1=50, openpsg__mR_1=100 * 0.75 / 56, fair__R_1=50, fair__mR_1=37.5)
    cfg = SGGConfig(ks=(1,))
    table = per_predicate_recall([evaluate_image(g, p, cfg) for g, p in (a, b)], cfg, 'fair')
    assert table.shape == (1, 56) and table[0, 5] == 75 and table[0, 7] == 0
    assert np.isnan(table[0, 0])


def test_zero_shot_recall():
    seen = {(PERSON, HORSE, 5)}
    # A: GT (0,1,5) seen + (2,3,7) unseen (person, grass, 7); row (2,3,7) hits the unseen one
    # B: only seen triplets -> not in zR;  C: unseen (2,3,7) missed;  D: unseen, no prediction
    a = (make_gt([(0, 1, 5), (2, 3, 7)]), make_pred([(2, 3, {7: 0.9})]))
    b = (make_gt([(0, 1, 5)]), make_pred([(0, 1, {9: 0.9})]))
    c = (make_gt([(2, 3, 7)]), make_pred([(0, 1, {5: 0.9})]))
    d = (make_gt([(2, 3, 7)]), None)
    r = metrics([a, b, c, d], ks=(1,), zero_shot_triplets=seen)
    # openpsg: zR over A, C = mean(1, 0); R over A, B, C = mean(1/2, 0, 0)
    # fair: zR over A, C, D = mean(1, 0, 0); R over A, B, C, D = mean(1/2, 0, 0, 0)
    check(r, openpsg__zR_1=50, openpsg__R_1=100 / 6, fair__zR_1=100 / 3, fair__R_1=12.5)


def test_dense_and_rle_masks_give_identical_numbers():
    rng = np.random.default_rng(7)
    scenes = [random_scene(rng, f'im{i}') for i in range(25)]
    cfg = SGGConfig(ks=(1, 3, 20), dedup='ng')

    def as_rle(pred):
        return None if pred is None else Prediction(**{**pred.__dict__,
                                                       'masks': encode_rle(pred.masks)})

    dense = summarize([evaluate_image(g, p, cfg, r) for g, p, r in scenes], cfg)
    rle = summarize([evaluate_image(g, as_rle(p), cfg, r) for g, p, r in scenes], cfg)
    assert same(dense, rle)
    assert dense['openpsg/R@20'] > 0 and dense['fair/R@20'] > 0


def test_top_k_descending_keeps_index_order_on_ties():
    scores = np.array([0.5, 0.9, 0.5, 0.9, 0.1, 0.5], np.float32)
    np.testing.assert_array_equal(top_k_descending(scores, 1), [1])
    np.testing.assert_array_equal(top_k_descending(scores, 3), [1, 3, 0])
    np.testing.assert_array_equal(top_k_descending(scores, 4), [1, 3, 0, 2])
    np.testing.assert_array_equal(top_k_descending(scores, 9), [1, 3, 0, 2, 5, 4])
    cells = np.array([[0.2, 0.7], [0.7, 0.2]])  # row-major: (0,1) before (1,0)
    np.testing.assert_array_equal(top_k_descending(cells, 3), [1, 2, 0])


def test_box_iou_by_hand():
    gt = np.array([[0, 0, 4, 4]], np.float32)
    pred = np.array([[0, 0, 4, 2],      # 8 / 16
                     [2, 2, 6, 6],      # inter 4, union 28
                     [5, 5, 6, 6],      # disjoint
                     [1, 1, 1, 3]], np.float32)  # zero area inside: 0 / 16
    np.testing.assert_array_equal(box_iou(pred, gt)[:, 0], np.float32([0.5, 4 / 28, 0, 0]))
    empty = np.array([[1, 1, 1, 1]], np.float32)
    assert box_iou(empty, empty)[0, 0] == 0 and box_iou(empty, empty, eps=1e-6)[0, 0] == 0


def test_mask_geometry_with_overlapping_masks_by_hand():
    gt = np.array([[0, 0, 1, 1, -1]], np.int32)   # g0 = cols 0-1, g1 = cols 2-3, col 4 void
    masks = np.array([[[1, 1, 1, 0, 0]],           # p0: 2 px of g0, 1 of g1
                      [[0, 0, 1, 1, 1]]], bool)    # p1: overlaps p0 at col 2; 2 of g1, 1 void
    geo = MaskGeometry.from_masks(masks, gt, 2)
    np.testing.assert_array_equal(geo.inter, [[2, 1], [0, 2]])
    np.testing.assert_array_equal(geo.pred_area, [3, 3])
    np.testing.assert_allclose(geo.iou(), [[2 / 3, 1 / 4], [0, 2 / 3]])
    # union p0|p1 = all 5 px; GT union g0|g1 = 4 px; inter 4 -> 4/5 (disjoint sums would say 6 px)
    np.testing.assert_allclose(geo.pair_union_iou(np.array([[0, 1], [0, 0]]), np.array([[0, 1]])),
                               [[4 / 5], [3 / 4]])
    # fair's id map (lowest index wins): p1 loses col 2 -> p1 = cols 3-4: 1 px of g1, 1 void
    np.testing.assert_allclose(geo.resolved().iou(), [[2 / 3, 1 / 4], [0, 1 / 3]])
    disjoint = np.array([[[1, 1, 1, 0, 0]], [[0, 0, 0, 1, 1]]], bool)  # p0 cols 0-2, p1 cols 3-4
    geo = MaskGeometry.from_masks(disjoint, gt, 2)
    assert geo.masks is None  # counted from one id map
    np.testing.assert_array_equal(geo.inter, [[2, 1], [0, 1]])
    # union p0|p1 = 5 px, 4 of them in g0|g1 -> 4/5
    np.testing.assert_allclose(geo.pair_union_iou(np.array([[0, 1]]), np.array([[0, 1]])), [[4 / 5]])


def test_resolved_counts_equal_the_id_map_of_the_masks():
    rng = np.random.default_rng(2)
    for _ in range(20):
        gt = rng.integers(-1, 4, (5, 7)).astype(np.int32)
        masks = rng.random((6, 5, 7)) < 0.4
        resolved = MaskGeometry.from_masks(masks, gt, 4).resolved().iou()
        np.testing.assert_array_equal(resolved, id_map_iou(masks_to_id_map(masks), gt, 6, 4))


@pytest.mark.parametrize('mutate, field', [
    (lambda p: setattr(p, 'pairs', np.array([[0, 4]])), 'prediction.pairs'),
    (lambda p: setattr(p, 'pairs', np.array([[0.0, 1.0]])), 'prediction.pairs'),
    (lambda p: setattr(p, 'predicate_scores', np.zeros((1, 57), np.float32)),
     'prediction.predicate_scores'),
    (lambda p: setattr(p, 'triplet_scores', np.array([np.nan], np.float32)),
     'prediction.triplet_scores'),
    (lambda p: setattr(p, 'no_relation_scores', np.zeros(3, np.float32)),
     'prediction.no_relation_scores'),
    (lambda p: setattr(p, 'masks', p.masks[:, :3]), 'prediction.masks'),
    (lambda p: setattr(p, 'masks', None), 'prediction.masks'),
    (lambda p: setattr(p, 'masks', encode_rle(np.zeros((4, 3, 6), bool))), 'prediction.masks'),
])
def test_bad_prediction_names_image_and_field(mutate, field):
    pred = make_pred([(0, 1, {5: 0.9})], image_id='42')
    mutate(pred)
    with pytest.raises(EvaluationError, match=f'image_id=42: {field}: '):
        evaluate_image(make_gt([(0, 1, 5)], image_id='42'), pred, SGGConfig())


def test_bad_ground_truth_names_image_and_field():
    gt = make_gt([(0, 7, 5)], image_id='9')
    with pytest.raises(EvaluationError, match=r'image_id=9: gt.rels: segment index out of range'):
        evaluate_image(gt, None, SGGConfig())
    gt = make_gt([(0, 1, 5)], image_id='9')
    with pytest.raises(EvaluationError, match=r'image_id=9: rels_raw: predicate out of range'):
        evaluate_image(gt, None, SGGConfig(), rels_raw=np.array([[0, 1, 56]]))
    gt.id_map = None
    with pytest.raises(EvaluationError, match=r"image_id=9: gt.id_map: .*match='box'"):
        evaluate_image(gt, make_pred([(0, 1, {5: 0.9})]), SGGConfig())


def test_summarize_rejects_records_of_other_ks():
    cfg = SGGConfig(ks=(1, 2))
    record = evaluate_image(make_gt([(0, 1, 5)]), make_pred([(0, 1, {5: 0.9})]), cfg)
    with pytest.raises(ValueError, match='cfg.ks'):
        summarize([record], SGGConfig(ks=(20, 50, 100)))


def test_per_predicate_table():
    from openpsg.structures import PREDICATES
    cfg = SGGConfig(ks=(1, 2))
    # GT (0,1,5 'attached to'), (2,3,14 'standing on'); rows hit p5 first, p14 second
    gt = make_gt([(0, 1, 5), (2, 3, 14)])
    pred = make_pred([(0, 1, {5: 0.9}), (2, 3, {14: 0.8})])
    table = per_predicate_table([evaluate_image(gt, pred, cfg)], cfg, PREDICATES)
    lines = table.splitlines()
    assert lines[0].split() == ['predicate', '#GT', 'openpsg', 'R@1', 'openpsg', 'R@2', 'fair',
                                'R@1', 'fair', 'R@2']
    assert lines[1 + 5].split() == ['attached', 'to', '1', '100.00', '100.00', '100.00', '100.00']
    assert lines[1 + 14].split() == ['standing', 'on', '1', '0.00', '100.00', '0.00', '100.00']
    assert lines[1].split() == ['over', '0', '-', '-', '-', '-']
    # mean: openpsg (1 + 0)/56 and (1 + 1)/56; fair over the two predicates present
    assert lines[-1].split() == ['mean', f'{100 / 56:.2f}', f'{200 / 56:.2f}', '50.00', '100.00']
