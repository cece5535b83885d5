# The synthetic PSG set (tools/make_synth_psg.py, 128-px images) read box-only, as Visual Genome
# style data (VGDataset: no panoptic PNGs; evaluation matches boxes), for box scene-graph models
# on a CPU: flip and multi-scale resizing (short side 128..160), no crop; test at 160 / 267.
dataset_type = 'VGDataset'
data_root = 'data/psg_synth/'
ann_file = 'data/psg_synth/psg.json'
img_norm_cfg = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])
detr_scales = [(267, short) for short in (128, 144, 160)]

train_pipeline = [
    dict(type='LoadImage'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='Resize', scales=detr_scales, keep_ratio=True),
    dict(type='Normalize', **img_norm_cfg),
    dict(type='Pad', size_divisor=1),
    dict(type='PackSample'),
]
test_pipeline = [
    dict(type='LoadImage'),
    dict(type='Resize', scale=(267, 160), keep_ratio=True),
    dict(type='Normalize', **img_norm_cfg),
    dict(type='Pad', size_divisor=1),
    dict(type='PackSample'),
]
data = dict(
    samples_per_gpu=2,
    workers_per_gpu=0,
    train=dict(type=dataset_type, ann_file=ann_file, data_root=data_root, split='train',
               pipeline=train_pipeline),
    val=dict(type=dataset_type, ann_file=ann_file, data_root=data_root, split='test',
             pipeline=test_pipeline),
    test=dict(type=dataset_type, ann_file=ann_file, data_root=data_root, split='test',
              pipeline=test_pipeline),
)
evaluation = dict(metric=['sgdet'], match='box')
