"""Hungarian matching: optimality against brute force, DETR's cost terms, per-image batching."""
import itertools
import math

import pytest
import torch

from openpsg.models.one_stage.matcher import (HungarianMatcher, detr_cost, giou_cost,
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
