"""MOTIFS: bidirectional LSTM object and edge contexts over objects ordered left to right.

Zellers et al., "Neural Motifs: Scene Graph Parsing with Global Context", CVPR 2018, as configured
in OpenPSG: objects of an image are ordered by box centre x, *descending* (neural-motifs'
"leftright" order, i.e. right to left); a bi-LSTM gives object contexts, a highway-LSTM decoder
predicts object labels (except in PredCls), a second bi-LSTM gives edge contexts and
:class:`~.context.ContextPairClassifier` scores the pairs.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_sequence, pad_packed_sequence, pad_sequence

from ...registry import MODELS
from .context import ContextHead, ContextPairClassifier
from .contracts import RelationInputs, RelationOutputs, foreground_argmax
from .embeddings import expected_embedding


def left_right_orders(x: RelationInputs) -> list[torch.Tensor]:
    """Per image, the global indices of its objects sorted by box centre x, descending."""
    orders = []
    for boxes, offset in zip(x.boxes, x.offsets):
        centre = (boxes[:, 0] + boxes[:, 2]) / 2
        orders.append(torch.sort(centre, descending=True, stable=True).indices + offset)
    return orders


def _restore(flat: torch.Tensor, orders: Sequence[torch.Tensor]) -> torch.Tensor:
    """Rows of ``flat`` listed in ``cat(orders)`` order, put back in object order."""
    inverse = torch.empty_like(torch.cat(orders))
    inverse[torch.cat(orders)] = torch.arange(len(inverse), device=inverse.device)
    return flat[inverse]


def run_ordered_lstm(lstm: nn.LSTM, x: torch.Tensor,
                     orders: Sequence[torch.Tensor]) -> torch.Tensor:
    """Run ``lstm`` over each image's objects in ``orders``; ``(K, out)`` in object order."""
    packed = pack_sequence([x[idx] for idx in orders], enforce_sorted=False)
    out, lengths = pad_packed_sequence(lstm(packed)[0], batch_first=True)
    flat = torch.cat([out[i, :n] for i, n in enumerate(lengths.tolist())])
    return _restore(flat, orders)


