"""Issue 12 for submissions, the grader and annotation paths, driven through the real CLIs on tiny
data: ``tools/test.py --submit`` never deletes what it did not write; the grader reads nothing
outside the submission folder and the data root; score files are never stale or half written."""
from __future__ import annotations

import errno
import json
import os
import resource
import shutil

import pytest
from fixtures.psg_tiny.paint import write_psg_tiny
from hardening_support import assert_clean_failure, run_tool, snapshot
from test_engine_support import CONFIG, data_options, load_tool, make_synth_psg
from test_grade import IMAGES, TEST_IDS, noisy_predictions, write_dataset

import openpsg.evaluation.submission_folder as submission_folder
import openpsg.fileio as fileio
from openpsg.datasets import DatasetError, PSGDataset
from openpsg.evaluation import SubmissionDirError
from openpsg.evaluation.submission import (SubmissionError, read_submission, write_scores,
                                           write_submission)

SCORES = {'openpsg': {'R@20': 40.0, 'mR@20': 10.0}, 'panoptic': {'PQ': 12.5}}


# ============================================================ 1. --submit deletes nothing foreign
@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """A tiny synthetic set and a frequency baseline trained on it for one epoch."""
    synth = make_synth_psg(tmp_path_factory.mktemp('synth') / 'psg', num_train=6, num_test=3)
    work_dir = tmp_path_factory.mktemp('work') / 'freq'
    assert load_tool('train').main([CONFIG, '--work-dir', str(work_dir), '--no-validate',
                                    '--cfg-options', *data_options(synth),
                                    'runner.max_epochs=1']) == 0
    return synth, work_dir


def test_submit_refuses_a_checkout_and_a_work_dir(trained, tmp_path):
    synth, work_dir = trained
    checkout = tmp_path / 'checkout'
    (checkout / '.git').mkdir(parents=True)
    (checkout / '.git' / 'HEAD').write_text('ref: refs/heads/main\n')
    (checkout / 'README.md').write_text('# my project\n')
    before_checkout, before_work = snapshot(checkout), snapshot(work_dir)
    common = [CONFIG, work_dir / 'latest.pth', '--cfg-options', *data_options(synth)]

    proc = run_tool('test', *common, '--submit', '.', cwd=checkout)
    text = assert_clean_failure(proc, 1, '.: not empty and not a previous submission')
    assert "'.git'" in text and "'README.md'" in text
    proc = run_tool('test', *common, '--submit', work_dir)
    assert_clean_failure(proc, 1, f'{work_dir}: not empty and not a previous submission',
                         "'latest.pth'")
    assert snapshot(checkout) == before_checkout and snapshot(work_dir) == before_work


def test_submit_replaces_only_a_previous_submission(trained, tmp_path, capsys):
    synth, work_dir = trained
    test_tool = load_tool('test')
    sub = tmp_path / 'sub'
    (tmp_path / 'notes.txt').write_text('beside the submission')
    args = [CONFIG, str(work_dir / 'latest.pth'), '--submit', str(sub), '--cfg-options',
            *data_options(synth)]
    assert test_tool.main(args) == 0
    first = snapshot(sub)
    assert sorted(first) == ['panseg', 'panseg/0.png', 'panseg/1.png', 'panseg/2.png',
                             'relation.json']
    os.utime(sub / 'relation.json', ns=(1, 1))          # tell the old file from the new one
    assert test_tool.main(args) == 0                    # a previous submission: replaced
    second = snapshot(sub)
    assert sorted(second) == sorted(first) and second['relation.json'][2] != 1
    assert sorted(os.listdir(tmp_path)) == ['notes.txt', 'sub']   # no staging folder left

    (sub / 'README.md').write_text('my notes')          # no longer only a submission
    before = snapshot(tmp_path)
    capsys.readouterr()
    assert test_tool.main(args) == 1
    assert "not a previous submission (it holds 'README.md')" in capsys.readouterr().err
    assert snapshot(tmp_path) == before


def _previous_submission(tmp_path):
    sub = tmp_path / 'sub'
    write_submission(noisy_predictions()[:1], TEST_IDS[:1], str(sub))
    return sub, snapshot(sub)


