"""A training run killed mid-epoch and resumed ends bit-identical to an uninterrupted run, and the
per-sample randomness of the real dataset does not depend on the number of loader workers."""
import signal

import pytest
import torch
from test_engine_support import CONFIG, data_options, load_tool, make_synth_psg, run_python

from openpsg.config import Config
from openpsg.datasets.loader import build_train_loader
from openpsg.registry import DATASETS

train_tool = load_tool('train')

KILL_HOOK = '''
import os
import signal

from openpsg.engine.hooks import Hook
from openpsg.registry import HOOKS


@HOOKS.register()
class KillAfterIteration(Hook):
    """SIGKILL this process right after training iteration ``iteration`` (no cleanup at all)."""

    def __init__(self, iteration):
        self.iteration = iteration

    def after_train_iter(self, trainer):
        if trainer.iter == self.iteration:
            os.kill(os.getpid(), signal.SIGKILL)
'''


@pytest.fixture(scope='session')
def synth(tmp_path_factory):
    return make_synth_psg(tmp_path_factory.mktemp('synth') / 'psg', num_train=12, num_test=5)


@pytest.fixture
def restore_determinism():
    yield
    torch.use_deterministic_algorithms(False)


def options(synth):
    # 11 training images with relations, 2 per batch: 6 iterations per epoch (see the CLI tests);
    # random flips, random predicate per pair and random negatives all draw random numbers.
    return ['--seed', '5', '--deterministic', '--no-validate', '--cfg-options',
            *data_options(synth), 'runner.max_epochs=2', 'data.samples_per_gpu=2',
            'model.neg_per_image=2', 'checkpoint_config.iter_interval=4']


def test_killed_and_resumed_run_equals_uninterrupted_run(synth, tmp_path, restore_determinism):
    straight = tmp_path / 'straight'
    assert train_tool.main([CONFIG, '--work-dir', str(straight), *options(synth)]) == 0

    (tmp_path / 'killer.py').write_text(KILL_HOOK)
    killed = tmp_path / 'killed'
    proc = run_python(['tools/train.py', CONFIG, '--work-dir', str(killed), *options(synth),
                       "custom_imports={'imports': ['killer']}",
                       "custom_hooks=[{'type': 'KillAfterIteration', 'iteration': 9}]"],
                      extra_path=str(tmp_path))
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    meta = torch.load(killed / 'latest.pth', weights_only=True)['meta']
    assert (meta['epoch'], meta['inner_iter'], meta['iter']) == (1, 2, 8)  # iter_8.pth, mid-epoch 2
    assert not (killed / 'epoch_2.pth').exists()

    assert train_tool.main([CONFIG, '--work-dir', str(killed), '--resume', *options(synth),
                            'custom_imports=None', 'custom_hooks=[]']) == 0

    a = torch.load(straight / 'epoch_2.pth', weights_only=True)
    b = torch.load(killed / 'epoch_2.pth', weights_only=True)
    assert (b['meta']['epoch'], b['meta']['iter']) == (2, 12)
    assert torch.equal(a['state_dict']['logits'], b['state_dict']['logits'])
    state_a, state_b = a['optimizer']['state'][0], b['optimizer']['state'][0]
    for key in ('step', 'exp_avg', 'exp_avg_sq'):
        assert torch.equal(state_a[key], state_b[key]), key
    assert torch.equal(a['rng'][0]['torch'], b['rng'][0]['torch'])
    assert not torch.equal(a['state_dict']['logits'], torch.zeros_like(a['state_dict']['logits']))


def test_psg_samples_do_not_depend_on_the_number_of_workers(synth):
    cfg = Config.fromfile(CONFIG)
    cfg.merge_from_dict({'data.train.ann_file': f'{synth}/psg.json', 'data.train.data_root': synth})
    dataset = DATASETS.build(cfg.data.train)
    runs = []
    for workers in (0, 2):
        loader = build_train_loader(dataset, 2, workers, seed=11)
        loader.batch_sampler.set_epoch(3)
        runs.append([(b.imgs, [s.rels for s in b.samples], [s.meta.flip for s in b.samples])
                     for b in loader])
    flips = [f for _, _, fs in runs[0] for f in fs]
    assert True in flips and False in flips  # the random flip did draw
    for (img_a, rels_a, flip_a), (img_b, rels_b, flip_b) in zip(*runs):
        assert torch.equal(img_a, img_b) and flip_a == flip_b
        assert all(torch.equal(x, y) for x, y in zip(rels_a, rels_b))
