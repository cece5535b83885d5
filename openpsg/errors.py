"""The base class of every error that bad input causes (as opposed to a bug in the code).

A config, a dataset, a checkpoint, a submission, an image or a command-line value that cannot be
used raises a subclass of :class:`InputError` whose message names the file and the field (and the
image id where there is one). The command-line tools (:mod:`openpsg.cli`) print such an error as
one line and exit with status 1; any other exception is reported as a bug.
"""
from __future__ import annotations


class InputError(Exception):
    """Input that cannot be used; the message says which file, key or field and why."""
