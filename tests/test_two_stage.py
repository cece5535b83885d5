"""TwoStageSceneGraph: a tiny real Panoptic FPN as the frozen first stage on the psg_tiny
fixture, every mode through loss and predict, predictions at the original size, the segmenter
checkpoint, input checks, the SceneGraphPanopticFPN layout of earlier configs and checkpoints, and
every two-stage config."""
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from fixtures.psg_tiny.paint import write_psg_tiny
from openpsg.config import Config
from openpsg.datasets import PSGDataset
from openpsg.engine.checkpoint import CheckpointError, load_weights, save_checkpoint
from openpsg.config import ConfigError
from openpsg.models.two_stage import SceneGraphPanopticFPN, TwoStageSceneGraph, mode_name
from openpsg.registry import MODELS
from openpsg.structures import collate_samples, id_map_to_masks, nearest_to_original

CONFIGS = Path(__file__).resolve().parents[1] / 'configs'
HEADS = ('imp', 'motifs', 'vctree', 'gpsnet')
REAL_CONFIGS = sorted(f'{h}/panoptic_fpn_r{d}_fpn_1x_{m}_psg.py' for h in HEADS for d in (50, 101)
                      for m in ('predcls', 'sgcls', 'sgdet'))
SYNTH_CONFIGS = sorted(f'{h}/{h}_tiny_{m}_synth.py' for h in HEADS for m in ('predcls', 'sgdet'))
#: PanopticFCN twins of the Panoptic FPN SGDet configs: (twin, Panoptic FPN config)
FCN_TWINS = sorted(
    [(f'{h}/panoptic_fcn_r50_fpn_3x_sgdet_psg.py', f'{h}/panoptic_fpn_r50_fpn_1x_sgdet_psg.py')
     for h in HEADS]
    + [(f'{h}/{h}_panoptic_fcn_tiny_sgdet_synth.py', f'{h}/{h}_tiny_sgdet_synth.py') for h in HEADS])
NORM = dict(type='Normalize', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])
PIPELINE = [dict(type='LoadImage'), dict(type='LoadPanopticAnnotations', with_rel=True),
            dict(type='Resize', scale=(128, 96), keep_ratio=True), NORM,
            dict(type='Pad', size_divisor=32), dict(type='PackSample')]
CLASSES = ('person', 'horse', 'dog', 'grass-merged', 'sky-other-merged')
SEGMENTER = dict(type='PanopticFPN',
                 backbone=dict(depth=18, pretrained=False, frozen_stages=4), num_things=3,
                 num_stuff=2, rpn=dict(pre_nms_top_n_test=50, post_nms_top_n_test=20),
                 semantic_head=dict(inner_channels=16, num_groups=4),
                 test_cfg=dict(score_thr=0.2, max_per_img=3, stuff_area_limit=16))
HEAD = dict(num_classes=5, num_predicates=6, roi_dim=16, sampler=dict(num_rel_per_image=16))
WORDS = dict(class_names=CLASSES, embed_dim=6, pos_dim=4, glove_file=None)
HEAD_OPTIONS = {'IMPHead': dict(hidden_dim=8), 'GPSHead': WORDS,
                'MotifHead': dict(hidden_dim=8, pooling_dim=12, **WORDS),
                'VCTreeHead': dict(hidden_dim=8, pooling_dim=12, **WORDS)}


def head_cfg(head: str) -> dict:
    """A tiny relation head of type ``head`` with the options it takes."""
    return dict(type=head, **HEAD, **HEAD_OPTIONS[head])


@pytest.fixture(scope='module')
def batch(tmp_path_factory):
    """Both fixture images (original 24x32 and 20x30, resized to 96x128 and 86x128) in one batch."""
    ann_file, root = write_psg_tiny(tmp_path_factory.mktemp('psg_tiny'))
    samples = [PSGDataset(str(ann_file), str(root), split=split, pipeline=PIPELINE, seed=0)[0]
               for split in ('train', 'test')]
    return collate_samples(samples)


