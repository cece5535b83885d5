"""ResNet trunk (torchvision) with frozen batch norm, returning C2-C5 and their padding masks;
optionally C5 dilated (DC5).

How much of a ResNet trains is ``frozen_stages`` in every backbone config (this :class:`ResNet`
and the ResNet-FPN of the panoptic segmenters), with mmdet's meaning (:func:`freeze_stages`):
``-1`` trains everything, ``0`` freezes the stem (conv1 + bn1), ``k >= 1`` also freezes
``layer1..layerk``, ``4`` freezes the whole trunk. Whole modules (a two-stage model's segmenter,
a neck) are frozen by the config's top-level ``freeze_modules`` instead (see the README).
"""
from __future__ import annotations

import os
from typing import Mapping

import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.ops.misc import FrozenBatchNorm2d

from ...registry import MODELS

#: output channels of layer1..layer4 (C2..C5) per ResNet depth
RESNET_CHANNELS = {18: (64, 128, 256, 512), 34: (64, 128, 256, 512),
                   50: (256, 512, 1024, 2048), 101: (256, 512, 1024, 2048)}
_STAGES = ('layer1', 'layer2', 'layer3', 'layer4')


def imagenet_state_dict(depth: int, pretrained: bool | str) -> dict[str, torch.Tensor]:
    """torchvision's ImageNet weights (``True``: torch hub cache, downloaded there if missing) or a
    local ``.pth`` file holding a torchvision ResNet state dict."""
    if pretrained is True:
        weights = torchvision.models.get_model_weights(f'resnet{depth}').IMAGENET1K_V1
        return weights.get_state_dict(progress=True)
    if not os.path.isfile(pretrained):
        raise FileNotFoundError(
            f'{pretrained}: backbone weights not found (model.backbone.pretrained; the tiny '
            'configs take the ResNet-18 of a trained '
            'configs/panoptic_fpn/panoptic_fpn_tiny_synth.py: train it first)')
    state = torch.load(pretrained, map_location='cpu', weights_only=True)
    return state.get('state_dict', state) if isinstance(state, dict) else state


def weights_under_prefix(state: Mapping[str, torch.Tensor], prefix: str,
                         source: str) -> dict[str, torch.Tensor]:
    """The entries of ``state`` whose key starts with ``prefix``, with the prefix removed: the
    backbone of a trained model, e.g. ``prefix='backbone.body.'`` of a Panoptic FPN checkpoint.
    A :class:`ValueError` naming ``source`` and the key prefixes present if none matches."""
    picked = {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}
    if not picked:
        present = sorted({'.'.join(key.split('.')[:2]) + '.' for key in state})
        raise ValueError(f'{source}: no weight under the prefix {prefix!r}; the keys start with '
                       f'{", ".join(present[:12])}{" ..." if len(present) > 12 else ""}')
    return picked


