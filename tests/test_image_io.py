"""Reading images from users (openpsg.datasets.io): size limit before decoding, truncated and
altered files, paths that are no image file; the same checks behind the inference API."""
from __future__ import annotations

import os
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from fixtures.hostile_images import (encode, noise, png_chunk, write_jpeg_bomb, write_png_bomb,
                                     write_png_shorter_than_data, write_png_taller_than_data,
                                     write_truncated)
from fixtures.tree_snapshot import snapshot
from PIL import Image
from test_grade import TEST_IDS, noisy_predictions, run_grade, write_dataset

from openpsg.apis import ImageInputError, load_image
from openpsg.datasets import io as io_module
from openpsg.datasets.errors import DatasetError
from openpsg.datasets.io import (DEFAULT_MAX_PIXELS, MAX_PIXELS_ENV, ImageReadError, decode_rgb,
                                 read_image, read_panoptic)
from openpsg.evaluation.submission import write_submission

# Adam7 passes (x0, y0, dx, dy) of the PNG specification
ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
         (0, 1, 1, 2))


def test_bombs_are_refused_from_their_header(tmp_path: Path) -> None:
    png = write_png_bomb(tmp_path / 'bomb.png')
    jpeg = write_jpeg_bomb(tmp_path / 'bomb.jpg')
    assert png.stat().st_size < 200
    with pytest.raises(ImageReadError) as err:
        decode_rgb(png)
    assert str(err.value).startswith('image is 30000x30000 (HxW) = 900,000,000 pixels, more than '
                                     'the limit of 100,000,000')
    assert MAX_PIXELS_ENV in str(err.value)
    with pytest.raises(ImageReadError, match=r'image is 60000x60000 \(HxW\) = 3,600,000,000'):
        decode_rgb(jpeg)
    with pytest.raises(DatasetError) as err:
        read_image(str(png), '7', (30000, 30000))
    assert str(err.value).startswith(f'{png}: image_id=7: file_name: image is 30000x30000')
    with pytest.raises(DatasetError, match=f'{tmp_path}/bomb.png: image_id=7: pan_seg_file_name: '
                                           'image is 30000x30000'):
        read_panoptic(str(png), '7', [1])
    with pytest.raises(ImageInputError, match='bomb.jpg: image is 60000x60000'):
        load_image(jpeg)


def test_the_limit_is_an_environment_variable(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    assert DEFAULT_MAX_PIXELS == 100_000_000
    path = tmp_path / 'a.png'
    Image.fromarray(noise(40, 30)).save(path)
    monkeypatch.setenv(MAX_PIXELS_ENV, '1199')
    with pytest.raises(ImageReadError, match=r'40x30 \(HxW\) = 1,200 pixels, more than the limit '
                                             'of 1,199'):
        decode_rgb(path)
    with pytest.raises(ImageInputError, match='PIL image: image is 40x30'):
        load_image(Image.fromarray(noise(40, 30)))  # an image in memory: same limit
    monkeypatch.setenv(MAX_PIXELS_ENV, '1200')
    assert decode_rgb(path).shape == (40, 30, 3)
    monkeypatch.setenv(MAX_PIXELS_ENV, 'lots')
    with pytest.raises(ImageReadError, match=f"{MAX_PIXELS_ENV}='lots' must be a positive whole"):
        decode_rgb(path)


def test_a_raised_limit_overrides_pillows_own(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Pillow refuses images above twice PIL.Image.MAX_IMAGE_PIXELS and warns above it; ours
    decides, and Pillow's setting is left as it was."""
    monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 100)
    path = tmp_path / 'a.png'
    image = noise(20, 30)
    Image.fromarray(image).save(path)
    with pytest.raises(Image.DecompressionBombError):
        Image.open(path)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert np.array_equal(decode_rgb(path), image)
        assert np.array_equal(load_image(path), image)
    assert Image.MAX_IMAGE_PIXELS == 100


@pytest.mark.parametrize('fmt', ['PNG', 'JPEG'])
def test_truncated_files(tmp_path: Path, fmt: str) -> None:
    path = write_truncated(tmp_path / f'cut.{fmt.lower()}', fmt)
    with pytest.raises(ImageReadError, match=r'^cannot read image \(image file is truncated'):
        decode_rgb(path)
    with pytest.raises(DatasetError, match=f'cut.{fmt.lower()}: image_id=3: file_name: cannot '
                                           'read image'):
        read_image(str(path), '3')


def test_png_data_must_fill_its_header_size(tmp_path: Path) -> None:
    taller = write_png_taller_than_data(tmp_path / 'taller.png')
    with Image.open(taller) as im:  # what Pillow alone makes of it: 64 black rows appended
        assert im.size == (64, 128) and not np.asarray(im.convert('RGB'))[64:].any()
    # 128 rows x (1 filter byte + 64 x 3 bytes) are needed, the data holds 64 rows
    with pytest.raises(ImageReadError, match='the image data ends early: 12352 of the 24704 bytes'):
        decode_rgb(taller)
    shorter = write_png_shorter_than_data(tmp_path / 'shorter.png')
    with pytest.raises(ImageReadError, match='the image data is longer than the 6176 bytes'):
        decode_rgb(shorter)


def png_in_chunks(image: np.ndarray, size: int) -> bytes:
    """An 8-bit RGB PNG of ``image`` whose compressed data is cut into IDAT chunks of ``size``
    bytes (any split is valid; the last chunk holds the end of the data stream)."""
    h, w = image.shape[:2]
    data = zlib.compress(b''.join(b'\x00' + row.tobytes() for row in image))
    chunks = b''.join(png_chunk(b'IDAT', data[i:i + size]) for i in range(0, len(data), size))
    return (b'\x89PNG\r\n\x1a\n' + png_chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 2, 0, 0, 0))
            + chunks + png_chunk(b'IEND', b''))


