"""Losses: classification with a no-object class, boxes, masks."""
from .box import giou_loss, l1_loss
from .classification import no_object_cross_entropy
from .mask import dice_loss, sigmoid_focal_loss, squared_dice_loss

__all__ = ['dice_loss', 'giou_loss', 'l1_loss', 'no_object_cross_entropy', 'sigmoid_focal_loss',
           'squared_dice_loss']
