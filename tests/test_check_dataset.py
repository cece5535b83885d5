"""``check_dataset`` and ``tools/check_dataset.py`` on the psg_tiny fixture and broken copies of it."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fixtures.hostile_images import write_jpeg_bomb, write_png_bomb, write_png_taller_than_data
from fixtures.psg_tiny.paint import write_psg_tiny
from fixtures.tree_snapshot import snapshot
from PIL import Image

from openpsg.datasets import DatasetError, check_dataset, load_annotations
from openpsg.structures import id2rgb

TOOL = Path(__file__).resolve().parents[1] / 'tools' / 'check_dataset.py'
JPG_1002 = 'val2017/000000001002.jpg'
PNG_1002 = 'panoptic_val2017/000000001002.png'


@pytest.fixture
def psg(tmp_path: Path) -> tuple[Path, Path]:
    return write_psg_tiny(tmp_path)


def run_tool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOL), *args], capture_output=True, text=True,
                          timeout=120)


def test_clean_fixture_exits_0_with_statistics(psg):
    ann_file, root = psg
    result = run_tool(str(ann_file), '--data-root', str(root))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    train = next(line.split() for line in lines if line.startswith('train '))
    test = next(line.split() for line in lines if line.startswith('test '))
    # split, images, no-rels, objects mean [min, max], relations mean [min, max], duplicates
    assert train == ['train', '1', '0', '4.00', '[4,', '4]', '4.00', '[4,', '4]', '1']
    assert test == ['test', '1', '0', '3.00', '[3,', '3]', '3.00', '[3,', '3]', '1']
    # predicate histogram over both splits, most frequent first, ties by name
    start = lines.index('predicate histogram (train + test):') + 2
    table = [line.split(maxsplit=1) for line in lines[start:start + 6]]
    assert table == [['2', 'beside'], ['2', 'standing on'], ['1', 'in front of'],
                     ['1', 'looking at'], ['1', 'on'], ['0', 'over']]
    assert lines[-1] == f'no problems found in {ann_file}'


def test_all_problems_of_a_file_are_listed_and_exit_1(psg):
    ann_file, root = psg
    raw = json.loads(ann_file.read_text())
    raw['data'][0]['relations'][0][2] = 56
    raw['data'][0]['annotations'][1]['category_id'] = 9
    ann_file.write_text(json.dumps(raw))
    (root / JPG_1002).write_bytes(b'not a jpeg')
    Image.fromarray(np.zeros((20, 31, 3), dtype=np.uint8)).save(root / PNG_1002)

    result = run_tool(str(ann_file), '--data-root', str(root))
    assert result.returncode == 1
    out = result.stdout
    assert '5 problem(s) found:' in out
    expected = [
        f'{ann_file}: image_id=1001: annotations[1].category_id: 9 is outside 0..4',
        f'{ann_file}: image_id=1001: annotations[1].category_id: 9 differs from '
        'segments_info[1].category_id 1',
        f'{ann_file}: image_id=1001: relations[0]: predicate 56 is outside 0..5',
        f'{root / JPG_1002}: image_id=1002: file_name: cannot read image',
        f'{root / PNG_1002}: image_id=1002: pan_seg_file_name: image is 20x31 (HxW) but the '
        'annotation says height=20, width=30',
    ]
    for line in expected:
        assert line in out, out


def _missing(root: Path) -> None:
    (root / JPG_1002).unlink()


def _unreadable(root: Path) -> None:
    (root / JPG_1002).write_bytes(b'\xff\xd8 truncated')


def _image_size(root: Path) -> None:
    Image.fromarray(np.zeros((30, 20, 3), dtype=np.uint8)).save(root / JPG_1002)


def _png_missing(root: Path) -> None:
    (root / PNG_1002).unlink()


def _png_size(root: Path) -> None:
    Image.fromarray(np.zeros((19, 30, 3), dtype=np.uint8)).save(root / PNG_1002)


def _segment_absent(root: Path) -> None:
    ids = np.zeros((20, 30), dtype=np.int64)
    ids[5:15, 3:12] = 3  # the dog only: person (4) and grass (513) are gone
    Image.fromarray(id2rgb(ids)).save(root / PNG_1002)


FILE_CASES = {
    'missing image': (_missing, JPG_1002, 'file_name', 'file not found'),
    'unreadable image': (_unreadable, JPG_1002, 'file_name', 'cannot read image'),
    'image size vs height/width': (_image_size, JPG_1002, 'file_name',
                                   'image is 30x20 (HxW) but the annotation says height=20, width=30'),
    'missing png': (_png_missing, PNG_1002, 'pan_seg_file_name', 'file not found'),
    'png size': (_png_size, PNG_1002, 'pan_seg_file_name', 'image is 19x30 (HxW)'),
    'segment id absent from png': (_segment_absent, PNG_1002, 'segments_info.id',
                                   'segment id(s) [4, 513] do not occur in the panoptic PNG'),
}


@pytest.mark.parametrize('case', sorted(FILE_CASES))
def test_file_problems_name_file_image_and_field(psg, case):
    ann_file, root = psg
    damage, name, field, words = FILE_CASES[case]
    damage(root)
    report = check_dataset(str(ann_file), str(root), progress=False)
    assert len(report.problems) == 1, report.problems
    assert report.problems[0].startswith(f'{root / name}: image_id=1002: {field}: {words}')


def test_split_and_no_images_limit_what_is_read(psg):
    ann_file, root = psg
    (root / JPG_1002).unlink()
    assert check_dataset(str(ann_file), str(root), split='train', progress=False).problems == []
    assert len(check_dataset(str(ann_file), str(root), split='test', progress=False).problems) == 1
    report = check_dataset(str(ann_file), str(root), check_files=False, progress=False)
    assert report.problems == [] and set(report.stats) == {'train', 'test'}
    result = run_tool(str(ann_file), '--data-root', str(root), '--no-images', '--split', 'test')
    assert result.returncode == 0, result.stdout
    assert not any(line.startswith('train ') for line in result.stdout.splitlines())


def test_worker_processes_report_the_same_problems(psg):
    ann_file, root = psg
    _png_size(root)
    (root / 'train2017/000000001001.jpg').unlink()
    serial = check_dataset(str(ann_file), str(root), progress=False)
    parallel = check_dataset(str(ann_file), str(root), workers=2, progress=False)
    assert len(serial.problems) == 2 and parallel.problems == serial.problems


def test_unreadable_annotation_file_is_one_problem(tmp_path):
    broken = tmp_path / 'psg.json'
    broken.write_text('{"data": [}')
    report = check_dataset(str(broken), str(tmp_path), progress=False)
    assert len(report.problems) == 1 and report.stats == {}
    assert report.problems[0].startswith(f'{broken}: ann_file: not valid JSON')


def test_notes_do_not_fail_the_check(psg):
    ann_file, root = psg
    raw = json.loads(ann_file.read_text())
    raw['test_image_ids'].append('424242')
    ann_file.write_text(json.dumps(raw))
    report = check_dataset(str(ann_file), str(root), progress=False)
    assert report.problems == []
    assert report.notes == [f"{ann_file}: test_image_ids: 1 id(s) name no image in data: '424242'"]


def test_values_that_fit_the_schema_but_not_the_image(psg):
    """Self-relations, degenerate or misplaced boxes and absurd sizes are listed (errors), boxes
    sticking out a little are noted; the loader refuses the same file."""
    ann_file, root = psg
    raw = json.loads(ann_file.read_text())
    first, second = raw['data']  # 1001 is 32x24 (WxH), 1002 is 30x20
    first['relations'][1] = [2, 2, 1]
    first['annotations'][0]['bbox'] = [2.0, 6.0, 2.0, 18.0]
    first['annotations'][1]['bbox'] = [12.0, 8.0, 28.0, 1e9]
    first['annotations'][2]['bbox'] = [40.0, 0.0, 60.0, 6.0]
    first['annotations'][3]['bbox'] = [0.0, 18.0, 35.0, 24.0]
    second['height'] = 2 ** 70
    second['annotations'][0]['bbox'] = [float('nan'), 5.0, 12.0, 15.0]
    ann_file.write_text(json.dumps(raw))
    before = snapshot(root)

    result = run_tool(str(ann_file), '--data-root', str(root))
    assert result.returncode == 1 and 'Traceback' not in result.stdout + result.stderr
    out = result.stdout
    assert '6 problem(s) found:' in out, out
    for line in [
        'image_id=1001: relations[1]: subject and object are both segment 2; a relation joins '
        'two different segments',
        'image_id=1001: annotations[0].bbox: [2.0, 6.0, 2.0, 18.0] has zero area but belongs to '
        'a segment',
        'image_id=1001: annotations[1].bbox: [12.0, 8.0, 28.0, 1000000000.0] lies far outside '
        'the 32x24 (WxH) image',
        'image_id=1001: annotations[2].bbox: [40.0, 0.0, 60.0, 6.0] lies outside the 32x24 (WxH) '
        'image',
        f'image_id=1002: height: must be a positive integer up to 65535, got {2 ** 70}',
        'image_id=1002: annotations[0].bbox: must be [x1, y1, x2, y2] (4 finite numbers), got '
        '[nan, 5.0, 12.0, 15.0]',
    ]:
        assert f'  {ann_file}: {line}' in out, line
    assert (f"{ann_file}: annotations.bbox: 1 box(es) stick out of their image by more than 1 px: "
            "'image_id=1001 annotations[3].bbox'") in out
    assert snapshot(root) == before
    with pytest.raises(DatasetError, match='subject and object are both segment 2'):
        load_annotations(str(ann_file))


def test_bombs_truncated_and_altered_files_are_listed(psg):
    ann_file, root = psg
    write_png_bomb(root / PNG_1002, width=30, height=30000)
    write_jpeg_bomb(root / JPG_1002)
    write_png_taller_than_data(root / 'panoptic_train2017/000000001001.png', 24, 32)
    before = snapshot(root)
    result = run_tool(str(ann_file), '--data-root', str(root))
    assert result.returncode == 1 and 'Traceback' not in result.stdout + result.stderr
    out = result.stdout
    assert '3 problem(s) found:' in out, out
    for line in [
        f'{root / JPG_1002}: image_id=1002: file_name: image is 60000x60000 (HxW) = '
        '3,600,000,000 pixels, more than the limit of 100,000,000',
        # under the limit but not the annotation's size: refused from the header, not decoded
        f'{root / PNG_1002}: image_id=1002: pan_seg_file_name: image is 30000x30 (HxW) but the '
        'annotation says height=20, width=30',
        f'{root}/panoptic_train2017/000000001001.png: image_id=1001: pan_seg_file_name: the '
        'image data ends early',
    ]:
        assert line in out, line
    assert snapshot(root) == before
