"""EGTR: relation head, adaptive label smoothing, relation sampling, frequency bias, ranking, and the
model's losses, training and inference.

Expected values come from the formulas of the EGTR paper / naver-ai/egtr, evaluated by hand here.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from openpsg.models.one_stage.egtr_head import RelationExtractionHead
from openpsg.models.one_stage.frequency_prior import log_frequency_table, predicate_distribution
from openpsg.models.one_stage.pair_ranking import pair_prior, rank_pairs, softmax_object_scores
from openpsg.models.one_stage.relation_sampling import (query_relation_targets,
                                                        sample_relation_entries)
from openpsg.models.one_stage.relation_smoothing import (match_weights, perfect_match_cost,
                                                         query_weights, smoothed_targets)
from openpsg.structures import ImageMeta

EGTR_COST = {'class': 2.0, 'bbox': 5.0, 'giou': 2.0}


# ------------------------------------------------------------------------------ label smoothing
def test_perfect_match_cost_from_the_cost_terms():
    # 2 * (1 - 0.25) * ln(1e-8) + 5 * 0 + 2 * (-1)
    assert perfect_match_cost(EGTR_COST) == pytest.approx(-29.631021115928547, abs=1e-12)
    assert perfect_match_cost({'class': 1.0}, alpha=0.5, eps=1e-4) == pytest.approx(
        0.5 * math.log(1e-4))
    with pytest.raises(ValueError, match=r"no known minimum for the cost term\(s\) \['dice'\]"):
        perfect_match_cost({**EGTR_COST, 'dice': 1.0})


def test_smoothing_weights_by_hand():
    c_min = perfect_match_cost(EGTR_COST)
    s = 1e-14
    costs = torch.tensor([c_min, c_min + 30.0, c_min + 60.0], dtype=torch.float64)
    w = match_weights(costs, c_min, s)
    # perfect match: 1 - sigmoid(logit(s)) = 1 - s
    assert w[0].item() == pytest.approx(1 - s, abs=1e-15)
    # c' = 30 + ln(1e-14 / (1 - 1e-14)) = -2.2361913...; w = 1 - 1 / (1 + e^2.2361913)
    shifted = 30 + math.log(s / (1 - s))
    assert w[1].item() == pytest.approx(1 - 1 / (1 + math.exp(-shifted)), rel=1e-12)
    assert w[1].item() == pytest.approx(0.9034, abs=1e-4)
    assert w[2].item() < 1e-11  # a poor match: weight -> 0
    assert match_weights(costs, c_min, 0.0).tolist() == [1.0, 1.0, 1.0]  # smoothing off
    with pytest.raises(ValueError, match='smoothing'):
        match_weights(costs, c_min, 1.0)


def test_smoothed_targets_unmatched_queries_get_zero():
    weights = query_weights(4, torch.tensor([2, 0]), torch.tensor([0.5, 1.0]))
    assert weights.tolist() == [1.0, 0.0, 0.5, 0.0]
    targets = torch.zeros(4, 4, 2)
    targets[0, 2, 1] = targets[2, 0, 0] = targets[0, 0, 1] = 1  # among matched queries 0, 2
    targets[1, 2, 0] = 1  # touches the unmatched query 1 (cannot come from the matcher)
    out = smoothed_targets(targets, weights)
    assert out[0, 2, 1] == 0.5 and out[2, 0, 0] == 0.5 and out[0, 0, 1] == 1.0
    assert out[1, 2, 0] == 0 and out.sum() == 2.0


# ------------------------------------------------------------------------------ targets, sampling
def test_query_relation_targets_follow_the_matches():
    meta = ImageMeta('7', file_name='7.jpg')
    rels = torch.tensor([[0, 1, 2], [1, 0, 0], [0, 1, 0], [0, 1, 2]])  # a repeat collapses
    targets = query_relation_targets(rels, torch.tensor([1, 3]), torch.tensor([1, 0]), 2, 4, 3,
                                     meta)
    # object 0 -> query 3, object 1 -> query 1
    assert targets.nonzero().tolist() == [[1, 3, 0], [3, 1, 0], [3, 1, 2]]
    with pytest.raises(Exception, match='7.jpg: image_id=7: labels: 5 objects but the model has 4'):
        query_relation_targets(rels, torch.arange(4), torch.arange(4), 5, 4, 3, meta)


def tiny_sampling_case():
    # queries 0, 1 matched, 2 unmatched; one positive (0, 1, predicate 0)
    targets = torch.zeros(3, 3, 2)
    targets[0, 1, 0] = 1
    logits = torch.arange(18, dtype=torch.float32).reshape(3, 3, 2) / 10
    logits[1, 1, 1] = 5.0   # hardest negative
    logits[0, 0, 0] = 4.0   # second hardest
    logits[2, 2, 1] = 9.0   # hardest non-matching entry
    logits[0, 2, 0] = 8.0   # second
    return logits, targets, torch.tensor([True, True, False])


def entries(index):
    return [tuple(row) for row in index.tolist()]


def test_relation_sampling_by_hand():
    logits, targets, matched = tiny_sampling_case()
    index = sample_relation_entries(logits, targets, matched, negatives=2, nonmatching=2)
    assert entries(index) == [(0, 1, 0), (1, 1, 1), (0, 0, 0), (2, 2, 1), (0, 2, 0)]
    # 80 per positive is capped by what exists: 7 zero entries among matched pairs, 10 entries of
    # pairs with the unmatched query 2
    index = sample_relation_entries(logits, targets, matched)
    assert len(index) == 1 + 7 + 10 and len(set(entries(index))) == 18
    # two positives double the sample sizes
    targets[1, 0, 1] = 1
    index = sample_relation_entries(logits, targets, matched, negatives=1, nonmatching=1)
    assert entries(index) == [(0, 1, 0), (1, 0, 1), (1, 1, 1), (0, 0, 0), (2, 2, 1), (0, 2, 0)]
    # None keeps a set whole, 0 drops it
    index = sample_relation_entries(logits, targets, matched, negatives=None, nonmatching=0)
    assert len(index) == 2 + 6


def test_relation_sampling_without_positive_or_at_random():
    logits, targets, matched = tiny_sampling_case()
    assert len(sample_relation_entries(logits, torch.zeros_like(targets), matched)) == 0
    generator = torch.Generator().manual_seed(0)
    index = sample_relation_entries(logits, targets, matched, negatives=3, nonmatching=4,
                                    negatives_largest=False, nonmatching_largest=False,
                                    generator=generator)
    negatives, nonmatching = entries(index[1:4]), entries(index[4:])
    assert all(i < 2 and j < 2 and targets[i, j, p] == 0 for i, j, p in negatives)
    assert all(2 in (i, j) for i, j, _ in nonmatching) and len(set(nonmatching)) == 4


# ------------------------------------------------------------------------------ frequency bias
def test_frequency_table_both_forms_by_hand():
    counts = np.zeros((2, 2, 3))
    counts[0, 1] = [3, 1, 0]
    table = log_frequency_table(counts)
    eps = 1e-12
    expected = [math.log((3 + eps) / (4 + eps)), math.log((1 + eps) / (4 + eps)),
                math.log(eps / (4 + eps))]
    assert table[0, 1].tolist() == pytest.approx(expected, rel=1e-6)
    assert table[1, 0].tolist() == [0.0, 0.0, 0.0]  # unseen pair: log(eps / eps)
    quirk = log_frequency_table(counts, log_count_quirk=True)
    assert quirk[0, 1].tolist() == pytest.approx(
        [math.log(3 + eps / (4 + eps)), math.log(1 + eps / (4 + eps)),
         math.log(eps / (4 + eps))], rel=1e-6)
    assert quirk[1, 1].tolist() == [0.0, 0.0, 0.0]
    assert predicate_distribution(counts).tolist() == pytest.approx([0.75, 0.25, 0.0])


# ------------------------------------------------------------------------------ ranking
def test_object_scores_use_the_softmax():
    scores, labels = softmax_object_scores(torch.tensor([[0.0, math.log(3.0)], [2.0, 0.0]]))
    assert scores.tolist() == pytest.approx([0.75, 1 / (1 + math.exp(-2))])
    assert labels.tolist() == [1, 0]


def test_pair_ranking_by_hand():
    scores = torch.tensor([0.9, 0.5, 0.2])
    assert pair_prior(scores).diagonal().tolist() == [0, 0, 0]
    rel = torch.zeros(3, 3, 2)
    rel[0, 0] = torch.tensor([1.0, 1.0])    # self pair: prior 0
    rel[0, 1] = torch.tensor([0.2, 0.6])    # 0.6 * 0.45 = 0.27
    rel[1, 0] = torch.tensor([0.5, 0.1])    # 0.5 * 0.45 = 0.225
    rel[0, 2] = torch.tensor([0.9, 0.8])    # 0.9 * 0.18 = 0.162; 0.8 * 0.18 = 0.144
    pairs, rows, triplet = rank_pairs(scores, rel, k=3)
    assert pairs.tolist() == [[0, 1], [1, 0], [0, 2]]
    assert triplet.tolist() == pytest.approx([0.27, 0.225, 0.162])
    torch.testing.assert_close(rows, torch.tensor([[0.2, 0.6], [0.5, 0.1], [0.9, 0.8]]))
    # no graph constraint: (i, j, p) cells, one predicate per row
    pairs, rows, triplet = rank_pairs(scores, rel, k=4, graph_constraint=False)
    assert pairs.tolist() == [[0, 1], [1, 0], [0, 2], [0, 2]]
    assert triplet.tolist() == pytest.approx([0.27, 0.225, 0.162, 0.144])
    torch.testing.assert_close(rows, torch.tensor([[0, 0.6], [0.5, 0], [0.9, 0], [0, 0.8]]))


# ------------------------------------------------------------------------------ relation head
def naive_relation_source(head, qk, hidden):
    """EGTR's literal computation: the (B, Q, Q, L + 1, 2d) stack, gates, sum over layers."""
    q_len = hidden.shape[1]
    layers = [torch.cat([proj_q(q)[:, :, None].expand(-1, -1, q_len, -1),
                         proj_k(k)[:, None].expand(-1, q_len, -1, -1)], -1)
              for proj_q, proj_k, (q, k) in zip(head.proj_q, head.proj_k, qk)]
    layers.append(torch.cat([head.final_sub_proj(hidden)[:, :, None].expand(-1, -1, q_len, -1),
                             head.final_obj_proj(hidden)[:, None].expand(-1, q_len, -1, -1)], -1))
    source = torch.stack(layers, 3)
    gate = torch.sigmoid(head.rel_predictor_gate(source))
    return (gate * source).sum(3), gate[..., 0]


