"""Mask helpers: panoptic PNG ids, id maps, RLE and vectorised mask IoU.

Shapes: a dense mask stack is ``(N, H, W)`` bool; an *id map* is ``(H, W)`` int32 where pixel
value ``i >= 0`` means "segment ``i``" and ``-1`` means void/unlabelled; an RLE is a pycocotools
dict ``{'size': [H, W], 'counts': str}`` (``counts`` decoded to ``str`` so it is JSON-ready).
Nothing here loops over pixels in Python.
"""
from __future__ import annotations

import mmap
from typing import Sequence

import numpy as np
import pycocotools.mask as mask_utils

VOID = -1
#: Number of ids a panoptic PNG can hold (24 bits: R + 256 G + 256^2 B).
PANOPTIC_IDS = 1 << 24


def rgb2id(rgb: np.ndarray) -> np.ndarray:
    """Panoptic PNG colour ``(H, W, 3)`` uint8 -> segment id ``(H, W)`` int64 (R + 256 G + 256^2 B)."""
    rgb = rgb.astype(np.uint32)
    return (rgb[..., 0] + (rgb[..., 1] << 8) + (rgb[..., 2] << 16)).astype(np.int64)


def id2rgb(ids: np.ndarray) -> np.ndarray:
    """Segment id ``(H, W)`` -> panoptic PNG colour ``(H, W, 3)`` uint8; inverse of :func:`rgb2id`."""
    ids = np.asarray(ids, dtype=np.int64)
    return np.stack([ids % 256, ids // 256 % 256, ids // 65536 % 256], axis=-1).astype(np.uint8)


def segment_ids_to_id_map(pan_ids: np.ndarray, segment_ids: Sequence[int]) -> np.ndarray:
    """Map raw panoptic ids ``(H, W)`` to segment indices: pixel -> position of its id in ``segment_ids``.

    Pixels whose id is not listed (e.g. 0 = unlabelled) become :data:`VOID`; an id listed twice
    maps to its first position. Ids of panoptic PNGs (24 bits) are looked up in a table indexed
    by the id (only the memory pages of the ids present are ever touched), others by a binary
    search.
    """
    segment_ids = np.asarray(segment_ids, dtype=np.int64).reshape(-1)
    if len(segment_ids) == 0:
        return np.full(pan_ids.shape, VOID, dtype=np.int32)
    listed, first = np.unique(segment_ids, return_index=True)
    if (pan_ids.size and listed[0] >= 0 and listed[-1] < PANOPTIC_IDS
            and pan_ids.min() >= 0 and pan_ids.max() < PANOPTIC_IDS):
        # an anonymous mapping is zero-filled page by page as it is touched (a numpy array this
        # large would be backed by huge pages, each zeroed in full on first touch)
        with mmap.mmap(-1, PANOPTIC_IDS * 4) as memory:
            table = np.frombuffer(memory, dtype=np.int32)
            table[listed] = first + 1
            id_map = table[pan_ids.astype(np.intp, copy=False)]
            del table
        id_map -= 1
        return id_map
    id_map = np.full(pan_ids.shape, VOID, dtype=np.int32)
    pos = np.clip(np.searchsorted(listed, pan_ids), 0, len(listed) - 1)
    found = listed[pos] == pan_ids
    id_map[found] = first[pos[found]]
    return id_map


def id_map_to_masks(id_map: np.ndarray, num_segments: int) -> np.ndarray:
    """``(H, W)`` id map -> ``(num_segments, H, W)`` bool masks (void pixels belong to none)."""
    return id_map[None] == np.arange(num_segments, dtype=id_map.dtype)[:, None, None]


def masks_to_id_map(masks: np.ndarray) -> np.ndarray:
    """``(N, H, W)`` bool masks -> ``(H, W)`` id map; on overlap the lowest index wins, uncovered = void."""
    masks = np.asarray(masks, dtype=bool)
    n = masks.shape[0]
    if n == 0:
        return np.full(masks.shape[1:], VOID, dtype=np.int32)
    # mask i scores n - i where set, so the per-pixel max picks the lowest covering index
    dtype = np.uint8 if n < 256 else np.uint16 if n < 65536 else np.int64
    code = (masks.view(np.uint8) * np.arange(n, 0, -1, dtype=dtype)[:, None, None]).max(0)
    return np.where(code > 0, n - code.astype(np.int32), VOID).astype(np.int32)


def masks_to_boxes(masks: np.ndarray) -> np.ndarray:
    """``(N, H, W)`` bool -> ``(N, 4)`` float32 tight xyxy boxes (x2, y2 exclusive); empty mask -> zeros."""
    masks = np.asarray(masks, dtype=bool)
    n = masks.shape[0]
    boxes = np.zeros((n, 4), dtype=np.float32)
    if n == 0:
        return boxes
    rows = masks.any(2)
    cols = masks.any(1)
    nonempty = rows.any(1)
    h, w = masks.shape[1:]
    y1 = rows.argmax(1)
    y2 = h - rows[:, ::-1].argmax(1)
    x1 = cols.argmax(1)
    x2 = w - cols[:, ::-1].argmax(1)
    boxes[:] = np.stack([x1, y1, x2, y2], 1)
    boxes[~nonempty] = 0
    return boxes


def encode_rle(masks: np.ndarray) -> list[dict]:
    """``(N, H, W)`` bool masks -> list of JSON-ready RLE dicts (``counts`` as ``str``)."""
    masks = np.asarray(masks, dtype=np.uint8)
    if masks.shape[0] == 0:
        return []
    rles = mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0)))
    for rle in rles:
        rle['counts'] = rle['counts'].decode('ascii')
    return rles


