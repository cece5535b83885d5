"""Backbones: feature extractors that return multi-scale maps and their padding masks."""
from .resnet import ResNet

__all__ = ['ResNet']
