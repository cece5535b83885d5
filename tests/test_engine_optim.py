"""Parameter groups with lr/decay multipliers and the learning-rate schedules, against hand-computed
numbers."""
import math

import pytest
import torch
from torch import nn

from openpsg.config import ConfigError
from openpsg.engine.optim import (LrScheduler, build_grad_clipper, build_lr_scheduler,
                                  build_optimizer, build_param_groups)
from openpsg.engine.trainer import freeze_modules, set_train_mode


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
        self.backbone2 = nn.Linear(4, 4)  # not matched by the key 'backbone'
        self.head = nn.Linear(4, 2)


def group_params(groups):
    return {g['name']: {id(p) for p in g['params']} for g in groups}


def test_custom_keys_give_lr_and_decay_multipliers_by_dotted_prefix():
    net = Net()
    custom = {'backbone': dict(lr_mult=0.1, decay_mult=1.0),
              'head': dict(lr_mult=10.0, decay_mult=0.0), 'backbone.1': dict(lr_mult=0.5)}
    groups = build_param_groups(net, lr=0.2, weight_decay=0.01,
                                paramwise_cfg=dict(custom_keys=custom))
    by_name = {g['name']: g for g in groups}
    assert set(by_name) == {'backbone', 'backbone.1', 'head', 'default'}
    assert by_name['backbone']['lr'] == pytest.approx(0.02)
    assert by_name['backbone']['weight_decay'] == pytest.approx(0.01)
    assert by_name['backbone.1']['lr'] == pytest.approx(0.1)  # the longer key wins for the BN
    assert by_name['head']['lr'] == pytest.approx(2.0)
    assert by_name['head']['weight_decay'] == 0.0
    assert by_name['default']['lr'] == pytest.approx(0.2)
    params = group_params(groups)
    assert params['backbone'] == {id(p) for p in net.backbone[0].parameters()}
    assert params['backbone.1'] == {id(p) for p in net.backbone[1].parameters()}
    assert params['default'] == {id(p) for p in net.backbone2.parameters()}


def test_norm_decay_mult_scales_the_decay_of_normalisation_layers_no_key_matches():
    net = nn.Module()
    net.backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    net.head = nn.Sequential(nn.Conv2d(4, 8, 3), nn.GroupNorm(2, 8), nn.Linear(8, 8),
                             nn.LayerNorm(8))
    groups = build_param_groups(net, lr=0.1, weight_decay=1e-4, paramwise_cfg=dict(
        custom_keys={'backbone': dict(lr_mult=0.1)}, norm_decay_mult=0.0))
    by_name = {g['name']: g for g in groups}
    assert set(by_name) == {'backbone', 'norm', 'default'}
    # GroupNorm and LayerNorm weights and biases: no decay (detectron2's WEIGHT_DECAY_NORM = 0)
    assert group_params(groups)['norm'] == {id(p) for m in (net.head[1], net.head[3])
                                            for p in m.parameters()}
    assert by_name['norm']['weight_decay'] == 0.0 and by_name['norm']['lr'] == 0.1
    # the matched key wins over norm_decay_mult (the backbone's BatchNorm keeps its decay)
    assert group_params(groups)['backbone'] == {id(p) for p in net.backbone.parameters()}
    assert by_name['backbone']['weight_decay'] == 1e-4
    assert group_params(groups)['default'] == {id(p) for m in (net.head[0], net.head[2])
                                               for p in m.parameters()}
    assert by_name['default']['weight_decay'] == 1e-4
    half = build_param_groups(net, lr=0.1, weight_decay=1e-4,
                              paramwise_cfg=dict(norm_decay_mult=0.5))
    assert {g['name']: g['weight_decay'] for g in half} == {'norm': 5e-5, 'default': 1e-4}
    with pytest.raises(ConfigError, match=r'^optimizer\.paramwise_cfg\.norm_decay_mult: must be '
                                          r"a finite number, got '0'"):
        build_param_groups(net, lr=0.1, weight_decay=1e-4, paramwise_cfg=dict(norm_decay_mult='0'))


