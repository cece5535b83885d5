"""ResNet + feature pyramid backbones of the panoptic segmenters, from torchvision's parts."""
from __future__ import annotations

import torchvision
from torch import nn
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.ops.feature_pyramid_network import ExtraFPNBlock
from torchvision.ops.misc import FrozenBatchNorm2d

from .resnet import RESNET_CHANNELS, freeze_stages, load_pretrained_trunk


def build_resnet_fpn(depth: int = 50, pretrained: bool | str = False, frozen_stages: int = 1,
                     out_channels: int = 256, norm_layer: type[nn.Module] | None = None,
                     extra_blocks: ExtraFPNBlock | None = None) -> BackboneWithFPN:
    """ResNet-``depth`` (FrozenBatchNorm) + FPN with ``out_channels`` channels.

    The FPN maps are ``'0'..'3'`` (P2..P5, strides 4..32) followed by those of ``extra_blocks``:
    torchvision's default ``LastLevelMaxPool`` adds ``'pool'`` (stride 64, max-pooled P5);
    ``LastLevelP6P7(out_channels, out_channels)`` adds ``'p6'``, ``'p7'`` (strides 64, 128: stride-2
    3x3 convs on P5, ReLU between). ``norm_layer`` normalises the FPN convolutions (``None``: none).

    ``frozen_stages`` as :func:`~.resnet.freeze_stages` (``1``: stem and layer1 frozen, layer2..4
    trained; the FPN always trains). ``pretrained``: ``False``,
    ``True`` (torchvision ImageNet weights) or a path to a torchvision ResNet state dict (see
    :func:`~.resnet.load_pretrained_trunk`).
    """
    net = getattr(torchvision.models, f'resnet{depth}')(weights=None, norm_layer=FrozenBatchNorm2d)
    if pretrained:
        load_pretrained_trunk(net, depth, pretrained)
    backbone = BackboneWithFPN(net, {f'layer{k}': str(k - 1) for k in range(1, 5)},
                               list(RESNET_CHANNELS[depth]), out_channels, extra_blocks=extra_blocks,
                               norm_layer=norm_layer)
    freeze_stages(backbone.body, frozen_stages)
    return backbone
