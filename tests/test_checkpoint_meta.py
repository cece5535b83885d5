"""What a resumed checkpoint may contain: every ``meta`` field is checked before use, nothing read
from it can name a file outside the work dir or run code, a changed config is reported, and a
killed run's temporary files are cleaned up."""
import copy
import shutil

import pytest
import torch
from test_engine_support import CONFIG, load_tool, make_synth_psg, run_python

from openpsg.config import ConfigError, read_dumped_config
from openpsg.engine.checkpoint import CheckpointError, check_meta

train_tool = load_tool('train')


@pytest.fixture(scope='module')
def synth(tmp_path_factory):
    return make_synth_psg(tmp_path_factory.mktemp('synth') / 'psg', num_train=6, num_test=3)


@pytest.fixture(scope='module')
def trained(synth, tmp_path_factory):
    """A finished one-epoch run whose evaluation kept a best checkpoint."""
    work_dir = tmp_path_factory.mktemp('trained') / 'run'
    assert train_tool.main([CONFIG, '--work-dir', str(work_dir), '--seed', '3', '--cfg-options',
                            f'data_root={synth}', 'runner.max_epochs=1']) == 0
    return work_dir


@pytest.fixture
def meta(trained):
    return torch.load(trained / 'latest.pth', weights_only=True)['meta']


def snapshot(folder):
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob('*')}


def crafted_run(trained, tmp_path, **meta_changes):
    """A copy of the trained work dir in ``tmp_path/run`` whose latest.pth has ``meta_changes``."""
    work_dir = tmp_path / 'run'
    shutil.copytree(trained, work_dir)
    ckpt = torch.load(trained / 'latest.pth', weights_only=True)
    for key, value in meta_changes.items():
        ckpt['meta'][key] = value
    (work_dir / 'latest.pth').unlink()
    torch.save(ckpt, work_dir / 'latest.pth')
    return work_dir


def test_the_trained_meta_passes_and_names_its_best_file(meta):
    checked = check_meta(meta, 'x.pth')
    assert checked['best']['file'] == 'best_predcls_openpsg_R@20_epoch_1.pth'
    assert checked['epoch'] == 1 and checked['seed'] == 3


@pytest.mark.parametrize('field, value, message', [
    ('best.file', '../victim.txt', r"meta\.best\.file: must be 'best_predcls_openpsg_R@20_epoch_1"
                                   r"\.pth' .*got '\.\./victim\.txt'"),
    ('best.file', '/tmp/victim.txt', r"meta\.best\.file: .*got '/tmp/victim\.txt'"),
    ('best.file', 'best_predcls_openpsg_R@20_epoch_1.pth/../../x', r'meta\.best\.file: '),
    ('best.key', 7, r'meta\.best\.key: must be a non-empty string, got 7'),
    ('best.epoch', 0, r'meta\.best\.epoch: must be an integer >= 1'),
    ('best.value', 'high', r"meta\.best\.value: must be a number, got 'high'"),
    ('best', {'file': 'x'}, r'meta\.best: must have the keys key, value, epoch and file'),
    ('epoch', -1, r'meta\.epoch: must be an integer >= 0'),
    ('epoch', True, r'meta\.epoch: must be an integer'),
    ('iter', 2 ** 70, r'meta\.iter: must be an integer >= 0 and <= \d+, got \d+'),
    ('seed', 1.5, r'meta\.seed: must be an integer'),
    ('world_size', 0, r'meta\.world_size: must be an integer >= 1'),
    ('samples_per_gpu', '2', r"meta\.samples_per_gpu: must be an integer >= 1 and <= \d+, got '2'"),
    ('config', None, r'meta\.config: must be a non-empty string, got None'),
    ('classes', 'coco', r"meta\.classes: must be a list, got 'coco'"),
    ('predicates', [1, 2], r'meta\.predicates\.0: must be a non-empty string, got 1'),
    ('evil', 1, r"meta: unknown keys \['evil'\]"),
    ('iter', None, r"meta: missing \['iter'\]"),
])
def test_every_meta_field_is_checked(meta, field, value, message):
    meta = copy.deepcopy(meta)
    *parents, key = field.split('.')
    node = meta
    for parent in parents:
        node = node[parent]
    if value is None and key == 'iter':
        del node[key]
    else:
        node[key] = value
    with pytest.raises(CheckpointError, match=r'^work/latest\.pth: ' + message):
        check_meta(meta, 'work/latest.pth')


def test_a_dumped_config_is_read_without_running_it(meta):
    assert read_dumped_config(meta['config'], 'meta.config')['runner'] == {'max_epochs': 1}
    for text in ("import os\nos.system('touch PWNED')", "a = __import__('os').getcwd()",
                 'a = [1] * 10', 'def f(): pass', "a = dict(**{'b': 1})"):
        with pytest.raises(ConfigError, match='^meta.config, line 1: '):
            read_dumped_config(text, 'meta.config')


