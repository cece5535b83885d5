"""Python config files, OpenMMLab style: ``_base_`` inheritance, deep merge, ``--cfg-options``.

A config is a ``.py`` file whose public top-level variables are the settings::

    _base_ = ['../_base_/models/psgtr_r50.py', '../_base_/datasets/psg.py']
    model = dict(bbox_head=dict(num_queries=50))          # merged into the inherited model
    optimizer = dict(_delete_=True, type='SGD', lr=0.01)  # replaces the inherited optimizer

    cfg = Config.fromfile('configs/psgtr/psgtr_r50_psg.py')
    cfg.model.bbox_head.num_queries                       # 50
    cfg = Config.fromfile(path, overrides=parse_cfg_options(['runner.max_epochs=1',
                                                             'data_root=/data/psg_synth/']))
    cfg.dump('work_dirs/psgtr/config.py')                 # loads back to an equal config

Merge rules: dicts merge key by key, recursively; ``_delete_=True`` in a dict makes it replace the
inherited dict; every other value (lists and tuples included) replaces the inherited one.

Top-level keys are either *settings* (:data:`SETTINGS`, the keys the tools read: ``model``,
``data``, ``optimizer``, ...) or *helper variables* that the files use to compute settings
(``data_root``, ``img_norm_cfg``, ``train_pipeline``, ...). An override of a setting is merged
into the loaded config. An override of a whole helper variable (``data_root=/x``) replaces its
assignment in every file before the files run, so every setting computed from it follows; a
dotted override inside a helper, or an override of a helper no file assigns, is an error.
"""
from __future__ import annotations

import argparse
import ast
import copy
import difflib
import keyword
import math
import os
import sys
import traceback
import types
from pathlib import Path
from typing import Any, Collection, Iterable, Iterator, Mapping

from .errors import InputError
from .fileio import atomic_write

BASE_KEY = '_base_'
DELETE_KEY = '_delete_'
SETTINGS = frozenset({
    'model', 'data', 'optimizer', 'optimizer_config', 'lr_config', 'runner', 'evaluation',
    'checkpoint_config', 'log_config', 'custom_hooks', 'custom_imports', 'dist_params',
    'find_unused_parameters', 'freeze_modules', 'amp', 'load_from', 'resume', 'work_dir', 'seed'})
_OVERRIDES = '__openpsg_overrides__'
_REPLACED = '__openpsg_replaced__'
_READING: list[Path] = []  # files being loaded by read_config, outermost first
_LINE_WIDTH = 100


class ConfigError(InputError, ValueError):
    """A config file, a config value or a ``--cfg-options`` item that cannot be used."""


class MissingKeyError(ConfigError, AttributeError):
    """A config key that is read but not set (``cfg.data.test`` of a config without it)."""


def join_path(path: str, key: Any) -> str:
    """``'model.head'`` + ``'depth'`` -> ``'model.head.depth'`` (``''`` is the root)."""
    return f'{path}.{key}' if path else str(key)


def config_path(value: Any, default: str = '') -> str:
    """The dotted path of ``value`` in its config if it is a :class:`ConfigDict` that knows it,
    else ``default``."""
    return getattr(value, '_path', '') or default if isinstance(value, ConfigDict) else default


def _convert(value: Any, path: str) -> Any:
    """Turn dicts (also inside lists and tuples) into :class:`ConfigDict` rooted at ``path``."""
    if isinstance(value, Mapping):
        return ConfigDict(value, path)
    if type(value) in (list, tuple):
        return type(value)(_convert(v, join_path(path, i)) for i, v in enumerate(value))
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
        super().__setitem__(key, _convert(value, join_path(self._path, key)))

    def __getattr__(self, name: str) -> Any:
        if name.startswith('__') or name == '_path':
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            keys = ', '.join(map(str, self)) or '(none)'
            raise MissingKeyError(f"config has no key '{join_path(self._path, name)}' "
                                  f"(keys at '{self._path or '<root>'}': {keys})") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __delattr__(self, name: str) -> None:
        if name not in self:
            raise AttributeError(f"config has no key '{join_path(self._path, name)}'")
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


def _statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """The statements that run at module level: ``body`` and the blocks of its ``if``, ``for``,
    ``while``, ``with`` and ``try`` statements (not function or class bodies)."""
    for stmt in body:
        yield stmt
        for field in ('body', 'orelse', 'finalbody'):
            if not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                yield from _statements(getattr(stmt, field, []))
        for handler in getattr(stmt, 'handlers', []):
            yield from _statements(handler.body)


