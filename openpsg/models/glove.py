"""GloVe word vectors for class-name embeddings.

A GloVe text file has one word per line followed by its ``dim`` floats, separated by spaces
(``data/glove/glove.6B.200d.txt`` from https://nlp.stanford.edu/projects/glove/). Only the
words that are asked for are parsed, so reading the 400k-word file costs one pass over its lines.

Class names are turned into vectors by :func:`class_name_vectors`: a name is split into words at
spaces and hyphens, the COCO-panoptic suffixes ``merged``, ``other`` and ``stuff`` are dropped
(``sky-other-merged`` -> ``sky``, ``floor-wood`` -> ``floor``, ``wood``), and the vectors of the
words found are averaged. A name with no known word gets a random ``N(0, 1)`` vector drawn from a
generator with a fixed seed, so the same names always get the same vectors.
"""
from __future__ import annotations

import functools
import logging
import os
import re
from typing import Iterable, Sequence

import torch

logger = logging.getLogger('openpsg')

PANOPTIC_SUFFIXES = frozenset({'merged', 'other', 'stuff'})


def name_words(name: str) -> list[str]:
    """Lower-case words of a class name; COCO-panoptic suffixes are dropped unless nothing else
    is left."""
    words = [w for w in re.split(r'[\s\-]+', name.lower()) if w]
    kept = [w for w in words if w not in PANOPTIC_SUFFIXES]
    return kept or words


def resolve_glove_path(path: str | os.PathLike) -> str | None:
    """``path`` itself or ``path + '.txt'`` (OpenPSG names the file without extension), whichever
    exists; ``None`` when neither does."""
    path = str(path)
    for candidate in (path, path + '.txt'):
        if os.path.isfile(candidate):
            return candidate
    return None


def read_glove(path: str | os.PathLike, words: Iterable[str], dim: int) -> dict[str, torch.Tensor]:
    """Vectors ``(dim,)`` float32 of those ``words`` that the GloVe text file ``path`` holds.

    Raises ``ValueError`` naming the file and line when a wanted word's line does not hold exactly
    ``dim`` numbers.
    """
    wanted = set(words)
    found: dict[str, torch.Tensor] = {}
    with open(path, encoding='utf8', errors='replace') as f:
        for line_no, line in enumerate(f, 1):
            word, _, rest = line.rstrip('\n').partition(' ')
            if word not in wanted or word in found:
                continue
            try:
                values = [float(v) for v in rest.split()]
            except ValueError as err:
                raise ValueError(f'{path}: line {line_no} (word {word!r}): not a list of numbers '
                                 f'({err})') from None
            if len(values) != dim:
                raise ValueError(f'{path}: line {line_no} (word {word!r}) has {len(values)} '
                                 f'numbers, expected {dim}')
            found[word] = torch.tensor(values, dtype=torch.float32, device='cpu')
            if len(found) == len(wanted):
                break
    return found


def class_name_vectors(names: Sequence[str], dim: int, glove_file: str | os.PathLike | None,
                       seed: int = 0) -> torch.Tensor:
    """``(len(names), dim)`` float32 embedding of each class name (see the module docstring).

    Without a GloVe file (``None``, or a path that does not exist: then a warning is logged) every
    name gets a random vector from the fixed seed. Results are cached per process, so a model
    with several embeddings of the same names reads the file once.
    """
    path = None if glove_file is None else str(glove_file)
    return _cached_vectors(tuple(names), dim, path, seed).clone()


@functools.lru_cache(maxsize=8)
def _cached_vectors(names: tuple[str, ...], dim: int, glove_file: str | None,
                    seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    random = torch.randn(len(names), dim, generator=generator, device='cpu')
    if glove_file is None:
        logger.info('no GloVe file configured: class-name embeddings start from random vectors')
        return random
    path = resolve_glove_path(glove_file)
    if path is None:
        logger.warning('GloVe file %s not found: class-name embeddings start from random vectors '
                       '(download glove.6B.200d.txt into data/glove/ for the published setting)',
                       glove_file)
        return random
    words = [name_words(n) for n in names]
    table = read_glove(path, {w for ws in words for w in ws}, dim)
    out = random.clone()
    for i, ws in enumerate(words):
        known = [table[w] for w in ws if w in table]
        if known:
            out[i] = torch.stack(known).mean(0)
    missing = [n for n, ws in zip(names, words) if not any(w in table for w in ws)]
    if missing:
        logger.info('GloVe %s: %d class name(s) without a known word get random vectors: %s',
                    path, len(missing), ', '.join(missing))
    return out
