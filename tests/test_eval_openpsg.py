"""The ``openpsg`` protocol against hand-computed numbers (and the ``fair`` value where the two
differ), then against a slow per-triplet restatement of OpenPSG's rules on random images."""
import numpy as np
import pytest
from test_eval_common import (GRASS, HORSE, P, PERSON, QUAD, QUAD_LABELS, check, make_gt,
                              make_pred, metrics, random_scene)

from openpsg.evaluation.sgg import EvaluationError, SGGConfig, evaluate_image, summarize


def test_rows_keep_their_emitted_order():
    # the model emits a miss first although its score ranks it last
    gt = make_gt([(0, 1, 5)])
    pred = make_pred([(2, 3, {7: 0.9}), (0, 1, {5: 0.9})], triplet_scores=[0.1, 0.9])
    r = metrics([(gt, pred)], ks=(1, 2))
    check(r, openpsg__R_1=0, openpsg__R_2=100, fair__R_1=100, fair__R_2=100)


def test_iou_of_exactly_one_half():
    gt = make_gt([(0, 1, 5)])
    subject = np.zeros((4, 6), bool)
    subject[0, :3] = True  # top half of segment 0: IoU 3 / 6
    pred = make_pred([(0, 1, {5: 0.9})], masks=np.stack([subject, QUAD == 1]),
                     labels=[PERSON, HORSE])
    check(metrics([(gt, pred)], ks=(1,)), openpsg__R_1=100, fair__R_1=0)
    # boxes: [0,0,4,2] covers 8 of the 16 px of [0,0,4,4]
    gt_boxes = make_gt([(0, 1, 5)], boxes=[[0, 0, 4, 4], [4, 0, 8, 4], [0, 4, 4, 8], [4, 4, 8, 8]])
    pred = make_pred([(0, 1, {5: 0.9})], masks=None, labels=[PERSON, HORSE],
                     boxes=[[0, 0, 4, 2], [4, 0, 8, 4]])
    check(metrics([(gt_boxes, pred)], ks=(1,), match='box'), openpsg__R_1=100, fair__R_1=0)


def test_multi_label_pair():
    # GT pair (0,1) has predicates 5 and 7; one row: p5 0.6, p7 0.3, no-relation 0.1
    gt = make_gt([(0, 1, 5), (0, 1, 7)])
    pred = make_pred([(0, 1, {5: 0.6, 7: 0.3})], no_relation=[0.1])
    r = metrics([(gt, pred)], ks=(1, 2))
    # graph constraint: the row's argmax (5) hits one of two; no constraint: cells p5 then p7
    check(r, openpsg__R_1=50, openpsg__R_2=50, openpsg__ngR_1=50, openpsg__ngR_2=100,
          openpsg__mR_2=100 / 56, openpsg__ng_mR_2=200 / 56,
          fair__R_2=50, fair__ngR_1=50, fair__ngR_2=100, fair__mR_2=50, fair__ng_mR_2=100)


def test_duplicate_rows_are_independent_guesses():
    # two rows for pair (0,1) with different argmax predicates both hit (MultiMPO);
    # fair's default dedup 'first' keeps only the first row
    gt = make_gt([(0, 1, 5), (0, 1, 7)])
    pred = make_pred([(0, 1, {5: 0.9}), (0, 1, {7: 0.8})])
    check(metrics([(gt, pred)], ks=(2,)), openpsg__R_2=100, fair__R_2=50)


