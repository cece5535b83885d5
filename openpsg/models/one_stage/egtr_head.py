"""EGTR's relation extraction head: a scene graph read from the decoder's self-attention.

Shapes: ``B`` images, ``Q`` object queries, ``L`` decoder layers, ``d`` model width, ``P``
predicates. Inputs are, for every decoder layer ``l``, the projected query ``q^l`` and key ``k^l``
``(B, Q, d)`` of its self-attention (computed from the layer input plus the query position
embedding, all heads concatenated; *unscaled*, i.e. not multiplied by ``1/sqrt(d / heads)`` - EGTR
reads Hugging Face's pre-scaled query and multiplies it back by ``sqrt(d / heads)``, which gives
the same tensor), and the last decoder output ``h (B, Q, d)``.

For subject ``i`` and object ``j``:

1. ``L + 1`` pair features of ``2d``: ``[proj_q[l](q_i^l) ; proj_k[l](k_j^l)]`` for each layer and
   ``[final_sub_proj(h_i) ; final_obj_proj(h_j)]``;
2. a gate per entry ``g = sigmoid(rel_predictor_gate(feature))`` and the gated **sum** over the
   ``L + 1`` entries ``z_ij = sum_l g_ijl * feature_ijl`` ``(2d,)``;
3. predicate logits ``rel_predictor(z_ij)`` ``(P,)`` and a connectivity logit
   ``connectivity_layer(z_ij)`` (both 3-layer MLPs, hidden width ``d``).

The ``(B, Q, Q, L + 1, 2d)`` stack of pair features is never built: the gate is linear in the
subject and object halves, and the weighted sum splits into a subject and an object part
(``einsum`` over ``l``), so memory is ``(B, Q, Q, 2d)`` - EGTR materialises the stack (573 MB per
image at ``Q = 200``). Parameter names are EGTR's.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .detr import MLP

QK = tuple[torch.Tensor, torch.Tensor]


class RelationExtractionHead(nn.Module):
    """Pair features, gated sum, predicate and connectivity heads (module docstring).

    Linear layers start as EGTR's (Hugging Face ``init_std``): weights ``N(0, 0.02)``, biases 0.
    """

    def __init__(self, d_model: int, num_layers: int, num_predicates: int,
                 init_std: float = 0.02) -> None:
        super().__init__()
        self.proj_q = nn.ModuleList(nn.Linear(d_model, d_model) for _ in range(num_layers))
        self.proj_k = nn.ModuleList(nn.Linear(d_model, d_model) for _ in range(num_layers))
        self.final_sub_proj = nn.Linear(d_model, d_model)
        self.final_obj_proj = nn.Linear(d_model, d_model)
        self.rel_predictor_gate = nn.Linear(2 * d_model, 1)
        self.rel_predictor = MLP(2 * d_model, d_model, num_predicates, 3)
        self.connectivity_layer = MLP(2 * d_model, d_model, 1, 3)
        self.d_model = d_model
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=init_std)
                nn.init.zeros_(module.bias)

    def pair_sources(self, self_attn_qk: Sequence[QK], hidden: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """Subject and object halves of the pair features, each ``(B, Q, L + 1, d)``: per layer
        the projected self-attention query / key, last the projected decoder output."""
        if len(self_attn_qk) != len(self.proj_q):
            raise ValueError(f'RelationExtractionHead: built for {len(self.proj_q)} decoder layers, '
                             f'got the self-attention of {len(self_attn_qk)}')
        subjects = [proj(q) for proj, (q, _) in zip(self.proj_q, self_attn_qk)]
        objects = [proj(k) for proj, (_, k) in zip(self.proj_k, self_attn_qk)]
        subjects.append(self.final_sub_proj(hidden))
        objects.append(self.final_obj_proj(hidden))
        return torch.stack(subjects, 2), torch.stack(objects, 2)

    def gated_sum(self, subjects: torch.Tensor, objects: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(z (B, Q, Q, 2d), gates (B, Q, Q, L + 1))`` from the halves of :meth:`pair_sources`:
        ``z_ij = sum_l gates_ijl * [subjects_il ; objects_jl]``."""
        weight, bias = self.rel_predictor_gate.weight[0], self.rel_predictor_gate.bias
        d = self.d_model
        gate_logits = ((subjects @ weight[:d])[:, :, None] + (objects @ weight[d:])[:, None]
                       + bias)
        gates = gate_logits.sigmoid()
        z = torch.cat([torch.einsum('bijl,bild->bijd', gates, subjects),
                       torch.einsum('bijl,bjld->bijd', gates, objects)], -1)
        return z, gates

    def forward(self, self_attn_qk: Sequence[QK], hidden: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(predicate logits (B, Q, Q, P), connectivity logits (B, Q, Q), gates (B, Q, Q,
        L + 1))`` from every layer's ``(q, k)`` ``(B, Q, d)`` and the last decoder output
        ``hidden (B, Q, d)``."""
        z, gates = self.gated_sum(*self.pair_sources(self_attn_qk, hidden))
        return self.rel_predictor(z), self.connectivity_layer(z)[..., 0], gates