@pytest.mark.parametrize('setup, words', [
    (lambda sub: (sub / 'panseg' / 'extra').mkdir(), "panseg/ holds 'extra'"),
    (lambda sub: (sub / 'panseg' / 'a.txt').write_text('x'), "panseg/ holds 'a.txt'"),
    (lambda sub: os.unlink(sub / 'relation.json'), 'it lacks relation.json'),
    (lambda sub: (sub / 'checkpoint.pth').write_bytes(b'x'), "it holds 'checkpoint.pth'"),
])
def test_folders_that_are_not_previous_submissions_are_refused(tmp_path, setup, words):
    sub, _ = _previous_submission(tmp_path)
    setup(sub)
    before = snapshot(tmp_path)
    with pytest.raises(SubmissionDirError, match=words):
        write_submission(noisy_predictions(), TEST_IDS, str(sub))
    assert snapshot(tmp_path) == before


def test_a_file_is_refused_and_a_symlinked_folder_is_written_through(tmp_path):
    (tmp_path / 'file').write_text('x')
    with pytest.raises(SubmissionDirError, match='exists and is not a folder'):
        write_submission(noisy_predictions(), TEST_IDS, str(tmp_path / 'file'))
    with pytest.raises(SubmissionDirError, match=f'cannot be created, {tmp_path}/file is not a'):
        write_submission(noisy_predictions(), TEST_IDS, str(tmp_path / 'file' / 'sub'))
    (tmp_path / 'real').mkdir()
    os.symlink('real', tmp_path / 'link')
    write_submission(noisy_predictions(), TEST_IDS, str(tmp_path / 'link'))
    assert os.readlink(tmp_path / 'link') == 'real'
    assert sorted(os.listdir(tmp_path / 'real')) == ['panseg', 'relation.json']
    assert sorted(os.listdir(tmp_path)) == ['file', 'link', 'real']


def test_a_crash_while_writing_leaves_the_previous_submission(tmp_path, monkeypatch):
    sub, before = _previous_submission(tmp_path)
    saved = []

    def save_then_fail(image, path, *args, **kwargs):
        if saved:
            raise OSError(errno.ENOSPC, 'No space left on device')
        saved.append(path)
        original_save(image, path, *args, **kwargs)

    from PIL import Image
    original_save = Image.Image.save
    monkeypatch.setattr(Image.Image, 'save', save_then_fail)
    with pytest.raises(OSError, match='No space left'):
        write_submission(noisy_predictions(), TEST_IDS, str(sub))
    assert snapshot(sub) == before
    assert sorted(os.listdir(tmp_path)) == ['sub']


def test_without_an_atomic_exchange_the_swap_still_loses_nothing(tmp_path, monkeypatch):
    sub, before = _previous_submission(tmp_path)
    monkeypatch.setattr(submission_folder, 'exchange_paths', lambda a, b: False)
    write_submission(noisy_predictions(), TEST_IDS, str(sub))
    assert sorted(snapshot(sub)) == ['panseg', 'panseg/0.png', 'panseg/1.png', 'relation.json']
    assert sorted(os.listdir(tmp_path)) == ['sub']


def test_exchange_paths_swaps_two_folders(tmp_path):
    (tmp_path / 'a').mkdir()
    (tmp_path / 'a' / 'x').write_text('a')
    (tmp_path / 'b').mkdir()
    if not fileio.exchange_paths(tmp_path / 'a', tmp_path / 'b'):
        pytest.skip('this platform or file system has no atomic exchange')
    assert os.listdir(tmp_path / 'a') == [] and os.listdir(tmp_path / 'b') == ['x']


# ======================================================= 2. the grader reads only the submission
@pytest.fixture()
def graded(tmp_path):
    """The grading dataset (``data/psg.json``, GT PNGs in ``data/pan``) and a valid submission."""
    root = tmp_path / 'data'
    root.mkdir()
    ann_file = write_dataset(root)
    sub = tmp_path / 'sub'
    write_submission(noisy_predictions(), TEST_IDS, str(sub))
    return ann_file, root, sub


def _steal_ground_truth(sub, k, name):
    """Make entry ``k`` describe the GT segments of its image and point at ``name``."""
    rel = sub / 'relation.json'
    entries = json.loads(rel.read_text())
    labels = IMAGES[TEST_IDS[k]][1]
    entries[k]['segments_info'] = [{'id': 1000 * (j + 1) + 7, 'category_id': c + 1}
                                   for j, c in enumerate(labels)]
    entries[k]['relations'] = [[r[0], r[1], r[2] + 1] for r in IMAGES[TEST_IDS[k]][2]]
    entries[k]['pan_seg_file_name'] = name
    rel.write_text(json.dumps(entries))


