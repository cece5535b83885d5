"""One-stage set-prediction models (DETR family, EGTR) and the parts they share: positional
encoding, transformers (DETR's and Deformable DETR's), panoptic mask branch, Hungarian matcher."""
from .deformable_detr import DeformableDETR, DeformableDETRBase
from .deformable_transformer import DeformableTransformer, DeformableTransformerOutputs
from .detr import DETR, MLP, DETRBase, Joiner, TransformerOutputs
from .detr4seg import DETR4Seg
from .egtr import EGTR
from .mask_head import MaskHeadSmallConv, MHAttentionMap, predict_masks
from .matcher import FocalHungarianMatcher, HungarianMatcher, detr_cost, linear_assignment
from .ms_deform_attn import MSDeformAttn
from .position_encoding import PositionEmbeddingSine
from .psgformer import PSGFormer
from .psgtr import PSGTr
from .transformer import Transformer, TransformerDecoder, TransformerEncoder

__all__ = [
    'DETR', 'DETR4Seg', 'DETRBase', 'DeformableDETR', 'DeformableDETRBase', 'DeformableTransformer',
    'DeformableTransformerOutputs', 'EGTR', 'FocalHungarianMatcher', 'HungarianMatcher', 'Joiner',
    'MHAttentionMap', 'MLP', 'MSDeformAttn', 'MaskHeadSmallConv', 'PositionEmbeddingSine',
    'PSGFormer', 'PSGTr', 'Transformer', 'TransformerDecoder', 'TransformerEncoder',
    'TransformerOutputs', 'detr_cost', 'linear_assignment', 'predict_masks',
]
