"""VCTree's dynamic trees: construction from pair scores and tree-structured LSTMs.

Per image, a multi-way tree is grown from the ``(N, N)`` pair scores (root = the object with the
largest mean score to the others, then repeatedly the highest-scoring (parent in tree, child not
yet in tree) link, Prim-like), and turned into a binary tree (first child -> left child, next
sibling -> right child). The trees of a batch form a :class:`BinaryForest` over the concatenated
objects; the LSTMs below process it level by level, all images at once.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn

from .contracts import foreground_argmax


def max_score_tree(scores: np.ndarray) -> tuple[int, list[list[int]]]:
    """``(root, children)`` of the maximum-score tree of ``scores (N, N)`` (``scores[p, c]`` =
    score of ``c`` as a child of ``p``); ``children[p]`` lists ``p``'s children in the order they
    joined."""
    n = len(scores)
    if n == 0:
        raise ValueError('max_score_tree: no node')
    scores = np.asarray(scores, dtype=np.float64)
    off_diag = scores.sum(1) - np.diag(scores)
    root = int(np.argmax(off_diag / max(n - 1, 1)))
    children: list[list[int]] = [[] for _ in range(n)]
    in_tree = np.zeros(n, dtype=bool)
    in_tree[root] = True
    best = scores[root].copy()
    best_parent = np.full(n, root)
    for _ in range(n - 1):
        child = int(np.argmax(np.where(in_tree, -np.inf, best)))
        children[int(best_parent[child])].append(child)
        in_tree[child] = True
        better = ~in_tree & (scores[child] > best)
        best = np.where(better, scores[child], best)
        best_parent = np.where(better, child, best_parent)
    return root, children


def binary_tree(children: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Left-child right-sibling form of a multi-way tree: ``(left (N,), right (N,))`` int64, ``-1``
    where there is no such child."""
    n = len(children)
    left = np.full(n, -1, dtype=np.int64)
    right = np.full(n, -1, dtype=np.int64)
    for parent, kids in enumerate(children):
        if kids:
            left[parent] = kids[0]
            for a, b in zip(kids, kids[1:]):
                right[a] = b
    return left, right


@dataclass
class BinaryForest:
    """Binary trees over K concatenated objects: ``left``, ``right``, ``parent`` ``(K,)`` int64
    (``-1``: none), ``roots`` (one per image). ``bottom_up`` groups the nodes by height (leaves
    first) and ``top_down`` by depth (roots first), as lists of index tensors."""

    left: torch.Tensor
    right: torch.Tensor
    parent: torch.Tensor
    roots: list[int]
    bottom_up: list[torch.Tensor]
    top_down: list[torch.Tensor]

    def __len__(self) -> int:
        return len(self.left)


def _levels(values: np.ndarray, device: torch.device) -> list[torch.Tensor]:
    return [torch.from_numpy(np.flatnonzero(values == v)).to(device)
            for v in range(int(values.max()) + 1)]


def build_forest(score_maps: Sequence[torch.Tensor],
                 device: torch.device | None = None) -> BinaryForest:
    """One binary tree per ``(N_i, N_i)`` score map, indices offset to the concatenated objects."""
    lefts, rights, roots, offset = [], [], [], 0
    for scores in score_maps:
        root, children = max_score_tree(scores.detach().float().cpu().numpy())
        left, right = binary_tree(children)
        lefts.append(np.where(left >= 0, left + offset, -1))
        rights.append(np.where(right >= 0, right + offset, -1))
        roots.append(root + offset)
        offset += len(scores)
    left, right = np.concatenate(lefts), np.concatenate(rights)
    parent = np.full(offset, -1, dtype=np.int64)
    for child_of in (left, right):
        has = child_of >= 0
        parent[child_of[has]] = np.flatnonzero(has)
    depth = np.zeros(offset, dtype=np.int64)
    height = np.zeros(offset, dtype=np.int64)
    order = []  # parents before children
    stack = list(roots)
    while stack:
        node = stack.pop()
        order.append(node)
        for child in (left[node], right[node]):
            if child >= 0:
                depth[child] = depth[node] + 1
                stack.append(int(child))
    if len(order) != offset:
        raise RuntimeError(f'build_forest: the trees cover {len(order)} of {offset} nodes')
    for node in reversed(order):
        kids = [k for k in (left[node], right[node]) if k >= 0]
        height[node] = 1 + max(height[k] for k in kids) if kids else 0
    as_tensor = (lambda a: torch.from_numpy(a).to(device))
    return BinaryForest(left=as_tensor(left), right=as_tensor(right), parent=as_tensor(parent),
                        roots=roots, bottom_up=_levels(height, device),
                        top_down=_levels(depth, device))


def _with_none(index: torch.Tensor, none: int) -> torch.Tensor:
    """Replace ``-1`` ("no node") by ``none``, the row index of an all-zero state."""
    return torch.where(index >= 0, index, torch.full_like(index, none))


