"""Key -> shape tables of public checkpoints, written out from their architectures (no download),
shared by the converter tests."""
from __future__ import annotations

import torch


def bn(prefix: str, n: int) -> dict:
    return {f'{prefix}.{k}': (n,) for k in ('weight', 'bias', 'running_mean', 'running_var')}


def linear(prefix: str, out: int, inp: int) -> dict:
    return {f'{prefix}.weight': (out, inp), f'{prefix}.bias': (out,)}


def conv(prefix: str, out: int, inp: int, k: int, bias: bool = True) -> dict:
    shapes = {f'{prefix}.weight': (out, inp, k, k)}
    if bias:
        shapes[f'{prefix}.bias'] = (out,)
    return shapes


def norm(prefix: str, n: int) -> dict:
    return {f'{prefix}.weight': (n,), f'{prefix}.bias': (n,)}


def resnet_shapes(prefix: str, blocks: tuple[int, ...] = (3, 4, 6, 3)) -> dict:
    """A torchvision/timm bottleneck ResNet without classifier (ResNet-50; ``(3, 4, 23, 3)``
    for ResNet-101) with frozen batch norm, under ``prefix``."""
    shapes = {**conv(f'{prefix}.conv1', 64, 3, 7, bias=False), **bn(f'{prefix}.bn1', 64)}
    inplanes = 64
    for layer, (count, planes) in enumerate(zip(blocks, (64, 128, 256, 512)), start=1):
        for b in range(count):
            p = f'{prefix}.layer{layer}.{b}'
            shapes.update({**conv(f'{p}.conv1', planes, inplanes, 1, bias=False),
                           **bn(f'{p}.bn1', planes),
                           **conv(f'{p}.conv2', planes, planes, 3, bias=False),
                           **bn(f'{p}.bn2', planes),
                           **conv(f'{p}.conv3', planes * 4, planes, 1, bias=False),
                           **bn(f'{p}.bn3', planes * 4)})
            if b == 0:
                shapes.update({**conv(f'{p}.downsample.0', planes * 4, inplanes, 1, bias=False),
                               **bn(f'{p}.downsample.1', planes * 4)})
            inplanes = planes * 4
    return shapes


def random_state(shapes: dict, seed: int = 0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    return {k: torch.randn(shape, generator=gen) for k, shape in shapes.items()}
