"""Scene-graph models; importing this package registers every model in
:data:`openpsg.registry.MODELS` (the registry imports it on first use)."""
from . import backbones, baselines, losses, one_stage, relation_heads, segmenters, two_stage
from .base import PSGModel
from .baselines import FrequencyBaseline, frequency_scene_graph

__all__ = ['FrequencyBaseline', 'PSGModel', 'backbones', 'baselines', 'frequency_scene_graph',
           'losses', 'one_stage', 'relation_heads', 'segmenters', 'two_stage']
