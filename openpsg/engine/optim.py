"""Optimizers with per-module learning-rate multipliers, and the learning-rate schedules.

Config keys, as in OpenPSG / mmdet 2.x::

    optimizer = dict(type='AdamW', lr=1e-4, weight_decay=1e-4, paramwise_cfg=dict(
        custom_keys={'backbone': dict(lr_mult=0.1, decay_mult=1.0),
                     '*.sampling_offsets': dict(lr_mult=0.1)},
        norm_decay_mult=0.0))  # optional: weight decay x0 on normalisation layers
    lr_config = dict(policy='step', step=[40], gamma=0.1,
                     warmup='linear', warmup_iters=500, warmup_ratio=1 / 3)
    optimizer_config = dict(grad_clip=dict(max_norm=35, norm_type=2))  # or dict(clip_value=35)
"""
from __future__ import annotations

import difflib
import inspect
import logging
import math
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch
from torch import nn

from ..checks import integer, number
from ..config import ConfigError
from ..registry import check_options

logger = logging.getLogger('openpsg')

_MULT_KEYS = ('lr_mult', 'decay_mult')
#: Normalisation layers, whose affine parameters ``paramwise_cfg.norm_decay_mult`` scales the
#: weight decay of (mmdet's set).
NORM_LAYERS = (nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm,
               nn.GroupNorm, nn.LayerNorm)
POLICIES = ('fixed', 'step', 'cosine', 'poly')
WARMUPS = ('linear', 'constant', 'exp')


def _key_matches(key: str, name: str) -> bool:
    """``key`` is a dotted prefix of ``name``, or, written ``'*.part'``, ``part`` is a run of
    whole dotted components anywhere in ``name``."""
    if key.startswith('*.'):
        return f'.{key[2:]}.' in f'.{name}.'
    return name == key or name.startswith(key + '.')


def _matching_key(name: str, keys: Sequence[str]) -> str | None:
    """The longest key that matches ``name`` (``backbone`` matches
    ``backbone.layer1.0.conv1.weight`` and ``backbone``, not ``backbone2.weight``;
    ``*.sampling_offsets`` matches ``transformer.encoder.layers.0.self_attn.sampling_offsets.bias``
    and ``sampling_offsets.weight``, not ``sampling_offsets2.weight``)."""
    matches = [k for k in keys if _key_matches(k, name)]
    return max(matches, key=len) if matches else None