class HighwayLSTMCell(nn.Module):
    """LSTM cell whose output is mixed with a projection of its input by a highway gate, with a
    recurrent dropout mask on the output (fixed over the steps of a sequence)."""

    def __init__(self, input_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.hidden_dim = hidden_dim
        self.input_proj = nn.Linear(input_dim, 6 * hidden_dim)
        self.state_proj = nn.Linear(hidden_dim, 5 * hidden_dim)

    def forward(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor,
                dropout_mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        px = self.input_proj(x)
        gates = px[:, :5 * self.hidden_dim] + self.state_proj(h)
        i, f, g, o, r = gates.chunk(5, 1)
        c = torch.sigmoid(i) * torch.tanh(g) + torch.sigmoid(f) * c
        h = torch.sigmoid(o) * torch.tanh(c)
        r = torch.sigmoid(r)
        h = r * h + (1 - r) * px[:, 5 * self.hidden_dim:]
        if dropout_mask is not None:
            h = h * dropout_mask
        return h, c


class LabelDecoder(nn.Module):
    """Greedy sequential object classifier: step ``t`` reads ``[x_t; embedding(label_{t-1})]``
    (background for the first step) and outputs ``C + 1`` logits; the label passed on is the
    teacher's when given (training), else the most likely non-background class."""

    def __init__(self, input_dim: int, hidden_dim: int, embedding: nn.Embedding,
                 dropout: float) -> None:
        super().__init__()
        self.embedding = embedding
        self.cell = HighwayLSTMCell(input_dim + embedding.embedding_dim, hidden_dim)
        self.out = nn.Linear(hidden_dim, embedding.num_embeddings)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, orders: Sequence[torch.Tensor],
                teacher: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """``x (K, input_dim)`` -> logits ``(K, C + 1)`` and labels ``(K,)`` in object order."""
        seqs = pad_sequence([x[idx] for idx in orders], batch_first=True)
        lengths = [len(idx) for idx in orders]
        teach = None
        if teacher is not None:
            teach = pad_sequence([teacher[idx] for idx in orders], batch_first=True)
        b, steps = seqs.shape[:2]
        h = seqs.new_zeros((b, self.cell.hidden_dim))
        c = torch.zeros_like(h)
        mask = None
        if self.training and self.dropout > 0:
            mask = F.dropout(torch.ones_like(h), self.dropout, training=True)
        background = self.embedding.num_embeddings - 1
        prev = torch.full((b,), background, dtype=torch.long, device=x.device)
        logits, labels = [], []
        for t in range(steps):
            h, c = self.cell(torch.cat([seqs[:, t], self.embedding(prev)], 1), h, c, mask)
            step_logits = self.out(h)
            prev = teach[:, t] if teach is not None else foreground_argmax(step_logits)
            logits.append(step_logits)
            labels.append(prev)
        logits_bt, labels_bt = torch.stack(logits, 1), torch.stack(labels, 1)
        flat_logits = torch.cat([logits_bt[i, :n] for i, n in enumerate(lengths)])
        flat_labels = torch.cat([labels_bt[i, :n] for i, n in enumerate(lengths)])
        return _restore(flat_logits, orders), _restore(flat_labels, orders)


@MODELS.register()
class MotifHead(ContextHead):
    """MOTIFS relation head.

    Object context: bi-LSTM over ``[roi feature; label embedding; position embedding]`` (hidden
    ``hidden_dim`` per direction) -> Linear -> ``hidden_dim``. Object labels: PredCls keeps the
    ground truth; otherwise :class:`LabelDecoder` over ``[object input; object context]``, teacher
    forced in training with :attr:`RelationInputs.teacher_labels` (in SGDet the segmenter's labels,
    not the assigned targets, as OpenPSG). Edge context: bi-LSTM over ``[embedding of the object
    label; roi feature; object context]`` -> Linear -> ``hidden_dim``; predicates from
    :class:`~.context.ContextPairClassifier`.

    Args:
        dropout_rate: the label decoder's recurrent dropout (and between stacked LSTM layers).
        obj_layers / edge_layers: layers of the object / edge context LSTMs.
        **kwargs: the :class:`~.context.ContextHead` options (sizes, word embeddings) and the
            :class:`~.head.RelationHead` ones.
    """

    def __init__(self, dropout_rate: float = 0.2, obj_layers: int = 1, edge_layers: int = 1,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        d, h, e, pos_dim = self.roi_dim, self.hidden_dim, self.embed_dim, self.pos_dim
        obj_in = d + e + pos_dim
        self.obj_ctx_rnn = nn.LSTM(obj_in, h, num_layers=obj_layers, bidirectional=True,
                                   dropout=dropout_rate if obj_layers > 1 else 0.0)
        self.obj_ctx_proj = nn.Linear(2 * h, h)
        self.decoder = None if self.predcls else LabelDecoder(obj_in + h, h,
                                                              self.class_embedding(), dropout_rate)
        self.edge_ctx_rnn = nn.LSTM(e + d + h, h, num_layers=edge_layers, bidirectional=True,
                                    dropout=dropout_rate if edge_layers > 1 else 0.0)
        self.edge_ctx_proj = nn.Linear(2 * h, h)
        self.classifier = ContextPairClassifier(h, d, self.pooling_dim, self.num_predicates + 1)

    def context(self, x: RelationInputs) -> RelationOutputs:
        orders = left_right_orders(x)
        obj_in = torch.cat([x.obj_feats, expected_embedding(self.obj_embed, x.label_dists),
                            self.pos_embed(x.box_features())], 1)
        obj_ctx = self.obj_ctx_proj(run_ordered_lstm(self.obj_ctx_rnn, obj_in, orders))
        if self.decoder is None:  # PredCls: the labels are given
            obj_logits, obj_labels = x.object_outputs()
        else:
            obj_logits, obj_labels = self.decoder(torch.cat([obj_in, obj_ctx], 1), orders,
                                                  x.teacher_labels)
        edge_in = torch.cat([self.edge_embed(obj_labels), x.obj_feats, obj_ctx], 1)
        edge_ctx = self.edge_ctx_proj(run_ordered_lstm(self.edge_ctx_rnn, edge_in, orders))
        rel_logits = self.classifier(edge_ctx, x.union_feats, x.global_pairs)
        return RelationOutputs(obj_logits=obj_logits, obj_labels=obj_labels, rel_logits=rel_logits)