def test_png_data_is_checked_without_a_second_decompression(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A PNG whose decoder took all its data and filled its last row needs no second look; one
    with a black last row (the rows a short stream leaves) gets the full check."""
    checked = []
    full_check = io_module.check_png_data
    monkeypatch.setattr(io_module, 'check_png_data',
                        lambda path: checked.append(os.path.basename(path)) or full_check(path))
    image = noise(40, 30)
    for name, data in {'one_chunk.png': encode(image, 'PNG'),
                       'tiny_chunks.png': png_in_chunks(image, 3),
                       'two_chunks.png': png_in_chunks(image, len(zlib.compress(image.tobytes())))
                       }.items():
        (tmp_path / name).write_bytes(data)
        assert np.array_equal(decode_rgb(tmp_path / name), image), name
    Image.fromarray(noise(6, 5)).convert('P').save(tmp_path / 'palette.png')
    assert decode_rgb(tmp_path / 'palette.png').shape == (6, 5, 3)
    assert checked == []
    black_bottom = image.copy()
    black_bottom[-1] = 0
    (tmp_path / 'black_bottom.png').write_bytes(png_in_chunks(black_bottom, 64))
    assert np.array_equal(decode_rgb(tmp_path / 'black_bottom.png'), black_bottom)
    assert checked == ['black_bottom.png']
    write_png_taller_than_data(tmp_path / 'taller.png')
    write_png_shorter_than_data(tmp_path / 'shorter.png')
    for name in ('taller.png', 'shorter.png'):
        with pytest.raises(ImageReadError, match='the image data'):
            decode_rgb(tmp_path / name)
    assert checked == ['black_bottom.png', 'taller.png', 'shorter.png']


def interlaced_png(image: np.ndarray) -> tuple[bytes, int]:
    """An Adam7-interlaced 8-bit RGB PNG of ``image``, and the size of its raw (filtered) data."""
    h, w = image.shape[:2]
    raw = b''.join(b'\x00' + row.tobytes() for x0, y0, dx, dy in ADAM7
                   for row in image[y0::dy, x0::dx] if row.size)
    header = struct.pack('>IIBBBBB', w, h, 8, 2, 0, 0, 1)
    data = (b'\x89PNG\r\n\x1a\n' + png_chunk(b'IHDR', header)
            + png_chunk(b'IDAT', zlib.compress(raw)) + png_chunk(b'IEND', b''))
    return data, len(raw)


def test_valid_pngs_of_every_kind_are_read(tmp_path: Path) -> None:
    image = noise(3, 5)
    data, raw_size = interlaced_png(image)
    # passes of a 5x3 image: 1x1, 1x1, none, 1x1, 3x1, 2x2, 5x1 pixels; a filter byte per row
    assert raw_size == 4 + 4 + 4 + 10 + 2 * 7 + 16
    (tmp_path / 'interlaced.png').write_bytes(data)
    assert np.array_equal(decode_rgb(tmp_path / 'interlaced.png'), image)
    grey = noise(7, 9)[..., 0]
    kinds = {'1bit': Image.fromarray(grey > 127), 'palette': Image.fromarray(grey).convert('P'),
             '16bit': Image.fromarray(grey.astype(np.uint16) * 257), 'rgba': Image.fromarray(
                 np.dstack([noise(7, 9), grey]))}
    for name, im in kinds.items():
        im.save(tmp_path / f'{name}.png')
        assert decode_rgb(tmp_path / f'{name}.png').shape == (7, 9, 3), name


def test_paths_that_are_no_image_file(tmp_path: Path) -> None:
    (tmp_path / 'folder.jpg').mkdir()
    (tmp_path / 'dangling.jpg').symlink_to(tmp_path / 'gone.jpg')
    os.mkfifo(tmp_path / 'pipe.png')
    (tmp_path / 'device.jpg').symlink_to('/dev/zero')
    (tmp_path / 'loop.jpg').symlink_to(tmp_path / 'loop.jpg')
    (tmp_path / 'empty.jpg').write_bytes(b'')
    cases = {'folder.jpg': 'is a folder, not an image file',
             'dangling.jpg': f"dangling symbolic link (its target '{tmp_path}/gone.jpg' cannot",
             'loop.jpg': 'dangling symbolic link', 'pipe.png': 'is not a regular file',
             'device.jpg': 'is not a regular file', 'empty.jpg': 'the file is empty (0 bytes)',
             'missing.png': 'file not found'}
    for name, words in cases.items():
        with pytest.raises(ImageReadError) as err:
            decode_rgb(tmp_path / name)
        assert str(err.value).startswith(words), name
    with pytest.raises(ImageInputError, match='folder.jpg: is a folder'):
        load_image(tmp_path / 'folder.jpg')


def test_exif_rotation_and_expected_size(tmp_path: Path) -> None:
    image = noise(6, 10)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    path = tmp_path / 'rotated.jpg'
    Image.fromarray(image).save(path, exif=exif, quality=100)
    assert decode_rgb(path).shape == (6, 10, 3)
    assert decode_rgb(path, exif_transpose=True).shape == (10, 6, 3)
    assert load_image(path).shape == (10, 6, 3)
    with pytest.raises(ImageReadError, match=r'image is 6x10 \(HxW\) but the annotation says '
                                             'height=10, width=6'):
        decode_rgb(path, expected_hw=(10, 6))


def test_grader_lists_a_bomb_and_an_altered_png_of_a_submission(tmp_path: Path) -> None:
    root = tmp_path / 'data'
    root.mkdir()
    ann_file = write_dataset(root)
    sub = tmp_path / 'sub'
    write_submission(noisy_predictions(), TEST_IDS, str(sub))
    write_png_bomb(sub / 'panseg' / '0.png')
    write_png_taller_than_data(sub / 'panseg' / '1.png', 4, 4)  # image 12 is 4x4
    out = tmp_path / 'scores'
    out.mkdir()
    before = snapshot(tmp_path)
    proc = run_grade(sub, '--ann-file', ann_file, '--data-root', root, '--out', out)
    assert proc.returncode == 1 and 'Traceback' not in proc.stdout + proc.stderr
    assert '2 problem(s), not graded' in proc.stderr
    assert (f'entry 0: {sub}/panseg/0.png: image_id=11: pan_seg_file_name: image is 30000x30000 '
            '(HxW) = 900,000,000 pixels, more than the limit') in proc.stderr
    assert (f'entry 1: {sub}/panseg/1.png: image_id=12: pan_seg_file_name: the image data ends '
            'early') in proc.stderr
    assert snapshot(tmp_path) == before
