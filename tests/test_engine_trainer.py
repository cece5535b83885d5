"""Pieces of the training loop on the real synthetic data: gradient clipping, loss parsing, the AMP
mode per device, best-checkpoint tracking."""
import logging
import os

import pytest
import torch
from test_engine_support import CONFIG, make_synth_psg

from openpsg.config import Config
from openpsg.engine.amp import resolve_amp
from openpsg.engine.trainer import Trainer, parse_losses


@pytest.fixture(scope='session')
def synth(tmp_path_factory):
    return make_synth_psg(tmp_path_factory.mktemp('synth') / 'psg', num_train=8, num_test=3)


def make_trainer(synth, work_dir, **options):
    cfg = Config.fromfile(CONFIG)
    cfg.merge_from_dict({'data.train.ann_file': f'{synth}/psg.json', 'data.train.data_root': synth,
                         'data.samples_per_gpu': 2, **options})
    work_dir.mkdir(exist_ok=True)
    return Trainer(cfg, str(work_dir), 'test', seed=0, validate=False)


def test_gradients_are_clipped_to_max_norm(synth, tmp_path):
    trainer = make_trainer(synth, tmp_path, **{
        'optimizer': {'_delete_': True, 'type': 'SGD', 'lr': 1.0},
        'optimizer_config.grad_clip': {'max_norm': 0.01, 'norm_type': 2}, 'lr_config': None})
    batch = next(iter(trainer.train_loader))
    before = trainer.model.logits.detach().clone()
    log_vars = trainer._train_step(batch)
    assert log_vars['grad_norm'] > 0.01  # the clip was active
    # plain SGD with lr 1: the step is minus the clipped gradient, of norm max_norm
    step = (trainer.model.logits.detach() - before).norm().item()
    assert step == pytest.approx(0.01, rel=1e-4)


def test_gradients_are_clipped_by_value(synth, tmp_path):
    trainer = make_trainer(synth, tmp_path, **{
        'optimizer': {'_delete_': True, 'type': 'SGD', 'lr': 1.0},
        'optimizer_config.grad_clip': {'clip_value': 0.001}, 'lr_config': None})
    batch = next(iter(trainer.train_loader))
    before = trainer.model.logits.detach().clone()
    log_vars = trainer._train_step(batch)
    assert log_vars['grad_norm'] > 0.001
    # plain SGD with lr 1: every element moves by its gradient clamped to [-0.001, 0.001]
    step = (trainer.model.logits.detach() - before).abs()
    assert step.max().item() == pytest.approx(0.001, rel=1e-5) and step.max() <= 0.001 + 1e-9


def test_parse_losses_sums_loss_entries_only():
    total, log_vars = parse_losses({'loss_a': torch.tensor(1.5), 'loss_b': torch.tensor(0.25),
                                    'acc': torch.tensor(0.9)})
    assert total.item() == pytest.approx(1.75)
    assert log_vars == pytest.approx({'loss_a': 1.5, 'loss_b': 0.25, 'acc': 0.9, 'loss': 1.75})
    with pytest.raises(ValueError, match='no loss'):
        parse_losses({'acc': torch.tensor(1.0)})


def test_amp_bf16_runs_on_the_cpu_and_fp16_falls_back_to_float32(caplog):
    with caplog.at_level(logging.WARNING, logger='openpsg'):
        assert resolve_amp('bf16', torch.device('cpu')) == 'bf16'
        assert not caplog.text
        assert resolve_amp('fp16', torch.device('cpu')) == 'none'
    assert 'mixed precision --amp fp16 needs CUDA; running in float32 on cpu' in caplog.text
    assert resolve_amp('fp16', torch.device('cuda', 0)) == 'fp16'
    assert resolve_amp('bf16', torch.device('cuda', 0)) == 'bf16'
    with pytest.raises(ValueError, match='amp: must be one of'):
        resolve_amp('fp8', torch.device('cpu'))


def test_best_checkpoint_follows_the_rule(synth, tmp_path):
    trainer = make_trainer(synth, tmp_path)
    key = 'sgdet/openpsg/R@20'
    trainer.eval_cfg = {'save_best': key, 'rule': 'less'}
    for epoch, value in [(1, 5.0), (2, 7.0), (3, 4.0)]:
        trainer.epoch = epoch
        trainer._update_best({key: value, 'PQ': 1.0})
    best = [n for n in os.listdir(tmp_path) if n.startswith('best_')]
    assert best == ['best_sgdet_openpsg_R@20_epoch_3.pth']
    assert trainer.best == {'key': key, 'value': 4.0, 'epoch': 3, 'file': best[0]}
    saved = torch.load(tmp_path / best[0], weights_only=True)['meta']['best']
    assert saved['value'] == 4.0
