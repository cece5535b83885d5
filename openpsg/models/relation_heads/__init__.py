"""Two-stage relation heads (IMP, MOTIFS, VCTree, GPSNet) and their shared parts."""
from .base import (FrequencyBias, ObjectSet, RelationHead, RelationInputs, RelationOutputs,
                   RelationResult, RelationSampler, RelationTargets, assign_object_targets,
                   box_position_features, load_frequency_counts, predicate_frequency_counts,
                   two_rect_maps)
from .gpsnet import GPSHead
from .imp import IMPHead
from .motifs import MotifHead
from .vctree import VCTreeHead

__all__ = [
    'FrequencyBias', 'GPSHead', 'IMPHead', 'MotifHead', 'ObjectSet', 'RelationHead',
    'RelationInputs', 'RelationOutputs', 'RelationResult', 'RelationSampler', 'RelationTargets',
    'VCTreeHead', 'assign_object_targets', 'box_position_features', 'load_frequency_counts',
    'predicate_frequency_counts', 'two_rect_maps',
]