def test_phrase_detection_uses_the_union_of_subject_and_object():
    gt = make_gt([(0, 1, 5)])
    inside, outside = np.zeros((4, 6), bool), np.zeros((4, 6), bool)
    inside[1, 1:3] = True   # 2 px of segment 0: subject IoU 2/6, union IoU 8/12
    outside[2, 0:2] = True  # 2 px of segment 2: union 8 px, 6 in the GT union -> 6/14
    hit = make_pred([(0, 1, {5: 0.9})], masks=np.stack([inside, QUAD == 1]),
                    labels=[PERSON, HORSE])
    miss = make_pred([(0, 1, {5: 0.9})], masks=np.stack([outside, QUAD == 1]),
                     labels=[PERSON, HORSE])
    check(metrics([(gt, hit), (gt, miss)], ks=(1,)), openpsg__R_1=0, openpsg__PhrDet_R_1=50,
          openpsg__PhrDet_mR_1=50 / 56)
    # boxes: GT [0,0,3,2] + [3,0,6,2] -> union [0,0,6,2] (12); predicted subject [1,1,3,2]
    # (IoU 2/6) with the exact object -> union [1,0,6,2] (10) -> 10/12
    boxes = [[0, 0, 3, 2], [3, 0, 6, 2], [0, 2, 3, 4], [3, 2, 6, 4]]
    pred = make_pred([(0, 1, {5: 0.9})], masks=None, labels=[PERSON, HORSE],
                     boxes=[[1, 1, 3, 2], [3, 0, 6, 2]])
    check(metrics([(make_gt([(0, 1, 5)], boxes=boxes), pred)], ks=(1,), match='box'),
          openpsg__R_1=0, openpsg__PhrDet_R_1=100)


def test_pair_accuracy_counts_rows_on_gt_pairs_in_their_order():
    # image 1: GT (0,1,5), (2,3,9); rows (1,0,5) not a GT pair, (0,1,5) hit, (2,3,8), (2,3,9) hit
    # image 2: GT (0,1,5); row (0,1,5) hit
    wrong_labels = [1, 1, 1, 1]  # PredCls uses the GT labels
    one = (make_gt([(0, 1, 5), (2, 3, 9)]),
           make_pred([(1, 0, {5: 0.9}), (0, 1, {5: 0.9}), (2, 3, {8: 0.9}), (2, 3, {9: 0.9})],
                     masks=None, labels=wrong_labels))
    two = (make_gt([(0, 1, 5)]), make_pred([(0, 1, {5: 0.9})], masks=None, labels=wrong_labels))
    r = metrics([one, two], mode='predcls', ks=(1, 2, 3, 4))
    # openpsg R per image: (0, 1/2, 1/2, 1) and 1 -> mean. fair (dedup 'first') drops the second
    # (2,3) row, so image 1 stays at 1/2
    check(r, openpsg__R_1=50, openpsg__R_2=75, openpsg__R_3=75, openpsg__R_4=100,
          fair__R_1=50, fair__R_2=75, fair__R_3=75, fair__R_4=75)
    # A: GT-pair rows of image 1 are rows 2, 3, 4 -> hits 1, 1, 2, 2 of 2; image 2: 1 of 1;
    # pooled: (hits1 + hits2) / (2 + 1)
    check(r, openpsg__A_1=200 / 3, openpsg__A_2=200 / 3, openpsg__A_3=100, openpsg__A_4=100)
    # K counts GT-pair rows, not rows: two non-GT-pair rows first, then the hit (0,1,5)
    late = make_pred([(1, 0, {5: 0.9}), (3, 2, {9: 0.9}), (0, 1, {5: 0.9})], masks=None)
    check(metrics([(make_gt([(0, 1, 5), (2, 3, 9)]), late)], mode='predcls', ks=(2,)),
          openpsg__R_2=0, openpsg__A_2=50)


def test_predcls_and_sgcls_use_ground_truth_masks():
    gt = make_gt([(0, 1, 5)])
    wrong_subject = [HORSE, HORSE, PERSON, GRASS]
    empty_masks = np.zeros((4, 4, 6), bool)  # ignored: both modes take the GT masks
    pred = make_pred([(0, 1, {5: 0.9})], masks=empty_masks, labels=wrong_subject)
    check(metrics([(gt, pred)], mode='predcls', ks=(1,)), openpsg__R_1=100, fair__R_1=100)
    check(metrics([(gt, pred)], mode='sgcls', ks=(1,)), openpsg__R_1=0, fair__R_1=0)
    pred.labels = np.array(QUAD_LABELS)
    check(metrics([(gt, pred)], mode='sgcls', ks=(1,)), openpsg__R_1=100, fair__R_1=100)
    short = make_pred([(0, 1, {5: 0.9})], masks=None, labels=[PERSON, HORSE, PERSON],
                      image_id='77')
    for mode in ('predcls', 'sgcls'):
        with pytest.raises(EvaluationError, match='image_id=77: prediction.labels: .*4 segments'):
            evaluate_image(make_gt([(0, 1, 5)], image_id='77'), short, SGGConfig(mode=mode))



