"""Write the synthetic PSG dataset: OUT/images, OUT/panoptic and OUT/psg.json.

    python tools/make_synth_psg.py --out data/psg_synth --num-train 900 --num-test 100 --seed 0

Use ``data_root = OUT`` and ``ann_file = OUT/psg.json`` in configs. The same seed and size give
the same files whatever ``--workers`` is.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys

from openpsg import cli
from openpsg.datasets.synthetic import generate_synthetic_psg


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', required=True, help='output folder (becomes the data root)')
    parser.add_argument('--num-train', type=int, required=True, help='number of training images')
    parser.add_argument('--num-test', type=int, required=True, help='number of test images')
    parser.add_argument('--seed', type=int, default=0, help='random seed (default: 0)')
    parser.add_argument('--size', type=int, default=128, help='longer image side in pixels (default: 128)')
    parser.add_argument('--workers', type=int, default=min(2, os.cpu_count() or 1),
                        help='rendering processes (default: min(2, number of CPUs))')
    parser.add_argument('--overwrite', action='store_true', help='replace OUT if it exists and is not empty')
    cli.add_debug_argument(parser)
    return parser.parse_args(argv)


@cli.tool('make_synth_psg.py')
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        stats = generate_synthetic_psg(args.out, args.num_train, args.num_test, seed=args.seed,
                                       size=args.size, workers=args.workers, overwrite=args.overwrite,
                                       progress=True)
    except ValueError as err:  # settings out of range
        raise cli.ArgumentError(str(err)) from None
    except KeyboardInterrupt:
        print(f'make_synth_psg: interrupted; {args.out} was not written', file=sys.stderr)
        return cli.EXIT_INTERRUPTED
    print(f"wrote {stats['num_images']} images ({stats['num_train']} train, {stats['num_test']} test) "
          f"to {stats['out_dir']} in {stats['seconds']:.1f} s")
    print(f"{stats['num_segments']} segments, {stats['num_relations']} relations; "
          f"{stats['images_without_relations']} images without relations "
          f"({stats['test_images_without_relations']} in the test split)")
    print('predicates: ' + ', '.join(f'{name} {n}' for name, n in stats['predicate_counts'].items()))
    return 0


if __name__ == '__main__':
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))  # clean up, then exit
    sys.exit(main())
