"""Structures: panoptic ids, id maps, boxes, RLE, mask IoU, batches and prediction containers.

Every expected number here is counted by hand on masks small enough to read.
"""
import json

import numpy as np
import pytest
import torch

from openpsg.structures import (VOID, GroundTruth, ImageMeta, Prediction, Sample, collate_samples,
                                decode_rle, encode_rle, id2rgb, id_map_iou, id_map_to_masks,
                                mask_iou, masks_to_boxes, masks_to_id_map, rgb2id,
                                segment_ids_to_id_map)
from openpsg.structures.labels import CLASSES, NUM_CLASSES, NUM_PREDICATES, PREDICATES

B = np.array  # short alias for the hand-written masks below


# ---------------------------------------------------------------------------------------------
# labels


def test_label_vocabularies():
    assert (NUM_CLASSES, NUM_PREDICATES) == (133, 56)
    assert CLASSES[0] == 'person' and CLASSES[79] == 'toothbrush' and CLASSES[80] == 'banner'
    assert CLASSES[131] == 'wall-other-merged' and CLASSES[132] == 'rug-merged'
    assert PREDICATES[0] == 'over' and PREDICATES[55] == 'leaning on'


# ---------------------------------------------------------------------------------------------
# panoptic ids and id maps


def test_rgb2id_by_hand():
    rgb = np.array([[[0, 0, 0], [1, 2, 3]], [[0, 1, 0], [255, 255, 255]]], dtype=np.uint8)
    # R + 256 G + 65536 B: 1 + 512 + 196608 = 197121; 256; 255 + 65280 + 16711680 = 16777215
    assert rgb2id(rgb).tolist() == [[0, 197121], [256, 16777215]]


def test_id2rgb_by_hand_and_round_trip_above_65535():
    # 70000 = 1 * 65536 + 17 * 256 + 112
    assert id2rgb(np.array([[70000]])).tolist() == [[[112, 17, 1]]]
    ids = np.array([[0, 1, 255, 256], [65535, 65536, 70000, 16777215]])
    rgb = id2rgb(ids)
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 4, 3)
    assert np.array_equal(rgb2id(rgb), ids)


def test_segment_ids_to_id_map_unlisted_ids_are_void():
    pan = np.array([[0, 5, 5, 80000], [70000, 9, 0, 5]])
    id_map = segment_ids_to_id_map(pan, [70000, 5])
    assert id_map.dtype == np.int32
    assert id_map.tolist() == [[-1, 1, 1, -1], [0, -1, -1, 1]]
    assert segment_ids_to_id_map(pan, []).tolist() == [[VOID] * 4] * 2


def test_masks_to_id_map_lowest_index_wins():
    masks = B([[[1, 1, 0], [0, 0, 0]],
               [[0, 1, 1], [0, 0, 0]],
               [[0, 0, 0], [0, 0, 1]]], dtype=bool)
    assert masks_to_id_map(masks).tolist() == [[0, 0, 1], [-1, -1, 2]]
    assert masks_to_id_map(np.zeros((0, 2, 3), bool)).tolist() == [[-1, -1, -1]] * 2


def test_id_map_to_masks():
    id_map = np.array([[0, 0, 1], [-1, -1, 2]], dtype=np.int32)
    masks = id_map_to_masks(id_map, 4)
    assert masks.dtype == bool and masks.shape == (4, 2, 3)
    assert masks[0].tolist() == [[True, True, False], [False, False, False]]
    assert masks[1].tolist() == [[False, False, True], [False, False, False]]
    assert masks[2].tolist() == [[False, False, False], [False, False, True]]
    assert not masks[3].any()  # a segment with no pixel


# ---------------------------------------------------------------------------------------------
# boxes


def test_masks_to_boxes_exclusive_corners():
    masks = np.zeros((5, 5, 6), bool)
    masks[0, 1:4, 2:5] = True          # rows 1..3, cols 2..4
    masks[1, 0, 0] = True              # top-left pixel
    masks[2, 4, 5] = True              # bottom-right pixel
    masks[3, 1, 1] = masks[3, 3, 4] = True  # two separate pixels
    boxes = masks_to_boxes(masks)      # masks[4] stays empty
    assert boxes.dtype == np.float32
    assert boxes.tolist() == [[2, 1, 5, 4], [0, 0, 1, 1], [5, 4, 6, 5], [1, 1, 5, 4], [0, 0, 0, 0]]
    assert masks_to_boxes(np.zeros((0, 5, 6), bool)).shape == (0, 4)


