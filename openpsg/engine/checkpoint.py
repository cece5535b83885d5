"""Checkpoint files: atomic writes, safe reads, pruning, ``latest.pth`` and weight loading.

A checkpoint is a dict of tensors and plain Python containers only, so
``torch.load(path, weights_only=True)`` reads it without unpickling arbitrary objects::

    {'meta': {'epoch', 'inner_iter', 'iter', 'seed', 'world_size', 'samples_per_gpu', 'config',
              'classes', 'predicates', 'versions', 'time', 'best'},
     'state_dict': model weights, 'optimizer': ..., 'scheduler': ..., 'scaler': ...,
     'rng': [one :func:`openpsg.engine.env.get_rng_state` per rank]}

``meta.epoch`` counts finished epochs and ``meta.inner_iter`` the batches already trained in the
next one, so a checkpoint written mid-epoch resumes at the following batch. ``meta.config`` is the
run's config as :meth:`openpsg.config.Config.dump` writes it (read back without running it) and
``meta.best`` is ``None`` or ``{'key', 'value', 'epoch', 'file'}`` of the best checkpoint so far.

A checkpoint may come from someone else: :func:`check_meta` checks every ``meta`` key (type,
range) before a resume uses it, and ``meta.best.file`` must be exactly the name
:func:`best_checkpoint_name` gives its key and epoch, a plain file name in the work dir.
"""
from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from ..checks import integer, list_of, mapping, optional, text
from ..config import ConfigError
from ..errors import InputError
from ..fileio import atomic_write, fsync_dir

LATEST = 'latest.pth'
# the files a training run writes into its work dir
RUN_CHECKPOINT = re.compile(r'(epoch_\d+|iter_\d+|best_[\w@.-]+_epoch_\d+|latest)\.pth', re.ASCII)
_COUNT = integer(0, 2**40)
_UNSAFE = re.compile(r'[^\w@.-]', re.ASCII)


class CheckpointError(InputError, RuntimeError):
    """A checkpoint file that is missing, unreadable, or does not hold what is asked of it."""


def best_checkpoint_name(key: str, epoch: int) -> str:
    """``best_<key>_epoch_<epoch>.pth``, every character of the metric ``key`` other than a
    letter, digit, ``_``, ``@``, ``.`` or ``-`` replaced by ``_`` (``sgdet/openpsg/R@20`` ->
    ``best_sgdet_openpsg_R@20_epoch_3.pth``): always a plain file name."""
    return f'best_{_UNSAFE.sub("_", key)}_epoch_{epoch}.pth'


def _best(value: Any, path: str) -> dict[str, Any]:
    best = dict(mapping(value, path))
    if set(best) != {'key', 'value', 'epoch', 'file'}:
        raise ConfigError(f'{path}: must have the keys key, value, epoch and file, '
                          f'got {sorted(map(str, best))}')
    key, epoch = text(best['key'], f'{path}.key'), integer(1, 2**40)(best['epoch'], f'{path}.epoch')
    if type(best['value']) not in (int, float):
        raise ConfigError(f"{path}.value: must be a number, got {best['value']!r}")
    if best['file'] != best_checkpoint_name(key, epoch):
        raise ConfigError(f'{path}.file: must be {best_checkpoint_name(key, epoch)!r} (the best '
                          f'checkpoint of {key!r} at epoch {epoch}, a file in the work dir), '
                          f'got {best["file"]!r}')
    return best


META_KEYS = {
    'epoch': _COUNT, 'inner_iter': _COUNT, 'iter': _COUNT, 'seed': integer(0, 2**63 - 1),
    'world_size': integer(1, 2**20), 'samples_per_gpu': integer(1, 2**20), 'config': text,
    'classes': list_of(text), 'predicates': list_of(text), 'versions': mapping,
    'time': text, 'best': optional(_best)}
META_REQUIRED = ('epoch', 'inner_iter', 'iter', 'seed', 'world_size', 'samples_per_gpu', 'config')


def check_meta(meta: Any, path: str) -> dict[str, Any]:
    """The ``meta`` entry of the checkpoint ``path``, checked against :data:`META_KEYS` (types,
    ranges, no unknown and no missing key); a :class:`CheckpointError` names the file and the
    field."""
    try:
        meta = dict(mapping(meta, 'meta'))
        missing = [k for k in META_REQUIRED if k not in meta]
        unknown = sorted(str(k) for k in meta if k not in META_KEYS)
        if missing or unknown:
            raise ConfigError('meta: ' + '; '.join(
                part for part in (f'missing {missing}' if missing else '',
                                  f'unknown keys {unknown}' if unknown else '') if part))
        return {k: check(meta[k], f'meta.{k}') for k, check in META_KEYS.items() if k in meta}
    except ConfigError as err:
        raise CheckpointError(f'{path}: {err}') from None


def checkpoint_names(meta: Any, key: str) -> tuple[str, ...] | None:
    """``meta[key]`` (``'classes'`` or ``'predicates'``) if ``meta`` is a dict holding a non-empty
    list of strings there, else ``None``."""
    names = meta.get(key) if isinstance(meta, Mapping) else None
    if isinstance(names, (list, tuple)) and names and all(isinstance(n, str) for n in names):
        return tuple(names)
    return None


def save_checkpoint(checkpoint: Mapping[str, Any], path: str | os.PathLike) -> None:
    """Write ``checkpoint`` to ``path`` atomically: a temporary file in the same folder is
    written, flushed to disk and renamed over ``path``, so a crash leaves either the old file or
    the new one."""
    with atomic_write(path, 'wb', fsync=True) as f:
        torch.save(dict(checkpoint), f)


