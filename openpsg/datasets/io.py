"""Reading image files that come from users: dataset images, panoptic PNGs (of datasets and of
challenge submissions) and the images given to the demo and the inference API.

:func:`decode_rgb` decodes an image file (:func:`read_panoptic` goes the same way and reads the
colours as panoptic ids). Before a pixel is decoded it checks that the path is a regular file
and that the size in the image's header is at most :func:`max_image_pixels` pixels (and, where
the caller knows it, the expected size), so that a small file whose header claims 30000x30000
pixels (a decompression bomb) is refused without allocating the image. After decoding it checks
that the image has its header's size and, for a PNG, that the compressed data fills exactly that
size (Pillow pads short data with black rows without a word); the decoding itself tells that in
all but rare cases (see :class:`_PngFile`), which :func:`check_png_data` settles with a second
decompression. Truncated or corrupt data is an error too. Every failure is an
:class:`ImageReadError` whose message is the reason; :func:`read_image` and :func:`read_panoptic`
turn it into a :class:`DatasetError` naming the file, image and field.

The limit is 100 million pixels (e.g. 12000x8000); set the environment variable
``OPENPSG_MAX_IMAGE_PIXELS`` to another number of pixels for larger images. Pillow's own
decompression-bomb check (``PIL.Image.MAX_IMAGE_PIXELS``) gives way to this limit.
"""
from __future__ import annotations

import contextlib
import os
import struct
import threading
import warnings
import zlib
from typing import BinaryIO, Callable, Iterator, Sequence

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin

from ..errors import InputError
from ..paths import OutsideRootError, resolve_inside
from ..structures.masks import segment_ids_to_id_map
from .errors import DatasetError, problem

#: Environment variable holding the largest number of pixels an image may have.
MAX_PIXELS_ENV = 'OPENPSG_MAX_IMAGE_PIXELS'
#: The limit when :data:`MAX_PIXELS_ENV` is not set.
DEFAULT_MAX_PIXELS = 100_000_000

_PILLOW_LIMIT_LOCK = threading.Lock()
#: Channels of each PNG colour type; Adam7 interlace passes ``(x0, y0, dx, dy)``.
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
          (0, 1, 1, 2))
_INFLATE_STEP = 1 << 20
PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
#: Compressed bytes at the end of a PNG's image data that hold no pixel data in a complete file:
#: the zlib stream's end code and checksum (at most ~7 bytes) with room for an empty flush block.
_PNG_TAIL = 16



def data_path(data_root: str, name: str, ann_file: str, image_id: str, field: str,
              allow_outside_root: bool = False) -> str:
    """The file ``name`` (the ``field`` of ``image_id`` in ``ann_file``) under ``data_root``,
    checked by :func:`~openpsg.paths.resolve_inside`; a name leading elsewhere raises
    :class:`DatasetError` naming the annotation file, the image and the field."""
    try:
        return resolve_inside(data_root, name, allow_outside_root)
    except OutsideRootError as err:
        raise DatasetError(outside_problem(data_root, str(err), ann_file, image_id,
                                           field)) from None


def outside_problem(data_root: str, reason: str, ann_file: str, image_id: str, field: str) -> str:
    """The problem line of a file name that does not lead into ``data_root``."""
    return problem(ann_file, image_id, field, f'{reason} (data_root {data_root})')

class ImageReadError(InputError, ValueError):
    """An image file that cannot be used; the message is the reason, without the file name."""


def max_image_pixels() -> int:
    """The largest number of pixels (height x width) an image may have:
    ``$OPENPSG_MAX_IMAGE_PIXELS`` or :data:`DEFAULT_MAX_PIXELS`."""
    value = os.environ.get(MAX_PIXELS_ENV, '').strip()
    if not value:
        return DEFAULT_MAX_PIXELS
    try:
        limit = int(value)
    except ValueError:
        limit = 0
    if limit <= 0:
        raise ImageReadError(f'the environment variable {MAX_PIXELS_ENV}={value!r} must be a '
                             'positive whole number of pixels')
    return limit


def check_image_file(path: str) -> None:
    """Raise :class:`ImageReadError` unless ``path`` is (a link to) a non-empty regular file."""
    if os.path.isfile(path):
        if os.path.getsize(path) == 0:
            raise ImageReadError('the file is empty (0 bytes), not an image')
        return
    if os.path.islink(path) and not os.path.exists(path):
        raise ImageReadError(f'dangling symbolic link (its target {os.readlink(path)!r} cannot '
                             'be reached)')
    if os.path.isdir(path):
        raise ImageReadError('is a folder, not an image file')
    if os.path.exists(path):
        raise ImageReadError('is not a regular file (a device, pipe or socket), not an image file')
    raise ImageReadError('file not found')