def load_trunk_weights(net: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Copy a torchvision ResNet state dict into ``net``; the classifier (``fc.*``) may be
    absent (a detector's backbone has none). Any other missing, unexpected or misshapen entry is
    a :class:`ValueError` naming ``source``."""
    try:
        missing, unexpected = net.load_state_dict(state, strict=False)
    except RuntimeError as err:
        raise ValueError(f'{source}: not the weights of this ResNet: {err}') from None
    missing = [key for key in missing if not key.startswith('fc.')]
    if missing or unexpected:
        raise ValueError(f'{source}: not the weights of this ResNet; missing {missing[:8]}, '
                         f'unexpected {unexpected[:8]}')


def freeze_stages(trunk: nn.Module, frozen_stages: int) -> None:
    """Stop the gradient of the first stages of ``trunk``, a torchvision ResNet or the
    ``IntermediateLayerGetter`` over one (parameters named ``conv1.*``, ``layer1.*``, ...):
    ``frozen_stages=-1`` none, ``0`` the stem (conv1 + bn1), ``k`` in ``1..4`` the stem and
    ``layer1..layerk``. Other parameters are left as they are."""
    if not -1 <= frozen_stages <= 4:
        raise ValueError(f'backbone frozen_stages must be in -1..4 (-1 trains everything, 4 '
                         f'freezes the trunk), got {frozen_stages}')
    frozen = () if frozen_stages < 0 else ('conv1', 'bn1', *_STAGES[:frozen_stages])
    for name, param in trunk.named_parameters():
        if name.split('.')[0] in frozen:
            param.requires_grad_(False)


def load_pretrained_trunk(net: nn.Module, depth: int, pretrained: bool | str,
                          prefix: str = '') -> None:
    """Load ``pretrained`` (see :func:`imagenet_state_dict`) into the torchvision ResNet ``net``,
    taking the weights under ``prefix`` (see :func:`weights_under_prefix`) when it is given."""
    source = 'torchvision ImageNet weights' if pretrained is True else str(pretrained)
    state = imagenet_state_dict(depth, pretrained)
    if prefix:
        state = weights_under_prefix(state, prefix, source)
    load_trunk_weights(net, state, source)


@MODELS.register()
class ResNet(nn.Module):
    """A torchvision ResNet-18/34/50/101 without its classifier, every BatchNorm frozen.

    ``frozen_stages``: see :func:`freeze_stages` (``1``: stem and layer1 frozen). ``pretrained``: ``None``/``False``
    (random init), ``True`` (torchvision ImageNet weights from the torch hub cache) or a path to a
    torchvision ResNet state dict or to a checkpoint (``state_dict`` inside) of a model that holds
    the ResNet under the key prefix ``pretrained_prefix``, e.g. ``'backbone.body.'`` for a trained
    Panoptic FPN (the prefix is unused without ``pretrained``). ``dilation=True`` (DC5, ResNet-50
    and -101) replaces the stride of ``layer4`` by dilation (torchvision's
    ``replace_stride_with_dilation=[False, False, True]``): C5 at stride 16 with the same weights.

    ``forward(imgs (B, 3, H, W), pad_mask (B, H, W) bool, True on padding)`` returns two lists over
    C2..C5: feature maps ``(B, C_i, H / s_i, W / s_i)`` with strides ``strides`` (4, 8, 16, 32;
    4, 8, 16, 16 with dilation) and the padding mask nearest-downsampled to each map.
    ``num_channels`` lists ``C_i``.
    """

    def __init__(self, depth: int = 50, frozen_stages: int = 1,
                 pretrained: bool | str | None = None, pretrained_prefix: str = '',
                 dilation: bool = False) -> None:
        super().__init__()
        if depth not in RESNET_CHANNELS:
            raise ValueError(f'ResNet depth must be one of {sorted(RESNET_CHANNELS)}, got {depth}')
        if dilation and depth < 50:
            raise ValueError(f'ResNet dilation (DC5) needs bottleneck blocks (depth 50 or 101), got '
                             f'depth {depth}')
        net = getattr(torchvision.models, f'resnet{depth}')(
            weights=None, norm_layer=FrozenBatchNorm2d,
            replace_stride_with_dilation=[False, False, bool(dilation)])
        if pretrained:
            load_pretrained_trunk(net, depth, pretrained, pretrained_prefix)
        self.body = IntermediateLayerGetter(
            net, return_layers={stage: str(i) for i, stage in enumerate(_STAGES)})
        self.num_channels = list(RESNET_CHANNELS[depth])
        self.strides = [4, 8, 16, 16 if dilation else 32]
        freeze_stages(self.body, frozen_stages)

    def forward(self, imgs: torch.Tensor, pad_mask: torch.Tensor
                ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        features = list(self.body(imgs).values())
        masks = [F.interpolate(pad_mask[None].float(), size=f.shape[-2:]).to(torch.bool)[0]
                 for f in features]
        return features, masks
