"""VG150Dataset: the standard VG-150 release (h5 + dicts + image_data) read as box scene graphs.

Expected values are computed by hand from the fixture's table (tests/fixtures/vg150_tiny.py):
boxes are (cx, cy, w, h) at a longer side of 1024, so a 64-px-wide image scales them by 1/16.
"""
from __future__ import annotations

import json
import logging

import numpy as np
import pytest

pytest.importorskip('h5py')

from fixtures.vg150_tiny import IMAGES, h5_columns, write_vg150_tiny  # noqa: E402

from openpsg.datasets import DatasetError, VG150Dataset  # noqa: E402
from openpsg.evaluation import evaluate  # noqa: E402
from openpsg.registry import DATASETS  # noqa: E402
from openpsg.structures import Prediction  # noqa: E402

PIPELINE = [dict(type='LoadImage'), dict(type='Resize', scale=(128, 96), keep_ratio=True),
            dict(type='Normalize', mean=[0, 0, 0], std=[1, 1, 1]), dict(type='PackSample')]


@pytest.fixture
def release(tmp_path):
    return write_vg150_tiny(tmp_path / 'vg')


def dataset(files, split, **kwargs):
    return VG150Dataset(**files, split=split, num_val_images=kwargs.pop('num_val_images', 1),
                        **kwargs)


def test_vocabulary_is_zero_based_and_all_things(release):
    ds = dataset(release, 'train')
    assert ds.classes == ('man', 'horse', 'shirt') and ds.predicates == ('on', 'wearing')
    assert ds.num_things == 3


def test_splits_follow_the_sgb_rule(release, caplog):
    # split 0 with boxes and relations: images 10, 12 -> the first is val; image 11 has no
    # relation, 14 no box; test: 13 and 15, which is dropped for its zero-width box
    assert dataset(release, 'val').image_ids == ['10']
    assert dataset(release, 'train').image_ids == ['12']
    with caplog.at_level(logging.WARNING):
        assert dataset(release, 'test').image_ids == ['13']
    assert 'VG-SGG-with-attri.h5: 1 test image(s) dropped for a box of zero width' in caplog.text
    assert caplog.text.rstrip().endswith('15')
    assert dataset(release, 'train', drop_no_rels=False).image_ids == ['11', '12']
    assert dataset(release, 'val', num_val_images=5000).image_ids == ['10', '12']
    assert dataset(release, 'train', num_val_images=5000).image_ids == []
    with pytest.raises(ValueError, match="split must be one of \\('train', 'val', 'test'\\)"):
        dataset(release, 'minival')


def test_boxes_are_scaled_to_the_image_and_clipped(release):
    info = dataset(release, 'val').get_data_info(0)
    assert info['width'] == 64 and info['height'] == 48
    # (512, 384, 256, 128) -> xyxy (384, 320, 640, 448) / 16; the second box's x2 = 65.6 > 64
    assert info['boxes'].tolist() == [[24, 20, 40, 28], [59.375, 4.6875, 64, 7.8125]]
    assert info['labels'].tolist() == [0, 1]
    assert info['rels'].tolist() == [[0, 1, 1]]
    assert info['img_path'].endswith('VG_100K/10.jpg') and info['seg_path'] is None
    # the portrait image 11 (48 x 64) scales by its height: 64 / 1024
    info = dataset(release, 'train', drop_no_rels=False).get_data_info(0)
    assert info['boxes'].tolist() == [[12.5, 18.75, 25, 43.75]]
    assert info['rels'].shape == (0, 3)


def test_relations_ground_truth_and_training_draws(release):
    gt = dataset(release, 'test').get_gt_by_id('13')
    assert gt.labels.tolist() == [0, 1] and gt.id_map is None
    assert gt.boxes.tolist() == [[8, 8, 24, 24], [6, 6, 10, 10]]
    assert gt.rels.tolist() == [[1, 0, 0]]
    train = dataset(release, 'train', seed=0)
    gt = train.get_gt(0)
    assert gt.rels.tolist() == [[0, 1, 0], [0, 1, 1]]  # exact repeat removed
    assert gt.rels_raw.tolist() == [[0, 1, 0], [0, 1, 1], [0, 1, 0]]
    drawn = {int(train.get_data_info(0)['rels'][0, 2]) for _ in range(30)}
    assert drawn == {0, 1}  # one predicate per pair, re-drawn (SGB filter_duplicate_rels)
    multi = dataset(release, 'train', rel_mode='dedup').get_data_info(0)['rels']
    assert multi.tolist() == [[0, 1, 0], [0, 1, 1]]
    counts = train.triplet_counts()
    assert counts.shape == (3, 3, 2) and counts.sum() == 3
    assert counts[0, 2, 0] == 2 and counts[0, 2, 1] == 1


