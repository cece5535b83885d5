"""Helpers of the hardening tests (this module holds no tests): run a tool as a user would, and
prove that nothing outside its intended outputs was touched."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
TRACEBACK = 'Traceback (most recent call last)'


def run_tool(name: str, *args: object, cwd: str | os.PathLike | None = None,
             preexec_fn: Callable[[], None] | None = None,
             timeout: float = 120) -> subprocess.CompletedProcess:
    """``python tools/<name>.py ARGS`` in a subprocess (one thread, no bytecode files written),
    output captured as text."""
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONDONTWRITEBYTECODE': '1'}
    return subprocess.run([sys.executable, str(ROOT / 'tools' / f'{name}.py'), *map(str, args)],
                          cwd=cwd or ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout, preexec_fn=preexec_fn)


def snapshot(folder: str | os.PathLike) -> dict[str, tuple]:
    """Everything under ``folder``: relative path -> (kind, size, mtime_ns) for files and
    symlinks (symlinks not followed), (kind, link target) for symlinks, ('dir',) for folders."""
    state: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, folder)
            st = os.lstat(path)
            if os.path.islink(path):
                state[rel] = ('link', os.readlink(path))
            elif os.path.isdir(path):
                state[rel] = ('dir',)
            else:
                state[rel] = ('file', st.st_size, st.st_mtime_ns)
    return state


def assert_clean_failure(proc: subprocess.CompletedProcess, code: int, *names: str) -> str:
    """The tool exited with ``code``, printed no traceback and named every one of ``names``;
    returns its output (stdout + stderr)."""
    text = proc.stdout + proc.stderr
    assert proc.returncode == code, text
    assert TRACEBACK not in text, text
    for name in names:
        assert name in text, (name, text)
    return text
