"""VCTree's trees: maximum-score tree growth, binary conversion, forests over a batch and the
level-by-level tree LSTMs."""
import numpy as np
import pytest
import torch
from torch import nn

from openpsg.models.relation_heads.vctree import overlap_features
from openpsg.models.relation_heads.vctree_tree import (BiTreeLSTM, BottomUpTreeLSTM,
                                                       TopDownTreeLSTM, TreeLabelDecoder,
                                                       binary_tree, build_forest, max_score_tree)


def test_max_score_tree_by_hand():
    scores = np.array([[0.0, 0.9, 0.1],
                       [0.2, 0.0, 0.8],
                       [0.3, 0.4, 0.0]])
    # off-diagonal row means 0.5, 0.5, 0.35 -> root 0 (first); 0 -> 1 (0.9); 1 -> 2 (0.8 > 0.1)
    root, children = max_score_tree(scores)
    assert root == 0 and children == [[1], [2], []]
    left, right = binary_tree(children)
    assert left.tolist() == [1, 2, -1] and right.tolist() == [-1, -1, -1]


def test_siblings_become_a_right_chain():
    scores = np.array([[0.0, 0.9, 0.8, 0.7],
                       [0.1, 0.0, 0.1, 0.1],
                       [0.1, 0.1, 0.0, 0.1],
                       [0.1, 0.1, 0.1, 0.0]])
    root, children = max_score_tree(scores)
    assert root == 0 and children == [[1, 2, 3], [], [], []]
    left, right = binary_tree(children)
    assert left.tolist() == [1, -1, -1, -1]  # first child on the left
    assert right.tolist() == [-1, 2, 3, -1]  # each next sibling on the right of the previous


def _check_binary_tree(left, right, parent, nodes, root):
    """Every node of ``nodes`` is reached from ``root`` exactly once through left/right links."""
    seen, stack = [], [root]
    while stack:
        node = stack.pop()
        seen.append(node)
        for child in (left[node], right[node]):
            if child >= 0:
                assert parent[child] == node
                stack.append(int(child))
    assert sorted(seen) == sorted(nodes)
    assert parent[root] == -1


@pytest.mark.parametrize('n', [1, 2, 3, 7, 25])
def test_random_scores_give_a_binary_tree_over_all_nodes(n):
    rng = np.random.default_rng(n)
    scores = rng.random((n, n))
    root, children = max_score_tree(scores)
    # the same tree, grown naively: repeatedly the best (in tree, not in tree) link
    mean_to_others = [(scores[i].sum() - scores[i, i]) / max(n - 1, 1) for i in range(n)]
    expected_root = int(np.argmax(mean_to_others))
    expected, tree = [[] for _ in range(n)], [expected_root]
    while len(tree) < n:
        links = [(p, c) for p in tree for c in range(n) if c not in tree]
        p, c = max(links, key=lambda pc: scores[pc])
        expected[p].append(c)
        tree.append(c)
    assert root == expected_root and children == expected
    forest = build_forest([torch.from_numpy(scores)])
    assert forest.roots == [root]
    _check_binary_tree(forest.left.numpy(), forest.right.numpy(), forest.parent.numpy(), range(n),
                       root)
    assert sorted(torch.cat(forest.bottom_up).tolist()) == list(range(n))
    assert sorted(torch.cat(forest.top_down).tolist()) == list(range(n))


def test_forest_over_a_batch_keeps_images_apart():
    rng = np.random.default_rng(0)
    sizes = [4, 1, 6]
    forest = build_forest([torch.from_numpy(rng.random((s, s))) for s in sizes])
    assert len(forest) == 11
    left, right, parent = forest.left.numpy(), forest.right.numpy(), forest.parent.numpy()
    start = 0
    for size, root in zip(sizes, forest.roots):
        nodes = range(start, start + size)
        assert root in nodes
        _check_binary_tree(left, right, parent, nodes, root)
        start += size
    # levels: children before parents bottom-up, parents before children top-down
    height_of = {int(i): h for h, level in enumerate(forest.bottom_up) for i in level}
    depth_of = {int(i): d for d, level in enumerate(forest.top_down) for i in level}
    for node in range(11):
        if parent[node] >= 0:
            assert height_of[node] < height_of[int(parent[node])]
            assert depth_of[node] == depth_of[int(parent[node])] + 1


