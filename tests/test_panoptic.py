"""PQ on hand-made panoptic maps; every expected number is worked out by hand in the comments."""
import numpy as np
import pytest

from openpsg.evaluation.panoptic import PQStat, pq_stats_image, summarize_pq

V = -1  # void


def strip(*runs: tuple[int, int]) -> np.ndarray:
    """A (1, W) id map from runs ``(segment index or -1, length)``."""
    return np.concatenate([np.full(n, s, np.int32) for s, n in runs])[None]


def painted(width: int, segments: dict[int, list[int]]) -> np.ndarray:
    """A (1, width) id map: void except the listed pixel columns of each segment."""
    id_map = np.full((1, width), V, np.int32)
    for seg, cols in segments.items():
        id_map[0, cols] = seg
    return id_map


def approx(d: dict, **expected: float) -> None:
    for key, value in expected.items():
        assert d[key] == pytest.approx(value, abs=1e-9), key


def test_things_stuff_and_void():
    # classes 0, 1 things; 2, 3 stuff
    is_thing = np.array([True, True, False, False])
    gt = strip((0, 10), (1, 20), (V, 5), (2, 5))                    # g0 c0, g1 c2, void, g2 c1
    gt_labels = [0, 2, 1]
    pred = painted(40, {0: list(range(0, 8)) + [30, 31],            # 8 on g0, 2 on void
                        1: list(range(8, 30)) + [32, 33, 34],       # 2 on g0, 20 on g1, 3 on void
                        2: list(range(35, 40))})                    # on g2 but class 3
    stat = pq_stats_image(gt, gt_labels, None, pred, [0, 2, 3], is_thing)
    # p0-g0: union 10 + 10 - 8 - 2 = 10 -> IoU 0.8; p1-g1: 25 + 20 - 20 - 3 = 22 -> 20/22
    np.testing.assert_array_equal(stat.tp, [1, 0, 1, 0])
    np.testing.assert_array_equal(stat.fn, [0, 1, 0, 0])
    np.testing.assert_array_equal(stat.fp, [0, 0, 0, 1])
    np.testing.assert_allclose(stat.iou_sum, [0.8, 0, 20 / 22, 0])
    # per class PQ: 0.8, 0, 10/11, 0; SQ same; RQ 1, 0, 1, 0
    approx(summarize_pq(stat),
           PQ=100 * (0.8 + 10 / 11) / 4, SQ=100 * (0.8 + 10 / 11) / 4, RQ=50,
           PQ_th=40, SQ_th=40, RQ_th=50,
           PQ_st=100 * (10 / 11) / 2, SQ_st=100 * (10 / 11) / 2, RQ_st=50)


def test_crowd_region():
    is_thing = np.array([True, True])
    gt = strip((0, 10), (1, 10), (2, 10))                           # g0 c0 crowd, g1 c0, g2 c1
    pred = strip((0, 6), (1, 4), (2, 10), (3, 10))
    # p0 c0 lies on the crowd of its own class -> ignored; p1 c1 on the c0 crowd -> false positive;
    # p2 c0 = g1 and p3 c1 = g2 exactly; the crowd segment is neither matched nor a false negative
    stat = pq_stats_image(gt, [0, 0, 1], [True, False, False], pred, [0, 1, 0, 1], is_thing)
    np.testing.assert_array_equal(stat.tp, [1, 1])
    np.testing.assert_array_equal(stat.fp, [0, 1])
    np.testing.assert_array_equal(stat.fn, [0, 0])
    # c0: PQ 1; c1: PQ = 1 / (1 + 0.5) = 2/3, SQ 1, RQ 2/3
    approx(summarize_pq(stat), PQ=100 * (1 + 2 / 3) / 2, SQ=100, RQ=100 * (1 + 2 / 3) / 2,
           PQ_th=100 * (1 + 2 / 3) / 2, PQ_st=0, SQ_st=0, RQ_st=0)


def test_crowd_prediction_of_same_class_is_not_a_match():
    is_thing = np.array([True])
    gt = strip((0, 10), (1, 10))                                    # g0 crowd c0, g1 c0
    pred = strip((0, 10), (1, 10))
    stat = pq_stats_image(gt, [0, 0], [True, False], pred, [0, 0], is_thing)
    np.testing.assert_array_equal((stat.tp, stat.fp, stat.fn), [[1], [0], [0]])


