"""One-stage scene-graph inference on hand-made outputs: top-k, de-dup, thresholds, panoptic merge,
both output modes and OpenPSG's label bugs, for PSGTR and PSGFormer."""
import numpy as np
import pytest
import torch

from openpsg.models.one_stage.psgformer import FormerOutputs, PSGFormer
from openpsg.models.one_stage.psgtr import PSGTr
from openpsg.models.one_stage.triplet_matcher import TripletOutputs
from openpsg.models.one_stage.triplet_postprocess import (dedup_triplets, merge_candidates,
                                                          top_triplets, triplet_prediction)
from openpsg.structures import VOID, Batch, ImageMeta, Sample

PERSON, GRASS, WALL, RUG = 0, 125, 131, 132  # wall-other-merged, rug-merged: OpenPSG's bug labels
NUM_PRED = 56
TINY = dict(backbone=dict(type='ResNet', depth=18, frozen_stages=4),
            transformer=dict(d_model=64, nhead=8, num_encoder_layers=1, num_decoder_layers=1,
                             dim_feedforward=64, dropout=0.0))
# img_shape (32, 32) resized from an 8x8 original: the stride-4 logits (8x8) are sampled exactly
# at their cell centres, so the hand-made masks below are the output masks, pixel for pixel
META = ImageMeta('hand', ori_shape=(8, 8), img_shape=(32, 32), pad_shape=(32, 32))


def region(rows: slice, cols: slice = slice(None), minus: tuple[np.ndarray, ...] = ()) -> np.ndarray:
    mask = np.zeros((8, 8), bool)
    mask[rows, cols] = True
    for other in minus:
        mask &= ~other
    return mask


PERSON_M = region(slice(2, 7), slice(2, 4))
WALL_M = region(slice(0, 4), minus=(PERSON_M,))
GRASS_M = region(slice(4, 8), minus=(PERSON_M,))


def logits(mask: np.ndarray, outside: float = -8.0, **elsewhere: float) -> torch.Tensor:
    """+8 on ``mask``, ``outside`` elsewhere; ``elsewhere={'wall': -2}`` sets a region's value."""
    out = np.where(mask, 8.0, outside)
    for name, value in elsewhere.items():
        out[{'wall': WALL_M, 'grass': GRASS_M, 'person': PERSON_M}[name] & ~mask] = value
    return torch.tensor(out, dtype=torch.float32)


def dist(size: int, probs: dict[int, float], rest: float = 0.0) -> torch.Tensor:
    """Log-probabilities of a distribution with ``probs`` and ``rest`` spread over the others."""
    p = torch.full((size,), 1e-7)
    if rest:
        others = [i for i in range(size) if i not in probs]
        p[others] = rest / len(others)
    for index, value in probs.items():
        p[index] = value
    return (p / p.sum()).log()


def rel(probs: dict[int, float], no_relation: float) -> torch.Tensor:
    return dist(NUM_PRED + 1, {**probs, NUM_PRED: no_relation})


def cls(label: int, p: float) -> torch.Tensor:
    return dist(134, {label: p}, rest=1 - p)


def one_image_batch() -> Batch:
    sample = Sample(img=torch.zeros(3, 32, 32), meta=META, labels=torch.zeros(0, dtype=torch.int64),
                    boxes=torch.zeros(0, 4), masks=torch.zeros(0, 32, 32, dtype=torch.bool),
                    rels=torch.zeros(0, 3, dtype=torch.int64))
    return Batch(torch.zeros(1, 3, 32, 32), torch.zeros(1, 32, 32, dtype=torch.bool), [sample])


# ----------------------------------------------------------------------------------- pieces
def test_top_triplets_rank_cells_and_skip_no_relation():
    logits_ = torch.stack([rel({3: 0.5, 7: 0.2}, 0.3), rel({1: 0.6}, 0.4), rel({}, 0.99)])
    scores, query, predicate, probs = top_triplets(logits_, 3)
    assert query.tolist() == [1, 0, 0] and predicate.tolist() == [1, 3, 7]
    np.testing.assert_allclose(scores.numpy(), [0.6, 0.5, 0.2], atol=1e-5)
    np.testing.assert_allclose(probs.sum(1).numpy(), 1, atol=1e-6)
    assert len(top_triplets(logits_, 1000)[0]) == 3 * NUM_PRED  # never the no-relation column


