"""The ``fair`` protocol against hand-computed numbers (and the ``openpsg`` value where the two
differ), then against a slow restatement of fair-psgg's rules on random images."""
from collections import defaultdict

import numpy as np
import pytest
from test_eval_common import (HORSE, P, PERSON, QUAD, check, make_gt, make_pred, metrics,
                              random_scene)

from openpsg.evaluation.fair_protocol import match_segments
from openpsg.evaluation.sgg import (EvaluationError, SGGConfig, evaluate_image,
                                    per_predicate_recall, summarize)

# GT (0,1,5), (2,3,9). Rows in emitted order, with their ranking scores:
#   r0 (0,1) argmax 7 (max 0.5), score 0.9  -- miss
#   r1 (0,1) argmax 5 (max 0.8), score 0.3  -- hit
#   r2 (2,3) argmax 8 (max 0.7), score 0.6  -- miss
DEDUP_GT = [(0, 1, 5), (2, 3, 9)]
DEDUP_ROWS = [(0, 1, {7: 0.5}), (0, 1, {5: 0.8}), (2, 3, {8: 0.7})]
DEDUP_SCORES = [0.9, 0.3, 0.6]


@pytest.mark.parametrize('dedup, recalls', [
    ('none', (0, 0, 50)),    # ranked r0, r2, r1
    ('first', (0, 0, 0)),    # r0, r2 survive
    ('max', (0, 50, 50)),    # r1 (0.8 > 0.5), r2 survive; ranked r2, r1
    ('ng', (50, 50, 50)),    # (0,1) merged: argmax 5, score max(0.9, 0.3) -> ranked first
])
def test_dedup_modes(dedup, recalls):
    pred = make_pred(DEDUP_ROWS, triplet_scores=DEDUP_SCORES)
    r = metrics([(make_gt(DEDUP_GT), pred)], ks=(1, 2, 3), dedup=dedup)
    check(r, fair__R_1=recalls[0], fair__R_2=recalls[1], fair__R_3=recalls[2],
          openpsg__R_1=0, openpsg__R_2=50, openpsg__R_3=50)  # openpsg: emitted order, no dedup


def test_dedup_max_keeps_the_first_of_equal_rows():
    gt = make_gt([(0, 1, 5)])
    pred = make_pred([(0, 1, {5: 0.8}), (0, 1, {7: 0.8})])
    check(metrics([(gt, pred)], ks=(2,), dedup='max'), fair__R_2=100)
    pred = make_pred([(0, 1, {7: 0.8}), (0, 1, {5: 0.8})])
    check(metrics([(gt, pred)], ks=(2,), dedup='max'), fair__R_2=0)


def test_dedup_fail_names_image_and_pair():
    pred = make_pred(DEDUP_ROWS, triplet_scores=DEDUP_SCORES, image_id='1234')
    with pytest.raises(EvaluationError, match=r'image_id=1234: prediction.pairs: pair '
                                              r'\(subject=0, object=1\) occurs in 2 rows'):
        evaluate_image(make_gt(DEDUP_GT, image_id='1234'), pred, SGGConfig(dedup='fail'))
    unique = make_pred(DEDUP_ROWS[1:], triplet_scores=DEDUP_SCORES[1:])
    check(metrics([(make_gt(DEDUP_GT), unique)], ks=(1,), dedup='fail'), fair__R_1=0)


def test_dedup_decides_the_no_graph_constraint_cells():
    # GT (0,1,5), (0,1,7); r0 (0,1) p5 0.5, no-relation 0.9, score 0.9; r1 (0,1) p7 0.6,
    # no-relation 0.1, score 0.8. Cell score p * (1 - no-relation):
    #   none:  r1p7 0.54, r0p5 0.05         -> ngR@1 50, ngR@2 100
    #   first: r0p5 0.05, then zeros        -> 50, 50
    #   max:   r1p7 0.54, then zeros        -> 50, 50
    #   ng:    p7 0.6 * 0.5, p5 0.5 * 0.5   -> 50, 100 (no-relation = mean 0.5)
    gt = make_gt([(0, 1, 5), (0, 1, 7)])
    pred = make_pred([(0, 1, {5: 0.5}), (0, 1, {7: 0.6})], triplet_scores=[0.9, 0.8],
                     no_relation=[0.9, 0.1])
    expected = {'none': (50, 100), 'first': (50, 50), 'max': (50, 50), 'ng': (50, 100)}
    for dedup, (at1, at2) in expected.items():
        r = metrics([(gt, pred)], ks=(1, 2), dedup=dedup)
        check(r, fair__ngR_1=at1, fair__ngR_2=at2)
    # graph-constrained: 'first' keeps r0 (hits p5), 'max' keeps r1 (hits p7), 'ng' merges to
    # argmax 7; 'none' hits both with two rows
    for dedup, hit, missed in (('first', 5, 7), ('max', 7, 5), ('ng', 7, 5)):
        cfg = SGGConfig(ks=(2,), dedup=dedup)
        per_predicate = per_predicate_recall([evaluate_image(gt, pred, cfg)], cfg, 'fair')[0]
        assert per_predicate[hit] == 100 and per_predicate[missed] == 0, dedup
    check(metrics([(gt, pred)], ks=(2,), dedup='none'), fair__R_2=100)


