"""The synthetic PSG generator: schema, determinism, predicate rules, statistics and the CLI."""
import importlib.util
import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from openpsg.datasets import synthetic
from openpsg.datasets.synthetic import generate_synthetic_psg, render_scene
from openpsg.structures.labels import CLASSES, PREDICATES, STUFF_CLASSES, THING_CLASSES

SIZE = 64
NUM_TRAIN, NUM_TEST = 120, 80
GROUND = {'grass-merged', 'snow', 'sand', 'road', 'floor-wood'}
TOOL = Path(__file__).resolve().parents[1] / 'tools' / 'make_synth_psg.py'


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp('synth') / 'psg_synth'
    stats = generate_synthetic_psg(root, NUM_TRAIN, NUM_TEST, seed=0, size=SIZE)
    psg = json.loads((root / 'psg.json').read_text())
    return root, psg, stats


def _pan_ids(root, entry):
    rgb = np.asarray(Image.open(root / entry['pan_seg_file_name']).convert('RGB')).astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


def _tight_box(mask):
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


def _images(root):
    return {p.relative_to(root).as_posix(): np.asarray(Image.open(p))
            for p in sorted(root.rglob('*')) if p.suffix in ('.jpg', '.png')}


def _names(entry, rel):
    s, o, p = rel
    return (CLASSES[entry['segments_info'][s]['category_id']], PREDICATES[p],
            CLASSES[entry['segments_info'][o]['category_id']])


# ---------------------------------------------------------------------------------------------
# schema


def test_top_level_schema(dataset):
    root, psg, stats = dataset
    assert list(psg) == ['data', 'thing_classes', 'stuff_classes', 'predicate_classes', 'test_image_ids']
    assert psg['thing_classes'] == list(THING_CLASSES) and len(psg['thing_classes']) == 80
    assert psg['stuff_classes'] == list(STUFF_CLASSES) and len(psg['stuff_classes']) == 53
    assert psg['predicate_classes'] == list(PREDICATES) and len(psg['predicate_classes']) == 56
    ids = [d['image_id'] for d in psg['data']]
    assert ids == [str(100000 + k) for k in range(NUM_TRAIN + NUM_TEST)]
    assert psg['test_image_ids'] == ids[NUM_TRAIN:]
    assert stats['num_images'] == NUM_TRAIN + NUM_TEST
    assert stats['num_relations'] == sum(len(d['relations']) for d in psg['data'])
    assert sorted(p.name for p in root.iterdir()) == ['images', 'panoptic', 'psg.json']


def test_every_image_matches_its_files(dataset):
    root, psg, _ = dataset
    shapes = set()
    for entry in psg['data']:
        iid = entry['image_id']
        assert set(entry) == {'file_name', 'height', 'width', 'image_id', 'coco_image_id',
                              'pan_seg_file_name', 'segments_info', 'annotations', 'relations'}
        assert entry['file_name'] == f'images/{iid}.jpg'
        assert entry['pan_seg_file_name'] == f'panoptic/{iid}.png'
        assert isinstance(entry['coco_image_id'], str)
        h, w = entry['height'], entry['width']
        assert max(h, w) == SIZE and min(h, w) in (48, 64)
        shapes.add((h, w))
        with Image.open(root / entry['file_name']) as im:
            assert im.format == 'JPEG' and im.size == (w, h) and im.mode == 'RGB'
        pan = _pan_ids(root, entry)
        assert pan.shape == (h, w)
        segs, anns = entry['segments_info'], entry['annotations']
        assert len(segs) == len(anns)
        seg_ids = [s['id'] for s in segs]
        assert len(set(seg_ids)) == len(seg_ids) and 0 not in seg_ids
        assert set(np.unique(pan).tolist()) <= set(seg_ids) | {0}
        for seg, ann in zip(segs, anns):
            assert set(seg) == {'id', 'category_id', 'iscrowd', 'isthing', 'area'}
            assert 0 <= seg['category_id'] < 133
            assert seg['isthing'] == int(seg['category_id'] < 80) and seg['iscrowd'] == 0
            mask = pan == seg['id']
            assert seg['area'] == int(mask.sum()) > 0
            assert ann == {'bbox': _tight_box(mask), 'bbox_mode': 0, 'category_id': seg['category_id']}
            assert all(isinstance(v, float) for v in ann['bbox'])
        for s, o, p in entry['relations']:
            assert 0 <= s < len(segs) and 0 <= o < len(segs) and s != o and 0 <= p < 56
        assert len({tuple(r) for r in entry['relations']}) == len(entry['relations'])
    assert len(shapes) >= 2  # several aspect ratios, for aspect-ratio grouping


def test_check_dataset_finds_no_problem(dataset):
    from openpsg.datasets.check import check_dataset

    root, _, _ = dataset
    report = check_dataset(str(root / 'psg.json'), str(root), progress=False)
    assert report.problems == []
    assert report.stats['test']['images'] == NUM_TEST


# ---------------------------------------------------------------------------------------------
# predicates follow from the drawing


