"""frequency_scene_graph: training-set counts applied to a prediction's segments."""
import numpy as np
import pytest

from openpsg.models import frequency_scene_graph
from openpsg.structures import Prediction


def segments(labels, scores):
    n = len(labels)
    return Prediction(image_id='7', labels=np.array(labels), scores=np.array(scores, np.float32),
                      boxes=np.zeros((n, 4), np.float32), masks=None,
                      pairs=np.zeros((0, 2), np.int64), predicate_scores=np.zeros((0, 2), np.float32),
                      triplet_scores=np.zeros(0, np.float32))


def test_class_conditioned_counts_with_smoothing():
    counts = np.zeros((2, 2, 3))  # 2 classes, 2 predicates + no relation
    counts[0, 1] = [3, 0, 1]
    counts[1, 0] = [0, 0, 4]
    out = frequency_scene_graph(segments([0, 1], [1.0, 0.5]), counts, smoothing=1.0)
    # prior over all pairs: [3, 0, 5] / 8
    p01 = (np.array([3, 0, 1]) + np.array([3, 0, 5]) / 8) / 5
    p10 = (np.array([0, 0, 4]) + np.array([3, 0, 5]) / 8) / 5
    assert out.pairs.tolist() == [[0, 1], [1, 0]]
    np.testing.assert_allclose(out.predicate_scores, np.stack([p01[:2], p10[:2]]), rtol=1e-6)
    np.testing.assert_allclose(out.no_relation_scores, [p01[2], p10[2]], rtol=1e-6)
    np.testing.assert_allclose(out.triplet_scores, [0.5 * p01[0], 0.5 * p10[0]], rtol=1e-6)
    assert out.labels.tolist() == [0, 1]  # segments untouched


def test_shared_distribution_ranks_by_segment_scores():
    out = frequency_scene_graph(segments([0, 0, 0], [0.2, 0.9, 0.6]), np.array([1., 5., 4.]))
    assert out.pairs.tolist() == [[1, 2], [2, 1], [0, 1], [1, 0], [0, 2], [2, 0]]
    assert (out.predicate_scores.argmax(1) == 1).all()
    assert np.all(np.diff(out.triplet_scores) <= 0)


def test_no_segments_and_empty_counts():
    out = frequency_scene_graph(segments([], []), np.ones(3))
    assert out.pairs.shape == (0, 2) and out.predicate_scores.shape == (0, 2)
    with pytest.raises(ValueError, match='all zero'):
        frequency_scene_graph(segments([0], [1.0]), np.zeros(3))
