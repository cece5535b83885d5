"""Two-stage relation heads (IMP, MOTIFS, VCTree, GPSNet) and their shared parts.

``contracts`` (what a head takes and returns), ``head`` (the base class), ``features`` (RoI,
union and spatial features), ``embeddings`` (box position and class-name embeddings),
``sampling`` (training pairs, object targets, test pairs), ``frequency`` (the frequency bias),
``pair_classifier`` (MOTIFS/VCTree predicate classifier), ``postprocess`` (ranking); one module
per head.
"""
from .contracts import ObjectSet, RelationInputs, RelationOutputs, RelationResult, RelationTargets
from .frequency import FrequencyBias
from .gpsnet import GPSHead
from .head import RelationHead
from .imp import IMPHead
from .motifs import MotifHead
from .sampling import RelationSampler, assign_object_targets
from .vctree import VCTreeHead

__all__ = [
    'FrequencyBias', 'GPSHead', 'IMPHead', 'MotifHead', 'ObjectSet', 'RelationHead',
    'RelationInputs', 'RelationOutputs', 'RelationResult', 'RelationSampler', 'RelationTargets',
    'VCTreeHead', 'assign_object_targets',
]
