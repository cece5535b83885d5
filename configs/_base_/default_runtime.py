# Runtime defaults shared by every config: checkpoints, logging, evaluation cadence, launch.
checkpoint_config = dict(interval=1, max_keep_ckpts=3)  # add iter_interval=N to also save mid-epoch
log_config = dict(
    interval=50,
    hooks=[dict(type='TextLoggerHook'), dict(type='TensorboardLoggerHook')],
)
custom_hooks = []
find_unused_parameters = False
freeze_modules = []
amp = 'none'  # 'bf16' or 'fp16' on CUDA
load_from = None
resume = None