def build(mode: str, head: str = 'MotifHead', segmenter=None, **kwargs) -> TwoStageSceneGraph:
    torch.manual_seed(0)
    flags = {'predcls': (True, True), 'sgcls': (True, False), 'sgdet': (False, False)}[mode]
    return TwoStageSceneGraph(segmenter=segmenter or SEGMENTER, relation_head=head_cfg(head),
                              use_gt_box=flags[0], use_gt_label=flags[1], **kwargs)


# ---------------------------------------------------------------------------------------------
# training and prediction


@pytest.mark.parametrize('mode,head', [('predcls', 'MotifHead'), ('sgcls', 'GPSHead'),
                                       ('sgdet', 'VCTreeHead'), ('sgdet', 'IMPHead')])
def test_loss_trains_only_the_relation_head(mode, head, batch):
    model = build(mode, head)
    model.train()
    assert not model.segmenter.training and model.relation_head.training
    losses = model(batch, mode='loss')
    assert 'loss_relation' in losses and ('loss_object' in losses) == (mode != 'predcls')
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert all(p.grad is None for p in model.segmenter.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0
               for p in model.relation_head.parameters())


@pytest.mark.parametrize('mode', ['predcls', 'sgcls'])
def test_predictions_with_ground_truth_objects(mode, batch):
    model = build(mode).eval()
    predictions = model(batch, mode='predict')
    for pred, sample, (h, w) in zip(predictions, batch.samples, [(24, 32), (20, 30)]):
        n = len(sample.labels)
        assert pred.image_id == sample.meta.image_id
        assert pred.masks.shape == (n, h, w) and pred.pan_id_map.shape == (h, w)
        assert pred.masks.sum((1, 2)).min() > 0
        assert np.array_equal(pred.pan_id_map,
                              np.where(pred.masks.any(0), pred.masks.argmax(0), -1))
        assert pred.pairs.shape == (n * (n - 1), 2)
        assert pred.predicate_scores.shape == (n * (n - 1), 6)
        assert np.all(np.diff(pred.triplet_scores) <= 0)
        if mode == 'predcls':
            assert np.array_equal(pred.labels, sample.labels.numpy()) and np.all(pred.scores == 1)
    # image 1001 was resized by exactly 4: its boxes and rectangular masks come back unchanged
    boxes = [[2, 6, 10, 18], [12, 8, 28, 18], [0, 0, 32, 6], [0, 18, 32, 24]]
    assert np.allclose(predictions[0].boxes, boxes, atol=1e-4)
    for mask, (x1, y1, x2, y2) in zip(predictions[0].masks, boxes):
        assert mask[y1:y2, x1:x2].all() and mask.sum() == (x2 - x1) * (y2 - y1)


def test_sgdet_predictions_come_from_the_segments(batch):
    model = build('sgdet', 'GPSHead').eval()
    segments = model.segmenter.panoptic_segments(model.extract_feats(batch.imgs), batch)
    assert all(s.num_segments > 0 for s in segments)  # the test settings keep some segments
    predictions = model(batch, mode='predict')
    for pred, seg, meta in zip(predictions, segments, batch.metas):
        n = seg.num_segments
        assert np.array_equal(pred.labels, seg.labels.numpy())
        assert pred.pan_id_map.shape == tuple(meta.ori_shape)
        assert np.array_equal(pred.pan_id_map, nearest_to_original(seg.id_map, meta).numpy())
        assert np.array_equal(pred.masks, id_map_to_masks(pred.pan_id_map, n))
        expected_pairs = max(n * (n - 1), 1)
        assert pred.pairs.shape == (expected_pairs, 2)
        assert len(pred.triplet_scores) == expected_pairs
        assert np.all((pred.scores > 0) & (pred.scores <= 1))


def test_images_without_segments(batch):
    nothing = dict(SEGMENTER, test_cfg=dict(score_thr=1.0, stuff_area_limit=10 ** 6))
    model = build('sgdet', 'IMPHead', segmenter=nothing)
    losses = model(batch, mode='loss')
    assert set(losses) == {'loss_relation'} and float(losses['loss_relation'].detach()) == 0
    losses['loss_relation'].backward()  # still part of the graph
    model.eval()
    for pred, (h, w) in zip(model(batch, mode='predict'), [(24, 32), (20, 30)]):
        assert len(pred.labels) == 0 and pred.pairs.shape == (0, 2)
        assert pred.masks.shape == (0, h, w)
        assert (pred.pan_id_map == -1).all() and pred.predicate_scores.shape == (0, 6)


