"""Deformable DETR's encoder-decoder transformer (Zhu et al., ICLR'21), without box refinement
and two-stage proposals.

The encoder runs multi-scale deformable self-attention over the tokens of every feature level
(post-norm, ReLU FFN); the decoder runs, per layer, self-attention among the queries
(``nn.MultiheadAttention``), deformable cross-attention to the encoder memory around each query's
reference point, and a FFN. Parameter names are those of fundamentalvision/Deformable-DETR
(``level_embed``, ``reference_points``, ``encoder.layers.0.self_attn.sampling_offsets``,
``decoder.layers.0.cross_attn.value_proj``, ``decoder.layers.0.self_attn.in_proj_weight``,
``decoder.layers.0.norm3`` ...), so its checkpoints load as they are.

Interface (what the models built on it rely on)::

    DeformableTransformer.forward(srcs, masks, pos_embeds, query_embed)
        -> DeformableTransformerOutputs
    DeformableTransformer.encode(srcs, masks, pos_embeds) -> DeformableMemory
    DeformableTransformer.decode(memory, query_embed, decoder=None) -> DecoderOutputs

``srcs``: per level ``(B, d, h_l, w_l)``; ``masks``: per level ``(B, h_l, w_l)`` bool, True on
padding; ``pos_embeds``: per level ``(B, d, h_l, w_l)``; ``query_embed (Q, 2d)``: the learned
queries, split into the query position (first ``d`` channels) and the initial target (last
``d``). ``forward`` is ``encode`` then ``decode``; a model with several decoders on one memory
(PSGFormer) encodes once and decodes once per decoder (:meth:`DeformableTransformer.new_decoder`
builds another one like ``decoder``). Batches are batch-first throughout.

Coordinates are normalised to ``[0, 1]``: reference points are fractions of the *valid*
(unpadded) image, multiplied by each level's valid ratio where they are used on a padded map.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .ms_deform_attn import MSDeformAttn

QueryKey = tuple[torch.Tensor, torch.Tensor]


@dataclass
class DeformableMemory:
    """What :meth:`DeformableTransformer.encode` returns: ``memory (B, S, d)``, the encoder output,
    levels flattened in order (``S = sum h_l w_l``); ``spatial_shapes (n_levels, 2)`` int64
    ``(h_l, w_l)``; ``level_start_index (n_levels,)`` the first token of each level;
    ``valid_ratios (B, n_levels, 2)`` the unpadded fraction ``(w, h)`` of each map;
    ``mask_flatten (B, S)`` True on padding tokens."""

    memory: torch.Tensor
    spatial_shapes: torch.Tensor
    level_start_index: torch.Tensor
    valid_ratios: torch.Tensor
    mask_flatten: torch.Tensor


class DecoderOutputs(NamedTuple):
    """What :meth:`DeformableTransformer.decode` returns (fields as
    :class:`DeformableTransformerOutputs`)."""

    hs: torch.Tensor
    init_reference: torch.Tensor
    inter_references: torch.Tensor
    self_attn_qk: list[QueryKey]


@dataclass
class DeformableTransformerOutputs:
    """What :meth:`DeformableTransformer.forward` returns.

    * ``hs (L, B, Q, d)``: the output of every decoder layer (the last is the final one).
    * ``init_reference (B, Q, 2)``: the queries' reference points ``(x, y)`` in the valid image.
    * ``inter_references (L, B, Q, 2)``: the reference points after each decoder layer (without
      box refinement, ``init_reference`` repeated).
    * ``memory (B, S, d)``: the encoder output, levels flattened in order (``S = sum h_l w_l``);
      ``spatial_shapes (n_levels, 2)`` int64 ``(h_l, w_l)``, ``level_start_index (n_levels,)``
      the first token of each level, ``valid_ratios (B, n_levels, 2)`` the unpadded fraction
      ``(w, h)`` of each map, ``mask_flatten (B, S)`` True on padding tokens.
    * ``self_attn_qk``: one ``(q, k)`` per decoder layer, each ``(B, Q, d)``: the self-attention's
      projected queries and keys (``in_proj_weight/bias`` applied to layer input + query
      position), heads concatenated (head ``m`` is channels ``m * d / M .. (m + 1) * d / M``),
      **not** scaled by ``1 / sqrt(d / M)``.
    """

    hs: torch.Tensor
    init_reference: torch.Tensor
    inter_references: torch.Tensor
    memory: torch.Tensor
    spatial_shapes: torch.Tensor
    level_start_index: torch.Tensor
    valid_ratios: torch.Tensor
    mask_flatten: torch.Tensor
    self_attn_qk: list[QueryKey]

    def encoder_memory(self) -> DeformableMemory:
        """The encoder's part of these outputs."""
        return DeformableMemory(self.memory, self.spatial_shapes, self.level_start_index,
                                self.valid_ratios, self.mask_flatten)


