"""Predicate frequency counts of an annotation file's training split (the prior of the frequency
bias and baselines), worked out by hand on the psg_tiny fixture."""
import numpy as np
import pytest

from fixtures.psg_tiny.paint import write_psg_tiny
from openpsg.datasets.statistics import load_frequency_counts, predicate_frequency_counts


@pytest.fixture(scope='module')
def psg_tiny(tmp_path_factory):
    ann_file, _ = write_psg_tiny(tmp_path_factory.mktemp('psg_tiny'))
    return str(ann_file)


def test_frequency_counts_from_training_split(psg_tiny, tmp_path):
    counts = predicate_frequency_counts(psg_tiny, num_classes=5, num_predicates=6)
    assert counts.shape == (5, 5, 7)
    # training image 1001: person(0) -standing on(4)-> grass(3), person -beside(2)/in front of(1)->
    # horse(1), horse -on(3)-> grass twice (both rows counted); image 1002 is in the test split
    expected = {(0, 3, 4): 1, (0, 1, 2): 1, (0, 1, 1): 1, (1, 3, 3): 2}
    assert {tuple(map(int, k)): int(counts[tuple(k)]) for k in np.argwhere(counts)} == expected

    # with_no_relation: the 9 other ordered pairs of image 1001 (classes person 0, horse 1,
    # class 4, grass 3 for segments 0..3; pairs (0,3), (0,1), (1,3) are related)
    with_bg = predicate_frequency_counts(psg_tiny, num_classes=5, num_predicates=6,
                                         with_no_relation=True)
    assert np.array_equal(with_bg[..., :6], counts[..., :6])
    unrelated = {(0, 4), (1, 0), (1, 4), (4, 0), (4, 1), (4, 3), (3, 0), (3, 1), (3, 4)}
    assert {tuple(map(int, k)): int(with_bg[(*k, 6)])
            for k in np.argwhere(with_bg[..., 6])} == {k: 1 for k in unrelated}

    cache = tmp_path / 'freq.npy'
    assert np.array_equal(load_frequency_counts(str(cache), psg_tiny, 5, 6), counts)
    assert np.array_equal(load_frequency_counts(str(cache), None, 5, 6), counts)  # read back
    with pytest.raises(ValueError, match='expects 133'):
        predicate_frequency_counts(psg_tiny)
    with pytest.raises(ValueError, match='freq_ann_file'):
        load_frequency_counts(None, None, 5, 6)


def test_frequency_cache_is_written_whole_under_its_own_name(psg_tiny, tmp_path):
    cache = tmp_path / 'sub' / 'counts'  # no .npy suffix: still this very file
    counts = load_frequency_counts(str(cache), psg_tiny, 5, 6)
    assert sorted(p.name for p in cache.parent.iterdir()) == ['counts']  # no temporary left
    assert np.array_equal(np.load(cache), counts)
    np.save(tmp_path / 'wrong.npy', np.zeros((5, 5, 6)))
    with pytest.raises(ValueError, match=r'wrong.npy: frequency counts of shape \(5, 5, 6\), '
                                         r'expected \(5, 5, 7\)'):
        load_frequency_counts(str(tmp_path / 'wrong.npy'), psg_tiny, 5, 6)
