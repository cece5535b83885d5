"""Hooks: code that runs at fixed points of training, chosen in the config.

``log_config.hooks`` lists logger hooks (:class:`TextLoggerHook`, :class:`TensorboardLoggerHook`,
:class:`WandbLoggerHook`); they run on rank 0 and receive one *record* per logging interval and
one per evaluation. ``custom_hooks`` lists any other registered :class:`Hook`; those run on every
rank. A record is a flat dict::

    {'mode': 'train', 'epoch': 3, 'iter': 40, 'iters_per_epoch': 120, 'step': 280, 'lr': 1e-4,
     'time': 0.21, 'data_time': 0.01, 'eta': 3600.0, 'loss': 0.7, 'loss_relation': 0.7,
     'grad_norm': 2.1}
    {'mode': 'val', 'epoch': 3, 'step': 360, 'sgdet/openpsg/R@20': 27.1, ...}

``epoch`` and ``iter`` are 1-based, ``step`` counts the training iterations done.
"""
from __future__ import annotations

import datetime
import json
import logging
import os
from typing import TYPE_CHECKING, Any

from ..registry import HOOKS

if TYPE_CHECKING:
    from .trainer import Trainer

logger = logging.getLogger('openpsg')

_COUNTERS = ('mode', 'epoch', 'iter', 'iters_per_epoch', 'step')


class Hook:
    """Base class; override the stages you need (each receives the :class:`Trainer`)."""

    def before_run(self, trainer: 'Trainer') -> None:
        pass

    def before_train_epoch(self, trainer: 'Trainer') -> None:
        pass

    def after_train_iter(self, trainer: 'Trainer') -> None:
        pass

    def after_train_epoch(self, trainer: 'Trainer') -> None:
        pass

    def after_run(self, trainer: 'Trainer') -> None:
        pass


class LoggerHook(Hook):
    """A hook that also receives log records (see the module docstring)."""

    def log(self, trainer: 'Trainer', record: dict[str, Any]) -> None:
        raise NotImplementedError


def _scalars(record: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in record.items()
            if k not in _COUNTERS and isinstance(v, (int, float)) and not isinstance(v, bool)}


@HOOKS.register()
class TextLoggerHook(LoggerHook):
    """One readable line per record to the ``openpsg`` logger (console and ``<timestamp>.log``)
    and one JSON object per record to ``<work_dir>/<timestamp>.log.json``."""

    def before_run(self, trainer: 'Trainer') -> None:
        self.json_path = os.path.join(trainer.work_dir, f'{trainer.timestamp}.log.json')

    def log(self, trainer: 'Trainer', record: dict[str, Any]) -> None:
        logger.info(self.format(record))
        try:
            with open(self.json_path, 'a', encoding='utf-8') as f:
                f.write(json.dumps(record) + '\n')
        except OSError as err:
            err.filename = err.filename or self.json_path  # e.g. a full disk: name the file
            raise

    @staticmethod
    def format(record: dict[str, Any]) -> str:
        values = _scalars(record)
        if record['mode'] == 'val':
            head = f'Epoch(val) [{record["epoch"]}]'
        else:
            head = f'Epoch [{record["epoch"]}][{record["iter"]}/{record["iters_per_epoch"]}]'
            eta = values.pop('eta', None)
            if eta is not None:
                head += f'  eta: {datetime.timedelta(seconds=int(eta))}'
        parts = []
        for key, value in values.items():
            parts.append(f'{key}: {value:.3e}' if key == 'lr' else f'{key}: {value:.4f}')
        return f'{head}  ' + ', '.join(parts)


@HOOKS.register()
class TensorboardLoggerHook(LoggerHook):
    """Scalars ``<mode>/<key>`` against the training step, in ``log_dir`` (default
    ``<work_dir>/tf_logs``)."""

    def __init__(self, log_dir: str | None = None) -> None:
        self.log_dir = log_dir
        self.writer = None

    def before_run(self, trainer: 'Trainer') -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(self.log_dir or os.path.join(trainer.work_dir, 'tf_logs'))

    def log(self, trainer: 'Trainer', record: dict[str, Any]) -> None:
        for key, value in _scalars(record).items():
            self.writer.add_scalar(f'{record["mode"]}/{key}', value, record['step'])

    def after_run(self, trainer: 'Trainer') -> None:
        self.writer.close()


@HOOKS.register()
class WandbLoggerHook(LoggerHook):
    """Logs to Weights & Biases (``pip install openpsg[wandb]``); ``init_kwargs`` go to
    ``wandb.init`` (e.g. ``project``, ``mode='offline'``). Skipped with a warning if wandb is not
    installed."""

    def __init__(self, init_kwargs: dict[str, Any] | None = None) -> None:
        self.init_kwargs = dict(init_kwargs or {})
        self.wandb = None

    def before_run(self, trainer: 'Trainer') -> None:
        try:
            import wandb
        except ImportError:
            logger.warning('WandbLoggerHook: wandb is not installed (pip install wandb); '
                           'logging to W&B is skipped')
            return
        self.wandb = wandb
        kwargs = {'dir': trainer.work_dir, 'config': trainer.cfg.to_dict(), **self.init_kwargs}
        wandb.init(**kwargs)

    def log(self, trainer: 'Trainer', record: dict[str, Any]) -> None:
        if self.wandb is not None:
            self.wandb.log({f'{record["mode"]}/{k}': v for k, v in _scalars(record).items()},
                           step=record['step'])

    def after_run(self, trainer: 'Trainer') -> None:
        if self.wandb is not None:
            self.wandb.finish()
