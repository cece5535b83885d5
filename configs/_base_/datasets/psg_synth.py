# The synthetic PSG set (tools/make_synth_psg.py, 128-px images) for two-stage models on a CPU:
# the pipeline of psg.py with the resize sized for the small images.
dataset_type = 'PSGDataset'
data_root = 'data/psg_synth/'
ann_file = data_root.rstrip('/') + '/psg.json'  # follows --cfg-options data_root=DIR
img_norm_cfg = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])

train_pipeline = [
    dict(type='LoadImage'),
    dict(type='LoadPanopticAnnotations', with_seg=True, with_rel=True),
    dict(type='Resize', scale=(213, 128), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='Normalize', **img_norm_cfg),
    dict(type='Pad', size_divisor=32),
    dict(type='SegRescale', scale_factor=1 / 4),
    dict(type='PackSample'),
]
test_pipeline = [
    dict(type='LoadImage'),
    dict(type='LoadPanopticAnnotations', with_rel=True),
    dict(type='Resize', scale=(213, 128), keep_ratio=True),
    dict(type='Normalize', **img_norm_cfg),
    dict(type='Pad', size_divisor=32),
    dict(type='PackSample'),
]
data = dict(
    samples_per_gpu=4,
    workers_per_gpu=0,
    train=dict(type=dataset_type, ann_file=ann_file, data_root=data_root, split='train',
               pipeline=train_pipeline),
    val=dict(type=dataset_type, ann_file=ann_file, data_root=data_root, split='test',
             pipeline=test_pipeline),
    test=dict(type=dataset_type, ann_file=ann_file, data_root=data_root, split='test',
              pipeline=test_pipeline),
)
