"""Mixed precision without a GPU: one training step and one prediction step of every model family
under bfloat16 CPU autocast (the region :func:`openpsg.engine.amp.autocast` opens for ``--amp
bf16``), compared with the same weights in float32; the engine and the tools under ``--amp bf16``.

Tolerances. bfloat16 keeps 8 significant bits, so every convolution and matrix product rounds its
output to a relative 2^-9 (0.2 %); through the 10-30 rounded layers of these tiny models the
roundings add up, like a random walk, to about 1 % of an output's scale (measured here: at most
0.9 % on scores and probabilities, 0.5 % on the losses but 2 % on one small box-regression term,
0.2 % of the image side on boxes, 3 % of the largest mask logit, and a mask IoU of 0.96 at worst).
Hence:

* losses: within ``RTOL`` = 3 % relative or ``LOSS_ATOL`` = 0.01 absolute (a small loss term
  such as a box regression of 0.2 is the difference of larger numbers);
* scores and probabilities: within ``RTOL`` relative plus ``RTOL`` times the largest value of the
  array (for probabilities near 0);
* box coordinates: within ``BOX_TOL`` = 1 % of the image's longer side;
* binary masks of one segment: IoU >= ``MASK_IOU`` = 0.9 (pixels flip only where the fp32 logit
  is within the rounding error of the threshold);
* per-query mask logits (logit > 0 is the mask): a pixel may change side only where its fp32
  logit is within ``RTOL`` times the largest logit of the array from 0 (a 43-pixel mask of an
  untrained query on Deformable DETR's memory loses 5 such pixels, IoU 0.88).

A permutation of near-equal scores is not an error: segments are paired by label, box and mask
(an optimal assignment) before they are compared, and a top triplet must keep its rank only where
its fp32 score is separated from its neighbours' by more than the score tolerance. The panoptic
merge of the one-stage scene-graph models gives each pixel to the query with the largest logit;
untrained queries are nearly identical, so their merged segments are not comparable and their
per-query outputs (class and predicate probabilities, boxes, mask logits) are compared instead.

Regressions of the dtype fixes: under autocast every head output the matching, the losses and the
post-processing read is float32 (DETR-style class logits and boxes, Deformable DETR's reference
points, PSGTR's and PSGFormer's heads and pointer scores, DETR's mask branch, EGTR's relation
logits, Panoptic FPN's RPN proposals and detections), predicted scores and boxes carry more than
bfloat16's 8 bits, and the heuristic panoptic fusion scores stuff in float32 (a bfloat16 sum over
a 200x300 map stalls at 256 and scored a 0.90 segment 0.0085).
"""
from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment
from torchvision.models.detection.image_list import ImageList

from fixtures.psg_tiny.paint import write_psg_tiny
from one_stage_scenes import HORSE, PERSON, TINY, sky_grass_scene
from openpsg.config import Config
from openpsg.datasets import PSGDataset
from openpsg.engine import inference, load_predictions
from openpsg.engine.amp import autocast
from openpsg.models.segmenters.panoptic_fusion import heuristic_fusion
from openpsg.registry import MODELS
from openpsg.structures import Batch, Prediction, collate_samples
from test_egtr import tiny_egtr
from test_egtr_psg import tiny_model as tiny_panoptic_egtr
from test_one_stage_deformable import SMALL as DEFORMABLE
from test_engine_support import data_options, load_tool, make_synth_psg
from test_two_stage import PIPELINE, SEGMENTER, build

ROOT = Path(__file__).resolve().parents[1]
CPU = torch.device('cpu')
RTOL = 0.03
LOSS_ATOL = 0.01
BOX_TOL = 0.01
MASK_IOU = 0.9
train_tool = load_tool('train')
test_tool = load_tool('test')


# ------------------------------------------------------------------------------ families
def scenes() -> Batch:
    """Two hand-made sky/grass/thing scenes, the second flipped and at half its original size."""
    return collate_samples([
        sky_grass_scene('a', 48, 64, (20, 44, 6, 30), PERSON)[0],
        sky_grass_scene('b', 40, 56, (16, 36, 30, 50), HORSE, flip=True, ori_shape=(80, 112))[0]])


