"""Python config files, OpenMMLab style: ``_base_`` inheritance, deep merge, ``--cfg-options``.

A config is a ``.py`` file whose public top-level variables are the settings::

    _base_ = ['../_base_/models/psgtr_r50.py', '../_base_/datasets/psg.py']
    model = dict(bbox_head=dict(num_queries=50))          # merged into the inherited model
    optimizer = dict(_delete_=True, type='SGD', lr=0.01)  # replaces the inherited optimizer

    cfg = Config.fromfile('configs/psgtr/psgtr_r50_psg.py')
    cfg.model.bbox_head.num_queries                       # 50
    cfg.merge_from_dict(parse_cfg_options(['runner.max_epochs=1', 'data.train.pipeline.1.p=0.3']))
    cfg.dump('work_dirs/psgtr/config.py')                 # loads back to an equal config

Merge rules: dicts merge key by key, recursively; ``_delete_=True`` in a dict makes it replace the
inherited dict; every other value (lists and tuples included) replaces the inherited one.
"""
from __future__ import annotations

import argparse
import ast
import copy
import keyword
import math
import os
import traceback
import types
from pathlib import Path
from typing import Any, Iterable, Mapping

from .fileio import atomic_write

BASE_KEY = '_base_'
DELETE_KEY = '_delete_'
_LINE_WIDTH = 100


class ConfigError(ValueError):
    """A config file, a config value or a ``--cfg-options`` item that cannot be used."""


def _join(path: str, key: Any) -> str:
    return f'{path}.{key}' if path else str(key)


def _convert(value: Any, path: str) -> Any:
    """Turn dicts (also inside lists and tuples) into :class:`ConfigDict` rooted at ``path``."""
    if isinstance(value, Mapping):
        return ConfigDict(value, path)
    if type(value) in (list, tuple):
        return type(value)(_convert(v, _join(path, i)) for i, v in enumerate(value))
    return value


class ConfigDict(dict):
    """A dict whose keys are also attributes (``cfg.model.backbone.depth``); nested dicts are
    ConfigDicts too. ``path`` is the dotted key of this dict in its config (for error messages)."""

    def __init__(self, data: Mapping[str, Any] | None = None, path: str = '') -> None:
        super().__init__()
        object.__setattr__(self, '_path', path)
        for key, value in (data or {}).items():
            self[key] = value

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, _convert(value, _join(self._path, key)))

    def __getattr__(self, name: str) -> Any:
        if name.startswith('__') or name == '_path':
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            keys = ', '.join(map(str, self)) or '(none)'
            raise AttributeError(f"config has no key '{_join(self._path, name)}' "
                                 f"(keys at '{self._path or '<root>'}': {keys})") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __delattr__(self, name: str) -> None:
        if name not in self:
            raise AttributeError(f"config has no key '{_join(self._path, name)}'")
        del self[name]

    def __reduce__(self) -> tuple:
        return type(self), (dict(self), self._path)

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def copy(self) -> 'ConfigDict':
        """A copy with rebuilt nested dicts, lists and tuples (leaf values are shared)."""
        return copy.copy(self)

    def to_dict(self) -> dict[str, Any]:
        """A plain copy: ``dict``/``list``/``tuple`` all the way down."""
        return _plain(self)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if type(value) in (list, tuple):
        return type(value)(_plain(v) for v in value)
    return value


def merge(base: Any, override: Any) -> Any:
    """Deep-merge ``override`` onto ``base`` and return plain containers; inputs are not modified.

    Dict onto dict merges key by key unless ``override`` has ``_delete_=True`` (then it replaces);
    anything else replaces. ``_delete_`` keys never appear in the result.
    """
    if type(override) in (list, tuple):
        return type(override)(merge(None, v) for v in override)
    if not isinstance(override, Mapping):
        return override
    override = dict(override)
    replace = override.pop(DELETE_KEY, False)
    out = {} if replace or not isinstance(base, Mapping) else _plain(base)
    for key, value in override.items():
        out[key] = merge(out.get(key), value)
    return out


def _error_line(err: BaseException, file: str) -> str:
    """``', line N'`` of the innermost traceback frame that is in ``file`` (or ``''``)."""
    lines = [f.lineno for f in traceback.extract_tb(err.__traceback__) if f.filename == file]
    return f', line {lines[-1]}' if lines else ''


