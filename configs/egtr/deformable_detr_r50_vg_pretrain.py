# Deformable DETR-R50 pre-trained on Visual Genome (VG-150 boxes): the detector EGTR starts from
# (EGTR's pretrain_detr.py). ImageNet ResNet-50 (torchvision), 200 queries, auxiliary decoder
# losses, class-cost/loss weight 2:
#   torchrun --nproc_per_node=8 tools/train.py configs/egtr/deformable_detr_r50_vg_pretrain.py --launcher pytorch
# Recipe: AdamW lr 1e-4 (backbone, reference points, sampling offsets 1e-5), weight decay 1e-4,
# gradient clipping 0.1, batch 32 (8 GPUs x 4), 150 epochs then 50 "fine-tune" epochs at 0.1x lr
# (EGTR: two phases with early stopping on the validation loss; here one 200-epoch run with the
# step after epoch 150). Augmentation: flip, then either DETR multi-scale resizing or resize to a
# short side of 400/500/600, random crop 384-600 and multi-scale resizing (this crop keeps at
# least one relation of the image; DETR's keeps any part). No scene-graph metric applies to a
# detector, so nothing is evaluated during training.
_base_ = [
    '../_base_/models/deformable_detr_r50.py',
    '../_base_/datasets/vg150.py',
    '../_base_/default_runtime.py',
]
# dropout placed as in Hugging Face's Deformable DETR, which EGTR's pre-training uses
model = dict(num_classes=150, num_queries=200, aux_loss=True,
             transformer=dict(attention_dropout=0.0, activation_dropout=0.0, input_dropout=0.1))
detr_scales = [(1333, short) for short in range(480, 801, 32)]
train_pipeline = [
    dict(type='LoadImage'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomChoice', transforms=[
        [dict(type='Resize', scales=detr_scales, keep_ratio=True)],
        [dict(type='Resize', scales=[(1333, 400), (1333, 500), (1333, 600)], keep_ratio=True),
         dict(type='RelRandomCrop', crop_size=(384, 600), crop_type='absolute_range'),
         dict(type='Resize', scales=detr_scales, keep_ratio=True)],
    ]),
    dict(type='Normalize', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375]),
    dict(type='Pad', size_divisor=1),
    dict(type='PackSample'),
]
data = dict(samples_per_gpu=4, train=dict(pipeline=train_pipeline))
optimizer = dict(
    type='AdamW', lr=1e-4, weight_decay=1e-4,
    paramwise_cfg=dict(custom_keys={
        'backbone': dict(lr_mult=0.1),
        '*.reference_points': dict(lr_mult=0.1),
        '*.sampling_offsets': dict(lr_mult=0.1),
    }))
optimizer_config = dict(grad_clip=dict(max_norm=0.1, norm_type=2))
lr_config = dict(policy='step', step=[150])
runner = dict(max_epochs=200)
checkpoint_config = dict(interval=5, max_keep_ckpts=3)
evaluation = None
work_dir = './work_dirs/deformable_detr_r50_vg_pretrain'
