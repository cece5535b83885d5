"""Data transforms: callables ``results: dict -> dict | None`` registered in ``TRANSFORMS``.

A pipeline is a list of config dicts built by :class:`Compose`; ``None`` from any step rejects the
sample. Random steps draw from ``results['rng']`` (a ``numpy.random.Generator`` that the dataset
puts into every input). The usual order is::

    LoadImage -> LoadPanopticAnnotations -> Resize -> RandomFlip -> (RandomChoice / RelRandomCrop)
    -> Normalize -> Pad -> (SegRescale) -> PackSample        # -> openpsg.structures.Sample
"""
from .compose import Compose, PipelineError, RandomChoice, build_transform, get_rng, require
from .crop import OBJECT_KEYS, RelRandomCrop, crop_objects
from .formatting import Normalize, PackSample
from .geometric import Pad, RandomFlip, Resize, SegRescale, rescale_size, resize_nearest
from .loading import IGNORE_INDEX, LoadImage, LoadPanopticAnnotations

__all__ = [
    'Compose', 'PipelineError', 'RandomChoice', 'build_transform', 'get_rng', 'require',
    'OBJECT_KEYS', 'RelRandomCrop', 'crop_objects', 'Normalize', 'PackSample', 'Pad', 'RandomFlip',
    'Resize', 'SegRescale', 'rescale_size', 'resize_nearest', 'IGNORE_INDEX', 'LoadImage',
    'LoadPanopticAnnotations',
]
