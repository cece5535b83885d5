"""PSGDataset on the hand-written fixture ``tests/fixtures/psg_tiny`` (two images, 24x32 and 20x30)."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures.psg_tiny.paint import write_psg_tiny
from PIL import Image

from openpsg.datasets import DatasetError, PSGDataset, sample_one_predicate
from openpsg.registry import DATASETS, TRANSFORMS


@pytest.fixture
def psg(tmp_path: Path) -> tuple[Path, Path]:
    return write_psg_tiny(tmp_path)


def edited(ann_file: Path, edit, name: str = 'edited.json') -> Path:
    """A copy of ``ann_file`` changed by ``edit(raw)``, written under a new name."""
    raw = json.loads(ann_file.read_text())
    edit(raw)
    out = ann_file.with_name(name)
    out.write_text(json.dumps(raw))
    return out


def rect_mask(hw: tuple[int, int], x1: int, y1: int, x2: int, y2: int) -> np.ndarray:
    mask = np.zeros(hw, dtype=bool)
    mask[y1:y2, x1:x2] = True
    return mask


# --------------------------------------------------------------------------- round trip
def test_train_split_reads_the_schema(psg):
    ann_file, root = psg
    ds = PSGDataset(str(ann_file), str(root), split='train', seed=0)
    assert len(ds) == 1 and ds.image_ids == ['1001']
    assert ds.classes == ('person', 'horse', 'dog', 'grass-merged', 'sky-other-merged')
    assert ds.predicates == ('over', 'in front of', 'beside', 'on', 'standing on', 'looking at')
    assert ds.num_things == 3

    info = ds.get_data_info(0)
    assert set(info) == {'image_id', 'img_path', 'seg_path', 'file_name', 'pan_seg_file_name',
                         'height', 'width', 'segment_ids', 'labels', 'boxes', 'iscrowd', 'is_thing',
                         'rels'}
    assert info['image_id'] == '1001' and isinstance(info['image_id'], str)
    assert info['file_name'] == 'train2017/000000001001.jpg'
    assert info['pan_seg_file_name'] == 'panoptic_train2017/000000001001.png'
    assert info['img_path'] == str((root / 'train2017/000000001001.jpg').resolve())
    assert info['seg_path'] == str((root / 'panoptic_train2017/000000001001.png').resolve())
    assert (info['height'], info['width']) == (24, 32)
    assert info['segment_ids'].dtype == np.int64
    assert info['segment_ids'].tolist() == [1, 2, 1792, 66309]
    assert info['labels'].dtype == np.int64 and info['labels'].tolist() == [0, 1, 4, 3]
    assert info['boxes'].dtype == np.float32
    assert info['boxes'].tolist() == [[2, 6, 10, 18], [12, 8, 28, 18], [0, 0, 32, 6], [0, 18, 32, 24]]
    assert info['iscrowd'].tolist() == [False] * 4
    assert info['is_thing'].tolist() == [True, True, False, False]
    assert info['rels'].dtype == np.int64 and info['rels'].shape == (3, 3)


def test_test_split_and_ground_truth_masks_equal_the_painted_regions(psg):
    ann_file, root = psg
    ds = PSGDataset(str(ann_file), str(root), split='test')
    assert ds.image_ids == ['1002']
    gt = ds.get_gt(0)
    assert gt.image_id == '1002'
    assert gt.labels.tolist() == [2, 0, 3]
    assert gt.boxes.tolist() == [[3, 5, 12, 15], [15, 2, 27, 18], [0, 18, 30, 20]]
    assert gt.iscrowd.tolist() == [True, False, False]
    assert gt.id_map.shape == (20, 30)
    masks = gt.masks()
    np.testing.assert_array_equal(masks[0], rect_mask((20, 30), 3, 5, 12, 15))
    np.testing.assert_array_equal(masks[1], rect_mask((20, 30), 15, 2, 27, 18))
    np.testing.assert_array_equal(masks[2], rect_mask((20, 30), 0, 18, 30, 20))
    # 600 pixels, 90 + 192 + 60 labelled: the rest is void
    assert (gt.id_map == -1).sum() == 600 - 342

    train_gt = PSGDataset(str(ann_file), str(root), split='train').get_gt_by_id('1001')
    assert [int(m.sum()) for m in train_gt.masks()] == [96, 160, 192, 192]
    np.testing.assert_array_equal(train_gt.masks()[3], rect_mask((24, 32), 0, 18, 32, 24))


def test_split_is_by_string_membership_and_unknown_ids_raise(psg):
    ann_file, root = psg
    ds = PSGDataset(str(ann_file), str(root), split='test')
    assert ds.get_gt_by_id('1002').image_id == '1002'
    with pytest.raises(KeyError, match='1001'):
        ds.get_gt_by_id('1001')
    with pytest.raises(ValueError, match='split'):
        PSGDataset(str(ann_file), str(root), split='val')


def test_drop_no_rels_happens_before_splitting(psg):
    ann_file, root = psg

    def unlabel_test_image(raw):
        raw['data'][1]['relations'] = []

    unlabelled = edited(ann_file, unlabel_test_image)
    assert len(PSGDataset(str(unlabelled), str(root), split='test')) == 0
    kept = PSGDataset(str(unlabelled), str(root), split='test', drop_no_rels=False)
    assert kept.image_ids == ['1002']
    assert kept.get_data_info(0)['rels'].shape == (0, 3)
    assert len(PSGDataset(str(unlabelled), str(root), split='train')) == 1


def test_max_images_keeps_the_first_images_of_the_split(psg):
    ann_file, root = psg

    def make_both_train(raw):
        raw['test_image_ids'] = []

    all_train = edited(ann_file, make_both_train)
    assert PSGDataset(str(all_train), str(root)).image_ids == ['1001', '1002']
    assert PSGDataset(str(all_train), str(root), max_images=1).image_ids == ['1001']


# --------------------------------------------------------------------------- relation rules
def test_train_sampling_keeps_one_predicate_per_pair_and_redraws_each_load(psg):
    ann_file, root = psg
    ds = PSGDataset(str(ann_file), str(root), split='train', seed=0)
    seen = set()
    for _ in range(60):
        rels = ds.get_data_info(0)['rels']
        # pairs in order of first occurrence: (0,3) standing on, (0,1) beside|in front of, (1,3) on
        assert rels[:, :2].tolist() == [[0, 3], [0, 1], [1, 3]]
        assert rels[0, 2] == 4 and rels[2, 2] == 3
        seen.add(int(rels[1, 2]))
    assert seen == {1, 2}


def test_train_sampling_is_reproducible_under_a_seed(psg):
    ann_file, root = psg
    a = PSGDataset(str(ann_file), str(root), seed=3)
    b = PSGDataset(str(ann_file), str(root), seed=3)
    draws_a = [int(a.get_data_info(0)['rels'][1, 2]) for _ in range(30)]
    assert draws_a == [int(b.get_data_info(0)['rels'][1, 2]) for _ in range(30)]
    a.reseed(3)
    assert draws_a == [int(a.get_data_info(0)['rels'][1, 2]) for _ in range(30)]


def test_sample_one_predicate_draws_over_rows():
    rels = np.array([[0, 1, 5], [2, 0, 1], [0, 1, 7], [0, 1, 7]])
    rng = np.random.default_rng(0)
    picks = [sample_one_predicate(rels, rng) for _ in range(400)]
    assert all(p[:, :2].tolist() == [[0, 1], [2, 0]] for p in picks)
    sevens = sum(int(p[0, 2] == 7) for p in picks)
    # predicate 7 is two of the pair's three rows: expected 2/3 of 400 = 267, sd ~ 9.4
    assert 230 < sevens < 305
    assert sample_one_predicate(np.zeros((0, 3), dtype=np.int64), rng).shape == (0, 3)


def test_test_split_removes_exact_duplicates_only(psg):
    ann_file, root = psg
    test = PSGDataset(str(ann_file), str(root), split='test')
    assert test.get_data_info(0)['rels'].tolist() == [[1, 0, 5], [1, 0, 2], [0, 2, 4]]
    assert test.get_gt(0).rels.tolist() == [[1, 0, 5], [1, 0, 2], [0, 2, 4]]
    assert test.get_gt(0).rels_raw.tolist() == [[1, 0, 5], [1, 0, 2], [1, 0, 5], [0, 2, 4]]
    train_dedup = PSGDataset(str(ann_file), str(root), split='train', rel_mode='dedup')
    assert train_dedup.get_data_info(0)['rels'].tolist() == [[0, 3, 4], [0, 1, 2], [0, 1, 1], [1, 3, 3]]
    sampled_test = PSGDataset(str(ann_file), str(root), split='test', rel_mode='sample_one')
    assert sampled_test.get_data_info(0)['rels'][:, :2].tolist() == [[1, 0], [0, 2]]
    with pytest.raises(ValueError, match='rel_mode'):
        PSGDataset(str(ann_file), str(root), rel_mode='all')


def _identity(x):
    return x


def _rel_draws(ds: PSGDataset, torch_seed: int) -> list[int]:
    torch.manual_seed(torch_seed)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, sampler=[0] * 24, num_workers=2,
                                         collate_fn=_identity)
    return [int(info['rels'][1, 2]) for info in loader]


def test_dataloader_workers_are_reproducible_and_draw_differently(psg):
    ann_file, root = psg
    ds = PSGDataset(str(ann_file), str(root), seed=5)
    first = _rel_draws(ds, 0)
    assert first == _rel_draws(ds, 0)
    assert first != _rel_draws(ds, 1)
    # the two workers alternate samples (0, 1, 0, 1, ...): their streams differ
    assert first[0::2] != first[1::2]


class _ReseedPerSample(torch.utils.data.Dataset):
    """Item ``k``: the pair-(0, 1) predicate drawn right after ``reseed(k)`` (as the training
    loader seeds every sample)."""

    def __init__(self, ds: PSGDataset) -> None:
        self.ds = ds

    def __len__(self) -> int:
        return 16

    def __getitem__(self, k: int) -> int:
        self.ds.reseed(k)
        return int(self.ds.get_data_info(0)['rels'][1, 2])


def test_reseed_in_a_worker_wins_over_the_worker_seed(psg):
    ann_file, root = psg
    ds = PSGDataset(str(ann_file), str(root))
    in_process = [_ReseedPerSample(ds)[k] for k in range(16)]
    assert len(set(in_process)) == 2
    loader = torch.utils.data.DataLoader(_ReseedPerSample(ds), batch_size=None, num_workers=2,
                                         collate_fn=_identity)
    assert list(loader) == in_process


# --------------------------------------------------------------------------- pipeline
def test_empty_pipeline_returns_the_info_and_callables_run_in_order(psg):
    ann_file, root = psg
    ds = PSGDataset(str(ann_file), str(root))
    sample = ds[0]
    assert set(sample) == set(ds.get_data_info(0)) | {'rng'}
    assert sample['image_id'] == '1001' and sample['rng'] is ds.rng

    def count_labels(results):
        return {**results, 'num_labels': len(results['labels'])}

    def double(results):
        return {**results, 'num_labels': 2 * results['num_labels']}

    ds = PSGDataset(str(ann_file), str(root), pipeline=[count_labels, double])
    assert ds[0]['num_labels'] == 8


@TRANSFORMS.register('_KeepImage')
class _KeepImage:
    """Rejects every image but one (a test transform)."""

    def __init__(self, image_id: str) -> None:
        self.image_id = image_id

    def __call__(self, results):
        return results if results['image_id'] == self.image_id else None


def test_rejected_samples_are_replaced_by_random_other_images(psg):
    ann_file, root = psg

    def make_both_train(raw):
        raw['test_image_ids'] = []

    both = edited(ann_file, make_both_train)
    ds = PSGDataset(str(both), str(root), pipeline=[dict(type='_KeepImage', image_id='1002')],
                    seed=0)
    assert [ds[0]['image_id'] for _ in range(5)] == ['1002'] * 5

    never = PSGDataset(str(both), str(root), pipeline=[dict(type='_KeepImage', image_id='x')])
    with pytest.raises(DatasetError) as err:
        never[0]
    msg = str(err.value)
    assert str(both) in msg and 'image_id=1001' in msg and 'pipeline' in msg and '_KeepImage' in msg


def test_registered_and_built_from_config(psg):
    ann_file, root = psg
    ds = DATASETS.build(dict(type='PSGDataset', ann_file=str(ann_file), data_root=str(root),
                             split='test'))
    assert isinstance(ds, PSGDataset) and ds.image_ids == ['1002']


# --------------------------------------------------------------------------- statistics
def test_statistics_triplets_and_frequencies(psg):
    ann_file, root = psg
    train = PSGDataset(str(ann_file), str(root), split='train')
    test = PSGDataset(str(ann_file), str(root), split='test')
    np.testing.assert_allclose(train.aspect_ratios(), [32 / 24])
    np.testing.assert_allclose(test.aspect_ratios(), [30 / 20])
    # (subject label, object label, predicate): person=0 horse=1 dog=2 grass=3
    assert train.triplets() == {(0, 3, 4), (0, 1, 2), (0, 1, 1), (1, 3, 3)}
    assert test.triplets() == {(0, 2, 5), (0, 2, 2), (2, 3, 4)}
    assert train.predicate_frequencies().tolist() == [0, 1, 1, 1, 1, 0]
    stats = test.statistics()
    assert stats['images'] == 1 and stats['images_without_relations'] == 0
    assert stats['objects'] == {'total': 3, 'mean': 3.0, 'min': 3, 'max': 3}
    assert stats['relations'] == {'total': 3, 'mean': 3.0, 'min': 3, 'max': 3}
    assert stats['duplicate_relations'] == 1
    assert stats['predicates'] == {'over': 0, 'in front of': 0, 'beside': 1, 'on': 0,
                                   'standing on': 1, 'looking at': 1}


# --------------------------------------------------------------------------- bad input
def _set(path: tuple, value):
    def edit(raw):
        target = raw
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return edit


def _delete(path: tuple):
    def edit(raw):
        target = raw
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
    return edit


def _append(path: tuple, value):
    def edit(raw):
        target = raw
        for key in path:
            target = target[key]
        target.append(value)
    return edit


# (edit, image_id named or None, field named, words of the message)
BAD_JSON = {
    'missing top-level key': (_delete(('predicate_classes',)), None, 'predicate_classes', 'missing'),
    'segments/annotations length': (_delete(('data', 0, 'annotations', 2)), '1001', 'annotations',
                                    'parallel'),
    'relation subject out of range': (_set(('data', 1, 'relations', 0), [3, 0, 5]), '1002',
                                      'relations[0]', 'subject index 3'),
    'relation object out of range': (_append(('data', 1, 'relations'), [0, -1, 2]), '1002',
                                     'relations[4]', 'object index -1'),
    'predicate out of range': (_set(('data', 0, 'relations', 1, 2), 6), '1001', 'relations[1]',
                               'predicate 6 is outside 0..5'),
    'segment category out of range': (_set(('data', 1, 'segments_info', 2, 'category_id'), 5), '1002',
                                      'segments_info[2].category_id', 'outside 0..4'),
    'annotation category negative': (_set(('data', 1, 'annotations', 0, 'category_id'), -1), '1002',
                                     'annotations[0].category_id', 'outside 0..4'),
    'bbox of three numbers': (_set(('data', 0, 'annotations', 0, 'bbox'), [2, 6, 10]), '1001',
                              'annotations[0].bbox', '4 finite numbers'),
    'bbox in xywh order': (_set(('data', 0, 'annotations', 3, 'bbox'), [0, 18, 32, 6]), '1001',
                           'annotations[3].bbox', 'y2 < y1'),
    'bbox with a string': (_set(('data', 0, 'annotations', 2, 'bbox'), [0, 0, '32', 6]), '1001',
                           'annotations[2].bbox', '4 finite numbers'),
    'bbox_mode other than xyxy': (_set(('data', 0, 'annotations', 3, 'bbox_mode'), 1), '1001',
                                  'annotations[3].bbox_mode', 'XYXY_ABS'),
    'integer image_id': (_set(('data', 1, 'image_id'), 1002), '1002 (data[1])', 'image_id',
                         'must be a string'),
    'duplicate image_id': (_set(('data', 1, 'image_id'), '1001'), '1001', 'image_id',
                           'duplicate image_id, also used by data[0]'),
    'duplicate segment id': (_set(('data', 0, 'segments_info', 3, 'id'), 1792), '1001',
                             'segments_info[3].id', 'duplicate segment id 1792'),
    'segment/annotation category mismatch': (_set(('data', 0, 'annotations', 1, 'category_id'), 2),
                                             '1001', 'annotations[1].category_id',
                                             'differs from segments_info[1].category_id 1'),
    'isthing contradicts category': (_set(('data', 0, 'segments_info', 2, 'isthing'), 1), '1001',
                                     'segments_info[2].isthing', 'contradicts category_id 4'),
    'integer test_image_ids': (_set(('test_image_ids',), [1002]), None, 'test_image_ids[0]',
                               'must be a string image_id'),
    'missing segment key': (_delete(('data', 1, 'segments_info', 0, 'iscrowd')), '1002',
                            'segments_info[0]', "missing key(s) ['iscrowd']"),
    'relation not a triple': (_set(('data', 1, 'relations', 3), [0, 2]), '1002', 'relations[3]',
                              '3 integers'),
    'non-positive height': (_set(('data', 0, 'height'), 0), '1001', 'height', 'positive integer'),
}


@pytest.mark.parametrize('case', sorted(BAD_JSON))
def test_bad_json_is_reported_with_file_image_and_field(psg, case):
    ann_file, root = psg
    edit, image_id, field, words = BAD_JSON[case]
    bad = edited(ann_file, edit, name=f'bad_{sorted(BAD_JSON).index(case)}.json')
    with pytest.raises(DatasetError) as err:
        PSGDataset(str(bad), str(root))
    where = f'{bad}: ' + (f'image_id={image_id}: ' if image_id is not None else '')
    expected = [p for p in err.value.problems if p.startswith(f'{where}{field}: ') and words in p]
    assert expected, err.value.problems


def test_every_problem_of_a_file_is_reported_at_once(psg):
    ann_file, root = psg

    def break_four_things(raw):
        raw['data'][0]['relations'][0][2] = 9
        raw['data'][0]['image_id'] = 1001
        raw['data'][1]['segments_info'][1]['id'] = 3
        raw['data'][1]['annotations'][2]['bbox'] = [0, 18, 30]

    bad = edited(ann_file, break_four_things)
    with pytest.raises(DatasetError) as err:
        PSGDataset(str(bad), str(root))
    problems = err.value.problems
    assert len(problems) == 4, problems
    assert str(err.value).startswith('4 problems:')
    assert problems[0] == f'{bad}: image_id=1001 (data[0]): image_id: must be a string (PSG ids are ' \
                          'strings, e.g. "107902"), got int'
    assert problems[1].startswith(f'{bad}: image_id=1001 (data[0]): relations[0]: predicate 9')
    assert problems[2].startswith(f'{bad}: image_id=1002: segments_info[1].id: duplicate segment id 3')
    assert problems[3].startswith(f'{bad}: image_id=1002: annotations[2].bbox:')


def test_missing_and_malformed_annotation_files(tmp_path):
    with pytest.raises(DatasetError, match=r'nothere\.json: ann_file: file not found'):
        PSGDataset(str(tmp_path / 'nothere.json'), str(tmp_path))
    broken = tmp_path / 'broken.json'
    broken.write_text('{"data": [')
    with pytest.raises(DatasetError, match=r'broken\.json: ann_file: not valid JSON'):
        PSGDataset(str(broken), str(tmp_path))
    listed = tmp_path / 'list.json'
    listed.write_text('[]')
    with pytest.raises(DatasetError, match=r'list\.json: top level: must be a JSON object'):
        PSGDataset(str(listed), str(tmp_path))


def test_unknown_test_image_ids_are_a_warning(psg, caplog):
    ann_file, root = psg
    extra = edited(ann_file, _set(('test_image_ids',), ['1002', '999']))
    with caplog.at_level(logging.WARNING, logger='openpsg.datasets.annotations'):
        ds = PSGDataset(str(extra), str(root), split='test')
    assert ds.image_ids == ['1002']
    assert f"{extra}: test_image_ids: 1 id(s) name no image in data: '999'" in caplog.text


def test_panoptic_png_problems_name_file_image_and_field(psg):
    ann_file, root = psg
    png = root / 'panoptic_val2017/000000001002.png'
    absent = edited(ann_file, _set(('data', 1, 'segments_info', 1, 'id'), 7), name='absent.json')
    with pytest.raises(DatasetError) as err:
        PSGDataset(str(absent), str(root), split='test').get_gt(0)
    assert str(err.value) == (f'{png.resolve()}: image_id=1002: segments_info.id: segment id(s) [7] '
                              'do not occur in the panoptic PNG')

    Image.fromarray(np.zeros((10, 30, 3), dtype=np.uint8)).save(png)
    with pytest.raises(DatasetError, match=r'000000001002\.png: image_id=1002: pan_seg_file_name: '
                                           r'image is 10x30'):
        PSGDataset(str(ann_file), str(root), split='test').get_gt(0)
    png.unlink()
    with pytest.raises(DatasetError, match=r'000000001002\.png: image_id=1002: pan_seg_file_name: '
                                           'file not found'):
        PSGDataset(str(ann_file), str(root), split='test').get_gt_by_id('1002')
