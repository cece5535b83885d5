"""Ordered pairs of segments (openpsg.structures.pairs), by hand."""
import torch

from openpsg.structures.pairs import concat_pairs, object_offsets, ordered_pairs, unrelated_pairs


def test_ordered_pairs():
    assert ordered_pairs(3).tolist() == [[0, 1], [0, 2], [1, 0], [1, 2], [2, 0], [2, 1]]
    assert ordered_pairs(1).shape == (0, 2)
    assert ordered_pairs(0).shape == (0, 2)


def test_unrelated_pairs_keep_the_row_major_order():
    related = torch.zeros(3, 3, dtype=torch.bool)
    related[0, 1] = related[2, 0] = True
    related[1, 1] = True  # the diagonal never counts
    assert unrelated_pairs(related).tolist() == [[0, 2], [1, 0], [1, 2], [2, 1]]
    assert unrelated_pairs(torch.ones(2, 2, dtype=torch.bool)).shape == (0, 2)


def test_pairs_of_several_images_index_the_concatenated_objects():
    assert object_offsets([3, 2, 4]) == [0, 3, 5]
    pairs = [torch.tensor([[0, 2]]), torch.tensor([[1, 0], [0, 1]]), torch.tensor([[3, 0]])]
    assert concat_pairs(pairs, [3, 2, 4]).tolist() == [[0, 2], [4, 3], [3, 4], [8, 5]]
