"""Hungarian matching: optimality against brute force, DETR's and Deformable DETR's cost terms,
per-image batching."""
import itertools
import math

import pytest
import torch

from openpsg.models.one_stage.matcher import (FocalHungarianMatcher, HungarianMatcher, detr_cost,
                                              focal_class_cost, focal_detr_cost, giou_cost,
                                              linear_assignment)


def brute_force_min(cost: torch.Tensor) -> float:
    """Smallest total cost over every one-to-one assignment of min(Q, N) pairs."""
    q, n = cost.shape
    if q >= n:
        return min(sum(cost[p[j], j].item() for j in range(n))
                   for p in itertools.permutations(range(q), n))
    return min(sum(cost[i, p[i]].item() for i in range(q))
               for p in itertools.permutations(range(n), q))


@pytest.mark.parametrize('shape', [(1, 1), (3, 3), (5, 5), (6, 3), (4, 1), (2, 5), (3, 6)])
@pytest.mark.parametrize('seed', [0, 1, 2])
def test_linear_assignment_is_optimal(shape, seed):
    cost = torch.rand(shape, generator=torch.Generator().manual_seed(seed)) * 10 - 3
    rows, cols = linear_assignment(cost)
    k = min(shape)
    assert rows.dtype == cols.dtype == torch.int64
    assert len(rows) == len(cols) == k
    assert len(set(rows.tolist())) == k and len(set(cols.tolist())) == k
    assert rows.tolist() == sorted(rows.tolist())
    assert cost[rows, cols].sum().item() == pytest.approx(brute_force_min(cost), abs=1e-5)


def test_linear_assignment_obvious_case_and_empty_targets():
    cost = torch.tensor([[9., 0., 9.], [0., 9., 9.], [9., 9., 9.], [9., 9., 0.]])
    rows, cols = linear_assignment(cost)
    assert list(zip(rows.tolist(), cols.tolist())) == [(0, 1), (1, 0), (3, 2)]
    rows, cols = linear_assignment(torch.zeros(4, 0))
    assert rows.numel() == 0 and cols.numel() == 0


def test_linear_assignment_rejects_non_finite_costs():
    with pytest.raises(ValueError, match='NaN or infinite'):
        linear_assignment(torch.tensor([[0.0, float('nan')], [1.0, 2.0]]))


def test_detr_cost_hand_computed():
    # softmax([0, ln 3, 0]) = [1/5, 3/5, 1/5]: p(label 1) = 0.6 for both queries.
    logits = torch.tensor([[0.0, math.log(3), 0.0], [0.0, math.log(3), 0.0]])
    # query 0 equals the target (L1 0, GIoU 1); query 1 is shifted left by 0.2 and only touches it:
    # xyxy (0.2, 0.4, 0.4, 0.6) vs (0.4, 0.4, 0.6, 0.6): IoU 0, hull area 0.08 = union -> GIoU 0.
    boxes = torch.tensor([[0.5, 0.5, 0.2, 0.2], [0.3, 0.5, 0.2, 0.2]])
    target = torch.tensor([[0.5, 0.5, 0.2, 0.2]])
    cost = detr_cost(logits, boxes, torch.tensor([1]), target, cost_class=1, cost_bbox=5, cost_giou=2)
    expected = torch.tensor([[-0.6 + 5 * 0.0 - 2 * 1.0], [-0.6 + 5 * 0.2 - 2 * 0.0]])
    torch.testing.assert_close(cost, expected)


def test_giou_cost_hand_computed():
    # (0,0,2,2) vs (1,1,3,3): intersection 1, union 7, hull 9 -> GIoU = 1/7 - 2/9.
    cost = giou_cost(torch.tensor([[0., 0., 2., 2.]]), torch.tensor([[1., 1., 3., 3.]]))
    assert cost.item() == pytest.approx(-(1 / 7 - 2 / 9))


