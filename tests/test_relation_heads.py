"""The four relation heads (IMP, MOTIFS, VCTree, GPSNet) on the psg_tiny fixture: a training step
and a prediction in every mode, plus the behaviour particular to each head."""
import numpy as np
import pytest
import torch

from fixtures.psg_tiny.paint import write_psg_tiny
from openpsg.config import ConfigError
from openpsg.datasets import PSGDataset
from openpsg.models.relation_heads import (GPSHead, IMPHead, MotifHead, ObjectSet, VCTreeHead,
                                           assign_object_targets)
from openpsg.models.relation_heads.frequency import log_frequencies
from openpsg.models.relation_heads.sampling import inference_pairs
from openpsg.models.relation_heads.motifs import left_right_orders
from openpsg.registry import MODELS
from openpsg.structures import collate_samples

HEADS = {'imp': IMPHead, 'motifs': MotifHead, 'vctree': VCTreeHead, 'gpsnet': GPSHead}
CHANNELS = 8
PIPELINE = [dict(type='LoadImage'), dict(type='LoadPanopticAnnotations', with_rel=True),
            dict(type='Resize', scale=(128, 96), keep_ratio=True),
            dict(type='Normalize', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375]),
            dict(type='Pad', size_divisor=32), dict(type='PackSample')]


@pytest.fixture(scope='module')
def batch(tmp_path_factory):
    """Both fixture images (4 and 3 segments, resized to 96x128 and 86x128) in one batch."""
    ann_file, root = write_psg_tiny(tmp_path_factory.mktemp('psg_tiny'))
    samples = [PSGDataset(str(ann_file), str(root), split=split, pipeline=PIPELINE, seed=0)[0]
               for split in ('train', 'test')]
    return collate_samples(samples)


