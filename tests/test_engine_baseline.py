"""The frequency baseline on a hand-made sample: pairs, loss value, ranking, masks at original
size."""
import math

import numpy as np
import pytest
import torch

from openpsg.datasets import DatasetError
from openpsg.models.baselines import FrequencyBaseline
from openpsg.registry import MODELS
from openpsg.structures import Batch, ImageMeta, Sample


def make_sample(labels=(0, 5, 80)):
    """3 segments on a 4x6 input (padded to 5x8) of a 8x12 original image."""
    masks = torch.zeros(3, 5, 8, dtype=torch.bool)
    masks[0, 0:2, 0:3] = True
    masks[1, 2:4, 0:3] = True
    masks[2, 0:4, 3:6] = True
    masks[2, 4, :] = True  # on the padding: must be cropped away
    meta = ImageMeta('img7', ori_shape=(8, 12), img_shape=(4, 6), pad_shape=(5, 8),
                     scale_factor=(0.5, 0.5))
    return Sample(img=torch.zeros(3, 5, 8), meta=meta, labels=torch.tensor(labels),
                  boxes=torch.zeros(3, 4), masks=masks,
                  rels=torch.tensor([[0, 1, 3], [2, 0, 7]]))




def test_initial_loss_is_log_of_the_number_of_classes():
    model = MODELS.build(dict(type='FrequencyBaseline'))
    batch = Batch(torch.zeros(1, 3, 5, 8), torch.zeros(1, 5, 8, dtype=torch.bool), [make_sample()])
    loss = model(batch, mode='loss')['loss_relation']
    # zero logits: uniform over 56 predicates + no-relation for every pair
    assert loss.item() == pytest.approx(math.log(57))
    loss.backward()
    touched = (model.logits.grad.abs().sum(-1) > 0).nonzero().tolist()
    # the 2 relations and the 4 unrelated pairs of classes (0, 5, 80)
    assert sorted(touched) == sorted([[0, 5], [80, 0], [0, 80], [5, 0], [5, 80], [80, 5]])


def test_negatives_are_capped_per_image():
    model = FrequencyBaseline(neg_per_image=1)
    pairs, targets = model._training_pairs(make_sample())
    assert pairs[:2].tolist() == [[0, 1], [2, 0]] and targets[:2].tolist() == [3, 7]
    assert len(pairs) == 3 and targets[2].item() == 56
    assert pairs[2].tolist() in [[0, 2], [1, 0], [1, 2], [2, 1]]


def test_prediction_ranks_pairs_by_their_best_predicate():
    model = FrequencyBaseline()
    with torch.no_grad():
        model.logits[0, 5, 3] = 5.0  # person -> class 5: predicate 3 likely
        model.logits[80, 0, 7] = 2.0
    batch = Batch(torch.zeros(1, 3, 5, 8), torch.zeros(1, 5, 8, dtype=torch.bool), [make_sample()])
    pred, = model(batch, mode='predict')
    assert pred.image_id == 'img7'
    assert pred.pairs[:2].tolist() == [[0, 1], [2, 0]]
    assert pred.predicate_scores.shape == (6, 56)
    assert pred.predicate_scores[0].argmax() == 3 and pred.predicate_scores[1].argmax() == 7
    # p = e^5 / (e^5 + 56)
    assert pred.triplet_scores[0] == pytest.approx(math.exp(5) / (math.exp(5) + 56), rel=1e-6)
    assert np.all(np.diff(pred.triplet_scores) <= 0)
    assert np.allclose(pred.predicate_scores.sum(1) + pred.no_relation_scores, 1, atol=1e-6)
    assert pred.boxes.tolist() == [[0, 0, 6, 4], [0, 4, 6, 8], [6, 0, 12, 8]]
    assert pred.dense_masks().shape == (3, 8, 12) and pred.scores.tolist() == [1, 1, 1]


def test_prior_mode_scores_every_pair_alike():
    model = FrequencyBaseline(class_conditioned=False)
    assert tuple(model.logits.shape) == (1, 1, 57)
    with torch.no_grad():
        model.logits[0, 0, 14] = 1.0
    batch = Batch(torch.zeros(1, 3, 5, 8), torch.zeros(1, 5, 8, dtype=torch.bool), [make_sample()])
    pred, = model.predict(batch)
    assert np.all(pred.predicate_scores.argmax(1) == 14)
    assert np.allclose(pred.triplet_scores, pred.triplet_scores[0])


def test_labels_outside_the_table_are_reported():
    model = FrequencyBaseline(num_classes=10)
    batch = Batch(torch.zeros(1, 3, 5, 8), torch.zeros(1, 5, 8, dtype=torch.bool),
                  [make_sample(labels=(0, 5, 80))])
    with pytest.raises(DatasetError, match=r'image_id=img7: labels: classes \[80\] are outside '
                                           r'0\.\.9 \(the model has 10 classes\)'):
        model(batch, mode='loss')
    model = FrequencyBaseline(num_predicates=5)
    with pytest.raises(DatasetError, match=r'image_id=img7: rels: predicates \[7\] are outside '
                                           r'0\.\.4'):
        model(batch, mode='loss')
