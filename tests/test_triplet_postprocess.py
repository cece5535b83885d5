"""One-stage scene-graph inference on hand-made outputs: top-k, de-dup, thresholds, panoptic merge,
the three output modes row for row, OpenPSG's nearest mask resize and its label bugs, for PSGTR and
PSGFormer. Every expected value is worked out by hand in the comments."""
import numpy as np
import pytest
import torch

from openpsg.models.one_stage.psgformer import FormerOutputs, PSGFormer
from openpsg.models.one_stage.psgtr import PSGTr
from openpsg.models.one_stage.triplet_matcher import TripletOutputs
from openpsg.models.one_stage.panoptic_merge import merge_candidates
from openpsg.models.one_stage.triplet_postprocess import (Rows, dedup_triplets, legacy_prediction,
                                                          top_triplets, triplet_prediction)
from openpsg.structures import VOID, Batch, ImageMeta, Sample

PERSON, GRASS, WALL, RUG = 0, 125, 131, 132  # wall-other-merged, rug-merged: OpenPSG's bug labels
NUM_PRED = 56
TINY = dict(backbone=dict(type='ResNet', depth=18, frozen_stages=4),
            transformer=dict(d_model=64, nhead=8, num_encoder_layers=1, num_decoder_layers=1,
                             dim_feedforward=64, dropout=0.0))
# img_shape (32, 32) resized x4 from an 8x8 original: the stride-4 logits (8x8) are sampled exactly
# at their cell centres (single_mpo) and nearest-resized 8 -> 8 (OpenPSG), so the hand-made masks
# below are the output masks, pixel for pixel
META = ImageMeta('hand', ori_shape=(8, 8), img_shape=(32, 32), pad_shape=(32, 32),
                 scale_factor=(4.0, 4.0))
# the same input from a 12x12 original: OpenPSG's nearest resize 8 -> 12 takes cell
# floor(i * 8 / 12) for output pixel i
META_12 = ImageMeta('hand12', ori_shape=(12, 12), img_shape=(32, 32), pad_shape=(32, 32),
                    scale_factor=(32 / 12, 32 / 12))
NEAREST_12 = np.array([0, 0, 1, 2, 2, 3, 4, 4, 5, 6, 6, 7])


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


def one_image_batch(meta: ImageMeta = META) -> Batch:
    sample = Sample(img=torch.zeros(3, 32, 32), meta=meta, labels=torch.zeros(0, dtype=torch.int64),
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
        lg, np.stack(masks), labels, scores, thing_iou_thr=0.4)
    # person 1 (IoU 0.5 with person 0) joins it; the two grass candidates are one stuff segment
    assert segment_of.tolist() == [0, 0, 1, 1, VOID]
    assert seg_labels.tolist() == [PERSON, GRASS]
    np.testing.assert_allclose(seg_scores, [0.9, 0.7])
    np.testing.assert_array_equal(id_map, np.where(left, 0, 1))
    segment_of, id_map, seg_labels, _ = merge_candidates(lg, np.stack(masks), labels, scores,
                                                         thing_iou_thr=0.5)  # IoU 0.5 is not > 0.5
    assert segment_of.tolist() == [0, VOID, 1, 1, VOID] and seg_labels.tolist() == [PERSON, GRASS]


def test_merge_candidates_leaves_unclaimed_pixels_void_with_a_claim_threshold():
    person, grass = logits(PERSON_M), logits(GRASS_M, wall=-2)
    lg, labels = torch.stack([person, grass]), np.array([PERSON, GRASS])
    scores = np.array([0.9, 0.8], np.float32)
    binary = np.stack([PERSON_M, GRASS_M])
    _, filled, _, _ = merge_candidates(lg, binary, labels, scores)
    np.testing.assert_array_equal(filled, np.where(PERSON_M, 0, 1))  # OpenPSG: wall -> grass
    segment_of, id_map, seg_labels, _ = merge_candidates(lg, binary, labels, scores,
                                                         claim_thr=0.5)
    np.testing.assert_array_equal(id_map, np.select([PERSON_M, GRASS_M], [0, 1], VOID))
    assert segment_of.tolist() == [0, 1] and seg_labels.tolist() == [PERSON, GRASS]
    segment_of, id_map, seg_labels, _ = merge_candidates(lg - 9, binary, labels, scores,
                                                         claim_thr=0.5)
    assert segment_of.tolist() == [VOID, VOID] and len(seg_labels) == 0 and (id_map == VOID).all()


