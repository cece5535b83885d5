# CPU-sized Deformable DETR box detector on the synthetic PSG set, sized as the tiny one-stage
# models (configs/_base_/models/one_stage_tiny_synth.py): the ResNet-18 trained by the tiny
# Panoptic FPN, frozen (train configs/panoptic_fpn/panoptic_fpn_tiny_synth.py first); a 64-d
# transformer with 2 + 2 layers over C3, C4, C5 and one stride-64 level; 30 queries.
#   python tools/make_synth_psg.py --out data/psg_synth --num-train 900 --num-test 100
#   python tools/train.py configs/deformable_detr/deformable_detr_tiny_synth.py
# Boxes only: no PSG metric (scene graphs, PQ) applies, so nothing is evaluated during training.
_base_ = [
    '../_base_/models/deformable_detr_r50.py',
    '../_base_/datasets/psg_synth_onestage.py',
    '../_base_/default_runtime.py',
]
model = dict(
    backbone=dict(depth=18, frozen_stages=4,
                  pretrained='work_dirs/panoptic_fpn_tiny_synth/latest.pth',
                  pretrained_prefix='backbone.body.'),
    transformer=dict(d_model=64, nhead=8, num_encoder_layers=2, num_decoder_layers=2,
                     dim_feedforward=256, dropout=0.0),
    num_queries=30,
)
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
evaluation = None
work_dir = './work_dirs/deformable_detr_tiny_synth'