def test_wildcard_keys_match_dotted_components_anywhere():
    net = nn.Module()
    net.encoder = nn.ModuleList([nn.Module() for _ in range(2)])
    for layer in net.encoder:
        layer.attn = nn.Module()
        layer.attn.sampling_offsets = nn.Linear(2, 2)
        layer.attn.sampling_offsets2 = nn.Linear(2, 2)  # not matched by '*.sampling_offsets'
    net.reference_points = nn.Linear(2, 2)
    custom = {'*.sampling_offsets': dict(lr_mult=0.1), '*.reference_points': dict(lr_mult=0.2),
              '*.attn.sampling_offsets': dict(lr_mult=0.5), 'encoder.1': dict(lr_mult=3.0)}
    groups = build_param_groups(net, lr=1.0, weight_decay=0.0,
                                paramwise_cfg=dict(custom_keys=custom))
    by_name = {g['name']: g for g in groups}
    params = group_params(groups)
    # the longest matching key wins: '*.attn.sampling_offsets' over '*.sampling_offsets' and
    # 'encoder.1'; the shorter wildcard then matches nothing
    assert params['*.attn.sampling_offsets'] == {
        id(p) for layer in net.encoder for p in layer.attn.sampling_offsets.parameters()}
    assert by_name['*.attn.sampling_offsets']['lr'] == pytest.approx(0.5)
    assert params['*.reference_points'] == {id(p) for p in net.reference_points.parameters()}
    assert params['encoder.1'] == {id(p) for p in net.encoder[1].attn.sampling_offsets2.parameters()}
    assert params['default'] == {id(p) for p in net.encoder[0].attn.sampling_offsets2.parameters()}
    assert '*.sampling_offsets' not in by_name


def test_sgd_step_uses_the_group_lr():
    net = Net()
    opt = build_optimizer(net, dict(type='SGD', lr=0.5, paramwise_cfg=dict(
        custom_keys={'head': dict(lr_mult=0.1)})))
    before_head = net.head.weight.detach().clone()
    before_b2 = net.backbone2.weight.detach().clone()
    for p in net.parameters():
        p.grad = torch.ones_like(p)
    opt.step()
    # SGD without momentum or decay: w <- w - lr * grad, grad = 1
    assert torch.allclose(net.head.weight, before_head - 0.05)
    assert torch.allclose(net.backbone2.weight, before_b2 - 0.5)


def test_frozen_modules_leave_the_optimizer_and_keep_bn_in_eval():
    net = Net()
    norms = freeze_modules(net, ['backbone'])
    assert all(not p.requires_grad for p in net.backbone.parameters())
    assert all(p.requires_grad for p in net.head.parameters())
    assert norms == [net.backbone[1]]
    opt = build_optimizer(net, dict(type='AdamW', lr=1e-3, weight_decay=0.05))
    in_opt = {id(p) for g in opt.param_groups for p in g['params']}
    assert in_opt == {id(p) for p in [*net.backbone2.parameters(), *net.head.parameters()]}
    set_train_mode(net, norms)
    assert net.training and net.head.training and not net.backbone[1].training
    with pytest.raises(ValueError, match="'neck' names no submodule"):
        freeze_modules(net, ['neck'])


def test_bad_optimizer_configs_are_named():
    with pytest.raises(ConfigError, match=r"^optimizer\.type: 'Adamm' is not an optimizer in "
                                          r"torch\.optim; did you mean 'Adam'\?"):
        build_optimizer(Net(), dict(type='Adamm', lr=1.0))
    with pytest.raises(ConfigError, match=r"^optimizer\.momentom: SGD has no option 'momentom'; "
                                          r"did you mean 'momentum'\?"):
        build_optimizer(Net(), dict(type='SGD', lr=1.0, momentom=0.9))
    with pytest.raises(ConfigError, match=r"^optimizer\.lr: must be a finite number > 0, got "
                                          r"'0\.1'"):
        build_optimizer(Net(), dict(type='SGD', lr='0.1'))
    with pytest.raises(ValueError, match=r"custom_keys\['head'\]: unknown key"):
        build_optimizer(Net(), dict(type='SGD', lr=1.0, paramwise_cfg=dict(
            custom_keys={'head': dict(lr_multiplier=2)})))
    with pytest.raises(ValueError, match='paramwise_cfg: unknown key'):
        build_optimizer(Net(), dict(type='SGD', lr=1.0, paramwise_cfg=dict(bias_lr_mult=2.0)))