def test_no_graph_constraint_weights_cells_by_object_scores():
    # cells: (0,1,p5) 1 * 1 * 0.5 = 0.5; (2,3,p9) 0.5 * 1 * 0.6 = 0.3 -> p5 first (a hit);
    # fair without no-relation scores ranks raw p: p9 (0.6) first (a miss)
    gt = make_gt([(0, 1, 5)])
    pred = make_pred([(0, 1, {5: 0.5}), (2, 3, {9: 0.6})], seg_scores=[1, 1, 0.5, 1])
    check(metrics([(gt, pred)], ks=(1,)), openpsg__ngR_1=100, fair__ngR_1=0,
          openpsg__R_1=100, fair__R_1=100)


def test_no_graph_constraint_keeps_100_cells():
    # row 0 (2,3): all 56 cells 0.9..0.5; row 1 (0,1): 0.4..0.1, so GT (0,1,55) is cell 112 of 112
    gt = make_gt([(0, 1, 55)])
    high, low = np.linspace(0.9, 0.5, P), np.linspace(0.4, 0.1, P)
    pred = make_pred([(2, 3, dict(enumerate(high))), (0, 1, dict(enumerate(low)))])
    check(metrics([(gt, pred)], ks=(100, 150)), openpsg__ngR_100=0, openpsg__ngR_150=0,
          fair__ngR_100=0, fair__ngR_150=100, openpsg__R_150=0)


# --------------------------------------------------------------------------- slow reference

def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def _box_iou(a, b, eps=1e-6) -> float:
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / max(union, eps))


def _union_box(a, b):
    return [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]


def slow_openpsg(gt, pred, mode, match, ks, seen):
    """OpenPSG's per-image rules, one triplet at a time -> per-image results or None (skipped)."""
    rels = [tuple(int(v) for v in t) for t in gt.rels]
    if not rels or pred is None or len(pred.pairs) == 0:
        return None
    gl = [int(v) for v in gt.labels]
    labels = gl if mode == 'predcls' else [int(v) for v in pred.labels]
    obj_score = [np.float32(1)] * len(gl) if mode == 'predcls' else [np.float32(v) for v in
                                                                     pred.scores]
    if match == 'mask':
        gm = [gt.id_map == g for g in range(len(gl))]
        pm = gm if mode != 'sgdet' else list(pred.dense_masks(gt.id_map.shape))

        def both_ok(s, o, gs, go):
            return _iou(pm[s], gm[gs]) >= 0.5 and _iou(pm[o], gm[go]) >= 0.5

        def phrase_ok(s, o, gs, go):
            return _iou(pm[s] | pm[o], gm[gs] | gm[go]) >= 0.5
    else:
        gb = [list(map(float, b)) for b in gt.boxes]
        pb = gb if mode != 'sgdet' else [list(map(float, b)) for b in pred.boxes]

        def both_ok(s, o, gs, go):
            return _box_iou(pb[s], gb[gs]) >= 0.5 and _box_iou(pb[o], gb[go]) >= 0.5

        def phrase_ok(s, o, gs, go):
            return _box_iou(_union_box(pb[s], pb[o]), _union_box(gb[gs], gb[go])) >= 0.5

    def matches(s, o, p, ok):
        return {t for t, (gs, go, gp) in enumerate(rels) if labels[s] == gl[gs]
                and labels[o] == gl[go] and p == gp and ok(s, o, gs, go)}

    rows = [(int(s), int(o), int(np.argmax(ps))) for (s, o), ps in
            zip(pred.pairs, pred.predicate_scores)]
    cells = sorted(((obj_score[s] * obj_score[o] * np.float32(pred.predicate_scores[r][c]), r, c)
                    for r, (s, o, _) in enumerate(rows) for c in range(P)), key=lambda x: -x[0])
    ng_rows = [(rows[r][0], rows[r][1], c) for _, r, c in cells[:100]]
    gt_pairs = {(gs, go) for gs, go, _ in rels}
    lists = {'R': [matches(s, o, p, both_ok) for s, o, p in rows],
             'ngR': [matches(s, o, p, both_ok) for s, o, p in ng_rows]}
    if mode == 'sgdet':
        lists['PhrDet'] = [matches(s, o, p, phrase_ok) for s, o, p in rows]
    else:
        lists['A'] = [matches(s, o, p, both_ok) for s, o, p in rows if (s, o) in gt_pairs]
    hit = {name: [set().union(*found[:k]) for k in ks] for name, found in lists.items()}
    zero_shot = {t for t, (gs, go, gp) in enumerate(rels) if (gl[gs], gl[go], gp) not in seen}
    return rels, hit, zero_shot


