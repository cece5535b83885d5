# CPU-sized EGTR in the panoptic setting (PanopticEGTR) on the synthetic PSG set, evaluated with
# mask matching and PQ: the tiny one-stage sizing - the ResNet-18 trained by the tiny Panoptic
# FPN, frozen; a 64-d deformable transformer with 2 + 2 layers over C3, C4, C5 and a stride-64
# level; 30 queries; DETR's mask branch on the stride-32 level of the memory - trained from
# scratch in one stage (detector, masks and relations together, all at lr 2e-4; the real recipe
# pre-trains the detector and mask branch first). The mask losses weigh 5 (focal) and 5 (Dice)
# instead of DETR-panoptic's 1 and 1: trained together with the relation losses (15, 30) from
# scratch, the shared features learn thing masks several times faster so (the overfitting test of
# tests/test_egtr_psg.py).
#   python tools/make_synth_psg.py --out data/psg_synth --num-train 400 --num-test 100
#   python tools/train.py configs/panoptic_fpn/panoptic_fpn_tiny_synth.py
#   python tools/train.py configs/egtr/egtr_tiny_synth.py
#   python tools/test.py configs/egtr/egtr_tiny_synth.py work_dirs/egtr_tiny_synth/latest.pth --eval sgdet PQ
_base_ = [
    '../_base_/models/egtr_r50.py',
    '../_base_/datasets/psg_synth_onestage.py',
    '../_base_/default_runtime.py',
]
data_root = 'data/psg_synth/'  # --cfg-options data_root=DIR moves the data and the counts
model = dict(
    type='PanopticEGTR',
    backbone=dict(depth=18, frozen_stages=4,
                  pretrained='work_dirs/panoptic_fpn_tiny_synth/latest.pth',
                  pretrained_prefix='backbone.body.'),
    transformer=dict(d_model=64, nhead=8, num_encoder_layers=2, num_decoder_layers=2,
                     dim_feedforward=256, dropout=0.0, input_dropout=0.0),
    num_queries=30,
    num_classes=133,
    num_predicates=56,
    matcher=dict(cost_mask=1.0, cost_dice=1.0),
    loss_weights=dict(mask=5.0, dice=5.0),
    mask_feature_level=3,
    freq_dataset=dict(type='PSGDataset', ann_file=data_root.rstrip('/') + '/psg.json',
                      data_root=data_root, split='train'),
    test_cfg=dict(object_score_thr=0.3),
)
# EGTR's scene-graph stage: flip and multi-scale resizing (short side 128..160), no crop
train_pipeline = [
    dict(type='LoadImage'),
    dict(type='LoadPanopticAnnotations', with_rel=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='Resize', scales=[(267, short) for short in (128, 144, 160)], keep_ratio=True),
    dict(type='Normalize', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375]),
    dict(type='Pad', size_divisor=1),
    dict(type='PackSample'),
]
data = dict(samples_per_gpu=4, train=dict(rel_mode='dedup', pipeline=train_pipeline))
optimizer = dict(
    type='AdamW', lr=2e-4, weight_decay=1e-4,
    paramwise_cfg=dict(custom_keys={
        '*.reference_points': dict(lr_mult=0.1),
        '*.sampling_offsets': dict(lr_mult=0.1),
    }))
optimizer_config = dict(grad_clip=dict(max_norm=1.0, norm_type=2))
lr_config = dict(policy='step', step=[10], warmup='linear', warmup_iters=100, warmup_ratio=0.1)
runner = dict(max_epochs=12)
log_config = dict(interval=20)
evaluation = dict(interval=4, metric=['sgdet', 'PQ'])
work_dir = './work_dirs/egtr_tiny_synth'