def check_image_size(hw: tuple[int, int], expected_hw: tuple[int, int] | None = None,
                     what: str = 'image') -> None:
    """Raise :class:`ImageReadError` if an image of size ``hw = (H, W)`` is empty, has more than
    :func:`max_image_pixels` pixels, or differs from ``expected_hw`` (the annotation's size)."""
    h, w = hw
    if h <= 0 or w <= 0:
        raise ImageReadError(f'{what} is empty ({h}x{w}, HxW)')
    limit = max_image_pixels()
    if h * w > limit:
        raise ImageReadError(
            f'{what} is {h}x{w} (HxW) = {h * w:,} pixels, more than the limit of {limit:,} '
            f'(a decompression bomb? set the environment variable {MAX_PIXELS_ENV} to a larger '
            'number of pixels to read it)')
    if expected_hw is not None and (h, w) != tuple(expected_hw):
        raise ImageReadError(f'{what} is {h}x{w} (HxW) but the annotation says '
                             f'height={expected_hw[0]}, width={expected_hw[1]}')


def _reason(err: BaseException) -> str:
    return str(err) or type(err).__name__


def _rgb_array(im: Image.Image) -> np.ndarray:
    """A loaded image as ``(H, W, 3)`` uint8 RGB."""
    return np.asarray(im.convert('RGB'))


def _rgb_ids(im: Image.Image) -> np.ndarray:
    """A loaded image as ``(H, W)`` intp panoptic ids ``R + 256 G + 256^2 B`` (as
    :func:`~openpsg.structures.masks.rgb2id`), from Pillow's 4-byte RGB pixels in one pass."""
    rgb = im if im.mode == 'RGB' else im.convert('RGB')
    pixels = np.frombuffer(rgb.tobytes('raw', 'RGBX'), dtype='<u4').reshape(rgb.height, rgb.width)
    return np.bitwise_and(pixels, 0xFFFFFF, dtype=np.intp)


def _to_pixels(im: Image.Image, expected_hw: tuple[int, int] | None, exif_transpose: bool,
               pixels: Callable[[Image.Image], np.ndarray]) -> np.ndarray:
    """Decode an opened (not yet loaded) image after checking its header size and turn it into
    an array with ``pixels``; lets Pillow's :class:`~PIL.Image.DecompressionBombError` through
    (see :func:`decode_rgb`)."""
    header = (im.height, im.width)
    check_image_size(header, None if exif_transpose else expected_hw)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', Image.DecompressionBombWarning)
        try:
            im.load()
            if (im.height, im.width) != header:
                raise ImageReadError(f'decoded image is {im.height}x{im.width} (HxW) but its '
                                     f'header says {header[0]}x{header[1]}')
            if exif_transpose:
                im = ImageOps.exif_transpose(im)
            arr = pixels(im)
        except (ImageReadError, Image.DecompressionBombError):
            raise
        except Exception as err:  # Pillow's decoders raise many types on corrupt data
            raise ImageReadError(f'cannot read image ({_reason(err)})') from err
    if exif_transpose:
        check_image_size(arr.shape[:2], expected_hw)
    return arr


def _open_image(fp: BinaryIO, path: str) -> Image.Image:
    """Open ``fp`` (headers only); a PNG as :class:`_PngFile`."""
    if fp.read(len(PNG_SIGNATURE)) == PNG_SIGNATURE:
        idat_bytes = _png_idat_bytes(fp)
        fp.seek(0)
        return _PngFile(fp, path, idat_bytes)
    fp.seek(0)
    return Image.open(fp)


def _decode_file(path: str, expected_hw: tuple[int, int] | None, exif_transpose: bool,
                 pixels: Callable[[Image.Image], np.ndarray]) -> np.ndarray:
    with open(path, 'rb') as fp:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', Image.DecompressionBombWarning)
            try:
                im = _open_image(fp, path)
            except Image.DecompressionBombError:
                raise
            except Exception as err:
                raise ImageReadError(f'cannot read image ({_reason(err)})') from err
        with im:
            arr = _to_pixels(im, expected_hw, exif_transpose, pixels)
            data_unsure = isinstance(im, _PngFile) and not im.data_filled_header()
    if data_unsure:
        try:
            check_png_data(path)
        except (OSError, zlib.error, struct.error) as err:
            raise ImageReadError(f'cannot read image ({_reason(err)})') from err
    return arr


