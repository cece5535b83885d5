"""A scene graph for your own images: panoptic masks, the graph of the best relations, and JSON.

    python tools/demo.py photo.jpg --config CONFIG --checkpoint CKPT --out work_dirs/demo
    python tools/demo.py my_photos/ --config CONFIG --checkpoint CKPT --out out --topk 10 \\
        --score-thr 0.3 --device cuda

For every image ``NAME.<jpg|jpeg|png>`` (a folder: all of them, sorted) it writes into ``--out``:

* ``NAME_panoptic.png`` - the image with every predicted segment tinted and named (``person#0``);
* ``NAME_graph.png``    - the ``--topk`` best relations scoring at least ``--score-thr`` as a graph
  (nodes in their masks' colours, arrows labelled with predicate and score);
* ``NAME.json``         - the whole result (:meth:`openpsg.apis.SceneGraphResult.to_json`).

The three files of an image appear together or not at all. An image that cannot be read (a
damaged file, one above the image size limit of :mod:`openpsg.datasets.io`, or a folder entry
named like an image that is a folder, a dangling link or no regular file) is reported and
skipped; the other images are still processed and the exit status is then 1. Bad configs,
checkpoints or devices stop the run before any image (exit status 1; other errors as in
:mod:`openpsg.cli`). Drawings are bounded in size
whatever the image's shape (:data:`openpsg.visualization.draw.MAX_DRAWING_SIDE`).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from openpsg import cli
from openpsg.apis import ImageInputError, inference_image, init_model, load_image
from openpsg.config import DictAction
from openpsg.datasets.io import ImageReadError, check_image_file
from openpsg.fileio import new_file_mode
from openpsg.parallel import set_torch_threads

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png')
MIN_SIZE = 384  # smaller images are enlarged in NAME_panoptic.png so that the names stay readable


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('image', help='an image file, or a folder of jpg/jpeg/png images')
    parser.add_argument('--config', required=True, help='the config the model was trained with')
    parser.add_argument('--checkpoint', required=True, help='the trained weights (.pth)')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--topk', type=int, default=20,
                        help='relations drawn in the graph (default 20; all are in the JSON)')
    parser.add_argument('--score-thr', type=float, default=0.0,
                        help='draw only relations scoring at least this (default 0)')
    parser.add_argument('--device', default='cpu', help='cpu, cuda or cuda:N (default cpu)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config entries, e.g. model.test_cfg.max_per_img=50')
    cli.add_debug_argument(parser)
    args = parser.parse_args(argv)
    if args.topk < 0:
        parser.error(f'--topk must be >= 0, got {args.topk}')
    return args


def find_images(path: str) -> list[Path]:
    """``[path]`` for an image file; for a folder, its entries named ``*.jpg/jpeg/png`` (any
    case), sorted by name, whatever they are: one that is no image file (a folder, a dangling
    link) is reported and skipped when it is read."""
    p = Path(path)
    if p.is_dir():
        images = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS)
        if not images:
            raise FileNotFoundError(f'{path}: no {"/".join(e[1:] for e in IMAGE_EXTENSIONS)} '
                                    'images in this folder')
        return images
    if not p.exists() and not p.is_symlink():
        raise FileNotFoundError(f'{path}: no such image file or folder')
    try:
        check_image_file(path)
    except ImageReadError as err:
        raise FileNotFoundError(f'{path}: {err}') from None
    return [p]


def output_names(images: list[Path]) -> list[str]:
    """``NAME`` per image: the file's stem, or ``stem_ext`` where two images share a stem."""
    stems = [f.stem for f in images]
    return [f'{f.stem}_{f.suffix[1:]}' if stems.count(f.stem) > 1 else f.stem for f in images]


def png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format='PNG')
    return buffer.getvalue()


def write_together(files: dict[Path, bytes]) -> None:
    """Write every file to a temporary name first and rename them all only when all are written,
    so that an error leaves none of them behind."""
    temps: dict[Path, str] = {}
    mode = new_file_mode()
    try:
        for path, content in files.items():
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.', suffix='.tmp')
            temps[path] = tmp
            with os.fdopen(fd, 'wb') as f:
                f.write(content)
            os.chmod(tmp, mode)
        for path, tmp in temps.items():
            os.replace(tmp, path)
    finally:
        for tmp in temps.values():
            if os.path.exists(tmp):
                os.unlink(tmp)


def process(model, image_path: Path, name: str, out: Path, topk: int, score_thr: float) -> str:
    """Predict, draw and write the three files of one image; returns a one-line summary."""
    image = load_image(image_path)
    result = inference_image(model, image, image_id=image_path.stem)
    shown = result.top_triplets(topk, score_thr)
    if len(result.prediction.pairs) == 0:
        title = f'{image_path.name}: the model predicts no relations'
    else:
        title = f'{image_path.name}: top {len(shown)} relations' + (
            f' (score >= {score_thr:g})' if score_thr > 0 else '')
    files = {
        out / f'{name}_panoptic.png': png_bytes(result.draw_panoptic(image, min_size=MIN_SIZE)),
        out / f'{name}_graph.png': png_bytes(result.draw_graph(topk, score_thr, title=title)),
        out / f'{name}.json': json.dumps(result.to_json()).encode('utf-8'),
    }
    write_together(files)
    best = f'; best: {shown[0]}' if shown else ''
    return f'{image_path}: {result.num_segments} segments, {len(shown)} relations drawn{best}'


@cli.tool('demo.py')
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    set_torch_threads()
    images = find_images(args.image)
    model = init_model(args.config, args.checkpoint, device=args.device,
                       cfg_options=args.cfg_options)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    skipped = []
    bar = tqdm(list(zip(images, output_names(images))), desc='demo', unit='img',
               disable=len(images) == 1)
    for image_path, name in bar:
        try:
            tqdm.write(process(model, image_path, name, out, args.topk, args.score_thr))
        except ImageInputError as err:
            skipped.append(image_path)
            tqdm.write(f'demo.py: error: {err}; skipped', file=sys.stderr)
    done = len(images) - len(skipped)
    print(f'{done} of {len(images)} image(s) done, results in {out}'
          + (f'; skipped: {", ".join(map(str, skipped))}' if skipped else ''),
          file=sys.stderr if skipped else sys.stdout)
    return 1 if skipped else 0


if __name__ == '__main__':
    sys.exit(main())