def test_dedup_is_greedy_within_identical_labels_and_predicate():
    a, b, c = region(slice(0, 4)), region(slice(0, 3)), region(slice(4, 8))
    #            row: 0  1  2  3  4
    sub = np.stack([a, a, b, a, a])
    obj = np.stack([c, c, c, c, a])
    s_lab, o_lab = np.array([0, 0, 0, 0, 0]), np.array([5, 5, 5, 5, 5])
    pred = np.array([1, 1, 1, 2, 1])
    keep = dedup_triplets(s_lab, o_lab, pred, sub, obj, 0.5)
    # row 1 duplicates row 0; row 2 (subject IoU 0.75) too; row 3 has another predicate; row 4's
    # object does not overlap
    assert keep.tolist() == [True, False, False, True, True]
    assert dedup_triplets(s_lab, o_lab, pred, sub, obj, 0.8).tolist() == [True, False, True, True, True]
    # a removed row removes nothing: 2 ~ 1 (IoU 0.75) but 2 !~ 0 (IoU 0.5 < 0.6)
    chain = np.stack([region(slice(0, 2)), region(slice(0, 3)), region(slice(0, 4))])
    keep = dedup_triplets(np.zeros(3, int), np.zeros(3, int), np.zeros(3, int), chain,
                          np.stack([c, c, c]), 0.6)
    assert keep.tolist() == [True, False, True]


def test_merge_candidates_stuff_things_and_vanished():
    left, right = region(slice(None), slice(0, 4)), region(slice(None), slice(4, 8))
    top_left = region(slice(0, 4), slice(0, 4))
    masks = [left, top_left, right, right, left]
    labels = np.array([PERSON, PERSON, GRASS, GRASS, 3])
    scores = np.array([0.5, 0.9, 0.6, 0.7, 0.8], np.float32)
    lg = torch.stack([logits(m) for m in masks])
    lg[4] -= 1  # the car (label 3) never wins a pixel
    segment_of, id_map, seg_labels, seg_scores = merge_candidates(
        lg, np.stack(masks), labels, scores, thing_iou=0.4)
    # person 1 (IoU 0.5 with person 0) joins it; the two grass candidates are one stuff segment
    assert segment_of.tolist() == [0, 0, 1, 1, VOID]
    assert seg_labels.tolist() == [PERSON, GRASS]
    np.testing.assert_allclose(seg_scores, [0.9, 0.7])
    np.testing.assert_array_equal(id_map, np.where(left, 0, 1))
    segment_of, id_map, seg_labels, _ = merge_candidates(lg, np.stack(masks), labels, scores,
                                                         thing_iou=0.5)  # IoU 0.5 is not > 0.5
    assert segment_of.tolist() == [0, VOID, 1, 1, VOID] and seg_labels.tolist() == [PERSON, GRASS]


def test_merge_candidates_leaves_unclaimed_pixels_void_with_a_claim_threshold():
    person, grass = logits(PERSON_M), logits(GRASS_M, wall=-2)
    lg, labels = torch.stack([person, grass]), np.array([PERSON, GRASS])
    scores = np.array([0.9, 0.8], np.float32)
    binary = np.stack([PERSON_M, GRASS_M])
    _, filled, _, _ = merge_candidates(lg, binary, labels, scores)
    np.testing.assert_array_equal(filled, np.where(PERSON_M, 0, 1))  # OpenPSG: wall -> grass
    segment_of, id_map, seg_labels, _ = merge_candidates(lg, binary, labels, scores,
                                                         claim_threshold=0.5)
    np.testing.assert_array_equal(id_map, np.select([PERSON_M, GRASS_M], [0, 1], VOID))
    assert segment_of.tolist() == [0, 1] and seg_labels.tolist() == [PERSON, GRASS]
    segment_of, id_map, seg_labels, _ = merge_candidates(lg - 9, binary, labels, scores,
                                                         claim_threshold=0.5)
    assert segment_of.tolist() == [VOID, VOID] and len(seg_labels) == 0 and (id_map == VOID).all()


