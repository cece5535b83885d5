"""Deterministic, well-separated colours for classes and instances.

Colours come from one fixed sequence built by farthest-point sampling over an RGB grid (very dark
and very light colours left out so that white text and outlines stay readable): every prefix of
the sequence is spread out, so the first ``n`` colours are well apart for any ``n``.
The sequence has :data:`PALETTE_SIZE` colours and repeats after that.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

PALETTE_SIZE = 256
_FIRST_COLOR = (220, 20, 60)  # crimson, for class 0 ("person")


@lru_cache(maxsize=1)
def _sequence() -> np.ndarray:
    levels = np.arange(0, 256, 17, dtype=np.float64)
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing='ij'), -1).reshape(-1, 3)
    luma = grid @ np.array([0.299, 0.587, 0.114])
    cand = grid[(luma > 50) & (luma < 220)]
    first = int(((cand - np.array(_FIRST_COLOR)) ** 2).sum(1).argmin())
    order = [first]
    dist = ((cand - cand[first]) ** 2).sum(1)
    for _ in range(PALETTE_SIZE - 1):
        nxt = int(dist.argmax())
        order.append(nxt)
        dist = np.minimum(dist, ((cand - cand[nxt]) ** 2).sum(1))
    out = cand[order].astype(np.uint8)
    out.setflags(write=False)
    return out


def class_colors(labels: np.ndarray) -> np.ndarray:
    """``(N, 3)`` uint8 colour of each class id in ``labels (N,)`` (always the same per class)."""
    return _sequence()[np.asarray(labels, dtype=np.int64) % PALETTE_SIZE]


def instance_colors(n: int) -> np.ndarray:
    """``(n, 3)`` uint8 colours for ``n`` instances: the first ``n`` of the sequence (cycling)."""
    return _sequence()[np.arange(n) % PALETTE_SIZE]