def _rests_on(s, o):
    """A pixel of ``s`` in the lowest quarter of its box sits directly on a pixel of ``o``."""
    ys = np.nonzero(s)[0]
    y1, y2 = ys.min(), ys.max() + 1
    contact_rows = [y for y in range(s.shape[0] - 1) if (s[y] & o[y + 1]).any()]
    return bool(contact_rows) and max(contact_rows) >= y2 - max(1, math.ceil((y2 - y1) / 4))


def _adjacent(a, b):
    grown = b.copy()
    grown[1:] |= b[:-1]
    grown[:-1] |= b[1:]
    grown[:, 1:] |= b[:, :-1]
    grown[:, :-1] |= b[:, 1:]
    return bool((a & grown).any())


def test_predicates_follow_the_drawing(dataset):
    root, psg, _ = dataset
    seen = Counter()
    for entry in psg['data']:
        pan = _pan_ids(root, entry)
        h, w = pan.shape
        masks = [pan == s['id'] for s in entry['segments_info']]
        boxes = [_tight_box(m) for m in masks]
        for rel in entry['relations']:
            subj, pred, obj = _names(entry, rel)
            s, o = masks[rel[0]], masks[rel[1]]
            bs, bo = boxes[rel[0]], boxes[rel[1]]
            overlap = min(bs[2], bo[2]) > max(bs[0], bo[0]) and min(bs[3], bo[3]) > max(bs[1], bo[1])
            seen[pred] += 1
            where = f'image {entry["image_id"]}: {subj} {pred} {obj}'
            if pred in ('standing on', 'walking on', 'running on', 'lying on', 'parked on', 'driving on'):
                assert obj in GROUND and _rests_on(s, o), where
            if pred in ('walking on', 'running on', 'lying on'):
                assert subj in (('person',) if pred == 'walking on' else ('dog',)), where
            if pred in ('parked on', 'driving on'):
                assert (subj, obj) == ('car', 'road'), where
            if pred == 'walking on':
                assert [rel[0], rel[1], PREDICATES.index('standing on')] in entry['relations'], where
            if pred == 'on':
                assert (obj in GROUND or obj == 'dining table') and _rests_on(s, o), where
            if pred == 'in':
                assert (subj, obj) == ('boat', 'sea') and _rests_on(s, o), where
            if pred == 'flying over':
                assert subj in ('bird', 'kite', 'airplane') and bs[3] <= bo[1], where
            if pred == 'in front of':
                assert overlap and entry['segments_info'][rel[0]]['isthing'] == 1, where
            if pred == 'beside':
                assert bs[0] + bs[2] <= bo[0] + bo[2], where  # subject is the left one
                assert abs(bs[3] - bo[3]) <= max(2, 0.05 * h), where
                assert max(bo[0] - bs[2], bs[0] - bo[2]) <= 0.1 * w, where
            if pred == 'riding':
                assert subj == 'person' and obj in ('horse', 'bicycle') and overlap, where
            if pred == 'sitting on':
                assert subj == 'person' and obj in ('chair', 'bench') and overlap, where
            if pred in ('holding', 'kicking'):
                assert subj == 'person' and _adjacent(s, o), where
            if pred == 'attached to':
                assert (subj, obj) == ('clock', 'wall-other-merged') and _adjacent(s, o), where
            if pred == 'over':
                assert bs[1] < bo[1] and bs[0] < bo[2] and bo[0] < bs[2], where
            if pred == 'looking at':
                assert (subj, obj) == ('person', 'tv'), where
    for pred in ('standing on', 'on', 'in front of', 'beside', 'flying over', 'riding'):
        assert seen[pred] > 0, pred


def test_every_predicate_is_documented(dataset):
    _, psg, _ = dataset
    lines = synthetic.__doc__.splitlines()
    rules = [k for k, line in enumerate(lines) if line.startswith('=' * 17 + '  ')]
    assert len(rules) == 3  # reST table: top, below the header, bottom
    documented = {line[:17].strip() for line in lines[rules[1] + 1:rules[2]] if line[:1].strip()}
    used = {PREDICATES[p] for d in psg['data'] for _, _, p in d['relations']}
    assert used <= documented
    assert documented <= set(PREDICATES)


def test_predicate_statistics_are_long_tailed(dataset):
    _, psg, stats = dataset
    counts = Counter(PREDICATES[p] for d in psg['data'] for _, _, p in d['relations'])
    assert dict(counts) == stats['predicate_counts']
    assert len(counts) >= 12
    assert max(counts.values()) > 5 * np.median(list(counts.values()))
    multi = [k for d in psg['data'] for k, n in Counter((s, o) for s, o, _ in d['relations']).items() if n > 1]
    assert len(multi) > 0
    test_ids = set(psg['test_image_ids'])
    empty_test = [d['image_id'] for d in psg['data'] if d['image_id'] in test_ids and not d['relations']]
    assert 0 < len(empty_test) == stats['test_images_without_relations'] < 0.2 * NUM_TEST


# ---------------------------------------------------------------------------------------------
# determinism