def test_triplet_prediction_modes_self_pairs_and_empty():
    lg = torch.stack([logits(PERSON_M), logits(GRASS_M, wall=-2), logits(GRASS_M, wall=-2),
                      logits(WALL_M)])
    labels = np.array([PERSON, GRASS, GRASS, PERSON])
    scores = np.array([0.9, 0.8, 0.7, 0.6], np.float32)
    sub, obj = np.array([0, 1, 0, 3]), np.array([1, 2, 2, 0])
    probs = np.stack([rel({14: 0.6}, 0.4).exp().numpy(), rel({0: 0.5}, 0.5).exp().numpy(),
                      rel({11: 0.4}, 0.6).exp().numpy(), rel({1: 0.3}, 0.7).exp().numpy()])
    ranks = np.array([0.6, 0.5, 0.4, 0.3], np.float32)
    single = triplet_prediction(META, lg, labels, scores, sub, obj, probs, ranks)
    # grass 1 and 2 merge: row 1 becomes a self-pair, row 2 repeats row 0's pair; the "person" on
    # the wall (candidate 3) keeps the wall pixels
    assert single.labels.tolist() == [PERSON, GRASS, PERSON]
    assert single.pairs.tolist() == [[0, 1], [2, 0]]
    assert single.predicate_scores.argmax(1).tolist() == [14, 1]
    np.testing.assert_allclose(single.triplet_scores, [0.6, 0.3])
    np.testing.assert_allclose(single.no_relation_scores, [0.4, 0.7], atol=1e-5)
    np.testing.assert_allclose(single.scores, [0.9, 0.8, 0.6])
    np.testing.assert_array_equal(single.pan_id_map, np.select([PERSON_M, GRASS_M], [0, 1], 2))
    for i in range(3):
        np.testing.assert_array_equal(single.masks[i], single.pan_id_map == i)
    legacy = triplet_prediction(META, lg, labels, scores, sub, obj, probs, ranks, output='legacy')
    assert legacy.labels.tolist() == [PERSON, GRASS, PERSON, PERSON, GRASS, GRASS, GRASS, PERSON]
    assert legacy.pairs.tolist() == [[0, 4], [1, 5], [2, 6], [3, 7]]
    np.testing.assert_array_equal(legacy.masks[1], GRASS_M)  # its own binary mask, not merged
    np.testing.assert_array_equal(legacy.pan_id_map, single.pan_id_map)
    assert legacy.pan_labels.tolist() == single.labels.tolist()
    empty = triplet_prediction(META, lg[:0], labels[:0], scores[:0], sub[:0], obj[:0], probs[:0],
                               ranks[:0])
    assert empty.num_segments == 0 and len(empty.pairs) == 0 and (empty.pan_id_map == VOID).all()
    with pytest.raises(ValueError, match="output must be one of"):
        triplet_prediction(META, lg, labels, scores, sub, obj, probs, ranks, output='multi')


# ----------------------------------------------------------------------------------- PSGTR
def psgtr_hand_made(**kwargs) -> PSGTr:
    """Six triplet queries over an 8x8 scene (wall on top, grass below, a person across both):

    q0 person -> grass: standing on 0.5, walking on 0.4       q1 = q0 masks: standing on 0.45
    q2 person (score 0.4) -> grass: holding 0.6               q3 person -> wall-other-merged: on 0.7
    q4, q5: no relation.
    """
    model = PSGTr(**TINY, num_queries=6, **kwargs).eval()
    sub = torch.stack([cls(PERSON, 0.9), cls(PERSON, 0.9), cls(PERSON, 0.4), cls(PERSON, 0.9),
                       cls(5, 0.9), cls(5, 0.9)])
    obj = torch.stack([cls(GRASS, 0.9), cls(GRASS, 0.9), cls(GRASS, 0.9), cls(WALL, 0.9),
                       cls(6, 0.9), cls(6, 0.9)])
    rels = torch.stack([rel({14: 0.5, 11: 0.4}, 0.1), rel({14: 0.45}, 0.55), rel({21: 0.6}, 0.4),
                        rel({3: 0.7}, 0.3), rel({}, 0.99), rel({}, 0.99)])
    boxes = torch.full((6, 4), 0.5)
    heads = TripletOutputs(*(t[None, None] for t in (sub, obj, rels, boxes, boxes)))
    person, grass = logits(PERSON_M), logits(GRASS_M, wall=-4)
    masks = {'sub': torch.stack([person] * 6),
             'obj': torch.stack([grass, grass, grass, logits(WALL_M), grass, grass])}
    model.forward_heads = lambda batch: (None, heads)
    model.mask_logits = lambda branch, out, batch_idx, query_idx: masks[branch][query_idx]
    return model