# ---------------------------------------------------------------------------------------------
# RLE


def test_rle_round_trip_is_json_ready():
    rng = np.random.default_rng(0)
    masks = rng.random((3, 7, 9)) > 0.5
    masks[1] = False
    rles = encode_rle(masks)
    assert len(rles) == 3 and all(rle['size'] == [7, 9] for rle in rles)
    assert all(isinstance(rle['counts'], str) for rle in rles)
    rles = json.loads(json.dumps(rles))
    assert np.array_equal(decode_rle(rles), masks)


def test_rle_of_nothing():
    assert encode_rle(np.zeros((0, 4, 5), bool)) == []
    assert decode_rle([], (4, 5)).shape == (0, 4, 5)
    with pytest.raises(ValueError, match='shape'):
        decode_rle([])


# ---------------------------------------------------------------------------------------------
# IoU


def test_mask_iou_counted_by_hand():
    a = np.zeros((3, 3, 4), bool)
    b = np.zeros((3, 3, 4), bool)
    a[0, 0:2, 0:2] = True      # 4 pixels
    a[2, 1:3, 1:4] = True      # 6 pixels, same as b[0]
    b[0, 1:3, 1:4] = True      # 6 pixels; a[0] & b[0] = pixel (1, 1) only
    b[2] = True                # 12 pixels
    expected = [[1 / 9, 0, 4 / 12],    # a[1] and b[1] are empty
                [0, 0, 0],
                [1, 0, 6 / 12]]
    iou = mask_iou(a, b)
    assert iou.shape == (3, 3) and iou.dtype == np.float64
    assert np.allclose(iou, expected, rtol=0, atol=1e-12)


def test_mask_iou_with_no_masks_on_one_side():
    masks = np.ones((2, 3, 4), bool)
    assert mask_iou(masks[:0], masks).shape == (0, 2)
    assert mask_iou(masks, masks[:0]).shape == (2, 0)


def test_mask_iou_rejects_different_sizes():
    with pytest.raises(ValueError, match='sizes differ'):
        mask_iou(np.zeros((1, 3, 4), bool), np.zeros((1, 4, 3), bool))


def test_id_map_iou_counted_by_hand():
    pred = np.array([[0, 0, 1], [1, -1, 2]], dtype=np.int32)
    gt = np.array([[0, 1, 1], [-1, -1, 0]], dtype=np.int32)
    # p0={(0,0),(0,1)} p1={(0,2),(1,0)} p2={(1,2)} p3=empty; g0={(0,0),(1,2)} g1={(0,1),(0,2)}
    expected = [[1 / 3, 1 / 3], [0, 1 / 3], [1 / 2, 0], [0, 0]]
    assert np.allclose(id_map_iou(pred, gt, 4, 2), expected, rtol=0, atol=1e-12)


def test_id_map_iou_equals_mask_iou_of_decoded_masks():
    rng = np.random.default_rng(1)
    pred = rng.integers(-1, 6, size=(13, 17)).astype(np.int32)
    gt = rng.integers(-1, 4, size=(13, 17)).astype(np.int32)
    gt[gt == 2] = 1  # gt segment 2 has no pixel
    dense = mask_iou(id_map_to_masks(pred, 6), id_map_to_masks(gt, 4))
    assert np.array_equal(id_map_iou(pred, gt, 6, 4), dense)
    with pytest.raises(ValueError, match='sizes differ'):
        id_map_iou(pred, gt.T, 6, 4)


# ---------------------------------------------------------------------------------------------
# batches


