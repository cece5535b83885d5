"""Reading JSON that other people wrote: every way a file can be unreadable is one clear error.

:func:`load_json` is the one reader of user JSON in openpsg (annotation files, submissions'
``relation.json``, prediction files, score files read back). Beyond syntax errors it turns the
failures of Python's :mod:`json` that are not :class:`json.JSONDecodeError` into a
:class:`JSONFileError` naming the file: nesting deeper than the parser can follow
(``RecursionError``), integer literals longer than Python converts (``ValueError``), bytes that are
not UTF-8, and paths that are not regular files (a FIFO would block, a device never ends).

What it does not judge is left to the reader of each schema, which names the field: numbers that
do not fit where they are used (``height: 2**70``), ``NaN``/``Infinity``/``1e999`` where a finite
number is required, or a top level of the wrong type. :func:`describe` shows any parsed value in a
message at a bounded length and depth.
"""
from __future__ import annotations

import json
import os
import reprlib
import stat
from typing import Any

from .errors import InputError


class JSONFileError(InputError, ValueError):
    """A JSON file that cannot be read. ``path`` is the file, ``reason`` says why;
    ``str(err)`` is ``'PATH: REASON'``."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f'{path}: {reason}')


def load_json(path: str | os.PathLike) -> Any:
    """Parse the UTF-8 JSON file ``path`` (a leading byte-order mark is allowed).

    Raises :class:`JSONFileError` for a missing path or one that is not a regular file, a read
    error, bytes that are not UTF-8, invalid JSON (with line and column), nesting too deep to
    parse, or an integer literal too long to convert.
    """
    path = os.fspath(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise JSONFileError(path, 'file not found') from None
    except OSError as err:
        raise JSONFileError(path, f'cannot read the file ({err.strerror})') from err
    if not stat.S_ISREG(mode):
        raise JSONFileError(path, 'not a regular file (a folder, device, FIFO or socket)')
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except OSError as err:
        raise JSONFileError(path, f'cannot read the file ({err.strerror})') from err
    try:
        text = data.decode('utf-8-sig')
    except UnicodeDecodeError as err:
        raise JSONFileError(path, f'not valid JSON: not UTF-8 text (byte 0x{data[err.start]:02x} '
                                  f'at offset {err.start})') from None
    del data
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise JSONFileError(path, f'not valid JSON: {err.msg} at line {err.lineno}, column '
                                  f'{err.colno}') from None
    except RecursionError:
        raise JSONFileError(path, 'not valid JSON for openpsg: nested too deeply (arrays or '
                                  'objects inside each other beyond what the parser follows)'
                            ) from None
    except ValueError as err:  # int literal beyond sys.get_int_max_str_digits()
        raise JSONFileError(path, f'not valid JSON for openpsg: a number literal cannot be read '
                                  f'({str(err).split(";")[0]})') from None


_describer = reprlib.Repr()
_describer.maxlevel = 3
_describer.maxlist = _describer.maxtuple = 6
_describer.maxdict = 4
_describer.maxstring = _describer.maxother = 60
_describer.maxlong = 40


def describe(value: Any) -> str:
    """``repr(value)`` for an error message, shortened: at most three levels deep, a few items
    per container, long strings and numbers cut (``...``)."""
    return _describer.repr(value)


def printable(text: str) -> str:
    """``text`` as it is if it prints as one line, else escaped (``ascii``) so that a line break
    or a lone surrogate in a file name cannot break or forge a message."""
    return text if text.isprintable() else ascii(text)
