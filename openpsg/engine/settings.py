"""The trainer's config sections: their keys, defaults and allowed values, checked at start-up.

    runner = dict(max_epochs=12)
    data = dict(samples_per_gpu=2, workers_per_gpu=2, group_by_aspect_ratio=True,
                persistent_workers=False, train=dict(...), val=dict(...), test=dict(...))
    optimizer_config = dict(grad_clip=dict(max_norm=0.1, norm_type=2))
    checkpoint_config = dict(interval=1, iter_interval=0, max_keep_ckpts=-1)
    log_config = dict(interval=50, hooks=[dict(type='TextLoggerHook')])
    evaluation = dict(interval=1, metric=['sgdet', 'PQ'], save_best='sgdet/openpsg/R@20',
                      rule='greater', **evaluate_arguments)
    freeze_modules = ['backbone']; find_unused_parameters = False; amp = 'none'

A key that a section does not have is an error where it would silently change the result
(``runner``, ``data``, ``optimizer_config``; ``evaluation`` keys go to
:func:`openpsg.evaluation.runner.evaluate`, whose signature decides) and a warning in the
bookkeeping sections (``checkpoint_config``, ``log_config``). ``optimizer`` and ``lr_config`` are
checked where they are built (:mod:`openpsg.engine.optim`), models, datasets, transforms and hooks
by their registries. Every error is a :class:`~openpsg.config.ConfigError` naming the key path.
"""
from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass
from typing import Any, Mapping

from ..checks import (Check, boolean, integer, list_of, mapping, names, one_of, optional, text)
from ..config import ConfigError, join_path
from ..evaluation.runner import evaluate
from ..registry import check_options
from .amp import AMP_MODES
from .checkpoint import CheckpointError
from .optim import check_grad_clip

logger = logging.getLogger('openpsg')


@dataclass(frozen=True)
class Section:
    """One top-level config dict: ``keys`` maps each key to ``(check, default)``; ``strict``:
    an unknown key is an error (else a warning); ``passthrough``: keys checked elsewhere."""

    name: str
    keys: Mapping[str, tuple[Check, Any]]
    strict: bool
    passthrough: bool = False

    def read(self, cfg: Mapping[str, Any]) -> dict[str, Any]:
        """The section's values in ``cfg`` (defaults for absent keys), each checked. With
        ``passthrough``, unknown keys are returned unchecked instead of reported."""
        raw = cfg.get(self.name)
        raw = {} if raw is None else mapping(raw, self.name)
        out = {key: default for key, (_, default) in self.keys.items()}
        for key, value in raw.items():
            path = join_path(self.name, key)
            if key in self.keys:
                out[key] = self.keys[key][0](value, path)
            elif self.passthrough:
                out[key] = value
            else:
                close = difflib.get_close_matches(str(key), self.keys, n=1, cutoff=0.6)
                message = (f"{path}: {self.name} has no key '{key}'"
                           + (f"; did you mean '{close[0]}'?" if close else '')
                           + f" (its keys: {', '.join(self.keys)})")
                if self.strict:
                    raise ConfigError(message)
                logger.warning('%s; it is ignored', message)
        return out


def _grad_clip(value: Any, path: str) -> dict[str, Any] | None:
    """``None`` (no clipping) or the clipping arguments checked by
    :func:`~.optim.check_grad_clip`."""
    return None if value is None else check_grad_clip(mapping(value, path), path)


RUNNER = Section('runner', {'max_epochs': (integer(1), 12)}, strict=True)
DATA = Section('data', {
    'samples_per_gpu': (integer(1), None), 'workers_per_gpu': (integer(0), 0),
    'group_by_aspect_ratio': (boolean, True), 'persistent_workers': (boolean, False),
    'train': (mapping, None), 'val': (mapping, None), 'test': (mapping, None)}, strict=True)
OPTIMIZER_CONFIG = Section('optimizer_config', {'grad_clip': (_grad_clip, None)}, strict=True)
CHECKPOINT_CONFIG = Section('checkpoint_config', {
    'interval': (integer(1), 1), 'iter_interval': (integer(0), 0),
    'max_keep_ckpts': (integer(), -1)}, strict=False)
LOG_CONFIG = Section('log_config', {
    'interval': (integer(1), 50), 'hooks': (list_of(mapping), [])}, strict=False)
EVALUATION = Section('evaluation', {
    'interval': (integer(1), 1), 'metric': (names, None), 'save_best': (optional(text), None),
    'rule': (one_of('greater', 'less'), 'greater')}, strict=True, passthrough=True)
EVAL_HOOK_KEYS = ('interval', 'save_best', 'rule')


TOP_LEVEL = {'freeze_modules': (list_of(text), []), 'find_unused_parameters': (boolean, False),
             'amp': (one_of(*AMP_MODES), 'none'), 'custom_hooks': (list_of(mapping), [])}


