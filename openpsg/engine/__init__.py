"""Training loop, checkpoints, hooks, distributed helpers and inference."""
from .checkpoint import CheckpointError, find_latest, load_checkpoint, load_weights, save_checkpoint
from .dist import (barrier, broadcast_object, get_device, get_rank, get_world_size, init_dist,
                   is_main_process)
from .env import collect_env, set_random_seed
from .hooks import Hook, LoggerHook, TensorboardLoggerHook, TextLoggerHook, WandbLoggerHook
from .inference import (PredictionFileError, collect_predictions, inference, load_predictions,
                        save_predictions)
from .optim import LrScheduler, build_lr_scheduler, build_optimizer, build_param_groups
from .trainer import Trainer, freeze_modules

__all__ = [
    'CheckpointError', 'Hook', 'LoggerHook', 'LrScheduler', 'PredictionFileError',
    'TensorboardLoggerHook', 'TextLoggerHook', 'Trainer', 'WandbLoggerHook', 'barrier',
    'broadcast_object', 'build_lr_scheduler', 'build_optimizer', 'build_param_groups',
    'collect_env', 'collect_predictions', 'find_latest', 'freeze_modules', 'get_device', 'get_rank',
    'get_world_size', 'inference', 'init_dist', 'is_main_process', 'load_checkpoint',
    'load_predictions', 'load_weights', 'save_checkpoint', 'save_predictions', 'set_random_seed',
]
