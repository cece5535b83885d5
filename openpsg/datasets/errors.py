"""The one exception type for bad dataset input; messages always name file, image and field."""
from __future__ import annotations

from ..errors import InputError


class DatasetError(InputError, ValueError):
    """Bad annotation or image data. ``problems`` lists every problem found (one string each)."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        head = self.problems[0] if len(self.problems) == 1 else (
            f'{len(self.problems)} problems:\n  ' + '\n  '.join(self.problems))
        super().__init__(head)


def problem(file: str, image_id: str | None, field: str, message: str) -> str:
    """Format one problem as ``FILE: image_id=ID: FIELD: MESSAGE``."""
    where = f'{file}: ' + (f'image_id={image_id}: ' if image_id is not None else '')
    return f'{where}{field}: {message}'
