"""Evaluation benchmark: sgdet (both protocols) + PQ on a synthetic test set shaped like PSG's.

    python benchmarks/bench_eval.py                     # worker processes: one per available core
    python benchmarks/bench_eval.py --work-dir /data/bench --images 500 --workers 4

The first run writes, into ``--work-dir``, a PSG-schema ``psg.json`` with ``--images`` test images
(480x640, ~11 segments and ~6 relations each, COCO panoptic PNGs; no JPEGs, evaluation does not
read them) and ``predictions.pth``, written like ``tools/test.py --out`` writes predictions
(``Prediction.to_dict()`` with RLE masks, ``torch.save`` of plain containers): ~20 predicted
segments and 100 ranked triplets per image, derived from the ground truth with noise
(shifted masks, wrong labels, extra segments, random pairs and predicates) so the scores are
neither 0 nor 100. Later runs reuse both files.

The timed part reads everything from disk, end to end: load the predictions, then
``openpsg.evaluation.evaluate(..., metrics=('sgdet', 'PQ'), protocols=('openpsg', 'fair'))``,
which reads the ground truth one image at a time. It prints the total time, the peak resident
memory of this process and of its worker processes, the CPU time of all of them (a fair measure
on a busy machine), and the CPU time per image of each stage (ground-truth reading, pixel counts,
scene-graph scoring, PQ) measured on a subset in one process.

``make_test_set`` and ``make_predictions`` are reusable generators.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from typing import Iterator

import numpy as np
from PIL import Image

from openpsg.datasets import PSGDataset
from openpsg.engine.inference import load_predictions, save_predictions
from openpsg.evaluation import evaluate, format_results
from openpsg.evaluation.panoptic import pq_stats_counts
from openpsg.evaluation.sgg import SGGConfig, evaluate_image, prediction_geometry
from openpsg.parallel import WORKERS_HELP, available_cpus, resolve_workers, workers_arg
from openpsg.structures import (NUM_PREDICATES, NUM_THING_CLASSES, PREDICATES, Prediction,
                                encode_rle, id2rgb, id_map_to_masks, masks_to_boxes)
from openpsg.structures.labels import NUM_CLASSES, STUFF_CLASSES, THING_CLASSES

PSG_TEST_IMAGES = 2177
SETTINGS_FILE = 'settings.json'


# --------------------------------------------------------------------------- synthetic test set
def _scene(rng: np.random.Generator, height: int, width: int
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image: ``id_map (H, W)`` int32 (-1 void), ``labels (N,)``, ``iscrowd (N,)``.

    3-5 stuff bands with wavy borders, 6-9 thing ellipses/rectangles on top, a void rectangle;
    segments that end up with no pixel are removed.
    """
    yy, xx = np.mgrid[:height, :width]
    num_stuff = rng.integers(3, 6)
    stuff = rng.choice(np.arange(NUM_THING_CLASSES, NUM_CLASSES), num_stuff, replace=False)
    cuts = np.sort(rng.uniform(0.1, 0.9, num_stuff - 1)) * height
    period = rng.uniform(40, 160, num_stuff - 1)[:, None]
    phase = rng.uniform(0, 6, num_stuff - 1)[:, None]
    waves = rng.uniform(5, 30, num_stuff - 1)[:, None] * np.sin(xx[0][None] / period + phase)
    band = (yy[None] > (cuts[:, None] + waves)[:, None, :]).sum(0)
    id_map = band.astype(np.int32)
    labels = list(stuff)
    num_things = rng.integers(6, 10)
    for _ in range(num_things):
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        ry, rx = rng.uniform(15, height / 4), rng.uniform(15, width / 4)
        if rng.random() < 0.5:
            inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        else:
            inside = (np.abs(yy - cy) <= ry) & (np.abs(xx - cx) <= rx)
        id_map[inside] = len(labels)
        labels.append(rng.integers(NUM_THING_CLASSES))
    y0, x0 = rng.integers(0, height - 20), rng.integers(0, width - 20)
    id_map[y0:y0 + rng.integers(5, 40), x0:x0 + rng.integers(5, 40)] = -1
    labels = np.asarray(labels, np.int64)
    iscrowd = np.zeros(len(labels), bool)
    if rng.random() < 0.1:
        iscrowd[rng.integers(num_stuff, len(labels))] = True
    return _drop_empty(id_map, labels, iscrowd)


