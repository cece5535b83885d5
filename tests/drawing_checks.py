"""Reading drawings back in tests: which colour tints a region, how many lines a text panel has."""
from __future__ import annotations

import numpy as np


def tinted_share(region: np.ndarray, color: np.ndarray) -> float:
    """Share of the pixels of ``region (h, w, 3)`` that are a grey pixel tinted half-way to
    ``color`` (``draw_panoptic``'s alpha 0.5): ``pixel - color / 2`` is grey, up to rounding."""
    rest = region.astype(int) - (np.asarray(color).astype(int) + 1) // 2
    return float((rest.max(-1) - rest.min(-1) <= 2).mean())


def text_lines(panel: np.ndarray, font_size: int) -> int:
    """Lines of dark text in a ``text_panel`` (lines ``font_size + 4`` px apart from 4 px below its
    top); text anywhere below the last counted line fails."""
    step = font_size + 4
    dark = (panel.max(-1) < 100).any(1)
    n = 0
    while dark[4 + n * step:4 + n * step + font_size - 2].any():
        n += 1
    assert not dark[4 + n * step:].any(), 'text below the last line'
    return n
