"""Object inputs of the context models: the 9-d box position encoding and its embedding, and the
class-name word embeddings (MOTIFS, VCTree, GPSNet)."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...structures import CLASSES
from ..glove import class_name_vectors

NUM_BOX_FEATS = 9
BACKGROUND_NAME = '__background__'
GLOVE_FILE = 'data/glove/glove.6B.200d.txt'


def box_position_features(boxes: torch.Tensor, img_shape: tuple[int, int]) -> torch.Tensor:
    """The 9-d position encoding ``(N, 9)`` of boxes ``(N, 4)`` xyxy in an image of ``(h, w)``:
    ``w, h, cx, cy, x1, y1, x2, y2`` divided by the image width/height, and ``w * h`` divided by
    the image area (box width = ``x2 - x1``)."""
    img_h, img_w = float(img_shape[0]), float(img_shape[1])
    x1, y1, x2, y2 = boxes.unbind(1)
    w, h = x2 - x1, y2 - y1
    return torch.stack([w / img_w, h / img_h, (x1 + 0.5 * w) / img_w, (y1 + 0.5 * h) / img_h,
                        x1 / img_w, y1 / img_h, x2 / img_w, y2 / img_h, w * h / (img_w * img_h)], 1)


class PositionEmbedding(nn.Module):
    """9-d box encoding -> Linear 9->32 -> BN -> Linear 32->out -> ReLU: ``(N, out_dim)``.

    A training batch of a single box uses the running batch-norm statistics (batch statistics of
    one sample are undefined)."""

    def __init__(self, out_dim: int = 128) -> None:
        super().__init__()
        self.fc1 = nn.Linear(NUM_BOX_FEATS, 32)
        self.bn = nn.BatchNorm1d(32)
        self.fc2 = nn.Linear(32, out_dim)

    def forward(self, box_feats: torch.Tensor) -> torch.Tensor:
        x = self.fc1(box_feats)
        use_batch = self.training and len(x) > 1
        x = F.batch_norm(x, self.bn.running_mean, self.bn.running_var, self.bn.weight, self.bn.bias,
                         use_batch, self.bn.momentum, self.bn.eps)
        return F.relu(self.fc2(x))


def class_embedding(class_names: Sequence[str] | None, num_classes: int, embed_dim: int,
                    glove_file: str | None) -> nn.Embedding:
    """Trainable ``Embedding(C + 1, embed_dim)`` initialised from the word vectors of the ``C``
    class names (``None``: the PSG classes) and, for the background row, of ``__background__``
    (see :func:`~openpsg.models.glove.class_name_vectors`)."""
    names = tuple(CLASSES if class_names is None else class_names)
    if len(names) != num_classes:
        raise ValueError(f'relation head: {len(names)} class_names for num_classes={num_classes}')
    vectors = class_name_vectors((*names, BACKGROUND_NAME), embed_dim, glove_file)
    return nn.Embedding.from_pretrained(vectors, freeze=False)


def expected_embedding(embedding: nn.Embedding, label_dists: torch.Tensor) -> torch.Tensor:
    """Expected embedding ``(K, embed_dim)`` under label distributions ``(K, C + 1)``."""
    return label_dists @ embedding.weight
