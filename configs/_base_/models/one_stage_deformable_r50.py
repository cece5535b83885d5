# Deformable DETR's transformer under a one-stage PSG model (PSGTR, PSGFormer); list it after the
# model, schedule and runtime files. Every key of DETR's transformer is set here, so the merged
# transformer is exactly this one: the paper's R50 settings, C3-C5 + one stride-64 level, 6 + 6
# layers of width 256, 8 heads, 4 points per head and level, FFN 1024. The mask branches attend to
# the level of `feature_level` (C5, the map DETR's transformer reads).
# Nothing but the ImageNet ResNet-50 (torchvision) is pre-trained, so the optimizer is Deformable
# DETR's: AdamW 2e-4, backbone, reference points and sampling offsets x0.1, weight decay 1e-4,
# gradient clipping 0.1 (the schedule - epochs, lr step - stays the model's).
model = dict(
    backbone=dict(pretrained=True),
    transformer=dict(type='DeformableTransformer', d_model=256, nhead=8, num_encoder_layers=6,
                     num_decoder_layers=6, dim_feedforward=1024, dropout=0.1,
                     num_feature_levels=4, enc_n_points=4, dec_n_points=4),
)
optimizer = dict(
    type='AdamW', lr=2e-4, weight_decay=1e-4,
    paramwise_cfg=dict(custom_keys={
        'backbone': dict(lr_mult=0.1),
        '*.reference_points': dict(lr_mult=0.1),
        '*.sampling_offsets': dict(lr_mult=0.1),
    }))
optimizer_config = dict(grad_clip=dict(max_norm=0.1, norm_type=2))
load_from = None