@pytest.mark.parametrize('victim_path', ['relative', 'absolute'])
def test_resume_refuses_a_best_file_outside_the_work_dir(trained, tmp_path, capsys, victim_path):
    victim = tmp_path / 'victim.txt'
    victim.write_text('keep me')
    best = dict(torch.load(trained / 'latest.pth', weights_only=True)['meta']['best'])
    best['file'] = '../victim.txt' if victim_path == 'relative' else str(victim)
    work_dir = crafted_run(trained, tmp_path, best=best)
    before = snapshot(tmp_path)
    # a weights-only checkpoint of someone else, resumed for more epochs (which would evaluate,
    # find a better score and delete the "previous best")
    args = [str(work_dir / 'freq_predcls_synth.py'), '--work-dir', str(work_dir), '--resume',
            '--cfg-options', 'runner.max_epochs=3']
    if victim_path == 'relative':  # the real command line once
        proc = run_python(['tools/train.py', *args], timeout=600)
        rc, out = proc.returncode, proc.stderr + proc.stdout
    else:
        rc = train_tool.main(args)
        out = capsys.readouterr().err
    assert rc == 1, out
    assert 'Traceback' not in out
    assert f'train.py: error: {work_dir}/latest.pth: meta.best.file: must be ' in out
    assert victim.read_text() == 'keep me'
    assert snapshot(tmp_path) == before  # nothing written, nothing deleted


def test_resume_refuses_a_config_that_would_run_code(trained, tmp_path, capsys):
    work_dir = crafted_run(trained, tmp_path, config="import os\nos.system('touch PWNED')\n")
    rc = train_tool.main([str(work_dir / 'freq_predcls_synth.py'), '--work-dir', str(work_dir),
                          '--resume'])
    assert rc == 1
    assert (f'{work_dir}/latest.pth: meta.config, line 1: only "name = value" statements are '
            'read from a dumped config') in capsys.readouterr().err
    assert not list(tmp_path.rglob('PWNED'))


def test_resume_with_another_optimizer_type_is_refused(trained, tmp_path, capsys):
    work_dir = tmp_path / 'run'
    shutil.copytree(trained, work_dir)
    before = snapshot(work_dir)
    rc = train_tool.main([str(work_dir / 'freq_predcls_synth.py'), '--work-dir', str(work_dir),
                          '--resume', '--cfg-options', 'optimizer.type=SGD', 'runner.max_epochs=2'])
    err = capsys.readouterr().err
    assert rc == 1 and 'Traceback' not in err
    assert (f'train.py: error: {work_dir}/latest.pth: the checkpoint continues a AdamW optimizer, '
            'this config uses SGD (optimizer.type)') in err
    assert snapshot(work_dir) == before


def test_resume_with_changed_settings_says_which_value_wins_and_cleans_stale_temp_files(
        trained, tmp_path):
    work_dir = tmp_path / 'run'
    shutil.copytree(trained, work_dir)
    stale = [work_dir / '.epoch_2.pth.k3j2l1a0.tmp', work_dir / '.latest.pth.4242.tmp',
             work_dir / '.freq_predcls_synth.py.x1y2z3w4.tmp']
    kept = [work_dir / '.notes.txt.abcdefgh.tmp', work_dir / 'epoch_2.pth.tmp',
            work_dir / '.epoch_3.pth.abcdefgh.tmp' / 'inside']
    for path in stale + kept:
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b'partial')
    rc = train_tool.main([str(work_dir / 'freq_predcls_synth.py'), '--work-dir', str(work_dir),
                          '--resume', '--cfg-options', 'runner.max_epochs=2', 'optimizer.lr=0.05',
                          'data.samples_per_gpu=3', 'lr_config.min_lr_ratio=0.1'])
    assert rc == 0
    assert not any(p.exists() for p in stale) and all(p.exists() for p in kept)
    log = sorted(work_dir.glob('*[0-9].log'))[-1].read_text()
    latest = f'{work_dir}/latest.pth'
    assert (f"{latest}: optimizer.lr: the checkpoint's run used 0.1, this config says 0.05; the "
            "checkpoint's value is used") in log
    assert (f"{latest}: lr_config.min_lr_ratio: the checkpoint's run used 0.01, this config says "
            "0.1; this config's value is used") in log
    assert (f"{latest}: batch size: the checkpoint's run used 4 image(s) per GPU on 1 GPU(s), "
            "this run uses 3 on 1; this run's batch size is used") in log
    assert 'resumed from' in log and (work_dir / 'epoch_2.pth').is_file()
    resumed = torch.load(work_dir / 'epoch_2.pth', weights_only=True)
    assert resumed['optimizer']['param_groups'][0]['initial_lr'] == 0.1  # the checkpoint's lr
