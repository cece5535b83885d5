"""Seeding, random-generator snapshots and a description of the software environment."""
from __future__ import annotations

import importlib
import os
import platform
import random
import sys
from importlib import metadata
from typing import Any

import numpy as np
import torch

from ..version import __version__


def set_random_seed(seed: int, deterministic: bool = False) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and every GPU).

    ``deterministic=True`` also asks torch for deterministic algorithms (a warning names any op
    without one) and turns off the cuDNN auto-tuner, so two runs give bit-identical results.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault('CUBLAS_WORKSPACE_CONFIG', ':4096:8')
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def get_rng_state() -> dict[str, Any]:
    """The state of every global generator, as tensors and plain containers only (checkpoint-safe).

    Keys: ``python`` (``random.getstate()``), ``numpy`` (MT19937 ``key`` as a list of 624 ints,
    ``pos``, ``has_gauss``, ``gauss``), ``torch`` (uint8 tensor), ``cuda`` (one uint8
    tensor per visible GPU, empty without CUDA).
    """
    np_state = np.random.get_state(legacy=False)
    return {
        'python': random.getstate(),
        'numpy': {'key': np_state['state']['key'].tolist(), 'pos': int(np_state['state']['pos']),
                  'has_gauss': int(np_state['has_gauss']), 'gauss': float(np_state['gauss'])},
        'torch': torch.get_rng_state(),
        'cuda': torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore a :func:`get_rng_state` snapshot (CUDA states only if this machine has the GPUs)."""
    version, internal, gauss = state['python']
    random.setstate((version, tuple(internal), gauss))
    np_state = state['numpy']
    np.random.set_state({'bit_generator': 'MT19937',
                         'state': {'key': np.asarray(np_state['key'], dtype=np.uint32),
                                   'pos': np_state['pos']},
                         'has_gauss': np_state['has_gauss'], 'gauss': np_state['gauss']})
    torch.set_rng_state(state['torch'])
    cuda = state['cuda']
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def library_versions() -> dict[str, str]:
    """Versions of openpsg and the installed libraries it runs on (read without importing them)."""
    versions = {'openpsg': __version__, 'python': platform.python_version()}
    for package in ('torch', 'torchvision', 'numpy', 'scipy', 'pycocotools', 'Pillow', 'wandb'):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions


def collect_env(world_size: int = 1) -> dict[str, str]:
    """What a bug report needs: platform, library versions, CUDA/cuDNN, devices and world size."""
    env = {'platform': platform.platform(), 'python executable': sys.executable}
    env.update(library_versions())
    env['CUDA available'] = str(torch.cuda.is_available())
    if torch.cuda.is_available():
        env['CUDA'] = str(torch.version.cuda)
        env['cuDNN'] = str(torch.backends.cudnn.version())
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        env['GPUs'] = ', '.join(f'{i}: {name}' for i, name in enumerate(names))
    env['CPU threads'] = str(torch.get_num_threads())
    env['world size'] = str(world_size)
    return env


def import_custom_modules(custom_imports: dict[str, Any] | None) -> None:
    """Import the modules of the config's ``custom_imports = dict(imports=[...])`` so that the
    components they register can be named in the config."""
    if not custom_imports:
        return
    unknown = set(custom_imports) - {'imports'}
    if unknown:
        raise ValueError(f'custom_imports: unknown key(s) {sorted(unknown)}; supported: imports')
    for module in custom_imports.get('imports', ()):
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise ImportError(f'custom_imports: cannot import {module!r}: {err}') from err
