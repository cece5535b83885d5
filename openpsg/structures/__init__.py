"""Data containers, label conventions and mask/box ops shared by every part of openpsg."""
from .batch import Batch, collate_samples
from .labels import (CLASSES, GT_SEGMENT_MODES, MODES, NUM_CLASSES, NUM_PREDICATES,
                     NUM_THING_CLASSES, PREDICATES, STUFF_CLASSES, THING_CLASSES)
from .masks import (VOID, decode_rle, encode_rle, id2rgb, id_map_iou, id_map_to_masks, mask_iou,
                    masks_to_boxes, masks_to_id_map, rgb2id, segment_ids_to_id_map)
from .scene_graph import (GroundTruth, ImageMeta, Prediction, PredictionMatchError, Sample,
                          index_predictions, no_relations)
from .to_original import (boxes_to_original, logits_to_original, nearest_to_original,
                          normalized_boxes_to_original, openpsg_logits_to_original, original_shape,
                          sample_logits_at_original, unflip, upsample_stride)

__all__ = [
    'CLASSES', 'GT_SEGMENT_MODES', 'MODES', 'NUM_CLASSES', 'NUM_PREDICATES', 'NUM_THING_CLASSES', 'PREDICATES', 'STUFF_CLASSES',
    'THING_CLASSES', 'VOID', 'decode_rle', 'encode_rle', 'id2rgb', 'id_map_iou', 'id_map_to_masks',
    'mask_iou', 'masks_to_boxes', 'masks_to_id_map', 'rgb2id', 'segment_ids_to_id_map',
    'Batch', 'GroundTruth', 'ImageMeta', 'Prediction', 'PredictionMatchError', 'Sample',
    'collate_samples', 'index_predictions', 'no_relations',
    'boxes_to_original', 'logits_to_original', 'nearest_to_original', 'normalized_boxes_to_original',
    'openpsg_logits_to_original', 'original_shape', 'sample_logits_at_original', 'unflip',
    'upsample_stride',
]
