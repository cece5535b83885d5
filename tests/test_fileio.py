"""openpsg.fileio.atomic_write: complete file or nothing, normal permissions."""
import os
import stat
from pathlib import Path

import pytest

from openpsg.fileio import atomic_write


def test_writes_into_new_folder_with_umask_permissions(tmp_path: Path) -> None:
    target = tmp_path / 'a' / 'b.txt'
    old = os.umask(0o022)
    try:
        with atomic_write(target, 'w', fsync=True) as f:
            f.write('hello')
    finally:
        os.umask(old)
    assert target.read_text() == 'hello'
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert sorted(p.name for p in target.parent.iterdir()) == ['b.txt']


def test_error_keeps_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / 'c.bin'
    target.write_bytes(b'old')
    with pytest.raises(RuntimeError, match='boom'):
        with atomic_write(target) as f:
            f.write(b'new, half written')
            raise RuntimeError('boom')
    assert target.read_bytes() == b'old'
    assert [p.name for p in tmp_path.iterdir()] == ['c.bin']
