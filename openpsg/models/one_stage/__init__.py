"""One-stage set-prediction models (DETR family) and the parts they share: positional encoding,
transformer, panoptic mask branch, Hungarian matcher."""
from .detr import DETR, MLP, DETRBase, Joiner, TransformerOutputs
from .detr4seg import DETR4Seg
from .mask_head import MaskHeadSmallConv, MHAttentionMap, predict_masks
from .matcher import HungarianMatcher, detr_cost, linear_assignment
from .position_encoding import PositionEmbeddingSine
from .psgformer import PSGFormer
from .psgtr import PSGTr
from .transformer import Transformer, TransformerDecoder, TransformerEncoder

__all__ = [
    'DETR', 'DETR4Seg', 'DETRBase', 'HungarianMatcher', 'Joiner', 'MHAttentionMap', 'MLP',
    'MaskHeadSmallConv', 'PositionEmbeddingSine', 'PSGFormer', 'PSGTr', 'Transformer', 'TransformerDecoder',
    'TransformerEncoder', 'TransformerOutputs', 'detr_cost', 'linear_assignment', 'predict_masks',
]
