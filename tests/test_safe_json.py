"""Pathological JSON: every reader of user JSON (annotation files, ``relation.json``, prediction
files, score files read back) turns it into one clear error naming the file (and the image_id and
field where there is one), never a traceback."""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest
from fixtures.psg_tiny.paint import write_psg_tiny
from hardening_support import assert_clean_failure, run_tool, snapshot

from openpsg.datasets import DatasetError, PSGDataset, check_dataset
from openpsg.engine import load_predictions, save_predictions
from openpsg.engine.inference import PredictionFileError
from openpsg.evaluation.submission import SubmissionError, read_submission, write_submission
from openpsg.safe_json import JSONFileError, describe, load_json
from openpsg.structures import Prediction, id_map_to_masks

DEEP = '[' * 100_000 + ']' * 100_000
LONG_INT = '7' * 5000
# whole-file pathologies: (file text, words of the expected reason)
BROKEN_FILES = {
    'nested 100k deep': (DEEP, 'nested too deeply'),
    '5000-digit integer': (f'{{"data": {LONG_INT}}}', 'number literal cannot be read'),
    'not UTF-8': (b'{"data": "caf\xe9"}', 'not UTF-8 text (byte 0xe9 at offset 13)'),
    'syntax error': ('{"data": [1, 2,]}', 'not valid JSON: Expecting value at line 1, column 16'),
}


def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


# ------------------------------------------------------------------------------------ the reader
@pytest.mark.parametrize('case', sorted(BROKEN_FILES))
def test_load_json_names_the_file_and_the_reason(tmp_path, case):
    text, reason = BROKEN_FILES[case]
    path = write(tmp_path / 'x.json', text)
    with pytest.raises(JSONFileError) as info:
        load_json(path)
    assert str(info.value).startswith(f'{path}: ') and reason in info.value.reason


def test_load_json_accepts_a_byte_order_mark_and_returns_nan_as_python_does(tmp_path):
    path = write(tmp_path / 'bom.json', b'\xef\xbb\xbf{"a": [1, NaN]}')
    value = load_json(path)
    assert value['a'][0] == 1 and np.isnan(value['a'][1])


def test_load_json_never_opens_what_is_not_a_regular_file(tmp_path):
    with pytest.raises(JSONFileError, match='not a regular file'):
        load_json(tmp_path)
    with pytest.raises(JSONFileError, match='file not found'):
        load_json(tmp_path / 'absent.json')
    fifo = tmp_path / 'pipe.json'
    os.mkfifo(fifo)
    raised: list[Exception] = []

    def read_fifo() -> None:
        try:
            load_json(fifo)
        except JSONFileError as err:
            raised.append(err)

    reader = threading.Thread(target=read_fifo, daemon=True)  # opening the FIFO would block
    reader.start()
    reader.join(20)
    assert not reader.is_alive(), 'load_json blocked on a FIFO'
    assert 'not a regular file' in str(raised[0])


def test_describe_is_short_and_shallow_for_any_value():
    deep = json.loads('[' * 900 + ']' * 900)
    assert len(describe(deep)) < 40
    assert len(describe('x' * 10 ** 6)) < 80
    assert len(describe(list(range(10 ** 5)))) < 80
    assert len(describe(7 ** 3000)) < 60


# --------------------------------------------------------------------- every reader, whole files
@pytest.fixture
def psg(tmp_path: Path) -> tuple[Path, Path]:
    return write_psg_tiny(tmp_path)


@pytest.mark.parametrize('case', sorted(BROKEN_FILES))
def test_annotation_file(psg, case):
    ann_file, root = psg
    text, reason = BROKEN_FILES[case]
    write(ann_file, text)
    with pytest.raises(DatasetError) as info:
        PSGDataset(str(ann_file), str(root))
    assert str(info.value).startswith(f'{ann_file}: ann_file: ') and reason in str(info.value)


def _submission(tmp_path: Path) -> Path:
    masks = id_map_to_masks(np.array([[0, 0], [1, 1]], np.int32), 2)
    pred = Prediction(image_id='a', labels=np.array([0, 1]), scores=np.ones(2, np.float32),
                      boxes=np.zeros((2, 4), np.float32), masks=masks, pairs=np.array([[0, 1]]),
                      predicate_scores=np.eye(1, 56, dtype=np.float32),
                      triplet_scores=np.ones(1, np.float32))
    write_submission([pred], ['a'], str(tmp_path / 'sub'))
    return tmp_path / 'sub'