def _chain_forest():
    # image 0: 0 -> left 1 -> right 2 ; image 1: 3 alone
    scores0 = torch.tensor([[0.0, 0.9, 0.8], [0.1, 0.0, 0.1], [0.1, 0.1, 0.0]])
    return build_forest([scores0, torch.zeros(1, 1)])


def test_tree_lstms_follow_the_tree():
    torch.manual_seed(0)
    forest = _chain_forest()
    assert forest.left.tolist() == [1, -1, -1, -1] and forest.right.tolist() == [-1, 2, -1, -1]
    x = torch.randn(4, 5)
    up, down = BottomUpTreeLSTM(5, 3), TopDownTreeLSTM(5, 3)
    base_up, base_down = up(x, forest), down(x, forest)
    assert base_up.shape == base_down.shape == (4, 3)
    changed = x.clone()
    changed[2] += 1.0  # node 2: right child of 1, which is the left child of 0
    diff_up = (up(changed, forest) - base_up).abs().sum(1) > 0
    diff_down = (down(changed, forest) - base_down).abs().sum(1) > 0
    assert diff_up.tolist() == [True, True, True, False]  # node 2 and its binary ancestors
    assert diff_down.tolist() == [False, False, True, False]  # node 2 (a leaf) only

    # a root's top-down state is the LSTM cell applied from a zero state
    h, _ = down.cell(x[3:4], (torch.zeros(1, 3), torch.zeros(1, 3)))
    assert torch.allclose(base_down[3], h[0])
    both = BiTreeLSTM(5, 6)(x, forest)
    assert both.shape == (4, 6)


def test_bottom_up_cell_by_hand():
    torch.manual_seed(0)
    forest = _chain_forest()
    x = torch.randn(4, 2)
    up = BottomUpTreeLSTM(2, 1)
    with torch.no_grad():
        up.input_proj.weight.zero_()
        up.input_proj.bias.zero_()
        up.children_proj.weight.zero_()
    # all gates 0.5 and u = 0: every cell state stays 0, so h = 0.5 * tanh(0) = 0
    assert up(x, forest).abs().max() == 0
    with torch.no_grad():
        up.input_proj.bias.copy_(torch.tensor([0.0, 0.0, 1.0, 0.0, 0.0]))  # u = tanh(1)
    h = up(x, forest)[:, 0]
    sig, leaf_c = torch.sigmoid(torch.tensor(0.0)), 0.5 * torch.tanh(torch.tensor(1.0))
    leaf = sig * torch.tanh(leaf_c)
    c1 = leaf_c + sig * leaf_c  # node 1 has only a right child (node 2)
    assert torch.allclose(h[2], leaf) and torch.allclose(h[3], leaf)
    assert torch.allclose(h[1], sig * torch.tanh(c1))
    assert torch.allclose(h[0], sig * torch.tanh(leaf_c + sig * c1))


def test_tree_label_decoder_teacher_and_greedy():
    torch.manual_seed(0)
    forest = _chain_forest()
    decoder = TreeLabelDecoder(4, 8, nn.Embedding(6, 3))
    x = torch.randn(4, 4)
    teacher = torch.tensor([2, 0, 4, 1])
    logits, labels = decoder(x, forest, teacher)
    assert logits.shape == (4, 6) and labels.tolist() == [2, 0, 4, 1]
    logits, labels = decoder(x, forest, None)
    assert torch.equal(labels, logits[:, :5].argmax(1))  # never the background (last) class


def test_overlap_features_by_hand():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [5.0, 0.0, 15.0, 10.0], [50.0, 50.0, 60.0, 60.0]])
    feats = overlap_features(boxes, (100, 100))
    # boxes 0 and 1 share a 5 x 10 strip: intersection 50 (0.005 of the image), IoU 50 / 150
    iou = 50 / 150
    assert torch.allclose(feats[0], torch.tensor([1, 0.005, iou, 0.005, iou, 0.01]))
    assert torch.allclose(feats[1], feats[0])
    assert torch.allclose(feats[2], torch.tensor([0, 0, 0, 0, 0, 0.01]))
