"""Registries: map the ``type`` string of a config dict to the class or function that builds it.

    @MODELS.register()
    class PSGTr(nn.Module): ...

    model = MODELS.build(dict(type='PSGTr', num_queries=100))

A registry imports the packages that populate it (``import_modules``) the first time it is
queried, so ``MODELS.build(cfg)`` works without importing ``openpsg.models`` by hand.
"""
from __future__ import annotations

import difflib
import importlib
from typing import Any, Callable, Iterable, Mapping


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
                raise KeyError(f'{key!r} is already registered in the {self.name} registry '
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
            raise KeyError(f'{name!r} is not in the {self.name} registry{hint}')
        return self._items[name]

    def build(self, cfg: Mapping[str, Any], **default_args: Any) -> Any:
        """Call the entry named ``cfg['type']`` with the other keys (and ``default_args``) as kwargs."""
        if not isinstance(cfg, Mapping) or 'type' not in cfg:
            raise TypeError(f'{self.name} config must be a dict with a "type" key, got {cfg!r}')
        kwargs = {k: v for k, v in cfg.items() if k != 'type'}
        for key, value in default_args.items():
            kwargs.setdefault(key, value)
        obj = cfg['type']
        target = obj if callable(obj) else self.get(obj)
        try:
            return target(**kwargs)
        except TypeError as err:
            raise TypeError(f'building {self.name} {getattr(target, "__name__", target)!s}: {err}') from err

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
METRICS = Registry('metric', ['openpsg.evaluation'])
HOOKS = Registry('hook', ['openpsg.engine'])
