"""tools/demo.py: three files per image, written all together or not at all, and clear errors."""
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
from PIL import Image
from test_apis import model_config, model_options, scene

from openpsg.apis import SceneGraphResult, init_model
from openpsg.engine.checkpoint import save_checkpoint

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
    good images and one broken one, and a checkpoint of another model."""
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
    (images / 'notes.txt').write_text('not an image')
    return {'root': root, 'checkpoint': checkpoint, 'other': other, 'images': images}


def run_main(demo: ModuleType, argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """``demo.main(argv)`` in this process; returns the exit status and stdout + stderr."""
    rc = demo.main(argv)
    captured = capsys.readouterr()
    return rc, captured.out + captured.err


def test_folder_run_writes_three_files_per_good_image(files: dict[str, Path],
                                                      tmp_path: Path) -> None:
    out = tmp_path / 'out'
    proc = subprocess.run(
        [sys.executable, 'tools/demo.py', str(files['images']), '--config', model_config(),
         '--checkpoint', str(files['checkpoint']), '--out', str(out), '--topk', '5', *options()],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, 'OMP_NUM_THREADS': '1'})
    assert proc.returncode == 1, proc.stderr  # the broken image makes the run fail ...
    assert 'c_broken.jpg: cannot read the image' in proc.stderr
    # ... but the good ones are done, and nothing at all is left for the broken one
    assert sorted(p.name for p in out.iterdir()) == [
        'a_field.json', 'a_field_graph.png', 'a_field_panoptic.png',
        'b_street.json', 'b_street_graph.png', 'b_street_panoptic.png']
    assert '2 of 3 image(s) done' in proc.stderr
    result = SceneGraphResult.from_json(json.loads((out / 'b_street.json').read_text()))
    assert result.image_id == 'b_street' and result.image_size == (48, 64)
    assert result.num_segments > 0
    with Image.open(out / 'b_street_panoptic.png') as im:
        assert im.size[0] / im.size[1] == pytest.approx(64 / 48)  # the image, enlarged
    with Image.open(out / 'a_field_graph.png') as im:
        assert im.mode == 'RGB'


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
