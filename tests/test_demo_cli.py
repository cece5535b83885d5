"""tools/demo.py: three files per image, written all together or not at all, clear errors, entries
that are no usable image skipped, and drawings of bounded size whatever the image's shape."""
from __future__ import annotations

import importlib.util
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from fixtures.hostile_images import noise, write_png_bomb, write_truncated
from fixtures.tree_snapshot import snapshot
from PIL import Image
from scipy.ndimage import binary_erosion
from test_apis import model_config, model_options, scene

from openpsg.apis import SceneGraphResult, init_model
from openpsg.engine.checkpoint import save_checkpoint
from openpsg.visualization import class_colors
from openpsg.visualization.draw import MAX_DRAWING_SIDE
from openpsg.visualization.graph import MAX_SIZE

ROOT = Path(__file__).resolve().parents[1]


def options() -> list[str]:
    """``--cfg-options`` that make the untrained model keep its segments."""
    items = [f'{k}={v}' for k, v in model_options().items()]
    return ['--cfg-options', *items] if items else []


def load_demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location('openpsg_tool_demo', ROOT / 'tools' / 'demo.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def demo() -> ModuleType:
    return load_demo()


@pytest.fixture(scope='module')
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A checkpoint of the untrained model (with its meta, as training writes it), a folder of two
    good images and five entries named like images that are none (a broken file, a decompression
    bomb, a truncated JPEG, a folder, a dangling link), and a checkpoint of another model."""
    root = tmp_path_factory.mktemp('demo')
    torch.manual_seed(0)
    model = init_model(model_config(), cfg_options=model_options())
    checkpoint = root / 'model.pth'
    save_checkpoint({'meta': {'config': model.cfg.pretty_text, 'classes': list(model.class_names),
                              'predicates': list(model.predicate_names)},
                     'state_dict': model.state_dict()}, checkpoint)
    other = root / 'other.pth'
    save_checkpoint({'state_dict': {'fc.weight': torch.zeros(2, 2)}}, other)
    images = root / 'images'
    images.mkdir()
    Image.fromarray(scene(48, 64, 0)).save(images / 'b_street.png')
    Image.fromarray(scene(40, 40, 1)).save(images / 'a_field.JPG', quality=95)
    (images / 'c_broken.jpg').write_bytes(b'this is not a jpeg')
    write_png_bomb(images / 'd_bomb.png')
    write_truncated(images / 'e_truncated.jpg', 'JPEG')
    (images / 'f_folder.jpg').mkdir()
    (images / 'g_dangling.jpg').symlink_to(root / 'gone.jpg')
    (images / 'notes.txt').write_text('not an image')
    return {'root': root, 'checkpoint': checkpoint, 'other': other, 'images': images}


def run_main(demo: ModuleType, argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """``demo.main(argv)`` in this process; returns the exit status and stdout + stderr."""
    rc = demo.main(argv)
    captured = capsys.readouterr()
    return rc, captured.out + captured.err


#: Runs the script ``argv[2]`` with the arguments after it, then writes the peak resident memory
#: of this process image (``VmHWM``, kB) to the file ``argv[1]``. Measured inside the process:
#: the ``ru_maxrss`` of a child keeps the peak of the process it was forked from (a pytest worker
#: that ran an 800x1333 test holds gigabytes).
PEAK_RSS_RUNNER = """
import runpy, sys
peak_file = sys.argv.pop(1)
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name='__main__')
finally:
    with open('/proc/self/status') as status, open(peak_file, 'w') as out:
        out.write(next(line.split()[1] for line in status if line.startswith('VmHWM:')))
