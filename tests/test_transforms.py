"""Transforms on a hand-made 8x12 sample whose expected outputs are worked out by hand.

Layout (rows y, columns x) of the panoptic PNG:
  segment 0, id 10, person (0), thing: y 1..4, x 2..4           box [2, 1, 5, 5]
  segment 1, id 20, horse (17), thing: y 2..5, x 7..9           box [7, 2, 10, 6]
  segment 2, id 30, grass-merged (125), stuff: y 6..7 all x, plus x 11 for y 0..5  box [0, 0, 12, 8]
  everything else void (id 0). Relations: person riding horse, person/horse standing on grass.
Image pixel (y, x) = (20 y, 20 x, 100), so every pixel is unique and a crop reveals its offset.
"""
from __future__ import annotations

import runpy
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from openpsg.apis import build_inference_pipeline
from openpsg.config import Config
from openpsg.datasets.errors import DatasetError
from openpsg.datasets.synthetic import generate_synthetic_psg
from openpsg.datasets.transforms import (Compose, LoadImage, LoadPanopticAnnotations, Normalize,
                                         PackSample, Pad, PipelineError, RandomChoice, RandomFlip,
                                         RelRandomCrop, Resize, SegRescale, crop_objects)
from openpsg.datasets.transforms.geometric import rescale_size
from openpsg.registry import DATASETS, TRANSFORMS
from openpsg.structures import Sample, id2rgb

H, W = 8, 12
CONFIGS = Path(__file__).resolve().parents[1] / 'configs' / '_base_' / 'datasets'


def seg_masks() -> np.ndarray:
    masks = np.zeros((3, H, W), dtype=bool)
    masks[0, 1:5, 2:5] = True
    masks[1, 2:6, 7:10] = True
    masks[2, 6:8, :] = True
    masks[2, 0:6, 11] = True
    return masks


def write_sample(root: Path, rels=((0, 1, 46), (0, 2, 14), (1, 2, 14))) -> dict:
    ys, xs = np.mgrid[:H, :W]
    img = np.stack([20 * ys, 20 * xs, np.full_like(ys, 100)], -1).astype(np.uint8)
    pan = np.zeros((H, W), dtype=np.int64)
    for seg_id, mask in zip((10, 20, 30), seg_masks()):
        pan[mask] = seg_id
    Image.fromarray(img).save(root / 'img.png')
    Image.fromarray(id2rgb(pan)).save(root / 'pan.png')
    return {
        'image_id': '7', 'img_path': str(root / 'img.png'), 'seg_path': str(root / 'pan.png'),
        'file_name': 'img.png', 'pan_seg_file_name': 'pan.png', 'height': H, 'width': W,
        'segment_ids': np.array([10, 20, 30], dtype=np.int64),
        'labels': np.array([0, 17, 125], dtype=np.int64),
        'boxes': np.array([[2, 1, 5, 5], [7, 2, 10, 6], [0, 0, 12, 8]], dtype=np.float32),
        'iscrowd': np.zeros(3, dtype=bool), 'is_thing': np.array([True, True, False]),
        'rels': np.array(rels, dtype=np.int64).reshape(-1, 3),
    }


@pytest.fixture
def raw(tmp_path: Path) -> dict:
    return write_sample(tmp_path)


@pytest.fixture
def loaded(raw: dict) -> dict:
    return LoadPanopticAnnotations(with_seg=True)(LoadImage()(raw))


def with_rng(results: dict, seed: int) -> dict:
    return {**results, 'rng': np.random.default_rng(seed)}


# ----------------------------------------------------------------------------------- loading
def test_load_image_and_masks(loaded: dict) -> None:
    assert loaded['img'].shape == (H, W, 3) and loaded['img'].dtype == np.uint8
    assert tuple(loaded['img'][3, 5]) == (60, 100, 100)
    assert loaded['ori_shape'] == (H, W) and loaded['img_shape'] == (H, W)
    assert loaded['masks'].dtype == bool
    np.testing.assert_array_equal(loaded['masks'], seg_masks())
    seg = loaded['gt_semantic_seg']
    assert seg.dtype == np.uint8 and seg.shape == (H, W)
    assert (seg[2, 3], seg[3, 8], seg[7, 0], seg[0, 11], seg[0, 0]) == (0, 17, 125, 125, 255)
    assert (seg == 255).sum() == H * W - seg_masks().sum()


