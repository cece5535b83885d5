"""Object-centre heatmap targets: mask mass centres, CornerNet's Gaussian radius and Gaussian
peaks max-merged into a map (PanopticFCN; also the shape of Panoptic-DeepLab's centre targets)."""
from __future__ import annotations

import torch


def mass_centres(masks: torch.Tensor) -> torch.Tensor:
    """``(N, 2)`` float ``(x, y)``: the mean pixel coordinate of the non-zero pixels of each mask
    of ``masks (N, H, W)`` (unweighted: every non-zero pixel counts once). Every mask needs a
    non-zero pixel."""
    occupied = (masks != 0).to(torch.float32)
    area = occupied.sum((1, 2))
    if (area == 0).any():
        raise ValueError(f'mass_centres: masks {torch.nonzero(area == 0)[:, 0].tolist()} are empty')
    h, w = masks.shape[-2:]
    ys = torch.arange(h, dtype=torch.float32, device=masks.device)
    xs = torch.arange(w, dtype=torch.float32, device=masks.device)
    x = (occupied.sum(1) * xs).sum(1) / area
    y = (occupied.sum(2) * ys).sum(1) / area
    return torch.stack([x, y], dim=1)


def gaussian_radius(width: torch.Tensor, height: torch.Tensor,
                    min_overlap: float = 0.7) -> torch.Tensor:
    """CornerNet's Gaussian radius (Law & Deng, ECCV'18, as in its released code) of boxes of size
    ``width x height``: the smallest of the three radii, each ``(b + sqrt(b^2 - 4ac)) / 2`` with

    * ``a = 1``, ``b = w + h``, ``c = w h (1 - o) / (1 + o)``;
    * ``a = 4``, ``b = 2 (w + h)``, ``c = (1 - o) w h``;
    * ``a = 4 o``, ``b = -2 o (w + h)``, ``c = (o - 1) w h``;

    ``o = min_overlap``. (The released code divides by 2 where the quadratic formula has ``2a``;
    CenterNet and PanopticFCN keep that form, and so does this function.) Same shape as
    ``width``.
    """
    w, h, o = width, height, min_overlap
    b1 = h + w
    r1 = (b1 + torch.sqrt(b1 ** 2 - 4 * w * h * (1 - o) / (1 + o))) / 2
    b2 = 2 * (h + w)
    r2 = (b2 + torch.sqrt(b2 ** 2 - 16 * (1 - o) * w * h)) / 2
    b3 = -2 * o * (h + w)
    r3 = (b3 + torch.sqrt(b3 ** 2 - 16 * o * (o - 1) * w * h)) / 2
    return torch.minimum(r1, torch.minimum(r2, r3))


def gaussian_kernel(radius: int, sigma: float, device: torch.device | None = None) -> torch.Tensor:
    """``(2r + 1, 2r + 1)`` values ``exp(-(x^2 + y^2) / (2 sigma^2))`` for offsets ``-r..r``; values
    below float64 machine epsilon times the peak are set to 0 (CornerNet's ``gaussian2D``)."""
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64, device=device)
    kernel = torch.exp(-(offsets[None] ** 2 + offsets[:, None] ** 2) / (2 * sigma * sigma))
    kernel[kernel < torch.finfo(torch.float64).eps * kernel.max()] = 0
    return kernel.float()


def draw_gaussian_(heatmap: torch.Tensor, centre: tuple[int, int], radius: int,
                   sigma: float) -> torch.Tensor:
    """Max-merge a :func:`gaussian_kernel` peak (value 1 at ``centre = (x, y)``, integer pixels)
    into ``heatmap (H, W)`` in place, clipped at the borders; returns ``heatmap``."""
    kernel = gaussian_kernel(radius, sigma, heatmap.device)
    height, width = heatmap.shape
    x, y = centre
    left, right = min(x, radius), min(width - x, radius + 1)
    top, bottom = min(y, radius), min(height - y, radius + 1)
    if min(left + right, top + bottom) <= 0:
        return heatmap
    region = heatmap[y - top:y + bottom, x - left:x + right]
    patch = kernel[radius - top:radius + bottom, radius - left:radius + right]
    torch.maximum(region, patch, out=region)
    return heatmap