def test_no_relation_scores_reorder_cells():
    # GT (0,1,5); r0 (0,1) p5 0.5, r1 (2,3) p7 0.45. With no-relation (0.9, 0.1): 0.05 vs 0.405
    # -> p7 first (miss); without: 0.5 vs 0.45 -> p5 first (hit)
    gt = make_gt([(0, 1, 5)])
    rows = [(0, 1, {5: 0.5}), (2, 3, {7: 0.45})]
    check(metrics([(gt, make_pred(rows, no_relation=[0.9, 0.1]))], ks=(1,)), fair__ngR_1=0)
    check(metrics([(gt, make_pred(rows))], ks=(1,)), fair__ngR_1=100, openpsg__ngR_1=100)


def test_gt_duplicates_count_twice():
    # annotated: (0,1,5) twice + (2,3,9); OpenPSG's test rule keeps (0,1,5) once
    gt = make_gt([(0, 1, 5), (2, 3, 9)])
    raw = np.array([(0, 1, 5), (0, 1, 5), (2, 3, 9)])
    pred = make_pred([(0, 1, {5: 0.9})])
    r = metrics([(gt, pred)], raw=[raw], ks=(1,))
    # openpsg: 1 of 2, p5 1/1; fair: 2 of 3, p5 2/2, p9 0/1
    check(r, openpsg__R_1=50, openpsg__mR_1=100 / 56, fair__R_1=200 / 3, fair__mR_1=50)
    check(metrics([(gt, pred)], ks=(1,)), fair__R_1=50)  # without rels_raw: gt.rels


def test_dedup_none_counts_every_row_that_hits():
    # two rows of one pair with the same argmax both hit GT (0,1,5): fair-psgg counts 2 hits
    gt = make_gt([(0, 1, 5)])
    pred = make_pred([(0, 1, {5: 0.9}), (0, 1, {5: 0.8})])
    check(metrics([(gt, pred)], ks=(2,), dedup='none'), fair__R_2=200, openpsg__R_2=100)
    check(metrics([(gt, pred)], ks=(2,), dedup='first'), fair__R_2=100)


def test_overlapping_masks_become_one_id_map_lowest_index_first():
    gt = make_gt([(0, 1, 5)])
    rows = [(1, 2, {5: 0.9}), (0, 2, {5: 0.9})]  # row 0 uses mask 1, row 1 mask 0
    # masks 0 and 1 both equal segment 0: mask 1 keeps no pixel in the id map
    twins = np.stack([QUAD == 0, QUAD == 0, QUAD == 1])
    # mask 0 = 4 px of segment 0 (IoU 4/6), mask 1 = all of it: in the id map mask 1 keeps
    # only the other 2 px (IoU 2/6), so only mask 0 matches
    part = (QUAD == 0) & ~np.array([[0, 0, 0, 0, 0, 0], [0, 1, 1, 0, 0, 0]] + [[0] * 6] * 2, bool)
    subset = np.stack([part, QUAD == 0, QUAD == 1])
    for masks in (twins, subset):
        pred = make_pred(rows, masks=masks, labels=[PERSON, PERSON, HORSE])
        check(metrics([(gt, pred)], ks=(1, 2)), openpsg__R_1=100, fair__R_1=0, fair__R_2=100)


# Boxes of 10x10 px: g0 [0,0,10,10], g1 [0,0,10,6] (inside g0), g2 [20,0,30,10]
BOXES = [[0, 0, 10, 10], [0, 0, 10, 6], [20, 0, 30, 10]]


