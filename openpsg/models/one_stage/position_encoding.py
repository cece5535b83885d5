"""Fixed sine/cosine 2-D positional encoding computed from a padding mask (DETR)."""
from __future__ import annotations

import math

import torch
from torch import nn


class PositionEmbeddingSine(nn.Module):
    """Sine encoding of each pixel's row and column within the *valid* (unpadded) image.

    Positions are the running count of valid pixels along each axis (1 for the first pixel), so
    padding never shifts them; with ``normalize=True`` they are moved by ``offset``, divided by the
    valid height/width and multiplied by ``scale``: ``(p + offset) / n * scale``. DETR uses
    ``offset=0``; Deformable DETR ``offset=-0.5`` (the pixel centre).
    Channel ``2k`` holds ``sin(p / T^(2k / F))`` and ``2k + 1`` holds ``cos(p / T^(2k / F))`` with
    ``F = num_pos_feats`` and ``T = temperature``; the first ``F`` channels encode the row, the next
    ``F`` the column.

    ``forward(mask (B, H, W) bool, True on padding)`` -> ``(B, 2 * num_pos_feats, H, W)`` float32.
    """

    def __init__(self, num_pos_feats: int = 128, temperature: float = 10000.0,
                 normalize: bool = True, scale: float = 2 * math.pi, offset: float = 0.0) -> None:
        super().__init__()
        if num_pos_feats % 2:
            raise ValueError(f'num_pos_feats must be even, got {num_pos_feats}')
        self.num_pos_feats = num_pos_feats
        self.temperature = temperature
        self.normalize = normalize
        self.scale = scale
        self.offset = offset

    def forward(self, mask: torch.Tensor) -> torch.Tensor:
        valid = ~mask
        y = valid.cumsum(1, dtype=torch.float32)
        x = valid.cumsum(2, dtype=torch.float32)
        if self.normalize:
            eps = 1e-6
            y = (y + self.offset) / (y[:, -1:, :] + eps) * self.scale
            x = (x + self.offset) / (x[:, :, -1:] + eps) * self.scale
        k = torch.arange(self.num_pos_feats, dtype=torch.float32, device=mask.device)
        dim_t = self.temperature ** (2 * torch.div(k, 2, rounding_mode='floor') / self.num_pos_feats)

        def encode(p: torch.Tensor) -> torch.Tensor:
            p = p[..., None] / dim_t
            return torch.stack((p[..., 0::2].sin(), p[..., 1::2].cos()), dim=4).flatten(3)

        return torch.cat((encode(y), encode(x)), dim=3).permute(0, 3, 1, 2)