def _drop_empty(id_map: np.ndarray, labels: np.ndarray, *columns: np.ndarray) -> tuple:
    """Remove segments without pixels and renumber the id map; other per-segment columns follow."""
    present = np.bincount(id_map[id_map >= 0], minlength=len(labels)) > 0
    lookup = np.concatenate([[-1], np.cumsum(present) - 1]).astype(np.int32)
    return (lookup[id_map + 1], labels[present], *(c[present] for c in columns))


def _relations(rng: np.random.Generator, num_segments: int) -> list[list[int]]:
    """~6 relations: random ordered pairs, long-tailed predicates, sometimes two per pair."""
    weights = 1.0 / np.arange(1, NUM_PREDICATES + 1) ** 1.1
    predicates = rng.choice(NUM_PREDICATES, 12, p=weights / weights.sum())
    rels = []
    for p in predicates[:rng.integers(3, 10)]:
        s, o = rng.choice(num_segments, 2, replace=False)
        rels.append([int(s), int(o), int(p)])
    if rng.random() < 0.3:
        rels.append(rels[0][:2] + [int(predicates[-1])])
    return rels


def make_test_set(root: str, num_images: int = PSG_TEST_IMAGES, height: int = 480, width: int = 640,
                  seed: int = 0) -> str:
    """Write ``root/psg.json`` (all images in ``test_image_ids``) and ``root/panoptic/<id>.png``.

    Returns the annotation file path; ``root`` is also the ``data_root``.
    """
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(root, 'panoptic'), exist_ok=True)
    data = []
    for i in range(num_images):
        id_map, labels, iscrowd = _scene(rng, height, width)
        image_id = str(100000 + i)
        segment_ids = rng.choice(np.arange(1, 256 ** 3), len(labels), replace=False)
        pan = np.where(id_map >= 0, segment_ids[id_map], 0)
        png = f'panoptic/{image_id}.png'
        Image.fromarray(id2rgb(pan)).save(os.path.join(root, png), compress_level=1)
        masks = id_map_to_masks(id_map, len(labels))
        boxes = masks_to_boxes(masks).tolist()
        area = masks.reshape(len(labels), -1).sum(1)
        data.append({
            'file_name': f'images/{image_id}.jpg', 'height': height, 'width': width,
            'image_id': image_id, 'coco_image_id': image_id, 'pan_seg_file_name': png,
            'segments_info': [{'id': int(s), 'category_id': int(c), 'iscrowd': int(k),
                               'isthing': int(c < NUM_THING_CLASSES), 'area': int(a)}
                              for s, c, k, a in zip(segment_ids, labels, iscrowd, area)],
            'annotations': [{'bbox': b, 'bbox_mode': 0, 'category_id': int(c)}
                            for b, c in zip(boxes, labels)],
            'relations': _relations(rng, len(labels)),
        })
    ann_file = os.path.join(root, 'psg.json')
    with open(ann_file, 'w', encoding='utf-8') as f:
        json.dump({'data': data, 'thing_classes': list(THING_CLASSES),
                   'stuff_classes': list(STUFF_CLASSES), 'predicate_classes': list(PREDICATES),
                   'test_image_ids': [d['image_id'] for d in data]}, f)
    return ann_file


