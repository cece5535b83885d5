# Panoptic FPN, ResNet-101 FPN, for PSG (see panoptic_fpn_r50_fpn_psg.py). torchvision has no
# ResNet-101 Mask R-CNN COCO weights, so the backbone starts from torchvision's ImageNet weights
# (downloaded into the torch hub cache on first use).
_base_ = ['./panoptic_fpn_r50_fpn_psg.py']
model = dict(backbone=dict(depth=101, pretrained=True))
