"""The frequency bias of EGTR (after Neural Motifs): per (subject class, object class) a fixed
vector of predicate log-frequencies from the training set, added to the predicate logits.

From training counts ``n (C, C, P)`` of (subject class, object class, predicate) and
``eps = 1e-12``:

* default, log-probabilities: ``log((n + eps) / (sum_p n + P eps))`` - every row a distribution:
  a class pair never seen in training (and the "no object" row) gets the uniform ``-log(P)``, a
  predicate never seen with a seen pair about ``ln(eps) - ln(sum_p n)``;
* ``log_count_quirk=True``, EGTR's table: ``log(n + eps / (sum_p n + eps))`` - the division binds
  only ``eps``, so the table holds log raw counts: a class pair never seen gets 0 for every
  predicate, above every seen pair's rare predicates, and a predicate never seen with a seen pair
  about ``ln(eps) - ln(sum_p n)``.

Either way, triplets never seen in training with a seen class pair are effectively never
predicted.
"""
from __future__ import annotations

import numpy as np
import torch


def log_frequency_table(counts: np.ndarray, log_count_quirk: bool = False,
                        eps: float = 1e-12) -> torch.Tensor:
    """``(C, C, P)`` float32 frequency bias from ``counts (C, C, P)`` (module docstring)."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum(-1, keepdims=True)
    if log_count_quirk:
        table = np.log(counts + eps / (total + eps))
    else:
        table = np.log((counts + eps) / (total + counts.shape[-1] * eps))
    return torch.from_numpy(table.astype(np.float32))


def predicate_distribution(counts: np.ndarray, eps: float = 1e-12) -> torch.Tensor:
    """``(P,)`` float32 share of each predicate among all training relations (EGTR's
    ``rel_dist``, used by the optional post-hoc logit adjustment)."""
    counts = np.asarray(counts, dtype=np.float64)
    per_predicate = counts.reshape(-1, counts.shape[-1]).sum(0)
    return torch.from_numpy((per_predicate / (per_predicate.sum() + eps)).astype(np.float32))