# --------------------------------------------------------------------------- noisy predictions
def _noisy_prediction(rng: np.random.Generator, image_id: str, gt_map: np.ndarray,
                      gt_labels: np.ndarray, gt_rels: np.ndarray, num_segments: int = 20,
                      num_triplets: int = 100) -> Prediction:
    """A prediction made from one image's ground truth: masks shifted by a few pixels, 15 % of the
    labels wrong, extra rectangles up to ``num_segments``, GT relations (60 % with the right
    predicate) ranked among random pairs, ``num_triplets`` rows."""
    height, width = gt_map.shape
    shift = rng.integers(-8, 9, 2)
    id_map = np.roll(gt_map, tuple(shift), axis=(0, 1)).copy()
    labels = gt_labels.copy()
    wrong = rng.random(len(labels)) < 0.15
    labels[wrong] = rng.integers(NUM_CLASSES, size=int(wrong.sum()))
    source = np.arange(len(labels))
    for _ in range(max(0, num_segments - len(labels))):
        y, x = rng.integers(0, height - 30), rng.integers(0, width - 30)
        id_map[y:y + rng.integers(10, 80), x:x + rng.integers(10, 80)] = len(labels)
        labels = np.append(labels, rng.integers(NUM_CLASSES))
        source = np.append(source, -1)
    id_map, labels, source = _drop_empty(id_map, labels, source)
    n = len(labels)
    order = rng.permutation(n)                   # predicted segments in arbitrary order
    id_map = np.concatenate([[-1], np.argsort(order)]).astype(np.int32)[id_map + 1]
    labels, source = labels[order], source[order]
    new_of_gt = {int(g): i for i, g in enumerate(source) if g >= 0}

    rows, chosen = [], []
    for s, o, p in gt_rels.tolist():
        if s in new_of_gt and o in new_of_gt:
            rows.append((new_of_gt[s], new_of_gt[o]))
            chosen.append(p if rng.random() < 0.6 else int(rng.integers(NUM_PREDICATES)))
    num_true = len(rows)
    while len(rows) < num_triplets and n > 1:
        s, o = rng.choice(n, 2, replace=False)
        rows.append((int(s), int(o)))
        chosen.append(int(rng.integers(NUM_PREDICATES)))
    r = len(rows)
    logits = rng.normal(0, 1, (r, NUM_PREDICATES)).astype(np.float32)
    logits[np.arange(r), chosen] += 3
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    triplet = probs.max(1) * rng.uniform(0.2, 1.0, r).astype(np.float32)
    triplet[:num_true] += 0.3 * rng.random(num_true)
    rank = np.argsort(-triplet, kind='stable')
    masks = id_map_to_masks(id_map, n)
    return Prediction(image_id=image_id, labels=labels,
                      scores=rng.uniform(0.5, 1, n).astype(np.float32),
                      boxes=masks_to_boxes(masks), masks=encode_rle(masks),
                      pairs=np.asarray(rows, np.int64).reshape(-1, 2)[rank],
                      predicate_scores=probs[rank].astype(np.float32),
                      triplet_scores=triplet[rank].astype(np.float32),
                      no_relation_scores=rng.uniform(0, 0.5, r).astype(np.float32))


def make_predictions(dataset: PSGDataset, out_file: str, seed: int = 0) -> None:
    """Write noisy predictions for every image of ``dataset`` with
    :func:`openpsg.engine.inference.save_predictions` (the format of ``tools/test.py --out``)."""
    rng = np.random.default_rng(seed)

    def predictions() -> Iterator[Prediction]:
        for i in range(len(dataset)):
            gt = dataset.get_gt(i)
            yield _noisy_prediction(rng, gt.image_id, gt.id_map, gt.labels, gt.rels)

    save_predictions(predictions(), out_file)


def prepare(work_dir: str, num_images: int, height: int, width: int, seed: int) -> tuple[str, str]:
    """Generate the test set and the predictions unless ``work_dir`` already holds them for these
    settings; returns ``(ann_file, predictions_file)``."""
    settings = {'images': num_images, 'height': height, 'width': width, 'seed': seed}
    settings_path = os.path.join(work_dir, SETTINGS_FILE)
    ann_file = os.path.join(work_dir, 'psg.json')
    pred_file = os.path.join(work_dir, 'predictions.pth')
    start = time.perf_counter()
    if _read_settings(settings_path) != settings or not os.path.isfile(ann_file):
        for stale in (settings_path, pred_file):
            if os.path.exists(stale):
                os.remove(stale)
        make_test_set(work_dir, num_images, height, width, seed)
        with open(settings_path, 'w', encoding='utf-8') as f:  # marks the test set complete
            json.dump(settings, f)
    if not os.path.isfile(pred_file):
        make_predictions(PSGDataset(ann_file, work_dir, split='test'), pred_file, seed + 1)
        print(f'generated the data in {work_dir} ({time.perf_counter() - start:.0f} s)')
    return ann_file, pred_file


