"""The epoch-based training loop.

    trainer = Trainer(cfg, work_dir='work_dirs/psgtr', timestamp='20240101_120000', seed=0)
    trainer.resume('work_dirs/psgtr/latest.pth')   # or trainer.load_weights(path)
    trainer.train()

Config keys read (OpenPSG / mmdet 2.x names): ``model``, ``data.{samples_per_gpu,
workers_per_gpu, train, val}`` (optionally ``data.group_by_aspect_ratio``,
``data.persistent_workers``), ``optimizer``, ``optimizer_config.grad_clip``, ``lr_config``,
``runner.max_epochs``, ``checkpoint_config``, ``evaluation``, ``log_config``, ``custom_hooks``,
``freeze_modules``, ``find_unused_parameters``; :mod:`openpsg.engine.settings` checks them all
before anything is built. One iteration: set the lr, forward in ``'loss'`` mode, sum the
``loss*`` entries, backward, clip, step. After each epoch: evaluate (if due), then checkpoint (if
due).
"""
from __future__ import annotations

import logging
import os
import time
from collections import defaultdict
from typing import Any, Mapping, Sequence

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from ..checks import integer, list_of, mapping
from ..config import Config, ConfigError, read_dumped_config
from ..datasets.loader import build_test_loader, build_train_loader
from ..errors import InputError
from ..evaluation.runner import evaluate
from ..fileio import stale_temp_files
from ..registry import DATASETS, HOOKS, MODELS
from ..structures import Batch
from .amp import autocast, resolve_amp
from .checkpoint import (LATEST, RUN_CHECKPOINT, CheckpointError, best_checkpoint_name,
                         check_meta, link_checkpoint, load_checkpoint, load_weights,
                         prune_checkpoints, save_checkpoint)
from .dist import (all_reduce_mean, broadcast_object, gather_objects, get_device, get_local_rank,
                   get_rank, get_world_size)
from .env import get_rng_state, library_versions, set_rng_state
from .hooks import Hook, LoggerHook
from .inference import collect_predictions, inference
from .optim import build_grad_clipper, build_lr_scheduler, build_optimizer
from .settings import (CHECKPOINT_CONFIG, DATA, EVALUATION, LOG_CONFIG,
                       OPTIMIZER_CONFIG, RUNNER, check_evaluation, evaluation_kwargs,
                       read_top_level, resume_changes)

logger = logging.getLogger('openpsg')


class DivergenceError(InputError, FloatingPointError):
    """The training loss became NaN or infinite (the settings, e.g. the lr, do not suit)."""


def freeze_modules(model: nn.Module, prefixes: Sequence[str]) -> list[nn.Module]:
    """Stop training the submodules named by ``prefixes`` (``'backbone'``, ``'backbone.layer1'``):
    their parameters get ``requires_grad=False``. Returns their batch-norm layers, which
    :func:`set_train_mode` keeps in eval mode (running statistics frozen too)."""
    norms: list[nn.Module] = []
    for prefix in prefixes:
        found = [m for name, m in model.named_modules()
                 if name == prefix or name.startswith(prefix + '.')]
        if not found:
            raise ConfigError(f'freeze_modules: {prefix!r} names no submodule of '
                              f'{type(model).__name__}')
        for module in found:
            for param in module.parameters(recurse=False):
                param.requires_grad_(False)
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                norms.append(module)
    return norms


def set_train_mode(model: nn.Module, frozen_norms: Sequence[nn.Module]) -> None:
    model.train()
    for module in frozen_norms:
        module.eval()