def _png_idat_bytes(fp: BinaryIO) -> int:
    """Bytes of compressed image data in the PNG ``fp``: the lengths of its first run of ``IDAT``
    chunks, read from the chunk headers alone (``fp`` is left anywhere)."""
    fp.seek(len(PNG_SIGNATURE))
    total, seen = 0, False
    while len(head := fp.read(8)) == 8:
        length, kind = struct.unpack('>I4s', head)
        if kind == b'IDAT':
            total, seen = total + length, True
        elif seen or kind == b'IEND':
            break
        fp.seek(length + 4, os.SEEK_CUR)
    return total


class _PngFile(PngImagePlugin.PngImageFile):
    """A PNG that tells, from its own decoding, whether its image data filled exactly the size its
    header states (so that no second decompression is needed to know).

    Pillow decodes rows until its header's size is reached or the compressed data ends; it says
    nothing when the data ends early (the missing rows stay 0: black, void in a panoptic PNG) or
    goes on after the last row. Here the decoder is handed the compressed data so that the last
    :data:`_PNG_TAIL` bytes, which in a complete file hold no more than the end of the data stream
    (its end code and checksum), come after everything else. A decoder that finishes before
    asking for them found its last row with data to spare. A decoder that asked for them either
    filled its last row (which then has a non-zero byte) or reached the end of the data early:
    only an all-zero last row leaves the question open, and :func:`check_png_data` answers it
    (as it does for interlaced files, whose last rows are filled by several passes). Data beyond
    the header's size that fits in those last bytes is never decoded and goes unnoticed.
    """

    def __init__(self, fp: BinaryIO, filename: str, idat_bytes: int) -> None:
        self._idat_bytes = idat_bytes
        self._served = 0
        super().__init__(fp, filename)

    def load_read(self, read_bytes: int) -> bytes:
        ahead = self._idat_bytes - _PNG_TAIL - self._served
        if ahead > 0:
            read_bytes = min(read_bytes, ahead) if read_bytes > 0 else ahead
        data = super().load_read(read_bytes)
        self._served += len(data)
        return data

    def data_filled_header(self) -> bool:
        """After loading: ``True`` when the data certainly filled exactly the header's size,
        ``False`` when only :func:`check_png_data` can tell."""
        if self.info.get('interlace') or self._served <= self._idat_bytes - _PNG_TAIL:
            return False
        last_row = self.crop((0, self.height - 1, self.width, self.height))
        return bool(last_row.tobytes().strip(b'\0'))