def build_param_groups(model: nn.Module, lr: float, weight_decay: float,
                       paramwise_cfg: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Group the trainable parameters of ``model`` by the ``custom_keys`` entry that matches them.

    A parameter gets ``lr * lr_mult`` and ``weight_decay * decay_mult`` of the longest key that
    matches its name: a dotted prefix, or ``'*.'`` + dotted components found anywhere in it (see
    :func:`_matching_key`). With ``norm_decay_mult`` (mmdet's key; detectron2's
    ``WEIGHT_DECAY_NORM`` is ``norm_decay_mult * weight_decay``), the weights and biases of the
    normalisation layers (:data:`NORM_LAYERS`) that no key matches form the group ``'norm'``
    with ``weight_decay * norm_decay_mult``; the other unmatched parameters form the group
    ``'default'`` with multipliers 1. Frozen parameters (``requires_grad=False``) are left out.
    Each group has the keys ``params``, ``lr``, ``weight_decay`` and ``name`` (the key).
    """
    paramwise_cfg = dict(paramwise_cfg or {})
    custom = dict(paramwise_cfg.pop('custom_keys', {}) or {})
    norm_decay_mult = paramwise_cfg.pop('norm_decay_mult', None)
    if paramwise_cfg:
        raise ConfigError(f'optimizer.paramwise_cfg: unknown key(s) {sorted(paramwise_cfg)}; '
                          'supported: custom_keys, norm_decay_mult')
    if norm_decay_mult is not None:
        number()(norm_decay_mult, 'optimizer.paramwise_cfg.norm_decay_mult')
    for key, mults in custom.items():
        unknown = set(mults) - set(_MULT_KEYS)
        if unknown:
            raise ConfigError(f'optimizer.paramwise_cfg.custom_keys[{key!r}]: unknown key(s) '
                              f'{sorted(unknown)}; supported: {", ".join(_MULT_KEYS)}')
        for name in _MULT_KEYS:
            if name in mults:
                number()(mults[name], f'optimizer.paramwise_cfg.custom_keys.{key}.{name}')
    norm_params = {id(p) for m in model.modules() if isinstance(m, NORM_LAYERS)
                   for p in m.parameters(recurse=False)}
    groups: dict[str, dict[str, Any]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        key = _matching_key(name, list(custom))
        if key is not None:
            group_name, mults = key, custom[key]
        elif norm_decay_mult is not None and id(param) in norm_params:
            group_name, mults = 'norm', {'decay_mult': norm_decay_mult}
        else:
            group_name, mults = 'default', {}
        group = groups.setdefault(group_name, {
            'params': [], 'name': group_name, 'lr': lr * mults.get('lr_mult', 1.0),
            'weight_decay': weight_decay * mults.get('decay_mult', 1.0)})
        group['params'].append(param)
    unused = [k for k in custom if k not in groups]
    if unused:
        logger.warning('optimizer.paramwise_cfg.custom_keys %s match no trainable parameter',
                       unused)
    return list(groups.values())


def build_optimizer(model: nn.Module, cfg: Mapping[str, Any] | None) -> torch.optim.Optimizer:
    """``torch.optim.<type>`` over :func:`build_param_groups`; the other keys go to its
    constructor (checked against its signature: an unknown key is a
    :class:`~openpsg.config.ConfigError` naming ``optimizer.<key>``)."""
    if not isinstance(cfg, Mapping):
        raise ConfigError(f'optimizer: the config must set an optimizer dict, got {cfg!r}')
    cfg = dict(cfg)
    name = cfg.pop('type', None)
    cls = getattr(torch.optim, str(name), None)
    if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
        known = [n for n, c in vars(torch.optim).items()
                 if isinstance(c, type) and issubclass(c, torch.optim.Optimizer)]
        close = [k for k in known if k.lower() == str(name).lower()] or difflib.get_close_matches(
            str(name), known, n=1, cutoff=0.6)
        hint = f"; did you mean '{close[0]}'?" if close else ' (e.g. SGD, Adam, AdamW)'
        raise ConfigError(f'optimizer.type: {name!r} is not an optimizer in torch.optim{hint}')
    if 'lr' not in cfg:
        raise ConfigError('optimizer.lr: the optimizer config needs an "lr"')
    number(positive=True)(cfg['lr'], 'optimizer.lr')
    paramwise_cfg = cfg.pop('paramwise_cfg', None)
    check_options(cls, cfg, 'optimizer', name, passed=('params',))
    default_decay = inspect.signature(cls).parameters['weight_decay'].default
    weight_decay = cfg.pop('weight_decay', default_decay)
    number()(weight_decay, 'optimizer.weight_decay')
    groups = build_param_groups(model, cfg['lr'], weight_decay, paramwise_cfg)
    if not groups:
        raise ConfigError('optimizer: the model has no trainable parameter (are all its modules '
                          'in freeze_modules?)')
    try:
        return cls(groups, weight_decay=weight_decay, **cfg)
    except (TypeError, ValueError) as err:
        raise ConfigError(f'optimizer ({name}): {err}') from err


class LrScheduler:
    """Sets the learning rate of every parameter group before each training iteration.

    ``lr = warmup(regular(base_lr, epoch, iter), iter)`` where ``base_lr`` is the group's initial
    lr (multipliers included), ``epoch`` is the 0-based epoch being trained and ``iter`` the 0-based
    number of iterations done so far in the whole run.

    * ``policy='fixed'``: ``base_lr``.
    * ``policy='step'``: ``base_lr * gamma ** n`` with ``n`` = number of milestones in ``step`` that
      are ``<= progress`` (an int ``step`` means every ``step`` epochs/iterations).
    * ``policy='cosine'``: ``target + (base_lr - target) * (1 + cos(pi * progress / total)) / 2``
      with ``target = min_lr`` or ``base_lr * min_lr_ratio``.
    * ``policy='poly'``: ``target + (base_lr - target) * (1 - progress / total) ** power`` (mmcv's
      ``PolyLrUpdaterHook``; detectron2's ``WarmupPolyLR`` with ``target = 0``).

    ``progress``/``total`` count epochs (``by_epoch=True``) or iterations. Warm-up runs during the
    first ``warmup_iters`` iterations, with ``r = warmup_ratio`` and ``t = iter / warmup_iters``:
    ``linear`` multiplies by ``1 - (1 - t) * (1 - r)``, ``constant`` by ``r``, ``exp`` by
    ``r ** (1 - t)``.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, max_epochs: int, iters_per_epoch: int,
                 policy: str = 'fixed', by_epoch: bool = True,
                 step: int | Sequence[int] | None = None, gamma: float = 0.1,
                 min_lr: float | None = None, min_lr_ratio: float | None = None,
                 power: float = 1.0, warmup: str | None = None, warmup_iters: int = 0,
                 warmup_ratio: float = 0.1) -> None:
        if policy not in POLICIES:
            raise ConfigError(f'lr_config.policy must be one of {POLICIES}, got {policy!r}')
        if policy == 'step' and step is None:
            raise ConfigError("lr_config.policy='step' needs lr_config.step (milestones)")
        if step is not None:
            steps = step if isinstance(step, (list, tuple)) else [step]
            if not steps:
                raise ConfigError('lr_config.step: must be an integer or a non-empty list')
            for milestone in steps:
                integer(1)(milestone, 'lr_config.step')
        number(positive=True)(gamma, 'lr_config.gamma')
        if min_lr is not None and min_lr_ratio is not None:
            raise ConfigError('lr_config: give one of min_lr and min_lr_ratio, not both')
        if min_lr is None and min_lr_ratio is None:
            min_lr_ratio = 0.0
        for key, value in (('min_lr', min_lr), ('min_lr_ratio', min_lr_ratio)):
            if value is not None and number()(value, f'lr_config.{key}') < 0:
                raise ConfigError(f'lr_config.{key}: must be >= 0, got {value!r}')
        if not isinstance(by_epoch, bool):
            raise ConfigError(f'lr_config.by_epoch: must be True or False, got {by_epoch!r}')
        if policy == 'poly' and not (isinstance(power, (int, float)) and power > 0):
            raise ConfigError(f"lr_config.policy='poly' needs power > 0, got {power!r}")
        if warmup is not None and warmup not in WARMUPS:
            raise ConfigError(f'lr_config.warmup must be one of {WARMUPS} or None, got {warmup!r}')
        integer(0)(warmup_iters, 'lr_config.warmup_iters')
        if warmup is not None and not (warmup_iters > 0 and 0 < warmup_ratio <= 1):
            raise ConfigError('lr_config: warm-up needs warmup_iters > 0 and 0 < warmup_ratio <= 1')
        self.optimizer = optimizer
        self.policy = policy
        self.by_epoch = by_epoch
        self.total = max_epochs if by_epoch else max_epochs * iters_per_epoch
        self.step_size = step if isinstance(step, int) else None
        self.milestones = [] if step is None or isinstance(step, int) else list(step)
        self.gamma = gamma
        self.min_lr = min_lr
        self.min_lr_ratio = min_lr_ratio
        self.power = power
        self.warmup = warmup
        self.warmup_iters = warmup_iters
        self.warmup_ratio = warmup_ratio
        self.epoch = 0
        self.iter = 0
        for group in optimizer.param_groups:
            group.setdefault('initial_lr', group['lr'])

    def regular_lr(self, base_lr: float, epoch: int, iteration: int) -> float:
        """The scheduled lr without warm-up."""
        progress = epoch if self.by_epoch else iteration
        if self.policy == 'step':
            if self.step_size is not None:
                return base_lr * self.gamma ** (progress // self.step_size)
            return base_lr * self.gamma ** sum(progress >= m for m in self.milestones)
        if self.policy in ('cosine', 'poly'):
            target = self.min_lr if self.min_lr is not None else base_lr * self.min_lr_ratio
            if self.policy == 'cosine':
                factor = (1 + math.cos(math.pi * progress / self.total)) / 2
            else:
                factor = max(0.0, 1 - progress / self.total) ** self.power
            return target + (base_lr - target) * factor
        return base_lr

    def warmup_factor(self, iteration: int) -> float:
        if self.warmup is None or iteration >= self.warmup_iters:
            return 1.0
        t = iteration / self.warmup_iters
        if self.warmup == 'linear':
            return 1 - (1 - t) * (1 - self.warmup_ratio)
        if self.warmup == 'constant':
            return self.warmup_ratio
        return self.warmup_ratio ** (1 - t)

    def lr_at(self, base_lr: float, epoch: int, iteration: int) -> float:
        return self.regular_lr(base_lr, epoch, iteration) * self.warmup_factor(iteration)

    def step(self, epoch: int, iteration: int) -> None:
        """Set every group's lr for iteration ``iteration`` of epoch ``epoch`` (both 0-based)."""
        self.epoch, self.iter = epoch, iteration
        for group in self.optimizer.param_groups:
            group['lr'] = self.lr_at(group['initial_lr'], epoch, iteration)

    def state_dict(self) -> dict[str, int]:
        return {'epoch': self.epoch, 'iter': self.iter}

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        self.step(int(state['epoch']), int(state['iter']))


def build_lr_scheduler(optimizer: torch.optim.Optimizer, lr_config: Mapping[str, Any] | None,
                       max_epochs: int, iters_per_epoch: int) -> LrScheduler:
    """:class:`LrScheduler` from the config's ``lr_config`` (``None``: constant lr); an unknown
    key is a :class:`~openpsg.config.ConfigError` naming ``lr_config.<key>``."""
    options = dict(lr_config or {})
    check_options(LrScheduler, options, 'lr_config', 'the lr schedule',
                  passed=('optimizer', 'max_epochs', 'iters_per_epoch'))
    return LrScheduler(optimizer, max_epochs, iters_per_epoch, **options)


GradClipper = Callable[[Iterable[torch.Tensor]], float]
_CLIP_KEYS = {'norm': ('max_norm', 'norm_type'), 'value': ('clip_value',)}


def check_grad_clip(grad_clip: Mapping[str, Any], path: str = 'optimizer_config.grad_clip'
                    ) -> dict[str, Any]:
    """``grad_clip`` checked: ``max_norm`` (and optionally ``norm_type``) to clip the gradient
    norm, or ``clip_value`` alone to clip every gradient element; a bad key or value is a
    :class:`~openpsg.config.ConfigError` naming ``path``."""
    grad_clip = dict(grad_clip)
    kind = 'value' if 'clip_value' in grad_clip else 'norm'
    unknown = set(grad_clip) - set(_CLIP_KEYS[kind])
    if unknown or (kind == 'norm' and 'max_norm' not in grad_clip):
        raise ConfigError(f'{path}: got keys {sorted(grad_clip)}; give max_norm (and optionally '
                          'norm_type) to clip the gradient norm, or clip_value alone to clip every '
                          'gradient element')
    number(positive=True)(grad_clip[_CLIP_KEYS[kind][0]], f'{path}.{_CLIP_KEYS[kind][0]}')
    return grad_clip


def build_grad_clipper(grad_clip: Mapping[str, Any] | None) -> GradClipper | None:
    """The gradient clipping of ``optimizer_config.grad_clip`` (:func:`check_grad_clip`), or
    ``None`` when it is empty.

    ``dict(max_norm=35, norm_type=2)`` rescales all gradients together so that their
    ``norm_type``-norm is at most ``max_norm`` (mmcv's ``OptimizerHook``);
    ``dict(clip_value=35)`` clamps every gradient element to ``[-35, 35]`` (detectron2's
    ``CLIP_TYPE: value``). The returned function clips the gradients of the parameters it is given
    and returns their total 2-norm (``norm_type``-norm for norm clipping) before clipping.
    """
    if not grad_clip:
        return None
    grad_clip = check_grad_clip(grad_clip)
    if 'clip_value' not in grad_clip:
        return lambda params: float(torch.nn.utils.clip_grad_norm_(list(params), **grad_clip))

    def clip_value(params: Iterable[torch.Tensor]) -> float:
        params = [p for p in params if p.grad is not None]
        norms = [torch.linalg.vector_norm(p.grad.detach()) for p in params]
        norm = torch.linalg.vector_norm(torch.stack(norms)) if norms else torch.zeros(())
        torch.nn.utils.clip_grad_value_(params, grad_clip['clip_value'])
        return float(norm)

    return clip_value