def test_triplet_prediction_outputs_on_the_same_candidates():
    # candidates: 0 person, 1 and 2 grass (one stuff segment), 3 a "person" on the wall
    lg = torch.stack([logits(PERSON_M), logits(GRASS_M, wall=-2), logits(GRASS_M, wall=-2),
                      logits(WALL_M)])
    labels = np.array([PERSON, GRASS, GRASS, PERSON])
    scores = np.array([0.9, 0.8, 0.7, 0.6], np.float32)
    probs = np.stack([rel({14: 0.6}, 0.4).exp().numpy(), rel({0: 0.5}, 0.5).exp().numpy(),
                      rel({11: 0.4}, 0.6).exp().numpy(), rel({1: 0.3}, 0.7).exp().numpy()])
    rows = Rows(np.array([0, 1, 0, 3]), np.array([1, 2, 2, 0]), probs,
                np.array([0.6, 0.5, 0.4, 0.3], np.float32))
    # segments: person (candidate 0), grass (1 and 2), the wall "person" (3); row 1 becomes the
    # self pair (1, 1), row 2 repeats row 0's pair (0, 1)
    pan = np.select([PERSON_M, GRASS_M], [0, 1], 2)
    single = triplet_prediction(META, lg, labels, scores, rows)
    assert single.labels.tolist() == [PERSON, GRASS, PERSON]
    assert single.pairs.tolist() == [[0, 1], [2, 0]]
    assert single.predicate_scores.argmax(1).tolist() == [14, 1]
    np.testing.assert_allclose(single.triplet_scores, [0.6, 0.3])
    np.testing.assert_allclose(single.no_relation_scores, [0.4, 0.7], atol=1e-5)
    np.testing.assert_allclose(single.scores, [0.9, 0.8, 0.6])
    np.testing.assert_array_equal(single.pan_id_map, pan)
    for i in range(3):
        np.testing.assert_array_equal(single.masks[i], single.pan_id_map == i)
    openpsg = triplet_prediction(META, lg, labels, scores, rows, 'openpsg_panoptic')
    assert openpsg.labels.tolist() == [PERSON, GRASS, PERSON]
    assert openpsg.pairs.tolist() == [[0, 1], [1, 1], [0, 1], [2, 0]]  # every row kept
    assert openpsg.predicate_scores.argmax(1).tolist() == [14, 0, 11, 1]
    np.testing.assert_allclose(openpsg.triplet_scores, [0.6, 0.5, 0.4, 0.3])
    np.testing.assert_array_equal(openpsg.pan_id_map, pan)
    legacy = legacy_prediction(META, lg, labels, scores, rows, openpsg)
    assert legacy.labels.tolist() == [PERSON, GRASS, PERSON, PERSON, GRASS, GRASS, GRASS, PERSON]
    assert legacy.pairs.tolist() == [[0, 4], [1, 5], [2, 6], [3, 7]]
    np.testing.assert_array_equal(legacy.masks[1], GRASS_M)  # its own binary mask, not merged
    np.testing.assert_array_equal(legacy.masks[3], WALL_M)
    np.testing.assert_allclose(legacy.triplet_scores, [0.6, 0.5, 0.4, 0.3])
    np.testing.assert_array_equal(legacy.pan_id_map, pan)
    assert legacy.pan_labels.tolist() == [PERSON, GRASS, PERSON]


def test_no_candidate_is_empty_or_openpsg_placeholder():
    nothing = (torch.zeros(0, 8, 8), np.zeros(0, np.int64), np.zeros(0, np.float32),
               Rows(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 57)), np.zeros(0)))
    empty = triplet_prediction(META, *nothing)
    assert empty.num_segments == 0 and len(empty.pairs) == 0 and (empty.pan_id_map == VOID).all()
    # OpenPSG: a whole-image segment of label 0 (its 1-based label 1), no relation, and a panoptic
    # map of ones (segment 0, panoptic class 1)
    placeholder = triplet_prediction(META, *nothing, output='openpsg_panoptic')
    assert placeholder.labels.tolist() == [0] and placeholder.masks.all()
    assert placeholder.pairs.shape == (0, 2) and placeholder.predicate_scores.shape == (0, 56)
    assert (placeholder.pan_id_map == 0).all() and placeholder.pan_labels.tolist() == [1]
    assert placeholder.boxes.tolist() == [[0, 0, 8, 8]]