def _link(sub, target, name='stolen.png'):
    os.symlink(target, sub / 'panseg' / name)
    return name


ESCAPES = {
    'dot-dot': lambda sub, root: '../../data/pan/11.png',
    'absolute': lambda sub, root: str(root / 'pan' / '11.png'),
    'symlink out': lambda sub, root: _link(sub, root / 'pan' / '11.png'),
    'symlink to a device': lambda sub, root: _link(sub, '/dev/zero'),
    'FIFO': lambda sub, root: os.mkfifo(sub / 'panseg' / 'fifo.png') or 'fifo.png',
    'NUL byte': lambda sub, root: 'a\0.png',
}


@pytest.mark.parametrize('case', sorted(ESCAPES))
def test_submission_paths_must_stay_inside(graded, case):
    ann_file, root, sub = graded
    _steal_ground_truth(sub, 0, ESCAPES[case](sub, root))
    with pytest.raises(SubmissionError) as info:
        read_submission(str(sub), TEST_IDS, image_shapes={'11': (5, 6), '12': (4, 4)})
    (line,) = info.value.problems
    assert line.startswith(f'entry 0: {sub}/relation.json: image_id=11: pan_seg_file_name: ')
    assert f'(submission folder {sub})' in line


def test_panseg_folder_symlinked_out_is_refused(graded):
    ann_file, root, sub = graded
    shutil.rmtree(sub / 'panseg')
    (root / 'fake').mkdir()
    shutil.copyfile(root / 'pan' / '11.png', root / 'fake' / '0.png')
    os.symlink(root / 'fake', sub / 'panseg')
    _steal_ground_truth(sub, 0, '0.png')
    with pytest.raises(SubmissionError) as info:
        read_submission(str(sub), TEST_IDS)
    assert any(line.startswith('entry 0: ') and 'outside' in line for line in info.value.problems)


def test_relation_file_symlinked_out_is_refused(graded):
    ann_file, root, sub = graded
    (sub / 'relation.json').unlink()
    os.symlink(ann_file, sub / 'relation.json')
    with pytest.raises(SubmissionError) as info:
        read_submission(str(sub), TEST_IDS)
    (line,) = info.value.problems
    assert line.startswith(f'{sub}/relation.json: relation.json: ') and 'outside' in line


def test_grade_cli_lists_escaping_paths_and_scores_nothing(graded, tmp_path):
    ann_file, root, sub = graded
    _steal_ground_truth(sub, 0, '../../data/pan/11.png')
    _steal_ground_truth(sub, 1, _link(sub, root / 'pan' / '12.png'))
    out = tmp_path / 'scores'
    before = snapshot(tmp_path)
    proc = run_tool('grade', sub, '--ann-file', ann_file, '--data-root', root, '--out', out)
    text = assert_clean_failure(proc, 1, '2 problem(s), not graded')
    assert "entry 0: " in text and "'panseg/../../data/pan/11.png' leads out" in text
    assert 'entry 1: ' in text and 'image_id=12: pan_seg_file_name: ' in text
    assert snapshot(tmp_path) == before                   # no score written, nothing touched


# ===================================================== 2. annotation paths stay in the data root
@pytest.fixture()
def psg_outside(tmp_path):
    """psg_tiny under ``tmp_path/root`` whose names lead out: image 1001's JPEG by ``..``, its
    PNG by an absolute path, image 1002's JPEG through a symlink inside the root."""
    root = tmp_path / 'root'
    ann_file, _ = write_psg_tiny(root)
    outside = tmp_path / 'outside'
    outside.mkdir()
    for name in ('train2017/000000001001.jpg', 'panoptic_train2017/000000001001.png',
                 'val2017/000000001002.jpg'):
        shutil.move(root / name, outside / os.path.basename(name))
    os.symlink(outside / '000000001002.jpg', root / 'val2017' / '000000001002.jpg')
    raw = json.loads(ann_file.read_text())
    raw['data'][0]['file_name'] = '../outside/000000001001.jpg'
    raw['data'][0]['pan_seg_file_name'] = str(outside / '000000001001.png')
    ann_file.write_text(json.dumps(raw))
    return ann_file, root


