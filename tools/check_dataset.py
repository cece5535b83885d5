"""Check a PSG-schema annotation file and every image/PNG it names; print statistics.

    python tools/check_dataset.py data/psg/psg.json --data-root data/coco
    python tools/check_dataset.py data/psg/psg.json --data-root data/coco --split test --workers 8
    python tools/check_dataset.py data/vg/data_openpsg.json --data-root data/vg/VG_100K --no-masks

Lists every problem found (file, image_id, field) and exits with status 1 if there is any, 0 if not
(other errors as in :mod:`openpsg.cli`). A file name that is absolute or leads out of
``--data-root`` (``..``, a symlink pointing out) is a problem and is not opened, unless
``--allow-outside-data-root``.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

from openpsg import cli
from openpsg.datasets import check_dataset
from openpsg.parallel import WORKERS_HELP, workers_arg


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('ann_file', help='annotation file, e.g. data/psg/psg.json')
    parser.add_argument('--data-root', required=True,
                        help='folder that file_name / pan_seg_file_name are relative to, e.g. data/coco')
    parser.add_argument('--allow-outside-data-root', action='store_true',
                        help='accept file names that are absolute or lead out of --data-root')
    parser.add_argument('--split', choices=('all', 'train', 'test'), default='all',
                        help='images to check (membership in test_image_ids)')
    parser.add_argument('--no-images', action='store_true',
                        help='check the JSON only, do not open images and PNGs')
    parser.add_argument('--no-masks', action='store_true',
                        help='box-only file (Visual Genome): no segments_info / panoptic PNGs')
    parser.add_argument('--workers', type=workers_arg, default=None, help=WORKERS_HELP)
    cli.add_debug_argument(parser)
    return parser.parse_args(argv)


def _spread(summary: dict[str, float]) -> str:
    return f'{summary["mean"]:.2f} [{summary["min"]}, {summary["max"]}]'


def format_stats(stats: dict[str, dict[str, Any]]) -> str:
    """Per-split table of images/objects/relations and the predicate histogram, most frequent first."""
    lines = [f'{"split":<6} {"images":>7} {"no rels":>8} {"objects/img mean [min, max]":>28} '
             f'{"relations/img mean [min, max]":>30} {"dup rels":>8}']
    for name, s in stats.items():
        objects, relations = _spread(s['objects']), _spread(s['relations'])
        lines.append(f'{name:<6} {s["images"]:>7} {s["images_without_relations"]:>8} '
                     f'{objects:>28} {relations:>30} {s["duplicate_relations"]:>8}')
    totals: dict[str, int] = {}
    for s in stats.values():
        for predicate, count in s['predicates'].items():
            totals[predicate] = totals.get(predicate, 0) + count
    if totals:
        lines += ['', f'predicate histogram ({" + ".join(stats)}):', f'{"count":>8}  predicate']
        for predicate, count in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f'{count:>8}  {predicate}')
    return '\n'.join(lines)


@cli.tool('check_dataset.py')
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = check_dataset(args.ann_file, args.data_root, split=args.split,
                           check_files=not args.no_images, with_masks=not args.no_masks,
                           workers=args.workers,
                           allow_outside_root=args.allow_outside_data_root)
    if report.stats:
        print(format_stats(report.stats))
    if report.notes:
        print(f'\n{len(report.notes)} note(s):')
        print('\n'.join(f'  {n}' for n in report.notes))
    if report.problems:
        print(f'\n{len(report.problems)} problem(s) found:')
        print('\n'.join(f'  {p}' for p in report.problems))
        return 1
    print(f'\nno problems found in {args.ann_file}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