def test_relation_head_shapes_and_gated_sum():
    torch.manual_seed(0)
    b, q, d, layers, p = 2, 5, 16, 3, 7
    head = RelationExtractionHead(d, layers, p)
    for module in head.modules():  # larger weights than the N(0, 0.02) start
        if isinstance(module, torch.nn.Linear):
            torch.nn.init.normal_(module.weight, std=0.3)
            torch.nn.init.normal_(module.bias, std=0.3)
    qk = [(torch.randn(b, q, d), torch.randn(b, q, d)) for _ in range(layers)]
    hidden = torch.randn(b, q, d)
    subjects, objects = head.pair_sources(qk, hidden)
    assert subjects.shape == objects.shape == (b, q, layers + 1, d)
    z, gates = head.gated_sum(subjects, objects)
    expected_z, expected_gates = naive_relation_source(head, qk, hidden)
    assert z.shape == (b, q, q, 2 * d) and gates.shape == (b, q, q, layers + 1)
    torch.testing.assert_close(gates, expected_gates)
    torch.testing.assert_close(z, expected_z)   # a sum over the L + 1 entries, not a mean
    rel, connectivity, _ = head(qk, hidden)
    assert rel.shape == (b, q, q, p) and connectivity.shape == (b, q, q)
    torch.testing.assert_close(rel, head.rel_predictor(expected_z))
    with pytest.raises(ValueError, match='built for 3 decoder layers'):
        head(qk[:2], hidden)