def lrs(scheduler, points):
    out = []
    for epoch, it in points:
        scheduler.step(epoch, it)
        out.append([g['lr'] for g in scheduler.optimizer.param_groups])
    return out


def optimizer_with_backbone(lr):
    net = Net()
    return build_optimizer(net, dict(type='SGD', lr=lr, paramwise_cfg=dict(
        custom_keys={'backbone': dict(lr_mult=0.1)})))


def test_step_policy_with_linear_warmup():
    opt = optimizer_with_backbone(0.01)
    sched = build_lr_scheduler(opt, dict(policy='step', step=[2, 3], gamma=0.1, warmup='linear',
                                         warmup_iters=4, warmup_ratio=0.25),
                               max_epochs=4, iters_per_epoch=2)
    # warm-up factor 1 - (1 - i/4) * 0.75 at iterations 0..3: 0.25, 0.4375, 0.625, 0.8125
    expected_default = [0.0025, 0.004375, 0.00625, 0.008125, 0.001, 0.001, 0.0001, 0.0001]
    points = [(i // 2, i) for i in range(8)]
    got = lrs(sched, points)
    names = [g['name'] for g in opt.param_groups]
    for row, want in zip(got, expected_default):
        assert row[names.index('default')] == pytest.approx(want)
        assert row[names.index('backbone')] == pytest.approx(want * 0.1)


def test_step_every_n_epochs_and_constant_and_exp_warmup():
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = LrScheduler(opt, max_epochs=6, iters_per_epoch=1, policy='step', step=2, gamma=0.5,
                        warmup='constant', warmup_iters=1, warmup_ratio=0.2)
    assert [r[0] for r in lrs(sched, [(e, e) for e in range(6)])] == pytest.approx(
        [0.2, 1.0, 0.5, 0.5, 0.25, 0.25])
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = LrScheduler(opt, max_epochs=1, iters_per_epoch=4, warmup='exp', warmup_iters=2,
                        warmup_ratio=0.25)
    # 0.25 ** (1 - i/2): 0.25, 0.5, then 1
    assert [r[0] for r in lrs(sched, [(0, 0), (0, 1), (0, 2)])] == pytest.approx([0.25, 0.5, 1.0])


def test_cosine_by_epoch_and_by_iteration():
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.01)
    sched = LrScheduler(opt, max_epochs=4, iters_per_epoch=2, policy='cosine', min_lr_ratio=0.1)
    c = math.cos(math.pi / 4)
    want = [0.01, 0.001 + 0.009 * (1 + c) / 2, 0.0055, 0.001 + 0.009 * (1 - c) / 2]
    assert [r[0] for r in lrs(sched, [(e, 2 * e) for e in range(4)])] == pytest.approx(want)
    sched = LrScheduler(opt, max_epochs=4, iters_per_epoch=2, policy='cosine', by_epoch=False,
                        min_lr=0.0)
    # total 8 iterations: iteration 2 is a quarter of the way, iteration 4 half-way
    assert [r[0] for r in lrs(sched, [(0, 0), (1, 2), (2, 4), (3, 7)])] == pytest.approx(
        [0.01, 0.01 * (1 + c) / 2, 0.005, 0.01 * (1 + math.cos(7 * math.pi / 8)) / 2])


def test_poly_by_iteration_with_linear_warmup():
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.01)
    # detectron2's WarmupPolyLR: base * warm-up factor * (1 - iter / max_iter) ** 0.9, 10 iterations
    sched = build_lr_scheduler(opt, dict(policy='poly', power=0.9, by_epoch=False, min_lr=0.0,
                                         warmup='linear', warmup_iters=4, warmup_ratio=0.001),
                               max_epochs=2, iters_per_epoch=5)
    got = [r[0] for r in lrs(sched, [(0, 0), (0, 2), (0, 4), (1, 5), (1, 9)])]
    want = [0.01 * 0.001 * 1.0,
            0.01 * (1 - 0.5 * 0.999) * 0.8 ** 0.9,
            0.01 * 0.6 ** 0.9,
            0.01 * 0.5 ** 0.9,
            0.01 * 0.1 ** 0.9]
    assert got == pytest.approx(want)
    # by epoch, power 1, towards min_lr_ratio 0.1: 0.01 -> 0.001 linearly over 4 epochs
    sched = LrScheduler(opt, max_epochs=4, iters_per_epoch=3, policy='poly', min_lr_ratio=0.1)
    assert [r[0] for r in lrs(sched, [(e, 3 * e) for e in range(4)])] == pytest.approx(
        [0.01, 0.001 + 0.009 * 0.75, 0.001 + 0.009 * 0.5, 0.001 + 0.009 * 0.25])


