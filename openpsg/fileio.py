"""Writing files atomically: a reader sees the old file or the complete new one, never a part.

Every writer here removes its temporary files on any failure, and an ``OSError`` that does not
say which file it is about (a full disk: ``ENOSPC`` from ``write``) is raised again naming the
file being written.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import os
import re
import tempfile
from pathlib import Path
from typing import IO, Callable, Iterator, Mapping

# the temporary files of atomic_write and link_checkpoint: .<target name>.<random or pid>.tmp
TEMP_NAME = re.compile(r'\.(?P<target>.+)\.[a-z0-9_]+\.tmp')


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def new_file_mode() -> int:
    """Permissions a plain ``open()`` would give a new file under the current umask."""
    return 0o666 & ~_umask()


def new_dir_mode() -> int:
    """Permissions a plain ``os.mkdir()`` would give a new folder under the current umask."""
    return 0o777 & ~_umask()


@contextlib.contextmanager
def naming_errors(path: str | os.PathLike) -> Iterator[None]:
    """Raise an ``OSError`` of the block that names no file again with ``path`` as its file
    (same type and errno), so that a message says which file could not be written."""
    try:
        yield
    except OSError as err:
        if err.filename is not None or err.errno is None:
            raise
        raise type(err)(err.errno, err.strerror, os.fspath(path)) from err


def _temp_beside(path: Path) -> tuple[int, str]:
    """Create the folder of ``path`` and an empty hidden temporary file in it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.', suffix='.tmp')


def _discard(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = 'wb', fsync: bool = False) -> Iterator[IO]:
    """Open a temporary file beside ``path`` (creating the folder) and rename it over ``path``
    when the block ends without error; on error the temporary file is removed. ``fsync`` also
    flushes the data and the folder entry to disk (for checkpoints that must survive a crash)."""
    path = Path(path)
    with naming_errors(path):
        fd, tmp = _temp_beside(path)
        try:
            with os.fdopen(fd, mode, **({} if 'b' in mode else {'encoding': 'utf-8'})) as f:
                yield f
                if fsync:
                    f.flush()
                    os.fsync(f.fileno())
            os.chmod(tmp, new_file_mode())
            os.replace(tmp, path)
        except BaseException:
            _discard(tmp)
            raise
    if fsync:
        fsync_dir(path.parent)


def write_files_atomically(contents: Mapping[str | os.PathLike, str | bytes]) -> None:
    """Write several files (``path -> text or bytes``) as one: every file is written to a
    temporary file beside it first and then renamed into place. On any error no temporary file
    is left and files already renamed into place are removed again, so the set is either all
    new or absent (never one new file without the others)."""
    staged: list[tuple[str, Path]] = []
    placed: list[Path] = []
    try:
        for path, data in contents.items():
            path = Path(path)
            with naming_errors(path):
                fd, tmp = _temp_beside(path)
                staged.append((tmp, path))
                with os.fdopen(fd, 'wb') as f:
                    f.write(data.encode('utf-8') if isinstance(data, str) else data)
                os.chmod(tmp, new_file_mode())
        for tmp, path in staged:
            with naming_errors(path):
                os.replace(tmp, path)
            placed.append(path)
    except BaseException:
        for tmp, _ in staged:
            _discard(tmp)
        for path in placed:
            _discard(str(path))
        raise


def stale_temp_files(folder: str | os.PathLike, target: Callable[[str], bool]) -> list[Path]:
    """Temporary files left in ``folder`` by an interrupted :func:`atomic_write` (names matching
    :data:`TEMP_NAME`, regular files only) whose target file name satisfies ``target``."""
    return sorted(p for p in Path(folder).iterdir()
                  if (m := TEMP_NAME.fullmatch(p.name)) and target(m['target'])
                  and p.is_file() and not p.is_symlink())


def fsync_dir(folder: str | os.PathLike) -> None:
    """Flush a folder's entries (renames) to disk where the platform allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


@functools.lru_cache(maxsize=1)
def _renameat2():
    """libc's ``renameat2`` (Linux, glibc >= 2.28), or ``None``."""
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError, TypeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                         ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


def exchange_paths(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Swap two existing paths on one file system in a single atomic step (Linux
    ``renameat2(RENAME_EXCHANGE)``): at every moment both names exist. Returns ``False``, having
    changed nothing, where the platform or the file system cannot do it."""
    function = _renameat2()
    if function is None:
        return False
    if function(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), os.fspath(a), None, os.fspath(b))
