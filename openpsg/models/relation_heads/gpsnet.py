"""GPSNet: direction-aware message passing and a node-specific predicate classifier.

Lin et al., "GPS-Net: Graph Property Sensing Network for Scene Graph Generation", CVPR 2020, as
configured in OpenPSG (one round of message passing, no frequency term).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...registry import MODELS
from .contracts import RelationInputs, RelationOutputs
from .embeddings import GLOVE_FILE, PositionEmbedding, class_embedding, expected_embedding
from .head import RelationHead


class DirectionAwareMessagePassing(nn.Module):
    """One round of direction-aware message passing over the pairs of each image.

    For every given pair ``(s, o)`` with union feature ``u``: ``a = w . (Ws n_s * Wo n_o * Wu u)``.
    The ``(N, N)`` map holding ``a`` at the given pairs and 0 elsewhere goes through a sigmoid (so
    pairs that were not given weigh ``sigmoid(0) = 1/2``, as in OpenPSG), its diagonal is zeroed and
    its rows are normalised. The map and its transpose each aggregate ``W_t3 n`` (``dim -> dim/2``);
    the two results, concatenated, pass an MLP (``dim -> dim/4``, LayerNorm, ReLU, ``-> dim``) and
    are added to the nodes: ``n <- ReLU(n + context)``.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.ws = nn.Linear(dim, dim)
        self.wo = nn.Linear(dim, dim)
        self.wu = nn.Linear(dim, dim)
        self.w = nn.Linear(dim, 1)
        self.project = nn.Linear(dim, dim // 2)
        self.transform = nn.Sequential(nn.Linear(2 * (dim // 2), dim // 4), nn.LayerNorm(dim // 4),
                                       nn.ReLU(inplace=True), nn.Linear(dim // 4, dim))

    def attention(self, nodes: torch.Tensor, union: torch.Tensor,
                  pairs: torch.Tensor) -> torch.Tensor:
        """Row-normalised ``(N, N)`` attention of one image (``pairs`` local to it)."""
        n = len(nodes)
        gated = self.ws(nodes[pairs[:, 0]]) * self.wo(nodes[pairs[:, 1]]) * self.wu(union)
        coeff = self.w(gated)[:, 0]
        logits = nodes.new_zeros((n, n)).index_put((pairs[:, 0], pairs[:, 1]), coeff)
        att = torch.sigmoid(logits) * (1 - torch.eye(n, device=nodes.device, dtype=nodes.dtype))
        return att / att.sum(1, keepdim=True).clamp(min=1e-12)

    def forward(self, x: RelationInputs, nodes: torch.Tensor) -> torch.Tensor:
        unions = x.union_feats.split([len(p) for p in x.pairs])
        projected = self.project(nodes)
        context = []
        for node, proj, union, pairs in zip(x.split_objects(nodes), x.split_objects(projected),
                                            unions, x.pairs):
            att = self.attention(node, union, pairs)
            context.append(torch.cat([att @ proj, att.t() @ proj], 1))
        return F.relu(nodes + self.transform(torch.cat(context)))


class NodeSpecificPredicateClassifier(nn.Module):
    """``t1 = P1 n_s``, ``t2 = P2 n_o``, ``t3 = P3 u``; ``t4 = ReLU(t1 + t2) - (t1 - t2)^2``;
    logits ``= out(ReLU(t4 + t3) - (t4 - t3)^2)``."""

    def __init__(self, dim: int, num_outputs: int) -> None:
        super().__init__()
        self.subj = nn.Linear(dim, dim)
        self.obj = nn.Linear(dim, dim)
        self.union = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, num_outputs)

    @staticmethod
    def fuse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return F.relu(a + b) - (a - b) ** 2

    def forward(self, nodes: torch.Tensor, union: torch.Tensor,
                pairs: torch.Tensor) -> torch.Tensor:
        pair = self.fuse(self.subj(nodes[pairs[:, 0]]), self.obj(nodes[pairs[:, 1]]))
        return self.out(self.fuse(pair, self.union(union)))


@MODELS.register()
class GPSHead(RelationHead):
    """GPSNet relation head.

    Nodes: ``ReLU(Linear([roi feature; label embedding; position embedding]))`` (``roi_dim``),
    refined by :class:`DirectionAwareMessagePassing`; object logits ``Linear(roi_dim -> C + 1)``;
    predicates from :class:`NodeSpecificPredicateClassifier` over the refined nodes and the union
    features. The defaults are OpenPSG's settings.

    Args:
        embed_dim: class-name embedding size; pos_dim: box position embedding size.
        class_names: the C class names of the word embeddings (default: the PSG classes).
        glove_file: GloVe text file of the class-name embeddings (random vectors if missing).
        **kwargs: the :class:`~.head.RelationHead` options (``roi_dim`` is also the node size).
    """

    def __init__(self, embed_dim: int = 200, pos_dim: int = 128,
                 class_names: Sequence[str] | None = None, glove_file: str | None = GLOVE_FILE,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        d = self.roi_dim
        self.obj_embed = class_embedding(class_names, self.num_classes, embed_dim, glove_file)
        self.pos_embed = PositionEmbedding(pos_dim)
        self.node_proj = nn.Sequential(nn.Linear(d + embed_dim + pos_dim, d),
                                       nn.ReLU(inplace=True))
        self.message_passing = DirectionAwareMessagePassing(d)
        self.obj_classifier = nn.Linear(d, self.num_classes + 1)
        self.rel_classifier = NodeSpecificPredicateClassifier(d, self.num_predicates + 1)

    def context(self, x: RelationInputs) -> RelationOutputs:
        label_embed = expected_embedding(self.obj_embed, x.label_dists)
        nodes = self.node_proj(torch.cat([x.obj_feats, label_embed,
                                          self.pos_embed(x.box_features())], 1))
        nodes = self.message_passing(x, nodes)
        obj_logits, obj_labels = x.object_outputs(self.obj_classifier(nodes))
        rel_logits = self.rel_classifier(nodes, x.union_feats, x.global_pairs)
        return RelationOutputs(obj_logits=obj_logits, obj_labels=obj_labels, rel_logits=rel_logits)
