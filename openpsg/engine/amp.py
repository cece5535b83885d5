"""Mixed precision (``amp``): the modes, where each one runs, and the autocast region of a step.

    amp = resolve_amp('bf16', device)           # the mode that will run on this device
    with autocast(device, amp):
        losses = model(batch, mode='loss')      # or model(batch, mode='predict')

``'none'``
    float32 everywhere.
``'bf16'``
    ``torch.autocast`` with bfloat16, on CUDA and on the CPU. Convolutions and matrix products
    run in bfloat16 (8 bits of mantissa, float32's exponent range, so no loss scaling is needed);
    normalisation, softmax-cross-entropy and the other ops autocast keeps in float32 stay there.
    On a CPU it can pay off only where the CPU has bfloat16 instructions (AVX512-BF16, AMX);
    elsewhere PyTorch falls back to slow bfloat16 kernels (8-25x slower than float32 in
    ``benchmarks/BENCHMARKS.md``).
``'fp16'``
    ``torch.autocast`` with float16 and the trainer's ``GradScaler`` (float16 overflows above
    65504, so the loss is scaled and steps with infinite gradients are skipped). CUDA only: on
    another device it falls back to float32 with a warning (CPUs have few float16 kernels; use
    ``'bf16'`` there).

The models keep their outputs in float32 under autocast: each head's logits and boxes are cast
to float32 before matching costs, losses and post-processing read them, so the Hungarian cost
matrices, the loss sums, box coordinates in pixels and the ranked scores carry float32's 24
bits of mantissa whatever ran inside the network.
"""
from __future__ import annotations

import logging

import torch

from ..checks import one_of

logger = logging.getLogger('openpsg')

AMP_MODES = ('none', 'bf16', 'fp16')
AMP_DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16}


def resolve_amp(amp: str, device: torch.device) -> str:
    """The mode that runs on ``device``: ``amp`` itself, except ``'fp16'`` off CUDA, which runs
    as ``'none'`` (float32) with a warning. An unknown mode is a ``ConfigError`` naming ``amp``."""
    one_of(*AMP_MODES)(amp, 'amp')
    if amp == 'fp16' and device.type != 'cuda':
        logger.warning('mixed precision --amp fp16 needs CUDA; running in float32 on %s (use '
                       '--amp bf16 for mixed precision on a CPU)', device)
        return 'none'
    return amp


def autocast(device: torch.device, amp: str) -> torch.autocast:
    """The ``torch.autocast`` region of ``amp`` (a mode :func:`resolve_amp` returned for
    ``device``); disabled for ``'none'``."""
    return torch.autocast(device.type, dtype=AMP_DTYPES.get(amp, torch.bfloat16),
                          enabled=amp != 'none')
