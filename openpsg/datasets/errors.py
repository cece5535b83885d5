"""The one exception type for bad dataset input; messages always name file, image and field."""
from __future__ import annotations

from ..errors import InputError
from ..safe_json import describe, printable


class DatasetError(InputError, ValueError):
    """Bad annotation or image data. ``problems`` lists every problem found (one string each)."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        head = self.problems[0] if len(self.problems) == 1 else (
            f'{len(self.problems)} problems:\n  ' + '\n  '.join(self.problems))
        super().__init__(head)


def problem(file: str, image_id: str | None, field: str, message: str) -> str:
    """Format one problem as ``FILE: image_id=ID: FIELD: MESSAGE``. A file name or image_id with
    characters that cannot be printed as they are (line breaks, lone surrogates) is shown
    escaped, and a long image_id shortened, so one problem is always one short printable line."""
    where = f'{printable(str(file))}: '
    if image_id is not None:
        image_id = str(image_id)
        where += f'image_id={printable(image_id) if len(image_id) <= 100 else describe(image_id)}: '
    return f'{where}{field}: {message}'