def layer_references(init_reference: torch.Tensor, inter_references: torch.Tensor
                     ) -> torch.Tensor:
    """The reference points each decoder layer read, ``(L, B, Q, 2)``: the initial ones for the
    first layer, then those after each earlier layer."""
    return torch.cat([init_reference[None], inter_references[:-1]])


def valid_ratio(mask: torch.Tensor) -> torch.Tensor:
    """Unpadded fraction ``(w, h)`` of each image's map: ``mask (B, h, w)`` True on padding ->
    ``(B, 2)``. The valid region is the top-left block (the first row and column are counted)."""
    _, h, w = mask.shape
    valid_h = (~mask[:, :, 0]).sum(1).float() / h
    valid_w = (~mask[:, 0, :]).sum(1).float() / w
    return torch.stack([valid_w, valid_h], -1)


def encoder_reference_points(spatial_shapes: torch.Tensor, valid_ratios: torch.Tensor
                             ) -> torch.Tensor:
    """Each token's pixel centre as a fraction of its level's *valid* map, then scaled by every
    level's valid ratio: ``(B, S, n_levels, 2)`` ``(x, y)`` (the point where the token looks on
    each level)."""
    points = []
    for level, (h, w) in enumerate(spatial_shapes.tolist()):
        ys, xs = torch.meshgrid(
            torch.linspace(0.5, h - 0.5, h, dtype=torch.float32, device=valid_ratios.device),
            torch.linspace(0.5, w - 0.5, w, dtype=torch.float32, device=valid_ratios.device),
            indexing='ij')
        y = ys.reshape(-1)[None] / (valid_ratios[:, None, level, 1] * h)
        x = xs.reshape(-1)[None] / (valid_ratios[:, None, level, 0] * w)
        points.append(torch.stack((x, y), -1))
    return torch.cat(points, 1)[:, :, None] * valid_ratios[:, None]


class DeformableTransformerEncoderLayer(nn.Module):
    """Deformable self-attention + ReLU FFN, each followed by dropout, residual and LayerNorm;
    ``activation_dropout`` on the FFN's hidden activations (``None``: ``dropout``).

    ``forward(src (B, S, d), pos (B, S, d), reference_points (B, S, n_levels, 2), spatial_shapes,
    padding_mask (B, S))`` -> ``(B, S, d)``.
    """

    def __init__(self, d_model: int, d_ffn: int, dropout: float, n_levels: int, n_heads: int,
                 n_points: int, activation_dropout: float | None = None) -> None:
        super().__init__()
        self.self_attn = MSDeformAttn(d_model, n_levels, n_heads, n_points)
        self.dropout1 = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.linear1 = nn.Linear(d_model, d_ffn)
        self.dropout2 = nn.Dropout(dropout if activation_dropout is None else activation_dropout)
        self.linear2 = nn.Linear(d_ffn, d_model)
        self.dropout3 = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(d_model)

    def forward(self, src: torch.Tensor, pos: torch.Tensor, reference_points: torch.Tensor,
                spatial_shapes: torch.Tensor, padding_mask: torch.Tensor) -> torch.Tensor:
        attended = self.self_attn(src + pos, reference_points, src, spatial_shapes, padding_mask)
        src = self.norm1(src + self.dropout1(attended))
        ffn = self.linear2(self.dropout2(F.relu(self.linear1(src))))
        return self.norm2(src + self.dropout3(ffn))


