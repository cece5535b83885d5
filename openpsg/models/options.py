"""Option dictionaries of the models (``loss_weights``, ``train_cfg``, ``test_cfg``) checked
against their defaults."""
from __future__ import annotations

from typing import Any, Mapping


def checked_options(defaults: Mapping[str, Any], options: Mapping[str, Any] | None, owner: str,
                    name: str) -> dict[str, Any]:
    """``defaults`` updated by ``options`` (a model's ``loss_weights``, ``train_cfg`` or
    ``test_cfg``, named ``name``); a key that ``defaults`` lacks is a ``ValueError``
    ``'OWNER: unknown NAME keys [...]; known: [...]'``."""
    unknown = set(options or {}) - set(defaults)
    if unknown:
        raise ValueError(f'{owner}: unknown {name} keys {sorted(unknown)}; '
                         f'known: {sorted(defaults)}')
    return {**defaults, **(options or {})}