# ---------------------------------------------------------------------------------------------
# helpers and checks


def test_modes_and_input_errors(batch):
    assert [mode_name(*f) for f in [(True, True), (True, False), (False, False)]] == \
        ['predcls', 'sgcls', 'sgdet']
    with pytest.raises(ValueError, match='use_gt_label=True needs use_gt_box=True'):
        mode_name(False, True)
    for key, value in [('mode', 'sgdet'), ('in_channels', 64), ('featmap_strides', [4, 8])]:
        with pytest.raises(ConfigError, match=rf"\['{key}'\] are set by the two-stage model"):
            TwoStageSceneGraph(segmenter=SEGMENTER, relation_head=dict(head_cfg('IMPHead'),
                                                                       **{key: value}))
    with pytest.raises(ConfigError, match='model.segmenter: IMPHead is not a segmenter'):
        TwoStageSceneGraph(segmenter=head_cfg('IMPHead'), relation_head=head_cfg('IMPHead'))
    model = build('predcls')
    bad = collate_samples([replace(batch.samples[0], labels=torch.tensor([0, 1, 9, 3]))])
    with pytest.raises(ValueError, match=r"000000001001.jpg: image_id=1001: labels: classes \[9\]"):
        model(bad, mode='loss')


def test_segmenter_checkpoint(tmp_path):
    source = build('predcls')
    path = tmp_path / 'segmenter.pth'
    save_checkpoint({'state_dict': source.segmenter.state_dict()}, path)
    torch.manual_seed(1)
    loaded = TwoStageSceneGraph(segmenter=SEGMENTER, relation_head=head_cfg('IMPHead'),
                                segmenter_checkpoint=str(path))
    for key, value in source.segmenter.state_dict().items():
        assert torch.equal(loaded.segmenter.state_dict()[key], value)
    other = dict(SEGMENTER, semantic_head=dict(inner_channels=8, num_groups=4))
    with pytest.raises(CheckpointError, match='shape mismatch'):
        TwoStageSceneGraph(segmenter=other, relation_head=head_cfg('IMPHead'),
                           segmenter_checkpoint=str(path))
    with pytest.raises(CheckpointError, match='model.segmenter_checkpoint=None'):
        TwoStageSceneGraph(segmenter=SEGMENTER, relation_head=head_cfg('IMPHead'),
                           segmenter_checkpoint=str(tmp_path / 'absent.pth'))


def test_relation_head_pools_the_levels_the_segmenter_declares():
    model = build('predcls')
    levels = model.segmenter.feature_levels
    assert [(lv.name, lv.stride, lv.channels) for lv in levels] == \
        [('0', 4, 256), ('1', 8, 256), ('2', 16, 256), ('3', 32, 256)]
    extractor = model.relation_head.obj_extractor
    assert extractor.strides == (4, 8, 16, 32)
    assert extractor.fc[0].in_features == 256 * 7 * 7


def test_earlier_layout_builds_the_same_model_and_shares_checkpoints(tmp_path):
    """``SceneGraphPanopticFPN`` (segmenter options at the top level, ``segmenter_type``, the head
    repeating the FPN channels and strides) builds the same modules under the same weight names as
    ``TwoStageSceneGraph``, so checkpoints of either load strictly into the other."""
    segmenter = {k: v for k, v in SEGMENTER.items() if k != 'type'}
    torch.manual_seed(0)
    old = SceneGraphPanopticFPN(relation_head=dict(head_cfg('MotifHead'), in_channels=256,
                                                   featmap_strides=[4, 8, 16, 32]),
                                segmenter_type='PanopticFPN', **segmenter)
    new = build('predcls')
    assert {k: v.shape for k, v in old.state_dict().items()} == \
        {k: v.shape for k, v in new.state_dict().items()}
    path = tmp_path / 'old.pth'
    save_checkpoint({'state_dict': old.state_dict()}, path)
    load_weights(new, path, strict=True)
    assert all(torch.equal(v, old.state_dict()[k]) for k, v in new.state_dict().items())
    with pytest.raises(ConfigError, match=r"\{'in_channels': 64\} differ from what the segmenter"):
        SceneGraphPanopticFPN(relation_head=dict(head_cfg('IMPHead'), in_channels=64),
                              **segmenter)