def test_prediction_mostly_on_void_is_ignored():
    is_thing = np.array([True, True])
    gt = strip((0, 10), (V, 10))                                    # g0 c0, then void
    pred = painted(20, {0: [8, 9, 10, 11, 12],                      # 3/5 on void -> ignored
                        1: [6, 7, 13, 14],                          # 2/4 on void (not > 1/2) -> FP
                        2: [0, 1, 2, 3, 4, 5]})                     # 6/10 of g0 -> TP 0.6
    stat = pq_stats_image(gt, [0], None, pred, [1, 1, 0], is_thing)
    np.testing.assert_array_equal(stat.tp, [1, 0])
    np.testing.assert_array_equal(stat.fp, [0, 1])
    np.testing.assert_array_equal(stat.fn, [0, 0])
    np.testing.assert_allclose(stat.iou_sum, [0.6, 0])
    approx(summarize_pq(stat), PQ=30, SQ=30, RQ=50)


@pytest.mark.parametrize('on_gt, matched, iou', [(11, True, 11 / 20), (10, False, 0.0)])
def test_iou_just_above_and_at_half_with_void_removed_from_union(on_gt, matched, iou):
    is_thing = np.array([True])
    gt = strip((0, 20), (V, 20))
    # the prediction covers `on_gt` pixels of g0 and 10 void pixels:
    # union = (on_gt + 10) + 20 - on_gt - 10 = 20, so IoU = on_gt / 20 (0.55 or exactly 0.5)
    pred = painted(40, {0: list(range(on_gt)) + list(range(20, 30))})
    stat = pq_stats_image(gt, [0], None, pred, [0], is_thing)
    assert stat.tp[0] == int(matched) and stat.fn[0] == int(not matched)
    # unmatched: 10 of its on_gt + 10 pixels lie on void, exactly half -> still a false positive
    assert stat.fp[0] == int(not matched)
    assert stat.iou_sum[0] == pytest.approx(iou)


def test_two_dimensional_maps_and_summing_over_images():
    is_thing = np.array([True, False])
    gt = np.array([[0, 0, 1, 1],
                   [0, 0, 1, 1],
                   [V, V, 1, 1]], np.int32)                         # g0 c0 (4 px), g1 c1 stuff (6 px)
    pred = np.array([[0, 0, 0, 1],
                     [0, 0, 1, 1],
                     [0, V, 1, 1]], np.int32)                       # p0 c0 6 px (1 on void), p1 c1 5 px
    first = pq_stats_image(gt, [0, 1], None, pred, [0, 1], is_thing)
    # p0-g0: inter 4, union 6 + 4 - 4 - 1 = 5 -> 0.8; p1-g1: inter 5, union 5 + 6 - 5 - 0 = 6 -> 5/6
    np.testing.assert_allclose(first.iou_sum, [0.8, 5 / 6])
    empty = pq_stats_image(gt, [0, 1], None, np.full_like(gt, V), np.zeros(0, int), is_thing)
    np.testing.assert_array_equal(empty.fn, [1, 1])                 # a missing prediction: all FN
    total = sum([first, empty])
    assert isinstance(total, PQStat)
    np.testing.assert_array_equal((total.tp, total.fp, total.fn), [[1, 1], [0, 0], [1, 1]])
    # c0: 0.8 / (1 + 0.5) ; c1: (5/6) / 1.5
    approx(summarize_pq(total), PQ=100 * (0.8 + 5 / 6) / 1.5 / 2, SQ=100 * (0.8 + 5 / 6) / 2,
           RQ=100 / 1.5, PQ_th=100 * 0.8 / 1.5, SQ_st=100 * 5 / 6)


def test_group_without_categories_scores_zero():
    stat = PQStat.zeros(np.array([True, False]))
    assert summarize_pq(stat) == {k: 0.0 for k in summarize_pq(stat)}


def test_bad_inputs_name_the_image():
    is_thing = np.array([True])
    with pytest.raises(ValueError, match=r'image 42: predicted panoptic map is \(1, 3\)'):
        pq_stats_image(strip((0, 4)), [0], None, strip((0, 3)), [0], is_thing, image_id='42')
    with pytest.raises(ValueError, match=r'image 42: predicted labels \[5\] are outside 0..0'):
        pq_stats_image(strip((0, 4)), [0], None, strip((0, 4)), [5], is_thing, image_id='42')
    with pytest.raises(ValueError, match='predicted id map holds segment indices 0..1'):
        pq_stats_image(strip((0, 4)), [0], None, strip((0, 2), (1, 2)), [0], is_thing)
