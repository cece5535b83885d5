"""Dataset-level evaluation runner: alignment by image_id, missing and unknown images, PQ in the same
pass, identical results with and without worker processes, and the printed table."""
import logging

import numpy as np
import pytest

from openpsg.evaluation import evaluate, format_results
from openpsg.structures import CLASSES, NUM_THING_CLASSES, PREDICATES, GroundTruth, Prediction
from openpsg.structures import id_map_to_masks, masks_to_boxes

V = -1


class InMemoryDataset:
    """The part of the dataset interface the runner reads, over hand-made ground truth."""

    classes = CLASSES
    predicates = PREDICATES
    num_things = NUM_THING_CLASSES

    def __init__(self, gts):
        self.gts = {gt.image_id: gt for gt in gts}
        self.image_ids = [gt.image_id for gt in gts]
        self.reads = 0

    def get_gt_by_id(self, image_id):
        self.reads += 1
        return self.gts[image_id]


def ground_truth(image_id, id_map, labels, rels):
    id_map = np.asarray(id_map, np.int32)
    return GroundTruth(image_id=image_id, labels=np.asarray(labels, np.int64),
                       boxes=masks_to_boxes(id_map_to_masks(id_map, len(labels))),
                       rels=np.asarray(rels, np.int64).reshape(-1, 3), id_map=id_map,
                       iscrowd=np.zeros(len(labels), bool))


def prediction(image_id, id_map, labels, pairs, predicates):
    masks = id_map_to_masks(np.asarray(id_map, np.int32), len(labels))
    scores = np.full((len(pairs), 56), 0.001, np.float32)
    scores[np.arange(len(pairs)), predicates] = 0.9
    return Prediction(image_id=image_id, labels=np.asarray(labels, np.int64),
                      scores=np.ones(len(labels), np.float32), boxes=masks_to_boxes(masks),
                      masks=masks, pairs=np.asarray(pairs, np.int64).reshape(-1, 2),
                      predicate_scores=scores,
                      triplet_scores=np.linspace(1, 0.5, len(pairs)).astype(np.float32))


MAP_A = [[0, 0, 0, 0],
         [0, 0, 0, 0],
         [1, 1, 2, 2],
         [1, 1, 2, 2]]
MAP_B = [[0, 0, 1],
         [0, 0, 1],
         [V, 1, 1]]


def scene():
    # image a: person (0) on banner (80, stuff) [predicate 3] and person holding bicycle (1) [21]
    # image b: car (2) parked on (47) platform (96, stuff)
    gts = [ground_truth('a', MAP_A, [0, 80, 1], [[0, 1, 3], [0, 2, 21]]),
           ground_truth('b', MAP_B, [2, 96], [[0, 1, 47]])]
    # perfect masks and labels; a's first row is right (holding), its second row wrong (5 != 3)
    preds = [prediction('a', MAP_A, [0, 80, 1], [[0, 2], [0, 1]], [21, 5]),
             prediction('b', MAP_B, [2, 96], [[0, 1]], [47])]
    return InMemoryDataset(gts), preds


def test_alignment_by_image_id_and_hand_computed_values():
    dataset, preds = scene()
    results = evaluate(list(reversed(preds)), dataset)
    # per-image recall a = 1/2, b = 1/1 -> R@K = 75 for every K under both protocols
    for protocol in ('openpsg', 'fair'):
        for k in (20, 50, 100):
            assert results[f'sgdet/{protocol}/R@{k}'] == pytest.approx(75.0)
    # predicates 3 (0/1), 21 (1/1), 47 (1/1): openpsg divides by all 56 predicates
    assert results['sgdet/openpsg/mR@20'] == pytest.approx(100 * 2 / 56)
    # every predicted segment equals its GT segment -> PQ = SQ = RQ = 100
    for key in ('PQ', 'SQ', 'RQ', 'PQ_th', 'PQ_st'):
        assert results[key] == pytest.approx(100.0)
    assert dataset.reads == 2


def test_missing_image():
    dataset, preds = scene()
    results = evaluate(iter(preds[:1]), dataset)                    # any iterable; b is missing
    assert results['sgdet/openpsg/R@20'] == pytest.approx(50.0)     # b skipped
    assert results['sgdet/fair/R@20'] == pytest.approx(25.0)        # b counts 0
    # PQ: b's car (2) and platform (96) are false negatives; a's 3 classes are perfect
    # classes 0, 1, 80 -> 1; classes 2, 96 -> 0: All 3/5, Things 2/3, Stuff 1/2
    assert results['PQ'] == pytest.approx(60.0)
    assert results['PQ_th'] == pytest.approx(200 / 3)
    assert results['PQ_st'] == pytest.approx(50.0)
    assert results['SQ'] == pytest.approx(60.0) and results['RQ'] == pytest.approx(60.0)