class DeformableTransformerDecoderLayer(nn.Module):
    """Query self-attention, deformable cross-attention to the memory, ReLU FFN; post-norm after
    each (``norm2``, ``norm1``, ``norm3`` in that order, the reference's names).

    ``forward(tgt (B, Q, d), query_pos (B, Q, d), reference_points (B, Q, n_levels, 2), memory
    (B, S, d), spatial_shapes, padding_mask (B, S))`` -> the new ``tgt (B, Q, d)`` and the
    self-attention's unscaled projected ``(q, k)``, each ``(B, Q, d)``. ``attention_dropout`` on
    the self-attention's weights and ``activation_dropout`` on the FFN's hidden activations
    (``None``: ``dropout``, as the reference; 0 in Hugging Face's Deformable DETR configs).
    """

    def __init__(self, d_model: int, d_ffn: int, dropout: float, n_levels: int, n_heads: int,
                 n_points: int, attention_dropout: float | None = None,
                 activation_dropout: float | None = None) -> None:
        super().__init__()
        self.cross_attn = MSDeformAttn(d_model, n_levels, n_heads, n_points)
        self.dropout1 = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.self_attn = nn.MultiheadAttention(
            d_model, n_heads, dropout=dropout if attention_dropout is None else attention_dropout,
            batch_first=True)
        self.dropout2 = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(d_model)
        self.linear1 = nn.Linear(d_model, d_ffn)
        self.dropout3 = nn.Dropout(dropout if activation_dropout is None else activation_dropout)
        self.linear2 = nn.Linear(d_ffn, d_model)
        self.dropout4 = nn.Dropout(dropout)
        self.norm3 = nn.LayerNorm(d_model)

    def query_key(self, tgt_with_pos: torch.Tensor) -> QueryKey:
        """The self-attention's input projections of query and key (the first two thirds of
        ``in_proj_weight/bias``), as ``nn.MultiheadAttention`` computes them before scaling."""
        d = tgt_with_pos.shape[-1]
        weight, bias = self.self_attn.in_proj_weight, self.self_attn.in_proj_bias
        return (F.linear(tgt_with_pos, weight[:d], bias[:d]),
                F.linear(tgt_with_pos, weight[d:2 * d], bias[d:2 * d]))

    def forward(self, tgt: torch.Tensor, query_pos: torch.Tensor, reference_points: torch.Tensor,
                memory: torch.Tensor, spatial_shapes: torch.Tensor, padding_mask: torch.Tensor
                ) -> tuple[torch.Tensor, QueryKey]:
        q = k = tgt + query_pos
        qk = self.query_key(q)
        attended = self.self_attn(q, k, tgt, need_weights=False)[0]
        tgt = self.norm2(tgt + self.dropout2(attended))
        attended = self.cross_attn(tgt + query_pos, reference_points, memory, spatial_shapes,
                                   padding_mask)
        tgt = self.norm1(tgt + self.dropout1(attended))
        ffn = self.linear2(self.dropout3(F.relu(self.linear1(tgt))))
        return self.norm3(tgt + self.dropout4(ffn)), qk


class DeformableTransformerEncoder(nn.Module):
    """A stack of :class:`DeformableTransformerEncoderLayer` (no final norm)."""

    def __init__(self, num_layers: int, **layer_args) -> None:
        super().__init__()
        self.layers = nn.ModuleList(DeformableTransformerEncoderLayer(**layer_args)
                                    for _ in range(num_layers))

    def forward(self, src: torch.Tensor, pos: torch.Tensor, spatial_shapes: torch.Tensor,
                valid_ratios: torch.Tensor, padding_mask: torch.Tensor) -> torch.Tensor:
        reference_points = encoder_reference_points(spatial_shapes, valid_ratios)
        for layer in self.layers:
            src = layer(src, pos, reference_points, spatial_shapes, padding_mask)
        return src


