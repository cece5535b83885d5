"""The layout rules of the package (README, "Code layout and conventions"): a model file holds one
model, and what models share lives in modules of their own; every registered relation head is
exercised by the head tests and pinned by a golden test."""
from __future__ import annotations

import ast
import importlib
import inspect

from openpsg.models.relation_heads.head import RelationHead
from openpsg.registry import MODELS
from test_relation_heads import HEADS
from test_relation_heads_golden import HEADS as GOLDEN_HEADS


def registered_classes() -> dict[str, type]:
    return {name: MODELS.get(name) for name in MODELS.keys() if isinstance(MODELS.get(name), type)}


def test_model_files_import_no_helpers_from_other_model_files():
    """A model file (one that registers a model) may import another model only to extend it
    (``class DETR4Seg(DETR)``); anything else it needs from there belongs in a shared module."""
    classes = registered_classes()
    model_modules = {cls.__module__ for cls in classes.values()}
    found = []
    for name in sorted(model_modules):
        module = importlib.import_module(name)
        own = [cls for cls in classes.values() if cls.__module__ == name]
        for node in ast.walk(ast.parse(inspect.getsource(module))):
            if not (isinstance(node, ast.ImportFrom) and node.level):
                continue
            source = importlib.import_module(importlib.util.resolve_name(
                '.' * node.level + (node.module or ''), module.__package__))
            for alias in node.names:
                obj = getattr(source, alias.name)
                home = obj.__name__ if inspect.ismodule(obj) else getattr(obj, '__module__', None)
                if home in model_modules and home != name and not (
                        obj in classes.values() and any(issubclass(c, obj) for c in own)):
                    found.append(f'{name} imports {alias.name} from {home}')
    assert not found, found


def test_every_registered_relation_head_is_tested_and_pinned():
    heads = {name for name, cls in registered_classes().items() if issubclass(cls, RelationHead)}
    assert heads == {cls.__name__ for cls in HEADS.values()}
    assert heads == {cls.__name__ for cls, _ in GOLDEN_HEADS.values()}
