"""The command-line error layer (openpsg/cli.py): one clear message and a documented exit status
for every user error of every tool, the traceback only with --debug / OPENPSG_DEBUG=1, bugs
reported as bugs, DataLoader worker errors unwrapped, a full disk naming the file."""
import errno
import os
import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest
from test_engine_support import CONFIG, load_tool, make_synth_psg, run_python
from torch.utils.data import DataLoader, Dataset

from openpsg import cli
from openpsg.config import Config
from openpsg.datasets import PSGDataset
from openpsg.datasets.errors import DatasetError

TRACEBACK = 'Traceback (most recent call last)'


@pytest.fixture(scope='module')
def synth(tmp_path_factory):
    return make_synth_psg(tmp_path_factory.mktemp('synth') / 'psg', num_train=6, num_test=3)


def snapshot(folder):
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob('*')}


# ------------------------------------------------------------------------------ classification
def test_exit_status_and_message_of_each_kind_of_error():
    assert cli.describe(DatasetError('a.json: image_id=3: height: must be > 0')) == (
        1, 'a.json: image_id=3: height: must be > 0')
    with pytest.raises(AttributeError) as info:  # a config key that a tool reads but is not set
        Config({'data': {'train': {}}}).data.test
    assert cli.describe(info.value) == (
        1, "config has no key 'data.test' (keys at 'data': train)")
    assert cli.describe(OSError(errno.ENOSPC, 'No space left on device', 'w/epoch_1.pth')) == (
        1, 'no space left on the device writing w/epoch_1.pth (No space left on device)')
    assert cli.describe(FileNotFoundError(errno.ENOENT, 'No such file or directory', 'x.py')) == (
        1, "[Errno 2] No such file or directory: 'x.py'")
    status, message = cli.describe(MemoryError())
    assert status == 1 and message.startswith('out of memory (MemoryError')
    status, message = cli.describe(ZeroDivisionError('division by zero'))
    assert status == cli.EXIT_BUG == 3
    assert message.startswith('internal error: ZeroDivisionError: division by zero\n')
    assert '--debug' in message and 'OPENPSG_DEBUG=1' in message
    assert cli.describe(KeyboardInterrupt()) == (130, 'interrupted')


class _Broken(Dataset):
    def __init__(self, problems):
        self.problems = problems

    def __len__(self):
        return 2

    def __getitem__(self, index):
        raise DatasetError(self.problems)


@pytest.mark.parametrize('problems', [
    'd/psg.json: image_id=7: file_name: cannot read image (truncated)',
    ['d/psg.json: image_id=7: height: must be > 0', 'd/psg.json: image_id=8: width: must be > 0']])
def test_an_error_in_a_dataloader_worker_keeps_its_type_and_own_message(problems):
    loader = DataLoader(_Broken(problems), batch_size=1, num_workers=1)
    with pytest.raises(DatasetError) as info:
        next(iter(loader))
    assert 'DataLoader worker' in str(info.value)  # torch's wrapper text ...
    assert cli.describe(info.value) == (1, str(DatasetError(problems)))  # ... is taken off


# ------------------------------------------------------------------------------ train.py
BUGGY_HOOK = '''
from openpsg.engine.hooks import Hook
from openpsg.registry import HOOKS


@HOOKS.register()
class BuggyHook(Hook):
    def before_run(self, trainer):
        return 1 / 0
'''


def test_a_worker_process_error_names_the_image_file(synth, tmp_path, capsys):
    data = tmp_path / 'data'
    shutil.copytree(synth, data)
    train_set = PSGDataset(f'{data}/psg.json', str(data), split='train')
    for idx in range(len(train_set)):
        with open(train_set.get_data_info(idx)['img_path'], 'wb') as f:
            f.write(b'not a jpeg')
    rc = load_tool('train').main([CONFIG, '--work-dir', str(tmp_path / 'run'), '--no-validate',
                                  '--cfg-options', f'data_root={data}', 'runner.max_epochs=1',
                                  'data.workers_per_gpu=1'])
    err = capsys.readouterr().err
    assert rc == 1 and TRACEBACK not in err and 'DataLoader worker' not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f'train.py: error: {data}/images/') and ': file_name: cannot read ' \
        'image' in last


def test_a_full_disk_names_the_file_and_leaves_no_temporary_file(synth, tmp_path, capsys,
                                                                monkeypatch):
    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, 'fsync', full)  # the checkpoint's flush to disk fails
    work_dir = tmp_path / 'run'
    rc = load_tool('train').main([CONFIG, '--work-dir', str(work_dir), '--no-validate',
                                  '--cfg-options', f'data_root={synth}', 'runner.max_epochs=1'])
    err = capsys.readouterr().err
    assert rc == 1 and TRACEBACK not in err
    assert (f'train.py: error: no space left on the device writing {work_dir}/epoch_1.pth '
            '(No space left on device)') in err
    assert not [p.name for p in work_dir.iterdir() if p.name.endswith(('.tmp', '.pth'))]


