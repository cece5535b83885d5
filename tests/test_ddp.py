"""Two gloo processes started by tools/dist_train.sh and tools/dist_test.sh (torchrun): training
matches one process with the same global batch, and testing collects every image exactly once, in
dataset order."""
import socket

import numpy as np
import pytest
import torch
from test_engine_support import CONFIG, data_options, load_tool, make_synth_psg, run_command

from openpsg.datasets import PSGDataset
from openpsg.engine import load_predictions

train_tool = load_tool('train')
test_tool = load_tool('test')


@pytest.fixture(scope='session')
def synth(tmp_path_factory):
    # 5 test images: an odd number, so the two ranks get 2 and 3
    return make_synth_psg(tmp_path_factory.mktemp('synth') / 'psg', num_train=12, num_test=5)


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def launch(script, args):
    """``bash tools/<script> ARGS``, where ARGS ask for 2 processes (gloo on this CPU machine)."""
    proc = run_command(['bash', f'tools/{script}', *args], timeout=300,
                       env={'MASTER_ADDR': '127.0.0.1', 'MASTER_PORT': str(free_port())})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def train_options(synth, samples_per_gpu):
    # no random negatives (all unrelated pairs are used), so both runs compute the same loss
    return ['--seed', '3', '--no-validate', '--cfg-options', *data_options(synth),
            'runner.max_epochs=1', f'data.samples_per_gpu={samples_per_gpu}',
            'model.neg_per_image=None']


@pytest.fixture(scope='module')
def one_process(synth, tmp_path_factory):
    """A run of 1 epoch in this process, 4 images per batch."""
    work_dir = tmp_path_factory.mktemp('one')
    assert train_tool.main([CONFIG, '--work-dir', str(work_dir), *train_options(synth, 4)]) == 0
    return work_dir


def test_two_processes_train_like_one_with_the_same_global_batch(synth, one_process, tmp_path):
    one, two = one_process, tmp_path / 'two'
    launch('dist_train.sh', [CONFIG, '2', '--work-dir', str(two), *train_options(synth, 2)])
    a = torch.load(one / 'epoch_1.pth', weights_only=True)
    b = torch.load(two / 'epoch_1.pth', weights_only=True)
    # 11 training images, global batch 4, two aspect groups (3 and 8 images): 1 + 2 iterations
    assert a['meta']['iter'] == b['meta']['iter'] == 3
    assert (b['meta']['world_size'], b['meta']['samples_per_gpu']) == (2, 2)
    assert len(b['rng']) == 2  # one generator snapshot per rank
    # gradients are averaged in another order: equal up to float32 rounding
    torch.testing.assert_close(a['state_dict']['logits'], b['state_dict']['logits'],
                               rtol=0, atol=1e-6)
    assert a['state_dict']['logits'].abs().max() > 0  # the weights did move


def test_distributed_test_collects_each_image_once_in_order(synth, one_process, tmp_path):
    ckpt = str(one_process / 'latest.pth')
    single, double = tmp_path / 'single.pth', tmp_path / 'double.pth'
    assert test_tool.main([CONFIG, ckpt, '--out', str(single), '--cfg-options',
                           *data_options(synth)]) == 0
    launch('dist_test.sh', [CONFIG, ckpt, '2', '--out', str(double), '--cfg-options',
                            *data_options(synth)])
    test_ids = PSGDataset(f'{synth}/psg.json', synth, split='test').image_ids
    assert len(test_ids) == 5
    a, b = load_predictions(single), load_predictions(double)
    assert [p.image_id for p in b] == test_ids
    for x, y in zip(a, b):
        assert np.array_equal(x.pairs, y.pairs)
        assert np.array_equal(x.triplet_scores, y.triplet_scores)
        assert x.masks == y.masks