def read_top_level(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The trainer's single-value settings (:data:`TOP_LEVEL`), checked; ``None`` means the
    default."""
    return {key: default if cfg.get(key) is None else check(cfg[key], key)
            for key, (check, default) in TOP_LEVEL.items()}


def evaluation_kwargs(evaluation: Mapping[str, Any] | None) -> dict[str, Any]:
    """The :func:`openpsg.evaluation.runner.evaluate` arguments of the config's ``evaluation``
    dict: its hook keys (``interval``, ``save_best``, ``rule``) dropped, ``metric`` renamed
    ``metrics`` (a list), ``workers`` ``None`` (one process per available core) unless given."""
    kwargs = {k: v for k, v in dict(evaluation or {}).items() if k not in EVAL_HOOK_KEYS}
    kwargs.setdefault('workers', None)
    if kwargs.get('metric') is not None:
        kwargs['metrics'] = names(kwargs.pop('metric'), 'evaluation.metric')
    kwargs.pop('metric', None)
    return kwargs


class _NoImages:
    """``dataset`` without images: what :func:`check_evaluation` evaluates."""

    image_ids: tuple[str, ...] = ()

    def __init__(self, dataset: Any) -> None:
        self.classes, self.predicates = dataset.classes, dataset.predicates
        self.num_things = dataset.num_things
        self.ann_file = getattr(dataset, 'ann_file', 'dataset')


def check_evaluation(kwargs: Mapping[str, Any], dataset: Any, save_best: str | None = None,
                     where: str = 'evaluation') -> list[str]:
    """Run :func:`openpsg.evaluation.runner.evaluate` with ``kwargs`` on ``dataset`` without its
    images: a wrong argument, metric, protocol, ... is a :class:`ConfigError` naming ``where``,
    before any image is predicted. ``save_best`` must be one of the result keys. Returns the keys
    the evaluation will report."""
    check_options(evaluate, kwargs, where, 'evaluate', passed=('predictions', 'dataset'))
    if kwargs.get('workers') is not None:
        integer(0)(kwargs['workers'], join_path(where, 'workers'))
    try:  # (no process pool for no image)
        keys = sorted(evaluate([], _NoImages(dataset), **{**kwargs, 'workers': 0}))
    except (TypeError, ValueError) as err:
        raise ConfigError(f'{where}: {err}') from err
    if save_best is not None and save_best not in keys:
        close = difflib.get_close_matches(save_best, keys, n=3, cutoff=0.6)
        hint = f'; closest: {", ".join(close)}' if close else ''
        raise ConfigError(f'{where}.save_best: {save_best!r} is not a result of this evaluation'
                          f'{hint} (results: {", ".join(keys)})')
    return keys


def _changed(saved: Any, current: Any, path: str) -> list[tuple[str, Any, Any]]:
    """``(path, saved value, current value)`` of every leaf where two config values differ."""
    if isinstance(saved, Mapping) and isinstance(current, Mapping):
        return [c for key in {**saved, **current}
                for c in _changed(saved.get(key), current.get(key), join_path(path, key))]
    return [] if saved == current else [(path, saved, current)]


def resume_changes(saved: Mapping[str, Any], current: Mapping[str, Any], saved_world_size: int,
                   world_size: int, path: str) -> list[str]:
    """Warnings for a resume whose config ``current`` differs from the checkpoint's ``saved``
    config, each saying which value the resumed run uses: the checkpoint's optimizer settings
    (they are part of the optimizer state it continues), this config's ``lr_config`` and batch
    size. Another optimizer type is a :class:`~openpsg.engine.checkpoint.CheckpointError`."""
    old_opt, new_opt = dict(saved.get('optimizer') or {}), dict(current.get('optimizer') or {})
    if old_opt.get('type') != new_opt.get('type'):
        raise CheckpointError(
            f'{path}: the checkpoint continues a {old_opt.get("type")} optimizer, this config '
            f'uses {new_opt.get("type")} (optimizer.type); its state cannot be resumed with '
            f'another optimizer: use the same optimizer, or --load-from {path} to start a new '
            'run from its weights')
    lines = [f"{path}: {key}: the checkpoint's run used {old!r}, this config says {new!r}; the "
             "checkpoint's value is used (it is part of the optimizer state that --resume "
             "continues; start a new run with --load-from to change it)"
             for key, old, new in _changed(old_opt, new_opt, 'optimizer')]
    lines += [f"{path}: {key}: the checkpoint's run used {old!r}, this config says {new!r}; this "
              "config's value is used from the first resumed iteration"
              for key, old, new in _changed(saved.get('lr_config'), current.get('lr_config'),
                                            'lr_config')]
    old_batch = (saved.get('data') or {}).get('samples_per_gpu')
    new_batch = (current.get('data') or {}).get('samples_per_gpu')
    if (old_batch, saved_world_size) != (new_batch, world_size):
        lines.append(f"{path}: batch size: the checkpoint's run used {old_batch} image(s) per GPU "
                     f'on {saved_world_size} GPU(s), this run uses {new_batch} on {world_size}; '
                     "this run's batch size is used (the lr is not rescaled)")
    return lines