def _bound_names(stmt: ast.stmt) -> set[str]:
    """Module-level names that ``stmt`` itself binds or deletes (not its nested blocks)."""
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {stmt.name}
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).split('.')[0] for a in stmt.names}
    if isinstance(stmt, ast.Try):
        return {h.name for h in stmt.handlers if h.name}
    if isinstance(stmt, (ast.If, ast.While)):
        return set()
    if isinstance(stmt, (ast.For, ast.AsyncFor)):
        parts = [stmt.target]
    elif isinstance(stmt, (ast.With, ast.AsyncWith)):
        parts = [item.optional_vars for item in stmt.items if item.optional_vars is not None]
    else:
        parts = [stmt]
    return {node.id for part in parts for node in ast.walk(part)
            if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del))}


def _replace_assignments(source: str, path: Path, names: Collection[str],
                         replaced: set[str]) -> types.CodeType:
    """Compile ``source`` with the value of every plain ``NAME = value`` assignment of a name in
    ``names`` read from the ``__openpsg_overrides__`` dict instead; adds those names to
    ``replaced``. A name bound any other way (``+=``, unpacking, ``for``, ``import``, ...) is a
    :class:`ConfigError`."""
    tree = ast.parse(source, str(path))
    for stmt in _statements(tree.body):
        for name in sorted(_bound_names(stmt) & set(names)):
            plain = (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
                     and isinstance(stmt.targets[0], ast.Name)) or (
                isinstance(stmt, ast.AnnAssign) and stmt.value is not None
                and isinstance(stmt.target, ast.Name))
            if not plain:
                raise ConfigError(
                    f'{path}, line {stmt.lineno}: cannot override {name!r}: this line binds it '
                    f'other than by a plain "{name} = ..." ({type(stmt).__name__} statement); '
                    f'override the settings computed from it instead')
            stmt.value = ast.copy_location(ast.Subscript(
                value=ast.Name(id=_OVERRIDES, ctx=ast.Load()), slice=ast.Constant(value=name),
                ctx=ast.Load()), stmt.value)
            replaced.add(name)
    return compile(ast.fix_missing_locations(tree), str(path), 'exec')


def _execute(path: Path, replace: Mapping[str, Any], replaced: set[str]) -> dict[str, Any]:
    """Run one config file, with the assignments of the names in ``replace`` replaced by its
    values (names found are added to ``replaced``); return its public variables plus ``_base_``
    (if set)."""
    namespace: dict[str, Any] = {'__file__': str(path), '__name__': '__openpsg_config__',
                                 _OVERRIDES: copy.deepcopy(dict(replace)), _REPLACED: replaced}
    try:
        source = path.read_text(encoding='utf-8')
        code = (_replace_assignments(source, path, replace, replaced) if replace
                else compile(source, str(path), 'exec'))
        exec(code, namespace)
    except SyntaxError as err:
        raise ConfigError(f'{path}, line {err.lineno}: syntax error: {err.msg}') from err
    except ConfigError:
        raise
    except Exception as err:
        raise ConfigError(f'{path}{_error_line(err, str(path))}: '
                          f'{type(err).__name__} while executing the config: {err}') from err
    skip = (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, type)
    return {k: v for k, v in namespace.items()
            if (k == BASE_KEY or not k.startswith('_')) and not isinstance(v, skip)}


def _load(path: Path, chain: tuple[Path, ...] = (), replace: Mapping[str, Any] | None = None,
          replaced: set[str] | None = None) -> dict[str, Any]:
    """Load ``path`` with its ``_base_`` files merged underneath; ``chain``: files including it;
    ``replace``/``replaced``: see :func:`_execute`."""
    path = path.resolve()
    replace = replace or {}
    replaced = set() if replaced is None else replaced
    if path in chain:
        cycle = ' -> '.join(str(p) for p in (*chain[chain.index(path):], path))
        raise ConfigError(f'{path}: _base_ files form a cycle: {cycle}')
    where = f' (listed in _base_ of {chain[-1]})' if chain else ''
    if not path.is_file():
        raise ConfigError(f'{path}: config file not found{where}')
    if path.suffix != '.py':
        raise ConfigError(f'{path}: config files must be Python (.py) files{where}')
    own = _execute(path, replace, replaced)
    bases = own.pop(BASE_KEY, [])
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, (list, tuple)) or not all(isinstance(b, str) for b in bases):
        raise ConfigError(f'{path}: _base_ must be a path or a list of paths, got {bases!r}')
    merged: dict[str, Any] = {}
    for base in bases:
        merged = merge(merged, _load(path.parent / base, (*chain, path), replace, replaced))
    return merge(merged, own)