def make_sample(image_id: str, h: int, w: int, fill: float, img_shape=None) -> Sample:
    meta = ImageMeta(image_id=image_id, ori_shape=(h, w), img_shape=img_shape or (h, w),
                     pad_shape=(h, w))
    return Sample(img=torch.full((3, h, w), fill), meta=meta, labels=torch.tensor([0, 80]),
                  boxes=torch.zeros((2, 4)), masks=torch.zeros((2, h, w), dtype=torch.bool),
                  rels=torch.tensor([[0, 1, 3]]))


def test_collate_pads_images_and_marks_padding():
    batch = collate_samples([make_sample('a', 4, 5, 1.0), make_sample('b', 6, 3, 2.0)])
    assert batch.imgs.shape == (2, 3, 6, 5) and batch.pad_mask.shape == (2, 6, 5)
    assert len(batch) == 2 and [m.image_id for m in batch.metas] == ['a', 'b']
    assert (batch.imgs[0, :, :4, :5] == 1).all() and (batch.imgs[0, :, 4:] == 0).all()
    assert (batch.imgs[1, :, :, :3] == 2).all() and (batch.imgs[1, :, :, 3:] == 0).all()
    assert batch.pad_mask[0].sum() == 6 * 5 - 4 * 5 and not batch.pad_mask[0, :4, :5].any()
    assert batch.pad_mask[1].sum() == 6 * 5 - 6 * 3 and not batch.pad_mask[1, :, :3].any()
    moved = batch.to('cpu')
    assert torch.equal(moved.imgs, batch.imgs)
    assert torch.equal(moved.samples[1].rels, torch.tensor([[0, 1, 3]]))


def test_collate_rounds_up_to_size_divisor_and_uses_img_shape():
    # sample 'b' arrives padded to 6x3 but only its top-left 5x2 is image
    batch = collate_samples([make_sample('a', 4, 5, 1.0), make_sample('b', 6, 3, 2.0, (5, 2))],
                            size_divisor=4)
    assert batch.imgs.shape == (2, 3, 8, 8)
    assert batch.pad_mask[0].sum() == 64 - 20 and not batch.pad_mask[0, :4, :5].any()
    assert batch.pad_mask[1].sum() == 64 - 10 and not batch.pad_mask[1, :5, :2].any()


# ---------------------------------------------------------------------------------------------
# predictions and ground truth


def make_prediction(**overrides) -> Prediction:
    masks = np.zeros((3, 4, 5), bool)
    masks[0, :2, :3] = True
    masks[1, 1:4, 2:5] = True   # overlaps mask 0 at (1, 2)
    masks[2, 3, 0] = True
    predicate_scores = np.zeros((2, NUM_PREDICATES), np.float32)
    predicate_scores[0, 3] = 0.75
    predicate_scores[1, 46] = 0.5
    fields = dict(image_id='417720', labels=np.array([0, 17, 125]),
                  scores=np.array([0.9, 0.8, 0.125], np.float32), boxes=masks_to_boxes(masks),
                  masks=masks, pairs=np.array([[0, 1], [1, 2]]), predicate_scores=predicate_scores,
                  triplet_scores=np.array([0.5, 0.25], np.float32),
                  no_relation_scores=np.array([0.1, 0.3], np.float32))
    return Prediction(**{**fields, **overrides})


def assert_same_prediction(a: Prediction, b: Prediction) -> None:
    assert a.image_id == b.image_id
    for key in ('labels', 'scores', 'boxes', 'pairs', 'predicate_scores', 'triplet_scores',
                'no_relation_scores', 'pan_labels', 'pan_id_map'):
        x, y = getattr(a, key), getattr(b, key)
        assert (x is None) == (y is None), key
        if x is not None:
            assert x.dtype == y.dtype and np.array_equal(x, y), key
    assert np.array_equal(a.dense_masks(), b.dense_masks())


def test_prediction_round_trip_with_dense_masks():
    pred = make_prediction()
    d = json.loads(json.dumps(pred.to_dict()))
    back = Prediction.from_dict(d)
    assert isinstance(back.masks, list) and back.image_shape == (4, 5)
    assert back.pan_id_map is None and back.pan_labels is None
    assert_same_prediction(back, pred)
    assert back.predicate_scores.shape == (2, 56) and back.predicate_scores[0, 3] == 0.75