def test_load_checks_size_and_missing_png(raw: dict) -> None:
    with pytest.raises(DatasetError, match=r"img.png: image_id=7: file_name: image is 8x12"):
        LoadImage()({**raw, 'height': 9})
    with pytest.raises(DatasetError, match=r"image_id=7: pan_seg_file_name: .*box-only"):
        LoadPanopticAnnotations()({**raw, 'seg_path': None})
    with pytest.raises(DatasetError, match=r"pan.png: image_id=7: segments_info.id: .*\[40\]"):
        LoadPanopticAnnotations()({**raw, 'segment_ids': np.array([10, 20, 40])})


def test_load_without_relations(raw: dict) -> None:
    out = LoadPanopticAnnotations(with_rel=False)(raw)
    assert out['rels'].shape == (0, 3)
    assert 'gt_semantic_seg' not in out


def test_missing_field_names_transform_and_image(raw: dict) -> None:
    with pytest.raises(PipelineError, match=r"Resize: image_id=7: field 'img' is missing"):
        Resize(scale=(20, 10))(raw)
    with pytest.raises(PipelineError, match=r"RandomFlip: .*'rng'"):
        RandomFlip(0.5)(LoadImage()(raw))


# ----------------------------------------------------------------------------------- resize
def test_resize_integer_factor(loaded: dict) -> None:
    # factor = min(24 / 12, 16 / 8) = 2
    out = Resize(scale=(24, 16))(loaded)
    assert out['img'].shape == (16, 24, 3) and out['img_shape'] == (16, 24)
    assert out['scale_factor'] == (2.0, 2.0)
    np.testing.assert_allclose(out['boxes'], [[4, 2, 10, 10], [14, 4, 20, 12], [0, 0, 24, 16]])
    np.testing.assert_array_equal(out['masks'], seg_masks().repeat(2, 1).repeat(2, 2))
    assert out['gt_semantic_seg'].shape == (16, 24) and out['gt_semantic_seg'][4, 6] == 0


def test_resize_per_axis_rounding(loaded: dict) -> None:
    # factor = min(10 / 12, 10 / 8) = 5/6 -> w = int(10 + .5) = 10, h = int(6.67 + .5) = 7
    out = Resize(scale=(10, 10))(loaded)
    assert out['img'].shape == (7, 10, 3) and out['masks'].shape == (3, 7, 10)
    assert out['scale_factor'] == pytest.approx((10 / 12, 7 / 8))
    np.testing.assert_allclose(out['boxes'][2], [0, 0, 10, 7])
    np.testing.assert_allclose(out['boxes'][0], [2 * 10 / 12, 7 / 8, 5 * 10 / 12, 5 * 7 / 8],
                               rtol=1e-6)


def test_resize_shrink_scale_order_and_clip(loaded: dict) -> None:
    # (6, 20) is read as long 20, short 6: factor = min(20 / 12, 6 / 8) = 0.75 -> 6 x 9
    loaded['boxes'][2] = [0, 0, 12.5, 8]          # an annotation box slightly past the image
    out = Resize(scale=(6, 20))(loaded)
    assert out['img'].shape == (6, 9, 3) and out['scale_factor'] == (0.75, 0.75)
    np.testing.assert_allclose(out['boxes'][:2], [[1.5, 0.75, 3.75, 3.75], [5.25, 1.5, 7.5, 4.5]])
    np.testing.assert_allclose(out['boxes'][2], [0, 0, 9, 6])   # 12.5 * .75 = 9.375 clipped to 9


@pytest.mark.parametrize('dataset_config', sorted(p.name for p in CONFIGS.glob('*.py')))
def test_test_pipelines_bound_the_model_input_for_any_aspect_ratio(dataset_config: str) -> None:
    """Keep-ratio Resize fits the long side to max(scale) and the short side to min(scale),
    whichever binds first, and never rounds a side to 0: the model input is bounded however
    thin the image."""
    cfg = Config.fromfile(str(CONFIGS / dataset_config))
    pipeline = build_inference_pipeline(cfg)
    resize = next(t for t in pipeline.transforms if isinstance(t, Resize))
    long_side, short_side = max(resize.scales[0]), min(resize.scales[0])
    for h, w in [(1, 10000), (10000, 1), (2, 4000), (4000, 2), (3, 3)]:
        img = np.full((h, w, 3), 128, dtype=np.uint8)
        sample = pipeline({'image_id': 'x', 'img': img, 'height': h, 'width': w,
                           'labels': np.zeros(0, np.int64), 'boxes': np.zeros((0, 4), np.float32),
                           'rels': np.zeros((0, 3), np.int64), 'rng': np.random.default_rng(0)})
        out_h, out_w = sample.meta.img_shape
        assert 1 <= min(out_h, out_w) <= short_side and max(out_h, out_w) <= long_side, (h, w)
        assert max(sample.img.shape[1:]) < long_side + 32  # padding adds less than a divisor


