"""Grade a PSG challenge submission (``relation.json`` + ``panseg/*.png``) against the test split.

    python tools/grade.py submission --ann-file data/psg/psg.json --data-root data/coco --out scores
    python tools/grade.py submission --ann-file data/psg/psg.json --data-root data/coco \\
        --out scores --max-rels 0 --protocol both --dedup first --workers 4

The test split = images of ``test_image_ids`` with at least one relation, in file order; the
submission has one entry per test image. ``scores.txt`` / ``scores.json`` of an earlier run in
``--out`` are removed before anything else, so a run that fails in any way leaves no score. A
malformed submission: every problem is printed (entry index, image_id, field), the exit status is
1 and no score file is written. Otherwise ``--out`` receives ``scores.txt`` (OpenPSG's three
lines: ``Recall R 20`` and ``MeanRecall R 20`` as fractions, ``PQ`` in percent) and
``scores.json`` (every metric in percent), both or neither. Exit status 2: unusable annotation
file or data, an ``--out`` that is not a folder, score files that cannot be written, or a wrong
command line; other errors as in :mod:`openpsg.cli`.

Only files inside the submission folder are read (symlinks resolved), and only files inside
``--data-root`` unless ``--allow-outside-data-root``.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

from openpsg import cli
from openpsg.datasets import DatasetError, PSGDataset
from openpsg.evaluation.matching import EvaluationError
from openpsg.evaluation.submission import (SCORE_FILES, SubmissionError, grade_submission,
                                           remove_scores, write_scores)
from openpsg.parallel import WORKERS_HELP, workers_arg

PROTOCOLS = {'openpsg': ('openpsg',), 'fair': ('fair',), 'both': ('openpsg', 'fair')}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('submission', help='folder with relation.json and panseg/')
    parser.add_argument('--ann-file', required=True, help='annotation file, e.g. data/psg/psg.json')
    parser.add_argument('--data-root', required=True,
                        help='folder that pan_seg_file_name is relative to, e.g. data/coco')
    parser.add_argument('--allow-outside-data-root', action='store_true',
                        help='read annotation file names that are absolute or lead out of '
                        '--data-root (refused by default)')
    parser.add_argument('--out', required=True, help='folder receiving scores.txt and scores.json')
    parser.add_argument('--max-rels', type=int, default=20,
                        help='relations scored per image, first ones first (0: all; default 20)')
    parser.add_argument('--protocol', choices=tuple(PROTOCOLS), default='both',
                        help='scene-graph protocol(s); scores.txt uses openpsg unless only fair')
    parser.add_argument('--dedup', choices=('first', 'max', 'ng', 'fail', 'none'), default='first',
                        help='fair protocol: rows repeating a (subject, object) pair')
    parser.add_argument('--workers', type=workers_arg, default=None, help=WORKERS_HELP)
    cli.add_debug_argument(parser)
    args = parser.parse_args(argv)
    if args.max_rels < 0:
        parser.error(f'--max-rels must be 0 (all) or positive, got {args.max_rels}')
    return args


@cli.tool('grade.py')
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    if os.path.lexists(args.out) and not os.path.isdir(args.out):
        print(f'cannot grade: --out {args.out} exists and is not a folder', file=sys.stderr)
        return 2
    for path in remove_scores(args.out):
        print(f'removed stale {path}', file=sys.stderr)
    try:
        dataset = PSGDataset(args.ann_file, args.data_root, split='test',
                             allow_outside_root=args.allow_outside_data_root)
        scores = grade_submission(args.submission, dataset, args.max_rels, PROTOCOLS[args.protocol],
                                  args.dedup, args.workers, logging.getLogger('grade'))
    except SubmissionError as err:
        print(f'{args.submission}: {len(err.problems)} problem(s), not graded:', file=sys.stderr)
        for line in err.problems:
            print(f'  {line}', file=sys.stderr)
        return 1
    except EvaluationError as err:  # e.g. repeated pairs with --dedup fail
        print(f'{args.submission}: not graded: {err}', file=sys.stderr)
        return 1
    except DatasetError as err:
        print(f'cannot grade: {err}', file=sys.stderr)
        return 2
    try:
        write_scores(scores, args.out)
    except OSError as err:  # e.g. a full disk: neither score file is left
        print(f'{args.submission}: graded, but the scores could not be written: {err}',
              file=sys.stderr)
        return 2
    print(f'scores written to {os.path.join(args.out, SCORE_FILES[0])} and {SCORE_FILES[1]}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