def test_prediction_round_trip_with_explicit_panoptic_map():
    pan = np.array([[0, 0, 2, 2, -1],
                    [0, 0, 2, 2, -1],
                    [-1, -1, -1, -1, -1],
                    [3, 3, 3, 3, 3]], dtype=np.int32)  # segment 1 has no pixel
    pred = make_prediction(pan_id_map=pan, pan_labels=np.array([0, 5, 17, 125]))
    back = Prediction.from_dict(json.loads(json.dumps(pred.to_dict())))
    assert back.pan_id_map.dtype == np.int32
    assert_same_prediction(back, pred)
    id_map, labels = back.panoptic()
    assert id_map.tolist() == pan.tolist() and labels.tolist() == [0, 5, 17, 125]


def test_prediction_without_relations_round_trips():
    pred = make_prediction(pairs=np.zeros((0, 2), np.int64),
                           predicate_scores=np.zeros((0, NUM_PREDICATES), np.float32),
                           triplet_scores=np.zeros(0, np.float32), no_relation_scores=None)
    back = Prediction.from_dict(json.loads(json.dumps(pred.to_dict())))
    assert back.pairs.shape == (0, 2) and back.predicate_scores.shape == (0, 56)
    assert_same_prediction(back, pred)


def test_empty_prediction_and_its_round_trip():
    pred = Prediction.empty('7', (3, 4), num_predicates=6)
    assert pred.num_segments == 0 and pred.masks.shape == (0, 3, 4) and pred.boxes.shape == (0, 4)
    assert pred.pairs.shape == (0, 2) and pred.predicate_scores.shape == (0, 6)
    assert pred.triplet_scores.shape == pred.no_relation_scores.shape == (0,)
    assert pred.pan_id_map.dtype == np.int32 and (pred.pan_id_map == VOID).all()
    assert pred.image_shape == (3, 4) and pred.panoptic()[1].shape == (0,)
    back = Prediction.from_dict(json.loads(json.dumps(pred.to_dict())))
    assert back.dense_masks().shape == (0, 3, 4) and back.predicate_scores.shape == (0, 6)


def test_panoptic_derived_from_masks():
    pred = make_prediction()
    id_map, labels = pred.panoptic()
    assert id_map.tolist() == [[0, 0, 0, -1, -1],
                               [0, 0, 0, 1, 1],
                               [-1, -1, 1, 1, 1],
                               [2, -1, 1, 1, 1]]
    assert labels.tolist() == [0, 17, 125]
    compact = pred.compact()
    assert isinstance(compact.masks, list) and compact.panoptic()[0].tolist() == id_map.tolist()
    explicit = make_prediction(pan_id_map=np.zeros((4, 5), np.int32))
    assert explicit.panoptic()[1].tolist() == [0, 17, 125]  # pan_labels default to labels


def test_prediction_without_masks_says_which_image():
    with pytest.raises(ValueError, match='image 417720: prediction has no masks'):
        make_prediction(masks=None).dense_masks()


def test_ground_truth_masks():
    gt = GroundTruth(image_id='9', labels=np.array([3, 90, 7]), boxes=np.zeros((3, 4), np.float32),
                     rels=np.array([[0, 1, 3]]), id_map=np.array([[1, 1, -1], [0, 1, 2]], np.int32))
    masks = gt.masks()
    assert gt.num_segments == 3 and masks.shape == (3, 2, 3)
    assert masks.astype(int).tolist() == [[[0, 0, 0], [1, 0, 0]],
                                          [[1, 1, 0], [0, 1, 0]],
                                          [[0, 0, 0], [0, 0, 1]]]
    boxless = GroundTruth(image_id='10', labels=gt.labels, boxes=gt.boxes, rels=gt.rels)
    with pytest.raises(ValueError, match='image 10: ground truth has no masks'):
        boxless.masks()


def test_id_map_iou_rejects_index_beyond_counts():
    pred = np.array([[0, 0]], dtype=np.int32)
    gt = np.array([[0, 2]], dtype=np.int32)
    with pytest.raises(ValueError, match='segment index'):
        id_map_iou(pred, gt, 2, 2)
