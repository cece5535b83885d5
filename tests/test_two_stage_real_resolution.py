"""Every two-stage head at real resolution: the published R50 SGDet config (random weights, no
segmenter checkpoint) on one random 800x1333 image, a training step then a test step on the same
model; MOTIFS also on PanopticFCN. Slow on a CPU (tens of seconds per head), so one model per head
serves both steps."""
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from openpsg.config import Config
from openpsg.models.two_stage import TwoStageSceneGraph
from openpsg.registry import MODELS
from openpsg.structures import ImageMeta, Sample, collate_samples

CONFIGS = Path(__file__).resolve().parents[1] / 'configs'
HEADS = {'imp': 'IMPHead', 'motifs': 'MotifHead', 'vctree': 'VCTreeHead', 'gpsnet': 'GPSHead'}
H, W = 800, 1333  # the input after Resize(1333, 800); padded to 800x1344 by Pad(size_divisor=32)
PAD_W = 1344
ORI = (600, 1000)  # the original image the sample claims to come from (scale 1.333)


def real_sample() -> Sample:
    """One normalised random image with 4 ground-truth objects (2 things, 2 stuff) and 3
    relations, as PSGDataset's pipeline would pack it."""
    gen = torch.Generator().manual_seed(0)
    boxes = torch.tensor([[100., 120., 420., 700.], [380., 250., 900., 760.],
                          [0., 0., 1333., 300.], [0., 600., 1333., 800.]])
    masks = torch.zeros(4, H, PAD_W, dtype=torch.bool)
    for i, (x1, y1, x2, y2) in enumerate(boxes.long().tolist()):
        masks[i, y1:y2, x1:x2] = True
    masks[2:] &= ~masks[:2].any(0)  # stuff behind the things, as in a panoptic map
    img = torch.randn(3, H, PAD_W, generator=gen)
    img[:, :, W:] = 0
    meta = ImageMeta('900001', file_name='900001.jpg', ori_shape=ORI, img_shape=(H, W),
                     pad_shape=(H, PAD_W), scale_factor=(W / ORI[1], H / ORI[0]))
    # person, horse, sky-other-merged, grass-merged; predicates: riding, beside, standing on
    labels = torch.tensor([0, 17, 119, 125])
    rels = torch.tensor([[0, 1, 46], [1, 0, 14], [1, 3, 3]])
    return Sample(img=img, meta=meta, labels=labels, boxes=boxes, masks=masks, rels=rels)


@pytest.mark.parametrize('head,segmenter', [(h, 'panoptic_fpn_r50_fpn_1x') for h in sorted(HEADS)]
                         + [('motifs', 'panoptic_fcn_r50_fpn_3x')])
def test_real_resolution_sgdet_train_and_test_step(head, segmenter):
    start = time.perf_counter()
    cfg = Config.fromfile(CONFIGS / head / f'{segmenter}_sgdet_psg.py')
    assert cfg.model.segmenter.backbone.pretrained is False  # nothing to download
    torch.manual_seed(0)
    model = MODELS.build(dict(cfg.model, segmenter_checkpoint=None))
    assert isinstance(model, TwoStageSceneGraph) and model.mode == 'sgdet'
    assert type(model.relation_head).__name__ == HEADS[head]
    batch = collate_samples([real_sample()])
    assert tuple(batch.imgs.shape) == (1, 3, H, PAD_W)

    # training step: finite losses; the relation head gets a gradient, the frozen segmenter none
    model.train()
    assert not model.segmenter.training and model.relation_head.training
    losses = model(batch, mode='loss')
    assert 'loss_relation' in losses
    assert all(v.dim() == 0 and torch.isfinite(v) for v in losses.values()), losses
    sum(losses.values()).backward()
    assert all(p.grad is None for p in model.segmenter.parameters())
    grads = [p.grad for p in model.relation_head.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
    train_s = time.perf_counter() - start

    # test step: one well-formed Prediction at the original size
    model.eval()
    with torch.no_grad():
        predictions = model(batch, mode='predict')
    assert len(predictions) == 1
    pred = predictions[0]
    n, num_predicates = len(pred.labels), model.relation_head.num_predicates
    assert pred.image_id == '900001'
    assert pred.pan_id_map.shape == ORI and pred.pan_id_map.dtype == np.int32
    assert pred.masks.shape == (n, *ORI) and pred.masks.dtype == bool
    assert pred.scores.shape == (n,) and pred.boxes.shape == (n, 4)
    assert np.all((pred.labels >= 0) & (pred.labels < model.relation_head.num_classes))
    assert np.all(np.isfinite(pred.boxes))
    assert np.all((pred.boxes[:, [0, 2]] >= 0) & (pred.boxes[:, [0, 2]] <= ORI[1] + 1e-3))
    assert np.all((pred.boxes[:, [1, 3]] >= 0) & (pred.boxes[:, [1, 3]] <= ORI[0] + 1e-3))
    assert np.all((pred.pan_id_map >= -1) & (pred.pan_id_map < max(n, 1)))
    r = len(pred.pairs)
    assert pred.pairs.shape == (r, 2) and pred.predicate_scores.shape == (r, num_predicates)
    assert pred.triplet_scores.shape == (r,) and np.all(np.diff(pred.triplet_scores) <= 0)
    if n > 1:
        assert r == n * (n - 1)
        assert np.all((pred.pairs >= 0) & (pred.pairs < n))
        assert np.all(pred.pairs[:, 0] != pred.pairs[:, 1])
        assert np.all(np.isfinite(pred.predicate_scores)) and np.all(pred.predicate_scores >= 0)
    total_s = time.perf_counter() - start
    print(f'{head}: {n} segments, train step (incl. build) {train_s:.1f} s, total {total_s:.1f} s')
