"""Checks of plain values read from configs and files (numbers, flags, names, lists, dicts).

Each check is ``check(value, path) -> value`` and raises a :class:`~openpsg.config.ConfigError`
naming the dotted ``path`` of the value and what it must be::

    integer(1)(cfg.runner.max_epochs, 'runner.max_epochs')   # ConfigError: runner.max_epochs:
                                                             # must be an integer >= 1, got 0
"""
from __future__ import annotations

import math
from typing import Any, Callable, Mapping

from .config import ConfigError, join_path

Check = Callable[[Any, str], Any]


def integer(minimum: int | None = None, maximum: int | None = None) -> Check:
    """An ``int`` (not a bool) in ``[minimum, maximum]`` (either bound may be ``None``)."""

    def check(value: Any, path: str) -> int:
        if type(value) is not int or (minimum is not None and value < minimum) or (
                maximum is not None and value > maximum):
            bound = (f' >= {minimum}' if minimum is not None else '') + (
                f'{" and" if minimum is not None else ""} <= {maximum}'
                if maximum is not None else '')
            shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:40] + '...'
            raise ConfigError(f'{path}: must be an integer{bound}, got {shown}')
        return value

    return check


def number(positive: bool = False) -> Check:
    """A finite ``int`` or ``float`` (``> 0`` if ``positive``)."""

    def check(value: Any, path: str) -> float:
        if type(value) not in (int, float) or not math.isfinite(value) or (
                positive and value <= 0):
            kind = 'a finite number' + (' > 0' if positive else '')
            raise ConfigError(f'{path}: must be {kind}, got {value!r}')
        return value

    return check


def boolean(value: Any, path: str) -> bool:
    if type(value) is not bool:
        raise ConfigError(f'{path}: must be True or False, got {value!r}')
    return value


def one_of(*choices: Any) -> Check:
    def check(value: Any, path: str) -> Any:
        if value not in choices:
            raise ConfigError(f'{path}: must be one of {", ".join(map(repr, choices))}, '
                              f'got {value!r}')
        return value

    return check


def optional(inner: Check) -> Check:
    """``None`` or what ``inner`` accepts."""
    return lambda value, path: None if value is None else inner(value, path)


def mapping(value: Any, path: str) -> Mapping:
    if not isinstance(value, Mapping):
        raise ConfigError(f'{path}: must be a dict, got {value!r}')
    return value


def list_of(inner: Check) -> Check:
    """A list or tuple whose items ``inner`` accepts."""

    def check(value: Any, path: str) -> list:
        if type(value) not in (list, tuple):
            raise ConfigError(f'{path}: must be a list, got {value!r}')
        return [inner(v, join_path(path, i)) for i, v in enumerate(value)]

    return check


def text(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f'{path}: must be a non-empty string, got {value!r}')
    return value


def names(value: Any, path: str) -> list[str]:
    """One name or a list of names, as a list."""
    return [text(value, path)] if isinstance(value, str) else list_of(text)(value, path)
