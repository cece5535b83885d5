"""tools/train.py and tools/test.py end to end: the frequency baseline trained on a tiny synthetic
PSG set, then evaluated, saved, submitted and drawn."""
import importlib.util
import json
import math
import shutil

import numpy as np
import pytest
import torch
from test_engine_support import CONFIG, data_options, load_tool, make_synth_psg

from openpsg.config import Config
from openpsg.datasets import PSGDataset
from openpsg.engine import load_predictions

train_tool = load_tool('train')
test_tool = load_tool('test')

LR_CONFIG = ("lr_config={'_delete_': True, 'policy': 'step', 'step': [1], 'gamma': 0.5, "
             "'warmup': 'linear', 'warmup_iters': 4, 'warmup_ratio': 0.2}")
LOGGERS = ("log_config.hooks=[{'type': 'TextLoggerHook'}, {'type': 'TensorboardLoggerHook'}, "
           "{'type': 'WandbLoggerHook', 'init_kwargs': {'project': 'openpsg', 'mode': 'offline'}}]")


@pytest.fixture(scope='session')
def synth(tmp_path_factory):
    return make_synth_psg(tmp_path_factory.mktemp('synth') / 'psg', num_train=12, num_test=5)


@pytest.fixture(scope='module')
def trained(synth, tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('work') / 'freq'
    rc = train_tool.main([CONFIG, '--work-dir', str(work_dir), '--seed', '1', '--cfg-options',
                          *data_options(synth), 'runner.max_epochs=2', 'data.samples_per_gpu=2',
                          'log_config.interval=1', LR_CONFIG, LOGGERS])
    assert rc == 0
    return work_dir


def iters_per_epoch(synth, batch):
    groups = PSGDataset(f'{synth}/psg.json', synth, split='train').aspect_ratios() > 1
    return sum(math.ceil(n / batch) for n in (groups.sum(), (~groups).sum()) if n)


def test_training_writes_config_logs_and_checkpoints(synth, trained):
    names = {p.name for p in trained.iterdir()}
    assert {'freq_predcls_synth.py', 'epoch_1.pth', 'epoch_2.pth', 'latest.pth', 'tf_logs'} <= names
    assert any(n.startswith('best_predcls_openpsg_R@20_epoch_') for n in names)
    assert any(n.endswith('.log') for n in names)
    dumped = Config.fromfile(trained / 'freq_predcls_synth.py')
    assert dumped.model.type == 'FrequencyBaseline' and dumped.seed == 1
    assert dumped.work_dir == str(trained)
    assert list((trained / 'tf_logs').glob('events.out.tfevents.*'))
    log_text = next(trained.glob('*[0-9].log')).read_text()
    assert 'torch: ' in log_text and 'world size: 1' in log_text  # the environment at start
    if importlib.util.find_spec('wandb') is None:
        assert 'WandbLoggerHook: wandb is not installed' in log_text
    else:
        assert (trained / 'wandb').is_dir()


def test_logged_learning_rates_follow_warmup_and_steps(synth, trained):
    lines = next(trained.glob('*.log.json')).read_text().splitlines()
    records = [json.loads(line) for line in lines]
    train = [r for r in records if r['mode'] == 'train']
    n = iters_per_epoch(synth, 2)
    assert [r['step'] for r in train] == list(range(1, 2 * n + 1))
    for r in train:
        i, epoch = r['step'] - 1, r['epoch'] - 1
        warmup = 1 - (1 - i / 4) * 0.8 if i < 4 else 1.0
        assert r['lr'] == pytest.approx(0.1 * 0.5 ** (epoch >= 1) * warmup)
        assert math.isfinite(r['loss_relation']) and r['loss'] == pytest.approx(r['loss_relation'])
    val = [r for r in records if r['mode'] == 'val']
    assert [r['epoch'] for r in val] == [1, 2]
    assert {'predcls/openpsg/R@20', 'predcls/fair/mR@50', 'predcls/fair/zR@20'} <= set(val[0])


def test_every_checkpoint_loads_weights_only(synth, trained):
    classes = PSGDataset(f'{synth}/psg.json', synth, split='train').classes
    for path in trained.glob('*.pth'):
        ckpt = torch.load(path, weights_only=True)
        meta = ckpt['meta']
        assert set(ckpt) == {'meta', 'state_dict', 'optimizer', 'scheduler', 'scaler', 'rng'}
        assert meta['classes'] == list(classes) and len(meta['predicates']) == 56
        assert 'FrequencyBaseline' in meta['config'] and meta['versions']['torch']
        assert ckpt['state_dict']['logits'].shape == (133, 133, 57)
        assert len(ckpt['rng']) == 1
    latest = torch.load(trained / 'latest.pth', weights_only=True)['meta']
    counters = (latest['epoch'], latest['inner_iter'], latest['iter'])
    assert counters == (2, 0, 2 * iters_per_epoch(synth, 2))
    assert latest['best']['key'] == 'predcls/openpsg/R@20'


def test_eval_out_submit_and_show(synth, trained, tmp_path, capsys):
    out = tmp_path / 'preds.pth'
    rc = test_tool.main([CONFIG, str(trained / 'latest.pth'), '--eval', 'predcls',
                         '--protocol', 'both', '--out', str(out),
                         '--submit', str(tmp_path / 'submission'),
                         '--show-dir', str(tmp_path / 'vis'), '--work-dir', str(tmp_path / 'w'),
                         '--cfg-options', *data_options(synth)])
    assert rc == 0
    table = capsys.readouterr().out
    header = next(line for line in table.splitlines() if line.startswith('predcls'))
    assert header.split() == ['predcls', 'openpsg', 'fair']
    scores = json.loads(next((tmp_path / 'w').glob('eval_*.json')).read_text())['metric']
    assert 0 <= scores['predcls/openpsg/R@20'] <= 100 and 'predcls/fair/R@20' in scores
    assert {'predcls/openpsg/zR@20', 'predcls/fair/zR@20'} <= set(scores)  # from the train split

    test_ids = PSGDataset(f'{synth}/psg.json', synth, split='test').image_ids
    raw = torch.load(out, weights_only=True)
    assert [p['image_id'] for p in raw['predictions']] == test_ids
    predictions = load_predictions(out)
    assert [p.image_id for p in predictions] == test_ids
    assert all(isinstance(p.masks, list) for p in predictions)  # RLE

    json_out = tmp_path / 'preds.json'
    assert test_tool.main([CONFIG, str(trained / 'latest.pth'), '--out', str(json_out),
                           '--cfg-options', *data_options(synth)]) == 0
    from_json = json.loads(json_out.read_text())['predictions']
    assert [p['image_id'] for p in from_json] == test_ids
    for a, b in zip(predictions, load_predictions(json_out)):
        assert np.array_equal(a.pairs, b.pairs) and np.allclose(a.triplet_scores, b.triplet_scores)
        assert np.array_equal(a.dense_masks(), b.dense_masks())

    entries = json.loads((tmp_path / 'submission' / 'relation.json').read_text())
    assert len(entries) == len(test_ids)
    assert sorted(p.name for p in (tmp_path / 'submission' / 'panseg').iterdir()) == sorted(
        f'{k}.png' for k in range(len(test_ids)))
    assert sorted(p.stem for p in (tmp_path / 'vis').glob('*.png')) == sorted(test_ids)


def test_test_needs_something_to_do(capsys):
    with pytest.raises(SystemExit) as exit_info:
        test_tool.main([CONFIG, 'x.pth'])
    assert exit_info.value.code == 2
    assert 'give at least one of --out, --eval, --submit, --show-dir' in capsys.readouterr().err


def test_damaged_checkpoint_stops_test_and_resume_with_its_name(synth, trained, tmp_path, capsys):
    bad = tmp_path / 'epoch_9.pth'
    data = (trained / 'latest.pth').read_bytes()
    bad.write_bytes(data[:len(data) // 3])
    assert test_tool.main([CONFIG, str(bad), '--eval', 'predcls', '--cfg-options',
                           *data_options(synth)]) == 1
    message = f'{bad}: cannot read the checkpoint; the file is truncated or corrupted'
    assert message in capsys.readouterr().err
    work_dir = tmp_path / 'resumed'
    work_dir.mkdir()
    shutil.copy(bad, work_dir / 'latest.pth')
    assert train_tool.main([CONFIG, '--work-dir', str(work_dir), '--resume', '--cfg-options',
                            *data_options(synth)]) == 1
    assert f'{work_dir}/latest.pth: cannot read the checkpoint' in capsys.readouterr().err
    assert not list(work_dir.glob('epoch_*.pth'))  # no silent fresh start


def test_load_from_reports_shape_mismatches_and_trains(synth, trained, tmp_path):
    work_dir = tmp_path / 'finetune'
    rc = train_tool.main([CONFIG, '--work-dir', str(work_dir),
                          '--load-from', str(trained / 'latest.pth'), '--no-validate',
                          '--cfg-options', *data_options(synth), 'runner.max_epochs=1',
                          'model.num_classes=140'])
    assert rc == 0
    log_text = next(work_dir.glob('*[0-9].log')).read_text()
    message = 'shape mismatch for logits: checkpoint [133, 133, 57] vs model [140, 140, 57]'
    assert message in log_text
    assert (work_dir / 'epoch_1.pth').is_file()


def test_local_rank_spellings_of_the_launchers():
    assert train_tool.parse_args([CONFIG, '--local-rank=1']).local_rank == 1
    assert train_tool.parse_args([CONFIG, '--local_rank', '3']).local_rank == 3
    assert train_tool.parse_args([CONFIG, '--resume']).resume == 'auto'
    assert train_tool.parse_args([CONFIG, '--resume', 'a.pth']).resume == 'a.pth'
