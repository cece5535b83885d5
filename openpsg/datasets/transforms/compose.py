"""Pipeline plumbing: :class:`Compose`, :class:`RandomChoice` and the helpers every transform uses.

A transform is a callable ``results: dict -> dict | None``; ``None`` rejects the sample (the dataset
then draws another image). Randomness comes only from ``results['rng']``, a
``numpy.random.Generator`` that the dataset puts into every input dict, so a pipeline run twice on
the same input with equally seeded generators gives identical outputs.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ...errors import InputError
from ...registry import TRANSFORMS

Transform = Callable[[dict], Any]


class PipelineError(InputError, RuntimeError):
    """A pipeline that cannot run on its input, e.g. a transform misses a field that an earlier
    transform should have added."""


def _name(transform: object) -> str:
    return getattr(transform, '__name__', type(transform).__name__)


def require(results: Mapping[str, Any], key: str, transform: object, hint: str = '') -> Any:
    """``results[key]``, or a :class:`PipelineError` naming the transform, image and field."""
    if key not in results:
        raise PipelineError(f'{_name(transform)}: image_id={results.get("image_id", "?")}: field '
                            f'{key!r} is missing from the pipeline results'
                            + (f'; {hint}' if hint else ''))
    return results[key]


def get_rng(results: Mapping[str, Any], transform: object) -> np.random.Generator:
    """The sample's random generator ``results['rng']`` (set by the dataset for every sample)."""
    rng = require(results, 'rng', transform,
                  "random transforms draw from results['rng'] = np.random.default_rng(seed); "
                  'the dataset sets it, set it yourself when calling a pipeline by hand')
    if not isinstance(rng, np.random.Generator):
        raise PipelineError(f"{_name(transform)}: results['rng'] must be a "
                            f'numpy.random.Generator, got {type(rng).__name__}')
    return rng


def build_transform(cfg: Mapping[str, Any] | Transform) -> Transform:
    """A transform from its config dict (``dict(type='Resize', ...)``) or an existing callable."""
    if isinstance(cfg, Mapping):
        return TRANSFORMS.build(cfg)
    if callable(cfg):
        return cfg
    raise TypeError(f'a pipeline step must be a config dict or a callable, got {cfg!r}')


@TRANSFORMS.register()
class Compose:
    """Run transforms in order; stop and return ``None`` as soon as one rejects the sample.

    Returns whatever the last transform returns (a :class:`~openpsg.structures.Sample` when the
    pipeline ends with :class:`PackSample`).
    """

    def __init__(self, transforms: Sequence[Mapping[str, Any] | Transform]) -> None:
        self.transforms = [build_transform(t) for t in transforms]

    def __call__(self, results: dict) -> Any:
        for transform in self.transforms:
            results = transform(results)
            if results is None:
                return None
        return results

    def __repr__(self) -> str:
        inner = ''.join(f'\n    {t!r},' for t in self.transforms)
        return f'Compose([{inner}\n])'


@TRANSFORMS.register()
class RandomChoice:
    """Apply one of several sub-pipelines, each chosen with equal probability (AutoAugment style).

    ``transforms`` is a list of pipelines, each a list of transform configs::

        dict(type='RandomChoice', transforms=[
            [dict(type='Resize', ...)],
            [dict(type='Resize', ...), dict(type='RelRandomCrop')]])
    """

    def __init__(self, transforms: Sequence[Sequence[Mapping[str, Any] | Transform]]) -> None:
        if len(transforms) == 0:
            raise ValueError('RandomChoice needs at least one sub-pipeline')
        self.pipelines = [Compose(p) for p in transforms]

    def __call__(self, results: dict) -> dict | None:
        choice = int(get_rng(results, self).integers(len(self.pipelines)))
        return self.pipelines[choice](results)

    def __repr__(self) -> str:
        return f'RandomChoice({self.pipelines!r})'