def test_resize_extreme_aspect_ratios_by_hand() -> None:
    # (1333, 800): factor = min(1333 / 10000, 800 / 1) = 0.1333 -> h = max(1, int(0.63)) = 1
    assert rescale_size((1, 10000), (1333, 800), keep_ratio=True) == (1, 1333)
    assert rescale_size((10000, 1), (1333, 800), keep_ratio=True) == (1333, 1)
    # factor = min(1333 / 4000, 800 / 2) = 0.33325 -> h = int(0.67 + .5) = 1, w = 1333
    assert rescale_size((2, 4000), (1333, 800), keep_ratio=True) == (1, 1333)
    # factor = min(1333 / 3, 800 / 3) = 266.7 -> both sides 800
    assert rescale_size((3, 3), (1333, 800), keep_ratio=True) == (800, 800)


def test_resize_exact_and_accumulated_factor(loaded: dict) -> None:
    out = Resize(scale=(6, 4), keep_ratio=False)(loaded)      # exact (w, h)
    assert out['img'].shape == (4, 6, 3) and out['scale_factor'] == (0.5, 0.5)
    out = Resize(scale=(24, 16), keep_ratio=False)(out)
    assert out['img'].shape == (16, 24, 3) and out['scale_factor'] == (2.0, 2.0)


def test_resize_multiscale_choice(loaded: dict) -> None:
    resize = Resize(scales=[(24, 16), (6, 4)])
    shapes = {seed: Resize(scales=[(24, 16), (6, 4)])(with_rng(loaded, seed))['img'].shape[:2]
              for seed in range(12)}
    assert set(shapes.values()) == {(16, 24), (4, 6)}
    for seed, shape in shapes.items():
        assert resize(with_rng(loaded, seed))['img'].shape[:2] == shape
    with pytest.raises(ValueError, match='exactly one'):
        Resize(scale=(1, 2), scales=[(1, 2)])


# ----------------------------------------------------------------------------------- flip
def test_flip_boxes_masks_seg(loaded: dict) -> None:
    seg = loaded['gt_semantic_seg'].copy()
    out = RandomFlip(prob=1.0)(with_rng(loaded, 0))
    assert out['flip'] is True
    np.testing.assert_allclose(out['boxes'], [[7, 1, 10, 5], [2, 2, 5, 6], [0, 0, 12, 8]])
    assert out['masks'][0, 1:5, 7:10].all() and out['masks'][0].sum() == 12
    assert out['masks'][2, 0:6, 0].all() and not out['masks'][2, 0:6, 11].any()
    np.testing.assert_array_equal(out['gt_semantic_seg'], seg[:, ::-1])
    assert tuple(out['img'][0, 0]) == (0, 220, 100)


def test_flip_prob_zero_is_identity(loaded: dict) -> None:
    boxes = loaded['boxes'].copy()
    out = RandomFlip(prob=0.0)(with_rng(loaded, 0))
    assert out['flip'] is False
    np.testing.assert_array_equal(out['boxes'], boxes)
    np.testing.assert_array_equal(out['masks'], seg_masks())


# ----------------------------------------------------------------------------------- crop
def test_crop_removes_object_leaving_window(loaded: dict) -> None:
    out = crop_objects(loaded, (0, 0, 8, 6))      # left half: the horse leaves
    assert out['img'].shape == (8, 6, 3) and out['img_shape'] == (8, 6)
    np.testing.assert_array_equal(out['labels'], [0, 125])
    np.testing.assert_array_equal(out['segment_ids'], [10, 30])
    np.testing.assert_array_equal(out['is_thing'], [True, False])
    np.testing.assert_allclose(out['boxes'], [[2, 1, 5, 5], [0, 0, 6, 8]])
    np.testing.assert_array_equal(out['rels'], [[0, 1, 14]])
    np.testing.assert_array_equal(out['masks'], seg_masks()[[0, 2], :, :6])
    assert out['gt_semantic_seg'].shape == (8, 6)
    assert loaded['labels'].tolist() == [0, 17, 125]      # the input is left untouched