def detr_heads(model, batch: Batch) -> dict[str, torch.Tensor]:
    logits, boxes = model.predict_boxes(model.run_transformer(batch.imgs, batch.pad_mask).hs)
    return {'class probabilities': logits.softmax(-1), 'boxes': boxes}


def all_queries(batch: Batch, num_queries: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(batch_idx, query_idx)`` of every query of every image."""
    return (torch.arange(len(batch)).repeat_interleave(num_queries),
            torch.arange(num_queries).repeat(len(batch)))


def detr4seg_heads(model, batch: Batch) -> dict[str, torch.Tensor]:
    out = model.run_transformer(batch.imgs, batch.pad_mask)
    logits, boxes = model.predict_boxes(out.hs)
    return {'class probabilities': logits.softmax(-1), 'boxes': boxes,
            'mask logits': model.mask_logits(out, *all_queries(batch, model.num_queries))}


def deformable_heads(model, batch: Batch) -> dict[str, torch.Tensor]:
    _, out = model.run_transformer(batch.imgs, batch.pad_mask)
    logits, boxes = model.predict_boxes(out)
    return {'reference points': out.init_reference, 'class probabilities': logits.sigmoid(),
            'boxes': boxes}


def egtr_heads(model, batch: Batch) -> dict[str, torch.Tensor]:
    logits, boxes, rel, connectivity, _ = model.forward_all(batch)
    return {'class probabilities': logits.sigmoid(), 'boxes': boxes,
            'predicate probabilities': rel.sigmoid(),
            'connectivity probabilities': connectivity.sigmoid()}


def panoptic_egtr_heads(model, batch: Batch) -> dict[str, torch.Tensor]:
    _, _, logits, boxes, rel, connectivity, _ = model.forward_panoptic(batch)
    return {'class probabilities': logits.sigmoid(), 'boxes': boxes,
            'predicate probabilities': rel.sigmoid(),
            'connectivity probabilities': connectivity.sigmoid()}


def psgtr_heads(model, batch: Batch) -> dict[str, torch.Tensor]:
    out, heads = model.forward_heads(batch)
    queries = all_queries(batch, model.num_queries)
    return {'subject probabilities': heads.sub_logits.softmax(-1),
            'object probabilities': heads.obj_logits.softmax(-1),
            'predicate probabilities': heads.rel_logits.softmax(-1),
            'subject boxes': heads.sub_boxes, 'object boxes': heads.obj_boxes,
            'subject mask logits': model.mask_logits('sub', out, *queries),
            'object mask logits': model.mask_logits('obj', out, *queries)}


def psgformer_heads(model, batch: Batch) -> dict[str, torch.Tensor]:
    out, heads = model.forward_heads(batch)
    return {'class probabilities': heads.logits.softmax(-1), 'boxes': heads.boxes,
            'predicate probabilities': heads.rel_logits.softmax(-1),
            'subject pointer probabilities': heads.sub_scores.softmax(-1),
            'object pointer probabilities': heads.obj_scores.softmax(-1),
            'mask logits': model.mask_logits(out, *all_queries(batch, model.num_queries))}


def panoptic_fpn_heads(model, batch: Batch) -> dict[str, torch.Tensor]:
    feats = model.extract_feats(batch.imgs)
    sizes = [tuple(m.img_shape) for m in batch.metas]
    proposals, _ = model.rpn(ImageList(batch.imgs, sizes), feats)
    detections, _ = model.roi_heads(feats, proposals, sizes)
    segments = model.panoptic_segments(feats, batch)
    return {'proposals': torch.cat(proposals),
            'detection boxes': torch.cat([d['boxes'] for d in detections]),
            'detection scores': torch.cat([d['scores'] for d in detections]),
            'segment scores': torch.cat([s.scores for s in segments])}


def two_stage_heads(model, batch: Batch) -> dict[str, torch.Tensor]:
    return panoptic_fpn_heads(model.segmenter, batch)


def panoptic_fcn() -> torch.nn.Module:
    """PanopticFCN's tiny config."""
    cfg = Config.fromfile(ROOT / 'configs' / 'panoptic_fcn' / 'panoptic_fcn_tiny_synth.py')
    cfg.model.backbone.pretrained = False
    return MODELS.build(cfg.model)


@dataclass(frozen=True)
class Family:
    """How to build a tiny model of one family, on which batch it runs, which head outputs it
    exposes, which prediction fields its network computes, and whether its predictions are
    comparable segment by segment (else its per-query head outputs are compared)."""

    build: Callable[[], torch.nn.Module]
    data: str  # 'psg_tiny' (the two-stage fixture) or 'scenes'
    heads: Callable[[Any, Batch], dict[str, torch.Tensor]] | None
    computed: tuple[str, ...] = ('scores', 'triplet_scores')
    segments_comparable: bool = True


RELATIONS = ('triplet_scores',)  # PredCls: ground-truth segments, scores 1
SEGMENTS = ('scores',)  # boxes of masks are whole input pixels
DETECTIONS = ('scores', 'boxes')
FAMILIES = {
    'IMP-predcls': Family(lambda: build('predcls', 'IMPHead'), 'psg_tiny', None, RELATIONS),
    'MOTIFS-predcls': Family(lambda: build('predcls', 'MotifHead'), 'psg_tiny', None, RELATIONS),
    'VCTree-predcls': Family(lambda: build('predcls', 'VCTreeHead'), 'psg_tiny', None, RELATIONS),
    'GPSNet-predcls': Family(lambda: build('predcls', 'GPSHead'), 'psg_tiny', None, RELATIONS),
    'MOTIFS-sgdet': Family(lambda: build('sgdet', 'MotifHead'), 'psg_tiny', two_stage_heads),
    'PanopticFPN': Family(lambda: MODELS.build(dict(
        SEGMENTER, rpn=dict(SEGMENTER['rpn'], post_nms_top_n_train=64),
        roi_head=dict(batch_size_per_image=16))), 'psg_tiny', panoptic_fpn_heads, SEGMENTS),
    'PanopticFCN': Family(panoptic_fcn, 'psg_tiny', None, SEGMENTS),
    'PSGTR': Family(lambda: MODELS.build(dict(
        type='PSGTr', **TINY, num_queries=10,
        test_cfg=dict(subject_score_thr=0.0, object_score_thr=0.0, predicate_score_thr=0.0))),
        'scenes', psgtr_heads, segments_comparable=False),
    'PSGFormer': Family(lambda: MODELS.build(dict(type='PSGFormer', **TINY, num_queries=8,
                                                  num_rel_queries=6)),
                        'scenes', psgformer_heads, segments_comparable=False),
    'DETR4Seg': Family(lambda: MODELS.build(dict(type='DETR4Seg', **TINY, num_queries=10,
                                                 test_cfg=dict(score_thr=0.0))),
                       'scenes', detr4seg_heads, SEGMENTS, segments_comparable=False),
    'DETR': Family(lambda: MODELS.build(dict(
        type='DETR', backbone=dict(type='ResNet', depth=18, frozen_stages=1), num_queries=6,
        transformer=dict(d_model=32, nhead=4, num_encoder_layers=1, num_decoder_layers=2,
                         dim_feedforward=64, dropout=0.0))), 'scenes', detr_heads, DETECTIONS),
    # every (query, class) pair is kept: no top-k boundary for near-equal scores to cross
    'DeformableDETR': Family(lambda: MODELS.build(dict(
        type='DeformableDETR', backbone=dict(type='ResNet', depth=18, frozen_stages=1),
        num_queries=6, test_cfg=dict(max_per_img=6 * 133),
        transformer=dict(d_model=64, nhead=8, num_encoder_layers=1, num_decoder_layers=2,
                         dim_feedforward=64, dropout=0.0))), 'scenes', deformable_heads,
        DETECTIONS),
    'EGTR': Family(tiny_egtr, 'scenes', egtr_heads, ('scores', 'boxes', 'triplet_scores')),
    'PanopticEGTR': Family(lambda: tiny_panoptic_egtr(test_cfg=dict(object_score_thr=0.0)),
                           'scenes', panoptic_egtr_heads, segments_comparable=False),
    # PSGTR and PSGFormer on Deformable DETR's transformer
    'PSGTR-deformable': Family(lambda: MODELS.build(dict(
        type='PSGTr', backbone=TINY['backbone'], transformer=DEFORMABLE, num_queries=10,
        test_cfg=dict(subject_score_thr=0.0, object_score_thr=0.0, predicate_score_thr=0.0))),
        'scenes', psgtr_heads, segments_comparable=False),
    'PSGFormer-deformable': Family(lambda: MODELS.build(dict(
        type='PSGFormer', backbone=TINY['backbone'], transformer=DEFORMABLE, num_queries=8,
        num_rel_queries=6)), 'scenes', psgformer_heads, segments_comparable=False),
}


@pytest.fixture(scope='module')
def psg_tiny(tmp_path_factory) -> Batch:
    """Both images of the psg_tiny fixture (resized to 96x128 and 86x128) in one batch."""
    ann_file, root = write_psg_tiny(tmp_path_factory.mktemp('psg_tiny'))
    return collate_samples([PSGDataset(str(ann_file), str(root), split=split, pipeline=PIPELINE,
                                       seed=0)[0] for split in ('train', 'test')])


# ------------------------------------------------------------------------------ comparisons
def bf16_rounded(values) -> bool:
    """Whether every non-zero value is a bfloat16 number (what a float32 copy of a bfloat16 result
    is; a float32 computation leaves this with probability 2^-16 per value)."""
    values = np.asarray(values, np.float32).ravel()
    values = values[values != 0]
    rounded = torch.from_numpy(values).bfloat16().float().numpy()
    return bool(values.size) and bool((rounded == values).all())


def assert_close(name: str, ours: np.ndarray, reference: np.ndarray, atol: float = 0.0) -> None:
    """``|ours - reference| <= RTOL * |reference| + RTOL * max |reference| + atol``."""
    ours, reference = np.asarray(ours, np.float64), np.asarray(reference, np.float64)
    assert ours.shape == reference.shape, (name, ours.shape, reference.shape)
    scale = np.abs(reference).max(initial=0)
    np.testing.assert_allclose(ours, reference, rtol=RTOL, atol=RTOL * scale + atol, err_msg=name)


def mask_ious(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of ``a[i]`` and ``b[i]`` (``(N, H, W)`` bool; two empty masks: 1)."""
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    union = (a | b).sum(1)
    return np.where(union > 0, (a & b).sum(1) / np.maximum(union, 1), 1.0)


def pair_segments(ref: Prediction, ours: Prediction, side: int) -> np.ndarray:
    """``match[i]``: the segment of ``ours`` paired with segment ``i`` of ``ref`` by an optimal
    assignment on label, box distance (in units of the image side ``side``) and mask IoU (equal
    labels first)."""
    cost = np.abs(ref.boxes[:, None] - ours.boxes[None]).max(-1) / side
    cost = cost + 1e3 * (ref.labels[:, None] != ours.labels[None])
    if ref.masks is not None:
        a = ref.dense_masks().reshape(len(ref.labels), -1).astype(np.float64)
        b = ours.dense_masks().reshape(len(ours.labels), -1).astype(np.float64)
        inter = a @ b.T
        union = a.sum(1)[:, None] + b.sum(1)[None] - inter
        cost = cost + 1 - np.where(union > 0, inter / np.maximum(union, 1), 1.0)
    rows, cols = linear_sum_assignment(cost)
    match = np.full(len(ref.labels), -1)
    match[rows] = cols
    return match


def assert_segments_close(ref: Prediction, ours: Prediction, side: int) -> np.ndarray:
    """Same segments (paired by :func:`pair_segments`): labels, scores, boxes (``side``: the
    image's longer side), masks. Returns the pairing."""
    assert len(ours.labels) == len(ref.labels), (len(ours.labels), len(ref.labels))
    match = pair_segments(ref, ours, side)
    np.testing.assert_array_equal(ours.labels[match], ref.labels)
    assert_close('scores', ours.scores[match], ref.scores)
    np.testing.assert_allclose(ours.boxes[match], ref.boxes, atol=BOX_TOL * side)
    if ref.masks is not None:
        assert mask_ious(ours.dense_masks()[match], ref.dense_masks()).min() >= MASK_IOU
    return match


def assert_relations_close(ref: Prediction, ours: Prediction, match: np.ndarray,
                           top: int = 20) -> None:
    """The same pairs (through the segment pairing ``match``) with close predicate and triplet
    scores; each of the ``top`` fp32 rows whose triplet score is separated from its neighbours'
    by more than the tolerance keeps its rank, pair and best predicate."""
    to_ref = {int(j): i for i, j in enumerate(match)}
    pairs = [tuple(to_ref[int(s)] for s in pair) for pair in ours.pairs]
    assert sorted(pairs) == sorted(map(tuple, ref.pairs.tolist()))
    row_of = {pair: r for r, pair in enumerate(pairs)}
    rows = [row_of[tuple(pair)] for pair in ref.pairs.tolist()]
    assert_close('predicate scores', ours.predicate_scores[rows], ref.predicate_scores)
    assert_close('triplet scores', ours.triplet_scores[rows], ref.triplet_scores)
    scores = ref.triplet_scores
    margin = 2 * RTOL * scores.max(initial=0)
    for r in range(min(top, len(scores))):
        gaps = [abs(scores[r] - scores[k]) for k in (r - 1, r + 1) if 0 <= k < len(scores)]
        if min(gaps, default=np.inf) > margin:
            assert pairs[r] == tuple(ref.pairs[r]), r
            assert ours.predicate_scores[r].argmax() == ref.predicate_scores[r].argmax(), r


def assert_wellformed(pred: Prediction, computed: tuple[str, ...]) -> None:
    """The dtypes of the prediction contract, finite values, and the ``computed`` fields (those
    the network computes, not ground-truth scores or boxes of masks) not bfloat16 values."""
    assert pred.labels.dtype == np.int64 and pred.pairs.dtype == np.int64
    for field in ('scores', 'boxes', 'predicate_scores', 'triplet_scores'):
        value = getattr(pred, field)
        assert value.dtype == np.float32 and np.isfinite(value).all(), field
    if pred.masks is not None:
        assert pred.dense_masks().dtype == bool
    for field in computed:
        value = getattr(pred, field)
        assert value.size and not bf16_rounded(value), f'{field} are bfloat16 values'


def assert_heads_close(ref: dict[str, torch.Tensor], ours: dict[str, torch.Tensor]) -> None:
    """Per-query head outputs: probabilities and boxes close; of the mask logits, a pixel changes
    side of 0 only where the fp32 logit is within ``RTOL`` of the largest from it."""
    for name, value in ref.items():
        if name.endswith('mask logits'):
            flipped = (value > 0) != (ours[name] > 0)
            margin = RTOL * value.abs().max()
            assert (value[flipped].abs() <= margin).all(), \
                (name, value[flipped].abs().max().item(), margin.item())
        elif name != 'proposals':
            assert_close(name, ours[name].numpy(), value.numpy())


# ------------------------------------------------------------------------------ the steps
def losses_of(model, batch: Batch, amp: str) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)  # the same samplers' draws in both precisions
    model.train()
    with autocast(CPU, amp):
        return model(batch, mode='loss')


@pytest.mark.parametrize('name', list(FAMILIES))
def test_train_and_predict_steps_under_bf16_match_float32(name, request):
    family = FAMILIES[name]
    torch.manual_seed(0)
    model = family.build()
    batch = request.getfixturevalue('psg_tiny') if family.data == 'psg_tiny' else scenes()
    state = copy.deepcopy(model.state_dict())

    # one training step: float32 losses, close to fp32's, finite gradients, float32 parameters
    reference = {k: v.item() for k, v in losses_of(model, batch, 'none').items()}
    losses = losses_of(model, batch, 'bf16')
    assert set(losses) == set(reference)
    for key, value in losses.items():
        assert value.dtype == torch.float32 and torch.isfinite(value), key
        assert value.item() == pytest.approx(reference[key], rel=RTOL, abs=LOSS_ATOL), key
    sum(v for k, v in losses.items() if k.startswith('loss')).backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)
    assert all(g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    model.load_state_dict(state)  # (batch norms of the relation heads updated their statistics)

    # one prediction step: well-formed float32 predictions, close to fp32's
    heads = family.heads or (lambda *_: {})
    torch.manual_seed(0)
    with torch.no_grad():
        ref_preds, ref_heads = model.eval()(batch, mode='predict'), heads(model, batch)
        with autocast(CPU, 'bf16'):
            preds, our_heads = model(batch, mode='predict'), heads(model, batch)
    for key, value in our_heads.items():
        assert value.dtype == torch.float32, f'{key} are {value.dtype} under autocast'
    assert_heads_close(ref_heads, our_heads)
    assert [p.image_id for p in preds] == [p.image_id for p in ref_preds]
    for ref, ours, meta in zip(ref_preds, preds, batch.metas):
        assert_wellformed(ours, family.computed)
        if family.segments_comparable:
            match = assert_segments_close(ref, ours, max(meta.ori_shape))
            assert_relations_close(ref, ours, match)


def test_heuristic_fusion_scores_stuff_in_float32():
    """A bfloat16 semantic map gives the stuff scores of its float32 copy: the mean probability
    of each segment, not a bfloat16 sum stalled at 256 over 30000 pixels."""
    torch.manual_seed(0)
    logits = 0.3 * torch.randn(3, 200, 300)
    logits[0, :100] += 3.0   # stuff class 0 on the top half, class 1 on the bottom half
    logits[1, 100:] += 3.0
    logits = logits.bfloat16()
    no_things = (torch.zeros(0, 200, 300), torch.zeros(0), torch.zeros(0, dtype=torch.long))
    ours = heuristic_fusion(*no_things, logits, 80, stuff_area_limit=16)
    ref = heuristic_fusion(*no_things, logits.float(), 80, stuff_area_limit=16)
    assert ours.labels.tolist() == ref.labels.tolist() == [81, 80]
    assert torch.equal(ours.scores, ref.scores) and torch.equal(ours.id_map, ref.id_map)
    probs = logits.float().softmax(0).max(0).values
    assert ours.scores.tolist() == pytest.approx([probs[100:].mean().item(),
                                                  probs[:100].mean().item()], rel=1e-5)


def test_inference_predicts_under_the_autocast_of_amp():
    torch.manual_seed(0)
    model = FAMILIES['DETR'].build().eval()
    batch = scenes()
    with torch.no_grad(), autocast(CPU, 'bf16'):
        expected = model(batch, mode='predict')
    ours = inference(model, [batch], amp='bf16')
    plain = inference(model, [batch])
    for a, b, c in zip(ours, expected, plain):
        np.testing.assert_array_equal(a.scores, b.scores)
        np.testing.assert_array_equal(a.boxes, b.boxes)
        assert not np.array_equal(a.scores, c.scores)  # float32 differs in the last bits


def test_train_and_test_tools_run_bf16_on_the_cpu(tmp_path):
    """``--amp bf16`` trains (and evaluates) a tiny DETR4Seg one iteration under CPU autocast and
    predicts with it: losses and scores close to ``--amp none``'s, and not identical to them."""
    synth = make_synth_psg(tmp_path / 'psg', num_train=1, num_test=1)
    config = str(ROOT / 'configs' / 'detr4seg' / 'detr4seg_tiny_synth.py')
    options = [*data_options(synth), 'runner.max_epochs=1', 'data.samples_per_gpu=1',
               'log_config.interval=1', 'evaluation.interval=1', 'model.test_cfg.score_thr=0.0']
    losses = {}
    for amp in ('none', 'bf16'):
        work_dir = tmp_path / amp
        assert train_tool.main([config, '--work-dir', str(work_dir), '--seed', '0', '--amp', amp,
                                '--cfg-options', *options]) == 0
        assert f'amp {amp} on cpu' in next(work_dir.glob('*[0-9].log')).read_text()
        records = [json.loads(line) for line in next(work_dir.glob('*.log.json')).open()]
        (train,) = [r for r in records if r['mode'] == 'train']
        (val,) = [r for r in records if r['mode'] == 'val']
        assert math.isfinite(train['loss']) and 0 <= val['PQ'] <= 100
        losses[amp] = train['loss']
    assert losses['bf16'] != losses['none']
    assert losses['bf16'] == pytest.approx(losses['none'], rel=RTOL)

    scores = {}
    for amp in ('none', 'bf16'):
        out = tmp_path / f'{amp}.pth'
        assert test_tool.main([config, str(tmp_path / 'none' / 'latest.pth'), '--amp', amp,
                               '--out', str(out), '--cfg-options', *options]) == 0
        (pred,) = load_predictions(out)
        assert len(pred.scores) > 0
        scores[amp] = np.sort(pred.scores)
    assert not np.array_equal(scores['bf16'], scores['none'])
    assert_close('scores', scores['bf16'], scores['none'])
