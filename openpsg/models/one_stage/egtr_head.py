"""EGTR's relation extraction head: a scene graph read from the decoder's self-attention.

Shapes: ``B`` images, ``Q`` object queries, ``L`` decoder layers, ``d`` model width, ``P``
predicates. Inputs are, for every decoder layer ``l``, the projected query ``q^l`` and key ``k^l``
``(B, Q, d)`` of its self-attention (computed from the layer input plus the query position
embedding, all heads concatenated; *unscaled*, i.e. not multiplied by ``1/sqrt(d / heads)`` - EGTR
reads Hugging Face's pre-scaled query and multiplies it back by ``sqrt(d / heads)``, which gives
the same tensor), and the last decoder output ``h (B, Q, d)``.

For subject ``i`` and object ``j``:

1. ``L + 1`` pair features of ``2d``: ``[proj_q[l](q_i^l) ; proj_k[l](k_j^l)]`` for each layer and
   ``[final_sub_proj(h_i) ; final_obj_proj(h_j)]`` (:func:`pair_sources`);
2. a gate per entry ``g = sigmoid(rel_predictor_gate(feature))`` and the gated **sum** over the
   ``L + 1`` entries ``z_ij = sum_l g_ijl * feature_ijl`` ``(2d,)`` (:func:`gated_sum`);
3. predicate logits ``rel_predictor(z_ij)`` ``(P,)`` and a connectivity logit
   ``connectivity_layer(z_ij)`` (both 3-layer MLPs, hidden width ``d``).

The ``(B, Q, Q, L + 1, 2d)`` stack of pair features is never built: the gate is linear in the
subject and object halves, and the weighted sum splits into a subject and an object part
(``einsum`` over ``l``), so memory is ``(B, Q, Q, 2d)`` - EGTR materialises the stack (573 MB per
image at ``Q = 200``).

The modules (:func:`relation_modules`) carry EGTR's names, and the model that owns them keeps those
names at its top level (``proj_q.0.weight``, ``rel_predictor.layers.2.bias`` ...), so EGTR's
weights load as they are.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .detr_base import MLP

QK = tuple[torch.Tensor, torch.Tensor]


def relation_modules(d_model: int, num_layers: int, num_predicates: int,
                     init_std: float = 0.02) -> dict[str, nn.Module]:
    """EGTR's head modules by name: ``proj_q``, ``proj_k`` (``num_layers`` linears each),
    ``final_sub_proj``, ``final_obj_proj``, ``rel_predictor_gate`` (``2d -> 1``),
    ``rel_predictor`` (MLP ``2d -> d -> d -> P``), ``connectivity_layer`` (MLP ``2d -> d -> d ->
    1``). Linear layers start as EGTR's (Hugging Face ``init_std``): weights ``N(0, 0.02)``,
    biases 0."""
    modules = {
        'proj_q': nn.ModuleList(nn.Linear(d_model, d_model) for _ in range(num_layers)),
        'proj_k': nn.ModuleList(nn.Linear(d_model, d_model) for _ in range(num_layers)),
        'final_sub_proj': nn.Linear(d_model, d_model),
        'final_obj_proj': nn.Linear(d_model, d_model),
        'rel_predictor_gate': nn.Linear(2 * d_model, 1),
        'rel_predictor': MLP(2 * d_model, d_model, num_predicates, 3),
        'connectivity_layer': MLP(2 * d_model, d_model, 1, 3),
    }
    for module in modules.values():
        for layer in module.modules():
            if isinstance(layer, nn.Linear):
                nn.init.normal_(layer.weight, std=init_std)
                nn.init.zeros_(layer.bias)
    return modules


def pair_sources(proj_q: nn.ModuleList, proj_k: nn.ModuleList, final_sub_proj: nn.Module,
                 final_obj_proj: nn.Module, self_attn_qk: Sequence[QK], hidden: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Subject and object halves of the pair features, each ``(B, Q, L + 1, d)``: per layer the
    projected self-attention query / key, last the projected decoder output ``hidden (B, Q,
    d)``."""
    if len(self_attn_qk) != len(proj_q):
        raise ValueError(f'EGTR relation head: built for {len(proj_q)} decoder layers, got the '
                         f'self-attention of {len(self_attn_qk)}')
    subjects = [proj(q) for proj, (q, _) in zip(proj_q, self_attn_qk)]
    objects = [proj(k) for proj, (_, k) in zip(proj_k, self_attn_qk)]
    subjects.append(final_sub_proj(hidden))
    objects.append(final_obj_proj(hidden))
    return torch.stack(subjects, 2), torch.stack(objects, 2)


def gated_sum(gate: nn.Linear, subjects: torch.Tensor, objects: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(z (B, Q, Q, 2d), gates (B, Q, Q, L + 1))`` from the halves of :func:`pair_sources`:
    ``gates_ijl = sigmoid(gate([subjects_il ; objects_jl]))``,
    ``z_ij = sum_l gates_ijl * [subjects_il ; objects_jl]``."""
    d = subjects.shape[-1]
    weight = gate.weight[0]
    gates = ((subjects @ weight[:d])[:, :, None] + (objects @ weight[d:])[:, None]
             + gate.bias).sigmoid()
    z = torch.cat([torch.einsum('bijl,bild->bijd', gates, subjects),
                   torch.einsum('bijl,bjld->bijd', gates, objects)], -1)
    return z, gates
