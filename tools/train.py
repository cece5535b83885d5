"""Train a scene-graph model from a config.

    python tools/train.py configs/baselines/freq_predcls_synth.py
    torchrun --nproc_per_node=8 tools/train.py CONFIG --launcher pytorch     # multi-GPU
    python tools/train.py CONFIG --resume                                   # continue the last run

The work dir is ``--work-dir``, else the config's ``work_dir``, else ``work_dirs/<config name>``;
it receives the resolved config, ``<timestamp>.log``, ``<timestamp>.log.json``, TensorBoard logs
and the checkpoints (``epoch_N.pth``, ``iter_N.pth``, ``best_*.pth``, ``latest.pth``).
The config is checked before anything is built; errors and exit status as in :mod:`openpsg.cli`.
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import time

from openpsg import cli
from openpsg.checks import integer
from openpsg.config import Config, DictAction
from openpsg.engine.amp import AMP_MODES
from openpsg.engine.checkpoint import find_latest
from openpsg.engine.dist import (LAUNCHERS, barrier, broadcast_object, destroy_dist, get_rank,
                                 get_world_size, init_dist)
from openpsg.engine.env import collect_env, import_custom_modules, set_random_seed
from openpsg.engine.logger import add_log_file, get_logger, start_log_buffer
from openpsg.engine.trainer import Trainer
from openpsg.parallel import set_torch_threads


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a panoptic scene graph model.')
    parser.add_argument('config', help='config file (.py)')
    parser.add_argument('--work-dir', help='folder for logs and checkpoints '
                        '(default: the config\'s work_dir, else work_dirs/<config name>)')
    parser.add_argument('--resume', '--resume-from', nargs='?', const='auto', metavar='CKPT',
                        help='continue a run from CKPT; without CKPT from the work dir\'s '
                        'latest.pth')
    parser.add_argument('--load-from', metavar='CKPT',
                        help='initialise the weights from CKPT (non-strict)')
    parser.add_argument('--no-validate', action='store_true',
                        help='do not evaluate during training')
    parser.add_argument('--seed', type=int,
                        help='random seed (default: the config\'s seed, else random)')
    parser.add_argument('--deterministic', action='store_true',
                        help='deterministic algorithms: bit-identical results for identical runs')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config entries, e.g. runner.max_epochs=1 '
                        'data.samples_per_gpu=2')
    parser.add_argument('--launcher', choices=LAUNCHERS, default='none',
                        help='pytorch: started by torchrun / torch.distributed.launch')
    parser.add_argument('--amp', choices=AMP_MODES,
                        help='mixed precision: bf16 (CUDA or CPU autocast) or fp16 (CUDA, with '
                        'loss scaling) (default: the config\'s amp, else none)')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0, help=argparse.SUPPRESS)
    cli.add_debug_argument(parser)
    return parser.parse_args(argv)


def resolve_work_dir(args: argparse.Namespace, cfg: Config) -> str:
    """``--work-dir`` > config ``work_dir`` > ``work_dirs/<config file stem>``."""
    stem = os.path.splitext(os.path.basename(args.config))[0]
    return args.work_dir or cfg.get('work_dir') or os.path.join('work_dirs', stem)


@cli.tool('train.py')
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    try:
        cfg = Config.fromfile(args.config, overrides=args.cfg_options)
        import_custom_modules(cfg.get('custom_imports'))
        cfg.work_dir = resolve_work_dir(args, cfg)
        init_dist(args.launcher, **dict(cfg.get('dist_params') or {}))
        set_torch_threads()
        seed = args.seed if args.seed is not None else cfg.get('seed')
        seed = broadcast_object(random.randrange(2**31) if seed is None
                                else integer(0, 2**63 - 1)(seed, 'seed'))
        cfg.seed = seed
        timestamp = broadcast_object(time.strftime('%Y%m%d_%H%M%S'))
        logger = get_logger(rank=get_rank())
        early = start_log_buffer(logger)  # nothing is written before the run is known to start
        logger.info('environment:\n' + '\n'.join(
            f'  {k}: {v}' for k, v in collect_env(get_world_size()).items()))
        logger.info(f'config {args.config}:\n{cfg.pretty_text}')
        logger.info(f'seed {seed}, deterministic {args.deterministic}')
        set_random_seed(seed, args.deterministic)

        trainer = Trainer(cfg, cfg.work_dir, timestamp, seed, validate=not args.no_validate,
                          amp=args.amp or cfg.get('amp') or 'none')
        resume = args.resume if args.resume is not None else cfg.get('resume')
        load_from = args.load_from or cfg.get('load_from')
        if resume:
            path = find_latest(cfg.work_dir) if resume in ('auto', True) else str(resume)
            if path is None:
                logger.warning(f'--resume: no {cfg.work_dir}/latest.pth yet, starting from scratch')
            else:
                trainer.resume(path)
        elif load_from:
            trainer.load_weights(load_from)
        if get_rank() == 0:
            os.makedirs(cfg.work_dir, exist_ok=True)
            cfg.dump(os.path.join(cfg.work_dir, os.path.basename(args.config)))
            add_log_file(logger, os.path.join(cfg.work_dir, f'{timestamp}.log'), early)
        barrier()
        trainer.train()
    finally:
        destroy_dist()
    return 0


if __name__ == '__main__':
    sys.exit(main())
