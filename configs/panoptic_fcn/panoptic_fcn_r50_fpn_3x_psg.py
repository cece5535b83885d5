# PanopticFCN R50 trained on PSG with the paper's 3x schedule, evaluated with PQ.
#   bash tools/dist_train.sh configs/panoptic_fcn/panoptic_fcn_r50_fpn_3x_psg.py 8
#   python tools/test.py configs/panoptic_fcn/panoptic_fcn_r50_fpn_3x_psg.py \
#       work_dirs/panoptic_fcn_r50_fpn_3x_psg/latest.pth --eval PQ
_base_ = [
    '../_base_/models/panoptic_fcn_r50_fpn_psg.py',
    '../_base_/datasets/psg_panoptic.py',
    '../_base_/default_runtime.py',
]

# torchvision's ImageNet ResNet-50 (fetched into the torch hub cache once; a path to a torchvision
# ResNet state dict works too).
model = dict(backbone=dict(pretrained=True))
# Multi-scale training as in the paper: shorter side one of 640..800 (step 32), longer side at
# most 1333, horizontal flip; testing at 800 / 1333.
train_pipeline = [
    dict(type='LoadImage'),
    dict(type='LoadPanopticAnnotations', with_seg=True, with_rel=False),
    dict(type='Resize', scales=[(1333, s) for s in range(640, 801, 32)], keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='Normalize', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375]),
    dict(type='Pad', size_divisor=32),
    dict(type='SegRescale', scale_factor=1 / 4),
    dict(type='PackSample'),
]
# 16 images per iteration: 8 GPUs x 2.
data = dict(samples_per_gpu=2, train=dict(pipeline=train_pipeline))

# The paper's 3x schedule: SGD lr 0.01, momentum 0.9, weight decay 1e-4 (none on the GroupNorm
# and BatchNorm affine parameters: detectron2's WEIGHT_DECAY_NORM = 0), 1000 linear warm-up
# iterations from 0.001x, then poly (power 0.9) down to 0 over the run, by iteration; every
# gradient element clipped to [-35, 35]; 270k iterations of 16 images. PSG's training split has
# ~46.5k images (48,749 minus the 2,186 test ids), i.e. 2,910 iterations of 16 per epoch, so the
# 270k iterations are 93 epochs.
optimizer = dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0001,
                 paramwise_cfg=dict(norm_decay_mult=0.0))
optimizer_config = dict(grad_clip=dict(clip_value=35))
lr_config = dict(policy='poly', power=0.9, min_lr=0.0, by_epoch=False,
                 warmup='linear', warmup_iters=1000, warmup_ratio=0.001)
runner = dict(max_epochs=93)
evaluation = dict(interval=3, metric=['PQ'], save_best='PQ')
