"""Paths read from files: a name taken from an annotation file or a submission must stay inside
the folder it is relative to.

:func:`resolve_inside` is the one place where a root folder is joined with such a name. It
refuses absolute paths, ``..`` that leads out, symlinks whose target lies outside the root (the
root's own location is resolved first, so a symlinked root is fine), and names of things that are
not regular files (devices, FIFOs, sockets, folders), before anything is opened.
"""
from __future__ import annotations

import os
import stat

from .errors import InputError
from .safe_json import describe, printable


class OutsideRootError(InputError, ValueError):
    """A name read from a file that does not lead to a regular file inside its root folder;
    ``str(err)`` says why (the caller adds the file, image_id and field)."""


def check_relative_name(name: object, allow_outside: bool = False) -> str | None:
    """Why ``name`` cannot be a path relative to a root, judged from the text alone (``None`` if
    it can): not a non-empty string, a NUL byte, not encodable as a file name, absolute, or
    leading out of the root with ``..``. ``allow_outside`` accepts absolute and ``..`` paths."""
    if not isinstance(name, str) or not name:
        return (f'must be a non-empty relative path string, got {type(name).__name__} '
                f'{describe(name)}')
    if '\0' in name:
        return 'contains a NUL byte'
    try:
        os.fsencode(name)
    except UnicodeError:
        return f'{describe(name)} cannot be encoded as a file name'
    if allow_outside:
        return None
    if os.path.isabs(name):
        return f'{describe(name)} is an absolute path (names are relative to their folder)'
    normal = os.path.normpath(name)
    if normal == os.curdir:
        return f'{describe(name)} names the folder itself, not a file in it'
    if normal == os.pardir or normal.startswith(os.pardir + os.sep):
        return f'{describe(name)} leads out of its folder (..)'
    return None


def resolve_inside(root: str | os.PathLike, name: object, allow_outside: bool = False) -> str:
    """The absolute path of ``name`` (read from a file) under the folder ``root``.

    Raises :class:`OutsideRootError` if :func:`check_relative_name` refuses ``name``, if the path
    with every symlink resolved is not inside ``root`` (itself resolved), or if it exists and is
    not a regular file. A path that does not exist is returned (reading it then reports the
    missing file). ``allow_outside=True`` only joins the two (absolute names stay as they are)
    and keeps the regular-file rule.
    """
    reason = check_relative_name(name, allow_outside)
    if reason is not None:
        raise OutsideRootError(reason)
    path = os.path.abspath(os.path.join(root, name))
    real = os.path.realpath(path)
    if not allow_outside:
        real_root = os.path.realpath(root)
        if not _strictly_inside(real, real_root):
            raise OutsideRootError(f'{describe(name)} resolves to {printable(real)}, outside '
                                   f'{printable(real_root)} (a symlink leading out)')
    try:
        mode = os.stat(real).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return path
    except OSError as err:
        raise OutsideRootError(f'{describe(name)}: cannot inspect {printable(real)} '
                               f'({err.strerror})') from err
    if not stat.S_ISREG(mode):
        raise OutsideRootError(f'{describe(name)} is not a regular file (a folder, device, FIFO '
                               'or socket)')
    return path


def _strictly_inside(path: str, folder: str) -> bool:
    try:
        return path != folder and os.path.commonpath([path, folder]) == folder
    except ValueError:  # different drives
        return False