def _execute(path: Path) -> dict[str, Any]:
    """Run one config file; return its public variables plus ``_base_`` (if set)."""
    namespace: dict[str, Any] = {'__file__': str(path), '__name__': '__openpsg_config__'}
    try:
        source = path.read_text(encoding='utf-8')
        exec(compile(source, str(path), 'exec'), namespace)
    except SyntaxError as err:
        raise ConfigError(f'{path}, line {err.lineno}: syntax error: {err.msg}') from err
    except Exception as err:
        raise ConfigError(f'{path}{_error_line(err, str(path))}: '
                          f'{type(err).__name__} while executing the config: {err}') from err
    skip = (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, type)
    return {k: v for k, v in namespace.items()
            if (k == BASE_KEY or not k.startswith('_')) and not isinstance(v, skip)}


def _load(path: Path, chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Load ``path`` with its ``_base_`` files merged underneath; ``chain``: files including it."""
    path = path.resolve()
    if path in chain:
        cycle = ' -> '.join(str(p) for p in (*chain[chain.index(path):], path))
        raise ConfigError(f'{path}: _base_ files form a cycle: {cycle}')
    where = f' (listed in _base_ of {chain[-1]})' if chain else ''
    if not path.is_file():
        raise ConfigError(f'{path}: config file not found{where}')
    if path.suffix != '.py':
        raise ConfigError(f'{path}: config files must be Python (.py) files{where}')
    own = _execute(path)
    bases = own.pop(BASE_KEY, [])
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, (list, tuple)) or not all(isinstance(b, str) for b in bases):
        raise ConfigError(f'{path}: _base_ must be a path or a list of paths, got {bases!r}')
    merged: dict[str, Any] = {}
    for base in bases:
        merged = merge(merged, _load(path.parent / base, (*chain, path)))
    return merge(merged, own)


def _set_path(node: Any, keys: list[str], value: Any, done: str) -> Any:
    """Return ``node`` with ``value`` merged in at the key path ``keys`` (``done`` = path so far).

    Missing or non-container intermediate entries become dicts; an integer key indexes a list/tuple.
    """
    if not keys:
        return merge(node, value)
    key, rest = keys[0], keys[1:]
    path = _join(done, key)
    if type(node) in (list, tuple):
        try:
            index = int(key)
        except ValueError:
            raise ConfigError(f"cannot set '{path}': '{done}' is a list; "
                              'use an integer index') from None
        if not -len(node) <= index < len(node):
            raise ConfigError(f"cannot set '{path}': index {index} is out of range for "
                              f"'{done}' (length {len(node)})")
        items = list(node)
        items[index] = _set_path(items[index], rest, value, path)
        return type(node)(items)
    out = dict(node) if isinstance(node, Mapping) else {}
    out[key] = _set_path(out.get(key), rest, value, path)
    return out


def _is_name(key: Any) -> bool:
    return isinstance(key, str) and key.isidentifier() and not keyword.iskeyword(key)


def _format(value: Any, path: str, indent: int, lead: int) -> str:
    """Python source for ``value`` that evaluates back to an equal value (dicts as ``dict(...)``).

    ``indent`` is the nesting level, ``lead`` the number of characters before ``value`` on its line.
    """
    inner = 4 * (indent + 1)
    if isinstance(value, Mapping):
        if all(_is_name(k) for k in value):
            items = [f'{k}={_format(v, _join(path, k), indent + 1, inner + len(k) + 1)}'
                     for k, v in value.items()]
            return _wrap('dict(', items, ')', indent, lead)
        keys = [_format(k, path, indent + 1, inner) for k in value]
        items = [f'{k}: {_format(v, _join(path, key), indent + 1, inner + len(k) + 2)}'
                 for k, (key, v) in zip(keys, value.items())]
        return _wrap('{', items, '}', indent, lead)
    if type(value) in (list, tuple):
        items = [_format(v, _join(path, i), indent + 1, inner) for i, v in enumerate(value)]
        if type(value) is list:
            return _wrap('[', items, ']', indent, lead)
        return _wrap('(', items, ',)' if len(items) == 1 else ')', indent, lead)
    if type(value) is float and not math.isfinite(value):
        return f"float('{value}')"
    if value is None or type(value) in (bool, int, float, str):
        return repr(value)
    raise ConfigError(f"cannot write config key '{path}': a {type(value).__name__} value has no "
                      f'Python literal form (use str, int, float, bool, None, list, tuple or dict)')


def _wrap(open_: str, items: list[str], close: str, indent: int, lead: int) -> str:
    """One line if it fits in the line width (with a trailing comma), else one item per line."""
    one_line = open_ + ', '.join(items) + close
    if '\n' not in one_line and lead + len(one_line) + 1 <= _LINE_WIDTH:
        return one_line
    pad = '    ' * (indent + 1)
    body = ''.join(f'{pad}{item},\n' for item in items)
    return f'{open_}\n{body}{"    " * indent}{close.lstrip(",")}'


class Config(ConfigDict):
    """A whole config: a :class:`ConfigDict` and the ``filename`` it was read from (or ``None``)."""

    def __init__(self, cfg_dict: Mapping[str, Any] | None = None,
                 filename: str | None = None) -> None:
        if cfg_dict is not None and not isinstance(cfg_dict, Mapping):
            raise TypeError(f'Config needs a dict, got {type(cfg_dict).__name__}')
        super().__init__(cfg_dict)
        object.__setattr__(self, 'filename', filename)

    def __reduce__(self) -> tuple:
        return type(self), (dict(self), self.filename)

    def __repr__(self) -> str:
        return f'Config(filename={self.filename!r}, {dict.__repr__(self)})'

    @staticmethod
    def fromfile(path: str | os.PathLike) -> 'Config':
        """Load a ``.py`` config with its ``_base_`` files; errors name the offending file."""
        return Config(_load(Path(path)), filename=str(path))

    def merge_from_dict(self, options: Mapping[str, Any]) -> None:
        """Apply ``{'dotted.key': value}`` overrides in place, e.g. from :func:`parse_cfg_options`.

        Missing keys are created; an integer component indexes a list
        (``data.train.pipeline.1.scale``); a dict value is merged into an existing dict like a
        ``_base_`` override.
        """
        for dotted, value in options.items():
            keys = dotted.split('.')
            if not all(keys):
                raise ConfigError(f'config override key {dotted!r} has an empty component')
            self[keys[0]] = _set_path(self.get(keys[0]), keys[1:], value, keys[0])

    @property
    def pretty_text(self) -> str:
        """The config as Python source that :meth:`fromfile` loads back to an equal config."""
        lines = []
        for key, value in self.items():
            if not _is_name(key) or key.startswith('_'):
                raise ConfigError(f'cannot write top-level config key {key!r}: it must be a public '
                                  'Python name (no leading underscore)')
            lines.append(f'{key} = {_format(value, key, 0, len(key) + 3)}\n')
        return ''.join(lines)

    def dump(self, path: str | os.PathLike) -> None:
        """Write :attr:`pretty_text` to ``path`` (a ``.py`` file) atomically; creates its folder."""
        text = self.pretty_text
        with atomic_write(path, 'w') as f:
            f.write(text)


def _parse_value(text: str) -> Any:
    """A Python literal if ``text`` is one; ``a,b,c`` -> list of parsed items; else the string."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        if ',' in text:
            return [_parse_value(part) for part in text.split(',')]
        return text
    if type(value) is tuple and not text.strip().startswith('('):
        return list(value)
    return value


def parse_cfg_options(options: Iterable[str]) -> dict[str, Any]:
    """``['a.b=1', 'c=[1,2]', 'g=hello', 'h=1,2,3']`` -> ``{'a.b': 1, 'c': [1, 2], 'g': 'hello',
    'h': [1, 2, 3]}``. Values are Python literals where possible, strings otherwise."""
    out: dict[str, Any] = {}
    for item in options:
        key, sep, text = item.partition('=')
        if not sep or not key.strip():
            raise ConfigError(f'config option {item!r} is not of the form key=value')
        out[key.strip()] = _parse_value(text)
    return out


class DictAction(argparse.Action):
    """``parser.add_argument('--cfg-options', nargs='+', action=DictAction)`` collects the
    ``key=value`` items into one dict (repeated flags accumulate) for
    :meth:`Config.merge_from_dict`."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        items = [values] if isinstance(values, str) else list(values)
        try:
            parsed = parse_cfg_options(items)
        except ConfigError as err:
            raise argparse.ArgumentError(self, str(err)) from None
        setattr(namespace, self.dest, {**(getattr(namespace, self.dest, None) or {}), **parsed})