def test_crop_shifts_boxes_and_reindexes(loaded: dict) -> None:
    out = crop_objects(loaded, (0, 6, 8, 12))     # right half: the person leaves
    np.testing.assert_array_equal(out['labels'], [17, 125])
    np.testing.assert_allclose(out['boxes'], [[1, 2, 4, 6], [0, 0, 6, 8]])
    np.testing.assert_array_equal(out['rels'], [[0, 1, 14]])
    assert tuple(out['img'][0, 0]) == (0, 120, 100)


def test_crop_drops_object_whose_mask_leaves(loaded: dict) -> None:
    # window y 0..3, x 0..5: grass's clipped box [0, 0, 6, 4] has area but no grass pixel in it
    out = crop_objects(loaded, (0, 0, 4, 6))
    np.testing.assert_array_equal(out['labels'], [0])
    np.testing.assert_allclose(out['boxes'], [[2, 1, 5, 4]])
    assert out['rels'].shape == (0, 3)


def test_rel_random_crop_matches_its_window(loaded: dict) -> None:
    crop = RelRandomCrop(crop_size=(4, 10), crop_type='absolute_range', max_tries=20)
    sizes = set()
    for seed in range(10):
        out = crop(with_rng(loaded, seed))
        assert out is not None and len(out['rels']) >= 1
        h, w = out['img'].shape[:2]
        assert 4 <= h <= 8 and 4 <= w <= 10
        y1, x1 = int(out['img'][0, 0, 0]) // 20, int(out['img'][0, 0, 1]) // 20
        expected = crop_objects(loaded, (y1, x1, y1 + h, x1 + w))
        for key in ('labels', 'boxes', 'masks', 'rels', 'segment_ids'):
            np.testing.assert_array_equal(out[key], expected[key])
        sizes.add((h, w))
    assert len(sizes) > 1


def test_rel_random_crop_rejects_when_every_crop_loses_relations(tmp_path: Path) -> None:
    # only relation: person (x 2..4) - horse (x 7..9); no 3-pixel-wide window holds both
    sample = LoadPanopticAnnotations()(LoadImage()(write_sample(tmp_path, rels=[(0, 1, 46)])))
    crop = RelRandomCrop(crop_size=(8, 3), crop_type='absolute', max_tries=5)
    for seed in range(5):
        assert crop(with_rng(sample, seed)) is None
    assert Compose([crop, PackSample()])(with_rng(sample, 0)) is None


# ----------------------------------------------------------------------------------- pad etc.
def test_pad_shapes_and_values(loaded: dict) -> None:
    out = Pad(size_divisor=5)(loaded)
    assert out['img'].shape == (10, 15, 3) and out['pad_shape'] == (10, 15)
    assert out['img_shape'] == (H, W)
    assert (out['img'][8:] == 0).all() and (out['img'][:, 12:] == 0).all()
    assert out['masks'].shape == (3, 10, 15) and out['masks'].sum() == seg_masks().sum()
    assert out['gt_semantic_seg'].shape == (10, 15) and (out['gt_semantic_seg'][8:] == 255).all()
    assert Pad(size_divisor=4)(out)['pad_shape'] == (12, 16)


def test_normalize_values(loaded: dict) -> None:
    out = Normalize(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])(loaded)
    assert out['img'].dtype == np.float32
    # pixel (y=1, x=2) = (20, 40, 100)
    np.testing.assert_allclose(out['img'][1, 2], [(20 - 123.675) / 58.395, (40 - 116.28) / 57.12,
                                                  (100 - 103.53) / 57.375], rtol=1e-5)


def test_seg_rescale(loaded: dict) -> None:
    seg = loaded['gt_semantic_seg'].copy()
    out = SegRescale(scale_factor=0.5)(loaded)
    # output pixel i samples input floor((i + .5) * 2) = 2 i + 1
    np.testing.assert_array_equal(out['gt_semantic_seg'], seg[1::2, 1::2])


