"""First-stage panoptic segmenters of the two-stage scene-graph models."""
from .base import FeatureLevel, Segmenter, SegmentResult, segments_to_prediction
from .coco_weights import COCO_THING_IDS, convert_torchvision_maskrcnn, load_torchvision_maskrcnn
from .panoptic_fcn import PanopticFCN
from .panoptic_fpn import PanopticFPN
from .panoptic_fusion import combine_things_and_stuff, heuristic_fusion
from .semantic_head import SemanticFPNHead, semantic_target, semantic_targets

__all__ = ['COCO_THING_IDS', 'FeatureLevel', 'PanopticFCN', 'PanopticFPN', 'SegmentResult',
           'Segmenter', 'SemanticFPNHead', 'combine_things_and_stuff',
           'convert_torchvision_maskrcnn', 'heuristic_fusion',
           'load_torchvision_maskrcnn', 'segments_to_prediction', 'semantic_target',
           'semantic_targets']
