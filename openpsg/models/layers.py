"""Convolution blocks of the dense prediction heads: CoordConv inputs, modulated deformable
convolution (``torchvision.ops.deform_conv2d``) and stacks of conv + GroupNorm + ReLU."""
from __future__ import annotations

import torch
from torch import nn
from torchvision.ops import DeformConv2d


def with_coords(x: torch.Tensor) -> torch.Tensor:
    """CoordConv input (Liu et al., 2018): ``x (B, C, H, W)`` -> ``(B, C + 2, H, W)`` with channel
    ``C`` the row and ``C + 1`` the column coordinate, each running linearly from -1 to 1 over the
    map (PanopticFCN's order)."""
    b, _, h, w = x.shape
    rows = torch.linspace(-1, 1, h, device=x.device, dtype=x.dtype)
    cols = torch.linspace(-1, 1, w, device=x.device, dtype=x.dtype)
    grid = torch.stack(torch.meshgrid(rows, cols, indexing='ij'))
    return torch.cat([x, grid[None].expand(b, -1, -1, -1)], dim=1)


class ModulatedDeformConv2d(nn.Module):
    """Modulated deformable convolution (DCNv2, Zhu et al., CVPR'19) with its own offset branch.

    A plain ``kernel_size`` conv on the input predicts, per output position, ``2 k^2`` sampling
    offsets (torchvision's layout: a ``(dy, dx)`` pair per kernel tap) and ``k^2`` modulation
    scalars (through a sigmoid); :func:`torchvision.ops.deform_conv2d` samples with them. The
    offset branch keeps PyTorch's default initialisation (as PanopticFCN's, which does not zero
    it); the deformable kernel is Kaiming-uniform (ReLU gain) with a zero bias, as detectron2's.
    ``(B, in_channels, H, W) -> (B, out_channels, H, W)`` (stride 1, same padding).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3,
                 bias: bool = True) -> None:
        super().__init__()
        taps = kernel_size * kernel_size
        self.offset_mask = nn.Conv2d(in_channels, 3 * taps, kernel_size,
                                     padding=kernel_size // 2)
        self.conv = DeformConv2d(in_channels, out_channels, kernel_size,
                                 padding=kernel_size // 2, bias=bias)
        nn.init.kaiming_uniform_(self.conv.weight, nonlinearity='relu')
        if bias:
            nn.init.zeros_(self.conv.bias)
        self.taps = taps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        offset_mask = self.offset_mask(x)
        offset = offset_mask[:, :2 * self.taps]
        mask = offset_mask[:, 2 * self.taps:].sigmoid()
        # float32 outside autocast: torchvision's deform_conv2d has no bfloat16 CPU kernel
        with torch.autocast(x.device.type, enabled=False):
            return self.conv(x.float(), offset.float(), mask.float())


class ConvStack(nn.Module):
    """``num_convs`` blocks of 3x3 conv (``deform``: :class:`ModulatedDeformConv2d`) + GroupNorm
    (``num_groups`` groups; ``0``: no norm, the conv gets a bias) + ReLU, on the input with two
    coordinate channels appended first when ``coord`` (:func:`with_coords`).

    ``(B, in_channels, H, W) -> (B, channels, H, W)``. Plain convolutions keep PyTorch's default
    initialisation.
    """

    def __init__(self, in_channels: int, channels: int, num_convs: int, num_groups: int = 32,
                 deform: bool = False, coord: bool = False) -> None:
        super().__init__()
        if num_convs < 1:
            raise ValueError(f'ConvStack needs num_convs >= 1, got {num_convs}')
        self.coord = coord
        layers: list[nn.Module] = []
        for k in range(num_convs):
            cin = (in_channels + 2 * coord) if k == 0 else channels
            if deform:
                layers.append(ModulatedDeformConv2d(cin, channels, bias=not num_groups))
            else:
                layers.append(nn.Conv2d(cin, channels, 3, padding=1, bias=not num_groups))
            if num_groups:
                layers.append(nn.GroupNorm(num_groups, channels))
            layers.append(nn.ReLU(inplace=True))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(with_coords(x) if self.coord else x)