def _column_runs(id_map: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs of equal values of an ``(H, W)`` id map in column-major order: ``starts (R,)``,
    ``ends (R,)`` (exclusive) pixel numbers and ``values (R,)``, each segment's runs in order
    after a stable sort by value."""
    flat = id_map.T.ravel()
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [flat.size]])
    values = flat[starts]
    order = np.argsort(values, kind='stable')
    return starts[order], ends[order], values[order]


def id_map_segments(id_map: np.ndarray, num_segments: int) -> tuple[list[dict], np.ndarray]:
    """``(H, W)`` id map -> the RLE masks and ``(num_segments, 4)`` float32 tight xyxy boxes of
    its segments, equal to ``encode_rle(masks)`` and ``masks_to_boxes(masks)`` of
    ``masks = id_map_to_masks(id_map, num_segments)`` (an absent segment: an empty mask, a zero
    box), made from the map's column-major runs without drawing a mask."""
    height, width = id_map.shape
    starts, ends, values = _column_runs(id_map)
    bounds = np.searchsorted(values, np.arange(num_segments + 1))
    uncompressed = []
    for s in range(num_segments):
        first, last = starts[bounds[s]:bounds[s + 1]], ends[bounds[s]:bounds[s + 1]]
        edges = np.concatenate([[0], np.stack([first, last], 1).ravel(), [height * width]])
        counts = np.diff(edges)  # zeros first, then ones, zeros, ...; no empty count at the end
        uncompressed.append({'size': [height, width],
                             'counts': counts[:-1 if counts[-1] == 0 else None].tolist()})
    rles = mask_utils.frPyObjects(uncompressed, height, width) if uncompressed else []
    for rle in rles:
        rle['counts'] = rle['counts'].decode('ascii')
    return rles, _run_boxes(starts, ends, values, height, num_segments)


def _run_boxes(starts: np.ndarray, ends: np.ndarray, values: np.ndarray, height: int,
               num_segments: int) -> np.ndarray:
    """Tight boxes of the segments ``0 .. num_segments - 1`` from their column-major runs
    (sorted by value)."""
    boxes = np.zeros((num_segments, 4), dtype=np.float32)
    keep = (values >= 0) & (values < num_segments)
    starts, ends, values = starts[keep], ends[keep] - 1, values[keep]
    if len(values) == 0:
        return boxes
    col0, row0 = np.divmod(starts, height)
    col1, row1 = np.divmod(ends, height)
    one_column = col0 == col1  # a run over several columns covers rows 0 and H - 1
    y1 = np.where(one_column, row0, 0)
    y2 = np.where(one_column, row1 + 1, height)
    segment_starts = np.flatnonzero(np.concatenate([[True], values[1:] != values[:-1]]))
    present = values[segment_starts]
    boxes[present] = np.stack([np.minimum.reduceat(col0, segment_starts),
                               np.minimum.reduceat(y1, segment_starts),
                               np.maximum.reduceat(col1, segment_starts) + 1,
                               np.maximum.reduceat(y2, segment_starts)], 1)
    return boxes


def decode_rle(rles: Sequence[dict], shape: tuple[int, int] | None = None) -> np.ndarray:
    """List of RLE dicts -> ``(N, H, W)`` bool masks. ``shape`` is needed only when the list is empty."""
    if len(rles) == 0:
        if shape is None:
            raise ValueError('decode_rle needs `shape` for an empty list of RLEs')
        return np.zeros((0, *shape), dtype=bool)
    rles = [{'size': r['size'], 'counts': r['counts'].encode('ascii') if isinstance(r['counts'], str)
             else r['counts']} for r in rles]
    return mask_utils.decode(rles).transpose(2, 0, 1).astype(bool)


def rle_runs(rles: Sequence[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The foreground runs of ``N`` RLE masks, read from their compressed counts without drawing
    a pixel -> ``starts (R,)``, ``lengths (R,)``, ``owner (R,)`` int64: run ``r`` covers pixels
    ``starts[r] .. starts[r] + lengths[r] - 1`` of mask ``owner[r]``, pixels numbered in
    column-major order (as RLE counts them); runs of each mask in order, masks in order, empty
    runs left out.

    Decodes pycocotools' string format (counts as ``str`` or ``bytes``: 5-bit groups with a
    continuation bit, counts after the second stored as the difference to the count two before)
    for all masks at once. Raises ``ValueError`` if a mask's counts do not add up to its size.
    """
    if len(rles) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    strings = [r['counts'].encode('ascii') if isinstance(r['counts'], str) else bytes(r['counts'])
               for r in rles]
    sizes = np.array([int(np.prod(r['size'])) for r in rles], dtype=np.int64)
    if not all(strings):
        raise ValueError('an RLE has empty counts (a damaged RLE)')
    chars = np.frombuffer(b''.join(strings), dtype=np.uint8).astype(np.int64) - 48
    last = (chars & 0x20) == 0                       # the last 5-bit group of a count
    ends = np.flatnonzero(last)
    firsts = np.concatenate([[0], ends[:-1] + 1])
    group = np.arange(len(chars)) - firsts[np.cumsum(last) - last]
    values = np.add.reduceat((chars & 0x1f) << (5 * group), firsts)
    negative = (chars[ends] & 0x10) != 0
    values = np.where(negative, values - (np.int64(1) << (5 * (ends - firsts + 1))), values)
    owner = np.searchsorted(np.cumsum([len(s) for s in strings]), ends, side='right')
    first_of_mask = np.searchsorted(owner, np.arange(len(rles)))
    place = np.arange(len(values)) - first_of_mask[owner]
    counts = values.copy()
    for parity, start in ((1, 1), (0, 2)):          # count i >= 3 adds count i - 2
        chain = (place % 2 == parity) & (place >= start)
        running = np.cumsum(np.where(chain, values, 0))
        before = np.concatenate([[0], running])[first_of_mask[owner]]
        counts[chain] = (running - before)[chain]
    bounds = np.cumsum(counts)
    mask_start = np.concatenate([[0], bounds])[first_of_mask[owner]]
    totals = np.bincount(owner, weights=counts, minlength=len(rles)).astype(np.int64)
    if (counts < 0).any() or not np.array_equal(totals, sizes):
        raise ValueError('RLE counts do not add up to the mask size (a damaged RLE)')
    ends_at = bounds - mask_start
    foreground = (place % 2 == 1) & (counts > 0)
    return ((ends_at - counts)[foreground], counts[foreground], owner[foreground])


def mask_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of dense masks ``a (N, H, W)`` and ``b (M, H, W)`` -> ``(N, M)`` float64.

    Intersections come from one matrix product over flattened masks; ``0/0`` (two empty masks) is 0.
    """
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(f'mask_iou: mask sizes differ, {a.shape[1:]} vs {b.shape[1:]}')
    pixels = int(np.prod(a.shape[1:]))
    fa = np.asarray(a, dtype=bool).reshape(a.shape[0], pixels).astype(np.float32)
    fb = np.asarray(b, dtype=bool).reshape(b.shape[0], pixels).astype(np.float32)
    inter = (fa @ fb.T).astype(np.float64)
    union = fa.sum(1)[:, None].astype(np.float64) + fb.sum(1)[None, :] - inter
    with np.errstate(divide='ignore', invalid='ignore'):
        iou = np.where(union > 0, inter / union, 0.0)
    return iou


def id_map_iou(pred: np.ndarray, gt: np.ndarray, num_pred: int, num_gt: int) -> np.ndarray:
    """IoU between the segments of two id maps (same ``(H, W)``, void = -1) -> ``(num_pred, num_gt)``.

    One joint histogram over pixels (``bincount``); exactly equal to the IoU of the decoded masks.
    """
    if pred.shape != gt.shape:
        raise ValueError(f'id_map_iou: id map sizes differ, {pred.shape} vs {gt.shape}')
    if pred.max(initial=-1) >= num_pred or gt.max(initial=-1) >= num_gt:
        raise ValueError(f'id_map_iou: an id map holds a segment index >= num_pred={num_pred} '
                         f'or num_gt={num_gt}')
    p = pred.ravel().astype(np.int64) + 1  # void -> 0
    g = gt.ravel().astype(np.int64) + 1
    joint = np.bincount(p * (num_gt + 1) + g, minlength=(num_pred + 1) * (num_gt + 1))
    joint = joint.reshape(num_pred + 1, num_gt + 1).astype(np.float64)
    inter = joint[1:, 1:]
    area_p = joint[1:].sum(1)
    area_g = joint[:, 1:].sum(0)
    union = area_p[:, None] + area_g[None, :] - inter
    with np.errstate(divide='ignore', invalid='ignore'):
        return np.where(union > 0, inter / union, 0.0)