# ---------------------------------------------------------------------------------------------
# configs


def test_config_families_are_complete():
    for name in REAL_CONFIGS + SYNTH_CONFIGS + [twin for twin, _ in FCN_TWINS]:
        assert (CONFIGS / name).is_file(), name
    assert len(REAL_CONFIGS) == 24


@pytest.mark.parametrize('twin,original', FCN_TWINS)
def test_panoptic_fcn_twins_differ_by_the_segmenter_only(twin, original):
    """Swapping the segmenter is one entry: the twin equals its Panoptic FPN config but for the
    segmenter, the checkpoint it comes from, and the work dir; it builds with the head pooling
    PanopticFCN's levels."""
    a, b = Config.fromfile(CONFIGS / original), Config.fromfile(CONFIGS / twin)
    assert {k for k in set(a) | set(b) if a.get(k) != b.get(k)} == {'model', 'work_dir'}
    assert {k for k in set(a.model) | set(b.model) if a.model.get(k) != b.model.get(k)} == \
        {'segmenter', 'segmenter_checkpoint'}
    assert b.model.segmenter.type == 'PanopticFCN'
    assert b.model.segmenter.backbone.pretrained is False
    assert b.model.segmenter_checkpoint.startswith('work_dirs/panoptic_fcn_')
    with torch.device('meta'):
        model = MODELS.build(dict(b.model, segmenter_checkpoint=None))
    assert type(model.segmenter).__name__ == 'PanopticFCN' and model.mode == 'sgdet'
    assert model.relation_head.obj_extractor.strides == (4, 8, 16, 32)


@pytest.mark.parametrize('name', REAL_CONFIGS + SYNTH_CONFIGS)
def test_config_builds(name):
    cfg = Config.fromfile(CONFIGS / name)
    head, mode = name.split('/')[0], name.split('_')[-2]
    expected_head = {'imp': 'IMPHead', 'motifs': 'MotifHead', 'vctree': 'VCTreeHead',
                     'gpsnet': 'GPSHead'}
    assert cfg.model.relation_head.type == expected_head[head]
    assert cfg.freeze_modules == ['segmenter'] and cfg.find_unused_parameters is True
    assert cfg.evaluation.metric == [mode]
    assert cfg.model.segmenter_checkpoint.startswith('work_dirs/panoptic_fpn_')
    assert cfg.model.segmenter.type == 'PanopticFPN'
    assert 'in_channels' not in cfg.model.relation_head
    stem = Path(name).stem
    expected_dir = f'work_dirs/{head}_{stem}' if name in REAL_CONFIGS else f'work_dirs/{stem}'
    assert cfg.work_dir == expected_dir
    if name in REAL_CONFIGS:
        assert cfg.optimizer.lr == (0.001 if head == 'imp' else 0.03)
        assert (cfg.optimizer.momentum, cfg.optimizer.weight_decay) == (0.9, 0.0001)
        assert cfg.optimizer_config.grad_clip.max_norm == 35
        assert cfg.lr_config.step == [7, 10] and cfg.lr_config.warmup_iters == 500
        assert cfg.runner.max_epochs == 12
        assert cfg.data.samples_per_gpu == (8 if (head, mode) == ('motifs', 'sgdet') else 16)
        assert cfg.model.segmenter.backbone.depth == (101 if '_r101_' in name else 50)
        assert cfg.model.segmenter.backbone.pretrained is False
        assert cfg.model.relation_head.rect_coord_bug is True
    with torch.device('meta'):  # the structure only, no weights
        model = MODELS.build(dict(cfg.model, segmenter_checkpoint=None))
    assert isinstance(model, TwoStageSceneGraph) and model.mode == mode
    assert type(model.relation_head).__name__ == expected_head[head]
