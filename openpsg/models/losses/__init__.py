"""Losses of set-prediction models and segmenters: classification (with a no-object class, or
sigmoid focal), boxes, masks."""
from .box import giou_loss, l1_loss, mmdet_box_losses
from .classification import no_object_cross_entropy, sigmoid_focal_classification
from .mask import dice_loss, sigmoid_focal_loss, squared_dice_loss

__all__ = ['dice_loss', 'giou_loss', 'l1_loss', 'mmdet_box_losses', 'no_object_cross_entropy',
           'sigmoid_focal_classification', 'sigmoid_focal_loss', 'squared_dice_loss']