def test_pipeline_and_box_evaluation(release):
    ds = DATASETS.build(dict(type='VG150Dataset', **release, split='test', num_val_images=1,
                             pipeline=PIPELINE))
    sample = ds[0]
    assert tuple(sample.img.shape) == (3, 96, 96) and sample.masks.shape == (2, 0, 0)
    assert sample.boxes.tolist() == [[24, 24, 72, 72], [18, 18, 30, 30]]  # x3
    gt = ds.get_gt(0)
    perfect = Prediction(image_id='13', labels=gt.labels, scores=np.ones(2, np.float32),
                         boxes=gt.boxes, masks=None, pairs=np.array([[1, 0]]),
                         predicate_scores=np.array([[0.9, 0.1]], np.float32),
                         triplet_scores=np.array([0.9], np.float32))
    wrong = Prediction(**{**perfect.__dict__, 'boxes': gt.boxes + 5})
    for pred, recall in ((perfect, 100.0), (wrong, 0.0)):
        scores = evaluate([pred], ds, metrics=('sgdet',))  # match='box' from the dataset
        assert scores['sgdet/openpsg/R@20'] == recall and scores['sgdet/fair/R@20'] == recall


def corrupt(release, tmp_path, **changes):
    columns = h5_columns()
    for key, (index, value) in changes.items():
        columns[key][index] = value
    return write_vg150_tiny(tmp_path / 'bad', columns=columns)


@pytest.mark.parametrize('change, field, message', [
    (dict(labels=((3, 0), 0)), 'labels', 'must be in 1..3 (0 is the background)'),
    (dict(labels=((4, 0), 4)), 'labels', 'must be in 1..3'),
    (dict(predicates=((1, 0), 3)), 'predicates', 'must be in 1..2'),
    (dict(relationships=((1, 1), 0)), 'relationships', "must be rows of the image's own boxes"),
    (dict(boxes_1024=((3, 2), -5)), 'boxes_1024', 'width, height >= 0'),
])
def test_malformed_h5_names_file_image_and_field(release, tmp_path, change, field, message):
    files = corrupt(release, tmp_path, **change)
    with pytest.raises(DatasetError) as err:
        dataset(files, 'train')  # every bad row above belongs to image 12
    text = str(err.value)
    assert text.startswith(f"{files['roidb_file']}: image_id=12: {field}: ") and message in text


def test_malformed_files_are_reported(release, tmp_path):
    columns = h5_columns()
    del columns['boxes_1024']
    files = write_vg150_tiny(tmp_path / 'no_boxes', columns=columns)
    with pytest.raises(DatasetError, match=f"{files['roidb_file']}: boxes_1024: missing dataset"):
        dataset(files, 'train')

    files = write_vg150_tiny(tmp_path / 'few_images', images=IMAGES[:-1], columns=h5_columns())
    with pytest.raises(DatasetError, match=r'image_data.json: top level: 5 images .* but '
                                           r'.*VG-SGG-with-attri.h5 describes 6'):
        dataset(files, 'train')

    files = write_vg150_tiny(tmp_path / 'dicts', dicts={'idx_to_label': {'1': 'man'}})
    with pytest.raises(DatasetError, match=f"{files['dict_file']}: idx_to_predicate: missing"):
        dataset(files, 'train')

    entries = json.loads(open(release['image_file']).read())
    entries[2]['width'] = 0
    open(release['image_file'], 'w').write(json.dumps(entries))
    with pytest.raises(DatasetError, match=f"{release['image_file']}: image_id=11: width: "
                                           'must be a positive integer, got 0'):
        dataset(release, 'train')

    with pytest.raises(DatasetError, match='missing.h5: roidb_file: file not found'):
        dataset({**release, 'roidb_file': str(tmp_path / 'missing.h5')}, 'train')
