"""Multi-scale deformable attention (Deformable DETR, Zhu et al., ICLR'21) in pure PyTorch.

Every query attends, per head and per feature level, to ``n_points`` locations around its
reference point; the locations are predicted offsets from it, their values are bilinearly
interpolated (``F.grid_sample``: zero padding, ``align_corners=False``, so a location may fall
between pixels or outside the map, where it reads 0), and a softmax over the ``n_levels *
n_points`` locations of a head weights them. Parameter names follow
fundamentalvision/Deformable-DETR's ``MSDeformAttn`` (``sampling_offsets``, ``attention_weights``,
``value_proj``, ``output_proj``), so its checkpoints load as they are.

Shapes: ``B`` batch, ``Lq`` queries, ``S = sum_l H_l * W_l`` tokens of all levels flattened
(level after level, each row-major), ``M`` heads of ``Dh = d / M`` channels, ``L`` levels,
``P`` points. Locations are normalised: ``(0, 0)`` is the top-left corner of a map and ``(1, 1)``
its bottom-right corner, so pixel ``(i, j)`` covers ``[j / W, (j + 1) / W] x [i / H, (i + 1) / H]``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def ms_deform_attn_core(value: torch.Tensor, spatial_shapes: torch.Tensor,
                        sampling_locations: torch.Tensor,
                        attention_weights: torch.Tensor) -> torch.Tensor:
    """Attention-weighted sum of bilinear samples.

    ``value (B, S, M, Dh)``: per-head values of every level; ``spatial_shapes (L, 2)``: ``(H_l,
    W_l)``; ``sampling_locations (B, Lq, M, L, P, 2)``: normalised ``(x, y)`` on each level's map;
    ``attention_weights (B, Lq, M, L, P)``. Returns ``(B, Lq, M * Dh)``, head after head.
    """
    b, _, heads, head_dim = value.shape
    _, num_queries, _, _, points, _ = sampling_locations.shape
    shapes = [(int(h), int(w)) for h, w in spatial_shapes.tolist()]
    grids = 2 * sampling_locations - 1  # grid_sample's [-1, 1] coordinates
    if not torch.is_autocast_enabled(value.device.type):  # autocast samples in float32 itself
        grids = grids.to(value.dtype)
    out = value.new_zeros(b * heads, head_dim, num_queries)
    for level, (level_value, (h, w)) in enumerate(
            zip(value.split([h * w for h, w in shapes], dim=1), shapes)):
        level_value = level_value.permute(0, 2, 3, 1).reshape(b * heads, head_dim, h, w)
        grid = grids[:, :, :, level].transpose(1, 2).reshape(b * heads, num_queries, points, 2)
        sampled = F.grid_sample(level_value, grid, mode='bilinear', padding_mode='zeros',
                                align_corners=False)  # (B * M, Dh, Lq, P)
        weights = attention_weights[:, :, :, level].transpose(1, 2).reshape(
            b * heads, 1, num_queries, points)
        out = out + (sampled * weights).sum(-1)
    return out.view(b, heads * head_dim, num_queries).transpose(1, 2)


class MSDeformAttn(nn.Module):
    """Multi-scale deformable attention of ``n_heads`` heads over ``n_levels`` maps, ``n_points``
    locations per head and level.

    ``forward(query (B, Lq, d), reference_points, input_flatten (B, S, d), spatial_shapes (L, 2)
    int64, input_padding_mask (B, S) bool, True on padding)`` -> ``(B, Lq, d)``.
    ``reference_points`` is ``(B, Lq, L, 2)``: a normalised point per level, offsets divided by
    the level's ``(W_l, H_l)`` (in pixels); or ``(B, Lq, L, 4)``: a normalised box ``(cx, cy, w,
    h)``, offsets scaled by ``0.5 * (w, h) / n_points``. Padding tokens contribute zero values.

    Initialisation (the reference's): offsets of head ``m`` point along the angle ``2 pi m /
    n_heads``, scaled so that the larger coordinate is 1 and multiplied by ``k`` for the ``k``-th
    point (1-based), on every level; uniform attention weights.
    """

    def __init__(self, d_model: int = 256, n_levels: int = 4, n_heads: int = 8,
                 n_points: int = 4) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f'MSDeformAttn: d_model ({d_model}) must be divisible by n_heads '
                             f'({n_heads})')
        self.d_model = d_model
        self.n_levels = n_levels
        self.n_heads = n_heads
        self.n_points = n_points
        self.sampling_offsets = nn.Linear(d_model, n_heads * n_levels * n_points * 2)
        self.attention_weights = nn.Linear(d_model, n_heads * n_levels * n_points)
        self.value_proj = nn.Linear(d_model, d_model)
        self.output_proj = nn.Linear(d_model, d_model)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.sampling_offsets.weight)
        angles = torch.arange(self.n_heads, dtype=torch.float32) * (2 * math.pi / self.n_heads)
        directions = torch.stack([angles.cos(), angles.sin()], -1)
        directions = directions / directions.abs().max(-1, keepdim=True).values
        steps = torch.arange(1, self.n_points + 1, dtype=torch.float32)
        grid = directions[:, None, None, :] * steps[None, None, :, None]  # (M, 1, P, 2)
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.expand(-1, self.n_levels, -1, -1).flatten())
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        nn.init.xavier_uniform_(self.value_proj.weight)
        nn.init.zeros_(self.value_proj.bias)
        nn.init.xavier_uniform_(self.output_proj.weight)
        nn.init.zeros_(self.output_proj.bias)

    def forward(self, query: torch.Tensor, reference_points: torch.Tensor,
                input_flatten: torch.Tensor, spatial_shapes: torch.Tensor,
                input_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        b, num_queries, _ = query.shape
        num_tokens = input_flatten.shape[1]
        if int(spatial_shapes.prod(1).sum()) != num_tokens or len(spatial_shapes) != self.n_levels:
            raise ValueError(f'MSDeformAttn: spatial_shapes {spatial_shapes.tolist()} must list '
                             f'{self.n_levels} levels of {num_tokens} tokens in all')
        value = self.value_proj(input_flatten)
        if input_padding_mask is not None:
            value = value.masked_fill(input_padding_mask[..., None], 0.0)
        value = value.view(b, num_tokens, self.n_heads, self.d_model // self.n_heads)
        # sampling locations in at least float32, also under autocast: in bfloat16 a location
        # near the middle of a map resolves 1/256 of it (0.65 px on a 167-px map)
        offsets = self.sampling_offsets(query)
        offsets = offsets.to(torch.promote_types(offsets.dtype, torch.float32)).view(
            b, num_queries, self.n_heads, self.n_levels, self.n_points, 2)
        weights = self.attention_weights(query).view(
            b, num_queries, self.n_heads, self.n_levels * self.n_points).softmax(-1).view(
            b, num_queries, self.n_heads, self.n_levels, self.n_points)
        ref = reference_points[:, :, None, :, None].to(offsets.dtype)  # (B, Lq, 1, L, 1, 2|4)
        if reference_points.shape[-1] == 2:
            size_wh = spatial_shapes.flip(-1).to(offsets.dtype)  # (L, 2) as (W, H)
            locations = ref + offsets / size_wh[None, None, None, :, None, :]
        elif reference_points.shape[-1] == 4:
            locations = ref[..., :2] + offsets / self.n_points * ref[..., 2:] * 0.5
        else:
            raise ValueError('MSDeformAttn: reference_points must end in 2 (points) or 4 '
                             f'(boxes), got shape {tuple(reference_points.shape)}')
        return self.output_proj(ms_deform_attn_core(value, spatial_shapes, locations, weights))
