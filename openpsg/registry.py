"""Registries: map the ``type`` string of a config dict to the class or function that builds it.

    @MODELS.register()
    class PSGTr(nn.Module): ...

    model = MODELS.build(dict(type='PSGTr', num_queries=100))

A registry imports the packages that populate it (``import_modules``) the first time it is
queried, so ``MODELS.build(cfg)`` works without importing ``openpsg.models`` by hand.

Building checks the config against the constructor's signature first: a key the constructor
does not take, or a required one that is missing, is a :class:`~openpsg.config.ConfigError` naming
the key's path in the config (``model.relation_head.hiden_dim``), the closest accepted key and all
of them. A ``TypeError`` or ``ValueError`` raised while the constructor runs becomes a
``ConfigError`` naming the path of the dict being built (for a plain dict built inside another
constructor, the path of the enclosing config dict).
"""
from __future__ import annotations

import contextvars
import difflib
import importlib
import inspect
import re
from typing import Any, Callable, Collection, Iterable, Mapping

from .config import ConfigError, config_path, join_path
from .errors import InputError

_BUILDING = contextvars.ContextVar('openpsg_building', default='')
_UNEXPECTED = re.compile(
    r"(?P<owner>[\w.<>]+)\(\) got an unexpected keyword argument '(?P<key>\w+)'")


class RegistryError(ConfigError, KeyError):
    """A ``type`` that names nothing in the registry (or a name registered twice)."""

    __str__ = Exception.__str__  # not KeyError's quoted form


