"""ResNet + feature pyramid backbones of the panoptic segmenters, from torchvision's parts."""
from __future__ import annotations

import torchvision
from torch import nn
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.ops.feature_pyramid_network import ExtraFPNBlock
from torchvision.ops.misc import FrozenBatchNorm2d

from .resnet import RESNET_CHANNELS, load_pretrained_trunk


def build_resnet_fpn(depth: int = 50, pretrained: bool | str = False, trainable_layers: int = 3,
                     out_channels: int = 256, norm_layer: type[nn.Module] | None = None,
                     extra_blocks: ExtraFPNBlock | None = None) -> BackboneWithFPN:
    """ResNet-``depth`` (FrozenBatchNorm) + FPN with ``out_channels`` channels.

    The FPN maps are ``'0'..'3'`` (P2..P5, strides 4..32) followed by those of ``extra_blocks``:
    torchvision's default ``LastLevelMaxPool`` adds ``'pool'`` (stride 64, max-pooled P5);
    ``LastLevelP6P7(out_channels, out_channels)`` adds ``'p6'``, ``'p7'`` (strides 64, 128: stride-2
    3x3 convs on P5, ReLU between). ``norm_layer`` normalises the FPN convolutions (``None``: none).

    ``trainable_layers=3`` trains layer2..layer4 (stem and layer1 frozen). ``pretrained``: ``False``,
    ``True`` (torchvision ImageNet weights) or a path to a torchvision ResNet state dict (see
    :func:`~.resnet.load_pretrained_trunk`).
    """
    net = getattr(torchvision.models, f'resnet{depth}')(weights=None, norm_layer=FrozenBatchNorm2d)
    if pretrained:
        load_pretrained_trunk(net, depth, pretrained)
    if not 0 <= trainable_layers <= 5:
        raise ValueError(f'backbone.trainable_layers must be in 0..5, got {trainable_layers}')
    trained = ('layer4', 'layer3', 'layer2', 'layer1', 'conv1')[:trainable_layers]
    for name, param in net.named_parameters():
        param.requires_grad_(name.startswith(trained))
    return BackboneWithFPN(net, {f'layer{k}': str(k - 1) for k in range(1, 5)},
                           list(RESNET_CHANNELS[depth]), out_channels, extra_blocks=extra_blocks,
                           norm_layer=norm_layer)
