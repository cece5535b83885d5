"""Writing files atomically: a reader sees the old file or the complete new one, never a part."""
from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path
from typing import IO, Callable, Iterator

# the temporary files of atomic_write and link_checkpoint: .<target name>.<random or pid>.tmp
TEMP_NAME = re.compile(r'\.(?P<target>.+)\.[a-z0-9_]+\.tmp')


def new_file_mode() -> int:
    """Permissions a plain ``open()`` would give a new file under the current umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = 'wb', fsync: bool = False) -> Iterator[IO]:
    """Open a temporary file beside ``path`` (creating the folder) and rename it over ``path``
    when the block ends without error; on error the temporary file is removed. ``fsync`` also
    flushes the data and the folder entry to disk (for checkpoints that must survive a crash)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.', suffix='.tmp')
    try:
        with os.fdopen(fd, mode, **({} if 'b' in mode else {'encoding': 'utf-8'})) as f:
            yield f
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp, new_file_mode())
        os.replace(tmp, path)
    except BaseException as err:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(err, OSError) and err.filename is None:
            err.filename = str(path)  # e.g. a full disk: name the file being written
        raise
    if fsync:
        fsync_dir(path.parent)


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


def stale_temp_files(folder: str | os.PathLike, target: Callable[[str], bool]) -> list[Path]:
    """Temporary files left in ``folder`` by an interrupted :func:`atomic_write` (names matching
    :data:`TEMP_NAME`, regular files only) whose target file name satisfies ``target``."""
    return sorted(p for p in Path(folder).iterdir()
                  if (m := TEMP_NAME.fullmatch(p.name)) and target(m['target'])
                  and p.is_file() and not p.is_symlink())