def _paths_holding(node: Any, value: Any, path: str) -> list[str]:
    """Dotted paths under ``node`` (at ``path``) whose value equals ``value``."""
    if type(node) is type(value) and node == value:
        return [path]
    items = node.items() if isinstance(node, Mapping) else (
        enumerate(node) if type(node) in (list, tuple) else ())
    return [p for k, v in items for p in _paths_holding(v, value, join_path(path, k))]


def _helper_override_error(key: str, cfg: Mapping[str, Any], source: str) -> ConfigError:
    """The error for an override ``key`` that is not a setting: a dotted key inside a helper
    variable (naming the settings that hold the helper's value), or a key no file assigns."""
    name, *rest = key.split('.')
    if name in cfg:
        users = [join_path(p, '.'.join(rest)) for k in cfg if k in SETTINGS
                 for p in _paths_holding(cfg[k], cfg[name], k)]
        instead = f'; set {", ".join(users)} instead' if users else (
            '; override the settings computed from it instead')
        return ConfigError(
            f"config override {key!r}: '{name}' is a helper variable of {source}, not a setting; "
            f'the files compute settings from it when they run, so it can only be replaced whole '
            f'({name}=...){instead}')
    close = difflib.get_close_matches(name, [*SETTINGS, *cfg], n=1, cutoff=0.75)
    hint = f"; did you mean '{'.'.join([close[0], *rest])}'?" if close else ''
    return ConfigError(f"config override {key!r}: no file of {source} assigns a top-level "
                       f"{name!r} and no tool reads it{hint}")


def _set_path(node: Any, keys: list[str], value: Any, done: str) -> Any:
    """Return ``node`` with ``value`` merged in at the key path ``keys`` (``done`` = path so far).

    Missing or non-container intermediate entries become dicts; an integer key indexes a list/tuple.
    """
    if not keys:
        return merge(node, value)
    key, rest = keys[0], keys[1:]
    path = join_path(done, key)
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
            items = [f'{k}={_format(v, join_path(path, k), indent + 1, inner + len(k) + 1)}'
                     for k, v in value.items()]
            return _wrap('dict(', items, ')', indent, lead)
        keys = [_format(k, path, indent + 1, inner) for k in value]
        items = [f'{k}: {_format(v, join_path(path, key), indent + 1, inner + len(k) + 2)}'
                 for k, (key, v) in zip(keys, value.items())]
        return _wrap('{', items, '}', indent, lead)
    if type(value) in (list, tuple):
        items = [_format(v, join_path(path, i), indent + 1, inner) for i, v in enumerate(value)]
        if type(value) is list:
            return _wrap('[', items, ']', indent, lead)
        return _wrap('(', items, ',)' if len(items) == 1 else ')', indent, lead)
    if type(value) is float and not math.isfinite(value):
        return f"float('{value}')"
    if value is None or type(value) in (bool, int, float, str):
        return repr(value)
    raise ConfigError(f"cannot write config key '{path}': a {type(value).__name__} value has no "
                      f'Python literal form (use str, int, float, bool, None, list, tuple or dict)')


