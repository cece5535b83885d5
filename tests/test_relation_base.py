"""Shared parts of the two-stage relation heads: geometry, RoI features, sampling, targets,
frequency prior, GloVe embeddings and post-processing. Expected numbers are worked out by hand."""
import logging
import math

import numpy as np
import pytest
import torch

from openpsg.models.glove import class_name_vectors, name_words, read_glove
from openpsg.models.relation_heads.contracts import ObjectSet, one_hot_logits
from openpsg.models.relation_heads.embeddings import box_position_features, class_embedding
from openpsg.models.relation_heads.features import (multilevel_roi_align, pooled_masks,
                                                    roi_levels, two_rect_maps, union_boxes)
from openpsg.models.relation_heads.frequency import FrequencyBias, log_frequencies
from openpsg.models.relation_heads.postprocess import object_scores, rank_relations
from openpsg.models.relation_heads.sampling import (RelationSampler, assign_object_targets,
                                                    inference_pairs, sample_negatives)
from openpsg.structures import ImageMeta, Sample

T = torch.tensor


def _sample(labels, boxes, rels):
    n = len(labels)
    return Sample(img=torch.zeros(3, 8, 8), meta=ImageMeta('1'), labels=T(labels),
                  boxes=T(boxes, dtype=torch.float32), masks=torch.zeros(n, 8, 8, dtype=torch.bool),
                  rels=T(rels, dtype=torch.long).reshape(-1, 3))


# ---------------------------------------------------------------------------------------------
# boxes


def test_position_encoding_by_hand():
    # box 20 x 40 at (10, 20) in a 200 x 100 (w x h) image
    feats = box_position_features(T([[10.0, 20.0, 30.0, 60.0]]), (100, 200))
    expected = [20 / 200, 40 / 100, 20 / 200, 40 / 100, 10 / 200, 20 / 100, 30 / 200, 60 / 100,
                800 / 20000]
    assert feats.shape == (1, 9)
    assert torch.allclose(feats[0], T(expected))


def test_union_boxes_and_test_pairs():
    assert union_boxes(T([[0., 5., 4., 9.]]), T([[2., 1., 8., 6.]])).tolist() == [[0, 1, 8, 9]]
    assert inference_pairs(3).tolist() == [[0, 1], [0, 2], [1, 0], [1, 2], [2, 0], [2, 1]]
    assert inference_pairs(1).tolist() == [[0, 0]]  # OpenPSG's placeholder for a lone object


# ---------------------------------------------------------------------------------------------
# spatial branch rectangles


def _cells(rect):
    ys, xs = torch.nonzero(rect, as_tuple=True)
    return (xs.min().item(), xs.max().item(), ys.min().item(), ys.max().item(), int(rect.sum()))


def test_two_rect_maps_fixed_and_bug():
    size = torch.tensor([[27, 27]])  # image of the grid's size: no scaling
    subj, obj = T([[2., 3., 5., 7.]]), T([[1., 8., 12., 20.]])
    fixed = two_rect_maps(subj, obj, size)
    assert fixed.shape == (1, 2, 27, 27)
    # (x_min, x_max, y_min, y_max, cells): bounds are inclusive
    assert _cells(fixed[0, 0]) == (2, 5, 3, 7, 4 * 5)
    assert _cells(fixed[0, 1]) == (1, 12, 8, 20, 12 * 13)
    buggy = two_rect_maps(subj, obj, size, rect_coord_bug=True)
    assert torch.equal(buggy[0, 0], fixed[0, 0])  # the subject rectangle is right either way
    # OpenPSG's object rectangle: x from x1..y1 = 1..8, y from x2..y2 = 12..20
    assert _cells(buggy[0, 1]) == (1, 8, 12, 20, 8 * 9)


def test_two_rect_maps_scaling_floor_ceil():
    # a 54 x 54 image: coordinates halve, (3, 5, 9, 11) -> (1.5, 2.5, 4.5, 5.5) -> x 1..5, y 2..6
    maps = two_rect_maps(T([[3., 5., 9., 11.]]), T([[0., 0., 54., 54.]]), torch.tensor([[54, 54]]))
    assert _cells(maps[0, 0]) == (1, 5, 2, 6, 25)
    assert _cells(maps[0, 1]) == (0, 26, 0, 26, 27 * 27)  # clipped to the grid


# ---------------------------------------------------------------------------------------------
# RoI features