@pytest.mark.parametrize('case', sorted(BROKEN_FILES))
def test_relation_file(tmp_path, case):
    sub = _submission(tmp_path)
    text, reason = BROKEN_FILES[case]
    write(sub / 'relation.json', text)
    with pytest.raises(SubmissionError) as info:
        read_submission(str(sub), ['a'])
    (line,) = info.value.problems
    assert line.startswith(f'{sub}/relation.json: relation.json: ') and reason in line


@pytest.mark.parametrize('case', sorted(BROKEN_FILES))
def test_prediction_file(tmp_path, case):
    text, reason = BROKEN_FILES[case]
    path = write(tmp_path / 'preds.json', text)
    with pytest.raises(PredictionFileError) as info:
        load_predictions(path)
    assert str(info.value).startswith(f'{path}: ') and reason in str(info.value)


def _saved_prediction(tmp_path: Path) -> tuple[Path, dict]:
    masks = id_map_to_masks(np.array([[0, 0], [1, 1]], np.int32), 2)
    pred = Prediction(image_id='a', labels=np.array([0, 1]), scores=np.ones(2, np.float32),
                      boxes=np.zeros((2, 4), np.float32), masks=masks, pairs=np.array([[0, 1]]),
                      predicate_scores=np.eye(1, 56, dtype=np.float32),
                      triplet_scores=np.ones(1, np.float32))
    path = tmp_path / 'preds.json'
    save_predictions([pred], path)
    return path, json.loads(path.read_text())


@pytest.mark.parametrize('field, value, words', [
    ('num_predicates', 2 ** 70, 'num_predicates must be an integer in 1..10000'),
    ('labels', [2 ** 70, 1], 'labels holds numbers beyond 2**53'),
    ('scores', [float('nan'), 1.0], 'scores holds NaN or infinite values'),
    ('triplet_scores', [float('inf')], 'triplet_scores holds NaN or infinite values'),
    ('masks', [{'size': [2 ** 40, 2], 'counts': 'x'}], 'masks[0].size must be [height, width]'),
    ('masks', [{'size': [2, 2]}], 'masks[0] must be an RLE dict'),
    ('image_id', ['a'], 'image_id must be a string'),
    ('pairs', [[0, 2]], 'pairs index segments up to 2 but there are 2 segments'),
    ('scores', [1.0], 'scores has 1 values, expected 2 for 2 segments and 1 relations'),
    ('labels', [-1, 0], 'labels must hold non-negative integers'),
    ('triplet_scores', None, 'triplet_scores is missing'),
])
def test_prediction_file_fields(tmp_path, field, value, words):
    path, content = _saved_prediction(tmp_path)
    content['predictions'][0][field] = value
    path.write_text(json.dumps(content))
    with pytest.raises(PredictionFileError) as info:
        load_predictions(path)
    assert str(info.value).startswith(f'{path}: predictions[0]') and words in str(info.value)


# ---------------------------------------------------------- annotation fields used as sizes / ids
def _edit(ann_file: Path, text: str, old: str, new: str) -> None:
    assert old in text
    ann_file.write_text(text.replace(old, new, 1))


def test_numbers_that_do_not_fit_are_field_problems_not_overflows(psg):
    ann_file, root = psg
    text = ann_file.read_text()
    raw = json.loads(text)
    raw['data'][0]['height'] = 2 ** 70
    raw['data'][0]['width'] = float('nan')
    raw['data'][0]['annotations'][0]['bbox'][2] = 10 ** 400
    raw['data'][0]['annotations'][1]['bbox'][0] = float('inf')
    raw['data'][0]['segments_info'][0]['area'] = float('inf')
    raw['data'][1]['segments_info'][1]['id'] = 2 ** 64
    raw['data'][1]['relations'][0][2] = -2 ** 70
    ann_file.write_text(json.dumps(raw))
    report = check_dataset(str(ann_file), str(root), progress=False)
    found = '\n'.join(report.problems)
    first, second = f'{ann_file}: image_id=1001: ', f'{ann_file}: image_id=1002: '
    for line in [
            first + 'height: must be a positive integer up to 65535, got 1180591620717411303424',
            first + 'width: must be a positive integer up to 65535, got nan',
            first + 'annotations[0].bbox: must be [x1, y1, x2, y2] (4 finite numbers)',
            first + 'annotations[1].bbox: must be [x1, y1, x2, y2] (4 finite numbers)',
            first + 'segments_info[0].area: must be a non-negative number, got inf',
            second + 'segments_info[1].id: must be an integer in 1..16777215',
            second + 'relations[0]: predicate -1180591620717411303424 is outside 0..5']:
        assert line in found, found