def slow_openpsg_summary(images, mode, ks, seen):
    out, results = {}, [r for r in images if r is not None]
    names = ['R', 'ngR'] + (['PhrDet'] if mode == 'sgdet' else ['A'])
    for name in names:
        for i, k in enumerate(ks):
            if name == 'A':
                out[f'openpsg/A@{k}'] = 100 * np.mean([len(h[name][i]) for _, h, _ in results]) / \
                    np.mean([len(rels) for rels, _, _ in results])
                continue
            out[f'openpsg/{name if name != "PhrDet" else "PhrDet_R"}@{k}'] = 100 * np.mean(
                [len(h[name][i]) / len(rels) for rels, h, _ in results])
            per_predicate = [[] for _ in range(P)]
            for rels, h, _ in results:
                for c in {p for _, _, p in rels}:
                    count = sum(p == c for _, _, p in rels)
                    per_predicate[c].append(sum(rels[t][2] == c for t in h[name][i]) / count)
            mean_name = {'R': 'mR', 'ngR': 'ng-mR', 'PhrDet': 'PhrDet_mR'}[name]
            out[f'openpsg/{mean_name}@{k}'] = 100 * sum(np.mean(v) if v else 0.0
                                                        for v in per_predicate) / P
    for i, k in enumerate(ks):
        zs = [len(h['R'][i] & z) / len(z) for _, h, z in results if z]
        out[f'openpsg/zR@{k}'] = 100 * np.mean(zs) if zs else float('nan')
    out['openpsg/num_images'] = len(results)
    out['openpsg/num_skipped'] = len(images) - len(results)
    return out


@pytest.mark.parametrize('mode, match', [('sgdet', 'mask'), ('sgdet', 'box'), ('predcls', 'mask'),
                                         ('sgcls', 'mask'), ('sgcls', 'box')])
def test_matches_slow_reference_on_random_images(mode, match):
    rng = np.random.default_rng(11)
    ks = (1, 3, 8)  # K_max below the row count of many images
    seen = {(a, b, p) for a in range(3) for b in range(3) for p in (0, 1) if (a + b + p) % 2}
    scenes = [random_scene(rng, f'im{i}', mode) for i in range(40)]
    cfg = SGGConfig(mode=mode, match=match, ks=ks, protocols=('openpsg',), zero_shot_triplets=seen)
    got = summarize([evaluate_image(g, p, cfg, r) for g, p, r in scenes], cfg)
    want = slow_openpsg_summary([slow_openpsg(g, p, mode, match, ks, seen) for g, p, _ in scenes],
                                mode, ks, seen)
    assert got.keys() == want.keys()
    for key in want:
        assert got[key] == pytest.approx(want[key], abs=1e-9, nan_ok=True), key
    assert want['openpsg/R@8'] > 5 and want['openpsg/num_images'] >= 15  # not vacuous