def _literal(node: ast.AST, source: str) -> Any:
    """The value of an expression that :func:`_format` writes: literals, lists, tuples, dicts,
    ``dict(key=value, ...)`` and ``float('nan' | 'inf' | '-inf')``."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [_literal(e, source) for e in node.elts]
        return items if isinstance(node, ast.List) else tuple(items)
    if isinstance(node, ast.Dict) and None not in node.keys:
        return {_literal(k, source): _literal(v, source) for k, v in zip(node.keys, node.values)}
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(
            node.operand, ast.Constant) and type(node.operand.value) in (int, float):
        return -node.operand.value
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        if node.func.id == 'dict' and not node.args and all(k.arg for k in node.keywords):
            return {k.arg: _literal(k.value, source) for k in node.keywords}
        if (node.func.id == 'float' and not node.keywords and len(node.args) == 1
                and isinstance(node.args[0], ast.Constant)
                and node.args[0].value in ('nan', 'inf', '-inf')):
            return float(node.args[0].value)
    raise ConfigError(f'{source}, line {getattr(node, "lineno", "?")}: not a value a dumped '
                      f'config holds ({type(node).__name__}); it is not evaluated')


def read_dumped_config(text: str, source: str) -> dict[str, Any]:
    """The config that :meth:`Config.dump` wrote as ``text``, read **without running it** (for
    text from an untrusted place, e.g. a checkpoint's ``meta.config``): only ``name = value``
    statements with the values :meth:`Config.pretty_text` writes are accepted; anything else is a
    :class:`ConfigError` naming ``source``."""
    try:
        tree = ast.parse(text, source)
    except (SyntaxError, ValueError, MemoryError, RecursionError) as err:
        raise ConfigError(f'{source}: not a dumped config ({type(err).__name__}: {err})') from None
    out: dict[str, Any] = {}
    for stmt in tree.body:
        if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
                and isinstance(stmt.targets[0], ast.Name)):
            raise ConfigError(f'{source}, line {stmt.lineno}: only "name = value" statements '
                              'are read from a dumped config')
        try:
            out[stmt.targets[0].id] = _literal(stmt.value, source)
        except RecursionError:
            raise ConfigError(f'{source}, line {stmt.lineno}: value nested too deeply') from None
    return out


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
    def fromfile(path: str | os.PathLike, overrides: Mapping[str, Any] | None = None) -> 'Config':
        """Load a ``.py`` config with its ``_base_`` files; errors name the offending file.

        ``overrides`` (``{'dotted.key': value}``, e.g. from :func:`parse_cfg_options`): a whole
        helper variable (a top-level key that is not in :data:`SETTINGS`) replaces its
        assignments in the files before they run; settings are then merged in as by
        :meth:`merge_from_dict` (see the module docstring).
        """
        overrides = dict(overrides or {})
        for key in overrides:
            if not all(key.split('.')):
                raise ConfigError(f'config override key {key!r} has an empty component')
        helpers = {k: v for k, v in overrides.items() if k not in SETTINGS and '.' not in k}
        replaced: set[str] = set()
        cfg = Config(_load(Path(path), replace=helpers, replaced=replaced), filename=str(path))
        for key in overrides:
            if key.split('.')[0] not in SETTINGS and key not in replaced:
                raise _helper_override_error(key, cfg, str(path))
        for key in cfg:
            close = difflib.get_close_matches(key, SETTINGS, n=1, cutoff=0.85)
            if key not in SETTINGS and close:
                raise ConfigError(f"{path}: top-level {key!r} is not a setting; did you mean "
                                  f"'{close[0]}'? (no tool reads {key!r}; rename it if it is a "
                                  'helper variable)')
        cfg.merge_from_dict({k: v for k, v in overrides.items() if k.split('.')[0] in SETTINGS})
        return cfg

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


def read_config(path: str | os.PathLike) -> Config:
    """Another config, for use inside a config file: ``path`` is relative to the file that calls
    it (as detectron2's ``LazyConfig.load_rel``), and the helper-variable overrides of the
    command line apply to it too. A two-stage config takes its segmenter from the config that
    trained it::

        from openpsg.config import read_config
        model = dict(segmenter=read_config('../panoptic_fcn/panoptic_fcn_tiny_synth.py').model)

    Outside a config file ``path`` is relative to the working directory. The value read is written
    out in full when the calling config is dumped, so a dumped config stands alone.
    """
    caller = sys._getframe(1).f_globals
    inside = caller.get('__name__') == '__openpsg_config__'
    base = Path(caller['__file__']).parent if inside else Path.cwd()
    target = (base / path).resolve()
    if target in _READING:
        cycle = ' -> '.join(str(p) for p in (*_READING[_READING.index(target):], target))
        raise ConfigError(f'{target}: read_config calls form a cycle: {cycle}')
    _READING.append(target)
    try:
        return Config(_load(target, replace=caller.get(_OVERRIDES) if inside else None,
                            replaced=caller.get(_REPLACED) if inside else None),
                      filename=str(target))
    finally:
        _READING.pop()


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
