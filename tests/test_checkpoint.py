"""Checkpoint files: atomic writes, weights-only reads, clear errors, pruning, latest.pth, weights
loading with a report, and random-generator snapshots."""
import os
import random

import numpy as np
import pytest
import torch
from torch import nn

from openpsg.engine.checkpoint import (CheckpointError, WeightsReport, find_latest,
                                       link_checkpoint, load_checkpoint, load_weights,
                                       prune_checkpoints, save_checkpoint)
from openpsg.engine.env import get_rng_state, set_rng_state


def test_save_is_atomic_and_weights_only_loadable(tmp_path):
    path = tmp_path / 'ckpt.pth'
    state = {'state_dict': {'w': torch.arange(4.0)}, 'meta': {'epoch': 2, 'names': ['a', 'b'],
                                                              'best': None, 'shape': (2, 3)}}
    save_checkpoint(state, path)
    loaded = torch.load(path, weights_only=True)
    assert torch.equal(loaded['state_dict']['w'], torch.arange(4.0))
    assert loaded['meta'] == state['meta']
    # A failing save (an object torch cannot pickle) leaves the old file and no temporary file.
    with pytest.raises(Exception):
        save_checkpoint({'state_dict': {}, 'meta': {'bad': lambda: 0}}, path)
    assert os.listdir(tmp_path) == ['ckpt.pth']
    assert load_checkpoint(path)['meta']['epoch'] == 2


@pytest.mark.parametrize('damage', ['truncated', 'garbage', 'empty'])
def test_damaged_checkpoints_name_the_file(tmp_path, damage):
    path = tmp_path / 'epoch_3.pth'
    save_checkpoint({'state_dict': {'w': torch.zeros(1000)}}, path)
    data = path.read_bytes()
    path.write_bytes({'truncated': data[:len(data) // 2], 'garbage': b'not a checkpoint' * 8,
                      'empty': b''}[damage])
    with pytest.raises(CheckpointError, match=f'{path}: cannot read the checkpoint; the file is '
                                              'truncated or corrupted'):
        load_checkpoint(path)


def test_missing_and_unsafe_checkpoints_are_refused(tmp_path):
    with pytest.raises(CheckpointError, match='nothing.pth: checkpoint file not found'):
        load_checkpoint(tmp_path / 'nothing.pth')
    unsafe = tmp_path / 'numpy.pth'
    torch.save({'state_dict': {}, 'meta': {'rng': np.zeros(3)}}, unsafe)
    with pytest.raises(CheckpointError,
                       match=r'numpy.pth: the checkpoint holds a pickled Python object'):
        load_checkpoint(unsafe)


def test_prune_keeps_the_highest_numbers_per_prefix(tmp_path):
    for name in ['epoch_1.pth', 'epoch_2.pth', 'epoch_10.pth', 'epoch_3.pth', 'iter_5.pth',
                 'best_x_epoch_1.pth']:
        (tmp_path / name).write_bytes(b'x')
    removed = prune_checkpoints(tmp_path, 'epoch_', keep=2)
    assert sorted(os.path.basename(p) for p in removed) == ['epoch_1.pth', 'epoch_2.pth']
    assert sorted(os.listdir(tmp_path)) == ['best_x_epoch_1.pth', 'epoch_10.pth', 'epoch_3.pth',
                                            'iter_5.pth']
    assert prune_checkpoints(tmp_path, 'epoch_', keep=-1) == []


def test_latest_points_at_the_last_linked_file(tmp_path):
    assert find_latest(tmp_path) is None
    for epoch in (1, 2):
        save_checkpoint({'meta': {'epoch': epoch}}, tmp_path / f'epoch_{epoch}.pth')
        link_checkpoint(tmp_path / f'epoch_{epoch}.pth', tmp_path / 'latest.pth')
    assert find_latest(tmp_path) == str(tmp_path / 'latest.pth')
    assert load_checkpoint(find_latest(tmp_path))['meta']['epoch'] == 2
    os.unlink(tmp_path / 'epoch_2.pth')  # pruning the file keeps latest.pth readable
    assert load_checkpoint(tmp_path / 'latest.pth')['meta']['epoch'] == 2


class Small(nn.Module):
    def __init__(self, out=3):
        super().__init__()
        self.a = nn.Linear(2, 2)
        self.b = nn.Linear(2, out)


def test_load_weights_reports_missing_unexpected_and_mismatched(tmp_path):
    source = Small(out=5)
    weights = {k: v for k, v in source.state_dict().items() if k != 'a.bias'}
    weights['extra.weight'] = torch.ones(1)
    path = tmp_path / 'w.pth'
    save_checkpoint({'state_dict': {f'module.{k}': v for k, v in weights.items()}}, path)
    target = Small(out=3)
    before_b = target.b.weight.detach().clone()
    report = load_weights(target, path)
    assert report.missing == ['a.bias']
    assert report.unexpected == ['extra.weight']
    assert report.mismatched == [('b.weight', (5, 2), (3, 2)), ('b.bias', (5,), (3,))]
    assert torch.equal(target.a.weight, source.a.weight)
    assert torch.equal(target.b.weight, before_b)
    assert any('shape mismatch for b.weight: checkpoint [5, 2] vs model [3, 2]' in line
               for line in report.lines())
    with pytest.raises(CheckpointError, match=r'w.pth: the weights do not fit the model'):
        load_weights(Small(out=3), path, strict=True)
    bare = tmp_path / 'bare.pth'
    torch.save(Small().state_dict(), bare)  # a bare state dict, as torchvision ships them
    assert load_weights(Small(), bare, strict=True).clean


def test_weights_report_lines_list_at_most_max_keys():
    report = WeightsReport(missing=[f'm{i}' for i in range(5)], unexpected=['u0'],
                           mismatched=[(f's{i}', (2,), (3,)) for i in range(4)])
    assert report.lines(max_keys=2) == [
        'missing keys in the checkpoint (5): m0, m1, ... (3 more)',
        'unexpected keys in the checkpoint (1): u0',
        'shape mismatch for s0: checkpoint [2] vs model [3] (not loaded)',
        'shape mismatch for s1: checkpoint [2] vs model [3] (not loaded)',
        '2 more shape mismatch(es)']
    assert len(report.lines()) == 2 + 4 and 'm4' in report.lines()[0]


def test_rng_snapshot_survives_a_weights_only_round_trip(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    np.random.randn()  # leaves a cached Gaussian in NumPy's state
    save_checkpoint({'rng': [get_rng_state()]}, tmp_path / 'rng.pth')
    first = (random.random(), np.random.randn(), torch.rand(3))
    set_rng_state(load_checkpoint(tmp_path / 'rng.pth')['rng'][0])
    again = (random.random(), np.random.randn(), torch.rand(3))
    assert first[0] == again[0] and first[1] == again[1] and torch.equal(first[2], again[2])
