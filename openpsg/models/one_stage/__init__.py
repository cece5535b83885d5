"""One-stage set-prediction models (DETR family, EGTR) and the parts they share: the DETR base
(backbone, positional encoding, transformer), Deformable DETR's transformer, the panoptic mask
branch, Hungarian matchers, the set criterion, training targets and the panoptic merge."""
from .deformable_detr import DeformableDETR, DeformableDETRBase
from .deformable_transformer import DeformableTransformer, DeformableTransformerOutputs
from .detr import DETR
from .detr4seg import DETR4Seg
from .detr_base import MLP, DETRBase, Joiner, TransformerOutputs
from .egtr import EGTR
from .egtr_panoptic import PanopticEGTR
from .mask_head import MaskFeatures, MaskHeadSmallConv, MHAttentionMap, build_mask_branch, predict_masks
from .matcher import (FocalHungarianMatcher, FocalMaskHungarianMatcher, HungarianMatcher, detr_cost,
                      linear_assignment)
from .ms_deform_attn import MSDeformAttn
from .position_encoding import PositionEmbeddingSine
from .psgformer import PSGFormer
from .psgtr import PSGTr
from .set_criterion import SetCriterion
from .transformer import Transformer, TransformerDecoder, TransformerEncoder

__all__ = [
    'DETR', 'DETR4Seg', 'DETRBase', 'DeformableDETR', 'DeformableDETRBase', 'DeformableTransformer',
    'DeformableTransformerOutputs', 'EGTR', 'FocalHungarianMatcher', 'FocalMaskHungarianMatcher',
    'HungarianMatcher', 'Joiner', 'MHAttentionMap', 'MLP', 'MSDeformAttn', 'MaskFeatures',
    'MaskHeadSmallConv', 'PanopticEGTR', 'PositionEmbeddingSine', 'PSGFormer', 'PSGTr',
    'SetCriterion', 'Transformer', 'TransformerDecoder', 'TransformerEncoder', 'TransformerOutputs',
    'build_mask_branch', 'detr_cost', 'linear_assignment', 'predict_masks',
]
