"""Write a Markdown report of one evaluated model: the metrics of both protocols and its drawings.

    python tools/make_report.py --eval work_dirs/demo/eval_20260101_120000.json \
        --pictures work_dirs/demo/graphs --out work_dirs/demo/REPORT.md

``--eval`` is a file written by ``tools/test.py --eval ... --work-dir DIR``; ``--pictures`` is a
folder of PNGs (e.g. written by ``tools/demo.py``), linked relative to the report.
"""
from __future__ import annotations

import argparse
import glob
import os
import sys
from typing import Any

from openpsg import cli
from openpsg.fileio import atomic_write
from openpsg.safe_json import JSONFileError, load_json

PROTOCOLS = ('openpsg', 'fair')
ROWS = ('R', 'mR', 'ngR', 'ng-mR')
PANOPTIC = ('PQ', 'SQ', 'RQ', 'PQ_th', 'PQ_st')


def _fmt(value: Any) -> str:
    return '–' if value is None else f'{value:.2f}'


def scene_graph_table(metrics: dict[str, float], mode: str, ks: list[int]) -> list[str]:
    """Markdown rows: one line per metric@K, one column per protocol."""
    lines = [f'| {mode} | ' + ' | '.join(f'`{p}`' for p in PROTOCOLS) + ' |',
             '|---|' + '---|' * len(PROTOCOLS)]
    for row in ROWS:
        for k in ks:
            values = [metrics.get(f'{mode}/{p}/{row}@{k}') for p in PROTOCOLS]
            if any(v is not None for v in values):
                lines.append(f'| {row}@{k} | ' + ' | '.join(_fmt(v) for v in values) + ' |')
    return lines


def report_text(scores: dict[str, Any], pictures: list[str], report_dir: str) -> str:
    """The whole report as Markdown; picture paths are made relative to ``report_dir``."""
    metrics: dict[str, float] = scores['metric']
    modes = sorted({key.split('/')[0] for key in metrics if key.count('/') == 2})
    ks = sorted({int(key.rsplit('@', 1)[1]) for key in metrics if '@' in key and
                 key.rsplit('@', 1)[1].isdigit()})
    lines = ['# openpsg report', '',
             f'- config: `{scores.get("config", "?")}`',
             f'- checkpoint: `{scores.get("checkpoint", "?")}`', '',
             'Scene-graph recall in percent under the `openpsg` protocol (the one published '
             'tables use) and the corrected SingleMPO `fair` protocol; see the README for how '
             'they differ.', '']
    for mode in modes:
        lines += scene_graph_table(metrics, mode, ks) + ['']
    if any(key in metrics for key in PANOPTIC):
        lines += ['| panoptic | ' + ' | '.join(PANOPTIC) + ' |', '|---|' + '---|' * len(PANOPTIC),
                  '| all | ' + ' | '.join(_fmt(metrics.get(k)) for k in PANOPTIC) + ' |', '']
    if pictures:
        lines += ['## Pictures', '']
        for path in pictures:
            rel = os.path.relpath(path, report_dir)
            lines.append(f'![{os.path.basename(path)}]({rel})')
        lines.append('')
    return '\n'.join(lines)


@cli.tool('make_report.py')
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--eval', required=True, help='eval_*.json written by tools/test.py')
    parser.add_argument('--pictures', help='folder of PNG drawings to show')
    parser.add_argument('--out', required=True, help='the Markdown file to write')
    cli.add_debug_argument(parser)
    args = parser.parse_args(argv)
    try:
        scores = load_json(args.eval)
    except JSONFileError as err:
        print(f'make_report.py: error: {err}', file=sys.stderr)
        return 1
    if not isinstance(scores, dict) or not isinstance(scores.get('metric'), dict) or not all(
            value is None or type(value) in (int, float) for value in scores['metric'].values()):
        print(f'make_report.py: error: {args.eval}: expected a JSON object with a "metric" object '
              'of numbers, as tools/test.py writes', file=sys.stderr)
        return 1
    pictures = sorted(glob.glob(os.path.join(args.pictures, '*.png'))) if args.pictures else []
    report_dir = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(report_dir, exist_ok=True)
    text = report_text(scores, [os.path.abspath(p) for p in pictures], report_dir)
    with atomic_write(args.out, 'w') as f:
        f.write(text)
    print(f'report written to {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
