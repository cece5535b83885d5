"""The folder a challenge submission is written to: which folders may receive one, and putting a
finished submission in place so that nothing else is ever lost.

A folder may receive a submission if it does not exist, is empty, or holds a **previous
submission**: exactly ``relation.json`` (a regular file) and ``panseg/`` (a folder holding only
regular ``*.png`` files), nothing else, no symlinks. Any other folder (a checkout, a work dir with
checkpoints, a submission with a README added) is refused before anything is written.

A submission is written into a hidden staging folder beside the target
(``.<name>.submission-*``) and then swapped with the target in one step where the file system
allows it (Linux ``renameat2``), else by two renames between which the target name is briefly
absent while the previous submission is kept beside it. Either way a crash leaves the previous
submission or the new one at the target, never a mix; afterwards only the previous submission's
``relation.json`` and ``panseg/*.png`` are deleted. A run killed while writing leaves its hidden
staging folder beside the target (delete it by hand); one that fails otherwise removes it.
"""
from __future__ import annotations

import logging
import os
import stat
import tempfile

from ..errors import InputError
from ..fileio import exchange_paths, new_dir_mode

RELATION_FILE = 'relation.json'
PANSEG_DIR = 'panseg'

logger = logging.getLogger(__name__)


class SubmissionDirError(InputError, ValueError):
    """A folder that must not receive a submission (nothing was written)."""


def check_submission_dir(out_dir: str) -> None:
    """Raise :class:`SubmissionDirError` unless ``out_dir`` is absent, empty or a previous
    submission (see the module docstring)."""
    if not os.path.lexists(out_dir):
        ancestor = os.path.dirname(os.path.abspath(out_dir))
        while not os.path.lexists(ancestor):
            ancestor = os.path.dirname(ancestor)
        if not os.path.isdir(ancestor):
            raise SubmissionDirError(f'{out_dir}: cannot be created, {ancestor} is not a folder')
        return
    if not os.path.isdir(out_dir):
        raise SubmissionDirError(f'{out_dir}: exists and is not a folder; a submission needs a '
                                 'new folder, an empty one or a previous submission')
    try:
        reason = _not_a_submission(out_dir)
    except OSError as err:
        raise SubmissionDirError(f'{out_dir}: cannot list the folder ({err.strerror})') from err
    if reason is not None:
        raise SubmissionDirError(
            f'{out_dir}: not empty and not a previous submission ({reason}); refusing to write '
            f'there so that nothing in it is lost. Give a new or empty folder, or one holding only '
            f'{RELATION_FILE} and {PANSEG_DIR}/*.png from an earlier --submit.')


def _not_a_submission(folder: str) -> str | None:
    """Why the non-empty ``folder`` is not a previous submission (``None``: it is one, or empty)."""
    entries = {entry.name: entry for entry in os.scandir(folder)}
    if not entries:
        return None
    others = sorted(set(entries) - {RELATION_FILE, PANSEG_DIR})
    if others:
        shown = ', '.join(repr(name) for name in others[:5])
        return f'it holds {shown}' + (f' and {len(others) - 5} more' if len(others) > 5 else '')
    rel, panseg = entries.get(RELATION_FILE), entries.get(PANSEG_DIR)
    if rel is None or panseg is None:
        return f'it lacks {RELATION_FILE if rel is None else PANSEG_DIR + "/"}'
    if not rel.is_file(follow_symlinks=False):
        return f'{RELATION_FILE} is not a regular file'
    if not panseg.is_dir(follow_symlinks=False):
        return f'{PANSEG_DIR} is not a folder'
    for entry in os.scandir(panseg.path):
        if not (entry.is_file(follow_symlinks=False) and entry.name.endswith('.png')):
            return f'{PANSEG_DIR}/ holds {entry.name!r}, which is not a PNG file'
    return None


def make_staging_dir(out_dir: str) -> tuple[str, str]:
    """``(target, staging)``: the real path of ``out_dir`` (a symlink to a folder: that folder)
    and a new empty hidden folder beside it to write the submission into."""
    target = os.path.realpath(out_dir)
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    return target, tempfile.mkdtemp(prefix=f'.{os.path.basename(target)}.submission-', dir=parent)


def install_submission(staging: str, target: str) -> None:
    """Put the finished submission ``staging`` at ``target`` (checked again by
    :func:`check_submission_dir` first) and delete the previous submission, if any."""
    check_submission_dir(target)
    previous = os.path.lexists(target)
    os.chmod(staging, stat.S_IMODE(os.stat(target).st_mode) if previous else new_dir_mode())
    if not previous:
        os.rename(staging, target)
        return
    if exchange_paths(staging, target):
        _remove_previous(staging)
        return
    kept = f'{staging}.previous'
    os.rename(target, kept)
    try:
        os.rename(staging, target)
    except BaseException:
        os.rename(kept, target)
        raise
    _remove_previous(kept)


def _remove_previous(folder: str) -> None:
    """Delete a previous submission's ``relation.json``, ``panseg/*.png`` and the emptied
    folders; anything else found there is left in place, with a warning."""
    try:
        rel = os.path.join(folder, RELATION_FILE)
        if os.path.isfile(rel) and not os.path.islink(rel):
            os.unlink(rel)
        panseg = os.path.join(folder, PANSEG_DIR)
        if os.path.isdir(panseg) and not os.path.islink(panseg):
            for entry in os.scandir(panseg):
                if entry.is_file(follow_symlinks=False) and entry.name.endswith('.png'):
                    os.unlink(entry.path)
            os.rmdir(panseg)
        os.rmdir(folder)
    except OSError as err:
        logger.warning('the previous submission was moved to %s but not removed (%s); '
                       'delete it by hand', folder, err)