def test_hungarian_matcher_per_image():
    big = 10.0
    logits = torch.zeros(2, 4, 4)  # 3 classes + no object
    boxes = torch.tensor([[0.2, 0.2, 0.1, 0.1], [0.7, 0.7, 0.2, 0.2], [0.5, 0.5, 0.9, 0.9],
                          [0.1, 0.9, 0.1, 0.1]]).expand(2, 4, 4).clone()
    logits[0, 1, 2] = big  # query 1 says class 2 and sits on target 0
    logits[0, 3, 0] = big  # query 3 says class 0 and sits on target 1
    targets = [(torch.tensor([2, 0]), torch.tensor([[0.7, 0.7, 0.2, 0.2], [0.1, 0.9, 0.1, 0.1]])),
               (torch.zeros(0, dtype=torch.int64), torch.zeros(0, 4))]
    (q0, t0), (q1, t1) = HungarianMatcher()(logits, boxes, targets)
    assert q0.tolist() == [1, 3] and t0.tolist() == [0, 1]
    assert q1.numel() == 0 and t1.numel() == 0


def test_matcher_rejects_all_zero_weights():
    with pytest.raises(ValueError, match='all cost weights are 0'):
        HungarianMatcher(0, 0, 0)


def test_focal_class_cost_hand_computed():
    # p = 0.5: 0.25 * 0.5^2 * ln 2 - 0.75 * 0.5^2 * ln 2 = -0.125 ln 2
    # p = 0.8: 0.25 * 0.2^2 * -ln 0.8 - 0.75 * 0.8^2 * -ln 0.2
    probs = torch.tensor([[0.5, 0.8, 0.1], [0.8, 0.5, 0.1]])
    cost = focal_class_cost(probs, torch.tensor([1, 0, 1]))
    low = 0.25 * 0.04 * -math.log(0.8) - 0.75 * 0.64 * -math.log(0.2)
    expected = torch.tensor([[low, -0.125 * math.log(2), low],
                             [-0.125 * math.log(2), low, -0.125 * math.log(2)]])
    torch.testing.assert_close(cost, expected, rtol=1e-6, atol=1e-7)
    # a confident right class costs less than a doubtful one, a confident wrong one more
    assert focal_class_cost(torch.tensor([[0.99]]), torch.tensor([0])) < low < \
        focal_class_cost(torch.tensor([[0.01]]), torch.tensor([0]))


def test_focal_detr_cost_hand_computed():
    # logit ln 4 -> p = 0.8 for the target class; boxes as in test_detr_cost_hand_computed
    logits = torch.tensor([[0.0, math.log(4)], [0.0, math.log(4)]])
    boxes = torch.tensor([[0.5, 0.5, 0.2, 0.2], [0.3, 0.5, 0.2, 0.2]])
    target = torch.tensor([[0.5, 0.5, 0.2, 0.2]])
    cost = focal_detr_cost(logits, boxes, torch.tensor([1]), target)  # weights 2, 5, 2
    focal = 0.25 * 0.04 * -math.log(0.8) - 0.75 * 0.64 * -math.log(0.2)
    expected = torch.tensor([[2 * focal + 5 * 0.0 - 2 * 1.0], [2 * focal + 5 * 0.2 - 2 * 0.0]])
    torch.testing.assert_close(cost, expected)


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_focal_matcher_is_optimal_per_image(seed):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 5, 4, generator=gen) * 3
    boxes = torch.rand(2, 5, 4, generator=gen) * 0.4 + 0.1
    targets = [(torch.tensor([1, 3, 0]), torch.rand(3, 4, generator=gen) * 0.4 + 0.1),
               (torch.tensor([2, 2, 1, 0]), torch.rand(4, 4, generator=gen) * 0.4 + 0.1)]
    matcher = FocalHungarianMatcher(cost_class=2, cost_bbox=5, cost_giou=2)
    for (rows, cols), lg, bx, (labels, tgt) in zip(matcher(logits, boxes, targets), logits, boxes,
                                                  targets):
        cost = focal_detr_cost(lg, bx, labels, tgt, 2, 5, 2)
        assert len(set(rows.tolist())) == len(labels) and sorted(cols.tolist()) == \
            list(range(len(labels)))
        assert cost[rows, cols].sum().item() == pytest.approx(brute_force_min(cost), abs=1e-5)
    assert 'alpha=0.25' in repr(matcher)