def parse_losses(losses: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
    """Sum the entries whose key starts with ``loss`` into the training loss; every entry (and the
    total as ``loss``) is also returned as a float for logging."""
    terms = [v for k, v in losses.items() if k.startswith('loss')]
    if not terms:
        raise ValueError(f'the model returned no loss (keys: {sorted(losses)}); loss entries must '
                         'have keys starting with "loss"')
    total = sum(terms)
    log_vars = {k: float(v.detach()) for k, v in losses.items()}
    log_vars['loss'] = float(total.detach())
    return total, log_vars


def training_triplets(train_set: Any) -> frozenset | None:
    """The ``(subject, object, predicate)`` label triplets of the training split, for zero-shot
    recall (``None`` for a dataset that cannot list them)."""
    return frozenset(train_set.triplets()) if hasattr(train_set, 'triplets') else None


class _Meter:
    """Averages of logged values since the last log line."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = defaultdict(float)
        self.count = 0

    def update(self, values: Mapping[str, float]) -> None:
        for key, value in values.items():
            self.sums[key] += value
        self.count += 1

    def pop(self) -> dict[str, float]:
        means = {k: v / self.count for k, v in self.sums.items()}
        self.sums.clear()
        self.count = 0
        return means


class Trainer:
    """Builds everything a training run needs from ``cfg`` and runs it.

    Args:
        cfg: the resolved config.
        work_dir: where checkpoints and logs go (created by the caller).
        timestamp: names this run's log files.
        seed: seed of the data order and of every sample's random draws (same on every rank).
        validate: evaluate on ``data.val`` as ``cfg.evaluation`` says.
        amp: ``'none'``, ``'bf16'`` (CUDA or CPU) or ``'fp16'`` (CUDA; float32 elsewhere), for
            the training steps and the evaluation's predictions (:mod:`~openpsg.engine.amp`).
    """

    def __init__(self, cfg: Config, work_dir: str, timestamp: str, seed: int,
                 validate: bool = True, amp: str = 'none') -> None:
        self.cfg = cfg
        self.work_dir = work_dir
        self.timestamp = timestamp
        self.seed = seed
        self.rank = get_rank()
        self.world_size = get_world_size()
        self.device = get_device()
        self.max_epochs = RUNNER.read(cfg)['max_epochs']
        data = DATA.read(cfg)
        ckpt_cfg = CHECKPOINT_CONFIG.read(cfg)
        log_cfg = LOG_CONFIG.read(cfg)
        self.grad_clip = OPTIMIZER_CONFIG.read(cfg)['grad_clip']
        top = read_top_level(cfg)
        self.eval_cfg = EVALUATION.read(cfg) if validate and cfg.get('evaluation') else {}
        for split in ('train', *(('val',) if self.eval_cfg else ())):
            if data[split] is None:
                raise ConfigError(f'data.{split}: the config has no {split} dataset')
        if data['samples_per_gpu'] is None:
            raise ConfigError('data.samples_per_gpu: the config does not set the batch size')

        self.samples_per_gpu = data['samples_per_gpu']
        workers = data['workers_per_gpu']
        self.train_set = DATASETS.build(cfg.data.train)
        self.train_loader = build_train_loader(
            self.train_set, self.samples_per_gpu, workers, seed, self.world_size, self.rank,
            group_by_aspect_ratio=data['group_by_aspect_ratio'],
            persistent_workers=data['persistent_workers'])
        self.iters_per_epoch = self.train_loader.batch_sampler.num_batches

        self.model = MODELS.build(cfg.model).to(self.device)
        self.frozen_norms = freeze_modules(self.model, top['freeze_modules'])
        self.optimizer = build_optimizer(self.model, cfg.get('optimizer'))
        self.scheduler = build_lr_scheduler(self.optimizer, cfg.get('lr_config'), self.max_epochs,
                                            self.iters_per_epoch)
        self.grad_clipper = build_grad_clipper(self.grad_clip)
        self.amp = resolve_amp(amp, self.device)
        self.scaler = torch.amp.GradScaler('cuda', enabled=self.amp == 'fp16')
        self.ddp_model: nn.Module = self.model
        if self.world_size > 1:
            self.ddp_model = DistributedDataParallel(
                self.model, device_ids=[get_local_rank()] if self.device.type == 'cuda' else None,
                find_unused_parameters=top['find_unused_parameters'])

        self.val_set = self.val_loader = None
        if self.eval_cfg:
            val_cfg = cfg.data.val.copy()
            val_batch = val_cfg.pop('samples_per_gpu', 1)
            self.val_set = DATASETS.build(val_cfg)
            check_evaluation(self.evaluation_kwargs(), self.val_set, self.eval_cfg['save_best'])
            self.val_loader = build_test_loader(self.val_set, val_batch, workers, self.world_size,
                                                self.rank)
        self.ckpt_interval = ckpt_cfg['interval']
        self.ckpt_iter_interval = ckpt_cfg['iter_interval']
        self.max_keep_ckpts = ckpt_cfg['max_keep_ckpts']
        self.log_interval = log_cfg['interval']
        self.logger_hooks: list[LoggerHook] = []
        if self.rank == 0:
            self.logger_hooks = [HOOKS.build(h) for h in log_cfg['hooks']]
        self.custom_hooks: list[Hook] = [HOOKS.build(h) for h in top['custom_hooks']]

        self.epoch = 0  # finished epochs
        self.inner_iter = 0  # batches trained in the current epoch
        self.iter = 0  # batches trained in the whole run
        self.best: dict[str, Any] | None = None

    def evaluation_kwargs(self) -> dict[str, Any]:
        """The :func:`~openpsg.evaluation.runner.evaluate` arguments of the config (zero-shot
        recall against the training triplets unless the config sets them)."""
        kwargs = evaluation_kwargs(self.eval_cfg)
        kwargs.setdefault('zero_shot_triplets', training_triplets(self.train_set))
        return kwargs

    @property
    def hooks(self) -> list[Hook]:
        return [*self.logger_hooks, *self.custom_hooks]

    # ------------------------------------------------------------------------------ checkpoints
    def load_weights(self, path: str) -> None:
        """Initialise the model from the weights of ``path`` (non-strict; differences are
        logged)."""
        report = load_weights(self.model, path)
        logger.info('load_from %s', path)
        for line in report.lines():
            logger.warning('load_from %s: %s', path, line)

    def resume(self, path: str) -> None:
        """Continue the run saved in ``path``: weights, optimizer, scheduler, scaler, counters, best
        score, the data order's seed and every rank's random generators. Everything read from the
        file is checked first (:func:`~.checkpoint.check_meta`); a config that differs from the
        checkpoint's is reported (:func:`~.settings.resume_changes`). Temporary files that a
        killed run left in the work dir are removed."""
        ckpt = load_checkpoint(path)
        required = ('meta', 'state_dict', 'optimizer', 'scheduler', 'rng')
        missing = [k for k in required if k not in ckpt]
        if missing:
            raise CheckpointError(f'{path}: cannot resume from this file, it has no {missing} '
                                  '(use --load-from to initialise the weights only)')
        meta = check_meta(ckpt['meta'], path)
        try:
            saved_cfg = read_dumped_config(meta['config'], 'meta.config')
            saved_scheduler = mapping(ckpt['scheduler'], 'scheduler')
            scheduler = {key: integer(0, 2**40)(saved_scheduler.get(key), f'scheduler.{key}')
                         for key in ('epoch', 'iter')}
            rng = list_of(mapping)(ckpt['rng'], 'rng')
        except ConfigError as err:
            raise CheckpointError(f'{path}: {err}') from None
        if not rng:
            raise CheckpointError(f'{path}: rng: holds no random generator state')
        for line in resume_changes(saved_cfg, self.cfg, meta['world_size'], self.world_size,
                                   path):
            logger.warning(line)
        try:
            self.model.load_state_dict(ckpt['state_dict'])
            self.optimizer.load_state_dict(ckpt['optimizer'])
            if self.scaler.is_enabled() and ckpt.get('scaler'):
                self.scaler.load_state_dict(ckpt['scaler'])
            set_rng_state(rng[self.rank] if len(rng) == self.world_size else rng[0])
        except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as err:
            raise CheckpointError(f'{path}: the checkpoint does not fit this model/optimizer: '
                                  f'{err}') from err
        self.epoch, self.inner_iter, self.iter = meta['epoch'], meta['inner_iter'], meta['iter']
        self.best = meta.get('best')
        self.seed = meta['seed']
        self.train_loader.batch_sampler.seed = self.seed
        old_batch = meta['world_size'] * meta['samples_per_gpu']
        new_batch = self.world_size * self.samples_per_gpu
        if self.inner_iter and old_batch != new_batch:
            logger.warning('%s was saved mid-epoch with a global batch of %d images, this run uses '
                           '%d: epoch %d restarts from its first batch', path, old_batch, new_batch,
                           self.epoch + 1)
            self.inner_iter = 0
        self.scheduler.load_state_dict(scheduler)
        if self.rank == 0 and os.path.isdir(self.work_dir):
            self.remove_stale_temp_files()
        logger.info('resumed from %s: epoch %d, iteration %d, seed %d', path, self.epoch + 1,
                    self.iter, self.seed)

    def remove_stale_temp_files(self) -> None:
        """Delete the temporary files of checkpoints and config dumps that a killed run left in
        the work dir (see :func:`openpsg.fileio.stale_temp_files`)."""
        def ours(name: str) -> bool:
            return bool(RUN_CHECKPOINT.fullmatch(name)) or name.endswith('.py')

        for tmp in stale_temp_files(self.work_dir, ours):
            tmp.unlink()
            logger.info('removed %s, a temporary file of an interrupted run', tmp)

    def _meta(self) -> dict[str, Any]:
        return {'epoch': self.epoch, 'inner_iter': self.inner_iter, 'iter': self.iter,
                'seed': self.seed, 'world_size': self.world_size,
                'samples_per_gpu': self.samples_per_gpu, 'config': self.cfg.pretty_text,
                'classes': list(getattr(self.train_set, 'classes', [])),
                'predicates': list(getattr(self.train_set, 'predicates', [])),
                'versions': library_versions(), 'time': time.strftime('%Y-%m-%d %H:%M:%S'),
                'best': self.best}

    def save_checkpoint(self, name: str, prune_prefix: str | None = None) -> None:
        """Write ``work_dir/name`` (rank 0) and point ``latest.pth`` at it; every rank must call
        this (it gathers their random generator states). ``prune_prefix`` applies
        ``max_keep_ckpts`` to the files named ``<prune_prefix><N>.pth``."""
        rng = gather_objects(get_rng_state())
        if self.rank != 0:
            return
        path = os.path.join(self.work_dir, name)
        save_checkpoint({'meta': self._meta(), 'state_dict': self.model.state_dict(),
                         'optimizer': self.optimizer.state_dict(),
                         'scheduler': self.scheduler.state_dict(),
                         'scaler': self.scaler.state_dict(), 'rng': rng}, path)
        link_checkpoint(path, os.path.join(self.work_dir, LATEST))
        if prune_prefix is not None:
            prune_checkpoints(self.work_dir, prune_prefix, self.max_keep_ckpts)

    # ------------------------------------------------------------------------------ training
    def train(self) -> None:
        for hook in self.hooks:
            hook.before_run(self)
        logger.info('training for %d epochs of %d iterations (%d image(s) per GPU, %d GPU(s)), '
                    'amp %s on %s, work dir %s', self.max_epochs, self.iters_per_epoch,
                    self.samples_per_gpu, self.world_size, self.amp, self.device.type,
                    self.work_dir)
        while self.epoch < self.max_epochs:
            self._train_epoch()
            self.epoch += 1
            self.inner_iter = 0
            for hook in self.hooks:
                hook.after_train_epoch(self)
            if self.eval_cfg and self.epoch % self.eval_cfg['interval'] == 0:
                self.evaluate()
            if self.epoch % self.ckpt_interval == 0 or self.epoch == self.max_epochs:
                self.save_checkpoint(f'epoch_{self.epoch}.pth', prune_prefix='epoch_')
        for hook in self.hooks:
            hook.after_run(self)

    def _train_epoch(self) -> None:
        sampler = self.train_loader.batch_sampler
        sampler.set_epoch(self.epoch, self.inner_iter)
        set_train_mode(self.model, self.frozen_norms)
        for hook in self.hooks:
            hook.before_train_epoch(self)
        meter = _Meter()
        bar = tqdm(total=self.iters_per_epoch, initial=self.inner_iter, unit='it', leave=False,
                   desc=f'epoch {self.epoch + 1}/{self.max_epochs}', disable=self.rank != 0)
        tick = time.perf_counter()
        for batch in self.train_loader:
            data_time = time.perf_counter() - tick
            self.scheduler.step(self.epoch, self.iter)
            log_vars = self._train_step(batch)
            self.iter += 1
            self.inner_iter += 1
            meter.update({**log_vars, 'time': time.perf_counter() - tick, 'data_time': data_time})
            if self.inner_iter % self.log_interval == 0 or self.inner_iter == self.iters_per_epoch:
                self._log_train(meter.pop())
            if self.ckpt_iter_interval and self.iter % self.ckpt_iter_interval == 0:
                self.save_checkpoint(f'iter_{self.iter}.pth', prune_prefix='iter_')
            for hook in self.hooks:
                hook.after_train_iter(self)
            bar.update()
            tick = time.perf_counter()
        bar.close()

    def _train_step(self, batch: Batch) -> dict[str, float]:
        batch = batch.to(self.device)
        with autocast(self.device, self.amp):
            losses = self.ddp_model(batch, mode='loss')
        loss, log_vars = parse_losses(losses)
        if not torch.isfinite(loss) and self.amp != 'fp16':
            raise DivergenceError(f'loss is {log_vars["loss"]} at epoch {self.epoch + 1}, '
                                  f'iteration {self.inner_iter + 1} ({log_vars}); lower the lr '
                                  'or clip gradients')
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.grad_clipper is not None:
            self.scaler.unscale_(self.optimizer)
            params = [p for g in self.optimizer.param_groups for p in g['params']
                      if p.grad is not None]
            log_vars['grad_norm'] = self.grad_clipper(params)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return log_vars

    def current_lr(self) -> float:
        """The lr of the ``default`` parameter group (the first group if there is none)."""
        groups = self.optimizer.param_groups
        return next((g['lr'] for g in groups if g.get('name') == 'default'), groups[0]['lr'])

    def _log_train(self, values: dict[str, float]) -> None:
        values = all_reduce_mean(values)
        remaining = self.max_epochs * self.iters_per_epoch - self.iter
        record: dict[str, Any] = {'mode': 'train', 'epoch': self.epoch + 1, 'iter': self.inner_iter,
                                  'iters_per_epoch': self.iters_per_epoch, 'step': self.iter,
                                  'lr': self.current_lr(), 'eta': values['time'] * remaining}
        if self.device.type == 'cuda':
            record['memory'] = torch.cuda.max_memory_allocated(self.device) / 2**20
        record.update(values)
        self._log(record)

    def _log(self, record: dict[str, Any]) -> None:
        for hook in self.logger_hooks:
            hook.log(self, record)

    # ------------------------------------------------------------------------------ evaluation
    def evaluate(self) -> dict[str, float]:
        """Predict ``data.val`` on every rank, score on rank 0, share the scores; track the best."""
        local = inference(self.model, self.val_loader, desc='val', amp=self.amp)
        predictions = collect_predictions(local, self.val_set.image_ids)
        metrics = None
        if self.rank == 0:
            metrics = evaluate(predictions, self.val_set, **self.evaluation_kwargs())
        metrics = broadcast_object(metrics)
        set_train_mode(self.model, self.frozen_norms)
        self._log({'mode': 'val', 'epoch': self.epoch, 'step': self.iter, **metrics})
        self._update_best(metrics)
        return metrics

    def _update_best(self, metrics: dict[str, float]) -> None:
        key = self.eval_cfg.get('save_best')
        if not key:
            return
        rule = self.eval_cfg['rule']
        value = metrics[key]
        if self.best is not None and (value <= self.best['value'] if rule == 'greater'
                                      else value >= self.best['value']):
            return
        previous = None if self.best is None else self.best['file']
        name = best_checkpoint_name(key, self.epoch)
        self.best = {'key': key, 'value': value, 'epoch': self.epoch, 'file': name}
        self.save_checkpoint(name)
        if self.rank == 0:
            logger.info('best %s = %.4f at epoch %d: saved %s', key, value, self.epoch, name)
            if previous and previous != name and RUN_CHECKPOINT.fullmatch(previous):
                old = os.path.join(self.work_dir, os.path.basename(previous))
                if os.path.isfile(old):
                    os.unlink(old)