# ----------------------------------------------------------------------------------- PSGTR
def psgtr_hand_made(**kwargs) -> PSGTr:
    """Six triplet queries over an 8x8 scene (wall on top, grass below, a person across both),
    ranked by their predicate probability (``max_per_img=6``):

    r0: q3 person -> wall-other-merged: on 0.7         r1: q2 person (score 0.4) -> grass: holding 0.6
    r2: q0 person -> grass: standing on 0.5            r3: q1 = q0's masks: standing on 0.45
    r4: q0 person -> grass: walking on 0.4             r5: q4 grass -> grass: beside 0.35
    (q5: no relation). Every query's class score is 0.9 except q2's subject.
    """
    model = PSGTr(**TINY, num_queries=6, **{'test_cfg': dict(max_per_img=6), **kwargs}).eval()
    sub = torch.stack([cls(PERSON, 0.9), cls(PERSON, 0.9), cls(PERSON, 0.4), cls(PERSON, 0.9),
                       cls(GRASS, 0.9), cls(5, 0.9)])
    obj = torch.stack([cls(GRASS, 0.9), cls(GRASS, 0.9), cls(GRASS, 0.9), cls(WALL, 0.9),
                       cls(GRASS, 0.9), cls(6, 0.9)])
    rels = torch.stack([rel({14: 0.5, 11: 0.4}, 0.1), rel({14: 0.45}, 0.55), rel({21: 0.6}, 0.4),
                        rel({3: 0.7}, 0.3), rel({2: 0.35}, 0.65), rel({}, 0.99)])
    boxes = torch.full((6, 4), 0.5)
    heads = TripletOutputs(*(t[None, None] for t in (sub, obj, rels, boxes, boxes)))
    person, grass, wall = logits(PERSON_M), logits(GRASS_M, wall=-4), logits(WALL_M)
    masks = {'sub': torch.stack([person, person, person, person, grass, grass]),
             'obj': torch.stack([grass, grass, grass, wall, grass, grass])}
    model.forward_heads = lambda batch: (None, heads)
    model.mask_logits = lambda branch, out, batch_idx, query_idx: masks[branch][query_idx]
    return model


def rows_of(pred) -> list[tuple[int, int, int]]:
    """(subject label, object label, argmax predicate) of every row, in order."""
    return [(int(pred.labels[s]), int(pred.labels[o]), int(p.argmax()))
            for (s, o), p in zip(pred.pairs, pred.predicate_scores)]


PAN = np.select([PERSON_M, GRASS_M], [0, 1], 2)  # person, grass, wall (segment order below)


def test_psgtr_three_outputs_row_for_row():
    batch = one_image_batch()
    # de-dup: r3 repeats r2 (same labels, predicate, masks). Thresholds 0.5/0.5/0.3: r1 fails the
    # subject score. Panoptic candidates, subjects then objects of r0 r2 r4 r5: c0 c1 c2 person,
    # c3 grass, c4 wall, c5 c6 c7 grass -> segments 0 person (c0-c2), 1 grass (c3 c5-c7),
    # 2 wall (c4); rows r0 (0, 2), r2 (0, 1), r4 (0, 1), r5 (1, 1)
    openpsg = psgtr_hand_made(output='openpsg_panoptic')(batch, mode='predict')[0]
    assert openpsg.labels.tolist() == [PERSON, GRASS, WALL]
    assert openpsg.pairs.tolist() == [[0, 2], [0, 1], [0, 1], [1, 1]]
    assert openpsg.predicate_scores.argmax(1).tolist() == [3, 14, 14, 2]  # r4: q0's argmax
    np.testing.assert_allclose(openpsg.triplet_scores, [0.7, 0.5, 0.4, 0.35], atol=1e-5)
    np.testing.assert_array_equal(openpsg.pan_id_map, PAN)
    np.testing.assert_array_equal(openpsg.masks, PAN[None] == np.arange(3)[:, None, None])
    # single_mpo: the same segments; the repeated pair and the self pair go
    single = psgtr_hand_made()(batch, mode='predict')[0]
    assert single.labels.tolist() == [PERSON, GRASS, WALL]
    assert single.pairs.tolist() == [[0, 2], [0, 1]]
    np.testing.assert_allclose(single.triplet_scores, [0.7, 0.5], atol=1e-5)
    np.testing.assert_allclose(single.no_relation_scores, [0.3, 0.1], atol=1e-5)
    np.testing.assert_array_equal(single.pan_id_map, PAN)
    # legacy: every row but the duplicate r3, no threshold, each row with its own masks
    legacy = psgtr_hand_made(output='legacy')(batch, mode='predict')[0]
    assert rows_of(legacy) == [(PERSON, WALL, 3), (PERSON, GRASS, 21), (PERSON, GRASS, 14),
                               (PERSON, GRASS, 14), (GRASS, GRASS, 2)]
    assert legacy.pairs.tolist() == [[r, 5 + r] for r in range(5)]
    np.testing.assert_allclose(legacy.triplet_scores, [0.7, 0.6, 0.5, 0.4, 0.35], atol=1e-5)
    np.testing.assert_allclose(legacy.scores[:5], [0.9, 0.4, 0.9, 0.9, 0.9], atol=1e-5)
    np.testing.assert_array_equal(legacy.masks[[0, 1, 4, 5, 6]],
                                  np.stack([PERSON_M, PERSON_M, GRASS_M, WALL_M, GRASS_M]))
    np.testing.assert_array_equal(legacy.pan_id_map, PAN)  # OpenPSG's panoptic map beside
    assert legacy.pan_labels.tolist() == [PERSON, GRASS, WALL]


