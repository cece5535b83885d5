"""The epoch-based training loop.

    trainer = Trainer(cfg, work_dir='work_dirs/psgtr', timestamp='20240101_120000', seed=0)
    trainer.resume('work_dirs/psgtr/latest.pth')   # or trainer.load_weights(path)
    trainer.train()

Config keys read (OpenPSG / mmdet 2.x names): ``model``, ``data.{samples_per_gpu,
workers_per_gpu, train, val}`` (optionally ``data.group_by_aspect_ratio``,
``data.persistent_workers``), ``optimizer``, ``optimizer_config.grad_clip``, ``lr_config``,
``runner.max_epochs``, ``checkpoint_config``, ``evaluation``, ``log_config``, ``custom_hooks``,
``freeze_modules``, ``find_unused_parameters``. One iteration: set the lr, forward in ``'loss'``
mode, sum the ``loss*`` entries, backward, clip, step. After each epoch: evaluate (if due), then
checkpoint (if due).
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

from ..config import Config
from ..datasets.loader import build_test_loader, build_train_loader
from ..evaluation.runner import evaluate
from ..registry import DATASETS, HOOKS, MODELS
from ..structures import Batch
from .checkpoint import (LATEST, CheckpointError, link_checkpoint, load_checkpoint, load_weights,
                         prune_checkpoints, save_checkpoint)
from .dist import (all_reduce_mean, broadcast_object, gather_objects, get_device, get_local_rank,
                   get_rank, get_world_size)
from .env import get_rng_state, library_versions, set_rng_state
from .hooks import Hook, LoggerHook
from .inference import collect_predictions, inference
from .optim import build_lr_scheduler, build_optimizer

logger = logging.getLogger('openpsg')

AMP_MODES = ('none', 'bf16', 'fp16')
EVAL_HOOK_KEYS = ('interval', 'save_best', 'rule')


def freeze_modules(model: nn.Module, prefixes: Sequence[str]) -> list[nn.Module]:
    """Stop training the submodules named by ``prefixes`` (``'backbone'``, ``'backbone.layer1'``):
    their parameters get ``requires_grad=False``. Returns their batch-norm layers, which
    :func:`set_train_mode` keeps in eval mode (running statistics frozen too)."""
    norms: list[nn.Module] = []
    for prefix in prefixes:
        found = [m for name, m in model.named_modules()
                 if name == prefix or name.startswith(prefix + '.')]
        if not found:
            raise ValueError(f'freeze_modules: {prefix!r} names no submodule of '
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


def resolve_amp(amp: str, device: torch.device) -> str:
    """The AMP mode that will run: ``amp`` on CUDA; ``'none'`` (with a warning) on the CPU."""
    if amp not in AMP_MODES:
        raise ValueError(f'amp must be one of {AMP_MODES}, got {amp!r}')
    if amp != 'none' and device.type != 'cuda':
        logger.warning('mixed precision (--amp %s) needs CUDA; training in float32 on %s',
                       amp, device)
        return 'none'
    return amp


def evaluation_kwargs(evaluation: Mapping[str, Any] | None) -> dict[str, Any]:
    """The :func:`openpsg.evaluation.runner.evaluate` arguments of the config's ``evaluation``
    dict: its hook keys (``interval``, ``save_best``, ``rule``) dropped, ``metric`` renamed
    ``metrics`` (a list), ``workers`` ``None`` (one process per available core) unless given."""
    kwargs = {k: v for k, v in dict(evaluation or {}).items() if k not in EVAL_HOOK_KEYS}
    kwargs.setdefault('workers', None)
    if 'metric' in kwargs:
        metric = kwargs.pop('metric')
        kwargs['metrics'] = [metric] if isinstance(metric, str) else list(metric)
    return kwargs


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
        amp: ``'none'``, ``'bf16'`` or ``'fp16'`` (CUDA only; float32 on the CPU).
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
        runner = cfg.get('runner', {})
        if runner.get('type', 'EpochBasedRunner') != 'EpochBasedRunner':
            raise ValueError(f"runner.type {runner.get('type')!r} is not supported; "
                             'use EpochBasedRunner')
        self.max_epochs = int(runner.get('max_epochs', 12))

        data = cfg.data
        self.samples_per_gpu = int(data.samples_per_gpu)
        workers = int(data.get('workers_per_gpu', 0))
        self.train_set = DATASETS.build(data.train)
        self.train_loader = build_train_loader(
            self.train_set, self.samples_per_gpu, workers, seed, self.world_size, self.rank,
            group_by_aspect_ratio=bool(data.get('group_by_aspect_ratio', True)),
            persistent_workers=bool(data.get('persistent_workers', False)))
        self.iters_per_epoch = self.train_loader.batch_sampler.num_batches

        self.model = MODELS.build(cfg.model).to(self.device)
        self.frozen_norms = freeze_modules(self.model, cfg.get('freeze_modules') or ())
        self.optimizer = build_optimizer(self.model, cfg.optimizer)
        self.scheduler = build_lr_scheduler(self.optimizer, cfg.get('lr_config'), self.max_epochs,
                                            self.iters_per_epoch)
        self.grad_clip = dict((cfg.get('optimizer_config') or {}).get('grad_clip') or {})
        self.amp = resolve_amp(amp, self.device)
        self.scaler = torch.amp.GradScaler('cuda', enabled=self.amp == 'fp16')
        self.ddp_model: nn.Module = self.model
        if self.world_size > 1:
            self.ddp_model = DistributedDataParallel(
                self.model, device_ids=[get_local_rank()] if self.device.type == 'cuda' else None,
                find_unused_parameters=bool(cfg.get('find_unused_parameters', False)))

        self.eval_cfg = dict(cfg.get('evaluation') or {}) if validate else {}
        self.val_set = self.val_loader = None
        if self.eval_cfg:
            val_cfg = dict(data.val)
            val_batch = int(val_cfg.pop('samples_per_gpu', 1))
            self.val_set = DATASETS.build(val_cfg)
            self.val_loader = build_test_loader(self.val_set, val_batch, workers, self.world_size,
                                                self.rank)
        ckpt_cfg = dict(cfg.get('checkpoint_config') or {})
        self.ckpt_interval = int(ckpt_cfg.get('interval', 1))
        self.ckpt_iter_interval = int(ckpt_cfg.get('iter_interval', 0))
        self.max_keep_ckpts = int(ckpt_cfg.get('max_keep_ckpts', -1))
        log_cfg = dict(cfg.get('log_config') or {})
        self.log_interval = int(log_cfg.get('interval', 50))
        self.logger_hooks: list[LoggerHook] = []
        if self.rank == 0:
            self.logger_hooks = [HOOKS.build(h) for h in log_cfg.get('hooks', ())]
        self.custom_hooks: list[Hook] = [HOOKS.build(h) for h in cfg.get('custom_hooks') or ()]

        self.epoch = 0  # finished epochs
        self.inner_iter = 0  # batches trained in the current epoch
        self.iter = 0  # batches trained in the whole run
        self.best: dict[str, Any] | None = None

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
        score, the data order's seed and every rank's random generators."""
        ckpt = load_checkpoint(path)
        required = ('meta', 'state_dict', 'optimizer', 'scheduler', 'rng')
        missing = [k for k in required if k not in ckpt]
        if missing:
            raise CheckpointError(f'{path}: cannot resume from this file, it has no {missing} '
                                  '(use --load-from to initialise the weights only)')
        try:
            self.model.load_state_dict(ckpt['state_dict'])
            self.optimizer.load_state_dict(ckpt['optimizer'])
        except (RuntimeError, ValueError, KeyError) as err:
            raise CheckpointError(f'{path}: the checkpoint does not fit this model/optimizer: '
                                  f'{err}') from err
        if self.scaler.is_enabled() and ckpt.get('scaler'):
            self.scaler.load_state_dict(ckpt['scaler'])
        meta = ckpt['meta']
        self.epoch, self.inner_iter = int(meta['epoch']), int(meta['inner_iter'])
        self.iter = int(meta['iter'])
        self.best = meta.get('best')
        self.seed = int(meta['seed'])
        self.train_loader.batch_sampler.seed = self.seed
        old_batch = int(meta['world_size']) * int(meta['samples_per_gpu'])
        new_batch = self.world_size * self.samples_per_gpu
        if self.inner_iter and old_batch != new_batch:
            logger.warning('%s was saved mid-epoch with a global batch of %d images, this run uses '
                           '%d: epoch %d restarts from its first batch', path, old_batch, new_batch,
                           self.epoch + 1)
            self.inner_iter = 0
        rng = ckpt['rng']
        set_rng_state(rng[self.rank] if len(rng) == self.world_size else rng[0])
        self.scheduler.load_state_dict(ckpt['scheduler'])
        logger.info('resumed from %s: epoch %d, iteration %d, seed %d', path, self.epoch + 1,
                    self.iter, self.seed)

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
                    'work dir %s', self.max_epochs, self.iters_per_epoch, self.samples_per_gpu,
                    self.world_size, self.work_dir)
        while self.epoch < self.max_epochs:
            self._train_epoch()
            self.epoch += 1
            self.inner_iter = 0
            for hook in self.hooks:
                hook.after_train_epoch(self)
            if self.eval_cfg and self.epoch % int(self.eval_cfg.get('interval', 1)) == 0:
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
        dtype = torch.bfloat16 if self.amp == 'bf16' else torch.float16
        with torch.autocast(self.device.type, dtype=dtype, enabled=self.amp != 'none'):
            losses = self.ddp_model(batch, mode='loss')
        loss, log_vars = parse_losses(losses)
        if not torch.isfinite(loss) and self.amp != 'fp16':
            raise FloatingPointError(f'loss is {log_vars["loss"]} at epoch {self.epoch + 1}, '
                                     f'iteration {self.inner_iter + 1} ({log_vars}); lower the lr '
                                     'or clip gradients')
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.grad_clip:
            self.scaler.unscale_(self.optimizer)
            params = [p for g in self.optimizer.param_groups for p in g['params']
                      if p.grad is not None]
            log_vars['grad_norm'] = float(torch.nn.utils.clip_grad_norm_(params, **self.grad_clip))
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
        local = inference(self.model, self.val_loader, desc='val')
        predictions = collect_predictions(local, self.val_set.image_ids)
        metrics = None
        if self.rank == 0:
            kwargs = evaluation_kwargs(self.eval_cfg)
            kwargs.setdefault('zero_shot_triplets', training_triplets(self.train_set))
            metrics = evaluate(predictions, self.val_set, **kwargs)
        metrics = broadcast_object(metrics)
        set_train_mode(self.model, self.frozen_norms)
        self._log({'mode': 'val', 'epoch': self.epoch, 'step': self.iter, **metrics})
        self._update_best(metrics)
        return metrics

    def _update_best(self, metrics: dict[str, float]) -> None:
        key = self.eval_cfg.get('save_best')
        if not key:
            return
        if key not in metrics:
            raise ValueError(f'evaluation.save_best {key!r} is not among the evaluation results: '
                             f'{sorted(metrics)}')
        rule = self.eval_cfg.get('rule', 'greater')
        if rule not in ('greater', 'less'):
            raise ValueError(f"evaluation.rule must be 'greater' or 'less', got {rule!r}")
        value = metrics[key]
        if self.best is not None and (value <= self.best['value'] if rule == 'greater'
                                      else value >= self.best['value']):
            return
        previous = None if self.best is None else self.best['file']
        name = f'best_{key.replace("/", "_")}_epoch_{self.epoch}.pth'
        self.best = {'key': key, 'value': value, 'epoch': self.epoch, 'file': name}
        self.save_checkpoint(name)
        if self.rank == 0:
            logger.info('best %s = %.4f at epoch %d: saved %s', key, value, self.epoch, name)
            old = os.path.join(self.work_dir, previous) if previous else None
            if old and previous != name and os.path.exists(old):
                os.unlink(old)