"""


def run_demo(images: Path, checkpoint: Path, out: Path, cwd: Path, *extra: str
             ) -> tuple[int, str, int]:
    """Run ``tools/demo.py`` in a subprocess from ``cwd``; returns its exit status, its stdout +
    stderr and its peak resident memory in bytes."""
    log, peak = cwd / 'demo.log', cwd / 'demo.peak'
    with open(log, 'w') as f:
        proc = subprocess.run(
            [sys.executable, '-c', PEAK_RSS_RUNNER, str(peak), str(ROOT / 'tools' / 'demo.py'),
             str(images), '--config', model_config(), '--checkpoint', str(checkpoint), '--out',
             str(out), *extra, *options()], cwd=cwd, stdout=f, stderr=subprocess.STDOUT,
            env={**os.environ, 'OMP_NUM_THREADS': '1'})
    text = log.read_text()
    log.unlink()
    peak_kb = int(peak.read_text())
    peak.unlink()
    return proc.returncode, text, peak_kb * 1024


def test_folder_run_writes_three_files_per_good_image(files: dict[str, Path],
                                                      tmp_path: Path) -> None:
    out = tmp_path / 'out'
    before = snapshot(files['root'])
    rc, text, _ = run_demo(files['images'], files['checkpoint'], out, tmp_path, '--topk', '5')
    assert rc == 1, text  # the entries that are no image make the run fail ...
    images = files['images']
    for name, words in [('c_broken.jpg', 'cannot read image'),
                        ('d_bomb.png', 'image is 30000x30000 (HxW) = 900,000,000 pixels, more '
                                       'than the limit of 100,000,000'),
                        ('e_truncated.jpg', 'cannot read image (image file is truncated'),
                        ('f_folder.jpg', 'is a folder, not an image file'),
                        ('g_dangling.jpg', 'dangling symbolic link')]:
        assert f'demo.py: error: {images / name}: {words}' in text, name
    assert 'Traceback' not in text
    # ... but the good ones are done, nothing at all is left for the others, nothing else touched
    assert sorted(p.name for p in out.iterdir()) == [
        'a_field.json', 'a_field_graph.png', 'a_field_panoptic.png',
        'b_street.json', 'b_street_graph.png', 'b_street_panoptic.png']
    assert sorted(p.name for p in tmp_path.iterdir()) == ['out']
    assert snapshot(files['root']) == before
    assert '2 of 7 image(s) done' in text and 'skipped: ' in text
    result = SceneGraphResult.from_json(json.loads((out / 'b_street.json').read_text()))
    assert result.image_id == 'b_street' and result.image_size == (48, 64)
    assert result.num_segments > 0
    check_drawings(out, 'b_street', scene(48, 64, 0), topk=5)
    for name in ('a_field', 'b_street'):
        check_graph(out, name, topk=5)


def check_drawings(out: Path, name: str, image: np.ndarray, topk: int) -> None:
    """``NAME_panoptic.png`` is ``image`` enlarged 8x (48 px -> 384) with every segment of
    ``NAME.json`` tinted half-way to its class colour (inside the mask, 2 px from its outline;
    names written over a few pixels), the rest of the image unchanged."""
    result = SceneGraphResult.from_json(json.loads((out / f'{name}.json').read_text()))
    with Image.open(out / f'{name}_panoptic.png') as im:
        drawn = np.asarray(im).astype(int)
    k = 8
    assert drawn.shape == (image.shape[0] * k, image.shape[1] * k, 3)
    big = image.repeat(k, 0).repeat(k, 1).astype(int)
    masks = result.prediction.dense_masks(result.image_size).repeat(k, 1).repeat(k, 2)
    assert (masks.sum(0) <= 1).all()  # one segment per pixel
    checked = 0
    for mask, color in zip(masks, class_colors(result.prediction.labels).astype(int)):
        inner = binary_erosion(mask, iterations=2)
        if inner.sum() >= 100:
            tinted = (big[inner] + color + 1) // 2
            assert (drawn[inner] == tinted).all(-1).mean() > 0.9
            checked += 1
    assert checked > 0
    outside = ~masks.any(0)
    if outside.any():
        assert (drawn[outside] == big[outside]).all(-1).mean() > 0.9


def check_graph(out: Path, name: str, topk: int) -> None:
    """``NAME_graph.png`` shows a node in its segment's class colour for every segment of the
    ``topk`` triplets of ``NAME.json``."""
    result = SceneGraphResult.from_json(json.loads((out / f'{name}.json').read_text()))
    with Image.open(out / f'{name}_graph.png') as im:
        graph = np.asarray(im)
    colors = class_colors(result.prediction.labels)
    nodes = {s for t in result.top_triplets(topk) for s in (t.subject, t.object)}
    assert nodes, 'the untrained model keeps relations (model_options)'
    for segment in nodes:
        assert (graph == colors[segment]).all(-1).sum() > 200, segment


def test_extreme_aspect_ratios_give_bounded_drawings(files: dict[str, Path],
                                                     tmp_path: Path) -> None:
    """Without a cap, the 384-px minimum size of the overlay made a 2x4000 image 384x768000 (a
    14 GB drawing); the model input is bounded by the test pipeline's Resize."""
    images = tmp_path / 'images'
    images.mkdir()
    sizes = {'tall': (4000, 2), 'wide': (2, 4000), 'thread': (1, 10000), 'pole': (10000, 1)}
    for name, (h, w) in sizes.items():
        Image.fromarray(noise(h, w)).save(images / f'{name}.png')
    out = tmp_path / 'out'
    rc, text, peak = run_demo(images, files['checkpoint'], out, tmp_path)
    assert rc == 0, text
    assert '4 of 4 image(s) done' in text and 'Traceback' not in text
    # 4000 px fit under the cap, unchanged; 10000 px are shrunk to it, the other side to 1 px
    expected = {'tall': (2, 4000), 'wide': (4000, 2), 'thread': (4096, 1), 'pole': (1, 4096)}
    assert MAX_DRAWING_SIDE == 4096
    for name, (h, w) in sizes.items():
        with Image.open(out / f'{name}_panoptic.png') as im:
            assert im.size == expected[name], name
        with Image.open(out / f'{name}_graph.png') as im:
            assert im.size[0] <= MAX_SIZE[0] and im.size[1] <= MAX_SIZE[1], name
        result = SceneGraphResult.from_json(json.loads((out / f'{name}.json').read_text()))
        assert result.image_size == (h, w)
    # a torch process running the tiny model peaks at about 1.1 GB
    assert peak < 2.5 * 2 ** 30, f'peak memory {peak / 2 ** 30:.2f} GiB'