def test_psgtr_single_mpo_thresholds_dedup_and_merge():
    pred = psgtr_hand_made()(one_image_batch(), mode='predict')[0]
    # kept rows: q3 on (0.7), q0 standing on (0.5), q0 walking on (0.4); q2 fails the subject
    # score, q1 duplicates q0; q0's two rows share one (person, grass) pair -> the first stays
    assert pred.labels.tolist() == [PERSON, WALL, GRASS]
    assert pred.pairs.tolist() == [[0, 1], [0, 2]]
    assert pred.predicate_scores.argmax(1).tolist() == [3, 14]
    np.testing.assert_allclose(pred.triplet_scores, [0.7, 0.5], atol=1e-5)
    np.testing.assert_allclose(pred.no_relation_scores, [0.3, 0.1], atol=1e-5)
    np.testing.assert_array_equal(pred.pan_id_map, np.select([PERSON_M, WALL_M], [0, 1], 2))
    np.testing.assert_array_equal(pred.masks, pred.pan_id_map[None] == np.arange(3)[:, None, None])
    assert pred.pan_labels is None


def test_psgtr_legacy_keeps_each_rows_masks_and_query_distribution():
    pred = psgtr_hand_made(output='legacy')(one_image_batch(), mode='predict')[0]
    assert pred.labels.tolist() == [PERSON, PERSON, PERSON, WALL, GRASS, GRASS]
    assert pred.pairs.tolist() == [[0, 3], [1, 4], [2, 5]]
    np.testing.assert_allclose(pred.triplet_scores, [0.7, 0.5, 0.4], atol=1e-5)
    # the 'walking on' row carries q0's whole distribution, whose argmax is 'standing on'
    assert pred.predicate_scores.argmax(1).tolist() == [3, 14, 14]
    np.testing.assert_array_equal(pred.masks[[0, 3, 4]], np.stack([PERSON_M, WALL_M, GRASS_M]))
    np.testing.assert_array_equal(pred.pan_id_map, np.select([PERSON_M, WALL_M], [0, 1], 2))
    assert pred.pan_labels.tolist() == [PERSON, WALL, GRASS]


def test_psgtr_wall_other_merged_bug_drops_exactly_its_rows():
    batch = one_image_batch()
    off = psgtr_hand_made(output='legacy')(batch, mode='predict')[0]
    on = psgtr_hand_made(output='legacy', drop_wall_other_bug=True)(batch, mode='predict')[0]
    rows_off = [tuple(off.labels[p].tolist()) for p in off.pairs]
    rows_on = [tuple(on.labels[p].tolist()) for p in on.pairs]
    assert rows_off == [(PERSON, WALL), (PERSON, GRASS), (PERSON, GRASS)]
    assert rows_on == [r for r in rows_off if WALL not in r]
    np.testing.assert_allclose(on.triplet_scores, off.triplet_scores[1:])
    single = psgtr_hand_made(drop_wall_other_bug=True)(batch, mode='predict')[0]
    assert single.labels.tolist() == [PERSON, GRASS] and single.pairs.tolist() == [[0, 1]]
    # no wall segment; no candidate claims the wall's pixels (the grass logit there is -4)
    np.testing.assert_array_equal(single.pan_id_map, np.select([PERSON_M, GRASS_M], [0, 1], VOID))


def test_psgtr_thresholds_and_dedup_are_configurable():
    batch = one_image_batch()
    low = psgtr_hand_made(output='legacy', test_cfg=dict(subject_score_thr=0.3))
    assert low(batch, mode='predict')[0].predicate_scores.argmax(1).tolist() == [3, 21, 14, 14]
    no_dedup = psgtr_hand_made(output='legacy', test_cfg=dict(dedup_iou=1.0))
    np.testing.assert_allclose(no_dedup(batch, mode='predict')[0].triplet_scores,
                               [0.7, 0.5, 0.45, 0.4], atol=1e-5)
    strict = psgtr_hand_made(test_cfg=dict(predicate_score_thr=0.9))(batch, mode='predict')[0]
    assert strict.num_segments == 0 and (strict.pan_id_map == VOID).all()
    with pytest.raises(ValueError, match="unknown test_cfg keys \\['max_per_image'\\]"):
        psgtr_hand_made(test_cfg=dict(max_per_image=10))


# ----------------------------------------------------------------------------------- PSGFormer
RUG_M = region(slice(5, 8), slice(5, 8))


