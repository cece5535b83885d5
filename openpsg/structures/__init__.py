"""Data containers, label conventions and mask/box ops shared by every part of openpsg."""
from .batch import Batch, collate_samples
from .labels import (CLASSES, NUM_CLASSES, NUM_PREDICATES, NUM_THING_CLASSES, PREDICATES,
                     STUFF_CLASSES, THING_CLASSES)
from .masks import (VOID, decode_rle, encode_rle, id2rgb, id_map_iou, id_map_to_masks, mask_iou,
                    masks_to_boxes, masks_to_id_map, rgb2id, segment_ids_to_id_map)
from .scene_graph import (GroundTruth, ImageMeta, Prediction, PredictionMatchError, Sample,
                          index_predictions)

__all__ = [
    'CLASSES', 'NUM_CLASSES', 'NUM_PREDICATES', 'NUM_THING_CLASSES', 'PREDICATES', 'STUFF_CLASSES',
    'THING_CLASSES', 'VOID', 'decode_rle', 'encode_rle', 'id2rgb', 'id_map_iou', 'id_map_to_masks',
    'mask_iou', 'masks_to_boxes', 'masks_to_id_map', 'rgb2id', 'segment_ids_to_id_map',
    'Batch', 'GroundTruth', 'ImageMeta', 'Prediction', 'PredictionMatchError', 'Sample',
    'collate_samples', 'index_predictions',
]