def test_single_image_and_options(demo: ModuleType, files: dict[str, Path], tmp_path: Path,
                                  capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / 'one'
    rc, err = run_main(demo, [str(files['images'] / 'b_street.png'), '--config', model_config(),
                              '--checkpoint', str(files['checkpoint']), '--out', str(out),
                              '--score-thr', '0.5', '--topk', '3', *options()], capsys)
    assert rc == 0, err
    assert sorted(p.name for p in out.iterdir()) == ['b_street.json', 'b_street_graph.png',
                                                     'b_street_panoptic.png']
    drawn = int(err.split('segments, ')[1].split(' relations drawn')[0])
    data = json.loads((out / 'b_street.json').read_text())
    assert drawn == len([t for t in data['triplets'][:3] if t['score'] >= 0.5])


def test_mismatched_checkpoint_names_both_files(demo: ModuleType, files: dict[str, Path],
                                                tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    rc, err = run_main(demo, [str(files['images']), '--config', model_config(),
                              '--checkpoint', str(files['other']), '--out', str(tmp_path / 'x')],
                       capsys)
    assert rc == 1
    assert f'checkpoint {files["other"]} does not match config {model_config()}' in err
    assert not (tmp_path / 'x').exists()


def test_cuda_on_a_cpu_machine_and_missing_files(demo: ModuleType, files: dict[str, Path],
                                                 tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    common = ['--config', model_config(), '--checkpoint', str(files['checkpoint']),
              '--out', str(tmp_path / 'x')]
    if not torch.cuda.is_available():
        rc, err = run_main(demo, [str(files['images']), *common, '--device', 'cuda'], capsys)
        assert rc == 1 and 'CUDA is not available' in err
    rc, err = run_main(demo, [str(tmp_path / 'nope.jpg'), *common], capsys)
    assert rc == 1 and 'nope.jpg: no such image file or folder' in err
    rc, err = run_main(demo, [str(files['images'] / 'g_dangling.jpg'), *common], capsys)
    assert rc == 1 and 'g_dangling.jpg: dangling symbolic link' in err
    empty = tmp_path / 'empty'
    empty.mkdir()
    rc, err = run_main(demo, [str(empty), *common], capsys)
    assert rc == 1 and 'no jpg/jpeg/png images' in err
    rc, err = run_main(demo, [str(files['images']), '--config', str(tmp_path / 'no_config.py'),
                              *common[2:]], capsys)
    assert rc == 1 and 'no_config.py: config file not found' in err
    rc, err = run_main(demo, [str(files['images']), *common[:2], '--checkpoint',
                              str(tmp_path / 'no.pth'), *common[4:]], capsys)
    assert rc == 1 and 'no.pth: checkpoint file not found' in err
    assert not (tmp_path / 'x').exists()


def test_files_are_written_together_or_not_at_all(demo: ModuleType, tmp_path: Path) -> None:
    demo.write_together({tmp_path / 'a.png': b'a', tmp_path / 'b.json': b'b'})
    assert sorted(p.name for p in tmp_path.iterdir()) == ['a.png', 'b.json']
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / 'a.png').stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600
    out = tmp_path / 'out'
    out.mkdir()
    with pytest.raises(OSError):
        demo.write_together({out / 'a.png': b'a', out / 'b.png': b'b',
                             out / 'missing_dir' / 'c.json': b'c'})
    assert list(out.iterdir()) == []


def test_output_names_keep_images_apart(demo: ModuleType) -> None:
    names = demo.output_names([Path('x/a.jpg'), Path('x/a.png'), Path('x/b.jpeg')])
    assert names == ['a_jpg', 'a_png', 'b']
    with Image.open(io.BytesIO(demo.png_bytes(scene(4, 5)))) as im:
        assert np.array_equal(np.asarray(im), scene(4, 5))