def test_psgtr_masks_are_nearest_resized_for_openpsgs_outputs():
    batch = one_image_batch(META_12)
    openpsg = psgtr_hand_made(output='openpsg_panoptic')(batch, mode='predict')[0]
    np.testing.assert_array_equal(openpsg.pan_id_map, PAN[NEAREST_12][:, NEAREST_12])
    assert openpsg.pairs.tolist() == [[0, 2], [0, 1], [0, 1], [1, 1]]
    legacy = psgtr_hand_made(output='legacy')(batch, mode='predict')[0]
    np.testing.assert_array_equal(legacy.masks[0], PERSON_M[NEAREST_12][:, NEAREST_12])
    np.testing.assert_array_equal(legacy.masks[5], WALL_M[NEAREST_12][:, NEAREST_12])


def test_psgtr_wall_other_merged_bug_drops_only_in_the_panoptic_output():
    batch = one_image_batch()
    # r0 goes; candidates of r2 r4 r5: person c0 c1, grass c2-c5; the wall pixels go to grass
    # (logit -4 against the person's -8)
    bug = psgtr_hand_made(output='openpsg_panoptic', drop_wall_other_bug=True)
    pred = bug(batch, mode='predict')[0]
    assert pred.labels.tolist() == [PERSON, GRASS]
    assert pred.pairs.tolist() == [[0, 1], [0, 1], [1, 1]]
    np.testing.assert_allclose(pred.triplet_scores, [0.5, 0.4, 0.35], atol=1e-5)
    np.testing.assert_array_equal(pred.pan_id_map, np.where(PERSON_M, 0, 1))
    for output in ('legacy', 'single_mpo'):
        with pytest.raises(ValueError, match="PSGTr: drop_wall_other_bug=True .* needs "
                                             f"output='openpsg_panoptic', got output='{output}'"):
            psgtr_hand_made(output=output, drop_wall_other_bug=True)


def test_psgtr_thresholds_and_dedup_are_configurable():
    batch = one_image_batch()
    low = psgtr_hand_made(output='openpsg_panoptic', test_cfg=dict(max_per_img=6,
                                                                   subject_score_thr=0.3))
    assert rows_of(low(batch, mode='predict')[0])[:2] == [(PERSON, WALL, 3), (PERSON, GRASS, 21)]
    no_dedup = psgtr_hand_made(output='legacy', test_cfg=dict(max_per_img=6, dedup_iou_thr=1.0))
    np.testing.assert_allclose(no_dedup(batch, mode='predict')[0].triplet_scores,
                               [0.7, 0.6, 0.5, 0.45, 0.4, 0.35], atol=1e-5)
    strict = dict(max_per_img=6, predicate_score_thr=0.9)  # no row passes
    single = psgtr_hand_made(test_cfg=strict)(batch, mode='predict')[0]
    assert single.num_segments == 0 and (single.pan_id_map == VOID).all()
    openpsg = psgtr_hand_made(output='openpsg_panoptic', test_cfg=strict)(batch, mode='predict')[0]
    assert openpsg.labels.tolist() == [0] and len(openpsg.pairs) == 0
    legacy = psgtr_hand_made(output='legacy', test_cfg=strict)(batch, mode='predict')[0]
    assert len(legacy.pairs) == 5 and legacy.pan_labels.tolist() == [1]  # OpenPSG's placeholder
    assert (legacy.pan_id_map == 0).all()
    with pytest.raises(ValueError, match="unknown test_cfg keys \\['max_per_image'\\]"):
        psgtr_hand_made(test_cfg=dict(max_per_image=10))
    with pytest.raises(ValueError, match="PSGTr: output must be one of"):
        psgtr_hand_made(output='triplets')


# ----------------------------------------------------------------------------------- PSGFormer
RUG_M = region(slice(5, 8), slice(5, 8))