class DeformableTransformerDecoder(nn.Module):
    """A stack of :class:`DeformableTransformerDecoderLayer` (no final norm).

    ``forward(tgt (B, Q, d), reference_points (B, Q, 2), memory (B, S, d), spatial_shapes,
    valid_ratios (B, n_levels, 2), query_pos (B, Q, d), padding_mask (B, S))`` -> every layer's
    output ``(L, B, Q, d)``, the reference points used after every layer ``(L, B, Q, 2)`` and
    every layer's self-attention ``(q, k)``.
    """

    def __init__(self, num_layers: int, **layer_args) -> None:
        super().__init__()
        self.layers = nn.ModuleList(DeformableTransformerDecoderLayer(**layer_args)
                                    for _ in range(num_layers))

    def forward(self, tgt: torch.Tensor, reference_points: torch.Tensor, memory: torch.Tensor,
                spatial_shapes: torch.Tensor, valid_ratios: torch.Tensor,
                query_pos: torch.Tensor, padding_mask: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, list[QueryKey]]:
        points_per_level = reference_points[:, :, None] * valid_ratios[:, None]
        outputs, qks = [], []
        for layer in self.layers:
            tgt, qk = layer(tgt, query_pos, points_per_level, memory, spatial_shapes, padding_mask)
            outputs.append(tgt)
            qks.append(qk)
        references = reference_points[None].expand(len(self.layers), -1, -1, -1)
        return torch.stack(outputs), references, qks


def reset_deformable_parameters(module: nn.Module) -> None:
    """Xavier-uniform for every matrix of ``module``, then each :class:`MSDeformAttn` in it its own
    initialisation (the reference's order)."""
    for p in module.parameters():
        if p.dim() > 1:
            nn.init.xavier_uniform_(p)
    for child in module.modules():
        if isinstance(child, MSDeformAttn):
            child.reset_parameters()


