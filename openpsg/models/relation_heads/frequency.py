"""The frequency bias: learned predicate logits per (subject class, object class), initialised
from training-set counts (:func:`openpsg.datasets.statistics.load_frequency_counts`)."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn


def log_frequencies(counts: np.ndarray, eps: float = 1e-3) -> np.ndarray:
    """OpenPSG's prior ``log(f / sum_p f + eps)`` with ``f = counts + eps`` (same shape)."""
    freq = counts + eps
    return np.log(freq / freq.sum(-1, keepdims=True) + eps)


class FrequencyBias(nn.Module):
    """Learned predicate logits ``(R, P + 1)`` per (subject class, object class), initialised with
    :func:`log_frequencies` of training counts ``(C, C, P + 1)``."""

    def __init__(self, counts: np.ndarray) -> None:
        super().__init__()
        c, _, p = counts.shape
        self.num_classes = c
        self.table = nn.Embedding(c * c, p)
        with torch.no_grad():
            self.table.weight.copy_(torch.from_numpy(log_frequencies(counts)).reshape(c * c, p))

    def forward(self, subj_labels: torch.Tensor, obj_labels: torch.Tensor) -> torch.Tensor:
        return self.table(subj_labels * self.num_classes + obj_labels)