class BottomUpTreeLSTM(nn.Module):
    """Binary Tree-LSTM from the leaves to the root: a node's state comes from its input and the
    states of its left and right children (zero for a missing child), with one forget gate per
    child. ``(K, in_dim) -> (K, hidden_dim)``."""

    def __init__(self, in_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.hidden_dim = hidden_dim
        self.input_proj = nn.Linear(in_dim, 5 * hidden_dim)
        self.children_proj = nn.Linear(2 * hidden_dim, 5 * hidden_dim, bias=False)

    def forward(self, x: torch.Tensor, forest: BinaryForest) -> torch.Tensor:
        k = len(x)
        h = x.new_zeros((k + 1, self.hidden_dim))
        c = torch.zeros_like(h)
        left, right = _with_none(forest.left, k), _with_none(forest.right, k)
        for nodes in forest.bottom_up:
            lt, rt = left[nodes], right[nodes]
            gates = self.input_proj(x[nodes]) + self.children_proj(torch.cat([h[lt], h[rt]], 1))
            i, o, u, f_left, f_right = gates.chunk(5, 1)
            c_new = (torch.sigmoid(i) * torch.tanh(u) + torch.sigmoid(f_left) * c[lt]
                     + torch.sigmoid(f_right) * c[rt])
            h = h.index_copy(0, nodes, torch.sigmoid(o) * torch.tanh(c_new))
            c = c.index_copy(0, nodes, c_new)
        return h[:k]


class TopDownTreeLSTM(nn.Module):
    """LSTM from the root to the leaves: a node's previous state is its binary-tree parent's (zero
    for a root). ``(K, in_dim) -> (K, hidden_dim)``."""

    def __init__(self, in_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.hidden_dim = hidden_dim
        self.cell = nn.LSTMCell(in_dim, hidden_dim)

    def forward(self, x: torch.Tensor, forest: BinaryForest) -> torch.Tensor:
        k = len(x)
        h = x.new_zeros((k + 1, self.hidden_dim))
        c = torch.zeros_like(h)
        parent = _with_none(forest.parent, k)
        for nodes in forest.top_down:
            p = parent[nodes]
            h_new, c_new = self.cell(x[nodes], (h[p], c[p]))
            h = h.index_copy(0, nodes, h_new)
            c = c.index_copy(0, nodes, c_new)
        return h[:k]


class BiTreeLSTM(nn.Module):
    """Bottom-up and top-down tree LSTMs of ``out_dim / 2`` each, concatenated: ``(K, out_dim)``."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        if out_dim % 2:
            raise ValueError(f'BiTreeLSTM: out_dim must be even, got {out_dim}')
        self.up = BottomUpTreeLSTM(in_dim, out_dim // 2)
        self.down = TopDownTreeLSTM(in_dim, out_dim // 2)

    def forward(self, x: torch.Tensor, forest: BinaryForest) -> torch.Tensor:
        return torch.cat([self.up(x, forest), self.down(x, forest)], 1)


class TreeLabelDecoder(nn.Module):
    """Object classifier that walks the binary trees from the roots: a node reads ``[x;
    embedding(label of its binary-tree parent)]`` (background for a root) with its parent's LSTM
    state and outputs ``C + 1`` logits; the label passed on is the teacher's when given
    (training), else the most likely non-background class."""

    def __init__(self, input_dim: int, hidden_dim: int, embedding: nn.Embedding) -> None:
        super().__init__()
        self.embedding = embedding
        self.hidden_dim = hidden_dim
        self.cell = nn.LSTMCell(input_dim + embedding.embedding_dim, hidden_dim)
        self.out = nn.Linear(hidden_dim, embedding.num_embeddings)

    def forward(self, x: torch.Tensor, forest: BinaryForest,
                teacher: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """``x (K, input_dim)`` -> logits ``(K, C + 1)`` and labels ``(K,)``."""
        k = len(x)
        background = self.embedding.num_embeddings - 1
        h = x.new_zeros((k + 1, self.hidden_dim))
        c = torch.zeros_like(h)
        logits = x.new_zeros((k, self.embedding.num_embeddings))
        labels = torch.full((k + 1,), background, dtype=torch.long, device=x.device)
        parent = _with_none(forest.parent, k)
        for nodes in forest.top_down:
            p = parent[nodes]
            inp = torch.cat([x[nodes], self.embedding(labels[p])], 1)
            h_new, c_new = self.cell(inp, (h[p], c[p]))
            node_logits = self.out(h_new)
            logits = logits.index_copy(0, nodes, node_logits)
            labels[nodes] = (teacher[nodes] if teacher is not None
                             else foreground_argmax(node_logits))
            h = h.index_copy(0, nodes, h_new)
            c = c.index_copy(0, nodes, c_new)
        return logits, labels[:k]