def _read_settings(path: str) -> dict | None:
    if not os.path.isfile(path):
        return None
    with open(path, encoding='utf-8') as f:
        return json.load(f)


# --------------------------------------------------------------------------- timing
def _peak_rss_mb() -> tuple[float, float]:
    """Peak resident memory (MB) of this process and of the largest finished child process."""
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)


def stage_split(dataset: PSGDataset, predictions: list[Prediction], num_images: int
                ) -> dict[str, float]:
    """CPU milliseconds per image of each stage of the runner, in this process, first images:
    the ground truth (PNG decode, id map), the pixel counts of the predicted masks against it,
    scene-graph scoring under both protocols and PQ from the same counts."""
    cfg = SGGConfig(mode='sgdet', protocols=('openpsg', 'fair'))
    is_thing = np.arange(len(dataset.classes)) < dataset.num_things
    totals = dict.fromkeys(('read GT', 'pixel counts (masks x GT)', 'sgdet (both protocols)',
                            'PQ'), 0.0)
    for pred in predictions[:num_images]:
        t0 = time.process_time()
        gt = dataset.get_gt_by_id(pred.image_id)
        t1 = time.process_time()
        geometry = prediction_geometry(gt, pred)
        t2 = time.process_time()
        evaluate_image(gt, pred, cfg, rels_raw=gt.rels_raw, geometry=geometry)
        t3 = time.process_time()
        pq_stats_counts(geometry.resolved(), gt.labels, gt.iscrowd, pred.labels, is_thing)
        t4 = time.process_time()
        for key, dt in zip(totals, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            totals[key] += dt
    n = max(1, min(num_images, len(predictions)))
    return {key: 1000 * value / n for key, value in totals.items()}


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children."""
    return sum(getattr(resource.getrusage(who), field)
               for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
               for field in ('ru_utime', 'ru_stime'))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default='/tmp/openpsg_bench_eval',
                        help='where the synthetic data is generated once and reused')
    parser.add_argument('--images', type=int, default=PSG_TEST_IMAGES)
    parser.add_argument('--height', type=int, default=480)
    parser.add_argument('--width', type=int, default=640)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--workers', type=workers_arg, default=None, help=WORKERS_HELP)
    parser.add_argument('--split-images', type=int, default=200,
                        help='images used for the per-stage split (0: skip it)')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ann_file, pred_file = prepare(args.work_dir, args.images, args.height, args.width, args.seed)

    cpu_start = _cpu_seconds()
    start = time.perf_counter()
    predictions = load_predictions(pred_file)
    loaded = time.perf_counter()
    dataset = PSGDataset(ann_file, args.work_dir, split='test')
    opened = time.perf_counter()
    workers = resolve_workers(args.workers, len(dataset.image_ids))
    results = evaluate(predictions, dataset, metrics=('sgdet', 'PQ'), protocols=('openpsg', 'fair'),
                       workers=workers)
    done = time.perf_counter()
    cpu = _cpu_seconds() - cpu_start
    rss_self, rss_children = _peak_rss_mb()

    print(format_results(results))
    print(f'\n{len(predictions)} images, workers={workers} ({available_cpus()} available cores)')
    print(f'total            {done - start:7.1f} s wall, {cpu:.1f} s CPU (all processes), '
          f'{len(predictions) / (done - start):.0f} images/s')
    print(f'  load predictions {loaded - start:7.1f} s')
    print(f'  load psg.json    {opened - loaded:7.1f} s')
    print(f'  evaluate         {done - opened:7.1f} s  (GT read + sgdet both protocols + PQ)')
    print(f'peak RSS         {rss_self:7.0f} MB (main process), '
          f'{rss_children:.0f} MB (largest child process)')
    if args.split_images:
        split = stage_split(dataset, predictions, args.split_images)
        shown = min(args.split_images, len(predictions))
        print(f'CPU per image, one process, first {shown} images:')
        for key, ms in split.items():
            print(f'  {key:<24}{ms:7.1f} ms')
    return 0


if __name__ == '__main__':
    sys.exit(main())