def test_labels_of_a_file_without_usable_class_lists_cannot_overflow(psg):
    ann_file, root = psg
    raw = json.loads(ann_file.read_text())
    raw['thing_classes'] = 'person'                     # unusable: label ranges are unknown
    raw['predicate_classes'] = None
    raw['data'][0]['annotations'][0]['category_id'] = 2 ** 70
    raw['data'][0]['segments_info'][0]['category_id'] = 2 ** 70
    raw['data'][0]['relations'][0][2] = 2 ** 63
    ann_file.write_text(json.dumps(raw))
    report = check_dataset(str(ann_file), str(root), check_files=False, progress=False)
    found = '\n'.join(report.problems)
    assert 'thing_classes: must be a list of class-name strings' in found
    assert ('image_id=1001: annotations[0].category_id: 1180591620717411303424 is outside '
            '0..2147483647') in found
    assert ('image_id=1001: relations[0]: predicate 9223372036854775808 is outside '
            '0..2147483647') in found


@pytest.mark.parametrize('image_id', ['../../evil', 'a/b', '..', '', 'line\nbreak', '\ud800'])
def test_image_ids_must_be_usable_as_file_names(psg, image_id):
    ann_file, root = psg
    raw = json.loads(ann_file.read_text())
    raw['data'][1]['image_id'] = image_id
    raw['test_image_ids'] = [image_id]
    ann_file.write_text(json.dumps(raw))
    with pytest.raises(DatasetError) as info:
        PSGDataset(str(ann_file), str(root), split='test')
    (line,) = info.value.problems
    assert 'image_id: ' in line and 'cannot be used as a file name' in line
    assert line.isprintable() and '\n' not in line


# ---------------------------------------------------------------------------- through the CLIs
@pytest.mark.parametrize('case', ['nested 100k deep', '5000-digit integer'])
def test_check_dataset_cli(psg, case):
    ann_file, root = psg
    text, reason = BROKEN_FILES[case]
    write(ann_file, text)
    before = snapshot(root)
    proc = run_tool('check_dataset', ann_file, '--data-root', root)
    assert_clean_failure(proc, 1, f'{ann_file}: ', reason)
    assert snapshot(root) == before


def test_check_dataset_cli_lists_field_problems(psg):
    ann_file, root = psg
    text = ann_file.read_text()
    text = text.replace('"height": 24', '"height": 1180591620717411303424', 1)
    text = text.replace('"width": 30', '"width": NaN', 1)
    text = text.replace('"area": 96', '"area": Infinity', 1)
    ann_file.write_text(text)
    proc = run_tool('check_dataset', ann_file, '--data-root', root)
    out = assert_clean_failure(proc, 1, '3 problem(s) found')
    assert f'{ann_file}: image_id=1001: height: must be a positive integer up to 65535' in out
    assert f'{ann_file}: image_id=1002: width: must be a positive integer up to 65535, got nan' \
        in out
    assert f'{ann_file}: image_id=1001: segments_info[0].area: must be a non-negative number' in out


def test_top_level_of_the_wrong_type(psg, tmp_path):
    ann_file, root = psg
    write(ann_file, '[1, 2]')
    with pytest.raises(DatasetError, match=r'top level: must be a JSON object .* got list'):
        PSGDataset(str(ann_file), str(root))
    sub = _submission(tmp_path)
    write(sub / 'relation.json', '{"a": 1}')
    with pytest.raises(SubmissionError, match='must be a JSON list with one entry per test image'):
        read_submission(str(sub), ['a'])
    path = write(tmp_path / 'preds.json', '"openpsg-predictions"')
    with pytest.raises(PredictionFileError, match='not an openpsg prediction file'):
        load_predictions(path)


def test_make_report_reads_its_input_safely(tmp_path):
    path = write(tmp_path / 'eval.json', DEEP)
    proc = run_tool('make_report', '--eval', path, '--out', tmp_path / 'REPORT.md')
    assert_clean_failure(proc, 1, str(path), 'nested too deeply')
    assert sorted(os.listdir(tmp_path)) == ['eval.json']