def test_render_scene_is_a_function_of_the_random_stream():
    a = render_scene(np.random.default_rng(7), 80)
    b = render_scene(np.random.default_rng(7), 80)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.pan_ids, b.pan_ids)
    assert a.segments == b.segments and a.relations == b.relations
    assert a.image.dtype == np.uint8 and a.image.shape == (*a.pan_ids.shape, 3)
    assert max(a.pan_ids.shape) == 80


def test_same_seed_same_bytes_any_workers(tmp_path):
    one = generate_synthetic_psg(tmp_path / 'a', 6, 4, seed=3, size=SIZE, workers=1)
    generate_synthetic_psg(tmp_path / 'b', 6, 4, seed=3, size=SIZE, workers=1)
    two = generate_synthetic_psg(tmp_path / 'c', 6, 4, seed=3, size=SIZE, workers=2)
    ref = (tmp_path / 'a' / 'psg.json').read_bytes()
    assert (tmp_path / 'b' / 'psg.json').read_bytes() == ref == (tmp_path / 'c' / 'psg.json').read_bytes()
    images = _images(tmp_path / 'a')
    assert len(images) == 20
    for other in ('b', 'c'):
        again = _images(tmp_path / other)
        assert images.keys() == again.keys()
        assert all(np.array_equal(images[k], again[k]) for k in images)
    assert one['predicate_counts'] == two['predicate_counts']


def test_different_seeds_differ_and_test_split_ignores_num_train(tmp_path):
    generate_synthetic_psg(tmp_path / 'a', 4, 3, seed=0, size=SIZE)
    generate_synthetic_psg(tmp_path / 'b', 4, 3, seed=1, size=SIZE)
    generate_synthetic_psg(tmp_path / 'c', 2, 3, seed=0, size=SIZE)
    a, b = _images(tmp_path / 'a'), _images(tmp_path / 'b')
    assert (tmp_path / 'a' / 'psg.json').read_bytes() != (tmp_path / 'b' / 'psg.json').read_bytes()
    assert not any(a[k].shape == b[k].shape and np.array_equal(a[k], b[k]) for k in a)
    # test image j is drawn from (seed, j) whatever num_train is; only its id moves
    c = _images(tmp_path / 'c')
    for j in range(3):
        assert np.array_equal(a[f'panoptic/{100004 + j}.png'], c[f'panoptic/{100002 + j}.png'])


# ---------------------------------------------------------------------------------------------
# writing safely, CLI


def _load_tool():
    spec = importlib.util.spec_from_file_location('make_synth_psg', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_refuses_to_overwrite_and_leaves_no_temp_dir(tmp_path, capsys):
    tool = _load_tool()
    out = tmp_path / 'data' / 'synth'
    args = ['--out', str(out), '--num-train', '3', '--num-test', '2', '--size', str(SIZE), '--workers', '1']
    assert tool.main(args) == 0
    first = (out / 'psg.json').read_bytes()
    assert 'wrote 5 images (3 train, 2 test)' in capsys.readouterr().out
    assert tool.main(args + ['--seed', '1']) == 1
    assert 'exists and is not empty' in capsys.readouterr().err
    assert (out / 'psg.json').read_bytes() == first
    assert tool.main(args + ['--seed', '1', '--overwrite']) == 0
    assert (out / 'psg.json').read_bytes() != first
    assert len(list((out / 'images').iterdir())) == 5
    assert [p.name for p in out.parent.iterdir()] == ['synth']


def test_empty_existing_folder_is_filled(tmp_path):
    (tmp_path / 'out').mkdir()
    generate_synthetic_psg(tmp_path / 'out', 1, 1, size=SIZE)
    assert (tmp_path / 'out' / 'psg.json').is_file()
    assert [p.name for p in tmp_path.iterdir()] == ['out']


def test_interrupted_run_leaves_nothing(tmp_path, monkeypatch):
    render = synthetic._make_image
    calls = []

    def interrupted(job):
        calls.append(job.image_id)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return render(job)

    monkeypatch.setattr(synthetic, '_make_image', interrupted)
    with pytest.raises(KeyboardInterrupt):
        generate_synthetic_psg(tmp_path / 'out', 4, 2, size=SIZE)
    assert len(calls) == 3
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize('kwargs, message', [
    (dict(num_train=0, num_test=0), 'at least one image'),
    (dict(num_train=2, num_test=-1), 'num_test=-1'),
    (dict(num_train=2, num_test=1, size=16), 'size must be at least 32'),
    (dict(num_train=2, num_test=1, workers=0), 'workers must be at least 1'),
    (dict(num_train=2, num_test=1, seed=-1), 'seed must be a non-negative integer'),
])
def test_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        generate_synthetic_psg(tmp_path / 'out', **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_out_that_is_a_file_is_refused(tmp_path):
    target = tmp_path / 'psg_synth'
    target.write_text('keep me')
    with pytest.raises(FileExistsError, match='not a directory'):
        generate_synthetic_psg(target, 1, 1, size=SIZE, overwrite=True)
    assert target.read_text() == 'keep me'
    assert [p.name for p in tmp_path.iterdir()] == ['psg_synth']
