"""DETR's encoder-decoder transformer (post-norm, positional encodings added to queries and keys).

Sequences are sequence-first, as ``nn.MultiheadAttention`` expects by default: ``(S, B, d)`` for
the flattened feature map (``S = h * w``) and ``(Q, B, d)`` for the queries. Parameter names are
those of the facebookresearch/detr checkpoints (``encoder.layers.0.self_attn.in_proj_weight``,
``decoder.layers.0.multihead_attn.out_proj.weight``, ``decoder.norm.weight``, ...).

The encoder and the decoder are separate modules so that a model can run several decoders on one
encoder memory (``Transformer.encode`` then ``decoder(...)`` once per decoder).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _add(x: torch.Tensor, pos: torch.Tensor | None) -> torch.Tensor:
    return x if pos is None else x + pos


def _xavier_init(module: nn.Module) -> None:
    for p in module.parameters():
        if p.dim() > 1:
            nn.init.xavier_uniform_(p)


class TransformerEncoderLayer(nn.Module):
    """Self-attention + ReLU FFN, each followed by dropout, residual and LayerNorm.

    ``forward(src (S, B, d), key_padding_mask (B, S) True on padding, pos (S, B, d))`` -> ``(S, B, d)``.
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, src: torch.Tensor, key_padding_mask: torch.Tensor | None,
                pos: torch.Tensor | None) -> torch.Tensor:
        q = k = _add(src, pos)
        src = self.norm1(src + self.dropout1(
            self.self_attn(q, k, value=src, key_padding_mask=key_padding_mask, need_weights=False)[0]))
        ffn = self.linear2(self.dropout(F.relu(self.linear1(src))))
        return self.norm2(src + self.dropout2(ffn))


class TransformerDecoderLayer(nn.Module):
    """Query self-attention, cross-attention to the memory, ReLU FFN; post-norm after each.

    ``forward(tgt (Q, B, d), memory (S, B, d), memory_key_padding_mask (B, S), pos (S, B, d),
    query_pos (Q, B, d))`` -> ``(Q, B, d)``.
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.multihead_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)

    def forward(self, tgt: torch.Tensor, memory: torch.Tensor,
                memory_key_padding_mask: torch.Tensor | None, pos: torch.Tensor | None,
                query_pos: torch.Tensor | None) -> torch.Tensor:
        q = k = _add(tgt, query_pos)
        tgt = self.norm1(tgt + self.dropout1(self.self_attn(q, k, value=tgt, need_weights=False)[0]))
        attended = self.multihead_attn(query=_add(tgt, query_pos), key=_add(memory, pos), value=memory,
                                       key_padding_mask=memory_key_padding_mask, need_weights=False)[0]
        tgt = self.norm2(tgt + self.dropout2(attended))
        ffn = self.linear2(self.dropout(F.relu(self.linear1(tgt))))
        return self.norm3(tgt + self.dropout3(ffn))


class TransformerEncoder(nn.Module):
    """A stack of :class:`TransformerEncoderLayer` (no final norm, as in post-norm DETR)."""

    def __init__(self, num_layers: int, d_model: int, nhead: int, dim_feedforward: int,
                 dropout: float) -> None:
        super().__init__()
        self.layers = nn.ModuleList(TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout)
                                    for _ in range(num_layers))
        _xavier_init(self)

    def forward(self, src: torch.Tensor, key_padding_mask: torch.Tensor | None,
                pos: torch.Tensor | None) -> torch.Tensor:
        for layer in self.layers:
            src = layer(src, key_padding_mask, pos)
        return src


class TransformerDecoder(nn.Module):
    """A stack of :class:`TransformerDecoderLayer` whose every layer's output goes through the shared
    final LayerNorm ``norm``.

    ``forward(query_embed (Q, d), memory (S, B, d), memory_key_padding_mask (B, S), pos (S, B, d))``
    starts from zero targets with ``query_embed`` as the query positions and returns all layers'
    normalised outputs, batch-first: ``(num_layers, B, Q, d)`` (the last entry is the final output,
    the others feed auxiliary losses).
    """

    def __init__(self, num_layers: int, d_model: int, nhead: int, dim_feedforward: int,
                 dropout: float) -> None:
        super().__init__()
        self.layers = nn.ModuleList(TransformerDecoderLayer(d_model, nhead, dim_feedforward, dropout)
                                    for _ in range(num_layers))
        self.norm = nn.LayerNorm(d_model)
        _xavier_init(self)

    def forward(self, query_embed: torch.Tensor, memory: torch.Tensor,
                memory_key_padding_mask: torch.Tensor | None,
                pos: torch.Tensor | None) -> torch.Tensor:
        query_pos = query_embed.unsqueeze(1).expand(-1, memory.shape[1], -1)
        tgt = torch.zeros_like(query_pos)
        outputs = []
        for layer in self.layers:
            tgt = layer(tgt, memory, memory_key_padding_mask, pos, query_pos)
            outputs.append(self.norm(tgt))
        return torch.stack(outputs).transpose(1, 2)


class Transformer(nn.Module):
    """DETR's transformer: ``num_encoder_layers`` encoder and ``num_decoder_layers`` decoder layers.

    ``forward(src (B, d, h, w), mask (B, h, w) True on padding, query_embed (Q, d), pos (B, d, h, w))``
    returns ``hs (num_decoder_layers, B, Q, d)`` and the encoder memory as a map ``(B, d, h, w)``.
    """

    def __init__(self, d_model: int = 256, nhead: int = 8, num_encoder_layers: int = 6,
                 num_decoder_layers: int = 6, dim_feedforward: int = 2048,
                 dropout: float = 0.1) -> None:
        super().__init__()
        if d_model % nhead:
            raise ValueError(f'd_model ({d_model}) must be divisible by nhead ({nhead})')
        self.d_model = d_model
        self.nhead = nhead
        self.encoder = TransformerEncoder(num_encoder_layers, d_model, nhead, dim_feedforward, dropout)
        self.decoder = TransformerDecoder(num_decoder_layers, d_model, nhead, dim_feedforward, dropout)

    def new_decoder(self) -> TransformerDecoder:
        """A freshly initialised decoder of the same depth, width, heads, FFN size and dropout as
        ``decoder``."""
        layer = self.decoder.layers[0]
        return TransformerDecoder(len(self.decoder.layers), self.d_model, self.nhead,
                                  layer.linear1.out_features, layer.dropout.p)

    def encode(self, src: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Flatten the map and run the encoder. Returns ``memory (S, B, d)``, ``mask (B, S)`` and
        ``pos (S, B, d)``, the inputs every decoder takes."""
        src = src.flatten(2).permute(2, 0, 1)
        pos = pos.flatten(2).permute(2, 0, 1)
        mask = mask.flatten(1)
        return self.encoder(src, mask, pos), mask, pos

    def forward(self, src: torch.Tensor, mask: torch.Tensor, query_embed: torch.Tensor,
                pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, d, h, w = src.shape
        memory, flat_mask, flat_pos = self.encode(src, mask, pos)
        hs = self.decoder(query_embed, memory, flat_mask, flat_pos)
        return hs, memory.permute(1, 2, 0).reshape(b, d, h, w)