@pytest.mark.parametrize('how', ['--debug', 'OPENPSG_DEBUG'])
def test_debug_prints_the_traceback_with_the_same_status(synth, tmp_path, capsys, monkeypatch,
                                                         how):
    argv = [CONFIG, '--work-dir', str(tmp_path / 'run'), '--cfg-options', f'data_root={synth}',
            'model.type=Nope']
    if how == '--debug':
        argv.insert(1, '--debug')
    else:
        monkeypatch.setenv('OPENPSG_DEBUG', '1')
    rc = load_tool('train').main(argv)
    err = capsys.readouterr().err
    assert rc == 1 and TRACEBACK in err
    assert "openpsg.registry.RegistryError: model.type: 'Nope'" in err
    assert err.strip().splitlines()[-1].startswith("train.py: error: model.type: 'Nope' is not")


def test_a_bug_is_reported_as_one_and_says_how_to_see_the_traceback(synth, tmp_path, capsys,
                                                                   monkeypatch):
    (tmp_path / 'buggy_hook.py').write_text(BUGGY_HOOK)
    monkeypatch.syspath_prepend(str(tmp_path))
    rc = load_tool('train').main([CONFIG, '--work-dir', str(tmp_path / 'run'), '--no-validate',
                                  '--cfg-options', f'data_root={synth}',
                                  "custom_imports={'imports': ['buggy_hook']}",
                                  "custom_hooks=[{'type': 'BuggyHook'}]"])
    err = capsys.readouterr().err
    assert rc == 3 and TRACEBACK not in err
    assert ('train.py: internal error: ZeroDivisionError: division by zero\n  this is a bug (in '
            'openpsg or in a custom module); run again with --debug') in err


# ------------------------------------------------------------------------------ every tool


def test_every_tool_turns_user_errors_into_one_message(synth, tmp_path, capsys):
    image = sorted(os.path.join(synth, 'images', n) for n in os.listdir(f'{synth}/images'))[0]
    garbage = tmp_path / 'garbage.pth'
    garbage.write_bytes(b'\x80\x02not a checkpoint')
    out = tmp_path / 'out'
    data = f'data_root={synth}'
    # tool, arguments, exit status, text of the last stderr line
    subprocess_cases = [
        ('train.py', [CONFIG, '--work-dir', str(out / 'w'), '--cfg-options', data,
                      'model.type=Nope'],
         1, "train.py: error: model.type: 'Nope' is not in the model registry"),
        ('test.py', [CONFIG, str(out / 'none.pth'), '--eval', 'predcls', '--cfg-options', data,
                     'model.neg_per_imag=3'],
         1, "test.py: error: model.neg_per_imag: FrequencyBaseline has no option 'neg_per_imag'"),
        ('demo.py', [image, '--config', CONFIG, '--checkpoint', str(out / 'none.pth'), '--out',
                     str(out / 'demo'), '--cfg-options', 'data_rot=/x'],
         1, "demo.py: error: config override 'data_rot': no file of"),
        ('grade.py', [str(out / 'submission'), '--ann-file', str(out / 'none.json'),
                      '--data-root', synth, '--out', str(out / 'scores')],
         2, f'cannot grade: {out}/none.json: ann_file: file not found'),
        ('check_dataset.py', [str(out / 'none.json'), '--data-root', synth],
         1, f'{out}/none.json: ann_file: file not found'),
    ]
    with ThreadPoolExecutor(2) as pool:  # (two processes at a time: CI has two cores)
        procs = list(pool.map(lambda case: run_python([f'tools/{case[0]}', *case[1]], timeout=600),
                              subprocess_cases))
    for (tool, _, status, text), proc in zip(subprocess_cases, procs):
        output = proc.stdout + proc.stderr
        assert proc.returncode == status, (tool, output)
        assert TRACEBACK not in output, tool
        assert text in output, (tool, output)
    assert not out.exists()  # no tool left anything behind

    before = snapshot(tmp_path)
    in_process_cases = [
        ('browse_dataset', [CONFIG, '--out', str(out), '--cfg-options', data,
                            'data.train.pipeline.2.scal=(8,8)'],
         "browse_dataset.py: error: data.train.pipeline.2.scal: Resize has no option 'scal'"),
        ('vis_results', [CONFIG, str(out / 'none.pth'), '--out', str(out), '--cfg-options', data],
         f'vis_results.py: error: {out}/none.pth: prediction file not found'),
        ('make_report', ['--eval', str(out / 'none.json'), '--out', str(out / 'r.md')],
         f'make_report.py: error: {out}/none.json: file not found'),
        ('make_synth_psg', ['--out', str(out), '--num-train', '1', '--num-test', '1', '--size',
                            '8'], 'make_synth_psg.py: error: size must be at least 32 pixels'),
        ('convert_detr_checkpoint', [str(garbage), str(out / 'x.pth'), '--config', CONFIG],
         f'convert_detr_checkpoint.py: error: {garbage}: cannot be read as a torch checkpoint'),
        ('convert_deformable_detr_checkpoint', [str(garbage), str(out / 'x.pth'), '--config',
                                                CONFIG],
         f'convert_deformable_detr_checkpoint.py: error: {garbage}: cannot be read as a torch '
         'checkpoint'),
    ]
    for tool, args, text in in_process_cases:
        assert load_tool(tool).main(args) == 1, tool
        err = capsys.readouterr().err
        assert TRACEBACK not in err and text in err, (tool, err)
    from openpsg.models.segmenters.coco_weights import main as coco_weights
    assert coco_weights(['--src', str(garbage), '--out', str(out / 'y.pth')]) == 1
    assert (f'coco_weights: error: {garbage}: cannot read the checkpoint; the file is truncated '
            'or corrupted') in capsys.readouterr().err
    assert snapshot(tmp_path) == before
