"""DETR's panoptic mask branch: per-query attention maps over a memory, refined into mask logits
at stride 4 by a small FPN-like conv head on the backbone's C4/C3/C2 maps.

The contract, for any transformer that wants per-query masks: the *queries* are a flat selection
``(K, d)`` of decoder outputs with ``batch_idx (K,)`` naming the image of each, so a model predicts
masks for all ``B * Q`` queries or only for a subset (the matched queries while training, the kept
ones at inference); the *features* are a :class:`MaskFeatures` - the memory map the queries attend
to, its padding, the projected backbone map of the same size and the C4/C3/C2 maps. DETR's
transformer provides them with :meth:`~.detr_base.TransformerOutputs.mask_features`; a multi-scale
(deformable) transformer provides one level of its memory and that level's projected input
(:func:`~.deformable_mask_features.deformable_mask_features`). Every
query is processed independently (GroupNorm normalises per sample), so a subset gets exactly the
masks it would get within the full set.

A model owns the two modules of a branch under DETR's names (``bbox_attention``, ``mask_head``,
or PSGTR's ``sub_``/``obj_`` pairs), built by :func:`build_mask_branch`, and calls
:func:`predict_masks`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class MaskFeatures:
    """What the mask branch reads for a batch.

    ``memory (B, d, h, w)``: the map the queries attend to (DETR: the encoder output); ``mask
    (B, h, w)``: its padding, True on padding; ``src (B, d, h, w)``: the projected backbone map of
    the same size, the conv head's input beside the attention maps; ``fpns``: the backbone maps C4,
    C3, C2 ``(B, C_i, H_i, W_i)`` (strides 16, 8, 4) added on the way to stride 4.
    """

    memory: torch.Tensor
    mask: torch.Tensor | None
    src: torch.Tensor
    fpns: list[torch.Tensor]

    @classmethod
    def at_level(cls, memory: torch.Tensor, mask: torch.Tensor | None, src: torch.Tensor,
                 features: Sequence[torch.Tensor]) -> MaskFeatures:
        """``memory``, ``mask`` and ``src`` of one level and the C4, C3, C2 of the backbone maps
        ``features`` C2..C5."""
        return cls(memory, mask, src, [features[2], features[1], features[0]])


class MHAttentionMap(nn.Module):
    """Multi-head attention weights (no values) of each query over the memory's pixels.

    The softmax runs jointly over heads and pixels, as in DETR. ``forward(queries (K, d),
    memory (B, d, h, w), mask (B, h, w) True on padding, batch_idx (K,))`` -> ``(K, num_heads, h, w)``.
    """

    def __init__(self, query_dim: int, hidden_dim: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if hidden_dim % num_heads:
            raise ValueError(f'hidden_dim ({hidden_dim}) must be divisible by num_heads ({num_heads})')
        self.num_heads = num_heads
        self.hidden_dim = hidden_dim
        self.dropout = nn.Dropout(dropout)
        self.q_linear = nn.Linear(query_dim, hidden_dim)
        self.k_linear = nn.Linear(query_dim, hidden_dim)
        for linear in (self.q_linear, self.k_linear):
            nn.init.xavier_uniform_(linear.weight)
            nn.init.zeros_(linear.bias)
        self.normalize_fact = float(hidden_dim / num_heads) ** -0.5

    def forward(self, queries: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor | None,
                batch_idx: torch.Tensor) -> torch.Tensor:
        head_dim = self.hidden_dim // self.num_heads
        q = self.q_linear(queries).view(-1, self.num_heads, head_dim) * self.normalize_fact
        k = F.conv2d(memory, self.k_linear.weight[:, :, None, None], self.k_linear.bias)
        k = k.view(k.shape[0], self.num_heads, head_dim, *k.shape[-2:])[batch_idx]
        weights = torch.einsum('knc,knchw->knhw', q, k)
        if mask is not None:
            weights = weights.masked_fill(mask[batch_idx][:, None], float('-inf'))
        weights = F.softmax(weights.flatten(1), dim=-1).view_as(weights)
        return self.dropout(weights)


class MaskHeadSmallConv(nn.Module):
    """Five 3x3 conv + GroupNorm + ReLU stages with FPN-style additions of C4, C3, C2, then a 3x3
    conv to one channel.

    ``dim`` = d + num_heads (the projected C5 concatenated with the attention maps); stage widths are
    ``dim, d/2, d/4, d/8, d/16`` (at least ``num_groups`` each); ``fpn_dims`` are the channels of C4,
    C3, C2. ``forward(src (B, d, h, w), attention (K, num_heads, h, w), fpns [C4, C3, C2],
    batch_idx (K,))`` -> mask logits ``(K, H2, W2)`` at the size of C2 (stride 4).
    """

    def __init__(self, dim: int, fpn_dims: list[int], context_dim: int, num_groups: int = 8) -> None:
        super().__init__()
        widths = [dim] + [max(context_dim // 2 ** i, num_groups) for i in range(1, 5)]
        bad = [w for w in widths if w % num_groups]
        if bad:
            raise ValueError(f'mask head widths {widths} must be divisible by num_groups={num_groups}')
        self.lay1 = nn.Conv2d(dim, dim, 3, padding=1)
        self.gn1 = nn.GroupNorm(num_groups, dim)
        self.lay2 = nn.Conv2d(dim, widths[1], 3, padding=1)
        self.gn2 = nn.GroupNorm(num_groups, widths[1])
        self.lay3 = nn.Conv2d(widths[1], widths[2], 3, padding=1)
        self.gn3 = nn.GroupNorm(num_groups, widths[2])
        self.lay4 = nn.Conv2d(widths[2], widths[3], 3, padding=1)
        self.gn4 = nn.GroupNorm(num_groups, widths[3])
        self.lay5 = nn.Conv2d(widths[3], widths[4], 3, padding=1)
        self.gn5 = nn.GroupNorm(num_groups, widths[4])
        self.out_lay = nn.Conv2d(widths[4], 1, 3, padding=1)
        self.adapter1 = nn.Conv2d(fpn_dims[0], widths[1], 1)
        self.adapter2 = nn.Conv2d(fpn_dims[1], widths[2], 1)
        self.adapter3 = nn.Conv2d(fpn_dims[2], widths[3], 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, a=1)
                nn.init.zeros_(m.bias)

    def forward(self, src: torch.Tensor, attention: torch.Tensor, fpns: list[torch.Tensor],
                batch_idx: torch.Tensor) -> torch.Tensor:
        x = torch.cat([src[batch_idx], attention], 1)
        x = F.relu(self.gn1(self.lay1(x)))
        x = F.relu(self.gn2(self.lay2(x)))
        stages = ((self.adapter1, self.lay3, self.gn3), (self.adapter2, self.lay4, self.gn4),
                  (self.adapter3, self.lay5, self.gn5))
        for (adapter, conv, norm), fpn in zip(stages, fpns):
            lateral = adapter(fpn)[batch_idx]
            x = lateral + F.interpolate(x, size=lateral.shape[-2:], mode='nearest')
            x = F.relu(norm(conv(x)))
        return self.out_lay(x)[:, 0]


def build_mask_branch(d_model: int, num_heads: int, backbone_channels: Sequence[int]
                      ) -> tuple[MHAttentionMap, MaskHeadSmallConv]:
    """DETR's attention map (``d_model`` wide, ``num_heads`` heads, no dropout) and conv head for a
    backbone with ``backbone_channels`` = channels of C2, C3, C4 (and C5)."""
    c2, c3, c4 = backbone_channels[:3]
    return (MHAttentionMap(d_model, d_model, num_heads, dropout=0.0),
            MaskHeadSmallConv(d_model + num_heads, [c4, c3, c2], d_model))


def predict_masks(attention: MHAttentionMap, head: MaskHeadSmallConv, queries: torch.Tensor,
                  batch_idx: torch.Tensor, features: MaskFeatures) -> torch.Tensor:
    """Mask logits ``(K, H2, W2)`` at the size of C2 (stride 4) of the decoder outputs
    ``queries (K, d)`` of images ``batch_idx (K,)``; float32 also under autocast (the mask
    losses and the panoptic merge, which compares logits across queries, read them)."""
    return head(features.src, attention(queries, features.memory, features.mask, batch_idx),
                features.fpns, batch_idx).float()