def test_gradient_clipping_by_norm_and_by_value():
    def params_with_grads():
        a, b = nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(1))
        a.grad, b.grad = torch.tensor([3.0, -40.0]), torch.tensor([50.0])
        return a, b

    norm = math.sqrt(9 + 1600 + 2500)
    a, b = params_with_grads()
    assert build_grad_clipper(dict(clip_value=35))([a, b]) == pytest.approx(norm)
    assert a.grad.tolist() == [3.0, -35.0] and b.grad.tolist() == [35.0]
    a, b = params_with_grads()
    assert build_grad_clipper(dict(max_norm=norm / 2, norm_type=2))([a, b]) == pytest.approx(norm)
    assert a.grad.tolist() == pytest.approx([1.5, -20.0], rel=1e-5)
    assert b.grad.tolist() == pytest.approx([25.0], rel=1e-5)
    assert build_grad_clipper(None) is None and build_grad_clipper({}) is None
    with pytest.raises(ValueError, match='grad_clip: got keys'):
        build_grad_clipper(dict(clip_value=35, max_norm=1))
    with pytest.raises(ValueError, match='grad_clip: got keys'):
        build_grad_clipper(dict(norm_type=2))


def test_scheduler_state_round_trip_and_bad_configs():
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = LrScheduler(opt, max_epochs=4, iters_per_epoch=1, policy='step', step=[1])
    sched.step(3, 3)
    state = sched.state_dict()
    opt2 = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched2 = LrScheduler(opt2, max_epochs=4, iters_per_epoch=1, policy='step', step=[1])
    sched2.load_state_dict(state)
    assert opt2.param_groups[0]['lr'] == pytest.approx(0.1)
    with pytest.raises(ValueError, match='policy must be one of'):
        build_lr_scheduler(opt, dict(policy='polynomial'), 1, 1)
    with pytest.raises(ValueError, match='needs power > 0'):
        build_lr_scheduler(opt, dict(policy='poly', power=0), 1, 1)
    with pytest.raises(ValueError, match="needs lr_config.step"):
        build_lr_scheduler(opt, dict(policy='step'), 1, 1)
    with pytest.raises(ConfigError, match=r"^lr_config\.warmup_itrs: .*did you mean "
                                          r"'warmup_iters'"):
        build_lr_scheduler(opt, dict(policy='step', step=[1], warmup_itrs=3), 1, 1)
    with pytest.raises(ConfigError, match=r'^lr_config\.step: must be an integer >= 1, got 1\.5'):
        build_lr_scheduler(opt, dict(policy='step', step=[1.5]), 1, 1)
    with pytest.raises(ConfigError, match=r'^lr_config\.warmup_iters: must be an integer >= 0'):
        build_lr_scheduler(opt, dict(warmup_iters=-1), 1, 1)