def test_unknown_or_repeated_image_id_is_an_error():
    dataset, preds = scene()
    stray = prediction('zz', MAP_B, [2, 96], [[0, 1]], [47])
    with pytest.raises(ValueError, match="image_id 'zz', which is not one of the 2 images"):
        evaluate(preds + [stray], dataset)
    with pytest.raises(ValueError, match="two predictions have image_id 'a'"):
        evaluate(preds + preds[:1], dataset)


def test_metric_selection_and_key_prefixes():
    dataset, preds = scene()
    only_pq = evaluate(preds, dataset, metrics=('PQ',))
    assert sorted(only_pq) == sorted(['PQ', 'SQ', 'RQ', 'PQ_th', 'SQ_th', 'RQ_th', 'PQ_st', 'SQ_st',
                                      'RQ_st'])
    sg = evaluate(preds, dataset, metrics=('sgdet', 'predcls'), protocols=('fair',), ks=(1,))
    assert 'PQ' not in sg
    assert sg['sgdet/fair/R@1'] == pytest.approx(75.0)               # the right row of a is first
    assert sg['predcls/fair/R@1'] == pytest.approx(75.0)
    assert not any('/openpsg/' in key for key in sg)
    with pytest.raises(ValueError, match=r"unknown metric\(s\) \['bbox'\]"):
        evaluate(preds, dataset, metrics=('sgdet', 'bbox'))


def random_scene(num_images, seed=0):
    """Noisy predictions over random block-structured ground truth."""
    rng = np.random.default_rng(seed)
    gts, preds = [], []
    for i in range(num_images):
        coarse = rng.integers(-1, 5, (4, 4))
        id_map = np.kron(coarse, np.ones((4, 4), np.int64)).astype(np.int32)
        labels = rng.choice([0, 1, 2, 80, 81], 5)
        labels = labels[np.unique(id_map[id_map >= 0])]
        id_map = np.searchsorted(np.unique(id_map[id_map >= 0]), id_map).astype(np.int32)
        id_map[np.kron(coarse, np.ones((4, 4), np.int64)) < 0] = V
        n = len(labels)
        rels = np.stack([rng.integers(n, size=4), rng.integers(n, size=4), rng.integers(3, size=4)], 1)
        gts.append(ground_truth(str(i), id_map, labels, rels))
        noisy = np.where(rng.random(id_map.shape) < 0.15, rng.integers(-1, n, id_map.shape), id_map)
        pred_labels = np.where(rng.random(n) < 0.2, 1, labels)
        pairs = np.stack([rng.integers(n, size=8), rng.integers(n, size=8)], 1)
        preds.append(prediction(str(i), noisy, pred_labels, pairs, rng.integers(3, size=8)))
    return InMemoryDataset(gts), preds


def test_workers_give_identical_results():
    dataset, preds = random_scene(12)
    serial = evaluate(preds, dataset, workers=0)
    parallel = evaluate(preds, dataset, workers=2)
    assert serial.keys() == parallel.keys()
    for key in serial:
        assert parallel[key] == pytest.approx(serial[key], nan_ok=True), key
    assert 0 < serial['sgdet/fair/R@20'] < 100 and 0 < serial['PQ'] < 100


def test_format_results_side_by_side(caplog):
    dataset, preds = scene()
    with caplog.at_level(logging.INFO):
        results = evaluate(preds, dataset, logger=logging.getLogger('eval-test'))
    table = format_results(results)
    lines = table.splitlines()
    assert lines[0].split() == ['sgdet', 'openpsg', 'fair']
    assert next(line for line in lines if line.startswith('R@20 ')).split() == ['R@20', '75.00', '75.00']
    assert next(line for line in lines if line.startswith('PhrDet_R@20')).split()[-1] == '-'
    assert next(line for line in lines if line.startswith('num_images')).split() == ['num_images', '2', '2']
    assert next(line for line in lines if line.startswith('PQ ')).split() == ['PQ', '100.00', '100.00', '100.00']
    assert table in caplog.text
