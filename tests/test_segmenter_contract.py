"""The segmenter contract (``openpsg/models/segmenters/base.py``), checked on every registered
segmenter built from its tiny synthetic config: declared feature levels and their shapes, training
losses, the panoptic output (sizes, dtypes, value ranges, segment order, no gradient, train or
eval mode alike), panoptic-only predictions, and service as the first stage of a two-stage model
in SGDet. A new segmenter registers itself in ``TINY_CONFIGS`` to be checked."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from openpsg.config import Config
from openpsg.models.segmenters import Segmenter, SegmentResult
from openpsg.models.segmenters.base import check_feature_levels
from openpsg.models.two_stage import TwoStageSceneGraph
from openpsg.registry import DATASETS, MODELS
from openpsg.structures import NUM_CLASSES, NUM_THING_CLASSES, collate_samples
from test_engine_support import make_synth_psg

CONFIGS = Path(__file__).resolve().parents[1] / 'configs'
#: The tiny synthetic config of every registered segmenter.
TINY_CONFIGS = {
    'PanopticFCN': 'panoptic_fcn/panoptic_fcn_tiny_synth.py',
    'PanopticFPN': 'panoptic_fpn/panoptic_fpn_tiny_synth.py',
}
HEAD = dict(type='MotifHead', roi_dim=32, hidden_dim=16, pooling_dim=32, pos_dim=16, embed_dim=8,
            glove_file=None, sampler=dict(num_rel_per_image=32))


def registered_segmenters() -> list[str]:
    return sorted(name for name in MODELS.keys()
                  if isinstance(MODELS.get(name), type) and issubclass(MODELS.get(name), Segmenter)
                  and MODELS.get(name) is not Segmenter)


def test_every_registered_segmenter_has_a_tiny_config():
    assert registered_segmenters() == sorted(TINY_CONFIGS)


@pytest.fixture(scope='module')
def synth(tmp_path_factory) -> str:
    return make_synth_psg(tmp_path_factory.mktemp('synth'), num_train=2, num_test=1, size=64)


def build(name: str, synth: str) -> tuple[Segmenter, object]:
    """The segmenter of ``name``'s tiny config (seed 0) and a training batch of two images."""
    cfg = Config.fromfile(CONFIGS / TINY_CONFIGS[name], overrides={'data_root': synth})
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    train = dict(cfg.data.train)
    train.pop('samples_per_gpu', None)
    dataset = DATASETS.build(dict(train, seed=0))
    return model, collate_samples([dataset[0], dataset[1]])


def check_segments(seg: SegmentResult, shape: tuple[int, int]) -> None:
    """Sizes, dtypes, ranges and OpenPSG's order of one :class:`SegmentResult`."""
    n = seg.num_segments
    assert tuple(seg.id_map.shape) == tuple(shape) and seg.id_map.dtype == torch.int32
    assert seg.labels.shape == (n,) and seg.labels.dtype == torch.int64
    assert seg.scores.shape == (n,) and seg.scores.dtype == torch.float32
    assert not (seg.id_map.requires_grad or seg.scores.requires_grad)
    assert int(seg.id_map.min()) >= -1 and int(seg.id_map.max()) < n
    assert ((seg.labels >= 0) & (seg.labels < NUM_CLASSES)).all()
    assert ((seg.scores >= 0) & (seg.scores <= 1)).all()
    things = seg.labels < NUM_THING_CLASSES
    num_things = int(things.sum())
    assert things[:num_things].all(), 'things come before stuff'
    assert (seg.scores[:num_things].diff() >= 0).all(), 'things from lowest to highest score'
    stuff = seg.labels[num_things:]
    assert (stuff.diff() < 0).all(), 'stuff in decreasing class, each class once'
    areas = torch.bincount(seg.id_map.flatten().long() + 1, minlength=n + 1)[1:]
    assert (areas > 0).all(), 'every segment has pixels'


@pytest.mark.parametrize('name', sorted(TINY_CONFIGS))
def test_segmenter_contract(name, synth):
    model, batch = build(name, synth)
    levels = model.feature_levels
    check_feature_levels(levels, name)
    h, w = batch.imgs.shape[-2:]

    model.train()
    feats = model.extract_feats(batch.imgs)
    maps = model.relation_features(feats)
    assert len(maps) == len(levels)
    for level, feat in zip(levels, maps):
        assert feat is feats[level.name]
        assert tuple(feat.shape) == (2, level.channels, math.ceil(h / level.stride),
                                     math.ceil(w / level.stride)), level

    losses = model(batch, mode='loss')
    assert losses and all(k.startswith('loss') for k in losses)
    assert all(torch.isfinite(v) and v.dim() == 0 for v in losses.values())
    sum(losses.values()).backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())

    for training in (True, False):
        model.train(training)
        feats = model.extract_feats(batch.imgs)
        for rescale in (False, True):
            results = model.panoptic_segments(feats, batch, rescale=rescale)
            assert len(results) == 2
            for seg, meta in zip(results, batch.metas):
                check_segments(seg, meta.ori_shape if rescale else meta.img_shape)
        assert model.training == training

    model.eval()
    for pred, meta in zip(model(batch, mode='predict'), batch.metas):
        assert pred.image_id == meta.image_id
        assert pred.pan_id_map.shape == tuple(meta.ori_shape)
        assert pred.masks.shape == (len(pred.labels), *meta.ori_shape)
        assert np.array_equal(pred.masks.argmax(0)[pred.masks.any(0)],
                              pred.pan_id_map[pred.pan_id_map >= 0])


@pytest.mark.parametrize('name', sorted(TINY_CONFIGS))
def test_segmenter_is_a_two_stage_first_stage(name, synth):
    """A relation head on the segmenter, SGDet: it pools the declared levels, trains without
    touching the segmenter and predicts at the original size."""
    cfg = Config.fromfile(CONFIGS / TINY_CONFIGS[name], overrides={'data_root': synth})
    torch.manual_seed(0)
    model = TwoStageSceneGraph(segmenter=cfg.model, relation_head=HEAD, use_gt_box=False,
                               use_gt_label=False)
    levels = model.segmenter.feature_levels
    assert model.relation_head.obj_extractor.strides == tuple(lv.stride for lv in levels)
    _, batch = build(name, synth)
    model.train()
    losses = model(batch, mode='loss')
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert all(p.grad is None for p in model.segmenter.parameters())
    model.eval()
    for pred, meta in zip(model(batch, mode='predict'), batch.metas):
        assert pred.pan_id_map.shape == tuple(meta.ori_shape)
        assert len(pred.pairs) == len(pred.triplet_scores)
