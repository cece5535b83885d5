# PSG for one-stage models (PSGTR, PSGFormer): DETR-style multi-scale training with a
# relation-preserving random crop, no padding beyond the batch.
dataset_type = 'PSGDataset'
data_root = 'data/coco/'
ann_file = 'data/psg/psg.json'
img_norm_cfg = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])
detr_scales = [(1333, short) for short in range(480, 801, 32)]  # short side 480..800, long <= 1333

train_pipeline = [
    dict(type='LoadImage'),
    dict(type='LoadPanopticAnnotations', with_rel=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomChoice', transforms=[
        [dict(type='Resize', scales=detr_scales, keep_ratio=True)],
        [dict(type='Resize', scales=[(1333, 400), (1333, 500), (1333, 600)], keep_ratio=True),
         dict(type='RelRandomCrop', crop_size=(384, 600), crop_type='absolute_range'),
         dict(type='Resize', scales=detr_scales, keep_ratio=True)],
    ]),
    dict(type='Normalize', **img_norm_cfg),
    dict(type='Pad', size_divisor=1),
    dict(type='PackSample'),
]
test_pipeline = [
    dict(type='LoadImage'),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='Normalize', **img_norm_cfg),
    dict(type='Pad', size_divisor=1),
    dict(type='PackSample'),
]
data = dict(
    samples_per_gpu=1,
    workers_per_gpu=2,
    train=dict(type=dataset_type, ann_file=ann_file, data_root=data_root, split='train',
               pipeline=train_pipeline),
    val=dict(type=dataset_type, ann_file=ann_file, data_root=data_root, split='test',
             pipeline=test_pipeline),
    test=dict(type=dataset_type, ann_file=ann_file, data_root=data_root, split='test',
              pipeline=test_pipeline),
)