def test_box_matching_is_one_to_one():
    # p0 [0,0,10,8]: IoU 0.8 with g0; p1 = g0 (IoU 1); both persons -> g0 keeps p1
    gt = make_gt([(0, 2, 5)], id_map=None, labels=[PERSON, PERSON, HORSE], boxes=BOXES)
    pred = make_pred([(0, 2, {5: 0.9}), (1, 2, {5: 0.8})], masks=None,
                     labels=[PERSON, PERSON, HORSE], boxes=[[0, 0, 10, 8], BOXES[0], BOXES[2]])
    check(metrics([(gt, pred)], ks=(1, 2), match='box'), openpsg__R_1=100, fair__R_1=0,
          fair__R_2=100)


def test_box_matching_takes_the_best_gt_with_the_same_label():
    # p0 [0,0,10,8] vs g0: 80/100 = 0.8, vs g1: 60/80 = 0.75; p1 = g2
    pred = make_pred([(0, 1, {5: 0.9})], masks=None, labels=[PERSON, HORSE],
                     boxes=[[0, 0, 10, 8], BOXES[2]])
    # g0 and g1 both persons: p0 goes to g0 only, so GT (1,2,5) is missed (openpsg: IoU 0.75 hits)
    same = make_gt([(1, 2, 5)], id_map=None, labels=[PERSON, PERSON, HORSE], boxes=BOXES)
    check(metrics([(same, pred)], ks=(1,), match='box'), openpsg__R_1=100, fair__R_1=0)
    # g0 a horse: the label gate leaves g1 as p0's best GT -> hit
    gated = make_gt([(1, 2, 5)], id_map=None, labels=[HORSE, PERSON, HORSE], boxes=BOXES)
    check(metrics([(gated, pred)], ks=(1,), match='box'), openpsg__R_1=100, fair__R_1=100)


def test_match_segments_by_hand():
    iou = np.array([[0.9, 0.6, 0.0],
                    [0.7, 0.0, 0.0],   # also best on g0, lower than p0 -> unmatched
                    [0.0, 0.5, 0.0],   # 0.5 is not above the threshold
                    [0.0, 0.0, 0.8],   # wrong label for g2
                    [0.0, 0.0, 0.6],
                    [0.0, 0.0, 0.6]])  # tie with p4 on g2 -> the lower index wins
    labels = np.array([1, 1, 1, 2, 3, 3])
    np.testing.assert_array_equal(match_segments(iou, labels, np.array([1, 1, 3]), 0.5),
                                  [0, -1, -1, -1, 2, -1])


# --------------------------------------------------------------------------- slow reference

def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def _box_iou(a, b) -> float:
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def _dedup(rows, dedup):
    """rows: [(s, o, scores, no_rel, rank)] -> rows per the dedup rule."""
    groups = defaultdict(list)
    for row in rows:
        groups[row[:2]].append(row)
    if dedup == 'none':
        return rows
    if dedup == 'first':
        return [row for i, row in enumerate(rows) if groups[row[:2]][0] is row]
    if dedup == 'max':
        best = {pair: max(g, key=lambda row: max(row[2])) for pair, g in groups.items()}
        return [row for row in rows if best[row[:2]] is row]
    merged = []
    for pair in sorted(groups):
        g = groups[pair]
        no_rel = None if g[0][3] is None else np.float32(np.mean([row[3] for row in g],
                                                                 dtype=np.float64))
        merged.append((*pair, np.max([row[2] for row in g], axis=0), no_rel,
                       max(row[4] for row in g)))
    return merged


