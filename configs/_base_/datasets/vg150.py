# Visual Genome VG-150 (box scene graphs) from the standard release files, split as Neural
# Motifs / Scene-Graph-Benchmark / EGTR: train (first 5000 train images held out as val), val,
# test. Augmentation of EGTR's scene-graph stage: flip, DETR multi-scale resizing (short side
# 480..800, long side <= 1333), no crop; test at 800 / 1333. Ground truth has boxes only, so
# evaluation matches boxes (match='box').
#   data/vg/VG_100K/*.jpg, data/vg/VG-SGG-with-attri.h5, data/vg/VG-SGG-dicts-with-attri.json,
#   data/vg/image_data.json
dataset_type = 'VG150Dataset'
vg150_files = dict(roidb_file='data/vg/VG-SGG-with-attri.h5',
                   dict_file='data/vg/VG-SGG-dicts-with-attri.json',
                   image_file='data/vg/image_data.json', data_root='data/vg/VG_100K/')
img_norm_cfg = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])
detr_scales = [(1333, short) for short in range(480, 801, 32)]

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
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='Normalize', **img_norm_cfg),
    dict(type='Pad', size_divisor=1),
    dict(type='PackSample'),
]
data = dict(
    samples_per_gpu=4,
    workers_per_gpu=4,
    train=dict(type=dataset_type, **vg150_files, split='train', pipeline=train_pipeline),
    val=dict(type=dataset_type, **vg150_files, split='val', pipeline=test_pipeline),
    test=dict(type=dataset_type, **vg150_files, split='test', pipeline=test_pipeline),
)
evaluation = dict(metric=['sgdet'], match='box')
