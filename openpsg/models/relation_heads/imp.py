"""IMP: iterative message passing between object (node) and pair (edge) GRU states.

Xu et al., "Scene Graph Generation by Iterative Message Passing", CVPR 2017, as configured in
OpenPSG: node and edge states live in two GRU cells; each iteration first updates every edge from
its gated subject and object states, then every node from the gated states of its outgoing and
incoming edges.
"""
from __future__ import annotations

import torch
from torch import nn

from ...registry import MODELS
from .contracts import RelationInputs, RelationOutputs
from .head import RelationHead


class _Gate(nn.Sequential):
    """``sigmoid(Linear([a; b]))``: a scalar weight ``(R, 1)`` per row of two ``(R, d)`` inputs."""

    def __init__(self, dim: int) -> None:
        super().__init__(nn.Linear(2 * dim, 1), nn.Sigmoid())

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(torch.cat([a, b], 1))


@MODELS.register()
class IMPHead(RelationHead):
    """IMP relation head.

    ``obj_unary`` (roi_dim -> hidden) and ``edge_unary`` (roi_dim -> hidden, ReLU) project the
    object and union features; the initial states are the GRU cells applied to them from a zero
    state. Each of ``num_iter`` rounds computes (``s``/``o``: subject/object node state, ``e``:
    edge state)::

        edge message  = g1(s, e) * s + g2(o, e) * o
        node message  = sum over out-edges g3(s, e) * e + sum over in-edges g4(o, e) * e

    with sigmoid gates ``g`` and updates both GRUs from the previous states. ``obj_fc`` (hidden ->
    C + 1) and ``rel_fc`` (hidden -> P + 1) classify the final states. Linear layers keep PyTorch's
    Kaiming-uniform initialisation.

    Args:
        hidden_dim: size of the node and edge states.
        num_iter: message-passing rounds.
        **kwargs: the :class:`~.head.RelationHead` options.
    """

    def __init__(self, hidden_dim: int = 512, num_iter: int = 2, **kwargs) -> None:
        super().__init__(**kwargs)
        d, h = self.roi_dim, hidden_dim
        self.num_iter = num_iter
        self.obj_unary = nn.Linear(d, h)
        self.edge_unary = nn.Sequential(nn.Linear(d, h), nn.ReLU(inplace=True))
        self.node_gru = nn.GRUCell(h, h)
        self.edge_gru = nn.GRUCell(h, h)
        self.sub_vert_gate = _Gate(h)
        self.obj_vert_gate = _Gate(h)
        self.out_edge_gate = _Gate(h)
        self.in_edge_gate = _Gate(h)
        self.obj_fc = nn.Linear(h, self.num_classes + 1)
        self.rel_fc = nn.Linear(h, self.num_predicates + 1)

    def context(self, x: RelationInputs) -> RelationOutputs:
        pairs = x.global_pairs
        sub, obj = pairs[:, 0], pairs[:, 1]
        nodes = self.obj_unary(x.obj_feats)
        edges = self.edge_unary(x.union_feats)
        node = self.node_gru(nodes)
        edge = self.edge_gru(edges)
        for _ in range(self.num_iter):
            s, o = node[sub], node[obj]
            edge_msg = self.sub_vert_gate(s, edge) * s + self.obj_vert_gate(o, edge) * o
            node_msg = torch.zeros_like(node)
            node_msg = node_msg.index_add(0, sub, self.out_edge_gate(s, edge) * edge)
            node_msg = node_msg.index_add(0, obj, self.in_edge_gate(o, edge) * edge)
            edge = self.edge_gru(edge_msg, edge)
            node = self.node_gru(node_msg, node)
        obj_logits, obj_labels = x.object_outputs(self.obj_fc(node))
        return RelationOutputs(obj_logits=obj_logits, obj_labels=obj_labels,
                               rel_logits=self.rel_fc(edge))