def psgformer_hand_made(**kwargs) -> PSGFormer:
    """Object queries o0 person, o1 grass (score 0.3: no threshold applies), o2 rug-merged, o3 none;
    relation queries r0: o0 -> o1 standing on 0.8 (walking on 0.1), r1: o0 -> o2 on 0.6 (in front
    of 0.3), r2: o0 -> o1 walking on 0.55 (standing on 0.25). Ranked rows (``max_per_img=6``):
    standing on 0.8 (r0), on 0.6 (r1), walking on 0.55 (r2), in front of 0.3 (r1), standing on
    0.25 (r2), walking on 0.1 (r0). The wall region is no object's: its pixels go to grass, whose
    logits there are the largest, where every pixel is assigned (OpenPSG) and are void in
    ``single_mpo`` (no probability there is above ``claim_thr``)."""
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


def test_psgformer_three_outputs_row_for_row():
    batch = one_image_batch()
    # candidates o0 o1 o2 -> segments 0 person, 1 grass, 2 rug; no threshold, every row kept
    openpsg = psgformer_hand_made(output='openpsg_panoptic')(batch, mode='predict')[0]
    assert openpsg.labels.tolist() == [PERSON, GRASS, RUG]
    np.testing.assert_allclose(openpsg.scores, [0.9, 0.3, 0.7], atol=1e-5)
    assert openpsg.pairs.tolist() == [[0, 1], [0, 2], [0, 1], [0, 2], [0, 1], [0, 1]]
    # rows carry their relation query's distribution: argmax per query, whatever the row's rank
    assert openpsg.predicate_scores.argmax(1).tolist() == [14, 3, 11, 3, 11, 14]
    np.testing.assert_allclose(openpsg.triplet_scores, [0.8, 0.6, 0.55, 0.3, 0.25, 0.1], atol=1e-5)
    np.testing.assert_array_equal(openpsg.pan_id_map, np.select([PERSON_M, RUG_M], [0, 2], 1))
    single = psgformer_hand_made()(batch, mode='predict')[0]
    assert single.labels.tolist() == [PERSON, GRASS, RUG]
    assert single.pairs.tolist() == [[0, 1], [0, 2]]
    assert single.predicate_scores.argmax(1).tolist() == [14, 3]
    np.testing.assert_allclose(single.triplet_scores, [0.8, 0.6], atol=1e-5)
    np.testing.assert_array_equal(single.pan_id_map,
                                  np.select([PERSON_M, RUG_M, GRASS_M], [0, 2, 1], VOID))
    legacy = psgformer_hand_made(output='legacy')(batch, mode='predict')[0]
    np.testing.assert_allclose(legacy.triplet_scores, [0.8, 0.6, 0.55, 0.3, 0.25, 0.1], atol=1e-5)
    assert legacy.pairs.tolist() == [[r, 6 + r] for r in range(6)]
    assert legacy.labels.tolist() == [PERSON] * 6 + [GRASS, RUG, GRASS, RUG, GRASS, GRASS]
    assert legacy.predicate_scores.argmax(1).tolist() == [14, 3, 11, 3, 11, 14]
    np.testing.assert_array_equal(legacy.masks[7], RUG_M)
    np.testing.assert_array_equal(legacy.pan_id_map, openpsg.pan_id_map)
    legacy_12 = psgformer_hand_made(output='legacy')(one_image_batch(META_12), mode='predict')[0]
    np.testing.assert_array_equal(legacy_12.masks[7], RUG_M[NEAREST_12][:, NEAREST_12])


def test_psgformer_rug_merged_bug_drops_only_in_the_panoptic_output():
    batch = one_image_batch()
    # o2 goes with the two rows pointing at it; its pixels go to grass (-4 against -8)
    pred = psgformer_hand_made(output='openpsg_panoptic', drop_rug_bug=True)(batch, mode='predict')[0]
    assert pred.labels.tolist() == [PERSON, GRASS]
    assert pred.pairs.tolist() == [[0, 1]] * 4
    np.testing.assert_allclose(pred.triplet_scores, [0.8, 0.55, 0.25, 0.1], atol=1e-5)
    np.testing.assert_array_equal(pred.pan_id_map, np.where(PERSON_M, 0, 1))
    for output in ('legacy', 'single_mpo'):
        with pytest.raises(ValueError, match="PSGFormer: drop_rug_bug=True .* needs "
                                             f"output='openpsg_panoptic', got output='{output}'"):
            psgformer_hand_made(output=output, drop_rug_bug=True)