def slow_fair(gt, pred, raw, mode, match, ks, dedup, seen):
    """fair-psgg's per-image rules written out -> (rels, hits per K per metric, zero-shot) or None."""
    rels = [tuple(int(v) for v in t) for t in raw]
    if not rels:
        return None
    gl = [int(v) for v in gt.labels]
    zero_shot = [(gl[s], gl[o], p) not in seen for s, o, p in rels]
    hits = {name: [[0] * len(rels) for _ in ks] for name in ('R', 'ngR')}
    if pred is None or len(pred.pairs) == 0:
        return rels, hits, zero_shot
    labels = gl if mode == 'predcls' else [int(v) for v in pred.labels]
    num = len(labels)
    if match == 'mask':
        pred_map = gt.id_map
        if mode == 'sgdet':
            pred_map = np.full(gt.id_map.shape, -1)
            for i, mask in reversed(list(enumerate(pred.dense_masks(gt.id_map.shape)))):
                pred_map[mask] = i
        iou = [[_iou(pred_map == i, gt.id_map == g) for g in range(len(gl))] for i in range(num)]
    else:
        boxes = gt.boxes if mode != 'sgdet' else pred.boxes
        iou = [[_box_iou(boxes[i], gt.boxes[g]) for g in range(len(gl))] for i in range(num)]
    iou = [[v if labels[i] == gl[g] else 0.0 for g, v in enumerate(row)] for i, row in enumerate(iou)]
    sent = defaultdict(list)
    for i, row in enumerate(iou):
        if max(row) > 0.5:
            sent[int(np.argmax(row))].append(i)
    matched = {max(dets, key=lambda d: iou[d][g]): g for g, dets in sent.items()}

    count = len(pred.pairs)
    ranks = pred.triplet_scores if pred.triplet_scores is not None else np.arange(count)[::-1]
    rows = [(int(s), int(o), pred.predicate_scores[r],
             None if pred.no_relation_scores is None else pred.no_relation_scores[r], ranks[r])
            for r, (s, o) in enumerate(pred.pairs)]
    rows = sorted(_dedup(rows, dedup), key=lambda row: -row[4])  # stable: ties keep row order
    cells = []
    for s, o, scores, no_rel, _ in rows:
        for c in range(P):
            cells.append((scores[c] * (1 - no_rel) if no_rel is not None else scores[c], s, o, c))
    cells.sort(key=lambda cell: -cell[0])
    ranked = {'R': [(s, o, int(np.argmax(scores))) for s, o, scores, _, _ in rows],
              'ngR': [(s, o, c) for _, s, o, c in cells]}
    for name, items in ranked.items():
        for i, k in enumerate(ks):
            for s, o, p in items[:k]:
                if s in matched and o in matched:
                    for t, triplet in enumerate(rels):
                        if triplet == (matched[s], matched[o], p):
                            hits[name][i][t] += 1
    return rels, hits, zero_shot


def slow_fair_summary(images, ks):
    out, results = {}, [r for r in images if r is not None]
    for name, mean_name in (('R', 'mR'), ('ngR', 'ng-mR')):
        for i, k in enumerate(ks):
            out[f'fair/{name}@{k}'] = 100 * np.mean([sum(h[name][i]) / len(rels)
                                                     for rels, h, _ in results])
            per_predicate = defaultdict(list)
            for rels, h, _ in results:
                for c in {p for _, _, p in rels}:
                    found = sum(n for n, (_, _, p) in zip(h[name][i], rels) if p == c)
                    per_predicate[c].append(found / sum(p == c for _, _, p in rels))
            out[f'fair/{mean_name}@{k}'] = 100 * np.mean([np.mean(v) for v in per_predicate.values()])
    for i, k in enumerate(ks):
        zs = [sum(n for n, z in zip(h['R'][i], zero) if z) / sum(zero) for _, h, zero in results
              if any(zero)]
        out[f'fair/zR@{k}'] = 100 * np.mean(zs) if zs else float('nan')
    out['fair/num_images'] = len(results)
    out['fair/num_skipped'] = len(images) - len(results)
    return out


@pytest.mark.parametrize('mode, match, dedup', [
    ('sgdet', 'mask', 'first'), ('sgdet', 'mask', 'max'), ('sgdet', 'mask', 'ng'),
    ('sgdet', 'mask', 'none'), ('sgdet', 'box', 'first'), ('predcls', 'mask', 'ng'),
    ('sgcls', 'mask', 'max'), ('sgcls', 'box', 'none')])
def test_matches_slow_reference_on_random_images(mode, match, dedup):
    rng = np.random.default_rng(5)
    ks = (1, 3, 8)  # K_max below the row count of many images
    seen = {(a, b, p) for a in range(3) for b in range(3) for p in (0, 1) if (a + b + p) % 2}
    scenes = [random_scene(rng, f'im{i}', mode) for i in range(40)]
    cfg = SGGConfig(mode=mode, match=match, ks=ks, protocols=('fair',), dedup=dedup,
                    zero_shot_triplets=seen)
    got = summarize([evaluate_image(g, p, cfg, r) for g, p, r in scenes], cfg)
    want = slow_fair_summary([slow_fair(g, p, r, mode, match, ks, dedup, seen)
                              for g, p, r in scenes], ks)
    assert got.keys() == want.keys()
    for key in want:
        assert got[key] == pytest.approx(want[key], abs=1e-9, nan_ok=True), key
    assert want['fair/R@8'] > 5 and want['fair/num_images'] >= 20  # not vacuous