def _png_data_size(width: int, height: int, depth: int, color_type: int, interlace: int) -> int:
    """Bytes of decompressed image data (filter byte + packed pixels per row, per pass) a PNG of
    this header holds."""
    bits = depth * _PNG_CHANNELS.get(color_type, 4)
    total = 0
    for x0, y0, dx, dy in (_ADAM7 if interlace else ((0, 0, 1, 1),)):
        w, h = -(-(width - x0) // dx), -(-(height - y0) // dy)
        if w > 0 and h > 0:
            total += h * (1 + -(-w * bits // 8))
    return total


def check_png_data(path: str) -> None:
    """Raise :class:`ImageReadError` unless the image data (``IDAT``) of the PNG ``path``
    decompresses to exactly the size its header states. Pillow decodes a PNG whose header claims
    more rows than its data holds without complaint (the missing rows come out black, i.e. void
    in a panoptic PNG), and one with more data than its header needs as well. Reads and
    decompresses in steps of 1 MiB, so neither a large file nor a bomb fills the memory."""
    with open(path, 'rb') as f:
        f.seek(8)
        need = produced = 0
        inflate = zlib.decompressobj()
        while len(head := f.read(8)) == 8:
            length, kind = struct.unpack('>I4s', head)
            if kind == b'IEND':
                break
            if kind == b'IHDR':
                need = _png_data_size(*struct.unpack('>IIBBxxB', f.read(13)))
                f.seek(4, os.SEEK_CUR)
                continue
            if kind != b'IDAT':
                f.seek(length + 4, os.SEEK_CUR)
                continue
            end = f.tell() + length
            while f.tell() < end and produced <= need:
                data = f.read(min(end - f.tell(), _INFLATE_STEP))
                if not data:
                    break
                while data and produced <= need:
                    produced += len(inflate.decompress(data, _INFLATE_STEP))
                    data = inflate.unconsumed_tail
            f.seek(end + 4)
    if produced <= need:
        produced += len(inflate.flush())
    if produced < need:
        raise ImageReadError(f'the image data ends early: {produced} of the {need} bytes its '
                             'header size needs (rows are missing; a damaged or altered file)')
    if produced > need:
        raise ImageReadError(f'the image data is longer than the {need} bytes its header size '
                             'needs (a damaged or altered file)')


@contextlib.contextmanager
def _pillow_check_off() -> Iterator[None]:
    """Pillow's own decompression-bomb check switched off (under a lock) for the duration."""
    with _PILLOW_LIMIT_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def decode_rgb(path: str | os.PathLike, expected_hw: tuple[int, int] | None = None,
               exif_transpose: bool = False) -> np.ndarray:
    """Decode the image file ``path`` as ``(H, W, 3)`` uint8 RGB (any mode is converted; the first
    frame of an animation).

    Checks, raising :class:`ImageReadError`: the path is a regular file; the header's size is not
    empty, at most :func:`max_image_pixels` pixels and equal to ``expected_hw = (H, W)`` when
    given (all before decoding); the file decodes completely (truncated or corrupt data is an
    error) to the size its header states. ``exif_transpose`` applies the EXIF orientation (as
    photo viewers do); ``expected_hw`` is then compared with the rotated image.
    """
    return _decode(path, expected_hw, exif_transpose, _rgb_array)


def _decode(path: str | os.PathLike, expected_hw: tuple[int, int] | None, exif_transpose: bool,
            pixels: Callable[[Image.Image], np.ndarray]) -> np.ndarray:
    """:func:`decode_rgb` with ``pixels`` turning the loaded image into the array returned."""
    path = os.fspath(path)
    check_image_file(path)
    try:
        return _decode_file(path, expected_hw, exif_transpose, pixels)
    except Image.DecompressionBombError:
        pass  # Pillow's own limit is lower than ours: decode again with ours alone
    with _pillow_check_off():
        return _decode_file(path, expected_hw, exif_transpose, pixels)


def pil_to_rgb(im: Image.Image, exif_transpose: bool = False) -> np.ndarray:
    """An already opened PIL image as ``(H, W, 3)`` uint8 RGB, with the checks of
    :func:`decode_rgb` (size limit before the pixels are loaded, complete decoding)."""
    try:
        return _to_pixels(im, None, exif_transpose, _rgb_array)
    except Image.DecompressionBombError as err:
        raise ImageReadError(f'cannot read image ({_reason(err)})') from err


def _read(path: str, image_id: str, field: str, expected_hw: tuple[int, int] | None,
          pixels: Callable[[Image.Image], np.ndarray] = _rgb_array) -> np.ndarray:
    try:
        return _decode(path, expected_hw, False, pixels)
    except ImageReadError as err:
        raise DatasetError(problem(path, image_id, field, str(err))) from None


def read_image(path: str, image_id: str, expected_hw: tuple[int, int] | None = None) -> np.ndarray:
    """Read an image as ``(H, W, 3)`` uint8 RGB with the checks of :func:`decode_rgb`; problems
    raise :class:`DatasetError` naming the file, ``image_id`` and the field ``file_name``."""
    return _read(path, image_id, 'file_name', expected_hw)


def read_panoptic(path: str, image_id: str, segment_ids: Sequence[int],
                  expected_hw: tuple[int, int] | None = None) -> np.ndarray:
    """Read a panoptic PNG into an ``(H, W)`` int32 id map indexing ``segment_ids`` (-1 = void).

    Raises :class:`DatasetError` (field ``pan_seg_file_name``) if the PNG fails a check of
    :func:`decode_rgb`, and (field ``segments_info.id``) if a listed segment id does not occur
    in it.
    """
    pan_ids = _read(path, image_id, 'pan_seg_file_name', expected_hw, _rgb_ids)
    id_map = segment_ids_to_id_map(pan_ids, segment_ids)
    present = np.bincount(id_map.ravel() + 1, minlength=len(segment_ids) + 1)[1:] > 0
    missing = [int(s) for s, ok in zip(segment_ids, present) if not ok]
    if missing:
        raise DatasetError(problem(path, image_id, 'segments_info.id',
                                   f'segment id(s) {missing} do not occur in the panoptic PNG'))
    return id_map