def test_pack_sample_fields(loaded: dict) -> None:
    results = Pad(size_divisor=16)(Normalize(mean=[0, 0, 0], std=[1, 1, 1])(
        Resize(scale=(24, 16))(loaded)))
    sample = PackSample()(results)
    assert isinstance(sample, Sample)
    assert sample.img.shape == (3, 16, 32) and sample.img.dtype == torch.float32
    assert sample.img[:, 0, 0].tolist() == [0.0, 0.0, 100.0]
    assert sample.masks.shape == (3, 16, 32) and sample.masks.dtype == torch.bool
    assert sample.labels.dtype == torch.int64 and sample.labels.tolist() == [0, 17, 125]
    assert sample.boxes.dtype == torch.float32 and sample.boxes.shape == (3, 4)
    assert sample.rels.dtype == torch.int64 and sample.rels.tolist() == [[0, 1, 46], [0, 2, 14],
                                                                          [1, 2, 14]]
    meta = sample.meta
    assert (meta.image_id, meta.file_name, meta.pan_seg_file_name) == ('7', 'img.png', 'pan.png')
    assert (meta.ori_shape, meta.img_shape, meta.pad_shape) == ((8, 12), (16, 24), (16, 32))
    assert meta.scale_factor == (2.0, 2.0) and meta.flip is False
    assert sample.sem_seg.dtype == torch.int64 and sample.sem_seg.shape == (16, 32)
    assert (sample.sem_seg[:, 24:] == 255).all()


def test_pack_sample_without_masks_and_bad_lengths(raw: dict) -> None:
    sample = PackSample()(LoadImage()(raw))
    assert sample.masks.shape == (3, 0, 0) and sample.sem_seg is None
    assert sample.meta.pad_shape == (H, W) and sample.meta.scale_factor == (1.0, 1.0)
    with pytest.raises(PipelineError, match=r"image_id=7: field 'boxes' has 2 rows but there are"):
        PackSample()({**LoadImage()(raw), 'boxes': np.zeros((2, 4), np.float32)})


# ----------------------------------------------------------------------------------- composition
def test_compose_builds_from_configs_and_names_unknown_types(raw: dict) -> None:
    pipeline = Compose([dict(type='LoadImage'), dict(type='Resize', scale=(24, 16)),
                        dict(type='PackSample')])
    assert pipeline(dict(raw)).img.shape == (3, 16, 24)
    with pytest.raises(KeyError, match="'Resise' is not in the transform registry.*Resize"):
        Compose([dict(type='Resise', scale=(1, 1))])


def test_random_choice_picks_each_branch(loaded: dict) -> None:
    choice = TRANSFORMS.build(dict(type='RandomChoice', transforms=[
        [dict(type='Resize', scale=(24, 16))],
        [dict(type='Resize', scale=(6, 4)), dict(type='Pad', size_divisor=1)]]))
    assert isinstance(choice, RandomChoice)
    outs = [choice(with_rng(loaded, seed)) for seed in range(12)]
    kinds = {(o['img'].shape[:2], 'pad_shape' in o) for o in outs}
    assert kinds == {((16, 24), False), ((4, 6), True)}


def pipeline_from(config: str, name: str) -> Compose:
    return Compose(runpy.run_path(str(CONFIGS / config))[name])


def big_sample(root: Path, h: int = 96, w: int = 128) -> dict:
    """A larger scene for the whole pipelines: sky, grass, a person on the grass, a dog beside."""
    rng = np.random.default_rng(5)
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    pan = np.zeros((h, w), dtype=np.int64)
    pan[:40] = 1
    pan[40:] = 2
    pan[20:80, 20:50] = 3
    pan[60:90, 80:120] = 4
    Image.fromarray(img).save(root / 'big.jpg', quality=95)
    Image.fromarray(id2rgb(pan)).save(root / 'big.png')
    return {
        'image_id': '99', 'img_path': str(root / 'big.jpg'), 'seg_path': str(root / 'big.png'),
        'file_name': 'big.jpg', 'pan_seg_file_name': 'big.png', 'height': h, 'width': w,
        'segment_ids': np.array([1, 2, 3, 4]), 'labels': np.array([119, 125, 0, 16]),
        'boxes': np.array([[0, 0, w, 40], [0, 40, w, h], [20, 20, 50, 80], [80, 60, 120, 90]],
                          dtype=np.float32),
        'iscrowd': np.zeros(4, bool), 'is_thing': np.array([False, False, True, True]),
        'rels': np.array([[2, 1, 14], [3, 1, 14], [3, 2, 2]]),
    }