def psgformer_hand_made(**kwargs) -> PSGFormer:
    """Object queries o0 person, o1 grass (score 0.3: no threshold applies), o2 rug-merged, o3 none;
    relation queries r0: o0 -> o1 standing on 0.8 (walking on 0.1), r1: o0 -> o2 on 0.6 (in front
    of 0.3), r2: o0 -> o1 walking on 0.55 (standing on 0.25). The wall region is no object's: its
    pixels go to grass, whose logits there are the largest, in ``legacy``'s panoptic map (OpenPSG)
    and are void in ``single_mpo`` (no probability there is above ``claim_threshold``)."""
    model = PSGFormer(**TINY, num_queries=4, num_rel_queries=3,
                      test_cfg=dict(max_per_img=6), **kwargs).eval()
    labels = torch.stack([cls(PERSON, 0.9), cls(GRASS, 0.3), cls(RUG, 0.7), cls(133, 0.99)])
    rels = torch.stack([rel({14: 0.8, 11: 0.1}, 0.1), rel({3: 0.6, 1: 0.3}, 0.1),
                        rel({11: 0.55, 14: 0.25}, 0.2)])
    pointed = torch.tensor([[0, 1], [0, 2], [0, 1]])
    sub_scores = torch.nn.functional.one_hot(pointed[:, 0], 4).float() * 10
    obj_scores = torch.nn.functional.one_hot(pointed[:, 1], 4).float() * 10
    heads = FormerOutputs(labels[None, None], torch.full((1, 1, 4, 4), 0.5), rels[None, None],
                          sub_scores[None], obj_scores[None])
    masks = torch.stack([logits(PERSON_M), logits(GRASS_M & ~RUG_M, wall=-2, grass=-4),
                         logits(RUG_M), torch.full((8, 8), -8.0)])
    model.forward_heads = lambda batch: (None, heads)
    model.mask_logits = lambda out, batch_idx, query_idx: masks[query_idx]
    return model


def test_psgformer_pointers_no_thresholds_and_both_modes():
    batch = one_image_batch()
    single = psgformer_hand_made()(batch, mode='predict')[0]
    assert single.labels.tolist() == [PERSON, GRASS, RUG]
    np.testing.assert_allclose(single.scores, [0.9, 0.3, 0.7], atol=1e-5)
    assert single.pairs.tolist() == [[0, 1], [0, 2]]
    assert single.predicate_scores.argmax(1).tolist() == [14, 3]
    np.testing.assert_allclose(single.triplet_scores, [0.8, 0.6], atol=1e-5)
    np.testing.assert_array_equal(single.pan_id_map,
                                  np.select([PERSON_M, RUG_M, GRASS_M], [0, 2, 1], VOID))
    legacy = psgformer_hand_made(output='legacy')(batch, mode='predict')[0]
    np.testing.assert_array_equal(legacy.pan_id_map, np.select([PERSON_M, RUG_M], [0, 2], 1))
    np.testing.assert_allclose(legacy.triplet_scores, [0.8, 0.6, 0.55, 0.3, 0.25, 0.1], atol=1e-5)
    assert legacy.pairs.tolist() == [[r, 6 + r] for r in range(6)]
    assert legacy.labels.tolist() == [PERSON] * 6 + [GRASS, RUG, GRASS, RUG, GRASS, GRASS]
    # rows carry their relation query's distribution: argmax per query, whatever the row's rank
    assert legacy.predicate_scores.argmax(1).tolist() == [14, 3, 11, 3, 11, 14]
    np.testing.assert_array_equal(legacy.masks[7], RUG_M)


def test_psgformer_rug_merged_bug_drops_the_query_and_its_rows():
    batch = one_image_batch()
    off = psgformer_hand_made(output='legacy')(batch, mode='predict')[0]
    on = psgformer_hand_made(output='legacy', drop_rug_bug=True)(batch, mode='predict')[0]
    rows_off = [tuple(off.labels[p].tolist()) for p in off.pairs]
    rows_on = [tuple(on.labels[p].tolist()) for p in on.pairs]
    assert rows_on == [r for r in rows_off if RUG not in r]
    np.testing.assert_allclose(on.triplet_scores, [0.8, 0.55, 0.25, 0.1], atol=1e-5)
    single = psgformer_hand_made(drop_rug_bug=True)(batch, mode='predict')[0]
    assert single.labels.tolist() == [PERSON, GRASS] and single.pairs.tolist() == [[0, 1]]
    np.testing.assert_array_equal(single.pan_id_map,
                                  np.select([PERSON_M, GRASS_M & ~RUG_M], [0, 1], VOID))