def _signature(fn: Callable[..., Any]) -> tuple[list[str], list[str], bool] | None:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    names = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    required = [p.name for p in params if p.default is p.empty
                and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    return names, required, any(p.kind is p.VAR_KEYWORD for p in params)


def _accepted(fn: Callable[..., Any]) -> tuple[list[str], list[str], bool] | None:
    """``(keyword names, required names, takes **kwargs)`` of ``fn``; ``None`` if it has no
    inspectable signature. A class of this package whose ``__init__`` takes ``**kwargs`` passes
    them to its base class (``super().__init__(**kwargs)``), so the base's keywords count as its
    own, up to the first base without ``**kwargs`` or from outside the package."""
    spec = _signature(fn)
    if spec is None or not spec[2] or not inspect.isclass(fn):
        return spec
    names, required, _ = spec
    for base in fn.__mro__[1:]:
        if '__init__' not in vars(base):
            continue
        base_spec = _signature(base.__init__) if base.__module__.startswith('openpsg.') else None
        if base_spec is None:
            return names, required, True
        names += [n for n in base_spec[0] if n != 'self' and n not in names]
        if not base_spec[2]:
            return names, required, False
    return names, required, True


def _unknown_key_message(key: str, path: str, owner: str, accepted: list[str] | None) -> str:
    """``accepted``: the options of ``owner`` (``None``: not known)."""
    close = difflib.get_close_matches(key, accepted or [], n=1, cutoff=0.6)
    hint = f"; did you mean '{close[0]}'?" if close else ''
    options = '' if accepted is None else f" (its options: {', '.join(accepted) or 'none'})"
    return f"{join_path(path, key)}: {owner} has no option '{key}'{hint}{options}"


def check_options(fn: Callable[..., Any], options: Mapping[str, Any], path: str, owner: str,
                  passed: Collection[str] = ()) -> None:
    """Raise :class:`~openpsg.config.ConfigError` unless the keys of ``options`` (a config dict at
    ``path``) fit the signature of ``fn``: an unknown key names its path, the closest accepted
    key and all of them; a missing required key is named too. ``passed`` are arguments the code
    gives ``fn`` itself (not config keys). A callable taking ``**kwargs`` accepts any key."""
    spec = _accepted(fn)
    if spec is None:
        return
    names, required, any_key = spec
    accepted = [n for n in names if n not in passed]
    if not any_key:
        for key in options:
            if key not in names:
                raise ConfigError(_unknown_key_message(str(key), path, owner, accepted))
    missing = [n for n in required if n not in options and n not in passed]
    if missing:
        raise ConfigError(f"{path or owner}: {owner} needs {', '.join(map(repr, missing))} "
                          f"(its options: {', '.join(accepted)})")


def _find_key(node: Any, key: str, path: str) -> list[str]:
    """Paths of the dicts in the config tree ``node`` (at ``path``) that hold ``key``."""
    found = []
    if isinstance(node, Mapping):
        if key in node:
            found.append(join_path(path, key))
        for k, v in node.items():
            found += _find_key(v, key, config_path(v, join_path(path, k)))
    elif isinstance(node, (list, tuple)):
        for i, v in enumerate(node):
            found += _find_key(v, key, config_path(v, join_path(path, i)))
    return found


def _binding_error(err: TypeError, kwargs: Mapping[str, Any], path: str) -> str | None:
    """For ``X() got an unexpected keyword argument 'k'`` raised while a constructor passes a
    sub-dict of its config to ``X`` (e.g. ``Transformer(**transformer)``): a message naming the
    key's path in the config and ``X``'s options (``X`` looked up where the call failed); ``None``
    for any other ``TypeError``."""
    match = _UNEXPECTED.search(str(err))
    if match is None:
        return None
    key, parts = match['key'], match['owner'].split('.')
    owner = parts[-2] if parts[-1] == '__init__' and len(parts) > 1 else parts[-1]
    paths = _find_key(kwargs, key, path)
    where = paths[0].rpartition('.')[0] if len(paths) == 1 else path
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    fn = None if tb is None else tb.tb_frame.f_locals.get(owner, tb.tb_frame.f_globals.get(owner))
    spec = _accepted(fn) if callable(fn) else None
    return _unknown_key_message(key, where, owner, spec[0] if spec else None)


class Registry:
    """A name -> callable table for one kind of component (models, datasets, transforms, ...)."""

    def __init__(self, name: str, import_modules: Iterable[str] = ()) -> None:
        self.name = name
        self._import_modules = tuple(import_modules)
        self._imported = False
        self._items: dict[str, Callable[..., Any]] = {}

    def _import(self) -> None:
        if not self._imported:
            self._imported = True
            for module in self._import_modules:
                importlib.import_module(module)

    def register(self, name: str | None = None, force: bool = False) -> Callable:
        """Decorator registering a class or function under ``name`` (default: its ``__name__``)."""

        def decorator(obj: Callable[..., Any]) -> Callable[..., Any]:
            key = name or obj.__name__
            if key in self._items and self._items[key] is not obj and not force:
                raise RegistryError(f'{key!r} is already registered in the {self.name} registry '
                                    f'(by {self._items[key].__module__})')
            self._items[key] = obj
            return obj

        return decorator

    def get(self, name: str) -> Callable[..., Any]:
        self._import()
        if name not in self._items:
            close = difflib.get_close_matches(name, self._items, n=3, cutoff=0.5)
            hint = f'; closest registered names: {", ".join(close)}' if close else (
                f'; registered names: {", ".join(sorted(self._items)) or "(none)"}')
            raise RegistryError(f'{name!r} is not in the {self.name} registry{hint}')
        return self._items[name]

    def build(self, cfg: Mapping[str, Any], **default_args: Any) -> Any:
        """Call the entry named ``cfg['type']`` with the other keys (and ``default_args``) as
        kwargs; errors name the config path of ``cfg`` (see the module docstring)."""
        path = config_path(cfg, _BUILDING.get())
        if not isinstance(cfg, Mapping) or 'type' not in cfg:
            where = f'{path}: ' if path else ''
            raise ConfigError(f'{where}{self.name} config must be a dict with a "type" key, '
                              f'got {cfg!r}')
        kwargs = {k: v for k, v in cfg.items() if k != 'type'}
        for key, value in default_args.items():
            kwargs.setdefault(key, value)
        obj = cfg['type']
        if callable(obj):
            target = obj
        elif isinstance(obj, str):
            try:
                target = self.get(obj)
            except RegistryError as err:
                raise RegistryError(f'{join_path(path, "type")}: {err}' if path else str(err)
                                    ) from None
        else:
            raise ConfigError(f'{join_path(path, "type")}: must be a registered name (a string), '
                              f'got {obj!r}')
        owner = getattr(target, '__name__', str(target))
        check_options(target, kwargs, path, owner)
        token = _BUILDING.set(path)
        try:
            return target(**kwargs)
        except InputError:
            raise
        except TypeError as err:
            message = _binding_error(err, kwargs, path)
            raise ConfigError(message or f'{path or self.name} ({owner}): {err}') from err
        except ValueError as err:
            raise ConfigError(f'{path or self.name} ({owner}): {err}') from err
        finally:
            _BUILDING.reset(token)

    def __contains__(self, name: str) -> bool:
        self._import()
        return name in self._items

    def keys(self) -> list[str]:
        self._import()
        return sorted(self._items)

    def __repr__(self) -> str:
        return f'Registry({self.name!r}, {len(self._items)} entries)'


MODELS = Registry('model', ['openpsg.models'])
DATASETS = Registry('dataset', ['openpsg.datasets'])
TRANSFORMS = Registry('transform', ['openpsg.datasets.transforms'])
HOOKS = Registry('hook', ['openpsg.engine'])