def check_sample(sample: Sample, divisor: int) -> None:
    n = len(sample.labels)
    h, w = sample.meta.img_shape
    ph, pw = sample.meta.pad_shape
    assert sample.img.shape == (3, ph, pw) and ph % divisor == 0 and pw % divisor == 0
    assert ph - divisor < h <= ph and pw - divisor < w <= pw
    assert sample.masks.shape == (n, ph, pw) and not sample.masks[:, h:].any()
    assert sample.boxes.shape == (n, 4) and (sample.boxes[:, 2:] <= torch.tensor([w, h])).all()
    assert (sample.boxes[:, 2:] > sample.boxes[:, :2]).all()
    assert sample.rels.shape[1] == 3 and len(sample.rels) >= 1
    assert int(sample.rels[:, :2].max()) < n


def test_two_stage_pipeline(tmp_path: Path) -> None:
    raw = big_sample(tmp_path)
    pipeline = pipeline_from('psg.py', 'train_pipeline')
    sample = pipeline(with_rng(raw, 0))
    # factor = min(1333 / 128, 800 / 96) = 8.333 -> 800 x 1067, padded to 800 x 1088
    assert sample.meta.img_shape == (800, 1067) and sample.meta.pad_shape == (800, 1088)
    check_sample(sample, 32)
    assert sample.labels.tolist() == [119, 125, 0, 16]
    assert sample.sem_seg.shape == (200, 272)  # the padded 800 x 1088 map at 1/4
    test = pipeline_from('psg.py', 'test_pipeline')(with_rng(big_sample(tmp_path), 0))
    assert test.meta.flip is False and test.masks.shape == (4, 800, 1088)


def test_one_stage_pipeline_and_determinism(tmp_path: Path) -> None:
    raw = big_sample(tmp_path)
    pipeline = pipeline_from('psg_synth_onestage.py', 'train_pipeline')
    shapes = set()
    for seed in range(6):
        a = pipeline(with_rng(big_sample(tmp_path), seed))
        b = pipeline(with_rng(big_sample(tmp_path), seed))
        assert (a is None) == (b is None)
        if a is None:
            continue
        check_sample(a, 1)
        assert torch.equal(a.img, b.img) and torch.equal(a.masks, b.masks)
        assert torch.equal(a.rels, b.rels) and a.meta == b.meta
        shapes.add(a.meta.img_shape)
    # the plain multi-scale branch gives short side 128/144/160 -> (128, 171), (144, 192),
    # (160, 213); the crop branch gives other shapes; both branches must have been taken
    plain = {(128, 171), (144, 192), (160, 213)}
    assert shapes & plain and shapes - plain
    test = pipeline_from('psg_onestage.py', 'test_pipeline')(raw)
    assert test.meta.img_shape == (800, 1067) and test.masks.shape == (4, 0, 0)


@pytest.mark.parametrize('config, divisor', [('psg_synth.py', 32), ('psg_synth_onestage.py', 1)])
def test_synthetic_configs_build_datasets_of_consistent_samples(tmp_path: Path, config: str,
                                                                divisor: int) -> None:
    generate_synthetic_psg(tmp_path, num_train=4, num_test=2, seed=3, workers=1)
    cfg = Config.fromfile(CONFIGS / config)
    for split in ('train', 'test'):
        cfg.merge_from_dict({f'data.{split}.data_root': str(tmp_path),
                             f'data.{split}.ann_file': str(tmp_path / 'psg.json')})
        dataset = DATASETS.build(cfg.data[split])
        for idx in range(len(dataset)):
            sample = dataset[idx]
            assert isinstance(sample, Sample)
            if split == 'train' or config == 'psg_synth.py':
                check_sample(sample, divisor)
            else:
                # one-stage test pipeline loads no masks; Resize (267, 160) on 128 x 128, 96 x 128
                # or 128 x 96 images: short side 160 in every case (long side 160 or 213)
                assert sample.masks.shape[1:] == (0, 0)
                assert sorted(sample.meta.img_shape) in ([160, 160], [160, 213])
