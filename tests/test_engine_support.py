"""Helpers shared by the engine's end-to-end tests (this module holds no tests itself).

The end-to-end tests drive ``tools/train.py`` and ``tools/test.py`` on a tiny synthetic PSG set
written by ``tools/make_synth_psg.py``: in this process where one process suffices (fast), in
subprocesses where a real kill or several ranks are needed.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / 'configs' / 'baselines' / 'freq_predcls_synth.py')


def load_tool(name: str) -> ModuleType:
    """``tools/<name>.py`` as a module (its ``main(argv)`` runs the tool in this process)."""
    path = ROOT / 'tools' / f'{name}.py'
    spec = importlib.util.spec_from_file_location(f'openpsg_tool_{name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_synth_psg(out: Path, num_train: int, num_test: int, seed: int = 0, size: int = 64) -> str:
    """Write a synthetic PSG set with ``tools/make_synth_psg.py``; returns its folder."""
    rc = load_tool('make_synth_psg').main(['--out', str(out), '--num-train', str(num_train),
                                            '--num-test', str(num_test), '--seed', str(seed),
                                            '--size', str(size), '--workers', '1'])
    assert rc == 0
    return str(out)


def data_options(root: str) -> list[str]:
    """``--cfg-options`` items pointing the train/val/test splits of a config at ``root``."""
    return [f'data.{split}.{key}={value}' for split in ('train', 'val', 'test')
            for key, value in (('ann_file', f'{root}/psg.json'), ('data_root', root))]


def run_command(args: list[str], extra_path: str | None = None, env: dict[str, str] | None = None,
                timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``args`` in the repository root, output captured, one thread per process, with this
    interpreter first on ``PATH`` (for scripts that call ``python``) and ``extra_path`` on
    ``PYTHONPATH``."""
    full_env = {**os.environ, 'OMP_NUM_THREADS': '1', **(env or {})}
    full_env['PATH'] = os.pathsep.join([os.path.dirname(sys.executable), full_env.get('PATH', '')])
    if extra_path:
        paths = [extra_path, full_env.get('PYTHONPATH')]
        full_env['PYTHONPATH'] = os.pathsep.join(filter(None, paths))
    return subprocess.run(args, cwd=ROOT, env=full_env, capture_output=True, text=True,
                          timeout=timeout)


def run_python(args: list[str], extra_path: str | None = None, timeout: float = 120
               ) -> subprocess.CompletedProcess:
    """``python ARGS`` with :func:`run_command`."""
    return run_command([sys.executable, *args], extra_path=extra_path, timeout=timeout)