@pytest.fixture(scope='module')
def feats(batch):
    """Stand-in FPN maps (strides 4..32) of the batch."""
    generator = torch.Generator().manual_seed(0)
    h, w = batch.imgs.shape[-2:]
    return [torch.randn(len(batch), CHANNELS, h // s, w // s, generator=generator)
            for s in (4, 8, 16, 32)]


COMMON = dict(num_classes=5, num_predicates=6, in_channels=CHANNELS, roi_dim=16,
              sampler=dict(num_rel_per_image=8))
WORDS = dict(class_names=('person', 'horse', 'dog', 'grass-merged', 'sky-other-merged'),
             embed_dim=6, pos_dim=4, glove_file=None)
OPTIONS = {'imp': dict(hidden_dim=8), 'motifs': dict(hidden_dim=8, pooling_dim=12, **WORDS),
           'vctree': dict(hidden_dim=8, pooling_dim=12, **WORDS), 'gpsnet': WORDS}


def build(head: str, mode: str, **kwargs):
    torch.manual_seed(0)
    return HEADS[head](mode=mode, **{**COMMON, **OPTIONS[head], **kwargs})


def objects_for(mode, batch):
    """PredCls/SGCls: the ground-truth segments. SGDet: "detections" made from them: each box
    shifted by one pixel, the last one relabelled, plus a far-away extra box."""
    out = []
    for s in batch.samples:
        shape = tuple(s.meta.img_shape)
        if mode != 'sgdet':
            out.append(ObjectSet(boxes=s.boxes, img_shape=shape,
                                 labels=s.labels if mode == 'predcls' else None, targets=s.labels))
            continue
        boxes = torch.cat([s.boxes + 1, torch.tensor([[100.0, 60.0, 120.0, 80.0]])])
        labels = torch.cat([s.labels[:-1], torch.tensor([(int(s.labels[-1]) + 1) % 5, 2])])
        targets = assign_object_targets(boxes, s.boxes, s.labels, background=5)
        out.append(ObjectSet(boxes=boxes, img_shape=shape, labels=labels, targets=targets))
    return out


# ---------------------------------------------------------------------------------------------
# every head, every mode


@pytest.mark.parametrize('mode', ['predcls', 'sgcls', 'sgdet'])
@pytest.mark.parametrize('name', list(HEADS))
def test_train_step_and_prediction(name, mode, batch, feats):
    head = build(name, mode)
    objects = objects_for(mode, batch)
    losses = head.loss(feats, objects, batch.samples, generator=torch.Generator().manual_seed(0))
    expected = {'loss_relation'} | ({'loss_object'} if mode != 'predcls' else set())
    expected |= {'loss_vctree_binary'} if name == 'vctree' else set()
    assert set(losses) == expected
    assert all(torch.isfinite(v) and v.ndim == 0 for v in losses.values())
    sum(losses.values()).backward()
    grads = [p.grad for p in head.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert head.union_extractor.fc[0].weight.grad.abs().sum() > 0  # the features are trained too

    head.eval()
    results = head.predict(feats, objects)
    assert len(results) == 2
    for res, obj, sample in zip(results, objects, batch.samples):
        n = len(obj)
        assert res.pairs.shape == (n * (n - 1), 2)
        assert sorted(res.pairs.tolist()) == sorted(inference_pairs(n).tolist())
        assert res.predicate_scores.shape == (n * (n - 1), 6)
        total = res.predicate_scores.sum(1) + res.no_relation_scores
        assert torch.allclose(total, torch.ones_like(total), atol=1e-5)
        assert (res.triplet_scores[:-1] >= res.triplet_scores[1:]).all()
        best = res.predicate_scores.max(1).values
        expected_triplet = best * res.scores[res.pairs[:, 0]] * res.scores[res.pairs[:, 1]]
        assert torch.allclose(res.triplet_scores, expected_triplet)
        assert ((res.labels >= 0) & (res.labels < 5)).all()
        if mode == 'predcls':
            assert torch.equal(res.labels, sample.labels) and (res.scores == 1).all()
        elif mode == 'sgdet':
            assert torch.equal(res.labels, obj.labels)  # the segmenter's labels are kept
        else:
            assert ((res.scores > 0) & (res.scores < 1)).all()


# ---------------------------------------------------------------------------------------------
# shared behaviour


def test_frequency_bias_is_added_to_the_relation_logits(batch, feats, tmp_path):
    counts = torch.zeros(5, 5, 7, dtype=torch.float64)
    counts[0, 3, 4] = 5  # person -standing on-> grass
    cache = tmp_path / 'freq.npy'
    np.save(cache, counts.numpy())
    head = build('imp', 'predcls', use_bias=True, freq_cache=str(cache))
    with torch.no_grad():
        head.rel_fc.weight.zero_()
        head.rel_fc.bias.zero_()
    objects = objects_for('predcls', batch)
    _, out = head(feats, objects, [torch.tensor([[0, 3], [1, 3]]), torch.tensor([[0, 1]])])
    table = torch.from_numpy(log_frequencies(counts.numpy())).float()
    labels = [batch.samples[0].labels, batch.samples[1].labels]  # [0, 1, 4, 3] and [2, 0, 3]
    expected = torch.stack([table[labels[0][0], labels[0][3]], table[labels[0][1], labels[0][3]],
                            table[labels[1][0], labels[1][1]]])
    assert torch.allclose(out.rel_logits, expected)
    assert out.rel_logits[0].argmax() == 4


def test_mask_features_weight_the_rois(batch, feats):
    plain = build('gpsnet', 'predcls')
    masked = build('gpsnet', 'predcls', with_mask_feats=True)
    masked.load_state_dict(plain.state_dict())
    plain.eval()
    masked.eval()
    objects = objects_for('predcls', batch)
    pairs = [inference_pairs(len(o)) for o in objects]
    ref = plain.build_inputs(feats, objects, pairs, training=False)
    full = [ObjectSet(o.boxes, o.img_shape, o.labels, torch.ones(len(o), 96, 128).bool())
            for o in objects]
    got = masked.build_inputs(feats, full, pairs, training=False)
    # every box lies inside its mask: weight 1 everywhere
    assert torch.allclose(got.obj_feats, ref.obj_feats, atol=1e-6)
    assert torch.allclose(got.union_feats, ref.union_feats, atol=1e-6)
    empty = [ObjectSet(o.boxes, o.img_shape, o.labels, torch.zeros(len(o), 96, 128).bool())
             for o in objects]
    none = masked.build_inputs(feats, empty, pairs, training=False).obj_feats
    assert torch.allclose(none, none[:1].expand_as(none))  # no mask: every object looks the same


def test_sgcls_feeds_uniform_label_distributions(batch, feats):
    head = build('gpsnet', 'sgcls')
    pairs = [torch.tensor([[0, 1]])] * 2
    x = head.build_inputs(feats, objects_for('sgcls', batch), pairs, training=True)
    assert x.known_labels is None
    assert torch.allclose(x.label_dists[:, :5], torch.full((7, 5), 0.2))
    assert (x.label_dists[:, 5] == 0).all()
    assert torch.equal(x.teacher_labels, torch.cat([s.labels for s in batch.samples]))


def test_predcls_keeps_the_known_labels(batch, feats):
    objects = objects_for('predcls', batch)
    known = torch.cat([o.labels for o in objects])
    for name in HEADS:
        _, out = build(name, 'predcls')(feats, objects, [inference_pairs(len(o)) for o in objects])
        assert torch.equal(out.obj_labels, known), name
        assert torch.equal(out.obj_logits.argmax(1), known), name


def test_object_outputs_by_mode(batch, feats):
    pairs = [torch.tensor([[0, 1]])] * 2
    logits = torch.zeros(7, 6)
    logits[:, 2] = 1.0
    logits[:, 5] = 5.0  # background is never a predicted label
    x = build('imp', 'predcls').build_inputs(feats, objects_for('predcls', batch), pairs, False)
    fixed_logits, fixed_labels = x.object_outputs(logits)
    assert torch.equal(fixed_labels, x.known_labels)
    assert (fixed_logits.argmax(1) == x.known_labels).all() and fixed_logits.max() == 1000
    x = build('imp', 'sgcls').build_inputs(feats, objects_for('sgcls', batch), pairs, False)
    assert not x.labels_given
    assert x.object_outputs(logits)[1].tolist() == [2] * 7
    assert x.object_outputs(logits, torch.arange(7))[1].tolist() == list(range(7))
    with pytest.raises(ValueError, match='must classify the objects'):
        x.object_outputs()


@pytest.mark.parametrize('name,key', [('imp', 'pooling_dim'), ('imp', 'embed_dim'),
                                      ('imp', 'glove_file'), ('imp', 'dropout_rate'),
                                      ('gpsnet', 'hidden_dim'), ('gpsnet', 'pooling_dim'),
                                      ('vctree', 'dropout_rate')])
def test_an_option_the_head_does_not_take_is_an_error(name, key):
    cfg = dict(type=HEADS[name].__name__, **COMMON, **OPTIONS[name], **{key: 1})
    with pytest.raises(ConfigError, match=f"^{key}: {HEADS[name].__name__} has no option '{key}'"):
        MODELS.build(cfg)


def test_loss_weights_scale_the_losses_and_unknown_keys_fail(batch, feats):
    objects = objects_for('sgcls', batch)
    plain = build('vctree', 'sgcls').loss(feats, objects, batch.samples,
                                          generator=torch.Generator().manual_seed(0))
    weights = {'relation': 2.0, 'object': 0.5, 'vctree_binary': 0.0}
    weighted = build('vctree', 'sgcls', loss_weights=weights).loss(
        feats, objects, batch.samples, generator=torch.Generator().manual_seed(0))
    assert set(weighted) == set(plain) == {'loss_relation', 'loss_object', 'loss_vctree_binary'}
    for key, w in weights.items():
        assert torch.allclose(weighted[f'loss_{key}'], plain[f'loss_{key}'] * w), key
    with pytest.raises(ValueError, match=r"IMPHead: unknown loss_weights keys \['loss_relation'\]; "
                                         r"known: \['object', 'relation'\]"):
        build('imp', 'sgcls', loss_weights={'loss_relation': 2.0})
    with pytest.raises(ValueError, match='unknown loss_weights keys'):
        build('motifs', 'sgcls', loss_weights={'vctree_binary': 1.0})


# ---------------------------------------------------------------------------------------------
# head-specific behaviour


def test_motifs_orders_objects_right_to_left(batch, feats):
    head = build('motifs', 'predcls')
    x = head.build_inputs(feats, objects_for('predcls', batch), [torch.tensor([[0, 1]])] * 2, False)
    centres = [((b[:, 0] + b[:, 2]) / 2).tolist() for b in x.boxes]
    orders = left_right_orders(x)
    assert [o.tolist() for o in orders] == [
        sorted(range(4), key=lambda i: -centres[0][i]),
        [4 + i for i in sorted(range(3), key=lambda i: -centres[1][i])]]


def test_motifs_sgdet_teacher_forces_the_segmenter_labels(batch, feats):
    head = build('motifs', 'sgdet')
    objects = objects_for('sgdet', batch)
    pairs = [inference_pairs(len(o)) for o in objects]
    head.train()
    _, out = head(feats, objects, pairs)
    known = torch.cat([o.labels for o in objects])
    targets = torch.cat([o.targets for o in objects])
    assert not torch.equal(known, targets)  # relabelled and extra boxes
    assert torch.equal(out.obj_labels, known)
    head.eval()
    _, out = head(feats, objects, pairs)
    assert torch.equal(out.obj_labels, out.obj_logits[:, :5].argmax(1))  # greedy decoding


def test_vctree_pair_logits_per_image(batch, feats):
    head = build('vctree', 'predcls')
    objects = objects_for('predcls', batch)
    _, out = head(feats, objects, [inference_pairs(len(o)) for o in objects])
    assert [tuple(m.shape) for m in out.pair_logits] == [(4, 4), (3, 3)]


def test_gpsnet_attention_by_hand():
    head = build('gpsnet', 'predcls')
    mp = head.message_passing
    with torch.no_grad():
        for layer in (mp.ws, mp.wo, mp.wu):
            layer.weight.zero_()
            layer.bias.fill_(1.0)
        mp.w.weight.fill_(1.0 / 16)
        mp.w.bias.zero_()  # every given pair: a = 16 * (1 * 1 * 1) / 16 = 1
    att = mp.attention(torch.randn(3, 16), torch.randn(1, 16), torch.tensor([[0, 1]]))
    s1, s0 = torch.sigmoid(torch.tensor(1.0)), torch.tensor(0.5)  # pairs not given: sigmoid(0)
    expected = torch.tensor([[0, s1, s0], [s0, 0, s0], [s0, s0, 0]])
    expected = expected / expected.sum(1, keepdim=True)
    assert torch.allclose(att, expected)


def test_imp_single_object_image(batch, feats):
    head = build('imp', 'sgcls')
    head.eval()
    s = batch.samples[0]
    lone = [ObjectSet(boxes=s.boxes[:1], img_shape=tuple(s.meta.img_shape))]
    result = head.predict([f[:1] for f in feats], lone)[0]
    assert result.pairs.tolist() == [[0, 0]]  # the placeholder pair keeps the image evaluated
    assert result.labels.shape == result.scores.shape == (1,) and 0 < float(result.scores) < 1
