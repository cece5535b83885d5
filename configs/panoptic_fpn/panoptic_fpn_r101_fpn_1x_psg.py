# Panoptic FPN R101 trained on PSG, evaluated with PQ. The backbone starts from ImageNet
# (no ResNet-101 COCO Mask R-CNN weights in torchvision).
_base_ = ['./panoptic_fpn_r50_fpn_1x_psg.py', '../_base_/models/panoptic_fpn_r101_fpn_psg.py']
load_from = None