class DeformableTransformer(nn.Module):
    """Deformable DETR's transformer: ``num_encoder_layers`` + ``num_decoder_layers`` layers of
    width ``d_model`` with ``nhead`` heads, FFN width ``dim_feedforward``, ``num_feature_levels``
    levels and ``enc_n_points`` / ``dec_n_points`` sampling points per head and level.

    ``level_embed (n_levels, d)`` is added to every level's position encoding; the reference
    points of the queries are ``sigmoid(reference_points(query_pos))``. See the module docstring
    for :meth:`forward`.

    Dropout: ``dropout`` on every residual branch and, unless set apart, on the decoder's
    self-attention weights (``attention_dropout``) and the FFNs' hidden activations
    (``activation_dropout``), as fundamentalvision/Deformable-DETR; ``input_dropout`` on the
    encoder's flattened input (0 there). Hugging Face's Deformable DETR, on which EGTR is built,
    uses ``attention_dropout=0``, ``activation_dropout=0``, ``input_dropout=dropout``.
    """

    def __init__(self, d_model: int = 256, nhead: int = 8, num_encoder_layers: int = 6,
                 num_decoder_layers: int = 6, dim_feedforward: int = 1024, dropout: float = 0.1,
                 num_feature_levels: int = 4, enc_n_points: int = 4, dec_n_points: int = 4,
                 attention_dropout: float | None = None, activation_dropout: float | None = None,
                 input_dropout: float = 0.0) -> None:
        super().__init__()
        if d_model % nhead:
            raise ValueError(f'd_model ({d_model}) must be divisible by nhead ({nhead})')
        self.d_model = d_model
        self.nhead = nhead
        self.num_feature_levels = num_feature_levels
        layer = dict(d_model=d_model, d_ffn=dim_feedforward, dropout=dropout,
                     n_levels=num_feature_levels, n_heads=nhead,
                     activation_dropout=activation_dropout)
        self.decoder_layer_args = {**layer, 'n_points': dec_n_points,
                                   'attention_dropout': attention_dropout}
        self.encoder = DeformableTransformerEncoder(num_encoder_layers, **layer,
                                                    n_points=enc_n_points)
        self.decoder = DeformableTransformerDecoder(num_decoder_layers, **self.decoder_layer_args)
        self.input_dropout = nn.Dropout(input_dropout)
        self.level_embed = nn.Parameter(torch.empty(num_feature_levels, d_model))
        self.reference_points = nn.Linear(d_model, 2)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The reference's initialisation: Xavier-uniform for every matrix, then each
        :class:`MSDeformAttn` its own, zero bias for ``reference_points``, normal level
        embeddings."""
        reset_deformable_parameters(self)
        nn.init.zeros_(self.reference_points.bias)
        nn.init.normal_(self.level_embed)

    def new_decoder(self) -> DeformableTransformerDecoder:
        """A freshly initialised decoder of the same depth and layer sizes as ``decoder``."""
        decoder = DeformableTransformerDecoder(len(self.decoder.layers), **self.decoder_layer_args)
        reset_deformable_parameters(decoder)
        return decoder

    def encode(self, srcs: list[torch.Tensor], masks: list[torch.Tensor],
               pos_embeds: list[torch.Tensor]) -> DeformableMemory:
        """Flatten the levels, add the level embeddings to the positions and run the encoder."""
        if not len(srcs) == len(masks) == len(pos_embeds) == self.num_feature_levels:
            raise ValueError(f'DeformableTransformer: expected {self.num_feature_levels} levels, '
                             f'got {len(srcs)} maps, {len(masks)} masks and {len(pos_embeds)} '
                             'position encodings')
        spatial_shapes = torch.as_tensor([src.shape[-2:] for src in srcs], dtype=torch.long,
                                         device=srcs[0].device)
        level_start_index = torch.cat((spatial_shapes.new_zeros(1),
                                       spatial_shapes.prod(1).cumsum(0)[:-1]))
        valid_ratios = torch.stack([valid_ratio(m) for m in masks], 1)
        src_flatten = torch.cat([src.flatten(2).transpose(1, 2) for src in srcs], 1)
        mask_flatten = torch.cat([m.flatten(1) for m in masks], 1)
        pos_flatten = torch.cat([pos.flatten(2).transpose(1, 2) + self.level_embed[level]
                                 for level, pos in enumerate(pos_embeds)], 1)
        memory = self.encoder(self.input_dropout(src_flatten), pos_flatten, spatial_shapes,
                              valid_ratios, mask_flatten)
        return DeformableMemory(memory, spatial_shapes, level_start_index, valid_ratios,
                                mask_flatten)

    def decode(self, memory: DeformableMemory, query_embed: torch.Tensor,
               decoder: DeformableTransformerDecoder | None = None) -> DecoderOutputs:
        """Run ``decoder`` (default: ``self.decoder``) with the queries ``query_embed (Q, 2d)``;
        their reference points are ``sigmoid(reference_points(query_pos))``."""
        b, d = memory.memory.shape[0], self.d_model
        query_pos, tgt = query_embed.split(d, dim=1)
        query_pos = query_pos[None].expand(b, -1, -1)
        tgt = tgt[None].expand(b, -1, -1)
        init_reference = self.reference_points(query_pos).float().sigmoid()
        hs, inter_references, qks = (decoder or self.decoder)(
            tgt, init_reference, memory.memory, memory.spatial_shapes, memory.valid_ratios,
            query_pos, memory.mask_flatten)
        return DecoderOutputs(hs, init_reference, inter_references, qks)

    def forward(self, srcs: list[torch.Tensor], masks: list[torch.Tensor],
                pos_embeds: list[torch.Tensor], query_embed: torch.Tensor
                ) -> DeformableTransformerOutputs:
        memory = self.encode(srcs, masks, pos_embeds)
        hs, init_reference, inter_references, qks = self.decode(memory, query_embed)
        return DeformableTransformerOutputs(
            hs=hs, init_reference=init_reference, inter_references=inter_references,
            memory=memory.memory, spatial_shapes=memory.spatial_shapes,
            level_start_index=memory.level_start_index, valid_ratios=memory.valid_ratios,
            mask_flatten=memory.mask_flatten, self_attn_qk=qks)
