"""What every command-line tool does with an error: one clear message, a documented exit status.

    @cli.tool('train.py')
    def main(argv: list[str] | None = None) -> int:
        parser = argparse.ArgumentParser(...)
        cli.add_debug_argument(parser)
        ...

Exit status of every tool:

* ``0`` — done;
* ``1`` — the input cannot be used: an :class:`~openpsg.errors.InputError` (bad config, dataset,
  checkpoint, submission, image, ...), a file that cannot be read or written (``OSError``, e.g.
  a full disk, naming the file) or too little memory. One line (or one list of problems) on
  stderr, no traceback;
* ``2`` — the command line itself is wrong (argparse's usage message);
* ``3`` — a bug (any other exception): its type and message, and how to see the traceback;
* ``130`` — interrupted (Ctrl-C).

Tools may define more specific codes of their own (documented in their docstring).
``--debug`` or the environment variable ``OPENPSG_DEBUG=1`` also prints the full traceback.
An error raised inside a DataLoader worker process is reported with the dataset's own message,
not with the worker's wrapper text.
"""
from __future__ import annotations

import argparse
import errno
import functools
import os
import re
import sys
import traceback
from typing import Callable, Sequence

import torch

from .errors import InputError

EXIT_INPUT = 1
EXIT_BUG = 3
EXIT_INTERRUPTED = 130
DEBUG_ENV = 'OPENPSG_DEBUG'
_CUDA_OOM = getattr(torch, 'OutOfMemoryError', torch.cuda.OutOfMemoryError)


class ArgumentError(InputError):
    """A command-line value that cannot be used (beyond what argparse checks)."""


_WORKER = re.compile(r'^Caught \w+ in DataLoader worker process \d+\.\nOriginal Traceback '
                     r'\(most recent call last\):\n', re.S)


def add_debug_argument(parser: argparse.ArgumentParser) -> None:
    """``--debug``: print the full traceback of an error (as ``OPENPSG_DEBUG=1`` does)."""
    parser.add_argument('--debug', action='store_true',
                        help=f'print the full traceback of an error (or set {DEBUG_ENV}=1)')


def debug_requested(argv: Sequence[str] | None) -> bool:
    """``--debug`` in ``argv`` (``sys.argv[1:]`` if ``None``) or ``OPENPSG_DEBUG`` set to a true
    value."""
    args = sys.argv[1:] if argv is None else argv
    return '--debug' in args or os.environ.get(DEBUG_ENV, '').lower() in ('1', 'true', 'yes')


def worker_message(message: str) -> str:
    """The original message of an exception re-raised by a DataLoader from a worker process
    (``message`` itself for any other exception)."""
    if not _WORKER.match(message):
        return message
    block = message.rsplit('Traceback (most recent call last):\n', 1)[-1]
    lines = block.splitlines()
    start = next((i for i, line in enumerate(lines) if line and not line.startswith(' ')),
                 len(lines) - 1)
    first, *rest = lines[start:] or ['']
    original = first.split(': ', 1)[1] if ': ' in first else first
    return '\n'.join([original, *rest]).strip()


def describe(err: BaseException) -> tuple[int, str]:
    """The exit status and the message for ``err``."""
    if isinstance(err, KeyboardInterrupt):
        return EXIT_INTERRUPTED, 'interrupted'
    message = worker_message(str(err.args[0]) if isinstance(err, KeyError) and err.args
                             else str(err))
    if isinstance(err, InputError):
        return EXIT_INPUT, message
    if isinstance(err, OSError):
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            target = err.filename or 'a file'
            return EXIT_INPUT, f'no space left on the device writing {target} ({err.strerror})'
        where = f' ({err.filename})' if err.filename and str(err.filename) not in message else ''
        return EXIT_INPUT, f'{message}{where}'
    if isinstance(err, (MemoryError, _CUDA_OOM)):
        return EXIT_INPUT, (f'out of memory ({type(err).__name__}: {message}); use smaller '
                            'batches (data.samples_per_gpu) or images')
    return EXIT_BUG, (f'internal error: {type(err).__name__}: {message}\n'
                      f'  this is a bug (in openpsg or in a custom module); run again with --debug '
                      f'(or {DEBUG_ENV}=1) to see the traceback, and report it')


def tool(prog: str) -> Callable[[Callable[..., int]], Callable[..., int]]:
    """Decorate a tool's ``main(argv=None) -> int``: an exception becomes ``prog: error: ...`` on
    stderr and the exit status of :func:`describe` (with the traceback under ``--debug``)."""

    def decorate(main: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(main)
        def run(argv: list[str] | None = None) -> int:
            try:
                return main(argv)
            except SystemExit:
                raise
            except BaseException as err:  # noqa: BLE001 - every error gets one clear message
                status, message = describe(err)
                if debug_requested(argv):
                    traceback.print_exc()
                # free the failed frames' objects now: open progress bars close and clear their line
                traceback.clear_frames(err.__traceback__)
                label = 'error: ' if status != EXIT_BUG else ''
                print(f'{prog}: {label}{message}', file=sys.stderr)
                return status

        return run

    return decorate
