# PSG images for training the panoptic segmenter alone (Panoptic FPN): masks and semantic map,
# no relations; evaluated with PQ.
dataset_type = 'PSGDataset'
data_root = 'data/coco/'
ann_file = 'data/psg/psg.json'
img_norm_cfg = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])

train_pipeline = [
    dict(type='LoadImage'),
    dict(type='LoadPanopticAnnotations', with_seg=True, with_rel=False),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='Normalize', **img_norm_cfg),
    dict(type='Pad', size_divisor=32),
    dict(type='SegRescale', scale_factor=1 / 4),
    dict(type='PackSample'),
]
test_pipeline = [
    dict(type='LoadImage'),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='Normalize', **img_norm_cfg),
    dict(type='Pad', size_divisor=32),
    dict(type='PackSample'),
]
data = dict(
    samples_per_gpu=2,
    workers_per_gpu=2,
    train=dict(type=dataset_type, ann_file=ann_file, data_root=data_root, split='train',
               pipeline=train_pipeline),
    val=dict(type=dataset_type, ann_file=ann_file, data_root=data_root, split='test',
             pipeline=test_pipeline),
    test=dict(type=dataset_type, ann_file=ann_file, data_root=data_root, split='test',
              pipeline=test_pipeline),
)
evaluation = dict(interval=1, metric='PQ')
