"""VGDataset: the box-only variant of the PSG schema (no panoptic PNGs)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from fixtures.psg_tiny.paint import write_psg_tiny

from openpsg.datasets import DatasetError, PSGDataset, VGDataset, check_dataset
from openpsg.registry import DATASETS


def box_only(ann_file: Path) -> Path:
    """The fixture without segments_info, pan_seg_file_name and bbox_mode (a VG-style file)."""
    raw = json.loads(ann_file.read_text())
    for image in raw['data']:
        del image['segments_info'], image['pan_seg_file_name']
        for ann in image['annotations']:
            del ann['bbox_mode']
    out = ann_file.with_name('vg.json')
    out.write_text(json.dumps(raw))
    return out


@pytest.fixture
def vg(tmp_path: Path) -> tuple[Path, Path]:
    ann_file, root = write_psg_tiny(tmp_path)
    for png in root.glob('panoptic_*/*.png'):
        png.unlink()
    return box_only(ann_file), root


def test_box_only_file_loads_boxes_labels_and_relations(vg):
    ann_file, root = vg
    ds = VGDataset(str(ann_file), str(root), split='test')
    assert ds.image_ids == ['1002'] and ds.num_things == 3
    info = ds.get_data_info(0)
    assert info['seg_path'] is None and info['pan_seg_file_name'] is None
    assert info['img_path'] == str((root / 'val2017/000000001002.jpg').resolve())
    assert info['segment_ids'].tolist() == [-1, -1, -1]
    assert info['labels'].tolist() == [2, 0, 3]
    assert info['boxes'].tolist() == [[3, 5, 12, 15], [15, 2, 27, 18], [0, 18, 30, 20]]
    assert info['iscrowd'].tolist() == [False, False, False]
    # labels below num_things (3) are things
    assert info['is_thing'].tolist() == [True, True, False]
    assert info['rels'].tolist() == [[1, 0, 5], [1, 0, 2], [0, 2, 4]]


def test_ground_truth_has_no_masks(vg):
    ann_file, root = vg
    gt = VGDataset(str(ann_file), str(root), split='test').get_gt_by_id('1002')
    assert gt.id_map is None
    assert gt.rels.tolist() == [[1, 0, 5], [1, 0, 2], [0, 2, 4]]
    with pytest.raises(ValueError, match='no masks'):
        gt.masks()


def test_training_rules_are_those_of_psg(vg):
    ann_file, root = vg
    ds = VGDataset(str(ann_file), str(root), split='train', seed=1)
    seen = set()
    for _ in range(40):
        rels = ds.get_data_info(0)['rels']
        assert rels[:, :2].tolist() == [[0, 3], [0, 1], [1, 3]]
        seen.add(int(rels[1, 2]))
    assert seen == {1, 2}
    assert ds.triplets() == {(0, 3, 4), (0, 1, 2), (0, 1, 1), (1, 3, 3)}


def test_psg_needs_what_vg_does_not(vg):
    ann_file, root = vg
    with pytest.raises(DatasetError) as err:
        PSGDataset(str(ann_file), str(root))
    text = '\n'.join(err.value.problems)
    assert f'{ann_file}: image_id=1001: segments_info: missing' in text
    assert f'{ann_file}: image_id=1002: pan_seg_file_name: must be a non-empty' in text
    assert f'{ann_file}: image_id=1001: annotations[0].bbox_mode: must be 0' in text


def test_vg_validation_still_reports_bad_relations_and_boxes(vg):
    ann_file, root = vg
    raw = json.loads(ann_file.read_text())
    raw['data'][0]['relations'].append([0, 4, 1])
    raw['data'][1]['annotations'][0]['bbox'] = [12, 5, 3, 15]
    bad = ann_file.with_name('bad_vg.json')
    bad.write_text(json.dumps(raw))
    with pytest.raises(DatasetError) as err:
        VGDataset(str(bad), str(root))
    assert err.value.problems == [
        f'{bad}: image_id=1001: relations[5]: object index 4 is outside 0..3 (the image has 4 segments)',
        f'{bad}: image_id=1002: annotations[0].bbox: [12, 5, 3, 15] has x2 < x1 or y2 < y1 '
        '(boxes are xyxy, not xywh)',
    ]


def test_registered_and_checked_without_pngs(vg):
    ann_file, root = vg
    ds = DATASETS.build(dict(type='VGDataset', ann_file=str(ann_file), data_root=str(root)))
    assert isinstance(ds, VGDataset) and len(ds) == 1
    report = check_dataset(str(ann_file), str(root), with_masks=False, progress=False)
    assert report.problems == []
    (root / 'train2017/000000001001.jpg').unlink()
    report = check_dataset(str(ann_file), str(root), with_masks=False, progress=False)
    assert report.problems == [f'{root / "train2017/000000001001.jpg"}: image_id=1001: file_name: '
                               'file not found']
