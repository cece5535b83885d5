"""Grading a challenge submission: library and ``tools/grade.py`` on a tiny PSG-schema dataset
written here (psg.json + panoptic PNGs)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from openpsg.datasets import PSGDataset
from openpsg.evaluation import evaluate
from openpsg.evaluation.submission import grade_submission, write_scores, write_submission
from openpsg.structures import (NUM_THING_CLASSES, PREDICATES, STUFF_CLASSES, THING_CLASSES,
                                Prediction, id2rgb, id_map_to_masks, masks_to_boxes)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
V = -1
PERSON, CAR, DOG = 0, 2, 16
GRASS = NUM_THING_CLASSES + STUFF_CLASSES.index('grass-merged')
ROAD = NUM_THING_CLASSES + STUFF_CLASSES.index('road')
ON, STANDING_ON, LOOKING_AT, PARKED_ON = (PREDICATES.index(p) for p in
                                          ('on', 'standing on', 'looking at', 'parked on'))

IMAGES = {  # image_id -> (id map, labels, relations)
    '11': ([[0, 0, 0, 1, 1, 1],
            [0, 0, 0, 1, 1, 1],
            [2, 2, 2, 2, 2, 2],
            [2, 2, 2, 2, 2, 2],
            [2, 2, 2, 2, 2, V]],
           [PERSON, DOG, GRASS],
           [[0, 2, STANDING_ON], [1, 2, STANDING_ON], [0, 1, LOOKING_AT]]),
    '12': ([[0, 0, 1, 1],
            [0, 0, 1, 1],
            [0, 0, 1, 1],
            [V, V, 1, 1]],
           [CAR, ROAD],
           [[0, 1, PARKED_ON], [0, 1, ON]]),
    '13': ([[0, 0], [1, 1]], [PERSON, GRASS], []),                 # test image without relations
    '99': ([[0, 0], [1, 1]], [PERSON, GRASS], [[0, 1, ON]]),       # training image
}
TEST_IDS = ['11', '12']


def write_dataset(root):
    (root / 'pan').mkdir()
    data = []
    for image_id, (id_map, labels, rels) in IMAGES.items():
        id_map = np.asarray(id_map)
        segment_ids = [1000 * (k + 1) + 7 for k in range(len(labels))]
        pan = np.where(id_map >= 0, np.asarray(segment_ids)[id_map], 0)
        Image.fromarray(id2rgb(pan)).save(root / 'pan' / f'{image_id}.png')
        masks = id_map_to_masks(id_map.astype(np.int32), len(labels))
        data.append({
            'file_name': f'img/{image_id}.jpg', 'height': id_map.shape[0], 'width': id_map.shape[1],
            'image_id': image_id, 'coco_image_id': image_id, 'pan_seg_file_name': f'pan/{image_id}.png',
            'segments_info': [{'id': s, 'category_id': c, 'iscrowd': 0,
                               'isthing': int(c < NUM_THING_CLASSES), 'area': int(m.sum())}
                              for s, c, m in zip(segment_ids, labels, masks)],
            'annotations': [{'bbox': b, 'bbox_mode': 0, 'category_id': c}
                            for b, c in zip(masks_to_boxes(masks).tolist(), labels)],
            'relations': rels})
    ann = root / 'psg.json'
    ann.write_text(json.dumps({'data': data, 'thing_classes': list(THING_CLASSES),
                               'stuff_classes': list(STUFF_CLASSES),
                               'predicate_classes': list(PREDICATES),
                               'test_image_ids': ['11', '12', '13']}))
    return str(ann)


def prediction(image_id, id_map, labels, pairs, predicates, scores=None):
    id_map = np.asarray(id_map, np.int32)
    masks = id_map_to_masks(id_map, len(labels))
    r = len(pairs)
    if scores is None:  # soft scores whose argmax is `predicates`
        scores = np.full((r, 56), 0.2 / 55, np.float32)
        scores[np.arange(r), predicates] = 0.8
    return Prediction(image_id=image_id, labels=np.asarray(labels, np.int64),
                      scores=np.full(len(labels), 0.7, np.float32), boxes=masks_to_boxes(masks),
                      masks=masks, pairs=np.asarray(pairs, np.int64).reshape(-1, 2),
                      predicate_scores=scores,
                      triplet_scores=np.linspace(0.9, 0.2, r).astype(np.float32))


PRED_11 = [[0, 0, 0, 1, 1, 1],
           [0, 0, 3, 1, 1, 2],                                      # dog loses a pixel to the grass
           [2, 2, 2, 2, 2, 2],
           [2, 2, 3, 3, 2, 2],                                      # segment 3: a false positive
           [2, 2, 2, 2, 2, 2]]
PRED_12 = [[1, 1, 0, 0],
           [1, 1, 0, 0],
           [1, 1, 0, 0],
           [1, 1, 0, 0]]


def noisy_predictions():
    return [
        prediction('11', PRED_11, [PERSON, DOG, GRASS, CAR],
                   [[1, 2], [0, 1], [0, 2], [0, 1], [3, 2]],
                   [STANDING_ON, 5, STANDING_ON, LOOKING_AT, ON]),
        prediction('12', PRED_12, [ROAD, CAR], [[1, 0], [1, 0], [0, 1]], [ON, PARKED_ON, ON]),
    ]


def as_graded(pred, max_rels):
    """What grading sees of a prediction: first ``max_rels`` rows, one-hot argmax predicates."""
    r = min(len(pred.pairs), max_rels) if max_rels else len(pred.pairs)
    one_hot = np.zeros((r, 56), np.float32)
    one_hot[np.arange(r), pred.predicate_scores[:r].argmax(1)] = 1
    return Prediction(image_id=pred.image_id, labels=pred.labels, scores=np.ones(len(pred.labels), np.float32),
                      boxes=pred.boxes, masks=pred.masks, pairs=pred.pairs[:r], predicate_scores=one_hot,
                      triplet_scores=np.arange(r, 0, -1).astype(np.float32))


@pytest.fixture()
def dataset(tmp_path):
    root = tmp_path / 'data'
    root.mkdir()
    return PSGDataset(write_dataset(root), str(root), split='test')


@pytest.mark.parametrize('max_rels', [2, 0])
def test_grading_equals_in_memory_evaluation(tmp_path, dataset, max_rels):
    assert dataset.image_ids == TEST_IDS
    write_submission(noisy_predictions(), TEST_IDS, str(tmp_path / 'sub'))
    scores = grade_submission(str(tmp_path / 'sub'), dataset, max_rels=max_rels)
    direct = evaluate([as_graded(p, max_rels) for p in noisy_predictions()], dataset)
    assert sorted(scores) == ['fair', 'openpsg', 'panoptic']
    for protocol in ('openpsg', 'fair'):
        for key, value in scores[protocol].items():
            assert value == pytest.approx(direct[f'sgdet/{protocol}/{key}']), (protocol, key)
    for key, value in scores['panoptic'].items():
        assert value == pytest.approx(direct[key]), key
    assert 0 < scores['fair']['R@20'] < 100 and 0 < scores['panoptic']['PQ'] < 100


def run_grade(*args):
    return subprocess.run([sys.executable, os.path.join(REPO, 'tools', 'grade.py'), *map(str, args)],
                          capture_output=True, text=True, cwd=REPO, timeout=120)


def test_cli_on_a_perfect_submission(tmp_path, dataset):
    # the ground truth itself, submitted
    perfect = [prediction(i, IMAGES[i][0], IMAGES[i][1], [r[:2] for r in IMAGES[i][2]],
                          [r[2] for r in IMAGES[i][2]]) for i in TEST_IDS]
    write_submission(perfect, TEST_IDS, str(tmp_path / 'sub'))
    out = tmp_path / 'scores'
    proc = run_grade(tmp_path / 'sub', '--ann-file', dataset.ann_file, '--data-root',
                     dataset.data_root, '--out', out, '--workers', '2')
    assert proc.returncode == 0, proc.stderr
    # image 11: 3/3 triplets; image 12: one pair with two GT predicates, the submission has
    # the pair twice (one row per predicate) -> openpsg 2/2. R = 1; predicates standing on,
    # looking at, parked on, on each recalled fully -> mR = 4/56. PQ = 100.
    names, values = zip(*(line.split(': ') for line in (out / 'scores.txt').read_text().splitlines()))
    assert names == ('Recall R 20', 'MeanRecall R 20', 'PQ')
    assert [float(v) for v in values] == pytest.approx([1.0, 4 / 56, 100.0])
    scores = json.loads((out / 'scores.json').read_text())
    assert sorted(scores['openpsg']) == sorted(f'{m}@{k}' for m in ('R', 'mR') for k in (20, 50, 100))
    assert sorted(scores['fair']) == sorted(f'{m}@{k}' for m in ('R', 'mR', 'ngR', 'ng-mR')
                                            for k in (20, 50, 100))
    assert sorted(scores['panoptic']) == sorted(['PQ', 'SQ', 'RQ', 'PQ_th', 'SQ_th', 'RQ_th',
                                                 'PQ_st', 'SQ_st', 'RQ_st'])
    assert scores['panoptic']['PQ_st'] == 100.0
    # fair de-duplicates the repeated pair of image 12 (first row kept): 1/2 there -> R = 75
    assert scores['fair']['R@20'] == pytest.approx(75.0)


def test_cli_rejects_a_malformed_submission(tmp_path, dataset):
    write_submission(noisy_predictions(), TEST_IDS, str(tmp_path / 'sub'))
    rel = tmp_path / 'sub' / 'relation.json'
    entries = json.loads(rel.read_text())
    entries[0]['relations'][1][2] = 57
    entries[1]['segments_info'][0]['category_id'] = 0
    rel.write_text(json.dumps(entries))
    (tmp_path / 'sub' / 'panseg' / '1.png').unlink()
    out = tmp_path / 'scores'
    out.mkdir()
    (out / 'scores.txt').write_text('Recall R 20: 0.5\n')               # from an earlier run
    proc = run_grade(tmp_path / 'sub', '--ann-file', dataset.ann_file, '--data-root',
                     dataset.data_root, '--out', out)
    assert proc.returncode == 1
    assert '3 problem(s), not graded' in proc.stderr
    assert 'entry 0: ' in proc.stderr and 'relations[1]: predicate 57 is outside 1..56' in proc.stderr
    assert 'image_id=12: segments_info[0].category_id: 0 is outside 1..133' in proc.stderr
    assert 'entry 1: ' in proc.stderr and 'pan_seg_file_name: file not found' in proc.stderr
    assert os.listdir(out) == []


def test_scores_txt_from_fair_only_and_nan_as_null(tmp_path):
    scores = {'fair': {'R@20': 40.0, 'mR@20': float('nan')},
              'panoptic': {'PQ': 12.5}}
    write_scores(scores, str(tmp_path))
    assert (tmp_path / 'scores.txt').read_text().splitlines() == [
        'Recall R 20: 0.4', 'MeanRecall R 20: nan', 'PQ: 12.5']
    assert json.loads((tmp_path / 'scores.json').read_text())['fair'] == {'R@20': 40.0, 'mR@20': None}
    assert sorted(os.listdir(tmp_path)) == ['scores.json', 'scores.txt']