def link_checkpoint(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Make ``dst`` another name of the file ``src`` (a hard link, or a copy where links are not
    supported), replacing ``dst`` atomically."""
    src, dst = Path(src), Path(dst)
    tmp = dst.with_name(f'.{dst.name}.{os.getpid()}.tmp')
    if tmp.exists():
        tmp.unlink()
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)
    fsync_dir(dst.parent)


def load_checkpoint(path: str | os.PathLike,
                    map_location: str | torch.device = 'cpu') -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; every failure names the file."""
    path = str(path)
    if not os.path.isfile(path):
        raise CheckpointError(f'{path}: checkpoint file not found')
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        unsafe = re.search(r'Unsupported global: GLOBAL (\S+)', str(err))
        if unsafe:
            raise CheckpointError(
                f'{path}: the checkpoint holds a pickled Python object ({unsafe.group(1)}) that is '
                'not loaded for safety (torch.load with weights_only=True); convert the file to '
                'tensors and plain containers') from err
        unpickler = re.search(r'WeightsUnpickler error:\s*(.+)', str(err))
        reason = unpickler.group(1) if unpickler else next(
            (line for line in str(err).splitlines() if line.strip()), '')
        raise CheckpointError(f'{path}: cannot read the checkpoint; the file is truncated or '
                              f'corrupted ({type(err).__name__}: {reason[:160]})') from err
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f'{path}: a checkpoint must hold a dict, '
                              f'found {type(checkpoint).__name__}')
    return checkpoint


def model_weights(checkpoint: Mapping[str, Any], path: str) -> dict[str, torch.Tensor]:
    """The model weights of a checkpoint: its ``state_dict`` (ours, mmdet's) or ``model`` (DETR's)
    entry, or the checkpoint itself when it is a bare state dict (torchvision's)."""
    for key in ('state_dict', 'model'):
        if key in checkpoint:
            weights = checkpoint[key]
            break
    else:
        weights = checkpoint
    bad = [k for k, v in weights.items() if not isinstance(v, torch.Tensor)] if isinstance(
        weights, Mapping) else ['<not a dict>']
    if bad:
        raise CheckpointError(f'{path}: no model weights found (expected a "state_dict" entry of '
                              f'tensors; non-tensor entries: {bad[:5]})')
    return {k.removeprefix('module.'): v for k, v in weights.items()}


@dataclass
class WeightsReport:
    """What :func:`load_weights` did: keys the model has but the file lacks, keys the file has
    but the model lacks, and ``(key, file shape, model shape)`` of entries skipped for their
    shape."""

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def lines(self, max_keys: int | None = None) -> list[str]:
        """One line for the missing keys, one for the unexpected keys and one per mismatched
        shape; with ``max_keys``, at most that many keys and shape lines each, the rest counted."""
        def listed(keys: list[str]) -> str:
            more = len(keys) - max_keys if max_keys is not None else 0
            shown = keys[:max_keys] if max_keys is not None else keys
            return ', '.join(shown) + (f', ... ({more} more)' if more > 0 else '')

        out = []
        if self.missing:
            out.append(f'missing keys in the checkpoint ({len(self.missing)}): '
                       f'{listed(self.missing)}')
        if self.unexpected:
            out.append(f'unexpected keys in the checkpoint ({len(self.unexpected)}): '
                       f'{listed(self.unexpected)}')
        for key, file_shape, model_shape in self.mismatched[:max_keys]:
            out.append(f'shape mismatch for {key}: checkpoint {list(file_shape)} vs model '
                       f'{list(model_shape)} (not loaded)')
        hidden = len(self.mismatched) - len(self.mismatched[:max_keys])
        if hidden:
            out.append(f'{hidden} more shape mismatch(es)')
        return out


def load_weights(model: nn.Module, path: str | os.PathLike, strict: bool = False) -> WeightsReport:
    """Copy the weights of the checkpoint ``path`` into ``model``; entries whose shape differs are
    skipped. ``strict=True`` raises :class:`CheckpointError` unless the keys and shapes match
    exactly.
    """
    path = str(path)
    weights = model_weights(load_checkpoint(path), path)
    own = model.state_dict()
    report = WeightsReport(
        missing=[k for k in own if k not in weights],
        unexpected=[k for k in weights if k not in own],
        mismatched=[(k, tuple(v.shape), tuple(own[k].shape)) for k, v in weights.items()
                    if k in own and v.shape != own[k].shape])
    if strict and not report.clean:
        raise CheckpointError(f'{path}: the weights do not fit the model:\n  '
                              + '\n  '.join(report.lines()))
    skip = {k for k, _, _ in report.mismatched}
    model.load_state_dict({k: v for k, v in weights.items() if k in own and k not in skip},
                          strict=False)
    return report


def find_latest(work_dir: str | os.PathLike) -> str | None:
    """``work_dir/latest.pth`` if it exists, else ``None``."""
    path = Path(work_dir) / LATEST
    return str(path) if path.is_file() else None


def prune_checkpoints(work_dir: str | os.PathLike, prefix: str, keep: int) -> list[str]:
    """Delete all but the ``keep`` highest-numbered ``{prefix}{N}.pth`` files (``keep <= 0``: keep
    all); returns the deleted paths."""
    if keep <= 0:
        return []
    pattern = re.compile(rf'{re.escape(prefix)}(\d+)\.pth')
    found = sorted((int(m.group(1)), p) for p in Path(work_dir).iterdir()
                   if (m := pattern.fullmatch(p.name)))
    removed = [str(p) for _, p in found[:-keep]]
    for p in removed:
        os.unlink(p)
    return removed