def test_check_dataset_cli_lists_names_leading_out_and_opens_none(psg_outside):
    ann_file, root = psg_outside
    proc = run_tool('check_dataset', ann_file, '--data-root', root)
    text = assert_clean_failure(proc, 1, '3 problem(s) found')
    assert (f"{ann_file}: image_id=1001: file_name: '../outside/000000001001.jpg' leads out of "
            "its folder (..)") in text
    assert f'{ann_file}: image_id=1001: pan_seg_file_name: ' in text
    assert 'is an absolute path' in text
    assert (f"{ann_file}: image_id=1002: file_name: 'val2017/000000001002.jpg' resolves to "
            f"{root.parent / 'outside'}") in text
    proc = run_tool('check_dataset', ann_file, '--data-root', root, '--allow-outside-data-root')
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dataset_refuses_names_leading_out_unless_allowed(psg_outside):
    ann_file, root = psg_outside
    with pytest.raises(DatasetError) as info:
        PSGDataset(str(ann_file), str(root), split='train')
    assert [p.split(': ')[1:3] for p in info.value.problems] == [
        ['image_id=1001', 'file_name'], ['image_id=1001', 'pan_seg_file_name']]
    test_split = PSGDataset(str(ann_file), str(root), split='test')   # names fine as written
    with pytest.raises(DatasetError, match="image_id=1002: file_name: 'val2017/000000001002.jpg' "
                                           'resolves to .*outside'):
        test_split.get_data_info(0)
    allowed = PSGDataset(str(ann_file), str(root), split='train', allow_outside_root=True,
                         pipeline=[{'type': 'LoadImage'}])
    assert allowed[0]['img'].shape[:2] == (24, 32)


def test_grade_cli_refuses_a_ground_truth_leading_out(graded, tmp_path):
    ann_file, root, sub = graded
    raw = json.loads(open(ann_file).read())
    raw['data'][0]['pan_seg_file_name'] = '/etc/passwd'
    with open(ann_file, 'w') as f:
        json.dump(raw, f)
    proc = run_tool('grade', sub, '--ann-file', ann_file, '--data-root', root,
                    '--out', tmp_path / 'scores')
    assert_clean_failure(proc, 2, f"{ann_file}: image_id=11: pan_seg_file_name: '/etc/passwd' is "
                                  'an absolute path')
    assert not (tmp_path / 'scores').exists()


# ================================================================ 4. stale or partial score files
def _stale(out):
    out.mkdir()
    (out / 'scores.txt').write_text('Recall R 20: 0.99\n')
    (out / 'scores.json').write_text('{}')


def test_a_submission_that_crashes_the_reader_leaves_no_stale_score(graded, tmp_path):
    ann_file, root, sub = graded
    (sub / 'relation.json').write_text('[' * 100_000 + ']' * 100_000)
    out = tmp_path / 'scores'
    _stale(out)
    proc = run_tool('grade', sub, '--ann-file', ann_file, '--data-root', root, '--out', out)
    assert_clean_failure(proc, 1, f'{sub}/relation.json: relation.json: ', 'nested too deeply')
    assert os.listdir(out) == []


def _limit_file_size():
    """In the child: files larger than 200 bytes cannot be written (EFBIG), a real write error
    that scores.txt (~60 bytes) survives and scores.json (~1 KB) does not."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (200, 200))


def test_a_write_failure_leaves_neither_score_file(graded, tmp_path):
    ann_file, root, sub = graded
    out = tmp_path / 'scores'
    _stale(out)
    proc = run_tool('grade', sub, '--ann-file', ann_file, '--data-root', root, '--out', out,
                    preexec_fn=_limit_file_size)
    assert_clean_failure(proc, 2, 'the scores could not be written', f"{out}/scores.json'")
    assert os.listdir(out) == []                        # neither file, no temporary file


def test_disk_full_on_either_file_leaves_neither(tmp_path, monkeypatch):
    replace = os.replace
    for failing in (1, 2):
        calls = []

        def replace_until_full(src, dst):
            calls.append(dst)
            if len(calls) == failing:
                raise OSError(errno.ENOSPC, 'No space left on device')
            replace(src, dst)

        monkeypatch.setattr(fileio.os, 'replace', replace_until_full)
        with pytest.raises(OSError, match=r"No space left on device: '.*scores\.(txt|json)'"):
            write_scores(SCORES, str(tmp_path))
        assert os.listdir(tmp_path) == []
    monkeypatch.setattr(fileio.os, 'replace', replace)
    write_scores(SCORES, str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == ['scores.json', 'scores.txt']