def test_roi_levels_rule():
    sides = [50, 111.9, 112, 223, 224, 448, 1000]  # square boxes, sqrt(wh) = side
    boxes = torch.stack([T([0., 0., s, s]) for s in sides])
    assert roi_levels(boxes, (4, 8, 16, 32)).tolist() == [0, 0, 1, 1, 2, 3, 3]
    # the finest level takes the boxes under 2 * finest_scale whatever its stride; above it,
    # levels are chosen by stride, not by position: on strides (4, 16) a box that wants stride 8
    # (112-224 px) takes the finer level, one that wants 16 or more the stride-16 level
    assert roi_levels(boxes, (8, 16, 32)).tolist() == [0, 0, 1, 1, 2, 2, 2]
    assert roi_levels(boxes, (4, 16)).tolist() == [0, 0, 0, 0, 1, 1, 1]


def test_multilevel_roi_align_reads_the_level_of_each_box():
    # level k is filled with the constant k + 1, so every output cell tells which level was read
    feats = [torch.full((1, 2, 256 // s, 256 // s), float(k + 1))
             for k, s in enumerate((4, 8, 16, 32))]
    rois = T([[0., 10, 10, 60, 60], [0, 0, 0, 150, 150], [0, 0, 0, 250, 250], [0, 0, 0, 255, 255]])
    out = multilevel_roi_align(feats, rois, 7, (4, 8, 16, 32))
    assert out.shape == (4, 2, 7, 7)
    assert [float(o.mean()) for o in out] == [1.0, 2.0, 3.0, 3.0]


def test_pooled_masks_cover_fraction():
    mask = torch.zeros(1, 16, 16, dtype=torch.bool)
    mask[0, :, :8] = True  # left half
    pooled = pooled_masks(mask, T([0]), T([[0., 0., 16., 16.]]), 2)
    assert pooled.shape == (1, 1, 2, 2)
    assert pooled[0, 0].tolist() == [[1.0, 0.0], [1.0, 0.0]]


# ---------------------------------------------------------------------------------------------
# object targets and relation sampling


def test_assign_object_targets_by_hand():
    gt_boxes = T([[0., 0., 10., 10.], [20., 0., 30., 10.]])
    gt_labels = T([5, 7])
    boxes = T([[0., 0., 10., 10.],      # = A
               [0., 0., 10., 4.],       # IoU 0.4 with A: background
               [21., 0., 30., 10.],     # IoU 0.9 with B
               [100., 100., 110., 110.]])
    targets = assign_object_targets(boxes, gt_boxes, gt_labels, background=133)
    assert targets.tolist() == [5, 133, 7, 133]
    assert assign_object_targets(boxes[:0], gt_boxes, gt_labels, 133).tolist() == []
    assert assign_object_targets(boxes, gt_boxes[:0], gt_labels[:0], 133).tolist() == [133] * 4


def test_assign_object_targets_low_quality_match():
    # the box overlaps C (label 3, IoU 110/120) more than A (label 5, IoU 100/110), but it is A's
    # best box and A comes later in the list, so A claims it (mmdet's low-quality matching)
    gt_boxes = T([[0., 0., 10., 12.], [0., 0., 10., 10.]])
    box = T([[0., 0., 10., 11.]])
    assert assign_object_targets(box, gt_boxes, T([3, 5]), 133).tolist() == [5]
    assert assign_object_targets(box, gt_boxes[:1], T([3]), 133).tolist() == [3]


def test_sampler_gt_objects_caps_and_labels():
    sample = _sample([0, 1, 2, 3], [[0, 0, 1, 1]] * 4, [[0, 1, 3], [2, 3, 7]])
    objects = ObjectSet(boxes=sample.boxes, img_shape=(8, 8), labels=sample.labels)
    sampler = RelationSampler(num_rel_per_image=6, pos_fraction=0.25)  # at most 1 positive
    out = sampler(objects, sample, num_predicates=56, use_gt_box=True,
                  generator=torch.Generator().manual_seed(0))
    pairs, labels = out.pairs.tolist(), out.labels.tolist()
    assert len(pairs) == 6 and len(set(map(tuple, pairs))) == 6
    positives = [(p, lab) for p, lab in zip(pairs, labels) if lab != 56]
    assert positives in ([([0, 1], 3)], [([2, 3], 7)])
    related_pairs = {(0, 1), (1, 0), (2, 3), (3, 2)}
    negatives = [tuple(p) for p, lab in zip(pairs, labels) if lab == 56]
    assert len(negatives) == 5 and not set(negatives) & related_pairs
    assert all(i != j for i, j in negatives)
    assert {tuple(x) for x in torch.nonzero(out.related).tolist()} == related_pairs

    # all 12 - 4 = 8 unrelated ordered pairs when the budget allows
    big = RelationSampler(num_rel_per_image=1024)(objects, sample, 56, True)
    assert (big.labels != 56).sum() == 2 and (big.labels == 56).sum() == 8

    again = sampler(objects, sample, 56, True, generator=torch.Generator().manual_seed(0))
    assert torch.equal(again.pairs, out.pairs)  # the generator decides every draw


def test_sampler_single_object_gets_a_dummy_pair():
    sample = _sample([4], [[0, 0, 5, 5]], [])
    out = RelationSampler()(ObjectSet(sample.boxes, (8, 8), sample.labels), sample, 56, True)
    assert out.pairs.tolist() == [[0, 0]] and out.labels.tolist() == [56]


def test_sample_negatives_draws_among_unrelated_pairs():
    related = torch.zeros(3, 3, dtype=torch.bool)
    related[0, 1] = True  # one direction only: (1, 0) stays a candidate
    unrelated = [[0, 2], [1, 0], [1, 2], [2, 0], [2, 1]]
    # shuffle=False: every pair, row-major, when within the limit; no random numbers drawn
    state = torch.get_rng_state()
    assert sample_negatives(related, 5, shuffle=False).tolist() == unrelated
    assert sample_negatives(related, None, shuffle=False).tolist() == unrelated
    assert torch.equal(torch.get_rng_state(), state)
    two = sample_negatives(related, 2, torch.Generator().manual_seed(0), shuffle=False).tolist()
    assert len(two) == 2 and two[0] != two[1] and all(p in unrelated for p in two)
    # shuffle=True: a random order of all of them, as torch.randperm with the generator gives it
    order = torch.randperm(5, generator=torch.Generator().manual_seed(3)).tolist()
    shuffled = sample_negatives(related, 1024, torch.Generator().manual_seed(3))
    assert shuffled.tolist() == [unrelated[k] for k in order]


def _detections():
    gt = _sample([1, 2], [[0, 0, 10, 10], [20, 0, 30, 10]], [[0, 1, 4]])
    boxes = T([[0., 0., 10., 10.],    # d0 = subject, IoU 1
               [0., 0., 10., 9.],     # d1 ~ subject, IoU 0.9
               [0., 0., 10., 10.],    # d2: subject's box, wrong label
               [20., 0., 30., 10.],   # d3 = object, IoU 1
               [20., 0., 30., 8.],    # d4 ~ object, IoU 0.8
               [22., 0., 30., 10.]])  # d5 ~ object, IoU 0.8
    det = ObjectSet(boxes=boxes, img_shape=(10, 40), labels=T([1, 1, 9, 2, 2, 2]))
    return det, gt


def test_sampler_detected_objects_match_label_and_iou():
    det, gt = _detections()
    out = RelationSampler(num_rel_per_image=64)(det, gt, 56, use_gt_box=False,
                                                generator=torch.Generator().manual_seed(1))
    positives = {tuple(p) for p, lab in zip(out.pairs.tolist(), out.labels.tolist()) if lab == 4}
    candidates = {(s, o) for s in (0, 1) for o in (3, 4, 5)}
    assert len(positives) == 4 and positives <= candidates  # 6 candidates, 4 drawn
    assert (out.labels == 4).sum() == 4
    negatives = out.pairs[out.labels == 56].tolist()
    assert len(negatives) == 30 - 2 * 4 and not {tuple(p) for p in negatives} & positives
    assert torch.equal(out.related, out.related.t())


def test_sampler_draws_pairs_in_proportion_to_iou_product():
    det, gt = _detections()
    keep = [0, 1, 3]
    det = ObjectSet(boxes=det.boxes[keep], img_shape=det.img_shape, labels=det.labels[keep])
    sampler = RelationSampler(num_rel_per_image=64, num_sample_per_gt_rel=1)
    generator = torch.Generator().manual_seed(0)
    picks = [tuple(sampler(det, gt, 56, False, generator).pairs[0].tolist()) for _ in range(1500)]
    # candidates (0, 2) with weight 1 * 1 and (1, 2) with weight 0.9 * 1
    share = picks.count((0, 2)) / len(picks)
    assert abs(share - 1 / 1.9) < 0.04 and set(picks) == {(0, 2), (1, 2)}


# ---------------------------------------------------------------------------------------------
# frequency bias


def test_log_frequencies_and_bias_lookup():
    counts = np.zeros((2, 2, 3))
    counts[0, 1] = [3, 1, 0]
    table = log_frequencies(counts)
    f = np.array([3.001, 1.001, 0.001])
    assert np.allclose(table[0, 1], np.log(f / f.sum() + 1e-3))
    assert np.allclose(table[1, 1], np.log(1 / 3 + 1e-3))  # unseen pair: uniform
    bias = FrequencyBias(counts)
    out = bias(T([0, 1]), T([1, 1]))
    assert torch.allclose(out, torch.from_numpy(table[[0, 1], [1, 1]]).float())


# ---------------------------------------------------------------------------------------------
# GloVe


def _write_glove(path, rows):
    path.write_text(''.join(f'{w} {" ".join(map(str, v))}\n' for w, v in rows))


def test_name_words():
    assert name_words('sky-other-merged') == ['sky']
    assert name_words('floor-wood') == ['floor', 'wood']
    assert name_words('Traffic light') == ['traffic', 'light']
    assert name_words('other') == ['other']


def test_glove_vectors_average_and_fallback(tmp_path):
    glove = tmp_path / 'glove.txt'
    _write_glove(glove, [('the', [9, 9, 9]), ('floor', [1, 2, 3]), ('wood', [3, 4, 5]),
                         ('sky', [0, -1, 0.5]), ('person', [1, 1, 1])])
    assert set(read_glove(glove, ['sky', 'person', 'cat'], 3)) == {'sky', 'person'}
    names = ('person', 'floor-wood', 'sky-other-merged', '__background__')
    vectors = class_name_vectors(names, 3, glove)
    assert vectors[0].tolist() == [1, 1, 1]
    assert vectors[1].tolist() == [2, 3, 4]  # mean of floor and wood
    assert vectors[2].tolist() == [0, -1, 0.5]
    unknown = class_name_vectors(('zzz', 'qqq', 'xxx', '__background__'), 3, glove)
    assert torch.equal(unknown[3], vectors[3])  # the same row of the fixed-seed N(0, 1) draw
    assert torch.equal(class_name_vectors(names, 3, str(glove)[:-4]), vectors)  # '.txt' optional


def test_glove_missing_file_and_bad_line(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger='openpsg'):
        vectors = class_name_vectors(('person', 'dog'), 4, tmp_path / 'absent.txt')
    assert 'absent.txt not found' in caplog.text
    torch.manual_seed(123)  # the fallback does not depend on the global generator
    assert torch.equal(class_name_vectors(('person', 'dog'), 4, tmp_path / 'absent.txt'), vectors)
    bad = tmp_path / 'bad.txt'
    _write_glove(bad, [('person', [1, 2])])
    with pytest.raises(ValueError,
                       match=r'bad.txt: line 1 \(word .person.\) has 2 numbers, expected 3'):
        class_name_vectors(('person',), 3, bad)


def test_class_embedding_rows_and_name_count():
    embedding = class_embedding(('person', 'dog'), 2, 4, None)
    assert embedding.weight.shape == (3, 4) and embedding.weight.requires_grad  # + background
    expected = class_name_vectors(('person', 'dog', '__background__'), 4, None)
    assert torch.equal(embedding.weight.detach(), expected)
    with pytest.raises(ValueError, match='3 class_names for num_classes=2'):
        class_embedding(('person', 'dog', 'cat'), 2, 4, None)


# ---------------------------------------------------------------------------------------------
# post-processing


def test_object_scores_and_ranking_by_hand():
    # 2 classes + background; logits = log(probabilities) so the softmax gives them back
    obj_logits = torch.log(T([[0.6, 0.3, 0.1], [0.1, 0.7, 0.2], [0.25, 0.25, 0.5]]))
    labels, scores = object_scores(obj_logits, None)
    assert labels.tolist() == [0, 1, 0]
    assert torch.allclose(scores, T([0.6, 0.7, 0.25]))
    pairs = T([[0, 1], [1, 2], [2, 0], [0, 2]])
    rel = torch.log(T([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3], [0.3, 0.3, 0.4], [0.8, 0.1, 0.1]]))
    out = rank_relations(rel, pairs, labels, scores)
    # triplet = best predicate x subject x object: .6*.6*.7=.252, .5*.7*.25=.0875, .3*.25*.6=.045,
    # .8*.6*.25=.12
    assert out.pairs.tolist() == [[0, 1], [0, 2], [1, 2], [2, 0]]
    assert torch.allclose(out.triplet_scores, T([0.252, 0.12, 0.0875, 0.045]))
    assert torch.allclose(out.no_relation_scores, T([0.3, 0.1, 0.3, 0.4]))
    assert torch.allclose(out.predicate_scores[1], T([0.8, 0.1]))


def test_predcls_logits_give_the_known_label_with_score_one():
    logits = one_hot_logits(T([2, 0]), 4)
    assert logits.tolist() == [[-1000, -1000, 1000, -1000], [1000, -1000, -1000, -1000]]
    labels, scores = object_scores(logits, T([2, 0]))
    assert labels.tolist() == [2, 0] and scores.tolist() == [1.0, 1.0]
    assert math.isclose(float(object_scores(logits, None)[1][0]), 1.0)
